#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking
//! Online snapshots: taken under concurrent writes, they restore to a database consistent
//! at one ledger sequence that holds every write acknowledged before they began; a damaged
//! file, another identity's backup and a newer format are refused.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use coldchain_store::snapshot::{self, SnapshotManifest};
use coldchain_store::{FORMAT_VERSION, Identity, Store, StoreError, StoreOptions, Table};

const BALANCES: Table<String, i64> = Table::new("balance");

fn identity() -> Identity {
    Identity {
        site: "la-vientiane".into(),
        service: "inventory".into(),
    }
}

fn open(dir: &Path) -> Store {
    Store::open(
        dir,
        &identity(),
        StoreOptions {
            // Small segments: checkpoints retire segments while a snapshot copies.
            wal_segment_bytes: 64 << 10,
            ..StoreOptions::default()
        },
    )
    .expect("open")
}

/// Adds `delta` to `account` and appends the ledger entry `seq:account:delta`.
async fn add(store: &Store, account: &str, delta: i64) -> u64 {
    store
        .write::<_, String, _>(None, |tx| {
            let balance = tx
                .get(&BALANCES, &account.to_string())
                .map_err(|e| e.to_string())?
                .unwrap_or(0)
                + delta;
            tx.put(&BALANCES, &account.to_string(), &balance)
                .map_err(|e| e.to_string())?;
            Ok(tx.append_ledger(|seq| format!("{seq}:{account}:{delta}").into_bytes()))
        })
        .await
        .expect("write")
        .value
}

/// A sink slow enough that many generations commit (and segments retire) during a copy.
struct SlowFile {
    file: std::fs::File,
    since_pause: usize,
}

impl Write for SlowFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.since_pause += buf.len();
        if self.since_pause > 2 << 10 {
            self.since_pause = 0;
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

async fn snapshot_to(store: &Store, file: &Path) -> SnapshotManifest {
    let sink = SlowFile {
        file: std::fs::File::create(file).unwrap(),
        since_pause: 0,
    };
    let (_, manifest) = store.snapshot(sink).await.expect("snapshot");
    manifest
}

/// Checks the restored ledger is gapless from 1 to the manifest's sequence and every
/// balance is the sum of its entries; returns the ledger's entries by sequence.
fn check_consistent(store: &Store, manifest: &SnapshotManifest) -> BTreeMap<u64, String> {
    let ledger = store.ledger_from(1, usize::MAX).unwrap();
    assert_eq!(store.durable_sequence(), manifest.ledger_sequence);
    assert_eq!(ledger.len() as u64, manifest.ledger_sequence, "gapless");
    let mut sums: BTreeMap<String, i64> = BTreeMap::new();
    let mut entries = BTreeMap::new();
    for (record, expected) in ledger.iter().zip(1u64..) {
        assert_eq!(record.sequence, expected, "gapless");
        let text = String::from_utf8(record.bytes.clone()).unwrap();
        let mut parts = text.split(':');
        assert_eq!(parts.next().unwrap(), expected.to_string());
        let account = parts.next().unwrap().to_string();
        let delta: i64 = parts.next().unwrap().parse().unwrap();
        *sums.entry(account).or_default() += delta;
        entries.insert(record.sequence, text);
    }
    let balances: BTreeMap<String, i64> = store
        .scan_prefix(&BALANCES, &[])
        .map(|entry| entry.unwrap())
        .collect();
    assert_eq!(balances, sums, "balances are the sums of the ledger");
    entries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_snapshot_under_write_load_restores_consistent_at_its_sequence_with_every_earlier_write()
{
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("db"));
    // Enough keys that the copy takes a while.
    let mut acknowledged = BTreeMap::new();
    for i in 0..3_000i64 {
        let account = format!("a{:04}", i % 1_500);
        let sequence = add(&store, &account, i + 1).await;
        acknowledged.insert(sequence, format!("{sequence}:{account}:{}", i + 1));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) {
                add(&store, &format!("a{:04}", (n * 7 + w) % 1_500), n % 5 - 2).await;
                n += 1;
            }
            n
        }));
    }
    // Writes acknowledged while the load runs, before the snapshot begins.
    for i in 0..50i64 {
        let sequence = add(&store, "before", i).await;
        acknowledged.insert(sequence, format!("{sequence}:before:{i}"));
    }
    let file = dir.path().join("backup.ccsnap");
    let manifest = snapshot_to(&store, &file).await;
    stop.store(true, Ordering::Relaxed);
    let mut during = 0;
    for writer in writers {
        during += writer.await.unwrap();
    }
    assert!(during > 0);
    assert!(manifest.log_records > 0, "writes went on during the copy");
    let verified = snapshot::verify(&file).unwrap();
    assert_eq!(verified, manifest);
    store.close();

    let restored_dir = dir.path().join("restored");
    let restored = snapshot::restore(&file, &restored_dir, &identity()).unwrap();
    assert_eq!(restored, manifest);
    let restored = open(&restored_dir);
    let entries = check_consistent(&restored, &manifest);
    for (sequence, entry) in &acknowledged {
        assert_eq!(
            entries.get(sequence),
            Some(entry),
            "acknowledged write {sequence}"
        );
    }
    // The restored database takes writes, continuing its ledger.
    let next = add(&restored, "after", 1).await;
    assert_eq!(next, manifest.ledger_sequence + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_running_side_by_side_each_restore_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("db"));
    for i in 0..500i64 {
        add(&store, &format!("a{}", i % 50), 1).await;
    }
    let load = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..2_000i64 {
                add(&store, &format!("a{}", i % 50), 1).await;
            }
        })
    };
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    let (a, b) = tokio::join!(snapshot_to(&store, &first), snapshot_to(&store, &second));
    load.await.unwrap();
    store.close();
    for (file, manifest) in [(&first, &a), (&second, &b)] {
        let target = dir.path().join(format!("r-{}", manifest.sha256));
        snapshot::restore(file, &target, &identity()).unwrap();
        check_consistent(&open(&target), manifest);
    }
}

#[tokio::test]
async fn a_flipped_byte_anywhere_is_caught_by_verify_and_by_restore() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("db"));
    for i in 0..40i64 {
        add(&store, &format!("a{}", i % 4), i).await;
    }
    let file = dir.path().join("backup");
    snapshot_to(&store, &file).await;
    store.close();
    let bytes = std::fs::read(&file).unwrap();
    let damaged = dir.path().join("damaged");
    let step = (bytes.len() / 200).max(1);
    let mut positions: Vec<usize> = (0..bytes.len()).step_by(step).collect();
    positions.push(bytes.len() - 1);
    for at in positions {
        let mut copy = bytes.clone();
        copy[at] ^= 0x04;
        std::fs::write(&damaged, &copy).unwrap();
        assert!(snapshot::verify(&damaged).is_err(), "byte {at}");
        let target = dir.path().join("target");
        assert!(
            snapshot::restore(&damaged, &target, &identity()).is_err(),
            "byte {at}"
        );
        assert!(!target.exists(), "nothing is left after a refused restore");
    }
    // Cut short, or with bytes after its end.
    std::fs::write(&damaged, &bytes[..bytes.len() - 1]).unwrap();
    assert!(snapshot::verify(&damaged).is_err());
    let mut longer = bytes.clone();
    longer.push(0);
    std::fs::write(&damaged, &longer).unwrap();
    assert!(snapshot::verify(&damaged).is_err());
}

#[tokio::test]
async fn another_identitys_backup_a_newer_format_and_a_used_directory_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("db"));
    add(&store, "a", 1).await;
    let file = dir.path().join("backup");
    snapshot_to(&store, &file).await;
    store.close();

    let target = dir.path().join("target");
    for other in [
        Identity {
            site: "vn-hanoi".into(),
            service: "inventory".into(),
        },
        Identity {
            site: "la-vientiane".into(),
            service: "booking".into(),
        },
    ] {
        let error = snapshot::restore(&file, &target, &other).unwrap_err();
        assert!(matches!(error, StoreError::Incompatible(_)), "{error}");
        assert!(error.to_string().contains("la-vientiane"), "{error}");
        assert!(!target.exists());
    }

    let newer = dir.path().join("newer");
    std::fs::write(
        &newer,
        with_format(&std::fs::read(&file).unwrap(), FORMAT_VERSION + 1),
    )
    .unwrap();
    assert_eq!(
        snapshot::verify(&newer).unwrap().format_version,
        FORMAT_VERSION + 1
    );
    let error = snapshot::restore(&newer, &target, &identity()).unwrap_err();
    assert!(matches!(error, StoreError::Incompatible(_)), "{error}");
    assert!(error.to_string().contains("format version"), "{error}");
    assert!(!target.exists());

    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("something"), b"x").unwrap();
    let error = snapshot::restore(&file, &target, &identity()).unwrap_err();
    assert!(error.to_string().contains("not empty"), "{error}");
    assert_eq!(std::fs::read(target.join("something")).unwrap(), b"x");
}

/// The file with its header's and manifest's format version replaced, and its digest made
/// again: what a newer binary would write.
fn with_format(bytes: &[u8], version: u32) -> Vec<u8> {
    use sha2::Digest;
    let mut out = bytes[..8].to_vec();
    let mut at = 8;
    let body_end = bytes.len() - 32;
    while at < body_end {
        let kind = bytes[at];
        let len = u32::from_le_bytes(bytes[at + 1..at + 5].try_into().unwrap()) as usize;
        let payload = &bytes[at + 5..at + 5 + len];
        let payload = if kind == 1 || kind == 4 {
            let mut json: serde_json::Value = serde_json::from_slice(payload).unwrap();
            json["format_version"] = version.into();
            serde_json::to_vec(&json).unwrap()
        } else {
            payload.to_vec()
        };
        out.push(kind);
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&payload);
        at += 5 + len;
    }
    let digest = sha2::Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

/// A store keeping a log archive, with small segments so the archive has several.
fn open_archiving(dir: &Path, archive: &Path) -> Store {
    Store::open(
        dir,
        &identity(),
        StoreOptions {
            wal_segment_bytes: 64 << 10,
            wal_archive_dir: Some(archive.to_path_buf()),
            ..StoreOptions::default()
        },
    )
    .expect("open")
}

/// Sequential writes with large ledger entries: one generation each, many segments.
async fn add_padded(store: &Store, from: i64, count: i64) {
    let padding = "p".repeat(600);
    for i in from..from + count {
        add(store, &format!("a{}{padding}", i % 7), 1).await;
    }
}

#[tokio::test]
async fn a_backup_and_the_log_archive_restore_exactly_the_first_n_entries() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let store = open_archiving(&dir.path().join("db"), &archive);
    add_padded(&store, 0, 150).await;
    let file = dir.path().join("backup");
    let manifest = snapshot_to(&store, &file).await;
    add_padded(&store, 150, 350).await;
    let last = store.durable_sequence();
    store.close();
    assert!(
        std::fs::read_dir(&archive).unwrap().count() > 3,
        "closed segments were archived"
    );

    for target in [
        manifest.ledger_sequence,
        manifest.ledger_sequence + 1,
        manifest.ledger_sequence + 137,
        last,
    ] {
        let restored_dir = dir.path().join(format!("to-{target}"));
        let recovery = snapshot::Recovery {
            archive: &archive,
            to_sequence: Some(target),
            to_time_ms: None,
        };
        let restored =
            snapshot::restore_to(&file, &restored_dir, &identity(), Some(recovery)).unwrap();
        assert_eq!(restored.ledger_sequence, target);
        let store = open(&restored_dir);
        let entries = check_consistent(&store, &restored);
        assert_eq!(
            entries.len() as u64,
            target,
            "exactly the first {target} entries"
        );
        store.close();
    }
    let all = dir.path().join("all");
    let recovery = snapshot::Recovery {
        archive: &archive,
        to_sequence: None,
        to_time_ms: None,
    };
    let restored = snapshot::restore_to(&file, &all, &identity(), Some(recovery)).unwrap();
    assert_eq!(restored.ledger_sequence, last);
    check_consistent(&open(&all), &restored);

    // Beyond the archive, and before the backup: refused, nothing left behind.
    for target in [last + 1, manifest.ledger_sequence - 1] {
        let target_dir = dir.path().join("refused");
        let recovery = snapshot::Recovery {
            archive: &archive,
            to_sequence: Some(target),
            to_time_ms: None,
        };
        let error =
            snapshot::restore_to(&file, &target_dir, &identity(), Some(recovery)).unwrap_err();
        assert!(matches!(error, StoreError::Incompatible(_)), "{error}");
        assert!(!target_dir.exists());
    }

    // A segment missing from the archive is a gap in the ledger: refused.
    let mut segments: Vec<_> = std::fs::read_dir(&archive)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    segments.sort();
    std::fs::remove_file(&segments[segments.len() - 2]).unwrap();
    let gap = dir.path().join("gap");
    let recovery = snapshot::Recovery {
        archive: &archive,
        to_sequence: None,
        to_time_ms: None,
    };
    let error = snapshot::restore_to(&file, &gap, &identity(), Some(recovery)).unwrap_err();
    assert!(error.to_string().contains("missing"), "{error}");
    assert!(!gap.exists());
}

#[tokio::test]
async fn a_restored_database_keeps_archiving_into_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let store = open_archiving(&dir.path().join("db"), &archive);
    add_padded(&store, 0, 50).await;
    let file = dir.path().join("backup");
    let manifest = snapshot_to(&store, &file).await;
    add_padded(&store, 50, 200).await;
    store.close();

    let restored_dir = dir.path().join("restored");
    snapshot::restore(&file, &restored_dir, &identity()).unwrap();
    let restored = open_archiving(&restored_dir, &archive);
    add_padded(&restored, 0, 200).await;
    restored
        .check()
        .expect("its segments archive beside the original's");
    let last = restored.durable_sequence();
    restored.close();
    drop(restored);
    let restored_segments = std::fs::read_dir(&archive)
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".log")?.parse::<u64>().ok()
        })
        .filter(|first| *first >= 1 << 48)
        .count();
    assert!(
        restored_segments > 0,
        "the restored database's segments were archived too"
    );

    // The original's history is still whole in the archive, up to where it ended...
    let original = dir.path().join("original");
    let recovery = snapshot::Recovery {
        archive: &archive,
        to_sequence: Some(manifest.ledger_sequence + 200),
        to_time_ms: None,
    };
    let whole = snapshot::restore_to(&file, &original, &identity(), Some(recovery)).unwrap();
    assert_eq!(whole.ledger_sequence, manifest.ledger_sequence + 200);
    let everything = dir.path().join("everything");
    let recovery = snapshot::Recovery {
        archive: &archive,
        to_sequence: None,
        to_time_ms: None,
    };
    let whole = snapshot::restore_to(&file, &everything, &identity(), Some(recovery)).unwrap();
    assert_eq!(
        whole.ledger_sequence,
        manifest.ledger_sequence + 200,
        "the original's history ends where the restored one's begins"
    );
    // ...and the restored database's own backups replay its own.
    let reopened = open_archiving(&restored_dir, &dir.path().join("archive-2"));
    let second = dir.path().join("second-backup");
    let second_manifest = snapshot_to(&reopened, &second).await;
    reopened.close();
    assert_eq!(second_manifest.ledger_sequence, last);
    let again = dir.path().join("again");
    snapshot::restore(&second, &again, &identity()).unwrap();
    check_consistent(&open(&again), &second_manifest);
}

/// Keeps a write's reply, the ledger sequence it appended, as 8 bytes.
struct SequenceReply;

impl coldchain_store::ReplyCodec<u64> for SequenceReply {
    fn encode(&self, reply: &u64) -> Vec<u8> {
        reply.to_be_bytes().to_vec()
    }

    fn decode(&self, bytes: &[u8]) -> Result<u64, String> {
        <[u8; 8]>::try_from(bytes)
            .map(u64::from_be_bytes)
            .map_err(|_| "not 8 bytes".to_string())
    }
}

/// [`add`] as an idempotent request, so its generation records the store clock's time.
async fn add_recorded(store: &Store, id: &str, account: &str) -> u64 {
    let request = coldchain_store::fingerprint(id, id.as_bytes());
    let account = format!("{account}{}", "p".repeat(600));
    store
        .write::<_, String, _>(
            Some(coldchain_store::Idempotent::new(
                &request,
                &SequenceReply,
                &coldchain_store::ForgetRefusals,
            )),
            |tx| {
                let balance = tx
                    .get(&BALANCES, &account)
                    .map_err(|e| e.to_string())?
                    .unwrap_or(0)
                    + 1;
                tx.put(&BALANCES, &account, &balance)
                    .map_err(|e| e.to_string())?;
                Ok(tx.append_ledger(|seq| format!("{seq}:{account}:1").into_bytes()))
            },
        )
        .await
        .expect("write")
        .value
}

#[tokio::test]
async fn a_restore_to_a_time_between_two_writes_gives_exactly_the_writes_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let clock = coldchain_store::ManualClock::at(1_000_000);
    let store = Store::open(
        &dir.path().join("db"),
        &identity(),
        StoreOptions {
            wal_segment_bytes: 64 << 10,
            wal_archive_dir: Some(archive.clone()),
            clock: clock.clone(),
            ..StoreOptions::default()
        },
    )
    .expect("open");
    for i in 0..100 {
        add_recorded(&store, &format!("before-{i}"), &format!("a{}", i % 7)).await;
    }
    let file = dir.path().join("backup");
    let manifest = snapshot_to(&store, &file).await;
    clock.set(2_000_000);
    for i in 0..150 {
        add_recorded(&store, &format!("early-{i}"), &format!("a{}", i % 7)).await;
    }
    // A write with no request records no time: placed by the timed one after it.
    add(&store, "untimed", 1).await;
    let before_time = add_recorded(&store, "early-last", "a0").await;
    // This one comes after the last write at or before the target, so it is not restored.
    add(&store, "untimed", 1).await;
    clock.set(3_000_000);
    for i in 0..150 {
        add_recorded(&store, &format!("late-{i}"), &format!("a{}", i % 7)).await;
    }
    store.close();

    let recover = |to_sequence, to_time_ms| snapshot::Recovery {
        archive: &archive,
        to_sequence,
        to_time_ms,
    };
    for (target_ms, expected) in [
        (2_500_000, before_time),
        (2_000_000, before_time),
        (1_999_999, manifest.ledger_sequence),
    ] {
        let restored_dir = dir.path().join(format!("to-{target_ms}"));
        let restored = snapshot::restore_to(
            &file,
            &restored_dir,
            &identity(),
            Some(recover(None, Some(target_ms))),
        )
        .unwrap();
        assert_eq!(restored.ledger_sequence, expected, "to {target_ms}");
        let store = open(&restored_dir);
        let entries = check_consistent(&store, &restored);
        assert_eq!(
            entries.len() as u64,
            expected,
            "exactly the writes up to {target_ms}"
        );
        store.close();
    }

    // No archived write after the target: the archive may not hold all of its writes.
    let refused = dir.path().join("refused");
    let error = snapshot::restore_to(
        &file,
        &refused,
        &identity(),
        Some(recover(None, Some(3_000_000))),
    )
    .unwrap_err();
    assert!(matches!(error, StoreError::Incompatible(_)), "{error}");
    assert!(!refused.exists(), "nothing was restored");
    // A sequence and a time together are refused.
    let error = snapshot::restore_to(
        &file,
        &refused,
        &identity(),
        Some(recover(Some(before_time), Some(2_500_000))),
    )
    .unwrap_err();
    assert!(matches!(error, StoreError::Incompatible(_)), "{error}");
    assert!(!refused.exists(), "nothing was restored");
}
