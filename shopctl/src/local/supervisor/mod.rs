//! Starts the local platform in dependency order, each component gated on readiness,
//! keeps it running (restarts with backoff), and stops it gracefully on SIGTERM/SIGINT.
//!
//! [`spec`] says what each component is, [`readiness`] when it is ready, [`lifecycle`]
//! spawns, restarts and stops processes, [`handover`] replaces one while it serves, and
//! [`shared`] is the state they all update.

mod handover;
mod lifecycle;
mod readiness;
mod shared;
mod spec;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::process::Command;
use tokio::sync::watch;

use super::addresses::{self, Ports};
use super::binaries::binary_name;
use super::events::Event;
use super::postgres;
use super::process::ProcessId;
use super::state::{Component, ComponentState, State, StateDir};
use crate::db_roles::DbRole;
use lifecycle::{Running, StartError, failed, keep_running, spawn_only, start, stop_all};
use readiness::{Probe, READY_TIMEOUT, wait_ready};
use shared::Shared;
use spec::{Sockets, Spec, external};

pub use spec::which;

pub struct Options {
    pub environment: String,
    pub state: StateDir,
    /// The release to run: its binaries directory and per-service settings.
    pub revision: u32,
    pub binaries: PathBuf,
    pub service_config: BTreeMap<String, BTreeMap<String, String>>,
    /// Use this PostgreSQL instead of a private one (a secret: never printed).
    pub database_url: Option<String>,
    /// Use this Redis instead of a private one.
    pub redis_url: Option<String>,
    /// Prometheus rule files to load when a `prometheus` binary exists.
    pub prometheus_rules: Vec<(String, String)>,
    /// The database role setup (`templates/postgres/roles.sql`) for the private cluster.
    pub database_setup: String,
}

/// How long a service being handed over lingers (`SHUTDOWN_LINGER_MS`) unless its release
/// says otherwise: at a few requests per second per connection, every keep-alive
/// connection is answered (and closed) within it.
const HANDOVER_LINGER_MS: &str = "1000";

/// The database the platform's private cluster serves.
const DATABASE: &str = "shopmicro";

/// How each workload connects: as its own role on the private cluster, or with the
/// external URL as given (whose roles are the operator's to manage).
struct DatabaseUrls {
    owner: String,
    backend: String,
    ml: String,
}

/// Runs until SIGTERM/SIGINT. `events` receives progress until everything is ready.
pub async fn run(options: Options, events: impl Fn(Event)) -> anyhow::Result<()> {
    options.state.create()?;
    let Some(_lock) = options.state.try_lock()? else {
        let message = "another `shopctl up` is already starting or running this environment; see `shopctl status --env local`";
        events(Event::Failed {
            component: "lock".into(),
            message: message.into(),
        });
        anyhow::bail!(message);
    };
    clean_up_after_crash(&options.state)?;
    // A restore interrupted earlier may have left components paused: start clean.
    options.state.set_paused(&[])?;
    let shared = Shared::new(
        options.state.clone(),
        State {
            environment: options.environment.clone(),
            revision: Some(options.revision),
            supervisor: ProcessId::current(),
            started_at: chrono::Utc::now().to_rfc3339(),
            components: Vec::new(),
        },
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        stop_signal().await;
        let _ = stop_tx.send(true);
    });

    let mut running = Running::new();
    let started = start_all(&options, &shared, &events, &mut running).await;
    if let Err(err) = started {
        let component = err.component.clone();
        events(Event::Failed {
            component,
            message: format!("{:#}", err.error),
        });
        stop_all(&shared, running).await;
        return Err(err.error);
    }
    let storefront = shared
        .read(|state| state.component("frontend").and_then(|c| c.url.clone()))
        .unwrap_or_default();
    events(Event::AllReady { storefront });

    let running = keep_running(&shared, running, stop_rx).await;
    stop_all(&shared, running).await;
    Ok(())
}

async fn start_all(
    options: &Options,
    shared: &Shared,
    events: &impl Fn(Event),
    running: &mut Running,
) -> Result<(), StartError> {
    // Every component listens where it did before: the environment's addresses are kept.
    let mut ports = Ports::load(&options.state).map_err(failed("supervisor"))?;
    // PostgreSQL: the one given, or a private cluster with the platform's roles.
    let database = match &options.database_url {
        Some(url) => {
            shared.record(external("postgres", None));
            events(Event::Skipped {
                component: "postgres".into(),
                reason: "using DATABASE_URL".into(),
            });
            DatabaseUrls {
                owner: url.clone(),
                backend: url.clone(),
                ml: url.clone(),
            }
        }
        None => {
            let binaries = postgres::find().map_err(|e| failed("postgres")(e.into()))?;
            let data = options.state.postgres_data();
            postgres::init(&binaries, &data, &options.state.log("initdb"))
                .map_err(failed("postgres"))?;
            let port = ports.port("postgres").map_err(failed("postgres"))?;
            let spec = spec::postgres(&binaries, &data, port).map_err(failed("postgres"))?;
            start(
                shared,
                events,
                running,
                spec,
                &format!("private cluster in {}", data.display()),
            )
            .await?;
            postgres::ensure_database(&binaries, port, DATABASE).map_err(failed("postgres"))?;
            postgres::set_up_roles(&binaries, port, DATABASE, &options.database_setup)
                .map_err(failed("postgres"))?;
            let url = |role| postgres::role_url(port, DATABASE, role);
            DatabaseUrls {
                owner: url(DbRole::Owner),
                backend: url(DbRole::Backend),
                ml: url(DbRole::Ml),
            }
        }
    };

    // Redis: the one given, a private one, or none (the backend runs without a cache).
    let redis_url = match &options.redis_url {
        Some(url) => {
            shared.record(external("redis", None));
            Some(url.clone())
        }
        None => match which("redis-server") {
            Some(program) => {
                let port = ports.port("redis").map_err(failed("redis"))?;
                let spec = spec::redis(program, port);
                start(shared, events, running, spec, "private, in memory").await?;
                Some(format!("redis://127.0.0.1:{port}"))
            }
            None => {
                shared.record(Component {
                    state: ComponentState::Disabled,
                    ..external("redis", None)
                });
                events(Event::Skipped {
                    component: "redis".into(),
                    reason: "no redis-server on PATH: running without a cache".into(),
                });
                None
            }
        },
    };

    // The services: ports known up front so each can be told where the others are.
    let service_ports: BTreeMap<&str, u16> = ["ml", "backend", "frontend"]
        .into_iter()
        .map(|name| ports.port(name).map(|port| (name, port)))
        .collect::<anyhow::Result<_>>()
        .map_err(failed("services"))?;
    // Each service's `/metrics` is on its admin port, which only Prometheus is told of.
    let admin_ports: BTreeMap<&str, u16> = ["ml", "backend", "frontend"]
        .into_iter()
        .map(|name| {
            ports
                .port(&format!("{name}-admin"))
                .map(|port| (name, port))
        })
        .collect::<anyhow::Result<_>>()
        .map_err(failed("services"))?;
    // The supervisor holds each service's sockets for as long as it runs; every process
    // of the service inherits them, which is what lets `restart` hand over.
    let sockets: BTreeMap<&str, Arc<Sockets>> = service_ports
        .iter()
        .map(|(name, port)| {
            Sockets::bind(*port, admin_ports[name])
                .map(|sockets| (*name, Arc::new(sockets)))
                .map_err(failed(name))
        })
        .collect::<Result<_, _>>()?;
    let service = |name: &'static str, env: Vec<(&str, String)>| {
        // The release's settings, then where this service finds the others.
        let mut vars = options
            .service_config
            .get(name)
            .cloned()
            .unwrap_or_default();
        vars.extend(env.into_iter().map(|(k, v)| (k.to_owned(), v)));
        vars.insert("PORT".into(), service_ports[name].to_string());
        vars.insert("ADMIN_PORT".into(), admin_ports[name].to_string());
        // A process being replaced keeps accepting for a second, closing each connection
        // after its answer, so keep-alive clients move to its successor between requests.
        vars.entry("SHUTDOWN_LINGER_MS".into())
            .or_insert_with(|| HANDOVER_LINGER_MS.into());
        Spec {
            name,
            program: options.binaries.join(binary_name(name)),
            args: Vec::new(),
            env: vars,
            port: service_ports[name],
            probe: Probe::Http("/readyz"),
            sockets: Some(Arc::clone(&sockets[name])),
        }
    };
    let retrain_token = addresses::ml_retrain_token(&options.state).map_err(failed("ml"))?;
    let ml = service(
        "ml",
        vec![
            ("DATABASE_URL", database.ml.clone()),
            ("TRAINING_RETRY_MS", "500".into()),
            ("ML_RETRAIN_TOKEN", retrain_token.clone()),
        ],
    );
    let mut backend_env = vec![
        ("DATABASE_URL", database.backend.clone()),
        ("DATABASE_MIGRATIONS", "verify".into()),
        (
            "ML_URL",
            format!("http://127.0.0.1:{}", service_ports["ml"]),
        ),
    ];
    if let Some(url) = &redis_url {
        backend_env.push(("REDIS_URL", url.clone()));
    }
    let backend = service("backend", backend_env);
    // The cart-signing key is the environment's, so carts outlive a frontend process.
    let cart_key = addresses::cart_signing_key(&options.state).map_err(failed("frontend"))?;
    let frontend = service(
        "frontend",
        vec![
            (
                "BACKEND_URL",
                format!("http://127.0.0.1:{}", service_ports["backend"]),
            ),
            ("CART_SIGNING_KEY", cart_key),
        ],
    );

    // The schema's owner migrates it, as the cluster's init container does; the backend
    // checks it and seeds the demo data; ml trains on it.
    migrate(options, &database.owner, events)
        .await
        .map_err(failed("backend"))?;
    spawn_only(shared, running, ml.clone(), events)?;
    start(shared, events, running, backend, "migrations and demo data").await?;
    retrain(service_ports["ml"], &retrain_token).await;
    wait_ready(&ml, None).await.map_err(failed("ml"))?;
    shared.set("ml", ComponentState::Ready, None);
    events(Event::Ready {
        component: "ml".into(),
        detail: "model trained".into(),
        millis: 0,
    });
    start(shared, events, running, frontend, "storefront").await?;

    // Batch jobs (backup verification) push their results here for Prometheus to scrape.
    let pushgateway = match which("prometheus-pushgateway").or_else(|| which("pushgateway")) {
        Some(program) => {
            let port = ports.port("pushgateway").map_err(failed("pushgateway"))?;
            let spec = spec::pushgateway(program, port);
            start(
                shared,
                events,
                running,
                spec,
                "receiving batch jobs' metrics",
            )
            .await?;
            Some(port)
        }
        None => {
            events(Event::Skipped {
                component: "pushgateway".into(),
                reason: "no prometheus-pushgateway binary on PATH".into(),
            });
            None
        }
    };

    if let Some(program) = which("prometheus") {
        let spec = spec::prometheus(
            &options.state,
            &options.prometheus_rules,
            program,
            &admin_ports,
            pushgateway,
            ports.port("prometheus").map_err(failed("prometheus"))?,
        )
        .map_err(failed("prometheus"))?;
        start(
            shared,
            events,
            running,
            spec,
            "scraping the services with the platform's rules",
        )
        .await?;
    } else {
        events(Event::Skipped {
            component: "prometheus".into(),
            reason: "no prometheus binary on PATH".into(),
        });
    }
    Ok(())
}

/// Runs the release's `shopmicro-backend migrate` as the schema owner, to completion.
async fn migrate(
    options: &Options,
    owner_url: &str,
    events: &impl Fn(Event),
) -> anyhow::Result<()> {
    let started = Instant::now();
    let log = options.state.log("migrate");
    let output = Command::new(options.binaries.join(binary_name("backend")))
        .arg("migrate")
        .env("DATABASE_URL", owner_url)
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
    events(Event::Ready {
        component: "migrations".into(),
        detail: "applied as the schema owner".into(),
        millis: started.elapsed().as_millis() as u64,
    });
    Ok(())
}

/// Trains ml on the demo data the backend just loaded.
async fn retrain(ml_port: u16, token: &str) {
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{ml_port}/model/retrain");
    for _ in 0..50 {
        if client
            .post(&url)
            .bearer_auth(token)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A supervisor that died (killed, machine crash) leaves its children and state behind:
/// stop the recorded processes that are provably still ours, then forget them.
pub fn clean_up_after_crash(dir: &StateDir) -> anyhow::Result<bool> {
    let Some(state) = dir.read()? else {
        return Ok(false);
    };
    if state.supervisor.is_alive() && state.supervisor != ProcessId::current() {
        anyhow::bail!(
            "the supervisor (pid {}) is still running",
            state.supervisor.pid
        );
    }
    for component in state.components.iter().rev() {
        if let Some(process) = component.process {
            process.terminate(Duration::from_secs(10));
        }
    }
    dir.remove_state()?;
    Ok(true)
}

async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
