//! Releases of the local target: the service binaries and the configuration `up` started
//! them with. Each distinct release is kept (binaries copied) under `releases/<revision>/`,
//! so `rollback` restarts exactly what ran before, like a cluster rollback restores the
//! previous ReplicaSets and ConfigMaps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::binaries::{SERVICES, binary_name};
use crate::env::Environment;
use crate::release::ReleaseStatus;

/// Releases kept; older ones (and their binaries) are deleted.
pub const KEEP: usize = 10;

/// A local release: the configuration and binaries `up` started.
pub type Release = crate::release::Release<Contents>;

/// What a local release runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(rename = "Local")]
pub struct Contents {
    /// Settings per service, from the environment values.
    pub config: BTreeMap<String, BTreeMap<String, String>>,
    /// SHA-256 of each service binary.
    pub binaries: BTreeMap<String, String>,
}

/// What `up` would run now.
pub struct Desired {
    pub config: BTreeMap<String, BTreeMap<String, String>>,
    pub binaries: BTreeMap<String, String>,
    pub source: PathBuf,
}

impl Desired {
    pub fn from(env: &Environment, binaries_dir: &Path) -> anyhow::Result<Self> {
        let common = BTreeMap::from([
            ("RUST_LOG".to_owned(), env.observability.log_level.clone()),
            (
                "ACCESS_LOG_SAMPLE".to_owned(),
                env.observability.access_log_sample.to_string(),
            ),
            (
                "SHUTDOWN_DEADLINE_MS".to_owned(),
                (u64::from(env.rollout.drain_seconds) * 1000).to_string(),
            ),
        ]);
        let config = SERVICES
            .iter()
            .map(|s| ((*s).to_owned(), common.clone()))
            .collect();
        let mut binaries = BTreeMap::new();
        for service in SERVICES {
            let path = binaries_dir.join(binary_name(service));
            binaries.insert(service.to_owned(), file_digest(&path)?);
        }
        Ok(Self {
            config,
            binaries,
            source: binaries_dir.to_path_buf(),
        })
    }

    pub fn digest(&self) -> String {
        digest_of(&self.config, &self.binaries)
    }
}

fn digest_of(
    config: &BTreeMap<String, BTreeMap<String, String>>,
    binaries: &BTreeMap<String, String>,
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(config).unwrap_or_default());
    hasher.update(serde_json::to_vec(binaries).unwrap_or_default());
    format!("{:x}", hasher.finalize())
}

fn file_digest(path: &Path) -> anyhow::Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(format!("{:x}", hasher.finalize()))
}

pub struct ReleaseStore {
    root: PathBuf,
}

impl ReleaseStore {
    pub fn new(state_root: &Path) -> Self {
        Self {
            root: state_root.join("releases"),
        }
    }

    /// Every release, oldest first.
    pub fn list(&self) -> anyhow::Result<Vec<Release>> {
        let mut releases = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Ok(releases);
        };
        for entry in entries.flatten() {
            let file = entry.path().join("release.json");
            if let Ok(text) = std::fs::read_to_string(&file) {
                releases.push(
                    serde_json::from_str::<Release>(&text)
                        .with_context(|| format!("{} is damaged", file.display()))?,
                );
            }
        }
        releases.sort_by_key(|r| r.revision);
        Ok(releases)
    }

    pub fn latest(&self) -> anyhow::Result<Option<Release>> {
        Ok(self.list()?.pop())
    }

    pub fn get(&self, revision: u32) -> anyhow::Result<Release> {
        let releases = self.list()?;
        let known: Vec<String> = releases.iter().map(|r| r.revision.to_string()).collect();
        releases
            .into_iter()
            .find(|r| r.revision == revision)
            .with_context(|| {
                if known.is_empty() {
                    "there is no release history yet; `shopctl up` creates the first release"
                        .to_owned()
                } else {
                    format!(
                        "no revision {revision}; known revisions: {}",
                        known.join(", ")
                    )
                }
            })
    }

    /// Where a release's binaries are.
    pub fn binaries(&self, revision: u32) -> PathBuf {
        self.root.join(revision.to_string()).join("bin")
    }

    /// The latest release if it is what `desired` describes, otherwise a new revision
    /// holding copies of the binaries.
    pub fn record(&self, desired: &Desired, cause: &str) -> anyhow::Result<(Release, bool)> {
        let _exclusive = self.lock()?;
        if let Some(latest) = self.latest()?
            && latest.digest == desired.digest()
        {
            return Ok((latest, false));
        }
        let release = self.create(
            desired.config.clone(),
            desired.binaries.clone(),
            &desired.source,
            cause,
        )?;
        Ok((release, true))
    }

    /// A new revision with the content of an earlier one (a rollback is recorded, not a
    /// rewrite of history).
    pub fn reapply(&self, revision: u32) -> anyhow::Result<Release> {
        let _exclusive = self.lock()?;
        let old = self.get(revision)?.contents;
        self.create(
            old.config,
            old.binaries,
            &self.binaries(revision),
            &format!("rollback to {revision}"),
        )
    }

    /// Two `up`s at once must not both write revision N: recording is serialised.
    fn lock(&self) -> anyhow::Result<std::fs::File> {
        std::fs::create_dir_all(&self.root)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join("lock"))?;
        file.lock().context("locking the release history")?;
        Ok(file)
    }

    fn create(
        &self,
        config: BTreeMap<String, BTreeMap<String, String>>,
        binaries: BTreeMap<String, String>,
        source: &Path,
        cause: &str,
    ) -> anyhow::Result<Release> {
        let revision = self.latest()?.map_or(1, |r| r.revision + 1);
        let dir = self.root.join(revision.to_string());
        std::fs::create_dir_all(dir.join("bin"))?;
        for service in SERVICES {
            let name = binary_name(service);
            std::fs::copy(source.join(&name), dir.join("bin").join(&name))
                .with_context(|| format!("keeping a copy of {name} for rollbacks"))?;
        }
        let release = Release {
            revision,
            applied_at: crate::release::now(),
            applied_by: crate::release::operator(),
            cause: cause.to_owned(),
            status: ReleaseStatus::Applied,
            digest: digest_of(&config, &binaries),
            contents: Contents { config, binaries },
        };
        self.write(&release)?;
        self.prune()?;
        Ok(release)
    }

    /// Records how a release ended up (`up` and `rollback` wait for readiness).
    pub fn set_status(&self, revision: u32, status: ReleaseStatus) -> anyhow::Result<()> {
        let _exclusive = self.lock()?;
        let mut release = self.get(revision)?;
        release.status = status;
        self.write(&release)
    }

    fn write(&self, release: &Release) -> anyhow::Result<()> {
        let file = self
            .root
            .join(release.revision.to_string())
            .join("release.json");
        std::fs::write(&file, serde_json::to_vec_pretty(release)?)
            .with_context(|| format!("writing {}", file.display()))
    }

    fn prune(&self) -> anyhow::Result<()> {
        let releases = self.list()?;
        for old in releases.iter().take(releases.len().saturating_sub(KEEP)) {
            std::fs::remove_dir_all(self.root.join(old.revision.to_string()))?;
        }
        Ok(())
    }
}
