//! Checks of cluster objects, each a plain look at the snapshot the cluster target read.
//! On the local target they are skipped with the reason they do not apply.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::cluster::Snapshot;
use super::target::Target;
use super::{Check, CheckFuture, Verdict};

/// Runs a snapshot check on a cluster target; skips it elsewhere, saying why, and where
/// the caller may not read a kind it looks at (access.permissions fails for that: a check
/// must not report a missing object it was not allowed to see).
fn on_cluster<'a>(
    target: &'a dyn Target,
    local_reason: &'static str,
    reads: &'static [&'static str],
    check: fn(&Snapshot) -> Verdict,
) -> CheckFuture<'a> {
    Box::pin(async move {
        let Some(snapshot) = target.cluster() else {
            return Verdict::skipped(local_reason);
        };
        let unreadable: Vec<&str> = reads
            .iter()
            .copied()
            .filter(|kind| snapshot.unreadable(kind))
            .collect();
        if unreadable.is_empty() {
            check(snapshot)
        } else {
            Verdict::skipped(format!(
                "not allowed to list {}; see access.permissions",
                unreadable.join(", ")
            ))
        }
    })
}

macro_rules! cluster_check {
    ($id:literal, $category:literal, $local_reason:literal, $reads:expr, $check:expr) => {
        Check::new($id, $category, |t| {
            on_cluster(t, $local_reason, $reads, $check)
        })
    };
}

pub static ALL: &[Check] = &[
    cluster_check!(
        "access.cluster",
        "access",
        "the local target has no Kubernetes API",
        &[],
        reachable
    ),
    cluster_check!(
        "access.permissions",
        "access",
        "the local target has no Kubernetes API",
        &[],
        permissions
    ),
    cluster_check!(
        "workloads.namespaces",
        "workloads",
        "the local target has no namespaces",
        &["Namespace"],
        namespaces
    ),
    cluster_check!(
        "scaling.hpa",
        "scaling",
        "local processes are not autoscaled",
        &["HorizontalPodAutoscaler"],
        autoscalers
    ),
    cluster_check!(
        "scaling.pdb",
        "scaling",
        "disruption budgets are cluster objects",
        &["PodDisruptionBudget"],
        budgets
    ),
    cluster_check!(
        "scaling.spread",
        "scaling",
        "everything runs on this one machine",
        &["Node", "Deployment", "Pod"],
        spread
    ),
    cluster_check!(
        "security.default-deny",
        "security",
        "NetworkPolicies are cluster objects",
        &["NetworkPolicy"],
        default_deny
    ),
    cluster_check!(
        "security.secrets",
        "security",
        "Secrets are cluster objects; local services get settings from shopctl",
        &[
            "Secret",
            "Deployment",
            "StatefulSet",
            "DaemonSet",
            "CronJob"
        ],
        secrets
    ),
    cluster_check!(
        "security.config-literals",
        "security",
        "local configuration is not kept in ConfigMaps",
        &["ConfigMap"],
        config_literals
    ),
    cluster_check!(
        "security.storage-encrypted",
        "security",
        "local data lives in the state directory",
        &["StorageClass", "PersistentVolumeClaim"],
        storage_encrypted
    ),
    cluster_check!(
        "storage.volumes",
        "storage",
        "PersistentVolumeClaims are cluster objects",
        &["PersistentVolumeClaim"],
        volumes
    ),
    cluster_check!(
        "storage.backup-job",
        "storage",
        "the local target has no backup CronJob",
        &["CronJob", "Job"],
        backup_job
    ),
];

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

fn id(object: &Value) -> String {
    format!(
        "{}/{}/{}",
        text(&object["kind"]),
        text(&object["metadata"]["namespace"]),
        text(&object["metadata"]["name"])
    )
}

/// Pass when `problems` is empty, else fail listing them with `hint`.
fn verdict(problems: Vec<String>, passed: String, hint: &str) -> Verdict {
    if problems.is_empty() {
        Verdict::pass(passed)
    } else {
        Verdict::fail(problems.join("; "), hint)
    }
}

fn reachable(snapshot: &Snapshot) -> Verdict {
    Verdict::pass(format!("the API server at {} answered", snapshot.server))
}

fn permissions(snapshot: &Snapshot) -> Verdict {
    let lists = snapshot.forbidden_lists.iter().map(|(scope, kinds)| {
        let kinds: Vec<&str> = kinds.iter().copied().collect();
        // Namespaces are read one by one; everything else is listed.
        let verb = if kinds == ["Namespace"] {
            "get"
        } else {
            "list"
        };
        format!("may not {verb} {} {scope}", kinds.join(", "))
    });
    let who = snapshot
        .identity
        .as_ref()
        .map(|identity| format!("{identity} "))
        .unwrap_or_default();
    verdict(
        lists
            .chain(snapshot.forbidden.iter().cloned())
            .map(|problem| format!("{who}{problem}"))
            .collect(),
        "can read every kind validate looks at".into(),
        "ask a cluster administrator for read access (get, list) in the platform's namespaces",
    )
}

fn namespaces(snapshot: &Snapshot) -> Verdict {
    let problems = snapshot
        .namespaces
        .iter()
        .filter_map(|name| {
            match snapshot
                .of("Namespace")
                .iter()
                .find(|n| n["metadata"]["name"] == name.as_str())
            {
                None => Some(format!("namespace {name} is missing")),
                Some(ns)
                    if ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"].is_null() =>
                {
                    Some(format!(
                        "namespace {name} has no pod-security.kubernetes.io/enforce label"
                    ))
                }
                Some(_) => None,
            }
        })
        .collect();
    verdict(
        problems,
        format!(
            "{} namespaces present with Pod Security labels",
            snapshot.namespaces.len()
        ),
        "`shopctl apply` creates and labels them",
    )
}

fn autoscalers(snapshot: &Snapshot) -> Verdict {
    let hpas = snapshot.of("HorizontalPodAutoscaler");
    if hpas.is_empty() {
        return Verdict::fail(
            "no HorizontalPodAutoscaler",
            "the backend should autoscale; check `services.backend.autoscaling`",
        );
    }
    let mut problems = Vec::new();
    let mut not_reading = Vec::new();
    for hpa in hpas {
        let target = &hpa["spec"]["scaleTargetRef"];
        let namespace = text(&hpa["metadata"]["namespace"]);
        if snapshot
            .find(text(&target["kind"]), namespace, text(&target["name"]))
            .is_none()
        {
            problems.push(format!(
                "{} scales {} {}, which does not exist",
                id(hpa),
                text(&target["kind"]),
                text(&target["name"])
            ));
            continue;
        }
        let current = hpa["status"]["currentReplicas"].as_i64().unwrap_or(0);
        let (min, max) = (
            hpa["spec"]["minReplicas"].as_i64().unwrap_or(1),
            hpa["spec"]["maxReplicas"].as_i64().unwrap_or(0),
        );
        if current < min || current > max {
            problems.push(format!(
                "{} has {current} replicas, outside {min}..{max}",
                id(hpa)
            ));
        }
        let inactive = hpa["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "ScalingActive" && c["status"] == "False");
        if let Some(condition) = inactive {
            not_reading.push(format!(
                "{} is not reading metrics: {}",
                id(hpa),
                text(&condition["message"])
            ));
        }
    }
    if !problems.is_empty() {
        return Verdict::fail(
            problems.join("; "),
            "`kubectl describe hpa` shows the controller's view",
        );
    }
    if !not_reading.is_empty() {
        return Verdict::warn(
            not_reading.join("; "),
            "install or fix the metrics server (metrics.k8s.io)",
        );
    }
    Verdict::pass(format!(
        "{} autoscalers within bounds and reading metrics",
        hpas.len()
    ))
}

fn budgets(snapshot: &Snapshot) -> Verdict {
    let pdbs = snapshot.of("PodDisruptionBudget");
    let problems = pdbs
        .iter()
        .filter(|p| p["status"]["disruptionsAllowed"].as_i64().unwrap_or(0) < 1)
        .map(|p| {
            format!(
                "{} allows no disruption ({} healthy, {} needed)",
                id(p),
                p["status"]["currentHealthy"],
                p["status"]["desiredHealthy"]
            )
        })
        .collect();
    verdict(
        problems,
        format!(
            "{} disruption budgets each allow a voluntary disruption",
            pdbs.len()
        ),
        "a node drain would block: make more replicas ready first",
    )
}

fn spread(snapshot: &Snapshot) -> Verdict {
    let zones: BTreeMap<&str, &str> = snapshot
        .of("Node")
        .iter()
        .map(|n| {
            (
                text(&n["metadata"]["name"]),
                text(&n["metadata"]["labels"]["topology.kubernetes.io/zone"]),
            )
        })
        .collect();
    let mut problems = Vec::new();
    let mut checked = 0;
    for deployment in snapshot
        .of("Deployment")
        .iter()
        .filter(|d| d["spec"]["replicas"].as_i64().unwrap_or(1) > 1)
    {
        checked += 1;
        let namespace = text(&deployment["metadata"]["namespace"]);
        let prefix = format!("{}-", text(&deployment["metadata"]["name"]));
        let nodes: BTreeSet<&str> = snapshot
            .of("Pod")
            .iter()
            .filter(|p| {
                p["metadata"]["namespace"] == namespace
                    && text(&p["metadata"]["name"]).starts_with(&prefix)
            })
            .filter(|p| p["status"]["phase"] == "Running")
            .map(|p| text(&p["spec"]["nodeName"]))
            .collect();
        let used_zones: BTreeSet<&str> =
            nodes.iter().filter_map(|n| zones.get(n).copied()).collect();
        if nodes.len() < 2
            || used_zones.len() < 2.min(zones.values().collect::<BTreeSet<_>>().len())
        {
            problems.push(format!(
                "{} runs on {} node(s) in {} zone(s)",
                id(deployment),
                nodes.len(),
                used_zones.len()
            ));
        }
    }
    verdict(
        problems,
        format!("{checked} replicated workloads spread across nodes and zones"),
        "check the anti-affinity and topology spread constraints, and that the cluster has nodes in several zones",
    )
}

fn default_deny(snapshot: &Snapshot) -> Verdict {
    let problems = snapshot
        .namespaces
        .iter()
        .filter(|namespace| {
            !snapshot.of("NetworkPolicy").iter().any(|p| {
                p["metadata"]["namespace"] == namespace.as_str()
                    && p["spec"]["podSelector"]
                        .as_object()
                        .is_none_or(|s| s.is_empty())
                    && p["spec"]["policyTypes"]
                        .as_array()
                        .is_some_and(|t| t.iter().any(|t| t == "Ingress"))
                    && p["spec"]["ingress"].as_array().is_none_or(|i| i.is_empty())
            })
        })
        .map(|namespace| format!("namespace {namespace} has no default-deny NetworkPolicy"))
        .collect();
    verdict(
        problems,
        "every platform namespace denies traffic by default".into(),
        "`shopctl apply` restores the default-deny policies",
    )
}

/// Every Secret a pod template references (env, envFrom, volumes), with its keys.
fn referenced_secrets(workload: &Value) -> Vec<(String, Option<String>)> {
    let spec = if workload["kind"] == "CronJob" {
        &workload["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    } else {
        &workload["spec"]["template"]["spec"]
    };
    let mut found = Vec::new();
    for container in ["containers", "initContainers"]
        .iter()
        .flat_map(|f| spec[*f].as_array().cloned().unwrap_or_default())
    {
        for var in container["env"].as_array().into_iter().flatten() {
            let key_ref = &var["valueFrom"]["secretKeyRef"];
            if key_ref.is_object() && key_ref["optional"] != true {
                found.push((
                    text(&key_ref["name"]).to_string(),
                    Some(text(&key_ref["key"]).to_string()),
                ));
            }
        }
        for source in container["envFrom"].as_array().into_iter().flatten() {
            if source["secretRef"].is_object() && source["secretRef"]["optional"] != true {
                found.push((text(&source["secretRef"]["name"]).to_string(), None));
            }
        }
    }
    for volume in spec["volumes"].as_array().into_iter().flatten() {
        let secret = &volume["secret"];
        if secret.is_object() && secret["optional"] != true {
            let name = text(&secret["secretName"]).to_string();
            match secret["items"].as_array() {
                Some(items) => found.extend(
                    items
                        .iter()
                        .map(|i| (name.clone(), Some(text(&i["key"]).to_string()))),
                ),
                None => found.push((name, None)),
            }
        }
    }
    found
}

fn secrets(snapshot: &Snapshot) -> Verdict {
    let mut problems = BTreeSet::new();
    let mut references = 0;
    for workload in ["Deployment", "StatefulSet", "DaemonSet", "CronJob"]
        .iter()
        .flat_map(|k| snapshot.of(k))
    {
        let namespace = text(&workload["metadata"]["namespace"]);
        for (name, key) in referenced_secrets(workload) {
            references += 1;
            match (snapshot.find("Secret", namespace, &name), key) {
                (None, _) => {
                    problems.insert(format!(
                        "{} needs Secret {namespace}/{name}, which is missing",
                        id(workload)
                    ));
                }
                (Some(secret), Some(key))
                    if secret["data"].get(&key).is_none()
                        && secret["stringData"].get(&key).is_none() =>
                {
                    problems.insert(format!(
                        "{} needs key {key} of Secret {namespace}/{name}, which it lacks",
                        id(workload)
                    ));
                }
                _ => {}
            }
        }
    }
    verdict(
        problems.into_iter().collect(),
        format!("all {references} Secret references resolve"),
        "`shopctl apply` writes the platform's Secrets; for others, create them with the keys named",
    )
}

fn config_literals(snapshot: &Snapshot) -> Verdict {
    let problems = snapshot
        .of("ConfigMap")
        .iter()
        .flat_map(|cm| {
            cm["data"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(key, value)| crate::lint::looks_secret(key, text(value)))
                .map(move |(key, _)| format!("{} key {key} looks like a credential", id(cm)))
        })
        .collect();
    verdict(
        problems,
        "no credential-looking values in ConfigMaps".into(),
        "move the value into a Secret and reference it with secretKeyRef",
    )
}

fn storage_encrypted(snapshot: &Snapshot) -> Verdict {
    let classes: BTreeSet<&str> = snapshot
        .of("PersistentVolumeClaim")
        .iter()
        .map(|c| text(&c["spec"]["storageClassName"]))
        .collect();
    let problems = classes
        .iter()
        .filter_map(|class| {
            match snapshot
                .of("StorageClass")
                .iter()
                .find(|s| s["metadata"]["name"] == *class)
            {
                None => Some(format!(
                    "StorageClass {class} (used by a volume) does not exist"
                )),
                Some(s) if s["parameters"]["encrypted"] != "true" => Some(format!(
                    "StorageClass {class} does not set encrypted: \"true\""
                )),
                Some(_) => None,
            }
        })
        .collect();
    verdict(
        problems,
        format!("{} storage class(es) in use, all encrypted", classes.len()),
        "use the platform's encrypted StorageClass (`storage.class_name`)",
    )
}

fn volumes(snapshot: &Snapshot) -> Verdict {
    let claims = snapshot.of("PersistentVolumeClaim");
    let problems = claims
        .iter()
        .filter(|c| c["status"]["phase"] != "Bound")
        .map(|c| {
            format!(
                "{} is {}",
                id(c),
                c["status"]["phase"].as_str().unwrap_or("not bound")
            )
        })
        .collect();
    verdict(
        problems,
        format!("{} volumes bound", claims.len()),
        "`kubectl describe pvc` shows why; check the StorageClass and the CSI driver",
    )
}

/// How often a standard five-field schedule fires at most, in hours (daily when the hour
/// is fixed, hourly when it is not).
fn schedule_period_hours(schedule: &str) -> i64 {
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    match fields.as_slice() {
        [_, hour, ..] if hour.parse::<u32>().is_ok() => 24,
        _ => 1,
    }
}

fn backup_job(snapshot: &Snapshot) -> Verdict {
    let Some(cron) = snapshot
        .of("CronJob")
        .iter()
        .find(|c| c["metadata"]["name"] == "db-backup")
    else {
        return Verdict::fail(
            "the db-backup CronJob is missing",
            "`shopctl apply` creates it",
        );
    };
    // One missed run is tolerated: a backup is late when it is older than two periods.
    let allowed = chrono::Duration::hours(2 * schedule_period_hours(&snapshot.backup_schedule));
    let age_of = |field: &Value| {
        let at = chrono::DateTime::parse_from_rfc3339(field.as_str()?).ok()?;
        Some(chrono::Utc::now() - at.with_timezone(&chrono::Utc))
    };
    let Some(age) = age_of(&cron["status"]["lastSuccessfulTime"]) else {
        let hint = format!(
            "`shopctl backup --env <env> --wait` runs it now (schedule: {})",
            snapshot.backup_schedule
        );
        // A new environment has had no chance to back up yet.
        return match age_of(&cron["metadata"]["creationTimestamp"]) {
            Some(existed) if existed < allowed => {
                Verdict::warn("no backup yet: the db-backup CronJob is new", hint)
            }
            _ => Verdict::fail("the db-backup CronJob has never succeeded", hint),
        };
    };
    let detail = format!(
        "last successful backup {}h{:02}m ago (schedule {})",
        age.num_hours(),
        age.num_minutes() % 60,
        snapshot.backup_schedule
    );
    if age > allowed {
        Verdict::fail(
            detail,
            "backups are failing or not running: look at the db-backup Jobs and their events",
        )
    } else {
        Verdict::pass(detail)
    }
}
