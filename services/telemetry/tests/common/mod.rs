//! In-process harness: a real telemetry server on 127.0.0.1:0 over a temporary data dir,
//! with a manual clock, and a fake inventory service for holds.
#![allow(dead_code)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coldchain_proto::inventory::v1 as inv;
use coldchain_proto::inventory::v1::inventory_service_server::{
    InventoryService, InventoryServiceServer,
};
use coldchain_proto::telemetry::v1 as pb;
use coldchain_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use coldchain_runtime::Shutdown;
use coldchain_runtime::client::ClientOptions;
use coldchain_runtime::config::Config;
use coldchain_runtime::host::{RunningService, ServiceContext, spawn_service};
use coldchain_runtime::network::{NetworkConfig, ServiceKind};
use coldchain_runtime::server::{Limits, ServiceSpec, always_healthy, bind, never_fatal};
use coldchain_store::ManualClock;
use coldchain_telemetry::{Telemetry, TelemetryOptions};
use coldchain_testkit::server::{Build, TestServer, shipped_network};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

pub const SITE: &str = "cn-huaihua-park";
/// 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600_000;
pub const MINUTE: i64 = 60_000;

pub fn network_with_inventory(inventory: &str) -> Arc<NetworkConfig> {
    let mut network = shipped_network();
    for site in &mut network.sites {
        // Never reach a real dev network on the shipped ports.
        site.endpoints.inventory = Some(inventory.to_string());
    }
    network.gateway.endpoint = Some(format!("http://127.0.0.1:{}", free_port()));
    Arc::new(network)
}

/// A port nothing listens on (free when asked).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn fast_options() -> TelemetryOptions {
    TelemetryOptions {
        offline_check_interval: None,
        hold_initial_backoff: Duration::from_millis(50),
        hold_max_backoff: Duration::from_millis(300),
        hold_max_backoff_refused: Duration::from_millis(300),
        ..TelemetryOptions::default()
    }
}

pub struct Server {
    pub telemetry: Telemetry,
    pub running: RunningService,
    pub client: TelemetryServiceClient<Channel>,
}

impl Server {
    pub async fn start(
        dir: &Path,
        clock: Arc<ManualClock>,
        network: Arc<NetworkConfig>,
        options: TelemetryOptions,
    ) -> Server {
        Self::start_with_config(dir, clock, network, options, |_| {}).await
    }

    /// Like [`Server::start`], with a last edit of the runtime configuration (e.g. a short
    /// `stream_idle_timeout`).
    pub async fn start_with_config(
        dir: &Path,
        clock: Arc<ManualClock>,
        network: Arc<NetworkConfig>,
        options: TelemetryOptions,
        edit: impl FnOnce(&mut Config),
    ) -> Server {
        let mut config = Config {
            data_dir: dir.to_path_buf(),
            ..Config::default()
        };
        edit(&mut config);
        let site = network.site(SITE).expect("site").clone();
        let opened = Arc::new(Mutex::new(None));
        let build: Build = {
            let opened = opened.clone();
            Arc::new(move |ctx: &ServiceContext| {
                let telemetry = Telemetry::open(ctx, options.clone())?;
                let spec = telemetry.spec();
                *opened.lock().expect("opened") = Some(telemetry);
                Ok(spec)
            })
        };
        let mut server = TestServer::new(
            ServiceKind::Telemetry,
            site,
            (*network).clone(),
            clock,
            config.clone(),
            build,
        );
        // Exactly the given configuration, in the given directory.
        server.config = config;
        server.client = ClientOptions {
            connect_timeout: Duration::from_millis(300),
            call_timeout: Duration::from_secs(2),
            ..ClientOptions::default()
        };
        server.boot().await;
        let telemetry = opened
            .lock()
            .expect("opened")
            .take()
            .expect("telemetry opened");
        let running = server.take_running().expect("running");
        let client = TelemetryServiceClient::connect(running.endpoint())
            .await
            .expect("connect");
        Server {
            telemetry,
            running,
            client,
        }
    }

    pub async fn client(&self) -> TelemetryServiceClient<Channel> {
        TelemetryServiceClient::connect(self.running.endpoint())
            .await
            .expect("connect")
    }

    pub async fn stop(self) {
        self.running.stop().await;
    }
}

pub fn ts(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1_000),
        nanos: (ms.rem_euclid(1_000) * 1_000_000) as i32,
    }
}

pub fn ms_of(t: &prost_types::Timestamp) -> i64 {
    t.seconds * 1_000 + i64::from(t.nanos) / 1_000_000
}

pub fn reading(sensor: &str, ms: i64, celsius: f64) -> pb::Reading {
    pb::Reading {
        sensor_id: sensor.to_string(),
        time: Some(ts(ms)),
        celsius,
        humidity_percent: None,
        door_open: None,
    }
}

pub fn zone_sensor(
    request_id: &str,
    sensor: &str,
    zone: &str,
    profile: Option<pb::SensorProfile>,
) -> pb::RegisterSensorRequest {
    pb::RegisterSensorRequest {
        request_id: request_id.to_string(),
        sensor_id: sensor.to_string(),
        binding: Some(pb::register_sensor_request::Binding::ZoneId(
            zone.to_string(),
        )),
        profile,
        description: format!("{sensor} in {zone}"),
        actor: Default::default(),
    }
}

pub fn minutes(n: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: n * 60,
        nanos: 0,
    }
}

pub async fn push(
    client: &mut TelemetryServiceClient<Channel>,
    request_id: &str,
    readings: Vec<pb::Reading>,
) -> pb::IngestSummary {
    client
        .push_readings(pb::PushReadingsRequest {
            request_id: request_id.to_string(),
            readings,
        })
        .await
        .expect("push readings")
        .into_inner()
}

pub async fn alarms(client: &mut TelemetryServiceClient<Channel>, sensor: &str) -> Vec<pb::Alarm> {
    client
        .list_alarms(pb::ListAlarmsRequest {
            sensor_id: sensor.to_string(),
            ..Default::default()
        })
        .await
        .expect("list alarms")
        .into_inner()
        .alarms
}

/// Field names of an INVALID_ARGUMENT's BadRequest details.
pub fn bad_fields(status: &Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// Polls `check` every 20 ms until it returns Some, or panics after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An inventory service that only knows PlaceHold: it records every call and answers
/// idempotently by request_id (one hold per request_id).
#[derive(Clone, Default)]
pub struct FakeInventory {
    pub calls: Arc<Mutex<Vec<inv::PlaceHoldRequest>>>,
}

impl FakeInventory {
    pub fn calls(&self) -> Vec<inv::PlaceHoldRequest> {
        self.calls.lock().unwrap().clone()
    }

    /// Serves on `port` (which must be free) until the returned service is stopped.
    pub async fn serve(&self, port: u16) -> RunningService {
        let listener = bind(format!("127.0.0.1:{port}").parse().unwrap())
            .await
            .expect("bind fake inventory");
        let spec = ServiceSpec {
            label: "fake-inventory".into(),
            service_name: coldchain_proto::INVENTORY_SERVICE,
            routes: tonic::service::Routes::new(InventoryServiceServer::new(self.clone())),
            probe: always_healthy(),
            on_stopped: Box::new(|| {}),
            fatal: never_fatal(),
        };
        spawn_service(listener, spec, Limits::default(), Shutdown::new()).expect("spawn fake")
    }
}

#[tonic::async_trait]
impl InventoryService for FakeInventory {
    async fn list_lot_entries(
        &self,
        _: Request<inv::ListLotEntriesRequest>,
    ) -> Result<Response<inv::ListLotEntriesResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn get_transformation(
        &self,
        _: Request<inv::GetTransformationRequest>,
    ) -> Result<Response<inv::TransformationRecord>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn record_movements(
        &self,
        _: Request<inv::RecordMovementsRequest>,
    ) -> Result<Response<inv::RecordMovementsResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn get_stock(
        &self,
        _: Request<inv::GetStockRequest>,
    ) -> Result<Response<inv::GetStockResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn list_stock(
        &self,
        _: Request<inv::ListStockRequest>,
    ) -> Result<Response<inv::ListStockResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn list_expiring(
        &self,
        _: Request<inv::ListExpiringRequest>,
    ) -> Result<Response<inv::ListExpiringResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn allocate_stock(
        &self,
        _: Request<inv::AllocateStockRequest>,
    ) -> Result<Response<inv::Allocation>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn release_allocation(
        &self,
        _: Request<inv::ReleaseAllocationRequest>,
    ) -> Result<Response<inv::ReleaseAllocationResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn place_hold(
        &self,
        request: Request<inv::PlaceHoldRequest>,
    ) -> Result<Response<inv::Hold>, Status> {
        let req = request.into_inner();
        let mut calls = self.calls.lock().unwrap();
        calls.push(req.clone());
        let mut distinct: Vec<&str> = Vec::new();
        for call in calls.iter() {
            if !distinct.contains(&call.request_id.as_str()) {
                distinct.push(&call.request_id);
            }
        }
        let n = distinct
            .iter()
            .position(|id| *id == req.request_id)
            .map_or(distinct.len(), |i| i + 1);
        Ok(Response::new(inv::Hold {
            hold_id: format!("hold-{n}"),
            zone_id: req.zone_id,
            sku: req.sku,
            lot_id: req.lot_id,
            reason: req.reason,
            reference: req.reference,
            state: inv::HoldState::Active as i32,
            ..Default::default()
        }))
    }
    async fn release_hold(
        &self,
        _: Request<inv::ReleaseHoldRequest>,
    ) -> Result<Response<inv::Hold>, Status> {
        Err(Status::unimplemented("fake"))
    }
    type WatchLedgerStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<inv::WatchLedgerResponse, Status>> + Send>,
    >;
    async fn watch_ledger(
        &self,
        _: Request<inv::WatchLedgerRequest>,
    ) -> Result<Response<Self::WatchLedgerStream>, Status> {
        Err(Status::unimplemented("fake"))
    }
}

use coldchain_proto::network::v1 as net;
use coldchain_proto::network::v1::network_service_server::{NetworkService, NetworkServiceServer};

/// A gateway that only knows GetTransfer, answering one fixed transfer.
#[derive(Clone)]
pub struct FakeGateway {
    pub transfer: Arc<Mutex<net::Transfer>>,
}

impl FakeGateway {
    pub async fn serve(&self, port: u16) -> RunningService {
        let listener = bind(format!("127.0.0.1:{port}").parse().unwrap())
            .await
            .expect("bind fake gateway");
        let spec = ServiceSpec {
            label: "fake-gateway".into(),
            service_name: coldchain_proto::NETWORK_SERVICE,
            routes: tonic::service::Routes::new(NetworkServiceServer::new(self.clone())),
            probe: always_healthy(),
            on_stopped: Box::new(|| {}),
            fatal: never_fatal(),
        };
        spawn_service(listener, spec, Limits::default(), Shutdown::new()).expect("spawn fake")
    }
}

#[tonic::async_trait]
impl NetworkService for FakeGateway {
    async fn recall_lot(
        &self,
        _: Request<net::RecallLotRequest>,
    ) -> Result<Response<net::RecallAnswer>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn release_recall(
        &self,
        _: Request<net::ReleaseRecallRequest>,
    ) -> Result<Response<net::RecallAnswer>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn get_recall(
        &self,
        _: Request<net::GetRecallRequest>,
    ) -> Result<Response<net::RecallAnswer>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn list_recalls(
        &self,
        _: Request<net::ListRecallsRequest>,
    ) -> Result<Response<net::ListRecallsResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn export_trace_epcis(
        &self,
        _: Request<net::TraceLotRequest>,
    ) -> Result<Response<net::EpcisDocument>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn trace_lot(
        &self,
        _: Request<net::TraceLotRequest>,
    ) -> Result<Response<net::TraceLotResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn list_sites(
        &self,
        _: Request<net::ListSitesRequest>,
    ) -> Result<Response<net::ListSitesResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn find_stock(
        &self,
        _: Request<net::FindStockRequest>,
    ) -> Result<Response<net::FindStockResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn list_expiring(
        &self,
        _: Request<net::NetworkListExpiringRequest>,
    ) -> Result<Response<net::NetworkListExpiringResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn find_space(
        &self,
        _: Request<net::FindSpaceRequest>,
    ) -> Result<Response<net::FindSpaceResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn list_alarms(
        &self,
        _: Request<net::ListAlarmsRequest>,
    ) -> Result<Response<net::ListAlarmsResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    type WatchAlarmsStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<net::WatchAlarmsResponse, Status>> + Send>,
    >;
    async fn watch_alarms(
        &self,
        _: Request<net::WatchAlarmsRequest>,
    ) -> Result<Response<Self::WatchAlarmsStream>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn start_transfer(
        &self,
        _: Request<net::StartTransferRequest>,
    ) -> Result<Response<net::Transfer>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn receive_transfer(
        &self,
        _: Request<net::ReceiveTransferRequest>,
    ) -> Result<Response<net::Transfer>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn get_transfer(
        &self,
        request: Request<net::GetTransferRequest>,
    ) -> Result<Response<net::Transfer>, Status> {
        let transfer = self.transfer.lock().unwrap().clone();
        if request.into_inner().transfer_id != transfer.transfer_id {
            return Err(Status::not_found("no such transfer"));
        }
        Ok(Response::new(transfer))
    }
    async fn list_transfers(
        &self,
        _: Request<net::ListTransfersRequest>,
    ) -> Result<Response<net::ListTransfersResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
}
