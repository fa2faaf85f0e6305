//! Helpers shared by the store's test binaries (each uses some of them).
#![allow(dead_code)]

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

/// Keeps the tests' replies as their protobuf bytes, as the services keep theirs.
pub struct Protobuf;

impl<T: prost::Message + Default> coldchain_store::ReplyCodec<T> for Protobuf {
    fn encode(&self, reply: &T) -> Vec<u8> {
        reply.encode_to_vec()
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, String> {
        T::decode(bytes).map_err(|e| e.to_string())
    }
}
