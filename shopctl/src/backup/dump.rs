//! Taking a backup: one exported snapshot for the figures and for pg_dump, the dump
//! streamed through SHA-256 to disk (never held in memory), the manifest written last.

use std::collections::BTreeMap;
use std::process::Stdio;

use anyhow::Context;
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::location::{Location, MultipartUpload};
use super::manifest::{Manifest, TableFigures};
use super::store::write_manifest;
use super::tools;

/// A connection URL split so the password travels in `PGPASSWORD`, never in a process's
/// arguments (which `ps` shows to everyone on the machine).
pub(super) struct Target {
    pub url_without_password: String,
    pub password: Option<String>,
    pub redacted: String,
}

impl Target {
    pub fn parse(database_url: &str) -> anyhow::Result<Self> {
        let mut url = url::Url::parse(database_url).map_err(|_| {
            anyhow::anyhow!(
                "the database URL is not a URL like postgres://user:password@host:5432/db"
            )
        })?;
        anyhow::ensure!(
            matches!(url.scheme(), "postgres" | "postgresql"),
            "the database URL must start with postgres://"
        );
        let password = url.password().map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        });
        let _ = url.set_password(None);
        let redacted = url.to_string();
        Ok(Self {
            url_without_password: url.to_string(),
            password,
            redacted,
        })
    }

    /// A connection whose failure names the server but never the password.
    pub async fn connect(&self, database_url: &str) -> anyhow::Result<PgConnection> {
        PgConnection::connect(database_url).await.map_err(|err| {
            anyhow::anyhow!(
                "connecting to {}: {}",
                self.redacted,
                without_url(&err.to_string())
            )
        })
    }

    pub fn command(&self, tool: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(tools::path(tool));
        if let Some(password) = &self.password {
            command.env("PGPASSWORD", password);
        }
        command
    }
}

/// Row count and an order-independent content checksum per table, in one transaction.
/// With `counted`, the tables done are reported as progress (a big table takes a while);
/// a backup reads them while the dump streams, whose bytes are the progress then.
pub(super) async fn table_figures(
    conn: &mut PgConnection,
    counted: bool,
) -> anyhow::Result<BTreeMap<String, TableFigures>> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut figures = BTreeMap::new();
    let total = tables.len() as u64;
    for (done, table) in tables.into_iter().enumerate() {
        if counted {
            crate::progress::report(crate::progress::Step::Count {
                done: done as u64,
                total,
            });
        }
        let quoted = format!("\"{}\"", table.replace('"', "\"\""));
        // A sum of per-row 64-bit hashes (summed as numeric, so it cannot overflow):
        // independent of row order and cheap in memory.
        let (rows, checksum): (i64, String) = sqlx::query_as(&format!(
            "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)), 0)::text FROM {quoted} t"
        ))
        .fetch_one(&mut *conn)
        .await
        .with_context(|| format!("reading table {table}"))?;
        figures.insert(table, TableFigures { rows, checksum });
    }
    Ok(figures)
}

pub async fn backup(database_url: &str, to: &Location) -> anyhow::Result<Manifest> {
    let target = Target::parse(database_url)?;
    let created_at = chrono::Utc::now();
    let id = format!(
        "{}-{}",
        created_at.format("%Y%m%dT%H%M%SZ"),
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    match to {
        Location::Dir(dir) => {
            crate::private::create_dir(&dir.root)
                .with_context(|| format!("creating {}", dir.root.display()))?;
            let partial = dir.root.join(format!("{id}.partial"));
            crate::private::create_dir(&partial)?;
            let file = crate::private::create(&partial.join("dump.pgc")).await?;
            let taken = take(&target, database_url, Sink::File(file), &id, created_at).await;
            let finished = taken.and_then(|manifest| {
                write_manifest(&partial, &manifest)?;
                std::fs::rename(&partial, dir.path_of(&id)).context("finishing the backup")?;
                Ok(manifest)
            });
            if finished.is_err() {
                let _ = std::fs::remove_dir_all(&partial);
            }
            finished
        }
        Location::S3(s3) => {
            let upload = s3.upload(&id).await?;
            let manifest = take(&target, database_url, Sink::S3(upload), &id, created_at).await?;
            // The manifest marks the backup complete, so it is written last.
            s3.put_manifest(&manifest).await?;
            Ok(manifest)
        }
    }
}

/// Where the dump streams: a file in a `.partial` directory, or an S3 multipart upload.
enum Sink<'a> {
    File(tokio::fs::File),
    S3(MultipartUpload<'a>),
}

impl Sink<'_> {
    async fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        match self {
            Sink::File(file) => Ok(file.write_all(bytes).await?),
            Sink::S3(upload) => upload.write(bytes).await,
        }
    }

    async fn finish(self) -> anyhow::Result<()> {
        match self {
            Sink::File(file) => Ok(file.sync_all().await?),
            Sink::S3(upload) => upload.finish().await,
        }
    }

    async fn abort(self) {
        if let Sink::S3(upload) = self {
            upload.abort().await;
        }
    }
}

async fn take(
    target: &Target,
    database_url: &str,
    sink: Sink<'_>,
    id: &str,
    created_at: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Manifest> {
    let mut conn = target.connect(database_url).await?;
    // The snapshot stays valid while this transaction is open: until pg_dump finishes.
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut conn)
        .await?;
    let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
        .fetch_one(&mut conn)
        .await?;
    let server_version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut conn)
        .await?;
    // The schema version is the newest applied migration, when the database has any.
    let migrated: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(&mut conn)
            .await?;
    let schema_version: Option<i64> = if migrated {
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut conn)
            .await
            .context("reading the schema version")?
    } else {
        None
    };
    // Owners are left out (a restore makes its own role the owner); privileges are kept:
    // the tables' grants to the platform's group roles come back with a restore.
    let mut child = target
        .command("pg_dump")
        .args(["--format=custom", "--compress=6", "--no-owner"])
        .arg(format!("--snapshot={snapshot}"))
        .arg(format!("--dbname={}", target.url_without_password))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting pg_dump (is PostgreSQL's client installed?)")?;
    let stdout = child.stdout.take().context("pg_dump output")?;
    crate::progress::report(crate::progress::Step::Phase("dumping (pg_dump)"));
    // The figures come from the same snapshot on a second connection, while pg_dump runs.
    let (streamed, tables) = tokio::join!(
        stream(stdout, sink),
        figures_in_snapshot(database_url, &snapshot)
    );
    let (size, sha256, sink) = streamed?;
    let tables = match tables {
        Ok(tables) => tables,
        Err(err) => {
            sink.abort().await;
            return Err(err);
        }
    };
    let output = child.wait_with_output().await?;
    sqlx::query("COMMIT").execute(&mut conn).await?;
    if !output.status.success() || size == 0 {
        sink.abort().await;
        anyhow::bail!(
            "pg_dump failed ({}): {}",
            output.status,
            without_url(String::from_utf8_lossy(&output.stderr).trim())
        );
    }
    sink.finish().await?;

    let manifest = Manifest {
        id: id.to_owned(),
        created_at,
        source: target.redacted.clone(),
        server_version,
        schema_version,
        format: "pg_dump custom (compressed)".to_owned(),
        size_bytes: size,
        sha256,
        tables,
        verification: None,
    };
    Ok(manifest)
}

/// Copies pg_dump's output to the sink through SHA-256, never holding the dump in memory.
async fn stream<'a>(
    mut from: tokio::process::ChildStdout,
    mut to: Sink<'a>,
) -> anyhow::Result<(u64, String, Sink<'a>)> {
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = from.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        if let Err(err) = to.write(&buffer[..read]).await {
            to.abort().await;
            return Err(err);
        }
        size += read as u64;
        crate::progress::report(crate::progress::Step::Bytes(size));
    }
    Ok((size, format!("{:x}", hasher.finalize()), to))
}

/// Table figures as of an exported snapshot, on a connection of their own.
async fn figures_in_snapshot(
    database_url: &str,
    snapshot: &str,
) -> anyhow::Result<BTreeMap<String, TableFigures>> {
    let mut conn = PgConnection::connect(database_url).await?;
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut conn)
        .await?;
    // Snapshot ids are generated by PostgreSQL (hex and dashes), never user input.
    sqlx::query(&format!("SET TRANSACTION SNAPSHOT '{snapshot}'"))
        .execute(&mut conn)
        .await?;
    let figures = table_figures(&mut conn, false).await?;
    sqlx::query("COMMIT").execute(&mut conn).await?;
    Ok(figures)
}

/// Driver and tool messages may quote the connection string; keep the password out.
pub(super) fn without_url(message: &str) -> String {
    message
        .split_whitespace()
        .map(|word| {
            if word.contains("://") {
                crate::local::postgres::redact(word)
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
