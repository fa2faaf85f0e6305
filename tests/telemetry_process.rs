//! The telemetry service as its own process (`coldchain serve telemetry`) under concurrent
//! PushReadings load, killed with SIGKILL mid-load and restarted on the same data
//! directory: every acknowledged reading is stored, exactly as acknowledged, and nothing
//! else is. Batches whose outcome the kill made unknown landed whole or not at all, and
//! land exactly once when retried with the same request_id. A second SIGKILL and restart
//! change nothing.
//!
//! Presence is proven three ways, each exact: QueryReadings with 1-second buckets over
//! readings 1 second apart (every reading is its own bucket, so the buckets list the
//! stored readings one by one, with their values); replaying each acknowledged request
//! with its request_id (the first answer comes back); and re-sending every acknowledged
//! reading under new request_ids (every one is counted a duplicate, none is stored again).
//!
//! Inventory is not running: holds are placed only for excursion alarms, and every value
//! lies inside the zone's limits with the offline period at its longest, so no alarm is
//! raised (checked at the end). Operations registers the sensors and reads, the site's
//! sensor gateway pushes the readings, each with its own key.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coldchain_proto::telemetry::v1 as pb;
use coldchain_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use coldchain_runtime::client::Channel;
use futures::{StreamExt, TryStreamExt};

const SITE: &str = "cn-huaihua-park";
/// A CHILLED zone of the site: 0..4 °C.
const ZONE: &str = "chilled-a";
const SENSORS: usize = 8;
const WRITERS: usize = 8;
/// Readings per sensor in one batch.
const PER_SENSOR: u64 = 4;
/// How long the load runs before the kill.
const LOAD: Duration = Duration::from_millis(1500);
/// How far back the first reading lies. The readings are 1 second apart, so this bounds
/// the batches the load may send (`MAX_BATCHES`) without a reading in the future.
const FIRST_READING_AGE: Duration = Duration::from_secs(2 * 24 * 3600);
/// More batches than the load can send in `LOAD` on any machine, and few enough that the
/// last reading is still older than now (and every reading younger than the 7 days the
/// service accepts).
const MAX_BATCHES: u64 = 40_000;
/// Calls in flight at once when re-sending after the restart.
const VERIFY_CONCURRENCY: usize = 8;
/// Most readings the service takes in one PushReadings.
const MAX_BATCH_READINGS: usize = 10_000;
/// 1-second buckets queried at once: well under the 4 MiB message limit.
const QUERY_SPAN_SECONDS: i64 = 20_000;
/// Server calls return within the channel's timeout; this bounds whole phases of them.
const PHASE_TIMEOUT: Duration = Duration::from_secs(120);

type Client = TelemetryServiceClient<Channel>;

/// A stored reading: (sensor id, unix seconds) → hundredths of a degree.
type Readings = BTreeMap<(String, i64), i64>;

fn sensor_id(sensor: usize) -> String {
    format!("tp-sensor-{sensor}")
}

/// The reading of `sensor` in time slot `slot` (slots are seconds after `first_second`), in
/// hundredths of a degree: 1.00..3.00 °C, well inside the zone's 0..4 °C, so no excursion.
fn centi_celsius(sensor: usize, slot: u64) -> i64 {
    100 + ((slot + sensor as u64 * 7) % 21) as i64 * 10
}

/// Global batch `batch`: `PER_SENSOR` readings of every sensor, in time slots no other
/// batch uses. Batches of concurrent writers land next to each other in the same series.
fn push_request(batch: u64, first_second: i64) -> pb::PushReadingsRequest {
    let mut readings = Vec::with_capacity(SENSORS * PER_SENSOR as usize);
    for sensor in 0..SENSORS {
        for i in 0..PER_SENSOR {
            let slot = batch * PER_SENSOR + i;
            readings.push(pb::Reading {
                sensor_id: sensor_id(sensor),
                time: Some(prost_types::Timestamp {
                    seconds: first_second + slot as i64,
                    nanos: 0,
                }),
                celsius: centi_celsius(sensor, slot) as f64 / 100.0,
                humidity_percent: Some(60.0),
                door_open: Some(false),
            });
        }
    }
    pb::PushReadingsRequest {
        request_id: format!("tp-push-{batch}"),
        readings,
    }
}

/// The readings of `requests`, as the server should store them.
fn readings_of<'a>(requests: impl IntoIterator<Item = &'a pb::PushReadingsRequest>) -> Readings {
    let mut out = Readings::new();
    for request in requests {
        for reading in &request.readings {
            let key = (
                reading.sensor_id.clone(),
                reading.time.as_ref().expect("a time").seconds,
            );
            let centi = (reading.celsius * 100.0).round() as i64;
            assert!(
                out.insert(key.clone(), centi).is_none(),
                "the test sent {key:?} twice: it must not"
            );
        }
    }
    out
}

/// The summary of a call that stored all `readings` of its request.
fn all_accepted(readings: usize) -> pb::IngestSummary {
    pb::IngestSummary {
        accepted: readings as i64,
        ..Default::default()
    }
}

/// What one writer saw.
#[derive(Default)]
struct Outcomes {
    /// Acknowledged: the request and the summary answered.
    acked: Vec<(pb::PushReadingsRequest, pb::IngestSummary)>,
    /// Unknown outcome (the process died under the call, or before it).
    unknown: Vec<pb::PushReadingsRequest>,
}

/// One sensor gateway: pushes batches until told to stop, recording what was acknowledged.
/// Before the kill every call must succeed and store all its readings.
async fn writer(
    mut client: Client,
    next_batch: Arc<AtomicU64>,
    first_second: i64,
    stop: Arc<AtomicBool>,
    killed: Arc<AtomicBool>,
) -> Outcomes {
    let mut outcomes = Outcomes::default();
    while !stop.load(Ordering::SeqCst) {
        let batch = next_batch.fetch_add(1, Ordering::SeqCst);
        assert!(
            batch < MAX_BATCHES,
            "the load outran MAX_BATCHES before the kill: raise it (and FIRST_READING_AGE)"
        );
        let request = push_request(batch, first_second);
        match client.push_readings(request.clone()).await {
            Ok(response) => {
                let summary = response.into_inner();
                assert_eq!(
                    summary,
                    all_accepted(request.readings.len()),
                    "{}: every reading is new and valid",
                    request.request_id
                );
                outcomes.acked.push((request, summary));
            }
            Err(status) => {
                assert!(
                    killed.load(Ordering::SeqCst),
                    "{}: unexpected {status:?} before the kill",
                    request.request_id
                );
                outcomes.unknown.push(request);
                // The server is gone: back off a little instead of spinning.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    outcomes
}

/// Registers the sensors (the offline period at its longest: the readings are old, and
/// an offline alarm is no part of this test) and answers each request with its sensor.
async fn register_sensors(client: &mut Client) -> Vec<(pb::RegisterSensorRequest, pb::Sensor)> {
    let mut registered = Vec::new();
    for sensor in 0..SENSORS {
        let request = pb::RegisterSensorRequest {
            request_id: format!("tp-register-{sensor}"),
            sensor_id: sensor_id(sensor),
            binding: Some(pb::register_sensor_request::Binding::ZoneId(ZONE.into())),
            profile: Some(pb::SensorProfile {
                offline_after: Some(prost_types::Duration {
                    seconds: 7 * 24 * 3600,
                    nanos: 0,
                }),
                ..Default::default()
            }),
            description: format!("crash test sensor {sensor}"),
            actor: Default::default(),
        };
        let response = client
            .register_sensor(request.clone())
            .await
            .expect("register sensor")
            .into_inner();
        registered.push((request, response));
    }
    registered
}

/// Every stored reading of the sensors between `first_second` and `first_second + slots`,
/// read back through QueryReadings with 1-second buckets: the readings are whole seconds
/// apart, so each bucket is one reading, and its min and max are that reading's value.
async fn stored_readings(client: &mut Client, first_second: i64, slots: u64) -> Readings {
    let end_second = first_second + slots as i64;
    let mut out = Readings::new();
    for sensor in 0..SENSORS {
        let id = sensor_id(sensor);
        let mut start = first_second;
        while start < end_second {
            let end = (start + QUERY_SPAN_SECONDS).min(end_second);
            let response = client
                .query_readings(pb::QueryReadingsRequest {
                    sensor_id: id.clone(),
                    start_time: Some(prost_types::Timestamp {
                        seconds: start,
                        nanos: 0,
                    }),
                    end_time: Some(prost_types::Timestamp {
                        seconds: end,
                        nanos: 0,
                    }),
                    bucket: Some(prost_types::Duration {
                        seconds: 1,
                        nanos: 0,
                    }),
                })
                .await
                .unwrap_or_else(|status| panic!("query readings of {id}: {status:?}"))
                .into_inner();
            assert!(
                response.unreadable_ranges.is_empty(),
                "{id}: stored data that cannot be decoded: {:?}",
                response.unreadable_ranges
            );
            for bucket in response.buckets {
                let at = bucket.start_time.as_ref().expect("bucket start").seconds;
                assert_eq!(
                    bucket.count, 1,
                    "{id} at {at}: one reading per second was sent, {} are stored",
                    bucket.count
                );
                assert_eq!(bucket.min_celsius, bucket.max_celsius, "{id} at {at}");
                let centi = (bucket.min_celsius * 100.0).round() as i64;
                out.insert((id.clone(), at), centi);
            }
            start = end;
        }
    }
    out
}

/// Sends `requests` `VERIFY_CONCURRENCY` at a time and answers each with its result, in
/// order: the group commit then flushes the calls in flight together.
async fn push_all(
    client: &Client,
    requests: Vec<pb::PushReadingsRequest>,
) -> Vec<(pb::PushReadingsRequest, pb::IngestSummary)> {
    let calls = futures::stream::iter(requests)
        .map(|request| {
            let mut client = client.clone();
            async move {
                match client.push_readings(request.clone()).await {
                    Ok(response) => Ok((request, response.into_inner())),
                    Err(status) => Err(format!("{}: {status:?}", request.request_id)),
                }
            }
        })
        .buffered(VERIFY_CONCURRENCY)
        .try_collect::<Vec<_>>();
    tokio::time::timeout(PHASE_TIMEOUT, calls)
        .await
        .expect("pushes in time")
        .unwrap_or_else(|problem| panic!("push after the restart failed: {problem}"))
}

/// Replays every request with its own request_id and checks the first answer comes back.
async fn assert_replays(client: &Client, acked: &[(pb::PushReadingsRequest, pb::IngestSummary)]) {
    let requests = acked.iter().map(|(request, _)| request.clone()).collect();
    for ((request, first), (_, replay)) in acked.iter().zip(push_all(client, requests).await) {
        assert_eq!(
            &replay, first,
            "{}: a replay answers what the first call answered",
            request.request_id
        );
    }
}

/// The readings of `expected` that `stored` lacks or holds with another value, and the
/// readings `stored` holds beyond `expected`.
fn compare(expected: &Readings, stored: &Readings) -> (Readings, Readings) {
    let unlike = |a: &Readings, b: &Readings| -> Readings {
        a.iter()
            .filter(|(key, centi)| b.get(*key) != Some(*centi))
            .map(|(key, centi)| (key.clone(), *centi))
            .collect()
    };
    let missing = unlike(expected, stored);
    let extra = unlike(stored, expected)
        .into_iter()
        .filter(|(key, _)| !expected.contains_key(key))
        .collect();
    (missing, extra)
}

/// Fails unless `stored` is exactly `expected`, naming what differs.
fn assert_exactly(stored: &Readings, expected: &Readings, when: &str) {
    let (missing, extra) = compare(expected, stored);
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{when}: {} of {} expected readings missing or different (e.g. (sensor, unix second) \
         {:?}), {} stored readings never sent (e.g. {:?})",
        missing.len(),
        expected.len(),
        some_keys(&missing),
        extra.len(),
        some_keys(&extra)
    );
}

/// The first few keys of `readings`, for a message.
fn some_keys(readings: &Readings) -> Vec<&(String, i64)> {
    readings.keys().take(5).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_reading_survives_sigkill() {
    let test_started = std::time::Instant::now();
    let net = common::TestNetwork::new();
    let server =
        common::Server::start_with_env(&net, "telemetry", Some(SITE), &common::NO_RATE_LIMIT);
    let operations = TelemetryServiceClient::new(server.channel_as(common::OPERATIONS));
    let sensor_gateway = TelemetryServiceClient::new(server.channel_as(&common::sensors(SITE)));

    let registered = register_sensors(&mut operations.clone()).await;

    // Whole seconds, so each reading starts its own 1-second bucket.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    let first_second = (now - FIRST_READING_AGE).as_secs() as i64;

    let next_batch = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|_| {
            tokio::spawn(writer(
                sensor_gateway.clone(),
                next_batch.clone(),
                first_second,
                stop.clone(),
                killed.clone(),
            ))
        })
        .collect();

    // Kill in the middle of the load: no shutdown hook runs, nothing is flushed beyond
    // what was acknowledged. The writers go on a little, so calls fail under the kill.
    tokio::time::sleep(LOAD).await;
    killed.store(true, Ordering::SeqCst);
    tokio::task::spawn_blocking(move || server.kill())
        .await
        .expect("kill");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let mut acked = Vec::new();
    let mut unknown = Vec::new();
    for task in tasks {
        let outcomes = tokio::time::timeout(PHASE_TIMEOUT, task)
            .await
            .expect("writer stops in time")
            .expect("writer task");
        acked.extend(outcomes.acked);
        unknown.extend(outcomes.unknown);
    }
    // Every batch ever built was acknowledged or is unknown; these slots hold them all.
    let slots = next_batch.load(Ordering::SeqCst) * PER_SENSOR;
    let acked_readings = readings_of(acked.iter().map(|(request, _)| request));
    let sent = readings_of(acked.iter().map(|(request, _)| request).chain(&unknown));
    eprintln!(
        "at the kill: {} batches ({} readings) acknowledged, {} batches unknown",
        acked.len(),
        acked_readings.len(),
        unknown.len()
    );
    assert!(
        acked.len() > WRITERS * 5,
        "the load ran: only {} batches acknowledged",
        acked.len()
    );
    assert!(!unknown.is_empty(), "the kill happened mid-load");

    // Restart on the same data directory.
    let server =
        common::Server::start_with_env(&net, "telemetry", Some(SITE), &common::NO_RATE_LIMIT);
    let mut operations = TelemetryServiceClient::new(server.channel_as(common::OPERATIONS));
    let sensor_gateway = TelemetryServiceClient::new(server.channel_as(&common::sensors(SITE)));

    // The registrations were acknowledged too: each replays its first answer.
    for (request, first) in &registered {
        let replay = operations
            .register_sensor(request.clone())
            .await
            .unwrap_or_else(|status| panic!("replay {}: {status:?}", request.request_id))
            .into_inner();
        assert_eq!(
            &replay, first,
            "{}: registration survives",
            request.sensor_id
        );
    }

    // Every acknowledged reading is stored, with its value.
    let stored = stored_readings(&mut operations, first_second, slots).await;
    let (lost, _) = compare(&acked_readings, &stored);
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged readings are missing or different after SIGKILL and restart, \
         e.g. (sensor, unix second) {:?}",
        lost.len(),
        acked_readings.len(),
        some_keys(&lost)
    );
    // Nothing else is: every stored reading was sent, acknowledged or under the kill.
    let (_, invented) = compare(&sent, &stored);
    assert!(
        invented.is_empty(),
        "{} stored readings were never sent, e.g. {:?}",
        invented.len(),
        some_keys(&invented)
    );
    // A batch whose outcome is unknown landed whole or not at all.
    let mut landed = 0;
    for request in &unknown {
        let mine = readings_of([request]);
        let present = mine.keys().filter(|key| stored.contains_key(*key)).count();
        assert!(
            present == 0 || present == mine.len(),
            "{}: {present} of its {} readings are stored, a batch lands whole or not at all",
            request.request_id,
            mine.len()
        );
        landed += usize::from(present > 0);
    }
    eprintln!(
        "after the restart: {} readings stored; {landed} of the {} unknown batches had landed",
        stored.len(),
        unknown.len()
    );

    // Re-sent under new request_ids, every acknowledged reading is already stored: all
    // duplicates, none stored again.
    let acked_list: Vec<pb::Reading> = acked
        .iter()
        .flat_map(|(request, _)| request.readings.iter().cloned())
        .collect();
    let resends: Vec<pb::PushReadingsRequest> = acked_list
        .chunks(MAX_BATCH_READINGS)
        .enumerate()
        .map(|(i, readings)| pb::PushReadingsRequest {
            request_id: format!("tp-resend-{i}"),
            readings: readings.to_vec(),
        })
        .collect();
    for (request, summary) in push_all(&sensor_gateway, resends).await {
        let resent = request.readings.len() as i64;
        assert_eq!(
            (summary.accepted, summary.rejected),
            (0, 0),
            "{}: {} of {resent} acknowledged readings were not stored before the re-send",
            request.request_id,
            summary.accepted
        );
        assert_eq!(summary.duplicates, resent, "{}", request.request_id);
    }

    // Retrying an acknowledged request replays its answer. After the re-send above: a
    // request whose readings were lost would be applied again here and answer the same,
    // so only the re-send proves the readings were there.
    assert_replays(&sensor_gateway, &acked).await;

    // Requests whose outcome is unknown are retried with the same request_id: each lands
    // exactly once, whole (replayed if it had landed, stored now otherwise).
    for (request, summary) in push_all(&sensor_gateway, unknown.clone()).await {
        assert_eq!(
            summary,
            all_accepted(request.readings.len()),
            "{}: a retried batch lands once, whole",
            request.request_id
        );
        acked.push((request, summary));
    }

    // Now every batch sent is acknowledged: the store holds exactly their readings.
    let stored = stored_readings(&mut operations, first_second, slots).await;
    assert_exactly(&stored, &sent, "after the retries");

    // A second SIGKILL, with nothing in flight, and a restart change nothing.
    tokio::task::spawn_blocking(move || server.kill())
        .await
        .expect("kill");
    let server =
        common::Server::start_with_env(&net, "telemetry", Some(SITE), &common::NO_RATE_LIMIT);
    let mut operations = TelemetryServiceClient::new(server.channel_as(common::OPERATIONS));
    let sensor_gateway = TelemetryServiceClient::new(server.channel_as(&common::sensors(SITE)));
    let again = stored_readings(&mut operations, first_second, slots).await;
    assert_exactly(&again, &sent, "after a second SIGKILL and restart");
    assert_replays(&sensor_gateway, &acked).await;

    // The premise of the test: no alarm was raised, so no hold was wanted from the absent
    // inventory service.
    let alarms = operations
        .list_alarms(pb::ListAlarmsRequest::default())
        .await
        .expect("list alarms")
        .into_inner()
        .alarms;
    assert!(alarms.is_empty(), "no alarm expected: {alarms:?}");

    eprintln!(
        "{} batches, {} readings verified in {:?}",
        acked.len(),
        sent.len(),
        test_started.elapsed()
    );
}
