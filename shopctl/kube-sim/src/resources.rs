//! The API resources the simulator serves: enough for everything ShopMicro renders, the
//! objects controllers create (ReplicaSets, Pods, Events) and what `shopctl` reads.

/// One served resource type, as discovery describes it.
#[derive(Debug)]
pub struct ResourceType {
    /// API group; empty for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// The URL segment: `deployments`.
    pub plural: &'static str,
    pub namespaced: bool,
    /// Has a `status` subresource: writes to the main resource ignore `.status`, and
    /// `metadata.generation` is bumped on spec changes.
    pub status: bool,
    /// Has a `scale` subresource.
    pub scale: bool,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, as upstream error messages name a resource.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Kinds whose objects carry `metadata.generation` (those with a spec and status).
    pub fn has_generation(&self) -> bool {
        self.status
    }
}

const fn rt(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    status: bool,
    scale: bool,
) -> ResourceType {
    ResourceType {
        group,
        version,
        kind,
        plural,
        namespaced,
        status,
        scale,
    }
}

pub static RESOURCES: &[ResourceType] = &[
    rt("", "v1", "Namespace", "namespaces", false, true, false),
    rt("", "v1", "Node", "nodes", false, true, false),
    rt("", "v1", "ConfigMap", "configmaps", true, false, false),
    rt("", "v1", "Secret", "secrets", true, false, false),
    rt("", "v1", "Service", "services", true, true, false),
    rt(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        true,
        false,
        false,
    ),
    rt("", "v1", "Pod", "pods", true, true, false),
    rt("", "v1", "Event", "events", true, false, false),
    rt(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
        true,
        false,
    ),
    rt("apps", "v1", "Deployment", "deployments", true, true, true),
    rt("apps", "v1", "ReplicaSet", "replicasets", true, true, true),
    rt(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        true,
        true,
        true,
    ),
    rt("apps", "v1", "DaemonSet", "daemonsets", true, true, false),
    rt("batch", "v1", "Job", "jobs", true, true, false),
    rt("batch", "v1", "CronJob", "cronjobs", true, true, false),
    rt(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
        true,
        false,
    ),
    rt(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        true,
        false,
    ),
    rt(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
        false,
        false,
    ),
    rt(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        true,
        true,
        false,
    ),
    rt(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        false,
        false,
        false,
    ),
    rt(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        true,
        false,
        false,
    ),
    rt(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
        false,
        false,
    ),
    rt(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
        false,
        false,
    ),
    rt(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        false,
        false,
    ),
];

pub fn by_path(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

pub fn lookup(group: &str, kind: &str) -> &'static ResourceType {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.kind == kind)
        .unwrap_or_else(|| panic!("{group}/{kind} is not a served resource"))
}

/// Every group with its (single) served version, core first, as `/apis` lists them.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut groups: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !r.group.is_empty() && !groups.iter().any(|(g, _)| *g == r.group) {
            groups.push((r.group, r.version));
        }
    }
    groups
}
