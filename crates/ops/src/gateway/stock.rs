//! `stock`: a sku's stock across the sites, per zone, and in transit.

use clap::Args;
use coldchain_command::say;
use coldchain_proto::common::v1::TemperatureClass;
use coldchain_proto::network::v1 as network;
use serde_json::{Value, json};

use super::{CallerOpt, client, warn_failures};
use crate::format::{self, Table, or_dash, thousands, ts_short};
use crate::{CliError, GatewayOpts, call, print_json};

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
