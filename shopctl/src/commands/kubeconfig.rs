//! `shopctl kubeconfig`: write or merge the environment's EKS cluster into a kubeconfig,
//! as `aws eks update-kubeconfig` does, without the aws CLI: the entry runs
//! `shopctl eks-token` for its credentials.

use std::path::PathBuf;

use clap::Args;
use shopctl::infra::{self, eks};

use super::{EnvArgs, Outcome};

#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    #[command(flatten)]
    env: EnvArgs,
    /// File to write or merge into (default: the first KUBECONFIG path, else ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
}

pub(super) fn default_kubeconfig() -> PathBuf {
    std::env::var_os("KUBECONFIG")
        .and_then(|paths| std::env::split_paths(&paths).next())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".kube/config")))
        .unwrap_or_else(|| PathBuf::from("kubeconfig"))
}

pub fn exec(args: KubeconfigArgs) -> anyhow::Result<Outcome> {
    let (_, environment) = args.env.load()?;
    let path = args.kubeconfig.unwrap_or_else(default_kubeconfig);
    let context = super::block_on(async {
        let config = infra::aws_config(&environment).await;
        infra::check_account(&config, &environment).await?;
        eks::write_kubeconfig(&config, &environment, &path).await
    })?;
    println!(
        "wrote context {context} to {} (current context now)",
        path.display()
    );
    Ok(Outcome::Success)
}
