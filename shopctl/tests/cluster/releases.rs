//! Releases: apply, wait, prune, conflicts, dry runs, history, rollback, status, and the
//! ways access fails.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use shopmicro_kube_sim::resources::lookup;
use shopmicro_kube_sim::store::{Part, PatchKind, WriteOptions};

use crate::harness::*;

#[test]
fn the_first_apply_creates_everything_and_an_identical_second_apply_changes_nothing() {
    let cluster = TestCluster::start();

    let first = cluster.apply(&[]);
    assert_eq!(first["revision"], 1);
    assert!(changes(&first, "created").contains(&"Deployment/shopmicro/backend".to_string()));
    assert!(changes(&first, "configured").is_empty() && changes(&first, "unchanged").is_empty());
    assert!(
        first["rollout"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["ready"] == true),
        "{first}"
    );
    let version = |c: &TestCluster| {
        c.get("apps", "Deployment", "backend").unwrap()["metadata"]["resourceVersion"].clone()
    };
    let before = version(&cluster);

    let second = cluster.apply(&[]);
    assert_eq!(second["revision"], Value::Null, "no new revision: {second}");
    assert_eq!(
        changes(&second, "unchanged").len(),
        first["changes"].as_array().unwrap().len()
    );
    assert_eq!(version(&cluster), before, "the server stored nothing new");
    assert_eq!(cluster.history().len(), 1);
}

#[test]
fn a_new_image_tag_rolls_out_a_new_replica_set_revision_and_wait_sees_it_ready() {
    let cluster = TestCluster::start();
    cluster.apply(&[]);

    let report = cluster.apply(&["--set", "services.backend.tag=0.2.0"]);

    assert_eq!(report["revision"], 2);
    assert!(cluster.image("backend").ends_with(":0.2.0"));
    let deployment = cluster.get("apps", "Deployment", "backend").unwrap();
    assert_eq!(
        deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    let replica_sets = cluster.list("apps", "ReplicaSet", "app.kubernetes.io/name=backend");
    let revision_of = |rs: &Value| {
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let newest = replica_sets
        .iter()
        .find(|rs| revision_of(rs) == "2")
        .expect("a revision-2 ReplicaSet");
    assert!(
        newest["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .ends_with(":0.2.0")
    );
    let old = replica_sets
        .iter()
        .find(|rs| revision_of(rs) == "1")
        .expect("the revision-1 ReplicaSet is kept");
    assert_eq!(
        old["spec"]["replicas"], 0,
        "the old ReplicaSet is scaled down"
    );
    let backend = report["rollout"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["workload"] == "Deployment/shopmicro/backend")
        .unwrap();
    assert_eq!(backend["ready"], true);
    let history = cluster.history();
    assert!(
        history[1]["images"]["Deployment/backend"][0]
            .as_str()
            .unwrap()
            .ends_with(":0.2.0")
    );
    assert_eq!(history[1]["status"], "ready");
}

#[test]
fn an_image_that_never_becomes_ready_fails_the_wait_and_atomic_brings_the_last_good_release_back() {
    let cluster = TestCluster::start();
    cluster.apply(&[]);

    let run = cluster.shopctl(&[
        "apply",
        "--env",
        "dev",
        "--set",
        "services.backend.tag=0.2.0-never-ready",
        "--wait",
        "--timeout",
        "2s",
    ]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let failure = run
        .stdout
        .lines()
        .find(|l| l.contains("Deployment/shopmicro/backend") && l.contains("FAILED"))
        .expect("the backend is reported as failed");
    assert!(failure.contains("timed out after 2s"), "{failure}");
    assert!(
        run.stdout.contains("Readiness probe failed"),
        "recent warning events are shown:\n{}",
        run.stdout
    );
    assert!(
        !run.stdout
            .lines()
            .any(|l| l.contains("Deployment/shopmicro/frontend") && l.contains("FAILED")),
        "only the broken workload fails"
    );

    let report = cluster.json(
        &[
            "apply",
            "--env",
            "dev",
            "--set",
            "services.backend.tag=0.3.0-never-ready",
            "--atomic",
            "--timeout",
            "2s",
        ],
        1,
    );
    assert_eq!(
        report["rolled_back"]["to"], 1,
        "back to the last release that became ready, not the failed one: {report}"
    );
    assert!(
        report["rolled_back"]["rollout"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["ready"] == true)
    );
    assert!(cluster.image("backend").ends_with(":0.1.0"));
    let statuses: Vec<Value> = cluster
        .history()
        .iter()
        .map(|r| r["status"].clone())
        .collect();
    assert_eq!(
        statuses,
        [
            json!("ready"),
            json!("failed"),
            json!("failed"),
            json!("ready")
        ]
    );
}

#[test]
fn a_crash_looping_image_is_reported_with_its_back_off_events() {
    let cluster = TestCluster::start();
    cluster.apply(&[]);

    let report = cluster.json(
        &[
            "apply",
            "--env",
            "dev",
            "--set",
            "services.ml.tag=0.2.0-crashloop",
            "--wait",
            "--timeout",
            "3s",
        ],
        1,
    );

    let ml = report["rollout"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["workload"] == "Deployment/shopmicro/ml")
        .unwrap();
    assert_eq!(ml["ready"], false);
    let warnings = ml["warnings"].to_string();
    assert!(
        warnings.contains("BackOff") && warnings.contains("Back-off restarting failed container"),
        "{warnings}"
    );
}

#[test]
fn rollback_to_a_revision_restores_its_deployments_and_config_maps_and_records_a_new_revision() {
    let cluster = TestCluster::start();
    cluster.apply(&[]);
    cluster.apply(&[
        "--set",
        "services.backend.tag=0.2.0",
        "--set",
        "observability.log_level=warn",
    ]);
    let log_level = |c: &TestCluster| {
        c.get("", "ConfigMap", "backend-config").unwrap()["data"]["RUST_LOG"].clone()
    };
    assert_eq!(log_level(&cluster), "warn");

    let report = cluster.json(&["rollback", "--env", "dev", "--to", "1"], 0);

    assert_eq!(report["revision"], 3);
    assert!(cluster.image("backend").ends_with(":0.1.0"));
    assert_eq!(log_level(&cluster), "debug", "ConfigMaps come back too");
    let history = cluster.history();
    assert_eq!(history[2]["cause"], "rollback to 1");
    assert_eq!(history[2]["digest"], history[0]["digest"]);
}

#[test]
fn rollback_of_one_service_follows_rollout_undo_and_leaves_the_release_history_alone() {
    let cluster = TestCluster::start();
    cluster.apply(&[]);
    cluster.apply(&["--set", "services.backend.tag=0.2.0"]);

    let run = cluster.shopctl(&[
        "rollback",
        "--env",
        "dev",
        "--service",
        "backend",
        "--timeout",
        "10s",
    ]);

    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(cluster.image("backend").ends_with(":0.1.0"));
    let deployment = cluster.get("apps", "Deployment", "backend").unwrap();
    // Upstream: the old ReplicaSet is reused and gets the next revision number.
    assert_eq!(
        deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    assert!(
        cluster.image("frontend").ends_with(":0.1.0"),
        "other services untouched"
    );
    assert_eq!(cluster.history().len(), 2);

    cluster.refused(
        &[
            "rollback",
            "--env",
            "dev",
            "--service",
            "backend",
            "--to",
            "7",
        ],
        "has no revision 7 (it has: 2, 3)",
    );
}

/// `restart` on a cluster is `kubectl rollout restart`: the template's restartedAt
/// annotation, a new ReplicaSet revision whose pods replace every old one, and the rollout
/// wait; the next apply keeps the annotation (another manager's field) and changes nothing.
#[test]
fn restart_rolls_every_pod_of_the_service_and_waits_for_them() {
    let cluster = TestCluster::start();
    cluster.apply(&[]);
    let pods_before: BTreeSet<String> = cluster
        .list("", "Pod", "app.kubernetes.io/name=backend")
        .iter()
        .map(|p| p["metadata"]["uid"].as_str().unwrap().to_owned())
        .collect();
    assert!(!pods_before.is_empty());

    let run = cluster.shopctl(&["restart", "backend", "--env", "dev", "--timeout", "30s"]);

    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("backend restarted"), "{}", run.stderr);
    let deployment = cluster.get("apps", "Deployment", "backend").unwrap();
    assert!(
        deployment["spec"]["template"]["metadata"]["annotations"]
            ["kubectl.kubernetes.io/restartedAt"]
            .is_string(),
        "{deployment}"
    );
    assert_eq!(
        deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    let pods_after: Vec<Value> = cluster
        .list("", "Pod", "app.kubernetes.io/name=backend")
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect();
    assert!(!pods_after.is_empty());
    assert!(
        pods_after
            .iter()
            .all(|p| !pods_before.contains(p["metadata"]["uid"].as_str().unwrap())),
        "every pod was replaced"
    );
    assert!(
        cluster.image("frontend").ends_with(":0.1.0")
            && cluster.get("apps", "Deployment", "frontend").unwrap()["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                == "1",
        "other services untouched"
    );
    let again = cluster.apply(&[]);
    assert!(changes(&again, "updated").is_empty(), "{again:#}");

    cluster.refused(
        &["restart", "postgres", "--env", "dev"],
        "can restart frontend, backend or ml",
    );
}

#[test]
fn a_missing_revision_or_an_empty_history_is_a_clear_error() {
    let cluster = TestCluster::start();

    cluster.refused(
        &["rollback", "--env", "dev"],
        "no releases are recorded for environment dev",
    );
    let history = cluster.shopctl(&["history", "--env", "dev"]);
    assert!(
        history.stdout.contains("no releases recorded for dev"),
        "{}",
        history.stdout
    );

    cluster.apply(&[]);
    cluster.refused(
        &["rollback", "--env", "dev", "--to", "5"],
        "release 5 of dev is not in the history (kept: 1)",
    );
    cluster.refused(&["rollback", "--env", "dev"], "no earlier release");
}

#[test]
fn objects_removed_from_the_templates_are_pruned_and_objects_shopctl_does_not_own_are_never_touched()
 {
    let cluster = TestCluster::start();
    cluster.apply(&[]);
    let store = cluster.sim.store();
    let options = WriteOptions {
        field_manager: "someone-else".into(),
        ..WriteOptions::default()
    };
    let notes = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "operator-notes", "namespace": NS}, "data": {"note": "keep"}});
    store
        .create(lookup("", "ConfigMap"), NS, notes, &options)
        .unwrap();
    // Someone took the frontend budget over: it is no longer labelled as shopctl's.
    let disown = json!({"metadata": {"labels": {"shopmicro.io/managed-by": null}}});
    store
        .patch(
            lookup("policy", "PodDisruptionBudget"),
            NS,
            "frontend",
            PatchKind::Merge,
            &disown,
            Part::Main,
            &options,
        )
        .unwrap();
    let templates = cluster.scratch.templates_copy();
    std::fs::remove_file(templates.join("k8s/23-disruption-budgets.yaml.tera")).unwrap();

    let report = cluster.apply(&["--templates", templates.to_str().unwrap()]);

    assert_eq!(
        changes(&report, "pruned"),
        ["PodDisruptionBudget/shopmicro/backend"]
    );
    assert!(
        cluster
            .get("policy", "PodDisruptionBudget", "backend")
            .is_none()
    );
    assert!(
        cluster
            .get("policy", "PodDisruptionBudget", "frontend")
            .is_some(),
        "no longer ours: left alone"
    );
    assert!(
        cluster.get("", "ConfigMap", "operator-notes").is_some(),
        "never ours: never touched"
    );
}

#[test]
fn a_field_owned_by_another_manager_is_a_clear_conflict_unless_forced() {
    let cluster = TestCluster::start();
    cluster.apply(&[]);
    let takeover = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "backend-config", "namespace": NS}, "data": {"RUST_LOG": "trace"}});
    let options = WriteOptions {
        field_manager: "ops-hotfix".into(),
        force: true,
        ..WriteOptions::default()
    };
    cluster
        .sim
        .store()
        .patch(
            lookup("", "ConfigMap"),
            NS,
            "backend-config",
            PatchKind::Apply,
            &takeover,
            Part::Main,
            &options,
        )
        .unwrap();

    let refused = cluster.shopctl(&[
        "apply",
        "--env",
        "dev",
        "--set",
        "services.frontend.tag=0.2.0",
    ]);

    assert_eq!(refused.code, 2, "{}\n{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("conflict with \"ops-hotfix\"")
            && refused.stderr.contains("--force"),
        "{}",
        refused.stderr
    );
    assert!(
        cluster.image("frontend").ends_with(":0.1.0"),
        "nothing was applied before the conflict was found"
    );
    assert_eq!(cluster.history().len(), 1);

    cluster.apply(&["--force"]);
    assert_eq!(
        cluster.get("", "ConfigMap", "backend-config").unwrap()["data"]["RUST_LOG"],
        "debug"
    );
}

#[test]
fn dry_run_changes_nothing_and_shows_a_diff_without_secret_values() {
    let cluster = TestCluster::start();

    let fresh = cluster.json(&["apply", "--env", "dev", "--dry-run"], 0);
    assert!(!changes(&fresh, "created").is_empty());
    assert!(
        cluster
            .sim
            .store()
            .get(lookup("", "Namespace"), "", NS)
            .is_err(),
        "a dry run creates nothing"
    );

    cluster.apply(&[]);
    let rotated = [(
        "SHOPMICRO_POSTGRES_PASSWORD",
        format!("rotated-{}", uuid::Uuid::new_v4().simple()),
    )];
    let mut args = vec![
        "apply",
        "--env",
        "dev",
        "--dry-run",
        "--set",
        "services.backend.tag=0.2.0",
        "--kubeconfig",
    ];
    args.push(cluster.kubeconfig.to_str().unwrap());
    let mut vars: Vec<(&str, &str)> = cluster
        .secrets
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    vars.retain(|(k, _)| *k != rotated[0].0);
    vars.push((rotated[0].0, rotated[0].1.as_str()));
    let run = shopctl_with(&args, &vars);

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("-            \"image\": \"123456789012.dkr.ecr.eu-west-1.amazonaws.com/shopmicro-backend:0.1.0\""), "{}", run.stdout);
    assert!(
        run.stdout
            .lines()
            .any(|line| line.contains("configured (dry run)") && line.contains("Secret/shopmicro/")),
        "the rotated secret shows as changed:\n{}",
        run.stdout
    );
    for (_, value) in cluster.secrets.iter().chain(rotated.iter()) {
        assert!(
            !run.stdout.contains(value.as_str()) && !run.stderr.contains(value.as_str()),
            "a secret value leaked"
        );
    }
    assert!(cluster.image("backend").ends_with(":0.1.0"));
    assert_eq!(cluster.history().len(), 1);
}

#[test]
fn two_applies_at_once_both_land_as_distinct_revisions() {
    let cluster = TestCluster::start();
    cluster.apply(&[]);

    let runs: Vec<Run> = std::thread::scope(|scope| {
        let handles: Vec<_> = ["0.2.0", "0.3.0"]
            .map(|tag| {
                let cluster = &cluster;
                scope.spawn(move || {
                    cluster.shopctl(&[
                        "apply",
                        "--env",
                        "dev",
                        "--set",
                        &format!("services.ml.tag={tag}"),
                    ])
                })
            })
            .into_iter()
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    for run in &runs {
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    }
    let history = cluster.history();
    let revisions: Vec<u64> = history
        .iter()
        .map(|r| r["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(revisions, [1, 2, 3]);
    let mut tags: Vec<String> = history[1..]
        .iter()
        .map(|r| {
            r["images"]["Deployment/ml"][0]
                .as_str()
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    tags.sort();
    assert_eq!(tags, ["0.2.0", "0.3.0"]);
}

#[test]
fn status_reports_workloads_autoscalers_budgets_and_the_release() {
    let cluster = TestCluster::start();
    cluster.apply(&[]);

    let status = cluster.json(&["status", "--env", "dev"], 0);

    assert_eq!(status["release"]["revision"], 1);
    let backend = status["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "backend")
        .unwrap();
    assert_eq!(backend["rollout"]["state"], "ready");
    assert_eq!(backend["revision"], "1");
    // The HPA keeps the backend at its minimum of 2 (dev.yaml).
    assert_eq!(status["autoscalers"][0]["min"], 2);
    assert_eq!(backend["desired"], 2);
    assert!(
        status["budgets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["name"] == "frontend")
    );
}

#[test]
fn unreachable_servers_bad_credentials_missing_permissions_and_the_wrong_cluster_exit_2_with_advice()
 {
    let cluster = TestCluster::start();
    let refused = |kubeconfig: &std::path::Path, expected: &str| {
        let run = cluster.shopctl_as(kubeconfig, &["apply", "--env", "dev"]);
        assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains(expected),
            "expected {expected:?} in:\n{}",
            run.stderr
        );
        assert_eq!(
            run.stderr.lines().count(),
            1,
            "one clear line, no trace:\n{}",
            run.stderr
        );
    };

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let unreachable = cluster.scratch.path("unreachable");
    std::fs::write(
        &unreachable,
        shopmicro_kube_sim::kubeconfig(&format!("http://{closed}"), "t", "shopmicro-dev"),
    )
    .unwrap();
    refused(
        &unreachable,
        &format!("cannot reach the cluster at http://{closed}/"),
    );

    let expired = cluster.scratch.path("expired");
    cluster
        .sim
        .write_kubeconfig(
            &expired,
            &cluster.sim.add_expired_token("old-ci"),
            "shopmicro-dev",
        )
        .unwrap();
    refused(&expired, "rejected the credentials (401 Unauthorized)");

    let limited = cluster.scratch.path("limited");
    cluster
        .sim
        .write_kubeconfig(
            &limited,
            &cluster.user_in_namespaces("intern", &["default"]),
            "shopmicro-dev",
        )
        .unwrap();
    refused(
        &limited,
        "permission denied by the cluster: secrets is forbidden: User \"intern\" cannot list resource \"secrets\" in API group \"\" in the namespace \"shopmicro\"",
    );

    let prod = cluster.scratch.path("prod");
    cluster
        .sim
        .write_kubeconfig(&prod, cluster.sim.admin_token(), "shopmicro-prod")
        .unwrap();
    refused(
        &prod,
        "points at cluster `shopmicro-prod`, but environment `dev` lives on cluster `shopmicro-dev`",
    );
    assert!(
        cluster
            .sim
            .store()
            .get(lookup("", "Namespace"), "", NS)
            .is_err(),
        "nothing was applied"
    );
}
