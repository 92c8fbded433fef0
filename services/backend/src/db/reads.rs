//! Catalogue reads over a few pipelined PostgreSQL connections.
//!
//! sqlx's pool lends each query a connection of its own and waits for the answer before that
//! connection serves anyone else: under load every listing costs a round trip and wakes a
//! PostgreSQL backend for one query. tokio-postgres sends a query the moment it is asked and
//! matches the answers in order, so the reads of many requests share each connection, each
//! write to the socket and each wake-up of the server (pipelining). Measured in
//! `shopctl/benches/RESULTS.md`. Writes (orders) stay on sqlx transactions: a transaction
//! needs a connection to itself.
//!
//! Answers come back in the order the queries were sent, so a slow query (a search) holds up
//! the reads queued behind it on its connection. Each read therefore goes to the connection
//! with the fewest reads in flight: the others pass a slow one on another connection.
//!
//! A read never waits for another connection to come free, and a connection that died (the
//! server restarted, an operator terminated it) is replaced on the next read; the read that
//! found it dead is retried once on the new one, since reads change nothing.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwapOption;
use shopmicro_common::config::DatabaseUrl;
use shopmicro_common::error::ApiError;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row, Statement};

/// What the server's `pg_stat_activity` shows for these connections.
pub const APPLICATION_NAME: &str = "shopmicro-backend-reads";

#[derive(Clone)]
pub struct Reads {
    inner: Arc<Inner>,
}

struct Inner {
    config: tokio_postgres::Config,
    /// Where we connect, without the password, for errors.
    redacted: String,
    lanes: Box<[Lane]>,
    /// Where the search for the least busy lane starts, so equally busy lanes take turns.
    next: AtomicUsize,
}

/// One connection slot: the live connection, replaced when it dies.
struct Lane {
    live: ArcSwapOption<Connection>,
    /// One connect at a time per lane; readers that find it empty wait for that one.
    connecting: tokio::sync::Mutex<()>,
    in_flight: AtomicUsize,
}

struct Connection {
    client: tokio_postgres::Client,
    /// Prepared once per connection and SQL text (the listing's text varies with its
    /// filters, a few dozen texts in all).
    statements: RwLock<HashMap<String, Statement>>,
}

/// Why a read failed: the database could not be reached, or it answered with an error.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("connecting to the database at {at}")]
    Unreachable {
        at: String,
        #[source]
        cause: anyhow::Error,
    },
    #[error("database read")]
    Failed(#[from] tokio_postgres::Error),
}

impl From<ReadError> for ApiError {
    fn from(err: ReadError) -> Self {
        match err {
            ReadError::Unreachable { .. } => ApiError::unavailable("database_unavailable", err),
            ReadError::Failed(_) => ApiError::internal(err),
        }
    }
}

impl Reads {
    /// Connects lazily, on the first read, as the sqlx pool does: the service starts while
    /// PostgreSQL is still coming up.
    pub fn new(
        url: &DatabaseUrl,
        connections: NonZeroUsize,
        connect_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let mut config: tokio_postgres::Config = url
            .expose()
            .parse()
            .with_context(|| format!("invalid database URL for {}", url.redacted()))?;
        config
            .application_name(APPLICATION_NAME)
            .connect_timeout(connect_timeout);
        let lanes = (0..connections.get())
            .map(|_| Lane {
                live: ArcSwapOption::empty(),
                connecting: tokio::sync::Mutex::new(()),
                in_flight: AtomicUsize::new(0),
            })
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                redacted: url.redacted(),
                lanes,
                next: AtomicUsize::new(0),
            }),
        })
    }

    /// The rows `sql` gives for `params`, as a prepared statement on the least busy
    /// connection.
    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, ReadError> {
        let inner = &self.inner;
        let lane = inner.least_busy();
        let _in_flight = InFlight::on(lane);
        let mut retried = false;
        loop {
            let connection = lane.connection(inner).await?;
            let outcome = match connection.statement(sql).await {
                Ok(statement) => connection.client.query(&statement, params).await,
                Err(err) => Err(err),
            };
            match outcome {
                Ok(rows) => return Ok(rows),
                Err(err) if connection.lost(&err) => {
                    lane.discard(&connection);
                    if retried {
                        return Err(err.into());
                    }
                    retried = true;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }
}

impl Inner {
    fn least_busy(&self) -> &Lane {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..self.lanes.len())
            .map(|offset| &self.lanes[(start + offset) % self.lanes.len()])
            .min_by_key(|lane| lane.in_flight.load(Ordering::Relaxed))
            .expect("at least one lane")
    }
}

/// Counts a read on its lane until it ends, however it ends (a cancelled request included).
struct InFlight<'a>(&'a Lane);

impl<'a> InFlight<'a> {
    fn on(lane: &'a Lane) -> Self {
        lane.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(lane)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Lane {
    async fn connection(&self, inner: &Inner) -> Result<Arc<Connection>, ReadError> {
        if let Some(live) = self.live.load_full() {
            return Ok(live);
        }
        let _connecting = self.connecting.lock().await;
        // Someone else may have connected while this read waited.
        if let Some(live) = self.live.load_full() {
            return Ok(live);
        }
        let (client, connection) =
            inner
                .config
                .connect(NoTls)
                .await
                .map_err(|cause| ReadError::Unreachable {
                    at: inner.redacted.clone(),
                    cause: cause.into(),
                })?;
        // The connection's I/O runs on its own task; when it ends the client is closed, and
        // the next read on this lane connects again.
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::warn!(error = %err, "a catalogue read connection ended");
            }
        });
        let live = Arc::new(Connection {
            client,
            statements: RwLock::default(),
        });
        self.live.store(Some(live.clone()));
        Ok(live)
    }

    /// Drops `dead` from the lane unless another read already replaced it.
    fn discard(&self, dead: &Arc<Connection>) {
        self.live
            .compare_and_swap(&Some(dead.clone()), None::<Arc<Connection>>);
    }
}

impl Connection {
    /// Whether `err` means this connection is gone: closed, or ended by the server (its
    /// shutdown, a crash, an operator's `pg_terminate_backend`: SQLSTATE class 57P).
    fn lost(&self, err: &tokio_postgres::Error) -> bool {
        self.client.is_closed()
            || err.is_closed()
            || err
                .code()
                .is_some_and(|state| state.code().starts_with("57P"))
    }

    async fn statement(&self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.statements.read().expect("not poisoned").get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        self.statements
            .write()
            .expect("not poisoned")
            .insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// SQL text with its parameters, bound as `$1`, `$2`, … in the order they are pushed. Only
/// fixed fragments are pushed as text; every value is a parameter.
pub struct Sql<'a> {
    text: String,
    params: Vec<&'a (dyn ToSql + Sync)>,
}

impl<'a> Sql<'a> {
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            params: Vec::new(),
        }
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    pub fn bind(&mut self, value: &'a (dyn ToSql + Sync)) -> &mut Self {
        self.params.push(value);
        self.text.push('$');
        self.text.push_str(&self.params.len().to_string());
        self
    }

    pub async fn fetch(&self, reads: &Reads) -> Result<Vec<Row>, ReadError> {
        reads.query(&self.text, &self.params).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_database_is_a_503_that_names_where_and_hides_the_password() {
        let port = shopmicro_common::testing::closed_port();
        let url: DatabaseUrl = format!("postgres://shop:hunter2-secret@127.0.0.1:{port}/shop")
            .parse()
            .unwrap();
        let reads = Reads::new(&url, NonZeroUsize::MIN, Duration::from_secs(1)).unwrap();
        let err = reads.query("SELECT 1", &[]).await.unwrap_err();
        let message = format!("{err:#}");
        assert!(matches!(err, ReadError::Unreachable { .. }), "{message}");
        assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        let api = ApiError::from(err);
        assert_eq!(api.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(api.code(), "database_unavailable");
    }

    #[tokio::test]
    async fn a_slow_read_holds_up_no_read_sent_after_it() {
        let database = shopmicro_common::testing::TestDatabase::create().await;
        let url: DatabaseUrl = database.url().parse().unwrap();
        let reads =
            Reads::new(&url, NonZeroUsize::new(2).unwrap(), Duration::from_secs(3)).unwrap();
        // Both lanes connected and idle.
        for _ in 0..2 {
            reads.query("SELECT 1", &[]).await.unwrap();
        }
        let slow = tokio::spawn({
            let reads = reads.clone();
            async move { reads.query("SELECT pg_sleep(5)", &[]).await }
        });
        // Sent once its lane counts it.
        while reads
            .inner
            .lanes
            .iter()
            .all(|lane| lane.in_flight.load(Ordering::Relaxed) == 0)
        {
            tokio::task::yield_now().await;
        }
        for n in 0..10_i32 {
            let rows = reads.query("SELECT $1::int4", &[&n]).await.unwrap();
            assert_eq!(rows[0].get::<_, i32>(0), n);
        }
        assert!(
            !slow.is_finished(),
            "ten reads sent after the slow one were answered while it still ran"
        );
        slow.abort();
    }

    #[test]
    fn parameters_are_numbered_in_the_order_they_are_bound() {
        let (category, limit) = ("toys".to_owned(), 21_i64);
        let mut sql = Sql::new("SELECT 1 WHERE TRUE");
        sql.push(" AND category = ")
            .bind(&category)
            .push(" LIMIT ")
            .bind(&limit);
        assert_eq!(sql.text, "SELECT 1 WHERE TRUE AND category = $1 LIMIT $2");
        assert_eq!(sql.params.len(), 2);
    }

    #[test]
    fn a_malformed_url_is_refused_at_start_without_the_password() {
        let url: DatabaseUrl =
            "postgres://shop:hunter2-secret@127.0.0.1:5432/shop?sslmode=sometimes"
                .parse()
                .unwrap();
        let err = Reads::new(&url, NonZeroUsize::MIN, Duration::from_secs(1))
            .err()
            .unwrap();
        let message = format!("{err:#}");
        assert!(message.contains("invalid database URL"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}
