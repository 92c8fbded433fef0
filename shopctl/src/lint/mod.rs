//! Policy checks over rendered objects. Each check has an id, a severity, a message naming
//! the object and a fix hint. An object can suppress a check only with a written reason:
//! `suppress.lint.shopmicro.io/SM008: "single-node demo cluster"`.

mod checks;
pub mod network;
mod paths;
pub mod selectors;

pub(crate) use checks::looks_secret;

use serde::Serialize;

use crate::env::Environment;
use crate::env::model::Provider;
use crate::manifest::Manifest;

pub const SUPPRESS_PREFIX: &str = "suppress.lint.shopmicro.io/";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

pub struct Check {
    pub id: &'static str,
    pub title: &'static str,
    pub severity: Severity,
    pub hint: &'static str,
    run: fn(&[Manifest], &Context) -> Vec<Violation>,
}

/// One object breaking one check.
pub struct Violation {
    pub object: usize,
    pub message: String,
}

/// One object breaking (or suppressing) one check.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Finding {
    pub check: &'static str,
    pub title: &'static str,
    pub severity: Severity,
    pub object: String,
    pub message: String,
    pub hint: &'static str,
    /// The written reason when the object suppresses this check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<String>,
}

/// What the checks need to know about the environment beyond the objects themselves.
#[derive(Debug, Clone)]
pub struct Context {
    pub environment: String,
    pub local: bool,
    /// Where the ingress controller's pods run, and address ranges it connects from.
    pub ingress_namespace: String,
    pub ingress_source_cidrs: Vec<String>,
    /// Where Prometheus and Tempo run.
    pub observability_namespace: String,
    /// The address ranges pods get (`cluster.pod_cidrs`).
    pub pod_cidrs: Vec<String>,
    /// Where the API server's service proxy connects from (`cluster.api_server_cidrs`).
    pub api_server_cidrs: Vec<String>,
}

impl Context {
    pub fn for_environment(env: &Environment) -> Self {
        Self {
            environment: env.name.clone(),
            local: env.cluster.provider == Provider::Local,
            ingress_namespace: env.ingress.controller_namespace.clone(),
            ingress_source_cidrs: env.ingress.source_cidrs.clone(),
            observability_namespace: env.observability.namespace.clone(),
            pod_cidrs: env.cluster.pod_cidrs.clone(),
            api_server_cidrs: env.cluster.api_server_cidrs.clone(),
        }
    }

    /// For manifests that come with no environment (`lint --file`): the strict, non-local
    /// rules, the conventional namespaces, and pods anywhere in the private ranges.
    pub fn standalone() -> Self {
        Self {
            environment: "(file)".to_owned(),
            local: false,
            ingress_namespace: "ingress-nginx".to_owned(),
            ingress_source_cidrs: Vec::new(),
            observability_namespace: "monitoring".to_owned(),
            pod_cidrs: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
                .map(str::to_owned)
                .to_vec(),
            api_server_cidrs: Vec::new(),
        }
    }
}

/// `shopctl lint --output json`: every finding and the counts.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Report {
    pub environment: String,
    pub objects: usize,
    pub checks: usize,
    pub errors: usize,
    pub warnings: usize,
    pub suppressed: usize,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn failed(&self) -> bool {
        self.errors > 0
    }
}

pub fn checks() -> &'static [Check] {
    checks::ALL
}

pub fn lint(objects: &[Manifest], context: &Context) -> Report {
    let mut findings = Vec::new();
    for check in checks() {
        for violation in (check.run)(objects, context) {
            let object = &objects[violation.object];
            let suppressed = object
                .annotation(&format!("{SUPPRESS_PREFIX}{}", check.id))
                .map(str::trim)
                .filter(|reason| !reason.is_empty())
                .map(str::to_owned);
            findings.push(Finding {
                check: check.id,
                title: check.title,
                severity: check.severity,
                object: object.id(),
                message: violation.message,
                hint: check.hint,
                suppressed,
            });
        }
    }
    let active = |severity| {
        findings
            .iter()
            .filter(|f| f.severity == severity && f.suppressed.is_none())
            .count()
    };
    Report {
        environment: context.environment.clone(),
        objects: objects.len(),
        checks: checks().len(),
        errors: active(Severity::Error),
        warnings: active(Severity::Warning),
        suppressed: findings.iter().filter(|f| f.suppressed.is_some()).count(),
        findings,
    }
}
