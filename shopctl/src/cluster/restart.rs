//! `restart <service>` on a cluster, as `kubectl rollout restart` does it: the pod
//! template's `kubectl.kubernetes.io/restartedAt` annotation set to now, so the Deployment
//! replaces its pods under its own strategy (the platform's keeps every replica serving
//! until its replacement is ready). The caller then waits as for any rollout.

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::Cluster;
use super::access::{self, Permission};
use super::rollout::Workload;

/// The annotation `kubectl rollout restart` sets; the same one, so either tool's restart
/// reads alike in the Deployment's history.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// The field manager of the annotation: not `shopctl`'s applies, so a later apply (which
/// does not name it) neither conflicts with it nor removes it, as with kubectl's.
const MANAGER: &str = "shopctl-restart";

/// Restarts Deployment `service` in `namespace`; the workload to wait for.
pub async fn restart(
    cluster: &Cluster,
    namespace: &str,
    env: &str,
    service: &str,
) -> anyhow::Result<Workload> {
    let ns = Some(namespace);
    let needs = std::collections::BTreeSet::from([
        Permission::new("get", "apps", "deployments", ns),
        Permission::new("patch", "apps", "deployments", ns),
        // The rollout wait that follows.
        Permission::new("watch", "apps", "deployments", ns),
        Permission::new("list", "", "events", ns),
    ]);
    access::preflight(cluster, &needs).await?;
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), namespace);
    deployments
        .get_opt(service)
        .await
        .map_err(|err| cluster.explain(err))?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "there is no Deployment {service} in namespace {namespace}; `shopctl status --env {env}` lists the workloads"
            )
        })?;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}});
    deployments
        .patch(
            service,
            &PatchParams {
                field_manager: Some(MANAGER.into()),
                ..PatchParams::default()
            },
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|err| cluster.explain(err))?;
    Ok(Workload {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: namespace.to_owned(),
        name: service.to_owned(),
    })
}
