//! The whole network as one real process: `coldchain dev` starts 25 servers that answer
//! health and reflection (open to anyone) and require the keys of the keyring it made for
//! everything else, stops cleanly on SIGTERM, reopens its databases, and refuses a broken
//! configuration with exit code 2 and every problem listed. `serve` refuses to start
//! without credentials unless told to run insecurely, and `dev --insecure-no-auth` says so
//! loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coldchain_proto::inventory::v1 as inv;
use coldchain_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use coldchain_proto::network::v1 as gw;
use coldchain_proto::network::v1::network_service_client::NetworkServiceClient;
use coldchain_runtime::network::ServiceKind;
use common::TestNetwork;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

fn start_dev(net: &TestNetwork) -> std::process::Child {
    common::command()
        .args(["dev", "--network"])
        .arg(&net.file)
        .env("COLDCHAIN_DATA_DIR", net.data_dir())
        .env("COLDCHAIN_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn coldchain dev")
}

/// Every endpoint of the network: 8 sites × 3 services + the gateway.
fn endpoints(net: &TestNetwork) -> Vec<(String, &'static str)> {
    let config = net.config();
    let mut out = vec![(config.gateway_endpoint(), coldchain_proto::NETWORK_SERVICE)];
    for site in &config.sites {
        for (kind, name) in [
            (ServiceKind::Inventory, coldchain_proto::INVENTORY_SERVICE),
            (ServiceKind::Telemetry, coldchain_proto::TELEMETRY_SERVICE),
            (ServiceKind::Booking, coldchain_proto::BOOKING_SERVICE),
        ] {
            out.push((site.endpoint(kind).expect("site endpoint"), name));
        }
    }
    out
}

async fn serving(endpoint: &str, service: &str) -> bool {
    let Ok(channel) = tonic::transport::Endpoint::from_shared(endpoint.to_string())
        .expect("endpoint")
        .connect_timeout(Duration::from_millis(200))
        .connect()
        .await
    else {
        return false;
    };
    let request = HealthCheckRequest {
        service: service.to_string(),
    };
    matches!(
        HealthClient::new(channel).check(request).await,
        Ok(response) if response.get_ref().status == ServingStatus::Serving as i32
    )
}

async fn wait_all_serving(net: &TestNetwork, within: Duration) -> Duration {
    let started = Instant::now();
    for (endpoint, service) in endpoints(net) {
        while !serving(&endpoint, service).await {
            assert!(
                started.elapsed() < within,
                "{endpoint} ({service}) not SERVING within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    started.elapsed()
}

/// The services a server lists over one version of the reflection protocol (the two
/// versions' messages have the same shape in different packages).
macro_rules! reflected_services {
    ($version:ident, $endpoint:expr) => {{
        use tonic_reflection::pb::$version::ServerReflectionRequest;
        use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;

        let channel = tonic::transport::Endpoint::from_shared($endpoint.to_string())
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let response = ServerReflectionClient::new(channel)
            .server_reflection_info(futures::stream::iter([request]))
            .await
            .expect("reflection")
            .into_inner()
            .message()
            .await
            .expect("answer")
            .expect("one message");
        match response.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
                names.sort();
                names
            }
            other => panic!("unexpected reflection answer {other:?}"),
        }
    }};
}

fn sigterm(child: &std::process::Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

fn wait_exit(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if started.elapsed() > within {
            let _ = child.kill();
            panic!("did not exit within {within:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_serves_health_and_reflection_then_stops_cleanly_and_reopens() {
    let net = TestNetwork::new();
    let mut dev = start_dev(&net);
    // The issue asks for 5 s from a release binary; a debug build on a shared CI machine
    // gets more room, the release figure is measured by `coldchain bench`.
    wait_all_serving(&net, Duration::from_secs(30)).await;

    // Exactly what each server serves, over both reflection versions: a service listed but
    // not served would answer UNIMPLEMENTED to whoever believed the list.
    for (endpoint, service) in endpoints(&net) {
        let mut expected = vec![
            service.to_string(),
            coldchain_proto::ADMIN_SERVICE.to_string(),
            "grpc.health.v1.Health".to_string(),
            "grpc.reflection.v1.ServerReflection".to_string(),
            "grpc.reflection.v1alpha.ServerReflection".to_string(),
        ];
        expected.sort();
        assert_eq!(
            reflected_services!(v1, endpoint),
            expected,
            "{endpoint}, v1"
        );
        assert_eq!(
            reflected_services!(v1alpha, endpoint),
            expected,
            "{endpoint}, v1alpha"
        );
    }

    check_credentials_are_required(&net).await;

    sigterm(&dev);
    let status = wait_exit(&mut dev, Duration::from_secs(5));
    assert!(status.success(), "dev exited with {status}");
    for site in net.config().sites {
        for kind in ["inventory", "telemetry", "booking"] {
            let path = net.data_dir().join(&site.id).join(kind);
            assert!(
                common::has_database(&path),
                "no database at {}",
                path.display()
            );
        }
    }

    // Every database reopens (a store that cannot open fails the start with exit 1).
    let mut again = start_dev(&net);
    wait_all_serving(&net, Duration::from_secs(30)).await;
    sigterm(&again);
    assert!(wait_exit(&mut again, Duration::from_secs(5)).success());
}

/// The dev network refuses callers without a key (UNAUTHENTICATED) and roles the policy
/// does not allow (PERMISSION_DENIED), and answers the keys of its keyring.
async fn check_credentials_are_required(net: &TestNetwork) {
    let keyring = net.dev_keyring();
    assert!(
        keyring.credentials_file().is_file(),
        "dev made its keyring under the data directory"
    );
    let gateway = net.config().gateway_endpoint();
    let list = || gw::ListSitesRequest {
        page_size: 100,
        ..Default::default()
    };

    let anonymous = NetworkServiceClient::new(common::channel(&gateway, None))
        .list_sites(list())
        .await
        .expect_err("a call without a key is refused");
    assert_eq!(
        anonymous.code(),
        tonic::Code::Unauthenticated,
        "{anonymous:?}"
    );
    let sites = NetworkServiceClient::new(keyring.channel(&gateway, common::OPERATIONS))
        .list_sites(list())
        .await
        .expect("operations lists the sites")
        .into_inner()
        .sites;
    assert_eq!(sites.len(), 8);

    let site = "cn-huaihua-park";
    let inventory = net.endpoint(site, ServiceKind::Inventory);
    let receipt = inv::RecordMovementsRequest {
        request_id: "network-test-receipt".into(),
        movements: vec![inv::Movement {
            kind: inv::MovementKind::Receipt as i32,
            sku: "citrus-navel".into(),
            lot: Some(common::lasting_lot("L1")),
            zone_id: "chilled-a".into(),
            quantity: 10,
            unit: "kg".into(),
            ..Default::default()
        }],
        actor: Default::default(),
    };
    let booking_client = keyring.channel(&inventory, &common::customer("hunan-citrus-export"));
    let denied = InventoryServiceClient::new(booking_client)
        .record_movements(receipt.clone())
        .await
        .expect_err("a booking client may not record movements");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    let other_site = keyring.channel(&inventory, &common::warehouse("la-vientiane"));
    let denied = InventoryServiceClient::new(other_site)
        .record_movements(receipt.clone())
        .await
        .expect_err("a warehouse system may not record at another site");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    let entries =
        InventoryServiceClient::new(keyring.channel(&inventory, &common::warehouse(site)))
            .record_movements(receipt)
            .await
            .expect("the site's own warehouse system records its receipt")
            .into_inner()
            .entries;
    assert_eq!(entries.len(), 1);
}

fn run_dev_expecting_failure(net_file: &std::path::Path, env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = common::command()
        .args(["dev", "--network"])
        .arg(net_file)
        .env("COLDCHAIN_DATA_DIR", dir.path())
        .envs(env.iter().copied())
        .output()
        .expect("run");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_broken_network_file_exits_2_listing_every_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = common::shipped_network()
        .replacen("capacity_pallets = 2400", "capacity_pallets = 0", 1)
        .replacen("class = \"CHILLED\"", "class = \"LUKEWARM\"", 1)
        .replacen("inventory = 50121", "inventory = 50111", 1);
    let file = dir.path().join("network.toml");
    std::fs::write(&file, broken).expect("write");
    let (code, stderr) = run_dev_expecting_failure(&file, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("capacity_pallets"), "{stderr}");
    assert!(stderr.contains("LUKEWARM"), "{stderr}");
    assert!(stderr.contains("50111"), "{stderr}");
}

#[test]
fn bad_environment_values_exit_2_listing_every_problem() {
    let net = TestNetwork::new();
    let (code, stderr) = run_dev_expecting_failure(
        &net.file,
        &[
            ("COLDCHAIN_RPC_TIMEOUT", "soon"),
            ("COLDCHAIN_LOG_FORMAT", "xml"),
            ("COLDCHAIN_NO_SUCH_THING", "1"),
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    for needle in [
        "COLDCHAIN_RPC_TIMEOUT",
        "COLDCHAIN_LOG_FORMAT",
        "COLDCHAIN_NO_SUCH_THING",
    ] {
        assert!(stderr.contains(needle), "missing {needle} in {stderr}");
    }
}

#[test]
fn serve_without_credentials_exits_2_naming_auth_file() {
    let net = TestNetwork::new();
    let output = common::command()
        .args([
            "serve",
            "inventory",
            "--site",
            "cn-huaihua-park",
            "--network",
        ])
        .arg(&net.file)
        .env("COLDCHAIN_DATA_DIR", net.data_dir())
        .env_remove("COLDCHAIN_AUTH_FILE")
        .env_remove("COLDCHAIN_INSECURE_NO_AUTH")
        .output()
        .expect("run coldchain serve");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("auth_file"), "{stderr}");
    assert!(stderr.contains("insecure_no_auth"), "{stderr}");
}

#[test]
fn dev_without_authentication_warns_loudly() {
    use std::io::BufRead as _;

    let net = TestNetwork::new();
    let mut dev = common::command()
        .args(["dev", "--insecure-no-auth", "--network"])
        .arg(&net.file)
        .env("COLDCHAIN_DATA_DIR", net.data_dir())
        .env("COLDCHAIN_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn coldchain dev --insecure-no-auth");
    let stderr = dev.stderr.take().expect("piped stderr");
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let warned = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let warning = line.contains("AUTHENTICATION IS OFF");
                seen.push(line);
                if warning {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    let _ = dev.kill();
    let _ = dev.wait();
    assert!(warned, "no warning on stderr:\n{}", seen.join("\n"));
    assert!(
        seen.iter().any(|l| l.starts_with(&"!".repeat(40))),
        "the warning stands out: {seen:?}"
    );
    assert!(
        !net.data_dir().join("dev-credentials").exists(),
        "no keyring is made when authentication is off"
    );
}
