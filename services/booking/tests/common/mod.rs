//! In-process booking servers for the API tests: a temporary data directory, a manual
//! clock, the real server bootstrap on 127.0.0.1:0, generated clients.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDate;
use coldchain_booking::{BookingOptions, Bookings, service_with};
use coldchain_proto::booking::v1 as pb;
use coldchain_proto::booking::v1::booking_service_client::BookingServiceClient;
use coldchain_proto::common::v1 as common;
use coldchain_runtime::config::Config;
use coldchain_runtime::host::ServiceContext;
use coldchain_runtime::network::{
    NetworkConfig, ServiceKind, SiteConfig, TemperatureClass, ZoneConfig,
};
use coldchain_store::ManualClock;
use coldchain_testkit::server::{Build, TestServer, shipped_network};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

/// 2026-12-01T02:00:00Z: 10:00 on 2026-12-01 in Huaihua (Asia/Shanghai).
pub const T0_MS: i64 = 1_796_090_400_000;

pub fn network() -> NetworkConfig {
    shipped_network()
}

/// The park as shipped.
pub fn park() -> SiteConfig {
    network().site("cn-huaihua-park").expect("park").clone()
}

/// The park with extra zones, for tests that need small or several zones of a class.
pub fn park_with(zones: &[(&str, TemperatureClass, u32)]) -> SiteConfig {
    let mut site = park();
    for (id, class, capacity) in zones {
        let (low, high) = class.limits();
        site.zones.push(ZoneConfig {
            id: id.to_string(),
            class: *class,
            min_celsius: low.unwrap_or(-25.0),
            max_celsius: high.unwrap_or(-18.0),
            capacity_pallets: *capacity,
        });
    }
    site
}

pub fn day(s: &str) -> NaiveDate {
    s.parse().expect("a date")
}

pub fn date(s: &str) -> common::Date {
    coldchain_runtime::proto_time::date(day(s))
}

/// A booking server in this process: a [`TestServer`] and the [`Bookings`] it serves.
pub struct Harness {
    pub dir: Arc<tempfile::TempDir>,
    pub clock: Arc<ManualClock>,
    pub site: SiteConfig,
    pub options: BookingOptions,
    pub server: TestServer,
    pub bookings: Bookings,
    built: Arc<Mutex<Option<Bookings>>>,
}

impl Harness {
    /// The park at [`T0_MS`], default options, no background sweeps during the test.
    pub async fn start() -> Self {
        Self::start_site(park(), quiet()).await
    }

    pub async fn start_site(site: SiteConfig, options: BookingOptions) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        Self::start_in(dir, ManualClock::at(T0_MS), site, options).await
    }

    pub async fn start_in(
        dir: Arc<tempfile::TempDir>,
        clock: Arc<ManualClock>,
        site: SiteConfig,
        options: BookingOptions,
    ) -> Self {
        let built = Arc::new(Mutex::new(None));
        let build: Build = {
            let (built, options) = (built.clone(), options.clone());
            Arc::new(move |ctx: &ServiceContext| {
                let (spec, bookings) = service_with(ctx, options.clone())?;
                *built.lock().expect("built") = Some(bookings);
                Ok(spec)
            })
        };
        let mut server = TestServer::new(
            ServiceKind::Booking,
            site.clone(),
            network(),
            clock.clone(),
            Config::default(),
            build,
        );
        server.config.data_dir = dir.path().to_path_buf();
        server.boot().await;
        let bookings = Self::built(&built);
        Self {
            dir,
            clock,
            site,
            options,
            server,
            bookings,
            built,
        }
    }

    fn built(built: &Mutex<Option<Bookings>>) -> Bookings {
        built.lock().expect("built").take().expect("built bookings")
    }

    pub fn endpoint(&self) -> String {
        self.server.endpoint.clone()
    }

    /// A client on its own connection.
    pub async fn client(&self) -> BookingServiceClient<Channel> {
        let channel = tonic::transport::Endpoint::from_shared(self.endpoint())
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        BookingServiceClient::new(channel)
    }

    /// Stops the server (drain, flush, close) and starts a new one on the same data.
    pub async fn restart(self) -> Self {
        let Harness {
            dir,
            clock,
            site,
            options,
            mut server,
            bookings,
            built,
        } = self;
        server.stop().await;
        // The store is released only when its last handle is.
        drop(bookings);
        server.boot().await;
        let bookings = Self::built(&built);
        Self {
            dir,
            clock,
            site,
            options,
            server,
            bookings,
            built,
        }
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    pub fn set_ms(&self, ms: i64) {
        self.clock.set(ms);
    }
}

/// Options for tests that drive lapses by hand: the background sweeper stays idle.
pub fn quiet() -> BookingOptions {
    BookingOptions {
        sweep_interval: Duration::from_secs(3600),
        ..BookingOptions::default()
    }
}

pub fn rid(tag: &str) -> String {
    format!("req-{tag}")
}

/// A HoldSpace request in a zone.
pub fn hold_zone(
    request: &str,
    customer: &str,
    zone: &str,
    pallets: i32,
    first: &str,
    last: &str,
) -> pb::HoldSpaceRequest {
    pb::HoldSpaceRequest {
        request_id: rid(request),
        customer_id: customer.to_string(),
        space: Some(pb::hold_space_request::Space::ZoneId(zone.to_string())),
        pallets,
        first_day: Some(date(first)),
        last_day: Some(date(last)),
        hold_ttl: None,
        customer_reference: String::new(),
        actor: Default::default(),
    }
}

/// A HoldSpace request for a class.
pub fn hold_class(
    request: &str,
    customer: &str,
    class: common::TemperatureClass,
    pallets: i32,
    first: &str,
    last: &str,
) -> pb::HoldSpaceRequest {
    pb::HoldSpaceRequest {
        space: Some(pb::hold_space_request::Space::TemperatureClass(
            class as i32,
        )),
        ..hold_zone(request, customer, "", pallets, first, last)
    }
}

pub fn confirm(request: &str, booking_id: &str) -> pb::ConfirmBookingRequest {
    pb::ConfirmBookingRequest {
        request_id: rid(request),
        booking_id: booking_id.to_string(),
        actor: Default::default(),
    }
}

pub fn cancel(request: &str, booking_id: &str) -> pb::CancelBookingRequest {
    pb::CancelBookingRequest {
        request_id: rid(request),
        booking_id: booking_id.to_string(),
        reason: "plans changed".to_string(),
        actor: Default::default(),
    }
}

pub fn check_in(request: &str, booking_id: &str, arrived: Option<i32>) -> pb::CheckInRequest {
    pb::CheckInRequest {
        request_id: rid(request),
        booking_id: booking_id.to_string(),
        pallets_arrived: arrived,
        actor: Default::default(),
    }
}

pub fn complete(request: &str, booking_id: &str) -> pb::CompleteBookingRequest {
    pb::CompleteBookingRequest {
        request_id: rid(request),
        booking_id: booking_id.to_string(),
        actor: Default::default(),
    }
}

pub fn availability_zone(zone: &str, first: &str, last: &str) -> pb::GetAvailabilityRequest {
    pb::GetAvailabilityRequest {
        space: Some(pb::get_availability_request::Space::ZoneId(
            zone.to_string(),
        )),
        first_day: Some(date(first)),
        last_day: Some(date(last)),
    }
}

/// Every booking, through every page.
pub async fn list_all(
    client: &mut BookingServiceClient<Channel>,
    mut request: pb::ListBookingsRequest,
) -> Vec<pb::Booking> {
    let mut out = Vec::new();
    loop {
        let page = client
            .list_bookings(request.clone())
            .await
            .expect("list")
            .into_inner();
        out.extend(page.bookings);
        if page.next_page_token.is_empty() {
            return out;
        }
        request.page_token = page.next_page_token;
    }
}

fn to_day(d: &common::Date) -> NaiveDate {
    NaiveDate::from_ymd_opt(d.year, d.month as u32, d.day as u32).expect("valid date")
}

/// The invariant seen from outside: for every zone of the site and every day of
/// `first..=last`, GetAvailability's held / confirmed / checked_in equal the sums over the
/// live bookings ListBookings returns, and never exceed the capacity.
pub async fn assert_counters_match_bookings(
    client: &mut BookingServiceClient<Channel>,
    site: &SiteConfig,
    first: &str,
    last: &str,
) {
    let bookings = list_all(
        client,
        pb::ListBookingsRequest {
            page_size: 1000,
            ..Default::default()
        },
    )
    .await;
    let mut expected: BTreeMap<(String, NaiveDate), (i32, i32, i32)> = BTreeMap::new();
    for b in &bookings {
        let state = pb::BookingState::try_from(b.state).expect("state");
        let (first_day, last_day) = (
            to_day(b.first_day.as_ref().unwrap()),
            to_day(b.last_day.as_ref().unwrap()),
        );
        let mut d = first_day;
        while d <= last_day {
            let e = expected.entry((b.zone_id.clone(), d)).or_default();
            match state {
                pb::BookingState::Held => e.0 += b.pallets,
                pb::BookingState::Confirmed => e.1 += b.pallets,
                pb::BookingState::CheckedIn => e.2 += b.pallets,
                _ => {}
            }
            d = d.succ_opt().unwrap();
        }
    }
    for zone in &site.zones {
        let rows = client
            .get_availability(availability_zone(&zone.id, first, last))
            .await
            .expect("availability")
            .into_inner()
            .days;
        for row in rows {
            let d = to_day(row.date.as_ref().unwrap());
            let want = expected
                .get(&(zone.id.clone(), d))
                .copied()
                .unwrap_or_default();
            assert_eq!(
                (row.held, row.confirmed, row.checked_in),
                want,
                "zone {} on {d}: counters vs live bookings",
                zone.id
            );
            assert!(row.held + row.confirmed + row.checked_in <= row.capacity);
            assert_eq!(
                row.free,
                row.capacity - row.held - row.confirmed - row.checked_in
            );
        }
    }
}

// ----- helpers of the API tests -----

pub fn ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .expect("instant")
        .timestamp_millis()
}

pub fn ts(rfc3339: &str) -> prost_types::Timestamp {
    let ms = ms(rfc3339);
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub fn state(b: &pb::Booking) -> pb::BookingState {
    pb::BookingState::try_from(b.state).expect("a known state")
}

pub fn bad_fields(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

pub async fn rows(
    c: &mut pb::booking_service_client::BookingServiceClient<tonic::transport::Channel>,
    zone: &str,
    first: &str,
    last: &str,
) -> Vec<(String, i32, i32, i32, i32)> {
    c.get_availability(availability_zone(zone, first, last))
        .await
        .expect("availability")
        .into_inner()
        .days
        .into_iter()
        .map(|r| {
            let d = r.date.unwrap();
            (
                format!("{:04}-{:02}-{:02}", d.year, d.month, d.day),
                r.held,
                r.confirmed,
                r.checked_in,
                r.free,
            )
        })
        .collect()
}

pub fn row(
    day: &str,
    held: i32,
    confirmed: i32,
    checked_in: i32,
    free: i32,
) -> (String, i32, i32, i32, i32) {
    (day.to_string(), held, confirmed, checked_in, free)
}
