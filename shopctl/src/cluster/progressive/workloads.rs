//! What a progressive release runs: which service Deployments it changes (and whether it
//! may go out progressively at all), and their twins — the new version of each as
//! `backend-canary` or `backend-preview`, beside the stable Deployment. A twin's selector
//! adds its `shopmicro.io/track`, so it never adopts a stable pod; the stable Deployment's
//! selector (immutable) still matches twin pods, but controllers only manage the pods and
//! ReplicaSets they own, so it leaves them alone. The Service selects every track, so a
//! canary's share of the traffic is its share of the ready pods (a replica ratio); a
//! preview gets its own Service, selecting only its track.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::cluster::release::ObjectRef;

pub const TRACK: &str = "shopmicro.io/track";
/// On a canary or preview Deployment: the stable Deployment it stands beside.
pub const TWIN_OF: &str = "shopmicro.io/twin-of";
/// On a canary or preview Deployment: the release revision it belongs to.
pub const TWIN_REVISION: &str = "shopmicro.io/twin-revision";

/// A service Deployment: its pods serve the stable track.
fn is_service_deployment(object: &Value) -> bool {
    object["kind"] == "Deployment"
        && object["spec"]["template"]["metadata"]["labels"][TRACK] == "stable"
}

/// Why a release cannot go out as a canary or blue/green.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum NotProgressive {
    #[error(
        "this release changes {}, which the services' pods read; canary or preview pods would \
         run with the old values and be judged on them — apply it without --strategy (a rolling \
         update), or release the configuration and the code separately",
        .0.join(", ")
    )]
    ChangesWhatServicesRead(Vec<String>),
    #[error(
        "this release changes no service Deployment, so there is nothing to judge; apply it \
         without --strategy"
    )]
    NoServiceChanged,
}

/// What a progressive release does: the service Deployments it changes, judged as twins,
/// and the other objects it changes, applied only at promotion (or when a blue/green
/// release is finalized) and never judged.
#[derive(Debug, PartialEq)]
pub struct Split {
    pub services: Vec<Value>,
    pub unjudged: Vec<String>,
}

/// The ConfigMaps and Secrets a pod template reads (environment, envFrom and volumes).
fn reads(deployment: &Value) -> BTreeSet<(String, String)> {
    let spec = &deployment["spec"]["template"]["spec"];
    let mut read = BTreeSet::new();
    let mut add = |kind: &str, name: &Value| {
        if let Some(name) = name.as_str() {
            read.insert((kind.to_string(), name.to_string()));
        }
    };
    let containers = ["containers", "initContainers"]
        .iter()
        .flat_map(|key| spec[*key].as_array().into_iter().flatten());
    for container in containers {
        for from in container["envFrom"].as_array().into_iter().flatten() {
            add("ConfigMap", &from["configMapRef"]["name"]);
            add("Secret", &from["secretRef"]["name"]);
        }
        for var in container["env"].as_array().into_iter().flatten() {
            add("ConfigMap", &var["valueFrom"]["configMapKeyRef"]["name"]);
            add("Secret", &var["valueFrom"]["secretKeyRef"]["name"]);
        }
    }
    for volume in spec["volumes"].as_array().into_iter().flatten() {
        add("ConfigMap", &volume["configMap"]["name"]);
        add("Secret", &volume["secret"]["secretName"]);
    }
    read
}

/// What a pod reads from a ConfigMap or Secret: its values, not its labels (which carry the
/// release's version and change with every tag).
fn values(object: Option<&Value>) -> Option<[&Value; 3]> {
    object.map(|o| [&o["data"], &o["binaryData"], &o["stringData"]])
}

/// Splits `release` against `stable`: refused when it changes no service Deployment, or
/// changes a ConfigMap or Secret a service reads.
pub fn split(release: &[Value], stable: &[Value]) -> Result<Split, NotProgressive> {
    let index = |objects: &[Value]| -> BTreeMap<ObjectRef, Value> {
        objects
            .iter()
            .map(|o| (ObjectRef::of(o), o.clone()))
            .collect()
    };
    let (new, old) = (index(release), index(stable));
    let read: BTreeSet<(String, String)> = release
        .iter()
        .filter(|o| is_service_deployment(o))
        .flat_map(reads)
        .collect();
    let mut services = Vec::new();
    let mut unjudged = Vec::new();
    let mut refused = Vec::new();
    let changed = new
        .iter()
        .filter(|(id, object)| old.get(*id) != Some(*object))
        .map(|(id, _)| id)
        .chain(old.keys().filter(|id| !new.contains_key(*id)));
    for id in changed {
        let read_by_services = read.contains(&(id.kind.clone(), id.name.clone()));
        match (old.get(id), new.get(id)) {
            (Some(_), Some(object)) if is_service_deployment(object) => {
                services.push(object.clone())
            }
            (before, after) if read_by_services && values(before) != values(after) => {
                refused.push(id.id())
            }
            _ => unjudged.push(id.id()),
        }
    }
    if !refused.is_empty() {
        return Err(NotProgressive::ChangesWhatServicesRead(refused));
    }
    if services.is_empty() {
        return Err(NotProgressive::NoServiceChanged);
    }
    Ok(Split { services, unjudged })
}

/// The name of `deployment`'s twin on `track`: `backend-canary`, `backend-preview`.
pub fn twin_name(deployment: &str, track: &str) -> String {
    format!("{deployment}-{track}")
}

/// How many canary pods stand for `weight` percent of `stable` pods: at least one.
pub fn canary_replicas(stable: i64, weight: u32) -> i64 {
    ((stable.max(1) * i64::from(weight)) as f64 / 100.0)
        .ceil()
        .max(1.0) as i64
}

/// The twin of service Deployment `deployment` on `track` (canary or preview), with
/// `replicas` pods: its own name and selector, the same pod template otherwise.
pub fn twin(deployment: &Value, track: &str, revision: u32, replicas: i64) -> Value {
    let name = deployment["metadata"]["name"].as_str().unwrap_or_default();
    let mut twin = deployment.clone();
    twin["metadata"]["name"] = json!(twin_name(name, track));
    twin["metadata"]["labels"][TRACK] = json!(track);
    twin["metadata"]["annotations"][TWIN_OF] = json!(name);
    twin["metadata"]["annotations"][TWIN_REVISION] = json!(revision.to_string());
    twin["spec"]["replicas"] = json!(replicas);
    twin["spec"]["selector"]["matchLabels"][TRACK] = json!(track);
    twin["spec"]["template"]["metadata"]["labels"][TRACK] = json!(track);
    twin
}

/// The preview twin of `service`: the same ports, selecting only preview pods.
pub fn preview_service(service: &Value) -> Value {
    let name = service["metadata"]["name"].as_str().unwrap_or_default();
    let mut preview = service.clone();
    preview["metadata"]["name"] = json!(twin_name(name, "preview"));
    preview["metadata"]["labels"][TRACK] = json!("preview");
    preview["spec"]["selector"][TRACK] = json!("preview");
    preview
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(name: &str, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "shop", "labels": {"app.kubernetes.io/name": name}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/name": name, TRACK: "stable"}},
                    "spec": {"containers": [{"name": name, "image": image}]},
                },
            },
        })
    }

    fn config(value: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "backend-config", "namespace": "shop"}, "data": {"A": value}})
    }

    fn backup(image: &str) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "db-backup", "namespace": "shop"}, "spec": {"image": image}})
    }

    /// The backend, reading its ConfigMap.
    fn reading_config(image: &str) -> Value {
        let mut backend = deployment("backend", image);
        backend["spec"]["template"]["spec"]["containers"][0]["envFrom"] =
            json!([{"configMapRef": {"name": "backend-config"}}]);
        backend
    }

    #[test]
    fn changed_service_deployments_are_canaried_and_other_changes_wait_for_promotion() {
        let stable = [
            reading_config("b:1"),
            deployment("ml", "m:1"),
            config("1"),
            backup("j:1"),
        ];
        let release = [
            reading_config("b:2"),
            deployment("ml", "m:1"),
            config("1"),
            backup("j:2"),
        ];
        assert_eq!(
            split(&release, &stable).unwrap(),
            Split {
                services: vec![reading_config("b:2")],
                unjudged: vec!["CronJob/shop/db-backup".into()],
            }
        );
        assert_eq!(
            split(&stable, &stable),
            Err(NotProgressive::NoServiceChanged)
        );
        let without_backup = &release[..3];
        assert_eq!(
            split(without_backup, &stable).unwrap().unjudged,
            ["CronJob/shop/db-backup"]
        );
    }

    #[test]
    fn a_release_changing_what_a_service_reads_is_refused_with_what_it_changes() {
        let stable = [reading_config("b:1"), config("1")];
        let release = [reading_config("b:2"), config("2")];
        assert_eq!(
            split(&release, &stable),
            Err(NotProgressive::ChangesWhatServicesRead(vec![
                "ConfigMap/shop/backend-config".into()
            ]))
        );
        // Its labels alone (the version) change: the pods read the same values.
        let mut relabelled = config("1");
        relabelled["metadata"]["labels"] = json!({"app.kubernetes.io/version": "2"});
        let release = [reading_config("b:2"), relabelled];
        let stable = [reading_config("b:1"), config("1")];
        assert_eq!(
            split(&release, &stable).unwrap().unjudged,
            ["ConfigMap/shop/backend-config"]
        );
        // Nobody reads it: it waits for the promotion like any other object.
        let stable = [deployment("backend", "b:1"), config("1")];
        let release = [deployment("backend", "b:2"), config("2")];
        assert_eq!(
            split(&release, &stable).unwrap().unjudged,
            ["ConfigMap/shop/backend-config"]
        );
    }

    #[test]
    fn the_canary_selects_only_canary_pods_and_is_sized_by_weight() {
        let canary = twin(
            &deployment("backend", "b:2"),
            "canary",
            7,
            canary_replicas(2, 10),
        );
        assert_eq!(canary["metadata"]["name"], "backend-canary");
        assert_eq!(canary["spec"]["replicas"], 1);
        assert_eq!(canary["spec"]["selector"]["matchLabels"][TRACK], "canary");
        assert_eq!(
            canary["spec"]["template"]["metadata"]["labels"][TRACK],
            "canary"
        );
        assert_eq!(canary["metadata"]["annotations"][TWIN_REVISION], "7");
        // The Service's selector (name and instance) still matches the canary's pods.
        assert_eq!(
            canary["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"],
            "backend"
        );
        assert_eq!(canary_replicas(4, 50), 2);
        assert_eq!(canary_replicas(3, 50), 2);
        assert_eq!(canary_replicas(2, 100), 2);
        assert_eq!(canary_replicas(0, 10), 1);
    }
}
