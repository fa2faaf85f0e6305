//! Page tokens of the list RPCs: a token this query did not return is INVALID_ARGUMENT
//! naming `page_token` once, with the shared pagination's message.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use coldchain_proto::telemetry::v1 as pb;
use coldchain_store::ManualClock;
use common::*;
use tonic::Code;

const REFUSED: &str = "page_token: is not a token this query returned";

async fn server_with_sensors(dir: &std::path::Path) -> (Server, String) {
    let inventory = format!("http://127.0.0.1:{}", free_port());
    let server = Server::start(
        dir,
        ManualClock::at(T0),
        network_with_inventory(&inventory),
        fast_options(),
    )
    .await;
    let mut client = server.client.clone();
    for i in 0..3 {
        client
            .register_sensor(zone_sensor(
                &format!("r-{i}"),
                &format!("s{i}"),
                "chilled-a",
                None,
            ))
            .await
            .unwrap();
    }
    let page = client
        .list_sensors(pb::ListSensorsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!page.next_page_token.is_empty());
    (server, page.next_page_token)
}

#[tokio::test]
async fn list_sensors_refuses_a_foreign_token_with_one_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let (server, token) = server_with_sensors(dir.path()).await;
    let mut client = server.client.clone();
    for (page_token, zone_id) in [("zz".to_string(), ""), (token, "chilled-a")] {
        let error = client
            .list_sensors(pb::ListSensorsRequest {
                zone_id: zone_id.into(),
                page_token,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument);
        assert_eq!(error.message(), REFUSED);
        assert_eq!(bad_fields(&error), ["page_token"]);
    }
    server.stop().await;
}

#[tokio::test]
async fn list_alarms_refuses_a_foreign_token_with_one_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let (server, sensors_token) = server_with_sensors(dir.path()).await;
    let mut client = server.client.clone();
    for page_token in ["zz".to_string(), sensors_token] {
        let error = client
            .list_alarms(pb::ListAlarmsRequest {
                page_token,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument);
        assert_eq!(error.message(), REFUSED);
        assert_eq!(bad_fields(&error), ["page_token"]);
    }
    server.stop().await;
}
