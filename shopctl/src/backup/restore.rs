//! Restoring a backup, refusing one whose checksum does not match, and proving a backup
//! restores by restoring it into a scratch database.

use std::time::Instant;

use anyhow::Context;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::dump::{Target, table_figures, without_url};
use super::location::{LocalDump, Location};
use super::manifest::{Manifest, Verification};
use crate::progress::{Step, report};

#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreReport {
    pub id: String,
    pub target: String,
    pub millis: u64,
    pub tables_checked: usize,
    pub rows: i64,
}

async fn file_sha256(path: &std::path::Path) -> anyhow::Result<String> {
    let mut file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// The backup's manifest and its dump on local disk, after checking that the dump still
/// has the recorded SHA-256.
pub async fn check_artefact(
    location: &Location,
    id: &str,
) -> anyhow::Result<(Manifest, LocalDump)> {
    let manifest = location.get(id).await?;
    report(Step::Phase("fetching the dump and checking its SHA-256"));
    let dump = location.fetch_dump(id).await?;
    let actual = file_sha256(&dump.path).await?;
    anyhow::ensure!(
        actual == manifest.sha256,
        "refusing to restore backup {id}: its checksum does not match the manifest (expected {}, found {actual}); \
         the artefact is corrupted or was tampered with — nothing was changed",
        manifest.sha256
    );
    Ok((manifest, dump))
}

/// Restores `id` into `database_url`, replacing what is there, then checks every table's
/// row count and content checksum against the manifest and runs a smoke query. The URL's
/// role owns what it restores (on the platform the schema owner; the maker of a scratch
/// database when verifying); the dump's grants are restored with it.
pub async fn restore(
    database_url: &str,
    location: &Location,
    id: &str,
) -> anyhow::Result<RestoreReport> {
    let (manifest, dump) = check_artefact(location, id).await?;
    let target = Target::parse(database_url)?;
    let started = Instant::now();
    report(Step::Phase("restoring (pg_restore, one transaction)"));
    let output = target
        .command("pg_restore")
        .args([
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            "--exit-on-error",
        ])
        .arg(format!("--dbname={}", target.url_without_password))
        .arg(&dump.path)
        .output()
        .await
        .context("running pg_restore (is PostgreSQL's client installed?)")?;
    anyhow::ensure!(
        output.status.success(),
        "pg_restore failed, the target is unchanged (single transaction): {}",
        without_url(String::from_utf8_lossy(&output.stderr).trim())
    );
    let millis = started.elapsed().as_millis() as u64;
    let rows = check_against(&manifest, database_url, &target).await?;
    Ok(RestoreReport {
        id: id.to_owned(),
        target: target.redacted,
        millis,
        tables_checked: manifest.tables.len(),
        rows,
    })
}

/// Row counts and checksums of the restored tables must equal the manifest's.
async fn check_against(
    manifest: &Manifest,
    database_url: &str,
    target: &Target,
) -> anyhow::Result<i64> {
    report(Step::Phase(&format!(
        "comparing {} tables with the manifest",
        manifest.tables.len()
    )));
    let mut conn = target.connect(database_url).await?;
    let restored = table_figures(&mut conn, true).await?;
    let mut problems = Vec::new();
    for (table, expected) in &manifest.tables {
        match restored.get(table) {
            None => problems.push(format!("{table} is missing")),
            Some(found) if found != expected => problems.push(format!(
                "{table}: {} rows (checksum {}) instead of {} (checksum {})",
                found.rows, found.checksum, expected.rows, expected.checksum
            )),
            Some(_) => {}
        }
    }
    anyhow::ensure!(
        problems.is_empty(),
        "the restored data does not match the manifest: {}",
        problems.join("; ")
    );
    // Smoke query: the application's main table answers.
    if manifest.tables.contains_key("products") {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM products WHERE price_cents >= 0")
            .fetch_one(&mut conn)
            .await
            .context("smoke query on products")?;
    }
    Ok(manifest.tables.values().map(|t| t.rows).sum())
}

/// Restores into a scratch database on the same server, compares, drops it, and records
/// the result (with the time the restore took) in the manifest.
pub async fn verify(
    database_url: &str,
    location: &Location,
    id: &str,
) -> anyhow::Result<Verification> {
    let target = Target::parse(database_url)?;
    let scratch = format!(
        "shopctl_verify_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut admin = target.connect(database_url).await?;
    sqlx::query(&format!("CREATE DATABASE \"{scratch}\""))
        .execute(&mut admin)
        .await
        .context("creating the scratch database")?;
    let mut scratch_url = url::Url::parse(database_url)?;
    scratch_url.set_path(&scratch);
    let outcome = restore(scratch_url.as_str(), location, id).await;
    let _ = sqlx::query(&format!(
        "DROP DATABASE IF EXISTS \"{scratch}\" WITH (FORCE)"
    ))
    .execute(&mut admin)
    .await;
    let verification = match &outcome {
        Ok(report) => Verification {
            at: chrono::Utc::now(),
            ok: true,
            restore_millis: report.millis,
            detail: format!(
                "{} tables, {} rows match the manifest",
                report.tables_checked, report.rows
            ),
            scratch_database: scratch.clone(),
        },
        Err(err) => Verification {
            at: chrono::Utc::now(),
            ok: false,
            restore_millis: 0,
            detail: format!("{err:#}"),
            scratch_database: scratch.clone(),
        },
    };
    let mut manifest = location.get(id).await?;
    manifest.verification = Some(verification.clone());
    location.save(&manifest).await?;
    Ok(verification)
}

/// Verifies backup `id` and, when the platform has a Pushgateway, pushes the result there
/// for the "not verified recently" alert; `note` hears how the push went.
pub async fn verify_and_push(
    database_url: &str,
    location: &Location,
    id: &str,
    pushgateway: Option<&str>,
    note: &dyn Fn(&str),
) -> anyhow::Result<Verification> {
    let verification = verify(database_url, location, id).await?;
    if let Some(url) = pushgateway {
        // The result is already recorded beside the backup; a metric that goes stale
        // because of this fires the "not verified recently" alert, which is the point.
        match super::metrics::push(url, id, &verification).await {
            Ok(()) => note("pushed the result to the Pushgateway"),
            Err(err) => note(&format!("warning: {err:#}")),
        }
    }
    Ok(verification)
}
