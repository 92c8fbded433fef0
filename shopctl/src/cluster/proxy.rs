//! The API server's service proxy: a GET to a Service's port through the caller's cluster
//! credentials, so nothing needs to be exposed for shopctl to reach Prometheus or a service.

use serde_json::Value;

/// GETs `path` (with `query`) from port `port` of Service `namespace/service`: the status
/// and the body the service answered, or why it could not be reached — the API server's
/// own refusal (no endpoints, forbidden) is a Status object, reported as the reason.
pub async fn get(
    client: &kube::Client,
    namespace: &str,
    service: &str,
    port: &str,
    path: &str,
    query: &[(&str, &str)],
) -> Result<(u16, String), String> {
    let mut uri = format!("/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy{path}");
    if !query.is_empty() {
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        uri.push(if path.contains('?') { '&' } else { '?' });
        uri.push_str(&encoded);
    }
    let request = http::Request::get(uri)
        .body(kube::client::Body::empty())
        .map_err(|e| e.to_string())?;
    let response = client.send(request).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect_bytes()
        .await
        .map_err(|e| e.to_string())?;
    let body = String::from_utf8_lossy(&body).into_owned();
    if status >= 400
        && let Ok(refusal) = serde_json::from_str::<Value>(&body)
        && refusal["kind"] == "Status"
        && refusal["apiVersion"] == "v1"
    {
        return Err(format!(
            "the API server's service proxy answered {status}: {}",
            refusal["message"].as_str().unwrap_or_default()
        ));
    }
    Ok((status, body))
}
