//! A rendered Kubernetes object, kept as a JSON value so lint checks and output work on
//! exactly what will be applied.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The template (or file) the object came from, for error messages.
    pub source: String,
    pub value: Value,
}

/// Apply order: what others depend on first (namespaces and cluster-scoped objects,
/// identities, configuration), then workloads, then what points at workloads.
const KIND_ORDER: [&str; 18] = [
    "Namespace",
    "StorageClass",
    "ClusterRole",
    "ClusterRoleBinding",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "Service",
    "StatefulSet",
    "Deployment",
    "DaemonSet",
    "CronJob",
    "Job",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "Ingress",
    "NetworkPolicy",
];

impl Manifest {
    pub fn str_at(&self, pointer: &str) -> &str {
        self.value
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    pub fn kind(&self) -> &str {
        self.str_at("/kind")
    }

    pub fn name(&self) -> &str {
        self.str_at("/metadata/name")
    }

    pub fn namespace(&self) -> Option<&str> {
        self.value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
    }

    /// `Kind/namespace/name`, or `Kind/name` for cluster-scoped objects.
    pub fn id(&self) -> String {
        match self.namespace() {
            Some(namespace) => format!("{}/{}/{}", self.kind(), namespace, self.name()),
            None => format!("{}/{}", self.kind(), self.name()),
        }
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.value
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
    }

    /// Sort key giving the apply order, then a stable order within a kind.
    pub fn order_key(&self) -> (usize, String, String) {
        let rank = KIND_ORDER
            .iter()
            .position(|k| *k == self.kind())
            .unwrap_or(KIND_ORDER.len());
        (
            rank,
            self.namespace().unwrap_or_default().to_owned(),
            self.name().to_owned(),
        )
    }

    /// File name when rendering one file per object: `03-secret-database-credentials.yaml`.
    pub fn file_name(&self, index: usize) -> String {
        format!(
            "{index:02}-{}-{}.yaml",
            self.kind().to_lowercase(),
            self.name()
        )
    }

    pub fn to_yaml(&self) -> String {
        // Serialising a JSON value to YAML cannot fail: every value has a YAML form.
        serde_saphyr::to_string(&self.value).unwrap_or_default()
    }
}

/// One YAML stream, `---` between objects, in the given order.
pub fn to_stream(objects: &[Manifest]) -> String {
    objects
        .iter()
        .map(|object| format!("---\n{}", object.to_yaml()))
        .collect()
}

/// Parses a YAML stream (fixtures, `--file`), skipping empty documents.
pub fn parse_stream(source: &str, text: &str) -> Result<Vec<Manifest>, String> {
    let documents: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|err| err.to_string())?;
    Ok(documents
        .into_iter()
        .filter(|doc| !doc.is_null())
        .map(|value| Manifest {
            source: source.to_owned(),
            value,
        })
        .collect())
}

/// Pod spec and pod template labels of a workload, wherever its kind keeps them.
pub fn pod_template(object: &Manifest) -> Option<&Value> {
    match object.kind() {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            object.value.pointer("/spec/template")
        }
        "CronJob" => object.value.pointer("/spec/jobTemplate/spec/template"),
        "Pod" => Some(&object.value),
        _ => None,
    }
}

pub fn is_workload(object: &Manifest) -> bool {
    pod_template(object).is_some()
}

/// Containers and init containers of a workload's pod spec.
pub fn containers(object: &Manifest) -> Vec<&Value> {
    let Some(spec) = pod_template(object).and_then(|t| t.get("spec")) else {
        return Vec::new();
    };
    ["containers", "initContainers"]
        .iter()
        .filter_map(|field| spec.get(*field).and_then(Value::as_array))
        .flatten()
        .collect()
}
