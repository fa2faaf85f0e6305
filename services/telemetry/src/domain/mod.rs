//! The telemetry rules, pure: reading validation, sensor profiles, the chunk codec, the
//! per-sensor series algorithm, excursion detection, alarms and their states, and MKT.
//! No I/O, no tonic, no sled.

pub mod alarm;
pub mod codec;
pub mod detect;
pub mod mkt;
pub mod series;

use codec::{MAX_CENTI_CELSIUS, MAX_CENTI_PERCENT, Sample};
use detect::Limits;
use serde::{Deserialize, Serialize};

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

/// A reading's time as sent: seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawTime {
    /// Seconds since the Unix epoch.
    pub seconds: i64,
    /// Nanoseconds, 0..1e9.
    pub nanos: i32,
}

/// The first second a google.protobuf.Timestamp may hold: 0001-01-01T00:00:00Z.
pub const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
/// The last second a google.protobuf.Timestamp may hold: 9999-12-31T23:59:59Z.
pub const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

/// Milliseconds since the epoch of a valid timestamp (nanoseconds truncated to the
/// millisecond: readings are stored at millisecond precision). `None` outside the range
/// google.protobuf.Timestamp defines (years 1 to 9999), which the contract rejects as an
/// invalid time (MISSING_TIME), not as a time in the future or too old.
pub fn timestamp_millis(time: RawTime) -> Option<i64> {
    if !(0..1_000_000_000).contains(&time.nanos)
        || !(MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&time.seconds)
    {
        return None;
    }
    time.seconds
        .checked_mul(1_000)?
        .checked_add(i64::from(time.nanos / 1_000_000))
}

/// Checks one reading against the server clock and the value ranges; a valid reading
/// becomes a stored sample (°C and % rounded to hundredths). The sensor is checked by the
/// caller.
pub fn check_reading(
    time: Option<RawTime>,
    celsius: f64,
    humidity: Option<f64>,
    door: Option<bool>,
    now_ms: i64,
) -> Result<Sample, (Rejection, String)> {
    let Some(time) = time else {
        return Err((Rejection::MissingTime, "time: is required".into()));
    };
    let Some(ts) = timestamp_millis(time) else {
        return Err((
            Rejection::MissingTime,
            format!(
                "time: {}s {}ns is not a valid timestamp",
                time.seconds, time.nanos
            ),
        ));
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

/// Default minimum excursion duration: 5 minutes.
pub const DEFAULT_MIN_EXCURSION_MS: i64 = 5 * 60_000;
/// Default offline period: 15 minutes.
pub const DEFAULT_OFFLINE_AFTER_MS: i64 = 15 * 60_000;
/// Default hysteresis: 0.5 °C.
pub const DEFAULT_HYSTERESIS_CELSIUS: f64 = 0.5;
/// The longest minimum excursion duration: 24 hours.
pub const MAX_MIN_EXCURSION_MS: i64 = 24 * 3_600_000;
/// The shortest offline period: 1 minute.
pub const MIN_OFFLINE_AFTER_MS: i64 = 60_000;
/// The longest offline period: 7 days.
pub const MAX_OFFLINE_AFTER_MS: i64 = 7 * 24 * 3_600_000;
/// The largest hysteresis, °C.
pub const MAX_HYSTERESIS_CELSIUS: f64 = 5.0;

/// The alarm rules as requested: every field optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileRequest {
    /// Lowest acceptable °C.
    pub min_celsius: Option<f64>,
    /// Highest acceptable °C.
    pub max_celsius: Option<f64>,
    /// Minimum excursion duration, ms.
    pub min_excursion_ms: Option<i64>,
    /// Offline period, ms.
    pub offline_after_ms: Option<i64>,
    /// Hysteresis, °C.
    pub hysteresis_celsius: Option<f64>,
}

/// The effective alarm rules of a sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Lowest acceptable °C; `None`: no lower limit.
    pub min_celsius: Option<f64>,
    /// Highest acceptable °C.
    pub max_celsius: f64,
    /// Minimum excursion duration, ms.
    pub min_excursion_ms: i64,
    /// Offline period, ms.
    pub offline_after_ms: i64,
    /// Hysteresis, °C.
    pub hysteresis_celsius: f64,
}

impl Profile {
    /// The rules in store units.
    pub fn limits(&self) -> Limits {
        Limits {
            min: self.min_celsius.map(centi),
            max: centi(self.max_celsius),
            min_duration_ms: self.min_excursion_ms,
            hysteresis: centi(self.hysteresis_celsius),
        }
    }
}

/// Fills in the defaults (`default_min`/`default_max`: the zone's or the reefer class's
/// limits) and checks every field; the problems as (field, description).
pub fn effective_profile(
    request: &ProfileRequest,
    default_min: Option<f64>,
    default_max: f64,
) -> Result<Profile, Vec<(String, String)>> {
    let mut problems = Vec::new();
    let in_range = |v: f64| v.is_finite() && (-100.0..=100.0).contains(&v);
    let mut temperature = |field: &str, value: Option<f64>| {
        if let Some(v) = value
            && !in_range(v)
        {
            problems.push((
                format!("profile.{field}"),
                format!("{v} must be a finite °C value within -100..100"),
            ));
        }
    };
    temperature("min_celsius", request.min_celsius);
    temperature("max_celsius", request.max_celsius);
    let min = request.min_celsius.or(default_min);
    let max = request.max_celsius.unwrap_or(default_max);
    // Limits outside -100..100 are reported above, once; comparing them would only say the
    // same again (and an infinite default max means "no default to compare with").
    if let Some(min) = min
        && in_range(min)
        && in_range(max)
        && centi(min) >= centi(max)
    {
        problems.push((
            "profile.min_celsius".into(),
            format!("{min} must be below max_celsius {max}"),
        ));
    }
    let min_excursion_ms = request.min_excursion_ms.unwrap_or(DEFAULT_MIN_EXCURSION_MS);
    if !(0..=MAX_MIN_EXCURSION_MS).contains(&min_excursion_ms) {
        problems.push((
            "profile.min_excursion_duration".into(),
            format!("{min_excursion_ms} ms must be between 0 and 24 hours"),
        ));
    }
    let offline_after_ms = request.offline_after_ms.unwrap_or(DEFAULT_OFFLINE_AFTER_MS);
    if !(MIN_OFFLINE_AFTER_MS..=MAX_OFFLINE_AFTER_MS).contains(&offline_after_ms) {
        problems.push((
            "profile.offline_after".into(),
            format!("{offline_after_ms} ms must be between 1 minute and 7 days"),
        ));
    }
    let hysteresis_celsius = request
        .hysteresis_celsius
        .unwrap_or(DEFAULT_HYSTERESIS_CELSIUS);
    if !(hysteresis_celsius.is_finite()
        && (0.0..=MAX_HYSTERESIS_CELSIUS).contains(&hysteresis_celsius))
    {
        problems.push((
            "profile.hysteresis_celsius".into(),
            format!("{hysteresis_celsius} must be between 0 and 5"),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Profile {
        min_celsius: min,
        max_celsius: max,
        min_excursion_ms,
        offline_after_ms,
        hysteresis_celsius,
    })
}

/// What a sensor measures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Binding {
    /// A zone of this site.
    Zone(String),
    /// A reefer container.
    Reefer(Reefer),
}

impl Binding {
    /// The zone, when zone-bound.
    pub fn zone(&self) -> Option<&str> {
        match self {
            Binding::Zone(zone) => Some(zone),
            Binding::Reefer(_) => None,
        }
    }
}

/// A reefer binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reefer {
    /// The container's id.
    pub container_id: String,
    /// The train or route, free text.
    pub train_or_route: String,
    /// The corridor transfer whose goods it carries; empty if none.
    pub transfer_id: String,
    /// The cargo's temperature class (coldchain.common.v1.TemperatureClass value).
    pub temperature_class: i32,
}

/// A registered sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorRecord {
    /// Its id.
    pub sensor_id: String,
    /// Where it measures.
    pub binding: Binding,
    /// Its effective rules.
    pub profile: Profile,
    /// Free text.
    pub description: String,
    /// First registration, ms.
    pub registered_at: i64,
    /// Last registration change, ms.
    pub updated_at: i64,
}

/// A sensor's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorStatus {
    /// Reporting, no active excursion.
    Ok,
    /// An excursion is active.
    Excursion,
    /// Silent for longer than its offline period.
    Offline,
    /// Never reported.
    NoData,
}

/// What the series and offline rules know of a sensor (persisted with its readings).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SensorState {
    /// The series' state: latest reading time and detector state.
    pub series: series::SeriesState,
    /// The reading with the latest time.
    pub newest: Option<StoredSample>,
    /// When (server clock) a reading last arrived.
    pub last_arrival: Option<i64>,
    /// The active SENSOR_OFFLINE alarm, if any.
    pub offline_alarm: Option<String>,
    /// The alarm of the raised excursion in progress (the detector's active run), if any.
    pub excursion_alarm: Option<String>,
}

/// A sample as persisted in the sensor state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSample {
    /// ms since the epoch.
    pub ts: i64,
    /// centi-°C.
    pub centi_celsius: i32,
    /// centi-%.
    pub humidity: Option<u16>,
    /// door open.
    pub door: Option<bool>,
}

impl From<Sample> for StoredSample {
    fn from(s: Sample) -> Self {
        Self {
            ts: s.ts,
            centi_celsius: s.centi_celsius,
            humidity: s.humidity,
            door: s.door,
        }
    }
}

impl SensorState {
    /// The status at `now_ms` under `profile`.
    pub fn status(&self, profile: &Profile, now_ms: i64) -> SensorStatus {
        match self.last_arrival {
            None if self.newest.is_none() => SensorStatus::NoData,
            arrival => {
                let silent_since = arrival.unwrap_or(i64::MIN);
                if now_ms.saturating_sub(silent_since) > profile.offline_after_ms {
                    SensorStatus::Offline
                } else if self.series.detector.active().is_some() {
                    SensorStatus::Excursion
                } else {
                    SensorStatus::Ok
                }
            }
        }
    }

    /// True when the sensor has been silent (since its last reading, or since `since`
    /// when it never reported) for longer than its offline period.
    pub fn is_silent(&self, profile: &Profile, since_registration: i64, now_ms: i64) -> bool {
        let since = self.last_arrival.unwrap_or(since_registration);
        now_ms.saturating_sub(since) > profile.offline_after_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_225_600_000;

    fn at(ms: i64) -> Option<RawTime> {
        Some(RawTime {
            seconds: ms.div_euclid(1_000),
            nanos: (ms.rem_euclid(1_000) * 1_000_000) as i32,
        })
    }

    #[test]
    fn readings_are_checked_one_rule_at_a_time() {
        let reason = |time, c, h| check_reading(time, c, h, None, NOW).map_err(|e| e.0);
        assert_eq!(reason(None, 1.0, None), Err(Rejection::MissingTime));
        assert_eq!(
            reason(
                Some(RawTime {
                    seconds: 1,
                    nanos: -1
                }),
                1.0,
                None
            ),
            Err(Rejection::MissingTime)
        );
        assert_eq!(
            reason(
                Some(RawTime {
                    seconds: i64::MAX,
                    nanos: 0
                }),
                1.0,
                None
            ),
            Err(Rejection::MissingTime)
        );
        assert_eq!(
            reason(at(NOW + MAX_FUTURE_MS + 1), 1.0, None),
            Err(Rejection::InFuture)
        );
        assert!(reason(at(NOW + MAX_FUTURE_MS), 1.0, None).is_ok());
        assert_eq!(
            reason(at(NOW - MAX_AGE_MS - 1), 1.0, None),
            Err(Rejection::TooOld)
        );
        assert!(reason(at(NOW - MAX_AGE_MS), 1.0, None).is_ok());
        assert_eq!(reason(at(NOW), f64::NAN, None), Err(Rejection::NotFinite));
        assert_eq!(
            reason(at(NOW), f64::INFINITY, None),
            Err(Rejection::NotFinite)
        );
        assert_eq!(
            reason(at(NOW), 1.0, Some(f64::NAN)),
            Err(Rejection::NotFinite)
        );
        assert_eq!(
            reason(at(NOW), 100.5, None),
            Err(Rejection::CelsiusOutOfRange)
        );
        assert_eq!(
            reason(at(NOW), -100.01, None),
            Err(Rejection::CelsiusOutOfRange)
        );
        assert_eq!(
            reason(at(NOW), 1.0, Some(100.1)),
            Err(Rejection::HumidityOutOfRange)
        );
        assert_eq!(
            reason(at(NOW), 1.0, Some(-0.1)),
            Err(Rejection::HumidityOutOfRange)
        );
        let sample = check_reading(at(NOW + 7), 4.256, Some(55.5), Some(true), NOW).unwrap();
        assert_eq!(sample.ts, NOW + 7);
        assert_eq!(sample.centi_celsius, 426);
        assert_eq!(sample.humidity, Some(5_550));
        assert_eq!(sample.door, Some(true));
    }

    #[test]
    fn messages_name_the_field_and_value() {
        let (_, message) = check_reading(at(NOW), 150.0, None, None, NOW).unwrap_err();
        assert_eq!(message, "celsius: 150 is outside -100..100");
    }

    #[test]
    fn profiles_take_defaults_and_are_checked() {
        let profile = effective_profile(&ProfileRequest::default(), Some(2.0), 8.0).unwrap();
        assert_eq!(profile.min_celsius, Some(2.0));
        assert_eq!(profile.max_celsius, 8.0);
        assert_eq!(profile.min_excursion_ms, DEFAULT_MIN_EXCURSION_MS);
        assert_eq!(profile.offline_after_ms, DEFAULT_OFFLINE_AFTER_MS);
        assert_eq!(profile.hysteresis_celsius, 0.5);
        let frozen = effective_profile(&ProfileRequest::default(), None, -18.0).unwrap();
        assert_eq!(frozen.min_celsius, None);
        assert_eq!(frozen.limits().max, -1_800);

        let bad = ProfileRequest {
            min_celsius: Some(9.0),
            max_celsius: None,
            min_excursion_ms: Some(-1),
            offline_after_ms: Some(59_999),
            hysteresis_celsius: Some(5.5),
        };
        let problems = effective_profile(&bad, Some(2.0), 8.0).unwrap_err();
        let fields: Vec<_> = problems.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(
            fields,
            [
                "profile.min_celsius",
                "profile.min_excursion_duration",
                "profile.offline_after",
                "profile.hysteresis_celsius"
            ]
        );
        let nan = ProfileRequest {
            max_celsius: Some(f64::NAN),
            ..ProfileRequest::default()
        };
        assert!(effective_profile(&nan, Some(2.0), 8.0).is_err());
    }

    #[test]
    fn status_follows_arrivals_and_detection() {
        let profile = effective_profile(&ProfileRequest::default(), Some(2.0), 8.0).unwrap();
        let mut state = SensorState::default();
        assert_eq!(state.status(&profile, NOW), SensorStatus::NoData);
        state.newest = Some(Sample::new(NOW, 500).into());
        state.last_arrival = Some(NOW);
        assert_eq!(state.status(&profile, NOW), SensorStatus::Ok);
        assert_eq!(
            state.status(&profile, NOW + DEFAULT_OFFLINE_AFTER_MS),
            SensorStatus::Ok
        );
        assert_eq!(
            state.status(&profile, NOW + DEFAULT_OFFLINE_AFTER_MS + 1),
            SensorStatus::Offline
        );
    }
}
