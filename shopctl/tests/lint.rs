//! `shopctl lint` through the real binary: every check fails on its failing fixture and
//! passes on its passing one; environments lint clean; exit codes and suppressions.

mod support;

use serde_json::Value;
use support::{Scratch, fixture, shopctl};

fn lint_file(path: &std::path::Path) -> (i32, Value) {
    let run = shopctl(&["lint", "--file", path.to_str().unwrap(), "--output", "json"]);
    assert!(
        run.code == 0 || run.code == 1,
        "lint crashed: {}",
        run.stderr
    );
    (
        run.code,
        serde_json::from_str(&run.stdout).expect("lint --output json prints JSON"),
    )
}

fn active_findings<'a>(report: &'a Value, check: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check && f.get("suppressed").is_none())
        .collect()
}

#[test]
fn every_check_has_a_failing_and_a_passing_fixture_that_behave() {
    for check in shopctl::lint::checks() {
        let failing = fixture(&format!("lint/{}.fail.yaml", check.id));
        let passing = fixture(&format!("lint/{}.pass.yaml", check.id));
        assert!(
            failing.exists() && passing.exists(),
            "{} needs both fixtures",
            check.id
        );

        let (code, report) = lint_file(&failing);
        let findings = active_findings(&report, check.id);
        assert!(
            !findings.is_empty(),
            "{} did not fire on its failing fixture: {report:#}",
            check.id
        );
        for finding in &findings {
            assert!(!finding["object"].as_str().unwrap().is_empty());
            assert!(!finding["message"].as_str().unwrap().is_empty());
            assert_eq!(finding["hint"], check.hint);
        }
        if check.severity == shopctl::lint::Severity::Error {
            assert_eq!(code, 1, "{}: an error finding exits 1", check.id);
        }

        let (_, report) = lint_file(&passing);
        assert!(
            active_findings(&report, check.id).is_empty(),
            "{} fired on its passing fixture: {report:#}",
            check.id
        );
    }
}

#[test]
fn findings_name_the_object_and_the_problem() {
    let (_, report) = lint_file(&fixture("lint/SM004.fail.yaml"));
    let messages: Vec<(&str, &str)> = active_findings(&report, "SM004")
        .iter()
        .map(|f| {
            (
                f["object"].as_str().unwrap(),
                f["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        messages.contains(&(
            "Deployment/shop/web",
            "container `web` image `registry.example.com:5000/web:latest` uses `latest`"
        )),
        "{messages:?}"
    );
    assert!(
        messages.contains(&(
            "Deployment/shop/api",
            "container `api` image `registry.example.com:5000/api` has no tag"
        )),
        "{messages:?}"
    );
}

#[test]
fn network_findings_say_which_side_blocks() {
    let (_, report) = lint_file(&fixture("lint/SM010.fail.yaml"));
    let findings = active_findings(&report, "SM010");
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(
        findings[0]["message"],
        "frontend → backend on 8080/TCP is blocked by the receiver's ingress policy"
    );
}

#[test]
fn ephemeral_volumes_are_checked_for_encryption_like_other_claims() {
    let scratch = Scratch::new();
    let job = serde_json::json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "scratch", "namespace": "shop"},
        "spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "work", "image": "registry.example.com/work:1.0.0"}],
            "volumes": [
                {"name": "default-class", "ephemeral": {"volumeClaimTemplate": {"spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}}}}}},
                {"name": "unknown-class", "ephemeral": {"volumeClaimTemplate": {"spec": {
                    "storageClassName": "elsewhere",
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}}}}}},
                {"name": "memory", "emptyDir": {}}
            ]
        }}}
    });
    let file = scratch.path("job.yaml");
    std::fs::write(&file, serde_json::to_string(&job).unwrap()).unwrap();
    let (code, report) = lint_file(&file);
    assert_eq!(code, 1);
    let messages: Vec<&str> = active_findings(&report, "SM013")
        .iter()
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages.len(), 2, "{report:#}");
    assert!(messages[0].contains("default StorageClass"), "{messages:?}");
    assert!(messages[1].contains("`elsewhere`"), "{messages:?}");
}

#[test]
fn every_environment_lints_clean() {
    for env in ["local", "dev", "prod"] {
        let run = shopctl(&["lint", "--env", env]);
        assert_eq!(run.code, 0, "{env}:\n{}{}", run.stdout, run.stderr);
        assert!(run.stdout.contains(&format!("{env}: ")), "{}", run.stdout);
        assert!(run.stdout.contains("0 errors"), "{}", run.stdout);
    }
}

#[test]
fn a_suppression_needs_a_reason() {
    let scratch = Scratch::new();
    // The Deployment comes first in the fixture; annotate only it.
    let with_reason = std::fs::read_to_string(fixture("lint/SM008.fail.yaml")).unwrap().replacen(
        "\"metadata\": {\n    \"name\": \"web\",",
        "\"metadata\": {\n    \"name\": \"web\",\n    \"annotations\": {\"suppress.lint.shopmicro.io/SM008\": \"single-node demo cluster\"},",
        1,
    );
    assert_ne!(
        with_reason,
        std::fs::read_to_string(fixture("lint/SM008.fail.yaml")).unwrap(),
        "fixture shape changed"
    );
    let file = scratch.path("suppressed.yaml");
    std::fs::write(&file, &with_reason).unwrap();
    let (_, report) = lint_file(&file);
    assert!(active_findings(&report, "SM008").is_empty(), "{report:#}");
    assert_eq!(report["suppressed"], 1);

    let without_reason = with_reason.replace("single-node demo cluster", "");
    std::fs::write(&file, without_reason).unwrap();
    let (code, report) = lint_file(&file);
    assert_eq!(code, 1);
    assert_eq!(
        active_findings(&report, "SM008").len(),
        1,
        "an empty reason suppresses nothing"
    );
    assert_eq!(active_findings(&report, "SM000").len(), 1);
}

#[test]
fn the_local_environment_suppresses_storage_encryption_with_its_reason() {
    let run = shopctl(&["lint", "--env", "local", "--output", "json"]);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let suppressed: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f.get("suppressed").is_some())
        .collect();
    // Exactly the deliberate exceptions, each with its reason: unencrypted local volumes,
    // and the log shipper and Prometheus discovery in every environment.
    let by_object: Vec<(&str, &str)> = suppressed
        .iter()
        .map(|f| (f["check"].as_str().unwrap(), f["object"].as_str().unwrap()))
        .collect();
    assert_eq!(
        by_object,
        vec![
            ("SM003", "DaemonSet/monitoring-agents/alloy"),
            ("SM013", "StorageClass/shopmicro-local"),
            ("SM014", "Namespace/monitoring-agents"),
            ("SM015", "Deployment/monitoring/prometheus"),
        ]
    );
    let storage = suppressed.iter().find(|f| f["check"] == "SM013").unwrap();
    assert!(
        storage["suppressed"]
            .as_str()
            .unwrap()
            .contains("disposable")
    );
}

#[test]
fn tls_is_only_optional_in_local() {
    // An empty value unsets the TLS secret.
    let run = shopctl(&[
        "lint",
        "--env",
        "dev",
        "--output",
        "json",
        "--set",
        "ingress.tls_secret_name=",
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let findings = active_findings(&report, "SM012");
    assert_eq!(findings.len(), 1);
    assert_eq!(
        findings[0]["message"],
        "host `dev.shop.example.com` is served without TLS in `dev`"
    );

    let local = shopctl(&["lint", "--env", "local", "--output", "json"]);
    let report: Value = serde_json::from_str(&local.stdout).unwrap();
    assert!(active_findings(&report, "SM012").is_empty());
}

#[test]
fn bad_lint_input_is_an_error_not_a_finding() {
    let run = shopctl(&["lint", "--file", "/nonexistent/manifests.yaml"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("/nonexistent/manifests.yaml"),
        "{}",
        run.stderr
    );
    let run = shopctl(&["lint", "--env", "nope"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("unknown environment `nope`"));
}

/// The paths the platform must never have (issue table: other namespaces → the services
/// and data stores; frontend → the data stores and ml; ml → redis; nothing but Prometheus
/// → metrics ports; no ipBlock over the pod ranges). Each is opened in turn by a realistic
/// policy change to the rendered prod release, and lint names it.
#[test]
fn each_forbidden_path_a_policy_change_opens_is_named() {
    use serde_json::json;
    use shopctl::lint::{Context, lint};
    let templates = shopctl::templates::Templates::embedded();
    let env = shopctl::env::load(&templates, "prod", &[]).unwrap();
    let rendered =
        shopctl::render::render(&templates, &env, &shopctl::render::SecretMode::Redacted).unwrap();
    let context = Context::for_environment(&env);
    let clean = lint(&rendered, &context);
    assert_eq!(clean.errors, 0, "{:#?}", clean.findings);

    let selector = |name: &str| json!({"matchLabels": {"app.kubernetes.io/name": name}});
    let to = |name: &str| json!({"to": [{"podSelector": selector(name)}]});
    let from = |name: &str| json!({"from": [{"podSelector": selector(name)}]});
    // (what changes: rules added to policies as (policy, direction, rule); findings expected)
    type Change = (&'static str, &'static str, Value);
    type Expected = Vec<(&'static str, &'static str)>;
    let cases: Vec<(&str, Vec<Change>, Expected)> = vec![
        (
            "the backend admits every namespace",
            vec![(
                "backend",
                "ingress",
                json!({"from": [{"namespaceSelector": {}}], "ports": [{"port": 8080}]}),
            )],
            vec![
                ("SM016", "a pod of another namespace → backend on 8080/TCP"),
                ("SM016", "the ingress controller → backend"),
            ],
        ),
        (
            "postgres admits its whole namespace, and the frontend may send to it",
            vec![
                (
                    "postgres",
                    "ingress",
                    json!({"from": [{"podSelector": {}}]}),
                ),
                ("frontend", "egress", to("postgres")),
            ],
            vec![("SM016", "frontend → postgres on 5432/TCP")],
        ),
        (
            "the frontend calls ml directly",
            vec![
                ("ml", "ingress", from("frontend")),
                ("frontend", "egress", to("ml")),
            ],
            vec![("SM016", "frontend → ml on 8081/TCP")],
        ),
        (
            "ml caches in redis",
            vec![
                ("redis", "ingress", from("ml")),
                ("ml", "egress", to("redis")),
            ],
            vec![("SM016", "ml → redis on 6379/TCP")],
        ),
        (
            "the backend admits all of monitoring, not just Prometheus",
            vec![
                (
                    "backend",
                    "ingress",
                    json!({"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]}),
                ),
                (
                    "grafana",
                    "egress",
                    json!({"to": [{"namespaceSelector": {}}]}),
                ),
            ],
            vec![("SM016", "grafana → backend on 8080/TCP")],
        ),
        (
            "postgres admits the VPC's range",
            vec![(
                "postgres",
                "ingress",
                json!({"from": [{"ipBlock": {"cidr": "10.0.0.0/16"}}], "ports": [{"port": 5432}]}),
            )],
            vec![
                ("SM017", "ingress rule"),
                ("SM016", "a pod of another namespace → postgres on 5432/TCP"),
            ],
        ),
    ];
    for (what, changes, expected) in cases {
        let mut objects = rendered.clone();
        for (policy, direction, rule) in changes {
            let target = objects
                .iter_mut()
                .find(|o| o.kind() == "NetworkPolicy" && o.name() == policy)
                .unwrap_or_else(|| panic!("no NetworkPolicy {policy}"));
            target.value["spec"][direction]
                .as_array_mut()
                .unwrap_or_else(|| panic!("{policy} has no {direction} rules"))
                .push(rule);
        }
        let report = lint(&objects, &context);
        for (check, needle) in expected {
            assert!(
                report
                    .findings
                    .iter()
                    .any(|f| f.check == check && f.message.contains(needle)),
                "{what}: expected {check} naming {needle:?} in {:#?}",
                report.findings
            );
        }
    }
}

/// `validate` reads frontend, backend, ml, Prometheus, Loki and Tempo through the API
/// server's service proxy, which connects from `cluster.api_server_cidrs`: a policy that
/// forgets it is named (on a real cluster validate would time out, which the simulator
/// cannot show).
#[test]
fn the_api_server_proxy_paths_validate_uses_are_required() {
    use shopctl::lint::{Context, lint};
    let templates = shopctl::templates::Templates::embedded();
    let env = shopctl::env::load(&templates, "prod", &[]).unwrap();
    let mut objects =
        shopctl::render::render(&templates, &env, &shopctl::render::SecretMode::Redacted).unwrap();
    let tempo = objects
        .iter_mut()
        .find(|o| o.kind() == "NetworkPolicy" && o.name() == "tempo")
        .unwrap();
    let rules = tempo.value["spec"]["ingress"].as_array_mut().unwrap();
    let before = rules.len();
    rules.retain(|rule| !rule.to_string().contains("ipBlock"));
    assert_eq!(rules.len(), before - 1, "tempo admits the API server once");
    let report = lint(&objects, &Context::for_environment(&env));
    let messages: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.check == "SM010")
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(
        messages,
        vec!["API server proxy → tempo on 3200/TCP is blocked by the receiver's ingress policy"]
    );
}

/// The published schema describes the report exactly: the real one conforms (every
/// `--output json` a test sees is checked the same way), and a renamed field, an unknown
/// severity or a missing count does not.
#[test]
fn lint_reports_conform_to_their_published_schema_and_drift_is_caught() {
    let run = shopctl(&["lint", "--env", "prod", "--output", "json"]);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    support::reports::conforms("lint", &report).unwrap();
    assert!(
        !report["findings"].as_array().unwrap().is_empty(),
        "{report:#}"
    );

    let mut renamed = report.clone();
    let finding = &mut renamed["findings"][0];
    finding["rule"] = finding["check"].take();
    finding.as_object_mut().unwrap().remove("check");
    let mut unknown_severity = report.clone();
    unknown_severity["findings"][0]["severity"] = "fatal".into();
    let mut missing_count = report.clone();
    missing_count.as_object_mut().unwrap().remove("errors");
    for broken in [renamed, unknown_severity, missing_count] {
        assert!(
            support::reports::conforms("lint", &broken).is_err(),
            "accepted {broken:#}"
        );
    }
    let schema = support::reports::published("lint");
    assert_eq!(schema["title"], "shopctl lint --output json");
    assert!(schema["$schema"].as_str().unwrap().contains("2020-12"));
}
