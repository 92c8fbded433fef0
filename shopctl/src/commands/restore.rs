//! `shopctl restore --env NAME --backup ID`: replace the environment's database with a
//! backup, the writers stopped meanwhile. Locally the supervisor pauses the services; on
//! a cluster they are scaled to zero and a Job restores from inside the cluster.

use clap::Args;
use shopctl::backup::{self, Location, Manifest, WRITERS};
use shopctl::cluster::{Cluster, restore};
use shopctl::db_roles::DbRole;
use shopctl::env::Environment;
use shopctl::local::state::{ComponentState, StateDir};
use shopctl::reports::Target;

use super::backup::local_database;
use super::cluster::ClusterArgs;
use super::{EnvArgs, Outcome};

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    env: EnvArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Clusters: how long to wait for the writers and the restore Job, e.g. 30m.
    #[arg(long, default_value = "30m", value_parser = super::parse_duration)]
    timeout: std::time::Duration,
    /// Backup id (`shopctl backup list`).
    #[arg(long)]
    backup: String,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
}

/// Asks for the environment's name (or --yes) before its database is replaced.
fn confirm_restore(args: &RestoreArgs, manifest: &Manifest) -> anyhow::Result<()> {
    super::confirm::by_typing_the_name(
        &args.env.name,
        &format!(
            "replace the `{}` environment's database with backup {} (taken {})",
            args.env.name, args.backup, manifest.created_at
        ),
        args.yes,
    )
}

/// Checks the artefact, stops the writers, restores and compares, brings the writers
/// back — whatever happens in between.
pub fn exec(args: RestoreArgs) -> anyhow::Result<Outcome> {
    let (_, environment) = args.cluster.load(&args.env)?;
    match Target::of(&environment) {
        Target::Local => local(args, &environment),
        Target::Cluster => cluster(args, environment),
    }
}

/// How long the supervisor may take to stop or start the writers.
const WRITERS_WITHIN: std::time::Duration = std::time::Duration::from_secs(120);

fn local(args: RestoreArgs, environment: &Environment) -> anyhow::Result<Outcome> {
    let dir = StateDir::resolve(&environment.name);
    // A restore replaces the schema, which only its owner may.
    let (url, backups) = local_database(&dir, DbRole::Owner)?;
    let manifest = super::block_on(backup::check_artefact(&backups, &args.backup))?.0;
    confirm_restore(&args, &manifest)?;

    eprintln!("stopping the writers ({})…", WRITERS.join(", "));
    dir.set_paused(&WRITERS)?;
    let restored = dir
        .wait_for(&WRITERS, ComponentState::Paused, WRITERS_WITHIN)
        .and_then(|()| super::block_on(backup::restore(&url, &backups, &args.backup)));
    eprintln!("bringing the writers back…");
    dir.set_paused(&[])?;
    let back = dir.wait_for(&WRITERS, ComponentState::Ready, WRITERS_WITHIN);
    let report = restored?;
    back?;
    eprintln!(
        "restored {} in {} ms: {} tables, {} rows match the manifest; the platform is serving again",
        report.id, report.millis, report.tables_checked, report.rows
    );
    Ok(Outcome::Success)
}

fn cluster(args: RestoreArgs, environment: Environment) -> anyhow::Result<Outcome> {
    let bucket = format!(
        "s3://{}/{}",
        environment.backup.bucket, environment.backup.prefix
    );
    super::block_on(async {
        // The artefact is checked here, before anything in the cluster changes.
        let location = Location::parse(&bucket).await?;
        let manifest = backup::check_artefact(&location, &args.backup).await?.0;
        confirm_restore(&args, &manifest)?;
        let cluster = Cluster::connect(&args.cluster.options(), &environment).await?;
        restore::preflight(&cluster, &environment.namespace).await?;
        eprintln!(
            "stopping the writers ({}), restoring {} in a Job, bringing the writers back…",
            WRITERS.join(", "),
            args.backup
        );
        let outcome = restore::restore(
            &cluster,
            &environment.namespace,
            &bucket,
            &args.backup,
            args.timeout,
            super::cluster::progress_reporter(),
        )
        .await?;
        if outcome.succeeded() {
            eprintln!(
                "restored {} in {:.0}s (the Job checked rows and checksums against the manifest); the writers are serving again",
                args.backup, outcome.job.seconds
            );
            return Ok(Outcome::Success);
        }
        eprintln!(
            "the restore did not succeed: {}",
            outcome
                .job
                .reason
                .clone()
                .unwrap_or_else(|| "the writers did not come back".into())
        );
        for warning in &outcome.job.warnings {
            eprintln!("  {warning}");
        }
        Ok(Outcome::CheckFailed)
    })
}
