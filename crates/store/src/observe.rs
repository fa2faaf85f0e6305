//! The store's series, recorded through the `metrics` facade with the `site` and `service`
//! of the database's [`Identity`]: no-ops until the process installs a recorder
//! (`coldchain_runtime::observe`).
//!
//! Handles are registered once, when the database opens; the log thread then records
//! into them without a lookup.

use metrics::{Counter, Gauge, Histogram, Label};

use crate::store::Identity;

/// Time to write one generation into the write-ahead log and `fdatasync` it (histogram, s).
pub const WAL_SYNC_DURATION: &str = "coldchain_store_wal_sync_duration_seconds";
/// Writes gathered into one generation of the group commit (histogram).
pub const GROUP_COMMIT_WRITERS: &str = "coldchain_store_group_commit_writers";
/// Bytes appended to the write-ahead log (counter).
pub const WAL_APPENDED_BYTES: &str = "coldchain_store_wal_appended_bytes_total";
/// Bytes the write-ahead log's segments hold on disk, zero-filled space included (gauge).
pub const WAL_DISK_BYTES: &str = "coldchain_store_wal_disk_bytes";
/// Bytes sled's files take on disk (gauge).
pub const SLED_DISK_BYTES: &str = "coldchain_store_sled_disk_bytes";
/// Generations replayed from the write-ahead log when the database last opened (gauge).
pub const REPLAYED_GENERATIONS: &str = "coldchain_store_wal_replayed_generations";
/// Writes answered from the idempotency record of an earlier call (counter).
pub const IDEMPOTENT_REPLAYS: &str = "coldchain_store_idempotent_replays_total";

/// The help text of every series of the store.
pub fn describe() {
    use metrics::Unit;
    metrics::describe_histogram!(
        WAL_SYNC_DURATION,
        Unit::Seconds,
        "Time to append one group-commit generation to the write-ahead log and fdatasync it"
    );
    metrics::describe_histogram!(
        GROUP_COMMIT_WRITERS,
        "Writes gathered into one generation of the group commit (one log append and sync)"
    );
    metrics::describe_counter!(
        WAL_APPENDED_BYTES,
        Unit::Bytes,
        "Bytes appended to the write-ahead log"
    );
    metrics::describe_gauge!(
        WAL_DISK_BYTES,
        Unit::Bytes,
        "Bytes of the write-ahead log's segments on disk, zero-filled space ahead of use included"
    );
    metrics::describe_gauge!(
        SLED_DISK_BYTES,
        Unit::Bytes,
        "Bytes of sled's files on disk"
    );
    metrics::describe_gauge!(
        REPLAYED_GENERATIONS,
        "Generations replayed from the write-ahead log when the database last opened (0 after a clean stop)"
    );
    metrics::describe_counter!(
        IDEMPOTENT_REPLAYS,
        "Writes answered with the stored response of an earlier call with the same request_id"
    );
}

/// The handles of one database.
#[derive(Clone)]
pub(crate) struct StoreMetrics {
    pub wal_sync: Histogram,
    pub writers: Histogram,
    pub wal_appended: Counter,
    pub wal_disk: Gauge,
    pub sled_disk: Gauge,
    pub replays: Counter,
}

impl StoreMetrics {
    pub(crate) fn new(identity: &Identity) -> Self {
        let labels = vec![
            Label::new("site", identity.site.clone()),
            Label::new("service", identity.service.clone()),
        ];
        Self {
            wal_sync: metrics::histogram!(WAL_SYNC_DURATION, labels.clone()),
            writers: metrics::histogram!(GROUP_COMMIT_WRITERS, labels.clone()),
            wal_appended: metrics::counter!(WAL_APPENDED_BYTES, labels.clone()),
            wal_disk: metrics::gauge!(WAL_DISK_BYTES, labels.clone()),
            sled_disk: metrics::gauge!(SLED_DISK_BYTES, labels.clone()),
            replays: metrics::counter!(IDEMPOTENT_REPLAYS, labels),
        }
    }

    /// Sets the replayed generations of this open (registered here: set once).
    pub(crate) fn replayed(identity: &Identity, generations: u64) {
        metrics::gauge!(
            REPLAYED_GENERATIONS,
            "site" => identity.site.clone(),
            "service" => identity.service.clone()
        )
        .set(generations as f64);
    }
}
