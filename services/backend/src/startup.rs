//! Building and running the backend application.

use std::future::Future;

use anyhow::Context;
use axum::Router;
use axum::routing::{get, post};
use prometheus_client::registry::Registry;
use shopmicro_common::metrics::HttpMetrics;
use shopmicro_common::observe::Observer;
use shopmicro_common::overload;
use shopmicro_common::server::{self, Server};

use crate::cache::Cache;
use crate::catalogue::Catalogue;
use crate::config::{Config, Migrations};
use crate::db::reads::{Limits, Reads};
use crate::metrics::BackendMetrics;
use crate::ml_client::MlClient;
use crate::routes::{AppState, Shared, health, openapi, orders, products, recommendations};
use crate::{SERVICE_NAME, db, seed};

pub struct Application {
    server: Server,
}

impl Application {
    /// Connects, migrates, seeds (when configured) and binds. Port 0 binds a free port.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = db::pool(&config.database_url, config.database_max_connections)?;
        match config.migrations {
            Migrations::Apply => db::migrate(&pool).await,
            Migrations::Verify => db::verify_migrated(&pool).await,
        }
        .with_context(|| format!("database at {}", config.database_url.redacted()))?;
        if config.seed_demo_data && seed::ensure_demo_data(&pool).await? {
            tracing::info!(
                products = seed::PRODUCT_COUNT,
                orders = seed::ORDER_COUNT,
                "loaded demo data"
            );
        }

        let mut registry = Registry::default();
        let http_metrics = HttpMetrics::register(&mut registry);
        let metrics = BackendMetrics::register(&mut registry);
        let reads = Reads::new(
            &config.database_url,
            Limits {
                connections: config.database_read_connections,
                connect_timeout: db::CONNECT_TIMEOUT,
                read_timeout: config.database_read_timeout,
            },
            metrics.reads.clone(),
        )?;
        let cache = match &config.redis_url {
            Some(url) => Cache::new(
                url.expose(),
                config.cache_prefix.clone(),
                config.cache_ttl,
                config.cache_timeout,
                metrics.clone(),
            )?,
            None => {
                tracing::info!("REDIS_URL not set: running without a cache");
                Cache::disabled(metrics.clone())
            }
        };
        let ml = config
            .ml_url
            .clone()
            .map(|url| MlClient::new(url, config.ml_timeout, metrics.clone()));
        if ml.is_none() {
            tracing::info!("ML_URL not set: serving fallback recommendations only");
        }
        db::report_connection_usage(pool.clone(), reads.clone(), metrics.clone());
        let catalogue = Catalogue::start(
            cache.clone(),
            pool.clone(),
            config.catalogue_memory_bytes,
            config.cache_ttl,
            metrics.clone(),
        );
        let state = AppState::new(Shared {
            db: pool,
            reads,
            cache,
            catalogue,
            ml,
            metrics,
        });

        let api = Router::new()
            .route("/openapi.json", get(openapi::document))
            .route("/products", get(products::list))
            .route("/products/{id}", get(products::get))
            .route(
                "/products/{id}/recommendations",
                get(recommendations::recommend),
            )
            .route("/categories", get(products::categories))
            .route("/catalogue/version", get(products::catalogue_version))
            .route("/orders", post(orders::create))
            .route("/orders/{reference}", get(orders::get));
        // Health answers under overload (metrics are on the admin port); the API sheds what it cannot take.
        let router = overload::protect(api, &config.server.limits)
            .route("/healthz", get(health::healthz))
            .route("/readyz", get(health::readyz))
            .with_state(state);
        let router = server::finish_api_router(
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
