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
//!
//! A read has `read_timeout`. The server enforces it (`statement_timeout`, so a runaway
//! search stops using PostgreSQL's CPU too) and the connection stays. A read that gets no
//! answer at all a grace period later means the connection stopped answering (a network
//! partition, a frozen server): it is dropped so the next read opens another, instead of
//! every read queueing behind it until TCP gives up.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwapOption;
use futures_util::TryStreamExt;
use shopmicro_common::config::DatabaseUrl;
use shopmicro_common::error::ApiError;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row, Statement};

use crate::metrics::ReadMetrics;

/// What the server's `pg_stat_activity` shows for these connections.
pub const APPLICATION_NAME: &str = "shopmicro-backend-reads";

/// How long past `read_timeout` a read waits for the server's own cancellation before it
/// takes the connection for dead: long enough that a server that answers is never
/// mistaken for one that does not.
pub const SILENT_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub connections: NonZeroUsize,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

/// The read connections at a glance, for the gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadUsage {
    pub live: usize,
    pub max: usize,
    pub in_flight: usize,
}

#[derive(Clone)]
pub struct Reads {
    inner: Arc<Inner>,
}

struct Inner {
    config: tokio_postgres::Config,
    /// Where we connect, without the password, for errors.
    redacted: String,
    lanes: Box<[Lane]>,
    read_timeout: Duration,
    metrics: ReadMetrics,
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
    /// filters, a few dozen texts in all). Looked up on every read: foldhash, not SipHash,
    /// since the texts are ours, not a client's.
    statements: RwLock<HashMap<String, Statement, foldhash::fast::RandomState>>,
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
    #[error(
        "the database read was cancelled, or took longer than {0:?} (DATABASE_READ_TIMEOUT_MS)"
    )]
    TimedOut(Duration),
    #[error("database read")]
    Failed(#[from] tokio_postgres::Error),
}

impl From<ReadError> for ApiError {
    fn from(err: ReadError) -> Self {
        match err {
            ReadError::Unreachable { .. } => ApiError::unavailable("database_unavailable", err),
            ReadError::TimedOut(_) => ApiError::unavailable("database_timeout", err),
            ReadError::Failed(_) => ApiError::internal(err),
        }
    }
}

impl Reads {
    /// Connects lazily, on the first read, as the sqlx pool does: the service starts while
    /// PostgreSQL is still coming up.
    pub fn new(url: &DatabaseUrl, limits: Limits, metrics: ReadMetrics) -> anyhow::Result<Self> {
        let mut config: tokio_postgres::Config = url
            .expose()
            .parse()
            .with_context(|| format!("invalid database URL for {}", url.redacted()))?;
        // Kept beside any options the URL sets; the last setting wins, so ours does.
        let options = format!(
            "{} -c statement_timeout={}",
            config.get_options().unwrap_or_default(),
            limits.read_timeout.as_millis()
        );
        config
            .application_name(APPLICATION_NAME)
            .connect_timeout(limits.connect_timeout)
            .options(options.trim_start());
        let lanes = (0..limits.connections.get())
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
                read_timeout: limits.read_timeout,
                metrics,
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
        self.query_up_to(sql, params, 0).await
    }

    /// [`Self::query`] for SQL that gives at most `max_rows` rows: room for them is made up
    /// front, where collecting a listing's 21 rows one by one regrew the list four times and
    /// moved every row each time (callgrind: most of 2 % of an uncached listing's
    /// instructions, measured with two smaller cuts).
    pub async fn query_up_to(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        max_rows: usize,
    ) -> Result<Vec<Row>, ReadError> {
        let inner = &self.inner;
        let lane = inner.least_busy();
        let _in_flight = InFlight::on(lane);
        let mut retried = false;
        loop {
            let connection = lane.connection(inner).await?;
            let answer = async {
                let statement = connection.statement(sql).await?;
                let params = params.iter().map(|param| *param as &dyn ToSql);
                let rows = connection.client.query_raw(&statement, params).await?;
                let mut rows = std::pin::pin!(rows);
                let mut collected = Vec::with_capacity(max_rows);
                while let Some(row) = rows.try_next().await? {
                    collected.push(row);
                }
                Ok::<_, tokio_postgres::Error>(collected)
            };
            let Ok(outcome) = tokio::time::timeout(inner.read_timeout + SILENT_AFTER, answer).await
            else {
                lane.discard(&connection, inner);
                inner.metrics.timed_out.inc();
                return Err(ReadError::TimedOut(inner.read_timeout));
            };
            match outcome {
                Ok(rows) => return Ok(rows),
                Err(err) if err.code() == Some(&SqlState::QUERY_CANCELED) => {
                    inner.metrics.timed_out.inc();
                    return Err(ReadError::TimedOut(inner.read_timeout));
                }
                Err(err) if connection.lost(&err) => {
                    lane.discard(&connection, inner);
                    if retried {
                        return Err(err.into());
                    }
                    retried = true;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    pub fn usage(&self) -> ReadUsage {
        let lanes = &self.inner.lanes;
        ReadUsage {
            live: lanes
                .iter()
                .filter(|lane| {
                    lane.live
                        .load()
                        .as_ref()
                        .is_some_and(|c| !c.client.is_closed())
                })
                .count(),
            max: lanes.len(),
            in_flight: lanes
                .iter()
                .map(|lane| lane.in_flight.load(Ordering::Relaxed))
                .sum(),
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

    /// Drops `dead` from the lane unless another read already replaced it. Reads still
    /// waiting on it keep it until they end.
    fn discard(&self, dead: &Arc<Connection>, inner: &Inner) {
        let was = self
            .live
            .compare_and_swap(&Some(dead.clone()), None::<Arc<Connection>>);
        if was.as_ref().is_some_and(|was| Arc::ptr_eq(was, dead)) {
            inner.metrics.replaced.inc();
        }
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
    pub fn new(text: &str) -> Self {
        // Room for the clauses and parameters a listing adds (at most seven: category, ids,
        // search, three cursor values, limit), so neither is regrown clause by clause.
        let mut sql = String::with_capacity(text.len() + 192);
        sql.push_str(text);
        Self {
            text: sql,
            params: Vec::with_capacity(7),
        }
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    pub fn bind(&mut self, value: &'a (dyn ToSql + Sync)) -> &mut Self {
        self.params.push(value);
        self.text.push('$');
        self.text
            .push_str(itoa::Buffer::new().format(self.params.len()));
        self
    }

    /// The rows, at most `max_rows` of them (see [`Reads::query_up_to`]).
    pub async fn fetch(&self, reads: &Reads, max_rows: usize) -> Result<Vec<Row>, ReadError> {
        reads.query_up_to(&self.text, &self.params, max_rows).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads on `connections` lanes with `read_timeout`, and the counters they keep.
    fn open(
        url: &DatabaseUrl,
        connections: usize,
        read_timeout: Duration,
    ) -> anyhow::Result<(Reads, ReadMetrics)> {
        let limits = Limits {
            connections: NonZeroUsize::new(connections).unwrap(),
            connect_timeout: Duration::from_secs(1),
            read_timeout,
        };
        let metrics = ReadMetrics::default();
        Reads::new(url, limits, metrics.clone()).map(|reads| (reads, metrics))
    }

    #[tokio::test]
    async fn an_unreachable_database_is_a_503_that_names_where_and_hides_the_password() {
        let port = shopmicro_common::testing::closed_port();
        let url: DatabaseUrl = format!("postgres://shop:hunter2-secret@127.0.0.1:{port}/shop")
            .parse()
            .unwrap();
        let (reads, _) = open(&url, 1, Duration::from_secs(1)).unwrap();
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
        let (reads, _) = open(&url, 2, Duration::from_secs(30)).unwrap();
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

    async fn backend_pid(reads: &Reads) -> i32 {
        reads.query("SELECT pg_backend_pid()", &[]).await.unwrap()[0].get(0)
    }

    #[tokio::test]
    async fn the_server_cancels_a_read_past_its_timeout_and_keeps_the_connection() {
        let database = shopmicro_common::testing::TestDatabase::create().await;
        let url: DatabaseUrl = database.url().parse().unwrap();
        let (reads, metrics) = open(&url, 1, Duration::from_millis(300)).unwrap();
        let pid = backend_pid(&reads).await;

        let err = reads.query("SELECT pg_sleep(10)", &[]).await.unwrap_err();
        assert!(matches!(err, ReadError::TimedOut(_)), "{err:#}");
        let api = ApiError::from(err);
        assert_eq!(api.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(api.code(), "database_timeout");
        assert_eq!(metrics.timed_out.get(), 1);

        assert_eq!(backend_pid(&reads).await, pid, "the connection was kept");
        assert_eq!(metrics.replaced.get(), 0);
    }

    /// Forwards TCP to `target` until told to stall; then it holds every byte, as a
    /// network partition or a frozen server does, without closing anything.
    struct StallingProxy {
        port: u16,
        stalled: tokio::sync::watch::Sender<bool>,
    }

    impl StallingProxy {
        async fn start(target: String) -> Self {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let (stalled, _) = tokio::sync::watch::channel(false);
            let watch = stalled.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let server = tokio::net::TcpStream::connect(&target).await.unwrap();
                    let (client_in, client_out) = client.into_split();
                    let (server_in, server_out) = server.into_split();
                    tokio::spawn(Self::forward(client_in, server_out, watch.subscribe()));
                    tokio::spawn(Self::forward(server_in, client_out, watch.subscribe()));
                }
            });
            Self { port, stalled }
        }

        async fn forward(
            mut from: tokio::net::tcp::OwnedReadHalf,
            mut to: tokio::net::tcp::OwnedWriteHalf,
            mut stalled: tokio::sync::watch::Receiver<bool>,
        ) {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut buffer = vec![0; 16 * 1024];
            while let Ok(read @ 1..) = from.read(&mut buffer).await {
                if stalled.wait_for(|stalled| !stalled).await.is_err()
                    || to.write_all(&buffer[..read]).await.is_err()
                {
                    return;
                }
            }
        }

        fn stall(&self, stalled: bool) {
            self.stalled.send_replace(stalled);
        }
    }

    #[tokio::test]
    async fn a_connection_that_stops_answering_is_dropped_and_the_next_read_opens_another() {
        let database = shopmicro_common::testing::TestDatabase::create().await;
        let mut through = url::Url::parse(database.url()).unwrap();
        let target = format!(
            "{}:{}",
            through.host_str().unwrap(),
            through.port().unwrap_or(5432)
        );
        let proxy = StallingProxy::start(target).await;
        through.set_host(Some("127.0.0.1")).unwrap();
        through.set_port(Some(proxy.port)).unwrap();
        let url: DatabaseUrl = through.as_str().parse().unwrap();
        let (reads, metrics) = open(&url, 1, Duration::from_millis(200)).unwrap();
        let before = backend_pid(&reads).await;

        proxy.stall(true);
        let err = reads.query("SELECT 1", &[]).await.unwrap_err();
        assert!(matches!(err, ReadError::TimedOut(_)), "{err:#}");
        assert_eq!(
            metrics.replaced.get(),
            1,
            "the silent connection was dropped"
        );
        assert_eq!(reads.usage().live, 0);

        proxy.stall(false);
        let after = backend_pid(&reads).await;
        assert_ne!(after, before, "the read after went over a new connection");
        assert_eq!(reads.usage().live, 1);
        assert_eq!(metrics.timed_out.get(), 1);
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
        let err = open(&url, 1, Duration::from_secs(1)).err().unwrap();
        let message = format!("{err:#}");
        assert!(message.contains("invalid database URL"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}
