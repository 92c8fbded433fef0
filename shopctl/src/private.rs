//! Files and directories only their owner may read: backups, downloaded dumps, rendered
//! Secrets, kubeconfigs, the cart-signing key. They are created private from the first
//! byte (a chmod after writing leaves a window), and files are written whole — to a
//! temporary name, then renamed — so a reader never sees half of one.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Writes `bytes` to `path` (mode 0600), replacing what was there.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".shopctl-new");
    let temporary = path.with_file_name(name);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .and_then(|mut file| {
            // An existing temporary (a crash earlier) keeps its mode: set it.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// Creates `path` (and its parents) with the directory itself private (0700).
pub fn create_dir(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

/// A new, empty file at `path` (mode 0600) to stream into.
pub async fn create(path: &Path) -> std::io::Result<tokio::fs::File> {
    tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn what_is_made_here_is_the_owners_alone() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("backups/one");
        create_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("manifest.json");
        std::fs::write(&file, "readable by all").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(&file, b"private").unwrap();
        assert_eq!(mode(&file), 0o600, "replacing a file makes it private");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "private");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary left"
        );
        let streamed = dir.join("dump.pgc");
        drop(create(&streamed).await.unwrap());
        assert_eq!(mode(&streamed), 0o600);
    }
}
