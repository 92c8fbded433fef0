//! Waiting for rollouts: one watch per workload (never sleep-polling), judged the way
//! `kubectl rollout status` judges it, with a deadline; on failure, the condition that
//! says why and the workload's recent warning events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject, ListParams, WatchEvent, WatchParams};
use serde::Serialize;
use serde_json::Value;

use super::Cluster;
use super::apply::Resources;

/// A workload whose rollout can be waited for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workload {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl Workload {
    pub fn of(object: &Value) -> Option<Self> {
        let kind = object["kind"].as_str()?;
        if !matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet") {
            return None;
        }
        Some(Self {
            api_version: object["apiVersion"].as_str()?.to_string(),
            kind: kind.to_string(),
            namespace: object["metadata"]["namespace"].as_str()?.to_string(),
            name: object["metadata"]["name"].as_str()?.to_string(),
        })
    }

    pub fn id(&self) -> String {
        format!("{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Progress {
    Waiting {
        ready: i64,
        desired: i64,
        message: String,
    },
    Ready,
    /// It will not get there by itself (upstream: ProgressDeadlineExceeded).
    Failed {
        condition: String,
        message: String,
    },
}

fn int(value: &Value) -> i64 {
    value.as_i64().unwrap_or(0)
}

/// The rollout state of a workload object, as `kubectl rollout status` decides it.
pub fn judge(object: &Value) -> Progress {
    let spec = &object["spec"];
    let status = &object["status"];
    let desired = spec["replicas"].as_i64().unwrap_or(1);
    let waiting = |ready: i64, desired: i64, message: String| Progress::Waiting {
        ready,
        desired,
        message,
    };
    if int(&object["metadata"]["generation"]) > int(&status["observedGeneration"]) {
        return waiting(
            0,
            desired,
            "waiting for the controller to observe the new spec".into(),
        );
    }
    match object["kind"].as_str().unwrap_or_default() {
        "Deployment" => {
            let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
            if let Some(progressing) = conditions.iter().find(|c| c["type"] == "Progressing")
                && progressing["reason"] == "ProgressDeadlineExceeded"
            {
                return Progress::Failed {
                    condition: "Progressing=False (ProgressDeadlineExceeded)".into(),
                    message: progressing["message"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                };
            }
            let (updated, total, available) = (
                int(&status["updatedReplicas"]),
                int(&status["replicas"]),
                int(&status["availableReplicas"]),
            );
            if updated < desired {
                waiting(
                    updated,
                    desired,
                    format!("{updated} of {desired} replicas updated"),
                )
            } else if total > updated {
                waiting(
                    available.min(desired),
                    desired,
                    format!("{} old replicas pending termination", total - updated),
                )
            } else if available < updated {
                waiting(
                    available,
                    desired,
                    format!("{available} of {updated} updated replicas available"),
                )
            } else {
                Progress::Ready
            }
        }
        "StatefulSet" => {
            let ready = int(&status["readyReplicas"]);
            if ready < desired {
                waiting(ready, desired, format!("{ready} of {desired} pods ready"))
            } else if status["updateRevision"] != status["currentRevision"] {
                waiting(
                    ready,
                    desired,
                    "pods being updated to the new revision".into(),
                )
            } else {
                Progress::Ready
            }
        }
        "DaemonSet" => {
            let wanted = int(&status["desiredNumberScheduled"]);
            let (updated, available) = (
                int(&status["updatedNumberScheduled"]),
                int(&status["numberAvailable"]),
            );
            if updated < wanted {
                waiting(
                    updated,
                    wanted,
                    format!("{updated} of {wanted} pods updated"),
                )
            } else if available < wanted {
                waiting(
                    available,
                    wanted,
                    format!("{available} of {wanted} updated pods available"),
                )
            } else {
                Progress::Ready
            }
        }
        other => Progress::Failed {
            condition: "unsupported".into(),
            message: format!("cannot wait for a {other}"),
        },
    }
}

/// How one workload's wait ended.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct WaitResult {
    pub workload: String,
    pub ready: bool,
    /// Seconds until ready, or until the wait gave up.
    pub seconds: f64,
    /// For failures: the condition (or "timed out after …") and the last state seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

pub type ProgressCallback = Arc<dyn Fn(&Workload, &Progress) + Send + Sync>;

/// Waits for every workload concurrently, each until ready, failed, or `timeout`.
pub async fn wait_all(
    cluster: &Cluster,
    workloads: &[Workload],
    timeout: Duration,
    on_progress: ProgressCallback,
) -> anyhow::Result<Vec<WaitResult>> {
    let mut resources = Resources::new(cluster);
    let mut waits = Vec::new();
    for workload in workloads {
        let api = resources
            .api(
                &workload.api_version,
                &workload.kind,
                Some(&workload.namespace),
            )
            .await?;
        let workload = workload.clone();
        let on_progress = on_progress.clone();
        waits.push(async move {
            let started = Instant::now();
            let outcome =
                tokio::time::timeout(timeout, watch_until_settled(&api, &workload, &on_progress))
                    .await;
            (workload, started.elapsed(), outcome)
        });
    }
    let mut results = Vec::new();
    for (workload, elapsed, outcome) in futures_util::future::join_all(waits).await {
        let reason = match outcome {
            Ok(Ok(Progress::Ready)) => None,
            Ok(Ok(Progress::Failed { condition, message })) => {
                Some(format!("{condition}: {message}"))
            }
            Ok(Ok(Progress::Waiting { message, .. })) => Some(message),
            Ok(Err(err)) => Some(format!("{:#}", cluster.explain(err))),
            Err(_) => {
                let last = last_state(cluster, &workload).await;
                Some(format!("timed out after {}s; {last}", timeout.as_secs()))
            }
        };
        let warnings = if reason.is_some() {
            recent_warnings(cluster, &workload, 5).await
        } else {
            Vec::new()
        };
        results.push(WaitResult {
            workload: workload.id(),
            ready: reason.is_none(),
            seconds: elapsed.as_secs_f64(),
            reason,
            warnings,
        });
    }
    Ok(results)
}

/// Gets the object, then watches it from that resourceVersion until it is ready or failed;
/// a watch that ends (server timeout, 410 Gone) is resumed from a fresh get.
async fn watch_until_settled(
    api: &Api<DynamicObject>,
    workload: &Workload,
    on_progress: &ProgressCallback,
) -> Result<Progress, kube::Error> {
    loop {
        let object = api.get(&workload.name).await?;
        let version = object.metadata.resource_version.clone().unwrap_or_default();
        let progress = judge(&serde_json::to_value(&object).unwrap_or_default());
        on_progress(workload, &progress);
        if !matches!(progress, Progress::Waiting { .. }) {
            return Ok(progress);
        }
        let params = WatchParams::default()
            .fields(&format!("metadata.name={}", workload.name))
            .timeout(290);
        let mut events = api.watch(&params, &version).await?.boxed();
        while let Some(event) = events.try_next().await? {
            let object = match event {
                WatchEvent::Added(o) | WatchEvent::Modified(o) => o,
                WatchEvent::Deleted(_) => {
                    return Ok(Progress::Failed {
                        condition: "deleted".into(),
                        message: "the workload was deleted while waiting".into(),
                    });
                }
                WatchEvent::Bookmark(_) => continue,
                // Usually 410 Gone: start again from a fresh get.
                WatchEvent::Error(_) => break,
            };
            let progress = judge(&serde_json::to_value(&object).unwrap_or_default());
            on_progress(workload, &progress);
            if !matches!(progress, Progress::Waiting { .. }) {
                return Ok(progress);
            }
        }
    }
}

async fn last_state(cluster: &Cluster, workload: &Workload) -> String {
    let mut resources = Resources::new(cluster);
    let Ok(api) = resources
        .api(
            &workload.api_version,
            &workload.kind,
            Some(&workload.namespace),
        )
        .await
    else {
        return "state unknown".into();
    };
    match api.get(&workload.name).await {
        Ok(object) => {
            let object = serde_json::to_value(&object).unwrap_or_default();
            let mut state = match judge(&object) {
                Progress::Waiting { message, .. } => message,
                Progress::Ready => "ready by now".into(),
                Progress::Failed { condition, message } => format!("{condition}: {message}"),
            };
            for condition in object["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
            {
                state.push_str(&format!(
                    "; {}={} ({})",
                    condition["type"].as_str().unwrap_or(""),
                    condition["status"].as_str().unwrap_or(""),
                    condition["reason"].as_str().unwrap_or("")
                ));
            }
            state
        }
        Err(err) => format!("state unknown: {:#}", cluster.explain(err)),
    }
}

/// The newest warning events about a workload or anything named after it (its
/// ReplicaSets and pods), newest last.
pub async fn recent_warnings(cluster: &Cluster, workload: &Workload, limit: usize) -> Vec<String> {
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(cluster.client.clone(), &workload.namespace);
    let Ok(list) = events
        .list(&ListParams::default().fields("type=Warning"))
        .await
    else {
        return Vec::new();
    };
    let prefix = format!("{}-", workload.name);
    let mut relevant: Vec<_> = list
        .items
        .into_iter()
        .filter(|e| {
            e.involved_object
                .name
                .as_deref()
                .is_some_and(|n| n == workload.name || n.starts_with(&prefix))
        })
        .collect();
    relevant.sort_by_key(|e| e.last_timestamp.clone().map(|t| t.0));
    relevant
        .iter()
        .rev()
        .take(limit)
        .rev()
        .map(|e| {
            format!(
                "{} {}: {}: {} (x{})",
                e.involved_object.kind.clone().unwrap_or_default(),
                e.involved_object.name.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default(),
                e.count.unwrap_or(1)
            )
        })
        .collect()
}
