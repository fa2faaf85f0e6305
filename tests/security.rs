//! Security against real servers with real credentials: the role × RPC matrix on a `dev`
//! network (its keyring holds a key for every role), cross-site and cross-customer attempts,
//! oversized messages, the per-credential rate limit across connections, and TLS (plaintext
//! refused, a foreign CA refused, mutual TLS requiring a client certificate).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut};
use coldchain_proto::booking::v1 as booking;
use coldchain_proto::common::v1 as common_pb;
use coldchain_proto::inventory::v1 as inventory;
use coldchain_runtime::auth::ApiKey;
use coldchain_runtime::client::{Channel, ClientOptions, lazy_channel};
use coldchain_runtime::network::ServiceKind;
use common::{TestNetwork, command};
use prost::Message;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// The site whose servers the matrix calls.
const SITE: &str = "la-vientiane";
/// Another site: its warehouse must not touch SITE's data.
const OTHER_SITE: &str = "th-bangkok";
/// A booking client's customer, and another customer.
const CUSTOMER: &str = "hunan-citrus-export";
const OTHER_CUSTOMER: &str = "lao-banana-forwarding";

/// A codec that sends and receives message bytes as they are: one client for every method.
#[derive(Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n).to_vec()))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    Unary,
    ServerStream,
    ClientStream,
}

/// Calls `path` with `body` and answers the status code (OK for a stream that opened).
async fn call(channel: &Channel, path: &str, shape: Shape, body: Vec<u8>) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    if let Err(error) = grpc.ready().await {
        return tonic::Status::unavailable(error.to_string());
    }
    let path = http::uri::PathAndQuery::from_str(path).expect("a method path");
    let result = match shape {
        Shape::Unary => {
            let mut request = tonic::Request::new(body);
            request.set_timeout(Duration::from_secs(10));
            grpc.unary(request, path, Raw).await.map(|_| ())
        }
        Shape::ServerStream => {
            let mut request = tonic::Request::new(body);
            request.set_timeout(Duration::from_secs(10));
            grpc.server_streaming(request, path, Raw).await.map(|_| ())
        }
        Shape::ClientStream => {
            let request = tonic::Request::new(tokio_stream::once(body));
            grpc.client_streaming(request, path, Raw).await.map(|_| ())
        }
    };
    match result {
        Ok(()) => tonic::Status::ok(""),
        Err(status) => status,
    }
}

/// Every method of our contracts (not the bench's), with its shape.
fn methods() -> Vec<(String, String, Shape)> {
    let set = prost_types::FileDescriptorSet::decode(coldchain_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    let mut out = Vec::new();
    for file in &set.file {
        if !file.package().starts_with("coldchain.") || file.package() == "coldchain.bench.v1" {
            continue;
        }
        for service in &file.service {
            for method in &service.method {
                let shape = match (method.client_streaming(), method.server_streaming()) {
                    (true, _) => Shape::ClientStream,
                    (false, true) => Shape::ServerStream,
                    (false, false) => Shape::Unary,
                };
                out.push((
                    format!("{}.{}", file.package(), service.name()),
                    method.name().to_owned(),
                    shape,
                ));
            }
        }
    }
    out
}

/// The callers of the matrix, by column.
const CALLERS: [&str; 10] = [
    "none", "bad", "ops", "wms", "wms_b", "sensors", "cust", "gw", "tel", "inv",
];

/// The policy, written out independently of `coldchain_runtime::auth::grants`: who may call
/// each method on SITE's servers (and the gateway). Everyone else gets PERMISSION_DENIED,
/// and "none"/"bad" always UNAUTHENTICATED.
fn expected() -> BTreeMap<&'static str, &'static [&'static str]> {
    BTreeMap::from([
        // Served by every server with a database; called here on SITE's inventory.
        ("AdminService/StreamSnapshot", &["ops"][..]),
        ("InventoryService/RecordMovements", &["wms", "gw"][..]),
        ("InventoryService/GetStock", &["wms", "ops", "gw"][..]),
        ("InventoryService/ListStock", &["wms", "ops", "gw"][..]),
        ("InventoryService/ListExpiring", &["wms", "ops", "gw"][..]),
        ("InventoryService/WatchLedger", &["wms", "ops", "gw"][..]),
        ("InventoryService/AllocateStock", &["wms"][..]),
        ("InventoryService/ReleaseAllocation", &["wms"][..]),
        ("InventoryService/ListLotEntries", &["wms", "ops", "gw"][..]),
        (
            "InventoryService/GetTransformation",
            &["wms", "ops", "gw"][..],
        ),
        (
            "InventoryService/PlaceHold",
            &["wms", "ops", "tel", "gw"][..],
        ),
        (
            "InventoryService/ReleaseHold",
            &["wms", "ops", "tel", "gw"][..],
        ),
        ("TelemetryService/StreamReadings", &["sensors"][..]),
        ("TelemetryService/PushReadings", &["sensors"][..]),
        ("TelemetryService/RegisterSensor", &["ops", "gw"][..]),
        ("TelemetryService/ListSensors", &["wms", "ops", "gw"][..]),
        ("TelemetryService/QueryReadings", &["wms", "ops", "gw"][..]),
        (
            "TelemetryService/GetMeanKineticTemperature",
            &["wms", "ops", "gw"][..],
        ),
        ("TelemetryService/GetExposure", &["wms", "ops", "gw"][..]),
        ("TelemetryService/ListAlarms", &["wms", "ops", "gw"][..]),
        ("TelemetryService/WatchAlarms", &["wms", "ops", "gw"][..]),
        ("TelemetryService/AcknowledgeAlarm", &["ops"][..]),
        (
            "BookingService/GetAvailability",
            &["cust", "wms", "ops", "gw"][..],
        ),
        ("BookingService/HoldSpace", &["cust"][..]),
        ("BookingService/ConfirmBooking", &["cust"][..]),
        ("BookingService/CancelBooking", &["cust", "ops"][..]),
        ("BookingService/CheckIn", &["inv", "ops"][..]),
        ("BookingService/CompleteBooking", &["wms", "ops"][..]),
        ("BookingService/GetBooking", &["cust", "wms", "ops"][..]),
        ("BookingService/ListBookings", &["cust", "wms", "ops"][..]),
        (
            "NetworkService/ListSites",
            &["ops", "wms", "wms_b", "sensors", "cust"][..],
        ),
        ("NetworkService/FindSpace", &["cust", "ops"][..]),
        ("NetworkService/FindStock", &["ops"][..]),
        ("NetworkService/ListExpiring", &["ops"][..]),
        ("NetworkService/ListAlarms", &["ops"][..]),
        ("NetworkService/WatchAlarms", &["ops"][..]),
        ("NetworkService/StartTransfer", &["ops"][..]),
        ("NetworkService/ReceiveTransfer", &["ops"][..]),
        ("NetworkService/GetTransfer", &["ops", "tel"][..]),
        ("NetworkService/ListTransfers", &["ops"][..]),
        ("NetworkService/TraceLot", &["ops"][..]),
        ("NetworkService/ExportTraceEpcis", &["ops"][..]),
        ("NetworkService/RecallLot", &["ops"][..]),
        ("NetworkService/ReleaseRecall", &["ops"][..]),
        ("NetworkService/GetRecall", &["ops"][..]),
        ("NetworkService/ListRecalls", &["ops"][..]),
    ])
}

/// A `coldchain dev` network on private ports, with its keyring.
struct Dev {
    net: TestNetwork,
    child: Child,
}

impl Dev {
    fn start() -> Dev {
        let net = TestNetwork::new();
        let child = command()
            .args(["dev", "--network"])
            .arg(&net.file)
            .env("COLDCHAIN_DATA_DIR", net.data_dir())
            .env("COLDCHAIN_LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn coldchain dev");
        Dev { net, child }
    }

    /// Waits until the gateway and SITE's services answer SERVING; fails at once if the
    /// process exited.
    async fn ready(&mut self) {
        let mut endpoints = vec![self.net.config().gateway_endpoint()];
        for service in ["InventoryService", "TelemetryService", "BookingService"] {
            endpoints.push(self.endpoint(service));
        }
        let options = ClientOptions::default();
        for endpoint in endpoints {
            let serving = wait_serving(&endpoint, &options);
            tokio::pin!(serving);
            loop {
                tokio::select! {
                    () = &mut serving => break,
                    () = tokio::time::sleep(Duration::from_millis(200)) => {
                        if let Ok(Some(status)) = self.child.try_wait() {
                            panic!("coldchain dev exited with {status} before serving");
                        }
                    }
                }
            }
        }
    }

    fn key(&self, id: &str) -> ApiKey {
        let path = self
            .net
            .data_dir()
            .join("dev-credentials/keys")
            .join(format!("{id}.key"));
        ApiKey::from_file(&path).expect("a key of the dev keyring")
    }

    /// The key of a matrix column.
    fn caller(&self, column: &str) -> Option<ApiKey> {
        let id = match column {
            "none" => return None,
            "bad" => {
                // A real id with a wrong secret.
                return Some(
                    ApiKey::parse(&format!("cc1.operations.{}", "0".repeat(64))).expect("key"),
                );
            }
            "ops" => "operations".to_owned(),
            "wms" => format!("{SITE}-warehouse"),
            "wms_b" => format!("{OTHER_SITE}-warehouse"),
            "sensors" => format!("{SITE}-sensors"),
            "cust" => format!("customer-{CUSTOMER}"),
            "gw" => "service-gateway".to_owned(),
            "tel" => "service-telemetry".to_owned(),
            "inv" => "service-inventory".to_owned(),
            other => panic!("unknown column {other}"),
        };
        Some(self.key(&id))
    }

    fn endpoint(&self, service: &str) -> String {
        let config = self.net.config();
        match service {
            "NetworkService" => config.gateway_endpoint(),
            "InventoryService" | "AdminService" => self.net.endpoint(SITE, ServiceKind::Inventory),
            "TelemetryService" => self.net.endpoint(SITE, ServiceKind::Telemetry),
            "BookingService" => self.net.endpoint(SITE, ServiceKind::Booking),
            other => panic!("unknown service {other}"),
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn channel(endpoint: &str, key: Option<&ApiKey>) -> Channel {
    let options = ClientOptions {
        key: key.cloned(),
        ..ClientOptions::default()
    };
    lazy_channel(endpoint, &options).expect("channel")
}

/// Waits until `endpoint` answers health SERVING.
async fn wait_serving(endpoint: &str, options: &ClientOptions) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(channel) = lazy_channel(endpoint, options) {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
            let answer = health
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await;
            if matches!(answer, Ok(ref r) if r.get_ref().status == 1) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{endpoint} never became healthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn date(year: i32, month: i32, day: i32) -> Option<common_pb::Date> {
    Some(common_pb::Date { year, month, day })
}

/// The request body a column sends: empty (every field default) except where the caller's
/// own scope must be named for the call to be about itself.
fn body(method: &str, column: &str) -> Vec<u8> {
    match (method, column) {
        ("BookingService/HoldSpace", "cust") => booking::HoldSpaceRequest {
            customer_id: CUSTOMER.into(),
            ..Default::default()
        }
        .encode_to_vec(),
        _ => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_may_call_exactly_what_the_policy_allows() {
    let dev = Dev::start();
    wait_serving(
        &dev.net.config().gateway_endpoint(),
        &ClientOptions::default(),
    )
    .await;
    for service in ["InventoryService", "TelemetryService", "BookingService"] {
        wait_serving(&dev.endpoint(service), &ClientOptions::default()).await;
    }
    let expected = expected();
    let methods = methods();
    assert_eq!(
        methods.len(),
        expected.len(),
        "every method of the contracts is in the matrix"
    );
    let mut wrong = Vec::new();
    for column in CALLERS {
        let key = dev.caller(column);
        for (service, method, shape) in &methods {
            let short_service = service.rsplit('.').next().expect("service name");
            let name = format!("{short_service}/{method}");
            let allowed = expected
                .get(name.as_str())
                .unwrap_or_else(|| panic!("{name} is missing from the matrix"));
            let channel = channel(&dev.endpoint(short_service), key.as_ref());
            let path = format!("/{service}/{method}");
            let status = call(&channel, &path, *shape, body(&name, column)).await;
            let want = match column {
                "none" | "bad" => Some(Code::Unauthenticated),
                _ if allowed.contains(&column) => None,
                _ => Some(Code::PermissionDenied),
            };
            let ok = match want {
                Some(code) => status.code() == code,
                None => !matches!(
                    status.code(),
                    Code::Unauthenticated | Code::PermissionDenied | Code::Unimplemented
                ),
            };
            if !ok {
                wrong.push(format!(
                    "{column:>7} {name}: got {:?} {:?}, want {}",
                    status.code(),
                    status.message(),
                    want.map_or("allowed".to_owned(), |c| format!("{c:?}"))
                ));
            }
            if want == Some(Code::Unauthenticated) {
                assert!(
                    !status.message().contains("operations"),
                    "an unauthenticated answer names no credential: {}",
                    status.message()
                );
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} cells wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // Health and reflection stay open: orchestrators and tools need no key.
    let anonymous = channel(&dev.endpoint("InventoryService"), None);
    let mut health = tonic_health::pb::health_client::HealthClient::new(anonymous);
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health needs no credentials");
}

fn receipt(request_id: &str, quantity: i64) -> inventory::RecordMovementsRequest {
    inventory::RecordMovementsRequest {
        request_id: request_id.into(),
        movements: vec![inventory::Movement {
            kind: inventory::MovementKind::Receipt as i32,
            sku: "SEC-SKU".into(),
            lot: Some(inventory::LotInfo {
                lot_id: "SEC-LOT".into(),
                expiry: date(2030, 1, 1),
                ..Default::default()
            }),
            zone_id: "chilled-a".into(),
            quantity,
            unit: "kg".into(),
            ..Default::default()
        }],
        actor: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_and_cross_customer_attempts_are_denied_and_change_nothing() {
    use booking::booking_service_client::BookingServiceClient;
    use inventory::inventory_service_client::InventoryServiceClient;

    let mut dev = Dev::start();
    dev.ready().await;
    let inventory_endpoint = dev.endpoint("InventoryService");
    let booking_endpoint = dev.endpoint("BookingService");

    // Bangkok's warehouse system cannot write Vientiane's stock.
    let mut bangkok = InventoryServiceClient::new(channel(
        &inventory_endpoint,
        Some(&dev.key(&format!("{OTHER_SITE}-warehouse"))),
    ));
    let denied = bangkok
        .record_movements(receipt("sec-cross-site", 50))
        .await
        .expect_err("cross-site write");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(
        denied.message().contains(OTHER_SITE),
        "{}",
        denied.message()
    );

    // Vientiane's own system can; operations reads exactly that one receipt.
    let mut vientiane = InventoryServiceClient::new(channel(
        &inventory_endpoint,
        Some(&dev.key(&format!("{SITE}-warehouse"))),
    ));
    vientiane
        .record_movements(receipt("sec-own-site", 7))
        .await
        .expect("own-site write");
    let mut ops =
        InventoryServiceClient::new(channel(&inventory_endpoint, Some(&dev.key("operations"))));
    let stock = ops
        .get_stock(inventory::GetStockRequest {
            sku: "SEC-SKU".into(),
            ..Default::default()
        })
        .await
        .expect("operations reads")
        .into_inner();
    let on_hand = stock.totals.as_ref().map_or(0, |t| t.on_hand);
    assert_eq!(on_hand, 7, "the denied receipt changed nothing: {stock:?}");

    // A message over 4 MiB is RESOURCE_EXHAUSTED, before any handler runs.
    let raw = channel(
        &inventory_endpoint,
        Some(&dev.key(&format!("{SITE}-warehouse"))),
    );
    let huge = call(
        &raw,
        "/coldchain.inventory.v1.InventoryService/RecordMovements",
        Shape::Unary,
        vec![0u8; 5 * 1024 * 1024],
    )
    .await;
    assert_eq!(huge.code(), Code::ResourceExhausted, "{huge:?}");

    // Booking clients: only their own customer's bookings.
    let mine = dev.key(&format!("customer-{CUSTOMER}"));
    let theirs = dev.key(&format!("customer-{OTHER_CUSTOMER}"));
    let mut client = BookingServiceClient::new(channel(&booking_endpoint, Some(&mine)));
    let mut other = BookingServiceClient::new(channel(&booking_endpoint, Some(&theirs)));
    let hold = |request_id: &str, customer: &str| booking::HoldSpaceRequest {
        request_id: request_id.into(),
        customer_id: customer.into(),
        space: Some(booking::hold_space_request::Space::ZoneId(
            "chilled-a".into(),
        )),
        pallets: 2,
        first_day: date(2030, 3, 1),
        last_day: date(2030, 3, 2),
        ..Default::default()
    };
    let denied = other
        .hold_space(hold("sec-hold-for-someone-else", CUSTOMER))
        .await
        .expect_err("booking for another customer");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let booking = client
        .hold_space(hold("sec-hold-own", CUSTOMER))
        .await
        .expect("own hold")
        .into_inner();
    let id = booking.booking_id.clone();

    let get = |id: &str| booking::GetBookingRequest {
        booking_id: id.into(),
    };
    let foreign = other.get_booking(get(&id)).await.expect_err("foreign get");
    let missing = other
        .get_booking(get("no-such-booking"))
        .await
        .expect_err("missing get");
    assert_eq!(foreign.code(), Code::PermissionDenied);
    assert_eq!(
        missing.code(),
        Code::PermissionDenied,
        "a missing booking looks the same as someone else's"
    );
    for status in [
        other
            .confirm_booking(booking::ConfirmBookingRequest {
                request_id: "sec-confirm-foreign".into(),
                booking_id: id.clone(),
                actor: Default::default(),
            })
            .await
            .expect_err("foreign confirm"),
        other
            .cancel_booking(booking::CancelBookingRequest {
                request_id: "sec-cancel-foreign".into(),
                booking_id: id.clone(),
                reason: "not mine".into(),
                actor: Default::default(),
            })
            .await
            .expect_err("foreign cancel"),
        other
            .list_bookings(booking::ListBookingsRequest {
                customer_id: CUSTOMER.into(),
                ..Default::default()
            })
            .await
            .expect_err("foreign list"),
    ] {
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    }
    let listed = other
        .list_bookings(booking::ListBookingsRequest::default())
        .await
        .expect("own list")
        .into_inner();
    assert!(listed.bookings.is_empty(), "{listed:?}");
    // The booking is untouched: still HELD, and its owner sees it.
    let seen = client
        .get_booking(get(&id))
        .await
        .expect("own get")
        .into_inner();
    assert_eq!(seen.state, booking::BookingState::Held as i32);
    let listed = client
        .list_bookings(booking::ListBookingsRequest::default())
        .await
        .expect("own list")
        .into_inner();
    assert_eq!(listed.bookings.len(), 1);
}

/// Runs a keyring and certificates command of the binary.
fn coldchain(args: &[&str], network: &Path) {
    let status = command()
        .args(args)
        .arg("--network")
        .arg(network)
        .stdout(Stdio::null())
        .status()
        .expect("run coldchain");
    assert!(status.success(), "coldchain {args:?} failed");
}

/// `coldchain serve booking` for SITE with extra environment.
fn serve_booking(net: &TestNetwork, env: &[(&str, PathBuf)], extra: &[(&str, &str)]) -> Child {
    let mut command = command();
    command
        .args(["serve", "booking", "--site", SITE, "--network"])
        .arg(&net.file)
        .env("COLDCHAIN_DATA_DIR", net.data_dir())
        .env("COLDCHAIN_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (name, value) in env {
        command.env(name, value);
    }
    for (name, value) in extra {
        command.env(name, value);
    }
    command.spawn().expect("spawn coldchain serve")
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn availability() -> booking::GetAvailabilityRequest {
    booking::GetAvailabilityRequest {
        space: Some(booking::get_availability_request::Space::ZoneId(
            "chilled-a".into(),
        )),
        first_day: date(2030, 3, 1),
        last_day: date(2030, 3, 1),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_holds_per_credential_across_connections() {
    use booking::booking_service_client::BookingServiceClient;

    let net = TestNetwork::new();
    let keyring = net.dir.path().join("keyring");
    coldchain(
        &["credentials", "keyring", "--out", keyring.to_str().unwrap()],
        &net.file,
    );
    let _server = Killed(serve_booking(
        &net,
        &[("COLDCHAIN_AUTH_FILE", keyring.join("credentials.toml"))],
        &[("COLDCHAIN_RATE_LIMIT", "1"), ("COLDCHAIN_RATE_BURST", "5")],
    ));
    let endpoint = net.endpoint(SITE, ServiceKind::Booking);
    wait_serving(&endpoint, &ClientOptions::default()).await;

    let ops = ApiKey::from_file(&keyring.join("keys/operations.key")).unwrap();
    // Two channels are two HTTP/2 connections: the limit must not reset per connection.
    let mut first = BookingServiceClient::new(channel(&endpoint, Some(&ops)));
    let mut second = BookingServiceClient::new(channel(&endpoint, Some(&ops)));
    let mut codes = Vec::new();
    for i in 0..12 {
        let client = if i % 2 == 0 { &mut first } else { &mut second };
        codes.push(match client.get_availability(availability()).await {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        });
    }
    let ok = codes.iter().filter(|c| **c == Code::Ok).count();
    let limited = codes
        .iter()
        .filter(|c| **c == Code::ResourceExhausted)
        .count();
    assert!(
        (5..=7).contains(&ok) && ok + limited == codes.len(),
        "burst of 5 at 1/s over two connections: {codes:?}"
    );
    // Another credential has its own budget.
    let warehouse = ApiKey::from_file(&keyring.join(format!("keys/{SITE}-warehouse.key"))).unwrap();
    let mut other = BookingServiceClient::new(channel(&endpoint, Some(&warehouse)));
    other
        .get_availability(availability())
        .await
        .expect("another credential is not limited by the first");
}

fn tls_options(ca: &Path, identity: Option<(&Path, &Path)>, key: &ApiKey) -> ClientOptions {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(ca).expect("ca")));
    if let Some((cert, private)) = identity {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(cert).expect("cert"),
            std::fs::read(private).expect("key"),
        ));
    }
    ClientOptions {
        tls: Some(tls),
        key: Some(key.clone()),
        connect_timeout: Duration::from_secs(2),
        max_attempts: 1,
        ..ClientOptions::default()
    }
}

async fn availability_with(endpoint: &str, options: &ClientOptions) -> Result<(), tonic::Status> {
    use booking::booking_service_client::BookingServiceClient;
    let mut client = BookingServiceClient::new(lazy_channel(endpoint, options).expect("channel"));
    client.get_availability(availability()).await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_required_when_configured_and_mutual_tls_requires_a_client_certificate() {
    let net = TestNetwork::new();
    let keyring = net.dir.path().join("keyring");
    let certs = net.dir.path().join("tls");
    let foreign = net.dir.path().join("foreign-tls");
    coldchain(
        &["credentials", "keyring", "--out", keyring.to_str().unwrap()],
        &net.file,
    );
    coldchain(&["certs", "--out", certs.to_str().unwrap()], &net.file);
    coldchain(&["certs", "--out", foreign.to_str().unwrap()], &net.file);
    let host = format!("booking-{SITE}");
    let mut env = vec![
        ("COLDCHAIN_AUTH_FILE", keyring.join("credentials.toml")),
        ("COLDCHAIN_TLS_CERT", certs.join(format!("{host}.pem"))),
        ("COLDCHAIN_TLS_KEY", certs.join(format!("{host}.key"))),
    ];
    let ops = ApiKey::from_file(&keyring.join("keys/operations.key")).unwrap();
    let endpoint = net.endpoint(SITE, ServiceKind::Booking);
    let trusted = tls_options(&certs.join("ca.pem"), None, &ops);

    {
        let _server = Killed(serve_booking(&net, &env, &[]));
        wait_serving(&endpoint, &trusted).await;
        availability_with(&endpoint, &trusted)
            .await
            .expect("a TLS client trusting the CA, with a key");
        // The healthcheck speaks TLS with the CA of its environment, and says so.
        let address = endpoint.trim_start_matches("http://");
        let checked = command()
            .args(["healthcheck", address])
            .env("COLDCHAIN_TLS_CA", certs.join("ca.pem"))
            .output()
            .expect("run coldchain healthcheck");
        let said = String::from_utf8_lossy(&checked.stdout);
        assert!(checked.status.success(), "{said}");
        assert_eq!(said.trim(), format!("https://{address}: SERVING"));

        // Plaintext is refused: the same key over an unencrypted connection gets nowhere.
        let plaintext = ClientOptions {
            key: Some(ops.clone()),
            max_attempts: 1,
            ..ClientOptions::default()
        };
        let refused = availability_with(&endpoint, &plaintext)
            .await
            .expect_err("plaintext to a TLS server");
        assert_ne!(refused.code(), Code::Ok);
        // A client that trusts another CA refuses the server.
        let wrong_ca = tls_options(&foreign.join("ca.pem"), None, &ops);
        availability_with(&endpoint, &wrong_ca)
            .await
            .expect_err("a server certificate from an unknown CA");
    }

    // Mutual TLS: without a client certificate from the CA, no call gets through. With a
    // health port (as in Kubernetes, whose gRPC probes speak plaintext only), health alone is
    // answered in plaintext there, and nothing else is.
    env.push(("COLDCHAIN_TLS_CLIENT_CA", certs.join("ca.pem")));
    let health_port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let health_port_text = health_port.to_string();
    let _server = Killed(serve_booking(
        &net,
        &env,
        &[("COLDCHAIN_HEALTH_PORT", health_port_text.as_str())],
    ));
    let with_cert = tls_options(
        &certs.join("ca.pem"),
        Some((&certs.join("client.pem"), &certs.join("client.key"))),
        &ops,
    );
    wait_serving(&endpoint, &with_cert).await;
    let health_endpoint = format!("http://127.0.0.1:{health_port}");
    let plaintext = ClientOptions {
        max_attempts: 1,
        ..ClientOptions::default()
    };
    wait_serving(&health_endpoint, &plaintext).await;
    let only_health = availability_with(
        &health_endpoint,
        &ClientOptions {
            key: Some(ops.clone()),
            ..plaintext.clone()
        },
    )
    .await
    .expect_err("the health port serves health only");
    assert_eq!(only_health.code(), Code::Unimplemented, "{only_health:?}");
    availability_with(&endpoint, &with_cert)
        .await
        .expect("a client certificate from the CA");
    availability_with(&endpoint, &trusted)
        .await
        .expect_err("no client certificate under mutual TLS");
    let foreign_cert = tls_options(
        &certs.join("ca.pem"),
        Some((&foreign.join("client.pem"), &foreign.join("client.key"))),
        &ops,
    );
    availability_with(&endpoint, &foreign_cert)
        .await
        .expect_err("a client certificate from another CA");
}
