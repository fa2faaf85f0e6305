//! The lot index: for each (sku, lot), the sequences of its ledger entries, so a lot's
//! history (ListLotEntries, the site's part of a trace) is read without a scan of the
//! ledger.
//!
//! Compact, as the ledger is (issue 27): each lot has one open chunk (key part `OPEN`)
//! that takes the sequences of its new entries as zigzag varint steps from the one before
//! (a step of a batch is one byte), and when it holds [`CHUNK_LEN`] it is kept as a closed
//! chunk numbered in order and a new one opens. A chunk row costs its key once per 256
//! entries; the index adds a few bytes per entry.
//!
//! Readers sort and deduplicate, so the index may take a sequence more than once and out of
//! order: that is what lets the backfill of a store written before the index (run in the
//! background at start, see [`backfill`]) add old entries while new ones are written.
//!
//! Holds are indexed apart: their entries are found from the holds themselves (the placing
//! entry's sequence is in the hold id, the releasing one is kept with the hold's authors),
//! because a zone's or a sku's hold covers lots it does not name.

use std::collections::{BTreeSet, HashSet};

use coldchain_audit::Author;
use coldchain_store::{Prefix, Store, StoreError, Table, WriteError, WriteTx};
use serde::{Deserialize, Serialize};

use super::tables::{HOLD_AUTHORS, HOLDS, HoldAuthors};
use crate::domain::{EntryKind, LedgerEntry};

/// Per (sku, lot, chunk number): the sequences of the lot's entries.
const LOT_ENTRIES: Table<(String, String, u64), LotChunk> = Table::new("lot_entries");
/// Markers of this store's index: `backfilled` once every entry written before the index
/// existed is in it.
const LOT_INDEX_META: Table<String, u64> = Table::new("lot_index_meta");
const BACKFILLED: &str = "backfilled";
/// The chunk number of a lot's open chunk (sorts after every closed one).
const OPEN: u64 = u64::MAX;
/// Sequences per chunk.
pub(super) const CHUNK_LEN: u32 = 256;

/// Sequences of one lot, as zigzag varint steps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LotChunk {
    /// The sequence the first step starts from.
    base: u64,
    /// The last sequence taken (where the next step starts).
    last: u64,
    /// Sequences held.
    count: u32,
    /// Closed chunks of this lot so far (kept in the open chunk only).
    closed: u64,
    /// The steps.
    steps: Vec<u8>,
}

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

impl LotChunk {
    fn push(&mut self, sequence: u64) {
        let step = sequence.wrapping_sub(self.last) as i64;
        push_varint(&mut self.steps, ((step << 1) ^ (step >> 63)) as u64);
        self.last = sequence;
        self.count += 1;
    }

    fn sequences(&self, out: &mut Vec<u64>) -> Result<(), StoreError> {
        let mut at = self.base;
        let mut bytes = self.steps.as_slice();
        for _ in 0..self.count {
            let mut value = 0u64;
            let mut shift = 0;
            loop {
                let (&byte, rest) = bytes
                    .split_first()
                    .ok_or_else(|| StoreError::Corrupt("lot index chunk ends early".into()))?;
                bytes = rest;
                if shift > 63 {
                    return Err(StoreError::Corrupt("lot index step too long".into()));
                }
                value |= u64::from(byte & 0x7f) << shift;
                shift += 7;
                if byte & 0x80 == 0 {
                    break;
                }
            }
            let step = ((value >> 1) as i64) ^ -((value & 1) as i64);
            at = at.wrapping_add(step as u64);
            out.push(at);
        }
        Ok(())
    }
}

/// Whether an entry is indexed under its lot: every entry that names one, but holds'.
fn indexed(entry: &LedgerEntry) -> Option<(&str, &str)> {
    if matches!(entry.kind, EntryKind::HoldPlaced | EntryKind::HoldReleased) || entry.sku.is_empty()
    {
        return None;
    }
    entry
        .lot
        .as_ref()
        .map(|lot| (entry.sku.as_str(), lot.lot_id.as_str()))
}

/// Adds `sequence` to the lot's open chunk, closing it when full.
fn add(tx: &mut WriteTx<'_>, sku: &str, lot_id: &str, sequence: u64) -> Result<(), StoreError> {
    let open_key = (sku.to_string(), lot_id.to_string(), OPEN);
    let mut open = tx.get(&LOT_ENTRIES, &open_key)?.unwrap_or_default();
    if open.count == 0 {
        open.base = open.last;
    }
    open.push(sequence);
    if open.count >= CHUNK_LEN {
        let closed = LotChunk {
            closed: 0,
            ..open.clone()
        };
        tx.put(
            &LOT_ENTRIES,
            &(sku.to_string(), lot_id.to_string(), open.closed),
            &closed,
        )?;
        open = LotChunk {
            base: open.last,
            last: open.last,
            count: 0,
            closed: open.closed + 1,
            steps: Vec::new(),
        };
    }
    tx.put(&LOT_ENTRIES, &open_key, &open)
}

/// Indexes an entry just appended (its sequence set), and keeps where a hold's release is.
pub(super) fn record(tx: &mut WriteTx<'_>, entry: &LedgerEntry) -> Result<(), StoreError> {
    if let Some((sku, lot_id)) = indexed(entry) {
        add(tx, sku, lot_id, entry.sequence)?;
    }
    Ok(())
}

/// The sequences of the lot's own entries, ascending, each once.
fn lot_sequences(store: &Store, sku: &str, lot_id: &str) -> Result<Vec<u64>, StoreError> {
    let prefix = Prefix::new().str(sku).str(lot_id);
    let mut sequences = Vec::new();
    for entry in store.scan_prefix(&LOT_ENTRIES, prefix.as_bytes()) {
        let (_, chunk) = entry?;
        chunk.sequences(&mut sequences)?;
    }
    sequences.sort_unstable();
    sequences.dedup();
    Ok(sequences)
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
    /// The backfill of a store written before the index has not finished.
    NotReady,
    /// Storage failed.
    Store(StoreError),
}

impl From<StoreError> for LotIndexError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// Every sequence of the lot's entries and of the holds that covered it, ascending; the
/// zones come from the lot's own entries (`zone_of` reads one).
pub(super) fn sequences(
    store: &Store,
    sku: &str,
    lot_id: &str,
    zones_of: impl Fn(&[u64]) -> Result<HashSet<String>, StoreError>,
) -> Result<Vec<u64>, LotIndexError> {
    if store
        .get(&LOT_INDEX_META, &BACKFILLED.to_string())?
        .is_none()
    {
        return Err(LotIndexError::NotReady);
    }
    let own = lot_sequences(store, sku, lot_id)?;
    let zones = zones_of(&own)?;
    let mut all: BTreeSet<u64> = own.into_iter().collect();
    all.extend(hold_sequences(store, sku, lot_id, &zones)?);
    Ok(all.into_iter().collect())
}

/// Indexes entries written before the index existed (a store of an earlier build), in
/// batches, then marks the store backfilled. Runs once per store, in the background:
/// ListLotEntries answers UNAVAILABLE meanwhile; entries written meanwhile are indexed by
/// their writes, and the index takes a sequence twice without harm. A store that starts
/// empty is marked at once.
pub async fn backfill(
    store: &Store,
    decode: impl Fn(&[u8]) -> Result<LedgerEntry, String>,
    batch: usize,
) -> Result<u64, StoreError> {
    if store
        .get(&LOT_INDEX_META, &BACKFILLED.to_string())?
        .is_some()
    {
        return Ok(0);
    }
    // Everything up to here predates the index's writes of this process (which index
    // themselves); entries after it are indexed by their own writes.
    let until = store.durable_sequence();
    let mut next = 1;
    let mut indexed = 0;
    while next <= until {
        let records = store.ledger_from(next, batch.min((until - next + 1) as usize))?;
        let Some(last) = records.last().map(|r| r.sequence) else {
            break;
        };
        let mut entries = Vec::with_capacity(records.len());
        for record in &records {
            let mut entry = decode(&record.bytes).map_err(StoreError::Corrupt)?;
            entry.sequence = record.sequence;
            entries.push(entry);
        }
        store
            .write(None, |tx| {
                for entry in &entries {
                    record(tx, entry)?;
                    if entry.kind == EntryKind::HoldReleased && !entry.hold_id.is_empty() {
                        let mut authors =
                            tx.get(&HOLD_AUTHORS, &entry.hold_id)?
                                .unwrap_or(HoldAuthors {
                                    placed_by: Author::unknown(),
                                    released_by: Some(Author::unknown()),
                                    released_sequence: None,
                                });
                        authors.released_sequence = Some(entry.sequence);
                        tx.put(&HOLD_AUTHORS, &entry.hold_id, &authors)?;
                    }
                }
                Ok::<(), StoreError>(())
            })
            .await
            .map_err(unrequested)?;
        indexed += entries.len() as u64;
        next = last + 1;
    }
    store
        .write(None, |tx| {
            tx.put(&LOT_INDEX_META, &BACKFILLED.to_string(), &until)
        })
        .await
        .map_err(unrequested)?;
    Ok(indexed)
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

/// Forgets the index and the hold authors, as a store written before them holds neither
/// (for tests of the upgrade).
#[cfg(test)]
pub(super) async fn forget(store: &Store) {
    let chunks: Vec<_> = store
        .scan_prefix(&LOT_ENTRIES, &[])
        .map(|e| e.unwrap().0)
        .collect();
    let authors: Vec<_> = store
        .scan_prefix(&HOLD_AUTHORS, &[])
        .map(|e| e.unwrap().0)
        .collect();
    store
        .write(None, |tx| {
            for key in &chunks {
                tx.delete(&LOT_ENTRIES, key);
            }
            for key in &authors {
                tx.delete(&HOLD_AUTHORS, key);
            }
            tx.delete(&LOT_INDEX_META, &BACKFILLED.to_string());
            Ok::<(), StoreError>(())
        })
        .await
        .unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_keeps_sequences_in_any_order_in_a_byte_a_step() {
        let mut chunk = LotChunk::default();
        for s in [5, 6, 7, 1_000_000, 3, 1_000_001] {
            chunk.push(s);
        }
        let mut out = Vec::new();
        chunk.sequences(&mut out).unwrap();
        assert_eq!(out, vec![5, 6, 7, 1_000_000, 3, 1_000_001]);
        let mut batch = LotChunk::default();
        batch.push(1);
        let before = batch.steps.len();
        for s in 2..=100 {
            batch.push(s);
        }
        assert_eq!(
            batch.steps.len() - before,
            99,
            "one byte per step of a batch"
        );
    }

    #[test]
    fn a_truncated_chunk_is_corrupt_not_a_panic() {
        let mut chunk = LotChunk::default();
        chunk.push(300);
        chunk.push(100_000);
        chunk.steps.pop();
        assert!(chunk.sequences(&mut Vec::new()).is_err());
    }
}
