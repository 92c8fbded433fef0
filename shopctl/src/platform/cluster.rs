//! The cluster target: an environment's namespace on Kubernetes, reached the way kubectl
//! does; releases kept in the cluster, backups in the environment's bucket, database work
//! done by Jobs inside the cluster.

use std::time::Duration;

use tokio::sync::OnceCell;

use super::{
    BackupTaken, Down, Observer, Options, Platform, PlatformFuture, Restored, Rollback,
    ServiceRolledBack, Verified,
};
use crate::backup::{self, Location};
use crate::cluster::apply::ApplyOptions;
use crate::cluster::deploy::{BasePolicy, DeployOptions, Deployer};
use crate::cluster::logs::{LogEvent, LogOptions};
use crate::cluster::release::ReleaseStore;
use crate::cluster::rollout::{WaitResult, Workload};
use crate::cluster::runbook::ClusterOperator;
use crate::cluster::{Cluster, access, jobs, restore, status};
use crate::env::Environment;
use crate::release::ReleaseRecord;
use crate::reports::{History, Status, Target};
use crate::runbook::{Executor, RunOptions, RunOutcome, Runbook};
use crate::validate::ClusterTarget;
use crate::validate::cluster::DriftCheck;

/// The CronJob every backup, restore and verification Job is made from.
const BACKUP_CRON_JOB: &str = "db-backup";

/// How long a runbook's SQL Job may take.
const RUNBOOK_QUERY_WITHIN: Duration = Duration::from_secs(300);

pub struct ClusterPlatform {
    environment: Environment,
    options: Options,
    cluster: OnceCell<Cluster>,
}

impl ClusterPlatform {
    pub fn new(environment: Environment, options: Options) -> Self {
        Self {
            environment,
            options,
            cluster: OnceCell::new(),
        }
    }

    /// The cluster, connected on first use.
    pub async fn cluster(&self) -> anyhow::Result<&Cluster> {
        self.cluster
            .get_or_try_init(|| Cluster::connect(&self.options.cluster, &self.environment))
            .await
    }

    fn namespace(&self) -> &str {
        &self.environment.namespace
    }

    fn observer(&self) -> &Observer {
        &self.options.observer
    }

    /// The environment's bucket and prefix, as `s3://bucket/prefix`.
    pub fn bucket(&self) -> String {
        format!(
            "s3://{}/{}",
            self.environment.backup.bucket, self.environment.backup.prefix
        )
    }

    /// One workload's rollout wait, judged as every rollout is.
    async fn wait_for(&self, workload: Workload, within: Duration) -> anyhow::Result<WaitResult> {
        let mut results = crate::cluster::rollout::wait_all(
            self.cluster().await?,
            &[workload],
            within,
            self.observer().rollout.clone(),
        )
        .await?;
        results
            .pop()
            .ok_or_else(|| anyhow::anyhow!("the rollout wait returned nothing"))
    }

    async fn backup_job(&self, wait: Option<Duration>) -> anyhow::Result<BackupTaken> {
        let cluster = self.cluster().await?;
        let namespace = self.namespace();
        // Time-ordered and unique, like kubectl's generated names.
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let name = format!(
            "db-backup-manual-{}-{}",
            chrono::Utc::now().format("%Y%m%d%H%M%S"),
            &suffix[..5]
        );
        access::preflight(
            cluster,
            &jobs::needs(namespace, BACKUP_CRON_JOB, wait.is_some()),
        )
        .await?;
        let job =
            jobs::create_from_cron_job(cluster, namespace, BACKUP_CRON_JOB, &name, |_| Ok(()))
                .await?;
        self.observer().note(&format!(
            "created Job {name} from CronJob {BACKUP_CRON_JOB} in namespace {namespace}"
        ));
        let Some(within) = wait else {
            return Ok(BackupTaken::Started { job: name });
        };
        let outcome = jobs::follow(cluster, namespace, &name, within).await?;
        if !outcome.succeeded {
            return Ok(BackupTaken::Failed {
                reason: format!(
                    "Job {name} failed after {:.0}s: {}",
                    outcome.seconds,
                    outcome.reason.unwrap_or_default()
                ),
                details: outcome.warnings,
            });
        }
        // The backup this Job made: the newest, and not older than the Job.
        let started = job
            .metadata
            .creation_timestamp
            .map(|t| t.0)
            .unwrap_or_default();
        let bucket = self.bucket();
        let newest = Location::parse(&bucket)
            .await?
            .list()
            .await?
            .into_iter()
            .max_by_key(|b| b.created_at);
        Ok(
            match newest.filter(|b| b.created_at.timestamp() >= started.as_second()) {
                Some(manifest) => {
                    self.observer()
                        .note(&format!("Job {name} completed in {:.0}s", outcome.seconds));
                    BackupTaken::Done {
                        manifest: Box::new(manifest),
                        location: bucket,
                    }
                }
                None => BackupTaken::Failed {
                    reason: format!(
                        "Job {name} completed, but no backup newer than its start is in {bucket}"
                    ),
                    details: vec![format!(
                        "check its logs: kubectl logs -n {namespace} job/{name} --all-containers"
                    )],
                },
            },
        )
    }

    async fn verify_in_cluster(&self, id: String, within: Duration) -> anyhow::Result<Verified> {
        let location = Location::parse(&self.bucket()).await?;
        // An unknown id is refused before anything runs in the cluster.
        location.get(&id).await.map_err(|err| {
            anyhow::anyhow!(
                "{err:#}; `shopctl backup --env {} list` shows the backups",
                self.environment.name
            )
        })?;
        let cluster = self.cluster().await?;
        self.observer().note(&format!(
            "verifying backup {id}: a Job restores it into a scratch database in the cluster"
        ));
        let started = chrono::Utc::now();
        let outcome = restore::verify(cluster, self.namespace(), Some(&id), within).await?;
        // Only a result this Job recorded counts, not an older one.
        let verification = location
            .get(&id)
            .await?
            .verification
            .filter(|v| v.at >= started);
        Ok(match verification {
            // A recorded failure counts even when the Job then failed too.
            Some(verification) if outcome.succeeded || !verification.ok => {
                Verified::Recorded { id, verification }
            }
            _ => Verified::NotRecorded {
                reason: format!(
                    "the verify Job {} ({}); no verification of {id} was recorded; check its logs: kubectl logs -n {} job/{} --all-containers",
                    if outcome.succeeded {
                        "completed"
                    } else {
                        "failed"
                    },
                    outcome.reason.unwrap_or_default(),
                    self.namespace(),
                    outcome.job
                ),
                id,
            },
        })
    }

    async fn restore_in_cluster(&self, id: &str, within: Duration) -> anyhow::Result<Restored> {
        let cluster = self.cluster().await?;
        restore::preflight(cluster, self.namespace()).await?;
        self.observer().note(&format!(
            "stopping the writers ({}), restoring {id} in a Job, bringing the writers back…",
            backup::WRITERS.join(", "),
        ));
        let outcome = restore::restore(
            cluster,
            self.namespace(),
            &self.bucket(),
            id,
            within,
            self.observer().rollout.clone(),
        )
        .await?;
        let succeeded = outcome.succeeded();
        Ok(Restored {
            id: id.to_owned(),
            succeeded,
            seconds: outcome.job.seconds,
            detail: if succeeded {
                "the Job checked rows and checksums against the manifest".to_owned()
            } else {
                outcome
                    .job
                    .reason
                    .clone()
                    .unwrap_or_else(|| "the writers did not come back".into())
            },
            warnings: outcome.job.warnings,
        })
    }
}

impl Platform for ClusterPlatform {
    fn environment(&self) -> &Environment {
        &self.environment
    }

    fn target(&self) -> Target {
        Target::Cluster
    }

    fn status(&self) -> PlatformFuture<'_, Status> {
        Box::pin(async move {
            let namespaces = [
                self.environment.namespace.clone(),
                self.environment.observability.namespace.clone(),
            ];
            let report =
                status::status(self.cluster().await?, &self.environment.name, &namespaces).await?;
            Ok(Status::Cluster(report))
        })
    }

    fn history(&self) -> PlatformFuture<'_, History> {
        Box::pin(async move {
            let releases = ReleaseStore::new(
                self.cluster().await?,
                self.namespace(),
                &self.environment.name,
            )
            .list()
            .await?;
            Ok(History {
                environment: self.environment.name.clone(),
                target: Target::Cluster,
                current: crate::cluster::progressive::running(&releases).map(|r| r.revision),
                releases: releases
                    .into_iter()
                    .map(ReleaseRecord::Cluster)
                    .collect::<Vec<ReleaseRecord>>(),
            })
        })
    }

    fn rollback(
        &self,
        to: Option<u32>,
        within: Duration,
        keep: usize,
    ) -> PlatformFuture<'_, Rollback> {
        Box::pin(async move {
            let options = DeployOptions {
                apply: ApplyOptions {
                    dry_run: false,
                    force: true,
                },
                wait: Some(within),
                atomic: false,
                keep,
                cause: String::new(),
                base: BasePolicy::Present,
                completes: None,
            };
            let deployer = Deployer {
                cluster: self.cluster().await?,
                environment: self.environment.name.clone(),
                namespace: self.namespace().to_owned(),
                on_progress: self.observer().rollout.clone(),
            };
            Ok(Rollback::Cluster(deployer.rollback(to, &options).await?))
        })
    }

    fn rollback_service<'a>(
        &'a self,
        service: &'a str,
        to: Option<u32>,
        within: Duration,
    ) -> PlatformFuture<'a, ServiceRolledBack> {
        Box::pin(async move {
            let rolled = crate::cluster::rollback::rollback_service(
                self.cluster().await?,
                self.namespace(),
                &self.environment.name,
                service,
                to,
            )
            .await?;
            let workload = Workload {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: self.namespace().to_owned(),
                name: service.to_owned(),
            };
            Ok(ServiceRolledBack {
                rollout: self.wait_for(workload, within).await?,
                deployment: rolled.deployment,
                from: rolled.from,
                to: rolled.to,
            })
        })
    }

    fn restart<'a>(&'a self, service: &'a str, within: Duration) -> PlatformFuture<'a, WaitResult> {
        Box::pin(async move {
            let workload = crate::cluster::restart::restart(
                self.cluster().await?,
                self.namespace(),
                &self.environment.name,
                service,
            )
            .await?;
            self.wait_for(workload, within).await
        })
    }

    fn logs<'a>(
        &'a self,
        service: &'a str,
        options: &'a LogOptions,
        sink: &'a mut dyn FnMut(LogEvent),
    ) -> PlatformFuture<'a, ()> {
        Box::pin(async move {
            crate::cluster::logs::stream(
                self.cluster().await?,
                self.namespace(),
                &self.environment.name,
                service,
                options,
                sink,
            )
            .await
        })
    }

    fn down(&self, purge: bool) -> PlatformFuture<'_, Down> {
        Box::pin(async move {
            let uninstalled = crate::cluster::uninstall::uninstall(
                self.cluster().await?,
                self.namespace(),
                &self.environment.name,
                purge,
            )
            .await?;
            Ok(Down::Cluster(uninstalled))
        })
    }

    fn backups(&self) -> PlatformFuture<'_, Location> {
        Box::pin(async move { Location::parse(&self.bucket()).await })
    }

    fn backup(&self, wait: Option<Duration>) -> PlatformFuture<'_, BackupTaken> {
        Box::pin(self.backup_job(wait))
    }

    fn verify(&self, id: String, within: Duration) -> PlatformFuture<'_, Verified> {
        Box::pin(self.verify_in_cluster(id, within))
    }

    fn restore<'a>(&'a self, id: &'a str, within: Duration) -> PlatformFuture<'a, Restored> {
        Box::pin(self.restore_in_cluster(id, within))
    }

    fn checks(
        &self,
        drift: Option<DriftCheck>,
    ) -> PlatformFuture<'_, Box<dyn crate::validate::Target>> {
        Box::pin(async move {
            let target = ClusterTarget::load(self.cluster().await?, &self.environment)
                .await?
                .with_drift(drift);
            Ok(Box::new(target) as Box<dyn crate::validate::Target>)
        })
    }

    fn run_runbook<'a>(
        &'a self,
        book: &'a Runbook,
        options: RunOptions,
    ) -> PlatformFuture<'a, RunOutcome> {
        Box::pin(async move {
            let cluster = self.cluster().await?;
            let target = ClusterTarget::load(cluster, &self.environment).await?;
            let operator = ClusterOperator {
                cluster: cluster.clone(),
                namespace: self.namespace().to_owned(),
                env: self.environment.name.clone(),
                cluster_args: self.options.forwarded.clone(),
                job_timeout: RUNBOOK_QUERY_WITHIN,
            };
            Executor {
                target: &target,
                operator: &operator,
                options,
            }
            .run(book)
            .await
        })
    }
}
