//! The alarms page: active and recent alarms across the network (or of one's own site),
//! acknowledgement with a required note, and new alarms live over server-sent events.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Form;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use coldchain_ops::format;
use coldchain_proto::network::v1 as pb;
use coldchain_proto::telemetry::v1 as tel;
use coldchain_runtime::network::NetworkConfig;
use futures::{Stream, StreamExt};
use maud::{Markup, html};
use serde::Deserialize;

use crate::error::PageError;
use crate::views::{self, Level};
use crate::{Authed, Console};

/// How many alarms the page lists.
const RECENT: i32 = 200;

/// The alarms page.
pub async fn page(authed: Authed) -> Result<Markup, PageError> {
    let caller = &authed.session.caller;
    let mut gateway = caller.gateway().await?;
    let request = caller.request(pb::ListAlarmsRequest {
        page_size: RECENT,
        ..Default::default()
    });
    // The network's alarms through the gateway; a site-scoped credential that may not ask
    // the gateway sees its own site's, from its telemetry service.
    let (alarms, failures) = match gateway.list_alarms(request).await {
        Ok(answer) => {
            let answer = answer.into_inner();
            (answer.alarms, answer.failures)
        }
        Err(status) if status.code() == tonic::Code::PermissionDenied => {
            let Some(site) = authed.session.own_site() else {
                return Err(status.into());
            };
            let mut telemetry = caller.telemetry(site).await?;
            let request = caller.request(tel::ListAlarmsRequest {
                page_size: RECENT,
                ..Default::default()
            });
            (
                telemetry.list_alarms(request).await?.into_inner().alarms,
                Vec::new(),
            )
        }
        Err(status) => return Err(status.into()),
    };
    let (active, recent): (Vec<_>, Vec<_>) = alarms
        .into_iter()
        .partition(|a| views::alarm_active(a.state));
    let network = caller.network();
    let body = html! {
        h1 { "Alarms" }
        ul #live aria-live="polite" {}
        @for failure in &failures {
            p.problem { (views::badge(Level::Bad, "unreachable")) " " (failure.site_id) ": " (failure.message) }
        }
        h2 { "Active (" (active.len()) ")" }
        (table(&authed, network, &active, true))
        h2 { "Recent, cleared (" (recent.len()) ")" }
        (table(&authed, network, &recent, true))
        script src="/static/alarms.js" defer {}
    };
    Ok(views::page("Alarms", &authed.session, &authed.csrf, body))
}

/// A table of alarms, times in each site's own zone; with `forms`, an acknowledgement form
/// on each unacknowledged alarm for those who may acknowledge.
pub fn table(
    authed: &Authed,
    network: &NetworkConfig,
    alarms: &[tel::Alarm],
    forms: bool,
) -> Markup {
    if alarms.is_empty() {
        return html! { p.muted { "None." } };
    }
    let may_ack = forms && authed.session.may_acknowledge();
    html! {
        table.alarms {
            thead { tr {
                th { "site" } th { "sensor" } th { "zone / reefer" } th { "kind" } th { "state" }
                th { "started (site time)" } th.num { "duration" } th.num { "peak" } th.num { "limit" }
                th { "acknowledgement" }
            } }
            tbody {
                @for a in alarms {
                    @let zone = network.site(&a.site_id).map_or(chrono_tz::UTC, |s| s.time_zone);
                    tr id={ "alarm-" (a.alarm_id) } {
                        td { a href={ "/sites/" (a.site_id) } { (a.site_id) } }
                        td { a href={ "/sites/" (a.site_id) "/sensors/" (a.sensor_id) } { (a.sensor_id) } }
                        td {
                            @if let Some(r) = &a.reefer { "reefer " (r.container_id) " · " (r.train_or_route) }
                            @else { (a.zone_id) }
                        }
                        td { (format::alarm_kind_name(a.kind).to_lowercase().replace('_', " ")) }
                        td { (views::badge(views::alarm_level(a.state), &format::alarm_state_name(a.state).to_lowercase().replace('_', " "))) }
                        td { (views::local_time(a.started_at.as_ref(), zone)) }
                        td.num.duration { (views::duration(a.duration.as_ref())) }
                        td.num.peak {
                            @if a.kind == tel::AlarmKind::SensorOffline as i32 { "–" }
                            @else { (views::celsius(a.peak_celsius)) }
                        }
                        td.num {
                            @if a.kind == tel::AlarmKind::SensorOffline as i32 { "–" }
                            @else { (views::celsius(a.limit_celsius)) }
                        }
                        td {
                            @if !a.acknowledged_by.is_empty() {
                                (a.acknowledged_by) ", " (views::local_time(a.acknowledged_at.as_ref(), zone))
                                @if !a.ack_note.is_empty() { br; q { (a.ack_note) } }
                            } @else if may_ack {
                                form.inline method="post" action={ "/sites/" (a.site_id) "/alarms/" (a.alarm_id) "/acknowledge" } {
                                    input type="hidden" name="csrf" value=(authed.csrf);
                                    input type="text" name="note" required placeholder="note (required)" aria-label="note";
                                    button type="submit" { "Acknowledge" }
                                }
                            } @else {
                                span.muted { "not acknowledged" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What the acknowledgement form sends.
#[derive(Deserialize)]
pub struct AckForm {
    csrf: Option<String>,
    #[serde(default)]
    note: String,
}

/// Acknowledges an alarm at its site's telemetry service, as the person logged in.
pub async fn acknowledge(
    State(console): State<Arc<Console>>,
    authed: Authed,
    Path((site, alarm)): Path<(String, String)>,
    Form(form): Form<AckForm>,
) -> Result<Response, PageError> {
    authed.check_form(&console, form.csrf.as_deref())?;
    let note = form.note.trim();
    if note.is_empty() {
        return Err(PageError::BadInput(
            "an acknowledgement needs a note: say what was done".to_owned(),
        ));
    }
    let caller = &authed.session.caller;
    let mut telemetry = caller.telemetry(&site).await?;
    let request = caller.request(tel::AcknowledgeAlarmRequest {
        request_id: coldchain_ops::new_request_id(),
        alarm_id: alarm,
        acknowledged_by: authed.session.credential.clone(),
        note: note.to_owned(),
    });
    telemetry.acknowledge_alarm(request).await?;
    Ok(Redirect::to("/alarms").into_response())
}

/// Alarm events as they happen, one line of text each (the gateway's feed, as the person
/// logged in). Events recorded before the page asked are left out: the page shows those.
pub async fn events(
    State(console): State<Arc<Console>>,
    authed: Authed,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, PageError> {
    let caller = &authed.session.caller;
    let mut gateway = caller.gateway().await?;
    let since = Utc::now().timestamp_millis() - 5_000;
    let stop = console.shutdown.clone();
    let stream = gateway
        .watch_alarms(pb::WatchAlarmsRequest::default())
        .await?
        .into_inner();
    let events = stream
        .take_while(|message| futures::future::ready(message.is_ok()))
        .filter_map(|message| futures::future::ready(message.ok()))
        .flat_map(move |message| {
            let lines: Vec<Result<Event, Infallible>> = message
                .events
                .into_iter()
                .filter(|e| {
                    views::instant(e.event.as_ref().and_then(|e| e.recorded_at.as_ref()))
                        .is_some_and(|t| t.timestamp_millis() >= since)
                })
                .filter_map(|e| {
                    let event = e.event?;
                    let alarm = event.alarm?;
                    Some(Ok(Event::default().event("alarm").data(format!(
                        "{} {}: {} {} on {} (peak {:.1} °C, {})",
                        e.site_id,
                        format::alarm_event_kind_name(event.kind).to_lowercase(),
                        format::alarm_kind_name(alarm.kind)
                            .to_lowercase()
                            .replace('_', " "),
                        format::alarm_state_name(alarm.state)
                            .to_lowercase()
                            .replace('_', " "),
                        alarm.sensor_id,
                        alarm.peak_celsius,
                        views::duration(alarm.duration.as_ref()),
                    ))))
                })
                .collect();
            futures::stream::iter(lines)
        })
        // A stream open in a browser must not hold the process when it stops.
        .take_until(async move { stop.wait().await });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
