//! The refusals of the inventory rules.

use std::fmt;

use chrono::NaiveDate;

use super::{LotConflict, MAX_QUANTITY, MovementKind, RelocationHeld, StockRefusal};

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
    /// A total to report does not fit in the 64-bit field that carries it
    /// (FAILED_PRECONDITION): refused rather than reported wrong.
    TotalTooLarge {
        /// What was summed, e.g. `on_hand of sku "A"`.
        subject: String,
        /// The exact total.
        total: i128,
    },
    /// A transformation id an earlier request recorded (ALREADY_EXISTS).
    TransformationExists {
        /// The transformation.
        transformation_id: String,
        /// The request that recorded it.
        request_id: String,
    },
    /// A transformation id never recorded here (NOT_FOUND).
    UnknownTransformation {
        /// The transformation.
        transformation_id: String,
    },
    /// An expired lot as the input of a transformation that is not a write-off
    /// (FAILED_PRECONDITION).
    ExpiredInput {
        /// The sku.
        sku: String,
        /// The lot.
        lot_id: String,
        /// Its expiry.
        expiry: NaiveDate,
        /// The site's date.
        today: NaiveDate,
    },
    /// Held stock its holds do not let move (FAILED_PRECONDITION).
    HeldNotRelocatable {
        /// The sku.
        sku: String,
        /// The lot.
        lot_id: String,
        /// The zone it is in.
        zone_id: String,
        /// Why (boxed: rare, and it keeps every other refusal small).
        why: Box<RelocationHeld>,
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
            Self::AboveMaximum { on_hand, delta } => write!(
                f,
                "on hand {on_hand} with change {delta} would exceed {MAX_QUANTITY}, the largest balance of one position"
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
            Self::TotalTooLarge { subject, total } => write!(
                f,
                "the total {subject} is {total}, beyond {}, the largest a response can carry; ask for a narrower scope",
                i64::MAX
            ),
            Self::TransformationExists {
                transformation_id,
                request_id,
            } => write!(
                f,
                "transformation {transformation_id:?} was already recorded at this site by request {request_id:?}"
            ),
            Self::UnknownTransformation { transformation_id } => write!(
                f,
                "transformation {transformation_id:?} was never recorded at this site"
            ),
            Self::ExpiredInput {
                sku,
                lot_id,
                expiry,
                today,
            } => write!(
                f,
                "lot {lot_id:?} of sku {sku:?} expired on {expiry} (site date {today}): an expired input needs a transformation with write_off"
            ),
            Self::HeldNotRelocatable {
                sku,
                lot_id,
                zone_id,
                why,
            } => write!(
                f,
                "relocation refused for sku {sku:?} lot {lot_id:?} zone {zone_id:?}: {why}"
            ),
        }
    }
}

impl std::error::Error for DomainError {}

impl fmt::Display for RelocationHeld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAllowed { hold_id } => write!(
                f,
                "hold {hold_id:?} covers the stock and was placed without allow_relocation"
            ),
            Self::WouldEscape {
                hold_id,
                to_zone_id,
            } => write!(
                f,
                "hold {hold_id:?} allows relocation but would not cover the stock in zone {to_zone_id:?}"
            ),
        }
    }
}
