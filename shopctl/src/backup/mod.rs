//! Database backups that are proven to restore.
//!
//! A backup is a directory `<id>/` holding `dump.pgc` (pg_dump's compressed custom format)
//! and `manifest.json` (when, which server and schema, size, SHA-256, and per-table row
//! counts and content checksums). The dump and the table figures come from one exported
//! snapshot, so they describe exactly the same data even while writes continue. A backup
//! is written under `<id>.partial/` and renamed when complete: an interrupted backup never
//! looks like a finished one.

pub mod location;
pub mod manifest;
pub mod metrics;
pub mod retention;
pub mod store;
pub mod tools;

mod dump;
mod restore;

/// The services that read or write the database: stopped while a restore replaces it, on
/// either target.
pub const WRITERS: [&str; 3] = ["frontend", "backend", "ml"];

pub use dump::backup;
pub use location::Location;
pub use manifest::{Manifest, Verification};
pub use restore::{RestoreReport, check_artefact, restore, verify, verify_and_push};
