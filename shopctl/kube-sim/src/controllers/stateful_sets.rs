//! StatefulSets: ordinal pods with their volume claims.

use super::*;

impl Controllers {
    pub(super) fn stateful_sets(&mut self) {
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
}
