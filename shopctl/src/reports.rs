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
    /// `shopctl status --output json`
    Status,
    /// `shopctl apply --output json`
    Apply,
    /// `shopctl rollback --output json` (a whole release, on either target; `--service`
    /// prints a table)
    Rollback,
    /// `shopctl down --output json` (what was stopped, or what an uninstall deleted and kept)
    Down,
    /// `shopctl backup list --output json` and `shopctl db list --output json`
    Backups,
    /// `shopctl load --output json`
    Load,
    /// `shopctl infra bootstrap --output json`
    InfraBootstrap,
    /// `shopctl infra plan|apply|destroy|drift --output json`
    InfraPlan,
    /// `shopctl infra locks --output json`
    InfraLocks,
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
            ReportKind::Status => (generator.into_root_schema_for::<Status>(), "status"),
            ReportKind::Apply => (
                generator.into_root_schema_for::<ApplyReport<'static>>(),
                "apply",
            ),
            ReportKind::Rollback => (
                generator.into_root_schema_for::<crate::platform::Rollback>(),
                "rollback",
            ),
            ReportKind::Down => (
                generator.into_root_schema_for::<crate::platform::Down>(),
                "down",
            ),
            ReportKind::Backups => (
                generator.into_root_schema_for::<Vec<crate::backup::Manifest>>(),
                "backup list",
            ),
            ReportKind::Load => (
                generator.into_root_schema_for::<crate::load::LoadReport>(),
                "load",
            ),
            ReportKind::InfraBootstrap => (
                generator.into_root_schema_for::<InfraBootstrap>(),
                "infra bootstrap",
            ),
            ReportKind::InfraPlan => (generator.into_root_schema_for::<InfraPlan>(), "infra plan"),
            ReportKind::InfraLocks => (
                generator.into_root_schema_for::<InfraLocks>(),
                "infra locks",
            ),
        };
        schema.insert(
            "title".into(),
            format!("shopctl {command} --output json").into(),
        );
        schema.to_value()
    }

    /// The report a command line (without the program name) prints, when it asks for
    /// `--output json` from a command that has one.
    pub fn of_command(args: &[&str]) -> Option<ReportKind> {
        if !args.windows(2).any(|pair| pair == ["--output", "json"]) {
            return None;
        }
        match *args.first()? {
            "backup" | "db" => args.contains(&"list").then_some(ReportKind::Backups),
            "infra" => match *args.get(1)? {
                "bootstrap" => Some(ReportKind::InfraBootstrap),
                "plan" | "apply" | "destroy" | "drift" => Some(ReportKind::InfraPlan),
                "locks" => Some(ReportKind::InfraLocks),
                _ => None,
            },
            command => ReportKind::from_str(command, false).ok(),
        }
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

impl Target {
    /// Where `environment` runs: its provider is `local`, or a cluster's.
    pub fn of(environment: &crate::env::Environment) -> Self {
        match environment.cluster.provider {
            crate::env::model::Provider::Local => Target::Local,
            _ => Target::Cluster,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Target::Local => "local",
            Target::Cluster => "cluster",
        })
    }
}

/// `shopctl apply --output json`: a rolling deploy's report, a canary release's (which has
/// `canary`) or a blue/green release's (which has `blue_green`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ApplyReport<'a> {
    Rolling(&'a cluster::deploy::DeployReport),
    Canary(&'a cluster::progressive::canary::CanaryReport),
    BlueGreen(&'a cluster::progressive::blue_green::BlueGreenReport),
}

/// `shopctl history --output json`: an environment's releases, oldest first.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct History {
    pub environment: String,
    pub target: Target,
    /// The revision in effect: locally the one running (absent when stopped); on a
    /// cluster the newest applied (its `status` says whether it became ready; a progressive
    /// release is not it while in progress, nor when aborted or switched back from).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<u32>,
    pub releases: Vec<crate::release::ReleaseRecord>,
}

/// `shopctl status --output json`: what runs and whether it is ready, as the target sees
/// it (the local supervisor's components, or a cluster's workloads, autoscalers and
/// disruption budgets).
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Status {
    Local(LocalStatus),
    Cluster(cluster::status::StatusReport),
}

impl Status {
    /// Locally: running, and every component ready (or disabled). A cluster's status
    /// only reports; `validate` judges a cluster.
    pub fn healthy(&self) -> bool {
        match self {
            Status::Local(local) => {
                local.running
                    && local.components.iter().all(|c| {
                        matches!(
                            c.state,
                            local::state::ComponentState::Ready
                                | local::state::ComponentState::Disabled
                        )
                    })
            }
            Status::Cluster(_) => true,
        }
    }
}

/// The local platform's processes, from the supervisor's state.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LocalStatus {
    /// Whether a supervisor is running; the other fields are absent when not.
    pub running: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supervisor_pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    pub components: Vec<local::state::Component>,
}

impl LocalStatus {
    pub fn stopped() -> Self {
        Self {
            running: false,
            environment: None,
            supervisor_pid: None,
            revision: None,
            started_at: None,
            components: Vec::new(),
        }
    }

    pub fn of(state: &local::state::State) -> Self {
        Self {
            running: true,
            environment: Some(state.environment.clone()),
            supervisor_pid: Some(state.supervisor.pid),
            revision: state.revision,
            started_at: Some(state.started_at.clone()),
            components: state.components.clone(),
        }
    }
}

/// `shopctl infra bootstrap --output json`: what was done (or, dry, would be done) to the
/// state bucket and lock table.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct InfraBootstrap {
    pub environment: String,
    pub dry_run: bool,
    pub steps: Vec<crate::infra::bootstrap::Step>,
}

/// `shopctl infra plan|apply|destroy|drift --output json`: Terraform's planned changes by
/// action and resource type.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct InfraPlan {
    pub environment: String,
    /// Whether the plan changes anything.
    pub changes: bool,
    pub summary: crate::infra::terraform::PlanSummary,
    /// `apply`: whether there was anything to apply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<bool>,
    /// `drift`: whether the infrastructure differs from the configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<bool>,
}

/// `shopctl infra locks --output json`: the state locks held now.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct InfraLocks {
    pub environment: String,
    pub locks: Vec<crate::infra::locks::StateLock>,
}

#[cfg(test)]
mod tests {
    use super::ReportKind;
    use clap::ValueEnum;

    #[test]
    fn every_report_publishes_a_titled_schema() {
        for kind in ReportKind::value_variants() {
            let schema = kind.schema();
            assert_eq!(
                schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
                "{kind:?}"
            );
            let title = schema["title"].as_str().unwrap();
            assert!(title.starts_with("shopctl ") && title.ends_with(" --output json"));
            assert!(
                schema.get("type").is_some() || schema.get("anyOf").is_some(),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn a_command_line_names_the_report_it_prints() {
        let of = ReportKind::of_command;
        assert_eq!(
            of(&["status", "--env", "dev", "--output", "json"]),
            Some(ReportKind::Status)
        );
        assert_eq!(
            of(&["db", "list", "--in", "/b", "--output", "json"]),
            Some(ReportKind::Backups)
        );
        assert_eq!(
            of(&["backup", "--env", "dev", "list", "--output", "json"]),
            Some(ReportKind::Backups)
        );
        // A table, a command without a report, and a backup that is not a list.
        assert_eq!(of(&["status", "--output", "table"]), None);
        assert_eq!(
            of(&["infra", "drift", "--output", "json"]),
            Some(ReportKind::InfraPlan)
        );
        assert_eq!(of(&["infra", "unlock", "x", "--output", "json"]), None);
        assert_eq!(of(&["render", "--output", "json"]), None);
        assert_eq!(of(&["backup", "--env", "dev", "--output", "json"]), None);
    }
}
