//! Movements: their kinds, a validated movement, and what one does to a position
//! ([`apply_movement`]), within the quantity bound [`MAX_QUANTITY`].

use super::{Position, Reference, StatedLot, TransformationSpec};

/// The largest quantity of one movement and the largest on-hand balance of one position,
/// in base units (10^12: a million tonnes in grams). Every total the service reports sums
/// positions of at most this much, so sums stay exact (see [`super::TotalsSum`]).
pub const MAX_QUANTITY: i64 = 1_000_000_000_000;

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
    /// A lot consumed by a transformation.
    TransformationInput,
    /// A lot produced by a transformation.
    TransformationOutput,
    /// Stock moved between two zones of the site (two ledger entries).
    Relocation,
}

impl MovementKind {
    /// Lowercase name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Receipt => "receipt",
            Self::Issue => "issue",
            Self::Adjustment => "adjustment",
            Self::TransferOut => "transfer_out",
            Self::TransferIn => "transfer_in",
            Self::Count => "count",
            Self::TransformationInput => "transformation_input",
            Self::TransformationOutput => "transformation_output",
            Self::Relocation => "relocation",
        }
    }

    /// Receipts, transfers in and a transformation's outputs bring goods in: they may
    /// create the sku (fixing its unit) and the lot (fixing its attributes), and refuse
    /// expired lots.
    pub fn is_inbound(self) -> bool {
        matches!(
            self,
            Self::Receipt | Self::TransferIn | Self::TransformationOutput
        )
    }

    /// Issues, transfers out, a transformation's inputs and relocations take available
    /// stock: they need an existing position and are refused on held stock (a relocation
    /// may move held stock its holds allow to move).
    pub fn is_outbound(self) -> bool {
        matches!(
            self,
            Self::Issue | Self::TransferOut | Self::TransformationInput | Self::Relocation
        )
    }

    /// The lines of a transformation.
    pub fn is_transformation(self) -> bool {
        matches!(self, Self::TransformationInput | Self::TransformationOutput)
    }

    /// Transfers name the other site and the transfer id.
    pub fn is_transfer(self) -> bool {
        matches!(self, Self::TransferOut | Self::TransferIn)
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
    /// Transformation lines: the transformation.
    pub transformation: Option<TransformationSpec>,
    /// RELOCATION: the zone the stock goes to.
    pub to_zone_id: String,
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
    /// The result would exceed the largest balance of a position, [`MAX_QUANTITY`].
    AboveMaximum {
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
        MovementKind::Receipt | MovementKind::TransferIn | MovementKind::TransformationOutput => {
            if quantity <= 0 {
                return Err(StockRefusal::BadQuantity { quantity });
            }
            (quantity, 0)
        }
        MovementKind::Issue
        | MovementKind::TransferOut
        | MovementKind::TransformationInput
        | MovementKind::Relocation => {
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
                // Exact: free + reserved ≤ on hand.
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
    // A balance above the bound may only go down (a position stored by an older build
    // may hold more; it can still be drained).
    if new_on_hand > MAX_QUANTITY && new_on_hand > on_hand {
        return Err(StockRefusal::AboveMaximum { on_hand, delta });
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

/// What the arrival of a relocation does to the destination position: it gains
/// `quantity`, like a receipt (bounded by [`MAX_QUANTITY`]).
pub fn apply_arrival(position: Position, quantity: i64) -> Result<Effect, StockRefusal> {
    apply_movement(position, MovementKind::Receipt, quantity, None, false, 0)
}
