//! The catalogue: categories, search and pagination.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Html;
use axum_extra::extract::SignedCookieJar;
use serde::Deserialize;
use tera::Context;

use super::{AppState, ProductView, category_names};
use crate::backend::ListQuery;
use crate::cart::Cart;
use crate::pages::PageError;

const PAGE_SIZE: i64 = 24;

#[derive(Debug, Default, Deserialize)]
pub struct CatalogueQuery {
    category: Option<String>,
    q: Option<String>,
    cursor: Option<String>,
    sort: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    jar: SignedCookieJar,
    // A mangled query string shows the first page rather than an error.
    query: Result<Query<CatalogueQuery>, QueryRejection>,
) -> Result<Html<Bytes>, PageError> {
    let Query(query) = query.unwrap_or_default();
    let cart = Cart::from_jar(&jar);
    let non_empty = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());
    let list = ListQuery {
        category: non_empty(&query.category),
        q: non_empty(&query.q),
        cursor: non_empty(&query.cursor),
        sort: non_empty(&query.sort),
        ids: None,
        limit: PAGE_SIZE,
    };
    // Everything the page shows besides the catalogue; Debug quotes each part, so no two
    // queries share a key.
    let key = format!(
        "{} {:?} {:?} {:?} {:?}",
        cart.item_count(),
        list.category,
        list.q,
        list.cursor,
        list.sort
    );
    let page = state
        .catalogue_pages
        .page(key, || render(&state, &cart, &list))
        .await?;
    Ok(Html(page))
}

async fn render(state: &AppState, cart: &Cart, list: &ListQuery) -> Result<Bytes, PageError> {
    let (categories, page) = tokio::join!(state.backend.categories(), state.backend.products(list));
    let categories = categories?;
    let page = page?;
    let names = category_names(&categories);

    let heading = match (&list.q, &list.category) {
        (Some(q), _) => format!("Results for “{q}”"),
        (None, Some(slug)) => names.get(slug).cloned().unwrap_or_else(|| slug.clone()),
        (None, None) => "All products".to_owned(),
    };
    let next_page_url = page.next_cursor.as_ref().map(|cursor| {
        let mut url = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in [
            ("category", &list.category),
            ("q", &list.q),
            ("sort", &list.sort),
        ] {
            if let Some(value) = value {
                url.append_pair(key, value);
            }
        }
        url.append_pair("cursor", cursor);
        format!("/?{}", url.finish())
    });
    let products: Vec<ProductView> = page
        .items
        .into_iter()
        .map(|p| ProductView::new(p, &names))
        .collect();

    let mut context = Context::new();
    context.insert("heading", &heading);
    context.insert("categories", &categories);
    context.insert("active_category", &list.category);
    context.insert("search_q", &list.q);
    context.insert("products", &products);
    context.insert("next_page_url", &next_page_url);
    let Html(page) = state.render("catalogue.html", cart, context)?;
    Ok(Bytes::from(page))
}
