//! The release history, kept in the cluster like Helm keeps it: one Secret per revision in
//! the environment's namespace, holding who applied what and when, the images, a digest,
//! and the rendered manifests themselves (gzip-compressed), so a rollback can re-apply a
//! release exactly — ConfigMaps and Secrets included. Secrets, because the manifests
//! contain Secret values.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use anyhow::Context;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Cluster, FIELD_MANAGER, MANAGED_BY};

pub const RELEASE_OF: &str = "shopmicro.io/release-of";
const STATUS: &str = "shopmicro.io/release-status";
const SECRET_TYPE: &str = "shopmicro.io/release.v1";
const PAYLOAD: &str = "release";

pub use crate::release::ReleaseStatus;

/// One object a release contains, enough to find it again (for pruning).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    pub fn of(object: &Value) -> Self {
        Self {
            api_version: object["apiVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            kind: object["kind"].as_str().unwrap_or_default().to_string(),
            namespace: object["metadata"]["namespace"].as_str().map(str::to_string),
            name: object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        }
    }

    pub fn id(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{ns}/{}", self.kind, self.name),
            None => format!("{}/{}", self.kind, self.name),
        }
    }
}

/// A cluster release (everything but the manifests shows in `history`).
pub type Release = crate::release::Release<Contents>;

/// What a cluster release applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(rename = "Cluster")]
pub struct Contents {
    /// `Kind/name` → the images its pods run.
    pub images: BTreeMap<String, Vec<String>>,
    pub objects: Vec<ObjectRef>,
    /// How it was rolled out; releases recorded before strategies existed were rolling.
    #[serde(default)]
    pub strategy: super::progressive::Strategy,
    /// A canary release's steps, measurements and outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Box<super::progressive::canary::CanaryRecord>>,
    /// A blue/green release's preview checks, switch and retention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<Box<super::progressive::blue_green::BlueGreenRecord>>,
    #[serde(skip_serializing)]
    #[serde(default)]
    pub manifests: Vec<Value>,
}

impl Contents {
    /// A progressive release that was aborted (its canaries or previews ran, the release
    /// itself never did) or switched back from.
    pub fn never_ran(&self) -> bool {
        use super::progressive::blue_green::Phase;
        use super::progressive::canary::CanaryOutcome;
        self.canary
            .as_ref()
            .is_some_and(|c| c.outcome == CanaryOutcome::Aborted)
            || self
                .blue_green
                .as_ref()
                .is_some_and(|b| matches!(b.phase, Phase::Aborted | Phase::SwitchedBack))
    }

    /// Why a progressive release was aborted or switched back from.
    pub fn progressive_reason(&self) -> Option<&str> {
        self.canary
            .as_ref()
            .and_then(|c| c.reason.as_deref())
            .or_else(|| self.blue_green.as_ref().and_then(|b| b.reason.as_deref()))
    }
}

/// The stored form: the release with its manifests.
#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    release: Release,
    manifests: Vec<Value>,
}

/// A digest of the rendered manifests: equal digests mean an identical release.
pub fn digest(manifests: &[Value]) -> String {
    let mut hasher = Sha256::new();
    for manifest in manifests {
        hasher.update(manifest.to_string().as_bytes());
        hasher.update(b"\n");
    }
    format!("{:x}", hasher.finalize())
}

pub fn images(manifests: &[Value]) -> BTreeMap<String, Vec<String>> {
    let mut images = BTreeMap::new();
    for manifest in manifests {
        let spec = match manifest["kind"].as_str() {
            Some("Deployment" | "StatefulSet" | "DaemonSet") => {
                &manifest["spec"]["template"]["spec"]
            }
            Some("CronJob") => &manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"],
            _ => continue,
        };
        let list: Vec<String> = spec["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["image"].as_str().map(str::to_string))
            .collect();
        let key = format!(
            "{}/{}",
            manifest["kind"].as_str().unwrap_or(""),
            manifest["metadata"]["name"].as_str().unwrap_or("")
        );
        images.insert(key, list);
    }
    images
}

pub struct ReleaseStore<'a> {
    cluster: &'a Cluster,
    secrets: Api<Secret>,
    env: String,
    namespace: String,
}

impl<'a> ReleaseStore<'a> {
    pub fn new(cluster: &'a Cluster, namespace: &str, env: &str) -> Self {
        Self {
            cluster,
            secrets: Api::namespaced(cluster.client.clone(), namespace),
            env: env.to_string(),
            namespace: namespace.to_string(),
        }
    }

    fn secret_name(&self, revision: u32) -> String {
        format!("shopctl-release.{}.v{revision}", self.env)
    }

    /// Every kept release, oldest first.
    pub async fn list(&self) -> anyhow::Result<Vec<Release>> {
        let params = ListParams::default().labels(&format!("{RELEASE_OF}={}", self.env));
        let secrets = match self.secrets.list(&params).await {
            Ok(list) => list.items,
            // No namespace yet: no releases yet.
            Err(kube::Error::Api(status)) if status.code == 404 => Vec::new(),
            Err(err) => return Err(self.cluster.explain(err)),
        };
        let mut releases = secrets
            .iter()
            .map(decode)
            .collect::<anyhow::Result<Vec<Release>>>()?;
        releases.sort_by_key(|r| r.revision);
        Ok(releases)
    }

    pub async fn latest(&self) -> anyhow::Result<Option<Release>> {
        Ok(self.list().await?.pop())
    }

    pub async fn get(&self, revision: u32) -> anyhow::Result<Release> {
        let releases = self.list().await?;
        if releases.is_empty() {
            anyhow::bail!(
                "no releases are recorded for environment {} in namespace {}; `shopctl apply --env {}` creates the first",
                self.env,
                self.namespace,
                self.env
            );
        }
        let kept: Vec<String> = releases.iter().map(|r| r.revision.to_string()).collect();
        releases
            .into_iter()
            .find(|r| r.revision == revision)
            .with_context(|| {
                format!(
                    "release {revision} of {} is not in the history (kept: {}); `shopctl history --env {}` lists them",
                    self.env,
                    kept.join(", "),
                    self.env
                )
            })
    }

    /// Records a new release with the next free revision. Two applies at once both get a
    /// revision: creating the Secret is the lock, and the loser takes the next number.
    pub async fn record(&self, mut release: Release, keep: usize) -> anyhow::Result<Release> {
        for _ in 0..10 {
            let next = self.latest().await?.map_or(1, |r| r.revision + 1);
            release.revision = next;
            let secret = self.encode(&release)?;
            match self
                .secrets
                .create(
                    &PostParams {
                        field_manager: Some(FIELD_MANAGER.into()),
                        ..PostParams::default()
                    },
                    &secret,
                )
                .await
            {
                Ok(_) => {
                    self.prune(keep).await?;
                    return Ok(release);
                }
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(err) => return Err(self.cluster.explain(err)),
            }
        }
        anyhow::bail!(
            "could not record the release: other applies kept taking the next revision; retry"
        )
    }

    /// Sets annotation `key` on release `revision`'s record (e.g. the last runbook run).
    pub async fn annotate(&self, revision: u32, key: &str, value: &str) -> anyhow::Result<()> {
        let note = serde_json::json!({"metadata": {"annotations": {key: value}}});
        self.merge(revision, &note).await
    }

    pub async fn set_status(&self, revision: u32, status: ReleaseStatus) -> anyhow::Result<()> {
        self.update(revision, |release| release.status = status)
            .await
            .map(drop)
    }

    /// Changes release `revision`'s record with `change` and writes it back.
    pub async fn update(
        &self,
        revision: u32,
        change: impl FnOnce(&mut Release),
    ) -> anyhow::Result<Release> {
        let mut stored = self.get(revision).await?;
        change(&mut stored);
        let secret = self.encode(&stored)?;
        let patch = serde_json::json!({
            "metadata": {"labels": {STATUS: stored.status.label()}},
            "data": secret.data,
        });
        self.merge(revision, &patch).await?;
        Ok(stored)
    }

    /// Merge-patches release `revision`'s record.
    async fn merge(&self, revision: u32, patch: &serde_json::Value) -> anyhow::Result<()> {
        self.secrets
            .patch(
                &self.secret_name(revision),
                &PatchParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..PatchParams::default()
                },
                &Patch::Merge(patch),
            )
            .await
            .map_err(|err| self.cluster.explain(err))?;
        Ok(())
    }

    /// Keeps the newest `keep` releases.
    async fn prune(&self, keep: usize) -> anyhow::Result<()> {
        let releases = self.list().await?;
        let excess = releases.len().saturating_sub(keep.max(1));
        for release in releases.iter().take(excess) {
            match self
                .secrets
                .delete(
                    &self.secret_name(release.revision),
                    &DeleteParams::default(),
                )
                .await
            {
                Ok(_) => {}
                // A concurrent apply pruned it first.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(err) => return Err(self.cluster.explain(err)),
            }
        }
        Ok(())
    }

    fn encode(&self, release: &Release) -> anyhow::Result<Secret> {
        let stored = Stored {
            release: release.clone(),
            manifests: release.contents.manifests.clone(),
        };
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gzip.write_all(&serde_json::to_vec(&stored)?)?;
        let payload = gzip.finish()?;
        Ok(Secret {
            metadata: ObjectMeta {
                name: Some(self.secret_name(release.revision)),
                namespace: Some(self.namespace.clone()),
                labels: Some(BTreeMap::from([
                    (MANAGED_BY.to_string(), "shopctl".to_string()),
                    (RELEASE_OF.to_string(), self.env.clone()),
                    (
                        "shopmicro.io/revision".to_string(),
                        release.revision.to_string(),
                    ),
                    (STATUS.to_string(), release.status.label().to_string()),
                ])),
                ..ObjectMeta::default()
            },
            type_: Some(SECRET_TYPE.to_string()),
            data: Some(BTreeMap::from([(PAYLOAD.to_string(), ByteString(payload))])),
            ..Secret::default()
        })
    }
}

fn decode(secret: &Secret) -> anyhow::Result<Release> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let payload = secret
        .data
        .as_ref()
        .and_then(|d| d.get(PAYLOAD))
        .with_context(|| format!("release record {name} has no payload"))?;
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(payload.0.as_slice())
        .read_to_end(&mut json)
        .with_context(|| format!("release record {name} is not gzip"))?;
    let stored: Stored = serde_json::from_slice(&json)
        .with_context(|| format!("release record {name} is not a release"))?;
    let mut release = stored.release;
    release.contents.manifests = stored.manifests;
    Ok(release)
}
