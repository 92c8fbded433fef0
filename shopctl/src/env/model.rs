//! The typed shape of an environment values file (`templates/environments/NAME.yaml`).
//!
//! This is the single source of truth: the JSON Schema that validates files and
//! `--set` paths is derived from these types, so the schema can never drift from the code.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Environment name; must match the file name.
    pub name: String,
    /// Kubernetes namespace the platform runs in.
    pub namespace: String,
    pub cluster: Cluster,
    pub aws: Aws,
    pub terraform: TerraformState,
    pub images: Images,
    pub services: Services,
    pub rollout: Rollout,
    pub ingress: Ingress,
    pub storage: Storage,
    pub postgres: Postgres,
    pub redis: Redis,
    pub backup: Backup,
    pub observability: Observability,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Amazon EKS.
    Eks,
    /// A cluster on a workstation (kind, k3d, minikube).
    Local,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub name: String,
    pub provider: Provider,
    /// Kubernetes minor version the manifests target, e.g. "1.33".
    pub kubernetes_version: String,
    /// Where the API server's own connections to pods come from, which NetworkPolicies
    /// let reach the services' ports so its service proxy (`shopctl validate`) works: on
    /// EKS, the subnets holding the control plane's network interfaces.
    #[serde(default)]
    pub api_server_cidrs: Vec<String>,
    /// Where pods get their addresses (with the VPC CNI, the nodes' subnets). An ipBlock
    /// that overlaps them would admit pods by address, around every pod selector: lint
    /// refuses one.
    #[serde(default)]
    pub pod_cidrs: Vec<String>,
    /// The Kubernetes group of the identity that deploys releases (its EKS access entry's
    /// `kubernetes_groups`): the cluster base grants it the cluster-wide reads that a
    /// deploy and `validate` need (nodes, storage classes), nothing more.
    #[serde(default = "default_deployer_group")]
    pub deployer_group: String,
    /// The Kubernetes group of the identity that plans the infrastructure: the cluster
    /// base lets it read the Helm releases Terraform manages, nothing else.
    #[serde(default = "default_planner_group")]
    pub planner_group: String,
    /// Who may reach the API server's public endpoint: the egress addresses of the CI
    /// runners that deploy (`ci_runner_group`). Empty keeps the endpoint private (reachable
    /// from inside the VPC only).
    #[serde(default)]
    pub public_access_cidrs: Vec<String>,
    /// The GitHub Actions runner group whose jobs talk to the cluster (deploy, rollback);
    /// its egress addresses are `public_access_cidrs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_runner_group: Option<String>,
}

fn default_deployer_group() -> String {
    "shopmicro:deployers".into()
}

fn default_planner_group() -> String {
    "shopmicro:planners".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Aws {
    pub region: String,
    /// The 12-digit account the environment lives in.
    pub account_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TerraformState {
    pub state_bucket: String,
    pub lock_table: String,
    /// Use S3-native locking (`use_lockfile`) in addition to the DynamoDB table.
    #[serde(default)]
    pub use_lockfile: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Images {
    /// Registry host and path prefix, e.g. `123456789012.dkr.ecr.eu-west-1.amazonaws.com`.
    pub registry: String,
    pub pull_policy: PullPolicy,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Services {
    pub frontend: Service,
    pub backend: Service,
    pub ml: Service,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Repository name under `images.registry`.
    pub image: String,
    /// Image tag; never `latest`.
    pub tag: String,
    pub replicas: u32,
    pub resources: Resources,
    /// Horizontal autoscaling; replicas is the starting point when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub requests: ResourceAmounts,
    pub limits: ResourceAmounts,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceAmounts {
    /// CPU quantity, e.g. `250m` or `1`.
    pub cpu: String,
    /// Memory quantity, e.g. `256Mi`.
    pub memory: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Autoscaling {
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// Average CPU utilisation (percent of requests) to scale at.
    pub target_cpu_percent: u32,
    /// Average memory utilisation (percent of requests) to scale at.
    pub target_memory_percent: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// How long services drain in-flight requests after SIGTERM.
    pub drain_seconds: u32,
    /// Pause before SIGTERM so load balancers stop routing to the pod first.
    pub pre_stop_seconds: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ingress {
    pub host: String,
    pub class_name: String,
    /// Namespace of the ingress controller's pods (allowed to reach the storefront).
    pub controller_namespace: String,
    /// Address ranges the load balancer connects from (for NetworkPolicies when the
    /// controller is outside the cluster, like the AWS ALB in IP mode).
    #[serde(default)]
    pub source_cidrs: Vec<String>,
    /// TLS secret; required outside `local` (lint SM012).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    pub class_name: String,
    pub provisioner: String,
    /// Passed to the provisioner as `parameters`.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Why this environment's volumes may be unencrypted (suppresses lint SM013).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unencrypted_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Postgres {
    /// Full image reference with a pinned tag.
    pub image: String,
    pub storage_size: String,
    pub database: String,
    pub user: String,
    pub resources: Resources,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Redis {
    pub image: String,
    pub resources: Resources,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    pub bucket: String,
    pub prefix: String,
    /// Tag of the `shopmicro-shopctl` image the backup job runs: deploys set it with the
    /// services' tags (the images workflow tags every image with the commit SHA).
    pub tag: String,
    /// Cron schedule of the backup job.
    pub schedule: String,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    /// KMS key the backup job encrypts with (SSE-KMS; an `alias/…` the environment's stack
    /// creates); unset leaves it to the bucket's default encryption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key: Option<String>,
    /// IRSA role for the backup job; defaults to `<cluster>-db-backup` in the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Observability {
    /// Namespace of Prometheus, Loki, Tempo and Grafana.
    pub namespace: String,
    /// OTLP/HTTP endpoint the services export traces to; none when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    pub log_level: String,
    /// One successful request in this many writes its access-log line; failures (4xx, 5xx)
    /// always do. 1 (the default) logs every request; raise it where the log's cost shows.
    #[serde(default = "every_request")]
    pub access_log_sample: std::num::NonZeroU32,
    pub prometheus_retention: String,
    pub prometheus_storage_size: String,
    pub loki_storage_size: String,
    /// How long Loki keeps logs, e.g. `744h`.
    pub log_retention: String,
    /// Who Alertmanager notifies, by severity.
    #[serde(default)]
    pub alerting: Alerting,
}

fn every_request() -> std::num::NonZeroU32 {
    std::num::NonZeroU32::MIN
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Alerting {
    /// Each receiver hears the severities it lists; an alert goes to every receiver that
    /// hears its severity. A cloud environment needs one that hears `critical`.
    #[serde(default)]
    pub receivers: Vec<Receiver>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Receiver {
    /// Lowercase letters, digits and `-`. Its destination (webhook URL, Slack incoming
    /// webhook URL or PagerDuty routing key) is the secret `alert_receiver_<name>`
    /// (`SHOPMICRO_ALERT_RECEIVER_<NAME>`, `-` as `_`): never in the repository.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9-]*$"))]
    pub name: String,
    pub kind: ReceiverKind,
    #[schemars(length(min = 1))]
    pub severities: Vec<Severity>,
    /// Slack only: the channel to post to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

impl Receiver {
    /// The secret holding the destination: (key in the secrets file, variable).
    pub fn secret(&self) -> (String, String) {
        (
            format!("alert_receiver_{}", self.name.replace('-', "_")),
            format!(
                "SHOPMICRO_ALERT_RECEIVER_{}",
                self.name.replace('-', "_").to_uppercase()
            ),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReceiverKind {
    /// Alertmanager's webhook (JSON POST): incident tools, ticketing, chat bridges.
    Webhook,
    /// A Slack incoming webhook.
    Slack,
    /// PagerDuty Events API v2.
    Pagerduty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Warning,
}
