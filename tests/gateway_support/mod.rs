//! The harness of the root package's tests of the gateway against the real inventory,
//! telemetry and booking services, in-process on 127.0.0.1: the gateway's network harness
//! (written once, in `services/gateway/tests/common/net.rs`) with the real site services,
//! and what these tests ask the sites directly (receipts, stock, ledgers, readings).
#![allow(dead_code)]

#[path = "../../services/gateway/tests/common/net.rs"]
mod net;

use std::time::Duration;

use coldchain_proto::common::v1 as common;
use coldchain_proto::inventory::v1 as inv;
use coldchain_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use coldchain_proto::network::v1 as pb;
use coldchain_proto::telemetry::v1 as tel;
use coldchain_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use coldchain_runtime::host::{ServiceContext, StartError};
use coldchain_runtime::network::ServiceKind;
use coldchain_runtime::server::ServiceSpec;
use prost::Message;
use tonic::Status;
use tonic::transport::Channel;

pub use net::*;

/// The network of these tests: the real site services.
pub type Net = Network<RealSites>;

pub type Inventory = InventoryServiceClient<Channel>;
pub type Telemetry = TelemetryServiceClient<Channel>;

/// The real inventory, telemetry and booking services.
pub enum RealSites {}

impl SiteServices for RealSites {
    fn build(kind: ServiceKind, ctx: &ServiceContext) -> Result<ServiceSpec, StartError> {
        match kind {
            ServiceKind::Inventory => coldchain_inventory::service(ctx),
            ServiceKind::Telemetry => coldchain_telemetry::service(ctx),
            _ => coldchain_booking::service(ctx),
        }
    }
}

impl Network<RealSites> {
    /// A client of a site's inventory.
    pub async fn inventory(&self, site: &str) -> Inventory {
        InventoryServiceClient::connect(self.endpoint(site, INVENTORY))
            .await
            .expect("connect to inventory")
    }

    /// A client of a site's telemetry.
    pub async fn telemetry(&self, site: &str) -> Telemetry {
        TelemetryServiceClient::connect(self.endpoint(site, TELEMETRY))
            .await
            .expect("connect to telemetry")
    }
}

/// Receives `quantity` kg of `sku`/`lot` into `zone` at a site (expiry far ahead).
pub async fn receive(net: &Net, site: &str, sku: &str, lot: &str, zone: &str, quantity: i64) {
    receive_lot(net, site, sku, lot, zone, quantity, date(2099, 12, 31)).await;
}

/// Receives `quantity` kg of `sku`/`lot` into `zone` at a site, with an expiry.
pub async fn receive_lot(
    net: &Net,
    site: &str,
    sku: &str,
    lot: &str,
    zone: &str,
    quantity: i64,
    expiry: common::Date,
) {
    let mut client = net.inventory(site).await;
    client
        .record_movements(inv::RecordMovementsRequest {
            request_id: format!("receive-{site}-{sku}-{lot}-{zone}-{quantity}"),
            movements: vec![inv::Movement {
                kind: inv::MovementKind::Receipt as i32,
                sku: sku.into(),
                lot: Some(inv::LotInfo {
                    lot_id: lot.into(),
                    expiry: Some(expiry),
                    production: Some(date(2026, 1, 15)),
                    origin: "Qianyang, Hunan".into(),
                }),
                zone_id: zone.into(),
                quantity,
                unit: "kg".into(),
                ..inv::Movement::default()
            }],
            actor: Default::default(),
        })
        .await
        .expect("receipt recorded");
}

/// The on-hand quantity of a sku at a site, over all lots and zones (0 when unknown).
pub async fn on_hand(net: &Net, site: &str, sku: &str) -> i64 {
    let mut client = net.inventory(site).await;
    match client
        .get_stock(inv::GetStockRequest {
            sku: sku.into(),
            ..inv::GetStockRequest::default()
        })
        .await
    {
        Ok(response) => response.into_inner().totals.map_or(0, |t| t.on_hand),
        Err(status) if status.code() == tonic::Code::NotFound => 0,
        Err(status) => panic!("get_stock at {site}: {status:?}"),
    }
}

/// The ledger entries of a site's inventory of one transfer.
pub async fn transfer_entries(net: &Net, site: &str, transfer_id: &str) -> Vec<inv::LedgerEntry> {
    ledger_where(net, site, |e| e.transfer_id == transfer_id).await
}

/// The entries of a site's whole ledger that `keep` keeps, read with WatchLedger.
pub async fn ledger_where(
    net: &Net,
    site: &str,
    keep: impl Fn(&inv::LedgerEntry) -> bool,
) -> Vec<inv::LedgerEntry> {
    let mut client = net.inventory(site).await;
    let mut stream = client
        .watch_ledger(inv::WatchLedgerRequest { from_sequence: 1 })
        .await
        .expect("watch ledger")
        .into_inner();
    let mut out = Vec::new();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("ledger answers")
            .expect("ledger stream")
            .expect("a message");
        let head = message.head_sequence;
        let last = message.entries.last().map(|e| e.sequence).unwrap_or(0);
        out.extend(message.entries.into_iter().filter(|e| keep(e)));
        if last >= head {
            return out;
        }
    }
}

/// The field names of an INVALID_ARGUMENT's BadRequest details (`google.rpc.Status`
/// details, decoded here: the root package's tests do without `tonic-types`).
pub fn fields(status: &Status) -> Vec<String> {
    #[derive(Clone, PartialEq, prost::Message)]
    struct RpcStatus {
        #[prost(message, repeated, tag = "3")]
        details: Vec<prost_types::Any>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct BadRequest {
        #[prost(message, repeated, tag = "1")]
        field_violations: Vec<FieldViolation>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct FieldViolation {
        #[prost(string, tag = "1")]
        field: String,
    }
    let details = RpcStatus::decode(status.details())
        .unwrap_or_default()
        .details;
    details
        .iter()
        .filter(|any| any.type_url.ends_with("/google.rpc.BadRequest"))
        .filter_map(|any| BadRequest::decode(any.value.as_slice()).ok())
        .flat_map(|bad| bad.field_violations.into_iter().map(|v| v.field))
        .collect()
}

/// Registers a reefer sensor (no transfer) with instant excursions, for raising alarms.
pub async fn register_reefer(telemetry: &mut Telemetry, sensor_id: &str) {
    telemetry
        .register_sensor(tel::RegisterSensorRequest {
            request_id: format!("register-{sensor_id}"),
            sensor_id: sensor_id.into(),
            binding: Some(tel::register_sensor_request::Binding::Reefer(
                tel::ReeferBinding {
                    container_id: format!("C-{sensor_id}"),
                    train_or_route: String::new(),
                    transfer_id: String::new(),
                    temperature_class: common::TemperatureClass::Chilled as i32,
                },
            )),
            profile: Some(tel::SensorProfile {
                min_excursion_duration: Some(prost_types::Duration {
                    seconds: 0,
                    nanos: 0,
                }),
                ..tel::SensorProfile::default()
            }),
            description: "test reefer".into(),
            actor: Default::default(),
        })
        .await
        .expect("sensor registered");
}

/// Seconds since the epoch, now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Pushes one reading of `celsius` at the instant `at` (seconds since the epoch).
pub async fn push(
    telemetry: &mut Telemetry,
    sensor_id: &str,
    request_id: &str,
    at: i64,
    celsius: f64,
) {
    telemetry
        .push_readings(tel::PushReadingsRequest {
            request_id: request_id.into(),
            readings: vec![tel::Reading {
                sensor_id: sensor_id.into(),
                time: Some(prost_types::Timestamp {
                    seconds: at,
                    nanos: 0,
                }),
                celsius,
                humidity_percent: None,
                door_open: None,
            }],
        })
        .await
        .expect("readings pushed");
}

/// Every event of a site's alarm feed, read directly from its telemetry service.
pub async fn site_alarm_events(telemetry: &mut Telemetry) -> Vec<tel::AlarmEvent> {
    let mut stream = telemetry
        .watch_alarms(tel::WatchAlarmsRequest { from_sequence: 1 })
        .await
        .expect("watch alarms")
        .into_inner();
    let mut out = Vec::new();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("the feed answers")
            .expect("the feed")
            .expect("a message");
        let head = message.head_sequence;
        out.extend(message.events);
        if out.last().map_or(0, |e| e.sequence) >= head {
            return out;
        }
    }
}

/// StartTransfer, which must succeed.
pub async fn start_transfer(
    gateway: &mut Gateway,
    request: pb::StartTransferRequest,
) -> pb::Transfer {
    gateway
        .start_transfer(request)
        .await
        .expect("transfer started")
        .into_inner()
}

/// ReceiveTransfer.
pub async fn receive_transfer(
    gateway: &mut Gateway,
    request_id: &str,
    transfer_id: &str,
) -> Result<pb::Transfer, tonic::Status> {
    gateway
        .receive_transfer(pb::ReceiveTransferRequest {
            request_id: request_id.into(),
            transfer_id: transfer_id.into(),
            actor: Default::default(),
        })
        .await
        .map(|r| r.into_inner())
}

/// The store of the stopped gateway, opened by the test (the stopped gateway's last
/// connection tasks may hold its database a moment). Close it with `raw().close()`.
pub async fn stopped_gateway_store(net: &Net) -> coldchain_gateway::store::GatewayStore {
    let started = std::time::Instant::now();
    loop {
        match net.gateway_context().open_store() {
            Ok(store) => return coldchain_gateway::store::GatewayStore::new(store),
            Err(_) if started.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("the gateway's store: {error}"),
        }
    }
}
