//! The sensor page: temperature over 24 h, 7 d or 30 d from `QueryReadings` rollups, the
//! allowed range as a band, excursions hatched, alarm markers, the window's Mean Kinetic
//! Temperature, and the numbers behind the chart in a table.

use axum::extract::{Path, Query};
use chrono::Utc;
use coldchain_ops::format;
use coldchain_proto::telemetry::v1 as tel;
use coldchain_runtime::proto_time;
use maud::{Markup, html};
use serde::Deserialize;

use crate::Authed;
use crate::error::PageError;
use crate::svg::{self, Bucket, TemperatureChart};
use crate::views;

/// A chart window: its name, length and bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// `24h`, `7d` or `30d`.
    pub name: &'static str,
    /// Its length, ms.
    pub span_ms: i64,
    /// The rollup bucket, ms.
    pub bucket_ms: i64,
}

const HOUR: i64 = 3_600_000;

/// The windows the page offers: about a hundred buckets each.
pub const WINDOWS: [Window; 3] = [
    Window {
        name: "24h",
        span_ms: 24 * HOUR,
        bucket_ms: HOUR / 4,
    },
    Window {
        name: "7d",
        span_ms: 7 * 24 * HOUR,
        bucket_ms: HOUR,
    },
    Window {
        name: "30d",
        span_ms: 30 * 24 * HOUR,
        bucket_ms: 6 * HOUR,
    },
];

/// The query of the page.
#[derive(Deserialize)]
pub struct SensorQuery {
    window: Option<String>,
}

/// The sensor page.
pub async fn page(
    authed: Authed,
    Path((site_id, sensor_id)): Path<(String, String)>,
    Query(query): Query<SensorQuery>,
) -> Result<Markup, PageError> {
    let wanted = query.window.as_deref().unwrap_or("24h");
    let window = WINDOWS
        .into_iter()
        .find(|w| w.name == wanted)
        .ok_or_else(|| {
            PageError::BadInput(format!("window must be 24h, 7d or 30d, got {wanted:?}"))
        })?;
    let caller = &authed.session.caller;
    let site = caller.site(&site_id)?.clone();
    let sensor = find_sensor(&authed, &site_id, &sensor_id).await?;
    let to_ms = Utc::now().timestamp_millis();
    let from_ms = to_ms - window.span_ms;
    let mut telemetry = caller.telemetry(&site_id).await?;
    let readings = {
        let mut client = telemetry.clone();
        let request = caller.request(tel::QueryReadingsRequest {
            sensor_id: sensor_id.clone(),
            start_time: Some(proto_time::timestamp(from_ms)),
            end_time: Some(proto_time::timestamp(to_ms)),
            bucket: Some(proto_time::duration_of_millis(window.bucket_ms)),
        });
        async move { client.query_readings(request).await }
    };
    let mkt = {
        let mut client = telemetry.clone();
        let request = caller.request(tel::GetMeanKineticTemperatureRequest {
            sensor_id: sensor_id.clone(),
            start_time: Some(proto_time::timestamp(from_ms)),
            end_time: Some(proto_time::timestamp(to_ms)),
            activation_energy_kj_per_mol: None,
        });
        async move { client.get_mean_kinetic_temperature(request).await }
    };
    let alarms_request = caller.request(tel::ListAlarmsRequest {
        sensor_id: sensor_id.clone(),
        page_size: 200,
        ..Default::default()
    });
    let alarms = telemetry.list_alarms(alarms_request);
    let (readings, mkt, alarms) = futures::join!(readings, mkt, alarms);
    let readings = readings?.into_inner();
    let alarms = alarms?.into_inner().alarms;
    let buckets: Vec<Bucket> = readings
        .buckets
        .iter()
        .filter_map(|b| {
            Some(Bucket {
                start_ms: proto_time::millis(b.start_time.as_ref()?)?,
                min: b.min_celsius,
                mean: b.mean_celsius,
                max: b.max_celsius,
            })
        })
        .collect();
    let limits = limits(&sensor, &site);
    let markers: Vec<(i64, String)> = alarms
        .iter()
        .filter_map(|a| {
            let at = proto_time::millis(a.started_at.as_ref()?)?;
            (at >= from_ms).then(|| {
                (
                    at,
                    format!(
                        "{} alarm {}, peak {:.1} °C",
                        format::alarm_kind_name(a.kind)
                            .to_lowercase()
                            .replace('_', " "),
                        a.alarm_id,
                        a.peak_celsius
                    ),
                )
            })
        })
        .collect();
    let chart = svg::temperature(&TemperatureChart {
        from_ms,
        to_ms,
        bucket_ms: window.bucket_ms,
        buckets: &buckets,
        limits,
        alarms: &markers,
        zone: site.time_zone,
    });
    let zone = site.time_zone;
    let mkt = match mkt {
        Ok(answer) => {
            let answer = answer.into_inner();
            html! { (views::celsius(answer.mkt_celsius)) " over " (answer.reading_count) " readings" }
        }
        Err(status) => html! { span.muted { "– (" (status.message()) ")" } },
    };
    let body = html! {
        h1 { "Sensor " (sensor_id) }
        p {
            "Site " a href={ "/sites/" (site_id) } { (site.name) } " · "
            @match &sensor.binding {
                Some(tel::sensor::Binding::ZoneId(zone_id)) => { "zone " (zone_id) }
                Some(tel::sensor::Binding::Reefer(r)) => { "reefer " (r.container_id) " on " (r.train_or_route) }
                None => { "unbound" }
            }
            " · " (views::badge(views::sensor_level(sensor.status), &format::sensor_status_name(sensor.status).to_lowercase().replace('_', " ")))
        }
        p {
            "Window: "
            @for w in WINDOWS {
                @if w == window { strong { (w.name) } " " }
                @else { a href={ "?window=" (w.name) } { (w.name) } " " }
            }
        }
        p {
            "Mean Kinetic Temperature of the window: " strong { (mkt) }
            @if let Some((lo, hi)) = limits { " · allowed " (views::celsius(lo)) " to " (views::celsius(hi)) }
        }
        (chart)
        p.muted { "Band: the allowed range. Hatched: buckets outside it. Grey: each bucket's lowest to highest reading; line: its mean. Triangles: alarms." }
        details {
            summary { "The numbers (" (buckets.len()) " buckets of " (bucket_label(window.bucket_ms)) ", times in " (zone.name()) ")" }
            table.readings {
                thead { tr { th { "bucket start" } th.num { "min °C" } th.num { "mean °C" } th.num { "max °C" } th.num { "readings" } } }
                tbody {
                    @for b in &readings.buckets {
                        tr {
                            td { (views::local_time(b.start_time.as_ref(), zone)) }
                            td.num { (format!("{:.2}", b.min_celsius)) }
                            td.num { (format!("{:.2}", b.mean_celsius)) }
                            td.num { (format!("{:.2}", b.max_celsius)) }
                            td.num { (b.count) }
                        }
                    }
                }
            }
        }
        @if !readings.unreadable_ranges.is_empty() {
            p.problem { "Some readings could not be read: " @for r in &readings.unreadable_ranges { (r.message) "; " } }
        }
        h2 { "Alarms of this sensor" }
        (super::alarms::table(&authed, caller.network(), &alarms, true))
    };
    Ok(views::page(
        &format!("Sensor {sensor_id}"),
        &authed.session,
        &authed.csrf,
        body,
    ))
}

/// A sensor of a site's telemetry service, by id.
pub async fn find_sensor(
    authed: &Authed,
    site: &str,
    sensor_id: &str,
) -> Result<tel::Sensor, PageError> {
    let caller = &authed.session.caller;
    let mut telemetry = caller.telemetry(site).await?;
    let mut page_token = String::new();
    loop {
        let request = caller.request(tel::ListSensorsRequest {
            page_size: 1000,
            page_token: page_token.clone(),
            ..Default::default()
        });
        let answer = telemetry.list_sensors(request).await?.into_inner();
        if let Some(sensor) = answer
            .sensors
            .into_iter()
            .find(|s| s.sensor_id == sensor_id)
        {
            return Ok(sensor);
        }
        if answer.next_page_token.is_empty() {
            return Err(PageError::NotFound(format!(
                "no sensor {sensor_id:?} at {site}"
            )));
        }
        page_token = answer.next_page_token;
    }
}

/// The sensor's allowed range: its own profile's, else its zone's.
pub fn limits(
    sensor: &tel::Sensor,
    site: &coldchain_runtime::network::SiteConfig,
) -> Option<(f64, f64)> {
    let zone = match &sensor.binding {
        Some(tel::sensor::Binding::ZoneId(zone)) => site.zone(zone),
        _ => None,
    };
    let profile = sensor.profile.as_ref();
    let low = profile
        .and_then(|p| p.min_celsius)
        .or(zone.map(|z| z.min_celsius));
    let high = profile
        .and_then(|p| p.max_celsius)
        .or(zone.map(|z| z.max_celsius));
    match (low, high) {
        (Some(lo), Some(hi)) => Some((lo, hi)),
        _ => None,
    }
}

fn bucket_label(ms: i64) -> String {
    if ms % HOUR == 0 {
        format!("{} h", ms / HOUR)
    } else {
        format!("{} min", ms / 60_000)
    }
}
