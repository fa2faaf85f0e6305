//! Persistence of the telemetry service on `coldchain_store`: tables, keys, and the write
//! closures that run the domain rules under the database's writer lock. No gRPC.
//!
//! Tables (one sled tree, one atomic batch per write):
//! - `sensors` sensor_id → [`SensorRecord`]; `sstate` sensor_id → [`SensorState`] (latest
//!   reading, detector state, open offline alarm), written with every batch of readings;
//! - `windows` (sensor_id, window start) → encoded [`WindowRecord`] (summary + checkpoint);
//!   `parts` (sensor_id, window start, part) → encoded readings (see `domain::codec`);
//! - `alarms` alarm_id → [`AlarmRecord`]; `by_time` (−started_at, alarm_id) and
//!   `by_sensor` (sensor_id, started_at, alarm_id) index them;
//! - `outbox` alarm_id → [`OutboxEntry`]: holds to place in the inventory service, written
//!   in the same write that raises the alarm;
//! - `meta` counters (the next alarm number).
//!
//! The store's ledger is the site's alarm feed: every alarm change appends an encoded
//! `AlarmEvent` (and nothing else does, so its sequences are the feed's).
//!
//! Inside a write every read goes through the `WriteTx` (never the committed tree), so the
//! changes of earlier writes that are staged but not yet applied are always seen.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use coldchain_proto::telemetry::v1 as pb;
use coldchain_runtime::error::ServiceError;
use coldchain_runtime::idempotency::Protobuf;
use coldchain_runtime::network::SiteConfig;
use coldchain_store::{
    Idempotent, KeyCodec, Prefix, RequestFingerprint, Store, StoreError, Table, Value, WriteTx,
};
use prost::Message;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::convert;
use crate::domain::alarm::{AlarmChange, AlarmKind, AlarmRecord, AlarmState, HoldStatus};
use crate::domain::codec::{CodecError, Sample, WINDOW_MS, window_of};
use crate::domain::detect::{AlarmSpan, ExcursionKind, Reconciled, reconcile};
use crate::domain::mkt::SampleAndHold;
use crate::domain::series::{
    self, SeriesAccess, WindowRecord, decode_row, encode_row, read_window,
};
use crate::domain::{Binding, SensorRecord, SensorState};

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

const SENSORS: Table<String, SensorRecord> = Table::new("sensors");
const SENSOR_STATE: Table<String, SensorState> = Table::new("sstate");
const WINDOWS: Table<(String, i64), Blob> = Table::new("windows");
const PARTS: Table<(String, i64, u32), Blob> = Table::new("parts");
const ALARMS: Table<String, AlarmRecord> = Table::new("alarms");
const BY_TIME: Table<(i64, String), ()> = Table::new("by_time");
const BY_SENSOR: Table<(String, i64, String), ()> = Table::new("by_sensor");
const OUTBOX: Table<String, OutboxEntry> = Table::new("outbox");
const META: Table<String, u64> = Table::new("meta");

const NEXT_ALARM: &str = "next_alarm";
/// Figure updates of an ongoing alarm are recorded in the feed at most this often (unless
/// the peak or start moved); the stored alarm is always current.
pub const UPDATE_EVENT_INTERVAL_MS: i64 = 60_000;

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
}

/// Readings ready to store: per sensor, samples in strictly increasing time order.
#[derive(Debug, Default)]
pub struct Prepared {
    /// (the sensor as registered, its samples).
    pub groups: Vec<(Arc<SensorRecord>, Vec<Sample>)>,
    /// Details of rejected readings (at most the first 1,000).
    pub rejections: Vec<pb::Rejection>,
    /// Rejected readings.
    pub rejected: i64,
    /// Repeats within the call.
    pub duplicates: i64,
}

/// A sensor registration, validated.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The sensor.
    pub sensor_id: String,
    /// Where it measures.
    pub binding: Binding,
    /// The effective rules.
    pub profile: crate::domain::Profile,
    /// Free text.
    pub description: String,
}

/// ListAlarms filters.
#[derive(Debug, Clone, Default)]
pub struct AlarmFilter {
    /// Only this sensor ("" for all).
    pub sensor_id: String,
    /// Only this zone ("" for all).
    pub zone_id: String,
    /// Only these states (empty: all).
    pub states: Vec<AlarmState>,
    /// Only these kinds (empty: all).
    pub kinds: Vec<AlarmKind>,
    /// Only active alarms.
    pub active_only: bool,
}

impl AlarmFilter {
    fn matches(&self, a: &AlarmRecord) -> bool {
        (self.sensor_id.is_empty() || a.sensor_id == self.sensor_id)
            && (self.zone_id.is_empty() || a.binding.zone() == Some(self.zone_id.as_str()))
            && (self.states.is_empty() || self.states.contains(&a.state()))
            && (self.kinds.is_empty() || self.kinds.contains(&a.kind))
            && (!self.active_only || a.is_active())
    }
}

/// One bucket of QueryReadings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Aligned start, ms.
    pub start: i64,
    /// Readings.
    pub count: u64,
    /// centi-°C.
    pub min: i32,
    /// centi-°C.
    pub max: i32,
    /// Σ centi-°C.
    pub sum: i64,
}

impl Bucket {
    fn add(&mut self, count: u64, min: i32, max: i32, sum: i64) {
        self.count += count;
        self.min = self.min.min(min);
        self.max = self.max.max(max);
        self.sum = self.sum.saturating_add(sum);
    }
}

/// A range that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// Start, ms.
    pub start: i64,
    /// End (exclusive), ms.
    pub end: i64,
    /// What went wrong.
    pub message: String,
}

/// The answer of a range query.
#[derive(Debug, Default)]
pub struct QueryResult {
    /// Non-empty buckets in time order.
    pub buckets: Vec<Bucket>,
    /// Ranges whose chunks failed to decode.
    pub unreadable: Vec<Unreadable>,
    /// Windows answered from their summary alone.
    pub summaries_used: u64,
    /// Windows whose readings were decoded.
    pub windows_decoded: u64,
}

/// The answer of an MKT query.
#[derive(Debug, Clone)]
pub struct MktResult {
    /// °C.
    pub celsius: f64,
    /// Readings used.
    pub count: u64,
    /// First reading time, ms.
    pub first: i64,
    /// Last reading time, ms.
    pub last: i64,
    /// Σ weights, ms.
    pub span_ms: i64,
}

/// Why an MKT could not be computed.
#[derive(Debug)]
pub enum MktError {
    /// No reading in the range.
    NoReadings,
    /// Stored data in the range cannot be decoded.
    DataLoss(String),
    /// Anything else.
    Service(ServiceError),
}

impl From<StoreError> for MktError {
    fn from(e: StoreError) -> Self {
        MktError::Service(e.into())
    }
}

impl From<ServiceError> for MktError {
    fn from(e: ServiceError) -> Self {
        MktError::Service(e)
    }
}

/// A page of sensors with their states, and the key to continue after.
pub type SensorPage = (Vec<(SensorRecord, SensorState)>, Option<Vec<u8>>);

/// The telemetry database of one site.
#[derive(Clone)]
pub struct TelemetryStore {
    store: Store,
    site: Arc<SiteConfig>,
    /// Every registered sensor, as stored (refreshed after each registration).
    known: Arc<RwLock<HashMap<String, Arc<SensorRecord>>>>,
    outbox_signal: Arc<Notify>,
}

/// The registered sensors, by id.
pub type SensorRegistry = HashMap<String, Arc<SensorRecord>>;

impl TelemetryStore {
    /// Wraps an opened store; loads the registered sensors.
    pub fn new(store: Store, site: SiteConfig) -> Result<Self, StoreError> {
        let mut known = HashMap::new();
        for entry in store.scan_prefix(&SENSORS, &[]) {
            let (id, record) = entry?;
            known.insert(id, Arc::new(record));
        }
        Ok(Self {
            store,
            site: Arc::new(site),
            known: Arc::new(RwLock::new(known)),
            outbox_signal: Arc::new(Notify::new()),
        })
    }

    /// The underlying store (ledger, clock, close).
    pub fn raw(&self) -> &Store {
        &self.store
    }

    /// The site.
    pub fn site(&self) -> &SiteConfig {
        &self.site
    }

    /// The registered sensors (for validating readings before the write, and their rules
    /// during it).
    pub fn known_sensors(&self) -> RwLockReadGuard<'_, SensorRegistry> {
        self.known
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wakes when a hold was queued.
    pub fn outbox_signal(&self) -> Arc<Notify> {
        self.outbox_signal.clone()
    }

    /// The store's clock, ms.
    pub fn now_millis(&self) -> i64 {
        self.store.clock().now_millis()
    }

    /// Registers or re-registers a sensor.
    pub async fn register_sensor(
        &self,
        request: RequestFingerprint,
        registration: Registration,
    ) -> Result<pb::Sensor, ServiceError> {
        let store = self.store.clone();
        let site_id = self.site.id.clone();
        let id = registration.sensor_id.clone();
        let written = spawned(async move {
            store
                .write(Some(Idempotent::new(&request, &Protobuf)), move |tx| {
                    let now = tx.now_millis();
                    let key = registration.sensor_id.clone();
                    let registered_at = tx
                        .get(&SENSORS, &key)?
                        .map_or(now, |existing| existing.registered_at);
                    let record = SensorRecord {
                        sensor_id: registration.sensor_id,
                        binding: registration.binding,
                        profile: registration.profile,
                        description: registration.description,
                        registered_at,
                        updated_at: now,
                    };
                    tx.put(&SENSORS, &key, &record)?;
                    let state = tx.get(&SENSOR_STATE, &key)?.unwrap_or_default();
                    Ok::<_, ServiceError>(convert::sensor(&record, &state, &site_id, now))
                })
                .await
                .map_err(ServiceError::from)
        })
        .await?;
        // Read back under the registry's lock, so concurrent registrations of one sensor
        // leave the registry with the latest stored record.
        let mut known = self
            .known
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(record) = self.store.get(&SENSORS, &id)? {
            known.insert(id, Arc::new(record));
        }
        Ok(written.value)
    }

    /// A sensor and its state.
    pub fn sensor(
        &self,
        sensor_id: &str,
    ) -> Result<Option<(SensorRecord, SensorState)>, ServiceError> {
        let key = sensor_id.to_string();
        let Some(record) = self.store.get(&SENSORS, &key)? else {
            return Ok(None);
        };
        let state = self.store.get(&SENSOR_STATE, &key)?.unwrap_or_default();
        Ok(Some((record, state)))
    }

    /// Sensors in id order after `after` (a relative key), filtered, at most `limit`, and
    /// the key to continue from if there may be more.
    pub fn list_sensors(
        &self,
        after: Option<&[u8]>,
        limit: usize,
        mut keep: impl FnMut(&SensorRecord, &SensorState) -> bool,
    ) -> Result<SensorPage, ServiceError> {
        let mut out = Vec::new();
        let mut last_key = None;
        for entry in self.store.scan_after(&SENSORS, &[], after) {
            let (id, record) = entry?;
            let state = self.store.get(&SENSOR_STATE, &id)?.unwrap_or_default();
            if !keep(&record, &state) {
                continue;
            }
            if out.len() == limit {
                return Ok((out, last_key));
            }
            last_key = Some(KeyCodec::encode(&id));
            out.push((record, state));
        }
        Ok((out, None))
    }

    /// Stores readings: one atomic, durable write for the whole call. With `request`, the
    /// call is idempotent (the summary is stored under its request_id).
    pub async fn ingest(
        &self,
        request: Option<RequestFingerprint>,
        prepared: Prepared,
    ) -> Result<pb::IngestSummary, ServiceError> {
        let store = self.store.clone();
        let site = self.site.clone();
        let (summary, queued) = spawned(async move {
            let mut queued = false;
            let queued_ref = &mut queued;
            let written = store
                .write(
                    request.as_ref().map(|r| Idempotent::new(r, &Protobuf)),
                    move |tx| {
                        let mut summary = pb::IngestSummary {
                            accepted: 0,
                            duplicates: prepared.duplicates,
                            rejected: prepared.rejected,
                            rejections: prepared.rejections,
                        };
                        for (sensor, samples) in &prepared.groups {
                            let (accepted, duplicates) =
                                ingest_sensor(tx, &site.id, sensor, samples, queued_ref)?;
                            summary.accepted += accepted as i64;
                            summary.duplicates += duplicates as i64;
                        }
                        Ok::<_, ServiceError>(summary)
                    },
                )
                .await
                .map_err(ServiceError::from)?;
            Ok((written.value, queued))
        })
        .await?;
        if queued {
            self.outbox_signal.notify_one();
        }
        Ok(summary)
    }

    /// Raises SENSOR_OFFLINE alarms for sensors silent (by `now_ms`) for longer than their
    /// offline period, and refreshes the ones already raised (at most once per period).
    /// Returns how many alarms were raised or refreshed.
    pub async fn check_offline(&self, now_ms: i64) -> Result<usize, ServiceError> {
        let mut candidates = Vec::new();
        for entry in self.store.scan_prefix(&SENSORS, &[]) {
            let (id, record) = entry?;
            let state = self.store.get(&SENSOR_STATE, &id)?.unwrap_or_default();
            if offline_due(&self.store, &record, &state, now_ms)? {
                candidates.push(id);
            }
        }
        if candidates.is_empty() {
            return Ok(0);
        }
        let store = self.store.clone();
        let site = self.site.clone();
        spawned(async move {
            let mut changed = 0usize;
            let changed_ref = &mut changed;
            store
                .write(None, move |tx| {
                    for id in &candidates {
                        let Some(record) = tx.get(&SENSORS, id)? else {
                            continue;
                        };
                        let mut state = tx.get(&SENSOR_STATE, id)?.unwrap_or_default();
                        if !state.is_silent(&record.profile, record.registered_at, now_ms) {
                            continue;
                        }
                        let open = match &state.offline_alarm {
                            Some(alarm_id) => tx.get(&ALARMS, alarm_id)?.filter(|a| a.is_active()),
                            None => None,
                        };
                        match open {
                            Some(mut alarm) => {
                                if now_ms.saturating_sub(alarm.last_seen_at)
                                    < record.profile.offline_after_ms
                                {
                                    continue;
                                }
                                alarm.last_seen_at = now_ms;
                                alarm.last_at = now_ms;
                                emit(tx, &site.id, AlarmChange::Updated, &mut alarm);
                                tx.put(&ALARMS, &alarm.alarm_id, &alarm)?;
                            }
                            None => {
                                let alarm_id = next_alarm_id(tx)?;
                                let since = state.newest.map_or(record.registered_at, |s| s.ts);
                                let mut alarm = AlarmRecord::offline(
                                    alarm_id.clone(),
                                    id.clone(),
                                    record.binding.clone(),
                                    since,
                                    now_ms,
                                );
                                emit(tx, &site.id, AlarmChange::Raised, &mut alarm);
                                put_alarm(tx, &alarm, None)?;
                                state.offline_alarm = Some(alarm_id);
                                tx.put(&SENSOR_STATE, id, &state)?;
                            }
                        }
                        *changed_ref += 1;
                    }
                    Ok::<_, ServiceError>(())
                })
                .await
                .map_err(ServiceError::from)?;
            Ok(changed)
        })
        .await
    }

    /// One alarm.
    pub fn alarm(&self, alarm_id: &str) -> Result<Option<AlarmRecord>, ServiceError> {
        Ok(self.store.get(&ALARMS, &alarm_id.to_string())?)
    }

    /// Alarms newest first (then by id) after `after` (a relative key of the time index),
    /// filtered, at most `limit`, and the key to continue from if there may be more.
    pub fn list_alarms(
        &self,
        filter: &AlarmFilter,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<AlarmRecord>, Option<Vec<u8>>), ServiceError> {
        let mut out = Vec::new();
        let mut last_key = None;
        for entry in self.store.scan_after(&BY_TIME, &[], after) {
            let (key, ()) = entry?;
            let Some(alarm) = self.store.get(&ALARMS, &key.1)? else {
                continue;
            };
            if !filter.matches(&alarm) {
                continue;
            }
            if out.len() == limit {
                return Ok((out, last_key));
            }
            last_key = Some(KeyCodec::encode(&key));
            out.push(alarm);
        }
        Ok((out, None))
    }

    /// Acknowledges an alarm.
    pub async fn acknowledge(
        &self,
        request: RequestFingerprint,
        alarm_id: String,
        by: String,
        note: String,
    ) -> Result<pb::Alarm, ServiceError> {
        let store = self.store.clone();
        let site = self.site.clone();
        spawned(async move {
            store
                .write(Some(Idempotent::new(&request, &Protobuf)), move |tx| {
                    let Some(mut alarm) = tx.get(&ALARMS, &alarm_id)? else {
                        return Err(ServiceError::not_found(format!(
                            "alarm_id {alarm_id:?} is not an alarm of site {}",
                            site.id
                        )));
                    };
                    let now = tx.now_millis();
                    if let Err(state) = alarm.acknowledge(&by, &note, now) {
                        return Err(ServiceError::failed_precondition(format!(
                            "alarm {alarm_id:?} is already acknowledged (state {})",
                            state.name()
                        ))
                        .with_precondition(
                            "STATE",
                            &alarm_id,
                            format!("state is {}", state.name()),
                        ));
                    }
                    emit(tx, &site.id, AlarmChange::Acknowledged, &mut alarm);
                    tx.put(&ALARMS, &alarm_id, &alarm)?;
                    Ok(convert::alarm(&alarm, &site.id))
                })
                .await
                .map(|written| written.value)
                .map_err(ServiceError::from)
        })
        .await
    }

    /// Holds waiting to be placed, oldest alarm first.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, ServiceError> {
        let mut out = Vec::new();
        for entry in self.store.scan_prefix(&OUTBOX, &[]) {
            out.push(entry?.1);
        }
        Ok(out)
    }

    /// The hold of an alarm was placed: PLACED with its ids, the outbox entry removed.
    pub async fn hold_placed(
        &self,
        alarm_id: String,
        hold_ids: Vec<String>,
    ) -> Result<(), ServiceError> {
        self.finish_hold(alarm_id, HoldStatus::Placed, hold_ids, String::new())
            .await
    }

    /// No hold is needed after all (e.g. the transfer failed and nothing moved).
    pub async fn hold_not_required(
        &self,
        alarm_id: String,
        why: String,
    ) -> Result<(), ServiceError> {
        self.finish_hold(alarm_id, HoldStatus::NotRequired, Vec::new(), why)
            .await
    }

    async fn finish_hold(
        &self,
        alarm_id: String,
        status: HoldStatus,
        hold_ids: Vec<String>,
        note: String,
    ) -> Result<(), ServiceError> {
        let store = self.store.clone();
        let site = self.site.clone();
        spawned(async move {
            store
                .write(None, move |tx| {
                    if tx.get(&OUTBOX, &alarm_id)?.is_none() {
                        return Ok(());
                    }
                    tx.delete(&OUTBOX, &alarm_id);
                    if let Some(mut alarm) = tx.get(&ALARMS, &alarm_id)? {
                        alarm.hold.status = status;
                        alarm.hold.hold_ids = hold_ids;
                        alarm.hold.last_error = note;
                        emit(tx, &site.id, AlarmChange::HoldChanged, &mut alarm);
                        tx.put(&ALARMS, &alarm_id, &alarm)?;
                    }
                    Ok::<_, ServiceError>(())
                })
                .await
                .map(|_| ())
                .map_err(ServiceError::from)
        })
        .await
    }

    /// Records the latest error of a pending hold (an event only when it changed).
    pub async fn hold_failed(&self, alarm_id: String, error: String) -> Result<(), ServiceError> {
        match self.alarm(&alarm_id)? {
            Some(alarm)
                if alarm.hold.status == HoldStatus::Pending && alarm.hold.last_error != error => {}
            _ => return Ok(()),
        }
        let store = self.store.clone();
        let site = self.site.clone();
        spawned(async move {
            store
                .write(None, move |tx| {
                    if let Some(mut alarm) = tx.get(&ALARMS, &alarm_id)?
                        && alarm.hold.status == HoldStatus::Pending
                        && alarm.hold.last_error != error
                    {
                        alarm.hold.last_error = error;
                        emit(tx, &site.id, AlarmChange::HoldChanged, &mut alarm);
                        tx.put(&ALARMS, &alarm_id, &alarm)?;
                    }
                    Ok::<_, ServiceError>(())
                })
                .await
                .map(|_| ())
                .map_err(ServiceError::from)
        })
        .await
    }

    /// min/max/sum/count per bucket over `[start, end)`: whole windows inside one bucket are
    /// answered from their summary; others are decoded.
    pub fn query_readings(
        &self,
        sensor_id: &str,
        start: i64,
        end: i64,
        bucket_ms: i64,
    ) -> Result<QueryResult, ServiceError> {
        let mut result = QueryResult::default();
        let mut buckets: std::collections::BTreeMap<i64, Bucket> =
            std::collections::BTreeMap::new();
        let bucket_of = |ts: i64| ts.div_euclid(bucket_ms) * bucket_ms;
        let mut add = |start: i64, count: u64, min: i32, max: i32, sum: i64| {
            buckets
                .entry(start)
                .or_insert(Bucket {
                    start,
                    count: 0,
                    min: i32::MAX,
                    max: i32::MIN,
                    sum: 0,
                })
                .add(count, min, max, sum);
        };
        for window in self.windows_in(sensor_id, start, end) {
            let (window, blob) = window?;
            let clip = |message: String| Unreadable {
                start: window.max(start),
                end: (window + WINDOW_MS).min(end),
                message,
            };
            let (record, open) = match decode_row(&blob.0) {
                Ok(row) => row,
                Err(error) => {
                    result.unreadable.push(clip(error.to_string()));
                    continue;
                }
            };
            if record.count == 0 || record.last_ts < start || record.first_ts >= end {
                continue;
            }
            if record.first_ts >= start
                && record.last_ts < end
                && bucket_of(record.first_ts) == bucket_of(record.last_ts)
            {
                add(
                    bucket_of(record.first_ts),
                    u64::from(record.count),
                    record.min,
                    record.max,
                    record.sum,
                );
                result.summaries_used += 1;
                continue;
            }
            let (samples, failed, error) = self.read_window(sensor_id, window, &record, open)?;
            result.windows_decoded += 1;
            if failed > 0 {
                let message = error.map_or_else(|| "corrupt chunk".to_string(), |e| e.to_string());
                result.unreadable.push(clip(format!(
                    "{failed} of {} parts: {message}",
                    record.parts
                )));
            }
            for s in samples.iter().filter(|s| s.ts >= start && s.ts < end) {
                add(
                    bucket_of(s.ts),
                    1,
                    s.centi_celsius,
                    s.centi_celsius,
                    i64::from(s.centi_celsius),
                );
            }
        }
        result.buckets = buckets.into_values().collect();
        Ok(result)
    }

    /// The time-weighted MKT over `[start, end)`.
    pub fn mean_kinetic_temperature(
        &self,
        sensor_id: &str,
        start: i64,
        end: i64,
        activation_energy: f64,
        max_gap_ms: i64,
    ) -> Result<MktResult, MktError> {
        let mut series = SampleAndHold::new(activation_energy, max_gap_ms);
        for window in self.windows_in(sensor_id, start, end) {
            let (window, blob) = window?;
            let data_loss = |message: String| {
                MktError::DataLoss(format!(
                    "stored readings of sensor {sensor_id:?} from {} to {} cannot be decoded: {message}",
                    crate::domain::format_ms(window),
                    crate::domain::format_ms(window + WINDOW_MS)
                ))
            };
            let (record, open) = decode_row(&blob.0).map_err(|e| data_loss(e.to_string()))?;
            if record.count == 0 || record.last_ts < start || record.first_ts >= end {
                continue;
            }
            let (samples, failed, error) = self.read_window(sensor_id, window, &record, open)?;
            if failed > 0 {
                return Err(data_loss(
                    error.map_or_else(|| "corrupt chunk".to_string(), |e| e.to_string()),
                ));
            }
            for s in samples.iter().filter(|s| s.ts >= start && s.ts < end) {
                series.push(s.ts, s.celsius());
            }
        }
        let result = series.finish(end).ok_or(MktError::NoReadings)?;
        Ok(MktResult {
            celsius: result.celsius,
            count: result.count,
            first: result.first,
            last: result.last,
            span_ms: result.span_ms,
        })
    }

    fn windows_in(
        &self,
        sensor_id: &str,
        start: i64,
        end: i64,
    ) -> impl Iterator<Item = Result<(i64, Blob), StoreError>> + use<> {
        let prefix = Prefix::new().str(sensor_id);
        let after = KeyCodec::encode(&(sensor_id.to_string(), window_of(start).saturating_sub(1)));
        self.store
            .scan_after(&WINDOWS, prefix.as_bytes(), Some(&after))
            .map(|entry| entry.map(|((_, window), blob)| (window, blob)))
            .take_while(move |entry| entry.as_ref().map_or(true, |(window, _)| *window < end))
    }

    fn read_window(
        &self,
        sensor_id: &str,
        window: i64,
        record: &WindowRecord,
        open: &[u8],
    ) -> Result<(Vec<Sample>, u32, Option<CodecError>), StoreError> {
        let sensor = sensor_id.to_string();
        read_window(
            |index| {
                Ok(self
                    .store
                    .get(&PARTS, &(sensor.clone(), window, index))?
                    .map(|blob| blob.0))
            },
            record,
            open,
        )
    }

    /// Test support: overwrites one stored chunk part, to check how corrupt data is
    /// reported. Never used by the service.
    #[doc(hidden)]
    pub async fn corrupt_part_for_tests(
        &self,
        sensor_id: &str,
        window: i64,
        part: u32,
        bytes: Vec<u8>,
    ) -> Result<(), ServiceError> {
        let key = (sensor_id.to_string(), window, part);
        self.store
            .write(None, move |tx| {
                tx.put(&PARTS, &key, &Blob(bytes))?;
                Ok::<_, ServiceError>(())
            })
            .await
            .map(|_| ())
            .map_err(ServiceError::from)
    }
}

/// Runs a write on its own task, so that a caller that goes away (a cancelled RPC) never
/// interrupts it between its commit and its durable acknowledgement.
async fn spawned<T: Send + 'static>(
    work: impl Future<Output = Result<T, ServiceError>> + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::spawn(work)
        .await
        .map_err(|e| ServiceError::internal(format!("write task failed: {e}")))?
}

fn offline_due(
    store: &Store,
    record: &SensorRecord,
    state: &SensorState,
    now_ms: i64,
) -> Result<bool, StoreError> {
    if !state.is_silent(&record.profile, record.registered_at, now_ms) {
        return Ok(false);
    }
    let open = match &state.offline_alarm {
        Some(alarm_id) => store.get(&ALARMS, alarm_id)?.filter(|a| a.is_active()),
        None => None,
    };
    Ok(match open {
        None => true,
        Some(alarm) => now_ms.saturating_sub(alarm.last_seen_at) >= record.profile.offline_after_ms,
    })
}

/// Allocates the next alarm id: `alm-00000001`, …
fn next_alarm_id(tx: &mut WriteTx<'_>) -> Result<String, StoreError> {
    let key = NEXT_ALARM.to_string();
    let next = tx.get(&META, &key)?.unwrap_or(1);
    tx.put(&META, &key, &(next + 1))?;
    Ok(format!("alm-{next:08}"))
}

/// Appends the alarm's event to the feed.
fn emit(tx: &mut WriteTx<'_>, site_id: &str, change: AlarmChange, alarm: &mut AlarmRecord) {
    let now = tx.now_millis();
    alarm.last_event_at = now;
    let proto = convert::alarm(alarm, site_id);
    tx.append_ledger(|sequence| {
        pb::AlarmEvent {
            sequence,
            recorded_at: Some(convert::timestamp(now)),
            kind: convert::event_kind(change) as i32,
            alarm: Some(proto),
        }
        .encode_to_vec()
    });
}

/// Stores an alarm and its index entries (moving them if its start changed).
fn put_alarm(
    tx: &mut WriteTx<'_>,
    alarm: &AlarmRecord,
    old_start: Option<i64>,
) -> Result<(), StoreError> {
    if let Some(old) = old_start
        && old != alarm.started_at
    {
        tx.delete(&BY_TIME, &(old.saturating_neg(), alarm.alarm_id.clone()));
        tx.delete(
            &BY_SENSOR,
            &(alarm.sensor_id.clone(), old, alarm.alarm_id.clone()),
        );
    }
    tx.put(&ALARMS, &alarm.alarm_id, alarm)?;
    tx.put(
        &BY_TIME,
        &(alarm.started_at.saturating_neg(), alarm.alarm_id.clone()),
        &(),
    )?;
    tx.put(
        &BY_SENSOR,
        &(
            alarm.sensor_id.clone(),
            alarm.started_at,
            alarm.alarm_id.clone(),
        ),
        &(),
    )?;
    Ok(())
}

/// Merges one sensor's samples of a batch: readings, detection, alarms, offline clearing.
fn ingest_sensor(
    tx: &mut WriteTx<'_>,
    site_id: &str,
    sensor: &SensorRecord,
    samples: &[Sample],
    queued: &mut bool,
) -> Result<(u64, u64), ServiceError> {
    let sensor_id = sensor.sensor_id.as_str();
    let key = sensor.sensor_id.clone();
    let Some(first) = samples.first() else {
        return Ok((0, 0));
    };
    let mut state = tx.get(&SENSOR_STATE, &key)?.unwrap_or_default();
    let limits = sensor.profile.limits();
    let outcome = {
        let mut access = TxSeries {
            tx: &mut *tx,
            sensor: sensor_id,
            windows: None,
        };
        series::ingest(&mut access, &limits, &state.series, samples)?
    };
    let now = tx.now_millis();
    if !outcome.excursions.is_empty() || outcome.late {
        let active_before = state.series.detector.active().is_some();
        let affected = match &state.excursion_alarm {
            // In order: only the excursion in progress can be revised.
            Some(alarm_id) if !outcome.late && active_before => tx
                .get(&ALARMS, alarm_id)?
                .filter(|a| a.kind != AlarmKind::SensorOffline && !a.retracted)
                .into_iter()
                .collect(),
            None if !outcome.late && !active_before => Vec::new(),
            _ => alarms_started_in(tx, sensor_id, outcome.covered_from, outcome.covered_to)?,
        };
        let touched = reconcile_alarms(tx, site_id, sensor, affected, &outcome, queued)?;
        if let Some(run) = outcome.state.detector.active()
            && let Some((_, _, alarm_id)) = touched
                .iter()
                .find(|(started_at, kind, _)| *started_at == run.started_at && *kind == run.kind)
        {
            state.excursion_alarm = Some(alarm_id.clone());
        }
    }
    if outcome.state.detector.active().is_none() {
        state.excursion_alarm = None;
    }
    if let Some(alarm_id) = state.offline_alarm.take()
        && let Some(mut alarm) = tx.get(&ALARMS, &alarm_id)?
    {
        // The first reading after the silence ends it.
        let at = samples
            .iter()
            .map(|s| s.ts)
            .find(|ts| *ts > alarm.started_at)
            .unwrap_or(first.ts);
        if let Some(change) = alarm.clear_offline(at) {
            emit(tx, site_id, change, &mut alarm);
            tx.put(&ALARMS, &alarm_id, &alarm)?;
        }
    }
    state.last_arrival = Some(now);
    state.series = outcome.state;
    if let Some(newest) = outcome.newest {
        state.newest = Some(newest.into());
    }
    tx.put(&SENSOR_STATE, &key, &state)?;
    Ok((outcome.accepted, outcome.duplicates))
}

/// Every live excursion alarm of a sensor that started in `[from, to)`, through the write
/// (so alarms staged by earlier writes are seen too).
fn alarms_started_in(
    tx: &WriteTx<'_>,
    sensor_id: &str,
    from: i64,
    to: Option<i64>,
) -> Result<Vec<AlarmRecord>, StoreError> {
    let to = to.unwrap_or(i64::MAX);
    let prefix = Prefix::new().str(sensor_id);
    let mut records = Vec::new();
    for ((_, started_at, alarm_id), ()) in tx.scan_prefix(&BY_SENSOR, prefix.as_bytes())? {
        if started_at < from || started_at >= to {
            continue;
        }
        if let Some(alarm) = tx.get(&ALARMS, &alarm_id)?
            && alarm.kind != AlarmKind::SensorOffline
            && !alarm.retracted
        {
            records.push(alarm);
        }
    }
    Ok(records)
}

/// Applies detection's findings to the affected alarms; returns (started_at, side, id) of
/// every alarm updated or raised.
fn reconcile_alarms(
    tx: &mut WriteTx<'_>,
    site_id: &str,
    sensor: &SensorRecord,
    mut records: Vec<AlarmRecord>,
    outcome: &series::SeriesOutcome,
    queued: &mut bool,
) -> Result<Vec<(i64, ExcursionKind, String)>, ServiceError> {
    let mut touched = Vec::new();
    records.sort_by(|a, b| (a.started_at, &a.alarm_id).cmp(&(b.started_at, &b.alarm_id)));
    let spans: Vec<AlarmSpan> = records
        .iter()
        .filter_map(|a| {
            Some(AlarmSpan {
                alarm_id: a.alarm_id.clone(),
                kind: a.kind.excursion()?,
                started_at: a.started_at,
                end: a.end(),
            })
        })
        .collect();
    let now = tx.now_millis();
    for action in reconcile(&spans, &outcome.excursions) {
        match action {
            Reconciled::Update {
                alarm_id,
                excursion,
            } => {
                let Some(alarm) = records.iter_mut().find(|a| a.alarm_id == alarm_id) else {
                    continue;
                };
                let old_start = alarm.started_at;
                let old_peak = alarm.peak;
                touched.push((excursion.started_at, excursion.kind, alarm_id.clone()));
                if let Some(change) = alarm.apply_excursion(&excursion) {
                    let significant = change != AlarmChange::Updated
                        || alarm.started_at != old_start
                        || alarm.peak != old_peak
                        || now.saturating_sub(alarm.last_event_at) >= UPDATE_EVENT_INTERVAL_MS;
                    if significant {
                        emit(tx, site_id, change, alarm);
                    }
                    put_alarm(tx, alarm, Some(old_start))?;
                }
            }
            Reconciled::Raise(excursion) => {
                let alarm_id = next_alarm_id(tx)?;
                let target = match &sensor.binding {
                    Binding::Zone(zone_id) => Some(HoldTarget::Zone {
                        zone_id: zone_id.clone(),
                    }),
                    Binding::Reefer(reefer) if !reefer.transfer_id.is_empty() => {
                        Some(HoldTarget::TransferLots {
                            transfer_id: reefer.transfer_id.clone(),
                        })
                    }
                    Binding::Reefer(_) => None,
                };
                let mut alarm = AlarmRecord::excursion(
                    alarm_id.clone(),
                    sensor.sensor_id.clone(),
                    sensor.binding.clone(),
                    &excursion,
                    target.is_some(),
                    now,
                );
                emit(tx, site_id, AlarmChange::Raised, &mut alarm);
                put_alarm(tx, &alarm, None)?;
                touched.push((excursion.started_at, excursion.kind, alarm_id.clone()));
                if let Some(target) = target {
                    let side = match alarm.kind {
                        AlarmKind::ExcursionLow => "below",
                        _ => "above",
                    };
                    let place = match &sensor.binding {
                        Binding::Zone(zone_id) => format!("zone {zone_id}"),
                        Binding::Reefer(reefer) => format!(
                            "reefer {} on transfer {}",
                            reefer.container_id, reefer.transfer_id
                        ),
                    };
                    let entry = OutboxEntry {
                        reason: format!(
                            "temperature excursion {side} {:.2} °C in {place} (sensor {}, alarm {alarm_id})",
                            f64::from(alarm.limit) / 100.0,
                            sensor.sensor_id
                        ),
                        request_id: format!("telemetry:{site_id}:{alarm_id}:{now}"),
                        alarm_id: alarm_id.clone(),
                        target,
                        sensor_id: sensor.sensor_id.clone(),
                        created_at: now,
                    };
                    tx.put(&OUTBOX, &alarm_id, &entry)?;
                    *queued = true;
                }
            }
            Reconciled::Retract { alarm_id } => {
                let Some(alarm) = records.iter_mut().find(|a| a.alarm_id == alarm_id) else {
                    continue;
                };
                if let Some(change) = alarm.retract() {
                    emit(tx, site_id, change, alarm);
                    put_alarm(tx, alarm, None)?;
                }
            }
        }
    }
    Ok(touched)
}

/// A sensor's windows inside a write. Every read goes through the write, so it sees the
/// changes of earlier writes even when they are staged and not yet applied.
struct TxSeries<'t, 'a> {
    tx: &'t mut WriteTx<'a>,
    sensor: &'t str,
    /// The starts of the sensor's stored windows, listed on first need (late readings
    /// only); windows this write adds are known to the algorithm itself.
    windows: Option<Vec<i64>>,
}

fn decode_stored_row(bytes: &[u8]) -> Result<(WindowRecord, Vec<u8>), StoreError> {
    decode_row(bytes)
        .map(|(record, open)| (record, open.to_vec()))
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl TxSeries<'_, '_> {
    fn stored_windows(&mut self) -> Result<&[i64], StoreError> {
        if self.windows.is_none() {
            let prefix = Prefix::new().str(self.sensor);
            let listed = self
                .tx
                .scan_prefix(&WINDOWS, prefix.as_bytes())?
                .into_iter()
                .map(|((_, window), _)| window)
                .collect();
            self.windows = Some(listed);
        }
        Ok(self.windows.as_deref().unwrap_or_default())
    }
}

impl SeriesAccess for TxSeries<'_, '_> {
    type Error = StoreError;

    fn window(&mut self, start: i64) -> Result<Option<(WindowRecord, Vec<u8>)>, StoreError> {
        match self.tx.get(&WINDOWS, &(self.sensor.to_string(), start))? {
            Some(blob) => decode_stored_row(&blob.0).map(Some),
            None => Ok(None),
        }
    }

    fn window_before(&mut self, start: i64) -> Result<Option<(i64, WindowRecord)>, StoreError> {
        let windows = self.stored_windows()?;
        let Some(&window) = windows.get(windows.partition_point(|w| *w < start).wrapping_sub(1))
        else {
            return Ok(None);
        };
        Ok(self.window(window)?.map(|(record, _)| (window, record)))
    }

    fn window_after(&mut self, start: i64) -> Result<Option<i64>, StoreError> {
        let windows = self.stored_windows()?;
        Ok(windows
            .get(windows.partition_point(|w| *w <= start))
            .copied())
    }

    fn part(&mut self, window: i64, index: u32) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tx
            .get(&PARTS, &(self.sensor.to_string(), window, index))?
            .map(|blob| blob.0))
    }

    fn put_part(&mut self, window: i64, index: u32, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.tx.put(
            &PARTS,
            &(self.sensor.to_string(), window, index),
            &Blob(bytes),
        )
    }

    fn delete_part(&mut self, window: i64, index: u32) -> Result<(), StoreError> {
        self.tx
            .delete(&PARTS, &(self.sensor.to_string(), window, index));
        Ok(())
    }

    fn put_window(
        &mut self,
        start: i64,
        record: &WindowRecord,
        open: &[u8],
    ) -> Result<(), StoreError> {
        self.tx.put(
            &WINDOWS,
            &(self.sensor.to_string(), start),
            &Blob(encode_row(record, open)),
        )
    }
}
