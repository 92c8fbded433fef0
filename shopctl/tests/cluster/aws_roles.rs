//! Every AWS identity can do exactly its job, against IAM that says no. Each GitHub role
//! the Terraform creates is made in the emulator from the documents Terraform reads
//! (`terraform/modules/iam/policies/*.json.tftpl`, rendered as `templatefile` renders them),
//! in its environment's account; then the emulator enforces IAM, and each role runs the
//! shopctl commands of the workflows that assume it. Taking any one action away makes a
//! command fail, naming the operation — or, where the emulator cannot tell, a static check
//! over the Terraform names it: KMS (the emulator does not involve keys in S3 reads) and
//! what a `terraform plan` of the real stack refreshes (its provider cannot be downloaded
//! here). An action neither needs is a failure too: least privilege both ways.

use std::collections::{BTreeMap, BTreeSet};

use shopmicro_common::testing::TestDatabase;

use crate::harness::*;
use crate::support::aws::{for_emulator, moto_trusting_signatures};
use crate::support::terraform::{self, Instance, Role};
use crate::support::{Keys, fixture, iam};

/// What a role does in AWS beyond what the emulator can check, from the Terraform: which
/// (action, resource) pairs it needs.
fn static_needs(
    role: &str,
    stack: &Instance,
    env: &shopctl::env::Environment,
) -> BTreeSet<(String, String)> {
    let mut needs = BTreeSet::new();
    let backups = format!("arn:aws:s3:::{}", env.backup.bucket);
    // Both read the state's lock, which is mostly absent: without s3:ListBucket on the
    // bucket S3 answers 403 instead of 404 for a missing key (the emulator answers 404
    // regardless), and Terraform's S3 backend documentation requires it.
    if matches!(role, "deploy" | "plan") {
        needs.insert((
            "s3:ListBucket".into(),
            format!("arn:aws:s3:::{}", env.terraform.state_bucket),
        ));
    }
    let backup_key = stack
        .all("aws_s3_bucket_server_side_encryption_configuration")
        .into_iter()
        .find(|(_, c)| c["bucket"] == env.backup.bucket.as_str())
        .map(|(_, c)| {
            c["rule"][0]["apply_server_side_encryption_by_default"][0]["kms_master_key_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .expect("the backup bucket is encrypted with a key of the stack's");
    match role {
        // Backups are SSE-KMS objects: reading one decrypts with the bucket's key.
        "deploy" => {
            needs.insert(("kms:Decrypt".into(), backup_key));
        }
        // A plan refreshes everything the stack manages.
        "plan" => {
            for kind in stack_types(stack) {
                let (actions, resource) = refresh(&kind, &backups);
                for action in actions {
                    needs.insert((action.to_string(), resource.clone()));
                }
            }
        }
        _ => {}
    }
    needs
}

fn stack_types(stack: &Instance) -> BTreeSet<String> {
    fn collect(instance: &Instance, into: &mut BTreeSet<String>) {
        into.extend(instance.resources.keys().cloned());
        for module in instance.modules.values() {
            collect(module, into);
        }
    }
    let mut types = BTreeSet::new();
    collect(stack, &mut types);
    types
}

/// The read calls the AWS provider makes to refresh a resource of `kind` (its IAM
/// actions), and on what.
fn refresh(kind: &str, bucket: &str) -> (&'static [&'static str], String) {
    let any = "*".to_string();
    let actions: &[&str] = match kind {
        "aws_vpc" => &["ec2:DescribeVpcs", "ec2:DescribeVpcAttribute"],
        "aws_subnet" => &["ec2:DescribeSubnets"],
        "aws_internet_gateway" => &["ec2:DescribeInternetGateways"],
        "aws_nat_gateway" => &["ec2:DescribeNatGateways"],
        "aws_eip" => &["ec2:DescribeAddresses"],
        "aws_route" | "aws_route_table" | "aws_route_table_association" => {
            &["ec2:DescribeRouteTables"]
        }
        "aws_default_security_group" => &["ec2:DescribeSecurityGroups"],
        "aws_flow_log" => &["ec2:DescribeFlowLogs"],
        "aws_launch_template" => &[
            "ec2:DescribeLaunchTemplates",
            "ec2:DescribeLaunchTemplateVersions",
        ],
        "aws_eks_cluster" => &["eks:DescribeCluster"],
        "aws_eks_node_group" => &["eks:DescribeNodegroup"],
        "aws_eks_addon" => &["eks:DescribeAddon"],
        "aws_eks_access_entry" => &["eks:DescribeAccessEntry"],
        "aws_eks_access_policy_association" => &["eks:ListAssociatedAccessPolicies"],
        "aws_iam_role" => &[
            "iam:GetRole",
            "iam:ListRolePolicies",
            "iam:ListAttachedRolePolicies",
        ],
        "aws_iam_role_policy" => &["iam:GetRolePolicy"],
        "aws_iam_role_policy_attachment" => &["iam:ListAttachedRolePolicies"],
        "aws_iam_openid_connect_provider" => &["iam:GetOpenIDConnectProvider"],
        "aws_kms_key" => &[
            "kms:DescribeKey",
            "kms:GetKeyPolicy",
            "kms:GetKeyRotationStatus",
            "kms:ListResourceTags",
        ],
        "aws_kms_alias" => &["kms:ListAliases"],
        // Not AWS: the Helm provider reads the release from the cluster, as the plan
        // identity's Kubernetes group (identities.rs proves that read).
        "helm_release" => &[],
        "aws_cloudwatch_log_group" => &["logs:DescribeLogGroups", "logs:ListTagsForResource"],
        "aws_ecr_repository" => &["ecr:DescribeRepositories", "ecr:ListTagsForResource"],
        "aws_s3_bucket" => {
            return (
                &[
                    "s3:ListBucket",
                    "s3:GetBucketAcl",
                    "s3:GetBucketCORS",
                    "s3:GetBucketWebsite",
                    "s3:GetBucketVersioning",
                    "s3:GetAccelerateConfiguration",
                    "s3:GetBucketRequestPayment",
                    "s3:GetBucketLogging",
                    "s3:GetLifecycleConfiguration",
                    "s3:GetReplicationConfiguration",
                    "s3:GetEncryptionConfiguration",
                    "s3:GetBucketObjectLockConfiguration",
                    "s3:GetBucketPolicy",
                    "s3:GetBucketTagging",
                ],
                bucket.to_string(),
            );
        }
        "aws_s3_bucket_versioning" => return (&["s3:GetBucketVersioning"], bucket.to_string()),
        "aws_s3_bucket_server_side_encryption_configuration" => {
            return (&["s3:GetEncryptionConfiguration"], bucket.to_string());
        }
        "aws_s3_bucket_lifecycle_configuration" => {
            return (&["s3:GetLifecycleConfiguration"], bucket.to_string());
        }
        "aws_s3_bucket_public_access_block" => {
            return (&["s3:GetBucketPublicAccessBlock"], bucket.to_string());
        }
        other => {
            panic!("which reads refresh a {other}? Add them here, and to the plan role's policy")
        }
    };
    (actions, any)
}

/// The API operation an IAM action's refusal shows up as in shopctl's or Terraform's
/// error (SDK operation names), so a refusal can be traced to the action taken away.
fn operations(action: &str) -> &'static [&'static str] {
    match action {
        "s3:ListBucket" => &["ListObjectsV2", "ListObjects", "HeadBucket"],
        "s3:GetObject" => &["GetObject", "HeadObject"],
        "s3:PutObject" => &["PutObject", "CreateMultipartUpload"],
        "s3:DeleteObject" => &["DeleteObject"],
        "dynamodb:GetItem" => &["GetItem"],
        "dynamodb:PutItem" => &["PutItem"],
        "dynamodb:DeleteItem" => &["DeleteItem"],
        "eks:DescribeCluster" => &["DescribeCluster"],
        _ => &[],
    }
}

/// One environment's account in the emulator, set up as `shopctl up` and the backup
/// CronJob would leave it, with the GitHub roles' sessions.
struct Account {
    env: shopctl::env::Environment,
    admin: Keys,
    roles: BTreeMap<String, Role>,
    sessions: BTreeMap<String, Keys>,
    stack: Instance,
    scratch: Scratch,
}

impl Account {
    async fn open(moto: &Moto, cluster: &TestCluster, env: &str) -> Self {
        let environment = terraform::environment(env);
        let stack = terraform::environment_stack(&environment);
        let keys = moto.keys_for_account(&environment.aws.account_id).await;
        let admin = moto.administrator(&keys).await;
        let account = Self {
            env: environment,
            admin,
            roles: stack.roles(),
            sessions: BTreeMap::new(),
            stack,
            scratch: Scratch::new(),
        };
        let stack_dir = fixture("terraform/stack");
        let stack_dir = stack_dir.to_str().unwrap();
        let bucket = format!(
            "s3://{}/{}",
            account.env.backup.bucket, account.env.backup.prefix
        );
        let database = TestDatabase::create().await;
        // Made by hand rather than by `infra bootstrap`: its TLS-only bucket policy denies
        // with a condition the emulator cannot evaluate, so the emulator would deny all.
        for name in [
            &account.env.backup.bucket,
            &account.env.terraform.state_bucket,
        ] {
            let region =
                aws_sdk_s3::types::BucketLocationConstraint::from(account.env.aws.region.as_str());
            moto.s3_as(&keys)
                .create_bucket()
                .bucket(name)
                .create_bucket_configuration(
                    aws_sdk_s3::types::CreateBucketConfiguration::builder()
                        .location_constraint(region)
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
        moto.lock_table_as(&keys, &account.env.terraform.lock_table)
            .await;
        for step in [
            vec![
                "infra", "apply", "--env", env, "--stack", stack_dir, "--yes",
            ],
            vec![
                "db",
                "backup",
                "--database-url",
                database.url(),
                "--to",
                &bucket,
            ],
            vec![
                "db",
                "verify",
                "--database-url",
                database.url(),
                "--from",
                &bucket,
            ],
        ] {
            let run = account.shopctl(cluster, moto, &keys, &step);
            assert_eq!(run.code, 0, "{step:?}: {}", run.stderr);
        }
        moto.eks_as(&keys)
            .create_cluster()
            .name(&account.env.cluster.name)
            .role_arn(format!(
                "arn:aws:iam::{}:role/eks",
                account.env.aws.account_id
            ))
            .resources_vpc_config(
                aws_sdk_eks::types::VpcConfigRequest::builder()
                    .subnet_ids("subnet-1")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        account
    }

    /// Creates the workflow roles from their documents and opens a session of each.
    async fn sign_in(&mut self, moto: &Moto) {
        for (role, definition) in &self.roles {
            if !["deploy", "plan"].contains(&role.as_str()) {
                continue;
            }
            moto.create_role(&self.admin, &definition.name, &definition.trust)
                .await;
            moto.put_role_policy(
                &self.admin,
                &definition.name,
                &for_emulator(&definition.policy),
            )
            .await;
            self.sessions
                .insert(role.clone(), moto.web_identity(&definition.arn).await);
        }
    }

    /// Releases any state lock a refused command left behind (as `infra unlock` would).
    async fn clear_locks(&self, moto: &Moto) {
        let key = shopctl::infra::state_key(&self.env);
        let _ = moto
            .s3_as(&self.admin)
            .delete_object()
            .bucket(&self.env.terraform.state_bucket)
            .key(format!("{key}.tflock"))
            .send()
            .await;
        let lock_id = format!("{}/{key}", self.env.terraform.state_bucket);
        let _ = moto
            .dynamodb_as(&self.admin)
            .delete_item()
            .table_name(&self.env.terraform.lock_table)
            .key(
                "LockID",
                aws_sdk_dynamodb::types::AttributeValue::S(lock_id),
            )
            .send()
            .await;
    }

    /// shopctl with `keys`, the emulator, and Terraform's data in this account's scratch.
    fn shopctl(&self, cluster: &TestCluster, moto: &Moto, keys: &Keys, args: &[&str]) -> Run {
        let state = self.scratch.path("state");
        let mut vars: Vec<(&str, String)> = keys.vars();
        vars.push(("SHOPCTL_STATE_DIR", state.to_str().unwrap().to_string()));
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        cluster.shopctl_aws_with(moto, &vars, args)
    }

    /// The commands the workflows assuming `role` run, each with the exit code it must
    /// have; the first that fails, with its output.
    fn run_workflow(
        &self,
        cluster: &TestCluster,
        moto: &Moto,
        role: &str,
    ) -> Result<(), (Vec<String>, Run)> {
        let env = self.env.name.as_str();
        let stack = fixture("terraform/stack");
        let stack = stack.to_str().unwrap();
        let kubeconfig = self.scratch.path("written-kubeconfig");
        let steps: Vec<Vec<&str>> = match role {
            // deploy-dev.yml and rollback.yml: kubeconfig, deploy or roll back (the
            // cluster's half is proven in `identities`), validate; runbooks list backups.
            "deploy" => vec![
                vec![
                    "kubeconfig",
                    "--env",
                    env,
                    "--kubeconfig",
                    kubeconfig.to_str().unwrap(),
                ],
                vec![
                    "validate",
                    "--env",
                    env,
                    "--context",
                    "shopmicro-dev",
                    "--only",
                    "access.aws,access.terraform-state,storage.backup-object",
                    "--output",
                    "json",
                ],
                vec!["backup", "--env", env, "--context", "shopmicro-dev", "list"],
            ],
            // terraform.yml and drift.yml.
            "plan" => vec![
                vec!["infra", "plan", "--env", env, "--stack", stack],
                vec![
                    "infra", "drift", "--env", env, "--stack", stack, "--output", "json",
                ],
            ],
            other => panic!("no workflow runs shopctl as {other}"),
        };
        for step in steps {
            let run = self.shopctl(cluster, moto, &self.sessions[role], &step);
            if run.code != 0 {
                return Err((step.iter().map(|s| s.to_string()).collect(), run));
            }
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_workflow_role_runs_its_commands_under_iam_that_says_no_and_needs_every_action_it_has()
 {
    let moto = moto_trusting_signatures().await;
    let cluster = TestCluster::start();
    let mut accounts = Vec::new();
    for env in ["dev", "prod"] {
        let mut account = Account::open(&moto, &cluster, env).await;
        account.sign_in(&moto).await;
        accounts.push(account);
    }
    moto.enforce().await;

    for account in &accounts {
        let env = account.env.name.as_str();
        let stack = fixture("terraform/stack");
        let stack = stack.to_str().unwrap();
        for role in ["deploy", "plan"] {
            if let Err((step, run)) = account.run_workflow(&cluster, &moto, role) {
                panic!(
                    "{env} {role}: {step:?} exited {}:\n{}\n{}",
                    run.code, run.stdout, run.stderr
                );
            }
        }
        // Outside its job, each role is refused, and the refusal names the operation.
        let database = TestDatabase::create().await;
        let bucket = format!(
            "s3://{}/{}",
            account.env.backup.bucket, account.env.backup.prefix
        );
        for (role, step, operation) in [
            // Taking the state lock: a lock file, else an item in the lock table.
            (
                "deploy",
                vec!["infra", "plan", "--env", env, "--stack", stack],
                if account.env.terraform.use_lockfile {
                    "PutObject"
                } else {
                    "PutItem"
                },
            ),
            (
                "deploy",
                vec![
                    "db",
                    "backup",
                    "--database-url",
                    database.url(),
                    "--to",
                    &bucket,
                ],
                "CreateMultipartUpload",
            ),
            (
                "plan",
                vec!["backup", "--env", env, "--context", "shopmicro-dev", "list"],
                "GetObject",
            ),
            // A change to apply: the state would be written.
            (
                "plan",
                vec![
                    "infra",
                    "apply",
                    "--env",
                    env,
                    "--stack",
                    stack,
                    "--yes",
                    "--set",
                    "cluster.name=changed",
                ],
                "PutObject",
            ),
        ] {
            let run = account.shopctl(&cluster, &moto, &account.sessions[role], &step);
            assert_ne!(
                run.code, 0,
                "{env} {role} may not {step:?}:\n{}",
                run.stdout
            );
            // (The emulator refuses JSON APIs with an XML body clients cannot decode: then
            // the status, 403, is what shows.)
            let refused =
                run.stderr.contains("AccessDenied") || run.stderr.contains("StatusCode: 403");
            assert!(
                refused && run.stderr.contains(operation),
                "{env} {role} {step:?}: the refusal names {operation}:\n{}",
                run.stderr
            );
            if step[..2] == ["infra", "apply"] {
                assert_state_kept_privately(&run.stderr, stack);
            }
        }

        // Least privilege: every action each role has is needed, by a command the emulator
        // refuses without it, or by a need the Terraform shows.
        for role in ["deploy", "plan"] {
            let definition = &account.roles[role];
            let statically = static_needs(role, &account.stack, &account.env);
            for (action, resource) in &statically {
                assert!(
                    iam::allows(&definition.policy, action, resource, &BTreeMap::new()),
                    "{env} {role} needs {action} on {resource}"
                );
            }
            for (sid, action) in iam::allowed_actions(&definition.policy) {
                let reduced = iam::without(&definition.policy, &sid, &action);
                let needed_statically = statically.iter().any(|(a, r)| {
                    iam::allows(&definition.policy, a, r, &BTreeMap::new())
                        && !iam::allows(&reduced, a, r, &BTreeMap::new())
                });
                if needed_statically {
                    continue;
                }
                moto.put_role_policy(&account.admin, &definition.name, &for_emulator(&reduced))
                    .await;
                let outcome = account.run_workflow(&cluster, &moto, role);
                moto.put_role_policy(
                    &account.admin,
                    &definition.name,
                    &for_emulator(&definition.policy),
                )
                .await;
                account.clear_locks(&moto).await;
                let Err((step, run)) = outcome else {
                    panic!("{env} {role}: {action} ({sid}) is needed by nothing: remove it");
                };
                // (The emulator answers EKS's JSON API with an XML refusal the SDK cannot
                // read, so the code is not always there; the operation is.)
                // validate reports in its JSON; commands on stderr.
                let said = format!("{}{}", run.stdout, run.stderr);
                assert!(
                    operations(&action).iter().any(|op| said.contains(op)),
                    "{env} {role} without {action}: {step:?} must fail naming it:\n{said}"
                );
            }
        }
    }
}

/// An apply that changed things but could not save the state: Terraform's errored state
/// is moved out of the stack (a checkout) to a private file the error names, with how to
/// push it.
fn assert_state_kept_privately(stderr: &str, stack: &str) {
    use std::os::unix::fs::PermissionsExt;
    assert!(
        !std::path::Path::new(stack).join("errored.tfstate").exists(),
        "the errored state was left in the stack directory"
    );
    assert!(stderr.contains("could not save the state"), "{stderr}");
    assert!(stderr.contains("state push"), "{stderr}");
    let kept = stderr
        .split_once("the state is kept at ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no kept state named: {stderr}"));
    let metadata = std::fs::metadata(kept).unwrap_or_else(|e| panic!("{kept}: {e}"));
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600, "{kept}");
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(kept).unwrap()).unwrap();
    assert_eq!(state["version"], 4, "{kept} is a Terraform state");
}
