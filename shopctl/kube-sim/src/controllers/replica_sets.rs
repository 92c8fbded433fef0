//! ReplicaSets: pods created and removed to match replicas, spread over the nodes.

use super::*;

impl Controllers {
    pub(super) fn new_pod(
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
    pub(super) fn pick_node(&self, owner: &Value) -> String {
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

    pub(super) fn pod_counts(pods: &[Value]) -> (i64, i64) {
        let live: Vec<&Value> = pods
            .iter()
            .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
            .collect();
        (
            live.len() as i64,
            live.iter().filter(|p| is_ready(p)).count() as i64,
        )
    }

    pub(super) fn replica_sets(&mut self) {
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
    pub(super) fn revisioned_pods(
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
}
