//! sled 0.34's resident memory with the booking service's keys, and what fewer keys would
//! save: BOOKINGS bookings, each as the service stores it today (its row under an id that
//! grows, a by-day row on one of 365 days, a by-customer row for one of 64 customers, and
//! the idempotency records of its hold and its confirm under request ids), in a tree with
//! the services' 8 MiB cache. Three switches model what issue 20 leaves to build:
//!
//! - `packed`: no by-day or by-customer rows, as if the index rows were packed into blocks
//!   of many bookings (a block is one key for tens of bookings, so its keys are left out);
//! - `blocks`: the index rows really packed: a booking's id is appended to the block of its
//!   day and to the block of its customer and day, each a key of its own holding up to
//!   [`BLOCK_IDS`] ids, and the whole block is written again (what packing costs a write);
//! - `sealed`: the index rows written as today, and once a day (or a customer's day) has
//!   [`SEAL_IDS`] rows, they are replaced by one block written once, never rewritten (as the
//!   inventory seals its lot index ranges);
//! - `expiring`: each request record is removed once 20,000 newer bookings were made, as
//!   the records of a site that made its bookings over years have expired (the bench's
//!   fill makes a million bookings in minutes, so none of its records has).
//!
//! Prints the resident memory every 250,000 bookings, after a flush and after a reopen, and
//! how long the writes took (one thread, as the apply thread writes).
//! sled's leaves hold at most 16 keys (`Node::should_split` in sled 0.34.7), and its page
//! table keeps an entry for every page, so the memory follows the number of keys.
//!
//!     cargo run --release -p coldchain-store --example sled_booking_shape -- \
//!         [bookings] [packed|blocks|sealed] [expiring]
#![allow(clippy::unwrap_used, clippy::expect_used)] // a measurement fails by panicking

mod common;

use common::{open, resident_mib};

/// Bookings made after a request record before it is removed, with `expiring`.
const RECORD_WINDOW: u64 = 20_000;

/// Most ids in one block, with `blocks`.
const BLOCK_IDS: usize = 64;

/// Index rows of one day (or one customer's day) sealed into one block, with `sealed`.
const SEAL_IDS: usize = 32;

/// The unsealed rows of each day and customer's day, with `sealed`.
#[derive(Default)]
struct Unsealed(std::collections::HashMap<String, (u32, Vec<String>)>);

impl Unsealed {
    /// Writes the row of `id` under `prefix`; once `prefix` has [`SEAL_IDS`] rows, writes
    /// them as one block and removes them.
    fn append(&mut self, tree: &sled::Tree, prefix: String, id: &str) {
        let row = format!("{prefix}\0r\0{id}");
        tree.insert(row.as_bytes(), &[]).unwrap();
        let (sealed, rows) = self.0.entry(prefix.clone()).or_default();
        rows.push(row);
        if rows.len() == SEAL_IDS {
            let block: Vec<u8> = rows.iter().flat_map(|r| r.bytes().chain([0])).collect();
            tree.insert(format!("{prefix}\0b\0{sealed:08}"), block)
                .unwrap();
            for row in rows.drain(..) {
                tree.remove(row).unwrap();
            }
            *sealed += 1;
        }
    }
}

/// The blocks being filled, by their key prefix: the number of the block and its ids. The
/// service would find the open block with a read; here it is remembered.
#[derive(Default)]
struct OpenBlocks(std::collections::HashMap<String, (u32, Vec<u8>, usize)>);

impl OpenBlocks {
    /// Appends `id` to the open block under `prefix` and writes that block whole.
    fn append(&mut self, tree: &sled::Tree, prefix: String, id: &str) {
        let (number, ids, count) = self.0.entry(prefix.clone()).or_default();
        if *count == BLOCK_IDS {
            *number += 1;
            ids.clear();
            *count = 0;
        }
        ids.extend_from_slice(id.as_bytes());
        ids.push(0);
        *count += 1;
        tree.insert(format!("{prefix}\0{number:08}"), ids.as_slice())
            .unwrap();
    }
}

/// The request id of booking `n`'s hold (`step` 0) or confirm (`step` 1): in no order.
fn request_key(n: u64, step: u64) -> Vec<u8> {
    let scrambled = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ step;
    format!("_requests\0client-{scrambled:016x}-{n}-{step}").into_bytes()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bookings: u64 = args.first().map_or(1_000_000, |n| n.parse().unwrap());
    let packed = args.iter().any(|a| a == "packed");
    let blocks = args.iter().any(|a| a == "blocks");
    let sealed = args.iter().any(|a| a == "sealed");
    let mut unsealed = Unsealed::default();
    let mut open_blocks = OpenBlocks::default();
    let started = std::time::Instant::now();
    let expiring = args.iter().any(|a| a == "expiring");
    let dir = tempfile::tempdir().unwrap();
    let (db, tree) = open(dir.path());
    // xorshift: the same days and customers on every run.
    let mut x: u64 = 88_172_645_463_325_252;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for n in 0..bookings {
        let id = format!("BK-{n:012}-cn-huaihua-park");
        tree.insert(format!("bookings\0{id}"), vec![7u8; 150])
            .unwrap();
        let (day, customer) = (next() % 365, next() % 64);
        if blocks {
            open_blocks.append(&tree, format!("by_day\0{day:08}"), &id);
            open_blocks.append(&tree, format!("by_customer\0c-{customer}\0{day:08}"), &id);
        } else if sealed {
            unsealed.append(&tree, format!("by_day\0{day:08}"), &id);
            unsealed.append(&tree, format!("by_customer\0c-{customer}\0{day:08}"), &id);
        } else if !packed {
            tree.insert(format!("by_day\0{day:08}\0{id}"), vec![])
                .unwrap();
            tree.insert(format!("by_customer\0c-{customer}\0{day:08}\0{id}"), vec![])
                .unwrap();
        }
        for step in 0..2 {
            tree.insert(request_key(n, step), vec![7u8; 45]).unwrap();
        }
        if expiring && n >= RECORD_WINDOW {
            for step in 0..2 {
                tree.remove(request_key(n - RECORD_WINDOW, step)).unwrap();
            }
        }
        if n > 0 && n % 250_000 == 0 {
            println!("{n} bookings: {} MiB", resident_mib());
        }
    }
    let written = started.elapsed();
    db.flush().unwrap();
    println!(
        "{bookings} bookings ({} keys) written in {:.1} s, flushed: {} MiB",
        tree.len(),
        written.as_secs_f64(),
        resident_mib()
    );
    drop(tree);
    drop(db);
    let (_db, _tree) = open(dir.path());
    println!("reopened: {} MiB", resident_mib());
}
