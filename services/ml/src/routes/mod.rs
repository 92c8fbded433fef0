//! HTTP routes of the ml service.

pub mod health;
pub mod model;
pub mod openapi;
pub mod recommendations;

use crate::store::ModelStore;

#[derive(Clone)]
pub struct AppState {
    pub store: ModelStore,
}
