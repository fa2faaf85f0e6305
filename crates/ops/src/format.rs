//! Output helpers: enum names, dates and instants, tables, the JSON shapes of
//! the contracts' messages (stable: enum names without their prefix, dates `YYYY-MM-DD`,
//! instants RFC 3339 UTC, durations in milliseconds), and the terminal chart of `readings`.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use coldchain_proto::booking::v1 as booking;
use coldchain_proto::common::v1 as common;
use coldchain_proto::inventory::v1 as inventory;
use coldchain_proto::network::v1 as network;
use coldchain_proto::telemetry::v1 as telemetry;
use coldchain_runtime::proto_time;
use serde_json::{Value, json};

macro_rules! enum_names {
    ($(($name:ident, $parse:ident, $ty:ty, $prefix:literal)),* $(,)?) => {$(
        /// The value's name without its prefix (`UNKNOWN(n)` for a value this build does
        /// not know).
        #[allow(dead_code)]
        pub fn $name(value: i32) -> String {
            match <$ty>::try_from(value) {
                Ok(v) => v.as_str_name().trim_start_matches($prefix).to_string(),
                Err(_) => format!("UNKNOWN({value})"),
            }
        }

        /// Parses a name with or without its prefix, in any letter case; `_UNSPECIFIED`
        /// is refused.
        #[allow(dead_code)]
        pub fn $parse(text: &str) -> Result<$ty, String> {
            let upper = text.trim().to_ascii_uppercase().replace('-', "_");
            let full = if upper.starts_with($prefix) { upper.clone() } else { format!("{}{upper}", $prefix) };
            match <$ty>::from_str_name(&full) {
                Some(v) if v as i32 != 0 => Ok(v),
                _ => {
                    let known: Vec<String> = (1..64)
                        .filter_map(|i| <$ty>::try_from(i).ok())
                        .map(|v| v.as_str_name().trim_start_matches($prefix).to_string())
                        .collect();
                    Err(format!("unknown value {text:?}, expected one of {}", known.join(", ")))
                }
            }
        }
    )*};
}

enum_names!(
    (
        class_name,
        parse_class,
        common::TemperatureClass,
        "TEMPERATURE_CLASS_"
    ),
    (
        reference_kind_name,
        parse_reference_kind,
        common::ReferenceKind,
        "REFERENCE_KIND_"
    ),
    (
        ledger_kind_name,
        parse_ledger_kind,
        inventory::LedgerEntryKind,
        "LEDGER_ENTRY_KIND_"
    ),
    (
        hold_state_name,
        parse_hold_state,
        inventory::HoldState,
        "HOLD_STATE_"
    ),
    (
        booking_state_name,
        parse_booking_state,
        booking::BookingState,
        "BOOKING_STATE_"
    ),
    (
        transfer_state_name,
        parse_transfer_state,
        network::TransferState,
        "TRANSFER_STATE_"
    ),
    (
        recall_state_name,
        parse_recall_state,
        network::RecallState,
        "RECALL_STATE_"
    ),
    (
        recall_hold_state_name,
        parse_recall_hold_state,
        network::RecallHoldState,
        "RECALL_HOLD_STATE_"
    ),
    (
        service_kind_name,
        parse_service_kind,
        network::ServiceKind,
        "SERVICE_KIND_"
    ),
    (
        endpoint_health_name,
        parse_endpoint_health,
        network::EndpointHealth,
        "ENDPOINT_HEALTH_"
    ),
    (
        alarm_kind_name,
        parse_alarm_kind,
        telemetry::AlarmKind,
        "ALARM_KIND_"
    ),
    (
        alarm_state_name,
        parse_alarm_state,
        telemetry::AlarmState,
        "ALARM_STATE_"
    ),
    (
        hold_status_name,
        parse_hold_status,
        telemetry::HoldStatus,
        "HOLD_STATUS_"
    ),
    (
        alarm_event_kind_name,
        parse_alarm_event_kind,
        telemetry::AlarmEventKind,
        "ALARM_EVENT_KIND_"
    ),
    (
        sensor_status_name,
        parse_sensor_status,
        telemetry::SensorStatus,
        "SENSOR_STATUS_"
    ),
    (
        rejection_reason_name,
        parse_rejection_reason,
        telemetry::RejectionReason,
        "REJECTION_REASON_"
    ),
);

/// Parses `YYYY-MM-DD`.
pub fn parse_day(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| format!("expected a date YYYY-MM-DD, got {text:?}"))
}

/// Parses `YYYY-MM-DD` into a contract date.
pub fn parse_date(text: &str) -> Result<common::Date, String> {
    parse_day(text).map(proto_time::date)
}

/// `YYYY-MM-DD` (as sent when not a real date); `None` when unset or a part is negative.
pub fn date_str(date: Option<&common::Date>) -> Option<String> {
    let d = date?;
    if d.month < 0 || d.day < 0 {
        return None;
    }
    Some(match proto_time::naive_date(d) {
        Ok(day) => day.format("%Y-%m-%d").to_string(),
        Err(_) => format!("{:04}-{:02}-{:02}", d.year, d.month, d.day),
    })
}

/// A contract instant as a chrono one (the services keep milliseconds).
pub fn instant(ts: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(proto_time::millis(ts?)?)
}

/// RFC 3339 UTC, e.g. `2026-03-01T10:00:00Z` (milliseconds when not whole seconds).
pub fn ts_str(ts: Option<&prost_types::Timestamp>) -> Option<String> {
    instant(ts).map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// For tables: `2026-03-01 10:00:00Z`, or `-`.
pub fn ts_short(ts: Option<&prost_types::Timestamp>) -> String {
    instant(ts)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| "-".to_string())
}

/// For tables: `4m30s`, `850ms`, or `-`.
pub fn duration_short(d: Option<&prost_types::Duration>) -> String {
    match d.and_then(proto_time::duration_millis) {
        None => "-".to_string(),
        Some(ms) if ms < 1000 => format!("{ms}ms"),
        Some(ms) => {
            let secs = ms / 1000;
            let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
            match (h, m) {
                (0, 0) => format!("{s}s"),
                (0, _) => format!("{m}m{s:02}s"),
                _ => format!("{h}h{m:02}m"),
            }
        }
    }
}

/// `-` for an empty string.
pub fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_string()
    } else {
        s.to_string()
    }
}

/// A thousands-separated integer, e.g. `12,000`.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A table with a header row; numeric cells are right-aligned.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are empty).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The last row added.
    pub fn last_row_mut(&mut self) -> Option<&mut Vec<String>> {
        self.rows.last_mut()
    }

    /// True without rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rendered lines (no trailing spaces).
    pub fn lines(&self) -> Vec<String> {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        let mut numeric = vec![true; columns];
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
                if !is_numeric(cell) {
                    numeric[i] = false;
                }
            }
        }
        let render = |cells: &[String]| {
            let mut line = String::new();
            for i in 0..columns {
                let cell = cells.get(i).map(String::as_str).unwrap_or("");
                let pad = widths[i].saturating_sub(cell.chars().count());
                if i > 0 {
                    line.push_str("  ");
                }
                if numeric[i] {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                }
            }
            line.trim_end().to_string()
        };
        let mut out = vec![render(&self.headers)];
        out.extend(self.rows.iter().map(|r| render(r)));
        out
    }

    /// Prints the table on stdout.
    pub fn print(&self) {
        for line in self.lines() {
            coldchain_command::say!("{line}");
        }
    }
}

fn is_numeric(cell: &str) -> bool {
    let t = cell.trim_end_matches(['%', 'C', '°', ' ']);
    if t == "-" {
        return true;
    }
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    !digits.is_empty()
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ',' | '.'))
        && digits.chars().any(|c| c.is_ascii_digit())
}

// ------------------------------------------------------------------ JSON shapes

/// `{lot_id, expiry, production, origin}` or null.
pub fn lot_json(lot: Option<&inventory::LotInfo>) -> Value {
    match lot {
        None => Value::Null,
        Some(lot) => json!({
            "lot_id": lot.lot_id,
            "expiry": date_str(lot.expiry.as_ref()),
            "production": date_str(lot.production.as_ref()),
            "origin": lot.origin,
        }),
    }
}

/// `{kind, id}` or null.
pub fn reference_json(reference: Option<&common::Reference>) -> Value {
    match reference {
        None => Value::Null,
        Some(r) => json!({"kind": reference_kind_name(r.kind), "id": r.id}),
    }
}

/// A site error of a fan-out.
pub fn site_error_json(e: &network::SiteError) -> Value {
    json!({"site_id": e.site_id, "code": e.code, "message": e.message})
}

/// A ledger entry.
pub fn ledger_entry_json(e: &inventory::LedgerEntry) -> Value {
    json!({
        "sequence": e.sequence,
        "recorded_at": ts_str(e.recorded_at.as_ref()),
        "request_id": e.request_id,
        "kind": ledger_kind_name(e.kind),
        "sku": e.sku,
        "lot": lot_json(e.lot.as_ref()),
        "zone_id": e.zone_id,
        "unit": e.unit,
        "delta": e.delta,
        "balance_after": e.balance_after,
        "allocated_delta": e.allocated_delta,
        "version": e.version,
        "reason": e.reason,
        "reference": reference_json(e.reference.as_ref()),
        "other_site_id": e.other_site_id,
        "transfer_id": e.transfer_id,
        "booking_id": e.booking_id,
        "order_id": e.order_id,
        "allocation_id": e.allocation_id,
        "hold_id": e.hold_id,
        "recorded_by": author_json(e.recorded_by.as_ref()),
        "transformation": e.transformation.as_ref().map(|t| json!({
            "transformation_id": t.transformation_id,
            "work_order": t.work_order,
            "input_mass_g": t.input_mass_g,
            "output_mass_g": t.output_mass_g,
            "waste_mass_g": t.waste_mass_g,
            "write_off": t.write_off,
        })),
        "relocation": e.relocation.as_ref().map(|r| json!({
            "from_zone_id": r.from_zone_id,
            "to_zone_id": r.to_zone_id,
            "from_class": class_name(r.from_class),
            "to_class": class_name(r.to_class),
        })),
    })
}

/// A booking.
pub fn booking_json(b: &booking::Booking) -> Value {
    json!({
        "booking_id": b.booking_id,
        "site_id": b.site_id,
        "customer_id": b.customer_id,
        "customer_reference": b.customer_reference,
        "zone_id": b.zone_id,
        "temperature_class": class_name(b.temperature_class),
        "pallets": b.pallets,
        "pallets_arrived": b.pallets_arrived,
        "first_day": date_str(b.first_day.as_ref()),
        "last_day": date_str(b.last_day.as_ref()),
        "state": booking_state_name(b.state),
        "expires_at": ts_str(b.expires_at.as_ref()),
        "check_in_deadline": ts_str(b.check_in_deadline.as_ref()),
        "created_at": ts_str(b.created_at.as_ref()),
        "updated_at": ts_str(b.updated_at.as_ref()),
        "cancel_reason": b.cancel_reason,
        "changes": b.changes.iter().map(|c| json!({
            "state": booking_state_name(c.state),
            "changed_at": ts_str(c.changed_at.as_ref()),
            "changed_by": author_json(c.changed_by.as_ref()),
        })).collect::<Vec<_>>(),
    })
}

/// Who made a change, as the server recorded it, or null.
pub fn author_json(a: Option<&common::Author>) -> Value {
    match a {
        None => Value::Null,
        Some(a) => json!({ "principal": a.principal, "actor": a.actor }),
    }
}

/// For tables: `principal`, `principal (actor)`, or `-`.
pub fn author_short(a: Option<&common::Author>) -> String {
    match a {
        None => "-".to_string(),
        Some(a) if a.actor.is_empty() => a.principal.clone(),
        Some(a) => format!("{} ({})", a.principal, a.actor),
    }
}

/// A reefer binding or null.
pub fn reefer_json(r: Option<&telemetry::ReeferBinding>) -> Value {
    match r {
        None => Value::Null,
        Some(r) => json!({
            "container_id": r.container_id,
            "train_or_route": r.train_or_route,
            "transfer_id": r.transfer_id,
            "temperature_class": class_name(r.temperature_class),
        }),
    }
}

/// An alarm.
pub fn alarm_json(a: &telemetry::Alarm) -> Value {
    json!({
        "alarm_id": a.alarm_id,
        "site_id": a.site_id,
        "sensor_id": a.sensor_id,
        "zone_id": a.zone_id,
        "reefer": reefer_json(a.reefer.as_ref()),
        "kind": alarm_kind_name(a.kind),
        "state": alarm_state_name(a.state),
        "started_at": ts_str(a.started_at.as_ref()),
        "last_seen_at": ts_str(a.last_seen_at.as_ref()),
        "cleared_at": ts_str(a.cleared_at.as_ref()),
        "limit_celsius": a.limit_celsius,
        "peak_celsius": a.peak_celsius,
        "peak_deviation_celsius": a.peak_deviation_celsius,
        "duration_ms": a.duration.as_ref().and_then(proto_time::duration_millis),
        "degree_minutes": a.degree_minutes,
        "acknowledged_by": a.acknowledged_by,
        "acknowledged_at": ts_str(a.acknowledged_at.as_ref()),
        "acknowledged_author": author_json(a.acknowledged_author.as_ref()),
        "ack_note": a.ack_note,
        "hold_status": hold_status_name(a.hold_status),
        "hold_ids": a.hold_ids,
        "hold_last_error": a.hold_last_error,
    })
}

/// Where part of a lot is (TraceLot, RecallLot).
pub fn lot_position_json(p: &network::LotPosition) -> Value {
    json!({
        "site_id": p.site_id,
        "zone_id": p.zone_id,
        "on_hand": p.on_hand,
        "allocated": p.allocated,
        "held": p.held,
        "unit": p.unit,
        "sku": p.sku,
        "lot_id": p.lot_id,
    })
}

/// One input and one output of a transformation in a lot's genealogy.
pub fn lot_link_json(l: &network::LotLink) -> Value {
    json!({
        "site_id": l.site_id,
        "transformation_id": l.transformation_id,
        "at": ts_str(l.at.as_ref()),
        "input_sku": l.input_sku,
        "input_lot_id": l.input_lot_id,
        "input_quantity": l.input_quantity,
        "input_unit": l.input_unit,
        "output_sku": l.output_sku,
        "output_lot_id": l.output_lot_id,
        "output_quantity": l.output_quantity,
        "output_unit": l.output_unit,
        "upstream": l.upstream,
        "depth": l.depth,
    })
}

/// A transfer's step as a lot's trace or recall shows it.
pub fn transfer_step_json(t: &network::TransferStep) -> Value {
    json!({
        "transfer_id": t.transfer_id,
        "state": transfer_state_name(t.state),
        "train_or_route": t.train_or_route,
        "reefer_container_id": t.reefer_container_id,
        "source_site_id": t.source_site_id,
        "destination_site_id": t.destination_site_id,
        "quantity": t.quantity,
        "sku": t.sku,
        "lot_id": t.lot_id,
    })
}

/// A transfer line.
pub fn transfer_line_json(l: &network::TransferLine) -> Value {
    json!({
        "sku": l.sku,
        "lot_id": l.lot_id,
        "source_zone_id": l.source_zone_id,
        "destination_zone_id": l.destination_zone_id,
        "quantity": l.quantity,
        "unit": l.unit,
        "lot": lot_json(l.lot.as_ref()),
    })
}

/// A transfer.
pub fn transfer_json(t: &network::Transfer) -> Value {
    json!({
        "transfer_id": t.transfer_id,
        "source_site_id": t.source_site_id,
        "destination_site_id": t.destination_site_id,
        "lines": t.lines.iter().map(transfer_line_json).collect::<Vec<_>>(),
        "state": transfer_state_name(t.state),
        "reefer_sensor_id": t.reefer_sensor_id,
        "reefer_container_id": t.reefer_container_id,
        "reefer_temperature_class": class_name(t.reefer_temperature_class),
        "train_or_route": t.train_or_route,
        "created_at": ts_str(t.created_at.as_ref()),
        "shipped_at": ts_str(t.shipped_at.as_ref()),
        "received_at": ts_str(t.received_at.as_ref()),
        "completed_at": ts_str(t.completed_at.as_ref()),
        "updated_at": ts_str(t.updated_at.as_ref()),
        "last_error": t.last_error,
        "started_by": author_json(t.started_by.as_ref()),
        "arrival_reported_by": author_json(t.arrival_reported_by.as_ref()),
    })
}

// ------------------------------------------------------------------ chart

const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A sparkline of `values` scaled between `low` and `high`.
pub fn sparkline(values: &[f64], low: f64, high: f64) -> String {
    let span = high - low;
    values
        .iter()
        .map(|v| {
            if !v.is_finite() || span <= 0.0 || !span.is_finite() {
                SPARKS[3]
            } else {
                let level = ((v - low) / span * 7.0).round().clamp(0.0, 7.0) as usize;
                SPARKS[level]
            }
        })
        .collect()
}

/// One row of the range chart: `min..max` as `[---]`, the mean as `*`, on `width`
/// columns spanning `low..high`; `limit` (an alarm limit) as `|` when inside the span.
pub fn range_bar(min: f64, mean: f64, max: f64, low: f64, high: f64, width: usize) -> String {
    let width = width.max(3);
    let span = high - low;
    let col = |v: f64| -> usize {
        if span <= 0.0 || !span.is_finite() || !v.is_finite() {
            width / 2
        } else {
            (((v - low) / span) * (width - 1) as f64)
                .round()
                .clamp(0.0, (width - 1) as f64) as usize
        }
    };
    let (a, m, b) = (col(min), col(mean), col(max));
    let mut cells = vec![' '; width];
    for cell in cells.iter_mut().take(b + 1).skip(a) {
        *cell = '-';
    }
    cells[a] = '[';
    cells[b] = ']';
    cells[m] = '*';
    cells.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_names_round_trip_without_prefix() {
        assert_eq!(class_name(2), "CHILLED");
        assert_eq!(
            parse_class("chilled").unwrap(),
            common::TemperatureClass::Chilled
        );
        assert_eq!(
            parse_class("TEMPERATURE_CLASS_FROZEN").unwrap(),
            common::TemperatureClass::Frozen
        );
        assert!(parse_class("UNSPECIFIED").is_err());
        let err = parse_class("warm").unwrap_err();
        assert!(
            err.contains("FROZEN, CHILLED, PHARMA, COOL, AMBIENT"),
            "{err}"
        );
        assert_eq!(
            parse_transfer_state("in_transit").unwrap(),
            network::TransferState::InTransit
        );
        assert_eq!(class_name(99), "UNKNOWN(99)");
    }

    #[test]
    fn authors_show_the_principal_and_the_actor() {
        let author = |principal: &str, actor: &str| common::Author {
            principal: principal.into(),
            actor: actor.into(),
        };
        assert_eq!(author_short(None), "-");
        assert_eq!(author_short(Some(&author("wh-1", ""))), "wh-1");
        assert_eq!(author_short(Some(&author("wh-1", "Anna"))), "wh-1 (Anna)");
        let booking = booking::Booking {
            changes: vec![booking::BookingChange {
                state: booking::BookingState::Held as i32,
                changed_at: None,
                changed_by: Some(author("unknown", "")),
            }],
            ..Default::default()
        };
        let json = booking_json(&booking);
        assert_eq!(json["changes"][0]["state"], "HELD");
        assert_eq!(json["changes"][0]["changed_by"]["principal"], "unknown");
        assert_eq!(author_json(None), Value::Null);
        assert_eq!(
            author_json(Some(&author("unknown", ""))),
            json!({"principal": "unknown", "actor": ""})
        );
    }

    #[test]
    fn dates_and_numbers_format() {
        assert_eq!(
            parse_date("2026-03-01").unwrap(),
            common::Date {
                year: 2026,
                month: 3,
                day: 1
            }
        );
        assert!(parse_date("2026-02-30").is_err());
        assert!(parse_date("01/03/2026").is_err());
        assert_eq!(
            date_str(Some(&proto_time::date(parse_day("2026-12-31").unwrap()))).unwrap(),
            "2026-12-31"
        );
        assert_eq!(thousands(12000), "12,000");
        assert_eq!(thousands(-1234567), "-1,234,567");
        assert_eq!(thousands(999), "999");
    }

    #[test]
    fn table_aligns_numbers_right() {
        let mut t = Table::new(&["SITE", "QTY"]);
        t.row(vec!["a".into(), "5".into()]);
        t.row(vec!["long-site".into(), "12,000".into()]);
        t.row(vec!["2026-12-01".into(), "-3.5".into()]);
        let lines = t.lines();
        assert_eq!(
            lines,
            [
                "SITE           QTY",
                "a                5",
                "long-site   12,000",
                "2026-12-01    -3.5",
            ],
            "dates are text (left), signed numbers are numbers (right)"
        );
    }

    #[test]
    fn chart_pieces() {
        assert_eq!(sparkline(&[0.0, 7.0, 3.5], 0.0, 7.0), "▁█▅");
        assert_eq!(sparkline(&[1.0, 1.0], 1.0, 1.0), "▄▄");
        let bar = range_bar(2.0, 3.0, 4.0, 0.0, 10.0, 11);
        assert_eq!(bar, "  [*]      ");
        assert_eq!(range_bar(0.0, 5.0, 10.0, 0.0, 10.0, 11), "[----*----]");
    }
}
