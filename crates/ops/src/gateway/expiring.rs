//! `expiring`: the lots that expire within a window across the sites, earliest first.

use clap::Args;
use coldchain_command::say;
use coldchain_proto::common::v1::TemperatureClass;
use coldchain_proto::network::v1 as network;
use serde_json::{Value, json};

use super::{CallerOpt, client, warn_failures};
use crate::format::{self, Table, thousands};
use crate::{CliError, GatewayOpts, call, print_json};

#[derive(Args)]
pub struct ExpiringArgs {
    #[command(flatten)]
    gateway: GatewayOpts,
    #[command(flatten)]
    caller: CallerOpt,
    /// The window in days from each site's local today (expired lots included).
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    within: i32,
    /// Only zones of this temperature class (repeat for more).
    #[arg(long = "class", value_name = "CLASS", value_parser = format::parse_class)]
    classes: Vec<TemperatureClass>,
    /// Only this site (repeat for more).
    #[arg(long = "site", value_name = "ID")]
    sites: Vec<String>,
    /// At most this many rows (1 to 1000).
    #[arg(long, value_name = "N", default_value_t = 100)]
    limit: i32,
}

pub async fn expiring(args: ExpiringArgs) -> Result<(), CliError> {
    let client = client(&args.gateway, &args.caller)?;
    let request = network::NetworkListExpiringRequest {
        within_days: args.within,
        site_ids: args.sites.clone(),
        temperature_classes: args.classes.iter().map(|c| *c as i32).collect(),
        limit: args.limit,
    };
    let answer = call!(client, list_expiring, request)?;
    if args.gateway.json {
        print_json(&expiring_json(&answer));
        return Ok(());
    }
    warn_failures(&answer.failures);
    let mut table = Table::new(&[
        "EXPIRY", "SITE", "ZONE", "CLASS", "SKU", "LOT", "ON HAND", "HELD", "UNIT", "EXPIRED",
    ]);
    for row in &answer.levels {
        let Some(level) = &row.level else { continue };
        let lot = level.lot.as_ref();
        table.row(vec![
            lot.and_then(|l| format::date_str(l.expiry.as_ref()))
                .unwrap_or_else(|| "-".into()),
            row.site_id.clone(),
            level.zone_id.clone(),
            format::class_name(row.temperature_class),
            level.sku.clone(),
            lot.map(|l| l.lot_id.clone()).unwrap_or_default(),
            thousands(level.on_hand),
            thousands(level.held),
            level.unit.clone(),
            if level.expired {
                "yes".into()
            } else {
                String::new()
            },
        ]);
    }
    say!("lots expiring within {} days", args.within);
    if table.is_empty() {
        say!("(none at the sites that answered)");
    } else {
        table.print();
    }
    if answer.truncated {
        say!(
            "(more than {} rows: raise --limit or narrow the query)",
            answer.levels.len()
        );
    }
    Ok(())
}

/// The JSON shape of a ListExpiring answer.
pub fn expiring_json(answer: &network::NetworkListExpiringResponse) -> Value {
    json!({
        "levels": answer.levels.iter().filter_map(|row| {
            let level = row.level.as_ref()?;
            Some(json!({
                "site_id": row.site_id,
                "temperature_class": format::class_name(row.temperature_class),
                "zone_id": level.zone_id,
                "sku": level.sku,
                "lot": format::lot_json(level.lot.as_ref()),
                "unit": level.unit,
                "on_hand": level.on_hand,
                "allocated": level.allocated,
                "held": level.held,
                "available": level.available,
                "expired": level.expired,
            }))
        }).collect::<Vec<_>>(),
        "truncated": answer.truncated,
        "failures": answer.failures.iter().map(format::site_error_json).collect::<Vec<_>>(),
    })
}
