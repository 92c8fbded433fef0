//! The middleware every service runs on every request: a server span parented on the
//! caller's trace, RED metrics by route template, and one access-log line (for one in
//! `access_log_every` successes; every failure).

use std::cell::Cell;
use std::num::NonZeroU32;
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
    /// `ServerConfig::access_log_every`: the metrics count every request whatever it says.
    pub access_log_every: NonZeroU32,
}

thread_local! {
    /// Successes seen on this thread since its last written line: a counter per thread
    /// rather than one shared atomic both cores would fight over on every request.
    static SUCCESSES_UNLOGGED: Cell<u32> = const { Cell::new(0) };
}

/// Whether this success is the one in `every` whose line is written.
fn sampled(every: NonZeroU32) -> bool {
    SUCCESSES_UNLOGGED.with(|unlogged| {
        let seen = unlogged.get() + 1;
        let write = seen >= every.get();
        unlogged.set(if write { 0 } else { seen });
        write
    })
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
        } else if status.is_client_error() {
            tracing::info!(status = status.as_u16(), latency_ms, "request completed");
        } else if observer.access_log_every == NonZeroU32::MIN {
            tracing::info!(status = status.as_u16(), latency_ms, "request completed");
        } else if sampled(observer.access_log_every) {
            tracing::info!(
                status = status.as_u16(),
                latency_ms,
                sampled_one_in = observer.access_log_every.get(),
                "request completed"
            );
        }
    });
    response
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::Router;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::middleware::from_fn_with_state;
    use axum::routing::get;
    use prometheus_client::registry::Registry;
    use tower::ServiceExt;
    use tracing_subscriber::layer::{Context, SubscriberExt};

    use super::*;

    /// An access line as written: its status and its `sampled_one_in`, if any.
    type Line = (u64, Option<u64>);

    /// Each access line written.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<Line>>>);

    #[derive(Default)]
    struct Fields {
        status: Option<u64>,
        sampled_one_in: Option<u64>,
    }

    impl tracing::field::Visit for Fields {
        fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
            match field.name() {
                "status" => self.status = Some(value),
                "sampled_one_in" => self.sampled_one_in = Some(value),
                _ => {}
            }
        }

        fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Lines {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            let mut fields = Fields::default();
            event.record(&mut fields);
            if let Some(status) = fields.status {
                self.0.lock().unwrap().push((status, fields.sampled_one_in));
            }
        }
    }

    #[tokio::test]
    async fn successes_are_sampled_one_in_n_and_failures_always_written() {
        let lines = Lines::default();
        let _logging =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(lines.clone()));
        let metrics = HttpMetrics::register(&mut Registry::default());
        let observer = Observer {
            service: "test",
            metrics: metrics.clone(),
            access_log_every: NonZeroU32::new(3).unwrap(),
        };
        let router = Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route(
                "/broken",
                get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
            )
            .layer(from_fn_with_state(Arc::new(observer), observe));
        // The test runtime is one thread, so the per-thread count sees every request.
        for path in [
            "/ok", "/ok", "/missing", "/ok", "/ok", "/broken", "/ok", "/ok",
        ] {
            let request = axum::http::Request::get(path).body(Body::empty()).unwrap();
            router.clone().oneshot(request).await.unwrap();
        }
        assert_eq!(
            *lines.0.lock().unwrap(),
            [(404, None), (200, Some(3)), (500, None), (200, Some(3))],
            "the 3rd and 6th of six successes, and every failure"
        );
        let successes = metrics
            .requests
            .get_or_create(&RequestLabels {
                method: "GET".into(),
                route: "/ok".into(),
                status: "200".into(),
            })
            .get();
        assert_eq!(successes, 6, "the metrics count every request");
    }
}
