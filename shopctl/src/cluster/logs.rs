//! `logs <service> --env <cluster>`: the logs of every pod of the service's Deployment,
//! each line prefixed with its pod, as `kubectl logs -l` and stern show them, through the
//! `pods/log` subresource. Following, pods that start later (a rollout, a restart) join as
//! they start, from their first line; a pod that goes ends its stream.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use tokio::sync::mpsc;

use super::Cluster;
use super::access::{self, Permission};

#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub follow: bool,
    /// Only lines newer than this.
    pub since: Option<Duration>,
    /// Only the last N lines of each pod (at the start, when following).
    pub tail: Option<i64>,
    /// The previous instance of each pod's container (after a crash or restart).
    pub previous: bool,
}

/// One line of one pod, or why a pod has nothing to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    Line { pod: String, text: String },
    Unavailable { pod: String, reason: String },
}

/// How often a follow looks for new pods.
const POD_POLL: Duration = Duration::from_millis(500);

/// Streams the logs to `out` until done (without `follow`) or until interrupted.
pub async fn stream(
    cluster: &Cluster,
    namespace: &str,
    env: &str,
    service: &str,
    options: &LogOptions,
    mut out: impl FnMut(LogEvent),
) -> anyhow::Result<()> {
    let ns = Some(namespace);
    let needs = BTreeSet::from([
        Permission::new("get", "apps", "deployments", ns),
        Permission::new("list", "", "pods", ns),
        Permission::new("get", "", "pods/log", ns),
    ]);
    access::preflight(cluster, &needs).await?;
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), namespace);
    let deployment = deployments
        .get_opt(service)
        .await
        .map_err(|err| cluster.explain(err))?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "there is no Deployment {service} in namespace {namespace}; `shopctl status --env {env}` lists the workloads"
            )
        })?;
    let spec = deployment.spec.unwrap_or_default();
    let selector = spec
        .selector
        .match_labels
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    // The service's own container (the backend's pods also have a migrate init container).
    let container = spec
        .template
        .spec
        .and_then(|s| s.containers.first().map(|c| c.name.clone()))
        .unwrap_or_else(|| service.to_owned());
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), namespace);
    let params = LogParams {
        container: Some(container),
        follow: options.follow,
        previous: options.previous,
        since_seconds: options.since.map(|s| s.as_secs().max(1) as i64),
        tail_lines: options.tail,
        ..LogParams::default()
    };
    let list = ListParams::default().labels(&selector);
    let running = |pod: &Pod| {
        pod.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|c| !c.is_empty())
            && pod.metadata.deletion_timestamp.is_none()
    };
    let mut current: Vec<Pod> = pods
        .list(&list)
        .await
        .map_err(|err| cluster.explain(err))?
        .items;
    current.sort_by(|a, b| {
        a.metadata
            .creation_timestamp
            .cmp(&b.metadata.creation_timestamp)
    });

    if !options.follow {
        for pod in current {
            let name = pod.metadata.name.clone().unwrap_or_default();
            match pods.logs(&name, &params).await {
                Ok(text) => text.lines().for_each(|line| {
                    out(LogEvent::Line {
                        pod: name.clone(),
                        text: line.to_owned(),
                    })
                }),
                Err(err) => out(LogEvent::Unavailable {
                    pod: name,
                    reason: reason(err),
                }),
            }
        }
        return Ok(());
    }

    let (sender, mut receiver) = mpsc::unbounded_channel::<LogEvent>();
    let mut following = BTreeSet::new();
    let mut first_round = true;
    loop {
        for pod in current.iter().filter(|p| running(p)) {
            let name = pod.metadata.name.clone().unwrap_or_default();
            if !following.insert(name.clone()) {
                continue;
            }
            // A pod that starts while we follow is shown from its first line.
            let mut params = params.clone();
            if !first_round {
                params.tail_lines = None;
                params.since_seconds = None;
            }
            tokio::spawn(follow_pod(pods.clone(), name, params, sender.clone()));
        }
        first_round = false;
        let deadline = tokio::time::sleep(POD_POLL);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                event = receiver.recv() => match event {
                    Some(event) => out(event),
                    None => return Ok(()),
                },
                () = &mut deadline => break,
            }
        }
        current = pods
            .list(&list)
            .await
            .map_err(|err| cluster.explain(err))?
            .items;
        current.sort_by(|a, b| {
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp)
        });
    }
}

async fn follow_pod(
    pods: Api<Pod>,
    name: String,
    params: LogParams,
    sender: mpsc::UnboundedSender<LogEvent>,
) {
    let stream = match pods.log_stream(&name, &params).await {
        Ok(stream) => stream,
        Err(err) => {
            let _ = sender.send(LogEvent::Unavailable {
                pod: name,
                reason: reason(err),
            });
            return;
        }
    };
    let mut lines = stream.lines();
    while let Some(Ok(line)) = lines.next().await {
        if sender
            .send(LogEvent::Line {
                pod: name.clone(),
                text: line,
            })
            .is_err()
        {
            return;
        }
    }
}

/// The API server's own words for why a log cannot be read.
fn reason(err: kube::Error) -> String {
    match err {
        kube::Error::Api(status) => status.message,
        other => other.to_string(),
    }
}
