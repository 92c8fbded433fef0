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

/// Ready for traffic: PostgreSQL answers. Redis and ml are reported but optional.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let ping = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.db);
    let postgres_ok = matches!(
        tokio::time::timeout(Duration::from_secs(2), ping).await,
        Ok(Ok(1))
    );
    state.metrics.record_pool(&state.db);
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
