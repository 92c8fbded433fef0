//! `shopctl rollback`: back to an earlier release as a new revision, on either target;
//! one Deployment with `--service` (clusters).

use clap::Args;
use shopctl::platform::Rollback;

use super::cluster::ClusterArgs;
use super::progress::print_rollout;
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
    let platform = args.cluster.open(&args.env)?;
    if let Some(service) = &args.service {
        let rolled = super::block_on(platform.rollback_service(service, args.to, args.timeout))?;
        println!(
            "Deployment {} rolled back from revision {} to the template of revision {}",
            rolled.deployment, rolled.from, rolled.to
        );
        println!(
            "note: the environment's release history is unchanged; the next `shopctl apply` applies the templates again"
        );
        print_rollout(std::slice::from_ref(&rolled.rollout));
        return Ok(Outcome::judged(rolled.rollout.ready));
    }
    let rollback = super::block_on(platform.rollback(args.to, args.timeout, args.history_max))?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&rollback)?),
        OutputFormat::Table => match &rollback {
            Rollback::Local(local) => match (&local.storefront, &local.reason) {
                (Some(storefront), _) => {
                    println!(
                        "rolled back to revision {} as revision {}: ready",
                        local.to, local.revision
                    );
                    println!("storefront: {storefront}");
                }
                (None, reason) => println!(
                    "rolled back to revision {} as revision {}, which did not start: {}",
                    local.to,
                    local.revision,
                    reason.as_deref().unwrap_or("unknown")
                ),
            },
            Rollback::Cluster(report) => super::apply::print_deploy_table(report),
        },
    }
    Ok(Outcome::judged(rollback.succeeded()))
}
