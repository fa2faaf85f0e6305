//! What the sled memory examples share: the process's resident memory, and a tree opened
//! with the services' cache setting.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a measurement fails by panicking

/// The services' `sled_cache_bytes` default.
pub const CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// This process's resident memory in MiB.
pub fn resident_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024
}

/// The database in `dir` with the services' cache setting, and its tree `t`.
pub fn open(dir: &std::path::Path) -> (sled::Db, sled::Tree) {
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(CACHE_BYTES)
        .open()
        .unwrap();
    let tree = db.open_tree("t").unwrap();
    (db, tree)
}
