//! The store's durable write path without gRPC: 64 concurrent writers, each write an
//! idempotent request that reads and updates one of 10,000 positions and appends a ledger
//! entry, as an inventory receipt does. Prints writes per second; run it under
//! `valgrind --tool=callgrind` to count instructions per write.
//!
//!     cargo run --release -p coldchain-store --example write_path -- [writes]
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;
use std::time::Instant;

use coldchain_store::{
    ForgetRefusals, Idempotent, Identity, ReplyCodec, Store, StoreError, StoreOptions, Table,
    fingerprint, system_clock,
};

const POSITIONS: Table<(String, String), u64> = Table::new("positions");
const WRITERS: usize = 64;
const PAIRS: u64 = 10_000;

/// The answer stored for replays.
#[derive(Clone, PartialEq, prost::Message)]
struct Answer {
    #[prost(uint64, tag = "1")]
    balance: u64,
}

/// Keeps an answer as its protobuf bytes, as the services do.
struct Protobuf;

impl ReplyCodec<Answer> for Protobuf {
    fn encode(&self, reply: &Answer) -> Vec<u8> {
        prost::Message::encode_to_vec(reply)
    }

    fn decode(&self, bytes: &[u8]) -> Result<Answer, String> {
        prost::Message::decode(bytes).map_err(|e: prost::DecodeError| e.to_string())
    }
}

fn main() {
    let writes: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(50_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(
        dir.path(),
        &Identity {
            site: "bench".into(),
            service: "inventory".into(),
        },
        StoreOptions {
            cache_bytes: 64 << 20,
            idempotency_retention: std::time::Duration::from_secs(48 * 3600),
            clock: system_clock(),
            ..StoreOptions::default()
        },
    )
    .expect("open");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let store = Arc::new(store);
    let started = Instant::now();
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for writer in 0..WRITERS {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = writer;
                while n < writes {
                    let request_id = format!("req-{n}");
                    let pair = (n as u64).wrapping_mul(2_654_435_761) % PAIRS;
                    let key = (format!("SKU-{pair}"), format!("LOT-{pair}"));
                    let fp = fingerprint(&request_id, key.0.as_bytes());
                    store
                        .write(
                            Some(Idempotent::new(&fp, &Protobuf, &ForgetRefusals)),
                            |tx| {
                                let balance = tx.get(&POSITIONS, &key)?.unwrap_or(0) + 1;
                                tx.put(&POSITIONS, &key, &balance)?;
                                tx.append_ledger(|sequence| {
                                    format!("{sequence}:{}", key.0).into_bytes()
                                });
                                Ok::<_, StoreError>(Answer { balance })
                            },
                        )
                        .await
                        .expect("write");
                    n += WRITERS;
                }
            }));
        }
        for task in tasks {
            task.await.expect("writer");
        }
    });
    let elapsed = started.elapsed();
    println!(
        "{writes} durable writes in {:.2} s: {:.0}/s",
        elapsed.as_secs_f64(),
        writes as f64 / elapsed.as_secs_f64()
    );
    store.close();
}
