//! Every request rule of NetworkService, one table per RPC: each row mutates a valid base
//! request and states the code and the exact `google.rpc.BadRequest` field names the gateway
//! must answer with. Validation comes before any call to a site, so most tables run with
//! every site down. After the StartTransfer and ReceiveTransfer tables no transfer was
//! created or moved, and the base request then succeeds under the request_id every row
//! used (a refused request must not consume its request_id).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use coldchain_proto::common::v1 as cc;
use coldchain_proto::network::v1 as pb;
use coldchain_proto::telemetry::v1 as tel;
use coldchain_testkit::table::*;
use common::*;
use tonic::Code;

const SKU: &str = "SKU-CITRUS";

// ---------------------------------------------------------------------------------------------
// The table machinery

/// Rows for a `site_ids` filter reached through `ids`: a malformed id first or second, and
/// an id the network does not have.
fn site_id_rows<R: 'static>(ids: fn(&mut R) -> &mut Vec<String>) -> Vec<Row<R>> {
    let mut rows = Vec::new();
    for (form, value) in std::iter::once(("empty", String::new())).chain(malformed_ids()) {
        let second = value.clone();
        rows.push(invalid(
            format!("site_ids[0] {form}"),
            &["site_ids[0]"],
            move |r: &mut R| *ids(r) = vec![value.clone()],
        ));
        rows.push(invalid(
            format!("site_ids[1] {form}"),
            &["site_ids[1]"],
            move |r: &mut R| *ids(r) = vec![PARK.into(), second.clone()],
        ));
    }
    rows.push(refused(
        "an unknown site",
        Code::NotFound,
        move |r: &mut R| *ids(r) = vec![PARK.into(), "xx-nowhere".into()],
    ));
    rows
}

/// Rows for a page token reached through `token`.
fn token_rows<R: 'static>(
    tokens: Vec<(&'static str, String)>,
    token: fn(&mut R) -> &mut String,
) -> Vec<Row<R>> {
    tokens
        .into_iter()
        .map(|(name, value)| {
            invalid(
                format!("page_token {name}"),
                &["page_token"],
                move |r: &mut R| *token(r) = value.clone(),
            )
        })
        .collect()
}

/// Every transfer id the gateway has.
async fn transfer_ids(g: &mut Gateway) -> Vec<String> {
    g.list_transfers(pb::ListTransfersRequest {
        page_size: 1000,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .transfers
    .into_iter()
    .map(|t| t.transfer_id)
    .collect()
}

/// All sites down; two transfers T-1 and T-2 from the park to Vientiane, REQUESTED (their
/// source cannot be reached).
async fn fixture() -> (Net, Gateway) {
    let net = Net::start(&[]).await;
    let mut g = net.gateway().await;
    for id in ["T-1", "T-2"] {
        let t = g
            .start_transfer(start(
                &format!("fx-{id}"),
                id,
                vec![line(SKU, "K1", "chilled-a", "chilled-a", 5)],
            ))
            .await
            .expect("a transfer is recorded while its source is down")
            .into_inner();
        assert_eq!(state(&t), pb::TransferState::Requested);
    }
    (net, g)
}

// ---------------------------------------------------------------------------------------------
// StartTransfer

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_transfer_rules() {
    type Req = pb::StartTransferRequest;
    let (_net, mut g) = fixture().await;
    let before = transfer_ids(&mut g).await;
    let base = start(
        "st",
        "T-9",
        vec![line(SKU, "K1", "chilled-a", "chilled-a", 5)],
    );
    let mut rows: Vec<Row<Req>> = Vec::new();
    rows.extend(id_rows("request_id", true, |r: &mut Req, v| {
        r.request_id = v
    }));
    rows.extend(id_rows("transfer_id", false, |r: &mut Req, v| {
        r.transfer_id = v
    }));
    rows.extend(id_rows("source_site_id", true, |r: &mut Req, v| {
        r.source_site_id = v
    }));
    rows.extend(id_rows("destination_site_id", true, |r: &mut Req, v| {
        r.destination_site_id = v
    }));
    rows.push(invalid(
        "to its own source",
        &["destination_site_id"],
        |r: &mut Req| r.destination_site_id = PARK.into(),
    ));
    rows.push(invalid("no lines", &["lines"], |r: &mut Req| {
        r.lines.clear()
    }));
    rows.push(invalid("1,001 lines", &["lines"], |r: &mut Req| {
        r.lines = (0..1001)
            .map(|i| line(SKU, &format!("L{i}"), "chilled-a", "chilled-a", 1))
            .collect()
    }));
    rows.extend(id_rows("lines[0].sku", true, |r: &mut Req, v| {
        r.lines[0].sku = v
    }));
    rows.extend(id_rows("lines[0].lot_id", true, |r: &mut Req, v| {
        r.lines[0].lot_id = v
    }));
    rows.extend(id_rows(
        "lines[0].source_zone_id",
        true,
        |r: &mut Req, v| r.lines[0].source_zone_id = v,
    ));
    rows.extend(id_rows(
        "lines[0].destination_zone_id",
        true,
        |r: &mut Req, v| r.lines[0].destination_zone_id = v,
    ));
    for quantity in [0, -3, i64::MIN] {
        rows.push(invalid(
            format!("quantity {quantity}"),
            &["lines[0].quantity"],
            move |r: &mut Req| r.lines[0].quantity = quantity,
        ));
    }
    for (name, unit) in [
        ("empty", ""),
        ("17 bytes", "kilogram-per-unit"),
        ("a space", "case 12"),
        ("a control character", "kg\u{1}"),
    ] {
        rows.push(invalid(
            format!("unit {name}"),
            &["lines[0].unit"],
            move |r: &mut Req| r.lines[0].unit = unit.into(),
        ));
    }
    rows.push(invalid("a repeated line", &["lines[1]"], |r: &mut Req| {
        r.lines.push(r.lines[0].clone())
    }));
    rows.push(invalid(
        "a zone of another class at the destination",
        &["lines[0].destination_zone_id"],
        |r: &mut Req| r.lines[0].destination_zone_id = "frozen-a".into(),
    ));
    rows.push(invalid(
        "one lot to two zones",
        &["lines[1].destination_zone_id"],
        |r: &mut Req| r.lines.push(line(SKU, "K1", "frozen-a", "frozen-a", 1)),
    ));
    rows.push(invalid(
        "one lot in two units",
        &["lines[1].unit"],
        |r: &mut Req| {
            // Same sku, lot and destination zone from another source zone: only the unit
            // differs from line 0. (That zone does not exist at the park, but an unknown
            // zone is NOT_FOUND only once every field is well-formed.)
            let mut other = line(SKU, "K1", "chilled-b", "chilled-a", 1);
            other.unit = "g".into();
            r.lines.push(other);
        },
    ));
    rows.extend(id_rows("reefer_sensor_id", false, |r: &mut Req, v| {
        r.reefer_container_id = "MSKU1234565".into();
        r.reefer_sensor_id = v
    }));
    rows.push(invalid(
        "a reefer sensor without its container",
        &["reefer_container_id"],
        |r: &mut Req| r.reefer_sensor_id = "reefer-1".into(),
    ));
    rows.extend(id_rows("reefer_container_id", false, |r: &mut Req, v| {
        r.reefer_container_id = v
    }));
    for class in [-1, 6, 999] {
        rows.push(invalid(
            format!("reefer class {class}"),
            &["reefer_temperature_class"],
            move |r: &mut Req| r.reefer_temperature_class = class,
        ));
    }
    for (name, route) in [
        ("129 bytes", "x".repeat(129)),
        ("130 bytes in 65 characters", "é".repeat(65)),
        ("a control character", "X8011\u{1b}".to_string()),
    ] {
        rows.push(invalid(
            format!("train_or_route {name}"),
            &["train_or_route"],
            move |r: &mut Req| r.train_or_route = route.clone(),
        ));
    }
    rows.push(invalid(
        "every field at once",
        &[
            "request_id",
            "transfer_id",
            "lines[0].quantity",
            "lines[0].unit",
            "reefer_container_id",
            "reefer_temperature_class",
            "train_or_route",
        ],
        |r: &mut Req| {
            r.request_id.clear();
            r.transfer_id = "bad\u{7}id".into();
            r.lines[0].quantity = 0;
            r.lines[0].unit.clear();
            r.reefer_sensor_id = "reefer-1".into();
            r.reefer_temperature_class = 99;
            r.train_or_route = "x".repeat(200);
        },
    ));
    rows.push(refused(
        "an unknown source site",
        Code::NotFound,
        |r: &mut Req| r.source_site_id = "xx-nowhere".into(),
    ));
    rows.push(refused(
        "an unknown destination site",
        Code::NotFound,
        |r: &mut Req| r.destination_site_id = "xx-nowhere".into(),
    ));
    rows.push(refused(
        "an unknown source zone",
        Code::NotFound,
        |r: &mut Req| r.lines[0].source_zone_id = "no-such-zone".into(),
    ));
    rows.push(refused(
        "an unknown destination zone",
        Code::NotFound,
        |r: &mut Req| r.lines[0].destination_zone_id = "no-such-zone".into(),
    ));
    rows.push(refused(
        "a transfer_id taken by another transfer",
        Code::AlreadyExists,
        |r: &mut Req| {
            r.transfer_id = "T-1".into();
            r.lines[0].quantity = 6;
        },
    ));
    let c = g.clone();
    check_writes(
        "StartTransfer",
        &base,
        rows,
        |r, id| r.request_id = id,
        |r| {
            let mut c = c.clone();
            async move { c.start_transfer(r).await }
        },
    )
    .await;
    assert_eq!(
        transfer_ids(&mut g).await,
        before,
        "no transfer was created"
    );
    g.start_transfer(base)
        .await
        .expect("the base request, request_id unused");
}

// ---------------------------------------------------------------------------------------------
// ReceiveTransfer, GetTransfer, ListTransfers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_and_get_transfer_rules() {
    let (_net, mut g) = fixture().await;
    type Receive = pb::ReceiveTransferRequest;
    let base = Receive {
        request_id: "rt".into(),
        transfer_id: "T-1".into(),
        actor: Default::default(),
    };
    let mut rows: Vec<Row<Receive>> = Vec::new();
    rows.extend(id_rows("request_id", true, |r: &mut Receive, v| {
        r.request_id = v
    }));
    rows.extend(id_rows("transfer_id", true, |r: &mut Receive, v| {
        r.transfer_id = v
    }));
    rows.push(refused(
        "an unknown transfer",
        Code::NotFound,
        |r: &mut Receive| r.transfer_id = "T-404".into(),
    ));
    // T-1 is REQUESTED: its source never shipped it.
    rows.push(refused(
        "a transfer not in transit",
        Code::FailedPrecondition,
        |_| {},
    ));
    let c = g.clone();
    check_writes(
        "ReceiveTransfer",
        &base,
        rows,
        |r, id| r.request_id = id,
        |r| {
            let mut c = c.clone();
            async move { c.receive_transfer(r).await }
        },
    )
    .await;
    let t1 = g
        .get_transfer(pb::GetTransferRequest {
            transfer_id: "T-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&t1), pb::TransferState::Requested, "nothing moved");

    type Get = pb::GetTransferRequest;
    let base = Get {
        transfer_id: "T-1".into(),
    };
    let mut rows: Vec<Row<Get>> = id_rows("transfer_id", true, |r: &mut Get, v| r.transfer_id = v);
    rows.push(refused(
        "an unknown transfer",
        Code::NotFound,
        |r: &mut Get| r.transfer_id = "T-404".into(),
    ));
    check_table("GetTransfer", &base, rows, |r| {
        let mut c = c.clone();
        async move { c.get_transfer(r).await }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_transfers_rules() {
    type Req = pb::ListTransfersRequest;
    let (_net, mut g) = fixture().await;
    let base = Req {
        page_size: 1,
        ..Req::default()
    };
    let token = g
        .list_transfers(base.clone())
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    let other_query = g
        .list_transfers(Req {
            source_site_id: PARK.into(),
            ..base.clone()
        })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    let sites_token = g
        .list_sites(pb::ListSitesRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!token.is_empty() && !other_query.is_empty() && !sites_token.is_empty());
    g.list_transfers(Req {
        page_token: token.clone(),
        ..base.clone()
    })
    .await
    .expect("the genuine token is accepted");
    let mut rows: Vec<Row<Req>> = Vec::new();
    rows.extend(enum_list_rows("states", 6, |r: &mut Req, v| r.states = v));
    rows.extend(id_rows("source_site_id", false, |r: &mut Req, v| {
        r.source_site_id = v
    }));
    rows.extend(id_rows("destination_site_id", false, |r: &mut Req, v| {
        r.destination_site_id = v
    }));
    for size in [-1, i32::MIN] {
        rows.push(invalid(
            format!("page_size {size}"),
            &["page_size"],
            move |r: &mut Req| r.page_size = size,
        ));
    }
    let mut tokens = tampered_tokens(&token, &other_query);
    tokens.push(("a ListSites token", sites_token));
    rows.extend(token_rows(tokens, |r: &mut Req| &mut r.page_token));
    rows.push(invalid(
        "every field at once",
        &["states[0]", "source_site_id", "page_size", "page_token"],
        |r: &mut Req| {
            r.states = vec![0];
            r.source_site_id = " p".into();
            r.page_size = -1;
            r.page_token = "zz".into();
        },
    ));
    rows.push(refused("an unknown site", Code::NotFound, |r: &mut Req| {
        r.destination_site_id = "xx-nowhere".into()
    }));
    check_table("ListTransfers", &base, rows, |r| {
        let mut c = g.clone();
        async move { c.list_transfers(r).await }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// The fan-out queries

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_sites_rules() {
    type Req = pb::ListSitesRequest;
    let (_net, mut g) = fixture().await;
    let transfers_token = g
        .list_transfers(pb::ListTransfersRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!transfers_token.is_empty());
    let base = Req {
        page_size: 1,
        ..Req::default()
    };
    let token = g
        .list_sites(base.clone())
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    let other_query = g
        .list_sites(Req {
            site_ids: vec![PARK.into(), VIENTIANE.into()],
            ..base.clone()
        })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!token.is_empty() && !other_query.is_empty());
    g.list_sites(Req {
        page_token: token.clone(),
        ..base.clone()
    })
    .await
    .expect("the genuine token is accepted");
    let mut rows = site_id_rows(|r: &mut Req| &mut r.site_ids);
    for size in [-1, i32::MIN] {
        rows.push(invalid(
            format!("page_size {size}"),
            &["page_size"],
            move |r: &mut Req| r.page_size = size,
        ));
    }
    let mut tokens = tampered_tokens(&token, &other_query);
    tokens.push(("a ListTransfers token", transfers_token));
    rows.extend(token_rows(tokens, |r: &mut Req| &mut r.page_token));
    rows.push(invalid(
        "every field at once",
        &["site_ids[0]", "page_size", "page_token"],
        |r: &mut Req| {
            r.site_ids = vec![String::new()];
            r.page_size = -1;
            r.page_token = "zz".into();
        },
    ));
    check_table("ListSites", &base, rows, |r| {
        let mut c = g.clone();
        async move { c.list_sites(r).await }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_stock_rules() {
    type Req = pb::FindStockRequest;
    let net = Net::start(&[]).await;
    let g = net.gateway().await;
    let base = Req {
        sku: SKU.into(),
        temperature_class: 0,
        min_quantity: 0,
        site_ids: vec![],
    };
    let mut rows: Vec<Row<Req>> = Vec::new();
    rows.extend(id_rows("sku", true, |r: &mut Req, v| r.sku = v));
    for class in [-1, 6, 999] {
        rows.push(invalid(
            format!("class {class}"),
            &["temperature_class"],
            move |r: &mut Req| r.temperature_class = class,
        ));
    }
    for quantity in [-1, i64::MIN] {
        rows.push(invalid(
            format!("min_quantity {quantity}"),
            &["min_quantity"],
            move |r: &mut Req| r.min_quantity = quantity,
        ));
    }
    rows.extend(site_id_rows(|r: &mut Req| &mut r.site_ids));
    rows.push(invalid(
        "every field at once",
        &["sku", "temperature_class", "min_quantity", "site_ids[0]"],
        |r: &mut Req| {
            r.sku.clear();
            r.temperature_class = 42;
            r.min_quantity = -1;
            r.site_ids = vec!["a\u{1}".into()];
        },
    ));
    g.clone()
        .find_stock(base.clone())
        .await
        .expect("the base request is valid (every site a failure)");
    check_table("FindStock", &base, rows, |r| {
        let mut c = g.clone();
        async move { c.find_stock(r).await }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_space_rules() {
    type Req = pb::FindSpaceRequest;
    let net = Net::start(&[]).await;
    let g = net.gateway().await;
    let base = Req {
        temperature_class: cc::TemperatureClass::Cool as i32,
        pallets: 1,
        first_day: ymd(2030, 6, 1),
        last_day: ymd(2030, 6, 2),
        site_ids: vec![],
    };
    let mut rows: Vec<Row<Req>> = Vec::new();
    for class in [0, -1, 6, 999] {
        rows.push(invalid(
            format!("class {class}"),
            &["temperature_class"],
            move |r: &mut Req| r.temperature_class = class,
        ));
    }
    for pallets in [0, -1, i32::MIN] {
        rows.push(invalid(
            format!("pallets {pallets}"),
            &["pallets"],
            move |r: &mut Req| r.pallets = pallets,
        ));
    }
    rows.extend(day_range_rows(true, |r: &mut Req| {
        (&mut r.first_day, &mut r.last_day)
    }));
    rows.push(invalid("reversed", &["last_day"], |r: &mut Req| {
        std::mem::swap(&mut r.first_day, &mut r.last_day)
    }));
    rows.push(invalid("367 days", &["last_day"], |r: &mut Req| {
        r.last_day = ymd(2031, 6, 2)
    }));
    rows.extend(site_id_rows(|r: &mut Req| &mut r.site_ids));
    rows.push(invalid(
        "every field at once",
        &["temperature_class", "pallets", "first_day", "last_day"],
        |r: &mut Req| {
            r.temperature_class = 0;
            r.pallets = 0;
            r.first_day = None;
            r.last_day = ymd(2030, 2, 30);
        },
    ));
    g.clone()
        .find_space(Req {
            last_day: ymd(2031, 6, 1),
            ..base.clone()
        })
        .await
        .expect("366 days are valid (every site a failure)");
    check_table("FindSpace", &base, rows, |r| {
        let mut c = g.clone();
        async move { c.find_space(r).await }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_alarms_rules() {
    type Req = pb::ListAlarmsRequest;
    // The park's (fake) telemetry has two alarms, so the query has a genuine second page.
    let net = Net::start(&[(PARK, TELEMETRY)]).await;
    let mut g = net.gateway().await;
    let base = Req {
        site_ids: vec![PARK.into()],
        page_size: 1,
        ..Req::default()
    };
    let token = g
        .list_alarms(base.clone())
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    let other_query = g
        .list_alarms(Req {
            kinds: vec![tel::AlarmKind::ExcursionHigh as i32],
            ..base.clone()
        })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    let sites_token = g
        .list_sites(pb::ListSitesRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!token.is_empty() && !other_query.is_empty() && !sites_token.is_empty());
    g.list_alarms(Req {
        page_token: token.clone(),
        ..base.clone()
    })
    .await
    .expect("the genuine token is accepted");
    let mut rows = site_id_rows(|r: &mut Req| &mut r.site_ids);
    rows.extend(enum_list_rows("states", 5, |r: &mut Req, v| r.states = v));
    rows.extend(enum_list_rows("kinds", 4, |r: &mut Req, v| r.kinds = v));
    for size in [-1, i32::MIN] {
        rows.push(invalid(
            format!("page_size {size}"),
            &["page_size"],
            move |r: &mut Req| r.page_size = size,
        ));
    }
    let mut tokens = tampered_tokens(&token, &other_query);
    tokens.push(("a ListSites token", sites_token));
    rows.extend(token_rows(tokens, |r: &mut Req| &mut r.page_token));
    rows.push(invalid(
        "every field at once",
        &[
            "site_ids[0]",
            "states[0]",
            "kinds[0]",
            "page_size",
            "page_token",
        ],
        |r: &mut Req| {
            r.site_ids = vec![" x".into()];
            r.states = vec![0];
            r.kinds = vec![99];
            r.page_size = -1;
            r.page_token = "zz".into();
        },
    ));
    check_table("ListAlarms", &base, rows, |r| {
        let mut c = g.clone();
        async move { c.list_alarms(r).await }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_alarms_rules() {
    type Req = pb::WatchAlarmsRequest;
    let net = Net::start(&[]).await;
    let g = net.gateway().await;
    let base = Req::default();
    let mut rows = site_id_rows(|r: &mut Req| &mut r.site_ids);
    for (form, site) in std::iter::once(("empty", String::new())).chain(malformed_ids()) {
        let field = format!("from_sequences[{site:?}]");
        rows.push(invalid(
            format!("from_sequences key {form}"),
            &[field],
            move |r: &mut Req| {
                r.from_sequences = [(PARK.to_string(), 3), (site.clone(), 1)].into();
            },
        ));
    }
    rows.push(refused(
        "a cursor of an unknown site",
        Code::NotFound,
        |r: &mut Req| r.from_sequences = [("xx-nowhere".to_string(), 3)].into(),
    ));
    check_table("WatchAlarms", &base, rows, |r| {
        let mut c = g.clone();
        async move { c.watch_alarms(r).await }
    })
    .await;
}
