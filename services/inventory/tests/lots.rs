//! A lot's own history (ListLotEntries) over a real server: its movements, allocations and
//! the holds that covered it, paged, across a restart. (Who made each change: `audit.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use coldchain_proto::inventory::v1 as pb;
use common::*;

fn kinds(entries: &[pb::LedgerEntry]) -> Vec<(pb::LedgerEntryKind, String, i64)> {
    entries
        .iter()
        .map(|e| {
            (
                pb::LedgerEntryKind::try_from(e.kind).unwrap(),
                e.zone_id.clone(),
                e.delta,
            )
        })
        .collect()
}

async fn lot_entries(
    client: &mut Client,
    sku: &str,
    lot_id: &str,
    page_size: i32,
) -> Vec<pb::LedgerEntry> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_lot_entries(pb::ListLotEntriesRequest {
                sku: sku.into(),
                lot_id: lot_id.into(),
                page_size,
                page_token: page_token.clone(),
            })
            .await
            .expect("list lot entries")
            .into_inner();
        assert!(page.entries.len() <= page_size as usize);
        out.extend(page.entries);
        if page.next_page_token.is_empty() {
            return out;
        }
        page_token = page.next_page_token;
    }
}

async fn hold(
    client: &mut Client,
    request_id: &str,
    zone: &str,
    sku: &str,
    lot_id: &str,
) -> pb::Hold {
    client
        .place_hold(pb::PlaceHoldRequest {
            request_id: request_id.into(),
            zone_id: zone.into(),
            sku: sku.into(),
            lot_id: lot_id.into(),
            reason: "qa".into(),
            reference: None,
            actor: "QA officer Wang".into(),
            allow_relocation: false,
        })
        .await
        .expect("hold")
        .into_inner()
}

/// The lot index is built in the background at start (at once for a new store).
async fn until_indexed(client: &mut Client) {
    for _ in 0..200 {
        let answer = client
            .list_lot_entries(pb::ListLotEntriesRequest {
                sku: "none".into(),
                lot_id: "none".into(),
                ..Default::default()
            })
            .await;
        match answer {
            Ok(_) => return,
            Err(status) if status.code() == tonic::Code::Unavailable => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(status) => panic!("{status:?}"),
        }
    }
    panic!("the lot index was never ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lots_entries_are_its_movements_allocations_and_the_holds_that_covered_it() {
    let mut h = Harness::start().await;
    let mut c = h.client().await;
    until_indexed(&mut c).await;
    let expiry = date(2026, 12, 31);
    record(
        &mut c,
        "in",
        vec![
            receipt("SKU-A", "L1", CHILLED, 100, expiry),
            receipt("SKU-A", "L2", CHILLED, 70, expiry),
            receipt("SKU-B", "L1", CHILLED, 10, expiry),
        ],
    )
    .await
    .unwrap();
    // Moved: 30 to the frozen room (an issue and a receipt), some issued.
    record(
        &mut c,
        "move",
        vec![
            issue("SKU-A", "L1", CHILLED, 30),
            receipt("SKU-A", "L1", FROZEN, 30, expiry),
            issue("SKU-A", "L2", CHILLED, 5),
        ],
    )
    .await
    .unwrap();
    // A hold on the frozen room (covers L1 there), one on another lot, one on the lot.
    hold(&mut c, "hold-room", FROZEN, "", "").await;
    hold(&mut c, "hold-other", "", "SKU-A", "L2").await;
    let lot_hold = hold(&mut c, "hold-lot", "", "SKU-A", "L1").await;
    c.release_hold(pb::ReleaseHoldRequest {
        request_id: "release-lot".into(),
        hold_id: lot_hold.hold_id.clone(),
        reason: "lab clear".into(),
        actor: "QA officer Li".into(),
    })
    .await
    .unwrap();
    // A hold on a room the lot never was in does not cover it.
    hold(&mut c, "hold-pharma", PHARMA, "", "").await;

    use pb::LedgerEntryKind as K;
    let wanted = vec![
        (K::Receipt, CHILLED.to_string(), 100),
        (K::Issue, CHILLED.to_string(), -30),
        (K::Receipt, FROZEN.to_string(), 30),
        (K::HoldPlaced, FROZEN.to_string(), 0),
        (K::HoldPlaced, String::new(), 0),
        (K::HoldReleased, String::new(), 0),
    ];
    for page_size in [1, 2, 100] {
        let entries = lot_entries(&mut c, "SKU-A", "L1", page_size).await;
        assert_eq!(kinds(&entries), wanted, "page size {page_size}");
        assert!(entries.windows(2).all(|w| w[0].sequence < w[1].sequence));
    }
    let entries = lot_entries(&mut c, "SKU-A", "L1", 100).await;
    // Who did what: the principal the server authenticated, the actor the client named.
    let by = |e: &pb::LedgerEntry| e.recorded_by.clone().unwrap();
    assert_eq!(by(&entries[0]).principal, "anonymous");
    assert_eq!(by(&entries[4]).actor, "QA officer Wang");
    assert_eq!(by(&entries[5]).actor, "QA officer Li");

    // An unknown lot has no entries; bad requests are refused naming every field.
    assert!(lot_entries(&mut c, "SKU-A", "nope", 10).await.is_empty());
    let refused = c
        .list_lot_entries(pb::ListLotEntriesRequest {
            sku: String::new(),
            lot_id: "x\n".into(),
            page_size: -1,
            page_token: "garbage".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let mut bad = fields(&refused);
    bad.sort();
    assert_eq!(bad, vec!["lot_id", "page_size", "page_token", "sku"]);

    // The same after a restart.
    h.restart().await;
    let mut c = h.client().await;
    until_indexed(&mut c).await;
    assert_eq!(kinds(&lot_entries(&mut c, "SKU-A", "L1", 3).await), wanted);
}
