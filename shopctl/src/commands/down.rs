//! `shopctl down`: stop the local platform, or uninstall a cluster release as `helm
//! uninstall` does; the data stays unless `--purge`.

use clap::Args;
use shopctl::reports::Target;

use super::cluster::ClusterArgs;
use super::{EnvArgs, Outcome, OutputFormat};

#[derive(Debug, Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Also delete the data: locally the private database and logs; on a cluster the
    /// database's volume claims and the release history (backups are always kept).
    #[arg(long)]
    pub purge: bool,
    /// Do not ask first (on a cluster `down` always asks; locally only with --purge).
    #[arg(long)]
    pub yes: bool,
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

pub fn exec(args: DownArgs) -> anyhow::Result<Outcome> {
    let (_, environment) = args.cluster.load(&args.env)?;
    match Target::of(&environment) {
        Target::Local => super::local::down(args, &environment),
        Target::Cluster => super::cluster::down(args, environment),
    }
}
