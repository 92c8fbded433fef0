//! Canary releases on the simulated API server, judged by a live Prometheus that scrapes
//! two real backend processes labelled `track: stable` and `track: canary` (the simulated
//! pods run nothing, so these processes stand for each track's pods): a healthy canary is
//! promoted through every step, one answering errors is aborted at the first step with
//! the values in its report, too little traffic is never a verdict, and an interrupted
//! canary is recognised by `status` and resolved by the next command.

use std::time::Duration;

use serde_json::Value;
use shopmicro_common::testing::{TestDatabase, eventually, eventually_async};
use tokio::task::block_in_place;

use crate::harness::*;
use crate::support::live::{Process, Prometheus, spawn_service};

/// The two tracks' backends, each on its own database, and Prometheus scraping both
/// every second, served as the cluster's `monitoring/prometheus`.
struct Tracks {
    stable: Process,
    canary: Process,
    canary_database: TestDatabase,
    _stable_database: TestDatabase,
    _prometheus: Prometheus,
    _scratch: Scratch,
}

impl Tracks {
    async fn start(cluster: &TestCluster) -> Self {
        let backend = |database: &TestDatabase| {
            spawn_service(
                "backend",
                &[
                    ("DATABASE_URL", database.url().to_owned()),
                    ("SHUTDOWN_DEADLINE_MS", "1000".to_owned()),
                ],
            )
        };
        let stable_database = TestDatabase::create().await;
        let canary_database = TestDatabase::create().await;
        let (stable, canary) = (backend(&stable_database), backend(&canary_database));
        let scratch = Scratch::new();
        let target = |process: &Process, track: &str| {
            format!(
                "      - targets: ['127.0.0.1:{}']\n        labels: {{service: backend, namespace: {NS}, track: {track}}}\n",
                process.admin_port
            )
        };
        let config = scratch.path("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: shopmicro\n    static_configs:\n{}{}",
                target(&stable, "stable"),
                target(&canary, "canary")
            ),
        )
        .unwrap();
        let prometheus = Prometheus::start(&config, &scratch.path("data"), &[]);
        let up = format!("{}/api/v1/query?query=up%3D%3D1", prometheus.url);
        eventually_async(
            "Prometheus to scrape both tracks",
            Duration::from_secs(60),
            || {
                let up = up.clone();
                async move {
                    let reply: Value = match reqwest::get(&up).await {
                        Ok(response) => response.json().await.unwrap_or_default(),
                        Err(_) => Value::Null,
                    };
                    let scraped = reply["data"]["result"].as_array().map_or(0, Vec::len);
                    if scraped == 2 { Ok(()) } else { Err(reply) }
                }
            },
        )
        .await;
        cluster
            .sim
            .serve(MONITORING, "prometheus", "http", &prometheus.url);
        Self {
            stable,
            canary,
            canary_database,
            _stable_database: stable_database,
            _prometheus: prometheus,
            _scratch: scratch,
        }
    }

    /// Shoppers browsing the catalogue through the stable backend and, when `canary`,
    /// the canary one too, until the handle is dropped.
    fn traffic(&self, canary: bool) -> AbortOnDrop {
        let mut targets = vec![self.stable.url("/products")];
        if canary {
            targets.push(self.canary.url("/products"));
        }
        AbortOnDrop(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for round in 0u32.. {
                for target in &targets {
                    let limit = 1 + round % 20;
                    let _ = http.get(format!("{target}?limit={limit}")).send().await;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }))
    }

    /// The canary build's reads fail: its catalogue table is gone, so listings answer 5xx.
    async fn break_canary(&self) {
        use sqlx::Connection;
        let mut connection = sqlx::PgConnection::connect(self.canary_database.url())
            .await
            .unwrap();
        sqlx::query("ALTER TABLE products RENAME TO products_gone")
            .execute(&mut connection)
            .await
            .unwrap();
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

const CANARY: &[&str] = &[
    "apply",
    "--env",
    "dev",
    "--strategy",
    "canary",
    "--min-requests",
    "20",
];

/// `apply --strategy canary` with `extra`, which must exit with `code`: (report, stderr).
fn canary(cluster: &TestCluster, extra: &[&str], code: i32) -> (Value, String) {
    let mut args = CANARY.to_vec();
    args.extend(["--interval", "2s"]);
    args.extend(extra);
    args.extend(["--output", "json"]);
    let run = block_in_place(|| cluster.shopctl(&args));
    assert_eq!(run.code, code, "{args:?}\n{}\n{}", run.stdout, run.stderr);
    let report =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    (report, run.stderr)
}

fn release(cluster: &TestCluster, revision: u64) -> Value {
    block_in_place(|| cluster.release(revision)).expect("the release is kept")
}

fn canaries_are_gone(cluster: &TestCluster) {
    assert!(
        cluster
            .get("apps", "Deployment", "backend-canary")
            .is_none()
    );
    eventually("the canary pods to go", Duration::from_secs(10), || {
        let pods = cluster.list("", "Pod", "shopmicro.io/track=canary");
        if pods.is_empty() {
            Ok(())
        } else {
            Err(pods.len())
        }
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_canary_is_promoted_through_every_step_with_its_measurements_recorded() {
    let cluster = TestCluster::start();
    block_in_place(|| cluster.apply(&[]));
    let tracks = Tracks::start(&cluster).await;
    let _traffic = tracks.traffic(true);

    let (report, progress) = canary(
        &cluster,
        &[
            "--steps",
            "50,100",
            "--timeout",
            "60s",
            "--set",
            "services.backend.tag=0.2.0",
        ],
        0,
    );
    assert_eq!(report["revision"], 2);
    assert_eq!(report["canary"]["outcome"], "promoted", "{report:#}");
    assert_eq!(report["canary"]["services"], serde_json::json!(["backend"]));
    assert_eq!(report["canary"]["stable_revision"], 1);
    // The ConfigMap's values are the same; only its version label moved, at promotion.
    assert!(
        report["canary"]["unjudged"]
            .as_array()
            .unwrap()
            .contains(&"ConfigMap/shopmicro/backend-config".into()),
        "{report:#}"
    );
    // Every step was judged on enough requests from both tracks, and passed.
    for (step, weight) in [(1, 50), (2, 100)] {
        let measurements: Vec<&Value> = report["canary"]["measurements"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["step"] == step)
            .collect();
        let last = measurements
            .last()
            .unwrap_or_else(|| panic!("step {step} unmeasured"));
        assert_eq!(last["weight"], weight);
        assert_eq!(last["verdict"]["result"], "pass", "{last:#}");
        let backend = &last["services"][0];
        assert!(
            backend["canary"]["requests"].as_f64().unwrap() >= 20.0,
            "{backend}"
        );
        assert!(
            backend["stable"]["requests"].as_f64().unwrap() > 0.0,
            "{backend}"
        );
        assert_eq!(backend["canary"]["error_ratio"], 0.0);
    }
    // The canary was sized by the step: half, then all, of the stable pods.
    assert!(
        progress.contains("step 1/2 (50%): backend-canary at 1 pod(s) beside 2 stable"),
        "{progress}"
    );
    assert!(
        progress.contains("step 2/2 (100%): backend-canary at 2 pod(s) beside 2 stable"),
        "{progress}"
    );
    // Promoted: the stable Deployment runs the release, which is recorded once, ready.
    assert_eq!(report["promotion"]["revision"], 2);
    assert!(cluster.image("backend").ends_with(":0.2.0"));
    canaries_are_gone(&cluster);
    let recorded = release(&cluster, 2);
    assert_eq!(recorded["status"], "ready");
    assert_eq!(recorded["strategy"], "canary");
    assert_eq!(recorded["canary"]["outcome"], "promoted");
    let history = block_in_place(|| cluster.json(&["history", "--env", "dev"], 0));
    assert_eq!(history["releases"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_answering_errors_is_aborted_at_the_first_step_and_the_stable_never_changes() {
    let cluster = TestCluster::start();
    block_in_place(|| cluster.apply(&[]));
    let tracks = Tracks::start(&cluster).await;
    tracks.break_canary().await;
    let _traffic = tracks.traffic(true);

    // One failure tolerated: the second failed analysis aborts.
    let (report, progress) = canary(
        &cluster,
        &["--max-failures", "1", "--set", "services.backend.tag=0.2.0"],
        1,
    );
    assert!(
        progress.contains("(1 failure(s), 1 tolerated)")
            && progress.contains("(2 failure(s), 1 tolerated)"),
        "{progress}"
    );
    let canary = &report["canary"];
    assert_eq!(canary["outcome"], "aborted", "{report:#}");
    let reason = canary["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("step 1 (10%) failed its analysis: backend canary answered"),
        "{reason}"
    );
    assert!(
        reason.contains("5xx (limit 5.00%; stable 0.00%)"),
        "{reason}"
    );
    // Two failed analyses at step 1, with the values each judged.
    let measurements = canary["measurements"].as_array().unwrap();
    let judged: Vec<&Value> = measurements
        .iter()
        .filter(|m| m["verdict"]["result"] != "waiting-for-data")
        .collect();
    assert_eq!(judged.len(), 2, "{measurements:#?}");
    for analysis in &judged {
        assert_eq!(analysis["verdict"]["result"], "fail");
        assert_eq!(analysis["step"], 1);
    }
    let backend = &judged[0]["services"][0];
    assert!(
        backend["canary"]["error_ratio"].as_f64().unwrap() > 0.05,
        "{backend}"
    );
    assert_eq!(backend["stable"]["error_ratio"], 0.0, "{backend}");
    assert!(report.get("promotion").is_none());

    // The stable Deployment never moved; the canaries are gone; the release is failed and
    // is not the current one.
    assert!(cluster.image("backend").ends_with(":0.1.0"));
    canaries_are_gone(&cluster);
    let recorded = release(&cluster, 2);
    assert_eq!(recorded["status"], "failed");
    assert_eq!(recorded["canary"]["reason"], reason);
    let history = block_in_place(|| cluster.json(&["history", "--env", "dev"], 0));
    assert_eq!(history["current"], 1);
    let status = block_in_place(|| cluster.json(&["status", "--env", "dev"], 0));
    assert_eq!(status["release"]["revision"], 1);
    // The table says how it went and why.
    let table = block_in_place(|| cluster.shopctl(&["history", "--env", "dev"]));
    assert!(table.stdout.contains("canary, aborted"), "{}", table.stdout);
    assert!(
        table.stdout.contains(&format!("release 2: {reason}")),
        "{}",
        table.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn too_little_canary_traffic_is_waiting_for_data_never_a_verdict() {
    let cluster = TestCluster::start();
    block_in_place(|| cluster.apply(&[]));
    let tracks = Tracks::start(&cluster).await;
    // An interval under two scrapes (this Prometheus scrapes every second) would never see
    // an increase: refused before anything is recorded or changed.
    let mut too_short = CANARY.to_vec();
    too_short.extend(["--interval", "1s", "--set", "services.backend.tag=0.2.0"]);
    block_in_place(|| {
        cluster.refused(
            &too_short,
            "--interval 1s is shorter than two of Prometheus's scrapes (1s each)",
        );
        assert!(
            cluster.release(2).is_none(),
            "the refused canary was recorded"
        );
    });
    // Shoppers reach only the stable pods: the canary answers nothing.
    let _traffic = tracks.traffic(false);

    let (report, progress) = canary(
        &cluster,
        &["--timeout", "7s", "--set", "services.backend.tag=0.2.0"],
        1,
    );
    let canary = &report["canary"];
    let measurements = canary["measurements"].as_array().unwrap();
    assert!(measurements.len() >= 2, "{measurements:#?}");
    for measurement in measurements {
        assert_eq!(
            measurement["verdict"]["result"], "waiting-for-data",
            "{measurement:#}"
        );
        assert!(
            measurement["verdict"]["reason"]
                .as_str()
                .unwrap()
                .contains("backend canary answered 0 of the 20 requests a verdict needs"),
            "{measurement:#}"
        );
    }
    assert!(progress.contains("waiting for data"), "{progress}");
    let reason = canary["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("inconclusive at step 1 (10%)"),
        "{reason}"
    );
    assert!(cluster.image("backend").ends_with(":0.1.0"));
    canaries_are_gone(&cluster);
}

fn analysing(record: &Value) -> bool {
    record["status"] == "in-progress" && record["canary"]["step"].as_u64() >= Some(1)
}

#[test]
fn an_interrupted_canary_is_shown_by_status_and_resolved_by_the_next_command() {
    let cluster = TestCluster::start();
    cluster.apply(&[]);
    // No Prometheus answers here: every analysis waits for data, so the canary stays in
    // its first step until it is interrupted.
    let args = |tag: &str| {
        let set = format!("services.backend.tag={tag}");
        let mut args = CANARY.to_vec();
        args.extend([
            "--interval",
            "1s",
            "--timeout",
            "120s",
            "--output",
            "json",
            "--set",
        ]);
        [
            args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            vec![set],
        ]
        .concat()
    };
    let spawn = |tag: &str| {
        let owned = args(tag);
        let borrowed: Vec<&str> = owned.iter().map(String::as_str).collect();
        cluster.spawn(&borrowed)
    };

    // Ctrl-C: shopctl aborts the canary itself and says so.
    let child = spawn("0.2.0");
    cluster.wait_for_release(2, analysing);
    assert!(
        cluster
            .get("apps", "Deployment", "backend-canary")
            .is_some()
    );
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    crate::support::reports::conforms("apply", &report).unwrap();
    assert_eq!(report["canary"]["outcome"], "aborted");
    assert_eq!(report["canary"]["reason"], "interrupted by Ctrl-C");
    canaries_are_gone(&cluster);
    assert_eq!(release(&cluster, 2)["status"], "failed");

    // A lost runner (SIGKILL): nothing is cleaned up, and the record says in progress.
    let mut child = spawn("0.3.0");
    cluster.wait_for_release(3, analysing);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        cluster
            .get("apps", "Deployment", "backend-canary")
            .is_some()
    );
    let status = cluster.json(&["status", "--env", "dev"], 0);
    assert_eq!(status["release"]["revision"], 3);
    assert_eq!(status["release"]["status"], "in-progress");
    assert_eq!(status["release"]["canary"]["outcome"], "in-progress");
    let table = cluster.shopctl(&["status", "--env", "dev"]);
    assert!(
        table
            .stdout
            .contains("canary in progress: step 1/3 (10%) of backend against release 1"),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains("the next `shopctl apply --env dev`"),
        "{}",
        table.stdout
    );

    // The next apply aborts it first, then deploys as asked.
    let report = cluster.apply(&[]);
    assert_eq!(report["resolved"]["revision"], 3, "{report:#}");
    assert!(
        report["resolved"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("interrupted at step 1")
    );
    canaries_are_gone(&cluster);
    let recorded = release(&cluster, 3);
    assert_eq!(recorded["status"], "failed");
    assert_eq!(recorded["canary"]["outcome"], "aborted");
    assert!(cluster.image("backend").ends_with(":0.1.0"));
    // Nothing else is stuck: the next command has nothing to resolve.
    let again = cluster.apply(&[]);
    assert!(again.get("resolved").is_none(), "{again:#}");
}

#[test]
fn a_canary_that_never_becomes_ready_is_aborted_and_one_that_changes_more_than_services_is_refused()
{
    let cluster = TestCluster::start();
    cluster.refused(
        &["apply", "--env", "dev", "--strategy", "canary"],
        "has no release to judge a canary against",
    );
    cluster.apply(&[]);
    let mut args = CANARY.to_vec();
    args.extend([
        "--timeout",
        "3s",
        "--set",
        "services.backend.tag=0.2.0-never-ready",
    ]);
    // The table this time: what an operator at a terminal reads.
    let run = cluster.shopctl(&args);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(
            "release 2 aborted: Deployment/shopmicro/backend-canary did not become ready at step 1"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains("step 1/3 (10%): backend-canary at 1 pod(s)"),
        "{}",
        run.stderr
    );
    assert_eq!(release(&cluster, 2)["status"], "failed");
    canaries_are_gone(&cluster);
    assert!(cluster.image("backend").ends_with(":0.1.0"));

    // A configuration change would reach the stable pods unjudged: refused, nothing done.
    let mut args = CANARY.to_vec();
    args.extend([
        "--set",
        "services.backend.tag=0.2.0",
        "--set",
        "observability.access_log_sample=10",
    ]);
    cluster.refused(&args, "which the services' pods read");
    cluster.refused(
        &[
            "apply",
            "--env",
            "dev",
            "--strategy",
            "canary",
            "--steps",
            "50,10",
        ],
        "--steps must grow step by step",
    );
    let history = cluster.json(&["history", "--env", "dev"], 0);
    assert_eq!(history["releases"].as_array().unwrap().len(), 2);
}
