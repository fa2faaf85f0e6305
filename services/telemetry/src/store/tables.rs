//! The tables of the telemetry database and the records only the store keeps.
//!
//! - `sensors` sensor_id → [`SensorRecord`]; `sstate` sensor_id → [`SensorState`] (latest
//!   reading, detector state, open offline alarm), written with every batch of readings;
//! - `windows` (sensor_id, window start) → encoded `WindowRecord` (summary + checkpoint);
//!   `parts` (sensor_id, window start, part) → encoded readings (see `domain::codec`);
//! - `alarms` alarm_id → [`AlarmRecord`]; `by_time` (−started_at, alarm_id) and
//!   `by_sensor` (sensor_id, started_at, alarm_id) index them;
//! - `outbox` alarm_id → [`OutboxEntry`]: holds to place in the inventory service, written
//!   in the same write that raises the alarm;
//! - `meta` counters (the next alarm number).

use coldchain_store::{StoreError, Table, Value};
use serde::{Deserialize, Serialize};

use crate::domain::alarm::AlarmRecord;
use crate::domain::{SensorRecord, SensorState};

/// Raw bytes, stored as they are (chunk parts and window records decode themselves, so a
/// corrupt value is reported for its range instead of failing a whole scan).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

impl Value for Blob {
    fn to_bytes(&self) -> Result<Vec<u8>, StoreError> {
        Ok(self.0.clone())
    }
    fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        Ok(Blob(bytes.to_vec()))
    }
}

pub(super) const SENSORS: Table<String, SensorRecord> = Table::new("sensors");
pub(super) const SENSOR_STATE: Table<String, SensorState> = Table::new("sstate");
pub(super) const WINDOWS: Table<(String, i64), Blob> = Table::new("windows");
pub(super) const PARTS: Table<(String, i64, u32), Blob> = Table::new("parts");
pub(super) const ALARMS: Table<String, AlarmRecord> = Table::new("alarms");
pub(super) const BY_TIME: Table<(i64, String), ()> = Table::new("by_time");
pub(super) const BY_SENSOR: Table<(String, i64, String), ()> = Table::new("by_sensor");
pub(super) const OUTBOX: Table<String, OutboxEntry> = Table::new("outbox");
pub(super) const META: Table<String, u64> = Table::new("meta");

/// The key of the next alarm number in `meta`.
pub(super) const NEXT_ALARM: &str = "next_alarm";

/// Where a hold goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldTarget {
    /// All stock of a zone of this site.
    Zone {
        /// The zone.
        zone_id: String,
    },
    /// The lots of a corridor transfer (at its destination site).
    TransferLots {
        /// The transfer.
        transfer_id: String,
    },
}

/// A hold waiting to be placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The alarm that requires it.
    pub alarm_id: String,
    /// The idempotency key of the PlaceHold call(s), fixed when the alarm is raised.
    pub request_id: String,
    /// What to hold.
    pub target: HoldTarget,
    /// The sensor.
    pub sensor_id: String,
    /// The hold's reason (fixed, so that every retry sends the same request).
    pub reason: String,
    /// When it was queued, ms.
    pub created_at: i64,
    /// The actor the PlaceHold calls name (see `domain::alarm::hold_actor`), fixed like
    /// the reason. Empty for entries queued by earlier builds: their retries must send the
    /// request they first sent, or the inventory would refuse the request id as reused.
    /// Last, so that their records still decode.
    #[serde(default, deserialize_with = "crate::domain::stored::absent_as_default")]
    pub actor: String,
}
