//! `shopctl logs`: a component's log locally, or every pod of a workload merged on a
//! cluster.

use std::io::Write;
use std::time::Duration;

use clap::Args;
use shopctl::cluster::logs::{LogEvent, LogOptions};

use super::cluster::ClusterArgs;
use super::{EnvArgs, Outcome};

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Locally: ml, backend, frontend, postgres, redis, prometheus or supervisor; on a
    /// cluster: frontend, backend or ml (every pod, each line prefixed with its pod).
    pub service: String,
    /// Keep printing new lines (on a cluster, from pods that start later too).
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines (of each pod).
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// Only lines newer than this, e.g. 10m (clusters).
    #[arg(long, value_parser = super::parse_duration)]
    pub since: Option<Duration>,
    /// The previous instance of each pod's container: what a crashed container printed
    /// before it restarted (clusters).
    #[arg(long)]
    pub previous: bool,
}

/// Exit 1 when a pod had no log to show.
pub fn exec(args: LogsArgs) -> anyhow::Result<Outcome> {
    let platform = args.cluster.open(&args.env)?;
    let options = LogOptions {
        follow: args.follow,
        since: args.since,
        tail: args.tail.map(|t| t as i64),
        previous: args.previous,
    };
    let mut unavailable = 0;
    let mut stdout = std::io::stdout().lock();
    let mut print = |event: LogEvent| match event {
        // The local platform has one log per component: no pod to name.
        LogEvent::Line { pod, text } if pod.is_empty() => {
            let _ = writeln!(stdout, "{text}");
            let _ = stdout.flush();
        }
        LogEvent::Line { pod, text } => {
            let _ = writeln!(stdout, "[{pod}] {text}");
            let _ = stdout.flush();
        }
        LogEvent::Unavailable { pod, reason } => {
            unavailable += 1;
            eprintln!("[{pod}] no log: {reason}");
        }
    };
    super::block_on(platform.logs(&args.service, &options, &mut print))?;
    Ok(Outcome::judged(unavailable == 0))
}
