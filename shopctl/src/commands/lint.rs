//! `shopctl lint` (filled in next).

use clap::Args;

use super::{EnvArgs, Outcome};

#[derive(Debug, Args)]
pub struct LintArgs {
    #[command(flatten)]
    env: EnvArgs,
}

pub fn run(args: LintArgs) -> anyhow::Result<Outcome> {
    let _ = args.env.load()?;
    Ok(Outcome::Success)
}
