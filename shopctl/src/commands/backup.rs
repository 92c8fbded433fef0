//! `shopctl backup [list|verify] --env NAME`: the environment's database backups. For the
//! local target: the database `up` runs, backups kept in the state directory.

use clap::{Args, Subcommand};
use shopctl::backup::{self, store::BackupDir};
use shopctl::local::state::StateDir;

use super::local::local_state;
use super::{EnvArgs, Outcome};

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    env: EnvArgs,
    #[command(subcommand)]
    action: Option<BackupAction>,
}

#[derive(Debug, Subcommand)]
enum BackupAction {
    /// List the environment's backups with age, size and verification.
    List,
    /// Prove a backup restores: restore it into a scratch database and compare.
    Verify {
        /// Backup id (default: the newest).
        #[arg(long)]
        backup: Option<String>,
    },
}

/// The running local platform's database URL and backup directory.
fn local_database(dir: &StateDir) -> anyhow::Result<(String, BackupDir)> {
    let state = dir
        .read()?
        .filter(|state| state.supervisor.is_alive())
        .ok_or_else(|| {
            anyhow::anyhow!("the local platform is not running; `shopctl up` starts it")
        })?;
    let url = match state.component("postgres").and_then(|c| c.url.clone()) {
        Some(url) => url,
        // An external database: the URL is a secret and was never recorded.
        None => std::env::var("DATABASE_URL").map_err(|_| {
            anyhow::anyhow!(
                "the platform uses an external database; set DATABASE_URL to back it up"
            )
        })?,
    };
    Ok((url, BackupDir::new(dir.path().join("backups"))))
}

pub fn run(args: BackupArgs) -> anyhow::Result<Outcome> {
    let (_, dir) = local_state(&args.env)?;
    let runtime = tokio::runtime::Runtime::new()?;
    match args.action {
        None => {
            let (url, backups) = local_database(&dir)?;
            let manifest = runtime.block_on(backup::backup(&url, &backups))?;
            let rows: i64 = manifest.tables.values().map(|t| t.rows).sum();
            eprintln!(
                "backed up {} tables, {rows} rows, {} bytes into {}",
                manifest.tables.len(),
                manifest.size_bytes,
                backups.root.display()
            );
            println!("{}", manifest.id);
        }
        Some(BackupAction::List) => {
            let backups = BackupDir::new(dir.path().join("backups")).list()?;
            for backup in &backups {
                let verified = match &backup.verification {
                    Some(v) if v.ok => "verified",
                    Some(_) => "VERIFICATION FAILED",
                    None => "not verified",
                };
                println!(
                    "{}  {}  {} bytes  {verified}",
                    backup.id,
                    backup.created_at.format("%Y-%m-%d %H:%M:%SZ"),
                    backup.size_bytes
                );
            }
            if backups.is_empty() {
                eprintln!("no backups yet; `shopctl backup` takes one");
            }
        }
        Some(BackupAction::Verify { backup: id }) => {
            let (url, backups) = local_database(&dir)?;
            let id = match id {
                Some(id) => id,
                None => backups.newest()?.id,
            };
            let verification = runtime.block_on(backup::verify(&url, &backups, &id))?;
            if !verification.ok {
                eprintln!("backup {id} FAILED verification: {}", verification.detail);
                return Ok(Outcome::CheckFailed);
            }
            eprintln!(
                "backup {id} verified: restored in {} ms; {}",
                verification.restore_millis, verification.detail
            );
        }
    }
    Ok(Outcome::Success)
}
