//! No acknowledged write is lost when the process dies: a child process writes under
//! concurrency and reports every acknowledged write, is killed with SIGKILL mid-load, and
//! the reopened store (which replays the write-ahead log) must hold every one of them.
//!
//! A write is acknowledged once it is in the log, before sled has it, and sled is written
//! in batches of several generations and checkpointed at each full (small) segment: the
//! kills land at different points of that cycle, some with a tiny overlay budget so writers
//! are also waiting for sled when the kill comes.
//!
//! The child is this same test binary, run again with `CHILD_DIR` set: the test function
//! then plays the writer instead of the checker.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use coldchain_store::{
    ForgetRefusals, Idempotent, Identity, Store, StoreOptions, Table, fingerprint,
};

const CHILD_DIR: &str = "COLDCHAIN_STORE_CRASH_CHILD_DIR";
const CHILD_ROUND: &str = "COLDCHAIN_STORE_CRASH_CHILD_ROUND";
const WRITERS: usize = 16;
/// Acknowledged writes to wait for before the kill, one round each.
const ACKS_BEFORE_KILL: [usize; 4] = [3_000, 450, 1_700, 4_200];

/// Writes per writer: the writer's count of its own acknowledged writes.
const COUNTS: Table<String, u64> = Table::new("count");

#[derive(Clone, PartialEq, prost::Message)]
struct Reply {
    #[prost(uint64, tag = "1")]
    count: u64,
}

fn options(round: &str) -> StoreOptions {
    StoreOptions {
        // Small segments: checkpoints (sled flush, segment deletion) happen during the load
        // too, and a kill can land in one.
        wal_segment_bytes: 64 << 10,
        // Odd rounds: writers wait for sled most of the time (see `Store::write`).
        overlay_bytes: if round.parse::<usize>().unwrap_or(0) % 2 == 1 {
            16 << 10
        } else {
            StoreOptions::default().overlay_bytes
        },
        ..StoreOptions::default()
    }
}

fn open(dir: &Path, round: &str) -> Store {
    let identity = Identity {
        site: "la-vientiane".into(),
        service: "inventory".into(),
    };
    Store::open(dir, &identity, options(round)).expect("open")
}

#[test]
fn acknowledged_writes_survive_sigkill_and_the_log_replays() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        let round = std::env::var(CHILD_ROUND).unwrap_or_default();
        child_writer(Path::new(&dir), &round);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut acked: HashMap<String, u64> = HashMap::new();
    for round in 0..ACKS_BEFORE_KILL.len() {
        for (writer, count) in run_child_until_killed(dir.path(), round) {
            let entry = acked.entry(writer).or_default();
            *entry = (*entry).max(count);
        }
        // Reopening replays whatever the log holds beyond sled's files.
        let store = open(dir.path(), "");
        let mut ledger_total = 0u64;
        let mut from = 1;
        loop {
            let page = store.ledger_from(from, 10_000).unwrap();
            let Some(last) = page.last() else { break };
            for (expected, record) in (from..).zip(&page) {
                assert_eq!(record.sequence, expected, "the ledger has no gap");
            }
            from = last.sequence + 1;
            ledger_total += page.len() as u64;
        }
        let mut counted_total = 0u64;
        for (writer, acked_count) in &acked {
            let stored = store.get(&COUNTS, writer).unwrap().unwrap_or(0);
            assert!(
                stored >= *acked_count,
                "round {round}: {writer} acknowledged {acked_count} writes, the store has {stored}"
            );
            counted_total += stored;
        }
        assert_eq!(
            ledger_total, counted_total,
            "round {round}: one ledger entry per write that counted"
        );
        store.close();
    }
}

/// Starts the child, waits for enough acknowledgements, kills it with SIGKILL, and returns
/// the highest acknowledged count of each writer.
fn run_child_until_killed(dir: &Path, round: usize) -> HashMap<String, u64> {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "acknowledged_writes_survive_sigkill_and_the_log_replays",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir)
        .env(CHILD_ROUND, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut acked = HashMap::new();
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    let record = |line: &str, acked: &mut HashMap<String, u64>| -> bool {
        let mut parts = line.split_whitespace();
        if parts.next() != Some("ack") {
            return false;
        }
        let (Some(writer), Some(count)) = (parts.next(), parts.next()) else {
            return false;
        };
        let count: u64 = count.parse().unwrap();
        let entry = acked.entry(writer.to_string()).or_insert(0);
        *entry = (*entry).max(count);
        true
    };
    while seen < ACKS_BEFORE_KILL[round] {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) => seen += usize::from(record(&line, &mut acked)),
            Err(_) => {
                let _ = child.kill();
                panic!("round {round}: only {seen} writes acknowledged before the deadline");
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap();
    // Acknowledgements printed before the kill and not read yet count too.
    for line in lines_rx.try_iter() {
        record(&line, &mut acked);
    }
    acked
}

/// The child: `WRITERS` concurrent writers, each counting its own writes, printing
/// `ack <writer> <count>` once a write is acknowledged. Runs until killed.
fn child_writer(dir: &Path, round: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = open(dir, round);
        let mut tasks = Vec::new();
        for n in 0..WRITERS {
            let store = store.clone();
            let round = round.to_string();
            tasks.push(tokio::spawn(async move {
                let writer = format!("writer-{n}");
                for i in 0u64.. {
                    let id = format!("{round}-{writer}-{i}");
                    let request = fingerprint(&id, id.as_bytes());
                    let key = writer.clone();
                    let reply = store
                        .write(
                            Some(Idempotent::new(
                                &request,
                                &common::Protobuf,
                                &ForgetRefusals,
                            )),
                            move |tx| {
                                let count = tx
                                    .get(&COUNTS, &key)
                                    .map_err(|e| e.to_string())?
                                    .unwrap_or(0)
                                    + 1;
                                tx.put(&COUNTS, &key, &count).map_err(|e| e.to_string())?;
                                tx.append_ledger(|sequence| {
                                    format!("{sequence}:{key}").into_bytes()
                                });
                                Ok::<_, String>(Reply { count })
                            },
                        )
                        .await
                        .expect("write");
                    println!("ack {writer} {}", reply.value.count);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
}
