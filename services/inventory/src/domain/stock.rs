//! The quantities of one position, stock levels as reported, and exact totals.

use chrono::NaiveDate;

use super::LotInfo;

/// The quantities of one position (sku, lot, zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// Physically present.
    pub on_hand: i64,
    /// Reserved by active allocations (never above on hand).
    pub allocated: i64,
    /// Incremented by every movement on the position; 0 before the first.
    pub version: u64,
}

impl Position {
    /// The held part: all of on hand while a hold covers the position.
    pub fn held(&self, held: bool) -> i64 {
        if held { self.on_hand.max(0) } else { 0 }
    }

    /// What can be allocated or issued: max(0, on_hand − allocated − held).
    pub fn available(&self, held: bool) -> i64 {
        self.on_hand
            .saturating_sub(self.allocated)
            .saturating_sub(self.held(held))
            .max(0)
    }
}

/// The stock of one position as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockLevel {
    /// The sku.
    pub sku: String,
    /// The lot with its stored attributes.
    pub lot: LotInfo,
    /// The zone.
    pub zone_id: String,
    /// The sku's base unit.
    pub unit: String,
    /// The position's quantities.
    pub position: Position,
    /// True when an active hold covers the position.
    pub held: bool,
    /// True when the lot is expired on the site's date.
    pub expired: bool,
    /// When the lot was first received here (UTC ms).
    pub first_received_ms: i64,
    /// When the position last moved (UTC ms).
    pub updated_ms: i64,
}

/// Sums of the quantities of positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StockTotals {
    /// Sum of on hand.
    pub on_hand: i64,
    /// Sum of allocated.
    pub allocated: i64,
    /// Sum of held.
    pub held: i64,
    /// Sum of available.
    pub available: i64,
}

/// Sums of positions computed exactly: in i128, so any number of positions adds up
/// without overflow, and [`TotalsSum::totals`] refuses a sum that does not fit in the i64
/// that reports it instead of saturating. (With [`super::MAX_QUANTITY`] per position, over
/// nine million full positions are needed to get there.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TotalsSum {
    on_hand: i128,
    allocated: i128,
    held: i128,
    available: i128,
}

impl TotalsSum {
    /// Adds a position, held or not.
    pub fn add(&mut self, position: &Position, held: bool) {
        self.on_hand += i128::from(position.on_hand);
        self.allocated += i128::from(position.allocated);
        self.held += i128::from(position.held(held));
        self.available += i128::from(position.available(held));
    }

    /// The totals; `Err((name, total))` names the first sum that does not fit in an i64.
    pub fn totals(&self) -> Result<StockTotals, (&'static str, i128)> {
        let fit = |name: &'static str, total: i128| i64::try_from(total).map_err(|_| (name, total));
        Ok(StockTotals {
            on_hand: fit("on_hand", self.on_hand)?,
            allocated: fit("allocated", self.allocated)?,
            held: fit("held", self.held)?,
            available: fit("available", self.available)?,
        })
    }
}

/// An exact sum of quantities that must fit in an i64 to be reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuantitySum(i128);

impl QuantitySum {
    /// Adds a quantity.
    pub fn add(&mut self, quantity: i64) {
        self.0 += i128::from(quantity);
    }

    /// The sum; `Err(total)` when it does not fit in an i64.
    pub fn total(self) -> Result<i64, i128> {
        i64::try_from(self.0).map_err(|_| self.0)
    }
}

/// A quantity in a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitQuantity {
    /// The base unit.
    pub unit: String,
    /// The quantity.
    pub quantity: i64,
}

/// The positions of one expiry bucket and unit, summed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpirySummary {
    /// The bucket.
    pub bucket: super::ExpiryBucket,
    /// The unit of the quantities.
    pub unit: String,
    /// The sums.
    pub totals: StockTotals,
    /// Distinct (sku, lot) pairs.
    pub lot_count: i64,
    /// Positions.
    pub position_count: i64,
}

/// The stock of one sku (GetStock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkuStock {
    /// The sku.
    pub sku: String,
    /// Its base unit.
    pub unit: String,
    /// Its positions, by expiry, lot and zone.
    pub levels: Vec<StockLevel>,
    /// The sums of the levels.
    pub totals: StockTotals,
}

/// One page of ListStock.
#[derive(Debug, Clone, Default)]
pub struct StockPage {
    /// The levels of the page.
    pub levels: Vec<StockLevel>,
    /// The relative key of the last level, when more follow.
    pub next_key: Option<Vec<u8>>,
    /// The expiry summary (when asked for).
    pub summary: Vec<ExpirySummary>,
    /// The site-local date the expiry figures are computed against.
    pub today: NaiveDate,
}
