//! `shopctl infra`: the state backend (bootstrap), Terraform plan/apply/destroy/drift with
//! the environment's backend and variables, and state locks. Every subcommand first checks
//! the tools and that the AWS credentials belong to the environment's account.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use shopctl::env::Environment;
use shopctl::env::model::Provider;
use shopctl::infra::terraform::{PlanSummary, Workspace, since};
use shopctl::infra::{self, bootstrap, locks};
use shopctl::reports::{InfraBootstrap, InfraLocks, InfraPlan};

use super::{EnvArgs, Outcome, OutputFormat};

#[derive(Debug, Args)]
pub struct InfraArgs {
    #[command(subcommand)]
    command: InfraCommand,
}

#[derive(Debug, Args)]
struct StackArgs {
    #[command(flatten)]
    env: EnvArgs,
    /// Terraform root module to run (default: terraform/envs/<env>).
    #[arg(long, value_name = "DIR")]
    stack: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    output: OutputFormat,
}

#[derive(Debug, Subcommand)]
enum InfraCommand {
    /// Create or verify the Terraform state bucket and lock table.
    Bootstrap {
        #[command(flatten)]
        env: EnvArgs,
        /// Report what would be created or changed, change nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value = "table")]
        output: OutputFormat,
    },
    /// Show what Terraform would change, by action and resource type.
    Plan(StackArgs),
    /// Apply the plan; asks before deleting or replacing anything unless --yes.
    Apply {
        #[command(flatten)]
        stack: StackArgs,
        #[arg(long)]
        yes: bool,
    },
    /// Destroy the environment's infrastructure (asks for the environment name).
    Destroy {
        #[command(flatten)]
        stack: StackArgs,
        /// The environment's name, to confirm non-interactively.
        #[arg(long, value_name = "ENV")]
        confirm: Option<String>,
    },
    /// Exit 0 when the infrastructure matches the configuration, 1 when it drifted, 2 on error.
    Drift(StackArgs),
    /// List the state locks held now: who, what operation, since when.
    Locks(StackArgs),
    /// Release a stale state lock.
    Unlock {
        #[command(flatten)]
        stack: StackArgs,
        /// The lock's ID (`shopctl infra locks`).
        lock_id: String,
        #[arg(long)]
        yes: bool,
        /// Release a lock younger than ten minutes (it may belong to a running apply).
        #[arg(long)]
        force: bool,
    },
}

fn load(env: &EnvArgs) -> anyhow::Result<Environment> {
    let (_, environment) = env.load()?;
    anyhow::ensure!(
        environment.cluster.provider != Provider::Local,
        "the `{}` environment runs on this machine and has no cloud infrastructure",
        environment.name
    );
    Ok(environment)
}

/// A phase on stderr: a spinner on a terminal, a line with its duration otherwise.
pub(super) async fn phase<T>(
    name: &str,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let started = Instant::now();
    let spinner = super::progress::drawing().then(|| {
        let bar = indicatif::ProgressBar::new_spinner().with_message(format!("{name}…"));
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let result = work.await;
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    let mark = if result.is_ok() { "done" } else { "failed" };
    eprintln!("==> {name}: {mark} ({})", since(started));
    result
}

/// Checks everything a Terraform run needs and initialises the working directory.
async fn prepared(
    args: &StackArgs,
) -> anyhow::Result<(Environment, aws_config::SdkConfig, Workspace)> {
    let environment = load(&args.env)?;
    let workspace = Workspace::new(&environment, args.stack.as_deref())?;
    let version = workspace.check_version().await?;
    let config = infra::aws_config(&environment).await;
    let identity = phase(
        "checking AWS credentials",
        infra::check_account(&config, &environment),
    )
    .await?;
    eprintln!("    terraform {version}; acting as {identity}");
    phase("terraform init", workspace.init(&environment)).await?;
    Ok((environment, config, workspace))
}

/// How a plan is made: for a change, for destruction, or to detect drift.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PlanFor {
    Change,
    Destroy,
    /// A scheduled check must not block a deploy: it takes no lock.
    Drift,
}

/// Prepares the stack, plans and summarises: the shared first half of plan, apply,
/// destroy and drift. The flag is Terraform's verdict (any difference, outputs included);
/// the report's `changes` says whether any resource changes.
async fn plan_and_summarise(
    stack: &StackArgs,
    purpose: PlanFor,
) -> anyhow::Result<(Environment, Workspace, bool, InfraPlan)> {
    let (environment, _, workspace) = prepared(stack).await?;
    let (name, destroy, lock) = match purpose {
        PlanFor::Change => ("terraform plan", false, true),
        PlanFor::Destroy => ("terraform plan -destroy", true, true),
        PlanFor::Drift => ("terraform plan (drift)", false, false),
    };
    let changes = phase(name, workspace.plan(&environment, destroy, lock)).await?;
    let summary = if changes {
        workspace.summarise(&environment).await?
    } else {
        PlanSummary::default()
    };
    let report = InfraPlan {
        environment: environment.name.clone(),
        changes: !summary.is_empty(),
        summary,
        applied: None,
        drift: None,
    };
    Ok((environment, workspace, changes, report))
}

fn print_plan(report: &InfraPlan, output: OutputFormat) -> anyhow::Result<()> {
    let summary = &report.summary;
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(report)?),
        OutputFormat::Table if summary.is_empty() => {
            println!("no changes: the infrastructure matches the configuration")
        }
        OutputFormat::Table => {
            let mut table = super::new_table(&["ACTION", "RESOURCE TYPE", "COUNT"]);
            for (action, types) in &summary.counts {
                let shown = if action == "delete" || action == "replace" {
                    format!("{} (DESTRUCTIVE)", action.to_uppercase())
                } else {
                    action.clone()
                };
                for (resource_type, count) in types {
                    table.add_row([shown.clone(), resource_type.clone(), count.to_string()]);
                }
            }
            println!("{table}");
            for change in summary.destructive() {
                println!("{} will be {}d", change.address, change.action);
            }
        }
    }
    Ok(())
}

pub fn exec(args: InfraArgs) -> anyhow::Result<Outcome> {
    super::block_on(async {
        match args.command {
            InfraCommand::Bootstrap {
                env,
                dry_run,
                output,
            } => {
                let environment = load(&env)?;
                let config = infra::aws_config(&environment).await;
                phase(
                    "checking AWS credentials",
                    infra::check_account(&config, &environment),
                )
                .await?;
                let steps = phase(
                    "state bucket and lock table",
                    bootstrap::bootstrap(&config, &environment, dry_run),
                )
                .await?;
                match output {
                    OutputFormat::Json => println!(
                        "{}",
                        serde_json::to_string_pretty(&InfraBootstrap {
                            environment: environment.name.clone(),
                            dry_run,
                            steps: steps.clone(),
                        })?
                    ),
                    OutputFormat::Table => {
                        let mut table = super::new_table(&["ACTION", "RESOURCE", "DETAIL"]);
                        for step in &steps {
                            table.add_row([&step.action, &step.resource, &step.detail]);
                        }
                        println!("{table}");
                    }
                }
                Ok(Outcome::Success)
            }
            InfraCommand::Plan(stack) => {
                let (_, _, _, report) = plan_and_summarise(&stack, PlanFor::Change).await?;
                print_plan(&report, stack.output)?;
                Ok(Outcome::Success)
            }
            InfraCommand::Apply { stack, yes } => {
                let (environment, workspace, changes, mut report) =
                    plan_and_summarise(&stack, PlanFor::Change).await?;
                report.applied = Some(changes);
                // A person sees the plan before confirming it; CI's report says what was
                // done, so it comes after.
                if stack.output == OutputFormat::Table || !changes {
                    print_plan(&report, stack.output)?;
                }
                if !changes {
                    return Ok(Outcome::Success);
                }
                let destructive = report.summary.destructive().len();
                super::confirm::by_typing(
                    &format!(
                        "delete or replace {destructive} resource(s) of {}",
                        environment.name
                    ),
                    "yes",
                    yes || destructive == 0,
                )?;
                phase("terraform apply", workspace.apply(&environment)).await?;
                if stack.output == OutputFormat::Json {
                    print_plan(&report, stack.output)?;
                }
                Ok(Outcome::Success)
            }
            InfraCommand::Destroy {
                stack,
                confirm: confirmed,
            } => {
                let (environment, workspace, _, report) =
                    plan_and_summarise(&stack, PlanFor::Destroy).await?;
                if stack.output == OutputFormat::Table {
                    print_plan(&report, stack.output)?;
                }
                match confirmed {
                    Some(name) => anyhow::ensure!(
                        name == environment.name,
                        "--confirm {name} does not name the environment being destroyed ({})",
                        environment.name
                    ),
                    None => super::confirm::prompt(
                        &format!("destroy the infrastructure of {}", environment.name),
                        &environment.name,
                        "--confirm <env>",
                    )?,
                }
                phase("terraform apply (destroy)", workspace.apply(&environment)).await?;
                if stack.output == OutputFormat::Json {
                    print_plan(&report, stack.output)?;
                }
                Ok(Outcome::Success)
            }
            InfraCommand::Drift(stack) => {
                let (_, _, drifted, mut report) =
                    plan_and_summarise(&stack, PlanFor::Drift).await?;
                report.drift = Some(drifted);
                print_plan(&report, stack.output)?;
                Ok(if drifted {
                    Outcome::CheckFailed
                } else {
                    Outcome::Success
                })
            }
            InfraCommand::Locks(stack) => {
                let environment = load(&stack.env)?;
                let workspace = Workspace::new(&environment, stack.stack.as_deref())?;
                let config = infra::aws_config(&environment).await;
                infra::check_account(&config, &environment).await?;
                let held = locks::list(&config, &environment, &workspace.state_key).await?;
                match stack.output {
                    OutputFormat::Json => println!(
                        "{}",
                        serde_json::to_string_pretty(&InfraLocks {
                            environment: environment.name.clone(),
                            locks: held.clone(),
                        })?
                    ),
                    OutputFormat::Table if held.is_empty() => {
                        println!("no locks held on the state of {}", environment.name)
                    }
                    OutputFormat::Table => {
                        let mut table =
                            super::new_table(&["LOCK ID", "WHO", "OPERATION", "SINCE", "WHERE"]);
                        for lock in &held {
                            table.add_row([
                                lock.id.clone(),
                                lock.who.clone(),
                                lock.operation.clone(),
                                lock.created.clone(),
                                lock.kind.clone(),
                            ]);
                        }
                        println!("{table}");
                    }
                }
                Ok(Outcome::Success)
            }
            InfraCommand::Unlock {
                stack,
                lock_id,
                yes,
                force,
            } => {
                let environment = load(&stack.env)?;
                let workspace = Workspace::new(&environment, stack.stack.as_deref())?;
                let config = infra::aws_config(&environment).await;
                infra::check_account(&config, &environment).await?;
                let held = locks::list(&config, &environment, &workspace.state_key).await?;
                let lock = locks::releasable(&held, &lock_id, &environment.name, force)?;
                super::confirm::by_typing(
                    &format!(
                        "release lock {lock_id} held by {} ({})",
                        lock.who, lock.operation
                    ),
                    "yes",
                    yes,
                )?;
                phase("terraform init", workspace.init(&environment)).await?;
                phase(
                    "terraform force-unlock",
                    workspace.force_unlock(&environment, &lock_id),
                )
                .await?;
                println!(
                    "released lock {lock_id} on the state of {}",
                    environment.name
                );
                Ok(Outcome::Success)
            }
        }
    })
}
