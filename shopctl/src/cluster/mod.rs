//! Operating a Kubernetes cluster: connecting the way kubectl does, applying a release with
//! server-side apply, waiting for rollouts with watches, the release history kept in the
//! cluster, rollback and status.

pub mod access;
pub mod apply;
pub mod base;
pub mod deploy;
pub mod jobs;
pub mod logs;
pub mod progressive;
pub mod proxy;
pub mod release;
pub mod restart;
pub mod restore;
pub mod rollback;
pub mod rollout;
pub mod runbook;
pub mod status;
pub mod uninstall;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::env::Environment;

/// The field manager every shopctl write uses, so server-side apply tracks what we own.
pub const FIELD_MANAGER: &str = "shopctl";
/// Labels every rendered object carries; prune only ever deletes objects that have them.
pub const MANAGED_BY: &str = "shopmicro.io/managed-by";
pub const ENVIRONMENT: &str = "shopmicro.io/environment";

/// How to reach the cluster, as kubectl users expect.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

#[derive(Clone)]
pub struct Cluster {
    pub client: kube::Client,
    pub server: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(
        "no cluster configured: set KUBECONFIG or pass --kubeconfig (for EKS: aws eks \
         update-kubeconfig --name {cluster}), or run inside the cluster"
    )]
    NoConfig { cluster: String },
    #[error(
        "the kubeconfig's context `{context}` points at cluster `{actual}`, but environment \
         `{env}` lives on cluster `{expected}`; pass --context to choose a context explicitly"
    )]
    WrongCluster {
        context: String,
        actual: String,
        env: String,
        expected: String,
    },
    #[error(
        "cannot reach the cluster at {server}: {cause}; check that the API server is up and \
         that the kubeconfig (--kubeconfig, KUBECONFIG, --context) points at it"
    )]
    Unreachable { server: String, cause: String },
    #[error(
        "the cluster at {server} rejected the credentials (401 Unauthorized): they are \
         missing, invalid or expired; refresh them (for EKS: aws eks update-kubeconfig) and retry"
    )]
    Unauthorized { server: String },
    #[error("permission denied by the cluster: {message}; ask a cluster administrator for it")]
    Forbidden { message: String },
    #[error(
        "{identity} may not {}; nothing was changed. Grant it (on EKS: an access policy of the \
         identity's access entry, or an RBAC binding for one of its Kubernetes groups) or run \
         this as an identity that may",
        access::summarise(.missing)
    )]
    Missing {
        identity: String,
        missing: Vec<access::Permission>,
    },
}

impl Cluster {
    pub async fn connect(options: &ClusterOptions, env: &Environment) -> anyhow::Result<Self> {
        let kubeconfig = match &options.kubeconfig {
            Some(path) => Some(
                Kubeconfig::read_from(path)
                    .with_context(|| format!("reading the kubeconfig {}", path.display()))?,
            ),
            None => Kubeconfig::read().ok(),
        };
        let mut config = match kubeconfig {
            Some(kubeconfig) => {
                check_cluster(&kubeconfig, options, env)?;
                let selection = KubeConfigOptions {
                    context: options.context.clone(),
                    ..KubeConfigOptions::default()
                };
                kube::Config::from_custom_kubeconfig(kubeconfig, &selection)
                    .await
                    .context("loading the kubeconfig")?
            }
            None if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => {
                kube::Config::incluster().context("loading the in-cluster configuration")?
            }
            None => {
                return Err(AccessError::NoConfig {
                    cluster: env.cluster.name.clone(),
                }
                .into());
            }
        };
        config.connect_timeout = Some(Duration::from_secs(5));
        // kube retries 503s up to 15 times with backoff (minutes): through the service
        // proxy a 503 is the answer itself ("no endpoints available", a service saying it
        // is not ready), which validate and runbooks must report at once. shopctl's own
        // waits decide when to ask again.
        config.default_retry = false;
        let server = config.cluster_url.to_string();
        let client = kube::Client::try_from(config).context("building the Kubernetes client")?;
        let cluster = Self { client, server };
        // One cheap request first, so an unreachable or unauthorised cluster is one clear
        // error before anything is attempted.
        cluster
            .client
            .apiserver_version()
            .await
            .map_err(|err| cluster.explain(err))?;
        Ok(cluster)
    }

    /// Turns a client error into one that says what to do; API errors other than
    /// authentication and authorisation keep the server's message.
    pub fn explain(&self, err: kube::Error) -> anyhow::Error {
        match err {
            kube::Error::Api(status) if status.code == 401 => AccessError::Unauthorized {
                server: self.server.clone(),
            }
            .into(),
            kube::Error::Api(status) if status.code == 403 => AccessError::Forbidden {
                message: status.message.clone(),
            }
            .into(),
            kube::Error::Api(status) => {
                anyhow::anyhow!("{} ({} {})", status.message, status.code, status.reason)
            }
            kube::Error::HyperError(_) | kube::Error::Service(_) => AccessError::Unreachable {
                server: self.server.clone(),
                cause: root_cause(&err),
            }
            .into(),
            other => anyhow::Error::new(other),
        }
    }
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// A safety check before touching anything: the current context must point at the
/// environment's cluster (an EKS ARN ends in `cluster/<name>`). An explicit --context is
/// the operator's informed choice and is trusted.
fn check_cluster(
    kubeconfig: &Kubeconfig,
    options: &ClusterOptions,
    env: &Environment,
) -> Result<(), AccessError> {
    if options.context.is_some() {
        return Ok(());
    }
    let Some(context_name) = kubeconfig.current_context.clone() else {
        return Ok(());
    };
    let actual = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .unwrap_or_default();
    let expected = &env.cluster.name;
    let matches = actual == *expected
        || actual.ends_with(&format!("/{expected}"))
        || context_name == *expected;
    if matches {
        Ok(())
    } else {
        Err(AccessError::WrongCluster {
            context: context_name,
            actual,
            env: env.name.clone(),
            expected: expected.clone(),
        })
    }
}

/// `Kind/namespace/name`, the id used in reports.
pub fn object_id(object: &serde_json::Value) -> String {
    let kind = object["kind"].as_str().unwrap_or("");
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    match object["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}
