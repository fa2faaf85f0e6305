//! Acts 5 and 6 (the readings): the reefer streams readings live to the park's telemetry
//! while the train has coverage; through the tunnels and mountains of northern Laos its
//! logger buffers (the door opened at the border then), and it uploads the buffer on
//! arrival (`PushReadings`).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use coldchain_ops::{call, unary};
use coldchain_proto::common::v1 as common;
use coldchain_proto::telemetry::v1 as telemetry;
use coldchain_runtime::proto_time;

use crate::day::{Day, SiteClients};
use crate::outcome::{DemoError, ReadingsOutcome, step_err};
use crate::transfer::Corridor;
use crate::{PARK, TRAIN};

/// How many of the journey's readings the reefer streams live; the rest it buffers.
const LIVE_READINGS: usize = 36;

/// The journey's readings: what was sent so far, and what the logger holds.
pub(crate) struct Journey {
    pub(crate) readings: ReadingsOutcome,
    buffered: Vec<telemetry::Reading>,
}

/// The reefer streams the live part of the journey to the park's telemetry.
pub(crate) async fn ride(day: &mut Day<'_>, corridor: &Corridor) -> Result<Journey, DemoError> {
    let step = "reefer readings";
    let sensor_id = &corridor.sensor_id;
    let journey = journey(sensor_id, day.anchor);
    let (live, buffered) = journey.split_at(LIVE_READINGS.min(journey.len()));
    let mut readings = ReadingsOutcome {
        site_id: PARK.into(),
        sensor_id: sensor_id.clone(),
        sent: journey.len() as i64,
        streamed_live: live.len() as i64,
        uploaded_on_arrival: buffered.len() as i64,
        min_celsius: journey
            .iter()
            .map(|r| r.celsius)
            .fold(f64::INFINITY, f64::min),
        max_celsius: journey
            .iter()
            .map(|r| r.celsius)
            .fold(f64::NEG_INFINITY, f64::max),
        ..ReadingsOutcome::default()
    };
    let reefer = telemetry::ReeferBinding {
        container_id: corridor.container_id.clone(),
        train_or_route: TRAIN.into(),
        transfer_id: corridor.transfer_id.clone(),
        temperature_class: common::TemperatureClass::Chilled as i32,
    };
    stream_live(
        &day.park,
        sensor_id,
        &reefer,
        live,
        day.config.wait,
        &mut readings,
    )
    .await
    .map_err(step_err(step))?;
    if readings.registered_by_demo {
        day.warnings.push(format!(
            "the reefer sensor {sensor_id} was not registered at {PARK} by the transfer; the demo registered it"
        ));
    }
    day.progress.say(&format!(
        "the reefer streamed {} live readings to {PARK} telemetry",
        live.len()
    ));
    Ok(Journey {
        buffered: buffered.to_vec(),
        readings,
    })
}

/// On arrival the logger uploads its buffer; answers when the upload was acknowledged.
pub(crate) async fn upload(day: &Day<'_>, journey: &mut Journey) -> Result<Instant, DemoError> {
    let step = "reefer upload";
    let request = telemetry::PushReadingsRequest {
        request_id: day.rid("reefer-upload"),
        readings: journey.buffered.clone(),
    };
    let summary = call!(day.park.sensors, push_readings, request).map_err(step_err(step))?;
    let readings = &mut journey.readings;
    readings.accepted += summary.accepted;
    readings.duplicates += summary.duplicates;
    readings.rejected += summary.rejected;
    let uploaded = Instant::now();
    day.progress.say(&format!(
        "the reefer's logger uploaded {} buffered readings: {} accepted, {} duplicates, {} rejected in all",
        journey.buffered.len(),
        readings.accepted,
        readings.duplicates,
        readings.rejected
    ));
    Ok(uploaded)
}

/// The reefer's journey: a reading every 30 s over the 50 minutes before `anchor`, about 2.5 °C, with
/// a 12-minute excursion up to about 7 °C while the door was open at the border.
pub(crate) fn journey(sensor_id: &str, anchor: DateTime<Utc>) -> Vec<telemetry::Reading> {
    let now = anchor;
    let count: i64 = 100;
    (0..count)
        .map(|i| {
            let at = now - chrono::Duration::seconds((count - i) * 30);
            let base = 2.3 + 0.3 * (i as f64 / 5.0).sin();
            let excursion = (40..64).contains(&i);
            let celsius = if excursion {
                4.6 + 2.4 * (std::f64::consts::PI * (i - 40) as f64 / 24.0).sin()
            } else {
                base
            };
            telemetry::Reading {
                sensor_id: sensor_id.to_string(),
                time: Some(proto_time::timestamp(at.timestamp_millis())),
                celsius: (celsius * 100.0).round() / 100.0,
                humidity_percent: Some(if excursion { 74.0 } else { 88.0 }),
                door_open: Some((40..44).contains(&i)),
            }
        })
        .collect()
}

/// Streams the live readings to the park's telemetry. If every reading is refused as coming
/// from an unknown sensor (the gateway binds the sensor as a step of the transfer), waits
/// for the binding, and in the end registers the sensor itself.
async fn stream_live(
    park: &SiteClients,
    sensor_id: &str,
    reefer: &telemetry::ReeferBinding,
    live: &[telemetry::Reading],
    within: Duration,
    outcome: &mut ReadingsOutcome,
) -> Result<(), tonic::Status> {
    let deadline = Instant::now() + within.min(Duration::from_secs(10));
    loop {
        let batches: Vec<telemetry::ReadingBatch> = live
            .chunks(20)
            .map(|chunk| telemetry::ReadingBatch {
                readings: chunk.to_vec(),
            })
            .collect();
        let mut client = park.sensors.clone();
        let summary = client
            .stream_readings(unary(futures::stream::iter(batches)))
            .await?
            .into_inner();
        let unknown = summary
            .rejections
            .iter()
            .all(|r| r.reason == telemetry::RejectionReason::UnknownSensor as i32);
        outcome.accepted += summary.accepted;
        outcome.duplicates += summary.duplicates;
        if summary.rejected == 0 || !unknown || outcome.registered_by_demo {
            outcome.rejected += summary.rejected;
            return Ok(());
        }
        if Instant::now() >= deadline {
            // The transfer did not bind the sensor: register it as its reefer ourselves.
            let request = telemetry::RegisterSensorRequest {
                request_id: format!("demo-register-{sensor_id}"),
                sensor_id: sensor_id.to_string(),
                binding: Some(telemetry::register_sensor_request::Binding::Reefer(
                    reefer.clone(),
                )),
                profile: None,
                description: "reefer of the demo's China-Laos train".into(),
                actor: Default::default(),
            };
            call!(park.telemetry, register_sensor, request)?;
            outcome.registered_by_demo = true;
            continue;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
