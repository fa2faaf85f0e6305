//! Persistence of one site's inventory on `coldchain_store`: the tables, their keys, and the
//! write closures that read current state, call the rules in [`crate::domain`] and stage the
//! changes with their ledger entries. Takes and returns domain values; the bytes of a
//! ledger entry and of a kept answer come from the codecs it is given (the protobuf
//! encodings live in `wire`), so the change feed can stream stored entries as they are.
//!
//! Tables (one sled tree, see `coldchain_store::Table` and [`tables`]):
//!
//! | table | key | value |
//! |---|---|---|
//! | `skus` | sku | the sku's base unit (fixed at its first receipt) |
//! | `lots` | (sku, lot) | expiry, production, origin, first receipt time |
//! | `positions` | (sku, lot, zone) | on hand, allocated, version, last movement time |
//! | `holds` | hold_id | every hold, active or released |
//! | `active_holds` | hold_id | the scope of each active hold (small: read per batch) |
//! | `allocations` | allocation_id | the allocation with its picks and state |
//! | `order_allocations` | (order_id, first sequence) | allocation_id, oldest first |
//! | `transfers_in` | (transfer_id, sku, lot) | the encoded entry of the first receipt |
//! | `transformations` | transformation_id | what was stated, the sequences of its entries |
//!
//! `held` is never stored: it is derived from the active holds when read, so placing or
//! releasing a hold touches two rows whatever the amount of stock in scope.

mod allocations;
mod holds;
pub mod lot_index;
mod movements;
mod reads;
mod tables;

pub use reads::ZoneTotals;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;
use chrono_tz::Tz;
use coldchain_audit::Author;
use coldchain_network::TemperatureClass;
use coldchain_store::{Idempotent, Store, StoreError, WriteError, WriteTx, Written};

pub use coldchain_store::ReplyCodec;

use crate::domain::{
    self, ActiveHold, AllocateCommand, Allocation, DomainError, EntryKind, Hold, HoldScope,
    LedgerEntry, Movement, MovementKind, PlaceHoldCommand, RecordedAnswer, RecordedTransformation,
};

/// The temperature class of each zone of the site (relocation entries record both).
#[derive(Debug, Clone, Default)]
pub struct ZoneClasses(HashMap<String, TemperatureClass>);

impl ZoneClasses {
    /// The classes of the site's zones.
    pub fn new(zones: impl IntoIterator<Item = (String, TemperatureClass)>) -> Self {
        Self(zones.into_iter().collect())
    }

    /// The class of a zone; the checks before a write make sure it is one of the site's
    /// (an unknown zone reads as AMBIENT, never reached).
    pub fn class_of(&self, zone_id: &str) -> TemperatureClass {
        self.0
            .get(zone_id)
            .copied()
            .unwrap_or(TemperatureClass::Ambient)
    }
}

/// How ledger entries are kept: the bytes the ledger stores (and the feed sends as they
/// are), and back.
pub type EntryCodec = dyn ReplyCodec<LedgerEntry>;

/// What the ledger entries of one write share: how they are kept, and who made the write.
pub(crate) struct LedgerWriter<'a> {
    codec: &'a EntryCodec,
    author: &'a Author,
}

impl LedgerWriter<'_> {
    /// The bytes the ledger keeps of `entry`.
    fn encode(&self, entry: &LedgerEntry) -> Vec<u8> {
        self.codec.encode(entry)
    }

    /// An entry back from its bytes.
    fn decode(&self, bytes: &[u8]) -> Result<LedgerEntry, String> {
        self.codec.decode(bytes)
    }

    /// Who makes the write.
    fn author(&self) -> &Author {
        self.author
    }
}

/// Why a write or read did not happen.
#[derive(Debug)]
pub enum TxError {
    /// A rule refused the request.
    Domain(DomainError),
    /// A rule refused movement `index` of a batch.
    Movement {
        /// The movement's index in the request.
        index: usize,
        /// Why.
        error: DomainError,
    },
    /// Storage failed.
    Store(StoreError),
    /// A dry run found the batch applicable (nothing was written).
    DryRunPassed,
}

impl From<StoreError> for TxError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl From<DomainError> for TxError {
    fn from(error: DomainError) -> Self {
        Self::Domain(error)
    }
}

/// One site's inventory database.
#[derive(Clone)]
pub struct InventoryStore {
    store: Store,
    tz: Tz,
    zones: Arc<ZoneClasses>,
    entries: Arc<EntryCodec>,
    lot_index: lot_index::Readiness,
    readers: lot_index::EntryReaders,
}

impl InventoryStore {
    /// Wraps an opened database of a site in time zone `tz` with `zones`, its ledger
    /// entries kept through `entries` (and `place` reading where one belongs from its
    /// bytes, for the lot index).
    pub fn new(
        store: Store,
        tz: Tz,
        zones: ZoneClasses,
        entries: Arc<EntryCodec>,
        place: lot_index::PlaceOf,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            lot_index: lot_index::Readiness::at_open(&store)?,
            readers: lot_index::EntryReaders {
                place,
                codec: entries.clone(),
            },
            store,
            tz,
            zones: Arc::new(zones),
            entries,
        })
    }

    /// How the lot index reads stored entries (for its background task).
    pub fn lot_index_readers(&self) -> lot_index::EntryReaders {
        self.readers.clone()
    }

    /// Whether the lot index answers (set by its background catch-up, see
    /// [`lot_index::follow`]).
    pub fn lot_index_readiness(&self) -> lot_index::Readiness {
        self.lot_index.clone()
    }

    /// The underlying database (ledger reads, health, close).
    pub fn raw(&self) -> &Store {
        &self.store
    }

    /// The site-local date now, from the store clock.
    pub fn today(&self) -> NaiveDate {
        domain::local_date(self.store.clock().now_millis(), &self.tz)
    }

    /// `store.write`, then waits until the entries it appended are visible to WatchLedger
    /// (the store wakes writers as soon as their flush is done and may publish the durable
    /// ledger sequence a moment later): a client that got its answer finds its entries in
    /// the feed.
    async fn write<T, F>(
        &self,
        idempotent: Idempotent<'_, T, TxError>,
        author: &Author,
        f: F,
    ) -> Result<Written<T>, WriteError<TxError>>
    where
        F: FnOnce(&mut WriteTx<'_>, &LedgerWriter<'_>) -> Result<T, TxError> + Send,
    {
        let mut last_sequence = None;
        let ledger = LedgerWriter {
            codec: &*self.entries,
            author,
        };
        let written = self
            .store
            .write(Some(idempotent), |tx| {
                let value = f(tx, &ledger)?;
                last_sequence = tx.next_sequence().checked_sub(1);
                Ok(value)
            })
            .await?;
        if let Some(sequence) = last_sequence.filter(|s| *s > 0) {
            let mut durable = self.store.subscribe_ledger();
            let _ = durable.wait_for(|d| *d >= sequence).await;
        }
        Ok(written)
    }

    /// Records a batch of movements atomically; answers one entry per movement, followed
    /// by the arrival entry of each relocation in the order of the movements. With `dry_run` the
    /// batch is applied to the staged state only and discarded: `Err(Rejected(DryRunPassed))`
    /// means it would apply now; a request_id already recorded replays its answer as usual.
    pub async fn record_movements(
        &self,
        idempotent: Idempotent<'_, RecordedAnswer, TxError>,
        movements: &[Movement],
        author: &Author,
        dry_run: bool,
    ) -> Result<Written<RecordedAnswer>, WriteError<TxError>> {
        let tz = self.tz;
        let zones = self.zones.clone();
        let request_id = idempotent.request.request_id.as_str();
        self.write(idempotent, author, move |tx, ledger| {
            let recorded = movements::apply_batch(tx, ledger, tz, &zones, request_id, movements)?;
            if dry_run {
                Err(TxError::DryRunPassed)
            } else {
                Ok(RecordedAnswer::Entries(recorded))
            }
        })
        .await
    }

    /// The entries of an answer kept by reference, read back from the ledger (durable by
    /// the time a replay answers: the store waited for the first call's generation).
    pub fn recorded_entries(&self, answer: RecordedAnswer) -> Result<Vec<LedgerEntry>, StoreError> {
        if let RecordedAnswer::Entries(entries) = answer {
            return Ok(entries);
        }
        self.entries_at(&answer.runs())
    }

    /// The entries of each run of consecutive sequences `(first, length)`, in order.
    fn entries_at(&self, runs: &[(u64, u64)]) -> Result<Vec<LedgerEntry>, StoreError> {
        let mut entries = Vec::new();
        for &(first, length) in runs {
            let records = self.store.ledger_from(first, length as usize)?;
            let expected = first..first + length;
            if records.len() as u64 != length
                || !records.iter().map(|r| r.sequence).eq(expected.clone())
            {
                return Err(StoreError::Corrupt(format!(
                    "ledger entries {}..={} are cited but the ledger does not hold them",
                    first,
                    first + length - 1
                )));
            }
            for record in records {
                entries.push(
                    self.entries
                        .decode(&record.bytes)
                        .map_err(StoreError::Corrupt)?,
                );
            }
        }
        Ok(entries)
    }

    /// Up to `limit` entries of the lot (and of the holds that covered it) after sequence
    /// `after`, in order, and whether more follow.
    pub fn lot_entries(
        &self,
        sku: &str,
        lot_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<LedgerEntry>, bool), lot_index::LotIndexError> {
        let sequences =
            lot_index::sequences(&self.store, &self.lot_index, &self.readers, sku, lot_id)?;
        let durable = self.store.durable_sequence();
        let mut wanted = sequences
            .into_iter()
            .filter(|s| *s > after && *s <= durable)
            .peekable();
        let page: Vec<u64> = wanted.by_ref().take(limit).collect();
        let more = wanted.peek().is_some();
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for sequence in page {
            match runs.last_mut() {
                Some((first, length)) if *first + *length == sequence => *length += 1,
                _ => runs.push((sequence, 1)),
            }
        }
        Ok((self.entries_at(&runs)?, more))
    }

    /// A transformation recorded here, with its entries read back from the ledger.
    pub fn transformation(
        &self,
        transformation_id: &str,
    ) -> Result<RecordedTransformation, TxError> {
        let record = self
            .store
            .get(&tables::TRANSFORMATIONS, &transformation_id.to_string())?
            .ok_or_else(|| DomainError::UnknownTransformation {
                transformation_id: transformation_id.to_string(),
            })?;
        let mut sequences = record.sequences.clone();
        sequences.sort_unstable();
        let entries = self.entries_at(&RecordedAnswer::Sequences(sequences).runs())?;
        let (inputs, outputs) = entries.into_iter().partition(|entry| {
            entry.kind == EntryKind::Movement(MovementKind::TransformationInput)
        });
        Ok(RecordedTransformation {
            spec: record.spec(transformation_id),
            inputs,
            outputs,
        })
    }

    /// Reserves stock for an order (FEFO or FIFO), all or nothing.
    pub async fn allocate(
        &self,
        idempotent: Idempotent<'_, Allocation, TxError>,
        command: &AllocateCommand,
        author: &Author,
    ) -> Result<Written<Allocation>, WriteError<TxError>> {
        let tz = self.tz;
        self.write(idempotent, author, move |tx, ledger| {
            allocations::allocate(tx, ledger, tz, command)
        })
        .await
    }

    /// Releases an order's active allocations, or the one named; answers those released.
    pub async fn release_allocation(
        &self,
        idempotent: Idempotent<'_, Vec<Allocation>, TxError>,
        order_id: &str,
        allocation_id: &str,
        author: &Author,
    ) -> Result<Written<Vec<Allocation>>, WriteError<TxError>> {
        let request_id = idempotent.request.request_id.as_str();
        self.write(idempotent, author, move |tx, ledger| {
            allocations::release(tx, ledger, request_id, order_id, allocation_id)
        })
        .await
    }

    /// Places a hold. See [`InventoryStore::hold_snapshot`] for the stock it covers.
    pub async fn place_hold(
        &self,
        idempotent: Idempotent<'_, Hold, TxError>,
        command: &PlaceHoldCommand,
        author: &Author,
    ) -> Result<Written<Hold>, WriteError<TxError>> {
        self.write(idempotent, author, move |tx, ledger| {
            holds::place(tx, ledger, command)
        })
        .await
    }

    /// Releases an active hold.
    pub async fn release_hold(
        &self,
        idempotent: Idempotent<'_, Hold, TxError>,
        hold_id: &str,
        reason: &str,
        author: &Author,
    ) -> Result<Written<Hold>, WriteError<TxError>> {
        let request_id = idempotent.request.request_id.as_str();
        self.write(idempotent, author, move |tx, ledger| {
            holds::release(tx, ledger, request_id, hold_id, reason)
        })
        .await
    }
}

/// Stages `entry` as the next ledger entry, recorded by the write's author, setting its
/// sequence. (The lot index follows the durable ledger in the background: see
/// [`lot_index`].)
fn append(
    tx: &mut WriteTx<'_>,
    ledger: &LedgerWriter<'_>,
    entry: &mut LedgerEntry,
) -> Result<(), StoreError> {
    entry.recorded_by = ledger.author().clone();
    tx.append_ledger(|sequence| {
        entry.sequence = sequence;
        ledger.encode(entry)
    });
    Ok(())
}

/// The active holds with their ids and whether they let stock move.
fn load_active_holds(tx: &WriteTx<'_>) -> Result<Vec<ActiveHold>, StoreError> {
    Ok(tx
        .scan_prefix(&tables::ACTIVE_HOLDS, &[])?
        .into_iter()
        .map(|(hold_id, scope)| scope.active_hold(hold_id))
        .collect())
}

fn load_holds(tx: &WriteTx<'_>) -> Result<Vec<HoldScope>, StoreError> {
    Ok(tx
        .scan_prefix(&tables::ACTIVE_HOLDS, &[])?
        .into_iter()
        .map(|(_, scope)| scope.scope())
        .collect())
}

#[cfg(test)]
mod tests;
