//! Act 6 (the excursion): the door opened at the border raises an alarm that holds the
//! transfer's lots (waited for with a bounded timeout), and QA acknowledges it.

use std::time::{Duration, Instant};

use coldchain_ops::call;
use coldchain_ops::format;
use coldchain_proto::telemetry::v1 as telemetry;
use coldchain_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use coldchain_runtime::client::Channel;
use coldchain_runtime::proto_time;

use crate::PARK;
use crate::day::Day;
use crate::outcome::{AlarmOutcome, DemoError, step_err};
use crate::transfer::Corridor;

/// The excursion's alarm, once acknowledged, and whether it held the lots.
pub(crate) struct Excursion {
    pub(crate) alarm: Option<AlarmOutcome>,
    pub(crate) hold_placed: bool,
}

/// Waits (bounded) for the excursion's alarm and its hold on the transfer's lots, then QA
/// acknowledges the alarm. `uploaded` is when the excursion's readings were uploaded.
pub(crate) async fn hold_and_acknowledge(
    day: &mut Day<'_>,
    corridor: &Corridor,
    uploaded: Instant,
) -> Result<Excursion, DemoError> {
    let step = "excursion alarm";
    let sensor_id = &corridor.sensor_id;
    let wait = day.config.wait;
    let alarm = wait_alarm(&day.park.telemetry, sensor_id, wait, |a| {
        a.hold_status == telemetry::HoldStatus::Placed as i32
            || a.hold_status == telemetry::HoldStatus::NotRequired as i32
    })
    .await
    .map_err(step_err(step))?;
    let hold_placed = alarm
        .as_ref()
        .is_some_and(|a| a.hold_status == telemetry::HoldStatus::Placed as i32);
    let hold_placed_after_ms = hold_placed.then(|| uploaded.elapsed().as_millis() as u64);
    match &alarm {
        None => day.warnings.push(format!(
            "no excursion alarm for {sensor_id} within {} s",
            wait.as_secs()
        )),
        Some(a) if hold_placed => day.progress.say(&format!(
            "alarm {} {}: hold placed ({})",
            a.alarm_id,
            format::alarm_kind_name(a.kind),
            a.hold_ids.join(", ")
        )),
        Some(a) => day.warnings.push(format!(
            "alarm {}: the excursion's hold is {} after {} s{}",
            a.alarm_id,
            format::hold_status_name(a.hold_status),
            wait.as_secs(),
            if a.hold_last_error.is_empty() {
                String::new()
            } else {
                format!(" ({})", a.hold_last_error)
            }
        )),
    }
    let alarm = match &alarm {
        Some(a) => Some(acknowledge(day, a, hold_placed_after_ms).await?),
        None => None,
    };
    Ok(Excursion { alarm, hold_placed })
}

/// QA acknowledges the alarm (already acknowledged by an earlier run: a warning).
async fn acknowledge(
    day: &mut Day<'_>,
    a: &telemetry::Alarm,
    hold_placed_after_ms: Option<u64>,
) -> Result<AlarmOutcome, DemoError> {
    let step = "acknowledge alarm";
    let request = telemetry::AcknowledgeAlarmRequest {
        request_id: day.rid("ack"),
        alarm_id: a.alarm_id.clone(),
        acknowledged_by: "qa.duty@cn-huaihua-park".into(),
        note: "reefer door opened at the Mohan-Boten border inspection; lots held pending QA"
            .into(),
    };
    let acked = match call!(day.park.telemetry, acknowledge_alarm, request) {
        Ok(acked) => acked,
        Err(status) if status.code() == tonic::Code::FailedPrecondition => {
            day.warnings
                .push(format!("alarm {} was already acknowledged", a.alarm_id));
            a.clone()
        }
        Err(status) => return Err(step_err(step)(status)),
    };
    day.progress.say(&format!(
        "QA acknowledged alarm {}: {}",
        acked.alarm_id,
        format::alarm_state_name(acked.state)
    ));
    Ok(AlarmOutcome {
        site_id: PARK.into(),
        alarm_id: acked.alarm_id.clone(),
        kind: format::alarm_kind_name(acked.kind),
        state: format::alarm_state_name(acked.state),
        limit_celsius: acked.limit_celsius,
        peak_celsius: acked.peak_celsius,
        degree_minutes: acked.degree_minutes,
        duration_ms: acked
            .duration
            .as_ref()
            .and_then(proto_time::duration_millis),
        hold_status: format::hold_status_name(a.hold_status),
        hold_ids: a.hold_ids.clone(),
        hold_last_error: a.hold_last_error.clone(),
        acknowledged_by: acked.acknowledged_by.clone(),
        hold_placed_after_ms,
    })
}

/// Polls the sensor's excursion alarms until one satisfies `done` or `within` elapsed;
/// answers the newest excursion alarm seen (None if none was raised).
async fn wait_alarm(
    client: &TelemetryServiceClient<Channel>,
    sensor_id: &str,
    within: Duration,
    done: impl Fn(&telemetry::Alarm) -> bool,
) -> Result<Option<telemetry::Alarm>, tonic::Status> {
    let deadline = Instant::now() + within;
    loop {
        let request = telemetry::ListAlarmsRequest {
            sensor_id: sensor_id.to_string(),
            kinds: vec![
                telemetry::AlarmKind::ExcursionHigh as i32,
                telemetry::AlarmKind::ExcursionLow as i32,
            ],
            page_size: 10,
            ..Default::default()
        };
        let answer = call!(client, list_alarms, request)?;
        let newest = answer.alarms.into_iter().next();
        if newest.as_ref().is_some_and(&done) || Instant::now() >= deadline {
            return Ok(newest);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
