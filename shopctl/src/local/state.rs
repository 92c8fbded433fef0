//! The local environment's state directory: a lock, `state.json` describing what runs,
//! logs per component, and the private PostgreSQL data.
//!
//! Default location: `$SHOPCTL_STATE_DIR`, else `$XDG_STATE_HOME/shopctl/<env>`, else
//! `~/.local/state/shopctl/<env>`; as root, `/var/lib/shopctl/<env>` (the private
//! PostgreSQL runs as the `postgres` user and must be able to reach its data directory).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::process::ProcessId;

#[derive(Debug, Clone)]
pub struct StateDir {
    pub root: PathBuf,
}

/// Held while a supervisor runs; released when dropped (or when the process dies).
pub struct EnvironmentLock {
    _file: File,
}

impl StateDir {
    pub fn resolve(env: &str) -> Self {
        let root = match std::env::var_os("SHOPCTL_STATE_DIR") {
            Some(dir) => PathBuf::from(dir),
            None if super::postgres::running_as_root() => {
                PathBuf::from("/var/lib/shopctl").join(env)
            }
            None => std::env::var_os("XDG_STATE_HOME")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state"))
                })
                .unwrap_or_else(|| PathBuf::from(".shopctl/state"))
                .join("shopctl")
                .join(env),
        };
        Self { root }
    }

    pub fn create(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(self.logs())
            .with_context(|| format!("creating {}", self.root.display()))?;
        // Traversable by the postgres user when shopctl runs as root; holds no secrets.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o755))?;
        Ok(())
    }

    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    pub fn log(&self, component: &str) -> PathBuf {
        self.logs().join(format!("{component}.log"))
    }

    pub fn postgres_data(&self) -> PathBuf {
        self.root.join("postgres")
    }

    fn state_file(&self) -> PathBuf {
        self.root.join("state.json")
    }

    /// Takes the environment's lock without waiting; `None` when another process has it.
    pub fn try_lock(&self) -> anyhow::Result<Option<EnvironmentLock>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join("lock"))
            .with_context(|| format!("opening the lock in {}", self.root.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(EnvironmentLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(err)) => {
                Err(err).context("locking the state directory")
            }
        }
    }

    pub fn read(&self) -> anyhow::Result<Option<State>> {
        match std::fs::read_to_string(self.state_file()) {
            Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is damaged; remove it after checking nothing runs",
                    self.state_file().display()
                )
            })?)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err).context("reading the local state"),
        }
    }

    /// Replaces `state.json` atomically: readers never see half a file.
    pub fn write(&self, state: &State) -> anyhow::Result<()> {
        let temporary = self.root.join("state.json.tmp");
        std::fs::write(&temporary, serde_json::to_vec_pretty(state)?)?;
        std::fs::rename(&temporary, self.state_file())?;
        Ok(())
    }

    pub fn remove_state(&self) -> anyhow::Result<()> {
        match std::fs::remove_file(self.state_file()) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err.into()),
            _ => Ok(()),
        }
    }

    pub fn set_paused(&self, components: &[&str]) -> anyhow::Result<()> {
        let mut control = self.requests();
        control.paused = components.iter().map(|c| (*c).to_owned()).collect();
        self.write_control(&control)
    }

    /// Asks the supervisor to hand `component` over to a new process; the request's
    /// number, which [`StateDir::handover_outcome`] reports once it is carried out.
    pub fn request_handover(&self, component: &str) -> anyhow::Result<u64> {
        let mut control = self.requests();
        let number = control.handovers.entry(component.to_owned()).or_default();
        *number += 1;
        let number = *number;
        self.write_control(&control)?;
        Ok(number)
    }

    /// Asks the supervisor to switch the services to release `revision`; the request's
    /// number, reported under [`RELEASE_SWITCH`] once carried out.
    pub fn request_release(&self, revision: u32) -> anyhow::Result<u64> {
        let mut control = self.requests();
        let number = control.release.map_or(0, |r| r.number) + 1;
        control.release = Some(ReleaseRequest { number, revision });
        self.write_control(&control)?;
        Ok(number)
    }

    /// The last hand-over of `component` the supervisor carried out (`handovers.json`).
    pub fn handover_outcome(&self, component: &str) -> Option<HandoverOutcome> {
        self.handover_outcomes().remove(component)
    }

    /// Records how the supervisor carried out `component`'s latest hand-over request.
    pub fn record_handover(&self, component: &str, outcome: HandoverOutcome) -> anyhow::Result<()> {
        let mut outcomes = self.handover_outcomes();
        outcomes.insert(component.to_owned(), outcome);
        let temporary = self.root.join("handovers.json.tmp");
        std::fs::write(&temporary, serde_json::to_vec(&outcomes)?)?;
        std::fs::rename(&temporary, self.root.join("handovers.json"))?;
        Ok(())
    }

    fn handover_outcomes(&self) -> BTreeMap<String, HandoverOutcome> {
        std::fs::read(self.root.join("handovers.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// What the supervisor is asked to do (`control.json`).
    pub fn requests(&self) -> Control {
        std::fs::read(self.root.join("control.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Control>(&bytes).ok())
            .unwrap_or_default()
    }

    fn write_control(&self, control: &Control) -> anyhow::Result<()> {
        let temporary = self.root.join("control.json.tmp");
        std::fs::write(&temporary, serde_json::to_vec(control)?)?;
        std::fs::rename(&temporary, self.root.join("control.json"))?;
        Ok(())
    }

    /// Waits until each of `components` is in `wanted`, as the supervisor reports it (it
    /// acts on `control.json` within a fraction of a second; a start can take longer).
    pub fn wait_for(
        &self,
        components: &[&str],
        wanted: ComponentState,
        within: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let state = self
                .read()?
                .ok_or_else(|| anyhow::anyhow!("the local platform stopped"))?;
            let reached = components
                .iter()
                .all(|name| state.component(name).is_some_and(|c| c.state == wanted));
            if reached {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{} did not become {wanted:?} within {within:?}; see `shopctl status` and `shopctl logs <component>`",
                components.join(", ")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn exists(&self) -> bool {
        self.root.exists()
    }

    pub fn path(&self) -> &Path {
        &self.root
    }
}

/// Requests to the running supervisor.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Control {
    pub paused: BTreeSet<String>,
    /// Hand-overs asked for so far, by component: a counter, so a request is never lost
    /// to one made just before it.
    #[serde(default)]
    pub handovers: BTreeMap<String, u64>,
    /// The latest request to switch the services to another release.
    #[serde(default)]
    pub release: Option<ReleaseRequest>,
}

/// A request to hand every service over to release `revision`, numbered like hand-overs;
/// its outcome is recorded under [`RELEASE_SWITCH`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReleaseRequest {
    pub number: u64,
    pub revision: u32,
}

/// The name a release switch's outcome is recorded under, beside the services' hand-overs.
pub const RELEASE_SWITCH: &str = "release";

/// How the supervisor carried out a component's hand-over request `number`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoverOutcome {
    pub number: u64,
    /// Why the new process did not take over (the old one kept serving).
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub environment: String,
    /// The release the services run (see `release.rs`).
    #[serde(default)]
    pub revision: Option<u32>,
    pub supervisor: ProcessId,
    pub started_at: String,
    pub components: Vec<Component>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Component {
    pub name: String,
    /// `managed` when shopctl started it, `external` when given by URL.
    pub origin: String,
    pub state: ComponentState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Where to reach it (credentials never appear here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub restarts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ComponentState {
    Starting,
    Ready,
    Restarting,
    /// Stopped on purpose (a restore stops the writers) until resumed.
    Paused,
    Stopped,
    Disabled,
}

impl State {
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name == name)
    }

    pub fn component_mut(&mut self, name: &str) -> Option<&mut Component> {
        self.components.iter_mut().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_holder_of_the_lock_at_a_time() {
        let dir = StateDir {
            root: std::env::temp_dir().join(format!("shopctl-lock-{}", std::process::id())),
        };
        dir.create().unwrap();
        let first = dir.try_lock().unwrap();
        assert!(first.is_some());
        assert!(
            dir.try_lock().unwrap().is_none(),
            "a second holder is refused"
        );
        drop(first);
        assert!(dir.try_lock().unwrap().is_some(), "released on drop");
        std::fs::remove_dir_all(&dir.root).unwrap();
    }

    #[test]
    fn release_requests_are_numbered_and_leave_other_requests_alone() {
        let root = tempfile::tempdir().unwrap();
        let dir = StateDir {
            root: root.path().to_path_buf(),
        };
        dir.create().unwrap();
        dir.set_paused(&["backend"]).unwrap();
        assert_eq!(dir.request_handover("ml").unwrap(), 1);
        assert_eq!(dir.request_release(4).unwrap(), 1);
        assert_eq!(dir.request_release(2).unwrap(), 2);
        let control = dir.requests();
        assert_eq!(
            control.release,
            Some(ReleaseRequest {
                number: 2,
                revision: 2
            }),
            "the latest request replaces the one before"
        );
        assert_eq!(control.handovers["ml"], 1);
        assert!(control.paused.contains("backend"));
    }

    fn with_backend(dir: &StateDir, state: ComponentState) {
        let component = |name: &str, state| Component {
            name: name.into(),
            origin: "managed".into(),
            state,
            process: None,
            port: None,
            url: None,
            restarts: 0,
            log: None,
        };
        dir.write(&State {
            environment: "local".into(),
            revision: Some(1),
            supervisor: ProcessId::current(),
            started_at: String::new(),
            components: vec![
                component("ml", ComponentState::Ready),
                component("backend", state),
            ],
        })
        .unwrap();
    }

    /// Waiting for components: done when every one is there, a clear error naming them
    /// after the deadline, and an immediate one when the platform is gone.
    #[test]
    fn waiting_for_components_ends_when_all_arrive_or_says_which_did_not() {
        let dir = StateDir {
            root: std::env::temp_dir().join(format!("shopctl-wait-{}", std::process::id())),
        };
        dir.create().unwrap();
        let short = Duration::from_millis(300);
        with_backend(&dir, ComponentState::Ready);
        dir.wait_for(&["ml", "backend"], ComponentState::Ready, short)
            .unwrap();

        with_backend(&dir, ComponentState::Restarting);
        let err = dir
            .wait_for(&["ml", "backend"], ComponentState::Ready, short)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("ml, backend did not become Ready"), "{err}");

        dir.remove_state().unwrap();
        let err = dir
            .wait_for(&["backend"], ComponentState::Paused, short)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "the local platform stopped");
        std::fs::remove_dir_all(&dir.root).unwrap();
    }
}
