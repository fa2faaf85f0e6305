//! How sled 0.34's resident memory grows with the number of keys, whatever its cache
//! setting: KEYS small random keys (an idempotency record's shape: a request id under a
//! table prefix, 45 bytes of value) inserted into a tree with the services' 8 MiB
//! `cache_capacity`. The process's resident memory is printed every million keys, after
//! the inserts, after a reopen, after a scan reads every key back, after every key is
//! removed again (as expiry removes idempotency records), and after a reopen of the emptied
//! tree.
//!
//!     cargo run --release -p coldchain-store --example sled_keys_memory -- [keys] [dir]
#![allow(clippy::unwrap_used, clippy::expect_used)] // a measurement fails by panicking

mod common;

use common::{open, resident_mib};

/// The `keys` keys, in no order (xorshift), as request ids arrive; the same on every call.
fn request_keys(keys: u64) -> impl Iterator<Item = (u64, Vec<u8>)> {
    let mut x: u64 = 88_172_645_463_325_252;
    (0..keys).map(move |i| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (i, format!("_requests\0bench-{x:016x}-{i}").into_bytes())
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let keys: u64 = args.next().map_or(5_000_000, |n| n.parse().unwrap());
    let temporary = tempfile::tempdir().unwrap();
    let dir = args
        .next()
        .map_or_else(|| temporary.path().to_path_buf(), Into::into);

    let (db, tree) = open(&dir);
    for (i, key) in request_keys(keys) {
        tree.insert(key, vec![7u8; 45]).unwrap();
        if i > 0 && i % 1_000_000 == 0 {
            println!("{i} keys: {} MiB", resident_mib());
        }
    }
    db.flush().unwrap();
    println!("{keys} keys, flushed: {} MiB", resident_mib());
    drop(tree);
    drop(db);

    let (db, tree) = open(&dir);
    println!("reopened: {} MiB", resident_mib());
    let mut read = 0u64;
    for entry in tree.iter() {
        // Each key and value is read from disk into the cache.
        entry.unwrap();
        read += 1;
    }
    println!("{read} keys scanned: {} MiB", resident_mib());
    for (_, key) in request_keys(keys) {
        tree.remove(key).unwrap();
    }
    db.flush().unwrap();
    println!("every key removed: {} MiB", resident_mib());
    drop(tree);
    drop(db);

    let (_db, tree) = open(&dir);
    println!(
        "reopened empty ({} keys): {} MiB",
        tree.len(),
        resident_mib()
    );
}
