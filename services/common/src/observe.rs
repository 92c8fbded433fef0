//! The middleware every service runs on every request: a server span parented on the
//! caller's trace, RED metrics by route template, and one access-log line.
//!
//! With `access_log_every` above 1, one request in that many is sampled: it gets the span
//! and, if it succeeds, its line. The others get a disabled span, unless spans are being
//! exported: without an exporter a span exists only to give log lines their trace ids, and
//! building it cost a third of a cached listing's rate (RESULTS.md). A failure's line is
//! always written; outside a sampled request it carries no trace id.

use std::cell::Cell;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::response::Response;
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::Span;
use tracing::instrument::{Instrument, Instrumented};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use opentelemetry::trace::TraceContextExt;

use crate::metrics::{
    HttpMetrics, RequestLabels, RouteLabel, RouteLabels, TraceExemplar, method_label,
};

#[derive(Clone)]
pub struct Observer {
    pub service: &'static str,
    pub metrics: HttpMetrics,
    /// `ServerConfig::access_log_every`: the metrics count every request whatever it says.
    pub access_log_every: NonZeroU32,
    /// Spans leave the process ([`crate::telemetry::exporting`]), so every request gets one.
    pub exporting: bool,
}

thread_local! {
    /// Requests seen on this thread since its last sampled one: a counter per thread
    /// rather than one shared atomic both cores would fight over on every request.
    static SINCE_SAMPLED: Cell<u32> = const { Cell::new(0) };
}

/// Whether this request is the one in `every` that is sampled.
fn sampled(every: NonZeroU32) -> bool {
    if every == NonZeroU32::MIN {
        return true;
    }
    SINCE_SAMPLED.with(|since| {
        let seen = since.get() + 1;
        let sampled = seen >= every.get();
        since.set(if sampled { 0 } else { seen });
        sampled
    })
}

/// The request's server span at `$level` (the same fields whichever level).
macro_rules! request_span {
    ($level:expr, $service:expr, $method:expr, $route:expr) => {
        tracing::span!(
            $level,
            "http_request",
            service = $service,
            http.method = %$method,
            http.route = %$route,
            http.status_code = tracing::field::Empty,
            otel.name = %format!("{} {}", $method, $route),
            otel.kind = "server",
        )
    };
}

/// The observer as a layer: `Router::layer(ObserveLayer::new(observer))`, outermost, so it
/// also sees requests that no route matched. A hand-written service rather than
/// `axum::middleware::from_fn`, which clones and boxes the inner service and boxes a future
/// for every request (with the drain layer's, about 8 % of an uncached listing's
/// instructions, callgrind).
#[derive(Clone)]
pub struct ObserveLayer(Arc<Observer>);

impl ObserveLayer {
    pub fn new(observer: Observer) -> Self {
        Self(Arc::new(observer))
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observed<S>;

    fn layer(&self, inner: S) -> Observed<S> {
        Observed {
            inner,
            observer: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Observed<S> {
    inner: S,
    observer: Arc<Observer>,
}

impl<S> Service<Request> for Observed<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ObservedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let observation = Observation::begin(self.observer.clone(), &request);
        // Called inside the span too, so whatever the inner service starts belongs to it.
        let span = observation.span.clone();
        let inner = span.in_scope(|| self.inner.call(request)).instrument(span);
        ObservedFuture { inner, observation }
    }
}

pin_project! {
    /// The inner service's answer, recorded when it comes. Dropped before (the client went
    /// away), the request leaves the in-flight gauge and is not counted.
    pub struct ObservedFuture<F> {
        #[pin]
        inner: Instrumented<F>,
        observation: Observation,
    }
}

impl<F, E> Future for ObservedFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = ready!(this.inner.poll(cx));
        if let Ok(response) = &answer {
            this.observation.end(response.status());
        }
        Poll::Ready(answer)
    }
}

/// One request from its arrival to its answer; leaves the in-flight gauge when dropped.
struct Observation {
    observer: Arc<Observer>,
    method: &'static str,
    route: RouteLabel,
    sampled: bool,
    span: Span,
    started: Instant,
}

impl Observation {
    fn begin(observer: Arc<Observer>, request: &Request) -> Self {
        let method = method_label(request.method());
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or(RouteLabel::UNMATCHED, |matched| {
                RouteLabel::Matched(matched.clone())
            });
        let sampled = sampled(observer.access_log_every);
        let span: Span = if sampled || observer.exporting {
            request_span!(
                tracing::Level::INFO,
                observer.service,
                method,
                route.as_str()
            )
        } else {
            // Enabled only where debug logging is (then it costs what it always did).
            request_span!(
                tracing::Level::DEBUG,
                observer.service,
                method,
                route.as_str()
            )
        };
        if !span.is_disabled() {
            // A missing or malformed traceparent just starts a new trace.
            let _ = span.set_parent(crate::propagation::extract(request.headers()));
        }
        observer.metrics.in_flight.inc();
        Self {
            observer,
            method,
            route,
            sampled,
            span,
            started: Instant::now(),
        }
    }

    /// Counts the answer, times it and writes its access line.
    fn end(&self, status: StatusCode) {
        let elapsed = self.started.elapsed();
        let metrics = &self.observer.metrics;
        let span = &self.span;
        span.record("http.status_code", status.as_u16());
        metrics
            .requests
            .get_or_create(&RequestLabels {
                method: self.method,
                route: self.route.clone(),
                status: status.as_u16(),
            })
            .inc();
        // The exemplar ties this observation to its trace (only when the trace is real).
        let span_context = span.context().span().span_context().clone();
        let exemplar = span_context.is_valid().then(|| TraceExemplar {
            trace_id: span_context.trace_id().to_string(),
        });
        metrics
            .duration
            .get_or_create(&RouteLabels {
                method: self.method,
                route: self.route.clone(),
            })
            .observe(elapsed.as_secs_f64(), exemplar, None);

        span.in_scope(|| {
            let (status, latency_ms) = (status.as_u16(), elapsed.as_secs_f64() * 1000.0);
            let every = self.observer.access_log_every.get();
            // Probes arrive every few seconds; keep them out of the info stream (scrapes are
            // on the admin port, which is not observed).
            if matches!(self.route.as_str(), "/healthz" | "/readyz") {
                tracing::debug!(status, latency_ms, "request completed");
            } else if status >= 500 {
                tracing::warn!(status, latency_ms, "request completed");
            } else if status >= 400 {
                tracing::info!(status, latency_ms, "request completed");
            } else if every == 1 {
                tracing::info!(status, latency_ms, "request completed");
            } else if self.sampled {
                tracing::info!(
                    status,
                    latency_ms,
                    sampled_one_in = every,
                    "request completed"
                );
            }
        });
    }
}

impl Drop for Observation {
    fn drop(&mut self) {
        self.observer.metrics.in_flight.dec();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::Router;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use prometheus_client::registry::Registry;
    use tower::ServiceExt;
    use tracing_subscriber::filter::LevelFilter;
    use tracing_subscriber::layer::{Context, SubscriberExt};

    use super::*;

    /// An access line as written: its status, its `sampled_one_in` if any, and whether it
    /// was written inside the request's span (so with its trace ids).
    #[derive(Debug, PartialEq)]
    struct Line {
        status: u64,
        sampled_one_in: Option<u64>,
        in_span: bool,
    }

    fn line(status: u64, sampled_one_in: Option<u64>, in_span: bool) -> Line {
        Line {
            status,
            sampled_one_in,
            in_span,
        }
    }

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

    impl<S> tracing_subscriber::Layer<S> for Lines
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        fn on_event(&self, event: &tracing::Event<'_>, context: Context<'_, S>) {
            let mut fields = Fields::default();
            event.record(&mut fields);
            if let Some(status) = fields.status {
                let in_span = context.event_span(event).is_some();
                let line = line(status, fields.sampled_one_in, in_span);
                self.0.lock().unwrap().push(line);
            }
        }
    }

    /// The lines written for GETs of `paths`, at the `info` level services run at.
    async fn lines_for(observer: Observer, paths: &[&str]) -> Vec<Line> {
        let lines = Lines::default();
        let _logging = tracing::subscriber::set_default(
            tracing_subscriber::registry()
                .with(LevelFilter::INFO)
                .with(lines.clone()),
        );
        let router = Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route(
                "/broken",
                get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
            )
            .layer(ObserveLayer::new(observer));
        for path in paths {
            let request = axum::http::Request::get(*path).body(Body::empty()).unwrap();
            router.clone().oneshot(request).await.unwrap();
        }
        std::mem::take(&mut *lines.0.lock().unwrap())
    }

    fn observer(metrics: &HttpMetrics, exporting: bool) -> Observer {
        Observer {
            service: "test",
            metrics: metrics.clone(),
            access_log_every: NonZeroU32::new(3).unwrap(),
            exporting,
        }
    }

    // The test runtime is one thread, so the per-thread count sees every request.
    #[tokio::test]
    async fn one_request_in_n_is_spanned_and_logged_and_failures_are_always_logged() {
        let metrics = HttpMetrics::register(&mut Registry::default());
        let paths = [
            "/ok", "/ok", "/ok", "/missing", "/ok", "/ok", "/broken", "/ok", "/ok",
        ];
        assert_eq!(
            lines_for(observer(&metrics, false), &paths).await,
            [
                line(200, Some(3), true),
                line(404, None, false),
                line(200, Some(3), true),
                line(500, None, false),
                line(200, Some(3), true),
            ],
            "the 3rd, 6th and 9th requests are sampled; failures outside them have no span"
        );
        let successes = metrics
            .requests
            .get_or_create(&RequestLabels {
                method: "GET",
                route: RouteLabel::Named("/ok"),
                status: 200,
            })
            .get();
        assert_eq!(successes, 7, "the metrics count every request");

        // Spans that are exported exist for every request; the lines are sampled alike.
        assert_eq!(
            lines_for(observer(&metrics, true), &["/ok", "/missing", "/ok"]).await,
            [line(404, None, true), line(200, Some(3), true)],
        );
    }
}
