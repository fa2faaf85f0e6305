//! The store's contracts: atomic serialized writes, group commit, idempotency, ledger,
//! identity checks, and durability across reopen.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use common::raw_sled;

use std::time::Duration;

use coldchain_store::{
    ForgetRefusals, Idempotent, Identity, ManualClock, SWEEP_BATCH, Store, StoreError,
    StoreOptions, Table, Value, WriteError, fingerprint,
};

#[derive(Clone, PartialEq, prost::Message)]
struct Reply {
    #[prost(uint64, tag = "1")]
    sequence: u64,
    #[prost(int64, tag = "2")]
    balance: i64,
}

const BALANCES: Table<String, i64> = Table::new("balance");

fn identity() -> Identity {
    Identity {
        site: "la-vientiane".into(),
        service: "inventory".into(),
    }
}

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, &identity(), StoreOptions::default()).expect("open")
}

/// Adds `delta` to `account` and appends a ledger entry, refusing to go negative.
async fn add(
    store: &Store,
    request_id: Option<&str>,
    account: &str,
    delta: i64,
) -> Result<Reply, WriteError<String>> {
    let request =
        request_id.map(|id| fingerprint(id, format!("{id}:{account}:{delta}").as_bytes()));
    store
        .write(
            request
                .as_ref()
                .map(|r| Idempotent::new(r, &common::Protobuf, &ForgetRefusals)),
            |tx| {
                let balance = tx
                    .get(&BALANCES, &account.to_string())
                    .map_err(|e| e.to_string())?
                    .unwrap_or(0)
                    + delta;
                if balance < 0 {
                    return Err(format!("{account} would go negative"));
                }
                tx.put(&BALANCES, &account.to_string(), &balance)
                    .map_err(|e| e.to_string())?;
                let sequence =
                    tx.append_ledger(|seq| format!("{seq}:{account}:{delta}").into_bytes());
                Ok(Reply { sequence, balance })
            },
        )
        .await
        .map(|written| written.value)
}

/// A store whose request ids are remembered for one hour, on a manual clock.
fn open_with_an_hour_of_retention(dir: &std::path::Path) -> (Store, std::sync::Arc<ManualClock>) {
    let clock = ManualClock::at(1_800_000_000_000);
    let options = StoreOptions {
        idempotency_retention: Duration::from_secs(3600),
        clock: clock.clone(),
        ..StoreOptions::default()
    };
    (Store::open(dir, &identity(), options).unwrap(), clock)
}

/// Adds 1 to account "a" `count` times from `writers` concurrent writers, with request ids
/// `old-0` … `old-{count - 1}`. Returns the replies, in id order.
async fn add_old_ids(store: &Store, writers: usize, count: usize) -> Vec<Reply> {
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut replies = Vec::new();
                for i in (w..count).step_by(writers) {
                    let reply = add(&store, Some(&format!("old-{i}")), "a", 1).await;
                    replies.push((i, reply.unwrap()));
                }
                replies
            })
        })
        .collect();
    let mut replies = vec![Reply::default(); count];
    for task in tasks {
        for (i, reply) in task.await.unwrap() {
            replies[i] = reply;
        }
    }
    replies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_writers_are_all_durable_and_sequenced() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut tasks = Vec::new();
    for writer in 0..64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..20 {
                let id = format!("w{writer}-{i}");
                let reply = add(&store, Some(&id), &format!("acct-{}", writer % 8), 1)
                    .await
                    .unwrap();
                acked.push(reply.sequence);
            }
            acked
        }));
    }
    let mut sequences = Vec::new();
    for task in tasks {
        sequences.extend(task.await.unwrap());
    }
    sequences.sort_unstable();
    assert_eq!(
        sequences,
        (1..=64 * 20).collect::<Vec<u64>>(),
        "gap-free, no duplicates"
    );
    assert_eq!(store.durable_sequence(), 64 * 20);
    store.close();
    drop(store);

    let store = open(dir.path());
    let ledger = store.ledger_from(1, usize::MAX).unwrap();
    assert_eq!(
        ledger.len(),
        64 * 20,
        "every acknowledged write survives a reopen"
    );
    let total: i64 = (0..8)
        .map(|a| store.get(&BALANCES, &format!("acct-{a}")).unwrap().unwrap())
        .sum();
    assert_eq!(total, 64 * 20);
    // The next write continues the sequence.
    assert_eq!(
        add(&store, None, "acct-0", 1).await.unwrap().sequence,
        64 * 20 + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_decrements_never_go_negative() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    add(&store, None, "lot", 100).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut granted = 0;
            for _ in 0..10 {
                if add(&store, None, "lot", -1).await.is_ok() {
                    granted += 1;
                }
            }
            granted
        }));
    }
    let mut granted = 0;
    for task in tasks {
        granted += task.await.unwrap();
    }
    assert_eq!(granted, 100);
    assert_eq!(store.get(&BALANCES, &"lot".to_string()).unwrap(), Some(0));
}

#[tokio::test]
async fn a_rejected_write_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    add(&store, Some("r1"), "a", 5).await.unwrap();
    let error = add(&store, Some("r2"), "a", -6).await.unwrap_err();
    assert!(matches!(error, WriteError::Rejected(_)));
    assert_eq!(store.get(&BALANCES, &"a".to_string()).unwrap(), Some(5));
    assert_eq!(store.ledger_from(1, 10).unwrap().len(), 1);
    // A refusal its codec does not keep (here none is: `ForgetRefusals`) leaves the id
    // unremembered, so the same id with the same content runs again.
    assert!(add(&store, Some("r2"), "a", -6).await.is_err());
}

#[tokio::test]
async fn a_replayed_request_returns_the_first_response_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let first = add(&store, Some("req-1"), "a", 5).await.unwrap();
    let again = add(&store, Some("req-1"), "a", 5).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(store.get(&BALANCES, &"a".to_string()).unwrap(), Some(5));
    assert_eq!(store.ledger_from(1, 10).unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_replays_apply_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            add(&store, Some("same"), "a", 1).await.unwrap()
        }));
    }
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.unwrap());
    }
    assert!(replies.iter().all(|r| *r == replies[0]));
    assert_eq!(store.get(&BALANCES, &"a".to_string()).unwrap(), Some(1));
}

/// Retries every id of `count` from `writers` concurrent writers: each must get its first
/// reply back (the replies carry the ledger sequence) and change nothing.
async fn retry_old_ids(store: &Store, writers: usize, count: usize, first: &[Reply]) {
    let before = store.get(&BALANCES, &"a".to_string()).unwrap();
    assert_eq!(add_old_ids(store, writers, count).await, first);
    assert_eq!(store.get(&BALANCES, &"a".to_string()).unwrap(), before);
}

/// The request filter lets a write skip looking up an id it has never seen: it must never
/// call an id new that has a record, whether recorded in this run or before a restart,
/// whatever its memory budget (a budget too small for one generation, and off).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_recorded_id_replays_before_and_after_a_reopen_whatever_the_filters_budget() {
    const WRITERS: usize = 16;
    const IDS: usize = 1_500;
    for budget in [1 << 20, 1, 0] {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            request_filter_bytes: budget,
            ..StoreOptions::default()
        };
        let store = Store::open(dir.path(), &identity(), options.clone()).unwrap();
        let first = add_old_ids(&store, WRITERS, IDS).await;
        retry_old_ids(&store, WRITERS, IDS, &first).await;
        store.close();
        drop(store);
        let store = Store::open(dir.path(), &identity(), options).unwrap();
        retry_old_ids(&store, WRITERS, IDS, &first).await;
        assert_eq!(
            add(&store, Some("new"), "a", 1).await.unwrap().balance,
            IDS as i64 + 1,
            "budget {budget}"
        );
    }
}

/// The filter forgets ids only once they have expired: an id recorded half an hour after
/// others (in the same filter generation) still replays when those have expired, before
/// and after a reopen.
#[tokio::test]
async fn an_id_replays_until_it_expires_even_when_older_ids_beside_it_have() {
    let dir = tempfile::tempdir().unwrap();
    let (store, clock) = open_with_an_hour_of_retention(dir.path());
    let balance = |store: &Store| store.get(&BALANCES, &"a".to_string()).unwrap().unwrap();
    add(&store, Some("early"), "a", 1).await.unwrap();
    clock.advance(Duration::from_secs(30 * 60));
    add(&store, Some("late"), "a", 1).await.unwrap();
    clock.advance(Duration::from_secs(31 * 60));
    // "early" has expired: it is new again. "late" has not.
    add(&store, Some("late"), "a", 1).await.unwrap();
    assert_eq!(balance(&store), 2);
    add(&store, Some("early"), "a", 1).await.unwrap();
    assert_eq!(balance(&store), 3);
    store.close();
    drop(store);

    let options = StoreOptions {
        idempotency_retention: Duration::from_secs(3600),
        clock: clock.clone(),
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), &identity(), options).unwrap();
    add(&store, Some("late"), "a", 1).await.unwrap();
    add(&store, Some("early"), "a", 1).await.unwrap();
    assert_eq!(balance(&store), 3, "both replay after the reopen");
    clock.advance(Duration::from_secs(29 * 60));
    add(&store, Some("late"), "a", 1).await.unwrap();
    assert_eq!(
        balance(&store),
        4,
        "late expired an hour after it was recorded"
    );
}

#[tokio::test]
async fn the_same_request_id_with_another_request_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    add(&store, Some("req-1"), "a", 5).await.unwrap();
    let error = add(&store, Some("req-1"), "a", 6).await.unwrap_err();
    assert!(matches!(error, WriteError::RequestIdReused(id) if id == "req-1"));
    assert_eq!(store.get(&BALANCES, &"a".to_string()).unwrap(), Some(5));
}

#[tokio::test]
async fn request_ids_expire_after_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(1_800_000_000_000);
    let options = StoreOptions {
        idempotency_retention: Duration::from_secs(24 * 3600),
        clock: clock.clone(),
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), &identity(), options).unwrap();
    add(&store, Some("req-1"), "a", 5).await.unwrap();
    clock.advance(Duration::from_secs(23 * 3600));
    add(&store, Some("req-1"), "a", 5).await.unwrap();
    assert_eq!(
        store.get(&BALANCES, &"a".to_string()).unwrap(),
        Some(5),
        "kept for 23 h"
    );
    assert_eq!(store.sweep_expired_requests().await.unwrap(), 0);
    clock.advance(Duration::from_secs(3600));
    assert_eq!(store.sweep_expired_requests().await.unwrap(), 1);
    add(&store, Some("req-1"), "a", 5).await.unwrap();
    assert_eq!(
        store.get(&BALANCES, &"a".to_string()).unwrap(),
        Some(10),
        "forgotten after 24 h"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_larger_than_one_generation_forgets_every_expired_id_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (store, clock) = open_with_an_hour_of_retention(dir.path());
    let expired = SWEEP_BATCH + 100;
    add_old_ids(&store, 32, expired).await;
    clock.advance(Duration::from_secs(2 * 3600));
    add(&store, Some("fresh"), "a", 1).await.unwrap();

    assert_eq!(store.sweep_expired_requests().await.unwrap(), expired);
    assert_eq!(store.sweep_expired_requests().await.unwrap(), 0);
    let balance = |store: &Store| store.get(&BALANCES, &"a".to_string()).unwrap();
    assert_eq!(balance(&store), Some(expired as i64 + 1));
    // The fresh id is still remembered: its retry changes nothing. An expired one is new.
    add(&store, Some("fresh"), "a", 1).await.unwrap();
    assert_eq!(balance(&store), Some(expired as i64 + 1));
    add(&store, Some("old-0"), "a", 1).await.unwrap();
    assert_eq!(balance(&store), Some(expired as i64 + 2));
}

#[tokio::test]
async fn ledger_scans_from_a_sequence_and_wakes_subscribers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut watch = store.subscribe_ledger();
    for i in 0..10 {
        add(&store, None, "a", i).await.unwrap();
    }
    watch.changed().await.unwrap();
    assert_eq!(*watch.borrow(), 10);
    let page = store.ledger_from(4, 3).unwrap();
    assert_eq!(
        page.iter().map(|r| r.sequence).collect::<Vec<_>>(),
        vec![4, 5, 6]
    );
    assert_eq!(page[0].bytes, b"4:a:3".to_vec());
    assert!(store.ledger_from(11, 3).unwrap().is_empty());
}

#[tokio::test]
async fn another_sites_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        add(&store, None, "a", 1).await.unwrap();
        store.close();
    }
    let other = Identity {
        site: "vn-hanoi".into(),
        service: "inventory".into(),
    };
    let error = Store::open(dir.path(), &other, StoreOptions::default())
        .err()
        .unwrap();
    assert!(
        matches!(error, StoreError::Incompatible(ref m) if m.contains("la-vientiane") && m.contains("vn-hanoi")),
        "{error}"
    );
    let store = open(dir.path());
    assert_eq!(store.get(&BALANCES, &"a".to_string()).unwrap(), Some(1));
}

/// sled's I/O threads can hold a closed database's lock a moment after its last handle is
/// dropped: a reopen in the same process waits for it instead of failing.
#[tokio::test]
async fn a_database_whose_lock_is_released_soon_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path()).close();
    let held = raw_sled(dir.path());
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(held);
    });
    let store = open(dir.path());
    release.join().unwrap();
    add(&store, None, "a", 1).await.unwrap();
}

#[tokio::test]
async fn a_database_another_handle_keeps_open_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path()).close();
    let _held = raw_sled(dir.path());
    let error = Store::open(dir.path(), &identity(), StoreOptions::default())
        .err()
        .expect("a database held by another handle must not open twice");
    let message = error.to_string();
    assert!(
        message.contains("in use") && message.contains(&dir.path().display().to_string()),
        "{message}"
    );
}

#[tokio::test]
async fn a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = raw_sled(dir.path());
        let meta = db.open_tree("_meta").unwrap();
        meta.insert("format_version", &99u32.to_be_bytes()).unwrap();
        meta.insert("site", "la-vientiane").unwrap();
        meta.insert("service", "inventory").unwrap();
        db.flush().unwrap();
    }
    let error = Store::open(dir.path(), &identity(), StoreOptions::default())
        .err()
        .unwrap();
    assert!(error.to_string().contains("format version 99"), "{error}");
}

#[tokio::test]
async fn a_version_1_database_opens_and_is_marked_with_the_current_format() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = raw_sled(dir.path());
        let meta = db.open_tree("_meta").unwrap();
        meta.insert("format_version", &1u32.to_be_bytes()).unwrap();
        meta.insert("site", "la-vientiane").unwrap();
        meta.insert("service", "inventory").unwrap();
        db.open_tree("data")
            .unwrap()
            .insert(BALANCES.raw_key(&"a".to_string()), 7i64.to_bytes().unwrap())
            .unwrap();
        db.flush().unwrap();
    }
    {
        let store = open(dir.path());
        assert_eq!(store.get(&BALANCES, &"a".to_string()).unwrap(), Some(7));
        add(&store, None, "a", 1).await.unwrap();
        store.close();
    }
    let db = raw_sled(dir.path());
    let version = db
        .open_tree("_meta")
        .unwrap()
        .get("format_version")
        .unwrap();
    assert_eq!(
        version.as_deref(),
        Some(&coldchain_store::FORMAT_VERSION.to_be_bytes()[..]),
        "a binary that does not know the write-ahead log must not open it any more"
    );
}

#[tokio::test]
async fn full_log_segments_are_retired_while_writing_and_the_log_is_empty_after_close() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        wal_segment_bytes: 4 << 10,
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), &identity(), options).unwrap();
    for i in 0..400 {
        add(&store, Some(&format!("req-{i}")), "a", 1)
            .await
            .unwrap();
    }
    let segments = || {
        std::fs::read_dir(dir.path().join("wal"))
            .unwrap()
            .filter(|entry| {
                let name = entry.as_ref().unwrap().file_name();
                name.to_string_lossy().ends_with(".log")
            })
            .count()
    };
    // 400 writes are about 40 segments of 4 KiB: all but the one being written (and at
    // most one closed but not yet retired) are gone.
    assert!(segments() <= 2, "{} segments left", segments());
    store.close();
    assert_eq!(segments(), 0, "a clean close leaves nothing to replay");
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.get(&BALANCES, &"a".to_string()).unwrap(), Some(400));
}

#[tokio::test]
async fn when_the_log_cannot_be_written_writes_fail_and_the_store_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        // Every record starts a new segment, so the next write must create a file.
        wal_segment_bytes: 1,
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), &identity(), options).unwrap();
    add(&store, Some("req-1"), "a", 1).await.unwrap();
    assert!(store.check().is_ok());
    let watcher = tokio::spawn({
        let store = store.clone();
        async move { store.failed().await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!watcher.is_finished(), "a healthy store has not failed");
    std::fs::remove_dir_all(dir.path().join("wal")).unwrap();
    let failed = add(&store, Some("req-2"), "a", 1).await;
    assert!(
        matches!(failed, Err(WriteError::Store(StoreError::Flush(_)))),
        "{failed:?}"
    );
    let reason = tokio::time::timeout(std::time::Duration::from_secs(5), watcher)
        .await
        .expect("whoever watches the store hears of the failure")
        .unwrap();
    assert!(reason.contains("write-ahead log"), "{reason}");
    // Asked again, after the fact, it answers at once.
    assert_eq!(store.failed().await, reason);
    assert!(
        matches!(store.check(), Err(StoreError::Flush(_))),
        "health must see that writes can no longer be made durable"
    );
    let later = add(&store, Some("req-3"), "a", 1).await;
    assert!(
        matches!(later, Err(WriteError::Store(StoreError::Flush(_)))),
        "{later:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_read_never_sees_half_a_write_even_through_the_stores_own_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    add(&store, None, "a", 1000).await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Writers move one unit between two accounts per write: the sum is always 1000.
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                let (from, to) = if w % 2 == 0 { ("a", "b") } else { ("b", "a") };
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = store
                        .write::<Reply, String, _>(None, |tx| {
                            let get = |k: &str| tx.get(&BALANCES, &k.to_string());
                            let source = get(from).map_err(|e| e.to_string())?.unwrap_or(0);
                            if source == 0 {
                                return Err("empty".into());
                            }
                            let target = get(to).map_err(|e| e.to_string())?.unwrap_or(0);
                            tx.put(&BALANCES, &from.to_string(), &(source - 1))
                                .map_err(|e| e.to_string())?;
                            tx.put(&BALANCES, &to.to_string(), &(target + 1))
                                .map_err(|e| e.to_string())?;
                            Ok(Reply::default())
                        })
                        .await;
                }
            })
        })
        .collect();
    // Let the writers get going, then read for a while: a torn read needs a locked read to
    // land while the apply thread is between the two keys of a generation.
    while store.get(&BALANCES, &"b".to_string()).unwrap().is_none() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let until = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < until {
        let sum = store
            .read_locked(|_| {
                let read = |k: &str| store.get(&BALANCES, &k.to_string()).unwrap().unwrap_or(0);
                read("a") + read("b")
            })
            .await;
        assert_eq!(sum, 1000, "a locked read saw part of a write");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
}

#[tokio::test]
async fn corrupt_values_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // Eleven continuation bytes: an over-long varint where an i64 is expected.
    const RAW: Table<String, [u8; 11]> = Table::new("balance");
    store
        .write::<Reply, String, _>(None, |tx| {
            tx.put(&RAW, &"a".to_string(), &[0xFF; 11])
                .map_err(|e| e.to_string())?;
            Ok(Reply::default())
        })
        .await
        .unwrap();
    let read = store.get(&BALANCES, &"a".to_string());
    assert!(matches!(read, Err(StoreError::Corrupt(_))), "{read:?}");
    let scanned: Vec<_> = store.scan_prefix(&BALANCES, &[]).collect();
    assert!(matches!(scanned.as_slice(), [Err(StoreError::Corrupt(_))]));
}

#[tokio::test]
async fn a_write_that_changes_nothing_still_completes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let written = tokio::time::timeout(
        Duration::from_secs(10),
        store.write::<Reply, String, _>(None, |_| Ok(Reply::default())),
    )
    .await
    .expect("a write with nothing to stage must not wait forever");
    assert!(written.is_ok());
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), store.sweep_expired_requests())
            .await
            .expect("a sweep that removes nothing must not wait forever")
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn writes_after_close_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.close();
    assert!(matches!(
        add(&store, None, "a", 1).await,
        Err(WriteError::Store(StoreError::Closed))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_used_again_after_it_expired_keeps_its_new_record_through_the_old_ones_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let (store, clock) = open_with_an_hour_of_retention(dir.path());
    add(&store, Some("req-1"), "a", 1).await.unwrap();
    clock.advance(Duration::from_secs(2 * 3600));
    // Expired: the id is new again, and gets a new record.
    add(&store, Some("req-1"), "a", 1).await.unwrap();
    // The first record's expiry entry is due; the record under the id now is not.
    assert_eq!(store.sweep_expired_requests().await.unwrap(), 0);
    add(&store, Some("req-1"), "a", 1).await.unwrap();
    assert_eq!(
        store.get(&BALANCES, &"a".to_string()).unwrap(),
        Some(2),
        "the retry of the second use must replay"
    );
}

/// Rewrites a closed format 3 database into format 2's layout: one key per ledger entry
/// and per request-expiry record.
fn downgrade_to_format_2(path: &std::path::Path) {
    const BLOCKS: &[u8] = b"_ledger_blocks/";
    const EXPIRY: Table<(i64, String), Vec<String>> = Table::new("_request_expiry");
    const LEGACY_EXPIRY: Table<(i64, String), ()> = Table::new("_requests_by_time");
    let db = raw_sled(path);
    let data = db.open_tree("data").unwrap();
    for block in data.scan_prefix(BLOCKS) {
        let (key, value) = block.unwrap();
        let mut sequence = u64::from_be_bytes(key[BLOCKS.len()..].try_into().unwrap());
        // Packed at rest (format 6): the magic, the count, the plain length, zstd.
        let value = match value.strip_prefix(b"zL\x01\xff") {
            Some(packed) => {
                let plain_len = u32::from_le_bytes(packed[4..8].try_into().unwrap());
                zstd::bulk::decompress(&packed[8..], plain_len as usize).unwrap()
            }
            None => value.to_vec(),
        };
        let mut rest = &value[..];
        while !rest.is_empty() {
            let length = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
            let mut legacy = b"_ledger/".to_vec();
            legacy.extend_from_slice(&sequence.to_be_bytes());
            data.insert(legacy, &rest[4..4 + length]).unwrap();
            rest = &rest[4 + length..];
            sequence += 1;
        }
        data.remove(key).unwrap();
    }
    for entry in data.scan_prefix(EXPIRY.raw_prefix(&[])) {
        let (key, value) = entry.unwrap();
        let ((newest_ms, _), ids) = (
            EXPIRY.decode_key(&key).unwrap(),
            Vec::<String>::from_bytes(&value).unwrap(),
        );
        for id in ids {
            data.insert(LEGACY_EXPIRY.raw_key(&(newest_ms, id)), b"")
                .unwrap();
        }
        data.remove(key).unwrap();
    }
    db.open_tree("_meta")
        .unwrap()
        .insert("format_version", &2u32.to_be_bytes())
        .unwrap();
    db.flush().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_2_database_opens_with_its_ledger_and_request_ids_intact() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(1_800_000_000_000);
    let options = || StoreOptions {
        idempotency_retention: Duration::from_secs(3600),
        clock: clock.clone(),
        ..StoreOptions::default()
    };
    // More entries than the upgrade moves per chunk, from concurrent writers.
    let writes = 2_500usize;
    let store = Store::open(dir.path(), &identity(), options()).unwrap();
    add_old_ids(&store, 16, writes).await;
    let before = store.ledger_from(1, usize::MAX).unwrap();
    assert_eq!(before.len(), writes);
    store.close();
    drop(store);
    downgrade_to_format_2(dir.path());

    let store = Store::open(dir.path(), &identity(), options()).unwrap();
    assert_eq!(store.ledger_from(1, usize::MAX).unwrap(), before);
    assert_eq!(store.ledger_from(1_000, 2).unwrap(), before[999..1001]);
    // Numbering carries on, and the old ids are still remembered.
    assert_eq!(add(&store, None, "a", 1).await.unwrap().sequence, 2_501);
    add(&store, Some("old-7"), "a", 1).await.unwrap();
    let balance = |store: &Store| store.get(&BALANCES, &"a".to_string()).unwrap();
    assert_eq!(balance(&store), Some(2_501));
    // And they expire like any other.
    clock.advance(Duration::from_secs(2 * 3600));
    assert_eq!(store.sweep_expired_requests().await.unwrap(), writes);
    add(&store, Some("old-7"), "a", 1).await.unwrap();
    assert_eq!(balance(&store), Some(2_502));
    store.close();
    drop(store);

    let db = raw_sled(dir.path());
    let data = db.open_tree("data").unwrap();
    assert_eq!(data.scan_prefix(b"_ledger/").count(), 0);
    assert_eq!(data.scan_prefix(b"_requests_by_time/").count(), 0);
    assert_eq!(
        db.open_tree("_meta")
            .unwrap()
            .get("format_version")
            .unwrap()
            .as_deref(),
        Some(&coldchain_store::FORMAT_VERSION.to_be_bytes()[..])
    );
}

/// Ledger blocks rest packed in sled (format 6) and read back exactly, by any range, before
/// and after a restart; the packed block is a fraction of the entries' bytes.
#[tokio::test]
async fn ledger_blocks_rest_packed_and_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let entry = |seq: u64| {
        format!(
            "receipt request fill-7:{seq} sku SKU-{:03} lot L-{} zone chilled-a kg +10",
            seq % 100,
            seq / 100
        )
        .into_bytes()
    };
    let plain_bytes: usize = (1..=600).map(|seq| entry(seq).len() + 4).sum();
    {
        let store = open(dir.path());
        store
            .write::<(), String, _>(None, |tx| {
                for _ in 0..600 {
                    tx.append_ledger(entry);
                }
                Ok(())
            })
            .await
            .unwrap();
        let read: Vec<_> = store.ledger_from(1, 1000).unwrap();
        assert_eq!(read.len(), 600, "read back before it is applied, or after");
        store.close();
    }
    {
        let db = common::raw_sled(dir.path());
        let data = db.open_tree("data").unwrap();
        let blocks: Vec<_> = data
            .scan_prefix(b"_ledger_blocks/")
            .map(|block| block.unwrap().1)
            .collect();
        assert_eq!(blocks.len(), 1);
        assert!(blocks[0].starts_with(b"zL\x01\xff"), "packed");
        assert!(
            blocks[0].len() * 4 < plain_bytes,
            "{} of {plain_bytes}",
            blocks[0].len()
        );
    }
    let store = open(dir.path());
    for (from, limit) in [(1, 1000), (1, 1), (299, 3), (600, 10), (601, 10)] {
        let read = store.ledger_from(from, limit).unwrap();
        let expected: Vec<u64> = (from..=600).take(limit).collect();
        assert_eq!(
            read.iter().map(|r| r.sequence).collect::<Vec<_>>(),
            expected
        );
        for record in read {
            assert_eq!(record.bytes, entry(record.sequence));
        }
    }
}
