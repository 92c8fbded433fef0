//! HTTP routes of the ml service.

pub mod health;
pub mod model;
pub mod openapi;
pub mod recommendations;

use std::sync::Arc;

use shopmicro_common::secret::Secret;

use crate::store::ModelStore;

#[derive(Clone)]
pub struct AppState {
    pub store: ModelStore,
    /// What `POST /model/retrain` must present; none means retraining is refused.
    pub retrain_token: Option<Arc<Secret<String>>>,
}
