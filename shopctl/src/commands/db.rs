//! `shopctl db`: back up, restore, verify, list and prune PostgreSQL backups, anywhere a
//! database URL reaches (a workstation, a backup job's container, CI).

use clap::{Args, Subcommand};
use shopctl::backup::{self, Location, Manifest, retention};
use shopctl::platform::Verified;

use super::{Outcome, OutputFormat};

#[derive(Debug, Args)]
pub struct DbArgs {
    #[command(subcommand)]
    command: DbCommand,
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Dump the database (compressed custom format) with a manifest of row counts and checksums.
    Backup {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        /// Where backups go: a directory or s3://bucket/prefix.
        #[arg(long, value_name = "DIR")]
        to: String,
        /// S3 only: encrypt with this KMS key (id, ARN or alias/…); default: the bucket's
        /// own default encryption.
        #[arg(long, value_name = "KEY")]
        kms_key: Option<String>,
    },
    /// Replace a database's contents with a backup, after checking the backup's checksum.
    Restore {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        #[arg(long, value_name = "DIR")]
        from: String,
        /// Backup id (default: the newest).
        #[arg(long)]
        backup: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Restore a backup into a scratch database on the same server, compare, and record the result.
    Verify {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        #[arg(long, value_name = "DIR")]
        from: String,
        #[arg(long)]
        backup: Option<String>,
        /// Push the result to this Pushgateway, for the "last verified restore" metric.
        #[arg(long, env = "SHOPCTL_PUSHGATEWAY", value_name = "URL")]
        pushgateway: Option<String>,
    },
    /// Print one value, `SELECT (SQL)::float8`'s first row or `null`: a runbook's SQL check
    /// (on a cluster it runs in a Job with the backup role's read-only credentials).
    Query {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        #[arg(long)]
        sql: String,
    },
    /// List backups with age, size and verification.
    List {
        #[arg(long = "in", value_name = "DIR")]
        dir: String,
        #[arg(long, value_enum, default_value = "table")]
        output: OutputFormat,
    },
    /// Delete backups outside the retention policy (never the newest verified one).
    Prune {
        #[arg(long = "in", value_name = "DIR")]
        dir: String,
        #[arg(long, default_value_t = 7)]
        keep_daily: usize,
        #[arg(long, default_value_t = 4)]
        keep_weekly: usize,
        /// Show what would be deleted.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        yes: bool,
    },
}

/// A list of backups with age, size, rows and verification: a table, or the manifests as
/// JSON.
pub(super) fn print_backups(backups: &[Manifest], output: OutputFormat) -> anyhow::Result<()> {
    if output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(backups)?);
        return Ok(());
    }
    if backups.is_empty() {
        eprintln!("no backups yet; `shopctl backup` takes one");
        return Ok(());
    }
    let mut table = super::new_table(&["ID", "AGE", "SIZE", "ROWS", "VERIFIED"]);
    let now = chrono::Utc::now();
    for backup in backups {
        let age = now - backup.created_at;
        let verified = match &backup.verification {
            Some(v) if v.ok => format!("verified ({} ms restore)", v.restore_millis),
            Some(_) => "VERIFICATION FAILED".to_owned(),
            None => "not verified".to_owned(),
        };
        let rows: i64 = backup.tables.values().map(|t| t.rows).sum();
        table.add_row([
            backup.id.clone(),
            format!("{}h{:02}m", age.num_hours(), age.num_minutes() % 60),
            format!("{:.1} MiB", backup.size_bytes as f64 / 1_048_576.0),
            rows.to_string(),
            verified,
        ]);
    }
    println!("{table}");
    Ok(())
}

pub fn exec(args: DbArgs) -> anyhow::Result<Outcome> {
    match args.command {
        DbCommand::Backup {
            database_url,
            to,
            kms_key,
        } => {
            let dir = super::block_on(Location::parse(&to))?.encrypted_with(kms_key)?;
            let manifest = super::progress::block_on_tracked(backup::backup(&database_url, &dir))?;
            let rows: i64 = manifest.tables.values().map(|t| t.rows).sum();
            eprintln!(
                "backed up {} tables, {rows} rows, {} bytes (sha256 {})",
                manifest.tables.len(),
                manifest.size_bytes,
                &manifest.sha256[..16]
            );
            println!("{}", manifest.id);
        }
        DbCommand::Restore {
            database_url,
            from,
            backup,
            yes,
        } => {
            let dir = super::block_on(Location::parse(&from))?;
            let id = super::block_on(dir.resolve(backup))?;
            let manifest = super::block_on(dir.get(&id))?;
            let target = shopctl::local::postgres::redact(&database_url);
            let database = url::Url::parse(&database_url)
                .map(|u| u.path().trim_start_matches('/').to_owned())
                .unwrap_or_default();
            super::confirm::by_typing(
                &format!(
                    "restore backup {id} (taken {}) into {target}, replacing its data",
                    manifest.created_at
                ),
                &database,
                yes,
            )?;
            let report =
                super::progress::block_on_tracked(backup::restore(&database_url, &dir, &id))?;
            eprintln!(
                "restored {} into {} in {} ms: {} tables, {} rows match the manifest",
                report.id, report.target, report.millis, report.tables_checked, report.rows
            );
        }
        DbCommand::Verify {
            database_url,
            from,
            backup,
            pushgateway,
        } => {
            let verified = super::progress::block_on_tracked(async {
                let dir = Location::parse(&from).await?;
                let id = dir.resolve(backup).await?;
                let note = |line: &str| eprintln!("{line}");
                let verification = backup::verify_and_push(
                    &database_url,
                    &dir,
                    &id,
                    pushgateway.as_deref(),
                    &note,
                )
                .await?;
                anyhow::Ok(Verified::Recorded { id, verification })
            })?;
            return Ok(super::backup::print_verified(&verified));
        }
        DbCommand::Query { database_url, sql } => {
            let value = super::block_on(shopctl::runbook::operator::scalar(&database_url, &sql))?;
            println!(
                "{}",
                value.map_or_else(|| "null".to_owned(), |v| v.to_string())
            );
        }
        DbCommand::List { dir, output } => {
            let backups = super::block_on(async { Location::parse(&dir).await?.list().await })?;
            print_backups(&backups, output)?;
        }
        DbCommand::Prune {
            dir,
            keep_daily,
            keep_weekly,
            dry_run,
            yes,
        } => {
            let dir = super::block_on(Location::parse(&dir))?;
            let plan = retention::plan(&super::block_on(dir.list())?, keep_daily, keep_weekly);
            for id in &plan.delete {
                eprintln!("{} {id}", if dry_run { "would delete" } else { "delete" });
            }
            if dry_run || plan.delete.is_empty() {
                eprintln!("keeping {} backups", plan.keep.len());
                return Ok(Outcome::Success);
            }
            super::confirm::by_typing(
                &format!("delete {} backups", plan.delete.len()),
                "delete",
                yes,
            )?;
            for id in &plan.delete {
                super::block_on(dir.delete(id))?;
            }
            eprintln!("deleted {}, kept {}", plan.delete.len(), plan.keep.len());
        }
    }
    Ok(Outcome::Success)
}
