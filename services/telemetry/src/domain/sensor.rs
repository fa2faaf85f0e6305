//! Sensors: their alarm rules (profiles, with defaults from the zone or the reefer's
//! class), what they measure, their state and status, and how one is shown.

use coldchain_audit::Author;
use serde::{Deserialize, Serialize};

use super::centi;
use super::codec::Sample;
use super::detect::Limits;
use super::series;

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
    /// Who registered it last. Last, so that records of earlier builds (postcard, which ends
    /// where they end) still decode: they show principal "unknown".
    #[serde(
        default = "Author::unknown",
        deserialize_with = "super::stored::author_or_unknown"
    )]
    pub registered_by: Author,
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
    /// The status at `now_ms` of a sensor registered at `registered_at` under `profile`:
    /// OFFLINE exactly when it is silent (see [`SensorState::is_silent`]), so the status and
    /// the SENSOR_OFFLINE alarm agree, a sensor that never reported included (NO_DATA until
    /// its offline period from the registration has passed).
    pub fn status(&self, profile: &Profile, registered_at: i64, now_ms: i64) -> SensorStatus {
        if self.is_silent(profile, registered_at, now_ms) {
            SensorStatus::Offline
        } else if self.last_arrival.is_none() && self.newest.is_none() {
            SensorStatus::NoData
        } else if self.series.detector.active().is_some() {
            SensorStatus::Excursion
        } else {
            SensorStatus::Ok
        }
    }

    /// When (server clock) the sensor's silence reaches its offline period: its last
    /// arrival (or `registered_at`, when it never reported) plus `offline_after`. The status
    /// is OFFLINE from the next millisecond on, and a SENSOR_OFFLINE alarm of this silence
    /// starts at this instant, whenever it is raised: status and alarm agree on the time.
    pub fn offline_at(&self, profile: &Profile, registered_at: i64) -> i64 {
        self.last_arrival
            .unwrap_or(registered_at)
            .saturating_add(profile.offline_after_ms)
    }

    /// True when the sensor has been silent (since its last reading, or since
    /// `since_registration` when it never reported) for longer than its offline period.
    pub fn is_silent(&self, profile: &Profile, since_registration: i64, now_ms: i64) -> bool {
        now_ms > self.offline_at(profile, since_registration)
    }
}

/// A sensor as shown to clients: its registration and its status at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorView {
    /// Its id.
    pub sensor_id: String,
    /// The site.
    pub site_id: String,
    /// Where it measures.
    pub binding: Binding,
    /// Its effective rules.
    pub profile: Profile,
    /// Free text.
    pub description: String,
    /// Its status.
    pub status: SensorStatus,
    /// The reading with the latest time.
    pub last_reading: Option<StoredSample>,
    /// First registration, ms.
    pub registered_at: i64,
    /// Last registration change, ms.
    pub updated_at: i64,
    /// Who registered it last.
    pub registered_by: Author,
}

impl SensorView {
    /// `record` with `state`, as of `now_ms`.
    pub fn of(record: &SensorRecord, state: &SensorState, site_id: &str, now_ms: i64) -> Self {
        Self {
            sensor_id: record.sensor_id.clone(),
            site_id: site_id.to_string(),
            binding: record.binding.clone(),
            profile: record.profile.clone(),
            description: record.description.clone(),
            status: state.status(&record.profile, record.registered_at, now_ms),
            last_reading: state.newest,
            registered_at: record.registered_at,
            updated_at: record.updated_at,
            registered_by: record.registered_by.clone(),
        }
    }
}
