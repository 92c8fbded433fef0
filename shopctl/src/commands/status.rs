//! `shopctl status`: what runs, where, and whether it is ready, on either target.

use shopctl::cluster::progressive::analysis::Verdict;
use shopctl::cluster::progressive::blue_green::{BlueGreenRecord, Phase};
use shopctl::cluster::progressive::canary::{CanaryOutcome, CanaryRecord};
use shopctl::cluster::rollout::Progress;
use shopctl::cluster::status::StatusReport;
use shopctl::reports::{LocalStatus, Status};

use super::cluster::ViewArgs;
use super::{Outcome, OutputFormat};

/// Exit 1 when the local platform is stopped or a component is not ready; a cluster's
/// status only reports (`validate` judges it).
pub fn exec(args: ViewArgs) -> anyhow::Result<Outcome> {
    let platform = args.cluster.open(&args.env)?;
    let status = super::block_on(platform.status())?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&status)?),
        OutputFormat::Table => print(&status),
    }
    Ok(if status.healthy() {
        Outcome::Success
    } else {
        Outcome::CheckFailed
    })
}

pub(super) fn print(status: &Status) {
    match status {
        Status::Local(local) => print_local(local),
        Status::Cluster(cluster) => print_cluster(cluster),
    }
}

fn print_local(status: &LocalStatus) {
    if !status.running {
        println!("not running; `shopctl up` starts it");
        return;
    }
    let mut table = super::new_table(&["COMPONENT", "STATE", "URL", "PID", "RESTARTS"]);
    for component in &status.components {
        table.add_row([
            component.name.clone(),
            format!("{:?}", component.state).to_lowercase(),
            component
                .url
                .clone()
                .unwrap_or_else(|| component.origin.clone()),
            component
                .process
                .map(|p| p.pid.to_string())
                .unwrap_or_default(),
            component.restarts.to_string(),
        ]);
    }
    println!("{table}");
}

fn print_cluster(report: &StatusReport) {
    match &report.release {
        Some(r) => println!(
            "{} on {}: release {} ({:?}), applied {} by {}",
            report.environment, report.server, r.revision, r.status, r.applied_at, r.applied_by
        ),
        None => println!(
            "{} on {}: no release recorded",
            report.environment, report.server
        ),
    }
    if let Some(canary) = report.release.as_ref().and_then(|r| r.canary.as_ref())
        && canary.outcome == CanaryOutcome::InProgress
    {
        print_canary_in_progress(&report.environment, canary);
    }
    if let Some(preview) = report.release.as_ref().and_then(|r| r.blue_green.as_ref()) {
        print_blue_green(&report.environment, preview);
    }
    let mut table = super::new_table(&[
        "WORKLOAD",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "REVISION",
        "AGE",
        "IMAGE",
        "ROLLOUT",
    ]);
    for w in &report.workloads {
        let rollout = match &w.rollout {
            Progress::Ready => "ready".to_string(),
            Progress::Waiting { message, .. } => message.clone(),
            Progress::Failed { condition, .. } => condition.clone(),
        };
        table.add_row([
            format!("{}/{}/{}", w.kind, w.namespace, w.name),
            format!("{}/{}", w.ready, w.desired),
            w.updated.to_string(),
            w.available.to_string(),
            w.revision.clone().unwrap_or_else(|| "-".into()),
            w.age.clone(),
            w.images.join(", "),
            rollout,
        ]);
    }
    println!("{table}");
    if !report.autoscalers.is_empty() {
        let mut table =
            super::new_table(&["AUTOSCALER", "TARGET", "CURRENT", "DESIRED", "MIN", "MAX"]);
        for h in &report.autoscalers {
            table.add_row([
                format!("{}/{}", h.namespace, h.name),
                h.target.clone(),
                h.current.to_string(),
                h.desired.to_string(),
                h.min.to_string(),
                h.max.to_string(),
            ]);
        }
        println!("{table}");
    }
    if !report.budgets.is_empty() {
        let mut table = super::new_table(&[
            "DISRUPTION BUDGET",
            "HEALTHY",
            "NEEDED",
            "ALLOWED DISRUPTIONS",
        ]);
        for b in &report.budgets {
            table.add_row([
                format!("{}/{}", b.namespace, b.name),
                b.current_healthy.to_string(),
                b.desired_healthy.to_string(),
                b.disruptions_allowed.to_string(),
            ]);
        }
        println!("{table}");
    }
    for warning in &report.warnings {
        println!("warning: {warning}");
    }
}

fn print_canary_in_progress(environment: &str, canary: &CanaryRecord) {
    let weight = canary
        .step
        .checked_sub(1)
        .and_then(|i| canary.steps.get(i))
        .map_or("starting".into(), |w| format!("{w}%"));
    println!(
        "canary in progress: step {}/{} ({weight}) of {} against release {}",
        canary.step,
        canary.steps.len(),
        canary.services.join(", "),
        canary.stable_revision
    );
    if let Some(last) = canary.measurements.last() {
        let verdict = match &last.verdict {
            Verdict::Pass => "passed".to_owned(),
            Verdict::Fail { reasons } => format!("failed: {}", reasons.join("; ")),
            Verdict::WaitingForData { reason } => format!("waiting for data: {reason}"),
        };
        println!("  last analysis at {}: {verdict}", last.at);
        for service in &last.services {
            for (track, sli) in [("canary", &service.canary), ("stable", &service.stable)] {
                println!(
                    "  {} {track}: {:.0} requests, {} 5xx, p95 {}",
                    service.service,
                    sli.requests,
                    sli.errors_text(),
                    sli.p95_text()
                );
            }
        }
    }
    println!(
        "  if no shopctl is running it any more, the next `shopctl apply --env {environment}` \
         or `shopctl rollback --env {environment}` aborts it"
    );
}

fn print_blue_green(environment: &str, record: &BlueGreenRecord) {
    match record.phase {
        Phase::Previewing => println!(
            "blue-green in progress: previewing {} beside release {}; if no shopctl is \
             running it any more, the next `shopctl apply --env {environment}` or `shopctl \
             rollback --env {environment}` aborts it",
            record.services.join(", "),
            record.stable_revision
        ),
        Phase::Switched => println!(
            "blue-green: the Services point at the preview pods of {} since {}; release {} \
             stays warm until {} (`shopctl rollback --env {environment}` switches back \
             instantly; the next apply finalizes)",
            record.services.join(", "),
            record.switched_at.as_deref().unwrap_or("?"),
            record.stable_revision,
            record.retain_until.as_deref().unwrap_or("?")
        ),
        _ => {}
    }
}
