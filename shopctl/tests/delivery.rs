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
            // The service profile (whole-program LTO), not plain release.
            format!("RUN cargo build --profile service --locked --package {package} --bin {bin}"),
            format!("COPY --from=build /src/target/service/{bin} /usr/local/bin/{bin}"),
            format!("ENTRYPOINT [\"/usr/local/bin/{bin}\"]"),
            "USER 65532:65532".to_owned(),
            // The allocator setting the local supervisor also gives (`supervisor/services.rs`).
            "ENV MIMALLOC_ARENA_EAGER_COMMIT=0".to_owned(),
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
    for env in ["local", "dev", "prod"] {
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
            let help =
                support::Shopctl::new(&[subcommand.as_slice(), &["--help"]].concat()).output();
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

/// One job of a workflow, as GitHub runs it: with its workflow's triggers and inputs.
struct Job {
    workflow: String,
    name: String,
    job: serde_json::Value,
    triggers: serde_json::Value,
    inputs: serde_json::Value,
}

fn jobs() -> Vec<Job> {
    let dir = workspace_root().join(".github/workflows");
    let mut jobs = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let workflow: serde_json::Value =
            serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for (job_name, job) in workflow["jobs"].as_object().unwrap() {
            jobs.push(Job {
                workflow: name.clone(),
                name: job_name.clone(),
                job: job.clone(),
                triggers: workflow["on"].clone(),
                inputs: workflow["on"]["workflow_dispatch"]["inputs"].clone(),
            });
        }
    }
    jobs
}

impl Job {
    fn id(&self) -> String {
        format!("{}:{}", self.workflow, self.name)
    }

    fn steps(&self) -> Vec<&serde_json::Value> {
        self.job["steps"].as_array().into_iter().flatten().collect()
    }

    /// The values an expression can take in this job: a matrix dimension, a choice input,
    /// or a literal.
    fn values(&self, text: &str) -> Vec<String> {
        let text = text.trim();
        let Some(expression) = text
            .strip_prefix("${{")
            .and_then(|t| t.strip_suffix("}}"))
            .map(str::trim)
        else {
            return vec![text.to_string()];
        };
        let strings = |v: &serde_json::Value| -> Vec<String> {
            v.as_array()
                .unwrap_or_else(|| panic!("{}: {expression} has no list of values", self.id()))
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect()
        };
        if let Some(path) = expression.strip_prefix("matrix.") {
            // `matrix.image.name`: a dimension, then a field of its entries.
            let (dimension, field) = path.split_once('.').unwrap_or((path, ""));
            let entries = &self.job["strategy"]["matrix"][dimension];
            if field.is_empty() {
                strings(entries)
            } else {
                let fields: Vec<serde_json::Value> = entries
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| e[field].clone())
                    .collect();
                strings(&serde_json::Value::Array(fields))
            }
        } else if let Some(key) = expression.strip_prefix("inputs.") {
            strings(&self.inputs[key]["options"])
        } else {
            panic!("{}: cannot tell the values of {expression}", self.id())
        }
    }

    /// An argument of a step's script: a literal, or "$NAME" from the step's env.
    fn argument(&self, step: &serde_json::Value, word: &str) -> Vec<String> {
        let word = word.trim_matches('"');
        match word.strip_prefix('$') {
            Some(name) => self.values(
                step["env"][name]
                    .as_str()
                    .unwrap_or_else(|| panic!("{}: ${name} is not in the step's env", self.id())),
            ),
            None => vec![word.to_string()],
        }
    }

    /// The OIDC `sub` claim of this job when it works on environment `env` (GitHub: the
    /// job's GitHub environment when it has one — the same input as `env` when it is an
    /// expression — else the pull request, else the branch).
    fn subject(&self, repository: &str, env: &str) -> String {
        if let Some(environment) = self.job["environment"].as_str() {
            let github = if environment.contains("${{") {
                let environments = self.values(environment);
                assert!(
                    environments.contains(&env.to_string()),
                    "{}: runs in {environments:?}",
                    self.id()
                );
                env
            } else {
                environment
            };
            format!("repo:{repository}:environment:{github}")
        } else if self.triggers.get("pull_request").is_some() {
            format!("repo:{repository}:pull_request")
        } else {
            format!("repo:{repository}:ref:refs/heads/main")
        }
    }

    /// (environment, role) for each credentials step, with the step's index.
    fn credentials(&self) -> Vec<(usize, String, String)> {
        let mut found = Vec::new();
        for (i, step) in self.steps().iter().enumerate() {
            let Some(run) = step["run"].as_str() else {
                continue;
            };
            let Some(rest) = run.split(".github/scripts/aws-oidc-credentials.sh").nth(1) else {
                continue;
            };
            let words: Vec<&str> = rest.split_whitespace().collect();
            for env in self.argument(step, words[0]) {
                found.push((i, env, words[1].to_string()));
            }
        }
        found
    }

    fn first_step(&self, predicate: impl Fn(&str) -> bool) -> Option<usize> {
        self.steps()
            .iter()
            .position(|s| s["run"].as_str().is_some_and(&predicate))
    }
}

/// What a workflow step does in AWS, as (action, resource) for an environment: the AWS
/// calls of the shopctl commands it runs (proven against an IAM-enforcing emulator by
/// tests/cluster/aws_roles.rs) and of the AWS CLI and docker pushes.
fn aws_actions(
    run: &str,
    env: &shopctl::env::Environment,
    step: &serde_json::Value,
    job: &Job,
) -> Vec<(String, String)> {
    let account = &env.aws.account_id;
    let region = &env.aws.region;
    let state = format!("arn:aws:s3:::{}", env.terraform.state_bucket);
    let key = shopctl::infra::state_key(env);
    let table = format!(
        "arn:aws:dynamodb:{region}:{account}:table/{}",
        env.terraform.lock_table
    );
    let backups = format!("arn:aws:s3:::{}", env.backup.bucket);
    let mut actions: Vec<(&str, String)> = Vec::new();
    let shopctl = shopctl_invocations(run);
    for args in &shopctl {
        match args.first().map(String::as_str) {
            Some("kubeconfig") => actions.push((
                "eks:DescribeCluster",
                format!(
                    "arn:aws:eks:{region}:{account}:cluster/{}",
                    env.cluster.name
                ),
            )),
            // validate (and up's validate phase): the state, its lock, the newest backup.
            Some("up" | "validate") => {
                actions.extend([
                    ("s3:GetObject", format!("{state}/{key}")),
                    ("s3:ListBucket", state.clone()),
                    ("dynamodb:GetItem", table.clone()),
                    ("s3:ListBucket", backups.clone()),
                    (
                        "s3:GetObject",
                        format!("{backups}/{}manifest.json", env.backup.prefix),
                    ),
                ]);
                if env.terraform.use_lockfile {
                    actions.push(("s3:GetObject", format!("{state}/{key}.tflock")));
                }
            }
            Some("infra") => {
                actions.extend([
                    ("s3:ListBucket", state.clone()),
                    ("s3:GetObject", format!("{state}/{key}")),
                    ("dynamodb:GetItem", table.clone()),
                    ("dynamodb:PutItem", table.clone()),
                    ("dynamodb:DeleteItem", table.clone()),
                ]);
                if env.terraform.use_lockfile {
                    for action in ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"] {
                        actions.push((action, format!("{state}/{key}.tflock")));
                    }
                }
            }
            _ => {}
        }
    }
    if run.contains("aws ecr get-login-password") {
        actions.push(("ecr:GetAuthorizationToken", "*".into()));
    }
    if run.contains("--push") {
        let image = job.values(step["env"]["IMAGE"].as_str().unwrap());
        for image in image {
            let repository = format!("arn:aws:ecr:{region}:{account}:repository/{image}");
            for action in [
                "ecr:InitiateLayerUpload",
                "ecr:UploadLayerPart",
                "ecr:CompleteLayerUpload",
                "ecr:PutImage",
                "ecr:BatchCheckLayerAvailability",
            ] {
                actions.push((action, repository.clone()));
            }
        }
    }
    actions
        .into_iter()
        .map(|(a, r)| (a.to_string(), r))
        .collect()
}

/// Each job that uses AWS assumes a role the Terraform creates in its environment's
/// account, which trusts that job (its OIDC subject) and allows what it does; it builds
/// before it fetches credentials, has terraform when it runs it, and reaches the cluster
/// from the runner group the API server admits.
#[test]
fn every_workflow_job_assumes_a_role_that_trusts_it_and_allows_what_it_does() {
    let mut checked = 0;
    for job in jobs() {
        let steps = job.steps();
        let runs = |i: usize| steps[i]["run"].as_str().unwrap_or("");
        for (at, env_name, role) in job.credentials() {
            let env = support::terraform::environment(&env_name);
            let stack = support::terraform::environment_stack(&env);
            let roles = stack.roles();
            let definition = roles.get(&role).unwrap_or_else(|| {
                panic!(
                    "{}: {env_name} has no {role} role in its Terraform",
                    job.id()
                )
            });
            // The script names the role the Terraform creates.
            let printed = std::process::Command::new(".github/scripts/aws-oidc-credentials.sh")
                .args([&env_name, &role, "--print-role-arn"])
                .current_dir(workspace_root())
                .output()
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&printed.stdout).trim(),
                definition.arn,
                "{}",
                job.id()
            );
            // Trusted by this job's subject (audience sts.amazonaws.com).
            let repository = stack.modules["platform"].variables["github_repository"]
                .as_str()
                .unwrap()
                .to_string();
            let subject = job.subject(&repository, &env_name);
            let context = std::collections::BTreeMap::from([
                (
                    "token.actions.githubusercontent.com:aud".to_string(),
                    "sts.amazonaws.com".to_string(),
                ),
                (
                    "token.actions.githubusercontent.com:sub".to_string(),
                    subject.clone(),
                ),
            ]);
            assert!(
                support::iam::allows(
                    &definition.trust,
                    "sts:AssumeRoleWithWebIdentity",
                    &definition.arn,
                    &context
                ),
                "{}: {} does not trust {subject}",
                job.id(),
                definition.name
            );
            // Built first: no build script ever runs with credentials in the environment.
            if let Some(build) = job.first_step(|r| {
                r.contains("cargo build") || r.contains("buildx build") && !r.contains("--push")
            }) {
                assert!(
                    build < at,
                    "{}: builds after fetching credentials",
                    job.id()
                );
            }
            // Every AWS call comes after the credentials and is allowed by the role.
            for (i, step) in steps.iter().enumerate() {
                let actions = aws_actions(runs(i), &env, step, &job);
                if actions.is_empty() {
                    continue;
                }
                assert!(
                    i > at,
                    "{}: step {i} uses AWS before the credentials",
                    job.id()
                );
                for (action, resource) in actions {
                    assert!(
                        support::iam::allows(
                            &definition.policy,
                            &action,
                            &resource,
                            &Default::default()
                        ),
                        "{}: {} may not {action} on {resource}",
                        job.id(),
                        definition.name
                    );
                }
            }
            // The cluster is reached from the runner group its public endpoint admits; a
            // Terraform run reaches it too when the stack manages Helm releases (their
            // refresh reads the cluster).
            let stack_reaches_cluster = !stack.all("helm_release").is_empty();
            let touches_cluster = job.first_step(|r| {
                shopctl_invocations(r)
                    .iter()
                    .any(|a| match a.first().map(String::as_str) {
                        Some("kubeconfig" | "up" | "rollback" | "validate") => true,
                        Some("infra") => stack_reaches_cluster,
                        _ => false,
                    })
            });
            if touches_cluster.is_some() {
                let group = env.cluster.ci_runner_group.as_deref().unwrap_or_else(|| {
                    panic!(
                        "{env_name} names no CI runner group, but {} reaches its cluster",
                        job.id()
                    )
                });
                assert_eq!(job.job["runs-on"]["group"], group, "{}", job.id());
                assert!(
                    !env.cluster.public_access_cidrs.is_empty(),
                    "{env_name}: no public_access_cidrs"
                );
                let (_, cluster) = stack.all("aws_eks_cluster").pop().unwrap();
                let vpc = &cluster["vpc_config"][0];
                assert_eq!(vpc["endpoint_public_access"], true, "{env_name}");
                assert_eq!(
                    vpc["public_access_cidrs"],
                    serde_json::json!(env.cluster.public_access_cidrs),
                    "{env_name}: the endpoint admits exactly the environment's CIDRs"
                );
            }
            checked += 1;
        }
        // terraform is installed (pinned, verified) before anything that runs it.
        if let Some(first) = job.first_step(|r| {
            r.contains("shopctl infra") || r.contains(".ci/run") || r.contains("terraform ")
        }) {
            let install = job
                .first_step(|r| r.contains(".github/scripts/install-terraform.sh"))
                .unwrap_or_else(|| panic!("{} runs terraform without installing it", job.id()));
            assert!(
                install < first,
                "{}: terraform installed too late",
                job.id()
            );
        }
        let text = serde_json::to_string(&job.job).unwrap();
        assert!(
            !text.contains("ROLE_ARN"),
            "{}: roles come from the environment, not variables",
            job.id()
        );
    }
    assert!(
        checked >= 6,
        "only {checked} credential steps found: is the parsing broken?"
    );
}

/// The scripts read an environment file's values as shopctl does, for every environment.
#[test]
fn the_workflow_scripts_read_every_environment_as_shopctl_does() {
    let templates = shopctl::templates::Templates::embedded();
    for name in templates.environment_names() {
        let env = support::terraform::environment(&name);
        let read = std::process::Command::new(".github/scripts/environment-value.py")
            .args([
                &name,
                "aws.account_id",
                "aws.region",
                "cluster.name",
                "images.registry",
            ])
            .current_dir(workspace_root())
            .output()
            .unwrap();
        assert!(
            read.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&read.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&read.stdout)
                .lines()
                .collect::<Vec<_>>(),
            vec![
                env.aws.account_id.as_str(),
                env.aws.region.as_str(),
                env.cluster.name.as_str(),
                env.images.registry.as_str()
            ],
            "{name}"
        );
    }
}

/// CI installs the terraform the tests run, verified against HashiCorp's checksum.
#[test]
fn ci_installs_the_pinned_terraform_the_tests_run() {
    let script =
        std::fs::read_to_string(workspace_root().join(".github/scripts/install-terraform.sh"))
            .unwrap();
    let value = |name: &str| {
        script
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("install-terraform.sh sets no {name}"))
            .to_string()
    };
    let sha256 = value("sha256");
    assert!(sha256.len() == 64 && sha256.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(
        script.contains("sha256sum --check"),
        "the download is verified"
    );
    let local = std::process::Command::new("terraform")
        .arg("version")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&local.stdout)
            .starts_with(&format!("Terraform v{}\n", value("version"))),
        "the tests run terraform {}: {}",
        value("version"),
        String::from_utf8_lossy(&local.stdout)
    );
}

/// The credentials script against the emulator's STS and a stand-in for GitHub's OIDC
/// endpoint: the token is fetched with the job's request token for audience
/// sts.amazonaws.com, exchanged at once, and only masked keys are left, in $GITHUB_ENV.
#[tokio::test(flavor = "multi_thread")]
async fn the_credentials_script_exchanges_the_oidc_token_at_once_and_leaves_only_masked_keys() {
    use std::sync::{Arc, Mutex};
    let moto = support::moto().await;
    let env = support::terraform::environment("dev");
    let stack = support::terraform::environment_stack(&env);
    let role = &stack.roles()["deploy"];
    moto.create_role(&support::Keys::testing(), &role.name, &role.trust)
        .await;

    let token = format!("eyJ.{}.sig", uuid::Uuid::new_v4().simple());
    let asked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let app = {
        let (token, asked) = (token.clone(), asked.clone());
        axum::Router::new().route(
            "/token",
            axum::routing::get(
                move |headers: axum::http::HeaderMap, uri: axum::http::Uri| async move {
                    let bearer = headers["authorization"].to_str().unwrap().to_string();
                    asked
                        .lock()
                        .unwrap()
                        .push((bearer, uri.query().unwrap_or("").to_string()));
                    axum::Json(serde_json::json!({"value": token}))
                },
            ),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let oidc = format!(
        "http://{}/token?api-version=2.0",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let scratch = support::Scratch::new();
    let github_env = scratch.path("github-env");
    let run = tokio::process::Command::new(".github/scripts/aws-oidc-credentials.sh")
        .args(["dev", "deploy"])
        .current_dir(workspace_root())
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", &oidc)
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token")
        .env("GITHUB_ENV", &github_env)
        .env("GITHUB_RUN_ID", "4242")
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    assert!(run.status.success(), "{stdout}\n{stderr}");
    assert_eq!(
        asked.lock().unwrap().as_slice(),
        [(
            "bearer request-token".to_string(),
            "api-version=2.0&audience=sts.amazonaws.com".to_string()
        )]
    );
    let written = std::fs::read_to_string(&github_env).unwrap();
    let value = |name: &str| {
        written
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} not in GITHUB_ENV:\n{written}"))
            .to_string()
    };
    let keys = support::Keys {
        access_key: value("AWS_ACCESS_KEY_ID"),
        secret: value("AWS_SECRET_ACCESS_KEY"),
        session: Some(value("AWS_SESSION_TOKEN")),
    };
    assert_eq!(value("AWS_REGION"), "eu-west-1");
    for secret in [&keys.secret, keys.session.as_ref().unwrap()] {
        assert!(
            stdout.contains(&format!("::add-mask::{secret}")),
            "{stdout}"
        );
        assert!(!stderr.contains(secret.as_str()), "{stderr}");
    }
    for place in [&written, &stdout.to_string(), &stderr.to_string()] {
        assert!(!place.contains(&token), "the OIDC token leaked: {place}");
    }
    // The session is the role's, named after the run.
    let caller = moto
        .query(
            &keys,
            "sts",
            &[("Action", "GetCallerIdentity"), ("Version", "2011-06-15")],
        )
        .await
        .unwrap();
    assert_eq!(
        support::aws::xml_text(&caller, "Arn").unwrap(),
        format!(
            "arn:aws:sts::123456789012:assumed-role/{}/github-4242",
            role.name
        )
    );
}
