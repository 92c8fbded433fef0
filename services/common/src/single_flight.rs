//! One load per key at a time: readers asking for a key that is being loaded wait for that
//! load instead of starting their own, so a cold key under load costs one query.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OnceCell;

pub struct SingleFlight<K, V> {
    in_flight: Mutex<HashMap<K, Arc<OnceCell<V>>>>,
}

impl<K, V> Default for SingleFlight<K, V> {
    fn default() -> Self {
        Self {
            in_flight: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> SingleFlight<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    /// What `load` gives for `key`, loaded once however many callers ask at the same time,
    /// and whether it was this caller's `load` that ran. When the caller whose load is
    /// running goes away (its request was cancelled), a waiting caller runs its own.
    pub async fn run<F, Fut>(&self, key: K, load: F) -> (V, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let flight = self
            .in_flight()
            .entry(key.clone())
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone();
        let mut loaded_here = false;
        let value = flight
            .get_or_init(|| {
                loaded_here = true;
                load()
            })
            .await
            .clone();
        // A finished flight is retired at once: a reader that comes later starts a new load
        // and so sees whatever changed since.
        let mut in_flight = self.in_flight();
        if in_flight
            .get(&key)
            .is_some_and(|current| Arc::ptr_eq(current, &flight))
        {
            in_flight.remove(&key);
        }
        (value, loaded_here)
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<K, Arc<OnceCell<V>>>> {
        // The map holds no invariant a panicking holder could break.
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_callers_share_one_load_and_later_ones_load_again() {
        let flights = Arc::new(SingleFlight::<&str, usize>::new());
        let loads = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let callers: Vec<_> = (0..50)
            .map(|_| {
                let (flights, loads, gate) = (flights.clone(), loads.clone(), gate.clone());
                tokio::spawn(async move {
                    flights
                        .run("k", || async {
                            gate.notified().await;
                            loads.fetch_add(1, Ordering::SeqCst) + 1
                        })
                        .await
                })
            })
            .collect();
        // Every caller holds the flight (the map's reference and 50 callers') before the one
        // load is let go.
        let holders = || flights.in_flight().get("k").map_or(0, Arc::strong_count);
        while holders() < 51 {
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        let mut loaded_here = 0;
        for caller in callers {
            let (value, ran) = caller.await.unwrap();
            assert_eq!(value, 1, "every caller got the one load's value");
            loaded_here += usize::from(ran);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert_eq!(loaded_here, 1);

        let (value, ran) = flights.run("k", || async { 7 }).await;
        assert_eq!((value, ran), (7, true), "a finished flight is not reused");
    }

    #[tokio::test]
    async fn a_cancelled_loader_hands_the_load_to_a_waiter() {
        let flights = Arc::new(SingleFlight::<&str, &str>::new());
        let leader = {
            let flights = flights.clone();
            tokio::spawn(async move { flights.run("k", std::future::pending).await })
        };
        while flights.in_flight().is_empty() {
            tokio::task::yield_now().await;
        }
        leader.abort();
        let _ = leader.await;
        let (value, ran) = flights.run("k", || async { "from the waiter" }).await;
        assert_eq!((value, ran), ("from the waiter", true));
    }
}
