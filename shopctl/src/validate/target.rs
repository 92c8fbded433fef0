//! What validate checks: the local target (processes `shopctl up` started) or a cluster.
//! Checks ask the target, so one check serves both; a check that has no meaning for a
//! target says so and is skipped.

use std::time::Duration;

use anyhow::Context;

use crate::backup::store::BackupDir;
use crate::local::release::ReleaseStore;
use crate::local::state::{ComponentState, State, StateDir};

/// One supervised or deployed component as validate sees it.
#[derive(Debug, Clone)]
pub struct ComponentHealth {
    pub name: String,
    pub ready: bool,
    pub restarts: u32,
    pub managed: bool,
}

pub trait Target: Send + Sync {
    /// `local` or `cluster`.
    fn kind(&self) -> &'static str;
    fn http(&self) -> &reqwest::Client;
    /// Base URL of `frontend`, `backend` or `ml`.
    fn service_url(&self, service: &str) -> Option<String>;
    fn prometheus_url(&self) -> Option<String>;
    fn components(&self) -> Vec<ComponentHealth>;
    /// (release running, newest release recorded).
    fn releases(&self) -> Option<(u32, u32)>;
    /// Where the environment's backups are kept.
    fn backups(&self) -> Option<BackupDir>;
    /// Why the services' HTTP endpoints cannot be reached from here, if they cannot.
    fn unreachable_services(&self) -> Option<&'static str> {
        None
    }
    /// The cluster objects, for a cluster target.
    fn cluster(&self) -> Option<&super::cluster::Snapshot> {
        None
    }
}

pub struct LocalTarget {
    state: State,
    root: std::path::PathBuf,
    latest_release: Option<u32>,
    http: reqwest::Client,
}

impl LocalTarget {
    /// The running local platform; an error (validate cannot run) when it is not up.
    pub fn load(dir: &StateDir) -> anyhow::Result<Self> {
        let state = dir
            .read()?
            .filter(|state| state.supervisor.is_alive())
            .context("the local platform is not running; `shopctl up` starts it")?;
        let latest_release = ReleaseStore::new(dir.path()).latest()?.map(|r| r.revision);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            state,
            root: dir.path().to_path_buf(),
            latest_release,
            http,
        })
    }
}

impl Target for LocalTarget {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn service_url(&self, service: &str) -> Option<String> {
        self.state.component(service)?.url.clone()
    }

    fn prometheus_url(&self) -> Option<String> {
        self.service_url("prometheus")
    }

    fn components(&self) -> Vec<ComponentHealth> {
        self.state
            .components
            .iter()
            .filter(|c| c.state != ComponentState::Disabled)
            .map(|c| ComponentHealth {
                name: c.name.clone(),
                // A recorded process must still be ours and running.
                ready: c.state == ComponentState::Ready && c.process.is_none_or(|p| p.is_alive()),
                restarts: c.restarts,
                managed: c.origin == "managed",
            })
            .collect()
    }

    fn releases(&self) -> Option<(u32, u32)> {
        Some((self.state.revision?, self.latest_release?))
    }

    fn backups(&self) -> Option<BackupDir> {
        Some(BackupDir::new(self.root.join("backups")))
    }
}
