//! Group commit: writers stage their changes, and two threads per database make each
//! generation of staged changes durable, then visible, then acknowledged.
//!
//! - The log thread takes everything staged as one generation, appends it to the
//!   write-ahead log ([`crate::wal`]) and syncs it: from then on it survives a crash.
//! - The apply thread applies each logged generation to sled, in order ([`wal::apply`]),
//!   then wakes every writer of that generation, so an acknowledged write is visible to
//!   the next read. A reader outside a write sees each key's latest applied value; a read
//!   of several keys that must agree with each other runs under the writer lock
//!   (`Store::read_locked`), as it always had to: a sled scan was never a snapshot.
//!
//! The two run side by side: generation N is applied while N+1 is being synced. sled is
//! never flushed on this path; the apply thread flushes it only to retire a full log
//! segment (a checkpoint) and on shutdown. See `wal` for why sled's flush is avoided.
//!
//! Staged changes stay visible to later writers through the shared overlay until they are
//! applied, so a check-then-act rule sees every earlier write, applied or not.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use tokio::sync::watch;

use crate::StoreError;
use crate::wal::{self, Change, ClosedSegment, WalWriter};

/// A staged value: the generation that staged it last, and the value (`None` = deleted).
pub(crate) type Staged = (u64, Option<Vec<u8>>);

/// Everything staged but not yet applied, plus the writer's own counters. Lives behind
/// the database's writer lock.
pub(crate) struct WriterState {
    /// The sequence the next ledger entry gets.
    pub next_sequence: u64,
    /// The generation the changes staged now will be logged and applied as.
    pub generation: u64,
    /// The changes of `generation`, in the order they were staged.
    pub changes: Vec<Change>,
    /// The highest ledger sequence staged in `changes`.
    pub batch_last_sequence: Option<u64>,
    /// Staged changes of this and earlier, not yet applied, generations, by raw key.
    pub overlay: BTreeMap<Vec<u8>, Staged>,
    /// A commit was asked for even though nothing is staged.
    pub flush_requested: bool,
}

impl WriterState {
    pub(crate) fn new(next_sequence: u64, generation: u64) -> Self {
        Self {
            next_sequence,
            generation,
            changes: Vec::new(),
            batch_last_sequence: None,
            overlay: BTreeMap::new(),
            flush_requested: false,
        }
    }

    /// Stages one change into the current generation.
    pub(crate) fn stage(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.changes.push((key.clone(), value.clone()));
        self.overlay.insert(key, (self.generation, value));
    }

    /// True when the current generation holds changes.
    pub(crate) fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }
}

/// What the group commit has made durable and visible so far.
#[derive(Debug, Clone, Default)]
pub(crate) struct Committed {
    /// Every generation up to and including this one is logged and applied.
    pub through: u64,
    /// Set once logging or applying failed: later writes cannot become durable.
    pub failure: Option<String>,
}

/// One logged generation on its way to sled.
struct Logged {
    generation: u64,
    changes: Vec<Change>,
    last_sequence: Option<u64>,
    /// A log segment the log thread closed before this generation.
    closed: Option<ClosedSegment>,
}

/// The writer lock and the two threads of one database.
pub(crate) struct GroupCommit {
    shared: Arc<Shared>,
    committed: watch::Receiver<Committed>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

struct Shared {
    /// An async lock: a writer waiting for it yields its runtime thread to other tasks
    /// instead of putting the thread to sleep (with two cores, a sleeping runtime thread
    /// is half the server). The log and apply threads take it with `blocking_lock`.
    writer: tokio::sync::Mutex<WriterState>,
    /// Set when something was staged (or a commit requested) since the log thread last
    /// looked; the log thread sleeps on `wake` until it is.
    kicked: Mutex<bool>,
    wake: Condvar,
    /// No more writes: the threads drain and stop. Checked by writers under the writer
    /// lock, set before the log thread takes its last generation under that lock.
    stopping: AtomicBool,
    committed: watch::Sender<Committed>,
}

impl Shared {
    /// Records a failure: no later generation can become durable, so writes stop.
    fn fail(&self, what: &str, error: &StoreError) {
        tracing::error!(%error, "{what} failed: the database can no longer make writes durable");
        self.committed.send_modify(|c| {
            c.failure.get_or_insert_with(|| format!("{what}: {error}"));
        });
        self.stopping.store(true, Ordering::SeqCst);
        self.kick();
    }

    /// Wakes the log thread.
    fn kick(&self) {
        *lock(&self.kicked) = true;
        self.wake.notify_one();
    }
}

/// Where the threads of one database write.
pub(crate) struct Target {
    pub db: sled::Db,
    pub data: sled::Tree,
    pub wal_dir: PathBuf,
    /// See `StoreOptions::wal_segment_bytes`.
    pub segment_bytes: u64,
    /// The last generation applied before this start (after recovery).
    pub applied: u64,
}

impl GroupCommit {
    /// Starts the log and apply threads of `target`.
    pub(crate) fn start(
        target: Target,
        next_sequence: u64,
        name: &str,
        committed: watch::Sender<Committed>,
        sequence: watch::Sender<u64>,
    ) -> std::io::Result<Self> {
        let receiver = committed.subscribe();
        let shared = Arc::new(Shared {
            writer: tokio::sync::Mutex::new(WriterState::new(next_sequence, target.applied + 1)),
            kicked: Mutex::new(false),
            wake: Condvar::new(),
            stopping: AtomicBool::new(false),
            committed,
        });
        let (logged_tx, logged_rx) = mpsc::channel();
        let writer = WalWriter::new(&target.wal_dir, target.segment_bytes);
        let log_shared = shared.clone();
        let log = std::thread::Builder::new()
            .name(format!("wal-{name}"))
            .spawn(move || log_thread(writer, log_shared, logged_tx))?;
        let apply_shared = shared.clone();
        let apply = std::thread::Builder::new()
            .name(format!("apply-{name}"))
            .spawn(move || apply_thread(target, apply_shared, logged_rx, sequence))?;
        Ok(Self {
            shared,
            committed: receiver,
            threads: Mutex::new(vec![log, apply]),
        })
    }

    /// The writer lock. Held only while a write stages its changes, never across I/O.
    pub(crate) async fn lock(&self) -> tokio::sync::MutexGuard<'_, WriterState> {
        self.shared.writer.lock().await
    }

    /// True once the store is closing (or failed): no write may stage any more. Checked
    /// under the writer lock.
    pub(crate) fn is_stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::SeqCst)
    }

    /// Wakes the log thread: something was staged (or a commit was requested).
    pub(crate) fn notify(&self) {
        self.shared.kick();
    }

    /// The generation that covers everything staged so far; asks for a commit even when
    /// nothing is staged, so the caller can wait for earlier generations too.
    pub(crate) async fn request_flush(&self) -> Result<u64, StoreError> {
        let mut writer = self.lock().await;
        if self.is_stopping() {
            return Err(StoreError::Closed);
        }
        writer.flush_requested = true;
        let generation = writer.generation;
        drop(writer);
        self.notify();
        Ok(generation)
    }

    /// Waits until `generation` is logged, synced and applied.
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

    /// Commits what is staged, flushes sled, retires the log, stops the threads, and
    /// refuses later writes.
    pub(crate) fn stop(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.kick();
        let threads = std::mem::take(&mut *lock(&self.threads));
        for thread in threads {
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

/// Takes each generation staged, logs and syncs it, and hands it to the apply thread.
fn log_thread(mut writer: WalWriter, shared: Arc<Shared>, logged: mpsc::Sender<Logged>) {
    loop {
        {
            let mut kicked = lock(&shared.kicked);
            while !*kicked {
                kicked = shared
                    .wake
                    .wait(kicked)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            *kicked = false;
        }
        // Read before taking the lock: a writer that stages after this take saw it set.
        let stopping = shared.stopping.load(Ordering::SeqCst);
        let (generation, changes, last_sequence) = {
            let mut state = shared.writer.blocking_lock();
            if !state.has_changes() && !state.flush_requested && !stopping {
                continue;
            }
            let generation = state.generation;
            state.generation += 1;
            state.flush_requested = false;
            (
                generation,
                std::mem::take(&mut state.changes),
                state.batch_last_sequence.take(),
            )
        };
        let mut closed = None;
        if !changes.is_empty() {
            match writer.append(generation, &changes) {
                Ok(segment) => closed = segment,
                Err(error) => {
                    shared.fail("writing the write-ahead log", &error);
                    return;
                }
            }
        }
        let next = Logged {
            generation,
            changes,
            last_sequence,
            closed,
        };
        if logged.send(next).is_err() {
            // The apply thread stopped after a failure it reported.
            return;
        }
        if stopping {
            // Shutdown: the open segment is retired too, once its generations are applied
            // and sled has flushed them.
            if let Some(current) = writer.close_current() {
                let _ = logged.send(Logged {
                    generation,
                    changes: Vec::new(),
                    last_sequence: None,
                    closed: Some(current),
                });
            }
            return;
        }
    }
}

/// Applies each logged generation to sled, in order, and acknowledges it; retires log
/// segments once sled has flushed what they hold.
fn apply_thread(
    target: Target,
    shared: Arc<Shared>,
    logged: mpsc::Receiver<Logged>,
    sequence_tx: watch::Sender<u64>,
) {
    let Target {
        db,
        data,
        wal_dir,
        mut applied,
        ..
    } = target;
    let mut retiring: VecDeque<ClosedSegment> = VecDeque::new();
    for next in logged {
        let Logged {
            generation,
            changes,
            last_sequence,
            closed,
        } = next;
        if !changes.is_empty() {
            if let Err(error) = wal::apply(&data, generation, changes) {
                shared.fail("applying a logged generation", &error);
                return;
            }
            applied = generation;
        }
        // The staged values are in the tree now: stop serving them from the overlay
        // (unless a later generation staged the same key again).
        shared
            .writer
            .blocking_lock()
            .overlay
            .retain(|_, (staged_by, _)| *staged_by != generation);
        // The ledger mark first: a writer woken by `through` must find its own entries in
        // the change feed.
        if let Some(sequence) = last_sequence {
            sequence_tx.send_if_modified(|durable| {
                let moved = sequence > *durable;
                *durable = (*durable).max(sequence);
                moved
            });
        }
        shared.committed.send_modify(|c| c.through = generation);
        retiring.extend(closed);
        if retiring
            .front()
            .is_some_and(|segment| segment.last_generation <= applied)
            && let Err(error) = checkpoint(&db, &wal_dir, &mut retiring, applied)
        {
            shared.fail("checkpointing the write-ahead log", &error);
            return;
        }
    }
}

/// Flushes sled, then deletes the closed segments whose generations it now holds.
fn checkpoint(
    db: &sled::Db,
    wal_dir: &std::path::Path,
    retiring: &mut VecDeque<ClosedSegment>,
    applied: u64,
) -> Result<(), StoreError> {
    db.flush()?;
    while let Some(segment) = retiring.front() {
        if segment.last_generation > applied {
            break;
        }
        std::fs::remove_file(&segment.path)?;
        retiring.pop_front();
    }
    wal::sync_dir(wal_dir)
}
