//! What runs in an environment's namespaces: workloads and their rollout state, autoscalers,
//! disruption budgets, recent warning events and the current release.

use chrono::Utc;
use kube::api::{Api, DynamicObject, ListParams};
use serde::Serialize;
use serde_json::Value;

use super::Cluster;
use super::apply::Resources;
use super::release::ReleaseStore;
use super::rollout::{self, Progress};

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct WorkloadStatus {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub desired: i64,
    pub ready: i64,
    pub updated: i64,
    pub available: i64,
    pub images: Vec<String>,
    /// The Deployment revision (ReplicaSet generation of its pod template).
    pub revision: Option<String>,
    pub age: String,
    pub rollout: Progress,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AutoscalerStatus {
    pub namespace: String,
    pub name: String,
    pub target: String,
    pub current: i64,
    pub desired: i64,
    pub min: i64,
    pub max: i64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct BudgetStatus {
    pub namespace: String,
    pub name: String,
    pub current_healthy: i64,
    pub desired_healthy: i64,
    pub disruptions_allowed: i64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ReleaseSummary {
    pub revision: u32,
    pub status: super::release::ReleaseStatus,
    pub applied_at: String,
    pub applied_by: String,
    pub strategy: super::progressive::Strategy,
    /// A canary release's step, measurements and outcome; in progress until it is
    /// promoted or aborted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary: Option<Box<super::progressive::canary::CanaryRecord>>,
    /// A blue/green release's checks, switch and retention window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<Box<super::progressive::blue_green::BlueGreenRecord>>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct StatusReport {
    pub environment: String,
    pub server: String,
    pub release: Option<ReleaseSummary>,
    pub workloads: Vec<WorkloadStatus>,
    pub autoscalers: Vec<AutoscalerStatus>,
    pub budgets: Vec<BudgetStatus>,
    pub warnings: Vec<String>,
}

fn int(value: &Value) -> i64 {
    value.as_i64().unwrap_or(0)
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

/// "3d4h", "12m", "40s": ages as kubectl shows them.
pub fn age(created: &str) -> String {
    let Ok(created) = chrono::DateTime::parse_from_rfc3339(created) else {
        return "?".into();
    };
    let seconds = (Utc::now() - created.with_timezone(&Utc))
        .num_seconds()
        .max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

async fn list(
    cluster: &Cluster,
    resources: &mut Resources<'_>,
    api_version: &str,
    kind: &str,
    namespace: &str,
) -> anyhow::Result<Vec<Value>> {
    let api: Api<DynamicObject> = resources.api(api_version, kind, Some(namespace)).await?;
    let items = api
        .list(&ListParams::default())
        .await
        .map_err(|err| cluster.explain(err))?
        .items;
    Ok(items
        .into_iter()
        .map(|o| serde_json::to_value(o).unwrap_or_default())
        .collect())
}

pub async fn status(
    cluster: &Cluster,
    environment: &str,
    namespaces: &[String],
) -> anyhow::Result<StatusReport> {
    let mut resources = Resources::new(cluster);
    let mut report = StatusReport {
        environment: environment.to_string(),
        server: cluster.server.clone(),
        // The release that runs or is being rolled out: an aborted or switched-back
        // progressive release never ran.
        release: ReleaseStore::new(cluster, &namespaces[0], environment)
            .list()
            .await?
            .into_iter()
            .rfind(|r| !r.contents.never_ran())
            .map(|r| ReleaseSummary {
                revision: r.revision,
                status: r.status,
                applied_at: r.applied_at,
                applied_by: r.applied_by,
                strategy: r.contents.strategy,
                canary: r.contents.canary,
                blue_green: r.contents.blue_green,
            }),
        workloads: Vec::new(),
        autoscalers: Vec::new(),
        budgets: Vec::new(),
        warnings: Vec::new(),
    };
    for namespace in namespaces {
        for kind in ["Deployment", "StatefulSet", "DaemonSet"] {
            for object in list(cluster, &mut resources, "apps/v1", kind, namespace).await? {
                report.workloads.push(workload_status(&object));
            }
        }
        for hpa in list(
            cluster,
            &mut resources,
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            namespace,
        )
        .await?
        {
            report.autoscalers.push(AutoscalerStatus {
                namespace: namespace.clone(),
                name: text(&hpa["metadata"]["name"]),
                target: format!(
                    "{}/{}",
                    text(&hpa["spec"]["scaleTargetRef"]["kind"]),
                    text(&hpa["spec"]["scaleTargetRef"]["name"])
                ),
                current: int(&hpa["status"]["currentReplicas"]),
                desired: int(&hpa["status"]["desiredReplicas"]),
                min: hpa["spec"]["minReplicas"].as_i64().unwrap_or(1),
                max: int(&hpa["spec"]["maxReplicas"]),
            });
        }
        for pdb in list(
            cluster,
            &mut resources,
            "policy/v1",
            "PodDisruptionBudget",
            namespace,
        )
        .await?
        {
            report.budgets.push(BudgetStatus {
                namespace: namespace.clone(),
                name: text(&pdb["metadata"]["name"]),
                current_healthy: int(&pdb["status"]["currentHealthy"]),
                desired_healthy: int(&pdb["status"]["desiredHealthy"]),
                disruptions_allowed: int(&pdb["status"]["disruptionsAllowed"]),
            });
        }
        for workload in report
            .workloads
            .iter()
            .filter(|w| w.namespace == *namespace && !matches!(w.rollout, Progress::Ready))
        {
            let id = rollout::Workload {
                api_version: "apps/v1".into(),
                kind: workload.kind.clone(),
                namespace: namespace.clone(),
                name: workload.name.clone(),
            };
            report
                .warnings
                .extend(rollout::recent_warnings(cluster, &id, 5).await);
        }
    }
    Ok(report)
}

fn workload_status(object: &Value) -> WorkloadStatus {
    let status = &object["status"];
    let kind = text(&object["kind"]);
    let (desired, ready, updated, available) = match kind.as_str() {
        "DaemonSet" => (
            int(&status["desiredNumberScheduled"]),
            int(&status["numberReady"]),
            int(&status["updatedNumberScheduled"]),
            int(&status["numberAvailable"]),
        ),
        _ => (
            object["spec"]["replicas"].as_i64().unwrap_or(1),
            int(&status["readyReplicas"]),
            int(&status["updatedReplicas"]),
            int(&status["availableReplicas"]),
        ),
    };
    WorkloadStatus {
        namespace: text(&object["metadata"]["namespace"]),
        name: text(&object["metadata"]["name"]),
        desired,
        ready,
        updated,
        available,
        images: object["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| text(&c["image"]))
            .collect(),
        revision: object["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
            .as_str()
            .map(str::to_string),
        age: age(object["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap_or_default()),
        rollout: rollout::judge(object),
        kind,
    }
}
