//! Group commit: one flusher per database gathers every waiting writer, flushes once, and
//! wakes them all.
//!
//! A writer applies its change to sled (in memory), then calls [`GroupCommit::durable`],
//! which takes a ticket and waits until a flush that *started after* the ticket was taken
//! has finished. One dedicated thread performs the flushes with sled's blocking `flush()`:
//! sled 0.34's `flush_async` was seen to hang on this machine with several concurrent
//! callers, and a single flusher means there is never more than one flush in flight.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use tokio::sync::watch;

use crate::StoreError;

/// What the flusher has made durable so far.
#[derive(Debug, Clone, Default)]
struct Flushed {
    /// Every ticket up to and including this one is durable.
    through: u64,
    /// Set once a flush failed: the database can no longer make writes durable.
    failure: Option<String>,
}

#[derive(Default)]
struct Requests {
    /// The last ticket handed out.
    issued: u64,
    stopping: bool,
}

struct Shared {
    requests: Mutex<Requests>,
    wake: Condvar,
}

/// The flusher of one database.
pub struct GroupCommit {
    shared: Arc<Shared>,
    flushed: watch::Receiver<Flushed>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl GroupCommit {
    /// Starts the flusher thread for `db`.
    pub(crate) fn start(db: sled::Db, name: &str) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            requests: Mutex::new(Requests::default()),
            wake: Condvar::new(),
        });
        let (tx, rx) = watch::channel(Flushed::default());
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("flush-{name}"))
            .spawn(move || flusher(db, thread_shared, tx))?;
        Ok(Self {
            shared,
            flushed: rx,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Waits until every write applied before this call is on disk.
    pub async fn durable(&self) -> Result<(), StoreError> {
        let ticket = {
            let mut requests = lock(&self.shared.requests);
            if requests.stopping {
                return Err(StoreError::Closed);
            }
            requests.issued += 1;
            requests.issued
        };
        self.shared.wake.notify_one();
        let mut rx = self.flushed.clone();
        let state = rx
            .wait_for(|f| f.through >= ticket || f.failure.is_some())
            .await
            .map_err(|_| StoreError::Closed)?;
        match &state.failure {
            Some(message) if state.through < ticket => Err(StoreError::Flush(message.clone())),
            _ => Ok(()),
        }
    }

    /// Flushes what is pending and stops the thread. Later `durable` calls fail.
    pub(crate) fn stop(&self) {
        lock(&self.shared.requests).stopping = true;
        self.shared.wake.notify_one();
        if let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the counters inconsistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn flusher(db: sled::Db, shared: Arc<Shared>, tx: watch::Sender<Flushed>) {
    let mut through = 0u64;
    loop {
        let (target, stopping) = {
            let mut requests = lock(&shared.requests);
            while requests.issued == through && !requests.stopping {
                requests = shared
                    .wake
                    .wait(requests)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            (requests.issued, requests.stopping)
        };
        // Every ticket up to `target` was taken after its write was applied, and this flush
        // starts after we read `target`: it covers all of them.
        match db.flush() {
            Ok(_) => {
                through = target;
                tx.send_modify(|f| f.through = target);
            }
            Err(error) => {
                tracing::error!(%error, "flush failed: the database can no longer make writes durable");
                tx.send_modify(|f| f.failure = Some(error.to_string()));
                return;
            }
        }
        if stopping && lock(&shared.requests).issued == through {
            return;
        }
    }
}
