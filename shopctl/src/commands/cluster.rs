//! Which cluster a command talks to, as kubectl users expect: kubeconfig, context,
//! namespace.

use std::path::PathBuf;

use clap::Args;
use shopctl::cluster::ClusterOptions;
use shopctl::env::Environment;
use shopctl::platform::{self, Platform};

use super::EnvArgs;

/// Which cluster, as kubectl users expect (kubeconfig, context; in-cluster when neither).
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (default: the current context, which must point at the
    /// environment's cluster).
    #[arg(long)]
    context: Option<String>,
    /// Namespace the platform runs in (default: the environment's `namespace`).
    #[arg(long, short = 'n')]
    namespace: Option<String>,
}

/// What a read-only view of an environment takes: which one, where, how to print it.
#[derive(Debug, Args)]
pub struct ViewArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[arg(long, value_enum, default_value = "table")]
    pub output: super::OutputFormat,
}

impl ClusterArgs {
    /// The environment as this invocation sees it: --namespace moves the platform.
    pub(super) fn load(
        &self,
        env: &EnvArgs,
    ) -> anyhow::Result<(shopctl::templates::Templates, Environment)> {
        let (templates, mut environment) = env.load()?;
        if let Some(namespace) = &self.namespace {
            environment.namespace = namespace.clone();
        }
        Ok((templates, environment))
    }

    /// The environment's platform, opened once per command: the environment loaded (and
    /// moved by --namespace), progress drawn for the operator.
    pub(super) fn open(&self, env: &EnvArgs) -> anyhow::Result<Box<dyn Platform>> {
        let (_, environment) = self.load(env)?;
        Ok(platform::open(
            environment,
            platform::Options {
                cluster: self.options(),
                forwarded: self.forwarded(),
                templates: env.templates.clone(),
                observer: super::progress::observer(),
            },
        ))
    }

    /// These arguments again, for a `shopctl` a runbook action runs.
    pub fn forwarded(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(kubeconfig) = &self.kubeconfig {
            args.extend(["--kubeconfig".to_owned(), kubeconfig.display().to_string()]);
        }
        if let Some(context) = &self.context {
            args.extend(["--context".to_owned(), context.clone()]);
        }
        if let Some(namespace) = &self.namespace {
            args.extend(["--namespace".to_owned(), namespace.clone()]);
        }
        args
    }

    /// The kubeconfig to write: the one named on the command line, else `default`.
    pub fn kubeconfig_or(&self, default: PathBuf) -> PathBuf {
        self.kubeconfig.clone().unwrap_or(default)
    }

    pub fn options(&self) -> ClusterOptions {
        ClusterOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
        }
    }
}
