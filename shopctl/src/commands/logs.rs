//! `shopctl logs`: a component's log locally, or every pod of a workload merged on a
//! cluster.

use std::time::Duration;

use clap::Args;
use shopctl::reports::Target;

use super::cluster::ClusterArgs;
use super::{EnvArgs, Outcome};

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Locally: ml, backend, frontend, postgres, redis, prometheus or supervisor; on a
    /// cluster: frontend, backend or ml (every pod, each line prefixed with its pod).
    pub service: String,
    /// Keep printing new lines (on a cluster, from pods that start later too).
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines (of each pod).
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// Only lines newer than this, e.g. 10m (clusters).
    #[arg(long, value_parser = super::parse_duration)]
    pub since: Option<Duration>,
    /// The previous instance of each pod's container: what a crashed container printed
    /// before it restarted (clusters).
    #[arg(long)]
    pub previous: bool,
}

pub fn exec(args: LogsArgs) -> anyhow::Result<Outcome> {
    let (_, environment) = args.cluster.load(&args.env)?;
    match Target::of(&environment) {
        Target::Local => super::local::logs(args, &environment),
        Target::Cluster => super::cluster::logs(args, environment),
    }
}
