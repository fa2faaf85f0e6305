//! The store's indexes, idempotent ids and paging, on a real database.
use coldchain_network::TemperatureClass;
use coldchain_store::{ForgetRefusals, Identity, StoreOptions, fingerprint};

use super::*;
use crate::domain::TransferState;
use crate::wire::TransferRefCodec;

fn open(dir: &std::path::Path) -> GatewayStore {
    let store = Store::open(
        dir,
        &Identity {
            site: "hub".into(),
            service: "gateway".into(),
        },
        StoreOptions::default(),
    )
    .expect("open");
    GatewayStore::new(store)
}

fn spec(id: Option<&str>, sku: &str) -> TransferSpec {
    TransferSpec {
        transfer_id: id.map(str::to_string),
        source_site_id: "cn-huaihua-park".into(),
        destination_site_id: "la-vientiane".into(),
        lines: vec![domain::Line {
            sku: sku.into(),
            lot_id: "l1".into(),
            source_zone_id: "chilled-a".into(),
            destination_zone_id: "chilled-a".into(),
            quantity: 5,
            unit: "kg".into(),
            lot: None,
        }],
        reefer_sensor_id: String::new(),
        reefer_container_id: String::new(),
        reefer_class: TemperatureClass::Chilled,
        train_or_route: String::new(),
    }
}

#[tokio::test]
async fn indexes_follow_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let created = store
        .create(
            Idempotent::new(&fingerprint("r1", b"1"), &TransferRefCodec, &ForgetRefusals),
            spec(Some("t1"), "kiwi"),
        )
        .await
        .unwrap();
    assert_eq!(created.value.transfer_id, "t1");
    assert_eq!(store.pending().unwrap(), ["t1"]);
    assert!(store.travelling_with_sku("kiwi").unwrap().is_empty());

    let shipped = store
        .update("t1", |t, now| t.shipped(vec![], now, now))
        .await
        .unwrap();
    assert_eq!(shipped.state, TransferState::InTransit);
    assert!(store.pending().unwrap().is_empty());
    assert_eq!(store.travelling_with_sku("kiwi").unwrap().len(), 1);
    assert!(store.travelling_with_sku("kiwi2").unwrap().is_empty());

    store
        .arrive(
            Idempotent::new(&fingerprint("r2", b"2"), &TransferRefCodec, &ForgetRefusals),
            "t1",
        )
        .await
        .unwrap();
    assert_eq!(store.pending().unwrap(), ["t1"]);
    assert_eq!(store.travelling_with_sku("kiwi").unwrap().len(), 1);

    store
        .update("t1", |t, now| t.completed(now, now))
        .await
        .unwrap();
    assert!(store.pending().unwrap().is_empty());
    assert!(store.travelling_with_sku("kiwi").unwrap().is_empty());
    assert_eq!(
        store.raw().durable_sequence(),
        4,
        "one ledger entry per change"
    );
}

#[tokio::test]
async fn an_id_is_taken_only_by_another_definition_and_lists_page() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .create(
            Idempotent::new(&fingerprint("r1", b"1"), &TransferRefCodec, &ForgetRefusals),
            spec(Some("t1"), "kiwi"),
        )
        .await
        .unwrap();
    let same = store
        .create(
            Idempotent::new(&fingerprint("r2", b"2"), &TransferRefCodec, &ForgetRefusals),
            spec(Some("t1"), "kiwi"),
        )
        .await
        .unwrap();
    assert_eq!(same.value.transfer_id, "t1");
    let other = store
        .create(
            Idempotent::new(&fingerprint("r3", b"3"), &TransferRefCodec, &ForgetRefusals),
            spec(Some("t1"), "citrus"),
        )
        .await;
    assert!(matches!(
        other,
        Err(WriteError::Rejected(Refused::Transfer(
            TransferError::AlreadyExists(_)
        )))
    ));
    let assigned = store
        .create(
            Idempotent::new(&fingerprint("r4", b"4"), &TransferRefCodec, &ForgetRefusals),
            spec(None, "citrus"),
        )
        .await
        .unwrap();
    assert!(assigned.value.transfer_id.starts_with("tr-"));

    let all = store.list(&ListFilter::default(), None, 10).unwrap();
    assert_eq!(all.transfers.len(), 2);
    assert!(all.last_key.is_none());
    let first = store.list(&ListFilter::default(), None, 1).unwrap();
    assert_eq!(first.transfers.len(), 1);
    let key = first.last_key.expect("more");
    let second = store.list(&ListFilter::default(), Some(&key), 1).unwrap();
    assert_eq!(second.transfers.len(), 1);
    assert_ne!(
        first.transfers[0].transfer_id,
        second.transfers[0].transfer_id
    );
    assert!(second.last_key.is_none());
    let filtered = store
        .list(
            &ListFilter {
                states: vec![TransferState::Completed],
                ..ListFilter::default()
            },
            None,
            10,
        )
        .unwrap();
    assert!(filtered.transfers.is_empty());
}
