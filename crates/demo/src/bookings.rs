//! Acts 7 and 8: booking clients across the sites. At Vientiane a forwarder holds and
//! confirms cool space for bananas, and the receipt citing the booking checks it in; a
//! shipper finds chilled space through the gateway, holds and confirms it; an e-commerce
//! seller holds frozen space and cancels it.

use std::time::Duration;

use coldchain_credentials as credentials;
use coldchain_ops::call;
use coldchain_ops::format;
use coldchain_proto::booking::v1 as booking;
use coldchain_proto::common::v1 as common;
use coldchain_proto::inventory::v1 as inventory;
use coldchain_proto::network::v1 as network;
use coldchain_proto::network::v1::network_service_client::NetworkServiceClient;
use coldchain_runtime::network::TemperatureClass;
use coldchain_runtime::proto_time;

use crate::day::{Day, channel_as, plus_days, site_clients};
use crate::outcome::{BookingOutcome, DemoError, LotOutcome, step_err};
use crate::{FORWARDER, PARK, SELLER, SHIPPER, VIENTIANE};

/// The forwarder holds and confirms cool space at Vientiane; the bananas' receipt citing
/// the booking checks it in. Answers the lot received and the booking.
pub(crate) async fn bananas(day: &Day<'_>) -> Result<(LotOutcome, BookingOutcome), DemoError> {
    let step = "banana booking";
    let run = day.run;
    let vte_today = day.local_day(&day.vte.site);
    let request = booking::HoldSpaceRequest {
        request_id: day.rid("banana-hold"),
        customer_id: FORWARDER.into(),
        space: Some(booking::hold_space_request::Space::TemperatureClass(
            common::TemperatureClass::Cool as i32,
        )),
        pallets: 6,
        first_day: Some(proto_time::date(vte_today)),
        last_day: Some(proto_time::date(plus_days(vte_today, 2))),
        hold_ttl: Some(proto_time::duration(Duration::from_secs(15 * 60))),
        customer_reference: format!("ban-{run}"),
        actor: Default::default(),
    };
    let forwarder = day.vte.booking(FORWARDER)?;
    let held = call!(forwarder, hold_space, request).map_err(step_err(step))?;
    let mut states = vec![format::booking_state_name(held.state)];
    let request = booking::ConfirmBookingRequest {
        request_id: day.rid("banana-confirm"),
        booking_id: held.booking_id.clone(),
        actor: Default::default(),
    };
    let confirmed = call!(forwarder, confirm_booking, request).map_err(step_err(step))?;
    states.push(format::booking_state_name(confirmed.state));
    let step = "banana receipt";
    let banana_lot = format!("vte-banana-{run}");
    let banana_expiry = plus_days(vte_today, 12);
    let request = inventory::RecordMovementsRequest {
        request_id: day.rid("banana-receipt"),
        movements: vec![inventory::Movement {
            kind: inventory::MovementKind::Receipt as i32,
            sku: "banana-cavendish".into(),
            lot: Some(inventory::LotInfo {
                lot_id: banana_lot.clone(),
                expiry: Some(proto_time::date(banana_expiry)),
                production: Some(proto_time::date(vte_today)),
                origin: "Vientiane Prefecture, Laos".into(),
            }),
            zone_id: confirmed.zone_id.clone(),
            quantity: 9_600,
            unit: "kg".into(),
            reason: "bananas for the northbound train, ripening held at 13-14 °C".into(),
            booking_id: confirmed.booking_id.clone(),
            pallets: 6,
            ..Default::default()
        }],
        actor: Default::default(),
    };
    let answer = call!(day.vte.inventory, record_movements, request).map_err(step_err(step))?;
    day.recorded_at(VIENTIANE);
    let lot = LotOutcome {
        site_id: VIENTIANE.into(),
        sku: "banana-cavendish".into(),
        lot_id: banana_lot.clone(),
        zone_id: confirmed.zone_id.clone(),
        quantity: 9_600,
        unit: "kg".into(),
        expiry: banana_expiry.to_string(),
        origin: "Vientiane Prefecture, Laos".into(),
        sequence: answer.entries.first().map_or(0, |e| e.sequence),
    };
    let request = booking::GetBookingRequest {
        booking_id: confirmed.booking_id.clone(),
    };
    // The forwarder sees its booking checked in by the receipt.
    let checked = call!(forwarder, get_booking, request).map_err(step_err(step))?;
    states.push(format::booking_state_name(checked.state));
    day.progress.say(&format!(
        "bananas in {}: booking {} {}",
        checked.zone_id,
        checked.booking_id,
        states.join(" -> ")
    ));
    Ok((
        lot,
        booking_outcome("forwarder: bananas into the cool zone", &checked, states),
    ))
}

/// The shipper finds 20 chilled pallets through the gateway (away from the park if it
/// can), holds and confirms them.
pub(crate) async fn shipper(day: &mut Day<'_>) -> Result<Option<BookingOutcome>, DemoError> {
    let step = "shipper booking";
    let park_today = day.local_day(&day.park.site);
    let first = plus_days(park_today, 3);
    let last = plus_days(park_today, 5);
    let request = network::FindSpaceRequest {
        temperature_class: common::TemperatureClass::Chilled as i32,
        pallets: 20,
        first_day: Some(proto_time::date(first)),
        last_day: Some(proto_time::date(last)),
        site_ids: Vec::new(),
    };
    // The shipper asks the gateway itself, as its own booking client.
    let shipper_gateway = NetworkServiceClient::new(channel_as(
        &day.config.gateway,
        &credentials::customer(SHIPPER),
    )?);
    let space = call!(shipper_gateway, find_space, request).map_err(step_err(step))?;
    for f in &space.failures {
        day.warnings.push(format!(
            "find space: {} did not answer: {}: {}",
            f.site_id, f.code, f.message
        ));
    }
    let offer = space
        .offers
        .iter()
        .find(|o| o.fits && o.site_id != PARK)
        .or_else(|| space.offers.iter().find(|o| o.fits))
        .cloned();
    let Some(offer) = offer else {
        day.warnings
            .push("no site has 20 chilled pallets free for the shipper".into());
        return Ok(None);
    };
    let shipper = site_clients(&day.config.network, &offer.site_id)?.booking(SHIPPER)?;
    let request = booking::HoldSpaceRequest {
        request_id: day.rid("shipper-hold"),
        customer_id: SHIPPER.into(),
        space: Some(booking::hold_space_request::Space::ZoneId(
            offer.zone_id.clone(),
        )),
        pallets: 20,
        first_day: Some(proto_time::date(first)),
        last_day: Some(proto_time::date(last)),
        hold_ttl: Some(proto_time::duration(Duration::from_secs(30 * 60))),
        customer_reference: format!("po-{}", day.run),
        actor: Default::default(),
    };
    let held = call!(shipper, hold_space, request).map_err(step_err(step))?;
    let mut states = vec![format::booking_state_name(held.state)];
    let request = booking::ConfirmBookingRequest {
        request_id: day.rid("shipper-confirm"),
        booking_id: held.booking_id.clone(),
        actor: Default::default(),
    };
    let confirmed = call!(shipper, confirm_booking, request).map_err(step_err(step))?;
    states.push(format::booking_state_name(confirmed.state));
    day.progress.say(&format!(
        "a shipper booked 20 chilled pallets at {} / {}: {}",
        offer.site_id,
        offer.zone_id,
        states.join(" -> ")
    ));
    Ok(Some(booking_outcome(
        "shipper: chilled space found through the gateway",
        &confirmed,
        states,
    )))
}

/// An e-commerce seller holds 8 frozen pallets at a site besides the park for a flash
/// sale, then cancels them.
pub(crate) async fn seller(day: &mut Day<'_>) -> Result<Option<BookingOutcome>, DemoError> {
    let step = "seller booking";
    let network = &day.config.network;
    let seller_site = ["vn-hanoi", "th-bangkok", "sg-singapore"]
        .iter()
        .filter_map(|id| network.site(id))
        .chain(network.sites.iter().filter(|s| s.id != PARK))
        .find(|s| s.has_class(TemperatureClass::Frozen))
        .map(|s| s.id.clone());
    let Some(site_id) = seller_site else {
        day.warnings
            .push("no site besides the park has frozen space".into());
        return Ok(None);
    };
    let clients = site_clients(network, &site_id)?;
    let local = day.local_day(&clients.site);
    let seller = clients.booking(SELLER)?;
    let request = booking::HoldSpaceRequest {
        request_id: day.rid("seller-hold"),
        customer_id: SELLER.into(),
        space: Some(booking::hold_space_request::Space::TemperatureClass(
            common::TemperatureClass::Frozen as i32,
        )),
        pallets: 8,
        first_day: Some(proto_time::date(plus_days(local, 2))),
        last_day: Some(proto_time::date(plus_days(local, 4))),
        hold_ttl: Some(proto_time::duration(Duration::from_secs(10 * 60))),
        customer_reference: format!("flash-sale-{}", day.run),
        actor: Default::default(),
    };
    let held = call!(seller, hold_space, request).map_err(step_err(step))?;
    let mut states = vec![format::booking_state_name(held.state)];
    let request = booking::CancelBookingRequest {
        request_id: day.rid("seller-cancel"),
        booking_id: held.booking_id.clone(),
        reason: "flash sale moved to next week".into(),
        actor: Default::default(),
    };
    let cancelled = call!(seller, cancel_booking, request).map_err(step_err(step))?;
    states.push(format::booking_state_name(cancelled.state));
    day.progress.say(&format!(
        "an e-commerce seller held 8 frozen pallets at {site_id} and cancelled: {}",
        states.join(" -> ")
    ));
    Ok(Some(booking_outcome(
        "e-commerce seller: held frozen space, then cancelled",
        &cancelled,
        states,
    )))
}

fn booking_outcome(role: &str, b: &booking::Booking, states: Vec<String>) -> BookingOutcome {
    BookingOutcome {
        role: role.to_string(),
        site_id: b.site_id.clone(),
        booking_id: b.booking_id.clone(),
        customer_id: b.customer_id.clone(),
        zone_id: b.zone_id.clone(),
        temperature_class: format::class_name(b.temperature_class),
        pallets: b.pallets,
        first_day: format::date_str(b.first_day.as_ref()).unwrap_or_default(),
        last_day: format::date_str(b.last_day.as_ref()).unwrap_or_default(),
        state: format::booking_state_name(b.state),
        states,
    }
}
