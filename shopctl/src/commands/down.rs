//! `shopctl down`: stop the local platform, or uninstall a cluster release as `helm
//! uninstall` does; the data stays unless `--purge`.

use clap::Args;
use shopctl::platform::Down;
use shopctl::reports::Target;

use super::cluster::ClusterArgs;
use super::{EnvArgs, Outcome, OutputFormat};

#[derive(Debug, Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Also delete the data: locally the private database and logs; on a cluster the
    /// database's volume claims and the release history (backups are always kept).
    #[arg(long)]
    pub purge: bool,
    /// Do not ask first (on a cluster `down` always asks; locally only with --purge).
    #[arg(long)]
    pub yes: bool,
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

pub fn exec(args: DownArgs) -> anyhow::Result<Outcome> {
    let platform = args.cluster.open(&args.env)?;
    let environment = platform.environment();
    let what = match (platform.target(), args.purge) {
        (Target::Local, false) => None,
        (Target::Local, true) => Some(format!(
            "delete all local data in {}",
            shopctl::local::state::StateDir::resolve(&environment.name)
                .path()
                .display()
        )),
        (Target::Cluster, purge) => Some(format!(
            "uninstall the `{}` platform from namespace {} {}",
            environment.name,
            environment.namespace,
            if purge {
                "and delete its database volumes and release history (backups stay)"
            } else {
                "(the database volumes, backups and release history stay)"
            }
        )),
    };
    if let Some(what) = what {
        super::confirm::by_typing_the_name(&environment.name, &what, args.yes)?;
    }
    let down = super::block_on(platform.down(args.purge))?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&down)?),
        // Locally the platform has said what it stopped and deleted as it went.
        OutputFormat::Table => match &down {
            Down::Local(_) => {}
            Down::Cluster(uninstalled) => {
                eprintln!(
                    "uninstalled release {} of {}: {} objects deleted",
                    uninstalled.revision,
                    environment.name,
                    uninstalled.deleted.len()
                );
                for id in &uninstalled.left_alone {
                    eprintln!("left alone (no longer shopctl's): {id}");
                }
                for id in &uninstalled.claims_kept {
                    eprintln!("kept: {id} (`down --purge` deletes it)");
                }
                for id in &uninstalled.purged {
                    eprintln!("purged: {id}");
                }
            }
        },
    }
    Ok(Outcome::Success)
}
