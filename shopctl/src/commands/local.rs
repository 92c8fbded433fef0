//! The local target of `up`, `down`, `status`, `history`, `rollback`, `restart` and
//! `logs` (their commands choose the target), and the hidden `supervise` that `up`
//! starts in the background.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use shopctl::db_roles;
use shopctl::env::Environment;
use shopctl::env::model::Provider;
use shopctl::local::events::Event;
use shopctl::local::release::{Desired, ReleaseStore};
use shopctl::local::state::{ComponentState, State, StateDir};
use shopctl::local::{binaries, launch, supervisor};
use shopctl::reports::{History, LocalStatus, ReleaseRecord, Status, Target};
use shopctl::templates::Templates;

use super::down::DownArgs;
use super::history::HistoryArgs;
use super::logs::LogsArgs;
use super::restart::RestartArgs;
use super::rollback::RollbackArgs;
use super::status::StatusArgs;
use super::up::UpArgs;
use super::{EnvArgs, Outcome, OutputFormat};

#[derive(Debug, Args)]
pub struct SuperviseArgs {
    #[command(flatten)]
    env: EnvArgs,
    /// The release to run.
    #[arg(long)]
    revision: u32,
}

/// The environment must be the local kind; the cluster kinds arrive with `apply`.
pub(super) fn local_state(env: &EnvArgs) -> anyhow::Result<(Templates, StateDir)> {
    let (templates, environment) = env.load()?;
    anyhow::ensure!(
        environment.cluster.provider == Provider::Local,
        "`{}` is a cluster environment; these commands manage the processes of a local \
         environment (use --env local)",
        environment.name
    );
    Ok((templates, StateDir::resolve(&environment.name)))
}

pub(super) fn up(args: UpArgs, environment: &Environment) -> anyhow::Result<Outcome> {
    let dir = StateDir::resolve(&environment.name);
    let binaries =
        binaries::locate(|| eprintln!("building the services (first run from a checkout)…"))?;
    dir.create()?;
    let desired = Desired::from(environment, &binaries)?;
    let store = ReleaseStore::new(dir.path());
    if let Some(state) = dir.read()? {
        if state.supervisor.is_alive() {
            let current = state.revision.map(|r| store.get(r)).transpose()?;
            if current.is_some_and(|release| release.digest == desired.digest()) {
                eprintln!(
                    "already running revision {} with no changes; `shopctl down` stops it",
                    state.revision.unwrap_or_default()
                );
                print_status(&state, OutputFormat::Table);
                return Ok(Outcome::Success);
            }
            eprintln!("configuration or binaries changed: restarting with a new release");
            stop(&dir)?;
        } else if supervisor::clean_up_after_crash(&dir)? {
            eprintln!("cleaned up after a supervisor that had stopped unexpectedly");
        }
    }
    let (release, created) = store.record(&desired, "up")?;
    let novelty = if created { "new" } else { "unchanged" };
    eprintln!("release {} ({novelty})", release.revision);
    start(&args.env, &dir, release.revision, args.foreground)
}

/// Starts the supervisor for `revision` (in the background unless `foreground`) and waits
/// until it reports ready or failed.
fn start(
    env: &EnvArgs,
    dir: &StateDir,
    revision: u32,
    foreground: bool,
) -> anyhow::Result<Outcome> {
    if foreground {
        return supervise_here(env, dir, revision);
    }
    let began = Instant::now();
    let supervisor = launch::Supervisor {
        program: std::env::current_exe()?,
        environment: env.name.clone(),
        templates: env.templates.clone(),
        revision,
    };
    let storefront = launch::start(dir, &supervisor, print_event)?;
    eprintln!("ready in {:.1}s", began.elapsed().as_secs_f64());
    if let Some(state) = dir.read()? {
        print_status(&state, OutputFormat::Table);
    }
    println!("storefront: {storefront}");
    eprintln!("`shopctl down` stops it; `shopctl logs backend -f` follows a service's log");
    Ok(Outcome::Success)
}

fn print_event(event: &Event) {
    match event {
        Event::Starting { component, detail } => eprintln!("  starting {component} ({detail})"),
        Event::Ready {
            component,
            detail,
            millis,
        } => eprintln!("✓ {component} ready: {detail} ({millis} ms)"),
        Event::Skipped { component, reason } => eprintln!("- {component}: {reason}"),
        Event::AllReady { .. } | Event::Failed { .. } => {}
    }
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
        service_config: release.config,
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

fn supervise_here(env: &EnvArgs, dir: &StateDir, revision: u32) -> anyhow::Result<Outcome> {
    let (templates, _) = env.load()?;
    let options = supervisor_options(env, &templates, dir, revision)?;
    super::block_on(supervisor::run(options, |event| match &event {
        Event::AllReady { storefront } => {
            eprintln!("storefront: {storefront} (Ctrl-C stops everything)")
        }
        Event::Failed { component, message } => eprintln!("✗ {component}: {message}"),
        other => print_event(other),
    }))?;
    Ok(Outcome::Success)
}

/// The background supervisor: progress events on stdout for `up`, then silence.
pub fn supervise(args: SuperviseArgs) -> anyhow::Result<Outcome> {
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

pub(super) fn down(args: DownArgs, environment: &Environment) -> anyhow::Result<Outcome> {
    let dir = StateDir::resolve(&environment.name);
    if args.purge {
        super::confirm::by_typing_the_name(
            &args.env.name,
            &format!("delete all local data in {}", dir.path().display()),
            args.yes,
        )?;
    }
    stop(&dir)?;
    if args.purge && dir.exists() {
        std::fs::remove_dir_all(dir.path())
            .with_context(|| format!("deleting {}", dir.path().display()))?;
        eprintln!("deleted {}", dir.path().display());
    }
    Ok(Outcome::Success)
}

/// Stops a running platform (gracefully, through its supervisor), or cleans up after a
/// supervisor that died.
fn stop(dir: &StateDir) -> anyhow::Result<()> {
    match dir.read()? {
        Some(state) if state.supervisor.is_alive() => {
            eprintln!("stopping (supervisor pid {})…", state.supervisor.pid);
            state.supervisor.terminate(Duration::from_secs(90));
            // The supervisor removes its state file when it has stopped everything.
            let deadline = Instant::now() + Duration::from_secs(5);
            while dir.read()?.is_some() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            supervisor::clean_up_after_crash(dir)?;
            eprintln!("stopped");
        }
        Some(_) => {
            supervisor::clean_up_after_crash(dir)?;
            eprintln!("the supervisor had stopped unexpectedly; cleaned up what it left running");
        }
        None => eprintln!("nothing running"),
    }
    Ok(())
}

pub(super) fn rollback(args: RollbackArgs, environment: &Environment) -> anyhow::Result<Outcome> {
    let dir = StateDir::resolve(&environment.name);
    let store = ReleaseStore::new(dir.path());
    let releases = store.list()?;
    anyhow::ensure!(
        !releases.is_empty(),
        "there is no release history yet; `shopctl up` creates the first release"
    );
    let running = dir.read()?.filter(|s| s.supervisor.is_alive());
    let current = running
        .as_ref()
        .and_then(|s| s.revision)
        .or(releases.last().map(|r| r.revision));
    let target = match args.to {
        Some(revision) => store.get(revision)?.revision,
        None => releases
            .iter()
            .rev()
            .map(|r| r.revision)
            .find(|r| Some(*r) < current)
            .context("there is no earlier release to roll back to; `shopctl history` lists them")?,
    };
    anyhow::ensure!(
        Some(target) != current,
        "revision {target} is the current release already"
    );
    let release = store.reapply(target)?;
    eprintln!(
        "rolling back to revision {target} as revision {}",
        release.revision
    );
    if running.is_some() {
        stop(&dir)?;
    }
    start(&args.env, &dir, release.revision, false)
}

pub(super) fn history(args: HistoryArgs, environment: &Environment) -> anyhow::Result<Outcome> {
    let dir = StateDir::resolve(&environment.name);
    let releases = ReleaseStore::new(dir.path()).list()?;
    let current = dir
        .read()?
        .filter(|s| s.supervisor.is_alive())
        .and_then(|s| s.revision);
    match args.output {
        OutputFormat::Json => {
            let report = History {
                environment: args.env.name.clone(),
                target: Target::Local,
                current,
                releases: releases.into_iter().map(ReleaseRecord::Local).collect(),
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        OutputFormat::Table => {
            let mut table = super::new_table(&["REVISION", "APPLIED", "BY", "CAUSE", "DIGEST", ""]);
            for release in &releases {
                table.add_row([
                    release.revision.to_string(),
                    release.applied_at.clone(),
                    release.applied_by.clone(),
                    release.cause.clone(),
                    release.digest[..12].to_owned(),
                    if Some(release.revision) == current {
                        "running".into()
                    } else {
                        String::new()
                    },
                ]);
            }
            println!("{table}");
        }
    }
    Ok(Outcome::Success)
}

pub(super) fn status(args: StatusArgs, environment: &Environment) -> anyhow::Result<Outcome> {
    let dir = StateDir::resolve(&environment.name);
    let state = match dir.read()? {
        Some(state) if state.supervisor.is_alive() => state,
        Some(_) => {
            supervisor::clean_up_after_crash(&dir)?;
            eprintln!("the supervisor had stopped unexpectedly; cleaned up what it left running");
            return not_running(args.output);
        }
        None => return not_running(args.output),
    };
    print_status(&state, args.output);
    let all_ready = state
        .components
        .iter()
        .all(|c| matches!(c.state, ComponentState::Ready | ComponentState::Disabled));
    Ok(if all_ready {
        Outcome::Success
    } else {
        Outcome::CheckFailed
    })
}

fn not_running(output: OutputFormat) -> anyhow::Result<Outcome> {
    match output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&Status::Local(LocalStatus::stopped()))?
        ),
        OutputFormat::Table => println!("not running; `shopctl up` starts it"),
    }
    Ok(Outcome::CheckFailed)
}

fn print_status(state: &State, output: OutputFormat) {
    match output {
        OutputFormat::Json => {
            let report = Status::Local(LocalStatus::of(state));
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
        }
        OutputFormat::Table => {
            let mut table = super::new_table(&["COMPONENT", "STATE", "URL", "PID", "RESTARTS"]);
            for component in &state.components {
                table.add_row([
                    component.name.clone(),
                    format!("{:?}", component.state).to_lowercase(),
                    component
                        .url
                        .clone()
                        .unwrap_or_else(|| component.origin.clone()),
                    component
                        .process
                        .map(|p| p.pid.to_string())
                        .unwrap_or_default(),
                    component.restarts.to_string(),
                ]);
            }
            println!("{table}");
        }
    }
}

pub(super) fn restart(args: RestartArgs, environment: &Environment) -> anyhow::Result<Outcome> {
    let dir = StateDir::resolve(&environment.name);
    anyhow::ensure!(
        dir.read()?.is_some_and(|s| s.supervisor.is_alive()),
        "the local platform is not running; `shopctl up` starts it"
    );
    let service = [args.service.as_str()];
    dir.set_paused(&service)?;
    dir.wait_for(&service, ComponentState::Paused, RESTART_WITHIN)?;
    dir.set_paused(&[])?;
    dir.wait_for(&service, ComponentState::Ready, RESTART_WITHIN)?;
    eprintln!("{} restarted and ready", args.service);
    Ok(Outcome::Success)
}

/// How long a local stop or start of a component may take.
const RESTART_WITHIN: Duration = Duration::from_secs(120);

pub(super) fn logs(args: LogsArgs, environment: &Environment) -> anyhow::Result<Outcome> {
    anyhow::ensure!(
        args.since.is_none() && !args.previous,
        "--since and --previous read a cluster's pod logs; the local platform keeps one log file per component"
    );
    let dir = StateDir::resolve(&environment.name);
    let path = dir.log(&args.service);
    let mut file = std::fs::File::open(&path).with_context(|| {
        format!(
            "no log for `{}` in {} (is the environment up? is the name right?)",
            args.service,
            dir.logs().display()
        )
    })?;
    let mut out = std::io::stdout();
    if let Some(tail) = args.tail {
        let text = std::io::read_to_string(&mut file)?;
        let lines: Vec<&str> = text.lines().collect();
        for line in &lines[lines.len().saturating_sub(tail)..] {
            writeln!(out, "{line}")?;
        }
    }
    loop {
        std::io::copy(&mut file, &mut out)?;
        if !args.follow {
            return Ok(Outcome::Success);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
