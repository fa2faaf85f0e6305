#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
//! The booking service of one site (`coldchain.booking.v1.BookingService`): pallet
//! positions in temperature zones, reserved per site-local day by shippers, forwarders and
//! e-commerce sellers. Two clients racing for the last pallets of a frozen room never both
//! win.
//!
//! One shape, data flowing one way: [`api`] (tonic handlers of a few lines) → [`wire`]
//! (protobuf ⇄ domain, validation of form, the bytes kept for idempotent answers) →
//! [`app`] (the use cases: zones of a request, who may see which booking, the background
//! sweeper) → [`store`] (tables and write closures on `coldchain_store`) → [`domain`] (the
//! rules, pure: states, transitions, capacity arithmetic, zone choice, site-local days,
//! booking ids). [`error`] is the one place a refusal becomes a gRPC status.
//!
//! # Decisions
//!
//! - **Capacity** is `capacity_pallets` of each zone in `deploy/network.toml`, per
//!   site-local day. Counters per (zone, day) of held / confirmed / checked-in pallets change
//!   in the same atomic, flushed write as the booking and its ledger entry; holds check room
//!   under the store's single writer lock, so the invariant (HELD + CONFIRMED + CHECKED_IN
//!   ≤ capacity on every zone-day) holds under any concurrency, and across crashes because
//!   the write is one sled batch. `free` is clamped at 0 if the file's capacity is lowered
//!   below existing bookings (new holds are then refused until it frees up).
//! - **Days** are inclusive at both ends (`first_day == last_day` is one day); at most 366
//!   days. HoldSpace refuses a `first_day` before the site-local today (INVALID_ARGUMENT,
//!   checked inside the write so an idempotent retry still gets its stored answer);
//!   GetAvailability refuses a range entirely in the past.
//! - **Zone choice** for a class: the *tightest fit* among the zones with room on every day
//!   (the least free positions left on the fullest day after the hold; ties by file order),
//!   keeping big blocks free elsewhere. No room: FAILED_PRECONDITION listing every short day
//!   of the zone that came closest (fewest pallets missing in total), one
//!   `PreconditionFailure` violation (kind `CAPACITY`) per short day.
//! - **Booking ids** are unique across the network: `BK-` + the 12-digit ledger sequence of
//!   the hold's entry + `-` + the site id, e.g. `BK-000000000042-cn-huaihua-park` (letters,
//!   digits and `-` only: safe in URLs and command lines; at most 79 bytes). Ordered by
//!   creation within a site, no extra row; an idempotent replay returns the stored response
//!   (same id). Bookings made by builds before this one keep their ids (`BK-` + the 12
//!   digits alone, the same at every site) and are found by them at their site; they sort
//!   before the new ones of the same first day, as they were made first. An id naming
//!   another site is NOT_FOUND (naming that site) without a read; any other id this site
//!   does not have is NOT_FOUND as before. See [`domain::id`].
//! - **Pallet counts** fit the contract's `int32`: a zone offers at most
//!   [`domain::MAX_ZONE_PALLETS`] (2,147,483,647) positions a day (a larger
//!   `capacity_pallets` counts as that), and held + confirmed + checked_in never exceed the
//!   capacity, so every count and sum GetAvailability reports is exact.
//! - **Holds** last `hold_ttl` (default 15 min, at most 24 h), but never beyond the check-in
//!   deadline of their first day (`expires_at` is capped there).
//! - **Lapses**: a HELD booking strictly after `expires_at` is EXPIRED; a CONFIRMED one
//!   strictly after `check_in_deadline` (end of the site-local first day + the no-show grace,
//!   [`domain::DEFAULT_NO_SHOW_GRACE`] = 6 h unless built with [`BookingOptions`]) is NO_SHOW.
//!   Both free their space. Correctness does not depend on the sweeper: reads show the
//!   effective state, HoldSpace lapses every due booking inside its own write before it
//!   checks room, GetAvailability subtracts due-but-unswept bookings under the writer lock,
//!   and a transition on a lapsed booking is refused naming EXPIRED / NO_SHOW (ConfirmBooking:
//!   "hold expired"), writing nothing. The background sweeper ([`store::Bookings::sweep_due`],
//!   every second, stops on shutdown) stores the lapses (state, counters, ledger entry) using
//!   the `due` index keyed by (due instant, booking id).
//! - **CheckIn** (`pallets_arrived` 1..=booked, unset = all) moves the booked pallets from
//!   `confirmed` to `checked_in`. Fewer arrivals keep the full booking counted: the proto
//!   defines `DayAvailability.checked_in` as the booked pallets, not only those that arrived.
//!   Check-in is allowed any time while CONFIRMED (also before first_day: early arrivals).
//! - **CompleteBooking** frees the days *after* the site-local day of completion (the proto
//!   says so); the days up to and including it stay counted in `checked_in` as a record of
//!   the positions used (a COMPLETED booking "occupies" them). Completion before first_day
//!   frees every day.
//! - **Ledger**: every state change (also automatic lapses) appends one entry, the booking
//!   after the change ([`domain::LedgerEntry`], postcard), in the same write.

pub mod api;
pub mod app;
pub mod domain;
pub mod error;
pub mod store;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use coldchain_proto::booking::v1::booking_service_server::BookingServiceServer;
use coldchain_runtime::host::{
    ServiceContext, StartError, spawn_idempotency_sweeper, store_failure, store_probe,
};
use coldchain_runtime::observe::sampler;
use coldchain_runtime::server::ServiceSpec;

pub use store::Bookings;

/// Tuning of a booking service instance (tests shorten or lengthen these).
#[derive(Debug, Clone)]
pub struct BookingOptions {
    /// How long after the end of its first day a CONFIRMED booking may still check in.
    pub no_show_grace: Duration,
    /// How often the background sweeper stores lapsed holds and no-shows.
    pub sweep_interval: Duration,
}

impl Default for BookingOptions {
    fn default() -> Self {
        Self {
            no_show_grace: domain::DEFAULT_NO_SHOW_GRACE,
            sweep_interval: Duration::from_secs(1),
        }
    }
}

/// Builds the booking server of `ctx`'s site.
pub fn service(ctx: &ServiceContext) -> Result<ServiceSpec, StartError> {
    service_with(ctx, BookingOptions::default()).map(|(spec, _)| spec)
}

/// Builds the booking server of `ctx`'s site with `options`, and returns a handle on its
/// bookings (for tests: sweeping, auditing, reading the ledger).
pub fn service_with(
    ctx: &ServiceContext,
    options: BookingOptions,
) -> Result<(ServiceSpec, Bookings), StartError> {
    let store = ctx.open_store()?;
    let bookings = Bookings::new(store.clone(), ctx.site.clone(), options.no_show_grace);
    spawn_idempotency_sweeper(store.clone(), ctx.shutdown.clone());
    app::sweeper::spawn_sweeper(
        bookings.clone(),
        options.sweep_interval,
        ctx.shutdown.clone(),
    );
    let reply = Arc::new(wire::BookingCodec::new(&ctx.site.id));
    let app = Arc::new(app::BookingApp::new(bookings.clone(), reply));
    let sampled = app.clone();
    sampler::spawn(
        ctx.metric_labels(),
        ctx.config.metrics_sample_interval,
        ctx.shutdown.clone(),
        Arc::new(move || {
            let app = sampled.clone();
            Box::pin(async move { app.sample().await })
        }),
    );
    let server = BookingServiceServer::new(api::Api::new(app))
        .max_decoding_message_size(ctx.config.max_message_bytes)
        .max_encoding_message_size(ctx.config.max_message_bytes);
    let closing = store.clone();
    Ok((
        ServiceSpec {
            label: ctx.label(),
            service_name: coldchain_proto::BOOKING_SERVICE,
            routes: tonic::service::Routes::new(server),
            fatal: store_failure(store.clone()),
            probe: store_probe(store),
            on_stopped: Box::new(move || closing.close()),
        },
        bookings,
    ))
}
