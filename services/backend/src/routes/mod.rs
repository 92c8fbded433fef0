//! HTTP routes, one module per resource.

pub mod health;
pub mod openapi;
pub mod orders;
pub mod products;
pub mod recommendations;

use sqlx::PgPool;

use crate::cache::Cache;
use crate::catalogue::Catalogue;
use crate::metrics::BackendMetrics;
use crate::ml_client::MlClient;

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    /// Redis, for `/readyz`; reads go through `catalogue`.
    pub cache: Cache,
    pub catalogue: Catalogue,
    pub ml: Option<MlClient>,
    pub metrics: BackendMetrics,
}
