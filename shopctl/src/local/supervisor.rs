//! Starts the local platform in dependency order, each component gated on readiness,
//! keeps it running (restarts with backoff), and stops it gracefully on SIGTERM/SIGINT.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::process::{Child, Command};
use tokio::sync::watch;

use super::binaries::binary_name;
use super::events::Event;
use super::postgres;
use super::process::ProcessId;
use super::state::{Component, ComponentState, State, StateDir};
use crate::db_roles::DbRole;

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

/// How each workload connects: as its own role on the private cluster, or with the
/// external URL as given (whose roles are the operator's to manage).
struct DatabaseUrls {
    owner: String,
    backend: String,
    ml: String,
}

const READY_TIMEOUT: Duration = Duration::from_secs(120);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How to (re)start one supervised component.
#[derive(Clone)]
struct Spec {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    port: u16,
    /// HTTP readiness path, or `None` for a TCP check.
    ready_path: Option<&'static str>,
    as_postgres: Option<postgres::Binaries>,
}

type Shared = Arc<Mutex<State>>;

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
    let state: Shared = Arc::new(Mutex::new(State {
        environment: options.environment.clone(),
        revision: Some(options.revision),
        supervisor: ProcessId::current(),
        started_at: chrono::Utc::now().to_rfc3339(),
        components: Vec::new(),
    }));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        stop_signal().await;
        let _ = stop_tx.send(true);
    });

    let mut running: Vec<(Spec, Child)> = Vec::new();
    let started = start_all(&options, &state, &events, &mut running).await;
    if let Err(err) = started {
        let component = err.component.clone();
        events(Event::Failed {
            component,
            message: format!("{:#}", err.error),
        });
        stop_all(&options.state, &state, running).await;
        return Err(err.error);
    }
    let storefront = state
        .lock()
        .unwrap()
        .component("frontend")
        .and_then(|c| c.url.clone())
        .unwrap_or_default();
    events(Event::AllReady { storefront });

    let running = keep_running(&options.state, &state, running, stop_rx).await;
    stop_all(&options.state, &state, running).await;
    Ok(())
}

struct StartError {
    component: String,
    error: anyhow::Error,
}

fn failed(component: &str) -> impl FnOnce(anyhow::Error) -> StartError + '_ {
    move |error| StartError {
        component: component.to_owned(),
        error,
    }
}

async fn start_all(
    options: &Options,
    state: &Shared,
    events: &impl Fn(Event),
    running: &mut Vec<(Spec, Child)>,
) -> Result<(), StartError> {
    // PostgreSQL: the one given, or a private cluster with the platform's roles.
    let database = match &options.database_url {
        Some(url) => {
            record(&options.state, state, external("postgres", None));
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
            let port = free_port().map_err(failed("postgres"))?;
            let command = postgres::server(&binaries, &data, port).map_err(failed("postgres"))?;
            let spec = Spec {
                name: "postgres",
                program: PathBuf::from(command.get_program()),
                args: command
                    .get_args()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect(),
                env: BTreeMap::new(),
                port,
                ready_path: None,
                as_postgres: Some(binaries.clone()),
            };
            start(
                options,
                state,
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
            record(&options.state, state, external("redis", None));
            Some(url.clone())
        }
        None => match which("redis-server") {
            Some(program) => {
                let port = free_port().map_err(failed("redis"))?;
                let spec = Spec {
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
                    ready_path: None,
                    as_postgres: None,
                };
                start(options, state, events, running, spec, "private, in memory").await?;
                Some(format!("redis://127.0.0.1:{port}"))
            }
            None => {
                record(
                    &options.state,
                    state,
                    Component {
                        state: ComponentState::Disabled,
                        ..external("redis", None)
                    },
                );
                events(Event::Skipped {
                    component: "redis".into(),
                    reason: "no redis-server on PATH: running without a cache".into(),
                });
                None
            }
        },
    };

    // The services: ports chosen up front so each can be told where the others are.
    let ports: BTreeMap<&str, u16> = [
        ("ml", free_port()),
        ("backend", free_port()),
        ("frontend", free_port()),
    ]
    .into_iter()
    .map(|(name, port)| port.map(|p| (name, p)))
    .collect::<anyhow::Result<_>>()
    .map_err(failed("services"))?;
    let service = |name: &'static str, env: Vec<(&str, String)>| {
        // The release's settings, then where this service finds the others.
        let mut vars = options
            .service_config
            .get(name)
            .cloned()
            .unwrap_or_default();
        vars.extend(env.into_iter().map(|(k, v)| (k.to_owned(), v)));
        vars.insert("PORT".into(), ports[name].to_string());
        Spec {
            name,
            program: options.binaries.join(binary_name(name)),
            args: Vec::new(),
            env: vars,
            port: ports[name],
            ready_path: Some("/readyz"),
            as_postgres: None,
        }
    };
    let ml = service(
        "ml",
        vec![
            ("DATABASE_URL", database.ml.clone()),
            ("TRAINING_RETRY_MS", "500".into()),
        ],
    );
    let mut backend_env = vec![
        ("DATABASE_URL", database.backend.clone()),
        ("DATABASE_MIGRATIONS", "verify".into()),
        ("ML_URL", format!("http://127.0.0.1:{}", ports["ml"])),
    ];
    if let Some(url) = &redis_url {
        backend_env.push(("REDIS_URL", url.clone()));
    }
    let backend = service("backend", backend_env);
    let frontend = service(
        "frontend",
        vec![(
            "BACKEND_URL",
            format!("http://127.0.0.1:{}", ports["backend"]),
        )],
    );

    // The schema's owner migrates it, as the cluster's init container does; the backend
    // checks it and seeds the demo data; ml trains on it.
    migrate(options, &database.owner, events)
        .await
        .map_err(failed("backend"))?;
    spawn_only(options, state, running, ml.clone(), events).await?;
    start(
        options,
        state,
        events,
        running,
        backend,
        "migrations and demo data",
    )
    .await?;
    retrain(ports["ml"]).await;
    wait_ready(&ml, None).await.map_err(failed("ml"))?;
    mark_ready(&options.state, state, "ml");
    events(Event::Ready {
        component: "ml".into(),
        detail: "model trained".into(),
        millis: 0,
    });
    start(options, state, events, running, frontend, "storefront").await?;

    // Batch jobs (backup verification) push their results here for Prometheus to scrape.
    let pushgateway = match which("prometheus-pushgateway").or_else(|| which("pushgateway")) {
        Some(program) => {
            let spec = pushgateway_spec(program).map_err(failed("pushgateway"))?;
            let port = spec.port;
            start(
                options,
                state,
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
        let spec =
            prometheus_spec(options, program, &ports, pushgateway).map_err(failed("prometheus"))?;
        start(
            options,
            state,
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

fn pushgateway_spec(program: PathBuf) -> anyhow::Result<Spec> {
    let port = free_port()?;
    Ok(Spec {
        name: "pushgateway",
        program,
        args: vec![format!("--web.listen-address=127.0.0.1:{port}")],
        env: BTreeMap::new(),
        port,
        ready_path: Some("/-/ready"),
        as_postgres: None,
    })
}

fn prometheus_spec(
    options: &Options,
    program: PathBuf,
    ports: &BTreeMap<&str, u16>,
    pushgateway: Option<u16>,
) -> anyhow::Result<Spec> {
    let dir = options.state.root.join("prometheus");
    std::fs::create_dir_all(dir.join("rules"))?;
    for (name, text) in &options.prometheus_rules {
        std::fs::write(dir.join("rules").join(name), text)?;
    }
    let targets: String = ports
        .iter()
        .map(|(name, port)| format!("      - targets: ['127.0.0.1:{port}']\n        labels: {{service: {name}, namespace: shopmicro}}\n"))
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
    let port = free_port()?;
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
        ready_path: Some("/-/ready"),
        as_postgres: None,
    })
}

fn external(name: &str, url: Option<String>) -> Component {
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

fn url_for(spec: &Spec) -> String {
    match spec.name {
        "postgres" => format!("postgres://postgres@127.0.0.1:{}/shopmicro", spec.port),
        "redis" => format!("redis://127.0.0.1:{}", spec.port),
        _ => format!("http://127.0.0.1:{}", spec.port),
    }
}

fn record(dir: &StateDir, state: &Shared, component: Component) {
    let mut state = state.lock().unwrap();
    match state.component_mut(&component.name) {
        Some(existing) => *existing = component,
        None => state.components.push(component),
    }
    let _ = dir.write(&state);
}

fn mark_ready(dir: &StateDir, state: &Shared, name: &str) {
    let mut state = state.lock().unwrap();
    if let Some(component) = state.component_mut(name) {
        component.state = ComponentState::Ready;
    }
    let _ = dir.write(&state);
}

fn spawn(dir: &StateDir, spec: &Spec) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.log(spec.name))?;
    let mut command = match &spec.as_postgres {
        Some(binaries) => Command::from(postgres::command(binaries, "postgres")?),
        None => Command::new(&spec.program),
    };
    command
        .args(&spec.args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(&spec.env)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(false);
    command
        .spawn()
        .with_context(|| format!("starting {}", spec.program.display()))
}

async fn spawn_only(
    options: &Options,
    state: &Shared,
    running: &mut Vec<(Spec, Child)>,
    spec: Spec,
    events: &impl Fn(Event),
) -> Result<(), StartError> {
    events(Event::Starting {
        component: spec.name.into(),
        detail: format!("port {}", spec.port),
    });
    let child = spawn(&options.state, &spec).map_err(failed(spec.name))?;
    record(
        &options.state,
        state,
        Component {
            name: spec.name.into(),
            origin: "managed".into(),
            state: ComponentState::Starting,
            process: child.id().and_then(ProcessId::of),
            port: Some(spec.port),
            url: Some(url_for(&spec)),
            restarts: 0,
            log: Some(options.state.log(spec.name)),
        },
    );
    running.push((spec, child));
    Ok(())
}

async fn start(
    options: &Options,
    state: &Shared,
    events: &impl Fn(Event),
    running: &mut Vec<(Spec, Child)>,
    spec: Spec,
    detail: &str,
) -> Result<(), StartError> {
    let began = Instant::now();
    let name = spec.name;
    spawn_only(options, state, running, spec.clone(), events).await?;
    let child = &mut running.last_mut().expect("just pushed").1;
    wait_ready(&spec, Some(child))
        .await
        .map_err(|error| StartError {
            component: name.into(),
            error: error.context(format!("see {}", options.state.log(name).display())),
        })?;
    mark_ready(&options.state, state, name);
    events(Event::Ready {
        component: name.into(),
        detail: detail.into(),
        millis: began.elapsed().as_millis() as u64,
    });
    Ok(())
}

/// Polls readiness like a kubelet probe; fails fast if the process exits.
async fn wait_ready(spec: &Spec, mut child: Option<&mut Child>) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    loop {
        if let Some(child) = child.as_deref_mut()
            && let Some(status) = child.try_wait()?
        {
            anyhow::bail!("{} exited during start-up ({status})", spec.name);
        }
        let ready = match (spec.ready_path, &spec.as_postgres) {
            (_, Some(binaries)) => postgres::is_ready(binaries, spec.port),
            (Some(path), None) => http
                .get(format!("http://127.0.0.1:{}{path}", spec.port))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success()),
            (None, None) => redis_pong(spec.port).await,
        };
        if ready {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} not ready after {:?}",
            spec.name,
            READY_TIMEOUT
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn redis_pong(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").await.is_ok()
        && tokio::time::timeout(Duration::from_secs(1), stream.read_exact(&mut reply))
            .await
            .is_ok_and(|r| r.is_ok())
        && &reply == b"+PONG\r\n"
}

/// Trains ml on the demo data the backend just loaded.
async fn retrain(ml_port: u16) {
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{ml_port}/model/retrain");
    for _ in 0..50 {
        if client
            .post(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Restarts anything that exits until asked to stop; pauses and resumes components as
/// `control.json` asks (a restore stops the writers). Returns the children still running.
async fn keep_running(
    dir: &StateDir,
    state: &Shared,
    mut running: Vec<(Spec, Child)>,
    mut stop: watch::Receiver<bool>,
) -> Vec<(Spec, Child)> {
    let mut backoff: BTreeMap<&'static str, (Duration, Instant)> = BTreeMap::new();
    let mut paused: BTreeSet<&'static str> = BTreeSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => return running,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        let wanted = dir.paused();
        for (spec, child) in running.iter_mut() {
            let pause = wanted.contains(spec.name);
            if pause && !paused.contains(spec.name) {
                if let Some(id) = child.id().and_then(ProcessId::of) {
                    tokio::task::spawn_blocking(move || id.terminate(Duration::from_secs(10)))
                        .await
                        .ok();
                }
                let _ = child.wait().await;
                paused.insert(spec.name);
                set_state(dir, state, spec.name, ComponentState::Paused, None);
                continue;
            }
            if !pause && paused.remove(spec.name) {
                respawn(dir, state, spec, child).await;
                continue;
            }
            if pause {
                continue;
            }
            let Ok(Some(status)) = child.try_wait() else {
                continue;
            };
            // A crash after a long healthy run starts the backoff over.
            let (delay, since) = backoff
                .entry(spec.name)
                .or_insert((Duration::from_secs(1), Instant::now()));
            if since.elapsed() > Duration::from_secs(60) {
                *delay = Duration::from_secs(1);
            }
            eprintln!("{} exited ({status}); restarting in {:?}", spec.name, delay);
            {
                let mut guard = state.lock().unwrap();
                if let Some(component) = guard.component_mut(spec.name) {
                    component.state = ComponentState::Restarting;
                    component.restarts += 1;
                }
                let _ = dir.write(&guard);
            }
            tokio::select! {
                _ = stop.changed() => return running,
                () = tokio::time::sleep(*delay) => {}
            }
            *delay = (*delay * 2).min(MAX_BACKOFF);
            *since = Instant::now();
            respawn(dir, state, spec, child).await;
        }
    }
}

async fn respawn(dir: &StateDir, state: &Shared, spec: &Spec, child: &mut Child) {
    match spawn(dir, spec) {
        Ok(new_child) => {
            *child = new_child;
            let ready = wait_ready(spec, Some(child)).await.is_ok();
            let next = if ready {
                ComponentState::Ready
            } else {
                ComponentState::Restarting
            };
            set_state(
                dir,
                state,
                spec.name,
                next,
                child.id().and_then(ProcessId::of),
            );
        }
        Err(err) => eprintln!("restarting {} failed: {err:#}", spec.name),
    }
}

fn set_state(
    dir: &StateDir,
    state: &Shared,
    name: &str,
    next: ComponentState,
    process: Option<ProcessId>,
) {
    let mut guard = state.lock().unwrap();
    if let Some(component) = guard.component_mut(name) {
        component.state = next;
        if process.is_some() || next == ComponentState::Paused {
            component.process = process;
        }
    }
    let _ = dir.write(&guard);
}

/// Stops in reverse start order: services drain first, the database goes last.
async fn stop_all(dir: &StateDir, state: &Shared, running: Vec<(Spec, Child)>) {
    for (spec, mut child) in running.into_iter().rev() {
        if let Some(id) = child.id().and_then(ProcessId::of) {
            let grace = if spec.name == "postgres" {
                Duration::from_secs(30)
            } else {
                Duration::from_secs(10)
            };
            tokio::task::spawn_blocking(move || id.terminate(grace))
                .await
                .ok();
        }
        let _ = child.wait().await;
        let mut guard = state.lock().unwrap();
        if let Some(component) = guard.component_mut(spec.name) {
            component.state = ComponentState::Stopped;
        }
        let _ = dir.write(&guard);
    }
    let _ = dir.remove_state();
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

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
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
