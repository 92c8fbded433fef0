//! `down --env <cluster>`: the release uninstalled as `helm uninstall` does it — every
//! object of the newest release that is still shopctl's deleted, newest-applied first —
//! while the data stays: PostgreSQL's volume claims (a StatefulSet's claims outlive it, as
//! upstream's default retention says), the backups in the bucket, and the release history,
//! so the next `apply` starts from where the last one was and on-call can still read who
//! did what. `purge` also deletes the claims and the history. The cluster base (namespaces,
//! cluster-scoped objects) is the administrator's and stays.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::api::{Api, DeleteParams, ListParams};
use serde::Serialize;

use super::Cluster;
use super::access::{self, Permission};
use super::apply::{Resources, still_ours};
use super::release::{RELEASE_OF, ReleaseStore};

#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct Uninstalled {
    /// The release uninstalled.
    pub revision: u32,
    /// Objects deleted, as `Kind/namespace/name`.
    pub deleted: Vec<String>,
    /// Objects of the release another manager has taken over (no longer labelled as
    /// shopctl's): left alone.
    pub left_alone: Vec<String>,
    /// Volume claims kept (deleted with `purge`).
    pub claims_kept: Vec<String>,
    /// What `purge` deleted besides the release: claims and the release history.
    pub purged: Vec<String>,
}

pub async fn uninstall(
    cluster: &Cluster,
    namespace: &str,
    env: &str,
    purge: bool,
) -> anyhow::Result<Uninstalled> {
    let store = ReleaseStore::new(cluster, namespace, env);
    let release = store.latest().await?.ok_or_else(|| {
        anyhow::anyhow!(
            "no release of {env} is recorded in namespace {namespace}: nothing to uninstall"
        )
    })?;
    let mut resources = Resources::new(cluster);
    let ns = Some(namespace);
    let mut needs = BTreeSet::from([Permission::new("list", "", "persistentvolumeclaims", ns)]);
    for object in &release.contents.objects {
        needs.insert(resources.permission_for("get", object).await?);
        needs.insert(resources.permission_for("delete", object).await?);
    }
    if purge {
        needs.insert(Permission::new("delete", "", "persistentvolumeclaims", ns));
        needs.insert(Permission::new("delete", "", "secrets", ns));
    }
    // Everything asked first: a refusal halfway would leave half a platform.
    access::preflight(cluster, &needs).await?;

    let mut outcome = Uninstalled {
        revision: release.revision,
        ..Uninstalled::default()
    };
    for object in release.contents.objects.iter().rev() {
        if !still_ours(cluster, &mut resources, object).await? {
            outcome.left_alone.push(object.id());
            continue;
        }
        let api = resources
            .api(
                &object.api_version,
                &object.kind,
                object.namespace.as_deref(),
            )
            .await?;
        delete_ignoring_absent(cluster, &api, &object.name).await?;
        outcome.deleted.push(object.id());
    }

    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client.clone(), namespace);
    let instance =
        ListParams::default().labels(&format!("app.kubernetes.io/instance=shopmicro-{env}"));
    for claim in claims
        .list(&instance)
        .await
        .map_err(|err| cluster.explain(err))?
        .items
    {
        let name = claim.metadata.name.unwrap_or_default();
        let id = format!("PersistentVolumeClaim/{namespace}/{name}");
        if purge {
            delete_ignoring_absent(cluster, &claims, &name).await?;
            outcome.purged.push(id);
        } else {
            outcome.claims_kept.push(id);
        }
    }
    if purge {
        let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), namespace);
        let history = ListParams::default().labels(&format!("{RELEASE_OF}={env}"));
        for secret in secrets
            .list(&history)
            .await
            .map_err(|err| cluster.explain(err))?
            .items
        {
            let name = secret.metadata.name.unwrap_or_default();
            delete_ignoring_absent(cluster, &secrets, &name).await?;
            outcome.purged.push(format!("Secret/{namespace}/{name}"));
        }
    }
    Ok(outcome)
}

/// Deletes `name`; one already gone is what uninstalling wanted.
async fn delete_ignoring_absent<K>(
    cluster: &Cluster,
    api: &Api<K>,
    name: &str,
) -> anyhow::Result<()>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => Err(cluster.explain(err).context(format!("deleting {name}"))),
    }
}
