//! Where a runbook's steps act. Checks ask the validate target (the same for both); what
//! differs between the local platform and a cluster is here: where logs are read, how the
//! database is queried, how a `shopctl` action is pointed at the platform, and where a
//! finished run is recorded for the next person on call.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use sqlx::Connection;

/// Not `Send`: a run is driven by one `block_on`, and the cluster calls inside are not.
pub type OperatorFuture<'a, T> = Pin<Box<dyn Future<Output = anyhow::Result<T>> + 'a>>;

pub trait Operator {
    /// The last `lines` lines `service` logged (on a cluster, each pod's, prefixed).
    fn recent_logs<'a>(&'a self, service: &'a str, lines: usize)
    -> OperatorFuture<'a, Vec<String>>;
    /// A scalar query (`SELECT (query)::float8`) with read-only credentials.
    fn query<'a>(&'a self, query: &'a str) -> OperatorFuture<'a, Option<f64>>;
    /// Points a `shopctl` action at this platform.
    fn configure(&self, command: &mut std::process::Command);
    /// Records a finished run where the next person on call looks; where, in words.
    fn record<'a>(
        &'a self,
        runbook: &'a str,
        summary: &'a str,
        transcript: &'a str,
    ) -> OperatorFuture<'a, Option<String>>;
}

/// A scalar query: `SELECT (query)::float8`. A subquery with no row is NULL, which is
/// "no value" (what a check's `empty` expects), not an error.
pub async fn scalar(database_url: &str, query: &str) -> anyhow::Result<Option<f64>> {
    let mut conn = sqlx::PgConnection::connect(database_url).await?;
    Ok(
        sqlx::query_scalar::<_, Option<f64>>(&format!("SELECT ({query})::float8"))
            .fetch_optional(&mut conn)
            .await?
            .flatten(),
    )
}

/// The local platform: its state directory's logs, its private database, its supervisor.
pub struct LocalOperator {
    pub state_dir: PathBuf,
    pub database_url: Option<String>,
}

impl Operator for LocalOperator {
    fn recent_logs<'a>(
        &'a self,
        service: &'a str,
        lines: usize,
    ) -> OperatorFuture<'a, Vec<String>> {
        Box::pin(async move {
            let path = self.state_dir.join("logs").join(format!("{service}.log"));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let all: Vec<String> = text.lines().map(str::to_owned).collect();
            Ok(all[all.len().saturating_sub(lines)..].to_vec())
        })
    }

    fn query<'a>(&'a self, query: &'a str) -> OperatorFuture<'a, Option<f64>> {
        Box::pin(async move {
            let url = self
                .database_url
                .as_deref()
                .ok_or_else(|| anyhow::anyhow!("no database to query"))?;
            scalar(url, query).await
        })
    }

    fn configure(&self, command: &mut std::process::Command) {
        command.env("SHOPCTL_STATE_DIR", &self.state_dir);
    }

    fn record<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a str,
    ) -> OperatorFuture<'a, Option<String>> {
        // The transcript in the state directory is the record.
        Box::pin(async { Ok(None) })
    }
}
