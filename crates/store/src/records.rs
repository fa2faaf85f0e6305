//! The store's own records that grow with every write, kept one key per generation of the
//! group commit: the generation's ledger entries as one block, and the ids of the requests
//! it recorded as one expiry entry.
//!
//! Why not one key per entry: ledger sequences and record times only grow, so such keys all
//! land at the right edge of sled's tree, and sled splits a leaf every eight or so of them
//! (a leaf holds 16 keys). On the bench, those inserts and splits were the largest part of
//! the apply thread's time. A generation holds every write staged while the previous one
//! was being logged, about fifteen under load: one insert instead of fifteen, for each.
//!
//! A ledger block is `_ledger_blocks/<first sequence, u64 BE>` → each entry as
//! `length (u32 LE) | bytes`, the entries numbered from the first with no gap. An expiry
//! entry is `(newest record time, first request id)` → every request id of the generation.
//!
//! Format 2 kept one key per ledger entry and per request: [`upgrade_legacy`] moves those
//! into blocks and grouped entries when a database is opened.

use std::borrow::Cow;

use crate::StoreError;
use crate::table::{Table, Value};
use crate::wal::Change;

/// Ledger blocks: first sequence → entries.
pub(crate) const LEDGER_BLOCKS: &[u8] = b"_ledger_blocks/";
/// Format 2's ledger: one key per entry, sequence → entry.
const LEGACY_LEDGER: &[u8] = b"_ledger/";
/// Expiry index of idempotency records: (newest record's time, first request id) → the
/// request ids recorded together.
pub(crate) const REQUEST_EXPIRY: Table<(i64, String), Vec<String>> = Table::new("_request_expiry");
/// Format 2's expiry index: one key per record, (recorded at, request id).
const LEGACY_REQUEST_EXPIRY: Table<(i64, String), ()> = Table::new("_requests_by_time");

/// Entries or ids moved into one block or expiry entry by the upgrade.
const UPGRADE_CHUNK: usize = 1024;

/// The key of the block whose first entry has `first` as its sequence.
pub(crate) fn ledger_block_key(first: u64) -> Vec<u8> {
    sequence_key(LEDGER_BLOCKS, first)
}

fn sequence_key(prefix: &[u8], sequence: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 8);
    key.extend_from_slice(prefix);
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

/// The first sequence of a ledger block, from its key.
pub(crate) fn decode_block_key(key: &[u8]) -> Result<u64, StoreError> {
    decode_sequence_key(LEDGER_BLOCKS, key)
}

fn decode_sequence_key(prefix: &[u8], key: &[u8]) -> Result<u64, StoreError> {
    key.strip_prefix(prefix)
        .and_then(|rest| <[u8; 8]>::try_from(rest).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::Corrupt("malformed ledger key".into()))
}

/// The entries of a plain block, in sequence order. Damaged bytes are `Corrupt`, never a
/// panic.
pub(crate) fn split_block(plain: &[u8]) -> Result<Vec<&[u8]>, StoreError> {
    let corrupt = || StoreError::Corrupt("malformed ledger block".into());
    let mut entries = Vec::new();
    let mut rest = plain;
    while !rest.is_empty() {
        let (length, tail) = rest.split_first_chunk::<4>().ok_or_else(corrupt)?;
        let length = u32::from_le_bytes(*length) as usize;
        if tail.len() < length {
            return Err(corrupt());
        }
        let (entry, tail) = tail.split_at(length);
        entries.push(entry);
        rest = tail;
    }
    Ok(entries)
}

/// The first bytes of a packed block. A plain block starts with its first entry's length
/// (u32 LE), whose last byte is 0 for any entry under 16 MiB: never 0xFF.
const PACKED_MAGIC: [u8; 4] = *b"zL\x01\xff";
/// A packed block: the magic, the entry count and the plain block's length (u32 LE each),
/// then the plain block compressed by zstd.
const PACKED_HEADER: usize = 12;
/// zstd's level for blocks: its fastest, on the apply thread's path.
const PACK_LEVEL: i32 = 1;
/// The largest plain block unpacked (a generation's entries; far above any real one), so
/// a damaged header cannot ask for a huge allocation.
const MAX_PLAIN_BLOCK: usize = 1 << 30;

/// A block as sled keeps it: packed (compressed), unless packing does not make it smaller.
/// Blocks travel plain through the log and the overlay; the apply thread packs them (see
/// `wal::apply`). A block already packed is kept as it is.
pub(crate) fn pack_block(value: Vec<u8>) -> Result<Vec<u8>, StoreError> {
    if value.starts_with(&PACKED_MAGIC) {
        return Ok(value);
    }
    let count = u32::try_from(split_block(&value)?.len())
        .map_err(|_| StoreError::Encode("a ledger block of 2^32 entries".into()))?;
    let plain_len = u32::try_from(value.len())
        .map_err(|_| StoreError::Encode(format!("a ledger block of {} bytes", value.len())))?;
    let packed =
        compress(&value).map_err(|e| StoreError::Encode(format!("packing a ledger block: {e}")))?;
    if PACKED_HEADER + packed.len() >= value.len() {
        return Ok(value);
    }
    let mut out = Vec::with_capacity(PACKED_HEADER + packed.len());
    out.extend_from_slice(&PACKED_MAGIC);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&plain_len.to_le_bytes());
    out.extend_from_slice(&packed);
    Ok(out)
}

/// zstd with a checksum of the content, so damage at rest is caught on reading. One
/// compressor per thread (only the apply thread and recovery pack), made once.
fn compress(plain: &[u8]) -> std::io::Result<Vec<u8>> {
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let compressor = match cell.as_mut() {
            Some(compressor) => compressor,
            None => {
                let mut made = zstd::bulk::Compressor::new(PACK_LEVEL)?;
                made.include_checksum(true)?;
                cell.insert(made)
            }
        };
        compressor.compress(plain)
    })
}

/// The plain form of a block, packed or not. Damage is `Corrupt`, never a panic.
pub(crate) fn unpack_block(value: &[u8]) -> Result<Cow<'_, [u8]>, StoreError> {
    let Some(header) = packed_header(value)? else {
        return Ok(Cow::Borrowed(value));
    };
    let corrupt =
        |what: String| StoreError::Corrupt(format!("malformed packed ledger block: {what}"));
    if header.plain_len > MAX_PLAIN_BLOCK {
        return Err(corrupt(format!("{} bytes unpacked", header.plain_len)));
    }
    let plain = zstd::bulk::decompress(&value[PACKED_HEADER..], header.plain_len)
        .map_err(|e| corrupt(e.to_string()))?;
    if plain.len() != header.plain_len {
        return Err(corrupt(format!(
            "{} bytes unpacked, {} expected",
            plain.len(),
            header.plain_len
        )));
    }
    Ok(Cow::Owned(plain))
}

/// The number of entries of a block, packed or not (a packed block says it unpacking
/// nothing).
pub(crate) fn block_len(value: &[u8]) -> Result<u64, StoreError> {
    match packed_header(value)? {
        Some(header) => Ok(u64::from(header.count)),
        None => Ok(split_block(value)?.len() as u64),
    }
}

struct PackedHeader {
    count: u32,
    plain_len: usize,
}

fn packed_header(value: &[u8]) -> Result<Option<PackedHeader>, StoreError> {
    if !value.starts_with(&PACKED_MAGIC) {
        return Ok(None);
    }
    let field = |at: usize| {
        value
            .get(at..at + 4)
            .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| StoreError::Corrupt("malformed packed ledger block header".into()))
    };
    Ok(Some(PackedHeader {
        count: field(4)?,
        plain_len: field(8)? as usize,
    }))
}

/// The ledger entries of one generation, encoded as its block while writers stage them.
#[derive(Debug)]
pub(crate) struct LedgerBlock {
    first: u64,
    count: u64,
    bytes: Vec<u8>,
}

impl LedgerBlock {
    /// A block starting at `first`.
    pub(crate) fn new(first: u64) -> Self {
        Self {
            first,
            count: 0,
            bytes: Vec::new(),
        }
    }

    /// The sequence the next entry must have: the writer lock hands sequences out in the
    /// order writers stage, so a generation's entries are contiguous.
    pub(crate) fn next_sequence(&self) -> u64 {
        self.first + self.count
    }

    /// Appends the entry numbered [`Self::next_sequence`].
    pub(crate) fn push(&mut self, entry: &[u8]) -> Result<(), StoreError> {
        let length = u32::try_from(entry.len())
            .map_err(|_| StoreError::Encode(format!("a ledger entry of {} bytes", entry.len())))?;
        self.bytes.extend_from_slice(&length.to_le_bytes());
        self.bytes.extend_from_slice(entry);
        self.count += 1;
        Ok(())
    }

    /// The sequence of the last entry, if any.
    pub(crate) fn last_sequence(&self) -> Option<u64> {
        (self.count > 0).then(|| self.first + self.count - 1)
    }

    /// The block as a change, unless it is empty.
    pub(crate) fn into_change(self) -> Option<Change> {
        (self.count > 0).then(|| (ledger_block_key(self.first), Some(self.bytes)))
    }
}

/// The request ids one generation records, and the newest record's time.
#[derive(Debug, Default)]
pub(crate) struct RecordedRequests {
    ids: Vec<String>,
    newest_ms: i64,
}

impl RecordedRequests {
    /// Adds a request recorded at `recorded_at_ms`.
    pub(crate) fn push(&mut self, request_id: String, recorded_at_ms: i64) {
        if self.ids.is_empty() || recorded_at_ms > self.newest_ms {
            self.newest_ms = recorded_at_ms;
        }
        self.ids.push(request_id);
    }

    /// The expiry entry as a change, unless no request was recorded. Keyed by the newest
    /// record's time: the entry is swept once all of its records have expired.
    pub(crate) fn into_change(self) -> Result<Option<Change>, StoreError> {
        let Some(first) = self.ids.first() else {
            return Ok(None);
        };
        let key = REQUEST_EXPIRY.raw_key(&(self.newest_ms, first.clone()));
        Ok(Some((key, Some(self.ids.to_bytes()?))))
    }
}

/// Moves format 2's per-entry ledger keys and per-record expiry entries into blocks and
/// grouped entries, oldest first. Each chunk moves in one sled batch (its new key inserted,
/// its old keys removed), so a crash part way leaves every record in exactly one place and
/// the next open carries on. Runs after the write-ahead log is recovered, which may replay
/// a format 2 generation.
pub(crate) fn upgrade_legacy(db: &sled::Db, data: &sled::Tree) -> Result<(), StoreError> {
    let mut moved = (0usize, 0usize);
    loop {
        let mut batch = sled::Batch::default();
        let mut block: Option<LedgerBlock> = None;
        for entry in data.scan_prefix(LEGACY_LEDGER).take(UPGRADE_CHUNK) {
            let (key, value) = entry?;
            let sequence = decode_sequence_key(LEGACY_LEDGER, &key)?;
            let block = block.get_or_insert_with(|| LedgerBlock::new(sequence));
            if sequence != block.next_sequence() {
                // A gap (a generation that failed to log): the next block starts after it.
                break;
            }
            block.push(&value)?;
            batch.remove(key);
        }
        let Some((key, value)) = block.and_then(LedgerBlock::into_change) else {
            break;
        };
        moved.0 += 1;
        batch.insert(key, value.unwrap_or_default());
        data.apply_batch(batch)?;
    }
    loop {
        let mut batch = sled::Batch::default();
        let mut recorded = RecordedRequests::default();
        for entry in data
            .scan_prefix(LEGACY_REQUEST_EXPIRY.raw_prefix(&[]))
            .take(UPGRADE_CHUNK)
        {
            let (key, _) = entry?;
            let (recorded_at_ms, request_id) = LEGACY_REQUEST_EXPIRY.decode_key(&key)?;
            recorded.push(request_id, recorded_at_ms);
            batch.remove(key);
        }
        let Some((key, value)) = recorded.into_change()? else {
            break;
        };
        moved.1 += 1;
        batch.insert(key, value.unwrap_or_default());
        data.apply_batch(batch)?;
    }
    if moved != (0, 0) {
        db.flush()?;
        tracing::info!(
            ledger_blocks = moved.0,
            expiry_entries = moved.1,
            "moved format 2's ledger and request expiry index into grouped records"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_decodes_to_its_entries_in_order() {
        let mut block = LedgerBlock::new(7);
        for entry in [&b"seven"[..], b"", b"nine"] {
            block.push(entry).unwrap();
        }
        assert_eq!(block.last_sequence(), Some(9));
        let (key, value) = block.into_change().unwrap();
        assert_eq!(decode_block_key(&key).unwrap(), 7);
        let value = value.unwrap();
        assert_eq!(
            split_block(&value).unwrap(),
            vec![&b"seven"[..], b"", b"nine"]
        );
        // Every cut short of the end is damage, not fewer entries or a panic.
        for cut in [1, 4, 8, value.len() - 1] {
            assert!(matches!(
                split_block(&value[..cut]),
                Err(StoreError::Corrupt(_))
            ));
        }
    }

    /// The entries of a block, packed or not, in sequence order.
    fn block_entries(value: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        let plain = unpack_block(value)?;
        let entries = split_block(&plain)?;
        Ok(entries.into_iter().map(<[u8]>::to_vec).collect())
    }

    fn block_of(first: u64, entries: &[Vec<u8>]) -> Vec<u8> {
        let mut block = LedgerBlock::new(first);
        for entry in entries {
            block.push(entry).unwrap();
        }
        block.into_change().unwrap().1.unwrap()
    }

    fn entry(i: usize) -> Vec<u8> {
        format!(
            "receipt fill-run-7:{i} sku SKU-{:03} lot L-{} zone chilled-a kg",
            i % 100,
            i / 100
        )
        .into_bytes()
    }

    #[test]
    fn a_packed_block_is_smaller_and_unpacks_to_the_same_entries() {
        let entries: Vec<Vec<u8>> = (0..500).map(entry).collect();
        let plain = block_of(1, &entries);
        let packed = pack_block(plain.clone()).unwrap();
        assert!(
            packed.len() * 4 < plain.len(),
            "{} of {}",
            packed.len(),
            plain.len()
        );
        assert_eq!(block_len(&packed).unwrap(), 500);
        assert_eq!(block_len(&plain).unwrap(), 500);
        assert_eq!(unpack_block(&packed).unwrap().as_ref(), plain.as_slice());
        assert_eq!(block_entries(&packed).unwrap(), entries);
        assert_eq!(pack_block(packed.clone()).unwrap(), packed, "packed once");
    }

    #[test]
    fn a_block_packing_would_not_shrink_stays_plain() {
        let plain = block_of(1, &[b"x".to_vec()]);
        assert_eq!(pack_block(plain.clone()).unwrap(), plain);
        assert_eq!(block_entries(&plain).unwrap(), vec![b"x".to_vec()]);
    }

    #[test]
    fn a_damaged_packed_block_is_corrupt_not_a_panic() {
        let entries: Vec<Vec<u8>> = (0..200).map(entry).collect();
        let packed = pack_block(block_of(1, &entries)).unwrap();
        let mut damaged = Vec::new();
        for cut in [4, 8, 12, 20, packed.len() - 1] {
            damaged.push(packed[..cut].to_vec());
        }
        for at in [9, 14, packed.len() / 2, packed.len() - 2] {
            let mut flipped = packed.clone();
            flipped[at] ^= 0x5a;
            damaged.push(flipped);
        }
        let mut huge = packed.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        damaged.push(huge);
        for value in damaged {
            assert!(matches!(block_entries(&value), Err(StoreError::Corrupt(_))));
        }
    }

    #[test]
    fn an_empty_block_or_request_set_writes_nothing() {
        assert!(LedgerBlock::new(1).into_change().is_none());
        assert!(RecordedRequests::default().into_change().unwrap().is_none());
    }

    #[test]
    fn an_expiry_entry_is_keyed_by_its_newest_record() {
        let mut recorded = RecordedRequests::default();
        recorded.push("b".into(), 20);
        recorded.push("a".into(), 30);
        recorded.push("c".into(), 10);
        let (key, value) = recorded.into_change().unwrap().unwrap();
        assert_eq!(
            REQUEST_EXPIRY.decode_key(&key).unwrap(),
            (30, "b".to_string())
        );
        assert_eq!(
            Vec::<String>::from_bytes(&value.unwrap()).unwrap(),
            vec!["b", "a", "c"]
        );
    }
}
