//! What the checker judges: the history the clients recorded (every acknowledged write, and
//! what went wrong on the way) and the state observed at the end, after the network settled.
//! Plain data, so a test can build a broken history by hand.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

/// A movement's effect on one position, as the client asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MovementKind {
    /// Goods received from outside the network.
    Receipt,
    /// Goods leaving the network.
    Issue,
    /// A signed correction (a write-off is negative).
    Adjustment,
}

/// One movement of an acknowledged batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MovementLine {
    /// Receipt, issue or adjustment.
    pub kind: MovementKind,
    /// The sku.
    pub sku: String,
    /// The lot.
    pub lot: String,
    /// The zone.
    pub zone: String,
    /// The signed change to on hand it makes.
    pub delta: i64,
}

/// A RecordMovements batch the client sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MovementWrite {
    /// The site.
    pub site: String,
    /// The batch's request id.
    pub request_id: String,
    /// Its movements.
    pub lines: Vec<MovementLine>,
    /// The ledger sequences the acknowledgement named; empty when no answer came.
    pub sequences: Vec<u64>,
}

/// One line of a transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferLine {
    /// The sku.
    pub sku: String,
    /// The lot.
    pub lot: String,
    /// The quantity moved.
    pub quantity: i64,
}

/// A StartTransfer the gateway acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferAck {
    /// The transfer.
    pub transfer_id: String,
    /// The call's request id.
    pub request_id: String,
    /// Where the goods leave.
    pub source: String,
    /// Where they go.
    pub destination: String,
    /// What moves.
    pub lines: Vec<TransferLine>,
}

/// The state a booking's last acknowledged call left it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingFate {
    /// HoldSpace acknowledged.
    Held,
    /// ConfirmBooking acknowledged.
    Confirmed,
    /// CancelBooking acknowledged.
    Cancelled,
}

/// A booking a client holds an acknowledgement of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BookingAck {
    /// The site.
    pub site: String,
    /// The booking.
    pub booking_id: String,
    /// The last acknowledged call's request id.
    pub request_id: String,
    /// The state that call left it in.
    pub fate: BookingFate,
}

/// A PushReadings batch acknowledged by a site's telemetry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadingsAck {
    /// The site.
    pub site: String,
    /// The sensor.
    pub sensor: String,
    /// The call's request id.
    pub request_id: String,
    /// The readings' times, milliseconds since the epoch.
    pub times_ms: Vec<i64>,
}

/// An alarm event as a watcher received it (or as the site's own feed holds it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlarmEventSeen {
    /// The site's event sequence.
    pub sequence: u64,
    /// The alarm.
    pub alarm_id: String,
}

/// An answer no client should ever get, or a call that never got one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadAnswer {
    /// The operation and its request id.
    pub call: String,
    /// The gRPC code name, or `NO_ANSWER`.
    pub code: String,
    /// The status message.
    pub message: String,
}

/// Everything the clients recorded.
#[derive(Debug, Clone, Default, Serialize)]
pub struct History {
    /// Acknowledged RecordMovements batches.
    pub movements: Vec<MovementWrite>,
    /// Batches that got no answer at all (applied or not: the ledger tells).
    pub unanswered_movements: Vec<MovementWrite>,
    /// Acknowledged StartTransfer calls.
    pub transfers: Vec<TransferAck>,
    /// Acknowledged bookings, by their last acknowledged call.
    pub bookings: Vec<BookingAck>,
    /// Acknowledged readings.
    pub readings: Vec<ReadingsAck>,
    /// Per site, the alarm events the reconnecting WatchAlarms consumer received, in order.
    pub watched: BTreeMap<String, Vec<AlarmEventSeen>>,
    /// INTERNAL or UNKNOWN answers, and calls never answered.
    pub bad_answers: Vec<BadAnswer>,
    /// Processes that exited without an injected fault, with how.
    pub unexpected_exits: Vec<String>,
}

/// The kind of a ledger entry, as far as the checker cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// RECEIPT, ISSUE, ADJUSTMENT or COUNT.
    Movement,
    /// TRANSFER_OUT.
    TransferOut,
    /// TRANSFER_IN.
    TransferIn,
    /// HOLD_PLACED.
    HoldPlaced,
    /// Anything else (allocations, hold releases).
    Other,
}

/// One entry of a site's ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerRow {
    /// Its sequence.
    pub sequence: u64,
    /// The request id that recorded it.
    pub request_id: String,
    /// What it is.
    pub kind: EntryKind,
    /// The sku.
    pub sku: String,
    /// The lot.
    pub lot: String,
    /// The change to on hand.
    pub delta: i64,
    /// Transfers: the transfer.
    pub transfer_id: String,
    /// Holds: the hold.
    pub hold_id: String,
}

/// A position's stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StockRow {
    /// The sku.
    pub sku: String,
    /// The lot.
    pub lot: String,
    /// The zone.
    pub zone: String,
    /// On hand.
    pub on_hand: i64,
}

/// A booking's state as the site answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingState {
    /// HELD.
    Held,
    /// CONFIRMED.
    Confirmed,
    /// CHECKED_IN.
    CheckedIn,
    /// COMPLETED, CANCELLED, EXPIRED or NO_SHOW: no longer occupying space.
    Closed(ClosedAs),
}

/// How a booking stopped occupying space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClosedAs {
    /// COMPLETED.
    Completed,
    /// CANCELLED.
    Cancelled,
    /// EXPIRED.
    Expired,
    /// NO_SHOW.
    NoShow,
}

impl BookingState {
    /// True while the booking occupies space.
    pub fn is_live(self) -> bool {
        !matches!(self, BookingState::Closed(_))
    }
}

/// A booking as the site answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedBooking {
    /// The booking.
    pub booking_id: String,
    /// Its zone.
    pub zone: String,
    /// Pallets per day.
    pub pallets: i64,
    /// First day, inclusive.
    pub first_day: NaiveDate,
    /// Last day, inclusive.
    pub last_day: NaiveDate,
    /// Its state.
    pub state: BookingState,
}

/// One zone and day of GetAvailability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayAvailability {
    /// The zone.
    pub zone: String,
    /// The day.
    pub day: NaiveDate,
    /// Capacity.
    pub capacity: i64,
    /// Pallets held, confirmed and checked in.
    pub occupied: i64,
    /// Free, as the site answers it.
    pub free: i64,
}

/// An alarm as the site answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedAlarm {
    /// The alarm.
    pub alarm_id: String,
    /// An excursion (high or low), which requires a hold.
    pub excursion: bool,
    /// PLACED, PENDING, NOT_REQUIRED.
    pub hold_status: String,
    /// The holds placed for it.
    pub hold_ids: Vec<String>,
}

/// What one site answered at the end.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SiteState {
    /// Its whole ledger.
    pub ledger: Vec<LedgerRow>,
    /// Its stock, every position.
    pub stock: Vec<StockRow>,
    /// Zone capacities.
    pub capacity: BTreeMap<String, i64>,
    /// Every booking.
    pub bookings: Vec<ObservedBooking>,
    /// Availability of the days the soak booked.
    pub availability: Vec<DayAvailability>,
    /// Every alarm.
    pub alarms: Vec<ObservedAlarm>,
    /// Its alarm event feed from the first sequence.
    pub alarm_events: Vec<AlarmEventSeen>,
    /// Per sensor, how many readings are stored over the soak's span.
    pub readings: BTreeMap<String, i64>,
}

/// The state of a transfer, as the gateway answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferState {
    /// REQUESTED.
    Requested,
    /// IN_TRANSIT.
    InTransit,
    /// RECEIVING.
    Receiving,
    /// COMPLETED.
    Completed,
    /// FAILED.
    Failed,
}

/// A transfer as the gateway answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedTransfer {
    /// The transfer.
    pub transfer_id: String,
    /// Its state.
    pub state: TransferState,
    /// The source site.
    pub source: String,
    /// The destination site.
    pub destination: String,
    /// What it moves.
    pub lines: Vec<TransferLine>,
}

/// The network at the end.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Observed {
    /// Per site.
    pub sites: BTreeMap<String, SiteState>,
    /// Every transfer the gateway knows.
    pub transfers: Vec<ObservedTransfer>,
}
