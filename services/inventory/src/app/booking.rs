//! The booking check-in of receipts that cite a booking: one CheckIn per booking and
//! batch, with a request_id derived from the batch's, so a retried receipt checks in once.

use coldchain_proto::booking::v1 as booking;
use coldchain_proto::booking::v1::booking_service_client::BookingServiceClient;
use coldchain_runtime::client::{Channel, ClientOptions, lazy_channel, request, with_retry};
use coldchain_runtime::network::{NetworkConfig, ServiceKind, SiteConfig};
use sha2::{Digest, Sha256};

use crate::domain::Movement;
use crate::error::CheckInFailure;

/// The booking service of a site, connected lazily (on the first receipt citing a booking).
pub struct BookingCheckIn {
    client: Result<BookingServiceClient<Channel>, String>,
    endpoint: String,
    options: ClientOptions,
}

impl BookingCheckIn {
    /// The booking service of `site`: its own endpoint, else the network's.
    pub fn new(site: &SiteConfig, network: &NetworkConfig, options: ClientOptions) -> Self {
        let endpoint = site
            .endpoint(ServiceKind::Booking)
            .or_else(|| network.endpoint(&site.id, ServiceKind::Booking))
            .unwrap_or_default();
        let client = if endpoint.is_empty() {
            Err(format!("site {} has no booking endpoint", site.id))
        } else {
            lazy_channel(&endpoint, &options)
                .map(BookingServiceClient::new)
                .map_err(|e| e.message)
        };
        Self {
            client,
            endpoint,
            options,
        }
    }

    /// Checks `booking_id` in (with retry), `pallets` arrived (`None`: all booked).
    pub async fn check_in(
        &self,
        site_id: &str,
        request_id: &str,
        booking: &CitedBooking,
    ) -> Result<(), CheckInFailure> {
        let client = self
            .client
            .as_ref()
            .map_err(|problem| CheckInFailure::Unreachable {
                index: booking.index,
                booking_id: booking.booking_id.clone(),
                problem: problem.clone(),
            })?;
        let message = booking::CheckInRequest {
            request_id: check_in_request_id(site_id, request_id, &booking.booking_id),
            booking_id: booking.booking_id.clone(),
            pallets_arrived: booking.pallets,
            actor: Default::default(),
        };
        let options = &self.options;
        with_retry(options, || {
            let mut client = client.clone();
            let message = message.clone();
            async move { client.check_in(request(message, options)).await }
        })
        .await
        .map(|_| ())
        .map_err(|status| CheckInFailure::Answered {
            index: booking.index,
            booking_id: booking.booking_id.clone(),
            endpoint: self.endpoint.clone(),
            status,
        })
    }
}

/// A booking a batch cites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CitedBooking {
    /// The booking.
    pub booking_id: String,
    /// The pallets arrived in the batch; `None` (0 in total) means all booked pallets.
    pub pallets: Option<i32>,
    /// The first movement citing it.
    pub index: usize,
}

/// Every booking the batch cites, in order of first citation. The pallets of one booking
/// were checked to add up within an i32 when the request was read.
pub fn bookings_of(movements: &[Movement]) -> Vec<CitedBooking> {
    let mut out: Vec<CitedBooking> = Vec::new();
    for (index, m) in movements.iter().enumerate() {
        if m.booking_id.is_empty() {
            continue;
        }
        match out.iter_mut().find(|b| b.booking_id == m.booking_id) {
            Some(cited) => {
                let sum = cited
                    .pallets
                    .unwrap_or(0)
                    .checked_add(m.pallets)
                    .unwrap_or(i32::MAX);
                cited.pallets = (sum > 0).then_some(sum);
            }
            None => out.push(CitedBooking {
                booking_id: m.booking_id.clone(),
                pallets: (m.pallets > 0).then_some(m.pallets),
                index,
            }),
        }
    }
    out
}

/// The CheckIn request_id of a receipt batch: deterministic in (site, request_id,
/// booking_id), 1 to 128 identifier characters.
pub fn check_in_request_id(site_id: &str, request_id: &str, booking_id: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [site_id, request_id, booking_id] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let hex: String = digest[..20].iter().map(|b| format!("{b:02x}")).collect();
    format!("inventory-checkin:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_in_ids_are_deterministic_and_valid() {
        let a = check_in_request_id("cn-huaihua-park", &"r".repeat(128), "bk-1");
        assert_eq!(
            a,
            check_in_request_id("cn-huaihua-park", &"r".repeat(128), "bk-1")
        );
        assert_ne!(
            a,
            check_in_request_id("cn-huaihua-park", &"r".repeat(128), "bk-2")
        );
        assert_ne!(
            a,
            check_in_request_id("la-vientiane", &"r".repeat(128), "bk-1")
        );
        assert!(coldchain_runtime::validate::check_id(&a, 128).is_ok());
    }
}
