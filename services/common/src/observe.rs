//! The middleware every service runs on every request: a server span parented on the
//! caller's trace, RED metrics by route template, and one access-log line.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use opentelemetry::trace::TraceContextExt;

use crate::metrics::{HttpMetrics, RequestLabels, RouteLabels, TraceExemplar};

#[derive(Clone)]
pub struct Observer {
    pub service: &'static str,
    pub metrics: HttpMetrics,
}

/// Decrements the in-flight gauge even when the client disconnects mid-request.
struct InFlight<'a>(&'a HttpMetrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

/// Use with `axum::middleware::from_fn_with_state(Arc::new(observer), observe)` as the outermost
/// `Router::layer`, so it also sees requests that no route matched.
pub async fn observe(
    State(observer): State<Arc<Observer>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|matched| matched.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!(
        "http_request",
        service = observer.service,
        http.method = %method,
        http.route = %route,
        http.status_code = tracing::field::Empty,
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
    );
    // A missing or malformed traceparent just starts a new trace.
    let _ = span.set_parent(crate::propagation::extract(request.headers()));

    let started = Instant::now();
    observer.metrics.in_flight.inc();
    let _in_flight = InFlight(&observer.metrics);
    let response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();

    let status = response.status();
    span.record("http.status_code", status.as_u16());
    observer
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            method: method.clone(),
            route: route.clone(),
            status: status.as_u16().to_string(),
        })
        .inc();
    // The exemplar ties this observation to its trace (only when the trace is real).
    let span_context = span.context().span().span_context().clone();
    let exemplar = span_context.is_valid().then(|| TraceExemplar {
        trace_id: span_context.trace_id().to_string(),
    });
    observer
        .metrics
        .duration
        .get_or_create(&RouteLabels {
            method,
            route: route.clone(),
        })
        .observe(elapsed.as_secs_f64(), exemplar, None);

    span.in_scope(|| {
        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        // Probes arrive every few seconds; keep them out of the info stream (scrapes are on
        // the admin port, which is not observed).
        if matches!(route.as_str(), "/healthz" | "/readyz") {
            tracing::debug!(status = status.as_u16(), latency_ms, "request completed");
        } else if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), latency_ms, "request completed");
        } else {
            tracing::info!(status = status.as_u16(), latency_ms, "request completed");
        }
    });
    response
}
