//! The cluster base: the cluster-scoped objects a release relies on — its Namespaces, the
//! StorageClass, ClusterRoles and ClusterRoleBindings — and every RBAC object. Writing any
//! of them is a cluster administrator's power (a binding can grant anything), so the
//! identity that deploys releases is not given it: the base is applied by an administrator (`shopctl up`'s
//! infrastructure phase, or `shopctl apply --base`), and a release — every namespaced
//! object — by the deploy identity. Each base Namespace carries the digest of the base it
//! was applied with, so a deployer can tell whether the base its release needs is in place
//! by reading only the namespaces it deploys to.

use std::collections::BTreeSet;

use kube::api::Api;
use serde::Serialize;
use serde_json::Value;

use super::Cluster;
use super::access::{self, Permission};
use super::apply::{self, ApplyOptions, ObjectChange, Resources};
use super::release;

/// Annotation on each base Namespace: the digest of the base applied with it.
pub const DIGEST: &str = "shopmicro.io/cluster-base";

/// Splits rendered manifests into the base (cluster-scoped objects and RBAC) and the
/// release.
pub fn split(manifests: &[Value]) -> (Vec<Value>, Vec<Value>) {
    manifests.iter().cloned().partition(|m| {
        m["metadata"]["namespace"].as_str().is_none()
            || m["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("rbac.authorization.k8s.io/"))
    })
}

/// Equal digests mean the same base objects.
pub fn digest(base: &[Value]) -> String {
    release::digest(base)
}

/// The base as it is applied: every Namespace stamped with the digest.
pub fn stamped(base: &[Value]) -> Vec<Value> {
    let digest = digest(base);
    base.iter()
        .cloned()
        .map(|mut object| {
            if object["kind"] == "Namespace" {
                object["metadata"]["annotations"][DIGEST] = Value::String(digest.clone());
            }
            object
        })
        .collect()
}

/// Where the base stands for a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum BaseState {
    Current,
    /// A namespace the release deploys to does not exist.
    Missing {
        namespace: String,
    },
    /// The namespace was stamped by another base (or none).
    Outdated {
        namespace: String,
        installed: Option<String>,
    },
}

impl BaseState {
    pub fn describe(&self) -> String {
        match self {
            Self::Current => "current".into(),
            Self::Missing { namespace } => format!("namespace {namespace} does not exist"),
            Self::Outdated {
                namespace,
                installed: Some(installed),
            } => format!(
                "namespace {namespace} was set up by another version of the base ({:.12})",
                installed
            ),
            Self::Outdated { namespace, .. } => {
                format!("namespace {namespace} was not set up by `shopctl apply --base`")
            }
        }
    }
}

/// The namespaces a release writes to (the base's RBAC may live elsewhere).
pub fn namespaces(release: &[Value]) -> BTreeSet<String> {
    release
        .iter()
        .filter_map(|m| m["metadata"]["namespace"].as_str().map(str::to_string))
        .collect()
}

/// Reads each namespace of the release (a namespace-scoped grant may) and compares its
/// stamp with `wanted`; None only asks that they exist (a recorded release rolled back to).
pub async fn state(
    cluster: &Cluster,
    release: &[Value],
    wanted: Option<&str>,
) -> anyhow::Result<BaseState> {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(cluster.client.clone());
    for namespace in namespaces(release) {
        let Some(live) = api
            .get_opt(&namespace)
            .await
            .map_err(|err| cluster.explain(err))?
        else {
            return Ok(BaseState::Missing { namespace });
        };
        let installed = live
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DIGEST))
            .cloned();
        if let Some(wanted) = wanted
            && installed.as_deref() != Some(wanted)
        {
            return Ok(BaseState::Outdated {
                namespace,
                installed,
            });
        }
    }
    Ok(BaseState::Current)
}

/// The reads a base check makes.
pub fn needs_to_check(release: &[Value]) -> BTreeSet<Permission> {
    namespaces(release)
        .iter()
        .map(|ns| Permission::on_namespace("get", ns))
        .collect()
}

/// Applies the base (an administrator's job), asking first for every permission it needs.
pub async fn apply(
    cluster: &Cluster,
    base: &[Value],
    options: &ApplyOptions,
) -> anyhow::Result<Vec<ObjectChange>> {
    let stamped = stamped(base);
    let mut resources = Resources::new(cluster);
    let needs = apply::needs_to_plan(&mut resources, &stamped, &[]).await?;
    access::preflight(cluster, &needs).await?;
    // The base's namespaced RBAC may live in a Namespace the base itself declares.
    let declared: BTreeSet<String> = base
        .iter()
        .filter(|m| m["kind"] == "Namespace")
        .filter_map(|m| m["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    let plan = apply::plan(cluster, &mut resources, &stamped, &[], &declared, options).await?;
    if options.dry_run {
        return Ok(plan.changes);
    }
    apply::execute(cluster, &mut resources, plan, options).await
}

/// The permissions `apply` needs that the caller lacks.
pub async fn missing(cluster: &Cluster, base: &[Value]) -> anyhow::Result<Vec<Permission>> {
    let mut resources = Resources::new(cluster);
    let needs = apply::needs_to_plan(&mut resources, &stamped(base), &[]).await?;
    access::missing(cluster, &needs).await
}

/// The namespaces an apply of the base creates.
pub fn created_namespaces(changes: &[ObjectChange]) -> BTreeSet<String> {
    changes
        .iter()
        .filter(|c| c.change == apply::Change::Created)
        .filter_map(|c| c.id.strip_prefix("Namespace/").map(str::to_string))
        .collect()
}
