//! `shopctl infra`: the state backend (bootstrap), Terraform plan/apply/destroy/drift with
//! the environment's backend and variables, and state locks. Every subcommand first checks
//! the tools and that the AWS credentials belong to the environment's account.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use comfy_table::{Table, presets};
use shopctl::env::Environment;
use shopctl::env::model::Provider;
use shopctl::infra::terraform::{PlanSummary, Workspace, since};
use shopctl::infra::{self, bootstrap, locks};

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
    let spinner = std::io::stderr().is_terminal().then(|| {
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

fn print_summary(
    summary: &PlanSummary,
    output: OutputFormat,
    environment: &str,
    extra: serde_json::Value,
) -> anyhow::Result<()> {
    match output {
        OutputFormat::Json => {
            let mut report = serde_json::json!({"environment": environment, "changes": !summary.is_empty(), "summary": summary});
            if let (Some(report), Some(extra)) = (report.as_object_mut(), extra.as_object()) {
                report.extend(extra.clone());
            }
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        OutputFormat::Table if summary.is_empty() => {
            println!("no changes: the infrastructure matches the configuration")
        }
        OutputFormat::Table => {
            let mut table = Table::new();
            table.load_preset(presets::UTF8_FULL_CONDENSED).set_header([
                "ACTION",
                "RESOURCE TYPE",
                "COUNT",
            ]);
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

/// Asks on a terminal; refuses without one, naming the flag that confirms.
pub(super) fn confirm(question: &str, expected: &str, flag: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        std::io::stdin().is_terminal(),
        "{question}: not confirmed (no terminal); pass {flag} to confirm non-interactively"
    );
    eprint!("{question} Type `{expected}` to confirm: ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    anyhow::ensure!(answer.trim() == expected, "not confirmed; nothing changed");
    Ok(())
}

pub fn run(args: InfraArgs) -> anyhow::Result<Outcome> {
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
                        serde_json::to_string_pretty(
                            &serde_json::json!({"environment": environment.name, "dry_run": dry_run, "steps": steps})
                        )?
                    ),
                    OutputFormat::Table => {
                        for step in &steps {
                            println!("{:<16} {:<48} {}", step.action, step.resource, step.detail);
                        }
                    }
                }
                Ok(Outcome::Success)
            }
            InfraCommand::Plan(stack) => {
                let (environment, _, workspace) = prepared(&stack).await?;
                phase("terraform plan", workspace.plan(&environment, false, true)).await?;
                let summary = workspace.summarise(&environment).await?;
                print_summary(
                    &summary,
                    stack.output,
                    &environment.name,
                    serde_json::json!({}),
                )?;
                Ok(Outcome::Success)
            }
            InfraCommand::Apply { stack, yes } => {
                let (environment, _, workspace) = prepared(&stack).await?;
                let changes =
                    phase("terraform plan", workspace.plan(&environment, false, true)).await?;
                let summary = workspace.summarise(&environment).await?;
                print_summary(
                    &summary,
                    stack.output,
                    &environment.name,
                    serde_json::json!({"applied": changes}),
                )?;
                if !changes {
                    return Ok(Outcome::Success);
                }
                let destructive = summary.destructive().len();
                if destructive > 0 && !yes {
                    confirm(
                        &format!(
                            "{destructive} resource(s) of {} would be deleted or replaced.",
                            environment.name
                        ),
                        "yes",
                        "--yes",
                    )?;
                }
                phase("terraform apply", workspace.apply(&environment)).await?;
                Ok(Outcome::Success)
            }
            InfraCommand::Destroy {
                stack,
                confirm: confirmed,
            } => {
                let (environment, _, workspace) = prepared(&stack).await?;
                phase(
                    "terraform plan -destroy",
                    workspace.plan(&environment, true, true),
                )
                .await?;
                let summary = workspace.summarise(&environment).await?;
                print_summary(
                    &summary,
                    stack.output,
                    &environment.name,
                    serde_json::json!({}),
                )?;
                match confirmed {
                    Some(name) => anyhow::ensure!(
                        name == environment.name,
                        "--confirm {name} does not name the environment being destroyed ({})",
                        environment.name
                    ),
                    None => confirm(
                        &format!("This destroys the infrastructure of {}.", environment.name),
                        &environment.name,
                        "--confirm <env>",
                    )?,
                }
                phase("terraform apply (destroy)", workspace.apply(&environment)).await?;
                Ok(Outcome::Success)
            }
            InfraCommand::Drift(stack) => {
                let (environment, _, workspace) = prepared(&stack).await?;
                // A scheduled check must not block a deploy: it takes no lock.
                let drifted = phase(
                    "terraform plan (drift)",
                    workspace.plan(&environment, false, false),
                )
                .await?;
                let summary = if drifted {
                    workspace.summarise(&environment).await?
                } else {
                    PlanSummary::default()
                };
                print_summary(
                    &summary,
                    stack.output,
                    &environment.name,
                    serde_json::json!({"drift": drifted}),
                )?;
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
                        serde_json::to_string_pretty(
                            &serde_json::json!({"environment": environment.name, "locks": held})
                        )?
                    ),
                    OutputFormat::Table if held.is_empty() => {
                        println!("no locks held on the state of {}", environment.name)
                    }
                    OutputFormat::Table => {
                        let mut table = Table::new();
                        table.load_preset(presets::UTF8_FULL_CONDENSED).set_header([
                            "LOCK ID",
                            "WHO",
                            "OPERATION",
                            "SINCE",
                            "WHERE",
                        ]);
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
                let Some(lock) = held.iter().find(|l| l.id == lock_id) else {
                    let ids: Vec<&str> = held.iter().map(|l| l.id.as_str()).collect();
                    anyhow::bail!(
                        "no lock {lock_id} is held on the state of {} (held: {}); nothing to release",
                        environment.name,
                        if ids.is_empty() {
                            "none".to_string()
                        } else {
                            ids.join(", ")
                        }
                    );
                };
                let young = lock
                    .age()
                    .is_none_or(|age| age < chrono::Duration::minutes(10));
                anyhow::ensure!(
                    force || !young,
                    "refusing: lock {lock_id} was taken by {} for {} at {}, less than ten minutes ago, and may belong to a run still in progress; pass --force once you know it is dead",
                    lock.who,
                    lock.operation,
                    lock.created
                );
                if !yes {
                    confirm(
                        &format!(
                            "Release lock {lock_id} held by {} ({})?",
                            lock.who, lock.operation
                        ),
                        "yes",
                        "--yes",
                    )?;
                }
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
