//! What validate checks: the local target (processes `shopctl up` started) or a cluster.
//! Checks ask the target, so one check serves both: a service's HTTP answer comes straight
//! from its port locally and through the API server's service proxy on a cluster. A check
//! that has no meaning for a target says so and is skipped.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

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

/// A service's answer to a GET.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

pub type ReplyFuture<'a> = Pin<Box<dyn Future<Output = Result<Reply, String>> + Send + 'a>>;

pub trait Target: Send + Sync {
    /// `local` or `cluster`.
    fn kind(&self) -> crate::reports::Target;
    /// Whether the environment runs `service`: `frontend`, `backend`, `ml`, `prometheus`,
    /// `loki` or `tempo`.
    fn runs(&self, service: &str) -> bool;
    /// GET `path` with `query` from `service`; the error says why it could not be reached.
    fn get<'a>(
        &'a self,
        service: &'a str,
        path: &'a str,
        query: &'a [(&'a str, &'a str)],
    ) -> ReplyFuture<'a>;
    /// Why the caller may not ask `service` (its permissions), if it may not: the checks
    /// that would skip, and access.permissions says so.
    fn denied(&self, _service: &str) -> Option<String> {
        None
    }
    fn components(&self) -> Vec<ComponentHealth>;
    /// (release running, newest release recorded).
    fn releases(&self) -> Option<(u32, u32)>;
    /// Where the environment's backups are kept.
    fn backups(&self) -> Option<BackupDir>;
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

    fn url(&self, service: &str) -> Option<&str> {
        self.state.component(service)?.url.as_deref()
    }
}

impl Target for LocalTarget {
    fn kind(&self) -> crate::reports::Target {
        crate::reports::Target::Local
    }

    fn runs(&self, service: &str) -> bool {
        self.url(service).is_some()
    }

    fn get<'a>(
        &'a self,
        service: &'a str,
        path: &'a str,
        query: &'a [(&'a str, &'a str)],
    ) -> ReplyFuture<'a> {
        Box::pin(async move {
            let base = self
                .url(service)
                .ok_or_else(|| format!("{service} is not part of this environment"))?;
            let response = self
                .http
                .get(format!("{base}{path}"))
                .query(query)
                .send()
                .await
                .map_err(|e| e.without_url().to_string())?;
            let status = response.status().as_u16();
            let body = response
                .text()
                .await
                .map_err(|e| e.without_url().to_string())?;
            Ok(Reply { status, body })
        })
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
