//! The shared (Redis) layer of the catalogue cache: values by key, and numbers that only
//! move forward.
//!
//! The cache is an optimisation, never a dependency: every operation has a short time
//! budget, and any failure (Redis down, slow, restarted, or never configured) is counted
//! and answered from PostgreSQL instead. The connection is made lazily and re-made after
//! failures, at most once per `RECONNECT_INTERVAL`, so a dead Redis costs requests nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::Serialize;
use tokio::sync::Mutex;
use tracing::Instrument;

use crate::metrics::BackendMetrics;

const RECONNECT_INTERVAL: Duration = Duration::from_secs(2);

/// KEYS[1] := ARGV[1] when that raises it, when it is unset, or when it still holds ARGV[2].
const RAISE_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[1])
if not current or tonumber(ARGV[1]) > tonumber(current) or current == ARGV[2] then
    redis.call('SET', KEYS[1], ARGV[1])
    return 1
end
return 0
";

#[derive(Clone)]
pub struct Cache {
    inner: Option<Arc<Inner>>,
    metrics: BackendMetrics,
}

struct Inner {
    client: redis::Client,
    prefix: String,
    ttl: Duration,
    timeout: Duration,
    connection: Mutex<Connection>,
}

enum Connection {
    Ready(ConnectionManager),
    Down { since: Option<Instant> },
}

/// What `/readyz` reports about the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheHealth {
    Ok,
    Unavailable,
    Disabled,
}

impl Cache {
    pub fn disabled(metrics: BackendMetrics) -> Self {
        Self {
            inner: None,
            metrics,
        }
    }

    pub fn new(
        url: &str,
        prefix: String,
        ttl: Duration,
        timeout: Duration,
        metrics: BackendMetrics,
    ) -> anyhow::Result<Self> {
        // Only parses the URL; nothing connects until the first use.
        let client = redis::Client::open(url).map_err(|err| {
            anyhow::anyhow!("REDIS_URL is not a valid Redis URL ({:?})", err.kind())
        })?;
        Ok(Self {
            inner: Some(Arc::new(Inner {
                client,
                prefix,
                ttl,
                timeout,
                connection: Mutex::new(Connection::Down { since: None }),
            })),
            metrics,
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The value stored under `key` (the prefix is added here), or `None` on a miss or any
    /// cache failure.
    pub async fn get(&self, key: &str) -> Option<Bytes> {
        let inner = self.inner.as_ref()?;
        let key = format!("{}{key}", inner.prefix);
        let result = self
            .with_connection(inner, "GET", async |mut conn: ConnectionManager| {
                conn.get::<_, Option<Vec<u8>>>(&key).await
            })
            .await;
        let (value, outcome) = match result {
            Some(Some(bytes)) => (Some(Bytes::from(bytes)), "hit"),
            Some(None) => (None, "miss"),
            None => (None, "error"),
        };
        self.metrics.cache("get", outcome);
        value
    }

    /// Stores `value` under `key` for the configured TTL.
    pub async fn put(&self, key: &str, value: &Bytes) {
        let Some(inner) = self.inner.as_ref() else {
            return;
        };
        let key = format!("{}{key}", inner.prefix);
        let ttl = inner.ttl.as_secs().max(1);
        let value = value.as_ref();
        let result = self
            .with_connection(inner, "SETEX", async |mut conn: ConnectionManager| {
                conn.set_ex::<_, _, ()>(&key, value, ttl).await
            })
            .await;
        self.metrics
            .cache("set", if result.is_some() { "ok" } else { "error" });
    }

    /// The number stored under `key`; `None` when it is absent or the cache failed.
    pub async fn get_number(&self, key: &str) -> Option<i64> {
        let inner = self.inner.as_ref()?;
        let key = format!("{}{key}", inner.prefix);
        self.with_connection(inner, "GET", async |mut conn: ConnectionManager| {
            conn.get::<_, Option<i64>>(&key).await
        })
        .await
        .flatten()
    }

    /// Raises the number under `key` to `value`; lowers it only when it still holds
    /// `replacing` (a value the caller read and knows to be obsolete). Writers racing to
    /// raise it can so never move it back, while a deliberate correction still lands.
    /// Returns whether the cache took it.
    pub async fn raise_number(&self, key: &str, value: i64, replacing: Option<i64>) -> bool {
        let Some(inner) = self.inner.as_ref() else {
            return false;
        };
        let key = format!("{}{key}", inner.prefix);
        let replacing = replacing.map(|n| n.to_string()).unwrap_or_default();
        self.with_connection(inner, "EVAL", async |mut conn: ConnectionManager| {
            redis::cmd("EVAL")
                .arg(RAISE_SCRIPT)
                .arg(1)
                .arg(&key)
                .arg(value)
                .arg(&replacing)
                .query_async::<i64>(&mut conn)
                .await
        })
        .await
        .is_some()
    }

    pub async fn health(&self) -> CacheHealth {
        let Some(inner) = self.inner.as_ref() else {
            return CacheHealth::Disabled;
        };
        let pong = self
            .with_connection(inner, "PING", async |mut conn: ConnectionManager| {
                redis::cmd("PING").query_async::<String>(&mut conn).await
            })
            .await;
        if pong.is_some() {
            CacheHealth::Ok
        } else {
            CacheHealth::Unavailable
        }
    }

    /// Runs one command within the time budget; `None` means "use PostgreSQL".
    async fn with_connection<T>(
        &self,
        inner: &Inner,
        operation: &'static str,
        command: impl AsyncFnOnce(ConnectionManager) -> redis::RedisResult<T>,
    ) -> Option<T> {
        let span = tracing::info_span!(
            "cache",
            otel.name = %format!("redis {operation}"),
            otel.kind = "client",
            db.system = "redis",
            db.operation = operation,
        );
        let connection = self.connection(inner).instrument(span.clone()).await?;
        let outcome = tokio::time::timeout(inner.timeout, command(connection))
            .instrument(span)
            .await;
        match outcome {
            Ok(Ok(value)) => Some(value),
            Ok(Err(err)) => {
                tracing::warn!(error.kind = ?err.kind(), "redis command failed; using PostgreSQL");
                self.mark_down(inner).await;
                None
            }
            Err(_) => {
                tracing::warn!(
                    timeout_ms = inner.timeout.as_millis() as u64,
                    "redis command timed out; using PostgreSQL"
                );
                self.mark_down(inner).await;
                None
            }
        }
    }

    async fn connection(&self, inner: &Inner) -> Option<ConnectionManager> {
        let mut state = inner.connection.lock().await;
        match &*state {
            Connection::Ready(conn) => return Some(conn.clone()),
            Connection::Down { since: Some(since) } if since.elapsed() < RECONNECT_INTERVAL => {
                return None;
            }
            Connection::Down { .. } => {}
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(inner.timeout)
            .set_response_timeout(inner.timeout)
            .set_number_of_retries(0);
        let connect = ConnectionManager::new_with_config(inner.client.clone(), config);
        match tokio::time::timeout(inner.timeout * 2, connect).await {
            Ok(Ok(conn)) => {
                tracing::info!("connected to redis");
                *state = Connection::Ready(conn.clone());
                Some(conn)
            }
            _ => {
                *state = Connection::Down {
                    since: Some(Instant::now()),
                };
                None
            }
        }
    }

    async fn mark_down(&self, inner: &Inner) {
        *inner.connection.lock().await = Connection::Down {
            since: Some(Instant::now()),
        };
    }
}
