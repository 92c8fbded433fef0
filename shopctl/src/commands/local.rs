//! `up`, `down`, `status` and `logs` for the local target, and the hidden `supervise`
//! that `up` starts in the background.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use comfy_table::{Table, presets};
use shopctl::env::model::Provider;
use shopctl::local::events::Event;
use shopctl::local::state::{ComponentState, State, StateDir};
use shopctl::local::{binaries, supervisor};
use shopctl::templates::Templates;

use super::{EnvArgs, Outcome, OutputFormat};

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    env: EnvArgs,
    /// Stay attached; Ctrl-C stops everything.
    #[arg(long)]
    foreground: bool,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    #[command(flatten)]
    env: EnvArgs,
    /// Also delete the data (the private database, logs).
    #[arg(long)]
    purge: bool,
    /// Do not ask before deleting data.
    #[arg(long)]
    yes: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    env: EnvArgs,
    #[arg(long, value_enum, default_value = "table")]
    output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    env: EnvArgs,
    /// ml, backend, frontend, postgres, redis, prometheus or supervisor.
    service: String,
    /// Keep printing new lines.
    #[arg(short, long)]
    follow: bool,
}

#[derive(Debug, Args)]
pub struct SuperviseArgs {
    #[command(flatten)]
    env: EnvArgs,
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

pub fn up(args: UpArgs) -> anyhow::Result<Outcome> {
    let (_, dir) = local_state(&args.env)?;
    if let Some(state) = dir.read()? {
        if state.supervisor.is_alive() {
            eprintln!(
                "already running (supervisor pid {}); `shopctl down` stops it",
                state.supervisor.pid
            );
            print_status(&state, OutputFormat::Table);
            return Ok(Outcome::Success);
        }
        if supervisor::clean_up_after_crash(&dir)? {
            eprintln!("cleaned up after a supervisor that had stopped unexpectedly");
        }
    }
    let binaries =
        binaries::locate(|| eprintln!("building the services (first run from a checkout)…"))?;
    dir.create()?;
    if args.foreground {
        return supervise_here(&args.env, &dir, binaries);
    }

    let exe = std::env::current_exe()?;
    let supervisor_log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.log("supervisor"))?;
    let mut command = std::process::Command::new(exe);
    command.arg("supervise").arg("--env").arg(&args.env.name);
    for set in &args.env.set {
        command.arg("--set").arg(set);
    }
    if let Some(templates) = &args.env.templates {
        command.arg("--templates").arg(templates);
    }
    // Its own process group: a Ctrl-C in this terminal must not stop the platform.
    use std::os::unix::process::CommandExt;
    let mut child = command
        .env("SHOPCTL_BINARIES", &binaries)
        .env("SHOPCTL_STATE_DIR", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(supervisor_log)
        .process_group(0)
        .spawn()
        .context("starting the supervisor")?;
    let stdout = child.stdout.take().context("supervisor output")?;
    let began = Instant::now();
    for line in BufReader::new(stdout).lines() {
        let Ok(event) = serde_json::from_str::<Event>(&line?) else {
            continue;
        };
        match event {
            Event::AllReady { storefront } => {
                eprintln!("ready in {:.1}s", began.elapsed().as_secs_f64());
                if let Some(state) = dir.read()? {
                    print_status(&state, OutputFormat::Table);
                }
                println!("storefront: {storefront}");
                eprintln!(
                    "`shopctl down` stops it; `shopctl logs backend -f` follows a service's log"
                );
                return Ok(Outcome::Success);
            }
            Event::Failed { component, message } => {
                let _ = child.wait();
                anyhow::bail!("{component}: {message}");
            }
            other => print_event(&other),
        }
    }
    let _ = child.wait();
    anyhow::bail!(
        "the supervisor stopped before the platform was ready; see {}",
        dir.log("supervisor").display()
    )
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
    binaries: std::path::PathBuf,
) -> supervisor::Options {
    let non_empty = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    supervisor::Options {
        environment: env.name.clone(),
        state: dir.clone(),
        binaries,
        database_url: non_empty("DATABASE_URL"),
        redis_url: non_empty("REDIS_URL"),
        prometheus_rules: templates
            .under("observability/rules/")
            .map(|(path, text)| {
                (
                    path.rsplit('/').next().unwrap_or(path).to_owned(),
                    text.to_owned(),
                )
            })
            .collect(),
    }
}

fn supervise_here(
    env: &EnvArgs,
    dir: &StateDir,
    binaries: std::path::PathBuf,
) -> anyhow::Result<Outcome> {
    let (templates, _) = env.load()?;
    let options = supervisor_options(env, &templates, dir, binaries);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(supervisor::run(options, |event| match &event {
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
    let binaries = std::env::var_os("SHOPCTL_BINARIES")
        .map(Into::into)
        .map_or_else(|| binaries::locate(|| {}), Ok)?;
    let options = supervisor_options(&args.env, &templates, &dir, binaries);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(supervisor::run(options, |event| {
        // `up` stops reading after the last event; writes after that are not an error.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{}", event.to_line());
        let _ = out.flush();
    }))?;
    Ok(Outcome::Success)
}

pub fn down(args: DownArgs) -> anyhow::Result<Outcome> {
    let (_, dir) = local_state(&args.env)?;
    if args.purge && !args.yes {
        anyhow::ensure!(
            std::io::stdin().is_terminal(),
            "--purge deletes the local database and logs; add --yes to confirm non-interactively"
        );
        eprint!(
            "delete all local data in {}? type the environment name to confirm: ",
            dir.path().display()
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        anyhow::ensure!(
            answer.trim() == args.env.name,
            "not confirmed; nothing deleted"
        );
    }
    match dir.read()? {
        Some(state) if state.supervisor.is_alive() => {
            eprintln!("stopping (supervisor pid {})…", state.supervisor.pid);
            state.supervisor.terminate(Duration::from_secs(90));
            // The supervisor removes its state file when it has stopped everything.
            let deadline = Instant::now() + Duration::from_secs(5);
            while dir.read()?.is_some() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            supervisor::clean_up_after_crash(&dir)?;
            eprintln!("stopped");
        }
        Some(_) => {
            supervisor::clean_up_after_crash(&dir)?;
            eprintln!("the supervisor had stopped unexpectedly; cleaned up what it left running");
        }
        None => eprintln!("nothing running"),
    }
    if args.purge && dir.exists() {
        std::fs::remove_dir_all(dir.path())
            .with_context(|| format!("deleting {}", dir.path().display()))?;
        eprintln!("deleted {}", dir.path().display());
    }
    Ok(Outcome::Success)
}

pub fn status(args: StatusArgs) -> anyhow::Result<Outcome> {
    let (_, dir) = local_state(&args.env)?;
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
            serde_json::json!({"running": false, "components": []})
        ),
        OutputFormat::Table => println!("not running; `shopctl up` starts it"),
    }
    Ok(Outcome::CheckFailed)
}

fn print_status(state: &State, output: OutputFormat) {
    match output {
        OutputFormat::Json => {
            let report = serde_json::json!({
                "running": true,
                "environment": state.environment,
                "supervisor_pid": state.supervisor.pid,
                "started_at": state.started_at,
                "components": state.components,
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
        }
        OutputFormat::Table => {
            let mut table = Table::new();
            table.load_preset(presets::UTF8_FULL_CONDENSED).set_header([
                "COMPONENT",
                "STATE",
                "URL",
                "PID",
                "RESTARTS",
            ]);
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

pub fn logs(args: LogsArgs) -> anyhow::Result<Outcome> {
    let (_, dir) = local_state(&args.env)?;
    let path = dir.log(&args.service);
    let mut file = std::fs::File::open(&path).with_context(|| {
        format!(
            "no log for `{}` in {} (is the environment up? is the name right?)",
            args.service,
            dir.logs().display()
        )
    })?;
    let mut out = std::io::stdout();
    loop {
        std::io::copy(&mut file, &mut out)?;
        if !args.follow {
            return Ok(Outcome::Success);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
