//! Protobuf ⇄ domain: requests validated in form into domain values ([`requests`]),
//! domain answers rendered as responses (here and [`convert`]), and the bytes the store
//! keeps for an idempotent answer ([`codec`]).

pub mod codec;
pub mod convert;
pub mod requests;

use coldchain_proto::booking::v1 as pb;
use coldchain_runtime::page_token;

pub use codec::BookingCodec;
pub use requests::{Call, ListCall, TransitionCall};

use crate::domain::{Booking, DayRow, ListPage};

/// A booking of the site `site_id`, as answered.
pub fn booking(site_id: &str, booking: Booking) -> pb::Booking {
    convert::into_booking_pb(site_id, booking)
}

/// GetAvailability's response.
pub fn availability(rows: Vec<DayRow>) -> pb::GetAvailabilityResponse {
    pb::GetAvailabilityResponse {
        days: rows.into_iter().map(convert::availability_pb).collect(),
    }
}

/// ListBookings' response for `page` of `list` at the site `site_id`.
pub fn list_page(site_id: &str, page: ListPage, list: &ListCall) -> pb::ListBookingsResponse {
    pb::ListBookingsResponse {
        bookings: page
            .bookings
            .into_iter()
            .map(|b| convert::into_booking_pb(site_id, b))
            .collect(),
        next_page_token: page
            .next
            .map(|key| page_token::encode(&list.query_bytes, &key))
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests;
