//! What the supervisor tells `shopctl up` while it starts things: one JSON object per line
//! on its stdout, until it reports ready or failed.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A component is starting.
    Starting { component: String, detail: String },
    /// A component passed its readiness check.
    Ready {
        component: String,
        detail: String,
        millis: u64,
    },
    /// A component was skipped, and why (no Redis binary, no Prometheus).
    Skipped { component: String, reason: String },
    /// Everything is up.
    AllReady { storefront: String },
    /// Start-up failed; the supervisor has stopped what it started.
    Failed { component: String, message: String },
}

impl Event {
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The event as a line for the operator.
    pub fn describe(&self) -> String {
        match self {
            Event::Starting { component, detail } => format!("  starting {component} ({detail})"),
            Event::Ready {
                component,
                detail,
                millis,
            } => format!("✓ {component} ready: {detail} ({millis} ms)"),
            Event::Skipped { component, reason } => format!("- {component}: {reason}"),
            Event::AllReady { storefront } => {
                format!("storefront: {storefront} (Ctrl-C stops everything)")
            }
            Event::Failed { component, message } => format!("✗ {component}: {message}"),
        }
    }
}
