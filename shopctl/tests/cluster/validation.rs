//! `validate` on a cluster environment: healthy, each breakage, drift, deadlines, and
//! `up --skip-infra`.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use shopmicro_kube_sim::resources::lookup;
use shopmicro_kube_sim::store::{Part, PatchKind, WriteOptions};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn validate_passes_a_healthy_cluster_environment_and_says_why_it_skips_what_it_skips() {
    let moto = moto().await;
    let processes = Processes::start().await;
    let cluster = healthy(&moto, &processes).await;

    let report = validate(&cluster, &moto, 0);

    assert_eq!(report["target"], "cluster");
    assert_eq!(report["failed"], 0, "{report:#}");
    let passed = with_status(&report, "pass");
    for id in [
        "access.cluster",
        "access.permissions",
        "access.aws",
        "access.terraform-state",
        "workloads.namespaces",
        "workloads.components-ready",
        "workloads.no-crash-loop",
        "workloads.release-current",
        "scaling.pdb",
        "scaling.spread",
        "security.default-deny",
        "security.secrets",
        "security.config-literals",
        "security.storage-encrypted",
        "storage.volumes",
        "storage.backup-job",
        "storage.backup-object",
        "storage.database",
        "app.frontend-ready",
        "app.backend-ready",
        "app.ml-ready",
        "app.products",
        "app.storefront",
        "obs.prometheus",
        "obs.loki",
        "obs.tempo",
        "obs.targets",
        "obs.alerts",
        "obs.alert-receivers",
    ] {
        assert!(passed.contains(id), "{id} should pass: {report:#}");
    }
    assert_eq!(
        check_detail(&report, "obs.alert-receivers"),
        "critical → oncall; warning → tickets"
    );
    let backup = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "storage.backup-object")
        .unwrap();
    assert!(
        backup["detail"]
            .as_str()
            .unwrap()
            .contains("last verified restore"),
        "{backup}"
    );
    // The simulator has no metrics server: the autoscaler warns, honestly. A new
    // Prometheus may not have the five minutes of traffic an SLI needs: those may warn.
    let warned = with_status(&report, "warn");
    assert!(warned.contains("scaling.hpa"), "{report:#}");
    let may_warn = ["scaling.hpa", "obs.slo-availability", "obs.slo-latency"];
    assert!(
        warned.iter().all(|id| may_warn.contains(&id.as_str())),
        "{report:#}"
    );
    // Skipped: the local backup directory (no meaning on a cluster) and the opt-in drift
    // check (a `terraform plan`).
    assert_eq!(
        with_status(&report, "skipped"),
        BTreeSet::from(["access.drift".to_string(), "storage.backups".to_string()]),
        "{report:#}"
    );

    // Prometheus hangs (its port accepts connections and never answers): the checks that
    // ask it fail within their own deadline, and nothing else does.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    cluster
        .sim
        .serve(MONITORING, "prometheus", "http", &silent_url);
    let started = std::time::Instant::now();
    let extra = ["--only", "app,obs", "--check-timeout", "1s"];
    let report = validate_with(&cluster, &moto, &extra, 1);
    let elapsed = started.elapsed();
    let hung = [
        "obs.prometheus",
        "obs.targets",
        "obs.alerts",
        "obs.slo-availability",
        "obs.slo-latency",
    ];
    assert_eq!(
        with_status(&report, "fail"),
        hung.iter().map(|id| id.to_string()).collect(),
        "{report:#}"
    );
    for check in report["checks"].as_array().unwrap() {
        if hung.contains(&check["id"].as_str().unwrap()) {
            assert_eq!(check["detail"], "timed out after 1.0s", "{check}");
        }
    }
    assert!(
        elapsed < Duration::from_secs(10),
        "the checks ran concurrently within their deadline: {elapsed:?}"
    );
    drop(silent);

    // A Prometheus whose rules say users suffer (a critical alert firing, both SLIs outside
    // their objectives): a real Prometheus evaluating constant rules, so the checks read
    // real query results. The alert and SLO checks fail, the rest of obs passes.
    let suffering = SufferingPrometheus::start(&cluster.scratch).await;
    cluster
        .sim
        .serve(MONITORING, "prometheus", "http", &suffering.url);
    let report = validate_with(&cluster, &moto, &["--only", "obs"], 1);
    assert_eq!(
        with_status(&report, "fail"),
        BTreeSet::from([
            "obs.alerts".to_string(),
            "obs.slo-availability".to_string(),
            "obs.slo-latency".to_string(),
        ]),
        "{report:#}"
    );
    assert_eq!(
        check_detail(&report, "obs.alerts"),
        "firing: CheckoutOnFire"
    );
    assert_eq!(
        check_detail(&report, "obs.slo-availability"),
        "5.000% of API requests failed (SLO: at most 0.1%)"
    );
    assert_eq!(
        check_detail(&report, "obs.slo-latency"),
        "product reads p95 1500 ms (SLO: under 300 ms)"
    );
    drop(suffering);

    // An Alertmanager whose configuration has no receiver for critical (the local
    // environment names none): pages would reach nobody, which fails a cloud environment.
    processes.serve(&cluster);
    let unheard = Alertmanager::start(
        &rendered_config("local", &[]),
        &cluster.scratch.path("unheard-alertmanager"),
    )
    .await;
    cluster
        .sim
        .serve(MONITORING, "alertmanager", "http", &unheard.url);
    let report = validate_with(&cluster, &moto, &["--only", "obs"], 1);
    assert_eq!(
        with_status(&report, "fail"),
        BTreeSet::from(["obs.alert-receivers".to_string()]),
        "{report:#}"
    );
    assert_eq!(
        check_detail(&report, "obs.alert-receivers"),
        "no receiver hears critical alerts: they reach nobody"
    );
    processes.serve(&cluster);

    // Credentials for another AWS account: access.aws fails saying whose they are, and
    // only checks that ask AWS may fail with it (the emulator's DynamoDB is per account;
    // its S3, unlike AWS, lets another account read a bucket without a policy allowing it).
    let (key, secret, token) = moto.credentials_for_account("111111111111").await;
    let elsewhere = [
        ("AWS_ACCESS_KEY_ID", key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
        ("AWS_SESSION_TOKEN", token.as_str()),
    ];
    let args = [
        "validate",
        "--env",
        "dev",
        "--only",
        "access,storage",
        "--output",
        "json",
    ];
    let run = cluster.shopctl_aws_with(&moto, &elsewhere, &args);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let failed = with_status(&report, "fail");
    let asks_aws = [
        "access.aws",
        "access.terraform-state",
        "storage.backup-object",
    ];
    assert!(
        failed.contains("access.aws") && failed.iter().all(|id| asks_aws.contains(&id.as_str())),
        "{report:#}"
    );
    assert!(
        check_detail(&report, "access.aws").contains("account 111111111111"),
        "{report:#}"
    );

    // No access to the monitoring namespace: the service proxy is refused there too (a
    // SelfSubjectAccessReview says so before anything is asked), so the checks that ask
    // Prometheus, Loki and Tempo skip and access.permissions fails, saying why.
    let token = cluster.user_in_namespaces("app-only", &[NS, &format!("{MONITORING}-agents")]);
    cluster
        .sim
        .write_kubeconfig(&cluster.kubeconfig, &token, "shopmicro-dev")
        .unwrap();
    let report = validate(&cluster, &moto, 1);
    assert_eq!(
        with_status(&report, "fail"),
        BTreeSet::from(["access.permissions".to_string()]),
        "{report:#}"
    );
    assert!(
        check_detail(&report, "access.permissions")
            .contains("may not get services/proxy in namespace monitoring"),
        "{report:#}"
    );
    for id in [
        "obs.prometheus",
        "obs.loki",
        "obs.targets",
        "obs.slo-latency",
    ] {
        assert!(
            check_detail(&report, id).contains("SelfSubjectAccessReview"),
            "{id} skips, saying why: {report:#}"
        );
    }
    assert!(with_status(&report, "pass").contains("app.products"));
}

/// A real Prometheus whose rules evaluate constants: a critical alert always firing and
/// both SLIs far outside their objectives. Killed when dropped.
struct SufferingPrometheus {
    child: std::process::Child,
    url: String,
}

impl SufferingPrometheus {
    async fn start(scratch: &Scratch) -> Self {
        let dir = scratch.path("suffering-prometheus");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("rules.yaml"),
            "groups:\n  - name: suffering\n    rules:\n      - alert: CheckoutOnFire\n        expr: vector(1)\n        labels: {severity: critical}\n      - record: slo:api_errors:ratio_rate5m\n        expr: vector(0.05)\n      - record: slo:product_read_latency:p95_5m\n        expr: vector(1.5)\n",
        )
        .unwrap();
        let port = shopmicro_common::testing::closed_port();
        std::fs::write(
            dir.join("prometheus.yml"),
            format!("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yaml]\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"),
        )
        .unwrap();
        let child = std::process::Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus runs (the README's test command installs it)");
        let prometheus = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        // Ready once the alert fires, the SLIs are recorded and the self-scrape is in.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        for query in [
            "ALERTS{alertstate=\"firing\"}",
            "slo:product_read_latency:p95_5m",
            "up",
        ] {
            loop {
                let answer = reqwest::Client::new()
                    .get(format!("{}/api/v1/query", prometheus.url))
                    .query(&[("query", query)])
                    .send()
                    .await;
                let series = match answer {
                    Ok(response) => response.json::<Value>().await.unwrap_or_default(),
                    Err(_) => Value::Null,
                };
                if series["data"]["result"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty())
                {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "no {query} yet");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        prometheus
    }
}

impl Drop for SufferingPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_broken_thing_fails_its_own_check_and_only_that() {
    let options = WriteOptions {
        field_manager: "chaos".into(),
        ..WriteOptions::default()
    };
    type Breakage = fn(&TestCluster, &Moto, &WriteOptions);
    let breakages: [(&[&str], Breakage); 20] = [
        (&["workloads.namespaces"], |cluster, _, options| {
            let unlabelled =
                json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": null}}});
            cluster
                .sim
                .store()
                .patch(
                    lookup("", "Namespace"),
                    "",
                    NS,
                    PatchKind::Merge,
                    &unlabelled,
                    Part::Main,
                    options,
                )
                .unwrap();
        }),
        (&["scaling.hpa"], |cluster, _, _| {
            cluster.delete("autoscaling", "HorizontalPodAutoscaler", "backend");
        }),
        (&["scaling.pdb"], |cluster, _, options| {
            let strict = json!({"spec": {"minAvailable": "100%"}});
            cluster
                .sim
                .store()
                .patch(
                    lookup("policy", "PodDisruptionBudget"),
                    NS,
                    "frontend",
                    PatchKind::Merge,
                    &strict,
                    Part::Main,
                    options,
                )
                .unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while cluster
                .get("policy", "PodDisruptionBudget", "frontend")
                .unwrap()["status"]["disruptionsAllowed"]
                != 0
            {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the budget was not recomputed"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }),
        (&["security.config-literals"], |cluster, _, options| {
            // Built at run time: nothing credential-shaped is committed.
            let key = format!("admin_{}", ["pass", "word"].concat());
            let notes = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "notes", "namespace": NS}, "data": {key: uuid::Uuid::new_v4().to_string()}});
            cluster
                .sim
                .store()
                .create(lookup("", "ConfigMap"), NS, notes, options)
                .unwrap();
        }),
        (&["security.storage-encrypted"], |cluster, _, options| {
            let plain = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "plain"}, "provisioner": "ebs.csi.aws.com", "parameters": {"type": "gp3"}});
            cluster
                .sim
                .store()
                .create(lookup("storage.k8s.io", "StorageClass"), "", plain, options)
                .unwrap();
            let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "scratch", "namespace": NS}, "spec": {"storageClassName": "plain", "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
            cluster
                .sim
                .store()
                .create(lookup("", "PersistentVolumeClaim"), NS, claim, options)
                .unwrap();
            // The simulated provisioner binds on its next pass: only the class is broken.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while cluster.get("", "PersistentVolumeClaim", "scratch").unwrap()["status"]["phase"]
                != "Bound"
            {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the claim was not bound"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }),
        (&["workloads.components-ready"], |cluster, _, _| {
            assert_eq!(
                cluster
                    .shopctl(&[
                        "apply",
                        "--env",
                        "dev",
                        "--set",
                        "services.ml.tag=0.2.0-never-ready"
                    ])
                    .code,
                0
            );
        }),
        (&["security.secrets"], |cluster, _, options| {
            let remove = json!([{"op": "remove", "path": "/data/cart-signing-key"}]);
            cluster
                .sim
                .store()
                .patch(
                    lookup("", "Secret"),
                    NS,
                    "frontend-secrets",
                    PatchKind::Json,
                    &remove,
                    Part::Main,
                    options,
                )
                .unwrap();
        }),
        (&["security.default-deny"], |cluster, _, _| {
            cluster.delete("networking.k8s.io", "NetworkPolicy", "default-deny-all");
        }),
        (&["storage.backup-job"], |cluster, _, options| {
            let job = cluster.jobs().into_iter().next().unwrap();
            let old = (chrono::Utc::now() - chrono::Duration::days(3))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let aged = json!({"status": {"completionTime": old}});
            cluster
                .sim
                .store()
                .patch(
                    lookup("batch", "Job"),
                    NS,
                    job["metadata"]["name"].as_str().unwrap(),
                    PatchKind::Merge,
                    &aged,
                    Part::Status,
                    options,
                )
                .unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while cluster.get("batch", "CronJob", "db-backup").unwrap()["status"]["lastSuccessfulTime"]
                != old.as_str()
            {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the CronJob did not take the aged Job's time"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }),
        (&["access.terraform-state"], |_, moto, _| {
            block(
                moto.s3()
                    .delete_object()
                    .bucket(STATE_BUCKET)
                    .key(STATE_KEY)
                    .send(),
            )
            .unwrap();
        }),
        (&["storage.backup-object"], |_, moto, _| {
            for key in block(keys(moto, BACKUP_BUCKET, "postgres/")) {
                block(
                    moto.s3()
                        .delete_object()
                        .bucket(BACKUP_BUCKET)
                        .key(key)
                        .send(),
                )
                .unwrap();
            }
        }),
        // Read access only to the platform's namespaces: nothing cluster-scoped can be
        // listed. The checks that need Nodes, Namespaces or StorageClasses say so and skip.
        (&["access.permissions"], |cluster, _, _| {
            let token = cluster
                .user_in_namespaces("reader", &[NS, MONITORING, &format!("{MONITORING}-agents")]);
            cluster
                .sim
                .write_kubeconfig(&cluster.kubeconfig, &token, "shopmicro-dev")
                .unwrap();
        }),
        // Every backend replica on one node: a node failure takes the service down.
        (&["scaling.spread"], |cluster, _, options| {
            let store = cluster.sim.store();
            let pods = cluster.list("", "Pod", "app.kubernetes.io/name=backend");
            let node = pods[0]["spec"]["nodeName"].clone();
            for pod in pods {
                let moved = json!({"spec": {"nodeName": node}});
                let name = pod["metadata"]["name"].as_str().unwrap();
                store
                    .patch(
                        lookup("", "Pod"),
                        NS,
                        name,
                        PatchKind::Merge,
                        &moved,
                        Part::Main,
                        options,
                    )
                    .unwrap();
            }
        }),
        // A volume whose backing disk is gone.
        (&["storage.volumes"], |cluster, _, options| {
            let store = cluster.sim.store();
            let claims = cluster.list("", "PersistentVolumeClaim", "");
            let name = claims[0]["metadata"]["name"].as_str().unwrap();
            let lost = json!({"status": {"phase": "Lost"}});
            store
                .patch(
                    lookup("", "PersistentVolumeClaim"),
                    NS,
                    name,
                    PatchKind::Merge,
                    &lost,
                    Part::Status,
                    options,
                )
                .unwrap();
        }),
        // A new ml release crash-loops: its pods restart again and again while the old
        // ones keep serving, so the rollout is not done either.
        (
            &["workloads.no-crash-loop", "workloads.components-ready"],
            |cluster, _, _| {
                let applied = cluster.shopctl(&[
                    "apply",
                    "--env",
                    "dev",
                    "--set",
                    "services.ml.tag=0.2.0-crashloop",
                ]);
                assert_eq!(applied.code, 0, "{}", applied.stderr);
                let deadline = std::time::Instant::now() + Duration::from_secs(20);
                while !cluster
                    .list("", "Pod", "app.kubernetes.io/name=ml")
                    .iter()
                    .any(|p| {
                        p["status"]["containerStatuses"][0]["restartCount"]
                            .as_u64()
                            .is_some_and(|n| n >= 3)
                    })
                {
                    assert!(std::time::Instant::now() < deadline, "no pod crash-looped");
                    std::thread::sleep(Duration::from_millis(100));
                }
            },
        ),
        // Someone changes an image by hand (`kubectl set image`): the rollout completes,
        // but what runs is not the release shopctl recorded.
        (&["workloads.release-current"], |cluster, _, options| {
            let hand_made = json!([{
                "op": "replace",
                "path": "/spec/template/spec/containers/0/image",
                "value": "registry.example.com/backend:hotfix",
            }]);
            let store = cluster.sim.store();
            let deployments = lookup("apps", "Deployment");
            store
                .patch(
                    deployments,
                    NS,
                    "backend",
                    PatchKind::Json,
                    &hand_made,
                    Part::Main,
                    options,
                )
                .unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            loop {
                let backend = cluster.get("apps", "Deployment", "backend").unwrap();
                let status = &backend["status"];
                if status["observedGeneration"] == backend["metadata"]["generation"]
                    && status["updatedReplicas"] == backend["spec"]["replicas"]
                    && status["availableReplicas"] == backend["spec"]["replicas"]
                    && status["replicas"] == backend["spec"]["replicas"]
                {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the rollout did not finish: {status}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }),
        // The backend process dies (before the kubelet notices): what asks it fails.
        (
            &["app.backend-ready", "app.products", "storage.database"],
            |cluster, _, _| cluster.sim.stop_serving(NS, "backend", "backend"),
        ),
        (
            &["app.frontend-ready", "app.storefront"],
            |cluster, _, _| cluster.sim.stop_serving(NS, "frontend", "frontend"),
        ),
        // Prometheus stops: every check that queries it fails, nothing else.
        (
            &[
                "obs.prometheus",
                "obs.targets",
                "obs.alerts",
                "obs.slo-availability",
                "obs.slo-latency",
            ],
            |cluster, _, _| cluster.sim.stop_serving(MONITORING, "prometheus", "http"),
        ),
        (&["obs.loki"], |cluster, _, _| {
            cluster.sim.stop_serving(MONITORING, "loki", "http")
        }),
    ];
    let processes = Processes::start().await;
    for (checks, breakage) in breakages {
        // A fresh cluster and emulator each: every breakage starts from health.
        let moto = moto().await;
        let cluster = healthy(&moto, &processes).await;
        breakage(&cluster, &moto, &options);

        let report = validate(&cluster, &moto, 1);

        assert_eq!(
            with_status(&report, "fail"),
            checks.iter().map(|c| c.to_string()).collect(),
            "{report:#}"
        );
        for check in checks {
            let failed = report["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["id"] == *check)
                .unwrap();
            assert!(
                failed["hint"].as_str().is_some_and(|h| !h.is_empty()),
                "{failed}"
            );
        }
    }
}

/// `--drift` plans the environment's stack with the real terraform binary (a provider-free
/// fixture stack: providers cannot be downloaded here) against the emulated state backend.
#[tokio::test(flavor = "multi_thread")]
async fn drift_is_checked_on_request_and_a_change_made_outside_terraform_fails_it() {
    let moto = moto().await;
    let cluster = TestCluster::start();
    cluster.apply(&[]);
    let s3 = moto.s3();
    let created = reqwest::Client::new()
        .put(format!("{}/{STATE_BUCKET}", moto.endpoint))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{created:?}");
    moto.lock_table("shopmicro-dev-tflock").await;
    let stack = crate::support::fixture("terraform/stack");
    let stack = stack.to_str().unwrap();
    let applied = cluster.shopctl_aws(&moto, &["infra", "apply", "--env", "dev", "--stack", stack]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    let drift = |code: i32| -> Value {
        let extra = ["--only", "access.drift", "--drift", "--stack", stack];
        validate_with(&cluster, &moto, &extra, code)["checks"][0].clone()
    };

    let unasked = validate_with(&cluster, &moto, &["--only", "access.drift"], 0);
    assert_eq!(
        unasked["checks"][0]["status"], "skipped",
        "opt-in: {unasked}"
    );
    assert_eq!(drift(0)["status"], "pass");

    // Someone edits what Terraform manages by hand: here, the state's recorded input
    // (removing the digest Terraform keeps beside the state, as a hand edit would).
    let mut state = moto.json_object(STATE_BUCKET, STATE_KEY).await;
    state["resources"][0]["instances"][0]["attributes"]["input"]["value"] =
        json!("changed by hand");
    state["serial"] = json!(state["serial"].as_u64().unwrap() + 1);
    s3.put_object()
        .bucket(STATE_BUCKET)
        .key(STATE_KEY)
        .body(serde_json::to_vec(&state).unwrap().into())
        .send()
        .await
        .unwrap();
    moto.dynamodb()
        .delete_item()
        .table_name("shopmicro-dev-tflock")
        .key(
            "LockID",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("{STATE_BUCKET}/{STATE_KEY}-md5")),
        )
        .send()
        .await
        .unwrap();

    let drifted = drift(1);
    assert_eq!(drifted["status"], "fail", "{drifted}");
    assert_eq!(
        drifted["detail"], "drifted: update terraform_data.cluster",
        "{drifted}"
    );
    assert!(
        drifted["hint"]
            .as_str()
            .unwrap()
            .contains("shopctl infra plan --env dev")
    );
}

#[test]
fn a_hanging_api_server_makes_validate_give_up_within_its_deadline() {
    let cluster = TestCluster::start();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap();
    let kubeconfig = cluster.scratch.path("hanging");
    std::fs::write(
        &kubeconfig,
        shopmicro_kube_sim::kubeconfig(&format!("http://{address}"), "t", "shopmicro-dev"),
    )
    .unwrap();

    let started = std::time::Instant::now();
    let run = cluster.shopctl_as(
        &kubeconfig,
        &["validate", "--env", "dev", "--timeout", "2s"],
    );

    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("reading the cluster took longer than --timeout 2s"),
        "{}",
        run.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "gave up in time"
    );
    drop(silent);
}

#[tokio::test(flavor = "multi_thread")]
async fn up_with_skip_infra_deploys_validates_reports_each_phase_and_resumes() {
    let moto = moto().await;
    let cluster = TestCluster::start();
    let processes = Processes::start().await;
    processes.serve(&cluster);
    cloud_fixtures(&moto, &cluster).await;

    let first = cluster.shopctl_aws(
        &moto,
        &["up", "--env", "dev", "--skip-infra", "--timeout", "60s"],
    );

    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    for phase in [
        "==> connecting to the cluster: done",
        "==> apply and wait for the rollout: done",
        "==> validate: done",
    ] {
        assert!(
            first.stderr.contains(phase),
            "{phase} in:\n{}",
            first.stderr
        );
    }
    assert!(
        first.stdout.contains("recorded release 1 of dev"),
        "{}",
        first.stdout
    );
    assert!(
        first
            .stdout
            .contains("no backup yet: the db-backup CronJob is new"),
        "a new environment warns, not fails:\n{}",
        first.stdout
    );

    let again = cluster.shopctl_aws(&moto, &["up", "--env", "dev", "--skip-infra"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again
            .stdout
            .contains("no changes: release 1 of dev is current"),
        "{}",
        again.stdout
    );
}
