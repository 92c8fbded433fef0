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
    crate::propagation::inject(client.get(url)).send().await
}
