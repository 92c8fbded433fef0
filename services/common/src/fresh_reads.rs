//! Reads that began after their caller asked, batched.
//!
//! A caller that must see every change acknowledged before it arrived (a shopper's order,
//! then the catalogue) cannot use a read already in flight: it may predate the change. So
//! at most one read runs at a time, and every caller that arrives meanwhile shares the next
//! one. Under load that is one round trip for many callers, not one each.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

pub struct FreshReads<T> {
    shared: Arc<Shared<T>>,
    _reader: Arc<AbortOnDrop>,
}

impl<T> Clone for FreshReads<T> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            _reader: self._reader.clone(),
        }
    }
}

struct Shared<T> {
    waiting: Mutex<Vec<oneshot::Sender<Option<T>>>>,
    wake: Notify,
}

/// A background task that lives exactly as long as its owner: it may hold a pool or a
/// client, and a test's database cannot be dropped while something does.
pub struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T: Clone + Send + 'static> FreshReads<T> {
    /// Starts the reader task; `read` answers `None` when it could not find out.
    pub fn start<Read, Fut>(read: Read) -> Self
    where
        Read: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Option<T>> + Send + 'static,
    {
        let shared = Arc::new(Shared {
            waiting: Mutex::new(Vec::new()),
            wake: Notify::new(),
        });
        let reader = tokio::spawn(serve(shared.clone(), read));
        Self {
            shared,
            _reader: Arc::new(AbortOnDrop(reader)),
        }
    }

    /// The value from a read that began after this call did.
    pub async fn current(&self) -> Option<T> {
        let (answer, read) = oneshot::channel();
        self.shared.waiting().push(answer);
        // A stored permit wakes the reader even when it is busy with the previous batch.
        self.shared.wake.notify_one();
        read.await.ok().flatten()
    }
}

async fn serve<T: Clone, Read, Fut>(shared: Arc<Shared<T>>, read: Read)
where
    Read: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    loop {
        shared.wake.notified().await;
        let batch = std::mem::take(&mut *shared.waiting());
        if batch.is_empty() {
            continue;
        }
        let value = read().await;
        for answer in batch {
            let _ = answer.send(value.clone());
        }
    }
}

impl<T> Shared<T> {
    fn waiting(&self) -> std::sync::MutexGuard<'_, Vec<oneshot::Sender<Option<T>>>> {
        // The list holds no invariant a panicking holder could break.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    async fn until(reached: impl Fn() -> bool) {
        while !reached() {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn each_caller_gets_a_read_begun_after_it_arrived_and_waiting_callers_share_one() {
        let reads = Arc::new(AtomicU32::new(0));
        let gate = Arc::new(Notify::new());
        let fresh = {
            let (reads, gate) = (reads.clone(), gate.clone());
            FreshReads::start(move || {
                let (reads, gate) = (reads.clone(), gate.clone());
                async move {
                    let number = reads.fetch_add(1, Ordering::SeqCst) + 1;
                    gate.notified().await;
                    Some(number)
                }
            })
        };
        let ask = || {
            let fresh = fresh.clone();
            tokio::spawn(async move { fresh.current().await })
        };
        let first = ask();
        until(|| reads.load(Ordering::SeqCst) == 1).await;
        // These two arrive while read 1 is in flight: it may predate them.
        let (second, third) = (ask(), ask());
        until(|| fresh.shared.waiting().len() == 2).await;
        gate.notify_one();
        assert_eq!(first.await.unwrap(), Some(1));
        until(|| reads.load(Ordering::SeqCst) == 2).await;
        gate.notify_one();
        assert_eq!(second.await.unwrap(), Some(2));
        assert_eq!(
            third.await.unwrap(),
            Some(2),
            "waiting callers share one read"
        );
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }
}
