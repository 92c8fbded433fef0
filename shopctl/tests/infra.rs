//! `shopctl infra` with the real terraform binary and the AWS emulator (moto server):
//! bootstrap of the state backend, plan/apply/drift of a provider-free stack that uses
//! exactly the backend shopctl generates, state locks held, refused and released.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use shopmicro_common::testing::eventually;
use support::{Moto, Scratch, Shopctl, fixture, moto};

const STATE_BUCKET: &str = "shopmicro-dev-tfstate-123456789012";
const LOCK_TABLE: &str = "shopmicro-dev-tflock";
const STATE_KEY: &str = "shopmicro/dev/terraform.tfstate";

/// `shopctl infra ARGS` with the AWS credential chain pinned to the emulator and
/// Terraform's working data in a scratch state directory.
fn infra(moto: &Moto, state: &Path, args: &[&str]) -> Shopctl {
    let args: Vec<&str> = std::iter::once("infra")
        .chain(args.iter().copied())
        .collect();
    Shopctl::new(&args).aws(moto).state(state)
}

/// Runs `shopctl infra ARGS`; a JSON report it prints is checked against its schema.
fn run(moto: &Moto, state: &Path, args: &[&str]) -> Output {
    infra(moto, state, args).output()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json(output: &Output, code: i32) -> Value {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&output.stdout)))
}

/// A state backend made directly, for the Terraform tests: bootstrap's TLS-only bucket
/// policy (rightly) refuses the emulator's plain-HTTP object requests.
async fn plain_backend(moto: &Moto) {
    let s3 = moto.s3();
    s3.create_bucket()
        .bucket(STATE_BUCKET)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    moto.lock_table(LOCK_TABLE).await;
}

/// The action of every step `infra bootstrap` reports.
fn bootstrap_actions(moto: &Moto, state: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["bootstrap", "--env", "dev", "--output", "json"];
    args.extend(extra);
    let report = json(&run(moto, state, &args), 0);
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap().to_string())
        .collect()
}

fn stack(name: &str) -> String {
    fixture(&format!("terraform/{name}"))
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_creates_a_safe_backend_and_a_second_run_changes_nothing() {
    let moto = moto().await;
    let state = Scratch::new();

    assert_eq!(
        bootstrap_actions(&moto, &state.0, &["--dry-run"]),
        ["would create"; 2]
    );
    assert!(
        moto.s3()
            .head_bucket()
            .bucket(STATE_BUCKET)
            .send()
            .await
            .is_err(),
        "a dry run creates nothing"
    );

    assert_eq!(bootstrap_actions(&moto, &state.0, &[]), ["created"; 2]);
    let s3 = moto.s3();
    let versioning = s3
        .get_bucket_versioning()
        .bucket(STATE_BUCKET)
        .send()
        .await
        .unwrap();
    assert_eq!(versioning.status().map(|s| s.as_str()), Some("Enabled"));
    let encryption = s3
        .get_bucket_encryption()
        .bucket(STATE_BUCKET)
        .send()
        .await
        .unwrap();
    let rule = &encryption
        .server_side_encryption_configuration()
        .unwrap()
        .rules()[0];
    assert_eq!(
        rule.apply_server_side_encryption_by_default()
            .unwrap()
            .sse_algorithm()
            .as_str(),
        "aws:kms"
    );
    let block = s3
        .get_public_access_block()
        .bucket(STATE_BUCKET)
        .send()
        .await
        .unwrap();
    assert_eq!(
        block
            .public_access_block_configuration()
            .unwrap()
            .restrict_public_buckets(),
        Some(true)
    );
    let policy = s3
        .get_bucket_policy()
        .bucket(STATE_BUCKET)
        .send()
        .await
        .unwrap();
    assert!(policy.policy().unwrap().contains("aws:SecureTransport"));
    let dynamodb = moto.dynamodb();
    let table = dynamodb
        .describe_table()
        .table_name(LOCK_TABLE)
        .send()
        .await
        .unwrap();
    let table = table.table().unwrap();
    assert_eq!(table.key_schema()[0].attribute_name(), "LockID");
    assert_eq!(
        table
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map(|m| m.as_str()),
        Some("PAY_PER_REQUEST")
    );
    let backups = dynamodb
        .describe_continuous_backups()
        .table_name(LOCK_TABLE)
        .send()
        .await
        .unwrap();
    let pitr = backups
        .continuous_backups_description()
        .unwrap()
        .point_in_time_recovery_description()
        .unwrap();
    assert_eq!(
        pitr.point_in_time_recovery_status().map(|s| s.as_str()),
        Some("ENABLED")
    );

    assert_eq!(bootstrap_actions(&moto, &state.0, &[]), ["found"; 2]);
    // The policy is enforced: the emulator's plain-HTTP object requests are now refused.
    let insecure = s3
        .get_object()
        .bucket(STATE_BUCKET)
        .key("any")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        insecure.raw_response().map(|r| r.status().as_u16()),
        Some(403)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_existing_bucket_without_versioning_is_reported_not_used() {
    let moto = support::moto_with_bucket(STATE_BUCKET).await;
    let state = Scratch::new();

    let refused = run(&moto, &state.0, &["bootstrap", "--env", "dev"]);

    assert_eq!(refused.status.code(), Some(2));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("exists but cannot be used")
            && stderr.contains("versioning is not enabled"),
        "{stderr}"
    );
    assert!(
        moto.dynamodb()
            .describe_table()
            .table_name(LOCK_TABLE)
            .send()
            .await
            .is_err(),
        "nothing else was created"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_name_held_by_another_account_is_reported_not_used() {
    let moto = moto().await;
    let state = Scratch::new();
    // Another account (moto gives assumed-role credentials that account) owns the name.
    let (key, secret, token) = moto.credentials_for_account("999999999999").await;
    let other = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .endpoint_url(&moto.endpoint)
            .region(aws_sdk_s3::config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                key,
                secret,
                Some(token),
                None,
                "other",
            ))
            .force_path_style(true)
            .build(),
    );
    other
        .create_bucket()
        .bucket(STATE_BUCKET)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .unwrap();

    let refused = run(&moto, &state.0, &["bootstrap", "--env", "dev"]);

    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("exists but cannot be used") && stderr.contains("another account"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_apply_and_drift_run_real_terraform_against_the_emulated_backend() {
    let moto = moto().await;
    let state = Scratch::new();
    plain_backend(&moto).await;
    let fixture = stack("stack");

    let plan = json(
        &run(
            &moto,
            &state.0,
            &[
                "plan", "--env", "dev", "--stack", &fixture, "--output", "json",
            ],
        ),
        0,
    );
    assert_eq!(plan["changes"], true);
    assert_eq!(plan["summary"]["counts"]["create"]["terraform_data"], 1);

    let applied = run(
        &moto,
        &state.0,
        &[
            "apply", "--env", "dev", "--stack", &fixture, "--output", "json",
        ],
    );
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    assert!(
        text(&applied.stderr).contains("==> terraform apply: done"),
        "each phase is reported"
    );
    let report: Value = serde_json::from_slice(&applied.stdout).unwrap();
    assert_eq!(report["applied"], true, "{report:#}");
    assert_eq!(
        report["summary"]["counts"]["create"]["terraform_data"], 1,
        "{report:#}"
    );
    let state_json = moto.json_object(STATE_BUCKET, STATE_KEY).await;
    assert_eq!(state_json["resources"][0]["type"], "terraform_data");

    let steady = json(
        &run(
            &moto,
            &state.0,
            &[
                "drift", "--env", "dev", "--stack", &fixture, "--output", "json",
            ],
        ),
        0,
    );
    assert_eq!(steady["drift"], false);
    let drifted = json(
        &run(
            &moto,
            &state.0,
            &[
                "drift",
                "--env",
                "dev",
                "--stack",
                &fixture,
                "--set",
                "cluster.name=renamed",
                "--output",
                "json",
            ],
        ),
        1,
    );
    assert_eq!(
        drifted["summary"]["counts"]["update"]["terraform_data"], 1,
        "{drifted}"
    );

    let wrong_name = run(
        &moto,
        &state.0,
        &[
            "destroy",
            "--env",
            "dev",
            "--stack",
            &fixture,
            "--confirm",
            "prod",
        ],
    );
    assert_eq!(wrong_name.status.code(), Some(2));
    assert!(text(&wrong_name.stderr).contains("does not name the environment being destroyed"));
    let destroyed = run(
        &moto,
        &state.0,
        &[
            "destroy",
            "--env",
            "dev",
            "--stack",
            &fixture,
            "--confirm",
            "dev",
            "--output",
            "json",
        ],
    );
    assert!(destroyed.status.success(), "{}", text(&destroyed.stderr));
    let report: Value = serde_json::from_slice(&destroyed.stdout).unwrap();
    assert_eq!(
        report["summary"]["counts"]["delete"]["terraform_data"], 1,
        "{report:#}"
    );
    let state_json = moto.json_object(STATE_BUCKET, STATE_KEY).await;
    assert_eq!(
        state_json["resources"],
        serde_json::json!([]),
        "nothing is left in the state"
    );

    let scratch = Scratch::new();
    let broken = scratch.path("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(
        broken.join("main.tf"),
        "terraform {\n  backend \"s3\" {}\n}\nresource \"terraform_data\" {\n",
    )
    .unwrap();
    let failed = run(
        &moto,
        &state.0,
        &["drift", "--env", "dev", "--stack", broken.to_str().unwrap()],
    );
    assert_eq!(failed.status.code(), Some(2), "{}", text(&failed.stderr));
    assert!(
        text(&failed.stderr).contains("terraform init failed"),
        "{}",
        text(&failed.stderr)
    );
}

/// The processes under `pid` (Linux /proc), for killing an apply together with terraform.
fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let parent = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if parent == Some(pid) {
            found.push(child);
            found.extend(descendants(child));
        }
    }
    found
}

/// (ID, operation) of each lock held on dev's state.
fn locks(moto: &Moto, state: &Path, fixture: &str) -> Vec<(String, String)> {
    let locks = json(
        &run(
            moto,
            state,
            &[
                "locks", "--env", "dev", "--stack", fixture, "--output", "json",
            ],
        ),
        0,
    );
    locks["locks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["id"].as_str().unwrap().to_string(),
                l["operation"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_lock_stops_a_second_apply_and_a_lock_left_by_a_killed_apply_can_be_released() {
    let moto = moto().await;
    let state = Scratch::new();
    let second_state = Scratch::new();
    plain_backend(&moto).await;
    let fixture = stack("slow");

    let mut first = infra(
        &moto,
        &state.0,
        &["apply", "--env", "dev", "--stack", &fixture, "--yes"],
    )
    .command()
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let held = eventually(
        "the first apply to take the lock",
        Duration::from_secs(60),
        || {
            let held = locks(&moto, &state.0, &fixture);
            held.iter()
                .find(|(_, operation)| operation == "OperationTypeApply")
                .map(|(id, _)| id.clone())
                .ok_or_else(|| format!("{held:?}"))
        },
    );

    let second = run(
        &moto,
        &second_state.0,
        &["apply", "--env", "dev", "--stack", &fixture, "--yes"],
    );
    assert_eq!(second.status.code(), Some(2));
    let stderr = text(&second.stderr);
    assert!(
        stderr.contains("is locked by")
            && stderr.contains(&held)
            && stderr.contains("shopctl infra unlock"),
        "{stderr}"
    );

    for pid in descendants(first.id()) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(
        locks(&moto, &state.0, &fixture)
            .into_iter()
            .map(|(id, _)| id)
            .collect::<Vec<_>>(),
        std::slice::from_ref(&held),
        "the killed apply left its lock"
    );

    let refused = run(
        &moto,
        &state.0,
        &[
            "unlock", "--env", "dev", "--stack", &fixture, &held, "--yes",
        ],
    );
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("may belong to a run still in progress"),
        "{}",
        text(&refused.stderr)
    );
    let unknown = run(
        &moto,
        &state.0,
        &[
            "unlock",
            "--env",
            "dev",
            "--stack",
            &fixture,
            "not-a-lock",
            "--yes",
            "--force",
        ],
    );
    assert!(
        text(&unknown.stderr).contains("no lock not-a-lock is held"),
        "{}",
        text(&unknown.stderr)
    );

    let released = run(
        &moto,
        &state.0,
        &[
            "unlock", "--env", "dev", "--stack", &fixture, &held, "--yes", "--force",
        ],
    );
    assert!(released.status.success(), "{}", text(&released.stderr));
    assert!(locks(&moto, &state.0, &fixture).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_wrong_account_a_missing_or_old_terraform_each_stop_with_one_clear_error() {
    let moto = moto().await;
    let state = Scratch::new();
    let fixture = stack("stack");
    let one_line = |output: &Output, expected: &str| {
        assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in:\n{stderr}"
        );
    };

    let no_credentials = infra(
        &moto,
        &state.0,
        &["plan", "--env", "dev", "--stack", &fixture],
    )
    .env_remove("AWS_ACCESS_KEY_ID")
    .env_remove("AWS_SECRET_ACCESS_KEY")
    .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    .env("AWS_CONFIG_FILE", "/nonexistent")
    .output();
    one_line(&no_credentials, "no usable AWS credentials");

    // The emulator's account is 123456789012; prod lives in another.
    one_line(
        &run(
            &moto,
            &state.0,
            &["plan", "--env", "prod", "--stack", &fixture],
        ),
        "these AWS credentials are for account 123456789012, but environment prod lives in account 210987654321",
    );

    let no_terraform = infra(
        &moto,
        &state.0,
        &["plan", "--env", "dev", "--stack", &fixture],
    )
    .env("PATH", "/usr/bin:/bin")
    .env_remove("SHOPCTL_TERRAFORM")
    .output();
    one_line(&no_terraform, "terraform is not installed");

    let scratch = Scratch::new();
    let old: PathBuf = scratch.path("terraform");
    std::fs::write(
        &old,
        "#!/bin/sh\necho '{\"terraform_version\": \"1.5.7\"}'\n",
    )
    .unwrap();
    std::fs::set_permissions(&old, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let too_old = infra(
        &moto,
        &state.0,
        &["plan", "--env", "dev", "--stack", &fixture],
    )
    .env("SHOPCTL_TERRAFORM", &old)
    .output();
    one_line(&too_old, "terraform 1.5.7 is too old");

    one_line(
        &run(&moto, &state.0, &["plan", "--env", "local"]),
        "has no cloud infrastructure",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kubeconfig_and_eks_token_for_a_cluster_in_the_emulator() {
    let moto = moto().await;
    let state = Scratch::new();
    let eks_config = aws_sdk_eks::config::Builder::new()
        .behavior_version(aws_sdk_eks::config::BehaviorVersion::latest())
        .endpoint_url(&moto.endpoint)
        .region(aws_sdk_eks::config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_eks::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .build();
    let vpc = aws_sdk_eks::types::VpcConfigRequest::builder()
        .subnet_ids("subnet-1")
        .subnet_ids("subnet-2")
        .build();
    let created = aws_sdk_eks::Client::from_conf(eks_config)
        .create_cluster()
        .name("shopmicro-dev")
        .role_arn("arn:aws:iam::123456789012:role/shopmicro-dev-cluster")
        .resources_vpc_config(vpc)
        .send()
        .await
        .unwrap();
    let created = created.cluster().unwrap();
    let kubeconfig = state.path("kube/config");

    let written = Shopctl::new(&[
        "kubeconfig",
        "--env",
        "dev",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ])
    .aws(&moto)
    .state(&state.0)
    .output();
    assert!(written.status.success(), "{}", text(&written.stderr));
    let config: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&kubeconfig).unwrap()).unwrap();
    let arn = created.arn().unwrap();
    assert_eq!(config["current-context"], arn);
    assert_eq!(
        config["clusters"][0]["cluster"]["server"],
        created.endpoint().unwrap()
    );
    assert_eq!(
        config["clusters"][0]["cluster"]["certificate-authority-data"],
        created.certificate_authority().unwrap().data().unwrap()
    );
    assert_eq!(
        config["users"][0]["user"]["exec"]["args"],
        serde_json::json!(["eks-token", "--env", "dev"])
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let issued = Shopctl::new(&["eks-token", "--env", "dev"])
        .aws(&moto)
        .state(&state.0)
        .output();
    let credential: Value = serde_json::from_slice(&issued.stdout)
        .unwrap_or_else(|_| panic!("{}", text(&issued.stderr)));
    assert_eq!(credential["kind"], "ExecCredential");
    let token = credential["status"]["token"].as_str().unwrap();
    use base64::Engine;
    let url = String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(
                token
                    .strip_prefix("k8s-aws-v1.")
                    .expect("the k8s-aws-v1. prefix"),
            )
            .unwrap(),
    )
    .unwrap();
    for part in [
        "Action=GetCallerIdentity",
        "X-Amz-Expires=60",
        "X-Amz-SignedHeaders=host%3Bx-k8s-aws-id",
        "X-Amz-Signature=",
    ] {
        assert!(url.contains(part), "{part} in {url}");
    }
    // Signed for STS in the environment's region with the caller's key. (The authenticator
    // replays the URL against STS; moto's single-port server routes such a GET to S3, so
    // the replay itself cannot be shown here.)
    let today = chrono::Utc::now().format("%Y%m%d").to_string();
    assert!(
        url.contains(&format!(
            "X-Amz-Credential=testing%2F{today}%2Feu-west-1%2Fsts%2Faws4_request"
        )),
        "{url}"
    );
    assert!(
        url.starts_with(&moto.endpoint),
        "the emulator's STS, as AWS_ENDPOINT_URL says: {url}"
    );
}
