//! The OpenAPI 3 document of the real API, generated from the handlers' annotations.

use axum::Json;
use utoipa::OpenApi;

use super::{health, orders, products, recommendations};

#[derive(OpenApi)]
#[openapi(
    info(title = "ShopMicro backend API", description = "Products, inventory and orders."),
    paths(
        health::healthz, health::readyz,
        products::list, products::get, products::categories, products::catalogue_version,
        recommendations::recommend,
        orders::create, orders::get,
    ),
    components(schemas(shopmicro_common::error::ErrorBody, shopmicro_common::error::ErrorDetail)),
    tags((name = "products"), (name = "orders"), (name = "health"))
)]
pub struct ApiDoc;

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
