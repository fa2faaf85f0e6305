//! Persistence of one site's inventory on `coldchain_store`: the tables, their keys, and the
//! write closures that read current state, call the rules in [`crate::domain`] and stage the
//! changes with their ledger entries. No gRPC here; the responses are the protobuf messages
//! the store keeps for idempotent replay, and every ledger entry is stored as an encoded
//! `coldchain.inventory.v1.LedgerEntry`, so the change feed is a plain decode.
//!
//! Tables (one sled tree, see `coldchain_store::Table`):
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

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{Datelike, NaiveDate};
use chrono_tz::Tz;
use coldchain_proto::common::v1 as common;
use coldchain_proto::inventory::v1 as pb;
use coldchain_runtime::idempotency::Protobuf;
use coldchain_store::{
    Idempotent, KeyCodec, Prefix, RequestFingerprint, Store, StoreError, Table, WriteError,
    WriteTx, Written,
};
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::domain::{
    self, Candidate, DomainError, HoldScope, LotAttributes, Movement, MovementKind, PickState,
    Position, Reference, Strategy,
};

const SKUS: Table<String, SkuRecord> = Table::new("skus");
const LOTS: Table<(String, String), LotRecord> = Table::new("lots");
const POSITIONS: Table<(String, String, String), PositionRecord> = Table::new("positions");
const HOLDS: Table<String, HoldRecord> = Table::new("holds");
const ACTIVE_HOLDS: Table<String, ScopeRecord> = Table::new("active_holds");
const ALLOCATIONS: Table<String, AllocationRecord> = Table::new("allocations");
const ORDER_ALLOCATIONS: Table<(String, u64), String> = Table::new("order_allocations");
const TRANSFERS_IN: Table<(String, String, String), Vec<u8>> = Table::new("transfers_in");

const ALLOCATION_ACTIVE: i32 = pb::AllocationState::Active as i32;
const ALLOCATION_CONSUMED: i32 = pb::AllocationState::Consumed as i32;
const ALLOCATION_RELEASED: i32 = pb::AllocationState::Released as i32;

// ---------------------------------------------------------------------------------------------
// Records

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SkuRecord {
    unit: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LotRecord {
    expiry: i32,
    production: Option<i32>,
    origin: String,
    first_received_ms: i64,
}

impl LotRecord {
    fn new(attributes: &LotAttributes, now_ms: i64) -> Self {
        Self {
            expiry: domain::date_to_days(attributes.expiry),
            production: attributes.production.map(domain::date_to_days),
            origin: attributes.origin.clone(),
            first_received_ms: now_ms,
        }
    }

    fn attributes(&self) -> Result<LotAttributes, StoreError> {
        let bad = || StoreError::Corrupt("stored lot has an invalid date".into());
        Ok(LotAttributes {
            expiry: domain::date_from_days(self.expiry).ok_or_else(bad)?,
            production: match self.production {
                Some(days) => Some(domain::date_from_days(days).ok_or_else(bad)?),
                None => None,
            },
            origin: self.origin.clone(),
        })
    }

    fn info(&self, lot_id: &str) -> pb::LotInfo {
        pb::LotInfo {
            lot_id: lot_id.to_string(),
            expiry: domain::date_from_days(self.expiry).map(date_proto),
            production: self
                .production
                .and_then(domain::date_from_days)
                .map(date_proto),
            origin: self.origin.clone(),
        }
    }

    fn expiry(&self) -> NaiveDate {
        domain::date_from_days(self.expiry).unwrap_or(NaiveDate::MIN)
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct PositionRecord {
    on_hand: i64,
    allocated: i64,
    version: u64,
    updated_ms: i64,
}

impl PositionRecord {
    fn position(&self) -> Position {
        Position {
            on_hand: self.on_hand,
            allocated: self.allocated,
            version: self.version,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ReferenceRecord {
    kind: i32,
    id: String,
}

impl ReferenceRecord {
    fn from_domain(reference: &Option<Reference>) -> Option<Self> {
        reference.as_ref().map(|r| Self {
            kind: r.kind,
            id: r.id.clone(),
        })
    }

    fn proto(&self) -> common::Reference {
        common::Reference {
            kind: self.kind,
            id: self.id.clone(),
        }
    }
}

fn reference_proto(reference: &Option<Reference>) -> Option<common::Reference> {
    reference.as_ref().map(|r| common::Reference {
        kind: r.kind,
        id: r.id.clone(),
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct HoldRecord {
    hold_id: String,
    zone_id: String,
    sku: String,
    lot_id: String,
    reason: String,
    reference: Option<ReferenceRecord>,
    active: bool,
    placed_ms: i64,
    released_ms: Option<i64>,
    release_reason: String,
}

impl HoldRecord {
    fn proto(&self) -> pb::Hold {
        pb::Hold {
            hold_id: self.hold_id.clone(),
            zone_id: self.zone_id.clone(),
            sku: self.sku.clone(),
            lot_id: self.lot_id.clone(),
            reason: self.reason.clone(),
            reference: self.reference.as_ref().map(ReferenceRecord::proto),
            state: if self.active {
                pb::HoldState::Active as i32
            } else {
                pb::HoldState::Released as i32
            },
            placed_at: Some(timestamp(self.placed_ms)),
            released_at: self.released_ms.map(timestamp),
            release_reason: self.release_reason.clone(),
            held_quantities: Vec::new(),
            position_count: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ScopeRecord {
    zone_id: String,
    sku: String,
    lot_id: String,
}

impl ScopeRecord {
    fn scope(self) -> HoldScope {
        HoldScope {
            zone_id: self.zone_id,
            sku: self.sku,
            lot_id: self.lot_id,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PickRecord {
    lot_id: String,
    zone_id: String,
    expiry: i32,
    quantity: i64,
    consumed: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AllocationRecord {
    allocation_id: String,
    order_id: String,
    sku: String,
    unit: String,
    quantity: i64,
    strategy: i32,
    picks: Vec<PickRecord>,
    state: i32,
    created_ms: i64,
    closed_ms: Option<i64>,
}

impl AllocationRecord {
    fn pick_states(&self) -> Vec<PickState> {
        self.picks
            .iter()
            .map(|p| PickState {
                lot_id: p.lot_id.clone(),
                zone_id: p.zone_id.clone(),
                quantity: p.quantity,
                consumed: p.consumed,
            })
            .collect()
    }

    fn proto(&self) -> pb::Allocation {
        pb::Allocation {
            allocation_id: self.allocation_id.clone(),
            order_id: self.order_id.clone(),
            sku: self.sku.clone(),
            unit: self.unit.clone(),
            quantity: self.quantity,
            strategy: self.strategy,
            picks: self
                .picks
                .iter()
                .map(|p| pb::Pick {
                    lot_id: p.lot_id.clone(),
                    expiry: domain::date_from_days(p.expiry).map(date_proto),
                    zone_id: p.zone_id.clone(),
                    quantity: p.quantity,
                    consumed_quantity: p.consumed,
                })
                .collect(),
            state: self.state,
            created_at: Some(timestamp(self.created_ms)),
            closed_at: self.closed_ms.map(timestamp),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

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

// ---------------------------------------------------------------------------------------------
// Commands

/// AllocateStock, validated.
#[derive(Debug, Clone)]
pub struct AllocateCommand {
    /// The idempotency key.
    pub request_id: String,
    /// The order.
    pub order_id: String,
    /// The sku.
    pub sku: String,
    /// How much, > 0.
    pub quantity: i64,
    /// The unit guard; empty when not given.
    pub unit: String,
    /// Only this zone; empty for any.
    pub zone_id: String,
    /// The picking order.
    pub strategy: Strategy,
}

/// PlaceHold, validated.
#[derive(Debug, Clone)]
pub struct PlaceHoldCommand {
    /// The idempotency key.
    pub request_id: String,
    /// The scope (at least one part set; zone known to the site).
    pub scope: HoldScope,
    /// Why.
    pub reason: String,
    /// What caused it.
    pub reference: Option<Reference>,
}

/// The filters of ListStock, validated.
#[derive(Debug, Clone, Default)]
pub struct StockQuery {
    /// Only this sku (empty: any).
    pub sku: String,
    /// Only this zone (empty: any).
    pub zone_id: String,
    /// Only this lot (requires sku; empty: any).
    pub lot_id: String,
    /// Only lots expiring strictly before this date.
    pub expiring_before: Option<NaiveDate>,
    /// Also positions with nothing on hand or allocated.
    pub include_empty: bool,
}

/// One page of ListStock.
#[derive(Debug, Clone, Default)]
pub struct StockPage {
    /// The levels of the page.
    pub levels: Vec<pb::StockLevel>,
    /// The relative key of the last level, when more follow.
    pub next_key: Option<Vec<u8>>,
    /// The expiry summary (when asked for).
    pub summary: Vec<pb::ExpiryBucketSummary>,
    /// The site-local date the expiry figures are computed against.
    pub today: NaiveDate,
}

// ---------------------------------------------------------------------------------------------
// The store

/// One site's inventory database.
#[derive(Clone)]
pub struct InventoryStore {
    store: Store,
    tz: Tz,
}

impl InventoryStore {
    /// Wraps an opened database of a site in time zone `tz`.
    pub fn new(store: Store, tz: Tz) -> Self {
        Self { store, tz }
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
        request: &RequestFingerprint,
        f: F,
    ) -> Result<Written<T>, WriteError<TxError>>
    where
        T: Message + Default,
        F: FnOnce(&mut WriteTx<'_>) -> Result<T, TxError> + Send,
    {
        let mut last_sequence = None;
        let written = self
            .store
            .write(Some(Idempotent::new(request, &Protobuf)), |tx| {
                let value = f(tx)?;
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

    /// Records a batch of movements atomically. With `dry_run` the batch is applied to the
    /// staged state only and discarded: `Err(Rejected(DryRunPassed))` means it would apply
    /// now; a request_id already recorded replays its response as usual.
    pub async fn record_movements(
        &self,
        request: &RequestFingerprint,
        movements: &[Movement],
        dry_run: bool,
    ) -> Result<Written<pb::RecordMovementsResponse>, WriteError<TxError>> {
        let tz = self.tz;
        let request_id = request.request_id.as_str();
        self.write(request, move |tx| {
            let response = apply_batch(tx, tz, request_id, movements)?;
            if dry_run {
                Err(TxError::DryRunPassed)
            } else {
                Ok(response)
            }
        })
        .await
    }

    /// Reserves stock for an order (FEFO or FIFO), all or nothing.
    pub async fn allocate(
        &self,
        request: &RequestFingerprint,
        command: &AllocateCommand,
    ) -> Result<Written<pb::Allocation>, WriteError<TxError>> {
        let tz = self.tz;
        self.write(request, move |tx| allocate(tx, tz, command))
            .await
    }

    /// Releases an order's active allocations, or the one named.
    pub async fn release_allocation(
        &self,
        request: &RequestFingerprint,
        order_id: &str,
        allocation_id: &str,
    ) -> Result<Written<pb::ReleaseAllocationResponse>, WriteError<TxError>> {
        let request_id = request.request_id.as_str();
        self.write(request, move |tx| {
            release_allocation(tx, request_id, order_id, allocation_id)
        })
        .await
    }

    /// Places a hold. The response has no quantities: see [`InventoryStore::hold_snapshot`].
    pub async fn place_hold(
        &self,
        request: &RequestFingerprint,
        command: &PlaceHoldCommand,
    ) -> Result<Written<pb::Hold>, WriteError<TxError>> {
        self.write(request, move |tx| place_hold(tx, command)).await
    }

    /// Releases an active hold.
    pub async fn release_hold(
        &self,
        request: &RequestFingerprint,
        hold_id: &str,
        reason: &str,
    ) -> Result<Written<pb::Hold>, WriteError<TxError>> {
        let request_id = request.request_id.as_str();
        self.write(request, move |tx| {
            release_hold(tx, request_id, hold_id, reason)
        })
        .await
    }

    /// The on-hand stock in a hold's scope now, per unit, and the number of positions with
    /// stock in scope.
    pub fn hold_snapshot(
        &self,
        scope: &HoldScope,
    ) -> Result<(Vec<pb::UnitQuantity>, i64), StoreError> {
        let mut prefix = Prefix::new();
        if !scope.sku.is_empty() {
            prefix = prefix.str(&scope.sku);
            if !scope.lot_id.is_empty() {
                prefix = prefix.str(&scope.lot_id);
            }
        }
        let mut units: HashMap<String, String> = HashMap::new();
        let mut sums: BTreeMap<String, i64> = BTreeMap::new();
        let mut count = 0i64;
        for entry in self.store.scan_prefix(&POSITIONS, prefix.as_bytes()) {
            let ((sku, lot_id, zone_id), record) = entry?;
            if record.on_hand <= 0 || !scope.covers(&sku, &lot_id, &zone_id) {
                continue;
            }
            let unit = match units.get(&sku) {
                Some(unit) => unit.clone(),
                None => {
                    let unit = self
                        .store
                        .get(&SKUS, &sku)?
                        .map(|s| s.unit)
                        .unwrap_or_default();
                    units.insert(sku.clone(), unit.clone());
                    unit
                }
            };
            let sum = sums.entry(unit).or_insert(0);
            *sum = sum.saturating_add(record.on_hand);
            count += 1;
        }
        Ok((
            sums.into_iter()
                .map(|(unit, quantity)| pb::UnitQuantity { unit, quantity })
                .collect(),
            count,
        ))
    }

    fn active_holds(&self) -> Result<Vec<HoldScope>, StoreError> {
        self.store
            .scan_prefix(&ACTIVE_HOLDS, &[])
            .map(|entry| entry.map(|(_, scope)| scope.scope()))
            .collect()
    }

    /// The positions of one sku (optionally one lot and/or zone), with totals. NOT_FOUND
    /// for a sku without stock record, or a named lot without one.
    pub fn get_stock(
        &self,
        sku: &str,
        lot_id: &str,
        zone_id: &str,
    ) -> Result<pb::GetStockResponse, TxError> {
        let sku_record =
            self.store
                .get(&SKUS, &sku.to_string())?
                .ok_or_else(|| DomainError::UnknownSku {
                    sku: sku.to_string(),
                })?;
        if !lot_id.is_empty()
            && self
                .store
                .get(&LOTS, &(sku.to_string(), lot_id.to_string()))?
                .is_none()
        {
            return Err(DomainError::UnknownLot {
                sku: sku.to_string(),
                lot_id: lot_id.to_string(),
            }
            .into());
        }
        let today = self.today();
        let holds = self.active_holds()?;
        let mut prefix = Prefix::new().str(sku);
        if !lot_id.is_empty() {
            prefix = prefix.str(lot_id);
        }
        let mut lots: HashMap<String, LotRecord> = HashMap::new();
        let mut rows = Vec::new();
        for entry in self.store.scan_prefix(&POSITIONS, prefix.as_bytes()) {
            let ((sku, lot, zone), record) = entry?;
            if !zone_id.is_empty() && zone != zone_id {
                continue;
            }
            let lot_record = match lots.get(&lot) {
                Some(l) => l.clone(),
                None => {
                    let l = self
                        .store
                        .get(&LOTS, &(sku.clone(), lot.clone()))?
                        .ok_or_else(|| {
                            StoreError::Corrupt(format!("position of unknown lot {lot:?}"))
                        })?;
                    lots.insert(lot.clone(), l.clone());
                    l
                }
            };
            let held = domain::is_held(&holds, &sku, &lot, &zone);
            rows.push((
                lot_record.expiry(),
                level(
                    &sku,
                    &lot,
                    &zone,
                    &record,
                    &lot_record,
                    &sku_record.unit,
                    held,
                    today,
                ),
            ));
        }
        rows.sort_by(|(ea, a), (eb, b)| {
            ea.cmp(eb)
                .then_with(|| lot_of(a).cmp(lot_of(b)))
                .then_with(|| a.zone_id.cmp(&b.zone_id))
        });
        let levels: Vec<pb::StockLevel> = rows.into_iter().map(|(_, l)| l).collect();
        let totals = totals(&levels);
        Ok(pb::GetStockResponse {
            sku: sku.to_string(),
            unit: sku_record.unit,
            levels,
            totals: Some(totals),
        })
    }

    /// One page of positions in (sku, lot, zone) order after the relative key `after`.
    pub fn list_stock(
        &self,
        query: &StockQuery,
        page_size: usize,
        after: Option<&[u8]>,
        summarize: bool,
    ) -> Result<StockPage, TxError> {
        let today = self.today();
        let holds = self.active_holds()?;
        let mut prefix = Prefix::new();
        if !query.sku.is_empty() {
            prefix = prefix.str(&query.sku);
            if !query.lot_id.is_empty() {
                prefix = prefix.str(&query.lot_id);
            }
        }
        let mut cache = Lookup::new(&self.store);
        let mut levels = Vec::new();
        let mut next_key = None;
        let mut last_key: Option<Vec<u8>> = None;
        for entry in self.store.scan_after(&POSITIONS, prefix.as_bytes(), after) {
            let (key, record) = entry?;
            let (sku, lot, zone) = &key;
            if !query.zone_id.is_empty() && *zone != query.zone_id {
                continue;
            }
            if !query.include_empty && record.on_hand == 0 && record.allocated == 0 {
                continue;
            }
            let lot_record = cache.lot(sku, lot)?;
            if let Some(before) = query.expiring_before
                && lot_record.expiry() >= before
            {
                continue;
            }
            if levels.len() == page_size {
                // Another match follows the full page: hand out a token.
                next_key = last_key.take();
                break;
            }
            let unit = cache.unit(sku)?;
            let held = domain::is_held(&holds, sku, lot, zone);
            levels.push(level(
                sku,
                lot,
                zone,
                &record,
                &lot_record,
                &unit,
                held,
                today,
            ));
            last_key = Some(key.encode());
        }
        let summary = if summarize {
            self.summarize(query, &prefix, &holds, today, &mut cache)?
        } else {
            Vec::new()
        };
        Ok(StockPage {
            levels,
            next_key,
            summary,
            today,
        })
    }

    fn summarize(
        &self,
        query: &StockQuery,
        prefix: &Prefix,
        holds: &[HoldScope],
        today: NaiveDate,
        cache: &mut Lookup<'_>,
    ) -> Result<Vec<pb::ExpiryBucketSummary>, TxError> {
        #[derive(Default)]
        struct Row {
            totals: pb::StockTotals,
            lots: BTreeSet<(String, String)>,
            positions: i64,
        }
        let mut rows: BTreeMap<(domain::ExpiryBucket, String), Row> = BTreeMap::new();
        for entry in self.store.scan_prefix(&POSITIONS, prefix.as_bytes()) {
            let ((sku, lot, zone), record) = entry?;
            if record.on_hand <= 0 || (!query.zone_id.is_empty() && zone != query.zone_id) {
                continue;
            }
            let lot_record = cache.lot(&sku, &lot)?;
            let expiry = lot_record.expiry();
            if let Some(before) = query.expiring_before
                && expiry >= before
            {
                continue;
            }
            let unit = cache.unit(&sku)?;
            let held = domain::is_held(holds, &sku, &lot, &zone);
            let position = record.position();
            let row = rows
                .entry((domain::expiry_bucket(expiry, today), unit))
                .or_default();
            add_to_totals(&mut row.totals, &position, held);
            row.lots.insert((sku, lot));
            row.positions += 1;
        }
        Ok(rows
            .into_iter()
            .map(|((bucket, unit), row)| pb::ExpiryBucketSummary {
                bucket: bucket.proto(),
                unit,
                on_hand: row.totals.on_hand,
                allocated: row.totals.allocated,
                held: row.totals.held,
                available: row.totals.available,
                lot_count: row.lots.len() as i64,
                position_count: row.positions,
            })
            .collect())
    }

    /// True when the sku has a stock record.
    pub fn sku_exists(&self, sku: &str) -> Result<bool, StoreError> {
        Ok(self.store.get(&SKUS, &sku.to_string())?.is_some())
    }
}

/// Read-side caches of lots and units for one scan.
struct Lookup<'a> {
    store: &'a Store,
    lots: HashMap<(String, String), LotRecord>,
    units: HashMap<String, String>,
}

impl<'a> Lookup<'a> {
    fn new(store: &'a Store) -> Self {
        Self {
            store,
            lots: HashMap::new(),
            units: HashMap::new(),
        }
    }

    fn lot(&mut self, sku: &str, lot: &str) -> Result<LotRecord, StoreError> {
        let key = (sku.to_string(), lot.to_string());
        if let Some(record) = self.lots.get(&key) {
            return Ok(record.clone());
        }
        let record = self.store.get(&LOTS, &key)?.ok_or_else(|| {
            StoreError::Corrupt(format!("position of unknown lot {lot:?} of sku {sku:?}"))
        })?;
        self.lots.insert(key, record.clone());
        Ok(record)
    }

    fn unit(&mut self, sku: &str) -> Result<String, StoreError> {
        if let Some(unit) = self.units.get(sku) {
            return Ok(unit.clone());
        }
        let unit = self
            .store
            .get(&SKUS, &sku.to_string())?
            .map(|s| s.unit)
            .ok_or_else(|| StoreError::Corrupt(format!("position of unknown sku {sku:?}")))?;
        self.units.insert(sku.to_string(), unit.clone());
        Ok(unit)
    }
}

fn lot_of(level: &pb::StockLevel) -> &str {
    level.lot.as_ref().map_or("", |l| l.lot_id.as_str())
}

#[allow(clippy::too_many_arguments)]
fn level(
    sku: &str,
    lot_id: &str,
    zone_id: &str,
    record: &PositionRecord,
    lot: &LotRecord,
    unit: &str,
    held: bool,
    today: NaiveDate,
) -> pb::StockLevel {
    let position = record.position();
    pb::StockLevel {
        sku: sku.to_string(),
        lot: Some(lot.info(lot_id)),
        zone_id: zone_id.to_string(),
        unit: unit.to_string(),
        on_hand: position.on_hand,
        allocated: position.allocated,
        held: position.held(held),
        available: position.available(held),
        version: position.version,
        expired: domain::is_expired(lot.expiry(), today),
        first_received_at: Some(timestamp(lot.first_received_ms)),
        updated_at: Some(timestamp(record.updated_ms)),
    }
}

fn add_to_totals(totals: &mut pb::StockTotals, position: &Position, held: bool) {
    totals.on_hand = totals.on_hand.saturating_add(position.on_hand);
    totals.allocated = totals.allocated.saturating_add(position.allocated);
    totals.held = totals.held.saturating_add(position.held(held));
    totals.available = totals.available.saturating_add(position.available(held));
}

fn totals(levels: &[pb::StockLevel]) -> pb::StockTotals {
    let mut totals = pb::StockTotals::default();
    for l in levels {
        totals.on_hand = totals.on_hand.saturating_add(l.on_hand);
        totals.allocated = totals.allocated.saturating_add(l.allocated);
        totals.held = totals.held.saturating_add(l.held);
        totals.available = totals.available.saturating_add(l.available);
    }
    totals
}

/// A UTC instant in ms as a protobuf timestamp.
pub fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A calendar date as a protobuf date.
pub fn date_proto(date: NaiveDate) -> common::Date {
    common::Date {
        year: date.year(),
        month: date.month() as i32,
        day: date.day() as i32,
    }
}

/// Stages `entry` as the next ledger entry, setting its sequence.
fn append(tx: &mut WriteTx<'_>, entry: &mut pb::LedgerEntry) {
    tx.append_ledger(|sequence| {
        entry.sequence = sequence;
        entry.encode_to_vec()
    });
}

fn load_holds(tx: &WriteTx<'_>) -> Result<Vec<HoldScope>, StoreError> {
    Ok(tx
        .scan_prefix(&ACTIVE_HOLDS, &[])?
        .into_iter()
        .map(|(_, scope)| scope.scope())
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Write closures

fn apply_batch(
    tx: &mut WriteTx<'_>,
    tz: Tz,
    request_id: &str,
    movements: &[Movement],
) -> Result<pb::RecordMovementsResponse, TxError> {
    let now = tx.now_millis();
    let today = domain::local_date(now, &tz);
    let mut holds: Option<Vec<HoldScope>> = None;
    let mut entries = Vec::with_capacity(movements.len());
    for (index, movement) in movements.iter().enumerate() {
        let entry =
            apply_one(tx, movement, now, today, request_id, &mut holds).map_err(|e| match e {
                TxError::Domain(error) => TxError::Movement { index, error },
                other => other,
            })?;
        entries.push(entry);
    }
    Ok(pb::RecordMovementsResponse { entries })
}

fn apply_one(
    tx: &mut WriteTx<'_>,
    m: &Movement,
    now: i64,
    today: NaiveDate,
    request_id: &str,
    holds: &mut Option<Vec<HoldScope>>,
) -> Result<pb::LedgerEntry, TxError> {
    let transfer_key = (m.kind == MovementKind::TransferIn)
        .then(|| (m.transfer_id.clone(), m.sku.clone(), m.lot.lot_id.clone()));
    if let Some(key) = &transfer_key
        && let Some(bytes) = tx.get(&TRANSFERS_IN, key)?
    {
        // Already received: record nothing, answer the original entry.
        return pb::LedgerEntry::decode(bytes.as_slice())
            .map_err(|e| StoreError::Corrupt(format!("stored transfer entry: {e}")).into());
    }

    let sku_key = m.sku.clone();
    match tx.get(&SKUS, &sku_key)? {
        Some(record) if record.unit != m.unit => {
            return Err(DomainError::UnitMismatch {
                sku: m.sku.clone(),
                expected: record.unit,
                given: m.unit.clone(),
            }
            .into());
        }
        Some(_) => {}
        None if m.kind.is_inbound() => tx.put(
            &SKUS,
            &sku_key,
            &SkuRecord {
                unit: m.unit.clone(),
            },
        )?,
        None => return Err(DomainError::UnknownSku { sku: m.sku.clone() }.into()),
    }

    let lot_key = (m.sku.clone(), m.lot.lot_id.clone());
    let (lot, attributes) = match tx.get(&LOTS, &lot_key)? {
        Some(record) => {
            let attributes = record.attributes()?;
            m.lot
                .check_against(&attributes)
                .map_err(|conflict| DomainError::LotConflict {
                    sku: m.sku.clone(),
                    lot_id: m.lot.lot_id.clone(),
                    conflict,
                })?;
            (record, attributes)
        }
        None if m.kind.is_inbound() => {
            let attributes = m
                .lot
                .new_attributes()
                .ok_or_else(|| DomainError::MissingExpiry {
                    sku: m.sku.clone(),
                    lot_id: m.lot.lot_id.clone(),
                })?;
            let record = LotRecord::new(&attributes, now);
            tx.put(&LOTS, &lot_key, &record)?;
            (record, attributes)
        }
        None => {
            return Err(DomainError::UnknownLot {
                sku: m.sku.clone(),
                lot_id: m.lot.lot_id.clone(),
            }
            .into());
        }
    };
    if m.kind.is_inbound() && domain::is_expired(attributes.expiry, today) {
        return Err(DomainError::ExpiredLot {
            sku: m.sku.clone(),
            lot_id: m.lot.lot_id.clone(),
            expiry: attributes.expiry,
            today,
        }
        .into());
    }

    let position_key = (m.sku.clone(), m.lot.lot_id.clone(), m.zone_id.clone());
    let stored = tx.get(&POSITIONS, &position_key)?;
    if stored.is_none() && m.kind.is_outbound() {
        return Err(DomainError::UnknownPosition {
            sku: m.sku.clone(),
            lot_id: m.lot.lot_id.clone(),
            zone_id: m.zone_id.clone(),
        }
        .into());
    }
    let record = stored.unwrap_or_default();
    let held = if m.kind.is_outbound() {
        if holds.is_none() {
            *holds = Some(load_holds(tx)?);
        }
        holds
            .as_deref()
            .is_some_and(|h| domain::is_held(h, &m.sku, &m.lot.lot_id, &m.zone_id))
    } else {
        false
    };

    // An issue citing an order first consumes that order's allocations on this position.
    let mut order_allocations = Vec::new();
    let mut reserved = 0i64;
    if m.kind == MovementKind::Issue && !m.order_id.is_empty() {
        let prefix = Prefix::new().str(&m.order_id);
        for (_, allocation_id) in tx.scan_prefix(&ORDER_ALLOCATIONS, prefix.as_bytes())? {
            if let Some(allocation) = tx.get(&ALLOCATIONS, &allocation_id)?
                && allocation.state == ALLOCATION_ACTIVE
                && allocation.sku == m.sku
            {
                let picks = allocation.pick_states();
                let on_position = domain::reserved_on(&picks, &m.lot.lot_id, &m.zone_id);
                if on_position > 0 {
                    reserved = reserved.saturating_add(on_position);
                    order_allocations.push((allocation, picks));
                }
            }
        }
    }

    let effect = domain::apply_movement(
        record.position(),
        m.kind,
        m.quantity,
        m.expected_version,
        held,
        reserved,
    )
    .map_err(|refusal| DomainError::Stock {
        sku: m.sku.clone(),
        lot_id: m.lot.lot_id.clone(),
        zone_id: m.zone_id.clone(),
        kind: m.kind,
        refusal,
    })?;

    let mut to_consume = effect.allocated_delta.saturating_neg();
    for (mut allocation, mut picks) in order_allocations {
        if to_consume <= 0 {
            break;
        }
        let taken = domain::consume(&mut picks, &m.lot.lot_id, &m.zone_id, to_consume);
        to_consume -= taken;
        for (record, state) in allocation.picks.iter_mut().zip(&picks) {
            record.consumed = state.consumed;
        }
        if domain::fully_consumed(&picks) {
            allocation.state = ALLOCATION_CONSUMED;
            allocation.closed_ms = Some(now);
        }
        tx.put(&ALLOCATIONS, &allocation.allocation_id.clone(), &allocation)?;
    }

    let after = PositionRecord {
        on_hand: effect.after.on_hand,
        allocated: effect.after.allocated,
        version: effect.after.version,
        updated_ms: now,
    };
    tx.put(&POSITIONS, &position_key, &after)?;

    let mut entry = pb::LedgerEntry {
        sequence: 0,
        recorded_at: Some(timestamp(now)),
        request_id: request_id.to_string(),
        kind: m.kind.proto(),
        sku: m.sku.clone(),
        lot: Some(lot.info(&m.lot.lot_id)),
        zone_id: m.zone_id.clone(),
        unit: m.unit.clone(),
        delta: effect.delta,
        balance_after: after.on_hand,
        allocated_delta: effect.allocated_delta,
        version: after.version,
        reason: m.reason.clone(),
        reference: reference_proto(&m.reference),
        other_site_id: m.other_site_id.clone(),
        transfer_id: m.transfer_id.clone(),
        booking_id: m.booking_id.clone(),
        order_id: m.order_id.clone(),
        allocation_id: String::new(),
        hold_id: String::new(),
    };
    append(tx, &mut entry);
    if let Some(key) = &transfer_key {
        tx.put(&TRANSFERS_IN, key, &entry.encode_to_vec())?;
    }
    Ok(entry)
}

fn allocate(
    tx: &mut WriteTx<'_>,
    tz: Tz,
    command: &AllocateCommand,
) -> Result<pb::Allocation, TxError> {
    let now = tx.now_millis();
    let today = domain::local_date(now, &tz);
    let sku = tx
        .get(&SKUS, &command.sku)?
        .ok_or_else(|| DomainError::UnknownSku {
            sku: command.sku.clone(),
        })?;
    if !command.unit.is_empty() && command.unit != sku.unit {
        return Err(DomainError::UnitMismatch {
            sku: command.sku.clone(),
            expected: sku.unit,
            given: command.unit.clone(),
        }
        .into());
    }
    let holds = load_holds(tx)?;
    let mut lots: HashMap<String, LotRecord> = HashMap::new();
    let mut candidates = Vec::new();
    let mut records = Vec::new();
    for ((sku_id, lot_id, zone_id), record) in
        tx.scan_prefix(&POSITIONS, Prefix::new().str(&command.sku).as_bytes())?
    {
        if !command.zone_id.is_empty() && zone_id != command.zone_id {
            continue;
        }
        let lot = match lots.get(&lot_id) {
            Some(lot) => lot.clone(),
            None => {
                let lot = tx
                    .get(&LOTS, &(sku_id.clone(), lot_id.clone()))?
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("position of unknown lot {lot_id:?}"))
                    })?;
                lots.insert(lot_id.clone(), lot.clone());
                lot
            }
        };
        let held = domain::is_held(&holds, &sku_id, &lot_id, &zone_id);
        candidates.push(Candidate {
            lot_id,
            zone_id,
            expiry: lot.expiry(),
            first_received_ms: lot.first_received_ms,
            available: record.position().available(held),
            held,
        });
        records.push((record, lot));
    }
    let picks = domain::pick(&candidates, command.quantity, command.strategy, today).map_err(
        |allocatable| DomainError::NotAllocatable {
            sku: command.sku.clone(),
            requested: command.quantity,
            allocatable,
        },
    )?;
    let first_sequence = tx.next_sequence();
    let allocation_id = format!("alloc-{first_sequence}");
    let mut pick_records = Vec::with_capacity(picks.len());
    for (index, quantity) in picks {
        let candidate = &candidates[index];
        let (record, lot) = &records[index];
        let mut after = *record;
        after.allocated = after
            .allocated
            .checked_add(quantity)
            .filter(|allocated| *allocated <= after.on_hand)
            .ok_or_else(|| StoreError::Corrupt("allocation beyond on hand".into()))?;
        let key = (
            command.sku.clone(),
            candidate.lot_id.clone(),
            candidate.zone_id.clone(),
        );
        tx.put(&POSITIONS, &key, &after)?;
        let mut entry = pb::LedgerEntry {
            recorded_at: Some(timestamp(now)),
            request_id: command.request_id.clone(),
            kind: pb::LedgerEntryKind::Allocate as i32,
            sku: command.sku.clone(),
            lot: Some(lot.info(&candidate.lot_id)),
            zone_id: candidate.zone_id.clone(),
            unit: sku.unit.clone(),
            delta: 0,
            balance_after: after.on_hand,
            allocated_delta: quantity,
            version: after.version,
            order_id: command.order_id.clone(),
            allocation_id: allocation_id.clone(),
            ..Default::default()
        };
        append(tx, &mut entry);
        pick_records.push(PickRecord {
            lot_id: candidate.lot_id.clone(),
            zone_id: candidate.zone_id.clone(),
            expiry: lot.expiry,
            quantity,
            consumed: 0,
        });
    }
    let allocation = AllocationRecord {
        allocation_id: allocation_id.clone(),
        order_id: command.order_id.clone(),
        sku: command.sku.clone(),
        unit: sku.unit,
        quantity: command.quantity,
        strategy: command.strategy.proto(),
        picks: pick_records,
        state: ALLOCATION_ACTIVE,
        created_ms: now,
        closed_ms: None,
    };
    tx.put(&ALLOCATIONS, &allocation_id, &allocation)?;
    tx.put(
        &ORDER_ALLOCATIONS,
        &(command.order_id.clone(), first_sequence),
        &allocation_id,
    )?;
    Ok(allocation.proto())
}

fn release_allocation(
    tx: &mut WriteTx<'_>,
    request_id: &str,
    order_id: &str,
    allocation_id: &str,
) -> Result<pb::ReleaseAllocationResponse, TxError> {
    let now = tx.now_millis();
    let ids: Vec<String> = tx
        .scan_prefix(&ORDER_ALLOCATIONS, Prefix::new().str(order_id).as_bytes())?
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    if ids.is_empty() {
        return Err(DomainError::UnknownOrder {
            order_id: order_id.to_string(),
        }
        .into());
    }
    let targets = if allocation_id.is_empty() {
        ids
    } else if ids.iter().any(|id| id == allocation_id) {
        vec![allocation_id.to_string()]
    } else {
        return Err(DomainError::UnknownAllocation {
            order_id: order_id.to_string(),
            allocation_id: allocation_id.to_string(),
        }
        .into());
    };
    let mut released = Vec::new();
    for id in targets {
        let mut allocation = tx.get(&ALLOCATIONS, &id)?.ok_or_else(|| {
            StoreError::Corrupt(format!("order index names missing allocation {id:?}"))
        })?;
        if allocation.state != ALLOCATION_ACTIVE {
            if allocation_id.is_empty() {
                continue;
            }
            return Err(DomainError::AllocationNotActive {
                allocation_id: id,
                state: if allocation.state == ALLOCATION_CONSUMED {
                    "consumed"
                } else {
                    "released"
                },
            }
            .into());
        }
        for pick in &allocation.picks {
            let remaining = (pick.quantity - pick.consumed).max(0);
            if remaining == 0 {
                continue;
            }
            let key = (
                allocation.sku.clone(),
                pick.lot_id.clone(),
                pick.zone_id.clone(),
            );
            let mut record = tx.get(&POSITIONS, &key)?.ok_or_else(|| {
                StoreError::Corrupt(format!("allocation {id:?} on a missing position"))
            })?;
            record.allocated = (record.allocated - remaining).max(0);
            tx.put(&POSITIONS, &key, &record)?;
            let lot = tx
                .get(&LOTS, &(allocation.sku.clone(), pick.lot_id.clone()))?
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("allocation {id:?} of a missing lot"))
                })?;
            let mut entry = pb::LedgerEntry {
                recorded_at: Some(timestamp(now)),
                request_id: request_id.to_string(),
                kind: pb::LedgerEntryKind::Deallocate as i32,
                sku: allocation.sku.clone(),
                lot: Some(lot.info(&pick.lot_id)),
                zone_id: pick.zone_id.clone(),
                unit: allocation.unit.clone(),
                delta: 0,
                balance_after: record.on_hand,
                allocated_delta: -remaining,
                version: record.version,
                order_id: order_id.to_string(),
                allocation_id: id.clone(),
                ..Default::default()
            };
            append(tx, &mut entry);
        }
        allocation.state = ALLOCATION_RELEASED;
        allocation.closed_ms = Some(now);
        tx.put(&ALLOCATIONS, &id, &allocation)?;
        released.push(allocation.proto());
    }
    Ok(pb::ReleaseAllocationResponse { released })
}

fn place_hold(tx: &mut WriteTx<'_>, command: &PlaceHoldCommand) -> Result<pb::Hold, TxError> {
    let now = tx.now_millis();
    let scope = &command.scope;
    if !scope.sku.is_empty() && tx.get(&SKUS, &scope.sku)?.is_none() {
        return Err(DomainError::UnknownSku {
            sku: scope.sku.clone(),
        }
        .into());
    }
    let lot = if scope.lot_id.is_empty() {
        None
    } else {
        Some(
            tx.get(&LOTS, &(scope.sku.clone(), scope.lot_id.clone()))?
                .ok_or_else(|| DomainError::UnknownLot {
                    sku: scope.sku.clone(),
                    lot_id: scope.lot_id.clone(),
                })?,
        )
    };
    let hold_id = format!("hold-{}", tx.next_sequence());
    let record = HoldRecord {
        hold_id: hold_id.clone(),
        zone_id: scope.zone_id.clone(),
        sku: scope.sku.clone(),
        lot_id: scope.lot_id.clone(),
        reason: command.reason.clone(),
        reference: ReferenceRecord::from_domain(&command.reference),
        active: true,
        placed_ms: now,
        released_ms: None,
        release_reason: String::new(),
    };
    tx.put(&HOLDS, &hold_id, &record)?;
    tx.put(
        &ACTIVE_HOLDS,
        &hold_id,
        &ScopeRecord {
            zone_id: scope.zone_id.clone(),
            sku: scope.sku.clone(),
            lot_id: scope.lot_id.clone(),
        },
    )?;
    let mut entry = hold_entry(&record, &command.request_id, lot.as_ref(), now);
    entry.kind = pb::LedgerEntryKind::HoldPlaced as i32;
    append(tx, &mut entry);
    Ok(record.proto())
}

fn release_hold(
    tx: &mut WriteTx<'_>,
    request_id: &str,
    hold_id: &str,
    reason: &str,
) -> Result<pb::Hold, TxError> {
    let now = tx.now_millis();
    let key = hold_id.to_string();
    let mut record = tx
        .get(&HOLDS, &key)?
        .ok_or_else(|| DomainError::UnknownHold {
            hold_id: key.clone(),
        })?;
    if !record.active {
        return Err(DomainError::HoldReleased { hold_id: key }.into());
    }
    record.active = false;
    record.released_ms = Some(now);
    record.release_reason = reason.to_string();
    tx.put(&HOLDS, &key, &record)?;
    tx.delete(&ACTIVE_HOLDS, &key);
    let lot = if record.lot_id.is_empty() {
        None
    } else {
        tx.get(&LOTS, &(record.sku.clone(), record.lot_id.clone()))?
    };
    let mut entry = hold_entry(&record, request_id, lot.as_ref(), now);
    entry.kind = pb::LedgerEntryKind::HoldReleased as i32;
    entry.reason = reason.to_string();
    append(tx, &mut entry);
    Ok(record.proto())
}

fn hold_entry(
    record: &HoldRecord,
    request_id: &str,
    lot: Option<&LotRecord>,
    now: i64,
) -> pb::LedgerEntry {
    pb::LedgerEntry {
        recorded_at: Some(timestamp(now)),
        request_id: request_id.to_string(),
        sku: record.sku.clone(),
        lot: lot.map(|l| l.info(&record.lot_id)),
        zone_id: record.zone_id.clone(),
        reason: record.reason.clone(),
        reference: record.reference.as_ref().map(ReferenceRecord::proto),
        hold_id: record.hold_id.clone(),
        ..Default::default()
    }
}
