//! `shopctl up`: the local platform as supervised processes, or a cloud environment from
//! its infrastructure to a validated release.

use clap::Args;
use shopctl::reports::Target;

use super::cluster::ClusterArgs;
use super::{EnvArgs, Outcome};

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    /// Stay attached; Ctrl-C stops everything (local).
    #[arg(long)]
    pub foreground: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Clusters: deploy onto the cluster the kubeconfig points at, without provisioning
    /// (no bootstrap, terraform or kubeconfig phases).
    #[arg(long)]
    pub skip_infra: bool,
    /// Clusters: go back to the previous release if the rollout fails.
    #[arg(long)]
    pub atomic: bool,
    /// Clusters: confirm infrastructure changes that delete or replace resources.
    #[arg(long)]
    pub yes: bool,
    /// Clusters: how long to wait for the rollout, e.g. 10m.
    #[arg(long, default_value = "10m", value_parser = super::parse_duration)]
    pub timeout: std::time::Duration,
    /// Clusters: Terraform root module (default: terraform/envs/<env>).
    #[arg(long, value_name = "DIR")]
    pub stack: Option<std::path::PathBuf>,
    /// Clusters: releases to keep in the history.
    #[arg(long, env = "SHOPCTL_HISTORY_MAX", default_value_t = 10)]
    pub history_max: usize,
}

pub fn exec(args: UpArgs) -> anyhow::Result<Outcome> {
    let (templates, environment) = args.env.load()?;
    match Target::of(&environment) {
        Target::Local => super::local::up(args, &environment),
        Target::Cluster => super::cloud::up(args, templates, environment),
    }
}
