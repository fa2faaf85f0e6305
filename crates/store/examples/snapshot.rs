//! What an online snapshot costs: its throughput (MB/s of backup file) on an idle store and
//! under write load, and the write throughput of 16 concurrent writers (each write updates
//! one of the rows and appends a ledger entry) without and with a snapshot running.
//!
//!     cargo run --release -p coldchain-store --example snapshot -- [rows] [dir]
//!
//! With `SNAPSHOT_KEEP=<data_dir>/<site>/<service>` the database is made there and kept.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a measurement fails by panicking

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use coldchain_store::{Identity, Store, StoreError, StoreOptions, Table};

const ROWS: Table<u64, Vec<u8>> = Table::new("rows");
const WRITERS: u64 = 16;

async fn update(store: &Store, row: u64) {
    store
        .write(None, |tx| {
            tx.put(&ROWS, &row, &vec![7u8; 100])?;
            tx.append_ledger(|seq| format!("{seq}:{row}").into_bytes());
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
}

/// Runs the writers until `stop`, counting writes.
fn start_writers(store: &Store, rows: u64, stop: &Arc<AtomicBool>, count: &Arc<AtomicU64>) {
    for w in 0..WRITERS {
        let (store, stop, count) = (store.clone(), stop.clone(), count.clone());
        tokio::spawn(async move {
            let mut n = w;
            while !stop.load(Ordering::Relaxed) {
                update(&store, (n * 7919) % rows).await;
                count.fetch_add(1, Ordering::Relaxed);
                n += WRITERS;
            }
        });
    }
}

async fn snapshot(store: &Store, dir: &std::path::Path) -> (f64, f64, u64) {
    let file = dir.join("backup");
    let started = Instant::now();
    let out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&file).unwrap());
    let (_, manifest) = store.snapshot(out).await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&file).unwrap().len();
    std::fs::remove_file(&file).unwrap();
    (bytes as f64 / 1e6 / seconds, seconds, manifest.log_records)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let rows: u64 = args.next().map_or(200_000, |n| n.parse().unwrap());
    let base = args.next().map_or_else(std::env::temp_dir, Into::into);
    let dir = tempfile::tempdir_in(base).unwrap();
    // `SNAPSHOT_KEEP=<data_dir>/<site>/<service>`: fill that database and keep it (to time
    // `coldchain backup` of a server opened on it), after the measurements.
    let keep = std::env::var_os("SNAPSHOT_KEEP").map(std::path::PathBuf::from);
    let identity = match &keep {
        Some(path) => Identity {
            site: path
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .into(),
            service: path.file_name().unwrap().to_str().unwrap().into(),
        },
        None => Identity {
            site: "bench".into(),
            service: "snapshot".into(),
        },
    };
    let path = keep.clone().unwrap_or_else(|| dir.path().join("db"));
    let store = Store::open(&path, &identity, StoreOptions::default()).unwrap();
    for chunk in 0..rows.div_ceil(1_000) {
        store
            .write(None, |tx| {
                for row in chunk * 1_000..((chunk + 1) * 1_000).min(rows) {
                    tx.put(&ROWS, &row, &vec![1u8; 100])?;
                }
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
    }
    store.flush().await.unwrap();

    let (idle_mbps, idle_seconds, _) = snapshot(&store, dir.path()).await;
    println!("{rows} rows: idle snapshot {idle_mbps:.1} MB/s ({idle_seconds:.2} s)");

    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    start_writers(&store, rows, &stop, &count);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let measure = Duration::from_secs(5);
    let before = count.load(Ordering::Relaxed);
    tokio::time::sleep(measure).await;
    let baseline = (count.load(Ordering::Relaxed) - before) as f64 / measure.as_secs_f64();

    let before = count.load(Ordering::Relaxed);
    let started = Instant::now();
    let (loaded_mbps, loaded_seconds, log_records) = snapshot(&store, dir.path()).await;
    let during = (count.load(Ordering::Relaxed) - before) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    println!(
        "under load: snapshot {loaded_mbps:.1} MB/s ({loaded_seconds:.2} s, {log_records} log records)"
    );
    println!(
        "writes/s of {WRITERS} writers: {baseline:.0} without a snapshot, {during:.0} while one runs ({:.0}%)",
        during / baseline * 100.0
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    store.close();
}
