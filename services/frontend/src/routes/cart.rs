//! Cart and checkout. Every change is a POST followed by a redirect (post/redirect/get),
//! so reloading a page never repeats an action; checkout carries an idempotency key
//! rendered into the form, so a double-clicked "Place order" places one order. The key
//! is scoped to the shopper's session before the backend sees it (`crate::session`).

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::SignedCookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::{Deserialize, Serialize};
use tera::Context;

use super::AppState;
use crate::backend::{BackendError, ListQuery};
use crate::cart::{COOKIE_NAME, Cart, MAX_LINES, MAX_QUANTITY};
use crate::pages::{PageError, money};
use crate::session::Session;

#[derive(Deserialize)]
pub struct AddToCart {
    product_id: i64,
    quantity: u32,
}

#[derive(Deserialize)]
pub struct UpdateLine {
    quantity: u32,
}

#[derive(Deserialize)]
pub struct Checkout {
    idempotency_key: String,
}

#[derive(Serialize)]
struct LineView {
    id: i64,
    name: String,
    price: String,
    quantity: u32,
    subtotal: String,
}

/// The jar with the cart stored, and a session for its checkout.
fn store_cart(state: &AppState, jar: SignedCookieJar, cart: &Cart) -> SignedCookieJar {
    let jar = Session::ensure(jar, state.secure_cookies);
    let cookie = Cookie::build((COOKIE_NAME, cart.encode()))
        .path("/")
        .http_only(true)
        .secure(state.secure_cookies)
        .same_site(SameSite::Lax)
        .build();
    jar.add(cookie)
}

fn bad_form(rejection: FormRejection) -> PageError {
    tracing::info!(error = %rejection.body_text(), "rejected form");
    PageError::BadInput("That form was not filled in correctly. Please go back and try again.")
}

pub async fn view(
    State(state): State<AppState>,
    jar: SignedCookieJar,
) -> Result<Response, PageError> {
    let cart = Cart::from_jar(&jar);
    render_cart(&state, &cart, None, StatusCode::OK).await
}

async fn render_cart(
    state: &AppState,
    cart: &Cart,
    notice: Option<String>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let mut lines = Vec::new();
    let mut total: i64 = 0;
    if !cart.is_empty() {
        let ids: Vec<String> = cart.lines().map(|(id, _)| id.to_string()).collect();
        let query = ListQuery {
            ids: Some(ids.join(",")),
            limit: MAX_LINES as i64,
            ..Default::default()
        };
        let page = state.backend.products(&query).await?;
        for (id, quantity) in cart.lines() {
            // A product that no longer exists simply drops out of the cart view.
            let Some(product) = page.items.iter().find(|p| p.id == id) else {
                continue;
            };
            let subtotal = product.price_cents * i64::from(quantity);
            total += subtotal;
            lines.push(LineView {
                id,
                name: product.name.clone(),
                price: money(product.price_cents),
                quantity,
                subtotal: money(subtotal),
            });
        }
    }
    let mut context = Context::new();
    context.insert("lines", &lines);
    context.insert("total", &money(total));
    context.insert("notice", &notice);
    context.insert("max_quantity", &MAX_QUANTITY);
    context.insert("idempotency_key", &uuid::Uuid::new_v4().to_string());
    let page: Html<String> = state.render("cart.html", cart, context)?;
    Ok((status, page).into_response())
}

pub async fn add(
    State(state): State<AppState>,
    jar: SignedCookieJar,
    form: Result<Form<AddToCart>, FormRejection>,
) -> Result<Response, PageError> {
    let Form(form) = form.map_err(bad_form)?;
    if form.product_id <= 0 || !(1..=MAX_QUANTITY).contains(&form.quantity) {
        return Err(PageError::BadInput("Choose a quantity between 1 and 99."));
    }
    // Only real products go into the cart.
    state.backend.product(form.product_id).await?;
    let mut cart = Cart::from_jar(&jar);
    if !cart.add(form.product_id, form.quantity) {
        return render_cart(
            &state,
            &cart,
            Some(format!(
                "Your cart is full ({MAX_LINES} different products)."
            )),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    Ok((store_cart(&state, jar, &cart), Redirect::to("/cart")).into_response())
}

pub async fn update(
    State(state): State<AppState>,
    jar: SignedCookieJar,
    Path(product_id): Path<i64>,
    form: Result<Form<UpdateLine>, FormRejection>,
) -> Result<Response, PageError> {
    let Form(form) = form.map_err(bad_form)?;
    let mut cart = Cart::from_jar(&jar);
    cart.set(product_id, form.quantity);
    Ok((store_cart(&state, jar, &cart), Redirect::to("/cart")).into_response())
}

pub async fn checkout(
    State(state): State<AppState>,
    jar: SignedCookieJar,
    form: Result<Form<Checkout>, FormRejection>,
) -> Result<Response, PageError> {
    let Form(form) = form.map_err(bad_form)?;
    let cart = Cart::from_jar(&jar);
    if cart.is_empty() {
        return Ok(Redirect::to("/cart").into_response());
    }
    // The form's key is one this storefront rendered (a UUID), from a session it made.
    let form_key = uuid::Uuid::try_parse(&form.idempotency_key)
        .map_err(|_| PageError::BadInput("That checkout form is not one of ours. Please open your cart and check out from there."))?;
    let session = Session::from_jar(&jar).ok_or(PageError::BadInput(
        "Your session has expired. Please open your cart and check out again.",
    ))?;
    match state
        .backend
        .place_order(cart.lines(), &session.scoped_key(&form_key))
        .await
    {
        Ok(order) => {
            let jar = store_cart(&state, jar, &Cart::default());
            Ok((jar, Redirect::to(&format!("/orders/{}", order.reference))).into_response())
        }
        // Out of stock and similar: show the cart again with the backend's explanation.
        Err(BackendError::Rejected {
            status, message, ..
        }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT);
            render_cart(&state, &cart, Some(message), status).await
        }
        // The backend no longer sells one of the products: keep the cart, say so.
        Err(BackendError::NotFound) => {
            let notice =
                "One of the products in your cart is no longer sold; remove it and try again.";
            render_cart(
                &state,
                &cart,
                Some(notice.to_owned()),
                StatusCode::NOT_FOUND,
            )
            .await
        }
        Err(other) => Err(other.into()),
    }
}
