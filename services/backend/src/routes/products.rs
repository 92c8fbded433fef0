//! Catalogue reads: listing with filters, search, sorting and keyset pagination; single
//! products; categories. Every answer goes through the catalogue cache as the JSON it is
//! sent as, so a cached answer costs no serialisation either.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use shopmicro_common::error::{ApiError, ApiPath, ApiQuery, ErrorBody};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, Type};
use tracing::Instrument;

use super::{AppState, listing_json};
use crate::db;
use crate::db::reads::{Reads, Sql};
use crate::domain::{Cursor, ProductId, ProductListParams, ProductQuery, Sort};

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Product {
    pub id: i64,
    pub name: String,
    /// Category slug.
    pub category: String,
    pub description: String,
    pub price_cents: i64,
    pub stock: i32,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProductPage {
    pub items: Vec<Product>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Category {
    pub slug: String,
    pub name: String,
    pub product_count: i64,
}

impl Category {
    /// A row of slug, name, product count, in that order.
    fn from_row(row: &Row) -> Result<Self, ApiError> {
        decoded(|| {
            Ok(Self {
                slug: row.try_get(0)?,
                name: row.try_get(1)?,
                product_count: row.try_get(2)?,
            })
        })
    }
}

/// A row decoded by `decode`; a column of an unexpected type is a fault of ours (500).
fn decoded<T>(decode: impl FnOnce() -> Result<T, tokio_postgres::Error>) -> Result<T, ApiError> {
    decode().map_err(ApiError::internal)
}

/// A text column's bytes as PostgreSQL sent them, not yet checked to be UTF-8. A listing
/// checks them in the same pass that looks for bytes to escape ([`super::listing_json`]):
/// checking every string once more on the way in cost about 4 % of an uncached listing on
/// one thread (perf). tokio-postgres's `&str` checks each value as it decodes it.
#[derive(Clone, Copy)]
pub(super) struct RawText<'r>(pub(super) &'r [u8]);

impl<'r> FromSql<'r> for RawText<'r> {
    fn from_sql(_: &Type, raw: &'r [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self(raw))
    }

    /// Exactly the column types `&str` takes.
    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty)
    }
}

impl<'r> RawText<'r> {
    pub(super) fn as_str(self) -> Result<&'r str, NotUtf8> {
        std::str::from_utf8(self.0).map_err(NotUtf8)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the database sent a product's text that is not UTF-8")]
pub(super) struct NotUtf8(#[source] std::str::Utf8Error);

/// Text that is not UTF-8 is a fault of the database's, not the client's (500).
impl From<NotUtf8> for ApiError {
    fn from(err: NotUtf8) -> Self {
        ApiError::internal(err)
    }
}

/// A [`Product`] borrowed from the row PostgreSQL sent, so a listing is written straight
/// from the rows without copying every string first ([`super::listing_json`], which writes
/// the same JSON as `ProductPage`; its tests hold the two together).
pub(super) struct ListedProduct<'r> {
    pub(super) id: i64,
    pub(super) name: RawText<'r>,
    pub(super) category: RawText<'r>,
    pub(super) description: RawText<'r>,
    pub(super) price_cents: i64,
    pub(super) stock: i32,
}

impl<'r> ListedProduct<'r> {
    /// A row of `select_products!`'s columns, in that order.
    fn from_row(row: &'r Row) -> Result<Self, ApiError> {
        decoded(|| {
            Ok(Self {
                id: row.try_get(0)?,
                name: row.try_get(1)?,
                category: row.try_get(2)?,
                description: row.try_get(3)?,
                price_cents: row.try_get(4)?,
                stock: row.try_get(5)?,
            })
        })
    }

    /// The field names, punctuation and numbers take under 100 bytes; the strings may grow
    /// a little when escaped.
    fn json_len_estimate(&self) -> usize {
        let text = self.name.0.len() + self.category.0.len() + self.description.0.len();
        100 + text * 9 / 8
    }

    pub(super) fn to_product(&self) -> Result<Product, ApiError> {
        Ok(Product {
            id: self.id,
            name: self.name.as_str()?.to_owned(),
            category: self.category.as_str()?.to_owned(),
            description: self.description.as_str()?.to_owned(),
            price_cents: self.price_cents,
            stock: self.stock,
        })
    }
}

impl Product {
    fn from_row(row: &Row) -> Result<Self, ApiError> {
        ListedProduct::from_row(row)?.to_product()
    }
}

/// `SELECT <a product's columns> FROM products <rest>`, as one literal: the text is built
/// at compile time, not on every read.
macro_rules! select_products {
    ($rest:literal) => {
        concat!(
            "SELECT id, name, category, description, price_cents, stock FROM products ",
            $rest
        )
    };
}

/// List products.
#[utoipa::path(get, path = "/products", tag = "products", params(ProductListParams), responses(
    (status = 200, body = ProductPage),
    (status = 400, description = "invalid limit, sort, cursor, category or q", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ProductListParams>,
) -> Result<Response, ApiError> {
    let query = ProductQuery::parse(params)?;
    if query.search_is_empty {
        return json(&ProductPage {
            items: Vec::new(),
            next_cursor: None,
        })
        .map(answer);
    }
    // The parsed query names everything the page depends on; its JSON is the cache key.
    let key = || {
        let query = serde_json::to_string(&query).map_err(ApiError::internal)?;
        Ok(format!("products:{query}"))
    };
    let page = state
        .catalogue
        .read(key, || async {
            load_page(&state.reads, &query).await.map(Some)
        })
        .await?;
    present(page, "a listing")
}

/// The page's JSON, as it is sent.
async fn load_page(reads: &Reads, query: &ProductQuery) -> Result<Bytes, ApiError> {
    // One extra row tells us whether there is a next page.
    let fetch_limit = query.limit + 1;
    let rows = list_query(query, &fetch_limit)
        .fetch(reads, usize::try_from(fetch_limit).unwrap_or(0))
        .instrument(db::span("SELECT products page"))
        .await?;
    // Sized up front: collecting `Result`s gives the Vec no size to start from.
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        items.push(ListedProduct::from_row(row)?);
    }
    let has_more = items.len() as i64 > query.limit;
    items.truncate(query.limit as usize);
    let next_cursor = match items.last() {
        Some(last) if has_more => Some(cursor_after(query.sort, last)?.encode()),
        _ => None,
    };
    let capacity = 64
        + items
            .iter()
            .map(ListedProduct::json_len_estimate)
            .sum::<usize>();
    let mut out = Vec::with_capacity(capacity);
    listing_json::page(&items, next_cursor.as_deref(), &mut out)?;
    Ok(Bytes::from(out))
}

fn json(value: &impl Serialize) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(ApiError::internal)
}

/// An answer that exists whatever the catalogue holds (an empty list is still a list).
fn present(body: Option<Bytes>, what: &str) -> Result<Response, ApiError> {
    body.map(answer)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("{what} came back missing")))
}

fn answer(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Every value is bound as a parameter; only fixed SQL fragments chosen by `Sort` are
/// pushed as text.
fn list_query<'a>(query: &'a ProductQuery, fetch_limit: &'a i64) -> Sql<'a> {
    let mut sql = Sql::new(select_products!("WHERE TRUE"));
    if let Some(category) = &query.category {
        sql.push(" AND category = ").bind(category);
    }
    if let Some(ids) = &query.ids {
        sql.push(" AND id = ANY(").bind(ids).push(")");
    }
    if let Some(search) = &query.search {
        sql.push(" AND search_vector @@ to_tsquery('english', ")
            .bind(search)
            .push(")");
    }
    if let Some(after) = &query.after {
        match query.sort {
            Sort::Id => {
                sql.push(" AND id > ").bind(&after.id);
            }
            Sort::PriceAsc => {
                sql.push(" AND (price_cents, id) > (")
                    .bind(&after.price_cents)
                    .push(", ")
                    .bind(&after.id)
                    .push(")");
            }
            Sort::PriceDesc => {
                sql.push(" AND (price_cents < ")
                    .bind(&after.price_cents)
                    .push(" OR (price_cents = ")
                    .bind(&after.price_cents)
                    .push(" AND id > ")
                    .bind(&after.id)
                    .push("))");
            }
            Sort::Name => {
                sql.push(" AND (name, id) > (")
                    .bind(&after.name)
                    .push(", ")
                    .bind(&after.id)
                    .push(")");
            }
        }
    }
    sql.push(match query.sort {
        Sort::Id => " ORDER BY id",
        Sort::PriceAsc => " ORDER BY price_cents, id",
        Sort::PriceDesc => " ORDER BY price_cents DESC, id",
        Sort::Name => " ORDER BY name, id",
    });
    sql.push(" LIMIT ").bind(fetch_limit);
    sql
}

fn cursor_after(sort: Sort, last: &ListedProduct) -> Result<Cursor, ApiError> {
    let name = match sort {
        Sort::Name => Some(last.name.as_str()?.to_owned()),
        Sort::Id | Sort::PriceAsc | Sort::PriceDesc => None,
    };
    Ok(Cursor {
        sort,
        id: last.id,
        price_cents: matches!(sort, Sort::PriceAsc | Sort::PriceDesc).then_some(last.price_cents),
        name,
    })
}

/// Get one product.
#[utoipa::path(get, path = "/products/{id}", tag = "products",
    params(("id" = i64, Path, description = "Product id", minimum = 1)),
    responses((status = 200, body = Product), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(raw_id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    let id = ProductId::parse(raw_id)?;
    Ok(answer(find_json(&state, id).await?))
}

/// A product through the cache; 404 when it does not exist.
pub async fn find(state: &AppState, id: ProductId) -> Result<Product, ApiError> {
    serde_json::from_slice(&find_json(state, id).await?).map_err(ApiError::internal)
}

async fn find_json(state: &AppState, id: ProductId) -> Result<Bytes, ApiError> {
    let product = state
        .catalogue
        .read(
            || Ok(format!("product:{}", id.get())),
            || async {
                fetch(&state.reads, id)
                    .await?
                    .as_ref()
                    .map(json)
                    .transpose()
            },
        )
        .await?;
    product.ok_or_else(|| {
        ApiError::not_found(
            "product_not_found",
            format!("product {} does not exist", id.get()),
        )
    })
}

async fn fetch(reads: &Reads, id: ProductId) -> Result<Option<Product>, ApiError> {
    let rows = reads
        .query(select_products!("WHERE id = $1"), &[&id.get()])
        .instrument(db::span("SELECT product"))
        .await?;
    rows.first().map(Product::from_row).transpose()
}

/// Products by id in one query, in the order of `ids`, skipping ids that do not exist.
pub async fn fetch_many(reads: &Reads, ids: &[i64]) -> Result<Vec<Product>, ApiError> {
    let rows = reads
        .query(select_products!("WHERE id = ANY($1)"), &[&ids])
        .instrument(db::span("SELECT products by id"))
        .await?;
    let found = rows
        .iter()
        .map(Product::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ids
        .iter()
        .filter_map(|id| found.iter().find(|p| p.id == *id).cloned())
        .collect())
}

/// List categories with how many products each has.
#[utoipa::path(get, path = "/categories", tag = "products", responses((status = 200, body = [Category])))]
pub async fn categories(State(state): State<AppState>) -> Result<Response, ApiError> {
    let categories = state
        .catalogue
        .read(
            || Ok("categories".to_owned()),
            || load_categories(&state.reads),
        )
        .await?;
    present(categories, "the categories")
}

/// The categories' JSON, as it is sent.
async fn load_categories(reads: &Reads) -> Result<Option<Bytes>, ApiError> {
    let rows = reads
        .query(
            "SELECT c.slug, c.name, count(p.id) AS product_count
             FROM categories c LEFT JOIN products p ON p.category = c.slug
             GROUP BY c.slug, c.name ORDER BY c.name",
            &[],
        )
        .instrument(db::span("SELECT categories"))
        .await?;
    let categories = rows
        .iter()
        .map(Category::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    json(&categories).map(Some)
}

/// The catalogue's version now: a client that caches what it makes of the catalogue (the
/// storefront's pages) keys it by this, so any change to products or categories retires it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CatalogueVersion {
    pub version: i64,
}

#[utoipa::path(get, path = "/catalogue/version", tag = "products", responses(
    (status = 200, body = CatalogueVersion),
    (status = 503, description = "the backend caches nothing, or could not read the version", body = ErrorBody)))]
pub async fn catalogue_version(State(state): State<AppState>) -> Result<Response, ApiError> {
    match state.catalogue.version().await {
        Some(version) => json(&CatalogueVersion { version }).map(answer),
        None => Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "catalogue_version_unknown",
            "the catalogue's version is not kept here (no cache) or could not be read; do not cache",
        )),
    }
}
