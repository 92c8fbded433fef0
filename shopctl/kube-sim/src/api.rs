//! The HTTP face of the simulator: upstream URL layout, discovery, verbs, content types,
//! watch streams, and every request authenticated and authorised (`authz`) with the
//! attributes upstream derives from the URL.
//!
//! URL layout: <https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-uris>.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::authz::{self, Authority, Credential};
use crate::error::ApiError;
use crate::proxy::{self, ProxyRequest};
use crate::rbac::Attributes;
use crate::resources::{self, RESOURCES, ResourceType};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{Part, PatchKind, Propagation, Store, WatchEvent, WriteOptions};

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub authority: Authority,
    /// Who answers for each Service port behind the service proxy.
    pub backends: crate::proxy::Backends,
    /// What the containers printed, for `pods/log`.
    pub logs: crate::logs::PodLogs,
}

type Params = HashMap<String, String>;

fn json_response(code: u16, body: &Value) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error_response(error: &ApiError) -> Response {
    json_response(error.code, &error.status())
}

/// The review kinds any authenticated user may create (`system:basic-user`), answered
/// from the caller's own credentials rather than stored.
const REVIEWS: [(&str, &str, &str); 3] = [
    ("authorization.k8s.io", "v1", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "v1", "selfsubjectrulesreviews"),
    ("authentication.k8s.io", "v1", "selfsubjectreviews"),
];

pub async fn handle(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    Query(params): Query<Params>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    if segments == ["version"] || segments == ["healthz"] || segments == ["readyz"] {
        return json_response(200, &version());
    }
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = match state.authority.authenticate(header) {
        Ok(caller) => caller,
        Err(error) => return error_response(&error),
    };
    if let ["apis", group, version, plural] = segments.as_slice()
        && let Some((group, _, plural)) = REVIEWS
            .iter()
            .find(|(g, v, p)| g == group && v == version && p == plural)
    {
        return review(&state, &caller, &method, group, plural, &body)
            .unwrap_or_else(|error| error_response(&error));
    }
    if let Some(request) = ProxyRequest::parse(uri.path(), uri.query()) {
        let forwarded = proxy::forward(
            &state.store,
            &state.backends,
            |attributes: &Attributes| state.authority.authorize(&state.store, &caller, attributes),
            request,
            method,
            &headers,
            body,
        );
        return forwarded
            .await
            .unwrap_or_else(|error| error_response(&error));
    }
    match route(
        &state, &caller, &method, &segments, &params, &headers, &body,
    )
    .await
    {
        Ok(response) => response,
        Err(error) => error_response(&error),
    }
}

fn review(
    state: &AppState,
    caller: &Credential,
    method: &Method,
    group: &str,
    plural: &str,
    body: &Bytes,
) -> Result<Response, ApiError> {
    if method != Method::POST {
        return Err(ApiError::method_not_allowed());
    }
    let attributes = Attributes::resource("create", group, plural, "");
    state
        .authority
        .authorize(&state.store, caller, &attributes)?;
    let review = parse_body(body)?;
    let answered = match plural {
        "selfsubjectaccessreviews" => {
            authz::access_review(&state.authority, &state.store, caller, review)?
        }
        "selfsubjectrulesreviews" => authz::rules_review(&state.store, caller, review)?,
        _ => authz::subject_review(caller, review),
    };
    Ok(json_response(201, &answered))
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-shopmicro-simulated",
        "platform": "linux/amd64",
    })
}

/// Where a request points once the URL is parsed.
struct Target<'a> {
    rt: &'static ResourceType,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
    subresource: Option<&'a str>,
}

fn parse_target<'a>(group: &str, version: &str, rest: &[&'a str]) -> Result<Target<'a>, ApiError> {
    let not_found = || {
        ApiError::bad_request(format!(
            "the server could not find the requested resource ({group}/{version} {rest:?})"
        ))
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, ..] if resources::by_path(group, version, plural).is_some() => {
            (Some(*ns), &rest[2..])
        }
        _ => (None, rest),
    };
    let (plural, name, subresource) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
        _ => return Err(not_found()),
    };
    let rt = resources::by_path(group, version, plural).ok_or_else(|| {
        let mut error = not_found();
        error.code = 404;
        error.reason = "NotFound";
        error
    })?;
    if rt.namespaced && name.is_some() && namespace.is_none() {
        return Err(not_found());
    }
    Ok(Target {
        rt,
        namespace,
        name,
        subresource,
    })
}

/// Discovery documents: non-resource URLs, readable through `system:discovery`.
fn discovery(segments: &[&str]) -> Option<Result<Value, ApiError>> {
    Some(Ok(match segments {
        ["api"] => {
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
        }
        ["apis"] => group_list(),
        ["api", "v1"] => resource_list("", "v1"),
        ["apis", group] => {
            let Some((_, version)) = resources::groups().into_iter().find(|(g, _)| g == group)
            else {
                return Some(Err(ApiError::bad_request("unknown group")));
            };
            json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": [{"groupVersion": format!("{group}/{version}"), "version": version}], "preferredVersion": {"groupVersion": format!("{group}/{version}"), "version": version}})
        }
        ["apis", group, version]
            if resources::groups()
                .iter()
                .any(|(g, v)| g == group && v == version) =>
        {
            resource_list(group, version)
        }
        _ => return None,
    }))
}

async fn route(
    state: &AppState,
    caller: &Credential,
    method: &Method,
    segments: &[&str],
    params: &Params,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    if let Some(document) = discovery(segments) {
        let path = format!("/{}", segments.join("/"));
        state.authority.authorize(
            &state.store,
            caller,
            &Attributes::non_resource("get", &path),
        )?;
        return Ok(json_response(200, &document?));
    }
    let (group, version, rest): (&str, &str, &[&str]) = match segments {
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", group, version, rest @ ..] => (group, version, rest),
        _ => {
            return Err(ApiError {
                code: 404,
                reason: "NotFound",
                message: "the server could not find the requested resource".into(),
                details: Value::Null,
            });
        }
    };
    let target = parse_target(group, version, rest)?;
    let rt = target.rt;
    let namespace = target.namespace.unwrap_or("");
    let options = WriteOptions {
        dry_run: params.get("dryRun").is_some_and(|v| v == "All"),
        field_manager: params
            .get("fieldManager")
            .cloned()
            .unwrap_or_else(|| manager_from_user_agent(headers)),
        force: params.get("force").is_some_and(|v| v == "true"),
    };
    let verb = match (method.as_str(), target.name) {
        ("GET", None) if params.get("watch").is_some_and(|w| w == "true" || w == "1") => "watch",
        ("GET", None) => "list",
        ("GET", Some(_)) => "get",
        ("POST", None) => "create",
        ("PUT", Some(_)) => "update",
        ("PATCH", Some(_)) => "patch",
        ("DELETE", Some(_)) => "delete",
        _ => return Err(ApiError::method_not_allowed()),
    };
    // Upstream's RequestInfo: `/api/v1/namespaces/NAME` is a request *in* namespace NAME,
    // so a RoleBinding there may allow reading the namespace itself.
    let scope = if rt.kind == "Namespace" {
        target.name.unwrap_or("")
    } else {
        namespace
    };
    let attributes = Attributes {
        verb: verb.into(),
        namespace: scope.into(),
        api_group: rt.group.into(),
        resource: rt.plural.into(),
        subresource: target.subresource.unwrap_or("").into(),
        name: target.name.unwrap_or("").into(),
        path: None,
    };
    state
        .authority
        .authorize(&state.store, caller, &attributes)?;
    let store = &state.store;
    let part = match target.subresource {
        None => Part::Main,
        Some("status") if rt.status => Part::Status,
        Some("log") if rt.kind == "Pod" && verb == "get" => {
            let request = crate::logs::LogRequest::parse(params)?;
            return crate::logs::serve(
                store,
                &state.logs,
                namespace,
                target.name.unwrap_or(""),
                request,
            );
        }
        Some("scale") if rt.scale => {
            return scale(
                store,
                rt,
                namespace,
                target.name.unwrap_or(""),
                method,
                headers,
                body,
                &options,
            );
        }
        Some(other) => {
            return Err(ApiError {
                code: 404,
                reason: "NotFound",
                message: format!("{} has no subresource {other}", rt.qualified()),
                details: Value::Null,
            });
        }
    };
    let created = |object: Value, code: u16| Ok(json_response(code, &object));
    match verb {
        "watch" => watch(store, rt, target.namespace, params),
        "list" => {
            let labels =
                LabelSelector::parse(params.get("labelSelector").map_or("", String::as_str))
                    .map_err(ApiError::bad_request)?;
            let fields = FieldSelector::parse(
                params.get("fieldSelector").map_or("", String::as_str),
                rt.kind,
            )
            .map_err(ApiError::bad_request)?;
            let (items, revision) = store.list(rt, target.namespace, &labels, &fields);
            created(
                json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": {"resourceVersion": revision.to_string()}, "items": items}),
                200,
            )
        }
        "get" => created(store.get(rt, namespace, target.name.unwrap_or(""))?, 200),
        "create" => {
            let object = parse_body(body)?;
            let write =
                |options: &WriteOptions| store.create(rt, namespace, object.clone(), options);
            created(guarded(state, caller, rt, &options, write)?, 201)
        }
        "update" => {
            let object = parse_body(body)?;
            let name = target.name.unwrap_or("");
            let write = |options: &WriteOptions| {
                store.update(rt, namespace, name, object.clone(), part, options)
            };
            created(guarded(state, caller, rt, &options, write)?, 200)
        }
        "patch" => {
            let kind = patch_kind(headers)?;
            let mut options = options;
            if matches!(kind, PatchKind::Apply) && !params.contains_key("fieldManager") {
                // Upstream requires an explicit manager for apply; no user-agent default.
                options.field_manager.clear();
            }
            let name = target.name.unwrap_or("");
            let existed = store.get(rt, namespace, name).is_ok();
            let patch = parse_body(body)?;
            let write = |options: &WriteOptions| {
                store.patch(rt, namespace, name, kind, &patch, part, options)
            };
            let object = guarded(state, caller, rt, &options, write)?;
            created(object, if existed { 200 } else { 201 })
        }
        "delete" => {
            let delete_options: Value = if body.is_empty() {
                json!({})
            } else {
                parse_body(body)?
            };
            let policy = params.get("propagationPolicy").cloned().or_else(|| {
                delete_options["propagationPolicy"]
                    .as_str()
                    .map(str::to_string)
            });
            let propagation = match policy.as_deref() {
                Some("Orphan") => Propagation::Orphan,
                Some("Foreground") => Propagation::Foreground,
                _ => Propagation::Background,
            };
            let dry_run = options.dry_run
                || delete_options["dryRun"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|v| v == "All"));
            created(
                store.delete(
                    rt,
                    namespace,
                    target.name.unwrap_or(""),
                    propagation,
                    dry_run,
                )?,
                200,
            )
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// A write, checked first for privilege escalation when it writes RBAC objects: the
/// object it would leave (a dry run) must grant nothing the caller may not grant.
fn guarded(
    state: &AppState,
    caller: &Credential,
    rt: &ResourceType,
    options: &WriteOptions,
    write: impl Fn(&WriteOptions) -> Result<Value, ApiError>,
) -> Result<Value, ApiError> {
    if rt.group == "rbac.authorization.k8s.io" {
        let preview = write(&WriteOptions {
            dry_run: true,
            ..options.clone()
        })?;
        state
            .authority
            .check_escalation(&state.store, caller, &preview)?;
    }
    write(options)
}

/// Upstream names an unnamed manager after the client's user agent (`kubectl-edit`).
fn manager_from_user_agent(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

fn patch_kind(headers: &HeaderMap) -> Result<PatchKind, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match content_type.split(';').next().unwrap_or("").trim() {
        "application/merge-patch+json" => Ok(PatchKind::Merge),
        "application/json-patch+json" => Ok(PatchKind::Json),
        "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
        "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchKind::Apply),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

fn group_list() -> Value {
    let groups: Vec<Value> = resources::groups()
        .into_iter()
        .map(|(group, version)| {
            let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
            json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        resources.push(json!({
            "name": r.plural,
            "singularName": r.kind.to_lowercase(),
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
        }));
        if r.status {
            resources.push(json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"]}));
        }
        if r.kind == "Pod" {
            resources.push(json!({"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]}));
        }
        if r.scale {
            resources.push(json!({"name": format!("{}/scale", r.plural), "singularName": "", "namespaced": r.namespaced, "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

/// The `scale` subresource: an `autoscaling/v1` Scale view of `spec.replicas`.
#[allow(clippy::too_many_arguments)] // reason: a route handler with the request's parts
fn scale(
    store: &Store,
    rt: &'static ResourceType,
    namespace: &str,
    name: &str,
    method: &Method,
    headers: &HeaderMap,
    body: &Bytes,
    options: &WriteOptions,
) -> Result<Response, ApiError> {
    let view = |object: &Value| {
        let selector = LabelSelector::from_object(&object["spec"]["selector"]).unwrap_or_default();
        json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": object["metadata"]["name"],
                "namespace": object["metadata"]["namespace"],
                "uid": object["metadata"]["uid"],
                "resourceVersion": object["metadata"]["resourceVersion"],
                "creationTimestamp": object["metadata"]["creationTimestamp"],
            },
            "spec": {"replicas": object["spec"]["replicas"].as_i64().unwrap_or(1)},
            "status": {"replicas": object["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector.to_query()},
        })
    };
    let live = store.get(rt, namespace, name)?;
    let replicas = match method.as_str() {
        "GET" => return Ok(json_response(200, &view(&live))),
        "PUT" => parse_body(body)?["spec"]["replicas"].as_i64(),
        "PATCH" => {
            let mut current = view(&live);
            let patch = parse_body(body)?;
            match patch_kind(headers)? {
                PatchKind::Json => {
                    let patch: json_patch::Patch = serde_json::from_value(patch)
                        .map_err(|e| ApiError::bad_request(e.to_string()))?;
                    json_patch::patch(&mut current, &patch)
                        .map_err(|e| ApiError::invalid(rt, name, "patch", &e.to_string()))?;
                }
                _ => json_patch::merge(&mut current, &patch),
            }
            current["spec"]["replicas"].as_i64()
        }
        _ => return Err(ApiError::method_not_allowed()),
    };
    let replicas = replicas.filter(|r| *r >= 0).ok_or_else(|| {
        ApiError::invalid(
            rt,
            name,
            "spec.replicas",
            "must be greater than or equal to 0",
        )
    })?;
    let updated = store.patch(
        rt,
        namespace,
        name,
        PatchKind::Merge,
        &json!({"spec": {"replicas": replicas}}),
        Part::Main,
        options,
    )?;
    Ok(json_response(200, &view(&updated)))
}

/// A watch: newline-delimited `{"type", "object"}` events.
/// Upstream semantics (api-concepts.md, "Efficient detection of changes" and "Semantics for
/// watch"): without a resourceVersion (or "0") the stream starts with synthetic ADDED events
/// for the current state; with one, it replays every change after it, or 410 Gone when the
/// history was compacted.
fn watch(
    store: &Store,
    rt: &'static ResourceType,
    namespace: Option<&str>,
    params: &Params,
) -> Result<Response, ApiError> {
    let labels = LabelSelector::parse(params.get("labelSelector").map_or("", String::as_str))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(
        params.get("fieldSelector").map_or("", String::as_str),
        rt.kind,
    )
    .map_err(ApiError::bad_request)?;
    let from = params
        .get("resourceVersion")
        .filter(|rv| !rv.is_empty() && *rv != "0");
    let from = match from {
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        ),
        None => None,
    };
    let (backlog, receiver) = store.watch_from(from)?;
    let mut initial: Vec<(&'static str, Value)> = Vec::new();
    let mut seen = from.unwrap_or(0);
    if from.is_none() {
        let (items, revision) = store.list(rt, namespace, &labels, &fields);
        initial.extend(items.into_iter().map(|item| ("ADDED", item)));
        seen = revision;
    }
    let namespace = namespace.map(str::to_string);
    let wanted = move |event: &WatchEvent| {
        std::ptr::eq(event.resource, rt)
            && namespace
                .as_deref()
                .is_none_or(|ns| event.object["metadata"]["namespace"].as_str() == Some(ns))
            && labels.matches(event.object["metadata"].get("labels"))
            && fields.matches(&event.object)
    };
    let wanted = Arc::new(wanted);
    let replay: Vec<(&'static str, Value)> = backlog
        .into_iter()
        .filter(|e| wanted(e))
        .map(|e| (e.kind, e.object))
        .collect();
    let live_filter = wanted.clone();
    let live = tokio_stream::wrappers::BroadcastStream::new(receiver)
        // A lagging watcher ends; the client relists, as it would after a dropped watch.
        .take_while(|item| std::future::ready(item.is_ok()))
        .filter_map(move |item| {
            let keep = item
                .ok()
                .filter(|e| e.revision > seen && live_filter(e))
                .map(|e| (e.kind, e.object));
            std::future::ready(keep)
        });
    let events = futures_util::stream::iter(initial.into_iter().chain(replay)).chain(live);
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let deadline = tokio::time::sleep(Duration::from_secs(timeout));
    let lines = events
        .map(|(kind, object)| {
            Ok::<_, Infallible>(Bytes::from(format!(
                "{}\n",
                json!({"type": kind, "object": object})
            )))
        })
        .take_until(deadline);
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(lines),
    )
        .into_response())
}
