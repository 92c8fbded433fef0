//! Applying a set of manifests in two steps. `plan` reads each object and asks the server
//! for a dry run of it (so an invalid or conflicting object stops the apply before
//! anything changed) and finds what the previous release had and this one does not, but
//! only objects still labelled as shopctl's. `execute` then server-side applies them with
//! the `shopctl` field manager, in the order the manifests come in, and prunes. Each step
//! says which permissions it needs, so callers can ask before acting.

use std::collections::{BTreeSet, HashMap};

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{self, Scope};
use serde::Serialize;
use serde_json::Value;

use super::access::Permission;
use super::release::ObjectRef;
use super::{Cluster, FIELD_MANAGER, MANAGED_BY};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Created,
    Configured,
    Unchanged,
    Pruned,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
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

    /// The permission to `verb` objects of a kind in `namespace` (ignored for
    /// cluster-scoped kinds).
    pub async fn permission(
        &mut self,
        verb: &str,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> anyhow::Result<Permission> {
        self.api(api_version, kind, namespace).await?;
        let (resource, namespaced) = &self.cache[&(api_version.to_string(), kind.to_string())];
        Ok(Permission::new(
            verb,
            &resource.group,
            &resource.plural,
            namespace.filter(|_| *namespaced),
        ))
    }

    /// The permission to `verb` one object (a Namespace is asked about as itself).
    pub async fn permission_for(
        &mut self,
        verb: &str,
        object: &ObjectRef,
    ) -> anyhow::Result<Permission> {
        if object.kind == "Namespace" {
            return Ok(Permission::on_namespace(verb, &object.name));
        }
        self.permission(
            verb,
            &object.api_version,
            &object.kind,
            object.namespace.as_deref(),
        )
        .await
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
/// A key for this run alone (from the operating system's randomness, through UUID v4).
static RUN_KEY: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    (0..2)
        .flat_map(|_| uuid::Uuid::new_v4().into_bytes())
        .collect()
});

/// Shows whether a Secret value changed without showing it: a keyed digest, equal for
/// equal values within one run. A plain digest could be checked against guessed values
/// offline (a short password, a known token format); this one cannot, once the run ends.
fn marker(value: &Value) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&RUN_KEY)
        .expect("HMAC takes a key of any length");
    mac.update(value.to_string().as_bytes());
    let digest = mac.finalize().into_bytes();
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("marker {hex}")
}

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
                    *value = Value::String(format!("[redacted, {}]", marker(value)));
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

/// What an apply will do, found without changing anything.
pub struct Plan {
    manifests: Vec<Value>,
    /// Per manifest, in order, then the prunes.
    pub changes: Vec<ObjectChange>,
    /// Each object as it was before, read once for `execute`.
    lives: Vec<Option<Value>>,
    /// Objects of the previous release that are gone from this one, still exist and are
    /// still labelled as shopctl's.
    pub prunes: Vec<ObjectRef>,
}

impl Plan {
    pub fn changes_anything(&self) -> bool {
        self.changes.iter().any(|c| c.change != Change::Unchanged)
    }
}

/// What `plan` needs: to read and (dry-run) patch every object, and to read the
/// previous release's objects this one drops.
pub async fn needs_to_plan(
    resources: &mut Resources<'_>,
    manifests: &[Value],
    previous: &[ObjectRef],
) -> anyhow::Result<BTreeSet<Permission>> {
    let mut needs = BTreeSet::new();
    for object in manifests.iter().map(ObjectRef::of) {
        needs.insert(resources.permission_for("get", &object).await?);
        needs.insert(resources.permission_for("patch", &object).await?);
    }
    for gone in dropped(manifests, previous) {
        needs.insert(resources.permission_for("get", gone).await?);
    }
    Ok(needs)
}

/// What `execute` needs beyond `plan`: deleting what it prunes.
pub async fn needs_to_execute(
    resources: &mut Resources<'_>,
    plan: &Plan,
) -> anyhow::Result<BTreeSet<Permission>> {
    let mut needs = BTreeSet::new();
    for gone in &plan.prunes {
        needs.insert(resources.permission_for("delete", gone).await?);
    }
    Ok(needs)
}

fn dropped<'p>(manifests: &[Value], previous: &'p [ObjectRef]) -> Vec<&'p ObjectRef> {
    let current: BTreeSet<ObjectRef> = manifests.iter().map(ObjectRef::of).collect();
    previous.iter().filter(|o| !current.contains(o)).collect()
}

/// A server-side dry run of every object (its diff against the live one when
/// `options.dry_run`), and the prunes. Changes nothing. `new_namespaces` are created
/// by the same change (a dry run of the cluster base just before), so objects in them
/// cannot be dry-run yet.
pub async fn plan(
    cluster: &Cluster,
    resources: &mut Resources<'_>,
    manifests: &[Value],
    previous: &[ObjectRef],
    new_namespaces: &BTreeSet<String>,
    options: &ApplyOptions,
) -> anyhow::Result<Plan> {
    let mut changes = Vec::new();
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
        changes.push(ObjectChange { id, change, diff });
    }
    let mut prunes = Vec::new();
    for gone in dropped(manifests, previous) {
        if still_ours(cluster, resources, gone).await? {
            changes.push(ObjectChange {
                id: gone.id(),
                change: Change::Pruned,
                diff: None,
            });
            prunes.push(gone.clone());
        }
    }
    Ok(Plan {
        manifests: manifests.to_vec(),
        changes,
        lives,
        prunes,
    })
}

/// Applies what `plan` planned, then prunes.
pub async fn execute(
    cluster: &Cluster,
    resources: &mut Resources<'_>,
    plan: Plan,
    options: &ApplyOptions,
) -> anyhow::Result<Vec<ObjectChange>> {
    let Plan {
        manifests,
        mut changes,
        lives,
        prunes,
    } = plan;
    for ((manifest, planned), before) in manifests.iter().zip(&mut changes).zip(lives) {
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
    for gone in &prunes {
        let api = resources
            .api(&gone.api_version, &gone.kind, gone.namespace.as_deref())
            .await?;
        match api.delete(&gone.name, &DeleteParams::background()).await {
            Ok(_) => {}
            // Someone deleted it in between: what pruning wanted.
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(err) => {
                return Err(cluster
                    .explain(err)
                    .context(format!("pruning {}", gone.id())));
            }
        }
    }
    Ok(changes)
}

/// Whether an object the previous release had is still there and still ours.
pub(crate) async fn still_ours(
    cluster: &Cluster,
    resources: &mut Resources<'_>,
    gone: &ObjectRef,
) -> anyhow::Result<bool> {
    let api = resources
        .api(&gone.api_version, &gone.kind, gone.namespace.as_deref())
        .await?;
    let Some(live) = api
        .get_opt(&gone.name)
        .await
        .map_err(|err| cluster.explain(err))?
    else {
        return Ok(false);
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
    }
    Ok(ours)
}

#[cfg(test)]
mod secret_markers {
    use super::*;

    #[test]
    fn a_changed_secret_shows_as_changed_and_no_marker_is_a_plain_digest_of_its_value() {
        let secret = |password: &str| {
            serde_json::json!({"kind": "Secret", "metadata": {"name": "db"},
                               "stringData": {"password": password}})
        };
        let shown =
            |password: &str| comparable(&secret(password))["stringData"]["password"].clone();
        assert_eq!(
            shown("hunter2"),
            shown("hunter2"),
            "equal values, equal markers"
        );
        assert_ne!(shown("hunter2"), shown("hunter3"), "a change shows");
        let plain = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(
            Value::String("hunter2".into()).to_string(),
        ));
        let plain: String = plain[..4].iter().map(|b| format!("{b:02x}")).collect();
        let text = shown("hunter2").to_string();
        assert!(
            !text.contains(&plain) && !text.contains("hunter2"),
            "{text}"
        );
    }
}
