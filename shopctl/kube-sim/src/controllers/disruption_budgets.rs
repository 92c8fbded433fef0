//! PodDisruptionBudgets: healthy pods counted and disruptions allowed.

use super::*;

impl Controllers {
    pub(super) fn disruption_budgets(&mut self) {
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
