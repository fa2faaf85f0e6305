//! Conversions between stored records and protobuf messages (used by the store for the
//! idempotent responses and alarm feed it records, and by the api).

use coldchain_proto::telemetry::v1 as pb;
use prost_types::{Duration, Timestamp};

use crate::domain::alarm::{AlarmChange, AlarmKind, AlarmRecord, AlarmState, HoldStatus};
use crate::domain::codec::Sample;
use crate::domain::{
    Binding, Profile, Reefer, Rejection, SensorRecord, SensorState, SensorStatus, StoredSample,
};

/// A Timestamp of ms since the epoch.
pub fn timestamp(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1_000),
        nanos: (ms.rem_euclid(1_000) * 1_000_000) as i32,
    }
}

/// A Duration of ms.
pub fn duration(ms: i64) -> Duration {
    Duration {
        seconds: ms / 1_000,
        nanos: ((ms % 1_000) * 1_000_000) as i32,
    }
}

/// The ms of a Duration, if it is valid (nanos in range, same sign as seconds) and fits.
pub fn duration_ms(d: &Duration) -> Option<i64> {
    if d.nanos.abs() >= 1_000_000_000
        || (d.seconds > 0 && d.nanos < 0)
        || (d.seconds < 0 && d.nanos > 0)
    {
        return None;
    }
    d.seconds
        .checked_mul(1_000)?
        .checked_add(i64::from(d.nanos / 1_000_000))
}

/// The proto reason.
pub fn rejection_reason(r: Rejection) -> pb::RejectionReason {
    match r {
        Rejection::UnknownSensor => pb::RejectionReason::UnknownSensor,
        Rejection::MissingTime => pb::RejectionReason::MissingTime,
        Rejection::InFuture => pb::RejectionReason::InFuture,
        Rejection::TooOld => pb::RejectionReason::TooOld,
        Rejection::NotFinite => pb::RejectionReason::NotFinite,
        Rejection::CelsiusOutOfRange => pb::RejectionReason::CelsiusOutOfRange,
        Rejection::HumidityOutOfRange => pb::RejectionReason::HumidityOutOfRange,
    }
}

/// A stored sample as a Reading.
pub fn reading(sensor_id: &str, s: &StoredSample) -> pb::Reading {
    pb::Reading {
        sensor_id: sensor_id.to_string(),
        time: Some(timestamp(s.ts)),
        celsius: f64::from(s.centi_celsius) / 100.0,
        humidity_percent: s.humidity.map(|h| f64::from(h) / 100.0),
        door_open: s.door,
    }
}

/// A sample as a Reading.
pub fn sample_reading(sensor_id: &str, s: &Sample) -> pb::Reading {
    reading(sensor_id, &StoredSample::from(*s))
}

/// The proto reefer binding.
pub fn reefer(r: &Reefer) -> pb::ReeferBinding {
    pb::ReeferBinding {
        container_id: r.container_id.clone(),
        train_or_route: r.train_or_route.clone(),
        transfer_id: r.transfer_id.clone(),
        temperature_class: r.temperature_class,
    }
}

/// The proto effective profile.
pub fn profile(p: &Profile) -> pb::SensorProfile {
    pb::SensorProfile {
        min_celsius: p.min_celsius,
        max_celsius: Some(p.max_celsius),
        min_excursion_duration: Some(duration(p.min_excursion_ms)),
        offline_after: Some(duration(p.offline_after_ms)),
        hysteresis_celsius: Some(p.hysteresis_celsius),
    }
}

/// The proto status.
pub fn sensor_status(s: SensorStatus) -> pb::SensorStatus {
    match s {
        SensorStatus::Ok => pb::SensorStatus::Ok,
        SensorStatus::Excursion => pb::SensorStatus::Excursion,
        SensorStatus::Offline => pb::SensorStatus::Offline,
        SensorStatus::NoData => pb::SensorStatus::NoData,
    }
}

/// A sensor with its state at `now_ms`.
pub fn sensor(
    record: &SensorRecord,
    state: &SensorState,
    site_id: &str,
    now_ms: i64,
) -> pb::Sensor {
    pb::Sensor {
        sensor_id: record.sensor_id.clone(),
        site_id: site_id.to_string(),
        profile: Some(profile(&record.profile)),
        description: record.description.clone(),
        status: sensor_status(state.status(&record.profile, now_ms)) as i32,
        last_reading: state.newest.as_ref().map(|s| reading(&record.sensor_id, s)),
        registered_at: Some(timestamp(record.registered_at)),
        updated_at: Some(timestamp(record.updated_at)),
        binding: Some(match &record.binding {
            Binding::Zone(zone) => pb::sensor::Binding::ZoneId(zone.clone()),
            Binding::Reefer(r) => pb::sensor::Binding::Reefer(reefer(r)),
        }),
    }
}

/// The proto kind.
pub fn alarm_kind(k: AlarmKind) -> pb::AlarmKind {
    match k {
        AlarmKind::ExcursionHigh => pb::AlarmKind::ExcursionHigh,
        AlarmKind::ExcursionLow => pb::AlarmKind::ExcursionLow,
        AlarmKind::SensorOffline => pb::AlarmKind::SensorOffline,
    }
}

/// The proto state.
pub fn alarm_state(s: AlarmState) -> pb::AlarmState {
    match s {
        AlarmState::ActiveUnack => pb::AlarmState::ActiveUnack,
        AlarmState::ActiveAck => pb::AlarmState::ActiveAck,
        AlarmState::ClearedUnack => pb::AlarmState::ClearedUnack,
        AlarmState::ClearedAck => pb::AlarmState::ClearedAck,
    }
}

/// The proto event kind.
pub fn event_kind(c: AlarmChange) -> pb::AlarmEventKind {
    match c {
        AlarmChange::Raised => pb::AlarmEventKind::Raised,
        AlarmChange::Updated => pb::AlarmEventKind::Updated,
        AlarmChange::Acknowledged => pb::AlarmEventKind::Acknowledged,
        AlarmChange::Cleared => pb::AlarmEventKind::Cleared,
        AlarmChange::HoldChanged => pb::AlarmEventKind::HoldChanged,
    }
}

/// The proto alarm.
pub fn alarm(a: &AlarmRecord, site_id: &str) -> pb::Alarm {
    let excursion = a.kind != AlarmKind::SensorOffline;
    let celsius = |centi: i32| {
        if excursion {
            f64::from(centi) / 100.0
        } else {
            0.0
        }
    };
    pb::Alarm {
        alarm_id: a.alarm_id.clone(),
        site_id: site_id.to_string(),
        sensor_id: a.sensor_id.clone(),
        zone_id: a.binding.zone().unwrap_or_default().to_string(),
        reefer: match &a.binding {
            Binding::Reefer(r) => Some(reefer(r)),
            Binding::Zone(_) => None,
        },
        kind: alarm_kind(a.kind) as i32,
        state: alarm_state(a.state()) as i32,
        started_at: Some(timestamp(a.started_at)),
        last_seen_at: Some(timestamp(a.last_seen_at)),
        cleared_at: a.cleared_at.map(timestamp),
        limit_celsius: celsius(a.limit),
        peak_celsius: celsius(a.peak),
        peak_deviation_celsius: celsius(a.peak_deviation()),
        duration: Some(duration(a.duration_ms())),
        degree_minutes: if excursion { a.degree_minutes() } else { 0.0 },
        acknowledged_by: a.ack.as_ref().map(|ack| ack.by.clone()).unwrap_or_default(),
        acknowledged_at: a.ack.as_ref().map(|ack| timestamp(ack.at)),
        ack_note: a
            .ack
            .as_ref()
            .map(|ack| ack.note.clone())
            .unwrap_or_default(),
        hold_status: match a.hold.status {
            HoldStatus::NotRequired => pb::HoldStatus::NotRequired,
            HoldStatus::Pending => pb::HoldStatus::Pending,
            HoldStatus::Placed => pb::HoldStatus::Placed,
        } as i32,
        hold_ids: a.hold.hold_ids.clone(),
        hold_last_error: if a.hold.status == HoldStatus::Pending {
            a.hold.last_error.clone()
        } else {
            String::new()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        for ms in [0i64, 1, 999, 1_000, -1, -1_001, 1_767_225_600_123] {
            let t = timestamp(ms);
            assert!((0..1_000_000_000).contains(&t.nanos));
            let back = crate::domain::timestamp_millis(crate::domain::RawTime {
                seconds: t.seconds,
                nanos: t.nanos,
            });
            assert_eq!(back, Some(ms));
        }
        assert_eq!(duration_ms(&duration(90_500)), Some(90_500));
        assert_eq!(
            duration_ms(&Duration {
                seconds: 1,
                nanos: -1
            }),
            None
        );
        assert_eq!(
            duration_ms(&Duration {
                seconds: 0,
                nanos: 1_000_000_000
            }),
            None
        );
        assert_eq!(
            duration_ms(&Duration {
                seconds: i64::MAX,
                nanos: 0
            }),
            None
        );
    }
}
