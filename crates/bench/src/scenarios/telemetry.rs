//! `StreamReadings` from 500 sensors over 50 streams, and the bytes on disk per reading; the
//! same readings as CSV for PostgreSQL's COPY.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use coldchain_proto::telemetry::v1 as telemetry;
use coldchain_runtime::network::ServiceKind;
use coldchain_runtime::proto_time;

use super::run_id;
use crate::Build;
use crate::host::{Caller, Host};
use crate::load::LoadSpec;

/// What the telemetry scenario measured.
pub struct TelemetryRun {
    pub readings_per_second: f64,
    pub readings: u64,
    pub errors: u64,
    pub bytes_per_reading: f64,
}

const SENSORS: usize = 500;
const STREAMS: usize = 50;
/// The seconds of readings in one batch.
const BATCH_SECONDS: i64 = 20;

/// `StreamReadings` from 500 sensors and bytes on disk per reading.
pub async fn telemetry(spec: &LoadSpec, build: Build) -> Result<TelemetryRun, String> {
    let host = Host::start(ServiceKind::Telemetry, build).await?;
    let connection = host.channels(1).await?.remove(0);
    let mut client = telemetry::telemetry_service_client::TelemetryServiceClient::new(
        host.as_caller(&connection, Caller::Operations),
    );
    let channel = host.as_caller(&connection, Caller::Sensors);
    let run = run_id();
    for sensor in 0..SENSORS {
        client
            .register_sensor(telemetry::RegisterSensorRequest {
                request_id: format!("bench-{run}-sensor-{sensor}"),
                sensor_id: format!("S{sensor:04}"),
                binding: Some(telemetry::register_sensor_request::Binding::ZoneId(
                    "chilled-a".into(),
                )),
                ..Default::default()
            })
            .await
            .map_err(|s| format!("register sensor: {s}"))?;
    }
    // Readings start six days ago at 1 Hz per sensor: inside the 7-day window for long runs.
    let start_secs = chrono::Utc::now().timestamp() - 6 * 86_400;
    let accepted = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + spec.warmup + spec.duration;
    let measured_from = Instant::now() + spec.warmup;
    let measured_accepted = Arc::new(AtomicU64::new(0));
    let mut streams = Vec::new();
    for stream in 0..STREAMS {
        let mut client =
            telemetry::telemetry_service_client::TelemetryServiceClient::new(channel.clone());
        let accepted = accepted.clone();
        let measured_accepted = measured_accepted.clone();
        let errors = errors.clone();
        streams.push(tokio::spawn(async move {
            let sensors: Vec<String> = (0..SENSORS / STREAMS)
                .map(|i| format!("S{:04}", stream * (SENSORS / STREAMS) + i))
                .collect();
            let mut second = 0i64;
            // One client stream per round of batches: each round is acknowledged (durable)
            // when its summary arrives.
            while Instant::now() < deadline {
                let batches = readings_round(&sensors, start_secs + second);
                second += ROUND_SECONDS;
                let began = Instant::now();
                match client.stream_readings(futures::stream::iter(batches)).await {
                    Ok(summary) => {
                        let n = summary.get_ref().accepted as u64;
                        accepted.fetch_add(n, Ordering::Relaxed);
                        if began >= measured_from && Instant::now() <= deadline {
                            measured_accepted.fetch_add(n, Ordering::Relaxed);
                        }
                        if summary.get_ref().rejected > 0 {
                            errors.fetch_add(summary.get_ref().rejected as u64, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for stream in streams {
        let _ = stream.await;
    }
    let readings = accepted.load(Ordering::Relaxed);
    let readings_per_second =
        measured_accepted.load(Ordering::Relaxed) as f64 / spec.duration.as_secs_f64().max(1e-9);

    // Everything acknowledged is durable; after a clean stop the data directory holds only
    // the stored readings and their indexes.
    let bytes_per_reading = host.stop_and_measure_disk().await as f64 / readings.max(1) as f64;
    Ok(TelemetryRun {
        readings_per_second,
        readings,
        errors: errors.load(Ordering::Relaxed),
        bytes_per_reading,
    })
}

/// The readings of the telemetry scenario as CSV rows, for PostgreSQL's COPY.
pub fn readings_csv(path: &std::path::Path, rows: u64) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let start = 1_790_000_000i64;
    let per_sensor = rows / SENSORS as u64 + 1;
    let mut written = 0;
    'outer: for second in 0..per_sensor as i64 {
        for sensor in 0..SENSORS {
            if written == rows {
                break 'outer;
            }
            let t = chrono::DateTime::from_timestamp(start + second, 0).unwrap_or_default();
            writeln!(
                out,
                "S{sensor:04},{},{:.2}",
                t.to_rfc3339(),
                2.0 + ((second + sensor as i64) % 20) as f64 * 0.05
            )?;
            written += 1;
        }
    }
    out.flush()
}

/// Batches in one round of a stream.
const ROUND_BATCHES: i64 = 5;

/// The seconds of readings one round covers.
pub const ROUND_SECONDS: i64 = ROUND_BATCHES * BATCH_SECONDS;

/// One round of a stream of the telemetry scenario (and of the telemetry service's
/// `ingest_bench` example): 5 batches of 20 seconds of 1 Hz readings of every one of
/// `sensors`, from `from_secs` (seconds since the epoch) on, about 2 °C.
pub fn readings_round(sensors: &[String], from_secs: i64) -> Vec<telemetry::ReadingBatch> {
    (0..ROUND_BATCHES)
        .map(|batch| {
            let mut readings = Vec::with_capacity(sensors.len() * BATCH_SECONDS as usize);
            for offset in 0..BATCH_SECONDS {
                for (i, sensor) in sensors.iter().enumerate() {
                    let t = from_secs + batch * BATCH_SECONDS + offset;
                    readings.push(telemetry::Reading {
                        sensor_id: sensor.clone(),
                        time: Some(proto_time::timestamp(t.saturating_mul(1000))),
                        celsius: 2.0 + ((t + i as i64) % 20) as f64 * 0.05,
                        humidity_percent: None,
                        door_open: None,
                    });
                }
            }
            telemetry::ReadingBatch { readings }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_is_five_batches_of_twenty_seconds_of_every_sensor() {
        let sensors = vec!["S0000".to_string(), "S0001".to_string()];
        let round = readings_round(&sensors, 1_790_000_000);
        assert_eq!(round.len(), 5);
        assert!(round.iter().all(|b| b.readings.len() == 40));
        let seconds: Vec<i64> = round
            .iter()
            .flat_map(|b| &b.readings)
            .map(|r| r.time.as_ref().map_or(0, |t| t.seconds))
            .collect();
        assert_eq!(seconds.first(), Some(&1_790_000_000));
        assert_eq!(seconds.last(), Some(&(1_790_000_000 + ROUND_SECONDS - 1)));
        assert!(seconds.windows(2).all(|w| w[1] - w[0] <= 1));
    }
}
