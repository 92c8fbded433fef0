//! Model information and retraining.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shopmicro_common::error::{ApiError, ErrorBody};

use super::AppState;
use crate::model::Model;
use crate::store::RetrainError;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelInfo {
    /// Digest of the training data: equal data, equal version.
    pub version: String,
    pub trained_at: DateTime<Utc>,
    /// Orders in the training set.
    pub training_orders: usize,
    pub products: usize,
}

impl From<&Model> for ModelInfo {
    fn from(model: &Model) -> Self {
        Self {
            version: model.version.clone(),
            trained_at: model.trained_at,
            training_orders: model.training_orders,
            products: model.products,
        }
    }
}

/// The serving model.
#[utoipa::path(get, path = "/model", tag = "model", responses(
    (status = 200, body = ModelInfo), (status = 503, description = "no model trained yet", body = ErrorBody)))]
pub async fn info(State(state): State<AppState>) -> Result<Json<ModelInfo>, ApiError> {
    let model = state.store.current().ok_or_else(not_trained)?;
    Ok(Json(ModelInfo::from(model.as_ref())))
}

/// Retrain from the current order history and swap the new model in.
#[utoipa::path(post, path = "/model/retrain", tag = "model", responses(
    (status = 200, body = ModelInfo),
    (status = 409, description = "a retrain is already running", body = ErrorBody),
    (status = 503, description = "database unavailable", body = ErrorBody)))]
pub async fn retrain(State(state): State<AppState>) -> Result<Json<ModelInfo>, ApiError> {
    let model = state.store.retrain().await.map_err(|err| match err {
        RetrainError::Running => ApiError::conflict("retrain_running", err.to_string()),
        RetrainError::Failed(err) => ApiError::unavailable("training_failed", err),
    })?;
    Ok(Json(ModelInfo::from(model.as_ref())))
}

pub fn not_trained() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "model_not_ready",
        "no model is trained yet; retry shortly",
    )
}
