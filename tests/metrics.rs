//! Metrics of a real `coldchain dev` network: one endpoint for all 25 servers, every call
//! counted under its site, service, method and gRPC code; and a metrics address that cannot
//! be used stops the start with exit code 2, like any other bad configuration.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use coldchain_proto::inventory::v1 as pb;
use coldchain_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use coldchain_runtime::network::ServiceKind;
use common::TestNetwork;

const SITE: &str = "la-vientiane";
const CALLS: u64 = 7;

/// `coldchain dev` on the test network, serving metrics on `metrics`.
fn start_dev(net: &TestNetwork, metrics: &str, stderr: Stdio) -> Child {
    common::command()
        .args(["dev", "--network"])
        .arg(&net.file)
        .env("COLDCHAIN_DATA_DIR", net.data_dir())
        .env("COLDCHAIN_LOG_LEVEL", "warn")
        .env("COLDCHAIN_METRICS_LISTEN", metrics)
        .env("COLDCHAIN_METRICS_SAMPLE_INTERVAL", "200ms")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn coldchain dev")
}

/// `GET /metrics` at `addr`: the status line and the body.
fn scrape(addr: &str) -> std::io::Result<(String, String)> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or((response.as_str(), ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    Ok((status, body.to_owned()))
}

/// The value of the one sample of `metric` whose labels include every one of `labels`.
fn sample(body: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = body.lines().filter(|line| {
        line.strip_prefix(metric)
            .is_some_and(|rest| rest.starts_with('{'))
            && labels
                .iter()
                .all(|(key, value)| line.contains(&format!("{key}=\"{value}\"")))
    });
    let line = found.next()?;
    assert!(found.next().is_none(), "more than one {metric} {labels:?}");
    line.rsplit(' ').next()?.parse().ok()
}

/// How many services report SERVING.
fn serving(body: &str) -> usize {
    body.lines()
        .filter(|line| line.starts_with("coldchain_health_serving{") && line.ends_with(" 1"))
        .count()
}

fn receipt(n: u64) -> pb::RecordMovementsRequest {
    pb::RecordMovementsRequest {
        request_id: format!("metrics-{n}"),
        movements: vec![pb::Movement {
            kind: pb::MovementKind::Receipt as i32,
            sku: "SKU-METRICS".into(),
            lot: Some(common::lasting_lot("L1")),
            zone_id: "chilled-a".into(),
            quantity: 10,
            unit: "kg".into(),
            ..Default::default()
        }],
        actor: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_is_counted_under_its_site_service_method_and_code() {
    let net = TestNetwork::new();
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut dev = start_dev(&net, &addr, Stdio::inherit());

    // Up once every server's health probe reported it serving.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !scrape(&addr).is_ok_and(|(_, body)| serving(&body) == 25) {
        if let Some(status) = dev.try_wait().expect("try_wait") {
            panic!("dev exited with {status} before serving");
        }
        assert!(Instant::now() < deadline, "dev not serving within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let channel = net.dev_keyring().channel(
        &net.endpoint(SITE, ServiceKind::Inventory),
        &common::warehouse(SITE),
    );
    let mut client = InventoryServiceClient::new(channel);

    for n in 0..CALLS {
        client.record_movements(receipt(n)).await.expect("receipt");
    }
    // The same request again is answered from the idempotency record: a call like any other.
    client.record_movements(receipt(0)).await.expect("replay");
    let refused = client
        .record_movements(pb::RecordMovementsRequest::default())
        .await
        .expect_err("an empty batch is refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);

    let (status, body) = scrape(&addr).expect("scrape");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let call = |code: &str| {
        sample(
            &body,
            "rpc_server_call_duration_seconds_count",
            &[
                ("site", SITE),
                ("service", "inventory"),
                ("rpc_service", "coldchain.inventory.v1.InventoryService"),
                ("rpc_method", "RecordMovements"),
                ("rpc_response_status_code", code),
            ],
        )
    };
    assert_eq!(call("OK"), Some((CALLS + 1) as f64), "{body}");
    assert_eq!(call("INVALID_ARGUMENT"), Some(1.0), "{body}");
    // Another site's inventory answered none of them.
    assert_eq!(
        sample(
            &body,
            "rpc_server_call_duration_seconds_count",
            &[("site", "vn-hanoi"), ("rpc_method", "RecordMovements")],
        ),
        None
    );
    assert!(body.contains("# TYPE rpc_server_call_duration_seconds histogram"));

    let store = [("site", SITE), ("service", "inventory")];
    let syncs = sample(
        &body,
        "coldchain_store_wal_sync_duration_seconds_count",
        &store,
    );
    assert!(syncs.is_some_and(|n| n >= 1.0), "{body}");
    assert_eq!(
        sample(&body, "coldchain_store_idempotent_replays_total", &store),
        Some(1.0)
    );
    assert!(
        sample(&body, "coldchain_store_wal_appended_bytes_total", &store).is_some_and(|b| b > 0.0)
    );
    // Every one of the 25 servers reports itself serving.
    assert_eq!(serving(&body), 25, "{body}");
    assert!(body.contains(
        "coldchain_health_serving{site=\"hub\",service=\"gateway\",rpc_service=\"coldchain.network.v1.NetworkService\"} 1"
    ));

    // The domain series, sampled from the services' state: the stock just received, the
    // zones' capacity for today, no sensor offline, every site service reachable.
    let sampled = |body: &str| {
        sample(
            body,
            "coldchain_inventory_zone_stock_units",
            &[("site", SITE), ("zone", "chilled-a"), ("state", "on_hand")],
        )
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (_, body) = scrape(&addr).expect("scrape");
        if sampled(&body) == Some((CALLS * 10) as f64) {
            break body;
        }
        assert!(Instant::now() < deadline, "stock not sampled: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let zone_state = |metric: &str, site: &str, state: &str| {
        sample(
            &body,
            metric,
            &[("site", site), ("zone", "chilled-a"), ("state", state)],
        )
    };
    let zone_stock = |state: &str| zone_state("coldchain_inventory_zone_stock_units", SITE, state);
    assert_eq!(zone_stock("allocated"), Some(0.0));
    assert_eq!(zone_stock("held"), Some(0.0));
    let capacity = coldchain_runtime::network::NetworkConfig::load(&net.file)
        .unwrap()
        .site(SITE)
        .unwrap()
        .zones
        .iter()
        .find(|z| z.id == "chilled-a")
        .unwrap()
        .capacity_pallets;
    assert_eq!(
        zone_state("coldchain_booking_zone_pallets", SITE, "capacity"),
        Some(f64::from(capacity)),
        "{body}"
    );
    assert_eq!(
        zone_state("coldchain_booking_zone_pallets", SITE, "held"),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &body,
            "coldchain_telemetry_sensors_offline",
            &[("site", SITE), ("zone", "chilled-a")]
        ),
        Some(0.0),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            "coldchain_outbox_pending",
            &[("site", SITE), ("outbox", "holds")]
        ),
        Some(0.0)
    );
    let reachable = body
        .lines()
        .filter(|l| l.starts_with("coldchain_gateway_site_reachable{") && l.ends_with(" 1"))
        .count();
    assert_eq!(reachable, 24, "{body}");

    let _ = std::process::Command::new("kill")
        .args(["-TERM", &dev.id().to_string()])
        .status();
    let status = dev.wait().expect("wait");
    assert!(status.success(), "dev exited with {status}");
}

#[test]
fn a_metrics_address_in_use_or_unparsable_fails_the_start_with_exit_2() {
    let net = TestNetwork::new();
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = held.local_addr().expect("addr").to_string();
    for (value, expected) in [
        (taken.as_str(), "metrics_listen: cannot listen on"),
        (
            "9464",
            "COLDCHAIN_METRICS_LISTEN: expected an address with a port",
        ),
    ] {
        let output = start_dev(&net, value, Stdio::piped())
            .wait_with_output()
            .expect("wait");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{value}: {stderr}");
        assert!(stderr.contains(expected), "{value}: {stderr}");
    }
}
