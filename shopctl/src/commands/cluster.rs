//! `apply`, and the cluster side of `status`, `history`, `rollback`, `logs`, `down` and
//! `restart`: connect the way kubectl does, call the library, draw progress bars on a
//! terminal, print a table or JSON.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use shopctl::cluster::apply::{ApplyOptions, Change};
use shopctl::cluster::deploy::{BasePolicy, DeployOptions, DeployReport, Deployer};
use shopctl::cluster::release::ReleaseStore;
use shopctl::cluster::rollout::{Progress, ProgressCallback, WaitResult, Workload};
use shopctl::cluster::{Cluster, ClusterOptions, rollback, status};
use shopctl::env::Environment;
use shopctl::render::{self, SecretMode};
use shopctl::reports::{History, ReleaseRecord, Target};
use shopctl::secrets::SecretSource;

use super::down::DownArgs;
use super::history::HistoryArgs;
use super::logs::LogsArgs;
use super::restart::RestartArgs;
use super::rollback::RollbackArgs;
use super::status::StatusArgs;
use super::{EnvArgs, Outcome, OutputFormat, parse_duration};
use shopctl::validate::ClusterTarget;

/// Which cluster, as kubectl users expect (kubeconfig, context; in-cluster when neither).
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (default: the current context, which must point at the
    /// environment's cluster).
    #[arg(long)]
    context: Option<String>,
    /// Namespace the platform runs in (default: the environment's `namespace`).
    #[arg(long, short = 'n')]
    namespace: Option<String>,
}

impl ClusterArgs {
    /// The environment as this invocation sees it: --namespace moves the platform.
    pub(super) fn load(
        &self,
        env: &EnvArgs,
    ) -> anyhow::Result<(shopctl::templates::Templates, Environment)> {
        let (templates, mut environment) = env.load()?;
        if let Some(namespace) = &self.namespace {
            environment.namespace = namespace.clone();
        }
        Ok((templates, environment))
    }

    /// These arguments again, for a `shopctl` a runbook action runs.
    pub fn forwarded(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(kubeconfig) = &self.kubeconfig {
            args.extend(["--kubeconfig".to_owned(), kubeconfig.display().to_string()]);
        }
        if let Some(context) = &self.context {
            args.extend(["--context".to_owned(), context.clone()]);
        }
        if let Some(namespace) = &self.namespace {
            args.extend(["--namespace".to_owned(), namespace.clone()]);
        }
        args
    }

    /// The kubeconfig to write: the one named on the command line, else `default`.
    pub fn kubeconfig_or(&self, default: PathBuf) -> PathBuf {
        self.kubeconfig.clone().unwrap_or(default)
    }

    /// These arguments pointed at `kubeconfig` and its `context`.
    pub fn with(mut self, kubeconfig: PathBuf, context: String) -> Self {
        self.kubeconfig = Some(kubeconfig);
        self.context = Some(context);
        self
    }

    pub fn options(&self) -> ClusterOptions {
        ClusterOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
        }
    }
}

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

/// Progress bars on a terminal (one per workload); plain lines as workloads settle
/// otherwise, so CI logs show progress without control characters.
pub(super) fn progress_reporter() -> ProgressCallback {
    let terminal = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let multi = MultiProgress::with_draw_target(if terminal {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let bars: Mutex<HashMap<String, ProgressBar>> = Mutex::new(HashMap::new());
    let style = ProgressStyle::with_template("{spinner} {prefix:40} [{bar:20}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    Arc::new(move |workload: &Workload, progress: &Progress| {
        let mut bars = bars.lock().unwrap_or_else(|p| p.into_inner());
        let bar = bars.entry(workload.id()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(1));
            bar.set_style(style.clone());
            bar.set_prefix(workload.id());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        match progress {
            Progress::Waiting {
                ready,
                desired,
                message,
            } => {
                bar.set_length((*desired).max(1) as u64);
                bar.set_position((*ready).max(0) as u64);
                bar.set_message(message.clone());
            }
            Progress::Ready => {
                bar.set_position(bar.length().unwrap_or(1));
                bar.finish_with_message("ready");
                if !terminal {
                    eprintln!("{} ready", workload.id());
                }
            }
            Progress::Failed { condition, .. } => {
                bar.abandon_with_message(condition.clone());
                if !terminal {
                    eprintln!("{} failed: {condition}", workload.id());
                }
            }
        }
    })
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

pub fn apply(args: ApplyArgs) -> anyhow::Result<Outcome> {
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
    for change in all().filter(|c| c.change != Change::Unchanged) {
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
        println!("{:<22} {}", verb, change.id);
        if let Some(diff) = &change.diff {
            println!("{diff}");
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

fn print_rollout(results: &[WaitResult]) {
    if results.is_empty() {
        return;
    }
    let mut table = super::new_table(&["WORKLOAD", "ROLLOUT", "SECONDS", "WHY"]);
    for result in results {
        table.add_row([
            result.workload.clone(),
            if result.ready {
                "ready".into()
            } else {
                "FAILED".into()
            },
            format!("{:.1}", result.seconds),
            result.reason.clone().unwrap_or_default(),
        ]);
    }
    println!("{table}");
    for result in results.iter().filter(|r| !r.warnings.is_empty()) {
        println!("recent warning events for {}:", result.workload);
        for warning in &result.warnings {
            println!("  {warning}");
        }
    }
}

pub(super) fn status(args: StatusArgs, environment: Environment) -> anyhow::Result<Outcome> {
    let namespaces = vec![
        environment.namespace.clone(),
        environment.observability.namespace.clone(),
    ];
    let report = super::block_on(async {
        let cluster = connect(&args.cluster, &environment).await?;
        status::status(&cluster, &environment.name, &namespaces).await
    })?;
    match args.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&shopctl::reports::Status::Cluster(report))?
        ),
        OutputFormat::Table => print_status(&report),
    }
    Ok(Outcome::Success)
}

fn print_status(report: &status::StatusReport) {
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

pub(super) fn history(args: HistoryArgs, environment: Environment) -> anyhow::Result<Outcome> {
    let releases = super::block_on(async {
        let cluster = connect(&args.cluster, &environment).await?;
        ReleaseStore::new(&cluster, &environment.namespace, &environment.name)
            .list()
            .await
    })?;
    match args.output {
        OutputFormat::Json => {
            let report = History {
                environment: environment.name.clone(),
                target: Target::Cluster,
                current: releases.iter().map(|r| r.revision).max(),
                releases: releases.into_iter().map(ReleaseRecord::Cluster).collect(),
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        OutputFormat::Table => {
            if releases.is_empty() {
                println!(
                    "no releases recorded for {}; `shopctl apply --env {}` creates the first",
                    environment.name, environment.name
                );
                return Ok(Outcome::Success);
            }
            let mut table =
                super::new_table(&["REVISION", "APPLIED", "BY", "STATUS", "CAUSE", "DIGEST"]);
            for r in &releases {
                table.add_row([
                    r.revision.to_string(),
                    r.applied_at.clone(),
                    r.applied_by.clone(),
                    format!("{:?}", r.status).to_lowercase(),
                    r.cause.clone(),
                    r.digest[..12].to_string(),
                ]);
            }
            println!("{table}");
        }
    }
    Ok(Outcome::Success)
}

/// `logs <service> --env <cluster>`: every pod's log, each line prefixed with its pod.
pub(super) fn logs(args: LogsArgs, environment: Environment) -> anyhow::Result<Outcome> {
    use shopctl::cluster::logs::{LogEvent, LogOptions};
    use std::io::Write;
    let options = LogOptions {
        follow: args.follow,
        since: args.since,
        tail: args.tail.map(|t| t as i64),
        previous: args.previous,
    };
    let mut unavailable = 0;
    super::block_on(async {
        let cluster = connect(&args.cluster, &environment).await?;
        let mut stdout = std::io::stdout().lock();
        shopctl::cluster::logs::stream(
            &cluster,
            &environment.namespace,
            &environment.name,
            &args.service,
            &options,
            |event| match event {
                LogEvent::Line { pod, text } => {
                    let _ = writeln!(stdout, "[{pod}] {text}");
                    let _ = stdout.flush();
                }
                LogEvent::Unavailable { pod, reason } => {
                    unavailable += 1;
                    eprintln!("[{pod}] no log: {reason}");
                }
            },
        )
        .await
    })?;
    Ok(if unavailable == 0 {
        Outcome::Success
    } else {
        Outcome::CheckFailed
    })
}

/// `down --env <cluster>`: uninstall the release, keeping the data unless `--purge`.
pub(super) fn down(args: DownArgs, environment: Environment) -> anyhow::Result<Outcome> {
    let what = if args.purge {
        "and delete its database volumes and release history (backups stay)"
    } else {
        "(the database volumes, backups and release history stay)"
    };
    super::confirm::by_typing_the_name(
        &environment.name,
        &format!(
            "uninstall the `{}` platform from namespace {} {what}",
            environment.name, environment.namespace
        ),
        args.yes,
    )?;
    let uninstalled = super::block_on(async {
        let cluster = connect(&args.cluster, &environment).await?;
        shopctl::cluster::uninstall::uninstall(
            &cluster,
            &environment.namespace,
            &environment.name,
            args.purge,
        )
        .await
    })?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&uninstalled)?),
        OutputFormat::Table => {
            eprintln!(
                "uninstalled release {} of {}: {} objects deleted",
                uninstalled.revision,
                environment.name,
                uninstalled.deleted.len()
            );
            for id in &uninstalled.left_alone {
                eprintln!("left alone (no longer shopctl's): {id}");
            }
            for id in &uninstalled.claims_kept {
                eprintln!("kept: {id} (`down --purge` deletes it)");
            }
            for id in &uninstalled.purged {
                eprintln!("purged: {id}");
            }
        }
    }
    Ok(Outcome::Success)
}

/// `runbook run NAME --env <cluster>`: checks through the API server, logs from the
/// pods, SQL in a Job, actions as shopctl commands on the same cluster, the run recorded
/// in the cluster.
pub async fn run_runbook(
    environment: &Environment,
    args: &ClusterArgs,
    book: &shopctl::runbook::Runbook,
    options: shopctl::runbook::RunOptions,
) -> anyhow::Result<shopctl::runbook::RunOutcome> {
    let cluster = connect(args, environment).await?;
    let target = ClusterTarget::load(&cluster, environment).await?;
    let operator = shopctl::cluster::runbook::ClusterOperator {
        cluster,
        namespace: environment.namespace.clone(),
        env: environment.name.clone(),
        cluster_args: args.forwarded(),
        job_timeout: Duration::from_secs(300),
    };
    shopctl::runbook::Executor {
        target: &target,
        operator: &operator,
        options,
    }
    .run(book)
    .await
}

/// `restart <service> --env <cluster>`: a rollout restart, then the rollout wait.
pub(super) fn restart(args: RestartArgs, environment: Environment) -> anyhow::Result<Outcome> {
    let results = super::block_on(async {
        let cluster = connect(&args.cluster, &environment).await?;
        let workload = shopctl::cluster::restart::restart(
            &cluster,
            &environment.namespace,
            &environment.name,
            &args.service,
        )
        .await?;
        shopctl::cluster::rollout::wait_all(
            &cluster,
            &[workload],
            args.timeout,
            progress_reporter(),
        )
        .await
    })?;
    print_rollout(&results);
    Ok(if results.iter().all(|r| r.ready) {
        eprintln!("{} restarted: every pod replaced and ready", args.service);
        Outcome::Success
    } else {
        Outcome::CheckFailed
    })
}

pub(super) fn rollback(args: RollbackArgs, environment: Environment) -> anyhow::Result<Outcome> {
    if let Some(service) = &args.service {
        let (rolled, results) = super::block_on(async {
            let cluster = connect(&args.cluster, &environment).await?;
            let rolled = rollback::rollback_service(
                &cluster,
                &environment.namespace,
                &environment.name,
                service,
                args.to,
            )
            .await?;
            let workload = Workload {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: environment.namespace.clone(),
                name: service.clone(),
            };
            let results = shopctl::cluster::rollout::wait_all(
                &cluster,
                &[workload],
                args.timeout,
                progress_reporter(),
            )
            .await?;
            anyhow::Ok((rolled, results))
        })?;
        println!(
            "Deployment {} rolled back from revision {} to the template of revision {}",
            rolled.deployment, rolled.from, rolled.to
        );
        println!(
            "note: the environment's release history is unchanged; the next `shopctl apply` applies the templates again"
        );
        print_rollout(&results);
        return Ok(if results.iter().all(|r| r.ready) {
            Outcome::Success
        } else {
            Outcome::CheckFailed
        });
    }
    let options = DeployOptions {
        apply: ApplyOptions {
            dry_run: false,
            force: true,
        },
        wait: Some(args.timeout),
        atomic: false,
        keep: args.history_max,
        cause: String::new(),
        base: BasePolicy::Present,
    };
    let report = super::block_on(async {
        let cluster = connect(&args.cluster, &environment).await?;
        let deployer = Deployer {
            cluster: &cluster,
            environment: environment.name.clone(),
            namespace: environment.namespace.clone(),
            on_progress: progress_reporter(),
        };
        deployer.rollback(args.to, &options).await
    })?;
    print_deploy(&report, args.output)
}
