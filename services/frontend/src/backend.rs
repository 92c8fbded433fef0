//! Typed calls to the backend API, with every failure mapped to something a page can
//! explain: not found, rejected (with the backend's message), unavailable, too slow.

use serde::{Deserialize, Serialize};
use shopmicro_common::config::ServiceUrl;
use shopmicro_common::error::ErrorBody;
use shopmicro_common::http_client;

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub category: String,
    pub description: String,
    pub price_cents: i64,
    pub stock: i32,
}

#[derive(Debug, Deserialize)]
pub struct ProductPage {
    pub items: Vec<Product>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Category {
    pub slug: String,
    pub name: String,
    pub product_count: i64,
}

#[derive(Debug, Deserialize)]
pub struct Recommendations {
    pub source: String,
    pub items: Vec<Recommendation>,
}

#[derive(Debug, Deserialize)]
pub struct Recommendation {
    pub product: Product,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Order {
    /// The order's public reference (a UUID); internal ids never leave the backend.
    pub reference: String,
    pub status: String,
    pub items: Vec<OrderItem>,
    pub total_cents: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct OrderItem {
    pub product_id: i64,
    pub name: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("not found")]
    NotFound,
    /// The backend refused the request (4xx); the message is written for a person.
    #[error("rejected ({status}): {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    #[error("backend timed out")]
    Timeout,
    #[error("backend unavailable: {0}")]
    Unavailable(String),
}

#[derive(Clone)]
pub struct BackendClient {
    http: reqwest::Client,
    base: ServiceUrl,
}

#[derive(Debug, Default, Serialize)]
pub struct ListQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    /// Comma-separated product ids (the cart page loads its products in one call).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ids: Option<String>,
    pub limit: i64,
}

#[derive(Serialize)]
struct NewOrder {
    items: Vec<NewOrderLine>,
}

#[derive(Serialize)]
struct NewOrderLine {
    product_id: i64,
    quantity: i64,
}

impl BackendClient {
    pub fn new(base: ServiceUrl, timeout: std::time::Duration) -> Self {
        Self {
            http: shopmicro_common::http_client::client(timeout),
            base,
        }
    }

    pub async fn products(&self, query: &ListQuery) -> Result<ProductPage, BackendError> {
        self.send(self.http.get(self.base.join("/products")).query(query))
            .await
    }

    pub async fn product(&self, id: i64) -> Result<Product, BackendError> {
        self.send(self.http.get(self.base.join(&format!("/products/{id}"))))
            .await
    }

    pub async fn recommendations(&self, id: i64) -> Result<Recommendations, BackendError> {
        let url = self
            .base
            .join(&format!("/products/{id}/recommendations?limit=4"));
        self.send(self.http.get(url)).await
    }

    pub async fn categories(&self) -> Result<Vec<Category>, BackendError> {
        self.send(self.http.get(self.base.join("/categories")))
            .await
    }

    /// The catalogue's version (`GET /catalogue/version`), or `None` when the backend cannot
    /// say: it keeps no cache, its store is down, or it is older than the route.
    pub async fn catalogue_version(&self) -> Option<i64> {
        #[derive(serde::Deserialize)]
        struct Version {
            version: i64,
        }
        let request = self.http.get(self.base.join("/catalogue/version"));
        self.send::<Version>(request)
            .await
            .ok()
            .map(|answer| answer.version)
    }

    pub async fn place_order(
        &self,
        lines: impl Iterator<Item = (i64, u32)>,
        idempotency_key: &str,
    ) -> Result<Order, BackendError> {
        let body = NewOrder {
            items: lines
                .map(|(product_id, qty)| NewOrderLine {
                    product_id,
                    quantity: i64::from(qty),
                })
                .collect(),
        };
        let request = self
            .http
            .post(self.base.join("/orders"))
            .header("Idempotency-Key", idempotency_key)
            .json(&body);
        self.send(request).await
    }

    pub async fn order(&self, reference: &uuid::Uuid) -> Result<Order, BackendError> {
        self.send(
            self.http
                .get(self.base.join(&format!("/orders/{reference}"))),
        )
        .await
    }

    /// `/readyz` of the backend answered 200.
    pub async fn ready(&self) -> bool {
        let response = http_client::traced_get(&self.http, &self.base.join("/readyz")).await;
        matches!(response, Ok(response) if response.status().is_success())
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, BackendError> {
        let request = request.build().map_err(transport)?;
        let response = http_client::execute_traced(&self.http, request)
            .await
            .map_err(transport)?;
        let status = response.status();
        if status.is_success() {
            return response.json::<T>().await.map_err(transport);
        }
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(BackendError::NotFound);
        }
        if status.is_client_error() {
            let body = response.json::<ErrorBody>().await.map_err(transport)?;
            return Err(BackendError::Rejected {
                status: status.as_u16(),
                code: body.error.code,
                message: body.error.message,
            });
        }
        Err(BackendError::Unavailable(format!(
            "backend answered {status}"
        )))
    }
}

fn transport(err: reqwest::Error) -> BackendError {
    if err.is_timeout() {
        BackendError::Timeout
    } else {
        BackendError::Unavailable(err.without_url().to_string())
    }
}
