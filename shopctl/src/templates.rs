//! Where templates and environment files come from: embedded in the binary (the default),
//! or a directory laid out like the repository's `templates/` (`--templates DIR`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_templates.rs"));
}

#[derive(Debug, Clone)]
pub struct Templates {
    files: BTreeMap<String, String>,
    /// For error messages: "embedded templates" or the directory.
    pub origin: String,
}

impl Templates {
    pub fn embedded() -> Self {
        Self {
            files: embedded::FILES
                .iter()
                .map(|(path, text)| ((*path).to_owned(), (*text).to_owned()))
                .collect(),
            origin: "embedded templates".to_owned(),
        }
    }

    pub fn from_dir(root: &Path) -> anyhow::Result<Self> {
        let mut files = BTreeMap::new();
        read_dir(root, root, &mut files)
            .with_context(|| format!("reading templates from {}", root.display()))?;
        anyhow::ensure!(
            !files.is_empty(),
            "no templates found in {}",
            root.display()
        );
        Ok(Self {
            files,
            origin: root.display().to_string(),
        })
    }

    /// `--templates DIR` when given, otherwise the embedded copy.
    pub fn select(dir: Option<&PathBuf>) -> anyhow::Result<Self> {
        match dir {
            Some(dir) => Self::from_dir(dir),
            None => Ok(Self::embedded()),
        }
    }

    pub fn get(&self, path: &str) -> Option<&str> {
        self.files.get(path).map(String::as_str)
    }

    /// Files under a directory prefix such as `k8s/`, in path order.
    pub fn under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.files
            .iter()
            .filter(move |(path, _)| path.starts_with(prefix))
            .map(|(path, text)| (path.as_str(), text.as_str()))
    }

    pub fn environment_names(&self) -> Vec<String> {
        self.under("environments/")
            .filter_map(|(path, _)| path.strip_prefix("environments/")?.strip_suffix(".yaml"))
            .map(str::to_owned)
            .collect()
    }
}

fn read_dir(root: &Path, dir: &Path, files: &mut BTreeMap<String, String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            read_dir(root, &path, files)?;
        } else if let Ok(relative) = path.strip_prefix(root) {
            files.insert(
                relative.to_string_lossy().replace('\\', "/"),
                std::fs::read_to_string(&path)?,
            );
        }
    }
    Ok(())
}
