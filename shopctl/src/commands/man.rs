//! `shopctl man`: the manual pages, as clap_mangen renders them from the command line
//! itself — `shopctl(1)` on stdout, or one page per subcommand written to a directory.

use std::path::PathBuf;

use clap::{Args, CommandFactory};

use super::{Cli, Outcome};

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write shopctl.1 and a page per subcommand (shopctl-backup.1, …) into this directory
    /// instead of printing shopctl(1).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

pub fn exec(args: ManArgs) -> anyhow::Result<Outcome> {
    let command = Cli::command();
    match args.out {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            clap_mangen::generate_to(command, &dir)?;
            eprintln!(
                "wrote the manual pages to {} (`man -l {}/shopctl.1` reads one)",
                dir.display(),
                dir.display()
            );
        }
        None => clap_mangen::Man::new(command).render(&mut std::io::stdout())?,
    }
    Ok(Outcome::Success)
}
