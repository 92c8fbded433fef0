//! How long work shows while it runs, and how rollouts read when done: progress bars
//! on a terminal, plain lines otherwise (CI logs get no control characters).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use shopctl::cluster::rollout::{Progress, ProgressCallback, WaitResult, Workload};
use shopctl::platform::Observer;

/// What a platform's operator sees: rollouts as bars, notes as lines on stderr.
pub(super) fn observer() -> Observer {
    Observer {
        rollout: progress_reporter(),
        note: Arc::new(|line| eprintln!("{line}")),
    }
}

/// Progress bars on a terminal (one per workload); plain lines as workloads settle
/// otherwise, so CI logs show progress without control characters.
pub(super) fn progress_reporter() -> ProgressCallback {
    let terminal = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let multi = MultiProgress::with_draw_target(if terminal {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let bars: Mutex<HashMap<String, ProgressBar>> = Mutex::new(HashMap::new());
    let style = ProgressStyle::with_template("{spinner} {prefix:40} [{bar:20}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    Arc::new(move |workload: &Workload, progress: &Progress| {
        let mut bars = bars.lock().unwrap_or_else(|p| p.into_inner());
        let bar = bars.entry(workload.id()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(1));
            bar.set_style(style.clone());
            bar.set_prefix(workload.id());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        match progress {
            Progress::Waiting {
                ready,
                desired,
                message,
            } => {
                bar.set_length((*desired).max(1) as u64);
                bar.set_position((*ready).max(0) as u64);
                bar.set_message(message.clone());
            }
            Progress::Ready => {
                bar.set_position(bar.length().unwrap_or(1));
                bar.finish_with_message("ready");
                if !terminal {
                    eprintln!("{} ready", workload.id());
                }
            }
            Progress::Failed { condition, .. } => {
                bar.abandon_with_message(condition.clone());
                if !terminal {
                    eprintln!("{} failed: {condition}", workload.id());
                }
            }
        }
    })
}

pub(super) fn print_rollout(results: &[WaitResult]) {
    if results.is_empty() {
        return;
    }
    let mut table = super::new_table(&["WORKLOAD", "ROLLOUT", "SECONDS", "WHY"]);
    for result in results {
        table.add_row([
            result.workload.clone(),
            if result.ready {
                "ready".into()
            } else {
                "FAILED".into()
            },
            format!("{:.1}", result.seconds),
            result.reason.clone().unwrap_or_default(),
        ]);
    }
    println!("{table}");
    for result in results.iter().filter(|r| !r.warnings.is_empty()) {
        println!("recent warning events for {}:", result.workload);
        for warning in &result.warnings {
            println!("  {warning}");
        }
    }
}
