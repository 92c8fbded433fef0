//! `shopctl restore --env NAME --backup ID`: replace the environment's database with a
//! backup, the writers stopped meanwhile. Locally the supervisor pauses the services; on
//! a cluster they are scaled to zero and a Job restores from inside the cluster.

use clap::Args;
use shopctl::backup;

use super::cluster::ClusterArgs;
use super::{EnvArgs, Outcome};

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    env: EnvArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// How long to wait for the writers (locally at most 2m) and the restore Job, e.g. 30m.
    #[arg(long, default_value = "30m", value_parser = super::parse_duration)]
    timeout: std::time::Duration,
    /// Backup id (`shopctl backup list`).
    #[arg(long)]
    backup: String,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
}

/// Checks the artefact, asks, then has the platform stop the writers, restore and
/// compare, and bring the writers back — whatever happens in between.
pub fn exec(args: RestoreArgs) -> anyhow::Result<Outcome> {
    let platform = args.cluster.open(&args.env)?;
    // The artefact is checked before anything changes.
    let manifest = super::block_on(async {
        let backups = platform.backups().await?;
        anyhow::Ok(backup::check_artefact(&backups, &args.backup).await?.0)
    })?;
    super::confirm::by_typing_the_name(
        &args.env.name,
        &format!(
            "replace the `{}` environment's database with backup {} (taken {})",
            args.env.name, args.backup, manifest.created_at
        ),
        args.yes,
    )?;
    let restored = super::progress::block_on_tracked(platform.restore(&args.backup, args.timeout))?;
    if restored.succeeded {
        eprintln!(
            "restored {} in {:.0}s ({}); the platform is serving again",
            restored.id, restored.seconds, restored.detail
        );
    } else {
        eprintln!("the restore did not succeed: {}", restored.detail);
        for warning in &restored.warnings {
            eprintln!("  {warning}");
        }
    }
    Ok(Outcome::judged(restored.succeeded))
}
