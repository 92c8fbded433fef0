//! Applying a set of manifests: server-side apply with the `shopctl` field manager, in the
//! order the manifests come in (namespaces and cluster-scoped objects first), after a
//! server-side dry run of every object so that an invalid or conflicting object stops the
//! apply before anything changed; then pruning what the previous release had and this one
//! does not, but only objects labelled as shopctl's.

use std::collections::{BTreeSet, HashMap};

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{self, Scope};
use serde::Serialize;
use serde_json::Value;

use super::release::ObjectRef;
use super::{Cluster, FIELD_MANAGER, MANAGED_BY};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Created,
    Configured,
    Unchanged,
    Pruned,
}

#[derive(Debug, Clone, Serialize)]
pub struct ObjectChange {
    pub id: String,
    pub change: Change,
    /// A unified diff of the live object against the applied one (dry runs only);
    /// Secret values are redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    pub dry_run: bool,
    /// Take fields other managers own (server-side apply `force`).
    pub force: bool,
}

/// Resolves kinds to API resources once per kind (discovery).
pub struct Resources<'a> {
    cluster: &'a Cluster,
    cache: HashMap<(String, String), (ApiResource, bool)>,
}

impl<'a> Resources<'a> {
    pub fn new(cluster: &'a Cluster) -> Self {
        Self {
            cluster,
            cache: HashMap::new(),
        }
    }

    pub async fn api(
        &mut self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> anyhow::Result<Api<DynamicObject>> {
        let key = (api_version.to_string(), kind.to_string());
        if !self.cache.contains_key(&key) {
            let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
            let gvk = GroupVersionKind::gvk(group, version, kind);
            let (resource, capabilities) = discovery::pinned_kind(&self.cluster.client, &gvk).await.map_err(|err| match err {
                kube::Error::Discovery(_) => anyhow::anyhow!("the cluster does not serve {kind} in {api_version}; is the cluster too old or the API not installed?"),
                other => self.cluster.explain(other),
            })?;
            self.cache.insert(
                key.clone(),
                (resource, capabilities.scope == Scope::Namespaced),
            );
        }
        let (resource, namespaced) = &self.cache[&key];
        let client = self.cluster.client.clone();
        Ok(match (namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(client, ns, resource),
            _ => Api::all_with(client, resource),
        })
    }

    pub async fn api_for(&mut self, object: &Value) -> anyhow::Result<Api<DynamicObject>> {
        self.api(
            object["apiVersion"].as_str().unwrap_or_default(),
            object["kind"].as_str().unwrap_or_default(),
            object["metadata"]["namespace"].as_str(),
        )
        .await
    }
}

fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

/// An object as people compare it: no bookkeeping, no status, Secret values hidden.
fn comparable(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(metadata) = object["metadata"].as_object_mut() {
        for field in [
            "managedFields",
            "resourceVersion",
            "generation",
            "uid",
            "creationTimestamp",
        ] {
            metadata.remove(field);
        }
        if metadata
            .get("annotations")
            .is_some_and(|a| a.as_object().is_some_and(|a| a.is_empty()))
        {
            metadata.remove("annotations");
        }
    }
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    if object["kind"] == "Secret" {
        for field in ["data", "stringData"] {
            if let Some(values) = object[field].as_object_mut() {
                for value in values.values_mut() {
                    // A digest shows that a value changed without showing the value.
                    let digest = sha2::Digest::finalize(
                        <sha2::Sha256 as sha2::Digest>::new_with_prefix(value.to_string()),
                    );
                    *value =
                        Value::String(format!("[redacted, sha256 {:.8}]", format!("{digest:x}")));
                }
            }
        }
    }
    object
}

fn diff(live: Option<&Value>, applied: &Value, id: &str) -> Option<String> {
    let before = live
        .map(|l| serde_json::to_string_pretty(&comparable(l)).unwrap_or_default())
        .unwrap_or_default();
    let after = serde_json::to_string_pretty(&comparable(applied)).unwrap_or_default();
    if before == after {
        return None;
    }
    let text = similar::TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(3)
        .header(&format!("live {id}"), &format!("applied {id}"))
        .to_string();
    Some(text)
}

fn patch_params(options: &ApplyOptions, dry_run: bool) -> PatchParams {
    PatchParams {
        dry_run,
        force: options.force,
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

/// Applies `manifests`; with `dry_run`, only asks the server what would change.
pub async fn apply(
    cluster: &Cluster,
    manifests: &[Value],
    previous: &[ObjectRef],
    options: &ApplyOptions,
) -> anyhow::Result<Vec<ObjectChange>> {
    let mut resources = Resources::new(cluster);
    let new_namespaces: BTreeSet<&str> = manifests
        .iter()
        .filter(|m| m["kind"] == "Namespace")
        .map(name_of)
        .collect();

    // Pass 1: a server-side dry run of everything. Validation errors and field conflicts
    // surface here, before any object is changed.
    let mut planned = Vec::new();
    // Each object as it was before this apply, read once here for pass 2.
    let mut lives = Vec::new();
    for manifest in manifests {
        let id = super::object_id(manifest);
        let api = resources.api_for(manifest).await?;
        let live = api
            .get_opt(name_of(manifest))
            .await
            .map_err(|err| cluster.explain(err))?;
        let live = live.map(|l| serde_json::to_value(l).unwrap_or_default());
        let namespace_is_new = manifest["metadata"]["namespace"]
            .as_str()
            .is_some_and(|ns| new_namespaces.contains(ns));
        let dry = match api
            .patch(
                name_of(manifest),
                &patch_params(options, true),
                &Patch::Apply(manifest),
            )
            .await
        {
            Ok(result) => serde_json::to_value(result)?,
            // The namespace this object goes into is created by this very apply.
            Err(kube::Error::Api(status))
                if status.code == 404 && namespace_is_new && live.is_none() =>
            {
                manifest.clone()
            }
            Err(kube::Error::Api(status)) if status.code == 409 && status.reason == "Conflict" => {
                anyhow::bail!(
                    "{id}: {}; another field manager owns these fields: reconcile the change or pass --force to take them over",
                    status.message
                );
            }
            Err(err) => {
                return Err(cluster.explain(err).context(format!(
                    "{id} was rejected by the cluster; nothing was changed"
                )));
            }
        };
        let change = match &live {
            None => Change::Created,
            Some(live) if comparable(live) == comparable(&dry) => Change::Unchanged,
            Some(_) => Change::Configured,
        };
        let diff = if options.dry_run && change != Change::Unchanged {
            diff(live.as_ref(), &dry, &id)
        } else {
            None
        };
        lives.push(live);
        planned.push(ObjectChange { id, change, diff });
    }

    // Pass 2: apply for real.
    if !options.dry_run {
        for ((manifest, planned), before) in manifests.iter().zip(&mut planned).zip(lives) {
            let api = resources.api_for(manifest).await?;
            let applied = api
                .patch(
                    name_of(manifest),
                    &patch_params(options, false),
                    &Patch::Apply(manifest),
                )
                .await
                .map_err(|err| {
                    cluster
                        .explain(err)
                        .context(format!("applying {}", planned.id))
                })?;
            // Compared as people compare objects: a controller's status write in between is
            // not a change this apply made.
            let applied = serde_json::to_value(applied)?;
            planned.change = match before {
                None => Change::Created,
                Some(live) if comparable(&live) == comparable(&applied) => Change::Unchanged,
                Some(_) => Change::Configured,
            };
        }
    }

    let current: BTreeSet<ObjectRef> = manifests.iter().map(ObjectRef::of).collect();
    for gone in previous.iter().filter(|o| !current.contains(o)) {
        if let Some(change) = prune(cluster, &mut resources, gone, options.dry_run).await? {
            planned.push(change);
        }
    }
    Ok(planned)
}

/// Deletes an object the previous release had, if it is still there and still ours.
async fn prune(
    cluster: &Cluster,
    resources: &mut Resources<'_>,
    gone: &ObjectRef,
    dry_run: bool,
) -> anyhow::Result<Option<ObjectChange>> {
    let api = resources
        .api(&gone.api_version, &gone.kind, gone.namespace.as_deref())
        .await?;
    let Some(live) = api
        .get_opt(&gone.name)
        .await
        .map_err(|err| cluster.explain(err))?
    else {
        return Ok(None);
    };
    let ours = live
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY))
        .is_some_and(|v| v == "shopctl");
    if !ours {
        tracing::warn!(
            "{} was in the previous release but is no longer labelled {MANAGED_BY}=shopctl; left alone",
            gone.id()
        );
        return Ok(None);
    }
    if !dry_run {
        match api.delete(&gone.name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(None),
            Err(err) => {
                return Err(cluster
                    .explain(err)
                    .context(format!("pruning {}", gone.id())));
            }
        }
    }
    Ok(Some(ObjectChange {
        id: gone.id(),
        change: Change::Pruned,
        diff: None,
    }))
}
