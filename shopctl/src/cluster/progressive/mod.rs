//! Progressive delivery: a release reaches the pods gradually and is judged before it
//! takes all the traffic — as canaries beside the stable pods (`canary`), or as a full
//! preview set that a Service switches to (`blue_green`). Both record the release
//! `in-progress` before anything changes, so a run that stops half-way — Ctrl-C, a lost CI
//! runner — is recognised by `status` and resolved (aborted) by the next `apply` or
//! `rollback`.

pub mod analysis;
pub mod blue_green;
pub mod canary;
pub mod preview;
pub mod workloads;

use std::sync::Arc;

use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use self::workloads::TRACK;
use super::ENVIRONMENT;
use super::apply::Resources;
use super::base;
use super::deploy::Deployer;
use super::release::{Release, ReleaseStatus, ReleaseStore};

/// How a release reaches the pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Every pod moves to the new version by a rolling update.
    #[default]
    Rolling,
    /// Canaries first, judged step by step, then promoted or aborted.
    Canary,
    /// A full preview set, checked as `validate` checks the services, then the Services
    /// switch to it.
    BlueGreen,
}

/// An interrupted progressive release, aborted by a later command.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Resolved {
    pub revision: u32,
    pub reason: String,
}

/// What a command settled before its own work, as its report shows it.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct Settled {
    /// An interrupted progressive release it aborted first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved: Option<Resolved>,
    /// A switched blue/green release it finalized first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finalized: Option<u32>,
}

/// Settles what an earlier progressive release left: an interrupted one aborted (`by`
/// names the command), a switched blue/green one finalized within `timeout`. Returns what
/// it did and the history as it is afterwards (listed once when there was nothing to do).
pub async fn settle(
    deployer: &Deployer<'_>,
    by: &str,
    timeout: std::time::Duration,
    note: &Note,
) -> anyhow::Result<(Settled, Vec<Release>)> {
    let history = deployer.store().list().await?;
    let settled = Settled {
        resolved: resolve_interrupted(deployer, &history, by).await?,
        finalized: blue_green::finalize_switched(deployer, &history, timeout, note).await?,
    };
    let history = match settled {
        Settled {
            resolved: None,
            finalized: None,
        } => history,
        _ => deployer.store().list().await?,
    };
    Ok((settled, history))
}

/// Where progress lines go (stderr for the CLI).
pub type Note = Arc<dyn Fn(&str) + Send + Sync>;

/// Why a progressive release stopped short of taking all the traffic.
struct Abort(String);

/// The release that runs: the newest one neither in progress nor aborted before it ran (a
/// rolling release whose rollout failed without --atomic does run).
pub fn running(history: &[Release]) -> Option<&Release> {
    history
        .iter()
        .rev()
        .find(|r| r.status != ReleaseStatus::InProgress && !r.contents.never_ran())
}

/// Server-side applies `object` as shopctl (taking over fields a previous run left).
async fn apply_object(deployer: &Deployer<'_>, object: &Value) -> anyhow::Result<()> {
    let api = Resources::new(deployer.cluster).api_for(object).await?;
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    api.patch(
        name,
        &PatchParams::apply(super::FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(|err| deployer.cluster.explain(err))?;
    Ok(())
}

/// Waits for `twins` (canaries or previews) to become ready: the first that did not.
async fn first_unready(
    deployer: &Deployer<'_>,
    twins: &[super::rollout::Workload],
    timeout: std::time::Duration,
) -> anyhow::Result<Option<super::rollout::WaitResult>> {
    let waited = super::rollout::wait_all(
        deployer.cluster,
        twins,
        timeout,
        deployer.on_progress.clone(),
    )
    .await?;
    Ok(waited.into_iter().find(|w| !w.ready))
}

/// The live replica count of Deployment `name` (what an autoscaler set, if one does).
async fn live_replicas(deployer: &Deployer<'_>, deployment: &Value) -> anyhow::Result<i64> {
    let api = Resources::new(deployer.cluster).api_for(deployment).await?;
    let name = deployment["metadata"]["name"].as_str().unwrap_or_default();
    let live = api
        .get(name)
        .await
        .map_err(|err| deployer.cluster.explain(err))?;
    Ok(live.data["spec"]["replicas"].as_i64().unwrap_or(1))
}

/// The canary and preview Deployments running in `namespace`: their pods serve, and
/// write to the database, beside the stable ones.
pub async fn twins(cluster: &super::Cluster, namespace: &str) -> anyhow::Result<Vec<String>> {
    let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(cluster.client.clone(), namespace);
    let listed = deployments
        .list(&ListParams::default().labels(&format!("{TRACK} in (canary,preview)")))
        .await
        .map_err(|err| cluster.explain(err))?;
    Ok(listed
        .items
        .into_iter()
        .filter_map(|d| d.metadata.name)
        .collect())
}

/// Deletes every canary and preview object of the environment (Deployments, whose
/// ReplicaSets and pods follow, and preview Services).
async fn remove_track_objects(deployer: &Deployer<'_>) -> anyhow::Result<()> {
    let selector = format!(
        "{TRACK} in (canary,preview),{ENVIRONMENT}={}",
        deployer.environment
    );
    let mut resources = Resources::new(deployer.cluster);
    for (api_version, kind) in [("apps/v1", "Deployment"), ("v1", "Service")] {
        let api = resources
            .api(api_version, kind, Some(&deployer.namespace))
            .await?;
        let listed = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|err| deployer.cluster.explain(err))?;
        for object in listed.items {
            let name = object.metadata.name.unwrap_or_default();
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(err) => return Err(deployer.cluster.explain(err)),
            }
        }
    }
    Ok(())
}

/// Applies the stable release's rendered Services of `services` again, selecting every
/// pod of the service: the stable ones once the previews are gone. `pin` restricts them to
/// the stable track at once, so no preview pod answers meanwhile (a switch back).
async fn restore_services(
    deployer: &Deployer<'_>,
    stable: &Release,
    services: &[String],
    pin: bool,
) -> anyhow::Result<()> {
    let (_, objects) = base::split(&stable.contents.manifests);
    for service in objects
        .iter()
        .filter(|o| o["kind"] == "Service")
        .filter(|o| services.iter().any(|s| o["metadata"]["name"] == s.as_str()))
    {
        let mut restored = service.clone();
        if pin {
            restored["spec"]["selector"][TRACK] = "stable".into();
        }
        apply_object(deployer, &restored).await?;
    }
    Ok(())
}

/// Marks release `revision` failed, with why, in whichever progressive record it has.
async fn record_abort(
    store: &ReleaseStore<'_>,
    revision: u32,
    reason: &str,
) -> anyhow::Result<Release> {
    store
        .update(revision, |release| {
            release.status = ReleaseStatus::Failed;
            if let Some(canary) = &mut release.contents.canary {
                canary.outcome = canary::CanaryOutcome::Aborted;
                canary.reason = Some(reason.to_string());
            }
            if let Some(preview) = &mut release.contents.blue_green {
                preview.phase = blue_green::Phase::Aborted;
                preview.reason = Some(reason.to_string());
            }
        })
        .await
}

/// A progressive release recorded in progress that no running shopctl is finishing:
/// aborts it (Services pointed back at the stable pods, canaries and previews removed,
/// the release recorded failed). `by` names the command that found it.
pub async fn resolve_interrupted(
    deployer: &Deployer<'_>,
    history: &[Release],
    by: &str,
) -> anyhow::Result<Option<Resolved>> {
    let store = deployer.store();
    let Some(stuck) = history
        .iter()
        .rev()
        .find(|r| r.status == ReleaseStatus::InProgress)
    else {
        return Ok(None);
    };
    let at = match (&stuck.contents.canary, &stuck.contents.blue_green) {
        (Some(canary), _) => format!("at step {}", canary.step),
        (_, Some(_)) => "before its switch".into(),
        _ => String::new(),
    };
    if let Some(preview) = &stuck.contents.blue_green
        && let Some(stable) = history
            .iter()
            .find(|r| r.revision == preview.stable_revision)
    {
        restore_services(deployer, stable, &preview.services, false).await?;
    }
    remove_track_objects(deployer).await?;
    let reason = format!(
        "interrupted {at}: the shopctl running it stopped; aborted by `{by}`, the stable \
         release was never changed"
    );
    record_abort(&store, stuck.revision, &reason).await?;
    Ok(Some(Resolved {
        revision: stuck.revision,
        reason,
    }))
}

/// The signal that stopped the run: Ctrl-C, or a CI runner's SIGTERM.
async fn interrupted() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "Ctrl-C",
        _ = term.recv() => "SIGTERM",
    }
}

/// A progressive release, checked and ready to record: what runs, what changes.
struct Prepared {
    stable: Release,
    release: Vec<Value>,
    split: workloads::Split,
    settled: Settled,
}

impl Prepared {
    /// Settles what an earlier progressive release left (an interrupted one aborted, a
    /// switched blue/green one finalized within `timeout`), then splits the release against
    /// the one that runs; `how` names the strategy in errors ("a canary").
    async fn new(
        deployer: &Deployer<'_>,
        manifests: &[Value],
        (by, how): (&str, &str),
        timeout: std::time::Duration,
        note: &Note,
    ) -> anyhow::Result<Self> {
        let (settled, history) = settle(deployer, by, timeout, note).await?;
        let stable = running(&history).cloned().ok_or_else(|| {
            anyhow::anyhow!(
                "environment {} has no release to judge {how} against; apply the first \
                 release without --strategy",
                deployer.environment
            )
        })?;
        let (_, release) = base::split(manifests);
        let (_, stable_release) = base::split(&stable.contents.manifests);
        let split = workloads::split(&release, &stable_release)?;
        Ok(Self {
            stable,
            release,
            split,
            settled,
        })
    }

    /// The names of the service Deployments the release changes.
    fn service_names(&self) -> Vec<String> {
        self.split
            .services
            .iter()
            .filter_map(|d| d["metadata"]["name"].as_str().map(str::to_string))
            .collect()
    }

    /// Records the release `in-progress` with `strategy`, `progress` filling in its record;
    /// returns its revision.
    async fn record(
        &self,
        deployer: &Deployer<'_>,
        strategy: Strategy,
        keep: usize,
        progress: impl FnOnce(&mut super::release::Contents),
    ) -> anyhow::Result<u32> {
        let digest = super::release::digest(&self.release);
        let cause = format!("apply ({})", strategy.label());
        let mut record = deployer.new_release(&self.release, digest, &cause);
        record.status = ReleaseStatus::InProgress;
        record.contents.strategy = strategy;
        progress(&mut record.contents);
        Ok(deployer.store().record(record, keep).await?.revision)
    }
}

impl Strategy {
    pub fn label(self) -> &'static str {
        match self {
            Strategy::Rolling => "rolling",
            Strategy::Canary => "canary",
            Strategy::BlueGreen => "blue-green",
        }
    }
}
