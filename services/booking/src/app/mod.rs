//! The use cases of the booking service: which zones a request names, who may see which
//! booking, the reads and writes of the store, and the background sweeper of lapses
//! ([`sweeper`]). Takes and returns domain values; the bytes kept for an idempotent answer
//! come from the codec it is given.

mod metrics;
pub mod sweeper;

use std::sync::Arc;

use chrono::NaiveDate;
use coldchain_audit::Author;
use coldchain_network::{SiteConfig, ZoneConfig};
use coldchain_runtime::ServiceError;
use coldchain_runtime::idempotency::Refusals;
use coldchain_runtime::validate::{MAX_ID_LEN, check_id};
use coldchain_store::{Idempotent, ReplyCodec, RequestFingerprint};

use crate::domain::{
    self, AccessRefusal, AvailabilityQuery, Booking, BookingError, BoundCustomer, DayRow,
    HoldCommand, ListPage, ListQuery, Space, SpaceAsk, Transition,
};
use crate::store::Bookings;

/// The booking service of one site.
pub struct BookingApp {
    bookings: Bookings,
    reply: Arc<dyn ReplyCodec<Booking>>,
}

impl BookingApp {
    /// The use cases over `bookings`, idempotent answers kept through `reply`.
    pub fn new(bookings: Bookings, reply: Arc<dyn ReplyCodec<Booking>>) -> Self {
        Self { bookings, reply }
    }

    fn site(&self) -> &SiteConfig {
        self.bookings.site()
    }

    /// This site's id.
    pub fn site_id(&self) -> &str {
        &self.site().id
    }

    /// The site-local day now.
    pub fn today(&self) -> NaiveDate {
        self.bookings.today()
    }

    /// A booking client books only for its own customer.
    pub fn may_hold_for(
        &self,
        caller: Option<&BoundCustomer>,
        customer_id: &str,
    ) -> Result<(), ServiceError> {
        match caller {
            Some(bound) if bound.customer != customer_id => Err(AccessRefusal::BooksOnlyFor {
                credential: bound.credential.clone(),
                customer: bound.customer.clone(),
                asked: customer_id.to_string(),
            }
            .into()),
            _ => Ok(()),
        }
    }

    /// A booking client sees only its own customer's bookings: refused alike for a booking
    /// of another customer and for one that does not exist (the answer must not tell
    /// which). A malformed id passes: the handler answers INVALID_ARGUMENT naming it.
    pub fn check_owner(
        &self,
        caller: Option<&BoundCustomer>,
        booking_id: &str,
    ) -> Result<(), ServiceError> {
        let Some(bound) = caller else {
            return Ok(());
        };
        if check_id(booking_id, MAX_ID_LEN).is_err() {
            return Ok(());
        }
        match self.bookings.get(booking_id)? {
            Some(booking) if booking.customer_id == bound.customer => Ok(()),
            _ => Err(AccessRefusal::NotYours {
                credential: bound.credential.clone(),
                booking_id: booking_id.to_string(),
            }
            .into()),
        }
    }

    /// The customer ListBookings filters on: a booking client's own (also when the request
    /// leaves it empty; another is refused), the request's for every other caller.
    pub fn list_customer(
        &self,
        caller: Option<&BoundCustomer>,
        asked: &str,
    ) -> Result<String, ServiceError> {
        match caller {
            None => Ok(asked.to_string()),
            Some(bound) if asked.is_empty() || asked == bound.customer => {
                Ok(bound.customer.clone())
            }
            Some(bound) => Err(AccessRefusal::ListsOnly {
                credential: bound.credential.clone(),
                customer: bound.customer.clone(),
                asked: asked.to_string(),
            }
            .into()),
        }
    }

    /// GetAvailability.
    pub async fn availability(
        &self,
        query: &AvailabilityQuery,
    ) -> Result<Vec<DayRow>, ServiceError> {
        let zones: Vec<ZoneConfig> = match &query.space {
            SpaceAsk::Class(class) => self.site().zones_of_class(*class).cloned().collect(),
            SpaceAsk::Zone(zone_id) => vec![self.zone(zone_id)?],
        };
        Ok(self
            .bookings
            .availability(&zones, query.first, query.last)
            .await?)
    }

    /// HoldSpace: the zones the request names (refused before the write when none could
    /// take the pallets), then the idempotent write.
    pub async fn hold(
        &self,
        request: &RequestFingerprint,
        command: &HoldCommand,
        author: &Author,
    ) -> Result<Booking, ServiceError> {
        let space = self.space(&command.space, command.terms.pallets)?;
        Ok(self
            .bookings
            .hold(
                Idempotent::new(request, &*self.reply, &Refusals),
                &space,
                &command.terms,
                author,
            )
            .await?)
    }

    /// ConfirmBooking, CancelBooking, CheckIn, CompleteBooking.
    pub async fn transition(
        &self,
        request: &RequestFingerprint,
        booking_id: &str,
        transition: &Transition,
        author: &Author,
    ) -> Result<Booking, ServiceError> {
        self.check_site(booking_id)?;
        Ok(self
            .bookings
            .transition(
                Idempotent::new(request, &*self.reply, &Refusals),
                booking_id,
                transition,
                author,
            )
            .await?)
    }

    /// GetBooking.
    pub fn get(&self, booking_id: &str) -> Result<Booking, ServiceError> {
        self.check_site(booking_id)?;
        self.bookings.get(booking_id)?.ok_or_else(|| {
            BookingError::UnknownBooking {
                booking_id: booking_id.to_string(),
                site_id: Some(self.site_id().to_string()),
            }
            .into()
        })
    }

    /// ListBookings.
    pub fn list(
        &self,
        query: &ListQuery,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ListPage, ServiceError> {
        Ok(self.bookings.list(query, after, limit)?)
    }

    /// Refuses an id that names a booking of another site: it cannot be here.
    fn check_site(&self, booking_id: &str) -> Result<(), ServiceError> {
        match domain::id::names_other_site(booking_id, self.site_id()) {
            None => Ok(()),
            Some(owner) => Err(BookingError::OtherSite {
                booking_id: booking_id.to_string(),
                site_id: self.site_id().to_string(),
                owner: owner.to_string(),
            }
            .into()),
        }
    }

    fn zone(&self, zone_id: &str) -> Result<ZoneConfig, ServiceError> {
        self.site().zone(zone_id).cloned().ok_or_else(|| {
            BookingError::UnknownZone {
                zone_id: zone_id.to_string(),
                site_id: self.site_id().to_string(),
            }
            .into()
        })
    }

    /// Where a hold of `pallets` may go: the zone named, or the zones of the class big
    /// enough. Refused when no zone of the class exists, or none could ever take them.
    fn space(&self, ask: &SpaceAsk, pallets: u32) -> Result<Space, ServiceError> {
        match ask {
            SpaceAsk::Class(class) => {
                let all: Vec<ZoneConfig> = self.site().zones_of_class(*class).cloned().collect();
                let capacity = |z: &ZoneConfig| domain::zone_capacity(z.capacity_pallets);
                let class = class.as_str().to_string();
                match all.iter().map(capacity).max() {
                    None => Err(BookingError::NoZone { class, pallets }.into()),
                    Some(largest) if pallets > largest => Err(BookingError::LargerThanClass {
                        pallets,
                        class,
                        site_id: self.site_id().to_string(),
                        largest,
                    }
                    .into()),
                    Some(_) => Ok(Space::Class {
                        class,
                        zones: all.into_iter().filter(|z| capacity(z) >= pallets).collect(),
                    }),
                }
            }
            SpaceAsk::Zone(zone_id) => {
                let zone = self.zone(zone_id)?;
                let capacity = domain::zone_capacity(zone.capacity_pallets);
                if pallets > capacity {
                    return Err(BookingError::LargerThanZone {
                        pallets,
                        zone_id: zone_id.clone(),
                        capacity,
                    }
                    .into());
                }
                Ok(Space::Zone(zone))
            }
        }
    }
}
