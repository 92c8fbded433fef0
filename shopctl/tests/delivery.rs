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
