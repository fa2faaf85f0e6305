//! Restart after SIGKILL with a full write-ahead log segment: one site as separate
//! processes (`coldchain serve`, as in the soak), its inventory loaded until its log holds
//! nearly a whole segment of records (the most it holds before a checkpoint retires one),
//! killed right then, and started again: the time from the new process's start until it
//! answers health SERVING, which it does only once the log is replayed into sled.
//!
//! With a history (`--prefill N`), the store is first given N ledger entries in calls of 500
//! (as the history scenario's), then the inventory scenario's write load (single receipts
//! from the bench's clients, `--concurrency`) runs against it, so the restart, the bytes on
//! disk right after the kill and the service's own resident memory are measured at that
//! scale. The memory is the server process's alone, without the clients the in-process
//! scenarios share theirs with: its peak (`VmHWM`), read just before the kill.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use coldchain_proto::inventory::v1 as inventory;
use coldchain_runtime::client::{Channel as KeyedChannel, ClientOptions};
use coldchain_runtime::network::ServiceKind;
use coldchain_soak::cluster::{Cluster, serving};
use coldchain_store::StoreOptions;

use crate::load::{self, LoadResult, LoadSpec};
use crate::scenarios::{ENTRIES_PER_LOT, fill_ledger, fill_request, receipt_request, run_id};

const SITE: &str = "la-vientiane";
const PROCESS: &str = "inventory@la-vientiane";
/// Movements per call while filling the log: large records, as a warehouse system's
/// batch uploads make.
const FILL_MOVEMENTS: u64 = 200;
/// Concurrent fill calls.
const FILL_CALLS: u64 = 4;

/// What the restart measured.
pub struct RestartRun {
    /// From the new process's start to health SERVING.
    pub ready_after: Duration,
    /// The log's segment files the new process found (one may be a spare made ahead).
    pub segments: usize,
    /// Their bytes up to the last record (not the zeros written ahead).
    pub log_bytes: u64,
    /// Ledger entries written before the kill, the history's included (the load's warm-up
    /// calls are not counted: per-entry figures are a little high).
    pub entries: u64,
    /// Of them, the history written first.
    pub history: u64,
    /// The server process's peak resident memory before the kill (`VmHWM`), if read.
    pub rss_peak: Option<u64>,
    /// The write load run on the history before the log's fill.
    pub load: LoadResult,
    /// The bytes of the service's data directory right after the kill, every file counted
    /// (the log's segments whole, zeros made ahead included).
    pub disk_after_kill: u64,
}

/// Writes `history` ledger entries, then kills the inventory once its log holds `fill` of a
/// segment (1.0: nearly all of one; a smoke run asks for a little, to exercise the path).
pub async fn restart_after_kill(
    fill: f64,
    history: u64,
    spec: &LoadSpec,
    connections: usize,
) -> Result<RestartRun, String> {
    let shipped = std::fs::read_to_string("deploy/network.toml").map_err(|e| {
        format!("deploy/network.toml (run the bench from the repository root): {e}")
    })?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cluster = Cluster::prepare(dir.path(), exe, &shipped, &[SITE.to_string()])?;
    cluster.start_all(Duration::from_secs(60)).await?;
    let result = kill_full_and_restart(&mut cluster, fill, history, spec, connections).await;
    cluster.stop_all().await;
    result
}

async fn kill_full_and_restart(
    cluster: &mut Cluster,
    fill: f64,
    history: u64,
    spec: &LoadSpec,
    connections: usize,
) -> Result<RestartRun, String> {
    let endpoint = cluster
        .network
        .site(SITE)
        .and_then(|site| site.endpoint(ServiceKind::Inventory))
        .ok_or("the network has no inventory at la-vientiane")?;
    let key = cluster
        .keyring
        .key(&coldchain_credentials::warehouse(SITE))?;
    let options = ClientOptions {
        call_timeout: Duration::from_secs(60),
        ..ClientOptions::default()
    };
    let mut channels = Vec::with_capacity(connections.max(1));
    for _ in 0..connections.max(1) {
        let transport = coldchain_runtime::client::transport(&endpoint, &options)
            .await
            .map_err(|e| e.to_string())?;
        channels.push(KeyedChannel::new(transport, Some(&key)));
    }
    let channel = channels[0].clone();
    let wal = wal_dir(cluster.data_dir(PROCESS)?)?;
    let run = run_id();
    fill_ledger(&channels, history).await?;
    let lots = (history / ENTRIES_PER_LOT).max(1);
    let load = load::run(
        "restart (write load on the history)",
        spec,
        move |worker, iteration| {
            let mut client = inventory::inventory_service_client::InventoryServiceClient::new(
                channels[worker % channels.len()].clone(),
            );
            let request = receipt_request(run, worker, iteration);
            async move { client.record_movements(request).await.map(|_| ()) }
        },
    )
    .await;
    let loaded = load.statuses.get("OK").copied().unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut call = 0u64;
    // A segment is retired once sled has its records: the log holds the most just before
    // its current segment fills.
    let full = (StoreOptions::default().wal_segment_bytes as f64 * 0.95 * fill) as u64;
    while logged_bytes(&wal)? < full {
        if Instant::now() > deadline {
            return Err("no log segment filled within 180 s".into());
        }
        let calls = (0..FILL_CALLS).map(|n| {
            let mut client =
                inventory::inventory_service_client::InventoryServiceClient::new(channel.clone());
            let request = fill_request(run, call + n, FILL_MOVEMENTS, 100_000.max(lots));
            async move { client.record_movements(request).await }
        });
        for result in futures::future::join_all(calls).await {
            result.map_err(|status| format!("filling the log: {status}"))?;
        }
        call += FILL_CALLS;
    }
    let rss_peak = cluster.pid(PROCESS).and_then(crate::network::peak_rss);
    cluster.kill(PROCESS).await?;
    let disk_after_kill = crate::host::dir_size(cluster.data_dir(PROCESS)?);
    let found = segments(&wal)?.len();
    let log_bytes = logged_bytes(&wal)?;
    let started = Instant::now();
    cluster.restart(PROCESS)?;
    while !serving(&endpoint).await {
        if started.elapsed() > Duration::from_secs(120) {
            return Err("the restarted inventory did not serve within 120 s".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(RestartRun {
        ready_after: started.elapsed(),
        segments: found,
        log_bytes,
        entries: history + loaded + call * FILL_MOVEMENTS,
        history,
        rss_peak,
        load,
        disk_after_kill,
    })
}

/// The write-ahead log directory under a service's data directory.
fn wal_dir(data: &Path) -> Result<PathBuf, String> {
    let mut stack = vec![data.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|name| name == "wal") {
                    return Ok(path);
                }
                stack.push(path);
            }
        }
    }
    Err(format!("no write-ahead log under {}", data.display()))
}

/// The log's segment files.
fn segments(wal: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(wal).map_err(|e| format!("{}: {e}", wal.display()))?;
    Ok(entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .collect())
}

/// The bytes of records in the log's segments.
fn logged_bytes(wal: &Path) -> Result<u64, String> {
    let mut total = 0;
    for path in segments(wal)? {
        total += written_bytes(&path)?;
    }
    Ok(total)
}

/// A segment's bytes up to its last non-zero byte: what was written, without the space
/// the log zero-fills ahead of its records.
fn written_bytes(path: &Path) -> Result<u64, String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        // Retired by a checkpoint since the listing.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    Ok(bytes
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |at| at as u64 + 1))
}
