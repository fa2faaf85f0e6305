//! The telemetry service's commands: `ack` (an alarm) and `readings` (a sensor's history
//! per time bucket, with a chart).

use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use clap::Args;
use coldchain_command::say;
use coldchain_credentials::OPERATIONS;
use coldchain_proto::telemetry::v1 as telemetry;
use coldchain_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use coldchain_runtime::config::parse_duration;
use coldchain_runtime::network::ServiceKind;
use coldchain_runtime::proto_time;
use serde_json::json;

use crate::format::{self, thousands, ts_short};
use crate::{CliError, RequestIdOpt, SiteOpts, call, connect_as, print_json, retry_with};

#[derive(Args)]
pub struct AckArgs {
    #[command(flatten)]
    site: SiteOpts,
    #[command(flatten)]
    request_id: RequestIdOpt,
    /// The alarm.
    alarm_id: String,
    /// Who acknowledges (a person or system).
    #[arg(long, value_name = "NAME")]
    by: String,
    /// What was done or found (required: an acknowledgement is a record).
    #[arg(long, value_name = "TEXT")]
    note: String,
    /// Call as this credential of the keyring [default: operations, the only role that
    /// acknowledges alarms].
    #[arg(long = "as", value_name = "ID")]
    caller: Option<String>,
}

pub async fn ack(args: AckArgs) -> Result<(), CliError> {
    let (_, endpoint) = args.site.resolve(ServiceKind::Telemetry)?;
    let caller = args.caller.as_deref().unwrap_or(OPERATIONS);
    let client = TelemetryServiceClient::new(connect_as(&endpoint, caller)?);
    let request_id = args.request_id.get();
    let request = telemetry::AcknowledgeAlarmRequest {
        request_id: request_id.clone(),
        alarm_id: args.alarm_id.clone(),
        acknowledged_by: args.by.clone(),
        note: args.note.clone(),
    };
    let alarm = call!(client, acknowledge_alarm, request).map_err(retry_with(&request_id))?;
    if args.site.json {
        print_json(&format::alarm_json(&alarm));
        return Ok(());
    }
    say!(
        "alarm {}  {}  {} at {}",
        alarm.alarm_id,
        format::alarm_state_name(alarm.state),
        format::alarm_kind_name(alarm.kind),
        alarm.site_id
    );
    say!("  sensor        {}", alarm.sensor_id);
    say!(
        "  acknowledged  by {} at {}",
        // A server before authors answers only the actor.
        alarm.acknowledged_author.as_ref().map_or_else(
            || alarm.acknowledged_by.clone(),
            |a| { format::author_short(Some(a)) }
        ),
        ts_short(alarm.acknowledged_at.as_ref())
    );
    if !alarm.ack_note.is_empty() {
        say!("  note          {}", alarm.ack_note);
    }
    say!(
        "  hold          {}{}",
        format::hold_status_name(alarm.hold_status),
        if alarm.hold_ids.is_empty() {
            String::new()
        } else {
            format!(" ({})", alarm.hold_ids.join(", "))
        }
    );
    Ok(())
}

#[derive(Args)]
pub struct ReadingsArgs {
    #[command(flatten)]
    site: SiteOpts,
    /// The sensor.
    sensor_id: String,
    /// Start: YYYY-MM-DD (site-local midnight), YYYY-MM-DDTHH:MM (site-local), an RFC 3339
    /// instant, `now` or `now-DURATION` such as now-6h.
    #[arg(long, value_name = "WHEN", default_value = "now-24h")]
    from: String,
    /// End (exclusive; a bare date YYYY-MM-DD includes that whole day). Same forms as --from.
    #[arg(long, value_name = "WHEN", default_value = "now")]
    to: String,
    /// Bucket width, e.g. 1m, 15m, 1h [default: about 60 buckets over the range].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    bucket: Option<Duration>,
    /// Call as this credential of the keyring, e.g. <SITE>-warehouse [default:
    /// operations].
    #[arg(long = "as", value_name = "ID")]
    caller: Option<String>,
}

/// Parses a point in time; bare dates and local date-times are in `tz`. With `end`, a bare
/// date means the end of that day (the next midnight).
pub fn parse_when(
    text: &str,
    tz: Tz,
    now: DateTime<Utc>,
    end: bool,
) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    if t == "now" {
        return Ok(now);
    }
    if let Some(rest) = t.strip_prefix("now-") {
        let d = parse_duration(rest)?;
        let d = chrono::Duration::from_std(d).map_err(|_| format!("{t:?} is too far back"))?;
        return now
            .checked_sub_signed(d)
            .ok_or_else(|| format!("{t:?} is too far back"));
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(t) {
        return Ok(at.with_timezone(&Utc));
    }
    let local = |naive: NaiveDateTime| {
        tz.from_local_datetime(&naive)
            .earliest()
            .map(|at| at.with_timezone(&Utc))
            .ok_or_else(|| format!("{t:?} does not exist in {tz}"))
    };
    if let Ok(day) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        let day = if end {
            day.succ_opt()
                .ok_or_else(|| format!("{t:?} is out of range"))?
        } else {
            day
        };
        return local(day.and_hms_opt(0, 0, 0).unwrap_or_default());
    }
    for pattern in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(t, pattern) {
            return local(naive);
        }
    }
    Err(format!(
        "expected YYYY-MM-DD, YYYY-MM-DDTHH:MM, an RFC 3339 instant, now or now-DURATION, got {t:?}"
    ))
}

/// A round bucket width giving at most about `target` buckets over `span`.
pub fn auto_bucket(span: Duration, target: u32) -> Duration {
    const NICE: [u64; 16] = [
        1, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
    ];
    let target = u64::from(target.max(1));
    for secs in NICE {
        if span.as_secs().div_ceil(secs) <= target {
            return Duration::from_secs(secs);
        }
    }
    Duration::from_secs((span.as_secs() / target).max(86400).div_ceil(86400) * 86400)
}

pub async fn readings(args: ReadingsArgs) -> Result<(), CliError> {
    let (site, endpoint) = args.site.resolve(ServiceKind::Telemetry)?;
    let now = Utc::now();
    let start = parse_when(&args.from, site.time_zone, now, false)
        .map_err(|e| CliError::Usage(format!("--from: {e}")))?;
    let end = parse_when(&args.to, site.time_zone, now, true)
        .map_err(|e| CliError::Usage(format!("--to: {e}")))?;
    if end <= start {
        return Err(CliError::Usage(format!(
            "--to ({}) must be after --from ({})",
            end.to_rfc3339(),
            start.to_rfc3339()
        )));
    }
    let span = (end - start).to_std().unwrap_or_default();
    let bucket = args.bucket.unwrap_or_else(|| auto_bucket(span, 60));
    let caller = args.caller.as_deref().unwrap_or(OPERATIONS);
    let client = TelemetryServiceClient::new(connect_as(&endpoint, caller)?);
    let request = telemetry::QueryReadingsRequest {
        sensor_id: args.sensor_id.clone(),
        start_time: Some(proto_time::timestamp(start.timestamp_millis())),
        end_time: Some(proto_time::timestamp(end.timestamp_millis())),
        bucket: Some(proto_time::duration(bucket)),
    };
    let answer = call!(client, query_readings, request)?;
    if args.site.json {
        print_json(&json!({
            "site_id": site.id,
            "sensor_id": answer.sensor_id,
            "start_time": start.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            "end_time": end.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            "bucket_seconds": bucket.as_secs_f64(),
            "buckets": answer.buckets.iter().map(|b| json!({
                "start_time": format::ts_str(b.start_time.as_ref()),
                "count": b.count,
                "min_celsius": b.min_celsius,
                "mean_celsius": b.mean_celsius,
                "max_celsius": b.max_celsius,
            })).collect::<Vec<_>>(),
            "unreadable_ranges": answer.unreadable_ranges.iter().map(|u| json!({
                "start_time": format::ts_str(u.start_time.as_ref()),
                "end_time": format::ts_str(u.end_time.as_ref()),
                "message": u.message,
            })).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    for line in readings_chart(&answer, &site.id, start, end, bucket) {
        say!("{line}");
    }
    for u in &answer.unreadable_ranges {
        eprintln!(
            "warning: unreadable data {} .. {}: {}",
            ts_short(u.start_time.as_ref()),
            ts_short(u.end_time.as_ref()),
            u.message
        );
    }
    Ok(())
}

/// The terminal rendering of a QueryReadings answer: a header, a sparkline of the bucket
/// means, then one row per bucket with its min..max range drawn on a common scale.
pub fn readings_chart(
    answer: &telemetry::QueryReadingsResponse,
    site_id: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    bucket: Duration,
) -> Vec<String> {
    let mut out = Vec::new();
    let count: i64 = answer.buckets.iter().map(|b| b.count).sum();
    out.push(format!(
        "sensor {} at {site_id}: {} .. {}, {} buckets of {}, {} readings",
        answer.sensor_id,
        start.format("%Y-%m-%d %H:%M:%SZ"),
        end.format("%Y-%m-%d %H:%M:%SZ"),
        answer.buckets.len(),
        coldchain_runtime::config::format_duration(bucket),
        thousands(count)
    ));
    if answer.buckets.is_empty() {
        out.push("(no readings in the range)".to_string());
        return out;
    }
    let low = answer
        .buckets
        .iter()
        .map(|b| b.min_celsius)
        .fold(f64::INFINITY, f64::min);
    let high = answer
        .buckets
        .iter()
        .map(|b| b.max_celsius)
        .fold(f64::NEG_INFINITY, f64::max);
    let means: Vec<f64> = answer.buckets.iter().map(|b| b.mean_celsius).collect();
    let overall_mean = answer
        .buckets
        .iter()
        .map(|b| b.mean_celsius * b.count as f64)
        .sum::<f64>()
        / (count.max(1) as f64);
    out.push(format!(
        "mean {}  min {low:.1} °C  mean {overall_mean:.1} °C  max {high:.1} °C",
        format::sparkline(&means, low, high)
    ));
    let width = 40;
    out.push(format!(
        "{:<20} {:>6} {:>7} {:>7} {:>7}  {low:.1} °C .. {high:.1} °C",
        "BUCKET (UTC)", "N", "MIN", "MEAN", "MAX"
    ));
    for b in &answer.buckets {
        out.push(format!(
            "{:<20} {:>6} {:>7.1} {:>7.1} {:>7.1}  |{}|",
            ts_short(b.start_time.as_ref()),
            b.count,
            b.min_celsius,
            b.mean_celsius,
            b.max_celsius,
            format::range_bar(
                b.min_celsius,
                b.mean_celsius,
                b.max_celsius,
                low,
                high,
                width
            )
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_the_site_zone() {
        let tz: Tz = "Asia/Vientiane".parse().unwrap();
        let now = DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |s: &str, end| parse_when(s, tz, now, end).unwrap().to_rfc3339();
        assert_eq!(at("now", false), "2026-03-01T12:00:00+00:00");
        assert_eq!(at("now-2h", false), "2026-03-01T10:00:00+00:00");
        // Vientiane is UTC+7: local midnight is 17:00 UTC the day before.
        assert_eq!(at("2026-03-01", false), "2026-02-28T17:00:00+00:00");
        assert_eq!(at("2026-03-01", true), "2026-03-01T17:00:00+00:00");
        assert_eq!(at("2026-03-01T08:30", false), "2026-03-01T01:30:00+00:00");
        assert_eq!(
            at("2026-03-01T08:30:00Z", false),
            "2026-03-01T08:30:00+00:00"
        );
        assert!(parse_when("yesterday", tz, now, false).is_err());
        assert!(parse_when("now-2", tz, now, false).is_err());
    }

    #[test]
    fn buckets_are_round() {
        assert_eq!(
            auto_bucket(Duration::from_secs(3600), 60),
            Duration::from_secs(60)
        );
        assert_eq!(
            auto_bucket(Duration::from_secs(86400), 60),
            Duration::from_secs(1800)
        );
        assert_eq!(
            auto_bucket(Duration::from_secs(30), 60),
            Duration::from_secs(1)
        );
        assert_eq!(
            auto_bucket(Duration::from_secs(365 * 86400), 60),
            Duration::from_secs(7 * 86400)
        );
    }

    #[test]
    fn chart_shows_every_bucket_on_one_scale() {
        let bucket = |minute: i64, min, mean, max| telemetry::ReadingBucket {
            start_time: Some(prost_types::Timestamp {
                seconds: 1_772_000_000 + minute * 60,
                nanos: 0,
            }),
            min_celsius: min,
            mean_celsius: mean,
            max_celsius: max,
            count: 6,
        };
        let answer = telemetry::QueryReadingsResponse {
            sensor_id: "reefer-1".into(),
            buckets: vec![bucket(0, 2.0, 2.5, 3.0), bucket(1, 5.0, 6.5, 8.0)],
            unreadable_ranges: vec![],
        };
        let start = Utc::now();
        let lines = readings_chart(
            &answer,
            "cn-huaihua-park",
            start,
            start,
            Duration::from_secs(60),
        );
        assert!(
            lines[0].contains("2 buckets of 1m, 12 readings"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].contains("min 2.0 °C") && lines[1].contains("max 8.0 °C"),
            "{}",
            lines[1]
        );
        assert!(lines[1].starts_with("mean ▂▆ "), "{}", lines[1]);
        assert_eq!(lines.len(), 5);
        assert!(
            lines[3].ends_with("|[--*---]                                |"),
            "{}",
            lines[3]
        );
        assert!(lines[4].ends_with("]|"), "{}", lines[4]);
    }
}
