//! Reading the training set from the backend's database (read-only).

use anyhow::Context;
use sqlx::PgPool;

use crate::model::{ProductFeatures, TrainingData};

pub async fn load(db: &PgPool) -> anyhow::Result<TrainingData> {
    let products = sqlx::query_as::<_, (i64, String, i64)>(
        "SELECT id, category, price_cents FROM products ORDER BY id",
    )
    .fetch_all(db)
    .await
    .context("reading products")?
    .into_iter()
    .map(|(id, category, price_cents)| ProductFeatures {
        id,
        category,
        price_cents,
    })
    .collect();
    let baskets = sqlx::query_scalar::<_, Vec<i64>>(
        "SELECT array_agg(product_id ORDER BY product_id) FROM order_items
         GROUP BY order_id ORDER BY order_id",
    )
    .fetch_all(db)
    .await
    .context("reading order history")?;
    Ok(TrainingData { products, baskets })
}
