//! Backups, their verification and restores on a cluster: Jobs from the backup CronJob.

use std::time::Duration;

use serde_json::{Value, json};
use shopmicro_common::testing::TestDatabase;
use shopmicro_kube_sim::resources::lookup;
use shopmicro_kube_sim::store::{Part, PatchKind, WriteOptions};

use crate::harness::*;

/// The Job is made as `kubectl create job --from=cronjob/db-backup` makes it. The test plays
/// the Job's container (which runs `shopctl db backup` inside the cluster) by taking a real
/// backup of a real database into the emulated bucket while the simulated Job runs.
#[tokio::test(flavor = "multi_thread")]
async fn backup_runs_the_cron_job_as_a_job_and_reports_the_backup_it_wrote() {
    let moto = moto_with_bucket(BACKUP_BUCKET).await;
    let database = TestDatabase::create().await;
    let cluster = TestCluster::start();
    assert_eq!(cluster.shopctl(&["apply", "--env", "dev"]).code, 0);

    let (run, backup_id) = while_a_job_runs(
        &cluster,
        "db-backup-manual-",
        || {
            cluster.shopctl_aws(
                &moto,
                &["backup", "--env", "dev", "--wait", "--timeout", "60s"],
            )
        },
        || backed_up(&cluster, &moto, &database),
    );

    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.stdout.trim(), backup_id, "the new backup is reported");
    let job = &cluster.jobs()[0];
    let cron = cluster.get("batch", "CronJob", "db-backup").unwrap();
    assert_eq!(
        job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );
    assert_eq!(
        job["metadata"]["ownerReferences"][0]["uid"],
        cron["metadata"]["uid"]
    );
    assert_eq!(job["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(
        job["spec"]["template"],
        cron["spec"]["jobTemplate"]["spec"]["template"]
    );
    // Listing reads only the bucket: no cluster credentials are needed.
    let listed = cluster.shopctl_aws_at(
        &moto,
        std::path::Path::new("/nonexistent/kubeconfig"),
        &[],
        &["backup", "--env", "dev", "list", "--output", "json"],
    );
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let backups: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert!(
        backups
            .as_array()
            .unwrap()
            .iter()
            .any(|backup| backup["id"] == backup_id.as_str()),
        "{backups:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_backup_job_or_a_job_that_wrote_nothing_exits_1_and_says_where_to_look() {
    let moto = moto_with_bucket(BACKUP_BUCKET).await;
    let cluster = TestCluster::start();
    assert_eq!(cluster.shopctl(&["apply", "--env", "dev"]).code, 0);

    let silent = cluster.shopctl_aws(
        &moto,
        &["backup", "--env", "dev", "--wait", "--timeout", "30s"],
    );
    assert_eq!(silent.code, 1, "{}", silent.stderr);
    assert!(
        silent.stderr.contains("no backup newer than its start")
            && silent
                .stderr
                .contains("kubectl logs -n shopmicro job/db-backup-manual-"),
        "{}",
        silent.stderr
    );

    // Someone broke the backup image: its pods fail.
    let broken = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "prune", "image": "registry.example/shopctl:0.1.0-fail"}]}}}}}});
    let options = WriteOptions {
        field_manager: "someone-else".into(),
        ..WriteOptions::default()
    };
    cluster
        .sim
        .store()
        .patch(
            lookup("batch", "CronJob"),
            NS,
            "db-backup",
            PatchKind::Merge,
            &broken,
            Part::Main,
            &options,
        )
        .unwrap();
    let failed = cluster.shopctl_aws(
        &moto,
        &["backup", "--env", "dev", "--wait", "--timeout", "30s"],
    );
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(
        failed.stderr.contains("BackoffLimitExceeded"),
        "{}",
        failed.stderr
    );
}

/// `backup verify` on a cluster runs the CronJob's verify step as a Job; here the test
/// does what that container does (a real `db verify` against the emulated bucket).
#[tokio::test(flavor = "multi_thread")]
async fn backup_verify_runs_the_verify_step_as_a_job_and_reports_what_it_recorded() {
    let moto = moto_with_bucket(BACKUP_BUCKET).await;
    let database = TestDatabase::create().await;
    let cluster = TestCluster::start();
    assert_eq!(cluster.shopctl(&["apply", "--env", "dev"]).code, 0);
    let backup = backed_up(&cluster, &moto, &database);
    let location = format!("s3://{BACKUP_BUCKET}/postgres/");
    let verify = |id: &str| {
        cluster.shopctl_aws(
            &moto,
            &[
                "backup",
                "--env",
                "dev",
                "--timeout",
                "60s",
                "verify",
                "--backup",
                id,
            ],
        )
    };
    let verify_jobs = || -> Vec<Value> {
        cluster
            .jobs()
            .into_iter()
            .filter(|j| {
                j["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .starts_with("db-verify-")
            })
            .collect()
    };

    let unknown = verify("20200101T000000Z");
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("20200101T000000Z")
            && unknown.stderr.contains("backup --env dev list"),
        "{}",
        unknown.stderr
    );
    assert!(
        verify_jobs().is_empty(),
        "nothing runs for an unknown backup"
    );

    let (run, ()) = while_a_job_runs(
        &cluster,
        "db-verify-",
        || verify(&backup),
        || {
            let container = cluster.shopctl_aws(
                &moto,
                &[
                    "db",
                    "verify",
                    "--database-url",
                    database.url(),
                    "--from",
                    &location,
                    "--backup",
                    &backup,
                ],
            );
            assert_eq!(container.code, 0, "{}", container.stderr);
        },
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("backup {backup} verified")),
        "{}",
        run.stderr
    );
    let pod = &verify_jobs()[0]["spec"]["template"]["spec"];
    assert!(
        pod["initContainers"].is_null(),
        "only the verify step: {pod}"
    );
    assert_eq!(pod["containers"].as_array().unwrap().len(), 1);
    assert_eq!(pod["containers"][0]["name"], "verify");
    assert_eq!(
        pod["containers"][0]["args"],
        json!([
            "db",
            "verify",
            "--from",
            location,
            "--pushgateway",
            "http://pushgateway.monitoring.svc:9091",
            "--backup",
            backup
        ])
    );
    assert_eq!(
        pod["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "DATABASE_URL")
            .unwrap()["valueFrom"]["secretKeyRef"]["name"],
        "db-backup"
    );

    // A Job that records nothing (its container never ran) is not mistaken for the
    // earlier verification.
    let silent = verify(&backup);
    assert_eq!(silent.code, 1, "{}", silent.stderr);
    assert!(
        silent
            .stderr
            .contains(&format!("no verification of {backup} was recorded")),
        "{}",
        silent.stderr
    );
}

/// The test plays nothing here: the restore Job's pod is the simulator's (it succeeds as
/// scripted). What is proven is shopctl's side: the artefact checked first, the writers
/// stopped while the Job runs and brought back after, the Job's command.
#[tokio::test(flavor = "multi_thread")]
async fn restore_stops_the_writers_runs_a_restore_job_and_brings_them_back() {
    let moto = moto_with_bucket(BACKUP_BUCKET).await;
    let database = TestDatabase::create().await;
    let cluster = TestCluster::start();
    cluster.apply(&[]);
    let location = format!("s3://{BACKUP_BUCKET}/postgres/");
    let backup = backed_up(&cluster, &moto, &database);
    let before: Vec<Value> = ["frontend", "backend", "ml"]
        .iter()
        .map(|d| replicas(&cluster, d))
        .collect();

    let (run, during) = std::thread::scope(|scope| {
        let restore = scope.spawn(|| {
            cluster.shopctl_aws(
                &moto,
                &[
                    "restore",
                    "--env",
                    "dev",
                    "--backup",
                    &backup,
                    "--yes",
                    "--timeout",
                    "60s",
                ],
            )
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let during = loop {
            if cluster.jobs().iter().any(|j| {
                j["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .starts_with("db-restore-")
            }) {
                break ["frontend", "backend", "ml"].map(|d| replicas(&cluster, d));
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no restore Job was created"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        (restore.join().unwrap(), during)
    });

    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        during,
        [json!(0), json!(0), json!(0)],
        "no writer runs while the Job restores"
    );
    let after: Vec<Value> = ["frontend", "backend", "ml"]
        .iter()
        .map(|d| replicas(&cluster, d))
        .collect();
    assert_eq!(after, before, "the writers are back at their replicas");
    let job = cluster
        .jobs()
        .into_iter()
        .find(|j| {
            j["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("db-restore-")
        })
        .unwrap();
    let pod = &job["spec"]["template"]["spec"];
    assert!(
        pod["initContainers"].is_null(),
        "no backup steps in a restore"
    );
    assert_eq!(pod["containers"][0]["name"], "restore");
    let database_url = pod["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "DATABASE_URL")
        .unwrap_or_else(|| panic!("the restore step has the database's credentials: {pod}"));
    assert_eq!(
        database_url["valueFrom"]["secretKeyRef"]["name"], "db-owner",
        "a restore replaces the schema, which only its owner may: {pod}"
    );
    assert_eq!(
        pod["containers"][0]["args"],
        json!([
            "db", "restore", "--from", location, "--backup", backup, "--yes"
        ])
    );

    // A tampered artefact is refused before anything in the cluster changes.
    let jobs_before = cluster.jobs().len();
    let s3 = reqwest::Client::new();
    let dump = format!(
        "{}/{BACKUP_BUCKET}/postgres/{backup}/dump.pgc",
        moto.endpoint
    );
    assert!(
        s3.put(&dump)
            .body("not a dump")
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let refused = cluster.shopctl_aws(
        &moto,
        &["restore", "--env", "dev", "--backup", &backup, "--yes"],
    );
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("checksum does not match"),
        "{}",
        refused.stderr
    );
    assert_eq!(cluster.jobs().len(), jobs_before);
    assert_eq!(replicas(&cluster, "frontend"), before[0]);
}

/// A canary's (or a preview's) pods write to the database beside the services, and a
/// restore stops only the services: it is refused until the release is finished.
#[tokio::test(flavor = "multi_thread")]
async fn a_restore_is_refused_while_a_canary_runs_beside_the_writers() {
    let moto = moto_with_bucket(BACKUP_BUCKET).await;
    let database = TestDatabase::create().await;
    let cluster = TestCluster::start();
    cluster.apply(&[]);
    let backup = backed_up(&cluster, &moto, &database);
    // What an interrupted canary leaves: its Deployment, labelled with its track.
    let labels = json!({"app.kubernetes.io/name": "backend", "shopmicro.io/track": "canary"});
    cluster.sim.create_as_admin(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "backend-canary", "namespace": NS, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "backend", "image": "shopmicro-backend:0.2.0"}]},
            },
        },
    }));
    let before = replicas(&cluster, "backend");

    let run = cluster.shopctl_aws(
        &moto,
        &[
            "restore",
            "--env",
            "dev",
            "--backup",
            &backup,
            "--yes",
            "--timeout",
            "30s",
        ],
    );
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("running backend-canary beside the services")
            && run.stderr.contains("nothing was changed"),
        "{}",
        run.stderr
    );
    assert_eq!(replicas(&cluster, "backend"), before);
    assert!(!cluster.jobs().iter().any(|j| {
        j["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("db-restore-")
    }));
}
