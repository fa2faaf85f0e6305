//! The gateway's rules, pure: the corridor-transfer state machine ([`transfer`]), the
//! checks of a transfer against the network file and the ids derived from it ([`rules`]),
//! and the arithmetic of the fan-out answers: stock per zone ([`stock`]), space offers
//! sorted by fit ([`space`]), the merged alarm order and its cursors ([`alarms`]), the
//! sites a query names ([`sites`]), a lot's trace ([`trace`]) and its genealogy through
//! transformations ([`genealogy`]).
//!
//! No I/O, no clock, no gRPC, no protobuf: everything here is a function of its arguments.

pub mod alarms;
pub mod genealogy;
pub mod recall;
pub mod rules;
pub mod sites;
pub mod space;
pub mod stock;
pub mod trace;
pub mod transfer;

pub use alarms::{AlarmKey, MergeCursor, MergeSource, SiteCursor};
/// Who made a change: a transfer's `started_by` and `arrival_reported_by`.
pub use coldchain_audit::Author;
pub use recall::{
    HoldStep, Recall, RecallError, RecallHold, RecallRef, RecallSpec, RecallState,
    assigned_recall_id,
};
pub use rules::{
    LineProblem, MAX_STEP_REQUEST_ID_BYTES, assigned_transfer_id, check_lines,
    default_reefer_class, sensor_request_id, transfer_in_request_id, transfer_out_request_id,
};
pub use sites::{SiteFailure, UnknownSites, check_known, select_sites};
pub use space::{
    DayFree, MAX_RANGE_DAYS, Offer, SpaceAnswer, SpaceQuery, compare_offers, days_inclusive,
    site_offers,
};
pub use stock::{
    InTransit, Level, SiteStock, StockAnswer, ZoneTotals, in_transit, inbound_totals, zone_totals,
};
pub use transfer::{
    Line, Lot, ReceiptLine, Refusal, SensorBinding, Transfer, TransferError, TransferFilter,
    TransferRef, TransferSpec, TransferState,
};

/// The most lines in one transfer.
pub const MAX_LINES: usize = 1000;
/// The longest `train_or_route`, in bytes.
pub const MAX_ROUTE_BYTES: usize = 128;
/// The longest unit, in bytes.
pub const MAX_UNIT_BYTES: usize = 16;

/// A total the gateway would report that does not fit the contract's 64-bit quantity: the
/// answer is refused rather than saturated into a false number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{subject}: {quantity} sums to {total}, which does not fit in a 64-bit quantity")]
pub struct TotalTooLarge {
    /// What was summed, e.g. `zone "chilled-a"`.
    pub subject: String,
    /// The field, e.g. `on_hand`.
    pub quantity: &'static str,
    /// The exact total.
    pub total: i128,
}

impl TotalTooLarge {
    /// `total` as a 64-bit quantity, or the refusal naming `quantity` of `subject`.
    pub fn fit(
        total: i128,
        quantity: &'static str,
        subject: impl FnOnce() -> String,
    ) -> Result<i64, TotalTooLarge> {
        i64::try_from(total).map_err(|_| TotalTooLarge {
            subject: subject(),
            quantity,
            total,
        })
    }
}

#[cfg(test)]
mod tests;
