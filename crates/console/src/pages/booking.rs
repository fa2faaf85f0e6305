//! Booking: free pallet space for a class and dates across the sites (`FindSpace`), and a
//! booking client's own bookings at every site.

use axum::extract::Query;
use chrono::{Days, Utc};
use coldchain_ops::format;
use coldchain_proto::booking::v1 as book;
use coldchain_proto::network::v1 as pb;
use coldchain_runtime::network::TemperatureClass;
use coldchain_runtime::{class, proto_time};
use maud::{Markup, html};
use serde::Deserialize;

use crate::Authed;
use crate::error::PageError;
use crate::views::{self, Level};

/// The search form's fields (a GET form: it changes nothing).
#[derive(Deserialize, Default)]
pub struct SpaceQuery {
    class: Option<String>,
    pallets: Option<String>,
    first: Option<String>,
    last: Option<String>,
}

/// The booking page.
pub async fn page(authed: Authed, Query(query): Query<SpaceQuery>) -> Result<Markup, PageError> {
    let caller = &authed.session.caller;
    let hub_tz = caller
        .network()
        .sites
        .first()
        .map_or(chrono_tz::UTC, |s| s.time_zone);
    let today = Utc::now().with_timezone(&hub_tz).date_naive();
    let class_name = query.class.clone().unwrap_or_else(|| "CHILLED".to_owned());
    let pallets_text = query.pallets.clone().unwrap_or_else(|| "1".to_owned());
    let first_text = query.first.clone().unwrap_or_else(|| today.to_string());
    let last_text = query
        .last
        .clone()
        .unwrap_or_else(|| (today + Days::new(6)).to_string());
    let searched = query.class.is_some();
    let offers = if searched {
        Some(find_space(&authed, &class_name, &pallets_text, &first_text, &last_text).await)
    } else {
        None
    };
    let bookings = match authed.session.customer() {
        Some(customer) => Some(own_bookings(&authed, customer).await),
        None => None,
    };
    let body = html! {
        h1 { "Booking" }
        form.stack method="get" action="/booking" {
            label { "Temperature class "
                select name="class" {
                    @for c in TemperatureClass::ALL {
                        option value=(c.as_str()) selected[c.as_str() == class_name] { (c.as_str()) }
                    }
                }
            }
            label { "Pallets " input type="number" name="pallets" min="1" value=(pallets_text); }
            label { "First day " input type="date" name="first" value=(first_text); }
            label { "Last day " input type="date" name="last" value=(last_text); }
            button type="submit" { "Find space" }
        }
        @match &offers {
            None => {}
            Some(Ok(answer)) => {
                h2 { "Space for " (pallets_text) " pallets of " (class_name) ", " (first_text) " to " (last_text) }
                @for failure in &answer.failures {
                    p.problem { (views::badge(Level::Bad, "unreachable")) " " (failure.site_id) ": " (failure.message) }
                }
                @if answer.offers.is_empty() { p.muted { "No zone of that class." } }
                @else {
                    table {
                        thead { tr { th { "site" } th { "zone" } th.num { "capacity" } th.num { "least free on a day" } th { "fits" } } }
                        tbody { @for o in &answer.offers { tr {
                            td { (o.site_id) } td { (o.zone_id) }
                            td.num { (o.capacity_pallets) } td.num { (o.min_free) }
                            td { @if o.fits { (views::badge(Level::Ok, "fits")) } @else { (views::badge(Level::Warn, "too full")) } }
                        } } }
                    }
                }
            }
            Some(Err(e)) if e.is_denied() => (views::not_for_you("Finding space")),
            Some(Err(PageError::BadInput(problem))) => p.problem { (problem) },
            Some(Err(e)) => (views::unavailable("Finding space", &format!("{e:?}"))),
        }
        @if let Some(bookings) = &bookings {
            h2 { "Your bookings" }
            @for (site, problem) in &bookings.1 { p.problem { (site) ": " (problem) } }
            @if bookings.0.is_empty() { p.muted { "None." } }
            @else {
                table {
                    thead { tr { th { "booking" } th { "site" } th { "zone" } th { "class" } th.num { "pallets" } th { "days" } th { "state" } th { "reference" } } }
                    tbody { @for b in &bookings.0 { tr {
                        td { (b.booking_id) } td { (b.site_id) } td { (b.zone_id) }
                        td { (format::class_name(b.temperature_class)) }
                        td.num { (b.pallets) }
                        td { (views::date(b.first_day.as_ref())) " to " (views::date(b.last_day.as_ref())) }
                        td { (format::booking_state_name(b.state).to_lowercase().replace('_', " ")) }
                        td { (b.customer_reference) }
                    } } }
                }
            }
        }
    };
    Ok(views::page("Booking", &authed.session, &authed.csrf, body))
}

async fn find_space(
    authed: &Authed,
    class_name: &str,
    pallets: &str,
    first: &str,
    last: &str,
) -> Result<pb::FindSpaceResponse, PageError> {
    let class = class_name
        .parse::<TemperatureClass>()
        .map_err(|e| PageError::BadInput(e.to_string()))?;
    let pallets: i32 = pallets.trim().parse().map_err(|_| {
        PageError::BadInput(format!("pallets must be a whole number, got {pallets:?}"))
    })?;
    let first = format::parse_day(first).map_err(PageError::BadInput)?;
    let last = format::parse_day(last).map_err(PageError::BadInput)?;
    let caller = &authed.session.caller;
    let mut gateway = caller.gateway().await?;
    let request = caller.request(pb::FindSpaceRequest {
        temperature_class: class::to_proto(class) as i32,
        pallets,
        first_day: Some(proto_time::date(first)),
        last_day: Some(proto_time::date(last)),
        site_ids: Vec::new(),
    });
    Ok(gateway.find_space(request).await?.into_inner())
}

/// A customer's bookings at every site, with the sites that could not answer.
async fn own_bookings(
    authed: &Authed,
    customer: &str,
) -> (Vec<book::Booking>, Vec<(String, String)>) {
    let caller = &authed.session.caller;
    let calls = caller.network().sites.iter().map(|site| async move {
        let answer = async {
            let mut booking = caller.booking(&site.id).await?;
            let request = caller.request(book::ListBookingsRequest {
                customer_id: customer.to_owned(),
                page_size: 200,
                ..Default::default()
            });
            Ok::<_, PageError>(booking.list_bookings(request).await?.into_inner().bookings)
        }
        .await;
        (site.id.clone(), answer)
    });
    let mut bookings = Vec::new();
    let mut problems = Vec::new();
    for (site, answer) in futures::future::join_all(calls).await {
        match answer {
            Ok(list) => bookings.extend(list),
            Err(e) => problems.push((site, format!("{e:?}"))),
        }
    }
    (bookings, problems)
}
