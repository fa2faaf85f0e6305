//! Requests validated in form: what the use cases act on.

use chrono::NaiveDate;

use super::{HoldScope, Reference, Strategy};

/// AllocateStock.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// ReleaseAllocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseAllocationCommand {
    /// The order.
    pub order_id: String,
    /// Only this allocation; empty for every active one of the order.
    pub allocation_id: String,
}

/// PlaceHold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceHoldCommand {
    /// The idempotency key.
    pub request_id: String,
    /// The scope (at least one part set).
    pub scope: HoldScope,
    /// Why.
    pub reason: String,
    /// What caused it.
    pub reference: Option<Reference>,
    /// Stock it covers may be relocated where it still covers it.
    pub allow_relocation: bool,
}

/// ReleaseHold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseHoldCommand {
    /// The hold.
    pub hold_id: String,
    /// Why.
    pub reason: String,
}

/// GetStock: one sku, optionally narrowed to a lot and/or a zone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StockRef {
    /// The sku.
    pub sku: String,
    /// Only this lot (empty: any).
    pub lot_id: String,
    /// Only this zone (empty: any).
    pub zone_id: String,
}

/// The filters of ListStock.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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

/// ListExpiring's filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiringQuery {
    /// Lots expiring on or before the site's today plus this many days (expired included).
    pub within_days: u32,
    /// Only this zone (empty: any).
    pub zone_id: String,
}

/// The most days ListExpiring looks ahead: ten years.
pub const MAX_EXPIRING_DAYS: u32 = 3650;
