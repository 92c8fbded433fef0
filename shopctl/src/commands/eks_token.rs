//! `shopctl eks-token` (hidden): the ExecCredential a kubeconfig entry written by
//! `shopctl kubeconfig` runs, a presigned STS token as `aws eks get-token` prints.

use clap::Args;
use shopctl::infra::{self, eks};

use super::{EnvArgs, Outcome};

#[derive(Debug, Args)]
pub struct EksTokenArgs {
    #[command(flatten)]
    env: EnvArgs,
}

pub fn exec(args: EksTokenArgs) -> anyhow::Result<Outcome> {
    let (_, environment) = args.env.load()?;
    let (token, expires) = super::block_on(async {
        let config = infra::aws_config(&environment).await;
        eks::token(&config, &environment).await
    })?;
    println!("{}", eks::exec_credential(&token, expires));
    Ok(Outcome::Success)
}
