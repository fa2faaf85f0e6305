//! The wire: protobuf ⇄ domain. Requests are checked for form here (every bad field at
//! once, as field violations) and become the domain's inputs; answers are rendered here;
//! and the encodings the store keeps (idempotent answers, the alarm feed) live here.

pub mod codec;
pub mod convert;
mod readings;
pub mod requests;

use coldchain_proto::telemetry::v1 as pb;
use coldchain_runtime::page_token;
use coldchain_runtime::proto_time::{duration_of_millis, timestamp};

use crate::domain::alarm::AlarmView;
use crate::domain::exposure::ExposureFigures;
use crate::domain::{ExposureQuery, MktResult, QueryResult, SensorRecord, SensorView, StreamEnd};

pub use readings::prepare;

/// A page of sensors; `last`: the position to continue after, if there may be more.
pub fn sensors_page(
    sensors: Vec<SensorView>,
    last: Option<Vec<u8>>,
    query: &[u8],
) -> pb::ListSensorsResponse {
    pb::ListSensorsResponse {
        sensors: sensors.into_iter().map(convert::sensor).collect(),
        next_page_token: last
            .map(|key| page_token::encode(query, &key))
            .unwrap_or_default(),
    }
}

/// A page of alarms; `last`: the position to continue after, if there may be more.
pub fn alarms_page(
    alarms: Vec<AlarmView>,
    last: Option<Vec<u8>>,
    query: &[u8],
) -> pb::ListAlarmsResponse {
    pb::ListAlarmsResponse {
        alarms: alarms.into_iter().map(convert::alarm).collect(),
        next_page_token: last
            .map(|key| page_token::encode(query, &key))
            .unwrap_or_default(),
    }
}

/// The buckets of a range query.
pub fn readings(sensor_id: String, result: QueryResult) -> pb::QueryReadingsResponse {
    pb::QueryReadingsResponse {
        sensor_id,
        buckets: result
            .buckets
            .iter()
            .map(|b| pb::ReadingBucket {
                start_time: Some(timestamp(b.start)),
                min_celsius: f64::from(b.min) / 100.0,
                max_celsius: f64::from(b.max) / 100.0,
                mean_celsius: b.sum as f64 / b.count as f64 / 100.0,
                count: b.count as i64,
            })
            .collect(),
        unreadable_ranges: result
            .unreadable
            .into_iter()
            .map(|u| pb::UnreadableRange {
                start_time: Some(timestamp(u.start)),
                end_time: Some(timestamp(u.end)),
                message: u.message,
            })
            .collect(),
    }
}

/// An MKT.
pub fn mean_kinetic_temperature(
    sensor_id: String,
    activation_energy: f64,
    result: MktResult,
) -> pb::GetMeanKineticTemperatureResponse {
    pb::GetMeanKineticTemperatureResponse {
        sensor_id,
        mkt_celsius: result.celsius,
        reading_count: result.count as i64,
        first_reading_time: Some(timestamp(result.first)),
        last_reading_time: Some(timestamp(result.last)),
        span: Some(duration_of_millis(result.span_ms)),
        activation_energy_kj_per_mol: activation_energy,
    }
}

/// GetExposure's answer: the figures of `query`'s range for the sensor `record`, or only
/// the count 0 without readings.
pub fn exposure(
    query: ExposureQuery,
    record: &SensorRecord,
    figures: Option<ExposureFigures>,
) -> pb::Exposure {
    let profile = &record.profile;
    pb::Exposure {
        sensor_id: query.sensor_id,
        zone_id: record.binding.zone().unwrap_or_default().to_string(),
        start_time: Some(timestamp(query.start)),
        end_time: Some(timestamp(query.end)),
        reading_count: figures.map_or(0, |f| i64::try_from(f.reading_count).unwrap_or(i64::MAX)),
        min_celsius: figures.map(|f| f.min_celsius),
        max_celsius: figures.map(|f| f.max_celsius),
        mean_celsius: figures.map(|f| f.mean_celsius),
        mkt_celsius: figures.map(|f| f.mkt_celsius),
        // A sensor without a lower limit: nothing is too cold.
        limit_min_celsius: profile.min_celsius.unwrap_or(f64::NEG_INFINITY),
        limit_max_celsius: profile.max_celsius,
        time_outside_limits: figures.map(|f| duration_of_millis(f.outside_ms)),
        covered: figures.map(|f| duration_of_millis(f.covered_ms)),
    }
}

/// One feed entry, decoded to be streamed as it was stored.
pub fn alarm_event(sequence: u64, bytes: &[u8]) -> Result<pb::AlarmEvent, StreamEnd> {
    codec::decode_alarm_event(bytes).map_err(|error| StreamEnd::EntryUnreadable { sequence, error })
}

/// One WatchAlarms message: consecutive events (none for a keep-alive) and the durable
/// head.
pub fn watch_message(events: Vec<pb::AlarmEvent>, head_sequence: u64) -> pb::WatchAlarmsResponse {
    pb::WatchAlarmsResponse {
        events,
        head_sequence,
    }
}
