//! Orders: stock is reserved in the same transaction that records the order, with the
//! product rows locked in id order, so concurrent orders can never oversell and never
//! deadlock each other. An `Idempotency-Key` makes retries return the first order.
//! Clients see an order by its reference, a random UUID: the sequential id would let
//! anyone who can place one order enumerate everyone else's.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shopmicro_common::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use sqlx::{PgConnection, Postgres, Transaction};
use tracing::Instrument;

use super::AppState;
use crate::db;
use crate::domain::{CreateOrderRequest, NewOrder, parse_idempotency_key};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Order {
    /// The order's public reference: a random UUID, the only way to look the order up.
    #[schema(format = "uuid", example = "0b6f3a8e-8c1d-4c3e-9a7e-2f1d5b9c7e21")]
    pub reference: String,
    /// `confirmed`.
    pub status: String,
    pub items: Vec<OrderItem>,
    pub total_cents: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct OrderItem {
    pub product_id: i64,
    pub name: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
}

#[derive(sqlx::FromRow)]
struct LockedProduct {
    id: i64,
    name: String,
    price_cents: i64,
    stock: i32,
}

/// Place an order.
#[utoipa::path(post, path = "/orders", tag = "orders", request_body = CreateOrderRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key return the first order",
        pattern = r"^[!-~]{1,255}$", max_length = 255)),
    responses(
        (status = 201, description = "order placed", body = Order),
        (status = 200, description = "replay of an earlier request with the same Idempotency-Key", body = Order),
        (status = 400, description = "malformed JSON or Idempotency-Key", body = ErrorBody),
        (status = 404, description = "a product in the order does not exist", body = ErrorBody),
        (status = 409, description = "not enough stock", body = ErrorBody),
        (status = 415, description = "the body is not sent as application/json", body = ErrorBody),
        (status = 422, description = "invalid items (duplicate product) or a reused Idempotency-Key", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<CreateOrderRequest>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    let order = NewOrder::parse(request)?;
    let key = headers
        .get("idempotency-key")
        .map(|value| parse_idempotency_key(value.as_bytes()))
        .transpose()?;

    let placed = place(&state, &order, key.as_deref())
        .instrument(db::span("place order transaction"))
        .await?;
    if placed.0 == StatusCode::CREATED {
        // Stock changed: the new catalogue version reaches every replica before we answer.
        state.catalogue.changed().await;
    }
    Ok(placed)
}

/// The order transaction: a replay of an earlier request with the same key, or a new
/// order with its stock reserved.
async fn place(
    state: &AppState,
    order: &NewOrder,
    key: Option<&str>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    let mut tx = state.db.begin().await.map_err(ApiError::internal)?;
    if let Some(key) = key
        && let Some(existing) = replay(&mut tx, key, order).await?
    {
        tx.commit().await.map_err(ApiError::internal)?;
        return Ok((StatusCode::OK, Json(existing)));
    }
    let placed = match reserve_and_record(&mut tx, order, key).await {
        Ok(placed) => placed,
        Err(err) => {
            if err.status() == StatusCode::CONFLICT {
                state.metrics.stockouts.inc();
            }
            return Err(err);
        }
    };
    tx.commit().await.map_err(ApiError::internal)?;
    state.metrics.orders_created.inc();
    state
        .metrics
        .order_value_cents
        .inc_by(placed.total_cents.max(0) as u64);
    tracing::info!(
        order_reference = %placed.reference,
        total_cents = placed.total_cents,
        "order placed"
    );
    Ok((StatusCode::CREATED, Json(placed)))
}

/// With the key's advisory lock held for the rest of the transaction, the first order
/// placed with this key, if any. Concurrent requests with one key queue on the lock, so
/// exactly one of them creates the order.
async fn replay(
    tx: &mut Transaction<'_, Postgres>,
    key: &str,
    order: &NewOrder,
) -> Result<Option<Order>, ApiError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(key)
        .execute(&mut **tx)
        .await
        .map_err(ApiError::internal)?;
    let existing: Option<(i64, Option<String>)> =
        sqlx::query_as("SELECT id, request_fingerprint FROM orders WHERE idempotency_key = $1")
            .bind(key)
            .fetch_optional(&mut **tx)
            .await
            .map_err(ApiError::internal)?;
    match existing {
        None => Ok(None),
        Some((id, fingerprint)) if fingerprint.as_deref() == Some(order.fingerprint().as_str()) => {
            load(tx, id).await
        }
        Some(_) => Err(ApiError::unprocessable(
            "idempotency_key_reused",
            "this Idempotency-Key was already used for a different order; use a new key",
        )),
    }
}

async fn reserve_and_record(
    tx: &mut Transaction<'_, Postgres>,
    order: &NewOrder,
    key: Option<&str>,
) -> Result<Order, ApiError> {
    let ids: Vec<i64> = order.lines.iter().map(|(id, _)| id.get()).collect();
    let quantities: Vec<i32> = order.lines.iter().map(|(_, qty)| *qty).collect();

    // Lock in id order: every order takes the locks in the same order, so none deadlock.
    let locked: Vec<LockedProduct> = sqlx::query_as(
        "SELECT id, name, price_cents, stock FROM products WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await
    .map_err(ApiError::internal)?;

    let mut total: i64 = 0;
    let mut items = Vec::with_capacity(order.lines.len());
    for (id, quantity) in &order.lines {
        let product = locked.iter().find(|p| p.id == id.get()).ok_or_else(|| {
            ApiError::not_found(
                "unknown_product",
                format!("product {} does not exist", id.get()),
            )
        })?;
        if product.stock < *quantity {
            return Err(ApiError::conflict(
                "insufficient_stock",
                format!(
                    "product {} ({}) has {} in stock; {} requested",
                    product.id, product.name, product.stock, quantity
                ),
            ));
        }
        total = product
            .price_cents
            .checked_mul(i64::from(*quantity))
            .and_then(|line| total.checked_add(line))
            .ok_or_else(|| {
                ApiError::unprocessable("order_too_large", "order total is too large")
            })?;
        items.push(OrderItem {
            product_id: product.id,
            name: product.name.clone(),
            quantity: *quantity,
            unit_price_cents: product.price_cents,
        });
    }

    sqlx::query(
        "UPDATE products p SET stock = p.stock - r.quantity
         FROM UNNEST($1::bigint[], $2::int[]) AS r(id, quantity) WHERE p.id = r.id",
    )
    .bind(&ids)
    .bind(&quantities)
    .execute(&mut **tx)
    .await
    .map_err(ApiError::internal)?;

    let (id, reference, created_at): (i64, String, DateTime<Utc>) = sqlx::query_as(
        "INSERT INTO orders (status, total_cents, idempotency_key, request_fingerprint)
         VALUES ('confirmed', $1, $2, $3) RETURNING id, reference::text, created_at",
    )
    .bind(total)
    .bind(key)
    .bind(key.map(|_| order.fingerprint()))
    .fetch_one(&mut **tx)
    .await
    .map_err(ApiError::internal)?;

    let prices: Vec<i64> = items.iter().map(|item| item.unit_price_cents).collect();
    sqlx::query(
        "INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents)
         SELECT $1, * FROM UNNEST($2::bigint[], $3::int[], $4::bigint[])",
    )
    .bind(id)
    .bind(&ids)
    .bind(&quantities)
    .bind(&prices)
    .execute(&mut **tx)
    .await
    .map_err(ApiError::internal)?;

    Ok(Order {
        reference,
        status: "confirmed".to_owned(),
        items,
        total_cents: total,
        created_at,
    })
}

/// Get an order by its reference.
#[utoipa::path(get, path = "/orders/{reference}", tag = "orders",
    params(("reference" = String, Path, description = "The order's reference, as placing it returned", format = "uuid")),
    responses((status = 200, body = Order), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(reference): ApiPath<String>,
) -> Result<Json<Order>, ApiError> {
    let reference = uuid::Uuid::try_parse(&reference).map_err(|_| {
        ApiError::bad_request(
            "invalid_order_reference",
            "an order reference is the UUID returned when the order was placed",
        )
    })?;
    let mut conn = state.db.acquire().await.map_err(ApiError::internal)?;
    let id: Option<i64> = sqlx::query_scalar("SELECT id FROM orders WHERE reference = $1::uuid")
        .bind(reference.to_string())
        .fetch_optional(&mut *conn)
        .await
        .map_err(ApiError::internal)?;
    let order = match id {
        Some(id) => load(&mut conn, id).await?,
        None => None,
    };
    order.map(Json).ok_or_else(|| {
        ApiError::not_found(
            "order_not_found",
            format!("order {reference} does not exist"),
        )
    })
}

/// The order with internal id `id`, as clients see it.
async fn load(conn: &mut PgConnection, id: i64) -> Result<Option<Order>, ApiError> {
    let header: Option<(String, String, i64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT reference::text, status, total_cents, created_at FROM orders WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(ApiError::internal)?;
    let Some((reference, status, total_cents, created_at)) = header else {
        return Ok(None);
    };
    let items = sqlx::query_as::<_, OrderItem>(
        "SELECT i.product_id, p.name, i.quantity, i.unit_price_cents
         FROM order_items i JOIN products p ON p.id = i.product_id
         WHERE i.order_id = $1 ORDER BY i.product_id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await
    .map_err(ApiError::internal)?;
    Ok(Some(Order {
        reference,
        status,
        items,
        total_cents,
        created_at,
    }))
}
