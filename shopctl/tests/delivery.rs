//! The delivery path stays in step with the workspace: each service's Dockerfile builds
//! and runs the binary the workspace defines, and exposes the port the manifests use.

mod support;

use support::workspace_root;

/// `name = "..."` values of a Cargo manifest section (`[package]`, `[[bin]]`).
fn names_in_section(manifest: &str, section: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut inside = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == section;
        } else if inside && let Some(value) = line.strip_prefix("name = ") {
            names.push(value.trim_matches('"').to_owned());
        }
    }
    names
}

#[test]
fn each_service_dockerfile_builds_and_runs_the_workspace_binary_on_the_manifest_port() {
    for (service, template) in [
        ("backend", "11-backend"),
        ("ml", "12-ml"),
        ("frontend", "10-frontend"),
    ] {
        let root = workspace_root();
        let manifest =
            std::fs::read_to_string(root.join(format!("services/{service}/Cargo.toml"))).unwrap();
        let package = &names_in_section(&manifest, "[package]")[0];
        let bins = names_in_section(&manifest, "[[bin]]");
        assert_eq!(bins.len(), 1, "{service}: one binary");
        let bin = &bins[0];
        let dockerfile =
            std::fs::read_to_string(root.join(format!("services/{service}/Dockerfile")))
                .unwrap_or_else(|_| panic!("services/{service}/Dockerfile is missing"));
        for expected in [
            format!("--package {package} --bin {bin}"),
            format!("COPY --from=build /src/target/release/{bin} /usr/local/bin/{bin}"),
            format!("ENTRYPOINT [\"/usr/local/bin/{bin}\"]"),
            "USER 65532:65532".to_owned(),
        ] {
            assert!(
                dockerfile.contains(&expected),
                "{service}: Dockerfile lacks `{expected}`"
            );
        }
        // The port the Deployment template gives the container.
        let deployment =
            std::fs::read_to_string(root.join(format!("templates/k8s/{template}.yaml.tera")))
                .unwrap();
        let port = deployment
            .split("port=")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .trim()
            .to_owned();
        assert!(
            dockerfile.contains(&format!("EXPOSE {port}")),
            "{service}: EXPOSE {port} like the manifest"
        );
        // And the user the pod security context runs it as.
        let macros = std::fs::read_to_string(root.join("templates/k8s/_macros.tera")).unwrap();
        assert!(
            macros.contains("m::pod_security(uid=65532)")
                || macros.contains("self::pod_security(uid=65532)")
        );
    }
}

/// The major version in an image reference like `…/postgres:16.6-bookworm`.
fn postgres_major(image: &str) -> &str {
    let tag = image.rsplit(':').next().unwrap();
    tag.split(['.', '-']).next().unwrap()
}

#[test]
fn the_shopctl_image_runs_shopctl_with_a_pg_dump_matching_every_environments_server() {
    let root = workspace_root();
    let dockerfile = std::fs::read_to_string(root.join("shopctl/Dockerfile")).unwrap();
    for expected in [
        "--package shopctl --bin shopctl",
        "COPY --from=build /src/target/release/shopctl /usr/local/bin/shopctl",
        "ENTRYPOINT [\"/usr/local/bin/shopctl\"]",
        // The uid the backup CronJob's pod security context runs it as.
        "USER 10001:10001",
    ] {
        assert!(
            dockerfile.contains(expected),
            "Dockerfile lacks `{expected}`"
        );
    }
    let cronjob =
        std::fs::read_to_string(root.join("templates/k8s/32-db-backup.yaml.tera")).unwrap();
    assert!(cronjob.contains("m::pod_security(uid=10001)"));
    assert!(cronjob.contains("/shopmicro-shopctl:"));

    // pg_dump refuses a server newer than itself; an older server dumps fine but restores
    // are only tested like for like.
    let runtime = dockerfile
        .lines()
        .rfind(|line| line.starts_with("FROM "))
        .unwrap()
        .trim_start_matches("FROM ");
    assert!(runtime.contains("/postgres:"), "runtime image: {runtime}");
    for env in ["local", "dev", "staging", "prod"] {
        let file = root.join(format!("templates/environments/{env}.yaml"));
        let text = std::fs::read_to_string(file).unwrap();
        let server = text
            .split("\npostgres:\n")
            .nth(1)
            .and_then(|section| {
                section
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("image: "))
            })
            .unwrap_or_else(|| panic!("{env}: postgres.image"));
        assert_eq!(
            postgres_major(server),
            postgres_major(runtime),
            "{env}: server {server}, shopctl image {runtime}"
        );
    }
}

/// Every `run:` script in the workflows, with line continuations joined.
fn workflow_scripts() -> Vec<(String, String)> {
    fn collect(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, child) in map {
                    match (key.as_str(), child.as_str()) {
                        ("run", Some(script)) => out.push(script.replace("\\\n", " ")),
                        _ => collect(child, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| collect(i, out)),
            _ => {}
        }
    }
    let dir = workspace_root().join(".github/workflows");
    let mut scripts = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let workflow: serde_json::Value =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut found = Vec::new();
        collect(&workflow, &mut found);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        scripts.extend(found.into_iter().map(|s| (name.clone(), s)));
    }
    scripts
}

/// The words after each `…/shopctl` in a script, up to the end of its command.
fn shopctl_invocations(script: &str) -> Vec<Vec<String>> {
    let words: Vec<String> = script
        .split_whitespace()
        .map(|w| w.trim_matches(|c| c == '"' || c == '\'').to_string())
        .collect();
    let mut invocations = Vec::new();
    for (i, word) in words.iter().enumerate() {
        if word == "shopctl" || word.ends_with("/shopctl") {
            let args = words[i + 1..]
                .iter()
                .take_while(|w| !matches!(w.as_str(), "|" | "||" | "&&" | ";" | ";;" | ">" | "2>"))
                .map(|w| w.trim_end_matches(";;").to_string())
                .collect();
            invocations.push(args);
        }
    }
    invocations
}

/// A renamed subcommand or flag breaks this test, not a deploy.
#[test]
fn every_shopctl_invocation_in_the_workflows_exists_in_the_binary() {
    let mut checked = 0;
    for (workflow, script) in workflow_scripts() {
        for args in shopctl_invocations(&script) {
            let subcommand: Vec<&str> = args
                .iter()
                .map(String::as_str)
                .take_while(|a| !a.starts_with('-'))
                .collect();
            let help = std::process::Command::new(env!("CARGO_BIN_EXE_shopctl"))
                .args(&subcommand)
                .arg("--help")
                .output()
                .unwrap();
            assert!(
                help.status.success(),
                "{workflow}: `shopctl {}` is not a command:\n{}",
                subcommand.join(" "),
                String::from_utf8_lossy(&help.stderr)
            );
            let help = String::from_utf8_lossy(&help.stdout).into_owned();
            for flag in args.iter().filter(|a| a.starts_with("--")) {
                let flag = flag.split('=').next().unwrap();
                assert!(
                    help.split(|c: char| c.is_whitespace() || c == ',')
                        .any(|w| w == flag),
                    "{workflow}: `shopctl {}` has no flag {flag}",
                    subcommand.join(" ")
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 5,
        "only {checked} shopctl invocations found: is the parsing broken?"
    );
}

#[test]
fn the_images_workflow_builds_every_dockerfile_under_the_names_the_manifests_pull() {
    let images =
        std::fs::read_to_string(workspace_root().join(".github/workflows/images.yml")).unwrap();
    let workflow: serde_json::Value = serde_saphyr::from_str(&images).unwrap();
    let matrix = workflow["jobs"]["push"]["strategy"]["matrix"]["image"]
        .as_array()
        .unwrap();
    let dev =
        std::fs::read_to_string(workspace_root().join("templates/environments/dev.yaml")).unwrap();
    let backup_job =
        std::fs::read_to_string(workspace_root().join("templates/k8s/32-db-backup.yaml.tera"))
            .unwrap();
    let mut dockerfiles = Vec::new();
    for entry in matrix {
        let (name, dockerfile) = (
            entry["name"].as_str().unwrap(),
            entry["dockerfile"].as_str().unwrap(),
        );
        assert!(
            workspace_root().join(dockerfile).exists(),
            "{dockerfile} is missing"
        );
        assert!(
            dev.contains(&format!("image: {name}")) || backup_job.contains(&format!("/{name}:")),
            "no manifest pulls {name}"
        );
        dockerfiles.push(dockerfile.to_string());
    }
    for service in ["backend", "ml", "frontend"] {
        assert!(
            dockerfiles.contains(&format!("services/{service}/Dockerfile")),
            "{service} is not built"
        );
    }
    assert!(dockerfiles.contains(&"shopctl/Dockerfile".to_string()));
}
