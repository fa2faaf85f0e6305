//! `space`: free pallet space of a class for a day range across the sites.

use clap::Args;
use coldchain_command::say;
use coldchain_proto::common::v1::TemperatureClass;
use coldchain_proto::network::v1 as network;
use serde_json::{Value, json};

use super::{CallerOpt, client, warn_failures};
use crate::format::{self, Table, thousands};
use crate::{CliError, GatewayOpts, call, print_json};

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
