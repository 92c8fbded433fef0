//! What long operations report while they run — the phase they are in, bytes moved,
//! items done — to whoever tracks the task they run in. The library reports; a command
//! decides how it shows (a bar on a terminal, a line per phase otherwise), so no
//! signature carries a progress parameter through every layer in between.

use std::future::Future;
use std::sync::Arc;

/// One thing worth showing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// A new phase began ("dumping", "pg_restore", "Job db-backup-…: running").
    Phase(&'a str),
    /// Bytes moved so far in the current phase.
    Bytes(u64),
    /// Items of the current phase done out of `total`.
    Count { done: u64, total: u64 },
}

pub type Tracker = Arc<dyn Fn(Step<'_>) + Send + Sync>;

tokio::task_local! {
    static TRACKER: Tracker;
}

/// Runs `work` with `tracker` hearing the steps it reports.
pub async fn tracked<F: Future>(tracker: Tracker, work: F) -> F::Output {
    TRACKER.scope(tracker, work).await
}

/// Reports a step to the tracker of the current task; untracked work reports to nobody.
pub fn report(step: Step<'_>) {
    let _ = TRACKER.try_with(|tracker| tracker(step));
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[tokio::test]
    async fn steps_reach_the_tracker_of_their_task_and_nobody_else() {
        report(Step::Phase("untracked: heard by nobody"));
        let heard = Arc::new(Mutex::new(Vec::new()));
        let into = heard.clone();
        let tracker: Tracker = Arc::new(move |step| {
            into.lock().unwrap().push(match step {
                Step::Phase(name) => name.to_owned(),
                Step::Bytes(n) => format!("{n} bytes"),
                Step::Count { done, total } => format!("{done}/{total}"),
            })
        });
        tracked(tracker, async {
            report(Step::Phase("dumping"));
            report(Step::Bytes(42));
            report(Step::Count { done: 1, total: 3 });
        })
        .await;
        report(Step::Phase("after: heard by nobody"));
        assert_eq!(*heard.lock().unwrap(), ["dumping", "42 bytes", "1/3"]);
    }
}
