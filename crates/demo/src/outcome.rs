//! What the demo did, with figures (the `--json` document), and how a step fails.

use coldchain_ops::CliError;
use serde::Serialize;

/// One lot received.
#[derive(Debug, Clone, Serialize)]
pub struct LotOutcome {
    pub site_id: String,
    pub sku: String,
    pub lot_id: String,
    pub zone_id: String,
    pub quantity: i64,
    pub unit: String,
    pub expiry: String,
    pub origin: String,
    pub sequence: u64,
}

/// What the park's processing line did: a transformation and a relocation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcessingOutcome {
    /// The transformation's id at the park.
    pub transformation_id: String,
    /// `sku/lot: quantity unit` consumed.
    pub input: String,
    /// The lot consumed, and how much of it.
    pub input_lot_id: String,
    pub input_quantity: i64,
    /// `sku/lot: quantity unit` produced.
    pub output: String,
    /// Output mass over input mass, percent.
    pub yield_percent: f64,
    /// `sku/lot: quantity from (class) -> to (class)`.
    pub relocation: String,
    /// The ledger sequences it recorded.
    pub sequences: Vec<u64>,
}

/// One transfer line and the stock of its lot at both ends afterwards.
#[derive(Debug, Clone, Serialize)]
pub struct TransferLineOutcome {
    pub sku: String,
    pub lot_id: String,
    pub source_zone_id: String,
    pub destination_zone_id: String,
    pub quantity: i64,
    pub unit: String,
    /// The lot's on-hand quantity at the source after the transfer.
    pub source_on_hand: i64,
    /// The lot's on-hand quantity at the destination after the transfer.
    pub destination_on_hand: i64,
    /// The part of it under a hold at the destination.
    pub destination_held: i64,
}

/// The corridor transfer.
#[derive(Debug, Clone, Serialize)]
pub struct TransferOutcome {
    pub transfer_id: String,
    pub source_site_id: String,
    pub destination_site_id: String,
    pub train_or_route: String,
    pub reefer_container_id: String,
    pub reefer_sensor_id: String,
    /// The state StartTransfer answered.
    pub state_after_start: String,
    /// The final state.
    pub state: String,
    pub last_error: String,
    pub lines: Vec<TransferLineOutcome>,
}

/// The reefer's readings.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReadingsOutcome {
    pub site_id: String,
    pub sensor_id: String,
    pub sent: i64,
    /// Streamed live (StreamReadings) during the journey.
    pub streamed_live: i64,
    /// Buffered by the logger and uploaded on arrival (PushReadings).
    pub uploaded_on_arrival: i64,
    pub accepted: i64,
    pub duplicates: i64,
    pub rejected: i64,
    pub min_celsius: f64,
    pub max_celsius: f64,
    /// True when the demo had to register the sensor itself (the gateway had not).
    pub registered_by_demo: bool,
}

/// The excursion alarm.
#[derive(Debug, Clone, Serialize)]
pub struct AlarmOutcome {
    pub site_id: String,
    pub alarm_id: String,
    pub kind: String,
    pub state: String,
    pub limit_celsius: f64,
    pub peak_celsius: f64,
    pub degree_minutes: f64,
    pub duration_ms: Option<i64>,
    pub hold_status: String,
    pub hold_ids: Vec<String>,
    pub hold_last_error: String,
    pub acknowledged_by: String,
    /// Milliseconds from the upload of the excursion's readings until the hold was seen
    /// PLACED.
    pub hold_placed_after_ms: Option<u64>,
}

/// A booking made by the demo.
#[derive(Debug, Clone, Serialize)]
pub struct BookingOutcome {
    /// Who made it and why.
    pub role: String,
    pub site_id: String,
    pub booking_id: String,
    pub customer_id: String,
    pub zone_id: String,
    pub temperature_class: String,
    pub pallets: i32,
    pub first_day: String,
    pub last_day: String,
    /// The states it went through, in order.
    pub states: Vec<String>,
    /// Its final state.
    pub state: String,
}

/// A sku's stock across the network (gateway FindStock).
#[derive(Debug, Clone, Default, Serialize)]
pub struct StockOutcome {
    pub sku: String,
    pub unit: String,
    pub park_on_hand: i64,
    pub vientiane_on_hand: i64,
    pub vientiane_held: i64,
    pub in_transit: i64,
    pub sites_answered: usize,
    pub site_failures: Vec<String>,
}

/// What the warehouse system following Vientiane's ledger saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LedgerOutcome {
    pub site_id: String,
    pub from_sequence: u64,
    /// The ledger's head when the follower caught up, before the day began.
    pub head_at_start: u64,
    /// Every entry read, history included.
    pub entries_read: u64,
    /// Entries recorded after the follower caught up (live).
    pub entries_seen: u64,
    /// Entries about this run's lots or transfer.
    pub run_entries: u64,
    pub transfer_in_entries: u64,
    pub receipt_entries: u64,
    pub hold_entries: u64,
    pub last_sequence: u64,
    pub reconnects: u64,
    pub error: Option<String>,
    pub timed_out: bool,
}

/// Everything the demo did, with figures.
#[derive(Debug, Clone, Serialize)]
pub struct DemoOutcome {
    pub run_id: String,
    /// RecordMovements calls answered OK at each site's inventory on the demo's behalf: its
    /// own, and those of the transfer's saga. After one demo on a fresh network, each site's
    /// `rpc_server_call_duration_seconds_count` for RecordMovements with code OK is this.
    pub record_movements_ok: std::collections::BTreeMap<String, u64>,
    pub gateway: String,
    pub sites: usize,
    pub services_serving: usize,
    pub services_total: usize,
    pub received_lots: Vec<LotOutcome>,
    pub transfer: TransferOutcome,
    pub transfer_state: String,
    pub readings: ReadingsOutcome,
    pub alarm: Option<AlarmOutcome>,
    pub hold_placed: bool,
    pub bookings: Vec<BookingOutcome>,
    pub bookings_held: usize,
    pub bookings_confirmed: usize,
    pub bookings_cancelled: usize,
    pub bookings_checked_in: usize,
    pub stock: StockOutcome,
    /// What the park's processing line did.
    pub processing: ProcessingOutcome,
    /// The trace of the excursion's lot (none when the transfer had no line).
    pub trace: Option<crate::trace::TraceOutcome>,
    /// The trace of the segment lot, back to the orchard lot it was made from.
    pub segments_trace: Option<crate::trace::TraceOutcome>,
    pub ledger: LedgerOutcome,
    pub ledger_entries_seen: u64,
    pub active_alarms: usize,
    pub warnings: Vec<String>,
    pub elapsed_ms: u64,
}

/// A failed step.
#[derive(Debug)]
pub struct DemoError {
    /// The step, e.g. `park receipts`.
    pub step: String,
    /// What went wrong.
    pub error: CliError,
}

/// The failure of `step` on a gRPC status.
pub(crate) fn step_err(step: &str) -> impl Fn(tonic::Status) -> DemoError + '_ {
    move |status| DemoError {
        step: step.to_string(),
        error: status.into(),
    }
}

/// `step` cannot be run as configured.
pub(crate) fn usage(step: &str, message: String) -> DemoError {
    DemoError {
        step: step.to_string(),
        error: CliError::Usage(message),
    }
}

/// `step` failed for a reason other than a call.
pub(crate) fn failed(step: &str, message: String) -> DemoError {
    DemoError {
        step: step.to_string(),
        error: CliError::Failed(message),
    }
}
