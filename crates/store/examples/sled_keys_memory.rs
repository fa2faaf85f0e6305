//! How sled 0.34's resident memory grows with the number of keys, whatever its cache
//! setting: KEYS small random keys (an idempotency record's shape: a request id under a
//! table prefix, 45 bytes of value) inserted into a tree with the services' 8 MiB
//! `cache_capacity`, the process's resident memory printed every million keys, after the
//! inserts, after a reopen, and while a scan reads every key back.
//!
//!     cargo run --release -p coldchain-store --example sled_keys_memory -- [keys] [dir]
#![allow(clippy::unwrap_used, clippy::expect_used)] // a measurement fails by panicking

/// The services' `sled_cache_bytes` default.
const CACHE_BYTES: u64 = 8 * 1024 * 1024;

fn resident_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        / 1024
}

fn open(dir: &std::path::Path) -> (sled::Db, sled::Tree) {
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(CACHE_BYTES)
        .open()
        .unwrap();
    let tree = db.open_tree("t").unwrap();
    (db, tree)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let keys: u64 = args.next().map_or(5_000_000, |n| n.parse().unwrap());
    let temporary = tempfile::tempdir().unwrap();
    let dir = args
        .next()
        .map_or_else(|| temporary.path().to_path_buf(), Into::into);
    let (db, tree) = open(&dir);
    // xorshift: keys in no order, as request ids arrive.
    let mut x: u64 = 88_172_645_463_325_252;
    for i in 0..keys {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let key = format!("_requests\0bench-{x:016x}-{i}");
        tree.insert(key.as_bytes(), vec![7u8; 45]).unwrap();
        if i > 0 && i % 1_000_000 == 0 {
            println!("{i} keys: {} MiB", resident_mib());
        }
    }
    db.flush().unwrap();
    println!("{keys} keys, flushed: {} MiB", resident_mib());
    drop(tree);
    drop(db);
    let (_db, tree) = open(&dir);
    println!("reopened: {} MiB", resident_mib());
    let mut read = 0u64;
    for entry in tree.iter() {
        // Each key and value is read from disk into the cache.
        entry.unwrap();
        read += 1;
    }
    println!("{read} keys scanned: {} MiB", resident_mib());
}
