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

    fn deployments(&mut self) {
        let replica_sets = rt("apps", "ReplicaSet");
        for deployment in self.all(rt("apps", "Deployment")) {
            let replicas = replicas_of(&deployment);
            let template = deployment["spec"]["template"].clone();
            let hash = template_hash(&template);
            let owned = self.owned(replica_sets, &deployment);
            let revision_of = |rs: &Value| {
                rs["metadata"]["annotations"][REVISION]
                    .as_str()
                    .and_then(|r| r.parse::<i64>().ok())
                    .unwrap_or(0)
            };
            let newest = owned.iter().map(revision_of).max().unwrap_or(0);
            let current = owned
                .iter()
                .find(|rs| rs["metadata"]["labels"][TEMPLATE_HASH] == hash.as_str());
            let paused = deployment["spec"]["paused"].as_bool().unwrap_or(false);
            let new_rs_name = format!("{}-{hash}", name_of(&deployment));
            let revision = match current {
                None if !paused => {
                    let mut rs_template = template.clone();
                    rs_template["metadata"]["labels"][TEMPLATE_HASH] = json!(hash);
                    let mut selector = deployment["spec"]["selector"].clone();
                    selector["matchLabels"][TEMPLATE_HASH] = json!(hash);
                    let mut labels = template["metadata"]["labels"].clone();
                    labels[TEMPLATE_HASH] = json!(hash);
                    self.create(replica_sets, ns_of(&deployment), json!({
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "metadata": {
                            "name": new_rs_name,
                            "namespace": ns_of(&deployment),
                            "labels": labels,
                            "annotations": {REVISION: (newest + 1).to_string()},
                            "ownerReferences": [owner_ref(&deployment, "Deployment", "apps/v1")],
                        },
                        "spec": {"replicas": replicas, "selector": selector, "template": rs_template},
                    }));
                    newest + 1
                }
                None => newest,
                Some(rs) => {
                    // Upstream: rolling back to an old template reuses its ReplicaSet and
                    // gives it the next revision number.
                    let mut revision = revision_of(rs);
                    if revision < newest {
                        revision = newest + 1;
                        self.merge(
                            replica_sets,
                            rs,
                            json!({"metadata": {"annotations": {REVISION: revision.to_string()}}}),
                        );
                    }
                    if replicas_of(rs) != replicas && !paused {
                        self.merge(replica_sets, rs, json!({"spec": {"replicas": replicas}}));
                    }
                    revision
                }
            };
            if deployment["metadata"]["annotations"][REVISION].as_str()
                != Some(&revision.to_string())
                && revision > 0
            {
                self.merge(
                    rt("apps", "Deployment"),
                    &deployment,
                    json!({"metadata": {"annotations": {REVISION: revision.to_string()}}}),
                );
            }
            self.deployment_status(&deployment, &new_rs_name, replicas, paused);
        }
    }

    fn deployment_status(
        &mut self,
        deployment: &Value,
        new_rs_name: &str,
        replicas: i64,
        paused: bool,
    ) {
        let owned = self.owned(rt("apps", "ReplicaSet"), deployment);
        let new_rs = owned.iter().find(|rs| name_of(rs) == new_rs_name);
        let count = |rs: &Value, field: &str| rs["status"][field].as_i64().unwrap_or(0);
        let new_available = new_rs.map_or(0, |rs| count(rs, "availableReplicas"));
        let new_replicas = new_rs.map_or(0, |rs| count(rs, "replicas"));
        if new_available >= replicas && !paused {
            for old in owned
                .iter()
                .filter(|rs| name_of(rs) != new_rs_name && replicas_of(rs) != 0)
            {
                self.merge(
                    rt("apps", "ReplicaSet"),
                    old,
                    json!({"spec": {"replicas": 0}}),
                );
            }
        }
        let total: i64 = owned.iter().map(|rs| count(rs, "replicas")).sum();
        let ready: i64 = owned.iter().map(|rs| count(rs, "readyReplicas")).sum();
        let available: i64 = owned.iter().map(|rs| count(rs, "availableReplicas")).sum();
        let complete = new_replicas == replicas && new_available == replicas && total == replicas;

        let key = uid_of(deployment).to_string();
        let progressed = self
            .progress
            .get(&key)
            .is_none_or(|(rs, avail, _)| rs != new_rs_name || *avail != new_available);
        if progressed {
            self.progress.insert(
                key.clone(),
                (new_rs_name.to_string(), new_available, Instant::now()),
            );
        }
        let since = self.progress[&key].2;
        let previous: Vec<Value> = deployment["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let keep_time = |kind: &str, reason: &str| {
            previous
                .iter()
                .find(|c| c["type"] == kind && c["reason"] == reason)
                .and_then(|c| c["lastUpdateTime"].as_str().map(str::to_string))
                .unwrap_or_else(now)
        };
        let deadline = Duration::from_secs(
            deployment["spec"]["progressDeadlineSeconds"]
                .as_u64()
                .unwrap_or(600),
        );
        let (progressing, reason, message) = if complete {
            (
                true,
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{new_rs_name}\" has successfully progressed."),
            )
        } else if since.elapsed() > deadline {
            (
                false,
                "ProgressDeadlineExceeded",
                format!("ReplicaSet \"{new_rs_name}\" has timed out progressing."),
            )
        } else {
            (
                true,
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{new_rs_name}\" is progressing."),
            )
        };
        let max_unavailable = max_unavailable(deployment, replicas);
        let is_available = available >= replicas - max_unavailable;
        let available_reason = if is_available {
            "MinimumReplicasAvailable"
        } else {
            "MinimumReplicasUnavailable"
        };
        let available_message = if is_available {
            "Deployment has minimum availability."
        } else {
            "Deployment does not have minimum availability."
        };
        let status = json!({
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": total,
            "updatedReplicas": new_replicas,
            "readyReplicas": ready,
            "availableReplicas": available,
            "unavailableReplicas": (replicas - available).max(0),
            "conditions": [
                condition("Available", is_available, available_reason, available_message, &keep_time("Available", available_reason)),
                condition("Progressing", progressing, reason, &message, &keep_time("Progressing", reason)),
            ],
        });
        self.set_status(rt("apps", "Deployment"), deployment, status);
    }

    fn new_pod(
        &self,
        owner: &Value,
        owner_kind: &str,
        api_version: &str,
        name: Value,
        node: &str,
    ) -> Value {
        let template = &owner["spec"]["template"];
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name["name"],
                "generateName": name["generateName"],
                "namespace": ns_of(owner),
                "labels": template["metadata"]["labels"],
                "annotations": template["metadata"]["annotations"],
                "ownerReferences": [owner_ref(owner, owner_kind, api_version)],
            },
            "spec": merge_node(&template["spec"], node),
            "status": {"phase": "Pending"},
        })
    }

    /// The scheduler: the node with the fewest pods of the same owner, then the fewest
    /// pods. Upstream's default topology spreading likewise spreads a workload's pods
    /// across nodes and zones.
    fn pick_node(&self, owner: &Value) -> String {
        let pods = self.all(rt("", "Pod"));
        let uid = uid_of(owner);
        NODES
            .iter()
            .map(|(node, _)| {
                let on_node: Vec<&Value> = pods
                    .iter()
                    .filter(|p| p["spec"]["nodeName"] == *node)
                    .collect();
                let siblings = on_node
                    .iter()
                    .filter(|p| owner_uids(p).iter().any(|u| u == uid))
                    .count();
                (siblings, on_node.len(), *node)
            })
            .min()
            .map(|(_, _, node)| node.to_string())
            .unwrap_or_default()
    }

    fn pod_counts(pods: &[Value]) -> (i64, i64) {
        let live: Vec<&Value> = pods
            .iter()
            .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
            .collect();
        (
            live.len() as i64,
            live.iter().filter(|p| is_ready(p)).count() as i64,
        )
    }

    fn replica_sets(&mut self) {
        let pods_rt = rt("", "Pod");
        for rs in self.all(rt("apps", "ReplicaSet")) {
            let mut pods = self.owned(pods_rt, &rs);
            let desired = replicas_of(&rs);
            while (pods.len() as i64) < desired {
                let pod = self.new_pod(
                    &rs,
                    "ReplicaSet",
                    "apps/v1",
                    json!({"generateName": format!("{}-", name_of(&rs))}),
                    &self.pick_node(&rs),
                );
                self.create(pods_rt, ns_of(&rs), pod.clone());
                pods.push(pod);
            }
            if (pods.len() as i64) > desired {
                // Upstream deletes not-ready pods first.
                pods.sort_by_key(is_ready);
                for pod in pods.iter().take(pods.len() - desired as usize) {
                    self.delete(pods_rt, pod);
                }
            }
            let pods = self.owned(pods_rt, &rs);
            let (count, ready) = Self::pod_counts(&pods);
            self.set_status(
                rt("apps", "ReplicaSet"),
                &rs,
                json!({
                    "replicas": count,
                    "fullyLabeledReplicas": count,
                    "readyReplicas": ready,
                    "availableReplicas": ready,
                    "observedGeneration": rs["metadata"]["generation"],
                }),
            );
        }
    }

    /// Recreates pods whose template is out of date; returns (pods, up to date, ready).
    fn revisioned_pods(
        &self,
        owner: &Value,
        kind: &str,
        names: Vec<(String, String)>,
    ) -> (i64, i64, i64, String) {
        let pods_rt = rt("", "Pod");
        let revision = format!(
            "{}-{}",
            name_of(owner),
            template_hash(&owner["spec"]["template"])
        );
        let pods = self.owned(pods_rt, owner);
        for pod in &pods {
            let wanted = names.iter().any(|(name, _)| name == name_of(pod));
            if !wanted || pod["metadata"]["labels"]["controller-revision-hash"] != revision.as_str()
            {
                self.delete(pods_rt, pod);
            }
        }
        for (name, node) in &names {
            if !pods.iter().any(|p| name_of(p) == name) {
                let mut pod = self.new_pod(owner, kind, "apps/v1", json!({"name": name}), node);
                pod["metadata"]["labels"]["controller-revision-hash"] = json!(revision);
                self.create(pods_rt, ns_of(owner), pod);
            }
        }
        let pods = self.owned(pods_rt, owner);
        let (count, ready) = Self::pod_counts(&pods);
        let current = pods
            .iter()
            .filter(|p| p["metadata"]["labels"]["controller-revision-hash"] == revision.as_str())
            .count() as i64;
        (count, current, ready, revision)
    }

    fn stateful_sets(&mut self) {
        let claims = rt("", "PersistentVolumeClaim");
        for sts in self.all(rt("apps", "StatefulSet")) {
            let replicas = replicas_of(&sts);
            let names: Vec<(String, String)> = (0..replicas)
                .map(|i| {
                    (
                        format!("{}-{i}", name_of(&sts)),
                        NODES[i as usize % NODES.len()].0.to_string(),
                    )
                })
                .collect();
            for (pod, _) in &names {
                for template in sts["spec"]["volumeClaimTemplates"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let claim = format!("{}-{pod}", name_of(template));
                    if self.store.get(claims, ns_of(&sts), &claim).is_err() {
                        self.create(claims, ns_of(&sts), json!({
                            "apiVersion": "v1",
                            "kind": "PersistentVolumeClaim",
                            "metadata": {"name": claim, "namespace": ns_of(&sts), "labels": sts["spec"]["selector"]["matchLabels"]},
                            "spec": template["spec"],
                        }));
                    }
                }
            }
            let (count, current, ready, revision) =
                self.revisioned_pods(&sts, "StatefulSet", names);
            self.set_status(
                rt("apps", "StatefulSet"),
                &sts,
                json!({
                    "observedGeneration": sts["metadata"]["generation"],
                    "replicas": count,
                    "readyReplicas": ready,
                    "availableReplicas": ready,
                    "currentReplicas": current,
                    "updatedReplicas": current,
                    "currentRevision": revision,
                    "updateRevision": revision,
                }),
            );
        }
    }

    fn daemon_sets(&mut self) {
        for ds in self.all(rt("apps", "DaemonSet")) {
            let names = NODES
                .iter()
                .map(|(node, _)| (format!("{}-{node}", name_of(&ds)), node.to_string()))
                .collect();
            let (count, current, ready, _) = self.revisioned_pods(&ds, "DaemonSet", names);
            self.set_status(
                rt("apps", "DaemonSet"),
                &ds,
                json!({
                    "observedGeneration": ds["metadata"]["generation"],
                    "desiredNumberScheduled": NODES.len(),
                    "currentNumberScheduled": count,
                    "updatedNumberScheduled": current,
                    "numberReady": ready,
                    "numberAvailable": ready,
                    "numberMisscheduled": 0,
                }),
            );
        }
    }

    fn jobs(&mut self) {
        let pods_rt = rt("", "Pod");
        let jobs_rt = rt("batch", "Job");
        for job in self.all(jobs_rt) {
            let finished = job["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| {
                    (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True"
                });
            if finished {
                continue;
            }
            let pods = self.owned(pods_rt, &job);
            let phase = |p: &Value, phase: &str| p["status"]["phase"] == phase;
            let succeeded = pods.iter().filter(|p| phase(p, "Succeeded")).count() as i64;
            let failed = pods.iter().filter(|p| phase(p, "Failed")).count() as i64;
            let active = pods.len() as i64 - succeeded - failed;
            let backoff_limit = job["spec"]["backoffLimit"].as_i64().unwrap_or(6);
            let start = job["status"]["startTime"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(now);
            let mut status = json!({"startTime": start, "active": active, "succeeded": succeeded, "failed": failed});
            if succeeded > 0 {
                let at = now();
                status["completionTime"] = json!(at);
                status["active"] = json!(0);
                status["conditions"] = json!([
                    condition(
                        "SuccessCriteriaMet",
                        true,
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                        &at
                    ),
                    condition(
                        "Complete",
                        true,
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                        &at
                    ),
                ]);
            } else if failed > backoff_limit {
                let at = now();
                status["active"] = json!(0);
                status["conditions"] = json!([
                    condition(
                        "FailureTarget",
                        true,
                        "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit",
                        &at
                    ),
                    condition(
                        "Failed",
                        true,
                        "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit",
                        &at
                    ),
                ]);
                self.event(
                    &job,
                    "Warning",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                    "job-controller",
                );
            } else if active == 0 {
                let pod = self.new_pod(
                    &job,
                    "Job",
                    "batch/v1",
                    json!({"generateName": format!("{}-", name_of(&job))}),
                    &self.pick_node(&job),
                );
                self.create(pods_rt, ns_of(&job), pod);
                status["active"] = json!(1);
            }
            if status.get("conditions").is_none() {
                status["conditions"] = json!([]);
            }
            self.set_status(jobs_rt, &job, status);
        }
    }

    fn cron_jobs(&mut self) {
        let jobs_rt = rt("batch", "Job");
        for cron in self.all(rt("batch", "CronJob")) {
            let jobs = self.owned(jobs_rt, &cron);
            let done = |job: &Value| {
                job["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| {
                        (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True"
                    })
            };
            let active: Vec<Value> = jobs.iter().filter(|j| !done(j)).map(|j| json!({"apiVersion": "batch/v1", "kind": "Job", "name": name_of(j), "namespace": ns_of(j), "uid": uid_of(j)})).collect();
            let last_success = jobs
                .iter()
                .filter_map(|j| j["status"]["completionTime"].as_str())
                .max()
                .map(str::to_string);
            let mut status = cron["status"].clone();
            status["active"] = json!(active);
            if let Some(at) = last_success {
                status["lastSuccessfulTime"] = json!(at);
            }
            self.set_status(rt("batch", "CronJob"), &cron, status);
        }
    }

    fn kubelet(&mut self) {
        let pods_rt = rt("", "Pod");
        let pods = self.all(pods_rt);
        self.pod_started
            .retain(|uid, _| pods.iter().any(|p| uid_of(p) == uid));
        self.logs
            .retain(|ns, name| pods.iter().any(|p| ns_of(p) == ns && name_of(p) == name));
        for pod in pods {
            let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
            if matches!(phase, "Succeeded" | "Failed") {
                continue;
            }
            let started = *self
                .pod_started
                .entry(uid_of(&pod).to_string())
                .or_insert_with(Instant::now);
            let elapsed = started.elapsed();
            let containers: Vec<Value> = pod["spec"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let tags: Vec<String> = containers
                .iter()
                .map(|c| {
                    c["image"]
                        .as_str()
                        .unwrap_or("")
                        .rsplit(':')
                        .next()
                        .unwrap_or("")
                        .to_string()
                })
                .collect();
            let scripted = |word: &str| tags.iter().any(|t| t.contains(word));
            let in_job = pod["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["kind"] == "Job");
            let at = pod["status"]["startTime"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(now);
            let container_status = |ready: bool, state: Value, restarts: u64| -> Vec<Value> {
                containers.iter().map(|c| json!({"name": c["name"], "image": c["image"], "ready": ready, "started": ready, "restartCount": restarts, "state": state})).collect()
            };
            let base = |phase: &str, ready: bool| {
                json!({
                    "phase": phase,
                    "startTime": at,
                    "hostIP": "10.0.0.10",
                    "podIP": format!("10.244.0.{}", 10 + (uid_of(&pod).as_bytes()[0] % 200)),
                    "conditions": [
                        condition("PodScheduled", true, "", "", &at),
                        condition("Ready", ready, if ready { "" } else { "ContainersNotReady" }, "", &at),
                        condition("ContainersReady", ready, if ready { "" } else { "ContainersNotReady" }, "", &at),
                    ],
                })
            };
            let status = if elapsed < self.ready_after
                || (in_job && self.jobs_held.load(Ordering::SeqCst))
            {
                continue;
            } else if in_job {
                let failed = scripted("fail");
                let mut status = base(if failed { "Failed" } else { "Succeeded" }, false);
                status["containerStatuses"] = json!(container_status(
                    false,
                    json!({"terminated": {"exitCode": if failed { 1 } else { 0 }, "reason": if failed { "Error" } else { "Completed" }}}),
                    0
                ));
                status
            } else if scripted("crashloop") {
                let restarts = elapsed.as_secs();
                let mut status = base("Running", false);
                status["containerStatuses"] = json!(container_status(
                    false,
                    json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting failed container"}}),
                    restarts
                ));
                let container = containers
                    .first()
                    .map(|c| c["name"].as_str().unwrap_or(""))
                    .unwrap_or("");
                self.event(
                    &pod,
                    "Warning",
                    "BackOff",
                    &format!(
                        "Back-off restarting failed container {container} in pod {}",
                        name_of(&pod)
                    ),
                    "kubelet",
                );
                status
            } else if scripted("never-ready") {
                let mut status = base("Running", false);
                status["containerStatuses"] = json!(container_status(
                    false,
                    json!({"running": {"startedAt": at}}),
                    0
                ));
                self.event(
                    &pod,
                    "Warning",
                    "Unhealthy",
                    "Readiness probe failed: HTTP probe failed with statuscode: 503",
                    "kubelet",
                );
                status
            } else {
                let mut status = base("Running", true);
                status["containerStatuses"] = json!(container_status(
                    true,
                    json!({"running": {"startedAt": at}}),
                    0
                ));
                status
            };
            for (container, status) in containers
                .iter()
                .zip(status["containerStatuses"].as_array().into_iter().flatten())
            {
                let image = container["image"].as_str().unwrap_or_default();
                self.logs.started(
                    ns_of(&pod),
                    name_of(&pod),
                    container["name"].as_str().unwrap_or_default(),
                    status["restartCount"].as_u64().unwrap_or(0),
                    &format!("started {image}"),
                    "exited with code 1",
                );
            }
            self.set_status(pods_rt, &pod, status);
        }
    }

    /// A dynamic provisioner: a claim naming an existing StorageClass is bound to a volume
    /// of the size it asked for; one naming no existing class stays Pending, as upstream
    /// (no provisioner answers it). A claim once bound (or Lost) keeps its phase.
    fn claims(&mut self) {
        let classes = self.all(rt("storage.k8s.io", "StorageClass"));
        // A claim without a class gets the default one, as the DefaultStorageClass
        // admission plugin does.
        let default = classes.iter().find(|c| {
            c["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
        });
        for claim in self.all(rt("", "PersistentVolumeClaim")) {
            if matches!(claim["status"]["phase"].as_str(), Some("Bound" | "Lost")) {
                continue;
            }
            let class = match claim["spec"]["storageClassName"].as_str() {
                Some(class) => Some(class),
                None => default.map(name_of),
            };
            let status = if classes.iter().any(|c| Some(name_of(c)) == class) {
                json!({
                    "phase": "Bound",
                    "accessModes": claim["spec"]["accessModes"],
                    "capacity": {"storage": claim["spec"]["resources"]["requests"]["storage"]},
                })
            } else {
                json!({"phase": "Pending"})
            };
            if claim["status"] != status {
                self.set_status(rt("", "PersistentVolumeClaim"), &claim, status);
            }
        }
    }

    fn autoscalers(&mut self) {
        for hpa in self.all(rt("autoscaling", "HorizontalPodAutoscaler")) {
            let target = &hpa["spec"]["scaleTargetRef"];
            let Some(target_rt) = resources::RESOURCES
                .iter()
                .find(|r| r.kind == target["kind"] && r.scale)
            else {
                continue;
            };
            let Ok(workload) = self.store.get(
                target_rt,
                ns_of(&hpa),
                target["name"].as_str().unwrap_or(""),
            ) else {
                continue;
            };
            let current = workload["status"]["replicas"].as_i64().unwrap_or(0);
            // Upstream enforces the bounds before consulting metrics, so an HPA scales its
            // target into [minReplicas, maxReplicas] even without a metrics server.
            let min = hpa["spec"]["minReplicas"].as_i64().unwrap_or(1);
            let max = hpa["spec"]["maxReplicas"].as_i64().unwrap_or(min);
            // Upstream: a target scaled to zero deactivates the HPA (maintenance mode).
            let disabled = replicas_of(&workload) == 0;
            let bounded = if disabled {
                0
            } else {
                replicas_of(&workload).clamp(min, max.max(min))
            };
            if bounded != replicas_of(&workload) {
                self.merge(target_rt, &workload, json!({"spec": {"replicas": bounded}}));
            }
            let at = now();
            let active = if disabled {
                condition(
                    "ScalingActive",
                    false,
                    "ScalingDisabled",
                    "scaling is disabled since the replica count of the target is zero",
                    &at,
                )
            } else {
                condition(
                    "ScalingActive",
                    false,
                    "FailedGetResourceMetric",
                    "the simulated cluster has no metrics server",
                    &at,
                )
            };
            self.set_status(rt("autoscaling", "HorizontalPodAutoscaler"), &hpa, json!({
                "currentReplicas": current,
                "desiredReplicas": bounded,
                "conditions": [
                    condition("AbleToScale", true, "SucceededGetScale", "the HPA controller was able to get the target's current scale", &at),
                    active,
                ],
            }));
        }
    }

    fn disruption_budgets(&mut self) {
        for pdb in self.all(rt("policy", "PodDisruptionBudget")) {
            let Ok(selector) = LabelSelector::from_object(&pdb["spec"]["selector"]) else {
                continue;
            };
            let pods = self
                .store
                .list(
                    rt("", "Pod"),
                    Some(ns_of(&pdb)),
                    &selector,
                    &FieldSelector::default(),
                )
                .0;
            let expected = pods.len() as i64;
            let healthy = pods.iter().filter(|p| is_ready(p)).count() as i64;
            let desired = match (&pdb["spec"]["minAvailable"], &pdb["spec"]["maxUnavailable"]) {
                (min, _) if !min.is_null() => int_or_percent(min, expected, true),
                (_, max) if !max.is_null() => expected - int_or_percent(max, expected, false),
                _ => expected,
            };
            let allowed = (healthy - desired).max(0);
            let at = now();
            self.set_status(rt("policy", "PodDisruptionBudget"), &pdb, json!({
                "observedGeneration": pdb["metadata"]["generation"],
                "expectedPods": expected,
                "currentHealthy": healthy,
                "desiredHealthy": desired,
                "disruptionsAllowed": allowed,
                "conditions": [condition("DisruptionAllowed", allowed > 0, if allowed > 0 { "SufficientPods" } else { "InsufficientPods" }, "", &at)],
            }));
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
