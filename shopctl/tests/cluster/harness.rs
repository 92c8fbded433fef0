//! The harness every cluster test shares: a simulated API server with a kubeconfig,
//! shopctl run against it (with the AWS emulator when asked), and the helpers that arrange
//! and inspect what the tests need.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::support::alerting::{Alertmanager, rendered_config};
pub use crate::support::{
    LocalPlatform, Moto, Run, Scratch, Shopctl, moto, moto_with_bucket, shopctl_with,
};
use serde_json::Value;
use shopmicro_common::testing::TestDatabase;
pub use shopmicro_common::testing::eventually;
use shopmicro_kube_sim::resources::lookup;
use shopmicro_kube_sim::selectors::LabelSelector;
use shopmicro_kube_sim::{Config, Simulator};

pub const NS: &str = "shopmicro";
pub const MONITORING: &str = "monitoring";

/// What runs in the simulated pods, for the checks that talk to services through the API
/// server's service proxy: the real services and Prometheus (a local platform), and for
/// Loki and Tempo, which cannot run on this machine (neither is packaged for it), a
/// stand-in that answers their readiness endpoint as both document (`GET /ready` → 200).
pub struct Processes {
    pub platform: LocalPlatform,
    pub stand_in: String,
    /// A real Alertmanager running dev's rendered configuration.
    pub alertmanager: Alertmanager,
    _scratch: Scratch,
}

impl Processes {
    pub async fn start() -> Self {
        let app = axum::Router::new().route("/ready", axum::routing::get(|| async { "ready" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stand_in = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let scratch = Scratch::new();
        let config = rendered_config(
            "dev",
            &[
                ("oncall", format!("{stand_in}/oncall")),
                ("tickets", format!("{stand_in}/tickets")),
            ],
        );
        let alertmanager = Alertmanager::start(&config, &scratch.path("alertmanager")).await;
        Self {
            platform: LocalPlatform::start().await,
            stand_in,
            alertmanager,
            _scratch: scratch,
        }
    }

    /// Makes the cluster's Services answer with these processes.
    pub fn serve(&self, cluster: &TestCluster) {
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
        cluster
            .sim
            .serve(MONITORING, "alertmanager", "http", &self.alertmanager.url);
    }
}

pub struct TestCluster {
    pub sim: Simulator,
    pub scratch: Scratch,
    pub kubeconfig: PathBuf,
    pub secrets: Vec<(&'static str, String)>,
}

impl TestCluster {
    pub fn start() -> Self {
        Self::start_with(Duration::from_millis(50))
    }

    /// `ready_after`: how long pods take to become ready (or Jobs to finish).
    pub fn start_with(ready_after: Duration) -> Self {
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
            "SHOPMICRO_ML_RETRAIN_TOKEN",
            "SHOPMICRO_GRAFANA_ADMIN_PASSWORD",
            "SHOPMICRO_ALERT_RECEIVER_ONCALL",
            "SHOPMICRO_ALERT_RECEIVER_TICKETS",
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
    pub fn user_in_namespaces(&self, user: &str, namespaces: &[&str]) -> String {
        self.sim
            .bind_in_namespaces(user, "cluster-admin", namespaces);
        self.sim.add_user(user, &[])
    }

    /// From now on, shopctl talks to the cluster as `token` (the kubeconfig is rewritten).
    pub fn switch_to(&self, token: &str) {
        self.sim
            .write_kubeconfig(&self.kubeconfig, token, "shopmicro-dev")
            .unwrap();
    }

    pub fn shopctl_as(&self, kubeconfig: &std::path::Path, args: &[&str]) -> Run {
        self.prepared(kubeconfig, args).run()
    }

    /// shopctl as a child process to signal or kill (its report is not checked).
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.prepared(&self.kubeconfig, args)
            .command()
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("shopctl starts")
    }

    fn prepared(&self, kubeconfig: &std::path::Path, args: &[&str]) -> Shopctl {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--kubeconfig", kubeconfig.to_str().unwrap()]);
        let vars: Vec<(&str, &str)> = self.secrets.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // Transcripts and other local state stay in the scratch, not the operator's.
        Shopctl::new(&all)
            .envs(&vars)
            .state(&self.scratch.path("state"))
    }

    /// shopctl with the AWS credential chain pinned to the emulator: never instance metadata.
    pub fn shopctl_aws(&self, moto: &Moto, args: &[&str]) -> Run {
        self.shopctl_aws_with(moto, &[], args)
    }

    /// `shopctl_aws` with variables that override its own (other credentials).
    pub fn shopctl_aws_with(&self, moto: &Moto, overrides: &[(&str, &str)], args: &[&str]) -> Run {
        self.shopctl_aws_at(moto, &self.kubeconfig, overrides, args)
    }

    /// `shopctl_aws_with` through another kubeconfig (another identity, concurrently).
    pub fn shopctl_aws_at(
        &self,
        moto: &Moto,
        kubeconfig: &std::path::Path,
        overrides: &[(&str, &str)],
        args: &[&str],
    ) -> Run {
        // Right after the subcommand, before any sub-subcommand (`backup --kubeconfig K list`).
        let mut all: Vec<&str> = vec![args[0]];
        if !["db", "infra", "kubeconfig"].contains(&args[0]) {
            all.extend(["--kubeconfig", kubeconfig.to_str().unwrap()]);
        }
        all.extend(&args[1..]);
        let secrets: Vec<(&str, &str)> =
            self.secrets.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // Terraform's working data (for `infra`, `validate --drift`) stays in the scratch.
        Shopctl::new(&all)
            .envs(&secrets)
            .state(&self.scratch.path("state"))
            .aws(moto)
            .envs(overrides)
            .run()
    }

    /// Objects of a kind in the platform's namespace, by label selector ("" for all).
    pub fn list(&self, group: &str, kind: &str, selector: &str) -> Vec<Value> {
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
    pub fn delete(&self, group: &str, kind: &str, name: &str) {
        let background = shopmicro_kube_sim::store::Propagation::Background;
        self.sim
            .store()
            .delete(lookup(group, kind), NS, name, background, false)
            .unwrap();
    }

    pub fn jobs(&self) -> Vec<Value> {
        self.list("batch", "Job", "")
    }

    pub fn shopctl(&self, args: &[&str]) -> Run {
        self.shopctl_as(&self.kubeconfig, args)
    }

    /// `shopctl <args> --output json`, which must exit with `code`.
    pub fn json(&self, args: &[&str], code: i32) -> Value {
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
    pub fn refused(&self, args: &[&str], because: &str) {
        let run = self.shopctl(args);
        assert_eq!(run.code, 2, "{args:?}\n{}\n{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains(because),
            "{args:?}: expected {because:?} in\n{}",
            run.stderr
        );
    }

    pub fn apply(&self, extra: &[&str]) -> Value {
        let mut args = vec!["apply", "--env", "dev", "--wait", "--timeout", "30s"];
        args.extend(extra);
        self.json(&args, 0)
    }

    /// Release `revision` of dev as `history --output json` shows it, if it is kept.
    pub fn release(&self, revision: u64) -> Option<Value> {
        let history = self.json(&["history", "--env", "dev"], 0);
        history["releases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["revision"] == revision)
            .cloned()
    }

    /// Release `revision` once `ready` holds for it (a run in another process moving on).
    pub fn wait_for_release(&self, revision: u64, ready: impl Fn(&Value) -> bool) -> Value {
        eventually(
            &format!("release {revision} to reach the state the test waits for"),
            Duration::from_secs(30),
            || match self.release(revision) {
                Some(record) if ready(&record) => Ok(record),
                other => Err(format!("{other:?}")),
            },
        )
    }

    pub fn get(&self, group: &str, kind: &str, name: &str) -> Option<Value> {
        self.sim.store().get(lookup(group, kind), NS, name).ok()
    }

    pub fn image(&self, deployment: &str) -> String {
        let object = self
            .get("apps", "Deployment", deployment)
            .expect("the deployment exists");
        object["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn history(&self) -> Vec<Value> {
        self.json(&["history", "--env", "dev"], 0)["releases"]
            .as_array()
            .unwrap()
            .clone()
    }
}

pub fn changes(report: &Value, change: &str) -> Vec<String> {
    report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["change"] == change)
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

pub const BACKUP_BUCKET: &str = "shopmicro-dev-backups-123456789012";

pub fn validate(cluster: &TestCluster, moto: &Moto, code: i32) -> Value {
    validate_with(cluster, moto, &[], code)
}

/// `validate --env dev --output json` with `extra` arguments, which must exit with `code`.
pub fn validate_with(cluster: &TestCluster, moto: &Moto, extra: &[&str], code: i32) -> Value {
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
pub fn check_detail(report: &Value, id: &str) -> String {
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no {id}: {report:#}"));
    check["detail"].as_str().unwrap().to_string()
}

pub fn with_status(report: &Value, status: &str) -> BTreeSet<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == status)
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

pub const STATE_BUCKET: &str = "shopmicro-dev-tfstate-123456789012";
pub const STATE_KEY: &str = "shopmicro/dev/terraform.tfstate";

/// Runs a future from a synchronous breakage inside the multi-threaded test runtime.
pub fn block<F: std::future::Future>(future: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
}

/// The emulator's keys under `prefix` in `bucket` (unsigned path-style requests).
pub async fn keys(moto: &Moto, bucket: &str, prefix: &str) -> Vec<String> {
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
pub async fn healthy(moto: &Moto, processes: &Processes) -> TestCluster {
    let cluster = TestCluster::start();
    processes.serve(&cluster);
    cluster.apply(&[]);
    assert_eq!(cluster.shopctl(&["backup", "--env", "dev"]).code, 0);
    eventually(
        "the backup Job to complete",
        Duration::from_secs(10),
        || {
            let status = &cluster.get("batch", "CronJob", "db-backup").unwrap()["status"];
            match status["lastSuccessfulTime"].is_null() {
                true => Err(status.clone()),
                false => Ok(()),
            }
        },
    );
    cloud_fixtures(moto, &cluster).await;
    cluster
}

/// The AWS side of a healthy environment, in the emulator.
pub async fn cloud_fixtures(moto: &Moto, cluster: &TestCluster) {
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

/// A real backup of `database` into the emulated bucket, as the backup Job's container
/// takes it; its id.
pub fn backed_up(cluster: &TestCluster, moto: &Moto, database: &TestDatabase) -> String {
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

pub fn replicas(cluster: &TestCluster, deployment: &str) -> Value {
    cluster.get("apps", "Deployment", deployment).unwrap()["spec"]["replicas"].clone()
}

/// Runs `command` (which creates a Job whose name starts with `job_prefix`) and, once that
/// Job exists, `container`: the test plays the Job's container, which the simulator cannot
/// run, while the Job is held running; then lets it finish. Returns the command's outcome
/// and the container's result.
pub fn while_a_job_runs<T: Send>(
    cluster: &TestCluster,
    job_prefix: &str,
    command: impl FnOnce() -> Run + Send,
    container: impl FnOnce() -> T,
) -> (Run, T) {
    cluster.sim.hold_jobs(true);
    // Only a Job the command creates counts: an earlier one with the same prefix (a
    // `backup` without --wait just before) would let the container run too early.
    let job_names = || -> BTreeSet<String> {
        cluster
            .jobs()
            .iter()
            .map(|j| j["metadata"]["name"].as_str().unwrap().to_owned())
            .filter(|name| name.starts_with(job_prefix))
            .collect()
    };
    let before = job_names();
    std::thread::scope(|scope| {
        let run = scope.spawn(command);
        eventually(
            &format!("a {job_prefix}… Job"),
            Duration::from_secs(30),
            || match job_names().is_subset(&before) {
                true => Err("none yet"),
                false => Ok(()),
            },
        );
        let played = container();
        cluster.sim.hold_jobs(false);
        (run.join().unwrap(), played)
    })
}
