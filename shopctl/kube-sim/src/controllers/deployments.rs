//! Deployments: a new ReplicaSet per pod template, rolled out with availability kept, and
//! their status as upstream reports it.

use super::*;

impl Controllers {
    pub(super) fn deployments(&mut self) {
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

    pub(super) fn deployment_status(
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
}
