//! Starts the local platform in dependency order, each component gated on readiness,
//! keeps it running (restarts with backoff), and stops it gracefully on SIGTERM/SIGINT.
//!
//! [`spec`] says what each component is, [`services`] how the three services are wired,
//! [`readiness`] when a component is ready, [`lifecycle`] spawns, restarts and stops
//! processes, [`handover`] replaces one while it serves, [`release_switch`] hands every
//! service over to another release, and [`shared`] is the state they all update.

mod handover;
mod lifecycle;
mod readiness;
mod release_switch;
mod services;
mod shared;
mod spec;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;

use super::addresses::Ports;
use super::events::Event;
use super::postgres;
use super::process::ProcessId;
use super::state::{Component, ComponentState, State, StateDir};
use crate::db_roles::DbRole;
use lifecycle::{Running, StartError, failed, keep_running, spawn_only, start, stop_all};
use readiness::wait_ready;
use services::{DatabaseUrls, Services, Wiring};
use shared::Shared;
use spec::external;

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

/// The database the platform's private cluster serves.
const DATABASE: &str = "shopmicro";

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
    let services = match start_all(&options, &shared, &events, &mut running).await {
        Ok(services) => services,
        Err(err) => {
            events(Event::Failed {
                component: err.component,
                message: format!("{:#}", err.error),
            });
            stop_all(&shared, running).await;
            return Err(err.error);
        }
    };
    let storefront = shared
        .read(|state| state.component("frontend").and_then(|c| c.url.clone()))
        .unwrap_or_default();
    events(Event::AllReady { storefront });

    let running = keep_running(&shared, &services, running, stop_rx).await;
    stop_all(&shared, running).await;
    Ok(())
}

async fn start_all(
    options: &Options,
    shared: &Shared,
    events: &impl Fn(Event),
    running: &mut Running,
) -> Result<Services, StartError> {
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

    // The services: sockets bound up front on the kept ports, so each can be told where
    // the others are.
    let wiring = Wiring {
        database,
        redis_url,
    };
    let services = Services::bind(&options.state, &mut ports, wiring)
        .map_err(|(name, error)| failed(name)(error))?;
    let spec = |name| services.spec(name, &options.binaries, &options.service_config);

    // The schema's owner migrates it; the backend checks it and seeds the demo data; ml
    // trains on it.
    let took = services
        .migrate(&options.binaries)
        .await
        .map_err(failed("backend"))?;
    events(Event::Ready {
        component: "migrations".into(),
        detail: "applied as the schema owner".into(),
        millis: took.as_millis() as u64,
    });
    let ml = spec("ml");
    spawn_only(shared, running, ml.clone(), events)?;
    start(
        shared,
        events,
        running,
        spec("backend"),
        "migrations and demo data",
    )
    .await?;
    retrain(services.port("ml"), services.retrain_token()).await;
    wait_ready(&ml, None).await.map_err(failed("ml"))?;
    shared.set("ml", ComponentState::Ready, None);
    events(Event::Ready {
        component: "ml".into(),
        detail: "model trained".into(),
        millis: 0,
    });
    start(shared, events, running, spec("frontend"), "storefront").await?;

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
            services.admin_ports(),
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
    Ok(services)
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
