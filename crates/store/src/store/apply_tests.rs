//! The windows sled off the request path opens: an acknowledged write not yet in sled is
//! seen by every read, a full overlay holds writers back without losing anything, and the
//! apply catches up with a busy key written once.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Store, StoreOptions};
use crate::keys::KeyCodec;
use crate::store::{ForgetRefusals, Idempotent, Identity, ReplyCodec, fingerprint};
use crate::table::{Table, Value};

const BALANCES: Table<String, i64> = Table::new("balance");

/// Answers are the balance after the write, as decimal text.
struct Text;

impl ReplyCodec<i64> for Text {
    fn encode(&self, value: &i64) -> Vec<u8> {
        value.to_string().into_bytes()
    }

    fn decode(&self, bytes: &[u8]) -> Result<i64, String> {
        std::str::from_utf8(bytes)
            .map_err(|e| e.to_string())?
            .parse()
            .map_err(|e: std::num::ParseIntError| e.to_string())
    }
}

fn open(dir: &std::path::Path, options: StoreOptions) -> Store {
    let identity = Identity {
        site: "la-vientiane".into(),
        service: "inventory".into(),
    };
    Store::open(dir, &identity, options).unwrap()
}

/// Adds `delta` to `account` with one ledger entry, under request id `id`.
async fn add(store: &Store, id: &str, account: &str, delta: i64) -> i64 {
    let request = fingerprint(id, format!("{id}:{account}:{delta}").as_bytes());
    let account = account.to_string();
    store
        .write(
            Some(Idempotent::new(&request, &Text, &ForgetRefusals)),
            |tx| {
                let balance = tx.get(&BALANCES, &account)?.unwrap_or(0) + delta;
                tx.put(&BALANCES, &account, &balance)?;
                tx.append_ledger(|sequence| format!("{sequence}:{account}:{delta}").into_bytes());
                Ok::<_, crate::StoreError>(balance)
            },
        )
        .await
        .unwrap()
        .value
}

fn balances(store: &Store) -> BTreeMap<String, i64> {
    store
        .scan_prefix(&BALANCES, &[])
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn an_acknowledged_write_not_yet_in_sled_is_seen_by_every_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), StoreOptions::default());
    add(&store, "r1", "a", 5).await;
    add(&store, "r2", "b", 7).await;
    store.flush_applied().await.unwrap();
    store.inner.commit.pause_apply(true);

    assert_eq!(add(&store, "r3", "a", 2).await, 7);
    add(&store, "r4", "c", 1).await;
    // Acknowledged, not applied: sled still has the old value.
    let in_sled = store
        .inner
        .data
        .get(BALANCES.raw_key(&"a".to_string()))
        .unwrap()
        .unwrap();
    assert_eq!(i64::from_bytes(&in_sled).unwrap(), 5);
    assert!(store.inner.commit.applied_through() < store.inner.commit.durable_through());
    assert_eq!(store.get(&BALANCES, &"a".to_string()).unwrap(), Some(7));
    assert_eq!(store.get(&BALANCES, &"c".to_string()).unwrap(), Some(1));
    let expected: BTreeMap<String, i64> =
        [("a".into(), 7), ("b".into(), 7), ("c".into(), 1)].into();
    assert_eq!(balances(&store), expected);
    let after_a: Vec<String> = store
        .scan_after(&BALANCES, &[], Some(&"a".to_string().encode()))
        .map(|entry| entry.unwrap().0)
        .collect();
    assert_eq!(after_a, ["b", "c"]);
    // The ledger's newest block is only in the overlay; the feed has it already.
    assert_eq!(store.durable_sequence(), 4);
    let ledger: Vec<u64> = store
        .ledger_from(3, 10)
        .unwrap()
        .iter()
        .map(|record| record.sequence)
        .collect();
    assert_eq!(ledger, [3, 4]);
    // A replay of a request whose record is not in sled yet answers the first answer.
    assert_eq!(add(&store, "r3", "a", 2).await, 7);
    // A delete not in sled yet hides the row.
    store
        .write(None::<Idempotent<'_, (), crate::StoreError>>, |tx| {
            tx.delete(&BALANCES, &"b".to_string());
            Ok::<_, crate::StoreError>(())
        })
        .await
        .unwrap();
    assert_eq!(store.get(&BALANCES, &"b".to_string()).unwrap(), None);
    assert!(!balances(&store).contains_key("b"));

    store.inner.commit.pause_apply(false);
    store.flush_applied().await.unwrap();
    let expected: BTreeMap<String, i64> = [("a".into(), 7), ("c".into(), 1)].into();
    assert_eq!(balances(&store), expected);
    store.close();
    drop(store);
    let store = open(dir.path(), StoreOptions::default());
    assert_eq!(balances(&store), expected);
    assert_eq!(store.ledger_from(1, 10).unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_overlay_holds_writers_back_and_loses_nothing() {
    const WRITES: usize = 60;
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        overlay_bytes: 1024,
        ..StoreOptions::default()
    };
    let store = open(dir.path(), options.clone());
    store.inner.commit.pause_apply(true);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut writers = Vec::new();
    for n in 0..WRITES {
        let store = store.clone();
        let done = done.clone();
        writers.push(tokio::spawn(async move {
            // One at a time per account, several accounts at once.
            tokio::time::sleep(Duration::from_millis(n as u64 % 7)).await;
            add(&store, &format!("req-{n}"), &format!("acct-{}", n % 10), 1).await;
            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held_at = done.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        held_at < WRITES,
        "all {WRITES} writes went through a 1 KiB overlay with sled held back"
    );
    assert!(
        store.inner.commit.overlay_bytes() < 1024 + WRITES * 400,
        "writers stopped near the budget"
    );
    store.inner.commit.pause_apply(false);
    for writer in writers {
        tokio::time::timeout(Duration::from_secs(20), writer)
            .await
            .expect("writers go on once the apply catches up")
            .unwrap();
    }
    let total: i64 = balances(&store).values().sum();
    assert_eq!(total, WRITES as i64);
    assert_eq!(store.ledger_from(1, usize::MAX).unwrap().len(), WRITES);
    store.flush_applied().await.unwrap();
    assert_eq!(
        store.inner.commit.overlay_bytes(),
        0,
        "nothing left once applied"
    );
    store.close();
    drop(store);
    let store = open(dir.path(), options);
    let total: i64 = balances(&store).values().sum();
    assert_eq!(total, WRITES as i64, "and all of it after a reopen");
}

#[tokio::test]
async fn a_key_written_by_many_generations_while_sled_is_behind_ends_with_the_last_value() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), StoreOptions::default());
    store.inner.commit.pause_apply(true);
    for n in 0..200 {
        // Each write is its own generation: the previous one was acknowledged.
        add(&store, &format!("req-{n}"), "busy", 1).await;
    }
    assert_eq!(
        store.get(&BALANCES, &"busy".to_string()).unwrap(),
        Some(200)
    );
    store.inner.commit.pause_apply(false);
    store.flush_applied().await.unwrap();
    let in_sled = store
        .inner
        .data
        .get(BALANCES.raw_key(&"busy".to_string()))
        .unwrap()
        .unwrap();
    assert_eq!(i64::from_bytes(&in_sled).unwrap(), 200);
    assert_eq!(store.ledger_from(1, usize::MAX).unwrap().len(), 200);
}
