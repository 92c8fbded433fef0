//! One release model for both targets: which revision, who applied it, when, why, and how
//! it ended. What a release holds differs — the service binaries and their settings
//! locally (`local::release::Contents`), the rendered manifests on a cluster
//! (`cluster::release::Contents`) — and is the one generic part, so `history`, `status`
//! and `rollback` read releases the same way on both.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How a release ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseStatus {
    /// Applied; nobody waited for it to become ready (or it is starting now).
    #[default]
    Applied,
    /// Applied, and everything it runs became ready.
    Ready,
    /// Applied, but something it runs did not become ready; or a progressive release that
    /// was aborted or switched back from.
    Failed,
    /// A progressive release under way: its canaries or previews run beside the release
    /// before it until it is promoted, switched to or aborted (or, when shopctl was
    /// interrupted, until the next `apply` or `rollback` aborts it).
    InProgress,
}

impl ReleaseStatus {
    pub fn label(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Ready => "ready",
            Self::Failed => "failed",
            Self::InProgress => "in-progress",
        }
    }
}

/// One revision of an environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "{C}Release")]
pub struct Release<C> {
    pub revision: u32,
    pub applied_at: String,
    pub applied_by: String,
    /// Why it exists: `up`, `apply`, `rollback to N`, …
    pub cause: String,
    /// Releases recorded before the local target tracked readiness have none: applied.
    #[serde(default)]
    pub status: ReleaseStatus,
    /// Identity of the contents: equal digests, same release.
    pub digest: String,
    #[serde(flatten)]
    pub contents: C,
}

impl<C> Release<C> {
    /// The common fields alone.
    pub fn without_contents(&self) -> Release<()> {
        Release {
            revision: self.revision,
            applied_at: self.applied_at.clone(),
            applied_by: self.applied_by.clone(),
            cause: self.cause.clone(),
            status: self.status,
            digest: self.digest.clone(),
            contents: (),
        }
    }

    /// The digest's first twelve characters, as tables show it.
    pub fn short_digest(&self) -> &str {
        &self.digest[..self.digest.len().min(12)]
    }
}

/// A release as `history --output json` shows it: the common fields and the contents of
/// its target, side by side.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ReleaseRecord {
    Local(crate::local::release::Release),
    Cluster(crate::cluster::release::Release),
}

impl ReleaseRecord {
    /// The fields every release has.
    pub fn common(&self) -> Release<()> {
        match self {
            ReleaseRecord::Local(release) => release.without_contents(),
            ReleaseRecord::Cluster(release) => release.without_contents(),
        }
    }

    /// How it reached the pods: "rolling", or "canary" and how that ended; locally,
    /// releases are switched, not rolled out ("-").
    pub fn delivery(&self) -> String {
        use crate::cluster::progressive::blue_green::Phase;
        use crate::cluster::progressive::canary::CanaryOutcome;
        let ReleaseRecord::Cluster(release) = self else {
            return "-".into();
        };
        let contents = &release.contents;
        match (&contents.canary, &contents.blue_green) {
            (Some(canary), _) => match canary.outcome {
                CanaryOutcome::InProgress => format!("canary, step {}", canary.step),
                CanaryOutcome::Promoted => "canary, promoted".into(),
                CanaryOutcome::Aborted => "canary, aborted".into(),
            },
            (_, Some(preview)) => match preview.phase {
                Phase::Previewing => "blue-green, previewing",
                Phase::Switched => "blue-green, switched",
                Phase::Finalized => "blue-green, finalized",
                Phase::SwitchedBack => "blue-green, switched back",
                Phase::Aborted => "blue-green, aborted",
            }
            .into(),
            _ => "rolling".into(),
        }
    }
}

/// Who is applying: the CI actor when there is one, else the local user.
pub fn operator() -> String {
    if let Ok(actor) = std::env::var("GITHUB_ACTOR") {
        return format!("{actor} (GitHub Actions)");
    }
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// Now, as releases record it.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
