//! Quarantine holds: their scope and state.

use coldchain_audit::Author;

use super::Reference;

/// The scope of a hold: every set part must match; empty parts match everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HoldScope {
    /// The zone, or empty.
    pub zone_id: String,
    /// The sku, or empty.
    pub sku: String,
    /// The lot (of `sku`), or empty.
    pub lot_id: String,
}

impl HoldScope {
    /// True when the hold covers the position (sku, lot, zone).
    pub fn covers(&self, sku: &str, lot_id: &str, zone_id: &str) -> bool {
        (self.zone_id.is_empty() || self.zone_id == zone_id)
            && (self.sku.is_empty() || self.sku == sku)
            && (self.lot_id.is_empty() || self.lot_id == lot_id)
    }

    /// True when no part is set (a hold on everything, which PlaceHold refuses).
    pub fn is_empty(&self) -> bool {
        self.zone_id.is_empty() && self.sku.is_empty() && self.lot_id.is_empty()
    }
}

/// True when any of `holds` covers the position.
pub fn is_held(holds: &[HoldScope], sku: &str, lot_id: &str, zone_id: &str) -> bool {
    holds.iter().any(|h| h.covers(sku, lot_id, zone_id))
}

/// A hold as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// `hold-<ledger sequence>`.
    pub hold_id: String,
    /// What it covers.
    pub scope: HoldScope,
    /// Why it was placed.
    pub reason: String,
    /// What caused it.
    pub reference: Option<Reference>,
    /// False once released.
    pub active: bool,
    /// When it was placed (UTC ms).
    pub placed_ms: i64,
    /// When it was released (UTC ms).
    pub released_ms: Option<i64>,
    /// Why it was released.
    pub release_reason: String,
    /// Who placed it (holds of earlier builds: [`Author::unknown`]).
    pub placed_by: Author,
    /// Who released it.
    pub released_by: Option<Author>,
    /// Stock it covers may be relocated where it still covers it.
    pub allow_relocation: bool,
}

/// The stock a hold covers now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HoldSnapshot {
    /// On hand in scope, per unit.
    pub quantities: Vec<super::UnitQuantity>,
    /// Positions with stock in scope.
    pub positions: i64,
}
