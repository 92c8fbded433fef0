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
