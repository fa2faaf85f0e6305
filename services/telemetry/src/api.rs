//! The tonic handlers: proto → domain (validation with `Violations`), store call,
//! result → proto / Status.

use std::collections::HashMap;
use std::pin::Pin;

use coldchain_proto::common::v1::TemperatureClass as PbClass;
use coldchain_proto::telemetry::v1 as pb;
use coldchain_proto::telemetry::v1::telemetry_service_server::TelemetryService;
use coldchain_runtime::Shutdown;
use coldchain_runtime::error::ServiceError;
use coldchain_runtime::network::TemperatureClass;
use coldchain_runtime::page_token;
use coldchain_runtime::validate::Violations;
use coldchain_store::fingerprint;
use futures::Stream;
use prost::Message;
use prost_types::Timestamp;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::convert;
use crate::domain::alarm::{AlarmKind, AlarmState};
use crate::domain::mkt::DEFAULT_ACTIVATION_ENERGY_KJ_PER_MOL;
use crate::domain::{
    self, Binding, MAX_BATCH_READINGS, MAX_REJECTION_DETAILS, ProfileRequest, RawTime, Reefer,
    Rejection,
};
use crate::store::{AlarmFilter, MktError, Prepared, Registration, TelemetryStore};

/// The default page size.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// The largest page size (larger requests are clamped).
pub const MAX_PAGE_SIZE: usize = 1_000;
/// The most readings one StreamReadings write gathers from consecutive batches.
pub const MAX_READINGS_PER_WRITE: usize = 20_000;
/// Batches a stream reads ahead while a write is in flight.
pub const STREAM_READ_AHEAD: usize = 8;
/// The bounded buffer of a WatchAlarms stream (messages).
pub const WATCH_BUFFER: usize = 256;
/// Ledger entries read per page by WatchAlarms.
pub const WATCH_PAGE: usize = 1_024;
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

/// The telemetry service of one site.
pub struct TelemetryApi {
    store: TelemetryStore,
    shutdown: Shutdown,
    watch_buffer: usize,
    idle_timeout: std::time::Duration,
}

impl TelemetryApi {
    /// Handlers over `store`; streams end when `shutdown` fires; a WatchAlarms consumer
    /// more than `watch_buffer` messages behind is cut off (to resume); a StreamReadings
    /// client silent for `idle_timeout` is closed.
    pub fn new(
        store: TelemetryStore,
        shutdown: Shutdown,
        watch_buffer: usize,
        idle_timeout: std::time::Duration,
    ) -> Self {
        Self {
            store,
            shutdown,
            watch_buffer: watch_buffer.max(1),
            idle_timeout,
        }
    }
}

fn record_request_id(request_id: &str) {
    tracing::Span::current().record("request_id", request_id);
}

/// Free text: at most `max` bytes, no control characters (newline and tab allowed).
fn text(v: &mut Violations, field: &str, value: &str, required: bool, max: usize) {
    if required && value.trim().is_empty() {
        v.add(field, "is required");
    } else if value.len() > max {
        v.add(
            field,
            format!("must be at most {max} bytes, got {}", value.len()),
        );
    } else if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        v.add(field, "must not contain control characters");
    }
}

/// A required, valid instant as ms: the first millisecond at or after it (`ceil`).
fn instant_ms(v: &mut Violations, field: &str, value: Option<&Timestamp>) -> Option<i64> {
    let Some(t) = value else {
        v.add(field, "is required");
        return None;
    };
    // Years 1..=9999, as google.protobuf.Timestamp defines.
    let valid = (0..1_000_000_000).contains(&t.nanos)
        && (domain::MIN_TIMESTAMP_SECONDS..=domain::MAX_TIMESTAMP_SECONDS).contains(&t.seconds);
    if !valid {
        v.add(
            field,
            format!("{}s {}ns is not a valid timestamp", t.seconds, t.nanos),
        );
        return None;
    }
    let nanos = i64::from(t.nanos);
    Some(t.seconds * 1_000 + nanos / 1_000_000 + i64::from(nanos % 1_000_000 != 0))
}

/// A page size: negative is invalid, 0 means the default, above the maximum is clamped.
fn page_size(v: &mut Violations, value: i32) -> usize {
    if value < 0 {
        v.add("page_size", format!("must not be negative, got {value}"));
        return DEFAULT_PAGE_SIZE;
    }
    match value as usize {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    }
}

fn class_limits(value: i32) -> Option<(Option<f64>, f64)> {
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

fn alarm_state(value: i32) -> Option<AlarmState> {
    Some(match pb::AlarmState::try_from(value).ok()? {
        pb::AlarmState::ActiveUnack => AlarmState::ActiveUnack,
        pb::AlarmState::ActiveAck => AlarmState::ActiveAck,
        pb::AlarmState::ClearedUnack => AlarmState::ClearedUnack,
        pb::AlarmState::ClearedAck => AlarmState::ClearedAck,
        pb::AlarmState::Unspecified => return None,
    })
}

fn alarm_kind(value: i32) -> Option<AlarmKind> {
    Some(match pb::AlarmKind::try_from(value).ok()? {
        pb::AlarmKind::ExcursionHigh => AlarmKind::ExcursionHigh,
        pb::AlarmKind::ExcursionLow => AlarmKind::ExcursionLow,
        pb::AlarmKind::SensorOffline => AlarmKind::SensorOffline,
        pb::AlarmKind::Unspecified => return None,
    })
}

fn sensor_status(value: i32) -> Option<domain::SensorStatus> {
    Some(match pb::SensorStatus::try_from(value).ok()? {
        pb::SensorStatus::Ok => domain::SensorStatus::Ok,
        pb::SensorStatus::Excursion => domain::SensorStatus::Excursion,
        pb::SensorStatus::Offline => domain::SensorStatus::Offline,
        pb::SensorStatus::NoData => domain::SensorStatus::NoData,
        pb::SensorStatus::Unspecified => return None,
    })
}

/// A fast, non-cryptographic hasher (FxHash) for the per-reading sensor lookup: the keys
/// are the caller's own sensor ids, and a collision only costs time.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        for byte in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*byte)).wrapping_mul(K);
        }
    }
}

type FxBuild = std::hash::BuildHasherDefault<FxHasher>;

/// At most 128 bytes of a client's text, for messages.
fn shorten(text: &str) -> &str {
    let mut end = text.len().min(128);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Turns readings into per-sensor samples (sorted, repeats within the call dropped) and
/// rejections. `batches`: (batch index, readings).
pub fn prepare(
    store: &TelemetryStore,
    batches: &[(i64, &[pb::Reading])],
    now_ms: i64,
    detail_budget: usize,
) -> Prepared {
    let mut prepared = Prepared::default();
    let known = store.known_sensors();
    let site = &store.site().id;
    // sensor id → its group, or None for an unknown sensor: one lookup per reading.
    let mut index: HashMap<&str, Option<usize>, FxBuild> = HashMap::default();
    for (batch_index, readings) in batches {
        for (i, reading) in readings.iter().enumerate() {
            let group = *index.entry(reading.sensor_id.as_str()).or_insert_with(|| {
                known.get(&reading.sensor_id).map(|sensor| {
                    prepared
                        .groups
                        .push((sensor.clone(), Vec::with_capacity(64)));
                    prepared.groups.len() - 1
                })
            });
            let outcome = if group.is_none() {
                Err((
                    Rejection::UnknownSensor,
                    if reading.sensor_id.is_empty() {
                        "sensor_id: is required".to_string()
                    } else {
                        format!(
                            "sensor_id: {:?} is not a registered sensor of site {site}",
                            shorten(&reading.sensor_id)
                        )
                    },
                ))
            } else {
                domain::check_reading(
                    reading.time.as_ref().map(|t| RawTime {
                        seconds: t.seconds,
                        nanos: t.nanos,
                    }),
                    reading.celsius,
                    reading.humidity_percent,
                    reading.door_open,
                    now_ms,
                )
            };
            match (outcome, group) {
                (Ok(sample), Some(group)) => prepared.groups[group].1.push(sample),
                (Ok(_), None) => {}
                (Err((reason, message)), _) => {
                    prepared.rejected += 1;
                    if prepared.rejections.len() < detail_budget {
                        prepared.rejections.push(pb::Rejection {
                            batch_index: *batch_index,
                            index: i as i64,
                            sensor_id: reading.sensor_id.clone(),
                            time: reading.time,
                            reason: convert::rejection_reason(reason) as i32,
                            message,
                        });
                    }
                }
            }
        }
    }
    drop(known);
    for (_, samples) in &mut prepared.groups {
        if !samples.is_sorted_by_key(|s| s.ts) {
            // Stable: the first of equal times (in input order) is the one kept.
            samples.sort_by_key(|s| s.ts);
        }
        let before = samples.len();
        samples.dedup_by_key(|s| s.ts);
        prepared.duplicates += (before - samples.len()) as i64;
    }
    prepared
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchAlarmsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl TelemetryService for TelemetryApi {
    async fn stream_readings(
        &self,
        request: Request<Streaming<pb::ReadingBatch>>,
    ) -> Result<Response<pb::IngestSummary>, Status> {
        let mut stream = request.into_inner();
        let idle = self.idle_timeout;
        // A reader task keeps receiving while a write is in flight.
        let (tx, mut rx) = mpsc::channel::<Result<pb::ReadingBatch, Status>>(STREAM_READ_AHEAD);
        let reader = tokio::spawn(async move {
            loop {
                // A client that holds a stream open and sends nothing would keep its
                // connection and task forever: silence beyond the idle timeout ends it.
                let next = match tokio::time::timeout(idle, stream.message()).await {
                    Ok(next) => next,
                    Err(_) => Err(Status::deadline_exceeded(format!(
                        "no batch for {} s: idle stream closed (every batch before it was \
                         stored); send more often or open a new stream",
                        idle.as_secs()
                    ))),
                };
                let (message, last) = match next {
                    Ok(Some(batch)) => (Ok(batch), false),
                    Ok(None) => return,
                    Err(status) => (Err(status), true),
                };
                if tx.send(message).await.is_err() || last {
                    return;
                }
            }
        });
        let _abort_reader = AbortOnDrop(reader);
        let mut total = pb::IngestSummary::default();
        let mut next_batch_index = 0i64;
        while let Some(first) = rx.recv().await {
            let mut batches = vec![first];
            let mut readings = batches[0].as_ref().map_or(0, |b| b.readings.len());
            while readings < MAX_READINGS_PER_WRITE {
                match rx.try_recv() {
                    Ok(more) => {
                        readings += more.as_ref().map_or(0, |b| b.readings.len());
                        batches.push(more);
                    }
                    Err(_) => break,
                }
            }
            let mut owned = Vec::with_capacity(batches.len());
            let mut refused = None;
            for batch in batches {
                let batch = match batch {
                    Ok(batch) => batch,
                    Err(status) => {
                        refused = Some(status);
                        break;
                    }
                };
                if batch.readings.len() > MAX_BATCH_READINGS {
                    refused = Some(
                        ServiceError::invalid(
                            "readings",
                            format!(
                                "batch {next_batch_index} has {} readings, at most {MAX_BATCH_READINGS} are allowed (the {next_batch_index} batches before it were stored)",
                                batch.readings.len()
                            ),
                        )
                        .into(),
                    );
                    break;
                }
                owned.push((next_batch_index, batch));
                next_batch_index += 1;
            }
            if !owned.is_empty() {
                let views: Vec<(i64, &[pb::Reading])> = owned
                    .iter()
                    .map(|(i, b)| (*i, b.readings.as_slice()))
                    .collect();
                let budget = MAX_REJECTION_DETAILS.saturating_sub(total.rejections.len());
                let prepared = prepare(&self.store, &views, self.store.now_millis(), budget);
                let summary = self.store.ingest(None, prepared).await?;
                total.accepted += summary.accepted;
                total.duplicates += summary.duplicates;
                total.rejected += summary.rejected;
                total.rejections.extend(summary.rejections);
            }
            if let Some(status) = refused {
                return Err(status);
            }
        }
        Ok(Response::new(total))
    }

    async fn push_readings(
        &self,
        request: Request<pb::PushReadingsRequest>,
    ) -> Result<Response<pb::IngestSummary>, Status> {
        let req = request.into_inner();
        record_request_id(&req.request_id);
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
        let request = fingerprint(&req.request_id, &req.encode_to_vec());
        let prepared = prepare(
            &self.store,
            &[(0, req.readings.as_slice())],
            self.store.now_millis(),
            MAX_REJECTION_DETAILS,
        );
        let summary = self.store.ingest(Some(request), prepared).await?;
        Ok(Response::new(summary))
    }

    async fn register_sensor(
        &self,
        request: Request<pb::RegisterSensorRequest>,
    ) -> Result<Response<pb::Sensor>, Status> {
        let req = request.into_inner();
        record_request_id(&req.request_id);
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
            let ms = convert::duration_ms(d);
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
        // Check the profile with every other field, so one answer names all bad fields and
        // a malformed profile is INVALID_ARGUMENT even when the zone is unknown: against the
        // binding's default limits where the binding names known ones, otherwise against
        // none (an infinite default max skips only the comparison of a given min with a
        // default max; an unknown zone is NOT_FOUND below).
        let defaults = match &binding {
            Some(Binding::Zone(zone_id)) => self
                .store
                .site()
                .zone(zone_id)
                .map(|zone| (Some(zone.min_celsius), zone.max_celsius)),
            Some(Binding::Reefer(r)) => class_limits(r.temperature_class),
            None => None,
        };
        let (default_min, default_max) = defaults.unwrap_or((None, f64::INFINITY));
        if let Err(problems) = domain::effective_profile(&request_profile, default_min, default_max)
        {
            for (field, description) in problems {
                v.add(field, description);
            }
        }
        v.finish()?;
        let Some(binding) = binding else {
            return Err(
                ServiceError::invalid("binding", "one of zone_id or reefer is required").into(),
            );
        };
        let (default_min, default_max) = match &binding {
            Binding::Zone(zone_id) => {
                let zone = self.store.site().zone(zone_id).ok_or_else(|| {
                    ServiceError::not_found(format!(
                        "zone_id {zone_id:?} is not a zone of site {}",
                        self.store.site().id
                    ))
                })?;
                (Some(zone.min_celsius), zone.max_celsius)
            }
            Binding::Reefer(r) => class_limits(r.temperature_class)
                .ok_or_else(|| ServiceError::invalid("reefer.temperature_class", "is required"))?,
        };
        let effective = domain::effective_profile(&request_profile, default_min, default_max)
            .map_err(|problems| {
                let mut v = Violations::new();
                for (field, description) in problems {
                    v.add(field, description);
                }
                v.finish()
                    .err()
                    .unwrap_or_else(|| ServiceError::invalid("profile", "is invalid"))
            })?;
        let request = fingerprint(&req.request_id, &req.encode_to_vec());
        let sensor = self
            .store
            .register_sensor(
                request,
                Registration {
                    sensor_id: req.sensor_id,
                    binding,
                    profile: effective,
                    description: req.description,
                },
            )
            .await?;
        Ok(Response::new(sensor))
    }

    async fn list_sensors(
        &self,
        request: Request<pb::ListSensorsRequest>,
    ) -> Result<Response<pb::ListSensorsResponse>, Status> {
        let req = request.into_inner();
        let mut v = Violations::new();
        v.optional_id("zone_id", &req.zone_id);
        let mut statuses = Vec::new();
        for (i, status) in req.statuses.iter().enumerate() {
            match sensor_status(*status) {
                Some(s) => statuses.push(s),
                None => v.add(
                    format!("statuses[{i}]"),
                    format!("{status} is not a sensor status"),
                ),
            }
        }
        let limit = page_size(&mut v, req.page_size);
        let query = format!("sensors|{}|{:?}", req.zone_id, req.statuses).into_bytes();
        let after = match page_token::decode(&query, &req.page_token) {
            Ok(after) => after,
            Err(error) => {
                v.add("page_token", error.message.clone());
                None
            }
        };
        v.finish()?;
        if !req.zone_id.is_empty() && self.store.site().zone(&req.zone_id).is_none() {
            return Err(ServiceError::not_found(format!(
                "zone_id {:?} is not a zone of site {}",
                req.zone_id,
                self.store.site().id
            ))
            .into());
        }
        let now = self.store.now_millis();
        let (sensors, last) =
            self.store
                .list_sensors(after.as_deref(), limit, |record, state| {
                    (req.zone_id.is_empty() || record.binding.zone() == Some(req.zone_id.as_str()))
                        && (statuses.is_empty()
                            || statuses.contains(&state.status(&record.profile, now)))
                })?;
        let site = &self.store.site().id;
        Ok(Response::new(pb::ListSensorsResponse {
            sensors: sensors
                .iter()
                .map(|(record, state)| convert::sensor(record, state, site, now))
                .collect(),
            next_page_token: last
                .map(|key| page_token::encode(&query, &key))
                .unwrap_or_default(),
        }))
    }

    async fn query_readings(
        &self,
        request: Request<pb::QueryReadingsRequest>,
    ) -> Result<Response<pb::QueryReadingsResponse>, Status> {
        let req = request.into_inner();
        let mut v = Violations::new();
        v.id("sensor_id", &req.sensor_id);
        let start = instant_ms(&mut v, "start_time", req.start_time.as_ref());
        let end = instant_ms(&mut v, "end_time", req.end_time.as_ref());
        let bucket = match &req.bucket {
            None => {
                v.add("bucket", "is required");
                None
            }
            Some(d) => match convert::duration_ms(d) {
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
        let (Some(start), Some(end), Some(bucket)) = (start, end, bucket) else {
            return Err(ServiceError::invalid("start_time", "is required").into());
        };
        self.require_sensor(&req.sensor_id)?;
        let result = self
            .store
            .query_readings(&req.sensor_id, start, end, bucket)?;
        Ok(Response::new(pb::QueryReadingsResponse {
            sensor_id: req.sensor_id,
            buckets: result
                .buckets
                .iter()
                .map(|b| pb::ReadingBucket {
                    start_time: Some(convert::timestamp(b.start)),
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
                    start_time: Some(convert::timestamp(u.start)),
                    end_time: Some(convert::timestamp(u.end)),
                    message: u.message,
                })
                .collect(),
        }))
    }

    async fn get_mean_kinetic_temperature(
        &self,
        request: Request<pb::GetMeanKineticTemperatureRequest>,
    ) -> Result<Response<pb::GetMeanKineticTemperatureResponse>, Status> {
        let req = request.into_inner();
        let mut v = Violations::new();
        v.id("sensor_id", &req.sensor_id);
        let start = instant_ms(&mut v, "start_time", req.start_time.as_ref());
        let end = instant_ms(&mut v, "end_time", req.end_time.as_ref());
        if let (Some(start), Some(end)) = (start, end) {
            v.check(end > start, "end_time", || {
                "must be after start_time".to_string()
            });
        }
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
            return Err(ServiceError::invalid("start_time", "is required").into());
        };
        let (record, _) = self.require_sensor(&req.sensor_id)?;
        let result = self
            .store
            .mean_kinetic_temperature(
                &req.sensor_id,
                start,
                end,
                energy,
                record.profile.offline_after_ms,
            )
            .map_err(|error| match error {
                MktError::NoReadings => Status::from(
                    ServiceError::failed_precondition(format!(
                        "sensor {:?} has no reading from {} to {}",
                        req.sensor_id,
                        domain::format_ms(start),
                        domain::format_ms(end)
                    ))
                    .with_precondition(
                        "READINGS",
                        &req.sensor_id,
                        "no reading in the range",
                    ),
                ),
                MktError::DataLoss(message) => Status::data_loss(message),
                MktError::Service(error) => error.into(),
            })?;
        Ok(Response::new(pb::GetMeanKineticTemperatureResponse {
            sensor_id: req.sensor_id,
            mkt_celsius: result.celsius,
            reading_count: result.count as i64,
            first_reading_time: Some(convert::timestamp(result.first)),
            last_reading_time: Some(convert::timestamp(result.last)),
            span: Some(convert::duration(result.span_ms)),
            activation_energy_kj_per_mol: energy,
        }))
    }

    async fn list_alarms(
        &self,
        request: Request<pb::ListAlarmsRequest>,
    ) -> Result<Response<pb::ListAlarmsResponse>, Status> {
        let req = request.into_inner();
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
            match alarm_state(*state) {
                Some(s) => filter.states.push(s),
                None => v.add(
                    format!("states[{i}]"),
                    format!("{state} is not an alarm state"),
                ),
            }
        }
        for (i, kind) in req.kinds.iter().enumerate() {
            match alarm_kind(*kind) {
                Some(k) => filter.kinds.push(k),
                None => v.add(
                    format!("kinds[{i}]"),
                    format!("{kind} is not an alarm kind"),
                ),
            }
        }
        let limit = page_size(&mut v, req.page_size);
        let query = format!(
            "alarms|{}|{}|{:?}|{:?}|{}",
            req.sensor_id, req.zone_id, req.states, req.kinds, req.active_only
        )
        .into_bytes();
        let after = match page_token::decode(&query, &req.page_token) {
            Ok(after) => after,
            Err(error) => {
                v.add("page_token", error.message.clone());
                None
            }
        };
        v.finish()?;
        if !req.zone_id.is_empty() && self.store.site().zone(&req.zone_id).is_none() {
            return Err(ServiceError::not_found(format!(
                "zone_id {:?} is not a zone of site {}",
                req.zone_id,
                self.store.site().id
            ))
            .into());
        }
        if !req.sensor_id.is_empty() {
            self.require_sensor(&req.sensor_id)?;
        }
        let (alarms, last) = self.store.list_alarms(&filter, after.as_deref(), limit)?;
        let site = &self.store.site().id;
        Ok(Response::new(pb::ListAlarmsResponse {
            alarms: alarms.iter().map(|a| convert::alarm(a, site)).collect(),
            next_page_token: last
                .map(|key| page_token::encode(&query, &key))
                .unwrap_or_default(),
        }))
    }

    async fn acknowledge_alarm(
        &self,
        request: Request<pb::AcknowledgeAlarmRequest>,
    ) -> Result<Response<pb::Alarm>, Status> {
        let req = request.into_inner();
        record_request_id(&req.request_id);
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
        text(&mut v, "note", &req.note, false, MAX_NOTE_BYTES);
        v.finish()?;
        let request = fingerprint(&req.request_id, &req.encode_to_vec());
        let alarm = self
            .store
            .acknowledge(request, req.alarm_id, req.acknowledged_by, req.note)
            .await?;
        Ok(Response::new(alarm))
    }

    type WatchAlarmsStream = WatchStream;

    async fn watch_alarms(
        &self,
        request: Request<pb::WatchAlarmsRequest>,
    ) -> Result<Response<Self::WatchAlarmsStream>, Status> {
        let from = request.into_inner().from_sequence.max(1);
        let (tx, rx) = mpsc::channel(self.watch_buffer);
        tokio::spawn(watch(self.store.clone(), from, tx, self.shutdown.clone()));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

impl TelemetryApi {
    fn require_sensor(
        &self,
        sensor_id: &str,
    ) -> Result<(domain::SensorRecord, domain::SensorState), ServiceError> {
        self.store.sensor(sensor_id)?.ok_or_else(|| {
            ServiceError::not_found(format!(
                "sensor_id {sensor_id:?} is not a registered sensor of site {}",
                self.store.site().id
            ))
        })
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Feeds a WatchAlarms stream: stored events from `from`, then live ones. Ends with a
/// resumable error when the consumer is too slow, or when the server shuts down.
async fn watch(
    store: TelemetryStore,
    mut from: u64,
    tx: mpsc::Sender<Result<pb::WatchAlarmsResponse, Status>>,
    shutdown: Shutdown,
) {
    let mut durable = store.raw().subscribe_ledger();
    let keepalive = std::time::Duration::from_secs(15);
    loop {
        if shutdown.is_triggered() {
            let _ = tx
                .send(Err(Status::unavailable(format!(
                    "server shutting down, resume from_sequence {from}"
                ))))
                .await;
            return;
        }
        let records = match store.raw().ledger_from(from, WATCH_PAGE) {
            Ok(records) => records,
            Err(error) => {
                let _ = tx.send(Err(ServiceError::from(error).into())).await;
                return;
            }
        };
        if !records.is_empty() {
            let mut events = Vec::with_capacity(records.len());
            for record in &records {
                match pb::AlarmEvent::decode(record.bytes.as_slice()) {
                    Ok(event) => events.push(event),
                    Err(error) => {
                        let _ = tx
                            .send(Err(Status::data_loss(format!(
                                "alarm event {} cannot be decoded: {error}",
                                record.sequence
                            ))))
                            .await;
                        return;
                    }
                }
            }
            let next = records.last().map_or(from, |r| r.sequence + 1);
            let message = pb::WatchAlarmsResponse {
                events,
                head_sequence: store.raw().durable_sequence(),
            };
            match tx.try_send(Ok(message)) {
                Ok(()) => from = next,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // Never buffer without bound: the consumer resumes where it left off.
                    let _ = tx
                        .send(Err(Status::resource_exhausted(format!(
                            "consumer too slow, resume from_sequence {from}"
                        ))))
                        .await;
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
            continue;
        }
        tokio::select! {
            changed = durable.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep(keepalive) => {
                let message = pb::WatchAlarmsResponse {
                    events: Vec::new(),
                    head_sequence: store.raw().durable_sequence(),
                };
                if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(Ok(message)) {
                    return;
                }
            }
            () = tx.closed() => return,
            () = shutdown.wait() => {}
        }
    }
}
