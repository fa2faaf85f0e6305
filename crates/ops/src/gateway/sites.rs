//! `sites`: every site with its zones and the live health of its services.

use clap::Args;
use coldchain_command::say;
use coldchain_proto::network::v1 as network;
use coldchain_proto::network::v1::network_service_client::NetworkServiceClient;
use coldchain_runtime::client::Channel;
use serde_json::{Value, json};

use super::{CallerOpt, client};
use crate::format::{self, Table, thousands};
use crate::{CliError, GatewayOpts, call, print_json};

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
