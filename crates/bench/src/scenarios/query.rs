//! `QueryReadings` over days of one sensor's 1 Hz history, in 1-hour buckets.

use std::time::Duration;

use coldchain_proto::telemetry::v1 as telemetry;
use coldchain_runtime::network::ServiceKind;
use coldchain_runtime::proto_time;

use super::run_id;
use crate::Build;
use crate::host::{Caller, Host};
use crate::load::{self, LoadResult, LoadSpec};

/// What the query scenario measured.
pub struct QueryRun {
    pub load: LoadResult,
    pub buckets: usize,
    pub readings: u64,
}

/// `QueryReadings` over `days` days in 1-hour buckets of one 1 Hz sensor. The sensor's
/// history is pushed day by day under a manual clock that walks forward with it, as a
/// sensor streaming for `days` days would have written it (the ingest refuses readings
/// older than 7 days).
pub async fn telemetry_query(spec: &LoadSpec, days: u32, build: Build) -> Result<QueryRun, String> {
    let first_second = 1_790_000_000i64;
    let clock = coldchain_store::ManualClock::at(first_second * 1000);
    let host = Host::start_with_clock(ServiceKind::Telemetry, Some(clock.clone()), build).await?;
    let connection = host.channels(1).await?.remove(0);
    let mut operations = telemetry::telemetry_service_client::TelemetryServiceClient::new(
        host.as_caller(&connection, Caller::Operations),
    );
    let mut sensors = telemetry::telemetry_service_client::TelemetryServiceClient::new(
        host.as_caller(&connection, Caller::Sensors),
    );
    // The site's warehouse system reads the history.
    let channel = host.as_caller(&connection, Caller::Warehouse);
    let mut client =
        telemetry::telemetry_service_client::TelemetryServiceClient::new(channel.clone());
    let sensor = "Q0001".to_string();
    operations
        .register_sensor(telemetry::RegisterSensorRequest {
            request_id: format!("bench-query-sensor-{}", run_id()),
            sensor_id: sensor.clone(),
            binding: Some(telemetry::register_sensor_request::Binding::ZoneId(
                "chilled-a".into(),
            )),
            ..Default::default()
        })
        .await
        .map_err(|s| format!("register sensor: {s}"))?;
    let total = i64::from(days) * 86_400;
    let mut pushed = 0i64;
    while pushed < total {
        let n = (total - pushed).min(10_000);
        let readings = (0..n)
            .map(|k| {
                let t = first_second + pushed + k;
                telemetry::Reading {
                    sensor_id: sensor.clone(),
                    time: Some(proto_time::timestamp(t * 1000)),
                    celsius: 3.0 + ((t % 600) as f64) * 0.001,
                    humidity_percent: None,
                    door_open: None,
                }
            })
            .collect();
        clock.set((first_second + pushed + n) * 1000);
        let summary = sensors
            .stream_readings(futures::stream::iter([telemetry::ReadingBatch {
                readings,
            }]))
            .await
            .map_err(|s| format!("preload query series: {s}"))?;
        if summary.get_ref().accepted != n {
            return Err(format!(
                "preload query series: {} of {n} readings accepted",
                summary.get_ref().accepted
            ));
        }
        pushed += n;
    }
    let request = telemetry::QueryReadingsRequest {
        sensor_id: sensor,
        start_time: Some(proto_time::timestamp(first_second * 1000)),
        end_time: Some(proto_time::timestamp((first_second + total) * 1000)),
        bucket: Some(proto_time::duration(Duration::from_secs(3600))),
    };
    let probe = client
        .query_readings(request.clone())
        .await
        .map_err(|s| format!("query readings: {s}"))?;
    let buckets = probe.get_ref().buckets.len();
    let counted: i64 = probe.get_ref().buckets.iter().map(|b| b.count).sum();
    if counted != total {
        return Err(format!(
            "query readings: buckets count {counted} readings, {total} were pushed"
        ));
    }
    let query_spec = LoadSpec {
        concurrency: 4,
        ..spec.clone()
    };
    let load = load::run("query", &query_spec, move |_, _| {
        let mut client =
            telemetry::telemetry_service_client::TelemetryServiceClient::new(channel.clone());
        let request = request.clone();
        async move { client.query_readings(request).await.map(|_| ()) }
    })
    .await;
    host.stop().await;
    Ok(QueryRun {
        load,
        buckets,
        readings: total as u64,
    })
}
