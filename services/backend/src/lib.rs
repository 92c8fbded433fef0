//! ShopMicro backend: products, inventory and orders on PostgreSQL with a Redis cache,
//! recommendations through the ml service with a local fallback.

pub mod cache;
pub mod catalogue;
pub mod config;
pub mod db;
pub mod domain;
pub mod metrics;
pub mod ml_client;
pub mod routes;
pub mod seed;
pub mod startup;

pub use config::Config;
pub use startup::Application;

pub const SERVICE_NAME: &str = "backend";
