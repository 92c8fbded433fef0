//! Process identity that survives pid reuse: a pid plus the kernel's record of when that
//! process started (`/proc/<pid>/stat`, field 22). A recycled pid has another start time.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProcessId {
    pub pid: u32,
    /// Clock ticks after boot at which the process started.
    pub start_time: u64,
}

impl ProcessId {
    /// The identity of a running process, or `None` if there is no such process.
    pub fn of(pid: u32) -> Option<Self> {
        start_time(pid).map(|start_time| Self { pid, start_time })
    }

    pub fn current() -> Self {
        Self::of(std::process::id()).unwrap_or(Self {
            pid: std::process::id(),
            start_time: 0,
        })
    }

    /// True only while *this* process (not a later one with the same pid) runs.
    pub fn is_alive(&self) -> bool {
        start_time(self.pid) == Some(self.start_time) && !is_zombie(self.pid)
    }

    /// SIGTERM, then SIGKILL after `grace`. Does nothing when the process is gone or the pid
    /// now belongs to another process.
    pub fn terminate(&self, grace: Duration) {
        if !self.is_alive() {
            return;
        }
        signal(self.pid, "TERM");
        let deadline = Instant::now() + grace;
        while self.is_alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.is_alive() {
            signal(self.pid, "KILL");
        }
    }
}

fn signal(pid: u32, name: &str) {
    // `kill` keeps shopctl free of unsafe code and libc bindings.
    let _ = std::process::Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status();
}

fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is parenthesised and may contain spaces: split after it.
    let after_name = stat.rsplit_once(')')?.1;
    Some(after_name.split_whitespace().map(str::to_owned).collect())
}

fn start_time(pid: u32) -> Option<u64> {
    // After the name: field 3 (state) is index 0, so field 22 (starttime) is index 19.
    stat_fields(pid)?.get(19)?.parse().ok()
}

fn is_zombie(pid: u32) -> bool {
    stat_fields(pid).and_then(|f| f.first().cloned()).as_deref() == Some("Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_process_is_alive_and_a_changed_start_time_is_not() {
        let me = ProcessId::current();
        assert!(me.is_alive());
        let recycled = ProcessId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!recycled.is_alive(), "same pid, different start: not ours");
    }

    #[test]
    fn terminate_stops_a_child_and_leaves_it_dead() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let id = ProcessId::of(child.id()).unwrap();
        std::thread::spawn(move || child.wait());
        id.terminate(Duration::from_secs(5));
        assert!(!id.is_alive());
    }
}
