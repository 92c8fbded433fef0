//! A real Alertmanager (Debian's `prometheus-alertmanager`, which the README's test command
//! installs) running an environment's rendered configuration, and a webhook receiver that
//! records what it is sent.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shopmicro_common::testing::eventually_async;

use serde_json::Value;

use super::shopctl_with;

/// `alertmanager.yml` as `env` renders it, each receiver's destination given by
/// `destinations` (receiver name → URL or key) through the secret source.
pub fn rendered_config(env: &str, destinations: &[(&str, String)]) -> String {
    let mut vars: Vec<(String, String)> = [
        "SHOPMICRO_POSTGRES_PASSWORD",
        "SHOPMICRO_CART_SIGNING_KEY",
        "SHOPMICRO_ML_RETRAIN_TOKEN",
        "SHOPMICRO_GRAFANA_ADMIN_PASSWORD",
    ]
    .iter()
    .map(|name| {
        (
            name.to_string(),
            "unused-here-but-as-long-as-any-secret-needs".to_string(),
        )
    })
    .collect();
    for (receiver, destination) in destinations {
        let variable = format!(
            "SHOPMICRO_ALERT_RECEIVER_{}",
            receiver.replace('-', "_").to_uppercase()
        );
        vars.push((variable, destination.clone()));
    }
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let run = shopctl_with(&["render", "--env", env, "--show-secrets"], &vars);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let objects = shopctl::manifest::parse_stream(env, &run.stdout).unwrap();
    let secret = objects
        .iter()
        .find(|o| {
            o.value["kind"] == "Secret" && o.value["metadata"]["name"] == "alertmanager-config"
        })
        .expect("the alertmanager-config Secret is rendered");
    secret.value["stringData"]["alertmanager.yml"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A running Alertmanager; killed when dropped.
pub struct Alertmanager {
    child: Child,
    pub url: String,
}

impl Alertmanager {
    pub async fn start(config: &str, dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("alertmanager.yml"), config).unwrap();
        let port = shopmicro_common::testing::closed_port();
        let child = Command::new("prometheus-alertmanager")
            .arg(format!(
                "--config.file={}",
                dir.join("alertmanager.yml").display()
            ))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // A single instance: no gossip port to bind.
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager runs (the README's test command installs it)");
        let alertmanager = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let ready = &format!("{}/-/ready", alertmanager.url);
        eventually_async(
            "Alertmanager to be ready",
            Duration::from_secs(30),
            || async move {
                match reqwest::get(ready).await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(r.status().to_string()),
                    Err(err) => Err(err.to_string()),
                }
            },
        )
        .await;
        alertmanager
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Records every notification POSTed to `/<receiver>`: (receiver, body).
#[derive(Clone, Default)]
pub struct Webhooks {
    pub base: String,
    received: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Webhooks {
    pub async fn start() -> Self {
        let received: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let record = received.clone();
        let app = axum::Router::new().route(
            "/{receiver}",
            axum::routing::post(
                move |axum::extract::Path(receiver): axum::extract::Path<String>,
                      axum::Json(body): axum::Json<Value>| {
                    let record = record.clone();
                    async move {
                        record.lock().unwrap().push((receiver, body));
                        "ok"
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, received }
    }

    pub fn url(&self, receiver: &str) -> String {
        format!("{}/{receiver}", self.base)
    }

    /// The alert names each receiver was notified of (firing), so far.
    pub fn firing(&self) -> Vec<(String, String, Value)> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(receiver, body)| {
                body["alerts"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|a| a["status"] == "firing")
                    .map(|a| {
                        (
                            receiver.clone(),
                            a["labels"]["alertname"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                            a,
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}
