//! Running Terraform for an environment: the backend configuration and variables come from
//! the environment's values, Terraform's working data lives in shopctl's state directory
//! (the checkout stays clean), plans are summarised from `terraform show -json`, and a
//! held lock becomes one sentence naming who holds it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use serde_json::{Value, json};

use crate::env::Environment;
use crate::local::state::StateDir;

/// The oldest Terraform whose S3 backend takes `endpoints = {…}` and `use_lockfile`.
const MINIMUM_VERSION: (u64, u64) = (1, 10);

pub struct Workspace {
    pub terraform: PathBuf,
    pub stack: PathBuf,
    /// TF_DATA_DIR plus the generated backend and variable files.
    pub data: PathBuf,
    pub state_key: String,
}

/// One resource's planned change.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ResourceChange {
    pub address: String,
    pub resource_type: String,
    /// create, update, replace, delete or read.
    pub action: String,
}

#[derive(Debug, Clone, Serialize, Default, schemars::JsonSchema)]
pub struct PlanSummary {
    pub changes: Vec<ResourceChange>,
    /// action → resource type → count.
    pub counts: BTreeMap<String, BTreeMap<String, usize>>,
}

impl PlanSummary {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Deletions and replacements: what must be confirmed.
    pub fn destructive(&self) -> Vec<&ResourceChange> {
        self.changes
            .iter()
            .filter(|c| c.action == "delete" || c.action == "replace")
            .collect()
    }
}

/// A held state lock, from Terraform's "Lock Info" block.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LockInfo {
    pub id: String,
    pub who: String,
    pub operation: String,
    pub created: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TerraformError {
    #[error(
        "the state of {env} is locked by {} ({} since {}, lock ID {}); wait for it to finish, or \
         if it is stale, `shopctl infra locks --env {env}` and `shopctl infra unlock --env {env} {}`",
        lock.who, lock.operation, lock.created, lock.id, lock.id
    )]
    Locked { env: String, lock: LockInfo },
    #[error("terraform {command} failed: {message}")]
    Failed { command: String, message: String },
    #[error(
        "terraform {command} changed infrastructure but could not save the state ({message}); \
         the state is kept at {} (private: it may hold secrets, never commit it): once the \
         cause is fixed, `TF_DATA_DIR={} terraform -chdir={} state push {}`, then delete it",
        kept.display(), data.display(), stack.display(), kept.display()
    )]
    StateNotSaved {
        command: String,
        message: String,
        kept: PathBuf,
        data: PathBuf,
        stack: PathBuf,
    },
}

/// What Terraform writes into the working directory when it cannot save a changed state.
const ERRORED_STATE: &str = "errored.tfstate";

pub fn parse_lock_info(output: &str) -> Option<LockInfo> {
    let start = output.find("Lock Info:")?;
    let field = |name: &str| {
        output[start..]
            .lines()
            .find_map(|line| {
                line.trim()
                    .strip_prefix(&format!("{name}:"))
                    .map(|v| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    Some(LockInfo {
        id: field("ID"),
        who: field("Who"),
        operation: field("Operation"),
        created: field("Created"),
    })
}

/// Whether a failed lock acquisition met a lock someone holds (DynamoDB's conditional put
/// or S3's conditional write refused), rather than failing for another reason (a refused
/// request) — Terraform prints the lock it tried to take either way.
fn lock_is_held(output: &str) -> bool {
    output.contains("ConditionalCheckFailed") || output.contains("PreconditionFailed")
}

/// Terraform's `Error:` summaries with their first detail paragraph, for error messages.
fn error_text(output: &str) -> String {
    let mut found = Vec::new();
    let mut lines = output.lines();
    while let Some(line) = lines.next() {
        if let Some(summary) = line.trim().strip_prefix("Error: ") {
            let detail: Vec<&str> = lines
                .by_ref()
                .skip_while(|l| l.trim().is_empty())
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            found.push(if detail.is_empty() {
                summary.to_string()
            } else {
                format!("{summary} ({})", detail.join(" "))
            });
        }
    }
    match found.is_empty() {
        true => output
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output")
            .trim()
            .to_string(),
        false => found.join("; "),
    }
}

impl Workspace {
    /// Finds terraform (`SHOPCTL_TERRAFORM` or PATH) and the environment's stack.
    pub fn new(env: &Environment, stack: Option<&Path>) -> anyhow::Result<Self> {
        let terraform = std::env::var_os("SHOPCTL_TERRAFORM").map(PathBuf::from).or_else(|| find_on_path("terraform")).ok_or_else(|| {
            anyhow::anyhow!("terraform is not installed (not on PATH, SHOPCTL_TERRAFORM unset); install Terraform {}.{} or newer", MINIMUM_VERSION.0, MINIMUM_VERSION.1)
        })?;
        let stack = stack
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("terraform/envs").join(&env.name));
        let has_tf = std::fs::read_dir(&stack).ok().is_some_and(|entries| {
            entries
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "tf"))
        });
        anyhow::ensure!(
            has_tf,
            "no Terraform stack at {}; run from the repository root or pass --stack DIR",
            stack.display()
        );
        let data = StateDir::resolve(&env.name).path().join("terraform");
        std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        Ok(Self {
            terraform,
            stack,
            data,
            state_key: super::state_key(env),
        })
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.terraform);
        command
            .args(args)
            .current_dir(&self.stack)
            .env("TF_DATA_DIR", &self.data)
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Runs terraform; the output (stdout and stderr) when it succeeds, else the error.
    async fn run(&self, env: &str, args: &[&str]) -> anyhow::Result<(i32, String)> {
        let output = self
            .command(args)
            .output()
            .await
            .with_context(|| format!("running {}", self.terraform.display()))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let log = self.data.join(format!("last-{}.log", args[0]));
        let _ = std::fs::write(&log, &text);
        let code = output.status.code().unwrap_or(-1);
        if code == 0 || (args.contains(&"-detailed-exitcode") && code == 2) {
            return Ok((code, text));
        }
        if let Some(lock) = parse_lock_info(&text).filter(|_| lock_is_held(&text)) {
            return Err(TerraformError::Locked {
                env: env.to_string(),
                lock,
            }
            .into());
        }
        let message = format!("{} (full output: {})", error_text(&text), log.display());
        if let Some(kept) = self.keep_errored_state()? {
            return Err(TerraformError::StateNotSaved {
                command: args[0].to_string(),
                message,
                kept,
                data: self.data.clone(),
                stack: self.stack.clone(),
            }
            .into());
        }
        Err(TerraformError::Failed {
            command: args[0].to_string(),
            message,
        }
        .into())
    }

    /// Moves a state Terraform could not save out of the stack (a checkout, where it could
    /// be committed) into shopctl's private working data, readable by its owner only.
    fn keep_errored_state(&self) -> anyhow::Result<Option<PathBuf>> {
        let errored = self.stack.join(ERRORED_STATE);
        if !errored.exists() {
            return Ok(None);
        }
        let kept = self.data.join(format!(
            "errored-{}.tfstate",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
        ));
        let state =
            std::fs::read(&errored).with_context(|| format!("reading {}", errored.display()))?;
        // Created owner-only, never briefly readable by others.
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&kept)
            .and_then(|mut file| file.write_all(&state))
            .with_context(|| format!("keeping {} at {}", errored.display(), kept.display()))?;
        std::fs::remove_file(&errored)
            .with_context(|| format!("removing {} from the stack", errored.display()))?;
        Ok(Some(kept))
    }

    /// Terraform's version, refused when too old for the generated backend configuration.
    pub async fn check_version(&self) -> anyhow::Result<String> {
        let output = self
            .command(&["version", "-json"])
            .output()
            .await
            .with_context(|| format!("running {}", self.terraform.display()))?;
        let version: Value = serde_json::from_slice(&output.stdout)
            .context("terraform version -json did not answer JSON")?;
        let text = version["terraform_version"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut parts = text.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
        let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        anyhow::ensure!(
            found >= MINIMUM_VERSION,
            "terraform {text} is too old: shopctl needs {}.{} or newer",
            MINIMUM_VERSION.0,
            MINIMUM_VERSION.1
        );
        Ok(text)
    }

    /// The S3 backend for the environment; with AWS_ENDPOINT_URL, pointed at the emulator.
    pub fn backend_config(&self, env: &Environment) -> String {
        let mut lines = vec![
            format!("bucket  = {}", json!(env.terraform.state_bucket)),
            format!("key     = {}", json!(self.state_key)),
            format!("region  = {}", json!(env.aws.region)),
            "encrypt = true".to_string(),
            format!("dynamodb_table = {}", json!(env.terraform.lock_table)),
        ];
        if env.terraform.use_lockfile {
            lines.push("use_lockfile = true".into());
        }
        if let Some(endpoint) = super::emulated_endpoint() {
            lines.push(format!(
                "endpoints = {{\n  s3       = {}\n  dynamodb = {}\n  sts      = {}\n}}",
                json!(endpoint),
                json!(endpoint),
                json!(endpoint)
            ));
            lines.push("use_path_style = true".into());
            lines.push("skip_credentials_validation = true".into());
            lines.push("skip_requesting_account_id = true".into());
            lines.push("skip_metadata_api_check = true".into());
            lines.push("skip_region_validation = true".into());
        }
        lines.join("\n") + "\n"
    }

    /// The stack's inputs, from the environment's values: names live in the values file
    /// only, and Terraform gets them from here.
    pub fn variables(env: &Environment) -> Value {
        json!({
            "environment": env.name,
            "region": env.aws.region,
            "account_id": env.aws.account_id,
            "cluster_name": env.cluster.name,
            "kubernetes_version": env.cluster.kubernetes_version,
            "public_endpoint_cidrs": env.cluster.public_access_cidrs,
            "deployer_group": env.cluster.deployer_group,
            "planner_group": env.cluster.planner_group,
            "ingress_class": env.ingress.class_name,
            "ingress_controller_namespace": env.ingress.controller_namespace,
            "namespace": env.namespace,
            "observability_namespace": env.observability.namespace,
            "backup_bucket": env.backup.bucket,
            "backup_prefix": env.backup.prefix,
            "state_bucket": env.terraform.state_bucket,
            "state_key": super::state_key(env),
            "lock_table": env.terraform.lock_table,
            "use_lockfile": env.terraform.use_lockfile,
        })
    }

    fn var_file(&self) -> PathBuf {
        self.data.join("shopctl.tfvars.json")
    }

    pub async fn init(&self, env: &Environment) -> anyhow::Result<()> {
        let backend = self.data.join("backend.hcl");
        std::fs::write(&backend, self.backend_config(env))?;
        std::fs::write(
            self.var_file(),
            serde_json::to_vec_pretty(&Self::variables(env))?,
        )?;
        let backend_arg = format!("-backend-config={}", backend.display());
        self.run(
            &env.name,
            &[
                "init",
                "-input=false",
                "-no-color",
                "-reconfigure",
                &backend_arg,
            ],
        )
        .await?;
        Ok(())
    }

    /// Plans into `plan.bin`; true when there are changes.
    pub async fn plan(&self, env: &Environment, destroy: bool, lock: bool) -> anyhow::Result<bool> {
        let var_file = format!("-var-file={}", self.var_file().display());
        let out = format!("-out={}", self.plan_file().display());
        let lock = format!("-lock={lock}");
        let mut args = vec![
            "plan",
            "-input=false",
            "-no-color",
            "-detailed-exitcode",
            &var_file,
            &out,
            &lock,
        ];
        if destroy {
            args.push("-destroy");
        }
        let (code, _) = self.run(&env.name, &args).await?;
        Ok(code == 2)
    }

    pub fn plan_file(&self) -> PathBuf {
        self.data.join("plan.bin")
    }

    pub async fn summarise(&self, env: &Environment) -> anyhow::Result<PlanSummary> {
        let plan = self.plan_file().display().to_string();
        let (_, text) = self
            .run(&env.name, &["show", "-json", "-no-color", &plan])
            .await?;
        let json_start = text.find('{').unwrap_or(0);
        let plan: Value = serde_json::from_str(text[json_start..].lines().next().unwrap_or("{}"))
            .context("terraform show -json did not answer JSON")?;
        Ok(summarise(&plan))
    }

    pub async fn apply(&self, env: &Environment) -> anyhow::Result<()> {
        let plan = self.plan_file().display().to_string();
        self.run(
            &env.name,
            &["apply", "-input=false", "-no-color", "-auto-approve", &plan],
        )
        .await?;
        Ok(())
    }

    pub async fn force_unlock(&self, env: &Environment, id: &str) -> anyhow::Result<()> {
        self.run(&env.name, &["force-unlock", "-force", "-no-color", id])
            .await?;
        Ok(())
    }
}

/// Counts of a plan's resource changes by action and type.
pub fn summarise(plan: &Value) -> PlanSummary {
    let mut summary = PlanSummary::default();
    for change in plan["resource_changes"].as_array().into_iter().flatten() {
        let actions: Vec<&str> = change["change"]["actions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let action = match actions.as_slice() {
            ["no-op"] | [] => continue,
            ["create"] => "create",
            ["update"] => "update",
            ["delete"] => "delete",
            ["read"] => "read",
            _ => "replace",
        };
        let resource_type = change["type"].as_str().unwrap_or_default().to_string();
        *summary
            .counts
            .entry(action.to_string())
            .or_default()
            .entry(resource_type.clone())
            .or_default() += 1;
        summary.changes.push(ResourceChange {
            address: change["address"].as_str().unwrap_or_default().to_string(),
            resource_type,
            action: action.to_string(),
        });
    }
    summary
}

fn find_on_path(binary: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(binary))
        .find(|p| p.is_file())
}

/// How long a phase took, for progress lines.
pub fn since(started: Instant) -> String {
    format!("{:.1}s", started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_is_summarised_by_action_and_type_with_replacements_as_destructive() {
        let plan = json!({"resource_changes": [
            {"address": "a.x", "type": "aws_s3_bucket", "change": {"actions": ["create"]}},
            {"address": "b.y", "type": "aws_eks_cluster", "change": {"actions": ["delete", "create"]}},
            {"address": "c.z", "type": "aws_vpc", "change": {"actions": ["no-op"]}},
            {"address": "d.w", "type": "aws_vpc", "change": {"actions": ["delete"]}},
        ]});
        let summary = summarise(&plan);
        assert_eq!(summary.changes.len(), 3);
        assert_eq!(summary.counts["replace"]["aws_eks_cluster"], 1);
        let destructive: Vec<&str> = summary
            .destructive()
            .iter()
            .map(|c| c.address.as_str())
            .collect();
        assert_eq!(destructive, ["b.y", "d.w"]);
    }

    #[test]
    fn terraform_lock_info_is_read_from_its_error_output() {
        let output = "Error: Error acquiring the state lock\n\nError message: operation error DynamoDB: PutItem, https response error StatusCode: 400, ConditionalCheckFailedException: The conditional request failed\nLock Info:\n  ID:        1b2c\n  Path:      b/k\n  Operation: OperationTypeApply\n  Who:       ci@runner\n  Version:   1.11.4\n  Created:   2026-11-26 10:00:00 +0000 UTC\n";
        let lock = parse_lock_info(output).unwrap();
        assert_eq!(
            (lock.id.as_str(), lock.who.as_str(), lock.operation.as_str()),
            ("1b2c", "ci@runner", "OperationTypeApply")
        );
        assert!(super::lock_is_held(output));
        let refused = output.replace(
            "ConditionalCheckFailedException: The conditional request failed",
            "api error AccessDenied: Access Denied",
        );
        assert!(
            !super::lock_is_held(&refused),
            "a refused lock request is not someone else's lock"
        );
    }
}
