//! Building and running the ml application. The first model trains in the background so
//! the process answers `/healthz` at once and `/readyz` as soon as a model is serving.

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::routing::{get, post};
use prometheus_client::registry::Registry;
use shopmicro_common::metrics::HttpMetrics;
use shopmicro_common::observe::Observer;
use shopmicro_common::overload;
use shopmicro_common::server::{self, Server};
use sqlx::postgres::PgPoolOptions;

use crate::SERVICE_NAME;
use crate::config::Config;
use crate::metrics::MlMetrics;
use crate::routes::{AppState, health, model, openapi, recommendations};
use crate::store::{ModelStore, RetrainError};

pub struct Application {
    server: Server,
    store: ModelStore,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(config.database_max_connections.get())
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy(config.database_url.expose())
            .with_context(|| {
                format!(
                    "invalid database URL for {}",
                    config.database_url.redacted()
                )
            })?;

        let mut registry = Registry::default();
        let http_metrics = HttpMetrics::register(&mut registry);
        let metrics = MlMetrics::register(&mut registry);
        let store = ModelStore::new(pool, metrics);
        spawn_initial_training(store.clone(), config.training_retry);

        let api = Router::new()
            .route("/openapi.json", get(openapi::document))
            .route("/recommendations", get(recommendations::recommend))
            .route("/model", get(model::info))
            .route("/model/retrain", post(model::retrain));
        // Health answers under overload (metrics are on the admin port); the API sheds what it cannot take.
        let router = overload::protect(api, &config.server.limits)
            .route("/healthz", get(health::healthz))
            .route("/readyz", get(health::readyz))
            .with_state(AppState {
                store: store.clone(),
                retrain_token: config.retrain_token.clone().map(std::sync::Arc::new),
            });
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
        Ok(Self { server, store })
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Where `/metrics` is served.
    pub fn admin_port(&self) -> u16 {
        self.server.admin_port()
    }

    /// Waits until the first model serves (tests use it instead of polling `/readyz`).
    pub async fn wait_until_trained(&self, limit: Duration) -> anyhow::Result<()> {
        self.store.wait_until_trained(limit).await
    }

    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.server.run_until(shutdown).await
    }
}

/// Retries until the database answers: ml may start before PostgreSQL or the backend's
/// migrations.
fn spawn_initial_training(store: ModelStore, retry: Duration) {
    tokio::spawn(async move {
        loop {
            match store.retrain().await {
                // A retrain someone asked for is training the first model.
                Ok(_) | Err(RetrainError::Running) => return,
                Err(RetrainError::Failed(err)) => {
                    tracing::warn!(error.chain = %format!("{err:#}"), retry_ms = retry.as_millis() as u64, "initial training failed; retrying");
                    tokio::time::sleep(retry).await;
                }
            }
        }
    });
}
