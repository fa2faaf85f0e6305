//! The bytes the store keeps for an idempotent answer: the encoded `Booking` response, as
//! every earlier build kept it, so an answer stored before an upgrade still replays after.

use coldchain_proto::booking::v1 as pb;
use coldchain_store::ReplyCodec;
use prost::Message;

use super::convert;
use crate::domain::Booking;

/// HoldSpace's and the transitions' answer: an encoded `coldchain.booking.v1.Booking` of
/// this site.
#[derive(Debug, Clone)]
pub struct BookingCodec {
    site_id: String,
}

impl BookingCodec {
    /// The codec of the answers of `site_id`.
    pub fn new(site_id: &str) -> Self {
        Self {
            site_id: site_id.to_string(),
        }
    }
}

impl ReplyCodec<Booking> for BookingCodec {
    fn encode(&self, booking: &Booking) -> Vec<u8> {
        convert::booking_pb(&self.site_id, booking).encode_to_vec()
    }

    fn decode(&self, bytes: &[u8]) -> Result<Booking, String> {
        convert::booking_from_pb(pb::Booking::decode(bytes).map_err(|e| e.to_string())?)
    }
}

#[cfg(test)]
mod tests;
