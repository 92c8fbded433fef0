//! Liveness and readiness.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use super::AppState;
use crate::cache::CacheHealth;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    status: &'static str,
    postgres: &'static str,
    /// `ok`, `unavailable` (requests fall back to PostgreSQL) or `disabled`.
    #[schema(value_type = String)]
    redis: CacheHealth,
    /// `configured` or `disabled` (fallback recommendations only).
    ml: &'static str,
}

/// The process is alive and serving HTTP.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "alive")))]
pub async fn healthz() -> &'static str {
    "ok"
}

const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Ready for traffic: PostgreSQL answers. Redis and ml are reported but optional.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    // Both ways the backend reaches PostgreSQL: the pool (orders) and the catalogue's read
    // connections, which are opened apart and can fail apart (no connection slot left).
    let pool = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.db);
    let reads = state.reads.query("SELECT 1", &[]);
    let (pool, reads) = tokio::join!(
        tokio::time::timeout(PING_TIMEOUT, pool),
        tokio::time::timeout(PING_TIMEOUT, reads)
    );
    let postgres_ok = matches!(pool, Ok(Ok(1))) && matches!(reads, Ok(Ok(_)));
    state.metrics.record_pool(&state.db);
    state.metrics.record_reads(state.reads.usage());
    let readiness = Readiness {
        status: if postgres_ok { "ready" } else { "not_ready" },
        postgres: if postgres_ok { "ok" } else { "unavailable" },
        redis: state.cache.health().await,
        ml: if state.ml.is_some() {
            "configured"
        } else {
            "disabled"
        },
    };
    let status = if postgres_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness))
}
