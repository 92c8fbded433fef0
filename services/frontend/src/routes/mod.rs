//! Storefront pages, one module per page family.

pub mod cart;
pub mod catalogue;
pub mod health;
pub mod orders;
pub mod product;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::FromRef;
use axum::response::Html;
use axum_extra::extract::cookie::Key;
use serde::Serialize;
use tera::{Context, Tera};

use crate::backend::{BackendClient, Category, Product};
use crate::cart::Cart;
use crate::catalogue_pages::CataloguePages;
use crate::pages::{PageError, money};

/// What every page shares. axum clones the state for every request, so it is one `Arc`
/// rather than its parts (the backend client's URL alone is an allocation per clone).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub backend: BackendClient,
    pub catalogue_pages: CataloguePages,
    pub templates: Arc<Tera>,
    pub cookie_key: Key,
    pub secure_cookies: bool,
}

impl FromRef<AppState> for Key {
    fn from_ref(state: &AppState) -> Key {
        state.cookie_key.clone()
    }
}

impl Shared {
    /// Renders a page; `cart` fills the header's item count.
    pub fn render(
        &self,
        template: &str,
        cart: &Cart,
        mut context: Context,
    ) -> Result<Html<String>, PageError> {
        context.insert("cart_count", &cart.item_count());
        Ok(Html(self.templates.render(template, &context)?))
    }
}

/// A positive id from a page path; anything else is a page that does not exist.
pub fn page_id(raw: &str, not_found: &'static str) -> Result<i64, PageError> {
    raw.parse()
        .ok()
        .filter(|id| *id > 0)
        .ok_or(PageError::NotFound(not_found))
}

/// A product as the templates show it: money formatted, category named.
#[derive(Debug, Serialize)]
pub struct ProductView {
    pub id: i64,
    pub name: String,
    pub category: String,
    pub category_name: String,
    pub description: String,
    pub price: String,
    pub stock: i32,
    pub in_stock: bool,
}

pub fn category_names(categories: &[Category]) -> HashMap<String, String> {
    categories
        .iter()
        .map(|c| (c.slug.clone(), c.name.clone()))
        .collect()
}

impl ProductView {
    pub fn new(product: Product, names: &HashMap<String, String>) -> Self {
        Self {
            category_name: names
                .get(&product.category)
                .cloned()
                .unwrap_or_else(|| product.category.clone()),
            price: money(product.price_cents),
            in_stock: product.stock > 0,
            id: product.id,
            name: product.name,
            category: product.category,
            description: product.description,
            stock: product.stock,
        }
    }
}
