//! Starting the supervisor in the background, as `up` and `rollback` do: `shopctl
//! supervise` detached in a process group of its own (a Ctrl-C in the operator's
//! terminal must not stop the platform), its progress read from its stdout as events
//! until the platform is ready or has failed. Its stderr goes to the supervisor's log.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::Context;

use super::events::Event;
use super::state::StateDir;

/// What to start: `program supervise --env ENVIRONMENT --revision N [--templates DIR]`.
pub struct Supervisor {
    /// The shopctl binary (the one running, normally).
    pub program: PathBuf,
    pub environment: String,
    pub templates: Option<PathBuf>,
    pub revision: u32,
}

/// Starts the supervisor for `dir` and hands each progress event to `progress`; returns
/// the storefront's URL once everything is ready, or the failure the supervisor reported.
pub fn start(
    dir: &StateDir,
    supervisor: &Supervisor,
    mut progress: impl FnMut(&Event),
) -> anyhow::Result<String> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.log("supervisor"))?;
    let mut command = Command::new(&supervisor.program);
    command
        .arg("supervise")
        .arg("--env")
        .arg(&supervisor.environment)
        .arg("--revision")
        .arg(supervisor.revision.to_string());
    if let Some(templates) = &supervisor.templates {
        command.arg("--templates").arg(templates);
    }
    let mut child = command
        .env("SHOPCTL_STATE_DIR", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("starting the supervisor")?;
    let stdout = child.stdout.take().context("supervisor output")?;
    for line in BufReader::new(stdout).lines() {
        // Anything that is not an event (a stray print) is not progress.
        let Ok(event) = serde_json::from_str::<Event>(&line?) else {
            continue;
        };
        match event {
            Event::AllReady { storefront } => return Ok(storefront),
            Event::Failed { component, message } => {
                let _ = child.wait();
                anyhow::bail!("{component}: {message}");
            }
            other => progress(&other),
        }
    }
    let _ = child.wait();
    anyhow::bail!(
        "the supervisor stopped before the platform was ready; see {}",
        dir.log("supervisor").display()
    )
}
