//! Helpers shared by the store's test binaries.

use std::path::Path;
use std::time::{Duration, Instant};

/// Opens a closed store's directory with sled alone, to look at or tamper with its raw
/// trees. sled's I/O threads may hold the directory's lock a moment after the store's
/// last handle is gone (see `Store::open`), so this retries for a few seconds.
pub fn raw_sled(path: &Path) -> sled::Db {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(error) => panic!("sled cannot open {}: {error}", path.display()),
        }
    }
}
