//! Allocation: strategies, FEFO/FIFO picking, consumption of picks, and allocations as
//! kept.

use std::cmp::Ordering;

use chrono::NaiveDate;

use super::is_expired;

/// How AllocateStock orders candidate positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Earliest expiry first; ties by first receipt, lot id, zone id.
    Fefo,
    /// Earliest first receipt first; ties by expiry, lot id, zone id.
    Fifo,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The lot.
    pub lot_id: String,
    /// The zone.
    pub zone_id: String,
    /// The lot's expiry.
    pub expiry: NaiveDate,
    /// When the lot was first received at the site (ms).
    pub first_received_ms: i64,
    /// The position's available quantity (holds already applied).
    pub available: i64,
    /// True when a hold covers the position.
    pub held: bool,
}

/// True when a candidate may be picked on `today`.
pub fn is_allocatable(candidate: &Candidate, today: NaiveDate) -> bool {
    !candidate.held && !is_expired(candidate.expiry, today) && candidate.available > 0
}

/// The picking order of two candidates under a strategy.
pub fn picking_order(a: &Candidate, b: &Candidate, strategy: Strategy) -> Ordering {
    let tail = |a: &Candidate, b: &Candidate| {
        a.lot_id
            .cmp(&b.lot_id)
            .then_with(|| a.zone_id.cmp(&b.zone_id))
    };
    match strategy {
        Strategy::Fefo => a
            .expiry
            .cmp(&b.expiry)
            .then(a.first_received_ms.cmp(&b.first_received_ms))
            .then_with(|| tail(a, b)),
        Strategy::Fifo => a
            .first_received_ms
            .cmp(&b.first_received_ms)
            .then(a.expiry.cmp(&b.expiry))
            .then_with(|| tail(a, b)),
    }
}

/// Picks `quantity` from `candidates` in strategy order, skipping held, expired and empty
/// positions, splitting across positions. Answers `(candidate index, quantity)` in picking
/// order, or `Err(allocatable)`: the most that could have been allocated (exact: it is
/// below `quantity`, so it cannot overflow). A quantity ≤ 0 picks nothing: `Err(0)`.
pub fn pick(
    candidates: &[Candidate],
    quantity: i64,
    strategy: Strategy,
    today: NaiveDate,
) -> Result<Vec<(usize, i64)>, i64> {
    if quantity <= 0 {
        return Err(0);
    }
    let mut order: Vec<usize> = (0..candidates.len())
        .filter(|&i| is_allocatable(&candidates[i], today))
        .collect();
    order.sort_by(|&a, &b| picking_order(&candidates[a], &candidates[b], strategy));
    let mut picks = Vec::new();
    let mut remaining = quantity;
    for index in order {
        if remaining == 0 {
            break;
        }
        let take = remaining.min(candidates[index].available);
        picks.push((index, take));
        remaining -= take;
    }
    if remaining > 0 {
        // Every eligible position was taken whole: what they hold is quantity − remaining.
        return Err(quantity - remaining);
    }
    Ok(picks)
}

/// The reservation of one allocation on one position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickState {
    /// The lot.
    pub lot_id: String,
    /// The zone.
    pub zone_id: String,
    /// Reserved quantity.
    pub quantity: i64,
    /// Already issued.
    pub consumed: i64,
}

impl PickState {
    /// What is still reserved.
    pub fn remaining(&self) -> i64 {
        (self.quantity - self.consumed).max(0)
    }
}

/// What `picks` still reserve on (lot, zone).
pub fn reserved_on(picks: &[PickState], lot_id: &str, zone_id: &str) -> i64 {
    picks
        .iter()
        .filter(|p| p.lot_id == lot_id && p.zone_id == zone_id)
        .map(PickState::remaining)
        // Never reached: picks on one position reserve at most its allocated quantity
        // (≤ MAX_QUANTITY); apply_movement clamps the result to it anyway.
        .fold(0i64, i64::saturating_add)
}

/// Consumes up to `want` from the picks on (lot, zone); answers what was taken.
pub fn consume(picks: &mut [PickState], lot_id: &str, zone_id: &str, want: i64) -> i64 {
    let mut taken = 0;
    for pick in picks
        .iter_mut()
        .filter(|p| p.lot_id == lot_id && p.zone_id == zone_id)
    {
        let take = (want - taken).min(pick.remaining());
        if take > 0 {
            pick.consumed += take;
            taken += take;
        }
    }
    taken
}

/// True when every pick is fully consumed.
pub fn fully_consumed(picks: &[PickState]) -> bool {
    picks.iter().all(|p| p.remaining() == 0)
}

/// The state of an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AllocationState {
    /// Reserving stock.
    Active,
    /// Fully issued.
    Consumed,
    /// Released before being fully issued.
    Released,
}

impl AllocationState {
    /// Lowercase name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Consumed => "consumed",
            Self::Released => "released",
        }
    }
}

/// One pick of an allocation as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    /// The lot.
    pub lot_id: String,
    /// The lot's expiry (`None` only for unreadable stored dates).
    pub expiry: Option<NaiveDate>,
    /// The zone.
    pub zone_id: String,
    /// Reserved quantity.
    pub quantity: i64,
    /// Already issued.
    pub consumed: i64,
}

/// An allocation of stock to an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// `alloc-<first ledger sequence>`.
    pub allocation_id: String,
    /// The order.
    pub order_id: String,
    /// The sku.
    pub sku: String,
    /// The sku's base unit.
    pub unit: String,
    /// The quantity asked for.
    pub quantity: i64,
    /// The picking order used.
    pub strategy: Strategy,
    /// The picks, in picking order.
    pub picks: Vec<Pick>,
    /// Its state.
    pub state: AllocationState,
    /// When it was made (UTC ms).
    pub created_ms: i64,
    /// When it was consumed or released (UTC ms).
    pub closed_ms: Option<i64>,
}
