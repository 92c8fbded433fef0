//! Liveness, and readiness meaning "a model is trained and serving".

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;

#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "alive")))]
pub async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "a model is serving"), (status = 503, description = "no model trained yet")))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.store.current() {
        Some(model) => (
            StatusCode::OK,
            Json(json!({"status": "ready", "model_version": model.version})),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "reason": "no model trained yet"})),
        ),
    }
}
