//! `transfer start|receive|show|list`: corridor transfers between two sites.

use clap::{Args, Subcommand};
use coldchain_command::say;
use coldchain_proto::common::v1::TemperatureClass;
use coldchain_proto::network::v1 as network;
use serde_json::json;

use super::{CallerOpt, client};
use crate::format::{self, Table, or_dash, thousands, ts_short};
use crate::pages::Pages;
use crate::{CliError, GatewayOpts, RequestIdOpt, call, print_json, retry_with};

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
        TransferCommand::Start(args) => start(args).await,
        TransferCommand::Receive(args) => receive(args).await,
        TransferCommand::Show(args) => show(args).await,
        TransferCommand::List(args) => list(args).await,
    }
}

async fn start(args: TransferStartArgs) -> Result<(), CliError> {
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
        actor: Default::default(),
    };
    let transfer = call!(client, start_transfer, request).map_err(retry_with(&request_id))?;
    print_transfer(&transfer, args.gateway.json);
    Ok(())
}

async fn receive(args: TransferReceiveArgs) -> Result<(), CliError> {
    let client = client(&args.gateway, &args.caller)?;
    let request_id = args.request_id.get();
    let request = network::ReceiveTransferRequest {
        request_id: request_id.clone(),
        transfer_id: args.transfer_id.clone(),
        actor: Default::default(),
    };
    let transfer = call!(client, receive_transfer, request).map_err(retry_with(&request_id))?;
    print_transfer(&transfer, args.gateway.json);
    Ok(())
}

async fn show(args: TransferShowArgs) -> Result<(), CliError> {
    let client = client(&args.gateway, &args.caller)?;
    let request = network::GetTransferRequest {
        transfer_id: args.transfer_id.clone(),
    };
    let transfer = call!(client, get_transfer, request)?;
    print_transfer(&transfer, args.gateway.json);
    Ok(())
}

async fn list(args: TransferListArgs) -> Result<(), CliError> {
    let client = client(&args.gateway, &args.caller)?;
    let mut pages = Pages::new(args.limit);
    loop {
        let request = network::ListTransfersRequest {
            states: args.states.iter().map(|s| *s as i32).collect(),
            source_site_id: args.source.clone().unwrap_or_default(),
            destination_site_id: args.destination.clone().unwrap_or_default(),
            page_size: pages.page_size(),
            page_token: pages.token(),
        };
        let page = call!(client, list_transfers, request)?;
        if !pages.add(page.transfers, page.next_page_token) {
            break;
        }
    }
    let (transfers, more) = pages.finish();
    if args.gateway.json {
        print_json(&json!({
            "transfers": transfers.iter().map(format::transfer_json).collect::<Vec<_>>(),
            "truncated": more,
        }));
        return Ok(());
    }
    let mut table = Table::new(&[
        "TRANSFER",
        "STATE",
        "FROM",
        "TO",
        "LINES",
        "QUANTITY",
        "TRAIN",
        "REEFER",
        "CREATED",
        "STARTED BY",
        "ERROR",
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
            format::author_short(t.started_by.as_ref()),
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
    say!(
        "  started by    {}",
        format::author_short(t.started_by.as_ref())
    );
    if t.arrival_reported_by.is_some() {
        say!(
            "  arrival reported by {}",
            format::author_short(t.arrival_reported_by.as_ref())
        );
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
}
