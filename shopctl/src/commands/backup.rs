//! `shopctl backup [list|verify] --env NAME`: the environment's database backups. For the
//! local target: the database `up` runs, backups kept in the state directory. For a
//! cluster: a Job from the `db-backup` CronJob, backups in the environment's bucket.

use clap::{Args, Subcommand};
use shopctl::backup::{self, Location, store::BackupDir};
use shopctl::cluster::{Cluster, jobs, restore};
use shopctl::db_roles::DbRole;
use shopctl::env::Environment;
use shopctl::local::state::StateDir;
use shopctl::reports::Target;

use super::cluster::ClusterArgs;
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
    /// Clusters: how long --wait waits, e.g. 30m.
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

/// The running local platform's database URL for `role` and its backup directory.
pub(super) fn local_database(dir: &StateDir, role: DbRole) -> anyhow::Result<(String, Location)> {
    let state = dir
        .read()?
        .filter(|state| state.supervisor.is_alive())
        .ok_or_else(|| {
            anyhow::anyhow!("the local platform is not running; `shopctl up` starts it")
        })?;
    let url = match state.component("postgres").and_then(|c| c.url.clone()) {
        // The private cluster: the recorded (superuser) URL, as the role.
        Some(url) => {
            let mut url = url::Url::parse(&url)?;
            let database = url.path().trim_start_matches('/').to_owned();
            url.set_username(&role.name(&database))
                .map_err(|()| anyhow::anyhow!("the recorded database URL has no host"))?;
            url.to_string()
        }
        // An external database: the URL is a secret and was never recorded.
        None => std::env::var("DATABASE_URL").map_err(|_| {
            anyhow::anyhow!(
                "the platform uses an external database; set DATABASE_URL to back it up"
            )
        })?,
    };
    Ok((
        url,
        Location::Dir(BackupDir::new(dir.path().join("backups"))),
    ))
}

pub fn exec(args: BackupArgs) -> anyhow::Result<Outcome> {
    let (_, environment) = args.cluster.load(&args.env)?;
    match Target::of(&environment) {
        Target::Local => local(args, &environment),
        Target::Cluster => cluster(args, environment),
    }
}

/// The local target: the database `up` runs, backups in the state directory.
fn local(args: BackupArgs, environment: &Environment) -> anyhow::Result<Outcome> {
    let dir = StateDir::resolve(&environment.name);
    match args.action {
        None => {
            let (url, backups) = local_database(&dir, DbRole::Backup)?;
            let manifest = super::block_on(backup::backup(&url, &backups))?;
            let rows: i64 = manifest.tables.values().map(|t| t.rows).sum();
            eprintln!(
                "backed up {} tables, {rows} rows, {} bytes into {}",
                manifest.tables.len(),
                manifest.size_bytes,
                backups.describe()
            );
            println!("{}", manifest.id);
        }
        Some(BackupAction::List { output }) => {
            super::db::print_backups(&BackupDir::new(dir.path().join("backups")).list()?, output)?;
        }
        Some(BackupAction::Verify { backup: id }) => {
            let (url, backups) = local_database(&dir, DbRole::Backup)?;
            let id = super::block_on(backups.resolve(id))?;
            let pushgateway = dir
                .read()?
                .and_then(|state| state.component("pushgateway")?.url.clone());
            return super::db::verify_and_report(&url, &backups, &id, pushgateway.as_deref());
        }
    }
    Ok(Outcome::Success)
}

/// A cluster environment: trigger the backup CronJob as a Job, optionally follow it and
/// find the backup it wrote; list the environment's bucket.
fn cluster(args: BackupArgs, environment: Environment) -> anyhow::Result<Outcome> {
    let bucket = format!(
        "s3://{}/{}",
        environment.backup.bucket, environment.backup.prefix
    );
    match args.action {
        Some(BackupAction::List { output }) => {
            let backups = super::block_on(async { Location::parse(&bucket).await?.list().await })?;
            super::db::print_backups(&backups, output)?;
            Ok(Outcome::Success)
        }
        Some(BackupAction::Verify { backup }) => super::block_on(async {
            let location = Location::parse(&bucket).await?;
            // An unknown id is refused before anything runs in the cluster.
            let id = location.resolve(backup).await?;
            location.get(&id).await.map_err(|err| {
                anyhow::anyhow!(
                    "{err:#}; `shopctl backup --env {} list` shows the backups",
                    environment.name
                )
            })?;
            let cluster = Cluster::connect(&args.cluster.options(), &environment).await?;
            eprintln!(
                "verifying backup {id}: a Job restores it into a scratch database in the cluster"
            );
            let started = chrono::Utc::now();
            let outcome =
                restore::verify(&cluster, &environment.namespace, Some(&id), args.timeout).await?;
            // Only a result this Job recorded counts, not an older one.
            let verification = location
                .get(&id)
                .await?
                .verification
                .filter(|v| v.at >= started);
            match verification {
                Some(v) if outcome.succeeded && v.ok => {
                    eprintln!(
                        "backup {id} verified in {:.0}s: restored in {} ms; {}",
                        outcome.seconds, v.restore_millis, v.detail
                    );
                    Ok(Outcome::Success)
                }
                Some(v) if !v.ok => {
                    eprintln!("backup {id} FAILED verification: {}", v.detail);
                    Ok(Outcome::CheckFailed)
                }
                _ => {
                    eprintln!(
                        "the verify Job {} ({}); no verification of {id} was recorded; check its logs: kubectl logs -n {} job/{} --all-containers",
                        if outcome.succeeded {
                            "completed"
                        } else {
                            "failed"
                        },
                        outcome.reason.unwrap_or_default(),
                        environment.namespace,
                        outcome.job
                    );
                    Ok(Outcome::CheckFailed)
                }
            }
        }),
        None => super::block_on(async {
            let cluster = Cluster::connect(&args.cluster.options(), &environment).await?;
            // Time-ordered and unique, like kubectl's generated names.
            let suffix = uuid::Uuid::new_v4().simple().to_string();
            let name = format!(
                "db-backup-manual-{}-{}",
                chrono::Utc::now().format("%Y%m%d%H%M%S"),
                &suffix[..5]
            );
            shopctl::cluster::access::preflight(
                &cluster,
                &jobs::needs(&environment.namespace, "db-backup", args.wait),
            )
            .await?;
            let job = jobs::create_from_cron_job(
                &cluster,
                &environment.namespace,
                "db-backup",
                &name,
                |_| Ok(()),
            )
            .await?;
            eprintln!(
                "created Job {name} from CronJob db-backup in namespace {}",
                environment.namespace
            );
            if !args.wait {
                println!("{name}");
                return Ok(Outcome::Success);
            }
            let outcome =
                jobs::follow(&cluster, &environment.namespace, &name, args.timeout).await?;
            if !outcome.succeeded {
                eprintln!(
                    "Job {name} failed after {:.0}s: {}",
                    outcome.seconds,
                    outcome.reason.unwrap_or_default()
                );
                for warning in &outcome.warnings {
                    eprintln!("  {warning}");
                }
                return Ok(Outcome::CheckFailed);
            }
            let started = job
                .metadata
                .creation_timestamp
                .map(|t| t.0)
                .unwrap_or_default();
            let newest = Location::parse(&bucket)
                .await?
                .list()
                .await?
                .into_iter()
                .max_by_key(|b| b.created_at);
            match newest.filter(|b| b.created_at.timestamp() >= started.as_second()) {
                Some(backup) => {
                    eprintln!(
                        "Job {name} completed in {:.0}s; backup {} ({} bytes) is in {bucket}",
                        outcome.seconds, backup.id, backup.size_bytes
                    );
                    println!("{}", backup.id);
                    Ok(Outcome::Success)
                }
                None => {
                    eprintln!(
                        "Job {name} completed, but no backup newer than its start is in {bucket}; check its logs: kubectl logs -n {} job/{name} --all-containers",
                        environment.namespace
                    );
                    Ok(Outcome::CheckFailed)
                }
            }
        }),
    }
}
