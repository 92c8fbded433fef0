//! Restoring and verifying a cluster environment's database. Both run inside the cluster,
//! where the database and the backup job's IRSA identity are: a Job from the `db-backup`
//! CronJob's template, its verify step alone (running `shopctl db restore` for a restore).
//! For a restore, writers (the services) are scaled to zero first and brought back
//! afterwards, whatever happened in between.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, EnvVarSource, SecretKeySelector};
use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;

use super::access::{self, Permission};
use super::jobs::{self, JobOutcome};
use super::rollout::{self, ProgressCallback, WaitResult, Workload};
use super::{Cluster, FIELD_MANAGER};

use crate::backup::WRITERS;

#[derive(Debug, Clone, Serialize)]
pub struct RestoreOutcome {
    pub job: JobOutcome,
    /// The writers' replicas before the restore, as they were brought back.
    pub writers: BTreeMap<String, i32>,
    pub writers_back: Vec<WaitResult>,
}

impl RestoreOutcome {
    pub fn succeeded(&self) -> bool {
        self.job.succeeded && self.writers_back.iter().all(|w| w.ready)
    }
}

async fn scale(
    cluster: &Cluster,
    deployments: &Api<Deployment>,
    name: &str,
    replicas: i32,
) -> anyhow::Result<()> {
    let patch = serde_json::json!({"spec": {"replicas": replicas}});
    let params = PatchParams {
        field_manager: Some(format!("{FIELD_MANAGER}-restore")),
        ..PatchParams::default()
    };
    deployments
        .patch_scale(name, &params, &Patch::Merge(&patch))
        .await
        .map_err(|err| cluster.explain(err))?;
    Ok(())
}

fn writers(namespace: &str, names: &BTreeMap<String, i32>) -> Vec<Workload> {
    names
        .keys()
        .map(|name| Workload {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: namespace.into(),
            name: name.clone(),
        })
        .collect()
}

/// Asks for every permission a restore needs: scaling the writers down and back, and
/// running the restore Job. Then refuses while a canary or blue/green release runs twins
/// of the writers: scaling the writers to zero would leave those pods writing.
pub async fn preflight(cluster: &Cluster, namespace: &str) -> anyhow::Result<()> {
    let ns = Some(namespace);
    let mut needs = jobs::needs(namespace, "db-backup", true);
    for verb in ["get", "list", "watch"] {
        needs.insert(Permission::new(verb, "apps", "deployments", ns));
    }
    needs.insert(Permission::new("patch", "apps", "deployments/scale", ns));
    access::preflight(cluster, &needs).await?;
    let twins = super::progressive::twins(cluster, namespace).await?;
    if !twins.is_empty() {
        anyhow::bail!(
            "a canary or blue/green release is running {} beside the services; their pods \
             write to the database too, and a restore stops only the services: finish it \
             first (`shopctl apply` finalizes a switched blue/green release, `shopctl \
             rollback` switches back or aborts an interrupted one), then restore; nothing \
             was changed",
            twins.join(", ")
        );
    }
    Ok(())
}

pub async fn restore(
    cluster: &Cluster,
    namespace: &str,
    location: &str,
    backup: &str,
    timeout: Duration,
    on_progress: ProgressCallback,
) -> anyhow::Result<RestoreOutcome> {
    preflight(cluster, namespace).await?;
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), namespace);
    let mut before = BTreeMap::new();
    for name in WRITERS {
        if let Some(deployment) = deployments
            .get_opt(name)
            .await
            .map_err(|err| cluster.explain(err))?
        {
            before.insert(
                name.to_string(),
                deployment.spec.and_then(|s| s.replicas).unwrap_or(1),
            );
        }
    }
    for name in before.keys() {
        scale(cluster, &deployments, name, 0).await?;
    }
    // Every writer's pods gone before the database is replaced.
    let stopped = rollout::wait_all(
        cluster,
        &writers(namespace, &before),
        timeout,
        on_progress.clone(),
    )
    .await;
    let job = match stopped {
        Ok(results) if results.iter().all(|r| r.ready) => {
            run_restore_job(cluster, namespace, location, backup, timeout).await
        }
        Ok(results) => Err(anyhow::anyhow!(
            "the writers did not stop: {}",
            results
                .iter()
                .filter_map(|r| r.reason.clone())
                .collect::<Vec<_>>()
                .join("; ")
        )),
        Err(err) => Err(err),
    };
    // Writers come back whatever happened.
    for (name, replicas) in &before {
        scale(cluster, &deployments, name, *replicas).await?;
    }
    let writers_back =
        rollout::wait_all(cluster, &writers(namespace, &before), timeout, on_progress).await?;
    Ok(RestoreOutcome {
        job: job?,
        writers: before,
        writers_back,
    })
}

async fn run_restore_job(
    cluster: &Cluster,
    namespace: &str,
    location: &str,
    backup: &str,
    timeout: Duration,
) -> anyhow::Result<JobOutcome> {
    let args = [
        "db", "restore", "--from", location, "--backup", backup, "--yes",
    ]
    .map(String::from)
    .to_vec();
    // A failed restore is looked at, not retried against a half-restored database. It
    // replaces the schema, which only its owner may do.
    let job = DatabaseJob {
        step: "restore",
        backoff_limit: Some(0),
        credentials: Some("db-owner"),
    };
    database_job(cluster, namespace, job, |_| args, timeout).await
}

/// Proves a backup restores, in the cluster: the CronJob's verify step on its own, for
/// `backup` (default: the newest). Its result is recorded beside the backup and pushed
/// to the Pushgateway, as the nightly run's is.
pub async fn verify(
    cluster: &Cluster,
    namespace: &str,
    backup: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<JobOutcome> {
    let edit = |mut args: Vec<String>| {
        if let Some(backup) = backup {
            args.extend(["--backup".to_string(), backup.to_string()]);
        }
        args
    };
    let job = DatabaseJob {
        step: "verify",
        backoff_limit: None,
        credentials: None,
    };
    database_job(cluster, namespace, job, edit, timeout).await
}

/// One database step run as a Job from the `db-backup` CronJob.
pub(crate) struct DatabaseJob {
    /// The Job's and its container's name.
    pub step: &'static str,
    pub backoff_limit: Option<i32>,
    /// The Secret whose `url` the step connects with, when not the backup role's.
    pub credentials: Option<&'static str>,
}

/// Runs one database step as a Job from the `db-backup` CronJob: its `verify` container
/// (the one with the database credentials and the scratch volume), named after the step,
/// with the arguments `args` makes of the verify step's own, alone in the pod.
pub(crate) async fn database_job(
    cluster: &Cluster,
    namespace: &str,
    job: DatabaseJob,
    args: impl FnOnce(Vec<String>) -> Vec<String>,
    timeout: Duration,
) -> anyhow::Result<JobOutcome> {
    let DatabaseJob {
        step,
        backoff_limit,
        credentials,
    } = job;
    access::preflight(cluster, &jobs::needs(namespace, "db-backup", true)).await?;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let name = format!(
        "db-{step}-{}-{}",
        chrono::Utc::now().format("%Y%m%d%H%M%S"),
        &suffix[..5]
    );
    jobs::create_from_cron_job(cluster, namespace, "db-backup", &name, |spec| {
        let pod = spec.template.spec.get_or_insert_with(Default::default);
        let mut container = pod
            .init_containers
            .take()
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.name == "verify")
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "the db-backup CronJob has no `verify` step to run the {step} with; \
                     `shopctl apply` restores it"
                )
            })?;
        container.name = step.into();
        container.args = Some(args(container.args.take().unwrap_or_default()));
        if let Some(secret) = credentials {
            use_credentials(&mut container, secret)?;
        }
        pod.containers = vec![container];
        if backoff_limit.is_some() {
            spec.backoff_limit = backoff_limit;
        }
        Ok(())
    })
    .await?;
    jobs::follow(cluster, namespace, &name, timeout).await
}

/// Points the container's `DATABASE_URL` at `secret`'s `url`.
fn use_credentials(container: &mut Container, secret: &str) -> anyhow::Result<()> {
    let url = container
        .env
        .iter_mut()
        .flatten()
        .find(|var| var.name == "DATABASE_URL")
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the db-backup CronJob's verify step has no DATABASE_URL; `shopctl apply` restores it"
            )
        })?;
    url.value = None;
    url.value_from = Some(EnvVarSource {
        secret_key_ref: Some(SecretKeySelector {
            name: secret.to_string(),
            key: "url".to_string(),
            optional: None,
        }),
        ..EnvVarSource::default()
    });
    Ok(())
}
