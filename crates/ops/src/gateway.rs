//! Commands answered by the gateway: `sites`, `stock`, `space`, `transfer`, `alarms`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use coldchain_command::say;
use coldchain_proto::common::v1::TemperatureClass;
use coldchain_proto::network::v1 as network;
use coldchain_proto::network::v1::network_service_client::NetworkServiceClient;
use coldchain_proto::telemetry::v1 as telemetry;
use coldchain_runtime::client::Channel;
use coldchain_runtime::config::parse_duration;
use serde_json::{Value, json};

use super::format::{self, Table, or_dash, thousands, ts_short};
use super::{CliError, GatewayOpts, RequestIdOpt, connect, connect_as, print_json};

/// The `--as` flag of the gateway's commands: every one of them is an operations task
/// (`sites` and `space` are open to other roles too, so they can be tried as those).
#[derive(Args, Clone, Debug, Default)]
pub struct CallerOpt {
    /// Call as this credential of the keyring, e.g. customer-hunan-citrus-export
    /// [default: operations].
    #[arg(long = "as", value_name = "ID")]
    pub id: Option<String>,
}

/// A client of the gateway, calling as `--as` or operations.
pub fn client(
    opts: &GatewayOpts,
    caller: &CallerOpt,
) -> Result<NetworkServiceClient<Channel>, CliError> {
    let endpoint = opts.endpoint()?;
    let channel = match &caller.id {
        Some(id) => connect_as(&endpoint, id)?,
        None => connect(&endpoint)?,
    };
    Ok(NetworkServiceClient::new(channel))
}

/// Runs a unary call, retrying UNAVAILABLE (every mutating call carries a request id).
#[macro_export]
macro_rules! call {
    ($client:expr, $method:ident, $request:expr) => {{
        let client = $client.clone();
        let request = $request;
        let options = $crate::client_options();
        coldchain_runtime::client::with_retry(&options, || {
            let mut client = client.clone();
            let request = request.clone();
            async move { client.$method($crate::unary(request)).await }
        })
        .await
        .map(|response| response.into_inner())
    }};
}

fn warn_failures(failures: &[network::SiteError]) {
    for f in failures {
        eprintln!(
            "warning: site {} did not answer: {}: {}",
            f.site_id, f.code, f.message
        );
    }
}

// ------------------------------------------------------------------ sites

#[derive(Args)]
pub struct SitesArgs {
    #[command(flatten)]
    gateway: GatewayOpts,
    #[command(flatten)]
    caller: CallerOpt,
    /// Only this site (repeat for more).
    #[arg(long = "site", value_name = "ID")]
    sites: Vec<String>,
}

/// Every site of the gateway's network, all pages.
pub async fn list_sites(
    client: &NetworkServiceClient<Channel>,
    site_ids: Vec<String>,
) -> Result<Vec<network::Site>, CliError> {
    let mut sites = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = network::ListSitesRequest {
            site_ids: site_ids.clone(),
            page_size: 1000,
            page_token,
        };
        let page = call!(client, list_sites, request)?;
        sites.extend(page.sites);
        if page.next_page_token.is_empty() {
            return Ok(sites);
        }
        page_token = page.next_page_token;
    }
}

pub async fn sites(args: SitesArgs) -> Result<(), CliError> {
    let client = client(&args.gateway, &args.caller)?;
    let sites = list_sites(&client, args.sites).await?;
    if args.gateway.json {
        let sites: Vec<Value> = sites.iter().map(site_json).collect();
        print_json(&json!({ "sites": sites }));
        return Ok(());
    }
    let mut table = Table::new(&[
        "SITE",
        "NAME",
        "TIME ZONE",
        "REACHED BY",
        "ZONES",
        "PALLETS",
        "INVENTORY",
        "TELEMETRY",
        "BOOKING",
    ]);
    let mut zones = Table::new(&[
        "SITE", "ZONE", "NAME", "CLASS", "MIN °C", "MAX °C", "PALLETS",
    ]);
    let mut serving = 0;
    let mut endpoints = 0;
    for site in &sites {
        let health = |kind: network::ServiceKind| {
            site.endpoints
                .iter()
                .find(|e| e.service == kind as i32)
                .map(health_cell)
                .unwrap_or_else(|| "-".to_string())
        };
        let capacity: i64 = site
            .zones
            .iter()
            .map(|z| i64::from(z.capacity_pallets))
            .sum();
        table.row(vec![
            site.site_id.clone(),
            site.name.clone(),
            site.time_zone.clone(),
            site.reached_by.clone(),
            site.zones.len().to_string(),
            thousands(capacity),
            health(network::ServiceKind::Inventory),
            health(network::ServiceKind::Telemetry),
            health(network::ServiceKind::Booking),
        ]);
        for e in &site.endpoints {
            endpoints += 1;
            if e.health == network::EndpointHealth::Serving as i32 {
                serving += 1;
            }
        }
        for z in &site.zones {
            zones.row(vec![
                site.site_id.clone(),
                z.zone_id.clone(),
                z.name.clone(),
                format::class_name(z.temperature_class),
                format!("{:.1}", z.min_celsius),
                format!("{:.1}", z.max_celsius),
                thousands(i64::from(z.capacity_pallets)),
            ]);
        }
    }
    table.print();
    say!("");
    zones.print();
    say!("");
    say!(
        "{} sites, {serving} of {endpoints} services serving",
        sites.len()
    );
    Ok(())
}

fn latency_ms(d: Option<&prost_types::Duration>) -> Option<f64> {
    d.map(|d| d.seconds as f64 * 1000.0 + f64::from(d.nanos) / 1e6)
}

fn health_cell(e: &network::ServiceEndpoint) -> String {
    match network::EndpointHealth::try_from(e.health) {
        Ok(network::EndpointHealth::Serving) => match latency_ms(e.latency.as_ref()) {
            Some(ms) => format!("ok {ms:.1}ms"),
            None => "ok".to_string(),
        },
        Ok(network::EndpointHealth::NotServing) => "NOT SERVING".to_string(),
        Ok(network::EndpointHealth::Unreachable) => "UNREACHABLE".to_string(),
        _ => "?".to_string(),
    }
}

fn site_json(site: &network::Site) -> Value {
    json!({
        "site_id": site.site_id,
        "name": site.name,
        "time_zone": site.time_zone,
        "reached_by": site.reached_by,
        "zones": site.zones.iter().map(|z| json!({
            "zone_id": z.zone_id,
            "name": z.name,
            "temperature_class": format::class_name(z.temperature_class),
            "min_celsius": z.min_celsius,
            "max_celsius": z.max_celsius,
            "capacity_pallets": z.capacity_pallets,
        })).collect::<Vec<_>>(),
        "endpoints": site.endpoints.iter().map(|e| json!({
            "service": format::service_kind_name(e.service).to_ascii_lowercase(),
            "endpoint": e.endpoint,
            "health": format::endpoint_health_name(e.health),
            "latency_ms": latency_ms(e.latency.as_ref()),
            "checked_at": format::ts_str(e.checked_at.as_ref()),
            "error": e.error,
        })).collect::<Vec<_>>(),
    })
}

// ------------------------------------------------------------------ stock

#[derive(Args)]
pub struct StockArgs {
    #[command(flatten)]
    gateway: GatewayOpts,
    #[command(flatten)]
    caller: CallerOpt,
    /// The sku.
    sku: String,
    /// Only zones of this temperature class.
    #[arg(long, value_name = "CLASS", value_parser = format::parse_class)]
    class: Option<TemperatureClass>,
    /// Only zones with at least this available quantity.
    #[arg(long, value_name = "N", default_value_t = 0)]
    min: i64,
    /// Only this site (repeat for more).
    #[arg(long = "site", value_name = "ID")]
    sites: Vec<String>,
}

pub async fn stock(args: StockArgs) -> Result<(), CliError> {
    let client = client(&args.gateway, &args.caller)?;
    let request = network::FindStockRequest {
        sku: args.sku.clone(),
        temperature_class: args.class.map_or(0, |c| c as i32),
        min_quantity: args.min,
        site_ids: args.sites.clone(),
    };
    let answer = call!(client, find_stock, request)?;
    if args.gateway.json {
        print_json(&find_stock_json(&answer));
        return Ok(());
    }
    warn_failures(&answer.failures);
    let mut table = Table::new(&[
        "SITE",
        "ZONE",
        "CLASS",
        "ON HAND",
        "ALLOCATED",
        "HELD",
        "AVAILABLE",
        "UNIT",
        "EARLIEST EXPIRY",
        "LOTS",
        "INBOUND",
    ]);
    for site in &answer.sites {
        for z in &site.zones {
            table.row(vec![
                site.site_id.clone(),
                z.zone_id.clone(),
                format::class_name(z.temperature_class),
                thousands(z.on_hand),
                thousands(z.allocated),
                thousands(z.held),
                thousands(z.available),
                z.unit.clone(),
                format::date_str(z.earliest_expiry.as_ref()).unwrap_or_else(|| "-".into()),
                z.lot_count.to_string(),
                String::new(),
            ]);
        }
        if site.zones.is_empty() && site.inbound_in_transit > 0 {
            table.row(vec![
                site.site_id.clone(),
                "-".into(),
                "-".into(),
                "0".into(),
                "0".into(),
                "0".into(),
                "0".into(),
                String::new(),
                "-".into(),
                "0".into(),
                thousands(site.inbound_in_transit),
            ]);
        } else if site.inbound_in_transit > 0
            && let Some(last) = table_last_cell(&mut table)
        {
            *last = thousands(site.inbound_in_transit);
        }
    }
    say!("stock of {}", answer.sku);
    if table.is_empty() {
        say!("(no stock at the sites that answered)");
    } else {
        table.print();
    }
    if !answer.in_transit.is_empty() {
        say!("");
        say!("in transit");
        let mut transit = Table::new(&[
            "TRANSFER", "STATE", "FROM", "TO", "LOT", "EXPIRY", "QUANTITY", "UNIT", "TRAIN",
            "SHIPPED",
        ]);
        for t in &answer.in_transit {
            transit.row(vec![
                t.transfer_id.clone(),
                format::transfer_state_name(t.state),
                t.source_site_id.clone(),
                t.destination_site_id.clone(),
                t.lot.as_ref().map(|l| l.lot_id.clone()).unwrap_or_default(),
                t.lot
                    .as_ref()
                    .and_then(|l| format::date_str(l.expiry.as_ref()))
                    .unwrap_or_else(|| "-".into()),
                thousands(t.quantity),
                t.unit.clone(),
                or_dash(&t.train_or_route),
                ts_short(t.shipped_at.as_ref()),
            ]);
        }
        transit.print();
    }
    Ok(())
}

fn table_last_cell(table: &mut Table) -> Option<&mut String> {
    table.last_row_mut().and_then(|row| row.last_mut())
}

/// The JSON shape of a FindStock answer.
pub fn find_stock_json(answer: &network::FindStockResponse) -> Value {
    json!({
        "sku": answer.sku,
        "sites": answer.sites.iter().map(|s| json!({
            "site_id": s.site_id,
            "inbound_in_transit": s.inbound_in_transit,
            "zones": s.zones.iter().map(|z| json!({
                "zone_id": z.zone_id,
                "temperature_class": format::class_name(z.temperature_class),
                "unit": z.unit,
                "on_hand": z.on_hand,
                "allocated": z.allocated,
                "held": z.held,
                "available": z.available,
                "earliest_expiry": format::date_str(z.earliest_expiry.as_ref()),
                "lot_count": z.lot_count,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "in_transit": answer.in_transit.iter().map(|t| json!({
            "transfer_id": t.transfer_id,
            "state": format::transfer_state_name(t.state),
            "source_site_id": t.source_site_id,
            "destination_site_id": t.destination_site_id,
            "lot": format::lot_json(t.lot.as_ref()),
            "quantity": t.quantity,
            "unit": t.unit,
            "train_or_route": t.train_or_route,
            "shipped_at": format::ts_str(t.shipped_at.as_ref()),
        })).collect::<Vec<_>>(),
        "failures": answer.failures.iter().map(format::site_error_json).collect::<Vec<_>>(),
    })
}

// ------------------------------------------------------------------ space

#[derive(Args)]
pub struct SpaceArgs {
    #[command(flatten)]
    gateway: GatewayOpts,
    #[command(flatten)]
    caller: CallerOpt,
    /// The temperature class: FROZEN, CHILLED, PHARMA, COOL or AMBIENT.
    #[arg(long, value_name = "CLASS", value_parser = format::parse_class)]
    class: TemperatureClass,
    /// Pallet positions needed on each day.
    #[arg(long, value_name = "N")]
    pallets: i32,
    /// The first day, YYYY-MM-DD (each site's local calendar).
    #[arg(long, value_name = "DATE", value_parser = format::parse_date)]
    from: coldchain_proto::common::v1::Date,
    /// The last day, inclusive, YYYY-MM-DD.
    #[arg(long, value_name = "DATE", value_parser = format::parse_date)]
    to: coldchain_proto::common::v1::Date,
    /// Only this site (repeat for more).
    #[arg(long = "site", value_name = "ID")]
    sites: Vec<String>,
}

pub async fn space(args: SpaceArgs) -> Result<(), CliError> {
    let client = client(&args.gateway, &args.caller)?;
    let request = network::FindSpaceRequest {
        temperature_class: args.class as i32,
        pallets: args.pallets,
        first_day: Some(args.from),
        last_day: Some(args.to),
        site_ids: args.sites.clone(),
    };
    let answer = call!(client, find_space, request)?;
    if args.gateway.json {
        print_json(&json!({
            "offers": answer.offers.iter().map(offer_json).collect::<Vec<_>>(),
            "failures": answer.failures.iter().map(format::site_error_json).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    warn_failures(&answer.failures);
    let mut table = Table::new(&["SITE", "ZONE", "CLASS", "CAPACITY", "MIN FREE", "FITS"]);
    for o in &answer.offers {
        table.row(vec![
            o.site_id.clone(),
            o.zone_id.clone(),
            format::class_name(o.temperature_class),
            thousands(i64::from(o.capacity_pallets)),
            thousands(i64::from(o.min_free)),
            if o.fits { "yes" } else { "no" }.to_string(),
        ]);
    }
    let fitting = answer.offers.iter().filter(|o| o.fits).count();
    if table.is_empty() {
        say!("no zone of this class at the sites that answered");
    } else {
        table.print();
    }
    say!(
        "{fitting} of {} zones fit {} pallets",
        answer.offers.len(),
        args.pallets
    );
    Ok(())
}

/// The JSON shape of a space offer.
pub fn offer_json(o: &network::SpaceOffer) -> Value {
    json!({
        "site_id": o.site_id,
        "zone_id": o.zone_id,
        "temperature_class": format::class_name(o.temperature_class),
        "capacity_pallets": o.capacity_pallets,
        "min_free": o.min_free,
        "fits": o.fits,
    })
}

// ------------------------------------------------------------------ transfers

#[derive(Subcommand)]
pub enum TransferCommand {
    /// Start a corridor transfer: TRANSFER_OUT at the source, then in transit.
    Start(TransferStartArgs),
    /// Report a transfer's arrival: TRANSFER_IN at the destination, then completed.
    Receive(TransferReceiveArgs),
    /// Show one transfer.
    Show(TransferShowArgs),
    /// List transfers, newest first.
    List(TransferListArgs),
}

#[derive(Args)]
pub struct TransferStartArgs {
    #[command(flatten)]
    gateway: GatewayOpts,
    #[command(flatten)]
    caller: CallerOpt,
    #[command(flatten)]
    request_id: RequestIdOpt,
    /// The site the goods leave.
    #[arg(long, value_name = "SITE")]
    source: String,
    /// The site the goods go to.
    #[arg(long, value_name = "SITE")]
    destination: String,
    /// One line, `sku=SKU,lot=LOT,zone=ZONE[,to_zone=ZONE],qty=N,unit=UNIT` (to_zone
    /// defaults to zone); repeat for more lines.
    #[arg(long = "line", value_name = "LINE", required = true, value_parser = parse_line)]
    lines: Vec<network::TransferLine>,
    /// The transfer's id [default: assigned by the gateway].
    #[arg(long, value_name = "ID")]
    transfer_id: Option<String>,
    /// The reefer's sensor, bound to the transfer while in transit.
    #[arg(long, value_name = "SENSOR")]
    reefer_sensor: Option<String>,
    /// The reefer container's id (required with --reefer-sensor).
    #[arg(long, value_name = "ID")]
    container: Option<String>,
    /// The reefer cargo's class [default: the class of the first line's zone].
    #[arg(long, value_name = "CLASS", value_parser = format::parse_class)]
    reefer_class: Option<TemperatureClass>,
    /// The train or route, e.g. "China-Laos express X8011".
    #[arg(long, value_name = "TRAIN")]
    train: Option<String>,
}

/// Parses `sku=..,lot=..,zone=..[,to_zone=..],qty=..,unit=..`.
pub fn parse_line(text: &str) -> Result<network::TransferLine, String> {
    let mut line = network::TransferLine::default();
    let mut quantity = None;
    for part in text.split(',') {
        let Some((key, value)) = part.split_once('=') else {
            return Err(format!(
                "expected key=value parts (sku, lot, zone, to_zone, qty, unit), got {part:?}"
            ));
        };
        let value = value.trim().to_string();
        match key.trim() {
            "sku" => line.sku = value,
            "lot" | "lot_id" => line.lot_id = value,
            "zone" | "from_zone" | "source_zone" => line.source_zone_id = value,
            "to_zone" | "destination_zone" => line.destination_zone_id = value,
            "qty" | "quantity" => {
                quantity = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| format!("qty must be a whole number, got {value:?}"))?,
                )
            }
            "unit" => line.unit = value,
            other => return Err(format!("unknown key {other:?} in a transfer line")),
        }
    }
    let mut missing = Vec::new();
    for (name, empty) in [
        ("sku", line.sku.is_empty()),
        ("lot", line.lot_id.is_empty()),
        ("zone", line.source_zone_id.is_empty()),
        ("qty", quantity.is_none()),
        ("unit", line.unit.is_empty()),
    ] {
        if empty {
            missing.push(name);
        }
    }
    if !missing.is_empty() {
        return Err(format!("a transfer line needs {}", missing.join(", ")));
    }
    line.quantity = quantity.unwrap_or(0);
    if line.destination_zone_id.is_empty() {
        line.destination_zone_id = line.source_zone_id.clone();
    }
    Ok(line)
}

#[derive(Args)]
pub struct TransferReceiveArgs {
    #[command(flatten)]
    gateway: GatewayOpts,
    #[command(flatten)]
    caller: CallerOpt,
    #[command(flatten)]
    request_id: RequestIdOpt,
    /// The transfer.
    transfer_id: String,
}

#[derive(Args)]
pub struct TransferShowArgs {
    #[command(flatten)]
    gateway: GatewayOpts,
    #[command(flatten)]
    caller: CallerOpt,
    /// The transfer.
    transfer_id: String,
}

#[derive(Args)]
pub struct TransferListArgs {
    #[command(flatten)]
    gateway: GatewayOpts,
    #[command(flatten)]
    caller: CallerOpt,
    /// Only transfers in this state (repeat for more): REQUESTED, IN_TRANSIT, RECEIVING,
    /// COMPLETED, FAILED.
    #[arg(long = "state", value_name = "STATE", value_parser = format::parse_transfer_state)]
    states: Vec<network::TransferState>,
    /// Only transfers leaving this site.
    #[arg(long, value_name = "SITE")]
    source: Option<String>,
    /// Only transfers going to this site.
    #[arg(long, value_name = "SITE")]
    destination: Option<String>,
    /// At most this many transfers.
    #[arg(long, value_name = "N", default_value_t = 100)]
    limit: usize,
}

pub async fn transfer(command: TransferCommand) -> Result<(), CliError> {
    match command {
        TransferCommand::Start(args) => {
            let client = client(&args.gateway, &args.caller)?;
            let request_id = args.request_id.get();
            let request = network::StartTransferRequest {
                request_id: request_id.clone(),
                transfer_id: args.transfer_id.clone().unwrap_or_default(),
                source_site_id: args.source.clone(),
                destination_site_id: args.destination.clone(),
                lines: args.lines.clone(),
                reefer_sensor_id: args.reefer_sensor.clone().unwrap_or_default(),
                reefer_container_id: args.container.clone().unwrap_or_default(),
                reefer_temperature_class: args.reefer_class.map_or(0, |c| c as i32),
                train_or_route: args.train.clone().unwrap_or_default(),
            };
            let transfer = call!(client, start_transfer, request)
                .map_err(|s| CliError::from(s).with_request_id(&request_id))?;
            print_transfer(&transfer, args.gateway.json);
        }
        TransferCommand::Receive(args) => {
            let client = client(&args.gateway, &args.caller)?;
            let request_id = args.request_id.get();
            let request = network::ReceiveTransferRequest {
                request_id: request_id.clone(),
                transfer_id: args.transfer_id.clone(),
            };
            let transfer = call!(client, receive_transfer, request)
                .map_err(|s| CliError::from(s).with_request_id(&request_id))?;
            print_transfer(&transfer, args.gateway.json);
        }
        TransferCommand::Show(args) => {
            let client = client(&args.gateway, &args.caller)?;
            let request = network::GetTransferRequest {
                transfer_id: args.transfer_id.clone(),
            };
            let transfer = call!(client, get_transfer, request)?;
            print_transfer(&transfer, args.gateway.json);
        }
        TransferCommand::List(args) => {
            let client = client(&args.gateway, &args.caller)?;
            let mut transfers = Vec::new();
            let mut page_token = String::new();
            let mut more = false;
            loop {
                let request = network::ListTransfersRequest {
                    states: args.states.iter().map(|s| *s as i32).collect(),
                    source_site_id: args.source.clone().unwrap_or_default(),
                    destination_site_id: args.destination.clone().unwrap_or_default(),
                    page_size: args.limit.clamp(1, 1000) as i32,
                    page_token,
                };
                let page = call!(client, list_transfers, request)?;
                transfers.extend(page.transfers);
                if transfers.len() >= args.limit {
                    more = transfers.len() > args.limit || !page.next_page_token.is_empty();
                    transfers.truncate(args.limit);
                    break;
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            if args.gateway.json {
                print_json(&json!({
                    "transfers": transfers.iter().map(format::transfer_json).collect::<Vec<_>>(),
                    "truncated": more,
                }));
                return Ok(());
            }
            let mut table = Table::new(&[
                "TRANSFER", "STATE", "FROM", "TO", "LINES", "QUANTITY", "TRAIN", "REEFER",
                "CREATED", "ERROR",
            ]);
            for t in &transfers {
                table.row(vec![
                    t.transfer_id.clone(),
                    format::transfer_state_name(t.state),
                    t.source_site_id.clone(),
                    t.destination_site_id.clone(),
                    t.lines.len().to_string(),
                    thousands(t.lines.iter().map(|l| l.quantity).sum()),
                    or_dash(&t.train_or_route),
                    or_dash(&t.reefer_sensor_id),
                    ts_short(t.created_at.as_ref()),
                    or_dash(&t.last_error),
                ]);
            }
            if table.is_empty() {
                say!("no transfers");
            } else {
                table.print();
            }
            if more {
                say!("(more than {}; use --limit)", args.limit);
            }
        }
    }
    Ok(())
}

/// Prints a transfer as JSON or as a block with its lines.
pub fn print_transfer(t: &network::Transfer, as_json: bool) {
    if as_json {
        print_json(&format::transfer_json(t));
        return;
    }
    say!(
        "transfer {}  {}  {} -> {}",
        t.transfer_id,
        format::transfer_state_name(t.state),
        t.source_site_id,
        t.destination_site_id
    );
    if !t.train_or_route.is_empty() {
        say!("  train/route   {}", t.train_or_route);
    }
    if !t.reefer_sensor_id.is_empty() || !t.reefer_container_id.is_empty() {
        say!(
            "  reefer        container {} sensor {} ({})",
            or_dash(&t.reefer_container_id),
            or_dash(&t.reefer_sensor_id),
            format::class_name(t.reefer_temperature_class)
        );
    }
    for (label, at) in [
        ("created", &t.created_at),
        ("shipped", &t.shipped_at),
        ("received", &t.received_at),
        ("completed", &t.completed_at),
    ] {
        if at.is_some() {
            say!("  {label:<13} {}", ts_short(at.as_ref()));
        }
    }
    if !t.last_error.is_empty() {
        say!("  last error    {}", t.last_error);
    }
    let mut table = Table::new(&[
        "SKU",
        "LOT",
        "EXPIRY",
        "FROM ZONE",
        "TO ZONE",
        "QUANTITY",
        "UNIT",
    ]);
    for l in &t.lines {
        table.row(vec![
            l.sku.clone(),
            l.lot_id.clone(),
            l.lot
                .as_ref()
                .and_then(|lot| format::date_str(lot.expiry.as_ref()))
                .unwrap_or_else(|| "-".into()),
            l.source_zone_id.clone(),
            l.destination_zone_id.clone(),
            thousands(l.quantity),
            l.unit.clone(),
        ]);
    }
    for line in table.lines() {
        say!("  {line}");
    }
}

// ------------------------------------------------------------------ alarms

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
    let mut alarms = Vec::new();
    let mut failures: Vec<network::SiteError> = Vec::new();
    let mut page_token = String::new();
    let mut more = false;
    loop {
        let request = network::ListAlarmsRequest {
            site_ids: args.sites.clone(),
            states: args.states.iter().map(|s| *s as i32).collect(),
            kinds: args.kinds.iter().map(|k| *k as i32).collect(),
            active_only: args.active,
            page_size: args.limit.clamp(1, 1000) as i32,
            page_token,
        };
        let page = call!(client, list_alarms, request)?;
        alarms.extend(page.alarms);
        for f in page.failures {
            if !failures.iter().any(|g| g.site_id == f.site_id) {
                failures.push(f);
            }
        }
        if alarms.len() >= args.limit {
            more = alarms.len() > args.limit || !page.next_page_token.is_empty();
            alarms.truncate(args.limit);
            break;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
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
    let mut backoff = Duration::from_millis(200);
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
                eprintln!(
                    "gateway: {}: {}; reconnecting in {} ms",
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
            let next = match deadline {
                Some(d) => match tokio::time::timeout_at(d.into(), stream.message()).await {
                    Ok(next) => next,
                    Err(_) => break 'outer Ok(()),
                },
                None => stream.message().await,
            };
            match next {
                Ok(Some(message)) => {
                    backoff = Duration::from_millis(200);
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
                        if !super::emit(&alarm_event_line(&event.site_id, e, args.gateway.json)) {
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
                    eprintln!(
                        "stream interrupted: {}: {}; resuming in {} ms",
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

/// Codes after which a stream is resumed from its cursor.
pub fn retryable(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable
            | tonic::Code::ResourceExhausted
            | tonic::Code::Aborted
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Cancelled
    )
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
    fn transfer_lines_parse() {
        let line = parse_line("sku=citrus,lot=L1,zone=chilled-a,qty=3000,unit=kg").unwrap();
        assert_eq!(line.destination_zone_id, "chilled-a");
        assert_eq!(line.quantity, 3000);
        let line =
            parse_line("sku=s,lot=l,zone=frozen-a,to_zone=frozen-b,qty=5,unit=case-12").unwrap();
        assert_eq!(line.destination_zone_id, "frozen-b");
        assert!(
            parse_line("sku=s,lot=l")
                .unwrap_err()
                .contains("zone, qty, unit")
        );
        assert!(parse_line("sku=s,lot=l,zone=z,qty=x,unit=kg").is_err());
        assert!(parse_line("nonsense").is_err());
    }

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
