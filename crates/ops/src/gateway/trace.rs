//! `trace SKU LOT`: a lot's life across the network (TraceLot), as a timeline, where it is
//! now, what is in transit and what each stay's sensors saw, what it was made from and what
//! was made from it (its genealogy through processing) with where those lots are and their
//! issues; `--format json` for one JSON
//! document, `--format csv` for one row per event (for a spreadsheet), `--format epcis` for
//! a GS1 EPCIS 2.0 document (for a regulator or a trading partner).

use clap::{Args, ValueEnum};
use coldchain_command::say;
use coldchain_proto::inventory::v1 as inventory;
use coldchain_proto::network::v1 as network;
use coldchain_proto::network::v1::trace_event::Event;
use coldchain_proto::telemetry::v1 as telemetry;
use coldchain_runtime::proto_time;
use serde_json::{Value, json};

use super::{CallerOpt, client};
use crate::format::{self, Table, thousands};
use crate::{CliError, GatewayOpts, call, print_json};

/// How `trace` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TraceFormat {
    /// Tables for a terminal.
    Table,
    /// One JSON document.
    Json,
    /// One CSV row per event, with a header.
    Csv,
    /// A GS1 EPCIS 2.0 JSON-LD document (the gateway's ExportTraceEpcis).
    Epcis,
}

#[derive(Args)]
pub struct TraceArgs {
    #[command(flatten)]
    gateway: GatewayOpts,
    #[command(flatten)]
    caller: CallerOpt,
    /// The sku.
    sku: String,
    /// The lot.
    lot: String,
    /// Only this site (repeat for more).
    #[arg(long = "site", value_name = "ID")]
    sites: Vec<String>,
    /// The output (`--json` is the same as `--format json`).
    #[arg(long, value_enum, default_value_t = TraceFormat::Table)]
    format: TraceFormat,
}

pub async fn trace(args: TraceArgs) -> Result<(), CliError> {
    let client = client(&args.gateway, &args.caller)?;
    let request = network::TraceLotRequest {
        sku: args.sku.clone(),
        lot_id: args.lot.clone(),
        site_ids: args.sites.clone(),
    };
    let format = if args.gateway.json {
        TraceFormat::Json
    } else {
        args.format
    };
    if format == TraceFormat::Epcis {
        let document = call!(client, export_trace_epcis, request)?;
        warn_partial(&document.errors);
        let value: Value = serde_json::from_str(&document.json_ld).map_err(|e| {
            CliError::Failed(format!("the gateway's EPCIS document is not JSON: {e}"))
        })?;
        print_json(&value);
        return Ok(());
    }
    let answer = call!(client, trace_lot, request)?;
    match format {
        TraceFormat::Json => print_json(&trace_json(&answer)),
        TraceFormat::Csv => {
            warn_partial(&answer.errors);
            print!("{}", trace_csv(&answer));
        }
        TraceFormat::Table | TraceFormat::Epcis => print_tables(&answer),
    }
    Ok(())
}

/// Says on stderr which sites left their part out.
fn warn_partial(errors: &[network::SiteError]) {
    for error in errors {
        eprintln!(
            "warning: {} did not answer its part ({}: {}); the trace is partial",
            error.site_id, error.code, error.message
        );
    }
}

fn print_tables(answer: &network::TraceLotResponse) {
    warn_partial(&answer.errors);
    say!("lot {} of {}", answer.lot_id, answer.sku);
    let mut events = Table::new(&["TIME (UTC)", "SITE", "EVENT", "DETAIL", "BY"]);
    for event in &answer.events {
        let row = event_row(event);
        events.row(vec![
            format::ts_short(event.at.as_ref()),
            event.site_id.clone(),
            row.event,
            row.detail,
            row.by,
        ]);
    }
    if events.is_empty() {
        say!("(no site that answered knows this lot)");
        return;
    }
    events.print();
    if answer.truncated {
        say!("(a site holds more entries of this lot than one trace reads: its oldest are shown)");
    }

    say!("\nwhere it is now");
    let mut now = Table::new(&["SITE", "ZONE", "ON HAND", "ALLOCATED", "UNIT", "HELD"]);
    for p in &answer.positions {
        now.row(vec![
            p.site_id.clone(),
            p.zone_id.clone(),
            thousands(p.on_hand),
            thousands(p.allocated),
            p.unit.clone(),
            if p.held { "held".into() } else { String::new() },
        ]);
    }
    for t in &answer.in_transit {
        now.row(vec![
            format!("{} → {}", t.source_site_id, t.destination_site_id),
            format!("in transit ({})", t.transfer_id),
            thousands(t.quantity),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }
    if now.is_empty() {
        say!("(nothing left on hand)");
    } else {
        now.print();
    }

    say!("\nstays and what the sensors saw (°C)");
    let mut stays = Table::new(&[
        "SITE", "PLACE", "FROM", "TO", "SENSOR", "READINGS", "MIN", "MAX", "MEAN", "MKT", "OUTSIDE",
    ]);
    for stay in &answer.stays {
        let place = if stay.transfer_id.is_empty() {
            stay.zone_id.clone()
        } else {
            format!("reefer of {}", stay.transfer_id)
        };
        let cells = |sensor: String, e: Option<&telemetry::Exposure>| {
            let figure = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
            vec![
                stay.site_id.clone(),
                place.clone(),
                format::ts_short(stay.start_time.as_ref()),
                stay.end_time
                    .as_ref()
                    .map_or_else(|| "(still there)".into(), |t| format::ts_short(Some(t))),
                sensor,
                e.map_or_else(|| "-".into(), |e| thousands(e.reading_count)),
                figure(e.and_then(|e| e.min_celsius)),
                figure(e.and_then(|e| e.max_celsius)),
                figure(e.and_then(|e| e.mean_celsius)),
                figure(e.and_then(|e| e.mkt_celsius)),
                e.map_or_else(
                    || "-".into(),
                    |e| format::duration_short(e.time_outside_limits.as_ref()),
                ),
            ]
        };
        if stay.exposures.is_empty() {
            stays.row(cells("(no sensor: unknown)".into(), None));
        }
        for e in &stay.exposures {
            stays.row(cells(e.sensor_id.clone(), Some(e)));
        }
    }
    stays.print();
    print_genealogy(answer);
}

/// The transformations of the genealogy: a row per input and output of each.
pub fn links_table<'l>(links: impl Iterator<Item = &'l network::LotLink>) -> Table {
    let mut table = Table::new(&[
        "SITE",
        "TRANSFORMATION",
        "AT (UTC)",
        "FROM LOT",
        "QUANTITY",
        "INTO LOT",
        "QUANTITY",
        "STEPS",
    ]);
    for l in links {
        table.row(vec![
            l.site_id.clone(),
            l.transformation_id.clone(),
            format::ts_short(l.at.as_ref()),
            format!("{} {}", l.input_sku, l.input_lot_id),
            format!("{} {}", thousands(l.input_quantity), l.input_unit),
            format!("{} {}", l.output_sku, l.output_lot_id),
            format!("{} {}", thousands(l.output_quantity), l.output_unit),
            l.depth.to_string(),
        ]);
    }
    table
}

/// "made from" (upstream), "made into" (downstream), then where each linked lot is now,
/// what travels, what went out and which sites did not answer for it.
fn print_genealogy(answer: &network::TraceLotResponse) {
    if answer.genealogy.is_empty() {
        return;
    }
    for (upstream, title) in [(true, "made from"), (false, "made into")] {
        let mut links = answer
            .genealogy
            .iter()
            .filter(|l| l.upstream == upstream)
            .peekable();
        if links.peek().is_some() {
            say!("\n{title}");
            links_table(links).print();
        }
    }
    if answer.genealogy_truncated {
        say!("(more lots are linked than one trace follows: the nearest are shown)");
    }
    for lot in &answer.related {
        say!("\nlot {} of {}", lot.lot_id, lot.sku);
        for error in &lot.errors {
            say!(
                "  ({} did not answer its part: {}: {})",
                error.site_id,
                error.code,
                error.message
            );
        }
        let mut now = Table::new(&["SITE", "ZONE / ORDER", "QUANTITY", "UNIT", "STATE"]);
        for p in &lot.positions {
            now.row(vec![
                p.site_id.clone(),
                p.zone_id.clone(),
                thousands(p.on_hand),
                p.unit.clone(),
                if p.held {
                    "held".into()
                } else {
                    "on hand".into()
                },
            ]);
        }
        for t in &lot.in_transit {
            now.row(vec![
                format!("{} → {}", t.source_site_id, t.destination_site_id),
                format!("in transit ({})", t.transfer_id),
                thousands(t.quantity),
                String::new(),
                "in transit".into(),
            ]);
        }
        for event in &lot.events {
            if let Some(Event::Entry(e)) = &event.event
                && e.kind == inventory::LedgerEntryKind::Issue as i32
            {
                now.row(vec![
                    event.site_id.clone(),
                    format::or_dash(&e.order_id),
                    thousands(e.delta.saturating_neg()),
                    e.unit.clone(),
                    format!("issued {}", format::ts_short(e.recorded_at.as_ref())),
                ]);
            }
        }
        if now.is_empty() {
            say!("  (nothing on hand, travelling or issued)");
        } else {
            now.print();
        }
    }
}

/// One event in words.
struct EventRow {
    event: String,
    detail: String,
    by: String,
}

fn entry_detail(e: &inventory::LedgerEntry) -> String {
    let mut parts = Vec::new();
    if e.delta != 0 {
        parts.push(format!("{:+} {}", e.delta, e.unit));
    }
    if e.allocated_delta != 0 {
        parts.push(format!("allocated {:+} {}", e.allocated_delta, e.unit));
    }
    if !e.zone_id.is_empty() {
        parts.push(format!("zone {}", e.zone_id));
    }
    for (label, value) in [
        ("order", &e.order_id),
        ("transfer", &e.transfer_id),
        ("booking", &e.booking_id),
        ("hold", &e.hold_id),
        ("to/from", &e.other_site_id),
    ] {
        if !value.is_empty() {
            parts.push(format!("{label} {value}"));
        }
    }
    if let Some(t) = &e.transformation {
        parts.push(format!("transformation {}", t.transformation_id));
        if !t.work_order.is_empty() {
            parts.push(format!("work order {}", t.work_order));
        }
    }
    if let Some(r) = &e.relocation {
        parts.push(format!(
            "{} ({}) → {} ({})",
            r.from_zone_id,
            format::class_name(r.from_class),
            r.to_zone_id,
            format::class_name(r.to_class)
        ));
    }
    if let Some(reference) = &e.reference {
        parts.push(format!(
            "{} {}",
            format::reference_kind_name(reference.kind).to_ascii_lowercase(),
            reference.id
        ));
    }
    if !e.reason.is_empty() {
        parts.push(format!("\"{}\"", e.reason));
    }
    parts.join(", ")
}

fn event_row(event: &network::TraceEvent) -> EventRow {
    match &event.event {
        Some(Event::Entry(e)) => EventRow {
            event: format::ledger_kind_name(e.kind),
            detail: entry_detail(e),
            by: format::author_short(e.recorded_by.as_ref()),
        },
        Some(Event::TransferStep(t)) => EventRow {
            event: format!("TRANSFER {}", format::transfer_state_name(t.state)),
            detail: format!(
                "{} {} → {}, {} on {}{}",
                t.transfer_id,
                t.source_site_id,
                t.destination_site_id,
                thousands(t.quantity),
                format::or_dash(&t.train_or_route),
                if t.reefer_container_id.is_empty() {
                    String::new()
                } else {
                    format!(", container {}", t.reefer_container_id)
                }
            ),
            by: String::new(),
        },
        Some(Event::Alarm(a)) => EventRow {
            event: format!("ALARM {}", format::alarm_kind_name(a.kind)),
            detail: format!(
                "{} {}: peak {:.1} °C, {}",
                a.alarm_id,
                a.sensor_id,
                a.peak_celsius,
                format::duration_short(a.duration.as_ref())
            ),
            by: String::new(),
        },
        None => EventRow {
            event: "UNKNOWN".into(),
            detail: String::new(),
            by: String::new(),
        },
    }
}

fn exposure_json(e: &telemetry::Exposure) -> Value {
    json!({
        "sensor_id": e.sensor_id,
        "zone_id": e.zone_id,
        "start_time": format::ts_str(e.start_time.as_ref()),
        "end_time": format::ts_str(e.end_time.as_ref()),
        "reading_count": e.reading_count,
        "min_celsius": e.min_celsius,
        "max_celsius": e.max_celsius,
        "mean_celsius": e.mean_celsius,
        "mkt_celsius": e.mkt_celsius,
        "limit_min_celsius": e.limit_min_celsius,
        "limit_max_celsius": e.limit_max_celsius,
        "time_outside_limits_ms": e.time_outside_limits.as_ref().and_then(proto_time::duration_millis),
        "covered_ms": e.covered.as_ref().and_then(proto_time::duration_millis),
    })
}

/// The JSON shape of a TraceLot answer.
pub fn trace_json(answer: &network::TraceLotResponse) -> Value {
    let events: Vec<Value> = answer
        .events
        .iter()
        .map(|event| {
            let (kind, body) = match &event.event {
                Some(Event::Entry(e)) => ("ledger_entry", format::ledger_entry_json(e)),
                Some(Event::TransferStep(t)) => ("transfer_step", format::transfer_step_json(t)),
                Some(Event::Alarm(a)) => ("alarm", format::alarm_json(a)),
                None => ("unknown", Value::Null),
            };
            json!({
                "at": format::ts_str(event.at.as_ref()),
                "site_id": event.site_id,
                "type": kind,
                kind: body,
            })
        })
        .collect();
    json!({
        "sku": answer.sku,
        "lot_id": answer.lot_id,
        "events": events,
        "positions": answer.positions.iter().map(format::lot_position_json).collect::<Vec<_>>(),
        "in_transit": answer.in_transit.iter().map(format::transfer_step_json).collect::<Vec<_>>(),
        "stays": answer.stays.iter().map(|s| json!({
            "site_id": s.site_id,
            "zone_id": s.zone_id,
            "transfer_id": s.transfer_id,
            "start_time": format::ts_str(s.start_time.as_ref()),
            "end_time": format::ts_str(s.end_time.as_ref()),
            "exposures": s.exposures.iter().map(exposure_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "truncated": answer.truncated,
        "errors": answer.errors.iter().map(format::site_error_json).collect::<Vec<_>>(),
        "genealogy": answer.genealogy.iter().map(format::lot_link_json).collect::<Vec<_>>(),
        "genealogy_truncated": answer.genealogy_truncated,
        "related": answer.related.iter().map(trace_json).collect::<Vec<_>>(),
    })
}

/// A CSV field: quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// One row per event: when, where, what, how much, and who; the traced lot's events, then
/// each related lot's (its sku and lot in their columns), then a row per link of the
/// genealogy (event `MADE FROM` or `MADE INTO`, on the output lot's row).
pub fn trace_csv(answer: &network::TraceLotResponse) -> String {
    let mut out = String::from(
        "at,site_id,event,sku,lot_id,zone_id,quantity,unit,balance_after,transfer_id,order_id,detail,principal,actor\n",
    );
    for lot in std::iter::once(answer).chain(answer.related.iter()) {
        events_csv(lot, &mut out);
    }
    for l in &answer.genealogy {
        let fields = [
            format::ts_str(l.at.as_ref()).unwrap_or_default(),
            l.site_id.clone(),
            if l.upstream { "MADE FROM" } else { "MADE INTO" }.to_string(),
            l.output_sku.clone(),
            l.output_lot_id.clone(),
            String::new(),
            l.output_quantity.to_string(),
            l.output_unit.clone(),
            String::new(),
            String::new(),
            String::new(),
            format!(
                "transformation {}: {} {} of {} {}",
                l.transformation_id, l.input_quantity, l.input_unit, l.input_sku, l.input_lot_id
            ),
            String::new(),
            String::new(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// The rows of one lot's events.
fn events_csv(answer: &network::TraceLotResponse, out: &mut String) {
    for event in &answer.events {
        let row = event_row(event);
        let (zone, quantity, unit, balance, transfer, order, recorded_by) = match &event.event {
            Some(Event::Entry(e)) => (
                e.zone_id.clone(),
                e.delta.to_string(),
                e.unit.clone(),
                e.balance_after.to_string(),
                e.transfer_id.clone(),
                e.order_id.clone(),
                e.recorded_by.clone(),
            ),
            Some(Event::TransferStep(t)) => (
                String::new(),
                t.quantity.to_string(),
                String::new(),
                String::new(),
                t.transfer_id.clone(),
                String::new(),
                None,
            ),
            Some(Event::Alarm(a)) => (
                a.zone_id.clone(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                None,
            ),
            None => Default::default(),
        };
        let (principal, actor) =
            recorded_by.map_or_else(Default::default, |a| (a.principal, a.actor));
        let fields = [
            format::ts_str(event.at.as_ref()).unwrap_or_default(),
            event.site_id.clone(),
            row.event,
            answer.sku.clone(),
            answer.lot_id.clone(),
            zone,
            quantity,
            unit,
            balance,
            transfer,
            order,
            row.detail,
            principal,
            actor,
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_they_must_be() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn every_csv_row_has_the_headers_columns() {
        let answer = network::TraceLotResponse {
            sku: "citrus".into(),
            lot_id: "L,1".into(),
            events: vec![network::TraceEvent {
                at: Some(proto_time::timestamp(1_700_000_000_000)),
                site_id: "cn-huaihua-park".into(),
                event: Some(Event::Entry(inventory::LedgerEntry {
                    kind: inventory::LedgerEntryKind::Receipt as i32,
                    delta: 100,
                    unit: "kg".into(),
                    zone_id: "chilled-a".into(),
                    reason: "from \"orchard 7\"".into(),
                    recorded_by: Some(coldchain_proto::common::v1::Author {
                        principal: "wh-park".into(),
                        actor: "Li, Wei".into(),
                    }),
                    ..Default::default()
                })),
            }],
            ..Default::default()
        };
        let csv = trace_csv(&answer);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[1].starts_with(
            "2023-11-14T22:13:20Z,cn-huaihua-park,RECEIPT,citrus,\"L,1\",chilled-a,100,kg,"
        ));
        assert!(lines[1].ends_with(",wh-park,\"Li, Wei\""), "{}", lines[1]);
    }

    #[test]
    fn the_genealogy_and_the_related_lots_are_in_the_json_and_the_csv() {
        let entry = |kind: inventory::LedgerEntryKind, delta: i64| network::TraceEvent {
            at: Some(proto_time::timestamp(1_700_000_000_000)),
            site_id: "cn-huaihua-park".into(),
            event: Some(Event::Entry(inventory::LedgerEntry {
                kind: kind as i32,
                delta,
                unit: "case".into(),
                order_id: "SO-1".into(),
                ..Default::default()
            })),
        };
        let answer = network::TraceLotResponse {
            sku: "citrus".into(),
            lot_id: "O1".into(),
            genealogy: vec![network::LotLink {
                site_id: "cn-huaihua-park".into(),
                transformation_id: "PR-1".into(),
                at: Some(proto_time::timestamp(1_700_000_000_000)),
                input_sku: "citrus".into(),
                input_lot_id: "O1".into(),
                input_quantity: 60,
                input_unit: "kg".into(),
                output_sku: "segments".into(),
                output_lot_id: "S1".into(),
                output_quantity: 30,
                output_unit: "case".into(),
                upstream: false,
                depth: 1,
            }],
            related: vec![network::TraceLotResponse {
                sku: "segments".into(),
                lot_id: "S1".into(),
                events: vec![entry(inventory::LedgerEntryKind::Issue, -5)],
                ..Default::default()
            }],
            ..Default::default()
        };
        let json = trace_json(&answer);
        assert_eq!(json["genealogy"][0]["output_lot_id"], "S1");
        assert_eq!(json["genealogy"][0]["upstream"], false);
        assert_eq!(json["related"][0]["lot_id"], "S1");
        assert_eq!(
            json["related"][0]["events"][0]["ledger_entry"]["order_id"],
            "SO-1"
        );
        let csv = trace_csv(&answer);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3, "{csv}");
        assert!(lines[1].contains(",ISSUE,segments,S1,"), "{}", lines[1]);
        assert!(
            lines[2].contains(",MADE INTO,segments,S1,,30,case,"),
            "{}",
            lines[2]
        );
        assert!(lines[2].contains("transformation PR-1: 60 kg of citrus O1"));
    }
}
