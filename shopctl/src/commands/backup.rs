//! `shopctl backup [list|verify] --env NAME`: the environment's database backups. For the
//! local target: the database `up` runs, backups kept in the state directory. For a
//! cluster: a Job from the `db-backup` CronJob, backups in the environment's bucket.

use clap::{Args, Subcommand};
use shopctl::platform::{BackupTaken, Verified};

use super::cluster::ClusterArgs;
use super::progress::block_on_tracked;
use super::{EnvArgs, Outcome, OutputFormat};

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    env: EnvArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Clusters: follow the backup Job to its end and report the backup it made.
    #[arg(long)]
    wait: bool,
    /// Clusters: how long --wait (and verify) waits, e.g. 30m.
    #[arg(long, default_value = "30m", value_parser = super::parse_duration)]
    timeout: std::time::Duration,
    #[command(subcommand)]
    action: Option<BackupAction>,
}

#[derive(Debug, Subcommand)]
enum BackupAction {
    /// List the environment's backups with age, size and verification.
    List {
        #[arg(long, value_enum, default_value = "table")]
        output: OutputFormat,
    },
    /// Prove a backup restores: restore it into a scratch database and compare.
    Verify {
        /// Backup id (default: the newest).
        #[arg(long)]
        backup: Option<String>,
    },
}

pub fn exec(args: BackupArgs) -> anyhow::Result<Outcome> {
    let platform = args.cluster.open(&args.env)?;
    match args.action {
        None => {
            let taken = block_on_tracked(platform.backup(args.wait.then_some(args.timeout)))?;
            Ok(print_taken(taken))
        }
        Some(BackupAction::List { output }) => {
            let backups = super::block_on(async { platform.backups().await?.list().await })?;
            super::db::print_backups(&backups, output)?;
            Ok(Outcome::Success)
        }
        Some(BackupAction::Verify { backup }) => {
            let verified = block_on_tracked(async {
                let id = platform.backups().await?.resolve(backup).await?;
                platform.verify(id, args.timeout).await
            })?;
            Ok(print_verified(&verified))
        }
    }
}

/// The backup's id on stdout (for scripts), the rest on stderr.
fn print_taken(taken: BackupTaken) -> Outcome {
    match taken {
        BackupTaken::Done { manifest, location } => {
            let rows: i64 = manifest.tables.values().map(|t| t.rows).sum();
            eprintln!(
                "backed up {} tables, {rows} rows, {} bytes into {location}",
                manifest.tables.len(),
                manifest.size_bytes,
            );
            println!("{}", manifest.id);
            Outcome::Success
        }
        BackupTaken::Started { job } => {
            println!("{job}");
            Outcome::Success
        }
        BackupTaken::Failed { reason, details } => {
            eprintln!("{reason}");
            for detail in details {
                eprintln!("  {detail}");
            }
            Outcome::CheckFailed
        }
    }
}

pub(super) fn print_verified(verified: &Verified) -> Outcome {
    match verified {
        Verified::Recorded { id, verification } if verification.ok => {
            eprintln!(
                "backup {id} verified: restored in {} ms; {}",
                verification.restore_millis, verification.detail
            );
            Outcome::Success
        }
        Verified::Recorded { id, verification } => {
            eprintln!("backup {id} FAILED verification: {}", verification.detail);
            Outcome::CheckFailed
        }
        Verified::NotRecorded { reason, .. } => {
            eprintln!("{reason}");
            Outcome::CheckFailed
        }
    }
}
