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

/// How long a lock is presumed to belong to a run still in progress.
const MAY_BE_ALIVE: chrono::Duration = chrono::Duration::minutes(10);

/// Lock `id` among those `held` on environment `env`'s state, if it may be released. A
/// lock younger than ten minutes (or of unknown age) may belong to a run still in
/// progress: released only when `force`d.
pub fn releasable<'a>(
    held: &'a [StateLock],
    id: &str,
    env: &str,
    force: bool,
) -> anyhow::Result<&'a StateLock> {
    let Some(lock) = held.iter().find(|l| l.id == id) else {
        let ids: Vec<&str> = held.iter().map(|l| l.id.as_str()).collect();
        anyhow::bail!(
            "no lock {id} is held on the state of {env} (held: {}); nothing to release",
            if ids.is_empty() {
                "none".to_string()
            } else {
                ids.join(", ")
            }
        );
    };
    let young = lock.age().is_none_or(|age| age < MAY_BE_ALIVE);
    anyhow::ensure!(
        force || !young,
        "refusing: lock {id} was taken by {} for {} at {}, less than ten minutes ago, and may belong to a run still in progress; pass --force once you know it is dead",
        lock.who,
        lock.operation,
        lock.created
    );
    Ok(lock)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(id: &str, minutes_ago: i64) -> StateLock {
        StateLock {
            id: id.into(),
            who: "ci@runner".into(),
            operation: "OperationTypeApply".into(),
            created: (chrono::Utc::now() - chrono::Duration::minutes(minutes_ago)).to_rfc3339(),
            kind: "dynamodb".into(),
        }
    }

    #[test]
    fn only_an_old_lock_is_released_without_force_and_an_unknown_one_never() {
        let held = [lock("old", 30), lock("young", 2)];
        assert_eq!(releasable(&held, "old", "dev", false).unwrap().id, "old");
        let refused = releasable(&held, "young", "dev", false)
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("may belong to a run still in progress"),
            "{refused}"
        );
        assert_eq!(releasable(&held, "young", "dev", true).unwrap().id, "young");
        let unknown = releasable(&held, "other", "dev", true)
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("(held: old, young)"), "{unknown}");
        let undated = [StateLock {
            created: "yesterday-ish".into(),
            ..lock("undated", 0)
        }];
        assert!(
            releasable(&undated, "undated", "dev", false).is_err(),
            "unknown age is young"
        );
    }
}
