//! `shopctl history`: an environment's releases, on either target.

use clap::Args;
use shopctl::reports::Target;

use super::cluster::ClusterArgs;
use super::{EnvArgs, Outcome, OutputFormat};

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

pub fn exec(args: HistoryArgs) -> anyhow::Result<Outcome> {
    let (_, environment) = args.cluster.load(&args.env)?;
    match Target::of(&environment) {
        Target::Local => super::local::history(args, &environment),
        Target::Cluster => super::cluster::history(args, environment),
    }
}
