//! The Terraform state backend, created or verified idempotently with the AWS SDK: a
//! versioned, encrypted, private, TLS-only bucket and an on-demand, point-in-time
//! recoverable, encrypted lock table. An existing bucket that is not ours or lacks a
//! safeguard is reported, never silently used.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, PointInTimeRecoverySpecification,
    ScalarAttributeType, SseSpecification,
};
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, VersioningConfiguration,
};
use serde::Serialize;

use crate::env::Environment;

/// What bootstrap did (or, with dry run, would do) to one thing.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Step {
    pub resource: String,
    /// created, configured, found, or would create / would configure.
    pub action: String,
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
#[error("the state bucket {bucket} exists but cannot be used as it is: {}; fix it or choose another `terraform.state_bucket`", problems.join("; "))]
pub struct UnsafeBucket {
    pub bucket: String,
    pub problems: Vec<String>,
}

fn tls_only_policy(bucket: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }],
    })
    .to_string()
}

fn sdk_error<E: std::error::Error + 'static>(what: &str, err: E) -> anyhow::Error {
    anyhow::anyhow!("{what}: {}", super::aws_error(&err))
}

pub async fn bootstrap(
    config: &aws_config::SdkConfig,
    env: &Environment,
    dry_run: bool,
) -> anyhow::Result<Vec<Step>> {
    let mut steps = bucket(config, env, dry_run).await?;
    steps.push(lock_table(config, env, dry_run).await?);
    Ok(steps)
}

async fn bucket(
    config: &aws_config::SdkConfig,
    env: &Environment,
    dry_run: bool,
) -> anyhow::Result<Vec<Step>> {
    let s3 = super::s3_client(config);
    let name = &env.terraform.state_bucket;
    let step = |action: &str, detail: &str| Step {
        resource: format!("s3://{name}"),
        action: action.into(),
        detail: detail.into(),
    };
    let head = s3
        .head_bucket()
        .bucket(name)
        .expected_bucket_owner(&env.aws.account_id)
        .send()
        .await;
    let exists = match head {
        Ok(_) => true,
        Err(err) => match err.raw_response().map(|r| r.status().as_u16()) {
            Some(404) => false,
            Some(403) => {
                return Err(UnsafeBucket {
                    bucket: name.clone(),
                    problems: vec![format!(
                        "it belongs to another account than {}",
                        env.aws.account_id
                    )],
                }
                .into());
            }
            _ => return Err(sdk_error(&format!("checking bucket {name}"), err)),
        },
    };
    if !exists {
        if dry_run {
            return Ok(vec![step(
                "would create",
                "versioned, KMS-encrypted, public access blocked, TLS-only policy",
            )]);
        }
        let mut create = s3.create_bucket().bucket(name);
        if env.aws.region != "us-east-1" {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(env.aws.region.as_str()))
                    .build(),
            );
        }
        match create.send().await {
            Ok(_) => {}
            // Bucket names are global: another account holds this one.
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_bucket_already_exists()) =>
            {
                return Err(UnsafeBucket {
                    bucket: name.clone(),
                    problems: vec![format!(
                        "the name is taken by another account than {}",
                        env.aws.account_id
                    )],
                }
                .into());
            }
            Err(err) => return Err(sdk_error(&format!("creating bucket {name}"), err)),
        }
        configure_bucket(&s3, name).await?;
        return Ok(vec![step(
            "created",
            "versioned, KMS-encrypted, public access blocked, TLS-only policy",
        )]);
    }

    // HeadBucket answers for buckets we may read, not only ours; the owner's own listing
    // is the proof of ownership.
    let owned = s3
        .list_buckets()
        .send()
        .await
        .map_err(|e| sdk_error("listing this account's buckets", e))?;
    if !owned
        .buckets()
        .iter()
        .any(|b| b.name() == Some(name.as_str()))
    {
        return Err(UnsafeBucket {
            bucket: name.clone(),
            problems: vec![format!(
                "it belongs to another account than {}",
                env.aws.account_id
            )],
        }
        .into());
    }
    let mut problems = Vec::new();
    let versioning = s3
        .get_bucket_versioning()
        .bucket(name)
        .send()
        .await
        .map_err(|e| sdk_error("reading versioning", e))?;
    if versioning.status() != Some(&BucketVersioningStatus::Enabled) {
        problems.push(
            "versioning is not enabled (an overwritten state could not be recovered)".to_string(),
        );
    }
    match s3.get_bucket_encryption().bucket(name).send().await {
        Ok(encryption) => {
            let rules = encryption
                .server_side_encryption_configuration()
                .map(|c| c.rules().len())
                .unwrap_or(0);
            if rules == 0 {
                problems.push("default encryption is not configured".into());
            }
        }
        Err(_) => problems.push("default encryption is not configured".into()),
    }
    if !problems.is_empty() {
        return Err(UnsafeBucket {
            bucket: name.clone(),
            problems,
        }
        .into());
    }
    let blocked = s3
        .get_public_access_block()
        .bucket(name)
        .send()
        .await
        .ok()
        .and_then(|b| b.public_access_block_configuration().cloned())
        .is_some_and(|c| {
            c.block_public_acls() == Some(true)
                && c.block_public_policy() == Some(true)
                && c.ignore_public_acls() == Some(true)
                && c.restrict_public_buckets() == Some(true)
        });
    let tls_only = s3
        .get_bucket_policy()
        .bucket(name)
        .send()
        .await
        .ok()
        .and_then(|p| p.policy().map(str::to_string))
        .is_some_and(|p| p.contains("aws:SecureTransport"));
    let mut steps = vec![step("found", "versioned and encrypted")];
    if !blocked || !tls_only {
        let missing = [
            (!blocked).then_some("public access block"),
            (!tls_only).then_some("TLS-only policy"),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" and ");
        if dry_run {
            steps.push(step("would configure", &missing));
        } else {
            put_public_access_block(&s3, name).await?;
            put_tls_policy(&s3, name).await?;
            steps.push(step("configured", &missing));
        }
    }
    Ok(steps)
}

async fn configure_bucket(s3: &aws_sdk_s3::Client, name: &str) -> anyhow::Result<()> {
    s3.put_bucket_versioning()
        .bucket(name)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .map_err(|e| sdk_error("enabling versioning", e))?;
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(
            ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::AwsKms)
                .build()?,
        )
        .bucket_key_enabled(true)
        .build();
    s3.put_bucket_encryption()
        .bucket(name)
        .server_side_encryption_configuration(
            ServerSideEncryptionConfiguration::builder()
                .rules(rule)
                .build()?,
        )
        .send()
        .await
        .map_err(|e| sdk_error("enabling default encryption", e))?;
    put_public_access_block(s3, name).await?;
    put_tls_policy(s3, name).await
}

async fn put_public_access_block(s3: &aws_sdk_s3::Client, name: &str) -> anyhow::Result<()> {
    let block = PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .block_public_policy(true)
        .ignore_public_acls(true)
        .restrict_public_buckets(true)
        .build();
    s3.put_public_access_block()
        .bucket(name)
        .public_access_block_configuration(block)
        .send()
        .await
        .map_err(|e| sdk_error("blocking public access", e))?;
    Ok(())
}

async fn put_tls_policy(s3: &aws_sdk_s3::Client, name: &str) -> anyhow::Result<()> {
    s3.put_bucket_policy()
        .bucket(name)
        .policy(tls_only_policy(name))
        .send()
        .await
        .map_err(|e| sdk_error("setting the TLS-only policy", e))?;
    Ok(())
}

async fn lock_table(
    config: &aws_config::SdkConfig,
    env: &Environment,
    dry_run: bool,
) -> anyhow::Result<Step> {
    let dynamodb = aws_sdk_dynamodb::Client::new(config);
    let name = &env.terraform.lock_table;
    let step = |action: &str, detail: &str| Step {
        resource: format!("dynamodb:{name}"),
        action: action.into(),
        detail: detail.into(),
    };
    match dynamodb.describe_table().table_name(name).send().await {
        Ok(described) => {
            let table = described
                .table()
                .cloned()
                .unwrap_or_else(|| aws_sdk_dynamodb::types::TableDescription::builder().build());
            let key_ok = table
                .key_schema()
                .iter()
                .any(|k| k.attribute_name() == "LockID" && *k.key_type() == KeyType::Hash);
            anyhow::ensure!(
                key_ok,
                "the lock table {name} exists but its hash key is not LockID; Terraform cannot lock with it"
            );
            let pitr = dynamodb
                .describe_continuous_backups()
                .table_name(name)
                .send()
                .await
                .ok()
                .and_then(|b| {
                    b.continuous_backups_description()
                        .and_then(|d| d.point_in_time_recovery_description())
                        .and_then(|p| p.point_in_time_recovery_status().cloned())
                })
                .is_some_and(|s| s.as_str() == "ENABLED");
            if pitr {
                Ok(step("found", "LockID hash key, point-in-time recovery on"))
            } else if dry_run {
                Ok(step("would configure", "point-in-time recovery"))
            } else {
                enable_pitr(&dynamodb, name).await?;
                Ok(step("configured", "point-in-time recovery"))
            }
        }
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            if dry_run {
                return Ok(step(
                    "would create",
                    "LockID hash key, on demand, point-in-time recovery, encrypted",
                ));
            }
            dynamodb
                .create_table()
                .table_name(name)
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name("LockID")
                        .attribute_type(ScalarAttributeType::S)
                        .build()?,
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("LockID")
                        .key_type(KeyType::Hash)
                        .build()?,
                )
                .billing_mode(BillingMode::PayPerRequest)
                .sse_specification(SseSpecification::builder().enabled(true).build())
                .send()
                .await
                .map_err(|e| sdk_error(&format!("creating lock table {name}"), e))?;
            enable_pitr(&dynamodb, name).await?;
            Ok(step(
                "created",
                "LockID hash key, on demand, point-in-time recovery, encrypted",
            ))
        }
        Err(err) => Err(sdk_error(&format!("checking lock table {name}"), err)),
    }
}

async fn enable_pitr(dynamodb: &aws_sdk_dynamodb::Client, name: &str) -> anyhow::Result<()> {
    dynamodb
        .update_continuous_backups()
        .table_name(name)
        .point_in_time_recovery_specification(
            PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(true)
                .build()?,
        )
        .send()
        .await
        .map_err(|e| sdk_error("enabling point-in-time recovery", e))?;
    Ok(())
}
