//! ShopMicro storefront: server-rendered pages over the backend API. Works without
//! JavaScript; the cart lives in a signed cookie, so any replica can serve any request.

pub mod backend;
pub mod cart;
pub mod catalogue_pages;
pub mod config;
pub mod pages;
pub mod routes;
pub mod session;
pub mod startup;

pub use config::Config;
pub use startup::Application;

pub const SERVICE_NAME: &str = "frontend";
