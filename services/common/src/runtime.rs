//! The async runtime a service runs on, sized to the CPU it may use (`WORKER_THREADS`).
//!
//! A service with one CPU runs a single-threaded runtime: every task, and the I/O driver
//! that wakes them, on the one thread, so a request's task, the database connection's task
//! and the socket they wait on never hand work to another thread. A multi-threaded runtime
//! with workers competing for the same CPU wakes a parked worker to steal each woken task,
//! and those wake-ups and context switches are paid for on that CPU. On a busy machine that
//! took a third of the backend's CPU per uncached listing (`shopctl/benches/RESULTS.md`).
//! With more CPUs, one worker per CPU.
//!
//! On Kubernetes the Deployment passes the pod's CPU limit in, rounded up to whole CPUs
//! (`WORKER_THREADS` from `limits.cpu`). Unset, it is the CPUs this process may run on (its
//! affinity and cgroup quota, as `available_parallelism` reads them).

use std::num::NonZeroUsize;

use tokio::runtime::{Builder, Runtime};

use crate::config::{ConfigError, Env};

/// How many threads run the service's tasks: `WORKER_THREADS`, else the CPUs available.
pub fn worker_threads(env: &Env) -> Result<NonZeroUsize, ConfigError> {
    env.or_default(
        "WORKER_THREADS",
        "a whole number of threads from 1 up",
        available_cpus(),
    )
}

fn available_cpus() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

/// A single-threaded runtime for one thread, else a multi-threaded one with `threads`
/// workers.
pub fn build(threads: NonZeroUsize) -> std::io::Result<Runtime> {
    if threads == NonZeroUsize::MIN {
        Builder::new_current_thread().enable_all().build()
    } else {
        Builder::new_multi_thread()
            .worker_threads(threads.get())
            .enable_all()
            .build()
    }
}

/// What a start-up log line says about the runtime: "single-threaded" or "multi-threaded".
pub fn describe(handle: &tokio::runtime::Handle) -> &'static str {
    match handle.runtime_flavor() {
        tokio::runtime::RuntimeFlavor::CurrentThread => "single-threaded",
        _ => "multi-threaded",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Problem;

    fn threads(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).unwrap()
    }

    #[test]
    fn one_thread_is_a_single_threaded_runtime_more_are_one_worker_each() {
        let single = build(threads(1)).unwrap();
        assert_eq!(describe(single.handle()), "single-threaded");
        assert_eq!(single.metrics().num_workers(), 1);

        let multi = build(threads(3)).unwrap();
        assert_eq!(describe(multi.handle()), "multi-threaded");
        assert_eq!(multi.metrics().num_workers(), 3);
    }

    #[test]
    fn a_single_threaded_runtime_runs_spawned_tasks_and_blocking_work() {
        let runtime = build(threads(1)).unwrap();
        let answer = runtime.block_on(async {
            let spawned = tokio::spawn(async { 20 });
            let blocking = tokio::task::spawn_blocking(|| 22);
            spawned.await.unwrap() + blocking.await.unwrap()
        });
        assert_eq!(answer, 42);
    }

    #[test]
    fn unset_it_is_the_cpus_this_process_may_use() {
        let expected = std::thread::available_parallelism().unwrap();
        assert_eq!(worker_threads(&Env::from_pairs([])).unwrap(), expected);
        assert_eq!(
            worker_threads(&Env::from_pairs([("WORKER_THREADS", "4")])).unwrap(),
            threads(4)
        );
    }

    #[test]
    fn zero_or_a_fraction_is_refused_naming_the_variable() {
        for bad in ["0", "0.5", "two"] {
            let err = worker_threads(&Env::from_pairs([("WORKER_THREADS", bad)])).unwrap_err();
            assert_eq!(err.var, "WORKER_THREADS");
            assert_eq!(err.problem, Problem::Malformed);
        }
    }
}
