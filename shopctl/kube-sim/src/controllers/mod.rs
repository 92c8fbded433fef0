//! The control plane's moving parts, reduced to what a client can observe: the
//! Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, PVC, HPA and PDB
//! controllers, and a kubelet whose pods become ready, never become ready, crash-loop or
//! fail as their image tag scripts it.
//!
//! Scripted behaviour, by image tag (any container):
//! - contains `never-ready`: Running, never Ready; a Warning `Unhealthy` event.
//! - contains `crashloop`: CrashLoopBackOff, restartCount rising; a Warning `BackOff` event.
//! - contains `fail` (pods of a Job): the pod fails.
//! - anything else: Ready (or Succeeded, for a Job) after `ready_after`.
//!
//! Each container instance the kubelet starts writes `started <image>` to its log; a
//! crash-looping one ends each instance with `exited with code 1` (see `logs`).
//!
//! Simplifications, stated honestly: a rolling update surges the new ReplicaSet to full
//! size and scales old ones to zero once it is fully available (availability is kept, as
//! with maxUnavailable 0); CronJobs do not fire on their schedule (create a Job from one).
//! HPAs keep their target within its bounds; there is no metrics server to scale on.
//!
//! One file per controller (and the kubelet), each an `impl Controllers` block; this file
//! holds the loop that runs them in turn and the store helpers they share.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::logs::PodLogs;
use crate::resources::{self, ResourceType};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{Part, PatchKind, Propagation, Store, WriteOptions, now, owner_uids};

mod autoscalers;
mod claims;
mod daemon_sets;
mod deployments;
mod disruption_budgets;
mod jobs;
mod kubelet;
mod replica_sets;
mod stateful_sets;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
const TEMPLATE_HASH: &str = "pod-template-hash";
const MANAGER: &str = "kube-controller-manager";
pub const NODES: [(&str, &str); 3] = [
    ("sim-node-a", "eu-west-1a"),
    ("sim-node-b", "eu-west-1b"),
    ("sim-node-c", "eu-west-1c"),
];

fn rt(group: &str, kind: &str) -> &'static ResourceType {
    resources::lookup(group, kind)
}

pub struct Controllers {
    store: Store,
    /// The containers' logs the kubelet writes: a start line per instance, an exit line
    /// when a crashing one restarts.
    logs: PodLogs,
    ready_after: Duration,
    /// When each pod was first seen: the kubelet's clock for scripted behaviour.
    pod_started: HashMap<String, Instant>,
    /// Per Deployment: the new ReplicaSet and its available count when progress was last
    /// made, and when (the progress deadline counts from there).
    progress: HashMap<String, (String, i64, Instant)>,
    /// Last time an event was emitted per (object, reason), to aggregate like upstream.
    emitted: HashMap<(String, String), Instant>,
    /// The ClusterRoles' revision the aggregated roles were last computed from.
    aggregated_at: u64,
    /// While set, Jobs' pods keep running: a test plays their containers meanwhile.
    jobs_held: Arc<AtomicBool>,
}

fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or("")
}

fn ns_of(object: &Value) -> &str {
    object["metadata"]["namespace"].as_str().unwrap_or("")
}

fn uid_of(object: &Value) -> &str {
    object["metadata"]["uid"].as_str().unwrap_or("")
}

fn replicas_of(object: &Value) -> i64 {
    object["spec"]["replicas"].as_i64().unwrap_or(1)
}

fn owner_ref(owner: &Value, kind: &str, api_version: &str) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": name_of(owner),
        "uid": uid_of(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// A stable short hash of a pod template, like upstream's pod-template-hash.
/// Key order does not matter, as it does not upstream (which hashes the decoded struct).
pub fn template_hash(template: &Value) -> String {
    let digest = Sha256::digest(canonical(template).as_bytes());
    digest
        .iter()
        .take(5)
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..10]
        .to_string()
}

/// JSON text with object keys sorted at every level.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::String((*k).clone()), canonical(&map[*k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

pub(crate) fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn condition(kind: &str, status: bool, reason: &str, message: &str, since: &str) -> Value {
    json!({
        "type": kind,
        "status": if status { "True" } else { "False" },
        "reason": reason,
        "message": message,
        "lastUpdateTime": since,
        "lastTransitionTime": since,
    })
}

impl Controllers {
    pub fn new(
        store: Store,
        ready_after: Duration,
        jobs_held: Arc<AtomicBool>,
        logs: PodLogs,
    ) -> Self {
        Self {
            store,
            logs,
            ready_after,
            pod_started: HashMap::new(),
            progress: HashMap::new(),
            emitted: HashMap::new(),
            aggregated_at: 0,
            jobs_held,
        }
    }

    pub async fn run(mut self) {
        let changed = self.store.changed.clone();
        loop {
            self.reconcile();
            // Time-driven behaviour (readiness delays, deadlines) needs a tick too.
            tokio::select! {
                _ = changed.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    }

    pub fn reconcile(&mut self) {
        self.deployments();
        self.replica_sets();
        self.stateful_sets();
        self.daemon_sets();
        self.jobs();
        self.cron_jobs();
        self.kubelet();
        self.claims();
        self.autoscalers();
        self.disruption_budgets();
        let roles = self
            .store
            .changed_at(rt("rbac.authorization.k8s.io", "ClusterRole"));
        if roles != self.aggregated_at {
            crate::rbac::aggregate(&self.store);
            self.aggregated_at = roles;
        }
    }

    fn all(&self, rt: &'static ResourceType) -> Vec<Value> {
        self.store
            .list(
                rt,
                None,
                &LabelSelector::default(),
                &FieldSelector::default(),
            )
            .0
    }

    fn owned(&self, rt: &'static ResourceType, owner: &Value) -> Vec<Value> {
        let uid = uid_of(owner);
        self.store
            .list(
                rt,
                Some(ns_of(owner)),
                &LabelSelector::default(),
                &FieldSelector::default(),
            )
            .0
            .into_iter()
            .filter(|o| owner_uids(o).iter().any(|u| u == uid))
            .collect()
    }

    fn options() -> WriteOptions {
        WriteOptions {
            field_manager: MANAGER.into(),
            ..WriteOptions::default()
        }
    }

    // Controller writes that fail (a concurrent delete, say) are retried on the next pass,
    // as upstream controllers requeue; nothing else needs to know.
    fn set_status(&self, rt: &'static ResourceType, object: &Value, status: Value) {
        let body = json!({"metadata": {"name": name_of(object)}, "status": status});
        let _ = self.store.update(
            rt,
            ns_of(object),
            name_of(object),
            body,
            Part::Status,
            &Self::options(),
        );
    }

    fn merge(&self, rt: &'static ResourceType, object: &Value, patch: Value) {
        let _ = self.store.patch(
            rt,
            ns_of(object),
            name_of(object),
            PatchKind::Merge,
            &patch,
            Part::Main,
            &Self::options(),
        );
    }

    fn create(&self, rt: &'static ResourceType, namespace: &str, object: Value) {
        let _ = self.store.create(rt, namespace, object, &Self::options());
    }

    fn delete(&self, rt: &'static ResourceType, object: &Value) {
        let _ = self.store.delete(
            rt,
            ns_of(object),
            name_of(object),
            Propagation::Background,
            false,
        );
    }

    /// Records an Event like the kubelet or a controller does; repeats within a few
    /// seconds are aggregated into the existing event's count.
    pub fn event(
        &mut self,
        involved: &Value,
        kind: &str,
        reason: &str,
        message: &str,
        component: &str,
    ) {
        let key = (uid_of(involved).to_string(), reason.to_string());
        if self
            .emitted
            .get(&key)
            .is_some_and(|at| at.elapsed() < Duration::from_secs(2))
        {
            return;
        }
        self.emitted.insert(key, Instant::now());
        let events = rt("", "Event");
        let selector = FieldSelector::parse(
            &format!("involvedObject.uid={},reason={reason}", uid_of(involved)),
            "Event",
        )
        .expect("supported fields");
        let existing = self
            .store
            .list(
                events,
                Some(ns_of(involved)),
                &LabelSelector::default(),
                &selector,
            )
            .0;
        let now = now();
        match existing.first() {
            Some(event) => {
                let count = event["count"].as_i64().unwrap_or(1) + 1;
                self.merge(events, event, json!({"count": count, "lastTimestamp": now, "message": message}));
            }
            None => self.create(events, ns_of(involved), json!({
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"generateName": format!("{}.", name_of(involved)), "namespace": ns_of(involved)},
                "involvedObject": {
                    "apiVersion": involved["apiVersion"],
                    "kind": involved["kind"],
                    "name": name_of(involved),
                    "namespace": ns_of(involved),
                    "uid": uid_of(involved),
                },
                "type": kind,
                "reason": reason,
                "message": message,
                "count": 1,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "source": {"component": component},
            })),
        }
    }
}

fn merge_node(spec: &Value, node: &str) -> Value {
    let mut spec = spec.clone();
    spec["nodeName"] = json!(node);
    spec
}

/// An int-or-percent against a total; percentages round up for minimums (upstream rounds
/// minAvailable up and maxUnavailable down).
fn int_or_percent(value: &Value, total: i64, round_up: bool) -> i64 {
    match value {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => {
            let percent: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let scaled = percent * total;
            if round_up {
                (scaled + 99) / 100
            } else {
                scaled / 100
            }
        }
        _ => 0,
    }
}

fn max_unavailable(deployment: &Value, replicas: i64) -> i64 {
    let value = &deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"];
    if value.is_null() {
        replicas / 4
    } else {
        int_or_percent(value, replicas, false)
    }
}
