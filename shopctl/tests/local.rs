//! `shopctl up/status/down/logs --env local` through the real binary: a private
//! PostgreSQL (initdb), a private Redis and the three services, supervised.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shopctl::local::process::ProcessId;
use shopmicro_common::testing::eventually;
use support::{Scratch, Shopctl};

/// shopctl with its own state directory and no inherited platform settings.
fn shopctl_in(state: &Path, args: &[&str], path: Option<&str>) -> Output {
    let shopctl = Shopctl::new(args).state(state);
    match path {
        Some(path) => shopctl
            .env("PATH", path)
            .env("SHOPCTL_POSTGRES_SEARCH", "")
            .output(),
        None => shopctl.output(),
    }
}

/// `shopctl args` started in the background, its output captured.
fn spawn_shopctl(state: &Path, args: &[&str]) -> std::process::Child {
    Shopctl::new(args)
        .state(state)
        .command()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

struct Running<'a> {
    state: &'a Path,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let _ = shopctl_in(self.state, &["down"], None);
    }
}

fn up(state: &Path) -> Running<'_> {
    let output = shopctl_in(state, &["up", "--env", "local"], None);
    assert!(
        output.status.success(),
        "up failed:\n{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    assert!(
        text(&output.stdout).contains("storefront: http://127.0.0.1:"),
        "{}",
        text(&output.stdout)
    );
    Running { state }
}

fn status(state: &Path) -> Value {
    let output = shopctl_in(state, &["status", "--output", "json"], None);
    serde_json::from_slice(&output.stdout).unwrap_or_else(|_| panic!("{}", text(&output.stderr)))
}

fn component<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name}: {status}"))
}

fn pids(status: &Value) -> Vec<ProcessId> {
    status["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| serde_json::from_value(c["process"].clone()).ok())
        .collect()
}

/// A browser that does not follow redirects (to see each answer).
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Adds `quantity` of product `id` through the storefront's form; the signed cart cookie.
async fn add_to_cart(http: &reqwest::Client, storefront: &str, id: &str, quantity: &str) -> String {
    let added = http
        .post(format!("{storefront}/cart/items"))
        .form(&[("product_id", id), ("quantity", quantity)])
        .send()
        .await
        .unwrap();
    assert_eq!(added.status().as_u16(), 303);
    // Every cookie set (the cart and its session), as a browser would send them back.
    added
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|cookie| cookie.to_str().unwrap().split(';').next().unwrap())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Places an order through the storefront's forms, as a shopper would; its reference.
async fn order_through_the_storefront(storefront: &str) -> String {
    let http = browser();
    let cookie = add_to_cart(&http, storefront, "1", "1").await;
    let cart = http
        .get(format!("{storefront}/cart"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let key = cart
        .split("name=\"idempotency_key\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let placed = http
        .post(format!("{storefront}/checkout"))
        .header("cookie", &cookie)
        .form(&[("idempotency_key", key)])
        .send()
        .await
        .unwrap();
    assert_eq!(placed.status().as_u16(), 303);
    placed.headers()["location"]
        .to_str()
        .unwrap()
        .trim_start_matches("/orders/")
        .to_owned()
}

async fn order_exists(database_url: &str, reference: &str) -> bool {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(database_url).await.unwrap();
    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM orders WHERE reference::text = $1")
        .bind(reference)
        .fetch_optional(&mut conn)
        .await
        .unwrap();
    found.is_some()
}

#[tokio::test(flavor = "multi_thread")]
async fn up_serves_the_storefront_down_stops_only_what_it_started_and_data_survives() {
    let scratch = Scratch::new();
    let state = scratch.path("state");
    let mut bystander = Command::new("sleep").arg("300").spawn().unwrap();
    let bystander_id = ProcessId::of(bystander.id()).unwrap();

    let running = up(&state);
    let report = status(&state);
    for name in ["postgres", "redis", "ml", "backend", "frontend"] {
        assert_eq!(component(&report, name)["state"], "ready", "{report:#}");
    }
    let storefront = component(&report, "frontend")["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let database = component(&report, "postgres")["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let order = order_through_the_storefront(&storefront).await;
    assert!(order_exists(&database, &order).await);
    // Each service connects as its own role, as on the cluster; the owner migrated.
    for (service, role) in [("backend", "shopmicro_backend"), ("ml", "shopmicro_ml")] {
        let process: ProcessId =
            serde_json::from_value(component(&report, service)["process"].clone()).unwrap();
        let url = environ_of(&process, "DATABASE_URL").unwrap();
        assert!(
            url.starts_with(&format!("postgres://{role}@")),
            "{service}: {url}"
        );
    }
    // The allocator setting the images carry (checked in tests/delivery.rs).
    for service in ["ml", "backend", "frontend"] {
        let process: ProcessId =
            serde_json::from_value(component(&report, service)["process"].clone()).unwrap();
        assert_eq!(
            environ_of(&process, "MIMALLOC_ARENA_EAGER_COMMIT").as_deref(),
            Some("0"),
            "{service}"
        );
    }
    let backend: ProcessId =
        serde_json::from_value(component(&report, "backend")["process"].clone()).unwrap();
    assert_eq!(
        environ_of(&backend, "DATABASE_MIGRATIONS").as_deref(),
        Some("verify")
    );
    let started = pids(&report);
    assert!(started.len() >= 5, "{report:#}");

    let down = shopctl_in(&state, &["down"], None);
    assert!(down.status.success(), "{}", text(&down.stderr));
    std::mem::forget(running);
    assert!(
        started.iter().all(|p| !p.is_alive()),
        "every process up started is gone"
    );
    assert!(bystander_id.is_alive(), "nothing else was touched");
    let _ = bystander.kill();
    let _ = bystander.wait();
    assert_eq!(status(&state)["running"], false);

    // Data is kept across down/up.
    let _running = up(&state);
    let database = component(&status(&state), "postgres")["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        order_exists(&database, &order).await,
        "the order survived down and up"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_backend_is_restarted_by_the_supervisor() {
    let scratch = Scratch::new();
    let state = scratch.path("state");
    let _running = up(&state);
    let before = status(&state);
    let backend: ProcessId =
        serde_json::from_value(component(&before, "backend")["process"].clone()).unwrap();

    Command::new("kill")
        .args(["-KILL", &backend.pid.to_string()])
        .status()
        .unwrap();

    let restarted = eventually("the backend restarted", Duration::from_secs(60), || {
        let now = status(&state);
        let entry = component(&now, "backend");
        match entry["state"] == "ready" && entry["restarts"].as_u64() >= Some(1) {
            true => Ok(now),
            false => Err(now),
        }
    });
    let new_backend: ProcessId =
        serde_json::from_value(component(&restarted, "backend")["process"].clone()).unwrap();
    assert_ne!(new_backend, backend);
    let url = component(&restarted, "backend")["url"].as_str().unwrap();
    let ready = reqwest::get(format!("{url}/readyz")).await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    let logs = shopctl_in(&state, &["logs", "supervisor"], None);
    assert!(
        text(&logs.stdout).contains("backend exited"),
        "{}",
        text(&logs.stdout)
    );
}

#[test]
fn two_concurrent_ups_start_one_platform() {
    let scratch = Scratch::new();
    let state = scratch.path("state");
    let spawn = || {
        Shopctl::new(&["up", "--env", "local"])
            .state(&state)
            .command()
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(), spawn());
    let outputs = [
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    ];
    let _running = Running { state: &state };

    let started = outputs
        .iter()
        .filter(|o| o.status.success() && text(&o.stdout).contains("storefront:"))
        .count();
    assert!(started >= 1, "{outputs:#?}");
    let refused: Vec<&Output> = outputs
        .iter()
        .filter(|o| !text(&o.stdout).contains("storefront:"))
        .collect();
    for output in &refused {
        let stderr = text(&output.stderr);
        assert!(stderr.contains("already"), "a clear message: {stderr}");
    }
    assert_eq!(started + refused.len(), 2);
    assert_eq!(status(&state)["running"], true);
}

/// A directory with just the tools shopctl needs besides PostgreSQL.
fn path_without_postgres(scratch: &Scratch) -> String {
    let bin = scratch.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["kill", "redis-server"] {
        if let Some(found) = std::env::split_paths(&std::env::var_os("PATH").unwrap())
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
        {
            std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
        }
    }
    bin.display().to_string()
}

#[test]
fn without_postgres_binaries_up_says_how_to_install_them_and_leaves_nothing_running() {
    let scratch = Scratch::new();
    let state = scratch.path("state");
    let path = path_without_postgres(&scratch);
    let output = shopctl_in(&state, &["up", "--env", "local"], Some(&path));
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("apt-get install postgresql"), "{stderr}");
    assert!(
        stderr.contains(
            "shopctl: postgres: no PostgreSQL server binaries (initdb and postgres) found on PATH."
        ),
        "{stderr}"
    );
    assert!(!state.join("state.json").exists(), "no state left behind");
    assert_eq!(status(&state)["running"], false);
}

#[test]
fn down_on_a_cluster_environment_never_runs_unconfirmed() {
    let scratch = Scratch::new();
    refused(
        &scratch.path("state"),
        &["down", "--env", "prod"],
        "uninstall the `prod` platform from namespace shopmicro (the database volumes, backups and release history stay); add --yes to confirm non-interactively",
    );
}

fn environ_of(process: &ProcessId, name: &str) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{}/environ", process.pid)).ok()?;
    environ
        .split(|b| *b == 0)
        .filter_map(|entry| std::str::from_utf8(entry).ok())
        .find_map(|entry| entry.strip_prefix(&format!("{name}=")).map(str::to_owned))
}

fn backend_log_level(state: &Path) -> Option<String> {
    let report = status(state);
    let backend: ProcessId =
        serde_json::from_value(component(&report, "backend")["process"].clone()).unwrap();
    environ_of(&backend, "RUST_LOG")
}

/// Runs shopctl, insisting it refuses (exit 2) and says `because` on stderr.
fn refused(state: &Path, args: &[&str], because: &str) {
    let output = shopctl_in(state, args, None);
    assert_eq!(output.status.code(), Some(2), "{args:?}");
    let stderr = text(&output.stderr);
    assert!(stderr.contains(because), "{args:?}: {stderr}");
}

fn history(state: &Path) -> Value {
    let output = shopctl_in(state, &["history", "--output", "json"], None);
    serde_json::from_slice(&output.stdout).unwrap_or_else(|_| panic!("{}", text(&output.stderr)))
}

#[test]
fn rollback_after_a_changed_configuration_restores_the_previous_release() {
    let scratch = Scratch::new();
    let state = scratch.path("state");
    refused(&state, &["rollback"], "no release history");
    refused(
        &state,
        &["rollback", "--service", "backend"],
        "a local release is rolled back whole",
    );

    let _running = up(&state);
    assert_eq!(
        backend_log_level(&state).as_deref(),
        Some("debug"),
        "local.yaml's log level"
    );
    let again = shopctl_in(&state, &["up"], None);
    assert!(
        text(&again.stderr).contains("already running revision 1 with no changes"),
        "{}",
        text(&again.stderr)
    );

    let changed = shopctl_in(
        &state,
        &["up", "--set", "observability.log_level=warn"],
        None,
    );
    assert!(changed.status.success(), "{}", text(&changed.stderr));
    assert!(
        text(&changed.stderr).contains("handing each service over to release 2"),
        "{}",
        text(&changed.stderr)
    );
    assert_eq!(backend_log_level(&state).as_deref(), Some("warn"));

    let rolled_back = shopctl_in(&state, &["rollback", "--output", "json"], None);
    assert!(
        rolled_back.status.success(),
        "{}",
        text(&rolled_back.stderr)
    );
    let report: Value = serde_json::from_slice(&rolled_back.stdout).unwrap();
    assert_eq!(
        (&report["to"], &report["revision"], &report["ready"]),
        (&json!(1), &json!(3), &json!(true)),
        "{report:#}"
    );
    assert!(
        report["storefront"]
            .as_str()
            .is_some_and(|url| url.starts_with("http://127.0.0.1:")),
        "{report:#}"
    );
    assert_eq!(
        backend_log_level(&state).as_deref(),
        Some("debug"),
        "revision 1's configuration is back"
    );
    let releases = history(&state);
    assert_eq!(releases["current"], 3);
    let statuses: Vec<&str> = releases["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["ready", "ready", "ready"],
        "each release started"
    );
    let causes: Vec<&str> = releases["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cause"].as_str().unwrap())
        .collect();
    assert_eq!(causes, ["up", "up", "rollback to 1"]);
    assert_eq!(
        releases["releases"][0]["digest"], releases["releases"][2]["digest"],
        "the same release, re-applied"
    );

    refused(
        &state,
        &["rollback", "--to", "99"],
        "no revision 99; known revisions: 1, 2, 3",
    );
    assert_eq!(
        history(&state)["current"],
        3,
        "a refused rollback changes nothing"
    );

    // A release whose frontend cannot start: ml and the backend take it over first, then
    // are handed back, and the platform keeps serving revision 3 whole.
    let frontend_before = component(&status(&state), "frontend")["process"].clone();
    let broken = state.join("releases/2/bin/shopmicro-frontend");
    std::fs::remove_file(&broken).unwrap();
    std::fs::write(&broken, "#!/bin/sh\nexit 3\n").unwrap();
    std::fs::set_permissions(&broken, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let failed = shopctl_in(&state, &["rollback", "--output", "json"], None);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed.stderr));
    let report: Value = serde_json::from_slice(&failed.stdout).unwrap();
    assert_eq!(
        (&report["to"], &report["revision"], &report["ready"]),
        (&json!(2), &json!(4), &json!(false)),
        "{report:#}"
    );
    let reason = report["reason"].as_str().unwrap();
    assert!(
        reason.contains("frontend of release 4 did not take over; revision 3 keeps serving")
            && reason.contains("exited before it was ready"),
        "{reason}"
    );
    let releases = history(&state);
    assert_eq!(releases["current"], 3, "{releases:#}");
    assert_eq!(releases["releases"][3]["status"], "failed", "{releases:#}");
    assert_eq!(
        backend_log_level(&state).as_deref(),
        Some("debug"),
        "the backend was handed back to revision 3's configuration"
    );
    let after = status(&state);
    assert_eq!(component(&after, "frontend")["process"], frontend_before);
    for service in ["ml", "backend", "frontend"] {
        assert_eq!(component(&after, service)["state"], "ready", "{service}");
    }
}

fn validate(state: &Path, extra: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec!["validate", "--output", "json"];
    args.extend_from_slice(extra);
    let output = shopctl_in(state, &args, None);
    let report = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (output.status.code(), report)
}

fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no {id}: {report:#}"))
}

#[test]
fn validate_passes_when_healthy_fails_when_the_backend_hangs_and_recovers_with_the_supervisor() {
    let scratch = Scratch::new();
    let state = scratch.path("state");
    refused(&state, &["validate"], "`shopctl up` starts it");

    let _running = up(&state);
    let (code, report) = validate(&state, &[]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["failed"], 0);
    for id in [
        "app.frontend-ready",
        "app.backend-ready",
        "app.ml-ready",
        "app.products",
        "app.storefront",
        "storage.database",
        "workloads.components-ready",
    ] {
        assert_eq!(check(&report, id)["status"], "pass", "{id}: {report:#}");
    }
    let cluster = check(&report, "access.cluster");
    assert_eq!(cluster["status"], "skipped");
    assert_eq!(cluster["detail"], "the local target has no Kubernetes API");

    // The table fits 100 columns, leaves the skipped cluster checks out but counts them.
    let table = |extra: &[&str]| {
        let args = [&["validate"], extra].concat();
        let output = Shopctl::new(&args)
            .state(&state)
            .env("COLUMNS", "100")
            .output();
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        text(&output.stdout)
    };
    let folded = table(&[]);
    assert!(folded.lines().all(|l| l.chars().count() <= 100), "{folded}");
    assert!(!folded.contains("access.cluster"), "{folded}");
    let skipped = report["skipped"].as_u64().unwrap();
    assert!(
        folded.contains(&format!("{skipped} checks skipped")),
        "{folded}"
    );
    assert!(table(&["--show-skipped"]).contains("access.cluster"));

    // A backend that answers nothing (stopped, not dead: its socket, which the supervisor
    // holds, still takes connections into its queue).
    let backend: ProcessId =
        serde_json::from_value(component(&status(&state), "backend")["process"].clone()).unwrap();
    let signal = |name: &str| {
        Command::new("kill")
            .args([name, &backend.pid.to_string()])
            .status()
            .unwrap()
    };
    signal("-STOP");
    let (code, report) = validate(&state, &["--only", "app,workloads"]);
    assert_eq!(code, Some(1), "{report:#}");
    let broken = check(&report, "app.backend-ready");
    assert_eq!(broken["status"], "fail");
    assert!(
        broken["hint"].as_str().unwrap().contains("hanging"),
        "{broken:#}"
    );
    assert_eq!(
        check(&report, "app.ml-ready")["status"],
        "pass",
        "only what depends on the backend fails"
    );
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| ["app", "workloads"].contains(&c["category"].as_str().unwrap()))
    );

    // Killed, the supervisor restarts it; validate recovers (a restart is a warning, not a
    // failure).
    signal("-KILL");
    let report = eventually(
        "validate to recover",
        Duration::from_secs(60),
        || match validate(&state, &[]) {
            (Some(0), report) => Ok(report),
            (_, report) => Err(report),
        },
    );
    assert_eq!(check(&report, "workloads.no-crash-loop")["status"], "warn");
}

#[test]
fn a_hanging_dependency_fails_its_own_checks_within_the_deadline() {
    let scratch = Scratch::new();
    let state = scratch.path("state");
    let _running = up(&state);
    let report = status(&state);
    let Ok(prometheus) =
        serde_json::from_value::<ProcessId>(component(&report, "prometheus")["process"].clone())
    else {
        panic!("this test needs Prometheus (the README's test command installs it): {report:#}");
    };
    Command::new("kill")
        .args(["-STOP", &prometheus.pid.to_string()])
        .status()
        .unwrap();

    let started = Instant::now();
    let (code, report) = validate(&state, &["--check-timeout", "1s"]);
    let elapsed = started.elapsed();
    Command::new("kill")
        .args(["-CONT", &prometheus.pid.to_string()])
        .status()
        .unwrap();

    assert_eq!(code, Some(1), "{report:#}");
    for id in ["obs.prometheus", "obs.targets", "obs.alerts"] {
        let hung = check(&report, id);
        assert_eq!(hung["status"], "fail", "{id}");
        assert_eq!(hung["detail"], "timed out after 1.0s", "{id}");
    }
    assert_eq!(
        check(&report, "app.backend-ready")["status"],
        "pass",
        "the rest is unaffected"
    );
    assert!(
        elapsed < Duration::from_secs(10),
        "checks ran concurrently within their deadline: {elapsed:?}"
    );
}

#[test]
fn validate_rejects_unknown_check_names_and_a_cluster_it_cannot_reach() {
    let scratch = Scratch::new();
    let state = scratch.path("state");
    refused(
        &state,
        &["validate", "--only", "app,appz"],
        "unknown check or category: appz",
    );
    let nowhere = scratch.path("no-kubeconfig");
    refused(
        &state,
        &[
            "validate",
            "--env",
            "prod",
            "--kubeconfig",
            nowhere.to_str().unwrap(),
        ],
        "reading the kubeconfig",
    );
}

#[test]
fn backups_of_the_local_platform_are_taken_verified_and_reported_by_validate() {
    let scratch = Scratch::new();
    let state = scratch.path("state");
    let _running = up(&state);
    assert_eq!(
        check(
            &validate(&state, &["--only", "storage.backups"]).1,
            "storage.backups"
        )["status"],
        "warn"
    );

    let taken = shopctl_in(&state, &["backup"], None);
    assert!(taken.status.success(), "{}", text(&taken.stderr));
    let id = text(&taken.stdout).trim().to_owned();
    // The data is the owner's alone: the backups directory, each backup and its dump.
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let backups = state.join("backups");
    assert_eq!(mode(&backups), 0o700);
    assert_eq!(mode(&backups.join(&id)), 0o700);
    assert_eq!(mode(&backups.join(&id).join("dump.pgc")), 0o600);
    assert_eq!(mode(&backups.join(&id).join("manifest.json")), 0o600);
    let listed = shopctl_in(&state, &["backup", "list"], None);
    assert!(
        text(&listed.stdout).contains(&id) && text(&listed.stdout).contains("not verified"),
        "{}",
        text(&listed.stdout)
    );
    // The same list for CI, checked against `shopctl schema backups` by the harness.
    let listed = shopctl_in(&state, &["backup", "list", "--output", "json"], None);
    let manifests: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(manifests[0]["id"], id.as_str(), "{manifests:#}");
    assert!(manifests[0].get("verification").is_none(), "{manifests:#}");

    let verified = shopctl_in(&state, &["backup", "verify"], None);
    assert!(verified.status.success(), "{}", text(&verified.stderr));
    assert!(
        text(&verified.stderr).contains("rows match the manifest"),
        "{}",
        text(&verified.stderr)
    );
    let (_, report) = validate(&state, &["--only", "storage.backups"]);
    let backups = check(&report, "storage.backups");
    assert_eq!(backups["status"], "pass", "{report:#}");
    assert!(backups["detail"].as_str().unwrap().contains(&id));

    // The result reaches Prometheus through the Pushgateway: "last verified restore" is a metric.
    assert!(
        text(&verified.stderr).contains("pushed the result to the Pushgateway"),
        "{}",
        text(&verified.stderr)
    );
    let platform = status(&state);
    let prometheus = component(&platform, "prometheus")["url"].as_str().unwrap();
    let pushgateway = component(&platform, "pushgateway")["url"].as_str().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let query =
        "shopmicro_backup_last_verified_restore_timestamp_seconds{job=\"shopmicro_backup_verify\"}";
    let sample = eventually(
        "Prometheus to scrape the result",
        Duration::from_secs(60),
        || {
            let series = runtime.block_on(promql(prometheus, query));
            series.first().cloned().ok_or("no series")
        },
    );
    assert_eq!(sample["metric"]["backup"], id.as_str(), "{sample}");
    let last_verified = sample["value"][1].as_str().unwrap().parse::<f64>().unwrap();
    let now = chrono::Utc::now().timestamp() as f64;
    assert!(
        (now - 300.0..=now).contains(&last_verified),
        "{last_verified} vs {now}"
    );

    // A verification that fails says so, and the last good restore's time survives it.
    let dump = state.join("backups").join(&id).join("dump.pgc");
    let mut bytes = std::fs::read(&dump).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&dump, bytes).unwrap();
    let failed = shopctl_in(&state, &["backup", "verify"], None);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed.stderr));
    let pushed = runtime.block_on(async {
        reqwest::get(format!("{pushgateway}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    let sample = |name: &str| {
        pushed
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    assert_eq!(
        sample("shopmicro_backup_verification_success"),
        Some(0.0),
        "{pushed}"
    );
    assert_eq!(
        sample("shopmicro_backup_last_verified_restore_timestamp_seconds"),
        Some(last_verified),
        "{pushed}"
    );
}

/// The samples of an instant query.
async fn promql(prometheus: &str, query: &str) -> Vec<Value> {
    let body: Value = reqwest::Client::new()
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", query)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn place_order(backend: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{backend}/orders"))
        .json(&serde_json::json!({"items": [{"product_id": 2, "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    response.json::<Value>().await.unwrap()["reference"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_stops_the_writers_brings_back_the_backup_and_resumes() {
    let scratch = Scratch::new();
    let state = scratch.path("state");
    let _running = up(&state);
    let report = status(&state);
    let backend = component(&report, "backend")["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let database = component(&report, "postgres")["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = place_order(&backend).await;
    let id = text(&shopctl_in(&state, &["backup"], None).stdout)
        .trim()
        .to_owned();
    let after = place_order(&backend).await;

    // A tampered copy is refused before anything is stopped.
    let backups = state.join("backups");
    let tampered = backups.join("tampered");
    std::fs::create_dir_all(&tampered).unwrap();
    let mut manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(backups.join(&id).join("manifest.json")).unwrap(),
    )
    .unwrap();
    manifest["id"] = "tampered".into();
    std::fs::write(tampered.join("manifest.json"), manifest.to_string()).unwrap();
    std::fs::write(tampered.join("dump.pgc"), b"not the dump").unwrap();
    refused(
        &state,
        &["restore", "--backup", "tampered", "--yes"],
        "checksum does not match",
    );
    assert_eq!(
        component(&status(&state), "backend")["state"],
        "ready",
        "nothing was stopped"
    );

    let restored = shopctl_in(&state, &["restore", "--backup", &id, "--yes"], None);
    assert!(restored.status.success(), "{}", text(&restored.stderr));
    assert!(
        text(&restored.stderr).contains("stopping the writers"),
        "{}",
        text(&restored.stderr)
    );
    assert!(
        order_exists(&database, &before).await,
        "data from before the backup is there"
    );
    assert!(
        !order_exists(&database, &after).await,
        "data written after the backup is gone"
    );
    let report = status(&state);
    for name in ["frontend", "backend", "ml"] {
        assert_eq!(
            component(&report, name)["state"],
            "ready",
            "{name} resumed: {report:#}"
        );
    }
    let backend = component(&report, "backend")["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let placed = place_order(&backend).await;
    assert!(
        order_exists(&database, &placed).await,
        "the restored platform takes orders"
    );
}

#[test]
fn the_backend_outage_runbook_detects_recovers_and_verifies() {
    let scratch = Scratch::new();
    let state = scratch.path("state");
    let _running = up(&state);
    // An outage the supervisor will not heal by itself: the backend is held down.
    std::fs::write(state.join("control.json"), r#"{"paused":["backend"]}"#).unwrap();
    eventually(
        "the backend to go down",
        Duration::from_secs(30),
        || match component(&status(&state), "backend")["state"].clone() {
            state if state == "paused" => Ok(()),
            state => Err(state),
        },
    );

    let run = shopctl_in(&state, &["runbook", "run", "backend-outage", "--yes"], None);

    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("[1/8] Is the backend ready? (check)\n  ✗"),
        "detected: {stderr}"
    );
    assert!(
        stderr.contains("`shopctl restart backend` succeeded"),
        "{stderr}"
    );
    assert!(stderr.contains("✓ app.backend-ready"), "verified: {stderr}");
    assert_eq!(component(&status(&state), "backend")["state"], "ready");
    let transcript = std::fs::read_dir(state.join("transcripts"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let transcript = std::fs::read_to_string(transcript).unwrap();
    assert!(
        transcript.contains("step 4 `restart`: ok") && transcript.ends_with("finished\n"),
        "{transcript}"
    );
}

fn fixture_runbooks() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/runbooks")
        .display()
        .to_string()
}

#[test]
fn a_failing_check_stops_the_run_at_that_step_and_manual_steps_need_a_person() {
    let scratch = Scratch::new();
    let state = scratch.path("state");
    let _running = up(&state);
    let backend_before = component(&status(&state), "backend")["process"].clone();

    let stopped = shopctl_in(
        &state,
        &[
            "runbook",
            "--runbooks",
            &fixture_runbooks(),
            "run",
            "stops",
            "--yes",
        ],
        None,
    );
    let stderr = text(&stopped.stderr);
    assert_eq!(stopped.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("stopped at step 2 (impossible)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("must never run"),
        "the run stopped before step 3: {stderr}"
    );
    assert_eq!(
        component(&status(&state), "backend")["process"],
        backend_before,
        "nothing was restarted"
    );

    let manual = shopctl_in(
        &state,
        &[
            "runbook",
            "--runbooks",
            &fixture_runbooks(),
            "run",
            "manual",
        ],
        None,
    );
    assert_eq!(manual.status.code(), Some(1));
    assert!(
        text(&manual.stderr).contains("a manual step needs a person"),
        "{}",
        text(&manual.stderr)
    );

    let dry = shopctl_in(
        &state,
        &[
            "runbook",
            "run",
            "bad-release",
            "--dry-run",
            "--from-step",
            "3",
        ],
        None,
    );
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(
        text(&dry.stderr).contains("would run `shopctl rollback` (dry run)"),
        "{}",
        text(&dry.stderr)
    );
    assert_eq!(
        shopctl_in(&state, &["history", "--output", "json"], None)
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        history(&state)["releases"].as_array().unwrap().len(),
        1,
        "the dry run rolled nothing back"
    );

    refused(
        &state,
        &["runbook", "run", "no-such-runbook"],
        "runbooks: backend-outage, bad-release, database-restore, high-latency",
    );
}

#[test]
fn a_crashed_supervisor_is_cleaned_up_by_the_next_command_and_never_an_unrelated_process() {
    let scratch = Scratch::new();
    let state = scratch.path("state");
    let _running = up(&state);
    let report = status(&state);
    let supervisor = ProcessId::of(report["supervisor_pid"].as_u64().unwrap() as u32).unwrap();
    let orphans = pids(&report);

    // The supervisor dies without cleaning up: its children are orphaned.
    Command::new("kill")
        .args(["-KILL", &supervisor.pid.to_string()])
        .status()
        .unwrap();
    eventually(
        "the supervisor to die",
        Duration::from_secs(10),
        || match supervisor.is_alive() {
            true => Err("alive"),
            false => Ok(()),
        },
    );
    assert!(
        orphans.iter().any(|p| p.is_alive()),
        "the services outlived their supervisor"
    );

    // A record that points at an unrelated process (a recycled pid) must not be acted on.
    let mut bystander = Command::new("sleep").arg("300").spawn().unwrap();
    let bystander_id = ProcessId::of(bystander.id()).unwrap();
    let mut recorded: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("state.json")).unwrap()).unwrap();
    recorded["components"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "name": "recycled", "origin": "managed", "state": "ready", "restarts": 0,
            "process": {"pid": bystander_id.pid, "start_time": bystander_id.start_time + 1}
        }));
    std::fs::write(state.join("state.json"), recorded.to_string()).unwrap();

    let next = shopctl_in(&state, &["status"], None);
    assert!(
        text(&next.stderr).contains("cleaned up"),
        "{}",
        text(&next.stderr)
    );
    assert!(
        orphans.iter().all(|p| !p.is_alive()),
        "the orphans were stopped"
    );
    assert!(
        bystander_id.is_alive(),
        "a process that only shares a pid is never signalled"
    );
    let _ = bystander.kill();
    let _ = bystander.wait();
    assert_eq!(status(&state)["running"], false);
}

#[test]
fn foreground_stops_everything_on_ctrl_c_and_purge_deletes_the_data() {
    use std::io::BufRead;
    let scratch = Scratch::new();
    let state = scratch.path("state");
    let mut child = Shopctl::new(&["up", "--foreground"])
        .state(&state)
        .command()
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines().map_while(Result::ok);
    assert!(
        lines.any(|line| line.starts_with("storefront: http://")),
        "the platform came up in the foreground"
    );
    std::thread::spawn(move || lines.for_each(drop));
    assert_eq!(
        history(&state)["releases"][0]["status"],
        "ready",
        "the foreground start is recorded as a detached one is"
    );
    let started = pids(&status(&state));

    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(
        started.iter().all(|p| !p.is_alive()),
        "Ctrl-C stopped everything"
    );
    assert!(
        state.join("postgres").join("PG_VERSION").exists(),
        "data is kept"
    );

    let purge_without_yes = Shopctl::new(&["down", "--purge"])
        .state(&state)
        .command()
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        purge_without_yes.status.code(),
        Some(2),
        "no silent data deletion"
    );
    assert!(state.exists());
    let purged = shopctl_in(
        &state,
        &["down", "--purge", "--yes", "--output", "json"],
        None,
    );
    assert!(purged.status.success(), "{}", text(&purged.stderr));
    assert!(!state.exists(), "--purge deleted the state directory");
    let report: Value = serde_json::from_slice(&purged.stdout).unwrap();
    assert_eq!(
        report["stopped"], false,
        "Ctrl-C had stopped it: {report:#}"
    );
    assert_eq!(report["purged"], json!(state.display().to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_external_database_and_no_redis_or_prometheus_still_make_a_platform() {
    let database = shopmicro_common::testing::TestDatabase::create().await;
    let scratch = Scratch::new();
    let state = scratch.path("state");
    // Only `kill` on PATH: no redis-server, no prometheus, no PostgreSQL binaries needed.
    let bin = scratch.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let kill = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join("kill"))
        .find(|p| p.is_file())
        .unwrap();
    std::os::unix::fs::symlink(kill, bin.join("kill")).unwrap();

    let output = Shopctl::new(&["up"])
        .state(&state)
        .env("PATH", &bin)
        .env("DATABASE_URL", database.url())
        .output();
    let _running = Running { state: &state };
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("redis: no redis-server on PATH: running without a cache"),
        "{stderr}"
    );
    assert!(
        stderr.contains("prometheus: no prometheus binary on PATH"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(database.url()),
        "the database URL is never printed"
    );

    let report = status(&state);
    assert_eq!(component(&report, "postgres")["origin"], "external");
    assert_eq!(component(&report, "redis")["state"], "disabled");
    let backend = component(&report, "backend")["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let ready: Value = reqwest::get(format!("{backend}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["redis"], "disabled");
    assert_eq!(ready["postgres"], "ok");
    assert!(
        !std::fs::read_to_string(state.join("state.json"))
            .unwrap()
            .contains(database.url()),
        "nor stored in the state"
    );
}

/// What a shopper sees of the cart behind `cookie`, through the storefront at `storefront`
/// (None: the storefront did not answer).
async fn cart_page(storefront: &str, cookie: &str) -> Option<String> {
    let page = reqwest::Client::new()
        .get(format!("{storefront}/cart"))
        .header("cookie", cookie)
        .send()
        .await
        .ok()?;
    assert_eq!(page.status().as_u16(), 200);
    page.text().await.ok()
}

/// An environment keeps its addresses and its cart-signing key: the storefront URL `up`
/// printed keeps answering, and a shopper's cart keeps its items, after a restart of the
/// frontend, a new release (a configuration change) and a rollback.
#[tokio::test(flavor = "multi_thread")]
async fn the_storefront_address_and_a_cart_survive_restarts_releases_and_rollbacks() {
    let scratch = Scratch::new();
    let state = scratch.path("state");
    let _running = up(&state);
    let storefront = component(&status(&state), "frontend")["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let ports = |status: &Value| -> Vec<(String, Value)> {
        status["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].as_str().unwrap().to_owned(), c["port"].clone()))
            .collect()
    };
    let first_ports = ports(&status(&state));

    let cookie = add_to_cart(&browser(), &storefront, "2", "3").await;
    let holds_the_item =
        |page: &str| !page.contains("Your cart is empty") && page.contains("value=\"3\"");
    assert!(holds_the_item(
        &cart_page(&storefront, &cookie).await.unwrap()
    ));

    for (what, args) in [
        ("restart frontend", vec!["restart", "frontend"]),
        (
            "a new release",
            vec!["up", "--set", "observability.log_level=warn"],
        ),
        ("rollback", vec!["rollback"]),
    ] {
        let run = shopctl_in(&state, &args, None);
        assert!(run.status.success(), "{what}: {}", text(&run.stderr));
        let page = cart_page(&storefront, &cookie)
            .await
            .unwrap_or_else(|| panic!("after {what} the storefront's address still answers"));
        assert!(
            holds_the_item(&page),
            "after {what} the cart keeps its items"
        );
        assert_eq!(
            ports(&status(&state)),
            first_ports,
            "after {what} every component listens where it did"
        );
    }

    // Stopped and started again, the environment comes back where it was.
    let down = shopctl_in(&state, &["down"], None);
    assert!(down.status.success(), "{}", text(&down.stderr));
    assert!(cart_page(&storefront, &cookie).await.is_none(), "stopped");
    let _again = up(&state);
    let page = cart_page(&storefront, &cookie).await.unwrap();
    assert!(
        holds_the_item(&page),
        "after down and up the cart keeps its items"
    );
    assert_eq!(ports(&status(&state)), first_ports);
}

/// `shopctl load` on the local platform: sent on schedule, every request answered, within
/// the SLOs. Then the backend is stopped for a second mid-run (SIGSTOP): the requests meant
/// to leave during the stall count their wait from when they were due, so the stall shows
/// in the tail (an open model, no coordinated omission) and the verdict fails.
#[test]
fn load_is_judged_against_the_slos_and_a_stall_shows_in_its_tail() {
    let scratch = Scratch::new();
    let state = scratch.path("state");
    let _running = up(&state);
    let args = [
        "load",
        "--scenario",
        "api",
        "--rate",
        "100",
        "--duration",
        "3s",
        "--warmup",
        "1s",
        "--output",
        "json",
    ];
    let healthy = shopctl_in(&state, &args, None);
    assert_eq!(healthy.status.code(), Some(0), "{}", text(&healthy.stderr));
    let report: Value = serde_json::from_slice(&healthy.stdout).unwrap();
    assert_eq!(report["requests"], 300, "100/s for 3 s: {report:#}");
    let routes = report["routes"].as_array().unwrap();
    let answered: u64 = routes.iter().map(|r| r["requests"].as_u64().unwrap()).sum();
    assert_eq!(answered, 300);
    assert!(
        routes.iter().all(|r| r["errors"] == json!({})),
        "{report:#}"
    );
    assert_eq!(report["verdict"]["passed"], true, "{report:#}");

    let backend: ProcessId =
        serde_json::from_value(component(&status(&state), "backend")["process"].clone()).unwrap();
    let run = spawn_shopctl(&state, &args);
    // The stall is the experiment: a second without a backend, a second into the
    // measured window.
    std::thread::sleep(Duration::from_secs(2));
    let signal = |name: &str| {
        Command::new("kill")
            .args([name, &backend.pid.to_string()])
            .status()
            .unwrap()
    };
    assert!(signal("-STOP").success());
    std::thread::sleep(Duration::from_secs(1));
    assert!(signal("-CONT").success());
    let stalled = run.wait_with_output().unwrap();
    assert_eq!(stalled.status.code(), Some(1), "{}", text(&stalled.stderr));
    let report: Value = serde_json::from_slice(&stalled.stdout).unwrap();
    support::reports::check(&args, &text(&stalled.stdout));
    let listing = report["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "GET /products")
        .unwrap();
    assert!(
        listing["p99_ms"].as_f64().unwrap() >= 700.0,
        "the stall is in the tail: {report:#}"
    );
    assert_eq!(report["verdict"]["passed"], false);
    assert!(
        report["verdict"]["violations"][0]
            .as_str()
            .unwrap()
            .contains("p95"),
        "{report:#}"
    );
}

/// Where each service's log ends now.
fn log_ends(state: &Path) -> BTreeMap<&'static str, u64> {
    ["ml", "backend", "frontend"]
        .into_iter()
        .map(|name| {
            let log = state.join("logs").join(format!("{name}.log"));
            (name, std::fs::metadata(log).map_or(0, |m| m.len()))
        })
        .collect()
}

/// The JSON lines `service` logged since `ends` whose message is `message`, probes left out.
fn logged_since(
    state: &Path,
    ends: &BTreeMap<&str, u64>,
    service: &str,
    message: &str,
) -> Vec<Value> {
    let log = std::fs::read(state.join("logs").join(format!("{service}.log"))).unwrap();
    String::from_utf8_lossy(&log[ends[service] as usize..])
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["message"] == message)
        .filter(|line| !matches!(line["http.route"].as_str(), Some("/healthz" | "/readyz")))
        .collect()
}

/// Every operation that replaces a service runs while `shopctl load` browses the
/// storefront (catalogue, product pages with recommendations, carts: every service is on
/// the path): `restart` of the backend, the frontend and ml, `up` with a changed
/// configuration and `rollback` (each of which hands all three over to another release).
/// Not one request fails, counted by the load generator and again by the storefront's own
/// log of what it answered; the backend's log shows no recommendation fell back while ml
/// was replaced (the backend hides an ml failure behind its fallback, a 200).
#[test]
fn every_restart_release_and_rollback_under_load_fails_no_request() {
    let scratch = Scratch::new();
    let state = scratch.path("state");
    let _running = up(&state);
    let ends = log_ends(&state);
    let args = [
        "load",
        "--scenario",
        "browse",
        "--rate",
        "60",
        "--duration",
        "60s",
        "--warmup",
        "0s",
        "--output",
        "json",
    ];
    let began = Instant::now();
    let load = spawn_shopctl(&state, &args);
    // The load under way before the first operation.
    std::thread::sleep(Duration::from_secs(2));
    let operations: [(&str, &[&str]); 5] = [
        ("restart backend", &["restart", "backend"]),
        ("restart frontend", &["restart", "frontend"]),
        ("restart ml", &["restart", "ml"]),
        (
            "a new release",
            &["up", "--set", "rollout.drain_seconds=25"],
        ),
        ("rollback", &["rollback"]),
    ];
    for (what, operation) in operations {
        let before = status(&state);
        let run = shopctl_in(&state, operation, None);
        assert!(run.status.success(), "{what}: {}", text(&run.stderr));
        let after = status(&state);
        let replaced: &[&str] = match what {
            "restart backend" => &["backend"],
            "restart frontend" => &["frontend"],
            "restart ml" => &["ml"],
            _ => &["ml", "backend", "frontend"],
        };
        for service in ["ml", "backend", "frontend"] {
            let (old, new) = (component(&before, service), component(&after, service));
            assert_eq!(
                old["process"] != new["process"],
                replaced.contains(&service),
                "{what}: {service} replaced only when it should be"
            );
            assert_eq!(old["port"], new["port"], "{what}: {service} on its port");
            assert_eq!(new["state"], "ready", "{what}: {service}");
        }
    }
    assert!(
        began.elapsed() < Duration::from_secs(60),
        "every operation happened while the load ran ({:?})",
        began.elapsed()
    );
    let finished = load.wait_with_output().unwrap();

    let report: Value = serde_json::from_slice(&finished.stdout)
        .unwrap_or_else(|_| panic!("{}", text(&finished.stderr)));
    assert_eq!(report["requests"], 3600, "60/s for 60 s: {report:#}");
    for route in report["routes"].as_array().unwrap() {
        assert_eq!(route["errors"], json!({}), "no request failed: {report:#}");
    }
    assert_eq!(
        finished.status.code(),
        Some(0),
        "{}",
        text(&finished.stderr)
    );
    let answered = logged_since(&state, &ends, "frontend", "request completed");
    let failed: Vec<&Value> = answered
        .iter()
        .filter(|line| line["status"].as_u64().is_none_or(|status| status >= 500))
        .collect();
    assert_eq!(
        (answered.len(), failed.len()),
        (3600, 0),
        "the storefront's own count: every request answered, none failed: {failed:?}"
    );
    let fallbacks = logged_since(
        &state,
        &ends,
        "backend",
        "ml recommendations failed; falling back",
    );
    assert!(
        fallbacks.is_empty(),
        "no recommendation fell back while ml was replaced: {fallbacks:?}"
    );
    let releases = history(&state);
    assert_eq!(releases["current"], 3, "{releases:#}");
}
