//! The order confirmation page.

use axum::extract::{Path, State};
use axum::response::Html;
use axum_extra::extract::SignedCookieJar;
use serde::Serialize;
use tera::Context;

use super::AppState;
use crate::cart::Cart;
use crate::pages::{PageError, money};

#[derive(Serialize)]
struct ItemView {
    product_id: i64,
    name: String,
    quantity: i32,
    price: String,
}

pub async fn page(
    State(state): State<AppState>,
    jar: SignedCookieJar,
    Path(reference): Path<String>,
) -> Result<Html<String>, PageError> {
    let reference = uuid::Uuid::try_parse(&reference)
        .map_err(|_| PageError::NotFound("We couldn't find that order."))?;
    let cart = Cart::from_jar(&jar);
    let order = state.backend.order(&reference).await?;
    let items: Vec<ItemView> = order
        .items
        .iter()
        .map(|item| ItemView {
            product_id: item.product_id,
            name: item.name.clone(),
            quantity: item.quantity,
            price: money(item.unit_price_cents * i64::from(item.quantity)),
        })
        .collect();
    let mut context = Context::new();
    context.insert("order", &order);
    context.insert("items", &items);
    context.insert("total", &money(order.total_cents));
    state.render("order.html", &cart, context)
}
