//! Who registered a sensor and who acknowledged an alarm: the principal the server
//! authenticated ("anonymous" on these servers without authentication) and the actor the
//! request named (RegisterSensor's `actor`, AcknowledgeAlarm's `acknowledged_by`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use coldchain_proto::common::v1::Author;
use coldchain_proto::telemetry::v1 as pb;
use coldchain_store::ManualClock;
use common::*;
use tonic::Code;

fn author(principal: &str, actor: &str) -> Option<Author> {
    Some(Author {
        principal: principal.into(),
        actor: actor.into(),
    })
}

async fn start(dir: &std::path::Path) -> Server {
    let network = network_with_inventory(&format!("http://127.0.0.1:{}", free_port()));
    Server::start(dir, ManualClock::at(T0), network, fast_options()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensor_shows_who_registered_it_last() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let mut client = server.client.clone();
    let mut request = zone_sensor("r-1", "s1", "chilled-a", None);
    request.actor = "Anna, facilities".into();
    let sensor = client.register_sensor(request).await.unwrap().into_inner();
    assert_eq!(
        sensor.registered_by,
        author("anonymous", "Anna, facilities")
    );

    // A re-registration is the latest author.
    let again = client
        .register_sensor(zone_sensor("r-2", "s1", "chilled-a", None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.registered_by, author("anonymous", ""));
    let listed = client
        .list_sensors(pb::ListSensorsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .sensors;
    assert_eq!(listed[0].registered_by, author("anonymous", ""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_actor_is_invalid_argument_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let mut client = server.client.clone();
    let mut request = zone_sensor("r-1", "s1", "chilled-a", None);
    request.actor = "x".repeat(129);
    let status = client.register_sensor(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&status), ["actor"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledgement_records_the_principal_and_the_actor() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let mut client = server.client.clone();
    client
        .register_sensor(zone_sensor(
            "r-1",
            "s1",
            "chilled-a",
            Some(pb::SensorProfile {
                min_excursion_duration: Some(minutes(0)),
                ..Default::default()
            }),
        ))
        .await
        .unwrap();
    push(&mut client, "p-1", vec![reading("s1", T0 - MINUTE, 9.0)]).await;
    let alarm = alarms(&mut client, "s1").await.remove(0);
    assert_eq!(alarm.acknowledged_author, None, "unset until acknowledged");
    let acked = client
        .acknowledge_alarm(pb::AcknowledgeAlarmRequest {
            request_id: "a-1".into(),
            alarm_id: alarm.alarm_id.clone(),
            acknowledged_by: "qa-li".into(),
            note: "moving pallets".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acked.acknowledged_author, author("anonymous", "qa-li"));
    assert_eq!(acked.acknowledged_by, "qa-li");
    let listed = alarms(&mut client, "s1").await.remove(0);
    assert_eq!(listed.acknowledged_author, author("anonymous", "qa-li"));

    // After a restart, as stored.
    server.stop().await;
    let server = start(dir.path()).await;
    let mut client = server.client.clone();
    let listed = alarms(&mut client, "s1").await.remove(0);
    assert_eq!(listed.acknowledged_author, author("anonymous", "qa-li"));
}
