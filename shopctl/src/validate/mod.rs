//! `validate`: a fast, concurrent audit of everything the platform promises. Every check
//! has a deadline of its own and the run has an overall one, so a hanging dependency fails
//! its own checks ("timed out after …") and never hangs the command.

mod alert_routes;
mod checks;
mod cloud_checks;
pub mod cluster;
mod cluster_checks;
pub mod target;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Serialize;

pub use cluster::ClusterTarget;
pub use target::{LocalTarget, Target};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Verdict {
    pub status: Status,
    pub detail: String,
    /// What to do about a failure or warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Verdict {
    pub fn pass(detail: impl Into<String>) -> Self {
        Self {
            status: Status::Pass,
            detail: detail.into(),
            hint: None,
        }
    }

    pub fn warn(detail: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            status: Status::Warn,
            detail: detail.into(),
            hint: Some(hint.into()),
        }
    }

    pub fn fail(detail: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            status: Status::Fail,
            detail: detail.into(),
            hint: Some(hint.into()),
        }
    }

    pub fn skipped(reason: impl Into<String>) -> Self {
        Self {
            status: Status::Skipped,
            detail: reason.into(),
            hint: None,
        }
    }
}

pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Verdict> + Send + 'a>>;

pub struct Check {
    pub id: &'static str,
    pub category: &'static str,
    pub run: for<'a> fn(&'a dyn Target) -> CheckFuture<'a>,
    /// Runs for as long as the overall deadline allows, not the per-check one (a
    /// `terraform plan`, asked for explicitly).
    pub slow: bool,
}

impl Check {
    pub const fn new(
        id: &'static str,
        category: &'static str,
        run: for<'a> fn(&'a dyn Target) -> CheckFuture<'a>,
    ) -> Self {
        Self {
            id,
            category,
            run,
            slow: false,
        }
    }

    /// Bounded by the overall deadline only.
    pub const fn slow(self) -> Self {
        Self { slow: true, ..self }
    }
}

/// One check's result; `id` and `category` as `--only` and `--skip` take them.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CheckResult {
    pub id: &'static str,
    pub category: &'static str,
    #[serde(flatten)]
    pub verdict: Verdict,
    pub millis: u64,
}

/// `shopctl validate --output json`: every selected check's verdict, the counts, and
/// how long the run took.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Report {
    pub environment: String,
    pub target: crate::reports::Target,
    pub passed: usize,
    pub warnings: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Wall-clock time of the whole run.
    pub millis: u64,
    /// Failures first, then warnings, passes and skipped checks.
    pub checks: Vec<CheckResult>,
}

impl Report {
    pub fn failed(&self) -> bool {
        self.failed > 0
    }
}

pub struct Selection {
    /// Check ids or categories to run (all when empty).
    pub only: Vec<String>,
    pub skip: Vec<String>,
    pub per_check: Duration,
    pub overall: Duration,
    /// One check at a time (for comparison and debugging).
    pub sequential: bool,
}

fn selected(check: &Check, names: &[String]) -> bool {
    names.iter().any(|name| {
        name == check.id || name == check.category || check.id.starts_with(&format!("{name}."))
    })
}

/// Report order: from "can we even reach it" to "is it healthy".
fn category_rank(category: &str) -> usize {
    [
        "access",
        "workloads",
        "scaling",
        "security",
        "storage",
        "app",
        "obs",
    ]
    .iter()
    .position(|c| *c == category)
    .unwrap_or(99)
}

pub fn all_checks() -> impl Iterator<Item = &'static Check> {
    checks::ALL
        .iter()
        .chain(cluster_checks::ALL)
        .chain(cloud_checks::ALL)
}

/// Names `--only`/`--skip` accept that match nothing (a typo should not silently run
/// nothing).
pub fn unknown_names(names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|name| !all_checks().any(|c| selected(c, std::slice::from_ref(name))))
        .cloned()
        .collect()
}

/// Runs the selected checks concurrently.
pub async fn run(environment: &str, target: &dyn Target, selection: &Selection) -> Report {
    let started = Instant::now();
    let deadline = started + selection.overall;
    let chosen: Vec<&Check> = all_checks()
        .filter(|c| selection.only.is_empty() || selected(c, &selection.only))
        .filter(|c| !selected(c, &selection.skip))
        .collect();
    let runs = chosen.iter().map(|check| async move {
        let began = Instant::now();
        let remaining = deadline.saturating_duration_since(Instant::now());
        let budget = if check.slow {
            remaining
        } else {
            selection.per_check.min(remaining)
        };
        let verdict = match tokio::time::timeout(budget, (check.run)(target)).await {
            Ok(verdict) => verdict,
            Err(_) => Verdict::fail(
                format!("timed out after {:.1}s", budget.as_secs_f64()),
                "the dependency this check talks to is hanging; look at it first",
            ),
        };
        CheckResult {
            id: check.id,
            category: check.category,
            verdict,
            millis: began.elapsed().as_millis() as u64,
        }
    });
    let mut checks = if selection.sequential {
        let mut results = Vec::new();
        for run in runs {
            results.push(run.await);
        }
        results
    } else {
        futures_util::future::join_all(runs).await
    };
    checks.sort_by_key(|c| (category_rank(c.category), c.id));
    let count = |status| checks.iter().filter(|c| c.verdict.status == status).count();
    Report {
        environment: environment.to_owned(),
        target: target.kind(),
        passed: count(Status::Pass),
        warnings: count(Status::Warn),
        failed: count(Status::Fail),
        skipped: count(Status::Skipped),
        millis: started.elapsed().as_millis() as u64,
        checks,
    }
}
