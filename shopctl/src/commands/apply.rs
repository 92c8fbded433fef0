//! `shopctl apply`: render an environment's release and apply it to its cluster with
//! server-side apply — prune, history, optional wait and automatic rollback; `--base`
//! applies only the cluster-wide base.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde_json::Value;
use shopctl::cluster::Cluster;
use shopctl::cluster::apply::{ApplyOptions, Change};
use shopctl::cluster::deploy::{BasePolicy, DeployOptions, DeployReport, Deployer};
use shopctl::env::Environment;
use shopctl::render::{self, SecretMode};
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
    #[arg(long, value_enum, default_value = "table")]
    output: OutputFormat,
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
    }
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
        };
        return print_deploy(&report, args.output);
    }
    let report = super::block_on(async {
        let cluster = connect(&args.cluster, &environment).await?;
        let deployer = Deployer {
            cluster: &cluster,
            environment: environment.name.clone(),
            namespace: environment.namespace.clone(),
            on_progress: progress_reporter(),
        };
        deployer.deploy(&manifests, &deploy_options(&args)).await
    })?;
    print_deploy(&report, args.output)
}

fn print_deploy(report: &DeployReport, output: OutputFormat) -> anyhow::Result<Outcome> {
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(report)?),
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
    if !report.dry_run {
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
