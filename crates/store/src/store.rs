//! The database of one service instance: open with identity checks, serialized atomic
//! writes with idempotency and ledger, group commit, reads and scans.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::StoreError;
use crate::clock::{SharedClock, system_clock};
use crate::group_commit::{Commit, GroupCommit, Staged, Target, WriteSet};
use crate::keys::KeyCodec;
use crate::records::{self, LEDGER_BLOCKS, REQUEST_EXPIRY};
use crate::request_filter::RequestFilter;
use crate::row_cache::RowCache;
use crate::table::{Table, Value};
use crate::wal;

/// The on-disk format this binary writes. A database with a newer version is refused.
///
/// 2: writes are durable in the write-ahead log (`wal/`) before sled has them, so a
/// binary that ignores the log must not open the database.
/// 3: the ledger and the request expiry index are kept one key per generation (see
/// `records`). Versions 1 and 2 are upgraded when opened.
/// 4: the booking service gives a confirmed booking its due row only once the booking's
/// first day is closed (see `coldchain_booking::store`): a binary before it would never
/// lapse the others. Version 3 is read as it is.
pub const FORMAT_VERSION: u32 = 4;

const META_FORMAT: &[u8] = b"format_version";
const META_SITE: &[u8] = b"site";
const META_SERVICE: &[u8] = b"service";

/// The write-ahead log's directory, inside the database's.
const WAL_DIR: &str = "wal";

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

/// Whose data a database holds. A database refuses to open as anyone else's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The site id, e.g. `la-vientiane`.
    pub site: String,
    /// The service name, e.g. `inventory`.
    pub service: String,
}

/// Tuning of one database.
#[derive(Clone)]
pub struct StoreOptions {
    /// sled's page cache in bytes (sled's default is 1 GiB per database).
    pub cache_bytes: u64,
    /// How long a request_id is remembered. At least 24 hours in production.
    pub idempotency_retention: Duration,
    /// The clock used for idempotency expiry.
    pub clock: SharedClock,
    /// Size at which a write-ahead log segment is closed; sled is flushed and the segment
    /// deleted once its writes are applied. Bounds the log replayed after a crash.
    pub wal_segment_bytes: u64,
    /// Memory for the rows writes read (see `row_cache`), on top of sled's cache.
    pub row_cache_bytes: usize,
    /// Memory for the filter that lets a write with a new request id skip looking for its
    /// record (see `request_filter`): about 1.25 bytes per id recorded within the
    /// retention. Past it, writes look every id up. 0 turns the filter off.
    pub request_filter_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cache_bytes: 8 * 1024 * 1024,
            idempotency_retention: Duration::from_secs(48 * 3600),
            clock: system_clock(),
            wal_segment_bytes: 32 << 20,
            row_cache_bytes: 2 << 20,
            request_filter_bytes: 1 << 20,
        }
    }
}

/// A request's identity for idempotency: its id and a digest of its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFingerprint {
    /// The client's request_id.
    pub request_id: String,
    /// SHA-256 of the request's canonical bytes.
    pub digest: [u8; 32],
}

/// The fingerprint of a request: `bytes` should be the request's canonical encoding
/// (its protobuf bytes, which include the request_id).
pub fn fingerprint(request_id: &str, bytes: &[u8]) -> RequestFingerprint {
    RequestFingerprint {
        request_id: request_id.to_string(),
        digest: Sha256::digest(bytes).into(),
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct RequestRecord {
    digest: [u8; 32],
    recorded_at_ms: i64,
    response: Vec<u8>,
}

/// How a write's answer is kept for a replay of its `request_id`. The store keeps the
/// bytes and knows nothing of their format: each service hands the codec of its own
/// answers (the stored bytes of today's services are their protobuf responses).
pub trait ReplyCodec<T>: Send + Sync {
    /// The bytes kept for `reply`.
    fn encode(&self, reply: &T) -> Vec<u8>;
    /// The reply back from kept bytes; an error names what is wrong with them.
    fn decode(&self, bytes: &[u8]) -> Result<T, String>;
}

/// What makes a write idempotent: the request's identity, and how its answer is kept.
pub struct Idempotent<'a, T> {
    /// The request's id and the digest of its content.
    pub request: &'a RequestFingerprint,
    /// Encodes the answer to keep it, decodes it to replay it.
    pub codec: &'a dyn ReplyCodec<T>,
}

impl<'a, T> Idempotent<'a, T> {
    /// `request`, its answer kept through `codec`.
    pub fn new(request: &'a RequestFingerprint, codec: &'a dyn ReplyCodec<T>) -> Self {
        Self { request, codec }
    }
}

/// A stored ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRecord {
    /// Its sequence number: 1, 2, 3, … with no gaps.
    pub sequence: u64,
    /// The service's encoding of the entry.
    pub bytes: Vec<u8>,
}

/// The result of a successful write.
#[derive(Debug)]
pub struct Written<T> {
    /// The response: fresh, or the stored response of the first call with this request_id.
    pub value: T,
    /// True when this was a replay of an earlier request.
    pub replayed: bool,
}

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError<E> {
    /// The closure refused the write (a domain error): nothing was changed.
    #[error("{0}")]
    Rejected(E),
    /// The request_id was used before for a different request.
    #[error("request_id {0:?} was already used for a different request")]
    RequestIdReused(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a write did under the writer lock: found an earlier answer, or staged its changes
/// into a generation of the group commit.
enum Staging<T> {
    Replayed(T, Commit),
    Staged(T, Commit),
}

struct Inner {
    path: PathBuf,
    db: sled::Db,
    data: sled::Tree,
    commit: GroupCommit,
    durable_sequence: watch::Receiver<u64>,
    options: StoreOptions,
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
        let applied = wal::recover(&db, &data, &wal_dir)?;
        records::upgrade_legacy(&db, &data)?;
        let next_sequence = match data.scan_prefix(LEDGER_BLOCKS).next_back() {
            Some(block) => {
                let (key, value) = block?;
                let entries = records::decode_block(&value)?.len() as u64;
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
                segment_bytes: options.wal_segment_bytes,
                applied,
                row_cache_bytes: options.row_cache_bytes,
            },
            next_sequence,
            requests,
            &format!("{}-{}", identity.site, identity.service),
            sequence_tx,
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                db,
                data,
                commit,
                durable_sequence,
                options,
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
    /// With `request`, a request_id seen before (and not yet expired) returns the stored
    /// response of the first call without running `f`; the same id with a different
    /// fingerprint is [`WriteError::RequestIdReused`]. `f` runs under the database's
    /// writer lock: it sees every earlier write (applied or still staged) and no concurrent
    /// one, so a check it makes still holds when its changes are applied. If `f` fails
    /// nothing is changed. The call returns once the group commit has synced the changes
    /// to the write-ahead log (in one record with those of every writer staged alongside:
    /// a crash keeps all of them or none) and applied them to sled.
    pub async fn write<T, E, F>(
        &self,
        idempotent: Option<Idempotent<'_, T>>,
        f: F,
    ) -> Result<Written<T>, WriteError<E>>
    where
        F: FnOnce(&mut WriteTx<'_>) -> Result<T, E>,
    {
        let request = idempotent.as_ref().map(|i| i.request);
        let staging = {
            let mut writer = self.inner.commit.lock().await;
            self.inner.commit.check_open()?;
            let now_ms = self.inner.options.clock.now_millis();
            // Checked under the lock, staged changes included: a concurrent call with the
            // same id may have staged and not be applied yet. An id the filter has never
            // seen has no record to find.
            if let Some(request) = request
                && writer.requests.may_contain(&request.request_id, now_ms)
                && let Some(codec) = idempotent.as_ref().map(|i| i.codec)
                && let Some(value) = self.replay(request, codec, &writer.overlay, now_ms)?
            {
                // The first call's generation may still be on its way to disk.
                Staging::Replayed(value, self.inner.commit.request_flush()?)
            } else {
                let state = &mut *writer;
                let mut tx = WriteTx {
                    tree: &self.inner.data,
                    shared: &state.overlay,
                    rows: Some(RefCell::new(&mut state.rows)),
                    overlay: BTreeMap::new(),
                    next_sequence: state.next_sequence,
                    ledger: Vec::new(),
                    now_ms,
                };
                let value = f(&mut tx).map_err(WriteError::Rejected)?;
                if let Some(Idempotent { request, codec }) = &idempotent {
                    let record = RequestRecord {
                        digest: request.digest,
                        recorded_at_ms: now_ms,
                        response: codec.encode(&value),
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
        };
        let (value, commit, replayed) = match staging {
            Staging::Replayed(value, commit) => (value, commit, true),
            Staging::Staged(value, commit) => (value, commit, false),
        };
        commit.wait().await?;
        Ok(Written { value, replayed })
    }

    /// Runs `f` under the writer lock on a view that changes nothing: a read of several
    /// rows that is consistent with itself, whatever `f` reads through (its `WriteTx` or
    /// the store's own scans), and holds only durable writes.
    ///
    /// Under the lock no write can stage; waiting first for everything already staged to
    /// be logged and applied leaves sled still while `f` reads. That costs one commit of
    /// the group commit when writes are pending, nothing when none are.
    pub async fn read_locked<R>(&self, f: impl FnOnce(&WriteTx<'_>) -> R) -> R {
        let writer = self.inner.commit.lock().await;
        if let Ok(commit) = self.inner.commit.request_flush() {
            // A failed store cannot commit any more: `f` then reads what was applied, and
            // health already reports the failure.
            let _ = commit.wait().await;
        }
        let tx = WriteTx {
            tree: &self.inner.data,
            shared: &writer.overlay,
            // Nothing is pending now: the tree is current.
            rows: None,
            overlay: BTreeMap::new(),
            next_sequence: writer.next_sequence,
            ledger: Vec::new(),
            now_ms: self.inner.options.clock.now_millis(),
        };
        f(&tx)
    }

    /// The stored response of `request`'s first call, if its id has a record younger than
    /// the retention at `now_ms` (read through the `staged` overlay).
    fn replay<T, E>(
        &self,
        request: &RequestFingerprint,
        codec: &dyn ReplyCodec<T>,
        staged: &BTreeMap<Vec<u8>, Staged>,
        now_ms: i64,
    ) -> Result<Option<T>, WriteError<E>> {
        let record = view_get(
            &self.inner.data,
            staged,
            &BTreeMap::new(),
            &REQUESTS.raw_key(&request.request_id),
        )?
        .map(|bytes| RequestRecord::from_bytes(&bytes))
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
        codec
            .decode(record.response.as_slice())
            .map(Some)
            .map_err(|e| WriteError::Store(StoreError::Corrupt(format!("stored response: {e}"))))
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
                    if writer.overlay.contains_key(&index_key) {
                        // A concurrent sweep's removal, not applied yet.
                        continue;
                    }
                    changes.push((index_key, None));
                    for request_id in request_ids {
                        let key = REQUESTS.raw_key(&request_id);
                        // An id used again after it expired has a newer record, which is
                        // not this entry's to forget.
                        let current =
                            view_get(&self.inner.data, &writer.overlay, &BTreeMap::new(), &key)?;
                        let expired = match current.map(|bytes| RequestRecord::from_bytes(&bytes)) {
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

    /// Reads one value.
    pub fn get<K: KeyCodec, V: Value>(
        &self,
        table: &Table<K, V>,
        key: &K,
    ) -> Result<Option<V>, StoreError> {
        match self.inner.data.get(table.raw_key(key))? {
            Some(bytes) => V::from_bytes(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Every entry whose key starts with the encoded `key_prefix`, in key order.
    pub fn scan_prefix<K: KeyCodec, V: Value>(
        &self,
        table: &Table<K, V>,
        key_prefix: &[u8],
    ) -> impl DoubleEndedIterator<Item = Result<(K, V), StoreError>> + use<K, V> {
        let table = *table;
        self.inner
            .data
            .scan_prefix(table.raw_prefix(key_prefix))
            .map(move |entry| decode_entry(&table, entry))
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
        self.inner
            .data
            .range::<Vec<u8>, _>((start, Bound::Unbounded))
            .take_while(move |entry| match entry {
                Ok((key, _)) => key.starts_with(&prefix),
                Err(_) => true,
            })
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
        // The block holding `from` is the last one starting at or before it.
        let start = match self
            .inner
            .data
            .range(LEDGER_BLOCKS.to_vec()..=records::ledger_block_key(from))
            .keys()
            .next_back()
        {
            Some(key) => key?.to_vec(),
            None => LEDGER_BLOCKS.to_vec(),
        };
        for block in self.inner.data.range(start..) {
            let (key, value) = block?;
            if !key.starts_with(LEDGER_BLOCKS) {
                break;
            }
            let first = records::decode_block_key(&key)?;
            for (sequence, bytes) in (first..).zip(records::decode_block(&value)?) {
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

    /// Resolves, with the reason, once the store can no longer make writes durable (its
    /// write-ahead log or sled failed). It stays failed: after such a failure (an
    /// `fdatasync` error above all) nothing in this process can tell what reached the disk,
    /// so the way back is to stop and open the database again, which replays the log.
    pub async fn failed(&self) -> String {
        self.inner.commit.failed().await
    }

    /// Waits until every write staged so far is durable (in the write-ahead log) and
    /// applied.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.inner.commit.request_flush()?.wait().await
    }

    /// Commits what is staged, flushes sled (the log is then empty), and stops the commit
    /// threads. Called on shutdown; later writes fail with `Closed`.
    pub fn close(&self) {
        self.inner.commit.stop();
    }
}

fn decode_entry<K: KeyCodec, V: Value>(
    table: &Table<K, V>,
    entry: sled::Result<(sled::IVec, sled::IVec)>,
) -> Result<(K, V), StoreError> {
    let (key, value) = entry?;
    Ok((table.decode_key(&key)?, V::from_bytes(&value)?))
}

/// Reads a raw key through the write's own changes, then the staged ones, then the tree.
fn view_get(
    tree: &sled::Tree,
    shared: &BTreeMap<Vec<u8>, Staged>,
    own: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    raw: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    if let Some(value) = own.get(raw) {
        return Ok(value.clone());
    }
    if let Some((_, value)) = shared.get(raw) {
        return Ok(value.clone());
    }
    Ok(tree.get(raw)?.map(|v| v.to_vec()))
}

/// How long request ids are remembered, in milliseconds.
fn retention_ms(options: &StoreOptions) -> i64 {
    i64::try_from(options.idempotency_retention.as_millis()).unwrap_or(i64::MAX)
}

/// Waits until nothing holds the lock sled takes on `file`, for at most `wait`.
///
/// sled tries its lock once and fails at once. But after a database's last handle is
/// dropped, sled's I/O threads may still be writing its final buffers, holding the lock a
/// moment longer: a reopen in the same process (a service restarted in place, a test)
/// would fail for nothing. Another process holding it is reported after `wait`, naming
/// the file. The lock is released again here; sled takes its own right after.
fn wait_for_lock(file: &Path, wait: Duration) -> Result<(), StoreError> {
    let probe = match std::fs::File::open(file) {
        Ok(probe) => probe,
        // A new database: there is nothing to wait for.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let deadline = std::time::Instant::now() + wait;
    loop {
        match probe.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Io(std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    format!(
                        "the database at {} is in use: {} is still locked after {wait:?} \
                         (is another instance running on the same data directory?)",
                        file.parent().unwrap_or(file).display(),
                        file.display()
                    ),
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
    }
}

fn check_identity(db: &sled::Db, path: &Path, identity: &Identity) -> Result<(), StoreError> {
    let meta = db.open_tree("_meta")?;
    let text = |key: &[u8]| -> Result<Option<String>, StoreError> {
        Ok(meta
            .get(key)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    };
    match meta.get(META_FORMAT)? {
        None => {
            meta.insert(META_FORMAT, &FORMAT_VERSION.to_be_bytes())?;
            meta.insert(META_SITE, identity.site.as_bytes())?;
            meta.insert(META_SERVICE, identity.service.as_bytes())?;
            db.flush()?;
            Ok(())
        }
        Some(raw) => {
            let version = <[u8; 4]>::try_from(raw.as_ref())
                .map(u32::from_be_bytes)
                .map_err(|_| {
                    StoreError::Corrupt(format!("{}: malformed format version", path.display()))
                })?;
            if version > FORMAT_VERSION {
                return Err(StoreError::Incompatible(format!(
                    "database at {} has format version {version}; this binary supports up to {FORMAT_VERSION}: upgrade the binary (the data was left untouched)",
                    path.display()
                )));
            }
            let site = text(META_SITE)?.unwrap_or_default();
            let service = text(META_SERVICE)?.unwrap_or_default();
            if site != identity.site || service != identity.service {
                return Err(StoreError::Incompatible(format!(
                    "database at {} belongs to site {site:?} service {service:?}, not site {:?} service {:?}: check data_dir (the data was left untouched)",
                    path.display(),
                    identity.site,
                    identity.service
                )));
            }
            if version < FORMAT_VERSION {
                // Every older format is readable as is; from now on only a binary that
                // knows this format may open it.
                meta.insert(META_FORMAT, &FORMAT_VERSION.to_be_bytes())?;
                db.flush()?;
            }
            Ok(())
        }
    }
}

/// The staged changes of one write, seen through its own reads.
pub struct WriteTx<'a> {
    tree: &'a sled::Tree,
    /// Changes of earlier writes, staged but not yet applied.
    shared: &'a BTreeMap<Vec<u8>, Staged>,
    /// The writer lock's row cache, for a write (a `RefCell`: reads fill it).
    rows: Option<RefCell<&'a mut RowCache>>,
    /// This write's puts (`Some`) and deletes (`None`), by raw key.
    overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    next_sequence: u64,
    ledger: Vec<(u64, Vec<u8>)>,
    now_ms: i64,
}

impl WriteTx<'_> {
    /// The instant of this write, from the store's clock (ms since the epoch).
    pub fn now_millis(&self) -> i64 {
        self.now_ms
    }

    /// Reads a value, including this write's own staged changes.
    pub fn get<K: KeyCodec, V: Value>(
        &self,
        table: &Table<K, V>,
        key: &K,
    ) -> Result<Option<V>, StoreError> {
        let raw = table.raw_key(key);
        let decode = |bytes: Option<&[u8]>| bytes.map(V::from_bytes).transpose();
        if let Some(own) = self.overlay.get(&raw) {
            return decode(own.as_deref());
        }
        let Some(rows) = &self.rows else {
            return decode(view_get(self.tree, self.shared, &self.overlay, &raw)?.as_deref());
        };
        if let Some(cached) = rows.borrow().get(&raw) {
            return decode(cached.as_deref());
        }
        let current = view_get(self.tree, self.shared, &BTreeMap::new(), &raw)?;
        rows.borrow_mut().fill(&raw, &current);
        decode(current.as_deref())
    }

    /// Stages a put.
    pub fn put<K: KeyCodec, V: Value>(
        &mut self,
        table: &Table<K, V>,
        key: &K,
        value: &V,
    ) -> Result<(), StoreError> {
        self.overlay
            .insert(table.raw_key(key), Some(value.to_bytes()?));
        Ok(())
    }

    /// Stages a delete.
    pub fn delete<K: KeyCodec, V: Value>(&mut self, table: &Table<K, V>, key: &K) {
        self.overlay.insert(table.raw_key(key), None);
    }

    /// Every entry under `key_prefix`, in key order, including staged changes.
    pub fn scan_prefix<K: KeyCodec, V: Value>(
        &self,
        table: &Table<K, V>,
        key_prefix: &[u8],
    ) -> Result<Vec<(K, V)>, StoreError> {
        let prefix = table.raw_prefix(key_prefix);
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for entry in self.tree.scan_prefix(&prefix) {
            let (key, value) = entry?;
            merged.insert(key.to_vec(), value.to_vec());
        }
        for (key, (_, value)) in self.shared.range(prefix.clone()..) {
            if !key.starts_with(&prefix) {
                break;
            }
            match value {
                Some(value) => merged.insert(key.clone(), value.clone()),
                None => merged.remove(key),
            };
        }
        for (key, value) in self.overlay.range(prefix.clone()..) {
            if !key.starts_with(&prefix) {
                break;
            }
            match value {
                Some(value) => merged.insert(key.clone(), value.clone()),
                None => merged.remove(key),
            };
        }
        merged
            .into_iter()
            .map(|(key, value)| Ok((table.decode_key(&key)?, V::from_bytes(&value)?)))
            .collect()
    }

    /// Stages a ledger entry. `encode` gets the entry's sequence number and returns its
    /// bytes; the sequence is returned too.
    pub fn append_ledger(&mut self, encode: impl FnOnce(u64) -> Vec<u8>) -> u64 {
        let sequence = self.next_sequence + self.ledger.len() as u64;
        self.ledger.push((sequence, encode(sequence)));
        sequence
    }

    /// The sequence the next staged ledger entry would get.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence + self.ledger.len() as u64
    }
}
