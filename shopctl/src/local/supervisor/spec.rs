//! What the supervisor runs: one [`Spec`] per component, with its program, arguments,
//! environment, port and readiness probe.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use super::readiness::Probe;
use crate::local::postgres;
use crate::local::state::{Component, ComponentState, StateDir};

/// How to (re)start one supervised component.
#[derive(Clone)]
pub(super) struct Spec {
    pub name: &'static str,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub port: u16,
    pub probe: Probe,
    /// The listening sockets a service inherits instead of binding (see [`Sockets`]).
    pub sockets: Option<Arc<Sockets>>,
}

/// A service's public and admin sockets, bound by the supervisor for the environment's
/// lifetime and inherited by each of the service's processes in turn: a successor accepts
/// from the same queue as its predecessor, so a hand-over or a crash refuses no connection.
pub(super) struct Sockets {
    pub public: std::net::TcpListener,
    pub admin: std::net::TcpListener,
}

impl Sockets {
    pub fn bind(port: u16, admin_port: u16) -> anyhow::Result<Self> {
        let bind = |port: u16| {
            std::net::TcpListener::bind(("127.0.0.1", port))
                .with_context(|| format!("binding 127.0.0.1:{port}"))
        };
        Ok(Self {
            public: bind(port)?,
            admin: bind(admin_port)?,
        })
    }
}

impl Spec {
    /// Where clients reach it (the private PostgreSQL as its superuser: recorded for the
    /// operator's tools, never for the services, which connect as their own roles).
    pub fn url(&self) -> String {
        match self.name {
            "postgres" => format!("postgres://postgres@127.0.0.1:{}/shopmicro", self.port),
            "redis" => format!("redis://127.0.0.1:{}", self.port),
            _ => format!("http://127.0.0.1:{}", self.port),
        }
    }
}

/// The private PostgreSQL cluster in `data`, serving on `port`.
pub(super) fn postgres(
    binaries: &postgres::Binaries,
    data: &std::path::Path,
    port: u16,
) -> anyhow::Result<Spec> {
    let command = postgres::server(binaries, data, port)?;
    Ok(Spec {
        name: "postgres",
        program: PathBuf::from(command.get_program()),
        args: command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        env: BTreeMap::new(),
        port,
        probe: Probe::Postgres(binaries.clone()),
        sockets: None,
    })
}

/// A private Redis, in memory only: a cache loses nothing it cannot rebuild.
pub(super) fn redis(program: PathBuf, port: u16) -> Spec {
    Spec {
        name: "redis",
        program,
        args: [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .map(str::to_owned)
        .to_vec(),
        env: BTreeMap::new(),
        port,
        probe: Probe::RedisPing,
        sockets: None,
    }
}

pub(super) fn pushgateway(program: PathBuf, port: u16) -> Spec {
    Spec {
        name: "pushgateway",
        program,
        args: vec![format!("--web.listen-address=127.0.0.1:{port}")],
        env: BTreeMap::new(),
        port,
        probe: Probe::Http("/-/ready"),
        sockets: None,
    }
}

/// Prometheus scraping the services' admin ports, `ports` (and the Pushgateway), with the
/// platform's rule files, configured in the state directory.
pub(super) fn prometheus(
    dir: &StateDir,
    rules: &[(String, String)],
    program: PathBuf,
    ports: &BTreeMap<&str, u16>,
    pushgateway: Option<u16>,
    port: u16,
) -> anyhow::Result<Spec> {
    let dir = dir.root.join("prometheus");
    std::fs::create_dir_all(dir.join("rules"))?;
    for (name, text) in rules {
        std::fs::write(dir.join("rules").join(name), text)?;
    }
    // The labels the cluster's relabelling gives a pod; locally every service is stable.
    let targets: String = ports
        .iter()
        .map(|(name, port)| format!("      - targets: ['127.0.0.1:{port}']\n        labels: {{service: {name}, namespace: shopmicro, track: stable}}\n"))
        .collect();
    // The pushed series keep their own `job` label (honor_labels), as in the cluster.
    let pushgateway = pushgateway
        .map(|port| format!("  - job_name: pushgateway\n    honor_labels: true\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"))
        .unwrap_or_default();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 15s\n  evaluation_interval: 30s\nrule_files:\n  - rules/*.yaml\nscrape_configs:\n  - job_name: shopmicro\n    static_configs:\n{targets}{pushgateway}"
        ),
    )?;
    Ok(Spec {
        name: "prometheus",
        program,
        args: vec![
            format!("--config.file={}", dir.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--enable-feature=exemplar-storage".into(),
        ],
        env: BTreeMap::new(),
        port,
        probe: Probe::Http("/-/ready"),
        sockets: None,
    })
}

/// A component the supervisor does not run (given by URL): ready as far as it knows.
pub(super) fn external(name: &str, url: Option<String>) -> Component {
    Component {
        name: name.into(),
        origin: "external".into(),
        state: ComponentState::Ready,
        process: None,
        port: None,
        url,
        restarts: 0,
        log: None,
    }
}

/// The first `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
