//! pg_dump and pg_restore: the ones next to the PostgreSQL server binaries shopctl finds,
//! else the ones on PATH.

use std::path::PathBuf;

pub fn path(tool: &str) -> PathBuf {
    crate::local::postgres::find()
        .map(|binaries| binaries.tool(tool))
        .ok()
        .filter(|path| path.is_file())
        .or_else(|| crate::local::supervisor::which(tool))
        .unwrap_or_else(|| PathBuf::from(tool))
}
