//! The network page: the corridor, each site's services and their health, today's
//! occupancy per temperature class, active alarms, transfers in transit.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use chrono::Utc;
use coldchain_ops::format;
use coldchain_proto::network::v1 as pb;
use coldchain_runtime::network::TemperatureClass;
use coldchain_runtime::{class, proto_time};
use maud::{Markup, html};

use crate::error::PageError;
use crate::svg::{self, CorridorSite};
use crate::views::{self, Level};
use crate::{Authed, Console};

/// The network page.
pub async fn page(
    State(_console): State<Arc<Console>>,
    authed: Authed,
) -> Result<Markup, PageError> {
    let caller = &authed.session.caller;
    let sites = async {
        let mut gateway = caller.gateway().await?;
        let request = caller.request(pb::ListSitesRequest {
            page_size: 1000,
            ..Default::default()
        });
        Ok::<_, PageError>(gateway.list_sites(request).await?.into_inner().sites)
    };
    let alarms = async {
        let mut gateway = caller.gateway().await?;
        let request = caller.request(pb::ListAlarmsRequest {
            active_only: true,
            page_size: 200,
            ..Default::default()
        });
        Ok::<_, PageError>(gateway.list_alarms(request).await?.into_inner())
    };
    let transfers = async {
        let mut gateway = caller.gateway().await?;
        let request = caller.request(pb::ListTransfersRequest {
            states: vec![pb::TransferState::InTransit as i32],
            page_size: 200,
            ..Default::default()
        });
        Ok::<_, PageError>(
            gateway
                .list_transfers(request)
                .await?
                .into_inner()
                .transfers,
        )
    };
    let occupancy = occupancy_today(&authed);
    let (sites, alarms, transfers, occupancy) = futures::join!(sites, alarms, transfers, occupancy);
    let sites = sites?;
    let hub_tz = caller
        .network()
        .sites
        .first()
        .map_or(chrono_tz::UTC, |s| s.time_zone);

    let mut inbound: BTreeMap<&str, usize> = BTreeMap::new();
    if let Ok(transfers) = &transfers {
        for t in transfers {
            *inbound.entry(t.destination_site_id.as_str()).or_default() += 1;
        }
    }
    let health: Vec<(Level, &str)> = sites.iter().map(site_health).collect();
    let nodes: Vec<CorridorSite<'_>> = sites
        .iter()
        .zip(&health)
        .map(|(site, (level, word))| CorridorSite {
            id: &site.site_id,
            name: &site.name,
            reached_by: &site.reached_by,
            level: *level,
            word,
            inbound: inbound.get(site.site_id.as_str()).copied().unwrap_or(0),
        })
        .collect();
    let corridor = match nodes.split_first() {
        Some((hub, rest)) => svg::corridor(hub, rest),
        None => html! {},
    };
    let body = html! {
        h1 { "The network" }
        (corridor)
        p.muted { "Solid lines: rail or road; dashed: sea. Each site shows its worst service health as a symbol and a word." }
        h2 { "Sites and their services" }
        table {
            thead { tr { th { "site" } th { "reached by" } th { "time zone" } th { "inventory" } th { "telemetry" } th { "booking" } } }
            tbody {
                @for site in &sites {
                    tr {
                        td { a href={ "/sites/" (site.site_id) } { (site.name) } br; code { (site.site_id) } }
                        td { (site.reached_by) }
                        td { (site.time_zone) }
                        @for kind in [pb::ServiceKind::Inventory, pb::ServiceKind::Telemetry, pb::ServiceKind::Booking] {
                            td { (endpoint_cell(site, kind)) }
                        }
                    }
                }
            }
        }
        h2 { "Occupancy today (" (Utc::now().with_timezone(&hub_tz).format("%Y-%m-%d")) ", pallet positions)" }
        (match &occupancy {
            Ok(table) => occupancy_table(table),
            Err(e) if e.is_denied() => views::not_for_you("Occupancy"),
            Err(e) => views::unavailable("Occupancy", &format!("{e:?}")),
        })
        h2 { "Active alarms" }
        (match &alarms {
            Ok(answer) => super::alarms::table(&authed, caller.network(), &answer.alarms, false),
            Err(e) if e.is_denied() => views::not_for_you("Alarms across the network"),
            Err(e) => views::unavailable("Alarms", &format!("{e:?}")),
        })
        h2 { "Transfers in transit" }
        (match &transfers {
            Ok(transfers) => super::transfers::table(transfers),
            Err(e) if e.is_denied() => views::not_for_you("Transfers"),
            Err(e) => views::unavailable("Transfers", &format!("{e:?}")),
        })
    };
    Ok(views::page("Network", &authed.session, &authed.csrf, body))
}

/// A site's worst service health, as a level and a word.
fn site_health(site: &pb::Site) -> (Level, &'static str) {
    let levels: Vec<Level> = site
        .endpoints
        .iter()
        .map(|e| views::health_level(e.health))
        .collect();
    if levels.is_empty() {
        (Level::Unknown, "unknown")
    } else if levels.contains(&Level::Bad) {
        (Level::Bad, "unreachable")
    } else if levels.contains(&Level::Warn) {
        (Level::Warn, "degraded")
    } else if levels.contains(&Level::Unknown) {
        (Level::Unknown, "unknown")
    } else {
        (Level::Ok, "serving")
    }
}

fn endpoint_cell(site: &pb::Site, kind: pb::ServiceKind) -> Markup {
    match site.endpoints.iter().find(|e| e.service == kind as i32) {
        None => html! { span.muted { "–" } },
        Some(e) => {
            let word = format::endpoint_health_name(e.health)
                .to_lowercase()
                .replace('_', " ");
            html! {
                (views::badge(views::health_level(e.health), &word))
                @if !e.error.is_empty() { br; small.problem { (e.error) } }
            }
        }
    }
}

/// Occupied and total pallet positions per site and class, today.
type Occupancy = BTreeMap<String, BTreeMap<TemperatureClass, (i64, i64)>>;

/// Today's occupancy from `FindSpace` (one call per class, over the hub's calendar day).
async fn occupancy_today(authed: &Authed) -> Result<Occupancy, PageError> {
    let caller = &authed.session.caller;
    let hub_tz = caller
        .network()
        .sites
        .first()
        .map_or(chrono_tz::UTC, |s| s.time_zone);
    let today = proto_time::date(Utc::now().with_timezone(&hub_tz).date_naive());
    let calls = TemperatureClass::ALL.into_iter().map(|c| async move {
        let mut gateway = caller.gateway().await?;
        let request = caller.request(pb::FindSpaceRequest {
            temperature_class: class::to_proto(c) as i32,
            pallets: 1,
            first_day: Some(today),
            last_day: Some(today),
            site_ids: Vec::new(),
        });
        let offers = gateway.find_space(request).await?.into_inner().offers;
        Ok::<_, PageError>((c, offers))
    });
    let mut out = Occupancy::new();
    for answer in futures::future::join_all(calls).await {
        let (c, offers) = answer?;
        for offer in offers {
            let cell = out
                .entry(offer.site_id.clone())
                .or_default()
                .entry(c)
                .or_default();
            cell.0 += i64::from(offer.capacity_pallets - offer.min_free);
            cell.1 += i64::from(offer.capacity_pallets);
        }
    }
    Ok(out)
}

fn occupancy_table(table: &Occupancy) -> Markup {
    html! {
        table {
            thead { tr {
                th { "site" }
                @for c in TemperatureClass::ALL { th.num { (c.as_str()) } }
            } }
            tbody {
                @for (site, classes) in table {
                    tr {
                        td { a href={ "/sites/" (site) } { (site) } }
                        @for c in TemperatureClass::ALL {
                            @match classes.get(&c) {
                                Some((used, total)) => td.num { (used) " / " (total) " (" (percent(*used, *total)) ")" },
                                None => td.num.muted { "–" },
                            }
                        }
                    }
                }
            }
        }
    }
}

fn percent(used: i64, total: i64) -> String {
    if total <= 0 {
        return "–".to_owned();
    }
    format!("{}%", used * 100 / total)
}
