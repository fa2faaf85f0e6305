//! `report excursion ALARM --site SITE`: one temperature alarm as QA writes it up — the
//! alarm, the readings around it, and the lots it touched with what happened to each since
//! (held, released, issued, transferred, written off). `--format json|csv`.
//!
//! The lots: for a zone's alarm, the positions of that zone at the site that had stock
//! while the alarm ran (their stock is held by the zone's hold); for a reefer's alarm, the
//! lots of the transfer it was bound to, at the transfer's destination (where the
//! excursion's hold is placed). Their fate is read from each lot's ledger entries at that
//! site (ListLotEntries) after the alarm began.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use clap::{Args, Subcommand, ValueEnum};
use coldchain_credentials::OPERATIONS;
use coldchain_proto::inventory::v1 as inventory;
use coldchain_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use coldchain_proto::network::v1 as network;
use coldchain_proto::network::v1::network_service_client::NetworkServiceClient;
use coldchain_proto::telemetry::v1 as telemetry;
use coldchain_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use coldchain_runtime::client::Channel;
use coldchain_runtime::config::parse_duration;
use coldchain_runtime::network::ServiceKind;
use coldchain_runtime::proto_time;
use serde_json::{Value, json};

use crate::format::{self, Table, thousands, ts_short};
use crate::{CliError, SiteOpts, call, connect_as, load_network, print_json, resolve_site};

#[derive(Subcommand)]
pub enum ReportCommand {
    /// One alarm written up: the alarm, the readings around it, the lots it touched and
    /// what happened to them.
    Excursion(ExcursionArgs),
}

/// How `report` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Tables for a terminal.
    Table,
    /// One JSON document.
    Json,
    /// CSV: a `record` column says which part a row is (alarm, reading, lot).
    Csv,
}

#[derive(Args)]
pub struct ExcursionArgs {
    #[command(flatten)]
    site: SiteOpts,
    /// The alarm (its id at the site).
    alarm_id: String,
    /// How much before and after the alarm the readings cover.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_window)]
    around: std::time::Duration,
    /// The output (`--json` is the same as `--format json`).
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    format: ReportFormat,
}

fn parse_window(text: &str) -> Result<std::time::Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

pub async fn report(command: ReportCommand) -> Result<(), CliError> {
    match command {
        ReportCommand::Excursion(args) => excursion(args).await,
    }
}

/// What happened to one lot since the alarm began.
#[derive(Debug, Default, Clone, PartialEq)]
struct LotFate {
    sku: String,
    lot_id: String,
    zone_id: String,
    unit: String,
    on_hand_now: i64,
    held_now: bool,
    /// The alarm's holds that covered it and were released since.
    released: bool,
    /// Sold or sent to orders since.
    issued: i64,
    /// Sent to other sites since.
    transferred_out: i64,
    /// Negative adjustments since (destroyed, written off).
    written_off: i64,
}

impl LotFate {
    fn verdict(&self) -> &'static str {
        if self.written_off > 0 && self.on_hand_now == 0 {
            "written off"
        } else if self.held_now {
            "held"
        } else if self.released {
            "released"
        } else if self.issued > 0 || self.transferred_out > 0 {
            "gone out"
        } else {
            "not held"
        }
    }
}

async fn excursion(args: ExcursionArgs) -> Result<(), CliError> {
    let network = load_network(&args.site.network)?;
    let (_, telemetry_endpoint) = resolve_site(&network, &args.site.site, ServiceKind::Telemetry)?;
    let telemetry = TelemetryServiceClient::new(connect_as(&telemetry_endpoint, OPERATIONS)?);
    let alarm = find_alarm(&telemetry, &args.alarm_id).await?;
    let started = proto_time_instant(alarm.started_at.as_ref())?;
    let ended = alarm
        .cleared_at
        .as_ref()
        .or(alarm.last_seen_at.as_ref())
        .map(|t| proto_time_instant(Some(t)))
        .transpose()?
        .unwrap_or_else(Utc::now);
    let around = ChronoDuration::from_std(args.around)
        .map_err(|_| CliError::Usage("--around is too long".into()))?;
    let readings = call!(
        telemetry,
        query_readings,
        telemetry::QueryReadingsRequest {
            sensor_id: alarm.sensor_id.clone(),
            start_time: Some(timestamp(started - around)),
            end_time: Some(timestamp(ended + around)),
            bucket: Some(prost_types::Duration {
                seconds: 60,
                nanos: 0
            }),
        }
    )?;

    // Where the affected lots are, and which of them.
    let (lot_site, lots) = match alarm.reefer.as_ref().filter(|r| !r.transfer_id.is_empty()) {
        Some(reefer) => {
            let gateway =
                NetworkServiceClient::new(connect_as(&network.gateway_endpoint(), OPERATIONS)?);
            let transfer = call!(
                gateway,
                get_transfer,
                network::GetTransferRequest {
                    transfer_id: reefer.transfer_id.clone(),
                }
            )?;
            let lots = transfer
                .lines
                .iter()
                .map(|l| {
                    (
                        l.sku.clone(),
                        l.lot_id.clone(),
                        l.destination_zone_id.clone(),
                    )
                })
                .collect::<Vec<_>>();
            (transfer.destination_site_id, lots)
        }
        None => (args.site.site.clone(), Vec::new()),
    };
    let (_, inventory_endpoint) = resolve_site(&network, &lot_site, ServiceKind::Inventory)?;
    let inventory = InventoryServiceClient::new(connect_as(&inventory_endpoint, OPERATIONS)?);
    let lots = if lots.is_empty() && !alarm.zone_id.is_empty() {
        zone_lots(&inventory, &alarm.zone_id, started, ended).await?
    } else {
        lots
    };
    let mut fates = Vec::with_capacity(lots.len());
    for (sku, lot_id, zone_id) in lots {
        fates.push(fate(&inventory, &alarm, started, sku, lot_id, zone_id).await?);
    }

    match (args.format, args.site.json) {
        (ReportFormat::Json, _) | (_, true) => print_json(&json!({
            "alarm": format::alarm_json(&alarm),
            "readings": readings.buckets.iter().map(|b| json!({
                "start_time": format::ts_str(b.start_time.as_ref()),
                "min_celsius": b.min_celsius,
                "max_celsius": b.max_celsius,
                "mean_celsius": b.mean_celsius,
                "count": b.count,
            })).collect::<Vec<_>>(),
            "lots_site_id": lot_site,
            "lots": fates.iter().map(fate_json).collect::<Vec<_>>(),
        })),
        (ReportFormat::Csv, false) => {
            print!("{}", csv(&alarm, &readings.buckets, &lot_site, &fates))
        }
        (ReportFormat::Table, false) => print_tables(&alarm, &readings.buckets, &lot_site, &fates),
    }
    Ok(())
}

fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    proto_time::timestamp(at.timestamp_millis())
}

fn proto_time_instant(ts: Option<&prost_types::Timestamp>) -> Result<DateTime<Utc>, CliError> {
    format::instant(ts).ok_or_else(|| CliError::Failed("the alarm has no start time".into()))
}

/// The alarm, read from the site's list (alarm ids are the site's own).
async fn find_alarm(
    telemetry: &TelemetryServiceClient<Channel>,
    alarm_id: &str,
) -> Result<telemetry::Alarm, CliError> {
    let mut page_token = String::new();
    for _ in 0..100 {
        let page = call!(
            telemetry,
            list_alarms,
            telemetry::ListAlarmsRequest {
                page_size: 1000,
                page_token: page_token.clone(),
                ..Default::default()
            }
        )?;
        if let Some(alarm) = page.alarms.into_iter().find(|a| a.alarm_id == alarm_id) {
            return Ok(alarm);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    Err(CliError::Failed(format!(
        "no alarm {alarm_id:?} at this site"
    )))
}

/// The lots of a zone the alarm touched: positions its hold covers now, positions with
/// stock now that arrived before it ended, and emptied positions that changed after it
/// began.
async fn zone_lots(
    inventory: &InventoryServiceClient<Channel>,
    zone_id: &str,
    started: DateTime<Utc>,
    ended: DateTime<Utc>,
) -> Result<Vec<(String, String, String)>, CliError> {
    let mut lots = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = call!(
            inventory,
            list_stock,
            inventory::ListStockRequest {
                zone_id: zone_id.to_string(),
                include_empty: true,
                page_size: 1000,
                page_token: page_token.clone(),
                ..Default::default()
            }
        )?;
        for level in page.levels {
            let arrived = format::instant(level.first_received_at.as_ref());
            let changed = format::instant(level.updated_at.as_ref());
            // Held now (the zone's hold covers it), or there while the alarm ran.
            let there = level.held > 0
                || if level.on_hand > 0 {
                    arrived.is_none_or(|at| at <= ended)
                } else {
                    changed.is_some_and(|at| at >= started)
                };
            if there {
                let lot_id = level.lot.map(|l| l.lot_id).unwrap_or_default();
                lots.push((level.sku, lot_id, level.zone_id));
            }
        }
        if page.next_page_token.is_empty() {
            return Ok(lots);
        }
        page_token = page.next_page_token;
    }
}

/// What happened to one lot since the alarm began, from its ledger entries at the site.
async fn fate(
    inventory: &InventoryServiceClient<Channel>,
    alarm: &telemetry::Alarm,
    started: DateTime<Utc>,
    sku: String,
    lot_id: String,
    zone_id: String,
) -> Result<LotFate, CliError> {
    let mut fate = LotFate {
        sku: sku.clone(),
        lot_id: lot_id.clone(),
        zone_id: zone_id.clone(),
        ..LotFate::default()
    };
    let mut page_token = String::new();
    loop {
        let page = call!(
            inventory,
            list_lot_entries,
            inventory::ListLotEntriesRequest {
                sku: sku.clone(),
                lot_id: lot_id.clone(),
                page_size: 1000,
                page_token: page_token.clone(),
            }
        )?;
        for entry in &page.entries {
            apply(&mut fate, alarm, started, entry);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let stock = call!(
        inventory,
        get_stock,
        inventory::GetStockRequest {
            sku,
            lot_id,
            zone_id,
        }
    );
    match stock {
        Ok(stock) => {
            fate.on_hand_now = stock.levels.iter().map(|l| l.on_hand).sum();
            fate.held_now = stock.levels.iter().any(|l| l.held > 0);
            if let Some(level) = stock.levels.first() {
                fate.unit = level.unit.clone();
            }
        }
        Err(status) if status.code() == tonic::Code::NotFound => {}
        Err(status) => return Err(status.into()),
    }
    Ok(fate)
}

/// Counts one entry of the lot into its fate.
fn apply(
    fate: &mut LotFate,
    alarm: &telemetry::Alarm,
    started: DateTime<Utc>,
    e: &inventory::LedgerEntry,
) {
    use inventory::LedgerEntryKind as K;
    if format::instant(e.recorded_at.as_ref()).is_some_and(|at| at < started) {
        return;
    }
    if fate.unit.is_empty() {
        fate.unit = e.unit.clone();
    }
    let in_zone = fate.zone_id.is_empty() || e.zone_id == fate.zone_id;
    match K::try_from(e.kind) {
        Ok(K::HoldReleased) if alarm.hold_ids.contains(&e.hold_id) => fate.released = true,
        Ok(K::Issue) if in_zone => fate.issued += -e.delta,
        Ok(K::TransferOut) if in_zone => fate.transferred_out += -e.delta,
        Ok(K::Adjustment | K::Count) if in_zone && e.delta < 0 => fate.written_off += -e.delta,
        _ => {}
    }
}

fn fate_json(f: &LotFate) -> Value {
    json!({
        "sku": f.sku,
        "lot_id": f.lot_id,
        "zone_id": f.zone_id,
        "unit": f.unit,
        "on_hand_now": f.on_hand_now,
        "held_now": f.held_now,
        "released": f.released,
        "issued": f.issued,
        "transferred_out": f.transferred_out,
        "written_off": f.written_off,
        "verdict": f.verdict(),
    })
}

fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// One CSV: the alarm, then a row per reading bucket, then a row per lot.
fn csv(
    alarm: &telemetry::Alarm,
    buckets: &[telemetry::ReadingBucket],
    lot_site: &str,
    fates: &[LotFate],
) -> String {
    let mut out = String::from(
        "record,site_id,alarm_id,sensor_id,zone_id,time,kind_or_sku,state_or_lot,min_celsius,max_celsius,mean_celsius,count_or_on_hand,verdict,issued,transferred_out,written_off\n",
    );
    let row = |fields: Vec<String>| -> String {
        let mut line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        line.resize(16, String::new());
        line.join(",") + "\n"
    };
    out.push_str(&row(vec![
        "alarm".into(),
        alarm.site_id.clone(),
        alarm.alarm_id.clone(),
        alarm.sensor_id.clone(),
        alarm.zone_id.clone(),
        format::ts_str(alarm.started_at.as_ref()).unwrap_or_default(),
        format::alarm_kind_name(alarm.kind),
        format::alarm_state_name(alarm.state),
        String::new(),
        alarm.peak_celsius.to_string(),
        String::new(),
        String::new(),
        String::new(),
    ]));
    for b in buckets {
        out.push_str(&row(vec![
            "reading".into(),
            alarm.site_id.clone(),
            alarm.alarm_id.clone(),
            alarm.sensor_id.clone(),
            alarm.zone_id.clone(),
            format::ts_str(b.start_time.as_ref()).unwrap_or_default(),
            String::new(),
            String::new(),
            b.min_celsius.to_string(),
            b.max_celsius.to_string(),
            b.mean_celsius.to_string(),
            b.count.to_string(),
        ]));
    }
    for f in fates {
        out.push_str(&row(vec![
            "lot".into(),
            lot_site.to_string(),
            alarm.alarm_id.clone(),
            alarm.sensor_id.clone(),
            f.zone_id.clone(),
            String::new(),
            f.sku.clone(),
            f.lot_id.clone(),
            String::new(),
            String::new(),
            String::new(),
            f.on_hand_now.to_string(),
            f.verdict().to_string(),
            f.issued.to_string(),
            f.transferred_out.to_string(),
            f.written_off.to_string(),
        ]));
    }
    out
}

fn print_tables(
    alarm: &telemetry::Alarm,
    buckets: &[telemetry::ReadingBucket],
    lot_site: &str,
    fates: &[LotFate],
) {
    println!(
        "alarm {} at {}: {} {}, sensor {}{}",
        alarm.alarm_id,
        alarm.site_id,
        format::alarm_kind_name(alarm.kind),
        format::alarm_state_name(alarm.state),
        alarm.sensor_id,
        if alarm.zone_id.is_empty() {
            String::new()
        } else {
            format!(" in {}", alarm.zone_id)
        }
    );
    println!(
        "  from {} to {}: peak {:.1} °C against the limit {:.1} °C, {:.1} degree-minutes",
        ts_short(alarm.started_at.as_ref()),
        alarm
            .cleared_at
            .as_ref()
            .map_or_else(|| "(still active)".into(), |t| ts_short(Some(t))),
        alarm.peak_celsius,
        alarm.limit_celsius,
        alarm.degree_minutes
    );
    if !alarm.acknowledged_by.is_empty() {
        println!(
            "  acknowledged by {}: {}",
            alarm.acknowledged_by, alarm.ack_note
        );
    }
    println!("\nreadings per minute (°C)");
    let mut readings = Table::new(&["MINUTE (UTC)", "MIN", "MAX", "MEAN", "READINGS"]);
    for b in buckets {
        readings.row(vec![
            ts_short(b.start_time.as_ref()),
            format!("{:.1}", b.min_celsius),
            format!("{:.1}", b.max_celsius),
            format!("{:.1}", b.mean_celsius),
            b.count.to_string(),
        ]);
    }
    readings.print();
    println!("\nlots it touched, at {lot_site}");
    let mut lots = Table::new(&[
        "SKU",
        "LOT",
        "ZONE",
        "ON HAND NOW",
        "UNIT",
        "VERDICT",
        "ISSUED",
        "TRANSFERRED",
        "WRITTEN OFF",
    ]);
    for f in fates {
        lots.row(vec![
            f.sku.clone(),
            f.lot_id.clone(),
            f.zone_id.clone(),
            thousands(f.on_hand_now),
            f.unit.clone(),
            f.verdict().to_string(),
            thousands(f.issued),
            thousands(f.transferred_out),
            thousands(f.written_off),
        ]);
    }
    if lots.is_empty() {
        println!("(none)");
    } else {
        lots.print();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: inventory::LedgerEntryKind, at_ms: i64, delta: i64) -> inventory::LedgerEntry {
        inventory::LedgerEntry {
            kind: kind as i32,
            recorded_at: Some(proto_time::timestamp(at_ms)),
            zone_id: "chilled-a".into(),
            unit: "kg".into(),
            delta,
            ..Default::default()
        }
    }

    #[test]
    fn a_lots_fate_counts_only_what_happened_since_the_alarm() {
        use inventory::LedgerEntryKind as K;
        let alarm = telemetry::Alarm {
            hold_ids: vec!["hold-9".into()],
            ..Default::default()
        };
        let started = DateTime::from_timestamp_millis(1_000).unwrap();
        let mut fate = LotFate {
            zone_id: "chilled-a".into(),
            ..LotFate::default()
        };
        let mut released = entry(K::HoldReleased, 5_000, 0);
        released.hold_id = "hold-9".into();
        let mut other_zone = entry(K::Issue, 6_000, -7);
        other_zone.zone_id = "frozen-a".into();
        for e in [
            entry(K::Issue, 500, -50),
            entry(K::Issue, 2_000, -10),
            entry(K::TransferOut, 3_000, -20),
            entry(K::Adjustment, 4_000, -5),
            entry(K::Adjustment, 4_500, 3),
            released,
            other_zone,
        ] {
            apply(&mut fate, &alarm, started, &e);
        }
        assert_eq!(
            (fate.issued, fate.transferred_out, fate.written_off),
            (10, 20, 5)
        );
        assert!(fate.released);
        fate.on_hand_now = 15;
        assert_eq!(fate.verdict(), "released");
        fate.held_now = true;
        assert_eq!(fate.verdict(), "held");
        fate.on_hand_now = 0;
        assert_eq!(fate.verdict(), "written off");
    }

    #[test]
    fn the_csv_has_one_header_and_a_record_column() {
        let alarm = telemetry::Alarm {
            alarm_id: "alm-00000001".into(),
            site_id: "cn-huaihua-park".into(),
            ..Default::default()
        };
        let fates = vec![LotFate {
            sku: "citrus".into(),
            lot_id: "L, 1".into(),
            ..LotFate::default()
        }];
        let text = csv(
            &alarm,
            &[telemetry::ReadingBucket::default()],
            "cn-huaihua-park",
            &fates,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[1].starts_with("alarm,"));
        assert!(lines[2].starts_with("reading,"));
        assert!(lines[3].starts_with("lot,") && lines[3].contains("\"L, 1\""));
    }
}
