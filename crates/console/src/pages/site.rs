//! The site page: zones, an occupancy heat map for the next 14 days, stock by zone, holds,
//! lots expiring within 30 days, and sensors with their last reading and a 24 h sparkline.
//!
//! Each section is read from the site's own services as the person logged in; a section
//! the services refuse is left out, and a page of which they refuse everything is refused.

use std::collections::BTreeMap;

use axum::extract::Path;
use chrono::{Days, NaiveDate, Utc};
use coldchain_ops::format;
use coldchain_proto::booking::v1 as book;
use coldchain_proto::inventory::v1 as inv;
use coldchain_proto::telemetry::v1 as tel;
use coldchain_runtime::network::SiteConfig;
use coldchain_runtime::proto_time;
use maud::{Markup, html};

use crate::Authed;
use crate::error::PageError;
use crate::svg;
use crate::views;

/// Days of the heat map.
const HEAT_DAYS: u64 = 14;
/// Days ahead in which an expiring lot is listed.
const EXPIRY_DAYS: u64 = 30;

/// One zone-day of the heat map.
struct Cell {
    held: i32,
    confirmed: i32,
    checked_in: i32,
    capacity: i32,
}

/// The site page.
pub async fn page(authed: Authed, Path(site_id): Path<String>) -> Result<Markup, PageError> {
    let caller = &authed.session.caller;
    let site = caller.site(&site_id)?.clone();
    let today = Utc::now().with_timezone(&site.time_zone).date_naive();
    let (heat, stock, sensors) = futures::join!(
        heat_map(&authed, &site, today),
        stock(&authed, &site_id),
        sensors(&authed, &site),
    );
    let refusals = [
        heat.as_ref().err(),
        stock.as_ref().err(),
        sensors.as_ref().err(),
    ];
    if refusals.iter().all(|e| e.is_some_and(PageError::is_denied)) {
        return Err(heat.err().unwrap_or(PageError::Denied(format!(
            "your credential may not read {site_id}"
        ))));
    }
    let expiry_limit = today + Days::new(EXPIRY_DAYS);
    let body = html! {
        h1 { (site.name) }
        p { (site.location) " · reached by " (site.reached_by) " · time zone " (site.time_zone.name()) }
        h2 { "Zones" }
        table {
            thead { tr { th { "zone" } th { "class" } th.num { "limits" } th.num { "capacity (pallets)" } } }
            tbody { @for z in &site.zones { tr {
                td { (z.id) } td { (z.class.as_str()) }
                td.num { (views::celsius(z.min_celsius)) " to " (views::celsius(z.max_celsius)) }
                td.num { (z.capacity_pallets) }
            } } }
        }
        h2 { "Occupancy, next " (HEAT_DAYS) " days (pallets booked of capacity; H held, C confirmed, I checked in)" }
        (match &heat {
            Ok(cells) => heat_table(&site, today, cells),
            Err(e) if e.is_denied() => views::not_for_you("Occupancy"),
            Err(e) => views::unavailable("Occupancy", &format!("{e:?}")),
        })
        @match &stock {
            Ok(levels) => {
                h2 { "Stock by zone" }
                (stock_by_zone(levels))
                h2 { "Holds (quarantined stock)" }
                (holds(levels))
                h2 { "Lots expiring by " (expiry_limit) }
                (expiring(levels, expiry_limit))
            }
            Err(e) if e.is_denied() => { h2 { "Stock" } (views::not_for_you("Stock")) }
            Err(e) => { h2 { "Stock" } (views::unavailable("Stock", &format!("{e:?}"))) }
        }
        h2 { "Sensors" }
        (match &sensors {
            Ok(list) => sensor_table(&site, list),
            Err(e) if e.is_denied() => views::not_for_you("Sensors"),
            Err(e) => views::unavailable("Sensors", &format!("{e:?}")),
        })
    };
    Ok(views::page(&site.name, &authed.session, &authed.csrf, body))
}

/// Per zone and day: held, confirmed, checked in, capacity.
async fn heat_map(
    authed: &Authed,
    site: &SiteConfig,
    today: NaiveDate,
) -> Result<BTreeMap<(String, NaiveDate), Cell>, PageError> {
    let caller = &authed.session.caller;
    let last = today + Days::new(HEAT_DAYS - 1);
    let calls = site.zones.iter().map(|zone| async move {
        let mut booking = caller.booking(&site.id).await?;
        let request = caller.request(book::GetAvailabilityRequest {
            space: Some(book::get_availability_request::Space::ZoneId(
                zone.id.clone(),
            )),
            first_day: Some(proto_time::date(today)),
            last_day: Some(proto_time::date(last)),
        });
        Ok::<_, PageError>(booking.get_availability(request).await?.into_inner().days)
    });
    let mut cells = BTreeMap::new();
    for days in futures::future::join_all(calls).await {
        for day in days? {
            let Some(date) = day
                .date
                .as_ref()
                .and_then(|d| proto_time::naive_date(d).ok())
            else {
                continue;
            };
            cells.insert(
                (day.zone_id.clone(), date),
                Cell {
                    held: day.held,
                    confirmed: day.confirmed,
                    checked_in: day.checked_in,
                    capacity: day.capacity,
                },
            );
        }
    }
    Ok(cells)
}

fn heat_table(
    site: &SiteConfig,
    today: NaiveDate,
    cells: &BTreeMap<(String, NaiveDate), Cell>,
) -> Markup {
    let days: Vec<NaiveDate> = (0..HEAT_DAYS).map(|i| today + Days::new(i)).collect();
    html! {
        table.heatmap {
            thead { tr {
                th { "zone" }
                @for d in &days { th { (d.format("%m-%d")) } }
            } }
            tbody { @for z in &site.zones { tr {
                th { (z.id) }
                @for d in &days {
                    @match cells.get(&(z.id.clone(), *d)) {
                        Some(c) => {
                            @let used = c.held + c.confirmed + c.checked_in;
                            td class={ "heat heat-" (shade(used, c.capacity)) }
                                id={ "heat-" (z.id) "-" (d) }
                                data-held=(c.held) data-confirmed=(c.confirmed) data-checked-in=(c.checked_in)
                                title={ (z.id) " " (d) ": " (c.held) " held, " (c.confirmed) " confirmed, " (c.checked_in) " checked in of " (c.capacity) } {
                                (used) br; small { "H" (c.held) " C" (c.confirmed) " I" (c.checked_in) }
                            }
                        }
                        None => td.heat.muted { "–" },
                    }
                }
            } } }
        }
        details {
            summary { "Shading" }
            p { "Darker is fuller: six steps from empty to full. The numbers in each cell carry the same information." }
        }
    }
}

/// 0 (empty) to 5 (full).
fn shade(used: i32, capacity: i32) -> i32 {
    if capacity <= 0 || used <= 0 {
        return 0;
    }
    (used * 5 / capacity).clamp(1, 5)
}

/// Every stock level of the site.
async fn stock(authed: &Authed, site: &str) -> Result<Vec<inv::StockLevel>, PageError> {
    let caller = &authed.session.caller;
    let mut inventory = caller.inventory(site).await?;
    let mut levels = Vec::new();
    let mut page_token = String::new();
    // A bounded number of pages: the page is for people, not an export.
    for _ in 0..10 {
        let request = caller.request(inv::ListStockRequest {
            page_size: 1000,
            page_token: page_token.clone(),
            ..Default::default()
        });
        let answer = inventory.list_stock(request).await?.into_inner();
        levels.extend(answer.levels);
        if answer.next_page_token.is_empty() {
            break;
        }
        page_token = answer.next_page_token;
    }
    Ok(levels)
}

fn stock_by_zone(levels: &[inv::StockLevel]) -> Markup {
    let mut totals: BTreeMap<(&str, &str), (i64, i64, i64, i64)> = BTreeMap::new();
    for l in levels {
        let t = totals
            .entry((l.zone_id.as_str(), l.unit.as_str()))
            .or_default();
        t.0 += l.on_hand;
        t.1 += l.allocated;
        t.2 += l.held;
        t.3 += l.available;
    }
    if totals.is_empty() {
        return html! { p.muted { "No stock." } };
    }
    html! {
        table {
            thead { tr { th { "zone" } th { "unit" } th.num { "on hand" } th.num { "allocated" } th.num { "held" } th.num { "available" } } }
            tbody { @for ((zone, unit), t) in &totals { tr {
                td { (zone) } td { (unit) }
                td.num { (format::thousands(t.0)) } td.num { (format::thousands(t.1)) }
                td.num { (format::thousands(t.2)) } td.num { (format::thousands(t.3)) }
            } } }
        }
    }
}

fn holds(levels: &[inv::StockLevel]) -> Markup {
    let held: Vec<&inv::StockLevel> = levels.iter().filter(|l| l.held > 0).collect();
    if held.is_empty() {
        return html! { p.muted { "Nothing is held." } };
    }
    html! {
        table {
            thead { tr { th { "zone" } th { "sku" } th { "lot" } th.num { "held" } } }
            tbody { @for l in held { tr {
                td { (l.zone_id) } td { (l.sku) }
                td { (l.lot.as_ref().map_or("–", |lot| lot.lot_id.as_str())) }
                td.num { (format::thousands(l.held)) " " (l.unit) }
            } } }
        }
    }
}

fn expiring(levels: &[inv::StockLevel], limit: NaiveDate) -> Markup {
    let mut soon: Vec<(NaiveDate, &inv::StockLevel)> = levels
        .iter()
        .filter(|l| l.on_hand > 0)
        .filter_map(|l| {
            let expiry = l.lot.as_ref()?.expiry.as_ref()?;
            let day = proto_time::naive_date(expiry).ok()?;
            (day <= limit).then_some((day, l))
        })
        .collect();
    soon.sort_by_key(|(day, _)| *day);
    if soon.is_empty() {
        return html! { p.muted { "None." } };
    }
    html! {
        table {
            thead { tr { th { "expires" } th { "zone" } th { "sku" } th { "lot" } th.num { "on hand" } } }
            tbody { @for (day, l) in soon { tr {
                td { (day) @if l.expired { " " (views::badge(views::Level::Bad, "expired")) } }
                td { (l.zone_id) } td { (l.sku) }
                td { (l.lot.as_ref().map_or("–", |lot| lot.lot_id.as_str())) }
                td.num { (format::thousands(l.on_hand)) " " (l.unit) }
            } } }
        }
    }
}

/// The site's sensors, each with its last 24 h in hourly means.
async fn sensors(
    authed: &Authed,
    site: &SiteConfig,
) -> Result<Vec<(tel::Sensor, Vec<f64>)>, PageError> {
    let caller = &authed.session.caller;
    let mut telemetry = caller.telemetry(&site.id).await?;
    let request = caller.request(tel::ListSensorsRequest {
        page_size: 1000,
        ..Default::default()
    });
    let list = telemetry.list_sensors(request).await?.into_inner().sensors;
    let now = Utc::now().timestamp_millis();
    let calls = list.into_iter().map(|sensor| {
        let mut telemetry = telemetry.clone();
        async move {
            let request = caller.request(tel::QueryReadingsRequest {
                sensor_id: sensor.sensor_id.clone(),
                start_time: Some(proto_time::timestamp(now - 24 * 3_600_000)),
                end_time: Some(proto_time::timestamp(now)),
                bucket: Some(proto_time::duration_of_millis(3_600_000)),
            });
            let means = match telemetry.query_readings(request).await {
                Ok(answer) => answer
                    .into_inner()
                    .buckets
                    .iter()
                    .map(|b| b.mean_celsius)
                    .collect(),
                Err(_) => Vec::new(),
            };
            (sensor, means)
        }
    });
    Ok(futures::future::join_all(calls).await)
}

fn sensor_table(site: &SiteConfig, sensors: &[(tel::Sensor, Vec<f64>)]) -> Markup {
    if sensors.is_empty() {
        return html! { p.muted { "No sensors registered." } };
    }
    html! {
        table {
            thead { tr { th { "sensor" } th { "where" } th { "status" } th.num { "last reading" } th { "at (site time)" } th { "last 24 h" } } }
            tbody { @for (s, means) in sensors { tr {
                td { a href={ "/sites/" (site.id) "/sensors/" (s.sensor_id) } { (s.sensor_id) } }
                td { @match &s.binding {
                    Some(tel::sensor::Binding::ZoneId(z)) => { "zone " (z) }
                    Some(tel::sensor::Binding::Reefer(r)) => { "reefer " (r.container_id) }
                    None => { "–" }
                } }
                td { (views::badge(views::sensor_level(s.status), &format::sensor_status_name(s.status).to_lowercase().replace('_', " "))) }
                td.num { @if let Some(r) = &s.last_reading { (views::celsius(r.celsius)) } @else { "–" } }
                td { (views::local_time(s.last_reading.as_ref().and_then(|r| r.time.as_ref()), site.time_zone)) }
                td { (svg::sparkline(means, super::sensor::limits(s, site))) }
            } } }
        }
    }
}
