//! `HoldSpace` then `ConfirmBooking`, each worker the booking client of its own customer.

use coldchain_proto::booking::v1 as booking;
use coldchain_runtime::client::Channel as KeyedChannel;
use coldchain_runtime::proto_time;

use super::run_id;
use crate::Build;
use crate::host::{Caller, Host, bench_customer};
use crate::load::{self, LoadResult, LoadSpec};

/// `HoldSpace` then `ConfirmBooking`, durable, one pair per iteration; each worker is the
/// booking client of its own customer.
pub async fn booking(
    spec: &LoadSpec,
    connections: usize,
    build: Build,
) -> Result<LoadResult, String> {
    let host = Host::start_booking(spec.concurrency, build).await?;
    let connections = host.channels(connections).await?;
    let channels: Vec<KeyedChannel> = (0..spec.concurrency.max(1))
        .map(|worker| {
            host.as_caller(
                &connections[worker % connections.len()],
                Caller::Customer(worker),
            )
        })
        .collect();
    let run = run_id();
    let today = chrono::Utc::now().date_naive();
    let result = load::run("booking", spec, move |worker, iteration| {
        let client = booking::booking_service_client::BookingServiceClient::new(
            channels[worker % channels.len()].clone(),
        );
        booking_pair(client, run, today, worker, iteration)
    })
    .await;
    host.stop().await;
    Ok(result)
}

/// The scenario's call: `HoldSpace` of one pallet for one day within the next year, then
/// `ConfirmBooking` of the hold, as the booking client of `worker`'s customer.
pub fn booking_pair(
    client: booking::booking_service_client::BookingServiceClient<KeyedChannel>,
    run: u64,
    today: chrono::NaiveDate,
    worker: usize,
    iteration: u64,
) -> impl std::future::Future<Output = Result<(), tonic::Status>> {
    booking_pair_held_for(client, run, today, worker, iteration, None)
}

/// [`booking_pair`] with the hold kept for `hold_ttl` (the service's default when `None`).
pub fn booking_pair_held_for(
    mut client: booking::booking_service_client::BookingServiceClient<KeyedChannel>,
    run: u64,
    today: chrono::NaiveDate,
    worker: usize,
    iteration: u64,
    hold_ttl: Option<std::time::Duration>,
) -> impl std::future::Future<Output = Result<(), tonic::Status>> {
    let day = today + chrono::Days::new(1 + (worker as u64 * 31 + iteration) % 365);
    let date = proto_time::date(day);
    let hold = booking::HoldSpaceRequest {
        request_id: format!("bench-{run}-{worker}-{iteration}-hold"),
        customer_id: bench_customer(worker),
        space: Some(booking::hold_space_request::Space::ZoneId(
            "chilled-a".into(),
        )),
        pallets: 1,
        first_day: Some(date),
        last_day: Some(date),
        hold_ttl: hold_ttl.map(|ttl| prost_types::Duration {
            seconds: ttl.as_secs() as i64,
            nanos: 0,
        }),
        ..Default::default()
    };
    async move {
        let held = client.hold_space(hold).await?.into_inner();
        client
            .confirm_booking(booking::ConfirmBookingRequest {
                request_id: format!("bench-{run}-{worker}-{iteration}-confirm"),
                booking_id: held.booking_id,
                actor: Default::default(),
            })
            .await
            .map(|_| ())
    }
}
