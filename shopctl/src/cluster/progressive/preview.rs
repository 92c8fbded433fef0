//! A blue/green release's preview as `validate` sees it: the app checks run against the
//! preview Services through the API server's service proxy, exactly as they run against
//! the live ones, and skip the services the release does not preview.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::workloads;
use crate::backup::store::BackupDir;
use crate::cluster::Cluster;
use crate::validate::target::{ComponentHealth, Reply, ReplyFuture, Target};
use crate::validate::{self, Selection};

/// What validate checks of a preview: the services' answers, and PostgreSQL as the
/// backend sees it.
const CHECKED: [&str; 2] = ["app", "storage.database"];

pub struct PreviewTarget {
    client: kube::Client,
    namespace: String,
    /// Previewed service → the port name its Service serves on.
    ports: BTreeMap<String, String>,
}

impl PreviewTarget {
    /// `services`: the rendered Services of the previewed services.
    pub fn new(cluster: &Cluster, namespace: &str, services: &[&Value]) -> Self {
        let ports = services
            .iter()
            .filter_map(|service| {
                let name = service["metadata"]["name"].as_str()?.to_string();
                let port = &service["spec"]["ports"][0];
                let port = port["name"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| port["port"].to_string());
                Some((name, port))
            })
            .collect();
        Self {
            client: cluster.client.clone(),
            namespace: namespace.to_string(),
            ports,
        }
    }

    /// Runs validate's app checks against the previews.
    pub async fn validate(&self, environment: &str) -> validate::Report {
        let selection = Selection {
            only: CHECKED.map(str::to_string).to_vec(),
            skip: Vec::new(),
            per_check: Duration::from_secs(10),
            overall: Duration::from_secs(30),
            sequential: false,
        };
        validate::run(environment, self, &selection).await
    }
}

impl Target for PreviewTarget {
    fn kind(&self) -> crate::reports::Target {
        crate::reports::Target::Cluster
    }

    fn runs(&self, service: &str) -> bool {
        self.ports.contains_key(service)
    }

    fn denied(&self, service: &str) -> Option<String> {
        (!self.runs(service)).then(|| {
            format!("{service} is not previewed by this release: its live pods answer for it")
        })
    }

    fn get<'a>(
        &'a self,
        service: &'a str,
        path: &'a str,
        query: &'a [(&'a str, &'a str)],
    ) -> ReplyFuture<'a> {
        Box::pin(async move {
            let port = self
                .ports
                .get(service)
                .ok_or_else(|| format!("{service} is not previewed"))?;
            let preview = workloads::twin_name(service, "preview");
            let (status, body) = crate::cluster::proxy::get(
                &self.client,
                &self.namespace,
                &preview,
                port,
                path,
                query,
            )
            .await?;
            Ok(Reply { status, body })
        })
    }

    fn components(&self) -> Vec<ComponentHealth> {
        Vec::new()
    }

    fn releases(&self) -> Option<(u32, u32)> {
        None
    }

    fn backups(&self) -> Option<BackupDir> {
        None
    }
}
