//! `rollback --service`: one Deployment back to an earlier ReplicaSet's pod template, with
//! `kubectl rollout undo` semantics (default: the revision before the current one). The
//! change goes through server-side apply as `shopctl` with the rest of the Deployment as
//! the newest release has it, so the next `shopctl apply` owns the fields without a
//! conflict.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::Value;

use super::access::{self, Permission};
use super::release::ReleaseStore;
use super::{Cluster, FIELD_MANAGER};

const REVISION: &str = "deployment.kubernetes.io/revision";

fn revision_of(meta: &kube::api::ObjectMeta) -> Option<u32> {
    meta.annotations.as_ref()?.get(REVISION)?.parse().ok()
}

/// The revision rolled back to and the one that was current.
pub struct ServiceRollback {
    pub deployment: String,
    pub from: u32,
    pub to: u32,
}

pub async fn rollback_service(
    cluster: &Cluster,
    namespace: &str,
    env: &str,
    name: &str,
    to: Option<u32>,
) -> anyhow::Result<ServiceRollback> {
    let ns = Some(namespace);
    let needs = std::collections::BTreeSet::from([
        Permission::new("get", "apps", "deployments", ns),
        Permission::new("patch", "apps", "deployments", ns),
        Permission::new("list", "apps", "replicasets", ns),
        Permission::new("list", "", "secrets", ns),
        // The rollout wait that follows.
        Permission::new("watch", "apps", "deployments", ns),
        Permission::new("list", "", "events", ns),
    ]);
    access::preflight(cluster, &needs).await?;
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), namespace);
    let deployment = deployments
        .get_opt(name)
        .await
        .map_err(|err| cluster.explain(err))?
        .ok_or_else(|| anyhow::anyhow!("there is no Deployment {name} in namespace {namespace}; `shopctl status --env {env}` lists the workloads"))?;
    let current = revision_of(&deployment.metadata).unwrap_or(0);
    let uid = deployment.metadata.uid.clone().unwrap_or_default();
    let replica_sets: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), namespace);
    let mut history: Vec<(u32, ReplicaSet)> = replica_sets
        .list(&ListParams::default())
        .await
        .map_err(|err| cluster.explain(err))?
        .items
        .into_iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid)
        })
        .filter_map(|rs| revision_of(&rs.metadata).map(|r| (r, rs)))
        .collect();
    history.sort_by_key(|(r, _)| *r);
    let known = history
        .iter()
        .map(|(r, _)| r.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let (target, replica_set) = match to {
        Some(wanted) => history.into_iter().find(|(r, _)| *r == wanted).ok_or_else(|| {
            anyhow::anyhow!("Deployment {name} has no revision {wanted} (it has: {known})")
        })?,
        None => history.into_iter().rev().find(|(r, _)| *r < current).ok_or_else(|| {
            anyhow::anyhow!("Deployment {name} has no revision before {current} to roll back to (it has: {known})")
        })?,
    };
    anyhow::ensure!(
        target != current,
        "Deployment {name} is at revision {target} already"
    );

    let mut template = serde_json::to_value(
        replica_set
            .spec
            .and_then(|s| s.template)
            .unwrap_or_default(),
    )?;
    if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
        labels.remove("pod-template-hash");
    }
    let mut manifest = release_manifest(cluster, namespace, env, name).await?;
    manifest["spec"]["template"] = template;
    deployments
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&manifest),
        )
        .await
        .map_err(|err| cluster.explain(err))?;
    Ok(ServiceRollback {
        deployment: name.to_string(),
        from: current,
        to: target,
    })
}

/// The Deployment as the newest release applied it.
async fn release_manifest(
    cluster: &Cluster,
    namespace: &str,
    env: &str,
    name: &str,
) -> anyhow::Result<Value> {
    let latest = ReleaseStore::new(cluster, namespace, env).latest().await?.ok_or_else(|| {
        anyhow::anyhow!("no releases are recorded for environment {env}; shopctl rolls back only Deployments it applied")
    })?;
    latest
        .contents
        .manifests
        .into_iter()
        .find(|m| {
            m["kind"] == "Deployment"
                && m["metadata"]["name"] == name
                && m["metadata"]["namespace"] == namespace
        })
        .ok_or_else(|| {
            anyhow::anyhow!(
                "Deployment {name} is not part of release {} of {env}",
                latest.revision
            )
        })
}
