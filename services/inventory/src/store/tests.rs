//! Answers kept by earlier builds replay after an upgrade (issue 27).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;

use coldchain_proto::common::v1 as common;
use coldchain_proto::inventory::v1 as pb;
use coldchain_store::{ForgetRefusals, Idempotent, Identity, Store, StoreOptions};
use prost::Message;

use super::*;
use crate::wire::codec::{EntryCodec as Entries, RecordedCodec};
use crate::wire::convert;

/// How builds before issue 27 kept RecordMovements' answer: the encoded response, with a
/// copy of every entry.
struct EarlierBuildCodec;

impl ReplyCodec<RecordedAnswer> for EarlierBuildCodec {
    fn encode(&self, answer: &RecordedAnswer) -> Vec<u8> {
        let RecordedAnswer::Entries(entries) = answer else {
            panic!("a fresh answer holds its entries");
        };
        pb::RecordMovementsResponse {
            entries: entries.iter().cloned().map(convert::entry_pb).collect(),
            relocation_arrivals: Vec::new(),
        }
        .encode_to_vec()
    }

    fn decode(&self, bytes: &[u8]) -> Result<RecordedAnswer, String> {
        RecordedCodec.decode(bytes)
    }
}

fn open(dir: &std::path::Path) -> InventoryStore {
    let identity = Identity {
        site: "la-vientiane".into(),
        service: "inventory".into(),
    };
    let store = Store::open(dir, &identity, StoreOptions::default()).unwrap();
    InventoryStore::new(
        store,
        chrono_tz::Asia::Vientiane,
        super::ZoneClasses::default(),
        Arc::new(Entries),
        crate::wire::codec::entry_place,
    )
    .unwrap()
}

fn receipts(request_id: &str, count: usize) -> crate::wire::requests::Call<Vec<Movement>> {
    let movements = (0..count)
        .map(|i| pb::Movement {
            kind: pb::MovementKind::Receipt as i32,
            sku: format!("SKU-{i}"),
            lot: Some(pb::LotInfo {
                lot_id: "L1".into(),
                expiry: Some(common::Date {
                    year: 2027,
                    month: 6,
                    day: 30,
                }),
                ..Default::default()
            }),
            zone_id: "chilled-a".into(),
            quantity: i as i64 + 1,
            unit: "kg".into(),
            ..Default::default()
        })
        .collect();
    let request = pb::RecordMovementsRequest {
        request_id: request_id.into(),
        movements,
        actor: Default::default(),
    };
    crate::wire::requests::record_movements(&request, "la-vientiane").unwrap()
}

async fn record(
    store: &InventoryStore,
    codec: &dyn ReplyCodec<RecordedAnswer>,
    call: &crate::wire::requests::Call<Vec<Movement>>,
) -> (Vec<LedgerEntry>, bool) {
    let idempotent = Idempotent::new(&call.request, codec, &ForgetRefusals);
    let written = store
        .record_movements(
            idempotent,
            &call.command,
            &coldchain_audit::Author::new("wh-la-vientiane", "dock 2"),
            false,
        )
        .await
        .unwrap();
    let entries = store.recorded_entries(written.value).unwrap();
    (entries, written.replayed)
}

/// A record an earlier build kept (a copy of the entries) replays as it is, across a
/// restart; a new record keeps only the sequences and replays the same entries, read back
/// from the ledger.
#[tokio::test]
async fn records_of_earlier_builds_and_new_ones_replay_the_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    let earlier = receipts("earlier", 300);
    let now = receipts("now", 300);
    let (first_earlier, first_now) = {
        let store = open(dir.path());
        let (earlier_entries, replayed) = record(&store, &EarlierBuildCodec, &earlier).await;
        assert!(!replayed);
        let (now_entries, _) = record(&store, &RecordedCodec, &now).await;
        store.raw().close();
        (earlier_entries, now_entries)
    };
    let store = open(dir.path());
    let (again, replayed) = record(&store, &RecordedCodec, &earlier).await;
    assert!(replayed);
    assert_eq!(again, first_earlier);
    let (again, replayed) = record(&store, &RecordedCodec, &now).await;
    assert!(replayed);
    assert_eq!(again, first_now);
    assert_eq!(first_now[0].sequence, 301, "after the earlier batch");
}

/// The lot index brought up to the ledger in ranges of `range_len`.
async fn catch_up(store: &InventoryStore, range_len: u64) -> (u64, u64) {
    super::lot_index::catch_up(
        store.raw(),
        &store.lot_index_readiness(),
        &store.lot_index_readers(),
        range_len,
        &coldchain_runtime::Shutdown::new(),
    )
    .await
    .unwrap()
}

/// A store an earlier build wrote has neither the lot index nor the holds' authors: its
/// lot's history is unavailable until the backfill has read its ledger, then complete; its
/// holds show their placer as unknown.
#[tokio::test]
async fn a_store_written_before_the_lot_index_gets_it_from_its_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let author = coldchain_audit::Author::new("wh-la-vientiane", "dock 2");
    for (i, request_id) in ["first", "second", "third"].iter().enumerate() {
        let call = receipts(request_id, 40 + i);
        let idempotent = Idempotent::new(&call.request, &RecordedCodec, &ForgetRefusals);
        store
            .record_movements(idempotent, &call.command, &author, false)
            .await
            .unwrap();
    }
    let hold_call = crate::wire::requests::place_hold(&pb::PlaceHoldRequest {
        request_id: "hold".into(),
        zone_id: "chilled-a".into(),
        reason: "excursion".into(),
        ..Default::default()
    })
    .unwrap();
    let idempotent = Idempotent::new(
        &hold_call.request,
        &crate::wire::codec::HoldCodec,
        &ForgetRefusals,
    );
    let hold = store
        .place_hold(idempotent, &hold_call.command, &author)
        .await
        .unwrap()
        .value;
    // Ranges of 7: the ledger of 124 entries is 17 sealed ranges and 5 entries not sealed.
    let (next, read) = catch_up(&store, 7).await;
    assert_eq!((next, read), (17, 124));
    assert_eq!(super::lot_index::rows(store.raw()), (17, 0));
    let before = store.lot_entries("SKU-3", "L1", 0, 100).unwrap().0;
    assert_eq!(
        before.len(),
        4,
        "three receipts and the room's hold: {before:?}"
    );

    // As an earlier build left it: no filters, no hold authors, a chunk of its own index.
    super::lot_index::forget(store.raw()).await;
    assert_eq!(super::lot_index::rows(store.raw()), (0, 1));
    // Opened again, as the upgraded build opens it.
    store.raw().close();
    drop(store);
    let store = open(dir.path());
    assert!(matches!(
        store.lot_entries("SKU-3", "L1", 0, 100),
        Err(super::lot_index::LotIndexError::NotReady)
    ));
    let (next, indexed) = catch_up(&store, 5).await;
    assert_eq!(
        (next, indexed),
        (24, 40 + 41 + 42 + 1),
        "every entry read once"
    );
    assert_eq!(
        super::lot_index::rows(store.raw()),
        (24, 0),
        "the earlier index is removed"
    );
    assert_eq!(store.lot_entries("SKU-3", "L1", 0, 100).unwrap().0, before);
    // Pages after the backfill are the same pages.
    let (page, more) = store.lot_entries("SKU-3", "L1", 0, 3).unwrap();
    assert!(more);
    let (rest, more) = store
        .lot_entries("SKU-3", "L1", page[2].sequence, 3)
        .unwrap();
    assert!(!more);
    assert_eq!([page, rest].concat(), before);

    // Its hold has no authors kept: the placer is unknown, the releaser is known.
    let release = crate::wire::requests::release_hold(&pb::ReleaseHoldRequest {
        request_id: "release".into(),
        hold_id: hold.hold_id.clone(),
        reason: "clear".into(),
        actor: "QA".into(),
    })
    .unwrap();
    let idempotent = Idempotent::new(
        &release.request,
        &crate::wire::codec::HoldCodec,
        &ForgetRefusals,
    );
    let released = store
        .release_hold(idempotent, &hold.hold_id, "clear", &author)
        .await
        .unwrap()
        .value;
    assert_eq!(released.placed_by, coldchain_audit::Author::unknown());
    assert_eq!(released.released_by, Some(author.clone()));
    // The release is in the lot's history, found through the hold.
    assert_eq!(store.lot_entries("SKU-3", "L1", 0, 100).unwrap().0.len(), 5);
}

/// An entry an earlier build encoded (no author) reads as recorded by "unknown".
#[test]
fn entries_of_earlier_builds_read_as_recorded_by_unknown() {
    let earlier = pb::LedgerEntry {
        sequence: 7,
        recorded_at: Some(coldchain_runtime::proto_time::timestamp(1_772_330_400_000)),
        request_id: "r".into(),
        kind: pb::LedgerEntryKind::Receipt as i32,
        sku: "SKU-A".into(),
        ..Default::default()
    };
    let entry = Entries.decode(&earlier.encode_to_vec()).unwrap();
    assert_eq!(entry.recorded_by, coldchain_audit::Author::unknown());
    assert_eq!(entry.recorded_by.principal, "unknown");
}
