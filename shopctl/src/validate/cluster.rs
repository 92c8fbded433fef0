//! The cluster target: one snapshot of the objects validate reasons about, read
//! concurrently when validate starts, so every check is a fast look at the same moment.
//! Secret values are dropped as they are read; only key names are kept.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;

use super::target::{ComponentHealth, Reply, ReplyFuture, Target};
use crate::backup::store::BackupDir;
use crate::cluster::apply::Resources;
use crate::cluster::release::{Release, ReleaseStore};
use crate::cluster::rollout::{self, Progress};
use crate::cluster::{AccessError, Cluster};
use crate::env::Environment;

/// The objects of the environment, by kind.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub server: String,
    pub namespaces: Vec<String>,
    pub objects: BTreeMap<&'static str, Vec<Value>>,
    /// Kinds the caller may not list (403), by scope (`cluster-wide` or `in namespace X`):
    /// the checks that read them skip rather than misjudge.
    pub forbidden_lists: BTreeMap<String, BTreeSet<&'static str>>,
    /// Anything else validate needs and may not do (the release history, the service proxy).
    pub forbidden: Vec<String>,
    /// Who the cluster says the caller is, asked only when something was forbidden.
    pub identity: Option<String>,
    /// Namespaces whose services the caller may not reach through the service proxy
    /// (a SelfSubjectAccessReview said no), with the reason.
    pub proxy_denied: BTreeMap<String, String>,
    pub release: Option<Release>,
    pub history: Vec<u32>,
    /// The backup CronJob's schedule, from the environment.
    pub backup_schedule: String,
    /// The environment, for the checks that ask AWS.
    pub environment: Option<Environment>,
    /// Asked for with `--drift`: compare the infrastructure with the Terraform stack.
    pub drift: Option<DriftCheck>,
}

/// `--drift`: plan the environment's Terraform stack (default `terraform/envs/<env>`)
/// without a lock and report any change as drift.
#[derive(Debug, Clone, Default)]
pub struct DriftCheck {
    pub stack: Option<std::path::PathBuf>,
}

/// Kinds listed; Namespaces are read one by one instead (a namespace-scoped identity may
/// read its own namespaces but not list all of them).
const KINDS: [(&str, &str, bool); 15] = [
    ("v1", "Service", true),
    ("v1", "Node", false),
    ("storage.k8s.io/v1", "StorageClass", false),
    ("apps/v1", "Deployment", true),
    ("apps/v1", "StatefulSet", true),
    ("apps/v1", "DaemonSet", true),
    ("v1", "Pod", true),
    ("autoscaling/v2", "HorizontalPodAutoscaler", true),
    ("policy/v1", "PodDisruptionBudget", true),
    ("networking.k8s.io/v1", "NetworkPolicy", true),
    ("v1", "Secret", true),
    ("v1", "ConfigMap", true),
    ("v1", "PersistentVolumeClaim", true),
    ("batch/v1", "CronJob", true),
    ("batch/v1", "Job", true),
];

impl Snapshot {
    pub fn of(&self, kind: &str) -> &[Value] {
        self.objects.get(kind).map_or(&[], Vec::as_slice)
    }

    /// Whether the caller may not list `kind` somewhere validate looks.
    pub fn unreadable(&self, kind: &str) -> bool {
        self.forbidden_lists
            .values()
            .any(|kinds| kinds.contains(kind))
    }

    pub fn find(&self, kind: &str, namespace: &str, name: &str) -> Option<&Value> {
        self.of(kind)
            .iter()
            .find(|o| o["metadata"]["name"] == name && o["metadata"]["namespace"] == namespace)
    }

    pub async fn load(cluster: &Cluster, environment: &Environment) -> anyhow::Result<Self> {
        let namespaces: Vec<String> = [
            &environment.namespace,
            &environment.observability.namespace,
            &format!("{}-agents", environment.observability.namespace),
        ]
        .into_iter()
        .cloned()
        .collect();
        let mut resources = Resources::new(cluster);
        let mut requests = Vec::new();
        for (api_version, kind, namespaced) in KINDS {
            let scopes: Vec<Option<String>> = if namespaced {
                namespaces.iter().cloned().map(Some).collect()
            } else {
                vec![None]
            };
            for namespace in scopes {
                let api: Api<DynamicObject> = resources
                    .api(api_version, kind, namespace.as_deref())
                    .await?;
                requests.push(async move {
                    let listed = api.list(&ListParams::default()).await;
                    (kind, namespace, listed)
                });
            }
        }
        let mut snapshot = Snapshot {
            server: cluster.server.clone(),
            namespaces,
            backup_schedule: environment.backup.schedule.clone(),
            environment: Some(environment.clone()),
            ..Snapshot::default()
        };
        let namespace_api: Api<DynamicObject> = resources.api("v1", "Namespace", None).await?;
        for namespace in &snapshot.namespaces {
            match namespace_api.get_opt(namespace).await {
                Ok(Some(object)) => {
                    let mut value = serde_json::to_value(object).unwrap_or_default();
                    value["kind"] = Value::String("Namespace".into());
                    snapshot.objects.entry("Namespace").or_default().push(value);
                }
                Ok(None) => {}
                Err(kube::Error::Api(status)) if status.code == 403 => {
                    snapshot
                        .forbidden_lists
                        .entry(format!("{namespace} (its own namespace)"))
                        .or_default()
                        .insert("Namespace");
                }
                Err(err) => return Err(cluster.explain(err)),
            }
        }
        for (kind, namespace, listed) in futures_util::future::join_all(requests).await {
            match listed {
                Ok(list) => {
                    let entry = snapshot.objects.entry(kind).or_default();
                    entry.extend(list.items.into_iter().map(|o| {
                        let mut value = serde_json::to_value(o).unwrap_or_default();
                        value["kind"] = Value::String(kind.to_string());
                        redact(&mut value);
                        value
                    }));
                }
                Err(kube::Error::Api(status)) if status.code == 403 => {
                    let scope = match namespace {
                        Some(namespace) => format!("in namespace {namespace}"),
                        None => "cluster-wide".to_string(),
                    };
                    snapshot
                        .forbidden_lists
                        .entry(scope)
                        .or_default()
                        .insert(kind);
                }
                Err(err) => return Err(cluster.explain(err)),
            }
        }
        let store = ReleaseStore::new(cluster, &environment.namespace, &environment.name);
        let history = match store.list().await {
            Ok(history) => history,
            // Not allowed to read the history: the permissions check says so; the rest goes on.
            Err(err)
                if matches!(
                    err.downcast_ref::<AccessError>(),
                    Some(AccessError::Forbidden { .. })
                ) =>
            {
                snapshot.forbidden.push(format!("{err:#}"));
                Vec::new()
            }
            Err(err) => return Err(err),
        };
        let namespaces = [&environment.namespace, &environment.observability.namespace];
        let answers =
            futures_util::future::join_all(namespaces.map(|ns| may_proxy(cluster, ns))).await;
        for (namespace, answer) in namespaces.into_iter().zip(answers) {
            if answer == Some(false) {
                let reason = format!(
                    "may not get services/proxy in namespace {namespace} (SelfSubjectAccessReview), \
                     so its services cannot be asked"
                );
                snapshot.forbidden.push(reason.clone());
                snapshot.proxy_denied.insert(namespace.clone(), reason);
            }
        }
        if !snapshot.forbidden.is_empty() || !snapshot.forbidden_lists.is_empty() {
            snapshot.identity = Some(crate::cluster::access::whoami(cluster).await);
        }
        snapshot.history = history.iter().map(|r| r.revision).collect();
        // Not an aborted progressive release (it never ran), nor one in progress (its
        // canaries or previews run beside the release before it).
        snapshot.release = crate::cluster::progressive::running(&history).cloned();
        Ok(snapshot)
    }
}

/// Whether the caller may reach services in `namespace` through the API server's proxy,
/// as `kubectl auth can-i get services/proxy` asks; None when the server cannot say.
async fn may_proxy(cluster: &Cluster, namespace: &str) -> Option<bool> {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.into()),
                verb: Some("get".into()),
                resource: Some("services".into()),
                subresource: Some("proxy".into()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let reviews: Api<SelfSubjectAccessReview> = Api::all(cluster.client.clone());
    let answer = reviews
        .create(&kube::api::PostParams::default(), &review)
        .await
        .ok()?;
    Some(answer.status?.allowed)
}

/// Secret values never leave the cluster: keep the key names only.
fn redact(object: &mut Value) {
    if object["kind"] == "Secret" {
        for field in ["data", "stringData"] {
            if let Some(values) = object[field].as_object_mut() {
                for value in values.values_mut() {
                    *value = Value::Null;
                }
            }
        }
    }
}

pub struct ClusterTarget {
    pub snapshot: Snapshot,
    /// Services are asked through the API server's service proxy, with the caller's
    /// cluster credentials: nothing needs to be exposed for validate to reach them.
    client: kube::Client,
}

impl ClusterTarget {
    pub async fn load(cluster: &Cluster, environment: &Environment) -> anyhow::Result<Self> {
        Ok(Self {
            snapshot: Snapshot::load(cluster, environment).await?,
            client: cluster.client.clone(),
        })
    }

    pub fn with_drift(mut self, drift: Option<DriftCheck>) -> Self {
        self.snapshot.drift = drift;
        self
    }

    /// The namespace of `service` and the port the proxy addresses: the one named `http`
    /// where there are several (Tempo), else the only one.
    fn locate(&self, service: &str) -> Option<(&str, String)> {
        let found = self.snapshot.of("Service").iter().find(|s| {
            s["metadata"]["name"] == service
                && self
                    .snapshot
                    .namespaces
                    .iter()
                    .any(|ns| s["metadata"]["namespace"] == ns.as_str())
        })?;
        let ports = found["spec"]["ports"].as_array()?;
        let port = ports
            .iter()
            .find(|p| p["name"] == "http")
            .or_else(|| (ports.len() == 1).then(|| &ports[0]))?;
        let port = match port["name"].as_str() {
            Some(name) if !name.is_empty() => name.to_string(),
            _ => port["port"].to_string(),
        };
        Some((found["metadata"]["namespace"].as_str()?, port))
    }

    async fn proxy_get(
        &self,
        service: &str,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Reply, String> {
        let (namespace, port) = self
            .locate(service)
            .ok_or_else(|| format!("no Service {service} in this environment"))?;
        let (status, body) =
            crate::cluster::proxy::get(&self.client, namespace, service, &port, path, query)
                .await?;
        Ok(Reply { status, body })
    }
}

fn restarts(snapshot: &Snapshot, namespace: &str, name: &str) -> u32 {
    let prefix = format!("{name}-");
    snapshot
        .of("Pod")
        .iter()
        .filter(|p| {
            p["metadata"]["namespace"] == namespace
                && p["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(&prefix))
        })
        .flat_map(|p| {
            p["status"]["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|c| c["restartCount"].as_u64().unwrap_or(0) as u32)
        .max()
        .unwrap_or(0)
}

impl Target for ClusterTarget {
    fn kind(&self) -> crate::reports::Target {
        crate::reports::Target::Cluster
    }

    fn runs(&self, service: &str) -> bool {
        self.locate(service).is_some()
    }

    fn denied(&self, service: &str) -> Option<String> {
        let environment = self.snapshot.environment.as_ref()?;
        // Where each service lives, known without listing Services (which may be forbidden).
        let namespace = match service {
            "prometheus" | "loki" | "tempo" | "alertmanager" => {
                &environment.observability.namespace
            }
            _ => &environment.namespace,
        };
        self.snapshot.proxy_denied.get(namespace).cloned()
    }

    fn get<'a>(
        &'a self,
        service: &'a str,
        path: &'a str,
        query: &'a [(&'a str, &'a str)],
    ) -> ReplyFuture<'a> {
        Box::pin(self.proxy_get(service, path, query))
    }

    fn components(&self) -> Vec<ComponentHealth> {
        ["Deployment", "StatefulSet", "DaemonSet"]
            .iter()
            .flat_map(|kind| self.snapshot.of(kind))
            .map(|workload| {
                let namespace = workload["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default();
                let name = workload["metadata"]["name"].as_str().unwrap_or_default();
                ComponentHealth {
                    name: format!(
                        "{}/{namespace}/{name}",
                        workload["kind"].as_str().unwrap_or_default()
                    ),
                    ready: rollout::judge(workload) == Progress::Ready,
                    restarts: restarts(&self.snapshot, namespace, name),
                    managed: true,
                }
            })
            .collect()
    }

    fn releases(&self) -> Option<(u32, u32)> {
        let release = self.snapshot.release.as_ref()?;
        // The release runs when every workload it recorded runs its images.
        let workloads: Vec<Value> = ["Deployment", "StatefulSet", "DaemonSet", "CronJob"]
            .iter()
            .flat_map(|kind| self.snapshot.of(kind).iter().cloned())
            .collect();
        let mut live = crate::cluster::release::images(&workloads);
        // A switched blue/green release runs in its preview Deployments until it is
        // finalized; the stable ones still run the release before it.
        if let Some(preview) = &release.contents.blue_green
            && preview.phase == crate::cluster::progressive::blue_green::Phase::Switched
        {
            for service in &preview.services {
                let preview = crate::cluster::progressive::workloads::twin_name(service, "preview");
                if let Some(images) = live.get(&format!("Deployment/{preview}")).cloned() {
                    live.insert(format!("Deployment/{service}"), images);
                }
            }
        }
        // A recorded workload we could not see (its kind not listable somewhere) is not
        // held against the release; access.permissions reports the blind spot.
        let running =
            release
                .contents
                .images
                .iter()
                .all(|(workload, images)| match live.get(workload) {
                    Some(live) => live == images,
                    None => workload
                        .split('/')
                        .next()
                        .is_some_and(|kind| self.snapshot.unreadable(kind)),
                });
        Some((if running { release.revision } else { 0 }, release.revision))
    }

    fn backups(&self) -> Option<BackupDir> {
        None
    }

    fn cluster(&self) -> Option<&Snapshot> {
        Some(&self.snapshot)
    }
}
