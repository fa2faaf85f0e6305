//! The store's indexes, idempotent ids and paging, on a real database.
use coldchain_network::TemperatureClass;
use coldchain_store::{ForgetRefusals, Identity, StoreOptions, fingerprint};

use coldchain_audit::Author;

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
            Author::new("ops-1", "Anna"),
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
            Author::new("ops-2", ""),
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
            Author::new("ops-1", "Anna"),
        )
        .await
        .unwrap();
    let same = store
        .create(
            Idempotent::new(&fingerprint("r2", b"2"), &TransferRefCodec, &ForgetRefusals),
            spec(Some("t1"), "kiwi"),
            Author::new("ops-1", "Anna"),
        )
        .await
        .unwrap();
    assert_eq!(same.value.transfer_id, "t1");
    let other = store
        .create(
            Idempotent::new(&fingerprint("r3", b"3"), &TransferRefCodec, &ForgetRefusals),
            spec(Some("t1"), "citrus"),
            Author::new("ops-1", "Anna"),
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
            Author::new("ops-1", "Anna"),
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

/// Stored bytes as they are, to lay down records the way an earlier build wrote them.
struct RawBytes(Vec<u8>);

impl Value for RawBytes {
    fn to_bytes(&self) -> Result<Vec<u8>, StoreError> {
        Ok(self.0.clone())
    }
    fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        Ok(RawBytes(bytes.to_vec()))
    }
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// Two transfers exactly as the build before authors (16ef299) stored them: `t-old-1`
/// REQUESTED (created at 1000 ms), `t-old-2` RECEIVING (received at 2200 ms); one line of
/// 5 kg kiwi, lot l1, cn-huaihua-park → la-vientiane.
const EARLIER_REQUESTED: &str = "07742d6f6c642d310f636e2d687561696875612d7061726b0c6c612d7669656e7469616e6501046b697769026c31096368696c6c65642d61096368696c6c65642d610a026b6700000000074348494c4c454400d00f000000d00f000000";
const EARLIER_RECEIVING: &str = "07742d6f6c642d320f636e2d687561696875612d7061726b0c6c612d7669656e7469616e6501046b697769026c31096368696c6c65642d61096368696c6c65642d610a026b6700020000074348494c4c454400a01f01e82001b02200b022000000";

#[tokio::test]
async fn transfers_an_earlier_build_stored_show_an_unknown_author() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    const EARLIER: Table<String, RawBytes> = Table::new("transfer");
    store
        .raw()
        .write(None, |tx| {
            for (id, created, bytes) in [
                ("t-old-1", 1000, EARLIER_REQUESTED),
                ("t-old-2", 2000, EARLIER_RECEIVING),
            ] {
                tx.put(&EARLIER, &id.to_string(), &RawBytes(hex(bytes)))?;
                tx.put(&BY_CREATED, &(-created, id.to_string()), &())?;
            }
            Ok::<(), Refused>(())
        })
        .await
        .unwrap();

    let requested = store.get("t-old-1").unwrap().expect("decodes");
    assert_eq!(requested.state, TransferState::Requested);
    assert_eq!(requested.lines[0].quantity, 5);
    assert_eq!(requested.started_by, Author::unknown());
    assert_eq!(requested.arrival_reported_by, None);
    assert_eq!(
        requested.start_actor(),
        "",
        "a retry sends the bytes it sent before"
    );

    let receiving = store.get("t-old-2").unwrap().expect("decodes");
    assert_eq!(receiving.state, TransferState::Receiving);
    assert_eq!(receiving.started_by, Author::unknown());
    assert_eq!(receiving.arrival_reported_by, Some(Author::unknown()));
    assert_eq!(receiving.arrival_actor(), "");
    assert_eq!(
        store
            .list(&ListFilter::default(), None, 10)
            .unwrap()
            .transfers
            .len(),
        2
    );

    // An old record changed by this build keeps the unknown starter and gains the
    // arrival's reporter.
    store
        .update("t-old-1", |t, now| t.shipped(vec![], now, now))
        .await
        .unwrap();
    store
        .arrive(
            Idempotent::new(&fingerprint("r9", b"9"), &TransferRefCodec, &ForgetRefusals),
            "t-old-1",
            Author::new("ops-2", "Bounmy"),
        )
        .await
        .unwrap();
    let reopened = store.get("t-old-1").unwrap().unwrap();
    assert_eq!(reopened.started_by, Author::unknown());
    assert_eq!(
        reopened.arrival_reported_by,
        Some(Author::new("ops-2", "Bounmy"))
    );
    assert_eq!(reopened.arrival_actor(), "ops-2/Bounmy");
}

#[tokio::test]
async fn both_authors_are_stored_and_the_first_report_of_an_arrival_stays() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .create(
            Idempotent::new(&fingerprint("r1", b"1"), &TransferRefCodec, &ForgetRefusals),
            spec(Some("t1"), "kiwi"),
            Author::new("ops-1", "Anna"),
        )
        .await
        .unwrap();
    let again = store
        .create(
            Idempotent::new(&fingerprint("r2", b"2"), &TransferRefCodec, &ForgetRefusals),
            spec(Some("t1"), "kiwi"),
            Author::new("ops-9", ""),
        )
        .await
        .unwrap();
    assert_eq!(again.value.transfer_id, "t1");
    let t = store.get("t1").unwrap().unwrap();
    assert_eq!(
        t.started_by,
        Author::new("ops-1", "Anna"),
        "the starter stays"
    );
    assert_eq!(t.arrival_reported_by, None);
    assert_eq!(t.start_actor(), "ops-1/Anna");
    assert_eq!(t.arrival_actor(), "ops-1/Anna", "falls back to the starter");

    store
        .update("t1", |t, now| t.shipped(vec![], now, now))
        .await
        .unwrap();
    for (request, reporter) in [("r3", "ops-2"), ("r4", "ops-3")] {
        store
            .arrive(
                Idempotent::new(
                    &fingerprint(request, b"x"),
                    &TransferRefCodec,
                    &ForgetRefusals,
                ),
                "t1",
                Author::new(reporter, ""),
            )
            .await
            .unwrap();
    }
    let t = store.get("t1").unwrap().unwrap();
    assert_eq!(t.arrival_reported_by, Some(Author::new("ops-2", "")));
    assert_eq!(t.arrival_actor(), "ops-2");
}

#[test]
fn stored_bytes_with_garbage_after_the_authors_are_corrupt() {
    let mut t = Transfer::new(
        "t1".into(),
        spec(Some("t1"), "kiwi"),
        Author::new("ops-1", ""),
        0,
    );
    t.arrival_reported_by = Some(Author::new("ops-2", "Bounmy"));
    let mut bytes = StoredTransfer(t.clone()).to_bytes().unwrap();
    assert_eq!(StoredTransfer::from_bytes(&bytes).unwrap().0, t);
    bytes.push(0);
    assert!(matches!(
        StoredTransfer::from_bytes(&bytes),
        Err(StoreError::Corrupt(_))
    ));
}

/// A recall as the build before derived lots (28b1fd1) stored it: postcard of its
/// `Recall`, whose fields are those serde still writes first (`R-OLD`, sku citrus, lot L1,
/// park HELD as hold-7, vte PENDING, by ops-1 (Anna), created at 1000 ms).
const EARLIER_RECALL: &str = "05522d4f4c440663697472757301024c31086c697374657269610002047061726b024c310206686f6c642d37000003767465024c3100000000056f70732d3104416e6e61d00f00000000b817";

#[tokio::test]
async fn a_recall_an_earlier_build_stored_opens_with_its_holds_of_its_sku() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    const EARLIER: Table<String, RawBytes> = Table::new("recall");
    store
        .raw()
        .write(None, |tx| {
            tx.put(
                &EARLIER,
                &"R-OLD".to_string(),
                &RawBytes(hex(EARLIER_RECALL)),
            )?;
            Ok::<(), Refused>(())
        })
        .await
        .unwrap();
    let recall = store.get_recall("R-OLD").unwrap().expect("decodes");
    assert_eq!(recall.sku, "citrus");
    assert_eq!(recall.holds.len(), 2);
    assert!(recall.holds.iter().all(|h| h.sku == "citrus"));
    assert_eq!(recall.holds[0].hold_id, "hold-7");
    assert_eq!(recall.holds[0].step, domain::HoldStep::Held);
    assert!(!recall.include_derived);
    assert!(recall.derived.is_empty());
    assert!(recall.derived_lots().is_empty());
    assert_eq!(
        recall.place_request_id(&recall.holds[1]),
        "gateway:recall:R-OLD:hold:vte:L1:0",
        "a retry sends the request id it sent before"
    );

    // A change rewrites it in this build's form, which reads back the same.
    let key = recall.holds[1].key();
    let after = store
        .update_recall("R-OLD", |r, now| r.hold_placed(&key, "hold-8", now))
        .await
        .unwrap();
    assert_eq!(store.get_recall("R-OLD").unwrap(), Some(after));
}

#[test]
fn a_recall_with_derived_lots_keeps_their_skus_and_links() {
    use crate::domain::genealogy::{Direction, Link, LotQuantity};
    let lot = |sku: &str, lot: &str| LotQuantity {
        sku: sku.into(),
        lot_id: lot.into(),
        quantity: 3,
        unit: "case".into(),
    };
    let link = Link {
        site_id: "park".into(),
        transformation_id: "PR-1".into(),
        at_ms: 900,
        input: lot("citrus", "L1"),
        output: lot("segment", "S1"),
        direction: Direction::Downstream,
        depth: 1,
    };
    let recall = crate::domain::Recall::new(
        "R-NEW".into(),
        crate::domain::RecallSpec {
            recall_id: Some("R-NEW".into()),
            sku: "citrus".into(),
            lot_ids: vec!["L1".into()],
            reason: "listeria".into(),
            include_derived: true,
        },
        &["park".to_string()],
        vec![link],
        Author::new("ops-1", ""),
        1000,
    );
    let bytes = stored::StoredRecall(recall.clone()).to_bytes().unwrap();
    let stored::StoredRecall(back) = stored::StoredRecall::from_bytes(&bytes).unwrap();
    assert_eq!(back, recall);
    assert_eq!(back.holds[1].sku, "segment");
    assert!(stored::StoredRecall::from_bytes(&bytes[..bytes.len() - 1]).is_err());
}
