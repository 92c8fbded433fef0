//! `shopctl rollback`: back to an earlier release as a new revision, on either target;
//! one Deployment with `--service` (clusters).

use clap::Args;
use shopctl::reports::Target;

use super::cluster::ClusterArgs;
use super::{EnvArgs, Outcome, OutputFormat};

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Revision to restore (default: the one before the running release; with --service,
    /// the Deployment revision before the current one).
    #[arg(long)]
    pub to: Option<u32>,
    /// Roll back only this Deployment, as `kubectl rollout undo` does (clusters only).
    #[arg(long)]
    pub service: Option<String>,
    /// How long to wait for the rollback's rollout (clusters), e.g. 90s or 5m.
    #[arg(long, default_value = "5m", value_parser = super::parse_duration)]
    pub timeout: std::time::Duration,
    /// Releases to keep in the history (clusters).
    #[arg(long, env = "SHOPCTL_HISTORY_MAX", default_value_t = 10)]
    pub history_max: usize,
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

pub fn exec(args: RollbackArgs) -> anyhow::Result<Outcome> {
    let (_, environment) = args.cluster.load(&args.env)?;
    match Target::of(&environment) {
        Target::Local => super::local::rollback(args, &environment),
        Target::Cluster => super::cluster::rollback(args, environment),
    }
}
