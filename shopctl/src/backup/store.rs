//! A directory of backups.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::manifest::Manifest;

pub struct BackupDir {
    pub root: PathBuf,
}

impl BackupDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Finished backups, newest first. Unfinished (`*.partial`) directories are ignored.
    pub fn list(&self) -> anyhow::Result<Vec<Manifest>> {
        let mut backups = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Ok(backups);
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "partial") || !path.is_dir() {
                continue;
            }
            if let Ok(manifest) = read_manifest(&path) {
                backups.push(manifest);
            }
        }
        backups.sort_by_key(|b| std::cmp::Reverse(b.created_at));
        Ok(backups)
    }

    pub fn path_of(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub fn get(&self, id: &str) -> anyhow::Result<Manifest> {
        let path = self.path_of(id);
        read_manifest(&path).with_context(|| {
            let known: Vec<String> = self
                .list()
                .unwrap_or_default()
                .into_iter()
                .map(|m| m.id)
                .collect();
            if known.is_empty() {
                format!(
                    "no backup `{id}` in {} (there are none yet)",
                    self.root.display()
                )
            } else {
                format!(
                    "no backup `{id}` in {}; known: {}",
                    self.root.display(),
                    known.join(", ")
                )
            }
        })
    }

    /// The given backup id, or the newest backup's.
    pub fn resolve(&self, id: Option<String>) -> anyhow::Result<String> {
        match id {
            Some(id) => Ok(id),
            None => Ok(self.newest()?.id),
        }
    }

    pub fn newest(&self) -> anyhow::Result<Manifest> {
        self.list()?
            .into_iter()
            .next()
            .with_context(|| format!("no backups in {}", self.root.display()))
    }

    /// Rewrites a manifest atomically (verification results are added later).
    pub fn save(&self, manifest: &Manifest) -> anyhow::Result<()> {
        write_manifest(&self.path_of(&manifest.id), manifest)
    }

    pub fn delete(&self, id: &str) -> anyhow::Result<()> {
        std::fs::remove_dir_all(self.path_of(id)).with_context(|| format!("deleting backup {id}"))
    }
}

pub fn read_manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let file = dir.join("manifest.json");
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is damaged", file.display()))
}

pub fn write_manifest(dir: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    crate::private::write(
        &dir.join("manifest.json"),
        &serde_json::to_vec_pretty(manifest)?,
    )?;
    Ok(())
}
