//! The inventory service through its generated client, against real tonic servers on
//! 127.0.0.1:0 over temporary data dirs: every unary RPC, every error the issue names and
//! idempotency (the change feed, concurrency, restart and the booking check-in are in
//! `feed.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use coldchain_proto::common::v1 as cpb;
use coldchain_proto::inventory::v1 as pb;
use common::*;
use tonic::Code;

const L_JUN: &str = "L-2026-06";

fn jun30() -> cpb::Date {
    date(2026, 6, 30)
}

// ---------------------------------------------------------------------------------------------
// RecordMovements and GetStock

#[tokio::test]
async fn receipts_and_issues_move_stock_and_append_the_ledger() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    let entries = record(
        &mut c,
        "r-1",
        vec![receipt("SKU-A", L_JUN, CHILLED, 100, jun30())],
    )
    .await
    .unwrap();
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(
        (e.sequence, e.delta, e.balance_after, e.version),
        (1, 100, 100, 1)
    );
    assert_eq!(e.kind, pb::LedgerEntryKind::Receipt as i32);
    assert_eq!(e.request_id, "r-1");
    assert_eq!(e.unit, "kg");
    assert_eq!(e.lot.as_ref().unwrap().expiry, Some(jun30()));
    assert!(e.recorded_at.is_some());

    let entries = record(
        &mut c,
        "r-2",
        vec![
            issue("SKU-A", L_JUN, CHILLED, 30),
            issue("SKU-A", L_JUN, CHILLED, 20),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        entries
            .iter()
            .map(|e| (e.sequence, e.delta, e.balance_after, e.version))
            .collect::<Vec<_>>(),
        vec![(2, -30, 70, 2), (3, -20, 50, 3)],
        "a later movement sees the earlier one"
    );
    let response = stock(&mut c, "SKU-A", "", "").await.unwrap();
    assert_eq!(response.unit, "kg");
    let l = &response.levels[0];
    assert_eq!(
        (l.on_hand, l.allocated, l.held, l.available, l.version),
        (50, 0, 0, 50, 3)
    );
    assert!(!l.expired);
    assert_eq!(
        l.first_received_at.as_ref().unwrap().seconds,
        START_MS / 1000
    );
    let totals = response.totals.unwrap();
    assert_eq!((totals.on_hand, totals.available), (50, 50));

    // The unit is fixed by the first receipt.
    let mut grams = receipt("SKU-A", L_JUN, CHILLED, 5, jun30());
    grams.unit = "g".into();
    let status = record(&mut c, "r-3", vec![grams]).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(fields(&status), ["movements[0].unit"]);
    assert!(status.message().contains("\"kg\""), "{}", status.message());

    // GetStock: unknown sku and unknown zone are NOT_FOUND; a bad sku is INVALID_ARGUMENT.
    assert_eq!(
        stock(&mut c, "SKU-NONE", "", "").await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        stock(&mut c, "SKU-A", "L-NONE", "")
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        stock(&mut c, "SKU-A", "", "mars-1")
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let status = stock(&mut c, " padded", "", "").await.unwrap_err();
    assert_eq!(fields(&status), ["sku"]);
}

#[tokio::test]
async fn malformed_movements_report_every_field_and_change_nothing() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    let mut no_kind = receipt("SKU-A", "L1", CHILLED, 1, jun30());
    no_kind.kind = 0;
    let mut receipt_with_transfer = receipt("SKU-A", "L1", CHILLED, 0, jun30());
    receipt_with_transfer.transfer_id = "T-1".into();
    let adjustment_without_reason =
        movement(pb::MovementKind::Adjustment, "SKU-A", "L1", CHILLED, -1);
    let count_without_version = movement(pb::MovementKind::Count, "SKU-A", "L1", CHILLED, 3);
    let mut bad_dates = receipt("SKU-A", "L1", CHILLED, 1, date(2026, 2, 30));
    bad_dates.lot.as_mut().unwrap().production = Some(date(2026, 1, 1));
    let mut production_after_expiry = receipt("SKU-A", "L1", CHILLED, 1, jun30());
    production_after_expiry.lot.as_mut().unwrap().production = Some(date(2026, 7, 1));
    let mut no_lot = issue("SKU-A", "L1", CHILLED, 1);
    no_lot.lot = None;
    let mut issue_with_booking = issue("SKU-A", "L1", CHILLED, 1);
    issue_with_booking.booking_id = "bk-1".into();
    let mut bad_reference = issue("SKU-A", "L1", CHILLED, 1);
    bad_reference.reference = Some(cpb::Reference {
        kind: 0,
        id: String::new(),
    });
    let mut transfer_home = movement(pb::MovementKind::TransferOut, "SKU-A", "L1", CHILLED, 1);
    transfer_home.other_site_id = SITE.into();
    let status = record(
        &mut c,
        "",
        vec![
            no_kind,
            receipt_with_transfer,
            adjustment_without_reason,
            count_without_version,
            bad_dates,
            production_after_expiry,
            no_lot,
            issue_with_booking,
            bad_reference,
            transfer_home,
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields = fields(&status);
    for expected in [
        "request_id",
        "movements[0].kind",
        "movements[1].quantity",
        "movements[1].transfer_id",
        "movements[2].reason",
        "movements[3].expected_version",
        "movements[4].lot.expiry",
        "movements[5].lot.production",
        "movements[6].lot.lot_id",
        "movements[7].booking_id",
        "movements[8].reference.kind",
        "movements[8].reference.id",
        "movements[9].other_site_id",
        "movements[9].transfer_id",
    ] {
        assert!(
            fields.iter().any(|f| f == expected),
            "{expected} missing from {fields:?}"
        );
    }
    let status = record(&mut c, "r-empty", vec![]).await.unwrap_err();
    assert_eq!(common::fields(&status), ["movements"]);
    let too_many = (0..1001)
        .map(|_| receipt("SKU-A", "L1", CHILLED, 1, jun30()))
        .collect();
    let status = record(&mut c, "r-many", too_many).await.unwrap_err();
    assert_eq!(common::fields(&status), ["movements"]);
    assert!(ledger(&mut c, 1).await.is_empty(), "nothing was recorded");
}

#[tokio::test]
async fn a_refused_movement_rejects_the_whole_batch() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    record(
        &mut c,
        "r-1",
        vec![receipt("SKU-A", L_JUN, CHILLED, 100, jun30())],
    )
    .await
    .unwrap();
    let status = record(
        &mut c,
        "r-2",
        vec![
            receipt("SKU-A", "L-NEW", CHILLED, 10, jun30()),
            issue("SKU-A", L_JUN, CHILLED, 60),
            issue("SKU-A", L_JUN, CHILLED, 41),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let message = status.message();
    for needle in [
        "movements[2]",
        "SKU-A",
        L_JUN,
        CHILLED,
        "available 40",
        "requested 41",
    ] {
        assert!(message.contains(needle), "{needle:?} not in {message}");
    }
    let details = preconditions(&status);
    assert_eq!(details[0].0, "STOCK");
    assert!(details[0].1.contains(L_JUN) && details[0].1.contains(CHILLED));
    // Nothing of the batch happened: no new lot, no issue, no ledger entry.
    assert_eq!(
        stock(&mut c, "SKU-A", "L-NEW", "")
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(level(&mut c, "SKU-A", L_JUN, CHILLED).await.on_hand, 100);
    assert_eq!(ledger(&mut c, 1).await.len(), 1);
}

#[tokio::test]
async fn unknown_things_are_not_found() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    record(
        &mut c,
        "r-1",
        vec![receipt("SKU-A", L_JUN, CHILLED, 10, jun30())],
    )
    .await
    .unwrap();
    let cases = vec![
        (
            "unknown zone",
            receipt("SKU-A", L_JUN, "mars-1", 1, jun30()),
        ),
        ("unknown sku", issue("SKU-X", L_JUN, CHILLED, 1)),
        ("unknown lot", issue("SKU-A", "L-X", CHILLED, 1)),
        ("no position in that zone", issue("SKU-A", L_JUN, FROZEN, 1)),
        (
            "adjustment of an unknown lot",
            pb::Movement {
                reason: "found".into(),
                ..movement(pb::MovementKind::Adjustment, "SKU-A", "L-X", CHILLED, 1)
            },
        ),
        (
            "transfer to an unknown site",
            pb::Movement {
                other_site_id: "xx-atlantis".into(),
                transfer_id: "T-1".into(),
                ..movement(pb::MovementKind::TransferOut, "SKU-A", L_JUN, CHILLED, 1)
            },
        ),
    ];
    for (i, (what, m)) in cases.into_iter().enumerate() {
        let status = record(&mut c, &format!("nf-{i}"), vec![m])
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{what}: {status:?}");
    }
    // Adjustments and counts may open a new position of a known lot (found stock).
    let found = pb::Movement {
        reason: "found behind the racks".into(),
        ..movement(pb::MovementKind::Adjustment, "SKU-A", L_JUN, FROZEN, 4)
    };
    record(&mut c, "adj-new-position", vec![found])
        .await
        .unwrap();
    assert_eq!(level(&mut c, "SKU-A", L_JUN, FROZEN).await.on_hand, 4);
}

#[tokio::test]
async fn expired_lots_cannot_be_received() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    // Today at the park is 2026-03-01: a lot that expired yesterday is refused...
    let status = record(
        &mut c,
        "r-old",
        vec![receipt("SKU-A", "L-OLD", CHILLED, 5, date(2026, 2, 28))],
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("expired"), "{}", status.message());
    assert_eq!(preconditions(&status)[0].0, "EXPIRY");
    // ...one that expires today is still usable.
    record(
        &mut c,
        "r-today",
        vec![receipt("SKU-A", "L-TODAY", CHILLED, 5, date(2026, 3, 1))],
    )
    .await
    .unwrap();
    assert!(!level(&mut c, "SKU-A", "L-TODAY", CHILLED).await.expired);
    // The next day it is expired: flagged, and no more receipts or transfers in.
    h.advance_days(1);
    assert!(level(&mut c, "SKU-A", "L-TODAY", CHILLED).await.expired);
    let status = record(
        &mut c,
        "r-again",
        vec![receipt("SKU-A", "L-TODAY", CHILLED, 1, date(2026, 3, 1))],
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let transfer_in = pb::Movement {
        other_site_id: "la-vientiane".into(),
        transfer_id: "T-9".into(),
        ..movement(pb::MovementKind::TransferIn, "SKU-A", "L-TODAY", CHILLED, 1)
    };
    let status = record(&mut c, "r-transfer", vec![transfer_in])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    // Expired stock can still be issued (written off, shipped back).
    record(
        &mut c,
        "r-issue",
        vec![issue("SKU-A", "L-TODAY", CHILLED, 5)],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn lot_attributes_are_fixed_by_the_first_receipt() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    let mut first = receipt("SKU-A", "L1", CHILLED, 5, jun30());
    first.lot.as_mut().unwrap().origin = "Qianyang, Hunan".into();
    first.lot.as_mut().unwrap().production = Some(date(2026, 2, 20));
    let entries = record(&mut c, "r-1", vec![first]).await.unwrap();
    assert_eq!(entries[0].lot.as_ref().unwrap().origin, "Qianyang, Hunan");
    // Later movements may omit the attributes; the ledger carries the stored ones.
    let entries = record(
        &mut c,
        "r-2",
        vec![movement(
            pb::MovementKind::Receipt,
            "SKU-A",
            "L1",
            FROZEN,
            2,
        )],
    )
    .await
    .unwrap();
    let lot = entries[0].lot.clone().unwrap();
    assert_eq!(
        (lot.expiry, lot.production),
        (Some(jun30()), Some(date(2026, 2, 20)))
    );
    // Stating different ones is FAILED_PRECONDITION.
    let status = record(
        &mut c,
        "r-3",
        vec![receipt("SKU-A", "L1", CHILLED, 1, date(2026, 7, 1))],
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("expiry"), "{}", status.message());
    let mut other_origin = issue("SKU-A", "L1", CHILLED, 1);
    other_origin.lot.as_mut().unwrap().origin = "Hanoi".into();
    assert_eq!(
        record(&mut c, "r-4", vec![other_origin])
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );
    // The first receipt of a lot needs its expiry.
    let status = record(
        &mut c,
        "r-5",
        vec![movement(
            pb::MovementKind::Receipt,
            "SKU-A",
            "L2",
            CHILLED,
            1,
        )],
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(fields(&status), ["movements[0].lot.expiry"]);
}

#[tokio::test]
async fn adjustments_and_counts() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    record(
        &mut c,
        "r-1",
        vec![receipt("SKU-A", "L1", CHILLED, 50, jun30())],
    )
    .await
    .unwrap();
    let adjust = |q: i64| pb::Movement {
        reason: "damaged".into(),
        ..movement(pb::MovementKind::Adjustment, "SKU-A", "L1", CHILLED, q)
    };
    let entries = record(&mut c, "a-1", vec![adjust(-8)]).await.unwrap();
    assert_eq!(
        (
            entries[0].delta,
            entries[0].balance_after,
            entries[0].reason.as_str()
        ),
        (-8, 42, "damaged")
    );
    let status = record(&mut c, "a-2", vec![adjust(-43)]).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("negative"),
        "{}",
        status.message()
    );

    let version = level(&mut c, "SKU-A", "L1", CHILLED).await.version;
    assert_eq!(version, 2);
    let count = |q: i64, expected: u64| pb::Movement {
        expected_version: Some(expected),
        ..movement(pb::MovementKind::Count, "SKU-A", "L1", CHILLED, q)
    };
    let status = record(&mut c, "c-stale", vec![count(40, 1)])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("current version is 2"),
        "{}",
        status.message()
    );
    assert_eq!(preconditions(&status)[0].0, "VERSION");
    let entries = record(&mut c, "c-1", vec![count(40, 2)]).await.unwrap();
    assert_eq!(
        (
            entries[0].delta,
            entries[0].balance_after,
            entries[0].version
        ),
        (-2, 40, 3)
    );
    let entries = record(&mut c, "c-2", vec![count(40, 3)]).await.unwrap();
    assert_eq!(
        (entries[0].delta, entries[0].version),
        (0, 4),
        "a count that changes nothing is still a movement"
    );
    // A count of a position that never had stock states version 0.
    let new_position = pb::Movement {
        expected_version: Some(0),
        ..movement(pb::MovementKind::Count, "SKU-A", "L1", PHARMA, 7)
    };
    let entries = record(&mut c, "c-3", vec![new_position]).await.unwrap();
    assert_eq!((entries[0].delta, entries[0].version), (7, 1));
    // Overflow is refused, never a panic.
    let status = record(&mut c, "a-big", vec![adjust(i64::MAX)])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    // Neither adjustments nor counts take on hand below what is allocated.
    c.allocate_stock(pb::AllocateStockRequest {
        request_id: "alloc-30".into(),
        order_id: "O-1".into(),
        sku: "SKU-A".into(),
        quantity: 30,
        zone_id: CHILLED.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let status = record(&mut c, "a-below", vec![adjust(-11)])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("below the allocated 30"),
        "{}",
        status.message()
    );
    let version = level(&mut c, "SKU-A", "L1", CHILLED).await.version;
    let status = record(&mut c, "c-below", vec![count(29, version)])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    record(&mut c, "c-30", vec![count(30, version)])
        .await
        .unwrap();
}

/// Answers are kept by reference to their ledger entries (issue 27): a replay reads them
/// back and answers byte for byte what the first call answered, for a batch of the largest
/// size, and for an answer citing an entry of another call (a TRANSFER_IN received before),
/// with other writes in between.
#[tokio::test]
async fn replays_answer_the_first_answers_bytes() {
    use prost::Message;
    let h = Harness::start().await;
    let mut c = h.client().await;
    let transfer_in = pb::Movement {
        other_site_id: "la-vientiane".into(),
        transfer_id: "T-9".into(),
        lot: lot("L-T", Some(date(2026, 4, 1))),
        ..movement(pb::MovementKind::TransferIn, "BANANA", "L-T", "cool-a", 40)
    };
    record(&mut c, "t-in-first", vec![transfer_in.clone()])
        .await
        .unwrap();
    let mut movements: Vec<pb::Movement> = (0..999)
        .map(|i| receipt(&format!("SKU-{i}"), "L1", CHILLED, i + 1, jun30()))
        .collect();
    movements.insert(500, transfer_in);
    let request = batch("big", movements);
    let first = c
        .record_movements(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.entries.len(), 1000);
    assert_eq!(
        first.entries[500].request_id, "t-in-first",
        "the earlier entry"
    );
    record(&mut c, "between", vec![issue("SKU-3", "L1", CHILLED, 1)])
        .await
        .unwrap();
    for _ in 0..2 {
        let again = c
            .record_movements(request.clone())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(again.encode_to_vec(), first.encode_to_vec());
    }
    assert_eq!(
        level(&mut c, "SKU-7", "L1", CHILLED).await.on_hand,
        8,
        "applied once"
    );
}

#[tokio::test]
async fn transfers_in_are_received_once() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    let transfer_in = |q: i64| pb::Movement {
        other_site_id: "la-vientiane".into(),
        transfer_id: "T-100".into(),
        lot: lot("L-BAN", Some(date(2026, 4, 1))),
        ..movement(pb::MovementKind::TransferIn, "BANANA", "L-BAN", "cool-a", q)
    };
    let first = record(&mut c, "t-in-1", vec![transfer_in(300)])
        .await
        .unwrap();
    assert_eq!(
        (
            first[0].sequence,
            first[0].delta,
            first[0].transfer_id.as_str()
        ),
        (1, 300, "T-100")
    );
    assert_eq!(first[0].other_site_id, "la-vientiane");
    // The gateway's saga retries with another request id: nothing is received twice.
    let again = record(&mut c, "t-in-2", vec![transfer_in(300)])
        .await
        .unwrap();
    assert_eq!(
        again, first,
        "the original entry, with its request_id and sequence"
    );
    assert_eq!(
        level(&mut c, "BANANA", "L-BAN", "cool-a").await.on_hand,
        300
    );
    assert_eq!(ledger(&mut c, 1).await.len(), 1);
    // Two lines of one transfer, sku and lot in one batch are refused.
    let status = record(&mut c, "t-in-3", vec![transfer_in(1), transfer_in(2)])
        .await
        .unwrap_err();
    assert_eq!(fields(&status), ["movements[1].transfer_id"]);
    // Transfer out.
    let out = pb::Movement {
        other_site_id: "th-bangkok".into(),
        transfer_id: "T-200".into(),
        ..movement(
            pb::MovementKind::TransferOut,
            "BANANA",
            "L-BAN",
            "cool-a",
            120,
        )
    };
    let entries = record(&mut c, "t-out", vec![out.clone()]).await.unwrap();
    assert_eq!((entries[0].delta, entries[0].balance_after), (-120, 180));
    let too_much = pb::Movement {
        quantity: 181,
        ..out
    };
    assert_eq!(
        record(&mut c, "t-out-2", vec![too_much])
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );
}

#[tokio::test]
async fn retries_replay_and_reused_request_ids_are_refused() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    let movements = vec![
        receipt("SKU-A", "L1", CHILLED, 10, jun30()),
        issue("SKU-A", "L1", CHILLED, 3),
    ];
    let first = record(&mut c, "same", movements.clone()).await.unwrap();
    let second = record(&mut c, "same", movements).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(
        level(&mut c, "SKU-A", "L1", CHILLED).await.on_hand,
        7,
        "applied once"
    );
    assert_eq!(ledger(&mut c, 1).await.len(), 2);
    let status = record(&mut c, "same", vec![issue("SKU-A", "L1", CHILLED, 1)])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(fields(&status), ["request_id"]);

    // The same rules for the other mutating RPCs; ids are per method.
    let allocate = pb::AllocateStockRequest {
        request_id: "same".into(),
        order_id: "O-1".into(),
        sku: "SKU-A".into(),
        quantity: 2,
        ..Default::default()
    };
    assert_eq!(
        c.allocate_stock(allocate.clone()).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let allocate = pb::AllocateStockRequest {
        request_id: "alloc-1".into(),
        ..allocate
    };
    let a1 = c
        .allocate_stock(allocate.clone())
        .await
        .unwrap()
        .into_inner();
    let a2 = c
        .allocate_stock(allocate.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a1, a2);
    assert_eq!(level(&mut c, "SKU-A", "L1", CHILLED).await.allocated, 2);
    let other = pb::AllocateStockRequest {
        quantity: 3,
        ..allocate
    };
    assert_eq!(
        c.allocate_stock(other).await.unwrap_err().code(),
        Code::InvalidArgument
    );
}

// ---------------------------------------------------------------------------------------------
// Allocation

/// Lots of SKU-F: L-MAY (received second), L-JUN (received first), L-APR held by a lot
/// hold, L-MAR expired; 40 of each, L-MAY split over two zones.
fn picks(allocation: &pb::Allocation) -> Vec<(String, String, i64)> {
    allocation
        .picks
        .iter()
        .map(|p| (p.lot_id.clone(), p.zone_id.clone(), p.quantity))
        .collect()
}

#[tokio::test]
async fn fefo_and_fifo_skip_held_and_expired_stock() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    allocation_fixture(&h, &mut c).await;

    // FEFO (the default): L-MAY in both zones, then L-JUN; never L-APR (held) or L-MAR
    // (expired).
    let a = c
        .allocate_stock(allocate(
            "a-1",
            "O-1",
            50,
            pb::AllocationStrategy::Unspecified,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        picks(&a),
        vec![
            ("L-MAY".into(), CHILLED.into(), 20),
            ("L-MAY".into(), FROZEN.into(), 20),
            ("L-JUN".into(), CHILLED.into(), 10),
        ]
    );
    assert_eq!(a.strategy, pb::AllocationStrategy::Fefo as i32);
    assert_eq!(
        (a.quantity, a.state, a.unit.as_str()),
        (50, pb::AllocationState::Active as i32, "kg")
    );
    assert!(a.allocation_id.starts_with("alloc-"));
    assert_eq!(a.picks[0].expiry, Some(date(2026, 5, 1)));
    let jun = level(&mut c, "SKU-F", "L-JUN", CHILLED).await;
    assert_eq!((jun.on_hand, jun.allocated, jun.available), (40, 10, 30));
    assert_eq!(jun.version, 1, "allocations do not change the version");

    // Not enough: FAILED_PRECONDITION with what could have been allocated; nothing reserved.
    let status = c
        .allocate_stock(allocate("a-2", "O-2", 31, pb::AllocationStrategy::Fefo))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status
            .message()
            .contains("only 30 could have been allocated"),
        "{}",
        status.message()
    );
    assert_eq!(level(&mut c, "SKU-F", "L-JUN", CHILLED).await.allocated, 10);

    // FIFO: earliest first receipt first (L-JUN was received first).
    let a = c
        .allocate_stock(allocate("a-3", "O-3", 5, pb::AllocationStrategy::Fifo))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(picks(&a), vec![("L-JUN".into(), CHILLED.into(), 5)]);

    // Zone restriction, unit guard, unknowns, validation.
    let mut frozen_only = allocate("a-4", "O-4", 1, pb::AllocationStrategy::Fefo);
    frozen_only.zone_id = FROZEN.into();
    assert_eq!(
        c.allocate_stock(frozen_only).await.unwrap_err().code(),
        Code::FailedPrecondition,
        "L-MAY in frozen-a is all allocated"
    );
    let mut grams = allocate("a-5", "O-5", 1, pb::AllocationStrategy::Fefo);
    grams.unit = "g".into();
    let status = c.allocate_stock(grams).await.unwrap_err();
    assert_eq!(fields(&status), ["unit"]);
    let mut unknown = allocate("a-6", "O-6", 1, pb::AllocationStrategy::Fefo);
    unknown.sku = "SKU-NONE".into();
    assert_eq!(
        c.allocate_stock(unknown).await.unwrap_err().code(),
        Code::NotFound
    );
    let mut mars = allocate("a-7", "O-7", 1, pb::AllocationStrategy::Fefo);
    mars.zone_id = "mars-1".into();
    assert_eq!(
        c.allocate_stock(mars).await.unwrap_err().code(),
        Code::NotFound
    );
    let mut bad = allocate("", "", 0, pb::AllocationStrategy::Fefo);
    bad.strategy = 9;
    let status = c.allocate_stock(bad).await.unwrap_err();
    assert_eq!(
        fields(&status),
        ["request_id", "order_id", "quantity", "strategy"]
    );

    // The ledger has one ALLOCATE entry per pick.
    let allocations: Vec<_> = ledger(&mut c, 1)
        .await
        .into_iter()
        .filter(|e| e.kind == pb::LedgerEntryKind::Allocate as i32)
        .map(|e| {
            (
                e.lot.unwrap().lot_id,
                e.allocated_delta,
                e.delta,
                e.order_id,
            )
        })
        .collect();
    assert_eq!(allocations.len(), 4);
    assert_eq!(
        allocations[0],
        ("L-MAY".to_string(), 20, 0, "O-1".to_string())
    );
}

#[tokio::test]
async fn issues_consume_allocations_and_releases_free_them() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    record(
        &mut c,
        "r-1",
        vec![receipt("SKU-F", "L1", CHILLED, 50, jun30())],
    )
    .await
    .unwrap();
    let a = c
        .allocate_stock(allocate("a-1", "O-1", 40, pb::AllocationStrategy::Fefo))
        .await
        .unwrap()
        .into_inner();
    // Without the order only 10 are available; citing it, its 40 come first.
    let status = record(&mut c, "i-0", vec![issue("SKU-F", "L1", CHILLED, 25)])
        .await
        .unwrap_err();
    assert!(
        status.message().contains("available 10"),
        "{}",
        status.message()
    );
    let with_order = |q: i64| pb::Movement {
        order_id: "O-1".into(),
        ..issue("SKU-F", "L1", CHILLED, q)
    };
    let entries = record(&mut c, "i-1", vec![with_order(25)]).await.unwrap();
    assert_eq!(
        (
            entries[0].delta,
            entries[0].allocated_delta,
            entries[0].order_id.as_str()
        ),
        (-25, -25, "O-1")
    );
    let l = level(&mut c, "SKU-F", "L1", CHILLED).await;
    assert_eq!((l.on_hand, l.allocated, l.available), (25, 15, 10));
    // 20 more: 15 from the allocation (now consumed) and 5 available.
    let entries = record(&mut c, "i-2", vec![with_order(20)]).await.unwrap();
    assert_eq!(entries[0].allocated_delta, -15);
    let status = c
        .release_allocation(pb::ReleaseAllocationRequest {
            request_id: "rel-consumed".into(),
            order_id: "O-1".into(),
            allocation_id: a.allocation_id.clone(),
            actor: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("consumed"),
        "{}",
        status.message()
    );

    // Release: the unconsumed remainder goes back to available.
    let b = c
        .allocate_stock(allocate("a-2", "O-2", 4, pb::AllocationStrategy::Fefo))
        .await
        .unwrap()
        .into_inner();
    record(
        &mut c,
        "i-3",
        vec![pb::Movement {
            order_id: "O-2".into(),
            ..issue("SKU-F", "L1", CHILLED, 1)
        }],
    )
    .await
    .unwrap();
    let released = c
        .release_allocation(pb::ReleaseAllocationRequest {
            request_id: "rel-1".into(),
            order_id: "O-2".into(),
            allocation_id: String::new(),
            actor: Default::default(),
        })
        .await
        .unwrap()
        .into_inner()
        .released;
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].allocation_id, b.allocation_id);
    assert_eq!(released[0].state, pb::AllocationState::Released as i32);
    assert_eq!(released[0].picks[0].consumed_quantity, 1);
    assert!(released[0].closed_at.is_some());
    let l = level(&mut c, "SKU-F", "L1", CHILLED).await;
    assert_eq!((l.on_hand, l.allocated, l.available), (4, 0, 4));
    let deallocate = ledger(&mut c, 1).await.pop().unwrap();
    assert_eq!(deallocate.kind, pb::LedgerEntryKind::Deallocate as i32);
    assert_eq!(
        (
            deallocate.allocated_delta,
            deallocate.allocation_id.as_str()
        ),
        (-3, b.allocation_id.as_str())
    );

    // Again: nothing active left (empty), or the named one is no longer active.
    let again = c
        .release_allocation(pb::ReleaseAllocationRequest {
            request_id: "rel-2".into(),
            order_id: "O-2".into(),
            allocation_id: String::new(),
            actor: Default::default(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(again.released.is_empty());
    let named = pb::ReleaseAllocationRequest {
        request_id: "rel-3".into(),
        order_id: "O-2".into(),
        allocation_id: b.allocation_id.clone(),
        actor: Default::default(),
    };
    assert_eq!(
        c.release_allocation(named).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    let unknown_order = pb::ReleaseAllocationRequest {
        request_id: "rel-4".into(),
        order_id: "O-NONE".into(),
        allocation_id: String::new(),
        actor: Default::default(),
    };
    assert_eq!(
        c.release_allocation(unknown_order)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let foreign = pb::ReleaseAllocationRequest {
        request_id: "rel-5".into(),
        order_id: "O-2".into(),
        allocation_id: a.allocation_id.clone(),
        actor: Default::default(),
    };
    assert_eq!(
        c.release_allocation(foreign).await.unwrap_err().code(),
        Code::NotFound
    );
    let invalid = pb::ReleaseAllocationRequest::default();
    assert_eq!(
        fields(&c.release_allocation(invalid).await.unwrap_err()),
        ["request_id", "order_id"]
    );
}

// ---------------------------------------------------------------------------------------------
// Holds

#[tokio::test]
async fn holds_quarantine_stock_until_released() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    record(
        &mut c,
        "r-1",
        vec![
            receipt("SKU-A", "L1", CHILLED, 30, jun30()),
            receipt("SKU-B", "L9", CHILLED, 12, jun30()),
            receipt("SKU-A", "L1", FROZEN, 5, jun30()),
        ],
    )
    .await
    .unwrap();
    // Telemetry places a zone hold citing the alarm; its outbox retries with the same id.
    let place = pb::PlaceHoldRequest {
        request_id: "telemetry-alarm-77".into(),
        zone_id: CHILLED.into(),
        reason: "excursion: 9.1 °C for 42 min".into(),
        reference: Some(cpb::Reference {
            kind: cpb::ReferenceKind::Alarm as i32,
            id: "alarm-77".into(),
        }),
        ..Default::default()
    };
    let hold = c.place_hold(place.clone()).await.unwrap().into_inner();
    assert_eq!(hold.state, pb::HoldState::Active as i32);
    assert_eq!(hold.position_count, 2);
    assert_eq!(
        hold.held_quantities,
        vec![pb::UnitQuantity {
            unit: "kg".into(),
            quantity: 42
        }]
    );
    let retried = c.place_hold(place).await.unwrap().into_inner();
    assert_eq!(
        retried.hold_id, hold.hold_id,
        "a retried PlaceHold is the same hold"
    );

    let l = level(&mut c, "SKU-A", "L1", CHILLED).await;
    assert_eq!((l.on_hand, l.held, l.available), (30, 30, 0));
    let frozen = level(&mut c, "SKU-A", "L1", FROZEN).await;
    assert_eq!(
        (frozen.held, frozen.available),
        (0, 5),
        "other zones are not held"
    );
    let status = record(&mut c, "i-1", vec![issue("SKU-A", "L1", CHILLED, 1)])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(preconditions(&status)[0].0, "HOLD");
    assert!(
        status.message().contains("available 0"),
        "{}",
        status.message()
    );
    let status = c
        .allocate_stock(pb::AllocateStockRequest {
            request_id: "a-1".into(),
            order_id: "O-1".into(),
            sku: "SKU-B".into(),
            quantity: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    // Stock arriving in scope later is held too; held stock can be written off.
    record(
        &mut c,
        "r-2",
        vec![receipt("SKU-B", "L9", CHILLED, 3, jun30())],
    )
    .await
    .unwrap();
    let write_off = pb::Movement {
        reason: "destroyed after excursion".into(),
        ..movement(pb::MovementKind::Adjustment, "SKU-B", "L9", CHILLED, -15)
    };
    let write_off = pb::Movement {
        unit: "kg".into(),
        ..write_off
    };
    record(&mut c, "w-1", vec![write_off]).await.unwrap();

    // Release: stock is available again; a second release is refused.
    let release = pb::ReleaseHoldRequest {
        request_id: "qa-release-1".into(),
        hold_id: hold.hold_id.clone(),
        reason: "qa: within tolerance".into(),
        actor: Default::default(),
    };
    let released = c.release_hold(release.clone()).await.unwrap().into_inner();
    assert_eq!(released.state, pb::HoldState::Released as i32);
    assert_eq!(released.release_reason, "qa: within tolerance");
    assert!(released.released_at.is_some());
    let l = level(&mut c, "SKU-A", "L1", CHILLED).await;
    assert_eq!((l.held, l.available), (0, 30));
    record(&mut c, "i-2", vec![issue("SKU-A", "L1", CHILLED, 1)])
        .await
        .unwrap();
    let again = pb::ReleaseHoldRequest {
        request_id: "qa-release-2".into(),
        ..release
    };
    assert_eq!(
        c.release_hold(again).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    let unknown = pb::ReleaseHoldRequest {
        request_id: "qa-release-3".into(),
        hold_id: "hold-999".into(),
        reason: "x".into(),
        actor: Default::default(),
    };
    assert_eq!(
        c.release_hold(unknown).await.unwrap_err().code(),
        Code::NotFound
    );

    // The ledger records both, with the scope and the reference.
    let entries = ledger(&mut c, 1).await;
    let placed = entries
        .iter()
        .find(|e| e.kind == pb::LedgerEntryKind::HoldPlaced as i32)
        .unwrap();
    assert_eq!(
        (placed.zone_id.as_str(), placed.hold_id.as_str()),
        (CHILLED, hold.hold_id.as_str())
    );
    assert_eq!(placed.reference.as_ref().unwrap().id, "alarm-77");
    assert!(
        entries
            .iter()
            .any(|e| e.kind == pb::LedgerEntryKind::HoldReleased as i32)
    );
}

#[tokio::test]
async fn hold_scopes_narrow_and_are_validated() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    record(
        &mut c,
        "r-1",
        vec![
            receipt("SKU-A", "L1", CHILLED, 10, jun30()),
            receipt("SKU-A", "L2", CHILLED, 10, jun30()),
        ],
    )
    .await
    .unwrap();
    let hold = |id: &str, zone: &str, sku: &str, lot: &str| pb::PlaceHoldRequest {
        request_id: id.into(),
        zone_id: zone.into(),
        sku: sku.into(),
        lot_id: lot.into(),
        reason: "qa".into(),
        reference: None,
        actor: Default::default(),
        allow_relocation: false,
    };
    let lot_hold = c
        .place_hold(hold("h-1", "", "SKU-A", "L1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lot_hold.held_quantities[0].quantity, 10);
    assert_eq!(level(&mut c, "SKU-A", "L1", CHILLED).await.available, 0);
    assert_eq!(level(&mut c, "SKU-A", "L2", CHILLED).await.available, 10);
    let zone_and_sku = c
        .place_hold(hold("h-2", FROZEN, "SKU-A", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(zone_and_sku.position_count, 0);
    assert_eq!(level(&mut c, "SKU-A", "L2", CHILLED).await.available, 10);

    let status = c.place_hold(hold("h-3", "", "", "")).await.unwrap_err();
    assert_eq!(fields(&status), ["zone_id"]);
    let status = c.place_hold(hold("h-4", "", "", "L1")).await.unwrap_err();
    assert_eq!(fields(&status), ["sku"]);
    let status = c
        .place_hold(pb::PlaceHoldRequest {
            reason: String::new(),
            ..hold("h-5", CHILLED, "", "")
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&status), ["reason"]);
    for (id, zone, sku, lot) in [
        ("h-6", "mars-1", "", ""),
        ("h-7", "", "SKU-X", ""),
        ("h-8", "", "SKU-A", "L-X"),
    ] {
        let status = c.place_hold(hold(id, zone, sku, lot)).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{zone} {sku} {lot}");
    }
}

// ---------------------------------------------------------------------------------------------
// ListStock

#[tokio::test]
async fn list_stock_filters_paginates_and_summarises() {
    let h = Harness::start().await;
    let mut c = h.client().await;
    // Today is 2026-03-01. Expiries: 03-05 (≤30), 04-15 (≤60), 05-20 (≤90), 09-01 (later),
    // and 03-02 which expires after the clock moves.
    let expiries = [
        date(2026, 3, 5),
        date(2026, 4, 15),
        date(2026, 5, 20),
        date(2026, 9, 1),
        date(2026, 3, 2),
    ];
    let mut movements = Vec::new();
    for s in 0..3 {
        for (l, expiry) in expiries.iter().enumerate() {
            for zone in [CHILLED, FROZEN] {
                movements.push(receipt(
                    &format!("SKU-{s}"),
                    &format!("L{l}"),
                    zone,
                    10 + l as i64,
                    *expiry,
                ));
            }
        }
    }
    let mut pieces = receipt("SKU-P", "LP", PHARMA, 7, date(2026, 9, 1));
    pieces.unit = "each".into();
    movements.push(pieces);
    record(&mut c, "r-1", movements).await.unwrap();
    // Empty one position.
    record(&mut c, "i-1", vec![issue("SKU-0", "L0", CHILLED, 10)])
        .await
        .unwrap();
    h.advance_days(2); // 2026-03-03: L4 is expired

    // Page through everything with include_empty: 31 positions in key order, no duplicates.
    let mut all = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = c
            .list_stock(pb::ListStockRequest {
                include_empty: true,
                page_size: 7,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(page.levels.len() <= 7);
        all.extend(page.levels);
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(all.len(), 31);
    assert_eq!(pages, 5);
    let keys: Vec<_> = all
        .iter()
        .map(|l| {
            (
                l.sku.clone(),
                l.lot.as_ref().unwrap().lot_id.clone(),
                l.zone_id.clone(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        keys, sorted,
        "ordered by sku, lot, zone, without duplicates"
    );

    // Empty positions are skipped by default; page size defaults and clamps.
    let list = |request: pb::ListStockRequest| {
        let mut c = c.clone();
        async move { c.list_stock(request).await }
    };
    let page = list(pb::ListStockRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.levels.len(), 30);
    assert!(page.next_page_token.is_empty());
    assert_eq!(page.as_of, Some(date(2026, 3, 3)));
    let huge = list(pb::ListStockRequest {
        page_size: 5000,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner();
    assert_eq!(huge.levels.len(), 30);

    // Filters.
    let frozen = list(pb::ListStockRequest {
        zone_id: FROZEN.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner();
    assert_eq!(frozen.levels.len(), 15);
    assert!(frozen.levels.iter().all(|l| l.zone_id == FROZEN));
    let one_lot = list(pb::ListStockRequest {
        sku: "SKU-1".into(),
        lot_id: "L2".into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner();
    assert_eq!(one_lot.levels.len(), 2);
    let expiring = list(pb::ListStockRequest {
        expiring_before: Some(date(2026, 4, 15)),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner();
    assert_eq!(
        expiring.levels.len(),
        11,
        "L0 and L4 of three skus, minus the empty one"
    );
    assert!(
        expiring
            .levels
            .iter()
            .filter(|l| l.lot.as_ref().unwrap().lot_id == "L4")
            .all(|l| l.expired)
    );

    // Summary over every matching position (not only the page), by bucket and unit.
    let summary = list(pb::ListStockRequest {
        page_size: 1,
        summarize_by_expiry: true,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner();
    assert_eq!(summary.levels.len(), 1);
    let rows: Vec<_> = summary
        .expiry_summary
        .iter()
        .map(|r| {
            (
                r.bucket,
                r.unit.as_str(),
                r.on_hand,
                r.lot_count,
                r.position_count,
            )
        })
        .collect();
    use pb::ExpiryBucket as B;
    assert_eq!(
        rows,
        vec![
            (B::Expired as i32, "kg", 6 * 14, 3, 6),
            (B::Within30Days as i32, "kg", 5 * 10, 3, 5),
            (B::Within60Days as i32, "kg", 6 * 11, 3, 6),
            (B::Within90Days as i32, "kg", 6 * 12, 3, 6),
            (B::Later as i32, "each", 7, 1, 1),
            (B::Later as i32, "kg", 6 * 13, 3, 6),
        ]
    );
    let next = list(pb::ListStockRequest {
        page_size: 1,
        summarize_by_expiry: true,
        page_token: summary.next_page_token.clone(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner();
    assert!(
        next.expiry_summary.is_empty(),
        "the summary comes with the first page only"
    );

    // Tokens are bound to their filters and tamper-evident; other bad input.
    let status = list(pb::ListStockRequest {
        page_size: 1,
        zone_id: FROZEN.into(),
        page_token: summary.next_page_token.clone(),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_eq!(fields(&status), ["page_token"]);
    let status = list(pb::ListStockRequest {
        page_token: "00ff".into(),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_eq!(fields(&status), ["page_token"]);
    let status = list(pb::ListStockRequest {
        lot_id: "L1".into(),
        page_size: -1,
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_eq!(fields(&status), ["lot_id", "page_size"]);
    let status = list(pb::ListStockRequest {
        expiring_before: Some(date(2026, 13, 1)),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_eq!(fields(&status), ["expiring_before"]);
    let status = list(pb::ListStockRequest {
        zone_id: "mars-1".into(),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}
