//! `shopctl restart <service>`: the action runbooks use most. Locally the supervisor
//! stops and starts the process; on a cluster, a rollout restart as `kubectl rollout
//! restart` does, waited for like any rollout.

use clap::Args;
use shopctl::reports::Target;

use super::cluster::ClusterArgs;
use super::{EnvArgs, Outcome};

#[derive(Debug, Args)]
pub struct RestartArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// frontend, backend or ml.
    pub service: String,
    /// How long to wait for the restart's rollout (clusters), e.g. 90s or 5m.
    #[arg(long, default_value = "5m", value_parser = super::parse_duration)]
    pub timeout: std::time::Duration,
}

/// Restarts one service and waits until it is ready again.
pub fn exec(args: RestartArgs) -> anyhow::Result<Outcome> {
    anyhow::ensure!(
        ["frontend", "backend", "ml"].contains(&args.service.as_str()),
        "can restart frontend, backend or ml, not `{}`",
        args.service
    );
    let (_, environment) = args.cluster.load(&args.env)?;
    match Target::of(&environment) {
        Target::Local => super::local::restart(args, &environment),
        Target::Cluster => super::cluster::restart(args, environment),
    }
}
