//! `shopctl up` for a cloud environment, `shopctl kubeconfig` and the hidden `eks-token`
//! its kubeconfig runs: from an empty account to a running, validated platform, each phase
//! visible with its duration. Every phase is idempotent, so re-running `up` resumes: a
//! finished phase is checked (found, no changes, release current) rather than redone.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde_json::Value;
use shopctl::cluster::Cluster;
use shopctl::cluster::apply::ApplyOptions;
use shopctl::cluster::base;
use shopctl::cluster::deploy::{BasePolicy, DeployOptions, Deployer};
use shopctl::infra::terraform::Workspace;
use shopctl::infra::{self, bootstrap, eks};
use shopctl::render::{self, SecretMode};
use shopctl::secrets::SecretSource;
use shopctl::validate::{self, ClusterTarget, Selection};

use super::cluster::{ClusterArgs, print_deploy_table, progress_reporter};
use super::infra::phase;
use super::up::UpArgs;
use super::{EnvArgs, Outcome};

#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    #[command(flatten)]
    env: EnvArgs,
    /// File to write or merge into (default: the first KUBECONFIG path, else ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EksTokenArgs {
    #[command(flatten)]
    env: EnvArgs,
}

fn default_kubeconfig() -> PathBuf {
    std::env::var_os("KUBECONFIG")
        .and_then(|paths| std::env::split_paths(&paths).next())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".kube/config")))
        .unwrap_or_else(|| PathBuf::from("kubeconfig"))
}

/// Writes or merges the environment's EKS entry; the path written.
async fn write_kubeconfig(
    config: &aws_config::SdkConfig,
    environment: &shopctl::env::Environment,
    path: &std::path::Path,
) -> anyhow::Result<String> {
    let access = eks::describe(config, environment).await?;
    let existing = path
        .exists()
        .then(|| kube::config::Kubeconfig::read_from(path))
        .transpose()
        .with_context(|| format!("reading {}", path.display()))?;
    let shopctl = std::env::current_exe()?.display().to_string();
    let merged = eks::merge_kubeconfig(existing, &access, environment, &shopctl)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_saphyr::to_string(&merged)?)
        .with_context(|| format!("writing {}", path.display()))?;
    // It names credentials' sources, not credentials, but kubeconfigs are private by habit.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(access.arn)
}

pub fn kubeconfig(args: KubeconfigArgs) -> anyhow::Result<Outcome> {
    let (_, environment) = args.env.load()?;
    let path = args.kubeconfig.unwrap_or_else(default_kubeconfig);
    let context = super::block_on(async {
        let config = infra::aws_config(&environment).await;
        infra::check_account(&config, &environment).await?;
        write_kubeconfig(&config, &environment, &path).await
    })?;
    println!(
        "wrote context {context} to {} (current context now)",
        path.display()
    );
    Ok(Outcome::Success)
}

pub fn eks_token(args: EksTokenArgs) -> anyhow::Result<Outcome> {
    let (_, environment) = args.env.load()?;
    let (token, expires) = super::block_on(async {
        let config = infra::aws_config(&environment).await;
        eks::token(&config, &environment).await
    })?;
    println!("{}", eks::exec_credential(&token, expires));
    Ok(Outcome::Success)
}

/// Which phase failed, and what to do next.
fn failed_in(name: &str, env: &str) -> impl FnOnce(anyhow::Error) -> anyhow::Error {
    let message = format!(
        "`shopctl up` stopped in phase \"{name}\"; fix the cause and re-run `shopctl up --env {env}` (finished phases are checked, not redone)"
    );
    move |err| err.context(message)
}

pub(super) fn up(
    args: UpArgs,
    templates: shopctl::templates::Templates,
    environment: shopctl::env::Environment,
) -> anyhow::Result<Outcome> {
    let env = environment.name.clone();
    let secrets = SecretSource::new(&env, None).resolve(&environment)?;
    let manifests: Vec<Value> =
        render::render(&templates, &environment, &SecretMode::Values(secrets))?
            .into_iter()
            .map(|m| m.value)
            .collect();
    super::block_on(async {
        let mut cluster_args: ClusterArgs = args.cluster.clone();
        if !args.skip_infra {
            let config = infra::aws_config(&environment).await;
            let workspace = Workspace::new(&environment, args.stack.as_deref())?;
            phase("preflight: terraform, AWS account", async {
                workspace.check_version().await?;
                infra::check_account(&config, &environment).await
            })
            .await
            .map_err(failed_in("preflight", &env))?;
            phase(
                "state backend",
                bootstrap::bootstrap(&config, &environment, false),
            )
            .await
            .map_err(failed_in("state backend", &env))?;
            phase("infrastructure (terraform)", async {
                workspace.init(&environment).await?;
                if workspace.plan(&environment, false, true).await? {
                    let destructive = workspace.summarise(&environment).await?.destructive().len();
                    super::confirm::by_typing(
                        &format!("delete or replace {destructive} resource(s) of {env}"),
                        "yes",
                        args.yes || destructive == 0,
                    )?;
                    workspace.apply(&environment).await?;
                }
                Ok(())
            })
            .await
            .map_err(failed_in("infrastructure", &env))?;
            let path = cluster_args.kubeconfig_or(default_kubeconfig());
            let context = phase(
                "cluster access (kubeconfig)",
                write_kubeconfig(&config, &environment, &path),
            )
            .await
            .map_err(failed_in("cluster access", &env))?;
            cluster_args = cluster_args.with(path, context);
        }
        let cluster = phase(
            "connecting to the cluster",
            Cluster::connect(&cluster_args.options(), &environment),
        )
        .await
        .map_err(failed_in("cluster access", &env))?;
        if !args.skip_infra {
            // The administrator's part: cluster-scoped objects the release relies on.
            let (base, _) = base::split(&manifests);
            let apply = ApplyOptions {
                dry_run: false,
                force: false,
            };
            phase(
                "cluster base (administrator)",
                base::apply(&cluster, &base, &apply),
            )
            .await
            .map_err(failed_in("cluster base", &env))?;
        }
        let deployer = Deployer {
            cluster: &cluster,
            environment: env.clone(),
            namespace: environment.namespace.clone(),
            on_progress: progress_reporter(),
        };
        let options = DeployOptions {
            apply: ApplyOptions {
                dry_run: false,
                force: false,
            },
            wait: Some(args.timeout),
            atomic: args.atomic,
            keep: args.history_max,
            cause: "up".into(),
            base: BasePolicy::Current,
        };
        let report = phase(
            "apply and wait for the rollout",
            deployer.deploy(&manifests, &options),
        )
        .await
        .map_err(failed_in("apply", &env))?;
        print_deploy_table(&report);
        if report.rollout_failed() {
            eprintln!(
                "`shopctl up` stopped: the rollout failed (see above); fix it and re-run `shopctl up --env {env}`"
            );
            return Ok(Outcome::CheckFailed);
        }
        let selection = Selection {
            only: Vec::new(),
            skip: Vec::new(),
            per_check: std::time::Duration::from_secs(5),
            overall: std::time::Duration::from_secs(30),
            sequential: false,
        };
        let report = phase("validate", async {
            let target = ClusterTarget::load(&cluster, &environment).await?;
            anyhow::Ok(validate::run(&env, &target, &selection).await)
        })
        .await
        .map_err(failed_in("validate", &env))?;
        super::validate::print_table(&report);
        Ok(if report.failed() {
            Outcome::CheckFailed
        } else {
            Outcome::Success
        })
    })
}
