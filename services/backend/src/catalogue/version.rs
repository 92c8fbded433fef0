//! The catalogue's version as every replica sees it.
//!
//! PostgreSQL owns the version: a trigger bumps it in the same transaction as any change to
//! products or categories (migration `20261205000001`). Redis holds a copy that is cheap to
//! read. A writer raises the copy after its commit and before it answers. A background sync
//! corrects the copy within a second of a change made anywhere else (SQL by hand, a restore).
//!
//! A request needs a version read that *started after it arrived*: an earlier read might
//! predate a change whose acknowledgement its client has already seen. So reads go through
//! [`FreshReads`]: one at a time, shared by every request that arrived meanwhile.

use std::sync::Arc;
use std::time::Duration;

use shopmicro_common::fresh_reads::{AbortOnDrop, FreshReads};
use sqlx::PgPool;

use crate::cache::Cache;

const KEY: &str = "catalogue:version";
const SYNC_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct VersionWatch {
    shared: Arc<Shared>,
    reads: FreshReads<i64>,
    /// Holds the pool, so it lives exactly as long as the watch.
    _sync: Option<Arc<AbortOnDrop>>,
}

struct Shared {
    cache: Cache,
    db: PgPool,
}

impl VersionWatch {
    pub fn start(cache: Cache, db: PgPool) -> Self {
        let shared = Arc::new(Shared { cache, db });
        let reads = {
            let shared = shared.clone();
            FreshReads::start(move || {
                let shared = shared.clone();
                async move { shared.read().await }
            })
        };
        let sync = shared
            .cache
            .is_enabled()
            .then(|| Arc::new(AbortOnDrop(tokio::spawn(keep_copy_in_sync(shared.clone())))));
        Self {
            shared,
            reads,
            _sync: sync,
        }
    }

    /// The version now, read after this call began; `None` when neither Redis nor
    /// PostgreSQL could say (then nothing may be served from a cache).
    pub async fn current(&self) -> Option<i64> {
        self.reads.current().await
    }

    /// After a commit that changed the catalogue: makes Redis's copy show it, so the next
    /// read on any replica does.
    pub async fn announce_change(&self) {
        if self.shared.cache.is_enabled() {
            self.shared.sync().await;
        }
    }
}

async fn keep_copy_in_sync(shared: Arc<Shared>) {
    let mut every = tokio::time::interval(SYNC_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        shared.sync().await;
    }
}

impl Shared {
    async fn read(&self) -> Option<i64> {
        if let Some(version) = self.cache.get_number(KEY).await {
            return Some(version);
        }
        // Redis is off, down, or lost the copy (it keeps nothing on disk).
        let version = self.database_version().await?;
        self.cache.raise_number(KEY, version, None).await;
        Some(version)
    }

    /// Copies PostgreSQL's version to Redis. Redis is read first: PostgreSQL's version only
    /// grows, so a database version read later that is *lower* means the database went back
    /// (a restore), and the copy is corrected down — unless a writer raised it meanwhile.
    async fn sync(&self) {
        let copy = self.cache.get_number(KEY).await;
        let Some(version) = self.database_version().await else {
            return;
        };
        if copy != Some(version) {
            self.cache.raise_number(KEY, version, copy).await;
        }
    }

    async fn database_version(&self) -> Option<i64> {
        sqlx::query_scalar("SELECT version FROM catalogue_version")
            .fetch_one(&self.db)
            .await
            .inspect_err(|err| {
                tracing::warn!(error = %err, "reading the catalogue version failed; not caching")
            })
            .ok()
    }
}
