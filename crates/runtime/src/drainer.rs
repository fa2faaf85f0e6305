//! The one durable drainer of the network: a background worker that carries work recorded
//! in a store (an outbox of holds to place, transfers to drive along the corridor) to its
//! end, retrying with backoff until each item is done.
//!
//! The work is durable because it is recorded in the same write that creates it; the
//! drainer only reads what is pending and attempts it, so a crash delays work and never
//! loses it. Every attempt must be idempotent (each carries a request id fixed in the
//! item). An item is attempted when its work is recorded (the store wakes the drainer),
//! when the poll interval passes, and after a failure once its backoff has passed; a
//! refusal (the other side said no) backs off to a longer ceiling than a transient
//! failure. An item being driven elsewhere (a request handler driving it at once) is
//! claimed, and the drainer leaves it alone: one driver per item at a time.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::retry::Backoff;
use crate::shutdown::Shutdown;

/// What one attempt at an item did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Done (or nothing more to do): the item leaves the pending set.
    Done,
    /// Failed; try again later. `transient` (unreachable, overloaded, timed out) backs off
    /// to [`DrainerOptions::backoff`]'s ceiling, a refusal to `refused_backoff`'s.
    Retry {
        /// Whether the failure is one that clears by itself.
        transient: bool,
    },
}

/// Work a [`Drainer`] carries out.
pub trait Outbox: Send + Sync + 'static {
    /// One unit of pending work.
    type Item: Send + 'static;

    /// The item's identity (an alarm id, a transfer id): claims and backoffs are per key.
    fn key(item: &Self::Item) -> String;

    /// Everything pending now, oldest first.
    fn pending(&self) -> Result<Vec<Self::Item>, String>;

    /// Attempts one item (idempotently) and records the outcome in the store.
    fn attempt(&self, item: Self::Item) -> impl Future<Output = Attempt> + Send;
}

/// How a drainer paces itself.
#[derive(Debug, Clone)]
pub struct DrainerOptions {
    /// How often pending work is read without a wake-up; `None`: only when woken or when
    /// a backoff passes.
    pub poll: Option<Duration>,
    /// Backoff after a transient failure.
    pub backoff: Backoff,
    /// Backoff after a refusal.
    pub refused_backoff: Backoff,
    /// Items attempted at once.
    pub concurrency: usize,
}

/// Keys being driven by someone: at most one driver per key at a time.
#[derive(Debug, Default)]
pub struct Claims {
    held: Mutex<HashSet<String>>,
    released: Notify,
}

/// A held claim; released when dropped.
#[derive(Debug)]
pub struct Claim {
    claims: Arc<Claims>,
    key: String,
}

impl Claims {
    /// No key claimed.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // A panic while holding this lock leaves the set consistent (one insert or remove).
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Claims `key` if nobody holds it.
    pub fn try_claim(self: &Arc<Self>, key: &str) -> Option<Claim> {
        self.held().insert(key.to_string()).then(|| Claim {
            claims: self.clone(),
            key: key.to_string(),
        })
    }

    /// Claims `key`, waiting for its current holder to finish.
    pub async fn claim(self: &Arc<Self>, key: &str) -> Claim {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            // Registered before the check, so a release between the two is not missed.
            released.as_mut().enable();
            if let Some(claim) = self.try_claim(key) {
                return claim;
            }
            released.await;
        }
    }

    /// Whether `key` is held now.
    pub fn is_claimed(&self, key: &str) -> bool {
        self.held().contains(key)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.claims.held().remove(&self.key);
        self.claims.released.notify_waiters();
    }
}

/// Drains an [`Outbox`] until shutdown.
pub struct Drainer<O: Outbox> {
    outbox: Arc<O>,
    claims: Arc<Claims>,
    wake: Arc<Notify>,
    options: DrainerOptions,
}

/// An item's failures so far and when it may be attempted again.
struct Retry {
    failures: u32,
    at: Instant,
}

impl<O: Outbox> Drainer<O> {
    /// A drainer of `outbox`, woken by `wake`, leaving alone the keys held in `claims`.
    pub fn new(
        outbox: Arc<O>,
        claims: Arc<Claims>,
        wake: Arc<Notify>,
        options: DrainerOptions,
    ) -> Self {
        Self {
            outbox,
            claims,
            wake,
            options,
        }
    }

    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: Shutdown) {
        let mut retries: HashMap<String, Retry> = HashMap::new();
        let stop = shutdown.wait();
        tokio::pin!(stop);
        loop {
            let woken = self.wake.notified();
            tokio::pin!(woken);
            // Registered before reading, so work recorded while a round runs is not missed.
            woken.as_mut().enable();
            let next_retry = tokio::select! {
                biased;
                () = &mut stop => return,
                next = self.round(&mut retries) => next,
            };
            let wait = [
                next_retry,
                self.options.poll.map(|poll| Instant::now() + poll),
            ]
            .into_iter()
            .flatten()
            .min();
            let sleep = async {
                match wait {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = &mut stop => return,
                () = woken => {}
                () = sleep => {}
            }
        }
    }

    /// Attempts every due item once; returns when the earliest backoff ends.
    async fn round(&self, retries: &mut HashMap<String, Retry>) -> Option<Instant> {
        let pending = match self.outbox.pending() {
            Ok(pending) => pending,
            Err(error) => {
                tracing::error!(%error, "cannot read pending work; will try again");
                return Some(Instant::now() + self.options.backoff.max);
            }
        };
        let keys: HashSet<String> = pending.iter().map(O::key).collect();
        retries.retain(|key, _| keys.contains(key));
        let now = Instant::now();
        let due: Vec<(O::Item, Claim)> = pending
            .into_iter()
            .filter(|item| retries.get(&O::key(item)).is_none_or(|r| r.at <= now))
            .filter_map(|item| {
                let claim = self.claims.try_claim(&O::key(&item))?;
                Some((item, claim))
            })
            .collect();
        let outcomes: Vec<(String, Attempt)> = futures::stream::iter(due)
            .map(|(item, claim)| async move {
                let outcome = self.outbox.attempt(item).await;
                let key = claim.key.clone();
                drop(claim);
                (key, outcome)
            })
            .buffer_unordered(self.options.concurrency.max(1))
            .collect()
            .await;
        for (key, outcome) in outcomes {
            match outcome {
                Attempt::Done => {
                    retries.remove(&key);
                }
                Attempt::Retry { transient } => {
                    let failures = retries
                        .get(&key)
                        .map_or(1, |r| r.failures.saturating_add(1));
                    let backoff = if transient {
                        self.options.backoff
                    } else {
                        self.options.refused_backoff
                    };
                    let at = Instant::now() + backoff.next(failures);
                    retries.insert(key, Retry { failures, at });
                }
            }
        }
        retries.values().map(|r| r.at).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Items "a" and "b": "a" succeeds on its third attempt, "b" is refused twice first.
    struct Flaky {
        attempts: Mutex<HashMap<String, u32>>,
        done: Mutex<HashSet<String>>,
        concurrent: AtomicU32,
        most_concurrent: AtomicU32,
    }

    impl Outbox for Flaky {
        type Item = String;

        fn key(item: &String) -> String {
            item.clone()
        }

        fn pending(&self) -> Result<Vec<String>, String> {
            let done = self.done.lock().unwrap();
            Ok(["a", "b"]
                .into_iter()
                .filter(|k| !done.contains(*k))
                .map(String::from)
                .collect())
        }

        async fn attempt(&self, item: String) -> Attempt {
            let now = self.concurrent.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_concurrent.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(1)).await;
            self.concurrent.fetch_sub(1, Ordering::SeqCst);
            let n = {
                let mut attempts = self.attempts.lock().unwrap();
                let n = attempts.entry(item.clone()).or_default();
                *n += 1;
                *n
            };
            if n >= 3 {
                self.done.lock().unwrap().insert(item);
                Attempt::Done
            } else {
                Attempt::Retry {
                    transient: item == "a",
                }
            }
        }
    }

    fn flaky() -> Arc<Flaky> {
        Arc::new(Flaky {
            attempts: Mutex::default(),
            done: Mutex::default(),
            concurrent: AtomicU32::new(0),
            most_concurrent: AtomicU32::new(0),
        })
    }

    fn options() -> DrainerOptions {
        DrainerOptions {
            poll: None,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(1)),
            refused_backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(60)),
            concurrency: 1,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn every_item_is_retried_with_backoff_until_done_one_at_a_time() {
        let outbox = flaky();
        let shutdown = Shutdown::new();
        let drainer = Drainer::new(outbox.clone(), Claims::new(), Arc::default(), options());
        let task = tokio::spawn(drainer.run(shutdown.clone()));
        // Attempts 1 at once, 2 after 50-100 ms, 3 after 100-200 ms more.
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(outbox.attempts.lock().unwrap().get("a"), Some(&1));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(outbox.done.lock().unwrap().len(), 2);
        assert_eq!(outbox.attempts.lock().unwrap().get("a"), Some(&3));
        assert_eq!(outbox.most_concurrent.load(Ordering::SeqCst), 1);
        shutdown.trigger();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_claimed_item_is_left_alone_until_released_and_a_wake_up_starts_a_round() {
        let outbox = flaky();
        let claims = Claims::new();
        let wake = Arc::new(Notify::new());
        let shutdown = Shutdown::new();
        let held = claims.try_claim("a").unwrap();
        assert!(claims.try_claim("a").is_none());
        let drainer = Drainer::new(outbox.clone(), claims.clone(), wake.clone(), options());
        let task = tokio::spawn(drainer.run(shutdown.clone()));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(outbox.attempts.lock().unwrap().get("a"), None);
        drop(held);
        wake.notify_one();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(outbox.done.lock().unwrap().contains("a"));
        shutdown.trigger();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_claim_waits_for_its_holder() {
        let claims = Claims::new();
        let held = claims.try_claim("t").unwrap();
        let waiter = {
            let claims = claims.clone();
            tokio::spawn(async move { claims.claim("t").await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiter.is_finished());
        drop(held);
        let claim = waiter.await.unwrap();
        assert!(claims.is_claimed("t"));
        drop(claim);
        assert!(!claims.is_claimed("t"));
    }
}
