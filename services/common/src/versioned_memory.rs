//! An in-process cache of serialised answers for the current version of their data only
//! (the catalogue's, say), bounded in bytes. A new version empties it, since nothing stored
//! for an older one may be served.
//!
//! The budget counts each entry's key and bookkeeping as well as its value: an empty value
//! (a cached "no such thing") still takes memory, and requests for a million missing keys
//! must not grow the process without bound.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;

pub struct Memory {
    budget_bytes: usize,
    ttl: Duration,
    generation: RwLock<Generation>,
}

struct Generation {
    version: i64,
    bytes: usize,
    entries: HashMap<String, Entry>,
}

struct Entry {
    stored: Instant,
    value: Bytes,
}

/// What an entry takes beside its key's and value's bytes: the map's slot, the key's and the
/// value's headers, the timestamp (about 80 bytes on 64-bit targets), rounded up.
const ENTRY_OVERHEAD: usize = 96;

fn cost(key: &str, value: &Bytes) -> usize {
    key.len() + value.len() + ENTRY_OVERHEAD
}

impl Memory {
    /// `ttl` bounds how long an answer is kept even when no version change announces it stale
    /// (a change whose announcement was lost).
    pub fn new(budget_bytes: usize, ttl: Duration) -> Self {
        Self {
            budget_bytes,
            ttl,
            generation: RwLock::new(Generation {
                version: i64::MIN,
                bytes: 0,
                entries: HashMap::new(),
            }),
        }
    }

    pub fn get(&self, version: i64, key: &str) -> Option<Bytes> {
        let generation = self
            .generation
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if generation.version != version {
            return None;
        }
        let entry = generation.entries.get(key)?;
        (entry.stored.elapsed() < self.ttl).then(|| entry.value.clone())
    }

    /// Keeps `value` unless the budget is spent on fresh answers (then the database or Redis
    /// keeps answering that key until the version changes).
    pub fn insert(&self, version: i64, key: String, value: Bytes) {
        let mut generation = self
            .generation
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if generation.version != version {
            *generation = Generation {
                version,
                bytes: 0,
                entries: HashMap::new(),
            };
        }
        let added = cost(&key, &value);
        if generation.bytes + added > self.budget_bytes {
            let ttl = self.ttl;
            generation
                .entries
                .retain(|_, entry| entry.stored.elapsed() < ttl);
            generation.bytes = generation
                .entries
                .iter()
                .map(|(key, entry)| cost(key, &entry.value))
                .sum();
            if generation.bytes + added > self.budget_bytes {
                return;
            }
        }
        generation.bytes += added;
        let entry = Entry {
            stored: Instant::now(),
            value,
        };
        let key_cost = added - entry.value.len();
        if let Some(replaced) = generation.entries.insert(key, entry) {
            generation.bytes -= key_cost + replaced.value.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn answers_only_for_the_version_they_were_stored_under() {
        let memory = Memory::new(1024, HOUR);
        memory.insert(1, "k".into(), Bytes::from_static(b"one"));
        assert_eq!(memory.get(1, "k").as_deref(), Some(&b"one"[..]));
        assert_eq!(memory.get(2, "k"), None);
        memory.insert(2, "other".into(), Bytes::from_static(b"two"));
        assert_eq!(memory.get(1, "k"), None, "a new version empties the layer");
        assert_eq!(memory.get(2, "other").as_deref(), Some(&b"two"[..]));
    }

    #[test]
    fn the_byte_budget_is_kept_and_replacing_frees_the_old_value() {
        let memory = Memory::new(2 * ENTRY_OVERHEAD + 12, HOUR);
        memory.insert(1, "a".into(), Bytes::from_static(b"123456"));
        memory.insert(1, "b".into(), Bytes::from_static(b"123456"));
        assert!(memory.get(1, "b").is_none(), "over budget: not kept");
        memory.insert(1, "a".into(), Bytes::from_static(b"1234"));
        memory.insert(1, "b".into(), Bytes::from_static(b"123456"));
        assert_eq!(memory.get(1, "a").as_deref(), Some(&b"1234"[..]));
        assert_eq!(memory.get(1, "b").as_deref(), Some(&b"123456"[..]));
    }

    #[test]
    fn empty_answers_and_their_keys_count_against_the_budget() {
        let memory = Memory::new(100 * ENTRY_OVERHEAD, HOUR);
        for id in 0..1000 {
            memory.insert(1, format!("product:{id}"), Bytes::new());
        }
        let generation = memory.generation.read().unwrap();
        assert!(generation.bytes <= 100 * ENTRY_OVERHEAD);
        assert!(
            generation.entries.len() < 100,
            "{} empty answers kept",
            generation.entries.len()
        );
    }

    #[test]
    fn expired_answers_are_not_served_and_make_room() {
        let memory = Memory::new(ENTRY_OVERHEAD + 7, Duration::ZERO);
        memory.insert(1, "a".into(), Bytes::from_static(b"123456"));
        assert_eq!(memory.get(1, "a"), None);
        memory.insert(1, "b".into(), Bytes::from_static(b"123456"));
        assert_eq!(memory.generation.read().unwrap().bytes, ENTRY_OVERHEAD + 7);
    }
}
