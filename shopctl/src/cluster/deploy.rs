//! A release end to end: apply, record it in the history, wait for the rollout, and with
//! `atomic` go back to the previous release when the wait fails. `apply` and release
//! rollbacks both come through here, so they behave the same.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::Cluster;
use super::apply::{self, ApplyOptions, Change, ObjectChange};
use super::release::{self, Release, ReleaseStatus, ReleaseStore};
use super::rollout::{self, ProgressCallback, WaitResult, Workload};

#[derive(Clone)]
pub struct DeployOptions {
    pub apply: ApplyOptions,
    /// Wait this long for the rollout; None does not wait.
    pub wait: Option<Duration>,
    /// Roll back to the previous release when the wait fails.
    pub atomic: bool,
    /// Releases to keep in the history.
    pub keep: usize,
    /// Why: "apply", "rollback to 3", …
    pub cause: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    pub environment: String,
    pub namespace: String,
    pub dry_run: bool,
    /// The revision recorded, or None when nothing changed (or a dry run).
    pub revision: Option<u32>,
    /// The release that was current before.
    pub previous: Option<u32>,
    pub changes: Vec<ObjectChange>,
    pub rollout: Vec<WaitResult>,
    /// With atomic: the revision recorded by the automatic rollback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<AutomaticRollback>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AutomaticRollback {
    pub to: u32,
    pub revision: Option<u32>,
    pub rollout: Vec<WaitResult>,
}

impl DeployReport {
    pub fn rollout_failed(&self) -> bool {
        self.rollout.iter().any(|w| !w.ready)
    }
}

pub struct Deployer<'a> {
    pub cluster: &'a Cluster,
    pub environment: String,
    pub namespace: String,
    pub on_progress: ProgressCallback,
}

impl Deployer<'_> {
    fn store(&self) -> ReleaseStore<'_> {
        ReleaseStore::new(self.cluster, &self.namespace, &self.environment)
    }

    pub async fn deploy(
        &self,
        manifests: &[Value],
        options: &DeployOptions,
    ) -> anyhow::Result<DeployReport> {
        let store = self.store();
        let history = store.list().await?;
        let previous = history.last().cloned();
        // What --atomic returns to: the newest release that did not fail its rollout.
        let last_good = history
            .iter()
            .rev()
            .find(|r| r.status != ReleaseStatus::Failed)
            .cloned();
        let inventory = previous
            .as_ref()
            .map(|r| r.objects.clone())
            .unwrap_or_default();
        let changes = apply::apply(self.cluster, manifests, &inventory, &options.apply).await?;
        let mut report = DeployReport {
            environment: self.environment.clone(),
            namespace: self.namespace.clone(),
            dry_run: options.apply.dry_run,
            revision: None,
            previous: previous.as_ref().map(|r| r.revision),
            changes,
            rollout: Vec::new(),
            rolled_back: None,
        };
        if options.apply.dry_run {
            return Ok(report);
        }
        let digest = release::digest(manifests);
        let changed = report.changes.iter().any(|c| c.change != Change::Unchanged);
        let same_release = previous.as_ref().is_some_and(|p| p.digest == digest);
        if changed || !same_release {
            let recorded = store
                .record(
                    self.new_release(manifests, digest, &options.cause),
                    options.keep,
                )
                .await?;
            report.revision = Some(recorded.revision);
        }
        let Some(timeout) = options.wait else {
            return Ok(report);
        };
        report.rollout = self.wait(manifests, timeout).await?;
        let failed = report.rollout_failed();
        if let Some(revision) = report.revision {
            store
                .set_status(
                    revision,
                    if failed {
                        ReleaseStatus::Failed
                    } else {
                        ReleaseStatus::Ready
                    },
                )
                .await?;
        }
        if failed
            && options.atomic
            && let Some(previous) = last_good.filter(|p| Some(p.revision) != report.revision)
        {
            let cause = format!(
                "automatic rollback to {} (revision {} did not become ready)",
                previous.revision,
                report.revision.map_or("-".into(), |r| r.to_string())
            );
            let back = DeployOptions {
                atomic: false,
                cause,
                apply: ApplyOptions {
                    dry_run: false,
                    force: true,
                },
                ..options.clone()
            };
            let undone = Box::pin(self.deploy(&previous.manifests, &back)).await?;
            report.rolled_back = Some(AutomaticRollback {
                to: previous.revision,
                revision: undone.revision,
                rollout: undone.rollout,
            });
        }
        Ok(report)
    }

    async fn wait(
        &self,
        manifests: &[Value],
        timeout: Duration,
    ) -> anyhow::Result<Vec<WaitResult>> {
        let workloads: Vec<Workload> = manifests.iter().filter_map(Workload::of).collect();
        rollout::wait_all(self.cluster, &workloads, timeout, self.on_progress.clone()).await
    }

    fn new_release(&self, manifests: &[Value], digest: String, cause: &str) -> Release {
        Release {
            revision: 0,
            applied_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            applied_by: release::operator(),
            cause: cause.to_string(),
            status: ReleaseStatus::Applied,
            images: release::images(manifests),
            digest,
            objects: manifests.iter().map(release::ObjectRef::of).collect(),
            manifests: manifests.to_vec(),
        }
    }

    /// Re-applies release `to` (default: the one before the newest) as a new revision.
    pub async fn rollback(
        &self,
        to: Option<u32>,
        options: &DeployOptions,
    ) -> anyhow::Result<DeployReport> {
        let store = self.store();
        let releases = store.list().await?;
        let target = match to {
            Some(revision) => store.get(revision).await?,
            None => {
                let newest = releases.last().ok_or_else(|| anyhow::anyhow!("no releases are recorded for environment {} in namespace {}; there is nothing to roll back to", self.environment, self.namespace))?;
                releases
                    .iter()
                    .rev()
                    .find(|r| r.digest != newest.digest)
                    .cloned()
                    .ok_or_else(|| anyhow::anyhow!("there is no earlier release to roll back to (history: {}); `shopctl history --env {}` lists them", releases.iter().map(|r| r.revision.to_string()).collect::<Vec<_>>().join(", "), self.environment))?
            }
        };
        let options = DeployOptions {
            cause: format!("rollback to {}", target.revision),
            ..options.clone()
        };
        self.deploy(&target.manifests, &options).await
    }
}
