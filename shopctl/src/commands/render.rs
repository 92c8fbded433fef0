//! `shopctl render`: the manifests of an environment, to stdout as one YAML stream or to a
//! directory as one file per object.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use shopctl::manifest::{self, Manifest};
use shopctl::render::{self, SecretMode};
use shopctl::secrets::SecretSource;

use super::{EnvArgs, Outcome};

/// Marks a directory as shopctl's output, so re-rendering may replace its files.
const MARKER: &str = ".shopctl-render";

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    env: EnvArgs,
    /// Write one file per object into DIR instead of a stream to stdout.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Include Secret values (from SHOPMICRO_* variables or the secrets file) instead
    /// of `[redacted]`.
    #[arg(long)]
    show_secrets: bool,
    /// Secrets file (default .shopctl/secrets/<env>.yaml).
    #[arg(long, value_name = "FILE")]
    secrets_file: Option<PathBuf>,
}

pub fn exec(args: RenderArgs) -> anyhow::Result<Outcome> {
    let (templates, environment) = args.env.load()?;
    let secrets = if args.show_secrets {
        SecretMode::Values(
            SecretSource::new(&environment.name, args.secrets_file.as_deref())
                .resolve(&environment)?,
        )
    } else {
        SecretMode::Redacted
    };
    // Everything is rendered in memory first: an error leaves --out untouched.
    let objects = render::render(&templates, &environment, &secrets)?;
    match &args.out {
        None => {
            use std::io::Write;
            // A reader that has seen enough (`| head`, `grep -m1`) closes the pipe: not an error.
            match std::io::stdout()
                .lock()
                .write_all(manifest::to_stream(&objects).as_bytes())
            {
                Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {}
                result => result?,
            }
        }
        Some(dir) => {
            write_dir(dir, &objects)?;
            eprintln!("wrote {} objects to {}", objects.len(), dir.display());
        }
    }
    Ok(Outcome::Success)
}

fn write_dir(dir: &Path, objects: &[Manifest]) -> anyhow::Result<()> {
    if dir.exists() {
        let marker = dir.join(MARKER);
        let empty = std::fs::read_dir(dir)?.next().is_none();
        anyhow::ensure!(
            empty || marker.exists(),
            "{} exists and was not written by shopctl render; choose an empty or new directory",
            dir.display()
        );
        // Objects removed from the templates must not linger as stale files.
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|ext| ext == "yaml") {
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing {}", path.display()))?;
            }
        }
    } else {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(
        dir.join(MARKER),
        "files here are replaced by `shopctl render --out`\n",
    )?;
    for (index, object) in objects.iter().enumerate() {
        let path = dir.join(object.file_name(index));
        // A Secret (shown with --show-secrets) is for its owner's eyes only.
        if object.value["kind"] == "Secret" {
            shopctl::private::write(&path, object.to_yaml().as_bytes())
        } else {
            std::fs::write(&path, object.to_yaml())
        }
        .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
