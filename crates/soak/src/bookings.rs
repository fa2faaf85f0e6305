//! The shipper's bookings: holds, confirmations and cancellations competing for the same
//! zones and days at every site.

use std::time::Duration;

use coldchain_proto::booking::v1 as booking;
use coldchain_runtime::proto_time;
use rand::Rng;
use tokio::sync::watch;

use crate::call::{Outcome, request};
use crate::model::{BookingAck, BookingFate};
use crate::workload::{Workload, pause, stopped};

impl Workload {
    /// The shipper: holds space in each site's booking zone for three days within the
    /// booking span, then confirms, cancels or leaves it held; now and then it cancels one
    /// of its earlier bookings. Windows overlap and space runs out, so refusals come too.
    pub async fn bookings(self, worker: u64, stop: watch::Receiver<bool>) {
        let mut rng = self.rng(worker);
        let mut live: Vec<(usize, BookingAck)> = Vec::new();
        let mut n = 0u64;
        let span = (self.booking_days.1 - self.booking_days.0)
            .num_days()
            .max(2);
        while !stopped(&stop) {
            n += 1;
            if !live.is_empty() && rng.gen_bool(0.3) {
                let (site, ack) = live.swap_remove(rng.gen_range(0..live.len()));
                if let Some(cancelled) = self.cancel(site, ack).await {
                    self.update(cancelled);
                }
                pause(&mut rng, 100, 400).await;
                continue;
            }
            let site_index = rng.gen_range(0..self.sites.len());
            let site = &self.sites[site_index];
            let request_id = format!("{}-b{worker}-{n}", self.run);
            let first = self.booking_days.0 + chrono::Days::new(rng.gen_range(0..=span - 2) as u64);
            let message = booking::HoldSpaceRequest {
                request_id: request_id.clone(),
                customer_id: self.customer.clone(),
                space: Some(booking::hold_space_request::Space::ZoneId(
                    site.booking_zone.clone(),
                )),
                pallets: rng.gen_range(5..60),
                first_day: Some(proto_time::date(first)),
                last_day: Some(proto_time::date(first + chrono::Days::new(2))),
                hold_ttl: Some(proto_time::duration(Duration::from_secs(6 * 3_600))),
                customer_reference: format!("soak {}", self.run),
                actor: Default::default(),
            };
            let client = site.booking.clone();
            let held = self
                .recorder
                .call(&format!("HoldSpace {request_id}"), || {
                    let mut client = client.clone();
                    let message = message.clone();
                    async move { client.hold_space(request(message)).await }
                })
                .await;
            let Outcome::Ack(held) = held else {
                pause(&mut rng, 100, 400).await;
                continue;
            };
            let ack = BookingAck {
                site: site.id.clone(),
                booking_id: held.booking_id.clone(),
                request_id,
                fate: BookingFate::Held,
            };
            self.recorder.record(|h| h.bookings.push(ack.clone()));
            pause(&mut rng, 50, 300).await;
            let choice = rng.gen_range(0..10);
            if choice < 5 {
                let request_id = format!("{}-confirm", ack.request_id);
                let message = booking::ConfirmBookingRequest {
                    request_id: request_id.clone(),
                    booking_id: ack.booking_id.clone(),
                    actor: Default::default(),
                };
                let outcome = self
                    .recorder
                    .call(&format!("ConfirmBooking {request_id}"), || {
                        let mut client = client.clone();
                        let message = message.clone();
                        async move { client.confirm_booking(request(message)).await }
                    })
                    .await;
                let ack = if matches!(outcome, Outcome::Ack(_)) {
                    let confirmed = BookingAck {
                        request_id,
                        fate: BookingFate::Confirmed,
                        ..ack
                    };
                    self.update(confirmed.clone());
                    confirmed
                } else {
                    ack
                };
                live.push((site_index, ack));
            } else if choice < 7 {
                if let Some(cancelled) = self.cancel(site_index, ack).await {
                    self.update(cancelled);
                }
            } else {
                live.push((site_index, ack));
            }
            pause(&mut rng, 100, 400).await;
        }
    }

    /// Cancels a booking; answers its new acknowledgement, if the cancellation was one.
    async fn cancel(&self, site: usize, ack: BookingAck) -> Option<BookingAck> {
        let request_id = format!("{}-cancel", ack.booking_id);
        let message = booking::CancelBookingRequest {
            request_id: request_id.clone(),
            booking_id: ack.booking_id.clone(),
            reason: "soak: plans changed".into(),
            actor: Default::default(),
        };
        let client = self.sites[site].booking.clone();
        let outcome = self
            .recorder
            .call(&format!("CancelBooking {request_id}"), || {
                let mut client = client.clone();
                let message = message.clone();
                async move { client.cancel_booking(request(message)).await }
            })
            .await;
        matches!(outcome, Outcome::Ack(_)).then_some(BookingAck {
            request_id,
            fate: BookingFate::Cancelled,
            ..ack
        })
    }

    /// Records a booking's latest acknowledgement in place of the earlier one.
    fn update(&self, ack: BookingAck) {
        self.recorder.record(|h| {
            if let Some(last) = h
                .bookings
                .iter_mut()
                .rev()
                .find(|b| b.booking_id == ack.booking_id && b.site == ack.site)
            {
                *last = ack;
            }
        });
    }
}
