//! The library core of `shopctl`. Commands in `src/commands` parse arguments and print;
//! everything here returns plain data and is testable without a terminal, a cluster or a
//! cloud account.

pub mod backup;
pub mod cluster;
pub mod db_roles;
pub mod env;
pub mod infra;
pub mod lint;
pub mod load;
pub mod local;
pub mod manifest;
pub mod platform;
pub mod private;
pub mod progress;
pub mod release;
pub mod render;
pub mod reports;
pub mod runbook;
pub mod secrets;
pub mod slo;
pub mod templates;
pub mod validate;
