//! Building and running the storefront.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::http::header;
use axum::routing::{get, post};
use axum_extra::extract::cookie::Key;
use prometheus_client::registry::Registry;
use shopmicro_common::metrics::HttpMetrics;
use shopmicro_common::observe::Observer;
use shopmicro_common::overload;
use shopmicro_common::server::{self, Server};

use crate::SERVICE_NAME;
use crate::backend::BackendClient;
use crate::catalogue_pages::CataloguePages;
use crate::config::Config;
use crate::pages::{self, PageError};
use crate::routes::{AppState, Shared, cart, catalogue, health, orders, product};

pub struct Application {
    server: Server,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let cookie_key = match &config.cart_signing_key {
            Some(key) => {
                Key::try_from(key.expose().as_slice()).context("CART_SIGNING_KEY is too short")?
            }
            None => {
                tracing::warn!(
                    "CART_SIGNING_KEY not set: using a random key; carts will not survive a restart or move between replicas"
                );
                Key::generate()
            }
        };
        let mut registry = Registry::default();
        let http_metrics = HttpMetrics::register(&mut registry);
        let backend = BackendClient::new(config.backend_url.clone(), config.backend_timeout);
        let state = AppState::new(Shared {
            catalogue_pages: CataloguePages::new(
                backend.clone(),
                config.page_cache_bytes,
                &mut registry,
            ),
            backend,
            templates: Arc::new(pages::templates().context("compiling page templates")?),
            cookie_key,
            secure_cookies: config.secure_cookies,
        });

        let pages = Router::new()
            .route("/", get(catalogue::page))
            .route("/products/{id}", get(product::page))
            .route("/cart", get(cart::view))
            .route("/cart/items", post(cart::add))
            .route("/cart/items/{id}", post(cart::update))
            .route("/checkout", post(cart::checkout))
            .route("/orders/{reference}", get(orders::page))
            .route("/static/style.css", get(stylesheet));
        // Health answers under overload (metrics are on the admin port); the pages shed what they cannot take.
        let router = overload::protect(pages, &config.server.limits)
            .route("/healthz", get(health::healthz))
            .route("/readyz", get(health::readyz))
            .with_state(state)
            .fallback(|| async { PageError::NotFound("We couldn't find that page.") });
        let router = server::observed(
            router,
            Observer {
                service: SERVICE_NAME,
                metrics: http_metrics,
                access_log_every: config.server.access_log_every,
                exporting: shopmicro_common::telemetry::exporting(),
            },
        );
        let server = Server::bind(SERVICE_NAME, &config.server, router, registry).await?;
        Ok(Self { server })
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Where `/metrics` is served.
    pub fn admin_port(&self) -> u16 {
        self.server.admin_port()
    }

    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.server.run_until(shutdown).await
    }
}

async fn stylesheet() -> impl axum::response::IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        pages::STYLESHEET,
    )
}
