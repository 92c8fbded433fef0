//! The catalogue cache: listings, categories and product pages, kept as the JSON they are
//! answered with.
//!
//! A read goes through three layers, each keyed by the catalogue's version, so an answer is
//! served only while nothing in the catalogue has changed since it was made:
//! 1. this process's memory (no I/O at all);
//! 2. Redis, shared by every replica (a fresh replica or a new version costs one query in
//!    all, not one per replica);
//! 3. PostgreSQL, once per key however many readers miss it at the same time.
//!
//! Any change to products or categories (an order's stock, a price changed in SQL) makes a
//! new version, so there is nothing to invalidate key by key. An order's change shows on the
//! next read on every replica; a change made in SQL shows within a second.

mod version;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use sha2::{Digest, Sha256};
use shopmicro_common::error::ApiError;
use shopmicro_common::single_flight::SingleFlight;
use shopmicro_common::versioned_memory::Memory;
use sqlx::PgPool;

use self::version::VersionWatch;
use crate::cache::Cache;
use crate::metrics::BackendMetrics;

/// What a load gives: the answer's JSON, or `None` for "no such thing".
/// A failed load is `Err(())` to the readers that shared it; its own reader has the error.
type Loaded = Result<Option<Bytes>, ()>;

/// "No such thing" is cached too, as an empty value (no answer is empty JSON), so asking for
/// products that do not exist costs a query per key and version, not one per request. A
/// product created later changes the version, so it is never hidden by an old absence.
fn stored(answer: &Option<Bytes>) -> Bytes {
    answer.clone().unwrap_or_default()
}

fn answer_of(stored: Bytes) -> Option<Bytes> {
    (!stored.is_empty()).then_some(stored)
}

#[derive(Clone)]
pub struct Catalogue {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` when there is nowhere to cache (no Redis and no memory budget): then every
    /// read is a query, and no version is read for nothing.
    versions: Option<VersionWatch>,
    memory: Memory,
    flights: SingleFlight<String, Loaded>,
    cache: Cache,
    metrics: BackendMetrics,
}

impl Catalogue {
    pub fn start(
        cache: Cache,
        db: PgPool,
        memory_bytes: usize,
        ttl: Duration,
        metrics: BackendMetrics,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                versions: (memory_bytes > 0 || cache.is_enabled())
                    .then(|| VersionWatch::start(cache.clone(), db)),
                memory: Memory::new(memory_bytes, ttl),
                flights: SingleFlight::new(),
                cache,
                metrics,
            }),
        }
    }

    /// The answer for the key `key` makes (which must name everything the answer depends on),
    /// from the nearest layer that has it for the current version, else from `load`. The key
    /// is made only when some layer may hold the answer: with nothing caching, a listing
    /// does not pay for serialising its query into a key no one reads.
    pub async fn read<Fut>(
        &self,
        key: impl FnOnce() -> Result<String, ApiError>,
        load: impl FnOnce() -> Fut,
    ) -> Result<Option<Bytes>, ApiError>
    where
        Fut: Future<Output = Result<Option<Bytes>, ApiError>>,
    {
        let inner = &self.inner;
        let Some(version) = self.version().await else {
            inner.metrics.catalogue_read("database");
            return load().await;
        };
        let key = key()?;
        let key = key.as_str();
        if let Some(kept) = inner.memory.get(version, key) {
            inner.metrics.catalogue_read("memory");
            return Ok(answer_of(kept));
        }
        let shared_key = format!("catalogue:{version}:{}", digest(key));
        let mut source = "shared";
        let mut failure = None;
        let (loaded, loaded_here) = inner
            .flights
            .run(shared_key.clone(), || async {
                if let Some(kept) = inner.cache.get(&shared_key).await {
                    source = "redis";
                    return Ok(answer_of(kept));
                }
                source = "database";
                match load().await {
                    Ok(answer) => {
                        inner.cache.put(&shared_key, &stored(&answer)).await;
                        Ok(answer)
                    }
                    Err(err) => {
                        failure = Some(err);
                        Err(())
                    }
                }
            })
            .await;
        inner.metrics.catalogue_read(source);
        match loaded {
            Ok(answer) => {
                if loaded_here {
                    inner
                        .memory
                        .insert(version, key.to_owned(), stored(&answer));
                }
                Ok(answer)
            }
            Err(()) => Err(failure.unwrap_or_else(|| {
                ApiError::internal(anyhow::anyhow!(
                    "the shared read of {key} this request waited for failed"
                ))
            })),
        }
    }

    /// The catalogue's version, from a read begun after this call: what an answer made now
    /// is current for. `None` when nothing caches or the version could not be read.
    pub async fn version(&self) -> Option<i64> {
        match &self.inner.versions {
            Some(versions) => versions.current().await,
            None => None,
        }
    }

    /// After a commit that changed products or categories.
    pub async fn changed(&self) {
        if let Some(versions) = &self.inner.versions {
            versions.announce_change().await;
        }
    }
}

/// Redis keys stay short whatever the query (a search, a list of ids).
fn digest(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .take(16)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
