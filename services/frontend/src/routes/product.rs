//! The product page, with recommendations from the backend.

use axum::extract::{Path, State};
use axum::response::Html;
use axum_extra::extract::SignedCookieJar;
use tera::Context;

use super::{AppState, ProductView, category_names, page_id};
use crate::cart::{Cart, MAX_QUANTITY};
use crate::pages::PageError;

pub async fn page(
    State(state): State<AppState>,
    jar: SignedCookieJar,
    Path(raw_id): Path<String>,
) -> Result<Html<String>, PageError> {
    let id = page_id(&raw_id, "We couldn't find that product.")?;
    let cart = Cart::from_jar(&jar);
    let (product, recommendations, categories) = tokio::join!(
        state.backend.product(id),
        state.backend.recommendations(id),
        state.backend.categories(),
    );
    let product = product.map_err(PageError::from)?;
    let names = category_names(&categories.unwrap_or_default());
    // Recommendations are a nice-to-have: the page renders without them.
    let (source, recommended) = match recommendations {
        Ok(recs) => (
            recs.source,
            recs.items
                .into_iter()
                .map(|r| ProductView::new(r.product, &names))
                .collect(),
        ),
        Err(err) => {
            tracing::warn!(error = %err, "recommendations unavailable; rendering without them");
            ("none".to_owned(), Vec::new())
        }
    };

    let mut context = Context::new();
    context.insert("product", &ProductView::new(product, &names));
    context.insert("recommendations", &recommended);
    context.insert("recommendation_source", &source);
    context.insert("max_quantity", &MAX_QUANTITY);
    state.render("product.html", &cart, context)
}
