//! `alarms`: every site's alarms, listed, or watched live with `--watch`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Args;
use coldchain_command::say;
use coldchain_proto::network::v1 as network;
use coldchain_proto::network::v1::network_service_client::NetworkServiceClient;
use coldchain_proto::telemetry::v1 as telemetry;
use coldchain_runtime::client::Channel;
use coldchain_runtime::config::parse_duration;
use coldchain_runtime::retry::describe;
use serde_json::json;

use super::{CallerOpt, client, warn_failures};
use crate::format::{self, Table, or_dash, ts_short};
use crate::pages::Pages;
use crate::stream::{Reconnect, retryable};
use crate::{CliError, GatewayOpts, call, emit, print_json};

#[derive(Args)]
pub struct AlarmsArgs {
    #[command(flatten)]
    gateway: GatewayOpts,
    #[command(flatten)]
    caller: CallerOpt,
    /// Only this site (repeat for more).
    #[arg(long = "site", value_name = "ID")]
    sites: Vec<String>,
    /// Only active alarms.
    #[arg(long)]
    active: bool,
    /// Only alarms in this state (repeat for more): ACTIVE_UNACK, ACTIVE_ACK,
    /// CLEARED_UNACK, CLEARED_ACK.
    #[arg(long = "state", value_name = "STATE", value_parser = format::parse_alarm_state)]
    states: Vec<telemetry::AlarmState>,
    /// Only alarms of this kind (repeat for more): EXCURSION_HIGH, EXCURSION_LOW,
    /// SENSOR_OFFLINE.
    #[arg(long = "kind", value_name = "KIND", value_parser = format::parse_alarm_kind)]
    kinds: Vec<telemetry::AlarmKind>,
    /// At most this many alarms (list mode).
    #[arg(long, value_name = "N", default_value_t = 100)]
    limit: usize,
    /// Stream every site's alarm events live (JSON lines with --json) until interrupted.
    #[arg(long)]
    watch: bool,
    /// Watch: resume a site's feed from this sequence, SITE=SEQ (repeat for more); other
    /// sites start at the beginning of their feed.
    #[arg(long = "from-seq", value_name = "SITE=SEQ", value_parser = parse_cursor)]
    from_seq: Vec<(String, u64)>,
    /// Watch: stop after this many events.
    #[arg(long, value_name = "N")]
    max_events: Option<u64>,
    /// Watch: stop after this long, e.g. 30s or 5m.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    for_: Option<Duration>,
}

fn parse_cursor(text: &str) -> Result<(String, u64), String> {
    let (site, seq) = text
        .split_once('=')
        .ok_or_else(|| format!("expected SITE=SEQ, got {text:?}"))?;
    let seq = seq
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("expected SITE=SEQ with a whole number, got {text:?}"))?;
    Ok((site.trim().to_string(), seq))
}

pub async fn alarms(args: AlarmsArgs) -> Result<(), CliError> {
    let client = client(&args.gateway, &args.caller)?;
    if args.watch {
        return watch_alarms(client, &args).await;
    }
    let mut pages = Pages::new(args.limit);
    let mut failures: Vec<network::SiteError> = Vec::new();
    loop {
        let request = network::ListAlarmsRequest {
            site_ids: args.sites.clone(),
            states: args.states.iter().map(|s| *s as i32).collect(),
            kinds: args.kinds.iter().map(|k| *k as i32).collect(),
            active_only: args.active,
            page_size: pages.page_size(),
            page_token: pages.token(),
        };
        let page = call!(client, list_alarms, request)?;
        for f in page.failures {
            if !failures.iter().any(|g| g.site_id == f.site_id) {
                failures.push(f);
            }
        }
        if !pages.add(page.alarms, page.next_page_token) {
            break;
        }
    }
    let (alarms, more) = pages.finish();
    if args.gateway.json {
        print_json(&json!({
            "alarms": alarms.iter().map(format::alarm_json).collect::<Vec<_>>(),
            "failures": failures.iter().map(format::site_error_json).collect::<Vec<_>>(),
            "truncated": more,
        }));
        return Ok(());
    }
    warn_failures(&failures);
    let mut table = Table::new(&[
        "SITE",
        "ALARM",
        "SENSOR",
        "WHERE",
        "KIND",
        "STATE",
        "STARTED",
        "PEAK °C",
        "LIMIT °C",
        "DURATION",
        "°C·MIN",
        "HOLD",
        "ACKNOWLEDGED BY",
    ]);
    for a in &alarms {
        table.row(vec![
            a.site_id.clone(),
            a.alarm_id.clone(),
            a.sensor_id.clone(),
            alarm_where(a),
            format::alarm_kind_name(a.kind),
            format::alarm_state_name(a.state),
            ts_short(a.started_at.as_ref()),
            celsius_cell(a, a.peak_celsius),
            celsius_cell(a, a.limit_celsius),
            format::duration_short(a.duration.as_ref()),
            if is_offline(a) {
                "-".into()
            } else {
                format!("{:.1}", a.degree_minutes)
            },
            format::hold_status_name(a.hold_status),
            format::author_short(a.acknowledged_author.as_ref()),
        ]);
    }
    if table.is_empty() {
        say!("no alarms");
    } else {
        table.print();
    }
    if more {
        say!("(more than {}; use --limit)", args.limit);
    }
    Ok(())
}

fn is_offline(a: &telemetry::Alarm) -> bool {
    a.kind == telemetry::AlarmKind::SensorOffline as i32
}

fn celsius_cell(a: &telemetry::Alarm, value: f64) -> String {
    if is_offline(a) {
        "-".into()
    } else {
        format!("{value:.1}")
    }
}

fn alarm_where(a: &telemetry::Alarm) -> String {
    match &a.reefer {
        Some(r) if !r.container_id.is_empty() => format!("reefer {}", r.container_id),
        _ => or_dash(&a.zone_id),
    }
}

async fn watch_alarms(
    client: NetworkServiceClient<Channel>,
    args: &AlarmsArgs,
) -> Result<(), CliError> {
    let started = Instant::now();
    let deadline = args.for_.map(|d| started + d);
    let mut cursors: BTreeMap<String, u64> = args.from_seq.iter().cloned().collect();
    let mut seen: u64 = 0;
    let mut reconnect = Reconnect::new();
    eprintln!(
        "watching alarms of {} (Ctrl-C stops)",
        if args.sites.is_empty() {
            "every site".to_string()
        } else {
            args.sites.join(", ")
        }
    );
    let outcome: Result<(), CliError> = 'outer: loop {
        let request = network::WatchAlarmsRequest {
            from_sequences: cursors.clone().into_iter().collect(),
            site_ids: args.sites.clone(),
        };
        let mut client = client.clone();
        let opened = match deadline {
            Some(d) => {
                match tokio::time::timeout_at(d.into(), client.watch_alarms(request)).await {
                    Ok(r) => r,
                    Err(_) => break Ok(()),
                }
            }
            None => client.watch_alarms(request).await,
        };
        let mut stream = match opened {
            Ok(response) => response.into_inner(),
            Err(status) if retryable(&status) => {
                let why = describe(&status);
                reconnect
                    .pause(|ms| format!("gateway: {why}; reconnecting in {ms} ms"))
                    .await;
                continue;
            }
            Err(status) => break Err(status.into()),
        };
        loop {
            let next = match deadline {
                Some(d) => match tokio::time::timeout_at(d.into(), stream.message()).await {
                    Ok(next) => next,
                    Err(_) => break 'outer Ok(()),
                },
                None => stream.message().await,
            };
            match next {
                Ok(Some(message)) => {
                    reconnect.reset();
                    for status in &message.feed_status {
                        match (&status.error, status.connected) {
                            (_, true) => eprintln!("site {}: feed connected", status.site_id),
                            (Some(e), false) => eprintln!(
                                "site {}: feed dropped: {}: {}",
                                status.site_id, e.code, e.message
                            ),
                            (None, false) => eprintln!("site {}: feed dropped", status.site_id),
                        }
                    }
                    for event in &message.events {
                        let Some(e) = &event.event else { continue };
                        cursors.insert(event.site_id.clone(), e.sequence + 1);
                        seen += 1;
                        if !emit(&alarm_event_line(&event.site_id, e, args.gateway.json)) {
                            break 'outer Ok(());
                        }
                        if args.max_events.is_some_and(|max| seen >= max) {
                            break 'outer Ok(());
                        }
                    }
                }
                Ok(None) => {
                    eprintln!("gateway ended the stream; reconnecting");
                    continue 'outer;
                }
                Err(status) if retryable(&status) => {
                    let why = describe(&status);
                    reconnect
                        .pause(|ms| format!("stream interrupted: {why}; resuming in {ms} ms"))
                        .await;
                    continue 'outer;
                }
                Err(status) => break 'outer Err(status.into()),
            }
        }
    };
    let resume: Vec<String> = cursors
        .iter()
        .map(|(s, n)| format!("--from-seq {s}={n}"))
        .collect();
    eprintln!(
        "{seen} events in {:.1}s{}{}",
        started.elapsed().as_secs_f64(),
        if resume.is_empty() {
            ""
        } else {
            "; resume with "
        },
        resume.join(" ")
    );
    outcome
}

/// One alarm event as a line: JSON, or human.
fn alarm_event_line(site_id: &str, e: &telemetry::AlarmEvent, as_json: bool) -> String {
    if as_json {
        return json!({
            "site_id": site_id,
            "sequence": e.sequence,
            "recorded_at": format::ts_str(e.recorded_at.as_ref()),
            "kind": format::alarm_event_kind_name(e.kind),
            "alarm": e.alarm.as_ref().map(format::alarm_json),
        })
        .to_string();
    }
    let Some(a) = &e.alarm else {
        return format!(
            "{} {site_id:<16} #{:<5} {}",
            ts_short(e.recorded_at.as_ref()),
            e.sequence,
            format::alarm_event_kind_name(e.kind)
        );
    };
    let figures = if is_offline(a) {
        String::new()
    } else {
        format!(
            " peak {:.1}°C (limit {:.1}) {:.1}°C·min",
            a.peak_celsius, a.limit_celsius, a.degree_minutes
        )
    };
    format!(
        "{} {site_id:<16} #{:<5} {:<13} {} {} [{}] {} {}{figures} hold {}",
        ts_short(e.recorded_at.as_ref()),
        e.sequence,
        format::alarm_event_kind_name(e.kind),
        a.alarm_id,
        a.sensor_id,
        alarm_where(a),
        format::alarm_kind_name(a.kind),
        format::alarm_state_name(a.state),
        format::hold_status_name(a.hold_status),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_parse() {
        assert_eq!(
            parse_cursor("la-vientiane=42").unwrap(),
            ("la-vientiane".to_string(), 42)
        );
        assert!(parse_cursor("la-vientiane").is_err());
        assert!(parse_cursor("a=-1").is_err());
    }
}
