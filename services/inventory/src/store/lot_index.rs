//! The lot index: which ledger entries belong to a lot, so a lot's history (ListLotEntries,
//! the site's part of a trace) is read without a scan of the whole ledger, and without a
//! write per entry on the request path.
//!
//! The ledger is cut into ranges of `range_len` sequences (1,024; the length is kept in the
//! store, so it never changes under a store). Once the durable ledger has passed the end of
//! a range, a background task ([`follow`]) reads the range once and writes one row for it: a
//! Bloom filter of the (sku, lot) of its entries, ten bits per distinct lot (about 1% false
//! positives). A lot's entries are found by testing every sealed range's filter and reading
//! the ranges that may hold the lot, plus the ranges not sealed yet; an entry read is kept
//! only if it names the lot, so a false positive costs a read, never a wrong answer, and a
//! sealer that lags makes a read slower, never wrong. At rest the index costs about a byte
//! per entry.
//!
//! Holds are found apart: from the holds themselves (the placing entry's sequence is in the
//! hold id, the releasing one is kept with the hold's authors), because a zone's or a sku's
//! hold covers lots it does not name.
//!
//! Earlier builds kept per-lot chunks of sequences written with every entry (`lot_entries`);
//! the first catch-up of such a store removes them. A store of a build before the holds'
//! authors has no release sequences: the first catch-up finds them in the ledger, and
//! ListLotEntries answers UNAVAILABLE until it has (the `backfilled` marker; a store empty
//! when opened, or marked, is ready at once: see [`Readiness`]).

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use coldchain_audit::Author;
use coldchain_runtime::Shutdown;
use coldchain_store::{Store, StoreError, Table, WriteError, WriteTx};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::EntryCodec;
use super::tables::{HOLD_AUTHORS, HOLDS, HoldAuthors};
use crate::domain::{EntryKind, EntryPlace, LedgerEntry};

/// Per range number: the filter of the lots of its entries.
const LOT_FILTERS: Table<u64, LotFilter> = Table::new("lot_filters");
/// Markers of this store's index: `backfilled` once the holds' release sequences of
/// earlier builds are known, `range_len` the length of a range.
const LOT_INDEX_META: Table<String, u64> = Table::new("lot_index_meta");
const BACKFILLED: &str = "backfilled";
const RANGE_LEN: &str = "range_len";
/// The per-lot chunks of earlier builds, removed by the first catch-up.
const RETIRED_LOT_ENTRIES: Table<(String, String, u64), RetiredChunk> = Table::new("lot_entries");
/// The range length of a new store.
pub const DEFAULT_RANGE_LEN: u64 = 1024;
/// Bits of filter per distinct lot of a range.
const BITS_PER_LOT: usize = 10;
/// Bit positions tested per lot (optimal for ten bits a lot: ten times ln 2).
const HASHES: u8 = 7;
/// Retired rows removed per write.
const RETIRE_BATCH: usize = 10_000;
/// Ranges sealed per write (one durable write for a sealer catching up).
const SEAL_BATCH: u64 = 16;

/// Where a stored entry belongs, read from its bytes without decoding the rest.
pub type PlaceOf = for<'a> fn(&'a [u8]) -> Result<EntryPlace<'a>, String>;

/// How the index reads stored entries: where one belongs, cheaply, for every entry it
/// scans; the whole entry only for a hold's release (its hold id).
#[derive(Clone)]
pub struct EntryReaders {
    /// Where an entry belongs.
    pub place: PlaceOf,
    /// The whole entry.
    pub codec: Arc<EntryCodec>,
}

impl EntryReaders {
    fn place<'a>(&self, bytes: &'a [u8]) -> Result<EntryPlace<'a>, StoreError> {
        (self.place)(bytes).map_err(StoreError::Corrupt)
    }

    fn decode(&self, bytes: &[u8]) -> Result<LedgerEntry, StoreError> {
        self.codec.decode(bytes).map_err(StoreError::Corrupt)
    }
}

/// A row of the per-lot index of earlier builds (read only to be removed).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RetiredChunk {
    base: u64,
    last: u64,
    count: u32,
    closed: u64,
    steps: Vec<u8>,
}

/// A Bloom filter of the lots of one range.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LotFilter {
    /// Bit positions per lot.
    hashes: u8,
    /// The bits.
    bits: Vec<u8>,
}

/// A lot's two 64-bit hashes (SHA-256 of sku and lot: stable across builds, as the filters
/// are stored).
fn lot_key(sku: &str, lot_id: &str) -> [u64; 2] {
    let mut digest = Sha256::new();
    digest.update(sku.as_bytes());
    digest.update([0xff]);
    digest.update(lot_id.as_bytes());
    let bytes = digest.finalize();
    let half = |at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(word)
    };
    [half(0), half(8) | 1]
}

impl LotFilter {
    fn build(keys: &HashSet<[u64; 2]>) -> Self {
        let bytes = (keys.len() * BITS_PER_LOT).div_ceil(8).max(8);
        let mut filter = Self {
            hashes: HASHES,
            bits: vec![0; bytes],
        };
        for key in keys {
            for bit in filter.positions(*key) {
                filter.bits[bit / 8] |= 1 << (bit % 8);
            }
        }
        filter
    }

    /// The bits of a key (double hashing).
    fn positions(&self, [first, step]: [u64; 2]) -> impl Iterator<Item = usize> + use<> {
        let len = (self.bits.len() as u64 * 8).max(1);
        (0..u64::from(self.hashes))
            .map(move |i| (first.wrapping_add(i.wrapping_mul(step)) % len) as usize)
    }

    fn may_contain(&self, key: [u64; 2]) -> bool {
        self.positions(key).all(|bit| {
            self.bits
                .get(bit / 8)
                .is_some_and(|b| b & (1 << (bit % 8)) != 0)
        })
    }
}

/// The sequences of the entries of the holds that covered the lot in one of `zones`: the
/// placing entry (its sequence is in the hold id) and the releasing one.
fn hold_sequences(
    store: &Store,
    sku: &str,
    lot_id: &str,
    zones: &HashSet<String>,
) -> Result<Vec<u64>, StoreError> {
    let mut sequences = Vec::new();
    for entry in store.scan_prefix(&HOLDS, &[]) {
        let (hold_id, hold) = entry?;
        let names_the_lot = (hold.sku.is_empty() || hold.sku == sku)
            && (hold.lot_id.is_empty() || hold.lot_id == lot_id);
        let covers = names_the_lot && (hold.zone_id.is_empty() || zones.contains(&hold.zone_id));
        if !covers {
            continue;
        }
        if let Some(placed) = hold_id.strip_prefix("hold-").and_then(|n| n.parse().ok()) {
            sequences.push(placed);
        }
        if let Some(released) = store
            .get(&HOLD_AUTHORS, &hold_id)?
            .and_then(|a| a.released_sequence)
        {
            sequences.push(released);
        }
    }
    Ok(sequences)
}

/// Why the lot's entries cannot be listed yet.
#[derive(Debug)]
pub enum LotIndexError {
    /// The first catch-up of a store of an earlier build has not finished.
    NotReady,
    /// Storage failed.
    Store(StoreError),
}

impl From<StoreError> for LotIndexError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

fn meta(store: &Store, name: &str) -> Result<Option<u64>, StoreError> {
    store.get(&LOT_INDEX_META, &name.to_string())
}

/// Whether the index answers: at once for a store that was empty when opened (every hold
/// release it will hold keeps its sequence) or that a catch-up marked; otherwise once the
/// first catch-up is done. Kept in memory, so a read never waits on the background task
/// of a new store.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// The readiness of `store` as opened.
    pub fn at_open(store: &Store) -> Result<Self, StoreError> {
        let ready = store.durable_sequence() == 0 || meta(store, BACKFILLED)?.is_some();
        Ok(Self(Arc::new(AtomicBool::new(ready))))
    }

    fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn set_ready(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// What sealing needs of the durable entries `first..first + len`: how many there are,
/// the lots they name, and the hold releases among them.
struct RangeFacts {
    entries: u64,
    lots: HashSet<[u64; 2]>,
    releases: Vec<LedgerEntry>,
}

fn range_facts(
    store: &Store,
    readers: &EntryReaders,
    first: u64,
    len: u64,
) -> Result<RangeFacts, StoreError> {
    let records = store.ledger_from(first, len as usize)?;
    let mut facts = RangeFacts {
        entries: records.len() as u64,
        lots: HashSet::new(),
        releases: Vec::new(),
    };
    for record in &records {
        let place = readers.place(&record.bytes)?;
        if let Some((sku, lot_id)) = place.lot() {
            facts.lots.insert(lot_key(sku, lot_id));
        }
        if place.kind == EntryKind::HoldReleased {
            let mut entry = readers.decode(&record.bytes)?;
            entry.sequence = record.sequence;
            facts.releases.push(entry);
        }
    }
    Ok(facts)
}

/// Whether `bytes` hold `needle` somewhere.
fn contains(bytes: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || bytes.windows(needle.len()).any(|window| window == needle)
}

/// Every sequence of the lot's entries and of the holds that covered it, ascending.
pub(super) fn sequences(
    store: &Store,
    readiness: &Readiness,
    readers: &EntryReaders,
    sku: &str,
    lot_id: &str,
) -> Result<Vec<u64>, LotIndexError> {
    if !readiness.is_ready() {
        return Err(LotIndexError::NotReady);
    }
    let range_len = meta(store, RANGE_LEN)?.unwrap_or(DEFAULT_RANGE_LEN).max(1);
    let key = lot_key(sku, lot_id);
    // Sealed ranges whose filter may hold the lot; ranges without a row (not sealed yet)
    // are read whatever they hold.
    let mut to_read = Vec::new();
    let mut next = 0u64;
    for row in store.scan_prefix(&LOT_FILTERS, &[]) {
        let (range, filter) = row?;
        to_read.extend(next..range);
        if filter.may_contain(key) {
            to_read.push(range);
        }
        next = range + 1;
    }
    let durable = store.durable_sequence();
    to_read.extend(next..durable.div_ceil(range_len));

    let mut own = BTreeSet::new();
    let mut zones = HashSet::new();
    for range in to_read {
        for record in store.ledger_from(range * range_len + 1, range_len as usize)? {
            // Entries are protobuf, whose strings are their bytes as they are: an entry
            // without the lot's bytes cannot name it, and is not read further.
            if !contains(&record.bytes, lot_id.as_bytes()) {
                continue;
            }
            let place = readers.place(&record.bytes)?;
            if place.lot() == Some((sku, lot_id)) {
                own.insert(record.sequence);
                zones.insert(place.zone_id.to_string());
            }
        }
    }
    own.extend(hold_sequences(store, sku, lot_id, &zones)?);
    Ok(own.into_iter().collect())
}

/// Seals ranges `next..` that the durable ledger has passed, up to [`SEAL_BATCH`] a write,
/// until `shutdown` (checked between writes: a sealer behind a heavy load must not keep
/// the database open once the service stops); answers the next range to seal and the
/// entries read.
async fn seal_complete(
    store: &Store,
    readers: &EntryReaders,
    range_len: u64,
    mut next: u64,
    shutdown: &Shutdown,
) -> Result<(u64, u64), StoreError> {
    let mut read = 0;
    loop {
        let complete = store.durable_sequence() / range_len;
        if next >= complete || shutdown.is_triggered() {
            return Ok((next, read));
        }
        let batch = (complete - next).min(SEAL_BATCH);
        let mut sealed = Vec::new();
        let mut releases = Vec::new();
        for range in next..next + batch {
            let facts = range_facts(store, readers, range * range_len + 1, range_len)?;
            if facts.entries != range_len {
                return Err(StoreError::Corrupt(format!(
                    "ledger range {range} holds {} entries, not {range_len}",
                    facts.entries
                )));
            }
            sealed.push((range, LotFilter::build(&facts.lots)));
            releases.extend(facts.releases);
        }
        store
            .write(None, |tx| {
                for (range, filter) in &sealed {
                    tx.put(&LOT_FILTERS, range, filter)?;
                }
                note_releases(tx, &releases)
            })
            .await
            .map_err(unrequested)?;
        read += batch * range_len;
        next += batch;
    }
}

/// Keeps the sequence of every hold release among `entries` whose hold does not know it
/// (releases written by builds before the holds' authors); later releases keep it
/// themselves.
fn note_releases(tx: &mut WriteTx<'_>, entries: &[LedgerEntry]) -> Result<(), StoreError> {
    for entry in entries {
        if entry.kind != EntryKind::HoldReleased || entry.hold_id.is_empty() {
            continue;
        }
        let mut authors = tx
            .get(&HOLD_AUTHORS, &entry.hold_id)?
            .unwrap_or(HoldAuthors {
                placed_by: Author::unknown(),
                released_by: Some(Author::unknown()),
                released_sequence: None,
            });
        if authors.released_sequence.is_none() {
            authors.released_sequence = Some(entry.sequence);
            tx.put(&HOLD_AUTHORS, &entry.hold_id, &authors)?;
        }
    }
    Ok(())
}

/// Brings the index up to the durable ledger: fixes the range length of a new store,
/// removes the index rows of earlier builds, seals every range the ledger has passed, and
/// on the first run notes the hold releases of the unsealed rest and marks the store
/// ready. Answers the next range to seal and the entries read.
pub async fn catch_up(
    store: &Store,
    readiness: &Readiness,
    readers: &EntryReaders,
    new_range_len: u64,
    shutdown: &Shutdown,
) -> Result<(u64, u64), StoreError> {
    let range_len = match meta(store, RANGE_LEN)? {
        Some(len) => len.max(1),
        None => {
            let len = new_range_len.max(1);
            store
                .write(None, |tx| {
                    tx.put(&LOT_INDEX_META, &RANGE_LEN.to_string(), &len)
                })
                .await
                .map_err(unrequested)?;
            len
        }
    };
    retire_earlier_index(store, shutdown).await?;
    let next = match store.scan_prefix(&LOT_FILTERS, &[]).last() {
        Some(row) => row?.0 + 1,
        None => 0,
    };
    let (next, mut read) = seal_complete(store, readers, range_len, next, shutdown).await?;
    if shutdown.is_triggered() {
        return Ok((next, read));
    }
    if meta(store, BACKFILLED)?.is_none() {
        let from = next * range_len + 1;
        let until = store.durable_sequence();
        let rest = if until >= from {
            range_facts(store, readers, from, until - from + 1)?
        } else {
            RangeFacts {
                entries: 0,
                lots: HashSet::new(),
                releases: Vec::new(),
            }
        };
        read += rest.entries;
        store
            .write(None, |tx| {
                note_releases(tx, &rest.releases)?;
                tx.put(&LOT_INDEX_META, &BACKFILLED.to_string(), &until)
            })
            .await
            .map_err(unrequested)?;
    }
    readiness.set_ready();
    Ok((next, read))
}

/// Removes the per-lot chunks an earlier build wrote with every entry.
async fn retire_earlier_index(store: &Store, shutdown: &Shutdown) -> Result<(), StoreError> {
    while !shutdown.is_triggered() {
        let keys: Vec<_> = store
            .scan_prefix(&RETIRED_LOT_ENTRIES, &[])
            .take(RETIRE_BATCH)
            .map(|row| row.map(|(key, _)| key))
            .collect::<Result<_, _>>()?;
        if keys.is_empty() {
            break;
        }
        store
            .write(None, |tx| {
                for key in &keys {
                    tx.delete(&RETIRED_LOT_ENTRIES, key);
                }
                Ok::<(), StoreError>(())
            })
            .await
            .map_err(unrequested)?;
    }
    Ok(())
}

/// Catches up, then seals each range as the durable ledger passes it, until `shutdown`.
/// Answers the entries the catch-up read (tells whether an earlier store was upgraded).
pub async fn follow(
    store: Store,
    readiness: Readiness,
    readers: EntryReaders,
    shutdown: Shutdown,
    on_caught_up: impl FnOnce(u64),
) -> Result<(), StoreError> {
    // Every step races the shutdown: a write in flight when the service stops is dropped
    // (sealing a range again writes the same row), so the database is never kept open by
    // this task once the service is gone.
    let stop = shutdown.wait();
    tokio::pin!(stop);
    let caught_up = catch_up(&store, &readiness, &readers, DEFAULT_RANGE_LEN, &shutdown);
    let (mut next, read) = tokio::select! {
        _ = &mut stop => return Ok(()),
        result = caught_up => result?,
    };
    on_caught_up(read);
    let range_len = meta(&store, RANGE_LEN)?.unwrap_or(DEFAULT_RANGE_LEN).max(1);
    let mut durable = store.subscribe_ledger();
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            changed = durable.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
        }
        next = tokio::select! {
            _ = &mut stop => return Ok(()),
            sealed = seal_complete(&store, &readers, range_len, next, &shutdown) => sealed?.0,
        };
    }
}

/// The failure of a write made without a request id (so never a replay's).
fn unrequested(error: WriteError<StoreError>) -> StoreError {
    match error {
        WriteError::Rejected(e) | WriteError::Store(e) => e,
        WriteError::RequestIdReused(_) | WriteError::Remembered(_) => {
            StoreError::Corrupt("a write without a request id answered as a replay".into())
        }
    }
}

/// Forgets the index and the hold authors, and writes a chunk of the earlier per-lot
/// index, as a store written before them holds (for tests of the upgrade).
#[cfg(test)]
pub(super) async fn forget(store: &Store) {
    let filters: Vec<_> = store
        .scan_prefix(&LOT_FILTERS, &[])
        .map(|e| e.unwrap().0)
        .collect();
    let authors: Vec<_> = store
        .scan_prefix(&HOLD_AUTHORS, &[])
        .map(|e| e.unwrap().0)
        .collect();
    store
        .write(None, |tx| {
            for key in &filters {
                tx.delete(&LOT_FILTERS, key);
            }
            for key in &authors {
                tx.delete(&HOLD_AUTHORS, key);
            }
            tx.delete(&LOT_INDEX_META, &BACKFILLED.to_string());
            tx.delete(&LOT_INDEX_META, &RANGE_LEN.to_string());
            tx.put(
                &RETIRED_LOT_ENTRIES,
                &("SKU-3".to_string(), "L1".to_string(), u64::MAX),
                &RetiredChunk {
                    base: 0,
                    last: 3,
                    count: 1,
                    closed: 0,
                    steps: vec![6],
                },
            )?;
            Ok::<(), StoreError>(())
        })
        .await
        .unwrap();
}

/// The number of sealed ranges and of rows of the earlier index (for tests).
#[cfg(test)]
pub(super) fn rows(store: &Store) -> (usize, usize) {
    (
        store.scan_prefix(&LOT_FILTERS, &[]).count(),
        store.scan_prefix(&RETIRED_LOT_ENTRIES, &[]).count(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_holds_its_lots_and_few_others() {
        let lots: HashSet<[u64; 2]> = (0..1000)
            .map(|i| lot_key("SKU", &format!("LOT-{i}")))
            .collect();
        let filter = LotFilter::build(&lots);
        assert_eq!(filter.bits.len(), 1250, "ten bits a lot");
        for key in &lots {
            assert!(filter.may_contain(*key));
        }
        let false_positives = (1000..21_000)
            .filter(|i| filter.may_contain(lot_key("SKU", &format!("LOT-{i}"))))
            .count();
        assert!(
            false_positives < 20_000 / 50,
            "{false_positives} of 20000 (about 1% expected)"
        );
        // The sku is part of the key.
        assert_ne!(lot_key("SKU", "LOT-1"), lot_key("SKU-", "LOT-1"));
        assert_ne!(lot_key("A", "BC"), lot_key("AB", "C"));
    }

    #[test]
    fn an_empty_or_damaged_filter_answers_without_panicking() {
        let empty = LotFilter::build(&HashSet::new());
        assert!(!empty.may_contain(lot_key("SKU", "L1")));
        let damaged = LotFilter {
            hashes: 200,
            bits: Vec::new(),
        };
        assert!(!damaged.may_contain(lot_key("SKU", "L1")));
    }
}
