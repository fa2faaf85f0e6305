//! Requests from the wire, checked for form: every bad field of a request is reported at
//! once (`google.rpc.BadRequest`), and a good request becomes the domain's input.

use coldchain_network::SiteConfig;
use coldchain_proto::telemetry::v1 as pb;
use coldchain_runtime::error::ServiceError;
use coldchain_runtime::idempotency::fingerprint_of;
use coldchain_runtime::proto_time;
use coldchain_runtime::validate::{TEXT_CONTROLS, Violations};
use coldchain_store::RequestFingerprint;
use prost_types::Timestamp;

use super::convert::{alarm_kind_of, alarm_state_of, class_limits, sensor_status_of};
use crate::domain::mkt::DEFAULT_ACTIVATION_ENERGY_KJ_PER_MOL;
use crate::domain::{
    self, Acknowledgement, AlarmFilter, Binding, ExposureQuery, MAX_BATCH_READINGS, MktQuery, Page,
    ProfileRequest, ReadingsQuery, Reefer, SensorFilter, SensorRequest,
};

/// The longest free text of a sensor description, bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 256;
/// The longest acknowledgement note, bytes.
pub const MAX_NOTE_BYTES: usize = 1_024;
/// The longest `acknowledged_by`, bytes.
pub const MAX_ACK_BY_BYTES: usize = 128;
/// The longest `train_or_route`, bytes.
pub const MAX_ROUTE_BYTES: usize = 128;
/// The most buckets a QueryReadings may ask for.
pub const MAX_BUCKETS: i64 = 100_000;

/// Free text of at most `max` bytes (the telemetry protos give each text field its own
/// limit, where `Violations::text` has the common 512), without control characters
/// other than newline and tab.
fn text(v: &mut Violations, field: &str, value: &str, required: bool, max: usize) {
    v.text_within(field, value, required, max, TEXT_CONTROLS);
}

/// A required, valid instant as ms: the first millisecond at or after it (`ceil`).
fn instant_ms(v: &mut Violations, field: &str, value: Option<&Timestamp>) -> Option<i64> {
    let Some(t) = value else {
        v.add(field, "is required");
        return None;
    };
    let Some(ms) = proto_time::millis(t) else {
        v.add(
            field,
            format!("{}s {}ns is not a valid timestamp", t.seconds, t.nanos),
        );
        return None;
    };
    Some(ms + i64::from(t.nanos % 1_000_000 != 0))
}

/// A PushReadings call: its fingerprint once its form is good.
pub fn push_readings(req: &pb::PushReadingsRequest) -> Result<RequestFingerprint, ServiceError> {
    let mut v = Violations::new();
    v.request_id(&req.request_id);
    v.check(
        (1..=MAX_BATCH_READINGS).contains(&req.readings.len()),
        "readings",
        || {
            format!(
                "must hold 1 to {MAX_BATCH_READINGS} readings, got {}",
                req.readings.len()
            )
        },
    );
    v.finish()?;
    Ok(fingerprint_of(&req.request_id, req))
}

/// A RegisterSensor call. The profile is checked with every other field, so one answer
/// names all bad fields and a malformed profile is INVALID_ARGUMENT even when the zone is
/// unknown: against the binding's default limits where the binding names known ones
/// (`site`'s zones, the reefer's class), otherwise against none (an infinite default max
/// skips only the comparison of a given min with a default max; an unknown zone is
/// NOT_FOUND later).
pub fn register_sensor(
    req: pb::RegisterSensorRequest,
    site: &SiteConfig,
) -> Result<(RequestFingerprint, SensorRequest), ServiceError> {
    let mut v = Violations::new();
    v.request_id(&req.request_id);
    v.id("sensor_id", &req.sensor_id);
    text(
        &mut v,
        "description",
        &req.description,
        false,
        MAX_DESCRIPTION_BYTES,
    );
    v.actor(&req.actor);
    let mut binding = None;
    match &req.binding {
        None => v.add("binding", "one of zone_id or reefer is required"),
        Some(pb::register_sensor_request::Binding::ZoneId(zone)) => {
            v.id("zone_id", zone);
            binding = Some(Binding::Zone(zone.clone()));
        }
        Some(pb::register_sensor_request::Binding::Reefer(r)) => {
            v.nested("reefer", |v| {
                v.id("container_id", &r.container_id);
                text(
                    v,
                    "train_or_route",
                    &r.train_or_route,
                    false,
                    MAX_ROUTE_BYTES,
                );
                v.optional_id("transfer_id", &r.transfer_id);
                v.check(
                    class_limits(r.temperature_class).is_some(),
                    "temperature_class",
                    || {
                        format!(
                            "{} is not a temperature class (one is required)",
                            r.temperature_class
                        )
                    },
                );
            });
            binding = Some(Binding::Reefer(Reefer {
                container_id: r.container_id.clone(),
                train_or_route: r.train_or_route.clone(),
                transfer_id: r.transfer_id.clone(),
                temperature_class: r.temperature_class,
            }));
        }
    }
    let profile = req.profile.unwrap_or_default();
    let mut duration = |field: &str, d: Option<&prost_types::Duration>| -> Option<i64> {
        let d = d?;
        let ms = proto_time::duration_millis(d);
        if ms.is_none() {
            v.add(
                format!("profile.{field}"),
                format!("{}s {}ns is not a valid duration", d.seconds, d.nanos),
            );
        }
        ms
    };
    let request_profile = ProfileRequest {
        min_celsius: profile.min_celsius,
        max_celsius: profile.max_celsius,
        min_excursion_ms: duration(
            "min_excursion_duration",
            profile.min_excursion_duration.as_ref(),
        ),
        offline_after_ms: duration("offline_after", profile.offline_after.as_ref()),
        hysteresis_celsius: profile.hysteresis_celsius,
    };
    let defaults = match &binding {
        Some(Binding::Zone(zone_id)) => site
            .zone(zone_id)
            .map(|zone| (Some(zone.min_celsius), zone.max_celsius)),
        Some(Binding::Reefer(r)) => class_limits(r.temperature_class),
        None => None,
    };
    let (default_min, default_max) = defaults.unwrap_or((None, f64::INFINITY));
    if let Err(problems) = domain::effective_profile(&request_profile, default_min, default_max) {
        for (field, description) in problems {
            v.add(field, description);
        }
    }
    v.finish()?;
    let Some(binding) = binding else {
        return Err(ServiceError::invalid(
            "binding",
            "one of zone_id or reefer is required",
        ));
    };
    let fingerprint = fingerprint_of(&req.request_id, &req);
    Ok((
        fingerprint,
        SensorRequest {
            sensor_id: req.sensor_id,
            binding,
            profile: request_profile,
            description: req.description,
        },
    ))
}

/// A ListSensors call: its filters, its page, and the query its page tokens are bound to.
pub fn list_sensors(
    req: &pb::ListSensorsRequest,
) -> Result<(SensorFilter, Page, Vec<u8>), ServiceError> {
    let mut v = Violations::new();
    v.optional_id("zone_id", &req.zone_id);
    let mut statuses = Vec::new();
    for (i, status) in req.statuses.iter().enumerate() {
        match sensor_status_of(*status) {
            Some(s) => statuses.push(s),
            None => v.add(
                format!("statuses[{i}]"),
                format!("{status} is not a sensor status"),
            ),
        }
    }
    let limit = v.page_size(req.page_size);
    let query = format!("sensors|{}|{:?}", req.zone_id, req.statuses).into_bytes();
    let after = v.page_token(&query, &req.page_token);
    v.finish()?;
    let filter = SensorFilter {
        zone_id: req.zone_id.clone(),
        statuses,
    };
    Ok((filter, Page { after, limit }, query))
}

/// A QueryReadings call.
pub fn query_readings(req: &pb::QueryReadingsRequest) -> Result<ReadingsQuery, ServiceError> {
    let mut v = Violations::new();
    v.id("sensor_id", &req.sensor_id);
    let start = instant_ms(&mut v, "start_time", req.start_time.as_ref());
    let end = instant_ms(&mut v, "end_time", req.end_time.as_ref());
    let bucket = match &req.bucket {
        None => {
            v.add("bucket", "is required");
            None
        }
        Some(d) => match proto_time::duration_millis(d) {
            Some(ms) if ms >= 1_000 && d.nanos % 1_000_000 == 0 => Some(ms),
            _ => {
                v.add(
                    "bucket",
                    format!(
                        "{}s {}ns must be at least 1 second, in whole milliseconds",
                        d.seconds, d.nanos
                    ),
                );
                None
            }
        },
    };
    if let (Some(start), Some(end)) = (start, end) {
        v.check(end > start, "end_time", || {
            "must be after start_time".to_string()
        });
        if let Some(bucket) = bucket
            && end > start
        {
            let count = (end - 1).div_euclid(bucket) - start.div_euclid(bucket) + 1;
            v.check(count <= MAX_BUCKETS, "bucket", || {
                format!("the range holds {count} buckets of {bucket} ms, at most {MAX_BUCKETS} are allowed")
            });
        }
    }
    v.finish()?;
    let (Some(start), Some(end), Some(bucket_ms)) = (start, end, bucket) else {
        return Err(ServiceError::invalid("start_time", "is required"));
    };
    Ok(ReadingsQuery {
        sensor_id: req.sensor_id.clone(),
        start,
        end,
        bucket_ms,
    })
}

/// A GetMeanKineticTemperature call.
pub fn mean_kinetic_temperature(
    req: &pb::GetMeanKineticTemperatureRequest,
) -> Result<MktQuery, ServiceError> {
    let mut v = Violations::new();
    let (start, end) = sensor_range(
        &mut v,
        &req.sensor_id,
        req.start_time.as_ref(),
        req.end_time.as_ref(),
    );
    let energy = req
        .activation_energy_kj_per_mol
        .unwrap_or(DEFAULT_ACTIVATION_ENERGY_KJ_PER_MOL);
    v.check(
        energy.is_finite() && energy > 0.0,
        "activation_energy_kj_per_mol",
        || format!("{energy} must be finite and greater than 0"),
    );
    v.finish()?;
    let (Some(start), Some(end)) = (start, end) else {
        return Err(ServiceError::invalid("start_time", "is required"));
    };
    Ok(MktQuery {
        sensor_id: req.sensor_id.clone(),
        start,
        end,
        activation_energy: energy,
    })
}

/// GetExposure: the same sensor and range as GetMeanKineticTemperature's.
pub fn exposure(req: &pb::GetExposureRequest) -> Result<ExposureQuery, ServiceError> {
    let mut v = Violations::new();
    let (start, end) = sensor_range(
        &mut v,
        &req.sensor_id,
        req.start_time.as_ref(),
        req.end_time.as_ref(),
    );
    v.finish()?;
    let (Some(start), Some(end)) = (start, end) else {
        return Err(ServiceError::invalid("start_time", "is required"));
    };
    Ok(ExposureQuery {
        sensor_id: req.sensor_id.clone(),
        start,
        end,
    })
}

/// A sensor id and a range `[start_time, end_time)` of a reading query: both instants
/// required, the end after the start.
fn sensor_range(
    v: &mut Violations,
    sensor_id: &str,
    start_time: Option<&prost_types::Timestamp>,
    end_time: Option<&prost_types::Timestamp>,
) -> (Option<i64>, Option<i64>) {
    v.id("sensor_id", sensor_id);
    let start = instant_ms(v, "start_time", start_time);
    let end = instant_ms(v, "end_time", end_time);
    if let (Some(start), Some(end)) = (start, end) {
        v.check(end > start, "end_time", || {
            "must be after start_time".to_string()
        });
    }
    (start, end)
}

/// A ListAlarms call: its filters, its page, and the query its page tokens are bound to.
pub fn list_alarms(
    req: &pb::ListAlarmsRequest,
) -> Result<(AlarmFilter, Page, Vec<u8>), ServiceError> {
    let mut v = Violations::new();
    v.optional_id("sensor_id", &req.sensor_id);
    v.optional_id("zone_id", &req.zone_id);
    let mut filter = AlarmFilter {
        sensor_id: req.sensor_id.clone(),
        zone_id: req.zone_id.clone(),
        active_only: req.active_only,
        ..AlarmFilter::default()
    };
    for (i, state) in req.states.iter().enumerate() {
        match alarm_state_of(*state) {
            Some(s) => filter.states.push(s),
            None => v.add(
                format!("states[{i}]"),
                format!("{state} is not an alarm state"),
            ),
        }
    }
    for (i, kind) in req.kinds.iter().enumerate() {
        match alarm_kind_of(*kind) {
            Some(k) => filter.kinds.push(k),
            None => v.add(
                format!("kinds[{i}]"),
                format!("{kind} is not an alarm kind"),
            ),
        }
    }
    let limit = v.page_size(req.page_size);
    let query = format!(
        "alarms|{}|{}|{:?}|{:?}|{}",
        req.sensor_id, req.zone_id, req.states, req.kinds, req.active_only
    )
    .into_bytes();
    let after = v.page_token(&query, &req.page_token);
    v.finish()?;
    Ok((filter, Page { after, limit }, query))
}

/// An AcknowledgeAlarm call: its fingerprint and what it acknowledges.
pub fn acknowledge_alarm(
    req: pb::AcknowledgeAlarmRequest,
) -> Result<(RequestFingerprint, Acknowledgement), ServiceError> {
    let mut v = Violations::new();
    v.request_id(&req.request_id);
    v.id("alarm_id", &req.alarm_id);
    text(
        &mut v,
        "acknowledged_by",
        &req.acknowledged_by,
        true,
        MAX_ACK_BY_BYTES,
    );
    text(&mut v, "note", &req.note, true, MAX_NOTE_BYTES);
    v.finish()?;
    let fingerprint = fingerprint_of(&req.request_id, &req);
    Ok((
        fingerprint,
        Acknowledgement {
            alarm_id: req.alarm_id,
            by: req.acknowledged_by,
            note: req.note,
        },
    ))
}
