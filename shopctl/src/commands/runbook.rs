//! `shopctl runbook list|show|run`: the executable runbooks, on either target.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use shopctl::local::state::StateDir;
use shopctl::reports::Target;
use shopctl::runbook::operator::LocalOperator;
use shopctl::runbook::{self, Executor, RunOptions};
use shopctl::validate::LocalTarget;

use super::cluster::ClusterArgs;
use super::{EnvArgs, Outcome};

#[derive(Debug, Args)]
pub struct RunbookArgs {
    /// Use the runbooks in this directory instead of the built-in ones.
    #[arg(long, global = true, env = "SHOPCTL_RUNBOOKS", value_name = "DIR")]
    runbooks: Option<PathBuf>,
    #[command(subcommand)]
    command: RunbookCommand,
}

#[derive(Debug, Subcommand)]
enum RunbookCommand {
    /// The runbooks and what they are for.
    List,
    /// Print a runbook as the document it is.
    Show { name: String },
    /// Execute a runbook step by step.
    Run {
        /// The runbook (`shopctl runbook list`).
        runbook: String,
        #[command(flatten)]
        env: EnvArgs,
        /// Run the checks, but only say which actions would run.
        #[arg(long)]
        dry_run: bool,
        /// Carry out actions without asking (manual steps still need a person).
        #[arg(long)]
        yes: bool,
        /// Start at this step (1-based), e.g. to resume after a stop.
        #[arg(long, default_value_t = 1)]
        from_step: usize,
        /// How long a restart or rollback step may wait for its rollout, e.g. 90s or 5m.
        #[arg(long, default_value = "5m", value_parser = super::parse_duration)]
        action_timeout: std::time::Duration,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
}

pub fn run(args: RunbookArgs) -> anyhow::Result<Outcome> {
    let dir = args.runbooks.as_deref();
    match args.command {
        RunbookCommand::List => {
            for (name, text) in runbook::library(dir)? {
                match runbook::Runbook::parse(&name, &text) {
                    Ok(book) => println!("{name:<18} {} ({} steps)", book.title, book.steps.len()),
                    Err(problems) => println!("{name:<18} INVALID: {}", problems.join("; ")),
                }
            }
            Ok(Outcome::Success)
        }
        RunbookCommand::Show { name } => {
            print!("{}", runbook::find(dir, &name)?.text);
            Ok(Outcome::Success)
        }
        RunbookCommand::Run {
            runbook: name,
            env,
            cluster,
            dry_run,
            yes,
            from_step,
            action_timeout,
        } => {
            let book = runbook::find(dir, &name)?;
            let options = |transcripts: PathBuf| -> anyhow::Result<RunOptions> {
                Ok(RunOptions {
                    environment: env.name.clone(),
                    dry_run,
                    yes,
                    from_step,
                    transcripts,
                    shopctl: std::env::current_exe()?,
                    action_timeout,
                })
            };
            // --namespace moves the platform, as for every cluster verb.
            let (_, environment) = cluster.load(&env)?;
            let outcome = if Target::of(&environment) == Target::Cluster {
                let transcripts = StateDir::resolve(&env.name).path().join("transcripts");
                let options = options(transcripts)?;
                super::block_on(super::cluster::run_runbook(
                    &environment,
                    &cluster,
                    &book,
                    options,
                ))?
            } else {
                let state = StateDir::resolve(&environment.name);
                let target = LocalTarget::load(&state)?;
                let operator = LocalOperator {
                    state_dir: state.path().to_path_buf(),
                    database_url: state
                        .read()?
                        .and_then(|s| s.component("postgres").and_then(|c| c.url.clone())),
                };
                let executor = Executor {
                    target: &target,
                    operator: &operator,
                    options: options(state.path().join("transcripts"))?,
                };
                super::block_on(executor.run(&book))?
            };
            eprintln!("\ntranscript: {}", outcome.transcript.display());
            Ok(if outcome.completed {
                Outcome::Success
            } else {
                Outcome::CheckFailed
            })
        }
    }
}
