//! Canary releases: the changed services' new pods run beside the stable ones, are judged
//! on their SLIs per track at each step, and are promoted (the stable Deployments move to
//! the release) or aborted (the canaries go; the stable pods never changed).

use std::time::Duration;

use anyhow::Context;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::analysis::{self, Prometheus, ServiceSli, Thresholds, Verdict};
use super::{
    Abort, Note, Prepared, Settled, Strategy, apply_object, first_unready, interrupted,
    live_replicas, record_abort, remove_track_objects, workloads,
};
use crate::cluster::access::{self, Permission};
use crate::cluster::deploy::{BasePolicy, DeployOptions, DeployReport, Deployer};
use crate::cluster::release::ReleaseStore;
use crate::cluster::rollout::Workload;

/// Where a canary release stands or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CanaryOutcome {
    InProgress,
    Promoted,
    Aborted,
}

/// One analysis: the SLIs per track at a step and what they meant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Measurement {
    /// 1-based.
    pub step: usize,
    /// The step's canary size, in percent of the stable pods.
    pub weight: u32,
    pub at: String,
    pub services: Vec<ServiceSli>,
    pub verdict: Verdict,
}

/// A canary release as its record keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CanaryRecord {
    /// Canary sizes in percent of the stable pods, step by step.
    pub steps: Vec<u32>,
    pub interval_seconds: u64,
    pub min_requests: u64,
    pub max_failures: u32,
    /// The release the canaries were judged against.
    pub stable_revision: u32,
    /// The canaried service Deployments.
    pub services: Vec<String>,
    /// What else the release changes: applied at promotion, never judged.
    #[serde(default)]
    pub unjudged: Vec<String>,
    /// The step reached (1-based; 0 before the first canary is ready).
    pub step: usize,
    pub outcome: CanaryOutcome,
    /// Why it was aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The analyses, the newest last (at most `KEPT_MEASUREMENTS`).
    pub measurements: Vec<Measurement>,
}

const KEPT_MEASUREMENTS: usize = 20;

#[derive(Debug, Clone)]
pub struct CanaryOptions {
    pub steps: Vec<u32>,
    /// How much traffic each analysis looks back over, and how often one runs.
    pub interval: Duration,
    /// Failed analyses tolerated before the canary is aborted.
    pub max_failures: u32,
    /// Canary requests per service below which there is no verdict.
    pub min_requests: u64,
    /// How long a step may wait for its canaries to become ready, or for enough traffic.
    pub step_timeout: Duration,
    /// Where Prometheus runs.
    pub monitoring_namespace: String,
    /// Releases to keep in the history.
    pub keep: usize,
}

/// How a canary release went.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CanaryReport {
    pub environment: String,
    pub namespace: String,
    pub revision: u32,
    pub canary: CanaryRecord,
    /// The promotion's deploy: the stable Deployments moving to the release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promotion: Option<DeployReport>,
    #[serde(flatten)]
    pub settled: Settled,
}

impl CanaryReport {
    pub fn succeeded(&self) -> bool {
        self.canary.outcome == CanaryOutcome::Promoted
            && self.promotion.as_ref().is_some_and(|p| !p.rollout_failed())
    }
}

fn describe(services: &[ServiceSli]) -> String {
    let track = |t: &analysis::TrackSli| {
        format!(
            "{:.0} req, {} 5xx, p95 {}",
            t.requests,
            t.errors_text(),
            t.p95_text()
        )
    };
    services
        .iter()
        .map(|s| {
            format!(
                "{}: canary {} | stable {}",
                s.service,
                track(&s.canary),
                track(&s.stable)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Sends a canary release out step by step; see the module's documentation.
pub async fn run(
    deployer: &Deployer<'_>,
    manifests: &[Value],
    options: &CanaryOptions,
    note: Note,
) -> anyhow::Result<CanaryReport> {
    let prepared = Prepared::new(
        deployer,
        manifests,
        ("apply --strategy canary", "a canary"),
        options.step_timeout,
        &note,
    )
    .await?;
    access::preflight(deployer.cluster, &needs(deployer, options)).await?;
    let prometheus = Prometheus {
        cluster: deployer.cluster,
        namespace: options.monitoring_namespace.clone(),
    };
    check_interval(&prometheus, options.interval, &note).await?;
    let services = &prepared.split.services;
    let unjudged = &prepared.split.unjudged;
    let stable = &prepared.stable;
    let revision = prepared
        .record(deployer, Strategy::Canary, options.keep, |contents| {
            contents.canary = Some(Box::new(CanaryRecord {
                steps: options.steps.clone(),
                interval_seconds: options.interval.as_secs(),
                min_requests: options.min_requests,
                max_failures: options.max_failures,
                stable_revision: stable.revision,
                services: prepared.service_names(),
                unjudged: unjudged.clone(),
                step: 0,
                outcome: CanaryOutcome::InProgress,
                reason: None,
                measurements: Vec::new(),
            }))
        })
        .await?;
    let store = deployer.store();
    note(&format!(
        "release {revision}: canary of {} against release {} in steps of {:?}%",
        prepared.service_names().join(", "),
        stable.revision,
        options.steps
    ));
    if !unjudged.is_empty() {
        note(&format!(
            "applied only at promotion, without a canary: {}",
            unjudged.join(", ")
        ));
    }

    let judged = tokio::select! {
        judged = steps(deployer, &store, &prometheus, revision, services, options, &note) => {
            // An error mid-run (the API server gone, the record unwritable) ends the
            // canary like a failed step: the stable release must not be left half-judged.
            judged.unwrap_or_else(|err| Err(Abort(format!("stopped by an error: {err:#}"))))
        }
        signal = interrupted() => Err(Abort(format!("interrupted by {signal}"))),
    };
    let (finished, promotion) = match judged {
        Err(Abort(reason)) => {
            remove_track_objects(deployer).await?;
            note(&format!(
                "release {revision} aborted: {reason}; canaries removed, the stable release {} never changed",
                stable.revision
            ));
            (record_abort(&store, revision, &reason).await?, None)
        }
        Ok(()) => {
            note(&format!(
                "release {revision} passed every step; promoting: the stable Deployments move to it"
            ));
            let promote = DeployOptions {
                apply: Default::default(),
                wait: Some(options.step_timeout),
                atomic: true,
                keep: options.keep,
                cause: "apply (canary)".into(),
                base: BasePolicy::Current,
                completes: Some(revision),
            };
            let promotion = deployer.deploy(manifests, &promote).await?;
            // Only now, with the stable pods on the new version, do the canaries go:
            // capacity never dips below the stable's.
            remove_track_objects(deployer).await?;
            let finished = if promotion.rollout_failed() {
                let reason = "the stable Deployments did not become ready on the promoted release";
                record_abort(&store, revision, reason).await?
            } else {
                store
                    .update(revision, |r| {
                        if let Some(canary) = &mut r.contents.canary {
                            canary.outcome = CanaryOutcome::Promoted;
                        }
                    })
                    .await?
            };
            (finished, Some(promotion))
        }
    };
    Ok(CanaryReport {
        environment: deployer.environment.clone(),
        namespace: deployer.namespace.clone(),
        revision,
        canary: finished
            .contents
            .canary
            .map(|record| *record)
            .context("the release's canary record is gone")?,
        promotion,
        settled: prepared.settled.clone(),
    })
}

/// What a canary run needs beyond reading the history: canary Deployments applied,
/// watched, scaled and deleted; its release recorded and updated; Prometheus asked.
fn needs(
    deployer: &Deployer<'_>,
    options: &CanaryOptions,
) -> std::collections::BTreeSet<Permission> {
    let ns = Some(deployer.namespace.as_str());
    let mut needs: std::collections::BTreeSet<Permission> =
        ["get", "list", "watch", "create", "patch", "delete"]
            .into_iter()
            .map(|verb| Permission::new(verb, "apps", "deployments", ns))
            .collect();
    needs.extend(["create", "patch"].map(|verb| Permission::new(verb, "", "secrets", ns)));
    needs.insert(Permission::new("list", "", "events", ns));
    needs.insert(
        Permission::new(
            "get",
            "",
            "services/proxy",
            Some(&options.monitoring_namespace),
        )
        .named("prometheus"),
    );
    needs
}

/// `--interval` when none is given. It must span two scrapes of every environment's
/// Prometheus ([`check_interval`]; `tests/consistency.rs` holds the rendered ones to it).
pub const DEFAULT_INTERVAL: &str = "1m";

/// Refuses, before anything changes, an `--interval` shorter than two of the judging
/// Prometheus's scrapes: an analysis window with fewer than two samples of a pod shows no
/// increase, so every analysis would wait for data until the step timed out. A Prometheus
/// that cannot be asked is no reason to refuse: the analyses wait for data then anyway.
async fn check_interval(
    prometheus: &Prometheus<'_>,
    interval: Duration,
    note: &Note,
) -> anyhow::Result<()> {
    match prometheus.scrape_interval().await {
        Ok(scrape) if interval < 2 * scrape => anyhow::bail!(
            "--interval {interval:?} is shorter than two of Prometheus's scrapes ({scrape:?} each): \
             an analysis needs two samples of every pod in its window; use --interval {:?} or more",
            2 * scrape
        ),
        Ok(_) => Ok(()),
        Err(cause) => {
            note(&format!(
                "--interval not checked against Prometheus's scrape interval: {cause}"
            ));
            Ok(())
        }
    }
}

/// Every step: size the canaries, wait for them, judge them. Err says why to abort.
async fn steps(
    deployer: &Deployer<'_>,
    store: &ReleaseStore<'_>,
    prometheus: &Prometheus<'_>,
    revision: u32,
    services: &[Value],
    options: &CanaryOptions,
    note: &Note,
) -> anyhow::Result<Result<(), Abort>> {
    let names: Vec<String> = services
        .iter()
        .filter_map(|d| d["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    let limits = Thresholds::from_slos(options.min_requests);
    let total = options.steps.len();
    for (index, &weight) in options.steps.iter().enumerate() {
        let step = index + 1;
        let mut canaries = Vec::new();
        for service in services {
            let name = service["metadata"]["name"].as_str().unwrap_or_default();
            let stable_replicas = live_replicas(deployer, service).await?;
            let replicas = workloads::canary_replicas(stable_replicas, weight);
            let canary = workloads::twin(service, "canary", revision, replicas);
            let canary_name = workloads::twin_name(name, "canary");
            apply_object(deployer, &canary).await?;
            note(&format!(
                "step {step}/{total} ({weight}%): {canary_name} at {replicas} pod(s) beside {stable_replicas} stable"
            ));
            canaries.extend(Workload::of(&canary));
        }
        if let Some(stuck) = first_unready(deployer, &canaries, options.step_timeout).await? {
            return Ok(Err(Abort(format!(
                "{} did not become ready at step {step}: {}",
                stuck.workload,
                stuck.reason.unwrap_or_default()
            ))));
        }
        store
            .update(revision, |r| {
                if let Some(canary) = &mut r.contents.canary {
                    canary.step = step;
                }
            })
            .await?;
        let deadline = tokio::time::Instant::now() + options.step_timeout;
        let mut failures = 0;
        loop {
            tokio::time::sleep(options.interval).await;
            let measured = prometheus
                .measure(&deployer.namespace, &names, options.interval)
                .await;
            let (slis, verdict) = match measured {
                Ok(slis) => {
                    let verdict = analysis::judge(&slis, &limits);
                    (slis, verdict)
                }
                Err(cause) => (
                    Vec::new(),
                    Verdict::WaitingForData {
                        reason: format!("Prometheus could not be asked: {cause}"),
                    },
                ),
            };
            let measurement = Measurement {
                step,
                weight,
                at: crate::release::now(),
                services: slis,
                verdict: verdict.clone(),
            };
            store
                .update(revision, |r| {
                    if let Some(canary) = &mut r.contents.canary {
                        canary.measurements.push(measurement.clone());
                        let excess = canary.measurements.len().saturating_sub(KEPT_MEASUREMENTS);
                        canary.measurements.drain(..excess);
                    }
                })
                .await?;
            let values = describe(&measurement.services);
            match verdict {
                Verdict::Pass => {
                    note(&format!("step {step}/{total} ({weight}%) passed: {values}"));
                    break;
                }
                Verdict::Fail { reasons } => {
                    failures += 1;
                    note(&format!(
                        "step {step}/{total} ({weight}%) failed its analysis ({failures} failure(s), {} tolerated): {}",
                        options.max_failures,
                        reasons.join("; ")
                    ));
                    if failures > options.max_failures {
                        return Ok(Err(Abort(format!(
                            "step {step} ({weight}%) failed its analysis: {}",
                            reasons.join("; ")
                        ))));
                    }
                }
                Verdict::WaitingForData { reason } => {
                    note(&format!(
                        "step {step}/{total} ({weight}%) waiting for data: {reason}"
                    ));
                    if tokio::time::Instant::now() >= deadline {
                        let advice = if measurement.services.is_empty() {
                            "is Prometheus up? `shopctl validate --only obs` says"
                        } else {
                            "send traffic or lower --min-requests"
                        };
                        return Ok(Err(Abort(format!(
                            "inconclusive at step {step} ({weight}%): still waiting for data after {}s ({reason}); \
                             nothing was judged, {advice}",
                            options.step_timeout.as_secs()
                        ))));
                    }
                }
            }
        }
    }
    Ok(Ok(()))
}
