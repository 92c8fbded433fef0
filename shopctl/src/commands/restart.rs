//! `shopctl restart <service>`: the action runbooks use most. Locally the supervisor
//! hands the service over to a new process (started on the same sockets, ready before the
//! old one drains: no request fails); on a cluster, a rollout restart as `kubectl rollout
//! restart` does, waited for like any rollout.

use clap::Args;
use shopctl::platform::RESTARTABLE;

use super::cluster::ClusterArgs;
use super::progress::print_rollout;
use super::{EnvArgs, Outcome};

#[derive(Debug, Args)]
pub struct RestartArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// frontend, backend or ml.
    pub service: String,
    /// How long to wait until it is ready again, e.g. 90s or 5m.
    #[arg(long, default_value = "5m", value_parser = super::parse_duration)]
    pub timeout: std::time::Duration,
}

/// Restarts one service and waits until it is ready again.
pub fn exec(args: RestartArgs) -> anyhow::Result<Outcome> {
    anyhow::ensure!(
        RESTARTABLE.contains(&args.service.as_str()),
        "can restart frontend, backend or ml, not `{}`",
        args.service
    );
    let platform = args.cluster.open(&args.env)?;
    let result = super::block_on(platform.restart(&args.service, args.timeout))?;
    print_rollout(std::slice::from_ref(&result));
    if result.ready {
        eprintln!("{} restarted and ready", args.service);
    }
    Ok(Outcome::judged(result.ready))
}
