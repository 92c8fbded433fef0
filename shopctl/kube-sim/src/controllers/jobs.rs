//! Jobs and CronJobs: pods run to completion or failure, and the CronJob status a Job
//! created from one updates.

use super::*;

impl Controllers {
    pub(super) fn jobs(&mut self) {
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

    pub(super) fn cron_jobs(&mut self) {
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
}
