//! What on-call does on a cluster: read every pod's logs (following a rollout, and a crashed
//! container's previous instance) through the `pods/log` subresource.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use shopmicro_kube_sim::resources::lookup;

use crate::harness::*;

fn running_pods(cluster: &TestCluster, service: &str) -> Vec<String> {
    cluster
        .list("", "Pod", &format!("app.kubernetes.io/name={service}"))
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| p["status"]["containerStatuses"].is_array())
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn logs_merge_every_pod_with_its_name_and_previous_shows_what_a_crashed_container_printed() {
    let cluster = TestCluster::start();
    cluster.apply(&[]);
    let pods = running_pods(&cluster, "backend");
    assert_eq!(pods.len(), 2, "{pods:?}");
    for pod in &pods {
        cluster
            .sim
            .write_log(NS, pod, "backend", &format!("request served by {pod}"));
    }

    let run = cluster.shopctl(&["logs", "backend", "--env", "dev"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for pod in &pods {
        assert!(
            run.stdout.contains(&format!("[{pod}] started ")),
            "{}",
            run.stdout
        );
        assert!(
            run.stdout
                .contains(&format!("[{pod}] request served by {pod}\n")),
            "{}",
            run.stdout
        );
    }
    let tail = cluster.shopctl(&["logs", "backend", "--env", "dev", "--tail", "1"]);
    assert_eq!(tail.code, 0, "{}", tail.stderr);
    assert_eq!(
        tail.stdout.lines().count(),
        2,
        "one line per pod: {}",
        tail.stdout
    );
    assert!(tail.stdout.lines().all(|l| l.contains("request served by")));

    // A release that crash-loops: its pods' previous instances say how they ended; the old
    // pods, never restarted, have none, and say so.
    cluster.json(
        &[
            "apply",
            "--env",
            "dev",
            "--set",
            "services.backend.tag=0.2.0-crashloop",
        ],
        0,
    );
    eventually(
        "a crash-looping pod to restart",
        Duration::from_secs(20),
        || {
            let pods = cluster.list("", "Pod", "app.kubernetes.io/name=backend");
            let restarted = pods.iter().any(|p| {
                p["status"]["containerStatuses"][0]["restartCount"]
                    .as_u64()
                    .is_some_and(|r| r >= 1)
            });
            if restarted {
                Ok(())
            } else {
                Err(serde_json::Value::from(pods))
            }
        },
    );
    let previous = cluster.shopctl(&["logs", "backend", "--env", "dev", "--previous"]);
    assert!(
        previous.stdout.contains("exited with code 1"),
        "{}\n{}",
        previous.stdout,
        previous.stderr
    );
    assert!(
        previous.stdout.contains("started ") && previous.stdout.contains(":0.2.0-crashloop"),
        "{}",
        previous.stdout
    );
    assert_eq!(previous.code, 1, "the old pods have no previous log");
    assert!(
        previous
            .stderr
            .contains("previous terminated container \"backend\""),
        "{}",
        previous.stderr
    );

    cluster.refused(
        &["logs", "nothing", "--env", "dev"],
        "there is no Deployment nothing in namespace shopmicro",
    );
}

/// `logs -f`, as stern users expect: the pods a rollout starts join the stream.
#[test]
fn following_logs_picks_up_the_pods_a_rollout_starts() {
    let cluster = TestCluster::start();
    cluster.apply(&[]);
    let before = running_pods(&cluster, "backend");

    let kubeconfig = cluster.kubeconfig.to_str().unwrap();
    let mut child = Shopctl::new(&[
        "logs",
        "backend",
        "--env",
        "dev",
        "-f",
        "--kubeconfig",
        kubeconfig,
    ])
    .command()
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let (lines, received) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |wanted: &dyn Fn(&str) -> bool, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !seen.iter().any(|l: &String| wanted(l)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match received.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(_) => panic!("no {what} in: {seen:#?}"),
            }
        }
    };
    for pod in &before {
        wait_for(
            &|l| l.starts_with(&format!("[{pod}] started ")),
            "start line",
        );
    }

    cluster.apply(&["--set", "services.backend.tag=0.2.0"]);
    let after: Vec<String> = running_pods(&cluster, "backend")
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert!(!after.is_empty());
    for pod in &after {
        cluster
            .sim
            .write_log(NS, pod, "backend", "serving the new release");
        wait_for(
            &|l| l == format!("[{pod}] serving the new release"),
            "line from a pod the rollout started",
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `down` on a cluster uninstalls as `helm uninstall` does, after a confirmation: the
/// release's objects go, the database's volume claim and the release history stay (a
/// later apply takes the same claim back); `--purge` deletes those too.
#[test]
fn down_uninstalls_the_release_and_keeps_the_database_volume_unless_purged() {
    let cluster = TestCluster::start();
    cluster.apply(&[]);
    let claims = || {
        cluster.list(
            "",
            "PersistentVolumeClaim",
            "app.kubernetes.io/name=postgres",
        )
    };
    eventually(
        "the StatefulSet to make a claim",
        Duration::from_secs(10),
        || match claims().is_empty() {
            true => Err("no claim"),
            false => Ok(()),
        },
    );
    let claim_uid = claims()[0]["metadata"]["uid"].clone();

    cluster.refused(
        &["down", "--env", "dev"],
        "add --yes to confirm non-interactively",
    );
    assert!(
        cluster.get("apps", "Deployment", "backend").is_some(),
        "nothing deleted"
    );

    let report = cluster.json(&["down", "--env", "dev", "--yes"], 0);
    for (group, kind) in [
        ("apps", "Deployment"),
        ("apps", "StatefulSet"),
        ("", "Service"),
        ("", "ConfigMap"),
        ("batch", "CronJob"),
    ] {
        assert!(
            cluster
                .list(group, kind, "shopmicro.io/managed-by=shopctl")
                .is_empty(),
            "{kind}s remain: {report:#}"
        );
    }
    assert_eq!(claims().len(), 1, "the database's claim is kept");
    assert!(
        report["claims_kept"][0]
            .as_str()
            .unwrap()
            .starts_with("PersistentVolumeClaim/shopmicro/"),
        "{report:#}"
    );
    assert!(
        report["deleted"]
            .as_array()
            .unwrap()
            .iter()
            .any(|id| id == "StatefulSet/shopmicro/postgres"),
        "{report:#}"
    );
    assert!(!cluster.history().is_empty(), "the history stays");

    cluster.apply(&[]);
    assert_eq!(
        claims()[0]["metadata"]["uid"],
        claim_uid,
        "the same volume claim back"
    );

    let purged = cluster.json(&["down", "--env", "dev", "--yes", "--purge"], 0);
    assert!(claims().is_empty(), "{purged:#}");
    assert!(
        cluster
            .list("", "Secret", "shopmicro.io/release-of=dev")
            .is_empty(),
        "{purged:#}"
    );
    cluster.refused(&["down", "--env", "dev", "--yes"], "nothing to uninstall");
}

/// The backend-outage runbook against the simulated cluster: a crash-looping release. The
/// runbook detects it, shows the pods' logs, asks PostgreSQL through a query Job (its
/// output played here: the simulator runs no processes), restarts (which cannot help),
/// rolls back, verifies, and leaves its transcript in the cluster for the next person on
/// call. Behind the proxy the backend's stand-in answers as the Deployment's release
/// would: 503 while the template is the broken one; the storefront is the real service.
#[tokio::test(flavor = "multi_thread")]
async fn the_backend_outage_runbook_detects_restarts_rolls_back_and_leaves_its_transcript() {
    let processes = Processes::start().await;
    let cluster = TestCluster::start();
    processes.serve(&cluster);
    let store = cluster.sim.store().clone();
    let release_readiness = axum::Router::new().route(
        "/readyz",
        axum::routing::get(move || {
            let store = store.clone();
            async move {
                let deployment = store
                    .get(lookup("apps", "Deployment"), NS, "backend")
                    .unwrap_or_default();
                let image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                if image.contains("crashloop") {
                    (axum::http::StatusCode::SERVICE_UNAVAILABLE, "crashing")
                } else {
                    (axum::http::StatusCode::OK, "ready")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stand_in = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, release_readiness).await });
    cluster.sim.serve(NS, "backend", "backend", &stand_in);
    cluster.apply(&[]);
    cluster.json(
        &[
            "apply",
            "--env",
            "dev",
            "--set",
            "services.backend.tag=0.2.0-crashloop",
        ],
        0,
    );

    let (run, _) = while_a_job_runs(
        &cluster,
        "db-query-",
        || {
            cluster.shopctl(&[
                "runbook",
                "run",
                "backend-outage",
                "--env",
                "dev",
                "--yes",
                "--action-timeout",
                "3s",
            ])
        },
        || {
            // What `shopctl db query` prints in the Job's pod.
            let pod = eventually("the query Job's pod", Duration::from_secs(20), || {
                let query = cluster.list("", "Pod", "").into_iter().find(|p| {
                    p["metadata"]["generateName"]
                        .as_str()
                        .is_some_and(|g| g.starts_with("db-query-"))
                });
                query
                    .map(|pod| pod["metadata"]["name"].as_str().unwrap().to_owned())
                    .ok_or("no pod")
            });
            cluster.sim.write_log(NS, &pod, "query", "1");
        },
    );

    let stderr = &run.stderr;
    assert_eq!(run.code, 0, "{}\n{stderr}", run.stdout);
    assert!(
        stderr.contains("[1/8] Is the backend ready? (check)\n  ✗"),
        "detected: {stderr}"
    );
    assert!(
        stderr.contains("started ") && stderr.contains("0.2.0-crashloop"),
        "logs shown: {stderr}"
    );
    assert!(
        stderr.contains("✓ `SELECT 1` = Some(1.0)"),
        "queried in a Job: {stderr}"
    );
    assert!(
        stderr.contains("`shopctl restart backend` failed"),
        "{stderr}"
    );
    assert!(stderr.contains("`shopctl rollback` succeeded"), "{stderr}");
    assert!(stderr.contains("✓ app.backend-ready"), "verified: {stderr}");
    assert!(cluster.image("backend").ends_with(":0.1.0"));

    let records = cluster.list("", "ConfigMap", "shopmicro.io/runbook-of=dev");
    assert_eq!(records.len(), 1, "{records:?}");
    let transcript = records[0]["data"]["transcript"].as_str().unwrap();
    assert!(
        transcript.contains("step 6 `rollback`: ok") && transcript.ends_with("finished\n"),
        "{transcript}"
    );
    assert!(
        records[0]["data"]["summary"]
            .as_str()
            .unwrap()
            .contains("runbook backend-outage run by"),
        "{records:?}"
    );
    let newest = cluster
        .list("", "Secret", "shopmicro.io/release-of=dev")
        .into_iter()
        .max_by_key(|s| {
            let name = s["metadata"]["name"].as_str().unwrap();
            name.rsplit(".v").next().unwrap().parse::<u32>().unwrap()
        })
        .unwrap();
    assert!(
        newest["metadata"]["annotations"]["shopmicro.io/last-runbook"]
            .as_str()
            .is_some_and(|note| note.contains("backend-outage") && note.contains("completed")),
        "{newest}"
    );
}

/// `--namespace` moves a runbook run as it moves every cluster verb: its checks read the
/// namespace named, not the environment's own (where the healthy release runs).
#[tokio::test(flavor = "multi_thread")]
async fn a_runbook_run_reads_the_namespace_it_is_given() {
    let cluster = TestCluster::start();
    let ready = axum::Router::new().route("/readyz", axum::routing::get(|| async { "ready" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, ready).await });
    cluster.sim.serve(NS, "backend", "backend", &backend);
    cluster.apply(&[]);
    let run = |extra: &[&str]| {
        let mut args = vec![
            "runbook",
            "run",
            "backend-outage",
            "--env",
            "dev",
            "--dry-run",
        ];
        args.extend_from_slice(extra);
        cluster.shopctl(&args)
    };
    let home = run(&[]);
    assert!(
        home.stderr
            .contains("[1/8] Is the backend ready? (check)\n  ✓"),
        "{}",
        home.stderr
    );
    let elsewhere = run(&["--namespace", "elsewhere"]);
    assert!(
        !elsewhere
            .stderr
            .contains("Is the backend ready? (check)\n  ✓"),
        "{}",
        elsewhere.stderr
    );
    assert!(
        elsewhere
            .stderr
            .contains("no Deployment backend in namespace elsewhere"),
        "{}",
        elsewhere.stderr
    );
}
