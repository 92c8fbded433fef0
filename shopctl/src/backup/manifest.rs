//! What a backup contains, written beside the dump.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Manifest {
    pub id: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Where it came from, without credentials.
    pub source: String,
    pub server_version: String,
    /// The newest applied migration, so a restore knows which code the data fits.
    pub schema_version: Option<i64>,
    pub format: String,
    pub size_bytes: u64,
    pub sha256: String,
    pub tables: BTreeMap<String, TableFigures>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TableFigures {
    pub rows: i64,
    /// MD5 over the table's rows in primary-key order: equal content, equal checksum.
    pub checksum: String,
}

/// The result of restoring this backup into a scratch database and comparing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Verification {
    pub at: chrono::DateTime<chrono::Utc>,
    pub ok: bool,
    pub restore_millis: u64,
    pub detail: String,
    /// The scratch database it was restored into (and dropped), to trace or clean up.
    #[serde(default)]
    pub scratch_database: String,
}
