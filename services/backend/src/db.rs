//! The PostgreSQL pool and embedded migrations; catalogue reads go through [`reads`].

pub mod reads;

use std::num::NonZeroU32;
use std::time::Duration;

use anyhow::Context;
use shopmicro_common::config::DatabaseUrl;
use sqlx::PgPool;
use sqlx::migrate::Migrate;
use sqlx::postgres::PgPoolOptions;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a connection may take, for the pool and the catalogue reads alike.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Connects lazily: the service starts (and answers `/healthz`) while PostgreSQL is still
/// coming up; `/readyz` reports when it is reachable.
pub fn pool(url: &DatabaseUrl, max_connections: NonZeroU32) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(max_connections.get())
        .acquire_timeout(CONNECT_TIMEOUT)
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

/// Checks that every migration this build embeds is applied, unchanged, without applying
/// any: on the platform the schema owner migrates (`shopmicro-backend migrate`) and the
/// backend's own role may not change the schema.
pub async fn verify_migrated(pool: &PgPool) -> anyhow::Result<()> {
    let mut conn = pool
        .acquire()
        .await
        .context("connecting to check the schema")?;
    // A database nobody migrated has no bookkeeping table: nothing is applied.
    let bookkept: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .context("checking for the applied migrations (_sqlx_migrations)")?;
    let applied = if bookkept {
        conn.list_applied_migrations()
            .await
            .context("reading the applied migrations (_sqlx_migrations)")?
    } else {
        Vec::new()
    };
    let pending: Vec<String> = MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .filter_map(|m| match applied.iter().find(|a| a.version == m.version) {
            None => Some(format!("{} {} (not applied)", m.version, m.description)),
            Some(a) if a.checksum != m.checksum => Some(format!(
                "{} {} (changed since applied)",
                m.version, m.description
            )),
            Some(_) => None,
        })
        .collect();
    anyhow::ensure!(
        pending.is_empty(),
        "the database schema is not the one this build needs: {}; run `shopmicro-backend \
         migrate` as the schema owner (the platform does before the backend starts)",
        pending.join(", ")
    );
    Ok(())
}

/// `shopmicro-backend migrate`: waits up to `patience` for the database to accept the
/// owner (its setup may still be running), then applies the pending migrations.
pub async fn migrate_when_reachable(url: &DatabaseUrl, patience: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + patience;
    let pool = loop {
        match PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(3))
            .connect(url.expose())
            .await
        {
            Ok(pool) => break pool,
            Err(err) if tokio::time::Instant::now() < deadline => {
                tracing::info!(error = %err, "database not ready for migrations yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(err) => {
                return Err(err)
                    .with_context(|| format!("connecting to {} to migrate", url.redacted()));
            }
        }
    };
    migrate(&pool).await
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

/// Keeps the pool's and the read connections' gauges current between scrapes.
pub fn report_connection_usage(
    pool: PgPool,
    reads: reads::Reads,
    metrics: crate::metrics::BackendMetrics,
) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(5));
        loop {
            ticks.tick().await;
            metrics.record_pool(&pool);
            metrics.record_reads(reads.usage());
        }
    });
}
