//! The whole network as one real process: `coldchain dev` starts 25 servers that answer
//! health and reflection, stops cleanly on SIGTERM, reopens its databases, and refuses a
//! broken configuration with exit code 2 and every problem listed.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coldchain_runtime::network::ServiceKind;
use common::TestNetwork;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

fn start_dev(net: &TestNetwork) -> std::process::Child {
    Command::new(common::binary())
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

async fn reflected_services(endpoint: &str) -> Vec<String> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_string())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = responses
        .message()
        .await
        .expect("answer")
        .expect("one message");
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer {other:?}"),
    }
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

    for (endpoint, service) in endpoints(&net) {
        let services = reflected_services(&endpoint).await;
        assert!(
            services.iter().any(|s| s == service),
            "{endpoint} lists {services:?}"
        );
        assert!(
            services.iter().any(|s| s == "grpc.health.v1.Health"),
            "{endpoint} lists {services:?}"
        );
    }

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

fn run_dev_expecting_failure(net_file: &std::path::Path, env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(common::binary())
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
