//! Group commit: writers stage their changes, one committer thread per database applies
//! everything staged as ONE atomic sled batch, flushes once, and wakes every writer whose
//! changes that flush covered.
//!
//! Why writers do not apply their own batches: sled 0.34's `flush()` holds its global
//! concurrency-control lock in read mode for the whole fsync, and `apply_batch` needs it in
//! write mode, so a batch applied by a writer waits for any flush in progress: writes and
//! flushes would alternate one by one. Here writers only stage (under the database's
//! writer lock, never across I/O), and the committer alternates "apply everything staged"
//! and "flush": each flush covers every writer that staged while the previous one ran.
//!
//! Staged changes stay visible to later writers through the shared overlay until they are
//! applied, so a check-then-act rule sees every earlier write, applied or not. Readers
//! outside a write see only applied state, which is never less than what was acknowledged.
//!
//! The committer uses sled's blocking `flush()` from its own thread: `flush_async` was
//! seen to hang on this machine with several concurrent callers.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use tokio::sync::watch;

use crate::StoreError;

/// A staged value: the generation that staged it last, and the value (`None` = deleted).
pub(crate) type Staged = (u64, Option<Vec<u8>>);

/// Everything staged but not yet applied, plus the writer's own counters. Lives behind
/// the database's writer lock.
pub(crate) struct WriterState {
    /// The sequence the next ledger entry gets.
    pub next_sequence: u64,
    /// The generation the changes staged now will be applied and flushed as.
    pub generation: u64,
    /// The combined batch of `generation`.
    pub batch: sled::Batch,
    /// True when `batch` holds something (sled's Batch cannot tell).
    pub batch_dirty: bool,
    /// The highest ledger sequence staged in `batch`.
    pub batch_last_sequence: Option<u64>,
    /// Staged changes of this and earlier, not yet applied, generations, by raw key.
    pub overlay: BTreeMap<Vec<u8>, Staged>,
    /// A flush was asked for even though nothing is staged.
    pub flush_requested: bool,
    /// No more writes: the committer drains and stops.
    pub stopping: bool,
}

impl WriterState {
    pub(crate) fn new(next_sequence: u64) -> Self {
        Self {
            next_sequence,
            generation: 1,
            batch: sled::Batch::default(),
            batch_dirty: false,
            batch_last_sequence: None,
            overlay: BTreeMap::new(),
            flush_requested: false,
            stopping: false,
        }
    }

    /// Stages one change into the current generation.
    pub(crate) fn stage(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        match &value {
            Some(value) => self.batch.insert(key.clone(), value.clone()),
            None => self.batch.remove(key.clone()),
        }
        self.batch_dirty = true;
        self.overlay.insert(key, (self.generation, value));
    }
}

/// What the committer has made durable so far.
#[derive(Debug, Clone, Default)]
pub(crate) struct Committed {
    /// Every generation up to and including this one is applied and flushed.
    pub through: u64,
    /// Set once applying or flushing failed: later writes cannot become durable.
    pub failure: Option<String>,
}

/// The writer lock and the committer thread of one database.
pub(crate) struct GroupCommit {
    shared: Arc<Shared>,
    committed: watch::Receiver<Committed>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    writer: Mutex<WriterState>,
    wake: Condvar,
}

impl GroupCommit {
    /// Starts the committer of `data` (a tree of `db`).
    pub(crate) fn start(
        db: sled::Db,
        data: sled::Tree,
        next_sequence: u64,
        name: &str,
        committed: watch::Sender<Committed>,
        sequence: watch::Sender<u64>,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            writer: Mutex::new(WriterState::new(next_sequence)),
            wake: Condvar::new(),
        });
        let receiver = committed.subscribe();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("commit-{name}"))
            .spawn(move || committer(db, data, thread_shared, committed, sequence))?;
        Ok(Self {
            shared,
            committed: receiver,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The writer lock. Held only while a write stages its changes, never across I/O.
    pub(crate) fn lock(&self) -> MutexGuard<'_, WriterState> {
        lock(&self.shared.writer)
    }

    /// Wakes the committer: something was staged (or a flush was requested).
    pub(crate) fn notify(&self) {
        self.shared.wake.notify_one();
    }

    /// The generation that covers everything staged so far; asks for a flush even when
    /// nothing is staged, so the caller can wait for earlier generations too.
    pub(crate) fn request_flush(&self) -> Result<u64, StoreError> {
        let mut writer = self.lock();
        if writer.stopping {
            return Err(StoreError::Closed);
        }
        writer.flush_requested = true;
        let generation = writer.generation;
        drop(writer);
        self.notify();
        Ok(generation)
    }

    /// Waits until `generation` is applied and on disk.
    pub(crate) async fn wait(&self, generation: u64) -> Result<(), StoreError> {
        let mut rx = self.committed.clone();
        let state = rx
            .wait_for(|c| c.through >= generation || c.failure.is_some())
            .await
            .map_err(|_| StoreError::Closed)?;
        match &state.failure {
            Some(message) if state.through < generation => Err(StoreError::Flush(message.clone())),
            _ => Ok(()),
        }
    }

    /// Commits what is staged, stops the thread, and refuses later writes.
    pub(crate) fn stop(&self) {
        self.lock().stopping = true;
        self.notify();
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

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Staging happens only after a write's closure succeeded, in code that does not panic
    // halfway, so the state behind a poisoned lock is consistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn committer(
    db: sled::Db,
    data: sled::Tree,
    shared: Arc<Shared>,
    tx: watch::Sender<Committed>,
    sequence_tx: watch::Sender<u64>,
) {
    loop {
        let (generation, batch, dirty, last_sequence, stopping) = {
            let mut writer = lock(&shared.writer);
            while !writer.batch_dirty && !writer.flush_requested && !writer.stopping {
                writer = shared
                    .wake
                    .wait(writer)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            let generation = writer.generation;
            writer.generation += 1;
            writer.flush_requested = false;
            let batch = std::mem::take(&mut writer.batch);
            let dirty = std::mem::replace(&mut writer.batch_dirty, false);
            (
                generation,
                batch,
                dirty,
                writer.batch_last_sequence.take(),
                writer.stopping,
            )
        };
        let outcome = (|| {
            if dirty {
                data.apply_batch(batch)?;
            }
            // The staged values are in the tree now: stop serving them from the overlay
            // (unless a later generation staged the same key again).
            lock(&shared.writer)
                .overlay
                .retain(|_, (staged_by, _)| *staged_by != generation);
            db.flush()
        })();
        match outcome {
            Ok(_) => {
                // The ledger mark first: a writer woken by `through` must find its own
                // entries in the change feed.
                if let Some(sequence) = last_sequence {
                    sequence_tx.send_if_modified(|durable| {
                        let moved = sequence > *durable;
                        *durable = (*durable).max(sequence);
                        moved
                    });
                }
                tx.send_modify(|c| c.through = generation);
            }
            Err(error) => {
                tracing::error!(%error, "commit failed: the database can no longer make writes durable");
                tx.send_modify(|c| c.failure = Some(error.to_string()));
                lock(&shared.writer).stopping = true;
                return;
            }
        }
        if stopping {
            let writer = lock(&shared.writer);
            if !writer.batch_dirty {
                return;
            }
        }
    }
}
