//! `shopctl status`: what runs, where, and whether it is ready, on either target.

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
