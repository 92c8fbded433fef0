//! `shopctl apply`: render an environment's release and apply it to its cluster with
//! server-side apply — prune, history, optional wait and automatic rollback — or send it
//! out progressively (`--strategy canary` or `blue-green`); `--base` applies only the
//! cluster-wide base.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::Value;
use shopctl::cluster::Cluster;
use shopctl::cluster::apply::{ApplyOptions, Change};
use shopctl::cluster::deploy::{BasePolicy, DeployOptions, DeployReport, Deployer};
use shopctl::cluster::progressive::blue_green::{self, BlueGreenOptions, BlueGreenReport};
use shopctl::cluster::progressive::canary::{self, CanaryOptions, CanaryOutcome, CanaryReport};
use shopctl::cluster::progressive::{Note, Settled};
use shopctl::env::Environment;
use shopctl::render::{self, SecretMode};
use shopctl::reports::ApplyReport;
use shopctl::secrets::SecretSource;

use super::cluster::ClusterArgs;
use super::progress::{print_rollout, progress_reporter};
use super::{EnvArgs, Outcome, OutputFormat, parse_duration};

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    env: EnvArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Ask the server what would change (server-side dry run) and print a diff per object.
    #[arg(long)]
    dry_run: bool,
    /// Wait until every workload has rolled out.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits, e.g. 90s or 5m.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    timeout: Duration,
    /// Go back to the previous release if the rollout fails (implies --wait).
    #[arg(long)]
    atomic: bool,
    /// Take over fields another field manager owns (server-side apply force).
    #[arg(long)]
    force: bool,
    /// Apply only the cluster base (Namespaces, StorageClass, ClusterRoles and their
    /// bindings): a cluster administrator's job. Without it, apply deploys the release and
    /// applies the base first only when it is out of date and the caller may.
    #[arg(long, conflicts_with_all = ["wait", "atomic"])]
    base: bool,
    /// Releases to keep in the history.
    #[arg(long, env = "SHOPCTL_HISTORY_MAX", default_value_t = 10)]
    history_max: usize,
    /// Secrets file (default .shopctl/secrets/<env>.yaml).
    #[arg(long, value_name = "FILE")]
    secrets_file: Option<PathBuf>,
    #[command(flatten)]
    progressive: ProgressiveArgs,
    #[arg(long, value_enum, default_value = "table")]
    output: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum StrategyArg {
    /// Every pod moves by a rolling update (with --wait and --atomic as asked).
    Rolling,
    /// The changed services' new pods run as canaries beside the stable ones, judged on
    /// their SLIs in Prometheus at each step, then promoted or aborted.
    Canary,
    /// The changed services' new version runs as a full preview set, passes validate's app
    /// checks through preview Services, then the Services switch to it; the old pods stay warm
    /// for an instant rollback.
    BlueGreen,
}

#[derive(Debug, Args)]
struct ProgressiveArgs {
    /// How the release reaches the pods. Canary and blue-green wait and roll back by
    /// themselves: --timeout bounds a step's wait for ready canaries and for enough
    /// traffic, or the previews' wait to become ready.
    #[arg(long, value_enum, default_value = "rolling", conflicts_with_all = ["dry_run", "base"])]
    strategy: StrategyArg,
    /// Canary sizes, in percent of each service's stable pods, step by step.
    #[arg(long, value_delimiter = ',', default_value = "10,50,100", value_parser = clap::value_parser!(u32).range(1..=100))]
    steps: Vec<u32>,
    /// How much traffic each analysis looks back over, and how often one runs.
    #[arg(long, default_value = canary::DEFAULT_INTERVAL, value_parser = parse_duration)]
    interval: Duration,
    /// Failed analyses tolerated (per step) before the canary is aborted.
    #[arg(long, default_value_t = 0)]
    max_failures: u32,
    /// Canary requests per service (in one interval) below which nothing is judged.
    #[arg(long, default_value_t = 50)]
    min_requests: u64,
    /// Blue-green: how long after the switch `rollback` switches back instantly (the old
    /// pods stay warm until the next apply finalizes the release, or this passes).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    retention: Duration,
}

/// A progressive strategy with its options.
enum Progressive {
    Canary(CanaryOptions),
    BlueGreen(BlueGreenOptions),
}

async fn connect(args: &ClusterArgs, environment: &Environment) -> anyhow::Result<Cluster> {
    Cluster::connect(&args.options(), environment).await
}

fn deploy_options(args: &ApplyArgs) -> DeployOptions {
    DeployOptions {
        apply: ApplyOptions {
            dry_run: args.dry_run,
            force: args.force,
        },
        wait: (args.wait || args.atomic).then_some(args.timeout),
        atomic: args.atomic,
        keep: args.history_max,
        cause: "apply".into(),
        base: BasePolicy::Current,
        completes: None,
    }
}

fn canary_options(args: &ApplyArgs, environment: &Environment) -> anyhow::Result<CanaryOptions> {
    let steps = &args.progressive.steps;
    if steps.windows(2).any(|pair| pair[0] >= pair[1]) {
        anyhow::bail!("--steps must grow step by step (e.g. 10,50,100), not {steps:?}");
    }
    if args.progressive.interval < Duration::from_secs(1) {
        anyhow::bail!("--interval must be at least 1s: Prometheus needs two samples in it");
    }
    Ok(CanaryOptions {
        steps: steps.clone(),
        interval: args.progressive.interval,
        max_failures: args.progressive.max_failures,
        min_requests: args.progressive.min_requests,
        step_timeout: args.timeout,
        monitoring_namespace: environment.observability.namespace.clone(),
        keep: args.history_max,
    })
}

pub fn exec(args: ApplyArgs) -> anyhow::Result<Outcome> {
    let (templates, environment) = args.cluster.load(&args.env)?;
    let secrets =
        SecretSource::new(&environment.name, args.secrets_file.as_deref()).resolve(&environment)?;
    let manifests: Vec<Value> =
        render::render(&templates, &environment, &SecretMode::Values(secrets))?
            .into_iter()
            .map(|m| m.value)
            .collect();
    if args.base {
        let (base, _) = shopctl::cluster::base::split(&manifests);
        let options = deploy_options(&args).apply;
        let changes = super::block_on(async {
            let cluster = connect(&args.cluster, &environment).await?;
            shopctl::cluster::base::apply(&cluster, &base, &options).await
        })?;
        let report = DeployReport {
            environment: environment.name.clone(),
            namespace: environment.namespace.clone(),
            dry_run: args.dry_run,
            revision: None,
            previous: None,
            base_changes: changes,
            changes: Vec::new(),
            rollout: Vec::new(),
            rolled_back: None,
            settled: Default::default(),
            switched_back: None,
        };
        return print_deploy(&report, args.output);
    }
    let progressive = match args.progressive.strategy {
        StrategyArg::Canary => Some(Progressive::Canary(canary_options(&args, &environment)?)),
        StrategyArg::BlueGreen => Some(Progressive::BlueGreen(BlueGreenOptions {
            timeout: args.timeout,
            retention: args.progressive.retention,
            keep: args.history_max,
        })),
        StrategyArg::Rolling => None,
    };
    let note: Note = Arc::new(|line| eprintln!("{line}"));
    super::block_on(async {
        let cluster = connect(&args.cluster, &environment).await?;
        let deployer = Deployer {
            cluster: &cluster,
            environment: environment.name.clone(),
            namespace: environment.namespace.clone(),
            on_progress: progress_reporter(),
        };
        match progressive {
            Some(Progressive::Canary(options)) => {
                let report = canary::run(&deployer, &manifests, &options, note).await?;
                print_canary(&report, args.output)
            }
            Some(Progressive::BlueGreen(options)) => {
                let report = blue_green::run(&deployer, &manifests, &options, note).await?;
                print_blue_green(&report, args.output)
            }
            None => {
                let report = deployer.deploy(&manifests, &deploy_options(&args)).await?;
                print_deploy(&report, args.output)
            }
        }
    })
}

fn print_canary(report: &CanaryReport, output: OutputFormat) -> anyhow::Result<Outcome> {
    match output {
        OutputFormat::Json => print_json(&ApplyReport::Canary(report))?,
        OutputFormat::Table => {
            print_settled(&report.settled);
            let canary = &report.canary;
            if let Some(last) = canary
                .measurements
                .last()
                .filter(|m| !m.services.is_empty())
            {
                let mut table =
                    super::new_table(&["SERVICE", "TRACK", "REQUESTS", "5XX", "P95", "STEP"]);
                for service in &last.services {
                    for (track, sli) in [("canary", &service.canary), ("stable", &service.stable)] {
                        table.add_row([
                            service.service.clone(),
                            track.to_owned(),
                            format!("{:.0}", sli.requests),
                            sli.errors_text(),
                            sli.p95_text(),
                            format!("{}/{} ({}%)", last.step, canary.steps.len(), last.weight),
                        ]);
                    }
                }
                println!("{table}");
            }
            match (&canary.outcome, &report.promotion) {
                (CanaryOutcome::Promoted, Some(promotion)) => {
                    println!(
                        "release {} promoted after {} step(s): the stable Deployments run it",
                        report.revision,
                        canary.steps.len()
                    );
                    print_rollout(&promotion.rollout);
                }
                _ => println!(
                    "release {} aborted: {}; `shopctl history --env {} --output json` has every measurement",
                    report.revision,
                    canary.reason.as_deref().unwrap_or("no reason recorded"),
                    report.environment
                ),
            }
        }
    }
    Ok(Outcome::judged(report.succeeded()))
}

fn print_blue_green(report: &BlueGreenReport, output: OutputFormat) -> anyhow::Result<Outcome> {
    match output {
        OutputFormat::Json => print_json(&ApplyReport::BlueGreen(report))?,
        OutputFormat::Table => {
            print_settled(&report.settled);
            let record = &report.blue_green;
            if !record.checks.is_empty() {
                let mut table = super::new_table(&["PREVIEW CHECK", "STATUS", "DETAIL"]);
                for check in &record.checks {
                    table.add_row([
                        check.id.clone(),
                        format!("{:?}", check.status).to_lowercase(),
                        check.detail.clone(),
                    ]);
                }
                println!("{table}");
            }
            if report.succeeded() {
                println!(
                    "release {} switched: the Services point at its preview pods; release {} \
                     stays warm until {} — `shopctl rollback --env {}` switches back instantly",
                    report.revision,
                    record.stable_revision,
                    record.retain_until.as_deref().unwrap_or("?"),
                    report.environment
                );
            } else {
                println!(
                    "release {} aborted: {}; the Services still point at release {}",
                    report.revision,
                    record.reason.as_deref().unwrap_or("no reason recorded"),
                    record.stable_revision
                );
            }
        }
    }
    Ok(Outcome::judged(report.succeeded()))
}

fn print_json(report: &ApplyReport) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(report)?);
    Ok(())
}

/// What a command settled before its own work: an interrupted release it aborted, a
/// switched blue/green release it finalized.
fn print_settled(settled: &Settled) {
    if let Some(resolved) = &settled.resolved {
        println!(
            "aborted the interrupted release {} first: {}",
            resolved.revision, resolved.reason
        );
    }
    if let Some(finalized) = settled.finalized {
        println!("finalized the switched blue/green release {finalized} first");
    }
}

fn print_deploy(report: &DeployReport, output: OutputFormat) -> anyhow::Result<Outcome> {
    match output {
        OutputFormat::Json => print_json(&ApplyReport::Rolling(report))?,
        OutputFormat::Table => print_deploy_table(report),
    }
    Ok(if report.rollout_failed() {
        Outcome::CheckFailed
    } else {
        Outcome::Success
    })
}

pub(super) fn print_deploy_table(report: &DeployReport) {
    let all = || report.base_changes.iter().chain(&report.changes);
    let count = |change: Change| all().filter(|c| c.change == change).count();
    if !report.base_changes.is_empty() {
        println!(
            "cluster base: {} objects applied (Namespaces, StorageClass, cluster RBAC)",
            report.base_changes.len()
        );
    }
    print_settled(&report.settled);
    if let Some(back) = &report.switched_back {
        println!(
            "switched back: the Services point at the warm pods of release {} again; release {} \
             is recorded as switched back (nothing rolled out)",
            back.to, back.from
        );
    }
    let changed: Vec<_> = all().filter(|c| c.change != Change::Unchanged).collect();
    if !changed.is_empty() {
        let mut table = super::new_table(&["CHANGE", "OBJECT"]);
        for change in &changed {
            let verb = match change.change {
                Change::Created => "created",
                Change::Configured => "configured",
                Change::Pruned => "pruned",
                Change::Unchanged => "unchanged",
            };
            let verb = if report.dry_run {
                format!("{verb} (dry run)")
            } else {
                verb.to_string()
            };
            table.add_row([verb, change.id.clone()]);
        }
        println!("{table}");
    }
    for change in changed {
        if let Some(diff) = &change.diff {
            println!("--- {}\n{diff}", change.id);
        }
    }
    println!(
        "{} created, {} configured, {} unchanged, {} pruned{}",
        count(Change::Created),
        count(Change::Configured),
        count(Change::Unchanged),
        count(Change::Pruned),
        if report.dry_run {
            " (dry run: nothing was changed)"
        } else {
            ""
        }
    );
    if !report.dry_run && report.switched_back.is_none() {
        match (report.revision, report.previous) {
            (Some(revision), Some(previous)) => println!(
                "recorded release {revision} of {} (previous: {previous})",
                report.environment
            ),
            (Some(revision), None) => println!(
                "recorded release {revision} of {} (the first)",
                report.environment
            ),
            (None, Some(previous)) => println!(
                "no changes: release {previous} of {} is current",
                report.environment
            ),
            (None, None) => {}
        }
    }
    print_rollout(&report.rollout);
    if let Some(back) = &report.rolled_back {
        match back.revision {
            Some(revision) => println!(
                "rolled back automatically to release {} (recorded as release {revision})",
                back.to
            ),
            None => println!("rolled back automatically to release {}", back.to),
        }
        print_rollout(&back.rollout);
    }
}
