//! `up` for a cloud environment: from an empty account to a running, validated platform,
//! phase by phase. Every phase is idempotent, so running it again resumes: a finished
//! phase is checked (found, no changes, release current) rather than redone.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::cluster::apply::ApplyOptions;
use crate::cluster::deploy::{DeployOptions, DeployReport, Deployer};
use crate::cluster::rollout::ProgressCallback;
use crate::cluster::{Cluster, ClusterOptions, base};
use crate::env::Environment;
use crate::infra::terraform::Workspace;
use crate::infra::{self, bootstrap, eks};
use crate::validate::{self, ClusterTarget, Selection};

/// What a cloud `up` does.
pub struct CloudUp<'a> {
    pub environment: &'a Environment,
    /// The release, rendered with its secrets.
    pub manifests: &'a [Value],
    /// How to reach the cluster when infrastructure is skipped.
    pub cluster: ClusterOptions,
    /// Deploy onto the cluster `cluster` points at, without provisioning.
    pub skip_infra: bool,
    /// The Terraform root module (default: terraform/envs/<env>).
    pub stack: Option<PathBuf>,
    /// Where the cluster's kubeconfig entry is written or merged.
    pub kubeconfig: PathBuf,
    /// The release's rollout: wait, atomic, history kept.
    pub deploy: DeployOptions,
    pub on_rollout: ProgressCallback,
}

/// The operator's side of an `up`: how phases show, consent to destructive changes, and
/// the release as soon as it is known.
pub trait Operator {
    /// Runs one phase, showing its progress and how it ended.
    fn phase<T>(
        &self,
        name: &str,
        work: impl Future<Output = anyhow::Result<T>>,
    ) -> impl Future<Output = anyhow::Result<T>>;
    /// Asks before Terraform deletes or replaces `destructive` resources.
    fn confirm_destruction(&self, destructive: usize) -> anyhow::Result<()>;
    /// The release was applied (and waited for).
    fn deployed(&self, report: &DeployReport);
}

/// How an `up` ended, when every phase could run.
pub enum UpOutcome {
    /// The rollout failed; the platform was not validated.
    RolloutFailed,
    /// Deployed and validated; the report says whether every check passed.
    Validated(validate::Report),
}

/// The checks an `up` runs last, with the bounds of a quick look.
fn validation() -> Selection {
    Selection {
        only: Vec::new(),
        skip: Vec::new(),
        per_check: Duration::from_secs(5),
        overall: Duration::from_secs(30),
        sequential: false,
    }
}

/// Which phase failed, and what to do next.
fn failed_in(name: &str, env: &str) -> impl FnOnce(anyhow::Error) -> anyhow::Error {
    let message = format!(
        "`shopctl up` stopped in phase \"{name}\"; fix the cause and re-run `shopctl up --env {env}` (finished phases are checked, not redone)"
    );
    move |err| err.context(message)
}

impl CloudUp<'_> {
    pub async fn run(&self, operator: &impl Operator) -> anyhow::Result<UpOutcome> {
        let environment = self.environment;
        let env = &environment.name;
        let mut cluster_options = self.cluster.clone();
        if !self.skip_infra {
            cluster_options = self.provision(operator).await?;
        }
        let cluster = operator
            .phase(
                "connecting to the cluster",
                Cluster::connect(&cluster_options, environment),
            )
            .await
            .map_err(failed_in("cluster access", env))?;
        if !self.skip_infra {
            // The administrator's part: cluster-scoped objects the release relies on.
            let (base, _) = base::split(self.manifests);
            let apply = ApplyOptions {
                dry_run: false,
                force: false,
            };
            operator
                .phase(
                    "cluster base (administrator)",
                    base::apply(&cluster, &base, &apply),
                )
                .await
                .map_err(failed_in("cluster base", env))?;
        }
        let deployer = Deployer {
            cluster: &cluster,
            environment: env.clone(),
            namespace: environment.namespace.clone(),
            on_progress: self.on_rollout.clone(),
        };
        let report = operator
            .phase(
                "apply and wait for the rollout",
                deployer.deploy(self.manifests, &self.deploy),
            )
            .await
            .map_err(failed_in("apply", env))?;
        operator.deployed(&report);
        if report.rollout_failed() {
            return Ok(UpOutcome::RolloutFailed);
        }
        let report = operator
            .phase("validate", async {
                let target = ClusterTarget::load(&cluster, environment).await?;
                anyhow::Ok(validate::run(env, &target, &validation()).await)
            })
            .await
            .map_err(failed_in("validate", env))?;
        Ok(UpOutcome::Validated(report))
    }

    /// The account checked, the state backend, the infrastructure and a kubeconfig entry:
    /// how to reach the cluster now.
    async fn provision(&self, operator: &impl Operator) -> anyhow::Result<ClusterOptions> {
        let environment = self.environment;
        let env = &environment.name;
        let config = infra::aws_config(environment).await;
        let workspace = Workspace::new(environment, self.stack.as_deref())?;
        operator
            .phase("preflight: terraform, AWS account", async {
                workspace.check_version().await?;
                infra::check_account(&config, environment).await
            })
            .await
            .map_err(failed_in("preflight", env))?;
        operator
            .phase(
                "state backend",
                bootstrap::bootstrap(&config, environment, false),
            )
            .await
            .map_err(failed_in("state backend", env))?;
        operator
            .phase("infrastructure (terraform)", async {
                workspace.init(environment).await?;
                if workspace.plan(environment, false, true).await? {
                    let destructive = workspace.summarise(environment).await?.destructive().len();
                    operator.confirm_destruction(destructive)?;
                    workspace.apply(environment).await?;
                }
                Ok(())
            })
            .await
            .map_err(failed_in("infrastructure", env))?;
        let context = operator
            .phase(
                "cluster access (kubeconfig)",
                eks::write_kubeconfig(&config, environment, &self.kubeconfig),
            )
            .await
            .map_err(failed_in("cluster access", env))?;
        Ok(ClusterOptions {
            kubeconfig: Some(self.kubeconfig.clone()),
            context: Some(context),
        })
    }
}
