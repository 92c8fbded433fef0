//! The service proxy: `/api/v1/namespaces/{ns}/services/{name}[:port]/proxy/{path}`
//! forwards a request to one ready endpoint of the Service, as the API server does
//! (<https://kubernetes.io/docs/tasks/access-application-cluster/access-cluster-services/#manually-constructing-apiserver-proxy-urls>).
//!
//! Pods here run no processes, so the "pod network" is a table: a test says which local
//! server answers for a Service port (`Simulator::serve`). Everything before the hop
//! follows upstream: the Service must exist, the port is chosen by name or number (an
//! omitted port matches only an unnamed one), only Ready pods the selector matches are
//! endpoints, and a Service without them answers 503 "no endpoints available".

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::controllers::is_ready;
use crate::error::ApiError;
use crate::rbac::Attributes;
use crate::resources;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::Store;

/// (namespace, service, port name) → the base URL of the local server standing in for
/// the pods behind that port.
pub type Backends = Arc<Mutex<HashMap<(String, String, String), String>>>;

/// A parsed proxy request.
pub struct ProxyRequest<'a> {
    pub namespace: &'a str,
    /// `name`, `name:port` or `scheme:name:port`.
    pub service: &'a str,
    /// The path after `/proxy`, with the query.
    pub path_and_query: String,
}

impl<'a> ProxyRequest<'a> {
    /// Recognises a proxy URL; None for any other path.
    pub fn parse(path: &'a str, query: Option<&str>) -> Option<Self> {
        let rest = path.strip_prefix("/api/v1/namespaces/")?;
        let (namespace, rest) = rest.split_once('/')?;
        let rest = rest.strip_prefix("services/")?;
        let (service, rest) = rest.split_once('/').unwrap_or((rest, ""));
        let rest = rest.strip_prefix("proxy")?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        let path = if rest.is_empty() { "/" } else { rest };
        let path_and_query = match query {
            Some(query) => format!("{path}?{query}"),
            None => path.to_string(),
        };
        Some(Self {
            namespace,
            service,
            path_and_query,
        })
    }
}

fn verb(method: &Method) -> &'static str {
    match *method {
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "get",
    }
}

/// Forwards after `authorize` allowed the caller the `services/proxy` subresource of
/// the Service with the verb the method maps to, as upstream's proxy does.
pub async fn forward(
    store: &Store,
    backends: &Backends,
    authorize: impl FnOnce(&Attributes) -> Result<(), ApiError>,
    request: ProxyRequest<'_>,
    method: Method,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    // `[scheme:]name[:port]`
    let parts: Vec<&str> = request.service.split(':').collect();
    let (name, port) = match parts.as_slice() {
        [name] => (*name, ""),
        [name, port] => (*name, *port),
        [_scheme, name, port] => (*name, *port),
        _ => return Err(ApiError::bad_request("invalid service request")),
    };
    authorize(
        &Attributes::resource(verb(&method), "", "services", request.namespace)
            .named(name)
            .with_subresource("proxy"),
    )?;
    let service = store.get(resources::lookup("", "Service"), request.namespace, name)?;
    let no_endpoints =
        || ApiError::service_unavailable(format!("no endpoints available for service \"{name}\""));
    let port_name = resolve_port(&service, port).ok_or_else(no_endpoints)?;
    let pod = ready_endpoint(store, request.namespace, &service).ok_or_else(no_endpoints)?;
    let base = backends
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&(
            request.namespace.to_string(),
            name.to_string(),
            port_name.clone(),
        ))
        .cloned()
        .ok_or_else(|| {
            // What the API server says when nothing listens on the pod's port.
            ApiError::service_unavailable(format!(
                "error trying to reach service: dial tcp {}: connect: connection refused \
                 (simulated: nothing serves {}/{name}:{port_name})",
                pod["status"]["podIP"].as_str().unwrap_or("?"),
                request.namespace
            ))
        })?;
    let mut outgoing = reqwest::Client::new()
        .request(method, format!("{base}{}", request.path_and_query))
        .body(body);
    for name in [header::ACCEPT, header::CONTENT_TYPE] {
        if let Some(value) = headers.get(&name) {
            outgoing = outgoing.header(name, value);
        }
    }
    let reply = outgoing.send().await.map_err(|err| {
        ApiError::service_unavailable(format!(
            "error trying to reach service: {}",
            err.without_url()
        ))
    })?;
    let status = StatusCode::from_u16(reply.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = reply.headers().get(header::CONTENT_TYPE).cloned();
    let body = reply.bytes().await.map_err(|err| {
        ApiError::service_unavailable(format!(
            "error trying to reach service: {}",
            err.without_url()
        ))
    })?;
    let mut response = Response::builder().status(status);
    if let Some(content_type) = content_type {
        response = response.header(header::CONTENT_TYPE, content_type);
    }
    Ok(response
        .body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response()))
}

/// The name of the Service port `requested` names (by name or number); "" matches an
/// unnamed port only, as upstream's ResourceLocation does.
fn resolve_port(service: &Value, requested: &str) -> Option<String> {
    let ports = service["spec"]["ports"].as_array()?;
    ports
        .iter()
        .find(|p| {
            p["name"].as_str().unwrap_or("") == requested
                || (!requested.is_empty()
                    && p["port"].as_u64().map(|n| n.to_string()).as_deref() == Some(requested))
        })
        .map(|p| p["name"].as_str().unwrap_or("").to_string())
}

/// A Ready, not terminating pod the Service selects (the endpoints controller's rule).
fn ready_endpoint(store: &Store, namespace: &str, service: &Value) -> Option<Value> {
    let selector = service["spec"]["selector"].as_object()?;
    if selector.is_empty() {
        return None;
    }
    let labels = LabelSelector::from_object(&serde_json::json!({"matchLabels": selector})).ok()?;
    let (pods, _) = store.list(
        resources::lookup("", "Pod"),
        Some(namespace),
        &labels,
        &FieldSelector::default(),
    );
    pods.into_iter()
        .find(|pod| pod["metadata"]["deletionTimestamp"].is_null() && is_ready(pod))
}
