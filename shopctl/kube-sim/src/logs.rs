//! Container logs as the kubelet keeps them and the `pods/log` subresource serves them
//! (<https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#read-log-of-the-specified-pod>):
//! one log per container instance; when a container restarts its last instance's log is
//! kept, and only that one, for `previous=true`
//! (<https://kubernetes.io/docs/concepts/cluster-administration/logging/#how-nodes-handle-container-logs>).
//! Options: `container` (required when the pod has several), `follow`, `previous`,
//! `sinceSeconds`, `sinceTime`, `tailLines`, `timestamps`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};

use crate::error::ApiError;
use crate::resources::lookup;
use crate::store::Store;

/// (namespace, pod, container).
type Key = (String, String, String);

#[derive(Clone)]
struct Line {
    at: DateTime<Utc>,
    text: String,
}

#[derive(Default)]
struct ContainerLog {
    instance: u64,
    current: Vec<Line>,
    previous: Option<Vec<Line>>,
}

/// Every container's logs, written by the simulated kubelet (and by tests, playing what a
/// container prints).
#[derive(Clone, Default)]
pub struct PodLogs(Arc<Mutex<HashMap<Key, ContainerLog>>>);

fn key(namespace: &str, pod: &str, container: &str) -> Key {
    (namespace.into(), pod.into(), container.into())
}

impl PodLogs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, ContainerLog>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a line to the running instance's log.
    pub fn write(&self, namespace: &str, pod: &str, container: &str, text: &str) {
        self.lock()
            .entry(key(namespace, pod, container))
            .or_default()
            .current
            .push(Line {
                at: Utc::now(),
                text: text.to_owned(),
            });
    }

    /// Records that instance `instance` (the restart count) of the container runs; a new
    /// instance ends the last one's log with `exit` and starts its own with `start`.
    pub fn started(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        instance: u64,
        start: &str,
        exit: &str,
    ) {
        let mut logs = self.lock();
        let log = logs.entry(key(namespace, pod, container)).or_default();
        let line = |text: &str| Line {
            at: Utc::now(),
            text: text.to_owned(),
        };
        if log.current.is_empty() && log.previous.is_none() {
            log.instance = instance;
            log.current.push(line(start));
        } else if instance > log.instance {
            let mut ended = std::mem::take(&mut log.current);
            ended.push(line(exit));
            log.previous = Some(ended);
            log.instance = instance;
            log.current.push(line(start));
        }
    }

    /// Drops the logs of pods that no longer exist, as the kubelet does.
    pub fn retain(&self, exists: impl Fn(&str, &str) -> bool) {
        self.lock().retain(|(ns, pod, _), _| exists(ns, pod));
    }

    fn instance(&self, key: &Key) -> Option<u64> {
        self.lock().get(key).map(|log| log.instance)
    }

    fn read(&self, key: &Key, previous: bool) -> Option<Vec<Line>> {
        let logs = self.lock();
        let log = logs.get(key)?;
        if previous {
            log.previous.clone()
        } else {
            Some(log.current.clone())
        }
    }
}

/// The query parameters of a log request.
#[derive(Clone)]
pub struct LogRequest {
    pub container: Option<String>,
    pub follow: bool,
    pub previous: bool,
    pub since_seconds: Option<i64>,
    pub since_time: Option<DateTime<Utc>>,
    pub tail_lines: Option<usize>,
    pub timestamps: bool,
}

impl LogRequest {
    pub fn parse(params: &HashMap<String, String>) -> Result<Self, ApiError> {
        let flag = |name: &str| params.get(name).is_some_and(|v| v == "true" || v == "1");
        let number = |name: &str| -> Result<Option<i64>, ApiError> {
            params
                .get(name)
                .map(|v| {
                    v.parse::<i64>()
                        .map_err(|_| ApiError::bad_request(format!("{name} must be an integer")))
                })
                .transpose()
        };
        let since_seconds = number("sinceSeconds")?;
        if since_seconds.is_some_and(|s| s < 1) {
            return Err(ApiError::bad_request("sinceSeconds must be greater than 0"));
        }
        let tail_lines = number("tailLines")?;
        if tail_lines.is_some_and(|t| t < 0) {
            return Err(ApiError::bad_request("tailLines must be non-negative"));
        }
        let since_time = params
            .get("sinceTime")
            .map(|v| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| ApiError::bad_request("sinceTime must be an RFC 3339 time"))
            })
            .transpose()?;
        if since_seconds.is_some() && since_time.is_some() {
            return Err(ApiError::bad_request(
                "at most one of sinceTime or sinceSeconds may be specified",
            ));
        }
        Ok(Self {
            container: params.get("container").cloned(),
            follow: flag("follow"),
            previous: flag("previous"),
            since_seconds,
            since_time,
            tail_lines: tail_lines.map(|t| t as usize),
            timestamps: flag("timestamps"),
        })
    }

    fn since(&self) -> Option<DateTime<Utc>> {
        self.since_time.or_else(|| {
            self.since_seconds
                .map(|s| Utc::now() - chrono::Duration::seconds(s))
        })
    }

    fn format(&self, line: &Line) -> String {
        if self.timestamps {
            format!(
                "{} {}\n",
                line.at.to_rfc3339_opts(SecondsFormat::Nanos, true),
                line.text
            )
        } else {
            format!("{}\n", line.text)
        }
    }
}

/// `GET /api/v1/namespaces/{namespace}/pods/{name}/log`.
pub fn serve(
    store: &Store,
    logs: &PodLogs,
    namespace: &str,
    name: &str,
    request: LogRequest,
) -> Result<Response, ApiError> {
    let pods = lookup("", "Pod");
    let pod = store.get(pods, namespace, name)?;
    let containers: Vec<String> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(
            pod["spec"]["initContainers"]
                .as_array()
                .into_iter()
                .flatten(),
        )
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect();
    let container = match &request.container {
        Some(container) if containers.contains(container) => container.clone(),
        Some(container) => {
            return Err(ApiError::bad_request(format!(
                "container {container} is not valid for pod {name}"
            )));
        }
        None if pod["spec"]["containers"].as_array().map_or(0, Vec::len) == 1 => {
            containers[0].clone()
        }
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )));
        }
    };
    let key = key(namespace, name, &container);
    let Some(lines) = logs.read(&key, request.previous) else {
        return Err(ApiError::bad_request(if request.previous {
            format!("previous terminated container \"{container}\" in pod \"{name}\" not found")
        } else {
            format!(
                "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
            )
        }));
    };
    let since = request.since();
    let selected: Vec<&Line> = lines
        .iter()
        .filter(|l| since.is_none_or(|s| l.at >= s))
        .collect();
    let skip = request
        .tail_lines
        .map_or(0, |tail| selected.len().saturating_sub(tail));
    let first: String = selected[skip..]
        .iter()
        .map(|line| request.format(line))
        .collect();
    let text_plain = [(header::CONTENT_TYPE, "text/plain")];
    if !request.follow || request.previous {
        return Ok((StatusCode::OK, text_plain, first).into_response());
    }
    // Following: what the instance writes next, until it ends (a restart) or the pod goes.
    let uid = pod["metadata"]["uid"].clone();
    let instance = logs.instance(&key);
    let state = (store.clone(), logs.clone(), lines.len(), Some(first));
    let stream = futures_util::stream::unfold(state, move |(store, logs, sent, pending)| {
        let key = key.clone();
        let uid = uid.clone();
        let request = request.clone();
        async move {
            if let Some(first) = pending {
                return Some((Ok::<_, std::io::Error>(first), (store, logs, sent, None)));
            }
            loop {
                let alive = store
                    .get(lookup("", "Pod"), &key.0, &key.1)
                    .is_ok_and(|p| p["metadata"]["uid"] == uid);
                if !alive || logs.instance(&key) != instance {
                    return None;
                }
                let lines = logs.read(&key, false).unwrap_or_default();
                if lines.len() > sent {
                    let chunk: String = lines[sent..].iter().map(|l| request.format(l)).collect();
                    return Some((Ok(chunk), (store, logs, lines.len(), None)));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    Ok((StatusCode::OK, text_plain, Body::from_stream(stream)).into_response())
}
