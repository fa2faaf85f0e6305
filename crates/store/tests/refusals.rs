//! Remembered refusals: a write refused while it executed keeps its refusal under its
//! request_id when the write's `RefusalCodec` says so, and a retry answers that refusal
//! whatever the state has become; a refusal the codec forgets is not kept.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::sync::Arc;
use std::time::Duration;

use coldchain_store::{
    Idempotent, Identity, ManualClock, RefusalCodec, Store, StoreOptions, Table, WriteError,
    fingerprint,
};

#[derive(Clone, PartialEq, prost::Message)]
struct Reply {
    #[prost(int64, tag = "1")]
    balance: i64,
}

const BALANCES: Table<String, i64> = Table::new("balance");
/// Written by the closure before it refuses: must never reach the store.
const ATTEMPTS: Table<String, u64> = Table::new("attempts");

/// Keeps refusals that are outcomes (`"no: …"`), forgets the others (`"storage: …"`).
struct KeepOutcomes;

impl RefusalCodec<String> for KeepOutcomes {
    fn encode(&self, refusal: &String) -> Option<Vec<u8>> {
        refusal
            .starts_with("no:")
            .then(|| refusal.clone().into_bytes())
    }
}

fn open(dir: &std::path::Path, clock: Arc<ManualClock>) -> Store {
    let identity = Identity {
        site: "la-vientiane".into(),
        service: "inventory".into(),
    };
    let options = StoreOptions {
        idempotency_retention: Duration::from_secs(3600),
        clock,
        ..StoreOptions::default()
    };
    Store::open(dir, &identity, options).expect("open")
}

/// Adds `delta` to `account` under `request_id`, refusing to go negative (an outcome) and,
/// when `storage_fails`, with a refusal that is not an outcome. Stages a put before it
/// refuses, which a refusal must drop.
async fn add(
    store: &Store,
    request_id: &str,
    account: &str,
    delta: i64,
    storage_fails: bool,
) -> Result<i64, WriteError<String>> {
    let request = fingerprint(request_id, format!("{account}:{delta}").as_bytes());
    store
        .write(
            Some(Idempotent::new(&request, &common::Protobuf, &KeepOutcomes)),
            |tx| {
                tx.put(&ATTEMPTS, &request_id.to_string(), &1)
                    .map_err(|e| e.to_string())?;
                if storage_fails {
                    return Err("storage: the disk is gone".to_string());
                }
                let balance = tx
                    .get(&BALANCES, &account.to_string())
                    .map_err(|e| e.to_string())?
                    .unwrap_or(0)
                    + delta;
                if balance < 0 {
                    return Err(format!("no: {account} has {}", balance - delta));
                }
                tx.put(&BALANCES, &account.to_string(), &balance)
                    .map_err(|e| e.to_string())?;
                tx.append_ledger(|seq| format!("{seq}:{account}:{delta}").into_bytes());
                Ok(Reply { balance })
            },
        )
        .await
        .map(|written| written.value.balance)
}

fn balance(store: &Store, account: &str) -> Option<i64> {
    store.get(&BALANCES, &account.to_string()).unwrap()
}

#[tokio::test]
async fn a_kept_refusal_answers_again_after_the_state_allows_the_request() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), ManualClock::at(1_800_000_000_000));
    add(&store, "r-1", "a", 3, false).await.unwrap();

    let first = add(&store, "r-2", "a", -5, false).await.unwrap_err();
    assert!(matches!(&first, WriteError::Rejected(m) if m == "no: a has 3"));
    add(&store, "r-3", "a", 10, false).await.unwrap();

    // The same request, now that it would pass: its first outcome, and no debit.
    let again = add(&store, "r-2", "a", -5, false).await.unwrap_err();
    assert!(matches!(&again, WriteError::Remembered(kept) if kept == b"no: a has 3"));
    assert_eq!(balance(&store, "a"), Some(13));
    assert_eq!(store.ledger_from(1, 10).unwrap().len(), 2);
    // What the refused closure staged before refusing was dropped.
    assert_eq!(store.get(&ATTEMPTS, &"r-2".to_string()).unwrap(), None);
    // The id still belongs to that request.
    assert!(matches!(
        add(&store, "r-2", "a", -4, false).await,
        Err(WriteError::RequestIdReused(id)) if id == "r-2"
    ));
}

#[tokio::test]
async fn a_refusal_the_codec_forgets_is_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), ManualClock::at(1_800_000_000_000));
    let failed = add(&store, "r-1", "a", 4, true).await.unwrap_err();
    assert!(matches!(failed, WriteError::Rejected(m) if m.starts_with("storage:")));
    // The retry executes afresh and succeeds.
    assert_eq!(add(&store, "r-1", "a", 4, false).await.unwrap(), 4);
    assert_eq!(add(&store, "r-1", "a", 4, false).await.unwrap(), 4);
    assert_eq!(balance(&store, "a"), Some(4));
}

#[tokio::test]
async fn a_kept_refusal_survives_a_restart_and_expires_with_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(1_800_000_000_000);
    {
        let store = open(dir.path(), clock.clone());
        add(&store, "r-1", "a", -1, false).await.unwrap_err();
        store.close();
    }
    let store = open(dir.path(), clock.clone());
    add(&store, "r-2", "a", 5, false).await.unwrap();
    assert!(matches!(
        add(&store, "r-1", "a", -1, false).await,
        Err(WriteError::Remembered(_))
    ));
    clock.advance(Duration::from_secs(3600));
    // Past the retention the id is forgotten: the request executes as new.
    assert_eq!(add(&store, "r-1", "a", -1, false).await.unwrap(), 4);
}

/// Many clients race to withdraw one each from a balance of 10, then all retry with their
/// ids after a deposit: those refused are refused again, those granted get their answer
/// back, and nobody is debited twice or late.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_refusals_are_kept_exactly_for_the_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), ManualClock::at(1_800_000_000_000));
    add(&store, "seed", "lot", 10, false).await.unwrap();
    let race = |store: Store| async move {
        let mut tasks = Vec::new();
        for i in 0..40 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                (i, add(&store, &format!("w-{i}"), "lot", -1, false).await)
            }));
        }
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        outcomes
    };
    let first = race(store.clone()).await;
    let granted: Vec<usize> = first
        .iter()
        .filter(|(_, outcome)| outcome.is_ok())
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(granted.len(), 10);
    assert!(
        first
            .iter()
            .all(|(_, o)| o.is_ok() || matches!(o, Err(WriteError::Rejected(_))))
    );

    add(&store, "deposit", "lot", 100, false).await.unwrap();
    let again = race(store.clone()).await;
    for ((i, before), (_, after)) in first.iter().zip(&again) {
        match (before, after) {
            (Ok(balance), Ok(replayed)) => assert_eq!(balance, replayed, "w-{i}"),
            (Err(WriteError::Rejected(_)), Err(WriteError::Remembered(_))) => {}
            other => panic!("w-{i}: {other:?}"),
        }
    }
    assert_eq!(balance(&store, "lot"), Some(100));
    assert_eq!(store.ledger_from(1, 100).unwrap().len(), 12);
}
