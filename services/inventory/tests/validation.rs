//! Every request rule of InventoryService, one table per RPC: each row mutates a valid base
//! request and states the code and the exact `google.rpc.BadRequest` field names the server
//! must answer with. After each mutating table the ledger shows that nothing changed, and
//! the base request then succeeds under the request_id every row used (a refused request
//! must not consume its request_id).
//!
//! WatchLedger has no rule to table: every `from_sequence` is valid (0 and 1 mean the
//! beginning, one beyond the head waits for it).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use coldchain_proto::common::v1 as cpb;
use coldchain_proto::inventory::v1 as pb;
use coldchain_testkit::table::*;
use common::*;
use tonic::Code;

// ---------------------------------------------------------------------------------------------
// The table machinery

// ---------------------------------------------------------------------------------------------
// Fixture

const JUN30: (i32, i32, i32) = (2026, 6, 30);

fn jun30() -> cpb::Date {
    date(JUN30.0, JUN30.1, JUN30.2)
}

/// Three positions: SKU-A lots L1 and L2 in the chilled zone, SKU-B L1 frozen (3 entries).
async fn fixture() -> (Harness, Client) {
    let h = Harness::start().await;
    let mut c = h.client().await;
    record(
        &mut c,
        "fx-1",
        vec![
            receipt("SKU-A", "L1", CHILLED, 100, jun30()),
            receipt("SKU-A", "L2", CHILLED, 50, jun30()),
            receipt("SKU-B", "L1", FROZEN, 10, jun30()),
        ],
    )
    .await
    .expect("fixture");
    (h, c)
}

async fn ledger_len(c: &mut Client) -> usize {
    ledger(c, 1).await.len()
}

// ---------------------------------------------------------------------------------------------
// RecordMovements

/// Edits the first movement of a batch.
fn m0(edit: impl Fn(&mut pb::Movement) + 'static) -> impl Fn(&mut pb::RecordMovementsRequest) {
    move |r| edit(&mut r.movements[0])
}

/// Replaces the first movement of a batch.
fn only(movement: pb::Movement) -> impl Fn(&mut pb::RecordMovementsRequest) {
    move |r| r.movements = vec![movement.clone()]
}

fn transfer(kind: pb::MovementKind) -> pb::Movement {
    pb::Movement {
        other_site_id: "la-vientiane".into(),
        transfer_id: "T-1".into(),
        ..movement(kind, "SKU-A", "L1", CHILLED, 5)
    }
}

fn adjustment(quantity: i64) -> pb::Movement {
    pb::Movement {
        reason: "damaged".into(),
        ..movement(
            pb::MovementKind::Adjustment,
            "SKU-A",
            "L1",
            CHILLED,
            quantity,
        )
    }
}

fn count(quantity: i64) -> pb::Movement {
    pb::Movement {
        expected_version: Some(1),
        ..movement(pb::MovementKind::Count, "SKU-A", "L1", CHILLED, quantity)
    }
}

fn booked(pallets: i32) -> pb::Movement {
    pb::Movement {
        booking_id: "bk-1".into(),
        pallets,
        ..receipt("SKU-A", "L1", CHILLED, 5, jun30())
    }
}

fn record_movements_rows() -> Vec<Row<pb::RecordMovementsRequest>> {
    use pb::MovementKind as K;
    type Req = pb::RecordMovementsRequest;
    let mut rows: Vec<Row<Req>> = Vec::new();
    rows.extend(id_rows("request_id", true, |r: &mut Req, v| {
        r.request_id = v
    }));
    rows.push(invalid("no movements", &["movements"], |r: &mut Req| {
        r.movements.clear()
    }));
    rows.push(invalid("1,001 movements", &["movements"], |r: &mut Req| {
        r.movements = vec![r.movements[0].clone(); 1001]
    }));
    for kind in [0, -1, 10, 999] {
        rows.push(invalid(
            format!("kind {kind}"),
            &["movements[0].kind"],
            m0(move |m| m.kind = kind),
        ));
    }
    rows.extend(id_rows("movements[0].sku", true, |r: &mut Req, v| {
        r.movements[0].sku = v
    }));
    rows.push(invalid(
        "no lot",
        &["movements[0].lot.lot_id"],
        m0(|m| m.lot = None),
    ));
    rows.extend(id_rows(
        "movements[0].lot.lot_id",
        true,
        |r: &mut Req, v| r.movements[0].lot.as_mut().unwrap().lot_id = v,
    ));
    for (name, (y, m, d)) in [
        ("month 13", (2026, 13, 1)),
        ("month 0", (2026, 0, 1)),
        ("february 30", (2026, 2, 30)),
        ("february 29 of a common year", (2027, 2, 29)),
        ("day 0", (2026, 6, 0)),
        ("day 32", (2026, 7, 32)),
        ("negative day", (2026, 7, -1)),
        ("year 0", (0, 6, 30)),
        ("year 10000", (10000, 6, 30)),
    ] {
        rows.push(invalid(
            format!("expiry {name}"),
            &["movements[0].lot.expiry"],
            m0(move |mv| mv.lot.as_mut().unwrap().expiry = Some(date(y, m, d))),
        ));
    }
    rows.push(invalid(
        "production february 30",
        &["movements[0].lot.production"],
        m0(|m| m.lot.as_mut().unwrap().production = Some(date(2026, 2, 30))),
    ));
    rows.push(invalid(
        "production after expiry",
        &["movements[0].lot.production"],
        m0(|m| m.lot.as_mut().unwrap().production = Some(date(2026, 7, 1))),
    ));
    rows.push(invalid(
        "origin over 256 bytes",
        &["movements[0].lot.origin"],
        m0(|m| m.lot.as_mut().unwrap().origin = over_bytes(256)),
    ));
    rows.push(invalid(
        "origin with a control character",
        &["movements[0].lot.origin"],
        m0(|m| m.lot.as_mut().unwrap().origin = "Hunan\u{0}".into()),
    ));
    rows.extend(id_rows("movements[0].zone_id", true, |r: &mut Req, v| {
        r.movements[0].zone_id = v
    }));
    for (name, unit) in [
        ("empty", ""),
        ("17 bytes", "kilogram-per-unit"),
        ("a space", "case 12"),
        ("a control character", "kg\u{1}"),
    ] {
        rows.push(invalid(
            format!("unit {name}"),
            &["movements[0].unit"],
            m0(move |m| m.unit = unit.into()),
        ));
    }
    rows.push(invalid(
        "reason over 512 bytes",
        &["movements[0].reason"],
        m0(|m| m.reason = over_bytes(512)),
    ));
    rows.push(invalid(
        "reason with a control character",
        &["movements[0].reason"],
        m0(|m| m.reason = "late\u{1b}".into()),
    ));
    rows.push(invalid(
        "adjustment without reason",
        &["movements[0].reason"],
        only(pb::Movement {
            reason: String::new(),
            ..adjustment(-1)
        }),
    ));
    rows.push(invalid(
        "adjustment with a blank reason",
        &["movements[0].reason"],
        only(pb::Movement {
            reason: "  ".into(),
            ..adjustment(-1)
        }),
    ));
    for kind in [0, 999] {
        rows.push(invalid(
            format!("reference kind {kind}"),
            &["movements[0].reference.kind"],
            m0(move |m| {
                m.reference = Some(cpb::Reference {
                    kind,
                    id: "DN-1".into(),
                })
            }),
        ));
    }
    rows.extend(id_rows(
        "movements[0].reference.id",
        true,
        |r: &mut Req, v| r.movements[0].reference = Some(cpb::Reference { kind: 5, id: v }),
    ));
    for (name, movement) in [
        ("receipt of 0", receipt("SKU-A", "L1", CHILLED, 0, jun30())),
        (
            "receipt of -5",
            receipt("SKU-A", "L1", CHILLED, -5, jun30()),
        ),
        ("issue of 0", issue("SKU-A", "L1", CHILLED, 0)),
        ("issue of -1", issue("SKU-A", "L1", CHILLED, -1)),
        (
            "transfer out of 0",
            pb::Movement {
                quantity: 0,
                ..transfer(K::TransferOut)
            },
        ),
        (
            "transfer in of -1",
            pb::Movement {
                quantity: -1,
                ..transfer(K::TransferIn)
            },
        ),
        ("adjustment of 0", adjustment(0)),
        ("count of -1", count(-1)),
    ] {
        rows.push(invalid(name, &["movements[0].quantity"], only(movement)));
    }
    for kind in [K::TransferOut, K::TransferIn] {
        rows.push(invalid(
            format!("{kind:?} without other_site_id"),
            &["movements[0].other_site_id"],
            only(pb::Movement {
                other_site_id: String::new(),
                ..transfer(kind)
            }),
        ));
        rows.push(invalid(
            format!("{kind:?} without transfer_id"),
            &["movements[0].transfer_id"],
            only(pb::Movement {
                transfer_id: String::new(),
                ..transfer(kind)
            }),
        ));
        rows.push(invalid(
            format!("{kind:?} to this very site"),
            &["movements[0].other_site_id"],
            only(pb::Movement {
                other_site_id: SITE.into(),
                ..transfer(kind)
            }),
        ));
        rows.push(invalid(
            format!("{kind:?} with a malformed transfer_id"),
            &["movements[0].transfer_id"],
            only(pb::Movement {
                transfer_id: "T\u{7}1".into(),
                ..transfer(kind)
            }),
        ));
    }
    rows.push(invalid(
        "receipt with other_site_id",
        &["movements[0].other_site_id"],
        m0(|m| m.other_site_id = "la-vientiane".into()),
    ));
    rows.push(invalid(
        "receipt with transfer_id",
        &["movements[0].transfer_id"],
        m0(|m| m.transfer_id = "T-1".into()),
    ));
    rows.push(invalid(
        "issue with transfer_id",
        &["movements[0].transfer_id"],
        only(pb::Movement {
            transfer_id: "T-1".into(),
            ..issue("SKU-A", "L1", CHILLED, 1)
        }),
    ));
    rows.push(invalid(
        "one transfer receiving a lot twice",
        &["movements[1].transfer_id"],
        |r: &mut Req| r.movements = vec![transfer(K::TransferIn), transfer(K::TransferIn)],
    ));
    rows.push(invalid(
        "count without expected_version",
        &["movements[0].expected_version"],
        only(pb::Movement {
            expected_version: None,
            ..count(3)
        }),
    ));
    rows.push(invalid(
        "receipt with expected_version",
        &["movements[0].expected_version"],
        m0(|m| m.expected_version = Some(0)),
    ));
    rows.push(invalid(
        "receipt with a malformed booking_id",
        &["movements[0].booking_id"],
        only(pb::Movement {
            booking_id: "bk\u{7}".into(),
            ..booked(1)
        }),
    ));
    rows.push(invalid(
        "pallets without booking_id",
        &["movements[0].pallets"],
        m0(|m| m.pallets = 3),
    ));
    rows.push(invalid(
        "negative pallets",
        &["movements[0].pallets"],
        only(booked(-1)),
    ));
    rows.push(invalid(
        "pallets of one booking beyond i32",
        &["movements[1].pallets"],
        |r: &mut Req| {
            r.movements = vec![
                booked(i32::MAX),
                pb::Movement {
                    lot: lot("L2", Some(jun30())),
                    ..booked(1)
                },
            ]
        },
    ));
    rows.push(invalid(
        "issue citing a booking",
        &["movements[0].booking_id"],
        only(pb::Movement {
            booking_id: "bk-1".into(),
            ..issue("SKU-A", "L1", CHILLED, 1)
        }),
    ));
    rows.push(invalid(
        "adjustment with pallets",
        &["movements[0].pallets"],
        only(pb::Movement {
            pallets: 1,
            ..adjustment(-1)
        }),
    ));
    rows.push(invalid(
        "receipt with order_id",
        &["movements[0].order_id"],
        m0(|m| m.order_id = "O-1".into()),
    ));
    rows.push(invalid(
        "issue with a malformed order_id",
        &["movements[0].order_id"],
        only(pb::Movement {
            order_id: " O-1".into(),
            ..issue("SKU-A", "L1", CHILLED, 1)
        }),
    ));
    rows.push(invalid(
        "every field at once",
        &[
            "request_id",
            "movements[0].sku",
            "movements[0].zone_id",
            "movements[0].unit",
            "movements[1].kind",
        ],
        |r: &mut Req| {
            let mut second = r.movements[0].clone();
            second.kind = 0;
            r.movements.push(second);
            r.request_id.clear();
            r.movements[0].sku.clear();
            r.movements[0].zone_id.clear();
            r.movements[0].unit.clear();
        },
    ));
    // Rules that need the site or the stored state.
    rows.push(invalid(
        "a unit other than the sku's",
        &["movements[0].unit"],
        m0(|m| m.unit = "g".into()),
    ));
    rows.push(invalid(
        "a new lot without expiry",
        &["movements[0].lot.expiry"],
        only(pb::Movement {
            lot: lot("L-NEW", None),
            ..receipt("SKU-A", "L-NEW", CHILLED, 5, jun30())
        }),
    ));
    rows.push(refused(
        "an unknown zone",
        Code::NotFound,
        m0(|m| m.zone_id = "mars-1".into()),
    ));
    rows.push(refused(
        "a transfer to an unknown site",
        Code::NotFound,
        only(pb::Movement {
            other_site_id: "xx-nowhere".into(),
            ..transfer(K::TransferOut)
        }),
    ));
    rows.push(refused(
        "an issue beyond what is available",
        Code::FailedPrecondition,
        only(issue("SKU-A", "L1", CHILLED, 101)),
    ));
    rows.push(refused(
        "a count on a stale version",
        Code::FailedPrecondition,
        only(pb::Movement {
            expected_version: Some(7),
            ..count(3)
        }),
    ));
    rows.push(refused(
        "a receipt into an expired lot",
        Code::FailedPrecondition,
        only(receipt("SKU-A", "L-OLD", CHILLED, 5, date(2026, 2, 1))),
    ));
    rows
}

#[tokio::test]
async fn record_movements_rules() {
    let (_h, mut c) = fixture().await;
    let before = ledger_len(&mut c).await;
    let base = batch("rm", vec![receipt("SKU-A", "L1", CHILLED, 5, jun30())]);
    check_writes(
        "RecordMovements",
        &base,
        record_movements_rows(),
        |r, id| r.request_id = id,
        |r| {
            let mut c = c.clone();
            async move { c.record_movements(r).await }
        },
    )
    .await;
    assert_eq!(
        ledger_len(&mut c).await,
        before,
        "a refused batch records nothing"
    );
    let entries = c
        .record_movements(base)
        .await
        .expect("the base batch, request_id unused")
        .into_inner();
    assert_eq!(entries.entries.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// GetStock

#[tokio::test]
async fn get_stock_rules() {
    type Req = pb::GetStockRequest;
    let (_h, c) = fixture().await;
    let base = Req {
        sku: "SKU-A".into(),
        lot_id: String::new(),
        zone_id: String::new(),
    };
    let mut rows: Vec<Row<Req>> = Vec::new();
    rows.extend(id_rows("sku", true, |r: &mut Req, v| r.sku = v));
    rows.extend(id_rows("lot_id", false, |r: &mut Req, v| r.lot_id = v));
    rows.extend(id_rows("zone_id", false, |r: &mut Req, v| r.zone_id = v));
    rows.push(invalid(
        "every field at once",
        &["sku", "lot_id", "zone_id"],
        |r: &mut Req| {
            r.sku.clear();
            r.lot_id = "\u{0}".into();
            r.zone_id = "z ".into();
        },
    ));
    rows.push(refused("an unknown sku", Code::NotFound, |r: &mut Req| {
        r.sku = "SKU-NONE".into()
    }));
    rows.push(refused("an unknown lot", Code::NotFound, |r: &mut Req| {
        r.lot_id = "L-NONE".into()
    }));
    rows.push(refused("an unknown zone", Code::NotFound, |r: &mut Req| {
        r.zone_id = "mars-1".into()
    }));
    let call = |r| {
        let mut c = c.clone();
        async move { c.get_stock(r).await }
    };
    call(base.clone()).await.expect("the base request is valid");
    check_table("GetStock", &base, rows, call).await;
}

// ---------------------------------------------------------------------------------------------
// ListStock

#[tokio::test]
async fn list_stock_rules() {
    type Req = pb::ListStockRequest;
    let (_h, mut c) = fixture().await;
    let base = Req {
        page_size: 1,
        ..Req::default()
    };
    let token = c
        .list_stock(base.clone())
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!token.is_empty());
    let other_query = c
        .list_stock(Req {
            sku: "SKU-A".into(),
            ..base.clone()
        })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!other_query.is_empty());
    c.list_stock(Req {
        page_token: token.clone(),
        ..base.clone()
    })
    .await
    .expect("the genuine token is accepted");

    let mut rows: Vec<Row<Req>> = Vec::new();
    rows.extend(id_rows("sku", false, |r: &mut Req, v| r.sku = v));
    rows.extend(id_rows("zone_id", false, |r: &mut Req, v| r.zone_id = v));
    rows.extend(id_rows("lot_id", false, |r: &mut Req, v| {
        r.sku = "SKU-A".into();
        r.lot_id = v
    }));
    rows.push(invalid("lot_id without sku", &["lot_id"], |r: &mut Req| {
        r.lot_id = "L1".into()
    }));
    for (name, (y, m, d)) in [
        ("month 13", (2026, 13, 1)),
        ("february 30", (2026, 2, 30)),
        ("day 0", (2026, 6, 0)),
        ("year 0", (0, 1, 1)),
        ("negative month", (2026, -1, 1)),
    ] {
        rows.push(invalid(
            format!("expiring_before {name}"),
            &["expiring_before"],
            move |r: &mut Req| r.expiring_before = Some(date(y, m, d)),
        ));
    }
    for size in [-1, i32::MIN] {
        rows.push(invalid(
            format!("page_size {size}"),
            &["page_size"],
            move |r: &mut Req| r.page_size = size,
        ));
    }
    let tampered = [
        ("not hex", "zz".to_string()),
        ("odd length", "abc".to_string()),
        ("upper-case hex", token.to_uppercase()),
        ("first digit flipped", flip(&token, 0)),
        ("middle digit flipped", flip(&token, token.len() / 2)),
        ("last digit flipped", flip(&token, token.len() - 1)),
        ("truncated", token[..token.len() - 2].to_string()),
        ("extended", format!("{token}00")),
        ("over 4 KiB", "ab".repeat(3000)),
        ("token of another query", other_query),
    ];
    for (name, value) in tampered {
        rows.push(invalid(
            format!("page_token {name}"),
            &["page_token"],
            move |r: &mut Req| r.page_token = value.clone(),
        ));
    }
    rows.push(invalid(
        "the genuine token with other filters",
        &["page_token"],
        move |r: &mut Req| {
            r.include_empty = true;
            r.page_token = token.clone();
        },
    ));
    rows.push(invalid(
        "every field at once",
        &["sku", "expiring_before", "page_size", "page_token"],
        |r: &mut Req| {
            r.sku = "\u{0}".into();
            r.expiring_before = Some(date(2026, 13, 1));
            r.page_size = -1;
            r.page_token = "zz".into();
        },
    ));
    rows.push(refused("an unknown zone", Code::NotFound, |r: &mut Req| {
        r.zone_id = "mars-1".into()
    }));
    check_table("ListStock", &base, rows, |r| {
        let mut c = c.clone();
        async move { c.list_stock(r).await }
    })
    .await;
    // Sizes above the maximum are clamped, not refused.
    c.list_stock(Req {
        page_size: i32::MAX,
        ..Req::default()
    })
    .await
    .expect("clamped");
}

// ---------------------------------------------------------------------------------------------
// AllocateStock

#[tokio::test]
async fn allocate_stock_rules() {
    type Req = pb::AllocateStockRequest;
    let (_h, mut c) = fixture().await;
    let before = ledger_len(&mut c).await;
    let base = Req {
        request_id: "al".into(),
        order_id: "O-1".into(),
        sku: "SKU-A".into(),
        quantity: 5,
        unit: String::new(),
        zone_id: String::new(),
        strategy: 0,
        actor: Default::default(),
    };
    let mut rows: Vec<Row<Req>> = Vec::new();
    rows.extend(id_rows("request_id", true, |r: &mut Req, v| {
        r.request_id = v
    }));
    rows.extend(id_rows("order_id", true, |r: &mut Req, v| r.order_id = v));
    rows.extend(id_rows("sku", true, |r: &mut Req, v| r.sku = v));
    rows.extend(id_rows("zone_id", false, |r: &mut Req, v| r.zone_id = v));
    for quantity in [0, -1, i64::MIN] {
        rows.push(invalid(
            format!("quantity {quantity}"),
            &["quantity"],
            move |r: &mut Req| r.quantity = quantity,
        ));
    }
    for (name, unit) in [
        ("17 bytes", "kilogram-per-unit"),
        ("a space", "case 12"),
        ("a control character", "kg\u{1}"),
    ] {
        rows.push(invalid(
            format!("unit {name}"),
            &["unit"],
            move |r: &mut Req| r.unit = unit.into(),
        ));
    }
    rows.push(invalid(
        "a unit other than the sku's",
        &["unit"],
        |r: &mut Req| r.unit = "g".into(),
    ));
    for strategy in [-1, 3, 999] {
        rows.push(invalid(
            format!("strategy {strategy}"),
            &["strategy"],
            move |r: &mut Req| r.strategy = strategy,
        ));
    }
    rows.push(invalid(
        "every field at once",
        &["request_id", "order_id", "sku", "quantity", "strategy"],
        |r: &mut Req| {
            r.request_id.clear();
            r.order_id.clear();
            r.sku.clear();
            r.quantity = 0;
            r.strategy = 9;
        },
    ));
    rows.push(refused("an unknown zone", Code::NotFound, |r: &mut Req| {
        r.zone_id = "mars-1".into()
    }));
    rows.push(refused("an unknown sku", Code::NotFound, |r: &mut Req| {
        r.sku = "SKU-NONE".into()
    }));
    rows.push(refused(
        "more than is allocatable",
        Code::FailedPrecondition,
        |r: &mut Req| r.quantity = 151,
    ));
    check_writes(
        "AllocateStock",
        &base,
        rows,
        |r, id| r.request_id = id,
        |r| {
            let mut c = c.clone();
            async move { c.allocate_stock(r).await }
        },
    )
    .await;
    assert_eq!(
        ledger_len(&mut c).await,
        before,
        "a refused allocation records nothing"
    );
    c.allocate_stock(base)
        .await
        .expect("the base request, request_id unused");
}

// ---------------------------------------------------------------------------------------------
// ReleaseAllocation

#[tokio::test]
async fn release_allocation_rules() {
    type Req = pb::ReleaseAllocationRequest;
    let (_h, mut c) = fixture().await;
    let allocation = c
        .allocate_stock(pb::AllocateStockRequest {
            request_id: "al-1".into(),
            order_id: "O-1".into(),
            sku: "SKU-A".into(),
            quantity: 5,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let before = ledger_len(&mut c).await;
    let base = Req {
        request_id: "ra".into(),
        order_id: "O-1".into(),
        allocation_id: String::new(),
        actor: Default::default(),
    };
    let mut rows: Vec<Row<Req>> = Vec::new();
    rows.extend(id_rows("request_id", true, |r: &mut Req, v| {
        r.request_id = v
    }));
    rows.extend(id_rows("order_id", true, |r: &mut Req, v| r.order_id = v));
    rows.extend(id_rows("allocation_id", false, |r: &mut Req, v| {
        r.allocation_id = v
    }));
    rows.push(refused(
        "an unknown order",
        Code::NotFound,
        |r: &mut Req| r.order_id = "O-404".into(),
    ));
    rows.push(refused(
        "an unknown allocation",
        Code::NotFound,
        |r: &mut Req| r.allocation_id = "A-404".into(),
    ));
    check_writes(
        "ReleaseAllocation",
        &base,
        rows,
        |r, id| r.request_id = id,
        |r| {
            let mut c = c.clone();
            async move { c.release_allocation(r).await }
        },
    )
    .await;
    assert_eq!(
        ledger_len(&mut c).await,
        before,
        "a refused release records nothing"
    );
    let released = c
        .release_allocation(base)
        .await
        .expect("the base request, request_id unused")
        .into_inner();
    assert_eq!(released.released[0].allocation_id, allocation.allocation_id);
}

// ---------------------------------------------------------------------------------------------
// PlaceHold

#[tokio::test]
async fn place_hold_rules() {
    type Req = pb::PlaceHoldRequest;
    let (_h, mut c) = fixture().await;
    let before = ledger_len(&mut c).await;
    let base = Req {
        request_id: "ph".into(),
        zone_id: String::new(),
        sku: "SKU-A".into(),
        lot_id: String::new(),
        reason: "qa sample".into(),
        reference: None,
        actor: Default::default(),
        allow_relocation: false,
    };
    let mut rows: Vec<Row<Req>> = Vec::new();
    rows.extend(id_rows("request_id", true, |r: &mut Req, v| {
        r.request_id = v
    }));
    rows.extend(id_rows("zone_id", false, |r: &mut Req, v| r.zone_id = v));
    rows.extend(id_rows("sku", false, |r: &mut Req, v| r.sku = v));
    rows.extend(id_rows("lot_id", false, |r: &mut Req, v| r.lot_id = v));
    rows.push(invalid("no scope", &["zone_id"], |r: &mut Req| {
        r.sku.clear()
    }));
    rows.push(invalid("lot_id without sku", &["sku"], |r: &mut Req| {
        r.sku.clear();
        r.lot_id = "L1".into();
    }));
    for (name, reason) in [
        ("empty", String::new()),
        ("blank", "   ".to_string()),
        ("over 512 bytes", over_bytes(512)),
        ("with a control character", "qa\u{7}".to_string()),
    ] {
        rows.push(invalid(
            format!("reason {name}"),
            &["reason"],
            move |r: &mut Req| r.reason = reason.clone(),
        ));
    }
    for kind in [0, 999] {
        rows.push(invalid(
            format!("reference kind {kind}"),
            &["reference.kind"],
            move |r: &mut Req| {
                r.reference = Some(cpb::Reference {
                    kind,
                    id: "ALM-1".into(),
                })
            },
        ));
    }
    rows.extend(id_rows("reference.id", true, |r: &mut Req, v| {
        r.reference = Some(cpb::Reference { kind: 4, id: v })
    }));
    rows.push(refused("an unknown zone", Code::NotFound, |r: &mut Req| {
        r.zone_id = "mars-1".into()
    }));
    rows.push(refused("an unknown sku", Code::NotFound, |r: &mut Req| {
        r.sku = "SKU-NONE".into()
    }));
    rows.push(refused("an unknown lot", Code::NotFound, |r: &mut Req| {
        r.lot_id = "L-NONE".into()
    }));
    check_writes(
        "PlaceHold",
        &base,
        rows,
        |r, id| r.request_id = id,
        |r| {
            let mut c = c.clone();
            async move { c.place_hold(r).await }
        },
    )
    .await;
    assert_eq!(
        ledger_len(&mut c).await,
        before,
        "a refused hold records nothing"
    );
    assert_eq!(level(&mut c, "SKU-A", "L1", CHILLED).await.held, 0);
    c.place_hold(base)
        .await
        .expect("the base request, request_id unused");
}

// ---------------------------------------------------------------------------------------------
// ReleaseHold

#[tokio::test]
async fn release_hold_rules() {
    type Req = pb::ReleaseHoldRequest;
    let (_h, mut c) = fixture().await;
    let hold = c
        .place_hold(pb::PlaceHoldRequest {
            request_id: "ph-1".into(),
            sku: "SKU-A".into(),
            reason: "qa sample".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let before = ledger_len(&mut c).await;
    let base = Req {
        request_id: "rh".into(),
        hold_id: hold.hold_id.clone(),
        reason: "qa passed".into(),
        actor: Default::default(),
    };
    let mut rows: Vec<Row<Req>> = Vec::new();
    rows.extend(id_rows("request_id", true, |r: &mut Req, v| {
        r.request_id = v
    }));
    rows.extend(id_rows("hold_id", true, |r: &mut Req, v| r.hold_id = v));
    for (name, reason) in [
        ("empty", String::new()),
        ("blank", " ".to_string()),
        ("over 512 bytes", over_bytes(512)),
        ("with a control character", "ok\u{0}".to_string()),
    ] {
        rows.push(invalid(
            format!("reason {name}"),
            &["reason"],
            move |r: &mut Req| r.reason = reason.clone(),
        ));
    }
    rows.push(refused("an unknown hold", Code::NotFound, |r: &mut Req| {
        r.hold_id = "H-404".into()
    }));
    check_writes(
        "ReleaseHold",
        &base,
        rows,
        |r, id| r.request_id = id,
        |r| {
            let mut c = c.clone();
            async move { c.release_hold(r).await }
        },
    )
    .await;
    assert_eq!(
        ledger_len(&mut c).await,
        before,
        "a refused release records nothing"
    );
    assert_eq!(
        level(&mut c, "SKU-A", "L1", CHILLED).await.available,
        0,
        "still held"
    );
    c.release_hold(base.clone())
        .await
        .expect("the base request, request_id unused");
    let again = c
        .release_hold(Req {
            request_id: "rh-2".into(),
            ..base
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
}
