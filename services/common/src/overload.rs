//! What a service does when asked for more than it can give. Requests beyond a limit in
//! flight are shed at once — 503 with `Retry-After` — instead of queueing until memory or
//! latency gives; a request that runs past its deadline is answered 503 and dropped; and
//! request bodies are capped. Built from tower's layers (a global concurrency limit, load
//! shedding, a timeout) and axum's body limit, applied to a service's API routes only:
//! health checks and metrics keep answering under overload, so an orchestrator does not
//! kill or stop watching a pod that is merely busy.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::load_shed::error::Overloaded;
use tower::timeout::TimeoutLayer;
use tower::timeout::error::Elapsed;
use tower::{BoxError, ServiceBuilder};

use crate::config::{ConfigError, Env};
use crate::error::ApiError;

/// How much a service takes on at once.
#[derive(Debug, Clone)]
pub struct Limits {
    /// API requests in flight at most; more are shed.
    pub max_in_flight: usize,
    /// How long an API request may take before it is answered 503 and dropped.
    pub request_timeout: Duration,
    /// The largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_in_flight: 512,
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 64 * 1024,
        }
    }
}

impl Limits {
    /// `MAX_IN_FLIGHT`, `REQUEST_TIMEOUT_MS` and `MAX_BODY_BYTES`, else the defaults.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let default = Self::default();
        Ok(Self {
            max_in_flight: env.or_default(
                "MAX_IN_FLIGHT",
                "a whole number of requests",
                default.max_in_flight,
            )?,
            request_timeout: env.millis_or("REQUEST_TIMEOUT_MS", default.request_timeout)?,
            max_body_bytes: env.or_default(
                "MAX_BODY_BYTES",
                "a whole number of bytes",
                default.max_body_bytes,
            )?,
        })
    }
}

/// `routes` (the API, registered so far) behind the limits; routes added afterwards
/// (health, metrics) are not limited.
pub fn protect<S>(routes: Router<S>, limits: &Limits) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    // One semaphore for every route: the limit is the service's, not each route's.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(limits.max_in_flight));
    // One `route_layer`: axum boxes each layer it applies, and clones the box per request.
    let stack = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(answer))
        .layer(LoadShedLayer::new())
        .layer(GlobalConcurrencyLimitLayer::with_semaphore(in_flight))
        .layer(TimeoutLayer::new(limits.request_timeout))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes));
    routes.route_layer(stack)
}

/// The answer to a request the limits turned away.
async fn answer(err: BoxError) -> Response {
    if err.is::<Overloaded>() {
        let mut response = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the service is at capacity; retry shortly",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        response
    } else if err.is::<Elapsed>() {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "request_timeout",
            "the request took longer than the service allows; retry shortly",
        )
        .into_response()
    } else {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "something went wrong on our side",
        )
        .into_response()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::{get, post};
    use tokio::sync::{Notify, oneshot};
    use tower::ServiceExt;

    use super::*;

    fn limits() -> Limits {
        Limits {
            max_in_flight: 1,
            request_timeout: Duration::from_millis(300),
            max_body_bytes: 16,
        }
    }

    async fn status(router: &Router, request: Request<Body>) -> (StatusCode, Option<String>) {
        let response = router.clone().oneshot(request).await.unwrap();
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        (response.status(), retry)
    }

    fn get_(path: &str) -> Request<Body> {
        Request::get(path).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn past_its_limit_a_service_sheds_at_once_keeps_its_health_checks_and_recovers() {
        let release = Arc::new(Notify::new());
        let (entered_tx, entered_rx) = oneshot::channel::<()>();
        let entered = Arc::new(std::sync::Mutex::new(Some(entered_tx)));
        let held = {
            let release = release.clone();
            move || {
                let (release, entered) = (release.clone(), entered.clone());
                async move {
                    // The first request waits to be released; the others answer at once.
                    let first = entered.lock().unwrap().take();
                    if let Some(tx) = first {
                        let _ = tx.send(());
                        release.notified().await;
                    }
                    "done"
                }
            }
        };
        let api = Router::new()
            .route("/work", get(held))
            .route("/slow", get(|| tokio::time::sleep(Duration::from_secs(5))))
            .route("/echo", post(|body: String| async move { body }));
        let router = protect(api, &limits()).route("/healthz", get(|| async { "ok" }));

        // One request holds the only slot...
        let first = tokio::spawn({
            let router = router.clone();
            async move { status(&router, get_("/work")).await }
        });
        entered_rx.await.unwrap();
        // ...so the next is shed at once, told when to come back; health still answers.
        let shed = tokio::time::timeout(Duration::from_secs(1), status(&router, get_("/work")))
            .await
            .expect("shed at once, not queued");
        assert_eq!(shed, (StatusCode::SERVICE_UNAVAILABLE, Some("1".into())));
        assert_eq!(status(&router, get_("/healthz")).await.0, StatusCode::OK);

        // The slot frees: the held request completes and new ones are served again.
        release.notify_one();
        assert_eq!(first.await.unwrap().0, StatusCode::OK);
        assert_eq!(status(&router, get_("/work")).await.0, StatusCode::OK);

        // A request past its deadline is answered, not left hanging; the slot comes back.
        let slow = tokio::time::timeout(Duration::from_secs(2), status(&router, get_("/slow")))
            .await
            .expect("answered by the deadline");
        assert_eq!(slow.0, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status(&router, get_("/work")).await.0, StatusCode::OK);

        // Bodies beyond the cap are refused.
        let big = Request::post("/echo")
            .body(Body::from("x".repeat(64)))
            .unwrap();
        assert_eq!(status(&router, big).await.0, StatusCode::PAYLOAD_TOO_LARGE);
        let small = Request::post("/echo").body(Body::from("hello")).unwrap();
        assert_eq!(status(&router, small).await.0, StatusCode::OK);
    }
}
