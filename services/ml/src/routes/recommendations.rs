//! `GET /recommendations?product_id=..&k=..`

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use shopmicro_common::error::{ApiError, ApiQuery, ErrorBody};

use super::AppState;
use super::model::not_trained;

const DEFAULT_K: i64 = 5;
const MAX_K: i64 = 50;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecommendationQuery {
    /// The product to recommend for. Optional to serde only, so that its absence is a
    /// clear 400 rather than a generic rejection; required in the contract.
    #[param(minimum = 1, required = true)]
    pub product_id: Option<i64>,
    /// How many, 1 to 50 (default 5).
    #[param(minimum = 1, maximum = 50)]
    pub k: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecommendationList {
    pub product_id: i64,
    pub model_version: String,
    pub recommendations: Vec<ScoredProduct>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScoredProduct {
    pub product_id: i64,
    /// Higher is better; above 0.5 means learned from co-purchases.
    pub score: f64,
}

/// Scored recommendations for a product.
#[utoipa::path(get, path = "/recommendations", tag = "recommendations", params(RecommendationQuery),
    responses((status = 200, body = RecommendationList), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn recommend(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<RecommendationQuery>,
) -> Result<Json<RecommendationList>, ApiError> {
    let product_id = query
        .product_id
        .ok_or_else(|| ApiError::bad_request("missing_product_id", "product_id is required"))?;
    if product_id <= 0 {
        return Err(ApiError::bad_request(
            "invalid_product_id",
            format!("product_id must be a positive integer, got {product_id}"),
        ));
    }
    let k = query.k.unwrap_or(DEFAULT_K);
    if !(1..=MAX_K).contains(&k) {
        return Err(ApiError::bad_request(
            "invalid_k",
            format!("k must be between 1 and {MAX_K}, got {k}"),
        ));
    }
    let model = state.store.current().ok_or_else(not_trained)?;
    let ranked = model.recommend(product_id, k as usize).ok_or_else(|| {
        ApiError::not_found(
            "unknown_product",
            format!(
                "product {product_id} is not in the model (new products appear after a retrain)"
            ),
        )
    })?;
    Ok(Json(RecommendationList {
        product_id,
        model_version: model.version.clone(),
        recommendations: ranked
            .iter()
            .map(|s| ScoredProduct {
                product_id: s.product_id,
                score: s.score,
            })
            .collect(),
    }))
}
