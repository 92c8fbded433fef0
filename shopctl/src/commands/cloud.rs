//! The cloud half of `shopctl up`: the release rendered, then the phases of
//! `shopctl::platform::cloud_up` (account, state backend, Terraform, kubeconfig, base,
//! apply, validate), each shown with its duration, and the tables at the end.

use serde_json::Value;
use shopctl::cluster::apply::ApplyOptions;
use shopctl::cluster::deploy::{BasePolicy, DeployOptions, DeployReport};
use shopctl::platform::cloud_up::{CloudUp, Operator, UpOutcome};
use shopctl::render::{self, SecretMode};
use shopctl::secrets::SecretSource;

use super::Outcome;
use super::apply::print_deploy_table;
use super::infra::phase;
use super::kubeconfig::default_kubeconfig;
use super::progress::progress_reporter;
use super::up::UpArgs;

/// The operator's side of the phases: a spinner or a line each, consent asked on the
/// terminal, the release's table as soon as it is applied.
struct Terminal<'a> {
    env: &'a str,
    yes: bool,
}

impl Operator for Terminal<'_> {
    async fn phase<T>(
        &self,
        name: &str,
        work: impl std::future::Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        phase(name, work).await
    }

    fn confirm_destruction(&self, destructive: usize) -> anyhow::Result<()> {
        super::confirm::by_typing(
            &format!(
                "delete or replace {destructive} resource(s) of {}",
                self.env
            ),
            "yes",
            self.yes || destructive == 0,
        )
    }

    fn deployed(&self, report: &DeployReport) {
        print_deploy_table(report);
    }
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
    let up = CloudUp {
        environment: &environment,
        manifests: &manifests,
        cluster: args.cluster.options(),
        skip_infra: args.skip_infra,
        stack: args.stack.clone(),
        kubeconfig: args.cluster.kubeconfig_or(default_kubeconfig()),
        deploy: DeployOptions {
            apply: ApplyOptions {
                dry_run: false,
                force: false,
            },
            wait: Some(args.timeout),
            atomic: args.atomic,
            keep: args.history_max,
            cause: "up".into(),
            base: BasePolicy::Current,
            completes: None,
        },
        on_rollout: progress_reporter(),
    };
    let terminal = Terminal {
        env: &env,
        yes: args.yes,
    };
    match super::block_on(up.run(&terminal))? {
        UpOutcome::RolloutFailed => {
            eprintln!(
                "`shopctl up` stopped: the rollout failed (see above); fix it and re-run `shopctl up --env {env}`"
            );
            Ok(Outcome::CheckFailed)
        }
        UpOutcome::Validated(report) => {
            super::validate::print_table(&report, false);
            Ok(Outcome::judged(!report.failed()))
        }
    }
}
