//! The reads: stock of a sku, pages of positions, the expiry summary and the stock a hold
//! covers. Every total is summed exactly and refused when it does not fit the response.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use coldchain_store::{KeyCodec, Prefix, Store, StoreError};

use super::tables::{ACTIVE_HOLDS, LOTS, LotRecord, POSITIONS, PositionRecord, SKUS};
use super::{InventoryStore, TxError};
use crate::domain::{
    self, DomainError, ExpiringQuery, ExpiryBucket, ExpirySummary, HoldScope, HoldSnapshot,
    QuantitySum, SkuStock, StockLevel, StockPage, StockQuery, TotalsSum, UnitQuantity,
};

/// The stock of one zone, summed over its positions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZoneTotals {
    /// On hand.
    pub on_hand: i128,
    /// Allocated to orders.
    pub allocated: i128,
    /// On hand under an active hold.
    pub held: i128,
}

impl InventoryStore {
    /// The on-hand stock in a hold's scope now, per unit, and the number of positions with
    /// stock in scope.
    pub fn hold_snapshot(&self, scope: &HoldScope) -> Result<HoldSnapshot, TxError> {
        let mut prefix = Prefix::new();
        if !scope.sku.is_empty() {
            prefix = prefix.str(&scope.sku);
            if !scope.lot_id.is_empty() {
                prefix = prefix.str(&scope.lot_id);
            }
        }
        let mut units: HashMap<String, String> = HashMap::new();
        let mut sums: BTreeMap<String, QuantitySum> = BTreeMap::new();
        let mut positions = 0i64;
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
            sums.entry(unit).or_default().add(record.on_hand);
            positions += 1;
        }
        let quantities = sums
            .into_iter()
            .map(|(unit, sum)| match sum.total() {
                Ok(quantity) => Ok(UnitQuantity { unit, quantity }),
                Err(total) => Err(DomainError::TotalTooLarge {
                    subject: format!("held quantity in unit {unit:?}"),
                    total,
                }),
            })
            .collect::<Result<_, _>>()?;
        Ok(HoldSnapshot {
            quantities,
            positions,
        })
    }

    /// The site's stock per zone: on hand, allocated, and on hand under a hold, summed over
    /// every position (whatever their units: a level for the eye, not an account). Reads
    /// every position: for the metrics sampler, not the request path.
    pub fn zone_totals(&self) -> Result<BTreeMap<String, ZoneTotals>, StoreError> {
        let holds = self.active_holds()?;
        let mut zones: BTreeMap<String, ZoneTotals> = BTreeMap::new();
        for entry in self.store.scan_prefix(&POSITIONS, &[]) {
            let ((sku, lot, zone), record) = entry?;
            let held = domain::is_held(&holds, &sku, &lot, &zone);
            let totals = zones.entry(zone).or_default();
            totals.on_hand += i128::from(record.on_hand);
            totals.allocated += i128::from(record.allocated);
            if held {
                totals.held += i128::from(record.on_hand);
            }
        }
        Ok(zones)
    }

    fn active_holds(&self) -> Result<Vec<HoldScope>, StoreError> {
        self.store
            .scan_prefix(&ACTIVE_HOLDS, &[])
            .map(|entry| entry.map(|(_, scope)| scope.scope()))
            .collect()
    }

    /// The positions of one sku (optionally one lot and/or zone), with totals. NOT_FOUND
    /// for a sku without stock record, or a named lot without one.
    pub fn get_stock(&self, sku: &str, lot_id: &str, zone_id: &str) -> Result<SkuStock, TxError> {
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
        let mut cache = Lookup::new(&self.store);
        let mut rows = Vec::new();
        for entry in self.store.scan_prefix(&POSITIONS, prefix.as_bytes()) {
            let ((sku, lot, zone), record) = entry?;
            if !zone_id.is_empty() && zone != zone_id {
                continue;
            }
            let lot_record = cache.lot(&sku, &lot)?;
            let held = domain::is_held(&holds, &sku, &lot, &zone);
            rows.push((
                lot_record.expiry(),
                level(
                    sku,
                    lot,
                    zone,
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
                .then_with(|| a.lot.lot_id.cmp(&b.lot.lot_id))
                .then_with(|| a.zone_id.cmp(&b.zone_id))
        });
        let levels: Vec<StockLevel> = rows.into_iter().map(|(_, l)| l).collect();
        let mut sum = TotalsSum::default();
        for l in &levels {
            sum.add(&l.position, l.held);
        }
        let totals = sum
            .totals()
            .map_err(|(name, total)| DomainError::TotalTooLarge {
                subject: format!("{name} of sku {sku:?}"),
                total,
            })?;
        Ok(SkuStock {
            sku: sku.to_string(),
            unit: sku_record.unit,
            levels,
            totals,
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
            let encoded = key.encode();
            let (sku, lot, zone) = key;
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
            last_key = Some(encoded);
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

    /// The positions with stock on hand whose lot expires on or before today plus
    /// `query.within_days` (site-local), earliest expiry first, then sku, lot, zone: one
    /// page after the relative key `after`. Reads every position: the page is cut from
    /// the site's whole expiring stock, sorted.
    pub fn expiring(
        &self,
        query: &ExpiringQuery,
        page_size: usize,
        after: Option<&[u8]>,
    ) -> Result<StockPage, TxError> {
        let today = self.today();
        let last_day = today
            .checked_add_days(chrono::Days::new(u64::from(query.within_days)))
            .unwrap_or(NaiveDate::MAX);
        let holds = self.active_holds()?;
        let mut cache = Lookup::new(&self.store);
        let mut rows: BTreeMap<Vec<u8>, StockLevel> = BTreeMap::new();
        for entry in self.store.scan_prefix(&POSITIONS, &[]) {
            let ((sku, lot, zone), record) = entry?;
            if record.on_hand <= 0 || (!query.zone_id.is_empty() && zone != query.zone_id) {
                continue;
            }
            let lot_record = cache.lot(&sku, &lot)?;
            let expiry = lot_record.expiry();
            if expiry > last_day {
                continue;
            }
            let key = (
                i64::from(domain::date_to_days(expiry)),
                sku.clone(),
                lot.clone(),
                zone.clone(),
            )
                .encode();
            if after.is_some_and(|after| key.as_slice() <= after) {
                continue;
            }
            let unit = cache.unit(&sku)?;
            let held = domain::is_held(&holds, &sku, &lot, &zone);
            let level = level(sku, lot, zone, &record, &lot_record, &unit, held, today);
            rows.insert(key, level);
        }
        let more = rows.len() > page_size;
        let mut levels = Vec::with_capacity(page_size.min(rows.len()));
        let mut last_key = None;
        for (key, level) in rows.into_iter().take(page_size) {
            levels.push(level);
            last_key = Some(key);
        }
        Ok(StockPage {
            levels,
            next_key: if more { last_key } else { None },
            summary: Vec::new(),
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
    ) -> Result<Vec<ExpirySummary>, TxError> {
        #[derive(Default)]
        struct Row {
            totals: TotalsSum,
            lots: BTreeSet<(String, String)>,
            positions: i64,
        }
        let mut rows: BTreeMap<(ExpiryBucket, String), Row> = BTreeMap::new();
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
            let row = rows
                .entry((domain::expiry_bucket(expiry, today), unit))
                .or_default();
            row.totals.add(&record.position(), held);
            row.lots.insert((sku, lot));
            row.positions += 1;
        }
        rows.into_iter()
            .map(|((bucket, unit), row)| {
                let totals =
                    row.totals
                        .totals()
                        .map_err(|(name, total)| DomainError::TotalTooLarge {
                            subject: format!("{name} of expiry bucket {bucket:?} in unit {unit:?}"),
                            total,
                        })?;
                Ok(ExpirySummary {
                    bucket,
                    unit,
                    totals,
                    lot_count: row.lots.len() as i64,
                    position_count: row.positions,
                })
            })
            .collect()
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

#[allow(clippy::too_many_arguments)]
fn level(
    sku: String,
    lot_id: String,
    zone_id: String,
    record: &PositionRecord,
    lot: &LotRecord,
    unit: &str,
    held: bool,
    today: NaiveDate,
) -> StockLevel {
    StockLevel {
        lot: lot.info(&lot_id),
        sku,
        zone_id,
        unit: unit.to_string(),
        position: record.position(),
        held,
        expired: domain::is_expired(lot.expiry(), today),
        first_received_ms: lot.first_received_ms,
        updated_ms: record.updated_ms,
    }
}
