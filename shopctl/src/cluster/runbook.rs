//! Runbooks on a cluster (`runbook run NAME --env <cluster>`): logs from the pods
//! (`pods/log`); SQL checks run inside the cluster by a short Job from the db-backup
//! CronJob's verify container — the backup role, which may read everything and write
//! nothing — so PostgreSQL is never exposed; actions are shopctl's own commands pointed at
//! the same cluster; the finished run is kept in the cluster (a ConfigMap holding the
//! transcript, and a note on the newest release) so the next person on call sees who ran
//! what, when, and what it found.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, LogParams, ObjectMeta, PostParams};

use super::logs::{LogEvent, LogOptions};
use super::release::ReleaseStore;
use super::restore::{DatabaseJob, database_job};
use super::{Cluster, ENVIRONMENT, FIELD_MANAGER, MANAGED_BY};
use crate::runbook::operator::{Operator, OperatorFuture};

/// The label on each recorded run's ConfigMap (value: the environment).
pub const RUNBOOK_OF: &str = "shopmicro.io/runbook-of";
/// The annotation on the newest release naming the last run.
pub const LAST_RUNBOOK: &str = "shopmicro.io/last-runbook";

pub struct ClusterOperator {
    pub cluster: Cluster,
    pub namespace: String,
    pub env: String,
    /// The arguments that point a `shopctl` action at the same cluster.
    pub cluster_args: Vec<String>,
    /// How long a query Job may take.
    pub job_timeout: Duration,
}

impl Operator for ClusterOperator {
    fn recent_logs<'a>(
        &'a self,
        service: &'a str,
        lines: usize,
    ) -> OperatorFuture<'a, Vec<String>> {
        Box::pin(async move {
            let mut shown = Vec::new();
            let options = LogOptions {
                tail: Some(lines as i64),
                ..LogOptions::default()
            };
            super::logs::stream(
                &self.cluster,
                &self.namespace,
                &self.env,
                service,
                &options,
                |event| {
                    shown.push(match event {
                        LogEvent::Line { pod, text } => format!("[{pod}] {text}"),
                        LogEvent::Unavailable { pod, reason } => {
                            format!("[{pod}] no log: {reason}")
                        }
                    })
                },
            )
            .await?;
            Ok(shown)
        })
    }

    fn query<'a>(&'a self, query: &'a str) -> OperatorFuture<'a, Option<f64>> {
        Box::pin(async move {
            let job = DatabaseJob {
                step: "query",
                backoff_limit: Some(0),
                credentials: None,
            };
            let args = ["db", "query", "--sql", query].map(String::from).to_vec();
            let outcome = database_job(
                &self.cluster,
                &self.namespace,
                job,
                |_| args,
                self.job_timeout,
            )
            .await?;
            anyhow::ensure!(
                outcome.succeeded,
                "the query Job {} failed: {}",
                outcome.job,
                outcome.reason.unwrap_or_default()
            );
            let printed = self.job_output(&outcome.job).await?;
            parse_value(&printed).ok_or_else(|| {
                anyhow::anyhow!(
                    "the query Job {} printed no value: {printed:?}",
                    outcome.job
                )
            })
        })
    }

    fn configure(&self, command: &mut std::process::Command) {
        command.args(&self.cluster_args);
    }

    fn record<'a>(
        &'a self,
        runbook: &'a str,
        summary: &'a str,
        transcript: &'a str,
    ) -> OperatorFuture<'a, Option<String>> {
        Box::pin(async move {
            let name = format!(
                "shopctl-runbook.{}.{}",
                runbook,
                chrono::Utc::now().format("%Y%m%d%H%M%S")
            );
            let labels = BTreeMap::from([
                (MANAGED_BY.to_string(), "shopctl".to_string()),
                (ENVIRONMENT.to_string(), self.env.clone()),
                (RUNBOOK_OF.to_string(), self.env.clone()),
            ]);
            let record = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(self.namespace.clone()),
                    labels: Some(labels),
                    ..ObjectMeta::default()
                },
                data: Some(BTreeMap::from([
                    ("summary".to_string(), summary.to_string()),
                    ("transcript".to_string(), transcript.to_string()),
                ])),
                ..ConfigMap::default()
            };
            let config_maps: Api<ConfigMap> =
                Api::namespaced(self.cluster.client.clone(), &self.namespace);
            let params = PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PostParams::default()
            };
            config_maps
                .create(&params, &record)
                .await
                .map_err(|err| self.cluster.explain(err))?;
            // A note on the newest release, where `history` readers look.
            let store = ReleaseStore::new(&self.cluster, &self.namespace, &self.env);
            if let Some(release) = store.latest().await? {
                let note = format!("{summary} (ConfigMap {name})");
                store
                    .annotate(release.revision, LAST_RUNBOOK, &note)
                    .await?;
            }
            Ok(Some(format!("ConfigMap {}/{name}", self.namespace)))
        })
    }
}

impl ClusterOperator {
    /// What the query Job's container printed.
    async fn job_output(&self, job: &str) -> anyhow::Result<String> {
        let jobs: Api<Job> = Api::namespaced(self.cluster.client.clone(), &self.namespace);
        let uid = jobs
            .get(job)
            .await
            .map_err(|err| self.cluster.explain(err))?
            .metadata
            .uid
            .unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(self.cluster.client.clone(), &self.namespace);
        let pod = pods
            .list(&ListParams::default())
            .await
            .map_err(|err| self.cluster.explain(err))?
            .items
            .into_iter()
            .find(|p| {
                p.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.uid == uid)
            })
            .ok_or_else(|| anyhow::anyhow!("the query Job {job} has no pod to read"))?;
        let params = LogParams {
            container: Some("query".into()),
            ..LogParams::default()
        };
        pods.logs(&pod.metadata.name.unwrap_or_default(), &params)
            .await
            .map_err(|err| self.cluster.explain(err))
    }
}

/// The value `shopctl db query` printed: its last line, a number or `null`.
fn parse_value(printed: &str) -> Option<Option<f64>> {
    match printed.lines().rev().find(|l| !l.trim().is_empty())?.trim() {
        "null" => Some(None),
        number => number.parse().ok().map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_value;

    #[test]
    fn the_printed_value_is_the_last_line() {
        assert_eq!(parse_value("1\n"), Some(Some(1.0)));
        assert_eq!(parse_value("noise\n0.25\n\n"), Some(Some(0.25)));
        assert_eq!(parse_value("null\n"), Some(None));
        assert_eq!(parse_value("error: x\n"), None);
        assert_eq!(parse_value(""), None);
    }
}
