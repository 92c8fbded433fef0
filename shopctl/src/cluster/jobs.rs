//! Jobs on demand from a CronJob, made the way `kubectl create job --from=cronjob/NAME`
//! makes them (the CronJob's job template, the `cronjob.kubernetes.io/instantiate: manual`
//! annotation, the CronJob as controlling owner), and followed with a watch to the end.

use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::Resource;
use kube::api::{Api, ObjectMeta, PostParams, WatchEvent, WatchParams};
use serde::Serialize;

use super::access::Permission;
use super::rollout::{self, Workload};
use super::{Cluster, FIELD_MANAGER};

/// What running a Job from CronJob `cron_job` needs, and following it to its end.
pub fn needs(
    namespace: &str,
    cron_job: &str,
    follow: bool,
) -> std::collections::BTreeSet<Permission> {
    let ns = Some(namespace);
    let mut needs = std::collections::BTreeSet::from([
        Permission::new("get", "batch", "cronjobs", ns).named(cron_job),
        Permission::new("create", "batch", "jobs", ns),
    ]);
    if follow {
        needs.extend([
            Permission::new("get", "batch", "jobs", ns),
            Permission::new("watch", "batch", "jobs", ns),
            // Why a Job failed: its warning events.
            Permission::new("list", "", "events", ns),
        ]);
    }
    needs
}

#[derive(Debug, Clone, Serialize)]
pub struct JobOutcome {
    pub job: String,
    pub succeeded: bool,
    pub seconds: f64,
    /// For failures: the Failed condition's reason and message, or the timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Creates a Job from a CronJob's template; `edit` may change the spec first (a restore
/// runs a different command with the same image, identity and volumes).
pub async fn create_from_cron_job(
    cluster: &Cluster,
    namespace: &str,
    cron_job: &str,
    job_name: &str,
    edit: impl FnOnce(&mut k8s_openapi::api::batch::v1::JobSpec) -> anyhow::Result<()>,
) -> anyhow::Result<Job> {
    let cron_jobs: Api<CronJob> = Api::namespaced(cluster.client.clone(), namespace);
    let cron = cron_jobs
        .get_opt(cron_job)
        .await
        .map_err(|err| cluster.explain(err))?
        .ok_or_else(|| anyhow::anyhow!("there is no CronJob {cron_job} in namespace {namespace}; `shopctl apply` creates it"))?;
    let template = cron
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let mut annotations = template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default();
    annotations.insert("cronjob.kubernetes.io/instantiate".into(), "manual".into());
    let owner = cron
        .controller_owner_ref(&())
        .ok_or_else(|| anyhow::anyhow!("CronJob {cron_job} has no uid"))?;
    let job = Job {
        metadata: ObjectMeta {
            name: Some(job_name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
            annotations: Some(annotations),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        // The edit may refuse the template: then nothing is created.
        spec: match template.spec {
            Some(mut spec) => {
                edit(&mut spec)?;
                Some(spec)
            }
            None => None,
        },
        status: None,
    };
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), namespace);
    jobs.create(
        &PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        },
        &job,
    )
    .await
    .map_err(|err| cluster.explain(err))
}

fn finished(job: &Job) -> Option<(bool, String)> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .filter(|c| c.status == "True")
        .find_map(|c| match c.type_.as_str() {
            "Complete" => Some((true, String::new())),
            "Failed" => Some((
                false,
                format!(
                    "{}: {}",
                    c.reason.clone().unwrap_or_default(),
                    c.message.clone().unwrap_or_default()
                ),
            )),
            _ => None,
        })
}

/// Reports the Job's state as a phase of the work being tracked: its pods' counts.
fn show_state(name: &str, job: &Job) {
    let status = job.status.clone().unwrap_or_default();
    let state = format!(
        "Job {name}: {} active, {} succeeded, {} failed",
        status.active.unwrap_or(0),
        status.succeeded.unwrap_or(0),
        status.failed.unwrap_or(0)
    );
    crate::progress::report(crate::progress::Step::Phase(&state));
}

/// Follows a Job until it completes, fails, or `timeout` passes; its state is reported
/// as it changes.
pub async fn follow(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<JobOutcome> {
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), namespace);
    let started = Instant::now();
    let settled = tokio::time::timeout(timeout, async {
        loop {
            let job = jobs.get(name).await?;
            show_state(name, &job);
            if let Some(end) = finished(&job) {
                return Ok::<_, kube::Error>(end);
            }
            let version = job.metadata.resource_version.clone().unwrap_or_default();
            let params = WatchParams::default()
                .fields(&format!("metadata.name={name}"))
                .timeout(290);
            let mut events = jobs.watch(&params, &version).await?.boxed();
            while let Some(event) = events.try_next().await? {
                match event {
                    WatchEvent::Added(job) | WatchEvent::Modified(job) => {
                        show_state(name, &job);
                        if let Some(end) = finished(&job) {
                            return Ok(end);
                        }
                    }
                    WatchEvent::Deleted(_) => return Ok((false, "the Job was deleted".into())),
                    WatchEvent::Bookmark(_) => {}
                    WatchEvent::Error(_) => break,
                }
            }
        }
    })
    .await;
    let (succeeded, reason) = match settled {
        Ok(Ok((succeeded, reason))) => (succeeded, (!succeeded).then_some(reason)),
        Ok(Err(err)) => return Err(cluster.explain(err)),
        Err(_) => (
            false,
            Some(format!("timed out after {}s", timeout.as_secs())),
        ),
    };
    let warnings = if succeeded {
        Vec::new()
    } else {
        let workload = Workload {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        rollout::recent_warnings(cluster, &workload, 5).await
    };
    Ok(JobOutcome {
        job: name.to_string(),
        succeeded,
        seconds: started.elapsed().as_secs_f64(),
        reason,
        warnings,
    })
}
