//! A power cut must not lose an acknowledged write. sled's flush makes its pages stable with
//! `sync_file_range`, which is no barrier, so a write-ahead log segment may be deleted only
//! after every file and directory of the sled database was fsynced. The store's
//! file-system calls go through a seam that these tests record, and the order is checked:
//! at a checkpoint during load, and when a start replays the log a crash left.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use coldchain_store::fs::{FsCall, RecordingFileSystem};
use coldchain_store::{Identity, Store, StoreOptions, Table};

const COUNTS: Table<String, u64> = Table::new("count");

fn identity() -> Identity {
    Identity {
        site: "la-vientiane".into(),
        service: "inventory".into(),
    }
}

fn open(dir: &Path, fs: &Arc<RecordingFileSystem>) -> Store {
    let options = StoreOptions {
        // Small segments, so that checkpoints retire segments during the load.
        wal_segment_bytes: 16 << 10,
        file_system: fs.clone(),
        ..StoreOptions::default()
    };
    Store::open(dir, &identity(), options).expect("open")
}

async fn write_many(store: &Store, writes: u64) {
    for n in 0..writes {
        let key = format!("k{}", n % 50);
        store
            .write::<(), String, _>(None, move |tx| {
                let count = tx
                    .get(&COUNTS, &key)
                    .map_err(|e| e.to_string())?
                    .unwrap_or(0);
                tx.put(&COUNTS, &key, &(count + 1))
                    .map_err(|e| e.to_string())?;
                tx.append_ledger(|sequence| {
                    format!("{sequence}:{key}:{}", "x".repeat(200)).into_bytes()
                });
                Ok(())
            })
            .await
            .expect("write");
    }
}

/// Every regular file under `dir`, but for those under `skip`.
fn files_under(dir: &Path, skip: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.starts_with(skip) {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// Checks that before each run of segment removals, since the previous removal, every file
/// in `expected` and the database directory itself were synced.
fn assert_barrier_before_every_removal(calls: &[FsCall], db_dir: &Path, expected: &[PathBuf]) {
    let mut files = HashSet::new();
    let mut dir_synced = false;
    let mut removals = 0;
    for call in calls {
        match call {
            FsCall::SyncFile(path) => {
                files.insert(path.clone());
            }
            FsCall::SyncDir(path) if path == db_dir => dir_synced = true,
            FsCall::SyncDir(_) => {}
            FsCall::Remove(path) => {
                removals += 1;
                assert!(
                    dir_synced,
                    "{} removed before the database directory was synced",
                    path.display()
                );
                for file in expected {
                    assert!(
                        files.contains(file),
                        "{} removed before {} was synced; calls: {calls:#?}",
                        path.display(),
                        file.display()
                    );
                }
            }
        }
    }
    assert!(
        removals > 0,
        "no segment was removed: the test checked nothing"
    );
}

#[tokio::test]
async fn a_checkpoint_syncs_every_database_file_and_directory_before_deleting_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let fs = RecordingFileSystem::new();
    let store = open(dir.path(), &fs);
    write_many(&store, 400).await;
    store.close();
    drop(store);
    let calls = fs.calls();
    // sled's main file and its config file exist from the start, so every checkpoint must
    // have synced them.
    let expected: Vec<PathBuf> = files_under(dir.path(), &dir.path().join("wal"))
        .into_iter()
        .filter(|p| matches!(p.file_name().and_then(|n| n.to_str()), Some("db" | "conf")))
        .collect();
    assert_eq!(expected.len(), 2, "{expected:?}");
    assert_barrier_before_every_removal(&calls, dir.path(), &expected);
}

#[test]
fn replaying_the_log_at_start_syncs_the_database_before_deleting_the_log() {
    let dir = tempfile::tempdir().unwrap();
    // A store abandoned without its close: its log still holds what sled may not have.
    {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let fs = RecordingFileSystem::new();
        let store = open(dir.path(), &fs);
        runtime.block_on(write_many(&store, 20));
        std::mem::forget(store);
    }
    let segments_before = std::fs::read_dir(dir.path().join("wal")).unwrap().count();
    assert!(segments_before > 0);
    let fs = RecordingFileSystem::new();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _store = runtime.block_on(async {
        // The abandoned handle keeps sled's lock: wait for a fresh process's view by
        // opening a copy of the directory instead.
        let copy = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), copy.path());
        let store = open(copy.path(), &fs);
        let expected: Vec<PathBuf> = files_under(copy.path(), &copy.path().join("wal"))
            .into_iter()
            .filter(|p| matches!(p.file_name().and_then(|n| n.to_str()), Some("db" | "conf")))
            .collect();
        assert_barrier_before_every_removal(&fs.calls(), copy.path(), &expected);
        (store, copy)
    });
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "lock" {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
