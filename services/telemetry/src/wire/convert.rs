//! Domain ⇄ protobuf: the messages the service answers with, and back (the stored
//! idempotent answers are these messages' bytes, so a replay reads them back exactly).

use coldchain_audit::Author;
use coldchain_network::TemperatureClass;
use coldchain_proto::common::v1 as common;
use coldchain_proto::common::v1::TemperatureClass as PbClass;
use coldchain_proto::telemetry::v1 as pb;
use coldchain_runtime::proto_time::{duration_millis, duration_of_millis, millis, timestamp};
use prost_types::Timestamp;

use crate::domain::alarm::{
    self, Ack, AlarmChange, AlarmEvent, AlarmKind, AlarmState, AlarmView, HoldStatus,
};
use crate::domain::{
    Binding, IngestSummary, Profile, RawTime, Reefer, RejectedReading, Rejection, SensorStatus,
    SensorView, StoredSample, centi,
};

/// The (low, high) limits of a temperature class value; `None` for no class or a class
/// without an upper limit.
pub fn class_limits(value: i32) -> Option<(Option<f64>, f64)> {
    let class = match PbClass::try_from(value).ok()? {
        PbClass::Frozen => TemperatureClass::Frozen,
        PbClass::Chilled => TemperatureClass::Chilled,
        PbClass::Pharma => TemperatureClass::Pharma,
        PbClass::Cool => TemperatureClass::Cool,
        PbClass::Ambient => TemperatureClass::Ambient,
        PbClass::Unspecified => return None,
    };
    let (low, high) = class.limits();
    Some((low, high?))
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

fn rejection_of(value: i32) -> Option<Rejection> {
    Some(match pb::RejectionReason::try_from(value).ok()? {
        pb::RejectionReason::UnknownSensor => Rejection::UnknownSensor,
        pb::RejectionReason::MissingTime => Rejection::MissingTime,
        pb::RejectionReason::InFuture => Rejection::InFuture,
        pb::RejectionReason::TooOld => Rejection::TooOld,
        pb::RejectionReason::NotFinite => Rejection::NotFinite,
        pb::RejectionReason::CelsiusOutOfRange => Rejection::CelsiusOutOfRange,
        pb::RejectionReason::HumidityOutOfRange => Rejection::HumidityOutOfRange,
        pb::RejectionReason::Unspecified => return None,
    })
}

/// A time as sent, kept as sent.
pub fn raw_time(t: &Timestamp) -> RawTime {
    RawTime {
        seconds: t.seconds,
        nanos: t.nanos,
    }
}

/// The summary of a call of readings.
pub fn ingest_summary(s: IngestSummary) -> pb::IngestSummary {
    pb::IngestSummary {
        accepted: s.accepted,
        duplicates: s.duplicates,
        rejected: s.rejected,
        rejections: s
            .rejections
            .into_iter()
            .map(|r| pb::Rejection {
                batch_index: r.batch_index,
                index: r.index,
                sensor_id: r.sensor_id,
                time: r.time.map(|t| Timestamp {
                    seconds: t.seconds,
                    nanos: t.nanos,
                }),
                reason: rejection_reason(r.reason) as i32,
                message: r.message,
            })
            .collect(),
    }
}

/// A summary back from its message.
pub fn ingest_summary_of(s: pb::IngestSummary) -> Result<IngestSummary, String> {
    let mut rejections = Vec::with_capacity(s.rejections.len());
    for r in s.rejections {
        rejections.push(RejectedReading {
            batch_index: r.batch_index,
            index: r.index,
            sensor_id: r.sensor_id,
            time: r.time.as_ref().map(raw_time),
            reason: rejection_of(r.reason)
                .ok_or_else(|| format!("rejection reason {} is unknown", r.reason))?,
            message: r.message,
        });
    }
    Ok(IngestSummary {
        accepted: s.accepted,
        duplicates: s.duplicates,
        rejected: s.rejected,
        rejections,
    })
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

fn millis_of(field: &str, t: Option<&Timestamp>) -> Result<i64, String> {
    t.and_then(millis)
        .ok_or_else(|| format!("{field} is missing or invalid"))
}

fn stored_sample(r: &pb::Reading) -> Result<StoredSample, String> {
    Ok(StoredSample {
        ts: millis_of("last_reading.time", r.time.as_ref())?,
        centi_celsius: centi(r.celsius),
        humidity: r
            .humidity_percent
            .map(|h| centi(h).clamp(0, i32::from(u16::MAX)) as u16),
        door: r.door_open,
    })
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

fn reefer_of(r: pb::ReeferBinding) -> Reefer {
    Reefer {
        container_id: r.container_id,
        train_or_route: r.train_or_route,
        transfer_id: r.transfer_id,
        temperature_class: r.temperature_class,
    }
}

/// The proto effective profile.
pub fn profile(p: &Profile) -> pb::SensorProfile {
    pb::SensorProfile {
        min_celsius: p.min_celsius,
        max_celsius: Some(p.max_celsius),
        min_excursion_duration: Some(duration_of_millis(p.min_excursion_ms)),
        offline_after: Some(duration_of_millis(p.offline_after_ms)),
        hysteresis_celsius: Some(p.hysteresis_celsius),
    }
}

fn profile_of(p: &pb::SensorProfile) -> Result<Profile, String> {
    let ms = |field: &str, d: Option<&prost_types::Duration>| {
        d.and_then(duration_millis)
            .ok_or_else(|| format!("profile.{field} is missing or invalid"))
    };
    Ok(Profile {
        min_celsius: p.min_celsius,
        max_celsius: p.max_celsius.ok_or("profile.max_celsius is missing")?,
        min_excursion_ms: ms("min_excursion_duration", p.min_excursion_duration.as_ref())?,
        offline_after_ms: ms("offline_after", p.offline_after.as_ref())?,
        hysteresis_celsius: p
            .hysteresis_celsius
            .ok_or("profile.hysteresis_celsius is missing")?,
    })
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

/// The status of a proto value, if it names one.
pub fn sensor_status_of(value: i32) -> Option<SensorStatus> {
    Some(match pb::SensorStatus::try_from(value).ok()? {
        pb::SensorStatus::Ok => SensorStatus::Ok,
        pb::SensorStatus::Excursion => SensorStatus::Excursion,
        pb::SensorStatus::Offline => SensorStatus::Offline,
        pb::SensorStatus::NoData => SensorStatus::NoData,
        pb::SensorStatus::Unspecified => return None,
    })
}

/// A sensor as shown.
pub fn sensor(v: SensorView) -> pb::Sensor {
    pb::Sensor {
        profile: Some(profile(&v.profile)),
        status: sensor_status(v.status) as i32,
        last_reading: v.last_reading.as_ref().map(|s| reading(&v.sensor_id, s)),
        registered_at: Some(timestamp(v.registered_at)),
        updated_at: Some(timestamp(v.updated_at)),
        binding: Some(match v.binding {
            Binding::Zone(zone) => pb::sensor::Binding::ZoneId(zone),
            Binding::Reefer(r) => pb::sensor::Binding::Reefer(reefer(&r)),
        }),
        sensor_id: v.sensor_id,
        site_id: v.site_id,
        description: v.description,
        registered_by: Some(author(v.registered_by)),
    }
}

/// A sensor back from its message.
pub fn sensor_of(s: pb::Sensor) -> Result<SensorView, String> {
    Ok(SensorView {
        binding: match s.binding {
            Some(pb::sensor::Binding::ZoneId(zone)) => Binding::Zone(zone),
            Some(pb::sensor::Binding::Reefer(r)) => Binding::Reefer(reefer_of(r)),
            None => return Err("binding is missing".into()),
        },
        profile: profile_of(&s.profile.unwrap_or_default())?,
        status: sensor_status_of(s.status)
            .ok_or_else(|| format!("status {} is unknown", s.status))?,
        last_reading: s.last_reading.as_ref().map(stored_sample).transpose()?,
        registered_at: millis_of("registered_at", s.registered_at.as_ref())?,
        updated_at: millis_of("updated_at", s.updated_at.as_ref())?,
        sensor_id: s.sensor_id,
        site_id: s.site_id,
        description: s.description,
        registered_by: s
            .registered_by
            .map_or_else(Author::unknown, |a| Author::new(a.principal, a.actor)),
    })
}

/// The proto kind.
pub fn alarm_kind(k: AlarmKind) -> pb::AlarmKind {
    match k {
        AlarmKind::ExcursionHigh => pb::AlarmKind::ExcursionHigh,
        AlarmKind::ExcursionLow => pb::AlarmKind::ExcursionLow,
        AlarmKind::SensorOffline => pb::AlarmKind::SensorOffline,
    }
}

/// The kind of a proto value, if it names one.
pub fn alarm_kind_of(value: i32) -> Option<AlarmKind> {
    Some(match pb::AlarmKind::try_from(value).ok()? {
        pb::AlarmKind::ExcursionHigh => AlarmKind::ExcursionHigh,
        pb::AlarmKind::ExcursionLow => AlarmKind::ExcursionLow,
        pb::AlarmKind::SensorOffline => AlarmKind::SensorOffline,
        pb::AlarmKind::Unspecified => return None,
    })
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

/// The state of a proto value, if it names one.
pub fn alarm_state_of(value: i32) -> Option<AlarmState> {
    Some(match pb::AlarmState::try_from(value).ok()? {
        pb::AlarmState::ActiveUnack => AlarmState::ActiveUnack,
        pb::AlarmState::ActiveAck => AlarmState::ActiveAck,
        pb::AlarmState::ClearedUnack => AlarmState::ClearedUnack,
        pb::AlarmState::ClearedAck => AlarmState::ClearedAck,
        pb::AlarmState::Unspecified => return None,
    })
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

fn hold_status(s: HoldStatus) -> pb::HoldStatus {
    match s {
        HoldStatus::NotRequired => pb::HoldStatus::NotRequired,
        HoldStatus::Pending => pb::HoldStatus::Pending,
        HoldStatus::Placed => pb::HoldStatus::Placed,
    }
}

fn hold_status_of(value: i32) -> Option<HoldStatus> {
    Some(match pb::HoldStatus::try_from(value).ok()? {
        pb::HoldStatus::NotRequired => HoldStatus::NotRequired,
        pb::HoldStatus::Pending => HoldStatus::Pending,
        pb::HoldStatus::Placed => HoldStatus::Placed,
        pb::HoldStatus::Unspecified => return None,
    })
}

/// An alarm as shown.
pub fn alarm(a: AlarmView) -> pb::Alarm {
    let (reefer_binding, zone_id) = match a.binding {
        Binding::Reefer(r) => (Some(reefer(&r)), String::new()),
        Binding::Zone(zone) => (None, zone),
    };
    let (acknowledged_by, acknowledged_at, ack_note) = match a.ack {
        Some(ack) => (ack.by, Some(timestamp(ack.at)), ack.note),
        None => (String::new(), None, String::new()),
    };
    pb::Alarm {
        alarm_id: a.alarm_id,
        site_id: a.site_id,
        sensor_id: a.sensor_id,
        zone_id,
        reefer: reefer_binding,
        kind: alarm_kind(a.kind) as i32,
        state: alarm_state(a.state) as i32,
        started_at: Some(timestamp(a.started_at)),
        last_seen_at: Some(timestamp(a.last_seen_at)),
        cleared_at: a.cleared_at.map(timestamp),
        limit_celsius: a.limit_celsius,
        peak_celsius: a.peak_celsius,
        peak_deviation_celsius: a.peak_deviation_celsius,
        duration: Some(duration_of_millis(a.duration_ms)),
        degree_minutes: a.degree_minutes,
        acknowledged_by,
        acknowledged_at,
        ack_note,
        hold_status: hold_status(a.hold_status) as i32,
        hold_ids: a.hold_ids,
        hold_last_error: a.hold_last_error,
        acknowledged_author: a.acknowledged_author.map(author),
    }
}

/// An alarm back from its message.
pub fn alarm_of(a: pb::Alarm) -> Result<AlarmView, String> {
    let ack = match a.acknowledged_at.as_ref() {
        Some(at) => Some(Ack {
            by: a.acknowledged_by,
            at: millis(at).ok_or("acknowledged_at is invalid")?,
            note: a.ack_note,
        }),
        None => None,
    };
    Ok(AlarmView {
        binding: match a.reefer {
            Some(r) => Binding::Reefer(reefer_of(r)),
            None => Binding::Zone(a.zone_id),
        },
        kind: alarm_kind_of(a.kind).ok_or_else(|| format!("kind {} is unknown", a.kind))?,
        state: alarm_state_of(a.state).ok_or_else(|| format!("state {} is unknown", a.state))?,
        started_at: millis_of("started_at", a.started_at.as_ref())?,
        last_seen_at: millis_of("last_seen_at", a.last_seen_at.as_ref())?,
        cleared_at: match a.cleared_at.as_ref() {
            Some(t) => Some(millis(t).ok_or("cleared_at is invalid")?),
            None => None,
        },
        limit_celsius: a.limit_celsius,
        peak_celsius: a.peak_celsius,
        peak_deviation_celsius: a.peak_deviation_celsius,
        duration_ms: a
            .duration
            .as_ref()
            .and_then(duration_millis)
            .ok_or("duration is missing or invalid")?,
        degree_minutes: a.degree_minutes,
        // An answer or feed event of an earlier build has no author: see the rule.
        acknowledged_author: alarm::acknowledged_author(
            ack.as_ref(),
            a.acknowledged_author
                .map(|a| Author::new(a.principal, a.actor))
                .as_ref(),
        ),
        ack,
        hold_status: hold_status_of(a.hold_status)
            .ok_or_else(|| format!("hold_status {} is unknown", a.hold_status))?,
        hold_ids: a.hold_ids,
        hold_last_error: a.hold_last_error,
        alarm_id: a.alarm_id,
        site_id: a.site_id,
        sensor_id: a.sensor_id,
    })
}

/// An event of the alarm feed.
pub fn alarm_event(e: AlarmEvent) -> pb::AlarmEvent {
    pb::AlarmEvent {
        sequence: e.sequence,
        recorded_at: Some(timestamp(e.recorded_at)),
        kind: event_kind(e.change) as i32,
        alarm: Some(alarm(e.alarm)),
    }
}

/// The proto of an author.
pub fn author(a: Author) -> common::Author {
    common::Author {
        principal: a.principal,
        actor: a.actor,
    }
}
