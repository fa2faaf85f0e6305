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
//!
//! `held` is never stored: it is derived from the active holds when read, so placing or
//! releasing a hold touches two rows whatever the amount of stock in scope.

mod allocations;
mod holds;
mod movements;
mod reads;
mod tables;

pub use reads::ZoneTotals;

use std::sync::Arc;

use chrono::NaiveDate;
use chrono_tz::Tz;
use coldchain_store::{Idempotent, Store, StoreError, WriteError, WriteTx, Written};

pub use coldchain_store::ReplyCodec;

use crate::domain::{
    self, AllocateCommand, Allocation, DomainError, Hold, HoldScope, LedgerEntry, Movement,
    PlaceHoldCommand, RecordedAnswer,
};

/// How ledger entries are kept: the bytes the ledger stores (and the feed sends as they
/// are), and back.
pub type EntryCodec = dyn ReplyCodec<LedgerEntry>;

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
    entries: Arc<EntryCodec>,
}

impl InventoryStore {
    /// Wraps an opened database of a site in time zone `tz`, its ledger entries kept
    /// through `entries`.
    pub fn new(store: Store, tz: Tz, entries: Arc<EntryCodec>) -> Self {
        Self { store, tz, entries }
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
        f: F,
    ) -> Result<Written<T>, WriteError<TxError>>
    where
        F: FnOnce(&mut WriteTx<'_>, &EntryCodec) -> Result<T, TxError> + Send,
    {
        let mut last_sequence = None;
        let entries = &*self.entries;
        let written = self
            .store
            .write(Some(idempotent), |tx| {
                let value = f(tx, entries)?;
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

    /// Records a batch of movements atomically; answers their entries. With `dry_run` the
    /// batch is applied to the staged state only and discarded: `Err(Rejected(DryRunPassed))`
    /// means it would apply now; a request_id already recorded replays its answer as usual.
    pub async fn record_movements(
        &self,
        idempotent: Idempotent<'_, RecordedAnswer, TxError>,
        movements: &[Movement],
        dry_run: bool,
    ) -> Result<Written<RecordedAnswer>, WriteError<TxError>> {
        let tz = self.tz;
        let request_id = idempotent.request.request_id.as_str();
        self.write(idempotent, move |tx, entries| {
            let recorded = movements::apply_batch(tx, entries, tz, request_id, movements)?;
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
        let mut entries = Vec::new();
        for (first, length) in answer.runs() {
            let records = self.store.ledger_from(first, length as usize)?;
            let expected = first..first + length;
            if records.len() as u64 != length
                || !records.iter().map(|r| r.sequence).eq(expected.clone())
            {
                return Err(StoreError::Corrupt(format!(
                    "a kept answer cites ledger entries {}..={} the ledger does not hold",
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

    /// Reserves stock for an order (FEFO or FIFO), all or nothing.
    pub async fn allocate(
        &self,
        idempotent: Idempotent<'_, Allocation, TxError>,
        command: &AllocateCommand,
    ) -> Result<Written<Allocation>, WriteError<TxError>> {
        let tz = self.tz;
        self.write(idempotent, move |tx, entries| {
            allocations::allocate(tx, entries, tz, command)
        })
        .await
    }

    /// Releases an order's active allocations, or the one named; answers those released.
    pub async fn release_allocation(
        &self,
        idempotent: Idempotent<'_, Vec<Allocation>, TxError>,
        order_id: &str,
        allocation_id: &str,
    ) -> Result<Written<Vec<Allocation>>, WriteError<TxError>> {
        let request_id = idempotent.request.request_id.as_str();
        self.write(idempotent, move |tx, entries| {
            allocations::release(tx, entries, request_id, order_id, allocation_id)
        })
        .await
    }

    /// Places a hold. See [`InventoryStore::hold_snapshot`] for the stock it covers.
    pub async fn place_hold(
        &self,
        idempotent: Idempotent<'_, Hold, TxError>,
        command: &PlaceHoldCommand,
    ) -> Result<Written<Hold>, WriteError<TxError>> {
        self.write(idempotent, move |tx, entries| {
            holds::place(tx, entries, command)
        })
        .await
    }

    /// Releases an active hold.
    pub async fn release_hold(
        &self,
        idempotent: Idempotent<'_, Hold, TxError>,
        hold_id: &str,
        reason: &str,
    ) -> Result<Written<Hold>, WriteError<TxError>> {
        let request_id = idempotent.request.request_id.as_str();
        self.write(idempotent, move |tx, entries| {
            holds::release(tx, entries, request_id, hold_id, reason)
        })
        .await
    }
}

/// Stages `entry` as the next ledger entry, setting its sequence.
fn append(tx: &mut WriteTx<'_>, entries: &EntryCodec, entry: &mut LedgerEntry) {
    tx.append_ledger(|sequence| {
        entry.sequence = sequence;
        entries.encode(entry)
    });
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
