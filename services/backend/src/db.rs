//! The PostgreSQL pool and embedded migrations.

use std::time::Duration;

use anyhow::Context;
use shopmicro_common::config::DatabaseUrl;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connects lazily: the service starts (and answers `/healthz`) while PostgreSQL is still
/// coming up; `/readyz` reports when it is reachable.
pub fn pool(url: &DatabaseUrl, max_connections: u32) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy(url.expose())
        .with_context(|| format!("invalid database URL for {}", url.redacted()))
}

/// Applies pending migrations. sqlx holds a PostgreSQL advisory lock while migrating, so
/// replicas starting together apply each migration exactly once.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("applying database migrations")
}

/// A client span around one database round trip, so traces show where time went.
pub fn span(operation: &'static str) -> tracing::Span {
    tracing::info_span!(
        "db",
        otel.name = operation,
        otel.kind = "client",
        db.system = "postgresql",
        db.operation = operation,
    )
}

/// Keeps the pool gauges current between scrapes.
pub fn report_pool_usage(pool: PgPool, metrics: crate::metrics::BackendMetrics) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(5));
        loop {
            ticks.tick().await;
            metrics.record_pool(&pool);
        }
    });
}
