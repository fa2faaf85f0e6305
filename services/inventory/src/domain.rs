//! The inventory rules, pure: movement arithmetic on a position, lot attributes, expiry,
//! holds, FEFO/FIFO picking, allocation consumption and expiry buckets. No I/O, no tonic,
//! no sled: every function here is a computation on values, tested by unit and property
//! tests below.
//!
//! Quantities are `i64` in the sku's base unit. Every sum uses checked arithmetic: an
//! overflow is a refusal, never a panic.

use std::cmp::Ordering;
use std::fmt;

use chrono::{Datelike, NaiveDate, TimeZone};

/// Most movements in one `RecordMovements` batch.
pub const MAX_MOVEMENTS: usize = 1000;
/// Longest sku base unit, in bytes.
pub const MAX_UNIT_LEN: usize = 16;
/// Longest lot origin, in bytes.
pub const MAX_ORIGIN_LEN: usize = 256;
/// Longest reason, in bytes.
pub const MAX_REASON_LEN: usize = 512;

// ---------------------------------------------------------------------------------------------
// Kinds and strategies

/// What a movement does to a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MovementKind {
    /// Goods received from outside the network.
    Receipt,
    /// Goods leaving the site.
    Issue,
    /// A signed correction of on hand.
    Adjustment,
    /// Goods leaving on a corridor transfer.
    TransferOut,
    /// Goods arriving on a corridor transfer.
    TransferIn,
    /// An absolute count, compare-and-set on the position version.
    Count,
}

impl MovementKind {
    /// The kind of a protobuf `MovementKind` value (1..=6); `None` for unset or unknown.
    pub fn from_proto(value: i32) -> Option<Self> {
        Some(match value {
            1 => Self::Receipt,
            2 => Self::Issue,
            3 => Self::Adjustment,
            4 => Self::TransferOut,
            5 => Self::TransferIn,
            6 => Self::Count,
            _ => return None,
        })
    }

    /// The protobuf value (equal in `MovementKind` and `LedgerEntryKind`).
    pub fn proto(self) -> i32 {
        match self {
            Self::Receipt => 1,
            Self::Issue => 2,
            Self::Adjustment => 3,
            Self::TransferOut => 4,
            Self::TransferIn => 5,
            Self::Count => 6,
        }
    }

    /// Lowercase name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Receipt => "receipt",
            Self::Issue => "issue",
            Self::Adjustment => "adjustment",
            Self::TransferOut => "transfer_out",
            Self::TransferIn => "transfer_in",
            Self::Count => "count",
        }
    }

    /// Receipts and transfers in bring goods in: they may create the sku (fixing its unit)
    /// and the lot (fixing its attributes), and refuse expired lots.
    pub fn is_inbound(self) -> bool {
        matches!(self, Self::Receipt | Self::TransferIn)
    }

    /// Issues and transfers out take available stock: they need an existing position and
    /// are refused on held stock.
    pub fn is_outbound(self) -> bool {
        matches!(self, Self::Issue | Self::TransferOut)
    }

    /// Transfers name the other site and the transfer id.
    pub fn is_transfer(self) -> bool {
        matches!(self, Self::TransferOut | Self::TransferIn)
    }
}

/// How AllocateStock orders candidate positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Earliest expiry first; ties by first receipt, lot id, zone id.
    Fefo,
    /// Earliest first receipt first; ties by expiry, lot id, zone id.
    Fifo,
}

impl Strategy {
    /// From the protobuf value: 0 (unset) and 1 are FEFO, 2 is FIFO; others `None`.
    pub fn from_proto(value: i32) -> Option<Self> {
        match value {
            0 | 1 => Some(Self::Fefo),
            2 => Some(Self::Fifo),
            _ => None,
        }
    }

    /// The protobuf value (never unspecified).
    pub fn proto(self) -> i32 {
        match self {
            Self::Fefo => 1,
            Self::Fifo => 2,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dates

/// A calendar date from its parts (year 1..=9999); `None` when the parts are not a date.
pub fn date_from_parts(year: i32, month: i32, day: i32) -> Option<NaiveDate> {
    if !(1..=9999).contains(&year) {
        return None;
    }
    let month = u32::try_from(month).ok()?;
    let day = u32::try_from(day).ok()?;
    NaiveDate::from_ymd_opt(year, month, day)
}

/// The local calendar date at `millis` (UTC ms since the epoch) in time zone `tz`.
pub fn local_date<Z: TimeZone>(millis: i64, tz: &Z) -> NaiveDate {
    match chrono::DateTime::from_timestamp_millis(millis) {
        Some(utc) => utc.with_timezone(tz).date_naive(),
        None => NaiveDate::MIN,
    }
}

/// A date as days from the common era (compact storage).
pub fn date_to_days(date: NaiveDate) -> i32 {
    date.num_days_from_ce()
}

/// A date back from [`date_to_days`]; `None` for garbage.
pub fn date_from_days(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days)
}

/// True when a lot with this expiry is expired on `today`: the expiry day itself is still
/// usable, the lot is expired from the following day on.
pub fn is_expired(expiry: NaiveDate, today: NaiveDate) -> bool {
    expiry < today
}

/// The expiry bucket of a lot, relative to `today`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExpiryBucket {
    /// Expiry before today.
    Expired,
    /// Today through today + 30 days.
    Within30,
    /// Today + 31 through today + 60 days.
    Within60,
    /// Today + 61 through today + 90 days.
    Within90,
    /// After today + 90 days.
    Later,
}

impl ExpiryBucket {
    /// The protobuf value.
    pub fn proto(self) -> i32 {
        match self {
            Self::Expired => 1,
            Self::Within30 => 2,
            Self::Within60 => 3,
            Self::Within90 => 4,
            Self::Later => 5,
        }
    }
}

/// The bucket of `expiry` on `today`.
pub fn expiry_bucket(expiry: NaiveDate, today: NaiveDate) -> ExpiryBucket {
    let days = expiry.signed_duration_since(today).num_days();
    match days {
        d if d < 0 => ExpiryBucket::Expired,
        0..=30 => ExpiryBucket::Within30,
        31..=60 => ExpiryBucket::Within60,
        61..=90 => ExpiryBucket::Within90,
        _ => ExpiryBucket::Later,
    }
}

// ---------------------------------------------------------------------------------------------
// Values of requests

/// Checks a sku base unit: 1 to 16 bytes, no whitespace or control characters.
pub fn check_unit(unit: &str) -> Result<(), String> {
    if unit.is_empty() {
        return Err("is required".into());
    }
    if unit.len() > MAX_UNIT_LEN {
        return Err(format!(
            "{unit:?} is {} bytes; at most {MAX_UNIT_LEN} allowed",
            unit.len()
        ));
    }
    if let Some(bad) = unit.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{unit:?} contains {bad:?}; whitespace and control characters are not allowed"
        ));
    }
    Ok(())
}

/// Checks free text of at most `max` bytes without control characters (newline and tab
/// allowed); `required` refuses empty or blank text.
pub fn check_text(value: &str, max: usize, required: bool) -> Result<(), String> {
    if required && value.trim().is_empty() {
        return Err("is required".into());
    }
    if value.len() > max {
        return Err(format!("is {} bytes; at most {max} allowed", value.len()));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// What a reference points at (the protobuf `ReferenceKind` value, 1..=5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `ReferenceKind` value.
    pub kind: i32,
    /// The referenced id.
    pub id: String,
}

/// The attributes of a lot as stored: fixed by its first receipt or transfer in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LotAttributes {
    /// Last usable day (site-local).
    pub expiry: NaiveDate,
    /// Production day, if known.
    pub production: Option<NaiveDate>,
    /// Free-text origin; empty when unknown.
    pub origin: String,
}

/// The lot as a movement states it: only `lot_id` is always present.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatedLot {
    /// The lot id.
    pub lot_id: String,
    /// The stated expiry.
    pub expiry: Option<NaiveDate>,
    /// The stated production date.
    pub production: Option<NaiveDate>,
    /// The stated origin; empty means "not stated".
    pub origin: String,
}

/// A stated attribute that contradicts the stored lot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LotConflict {
    /// `expiry`, `production` or `origin`.
    pub attribute: &'static str,
    /// The stored value.
    pub stored: String,
    /// The stated value.
    pub given: String,
}

impl StatedLot {
    /// The attributes of a new lot; `None` when the expiry (required on the first
    /// receipt) is missing.
    pub fn new_attributes(&self) -> Option<LotAttributes> {
        Some(LotAttributes {
            expiry: self.expiry?,
            production: self.production,
            origin: self.origin.clone(),
        })
    }

    /// Checks every stated attribute against the stored lot: attributes not stated are not
    /// checked; a stated attribute must equal the stored one.
    pub fn check_against(&self, stored: &LotAttributes) -> Result<(), LotConflict> {
        if let Some(expiry) = self.expiry
            && expiry != stored.expiry
        {
            return Err(LotConflict {
                attribute: "expiry",
                stored: stored.expiry.to_string(),
                given: expiry.to_string(),
            });
        }
        if let Some(production) = self.production
            && Some(production) != stored.production
        {
            return Err(LotConflict {
                attribute: "production",
                stored: stored
                    .production
                    .map_or_else(|| "none".to_string(), |d| d.to_string()),
                given: production.to_string(),
            });
        }
        if !self.origin.is_empty() && self.origin != stored.origin {
            return Err(LotConflict {
                attribute: "origin",
                stored: format!("{:?}", stored.origin),
                given: format!("{:?}", self.origin),
            });
        }
        Ok(())
    }
}

/// One movement, validated in form (ids, quantities by kind, fields by kind); its effect
/// still depends on the stored state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    /// What it does.
    pub kind: MovementKind,
    /// The sku.
    pub sku: String,
    /// The lot as stated.
    pub lot: StatedLot,
    /// The zone (known to the site).
    pub zone_id: String,
    /// Quantity: positive, signed delta (ADJUSTMENT) or absolute (COUNT).
    pub quantity: i64,
    /// The stated base unit.
    pub unit: String,
    /// Why.
    pub reason: String,
    /// The business object behind it.
    pub reference: Option<Reference>,
    /// Transfers: the other site.
    pub other_site_id: String,
    /// Transfers: the transfer id.
    pub transfer_id: String,
    /// COUNT: the version the count was based on.
    pub expected_version: Option<u64>,
    /// RECEIPT: the booking checked in.
    pub booking_id: String,
    /// RECEIPT with booking: pallets occupied.
    pub pallets: i32,
    /// ISSUE: the order whose allocation it consumes.
    pub order_id: String,
}

// ---------------------------------------------------------------------------------------------
// Holds

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

// ---------------------------------------------------------------------------------------------
// Positions and movements

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

/// Why a movement cannot be applied to a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StockRefusal {
    /// An issue or transfer out beyond what is available to it.
    Insufficient {
        /// What the movement could have taken.
        available: i64,
        /// What it asked for.
        requested: i64,
    },
    /// The position is under an active hold: nothing can be issued or transferred out.
    Held {
        /// The held on-hand quantity.
        on_hand: i64,
    },
    /// The result would be below zero.
    Negative {
        /// On hand before.
        on_hand: i64,
        /// The change asked for.
        delta: i64,
    },
    /// The result would be below the allocated quantity.
    BelowAllocated {
        /// On hand after the movement.
        on_hand_after: i64,
        /// Allocated quantity.
        allocated: i64,
    },
    /// A COUNT based on a stale version.
    StaleVersion {
        /// What the count stated.
        expected: u64,
        /// The position's version now.
        current: u64,
    },
    /// The result does not fit in an i64.
    Overflow {
        /// On hand before.
        on_hand: i64,
        /// The change asked for.
        delta: i64,
    },
    /// The quantity is not valid for the kind (caught by validation; kept for totality).
    BadQuantity {
        /// The quantity.
        quantity: i64,
    },
}

/// What a movement does to a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effect {
    /// The change of on hand (the ledger entry's delta).
    pub delta: i64,
    /// The change of allocated (negative when an issue consumed an allocation).
    pub allocated_delta: i64,
    /// The position afterwards.
    pub after: Position,
}

/// Applies one movement to a position.
///
/// `held` says whether an active hold covers the position; `order_reserved` is, for an
/// ISSUE citing an order, the quantity that order still has reserved on this position
/// (taken first; the rest must be available).
pub fn apply_movement(
    position: Position,
    kind: MovementKind,
    quantity: i64,
    expected_version: Option<u64>,
    held: bool,
    order_reserved: i64,
) -> Result<Effect, StockRefusal> {
    let on_hand = position.on_hand;
    let (delta, allocated_delta) = match kind {
        MovementKind::Receipt | MovementKind::TransferIn => {
            if quantity <= 0 {
                return Err(StockRefusal::BadQuantity { quantity });
            }
            (quantity, 0)
        }
        MovementKind::Issue | MovementKind::TransferOut => {
            if quantity <= 0 {
                return Err(StockRefusal::BadQuantity { quantity });
            }
            if held {
                return Err(StockRefusal::Held { on_hand });
            }
            let reserved = if kind == MovementKind::Issue {
                order_reserved.clamp(0, position.allocated.max(0))
            } else {
                0
            };
            let from_allocation = quantity.min(reserved);
            let free = position.available(false);
            let remainder = quantity - from_allocation;
            if remainder > free {
                return Err(StockRefusal::Insufficient {
                    available: free.saturating_add(reserved),
                    requested: quantity,
                });
            }
            (-quantity, -from_allocation)
        }
        MovementKind::Adjustment => {
            if quantity == 0 {
                return Err(StockRefusal::BadQuantity { quantity });
            }
            (quantity, 0)
        }
        MovementKind::Count => {
            if quantity < 0 {
                return Err(StockRefusal::BadQuantity { quantity });
            }
            let expected = expected_version.unwrap_or(u64::MAX);
            if expected != position.version {
                return Err(StockRefusal::StaleVersion {
                    expected,
                    current: position.version,
                });
            }
            let delta = quantity
                .checked_sub(on_hand)
                .ok_or(StockRefusal::Overflow {
                    on_hand,
                    delta: quantity,
                })?;
            (delta, 0)
        }
    };
    let new_on_hand = on_hand
        .checked_add(delta)
        .ok_or(StockRefusal::Overflow { on_hand, delta })?;
    let new_allocated = position
        .allocated
        .checked_add(allocated_delta)
        .ok_or(StockRefusal::Overflow { on_hand, delta })?;
    if new_on_hand < 0 {
        return Err(StockRefusal::Negative { on_hand, delta });
    }
    if new_on_hand < new_allocated {
        return Err(StockRefusal::BelowAllocated {
            on_hand_after: new_on_hand,
            allocated: new_allocated,
        });
    }
    let version = position
        .version
        .checked_add(1)
        .ok_or(StockRefusal::Overflow { on_hand, delta })?;
    Ok(Effect {
        delta,
        allocated_delta,
        after: Position {
            on_hand: new_on_hand,
            allocated: new_allocated,
            version,
        },
    })
}

// ---------------------------------------------------------------------------------------------
// Allocation

/// A position AllocateStock may pick from.
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
/// order, or `Err(allocatable)`: the most that could have been allocated.
pub fn pick(
    candidates: &[Candidate],
    quantity: i64,
    strategy: Strategy,
    today: NaiveDate,
) -> Result<Vec<(usize, i64)>, i64> {
    let mut order: Vec<usize> = (0..candidates.len())
        .filter(|&i| is_allocatable(&candidates[i], today))
        .collect();
    order.sort_by(|&a, &b| picking_order(&candidates[a], &candidates[b], strategy));
    let mut picks = Vec::new();
    let mut remaining = quantity;
    let mut allocatable: i64 = 0;
    for index in order {
        let available = candidates[index].available;
        allocatable = allocatable.saturating_add(available);
        if remaining > 0 {
            let take = remaining.min(available);
            picks.push((index, take));
            remaining -= take;
        }
    }
    if remaining > 0 || quantity <= 0 {
        return Err(allocatable);
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

// ---------------------------------------------------------------------------------------------
// Errors

/// A refusal of the inventory rules, with what it concerns. The api layer maps each to a
/// gRPC code (see `api`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainError {
    /// A movement or allocation states a unit other than the sku's (INVALID_ARGUMENT on
    /// `unit`).
    UnitMismatch {
        /// The sku.
        sku: String,
        /// Its fixed unit.
        expected: String,
        /// The stated unit.
        given: String,
    },
    /// The first receipt of a lot without an expiry (INVALID_ARGUMENT on `lot.expiry`).
    MissingExpiry {
        /// The sku.
        sku: String,
        /// The lot.
        lot_id: String,
    },
    /// A sku that never had stock here (NOT_FOUND).
    UnknownSku {
        /// The sku.
        sku: String,
    },
    /// A lot never received here (NOT_FOUND).
    UnknownLot {
        /// The sku.
        sku: String,
        /// The lot.
        lot_id: String,
    },
    /// A position that never had stock (NOT_FOUND).
    UnknownPosition {
        /// The sku.
        sku: String,
        /// The lot.
        lot_id: String,
        /// The zone.
        zone_id: String,
    },
    /// A zone the site does not have (NOT_FOUND).
    UnknownZone {
        /// The zone.
        zone_id: String,
        /// The site.
        site_id: String,
    },
    /// Stated lot attributes contradict the stored lot (FAILED_PRECONDITION).
    LotConflict {
        /// The sku.
        sku: String,
        /// The lot.
        lot_id: String,
        /// What differs.
        conflict: LotConflict,
    },
    /// Receiving into an expired lot (FAILED_PRECONDITION).
    ExpiredLot {
        /// The sku.
        sku: String,
        /// The lot.
        lot_id: String,
        /// Its expiry.
        expiry: NaiveDate,
        /// The site's date.
        today: NaiveDate,
    },
    /// A movement the position's quantities refuse (FAILED_PRECONDITION).
    Stock {
        /// The sku.
        sku: String,
        /// The lot.
        lot_id: String,
        /// The zone.
        zone_id: String,
        /// The movement kind.
        kind: MovementKind,
        /// Why.
        refusal: StockRefusal,
    },
    /// Not enough allocatable stock (FAILED_PRECONDITION).
    NotAllocatable {
        /// The sku.
        sku: String,
        /// Asked for.
        requested: i64,
        /// Could have been allocated.
        allocatable: i64,
    },
    /// An order without allocations (NOT_FOUND).
    UnknownOrder {
        /// The order.
        order_id: String,
    },
    /// An allocation that does not exist for the order (NOT_FOUND).
    UnknownAllocation {
        /// The order.
        order_id: String,
        /// The allocation.
        allocation_id: String,
    },
    /// The named allocation is not active (FAILED_PRECONDITION).
    AllocationNotActive {
        /// The allocation.
        allocation_id: String,
        /// Its state, lowercase.
        state: &'static str,
    },
    /// An unknown hold (NOT_FOUND).
    UnknownHold {
        /// The hold.
        hold_id: String,
    },
    /// The hold was already released (FAILED_PRECONDITION).
    HoldReleased {
        /// The hold.
        hold_id: String,
    },
}

impl DomainError {
    /// The `sku/lot/zone` subject of a position error.
    pub fn position_subject(sku: &str, lot_id: &str, zone_id: &str) -> String {
        format!("sku {sku:?} lot {lot_id:?} zone {zone_id:?}")
    }
}

impl fmt::Display for StockRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Insufficient {
                available,
                requested,
            } => {
                write!(f, "available {available}, requested {requested}")
            }
            Self::Held { on_hand } => write!(
                f,
                "the position is under an active hold ({on_hand} held): available 0"
            ),
            Self::Negative { on_hand, delta } => {
                write!(f, "on hand {on_hand} with change {delta} would be negative")
            }
            Self::BelowAllocated {
                on_hand_after,
                allocated,
            } => write!(
                f,
                "on hand would be {on_hand_after}, below the allocated {allocated}"
            ),
            Self::StaleVersion { expected, current } => write!(
                f,
                "expected_version {expected} is stale: the current version is {current}"
            ),
            Self::Overflow { on_hand, delta } => write!(
                f,
                "on hand {on_hand} with change {delta} overflows a 64-bit quantity"
            ),
            Self::BadQuantity { quantity } => {
                write!(f, "quantity {quantity} is not valid for this kind")
            }
        }
    }
}

impl fmt::Display for DomainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnitMismatch {
                sku,
                expected,
                given,
            } => write!(f, "sku {sku:?} is kept in unit {expected:?}, not {given:?}"),
            Self::MissingExpiry { sku, lot_id } => write!(
                f,
                "is required on the first receipt of lot {lot_id:?} of sku {sku:?}"
            ),
            Self::UnknownSku { sku } => write!(f, "sku {sku:?} has no stock record at this site"),
            Self::UnknownLot { sku, lot_id } => write!(
                f,
                "lot {lot_id:?} of sku {sku:?} has no stock record at this site"
            ),
            Self::UnknownPosition {
                sku,
                lot_id,
                zone_id,
            } => write!(
                f,
                "no stock record for sku {sku:?} lot {lot_id:?} in zone {zone_id:?}"
            ),
            Self::UnknownZone { zone_id, site_id } => {
                write!(f, "zone {zone_id:?} does not exist at site {site_id}")
            }
            Self::LotConflict {
                sku,
                lot_id,
                conflict,
            } => write!(
                f,
                "lot {lot_id:?} of sku {sku:?} has {} {}, the movement states {}",
                conflict.attribute, conflict.stored, conflict.given
            ),
            Self::ExpiredLot {
                sku,
                lot_id,
                expiry,
                today,
            } => write!(
                f,
                "lot {lot_id:?} of sku {sku:?} expired on {expiry} (site date {today}): expired stock cannot be received"
            ),
            Self::Stock {
                sku,
                lot_id,
                zone_id,
                kind,
                refusal,
            } => write!(
                f,
                "{} refused for sku {sku:?} lot {lot_id:?} zone {zone_id:?}: {refusal}",
                kind.name()
            ),
            Self::NotAllocatable {
                sku,
                requested,
                allocatable,
            } => write!(
                f,
                "sku {sku:?}: requested {requested}, only {allocatable} could have been allocated (held and expired stock excluded); nothing was reserved"
            ),
            Self::UnknownOrder { order_id } => {
                write!(f, "order_id {order_id:?} has no allocations at this site")
            }
            Self::UnknownAllocation {
                order_id,
                allocation_id,
            } => write!(
                f,
                "allocation_id {allocation_id:?} is not an allocation of order {order_id:?}"
            ),
            Self::AllocationNotActive {
                allocation_id,
                state,
            } => write!(f, "allocation_id {allocation_id:?} is {state}, not active"),
            Self::UnknownHold { hold_id } => write!(f, "hold_id {hold_id:?} does not exist"),
            Self::HoldReleased { hold_id } => write!(f, "hold_id {hold_id:?} is already released"),
        }
    }
}

impl std::error::Error for DomainError {}

#[cfg(test)]
mod tests {
    use super::Strategy;
    use super::*;
    use proptest::prelude::*;
    use proptest::strategy::Strategy as _;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn pos(on_hand: i64, allocated: i64, version: u64) -> Position {
        Position {
            on_hand,
            allocated,
            version,
        }
    }

    #[test]
    fn dates_are_validated() {
        assert_eq!(date_from_parts(2026, 2, 28), Some(d(2026, 2, 28)));
        assert_eq!(date_from_parts(2026, 2, 29), None);
        assert_eq!(date_from_parts(0, 1, 1), None);
        assert_eq!(date_from_parts(10000, 1, 1), None);
        assert_eq!(date_from_parts(2026, 0, 1), None);
        assert_eq!(date_from_parts(2026, 1, -1), None);
        assert_eq!(
            date_from_days(date_to_days(d(2026, 7, 1))),
            Some(d(2026, 7, 1))
        );
    }

    #[test]
    fn local_date_uses_the_site_time_zone() {
        // 2026-03-01T17:00:00Z is already March 2nd in Shanghai (UTC+8).
        let millis = chrono::DateTime::parse_from_rfc3339("2026-03-01T17:00:00Z")
            .unwrap()
            .timestamp_millis();
        assert_eq!(
            local_date(millis, &chrono_tz::Asia::Shanghai),
            d(2026, 3, 2)
        );
        assert_eq!(local_date(millis, &chrono::Utc), d(2026, 3, 1));
    }

    #[test]
    fn expiry_day_itself_is_usable() {
        assert!(!is_expired(d(2026, 5, 1), d(2026, 5, 1)));
        assert!(is_expired(d(2026, 4, 30), d(2026, 5, 1)));
    }

    #[test]
    fn buckets_have_the_documented_edges() {
        let today = d(2026, 1, 1);
        let at = |days: i64| expiry_bucket(today + chrono::Duration::days(days), today);
        assert_eq!(at(-1), ExpiryBucket::Expired);
        assert_eq!(at(0), ExpiryBucket::Within30);
        assert_eq!(at(30), ExpiryBucket::Within30);
        assert_eq!(at(31), ExpiryBucket::Within60);
        assert_eq!(at(60), ExpiryBucket::Within60);
        assert_eq!(at(61), ExpiryBucket::Within90);
        assert_eq!(at(90), ExpiryBucket::Within90);
        assert_eq!(at(91), ExpiryBucket::Later);
    }

    #[test]
    fn units_and_text() {
        assert!(check_unit("kg").is_ok());
        assert!(check_unit("case-12").is_ok());
        assert!(check_unit("").is_err());
        assert!(check_unit("a b").is_err());
        assert!(check_unit(&"x".repeat(17)).is_err());
        assert!(check_text("", 512, false).is_ok());
        assert!(check_text(" ", 512, true).is_err());
        assert!(check_text("a\u{7}", 512, false).is_err());
        assert!(
            check_text(&"é".repeat(200), 256, false).is_err(),
            "bytes, not chars"
        );
    }

    #[test]
    fn lot_attributes_are_checked_only_when_stated() {
        let stored = LotAttributes {
            expiry: d(2026, 6, 1),
            production: Some(d(2026, 1, 1)),
            origin: "Qianyang".into(),
        };
        let mut stated = StatedLot {
            lot_id: "L1".into(),
            ..StatedLot::default()
        };
        assert!(stated.check_against(&stored).is_ok());
        stated.expiry = Some(d(2026, 6, 1));
        stated.origin = "Qianyang".into();
        assert!(stated.check_against(&stored).is_ok());
        stated.expiry = Some(d(2026, 6, 2));
        assert_eq!(
            stated.check_against(&stored).unwrap_err().attribute,
            "expiry"
        );
        stated.expiry = None;
        stated.origin = "Hanoi".into();
        assert_eq!(
            stated.check_against(&stored).unwrap_err().attribute,
            "origin"
        );
        stated.origin.clear();
        stated.production = Some(d(2026, 1, 2));
        assert_eq!(
            stated.check_against(&stored).unwrap_err().attribute,
            "production"
        );
        assert!(StatedLot::default().new_attributes().is_none());
    }

    #[test]
    fn holds_match_every_set_part() {
        let zone = HoldScope {
            zone_id: "z1".into(),
            ..HoldScope::default()
        };
        let lot = HoldScope {
            sku: "s".into(),
            lot_id: "l".into(),
            ..HoldScope::default()
        };
        let both = HoldScope {
            zone_id: "z1".into(),
            sku: "s".into(),
            lot_id: String::new(),
        };
        assert!(zone.covers("any", "any", "z1"));
        assert!(!zone.covers("any", "any", "z2"));
        assert!(lot.covers("s", "l", "z9"));
        assert!(!lot.covers("s", "l2", "z9"));
        assert!(!lot.covers("t", "l", "z9"));
        assert!(both.covers("s", "x", "z1"));
        assert!(!both.covers("s", "x", "z2"));
        assert!(!both.covers("t", "x", "z1"));
        assert!(HoldScope::default().is_empty());
    }

    #[test]
    fn receipt_and_issue() {
        let e = apply_movement(pos(0, 0, 0), MovementKind::Receipt, 10, None, false, 0).unwrap();
        assert_eq!(e.after, pos(10, 0, 1));
        assert_eq!(e.delta, 10);
        let e = apply_movement(e.after, MovementKind::Issue, 4, None, false, 0).unwrap();
        assert_eq!(e.after, pos(6, 0, 2));
        assert_eq!(e.delta, -4);
        let refused = apply_movement(e.after, MovementKind::Issue, 7, None, false, 0).unwrap_err();
        assert_eq!(
            refused,
            StockRefusal::Insufficient {
                available: 6,
                requested: 7
            }
        );
    }

    #[test]
    fn held_stock_cannot_leave_but_can_be_written_off() {
        let p = pos(10, 0, 3);
        assert_eq!(p.available(true), 0);
        assert_eq!(p.held(true), 10);
        assert!(matches!(
            apply_movement(p, MovementKind::Issue, 1, None, true, 0),
            Err(StockRefusal::Held { on_hand: 10 })
        ));
        assert!(matches!(
            apply_movement(p, MovementKind::TransferOut, 1, None, true, 0),
            Err(StockRefusal::Held { .. })
        ));
        let e = apply_movement(p, MovementKind::Adjustment, -10, None, true, 0).unwrap();
        assert_eq!(e.after, pos(0, 0, 4));
        // Receipts into held positions are fine (and stay held).
        assert!(apply_movement(p, MovementKind::Receipt, 5, None, true, 0).is_ok());
    }

    #[test]
    fn issue_consumes_the_order_allocation_first() {
        let p = pos(10, 6, 1);
        assert_eq!(p.available(false), 4);
        let e = apply_movement(p, MovementKind::Issue, 8, None, false, 6).unwrap();
        assert_eq!(e.allocated_delta, -6);
        assert_eq!(e.after, pos(2, 0, 2));
        let refused = apply_movement(p, MovementKind::Issue, 11, None, false, 6).unwrap_err();
        assert_eq!(
            refused,
            StockRefusal::Insufficient {
                available: 10,
                requested: 11
            }
        );
        // Without the order, the allocation is not available.
        let refused = apply_movement(p, MovementKind::Issue, 5, None, false, 0).unwrap_err();
        assert_eq!(
            refused,
            StockRefusal::Insufficient {
                available: 4,
                requested: 5
            }
        );
    }

    #[test]
    fn adjustments_and_counts_respect_allocations() {
        let p = pos(10, 6, 5);
        assert!(matches!(
            apply_movement(p, MovementKind::Adjustment, -5, None, false, 0),
            Err(StockRefusal::BelowAllocated {
                on_hand_after: 5,
                allocated: 6
            })
        ));
        assert!(matches!(
            apply_movement(pos(3, 0, 1), MovementKind::Adjustment, -4, None, false, 0),
            Err(StockRefusal::Negative { .. })
        ));
        assert!(matches!(
            apply_movement(p, MovementKind::Count, 12, Some(4), false, 0),
            Err(StockRefusal::StaleVersion {
                expected: 4,
                current: 5
            })
        ));
        assert!(matches!(
            apply_movement(p, MovementKind::Count, 5, Some(5), false, 0),
            Err(StockRefusal::BelowAllocated { .. })
        ));
        let e = apply_movement(p, MovementKind::Count, 10, Some(5), false, 0).unwrap();
        assert_eq!((e.delta, e.after), (0, pos(10, 6, 6)));
        let e = apply_movement(pos(0, 0, 0), MovementKind::Count, 7, Some(0), false, 0).unwrap();
        assert_eq!((e.delta, e.after), (7, pos(7, 0, 1)));
    }

    #[test]
    fn overflow_is_a_refusal_not_a_panic() {
        let p = pos(i64::MAX - 1, 0, 1);
        assert!(matches!(
            apply_movement(p, MovementKind::Receipt, 5, None, false, 0),
            Err(StockRefusal::Overflow { .. })
        ));
        assert!(matches!(
            apply_movement(
                pos(-5, 0, 1),
                MovementKind::Count,
                i64::MAX,
                Some(1),
                false,
                0
            ),
            Err(StockRefusal::Overflow { .. })
        ));
    }

    fn cand(lot: &str, zone: &str, expiry: NaiveDate, first: i64, available: i64) -> Candidate {
        Candidate {
            lot_id: lot.into(),
            zone_id: zone.into(),
            expiry,
            first_received_ms: first,
            available,
            held: false,
        }
    }

    #[test]
    fn fefo_splits_and_skips_held_and_expired() {
        let today = d(2026, 3, 1);
        let mut candidates = vec![
            cand("late", "z1", d(2026, 9, 1), 1, 10),
            cand("soon", "z1", d(2026, 4, 1), 5, 3),
            cand("gone", "z1", d(2026, 2, 1), 0, 50),
            cand("held", "z2", d(2026, 3, 15), 0, 50),
            cand("soon", "z2", d(2026, 4, 1), 5, 4),
        ];
        candidates[3].held = true;
        let picks = pick(&candidates, 9, Strategy::Fefo, today).unwrap();
        assert_eq!(picks, vec![(1, 3), (4, 4), (0, 2)]);
        assert_eq!(pick(&candidates, 18, Strategy::Fefo, today), Err(17));
        let fifo = pick(&candidates, 12, Strategy::Fifo, today).unwrap();
        assert_eq!(fifo, vec![(0, 10), (1, 2)]);
    }

    #[test]
    fn consumption_walks_picks_on_the_position() {
        let mut picks = vec![
            PickState {
                lot_id: "a".into(),
                zone_id: "z".into(),
                quantity: 5,
                consumed: 0,
            },
            PickState {
                lot_id: "b".into(),
                zone_id: "z".into(),
                quantity: 5,
                consumed: 0,
            },
        ];
        assert_eq!(reserved_on(&picks, "a", "z"), 5);
        assert_eq!(consume(&mut picks, "a", "z", 7), 5);
        assert!(!fully_consumed(&picks));
        assert_eq!(consume(&mut picks, "b", "z", 5), 5);
        assert!(fully_consumed(&picks));
    }

    // ---------------------------------------------------------------------------------------
    // Properties

    #[derive(Debug, Clone)]
    enum Op {
        Move(MovementKind, i64, bool),
        Count(i64, bool),
        Allocate(i64),
        Release,
        IssueOrder(i64),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        prop_oneof![
            (1i64..50).prop_map(|q| Op::Move(MovementKind::Receipt, q, false)),
            (1i64..50).prop_map(|q| Op::Move(MovementKind::TransferIn, q, false)),
            (1i64..60, any::<bool>()).prop_map(|(q, h)| Op::Move(MovementKind::Issue, q, h)),
            (1i64..60, any::<bool>()).prop_map(|(q, h)| Op::Move(MovementKind::TransferOut, q, h)),
            (-60i64..60)
                .prop_filter("non-zero", |q| *q != 0)
                .prop_map(|q| Op::Move(MovementKind::Adjustment, q, false)),
            (0i64..80, any::<bool>()).prop_map(|(q, stale)| Op::Count(q, stale)),
            (1i64..40).prop_map(Op::Allocate),
            Just(Op::Release),
            (1i64..40).prop_map(Op::IssueOrder),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any sequence of movements, allocations and releases on one position: on hand
        /// always equals the sum of the accepted deltas (the ledger), never goes negative,
        /// allocated stays within 0..=on_hand and equals the sum of allocation deltas, the
        /// version counts the accepted movements, and a refusal changes nothing.
        #[test]
        fn balance_is_the_sum_of_ledger_deltas(ops in proptest::collection::vec(op(), 1..80)) {
            let mut p = Position::default();
            let mut ledger_sum: i64 = 0;
            let mut allocated_sum: i64 = 0;
            let mut movements: u64 = 0;
            let mut reserved: i64 = 0; // one order's reservation on this position
            for op in ops {
                let before = p;
                let result = match op {
                    Op::Move(kind, q, held) => apply_movement(p, kind, q, None, held, 0).map(Some),
                    Op::Count(q, stale) => {
                        let expected = if stale { p.version + 1 } else { p.version };
                        apply_movement(p, MovementKind::Count, q, Some(expected), false, 0).map(Some)
                    }
                    Op::IssueOrder(q) => apply_movement(p, MovementKind::Issue, q, None, false, reserved).map(Some),
                    Op::Allocate(q) => {
                        if q <= p.available(false) {
                            p.allocated += q;
                            reserved += q;
                            allocated_sum += q;
                        }
                        Ok(None)
                    }
                    Op::Release => {
                        p.allocated -= reserved;
                        allocated_sum -= reserved;
                        reserved = 0;
                        Ok(None)
                    }
                };
                match result {
                    Ok(Some(effect)) => {
                        prop_assert_eq!(effect.after.on_hand, before.on_hand + effect.delta);
                        prop_assert_eq!(effect.after.version, before.version + 1);
                        ledger_sum += effect.delta;
                        allocated_sum += effect.allocated_delta;
                        reserved += effect.allocated_delta;
                        movements += 1;
                        p = effect.after;
                    }
                    Ok(None) => {}
                    Err(_) => prop_assert_eq!(p, before),
                }
                prop_assert!(p.on_hand >= 0);
                prop_assert_eq!(p.on_hand, ledger_sum);
                prop_assert_eq!(p.allocated, allocated_sum);
                prop_assert!(p.allocated >= 0 && p.allocated <= p.on_hand);
                prop_assert!(reserved >= 0 && reserved <= p.allocated);
                prop_assert_eq!(p.version, movements);
                prop_assert_eq!(p.available(true), 0);
            }
        }

        /// FEFO picks come in expiry order (FIFO: first-receipt order), never from held,
        /// expired or empty positions, never beyond a position's available quantity, and
        /// sum to the request; a shortfall reports exactly the allocatable total.
        #[test]
        fn picks_follow_the_strategy(
            raw in proptest::collection::vec((0i64..40, 0i64..10, 0i64..20, any::<bool>(), 0usize..3), 0..12),
            quantity in 1i64..120,
            fifo in any::<bool>(),
        ) {
            let today = d(2026, 1, 10);
            let candidates: Vec<Candidate> = raw
                .iter()
                .enumerate()
                .map(|(i, (expiry_off, first, available, held, zone))| Candidate {
                    lot_id: format!("lot-{i:02}"),
                    zone_id: format!("z{zone}"),
                    expiry: d(2026, 1, 1) + chrono::Duration::days(*expiry_off),
                    first_received_ms: *first,
                    available: *available,
                    held: *held,
                })
                .collect();
            let strategy = if fifo { Strategy::Fifo } else { Strategy::Fefo };
            let eligible: i64 = candidates.iter().filter(|c| is_allocatable(c, today)).map(|c| c.available).sum();
            match pick(&candidates, quantity, strategy, today) {
                Ok(picks) => {
                    prop_assert_eq!(picks.iter().map(|(_, q)| q).sum::<i64>(), quantity);
                    for (i, q) in &picks {
                        let c = &candidates[*i];
                        prop_assert!(is_allocatable(c, today));
                        prop_assert!(*q > 0 && *q <= c.available);
                    }
                    for pair in picks.windows(2) {
                        let (a, b) = (&candidates[pair[0].0], &candidates[pair[1].0]);
                        match strategy {
                            Strategy::Fefo => prop_assert!(a.expiry <= b.expiry),
                            Strategy::Fifo => prop_assert!(a.first_received_ms <= b.first_received_ms),
                        }
                        prop_assert_ne!(picking_order(a, b, strategy), Ordering::Greater);
                    }
                    // Every pick but the last takes the whole position.
                    for (i, q) in picks.iter().take(picks.len().saturating_sub(1)) {
                        prop_assert_eq!(*q, candidates[*i].available);
                    }
                }
                Err(allocatable) => {
                    prop_assert_eq!(allocatable, eligible);
                    prop_assert!(allocatable < quantity);
                }
            }
        }

        /// Buckets never go backwards as expiry moves later.
        #[test]
        fn buckets_are_monotonic(a in -200i64..200, b in -200i64..200) {
            let today = d(2026, 6, 1);
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(
                expiry_bucket(today + chrono::Duration::days(lo), today)
                    <= expiry_bucket(today + chrono::Duration::days(hi), today)
            );
        }
    }
}
