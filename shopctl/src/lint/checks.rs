//! The built-in checks. Each is a plain function from objects to violations, so a check
//! can be read (and tested with a failing and a passing fixture) on its own.

use std::collections::BTreeSet;

use serde_json::Value;

use super::paths;
use super::selectors::{Labels, labels_at, matches};
use super::{Check, Context, SUPPRESS_PREFIX, Severity, Violation};
use crate::manifest::{Manifest, containers, is_workload, pod_template};

pub static ALL: &[Check] = &[
    Check {
        id: "SM000",
        title: "suppressions carry a reason",
        severity: Severity::Error,
        hint: "write why the check does not apply as the annotation's value",
        run: suppression_reasons,
    },
    Check {
        id: "SM001",
        title: "resources set",
        severity: Severity::Error,
        hint: "set resources.requests.cpu, requests.memory and limits.memory on every container",
        run: resources_set,
    },
    Check {
        id: "SM002",
        title: "probes set",
        severity: Severity::Error,
        hint: "add readinessProbe and livenessProbe (and a startupProbe for slow starters)",
        run: probes_set,
    },
    Check {
        id: "SM003",
        title: "restricted security context",
        severity: Severity::Error,
        hint: "runAsNonRoot, seccompProfile RuntimeDefault, allowPrivilegeEscalation false, readOnlyRootFilesystem true, capabilities drop ALL",
        run: restricted_security,
    },
    Check {
        id: "SM004",
        title: "images pinned",
        severity: Severity::Error,
        hint: "use an immutable version tag or a digest, never `latest` or no tag",
        run: images_pinned,
    },
    Check {
        id: "SM005",
        title: "service selectors match workloads",
        severity: Severity::Error,
        hint: "make spec.selector match the pod template labels of a workload in the namespace",
        run: service_selectors,
    },
    Check {
        id: "SM006",
        title: "autoscaler targets are valid",
        severity: Severity::Error,
        hint: "point scaleTargetRef at a workload in the release whose containers set the requests the metrics use",
        run: hpa_targets,
    },
    Check {
        id: "SM007",
        title: "disruption budget for replicated workloads",
        severity: Severity::Error,
        hint: "add a PodDisruptionBudget (maxUnavailable: 1) selecting the workload's pods",
        run: pdb_present,
    },
    Check {
        id: "SM008",
        title: "replicas spread across nodes",
        severity: Severity::Error,
        hint: "add podAntiAffinity on kubernetes.io/hostname or topologySpreadConstraints",
        run: replicas_spread,
    },
    Check {
        id: "SM009",
        title: "default-deny network policy",
        severity: Severity::Error,
        hint: "add a NetworkPolicy with podSelector {} and policyTypes [Ingress, Egress] and no rules",
        run: default_deny,
    },
    Check {
        id: "SM010",
        title: "platform paths reachable",
        severity: Severity::Error,
        hint: "add the NetworkPolicy rule (on both the sending and the receiving side) for this path",
        run: paths::reachable,
    },
    Check {
        id: "SM011",
        title: "no secrets in config",
        severity: Severity::Error,
        hint: "move the value into a Secret and reference it with secretKeyRef",
        run: no_plain_secrets,
    },
    Check {
        id: "SM012",
        title: "ingress uses TLS",
        severity: Severity::Error,
        hint: "set ingress.tls_secret_name in the environment (required everywhere but local)",
        run: ingress_tls,
    },
    Check {
        id: "SM013",
        title: "storage encrypted",
        severity: Severity::Error,
        hint: "use a StorageClass with parameters.encrypted: \"true\" (EBS CSI) for every volume claim",
        run: storage_encrypted,
    },
    Check {
        id: "SM014",
        title: "namespace enforces restricted pod security",
        severity: Severity::Error,
        hint: "label the namespace pod-security.kubernetes.io/enforce: restricted",
        run: namespace_restricted,
    },
    Check {
        id: "SM015",
        title: "API token not mounted",
        severity: Severity::Warning,
        hint: "set automountServiceAccountToken: false unless the workload calls the Kubernetes API",
        run: token_not_mounted,
    },
    Check {
        id: "SM016",
        title: "only the platform's paths open",
        severity: Severity::Error,
        hint: "narrow the NetworkPolicy that admits it (on the receiving side, and the sender's egress) to the workloads that need the path",
        run: paths::only_needed_open,
    },
    Check {
        id: "SM017",
        title: "ipBlocks exclude pod addresses",
        severity: Severity::Error,
        hint: "narrow the ipBlock, or list the pod ranges (cluster.pod_cidrs) in its `except`: with the VPC CNI pods have VPC addresses, and an ipBlock admits them around every pod selector",
        run: paths::ip_blocks_exclude_pods,
    },
];

pub(super) fn violation(object: usize, message: impl Into<String>) -> Violation {
    Violation {
        object,
        message: message.into(),
    }
}

pub(super) fn workloads(objects: &[Manifest]) -> impl Iterator<Item = (usize, &Manifest)> {
    objects.iter().enumerate().filter(|(_, o)| is_workload(o))
}

pub(super) fn of_kind<'a>(
    objects: &'a [Manifest],
    kind: &'a str,
) -> impl Iterator<Item = (usize, &'a Manifest)> + 'a {
    objects
        .iter()
        .enumerate()
        .filter(move |(_, o)| o.kind() == kind)
}

fn long_running(object: &Manifest) -> bool {
    matches!(object.kind(), "Deployment" | "StatefulSet" | "DaemonSet")
}

pub(super) fn pod_labels(object: &Manifest) -> Labels {
    pod_template(object)
        .map(|t| labels_at(t, "/metadata/labels"))
        .unwrap_or_default()
}

fn pod_spec(object: &Manifest) -> Option<&Value> {
    pod_template(object).and_then(|t| t.get("spec"))
}

fn container_name(container: &Value) -> &str {
    container.get("name").and_then(Value::as_str).unwrap_or("?")
}

/// Replicas a workload runs with: `spec.replicas`, else the minimum of an HPA that
/// scales it, else Kubernetes' default of 1.
fn effective_replicas(objects: &[Manifest], workload: &Manifest) -> u64 {
    if let Some(replicas) = workload
        .value
        .pointer("/spec/replicas")
        .and_then(Value::as_u64)
    {
        return replicas;
    }
    of_kind(objects, "HorizontalPodAutoscaler")
        .filter(|(_, hpa)| hpa.namespace() == workload.namespace())
        .find(|(_, hpa)| {
            hpa.str_at("/spec/scaleTargetRef/kind") == workload.kind()
                && hpa.str_at("/spec/scaleTargetRef/name") == workload.name()
        })
        .and_then(|(_, hpa)| {
            hpa.value
                .pointer("/spec/minReplicas")
                .and_then(Value::as_u64)
        })
        .unwrap_or(1)
}

fn suppression_reasons(objects: &[Manifest], _: &Context) -> Vec<Violation> {
    let mut found = Vec::new();
    for (index, object) in objects.iter().enumerate() {
        let annotations = object
            .value
            .pointer("/metadata/annotations")
            .and_then(Value::as_object);
        for (key, value) in annotations.into_iter().flatten() {
            if let Some(check) = key.strip_prefix(SUPPRESS_PREFIX) {
                if value.as_str().is_none_or(|reason| reason.trim().is_empty()) {
                    found.push(violation(
                        index,
                        format!("suppresses {check} without a reason; the suppression is ignored"),
                    ));
                } else if !ALL.iter().any(|c| c.id == check) {
                    found.push(violation(
                        index,
                        format!("suppresses unknown check `{check}`"),
                    ));
                }
            }
        }
    }
    found
}

fn resources_set(objects: &[Manifest], _: &Context) -> Vec<Violation> {
    let mut found = Vec::new();
    for (index, object) in workloads(objects) {
        for container in containers(object) {
            let missing: Vec<&str> = [
                "/resources/requests/cpu",
                "/resources/requests/memory",
                "/resources/limits/memory",
            ]
            .into_iter()
            .filter(|pointer| container.pointer(pointer).is_none())
            .map(|pointer| pointer.trim_start_matches("/resources/"))
            .collect();
            if !missing.is_empty() {
                found.push(violation(
                    index,
                    format!(
                        "container `{}` lacks {}",
                        container_name(container),
                        missing.join(", ")
                    ),
                ));
            }
        }
    }
    found
}

fn probes_set(objects: &[Manifest], _: &Context) -> Vec<Violation> {
    let mut found = Vec::new();
    for (index, object) in workloads(objects).filter(|(_, o)| long_running(o)) {
        let spec = pod_spec(object);
        for container in spec
            .and_then(|s| s.get("containers"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let missing: Vec<&str> = ["readinessProbe", "livenessProbe"]
                .into_iter()
                .filter(|probe| container.get(*probe).is_none())
                .collect();
            if !missing.is_empty() {
                found.push(violation(
                    index,
                    format!(
                        "container `{}` has no {}",
                        container_name(container),
                        missing.join(" or ")
                    ),
                ));
            }
        }
    }
    found
}

fn restricted_security(objects: &[Manifest], _: &Context) -> Vec<Violation> {
    let mut found = Vec::new();
    for (index, object) in workloads(objects) {
        let Some(spec) = pod_spec(object) else {
            continue;
        };
        let pod_context = spec.get("securityContext");
        for field in ["hostNetwork", "hostPID", "hostIPC"] {
            if spec.get(field) == Some(&Value::Bool(true)) {
                found.push(violation(index, format!("pod sets {field}: true")));
            }
        }
        for container in containers(object) {
            let context = container.get("securityContext");
            let setting = |pointer: &str| {
                context
                    .and_then(|c| c.pointer(pointer))
                    .or_else(|| pod_context.and_then(|c| c.pointer(pointer)))
            };
            let mut problems = Vec::new();
            if setting("/runAsNonRoot") != Some(&Value::Bool(true)) {
                problems.push("runAsNonRoot is not true");
            }
            if !matches!(
                setting("/seccompProfile/type").and_then(Value::as_str),
                Some("RuntimeDefault" | "Localhost")
            ) {
                problems.push("seccompProfile is not RuntimeDefault");
            }
            let own = |pointer: &str| context.and_then(|c| c.pointer(pointer));
            if own("/allowPrivilegeEscalation") != Some(&Value::Bool(false)) {
                problems.push("allowPrivilegeEscalation is not false");
            }
            if own("/readOnlyRootFilesystem") != Some(&Value::Bool(true)) {
                problems.push("readOnlyRootFilesystem is not true");
            }
            if own("/privileged") == Some(&Value::Bool(true)) {
                problems.push("privileged");
            }
            let drops_all = own("/capabilities/drop")
                .and_then(Value::as_array)
                .is_some_and(|drop| drop.iter().any(|c| c.as_str() == Some("ALL")));
            if !drops_all {
                problems.push("capabilities do not drop ALL");
            }
            if own("/capabilities/add")
                .and_then(Value::as_array)
                .is_some_and(|add| !add.is_empty())
            {
                problems.push("adds capabilities");
            }
            if !problems.is_empty() {
                found.push(violation(
                    index,
                    format!(
                        "container `{}`: {}",
                        container_name(container),
                        problems.join(", ")
                    ),
                ));
            }
        }
    }
    found
}

fn images_pinned(objects: &[Manifest], _: &Context) -> Vec<Violation> {
    let mut found = Vec::new();
    for (index, object) in workloads(objects) {
        for container in containers(object) {
            let image = container
                .get("image")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if image.contains("@sha256:") {
                continue;
            }
            // The tag follows the last ':' after the last '/' (a registry port is not a tag).
            let last_segment = image.rsplit('/').next().unwrap_or(image);
            match last_segment.split_once(':') {
                None => found.push(violation(
                    index,
                    format!(
                        "container `{}` image `{image}` has no tag",
                        container_name(container)
                    ),
                )),
                Some((_, "latest")) => found.push(violation(
                    index,
                    format!(
                        "container `{}` image `{image}` uses `latest`",
                        container_name(container)
                    ),
                )),
                Some(_) => {}
            }
        }
    }
    found
}

fn service_selectors(objects: &[Manifest], _: &Context) -> Vec<Violation> {
    let mut found = Vec::new();
    for (index, service) in of_kind(objects, "Service") {
        let Some(selector) = service
            .value
            .pointer("/spec/selector")
            .and_then(Value::as_object)
        else {
            continue;
        };
        let wanted: Labels = selector
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect();
        let targets: Vec<&Manifest> = workloads(objects)
            .map(|(_, w)| w)
            .filter(|w| w.namespace() == service.namespace())
            .filter(|w| {
                let labels = pod_labels(w);
                wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
            })
            .collect();
        if targets.is_empty() {
            found.push(violation(index, "selects no workload's pods".to_owned()));
            continue;
        }
        for port in service
            .value
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let target = port.get("targetPort").or_else(|| port.get("port"));
            let served = targets
                .iter()
                .any(|w| containers(w).iter().any(|c| container_serves(c, target)));
            if !served {
                found.push(violation(
                    index,
                    format!(
                        "targetPort {} is not a port of the selected pods",
                        target.map(Value::to_string).unwrap_or_default()
                    ),
                ));
            }
        }
    }
    found
}

fn container_serves(container: &Value, target: Option<&Value>) -> bool {
    let ports = container.get("ports").and_then(Value::as_array);
    ports.into_iter().flatten().any(|port| match target {
        Some(Value::Number(n)) => port.get("containerPort").and_then(Value::as_u64) == n.as_u64(),
        Some(Value::String(name)) => {
            port.get("name").and_then(Value::as_str) == Some(name.as_str())
        }
        _ => false,
    })
}

fn hpa_targets(objects: &[Manifest], _: &Context) -> Vec<Violation> {
    let mut found = Vec::new();
    for (index, hpa) in of_kind(objects, "HorizontalPodAutoscaler") {
        let kind = hpa.str_at("/spec/scaleTargetRef/kind");
        let name = hpa.str_at("/spec/scaleTargetRef/name");
        let Some(target) = objects
            .iter()
            .find(|o| o.kind() == kind && o.name() == name && o.namespace() == hpa.namespace())
        else {
            found.push(violation(
                index,
                format!("targets {kind}/{name}, which is not in the release"),
            ));
            continue;
        };
        let metrics = hpa.value.pointer("/spec/metrics").and_then(Value::as_array);
        for metric in metrics.into_iter().flatten() {
            let Some(resource) = metric.pointer("/resource/name").and_then(Value::as_str) else {
                continue;
            };
            for container in containers(target) {
                if container
                    .pointer(&format!("/resources/requests/{resource}"))
                    .is_none()
                {
                    found.push(violation(index, format!(
                        "scales on {resource} but container `{}` of {kind}/{name} has no {resource} request",
                        container_name(container)
                    )));
                }
            }
        }
    }
    found
}

fn pdb_present(objects: &[Manifest], _: &Context) -> Vec<Violation> {
    let mut found = Vec::new();
    for (index, workload) in workloads(objects).filter(|(_, w)| long_running(w)) {
        let replicas = effective_replicas(objects, workload);
        if replicas < 2 {
            continue;
        }
        let labels = pod_labels(workload);
        let covered = of_kind(objects, "PodDisruptionBudget")
            .filter(|(_, pdb)| pdb.namespace() == workload.namespace())
            .any(|(_, pdb)| {
                pdb.value
                    .pointer("/spec/selector")
                    .is_some_and(|s| matches(s, &labels))
            });
        if !covered {
            found.push(violation(
                index,
                format!("runs {replicas} replicas without a PodDisruptionBudget"),
            ));
        }
    }
    found
}

fn replicas_spread(objects: &[Manifest], _: &Context) -> Vec<Violation> {
    let mut found = Vec::new();
    for (index, workload) in
        workloads(objects).filter(|(_, w)| long_running(w) && w.kind() != "DaemonSet")
    {
        let replicas = effective_replicas(objects, workload);
        if replicas < 2 {
            continue;
        }
        let spec = pod_spec(workload);
        let anti_affinity = spec
            .and_then(|s| s.pointer("/affinity/podAntiAffinity"))
            .is_some();
        let spread = spec
            .and_then(|s| s.get("topologySpreadConstraints"))
            .and_then(Value::as_array)
            .is_some_and(|c| !c.is_empty());
        if !anti_affinity && !spread {
            found.push(violation(
                index,
                format!("runs {replicas} replicas with nothing keeping them on different nodes"),
            ));
        }
    }
    found
}

fn default_deny(objects: &[Manifest], _: &Context) -> Vec<Violation> {
    let namespaces: BTreeSet<&str> = workloads(objects)
        .filter_map(|(_, w)| w.namespace())
        .collect();
    let mut found = Vec::new();
    for namespace in namespaces {
        let denied = of_kind(objects, "NetworkPolicy").any(|(_, policy)| {
            let spec = &policy.value["spec"];
            let all_pods = spec
                .get("podSelector")
                .is_some_and(|s| s.as_object().is_some_and(|m| m.is_empty()));
            let types: Vec<&str> = spec
                .get("policyTypes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let no_rules = |key: &str| {
                spec.get(key)
                    .and_then(Value::as_array)
                    .is_none_or(|rules| rules.is_empty())
            };
            policy.namespace() == Some(namespace)
                && all_pods
                && types.contains(&"Ingress")
                && types.contains(&"Egress")
                && no_rules("ingress")
                && no_rules("egress")
        });
        if !denied {
            let first = workloads(objects)
                .find(|(_, w)| w.namespace() == Some(namespace))
                .map_or(0, |(i, _)| i);
            found.push(violation(
                first,
                format!("namespace `{namespace}` has no default-deny NetworkPolicy"),
            ));
        }
    }
    found
}

/// Key names and values that look like credentials.
pub(crate) fn looks_secret(name: &str, value: &str) -> bool {
    let name = name.to_lowercase();
    let secret_name = [
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "private_key",
        "credentials",
        "signing_key",
    ]
    .iter()
    .any(|word| name.contains(word));
    let url_with_password = value.split_once("://").is_some_and(|(_, rest)| {
        rest.split('/').next().is_some_and(|authority| {
            authority.contains('@') && authority.split('@').next().is_some_and(|u| u.contains(':'))
        })
    });
    let pem = value.contains("-----BEGIN");
    let aws_key = value
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| {
            word.len() == 20
                && word.starts_with("AKIA")
                && word
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        });
    (secret_name && !value.is_empty()) || url_with_password || pem || aws_key
}

fn no_plain_secrets(objects: &[Manifest], _: &Context) -> Vec<Violation> {
    let mut found = Vec::new();
    for (index, config) in of_kind(objects, "ConfigMap") {
        for (key, value) in config
            .value
            .get("data")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if looks_secret(key, value.as_str().unwrap_or_default()) {
                found.push(violation(
                    index,
                    format!("data key `{key}` looks like a credential"),
                ));
            }
        }
    }
    for (index, workload) in workloads(objects) {
        for container in containers(workload) {
            for var in container
                .get("env")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = var.get("name").and_then(Value::as_str).unwrap_or_default();
                if let Some(value) = var.get("value").and_then(Value::as_str)
                    && looks_secret(name, value)
                {
                    found.push(violation(
                        index,
                        format!(
                            "container `{}` sets `{name}` as a literal",
                            container_name(container)
                        ),
                    ));
                }
            }
        }
    }
    found
}

fn ingress_tls(objects: &[Manifest], context: &Context) -> Vec<Violation> {
    if context.local {
        return Vec::new();
    }
    let mut found = Vec::new();
    for (index, ingress) in of_kind(objects, "Ingress") {
        let covered: BTreeSet<&str> = ingress
            .value
            .pointer("/spec/tls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|tls| tls.get("secretName").is_some())
            .flat_map(|tls| {
                tls.get("hosts")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
            })
            .collect();
        for rule in ingress
            .value
            .pointer("/spec/rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let host = rule.get("host").and_then(Value::as_str).unwrap_or("*");
            if !covered.contains(host) {
                found.push(violation(
                    index,
                    format!(
                        "host `{host}` is served without TLS in `{}`",
                        context.environment
                    ),
                ));
            }
        }
    }
    found
}

fn storage_encrypted(objects: &[Manifest], _: &Context) -> Vec<Violation> {
    let encrypted = |class: &Manifest| class.str_at("/parameters/encrypted") == "true";
    let mut found: Vec<Violation> = of_kind(objects, "StorageClass")
        .filter(|(_, class)| !encrypted(class))
        .map(|(index, class)| {
            violation(
                index,
                format!(
                    "provisioner `{}` is not asked to encrypt volumes",
                    class.str_at("/provisioner")
                ),
            )
        })
        .collect();
    let claim_class = |claim: &Value| {
        claim
            .pointer("/spec/storageClassName")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    for (index, object) in objects.iter().enumerate() {
        let mut claims: Vec<Option<String>> = match object.kind() {
            "StatefulSet" => object
                .value
                .pointer("/spec/volumeClaimTemplates")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(claim_class)
                .collect(),
            "PersistentVolumeClaim" => vec![claim_class(&object.value)],
            _ => Vec::new(),
        };
        // Generic ephemeral volumes are claims too, made per pod from the template.
        claims.extend(
            pod_spec(object)
                .and_then(|spec| spec.get("volumes"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|volume| volume.pointer("/ephemeral/volumeClaimTemplate"))
                .map(claim_class),
        );
        for class_name in claims {
            match class_name {
                None => found.push(violation(index, "claims a volume from the cluster's default StorageClass, which may not encrypt".to_owned())),
                Some(name) => {
                    let known = of_kind(objects, "StorageClass").any(|(_, c)| c.name() == name);
                    if !known {
                        found.push(violation(index, format!("claims StorageClass `{name}`, which is not in the release and cannot be checked")));
                    }
                }
            }
        }
    }
    found
}

fn namespace_restricted(objects: &[Manifest], _: &Context) -> Vec<Violation> {
    of_kind(objects, "Namespace")
        .filter(|(_, ns)| {
            ns.str_at("/metadata/labels/pod-security.kubernetes.io~1enforce") != "restricted"
        })
        .map(|(index, _)| {
            violation(
                index,
                "does not enforce the restricted Pod Security Standard",
            )
        })
        .collect()
}

fn token_not_mounted(objects: &[Manifest], _: &Context) -> Vec<Violation> {
    let mut found = Vec::new();
    for (index, workload) in workloads(objects) {
        let spec = pod_spec(workload);
        let pod_setting = spec
            .and_then(|s| s.get("automountServiceAccountToken"))
            .and_then(Value::as_bool);
        let account = spec
            .and_then(|s| s.get("serviceAccountName"))
            .and_then(Value::as_str)
            .unwrap_or("default");
        let account_setting = of_kind(objects, "ServiceAccount")
            .find(|(_, sa)| sa.name() == account && sa.namespace() == workload.namespace())
            .and_then(|(_, sa)| {
                sa.value
                    .get("automountServiceAccountToken")
                    .and_then(Value::as_bool)
            });
        if pod_setting.or(account_setting) != Some(false) {
            found.push(violation(
                index,
                format!("mounts a Kubernetes API token (service account `{account}`)"),
            ));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_recognised_by_name_and_shape() {
        assert!(looks_secret("DB_PASSWORD", "x"));
        assert!(looks_secret(
            "DATABASE_URL",
            "postgres://app:pw@db:5432/shop"
        ));
        // Built at run time so the source holds no credential-shaped literal for scanners.
        let pem_header = format!("-----BEGIN {} KEY-----", "PRIVATE");
        let access_key_id = format!("{}{}", "AKIA", "Z".repeat(16));
        assert!(looks_secret("KEY", &pem_header));
        assert!(looks_secret("AWS", &access_key_id));
        assert!(!looks_secret("BACKEND_URL", "http://backend:8080"));
        assert!(!looks_secret("REDIS_URL", "redis://redis:6379"));
        assert!(!looks_secret("PASSWORD_MIN_LENGTH", ""));
    }

    #[test]
    fn check_ids_are_unique_and_ordered() {
        let ids: Vec<&str> = ALL.iter().map(|c| c.id).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(ids, sorted);
    }
}
