//! sled 0.34's resident memory with the booking service's keys, and what fewer keys would
//! save: BOOKINGS bookings, each as the service stores it today (its row under an id that
//! grows, a by-day row on one of 365 days, a by-customer row for one of 64 customers, and
//! the idempotency records of its hold and its confirm under request ids), in a tree with
//! the services' 8 MiB cache. Two switches model what issue 20 leaves to build:
//!
//! - `packed`: no by-day or by-customer rows, as if the index rows were packed into blocks
//!   of many bookings (a block is one key for tens of bookings, so its keys are left out);
//! - `expiring`: each request record is removed once 20,000 newer bookings were made, as
//!   the records of a site that made its bookings over years have expired (the bench's
//!   fill makes a million bookings in minutes, so none of its records has).
//!
//! Prints the resident memory every 250,000 bookings, after a flush and after a reopen.
//! sled's leaves hold at most 16 keys (`Node::should_split` in sled 0.34.7), and its page
//! table keeps an entry for every page, so the memory follows the number of keys.
//!
//!     cargo run --release -p coldchain-store --example sled_booking_shape -- \
//!         [bookings] [packed] [expiring]
#![allow(clippy::unwrap_used, clippy::expect_used)] // a measurement fails by panicking

mod common;

use common::{open, resident_mib};

/// Bookings made after a request record before it is removed, with `expiring`.
const RECORD_WINDOW: u64 = 20_000;

/// The request id of booking `n`'s hold (`step` 0) or confirm (`step` 1): in no order.
fn request_key(n: u64, step: u64) -> Vec<u8> {
    let scrambled = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ step;
    format!("_requests\0client-{scrambled:016x}-{n}-{step}").into_bytes()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bookings: u64 = args.first().map_or(1_000_000, |n| n.parse().unwrap());
    let packed = args.iter().any(|a| a == "packed");
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
        if !packed {
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
    db.flush().unwrap();
    println!(
        "{bookings} bookings ({} keys), flushed: {} MiB",
        tree.len(),
        resident_mib()
    );
    drop(tree);
    drop(db);
    let (_db, _tree) = open(dir.path());
    println!("reopened: {} MiB", resident_mib());
}
