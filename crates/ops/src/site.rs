//! Commands that talk to one site's services directly, through the endpoints of the network
//! file: `hold`, `confirm`, `cancel`, `bookings` (booking), `ack`, `readings` (telemetry),
//! `ledger` (inventory).
//!
//! Each calls as the role that does that work (`--as` names another credential): `hold` as
//! the customer's booking client, `confirm` as the booking's own customer (the only roles
//! the booking service lets book and confirm), `ledger` as the site's warehouse system, the
//! rest as operations.

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use clap::Args;
use coldchain_command::say;
use coldchain_credentials::{self as credentials, OPERATIONS};
use coldchain_proto::booking::v1 as booking;
use coldchain_proto::booking::v1::booking_service_client::BookingServiceClient;
use coldchain_proto::common::v1::{Date, TemperatureClass};
use coldchain_proto::inventory::v1 as inventory;
use coldchain_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use coldchain_proto::telemetry::v1 as telemetry;
use coldchain_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use coldchain_runtime::client::with_retry;
use coldchain_runtime::config::parse_duration;
use coldchain_runtime::network::ServiceKind;
use serde_json::json;

use super::format::{self, Table, or_dash, thousands, ts_short};
use super::gateway::retryable;
use super::{CliError, RequestIdOpt, SiteOpts, client_options, connect_as, print_json};
use crate::call;

// ------------------------------------------------------------------ bookings

#[derive(Args)]
pub struct HoldArgs {
    #[command(flatten)]
    site: SiteOpts,
    #[command(flatten)]
    request_id: RequestIdOpt,
    /// The customer holding the space.
    #[arg(long, value_name = "ID")]
    customer: String,
    /// Any zone of this class with room on every day (the service picks one).
    #[arg(long, value_name = "CLASS", value_parser = format::parse_class,
          required_unless_present = "zone", conflicts_with = "zone")]
    class: Option<TemperatureClass>,
    /// This zone.
    #[arg(long, value_name = "ZONE")]
    zone: Option<String>,
    /// Pallet positions on each day.
    #[arg(long, value_name = "N")]
    pallets: i32,
    /// The first day, YYYY-MM-DD (site-local).
    #[arg(long, value_name = "DATE", value_parser = format::parse_date)]
    from: Date,
    /// The last day, inclusive, YYYY-MM-DD (site-local).
    #[arg(long, value_name = "DATE", value_parser = format::parse_date)]
    to: Date,
    /// How long the hold lasts unconfirmed, e.g. 15m [default: the service's, 15 minutes].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    ttl: Option<Duration>,
    /// The customer's own reference (purchase order, shipment number).
    #[arg(long, value_name = "TEXT")]
    reference: Option<String>,
    /// Call as this credential of the keyring [default: customer-<CUSTOMER>, the
    /// customer's booking client].
    #[arg(long = "as", value_name = "ID")]
    caller: Option<String>,
}

#[derive(Args)]
pub struct ConfirmArgs {
    #[command(flatten)]
    site: SiteOpts,
    #[command(flatten)]
    request_id: RequestIdOpt,
    /// The booking.
    booking_id: String,
    /// Call as this credential of the keyring [default: customer-<CUSTOMER>, the booking
    /// client of the booking's own customer].
    #[arg(long = "as", value_name = "ID")]
    caller: Option<String>,
}

#[derive(Args)]
pub struct CancelArgs {
    #[command(flatten)]
    site: SiteOpts,
    #[command(flatten)]
    request_id: RequestIdOpt,
    /// The booking.
    booking_id: String,
    /// Why it is cancelled.
    #[arg(long, value_name = "TEXT")]
    reason: String,
    /// Call as this credential of the keyring, e.g. the customer's booking client
    /// customer-<C> [default: operations].
    #[arg(long = "as", value_name = "ID")]
    caller: Option<String>,
}

#[derive(Args)]
pub struct BookingsArgs {
    #[command(flatten)]
    site: SiteOpts,
    /// Only this customer's bookings.
    #[arg(long, value_name = "ID")]
    customer: Option<String>,
    /// Only bookings in this zone.
    #[arg(long, value_name = "ZONE")]
    zone: Option<String>,
    /// Only bookings in this state (repeat for more): HELD, CONFIRMED, CHECKED_IN,
    /// COMPLETED, CANCELLED, EXPIRED, NO_SHOW.
    #[arg(long = "state", value_name = "STATE", value_parser = format::parse_booking_state)]
    states: Vec<booking::BookingState>,
    /// Only bookings occupying a day on or after this one, YYYY-MM-DD.
    #[arg(long, value_name = "DATE", value_parser = format::parse_date)]
    from: Option<Date>,
    /// Only bookings occupying a day on or before this one, YYYY-MM-DD.
    #[arg(long, value_name = "DATE", value_parser = format::parse_date)]
    to: Option<Date>,
    /// At most this many bookings.
    #[arg(long, value_name = "N", default_value_t = 100)]
    limit: usize,
    /// Call as this credential of the keyring; a booking client sees only its own
    /// customer's bookings [default: operations].
    #[arg(long = "as", value_name = "ID")]
    caller: Option<String>,
}

/// A client of the site's booking service, calling as the credential `id`.
fn booking_client(
    opts: &SiteOpts,
    id: &str,
) -> Result<BookingServiceClient<coldchain_runtime::client::Channel>, CliError> {
    let (_, endpoint) = opts.resolve(ServiceKind::Booking)?;
    Ok(BookingServiceClient::new(connect_as(&endpoint, id)?))
}

pub async fn hold(args: HoldArgs) -> Result<(), CliError> {
    // Only the customer's own booking client may hold space for it.
    let caller = args
        .caller
        .clone()
        .unwrap_or_else(|| credentials::customer(&args.customer));
    let client = booking_client(&args.site, &caller)?;
    let request_id = args.request_id.get();
    let space = match (&args.class, &args.zone) {
        (_, Some(zone)) => booking::hold_space_request::Space::ZoneId(zone.clone()),
        (Some(class), None) => booking::hold_space_request::Space::TemperatureClass(*class as i32),
        (None, None) => return Err(CliError::Usage("give --class or --zone".into())),
    };
    let request = booking::HoldSpaceRequest {
        request_id: request_id.clone(),
        customer_id: args.customer.clone(),
        space: Some(space),
        pallets: args.pallets,
        first_day: Some(args.from),
        last_day: Some(args.to),
        hold_ttl: args.ttl.map(format::proto_duration),
        customer_reference: args.reference.clone().unwrap_or_default(),
    };
    let booking = call!(client, hold_space, request)
        .map_err(|s| CliError::from(s).with_request_id(&request_id))?;
    print_booking(&booking, args.site.json);
    Ok(())
}

pub async fn confirm(args: ConfirmArgs) -> Result<(), CliError> {
    // Only the booking's own customer confirms it: without --as, ask (as operations) whose
    // booking it is, then call as that customer's booking client.
    let caller = match &args.caller {
        Some(id) => id.clone(),
        None => {
            let lookup = booking_client(&args.site, OPERATIONS)?;
            let request = booking::GetBookingRequest {
                booking_id: args.booking_id.clone(),
            };
            let booking = call!(lookup, get_booking, request)?;
            credentials::customer(&booking.customer_id)
        }
    };
    let client = booking_client(&args.site, &caller)?;
    let request_id = args.request_id.get();
    let request = booking::ConfirmBookingRequest {
        request_id: request_id.clone(),
        booking_id: args.booking_id.clone(),
    };
    let booking = call!(client, confirm_booking, request)
        .map_err(|s| CliError::from(s).with_request_id(&request_id))?;
    print_booking(&booking, args.site.json);
    Ok(())
}

pub async fn cancel(args: CancelArgs) -> Result<(), CliError> {
    let client = booking_client(&args.site, args.caller.as_deref().unwrap_or(OPERATIONS))?;
    let request_id = args.request_id.get();
    let request = booking::CancelBookingRequest {
        request_id: request_id.clone(),
        booking_id: args.booking_id.clone(),
        reason: args.reason.clone(),
    };
    let booking = call!(client, cancel_booking, request)
        .map_err(|s| CliError::from(s).with_request_id(&request_id))?;
    print_booking(&booking, args.site.json);
    Ok(())
}

pub async fn bookings(args: BookingsArgs) -> Result<(), CliError> {
    let client = booking_client(&args.site, args.caller.as_deref().unwrap_or(OPERATIONS))?;
    let mut bookings = Vec::new();
    let mut page_token = String::new();
    let mut more = false;
    loop {
        let request = booking::ListBookingsRequest {
            customer_id: args.customer.clone().unwrap_or_default(),
            zone_id: args.zone.clone().unwrap_or_default(),
            states: args.states.iter().map(|s| *s as i32).collect(),
            first_day: args.from,
            last_day: args.to,
            page_size: args.limit.clamp(1, 1000) as i32,
            page_token,
        };
        let page = call!(client, list_bookings, request)?;
        bookings.extend(page.bookings);
        if bookings.len() >= args.limit {
            more = bookings.len() > args.limit || !page.next_page_token.is_empty();
            bookings.truncate(args.limit);
            break;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    if args.site.json {
        print_json(&json!({
            "site_id": args.site.site,
            "bookings": bookings.iter().map(format::booking_json).collect::<Vec<_>>(),
            "truncated": more,
        }));
        return Ok(());
    }
    let mut table = Table::new(&[
        "BOOKING",
        "CUSTOMER",
        "ZONE",
        "CLASS",
        "PALLETS",
        "FIRST DAY",
        "LAST DAY",
        "STATE",
        "EXPIRES / DEADLINE",
        "REFERENCE",
    ]);
    for b in &bookings {
        let when = if b.state == booking::BookingState::Held as i32 {
            ts_short(b.expires_at.as_ref())
        } else if b.state == booking::BookingState::Confirmed as i32 {
            ts_short(b.check_in_deadline.as_ref())
        } else {
            "-".to_string()
        };
        table.row(vec![
            b.booking_id.clone(),
            b.customer_id.clone(),
            b.zone_id.clone(),
            format::class_name(b.temperature_class),
            b.pallets.to_string(),
            format::date_str(b.first_day.as_ref()).unwrap_or_default(),
            format::date_str(b.last_day.as_ref()).unwrap_or_default(),
            format::booking_state_name(b.state),
            when,
            or_dash(&b.customer_reference),
        ]);
    }
    if table.is_empty() {
        say!("no bookings at {}", args.site.site);
    } else {
        table.print();
    }
    if more {
        say!("(more than {}; use --limit)", args.limit);
    }
    Ok(())
}

/// Prints a booking as JSON or as a block.
pub fn print_booking(b: &booking::Booking, as_json: bool) {
    if as_json {
        print_json(&format::booking_json(b));
        return;
    }
    say!(
        "booking {}  {}  {} / {} ({})",
        b.booking_id,
        format::booking_state_name(b.state),
        b.site_id,
        b.zone_id,
        format::class_name(b.temperature_class)
    );
    let reference = if b.customer_reference.is_empty() {
        String::new()
    } else {
        format!(" (ref {})", b.customer_reference)
    };
    say!("  customer      {}{reference}", b.customer_id);
    say!(
        "  pallets       {} a day, {} .. {}",
        b.pallets,
        format::date_str(b.first_day.as_ref()).unwrap_or_default(),
        format::date_str(b.last_day.as_ref()).unwrap_or_default()
    );
    if b.pallets_arrived > 0 {
        say!("  arrived       {} pallets", b.pallets_arrived);
    }
    if b.state == booking::BookingState::Held as i32 {
        say!("  expires at    {}", ts_short(b.expires_at.as_ref()));
    }
    if b.check_in_deadline.is_some() {
        say!("  check in by   {}", ts_short(b.check_in_deadline.as_ref()));
    }
    if !b.cancel_reason.is_empty() {
        say!("  cancelled     {}", b.cancel_reason);
    }
}

// ------------------------------------------------------------------ alarms

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
    /// What was done or found.
    #[arg(long, value_name = "TEXT", default_value = "")]
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
    let alarm = call!(client, acknowledge_alarm, request)
        .map_err(|s| CliError::from(s).with_request_id(&request_id))?;
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
        alarm.acknowledged_by,
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

// ------------------------------------------------------------------ readings

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
        start_time: Some(format::timestamp(start)),
        end_time: Some(format::timestamp(end)),
        bucket: Some(format::proto_duration(bucket)),
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

// ------------------------------------------------------------------ ledger

#[derive(Args)]
pub struct LedgerArgs {
    #[command(flatten)]
    site: SiteOpts,
    /// The first sequence to read.
    #[arg(long, value_name = "N", default_value_t = 1)]
    from: u64,
    /// Keep following live entries (JSON lines with --json) until interrupted.
    #[arg(long)]
    follow: bool,
    /// Stop after this many entries.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// Follow: stop after this long, e.g. 30s or 5m.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    for_: Option<Duration>,
    /// Call as this credential of the keyring, e.g. operations [default: <SITE>-warehouse,
    /// the site's warehouse system].
    #[arg(long = "as", value_name = "ID")]
    caller: Option<String>,
}

/// How long a non-following read waits for the next message before it counts as caught up.
const LEDGER_IDLE: Duration = Duration::from_secs(2);

pub async fn ledger(args: LedgerArgs) -> Result<(), CliError> {
    let (site, endpoint) = args.site.resolve(ServiceKind::Inventory)?;
    let caller = args
        .caller
        .clone()
        .unwrap_or_else(|| credentials::warehouse(&site.id));
    let client = InventoryServiceClient::new(connect_as(&endpoint, &caller)?);
    let started = Instant::now();
    let deadline = args.for_.map(|d| started + d);
    let mut next = args.from.max(1);
    let mut head = 0u64;
    let mut entries: Vec<inventory::LedgerEntry> = Vec::new();
    let mut seen = 0u64;
    let mut caught_up_reported = false;
    let mut backoff = Duration::from_millis(200);
    let json = args.site.json;
    let follow = args.follow;
    if follow {
        eprintln!("following the ledger of {} from sequence {next}", site.id);
    }
    if follow && !json && !super::emit(&ledger_header()) {
        return Ok(());
    }
    let result: Result<(), CliError> = 'outer: loop {
        let options = client_options();
        let opened = with_retry(&options, || {
            let mut c = client.clone();
            async move {
                c.watch_ledger(inventory::WatchLedgerRequest {
                    from_sequence: next,
                })
                .await
            }
        });
        let opened = match deadline {
            Some(d) => match tokio::time::timeout_at(d.into(), opened).await {
                Ok(r) => r,
                Err(_) => break Ok(()),
            },
            None => opened.await,
        };
        let mut stream = match opened {
            Ok(r) => r.into_inner(),
            Err(status) if follow && retryable(&status) => {
                eprintln!(
                    "{}: {}; reconnecting in {} ms",
                    format::code_name(status.code()),
                    status.message(),
                    backoff.as_millis()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
            Err(status) => break Err(status.into()),
        };
        loop {
            let wait = if follow {
                deadline.map(|d| d.saturating_duration_since(Instant::now()))
            } else {
                Some(LEDGER_IDLE)
            };
            let message = match wait {
                Some(w) => match tokio::time::timeout(w, stream.message()).await {
                    Ok(m) => m,
                    Err(_) => break 'outer Ok(()),
                },
                None => stream.message().await,
            };
            match message {
                Ok(Some(message)) => {
                    backoff = Duration::from_millis(200);
                    head = head.max(message.head_sequence);
                    for entry in message.entries {
                        if entry.sequence < next {
                            continue;
                        }
                        next = entry.sequence + 1;
                        seen += 1;
                        if follow {
                            let line = if json {
                                format::ledger_entry_json(&entry).to_string()
                            } else {
                                ledger_line(&entry)
                            };
                            if !super::emit(&line) {
                                break 'outer Ok(());
                            }
                        } else {
                            entries.push(entry);
                        }
                        if args.limit.is_some_and(|l| seen >= l) {
                            break 'outer Ok(());
                        }
                    }
                    if next > head {
                        if !follow {
                            break 'outer Ok(());
                        }
                        if !caught_up_reported {
                            caught_up_reported = true;
                            eprintln!(
                                "caught up at sequence {head} ({seen} entries); following live entries"
                            );
                        }
                    }
                }
                Ok(None) => {
                    if !follow {
                        break 'outer Ok(());
                    }
                    continue 'outer;
                }
                Err(status) if follow && retryable(&status) => {
                    eprintln!(
                        "stream interrupted: {}: {}; resuming from {next} in {} ms",
                        format::code_name(status.code()),
                        status.message(),
                        backoff.as_millis()
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue 'outer;
                }
                Err(status) => break 'outer Err(status.into()),
            }
        }
    };
    if follow {
        eprintln!(
            "{seen} entries in {:.1}s; resume with --from {next}",
            started.elapsed().as_secs_f64()
        );
        return result;
    }
    result?;
    if json {
        print_json(&json!({
            "site_id": site.id,
            "from_sequence": args.from.max(1),
            "head_sequence": head,
            "next_sequence": next,
            "entries": entries.iter().map(format::ledger_entry_json).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    let mut table = Table::new(&[
        "SEQ", "RECORDED", "KIND", "SKU", "LOT", "ZONE", "DELTA", "BALANCE", "UNIT", "DETAIL",
    ]);
    for e in &entries {
        table.row(ledger_cells(e));
    }
    table.print();
    say!(
        "{} entries of {} (head {head}); next --from {next}",
        entries.len(),
        site.id
    );
    Ok(())
}

fn ledger_header() -> String {
    format!(
        "{:>7}  {:<20}  {:<14}  {:<24}  {:<34}  {:<10}  {:>9}  {:>10}  {:<6}  DETAIL",
        "SEQ", "RECORDED", "KIND", "SKU", "LOT", "ZONE", "DELTA", "BALANCE", "UNIT"
    )
}

/// The cells of one ledger entry: sequence, time, kind, sku, lot, zone, delta, balance,
/// unit, detail.
fn ledger_cells(e: &inventory::LedgerEntry) -> Vec<String> {
    let mut detail = Vec::new();
    if !e.transfer_id.is_empty() {
        detail.push(format!("transfer {} ({})", e.transfer_id, e.other_site_id));
    }
    if !e.booking_id.is_empty() {
        detail.push(format!("booking {}", e.booking_id));
    }
    if !e.order_id.is_empty() {
        detail.push(format!("order {}", e.order_id));
    }
    if !e.hold_id.is_empty() {
        detail.push(format!("hold {}", e.hold_id));
    }
    if let Some(r) = &e.reference {
        detail.push(format!(
            "{} {}",
            format::reference_kind_name(r.kind).to_ascii_lowercase(),
            r.id
        ));
    }
    if !e.reason.is_empty() {
        detail.push(e.reason.clone());
    }
    if e.allocated_delta != 0 {
        detail.push(format!("allocated {:+}", e.allocated_delta));
    }
    let signed = |n: i64| {
        if n > 0 {
            format!("+{}", thousands(n))
        } else {
            thousands(n)
        }
    };
    vec![
        e.sequence.to_string(),
        ts_short(e.recorded_at.as_ref()),
        format::ledger_kind_name(e.kind),
        or_dash(&e.sku),
        e.lot
            .as_ref()
            .map(|l| or_dash(&l.lot_id))
            .unwrap_or_else(|| "-".into()),
        or_dash(&e.zone_id),
        signed(e.delta),
        thousands(e.balance_after),
        or_dash(&e.unit),
        detail.join("; "),
    ]
}

/// One ledger entry as a fixed-width line (for --follow, where widths cannot be measured).
pub fn ledger_line(e: &inventory::LedgerEntry) -> String {
    let c = ledger_cells(e);
    format!(
        "{:>7}  {:<20}  {:<14}  {:<24}  {:<34}  {:<10}  {:>9}  {:>10}  {:<6}  {}",
        c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9]
    )
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
