//! The booking service's commands: `hold`, `confirm`, `cancel`, `bookings`.

use std::time::Duration;

use clap::Args;
use coldchain_command::say;
use coldchain_credentials::{self as credentials, OPERATIONS};
use coldchain_proto::booking::v1 as booking;
use coldchain_proto::booking::v1::booking_service_client::BookingServiceClient;
use coldchain_proto::common::v1::{Date, TemperatureClass};
use coldchain_runtime::client::Channel;
use coldchain_runtime::config::parse_duration;
use coldchain_runtime::network::ServiceKind;
use coldchain_runtime::proto_time;
use serde_json::json;

use crate::format::{self, Table, or_dash, ts_short};
use crate::pages::Pages;
use crate::{CliError, RequestIdOpt, SiteOpts, call, connect_as, print_json, retry_with};

#[derive(Args)]
pub struct HoldArgs {
    #[command(flatten)]
    site: SiteOpts,
    #[command(flatten)]
    request_id: RequestIdOpt,
    /// The customer holding the space.
    #[arg(long, value_name = "ID")]
    customer: String,
    /// Any zone of this class with room on every day (the service picks one).
    #[arg(long, value_name = "CLASS", value_parser = format::parse_class,
          required_unless_present = "zone", conflicts_with = "zone")]
    class: Option<TemperatureClass>,
    /// This zone.
    #[arg(long, value_name = "ZONE")]
    zone: Option<String>,
    /// Pallet positions on each day.
    #[arg(long, value_name = "N")]
    pallets: i32,
    /// The first day, YYYY-MM-DD (site-local).
    #[arg(long, value_name = "DATE", value_parser = format::parse_date)]
    from: Date,
    /// The last day, inclusive, YYYY-MM-DD (site-local).
    #[arg(long, value_name = "DATE", value_parser = format::parse_date)]
    to: Date,
    /// How long the hold lasts unconfirmed, e.g. 15m [default: the service's, 15 minutes].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    ttl: Option<Duration>,
    /// The customer's own reference (purchase order, shipment number).
    #[arg(long, value_name = "TEXT")]
    reference: Option<String>,
    /// Call as this credential of the keyring [default: customer-<CUSTOMER>, the
    /// customer's booking client].
    #[arg(long = "as", value_name = "ID")]
    caller: Option<String>,
}

#[derive(Args)]
pub struct ConfirmArgs {
    #[command(flatten)]
    site: SiteOpts,
    #[command(flatten)]
    request_id: RequestIdOpt,
    /// The booking.
    booking_id: String,
    /// Call as this credential of the keyring [default: customer-<CUSTOMER>, the booking
    /// client of the booking's own customer].
    #[arg(long = "as", value_name = "ID")]
    caller: Option<String>,
}

#[derive(Args)]
pub struct CancelArgs {
    #[command(flatten)]
    site: SiteOpts,
    #[command(flatten)]
    request_id: RequestIdOpt,
    /// The booking.
    booking_id: String,
    /// Why it is cancelled.
    #[arg(long, value_name = "TEXT")]
    reason: String,
    /// Call as this credential of the keyring, e.g. the customer's booking client
    /// customer-<C> [default: operations].
    #[arg(long = "as", value_name = "ID")]
    caller: Option<String>,
}

#[derive(Args)]
pub struct BookingsArgs {
    #[command(flatten)]
    site: SiteOpts,
    /// Only this customer's bookings.
    #[arg(long, value_name = "ID")]
    customer: Option<String>,
    /// Only bookings in this zone.
    #[arg(long, value_name = "ZONE")]
    zone: Option<String>,
    /// Only bookings in this state (repeat for more): HELD, CONFIRMED, CHECKED_IN,
    /// COMPLETED, CANCELLED, EXPIRED, NO_SHOW.
    #[arg(long = "state", value_name = "STATE", value_parser = format::parse_booking_state)]
    states: Vec<booking::BookingState>,
    /// Only bookings occupying a day on or after this one, YYYY-MM-DD.
    #[arg(long, value_name = "DATE", value_parser = format::parse_date)]
    from: Option<Date>,
    /// Only bookings occupying a day on or before this one, YYYY-MM-DD.
    #[arg(long, value_name = "DATE", value_parser = format::parse_date)]
    to: Option<Date>,
    /// At most this many bookings.
    #[arg(long, value_name = "N", default_value_t = 100)]
    limit: usize,
    /// Call as this credential of the keyring; a booking client sees only its own
    /// customer's bookings [default: operations].
    #[arg(long = "as", value_name = "ID")]
    caller: Option<String>,
}

/// A client of the site's booking service, calling as the credential `id`.
fn booking_client(opts: &SiteOpts, id: &str) -> Result<BookingServiceClient<Channel>, CliError> {
    let (_, endpoint) = opts.resolve(ServiceKind::Booking)?;
    Ok(BookingServiceClient::new(connect_as(&endpoint, id)?))
}

pub async fn hold(args: HoldArgs) -> Result<(), CliError> {
    // Only the customer's own booking client may hold space for it.
    let caller = args
        .caller
        .clone()
        .unwrap_or_else(|| credentials::customer(&args.customer));
    let client = booking_client(&args.site, &caller)?;
    let request_id = args.request_id.get();
    let space = match (&args.class, &args.zone) {
        (_, Some(zone)) => booking::hold_space_request::Space::ZoneId(zone.clone()),
        (Some(class), None) => booking::hold_space_request::Space::TemperatureClass(*class as i32),
        (None, None) => return Err(CliError::Usage("give --class or --zone".into())),
    };
    let request = booking::HoldSpaceRequest {
        request_id: request_id.clone(),
        customer_id: args.customer.clone(),
        space: Some(space),
        pallets: args.pallets,
        first_day: Some(args.from),
        last_day: Some(args.to),
        hold_ttl: args.ttl.map(proto_time::duration),
        customer_reference: args.reference.clone().unwrap_or_default(),
        actor: Default::default(),
    };
    let booking = call!(client, hold_space, request).map_err(retry_with(&request_id))?;
    print_booking(&booking, args.site.json);
    Ok(())
}

pub async fn confirm(args: ConfirmArgs) -> Result<(), CliError> {
    // Only the booking's own customer confirms it: without --as, ask (as operations) whose
    // booking it is, then call as that customer's booking client.
    let caller = match &args.caller {
        Some(id) => id.clone(),
        None => {
            let lookup = booking_client(&args.site, OPERATIONS)?;
            let request = booking::GetBookingRequest {
                booking_id: args.booking_id.clone(),
            };
            let booking = call!(lookup, get_booking, request)?;
            credentials::customer(&booking.customer_id)
        }
    };
    let client = booking_client(&args.site, &caller)?;
    let request_id = args.request_id.get();
    let request = booking::ConfirmBookingRequest {
        request_id: request_id.clone(),
        booking_id: args.booking_id.clone(),
        actor: Default::default(),
    };
    let booking = call!(client, confirm_booking, request).map_err(retry_with(&request_id))?;
    print_booking(&booking, args.site.json);
    Ok(())
}

pub async fn cancel(args: CancelArgs) -> Result<(), CliError> {
    let client = booking_client(&args.site, args.caller.as_deref().unwrap_or(OPERATIONS))?;
    let request_id = args.request_id.get();
    let request = booking::CancelBookingRequest {
        request_id: request_id.clone(),
        booking_id: args.booking_id.clone(),
        reason: args.reason.clone(),
        actor: Default::default(),
    };
    let booking = call!(client, cancel_booking, request).map_err(retry_with(&request_id))?;
    print_booking(&booking, args.site.json);
    Ok(())
}

pub async fn bookings(args: BookingsArgs) -> Result<(), CliError> {
    let client = booking_client(&args.site, args.caller.as_deref().unwrap_or(OPERATIONS))?;
    let mut pages = Pages::new(args.limit);
    loop {
        let request = booking::ListBookingsRequest {
            customer_id: args.customer.clone().unwrap_or_default(),
            zone_id: args.zone.clone().unwrap_or_default(),
            states: args.states.iter().map(|s| *s as i32).collect(),
            first_day: args.from,
            last_day: args.to,
            page_size: pages.page_size(),
            page_token: pages.token(),
        };
        let page = call!(client, list_bookings, request)?;
        if !pages.add(page.bookings, page.next_page_token) {
            break;
        }
    }
    let (bookings, more) = pages.finish();
    if args.site.json {
        print_json(&json!({
            "site_id": args.site.site,
            "bookings": bookings.iter().map(format::booking_json).collect::<Vec<_>>(),
            "truncated": more,
        }));
        return Ok(());
    }
    let mut table = Table::new(&[
        "BOOKING",
        "CUSTOMER",
        "ZONE",
        "CLASS",
        "PALLETS",
        "FIRST DAY",
        "LAST DAY",
        "STATE",
        "EXPIRES / DEADLINE",
        "REFERENCE",
        "LAST CHANGE BY",
    ]);
    for b in &bookings {
        let when = if b.state == booking::BookingState::Held as i32 {
            ts_short(b.expires_at.as_ref())
        } else if b.state == booking::BookingState::Confirmed as i32 {
            ts_short(b.check_in_deadline.as_ref())
        } else {
            "-".to_string()
        };
        table.row(vec![
            b.booking_id.clone(),
            b.customer_id.clone(),
            b.zone_id.clone(),
            format::class_name(b.temperature_class),
            b.pallets.to_string(),
            format::date_str(b.first_day.as_ref()).unwrap_or_default(),
            format::date_str(b.last_day.as_ref()).unwrap_or_default(),
            format::booking_state_name(b.state),
            when,
            or_dash(&b.customer_reference),
            format::author_short(b.changes.last().and_then(|c| c.changed_by.as_ref())),
        ]);
    }
    if table.is_empty() {
        say!("no bookings at {}", args.site.site);
    } else {
        table.print();
    }
    if more {
        say!("(more than {}; use --limit)", args.limit);
    }
    Ok(())
}

/// Prints a booking as JSON or as a block.
pub fn print_booking(b: &booking::Booking, as_json: bool) {
    if as_json {
        print_json(&format::booking_json(b));
        return;
    }
    say!(
        "booking {}  {}  {} / {} ({})",
        b.booking_id,
        format::booking_state_name(b.state),
        b.site_id,
        b.zone_id,
        format::class_name(b.temperature_class)
    );
    let reference = if b.customer_reference.is_empty() {
        String::new()
    } else {
        format!(" (ref {})", b.customer_reference)
    };
    say!("  customer      {}{reference}", b.customer_id);
    say!(
        "  pallets       {} a day, {} .. {}",
        b.pallets,
        format::date_str(b.first_day.as_ref()).unwrap_or_default(),
        format::date_str(b.last_day.as_ref()).unwrap_or_default()
    );
    if b.pallets_arrived > 0 {
        say!("  arrived       {} pallets", b.pallets_arrived);
    }
    if b.state == booking::BookingState::Held as i32 {
        say!("  expires at    {}", ts_short(b.expires_at.as_ref()));
    }
    if b.check_in_deadline.is_some() {
        say!("  check in by   {}", ts_short(b.check_in_deadline.as_ref()));
    }
    if !b.cancel_reason.is_empty() {
        say!("  cancelled     {}", b.cancel_reason);
    }
    if let Some(last) = b.changes.last() {
        say!(
            "  last change   {} at {} by {}",
            format::booking_state_name(last.state),
            ts_short(last.changed_at.as_ref()),
            format::author_short(last.changed_by.as_ref())
        );
    }
}
