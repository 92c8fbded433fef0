//! Recommendations: the ml service when it answers well and in time, otherwise the most
//! popular products of the same category. The response always says which one answered.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use shopmicro_common::error::{ApiError, ApiPath, ApiQuery, ErrorBody};
use tracing::Instrument;

use super::AppState;
use super::products::{self, Product};
use crate::db;
use crate::domain::ProductId;
use crate::metrics::SourceLabels;

const DEFAULT_K: i64 = 4;
const MAX_K: i64 = 20;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecommendationParams {
    /// How many recommendations, 1 to 20 (default 4).
    #[param(minimum = 1, maximum = 20)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recommendations {
    pub product_id: i64,
    /// `ml` or `fallback`.
    pub source: String,
    /// Why the fallback answered (`ml_timeout`, `ml_unavailable`, ...); null for `ml`.
    pub fallback_reason: Option<String>,
    pub items: Vec<Recommendation>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recommendation {
    pub product: Product,
    pub score: f64,
}

/// Recommendations for a product.
#[utoipa::path(get, path = "/products/{id}/recommendations", tag = "products",
    params(("id" = i64, Path, description = "Product id", minimum = 1), RecommendationParams),
    responses((status = 200, body = Recommendations), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn recommend(
    State(state): State<AppState>,
    ApiPath(raw_id): ApiPath<i64>,
    ApiQuery(params): ApiQuery<RecommendationParams>,
) -> Result<Json<Recommendations>, ApiError> {
    let id = ProductId::parse(raw_id)?;
    let k = params.limit.unwrap_or(DEFAULT_K);
    if !(1..=MAX_K).contains(&k) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be between 1 and {MAX_K}, got {k}"),
        ));
    }
    let product = products::find(&state, id).await?;

    let fallback_reason = match &state.ml {
        None => "ml_disabled",
        Some(ml) => match ml.recommend(id, k).await {
            Ok(scored) => {
                let ids: Vec<i64> = scored
                    .iter()
                    .map(|s| s.product_id)
                    .filter(|candidate| *candidate != id.get())
                    .take(k as usize)
                    .collect();
                let found = products::fetch_many(&state.reads, &ids).await?;
                if found.is_empty() {
                    "ml_no_known_products"
                } else {
                    let items = found
                        .into_iter()
                        .map(|product| {
                            let score = scored
                                .iter()
                                .find(|s| s.product_id == product.id)
                                .map_or(0.0, |s| s.score);
                            Recommendation { product, score }
                        })
                        .collect();
                    return Ok(respond(&state, id, "ml", None, items));
                }
            }
            Err(err) => {
                tracing::warn!(reason = err.reason(), error = %err, "ml recommendations failed; falling back");
                err.reason()
            }
        },
    };
    let items = popular_in_category(&state, &product, k).await?;
    Ok(respond(
        &state,
        id,
        "fallback",
        Some(fallback_reason),
        items,
    ))
}

fn respond(
    state: &AppState,
    id: ProductId,
    source: &'static str,
    fallback_reason: Option<&str>,
    items: Vec<Recommendation>,
) -> Json<Recommendations> {
    state
        .metrics
        .recommendations
        .get_or_create(&SourceLabels { source })
        .inc();
    Json(Recommendations {
        product_id: id.get(),
        source: source.to_owned(),
        fallback_reason: fallback_reason.map(str::to_owned),
        items,
    })
}

/// Best sellers of the product's category, scored by their share of units sold.
async fn popular_in_category(
    state: &AppState,
    product: &Product,
    k: i64,
) -> Result<Vec<Recommendation>, ApiError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        product: Product,
        units: i64,
    }
    let rows = sqlx::query_as::<_, Row>(
        "SELECT p.id, p.name, p.category, p.description, p.price_cents, p.stock,
                COALESCE(sold.units, 0)::bigint AS units
         FROM products p
         LEFT JOIN (SELECT product_id, sum(quantity) AS units FROM order_items GROUP BY product_id) sold
                ON sold.product_id = p.id
         WHERE p.category = $1 AND p.id <> $2 AND p.stock > 0
         ORDER BY units DESC, p.id
         LIMIT $3",
    )
    .bind(&product.category)
    .bind(product.id)
    .bind(k)
    .fetch_all(&state.db)
    .instrument(db::span("SELECT popular products"))
    .await
    .map_err(ApiError::internal)?;
    let total: i64 = rows.iter().map(|row| row.units).sum::<i64>().max(1);
    Ok(rows
        .into_iter()
        .map(|row| Recommendation {
            score: row.units as f64 / total as f64,
            product: row.product,
        })
        .collect())
}
