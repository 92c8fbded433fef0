//! Request input parsed into validated types once, at the edge. Handlers and queries only
//! ever see values that passed these rules; every rejection names the field and what is
//! allowed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use shopmicro_common::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProductId(i64);

impl ProductId {
    pub fn parse(raw: i64) -> Result<Self, ApiError> {
        if raw > 0 {
            Ok(Self(raw))
        } else {
            Err(ApiError::bad_request(
                "invalid_product_id",
                format!("product id must be a positive integer, got {raw}"),
            ))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

pub const MAX_PAGE_SIZE: i64 = 100;
pub const DEFAULT_PAGE_SIZE: i64 = 20;
const MAX_QUERY_CHARS: usize = 200;
const MAX_QUERY_TERMS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    Id,
    PriceAsc,
    PriceDesc,
    Name,
}

impl Sort {
    const ALLOWED: &'static str = "id, price_asc, price_desc, name";

    fn parse(raw: &str) -> Result<Self, ApiError> {
        match raw {
            "id" => Ok(Self::Id),
            "price_asc" => Ok(Self::PriceAsc),
            "price_desc" => Ok(Self::PriceDesc),
            "name" => Ok(Self::Name),
            _ => Err(ApiError::bad_request(
                "invalid_sort",
                format!("sort must be one of: {}", Self::ALLOWED),
            )),
        }
    }
}

/// `GET /products` query parameters as they arrive.
/// Unknown parameters are rejected: a misspelt `limt=5` must not silently mean 20.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProductListParams {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Opaque cursor from a previous page's `next_cursor`.
    #[param(pattern = r"^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
    /// Category slug, as listed by `GET /categories`.
    #[param(pattern = r"^[a-z0-9-]{0,64}$")]
    pub category: Option<String>,
    /// Words to search for in names and descriptions (prefix match).
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// One of `id` (default), `price_asc`, `price_desc`, `name`.
    #[param(pattern = r"^(id|price_asc|price_desc|name)$")]
    pub sort: Option<String>,
    /// Comma-separated product ids to fetch (at most 100), e.g. `3,17,42`.
    #[param(pattern = r"^[1-9][0-9]{0,17}(,[1-9][0-9]{0,17}){0,99}$")]
    pub ids: Option<String>,
}

/// Where the previous page ended, in the order the listing is sorted by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    pub sort: Sort,
    pub id: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub price_cents: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
}

impl Cursor {
    pub fn encode(&self) -> String {
        // Serialising a plain struct to JSON cannot fail.
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(raw: &str, sort: Sort) -> Result<Self, ApiError> {
        let invalid = || {
            ApiError::bad_request(
                "invalid_cursor",
                "cursor is not one this API issued; start again without it",
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        let complete = match cursor.sort {
            Sort::Id => true,
            Sort::PriceAsc | Sort::PriceDesc => cursor.price_cents.is_some(),
            Sort::Name => cursor.name.is_some(),
        };
        if !complete {
            return Err(invalid());
        }
        if cursor.sort != sort {
            return Err(ApiError::bad_request(
                "invalid_cursor",
                "cursor belongs to a different sort order; keep `sort` the same across pages",
            ));
        }
        Ok(cursor)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProductQuery {
    pub limit: i64,
    pub sort: Sort,
    pub after: Option<Cursor>,
    pub category: Option<String>,
    /// A `to_tsquery` expression built only from word characters, always bound as a
    /// parameter; `None` when there is nothing to search for.
    pub search: Option<String>,
    /// The user typed a query but it had no searchable words: the answer is empty.
    pub search_is_empty: bool,
    pub ids: Option<Vec<i64>>,
}

impl ProductQuery {
    pub fn parse(params: ProductListParams) -> Result<Self, ApiError> {
        let limit = params.limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_limit",
                format!("limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}"),
            ));
        }
        let sort = params
            .sort
            .as_deref()
            .map(Sort::parse)
            .transpose()?
            .unwrap_or(Sort::Id);
        let after = params
            .cursor
            .as_deref()
            .map(|raw| Cursor::decode(raw, sort))
            .transpose()?;
        let category = params.category.filter(|c| !c.is_empty());
        if let Some(category) = &category
            && (category.len() > 64
                || !category
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
        {
            return Err(ApiError::bad_request(
                "invalid_category",
                "category must be a slug (lowercase letters, digits and '-') as listed by GET /categories",
            ));
        }
        let (search, search_is_empty) = match params.q.as_deref().map(str::trim) {
            None | Some("") => (None, false),
            Some(q) if q.chars().count() > MAX_QUERY_CHARS => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("q must be at most {MAX_QUERY_CHARS} characters"),
                ));
            }
            Some(q) => {
                let search = prefix_tsquery(q);
                let empty = search.is_none();
                (search, empty)
            }
        };
        let ids = params.ids.as_deref().map(parse_ids).transpose()?;
        Ok(Self {
            limit,
            sort,
            after,
            category,
            search,
            search_is_empty,
            ids,
        })
    }
}

fn parse_ids(raw: &str) -> Result<Vec<i64>, ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "invalid_ids",
            format!("ids must be up to {MAX_PAGE_SIZE} comma-separated positive integers"),
        )
    };
    let ids = raw
        .split(',')
        .map(|id| id.trim().parse::<i64>().ok().filter(|id| *id > 0))
        .collect::<Option<Vec<i64>>>()
        .ok_or_else(invalid)?;
    if ids.is_empty() || ids.len() > MAX_PAGE_SIZE as usize {
        return Err(invalid());
    }
    Ok(ids)
}

/// `"usb  c-charger!"` → `"usb:* & c:* & charger:*"`. Every character that `to_tsquery`
/// treats as syntax is a separator here, so user input can only ever be search words.
fn prefix_tsquery(q: &str) -> Option<String> {
    let terms: Vec<String> = q
        .split(|c: char| !c.is_alphanumeric())
        .filter(|term| !term.is_empty())
        .take(MAX_QUERY_TERMS)
        .map(|term| format!("{}:*", term.to_lowercase()))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" & "))
}

/// `POST /orders` body.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    /// One line per product (a product may not appear twice).
    #[schema(min_items = 1, max_items = 50)]
    pub items: Vec<OrderLineRequest>,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLineRequest {
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "integral")]
    pub product_id: i64,
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(deserialize_with = "integral")]
    pub quantity: i64,
}

/// JSON has one number type: `3.0` is the integer 3 (as JSON Schema's `integer` says),
/// `3.5` is not.
fn integral<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(integer) = number.as_i64() {
        return Ok(integer);
    }
    match number.as_f64() {
        Some(float) if float.fract() == 0.0 && float.abs() < 9.0e15 => Ok(float as i64),
        _ => Err(serde::de::Error::custom(format!(
            "expected a whole number, got {number}"
        ))),
    }
}

pub const MAX_ORDER_LINES: usize = 50;
pub const MAX_LINE_QUANTITY: i64 = 1_000;

/// A validated order: lines sorted by product id (the order rows are locked in), no
/// duplicates, every quantity in range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub lines: Vec<(ProductId, i32)>,
}

impl NewOrder {
    pub fn parse(request: CreateOrderRequest) -> Result<Self, ApiError> {
        if request.items.is_empty() {
            return Err(ApiError::unprocessable(
                "invalid_items",
                "items must contain at least one line",
            ));
        }
        if request.items.len() > MAX_ORDER_LINES {
            return Err(ApiError::unprocessable(
                "invalid_items",
                format!("an order may have at most {MAX_ORDER_LINES} lines"),
            ));
        }
        let mut lines = Vec::with_capacity(request.items.len());
        for (index, line) in request.items.iter().enumerate() {
            let id = ProductId::parse(line.product_id).map_err(|_| {
                ApiError::unprocessable(
                    "invalid_product_id",
                    format!("items[{index}].product_id must be a positive integer"),
                )
            })?;
            if !(1..=MAX_LINE_QUANTITY).contains(&line.quantity) {
                return Err(ApiError::unprocessable(
                    "invalid_quantity",
                    format!(
                        "items[{index}].quantity must be between 1 and {MAX_LINE_QUANTITY}, got {}",
                        line.quantity
                    ),
                ));
            }
            // In range 1..=1000, so the conversion cannot fail.
            lines.push((id, line.quantity as i32));
        }
        lines.sort_by_key(|(id, _)| *id);
        if let Some(pair) = lines.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(ApiError::unprocessable(
                "duplicate_product",
                format!(
                    "product {} appears more than once; combine it into one line",
                    pair[0].0.get()
                ),
            ));
        }
        Ok(Self { lines })
    }

    /// Identifies the request's content, so a reused idempotency key with a different
    /// body is caught instead of silently answered with the wrong order.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        for (id, qty) in &self.lines {
            hasher.update(format!("{}x{};", id.get(), qty));
        }
        format!("{:x}", hasher.finalize())
    }
}

/// `Idempotency-Key` header: 1 to 255 visible ASCII characters.
pub fn parse_idempotency_key(raw: &[u8]) -> Result<String, ApiError> {
    let valid = !raw.is_empty() && raw.len() <= 255 && raw.iter().all(|b| b.is_ascii_graphic());
    if valid {
        Ok(String::from_utf8_lossy(raw).into_owned())
    } else {
        Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID works well)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(limit: Option<i64>, q: Option<&str>, sort: Option<&str>) -> ProductListParams {
        ProductListParams {
            limit,
            q: q.map(str::to_owned),
            sort: sort.map(str::to_owned),
            ..Default::default()
        }
    }

    #[test]
    fn limit_outside_the_documented_range_is_rejected_with_the_range() {
        for bad in [0, -1, 101, i64::MAX] {
            let err = ProductQuery::parse(params(Some(bad), None, None)).unwrap_err();
            assert_eq!(err.code(), "invalid_limit");
        }
        assert_eq!(
            ProductQuery::parse(params(None, None, None)).unwrap().limit,
            20
        );
    }

    #[test]
    fn ids_filter_accepts_only_positive_integer_lists() {
        assert_eq!(parse_ids("3, 17,42").unwrap(), vec![3, 17, 42]);
        for bad in ["", "1,,2", "a", "0", "-4", &"1,".repeat(101)] {
            assert_eq!(parse_ids(bad).unwrap_err().code(), "invalid_ids", "{bad}");
        }
    }

    #[test]
    fn hostile_search_strings_become_plain_prefix_terms() {
        assert_eq!(
            prefix_tsquery("'); DROP TABLE products;-- & !foo:*"),
            Some("drop:* & table:* & products:* & foo:*".to_owned())
        );
        assert_eq!(prefix_tsquery("&|!():*<->"), None);
        let query = ProductQuery::parse(params(None, Some("'||'"), None)).unwrap();
        assert!(query.search_is_empty);
    }

    #[test]
    fn cursor_round_trips_and_rejects_tampering_and_sort_changes() {
        let cursor = Cursor {
            sort: Sort::PriceAsc,
            id: 7,
            price_cents: Some(999),
            name: None,
        };
        let encoded = cursor.encode();
        assert_eq!(Cursor::decode(&encoded, Sort::PriceAsc).unwrap(), cursor);
        assert_eq!(
            Cursor::decode(&encoded, Sort::Name).unwrap_err().code(),
            "invalid_cursor"
        );
        assert_eq!(
            Cursor::decode("not-base64!", Sort::Id).unwrap_err().code(),
            "invalid_cursor"
        );
        let incomplete = Cursor {
            sort: Sort::Name,
            id: 1,
            price_cents: None,
            name: None,
        }
        .encode();
        assert!(Cursor::decode(&incomplete, Sort::Name).is_err());
    }

    #[test]
    fn order_lines_are_validated_and_sorted() {
        let line = |product_id, quantity| OrderLineRequest {
            product_id,
            quantity,
        };
        let order = NewOrder::parse(CreateOrderRequest {
            items: vec![line(9, 1), line(3, 2)],
        })
        .unwrap();
        assert_eq!(order.lines, vec![(ProductId(3), 2), (ProductId(9), 1)]);

        let cases = [
            (vec![], "invalid_items"),
            (vec![line(1, 0)], "invalid_quantity"),
            (vec![line(1, -5)], "invalid_quantity"),
            (vec![line(1, 1001)], "invalid_quantity"),
            (vec![line(0, 1)], "invalid_product_id"),
            (vec![line(2, 1), line(2, 3)], "duplicate_product"),
        ];
        for (items, code) in cases {
            assert_eq!(
                NewOrder::parse(CreateOrderRequest { items })
                    .unwrap_err()
                    .code(),
                code
            );
        }
    }

    #[test]
    fn integral_numbers_are_accepted_in_any_json_spelling() {
        let parse = |body: &str| {
            serde_json::from_str::<CreateOrderRequest>(body).map(|r| r.items[0].quantity)
        };
        assert_eq!(
            parse(r#"{"items":[{"product_id":1,"quantity":3}]}"#).unwrap(),
            3
        );
        assert_eq!(
            parse(r#"{"items":[{"product_id":1,"quantity":3.0}]}"#).unwrap(),
            3
        );
        assert!(parse(r#"{"items":[{"product_id":1,"quantity":3.5}]}"#).is_err());
        assert!(parse(r#"{"items":[{"product_id":1,"quantity":"3"}]}"#).is_err());
    }

    #[test]
    fn fingerprint_ignores_line_order_but_not_quantities() {
        let line = |product_id, quantity| OrderLineRequest {
            product_id,
            quantity,
        };
        let a = NewOrder::parse(CreateOrderRequest {
            items: vec![line(1, 1), line(2, 1)],
        })
        .unwrap();
        let b = NewOrder::parse(CreateOrderRequest {
            items: vec![line(2, 1), line(1, 1)],
        })
        .unwrap();
        let c = NewOrder::parse(CreateOrderRequest {
            items: vec![line(2, 2), line(1, 1)],
        })
        .unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn idempotency_keys_must_be_visible_ascii() {
        assert!(parse_idempotency_key(b"4b1f-order-1").is_ok());
        assert!(parse_idempotency_key(b"").is_err());
        assert!(parse_idempotency_key(b"has space").is_err());
        assert!(parse_idempotency_key(&[b'a'; 256]).is_err());
    }
}
