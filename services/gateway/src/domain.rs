//! The gateway's rules, pure: the corridor-transfer state machine, the checks of a
//! transfer against the network file, and the arithmetic of the fan-out answers (stock per
//! zone, space offers sorted by fit, the merged alarm order, paging and backoff).
//!
//! No I/O, no tonic, no sled: everything here is a function of its arguments.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::NaiveDate;
use coldchain_runtime::network::{NetworkConfig, TemperatureClass};
use serde::{Deserialize, Serialize};

/// The default page size of every list.
pub const DEFAULT_PAGE_SIZE: usize = coldchain_runtime::validate::DEFAULT_PAGE_SIZE;
/// The largest page of every list; larger requests are clamped.
pub const MAX_PAGE_SIZE: usize = coldchain_runtime::validate::MAX_PAGE_SIZE;
/// The most lines in one transfer.
pub const MAX_LINES: usize = 1000;
/// The most days in a FindSpace range.
pub const MAX_RANGE_DAYS: i64 = 366;
/// The longest `train_or_route`, in bytes.
pub const MAX_ROUTE_BYTES: usize = 128;
/// The longest unit, in bytes.
pub const MAX_UNIT_BYTES: usize = 16;

/// A page size as asked (≥ 0, validated elsewhere) → the page size used: 0 is the
/// default, above the maximum is clamped.
pub fn page_size(asked: i32) -> usize {
    match usize::try_from(asked) {
        Ok(0) | Err(_) => DEFAULT_PAGE_SIZE,
        Ok(n) => n.min(MAX_PAGE_SIZE),
    }
}

// ---------------------------------------------------------------------------------------
// Transfers

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
    /// A new transfer in state REQUESTED.
    pub fn new(transfer_id: String, spec: TransferSpec, now_ms: i64) -> Self {
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
        }
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

    /// ReceiveTransfer: IN_TRANSIT → RECEIVING; RECEIVING stays (a repeat resumes it).
    pub fn arrived(&mut self, now_ms: i64) -> Result<bool, TransferError> {
        match self.state {
            TransferState::InTransit => {
                self.state = TransferState::Receiving;
                self.received_ms = Some(now_ms);
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
    /// sku, lot) — with the quantities of lines of the same lot summed, in line order.
    /// [`check_lines`] guarantees lines of one lot share destination zone and unit and that
    /// the sums fit.
    pub fn receipt_lines(&self) -> Vec<ReceiptLine> {
        let mut out: Vec<ReceiptLine> = Vec::new();
        for line in &self.lines {
            if let Some(existing) = out
                .iter_mut()
                .find(|r| r.sku == line.sku && r.lot_id == line.lot_id)
            {
                existing.quantity = existing.quantity.saturating_add(line.quantity);
                continue;
            }
            out.push(ReceiptLine {
                sku: line.sku.clone(),
                lot_id: line.lot_id.clone(),
                lot: line.lot.clone(),
                zone_id: line.destination_zone_id.clone(),
                quantity: line.quantity,
                unit: line.unit.clone(),
            });
        }
        out
    }
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

/// A problem of a transfer against the network file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineProblem {
    /// A site id is not in the network (field, id).
    UnknownSite(&'static str, String),
    /// A zone does not exist at its site (field, site, zone).
    UnknownZone(String, String, String),
    /// A field is inconsistent with the rest (field, description).
    Invalid(String, String),
}

/// Checks a transfer against the network file: both sites exist, every source zone exists
/// at the source, every destination zone exists at the destination with the source zone's
/// class; lines of one (sku, lot) go to one destination zone with one unit and their
/// summed quantity fits (the destination receives one TRANSFER_IN per transfer, sku and
/// lot).
pub fn check_lines(network: &NetworkConfig, spec: &TransferSpec) -> Vec<LineProblem> {
    let mut problems = Vec::new();
    let source = network.site(&spec.source_site_id);
    let destination = network.site(&spec.destination_site_id);
    if source.is_none() {
        problems.push(LineProblem::UnknownSite(
            "source_site_id",
            spec.source_site_id.clone(),
        ));
    }
    if destination.is_none() {
        problems.push(LineProblem::UnknownSite(
            "destination_site_id",
            spec.destination_site_id.clone(),
        ));
    }
    let mut lots: BTreeMap<(&str, &str), (usize, &str, &str, i64)> = BTreeMap::new();
    for (i, line) in spec.lines.iter().enumerate() {
        let source_class = source.and_then(|site| {
            let zone = site.zone(&line.source_zone_id);
            if zone.is_none() {
                problems.push(LineProblem::UnknownZone(
                    format!("lines[{i}].source_zone_id"),
                    site.id.clone(),
                    line.source_zone_id.clone(),
                ));
            }
            zone.map(|z| z.class)
        });
        let destination_class = destination.and_then(|site| {
            let zone = site.zone(&line.destination_zone_id);
            if zone.is_none() {
                problems.push(LineProblem::UnknownZone(
                    format!("lines[{i}].destination_zone_id"),
                    site.id.clone(),
                    line.destination_zone_id.clone(),
                ));
            }
            zone.map(|z| z.class)
        });
        if let (Some(from), Some(to)) = (source_class, destination_class)
            && from != to
        {
            problems.push(LineProblem::Invalid(
                format!("lines[{i}].destination_zone_id"),
                format!(
                    "zone {:?} is {to} but source zone {:?} is {from}; a transfer keeps its temperature class",
                    line.destination_zone_id, line.source_zone_id
                ),
            ));
        }
        match lots.get_mut(&(line.sku.as_str(), line.lot_id.as_str())) {
            None => {
                lots.insert(
                    (&line.sku, &line.lot_id),
                    (i, &line.destination_zone_id, &line.unit, line.quantity),
                );
            }
            Some((first, zone, unit, total)) => {
                if *zone != line.destination_zone_id {
                    problems.push(LineProblem::Invalid(
                        format!("lines[{i}].destination_zone_id"),
                        format!(
                            "sku {:?} lot {:?} already goes to zone {zone:?} in lines[{first}]; one lot goes to one destination zone",
                            line.sku, line.lot_id
                        ),
                    ));
                }
                if *unit != line.unit {
                    problems.push(LineProblem::Invalid(
                        format!("lines[{i}].unit"),
                        format!("{:?} differs from {unit:?} in lines[{first}]", line.unit),
                    ));
                }
                match total.checked_add(line.quantity) {
                    Some(sum) => *total = sum,
                    None => problems.push(LineProblem::Invalid(
                        format!("lines[{i}].quantity"),
                        format!(
                            "the quantities of sku {:?} lot {:?} overflow when summed",
                            line.sku, line.lot_id
                        ),
                    )),
                }
            }
        }
    }
    problems
}

/// The reefer class when the request leaves it unset: the class of the first line's source
/// zone.
pub fn default_reefer_class(
    network: &NetworkConfig,
    spec_source: &str,
    first_source_zone: &str,
) -> Option<TemperatureClass> {
    network
        .site(spec_source)?
        .zone(first_source_zone)
        .map(|z| z.class)
}

/// The id of a transfer the gateway names: derived from the request and the instant, so
/// it is stable for one write and unique across requests.
pub fn assigned_transfer_id(request_digest: &[u8; 32], now_ms: i64) -> String {
    let mut hex = String::with_capacity(20);
    for byte in request_digest.iter().take(6) {
        hex.push_str(&format!("{byte:02x}"));
    }
    format!("tr-{now_ms}-{hex}")
}

/// The idempotency key of one saga step of a transfer, sent to a site service:
/// `gateway:<transfer_id>:<step>`, or, when that would exceed the 128 bytes a request_id
/// may have, `gateway:sha256-<digest of the id>:<step>`.
fn step_request_id(transfer_id: &str, step: &str) -> String {
    let plain = format!("gateway:{transfer_id}:{step}");
    if plain.len() <= coldchain_runtime::validate::MAX_REQUEST_ID_LEN {
        return plain;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(transfer_id.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("gateway:sha256-{hex}:{step}")
}

/// The idempotency key of the source's TRANSFER_OUT of a transfer.
pub fn transfer_out_request_id(transfer_id: &str) -> String {
    step_request_id(transfer_id, "transfer-out")
}

/// The idempotency key of the destination's TRANSFER_IN of a transfer.
pub fn transfer_in_request_id(transfer_id: &str) -> String {
    step_request_id(transfer_id, "transfer-in")
}

/// The idempotency key of the reefer sensor's registration for a transfer.
pub fn sensor_request_id(transfer_id: &str) -> String {
    step_request_id(transfer_id, "reefer-sensor")
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

// ---------------------------------------------------------------------------------------
// Stock per zone

/// One position of a sku at a site, as the site's inventory reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    /// The lot.
    pub lot_id: String,
    /// The zone.
    pub zone_id: String,
    /// The lot's expiry.
    pub expiry: Option<NaiveDate>,
    /// On hand.
    pub on_hand: i64,
    /// Allocated.
    pub allocated: i64,
    /// Held.
    pub held: i64,
    /// Available.
    pub available: i64,
}

/// A sku's stock in one zone, summed over its lots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneTotals {
    /// The zone.
    pub zone_id: String,
    /// The zone's class, from the network file (`None`: the zone is not in the file).
    pub class: Option<TemperatureClass>,
    /// Sum of on hand.
    pub on_hand: i64,
    /// Sum of allocated.
    pub allocated: i64,
    /// Sum of held.
    pub held: i64,
    /// Sum of available.
    pub available: i64,
    /// The earliest expiry of the lots with stock on hand.
    pub earliest_expiry: Option<NaiveDate>,
    /// The lots with stock on hand.
    pub lot_count: i64,
}

/// Sums a site's positions per zone, keeping the zones of `class` (any when `None`) whose
/// rows pass `min_quantity`: with 0, every zone with stock on hand; above 0, zones with at
/// least that much available. Rows ordered by zone_id. Sums saturate rather than overflow.
pub fn zone_totals(
    levels: &[Level],
    zone_class: impl Fn(&str) -> Option<TemperatureClass>,
    class: Option<TemperatureClass>,
    min_quantity: i64,
) -> Vec<ZoneTotals> {
    let mut zones: BTreeMap<&str, ZoneTotals> = BTreeMap::new();
    for level in levels {
        let zone_class_now = zone_class(&level.zone_id);
        if class.is_some() && zone_class_now != class {
            continue;
        }
        let row = zones.entry(&level.zone_id).or_insert_with(|| ZoneTotals {
            zone_id: level.zone_id.clone(),
            class: zone_class_now,
            on_hand: 0,
            allocated: 0,
            held: 0,
            available: 0,
            earliest_expiry: None,
            lot_count: 0,
        });
        row.on_hand = row.on_hand.saturating_add(level.on_hand);
        row.allocated = row.allocated.saturating_add(level.allocated);
        row.held = row.held.saturating_add(level.held);
        row.available = row.available.saturating_add(level.available);
        if level.on_hand > 0 {
            row.lot_count += 1;
            if let Some(expiry) = level.expiry {
                row.earliest_expiry = Some(row.earliest_expiry.map_or(expiry, |e| e.min(expiry)));
            }
        }
    }
    zones
        .into_values()
        .filter(|row| {
            if min_quantity == 0 {
                row.on_hand > 0
            } else {
                row.available >= min_quantity
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Space offers

/// Free space of one zone over a whole day range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The site's position in the network file (the tie-break).
    pub site_index: usize,
    /// The site.
    pub site_id: String,
    /// The zone.
    pub zone_id: String,
    /// The zone's positions.
    pub capacity: i32,
    /// The least free positions on any day of the range.
    pub min_free: i32,
    /// min_free ≥ the pallets asked for.
    pub fits: bool,
}

/// One day of one zone's availability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayFree {
    /// The zone.
    pub zone_id: String,
    /// Its capacity.
    pub capacity: i32,
    /// Free positions on the day.
    pub free: i32,
}

/// The offers of one site: per zone, the least free over the days.
pub fn site_offers(site_index: usize, site_id: &str, days: &[DayFree], pallets: i32) -> Vec<Offer> {
    let mut zones: BTreeMap<&str, (i32, i32)> = BTreeMap::new();
    for day in days {
        let free = day.free.max(0);
        zones
            .entry(&day.zone_id)
            .and_modify(|(capacity, min_free)| {
                *capacity = (*capacity).max(day.capacity);
                *min_free = (*min_free).min(free);
            })
            .or_insert((day.capacity, free));
    }
    zones
        .into_iter()
        .map(|(zone_id, (capacity, min_free))| Offer {
            site_index,
            site_id: site_id.to_string(),
            zone_id: zone_id.to_string(),
            capacity,
            min_free,
            fits: min_free >= pallets,
        })
        .collect()
}

/// The order of offers: first the zones that fit, least spare room (min_free − pallets)
/// first; then those that do not, most min_free first; ties by site order, then zone_id.
pub fn compare_offers(a: &Offer, b: &Offer) -> Ordering {
    b.fits
        .cmp(&a.fits)
        .then_with(|| {
            if a.fits {
                a.min_free.cmp(&b.min_free)
            } else {
                b.min_free.cmp(&a.min_free)
            }
        })
        .then_with(|| a.site_index.cmp(&b.site_index))
        .then_with(|| a.zone_id.cmp(&b.zone_id))
}

/// The number of days from `first` to `last`, both included (≤ 0 when `last` < `first`).
pub fn days_inclusive(first: NaiveDate, last: NaiveDate) -> i64 {
    (last - first).num_days() + 1
}

// ---------------------------------------------------------------------------------------
// Merged alarms

/// Where an alarm sorts in the merged list: newest `started_at` first, then site_id, then
/// alarm_id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmKey {
    /// started_at as (seconds, nanos); (0, 0) when unset.
    pub started_at: (i64, i32),
    /// The site.
    pub site_id: String,
    /// The alarm.
    pub alarm_id: String,
}

impl Ord for AlarmKey {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .started_at
            .cmp(&self.started_at)
            .then_with(|| self.site_id.cmp(&other.site_id))
            .then_with(|| self.alarm_id.cmp(&other.alarm_id))
    }
}

impl PartialOrd for AlarmKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Where one site stands in a paged merge of its alarm list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteCursor {
    /// The site's page token of the page being consumed ("" for its first page).
    pub token: String,
    /// How many alarms of that page were already returned.
    pub skip: u32,
    /// The site's list is exhausted.
    pub done: bool,
}

/// The merged list's position: one cursor per site (absent: not started).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeCursor {
    /// Per site id.
    pub sites: BTreeMap<String, SiteCursor>,
}

// ---------------------------------------------------------------------------------------
// Backoff

/// The backoff before retry number `attempt` (1-based): `initial` doubling up to `max`.
pub fn backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1).min(20))
        .unwrap_or(u32::MAX);
    initial.saturating_mul(factor).min(max)
}

/// "Equal jitter": half the backoff fixed, half random (`unit` in [0, 1]), so a retry never
/// comes sooner than half the backoff.
pub fn jittered(backoff: Duration, unit: f64) -> Duration {
    let half = backoff / 2;
    half + half.mul_f64(unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn network() -> NetworkConfig {
        NetworkConfig::parse(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/network.toml"
        )))
        .expect("shipped network parses")
    }

    fn line(sku: &str, lot: &str, from: &str, to: &str, quantity: i64) -> Line {
        Line {
            sku: sku.into(),
            lot_id: lot.into(),
            source_zone_id: from.into(),
            destination_zone_id: to.into(),
            quantity,
            unit: "kg".into(),
            lot: None,
        }
    }

    fn spec(lines: Vec<Line>) -> TransferSpec {
        TransferSpec {
            transfer_id: Some("t-1".into()),
            source_site_id: "cn-huaihua-park".into(),
            destination_site_id: "la-vientiane".into(),
            lines,
            reefer_sensor_id: "reefer-7".into(),
            reefer_container_id: "MSKU1234565".into(),
            reefer_class: TemperatureClass::Chilled,
            train_or_route: "X8011".into(),
        }
    }

    fn lot(id: &str) -> Lot {
        Lot {
            lot_id: id.into(),
            expiry: NaiveDate::from_ymd_opt(2030, 1, 1),
            production: None,
            origin: String::new(),
        }
    }

    #[test]
    fn the_happy_path_walks_every_state() {
        let mut t = Transfer::new(
            "t-1".into(),
            spec(vec![line("kiwi", "l1", "chilled-a", "chilled-a", 5)]),
            10,
        );
        assert_eq!(t.state, TransferState::Requested);
        assert!(t.needs_work());
        assert!(t.step_failed(TransferState::Requested, "UNAVAILABLE: down".into(), 11));
        assert_eq!(t.last_error, "UNAVAILABLE: down");
        assert!(t.shipped(vec![lot("l1")], 12, 13).unwrap());
        assert_eq!(t.state, TransferState::InTransit);
        assert_eq!(t.last_error, "");
        assert_eq!(t.lines[0].lot, Some(lot("l1")));
        assert!(t.needs_work(), "the reefer sensor is still to bind");
        assert!(t.sensor_bound(14));
        assert!(!t.needs_work());
        assert!(t.arrived(15).unwrap());
        assert_eq!(t.received_ms, Some(15));
        assert!(!t.arrived(16).unwrap(), "a repeat resumes");
        assert!(t.needs_work());
        assert!(t.completed(17, 18).unwrap());
        assert_eq!(t.state, TransferState::Completed);
        assert!(!t.needs_work());
        assert!(!t.completed(19, 20).unwrap());
        assert!(matches!(
            t.arrived(21),
            Err(TransferError::WrongState { .. })
        ));
    }

    #[test]
    fn shipping_twice_changes_nothing_and_a_refusal_after_shipping_is_ignored() {
        let mut t = Transfer::new(
            "t-1".into(),
            spec(vec![line("kiwi", "l1", "chilled-a", "chilled-a", 5)]),
            10,
        );
        assert!(t.shipped(vec![lot("l1")], 12, 13).unwrap());
        let before = t.clone();
        assert!(!t.shipped(vec![lot("other")], 99, 99).unwrap());
        assert!(!t.refused(
            Refusal {
                code: 9,
                message: "no".into()
            },
            "x".into(),
            99
        ));
        assert!(!t.step_failed(TransferState::Requested, "late error".into(), 99));
        assert_eq!(t, before);
    }

    #[test]
    fn a_refusal_fails_a_requested_transfer_for_good() {
        let mut t = Transfer::new(
            "t-1".into(),
            spec(vec![line("kiwi", "l1", "chilled-a", "chilled-a", 5)]),
            10,
        );
        assert!(t.refused(
            Refusal {
                code: 9,
                message: "short".into()
            },
            "FAILED_PRECONDITION: short".into(),
            11
        ));
        assert_eq!(t.state, TransferState::Failed);
        assert!(!t.needs_work());
        assert!(t.shipped(vec![], 1, 1).is_err());
        assert!(t.arrived(12).is_err());
    }

    #[test]
    fn receipt_lines_merge_lines_of_one_lot() {
        let t = Transfer::new(
            "t-1".into(),
            spec(vec![
                line("kiwi", "l1", "chilled-a", "chilled-a", 5),
                line("citrus", "c1", "chilled-a", "chilled-a", 2),
                line("kiwi", "l1", "frozen-a", "chilled-a", 7),
            ]),
            0,
        );
        let receipts = t.receipt_lines();
        assert_eq!(receipts.len(), 2);
        assert_eq!(
            (receipts[0].sku.as_str(), receipts[0].quantity),
            ("kiwi", 12)
        );
        assert_eq!(
            (receipts[1].sku.as_str(), receipts[1].quantity),
            ("citrus", 2)
        );
    }

    #[test]
    fn lines_are_checked_against_the_network() {
        let net = network();
        assert!(
            check_lines(
                &net,
                &spec(vec![line("kiwi", "l1", "chilled-a", "chilled-a", 5)])
            )
            .is_empty()
        );
        let problems = check_lines(
            &net,
            &spec(vec![
                line("kiwi", "l1", "nope", "chilled-a", 5),
                line("kiwi", "l2", "chilled-a", "nowhere", 5),
                line("kiwi", "l3", "chilled-a", "frozen-a", 5),
                line("kiwi", "l4", "chilled-a", "chilled-a", i64::MAX),
                line("kiwi", "l4", "frozen-a", "frozen-a", 1),
            ]),
        );
        assert!(problems.contains(&LineProblem::UnknownZone(
            "lines[0].source_zone_id".into(),
            "cn-huaihua-park".into(),
            "nope".into()
        )));
        assert!(problems.contains(&LineProblem::UnknownZone(
            "lines[1].destination_zone_id".into(),
            "la-vientiane".into(),
            "nowhere".into()
        )));
        let fields: Vec<_> = problems
            .iter()
            .filter_map(|p| match p {
                LineProblem::Invalid(field, _) => Some(field.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            fields,
            [
                "lines[2].destination_zone_id",
                "lines[4].destination_zone_id",
                "lines[4].quantity"
            ]
        );
        let mut unknown = spec(vec![]);
        unknown.destination_site_id = "xx-nowhere".into();
        assert_eq!(
            check_lines(&net, &unknown),
            vec![LineProblem::UnknownSite(
                "destination_site_id",
                "xx-nowhere".into()
            )]
        );
    }

    #[test]
    fn same_definition_ignores_the_id_and_the_lots() {
        let s = spec(vec![line("kiwi", "l1", "chilled-a", "chilled-a", 5)]);
        let mut t = Transfer::new("t-1".into(), s.clone(), 0);
        t.shipped(vec![lot("l1")], 1, 1).unwrap();
        assert!(t.same_definition(&s));
        let mut other = s.clone();
        other.lines[0].quantity = 6;
        assert!(!t.same_definition(&other));
        let mut other = s;
        other.train_or_route = "X8012".into();
        assert!(!t.same_definition(&other));
    }

    #[test]
    fn stored_transfers_round_trip_through_postcard() {
        let t = Transfer::new(
            "t-1".into(),
            spec(vec![line("kiwi", "l1", "chilled-a", "chilled-a", 5)]),
            0,
        );
        let bytes = postcard::to_allocvec(&t).unwrap();
        let back: Transfer = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn zone_totals_sum_lots_and_filter() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day);
        let levels = vec![
            Level {
                lot_id: "a".into(),
                zone_id: "chilled-a".into(),
                expiry: d(2030, 5, 1),
                on_hand: 10,
                allocated: 2,
                held: 0,
                available: 8,
            },
            Level {
                lot_id: "b".into(),
                zone_id: "chilled-a".into(),
                expiry: d(2030, 3, 1),
                on_hand: 5,
                allocated: 0,
                held: 5,
                available: 0,
            },
            Level {
                lot_id: "c".into(),
                zone_id: "chilled-a".into(),
                expiry: d(2029, 1, 1),
                on_hand: 0,
                allocated: 0,
                held: 0,
                available: 0,
            },
            Level {
                lot_id: "a".into(),
                zone_id: "frozen-a".into(),
                expiry: d(2030, 5, 1),
                on_hand: 3,
                allocated: 0,
                held: 0,
                available: 3,
            },
            Level {
                lot_id: "z".into(),
                zone_id: "ambient-a".into(),
                expiry: d(2030, 5, 1),
                on_hand: 0,
                allocated: 0,
                held: 0,
                available: 0,
            },
        ];
        let class = |zone: &str| match zone {
            "chilled-a" => Some(TemperatureClass::Chilled),
            "frozen-a" => Some(TemperatureClass::Frozen),
            "ambient-a" => Some(TemperatureClass::Ambient),
            _ => None,
        };
        let rows = zone_totals(&levels, class, None, 0);
        assert_eq!(rows.len(), 2, "the empty ambient zone is skipped");
        assert_eq!(rows[0].zone_id, "chilled-a");
        assert_eq!(
            (
                rows[0].on_hand,
                rows[0].allocated,
                rows[0].held,
                rows[0].available
            ),
            (15, 2, 5, 8)
        );
        assert_eq!(
            rows[0].earliest_expiry,
            d(2030, 3, 1),
            "the empty lot's expiry does not count"
        );
        assert_eq!(rows[0].lot_count, 2);
        let frozen = zone_totals(&levels, class, Some(TemperatureClass::Frozen), 0);
        assert_eq!(frozen.len(), 1);
        assert_eq!(frozen[0].zone_id, "frozen-a");
        let at_least_5 = zone_totals(&levels, class, None, 5);
        assert_eq!(
            at_least_5
                .iter()
                .map(|r| r.zone_id.as_str())
                .collect::<Vec<_>>(),
            ["chilled-a"]
        );
    }

    #[test]
    fn offers_sort_by_fit() {
        let offer = |site_index: usize, zone: &str, min_free: i32, fits: bool| Offer {
            site_index,
            site_id: format!("s{site_index}"),
            zone_id: zone.into(),
            capacity: 100,
            min_free,
            fits,
        };
        let mut offers = [
            offer(0, "a", 5, false),
            offer(1, "a", 50, true),
            offer(0, "b", 12, true),
            offer(2, "a", 8, false),
            offer(0, "c", 12, true),
            offer(0, "a", 12, true),
        ];
        offers.sort_by(compare_offers);
        let order: Vec<_> = offers
            .iter()
            .map(|o| (o.site_index, o.zone_id.as_str()))
            .collect();
        assert_eq!(
            order,
            [(0, "a"), (0, "b"), (0, "c"), (1, "a"), (2, "a"), (0, "a")]
        );
    }

    #[test]
    fn site_offers_take_the_least_free_day() {
        let days = vec![
            DayFree {
                zone_id: "z1".into(),
                capacity: 10,
                free: 7,
            },
            DayFree {
                zone_id: "z2".into(),
                capacity: 20,
                free: 20,
            },
            DayFree {
                zone_id: "z1".into(),
                capacity: 10,
                free: 3,
            },
            DayFree {
                zone_id: "z2".into(),
                capacity: 20,
                free: 4,
            },
        ];
        let offers = site_offers(1, "s", &days, 4);
        assert_eq!(offers.len(), 2);
        assert_eq!(
            (
                offers[0].zone_id.as_str(),
                offers[0].min_free,
                offers[0].fits
            ),
            ("z1", 3, false)
        );
        assert_eq!(
            (
                offers[1].zone_id.as_str(),
                offers[1].min_free,
                offers[1].fits
            ),
            ("z2", 4, true)
        );
    }

    #[test]
    fn alarm_keys_put_the_newest_first() {
        let key = |secs: i64, site: &str, id: &str| AlarmKey {
            started_at: (secs, 0),
            site_id: site.into(),
            alarm_id: id.into(),
        };
        let mut keys = [
            key(1, "a", "x"),
            key(5, "b", "y"),
            key(5, "a", "z"),
            key(5, "a", "y"),
        ];
        keys.sort();
        let order: Vec<_> = keys
            .iter()
            .map(|k| (k.started_at.0, k.site_id.as_str(), k.alarm_id.as_str()))
            .collect();
        assert_eq!(
            order,
            [(5, "a", "y"), (5, "a", "z"), (5, "b", "y"), (1, "a", "x")]
        );
    }

    #[test]
    fn page_sizes_default_and_clamp() {
        assert_eq!(page_size(0), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(7), 7);
        assert_eq!(page_size(5000), MAX_PAGE_SIZE);
    }

    #[test]
    fn request_ids_are_valid_identifiers_and_distinct() {
        let max = coldchain_runtime::validate::MAX_REQUEST_ID_LEN;
        for id in [
            "T-1".to_string(),
            "x".repeat(100),
            "y".repeat(128),
            "é".repeat(64),
        ] {
            let ids = [
                transfer_out_request_id(&id),
                transfer_in_request_id(&id),
                sensor_request_id(&id),
            ];
            for request_id in &ids {
                coldchain_runtime::validate::check_id(request_id, max).expect("a valid request id");
            }
            assert_ne!(ids[0], ids[1]);
            assert_ne!(ids[1], ids[2]);
        }
        assert_eq!(transfer_out_request_id("T-1"), "gateway:T-1:transfer-out");
        assert_ne!(
            transfer_out_request_id(&"x".repeat(128)),
            transfer_out_request_id(&"z".repeat(128))
        );
        let assigned = assigned_transfer_id(&[0xab; 32], 1_700_000_000_000);
        coldchain_runtime::validate::check_id(&assigned, 64).expect("a valid transfer id");
    }

    fn arb_offer() -> impl Strategy<Value = Offer> {
        (0usize..4, "[a-c]", 0i32..50, any::<bool>()).prop_map(
            |(site_index, zone, min_free, fits)| Offer {
                site_index,
                site_id: format!("s{site_index}"),
                zone_id: zone,
                capacity: 50,
                min_free,
                fits,
            },
        )
    }

    fn arb_state() -> impl Strategy<Value = u8> {
        0u8..7
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn offer_order_is_total_and_fitting_zones_come_first(mut offers in proptest::collection::vec(arb_offer(), 0..20)) {
            offers.sort_by(compare_offers);
            for pair in offers.windows(2) {
                prop_assert_ne!(compare_offers(&pair[0], &pair[1]), Ordering::Greater);
                prop_assert!(pair[0].fits || !pair[1].fits);
                if pair[0].fits && pair[1].fits {
                    prop_assert!(pair[0].min_free <= pair[1].min_free);
                }
                if !pair[0].fits && !pair[1].fits {
                    prop_assert!(pair[0].min_free >= pair[1].min_free);
                }
            }
        }

        #[test]
        fn zone_totals_conserve_on_hand(
            rows in proptest::collection::vec((0usize..3, 0i64..1_000, 0i64..1_000), 0..30)
        ) {
            let zones = ["chilled-a", "frozen-a", "cool-a"];
            let levels: Vec<Level> = rows.iter().enumerate().map(|(i, (zone, on_hand, allocated))| Level {
                lot_id: format!("l{i}"),
                zone_id: zones[*zone].to_string(),
                expiry: NaiveDate::from_ymd_opt(2030, 1, 1 + (i % 28) as u32),
                on_hand: *on_hand,
                allocated: (*allocated).min(*on_hand),
                held: 0,
                available: on_hand - (*allocated).min(*on_hand),
            }).collect();
            let totals = zone_totals(&levels, |_| Some(TemperatureClass::Chilled), None, 0);
            let total: i64 = totals.iter().map(|t| t.on_hand).sum();
            let expected: i64 = levels.iter().map(|l| l.on_hand).sum();
            prop_assert_eq!(total, expected);
            for t in &totals {
                prop_assert!(t.on_hand > 0);
                prop_assert!(t.lot_count > 0);
                prop_assert!(t.earliest_expiry.is_some());
            }
        }

        /// Whatever order steps and stale retries arrive in, a transfer never leaves a final
        /// state, never goes back, and stays IN_TRANSIT/RECEIVING only after shipping.
        #[test]
        fn the_state_machine_only_moves_forward(steps in proptest::collection::vec(arb_state(), 0..40)) {
            let mut t = Transfer::new("t".into(), spec(vec![line("kiwi", "l1", "chilled-a", "chilled-a", 5)]), 0);
            let rank = |s: TransferState| match s {
                TransferState::Requested => 0,
                TransferState::InTransit => 1,
                TransferState::Receiving => 2,
                TransferState::Completed | TransferState::Failed => 3,
            };
            for (now, step) in steps.into_iter().enumerate() {
                let now = now as i64 + 1;
                let before = t.state;
                match step {
                    0 => { let _ = t.shipped(vec![lot("l1")], now, now); }
                    1 => { t.refused(Refusal { code: 9, message: "no".into() }, "no".into(), now); }
                    2 => { t.step_failed(before, format!("e{now}"), now); }
                    3 => { t.sensor_bound(now); }
                    4 => { let _ = t.arrived(now); }
                    5 => { let _ = t.completed(now, now); }
                    _ => { t.sensor_refused("no".into(), now); }
                }
                prop_assert!(rank(t.state) >= rank(before));
                if before.is_final() {
                    prop_assert_eq!(t.state, before);
                }
                if t.state.is_travelling() || t.state == TransferState::Completed {
                    prop_assert!(t.shipped_ms.is_some());
                    prop_assert!(t.lines[0].lot.is_some());
                }
                if t.state == TransferState::Failed {
                    prop_assert!(t.shipped_ms.is_none());
                }
            }
        }

        #[test]
        fn backoff_grows_and_is_capped(attempt in 0u32..100, unit in 0.0f64..=1.0) {
            let initial = Duration::from_millis(100);
            let max = Duration::from_secs(5);
            let b = backoff(attempt, initial, max);
            prop_assert!(b <= max);
            prop_assert!(b >= initial.min(max));
            prop_assert!(backoff(attempt + 1, initial, max) >= b);
            let j = jittered(b, unit);
            prop_assert!(j >= b / 2 && j <= b);
        }
    }
}
