//! What the use cases are asked, checked for form: queries, filters and pages.

use super::alarm::{AlarmKind, AlarmRecord, AlarmState};
use super::{Binding, ProfileRequest, SensorRecord, SensorState, SensorStatus};

/// Where a list resumes, and how much of it to answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// The position after which the page starts (from a page token); `None`: the start.
    pub after: Option<Vec<u8>>,
    /// The most items to answer.
    pub limit: usize,
}

/// A sensor registration as requested (its profile's defaults not yet filled in).
#[derive(Debug, Clone, PartialEq)]
pub struct SensorRequest {
    /// The sensor.
    pub sensor_id: String,
    /// Where it measures.
    pub binding: Binding,
    /// The rules asked for.
    pub profile: ProfileRequest,
    /// Free text.
    pub description: String,
}

/// ListSensors filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SensorFilter {
    /// Only this zone ("" for all).
    pub zone_id: String,
    /// Only these statuses (empty: all).
    pub statuses: Vec<SensorStatus>,
}

/// A range of readings in buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadingsQuery {
    /// The sensor.
    pub sensor_id: String,
    /// Start, ms (inclusive).
    pub start: i64,
    /// End, ms (exclusive).
    pub end: i64,
    /// Bucket width, ms.
    pub bucket_ms: i64,
}

/// An MKT over a range.
#[derive(Debug, Clone, PartialEq)]
pub struct MktQuery {
    /// The sensor.
    pub sensor_id: String,
    /// Start, ms (inclusive).
    pub start: i64,
    /// End, ms (exclusive).
    pub end: i64,
    /// ΔH, kJ/mol.
    pub activation_energy: f64,
}

/// A GetExposure request, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExposureQuery {
    /// The sensor.
    pub sensor_id: String,
    /// Start, ms (inclusive).
    pub start: i64,
    /// End, ms (exclusive).
    pub end: i64,
}

/// An acknowledgement of an alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledgement {
    /// The alarm.
    pub alarm_id: String,
    /// Who.
    pub by: String,
    /// What was done or found.
    pub note: String,
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
    /// True when `a` passes every filter.
    pub fn matches(&self, a: &AlarmRecord) -> bool {
        (self.sensor_id.is_empty() || a.sensor_id == self.sensor_id)
            && (self.zone_id.is_empty() || a.binding.zone() == Some(self.zone_id.as_str()))
            && (self.states.is_empty() || self.states.contains(&a.state()))
            && (self.kinds.is_empty() || self.kinds.contains(&a.kind))
            && (!self.active_only || a.is_active())
    }
}

impl SensorFilter {
    /// True when the sensor, in `state` at `now_ms`, passes every filter.
    pub fn matches(&self, record: &SensorRecord, state: &SensorState, now_ms: i64) -> bool {
        (self.zone_id.is_empty() || record.binding.zone() == Some(self.zone_id.as_str()))
            && (self.statuses.is_empty()
                || self.statuses.contains(&state.status(
                    &record.profile,
                    record.registered_at,
                    now_ms,
                )))
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
    /// Adds readings to the bucket.
    pub fn add(&mut self, count: u64, min: i32, max: i32, sum: i64) {
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
