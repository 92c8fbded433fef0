//! Benchmark: how long after a rollout becomes ready does the waiting client say so?
//!
//! The simulated API server runs in this process, so the moment its store commits the
//! Deployment status that completes the rollout is observed directly (a subscription to
//! the store's change feed, no network in between). The client under test runs as a
//! child process at the same time: `shopctl apply --wait` prints a line per workload on a
//! non-terminal stderr, and `kubectl rollout status` exits. Both instants come from this
//! process's monotonic clock. Run: `cargo bench -p shopctl --bench wait_latency`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shopctl::cluster::rollout::{Progress, judge};
use shopmicro_kube_sim::{Config, Simulator};

const ROLLOUTS: usize = 10;

fn rolled_out(object: &serde_json::Value, tag: &str) -> bool {
    object["kind"] == "Deployment"
        && object["metadata"]["name"] == "backend"
        && object["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .is_some_and(|i| i.ends_with(&format!(":{tag}")))
        && judge(object) == Progress::Ready
}

/// Runs `client` for a new backend tag and returns (ready committed, client reported).
fn measure(sim: &Simulator, tag: &str, client: impl FnOnce(&str) -> Instant) -> Duration {
    let (_, mut changes) = sim.store().watch_from(None).expect("a change feed");
    let tag_owned = tag.to_string();
    let watcher = std::thread::spawn(move || {
        loop {
            let event = changes.blocking_recv().expect("the store keeps running");
            if rolled_out(&event.object, &tag_owned) {
                return Instant::now();
            }
        }
    });
    let reported = client(tag);
    let ready = watcher
        .join()
        .expect("the watcher ends when the rollout completes");
    reported.saturating_duration_since(ready)
}

/// The secrets dev's apply needs, made up per run: nothing secret-looking is committed.
const SECRETS: [&str; 6] = [
    "SHOPMICRO_POSTGRES_PASSWORD",
    "SHOPMICRO_CART_SIGNING_KEY",
    "SHOPMICRO_ML_RETRAIN_TOKEN",
    "SHOPMICRO_GRAFANA_ADMIN_PASSWORD",
    "SHOPMICRO_ALERT_RECEIVER_ONCALL",
    "SHOPMICRO_ALERT_RECEIVER_TICKETS",
];

fn shopctl(args: &[&str], kubeconfig: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shopctl"));
    command
        .args(args)
        .args(["--kubeconfig", kubeconfig])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    for name in SECRETS {
        command.env(
            name,
            format!("bench-{}-{}", std::process::id(), "x".repeat(32)),
        );
    }
    command
}

fn summary(name: &str, mut delays: Vec<Duration>) {
    delays.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name}: ready → reported over {ROLLOUTS} rollouts: median {:.1} ms, min {:.1} ms, max {:.1} ms",
        ms(delays[delays.len() / 2]),
        ms(delays[0]),
        ms(delays[delays.len() - 1])
    );
}

fn main() {
    let config = Config {
        ready_after: Duration::from_millis(200),
        anonymous: true,
    };
    let sim =
        Simulator::start("127.0.0.1:0".parse().unwrap(), config).expect("the simulator starts");
    // kubectl (which sends no token over plain HTTP) is let in as cluster-admin.
    sim.make_anonymous_admin();
    let dir = std::env::temp_dir().join(format!("wait-latency-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig, sim.admin_token(), "shopmicro-dev")
        .unwrap();
    let anonymous = dir.join("anonymous");
    std::fs::write(
        &anonymous,
        shopmicro_kube_sim::kubeconfig(&sim.url(), "", "shopmicro-dev")
            .replace("    token: \n", "    {}\n"),
    )
    .unwrap();
    let kubeconfig = kubeconfig.to_str().unwrap().to_string();
    assert!(
        shopctl(&["apply", "--env", "dev", "--wait"], &kubeconfig)
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    );

    let shopctl_wait = |tag: &str| {
        let set = format!("services.backend.tag={tag}");
        let mut child = shopctl(
            &["apply", "--env", "dev", "--set", &set, "--wait"],
            &kubeconfig,
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        let mut reported = None;
        for line in BufReader::new(child.stderr.take().unwrap()).lines() {
            if line
                .unwrap()
                .starts_with("Deployment/shopmicro/backend ready")
            {
                reported.get_or_insert_with(Instant::now);
            }
        }
        assert!(child.wait().unwrap().success());
        reported.expect("shopctl reported the backend ready")
    };
    let delays = (0..ROLLOUTS)
        .map(|i| measure(&sim, &format!("shopctl-{i}"), shopctl_wait))
        .collect();
    summary("shopctl apply --wait", delays);

    let anonymous = anonymous.to_str().unwrap().to_string();
    let kubectl_wait = |tag: &str| {
        let set = format!("services.backend.tag={tag}");
        assert!(
            shopctl(&["apply", "--env", "dev", "--set", &set], &kubeconfig)
                .stdout(Stdio::null())
                .status()
                .unwrap()
                .success()
        );
        let status = Command::new("kubectl")
            .args([
                "--kubeconfig",
                &anonymous,
                "-n",
                "shopmicro",
                "rollout",
                "status",
                "deployment/backend",
                "--timeout=60s",
            ])
            .stdout(Stdio::null())
            .status()
            .expect("kubectl is installed");
        let reported = Instant::now();
        assert!(status.success());
        reported
    };
    let delays = (0..ROLLOUTS)
        .map(|i| measure(&sim, &format!("kubectl-{i}"), kubectl_wait))
        .collect();
    summary("kubectl rollout status", delays);
    let _ = std::fs::remove_dir_all(&dir);
}
