//! Model information and retraining.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
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

/// Retrain from the current order history and swap the new model in. Operators only:
/// a retrain costs a full read of the order history, so it takes the `ML_RETRAIN_TOKEN`
/// bearer token.
#[utoipa::path(post, path = "/model/retrain", tag = "model",
    security(("retrain_token" = [])),
    responses(
    (status = 200, body = ModelInfo),
    (status = 401, description = "no or a wrong bearer token", body = ErrorBody),
    (status = 403, description = "retraining is disabled (no ML_RETRAIN_TOKEN is set)", body = ErrorBody),
    (status = 409, description = "a retrain is already running", body = ErrorBody),
    (status = 503, description = "database unavailable", body = ErrorBody)))]
pub async fn retrain(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<ModelInfo>, ApiError> {
    authorize(
        state.retrain_token.as_deref().map(|t| t.expose().as_str()),
        &headers,
    )?;
    let model = state.store.retrain().await.map_err(|err| match err {
        RetrainError::Running => ApiError::conflict("retrain_running", err.to_string()),
        RetrainError::Failed(err) => ApiError::unavailable("training_failed", err),
    })?;
    Ok(Json(ModelInfo::from(model.as_ref())))
}

/// The request carries `Authorization: Bearer <expected>`.
fn authorize(expected: Option<&str>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = expected else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "retrain_disabled",
            "retraining is disabled on this instance: it has no ML_RETRAIN_TOKEN",
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match presented {
        Some(token) if same_secret(token.as_bytes(), expected.as_bytes()) => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "retraining needs the operator token: Authorization: Bearer <ML_RETRAIN_TOKEN>",
        )),
    }
}

/// Equality whose time does not depend on where the inputs first differ, so the
/// token cannot be guessed byte by byte from response times.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn not_trained() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "model_not_ready",
        "no model is trained yet; retry shortly",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_authorization(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn only_the_configured_bearer_token_may_retrain() {
        let token = "a-token-of-at-least-thirty-two-characters";
        let status = |expected: Option<&str>, headers: &HeaderMap| {
            authorize(expected, headers)
                .err()
                .map(|e| e.status().as_u16())
        };
        assert_eq!(
            status(Some(token), &with_authorization(&format!("Bearer {token}"))),
            None
        );
        assert_eq!(status(Some(token), &HeaderMap::new()), Some(401));
        assert_eq!(status(Some(token), &with_authorization(token)), Some(401));
        assert_eq!(
            status(Some(token), &with_authorization("Bearer a-token")),
            Some(401)
        );
        assert_eq!(
            status(
                Some(token),
                &with_authorization(&format!("Bearer {token}x"))
            ),
            Some(401)
        );
        assert_eq!(
            status(None, &with_authorization(&format!("Bearer {token}"))),
            Some(403)
        );
    }
}
