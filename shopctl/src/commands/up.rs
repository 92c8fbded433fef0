//! `shopctl up`: the local platform as supervised processes, or a cloud environment from
//! its infrastructure to a validated release.

use std::time::Instant;

use clap::Args;
use shopctl::env::Environment;
use shopctl::local::binaries;
use shopctl::local::release::Desired;
use shopctl::platform::{self, LocalPlatform, Platform};
use shopctl::reports::{LocalStatus, Status, Target};

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
        Target::Local => local(args, environment),
        Target::Cluster => super::cloud::up(args, templates, environment),
    }
}

/// The local platform: a release of the service binaries and settings, started under a
/// detached supervisor (or in the foreground), unless it already runs unchanged.
fn local(args: UpArgs, environment: Environment) -> anyhow::Result<Outcome> {
    let binaries =
        binaries::locate(|| eprintln!("building the services (first run from a checkout)…"))?;
    let platform = LocalPlatform::new(
        environment,
        platform::Options {
            cluster: Default::default(),
            forwarded: Vec::new(),
            templates: args.env.templates.clone(),
            observer: super::progress::observer(),
        },
    );
    let dir = platform.state_dir();
    dir.create()?;
    let desired = Desired::from(platform.environment(), &binaries)?;
    let store = platform.releases();
    if let Some(state) = platform.running()? {
        let current = state.revision.map(|r| store.get(r)).transpose()?;
        if current.is_some_and(|release| release.digest == desired.digest()) {
            eprintln!(
                "already running revision {} with no changes; `shopctl down` stops it",
                state.revision.unwrap_or_default()
            );
            super::status::print(&Status::Local(LocalStatus::of(&state)));
            return Ok(Outcome::Success);
        }
        let (release, _) = store.record(&desired, "up")?;
        if args.foreground {
            eprintln!(
                "the platform is already running in the background: --foreground does not apply"
            );
        }
        eprintln!(
            "configuration or binaries changed: handing each service over to release {} (PostgreSQL, Redis and Prometheus keep running)",
            release.revision
        );
        let began = Instant::now();
        let storefront = platform.switch_to(release.revision)?;
        return ready(&platform, &storefront, began);
    }
    let (release, created) = store.record(&desired, "up")?;
    let novelty = if created { "new" } else { "unchanged" };
    eprintln!("release {} ({novelty})", release.revision);
    if args.foreground {
        return super::supervise::supervise_here(&args.env, dir, release.revision);
    }
    let began = Instant::now();
    let storefront = platform.start(release.revision)?;
    ready(&platform, &storefront, began)
}

/// What an operator wants to see once the platform is ready.
fn ready(platform: &LocalPlatform, storefront: &str, began: Instant) -> anyhow::Result<Outcome> {
    eprintln!("ready in {:.1}s", began.elapsed().as_secs_f64());
    if let Some(state) = platform.running()? {
        super::status::print(&Status::Local(LocalStatus::of(&state)));
    }
    println!("storefront: {storefront}");
    eprintln!("`shopctl down` stops it; `shopctl logs backend -f` follows a service's log");
    Ok(Outcome::Success)
}
