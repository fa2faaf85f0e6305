//! Readings as they arrive: the checks of one reading against the server clock and the
//! value ranges, the readings of a call grouped per sensor, and the summary of what was
//! stored and what was rejected.

use std::collections::HashMap;
use std::sync::Arc;

use super::SensorRecord;
use super::codec::{MAX_CENTI_CELSIUS, MAX_CENTI_PERCENT, Sample};

/// Readings may be at most this far ahead of the server clock, ms (5 minutes).
pub const MAX_FUTURE_MS: i64 = 5 * 60_000;
/// Readings may be at most this far behind the server clock, ms (7 days).
pub const MAX_AGE_MS: i64 = 7 * 24 * 3_600_000;
/// The most readings one batch (or PushReadings call) may carry.
pub const MAX_BATCH_READINGS: usize = 10_000;
/// The most rejections an ingest summary details.
pub const MAX_REJECTION_DETAILS: usize = 1_000;

/// Why a reading was rejected (the proto's RejectionReason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Empty or unregistered sensor_id.
    UnknownSensor,
    /// No time, or an invalid Timestamp.
    MissingTime,
    /// More than 5 minutes ahead of the server clock.
    InFuture,
    /// More than 7 days behind the server clock.
    TooOld,
    /// NaN or infinite celsius or humidity.
    NotFinite,
    /// celsius outside -100..100.
    CelsiusOutOfRange,
    /// humidity outside 0..100.
    HumidityOutOfRange,
}

impl Rejection {
    /// The reason's name in lowercase, as metrics label it (`unknown_sensor`, …).
    pub fn name(self) -> &'static str {
        match self {
            Rejection::UnknownSensor => "unknown_sensor",
            Rejection::MissingTime => "missing_time",
            Rejection::InFuture => "in_future",
            Rejection::TooOld => "too_old",
            Rejection::NotFinite => "not_finite",
            Rejection::CelsiusOutOfRange => "celsius_out_of_range",
            Rejection::HumidityOutOfRange => "humidity_out_of_range",
        }
    }
}

/// A reading's time as sent: seconds and nanoseconds since the epoch (echoed in the
/// details of a rejected reading).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawTime {
    /// Seconds since the Unix epoch.
    pub seconds: i64,
    /// Nanoseconds, 0..1e9 when valid.
    pub nanos: i32,
}

/// A reading's time, as the wire read it: none, not a valid instant (outside the years 1
/// to 9999 that google.protobuf.Timestamp defines, or with nanoseconds out of range: the
/// contract rejects it as MISSING_TIME, not as a time in the future or too old), or
/// milliseconds since the epoch (readings are stored at millisecond precision).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadingTime {
    /// No time was sent.
    Missing,
    /// The time sent is not a valid instant.
    Invalid(RawTime),
    /// Milliseconds since the epoch.
    At(i64),
}

/// Checks one reading against the server clock and the value ranges; a valid reading
/// becomes a stored sample (°C and % rounded to hundredths). The sensor is checked by the
/// caller.
pub fn check_reading(
    time: ReadingTime,
    celsius: f64,
    humidity: Option<f64>,
    door: Option<bool>,
    now_ms: i64,
) -> Result<Sample, (Rejection, String)> {
    let ts = match time {
        ReadingTime::At(ts) => ts,
        ReadingTime::Missing => {
            return Err((Rejection::MissingTime, "time: is required".into()));
        }
        ReadingTime::Invalid(time) => {
            return Err((
                Rejection::MissingTime,
                format!(
                    "time: {}s {}ns is not a valid timestamp",
                    time.seconds, time.nanos
                ),
            ));
        }
    };
    if ts > now_ms.saturating_add(MAX_FUTURE_MS) {
        return Err((
            Rejection::InFuture,
            format!(
                "time: {} is more than 5 minutes ahead of the server clock ({})",
                format_ms(ts),
                format_ms(now_ms)
            ),
        ));
    }
    if ts < now_ms.saturating_sub(MAX_AGE_MS) {
        return Err((
            Rejection::TooOld,
            format!(
                "time: {} is more than 7 days behind the server clock ({})",
                format_ms(ts),
                format_ms(now_ms)
            ),
        ));
    }
    if !celsius.is_finite() {
        return Err((
            Rejection::NotFinite,
            format!("celsius: {celsius} is not finite"),
        ));
    }
    if let Some(h) = humidity
        && !h.is_finite()
    {
        return Err((
            Rejection::NotFinite,
            format!("humidity_percent: {h} is not finite"),
        ));
    }
    if !(-100.0..=100.0).contains(&celsius) {
        return Err((
            Rejection::CelsiusOutOfRange,
            format!("celsius: {celsius} is outside -100..100"),
        ));
    }
    if let Some(h) = humidity
        && !(0.0..=100.0).contains(&h)
    {
        return Err((
            Rejection::HumidityOutOfRange,
            format!("humidity_percent: {h} is outside 0..100"),
        ));
    }
    Ok(Sample {
        ts,
        centi_celsius: centi(celsius).clamp(-MAX_CENTI_CELSIUS, MAX_CENTI_CELSIUS),
        humidity: humidity.map(|h| (centi(h).clamp(0, i32::from(MAX_CENTI_PERCENT))) as u16),
        door,
    })
}

/// Hundredths, rounded (the value must be finite and within ±2e7).
pub fn centi(value: f64) -> i32 {
    (value * 100.0).round() as i32
}

/// An instant for messages: RFC 3339, UTC.
pub fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// The registered sensors, by id.
pub type SensorRegistry = HashMap<String, Arc<SensorRecord>>;

/// One rejected reading, as the summary details it.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedReading {
    /// The batch of a stream (0 for PushReadings).
    pub batch_index: i64,
    /// The reading's index in its batch.
    pub index: i64,
    /// The sensor id as sent.
    pub sensor_id: String,
    /// The time as sent.
    pub time: Option<RawTime>,
    /// Why.
    pub reason: Rejection,
    /// What is wrong, naming the field and value.
    pub message: String,
}

/// What a call of readings did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestSummary {
    /// Readings stored.
    pub accepted: i64,
    /// Readings already stored (or repeated within the call), not stored again.
    pub duplicates: i64,
    /// Readings rejected.
    pub rejected: i64,
    /// Details of rejected readings (at most [`MAX_REJECTION_DETAILS`] a call).
    pub rejections: Vec<RejectedReading>,
}

impl IngestSummary {
    /// Adds the counts and details of a later write of the same call.
    pub fn add(&mut self, more: IngestSummary) {
        self.accepted += more.accepted;
        self.duplicates += more.duplicates;
        self.rejected += more.rejected;
        self.rejections.extend(more.rejections);
    }
}

/// Readings ready to store: per sensor, samples in strictly increasing time order.
#[derive(Debug, Default)]
pub struct Prepared {
    /// (the sensor as registered, its samples).
    pub groups: Vec<(Arc<SensorRecord>, Vec<Sample>)>,
    /// Details of rejected readings (at most the first 1,000).
    pub rejections: Vec<RejectedReading>,
    /// Rejected readings.
    pub rejected: i64,
    /// Repeats within the call.
    pub duplicates: i64,
}

impl Prepared {
    /// Sorts each sensor's samples by time and drops repeats of a time within the call
    /// (the first sent is kept), counting them as duplicates.
    pub fn sort_and_dedup(&mut self) {
        for (_, samples) in &mut self.groups {
            if !samples.is_sorted_by_key(|s| s.ts) {
                // Stable: the first of equal times (in input order) is the one kept.
                samples.sort_by_key(|s| s.ts);
            }
            let before = samples.len();
            samples.dedup_by_key(|s| s.ts);
            self.duplicates += (before - samples.len()) as i64;
        }
    }
}
