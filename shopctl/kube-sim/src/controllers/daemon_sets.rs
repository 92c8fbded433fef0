//! DaemonSets: one pod per node.

use super::*;

impl Controllers {
    pub(super) fn daemon_sets(&mut self) {
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
}
