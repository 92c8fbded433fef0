//! Graceful shutdown of the real binary: SIGTERM during an in-flight request lets it
//! finish, then the process exits 0.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use shopmicro_common::testing::{TestDatabase, eventually_status};
use tokio::sync::mpsc;

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_then_exits_zero_on_a_single_threaded_runtime() {
    // Arrange: an ml stand-in that tells us when the backend's request is in flight and
    // answers a second later, so the request is mid-way when SIGTERM arrives.
    let (arrived_tx, mut arrived) = mpsc::channel::<()>(1);
    let ml = Router::new().route(
        "/recommendations",
        get(move || {
            let arrived_tx = arrived_tx.clone();
            async move {
                let _ = arrived_tx.send(()).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                axum::Json(
                    serde_json::json!({"recommendations": [{"product_id": 2, "score": 0.9}]}),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ml_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, ml).await });

    // On one thread, as a pod limited to one CPU runs it: the drain must not need a second.
    let database = TestDatabase::create().await;
    let (mut child, listening) = spawn_backend_announcing(
        &database,
        &[
            ("ML_URL", &format!("http://127.0.0.1:{ml_port}")),
            ("ML_TIMEOUT_MS", "5000"),
            ("SHUTDOWN_DEADLINE_MS", "10000"),
            ("WORKER_THREADS", "1"),
        ],
    );
    assert_eq!(listening["runtime"], "single-threaded", "{listening}");
    assert_eq!(listening["worker_threads"], 1, "{listening}");
    let port = listening["port"].as_u64().unwrap() as u16;

    // Act
    let request = tokio::spawn(async move {
        reqwest::get(format!(
            "http://127.0.0.1:{port}/products/1/recommendations"
        ))
        .await
    });
    arrived.recv().await.expect("the request reached ml");
    sigterm(&child);

    // Assert
    let response = request
        .await
        .unwrap()
        .expect("the in-flight request completed");
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["source"], "ml");
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .is_err(),
        "no longer accepting"
    );
}

/// Sends SIGTERM to `child`, as Kubernetes or the local supervisor would.
fn sigterm(child: &std::process::Child) {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// The backend binary on free ports, with `vars` (no Redis, no ml unless given), and the
/// port it listens on.
fn spawn_backend(database: &TestDatabase, vars: &[(&str, &str)]) -> (std::process::Child, u16) {
    let (child, listening) = spawn_backend_announcing(database, vars);
    (child, listening["port"].as_u64().unwrap() as u16)
}

/// As [`spawn_backend`], with the whole "listening" log line.
fn spawn_backend_announcing(
    database: &TestDatabase,
    vars: &[(&str, &str)],
) -> (std::process::Child, serde_json::Value) {
    let mut child = backend_command(database, vars)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let listening = listening_line(child.stdout.take().unwrap());
    (child, listening)
}

fn backend_command(database: &TestDatabase, vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shopmicro-backend"));
    command
        .env("DATABASE_URL", database.url())
        .env("PORT", "0")
        .env("ADMIN_PORT", "0")
        .env_remove("REDIS_URL")
        .env_remove("ML_URL")
        .envs(vars.iter().copied());
    command
}

/// Reads the JSON log until the "listening" line and returns it. A thread keeps draining
/// stdout afterwards so the child never blocks on a full pipe.
fn listening_line(stdout: std::process::ChildStdout) -> serde_json::Value {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line)
                && json["message"] == "backend listening"
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(json);
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the backend started listening")
}

/// From SIGTERM on the backend is draining: `/readyz` fails at once, other requests are
/// still answered while it lingers, each closing its connection, and it exits within its
/// deadline.
#[tokio::test]
async fn sigterm_fails_readiness_at_once_and_answers_with_closing_connections_while_lingering() {
    let database = TestDatabase::create().await;
    let (mut child, port) = spawn_backend(
        &database,
        &[
            ("SHUTDOWN_LINGER_MS", "3000"),
            ("SHUTDOWN_DEADLINE_MS", "5000"),
        ],
    );
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("http://127.0.0.1:{port}{path}")).send();
    assert_eq!(get("/readyz").await.unwrap().status(), 200);

    let signalled = std::time::Instant::now();
    sigterm(&child);
    let readiness = eventually_status(
        "readiness to fail",
        &format!("http://127.0.0.1:{port}/readyz"),
        503,
    )
    .await;
    assert_eq!(
        readiness.json::<serde_json::Value>().await.unwrap()["status"],
        "draining"
    );
    let answered = get("/products?limit=1").await.unwrap();
    assert_eq!(answered.status(), 200, "still answering while it lingers");
    assert_eq!(answered.headers()["connection"], "close");

    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "stopped within SHUTDOWN_DEADLINE_MS ({:?})",
        signalled.elapsed()
    );
}

/// A SIGTERM that arrives the moment the port is announced, before the server has served
/// anything, is a graceful stop (exit 0), not the signal's default action killing it.
#[tokio::test]
async fn sigterm_right_after_the_port_is_announced_stops_gracefully() {
    let database = TestDatabase::create().await;
    let (mut child, _port) = spawn_backend(&database, &[("SHUTDOWN_LINGER_MS", "0")]);
    sigterm(&child);
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.success(),
        "exit status {status:?} (killed by the signal means no handler was installed yet)"
    );
}

/// `WORKER_THREADS` sizes the runtime: an explicit count of workers is honoured, and a value
/// that is no count of threads stops start-up, before any port opens, naming the variable.
#[tokio::test]
async fn worker_threads_sizes_the_runtime_and_a_bad_value_stops_start_up() {
    let database = TestDatabase::create().await;
    let (mut child, listening) = spawn_backend_announcing(&database, &[("WORKER_THREADS", "3")]);
    assert_eq!(listening["runtime"], "multi-threaded", "{listening}");
    assert_eq!(listening["worker_threads"], 3, "{listening}");
    sigterm(&child);
    assert!(child.wait().unwrap().success());

    for bad in ["0", "1.5"] {
        let output = backend_command(&database, &[("WORKER_THREADS", bad)])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("WORKER_THREADS is malformed; expected a whole number of threads"),
            "{stderr}"
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(!stdout.contains("backend listening"), "{stdout}");
    }
}
