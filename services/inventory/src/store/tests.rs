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
    InventoryStore::new(store, chrono_tz::Asia::Vientiane, Arc::new(Entries))
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
