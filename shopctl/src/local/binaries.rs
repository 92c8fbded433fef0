//! Finding the service binaries: next to shopctl itself (a release archive, `target/…`),
//! built on demand when shopctl runs from a checkout and they are missing.

use std::path::{Path, PathBuf};

use anyhow::Context;

pub const SERVICES: [&str; 3] = ["ml", "backend", "frontend"];

pub fn binary_name(service: &str) -> String {
    format!("shopmicro-{service}")
}

/// The directory holding the service binaries, building them first if shopctl runs from a
/// workspace checkout where they have not been built.
pub fn locate(on_build: impl FnOnce()) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the shopctl binary")?;
    let dir = exe
        .parent()
        .context("shopctl has no directory")?
        .to_path_buf();
    if all_present(&dir) {
        return Ok(dir);
    }
    let Some(workspace) = workspace_root(&dir) else {
        anyhow::bail!(
            "the service binaries ({}) are not next to shopctl in {}; install them there",
            SERVICES.map(binary_name).join(", "),
            dir.display()
        );
    };
    on_build();
    let release = dir.file_name().is_some_and(|name| name == "release");
    let mut cargo =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    cargo
        .current_dir(&workspace)
        .args(["build", "--quiet", "--bins"]);
    if release {
        cargo.arg("--release");
    }
    for service in SERVICES {
        cargo.args(["-p", &binary_name(service)]);
    }
    let status = cargo
        .status()
        .context("running cargo to build the services (is cargo installed?)")?;
    anyhow::ensure!(
        status.success(),
        "building the services failed; see cargo's output above"
    );
    anyhow::ensure!(
        all_present(&dir),
        "cargo built the services but not into {}",
        dir.display()
    );
    Ok(dir)
}

fn all_present(dir: &Path) -> bool {
    SERVICES
        .iter()
        .all(|service| dir.join(binary_name(service)).is_file())
}

/// `<workspace>/target/<profile>` → `<workspace>` when it holds the workspace manifest.
fn workspace_root(binary_dir: &Path) -> Option<PathBuf> {
    let workspace = binary_dir.parent()?.parent()?;
    let manifest = std::fs::read_to_string(workspace.join("Cargo.toml")).ok()?;
    manifest
        .contains("[workspace]")
        .then(|| workspace.to_path_buf())
}
