//! The OpenAPI 3 document of the ml API.

use axum::Json;
use utoipa::OpenApi;

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
    ))
)]
pub struct ApiDoc;

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
