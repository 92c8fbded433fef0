//! HorizontalPodAutoscalers: the target kept within its bounds.

use super::*;

impl Controllers {
    pub(super) fn autoscalers(&mut self) {
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
}
