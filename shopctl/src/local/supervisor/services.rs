//! The three services as the environment wires them: their kept ports and sockets, where
//! each finds the others, and the secrets they share. Fixed for the supervisor's lifetime,
//! so a release (new binaries, new settings) becomes a new [`Spec`] on the same sockets.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::process::Command;

use super::readiness::{Probe, READY_TIMEOUT};
use super::spec::{Sockets, Spec};
use crate::local::addresses::{self, Ports};
use crate::local::binaries::{SERVICES, binary_name};
use crate::local::state::StateDir;

/// How long a service being handed over lingers (`SHUTDOWN_LINGER_MS`) unless its release
/// says otherwise: at a few requests per second per connection, every keep-alive
/// connection is answered (and closed) within it.
const HANDOVER_LINGER_MS: &str = "1000";

/// How each workload connects: as its own role on the private cluster, or with the
/// external URL as given (whose roles are the operator's to manage).
pub(super) struct DatabaseUrls {
    pub owner: String,
    pub backend: String,
    pub ml: String,
}

/// What the services are given besides their release's settings.
pub(super) struct Wiring {
    pub database: DatabaseUrls,
    pub redis_url: Option<String>,
}

pub(super) struct Services {
    dir: StateDir,
    ports: BTreeMap<&'static str, u16>,
    /// Each service's `/metrics` is on its admin port, which only Prometheus is told of.
    admin_ports: BTreeMap<&'static str, u16>,
    /// Held for as long as the supervisor runs; every process of a service inherits its
    /// sockets, which is what lets a restart or a release hand over.
    sockets: BTreeMap<&'static str, Arc<Sockets>>,
    wiring: Wiring,
    retrain_token: String,
    cart_signing_key: String,
}

impl Services {
    /// Binds every service's sockets on the environment's kept ports; on failure, the
    /// service it failed for.
    pub fn bind(
        dir: &StateDir,
        ports: &mut Ports,
        wiring: Wiring,
    ) -> Result<Self, (&'static str, anyhow::Error)> {
        let mut services = Self {
            dir: dir.clone(),
            ports: BTreeMap::new(),
            admin_ports: BTreeMap::new(),
            sockets: BTreeMap::new(),
            wiring,
            retrain_token: addresses::ml_retrain_token(dir).map_err(|e| ("ml", e))?,
            // The environment's key, so carts outlive a frontend process.
            cart_signing_key: addresses::cart_signing_key(dir).map_err(|e| ("frontend", e))?,
        };
        for name in SERVICES {
            let bound = ports.port(name).and_then(|port| {
                let admin = ports.port(&format!("{name}-admin"))?;
                Ok((port, admin, Sockets::bind(port, admin)?))
            });
            let (port, admin, sockets) = bound.map_err(|e| (name, e))?;
            services.ports.insert(name, port);
            services.admin_ports.insert(name, admin);
            services.sockets.insert(name, Arc::new(sockets));
        }
        Ok(services)
    }

    pub fn port(&self, name: &str) -> u16 {
        self.ports[name]
    }

    pub fn admin_ports(&self) -> &BTreeMap<&'static str, u16> {
        &self.admin_ports
    }

    pub fn retrain_token(&self) -> &str {
        &self.retrain_token
    }

    /// Service `name` running the binary in `binaries` with its release's `config`, then
    /// where it finds the others.
    pub fn spec(
        &self,
        name: &'static str,
        binaries: &Path,
        config: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Spec {
        let mut env = config.get(name).cloned().unwrap_or_default();
        let local = |port: u16| format!("http://127.0.0.1:{port}");
        let wiring: Vec<(&str, String)> = match name {
            "ml" => vec![
                ("DATABASE_URL", self.wiring.database.ml.clone()),
                ("TRAINING_RETRY_MS", "500".into()),
                ("ML_RETRAIN_TOKEN", self.retrain_token.clone()),
            ],
            "backend" => {
                let mut wiring = vec![
                    ("DATABASE_URL", self.wiring.database.backend.clone()),
                    ("DATABASE_MIGRATIONS", "verify".into()),
                    ("ML_URL", local(self.port("ml"))),
                ];
                if let Some(url) = &self.wiring.redis_url {
                    wiring.push(("REDIS_URL", url.clone()));
                }
                wiring
            }
            _ => vec![
                ("BACKEND_URL", local(self.port("backend"))),
                ("CART_SIGNING_KEY", self.cart_signing_key.clone()),
            ],
        };
        env.extend(wiring.into_iter().map(|(k, v)| (k.to_owned(), v)));
        env.insert("PORT".into(), self.port(name).to_string());
        env.insert("ADMIN_PORT".into(), self.admin_ports[name].to_string());
        // A process being replaced keeps accepting for a second, closing each connection
        // after its answer, so keep-alive clients move to its successor between requests.
        env.entry("SHUTDOWN_LINGER_MS".into())
            .or_insert_with(|| HANDOVER_LINGER_MS.into());
        // As the images set it: mimalloc commits its arena as it is used (an idle service
        // stays near 14 MB rather than 24).
        env.entry("MIMALLOC_ARENA_EAGER_COMMIT".into())
            .or_insert_with(|| "0".into());
        Spec {
            name,
            program: binaries.join(binary_name(name)),
            args: Vec::new(),
            env,
            port: self.port(name),
            probe: Probe::Http("/readyz"),
            sockets: Some(Arc::clone(&self.sockets[name])),
        }
    }

    /// Runs `shopmicro-backend migrate` from `binaries` as the schema's owner, to
    /// completion, as the cluster's init container does; how long it took.
    pub async fn migrate(&self, binaries: &Path) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let log = self.dir.log("migrate");
        let output = Command::new(binaries.join(binary_name("backend")))
            .arg("migrate")
            .env("DATABASE_URL", &self.wiring.database.owner)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(READY_TIMEOUT, output)
            .await
            .map_err(|_| anyhow::anyhow!("the migrations did not finish within {READY_TIMEOUT:?}"))?
            .context("running the backend's migrations")?;
        std::fs::write(&log, [output.stdout, output.stderr].concat())?;
        anyhow::ensure!(
            output.status.success(),
            "the migrations failed; see {}",
            log.display()
        );
        Ok(started.elapsed())
    }
}
