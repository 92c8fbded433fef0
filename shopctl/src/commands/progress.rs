//! How long work shows while it runs, and how rollouts read when done: progress bars
//! on a terminal, plain lines otherwise (CI logs get no control characters).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};
use shopctl::cluster::rollout::{Progress, ProgressCallback, WaitResult, Workload};
use shopctl::platform::Observer;
use shopctl::progress::{Step, Tracker};

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
    let terminal = drawing();
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

/// Whether to draw: stderr is a terminal and the user has not asked for plain output.
pub(super) fn drawing() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// How long work (a dump, a restore, a Job) shows: on a terminal a spinner with the phase
/// and, while bytes move, their count and rate; otherwise one line per phase, so CI logs
/// show where the time went without control characters.
pub(super) fn work_reporter() -> Tracker {
    let last = Mutex::new(String::new());
    if !drawing() {
        return Arc::new(move |step| {
            if let Step::Phase(phase) = step {
                let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                if *last != phase {
                    eprintln!("… {phase}");
                    *last = phase.to_owned();
                }
            }
        });
    }
    let plain = ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let bytes =
        ProgressStyle::with_template("{spinner} {msg}: {binary_bytes} ({binary_bytes_per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let count = ProgressStyle::with_template("{spinner} {msg} [{bar:20}] {pos}/{len}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    // Drawn from the first step on, cleared when the work is done (the tracker dropped).
    let spinner = std::sync::OnceLock::new();
    Arc::new(move |step| match step {
        Step::Phase(phase) => {
            let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
            if *last != phase {
                let bar = started(&spinner);
                // The phase before stays on screen, the new one spins.
                if !last.is_empty() {
                    bar.println(format!("✓ {last}"));
                }
                *last = phase.to_owned();
                bar.set_style(plain.clone());
                bar.set_position(0);
                bar.set_message(phase.to_owned());
            }
        }
        Step::Bytes(moved) => {
            let bar = started(&spinner);
            bar.set_style(bytes.clone());
            bar.set_position(moved);
        }
        Step::Count { done, total } => {
            let bar = started(&spinner);
            bar.set_style(count.clone());
            bar.set_length(total);
            bar.set_position(done);
        }
    })
}

/// The spinner, started on first use.
fn started(spinner: &std::sync::OnceLock<ProgressBar>) -> &ProgressBar {
    spinner.get_or_init(|| {
        let bar = ProgressBar::new_spinner().with_finish(ProgressFinish::AndClear);
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    })
}

/// Runs long work to its end with its progress shown (see `work_reporter`).
pub(super) fn block_on_tracked<F: std::future::Future>(work: F) -> F::Output {
    super::block_on(shopctl::progress::tracked(work_reporter(), work))
}
