//! State locks as Terraform leaves them: an item in the DynamoDB lock table (`LockID` =
//! `<bucket>/<key>`) and, with `use_lockfile`, a `<key>.tflock` object beside the state.
//! Both carry the same lock info (ID, who, operation, since when).

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde_json::Value;

use crate::env::Environment;

#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct StateLock {
    pub id: String,
    pub who: String,
    pub operation: String,
    pub created: String,
    /// dynamodb or s3-lockfile.
    pub kind: String,
}

impl StateLock {
    fn from_info(info: &str, kind: &str) -> Option<Self> {
        let info: Value = serde_json::from_str(info).ok()?;
        let text = |field: &str| info[field].as_str().unwrap_or_default().to_string();
        Some(Self {
            id: text("ID"),
            who: text("Who"),
            operation: text("Operation"),
            created: text("Created"),
            kind: kind.to_string(),
        })
    }

    /// How long the lock has been held, when its timestamp parses.
    pub fn age(&self) -> Option<chrono::Duration> {
        let created = chrono::DateTime::parse_from_rfc3339(&self.created).ok()?;
        Some(chrono::Utc::now() - created.with_timezone(&chrono::Utc))
    }
}

pub async fn list(
    config: &aws_config::SdkConfig,
    env: &Environment,
    state_key: &str,
) -> anyhow::Result<Vec<StateLock>> {
    let mut locks = Vec::new();
    let lock_id = format!("{}/{state_key}", env.terraform.state_bucket);
    let item = aws_sdk_dynamodb::Client::new(config)
        .get_item()
        .table_name(&env.terraform.lock_table)
        .key("LockID", AttributeValue::S(lock_id))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| {
            super::aws_failure(
                "GetItem",
                "dynamodb:GetItem",
                &format!("lock table {}", env.terraform.lock_table),
                e,
            )
        })?;
    if let Some(AttributeValue::S(info)) = item.item().and_then(|i| i.get("Info")) {
        locks.extend(StateLock::from_info(info, "dynamodb"));
    }
    if env.terraform.use_lockfile {
        let object = super::s3_client(config)
            .get_object()
            .bucket(&env.terraform.state_bucket)
            .key(format!("{state_key}.tflock"))
            .send()
            .await;
        match object {
            Ok(object) => {
                let body = object.body.collect().await?.into_bytes();
                locks.extend(StateLock::from_info(
                    &String::from_utf8_lossy(&body),
                    "s3-lockfile",
                ));
            }
            // No lock file: nobody holds the lock. Anything else (a refusal) is not
            // "unlocked", it is unknown.
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {}
            Err(err) => {
                return Err(super::aws_failure(
                    "GetObject",
                    "s3:GetObject",
                    &format!("s3://{}/{state_key}.tflock", env.terraform.state_bucket),
                    err,
                ));
            }
        }
    }
    // One lock shows in both places when both mechanisms are on.
    locks.dedup_by(|a, b| a.id == b.id);
    Ok(locks)
}
