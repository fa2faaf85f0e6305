//! Every request rule of TelemetryService, one table per RPC: each row mutates a valid base
//! request and states the code and the exact `google.rpc.BadRequest` field names the server
//! must answer with. Readings are not refused as requests: each bad reading is a rejection
//! with a reason while the rest are kept, so their rules form a table of rejection reasons.
//! After the tables, sensors, alarms and stored readings are unchanged, and the base
//! requests then succeed under the request_id every row used.
//!
//! WatchAlarms has no rule to table: every `from_sequence` is valid.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::time::{Duration, Instant};

use coldchain_proto::common::v1::TemperatureClass;
use coldchain_proto::telemetry::v1 as pb;
use coldchain_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use coldchain_store::ManualClock;
use coldchain_testkit::table::*;
use common::*;
use futures::StreamExt;
use tonic::Code;
use tonic::transport::Channel;

type Client = TelemetryServiceClient<Channel>;

// ---------------------------------------------------------------------------------------------
// The table machinery

fn duration(seconds: i64, nanos: i32) -> prost_types::Duration {
    prost_types::Duration { seconds, nanos }
}

fn timestamp(seconds: i64, nanos: i32) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos }
}

/// 9999-12-31T23:59:59Z, the last second google.protobuf.Timestamp allows.
const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;
/// 0001-01-01T00:00:00Z, the first.
const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
const DAY: i64 = 24 * 60 * MINUTE;

// ---------------------------------------------------------------------------------------------
// Fixture

struct Fixture {
    _dir: tempfile::TempDir,
    server: Server,
    client: Client,
    /// An alarm of reefer r1 (ACTIVE_UNACK).
    alarm_id: String,
}

fn reefer(request_id: &str, sensor: &str) -> pb::RegisterSensorRequest {
    pb::RegisterSensorRequest {
        request_id: request_id.into(),
        sensor_id: sensor.into(),
        binding: Some(pb::register_sensor_request::Binding::Reefer(
            pb::ReeferBinding {
                container_id: "MSKU1234565".into(),
                train_or_route: "China-Laos express X8011".into(),
                transfer_id: String::new(),
                temperature_class: TemperatureClass::Chilled as i32,
            },
        )),
        profile: None,
        description: String::new(),
        actor: Default::default(),
    }
}

/// Sensors s1 (chilled-a) and s2 (frozen-a) with a few readings; reefers r1 and r2 (not bound
/// to a transfer, so their alarms need no hold) each with a HIGH excursion alarm.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let inventory = format!("http://127.0.0.1:{}", free_port());
    let server = Server::start(
        dir.path(),
        clock,
        network_with_inventory(&inventory),
        fast_options(),
    )
    .await;
    let mut client = server.client().await;
    for request in [
        zone_sensor("fx-s1", "s1", "chilled-a", None),
        zone_sensor("fx-s2", "s2", "frozen-a", None),
        reefer("fx-r1", "r1"),
        reefer("fx-r2", "r2"),
    ] {
        client.register_sensor(request).await.expect("register");
    }
    let base = T0 - 30 * MINUTE;
    let mut readings = vec![
        reading("s1", base, 2.0),
        reading("s2", base, -20.0),
        reading("r1", base, 3.0),
        reading("r2", base + 1_000, 3.0),
    ];
    for m in 1..=7 {
        readings.push(reading("r1", base + m * MINUTE, 6.0));
        readings.push(reading("r2", base + 1_000 + m * MINUTE, 6.0));
    }
    push(&mut client, "fx-p", readings).await;
    let alarms = alarms(&mut client, "r1").await;
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_eq!(alarms[0].hold_status, pb::HoldStatus::NotRequired as i32);
    Fixture {
        _dir: dir,
        server,
        client,
        alarm_id: alarms[0].alarm_id.clone(),
    }
}

/// What a refused request must leave as it was: every sensor, every alarm, and the number
/// of stored readings of each sensor.
async fn snapshot(c: &mut Client) -> (Vec<pb::Sensor>, Vec<pb::Alarm>, Vec<i64>) {
    let sensors = c
        .list_sensors(pb::ListSensorsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .sensors;
    let alarms = c
        .list_alarms(pb::ListAlarmsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .alarms;
    let mut counts = Vec::new();
    for sensor in &sensors {
        let buckets = c
            .query_readings(pb::QueryReadingsRequest {
                sensor_id: sensor.sensor_id.clone(),
                start_time: Some(ts(T0 - 8 * DAY)),
                end_time: Some(ts(T0 + DAY)),
                bucket: Some(duration(86_400, 0)),
            })
            .await
            .unwrap()
            .into_inner()
            .buckets;
        counts.push(buckets.iter().map(|b| b.count).sum());
    }
    (sensors, alarms, counts)
}

// ---------------------------------------------------------------------------------------------
// PushReadings and the reading rules

#[tokio::test]
async fn push_readings_rules() {
    type Req = pb::PushReadingsRequest;
    let mut f = fixture().await;
    let before = snapshot(&mut f.client).await;
    let base = Req {
        request_id: "pr".into(),
        readings: vec![reading("s1", T0 - MINUTE, 2.5)],
    };
    let mut rows: Vec<Row<Req>> = Vec::new();
    rows.extend(id_rows("request_id", true, |r: &mut Req, v| {
        r.request_id = v
    }));
    rows.push(invalid("no readings", &["readings"], |r: &mut Req| {
        r.readings.clear()
    }));
    rows.push(invalid("10,001 readings", &["readings"], |r: &mut Req| {
        r.readings = (0..10_001)
            .map(|i| reading("s1", T0 - 2 * DAY + i * 1_000, 2.0))
            .collect()
    }));
    let c = f.client.clone();
    check_writes(
        "PushReadings",
        &base,
        rows,
        |r, id| r.request_id = id,
        |r| {
            let mut c = c.clone();
            async move { c.push_readings(r).await }
        },
    )
    .await;
    assert_eq!(snapshot(&mut f.client).await, before, "nothing stored");
    let summary = f
        .client
        .push_readings(base)
        .await
        .expect("the base request, request_id unused")
        .into_inner();
    assert_eq!(summary.accepted, 1);
}

#[tokio::test]
async fn each_bad_reading_is_rejected_with_its_reason_and_the_rest_kept() {
    use pb::RejectionReason as R;
    let mut f = fixture().await;
    let good = || reading("s1", T0 - MINUTE, 2.5);
    let with = |edit: &dyn Fn(&mut pb::Reading)| {
        let mut r = good();
        edit(&mut r);
        r
    };
    let table: Vec<(&str, pb::Reading, R)> = vec![
        (
            "empty sensor_id",
            with(&|r| r.sensor_id.clear()),
            R::UnknownSensor,
        ),
        (
            "unregistered sensor",
            with(&|r| r.sensor_id = "ghost".into()),
            R::UnknownSensor,
        ),
        (
            "sensor_id with a control character",
            with(&|r| r.sensor_id = "s1\u{7}".into()),
            R::UnknownSensor,
        ),
        ("no time", with(&|r| r.time = None), R::MissingTime),
        (
            "negative nanos",
            with(&|r| r.time = Some(timestamp(T0 / 1000, -1))),
            R::MissingTime,
        ),
        (
            "nanos of a whole second",
            with(&|r| r.time = Some(timestamp(T0 / 1000, 1_000_000_000))),
            R::MissingTime,
        ),
        (
            "after year 9999",
            with(&|r| r.time = Some(timestamp(MAX_TIMESTAMP_SECONDS + 1, 0))),
            R::MissingTime,
        ),
        (
            "before year 1",
            with(&|r| r.time = Some(timestamp(MIN_TIMESTAMP_SECONDS - 1, 0))),
            R::MissingTime,
        ),
        (
            "5 minutes and 1 ms ahead",
            with(&|r| r.time = Some(ts(T0 + 5 * MINUTE + 1))),
            R::InFuture,
        ),
        (
            "7 days and 1 ms behind",
            with(&|r| r.time = Some(ts(T0 - 7 * DAY - 1))),
            R::TooOld,
        ),
        ("NaN °C", with(&|r| r.celsius = f64::NAN), R::NotFinite),
        ("+∞ °C", with(&|r| r.celsius = f64::INFINITY), R::NotFinite),
        (
            "-∞ °C",
            with(&|r| r.celsius = f64::NEG_INFINITY),
            R::NotFinite,
        ),
        (
            "NaN humidity",
            with(&|r| r.humidity_percent = Some(f64::NAN)),
            R::NotFinite,
        ),
        (
            "100.01 °C",
            with(&|r| r.celsius = 100.01),
            R::CelsiusOutOfRange,
        ),
        (
            "-100.01 °C",
            with(&|r| r.celsius = -100.01),
            R::CelsiusOutOfRange,
        ),
        (
            "humidity -0.1 %",
            with(&|r| r.humidity_percent = Some(-0.1)),
            R::HumidityOutOfRange,
        ),
        (
            "humidity 100.1 %",
            with(&|r| r.humidity_percent = Some(100.1)),
            R::HumidityOutOfRange,
        ),
    ];
    let before = snapshot(&mut f.client).await;
    let summary = push(
        &mut f.client,
        "bad-readings",
        table.iter().map(|(_, r, _)| r.clone()).collect(),
    )
    .await;
    assert_eq!(
        (summary.accepted, summary.duplicates, summary.rejected),
        (0, 0, table.len() as i64)
    );
    for ((name, _, reason), rejection) in table.iter().zip(&summary.rejections) {
        assert_eq!(rejection.reason, *reason as i32, "{name}: {rejection:?}");
        assert!(
            rejection
                .message
                .chars()
                .next()
                .is_some_and(|c| !c.is_uppercase()),
            "{name}: lowercase message: {}",
            rejection.message
        );
    }
    let indices: Vec<i64> = summary.rejections.iter().map(|r| r.index).collect();
    assert_eq!(indices, (0..table.len() as i64).collect::<Vec<_>>());
    eprintln!("Reading: {} rows", table.len());
    assert_eq!(snapshot(&mut f.client).await, before, "nothing stored");

    // The edges are accepted, and a bad reading never costs a good one in the same batch.
    let edges = vec![
        reading("s1", T0 + 5 * MINUTE, 100.0),
        reading("s1", T0 - 7 * DAY, -100.0),
        pb::Reading {
            humidity_percent: Some(0.0),
            ..reading("s1", T0 - 2 * MINUTE, 0.0)
        },
        pb::Reading {
            humidity_percent: Some(100.0),
            ..reading("s1", T0 - 3 * MINUTE, 0.0)
        },
        table[0].1.clone(),
    ];
    let summary = push(&mut f.client, "edges", edges).await;
    assert_eq!((summary.accepted, summary.rejected), (4, 1), "{summary:?}");
    f.server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// StreamReadings

#[tokio::test]
async fn stream_readings_rules() {
    let mut f = fixture().await;
    let stored = reading("s1", T0 - 30 * MINUTE, 2.0);
    let oversized = pb::ReadingBatch {
        readings: vec![stored.clone(); 10_001],
    };
    let fine = pb::ReadingBatch {
        readings: vec![stored.clone()],
    };
    let table: Vec<(&str, Vec<pb::ReadingBatch>, &[&str])> = vec![
        (
            "10,001 readings in the first batch",
            vec![oversized.clone()],
            &["readings"],
        ),
        (
            "10,001 readings after a good batch",
            vec![fine.clone(), oversized],
            &["readings"],
        ),
    ];
    let before = snapshot(&mut f.client).await;
    for (name, batches, fields) in &table {
        let status = f
            .client
            .stream_readings(futures::stream::iter(batches.clone()))
            .await
            .expect_err(name);
        assert_eq!(status.code(), Code::InvalidArgument, "{name}: {status:?}");
        assert_eq!(bad_request_fields(&status), *fields, "{name}");
    }
    eprintln!("StreamReadings: {} rows", table.len());
    // The good batch before the oversized one holds a reading already stored: a duplicate.
    assert_eq!(snapshot(&mut f.client).await, before, "nothing new stored");
    f.server.stop().await;
}

/// A client that opens a stream, sends one batch and then says nothing is cut off after
/// `stream_idle_timeout` with DEADLINE_EXCEEDED, and the batch it did send is stored.
#[tokio::test]
async fn an_idle_stream_is_closed_after_storing_what_it_sent() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = format!("http://127.0.0.1:{}", free_port());
    let server = Server::start_with_config(
        dir.path(),
        ManualClock::at(T0),
        network_with_inventory(&inventory),
        fast_options(),
        |config| config.stream_idle_timeout = Duration::from_secs(1),
    )
    .await;
    let mut client = server.client().await;
    client
        .register_sensor(zone_sensor("reg", "s1", "chilled-a", None))
        .await
        .unwrap();
    let batch = pb::ReadingBatch {
        readings: (0..50)
            .map(|i| reading("s1", T0 - 10 * MINUTE + i * 1_000, 2.0))
            .collect(),
    };
    // One batch, then 2 s of silence, then the end of the stream: only an idle timeout
    // shorter than the silence turns this into an error.
    let silence = futures::stream::once(tokio::time::sleep(Duration::from_secs(2)))
        .filter_map(|()| async { None::<pb::ReadingBatch> });
    let started = Instant::now();
    let status = tokio::time::timeout(
        Duration::from_secs(10),
        client.stream_readings(futures::stream::iter([batch]).chain(silence)),
    )
    .await
    .expect("answered in time")
    .expect_err("an idle stream is closed");
    let elapsed = started.elapsed();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    // Only the idle timeout ends this stream with an error, and not before it elapsed.
    assert!(
        elapsed >= Duration::from_secs(1),
        "closed after {elapsed:?}"
    );
    let buckets = client
        .query_readings(pb::QueryReadingsRequest {
            sensor_id: "s1".into(),
            start_time: Some(ts(T0 - DAY)),
            end_time: Some(ts(T0)),
            bucket: Some(duration(86_400, 0)),
        })
        .await
        .unwrap()
        .into_inner()
        .buckets;
    let stored: i64 = buckets.iter().map(|b| b.count).sum();
    assert_eq!(stored, 50, "the batch before the silence is stored");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// RegisterSensor

#[tokio::test]
async fn register_sensor_rules() {
    type Req = pb::RegisterSensorRequest;
    use pb::register_sensor_request::Binding;
    let mut f = fixture().await;
    let before = snapshot(&mut f.client).await;
    let base = zone_sensor("rs", "s-new", "chilled-a", None);
    fn reefer_of(r: &mut Req) -> &mut pb::ReeferBinding {
        if !matches!(r.binding, Some(Binding::Reefer(_))) {
            *r = reefer(&r.request_id, &r.sensor_id);
        }
        match &mut r.binding {
            Some(Binding::Reefer(reefer)) => reefer,
            _ => unreachable!("set above"),
        }
    }
    fn profile(r: &mut Req) -> &mut pb::SensorProfile {
        r.profile.get_or_insert_with(Default::default)
    }
    let mut rows: Vec<Row<Req>> = Vec::new();
    rows.extend(id_rows("request_id", true, |r: &mut Req, v| {
        r.request_id = v
    }));
    rows.extend(id_rows("sensor_id", true, |r: &mut Req, v| r.sensor_id = v));
    rows.push(invalid(
        "description over 256 bytes",
        &["description"],
        |r: &mut Req| r.description = over_bytes(256),
    ));
    rows.push(invalid(
        "description with a control character",
        &["description"],
        |r: &mut Req| r.description = "door\u{0}side".into(),
    ));
    rows.push(invalid("no binding", &["binding"], |r: &mut Req| {
        r.binding = None
    }));
    rows.extend(id_rows("zone_id", true, |r: &mut Req, v| {
        r.binding = Some(Binding::ZoneId(v))
    }));
    rows.extend(id_rows("reefer.container_id", true, |r: &mut Req, v| {
        reefer_of(r).container_id = v
    }));
    rows.push(invalid(
        "train_or_route over 128 bytes",
        &["reefer.train_or_route"],
        |r: &mut Req| reefer_of(r).train_or_route = over_bytes(128),
    ));
    rows.push(invalid(
        "train_or_route with a control character",
        &["reefer.train_or_route"],
        |r: &mut Req| reefer_of(r).train_or_route = "X8011\u{1b}".into(),
    ));
    rows.extend(id_rows("reefer.transfer_id", false, |r: &mut Req, v| {
        reefer_of(r).transfer_id = v
    }));
    for class in [0, -1, 6, 999] {
        rows.push(invalid(
            format!("reefer class {class}"),
            &["reefer.temperature_class"],
            move |r: &mut Req| reefer_of(r).temperature_class = class,
        ));
    }
    for (name, value) in [
        ("NaN", f64::NAN),
        ("∞", f64::INFINITY),
        ("101", 101.0),
        ("-101", -101.0),
    ] {
        rows.push(invalid(
            format!("min_celsius {name}"),
            &["profile.min_celsius"],
            move |r: &mut Req| profile(r).min_celsius = Some(value),
        ));
        rows.push(invalid(
            format!("max_celsius {name}"),
            &["profile.max_celsius"],
            move |r: &mut Req| profile(r).max_celsius = Some(value),
        ));
    }
    rows.push(invalid(
        "min_celsius equal to max_celsius",
        &["profile.min_celsius"],
        |r: &mut Req| {
            profile(r).min_celsius = Some(3.0);
            profile(r).max_celsius = Some(3.0);
        },
    ));
    rows.push(invalid(
        "min_celsius above the zone's max",
        &["profile.min_celsius"],
        |r: &mut Req| profile(r).min_celsius = Some(5.0),
    ));
    rows.push(invalid(
        "max_celsius below the zone's min",
        &["profile.min_celsius"],
        |r: &mut Req| profile(r).max_celsius = Some(-1.0),
    ));
    for (name, d) in [
        ("negative", duration(-1, 0)),
        ("over 24 hours", duration(24 * 3600 + 1, 0)),
        ("mixed signs", duration(1, -5)),
        ("nanos of a whole second", duration(0, 1_000_000_000)),
    ] {
        rows.push(invalid(
            format!("min_excursion_duration {name}"),
            &["profile.min_excursion_duration"],
            move |r: &mut Req| profile(r).min_excursion_duration = Some(d),
        ));
    }
    for (name, d) in [
        ("59 s", duration(59, 0)),
        ("0", duration(0, 0)),
        ("over 7 days", duration(7 * 86_400 + 1, 0)),
        ("mixed signs", duration(-60, 5)),
    ] {
        rows.push(invalid(
            format!("offline_after {name}"),
            &["profile.offline_after"],
            move |r: &mut Req| profile(r).offline_after = Some(d),
        ));
    }
    for (name, value) in [("-0.1", -0.1), ("5.1", 5.1), ("NaN", f64::NAN)] {
        rows.push(invalid(
            format!("hysteresis {name}"),
            &["profile.hysteresis_celsius"],
            move |r: &mut Req| profile(r).hysteresis_celsius = Some(value),
        ));
    }
    rows.push(invalid(
        "every field at once, profile included",
        &[
            "request_id",
            "sensor_id",
            "description",
            "profile.max_celsius",
            "profile.offline_after",
            "profile.hysteresis_celsius",
        ],
        |r: &mut Req| {
            r.request_id.clear();
            r.sensor_id.clear();
            r.description = "\u{7}".into();
            profile(r).max_celsius = Some(f64::NAN);
            profile(r).offline_after = Some(duration(1, 0));
            profile(r).hysteresis_celsius = Some(9.0);
        },
    ));
    rows.push(invalid(
        "the zone's limit and another profile rule at once",
        &["profile.min_celsius", "profile.hysteresis_celsius"],
        |r: &mut Req| {
            profile(r).min_celsius = Some(5.0);
            profile(r).hysteresis_celsius = Some(9.0);
        },
    ));
    rows.push(invalid(
        "a malformed profile for an unknown zone",
        &["profile.hysteresis_celsius"],
        |r: &mut Req| {
            r.binding = Some(Binding::ZoneId("mars-1".into()));
            profile(r).hysteresis_celsius = Some(-1.0);
        },
    ));
    rows.push(refused("an unknown zone", Code::NotFound, |r: &mut Req| {
        r.binding = Some(Binding::ZoneId("mars-1".into()))
    }));
    let c = f.client.clone();
    check_writes(
        "RegisterSensor",
        &base,
        rows,
        |r, id| r.request_id = id,
        |r| {
            let mut c = c.clone();
            async move { c.register_sensor(r).await }
        },
    )
    .await;
    assert_eq!(snapshot(&mut f.client).await, before, "nothing registered");
    f.client
        .register_sensor(base)
        .await
        .expect("the base request, request_id unused");
    // The edges of the profile are accepted.
    f.client
        .register_sensor(zone_sensor(
            "rs-edges",
            "s-edges",
            "chilled-a",
            Some(pb::SensorProfile {
                min_celsius: Some(-100.0),
                max_celsius: Some(100.0),
                min_excursion_duration: Some(duration(24 * 3600, 0)),
                offline_after: Some(duration(60, 0)),
                hysteresis_celsius: Some(5.0),
            }),
        ))
        .await
        .expect("edges are valid");
}

// ---------------------------------------------------------------------------------------------
// ListSensors

#[tokio::test]
async fn list_sensors_rules() {
    type Req = pb::ListSensorsRequest;
    let mut f = fixture().await;
    let base = Req {
        page_size: 1,
        ..Req::default()
    };
    let token = f
        .client
        .list_sensors(base.clone())
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    let other_query = f
        .client
        .list_sensors(Req {
            statuses: vec![1, 2, 3, 4],
            ..base.clone()
        })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    let alarms_token = f
        .client
        .list_alarms(pb::ListAlarmsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!token.is_empty() && !other_query.is_empty() && !alarms_token.is_empty());
    f.client
        .list_sensors(Req {
            page_token: token.clone(),
            ..base.clone()
        })
        .await
        .expect("the genuine token is accepted");
    let mut rows: Vec<Row<Req>> = Vec::new();
    rows.extend(id_rows("zone_id", false, |r: &mut Req, v| r.zone_id = v));
    rows.extend(enum_list_rows("statuses", 999, |r: &mut Req, v| {
        r.statuses = v
    }));
    rows.push(invalid("page_size -1", &["page_size"], |r: &mut Req| {
        r.page_size = -1
    }));
    let mut tokens = tampered_tokens(&token, &other_query);
    tokens.push(("a ListAlarms token", alarms_token));
    for (name, value) in tokens {
        rows.push(invalid(
            format!("page_token {name}"),
            &["page_token"],
            move |r: &mut Req| r.page_token = value.clone(),
        ));
    }
    rows.push(refused("an unknown zone", Code::NotFound, |r: &mut Req| {
        r.zone_id = "mars-1".into()
    }));
    let c = f.client.clone();
    check_table("ListSensors", &base, rows, |r| {
        let mut c = c.clone();
        async move { c.list_sensors(r).await }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// QueryReadings and GetMeanKineticTemperature: sensor and time range

/// A request's sensor, start_time and end_time.
type RangeParts<'a> = (
    &'a mut String,
    &'a mut Option<prost_types::Timestamp>,
    &'a mut Option<prost_types::Timestamp>,
);

/// The rows of a sensor and a [start_time, end_time) range, shared by QueryReadings and
/// GetMeanKineticTemperature through `parts`.
fn range_rows<R: 'static>(parts: for<'a> fn(&'a mut R) -> RangeParts<'a>) -> Vec<Row<R>> {
    let mut rows: Vec<Row<R>> = Vec::new();
    for (form, value) in std::iter::once(("empty", String::new())).chain(malformed_ids()) {
        rows.push(invalid(
            format!("sensor_id {form}"),
            &["sensor_id"],
            move |r: &mut R| *parts(r).0 = value.clone(),
        ));
    }
    rows.push(invalid(
        "no start_time",
        &["start_time"],
        move |r: &mut R| *parts(r).1 = None,
    ));
    rows.push(invalid("no end_time", &["end_time"], move |r: &mut R| {
        *parts(r).2 = None
    }));
    for (name, t) in [
        ("negative nanos", timestamp(T0 / 1000, -1)),
        (
            "nanos of a whole second",
            timestamp(T0 / 1000, 1_000_000_000),
        ),
        ("before year 1", timestamp(MIN_TIMESTAMP_SECONDS - 1, 0)),
    ] {
        rows.push(invalid(
            format!("start_time {name}"),
            &["start_time"],
            move |r: &mut R| *parts(r).1 = Some(t),
        ));
    }
    rows.push(invalid(
        "end_time after year 9999",
        &["end_time"],
        move |r: &mut R| *parts(r).2 = Some(timestamp(MAX_TIMESTAMP_SECONDS + 1, 0)),
    ));
    rows.push(invalid(
        "end_time equal to start_time",
        &["end_time"],
        move |r: &mut R| {
            let start = *parts(r).1;
            *parts(r).2 = start;
        },
    ));
    rows.push(invalid(
        "end_time before start_time",
        &["end_time"],
        move |r: &mut R| {
            let (_, start, end) = parts(r);
            std::mem::swap(start, end);
        },
    ));
    rows.push(refused(
        "an unknown sensor",
        Code::NotFound,
        move |r: &mut R| *parts(r).0 = "ghost".into(),
    ));
    rows
}

#[tokio::test]
async fn query_readings_rules() {
    type Req = pb::QueryReadingsRequest;
    let f = fixture().await;
    let base = Req {
        sensor_id: "s1".into(),
        start_time: Some(ts(T0 - 60 * MINUTE)),
        end_time: Some(ts(T0)),
        bucket: Some(duration(60, 0)),
    };
    let mut rows = range_rows(|r: &mut Req| (&mut r.sensor_id, &mut r.start_time, &mut r.end_time));
    rows.push(invalid("no bucket", &["bucket"], |r: &mut Req| {
        r.bucket = None
    }));
    for (name, d) in [
        ("0", duration(0, 0)),
        ("999 ms", duration(0, 999_000_000)),
        ("-60 s", duration(-60, 0)),
        ("not whole milliseconds", duration(1, 500)),
        ("mixed signs", duration(1, -1_000_000)),
        ("nanos of a whole second", duration(1, 1_000_000_000)),
    ] {
        rows.push(invalid(
            format!("bucket {name}"),
            &["bucket"],
            move |r: &mut Req| r.bucket = Some(d),
        ));
    }
    rows.push(invalid("100,001 buckets", &["bucket"], |r: &mut Req| {
        r.start_time = Some(ts(T0 - 100_001_000));
        r.bucket = Some(duration(1, 0));
    }));
    rows.push(invalid(
        "every field at once",
        &["sensor_id", "start_time", "end_time", "bucket"],
        |r: &mut Req| {
            r.sensor_id.clear();
            r.start_time = None;
            r.end_time = Some(timestamp(0, -5));
            r.bucket = Some(duration(0, 0));
        },
    ));
    let c = f.client.clone();
    check_table("QueryReadings", &base, rows, |r| {
        let mut c = c.clone();
        async move { c.query_readings(r).await }
    })
    .await;
    // 100,000 buckets exactly are allowed.
    f.client
        .clone()
        .query_readings(Req {
            start_time: Some(ts(T0 - 100_000_000)),
            bucket: Some(duration(1, 0)),
            ..base
        })
        .await
        .expect("100,000 buckets");
}

#[tokio::test]
async fn get_mean_kinetic_temperature_rules() {
    type Req = pb::GetMeanKineticTemperatureRequest;
    let f = fixture().await;
    let base = Req {
        sensor_id: "s1".into(),
        start_time: Some(ts(T0 - 60 * MINUTE)),
        end_time: Some(ts(T0)),
        activation_energy_kj_per_mol: None,
    };
    let mut rows = range_rows(|r: &mut Req| (&mut r.sensor_id, &mut r.start_time, &mut r.end_time));
    for (name, value) in [
        ("0", 0.0),
        ("-83.144", -83.144),
        ("NaN", f64::NAN),
        ("∞", f64::INFINITY),
        ("-∞", f64::NEG_INFINITY),
    ] {
        rows.push(invalid(
            format!("activation energy {name}"),
            &["activation_energy_kj_per_mol"],
            move |r: &mut Req| r.activation_energy_kj_per_mol = Some(value),
        ));
    }
    rows.push(refused(
        "a range without readings",
        Code::FailedPrecondition,
        |r: &mut Req| {
            r.start_time = Some(ts(T0 - 3 * DAY));
            r.end_time = Some(ts(T0 - 2 * DAY));
        },
    ));
    let c = f.client.clone();
    c.clone()
        .get_mean_kinetic_temperature(base.clone())
        .await
        .expect("the base request is valid");
    check_table("GetMeanKineticTemperature", &base, rows, |r| {
        let mut c = c.clone();
        async move { c.get_mean_kinetic_temperature(r).await }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// ListAlarms and AcknowledgeAlarm

#[tokio::test]
async fn list_alarms_rules() {
    type Req = pb::ListAlarmsRequest;
    let mut f = fixture().await;
    let base = Req {
        page_size: 1,
        ..Req::default()
    };
    let token = f
        .client
        .list_alarms(base.clone())
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    let other_query = f
        .client
        .list_alarms(Req {
            active_only: true,
            ..base.clone()
        })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    let sensors_token = f
        .client
        .list_sensors(pb::ListSensorsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!token.is_empty() && !other_query.is_empty() && !sensors_token.is_empty());
    f.client
        .list_alarms(Req {
            page_token: token.clone(),
            ..base.clone()
        })
        .await
        .expect("the genuine token is accepted");
    let mut rows: Vec<Row<Req>> = Vec::new();
    rows.extend(id_rows("sensor_id", false, |r: &mut Req, v| {
        r.sensor_id = v
    }));
    rows.extend(id_rows("zone_id", false, |r: &mut Req, v| r.zone_id = v));
    rows.extend(enum_list_rows("states", 5, |r: &mut Req, v| r.states = v));
    rows.extend(enum_list_rows("kinds", 4, |r: &mut Req, v| r.kinds = v));
    rows.push(invalid("page_size -1", &["page_size"], |r: &mut Req| {
        r.page_size = -1
    }));
    let mut tokens = tampered_tokens(&token, &other_query);
    tokens.push(("a ListSensors token", sensors_token));
    for (name, value) in tokens {
        rows.push(invalid(
            format!("page_token {name}"),
            &["page_token"],
            move |r: &mut Req| r.page_token = value.clone(),
        ));
    }
    rows.push(invalid(
        "every field at once",
        &[
            "sensor_id",
            "zone_id",
            "states[0]",
            "kinds[0]",
            "page_size",
            "page_token",
        ],
        |r: &mut Req| {
            r.sensor_id = " s1".into();
            r.zone_id = "\u{0}".into();
            r.states = vec![0];
            r.kinds = vec![0];
            r.page_size = -5;
            r.page_token = "zz".into();
        },
    ));
    rows.push(refused(
        "an unknown sensor",
        Code::NotFound,
        |r: &mut Req| r.sensor_id = "ghost".into(),
    ));
    rows.push(refused("an unknown zone", Code::NotFound, |r: &mut Req| {
        r.zone_id = "mars-1".into()
    }));
    let c = f.client.clone();
    check_table("ListAlarms", &base, rows, |r| {
        let mut c = c.clone();
        async move { c.list_alarms(r).await }
    })
    .await;
}

#[tokio::test]
async fn acknowledge_alarm_rules() {
    type Req = pb::AcknowledgeAlarmRequest;
    let mut f = fixture().await;
    let before = snapshot(&mut f.client).await;
    let base = Req {
        request_id: "ack".into(),
        alarm_id: f.alarm_id.clone(),
        acknowledged_by: "qa-lead".into(),
        note: "pallets checked".into(),
    };
    let mut rows: Vec<Row<Req>> = Vec::new();
    rows.extend(id_rows("request_id", true, |r: &mut Req, v| {
        r.request_id = v
    }));
    rows.extend(id_rows("alarm_id", true, |r: &mut Req, v| r.alarm_id = v));
    for (name, by) in [
        ("empty", String::new()),
        ("blank", "  ".to_string()),
        ("over 128 bytes", over_bytes(128)),
        ("with a control character", "qa\u{7}".to_string()),
    ] {
        rows.push(invalid(
            format!("acknowledged_by {name}"),
            &["acknowledged_by"],
            move |r: &mut Req| r.acknowledged_by = by.clone(),
        ));
    }
    for (name, note) in [
        ("empty", String::new()),
        ("blank", "   ".to_string()),
        ("over 1,024 bytes", over_bytes(1024)),
        ("with a control character", "checked\u{0}".to_string()),
    ] {
        rows.push(invalid(
            format!("note {name}"),
            &["note"],
            move |r: &mut Req| r.note = note.clone(),
        ));
    }
    rows.push(refused(
        "an unknown alarm",
        Code::NotFound,
        |r: &mut Req| r.alarm_id = "alm-99999999".into(),
    ));
    let c = f.client.clone();
    check_writes(
        "AcknowledgeAlarm",
        &base,
        rows,
        |r, id| r.request_id = id,
        |r| {
            let mut c = c.clone();
            async move { c.acknowledge_alarm(r).await }
        },
    )
    .await;
    assert_eq!(
        snapshot(&mut f.client).await,
        before,
        "nothing acknowledged"
    );
    let acked = f
        .client
        .acknowledge_alarm(base.clone())
        .await
        .expect("the base request, request_id unused")
        .into_inner();
    assert_eq!(acked.state, pb::AlarmState::ActiveAck as i32);
    let twice = f
        .client
        .acknowledge_alarm(Req {
            request_id: "ack-2".into(),
            ..base
        })
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition, "{twice:?}");
}
