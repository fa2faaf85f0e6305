//! Act 9: the day's figures across the network, through the gateway: the navel oranges'
//! stock at both ends and in transit, and the active alarms.

use coldchain_ops::call;
use coldchain_proto::network::v1 as network;

use crate::day::Day;
use crate::outcome::{DemoError, StockOutcome, step_err};
use crate::{PARK, VIENTIANE};

/// The Mayang navel oranges across the network (gateway FindStock).
pub(crate) async fn stock(day: &Day<'_>) -> Result<StockOutcome, DemoError> {
    let step = "find stock";
    let request = network::FindStockRequest {
        sku: "citrus-navel-mayang".into(),
        temperature_class: 0,
        min_quantity: 0,
        site_ids: Vec::new(),
    };
    let found = call!(day.gateway, find_stock, request).map_err(step_err(step))?;
    let mut stock = StockOutcome {
        sku: found.sku.clone(),
        unit: "kg".into(),
        sites_answered: found.sites.len(),
        site_failures: found
            .failures
            .iter()
            .map(|f| format!("{}: {}: {}", f.site_id, f.code, f.message))
            .collect(),
        ..StockOutcome::default()
    };
    for site in &found.sites {
        let on_hand: i64 = site.zones.iter().map(|z| z.on_hand).sum();
        let held: i64 = site.zones.iter().map(|z| z.held).sum();
        if site.site_id == PARK {
            stock.park_on_hand = on_hand;
        } else if site.site_id == VIENTIANE {
            stock.vientiane_on_hand = on_hand;
            stock.vientiane_held = held;
        }
    }
    stock.in_transit = found.in_transit.iter().map(|t| t.quantity).sum();
    Ok(stock)
}

/// How many alarms are active across the network.
pub(crate) async fn active_alarms(day: &Day<'_>) -> Result<usize, DemoError> {
    let step = "network alarms";
    let request = network::ListAlarmsRequest {
        active_only: true,
        page_size: 1000,
        ..Default::default()
    };
    let active = call!(day.gateway, list_alarms, request).map_err(step_err(step))?;
    Ok(active.alarms.len())
}
