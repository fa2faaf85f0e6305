//! Our side of every scenario, one module each, on the servers of [`crate::host`].

mod booking;
mod ceiling;
mod history;
mod inventory;
mod query;
mod telemetry;

use std::time::{SystemTime, UNIX_EPOCH};

pub use booking::{booking, booking_pair, booking_pair_held_for};
pub use ceiling::ceiling;
pub use history::{
    ENTRIES_PER_LOT, FILL_CONCURRENCY, History, HistoryClock, Phase, booking_history,
    fill_bookings, fill_ledger, inventory_history, list_bookings_load,
};
pub use inventory::{fill_request, inventory, receipt_request};
pub use query::telemetry_query;
pub use telemetry::{ROUND_SECONDS, readings_csv, readings_round, telemetry};

/// A fresh id for a scenario's run, so that its request ids are new to the server.
pub fn run_id() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
