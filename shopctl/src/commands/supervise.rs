//! `shopctl supervise` (hidden): the local platform's supervisor. `up` starts it detached
//! and reads its progress events; `up --foreground` runs it in the terminal instead.

use std::io::Write;

use clap::Args;
use shopctl::db_roles;
use shopctl::env::model::Provider;
use shopctl::local::events::Event;
use shopctl::local::release::ReleaseStore;
use shopctl::local::state::StateDir;
use shopctl::local::supervisor;
use shopctl::release::ReleaseStatus;
use shopctl::templates::Templates;

use super::{EnvArgs, Outcome};

#[derive(Debug, Args)]
pub struct SuperviseArgs {
    #[command(flatten)]
    env: EnvArgs,
    /// The release to run.
    #[arg(long)]
    revision: u32,
}

/// The environment must be the local kind; the cluster kinds arrive with `apply`.
fn local_state(env: &EnvArgs) -> anyhow::Result<(Templates, StateDir)> {
    let (templates, environment) = env.load()?;
    anyhow::ensure!(
        environment.cluster.provider == Provider::Local,
        "`{}` is a cluster environment; these commands manage the processes of a local \
         environment (use --env local)",
        environment.name
    );
    Ok((templates, StateDir::resolve(&environment.name)))
}

fn supervisor_options(
    env: &EnvArgs,
    templates: &Templates,
    dir: &StateDir,
    revision: u32,
) -> anyhow::Result<supervisor::Options> {
    let non_empty = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let store = ReleaseStore::new(dir.path());
    let release = store.get(revision)?;
    Ok(supervisor::Options {
        environment: env.name.clone(),
        state: dir.clone(),
        revision,
        binaries: store.binaries(revision),
        service_config: release.contents.config,
        database_url: non_empty("DATABASE_URL"),
        redis_url: non_empty("REDIS_URL"),
        prometheus_rules: templates
            .under("observability/rules/")
            .map(|(path, text)| {
                let file = path.rsplit('/').next().unwrap_or(path);
                (file.to_owned(), text.to_owned())
            })
            .collect(),
        database_setup: templates
            .get(db_roles::SETUP_SCRIPT)
            .ok_or_else(|| anyhow::anyhow!("the templates have no {}", db_roles::SETUP_SCRIPT))?
            .to_owned(),
    })
}

pub(super) fn supervise_here(
    env: &EnvArgs,
    dir: &StateDir,
    revision: u32,
) -> anyhow::Result<Outcome> {
    let (templates, _) = env.load()?;
    let options = supervisor_options(env, &templates, dir, revision)?;
    let releases = ReleaseStore::new(dir.path());
    super::block_on(supervisor::run(options, |event| {
        // The release records how it ended up (before saying so), as a detached start
        // records it.
        let status = match event {
            Event::AllReady { .. } => Some(ReleaseStatus::Ready),
            Event::Failed { .. } => Some(ReleaseStatus::Failed),
            _ => None,
        };
        if let Some(Err(err)) = status.map(|status| releases.set_status(revision, status)) {
            eprintln!("warning: {err:#}");
        }
        eprintln!("{}", event.describe());
    }))?;
    Ok(Outcome::Success)
}

/// The background supervisor: progress events on stdout for `up`, then silence.
pub fn exec(args: SuperviseArgs) -> anyhow::Result<Outcome> {
    let (templates, dir) = local_state(&args.env)?;
    let options = supervisor_options(&args.env, &templates, &dir, args.revision)?;
    super::block_on(supervisor::run(options, |event| {
        // `up` stops reading after the last event; writes after that are not an error.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{}", event.to_line());
        let _ = out.flush();
    }))?;
    Ok(Outcome::Success)
}
