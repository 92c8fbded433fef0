//! ShopMicro ml: a recommendation model learned from order history, and its API.

pub mod config;
pub mod metrics;
pub mod model;
pub mod routes;
pub mod startup;
pub mod store;
pub mod training_data;

pub use config::Config;
pub use startup::Application;

pub const SERVICE_NAME: &str = "ml";
