//! Group commit: writers stage their changes, and two threads per database make each
//! generation of staged changes durable, then acknowledged, then applied to sled.
//!
//! - The log thread takes everything staged as one generation, appends it to the
//!   write-ahead log ([`crate::wal`]) and syncs it: from then on it survives a crash. It
//!   then marks the generation durable, which makes it visible to readers through the
//!   [`Overlay`], and wakes that generation's writers (and only those). The write-ahead log
//!   is the durability: an acknowledged write never waits for sled.
//! - The apply thread materializes logged generations in sled off the request path, several
//!   at a time: a key written by many generations between two applies is written once
//!   ([`coalesce`]). Only after sled has the values are they pruned from the overlay.
//!
//! Reads see sled plus the overlay (see `crate::overlay`): a writer under the writer lock
//! sees every staged change, any other reader every durable one. A read of several keys
//! that must agree with each other uses `Store::read_locked`, which holds the writer lock
//! and first waits for everything staged to be durable.
//!
//! The overlay has a byte budget: while it holds more than that, new writes wait for the
//! apply thread to catch up ([`GroupCommit::admit`]). A full budget slows writers; nothing
//! is ever dropped. sled is never flushed on the request path; the apply thread flushes it
//! only to retire a full log segment (a checkpoint) and on shutdown. See `wal` for why.
//!
//! Longer than 600 lines because the writer lock, the two threads and the state they share
//! (the pending generation, the overlay, the durable and applied marks, the snapshots' log
//! pins) are one mechanism.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, RwLock, mpsc};
use std::thread::JoinHandle;

use tokio::sync::{Notify, watch};

use crate::StoreError;
use crate::fs::FileSystem;
use crate::observe::StoreMetrics;
use crate::overlay::Overlay;
use crate::records::{LedgerBlock, RecordedRequests};
use crate::request_filter::RequestFilter;
use crate::row_cache::RowCache;
use crate::wal::{self, Change, ClosedSegment, WalWriter, coalesce};

/// The most logged generations the apply thread writes to sled in one go: enough to
/// coalesce a busy key's many writes, few enough that the overlay is pruned often.
const APPLY_BATCH_GENERATIONS: usize = 256;

/// What a write sees and changes under the writer lock.
pub(crate) struct WriterState {
    /// The sequence the next ledger entry gets.
    pub next_sequence: u64,
    /// The latest value of rows writes read (see `row_cache`).
    pub rows: RowCache,
    /// The request ids a write may find a record of (see `request_filter`).
    pub requests: RequestFilter,
}

/// The end of one generation: logged and synced, or failed. Each writer waits on its own
/// generation's, so finishing a generation wakes only its writers.
pub(crate) struct Commit {
    done: Arc<Done>,
    generation: u64,
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
    /// The generation this commit ends with.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Waits until the generation is durable (and visible to every reader).
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

/// One logged (durable, acknowledged) generation on its way to sled.
struct Logged {
    generation: u64,
    /// Its changes, coalesced: each key once, in key order.
    changes: Vec<Change>,
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
    /// Changes not yet in sled, staged or durable (see `crate::overlay`). Writers add under
    /// the writer lock, the log thread adds what it makes (ledger blocks, the request
    /// expiry index), the apply thread prunes. Held only for map operations, never across
    /// I/O or a caller's code.
    overlay: RwLock<Overlay>,
    /// The bytes `overlay` may hold before new writes wait for the apply thread.
    overlay_budget: usize,
    /// The last generation logged and synced: readers see the overlay's versions up to it.
    durable_through: AtomicU64,
    /// The last generation applied to sled.
    applied_through: AtomicU64,
    /// Moves with `applied_through`, for those who wait for it (a full overlay, a snapshot).
    applied: watch::Sender<u64>,
    /// Tests hold the apply thread back to open the window between durable and applied.
    #[cfg(test)]
    apply_paused: AtomicBool,
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
        // Writers waiting for room in the overlay look at `failure` when woken.
        self.applied.send_modify(|_| {});
        message
    }

    fn overlay_read(&self) -> std::sync::RwLockReadGuard<'_, Overlay> {
        // Nothing panics while holding the overlay halfway through a change.
        self.overlay
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn overlay_write(&self) -> std::sync::RwLockWriteGuard<'_, Overlay> {
        self.overlay
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
    /// See `StoreOptions::overlay_bytes`.
    pub overlay_bytes: usize,
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
                rows: RowCache::new(target.row_cache_bytes),
                requests,
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
            overlay: RwLock::new(Overlay::default()),
            overlay_budget: target.overlay_bytes,
            durable_through: AtomicU64::new(target.applied),
            applied_through: AtomicU64::new(target.applied),
            applied: watch::channel(target.applied).0,
            #[cfg(test)]
            apply_paused: AtomicBool::new(false),
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
            .spawn(move || log_thread(writer, log_shared, logged_tx, metrics, sequence))?;
        let apply_shared = shared.clone();
        let apply = std::thread::Builder::new()
            .name(format!("apply-{name}"))
            .spawn(move || apply_thread(target, apply_shared, logged_rx))?;
        Ok(Self {
            shared,
            threads: Mutex::new(vec![log, apply]),
        })
    }

    /// The writer lock. Held only while a write reads and stages, never across I/O.
    pub(crate) async fn lock(&self) -> tokio::sync::MutexGuard<'_, WriterState> {
        self.shared.writer.lock().await
    }

    /// Waits while the overlay holds more than its budget: the apply thread is behind, and
    /// a new write would only add to what waits for sled. Called before the writer lock,
    /// so a waiting writer holds nothing up. Returns at once once the store has failed
    /// (the write then fails on its own).
    pub(crate) async fn admit(&self) {
        if self.shared.overlay_read().bytes() <= self.shared.overlay_budget {
            return;
        }
        let mut applied = self.shared.applied.subscribe();
        while self.shared.overlay_read().bytes() > self.shared.overlay_budget
            && self.shared.failure.get().is_none()
            && !self.shared.stopping.load(Ordering::SeqCst)
        {
            if applied.changed().await.is_err() {
                return;
            }
        }
    }

    /// The overlay, for a reader: hold the guard only for map operations.
    pub(crate) fn overlay(&self) -> std::sync::RwLockReadGuard<'_, Overlay> {
        self.shared.overlay_read()
    }

    /// The last generation durable: a reader outside the writer lock sees the overlay's
    /// versions up to it. Read before the overlay.
    pub(crate) fn durable_through(&self) -> u64 {
        self.shared.durable_through.load(Ordering::Acquire)
    }

    /// Adds one write to the generation being gathered: its changes (also to the overlay,
    /// so later writers see them, and readers once the generation is durable), its ledger
    /// entries and its request id. The returned commit ends when they are durable; a write
    /// with no changes gets one too. `writer` is the caller's writer lock, which hands out
    /// ledger sequences in staging order.
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
        if !changes.is_empty() {
            let mut overlay = self.shared.overlay_write();
            for (key, value) in changes {
                writer.rows.update(&key, &value);
                overlay.insert(generation, key.clone(), value.clone());
                pending.changes.push((key, value));
            }
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
        let generation = pending.generation;
        // Taken under the lock that guards what the log thread waits for, so a wake is
        // neither lost nor sent twice.
        let wake = std::mem::take(&mut pending.log_sleeping);
        drop(pending);
        if wake {
            self.shared.wake.notify_one();
        }
        Commit { done, generation }
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
    /// has touched sled if nothing is staged (the writer lock held, after
    /// [`GroupCommit::wait_applied`]).
    pub(crate) fn applied_through(&self) -> u64 {
        self.shared.applied_through.load(Ordering::Acquire)
    }

    /// Holds the apply thread back (or lets it go): what is logged stays in the overlay.
    #[cfg(test)]
    pub(crate) fn pause_apply(&self, paused: bool) {
        self.shared.apply_paused.store(paused, Ordering::SeqCst);
    }

    /// The bytes the overlay holds.
    #[cfg(test)]
    pub(crate) fn overlay_bytes(&self) -> usize {
        self.shared.overlay_read().bytes()
    }

    /// Waits until every generation up to `generation` is in sled.
    pub(crate) async fn wait_applied(&self, generation: u64) -> Result<(), StoreError> {
        let mut applied = self.shared.applied.subscribe();
        loop {
            if *applied.borrow_and_update() >= generation {
                return Ok(());
            }
            self.check_open()?;
            if applied.changed().await.is_err() {
                return Err(StoreError::Closed);
            }
        }
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

/// Takes each generation staged, logs and syncs it, makes it visible and acknowledges it,
/// and hands it to the apply thread.
fn log_thread(
    mut writer: WalWriter,
    shared: Arc<Shared>,
    logged: mpsc::Sender<Logged>,
    metrics: StoreMetrics,
    sequence_tx: watch::Sender<u64>,
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
        // Rows this thread makes, which no writer staged into the overlay.
        let mut made: Vec<Change> = ledger
            .and_then(LedgerBlock::into_change)
            .into_iter()
            .collect();
        match requests.into_change() {
            Ok(change) => made.extend(change),
            Err(error) => {
                let message = shared.fail("recording request ids", &error);
                done.finish(Err(message));
                return;
            }
        }
        let first_made = changes.len();
        changes.extend(made);
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
        // Durable: visible to readers, then acknowledged. The made rows join the overlay
        // first, so the ledger sequence a woken writer reads is there to be read.
        if first_made < changes.len() {
            let mut overlay = shared.overlay_write();
            for (key, value) in &changes[first_made..] {
                overlay.insert(generation, key.clone(), value.clone());
            }
        }
        shared
            .durable_through
            .fetch_max(generation, Ordering::Release);
        if let Some(sequence) = last_sequence {
            sequence_tx.send_if_modified(|durable| {
                let moved = sequence > *durable;
                *durable = (*durable).max(sequence);
                moved
            });
        }
        done.finish(Ok(()));
        let next = Logged {
            generation,
            changes,
            closed,
        };
        if logged.send(next).is_err() {
            // The apply thread stopped after a failure it recorded; the store takes no
            // more writes.
            return;
        }
        if stopping {
            // Shutdown: the open segment is retired too, once its generations are applied
            // and sled has flushed them.
            if let Some(current) = writer.close_current() {
                let _ = logged.send(Logged {
                    generation,
                    changes: Vec::new(),
                    closed: Some(current),
                });
            }
            return;
        }
    }
}

/// Applies logged generations to sled, in order, several at a time (each key once per
/// batch), then prunes them from the overlay; retires log segments once sled has flushed
/// what they hold. Stops at the first failure: the store then takes no more writes.
fn apply_thread(target: Target, shared: Arc<Shared>, logged: mpsc::Receiver<Logged>) {
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
    while let Ok(first) = logged.recv() {
        #[cfg(test)]
        while shared.apply_paused.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // Everything logged meanwhile joins this batch: the further behind, the more a
        // busy key's writes coalesce.
        let mut batch = vec![first];
        while batch.len() < APPLY_BATCH_GENERATIONS {
            match logged.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let through = batch.last().map_or(applied, |last| last.generation);
        // sled's marker names the last generation that is in the log: one that held no
        // change (a flush) was never logged.
        let mut last_logged = None;
        let mut changes = Vec::new();
        for next in batch {
            if !next.changes.is_empty() {
                last_logged = Some(next.generation);
            }
            changes.extend(next.changes);
            retiring.extend(next.closed);
        }
        if let Some(generation) = last_logged {
            coalesce(&mut changes);
            if let Err(error) = wal::apply(&data, generation, changes) {
                shared.fail("applying logged generations", &error);
                return;
            }
            applied = generation;
        }
        // sled has the values now: readers and writers find them there.
        shared.applied_through.fetch_max(through, Ordering::Release);
        shared.overlay_write().prune(through);
        shared.applied.send_replace(through);
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
                shared.fail("checkpointing the write-ahead log", &error);
                return;
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
