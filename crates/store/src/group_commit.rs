//! Group commit: writers stage their changes, and two threads per database make each
//! generation of staged changes durable, then visible, then acknowledged.
//!
//! - The log thread takes everything staged as one generation, appends it to the
//!   write-ahead log ([`crate::wal`]) and syncs it: from then on it survives a crash.
//! - The apply thread applies each logged generation to sled, in order ([`wal::apply`]),
//!   then wakes the writers of that generation (and only those), so an acknowledged
//!   write is visible to the next read. A reader outside a write sees each key's latest
//!   applied value; a read of several keys that must agree with each other uses
//!   `Store::read_locked`, which holds the writer lock and first waits for everything
//!   staged to be applied (a sled scan alone was never a snapshot).
//!
//! The two run side by side: generation N is applied while N+1 is being synced. sled is
//! never flushed on this path; the apply thread flushes it only to retire a full log
//! segment (a checkpoint) and on shutdown. See `wal` for why sled's flush is avoided.
//!
//! Staged changes stay visible to later writers through the shared overlay until they are
//! applied, so a check-then-act rule sees every earlier write, applied or not.
//!
//! Longer than 600 lines because the writer lock, the two threads and the state they share
//! (the pending generation, the applied mark, the snapshots' log pins) are one mechanism.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, mpsc};
use std::thread::JoinHandle;

use tokio::sync::{Notify, watch};

use crate::StoreError;
use crate::fs::FileSystem;
use crate::observe::StoreMetrics;
use crate::records::{LedgerBlock, RecordedRequests};
use crate::request_filter::RequestFilter;
use crate::row_cache::RowCache;
use crate::wal::{self, Change, ClosedSegment, WalWriter};

/// A staged value: the generation that staged it last, and the value (`None` = deleted).
pub(crate) type Staged = (u64, Option<Vec<u8>>);

/// What a write sees and changes under the writer lock.
pub(crate) struct WriterState {
    /// The sequence the next ledger entry gets.
    pub next_sequence: u64,
    /// Staged changes of generations not yet applied, by raw key.
    pub overlay: BTreeMap<Vec<u8>, Staged>,
    /// The latest value of rows writes read (see `row_cache`).
    pub rows: RowCache,
    /// The request ids a write may find a record of (see `request_filter`).
    pub requests: RequestFilter,
    /// Entries of generations up to this one have been dropped from `overlay`.
    pruned_through: u64,
}

/// The end of one generation: logged, synced and applied, or failed. Each writer waits
/// on its own generation's, so finishing a generation wakes only its writers.
pub(crate) struct Commit {
    done: Arc<Done>,
}

#[derive(Default)]
struct Done {
    outcome: OnceLock<Result<(), String>>,
    notify: Notify,
}

impl Done {
    fn finish(&self, outcome: Result<(), String>) {
        let _ = self.outcome.set(outcome);
        self.notify.notify_waiters();
    }
}

impl Commit {
    /// Waits until the generation is durable and applied.
    pub(crate) async fn wait(self) -> Result<(), StoreError> {
        loop {
            let notified = self.done.notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so a finish between the two is not missed.
            notified.as_mut().enable();
            if let Some(outcome) = self.done.outcome.get() {
                return outcome.clone().map_err(StoreError::Flush);
            }
            notified.await;
        }
    }
}

/// What one write adds to a generation.
#[derive(Default)]
pub(crate) struct WriteSet {
    /// Puts and deletes, by raw key.
    pub changes: Vec<Change>,
    /// Ledger entries with their sequences, continuing the ledger.
    pub ledger: Vec<(u64, Vec<u8>)>,
    /// The request id it records, and when.
    pub request: Option<(String, i64)>,
}

/// The generation being gathered for the log thread. Behind its own short lock, so the
/// log thread never queues behind writers for the writer lock.
struct Pending {
    /// The generation the changes gathered now will be logged and applied as.
    generation: u64,
    /// Its changes, in the order they were staged.
    changes: Vec<Change>,
    /// Its ledger entries, as one block (see `records`).
    ledger: Option<LedgerBlock>,
    /// The request ids it records, as one expiry entry (see `records`).
    requests: RecordedRequests,
    /// Someone waits for this generation even though it may hold no change.
    flush_requested: bool,
    /// Writes staged into it (for the writers-per-commit histogram).
    writers: u64,
    /// The log thread sleeps on `wake` and nobody has woken it yet. Writers wake it only
    /// then: a `notify_one` is a system call even when nothing sleeps, and under load the
    /// log thread is nearly always busy with the previous generation.
    log_sleeping: bool,
    /// Finished when this generation is.
    done: Arc<Done>,
}

/// One logged generation on its way to sled.
struct Logged {
    generation: u64,
    changes: Vec<Change>,
    last_sequence: Option<u64>,
    done: Arc<Done>,
    /// A log segment the log thread closed before this generation.
    closed: Option<ClosedSegment>,
}

/// The writer lock and the two threads of one database.
pub(crate) struct GroupCommit {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

struct Shared {
    /// An async lock: a writer waiting for it yields its runtime thread to other tasks
    /// instead of putting the thread to sleep (with two cores, a sleeping runtime thread
    /// is half the server). The log and apply threads never take it.
    writer: tokio::sync::Mutex<WriterState>,
    pending: Mutex<Pending>,
    /// Signalled when `pending` has work or the store stops.
    wake: Condvar,
    /// No more writes: the threads drain and stop. Read by the log thread and by writers
    /// under the `pending` lock, so no write stages after the log thread's last take.
    stopping: AtomicBool,
    /// The last generation applied to sled; writers drop older entries from the overlay.
    applied_through: AtomicU64,
    /// Why writes can no longer become durable, once logging or applying failed.
    failure: OnceLock<String>,
    /// Woken when `failure` is set.
    failed: Notify,
    /// The first generation each running snapshot still needs from the log, less one (see
    /// [`GroupCommit::pin`]). Checked only when a checkpoint is due, and held while one
    /// deletes segments, so a pin and a deletion never cross.
    pins: Mutex<Vec<u64>>,
}

impl Shared {
    /// Records a failure and stops: the generation being gathered fails with it (nothing
    /// will log it), and so does every later write.
    fn fail(&self, what: &str, error: &StoreError) -> String {
        tracing::error!(%error, "{what} failed: the database can no longer make writes durable");
        let message = self
            .failure
            .get_or_init(|| format!("{what}: {error}"))
            .clone();
        self.failed.notify_waiters();
        let pending = lock(&self.pending);
        self.stopping.store(true, Ordering::SeqCst);
        pending.done.finish(Err(message.clone()));
        drop(pending);
        self.wake.notify_all();
        message
    }

    fn stop(&self) {
        {
            let _pending = lock(&self.pending);
            self.stopping.store(true, Ordering::SeqCst);
        }
        self.wake.notify_all();
    }
}

/// Where the threads of one database write.
pub(crate) struct Target {
    pub db: sled::Db,
    pub data: sled::Tree,
    pub wal_dir: PathBuf,
    /// See `StoreOptions::file_system`.
    pub file_system: Arc<dyn FileSystem>,
    /// See `StoreOptions::wal_segment_bytes`.
    pub segment_bytes: u64,
    /// See `StoreOptions::wal_archive_dir`.
    pub archive_dir: Option<PathBuf>,
    /// The last generation applied before this start (after recovery).
    pub applied: u64,
    /// See `StoreOptions::row_cache_bytes`.
    pub row_cache_bytes: usize,
    /// Where the log thread records its syncs.
    pub metrics: StoreMetrics,
}

impl GroupCommit {
    /// Starts the log and apply threads of `target`. `requests` holds the request ids
    /// recorded before this start.
    pub(crate) fn start(
        target: Target,
        next_sequence: u64,
        requests: RequestFilter,
        name: &str,
        sequence: watch::Sender<u64>,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            writer: tokio::sync::Mutex::new(WriterState {
                next_sequence,
                overlay: BTreeMap::new(),
                rows: RowCache::new(target.row_cache_bytes),
                requests,
                pruned_through: target.applied,
            }),
            pending: Mutex::new(Pending {
                generation: target.applied + 1,
                changes: Vec::new(),
                ledger: None,
                requests: RecordedRequests::default(),
                flush_requested: false,
                writers: 0,
                log_sleeping: false,
                done: Arc::default(),
            }),
            wake: Condvar::new(),
            stopping: AtomicBool::new(false),
            applied_through: AtomicU64::new(target.applied),
            failure: OnceLock::new(),
            failed: Notify::new(),
            pins: Mutex::new(Vec::new()),
        });
        let (logged_tx, logged_rx) = mpsc::channel();
        let writer = WalWriter::new(&target.wal_dir, target.segment_bytes);
        let log_shared = shared.clone();
        let metrics = target.metrics.clone();
        let log = std::thread::Builder::new()
            .name(format!("wal-{name}"))
            .spawn(move || log_thread(writer, log_shared, logged_tx, metrics))?;
        let apply_shared = shared.clone();
        let apply = std::thread::Builder::new()
            .name(format!("apply-{name}"))
            .spawn(move || apply_thread(target, apply_shared, logged_rx, sequence))?;
        Ok(Self {
            shared,
            threads: Mutex::new(vec![log, apply]),
        })
    }

    /// The writer lock. Held only while a write reads and stages, never across I/O. The
    /// overlay it guards holds only generations not yet applied.
    pub(crate) async fn lock(&self) -> tokio::sync::MutexGuard<'_, WriterState> {
        let mut writer = self.shared.writer.lock().await;
        let applied = self.shared.applied_through.load(Ordering::Acquire);
        if applied > writer.pruned_through {
            // Those values are in sled now (unless a later generation staged the key again).
            writer
                .overlay
                .retain(|_, (staged_by, _)| *staged_by > applied);
            writer.pruned_through = applied;
        }
        writer
    }

    /// Adds one write to the generation being gathered: its changes (also to the overlay,
    /// so later writers see them), its ledger entries and its request id. The returned
    /// commit ends when they are durable; a write with no changes gets one too. `writer` is
    /// the caller's writer lock, which hands out ledger sequences in staging order.
    pub(crate) fn stage(
        &self,
        writer: &mut WriterState,
        write: WriteSet,
    ) -> Result<Commit, StoreError> {
        let WriteSet {
            changes,
            ledger,
            request,
        } = write;
        let mut pending = self.pending()?;
        let generation = pending.generation;
        // Checked before anything is staged: a refused write must stage nothing.
        if let (Some((first, _)), Some(block)) = (ledger.first(), &pending.ledger)
            && *first != block.next_sequence()
        {
            return Err(StoreError::Encode(format!(
                "ledger entry {first} staged after {}: sequences must be contiguous",
                block.next_sequence()
            )));
        }
        if changes.is_empty() && ledger.is_empty() && request.is_none() {
            pending.flush_requested = true;
        } else {
            pending.writers += 1;
        }
        for (key, value) in changes {
            writer.rows.update(&key, &value);
            writer
                .overlay
                .insert(key.clone(), (generation, value.clone()));
            pending.changes.push((key, value));
        }
        for (sequence, entry) in ledger {
            pending
                .ledger
                .get_or_insert_with(|| LedgerBlock::new(sequence))
                .push(&entry)?;
        }
        if let Some((request_id, recorded_at_ms)) = request {
            // Under the writer lock, so the next write looking for this id finds it.
            writer.requests.insert(&request_id, recorded_at_ms);
            pending.requests.push(request_id, recorded_at_ms);
        }
        Ok(self.release(pending))
    }

    /// A commit that ends once everything staged so far is durable.
    pub(crate) fn request_flush(&self) -> Result<Commit, StoreError> {
        let mut pending = self.pending()?;
        pending.flush_requested = true;
        Ok(self.release(pending))
    }

    /// Releases the generation being gathered after adding to it, waking the log thread
    /// if it sleeps; the commit ends with that generation.
    fn release(&self, mut pending: MutexGuard<'_, Pending>) -> Commit {
        let done = pending.done.clone();
        // Taken under the lock that guards what the log thread waits for, so a wake is
        // neither lost nor sent twice.
        let wake = std::mem::take(&mut pending.log_sleeping);
        drop(pending);
        if wake {
            self.shared.wake.notify_one();
        }
        Commit { done }
    }

    /// The generation being gathered, unless the store is closing.
    fn pending(&self) -> Result<MutexGuard<'_, Pending>, StoreError> {
        let pending = lock(&self.shared.pending);
        self.check_open()?;
        Ok(pending)
    }

    /// Why writes can no longer become durable, once logging or applying failed.
    pub(crate) fn failure(&self) -> Option<String> {
        self.shared.failure.get().cloned()
    }

    /// Resolves, with the reason, once logging or applying has failed.
    pub(crate) async fn failed(&self) -> String {
        loop {
            let notified = self.shared.failed.notified();
            tokio::pin!(notified);
            // Registered before the check, so a failure between the two is not missed.
            notified.as_mut().enable();
            if let Some(failure) = self.failure() {
                return failure;
            }
            notified.await;
        }
    }

    /// Refuses once the store is closing: with the failure that stopped it, if any.
    pub(crate) fn check_open(&self) -> Result<(), StoreError> {
        if !self.shared.stopping.load(Ordering::SeqCst) {
            return Ok(());
        }
        Err(match self.failure() {
            Some(message) => StoreError::Flush(message),
            None => StoreError::Closed,
        })
    }

    /// Keeps every log segment holding a generation after the last one applied now until
    /// the pin is dropped, and returns that generation: a snapshot copies sled from there
    /// and reads the log's later generations (see `crate::snapshot`).
    pub(crate) fn pin(&self) -> LogPin {
        let mut pins = lock(&self.shared.pins);
        // Under the lock a checkpoint deletes under: every segment it deleted held only
        // generations up to what `applied_through` says now.
        let generation = self.shared.applied_through.load(Ordering::Acquire);
        pins.push(generation);
        LogPin {
            shared: self.shared.clone(),
            generation,
        }
    }

    /// The last generation applied to sled. Every generation up to it is; none after it
    /// has touched sled if nothing is staged (the writer lock held, after a flush).
    pub(crate) fn applied_through(&self) -> u64 {
        self.shared.applied_through.load(Ordering::Acquire)
    }

    /// Commits what is staged, flushes sled, retires the log, stops the threads, and
    /// refuses later writes.
    pub(crate) fn stop(&self) {
        self.shared.stop();
        let threads = std::mem::take(&mut *lock(&self.threads));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// Log segments a snapshot still reads: none holding a generation after `generation` is
/// deleted while it lives.
pub(crate) struct LogPin {
    shared: Arc<Shared>,
    generation: u64,
}

impl LogPin {
    /// The last generation applied when the pin was taken.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }
}

impl Drop for LogPin {
    fn drop(&mut self) {
        let mut pins = lock(&self.shared.pins);
        if let Some(at) = pins.iter().position(|&pin| pin == self.generation) {
            pins.swap_remove(at);
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks halfway through a change, so the state
    // behind a poisoned lock is consistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Takes each generation staged, logs and syncs it, and hands it to the apply thread.
fn log_thread(
    mut writer: WalWriter,
    shared: Arc<Shared>,
    logged: mpsc::Sender<Logged>,
    metrics: StoreMetrics,
) {
    loop {
        let (generation, mut changes, ledger, requests, done, stopping, writers) = {
            let mut pending = lock(&shared.pending);
            while !shared.stopping.load(Ordering::SeqCst)
                && !pending.flush_requested
                && pending.changes.is_empty()
                && pending.ledger.is_none()
            {
                pending.log_sleeping = true;
                pending = shared
                    .wake
                    .wait(pending)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            pending.log_sleeping = false;
            // Read under the lock: a write that stages after this take sees it set.
            let stopping = shared.stopping.load(Ordering::SeqCst);
            let generation = pending.generation;
            pending.generation += 1;
            pending.flush_requested = false;
            (
                generation,
                std::mem::take(&mut pending.changes),
                pending.ledger.take(),
                std::mem::take(&mut pending.requests),
                std::mem::take(&mut pending.done),
                stopping,
                std::mem::take(&mut pending.writers),
            )
        };
        if writers > 0 {
            metrics.writers.record(writers as f64);
        }
        coalesce(&mut changes);
        let last_sequence = ledger.as_ref().and_then(LedgerBlock::last_sequence);
        changes.extend(ledger.and_then(LedgerBlock::into_change));
        match requests.into_change() {
            Ok(change) => changes.extend(change),
            Err(error) => {
                let message = shared.fail("recording request ids", &error);
                done.finish(Err(message));
                return;
            }
        }
        let mut closed = None;
        if !changes.is_empty() {
            let started = std::time::Instant::now();
            match writer.append(generation, &changes) {
                Ok(segment) => {
                    metrics.wal_sync.record(started.elapsed().as_secs_f64());
                    metrics.wal_appended.increment(writer.last_record_bytes());
                    closed = segment;
                }
                Err(error) => {
                    let message = shared.fail("writing the write-ahead log", &error);
                    done.finish(Err(message));
                    return;
                }
            }
        }
        let next = Logged {
            generation,
            changes,
            last_sequence,
            done,
            closed,
        };
        if let Err(mpsc::SendError(unsent)) = logged.send(next) {
            // The apply thread stopped after a failure it recorded.
            let message = shared.failure.get().cloned().unwrap_or_default();
            unsent.done.finish(Err(message));
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
                    done: Arc::default(),
                    closed: Some(current),
                });
            }
            return;
        }
    }
}

/// Keeps each key's last change of a generation, in key order.
///
/// A generation is applied (and replayed) as a whole, so only the last value of a key counts:
/// a row several writes of a generation change (a zone-day's capacity, a busy stock
/// position) is logged and applied once. Key order lets sled find each key near the last.
fn coalesce(changes: &mut Vec<Change>) {
    // Stable: changes to one key stay in staging order, the last one last.
    changes.sort_by(|(a, _), (b, _)| a.cmp(b));
    let mut kept: Vec<Change> = Vec::with_capacity(changes.len());
    for change in changes.drain(..) {
        match kept.last_mut() {
            Some(last) if last.0 == change.0 => *last = change,
            _ => kept.push(change),
        }
    }
    *changes = kept;
}

/// Applies each logged generation to sled, in order, and finishes it; retires log
/// segments once sled has flushed what they hold. After a failure it fails every
/// generation still coming.
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
        file_system,
        archive_dir,
        mut applied,
        ..
    } = target;
    let mut retiring: VecDeque<ClosedSegment> = VecDeque::new();
    let mut failed: Option<String> = None;
    for next in logged {
        let Logged {
            generation,
            changes,
            last_sequence,
            done,
            closed,
        } = next;
        if let Some(message) = &failed {
            done.finish(Err(message.clone()));
            continue;
        }
        if !changes.is_empty() {
            if let Err(error) = wal::apply(&data, generation, changes) {
                let message = shared.fail("applying a logged generation", &error);
                done.finish(Err(message.clone()));
                failed = Some(message);
                continue;
            }
            applied = generation;
        }
        // The values are in the tree now: writers may drop them from the overlay.
        shared
            .applied_through
            .fetch_max(generation, Ordering::Release);
        // The ledger mark first: a writer woken next must find its own entries in the
        // change feed.
        if let Some(sequence) = last_sequence {
            sequence_tx.send_if_modified(|durable| {
                let moved = sequence > *durable;
                *durable = (*durable).max(sequence);
                moved
            });
        }
        done.finish(Ok(()));
        retiring.extend(closed);
        if retiring
            .front()
            .is_some_and(|segment| segment.last_generation <= applied)
        {
            // A running snapshot reads the generations after its pin from the log.
            let pins = lock(&shared.pins);
            let retire_through = pins
                .iter()
                .copied()
                .min()
                .map_or(applied, |pin| pin.min(applied));
            if retiring
                .front()
                .is_some_and(|segment| segment.last_generation <= retire_through)
                && let Err(error) = checkpoint(
                    &db,
                    file_system.as_ref(),
                    &wal_dir,
                    archive_dir.as_deref(),
                    &mut retiring,
                    retire_through,
                )
            {
                drop(pins);
                failed = Some(shared.fail("checkpointing the write-ahead log", &error));
            }
        }
    }
}

/// Makes sled's state durable, then deletes the closed segments whose generations it now
/// holds. sled's flush alone is not a barrier (see `crate::fs`): every file and directory
/// of the database is fsynced before the first segment goes.
fn checkpoint(
    db: &sled::Db,
    fs: &dyn FileSystem,
    wal_dir: &Path,
    archive_dir: Option<&Path>,
    retiring: &mut VecDeque<ClosedSegment>,
    applied: u64,
) -> Result<(), StoreError> {
    db.flush()?;
    let db_dir = wal_dir.parent().unwrap_or(wal_dir);
    crate::fs::sync_database(fs, db_dir, wal_dir)?;
    while let Some(segment) = retiring.front() {
        if segment.last_generation > applied {
            break;
        }
        if let Some(archive) = archive_dir {
            crate::archive::archive_segment(&segment.path, archive)?;
        }
        fs.remove_file(&segment.path)?;
        retiring.pop_front();
    }
    fs.sync_dir(wal_dir).map_err(StoreError::Io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalescing_keeps_each_keys_last_change_in_key_order() {
        let put =
            |key: &str, value: &str| (key.as_bytes().to_vec(), Some(value.as_bytes().to_vec()));
        let mut changes = vec![
            put("b", "1"),
            put("a", "1"),
            put("b", "2"),
            (b"c".to_vec(), None),
            (b"a".to_vec(), None),
            put("c", "3"),
        ];
        coalesce(&mut changes);
        assert_eq!(
            changes,
            vec![(b"a".to_vec(), None), put("b", "2"), put("c", "3")]
        );
    }
}
