//! Transfers along the corridor: the list, and one transfer with its lines, its states and
//! its reefer's temperature.

use axum::extract::Path;
use chrono::Utc;
use coldchain_ops::format;
use coldchain_proto::network::v1 as pb;
use coldchain_proto::telemetry::v1 as tel;
use coldchain_runtime::proto_time;
use maud::{Markup, html};

use crate::Authed;
use crate::error::PageError;
use crate::svg::{self, Bucket, TemperatureChart};
use crate::views::{self, Level};

/// The list of transfers (newest first, as the gateway answers).
pub async fn list(authed: Authed) -> Result<Markup, PageError> {
    let caller = &authed.session.caller;
    let mut gateway = caller.gateway().await?;
    let request = caller.request(pb::ListTransfersRequest {
        page_size: 200,
        ..Default::default()
    });
    let transfers = gateway
        .list_transfers(request)
        .await?
        .into_inner()
        .transfers;
    let body = html! {
        h1 { "Transfers" }
        (table(&transfers))
    };
    Ok(views::page(
        "Transfers",
        &authed.session,
        &authed.csrf,
        body,
    ))
}

/// A table of transfers.
pub fn table(transfers: &[pb::Transfer]) -> Markup {
    if transfers.is_empty() {
        return html! { p.muted { "None." } };
    }
    html! {
        table {
            thead { tr { th { "transfer" } th { "from" } th { "to" } th { "route" } th { "state" } th { "reefer" } th { "shipped (UTC)" } } }
            tbody { @for t in transfers { tr {
                td { a href={ "/transfers/" (t.transfer_id) } { (t.transfer_id) } }
                td { (t.source_site_id) } td { (t.destination_site_id) }
                td { (t.train_or_route) }
                td { (state_badge(t.state)) }
                td { (t.reefer_container_id) }
                td { (format::ts_short(t.shipped_at.as_ref())) }
            } } }
        }
    }
}

fn state_badge(state: i32) -> Markup {
    let level = match pb::TransferState::try_from(state) {
        Ok(pb::TransferState::Completed) => Level::Ok,
        Ok(pb::TransferState::Failed) => Level::Bad,
        Ok(_) => Level::Warn,
        Err(_) => Level::Unknown,
    };
    views::badge(
        level,
        &format::transfer_state_name(state)
            .to_lowercase()
            .replace('_', " "),
    )
}

/// One transfer.
pub async fn one(authed: Authed, Path(transfer_id): Path<String>) -> Result<Markup, PageError> {
    let caller = &authed.session.caller;
    let mut gateway = caller.gateway().await?;
    let request = caller.request(pb::GetTransferRequest {
        transfer_id: transfer_id.clone(),
    });
    let t = gateway.get_transfer(request).await?.into_inner();
    let source_zone = caller
        .site(&t.source_site_id)
        .map_or(chrono_tz::UTC, |s| s.time_zone);
    let chart = reefer_chart(&authed, &t, source_zone).await;
    let body = html! {
        h1 { "Transfer " (t.transfer_id) }
        p { (t.source_site_id) " → " (t.destination_site_id) " by " (t.train_or_route) " · " (state_badge(t.state)) }
        @if !t.last_error.is_empty() { p.problem { (t.last_error) } }
        h2 { "States" }
        table { tbody {
            tr { th { "created" } td { (views::local_time(t.created_at.as_ref(), source_zone)) } }
            tr { th { "shipped" } td { (views::local_time(t.shipped_at.as_ref(), source_zone)) } }
            tr { th { "received" } td { (format::ts_short(t.received_at.as_ref())) } }
            tr { th { "completed" } td { (format::ts_short(t.completed_at.as_ref())) } }
            tr { th { "started by" } td { (format::author_short(t.started_by.as_ref())) } }
            tr { th { "arrival reported by" } td { (format::author_short(t.arrival_reported_by.as_ref())) } }
        } }
        h2 { "Lines" }
        table {
            thead { tr { th { "sku" } th { "lot" } th { "from zone" } th { "to zone" } th.num { "quantity" } } }
            tbody { @for l in &t.lines { tr {
                td { (l.sku) } td { (l.lot_id) } td { (l.source_zone_id) } td { (l.destination_zone_id) }
                td.num { (format::thousands(l.quantity)) " " (l.unit) }
            } } }
        }
        h2 { "Reefer " (t.reefer_container_id) " (sensor " (t.reefer_sensor_id) ")" }
        (chart)
    };
    Ok(views::page(
        &format!("Transfer {transfer_id}"),
        &authed.session,
        &authed.csrf,
        body,
    ))
}

/// The reefer's temperature from shipping to arrival (or now), about a hundred buckets.
async fn reefer_chart(authed: &Authed, t: &pb::Transfer, zone: chrono_tz::Tz) -> Markup {
    if t.reefer_sensor_id.is_empty() {
        return html! { p.muted { "No reefer sensor." } };
    }
    let caller = &authed.session.caller;
    let now = Utc::now().timestamp_millis();
    let start = t
        .shipped_at
        .as_ref()
        .or(t.created_at.as_ref())
        .and_then(proto_time::millis)
        .unwrap_or(now - 24 * 3_600_000);
    let end = t
        .received_at
        .as_ref()
        .and_then(proto_time::millis)
        .unwrap_or(now)
        .max(start + 60_000);
    let bucket_ms = ((end - start) / 100).max(60_000);
    let answer = async {
        let mut telemetry = caller.telemetry(&t.source_site_id).await?;
        let request = caller.request(tel::QueryReadingsRequest {
            sensor_id: t.reefer_sensor_id.clone(),
            start_time: Some(proto_time::timestamp(start)),
            end_time: Some(proto_time::timestamp(end)),
            bucket: Some(proto_time::duration_of_millis(bucket_ms)),
        });
        Ok::<_, PageError>(telemetry.query_readings(request).await?.into_inner())
    }
    .await;
    let readings = match answer {
        Ok(readings) => readings,
        Err(e) if e.is_denied() => return views::not_for_you("The reefer's readings"),
        Err(e) => return views::unavailable("The reefer's readings", &format!("{e:?}")),
    };
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
    let limits = coldchain_runtime::class::from_proto(
        coldchain_proto::common::v1::TemperatureClass::try_from(t.reefer_temperature_class)
            .unwrap_or_default(),
    )
    .map(|c| match c.limits() {
        // An open end (FROZEN has no lower limit) is drawn 12 °C beyond the other.
        (low, Some(high)) => (low.unwrap_or(high - 12.0), high),
        (Some(low), None) => (low, low + 12.0),
        (None, None) => (-30.0, 30.0),
    });
    html! {
        (svg::temperature(&TemperatureChart {
            from_ms: start,
            to_ms: end,
            bucket_ms,
            buckets: &buckets,
            limits,
            alarms: &[],
            zone,
        }))
        details {
            summary { "The numbers (" (buckets.len()) " buckets)" }
            table {
                thead { tr { th { "bucket start" } th.num { "min °C" } th.num { "mean °C" } th.num { "max °C" } } }
                tbody { @for b in &readings.buckets { tr {
                    td { (views::local_time(b.start_time.as_ref(), zone)) }
                    td.num { (format!("{:.2}", b.min_celsius)) }
                    td.num { (format!("{:.2}", b.mean_celsius)) }
                    td.num { (format!("{:.2}", b.max_celsius)) }
                } } }
            }
        }
    }
}
