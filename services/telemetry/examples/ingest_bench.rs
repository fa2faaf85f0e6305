//! A quick local measure of StreamReadings (the shape of `coldchain bench`'s telemetry
//! scenario: 500 sensors, 50 streams, rounds of 5 batches of 10 sensors × 20 s).
//! `cargo run --release -p coldchain-telemetry --example ingest_bench -- [seconds]`
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use coldchain_proto::telemetry::v1 as pb;
use coldchain_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use coldchain_runtime::Shutdown;
use coldchain_runtime::config::Config;
use coldchain_runtime::host::{ServiceContext, spawn_service};
use coldchain_runtime::network::{NetworkConfig, ServiceKind};
use coldchain_runtime::server::bind;

const SENSORS: usize = 500;
const STREAMS: usize = 50;
const BATCH_SECONDS: i64 = 20;

fn dir_size(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let data = tempfile::tempdir().unwrap();
    let mut network = NetworkConfig::parse(include_str!("../../../deploy/network.toml")).unwrap();
    for site in &mut network.sites {
        site.endpoints.inventory = Some("http://127.0.0.1:9".into());
    }
    let config = Config {
        data_dir: data.path().to_path_buf(),
        concurrency_limit: 100_000,
        ..Config::default()
    };
    let site = network.sites[0].clone();
    let shutdown = Shutdown::new();
    let ctx = ServiceContext::new(
        ServiceKind::Telemetry,
        site,
        Arc::new(network),
        Arc::new(config),
        shutdown.clone(),
    );
    let spec = coldchain_telemetry::service(&ctx).unwrap();
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let running = spawn_service(listener, spec, ctx.limits(), shutdown).unwrap();
    let channel = tonic::transport::Endpoint::from_shared(running.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = TelemetryServiceClient::new(channel.clone());
    for sensor in 0..SENSORS {
        client
            .register_sensor(pb::RegisterSensorRequest {
                request_id: format!("sensor-{sensor}"),
                sensor_id: format!("S{sensor:04}"),
                binding: Some(pb::register_sensor_request::Binding::ZoneId(
                    "chilled-a".into(),
                )),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let start_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 6 * 86_400;
    let accepted = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let began = Instant::now();
    let mut streams = Vec::new();
    for stream in 0..STREAMS {
        let mut client = TelemetryServiceClient::new(channel.clone());
        let accepted = accepted.clone();
        streams.push(tokio::spawn(async move {
            let sensors: Vec<String> = (0..SENSORS / STREAMS)
                .map(|i| format!("S{:04}", stream * (SENSORS / STREAMS) + i))
                .collect();
            let mut second = 0i64;
            while Instant::now() < deadline {
                let mut batches = Vec::new();
                for _ in 0..5 {
                    let mut readings = Vec::new();
                    for offset in 0..BATCH_SECONDS {
                        for (i, sensor) in sensors.iter().enumerate() {
                            let t = start_secs + second + offset;
                            readings.push(pb::Reading {
                                sensor_id: sensor.clone(),
                                time: Some(prost_types::Timestamp {
                                    seconds: t,
                                    nanos: 0,
                                }),
                                celsius: 2.0 + ((t + i as i64) % 20) as f64 * 0.05,
                                humidity_percent: None,
                                door_open: None,
                            });
                        }
                    }
                    second += BATCH_SECONDS;
                    batches.push(pb::ReadingBatch { readings });
                }
                let summary = client
                    .stream_readings(futures::stream::iter(batches))
                    .await
                    .unwrap();
                accepted.fetch_add(summary.get_ref().accepted as u64, Ordering::Relaxed);
            }
        }));
    }
    for s in streams {
        s.await.unwrap();
    }
    let elapsed = began.elapsed().as_secs_f64();
    let n = accepted.load(Ordering::Relaxed);
    let bytes = dir_size(data.path());
    println!(
        "{n} readings in {elapsed:.1} s: {:.0} readings/s; {bytes} bytes on disk: {:.2} bytes/reading",
        n as f64 / elapsed,
        bytes as f64 / n as f64
    );
    running.stop().await;
    let after = dir_size(data.path());
    println!(
        "after close: {after} bytes: {:.2} bytes/reading",
        after as f64 / n as f64
    );
}
