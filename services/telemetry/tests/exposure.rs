//! GetExposure over a real server: what a sensor saw over a range against its limits.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::time::{Duration, Instant};

use coldchain_proto::telemetry::v1 as pb;
use coldchain_store::ManualClock;
use common::*;
use tonic::Code;

fn request(sensor: &str, start: i64, end: i64) -> pb::GetExposureRequest {
    pb::GetExposureRequest {
        sensor_id: sensor.into(),
        start_time: Some(ts(start)),
        end_time: Some(ts(end)),
    }
}

fn profile_2_to_8() -> pb::SensorProfile {
    pb::SensorProfile {
        min_celsius: Some(2.0),
        max_celsius: Some(8.0),
        ..Default::default()
    }
}

fn millis(d: Option<prost_types::Duration>) -> i64 {
    let d = d.unwrap();
    d.seconds * 1_000 + i64::from(d.nanos) / 1_000_000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_excursion_gives_its_min_max_and_time_outside() {
    let dir = tempfile::tempdir().unwrap();
    let network = network_with_inventory(&format!("http://127.0.0.1:{}", free_port()));
    let server = Server::start(dir.path(), ManualClock::at(T0), network, fast_options()).await;
    let mut client = server.client.clone();
    client
        .register_sensor(zone_sensor("r", "s1", "chilled-a", Some(profile_2_to_8())))
        .await
        .unwrap();
    // One reading a minute for an hour from T0 − 60 min: 5 °C, except 9.5 °C for the 10
    // minutes from minute 20, and 1 °C for the 5 minutes from minute 40.
    let start = T0 - 60 * MINUTE;
    let readings = (0..60)
        .map(|i| {
            let celsius = match i {
                20..30 => 9.5,
                40..45 => 1.0,
                _ => 5.0,
            };
            reading("s1", start + i * MINUTE, celsius)
        })
        .collect();
    push(&mut client, "p", readings).await;

    let exposure = client
        .get_exposure(request("s1", start, T0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(exposure.sensor_id, "s1");
    assert_eq!(exposure.zone_id, "chilled-a");
    assert_eq!(exposure.reading_count, 60);
    assert_eq!(exposure.min_celsius, Some(1.0));
    assert_eq!(exposure.max_celsius, Some(9.5));
    assert_eq!(exposure.limit_min_celsius, 2.0);
    assert_eq!(exposure.limit_max_celsius, 8.0);
    assert_eq!(millis(exposure.time_outside_limits), 15 * MINUTE);
    assert_eq!(millis(exposure.covered), 60 * MINUTE);
    let mean = exposure.mean_celsius.unwrap();
    assert!((mean - (45.0 * 5.0 + 10.0 * 9.5 + 5.0 * 1.0) / 60.0).abs() < 1e-9);
    assert!(exposure.mkt_celsius.unwrap() > mean);

    // The MKT is GetMeanKineticTemperature's over the same range.
    let mkt = client
        .get_mean_kinetic_temperature(pb::GetMeanKineticTemperatureRequest {
            sensor_id: "s1".into(),
            start_time: Some(ts(start)),
            end_time: Some(ts(T0)),
            activation_energy_kj_per_mol: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!((mkt.mkt_celsius - exposure.mkt_celsius.unwrap()).abs() < 1e-9);
    assert_eq!(mkt.span, exposure.covered);

    // Part of the range: the hot readings only.
    let hot = client
        .get_exposure(request("s1", start + 20 * MINUTE, start + 30 * MINUTE))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hot.reading_count, 10);
    assert_eq!(hot.min_celsius, Some(9.5));
    assert_eq!(millis(hot.time_outside_limits), millis(hot.covered));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_range_has_no_figures_and_bad_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let network = network_with_inventory(&format!("http://127.0.0.1:{}", free_port()));
    let server = Server::start(dir.path(), ManualClock::at(T0), network, fast_options()).await;
    let mut client = server.client.clone();
    client
        .register_sensor(zone_sensor("r", "s1", "chilled-a", Some(profile_2_to_8())))
        .await
        .unwrap();
    push(&mut client, "p", vec![reading("s1", T0 - MINUTE, 5.0)]).await;

    let empty = client
        .get_exposure(request("s1", T0 - 60 * MINUTE, T0 - 30 * MINUTE))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(empty.reading_count, 0);
    assert_eq!(empty.min_celsius, None);
    assert_eq!(empty.max_celsius, None);
    assert_eq!(empty.mean_celsius, None);
    assert_eq!(empty.mkt_celsius, None);
    assert_eq!(empty.time_outside_limits, None);
    assert_eq!(empty.covered, None);
    assert_eq!(empty.limit_max_celsius, 8.0, "the limits are still shown");

    let unknown = client
        .get_exposure(request("nope", T0 - MINUTE, T0))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let backwards = client
        .get_exposure(request("s1", T0, T0 - MINUTE))
        .await
        .unwrap_err();
    assert_eq!(backwards.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&backwards), ["end_time"]);
    let missing = client
        .get_exposure(pb::GetExposureRequest::default())
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument);
    assert_eq!(
        bad_fields(&missing),
        ["sensor_id", "start_time", "end_time"]
    );
}

/// Not a timed test: run once to measure (`--ignored --nocapture`), the figure goes in the
/// report. 30 days at one reading a minute (43 200 readings), pushed a week at a time as
/// the clock moves (a reading may be at most 7 days old).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a rule"]
async fn measure_a_30_day_exposure_at_one_reading_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let days = 30;
    let start = T0 - days * 24 * 60 * MINUTE;
    let clock = ManualClock::at(start);
    let network = network_with_inventory(&format!("http://127.0.0.1:{}", free_port()));
    let server = Server::start(dir.path(), clock.clone(), network, fast_options()).await;
    let mut client = server.client.clone();
    client
        .register_sensor(zone_sensor("r", "s1", "chilled-a", Some(profile_2_to_8())))
        .await
        .unwrap();
    let total = days * 24 * 60;
    let mut i = 0;
    while i < total {
        let batch: Vec<_> = (i..(i + 10_000).min(total))
            .map(|m| {
                let celsius = 5.0 + 4.0 * ((m as f64) / 300.0).sin();
                reading("s1", start + m * MINUTE, (celsius * 100.0).round() / 100.0)
            })
            .collect();
        clock.set(start + (i + batch.len() as i64) * MINUTE);
        let summary = push(&mut client, &format!("p-{i}"), batch).await;
        assert_eq!(summary.rejected, 0);
        i += 10_000;
    }
    clock.set(T0);
    let mut times = Vec::new();
    let mut answer = None;
    for _ in 0..5 {
        let began = Instant::now();
        answer = Some(
            client
                .get_exposure(request("s1", start, T0))
                .await
                .unwrap()
                .into_inner(),
        );
        times.push(began.elapsed());
    }
    let answer = answer.unwrap();
    assert_eq!(answer.reading_count, total);
    times.sort();
    println!(
        "GetExposure over {days} days, {total} readings: min {:?}, median {:?}, max {:?}",
        times[0], times[2], times[4]
    );
    assert!(times[2] < Duration::from_secs(10));
}
