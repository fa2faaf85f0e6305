//! Requests the gateway refuses, with every site down: the fields named, the codes chosen,
//! and nothing created or moved.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use coldchain_proto::common::v1 as cc;
use coldchain_proto::network::v1 as pb;
use coldchain_runtime::network::ServiceKind;
use common::*;
use tonic::Code;

const SKU: &str = "kiwi-hongyang";

fn assert_invalid<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
    expected_fields: &[&str],
    case: &str,
) {
    let status = result.expect_err(case);
    assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
    let got = fields(&status);
    for field in expected_fields {
        assert!(
            got.iter().any(|f| f == field),
            "{case}: {field} not in {got:?}"
        );
    }
    assert!(
        !status.message().starts_with(char::is_uppercase),
        "{case}: lowercase message"
    );
}

fn assert_code<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
    code: Code,
    case: &str,
) {
    let status = result.expect_err(case);
    assert_eq!(status.code(), code, "{case}: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_requests_are_refused_and_change_nothing() {
    let net = Net::start(&[]).await;
    let mut g = net.gateway().await;
    let good = || {
        start(
            "r-1",
            "T-1",
            vec![line(SKU, "K1", "chilled-a", "chilled-a", 5)],
        )
    };

    // StartTransfer: malformed fields, all reported at once.
    let mut bad = good();
    bad.request_id = String::new();
    bad.transfer_id = "bad\u{7}id".into();
    bad.lines[0].quantity = 0;
    bad.lines[0].unit = String::new();
    bad.reefer_sensor_id = "reefer-1".into();
    bad.reefer_temperature_class = 99;
    bad.train_or_route = "x".repeat(200);
    assert_invalid(
        g.start_transfer(bad).await,
        &[
            "request_id",
            "transfer_id",
            "lines[0].quantity",
            "lines[0].unit",
            "reefer_container_id",
            "reefer_temperature_class",
            "train_or_route",
        ],
        "many bad fields",
    );
    type Edit = Box<dyn Fn(&mut pb::StartTransferRequest)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "no source",
            Box::new(|r| r.source_site_id.clear()),
            "source_site_id",
        ),
        (
            "to itself",
            Box::new(|r| r.destination_site_id = PARK.into()),
            "destination_site_id",
        ),
        ("no lines", Box::new(|r| r.lines.clear()), "lines"),
        (
            "too many lines",
            Box::new(|r| {
                r.lines = (0..1001)
                    .map(|i| line(SKU, &format!("L{i}"), "chilled-a", "chilled-a", 1))
                    .collect()
            }),
            "lines",
        ),
        (
            "negative quantity",
            Box::new(|r| r.lines[0].quantity = -3),
            "lines[0].quantity",
        ),
        (
            "bad sku",
            Box::new(|r| r.lines[0].sku = " kiwi".into()),
            "lines[0].sku",
        ),
        (
            "no lot",
            Box::new(|r| r.lines[0].lot_id.clear()),
            "lines[0].lot_id",
        ),
        (
            "long unit",
            Box::new(|r| r.lines[0].unit = "u".repeat(17)),
            "lines[0].unit",
        ),
        (
            "repeated line",
            Box::new(|r| r.lines.push(r.lines[0].clone())),
            "lines[1]",
        ),
        (
            "class changes",
            Box::new(|r| r.lines[0].destination_zone_id = "frozen-a".into()),
            "lines[0].destination_zone_id",
        ),
        (
            "one lot to two zones",
            Box::new(|r| r.lines.push(line(SKU, "K1", "frozen-a", "frozen-a", 1))),
            "lines[1].destination_zone_id",
        ),
    ];
    for (case, edit, field) in cases {
        let mut request = good();
        edit(&mut request);
        assert_invalid(g.start_transfer(request).await, &[field], case);
    }
    let mut unknown_site = good();
    unknown_site.destination_site_id = "xx-nowhere".into();
    assert_code(
        g.start_transfer(unknown_site).await,
        Code::NotFound,
        "unknown site",
    );
    let mut unknown_zone = good();
    unknown_zone.lines[0].source_zone_id = "no-such-zone".into();
    assert_code(
        g.start_transfer(unknown_zone).await,
        Code::NotFound,
        "unknown zone",
    );

    // Other transfer calls.
    assert_invalid(
        g.receive_transfer(pb::ReceiveTransferRequest {
            request_id: String::new(),
            transfer_id: "x\ty".into(),
            actor: Default::default(),
        })
        .await,
        &["request_id", "transfer_id"],
        "receive",
    );
    assert_code(
        g.receive_transfer(pb::ReceiveTransferRequest {
            request_id: "r".into(),
            transfer_id: "T-NONE".into(),
            actor: Default::default(),
        })
        .await,
        Code::NotFound,
        "receive unknown",
    );
    assert_invalid(
        g.get_transfer(pb::GetTransferRequest {
            transfer_id: String::new(),
        })
        .await,
        &["transfer_id"],
        "get",
    );
    assert_code(
        g.get_transfer(pb::GetTransferRequest {
            transfer_id: "T-NONE".into(),
        })
        .await,
        Code::NotFound,
        "get unknown",
    );
    assert_invalid(
        g.list_transfers(pb::ListTransfersRequest {
            states: vec![0, 42],
            page_size: -1,
            ..Default::default()
        })
        .await,
        &["states[0]", "states[1]", "page_size"],
        "list transfers",
    );
    assert_invalid(
        g.list_transfers(pb::ListTransfersRequest {
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await,
        &["page_token"],
        "list transfers token",
    );
    assert_code(
        g.list_transfers(pb::ListTransfersRequest {
            source_site_id: "xx-nowhere".into(),
            ..Default::default()
        })
        .await,
        Code::NotFound,
        "list transfers unknown site",
    );

    // Fan-out calls.
    assert_invalid(
        g.find_stock(pb::FindStockRequest {
            sku: String::new(),
            temperature_class: 42,
            min_quantity: -1,
            site_ids: vec!["a\u{1}".into()],
        })
        .await,
        &["sku", "temperature_class", "min_quantity", "site_ids[0]"],
        "find stock",
    );
    assert_code(
        g.find_stock(pb::FindStockRequest {
            sku: SKU.into(),
            site_ids: vec!["xx-nowhere".into()],
            ..Default::default()
        })
        .await,
        Code::NotFound,
        "find stock unknown site",
    );
    assert_invalid(
        g.find_space(pb::FindSpaceRequest {
            temperature_class: 0,
            pallets: 0,
            first_day: None,
            last_day: Some(date(2026, 2, 30)),
            site_ids: vec![],
        })
        .await,
        &["temperature_class", "pallets", "first_day", "last_day"],
        "find space",
    );
    assert_invalid(
        g.find_space(pb::FindSpaceRequest {
            temperature_class: cc::TemperatureClass::Cool as i32,
            pallets: 1,
            first_day: Some(date(2030, 6, 2)),
            last_day: Some(date(2030, 6, 1)),
            site_ids: vec![],
        })
        .await,
        &["last_day"],
        "find space backwards",
    );
    assert_invalid(
        g.find_space(pb::FindSpaceRequest {
            temperature_class: cc::TemperatureClass::Cool as i32,
            pallets: 1,
            first_day: Some(date(2030, 1, 1)),
            last_day: Some(date(2031, 1, 2)),
            site_ids: vec![],
        })
        .await,
        &["last_day"],
        "find space too long",
    );
    assert_invalid(
        g.list_sites(pb::ListSitesRequest {
            page_size: -1,
            ..Default::default()
        })
        .await,
        &["page_size"],
        "sites",
    );
    assert_invalid(
        g.list_sites(pb::ListSitesRequest {
            page_token: "00".into(),
            ..Default::default()
        })
        .await,
        &["page_token"],
        "sites token",
    );
    assert_code(
        g.list_sites(pb::ListSitesRequest {
            site_ids: vec!["xx-nowhere".into()],
            ..Default::default()
        })
        .await,
        Code::NotFound,
        "sites unknown",
    );
    assert_invalid(
        g.list_alarms(pb::ListAlarmsRequest {
            states: vec![0],
            kinds: vec![99],
            ..Default::default()
        })
        .await,
        &["states[0]", "kinds[0]"],
        "alarms",
    );
    let unknown_cursor = g
        .watch_alarms(pb::WatchAlarmsRequest {
            from_sequences: [("xx-nowhere".to_string(), 3)].into_iter().collect(),
            site_ids: vec![],
        })
        .await;
    assert_code(unknown_cursor, Code::NotFound, "watch unknown site");

    // Nothing was recorded.
    let all = g
        .list_transfers(pb::ListTransfersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(all.transfers.is_empty(), "{:?}", all.transfers);
    let _ = ServiceKind::Gateway;
}
