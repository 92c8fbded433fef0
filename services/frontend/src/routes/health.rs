//! Liveness, and readiness meaning "the backend answers its own readiness check".

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if state.backend.ready().await {
        (
            StatusCode::OK,
            Json(json!({"status": "ready", "backend": "ok"})),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "backend": "unavailable"})),
        )
    }
}
