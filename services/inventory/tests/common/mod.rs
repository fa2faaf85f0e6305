//! Test harness: a real inventory server on 127.0.0.1:0 over a temporary data dir, with a
//! manual clock, restartable on the same data; message builders; a fake booking service.
#![allow(dead_code)]

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coldchain_inventory::Options;
use coldchain_proto::booking::v1 as booking;
use coldchain_proto::booking::v1::booking_service_server::{BookingService, BookingServiceServer};
use coldchain_proto::common::v1 as common;
use coldchain_proto::inventory::v1 as pb;
use coldchain_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use coldchain_runtime::Shutdown;
use coldchain_runtime::host::{RunningService, ServiceContext, spawn_service};
use coldchain_runtime::network::{NetworkConfig, ServiceKind};
use coldchain_runtime::server::{ServiceSpec, always_healthy, bind, never_fatal};
use coldchain_testkit::server::{Build, TestServer, shipped_network};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

pub const SITE: &str = "cn-huaihua-park";
pub const CHILLED: &str = "chilled-a";
pub const FROZEN: &str = "frozen-a";
pub const PHARMA: &str = "pharma-a";

/// 2026-03-01T02:00:00Z = 10:00 on 2026-03-01 in Shanghai.
pub const START_MS: i64 = 1_772_330_400_000;
pub const DAY_MS: i64 = 86_400_000;

pub type Client = InventoryServiceClient<Channel>;

pub fn network() -> NetworkConfig {
    shipped_network()
}

/// A running inventory service (a [`TestServer`], which it derefs to: `dir`, `clock`,
/// `endpoint`, `stop`, `restart`) and the options it is built with.
pub struct Harness {
    pub server: TestServer,
    pub options: Options,
}

impl Deref for Harness {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        &self.server
    }
}

impl DerefMut for Harness {
    fn deref_mut(&mut self) -> &mut TestServer {
        &mut self.server
    }
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(network(), Options::default()).await
    }

    pub async fn start_with(network: NetworkConfig, options: Options) -> Self {
        let site = network.site(SITE).expect("site").clone();
        let build_options = options.clone();
        let build: Build = Arc::new(move |ctx: &ServiceContext| {
            coldchain_inventory::service_with(ctx, build_options.clone())
        });
        let server =
            TestServer::start(ServiceKind::Inventory, site, network, START_MS, build).await;
        Self { server, options }
    }

    pub async fn client(&self) -> Client {
        InventoryServiceClient::connect(self.endpoint.clone())
            .await
            .expect("connect")
    }

    pub fn shutdown(&self) -> Shutdown {
        self.server.shutdown().expect("running")
    }

    pub fn advance_days(&self, days: i64) {
        self.clock
            .advance(Duration::from_millis((days * DAY_MS) as u64));
    }
}

// ---------------------------------------------------------------------------------------------
// Builders

pub fn date(year: i32, month: i32, day: i32) -> common::Date {
    common::Date { year, month, day }
}

pub fn lot(lot_id: &str, expiry: Option<common::Date>) -> Option<pb::LotInfo> {
    Some(pb::LotInfo {
        lot_id: lot_id.into(),
        expiry,
        production: None,
        origin: String::new(),
    })
}

pub fn movement(
    kind: pb::MovementKind,
    sku: &str,
    lot_id: &str,
    zone: &str,
    quantity: i64,
) -> pb::Movement {
    pb::Movement {
        kind: kind as i32,
        sku: sku.into(),
        lot: lot(lot_id, None),
        zone_id: zone.into(),
        quantity,
        unit: "kg".into(),
        ..Default::default()
    }
}

pub fn receipt(
    sku: &str,
    lot_id: &str,
    zone: &str,
    quantity: i64,
    expiry: common::Date,
) -> pb::Movement {
    pb::Movement {
        lot: lot(lot_id, Some(expiry)),
        ..movement(pb::MovementKind::Receipt, sku, lot_id, zone, quantity)
    }
}

pub fn issue(sku: &str, lot_id: &str, zone: &str, quantity: i64) -> pb::Movement {
    movement(pb::MovementKind::Issue, sku, lot_id, zone, quantity)
}

pub fn batch(request_id: &str, movements: Vec<pb::Movement>) -> pb::RecordMovementsRequest {
    pb::RecordMovementsRequest {
        request_id: request_id.into(),
        movements,
        actor: Default::default(),
    }
}

pub async fn record(
    client: &mut Client,
    request_id: &str,
    movements: Vec<pb::Movement>,
) -> Result<Vec<pb::LedgerEntry>, Status> {
    client
        .record_movements(batch(request_id, movements))
        .await
        .map(|r| r.into_inner().entries)
}

pub async fn stock(
    client: &mut Client,
    sku: &str,
    lot_id: &str,
    zone: &str,
) -> Result<pb::GetStockResponse, Status> {
    client
        .get_stock(pb::GetStockRequest {
            sku: sku.into(),
            lot_id: lot_id.into(),
            zone_id: zone.into(),
        })
        .await
        .map(Response::into_inner)
}

/// The one level of a position.
pub async fn level(client: &mut Client, sku: &str, lot_id: &str, zone: &str) -> pb::StockLevel {
    let response = stock(client, sku, lot_id, zone).await.expect("get stock");
    assert_eq!(response.levels.len(), 1, "{response:?}");
    response.levels.into_iter().next().unwrap()
}

/// Every ledger entry from `from` up to the current head, read through WatchLedger.
pub async fn ledger(client: &mut Client, from: u64) -> Vec<pb::LedgerEntry> {
    let mut stream = client
        .watch_ledger(pb::WatchLedgerRequest {
            from_sequence: from,
        })
        .await
        .expect("watch")
        .into_inner();
    let mut out = Vec::new();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("ledger message in time")
            .expect("stream ok")
            .expect("stream open");
        let head = message.head_sequence;
        out.extend(message.entries);
        let last = out.last().map_or(from.max(1) - 1, |e| e.sequence);
        if last >= head {
            return out;
        }
    }
}

/// The field names of an INVALID_ARGUMENT's violations.
pub fn fields(status: &Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// The (kind, subject) pairs of a FAILED_PRECONDITION's violations.
pub fn preconditions(status: &Status) -> Vec<(String, String, String)> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .precondition_failure()
        .map(|p| {
            p.violations
                .iter()
                .map(|v| (v.r#type.clone(), v.subject.clone(), v.description.clone()))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// A fake booking service: CheckIn answers by booking id, everything else is unimplemented.

#[derive(Clone, Default)]
pub struct FakeBooking {
    pub check_ins: Arc<Mutex<Vec<booking::CheckInRequest>>>,
}

impl FakeBooking {
    pub fn calls(&self) -> Vec<booking::CheckInRequest> {
        self.check_ins.lock().unwrap().clone()
    }
}

#[tonic::async_trait]
impl BookingService for FakeBooking {
    async fn get_availability(
        &self,
        _: Request<booking::GetAvailabilityRequest>,
    ) -> Result<Response<booking::GetAvailabilityResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn hold_space(
        &self,
        _: Request<booking::HoldSpaceRequest>,
    ) -> Result<Response<booking::Booking>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn confirm_booking(
        &self,
        _: Request<booking::ConfirmBookingRequest>,
    ) -> Result<Response<booking::Booking>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn cancel_booking(
        &self,
        _: Request<booking::CancelBookingRequest>,
    ) -> Result<Response<booking::Booking>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn check_in(
        &self,
        request: Request<booking::CheckInRequest>,
    ) -> Result<Response<booking::Booking>, Status> {
        let request = request.into_inner();
        self.check_ins.lock().unwrap().push(request.clone());
        match request.booking_id.as_str() {
            "bk-unknown" => Err(Status::not_found(format!(
                "booking_id {:?} does not exist",
                request.booking_id
            ))),
            "bk-cancelled" => Err(Status::failed_precondition(
                "booking is CANCELLED, not CONFIRMED",
            )),
            "bk-flaky" => Err(Status::unavailable("booking store is closing")),
            _ => Ok(Response::new(booking::Booking {
                booking_id: request.booking_id.clone(),
                site_id: SITE.into(),
                state: booking::BookingState::CheckedIn as i32,
                pallets_arrived: request.pallets_arrived.unwrap_or(0),
                ..Default::default()
            })),
        }
    }
    async fn complete_booking(
        &self,
        _: Request<booking::CompleteBookingRequest>,
    ) -> Result<Response<booking::Booking>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn get_booking(
        &self,
        _: Request<booking::GetBookingRequest>,
    ) -> Result<Response<booking::Booking>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn list_bookings(
        &self,
        _: Request<booking::ListBookingsRequest>,
    ) -> Result<Response<booking::ListBookingsResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
}

/// Starts the fake booking service on 127.0.0.1:0; answers its endpoint.
pub async fn start_fake_booking(fake: FakeBooking) -> RunningService {
    let spec = ServiceSpec {
        label: "fake-booking".into(),
        service_name: coldchain_proto::BOOKING_SERVICE,
        routes: tonic::service::Routes::new(BookingServiceServer::new(fake)),
        probe: always_healthy(),
        on_stopped: Box::new(|| {}),
        fatal: never_fatal(),
    };
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.expect("bind");
    spawn_service(listener, spec, Default::default(), Shutdown::new()).expect("spawn fake booking")
}

/// The shipped network with the park's booking endpoint replaced.
pub fn network_with_booking(endpoint: &str) -> NetworkConfig {
    let mut network = network();
    for site in &mut network.sites {
        if site.id == SITE {
            site.endpoints.booking = Some(endpoint.to_string());
        }
    }
    network
}

// ---------------------------------------------------------------------------------------------
// Allocation fixtures

/// Stock of SKU-F in lots expiring March to June, received a minute apart.
pub async fn allocation_fixture(h: &Harness, c: &mut Client) {
    record(
        c,
        "f-1",
        vec![receipt("SKU-F", "L-JUN", CHILLED, 40, date(2026, 6, 1))],
    )
    .await
    .unwrap();
    h.clock.advance(Duration::from_secs(60));
    record(
        c,
        "f-2",
        vec![
            receipt("SKU-F", "L-MAY", CHILLED, 20, date(2026, 5, 1)),
            receipt("SKU-F", "L-MAY", FROZEN, 20, date(2026, 5, 1)),
            receipt("SKU-F", "L-APR", CHILLED, 40, date(2026, 4, 1)),
            receipt("SKU-F", "L-MAR", CHILLED, 40, date(2026, 3, 3)),
        ],
    )
    .await
    .unwrap();
    c.place_hold(pb::PlaceHoldRequest {
        request_id: "hold-apr".into(),
        sku: "SKU-F".into(),
        lot_id: "L-APR".into(),
        reason: "qa sample failed".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    h.advance_days(5); // 2026-03-06: L-MAR is expired
}

/// An AllocateStock request for SKU-F.
pub fn allocate(
    request_id: &str,
    order: &str,
    quantity: i64,
    strategy: pb::AllocationStrategy,
) -> pb::AllocateStockRequest {
    pb::AllocateStockRequest {
        request_id: request_id.into(),
        order_id: order.into(),
        sku: "SKU-F".into(),
        quantity,
        unit: String::new(),
        zone_id: String::new(),
        strategy: strategy as i32,
        actor: Default::default(),
    }
}
