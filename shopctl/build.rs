//! Embeds `templates/` (environments, Kubernetes manifests, observability configs) and
//! `runbooks/` into the binary, so `shopctl` works from any directory and in a container
//! with nothing else.

use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    embed(
        &manifest_dir.join("../templates"),
        &out.join("embedded_templates.rs"),
    );
    embed(
        &manifest_dir.join("../runbooks"),
        &out.join("embedded_runbooks.rs"),
    );
}

/// Writes `pub static FILES: &[(relative path, contents)]` for every file under `root`.
fn embed(root: &Path, out: &Path) {
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect(root, root, &mut files);
    files.sort();
    let mut generated = String::from("pub static FILES: &[(&str, &str)] = &[\n");
    for (relative, absolute) in files {
        println!("cargo:rerun-if-changed={}", absolute.display());
        generated.push_str(&format!(
            "    ({relative:?}, include_str!({:?})),\n",
            absolute.display().to_string()
        ));
    }
    generated.push_str("];\n");
    std::fs::write(out, generated).expect("writing an embedded file index");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect(root, &path, files);
        } else if let Ok(relative) = path.strip_prefix(root) {
            let relative = relative.to_string_lossy().replace('\\', "/");
            files.push((relative, path.canonicalize().unwrap_or(path)));
        }
    }
}
