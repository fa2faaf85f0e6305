//! FindStock's arithmetic: a site's positions summed per zone, and the stock travelling in
//! the gateway's own transfers. Every total is summed exactly (in 128 bits) and refused
//! when it does not fit the contract's 64-bit field, never saturated into a false total.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use coldchain_network::{NetworkConfig, TemperatureClass};

use super::{Lot, SiteFailure, TotalTooLarge, Transfer, TransferState};

/// One position of a sku at a site, as the site's inventory reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    /// The lot.
    pub lot_id: String,
    /// The zone.
    pub zone_id: String,
    /// The lot's expiry.
    pub expiry: Option<NaiveDate>,
    /// On hand.
    pub on_hand: i64,
    /// Allocated.
    pub allocated: i64,
    /// Held.
    pub held: i64,
    /// Available.
    pub available: i64,
}

/// A sku's stock in one zone, summed over its lots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneTotals {
    /// The zone.
    pub zone_id: String,
    /// The zone's class, from the network file (`None`: the zone is not in the file).
    pub class: Option<TemperatureClass>,
    /// Sum of on hand.
    pub on_hand: i64,
    /// Sum of allocated.
    pub allocated: i64,
    /// Sum of held.
    pub held: i64,
    /// Sum of available.
    pub available: i64,
    /// The earliest expiry of the lots with stock on hand.
    pub earliest_expiry: Option<NaiveDate>,
    /// The lots with stock on hand.
    pub lot_count: i64,
}

/// A zone's sums while they are added up: exact, whatever the sites report.
struct ZoneSums<'a> {
    zone_id: &'a str,
    class: Option<TemperatureClass>,
    on_hand: i128,
    allocated: i128,
    held: i128,
    available: i128,
    earliest_expiry: Option<NaiveDate>,
    lot_count: i64,
}

impl ZoneSums<'_> {
    fn totals(self) -> Result<ZoneTotals, TotalTooLarge> {
        let subject = || format!("zone {:?}", self.zone_id);
        Ok(ZoneTotals {
            zone_id: self.zone_id.to_string(),
            class: self.class,
            on_hand: TotalTooLarge::fit(self.on_hand, "on_hand", subject)?,
            allocated: TotalTooLarge::fit(self.allocated, "allocated", subject)?,
            held: TotalTooLarge::fit(self.held, "held", subject)?,
            available: TotalTooLarge::fit(self.available, "available", subject)?,
            earliest_expiry: self.earliest_expiry,
            lot_count: self.lot_count,
        })
    }
}

/// Sums a site's positions per zone, keeping the zones of `class` (any when `None`) whose
/// rows pass `min_quantity`: with 0, every zone with stock on hand; above 0, zones with at
/// least that much available. Rows ordered by zone_id. Sums are exact; a kept row whose
/// sum does not fit in 64 bits is refused (the site's answer cannot be reported).
pub fn zone_totals(
    levels: &[Level],
    zone_class: impl Fn(&str) -> Option<TemperatureClass>,
    class: Option<TemperatureClass>,
    min_quantity: i64,
) -> Result<Vec<ZoneTotals>, TotalTooLarge> {
    let mut zones: BTreeMap<&str, ZoneSums<'_>> = BTreeMap::new();
    for level in levels {
        let zone_class_now = zone_class(&level.zone_id);
        if class.is_some() && zone_class_now != class {
            continue;
        }
        let row = zones.entry(&level.zone_id).or_insert_with(|| ZoneSums {
            zone_id: &level.zone_id,
            class: zone_class_now,
            on_hand: 0,
            allocated: 0,
            held: 0,
            available: 0,
            earliest_expiry: None,
            lot_count: 0,
        });
        row.on_hand += i128::from(level.on_hand);
        row.allocated += i128::from(level.allocated);
        row.held += i128::from(level.held);
        row.available += i128::from(level.available);
        if level.on_hand > 0 {
            row.lot_count += 1;
            if let Some(expiry) = level.expiry {
                row.earliest_expiry = Some(row.earliest_expiry.map_or(expiry, |e| e.min(expiry)));
            }
        }
    }
    zones
        .into_values()
        .filter(|row| {
            if min_quantity == 0 {
                row.on_hand > 0
            } else {
                row.available >= i128::from(min_quantity)
            }
        })
        .map(ZoneSums::totals)
        .collect()
}

/// One line of a transfer whose stock is between two sites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InTransit {
    /// The transfer.
    pub transfer_id: String,
    /// IN_TRANSIT or RECEIVING.
    pub state: TransferState,
    /// Where it left from.
    pub source_site_id: String,
    /// Where it goes.
    pub destination_site_id: String,
    /// The lot.
    pub lot_id: String,
    /// The lot's attributes from the source, once shipped.
    pub lot: Option<Lot>,
    /// The quantity travelling.
    pub quantity: i64,
    /// Its unit.
    pub unit: String,
    /// The train or route.
    pub train_or_route: String,
    /// When it left the source.
    pub shipped_ms: Option<i64>,
}

/// The lines of `transfers` (IN_TRANSIT or RECEIVING) carrying `sku` that concern
/// `site_ids` (as source or destination; all when empty) and whose source zone is of
/// `class` (any when `None`), ordered by shipped_at, then transfer_id.
pub fn in_transit(
    mut transfers: Vec<Transfer>,
    network: &NetworkConfig,
    sku: &str,
    class: Option<TemperatureClass>,
    site_ids: &[String],
) -> Vec<InTransit> {
    transfers.sort_by(|a, b| (a.shipped_ms, &a.transfer_id).cmp(&(b.shipped_ms, &b.transfer_id)));
    let involved = |t: &Transfer| {
        site_ids.is_empty()
            || site_ids.contains(&t.source_site_id)
            || site_ids.contains(&t.destination_site_id)
    };
    let mut out = Vec::new();
    for t in transfers.iter().filter(|t| involved(t)) {
        for line in t.lines.iter().filter(|l| l.sku == sku) {
            let line_class = network
                .site(&t.source_site_id)
                .and_then(|s| s.zone(&line.source_zone_id))
                .map(|z| z.class);
            if class.is_some() && line_class != class {
                continue;
            }
            out.push(InTransit {
                transfer_id: t.transfer_id.clone(),
                state: t.state,
                source_site_id: t.source_site_id.clone(),
                destination_site_id: t.destination_site_id.clone(),
                lot_id: line.lot_id.clone(),
                lot: line.lot.clone(),
                quantity: line.quantity,
                unit: line.unit.clone(),
                train_or_route: t.train_or_route.clone(),
                shipped_ms: t.shipped_ms,
            });
        }
    }
    out
}

/// The quantity on its way to each destination site, summed exactly; a site whose sum does
/// not fit in 64 bits gets the refusal instead.
pub fn inbound_totals(
    in_transit: &[InTransit],
    sku: &str,
) -> BTreeMap<String, Result<i64, TotalTooLarge>> {
    let mut sums: BTreeMap<&str, i128> = BTreeMap::new();
    for t in in_transit {
        *sums.entry(&t.destination_site_id).or_insert(0) += i128::from(t.quantity);
    }
    sums.into_iter()
        .map(|(site, total)| {
            let fitted = TotalTooLarge::fit(total, "inbound_in_transit", || {
                format!("sku {sku:?} travelling to site {site}")
            });
            (site.to_string(), fitted)
        })
        .collect()
}

/// The stock of one site that answered FindStock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteStock {
    /// The site.
    pub site_id: String,
    /// The sku's base unit at this site.
    pub unit: String,
    /// One row per zone passing the filters.
    pub zones: Vec<ZoneTotals>,
    /// The quantity on its way to this site.
    pub inbound_in_transit: i64,
}

/// FindStock's answer: the sites that answered, the stock in transit, the sites that did
/// not (or whose totals cannot be reported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockAnswer {
    /// The sku.
    pub sku: String,
    /// Per site that answered.
    pub sites: Vec<SiteStock>,
    /// The stock travelling in the gateway's transfers.
    pub in_transit: Vec<InTransit>,
    /// Per site that did not answer, or whose totals cannot be reported.
    pub failures: Vec<SiteFailure>,
}
