//! Calls to the ml service. Every way it can go wrong (slow, down, an error status,
//! garbage) is a distinct [`MlError`], so the caller can fall back and say why.

use std::time::{Duration, Instant};

use serde::Deserialize;
use shopmicro_common::config::ServiceUrl;
use shopmicro_common::http_client;

use crate::domain::ProductId;
use crate::metrics::BackendMetrics;

#[derive(Clone)]
pub struct MlClient {
    http: reqwest::Client,
    base: ServiceUrl,
    metrics: BackendMetrics,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub product_id: i64,
    pub score: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum MlError {
    #[error("ml service timed out")]
    Timeout,
    #[error("ml service unreachable")]
    Unreachable,
    #[error("ml service answered {0}")]
    Status(u16),
    #[error("ml service answered something that is not a recommendation list")]
    Garbage,
}

impl MlError {
    /// Short reason for the response's `fallback_reason` and for logs.
    pub fn reason(&self) -> &'static str {
        match self {
            MlError::Timeout => "ml_timeout",
            MlError::Unreachable => "ml_unavailable",
            MlError::Status(_) => "ml_error",
            MlError::Garbage => "ml_invalid_response",
        }
    }
}

#[derive(Deserialize)]
struct MlResponse {
    recommendations: Vec<MlItem>,
}

#[derive(Deserialize)]
struct MlItem {
    product_id: i64,
    score: f64,
}

impl MlClient {
    pub fn new(base: ServiceUrl, timeout: Duration, metrics: BackendMetrics) -> Self {
        Self {
            http: http_client::client(timeout),
            base,
            metrics,
        }
    }

    pub async fn recommend(&self, product: ProductId, k: i64) -> Result<Vec<Scored>, MlError> {
        let started = Instant::now();
        let result = self.call(product, k).await;
        self.metrics
            .ml_request_duration
            .observe(started.elapsed().as_secs_f64());
        result
    }

    async fn call(&self, product: ProductId, k: i64) -> Result<Vec<Scored>, MlError> {
        let url = self.base.join(&format!(
            "/recommendations?product_id={}&k={k}",
            product.get()
        ));
        let response = http_client::traced_get(&self.http, &url)
            .await
            .map_err(classify)?;
        let status = response.status();
        if !status.is_success() {
            return Err(MlError::Status(status.as_u16()));
        }
        let body: MlResponse = response.json().await.map_err(|err| {
            if err.is_timeout() {
                MlError::Timeout
            } else {
                MlError::Garbage
            }
        })?;
        let valid = body
            .recommendations
            .iter()
            .all(|item| item.product_id > 0 && item.score.is_finite());
        if !valid {
            return Err(MlError::Garbage);
        }
        Ok(body
            .recommendations
            .into_iter()
            .map(|item| Scored {
                product_id: item.product_id,
                score: item.score,
            })
            .collect())
    }
}

fn classify(err: reqwest::Error) -> MlError {
    if err.is_timeout() {
        MlError::Timeout
    } else {
        MlError::Unreachable
    }
}
