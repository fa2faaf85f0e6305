//! The telemetry service through its generated client: real tonic servers on 127.0.0.1:0
//! over temporary data directories, with a manual clock.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::time::Duration;

use coldchain_proto::common::v1::TemperatureClass;
use coldchain_proto::telemetry::v1 as pb;
use coldchain_store::{Clock, ManualClock};
use common::*;
use futures::StreamExt;
use tonic::Code;

async fn server(dir: &std::path::Path, clock: &std::sync::Arc<ManualClock>) -> Server {
    let inventory = format!("http://127.0.0.1:{}", free_port());
    Server::start(
        dir,
        clock.clone(),
        network_with_inventory(&inventory),
        fast_options(),
    )
    .await
}

fn profile(min: Option<f64>, max: Option<f64>, min_excursion_minutes: i64) -> pb::SensorProfile {
    pb::SensorProfile {
        min_celsius: min,
        max_celsius: max,
        min_excursion_duration: Some(minutes(min_excursion_minutes)),
        offline_after: None,
        hysteresis_celsius: None,
    }
}

#[tokio::test]
async fn register_sensor_defaults_validation_and_idempotency() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let server = server(dir.path(), &clock).await;
    let mut client = server.client.clone();

    // Zone defaults come from deploy/network.toml (chilled-a: 0..4 °C).
    let sensor = client
        .register_sensor(zone_sensor("r-1", "s-chilled", "chilled-a", None))
        .await
        .unwrap()
        .into_inner();
    let p = sensor.profile.unwrap();
    assert_eq!((p.min_celsius, p.max_celsius), (Some(0.0), Some(4.0)));
    assert_eq!(p.min_excursion_duration, Some(minutes(5)));
    assert_eq!(p.offline_after, Some(minutes(15)));
    assert_eq!(p.hysteresis_celsius, Some(0.5));
    assert_eq!(sensor.site_id, SITE);
    assert_eq!(sensor.status, pb::SensorStatus::NoData as i32);
    assert_eq!(sensor.registered_at, Some(ts(T0)));

    // A reefer takes its class's limits; FROZEN has no lower limit.
    let reefer = client
        .register_sensor(pb::RegisterSensorRequest {
            request_id: "r-2".into(),
            sensor_id: "s-reefer".into(),
            binding: Some(pb::register_sensor_request::Binding::Reefer(
                pb::ReeferBinding {
                    container_id: "MSCU1234567".into(),
                    train_or_route: "China-Laos express X8011".into(),
                    transfer_id: String::new(),
                    temperature_class: TemperatureClass::Frozen as i32,
                },
            )),
            profile: None,
            description: String::new(),
            actor: Default::default(),
        })
        .await
        .unwrap()
        .into_inner();
    let p = reefer.profile.unwrap();
    assert_eq!((p.min_celsius, p.max_celsius), (None, Some(-18.0)));

    // Replaying the same request answers the same; the same id with another request is
    // INVALID_ARGUMENT naming request_id.
    clock.advance(Duration::from_secs(60));
    let again = client
        .register_sensor(zone_sensor("r-1", "s-chilled", "chilled-a", None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, sensor);
    let reused = client
        .register_sensor(zone_sensor("r-1", "s-other", "chilled-a", None))
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&reused), ["request_id"]);

    // Re-registration keeps registered_at and takes the new profile.
    let moved = client
        .register_sensor(zone_sensor(
            "r-3",
            "s-chilled",
            "pharma-a",
            Some(profile(None, Some(7.5), 10)),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.registered_at, Some(ts(T0)));
    assert_eq!(moved.updated_at, Some(ts(T0 + 60_000)));
    let p = moved.profile.unwrap();
    assert_eq!((p.min_celsius, p.max_celsius), (Some(2.0), Some(7.5)));

    // Unknown zone: NOT_FOUND.
    let unknown = client
        .register_sensor(zone_sensor("r-4", "s-x", "no-such-zone", None))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(
        unknown.message().contains("no-such-zone"),
        "{}",
        unknown.message()
    );

    // Every bad field at once.
    let bad = client
        .register_sensor(pb::RegisterSensorRequest {
            request_id: String::new(),
            sensor_id: " padded".into(),
            binding: None,
            profile: Some(pb::SensorProfile {
                min_celsius: None,
                max_celsius: None,
                min_excursion_duration: Some(prost_types::Duration {
                    seconds: 1,
                    nanos: -5,
                }),
                offline_after: None,
                hysteresis_celsius: None,
            }),
            description: "x".repeat(300),
            actor: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let fields = bad_fields(&bad);
    for field in [
        "request_id",
        "sensor_id",
        "description",
        "binding",
        "profile.min_excursion_duration",
    ] {
        assert!(
            fields.contains(&field.to_string()),
            "{field} missing from {fields:?}"
        );
    }
    let limits = client
        .register_sensor(zone_sensor(
            "r-5",
            "s-y",
            "chilled-a",
            Some(pb::SensorProfile {
                min_celsius: Some(5.0),
                max_celsius: None,
                min_excursion_duration: Some(minutes(25 * 60)),
                offline_after: Some(prost_types::Duration {
                    seconds: 30,
                    nanos: 0,
                }),
                hysteresis_celsius: Some(9.0),
            }),
        ))
        .await
        .unwrap_err();
    assert_eq!(limits.code(), Code::InvalidArgument);
    assert_eq!(
        bad_fields(&limits),
        [
            "profile.min_celsius",
            "profile.min_excursion_duration",
            "profile.offline_after",
            "profile.hysteresis_celsius"
        ]
    );
    let no_class = client
        .register_sensor(pb::RegisterSensorRequest {
            request_id: "r-6".into(),
            sensor_id: "s-z".into(),
            binding: Some(pb::register_sensor_request::Binding::Reefer(
                pb::ReeferBinding {
                    container_id: "C1".into(),
                    ..Default::default()
                },
            )),
            profile: None,
            description: String::new(),
            actor: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&no_class), ["reefer.temperature_class"]);
    server.stop().await;
}

#[tokio::test]
async fn push_readings_counts_accepted_duplicates_and_rejections() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let server = server(dir.path(), &clock).await;
    let mut client = server.client.clone();
    client
        .register_sensor(zone_sensor("reg", "s1", "chilled-a", None))
        .await
        .unwrap();

    let mut readings = vec![
        reading("s1", T0 - 3 * MINUTE, 2.0),
        reading("s1", T0 - 2 * MINUTE, 2.5),
        reading("s1", T0 - 2 * MINUTE, 9.0), // same time: duplicate, first wins
        reading("nobody", T0, 1.0),
        reading("", T0, 1.0),
        reading("s1", T0 + 6 * MINUTE, 1.0),
        reading("s1", T0 - 8 * 24 * 60 * MINUTE, 1.0),
        reading("s1", T0 - MINUTE, f64::NAN),
        reading("s1", T0 - MINUTE, 120.0),
        pb::Reading {
            humidity_percent: Some(101.0),
            ..reading("s1", T0 - MINUTE, 3.0)
        },
        pb::Reading {
            time: None,
            ..reading("s1", 0, 3.0)
        },
        pb::Reading {
            humidity_percent: Some(55.5),
            door_open: Some(true),
            ..reading("s1", T0 - MINUTE, 3.25)
        },
    ];
    let summary = push(&mut client, "p-1", readings.clone()).await;
    assert_eq!(
        (summary.accepted, summary.duplicates, summary.rejected),
        (3, 1, 8)
    );
    let reasons: Vec<(i64, i32)> = summary
        .rejections
        .iter()
        .map(|r| (r.index, r.reason))
        .collect();
    use pb::RejectionReason as R;
    assert_eq!(
        reasons,
        [
            (3, R::UnknownSensor as i32),
            (4, R::UnknownSensor as i32),
            (5, R::InFuture as i32),
            (6, R::TooOld as i32),
            (7, R::NotFinite as i32),
            (8, R::CelsiusOutOfRange as i32),
            (9, R::HumidityOutOfRange as i32),
            (10, R::MissingTime as i32),
        ]
    );
    assert!(summary.rejections.iter().all(|r| r.batch_index == 0));
    assert_eq!(summary.rejections[0].sensor_id, "nobody");
    assert!(
        summary.rejections[5].message.contains("celsius"),
        "{:?}",
        summary.rejections[5]
    );

    // The same request again: the stored answer, nothing stored twice.
    let replay = push(&mut client, "p-1", readings.clone()).await;
    assert_eq!(replay, summary);
    // Another request with the same readings: all duplicates now.
    let repeat = push(&mut client, "p-2", readings[..3].to_vec()).await;
    assert_eq!(
        (repeat.accepted, repeat.duplicates, repeat.rejected),
        (0, 3, 0)
    );
    // The same id, another request.
    readings.pop();
    let reused = client
        .push_readings(pb::PushReadingsRequest {
            request_id: "p-1".into(),
            readings,
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&reused), ["request_id"]);

    // 1 to 10,000 readings.
    let empty = client
        .push_readings(pb::PushReadingsRequest {
            request_id: "p-3".into(),
            readings: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&empty), ["readings"]);
    let too_many = client
        .push_readings(pb::PushReadingsRequest {
            request_id: "p-4".into(),
            readings: (0..10_001)
                .map(|i| reading("s1", T0 - i * 1_000, 1.0))
                .collect(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&too_many), ["readings"]);

    // The sensor shows its latest reading (humidity and door included).
    let sensors = client
        .list_sensors(pb::ListSensorsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .sensors;
    let last = sensors[0].last_reading.clone().unwrap();
    assert_eq!(last.time, Some(ts(T0 - MINUTE)));
    assert_eq!(last.celsius, 3.25);
    assert_eq!(last.humidity_percent, Some(55.5));
    assert_eq!(last.door_open, Some(true));
    assert_eq!(sensors[0].status, pb::SensorStatus::Ok as i32);
    server.stop().await;
}

#[tokio::test]
async fn stream_readings_counts_across_batches() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let server = server(dir.path(), &clock).await;
    let mut client = server.client.clone();
    client
        .register_sensor(zone_sensor("reg", "s1", "chilled-a", None))
        .await
        .unwrap();
    let batches = vec![
        pb::ReadingBatch {
            readings: (0..100)
                .map(|i| reading("s1", T0 - 3_600_000 + i * 1_000, 2.0))
                .collect(),
        },
        pb::ReadingBatch { readings: vec![] },
        pb::ReadingBatch {
            readings: vec![
                reading("s1", T0 - 3_600_000, 2.0), // already stored in batch 0
                reading("ghost", T0, 2.0),
                reading("s1", T0 - 60_000, 2.0),
            ],
        },
    ];
    let summary = client
        .stream_readings(futures::stream::iter(batches.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (summary.accepted, summary.duplicates, summary.rejected),
        (101, 1, 1)
    );
    assert_eq!(summary.rejections[0].batch_index, 2);
    assert_eq!(summary.rejections[0].index, 1);

    // Re-sending the whole stream after a "broken" one: all duplicates.
    let again = client
        .stream_readings(futures::stream::iter(batches))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (again.accepted, again.duplicates, again.rejected),
        (0, 102, 1)
    );

    // An oversized batch ends the stream with INVALID_ARGUMENT (earlier batches stay).
    let oversized = vec![
        pb::ReadingBatch {
            readings: vec![reading("s1", T0 - 30_000, 2.0)],
        },
        pb::ReadingBatch {
            readings: (0..10_001)
                .map(|i| reading("s1", T0 - 7_200_000 + i, 2.0))
                .collect(),
        },
    ];
    let error = client
        .stream_readings(futures::stream::iter(oversized))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&error), ["readings"]);
    server.stop().await;
}

#[tokio::test]
async fn query_readings_buckets_from_summaries_and_reports_corrupt_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let server = server(dir.path(), &clock).await;
    let mut client = server.client.clone();
    client
        .register_sensor(zone_sensor("reg", "s1", "chilled-a", None))
        .await
        .unwrap();
    // Two full hours at 1 Hz, 2.00 °C in the first hour and 3.00 °C in the second, with one
    // reading of 3.50 in the second.
    let start = T0 - 2 * 3_600_000;
    for chunk in 0..(7_200 / 3_600) {
        let readings: Vec<pb::Reading> = (0..3_600)
            .map(|i| {
                let t = start + (chunk * 3_600 + i) * 1_000;
                let c = if chunk == 0 {
                    2.0
                } else if i == 10 {
                    3.5
                } else {
                    3.0
                };
                reading("s1", t, c)
            })
            .collect();
        for (n, part) in readings.chunks(2_000).enumerate() {
            let s = push(&mut client, &format!("q-{chunk}-{n}"), part.to_vec()).await;
            assert_eq!(s.accepted as usize, part.len());
        }
    }
    let query = |bucket_s: i64, from: i64, to: i64| pb::QueryReadingsRequest {
        sensor_id: "s1".into(),
        start_time: Some(ts(from)),
        end_time: Some(ts(to)),
        bucket: Some(prost_types::Duration {
            seconds: bucket_s,
            nanos: 0,
        }),
    };
    let hourly = client
        .query_readings(query(3_600, start, T0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hourly.buckets.len(), 2);
    assert_eq!(hourly.buckets[0].start_time, Some(ts(start)));
    assert_eq!(hourly.buckets[0].count, 3_600);
    assert_eq!(
        (hourly.buckets[0].min_celsius, hourly.buckets[0].max_celsius),
        (2.0, 2.0)
    );
    assert_eq!(hourly.buckets[1].count, 3_600);
    assert_eq!(hourly.buckets[1].max_celsius, 3.5);
    assert!((hourly.buckets[1].mean_celsius - (3.0 + 0.5 / 3_600.0)).abs() < 1e-9);
    assert!(hourly.unreadable_ranges.is_empty());
    // Hour buckets over hour chunks: answered from the two summaries alone.
    let direct = server
        .telemetry
        .store()
        .query_readings("s1", start, T0, 3_600_000)
        .unwrap();
    assert_eq!((direct.summaries_used, direct.windows_decoded), (2, 0));

    // 10-minute buckets, cut by the range: the first starts at its aligned start.
    let cut = client
        .query_readings(query(600, start + 300_000, start + 1_500_000))
        .await
        .unwrap()
        .into_inner();
    let counts: Vec<i64> = cut.buckets.iter().map(|b| b.count).collect();
    assert_eq!(counts, [300, 600, 300]);
    assert_eq!(cut.buckets[0].start_time, Some(ts(start)));

    // Validation and NOT_FOUND.
    let mut bad = query(0, T0, T0 - 1);
    bad.sensor_id = String::new();
    let error = client.query_readings(bad).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&error), ["sensor_id", "bucket", "end_time"]);
    let too_many = client
        .query_readings(query(1, T0 - 30 * 3_600_000, T0))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&too_many), ["bucket"]);
    let mut unknown = query(60, start, T0);
    unknown.sensor_id = "nobody".into();
    assert_eq!(
        client.query_readings(unknown).await.unwrap_err().code(),
        Code::NotFound
    );

    // A chunk that fails to decode: its range is reported, the rest still answers.
    server
        .telemetry
        .store()
        .corrupt_part_for_tests("s1", start + 3_600_000, 1, vec![1, 0, 200, 7])
        .await
        .unwrap();
    let damaged = client
        .query_readings(query(600, start, T0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(damaged.unreadable_ranges.len(), 1);
    assert_eq!(
        damaged.unreadable_ranges[0].start_time,
        Some(ts(start + 3_600_000))
    );
    assert_eq!(damaged.unreadable_ranges[0].end_time, Some(ts(T0)));
    assert!(damaged.unreadable_ranges[0].message.contains("corrupt"));
    let total: i64 = damaged.buckets.iter().map(|b| b.count).sum();
    assert_eq!(
        total,
        7_200 - coldchain_telemetry::domain::codec::PART_MAX as i64
    );
    // MKT over damaged data is DATA_LOSS.
    let mkt = client
        .get_mean_kinetic_temperature(pb::GetMeanKineticTemperatureRequest {
            sensor_id: "s1".into(),
            start_time: Some(ts(start)),
            end_time: Some(ts(T0)),
            activation_energy_kj_per_mol: None,
        })
        .await
        .unwrap_err();
    assert_eq!(mkt.code(), Code::DataLoss);
    server.stop().await;
}

#[tokio::test]
async fn mean_kinetic_temperature_is_time_weighted() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let server = server(dir.path(), &clock).await;
    let mut client = server.client.clone();
    client
        .register_sensor(zone_sensor(
            "reg",
            "s1",
            "pharma-a",
            Some(pb::SensorProfile {
                offline_after: Some(minutes(2 * 60)),
                ..Default::default()
            }),
        ))
        .await
        .unwrap();
    // Hourly: 23 h at 5 °C, then 1 h at 25 °C.
    let start = T0 - 24 * 3_600_000;
    let readings = (0..24)
        .map(|h| {
            reading(
                "s1",
                start + h * 3_600_000,
                if h == 23 { 25.0 } else { 5.0 },
            )
        })
        .collect();
    push(&mut client, "p", readings).await;
    let request = |energy| pb::GetMeanKineticTemperatureRequest {
        sensor_id: "s1".into(),
        start_time: Some(ts(start)),
        end_time: Some(ts(T0)),
        activation_energy_kj_per_mol: energy,
    };
    let mkt = client
        .get_mean_kinetic_temperature(request(None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((mkt.mkt_celsius * 1_000.0).round() / 1_000.0, 7.756);
    assert_eq!(mkt.reading_count, 24);
    assert_eq!(
        mkt.span,
        Some(prost_types::Duration {
            seconds: 24 * 3_600,
            nanos: 0
        })
    );
    assert_eq!(mkt.activation_energy_kj_per_mol, 83.144);
    assert_eq!(mkt.first_reading_time, Some(ts(start)));
    assert_eq!(mkt.last_reading_time, Some(ts(start + 23 * 3_600_000)));

    let bad = client
        .get_mean_kinetic_temperature(request(Some(-1.0)))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&bad), ["activation_energy_kj_per_mol"]);
    let empty = client
        .get_mean_kinetic_temperature(pb::GetMeanKineticTemperatureRequest {
            start_time: Some(ts(T0 - 30 * 24 * 3_600_000)),
            end_time: Some(ts(start)),
            ..request(None)
        })
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::FailedPrecondition);
    let unknown = client
        .get_mean_kinetic_temperature(pb::GetMeanKineticTemperatureRequest {
            sensor_id: "nobody".into(),
            ..request(None)
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    server.stop().await;
}

#[tokio::test]
async fn excursion_alarm_lifecycle_ack_list_and_watch() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let server = server(dir.path(), &clock).await;
    let mut client = server.client.clone();
    client
        .register_sensor(zone_sensor("reg-1", "s1", "chilled-a", None))
        .await
        .unwrap();
    client
        .register_sensor(zone_sensor("reg-2", "s2", "frozen-a", None))
        .await
        .unwrap();

    // 3 °C, then above 4 °C for 6 minutes (peak 6.5): a HIGH excursion.
    let base = T0 - 20 * MINUTE;
    let mut readings = vec![reading("s1", base, 3.0)];
    for m in 1..=7 {
        readings.push(reading(
            "s1",
            base + m * MINUTE,
            if m == 4 { 6.5 } else { 5.0 },
        ));
    }
    push(&mut client, "p-1", readings).await;
    let list = alarms(&mut client, "s1").await;
    assert_eq!(list.len(), 1);
    let alarm = &list[0];
    assert_eq!(alarm.kind, pb::AlarmKind::ExcursionHigh as i32);
    assert_eq!(alarm.state, pb::AlarmState::ActiveUnack as i32);
    assert_eq!(alarm.zone_id, "chilled-a");
    assert_eq!(alarm.site_id, SITE);
    assert_eq!(alarm.started_at, Some(ts(base + MINUTE)));
    assert_eq!(alarm.last_seen_at, Some(ts(base + 7 * MINUTE)));
    assert_eq!(alarm.limit_celsius, 4.0);
    assert_eq!(alarm.peak_celsius, 6.5);
    assert_eq!(alarm.peak_deviation_celsius, 2.5);
    assert_eq!(alarm.duration, Some(minutes(6)));
    // Trapezoids of the deviation (1, 1, 1, 2.5, 1, 1, 1) over 1-minute steps.
    assert!(
        (alarm.degree_minutes - 7.5).abs() < 1e-9,
        "{}",
        alarm.degree_minutes
    );
    assert_eq!(alarm.hold_status, pb::HoldStatus::Pending as i32);
    let sensors = client
        .list_sensors(pb::ListSensorsRequest {
            statuses: vec![pb::SensorStatus::Excursion as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .sensors;
    assert_eq!(sensors.len(), 1);
    assert_eq!(sensors[0].sensor_id, "s1");

    // Acknowledge: ACTIVE_ACK; again: FAILED_PRECONDITION naming the state.
    let id = alarm.alarm_id.clone();
    let acked = client
        .acknowledge_alarm(pb::AcknowledgeAlarmRequest {
            request_id: "a-1".into(),
            alarm_id: id.clone(),
            acknowledged_by: "qa-li".into(),
            note: "moving pallets".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acked.state, pb::AlarmState::ActiveAck as i32);
    assert_eq!(acked.acknowledged_by, "qa-li");
    // The same request again answers the same (not "already acknowledged").
    let replayed = client
        .acknowledge_alarm(pb::AcknowledgeAlarmRequest {
            request_id: "a-1".into(),
            alarm_id: id.clone(),
            acknowledged_by: "qa-li".into(),
            note: "moving pallets".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replayed, acked);
    assert_eq!(acked.ack_note, "moving pallets");
    let twice = client
        .acknowledge_alarm(pb::AcknowledgeAlarmRequest {
            request_id: "a-2".into(),
            alarm_id: id.clone(),
            acknowledged_by: "qa-li".into(),
            note: "again".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition);
    assert!(
        twice.message().contains("ACTIVE_ACK"),
        "{}",
        twice.message()
    );
    let unknown = client
        .acknowledge_alarm(pb::AcknowledgeAlarmRequest {
            request_id: "a-3".into(),
            alarm_id: "alm-99999999".into(),
            acknowledged_by: "qa".into(),
            note: "checked".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let invalid = client
        .acknowledge_alarm(pb::AcknowledgeAlarmRequest {
            request_id: "a-4".into(),
            alarm_id: id.clone(),
            acknowledged_by: String::new(),
            note: "x".repeat(1_025),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&invalid), ["acknowledged_by", "note"]);

    // Within the hysteresis band (3.8 > 4 - 0.5): still active; 3.4: cleared.
    push(
        &mut client,
        "p-2",
        vec![
            reading("s1", base + 8 * MINUTE, 3.8),
            reading("s1", base + 9 * MINUTE, 3.4),
        ],
    )
    .await;
    let cleared = &alarms(&mut client, "s1").await[0];
    assert_eq!(cleared.state, pb::AlarmState::ClearedAck as i32);
    assert_eq!(cleared.cleared_at, Some(ts(base + 9 * MINUTE)));
    assert_eq!(cleared.duration, Some(minutes(8)));

    // s2 (frozen-a: -25..-18 °C) goes above its limit and stays there.
    push(
        &mut client,
        "p-3",
        (0..=6)
            .map(|m| reading("s2", base + m * MINUTE, -10.0))
            .collect(),
    )
    .await;

    // Filters and pagination: newest started_at first.
    let all = client
        .list_alarms(pb::ListAlarmsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .alarms;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].sensor_id, "s1");
    assert_eq!(all[1].sensor_id, "s2");
    let page = client
        .list_alarms(pb::ListAlarmsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.alarms.len(), 1);
    let next = client
        .list_alarms(pb::ListAlarmsRequest {
            page_size: 1,
            page_token: page.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.alarms[0].alarm_id, all[1].alarm_id);
    assert!(next.next_page_token.is_empty());
    let foreign_token = client
        .list_alarms(pb::ListAlarmsRequest {
            page_size: 1,
            active_only: true,
            page_token: page.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&foreign_token), ["page_token"]);
    let active = client
        .list_alarms(pb::ListAlarmsRequest {
            active_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .alarms;
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].sensor_id, "s2");
    let by_zone = client
        .list_alarms(pb::ListAlarmsRequest {
            zone_id: "frozen-a".into(),
            kinds: vec![pb::AlarmKind::ExcursionHigh as i32],
            states: vec![pb::AlarmState::ActiveUnack as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .alarms;
    assert_eq!(by_zone.len(), 1);
    let bad_filter = client
        .list_alarms(pb::ListAlarmsRequest {
            states: vec![0],
            kinds: vec![42],
            page_size: -1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        bad_fields(&bad_filter),
        ["states[0]", "kinds[0]", "page_size"]
    );
    let no_zone = client
        .list_alarms(pb::ListAlarmsRequest {
            zone_id: "nowhere".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(no_zone.code(), Code::NotFound);

    // The feed: every change, in order, from 1; and resuming from the middle.
    let mut watch = client
        .watch_alarms(pb::WatchAlarmsRequest { from_sequence: 0 })
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    while events
        .iter()
        .filter(|e: &&pb::AlarmEvent| e.kind != pb::AlarmEventKind::HoldChanged as i32)
        .count()
        < 4
    {
        let message = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .expect("events in time")
            .expect("stream open")
            .expect("no error");
        events.extend(message.events);
    }
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.sequence, i as u64 + 1);
    }
    // (The outbox records the inventory's errors as HOLD_CHANGED events in between.)
    use pb::AlarmEventKind as K;
    let kinds: Vec<(i32, String)> = events
        .iter()
        .filter(|e| e.kind != K::HoldChanged as i32)
        .map(|e| (e.kind, e.alarm.as_ref().unwrap().sensor_id.clone()))
        .collect();
    assert_eq!(
        kinds[..4],
        [
            (K::Raised as i32, "s1".to_string()),
            (K::Acknowledged as i32, "s1".to_string()),
            (K::Cleared as i32, "s1".to_string()),
            (K::Raised as i32, "s2".to_string())
        ]
    );
    let mut resumed = client
        .watch_alarms(pb::WatchAlarmsRequest { from_sequence: 3 })
        .await
        .unwrap()
        .into_inner();
    let first = resumed.next().await.unwrap().unwrap();
    assert_eq!(first.events[0], events[2]);
    // A live event reaches an open stream.
    client
        .acknowledge_alarm(pb::AcknowledgeAlarmRequest {
            request_id: "a-5".into(),
            alarm_id: all[1].alarm_id.clone(),
            acknowledged_by: "ops".into(),
            note: "seen".into(),
        })
        .await
        .unwrap();
    let live = loop {
        let message = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .expect("live event in time")
            .unwrap()
            .unwrap();
        if let Some(event) = message.events.into_iter().find(|e| {
            e.kind == K::Acknowledged as i32 && e.alarm.as_ref().unwrap().sensor_id == "s2"
        }) {
            break event;
        }
    };
    assert!(live.sequence > 4);
    // Shutdown ends open streams with a resumable UNAVAILABLE.
    server.running.shutdown.trigger();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match watch.next().await {
                Some(Ok(_)) => continue,
                Some(Err(status)) => break Some(status),
                None => break None,
            }
        }
    })
    .await
    .expect("stream ends on shutdown");
    if let Some(status) = end {
        assert_eq!(status.code(), Code::Unavailable);
        assert!(
            status.message().contains("resume from_sequence"),
            "{}",
            status.message()
        );
    }
    let _ = server.running.stopped.await;
}

#[tokio::test]
async fn late_and_out_of_order_readings_open_and_split_excursions() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let server = server(dir.path(), &clock).await;
    let mut client = server.client.clone();
    client
        .register_sensor(zone_sensor("reg", "s1", "chilled-a", None))
        .await
        .unwrap();
    let base = T0 - 3 * 3_600_000;
    // Newest first: the out-of-range readings arrive last-to-first, in separate calls.
    for m in (0..=12).rev() {
        push(
            &mut client,
            &format!("p-{m}"),
            vec![reading("s1", base + m * MINUTE, 6.0)],
        )
        .await;
    }
    let list = alarms(&mut client, "s1").await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].started_at, Some(ts(base)));
    assert_eq!(list[0].last_seen_at, Some(ts(base + 12 * MINUTE)));
    // A late in-range reading at minute 6.5 splits it into two excursions.
    push(
        &mut client,
        "late",
        vec![reading("s1", base + 6 * MINUTE + 30_000, 2.0)],
    )
    .await;
    let mut list = alarms(&mut client, "s1").await;
    list.sort_by_key(|a| ms_of(a.started_at.as_ref().unwrap()));
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].cleared_at, Some(ts(base + 6 * MINUTE + 30_000)));
    assert_eq!(list[1].started_at, Some(ts(base + 7 * MINUTE)));
    assert_eq!(list[1].state, pb::AlarmState::ActiveUnack as i32);
    server.stop().await;
}

#[tokio::test]
async fn offline_alarms_follow_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let server = server(dir.path(), &clock).await;
    let mut client = server.client.clone();
    client
        .register_sensor(zone_sensor("reg-1", "s1", "chilled-a", None))
        .await
        .unwrap();
    client
        .register_sensor(zone_sensor(
            "reg-2",
            "quiet",
            "chilled-a",
            Some(pb::SensorProfile {
                offline_after: Some(minutes(60)),
                ..Default::default()
            }),
        ))
        .await
        .unwrap();
    push(&mut client, "p-1", vec![reading("s1", T0, 2.0)]).await;
    let telemetry = &server.telemetry;
    // 15 minutes is not yet longer than the offline period.
    clock.advance(Duration::from_secs(15 * 60));
    assert_eq!(
        telemetry.check_offline(clock.now_millis()).await.unwrap(),
        0
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        telemetry.check_offline(clock.now_millis()).await.unwrap(),
        1
    );
    let list = alarms(&mut client, "s1").await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].kind, pb::AlarmKind::SensorOffline as i32);
    // It starts when the status turned: 15 minutes after the reading arrived.
    assert_eq!(list[0].started_at, Some(ts(T0 + 15 * MINUTE)));
    assert_eq!(list[0].hold_status, pb::HoldStatus::NotRequired as i32);
    let status = |sensors: &[pb::Sensor], id: &str| {
        sensors.iter().find(|s| s.sensor_id == id).unwrap().status
    };
    let sensors = client
        .list_sensors(pb::ListSensorsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .sensors;
    assert_eq!(status(&sensors, "s1"), pb::SensorStatus::Offline as i32);
    assert_eq!(status(&sensors, "quiet"), pb::SensorStatus::NoData as i32);
    // Checking again soon changes nothing: one alarm per silence.
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        telemetry.check_offline(clock.now_millis()).await.unwrap(),
        0
    );
    // The never-reporting sensor goes offline an hour after registration.
    clock.advance(Duration::from_secs(45 * 60));
    assert_eq!(
        telemetry.check_offline(clock.now_millis()).await.unwrap(),
        2
    ); // raised + refreshed
    assert_eq!(
        alarms(&mut client, "quiet").await[0].started_at,
        Some(ts(T0 + 60 * MINUTE))
    );
    let sensors = client
        .list_sensors(pb::ListSensorsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .sensors;
    assert_eq!(status(&sensors, "quiet"), pb::SensorStatus::Offline as i32);
    // A reading clears it when it arrives (the status is OK again from then on).
    let now = clock.now_millis();
    push(&mut client, "p-2", vec![reading("s1", now - 1_000, 2.0)]).await;
    let list = alarms(&mut client, "s1").await;
    assert_eq!(list[0].state, pb::AlarmState::ClearedUnack as i32);
    assert_eq!(list[0].cleared_at, Some(ts(now)));
    let sensors = client
        .list_sensors(pb::ListSensorsRequest {
            statuses: vec![pb::SensorStatus::Ok as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .sensors;
    assert_eq!(sensors.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn list_sensors_paginates_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let server = server(dir.path(), &clock).await;
    let mut client = server.client.clone();
    for i in 0..7 {
        let zone = if i % 2 == 0 { "chilled-a" } else { "pharma-a" };
        client
            .register_sensor(zone_sensor(&format!("r{i}"), &format!("s{i}"), zone, None))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_sensors(pb::ListSensorsRequest {
                zone_id: "chilled-a".into(),
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.sensors.into_iter().map(|s| s.sensor_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ["s0", "s2", "s4", "s6"]);
    let unknown = client
        .list_sensors(pb::ListSensorsRequest {
            zone_id: "nowhere".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let bad = client
        .list_sensors(pb::ListSensorsRequest {
            statuses: vec![0],
            page_token: "zz".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&bad), ["statuses[0]", "page_token"]);
    server.stop().await;
}

#[tokio::test]
async fn concurrent_streams_store_every_reading_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let server = server(dir.path(), &clock).await;
    let mut client = server.client.clone();
    let sensors = 12;
    for s in 0..sensors {
        client
            .register_sensor(zone_sensor(
                &format!("r{s}"),
                &format!("s{s}"),
                "ambient-a",
                None,
            ))
            .await
            .unwrap();
    }
    // 24 tasks, each with its own connection; every sensor is streamed by two tasks that
    // overlap on half of their readings.
    let start = T0 - 3_600_000;
    let mut tasks = Vec::new();
    for t in 0..24 {
        let mut client = server.client().await;
        tasks.push(tokio::spawn(async move {
            let sensor = format!("s{}", t % sensors);
            let offset = if t < sensors { 0 } else { 500 };
            let batches: Vec<pb::ReadingBatch> = (0..10)
                .map(|b| pb::ReadingBatch {
                    readings: (0..100)
                        .map(|i| reading(&sensor, start + (offset + b * 100 + i) * 1_000, 20.0))
                        .collect(),
                })
                .collect();
            client
                .stream_readings(futures::stream::iter(batches))
                .await
                .unwrap()
                .into_inner()
        }));
    }
    let mut accepted = 0;
    let mut duplicates = 0;
    for task in tasks {
        let summary = task.await.unwrap();
        accepted += summary.accepted;
        duplicates += summary.duplicates;
    }
    // Each sensor: 1,500 distinct readings, 500 sent twice.
    assert_eq!(accepted, sensors * 1_500);
    assert_eq!(duplicates, sensors * 500);
    for s in 0..sensors {
        let stored = server
            .telemetry
            .store()
            .query_readings(&format!("s{s}"), start, T0, 3_600_000)
            .unwrap();
        assert_eq!(stored.buckets.iter().map(|b| b.count).sum::<u64>(), 1_500);
    }
    server.stop().await;
}

#[tokio::test]
async fn detection_state_and_readings_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let inventory = format!("http://127.0.0.1:{}", free_port());
    let network = network_with_inventory(&inventory);
    let base = T0 - 30 * MINUTE;
    {
        let server =
            Server::start(dir.path(), clock.clone(), network.clone(), fast_options()).await;
        let mut client = server.client.clone();
        client
            .register_sensor(zone_sensor("reg", "s1", "chilled-a", None))
            .await
            .unwrap();
        // Out of range for 3 minutes: not yet an excursion.
        push(
            &mut client,
            "p-1",
            (0..=3)
                .map(|m| reading("s1", base + m * MINUTE, 5.0))
                .collect(),
        )
        .await;
        assert!(alarms(&mut client, "s1").await.is_empty());
        server.stop().await;
    }
    let server = Server::start(dir.path(), clock.clone(), network, fast_options()).await;
    let mut client = server.client.clone();
    // Three more minutes after the restart: the excursion started before it.
    push(
        &mut client,
        "p-2",
        (4..=6)
            .map(|m| reading("s1", base + m * MINUTE, 5.0))
            .collect(),
    )
    .await;
    let list = alarms(&mut client, "s1").await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].started_at, Some(ts(base)));
    // The request id is remembered across the restart too.
    let replay = push(
        &mut client,
        "p-1",
        (0..=3)
            .map(|m| reading("s1", base + m * MINUTE, 5.0))
            .collect(),
    )
    .await;
    assert_eq!(replay.accepted, 4);
    let stored = server
        .telemetry
        .store()
        .query_readings("s1", base, T0, 3_600_000)
        .unwrap();
    assert_eq!(stored.buckets.iter().map(|b| b.count).sum::<u64>(), 7);
    server.stop().await;
}

#[tokio::test]
async fn a_slow_watcher_is_cut_off_with_a_resumable_error() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let inventory = format!("http://127.0.0.1:{}", free_port());
    // A full queue is tolerated for `watch_stall`: shorter than the wait below, so the
    // consumer is cut off while it does not read.
    let options = coldchain_telemetry::TelemetryOptions {
        watch_buffer: 1,
        watch_stall: Duration::from_millis(200),
        ..fast_options()
    };
    let server = Server::start(
        dir.path(),
        clock.clone(),
        network_with_inventory(&inventory),
        options,
    )
    .await;
    let mut client = server.client.clone();
    // A loose reefer (no hold needed) whose readings flip in and out of range with a zero
    // minimum duration: 2 events (raised, cleared) per pair of readings, all in one write.
    client
        .register_sensor(pb::RegisterSensorRequest {
            request_id: "reg".into(),
            sensor_id: "flappy".into(),
            binding: Some(pb::register_sensor_request::Binding::Reefer(
                pb::ReeferBinding {
                    container_id: "C1".into(),
                    temperature_class: TemperatureClass::Chilled as i32,
                    ..Default::default()
                },
            )),
            profile: Some(pb::SensorProfile {
                min_excursion_duration: Some(minutes(0)),
                ..Default::default()
            }),
            description: String::new(),
            actor: Default::default(),
        })
        .await
        .unwrap();
    let readings = (0..10_000)
        .map(|i| {
            reading(
                "flappy",
                T0 - 3_600_000 + i * 100,
                if i % 2 == 0 { 9.0 } else { 2.0 },
            )
        })
        .collect();
    push(&mut client, "flaps", readings).await;

    // A watcher whose HTTP/2 window is the protocol's smallest, so the transport cannot
    // absorb the whole feed while it does not read.
    let channel = tonic::transport::Endpoint::from_shared(server.running.endpoint())
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .unwrap();
    let mut watch =
        coldchain_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient::new(
            channel,
        )
        .watch_alarms(pb::WatchAlarmsRequest { from_sequence: 1 })
        .await
        .unwrap()
        .into_inner();
    // Do not read for a while: the server must not buffer without bound.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut last = 0;
    let status = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match watch.next().await {
                Some(Ok(message)) => {
                    for event in message.events {
                        assert_eq!(event.sequence, last + 1, "no gap, no duplicate");
                        last = event.sequence;
                    }
                }
                Some(Err(status)) => break status,
                None => panic!("the stream ended without the resumable error"),
            }
        }
    })
    .await
    .expect("cut off in time");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status
            .message()
            .contains(&format!("resume from_sequence {}", last + 1)),
        "{} after {last}",
        status.message()
    );
    // At the documented limit: the configured queue, full for the configured stall.
    assert!(
        status
            .message()
            .starts_with("consumer too slow: 1 messages queued for 200 ms;"),
        "{}",
        status.message()
    );
    assert!(
        last < 10_000,
        "the slow consumer was cut off before the end"
    );
    // Resuming from the named sequence gives every later event exactly once.
    let mut resumed = client
        .watch_alarms(pb::WatchAlarmsRequest {
            from_sequence: last + 1,
        })
        .await
        .unwrap()
        .into_inner();
    let head = loop {
        let message = resumed.next().await.unwrap().unwrap();
        if message.events.is_empty() {
            break message.head_sequence;
        }
        for event in message.events {
            assert_eq!(
                event.sequence,
                last + 1,
                "no gap, no duplicate after resuming"
            );
            last = event.sequence;
        }
    };
    assert_eq!(last, head, "every event was delivered");
    assert_eq!(
        head, 10_000,
        "a raised and a cleared event per pair of readings"
    );
    server.stop().await;
}
