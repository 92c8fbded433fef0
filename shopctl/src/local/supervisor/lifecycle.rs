//! Process lifecycle: spawn a component with its log, wait for it, keep it running with
//! backoff (pausing, resuming and handing it over as `control.json` asks), stop
//! everything in reverse.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use command_fds::{CommandFdExt, FdMapping};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use super::readiness::{Probe, wait_ready};
use super::services::Services;
use super::shared::Shared;
use super::spec::Spec;
use super::{handover, release_switch};
use crate::local::events::Event;
use crate::local::postgres;
use crate::local::process::ProcessId;
use crate::local::state::{Component, ComponentState, HandoverOutcome, RELEASE_SWITCH, StateDir};

const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The components started so far, in start order.
pub(super) type Running = Vec<(Spec, Child)>;

/// Which component failed to start, and why.
pub(super) struct StartError {
    pub component: String,
    pub error: anyhow::Error,
}

pub(super) fn failed(component: &str) -> impl FnOnce(anyhow::Error) -> StartError + '_ {
    move |error| StartError {
        component: component.to_owned(),
        error,
    }
}

/// Starts `spec`'s process with its log, its inherited sockets (systemd's `LISTEN_FDS`:
/// the public one as fd 3, the admin one as fd 4) and, given `notify`, the socket it says
/// `READY=1` on (`NOTIFY_SOCKET`).
pub(super) fn spawn(dir: &StateDir, spec: &Spec, notify: Option<&Path>) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.log(spec.name))?;
    let mut command = match &spec.probe {
        Probe::Postgres(binaries) => Command::from(postgres::command(binaries, "postgres")?),
        _ => Command::new(&spec.program),
    };
    command
        .args(&spec.args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(&spec.env)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(false);
    if let Some(sockets) = &spec.sockets {
        let inherit = |socket: &std::net::TcpListener, child_fd| -> anyhow::Result<FdMapping> {
            Ok(FdMapping {
                parent_fd: socket.as_fd().try_clone_to_owned()?,
                child_fd,
            })
        };
        command
            .fd_mappings(vec![
                inherit(&sockets.public, 3)?,
                inherit(&sockets.admin, 4)?,
            ])
            .context("passing the service its sockets")?
            .env("LISTEN_FDS", "2")
            .env("LISTEN_FDNAMES", "http:admin");
    }
    if let Some(notify) = notify {
        command.env("NOTIFY_SOCKET", notify);
    }
    command
        .spawn()
        .with_context(|| format!("starting {}", spec.program.display()))
}

/// Spawns `spec` and records it as starting, without waiting for it.
pub(super) fn spawn_only(
    shared: &Shared,
    running: &mut Running,
    spec: Spec,
    events: &impl Fn(Event),
) -> Result<(), StartError> {
    events(Event::Starting {
        component: spec.name.into(),
        detail: format!("port {}", spec.port),
    });
    let child = spawn(shared.dir(), &spec, None).map_err(failed(spec.name))?;
    shared.record(Component {
        name: spec.name.into(),
        origin: "managed".into(),
        state: ComponentState::Starting,
        process: child.id().and_then(ProcessId::of),
        port: Some(spec.port),
        url: Some(spec.url()),
        restarts: 0,
        log: Some(shared.dir().log(spec.name)),
    });
    running.push((spec, child));
    Ok(())
}

/// Spawns `spec` and waits until it is ready; `detail` says what ready means for it.
pub(super) async fn start(
    shared: &Shared,
    events: &impl Fn(Event),
    running: &mut Running,
    spec: Spec,
    detail: &str,
) -> Result<(), StartError> {
    let began = Instant::now();
    let name = spec.name;
    spawn_only(shared, running, spec.clone(), events)?;
    let child = &mut running.last_mut().expect("just pushed").1;
    wait_ready(&spec, Some(child))
        .await
        .map_err(|error| StartError {
            component: name.into(),
            error: error.context(format!("see {}", shared.dir().log(name).display())),
        })?;
    shared.set(name, ComponentState::Ready, None);
    events(Event::Ready {
        component: name.into(),
        detail: detail.into(),
        millis: began.elapsed().as_millis() as u64,
    });
    Ok(())
}

/// Restarts anything that exits until asked to stop; pauses and resumes components, hands
/// them over and switches releases as `control.json` asks. Returns the children still
/// running.
pub(super) async fn keep_running(
    shared: &Shared,
    services: &Services,
    mut running: Running,
    mut stop: watch::Receiver<bool>,
) -> Running {
    let dir = shared.dir();
    let mut backoff: BTreeMap<&'static str, (Duration, Instant)> = BTreeMap::new();
    let mut paused: BTreeSet<&'static str> = BTreeSet::new();
    // Requests made before this supervisor started were met by starting.
    let earlier = dir.requests();
    let mut handed_over = earlier.handovers;
    let mut switched = earlier.release.map_or(0, |release| release.number);
    loop {
        tokio::select! {
            _ = stop.changed() => return running,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        let requests = dir.requests();
        if let Some(release) = requests.release
            && release.number > switched
        {
            switched = release.number;
            let switch =
                release_switch::switch(shared, services, &mut running, &paused, release.revision);
            let outcome = HandoverOutcome {
                number: release.number,
                error: switch.await.err().map(|err| format!("{err:#}")),
            };
            if let Err(err) = dir.record_handover(RELEASE_SWITCH, outcome) {
                eprintln!(
                    "recording the switch to release {} failed: {err:#}",
                    release.revision
                );
            }
            continue;
        }
        let (wanted, handovers) = (requests.paused, requests.handovers);
        for (spec, child) in running.iter_mut() {
            let asked = handovers.get(spec.name).copied().unwrap_or(0);
            if asked > handed_over.get(spec.name).copied().unwrap_or(0)
                && !paused.contains(spec.name)
            {
                handed_over.insert(spec.name.to_owned(), asked);
                let error = handover::replace(shared, spec, child)
                    .await
                    .err()
                    .map(|err| format!("{err:#}"));
                let outcome = HandoverOutcome {
                    number: asked,
                    error,
                };
                if let Err(err) = dir.record_handover(spec.name, outcome) {
                    eprintln!("recording the hand-over of {} failed: {err:#}", spec.name);
                }
                continue;
            }
            let pause = wanted.contains(spec.name);
            if pause && !paused.contains(spec.name) {
                if let Some(id) = child.id().and_then(ProcessId::of) {
                    tokio::task::spawn_blocking(move || id.terminate(Duration::from_secs(10)))
                        .await
                        .ok();
                }
                let _ = child.wait().await;
                paused.insert(spec.name);
                shared.set(spec.name, ComponentState::Paused, None);
                continue;
            }
            if !pause && paused.remove(spec.name) {
                respawn(shared, spec, child).await;
                continue;
            }
            if pause {
                continue;
            }
            let Ok(Some(status)) = child.try_wait() else {
                continue;
            };
            // A crash after a long healthy run starts the backoff over.
            let (delay, since) = backoff
                .entry(spec.name)
                .or_insert((Duration::from_secs(1), Instant::now()));
            if since.elapsed() > Duration::from_secs(60) {
                *delay = Duration::from_secs(1);
            }
            eprintln!("{} exited ({status}); restarting in {:?}", spec.name, delay);
            shared.restarting(spec.name);
            tokio::select! {
                _ = stop.changed() => return running,
                () = tokio::time::sleep(*delay) => {}
            }
            *delay = (*delay * 2).min(MAX_BACKOFF);
            *since = Instant::now();
            respawn(shared, spec, child).await;
        }
    }
}

async fn respawn(shared: &Shared, spec: &Spec, child: &mut Child) {
    match spawn(shared.dir(), spec, None) {
        Ok(new_child) => {
            *child = new_child;
            let next = match wait_ready(spec, Some(child)).await {
                Ok(()) => ComponentState::Ready,
                Err(_) => ComponentState::Restarting,
            };
            shared.set(spec.name, next, child.id().and_then(ProcessId::of));
        }
        Err(err) => eprintln!("restarting {} failed: {err:#}", spec.name),
    }
}

/// Stops in reverse start order: services drain first, the database goes last.
pub(super) async fn stop_all(shared: &Shared, running: Running) {
    for (spec, mut child) in running.into_iter().rev() {
        if let Some(id) = child.id().and_then(ProcessId::of) {
            let grace = if spec.name == "postgres" {
                Duration::from_secs(30)
            } else {
                Duration::from_secs(10)
            };
            tokio::task::spawn_blocking(move || id.terminate(grace))
                .await
                .ok();
        }
        let _ = child.wait().await;
        shared.set(spec.name, ComponentState::Stopped, None);
    }
    let _ = shared.dir().remove_state();
}
