//! Replacing a service's process while it serves. A service inherits its sockets (see
//! [`super::spec::Sockets`]), so its successor starts on the same sockets, says
//! `READY=1` once its own readiness passes (systemd's notify protocol), and only then is
//! the predecessor told to drain: clients see neither a refused connection nor a failed
//! request.

use std::time::Duration;

use anyhow::Context;
use tokio::net::UnixDatagram;
use tokio::process::Child;

use super::lifecycle::spawn;
use super::readiness::READY_TIMEOUT;
use super::shared::Shared;
use super::spec::Spec;
use crate::local::process::ProcessId;
use crate::local::state::ComponentState;

/// How long a process being replaced may take to drain before it is killed: beyond the
/// services' own deadline (`SHUTDOWN_DEADLINE_MS`, 20 s unless a release sets it).
const DRAIN_GRACE: Duration = Duration::from_secs(30);

/// Replaces `child`, the running process of `spec`. On failure the old process is left
/// serving and the error says why.
pub(super) async fn replace(shared: &Shared, spec: &Spec, child: &mut Child) -> anyhow::Result<()> {
    let dir = shared.dir();
    anyhow::ensure!(
        spec.sockets.is_some(),
        "{} holds no sockets to hand over: only the services can be",
        spec.name
    );
    let notify_path = dir.path().join(format!("{}.notify", spec.name));
    let _ = std::fs::remove_file(&notify_path);
    let notify = UnixDatagram::bind(&notify_path)
        .with_context(|| format!("listening for readiness on {}", notify_path.display()))?;
    let successor = match spawn(dir, spec, Some(&notify_path)) {
        Ok(mut successor) => match ready(&notify, &mut successor, spec.name).await {
            Ok(()) => Ok(successor),
            Err(err) => {
                let _ = successor.start_kill();
                let _ = successor.wait().await;
                Err(err)
            }
        },
        Err(err) => Err(err),
    };
    let _ = std::fs::remove_file(&notify_path);
    let mut predecessor = std::mem::replace(child, successor?);
    shared.set(spec.name, ComponentState::Ready, pid(child));
    terminate(&mut predecessor, DRAIN_GRACE).await;
    Ok(())
}

/// Waits for `READY=1` from `successor`, failing when it exits first or takes too long.
async fn ready(notify: &UnixDatagram, successor: &mut Child, name: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::sleep(READY_TIMEOUT);
    tokio::pin!(deadline);
    let mut message = [0u8; 512];
    loop {
        tokio::select! {
            received = notify.recv(&mut message) => {
                let length = received?;
                if message[..length].split(|b| *b == b'\n').any(|line| line == b"READY=1") {
                    return Ok(());
                }
            }
            status = successor.wait() => {
                let status = status.map(|s| s.to_string()).unwrap_or_else(|err| err.to_string());
                anyhow::bail!("the new {name} process exited before it was ready ({status}); the old one keeps serving");
            }
            () = &mut deadline => anyhow::bail!(
                "the new {name} process was not ready within {READY_TIMEOUT:?}; the old one keeps serving"
            ),
        }
    }
}

fn pid(child: &Child) -> Option<ProcessId> {
    child.id().and_then(ProcessId::of)
}

/// SIGTERM, SIGKILL after `grace`, and the exit collected.
async fn terminate(child: &mut Child, grace: Duration) {
    if let Some(id) = pid(child) {
        tokio::task::spawn_blocking(move || id.terminate(grace))
            .await
            .ok();
    }
    let _ = child.wait().await;
}
