//! `shopctl render` through the real binary.

mod support;

use std::collections::BTreeSet;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use shopctl::manifest::{Manifest, parse_stream};
use support::{Scratch, shopctl, shopctl_with, workspace_root};

const ENVIRONMENTS: [&str; 3] = ["local", "dev", "prod"];

fn render(env: &str) -> String {
    let run = shopctl(&["render", "--env", env]);
    assert_eq!(run.code, 0, "render {env} failed: {}", run.stderr);
    run.stdout
}

/// Compares with tests/golden/<env>.yaml and shows a readable line diff on mismatch.
/// `UPDATE_GOLDEN=1` rewrites the files after an intended change.
fn assert_matches_golden(env: &str) {
    let actual = render(env);
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{env}.yaml"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        let diff = similar::TextDiff::from_lines(&expected, &actual);
        let shown: String = diff
            .unified_diff()
            .context_radius(3)
            .header(&format!("golden/{env}.yaml"), "rendered")
            .to_string();
        panic!(
            "render --env {env} differs from its golden file (UPDATE_GOLDEN=1 to accept):\n{shown}"
        );
    }
}

#[test]
fn dev_output_matches_its_golden_file() {
    assert_matches_golden("dev");
}

#[test]
fn prod_output_matches_its_golden_file() {
    assert_matches_golden("prod");
}

#[test]
fn rendering_is_deterministic() {
    assert_eq!(render("prod"), render("prod"));
}

/// Deserialises into the typed k8s-openapi object and back; anything the type does not
/// know is dropped on the way, so a difference is an unknown (misspelt) field.
fn round_trip<T: DeserializeOwned + Serialize>(object: &Manifest) -> Result<(), String> {
    let typed: T = serde_json::from_value(object.value.clone())
        .map_err(|err| format!("{}: {err}", object.id()))?;
    let back = serde_json::to_value(&typed).unwrap();
    let mut lost = Vec::new();
    missing_paths(&object.value, &back, String::new(), &mut lost);
    if lost.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: unknown fields {lost:?}", object.id()))
    }
}

fn missing_paths(original: &Value, typed: &Value, path: String, lost: &mut Vec<String>) {
    match (original, typed) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                match b.get(key) {
                    Some(other) => missing_paths(value, other, format!("{path}.{key}"), lost),
                    // Empty lists and maps are legitimately omitted by the typed form.
                    None if value.as_array().is_some_and(Vec::is_empty)
                        || value.as_object().is_some_and(|m| m.is_empty()) => {}
                    None => lost.push(format!("{path}.{key}")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                missing_paths(x, y, format!("{path}[{i}]"), lost);
            }
        }
        _ => {}
    }
}

fn typed_check(object: &Manifest) -> Result<(), String> {
    use k8s_openapi::api::{apps, autoscaling, core, networking, policy, storage};
    match object.kind() {
        "Namespace" => round_trip::<core::v1::Namespace>(object),
        "ServiceAccount" => round_trip::<core::v1::ServiceAccount>(object),
        "ConfigMap" => round_trip::<core::v1::ConfigMap>(object),
        "Secret" => round_trip::<core::v1::Secret>(object),
        "Service" => round_trip::<core::v1::Service>(object),
        "Deployment" => round_trip::<apps::v1::Deployment>(object),
        "StatefulSet" => round_trip::<apps::v1::StatefulSet>(object),
        "HorizontalPodAutoscaler" => round_trip::<autoscaling::v2::HorizontalPodAutoscaler>(object),
        "PodDisruptionBudget" => round_trip::<policy::v1::PodDisruptionBudget>(object),
        "Ingress" => round_trip::<networking::v1::Ingress>(object),
        "NetworkPolicy" => round_trip::<networking::v1::NetworkPolicy>(object),
        "StorageClass" => round_trip::<storage::v1::StorageClass>(object),
        "DaemonSet" => round_trip::<apps::v1::DaemonSet>(object),
        "PersistentVolumeClaim" => round_trip::<core::v1::PersistentVolumeClaim>(object),
        "ClusterRole" => round_trip::<k8s_openapi::api::rbac::v1::ClusterRole>(object),
        "CronJob" => round_trip::<k8s_openapi::api::batch::v1::CronJob>(object),
        "Role" => round_trip::<k8s_openapi::api::rbac::v1::Role>(object),
        "RoleBinding" => round_trip::<k8s_openapi::api::rbac::v1::RoleBinding>(object),
        "ClusterRoleBinding" => {
            round_trip::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>(object)
        }
        other => Err(format!("{}: no typed check for kind {other}", object.id())),
    }
}

#[test]
fn every_rendered_object_is_a_valid_typed_kubernetes_object_without_unknown_fields() {
    for env in ENVIRONMENTS {
        let objects = parse_stream(env, &render(env)).unwrap();
        assert!(objects.len() > 25, "{env} renders the full platform");
        let problems: Vec<String> = objects
            .iter()
            .filter_map(|o| typed_check(o).err())
            .collect();
        assert!(problems.is_empty(), "{env}:\n{}", problems.join("\n"));
    }
}

#[test]
fn the_round_trip_catches_a_misspelt_field() {
    let object = Manifest {
        source: "test".into(),
        value: serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
            "spec": {"selector": {"a": "b"}, "ports": [{"port": 80, "targtPort": 8080}]}}),
    };
    let err = typed_check(&object).unwrap_err();
    assert!(err.contains(".spec.ports[0].targtPort"), "{err}");
}

#[test]
fn the_platform_objects_are_all_there_with_common_labels() {
    let objects = parse_stream("prod", &render("prod")).unwrap();
    let ids: BTreeSet<String> = objects.iter().map(Manifest::id).collect();
    for expected in [
        "Namespace/shopmicro",
        "Deployment/shopmicro/frontend",
        "Deployment/shopmicro/backend",
        "Deployment/shopmicro/ml",
        "Service/shopmicro/backend",
        "StatefulSet/shopmicro/postgres",
        "Deployment/shopmicro/redis",
        "HorizontalPodAutoscaler/shopmicro/backend",
        "PodDisruptionBudget/shopmicro/frontend",
        "NetworkPolicy/shopmicro/default-deny-all",
        "Ingress/shopmicro/storefront",
        "StorageClass/gp3-encrypted",
    ] {
        assert!(ids.contains(expected), "missing {expected}");
    }
    for object in &objects {
        let labels = &object.value["metadata"]["labels"];
        assert_eq!(
            labels["shopmicro.io/managed-by"],
            "shopctl",
            "{}",
            object.id()
        );
        assert_eq!(
            labels["app.kubernetes.io/part-of"],
            "shopmicro",
            "{}",
            object.id()
        );
    }
    let backend = objects
        .iter()
        .find(|o| o.id() == "Service/shopmicro/backend")
        .unwrap();
    assert_eq!(backend.value["spec"]["ports"][0]["port"], 8080);
}

#[test]
fn a_config_change_changes_the_pod_template_checksum() {
    let checksum = |yaml: &str| {
        let objects = parse_stream("dev", yaml).unwrap();
        let backend = objects
            .iter()
            .find(|o| o.id() == "Deployment/shopmicro/backend")
            .unwrap();
        backend.value["spec"]["template"]["metadata"]["annotations"]["checksum.shopmicro.io/config"]
            .clone()
    };
    let before = checksum(&render("dev"));
    let after = shopctl(&[
        "render",
        "--env",
        "dev",
        "--set",
        "observability.log_level=warn",
    ]);
    assert_eq!(after.code, 0, "{}", after.stderr);
    assert!(before.is_string());
    assert_ne!(before, checksum(&after.stdout));
}

/// A pod being replaced first sleeps in preStop (endpoints removed meanwhile), then gets
/// SIGTERM and drains for SHUTDOWN_DEADLINE_MS (from the ConfigMap it reads): Kubernetes
/// must not kill it before both are over. Read from the rendered objects, not re-typed.
#[test]
fn termination_grace_covers_the_pre_stop_pause_and_the_drain_deadline() {
    for env in ["dev", "prod"] {
        let objects = parse_stream(env, &render(env)).unwrap();
        for service in ["frontend", "backend", "ml"] {
            let deployment = objects
                .iter()
                .find(|o| o.kind() == "Deployment" && o.name() == service)
                .unwrap();
            let pod = &deployment.value["spec"]["template"]["spec"];
            let container = &pod["containers"][0];
            let grace = pod["terminationGracePeriodSeconds"].as_f64().unwrap();
            let pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
                .as_f64()
                .unwrap();
            let config = container["envFrom"]
                .as_array()
                .unwrap()
                .iter()
                .find_map(|source| source["configMapRef"]["name"].as_str())
                .unwrap();
            let deadline_ms: f64 = objects
                .iter()
                .find(|o| o.kind() == "ConfigMap" && o.name() == config)
                .and_then(|o| o.value["data"]["SHUTDOWN_DEADLINE_MS"].as_str())
                .unwrap_or_else(|| panic!("{env}/{service}: no SHUTDOWN_DEADLINE_MS in {config}"))
                .parse()
                .unwrap();
            assert!(
                grace >= pre_stop + deadline_ms / 1000.0 + 1.0,
                "{env}/{service}: grace {grace}s < preStop {pre_stop}s + drain {deadline_ms}ms + 1s"
            );
        }
    }
}

/// `/metrics` is on each service's admin port, which Prometheus is pointed at and which
/// no Service (so no Ingress) routes to: the public path cannot reach it.
#[test]
fn metrics_are_on_an_admin_port_that_no_service_or_ingress_routes_to() {
    for env in ["dev", "prod"] {
        let objects = parse_stream(env, &render(env)).unwrap();
        let mut admin_ports = Vec::new();
        for service in ["frontend", "backend", "ml"] {
            let deployment = objects
                .iter()
                .find(|o| o.kind() == "Deployment" && o.name() == service)
                .unwrap();
            let template = &deployment.value["spec"]["template"];
            let container = &template["spec"]["containers"][0];
            let port_named = |name: &str| {
                container["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["name"] == name)
                    .and_then(|p| p["containerPort"].as_u64())
                    .unwrap_or_else(|| panic!("{env}/{service}: no {name} port"))
            };
            let (http, admin) = (port_named("http"), port_named("admin"));
            assert_ne!(http, admin);
            let scraped = template["metadata"]["annotations"]["prometheus.io/port"]
                .as_str()
                .unwrap();
            assert_eq!(
                scraped,
                admin.to_string(),
                "{env}/{service}: Prometheus scrapes the admin port"
            );
            let config = objects
                .iter()
                .find(|o| o.kind() == "ConfigMap" && o.name() == format!("{service}-config"))
                .unwrap();
            assert_eq!(
                config.value["data"]["PORT"],
                http.to_string(),
                "{env}/{service}"
            );
            assert_eq!(
                config.value["data"]["ADMIN_PORT"],
                admin.to_string(),
                "{env}/{service}"
            );
            admin_ports.push((service, admin));
        }
        for svc in objects.iter().filter(|o| o.kind() == "Service") {
            for port in svc.value["spec"]["ports"].as_array().unwrap() {
                let target = &port["targetPort"];
                assert_ne!(
                    target,
                    "admin",
                    "{env}: Service {} exposes an admin port",
                    svc.name()
                );
                for (service, admin) in &admin_ports {
                    assert!(
                        !(svc.name() == *service && target.as_u64() == Some(*admin)),
                        "{env}: Service {} routes to {service}'s admin port",
                        svc.name()
                    );
                }
            }
        }
        let ingress = objects.iter().find(|o| o.kind() == "Ingress").unwrap();
        let backends: Vec<&str> = ingress.value["spec"]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|rule| rule["http"]["paths"].as_array().unwrap())
            .map(|path| path["backend"]["service"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            backends,
            ["frontend"],
            "{env}: the Ingress routes only to the storefront's Service"
        );
    }
}

/// Prometheus's lifecycle and admin APIs would let whoever reaches its port stop it or
/// delete its data; neither is enabled, and its configuration rolls it instead of a reload.
#[test]
fn prometheus_has_no_lifecycle_api_and_rolls_when_its_configuration_changes() {
    for env in ["dev", "prod"] {
        let objects = parse_stream(env, &render(env)).unwrap();
        let prometheus = objects
            .iter()
            .find(|o| o.kind() == "Deployment" && o.name() == "prometheus")
            .unwrap();
        let args = prometheus.value["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap();
        for api in ["--web.enable-lifecycle", "--web.enable-admin-api"] {
            assert!(!args.iter().any(|a| a == api), "{env}: {api}");
        }
        assert!(
            prometheus.value["spec"]["template"]["metadata"]["annotations"]
                ["checksum.shopmicro.io/config"]
                .is_string(),
            "{env}: a changed prometheus.yml or rule file rolls the pod"
        );
    }
}

/// A canary's analysis asks Prometheus through the service proxy at a Service and port
/// it names; every cluster environment renders exactly that, where it looks.
#[test]
fn the_prometheus_a_canary_asks_is_the_rendered_one() {
    let (service, port) = shopctl::cluster::progressive::analysis::PROMETHEUS_SERVICE;
    for env in ["dev", "prod"] {
        let templates = shopctl::templates::Templates::embedded();
        let namespace = shopctl::env::load(&templates, env, &[])
            .unwrap()
            .observability
            .namespace;
        let objects = parse_stream(env, &render(env)).unwrap();
        let rendered = objects
            .iter()
            .find(|o| {
                o.kind() == "Service"
                    && o.name() == service
                    && o.value["metadata"]["namespace"] == namespace.as_str()
            })
            .unwrap_or_else(|| panic!("{env}: no Service {namespace}/{service}"));
        assert!(
            rendered.value["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == port),
            "{env}: {namespace}/{service} has no port named {port}"
        );
    }
}

#[test]
fn set_flags_win_over_environment_variables_which_win_over_the_file() {
    let tag_of = |yaml: &str| {
        let objects = parse_stream("dev", yaml).unwrap();
        let backend = objects
            .iter()
            .find(|o| o.id() == "Deployment/shopmicro/backend")
            .unwrap();
        backend.value["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(tag_of(&render("dev")), "0.1.0");
    let from_env = shopctl_with(
        &["render", "--env", "dev"],
        &[("SHOPCTL_SET_SERVICES__BACKEND__TAG", "2.0.0")],
    );
    assert_eq!(tag_of(&from_env.stdout), "2.0.0");
    // A version that YAML would read as a number stays a string.
    let from_flag = shopctl_with(
        &[
            "render",
            "--env",
            "dev",
            "--set",
            "services.backend.tag=1.10",
        ],
        &[("SHOPCTL_SET_SERVICES__BACKEND__TAG", "2.0.0")],
    );
    assert_eq!(tag_of(&from_flag.stdout), "1.10");
}

#[test]
fn secrets_are_redacted_unless_asked_for_and_come_from_the_secret_source() {
    let redacted = shopctl_with(
        &["render", "--env", "dev"],
        &[
            ("SHOPMICRO_POSTGRES_PASSWORD", "Sup3r-S3cret"),
            (
                "SHOPMICRO_ALERT_RECEIVER_ONCALL",
                "https://oncall.example/hook",
            ),
        ],
    );
    assert!(!redacted.stdout.contains("Sup3r-S3cret"));
    assert!(redacted.stdout.contains("[redacted]"));

    let missing = shopctl_with(
        &[
            "render",
            "--env",
            "dev",
            "--show-secrets",
            "--secrets-file",
            "/nonexistent/dev.yaml",
        ],
        &[],
    );
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("SHOPMICRO_POSTGRES_PASSWORD"),
        "{}",
        missing.stderr
    );

    let cart_key = "k".repeat(88);
    let secret_vars = [
        ("SHOPMICRO_POSTGRES_PASSWORD", "p@ss word"),
        ("SHOPMICRO_CART_SIGNING_KEY", cart_key.as_str()),
        (
            "SHOPMICRO_ML_RETRAIN_TOKEN",
            "retrain-token-0123456789abcdefghij",
        ),
        ("SHOPMICRO_GRAFANA_ADMIN_PASSWORD", "grafana-pw"),
        (
            "SHOPMICRO_ALERT_RECEIVER_ONCALL",
            "https://oncall.example/hook",
        ),
        (
            "SHOPMICRO_ALERT_RECEIVER_TICKETS",
            "https://tickets.example/hook",
        ),
    ];
    let shown = shopctl_with(&["render", "--env", "dev", "--show-secrets"], &secret_vars);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    // Written out, the Secrets are their owner's alone; the rest stays readable.
    let scratch = support::Scratch::new();
    let out = scratch.path("rendered");
    let written = shopctl_with(
        &[
            "render",
            "--env",
            "dev",
            "--show-secrets",
            "--out",
            out.to_str().unwrap(),
        ],
        &secret_vars,
    );
    assert_eq!(written.code, 0, "{}", written.stderr);
    let mut secrets = 0;
    for entry in std::fs::read_dir(&out).unwrap() {
        use std::os::unix::fs::PermissionsExt;
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        if text.contains("kind: Secret") {
            secrets += 1;
            assert_eq!(mode, 0o600, "{}", path.display());
        } else if path.extension().is_some_and(|e| e == "yaml") {
            assert_eq!(mode & 0o044, 0o044, "{}", path.display());
        }
    }
    assert!(secrets >= 3, "{secrets} Secrets written");
    // The receivers' destinations are secrets too: only in the Alertmanager Secret.
    assert!(!redacted.stdout.contains("oncall.example"));
    let holding: Vec<String> = parse_stream("dev", &shown.stdout)
        .unwrap()
        .iter()
        .filter(|o| o.value.to_string().contains("https://oncall.example/hook"))
        .map(|o| format!("{}/{}", o.value["kind"], o.value["metadata"]["name"]))
        .collect();
    assert_eq!(holding, ["\"Secret\"/\"alertmanager-config\""]);
    let objects = parse_stream("dev", &shown.stdout).unwrap();
    let secret = |name: &str| {
        objects
            .iter()
            .find(|o| o.value["kind"] == "Secret" && o.value["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no Secret {name}"))
            .value["stringData"]
            .clone()
    };
    // The superuser's password is PostgreSQL's alone; each workload's Secret opens only
    // its own role, with a password derived from it.
    assert_eq!(secret("postgres-superuser")["password"], "p@ss word");
    let mut passwords = BTreeSet::new();
    for role in ["owner", "backend", "ml", "backup"] {
        let data = secret(&format!("db-{role}"));
        let password = data["password"].as_str().unwrap().to_owned();
        assert_eq!(password.len(), 64, "{data}");
        assert_eq!(data["username"], format!("shopmicro_{role}"));
        assert_eq!(
            data["url"],
            format!("postgres://shopmicro_{role}:{password}@postgres:5432/shopmicro")
        );
        assert!(!data.to_string().contains("p@ss"), "{data}");
        passwords.insert(password);
    }
    assert_eq!(passwords.len(), 4, "one password per role");
}

#[test]
fn out_writes_one_file_per_object_and_replaces_stale_ones() {
    let scratch = Scratch::new();
    let out = scratch.path("rendered");
    let run = shopctl(&["render", "--env", "prod", "--out", out.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let yaml_files = files.iter().filter(|f| f.ends_with(".yaml")).count();
    assert_eq!(
        yaml_files,
        parse_stream("prod", &render("prod")).unwrap().len()
    );
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("-namespace-shopmicro.yaml")),
        "{files:?}"
    );

    std::fs::write(out.join("99-stale-object.yaml"), "kind: Stale\n").unwrap();
    assert_eq!(
        shopctl(&["render", "--env", "prod", "--out", out.to_str().unwrap()]).code,
        0
    );
    assert!(!out.join("99-stale-object.yaml").exists());

    let foreign = scratch.path("not-ours");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("keep.txt"), "mine").unwrap();
    let refused = shopctl(&[
        "render",
        "--env",
        "prod",
        "--out",
        foreign.to_str().unwrap(),
    ]);
    assert_eq!(refused.code, 2);
    assert!(foreign.join("keep.txt").exists());
}

/// Asserts a failed render: exit 2, the expected text in the one-line error, nothing in
/// the output directory.
fn assert_render_fails(args: &[&str], expected: &[&str]) {
    let scratch = Scratch::new();
    let out = scratch.path("out");
    let mut all = vec!["render", "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    let run = shopctl(&all);
    assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
    assert!(run.stderr.starts_with("shopctl: "), "{}", run.stderr);
    for text in expected {
        assert!(
            run.stderr.contains(text),
            "{args:?}: expected `{text}` in:\n{}",
            run.stderr
        );
    }
    assert!(!out.exists(), "{args:?} wrote output");
}

#[test]
fn an_unknown_environment_lists_the_known_ones() {
    assert_render_fails(
        &["--env", "qa"],
        &["unknown environment `qa`", "dev, local, prod"],
    );
}

#[test]
fn set_on_a_missing_path_suggests_the_right_one() {
    assert_render_fails(
        &["--env", "dev", "--set", "services.backend.replica=3"],
        &[
            "--set services.backend.replica=3",
            "no setting `replica`",
            "did you mean `replicas`?",
        ],
    );
    assert_render_fails(
        &["--env", "dev", "--set", "services.backend.replicas=three"],
        &["expected a whole number"],
    );
    assert_render_fails(
        &["--env", "dev", "--set", "nonsense"],
        &["expected path=value"],
    );
}

/// A copy of templates/ with one environment file replaced.
fn with_values(scratch: &Scratch, env: &str, text: &str) -> String {
    let templates = scratch.templates_copy();
    std::fs::write(templates.join(format!("environments/{env}.yaml")), text).unwrap();
    templates.display().to_string()
}

#[test]
fn a_malformed_values_file_is_reported_with_its_name() {
    let scratch = Scratch::new();
    let templates = with_values(&scratch, "dev", "name: dev\nservices: [unclosed\n");
    assert_render_fails(
        &["--env", "dev", "--templates", &templates],
        &["environments/dev.yaml is not valid YAML"],
    );
}

#[test]
fn every_schema_problem_is_reported_in_one_run() {
    let scratch = Scratch::new();
    let original =
        std::fs::read_to_string(workspace_root().join("templates/environments/dev.yaml")).unwrap();
    let broken = original
        .replace(
            "    replicas: 2\n    resources:\n      requests: { cpu: 50m",
            "    replicsa: 2\n    resources:\n      requests: { cpu: 50m",
        )
        .replace("  drain_seconds: 10", "  drain_seconds: ten")
        .replace("  region: eu-west-1\n", "");
    let templates = with_values(&scratch, "dev", &broken);
    assert_render_fails(
        &["--env", "dev", "--templates", &templates],
        &[
            "environments/dev.yaml has 4 problem(s)",
            "services.frontend.replicsa: unknown key; did you mean `replicas`?",
            "services.frontend.replicas: is required but missing",
            "rollout.drain_seconds: expected a whole number, found a string (\"ten\")",
            "aws.region: is required but missing",
        ],
    );
}

#[test]
fn rules_beyond_types_are_checked_too() {
    let scratch = Scratch::new();
    let original =
        std::fs::read_to_string(workspace_root().join("templates/environments/dev.yaml")).unwrap();
    let broken = original
        .replace("min_replicas: 2", "min_replicas: 9")
        .replace("cpu: 50m", "cpu: lots");
    let templates = with_values(&scratch, "dev", &broken);
    assert_render_fails(
        &["--env", "dev", "--templates", &templates],
        &[
            "services.backend.autoscaling: need 1 <= min_replicas <= max_replicas, got 9..4",
            "`lots` is not a Kubernetes quantity",
        ],
    );
}

#[test]
fn a_template_syntax_error_names_the_file_and_line() {
    let scratch = Scratch::new();
    let templates = scratch.templates_copy();
    let path = templates.join("k8s/21-ingress.yaml.tera");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "{%- if env.ingress.tls_secret_name %}",
        "{%- if env.ingress.tls_secret_name ",
    );
    std::fs::write(&path, text).unwrap();
    assert_render_fails(
        &["--env", "dev", "--templates", templates.to_str().unwrap()],
        &["k8s/21-ingress.yaml.tera", "-->"],
    );
}

#[test]
fn the_backup_job_dumps_then_verifies_then_prunes_the_environments_bucket() {
    let objects = parse_stream("prod", &render("prod")).unwrap();
    let job = objects
        .iter()
        .find(|o| o.kind() == "CronJob" && o.name() == "db-backup")
        .expect("prod renders the backup CronJob");
    assert_eq!(job.str_at("/spec/schedule"), "15 2 * * *");
    assert_eq!(job.str_at("/spec/concurrencyPolicy"), "Forbid");
    let pod = job
        .value
        .pointer("/spec/jobTemplate/spec/template/spec")
        .unwrap();
    assert_eq!(pod["serviceAccountName"], "db-backup", "IRSA gives it S3");

    // Init containers run in order and stop at the first failure: prune only follows a
    // backup that verified.
    let steps: Vec<&Value> = pod["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(pod["containers"].as_array().unwrap())
        .collect();
    let args = |step: &Value| -> Vec<String> {
        step["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect()
    };
    let location = "s3://shopmicro-prod-backups-210987654321/postgres/";
    assert_eq!(
        args(steps[0]),
        [
            "db",
            "backup",
            "--to",
            location,
            "--kms-key",
            "alias/shopmicro-prod-backups"
        ]
    );
    let pushgateway = "http://pushgateway.monitoring.svc:9091";
    assert_eq!(
        args(steps[1]),
        [
            "db",
            "verify",
            "--from",
            location,
            "--pushgateway",
            pushgateway
        ]
    );
    // The verification result has somewhere to go: the Pushgateway's Service, which
    // Prometheus scrapes with the pushed labels kept.
    let service = objects
        .iter()
        .find(|o| o.kind() == "Service" && o.name() == "pushgateway")
        .expect("the Pushgateway is part of the stack");
    assert_eq!(service.str_at("/metadata/namespace"), "monitoring");
    assert_eq!(service.value["spec"]["ports"][0]["port"], 9091);
    let prometheus = objects
        .iter()
        .find(|o| o.kind() == "ConfigMap" && o.name() == "prometheus-config")
        .unwrap();
    let config = prometheus.value["data"]["prometheus.yml"].as_str().unwrap();
    let job = config.split("job_name: pushgateway").nth(1).unwrap();
    assert_eq!(
        job.lines().nth(1).map(str::trim),
        Some("honor_labels: true"),
        "Prometheus keeps the pushed job label: {config}"
    );
    assert_eq!(
        args(steps[2]),
        [
            "db",
            "prune",
            "--in",
            location,
            "--keep-daily",
            "14",
            "--keep-weekly",
            "8",
            "--yes"
        ]
    );
    for step in &steps[..2] {
        let database_url = step["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "DATABASE_URL")
            .expect("the database URL comes from the environment");
        assert_eq!(
            database_url["valueFrom"]["secretKeyRef"]["name"],
            "db-backup"
        );
    }
    // The arguments parse as shopctl's own command line would.
    for step in &steps {
        let mut help = args(step);
        help.push("--help".to_owned());
        let as_strs: Vec<&str> = help.iter().map(String::as_str).collect();
        let run = shopctl(&as_strs);
        assert_eq!(run.code, 0, "{as_strs:?}: {}", run.stderr);
    }
}

/// `shopctl render | head` is normal use: a reader that stops early is not a failure.
#[test]
fn a_reader_that_stops_early_does_not_make_render_fail() {
    use std::io::Read;
    let mut child = support::Shopctl::new(&["render", "--env", "prod"])
        .command()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The pipe's read end is closed here, with most of the stream unread.
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The access log's sampling reaches every service's ConfigMap (the services read
/// ACCESS_LOG_SAMPLE), defaults to every line, and cannot be set to log nothing.
#[test]
fn access_log_sampling_reaches_every_service_and_zero_is_refused() {
    let sample_of = |yaml: &str, service: &str| {
        let objects = parse_stream("prod", yaml).unwrap();
        let config = objects
            .iter()
            .find(|o| o.id() == format!("ConfigMap/shopmicro/{service}-config"))
            .unwrap_or_else(|| panic!("{service}-config is rendered"));
        config.value["data"]["ACCESS_LOG_SAMPLE"].clone()
    };
    let default = render("prod");
    let sampled = shopctl(&[
        "render",
        "--env",
        "prod",
        "--set",
        "observability.access_log_sample=50",
    ]);
    assert_eq!(sampled.code, 0, "{}", sampled.stderr);
    for service in ["frontend", "backend", "ml"] {
        assert_eq!(sample_of(&default, service), "1", "{service}");
        assert_eq!(sample_of(&sampled.stdout, service), "50", "{service}");
    }
    assert_render_fails(
        &[
            "--env",
            "prod",
            "--set",
            "observability.access_log_sample=0",
        ],
        &["access_log_sample"],
    );
}

/// Every setting a service's ConfigMap gives is one the service reads: its name appears as
/// a string literal in that service's or the shared crate's source. A key spelt differently
/// from the variable the code reads would otherwise be ignored without a word.
/// `RUST_LOG` is read by tracing-subscriber's `EnvFilter` under that name.
#[test]
fn every_config_map_key_is_a_variable_the_service_reads() {
    let source_of = |crate_dir: &str| -> String {
        let dir = workspace_root()
            .join("services")
            .join(crate_dir)
            .join("src");
        let mut text = String::new();
        let mut pending = vec![dir];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    text.push_str(&std::fs::read_to_string(path).unwrap());
                }
            }
        }
        text
    };
    let common = source_of("common");
    let objects = parse_stream("prod", &render("prod")).unwrap();
    for service in ["frontend", "backend", "ml"] {
        let code = source_of(service) + &common;
        let config = objects
            .iter()
            .find(|o| o.kind() == "ConfigMap" && o.name() == format!("{service}-config"))
            .unwrap();
        for key in config.value["data"].as_object().unwrap().keys() {
            if key == "RUST_LOG" {
                continue;
            }
            assert!(
                code.contains(&format!("\"{key}\"")),
                "{service}-config sets {key}, which {service} never reads"
            );
        }
    }
}

/// PostgreSQL refuses connections past `max_connections`, so it must admit every connection
/// the services can open at once: each database client's pods at full scale (the
/// autoscaler's maximum plus the rollout's surge), doubled for a canary or blue/green
/// release's twins, times the connections each pod opens; plus the backup's two, a
/// migration, the superuser's reserved three and a few for an operator.
#[test]
fn postgres_admits_every_connection_its_clients_can_open_at_full_scale() {
    const RESERVED: u64 = 2 + 1 + 3 + 4;
    for env in ["dev", "prod"] {
        let objects = parse_stream(env, &render(env)).unwrap();
        let find = |kind: &str, name: &str| {
            objects
                .iter()
                .find(|o| o.kind() == kind && o.name() == name)
                .unwrap_or_else(|| panic!("{env}: no {kind} {name}"))
        };
        let postgres =
            &find("StatefulSet", "postgres").value["spec"]["template"]["spec"]["containers"][0];
        let max_connections: u64 = postgres["args"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find_map(|arg| arg.strip_prefix("max_connections="))
            .map_or(100, |n| n.parse().unwrap());

        let setting = |config_map: &str, name: &str| -> u64 {
            find("ConfigMap", config_map).value["data"][name]
                .as_str()
                .unwrap_or_else(|| panic!("{env}: {config_map} sets no {name}"))
                .parse()
                .unwrap()
        };
        let backend_connections = setting("backend-config", "DATABASE_MAX_CONNECTIONS")
            + setting("backend-config", "DATABASE_READ_CONNECTIONS");
        let ml_connections = setting("ml-config", "DATABASE_MAX_CONNECTIONS");
        let most_pods = |service: &str| -> u64 {
            let deployment = &find("Deployment", service).value["spec"];
            let replicas = objects
                .iter()
                .find(|o| {
                    o.kind() == "HorizontalPodAutoscaler"
                        && o.value["spec"]["scaleTargetRef"]["name"] == service
                })
                .map_or(
                    &deployment["replicas"],
                    |hpa| &hpa.value["spec"]["maxReplicas"],
                )
                .as_u64()
                .unwrap();
            let surge = deployment["strategy"]["rollingUpdate"]["maxSurge"]
                .as_u64()
                .expect("maxSurge as a number of pods");
            2 * (replicas + surge)
        };
        let needed = most_pods("backend") * backend_connections
            + most_pods("ml") * ml_connections
            + RESERVED;
        assert!(
            needed <= max_connections,
            "{env}: the services can open {needed} connections, PostgreSQL admits {max_connections}"
        );
    }
}

/// Each service's runtime gets as many threads as its pod's CPU limit, rounded up (one CPU:
/// a single-threaded runtime, see services/common/src/runtime.rs), from the container's own
/// limit: one that names another container, or a container with no CPU limit (the downward
/// API would then pass the node's CPU count), would size the runtime for CPU it cannot use.
#[test]
fn every_service_sizes_its_runtime_from_its_own_cpu_limit() {
    for env in ENVIRONMENTS {
        let objects = parse_stream(env, &render(env)).unwrap();
        for service in ["frontend", "backend", "ml"] {
            let deployment = objects
                .iter()
                .find(|o| o.kind() == "Deployment" && o.name() == service)
                .unwrap_or_else(|| panic!("{env}: no Deployment {service}"));
            let container = &deployment.value["spec"]["template"]["spec"]["containers"][0];
            assert!(
                container["resources"]["limits"]["cpu"].is_string(),
                "{env}/{service}: no CPU limit"
            );
            let threads = container["env"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|var| var["name"] == "WORKER_THREADS")
                .unwrap_or_else(|| panic!("{env}/{service}: WORKER_THREADS is not set"));
            assert_eq!(
                threads["valueFrom"]["resourceFieldRef"],
                serde_json::json!({
                    "containerName": container["name"],
                    "resource": "limits.cpu",
                    "divisor": "1",
                }),
                "{env}/{service}"
            );
        }
    }
}
