//! `shopctl status`: what runs, where, and whether it is ready, on either target.

use clap::Args;
use shopctl::reports::Target;

use super::cluster::ClusterArgs;
use super::{EnvArgs, Outcome, OutputFormat};

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

pub fn exec(args: StatusArgs) -> anyhow::Result<Outcome> {
    let (_, environment) = args.cluster.load(&args.env)?;
    match Target::of(&environment) {
        Target::Local => super::local::status(args, &environment),
        Target::Cluster => super::cluster::status(args, environment),
    }
}
