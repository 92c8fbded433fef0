//! Every operator verb against either target through one trait. `LocalPlatform` is the
//! processes `shopctl up` supervises on this machine; `ClusterPlatform` is an
//! environment's namespace on Kubernetes. A command opens the environment's platform once
//! and prints what it returns: what differs between the targets lives here, behind
//! `Platform`, and nowhere else.

pub mod cloud_up;
pub mod cluster;
pub mod local;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::backup::{Location, Manifest, Verification};
use crate::cluster::ClusterOptions;
use crate::cluster::logs::{LogEvent, LogOptions};
use crate::cluster::rollout::{ProgressCallback, WaitResult};
use crate::env::Environment;
use crate::reports::{History, Status, Target};
use crate::runbook::{RunOptions, RunOutcome, Runbook};
use crate::validate::cluster::DriftCheck;

pub use cluster::ClusterPlatform;
pub use local::LocalPlatform;

/// Not `Send`: a command drives one operation with one `block_on`, and the cluster calls
/// inside are not `Send`.
pub type PlatformFuture<'a, T> = Pin<Box<dyn Future<Output = anyhow::Result<T>> + 'a>>;

/// The services `restart` replaces, the same on both targets.
pub const RESTARTABLE: [&str; 3] = ["frontend", "backend", "ml"];

pub trait Platform {
    fn environment(&self) -> &Environment;
    fn target(&self) -> Target;

    /// What runs and whether it is ready.
    fn status(&self) -> PlatformFuture<'_, Status>;

    /// The releases, oldest first, and the one in effect.
    fn history(&self) -> PlatformFuture<'_, History>;

    /// Back to release `to` (default: the one before the release in effect), recorded as a
    /// new revision, and waits until it is ready or `within` has passed. A cluster keeps
    /// the newest `keep` releases.
    fn rollback(
        &self,
        to: Option<u32>,
        within: Duration,
        keep: usize,
    ) -> PlatformFuture<'_, Rollback>;

    /// One service back to an earlier revision of its own, as `kubectl rollout undo`
    /// does; the release history is unchanged. Clusters only: a local release is rolled
    /// back whole.
    fn rollback_service<'a>(
        &'a self,
        service: &'a str,
        to: Option<u32>,
        within: Duration,
    ) -> PlatformFuture<'a, ServiceRolledBack> {
        let _ = (to, within);
        Box::pin(async move {
            anyhow::bail!(
                "--service {service} rolls back one Deployment on a cluster; a local release is rolled back whole (drop --service)"
            )
        })
    }

    /// Replaces `service`'s processes (a rollout restart on a cluster) and waits until it
    /// is ready again or `within` has passed.
    fn restart<'a>(&'a self, service: &'a str, within: Duration) -> PlatformFuture<'a, WaitResult>;

    /// Hands `service`'s log lines to `sink` until done (or, following, interrupted).
    fn logs<'a>(
        &'a self,
        service: &'a str,
        options: &'a LogOptions,
        sink: &'a mut dyn FnMut(LogEvent),
    ) -> PlatformFuture<'a, ()>;

    /// Stops (locally) or uninstalls (on a cluster) the platform; the data stays unless
    /// `purge`. The caller has asked the operator first.
    fn down(&self, purge: bool) -> PlatformFuture<'_, Down>;

    /// Where the environment's backups are kept.
    fn backups(&self) -> PlatformFuture<'_, Location>;

    /// Takes a backup; on a cluster a Job, followed for up to `wait` when given.
    fn backup(&self, wait: Option<Duration>) -> PlatformFuture<'_, BackupTaken>;

    /// Restores backup `id` into a scratch database and compares it with its manifest.
    fn verify(&self, id: String, within: Duration) -> PlatformFuture<'_, Verified>;

    /// Replaces the environment's database with backup `id` (already checked), the
    /// writers stopped meanwhile and brought back whatever happens.
    fn restore<'a>(&'a self, id: &'a str, within: Duration) -> PlatformFuture<'a, Restored>;

    /// The target `validate` asks; on a cluster `drift` also plans its Terraform stack.
    fn checks(
        &self,
        drift: Option<DriftCheck>,
    ) -> PlatformFuture<'_, Box<dyn crate::validate::Target>>;

    /// Executes a runbook against this platform.
    fn run_runbook<'a>(
        &'a self,
        book: &'a Runbook,
        options: RunOptions,
    ) -> PlatformFuture<'a, RunOutcome>;

    /// Where runbook transcripts are written on this machine.
    fn transcripts(&self) -> PathBuf {
        crate::local::state::StateDir::resolve(&self.environment().name)
            .path()
            .join("transcripts")
    }
}

/// What the operator sees while a platform works. The library never prints: commands
/// draw rollouts as progress bars on a terminal and notes as lines.
#[derive(Clone)]
pub struct Observer {
    /// A workload's rollout moved (clusters).
    pub rollout: ProgressCallback,
    /// A step worth a line: "stopping the writers…", a component ready.
    pub note: Arc<dyn Fn(&str) + Send + Sync>,
}

impl Observer {
    /// Sees nothing (tests, and JSON-only callers).
    pub fn silent() -> Self {
        Self {
            rollout: Arc::new(|_, _| {}),
            note: Arc::new(|_| {}),
        }
    }

    fn note(&self, line: &str) {
        (self.note)(line);
    }
}

/// How to reach an environment's platform.
#[derive(Clone)]
pub struct Options {
    pub cluster: ClusterOptions,
    /// The command-line arguments that point another `shopctl` (a runbook action) at the
    /// same cluster.
    pub forwarded: Vec<String>,
    /// The templates directory the environment was loaded from, for the local supervisor.
    pub templates: Option<PathBuf>,
    pub observer: Observer,
}

/// The platform `environment` runs on. A cluster is connected to when first needed, so
/// verbs that only read the backup bucket work without cluster credentials.
pub fn open(environment: Environment, options: Options) -> Box<dyn Platform> {
    match Target::of(&environment) {
        Target::Local => Box::new(LocalPlatform::new(environment, options)),
        Target::Cluster => Box::new(ClusterPlatform::new(environment, options)),
    }
}

/// `shopctl rollback --output json`: the release rolled back to, as its target did it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Rollback {
    Local(LocalRollback),
    Cluster(crate::cluster::deploy::DeployReport),
}

impl Rollback {
    pub fn succeeded(&self) -> bool {
        match self {
            Rollback::Local(local) => local.ready,
            Rollback::Cluster(report) => !report.rollout_failed(),
        }
    }
}

/// A local rollback: the services handed over to an earlier release's binaries and
/// settings (or started with them when the platform was stopped).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LocalRollback {
    pub environment: String,
    /// The release whose contents run again.
    pub to: u32,
    /// The revision recording the rollback.
    pub revision: u32,
    /// Whether every component became ready.
    pub ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storefront: Option<String>,
    /// Why it did not become ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One Deployment rolled back, and its rollout.
#[derive(Debug, Clone)]
pub struct ServiceRolledBack {
    pub deployment: String,
    /// The Deployment revision that was current.
    pub from: u32,
    /// The revision whose template it runs now.
    pub to: u32,
    pub rollout: WaitResult,
}

/// `shopctl down --output json`: what stopping or uninstalling did.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Down {
    Local(LocalDown),
    Cluster(crate::cluster::uninstall::Uninstalled),
}

/// The local platform stopped.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LocalDown {
    pub environment: String,
    /// Whether anything was running (or left behind by a supervisor that died).
    pub stopped: bool,
    /// The state directory `purge` deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purged: Option<String>,
}

/// What `backup` achieved.
#[derive(Debug, Clone)]
pub enum BackupTaken {
    /// The backup, and where it is kept.
    Done {
        manifest: Box<Manifest>,
        location: String,
    },
    /// A Job was started and not followed (`--wait` follows it).
    Started { job: String },
    /// The backup did not happen; why, and where to look.
    Failed {
        reason: String,
        details: Vec<String>,
    },
}

/// What verifying a backup found.
#[derive(Debug, Clone)]
pub enum Verified {
    /// The verification recorded beside the backup (`ok` says whether it passed).
    Recorded {
        id: String,
        verification: Verification,
    },
    /// Nothing was recorded: why, and where to look.
    NotRecorded { id: String, reason: String },
}

/// How a restore ended.
#[derive(Debug, Clone)]
pub struct Restored {
    pub id: String,
    pub succeeded: bool,
    pub seconds: f64,
    /// What was checked (success) or what went wrong (failure).
    pub detail: String,
    pub warnings: Vec<String>,
}
