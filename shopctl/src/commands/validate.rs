//! `shopctl validate`: is the environment healthy, and if not, why not. Exit 0 when no
//! check fails, 1 when one does, 2 when validate itself cannot run.

use std::time::Duration;

use clap::Args;
use shopctl::reports::Target;
use shopctl::validate::cluster::DriftCheck;
use shopctl::validate::{self, Report, Selection, Status};

use super::cluster::ClusterArgs;
use super::{EnvArgs, Outcome, OutputFormat, parse_duration};

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    env: EnvArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Only these check ids or categories (access, workloads, scaling, security, storage,
    /// app, obs); comma-separated or repeated.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Leave out these check ids or categories.
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    #[arg(long, value_enum, default_value = "table")]
    output: OutputFormat,
    /// Deadline for the whole run, e.g. 30s or 2m.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
    /// Deadline for each check.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    check_timeout: Duration,
    /// Run the checks one after another instead of concurrently (slower; for comparison
    /// and for debugging a check in isolation).
    #[arg(long)]
    sequential: bool,
    /// Clusters: also run `terraform plan` (no lock) and fail on any drift between the
    /// infrastructure and its configuration. Slow; bounded by --timeout only.
    #[arg(long)]
    drift: bool,
    /// List the skipped checks too (the table folds them into a count; JSON has them all).
    #[arg(long)]
    show_skipped: bool,
    /// The Terraform root module --drift plans (default: terraform/envs/<env>).
    #[arg(long, value_name = "DIR", requires = "drift")]
    stack: Option<std::path::PathBuf>,
}

pub fn exec(args: ValidateArgs) -> anyhow::Result<Outcome> {
    let started = std::time::Instant::now();
    let unknown = validate::unknown_names(&[args.only.clone(), args.skip.clone()].concat());
    anyhow::ensure!(
        unknown.is_empty(),
        "unknown check or category: {} (see `shopctl validate --output json` for ids)",
        unknown.join(", ")
    );
    let mut selection = Selection {
        sequential: args.sequential,
        only: args.only,
        skip: args.skip,
        per_check: args.check_timeout,
        overall: args.timeout,
    };
    let platform = args.cluster.open(&args.env)?;
    let drift = args.drift.then(|| DriftCheck {
        stack: args.stack.clone(),
    });
    let report = super::block_on(async {
        // Reading the target (a cluster's objects) counts against the overall deadline.
        let target = tokio::time::timeout(args.timeout, platform.checks(drift))
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "reading the {} took longer than --timeout {}s",
                    match platform.target() {
                        Target::Local => "local platform",
                        Target::Cluster => "cluster",
                    },
                    args.timeout.as_secs()
                )
            })??;
        selection.overall = args.timeout.saturating_sub(started.elapsed());
        anyhow::Ok(validate::run(&platform.environment().name, target.as_ref(), &selection).await)
    })?;
    // The summary's time is the whole run's, reading the target included.
    let report = Report {
        millis: started.elapsed().as_millis() as u64,
        ..report
    };
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Table => print_table(&report, args.show_skipped),
    }
    Ok(Outcome::judged(!report.failed()))
}

/// What matters first (the report is ordered: failures, warnings, passes), skipped checks
/// folded into one line unless asked for (`--show-skipped`); the verdict is the last line.
pub(super) fn print_table(report: &Report, show_skipped: bool) {
    let checks = report
        .checks
        .iter()
        .filter(|c| show_skipped || c.verdict.status != Status::Skipped);
    let mut table = super::new_table(&["CHECK", "STATUS", "DETAIL", "WHAT TO DO"]);
    for check in checks {
        let status = match check.verdict.status {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skipped => "skipped",
        };
        table.add_row([
            check.id,
            status,
            &check.verdict.detail,
            check.verdict.hint.as_deref().unwrap_or(""),
        ]);
    }
    println!("{table}");
    if !show_skipped && report.skipped > 0 {
        println!(
            "{} checks skipped (not meaningful here, or not allowed); --show-skipped lists them",
            report.skipped
        );
    }
    println!(
        "{} ({}): {} passed, {} warnings, {} failed, {} skipped in {:.2}s",
        report.environment,
        report.target,
        report.passed,
        report.warnings,
        report.failed,
        report.skipped,
        report.millis as f64 / 1000.0
    );
}
