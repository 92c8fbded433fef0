//! Blue/green releases on the simulated API server: the preview Service answers with a
//! real backend process (or a stand-in that fails its listing), so validate's app checks
//! go through the API server's service proxy as they would on a cluster. A healthy preview is
//! switched to and switched back from instantly; the next apply finalizes a switched
//! release; a failing preview is aborted with the stable release untouched.

use serde_json::Value;
use shopmicro_common::testing::TestDatabase;

use crate::harness::*;
use crate::support::live::{Process, spawn_service};

const BLUE_GREEN: &[&str] = &[
    "apply",
    "--env",
    "dev",
    "--strategy",
    "blue-green",
    "--timeout",
    "30s",
];

/// A real backend on its own database, answering for the cluster's `backend-preview`.
async fn serve_a_healthy_preview(cluster: &TestCluster) -> (Process, TestDatabase) {
    let database = TestDatabase::create().await;
    let backend = spawn_service("backend", &[("DATABASE_URL", database.url().to_owned())]);
    cluster
        .sim
        .serve(NS, "backend-preview", "backend", &backend.url(""));
    (backend, database)
}

/// A preview that is ready but cannot list products.
async fn serve_a_failing_preview(cluster: &TestCluster) {
    let app = axum::Router::new()
        .route("/readyz", axum::routing::get(|| async { "ready" }))
        .route(
            "/products",
            axum::routing::get(|| async {
                (
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "relation \"products\" does not exist",
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    cluster.sim.serve(NS, "backend-preview", "backend", &url);
}

fn blue_green(cluster: &TestCluster, tag: &str, code: i32) -> Value {
    let set = format!("services.backend.tag={tag}");
    let mut args = BLUE_GREEN.to_vec();
    args.extend(["--set", &set]);
    tokio::task::block_in_place(|| cluster.json(&args, code))
}

/// No preview is left, and the backend Service selects every backend pod again.
fn back_to_one_backend_service(cluster: &TestCluster) {
    assert!(
        selector(cluster, "backend")
            .get("shopmicro.io/track")
            .is_none()
    );
    assert!(
        cluster
            .get("apps", "Deployment", "backend-preview")
            .is_none()
    );
    assert!(cluster.get("", "Service", "backend-preview").is_none());
}

fn selector(cluster: &TestCluster, service: &str) -> Value {
    cluster.get("", "Service", service).unwrap()["spec"]["selector"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checked_preview_is_switched_to_and_rollback_switches_back_instantly() {
    let cluster = TestCluster::start();
    tokio::task::block_in_place(|| cluster.apply(&[]));
    let _preview = serve_a_healthy_preview(&cluster).await;

    let report = blue_green(&cluster, "0.2.0", 0);
    let record = &report["blue_green"];
    assert_eq!(record["phase"], "switched", "{report:#}");
    assert_eq!(record["services"], serde_json::json!(["backend"]));
    // Validate's app checks ran against the preview: the backend's pass, the services the
    // release does not preview are skipped (their live pods answer for them).
    let checks: std::collections::BTreeMap<String, String> = record["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for passed in ["app.backend-ready", "app.products", "storage.database"] {
        assert_eq!(checks[passed], "pass", "{checks:?}");
    }
    for skipped in ["app.frontend-ready", "app.ml-ready", "app.storefront"] {
        assert_eq!(checks[skipped], "skipped", "{checks:?}");
    }
    assert!(record["retain_until"].is_string());

    // The Service points at the preview pods, which run the release at full size; the
    // old pods still run, untouched.
    assert_eq!(
        selector(&cluster, "backend")["shopmicro.io/track"],
        "preview"
    );
    assert!(cluster.image("backend-preview").ends_with(":0.2.0"));
    assert!(cluster.image("backend").ends_with(":0.1.0"));
    let preview = cluster
        .get("apps", "Deployment", "backend-preview")
        .unwrap();
    assert_eq!(preview["spec"]["replicas"], 2);
    let status = tokio::task::block_in_place(|| cluster.json(&["status", "--env", "dev"], 0));
    assert_eq!(status["release"]["revision"], 2);
    assert_eq!(status["release"]["blue_green"]["phase"], "switched");
    let table = tokio::task::block_in_place(|| cluster.shopctl(&["status", "--env", "dev"]));
    assert!(
        table.stdout.contains("release 1 stays warm until"),
        "{}",
        table.stdout
    );

    // Rollback inside the window: the Service points at the old pods again, nothing rolls
    // out, nothing new is recorded; release 2 is no longer the current one.
    let back = tokio::task::block_in_place(|| cluster.json(&["rollback", "--env", "dev"], 0));
    assert_eq!(
        back["switched_back"],
        serde_json::json!({"from": 2, "to": 1}),
        "{back:#}"
    );
    assert_eq!(back["rollout"], serde_json::json!([]));
    assert_eq!(
        selector(&cluster, "backend")["shopmicro.io/track"],
        "stable"
    );
    assert!(
        cluster
            .get("apps", "Deployment", "backend-preview")
            .is_none()
    );
    assert!(cluster.get("", "Service", "backend-preview").is_none());
    assert!(cluster.image("backend").ends_with(":0.1.0"));
    let history = tokio::task::block_in_place(|| cluster.json(&["history", "--env", "dev"], 0));
    assert_eq!(history["releases"].as_array().unwrap().len(), 2);
    assert_eq!(history["current"], 1);
    let switched = tokio::task::block_in_place(|| cluster.release(2)).unwrap();
    assert_eq!(switched["status"], "failed");
    assert_eq!(switched["blue_green"]["phase"], "switched-back");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_next_apply_finalizes_a_switched_release_and_a_failing_preview_is_aborted() {
    let cluster = TestCluster::start();
    tokio::task::block_in_place(|| cluster.apply(&[]));
    let preview = serve_a_healthy_preview(&cluster).await;
    blue_green(&cluster, "0.2.0", 0);

    // The same release applied again: release 2 is finalized first — the stable
    // Deployment moves to it, the Service selects every backend pod, the previews go — and
    // nothing else changes.
    let applied =
        tokio::task::block_in_place(|| cluster.apply(&["--set", "services.backend.tag=0.2.0"]));
    assert_eq!(applied["finalized"], 2, "{applied:#}");
    assert!(
        applied.get("revision").is_none_or(Value::is_null),
        "{applied:#}"
    );
    assert!(cluster.image("backend").ends_with(":0.2.0"));
    back_to_one_backend_service(&cluster);
    let finalized = tokio::task::block_in_place(|| cluster.release(2)).unwrap();
    assert_eq!(finalized["status"], "ready");
    assert_eq!(finalized["blue_green"]["phase"], "finalized");
    drop(preview);

    // A preview that cannot list products never gets the traffic.
    serve_a_failing_preview(&cluster).await;
    let report = blue_green(&cluster, "0.3.0", 1);
    let record = &report["blue_green"];
    assert_eq!(record["phase"], "aborted", "{report:#}");
    let reason = record["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the preview failed validate's app checks: ")
            && reason.contains("app.products: GET /products answered 500 without products"),
        "{reason}"
    );
    back_to_one_backend_service(&cluster);
    assert!(cluster.image("backend").ends_with(":0.2.0"));
    let history = tokio::task::block_in_place(|| cluster.json(&["history", "--env", "dev"], 0));
    assert_eq!(history["current"], 2);
    let table = tokio::task::block_in_place(|| cluster.shopctl(&["history", "--env", "dev"]));
    assert!(
        table.stdout.contains("blue-green, aborted"),
        "{}",
        table.stdout
    );
}

#[test]
fn an_interrupted_blue_green_release_is_aborted_by_the_next_rollback_before_it_rolls_back() {
    let cluster = TestCluster::start();
    cluster.apply(&[]);
    cluster.apply(&["--set", "services.backend.tag=0.2.0"]);
    // Previews that never become ready keep the run waiting until it is killed: a lost
    // runner, nothing cleaned up.
    let mut run = cluster.spawn(&[
        "apply",
        "--env",
        "dev",
        "--strategy",
        "blue-green",
        "--timeout",
        "120s",
        "--set",
        "services.backend.tag=0.3.0-never-ready",
    ]);
    cluster.wait_for_release(3, |r| r["status"] == "in-progress");
    eventually(
        "the preview to exist",
        std::time::Duration::from_secs(10),
        || {
            cluster
                .get("apps", "Deployment", "backend-preview")
                .ok_or("no backend-preview yet")
        },
    );
    run.kill().unwrap();
    run.wait().unwrap();

    let back = cluster.json(&["rollback", "--env", "dev"], 0);
    assert_eq!(back["resolved"]["revision"], 3, "{back:#}");
    assert!(
        back["resolved"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("interrupted before its switch")
    );
    // Then the rollback itself, from release 2 (the one that ran) to release 1.
    assert_eq!(back["revision"], 4, "{back:#}");
    assert!(cluster.image("backend").ends_with(":0.1.0"));
    assert!(
        cluster
            .get("apps", "Deployment", "backend-preview")
            .is_none()
    );
    assert!(cluster.get("", "Service", "backend-preview").is_none());
    let aborted = cluster.release(3).unwrap();
    assert_eq!(aborted["status"], "failed");
    assert_eq!(aborted["blue_green"]["phase"], "aborted");
}

/// Progressive releases as the deploy identity Terraform creates (its EKS access entry:
/// edit in the platform's and the monitoring namespaces) — and refused, before anything
/// changes, for a deployer who may not ask Prometheus.
#[tokio::test(flavor = "multi_thread")]
async fn the_deploy_identity_may_run_canaries_and_blue_green_releases_and_less_is_refused_first() {
    let cluster = TestCluster::start();
    tokio::task::block_in_place(|| cluster.apply(&[]));
    let _preview = serve_a_healthy_preview(&cluster).await;
    let identities = crate::identities::cluster_identities("dev");
    let deployer = cluster
        .sim
        .add_access_entry(identities.deployer.clone())
        .unwrap();
    cluster.switch_to(&deployer);

    // No Prometheus answers: the canary runs, waits for data and is aborted as
    // inconclusive — every step of it allowed.
    let canary = tokio::task::block_in_place(|| {
        cluster.json(
            &[
                "apply",
                "--env",
                "dev",
                "--strategy",
                "canary",
                "--interval",
                "1s",
                "--timeout",
                "3s",
                "--set",
                "services.backend.tag=0.2.0",
            ],
            1,
        )
    });
    let reason = canary["canary"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("inconclusive at step 1"), "{reason}");
    assert!(
        cluster
            .get("apps", "Deployment", "backend-canary")
            .is_none()
    );
    let switched = blue_green(&cluster, "0.2.0", 0);
    assert_eq!(switched["blue_green"]["phase"], "switched", "{switched:#}");
    let back = tokio::task::block_in_place(|| cluster.json(&["rollback", "--env", "dev"], 0));
    assert_eq!(back["switched_back"]["to"], 1, "{back:#}");

    // Edit in the platform's namespace only: the canary cannot ask Prometheus, and says so
    // before it records or starts anything.
    let narrow = cluster.user_in_namespaces("narrow-deployer", &[NS]);
    cluster.switch_to(&narrow);
    let refused = tokio::task::block_in_place(|| {
        cluster.shopctl(&[
            "apply",
            "--env",
            "dev",
            "--strategy",
            "canary",
            "--set",
            "services.backend.tag=0.4.0",
        ])
    });
    assert_eq!(refused.code, 2, "{}\n{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("narrow-deployer may not")
            && refused.stderr.contains("get services/proxy")
            && refused.stderr.contains(MONITORING),
        "{}",
        refused.stderr
    );
    assert!(
        cluster
            .get("apps", "Deployment", "backend-canary")
            .is_none()
    );
    let history = tokio::task::block_in_place(|| cluster.json(&["history", "--env", "dev"], 0));
    assert_eq!(
        history["releases"].as_array().unwrap().len(),
        3,
        "{history:#}"
    );
}

/// Past the retention window the old pods are no promise: `rollback` finalizes the switched
/// release first, then rolls back as it always does (a new revision, a rollout).
#[tokio::test(flavor = "multi_thread")]
async fn after_the_retention_window_rollback_finalizes_then_rolls_back() {
    let cluster = TestCluster::start();
    tokio::task::block_in_place(|| cluster.apply(&[]));
    let _preview = serve_a_healthy_preview(&cluster).await;
    let switched = tokio::task::block_in_place(|| {
        cluster.json(
            &[
                "apply",
                "--env",
                "dev",
                "--strategy",
                "blue-green",
                "--timeout",
                "30s",
                "--retention",
                "1s",
                "--set",
                "services.backend.tag=0.2.0",
            ],
            0,
        )
    });
    assert_eq!(switched["blue_green"]["phase"], "switched");
    // The window is one second long: let it pass.
    std::thread::sleep(std::time::Duration::from_millis(1500));

    let back = tokio::task::block_in_place(|| cluster.json(&["rollback", "--env", "dev"], 0));
    assert!(back.get("switched_back").is_none(), "{back:#}");
    assert_eq!(back["finalized"], 2, "{back:#}");
    assert_eq!(back["revision"], 3, "{back:#}");
    assert!(cluster.image("backend").ends_with(":0.1.0"));
    back_to_one_backend_service(&cluster);
    let finalized = tokio::task::block_in_place(|| cluster.release(2)).unwrap();
    assert_eq!(finalized["blue_green"]["phase"], "finalized");
}
