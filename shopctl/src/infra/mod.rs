//! Infrastructure: the Terraform state backend (bootstrap), Terraform runs with the
//! backend configuration and variables derived from the environment (plan, apply, destroy,
//! drift), and state locks. AWS is reached through the standard credential chain;
//! `AWS_ENDPOINT_URL` points every client (and Terraform's backend) at an emulator.

pub mod bootstrap;
pub mod eks;
pub mod locks;
pub mod terraform;

use anyhow::Context;

use crate::env::Environment;

/// Where the environment's Terraform state lives in its state bucket.
pub fn state_key(env: &Environment) -> String {
    format!("shopmicro/{}/terraform.tfstate", env.name)
}

/// The AWS SDK configuration every infra client shares.
pub async fn aws_config(env: &Environment) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(env.aws.region.clone()))
        .load()
        .await
}

/// An SDK error as one readable line: each cause's message once, without the debug dumps
/// of requests and responses the SDK's own formatting adds.
pub fn aws_error(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cause = Some(err);
    while let Some(current) = cause {
        let text = current.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = current.source();
    }
    parts.join(": ")
}

/// A failed AWS call as one line naming what was attempted — the API operation, the IAM
/// action it needs and on what — then the service's error code and message (or the cause,
/// when the request never got an answer): `ListObjectsV2 (s3:ListBucket) on
/// s3://bucket/prefix/: AccessDenied: Access Denied`.
pub fn aws_failure<E, R>(
    operation: &str,
    action: &str,
    on: &str,
    err: aws_sdk_s3::error::SdkError<E, R>,
) -> anyhow::Error
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    use aws_sdk_s3::error::ProvideErrorMetadata;
    let why = match (err.code(), err.message()) {
        (Some(code), Some(message)) if !message.is_empty() => format!("{code}: {message}"),
        (Some(code), _) => code.to_string(),
        _ => aws_error(&err),
    };
    anyhow::anyhow!("{operation} ({action}) on {on}: {why}")
}

/// Emulators need path-style S3 addressing.
pub fn emulated_endpoint() -> Option<String> {
    std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

pub fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(emulated_endpoint().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

/// The credentials work and belong to the environment's account: a wrong account is the
/// most expensive mistake infrastructure tooling can make.
pub async fn check_account(
    config: &aws_config::SdkConfig,
    env: &Environment,
) -> anyhow::Result<String> {
    let identity = aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|err| anyhow::anyhow!("{}", aws_error(&err)))
        .context("no usable AWS credentials (checked with sts:GetCallerIdentity); configure a profile, environment credentials or web identity")?;
    let account = identity.account().unwrap_or_default().to_string();
    anyhow::ensure!(
        account == env.aws.account_id,
        "these AWS credentials are for account {account}, but environment {} lives in account {}; \
         switch profile (AWS_PROFILE) before touching its infrastructure",
        env.name,
        env.aws.account_id
    );
    Ok(identity.arn().unwrap_or_default().to_string())
}
