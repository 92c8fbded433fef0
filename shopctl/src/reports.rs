//! The reports shopctl prints with `--output json`, and the JSON Schemas it publishes for
//! them (`shopctl schema <report>`). Each schema is generated from the report's type, so
//! the contract CI relies on cannot drift from what is printed; tests validate real
//! outputs against it.

use clap::ValueEnum;
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::Serialize;
use serde_json::Value;

use crate::{cluster, local};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportKind {
    /// `shopctl lint --output json`
    Lint,
    /// `shopctl validate --output json`
    Validate,
    /// `shopctl history --output json`
    History,
}

impl ReportKind {
    /// The report's JSON Schema (draft 2020-12), describing what is printed (the
    /// serialising side of each type).
    pub fn schema(self) -> Value {
        let generator = SchemaSettings::draft2020_12()
            .for_serialize()
            .into_generator();
        let (mut schema, command) = match self {
            ReportKind::Lint => (
                generator.into_root_schema_for::<crate::lint::Report>(),
                "lint",
            ),
            ReportKind::Validate => (
                generator.into_root_schema_for::<crate::validate::Report>(),
                "validate",
            ),
            ReportKind::History => (generator.into_root_schema_for::<History>(), "history"),
        };
        schema.insert(
            "title".into(),
            format!("shopctl {command} --output json").into(),
        );
        schema.to_value()
    }
}

/// Where an environment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Processes on this machine, under shopctl's supervisor.
    Local,
    /// A Kubernetes cluster.
    Cluster,
}

/// `shopctl history --output json`: an environment's releases, oldest first.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct History {
    pub environment: String,
    pub target: Target,
    /// The revision in effect: locally the one running (absent when stopped); on a
    /// cluster the newest applied (its `status` says whether it became ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<u32>,
    pub releases: Vec<ReleaseRecord>,
}

/// One release as its target records it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ReleaseRecord {
    Local(local::release::Release),
    Cluster(cluster::release::Release),
}
