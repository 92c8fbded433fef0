//! The observability stack: the rendered Prometheus configuration and rules pass promtool,
//! alerts are tested and documented, dashboards are consistent, and — against the real
//! service binaries — every dashboard query and recording rule returns data from a live
//! Prometheus, and one product-page request is one trace across all three services.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use shopctl::manifest::{Manifest, parse_stream};
use shopmicro_common::testing::{TestDatabase, redis_url};
use support::live::{Process, Prometheus, spawn_service};
use support::{Scratch, shopctl, workspace_root};

fn rendered(env: &str) -> Vec<Manifest> {
    let run = shopctl(&["render", "--env", env]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    parse_stream(env, &run.stdout).unwrap()
}

fn config_map(objects: &[Manifest], name: &str) -> BTreeMap<String, String> {
    let object = objects
        .iter()
        .find(|o| o.kind() == "ConfigMap" && o.name() == name)
        .unwrap_or_else(|| panic!("no ConfigMap {name}"));
    serde_json::from_value(object.value["data"].clone()).unwrap()
}

/// The rendered Prometheus configuration and rules, laid out as the pod mounts them.
fn write_prometheus_files(objects: &[Manifest], dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    for (name, text) in config_map(objects, "prometheus-rules") {
        std::fs::write(dir.join("rules").join(name), text).unwrap();
    }
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        &config_map(objects, "prometheus-config")["prometheus.yml"],
    )
    .unwrap();
    config
}

/// Debian builds Prometheus and promtool without Kubernetes service discovery, so its
/// promtool rejects `kubernetes_sd_configs`. Everything else is checked as rendered: the
/// discovery block alone becomes a static target (relabelling stays and is validated), and
/// the discovery settings are asserted here instead.
fn without_kubernetes_discovery(config: &str, namespace: &str) -> String {
    let mut config: Value = serde_saphyr::from_str(config).unwrap();
    for scrape in config["scrape_configs"].as_array_mut().unwrap() {
        let Some(discovery) = scrape
            .as_object_mut()
            .unwrap()
            .remove("kubernetes_sd_configs")
        else {
            continue;
        };
        assert_eq!(discovery[0]["role"], "pod");
        assert_eq!(
            discovery[0]["namespaces"]["names"],
            serde_json::json!([namespace])
        );
        scrape["static_configs"] = serde_json::json!([{"targets": ["pod-address:8080"]}]);
    }
    serde_saphyr::to_string(&config).unwrap()
}

fn promtool(args: &[&str]) -> (bool, String) {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(workspace_root())
        .output()
        .expect("promtool is installed (Debian prometheus; the README's test command installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn promtool_accepts_the_rendered_prometheus_configuration_and_rules() {
    for env in ["local", "prod"] {
        let scratch = Scratch::new();
        let config = write_prometheus_files(&rendered(env), &scratch.0);
        let checkable =
            without_kubernetes_discovery(&std::fs::read_to_string(&config).unwrap(), "shopmicro");
        std::fs::write(&config, checkable).unwrap();
        let (ok, output) = promtool(&["check", "config", config.to_str().unwrap()]);
        assert!(ok, "{env}: {output}");
        assert!(
            output.contains("SUCCESS: 19 rules found") || output.matches("SUCCESS").count() >= 3,
            "{output}"
        );
        let rules: Vec<String> = ["slo.yaml", "alerts.yaml"]
            .iter()
            .map(|f| scratch.path(&format!("rules/{f}")).display().to_string())
            .collect();
        let mut args = vec!["check", "rules"];
        args.extend(rules.iter().map(String::as_str));
        let (ok, output) = promtool(&args);
        assert!(ok, "{env}: {output}");
    }
}

/// The labels the recording rules group by come from the pods: Prometheus copies each
/// service pod's `app.kubernetes.io/name` to `service` and `shopmicro.io/track` to
/// `track`, and every service pod carries both.
#[test]
fn the_service_and_track_labels_the_rules_use_are_copied_from_labels_every_pod_has() {
    let objects = rendered("prod");
    let config: Value =
        serde_saphyr::from_str(&config_map(&objects, "prometheus-config")["prometheus.yml"])
            .unwrap();
    let pods_job = config["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|job| job["job_name"] == "shopmicro-pods")
        .expect("the pod scrape job");
    let copied = |target: &str| {
        pods_job["relabel_configs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|rule| rule["target_label"] == target)
            .and_then(|rule| rule["source_labels"][0].as_str())
            .and_then(|source| source.strip_prefix("__meta_kubernetes_pod_label_"))
            .unwrap_or_else(|| panic!("no pod label is copied to `{target}`"))
            .to_owned()
    };
    // Prometheus turns a label's name into a meta label by replacing every character
    // that is not a letter, digit or underscore with an underscore.
    let sanitised = |label: &str| label.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
    for name in ["frontend", "backend", "ml"] {
        let deployment = objects
            .iter()
            .find(|o| o.kind() == "Deployment" && o.name() == name)
            .unwrap();
        let labels = deployment.value["spec"]["template"]["metadata"]["labels"]
            .as_object()
            .unwrap();
        for (target, expected) in [("service", name), ("track", "stable")] {
            let source = copied(target);
            let (_, value) = labels
                .iter()
                .find(|(label, _)| sanitised(label) == source)
                .unwrap_or_else(|| panic!("{name}'s pods have no label for `{target}` ({source})"));
            assert_eq!(value, expected, "{name}: {target}");
        }
    }
}

#[test]
fn alert_unit_tests_pass_in_promtool() {
    let (ok, output) = promtool(&[
        "test",
        "rules",
        "templates/observability/rules-tests/alerts_test.yaml",
    ]);
    assert!(ok && output.contains("SUCCESS"), "{output}");
}

#[test]
fn the_rules_in_the_cluster_are_the_tested_rule_files() {
    let rules = config_map(&rendered("prod"), "prometheus-rules");
    for file in ["slo.yaml", "alerts.yaml"] {
        let source = std::fs::read_to_string(
            workspace_root()
                .join("templates/observability/rules")
                .join(file),
        )
        .unwrap();
        assert_eq!(rules[file], source, "{file}");
    }
}

fn alert_rules() -> Vec<Value> {
    let text =
        std::fs::read_to_string(workspace_root().join("templates/observability/rules/alerts.yaml"))
            .unwrap();
    let rules: Value = serde_saphyr::from_str(&text).unwrap();
    rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .collect()
}

#[test]
fn every_alert_has_a_summary_a_live_description_a_severity_and_a_runbook_that_exists() {
    let alerts = alert_rules();
    assert!(alerts.len() >= 5);
    for alert in alerts {
        let name = alert["alert"].as_str().unwrap();
        assert!(
            alert["annotations"]["summary"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{name}"
        );
        assert!(
            alert["annotations"]["description"]
                .as_str()
                .unwrap()
                .contains("$value"),
            "{name}: description shows the current value"
        );
        assert!(
            matches!(
                alert["labels"]["severity"].as_str(),
                Some("critical" | "warning")
            ),
            "{name}"
        );
        let url = alert["annotations"]["runbook_url"].as_str().unwrap();
        let path = url
            .split("/blob/main/")
            .nth(1)
            .unwrap_or_else(|| panic!("{name}: {url} is not a repository link"));
        assert!(
            path.starts_with("runbooks/") && workspace_root().join(path).is_file(),
            "{name}: {path} does not exist"
        );
    }
}

/// Every expression a dashboard panel sends to `uid`.
fn dashboard_queries(objects: &[Manifest], uid: &str) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for (file, json) in config_map(objects, "grafana-dashboards") {
        let dashboard: Value =
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("{file} is not JSON: {e}"));
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                if target["datasource"]["uid"] == uid
                    && let Some(expr) = target["expr"].as_str()
                {
                    queries.push((format!("{file}: {}", panel["title"]), expr.to_owned()));
                }
            }
        }
    }
    queries
}

#[test]
fn dashboards_are_valid_and_every_panel_uses_a_provisioned_datasource() {
    let objects = rendered("prod");
    let provisioning = config_map(&objects, "grafana-provisioning");
    let datasources: Value = serde_saphyr::from_str(&provisioning["datasources.yaml"]).unwrap();
    let uids: BTreeSet<&str> = datasources["datasources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["uid"].as_str().unwrap())
        .collect();
    assert_eq!(uids, BTreeSet::from(["loki", "prometheus", "tempo"]));

    let mut titles = BTreeSet::new();
    for (file, json) in config_map(&objects, "grafana-dashboards") {
        let dashboard: Value = serde_json::from_str(&json).unwrap();
        titles.insert(dashboard["title"].as_str().unwrap().to_owned());
        for panel in dashboard["panels"].as_array().unwrap() {
            let used = std::iter::once(&panel["datasource"]).chain(
                panel["targets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| &t["datasource"]),
            );
            for datasource in used {
                let uid = datasource["uid"].as_str().unwrap_or_default();
                assert!(
                    uids.contains(uid),
                    "{file}: panel {} uses unknown datasource `{uid}`",
                    panel["title"]
                );
            }
        }
    }
    for expected in [
        "ShopMicro / Platform overview",
        "ShopMicro / Backend service health",
        "ShopMicro / Logs and trace correlation",
    ] {
        assert!(titles.contains(expected), "missing dashboard {expected}");
    }
    // Logs link to traces and traces to logs.
    let loki = datasources["datasources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["uid"] == "loki")
        .unwrap();
    assert_eq!(
        loki["jsonData"]["derivedFields"][0]["datasourceUid"],
        "tempo"
    );
    let tempo = datasources["datasources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["uid"] == "tempo")
        .unwrap();
    assert_eq!(tempo["jsonData"]["tracesToLogsV2"]["datasourceUid"], "loki");
}

#[test]
fn services_export_traces_to_tempo_where_the_environment_says() {
    let objects = rendered("prod");
    for service in ["frontend", "backend", "ml"] {
        let config = config_map(&objects, &format!("{service}-config"));
        assert_eq!(
            config["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://tempo.monitoring.svc:4318",
            "{service}"
        );
    }
    let local = rendered("local");
    assert!(!config_map(&local, "backend-config").contains_key("OTEL_EXPORTER_OTLP_ENDPOINT"));
}

// --- live: the real binaries ---------------------------------------------------------------

struct Platform {
    services: HashMap<&'static str, Process>,
    _database: TestDatabase,
}

impl Platform {
    /// ml, backend (which migrates and seeds), frontend — with OTLP export when given.
    async fn start(otlp: Option<&str>) -> Self {
        let database = TestDatabase::create().await;
        let mut common = vec![("SHUTDOWN_DEADLINE_MS", "2000".to_owned())];
        if let Some(endpoint) = otlp {
            common.push(("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.to_owned()));
            // Export within a fraction of a second instead of the default five.
            common.push(("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()));
        }
        let with = |extra: Vec<(&'static str, String)>| [common.clone(), extra].concat();
        let retrain_token = uuid::Uuid::new_v4().simple().to_string();
        let ml = spawn_service(
            "ml",
            &with(vec![
                ("DATABASE_URL", database.url().to_owned()),
                ("TRAINING_RETRY_MS", "200".to_owned()),
                ("ML_RETRAIN_TOKEN", retrain_token.clone()),
            ]),
        );
        let backend = spawn_service(
            "backend",
            &with(vec![
                ("DATABASE_URL", database.url().to_owned()),
                ("REDIS_URL", redis_url()),
                (
                    "CACHE_PREFIX",
                    format!("test:{}:", uuid::Uuid::new_v4().simple()),
                ),
                ("ML_URL", format!("http://127.0.0.1:{}", ml.port)),
                ("ML_TIMEOUT_MS", "2000".to_owned()),
            ]),
        );
        // The backend has seeded the catalogue by now: train on it.
        let retrained = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/model/retrain", ml.port))
            .bearer_auth(&retrain_token)
            .send()
            .await
            .unwrap();
        assert_eq!(retrained.status().as_u16(), 200);
        let frontend = spawn_service(
            "frontend",
            &with(vec![(
                "BACKEND_URL",
                format!("http://127.0.0.1:{}", backend.port),
            )]),
        );
        Self {
            services: HashMap::from([("ml", ml), ("backend", backend), ("frontend", frontend)]),
            _database: database,
        }
    }

    fn url(&self, service: &str, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.services[service].port)
    }

    /// Shopping traffic with some failures: browsing, searching, a missing page, an order,
    /// an order beyond stock, malformed requests.
    async fn drive_traffic(&self) {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        for round in 0..3 {
            for path in [
                "/",
                "/?q=coffee",
                "/?category=books",
                "/products/1",
                "/products/2",
                "/products/999999",
                "/cart",
            ] {
                http.get(self.url("frontend", path)).send().await.unwrap();
            }
            let order = serde_json::json!({"items": [{"product_id": 3 + round, "quantity": 1}]});
            let placed = http
                .post(self.url("backend", "/orders"))
                .json(&order)
                .send()
                .await
                .unwrap();
            assert_eq!(placed.status().as_u16(), 201);
            let too_many = serde_json::json!({"items": [{"product_id": 1, "quantity": 1000}]});
            http.post(self.url("backend", "/orders"))
                .json(&too_many)
                .send()
                .await
                .unwrap();
            http.post(self.url("backend", "/orders"))
                .body("{broken")
                .header("content-type", "application/json")
                .send()
                .await
                .unwrap();
        }
    }
}

fn live_prometheus_config(platform: &Platform, rules_dir: &Path, dir: &Path) -> PathBuf {
    // The rendered configuration discovers pods through Kubernetes; here the same three
    // services' admin ports are static targets with the labels the relabelling would
    // give them (the test below holds the relabelling to the pods' labels).
    let targets: String = ["frontend", "backend", "ml"]
        .iter()
        .map(|name| format!(
            "      - targets: ['127.0.0.1:{}']\n        labels: {{service: {name}, namespace: shopmicro, track: stable}}\n",
            platform.services[name].admin_port
        ))
        .collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}/*.yaml\nscrape_configs:\n  - job_name: shopmicro\n    static_configs:\n{targets}",
        rules_dir.display()
    );
    let path = dir.join("live.yml");
    std::fs::write(&path, config).unwrap();
    path
}

async fn query(http: &reqwest::Client, base: &str, expr: &str) -> Result<Vec<Value>, String> {
    let response = http
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    if body["status"] != "success" {
        return Err(body.to_string());
    }
    Ok(body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_dashboard_query_and_recording_rule_returns_data_from_a_live_prometheus() {
    let platform = Platform::start(None).await;
    let objects = rendered("prod");
    let scratch = Scratch::new();
    write_prometheus_files(&objects, &scratch.0);
    // Same expressions; evaluated every second instead of every 30 so the test is quick.
    let rules_dir = scratch.path("rules");
    for file in ["slo.yaml", "alerts.yaml"] {
        let path = rules_dir.join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("interval: 30s", "interval: 1s");
        std::fs::write(path, text).unwrap();
    }
    let config = live_prometheus_config(&platform, &rules_dir, &scratch.0);
    let prometheus = Prometheus::start(
        &config,
        &scratch.path("data"),
        &["--enable-feature=exemplar-storage"],
    );
    let base = prometheus.url.clone();
    platform.drive_traffic().await;

    let mut expressions: Vec<(String, String)> = dashboard_queries(&objects, "prometheus")
        .into_iter()
        .map(|(panel, expr)| {
            (
                panel,
                expr.replace("$__rate_interval", "1m")
                    .replace("$__interval", "1m"),
            )
        })
        .collect();
    let rules: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(rules_dir.join("slo.yaml")).unwrap())
            .unwrap();
    for rule in rules["groups"][0]["rules"].as_array().unwrap() {
        let record = rule["record"].as_str().unwrap();
        expressions.push((format!("recording rule {record}"), record.to_owned()));
    }
    assert!(expressions.len() >= 30, "{}", expressions.len());

    // Scrapes and rule evaluations happen every second: wait for each to show data, with
    // a deadline, and keep the traffic going so rates stay non-empty.
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut missing = expressions.clone();
    while !missing.is_empty() && Instant::now() < deadline {
        platform.drive_traffic().await;
        let mut still = Vec::new();
        for (what, expr) in missing {
            match query(&http, &base, &expr).await {
                Ok(result) if !result.is_empty() => {}
                _ => still.push((what, expr)),
            }
        }
        missing = still;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        missing.is_empty(),
        "queries with no data after 60 s (a panel querying a metric nobody emits?):\n{missing:#?}"
    );

    // All three services were scraped under the labels the rules rely on.
    let up =
        series_of_every_service(&platform, &http, &base, "up{namespace=\"shopmicro\"} == 1").await;
    assert_eq!(up.len(), 3, "{up:?}");
    // And the per-track rules keep the track apart: one stable series per service.
    let stable = series_of_every_service(
        &platform,
        &http,
        &base,
        "service_track:http_requests:rate5m{track=\"stable\"}",
    )
    .await;
    assert_eq!(stable.len(), 3, "{stable:?}");
}

/// `expr`'s series once there is one per service, or what it has after 30 s. An expression
/// answers as soon as one service has data (a rate, two scrapes of it), so waiting for any
/// answer does not wait for all three.
async fn series_of_every_service(
    platform: &Platform,
    http: &reqwest::Client,
    base: &str,
    expr: &str,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let series = query(http, base, expr).await.unwrap();
        if series.len() >= 3 || Instant::now() >= deadline {
            return series;
        }
        platform.drive_traffic().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

// --- live: one trace across three services ---------------------------------------------------

#[derive(Debug, Clone)]
struct ReceivedSpan {
    service: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
}

async fn otlp_receiver() -> (String, Arc<Mutex<Vec<ReceivedSpan>>>) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    let spans: Arc<Mutex<Vec<ReceivedSpan>>> = Arc::default();
    let store = Arc::clone(&spans);
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let store = Arc::clone(&store);
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("valid OTLP protobuf");
                let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
                for resource_spans in request.resource_spans {
                    let service = resource_spans
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|a| a.key == "service.name")
                        .and_then(|a| a.value.as_ref())
                        .and_then(|v| match &v.value {
                            Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => Some(s.clone()),
                            _ => None,
                        })
                        .unwrap_or_default();
                    for scope in resource_spans.scope_spans {
                        for span in scope.spans {
                            store.lock().unwrap().push(ReceivedSpan {
                                service: service.clone(),
                                trace_id: hex(&span.trace_id),
                                span_id: hex(&span.span_id),
                                parent_span_id: hex(&span.parent_span_id),
                                name: span.name,
                            });
                        }
                    }
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, spans)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_product_page_is_one_trace_across_frontend_backend_and_ml_and_their_logs() {
    let (receiver, spans) = otlp_receiver().await;
    let platform = Platform::start(Some(&receiver)).await;
    let trace_id = format!("{:032x}", uuid::Uuid::new_v4().as_u128());

    let page = reqwest::Client::new()
        .get(platform.url("frontend", "/products/1"))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);

    let ours = || -> Vec<ReceivedSpan> {
        spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect()
    };
    // Spans arrive in export batches from three processes: wait for every span the
    // assertions below need, not just for the first of each service.
    let complete = |spans: &[ReceivedSpan]| {
        let has = |service: &str, name: &str| {
            spans
                .iter()
                .any(|s| s.service == service && s.name.starts_with(name))
        };
        has("frontend", "GET /products/{id}")
            && has("backend", "GET /products/{id}/recommendations")
            && has("backend", "SELECT")
            && has("backend", "redis")
            && has("ml", "GET /recommendations")
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !complete(&ours()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received = ours();
    let named = |service: &str, name: &str| {
        received
            .iter()
            .find(|s| s.service == service && s.name == name)
            .cloned()
    };
    let frontend = named("frontend", "GET /products/{id}")
        .unwrap_or_else(|| panic!("no frontend server span: {received:#?}"));
    assert_eq!(
        frontend.parent_span_id, "00f067aa0ba902b7",
        "parented on the caller's traceparent"
    );
    let backend = named("backend", "GET /products/{id}/recommendations")
        .unwrap_or_else(|| panic!("{received:#?}"));
    let ml = named("ml", "GET /recommendations").unwrap_or_else(|| panic!("{received:#?}"));
    // Each hop's server span is the child of the caller's client span.
    let backend_caller = received
        .iter()
        .find(|s| s.span_id == backend.parent_span_id)
        .expect("backend's parent span");
    assert_eq!(backend_caller.service, "frontend");
    let ml_caller = received
        .iter()
        .find(|s| s.span_id == ml.parent_span_id)
        .expect("ml's parent span");
    assert_eq!(ml_caller.service, "backend");
    assert!(
        received
            .iter()
            .any(|s| s.service == "backend" && s.name.starts_with("SELECT")),
        "database spans: {received:#?}"
    );
    assert!(
        received
            .iter()
            .any(|s| s.service == "backend" && s.name.starts_with("redis")),
        "cache spans: {received:#?}"
    );

    for service in ["frontend", "backend", "ml"] {
        let logs = platform.services[service].logs.lock().unwrap();
        let lines: Vec<Value> = logs
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|l: &Value| l["trace_id"] == trace_id.as_str())
            .collect();
        assert!(
            !lines.is_empty(),
            "{service} logged nothing with the trace id"
        );
        assert!(lines.iter().all(|l| l["span_id"].is_string()));
    }
}

/// The platform's alert rule named `name`, as in the rules file.
fn rule_of(name: &str) -> Value {
    alert_rules()
        .into_iter()
        .find(|rule| rule["alert"] == name)
        .unwrap_or_else(|| panic!("no alert {name}"))
}

/// Prometheus evaluating the platform's rules → a real Alertmanager running dev's rendered
/// configuration → the webhook receivers dev names, here the test's. A failed backup
/// verification (a metric Prometheus scrapes) fires the platform's warning alert, which
/// reaches `tickets` only; a critical alert — sent to Alertmanager as Prometheus sends one,
/// with the labels and annotations of the platform's ServiceDown rule, since that rule
/// waits two minutes before firing — reaches `oncall` only. Both carry their runbook.
#[tokio::test(flavor = "multi_thread")]
async fn a_firing_alert_reaches_the_receiver_its_severity_routes_to_with_its_runbook() {
    let scratch = Scratch::new();
    let webhooks = support::alerting::Webhooks::start().await;
    let config = support::alerting::rendered_config(
        "dev",
        &[
            ("oncall", webhooks.url("oncall")),
            ("tickets", webhooks.url("tickets")),
        ],
    );
    let alertmanager =
        support::alerting::Alertmanager::start(&config, &scratch.path("alertmanager")).await;

    // What the verify step pushes after a failed restore, for Prometheus to scrape.
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            "shopmicro_backup_verification_success{backup=\"20261203T010000Z\"} 0\n"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let exporter = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = scratch.path("prometheus");
    let objects = rendered("dev");
    write_prometheus_files(&objects, &dir);
    std::fs::write(
        dir.join("alerting.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {rules}/*.yaml\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{am}']\nscrape_configs:\n  - job_name: db-backup\n    honor_labels: true\n    static_configs:\n      - targets: ['{exporter}']\n",
            rules = dir.join("rules").display(),
            am = alertmanager.url.trim_start_matches("http://"),
        ),
    )
    .unwrap();
    let _prometheus = Prometheus::start(&dir.join("alerting.yml"), &dir.join("data"), &[]);

    let down = rule_of("ServiceDown");
    let critical = serde_json::json!([{
        "labels": {
            "alertname": "ServiceDown",
            "severity": down["labels"]["severity"],
            "service": "backend",
            "namespace": "shopmicro",
        },
        "annotations": {
            "summary": "backend is not answering scrapes",
            "runbook_url": down["annotations"]["runbook_url"],
        },
    }]);
    assert_eq!(critical[0]["labels"]["severity"], "critical");
    let posted = reqwest::Client::new()
        .post(format!("{}/api/v2/alerts", alertmanager.url))
        .json(&critical)
        .send()
        .await
        .unwrap();
    assert!(posted.status().is_success(), "{}", posted.status());

    // Alertmanager holds a new group for group_wait (30 s) before it notifies.
    let deadline = Instant::now() + Duration::from_secs(90);
    let firing = loop {
        let firing = webhooks.firing();
        let names: BTreeSet<&str> = firing.iter().map(|(_, name, _)| name.as_str()).collect();
        if names.contains("ServiceDown") && names.contains("BackupVerificationFailed") {
            break firing;
        }
        assert!(Instant::now() < deadline, "notified so far: {firing:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for (receiver, name, alert) in &firing {
        let (expected_receiver, rule) = match name.as_str() {
            "ServiceDown" => ("oncall", &down),
            "BackupVerificationFailed" => ("tickets", &rule_of("BackupVerificationFailed")),
            other => panic!("only the two alerts fire here, not {other}"),
        };
        assert_eq!(
            receiver, expected_receiver,
            "{name} went to {receiver}: {alert}"
        );
        assert_eq!(
            alert["annotations"]["runbook_url"], rule["annotations"]["runbook_url"],
            "{alert}"
        );
        assert!(
            alert["annotations"]["runbook_url"]
                .as_str()
                .is_some_and(|url| url.contains("/runbooks/")),
            "{alert}"
        );
    }
}
