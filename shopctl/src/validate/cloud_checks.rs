//! Checks that ask AWS about a cluster environment: the credentials and account, the
//! Terraform state (readable, not locked), on request drift between the infrastructure and
//! its configuration (`terraform plan`), and the newest database backup in the bucket
//! with its checksum manifest and last verified restore. Each runs under a deadline (the
//! plan under the overall one), so an unreachable AWS endpoint fails these checks, not the
//! command.

use super::target::Target;
use super::{Check, CheckFuture, Verdict};
use crate::backup::Location;
use crate::env::Environment;
use crate::infra;
use crate::infra::terraform::{PlanSummary, Workspace};

fn environment(target: &dyn Target) -> Option<&Environment> {
    target.cluster().and_then(|s| s.environment.as_ref())
}

pub static ALL: &[Check] = &[
    Check::new("access.aws", "access", aws_account),
    Check::new("access.terraform-state", "access", terraform_state),
    Check::new("access.drift", "access", drift).slow(),
    Check::new("storage.backup-object", "storage", backup_object),
];

fn aws_account(target: &dyn Target) -> CheckFuture<'_> {
    Box::pin(async move {
        let Some(env) = environment(target) else {
            return Verdict::skipped("the local target uses no AWS account");
        };
        let config = infra::aws_config(env).await;
        match infra::check_account(&config, env).await {
            Ok(arn) => Verdict::pass(format!("acting as {arn} in account {}", env.aws.account_id)),
            Err(err) => Verdict::fail(
                format!("{err:#}"),
                "use credentials for the environment's account (AWS_PROFILE, web identity)",
            ),
        }
    })
}

fn drift(target: &dyn Target) -> CheckFuture<'_> {
    Box::pin(async move {
        let Some(env) = environment(target) else {
            return Verdict::skipped("the local target has no cloud infrastructure");
        };
        let Some(request) = target.cluster().and_then(|s| s.drift.as_ref()) else {
            return Verdict::skipped(
                "opt-in: `--drift` runs `terraform plan` against the live infrastructure",
            );
        };
        match planned_changes(env, request.stack.as_deref()).await {
            Ok(summary) if summary.is_empty() => {
                Verdict::pass("the infrastructure matches its Terraform configuration")
            }
            Ok(summary) => {
                let mut changes: Vec<String> = summary
                    .changes
                    .iter()
                    .map(|c| format!("{} {}", c.action, c.address))
                    .collect();
                if changes.len() > 5 {
                    let more = changes.len() - 5;
                    changes.truncate(5);
                    changes.push(format!("and {more} more"));
                }
                Verdict::fail(
                    format!("drifted: {}", changes.join(", ")),
                    format!(
                        "`shopctl infra plan --env {}` shows each change; apply the \
                         configuration or undo the change made outside it",
                        env.name
                    ),
                )
            }
            Err(err) => Verdict::fail(
                format!("planning failed: {err:#}"),
                format!("`shopctl infra drift --env {}` shows why", env.name),
            ),
        }
    })
}

/// What `terraform plan` would change, planned without a state lock so a check never
/// blocks a deploy.
async fn planned_changes(
    env: &Environment,
    stack: Option<&std::path::Path>,
) -> anyhow::Result<PlanSummary> {
    let workspace = Workspace::new(env, stack)?;
    workspace.check_version().await?;
    workspace.init(env).await?;
    if workspace.plan(env, false, false).await? {
        workspace.summarise(env).await
    } else {
        Ok(PlanSummary::default())
    }
}

fn terraform_state(target: &dyn Target) -> CheckFuture<'_> {
    Box::pin(async move {
        let Some(env) = environment(target) else {
            return Verdict::skipped("the local target has no Terraform state");
        };
        let config = infra::aws_config(env).await;
        let key = infra::state_key(env);
        let state = infra::s3_client(&config)
            .head_object()
            .bucket(&env.terraform.state_bucket)
            .key(&key)
            .send()
            .await;
        if let Err(err) = state {
            let on = format!("s3://{}/{key}", env.terraform.state_bucket);
            return Verdict::fail(
                format!(
                    "{:#}",
                    infra::aws_failure("HeadObject", "s3:GetObject", &on, err)
                ),
                "`shopctl infra bootstrap` and `shopctl infra apply` create it; check the credentials' S3 access",
            );
        }
        match infra::locks::list(&config, env, &key).await {
            Ok(locks) if locks.is_empty() => Verdict::pass(format!(
                "s3://{}/{key} readable, not locked",
                env.terraform.state_bucket
            )),
            Ok(locks) => Verdict::warn(
                format!(
                    "locked by {} ({} since {})",
                    locks[0].who, locks[0].operation, locks[0].created
                ),
                format!(
                    "a Terraform run is in progress, or died: `shopctl infra locks --env {}`",
                    env.name
                ),
            ),
            Err(err) => Verdict::fail(
                format!("{err:#}"),
                "check the lock table and the credentials' DynamoDB access",
            ),
        }
    })
}

fn backup_object(target: &dyn Target) -> CheckFuture<'_> {
    Box::pin(async move {
        let Some(env) = environment(target) else {
            return Verdict::skipped("local backups are checked by storage.backups");
        };
        let bucket = format!("s3://{}/{}", env.backup.bucket, env.backup.prefix);
        let listed = async { Location::parse(&bucket).await?.list().await }.await;
        let newest = match listed {
            Ok(backups) => backups.into_iter().max_by_key(|b| b.created_at),
            Err(err) => {
                return Verdict::fail(
                    format!("cannot list {bucket}: {err:#}"),
                    "check the bucket and the credentials' S3 access",
                );
            }
        };
        let Some(newest) = newest else {
            return Verdict::fail(
                format!("no backup in {bucket}"),
                format!("`shopctl backup --env {} --wait` takes one", env.name),
            );
        };
        let age = chrono::Utc::now() - newest.created_at;
        let taken = format!(
            "newest backup {} ({}h{:02}m old, sha256 {:.12})",
            newest.id,
            age.num_hours(),
            age.num_minutes() % 60,
            newest.sha256
        );
        match &newest.verification {
            Some(v) if v.ok => Verdict::pass(format!(
                "{taken}; last verified restore {} took {} ms",
                v.at.format("%Y-%m-%d %H:%M:%SZ"),
                v.restore_millis
            )),
            Some(v) => Verdict::fail(
                format!("{taken}; its verification FAILED: {}", v.detail),
                "the backup does not restore: investigate before relying on it",
            ),
            None => Verdict::warn(
                format!("{taken}; not verified yet"),
                format!(
                    "`shopctl backup --env {} --wait` takes and verifies one",
                    env.name
                ),
            ),
        }
    })
}
