//! Cluster operations through the real `shopctl` binary against the simulated Kubernetes
//! API server (`shopmicro-kube-sim`, on loopback): apply, wait, prune, history, rollback,
//! status, and the ways access fails. Simulated, not a real cluster: what is proven is
//! shopctl's side of the protocol and its decisions.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use shopmicro_common::testing::TestDatabase;
use shopmicro_kube_sim::resources::lookup;
use shopmicro_kube_sim::selectors::LabelSelector;
use shopmicro_kube_sim::store::{Part, PatchKind, WriteOptions};
use shopmicro_kube_sim::{Config, Simulator};
use support::{LocalPlatform, Moto, Run, Scratch, moto, moto_with_bucket, shopctl_with};

const NS: &str = "shopmicro";
const MONITORING: &str = "monitoring";

/// What runs in the simulated pods, for the checks that talk to services through the API
/// server's service proxy: the real services and Prometheus (a local platform), and for
/// Loki and Tempo, which cannot run on this machine (neither is packaged for it), a
/// stand-in that answers their readiness endpoint as both document (`GET /ready` → 200).
struct Processes {
    platform: LocalPlatform,
    stand_in: String,
}

impl Processes {
    async fn start() -> Self {
        let app = axum::Router::new().route("/ready", axum::routing::get(|| async { "ready" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stand_in = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            platform: LocalPlatform::start().await,
            stand_in,
        }
    }

    /// Makes the cluster's Services answer with these processes.
    fn serve(&self, cluster: &TestCluster) {
        for service in ["frontend", "backend", "ml"] {
            let url = self.platform.url(service);
            cluster.sim.serve(NS, service, service, url);
        }
        let prometheus = self.platform.url("prometheus");
        cluster
            .sim
            .serve(MONITORING, "prometheus", "http", prometheus);
        for service in ["loki", "tempo"] {
            cluster
                .sim
                .serve(MONITORING, service, "http", &self.stand_in);
        }
    }
}

struct TestCluster {
    sim: Simulator,
    scratch: Scratch,
    kubeconfig: PathBuf,
    secrets: Vec<(&'static str, String)>,
}

impl TestCluster {
    fn start() -> Self {
        Self::start_with(Duration::from_millis(50))
    }

    /// `ready_after`: how long pods take to become ready (or Jobs to finish).
    fn start_with(ready_after: Duration) -> Self {
        let sim = Simulator::start(
            "127.0.0.1:0".parse().unwrap(),
            Config {
                ready_after,
                ..Config::default()
            },
        )
        .expect("the simulator starts");
        let scratch = Scratch::new();
        let kubeconfig = scratch.path("kubeconfig");
        sim.write_kubeconfig(&kubeconfig, sim.admin_token(), "shopmicro-dev")
            .unwrap();
        // Generated per run: nothing secret-looking is committed.
        let secrets = [
            "SHOPMICRO_POSTGRES_PASSWORD",
            "SHOPMICRO_CART_SIGNING_KEY",
            "SHOPMICRO_GRAFANA_ADMIN_PASSWORD",
        ]
        .into_iter()
        .map(|name| (name, format!("test-{}", uuid::Uuid::new_v4().simple())))
        .collect();
        Self {
            sim,
            scratch,
            kubeconfig,
            secrets,
        }
    }

    /// A user who may do anything inside `namespaces` and nothing cluster-scoped:
    /// `cluster-admin` bound by a RoleBinding in each.
    fn user_in_namespaces(&self, user: &str, namespaces: &[&str]) -> String {
        self.sim
            .bind_in_namespaces(user, "cluster-admin", namespaces);
        self.sim.add_user(user, &[])
    }

    fn shopctl_as(&self, kubeconfig: &std::path::Path, args: &[&str]) -> Run {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--kubeconfig", kubeconfig.to_str().unwrap()]);
        let vars: Vec<(&str, &str)> = self.secrets.iter().map(|(k, v)| (*k, v.as_str())).collect();
        shopctl_with(&all, &vars)
    }

    /// shopctl with the AWS credential chain pinned to the emulator: never instance metadata.
    fn shopctl_aws(&self, moto: &Moto, args: &[&str]) -> Run {
        self.shopctl_aws_with(moto, &[], args)
    }

    /// `shopctl_aws` with variables that override its own (other credentials).
    fn shopctl_aws_with(&self, moto: &Moto, overrides: &[(&str, &str)], args: &[&str]) -> Run {
        // Right after the subcommand, before any sub-subcommand (`backup --kubeconfig K list`).
        let mut all: Vec<&str> = vec![args[0]];
        if !["db", "infra"].contains(&args[0]) {
            all.extend(["--kubeconfig", self.kubeconfig.to_str().unwrap()]);
        }
        all.extend(&args[1..]);
        let mut vars: Vec<(&str, &str)> =
            self.secrets.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // Terraform's working data (for `infra`, `validate --drift`) stays in the scratch.
        let state = self.scratch.path("state");
        vars.extend([
            ("SHOPCTL_STATE_DIR", state.to_str().unwrap()),
            ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]);
        vars.extend(overrides);
        shopctl_with(&all, &vars)
    }

    /// Objects of a kind in the platform's namespace, by label selector ("" for all).
    fn list(&self, group: &str, kind: &str, selector: &str) -> Vec<Value> {
        let selector = LabelSelector::parse(selector).unwrap();
        self.sim
            .store()
            .list(
                lookup(group, kind),
                Some(NS),
                &selector,
                &Default::default(),
            )
            .0
    }

    /// Deletes an object of the platform's namespace behind shopctl's back.
    fn delete(&self, group: &str, kind: &str, name: &str) {
        let background = shopmicro_kube_sim::store::Propagation::Background;
        self.sim
            .store()
            .delete(lookup(group, kind), NS, name, background, false)
            .unwrap();
    }

    fn jobs(&self) -> Vec<Value> {
        self.list("batch", "Job", "")
    }

    fn shopctl(&self, args: &[&str]) -> Run {
        self.shopctl_as(&self.kubeconfig, args)
    }

    /// `shopctl <args> --output json`, which must exit with `code`.
    fn json(&self, args: &[&str], code: i32) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let run = self.shopctl(&all);
        assert_eq!(
            run.code, code,
            "shopctl {args:?}\nstdout:\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        );
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
    }

    /// Runs shopctl, insisting it refuses (exit 2) and says `because` on stderr.
    fn refused(&self, args: &[&str], because: &str) {
        let run = self.shopctl(args);
        assert_eq!(run.code, 2, "{args:?}\n{}\n{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains(because),
            "{args:?}: expected {because:?} in\n{}",
            run.stderr
        );
    }

    fn apply(&self, extra: &[&str]) -> Value {
        let mut args = vec!["apply", "--env", "dev", "--wait", "--timeout", "30s"];
        args.extend(extra);
        self.json(&args, 0)
    }

    fn get(&self, group: &str, kind: &str, name: &str) -> Option<Value> {
        self.sim.store().get(lookup(group, kind), NS, name).ok()
    }

    fn image(&self, deployment: &str) -> String {
        let object = self
            .get("apps", "Deployment", deployment)
            .expect("the deployment exists");
        object["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn history(&self) -> Vec<Value> {
        self.json(&["history", "--env", "dev"], 0)["releases"]
            .as_array()
            .unwrap()
            .clone()
    }
}

fn changes(report: &Value, change: &str) -> Vec<String> {
    report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["change"] == change)
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

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
            .contains("configured (dry run)   Secret/shopmicro/"),
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

const BACKUP_BUCKET: &str = "shopmicro-dev-backups-123456789012";

/// The Job is made as `kubectl create job --from=cronjob/db-backup` makes it. The test plays
/// the Job's container (which runs `shopctl db backup` inside the cluster) by taking a real
/// backup of a real database into the emulated bucket while the simulated Job runs.
#[tokio::test(flavor = "multi_thread")]
async fn backup_runs_the_cron_job_as_a_job_and_reports_the_backup_it_wrote() {
    let moto = moto_with_bucket(BACKUP_BUCKET).await;
    let database = TestDatabase::create().await;
    let cluster = TestCluster::start_with(Duration::from_secs(4));
    assert_eq!(cluster.shopctl(&["apply", "--env", "dev"]).code, 0);

    let triggered = std::thread::scope(|scope| {
        let backup = scope.spawn(|| {
            cluster.shopctl_aws(
                &moto,
                &["backup", "--env", "dev", "--wait", "--timeout", "60s"],
            )
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while cluster.jobs().is_empty() {
            assert!(std::time::Instant::now() < deadline, "no Job was created");
            std::thread::sleep(Duration::from_millis(20));
        }
        let taken = backed_up(&cluster, &moto, &database);
        (backup.join().unwrap(), taken)
    });
    let (run, backup_id) = triggered;

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
    let listed = cluster.shopctl_aws(&moto, &["backup", "--env", "dev", "list"]);
    assert!(
        listed.stdout.contains(&backup_id),
        "{}\n{}",
        listed.stdout,
        listed.stderr
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

fn validate(cluster: &TestCluster, moto: &Moto, code: i32) -> Value {
    validate_with(cluster, moto, &[], code)
}

/// `validate --env dev --output json` with `extra` arguments, which must exit with `code`.
fn validate_with(cluster: &TestCluster, moto: &Moto, extra: &[&str], code: i32) -> Value {
    let mut args = vec![
        "validate",
        "--env",
        "dev",
        "--timeout",
        "20s",
        "--output",
        "json",
    ];
    args.extend(extra);
    let run = cluster.shopctl_aws(moto, &args);
    assert_eq!(
        run.code, code,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    serde_json::from_str(&run.stdout).unwrap()
}

/// A check's detail in a validate report.
fn check_detail(report: &Value, id: &str) -> String {
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no {id}: {report:#}"));
    check["detail"].as_str().unwrap().to_string()
}

fn with_status(report: &Value, status: &str) -> BTreeSet<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == status)
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

const STATE_BUCKET: &str = "shopmicro-dev-tfstate-123456789012";
const STATE_KEY: &str = "shopmicro/dev/terraform.tfstate";

/// Runs a future from a synchronous breakage inside the multi-threaded test runtime.
fn block<F: std::future::Future>(future: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
}

/// The emulator's keys under `prefix` in `bucket` (unsigned path-style requests).
async fn keys(moto: &Moto, bucket: &str, prefix: &str) -> Vec<String> {
    let url = format!("{}/{bucket}?list-type=2&prefix={prefix}", moto.endpoint);
    let listing = reqwest::get(url).await.unwrap().text().await.unwrap();
    listing
        .split("<Key>")
        .skip(1)
        .filter_map(|rest| rest.split("</Key>").next())
        .map(str::to_string)
        .collect()
}

/// A platform as healthy as the simulator and the emulator can make it: applied, rolled
/// out, its Services answered by `processes`, backed up by its CronJob; Terraform state in
/// place and unlocked; a verified backup of a real database in the bucket.
async fn healthy(moto: &Moto, processes: &Processes) -> TestCluster {
    let cluster = TestCluster::start();
    processes.serve(&cluster);
    cluster.apply(&[]);
    assert_eq!(cluster.shopctl(&["backup", "--env", "dev"]).code, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while cluster.get("batch", "CronJob", "db-backup").unwrap()["status"]["lastSuccessfulTime"]
        .is_null()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the backup Job did not complete"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    cloud_fixtures(moto, &cluster).await;
    cluster
}

/// The AWS side of a healthy environment, in the emulator.
async fn cloud_fixtures(moto: &Moto, cluster: &TestCluster) {
    let http = reqwest::Client::new();
    for path in [
        STATE_BUCKET.to_string(),
        BACKUP_BUCKET.to_string(),
        format!("{STATE_BUCKET}/{STATE_KEY}"),
    ] {
        let body = if path.contains('/') { "{}" } else { "" };
        let status = http
            .put(format!("{}/{path}", moto.endpoint))
            .body(body)
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "PUT {path}: {status}");
    }
    moto.lock_table("shopmicro-dev-tflock").await;
    let database = TestDatabase::create().await;
    let location = format!("s3://{BACKUP_BUCKET}/postgres/");
    for step in [
        [
            "db",
            "backup",
            "--database-url",
            database.url(),
            "--to",
            &location,
        ],
        [
            "db",
            "verify",
            "--database-url",
            database.url(),
            "--from",
            &location,
        ],
    ] {
        let run = cluster.shopctl_aws(moto, &step);
        assert_eq!(run.code, 0, "{step:?}: {}", run.stderr);
    }
}

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
    ] {
        assert!(passed.contains(id), "{id} should pass: {report:#}");
    }
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
    let stack = support::fixture("terraform/stack");
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

/// A real backup of `database` into the emulated bucket, as the backup Job's container
/// takes it; its id.
fn backed_up(cluster: &TestCluster, moto: &Moto, database: &TestDatabase) -> String {
    let location = format!("s3://{BACKUP_BUCKET}/postgres/");
    let taken = cluster.shopctl_aws(
        moto,
        &[
            "db",
            "backup",
            "--database-url",
            database.url(),
            "--to",
            &location,
        ],
    );
    assert_eq!(taken.code, 0, "{}", taken.stderr);
    taken.stdout.trim().to_string()
}

/// `backup verify` on a cluster runs the CronJob's verify step as a Job; here the test
/// does what that container does (a real `db verify` against the emulated bucket).
#[tokio::test(flavor = "multi_thread")]
async fn backup_verify_runs_the_verify_step_as_a_job_and_reports_what_it_recorded() {
    let moto = moto_with_bucket(BACKUP_BUCKET).await;
    let database = TestDatabase::create().await;
    // The simulated Job runs 6 s: time for the test to do its container's work.
    let cluster = TestCluster::start_with(Duration::from_secs(6));
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

    let run = std::thread::scope(|scope| {
        let run = scope.spawn(|| verify(&backup));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while verify_jobs().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "no verify Job was created"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
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
        run.join().unwrap()
    });
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
        "database-credentials"
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

fn replicas(cluster: &TestCluster, deployment: &str) -> Value {
    cluster.get("apps", "Deployment", deployment).unwrap()["spec"]["replicas"].clone()
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
    assert!(
        pod["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "DATABASE_URL"),
        "the restore step has the database's credentials: {pod}"
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
