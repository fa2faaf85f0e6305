//! Corrupt stored data is an error for the record it is in, never a panic; where the store
//! as a whole is unreadable (its ledger position, its format version), opening it fails.
//!
//! How the garbage gets in: the store is written through its API, closed (which joins its
//! flusher) and dropped; the test then opens the same directory with sled directly (once
//! sled's I/O threads have let go of its lock, see `common::raw_sled`), overwrites or adds raw entries in the store's trees (`data`
//! for rows, `_meta` for identity) under keys built with the public `Table::raw_key`, and
//! reopens the store. No test hook in the store is needed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use common::raw_sled;

use std::path::Path;

use coldchain_store::{
    ForgetRefusals, Idempotent, Identity, KeyCodec, Store, StoreError, StoreOptions, Table, Value,
    WriteError, fingerprint,
};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, PartialEq, prost::Message)]
struct Reply {
    #[prost(int64, tag = "1")]
    balance: i64,
}

const BALANCES: Table<String, i64> = Table::new("balance");
/// The store's own idempotency table, as a caller with the same layout sees it.
const REQUESTS: Table<String, RequestRecordShape> = Table::new("_requests");

/// The serde shape of the store's idempotency record (postcard: field order and types).
#[derive(Debug, Serialize, Deserialize)]
struct RequestRecordShape {
    digest: [u8; 32],
    recorded_at_ms: i64,
    response: Vec<u8>,
}

fn identity() -> Identity {
    Identity {
        site: "la-vientiane".into(),
        service: "inventory".into(),
    }
}

fn open(dir: &Path) -> Store {
    Store::open(dir, &identity(), StoreOptions::default()).expect("open")
}

async fn set(store: &Store, request_id: Option<&str>, account: &str, balance: i64) -> i64 {
    let request = request_id.map(|id| fingerprint(id, format!("{account}={balance}").as_bytes()));
    store
        .write::<Reply, String, _>(
            request
                .as_ref()
                .map(|r| Idempotent::new(r, &common::Protobuf, &ForgetRefusals)),
            |tx| {
                tx.put(&BALANCES, &account.to_string(), &balance)
                    .map_err(|e| e.to_string())?;
                Ok(Reply { balance })
            },
        )
        .await
        .expect("write")
        .value
        .balance
}

/// Closes the store, writes raw entries into one of its sled trees, and reopens nothing:
/// the caller decides how to open it again.
fn tamper(store: Store, tree: &str, entries: &[(Vec<u8>, Vec<u8>)]) {
    let path = store.path().to_path_buf();
    store.close();
    drop(store);
    let db = raw_sled(&path);
    let tree = db.open_tree(tree).unwrap();
    for (key, value) in entries {
        tree.insert(key.as_slice(), value.as_slice()).unwrap();
    }
    db.flush().unwrap();
}

fn corrupt(result: Result<impl std::fmt::Debug, StoreError>) -> bool {
    matches!(result, Err(StoreError::Corrupt(_)))
}

#[tokio::test]
async fn garbage_values_are_errors_for_their_rows_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for (account, balance) in [("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5)] {
        set(&store, None, account, balance).await;
    }
    // An over-long varint, nothing at all, and a truncated varint where an i64 belongs.
    let garbage = [vec![0xFF; 11], Vec::new(), vec![0x80]];
    let entries: Vec<_> = ["b", "c", "d"]
        .iter()
        .zip(&garbage)
        .map(|(account, bytes)| (BALANCES.raw_key(&account.to_string()), bytes.clone()))
        .collect();
    tamper(store, "data", &entries);
    let store = open(dir.path());

    assert_eq!(store.get(&BALANCES, &"a".to_string()).unwrap(), Some(1));
    assert_eq!(store.get(&BALANCES, &"e".to_string()).unwrap(), Some(5));
    for account in ["b", "c", "d"] {
        let read = store.get(&BALANCES, &account.to_string());
        assert!(corrupt(read), "{account}");
    }
    let scanned: Vec<_> = store.scan_prefix(&BALANCES, &[]).collect();
    assert_eq!(scanned.len(), 5);
    assert!(matches!(&scanned[0], Ok((key, 1)) if key == "a"));
    assert!(
        scanned[1..4]
            .iter()
            .all(|entry| matches!(entry, Err(StoreError::Corrupt(_))))
    );
    assert!(matches!(&scanned[4], Ok((key, 5)) if key == "e"));
    let after: Vec<_> = store
        .scan_after(&BALANCES, &[], Some(&"a".to_string().encode()))
        .collect();
    assert_eq!(after.len(), 4);
    assert!(matches!(&after[0], Err(StoreError::Corrupt(_))));

    // Inside a write the corrupt row is the closure's error; the store goes on.
    let in_write = store
        .write::<Reply, String, _>(None, |tx| {
            tx.get(&BALANCES, &"b".to_string())
                .map_err(|e| e.to_string())?;
            Ok(Reply::default())
        })
        .await;
    assert!(matches!(in_write, Err(WriteError::Rejected(ref m)) if m.contains("corrupt")));
    let scan_in_write = store
        .write::<Reply, String, _>(None, |tx| {
            tx.scan_prefix(&BALANCES, &[])
                .map(|_| Reply::default())
                .map_err(|e| e.to_string())
        })
        .await;
    assert!(matches!(scan_in_write, Err(WriteError::Rejected(ref m)) if m.contains("corrupt")));
    // Overwriting a corrupt row repairs it; the store stays usable throughout.
    assert_eq!(set(&store, None, "b", 20).await, 20);
    assert_eq!(store.get(&BALANCES, &"b".to_string()).unwrap(), Some(20));
    store.check().unwrap();
}

#[tokio::test]
async fn a_malformed_key_is_an_error_for_that_entry_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    set(&store, None, "a", 1).await;
    set(&store, None, "c", 3).await;
    // Under the table's prefix, a string part with an invalid escape (0x00 0x07), sorting
    // between "a" and "c"; its value is a valid i64.
    let mut key = BALANCES.raw_prefix(b"b");
    key.extend_from_slice(&[0x00, 0x07]);
    tamper(store, "data", &[(key, 2i64.to_bytes().unwrap())]);
    let store = open(dir.path());

    let scanned: Vec<_> = store.scan_prefix(&BALANCES, &[]).collect();
    assert_eq!(scanned.len(), 3);
    assert!(matches!(&scanned[0], Ok((key, 1)) if key == "a"));
    assert!(matches!(&scanned[1], Err(StoreError::Corrupt(m)) if m.contains("malformed key")));
    assert!(matches!(&scanned[2], Ok((key, 3)) if key == "c"));
    assert_eq!(store.get(&BALANCES, &"c".to_string()).unwrap(), Some(3));
}

#[tokio::test]
async fn a_corrupt_idempotency_record_fails_its_replay_not_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    set(&store, Some("r-garbage"), "a", 1).await;
    set(&store, Some("r-response"), "b", 2).await;
    set(&store, Some("r-ancient"), "c", 3).await;
    tamper(
        store,
        "data",
        &[
            // Not a record at all.
            (REQUESTS.raw_key(&"r-garbage".to_string()), vec![0xFF; 3]),
            // A record whose stored response is not a protobuf message.
            (
                REQUESTS.raw_key(&"r-response".to_string()),
                RequestRecordShape {
                    digest: fingerprint("r-response", b"b=2").digest,
                    recorded_at_ms: now_ms(),
                    response: vec![0xFF; 4],
                }
                .to_bytes()
                .unwrap(),
            ),
            // A record from the beginning of time (a corrupt timestamp): its age overflows.
            (
                REQUESTS.raw_key(&"r-ancient".to_string()),
                RequestRecordShape {
                    digest: fingerprint("r-ancient", b"c=3").digest,
                    recorded_at_ms: i64::MIN,
                    response: Vec::new(),
                }
                .to_bytes()
                .unwrap(),
            ),
        ],
    );
    let store = open(dir.path());

    for (id, account, balance) in [("r-garbage", "a", 1), ("r-response", "b", 2)] {
        let request = fingerprint(id, format!("{account}={balance}").as_bytes());
        let replay = store
            .write::<Reply, String, _>(
                Some(Idempotent::new(
                    &request,
                    &common::Protobuf,
                    &ForgetRefusals,
                )),
                |_| Ok(Reply::default()),
            )
            .await;
        assert!(
            matches!(replay, Err(WriteError::Store(StoreError::Corrupt(_)))),
            "{id}: {replay:?}"
        );
    }
    // A record older than any retention has expired: the request runs again.
    assert_eq!(set(&store, Some("r-ancient"), "c", 3).await, 3);
    // Other requests, and the sweep, go on.
    assert_eq!(set(&store, Some("r-new"), "d", 4).await, 4);
    store.sweep_expired_requests().await.unwrap();
    store.check().unwrap();
}

/// An unreadable request-expiry entry hides which ids it lists. The request filter (which
/// lets a write skip looking up an id it has never seen) must then look every id up, never
/// call one of them new: a retry of `r-1` replays instead of running again.
#[tokio::test]
async fn ids_behind_an_unreadable_request_expiry_entry_still_replay() {
    const EXPIRY: Table<(i64, String), Vec<String>> = Table::new("_request_expiry");
    for damaged_key in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        set(&store, Some("r-1"), "a", 1).await;
        store.close();
        drop(store);
        {
            let db = raw_sled(dir.path());
            let data = db.open_tree("data").unwrap();
            let (key, value) = data
                .scan_prefix(EXPIRY.raw_prefix(&[]))
                .next()
                .expect("r-1's expiry entry")
                .unwrap();
            if damaged_key {
                data.remove(&key).unwrap();
                let mut malformed = EXPIRY.raw_prefix(&[]);
                malformed.push(0xFF);
                data.insert(malformed, value).unwrap();
            } else {
                data.insert(key, vec![0xFF; 3]).unwrap();
            }
            db.flush().unwrap();
        }
        let store = open(dir.path());
        let retry = store
            .write::<Reply, String, _>(
                Some(Idempotent::new(
                    &fingerprint("r-1", b"a=1"),
                    &common::Protobuf,
                    &ForgetRefusals,
                )),
                |_| Err("ran again".into()),
            )
            .await;
        let replayed = retry.map(|written| written.value.balance);
        assert_eq!(replayed.ok(), Some(1), "damaged key: {damaged_key}");
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Two writes one after the other, one ledger entry each: two generations, so two blocks.
async fn two_ledger_blocks(store: &Store) {
    for _ in 0..2 {
        store
            .write::<Reply, String, _>(None, |tx| {
                tx.append_ledger(|seq| seq.to_be_bytes().to_vec());
                Ok(Reply::default())
            })
            .await
            .unwrap();
    }
}

fn block_key(first: u64) -> Vec<u8> {
    let mut key = b"_ledger_blocks/".to_vec();
    key.extend_from_slice(&first.to_be_bytes());
    key
}

#[tokio::test]
async fn a_malformed_ledger_key_is_an_error_for_ledger_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    two_ledger_blocks(&store).await;
    // Nine bytes of sequence: sorts between the blocks of entries 1 and 2.
    let mut key = block_key(1);
    key.push(0);
    tamper(store, "data", &[(key, b"x".to_vec())]);
    let store = open(dir.path());
    assert!(corrupt(store.ledger_from(1, 10)));
    // A read that stops before the bad key is unaffected, and so is one after it.
    assert_eq!(store.ledger_from(1, 1).unwrap().len(), 1);
    assert_eq!(store.ledger_from(2, 10).unwrap()[0].sequence, 2);
}

#[tokio::test]
async fn a_damaged_ledger_block_is_an_error_for_ledger_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    two_ledger_blocks(&store).await;
    // An entry that claims five bytes and has two.
    tamper(
        store,
        "data",
        &[(block_key(1), b"\x05\x00\x00\x00ab".to_vec())],
    );
    let store = open(dir.path());
    assert!(corrupt(store.ledger_from(1, 10)));
    assert_eq!(store.ledger_from(2, 10).unwrap().len(), 1);
}

#[tokio::test]
async fn a_store_whose_ledger_position_is_unreadable_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // The last ledger key is where numbering resumes: three bytes cannot be a sequence.
    tamper(
        store,
        "data",
        &[(b"_ledger_blocks/\x01\x02\x03".to_vec(), Vec::new())],
    );
    let opened = Store::open(dir.path(), &identity(), StoreOptions::default());
    assert!(corrupt(opened.map(|_| ())));
}

#[tokio::test]
async fn a_malformed_format_2_ledger_key_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // Format 2's ledger is moved into blocks on open: a key that is no sequence stops it.
    tamper(
        store,
        "data",
        &[(b"_ledger/\x01\x02\x03".to_vec(), Vec::new())],
    );
    let opened = Store::open(dir.path(), &identity(), StoreOptions::default());
    assert!(corrupt(opened.map(|_| ())));
}

#[tokio::test]
async fn a_malformed_format_version_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    tamper(store, "_meta", &[(b"format_version".to_vec(), vec![0, 1])]);
    let error = Store::open(dir.path(), &identity(), StoreOptions::default())
        .err()
        .expect("refused");
    assert!(
        matches!(&error, StoreError::Corrupt(m) if m.contains("format version")),
        "{error}"
    );
}

proptest! {
    /// Any bytes stored as a value of the store's own and of typical service shapes decode
    /// to a value or `Corrupt`.
    #[test]
    fn arbitrary_value_bytes_are_values_or_corrupt(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        fn check<V: Value>(bytes: &[u8]) -> Result<(), TestCaseError> {
            match V::from_bytes(bytes) {
                Ok(_) | Err(StoreError::Corrupt(_)) => Ok(()),
                Err(other) => Err(TestCaseError::fail(format!("{other:?}"))),
            }
        }
        check::<i64>(&bytes)?;
        check::<String>(&bytes)?;
        check::<RequestRecordShape>(&bytes)?;
        check::<(String, u64, Option<Vec<u8>>)>(&bytes)?;
    }

    /// Any raw key is a key of its table or `Corrupt`, and one that decodes is canonical.
    #[test]
    fn arbitrary_raw_keys_are_keys_or_corrupt(rest in prop::collection::vec(any::<u8>(), 0..48)) {
        const TABLE: Table<(String, i64, u32), ()> = Table::new("parts");
        let raw = TABLE.raw_prefix(&rest);
        match TABLE.decode_key(&raw) {
            Ok(key) => prop_assert_eq!(&TABLE.raw_key(&key), &raw),
            Err(error) => prop_assert!(matches!(error, StoreError::Corrupt(_))),
        }
        prop_assert_eq!(TABLE.relative_key(&raw), rest.as_slice());
    }
}
