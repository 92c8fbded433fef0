//! RED metrics for every route and the Prometheus `/metrics` endpoint.
//!
//! Each application owns its own [`Registry`] (several apps share a process in tests), adds
//! its business metrics to it, and serves it through [`metrics_route`].

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use axum::extract::MatchedPath;
use axum::http::Method;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, get};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Latency buckets in seconds, dense around the 300 ms product-read SLO.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    /// The route template (`/products/{id}`), never the raw path: one series per route.
    pub route: RouteLabel,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: &'static str,
    pub route: RouteLabel,
}

/// A request's method as a label: the standard methods by name, anything else `_OTHER` (as
/// OpenTelemetry's HTTP conventions name it), so a client inventing methods cannot add
/// series without bound.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// The route template a request matched, or `unmatched`. A matched one shares the
/// router's text, so labelling a request copies none; labels are equal when their text is.
#[derive(Clone, Debug)]
pub enum RouteLabel {
    Matched(MatchedPath),
    Named(&'static str),
}

impl RouteLabel {
    pub const UNMATCHED: Self = Self::Named("unmatched");

    pub fn as_str(&self) -> &str {
        match self {
            Self::Matched(path) => path.as_str(),
            Self::Named(name) => name,
        }
    }
}

impl PartialEq for RouteLabel {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for RouteLabel {}

impl Hash for RouteLabel {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl EncodeLabelValue for RouteLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        self.as_str().encode(encoder)
    }
}

/// The trace a latency observation came from: Grafana links exemplars to Tempo.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TraceExemplar {
    pub trace_id: String,
}

fn latency_histogram_with_exemplars() -> HistogramWithExemplars<TraceExemplar> {
    HistogramWithExemplars::new(LATENCY_BUCKETS.into_iter())
}

#[derive(Clone)]
pub struct HttpMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Family<
        RouteLabels,
        HistogramWithExemplars<TraceExemplar>,
        fn() -> HistogramWithExemplars<TraceExemplar>,
    >,
    pub in_flight: Gauge,
}

impl HttpMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram_with_exemplars),
            in_flight: Gauge::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests handled, by method, route template and status code",
            metrics.requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "HTTP request latency, by method and route template",
            Unit::Seconds,
            metrics.duration.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "HTTP requests currently being handled",
            metrics.in_flight.clone(),
        );
        metrics
    }
}

/// `GET /metrics` in the OpenMetrics text format (Prometheus scrapes it natively).
pub fn metrics_route<S: Clone + Send + Sync + 'static>(registry: Arc<Registry>) -> MethodRouter<S> {
    get(move || {
        let registry = Arc::clone(&registry);
        async move {
            let mut body = String::new();
            match prometheus_client::encoding::text::encode(&mut body, &registry) {
                Ok(()) => (
                    [(
                        CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    body,
                )
                    .into_response(),
                Err(err) => crate::error::ApiError::internal(anyhow::anyhow!(
                    "encoding metrics failed: {err}"
                ))
                .into_response(),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_methods_are_labelled_by_name_and_invented_ones_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        for invented in ["PURGE", "X-ANYTHING", "get"] {
            let method = Method::from_bytes(invented.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "_OTHER", "{invented}");
        }
    }

    /// A route label is its text, however it was made: the series a request counts into is
    /// the one a test or a dashboard names.
    #[test]
    fn route_labels_are_equal_and_written_by_their_text() {
        let mut registry = Registry::default();
        let metrics = HttpMetrics::register(&mut registry);
        let labels = |route| RequestLabels {
            method: "GET",
            route,
            status: 200,
        };
        metrics
            .requests
            .get_or_create(&labels(RouteLabel::Named("/products")))
            .inc();
        metrics
            .requests
            .get_or_create(&labels(RouteLabel::Named("/products")))
            .inc();
        metrics
            .requests
            .get_or_create(&labels(RouteLabel::UNMATCHED))
            .inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"http_requests_total{method="GET",route="/products",status="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"http_requests_total{method="GET",route="unmatched",status="200"} 1"#),
            "{text}"
        );
    }
}
