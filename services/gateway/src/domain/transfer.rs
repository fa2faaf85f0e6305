//! Corridor transfers: what a client asks for, the stored transfer and its state machine
//! (REQUESTED → IN_TRANSIT → RECEIVING → COMPLETED, or FAILED), and the TRANSFER_IN lines.

use std::fmt;

use chrono::NaiveDate;
use coldchain_audit::Author;
use coldchain_network::TemperatureClass;
use serde::{Deserialize, Serialize};

use super::TotalTooLarge;

/// The state of a corridor transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TransferState {
    /// Recorded; the TRANSFER_OUT at the source is not yet confirmed.
    Requested,
    /// The source recorded the TRANSFER_OUT; the goods travel.
    InTransit,
    /// Arrival reported; the TRANSFER_IN at the destination is not yet confirmed.
    Receiving,
    /// The destination recorded the TRANSFER_IN. Final.
    Completed,
    /// The source refused the TRANSFER_OUT; nothing moved. Final.
    Failed,
}

impl TransferState {
    /// Every state.
    pub const ALL: [TransferState; 5] = [
        TransferState::Requested,
        TransferState::InTransit,
        TransferState::Receiving,
        TransferState::Completed,
        TransferState::Failed,
    ];

    /// The proto name without prefix, e.g. `IN_TRANSIT`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TransferState::Requested => "REQUESTED",
            TransferState::InTransit => "IN_TRANSIT",
            TransferState::Receiving => "RECEIVING",
            TransferState::Completed => "COMPLETED",
            TransferState::Failed => "FAILED",
        }
    }

    /// True for the states whose stock is between the two sites.
    pub const fn is_travelling(self) -> bool {
        matches!(self, TransferState::InTransit | TransferState::Receiving)
    }

    /// True for COMPLETED and FAILED.
    pub const fn is_final(self) -> bool {
        matches!(self, TransferState::Completed | TransferState::Failed)
    }
}

impl fmt::Display for TransferState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The attributes of a lot as stored at the source (copied into the transfer when the
/// source records the TRANSFER_OUT, so the destination's TRANSFER_IN carries them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    /// The lot's id.
    pub lot_id: String,
    /// Its last day of use (site-local), if known.
    pub expiry: Option<NaiveDate>,
    /// Its production date, if known.
    pub production: Option<NaiveDate>,
    /// Its origin, free text.
    pub origin: String,
}

/// One line of a transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// The sku.
    pub sku: String,
    /// The lot.
    pub lot_id: String,
    /// The zone at the source.
    pub source_zone_id: String,
    /// The zone at the destination.
    pub destination_zone_id: String,
    /// The quantity, > 0, in `unit`.
    pub quantity: i64,
    /// The sku's base unit.
    pub unit: String,
    /// The lot's attributes from the source; `None` until the TRANSFER_OUT is recorded.
    pub lot: Option<Lot>,
}

/// What a client asks to transfer, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferSpec {
    /// The id the client chose, if any.
    pub transfer_id: Option<String>,
    /// The site the goods leave.
    pub source_site_id: String,
    /// The site the goods go to.
    pub destination_site_id: String,
    /// The lines (their `lot` is `None`).
    pub lines: Vec<Line>,
    /// The reefer's sensor; empty: none.
    pub reefer_sensor_id: String,
    /// The reefer container; empty: none.
    pub reefer_container_id: String,
    /// The cargo's class (resolved: never unset).
    pub reefer_class: TemperatureClass,
    /// The train or route.
    pub train_or_route: String,
}

/// The state of the reefer-sensor binding step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SensorBinding {
    /// The transfer has no reefer sensor.
    NotRequired,
    /// To be registered with the source's telemetry service.
    Pending,
    /// Registered, bound to the transfer.
    Bound,
    /// The telemetry service refused the registration (see `last_error`); not retried.
    Refused,
}

/// A refusal by a site service: the gRPC code (its number) and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The gRPC status code, as its number.
    pub code: i32,
    /// The status message.
    pub message: String,
}

/// A corridor transfer, as the gateway stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    /// Its id.
    pub transfer_id: String,
    /// The source site.
    pub source_site_id: String,
    /// The destination site.
    pub destination_site_id: String,
    /// The lines.
    pub lines: Vec<Line>,
    /// The state now.
    pub state: TransferState,
    /// The reefer's sensor; empty: none.
    pub reefer_sensor_id: String,
    /// The reefer container; empty: none.
    pub reefer_container_id: String,
    /// The cargo's class, by its fixed name.
    #[serde(with = "class_name")]
    pub reefer_class: TemperatureClass,
    /// The train or route.
    pub train_or_route: String,
    /// When StartTransfer recorded it (ms since the epoch).
    pub created_ms: i64,
    /// When the source recorded the TRANSFER_OUT.
    pub shipped_ms: Option<i64>,
    /// When ReceiveTransfer reported the arrival.
    pub received_ms: Option<i64>,
    /// When the destination recorded the TRANSFER_IN.
    pub completed_ms: Option<i64>,
    /// When it last changed.
    pub updated_ms: i64,
    /// The latest error of a step not yet done ("CODE: message"); empty when none.
    pub last_error: String,
    /// FAILED: the source's refusal, answered again to StartTransfer replays.
    pub refusal: Option<Refusal>,
    /// The reefer-sensor binding step.
    pub sensor: SensorBinding,
    /// Who started it (StartTransfer). Not in the serde layout: the store keeps the
    /// authors after the fields earlier builds stored (see `store::stored`), so a transfer
    /// an earlier build wrote still decodes, as [`Author::unknown`].
    #[serde(skip)]
    pub started_by: Author,
    /// Who reported its arrival (ReceiveTransfer); `None` until then. Stored like
    /// `started_by`.
    #[serde(skip)]
    pub arrival_reported_by: Option<Author>,
}

/// Why a transfer operation is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// No transfer with this id.
    #[error("transfer_id {0:?} not found")]
    NotFound(String),
    /// The id is taken by a transfer with another definition.
    #[error("transfer_id {0:?} is already taken by a different transfer")]
    AlreadyExists(String),
    /// The transfer is not in a state the operation accepts.
    #[error("transfer {transfer_id:?} is {state}; {operation} needs {wanted}")]
    WrongState {
        /// The transfer.
        transfer_id: String,
        /// Its state.
        state: TransferState,
        /// The operation refused.
        operation: &'static str,
        /// The states it accepts.
        wanted: &'static str,
    },
}

impl Transfer {
    /// A new transfer in state REQUESTED, started by `started_by`.
    pub fn new(transfer_id: String, spec: TransferSpec, started_by: Author, now_ms: i64) -> Self {
        let sensor = if spec.reefer_sensor_id.is_empty() {
            SensorBinding::NotRequired
        } else {
            SensorBinding::Pending
        };
        Self {
            transfer_id,
            source_site_id: spec.source_site_id,
            destination_site_id: spec.destination_site_id,
            lines: spec.lines,
            state: TransferState::Requested,
            reefer_sensor_id: spec.reefer_sensor_id,
            reefer_container_id: spec.reefer_container_id,
            reefer_class: spec.reefer_class,
            train_or_route: spec.train_or_route,
            created_ms: now_ms,
            shipped_ms: None,
            received_ms: None,
            completed_ms: None,
            updated_ms: now_ms,
            last_error: String::new(),
            refusal: None,
            sensor,
            started_by,
            arrival_reported_by: None,
        }
    }

    /// The actor the saga names on the source's TRANSFER_OUT and the telemetry's sensor
    /// registration: on whose behalf the gateway acts. Empty for a transfer an earlier
    /// build started (author unknown): its steps may already have reached a site with no
    /// actor, and a retry must send the same bytes under the same request_id.
    pub fn start_actor(&self) -> String {
        behalf(&self.started_by)
    }

    /// The actor the saga names on the destination's TRANSFER_IN: who reported the
    /// arrival (the starter when none is recorded); empty when unknown, as
    /// [`Self::start_actor`].
    pub fn arrival_actor(&self) -> String {
        behalf(
            self.arrival_reported_by
                .as_ref()
                .unwrap_or(&self.started_by),
        )
    }

    /// True when `spec` describes this transfer (same sites, lines, reefer and route): a
    /// StartTransfer repeating it is not "a different transfer".
    pub fn same_definition(&self, spec: &TransferSpec) -> bool {
        let lines_match = self.lines.len() == spec.lines.len()
            && self.lines.iter().zip(&spec.lines).all(|(a, b)| {
                a.sku == b.sku
                    && a.lot_id == b.lot_id
                    && a.source_zone_id == b.source_zone_id
                    && a.destination_zone_id == b.destination_zone_id
                    && a.quantity == b.quantity
                    && a.unit == b.unit
            });
        lines_match
            && self.source_site_id == spec.source_site_id
            && self.destination_site_id == spec.destination_site_id
            && self.reefer_sensor_id == spec.reefer_sensor_id
            && self.reefer_container_id == spec.reefer_container_id
            && self.reefer_class == spec.reefer_class
            && self.train_or_route == spec.train_or_route
    }

    /// True while the saga has a step to do: the TRANSFER_OUT (REQUESTED), the
    /// TRANSFER_IN (RECEIVING), or the sensor binding (IN_TRANSIT with a pending sensor).
    pub fn needs_work(&self) -> bool {
        match self.state {
            TransferState::Requested | TransferState::Receiving => true,
            TransferState::InTransit => self.sensor == SensorBinding::Pending,
            TransferState::Completed | TransferState::Failed => false,
        }
    }

    /// The distinct skus of the lines, in line order.
    pub fn skus(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for line in &self.lines {
            if !out.contains(&line.sku.as_str()) {
                out.push(&line.sku);
            }
        }
        out
    }

    /// The source recorded the TRANSFER_OUT: REQUESTED → IN_TRANSIT, with the lots' stored
    /// attributes (one per line, in order). Repeating it later changes nothing.
    pub fn shipped(
        &mut self,
        lots: Vec<Lot>,
        shipped_ms: i64,
        now_ms: i64,
    ) -> Result<bool, TransferError> {
        match self.state {
            TransferState::Requested => {
                for (line, lot) in self.lines.iter_mut().zip(lots) {
                    line.lot = Some(lot);
                }
                self.state = TransferState::InTransit;
                self.shipped_ms = Some(shipped_ms);
                self.last_error.clear();
                self.updated_ms = now_ms;
                Ok(true)
            }
            TransferState::InTransit | TransferState::Receiving | TransferState::Completed => {
                Ok(false)
            }
            TransferState::Failed => {
                Err(self.wrong_state("recording the transfer_out", "REQUESTED"))
            }
        }
    }

    /// The source refused the TRANSFER_OUT: REQUESTED → FAILED (nothing moved). In any
    /// other state nothing changes.
    pub fn refused(&mut self, refusal: Refusal, error: String, now_ms: i64) -> bool {
        if self.state != TransferState::Requested {
            return false;
        }
        self.state = TransferState::Failed;
        self.last_error = error;
        self.refusal = Some(refusal);
        self.updated_ms = now_ms;
        true
    }

    /// A step of state `during` failed (and will be retried): records the error, if the
    /// transfer is still in that state.
    pub fn step_failed(&mut self, during: TransferState, error: String, now_ms: i64) -> bool {
        if self.state != during || self.last_error == error {
            return false;
        }
        self.last_error = error;
        self.updated_ms = now_ms;
        true
    }

    /// The reefer sensor was registered with the binding.
    pub fn sensor_bound(&mut self, now_ms: i64) -> bool {
        if self.sensor != SensorBinding::Pending {
            return false;
        }
        self.sensor = SensorBinding::Bound;
        if self.state == TransferState::InTransit {
            self.last_error.clear();
        }
        self.updated_ms = now_ms;
        true
    }

    /// The telemetry service refused the sensor registration: not retried.
    pub fn sensor_refused(&mut self, error: String, now_ms: i64) -> bool {
        if self.sensor != SensorBinding::Pending {
            return false;
        }
        self.sensor = SensorBinding::Refused;
        if self.state == TransferState::InTransit {
            self.last_error = error;
        }
        self.updated_ms = now_ms;
        true
    }

    /// ReceiveTransfer by `reported_by`: IN_TRANSIT → RECEIVING; RECEIVING stays (a repeat
    /// resumes it, and the first report's author stays).
    pub fn arrived(&mut self, reported_by: Author, now_ms: i64) -> Result<bool, TransferError> {
        match self.state {
            TransferState::InTransit => {
                self.state = TransferState::Receiving;
                self.received_ms = Some(now_ms);
                self.arrival_reported_by = Some(reported_by);
                self.last_error.clear();
                self.updated_ms = now_ms;
                Ok(true)
            }
            TransferState::Receiving => Ok(false),
            _ => Err(self.wrong_state("ReceiveTransfer", "IN_TRANSIT or RECEIVING")),
        }
    }

    /// The destination recorded the TRANSFER_IN: RECEIVING → COMPLETED.
    pub fn completed(&mut self, completed_ms: i64, now_ms: i64) -> Result<bool, TransferError> {
        match self.state {
            TransferState::Receiving => {
                self.state = TransferState::Completed;
                self.completed_ms = Some(completed_ms);
                self.last_error.clear();
                self.updated_ms = now_ms;
                Ok(true)
            }
            TransferState::Completed => Ok(false),
            _ => Err(self.wrong_state("recording the transfer_in", "RECEIVING")),
        }
    }

    fn wrong_state(&self, operation: &'static str, wanted: &'static str) -> TransferError {
        TransferError::WrongState {
            transfer_id: self.transfer_id.clone(),
            state: self.state,
            operation,
            wanted,
        }
    }

    /// The TRANSFER_IN lines: one per (sku, lot) — the destination dedupes by (transfer,
    /// sku, lot) — with the quantities of lines of the same lot summed exactly, in line
    /// order. [`super::check_lines`] guarantees lines of one lot share destination zone and unit
    /// and that the sums fit; a sum that does not is refused, never saturated.
    pub fn receipt_lines(&self) -> Result<Vec<ReceiptLine>, TotalTooLarge> {
        let mut out: Vec<(ReceiptLine, i128)> = Vec::new();
        for line in &self.lines {
            if let Some((_, total)) = out
                .iter_mut()
                .find(|(r, _)| r.sku == line.sku && r.lot_id == line.lot_id)
            {
                *total += i128::from(line.quantity);
                continue;
            }
            out.push((
                ReceiptLine {
                    sku: line.sku.clone(),
                    lot_id: line.lot_id.clone(),
                    lot: line.lot.clone(),
                    zone_id: line.destination_zone_id.clone(),
                    quantity: line.quantity,
                    unit: line.unit.clone(),
                },
                i128::from(line.quantity),
            ));
        }
        out.into_iter()
            .map(|(mut receipt, total)| {
                receipt.quantity = TotalTooLarge::fit(total, "quantity", || {
                    format!(
                        "transfer {:?} sku {:?} lot {:?}",
                        self.transfer_id, receipt.sku, receipt.lot_id
                    )
                })?;
                Ok(receipt)
            })
            .collect()
    }
}

/// `author.on_behalf()`, or empty for the author of records kept before authors were.
fn behalf(author: &Author) -> String {
    if author.principal == coldchain_audit::UNKNOWN {
        String::new()
    } else {
        author.on_behalf()
    }
}

/// Filters of ListTransfers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransferFilter {
    /// Only these states (empty: all).
    pub states: Vec<TransferState>,
    /// Only from this site (empty: any).
    pub source_site_id: String,
    /// Only to this site (empty: any).
    pub destination_site_id: String,
}

impl TransferFilter {
    /// True when `t` passes the filters.
    pub fn matches(&self, t: &Transfer) -> bool {
        (self.states.is_empty() || self.states.contains(&t.state))
            && (self.source_site_id.is_empty() || self.source_site_id == t.source_site_id)
            && (self.destination_site_id.is_empty()
                || self.destination_site_id == t.destination_site_id)
    }
}

/// The answer an idempotent transfer call keeps for its replays: the transfer it concerns.
/// A replay answers the transfer's current state, read after the replay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransferRef {
    /// The transfer's id.
    pub transfer_id: String,
}

/// One TRANSFER_IN movement at the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptLine {
    /// The sku.
    pub sku: String,
    /// The lot.
    pub lot_id: String,
    /// The lot's attributes from the source.
    pub lot: Option<Lot>,
    /// The destination zone.
    pub zone_id: String,
    /// The quantity (summed over the lot's lines).
    pub quantity: i64,
    /// The unit.
    pub unit: String,
}

/// Serde of a [`TemperatureClass`] by its fixed name.
mod class_name {
    use super::TemperatureClass;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(class: &TemperatureClass, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(class.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TemperatureClass, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}
