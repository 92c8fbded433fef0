//! The kubelet: pods scheduled, started, made ready, crash-looped or failed as their
//! image tags script it, with container logs.

use super::*;

impl Controllers {
    pub(super) fn kubelet(&mut self) {
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
}
