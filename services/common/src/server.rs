//! Serving with graceful shutdown: on SIGTERM or SIGINT drain, then return so the
//! process exits 0.
//!
//! From the signal on, a service is draining: `/readyz` answers 503 at once (so no load
//! balancer picks it again) and every answer closes its connection (so keep-alive clients
//! reconnect, to a successor), for `SHUTDOWN_LINGER_MS`; then it stops accepting and
//! lets in-flight requests finish. All of it within `SHUTDOWN_DEADLINE_MS`.
//!
//! A service listens twice: its public port serves what shoppers and other services
//! use, its admin port serves `/metrics` to Prometheus. Only the public port is behind
//! the Kubernetes Service (and so the Ingress); the admin port is reached by pod address,
//! which the NetworkPolicies open to Prometheus alone.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Poll, ready};
use std::time::Duration;

use anyhow::Context;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tower::make::Shared;
use tower::{Layer, Service};

use crate::config::ServerConfig;
use crate::error;
use crate::handover;
use crate::metrics::metrics_route;
use crate::observe::{ObserveLayer, Observer};

/// Finishes a JSON API router: 404/405 in the shared error shape, then [`observed`].
pub fn finish_api_router(router: Router, observer: Observer) -> Router {
    observed(
        router
            .fallback(error::route_not_found)
            .method_not_allowed_fallback(error::method_not_allowed),
        observer,
    )
}

/// Wraps a router (fallbacks included) in the tracing and metrics middleware.
pub fn observed(router: Router, observer: Observer) -> Router {
    router.layer(ObserveLayer::new(observer))
}

/// A service bound to its port but not yet serving: what every service's `Application`
/// has in common.
pub struct Server {
    listener: TcpListener,
    router: Router,
    port: u16,
    admin_listener: TcpListener,
    admin_port: u16,
    registry: Registry,
    shutdown_deadline: Duration,
    linger: Duration,
}

impl Server {
    /// Takes the sockets a supervisor passed (see [`handover`]), else binds
    /// `0.0.0.0:PORT` for `router` and `0.0.0.0:ADMIN_PORT` for the metrics in `registry`
    /// (port 0 picks a free port, as tests do).
    pub async fn bind(
        service: &'static str,
        config: &ServerConfig,
        router: Router,
        registry: Registry,
    ) -> anyhow::Result<Self> {
        let (listener, admin_listener) = match handover::inherited_listeners()? {
            Some((public, admin)) => (
                TcpListener::from_std(public)?,
                TcpListener::from_std(admin)?,
            ),
            None => (bind(config.port).await?, bind(config.admin_port).await?),
        };
        let port = listener.local_addr()?.port();
        let admin_port = admin_listener.local_addr()?.port();
        let runtime = tokio::runtime::Handle::current();
        tracing::info!(
            port,
            admin_port,
            worker_threads = runtime.metrics().num_workers(),
            runtime = crate::runtime::describe(&runtime),
            "{service} listening"
        );
        Ok(Self {
            listener,
            router,
            port,
            admin_listener,
            admin_port,
            registry,
            shutdown_deadline: config.shutdown_deadline,
            linger: config.linger,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// Serves until `shutdown` completes, then drains (see the module's notes). The admin
    /// port answers until the public one has drained, so the last scrape sees the drain.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let admin = Router::new()
            .route("/metrics", metrics_route(Arc::new(self.registry)))
            .fallback(error::route_not_found);
        let admin = tokio::spawn(async move { axum::serve(self.admin_listener, admin).await });
        let draining = Draining::default();
        let router = self.router;
        handover::notify_when_ready(router.clone());
        let drain = Drain {
            draining,
            linger: self.linger,
            deadline: self.shutdown_deadline,
        };
        let served = serve(self.listener, router, drain, shutdown).await;
        admin.abort();
        served
    }
}

/// Set once shutdown begins.
#[derive(Clone, Default)]
struct Draining(Arc<AtomicBool>);

/// While draining: readiness fails at once, and every other answer closes its connection.
/// A hand-written layer rather than `from_fn`, which boxes for every request (see
/// [`crate::observe::ObserveLayer`]).
impl<S> Layer<S> for Draining {
    type Service = DrainAware<S>;

    fn layer(&self, inner: S) -> DrainAware<S> {
        DrainAware {
            inner,
            draining: self.clone(),
        }
    }
}

#[derive(Clone)]
struct DrainAware<S> {
    inner: S,
    draining: Draining,
}

impl<S> Service<Request> for DrainAware<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = DrainAwareFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if !self.draining.0.load(Ordering::Relaxed) {
            return DrainAwareFuture::Serving {
                inner: self.inner.call(request),
            };
        }
        if request.uri().path() == "/readyz" {
            let body = axum::Json(serde_json::json!({"status": "draining"}));
            return DrainAwareFuture::NotReady {
                response: Some((StatusCode::SERVICE_UNAVAILABLE, body).into_response()),
            };
        }
        DrainAwareFuture::Closing {
            inner: self.inner.call(request),
        }
    }
}

pin_project! {
    #[project = DrainAwareProjection]
    enum DrainAwareFuture<F> {
        Serving { #[pin] inner: F },
        /// Answered with `Connection: close`.
        Closing { #[pin] inner: F },
        NotReady { response: Option<Response> },
    }
}

impl<F, E> Future for DrainAwareFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            DrainAwareProjection::Serving { inner } => inner.poll(cx),
            DrainAwareProjection::Closing { inner } => {
                let mut answer = ready!(inner.poll(cx));
                if let Ok(response) = &mut answer {
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Poll::Ready(answer)
            }
            DrainAwareProjection::NotReady { response } => Poll::Ready(Ok(response
                .take()
                .expect("a drain-aware future polled after it answered"))),
        }
    }
}

/// How a service drains: `linger` still accepting (answers close their connections),
/// everything over within `deadline` of the signal.
struct Drain {
    draining: Draining,
    linger: Duration,
    deadline: Duration,
}

async fn bind(port: u16) -> anyhow::Result<TcpListener> {
    TcpListener::bind(("0.0.0.0", port))
        .await
        .with_context(|| format!("binding port {port}"))
}

/// Serves until `shutdown` completes, then drains as `drain` says.
async fn serve(
    listener: TcpListener,
    router: Router,
    drain: Drain,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Drain {
        draining,
        linger,
        deadline,
    } = drain;
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let draining_from_signal = draining.clone();
    let signal = async move {
        shutdown.await;
        draining_from_signal.0.store(true, Ordering::Relaxed);
        // The deadline counts from the signal, lingering included.
        let _ = started_tx.send(());
        tracing::info!(
            linger_ms = linger.as_millis() as u64,
            deadline_ms = deadline.as_millis() as u64,
            "shutting down: not ready, closing connections after their answers, then draining in-flight requests"
        );
        tokio::time::sleep(linger.min(deadline)).await;
    };
    // Around the router, not a layer of it: `Router::layer` boxes the layer into every
    // route, and each box costs a clone and an allocation per request.
    let service = Shared::new(draining.layer(router));
    let serving = axum::serve(listener, service).with_graceful_shutdown(signal);
    let drain_deadline = async move {
        // If the sender is dropped without a signal, the server has already stopped.
        if started_rx.await.is_ok() {
            tokio::time::sleep(deadline).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = serving => {
            tracing::info!("shutdown complete");
            result
        }
        () = drain_deadline => {
            tracing::warn!("drain deadline passed with requests still in flight; exiting anyway");
            Ok(())
        }
    }
}

/// A future that completes on the first SIGTERM (Kubernetes) or SIGINT (Ctrl-C).
///
/// The handlers are installed when this is called, not when the future is first polled:
/// a SIGTERM that arrives between the port opening and the server's first poll would
/// otherwise meet the default action and kill the process instead of draining it. Call it
/// before the service announces its port.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            tokio::select! {
                () = next_signal(interrupt) => tracing::info!("received SIGINT"),
                () = next_signal(terminate) => tracing::info!("received SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("received Ctrl-C");
        }
    }
}

/// Completes when `stream` delivers; never, when its handler could not be installed.
#[cfg(unix)]
async fn next_signal(stream: Option<tokio::signal::unix::Signal>) {
    match stream {
        Some(mut stream) => {
            stream.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// Runs a service binary's async `main` on a runtime sized by [`crate::runtime`], fully
/// shut down before the telemetry guard drops (the OTLP exporter flushes with a blocking
/// client).
pub fn run_service<F, Fut>(service: &'static str, main: F) -> std::process::ExitCode
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let telemetry = match crate::telemetry::init(service) {
        Ok(guard) => guard,
        Err(err) => {
            eprintln!("{service}: {err:#}");
            return std::process::ExitCode::from(2);
        }
    };
    // A WORKER_THREADS that will not do is a configuration error like any other.
    let outcome = crate::runtime::worker_threads(&crate::config::Env::from_process())
        .map_err(anyhow::Error::from)
        .and_then(|threads| {
            crate::runtime::build(threads).context("starting the async runtime failed")
        })
        .and_then(|runtime| runtime.block_on(main()));
    let code = match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // One line naming the failure and its causes; config errors already say what to set.
            tracing::error!(error.chain = %format!("{err:#}"), "{service} stopped");
            eprintln!("{service}: {err:#}");
            std::process::ExitCode::from(1)
        }
    };
    drop(telemetry);
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The handlers exist from the call on: a SIGTERM sent before the future is first
    /// polled completes it. Were they installed on the first poll, the signal's default
    /// action would end this test process instead.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_sigterm_before_the_first_poll_is_caught_not_fatal() {
        let shutdown = shutdown_signal();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(5), shutdown)
            .await
            .expect("the SIGTERM sent before the first poll completes the future");
    }
}
