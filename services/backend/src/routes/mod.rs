//! HTTP routes, one module per resource.

pub mod health;
mod listing_json;
pub mod openapi;
pub mod orders;
pub mod products;
pub mod recommendations;

use std::ops::Deref;
use std::sync::Arc;

use sqlx::PgPool;

use crate::cache::Cache;
use crate::catalogue::Catalogue;
use crate::db::reads::Reads;
use crate::metrics::BackendMetrics;
use crate::ml_client::MlClient;

/// What every handler shares. axum clones the state for every request, so it is one `Arc`:
/// cloning the parts (a dozen reference counts) took a fifth of the CPU of a cached listing.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    /// Writes (orders) and the reads that are not the catalogue's.
    pub db: PgPool,
    /// Catalogue reads, pipelined.
    pub reads: Reads,
    /// Redis, for `/readyz`; reads go through `catalogue`.
    pub cache: Cache,
    pub catalogue: Catalogue,
    pub ml: Option<MlClient>,
    pub metrics: BackendMetrics,
}
