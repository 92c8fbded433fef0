//! Cache-aside for product reads in Redis.
//!
//! The cache is an optimisation, never a dependency: every operation has a short time
//! budget, and any failure (Redis down, slow, restarted, or never configured) is counted
//! and answered from PostgreSQL instead. The connection is made lazily and re-made after
//! failures, at most once per `RECONNECT_INTERVAL`, so a dead Redis costs requests nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use tracing::Instrument;

use crate::domain::ProductId;
use crate::metrics::BackendMetrics;

const RECONNECT_INTERVAL: Duration = Duration::from_secs(2);

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

    fn product_key(inner: &Inner, id: ProductId) -> String {
        format!("{}product:{}", inner.prefix, id.get())
    }

    /// The cached value, or `None` on a miss or any cache failure.
    pub async fn get_product<T: DeserializeOwned>(&self, id: ProductId) -> Option<T> {
        let inner = self.inner.as_ref()?;
        let key = Self::product_key(inner, id);
        let result = self
            .with_connection(inner, "GET", async |mut conn: ConnectionManager| {
                conn.get::<_, Option<String>>(&key).await
            })
            .await;
        match result {
            Some(Some(json)) => match serde_json::from_str(&json) {
                Ok(value) => {
                    self.metrics.cache("get", "hit");
                    Some(value)
                }
                Err(_) => {
                    // A value written by an older version; treat as a miss and overwrite.
                    self.metrics.cache("get", "miss");
                    None
                }
            },
            Some(None) => {
                self.metrics.cache("get", "miss");
                None
            }
            None => {
                self.metrics.cache("get", "error");
                None
            }
        }
    }

    pub async fn put_product<T: Serialize>(&self, id: ProductId, value: &T) {
        let Some(inner) = self.inner.as_ref() else {
            return;
        };
        let Ok(json) = serde_json::to_string(value) else {
            return;
        };
        let key = Self::product_key(inner, id);
        let ttl = inner.ttl.as_secs().max(1);
        let result = self
            .with_connection(inner, "SETEX", async |mut conn: ConnectionManager| {
                conn.set_ex::<_, _, ()>(&key, json, ttl).await
            })
            .await;
        self.metrics
            .cache("set", if result.is_some() { "ok" } else { "error" });
    }

    /// Drops cached products whose stock changed. A failure here leaves a stale entry for
    /// at most the TTL; the order itself is already committed and correct.
    pub async fn invalidate_products(&self, ids: &[ProductId]) {
        let Some(inner) = self.inner.as_ref() else {
            return;
        };
        if ids.is_empty() {
            return;
        }
        let keys: Vec<String> = ids.iter().map(|id| Self::product_key(inner, *id)).collect();
        let result = self
            .with_connection(inner, "DEL", async |mut conn: ConnectionManager| {
                conn.del::<_, ()>(&keys).await
            })
            .await;
        self.metrics
            .cache("invalidate", if result.is_some() { "ok" } else { "error" });
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
