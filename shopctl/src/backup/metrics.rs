//! "Last verified restore" as a metric. A verification is a batch job, which Prometheus
//! cannot scrape, so its result is pushed to a Pushgateway that Prometheus scrapes
//! (<https://prometheus.io/docs/practices/pushing/>); alerts fire when it grows old.
//!
//! A success replaces the job's group (PUT); a failure only updates the attempt and the
//! outcome (POST), so the time of the last *good* restore survives a bad one.

use anyhow::Context;

use super::Verification;

/// The Pushgateway job the results are grouped under.
pub const JOB: &str = "shopmicro_backup_verify";

/// The exposition text for one verification of backup `id`.
pub fn exposition(id: &str, verification: &Verification) -> String {
    let at = verification.at.timestamp_millis() as f64 / 1000.0;
    let mut text = String::new();
    let mut gauge = |name: &str, help: &str, value: f64| {
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{backup=\"{id}\"}} {value}\n"
        ));
    };
    gauge(
        "shopmicro_backup_verification_success",
        "Whether the last verification restored the backup and matched its manifest.",
        if verification.ok { 1.0 } else { 0.0 },
    );
    gauge(
        "shopmicro_backup_verification_timestamp_seconds",
        "When a backup verification last ran.",
        at,
    );
    if verification.ok {
        gauge(
            "shopmicro_backup_last_verified_restore_timestamp_seconds",
            "When a backup was last restored and matched its manifest.",
            at,
        );
        gauge(
            "shopmicro_backup_restore_duration_seconds",
            "How long the last verified restore took.",
            verification.restore_millis as f64 / 1000.0,
        );
    }
    text
}

/// Pushes the result to the Pushgateway at `url` (each environment has its own).
pub async fn push(url: &str, id: &str, verification: &Verification) -> anyhow::Result<()> {
    // A Pushgateway URL may carry basic-auth credentials: never in messages.
    let shown = crate::local::postgres::redact(url);
    let group = format!("{}/metrics/job/{JOB}", url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let request = if verification.ok {
        client.put(&group)
    } else {
        client.post(&group)
    };
    let response = request
        .header("content-type", "text/plain; version=0.0.4")
        .body(exposition(id, verification))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.without_url()))
        .with_context(|| format!("pushing the result to the Pushgateway at {shown}"))?;
    let status = response.status();
    anyhow::ensure!(
        status.is_success(),
        "the Pushgateway at {shown} refused the result ({status}): {}",
        response.text().await.unwrap_or_default().trim()
    );
    Ok(())
}
