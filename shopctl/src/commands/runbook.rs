//! `shopctl runbook list|show|run`: the executable runbooks, on either target.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use shopctl::runbook::{self, RunOptions};

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

pub fn exec(args: RunbookArgs) -> anyhow::Result<Outcome> {
    let dir = args.runbooks.as_deref();
    match args.command {
        RunbookCommand::List => {
            let mut table = super::new_table(&["RUNBOOK", "STEPS", "FOR"]);
            let mut invalid = 0;
            for (name, text) in runbook::library(dir)? {
                match runbook::Runbook::parse(&name, &text) {
                    Ok(book) => table.add_row([name, book.steps.len().to_string(), book.title]),
                    Err(problems) => {
                        invalid += 1;
                        table.add_row([
                            name,
                            "-".into(),
                            format!("INVALID: {}", problems.join("; ")),
                        ])
                    }
                };
            }
            println!("{table}");
            Ok(Outcome::judged(invalid == 0))
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
            let platform = cluster.open(&env)?;
            let options = RunOptions {
                environment: env.name.clone(),
                dry_run,
                yes,
                from_step,
                transcripts: platform.transcripts(),
                shopctl: std::env::current_exe()?,
                action_timeout,
            };
            let outcome = super::block_on(platform.run_runbook(&book, options))?;
            eprintln!("\ntranscript: {}", outcome.transcript.display());
            Ok(Outcome::judged(outcome.completed))
        }
    }
}
