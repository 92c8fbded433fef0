//! Blue/green releases: the changed services' new version runs as a full preview set
//! (`backend-preview`, as many pods as the stable Deployment) behind its own preview
//! Service, passes validate's app checks through the API server's service proxy, and
//! then the services' Services switch to it at once. The old pods stay warm: until the release is
//! finalized (by the next `apply`, or once `--retention` has passed) `rollback` switches
//! back instantly. Finalizing moves the stable Deployments to the release while the
//! Services still point at the preview pods, then points the Services at both (now
//! identical) tracks and removes the previews.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::preview::PreviewTarget;
use super::workloads::{self, TRACK};
use super::{
    Abort, Note, Prepared, Settled, Strategy, apply_object, first_unready, interrupted,
    live_replicas, record_abort, remove_track_objects, restore_services, running,
};
use crate::cluster::access::{self, Permission};
use crate::cluster::base;
use crate::cluster::deploy::{BasePolicy, DeployOptions, Deployer};
use crate::cluster::release::{Release, ReleaseStatus};
use crate::cluster::rollout::Workload;
use crate::validate::Status;

/// Where a blue/green release stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The preview set is starting or being checked; the Services have not switched.
    Previewing,
    /// The Services point at the preview pods; the old pods stay warm for a rollback.
    Switched,
    /// The stable Deployments run the release and the previews are gone.
    Finalized,
    /// `rollback` pointed the Services back at the old pods.
    SwitchedBack,
    /// A check failed, the previews never became ready, or the run was interrupted.
    Aborted,
}

/// One of validate's checks, run against the previews.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PreviewCheck {
    pub id: String,
    pub status: crate::validate::Status,
    pub detail: String,
}

/// A blue/green release as its record keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BlueGreenRecord {
    /// The release whose pods stay warm until this one is finalized.
    pub stable_revision: u32,
    /// The service Deployments previewed and switched.
    pub services: Vec<String>,
    /// What else the release changes: applied when it is finalized.
    #[serde(default)]
    pub unjudged: Vec<String>,
    pub phase: Phase,
    /// Validate's app checks on the previews.
    pub checks: Vec<PreviewCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switched_at: Option<String>,
    /// Until when `rollback` switches back instantly (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_until: Option<String>,
    /// Why it was aborted or switched back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl BlueGreenRecord {
    /// Switched, and still within its retention window at `now`.
    pub fn warm(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.phase == Phase::Switched
            && self
                .retain_until
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|until| now < until)
    }
}

#[derive(Debug, Clone)]
pub struct BlueGreenOptions {
    /// How long the previews may take to become ready (and a finalize's rollout).
    pub timeout: Duration,
    /// How long after the switch `rollback` may switch back instantly.
    pub retention: Duration,
    pub keep: usize,
}

/// How a blue/green release went.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct BlueGreenReport {
    pub environment: String,
    pub namespace: String,
    pub revision: u32,
    pub blue_green: BlueGreenRecord,
    #[serde(flatten)]
    pub settled: Settled,
}

impl BlueGreenReport {
    pub fn succeeded(&self) -> bool {
        self.blue_green.phase == Phase::Switched
    }
}

/// A rollback that pointed the Services back at the warm pods of the previous release.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SwitchedBack {
    /// The blue/green release switched away from.
    pub from: u32,
    /// The release whose pods answer again.
    pub to: u32,
}

/// The rendered Service in front of service Deployment `name`.
fn service_of<'a>(release: &'a [Value], name: &str) -> Option<&'a Value> {
    release
        .iter()
        .find(|o| o["kind"] == "Service" && o["metadata"]["name"] == name)
}

/// Deploys a release blue/green; see the module's documentation.
pub async fn run(
    deployer: &Deployer<'_>,
    manifests: &[Value],
    options: &BlueGreenOptions,
    note: Note,
) -> anyhow::Result<BlueGreenReport> {
    let prepared = Prepared::new(
        deployer,
        manifests,
        ("apply --strategy blue-green", "a blue/green release"),
        options.timeout,
        &note,
    )
    .await?;
    let names = prepared.service_names();
    if let Some(missing) = names
        .iter()
        .find(|n| service_of(&prepared.release, n).is_none())
    {
        anyhow::bail!(
            "no Service {missing} in the release to switch; blue/green needs one per service"
        );
    }
    access::preflight(deployer.cluster, &needs(deployer)).await?;
    let stable = &prepared.stable;
    let revision = prepared
        .record(deployer, Strategy::BlueGreen, options.keep, |contents| {
            contents.blue_green = Some(Box::new(BlueGreenRecord {
                stable_revision: stable.revision,
                services: names.clone(),
                unjudged: prepared.split.unjudged.clone(),
                phase: Phase::Previewing,
                checks: Vec::new(),
                switched_at: None,
                retain_until: None,
                reason: None,
            }))
        })
        .await?;
    note(&format!(
        "release {revision}: previewing {} beside release {}",
        names.join(", "),
        stable.revision
    ));
    let previewed = tokio::select! {
        previewed = preview_and_switch(deployer, &prepared, revision, options, &note) => {
            previewed.unwrap_or_else(|err| Err(Abort(format!("stopped by an error: {err:#}"))))
        }
        signal = interrupted() => Err(Abort(format!("interrupted by {signal}"))),
    };
    let store = deployer.store();
    let record = match previewed {
        Err(Abort(reason)) => {
            restore_services(deployer, stable, &names, false).await?;
            remove_track_objects(deployer).await?;
            note(&format!(
                "release {revision} aborted: {reason}; the Services still point at release {}",
                stable.revision
            ));
            record_abort(&store, revision, &reason).await?
        }
        Ok(()) => {
            let now = chrono::Utc::now();
            let until = now + chrono::Duration::from_std(options.retention)?;
            let stamp = |t: chrono::DateTime<chrono::Utc>| {
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            };
            note(&format!(
                "release {revision} switched: the Services point at the preview pods; release {} \
                 stays warm until {} (`shopctl rollback --env {}` switches back instantly)",
                stable.revision,
                stamp(until),
                deployer.environment
            ));
            store
                .update(revision, |r| {
                    r.status = ReleaseStatus::Ready;
                    if let Some(record) = &mut r.contents.blue_green {
                        record.phase = Phase::Switched;
                        record.switched_at = Some(stamp(now));
                        record.retain_until = Some(stamp(until));
                    }
                })
                .await?
        }
    };
    Ok(BlueGreenReport {
        environment: deployer.environment.clone(),
        namespace: deployer.namespace.clone(),
        revision,
        blue_green: record
            .contents
            .blue_green
            .map(|record| *record)
            .context("the release's blue/green record is gone")?,
        settled: prepared.settled,
    })
}

/// What a blue/green run needs: preview Deployments and Services created, watched and
/// deleted, the live Services switched, the previews checked through the service proxy,
/// the release recorded and updated.
fn needs(deployer: &Deployer<'_>) -> BTreeSet<Permission> {
    let ns = Some(deployer.namespace.as_str());
    let verbs = ["get", "list", "watch", "create", "patch", "delete"];
    let mut needs: BTreeSet<Permission> = verbs
        .iter()
        .map(|verb| Permission::new(verb, "apps", "deployments", ns))
        .chain(
            verbs
                .iter()
                .map(|verb| Permission::new(verb, "", "services", ns)),
        )
        .collect();
    needs.insert(Permission::new("get", "", "services/proxy", ns));
    needs.extend(["create", "patch"].map(|verb| Permission::new(verb, "", "secrets", ns)));
    needs.insert(Permission::new("list", "", "events", ns));
    needs
}

/// Starts the previews, waits for them, checks them, switches the Services. Err says why
/// to abort.
async fn preview_and_switch(
    deployer: &Deployer<'_>,
    prepared: &Prepared,
    revision: u32,
    options: &BlueGreenOptions,
    note: &Note,
) -> anyhow::Result<Result<(), Abort>> {
    let mut previews = Vec::new();
    for deployment in &prepared.split.services {
        let name = deployment["metadata"]["name"].as_str().unwrap_or_default();
        let replicas = live_replicas(deployer, deployment).await?;
        let preview = workloads::twin(deployment, "preview", revision, replicas);
        apply_object(deployer, &preview).await?;
        if let Some(service) = service_of(&prepared.release, name) {
            apply_object(deployer, &workloads::preview_service(service)).await?;
        }
        note(&format!(
            "{} at {replicas} pod(s), as many as {name}",
            workloads::twin_name(name, "preview")
        ));
        previews.extend(Workload::of(&preview));
    }
    if let Some(stuck) = first_unready(deployer, &previews, options.timeout).await? {
        return Ok(Err(Abort(format!(
            "{} did not become ready: {}",
            stuck.workload,
            stuck.reason.unwrap_or_default()
        ))));
    }
    let services: Vec<&Value> = prepared
        .service_names()
        .iter()
        .filter_map(|name| service_of(&prepared.release, name))
        .collect();
    let target = PreviewTarget::new(deployer.cluster, &deployer.namespace, &services);
    let report = target.validate(&deployer.environment).await;
    let checks: Vec<PreviewCheck> = report
        .checks
        .iter()
        .map(|check| PreviewCheck {
            id: check.id.to_string(),
            status: check.verdict.status,
            detail: check.verdict.detail.clone(),
        })
        .collect();
    deployer
        .store()
        .update(revision, |r| {
            if let Some(record) = &mut r.contents.blue_green {
                record.checks = checks.clone();
            }
        })
        .await?;
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| format!("{}: {}", c.id, c.detail))
        .collect();
    if !failed.is_empty() {
        return Ok(Err(Abort(format!(
            "the preview failed validate's app checks: {}",
            failed.join("; ")
        ))));
    }
    note(&format!(
        "the previews passed validate's app checks ({} passed, {} skipped); switching the Services",
        report.passed, report.skipped
    ));
    for name in prepared.service_names() {
        if let Some(service) = service_of(&prepared.release, &name) {
            let mut switched = service.clone();
            switched["spec"]["selector"][TRACK] = "preview".into();
            apply_object(deployer, &switched).await?;
        }
    }
    Ok(Ok(()))
}

/// The switched blue/green release, if the newest release that runs is one.
fn switched(history: &[Release]) -> Option<(&Release, &BlueGreenRecord)> {
    let release = running(history)?;
    let record = release.contents.blue_green.as_ref()?;
    (record.phase == Phase::Switched).then_some((release, record))
}

/// With the newest release a switched blue/green one still within its retention window,
/// and `to` unset or its stable release: points the Services back at the warm pods of
/// that release and removes the previews. None when there is nothing to switch back.
pub async fn switch_back(
    deployer: &Deployer<'_>,
    to: Option<u32>,
) -> anyhow::Result<Option<SwitchedBack>> {
    let store = deployer.store();
    let history = store.list().await?;
    let Some((release, record)) = switched(&history) else {
        return Ok(None);
    };
    if !record.warm(chrono::Utc::now()) || to.is_some_and(|to| to != record.stable_revision) {
        return Ok(None);
    }
    let Some(stable) = history
        .iter()
        .find(|r| r.revision == record.stable_revision)
    else {
        return Ok(None);
    };
    restore_services(deployer, stable, &record.services, true).await?;
    remove_track_objects(deployer).await?;
    let reason = format!("switched back to release {} by `rollback`", stable.revision);
    store
        .update(release.revision, |r| {
            r.status = ReleaseStatus::Failed;
            if let Some(record) = &mut r.contents.blue_green {
                record.phase = Phase::SwitchedBack;
                record.reason = Some(reason.clone());
            }
        })
        .await?;
    Ok(Some(SwitchedBack {
        from: release.revision,
        to: stable.revision,
    }))
}

/// Finalizes a switched blue/green release, if there is one: the stable Deployments move
/// to it while the Services still point at the previews, then the Services select both
/// tracks (identical by then) and the previews go. Returns its revision.
pub async fn finalize_switched(
    deployer: &Deployer<'_>,
    history: &[Release],
    timeout: Duration,
    note: &Note,
) -> anyhow::Result<Option<u32>> {
    let store = deployer.store();
    let Some((release, record)) = switched(history) else {
        return Ok(None);
    };
    let (_, objects) = base::split(&release.contents.manifests);
    let named = |o: &&Value| {
        record
            .services
            .iter()
            .any(|s| o["metadata"]["name"] == s.as_str())
    };
    let deployments: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == "Deployment")
        .filter(named)
        .collect();
    note(&format!(
        "finalizing blue/green release {}: {} move to it",
        release.revision,
        record.services.join(", ")
    ));
    for deployment in &deployments {
        apply_object(deployer, deployment).await?;
    }
    let workloads: Vec<Workload> = deployments.iter().filter_map(|d| Workload::of(d)).collect();
    if let Some(stuck) = first_unready(deployer, &workloads, timeout).await? {
        anyhow::bail!(
            "finalizing blue/green release {}: {} did not become ready on it ({}); the \
             Services still point at its preview pods, which serve it; fix that and run the \
             command again, or `shopctl rollback --env {}` to switch back",
            release.revision,
            stuck.workload,
            stuck.reason.unwrap_or_default(),
            deployer.environment
        );
    }
    // Then the whole release, as a rolling apply would: the Services select both tracks
    // again (both run it now), and what it changes besides the services lands.
    let rest = DeployOptions {
        apply: Default::default(),
        wait: Some(timeout),
        atomic: false,
        keep: 1,
        cause: format!("finalize {}", release.revision),
        base: BasePolicy::Present,
        completes: Some(release.revision),
    };
    Box::pin(deployer.deploy(&release.contents.manifests, &rest)).await?;
    remove_track_objects(deployer).await?;
    store
        .update(release.revision, |r| {
            if let Some(record) = &mut r.contents.blue_green {
                record.phase = Phase::Finalized;
            }
        })
        .await?;
    Ok(Some(release.revision))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_switched_release_is_warm_until_its_retention_ends_and_never_otherwise() {
        let record = |phase, until: &str| BlueGreenRecord {
            stable_revision: 1,
            services: vec!["backend".into()],
            unjudged: Vec::new(),
            phase,
            checks: Vec::new(),
            switched_at: None,
            retain_until: Some(until.into()),
            reason: None,
        };
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-05T12:00:00Z")
            .unwrap()
            .to_utc();
        assert!(record(Phase::Switched, "2026-12-05T12:00:01Z").warm(now));
        assert!(!record(Phase::Switched, "2026-12-05T12:00:00Z").warm(now));
        assert!(!record(Phase::Finalized, "2026-12-05T13:00:00Z").warm(now));
        assert!(!record(Phase::Switched, "not a time").warm(now));
    }
}
