//! One module per subcommand: each turns raw arguments into validated options once, calls
//! the library, and prints. Tables and progress live here, never in the library.

mod apply;
mod backup;
mod cloud;
mod cluster;
mod completion;
mod confirm;
mod db;
mod down;
mod eks_token;
mod history;
mod infra;
mod kubeconfig;
mod lint;
mod load;
mod logs;
mod man;
mod progress;
mod render;
mod restart;
mod restore;
mod rollback;
mod runbook;
mod schema;
mod status;
mod supervise;
mod up;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use shopctl::env::{self, Environment, Override};
use shopctl::templates::Templates;

/// Operate the ShopMicro platform: provision, render, apply, validate, back up, restore,
/// roll back and run runbooks.
#[derive(Debug, Parser)]
#[command(name = "shopctl", version, about, long_about = None)]
pub struct Cli {
    /// More diagnostics on stderr (-v info, -vv debug); SHOPCTL_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Render the Kubernetes manifests of an environment.
    Render(render::RenderArgs),
    /// Check rendered manifests against the platform's policies.
    Lint(lint::LintArgs),
    /// Provision the environment's cloud: state backend, Terraform plan/apply/drift, locks.
    Infra(infra::InfraArgs),
    /// Apply an environment's release to its cluster (server-side apply, prune, history).
    Apply(apply::ApplyArgs),
    /// Bring an environment up: locally (--env local, the default) or in the cloud
    /// (bootstrap, terraform, kubeconfig, apply --wait, validate).
    Up(up::UpArgs),
    /// Write or merge the environment's EKS cluster into a kubeconfig (no aws CLI needed).
    Kubeconfig(kubeconfig::KubeconfigArgs),
    /// Print an EKS bearer token as an ExecCredential (what the kubeconfig entry runs).
    #[command(hide = true)]
    EksToken(eks_token::EksTokenArgs),
    /// Stop what `up` started (data is kept unless --purge).
    Down(down::DownArgs),
    /// Show what runs, where, and whether it is ready (workloads, autoscalers, budgets).
    Status(cluster::ViewArgs),
    /// Print (or follow) a component's log.
    Logs(logs::LogsArgs),
    /// Go back to a previous release (as a new revision), or one Deployment with --service.
    Rollback(rollback::RollbackArgs),
    /// List releases: revision, time, who, why.
    History(cluster::ViewArgs),
    /// Check that an environment is healthy, and say why not.
    Validate(validate::ValidateArgs),
    /// Back up, restore, verify, list and prune PostgreSQL backups.
    Db(db::DbArgs),
    /// Back up the environment's database; `list` and `verify` its backups.
    Backup(backup::BackupArgs),
    /// Replace the environment's database with a backup (writers stopped meanwhile).
    Restore(restore::RestoreArgs),
    /// List, show and run the executable runbooks.
    Runbook(runbook::RunbookArgs),
    /// Put a bounded, open-model load on an environment and judge it against the SLOs.
    Load(load::LoadArgs),
    /// Restart one service and wait until it is ready again.
    Restart(restart::RestartArgs),
    /// Print the JSON Schema of a command's `--output json` report.
    Schema(schema::SchemaArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell).
    Completion(completion::CompletionArgs),
    /// Print shopctl(1), or write every manual page into a directory.
    Man(man::ManArgs),
    /// Run the local supervisor (started by `up`; not for direct use).
    #[command(hide = true)]
    Supervise(supervise::SuperviseArgs),
}

/// How a command that ran to completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// A check failed: lint errors, drift, a failed rollout.
    CheckFailed,
}

impl Outcome {
    /// Success when `succeeded`, else a failed check.
    pub fn judged(succeeded: bool) -> Self {
        if succeeded {
            Outcome::Success
        } else {
            Outcome::CheckFailed
        }
    }

    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Success => ExitCode::SUCCESS,
            Outcome::CheckFailed => ExitCode::from(1),
        }
    }
}

pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Render(args) => render::exec(args),
        Command::Lint(args) => lint::exec(args),
        Command::Up(args) => up::exec(args),
        Command::Kubeconfig(args) => kubeconfig::exec(args),
        Command::EksToken(args) => eks_token::exec(args),
        Command::Down(args) => down::exec(args),
        Command::Infra(args) => infra::exec(args),
        Command::Apply(args) => apply::exec(args),
        Command::Status(args) => status::exec(args),
        Command::Logs(args) => logs::exec(args),
        Command::Rollback(args) => rollback::exec(args),
        Command::History(args) => history::exec(args),
        Command::Validate(args) => validate::exec(args),
        Command::Db(args) => db::exec(args),
        Command::Backup(args) => backup::exec(args),
        Command::Restore(args) => restore::exec(args),
        Command::Runbook(args) => runbook::exec(args),
        Command::Load(args) => load::exec(args),
        Command::Restart(args) => restart::exec(args),
        Command::Schema(args) => schema::exec(args),
        Command::Completion(args) => completion::exec(args),
        Command::Man(args) => man::exec(args),
        Command::Supervise(args) => supervise::exec(args),
    }
}

/// Runs a future to completion on the one runtime `main` built and entered. Commands are
/// synchronous at the top (prompts, terminals) and async below.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(future)
}

/// A table in the house style, wrapping to fit: the terminal's width when stdout is
/// one, else `COLUMNS` when it is set (as `ls` and `ps` honour it), else as wide as the
/// content (a pipe or a file).
fn new_table(header: &[&str]) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header(header);
    if let Some(width) = std::env::var("COLUMNS")
        .ok()
        .and_then(|columns| columns.parse::<u16>().ok())
    {
        table.set_width(width);
    }
    table
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

/// Prints a checks report (lint, validate) as JSON for CI or a table for people; the
/// outcome says whether any check failed.
fn print_report<R: serde::Serialize>(
    report: &R,
    output: OutputFormat,
    print_table: fn(&R),
    failed: bool,
) -> anyhow::Result<Outcome> {
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(report)?),
        OutputFormat::Table => print_table(report),
    }
    Ok(if failed {
        Outcome::CheckFailed
    } else {
        Outcome::Success
    })
}

/// Choosing and adjusting an environment, shared by every command that needs one.
#[derive(Debug, Clone, Args)]
pub struct EnvArgs {
    /// Environment name (a file in templates/environments).
    #[arg(long = "env", env = "SHOPCTL_ENV", default_value = "local")]
    pub name: String,
    /// Override a value, e.g. --set services.backend.tag=1.4.2 (repeatable; wins over
    /// SHOPCTL_SET_* variables, which win over the file).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Use templates from this directory (laid out like the repository's templates/)
    /// instead of the ones built into shopctl.
    #[arg(long, env = "SHOPCTL_TEMPLATES", value_name = "DIR")]
    pub templates: Option<PathBuf>,
}

impl EnvArgs {
    pub fn load(&self) -> anyhow::Result<(Templates, Environment)> {
        let templates = Templates::select(self.templates.as_ref())?;
        let mut overrides = Override::from_env_vars(std::env::vars());
        for raw in &self.set {
            overrides.push(Override::from_flag(raw)?);
        }
        let environment = env::load(&templates, &self.name, &overrides)?;
        Ok((templates, environment))
    }
}

/// Durations as operators type them: 500ms, 30s, 5m, 1h.
fn parse_duration(raw: &str) -> Result<std::time::Duration, String> {
    use std::time::Duration;
    let invalid = || format!("`{raw}` is not a duration like 500ms, 30s, 5m or 1h");
    let raw = raw.trim();
    let (number, unit) = raw.split_at(
        raw.find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?,
    );
    let value: u64 = number.parse().map_err(|_| invalid())?;
    match unit {
        "ms" => Ok(Duration::from_millis(value)),
        "s" => Ok(Duration::from_secs(value)),
        "m" => Ok(Duration::from_secs(value * 60)),
        "h" => Ok(Duration::from_secs(value * 3600)),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn durations_read_as_operators_type_them() {
        use std::time::Duration;
        assert_eq!(
            super::parse_duration("500ms"),
            Ok(Duration::from_millis(500))
        );
        assert_eq!(super::parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(super::parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(super::parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(super::parse_duration("soon").is_err());
        assert!(super::parse_duration("5d").is_err());
    }

    /// What the runbooks tell a person to type is what shopctl accepts, and no step asks
    /// for a shell inside a service's image (they are distroless: no sh, wget or curl).
    #[test]
    fn the_runbooks_prose_uses_commands_that_exist_and_images_that_have_them() {
        use clap::Parser;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks");
        let mut commands = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for span in text.split('`').skip(1).step_by(2) {
                for service in ["frontend", "backend", "ml"] {
                    assert!(
                        !(span.starts_with("kubectl")
                            && span.contains(&format!("exec deploy/{service}"))),
                        "{}: `{span}` needs a shell the {service} image does not have",
                        path.display()
                    );
                }
                let Some(line) = span.strip_prefix("shopctl ") else {
                    continue;
                };
                let line = line.split(" |").next().unwrap();
                let words =
                    std::iter::once("shopctl").chain(line.split_whitespace().map(
                        |word| match word {
                            "<env>" | "<cluster>" => "dev",
                            "<service>" => "backend",
                            "<name>" => "backend-outage",
                            "<ID>" => "20260101T000000Z",
                            word => word,
                        },
                    ));
                if let Err(err) = super::Cli::try_parse_from(words) {
                    panic!("{}: `{span}` does not parse: {err}", path.display());
                }
                commands += 1;
            }
        }
        assert!(
            commands >= 10,
            "only {commands} shopctl commands found in the runbooks"
        );
    }

    /// clap's own consistency checks (unique names, valid defaults) over every subcommand.
    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
