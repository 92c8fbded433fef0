//! A release end to end: make sure the cluster base it needs is in place, plan the apply
//! (a dry run), ask the server for every permission the rest needs, apply, record it in
//! the history, wait for the rollout, and with `atomic` go back to the previous release
//! when the wait fails. `apply` and release rollbacks both come through here, so they
//! behave the same; nothing changes until every check has passed.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::Cluster;
use super::access::{self, Permission};
use super::apply::{self, ApplyOptions, ObjectChange, Resources};
use super::base::{self, BaseState};
use super::release::{self, Release, ReleaseStatus, ReleaseStore};
use super::rollout::{self, ProgressCallback, WaitResult, Workload};

/// What a release requires of the cluster base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasePolicy {
    /// A new rendering: its base must be the one installed; when it is not, apply it
    /// first if the caller may, else stop and say who must.
    Current,
    /// A recorded release (a rollback): its namespaces must exist; the base objects a
    /// record may carry are left to the administrator.
    Present,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "the cluster base this release needs is not in place ({}), and {identity} may not apply \
     it (may not {}); a cluster administrator runs `shopctl apply --env {env} --base` (or \
     `shopctl up --env {env}`), then deploy again; nothing was changed",
    state.describe(),
    access::summarise(missing)
)]
pub struct BaseNeeded {
    pub state: BaseState,
    pub identity: String,
    pub missing: Vec<Permission>,
    pub env: String,
}

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
    pub base: BasePolicy,
    /// Completes release N, recorded in progress by a progressive run (a canary's
    /// promotion, a blue/green release's finalizing), instead of recording a new revision.
    pub completes: Option<u32>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DeployReport {
    pub environment: String,
    pub namespace: String,
    pub dry_run: bool,
    /// The revision recorded, or None when nothing changed (or a dry run).
    pub revision: Option<u32>,
    /// The release that was current before.
    pub previous: Option<u32>,
    /// The cluster base, when this deploy applied it first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub base_changes: Vec<ObjectChange>,
    pub changes: Vec<ObjectChange>,
    pub rollout: Vec<WaitResult>,
    /// With atomic: the revision recorded by the automatic rollback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<AutomaticRollback>,
    #[serde(flatten)]
    pub settled: super::progressive::Settled,
    /// A rollback that switched the Services back to the warm pods of the release before a
    /// blue/green one (nothing rolled out, nothing recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switched_back: Option<super::progressive::blue_green::SwitchedBack>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AutomaticRollback {
    pub to: u32,
    pub revision: Option<u32>,
    pub rollout: Vec<WaitResult>,
}

/// Watching each workload until it settles, and reading why when it does not.
async fn needs_to_wait(
    resources: &mut Resources<'_>,
    release: &[Value],
) -> anyhow::Result<BTreeSet<Permission>> {
    let mut needs = BTreeSet::new();
    for workload in release.iter().filter_map(Workload::of) {
        for verb in ["get", "watch"] {
            needs.insert(
                resources
                    .permission(
                        verb,
                        &workload.api_version,
                        &workload.kind,
                        Some(&workload.namespace),
                    )
                    .await?,
            );
        }
        needs.insert(Permission::new(
            "list",
            "",
            "events",
            Some(&workload.namespace),
        ));
    }
    Ok(needs)
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
    pub(crate) fn store(&self) -> ReleaseStore<'_> {
        ReleaseStore::new(self.cluster, &self.namespace, &self.environment)
    }

    pub async fn deploy(
        &self,
        manifests: &[Value],
        options: &DeployOptions,
    ) -> anyhow::Result<DeployReport> {
        let (base, release) = base::split(manifests);
        // A progressive release left behind is settled before anything else: an
        // interrupted one aborted, a switched blue/green one finalized.
        let store = self.store();
        let (settled, history) = match options.completes {
            None if !options.apply.dry_run => {
                let quiet: super::progressive::Note = std::sync::Arc::new(|_| {});
                let timeout = options.wait.unwrap_or(Duration::from_secs(300));
                super::progressive::settle(self, &options.cause, timeout, &quiet).await?
            }
            _ => (Default::default(), store.list().await?),
        };
        let completing = |r: &Release| Some(r.revision) == options.completes;
        let previous = history.iter().rev().find(|r| !completing(r)).cloned();
        // What --atomic returns to: the newest release that did not fail its rollout.
        let last_good = history
            .iter()
            .rev()
            .find(|r| r.status != ReleaseStatus::Failed && !completing(r))
            .cloned();
        // Only namespaced objects are pruned: the base is the administrator's.
        let inventory: Vec<_> = previous
            .as_ref()
            .map(|r| r.contents.objects.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|o| o.namespace.is_some())
            .collect();
        let base_changes = self.ensure_base(&base, &release, options).await?;
        let mut resources = Resources::new(self.cluster);
        let to_plan = apply::needs_to_plan(&mut resources, &release, &inventory).await?;
        access::preflight(self.cluster, &to_plan).await?;
        let plan = apply::plan(
            self.cluster,
            &mut resources,
            &release,
            &inventory,
            &base::created_namespaces(&base_changes),
            &options.apply,
        )
        .await?;
        let mut report = DeployReport {
            environment: self.environment.clone(),
            namespace: self.namespace.clone(),
            dry_run: options.apply.dry_run,
            revision: None,
            previous: previous.as_ref().map(|r| r.revision),
            base_changes,
            changes: Vec::new(),
            rollout: Vec::new(),
            rolled_back: None,
            settled,
            switched_back: None,
        };
        if options.apply.dry_run {
            report.changes = plan.changes;
            return Ok(report);
        }
        let digest = release::digest(&release);
        let same_release = previous.as_ref().is_some_and(|p| p.digest == digest);
        let record = options.completes.is_none() && (plan.changes_anything() || !same_release);
        let mut to_execute = apply::needs_to_execute(&mut resources, &plan).await?;
        to_execute.extend(self.needs_to_record(record, history.len(), options));
        if options.wait.is_some() {
            to_execute.extend(needs_to_wait(&mut resources, &release).await?);
        }
        if options.atomic
            && let Some(good) = &last_good
        {
            let (_, good_release) = base::split(&good.contents.manifests);
            to_execute.extend(apply::needs_to_plan(&mut resources, &good_release, &[]).await?);
        }
        access::preflight(self.cluster, &to_execute).await?;

        report.changes = apply::execute(self.cluster, &mut resources, plan, &options.apply).await?;
        if record {
            let recorded = store
                .record(
                    self.new_release(&release, digest, &options.cause),
                    options.keep,
                )
                .await?;
            report.revision = Some(recorded.revision);
        }
        if options.completes.is_some() {
            report.revision = options.completes;
        }
        let Some(timeout) = options.wait else {
            return Ok(report);
        };
        report.rollout = self.wait(&release, timeout).await?;
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
                base: BasePolicy::Present,
                completes: None,
                ..options.clone()
            };
            let undone = Box::pin(self.deploy(&previous.contents.manifests, &back)).await?;
            report.rolled_back = Some(AutomaticRollback {
                to: previous.revision,
                revision: undone.revision,
                rollout: undone.rollout,
            });
        }
        Ok(report)
    }

    /// Checks the base the release needs; applies it first when it is not current and
    /// the caller may (an administrator); otherwise stops, saying who must.
    async fn ensure_base(
        &self,
        base: &[Value],
        release: &[Value],
        options: &DeployOptions,
    ) -> anyhow::Result<Vec<ObjectChange>> {
        access::preflight(self.cluster, &base::needs_to_check(release)).await?;
        let wanted = match options.base {
            BasePolicy::Current if !base.is_empty() => Some(base::digest(base)),
            _ => None,
        };
        let state = base::state(self.cluster, release, wanted.as_deref()).await?;
        if state == BaseState::Current {
            return Ok(Vec::new());
        }
        if wanted.is_none() {
            anyhow::bail!(
                "{}: the cluster base is not installed; a cluster administrator runs `shopctl \
                 apply --env {} --base` first; nothing was changed",
                state.describe(),
                self.environment
            );
        }
        let missing = base::missing(self.cluster, base).await?;
        if !missing.is_empty() {
            return Err(BaseNeeded {
                state,
                identity: access::whoami(self.cluster).await,
                missing,
                env: self.environment.clone(),
            }
            .into());
        }
        base::apply(self.cluster, base, &options.apply).await
    }

    /// Recording a release: a Secret created, its status patched after the wait, and the
    /// oldest deleted once the history is over `keep`.
    fn needs_to_record(
        &self,
        record: bool,
        kept: usize,
        options: &DeployOptions,
    ) -> BTreeSet<Permission> {
        let secrets = |verb: &str| Permission::new(verb, "", "secrets", Some(&self.namespace));
        let mut needs = BTreeSet::new();
        if record {
            needs.insert(secrets("create"));
            if options.wait.is_some() {
                needs.insert(secrets("patch"));
            }
            if kept + 1 > options.keep.max(1) {
                needs.insert(secrets("delete"));
            }
        }
        needs
    }

    async fn wait(
        &self,
        manifests: &[Value],
        timeout: Duration,
    ) -> anyhow::Result<Vec<WaitResult>> {
        let workloads: Vec<Workload> = manifests.iter().filter_map(Workload::of).collect();
        rollout::wait_all(self.cluster, &workloads, timeout, self.on_progress.clone()).await
    }

    pub(crate) fn new_release(&self, manifests: &[Value], digest: String, cause: &str) -> Release {
        Release {
            revision: 0,
            applied_at: crate::release::now(),
            applied_by: crate::release::operator(),
            cause: cause.to_string(),
            status: ReleaseStatus::Applied,
            digest,
            contents: release::Contents {
                images: release::images(manifests),
                objects: manifests.iter().map(release::ObjectRef::of).collect(),
                strategy: Default::default(),
                canary: None,
                blue_green: None,
                manifests: manifests.to_vec(),
            },
        }
    }

    /// Re-applies release `to` (default: the one before the newest) as a new revision.
    pub async fn rollback(
        &self,
        to: Option<u32>,
        options: &DeployOptions,
    ) -> anyhow::Result<DeployReport> {
        // An interrupted progressive release is aborted first, so "the one before" counts
        // from the release that runs.
        let history = self.store().list().await?;
        let resolved = super::progressive::resolve_interrupted(self, &history, "rollback").await?;
        // Within a blue/green release's retention window its old pods are still warm:
        // going back is pointing the Services at them.
        if let Some(back) = super::progressive::blue_green::switch_back(self, to).await? {
            return Ok(DeployReport {
                environment: self.environment.clone(),
                namespace: self.namespace.clone(),
                dry_run: false,
                revision: None,
                previous: Some(back.from),
                base_changes: Vec::new(),
                changes: Vec::new(),
                rollout: Vec::new(),
                rolled_back: None,
                settled: super::progressive::Settled {
                    resolved,
                    finalized: None,
                },
                switched_back: Some(back),
            });
        }
        let store = self.store();
        let releases = store.list().await?;
        let target = match to {
            Some(revision) => store.get(revision).await?,
            None => {
                // A progressive release aborted or switched back from never ran: "the one
                // before" is the one before the release that runs.
                let ran: Vec<&Release> = releases
                    .iter()
                    .filter(|r| !r.contents.never_ran())
                    .collect();
                let newest = ran.last().ok_or_else(|| anyhow::anyhow!("no releases are recorded for environment {} in namespace {}; there is nothing to roll back to", self.environment, self.namespace))?;
                ran.iter()
                    .rev()
                    .find(|r| r.digest != newest.digest)
                    .map(|r| (*r).clone())
                    .ok_or_else(|| anyhow::anyhow!("there is no earlier release to roll back to (history: {}); `shopctl history --env {}` lists them", releases.iter().map(|r| r.revision.to_string()).collect::<Vec<_>>().join(", "), self.environment))?
            }
        };
        let options = DeployOptions {
            cause: format!("rollback to {}", target.revision),
            base: BasePolicy::Present,
            completes: None,
            ..options.clone()
        };
        let mut report = self.deploy(&target.contents.manifests, &options).await?;
        report.settled.resolved = report.settled.resolved.take().or(resolved);
        Ok(report)
    }
}
