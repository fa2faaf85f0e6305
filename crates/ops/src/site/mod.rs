//! Commands that talk to one site's services directly, through the endpoints of the network
//! file, one module a service: `hold`, `confirm`, `cancel`, `bookings` (booking), `ack`,
//! `readings` (telemetry), `ledger` (inventory).
//!
//! Each calls as the role that does that work (`--as` names another credential): `hold` as
//! the customer's booking client, `confirm` as the booking's own customer (the only roles
//! the booking service lets book and confirm), `ledger` as the site's warehouse system, the
//! rest as operations.

mod booking;
mod excursion;
mod inventory;
mod telemetry;

pub use booking::{
    BookingsArgs, CancelArgs, ConfirmArgs, HoldArgs, bookings, cancel, confirm, hold,
};
pub use excursion::{ReportCommand, report};
pub use inventory::{LedgerArgs, ledger};
pub use telemetry::{AckArgs, ReadingsArgs, ack, readings};
