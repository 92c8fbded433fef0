//! The OpenAPI 3 document of the ml API.

use axum::Json;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::{health, model, recommendations};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ShopMicro ml API",
        description = "Product recommendations learned from order history."
    ),
    paths(
        health::healthz,
        health::readyz,
        recommendations::recommend,
        model::info,
        model::retrain
    ),
    components(schemas(
        shopmicro_common::error::ErrorBody,
        shopmicro_common::error::ErrorDetail
    )),
    modifiers(&RetrainToken)
)]
pub struct ApiDoc;

/// The bearer token retraining takes (`ML_RETRAIN_TOKEN`).
struct RetrainToken;

impl utoipa::Modify for RetrainToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("retrain_token", SecurityScheme::Http(scheme));
    }
}

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
