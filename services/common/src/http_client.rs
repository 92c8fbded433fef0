//! The HTTP client services use to call each other: bounded timeouts, trace propagation.

use std::time::Duration;

/// A client whose every request gives up after `timeout`; callers decide what a timeout
/// means (fallback recommendations, a friendly error page).
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        // Building only fails when TLS back-ends cannot initialise; we compile none in.
        .expect("an HTTP client without TLS always builds")
}

/// Sends a GET with the current trace context attached.
pub async fn traced_get(
    client: &reqwest::Client,
    url: &str,
) -> Result<reqwest::Response, reqwest::Error> {
    execute_traced(client, client.get(url).build()?).await
}

/// Executes a request inside a client span whose context travels in `traceparent`, so
/// the callee's server span is its child.
pub async fn execute_traced(
    client: &reqwest::Client,
    mut request: reqwest::Request,
) -> Result<reqwest::Response, reqwest::Error> {
    use tracing::Instrument;
    // The path without the query keeps span names low-cardinality.
    let target = format!(
        "{}{}",
        request.url().origin().ascii_serialization(),
        request.url().path()
    );
    let span = tracing::info_span!(
        "http_client",
        otel.name = %format!("{} {}", request.method(), request.url().path()),
        otel.kind = "client",
        http.method = %request.method(),
        http.url = %target,
        http.status_code = tracing::field::Empty,
    );
    span.in_scope(|| {
        for (name, value) in crate::propagation::current_context_headers() {
            if let (Ok(name), Ok(value)) = (
                reqwest::header::HeaderName::from_bytes(name.as_bytes()),
                reqwest::header::HeaderValue::from_str(&value),
            ) {
                request.headers_mut().insert(name, value);
            }
        }
    });
    let response = client.execute(request).instrument(span.clone()).await;
    if let Ok(response) = &response {
        span.record("http.status_code", response.status().as_u16());
    }
    response
}
