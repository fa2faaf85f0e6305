//! The alarm lifecycle as a consumer of WatchAlarms sees it, through a real server: every
//! step of an alarm's life is an event however readings are batched (an excursion raised
//! and cleared within one PushReadings, a sensor back from a silence no check saw), and a
//! SENSOR_OFFLINE alarm starts exactly when the sensor's status turned OFFLINE.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::time::Duration;

use coldchain_proto::common::v1::TemperatureClass;
use coldchain_proto::telemetry::v1 as pb;
use coldchain_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use coldchain_store::{Clock, ManualClock};
use common::*;
use tonic::transport::Channel;

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

/// A CHILLED reefer sensor not bound to a transfer (no hold), 60 s minimum excursion.
fn reefer(request_id: &str, sensor: &str, offline_minutes: i64) -> pb::RegisterSensorRequest {
    pb::RegisterSensorRequest {
        request_id: request_id.into(),
        sensor_id: sensor.into(),
        binding: Some(pb::register_sensor_request::Binding::Reefer(
            pb::ReeferBinding {
                container_id: "C1".into(),
                temperature_class: TemperatureClass::Chilled as i32,
                ..Default::default()
            },
        )),
        profile: Some(pb::SensorProfile {
            min_excursion_duration: Some(minutes(1)),
            offline_after: Some(minutes(offline_minutes)),
            ..Default::default()
        }),
        description: String::new(),
        actor: Default::default(),
    }
}

/// The whole feed up to the caught-up marker.
async fn feed(client: &mut TelemetryServiceClient<Channel>) -> Vec<pb::AlarmEvent> {
    let mut stream = client
        .watch_alarms(pb::WatchAlarmsRequest { from_sequence: 1 })
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("the feed answers")
            .unwrap()
            .expect("a message");
        if message.events.is_empty() {
            return events;
        }
        events.extend(message.events);
    }
}

/// A sensor's lifecycle steps in the feed (UPDATED, which may be coalesced, left out):
/// (event kind, the alarm's state in it, the alarm's kind).
fn steps(
    events: &[pb::AlarmEvent],
    sensor: &str,
) -> Vec<(pb::AlarmEventKind, pb::AlarmState, pb::AlarmKind)> {
    events
        .iter()
        .filter(|e| e.alarm.as_ref().unwrap().sensor_id == sensor)
        .filter(|e| e.kind() != pb::AlarmEventKind::Updated)
        .map(|e| {
            let alarm = e.alarm.as_ref().unwrap();
            (e.kind(), alarm.state(), alarm.kind())
        })
        .collect()
}

#[tokio::test]
async fn an_excursion_raised_and_cleared_in_one_push_is_raised_then_cleared_in_the_feed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let server = server(dir.path(), &clock).await;
    let mut client = server.client.clone();
    for sensor in ["one-write", "two-writes"] {
        client
            .register_sensor(reefer(&format!("reg-{sensor}"), sensor, 15))
            .await
            .unwrap();
    }
    // 8, 8, 8, 2 °C one minute apart: raised after a minute out of limits, then cleared.
    let base = T0 - 10 * MINUTE;
    let values = [8.0, 8.0, 8.0, 2.0];
    let readings = |sensor: &str| -> Vec<pb::Reading> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| reading(sensor, base + i as i64 * MINUTE, *v))
            .collect()
    };
    push(&mut client, "one", readings("one-write")).await;
    let split = readings("two-writes");
    push(&mut client, "first", split[..3].to_vec()).await;
    push(&mut client, "second", split[3..].to_vec()).await;

    let events = feed(&mut client).await;
    let expected = vec![
        (
            pb::AlarmEventKind::Raised,
            pb::AlarmState::ActiveUnack,
            pb::AlarmKind::ExcursionHigh,
        ),
        (
            pb::AlarmEventKind::Cleared,
            pb::AlarmState::ClearedUnack,
            pb::AlarmKind::ExcursionHigh,
        ),
    ];
    assert_eq!(steps(&events, "one-write"), expected);
    assert_eq!(steps(&events, "two-writes"), expected);
    // Both end as the same alarm.
    let one = alarms(&mut client, "one-write").await;
    let two = alarms(&mut client, "two-writes").await;
    assert_eq!(one.len(), 1);
    assert_eq!(two.len(), 1);
    assert_eq!(one[0].started_at, two[0].started_at);
    assert_eq!(one[0].cleared_at, two[0].cleared_at);
    assert_eq!(one[0].cleared_at, Some(ts(base + 3 * MINUTE)));
    server.stop().await;
}

#[tokio::test]
async fn an_offline_alarm_starts_when_the_status_turned_even_if_no_check_saw_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let server = server(dir.path(), &clock).await;
    let mut client = server.client.clone();
    client
        .register_sensor(reefer("reg-checked", "checked", 1))
        .await
        .unwrap();
    client
        .register_sensor(reefer("reg-unseen", "unseen", 1))
        .await
        .unwrap();
    push(
        &mut client,
        "p-1",
        vec![reading("checked", T0, 2.0), reading("unseen", T0, 2.0)],
    )
    .await;
    let status = |sensors: &[pb::Sensor], id: &str| {
        sensors.iter().find(|s| s.sensor_id == id).unwrap().status()
    };
    let sensors = |mut client: TelemetryServiceClient<Channel>| async move {
        client
            .list_sensors(pb::ListSensorsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .sensors
    };
    // The status turns OFFLINE right after the offline period (1 minute) from the arrival.
    let turned = T0 + MINUTE;
    clock.set(turned);
    assert_eq!(
        status(&sensors(client.clone()).await, "checked"),
        pb::SensorStatus::Ok
    );
    clock.set(turned + 1);
    assert_eq!(
        status(&sensors(client.clone()).await, "checked"),
        pb::SensorStatus::Offline
    );
    // A check much later raises the alarm of one sensor; it starts when the status turned.
    clock.set(turned + 9_000);
    server
        .telemetry
        .check_offline(clock.now_millis())
        .await
        .unwrap();
    // Both come back in one write, before any further check.
    let back = turned + 20_000;
    clock.set(back);
    push(
        &mut client,
        "p-2",
        vec![reading("checked", back, 2.0), reading("unseen", back, 2.0)],
    )
    .await;

    let events = feed(&mut client).await;
    let expected = vec![
        (
            pb::AlarmEventKind::Raised,
            pb::AlarmState::ActiveUnack,
            pb::AlarmKind::SensorOffline,
        ),
        (
            pb::AlarmEventKind::Cleared,
            pb::AlarmState::ClearedUnack,
            pb::AlarmKind::SensorOffline,
        ),
    ];
    for sensor in ["checked", "unseen"] {
        assert_eq!(steps(&events, sensor), expected, "{sensor}");
        let list = alarms(&mut client, sensor).await;
        assert_eq!(list.len(), 1, "{sensor}");
        assert_eq!(list[0].started_at, Some(ts(turned)), "{sensor}");
        assert_eq!(list[0].cleared_at, Some(ts(back)), "{sensor}");
        assert_eq!(
            list[0].duration,
            Some(prost_types::Duration {
                seconds: 20,
                nanos: 0
            }),
            "{sensor}"
        );
    }
    server.stop().await;
}
