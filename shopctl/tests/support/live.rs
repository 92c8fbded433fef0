//! The real service binaries and a real Prometheus as child processes, for tests that
//! judge live metrics.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use shopmicro_common::testing::closed_port;

/// One of the service binaries, its port, and every line it logged; stopped (SIGTERM)
/// when dropped.
pub struct Process {
    child: Child,
    pub port: u16,
    /// Where its `/metrics` is served.
    pub admin_port: u16,
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl Process {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn binary(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_shopctl")).with_file_name(name);
    assert!(
        path.exists(),
        "{} is not built; run the workspace tests (cargo test --workspace) or cargo build --bins",
        path.display()
    );
    path
}

/// Starts `shopmicro-<name>` on free ports with `vars`, once it says it listens.
pub fn spawn_service(name: &str, vars: &[(&str, String)]) -> Process {
    let mut child = Command::new(binary(&format!("shopmicro-{name}")))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", "0")
        .env("ADMIN_PORT", "0")
        .env("RUST_LOG", "info")
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let logs: Arc<Mutex<Vec<String>>> = Arc::default();
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let collected = Arc::clone(&logs);
    let listening = format!("{name} listening");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(json) = serde_json::from_str::<Value>(&line)
                && json["message"] == listening.as_str()
            {
                let port = |key: &str| json[key].as_u64().unwrap() as u16;
                let _ = port_tx.send((port("port"), port("admin_port")));
            }
            collected.lock().unwrap().push(line);
        }
    });
    let (port, admin_port) = port_rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{name} did not start"));
    Process {
        child,
        port,
        admin_port,
        logs,
    }
}

/// A Prometheus server (Debian's `prometheus`), killed when dropped.
pub struct Prometheus {
    child: Child,
    pub url: String,
}

impl Prometheus {
    pub fn start(config: &Path, data: &Path, extra: &[&str]) -> Self {
        let port = closed_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed (Debian prometheus; the README's test command installs it)");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
