//! The database of one service instance: open with identity checks, serialized atomic
//! writes with idempotency and ledger, group commit, reads and scans.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::StoreError;
use crate::clock::SharedClock;
use crate::group_commit::{Commit, GroupCommit, Target, WriteSet};
use crate::keys::KeyCodec;
use crate::observe::StoreMetrics;
use crate::records::{self, LEDGER_BLOCKS, REQUEST_EXPIRY};
use crate::request_filter::RequestFilter;
use crate::table::{Table, Value};
use crate::wal;

#[cfg(test)]
mod apply_tests;
mod backup;
mod open;
mod tx;
mod types;

use open::{check_identity, wait_for_lock};
pub use tx::WriteTx;
pub(crate) use tx::{Sees, decode_entry, merged_scan, view_get};
pub use types::{
    ForgetRefusals, Idempotent, Identity, LedgerRecord, RefusalCodec, ReplyCodec,
    RequestFingerprint, StoreOptions, WriteError, Written, fingerprint,
};
use types::{Outcome, RequestRecord};

/// The on-disk format this binary writes. A database with a newer version is refused.
///
/// 2: writes are durable in the write-ahead log (`wal/`) before sled has them, so a
/// binary that ignores the log must not open the database.
/// 3: the ledger and the request expiry index are kept one key per generation (see
/// `records`). Versions 1 and 2 are upgraded when opened.
/// 4: the booking service gives a confirmed booking its due row only once the booking's
/// first day is closed (see `coldchain_booking::store`): a binary before it would never
/// lapse the others. Version 3 is read as it is.
/// 5: an idempotency record may keep a refusal (see `RefusalCodec`): a binary before it
/// would replay the refusal's bytes as an answer. Version 4's records read as answers.
/// 6: ledger blocks rest packed (compressed, see `records::pack_block`), and inventory
/// answers may be kept by reference to ledger entries: a binary before it could read
/// neither. Version 5's plain blocks and copied answers are read as they are.
pub const FORMAT_VERSION: u32 = 6;

pub(crate) const META_FORMAT: &[u8] = b"format_version";
pub(crate) const META_SITE: &[u8] = b"site";
pub(crate) const META_SERVICE: &[u8] = b"service";

/// The write-ahead log's directory, inside the database's.
pub(crate) const WAL_DIR: &str = "wal";

/// The file sled locks for as long as a database is open, inside the database's directory.
const SLED_LOCK_FILE: &str = "db";
/// How long `Store::open` waits for a database another handle still holds.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Idempotency records: request_id → fingerprint, time, stored response. Their expiry
/// index is `records::REQUEST_EXPIRY`.
const REQUESTS: Table<String, RequestRecord> = Table::new("_requests");
/// Request ids forgotten per generation of a sweep (a sweep takes whole expiry entries, so
/// a generation may hold a few more).
pub const SWEEP_BATCH: usize = 4096;

/// What a write did under the writer lock: found an earlier outcome, staged its changes
/// into a generation of the group commit, or staged only the record of its refusal.
enum Staging<T, E> {
    Replayed(Result<T, Vec<u8>>, Commit),
    Staged(T, Commit),
    Refused(E, Commit),
}

struct Inner {
    path: PathBuf,
    identity: Identity,
    db: sled::Db,
    data: sled::Tree,
    commit: GroupCommit,
    durable_sequence: watch::Receiver<u64>,
    options: StoreOptions,
    metrics: StoreMetrics,
}

/// One service instance's database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl Store {
    /// Opens (or creates) the database at `path` for `identity`.
    ///
    /// Refuses a database written by a newer format or belonging to another site or
    /// service, with a message naming both, and never rewrites it.
    pub fn open(
        path: &Path,
        identity: &Identity,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(path)?;
        wait_for_lock(&path.join(SLED_LOCK_FILE), LOCK_WAIT)?;
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(options.cache_bytes)
            // Our group commit is the only flusher: see `group_commit`.
            .flush_every_ms(None)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(io) => StoreError::Io(std::io::Error::new(
                    io.kind(),
                    format!("cannot open database at {}: {io}", path.display()),
                )),
                other => StoreError::Sled(other),
            })?;
        check_identity(&db, path, identity)?;
        let data = db.open_tree("data")?;
        // Generations a crash left in the write-ahead log but not in sled's files.
        let wal_dir = path.join(WAL_DIR);
        let (applied, replayed) = wal::recover_counting(
            &db,
            &data,
            &wal_dir,
            options.file_system.as_ref(),
            options.wal_archive_dir.as_deref(),
        )?;
        StoreMetrics::replayed(identity, replayed);
        let metrics = StoreMetrics::new(identity);
        records::upgrade_legacy(&db, &data)?;
        let next_sequence = match data.scan_prefix(LEDGER_BLOCKS).next_back() {
            Some(block) => {
                let (key, value) = block?;
                let entries = records::block_len(&value)?;
                records::decode_block_key(&key)? + entries
            }
            None => 1,
        };
        let requests = RequestFilter::from_index(
            &data,
            options.request_filter_bytes,
            retention_ms(&options),
            options.clock.now_millis(),
        );
        let (sequence_tx, durable_sequence) = watch::channel(next_sequence - 1);
        let commit = GroupCommit::start(
            Target {
                db: db.clone(),
                data: data.clone(),
                wal_dir,
                file_system: options.file_system.clone(),
                segment_bytes: options.wal_segment_bytes,
                archive_dir: options.wal_archive_dir.clone(),
                applied,
                row_cache_bytes: options.row_cache_bytes,
                overlay_bytes: options.overlay_bytes,
                metrics: metrics.clone(),
            },
            next_sequence,
            requests,
            &format!("{}-{}", identity.site, identity.service),
            sequence_tx,
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                identity: identity.clone(),
                db,
                data,
                commit,
                durable_sequence,
                options,
                metrics,
            }),
        })
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The store's clock.
    pub fn clock(&self) -> &SharedClock {
        &self.inner.options.clock
    }

    /// Applies a write atomically and durably.
    ///
    /// With `idempotent`, a request_id seen before (and not yet expired) returns the
    /// outcome of the first call without running `f`: its answer, or
    /// [`WriteError::Remembered`] when it was refused with a refusal the write's
    /// [`RefusalCodec`] keeps. The same id with a different fingerprint is
    /// [`WriteError::RequestIdReused`]. `f` runs under the database's writer lock: it sees
    /// every earlier write (applied or still staged) and no concurrent one, so a check it
    /// makes still holds when its changes are applied. If `f` fails nothing it staged is
    /// changed; a kept refusal is recorded alone. The call returns once the group commit has
    /// synced the changes to the write-ahead log (in one record with those of every writer
    /// staged alongside: a crash keeps all of them or none); from then on every read sees
    /// them, and sled gets them off the request path. While the changes not yet in sled
    /// exceed `StoreOptions::overlay_bytes`, the call first waits for sled to catch up.
    pub async fn write<T, E, F>(
        &self,
        idempotent: Option<Idempotent<'_, T, E>>,
        f: F,
    ) -> Result<Written<T>, WriteError<E>>
    where
        F: FnOnce(&mut WriteTx<'_>) -> Result<T, E>,
    {
        let request = idempotent.as_ref().map(|i| i.request);
        self.inner.commit.admit().await;
        let staging = {
            let mut writer = self.inner.commit.lock().await;
            self.inner.commit.check_open()?;
            let now_ms = self.inner.options.clock.now_millis();
            // Checked under the lock, staged changes included: a concurrent call with the
            // same id may have staged and not be applied yet. An id the filter has never
            // seen has no record to find.
            if let Some(idempotent) = &idempotent
                && writer
                    .requests
                    .may_contain(&idempotent.request.request_id, now_ms)
                && let Some(outcome) = self.replay(idempotent, now_ms)?
            {
                // The first call's generation may still be on its way to disk.
                Staging::Replayed(outcome, self.inner.commit.request_flush()?)
            } else {
                let state = &mut *writer;
                let mut tx = WriteTx {
                    tree: &self.inner.data,
                    commit: &self.inner.commit,
                    rows: Some(RefCell::new(&mut state.rows)),
                    overlay: BTreeMap::new(),
                    next_sequence: state.next_sequence,
                    ledger: Vec::new(),
                    now_ms,
                };
                match f(&mut tx) {
                    Ok(value) => {
                        if let Some(Idempotent { request, codec, .. }) = &idempotent {
                            let record = RequestRecord {
                                digest: request.digest,
                                recorded_at_ms: now_ms,
                                response: codec.encode(&value),
                                outcome: Outcome::Answered,
                            };
                            tx.put(&REQUESTS, &request.request_id, &record)?;
                        }
                        let WriteTx {
                            overlay, ledger, ..
                        } = tx;
                        let next_sequence = ledger
                            .last()
                            .map_or(writer.next_sequence, |(sequence, _)| sequence + 1);
                        let write = WriteSet {
                            changes: overlay.into_iter().collect(),
                            ledger,
                            request: request.map(|request| (request.request_id.clone(), now_ms)),
                        };
                        let commit = self.inner.commit.stage(&mut writer, write)?;
                        writer.next_sequence = next_sequence;
                        Staging::Staged(value, commit)
                    }
                    Err(refusal) => {
                        // What `f` staged is dropped with `tx`; only the record is kept.
                        drop(tx);
                        let kept = idempotent.as_ref().and_then(|i| {
                            i.refusals.encode(&refusal).map(|bytes| (i.request, bytes))
                        });
                        let Some((request, response)) = kept else {
                            return Err(WriteError::Rejected(refusal));
                        };
                        let record = RequestRecord {
                            digest: request.digest,
                            recorded_at_ms: now_ms,
                            response,
                            outcome: Outcome::Refused,
                        };
                        let write = WriteSet {
                            changes: vec![(
                                REQUESTS.raw_key(&request.request_id),
                                Some(record.to_bytes()?),
                            )],
                            ledger: Vec::new(),
                            request: Some((request.request_id.clone(), now_ms)),
                        };
                        Staging::Refused(refusal, self.inner.commit.stage(&mut writer, write)?)
                    }
                }
            }
        };
        match staging {
            Staging::Replayed(outcome, commit) => {
                self.inner.metrics.replays.increment(1);
                commit.wait().await?;
                match outcome {
                    Ok(value) => Ok(Written {
                        value,
                        replayed: true,
                    }),
                    Err(refusal) => Err(WriteError::Remembered(refusal)),
                }
            }
            Staging::Staged(value, commit) => {
                commit.wait().await?;
                Ok(Written {
                    value,
                    replayed: false,
                })
            }
            Staging::Refused(refusal, commit) => {
                // Answered once the refusal is durable: a retry after a crash finds it.
                commit.wait().await?;
                Err(WriteError::Rejected(refusal))
            }
        }
    }

    /// Runs `f` under the writer lock on a view that changes nothing: a read of several
    /// rows that is consistent with itself, whatever `f` reads through (its `WriteTx` or
    /// the store's own scans), and holds only durable writes.
    ///
    /// Under the lock no write can stage; waiting first for everything already staged to
    /// be durable leaves nothing that is not visible: sled and the overlay only trade
    /// values (the apply thread), which a read sees the same either way. That costs one
    /// commit of the group commit when writes are pending, nothing when none are.
    pub async fn read_locked<R>(&self, f: impl FnOnce(&WriteTx<'_>) -> R) -> R {
        let writer = self.inner.commit.lock().await;
        if let Ok(commit) = self.inner.commit.request_flush() {
            // A failed store cannot commit any more: `f` then reads what was applied, and
            // health already reports the failure.
            let _ = commit.wait().await;
        }
        let tx = WriteTx {
            tree: &self.inner.data,
            // Everything staged is durable now: the newest versions are the durable ones.
            commit: &self.inner.commit,
            rows: None,
            overlay: BTreeMap::new(),
            next_sequence: writer.next_sequence,
            ledger: Vec::new(),
            now_ms: self.inner.options.clock.now_millis(),
        };
        f(&tx)
    }

    /// The outcome of the first call with `idempotent`'s request id, if its record is
    /// younger than the retention at `now_ms` (read as a writer: staged records too): its
    /// answer, or the bytes of its kept refusal.
    fn replay<T, E>(
        &self,
        idempotent: &Idempotent<'_, T, E>,
        now_ms: i64,
    ) -> Result<Option<Result<T, Vec<u8>>>, WriteError<E>> {
        let request = idempotent.request;
        let record = view_get(
            &self.inner.data,
            &self.inner.commit,
            Sees::Staged,
            &BTreeMap::new(),
            &REQUESTS.raw_key(&request.request_id),
        )?
        .map(|bytes| RequestRecord::decode(&bytes))
        .transpose()?;
        let Some(record) = record else {
            return Ok(None);
        };
        if self.is_expired(record.recorded_at_ms, now_ms) {
            return Ok(None);
        }
        if record.digest != request.digest {
            return Err(WriteError::RequestIdReused(request.request_id.clone()));
        }
        match record.outcome {
            Outcome::Refused => Ok(Some(Err(record.response))),
            Outcome::Answered => idempotent
                .codec
                .decode(record.response.as_slice())
                .map(|value| Some(Ok(value)))
                .map_err(|e| {
                    WriteError::Store(StoreError::Corrupt(format!("stored response: {e}")))
                }),
        }
    }

    /// Whether a record made at `recorded_at_ms` is past the retention at `now_ms`; the
    /// request filter forgets ids by the same rule.
    fn is_expired(&self, recorded_at_ms: i64, now_ms: i64) -> bool {
        // Saturating: the time comes from a stored record, and a corrupt one far in the past
        // must read as expired, not overflow.
        now_ms.saturating_sub(recorded_at_ms) >= retention_ms(&self.inner.options)
    }

    /// Forgets request_ids older than the retention. Returns how many were removed.
    ///
    /// In generations of about [`SWEEP_BATCH`] records, each committed before the next is
    /// gathered: the writer lock is held for one batch at a time, and a generation stays
    /// far below the write-ahead log's record limit however much has expired.
    pub async fn sweep_expired_requests(&self) -> Result<usize, StoreError> {
        let cutoff = self
            .inner
            .options
            .clock
            .now_millis()
            .saturating_sub(retention_ms(&self.inner.options));
        let mut removed = 0;
        loop {
            let (batch, more, commit) = {
                let mut writer = self.inner.commit.lock().await;
                self.inner.commit.check_open()?;
                let mut changes = Vec::new();
                let mut batch = 0;
                let mut more = false;
                // Entries still being committed are seconds old: the applied ones are all
                // that can expire.
                for entry in self.scan_prefix(&REQUEST_EXPIRY, &[]) {
                    // One corrupt index entry must not stop every later sweep: report it and
                    // go on.
                    let ((newest_ms, first_id), request_ids) = match entry {
                        Ok(entry) => entry,
                        Err(error) => {
                            tracing::warn!(%error, "skipping a corrupt request-expiry entry");
                            continue;
                        }
                    };
                    if newest_ms > cutoff {
                        break;
                    }
                    if batch >= SWEEP_BATCH {
                        more = true;
                        break;
                    }
                    let index_key = REQUEST_EXPIRY.raw_key(&(newest_ms, first_id));
                    if self.inner.commit.overlay().latest(&index_key) == Some(None) {
                        // A concurrent sweep's removal, not durable yet.
                        continue;
                    }
                    changes.push((index_key, None));
                    for request_id in request_ids {
                        let key = REQUESTS.raw_key(&request_id);
                        // An id used again after it expired has a newer record, which is
                        // not this entry's to forget.
                        let current = view_get(
                            &self.inner.data,
                            &self.inner.commit,
                            Sees::Staged,
                            &BTreeMap::new(),
                            &key,
                        )?;
                        let expired = match current.map(|bytes| RequestRecord::decode(&bytes)) {
                            Some(Ok(record)) => record.recorded_at_ms <= cutoff,
                            Some(Err(_)) => true,
                            None => false,
                        };
                        if expired {
                            changes.push((key, None));
                            batch += 1;
                        }
                    }
                }
                let write = WriteSet {
                    changes,
                    ..WriteSet::default()
                };
                (batch, more, self.inner.commit.stage(&mut writer, write)?)
            };
            commit.wait().await?;
            removed += batch;
            if !more {
                return Ok(removed);
            }
        }
    }

    /// Reads one value: the latest durable one (acknowledged writes, applied to sled or not).
    pub fn get<K: KeyCodec, V: Value>(
        &self,
        table: &Table<K, V>,
        key: &K,
    ) -> Result<Option<V>, StoreError> {
        let sees = Sees::durable(&self.inner.commit);
        let raw = table.raw_key(key);
        match view_get(
            &self.inner.data,
            &self.inner.commit,
            sees,
            &BTreeMap::new(),
            &raw,
        )? {
            Some(bytes) => V::from_bytes(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Every entry whose key starts with the encoded `key_prefix`, in key order (durable
    /// values, as [`Store::get`]).
    pub fn scan_prefix<K: KeyCodec, V: Value>(
        &self,
        table: &Table<K, V>,
        key_prefix: &[u8],
    ) -> impl Iterator<Item = Result<(K, V), StoreError>> + use<K, V> {
        let table = *table;
        let prefix = table.raw_prefix(key_prefix);
        self.durable_scan(Bound::Included(prefix.clone()), prefix)
            .map(move |entry| decode_entry(&table, entry))
    }

    /// The durable entries from `start` while their keys begin with `prefix`.
    fn durable_scan(&self, start: Bound<Vec<u8>>, prefix: Vec<u8>) -> tx::Merged {
        let sees = Sees::durable(&self.inner.commit);
        merged_scan(&self.inner.data, &self.inner.commit, sees, start, prefix)
    }

    /// Entries under `key_prefix` strictly after the relative key `after` (a page token's
    /// position), in key order.
    pub fn scan_after<K: KeyCodec, V: Value>(
        &self,
        table: &Table<K, V>,
        key_prefix: &[u8],
        after: Option<&[u8]>,
    ) -> impl Iterator<Item = Result<(K, V), StoreError>> + use<K, V> {
        let table = *table;
        let prefix = table.raw_prefix(key_prefix);
        let start = match after {
            Some(after) => Bound::Excluded(table.raw_prefix(after)),
            None => Bound::Included(prefix.clone()),
        };
        self.durable_scan(start, prefix)
            .map(move |entry| decode_entry(&table, entry))
    }

    /// Up to `limit` durable ledger entries with sequence ≥ `from`, in order.
    pub fn ledger_from(&self, from: u64, limit: usize) -> Result<Vec<LedgerRecord>, StoreError> {
        let durable = self.durable_sequence();
        let from = from.max(1);
        let mut out = Vec::new();
        if from > durable || limit == 0 {
            return Ok(out);
        }
        // The block holding `from` is the last one starting at or before it: in sled, or
        // (written since the last apply) in the overlay. Blocks are never changed once
        // written, so a block in both is the same block.
        let at_from = records::ledger_block_key(from);
        let in_tree = match self
            .inner
            .data
            .range(LEDGER_BLOCKS.to_vec()..=at_from.clone())
            .keys()
            .next_back()
        {
            Some(key) => Some(key?.to_vec()),
            None => None,
        };
        let in_overlay = self
            .inner
            .commit
            .overlay()
            .range(
                (
                    Bound::Included(LEDGER_BLOCKS.to_vec()),
                    Bound::Included(at_from),
                ),
                u64::MAX,
            )
            .filter(|(_, value)| value.is_some())
            .map(|(key, _)| key.to_vec())
            .last();
        let start = in_tree
            .max(in_overlay)
            .unwrap_or_else(|| LEDGER_BLOCKS.to_vec());
        for block in self.durable_scan(Bound::Included(start), LEDGER_BLOCKS.to_vec()) {
            let (key, value) = block?;
            let first = records::decode_block_key(&key)?;
            let plain = records::unpack_block(&value)?;
            for (sequence, bytes) in (first..).zip(records::split_block(&plain)?) {
                if sequence > durable {
                    return Ok(out);
                }
                if sequence >= from {
                    out.push(LedgerRecord {
                        sequence,
                        bytes: bytes.to_vec(),
                    });
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The highest ledger sequence known to be durable (0 when the ledger is empty).
    pub fn durable_sequence(&self) -> u64 {
        *self.inner.durable_sequence.borrow()
    }

    /// Wakes whenever the durable ledger sequence moves.
    pub fn subscribe_ledger(&self) -> watch::Receiver<u64> {
        self.inner.durable_sequence.clone()
    }

    /// Checks that the database answers (a read of its metadata) and can still make
    /// writes durable.
    pub fn check(&self) -> Result<(), StoreError> {
        if let Some(failure) = self.inner.commit.failure() {
            return Err(StoreError::Flush(failure));
        }
        self.inner.db.get(META_FORMAT)?;
        Ok(())
    }

    /// Updates the disk-usage gauges (sled's files, the write-ahead log's segments). The
    /// health probe calls it every few seconds; it reads file sizes, nothing more.
    pub fn measure_disk(&self) {
        if let Ok(bytes) = self.inner.db.size_on_disk() {
            self.inner.metrics.sled_disk.set(bytes as f64);
        }
        let wal_dir = self.inner.path.join(WAL_DIR);
        if let Ok(entries) = std::fs::read_dir(&wal_dir) {
            let bytes: u64 = entries
                .filter_map(|entry| entry.ok()?.metadata().ok())
                .filter(std::fs::Metadata::is_file)
                .map(|metadata| metadata.len())
                .sum();
            self.inner.metrics.wal_disk.set(bytes as f64);
        }
    }

    /// Resolves, with the reason, once the store can no longer make writes durable (its
    /// write-ahead log or sled failed). It stays failed: after such a failure (an
    /// `fdatasync` error above all) nothing in this process can tell what reached the disk,
    /// so the way back is to stop and open the database again, which replays the log.
    pub async fn failed(&self) -> String {
        self.inner.commit.failed().await
    }

    /// Waits until every write staged so far is durable (in the write-ahead log), and so
    /// visible to every read.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.inner.commit.request_flush()?.wait().await
    }

    /// Waits until every write staged so far is durable and applied to sled.
    pub async fn flush_applied(&self) -> Result<(), StoreError> {
        let commit = self.inner.commit.request_flush()?;
        let generation = commit.generation();
        commit.wait().await?;
        self.inner.commit.wait_applied(generation).await
    }

    /// Commits what is staged, flushes sled (the log is then empty), and stops the commit
    /// threads. Called on shutdown; later writes fail with `Closed`.
    pub fn close(&self) {
        self.inner.commit.stop();
    }
}

/// How long request ids are remembered, in milliseconds.
fn retention_ms(options: &StoreOptions) -> i64 {
    i64::try_from(options.idempotency_retention.as_millis()).unwrap_or(i64::MAX)
}
