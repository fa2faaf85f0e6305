//! The operator commands as an operator runs them: `coldchain <command>` processes against a
//! running `coldchain dev` network, checking their tables, their `--json` documents, their
//! errors (`error: <CODE>: <message>`, exit 1) and their usage errors (exit 2). The network
//! requires keys: each command calls as its natural role (or `--as`) with the key from the
//! keyring `dev` made under the data directory they share.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Days, NaiveDate, Utc};
use coldchain_proto::common::v1 as cc;
use coldchain_proto::inventory::v1 as inv;
use coldchain_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use coldchain_proto::telemetry::v1 as tel;
use coldchain_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use coldchain_runtime::network::ServiceKind;
use common::TestNetwork;
use serde_json::Value;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const PARK: &str = "cn-huaihua-park";
const VIENTIANE: &str = "la-vientiane";
const SKU: &str = "kiwifruit-xiangxi";

/// `coldchain dev` on a private network; killed when dropped.
struct Dev {
    net: TestNetwork,
    child: Child,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dev {
    fn start() -> Dev {
        let net = TestNetwork::new();
        let child = common::command()
            .args(["dev", "--network"])
            .arg(&net.file)
            .env("COLDCHAIN_DATA_DIR", net.data_dir())
            .env("COLDCHAIN_LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn coldchain dev");
        let dev = Dev { net, child };
        runtime().block_on(wait_all_serving(&dev.net, Duration::from_secs(60)));
        dev
    }

    fn network(&self) -> String {
        self.net.file.display().to_string()
    }

    /// Runs `coldchain <args> --network <file>` with the data directory of the network,
    /// where its keyring is.
    fn cli(&self, args: &[&str]) -> Out {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.push("--network".into());
        all.push(self.network());
        let data_dir = self.net.data_dir().display().to_string();
        run_env(&all, &[("COLDCHAIN_DATA_DIR", &data_dir)])
    }

    /// Runs a command that must succeed with `--json`, and parses its document.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.cli(&all);
        assert_eq!(out.code, 0, "{args:?} failed: {}", out.stderr);
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {}", out.stdout))
    }
}

/// A finished `coldchain` process.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[String]) -> Out {
    run_env(args, &[])
}

fn run_env(args: &[String], env: &[(&str, &str)]) -> Out {
    let output = common::command()
        .args(args)
        .env("COLDCHAIN_LOG_LEVEL", "warn")
        .envs(env.iter().copied())
        .output()
        .expect("run coldchain");
    Out {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn serving(endpoint: &str) -> bool {
    let Ok(channel) = tonic::transport::Endpoint::from_shared(endpoint.to_string())
        .expect("endpoint")
        .connect_timeout(Duration::from_millis(200))
        .connect()
        .await
    else {
        return false;
    };
    matches!(
        HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await,
        Ok(response) if response.get_ref().status == ServingStatus::Serving as i32
    )
}

/// Waits until the gateway and the 24 site services answer SERVING.
async fn wait_all_serving(net: &TestNetwork, within: Duration) {
    let config = net.config();
    let mut endpoints = vec![config.gateway_endpoint()];
    for site in &config.sites {
        for kind in ServiceKind::SITE_SERVICES {
            endpoints.push(site.endpoint(kind).expect("endpoint"));
        }
    }
    let started = Instant::now();
    for endpoint in endpoints {
        while !serving(&endpoint).await {
            assert!(
                started.elapsed() < within,
                "{endpoint} not SERVING within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn date(d: NaiveDate) -> cc::Date {
    use chrono::Datelike;
    cc::Date {
        year: d.year(),
        month: d.month() as i32,
        day: d.day() as i32,
    }
}

fn local_today(net: &TestNetwork, site: &str) -> NaiveDate {
    let tz = net.config().site(site).expect("site").time_zone;
    Utc::now().with_timezone(&tz).date_naive()
}

fn ts(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: 0,
    }
}

/// Seeds the park's stock: a receipt of 500 kg of kiwifruit into chilled-a, recorded by the
/// park's warehouse system.
async fn seed_stock(net: &TestNetwork) {
    let today = local_today(net, PARK);
    let mut inventory = InventoryServiceClient::new(net.dev_keyring().channel(
        &net.endpoint(PARK, ServiceKind::Inventory),
        &common::warehouse(PARK),
    ));
    inventory
        .record_movements(inv::RecordMovementsRequest {
            request_id: "seed-kiwi".into(),
            movements: vec![inv::Movement {
                kind: inv::MovementKind::Receipt as i32,
                sku: SKU.into(),
                lot: Some(inv::LotInfo {
                    lot_id: "kiwi-l1".into(),
                    expiry: Some(date(today.checked_add_days(Days::new(30)).unwrap())),
                    production: None,
                    origin: "Fenghuang, Xiangxi, Hunan".into(),
                }),
                zone_id: "chilled-a".into(),
                quantity: 500,
                unit: "kg".into(),
                ..inv::Movement::default()
            }],
            actor: Default::default(),
        })
        .await
        .expect("seed receipt");
}

/// A lot of bananas in the park's cool room, where the excursion will be.
async fn seed_cool_room(net: &TestNetwork) {
    let mut inventory = InventoryServiceClient::new(net.dev_keyring().channel(
        &net.endpoint(PARK, ServiceKind::Inventory),
        &common::warehouse(PARK),
    ));
    inventory
        .record_movements(inv::RecordMovementsRequest {
            request_id: "seed-bananas".into(),
            movements: vec![inv::Movement {
                kind: inv::MovementKind::Receipt as i32,
                sku: "banana-cavendish".into(),
                lot: Some(inv::LotInfo {
                    lot_id: "bn-cool-1".into(),
                    expiry: Some(date(
                        local_today(net, PARK)
                            .checked_add_days(Days::new(20))
                            .unwrap(),
                    )),
                    ..Default::default()
                }),
                zone_id: "cool-a".into(),
                quantity: 240,
                unit: "kg".into(),
                ..inv::Movement::default()
            }],
            actor: "receiving dock 2".into(),
        })
        .await
        .expect("seed bananas");
}

/// Seeds the park's telemetry: a sensor in the (empty) cool room with 40 minutes of
/// readings around 12 °C, including a 10-minute excursion at 17.5 °C above its 15 °C limit.
/// Operations registers the sensor; the park's sensor gateway sends the readings.
async fn seed_telemetry(net: &TestNetwork) {
    let endpoint = net.endpoint(PARK, ServiceKind::Telemetry);
    let keyring = net.dev_keyring();
    let mut telemetry = TelemetryServiceClient::new(keyring.channel(&endpoint, common::OPERATIONS));
    let mut sensors =
        TelemetryServiceClient::new(keyring.channel(&endpoint, &common::sensors(PARK)));
    telemetry
        .register_sensor(tel::RegisterSensorRequest {
            request_id: "seed-sensor".into(),
            sensor_id: "room-cool-1".into(),
            binding: Some(tel::register_sensor_request::Binding::ZoneId(
                "cool-a".into(),
            )),
            profile: None,
            description: "cool room A, door side".into(),
            actor: Default::default(),
        })
        .await
        .expect("register sensor");
    let now = Utc::now();
    let readings = (0..80)
        .map(|i: i64| tel::Reading {
            sensor_id: "room-cool-1".into(),
            time: Some(ts(now - chrono::Duration::seconds((80 - i) * 30))),
            celsius: if (30..50).contains(&i) { 17.5 } else { 12.0 },
            humidity_percent: None,
            door_open: None,
        })
        .collect();
    let summary = sensors
        .push_readings(tel::PushReadingsRequest {
            request_id: "seed-readings".into(),
            readings,
        })
        .await
        .expect("push readings")
        .into_inner();
    assert_eq!(summary.accepted, 80, "{summary:?}");
}

#[test]
fn operator_commands_against_a_running_network() {
    let dev = Dev::start();
    runtime().block_on(seed_stock(&dev.net));

    // sites: a table, then JSON with every site, zone and healthy endpoint.
    let out = dev.cli(&["sites"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for site in dev.net.config().site_ids() {
        assert!(out.stdout.contains(site), "{site} missing:\n{}", out.stdout);
    }
    assert!(
        out.stdout.contains("8 sites, 24 of 24 services serving"),
        "{}",
        out.stdout
    );
    let sites = dev.json(&["sites"]);
    let sites = sites["sites"].as_array().expect("sites");
    assert_eq!(sites.len(), 8);
    let park = sites.iter().find(|s| s["site_id"] == PARK).expect("park");
    let chilled = park["zones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|z| z["zone_id"] == "chilled-a")
        .expect("chilled-a");
    assert_eq!(chilled["temperature_class"], "CHILLED");
    assert_eq!(chilled["capacity_pallets"], 3000);
    for site in sites {
        let endpoints = site["endpoints"].as_array().unwrap();
        assert_eq!(endpoints.len(), 3);
        assert!(endpoints.iter().all(|e| e["health"] == "SERVING"), "{site}");
    }

    // stock: the seeded receipt, as a table and as JSON.
    let out = dev.cli(&["stock", SKU]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with(PARK))
        .unwrap_or_else(|| panic!("no park row:\n{}", out.stdout));
    assert!(row.contains("chilled-a") && row.contains("500"), "{row}");
    let stock = dev.json(&["stock", SKU, "--class", "chilled"]);
    let park_zone = &stock["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["site_id"] == PARK)
        .expect("park answered")["zones"][0];
    assert_eq!(park_zone["on_hand"], 500);
    assert_eq!(park_zone["available"], 500);
    assert_eq!(stock["failures"].as_array().unwrap().len(), 0);

    // expiring: the seeded lot expires in 30 days: listed within 30, not within 29.
    let out = dev.cli(&["expiring", "--within", "30"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains(PARK) && l.contains("kiwi-l1") && l.contains("500")),
        "{}",
        out.stdout
    );
    let within = |days: &str| dev.json(&["expiring", "--within", days, "--site", PARK]);
    let month = within("30");
    assert_eq!(month["levels"][0]["lot"]["lot_id"], "kiwi-l1", "{month}");
    assert_eq!(month["levels"][0]["expired"], false);
    assert_eq!(within("29")["levels"].as_array().unwrap().len(), 0);

    // transfer start / show / receive / list, with an idempotent retry.
    let line = format!("sku={SKU},lot=kiwi-l1,zone=chilled-a,qty=200,unit=kg");
    let start = [
        "transfer",
        "start",
        "--source",
        PARK,
        "--destination",
        VIENTIANE,
        "--line",
        &line,
        "--transfer-id",
        "t-cli-1",
        "--train",
        "China-Laos express X8011",
        "--request-id",
        "cli-test-start-1",
    ];
    let started = dev.json(&start);
    assert_eq!(started["state"], "IN_TRANSIT", "{started}");
    assert_eq!(started["lines"][0]["quantity"], 200);
    let again = dev.json(&start);
    assert_eq!(
        again["transfer_id"], "t-cli-1",
        "a retry answers the same transfer"
    );
    let stock = dev.json(&["stock", SKU]);
    let moving = stock["in_transit"].as_array().unwrap();
    assert_eq!(moving.len(), 1, "{stock}");
    assert_eq!(moving[0]["quantity"], 200);
    assert_eq!(moving[0]["train_or_route"], "China-Laos express X8011");
    let received = dev.json(&["transfer", "receive", "t-cli-1"]);
    assert_eq!(received["state"], "COMPLETED", "{received}");
    let out = dev.cli(&["transfer", "show", "t-cli-1"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("transfer t-cli-1  COMPLETED"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("kiwi-l1"), "{}", out.stdout);
    // Who started it and who reported the arrival: the CLI's credential, no actor.
    let principal = received["started_by"]["principal"]
        .as_str()
        .unwrap_or_default();
    assert!(
        !principal.is_empty() && principal != "unknown",
        "{received}"
    );
    assert_eq!(received["arrival_reported_by"]["principal"], principal);
    assert!(
        out.stdout.contains(&format!("started by    {principal}")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("arrival reported by"), "{}", out.stdout);
    let list = dev.json(&["transfer", "list", "--state", "COMPLETED"]);
    assert!(
        list["transfers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["transfer_id"] == "t-cli-1"),
        "{list}"
    );
    let out = dev.cli(&["transfer", "list"]);
    assert!(
        out.stdout.lines().any(|l| l.starts_with("t-cli-1")),
        "{}",
        out.stdout
    );

    // space: offers across the sites.
    let from = local_today(&dev.net, PARK)
        .checked_add_days(Days::new(3))
        .unwrap()
        .to_string();
    let to = local_today(&dev.net, PARK)
        .checked_add_days(Days::new(5))
        .unwrap()
        .to_string();
    let space = dev.json(&[
        "space",
        "--class",
        "CHILLED",
        "--pallets",
        "20",
        "--from",
        &from,
        "--to",
        &to,
    ]);
    let offers = space["offers"].as_array().unwrap();
    assert_eq!(offers.len(), 8, "every site has one chilled zone: {space}");
    assert!(offers.iter().all(|o| o["fits"] == true), "{space}");
    let out = dev.cli(&[
        "space",
        "--class",
        "CHILLED",
        "--pallets",
        "20",
        "--from",
        &from,
        "--to",
        &to,
    ]);
    assert!(
        out.stdout.contains("8 of 8 zones fit 20 pallets"),
        "{}",
        out.stdout
    );

    // hold / confirm / bookings / cancel at Vientiane, then a cancel in the wrong state.
    let today = local_today(&dev.net, VIENTIANE);
    let first = today.to_string();
    let last = today.checked_add_days(Days::new(1)).unwrap().to_string();
    let held = dev.json(&[
        "hold",
        "--site",
        VIENTIANE,
        "--customer",
        "lao-banana-forwarding",
        "--class",
        "COOL",
        "--pallets",
        "5",
        "--from",
        &first,
        "--to",
        &last,
        "--ttl",
        "10m",
    ]);
    assert_eq!(held["state"], "HELD", "{held}");
    assert_eq!(held["zone_id"], "cool-a");
    let booking_id = held["booking_id"].as_str().expect("booking id").to_string();
    let out = dev.cli(&["confirm", &booking_id, "--site", VIENTIANE]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with(&format!("booking {booking_id}  CONFIRMED")),
        "{}",
        out.stdout
    );
    let listed = dev.json(&[
        "bookings",
        "--site",
        VIENTIANE,
        "--customer",
        "lao-banana-forwarding",
        "--state",
        "CONFIRMED",
    ]);
    let bookings = listed["bookings"].as_array().unwrap();
    assert_eq!(bookings.len(), 1, "{listed}");
    assert_eq!(bookings[0]["booking_id"], booking_id.as_str());
    assert_eq!(bookings[0]["pallets"], 5);
    let cancelled = dev.json(&[
        "cancel",
        &booking_id,
        "--site",
        VIENTIANE,
        "--reason",
        "shipment delayed",
    ]);
    assert_eq!(cancelled["state"], "CANCELLED");
    assert_eq!(cancelled["cancel_reason"], "shipment delayed");
    let out = dev.cli(&[
        "cancel",
        &booking_id,
        "--site",
        VIENTIANE,
        "--reason",
        "again",
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.starts_with("error: FAILED_PRECONDITION: "),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{}", out.stdout);

    // Roles: each command calls as its natural role (hold as the customer's booking client,
    // confirm as the booking's customer, the rest as operations or the site's warehouse);
    // --as calls as another credential, and the network's policy decides.
    let out = dev.cli(&[
        "hold",
        "--site",
        VIENTIANE,
        "--customer",
        "hunan-citrus-export",
        "--as",
        "customer-lao-banana-forwarding",
        "--class",
        "COOL",
        "--pallets",
        "1",
        "--from",
        &first,
        "--to",
        &first,
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.starts_with("error: PERMISSION_DENIED: "),
        "a booking client holds only for its own customer: {}",
        out.stderr
    );
    let own = dev.json(&[
        "bookings",
        "--site",
        VIENTIANE,
        "--as",
        "customer-lao-banana-forwarding",
    ]);
    let own = own["bookings"].as_array().unwrap();
    assert!(own.iter().any(|b| b["booking_id"] == booking_id.as_str()));
    assert!(
        own.iter()
            .all(|b| b["customer_id"] == "lao-banana-forwarding"),
        "{own:?}"
    );
    let others = dev.json(&[
        "bookings",
        "--site",
        VIENTIANE,
        "--as",
        "customer-hunan-citrus-export",
    ]);
    assert!(
        !others["bookings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["booking_id"] == booking_id.as_str()),
        "another customer's client does not see the booking: {others}"
    );
    let out = dev.cli(&["sites", "--as", "customer-hunan-citrus-export"]);
    assert_eq!(out.code, 0, "any role lists the sites: {}", out.stderr);
    let out = dev.cli(&["stock", SKU, "--as", "customer-hunan-citrus-export"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.starts_with("error: PERMISSION_DENIED: "),
        "{}",
        out.stderr
    );
    let out = dev.cli(&[
        "ledger",
        "--site",
        PARK,
        "--as",
        &format!("{VIENTIANE}-warehouse"),
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.starts_with("error: PERMISSION_DENIED: "),
        "a warehouse system reads only its own site's ledger: {}",
        out.stderr
    );
    let out = dev.cli(&["sites", "--as", "no-such-credential"]);
    assert_eq!(out.code, 1, "{out:?}");
    // The CLI says it found no key for that id, then the server refuses the keyless call.
    assert!(
        out.stderr
            .starts_with("coldchain: calling without an api key")
            && out.stderr.contains("keys/no-such-credential.key"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .lines()
            .any(|line| line.starts_with("error: UNAUTHENTICATED: ")),
        "{}",
        out.stderr
    );

    // An INVALID_ARGUMENT lists its field violations.
    let out = dev.cli(&[
        "hold",
        "--site",
        VIENTIANE,
        "--customer",
        "lao-banana-forwarding",
        "--zone",
        "cool-a",
        "--pallets",
        "0",
        "--from",
        &first,
        "--to",
        &first,
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.starts_with("error: INVALID_ARGUMENT: "),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.lines().any(|l| l.starts_with("  pallets: ")),
        "{}",
        out.stderr
    );

    // NOT_FOUND from the gateway.
    let out = dev.cli(&["transfer", "show", "no-such-transfer"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.starts_with("error: NOT_FOUND: "),
        "{}",
        out.stderr
    );

    // alarms: an excursion in the park's cool room, listed, watched, acknowledged (twice:
    // the second is refused).
    runtime().block_on(seed_cool_room(&dev.net));
    runtime().block_on(seed_telemetry(&dev.net));
    let deadline = Instant::now() + Duration::from_secs(15);
    let alarm = loop {
        let alarms = dev.json(&["alarms", "--site", PARK]);
        let found = alarms["alarms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["sensor_id"] == "room-cool-1" && a["hold_status"] == "PLACED")
            .cloned();
        if let Some(alarm) = found {
            break alarm;
        }
        assert!(Instant::now() < deadline, "no alarm with a hold: {alarms}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(alarm["kind"], "EXCURSION_HIGH");
    assert_eq!(alarm["zone_id"], "cool-a");
    let alarm_id = alarm["alarm_id"].as_str().unwrap().to_string();
    let out = dev.cli(&["alarms", "--kind", "EXCURSION_HIGH"]);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains(&alarm_id) && l.contains("room-cool-1") && l.contains("PLACED")),
        "{}",
        out.stdout
    );
    let out = dev.cli(&[
        "alarms",
        "--watch",
        "--json",
        "--max-events",
        "1",
        "--for",
        "20s",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stdout);
    let event: Value = serde_json::from_str(lines[0]).expect("a JSON line");
    assert_eq!(event["site_id"], PARK);
    assert_eq!(event["sequence"], 1);
    assert_eq!(event["kind"], "RAISED");
    assert!(
        out.stderr
            .contains("resume with --from-seq cn-huaihua-park=2"),
        "{}",
        out.stderr
    );
    let acked = dev.json(&[
        "ack",
        &alarm_id,
        "--site",
        PARK,
        "--by",
        "qa.duty",
        "--note",
        "door closed; stock held for QA",
    ]);
    assert_eq!(acked["acknowledged_by"], "qa.duty");
    assert!(
        acked["state"].as_str().unwrap().ends_with("_ACK"),
        "{acked}"
    );
    // report excursion: the alarm, its readings around it, and the bananas it holds.
    let report = dev.json(&["report", "excursion", &alarm_id, "--site", PARK]);
    assert_eq!(report["alarm"]["alarm_id"], alarm_id.as_str());
    let peak = report["readings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["max_celsius"].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    assert_eq!(peak, 17.5, "{report}");
    let lots = report["lots"].as_array().unwrap();
    assert_eq!(lots.len(), 1, "{report}");
    assert_eq!(lots[0]["lot_id"], "bn-cool-1");
    assert_eq!(lots[0]["on_hand_now"], 240);
    assert_eq!(lots[0]["verdict"], "held", "{report}");
    let out = dev.cli(&[
        "report",
        "excursion",
        &alarm_id,
        "--site",
        PARK,
        "--format",
        "csv",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows: Vec<&str> = out.stdout.lines().collect();
    assert!(
        rows[0].starts_with("record,site_id,alarm_id"),
        "{}",
        out.stdout
    );
    assert!(
        rows[1].starts_with(&format!("alarm,{PARK},{alarm_id}")),
        "{}",
        out.stdout
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("lot,") && r.contains("bn-cool-1") && r.contains(",held,")),
        "{}",
        out.stdout
    );

    // A note is required: without one, a usage error before any call.
    let out = dev.cli(&["ack", &alarm_id, "--site", PARK, "--by", "qa.duty"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--note"), "{}", out.stderr);
    let out = dev.cli(&[
        "ack", &alarm_id, "--site", PARK, "--by", "qa.duty", "--note", "again",
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.starts_with("error: FAILED_PRECONDITION: "),
        "{}",
        out.stderr
    );

    // readings: a chart, and JSON buckets that add up to every reading.
    let out = dev.cli(&[
        "readings",
        "room-cool-1",
        "--site",
        PARK,
        "--from",
        "now-2h",
        "--bucket",
        "5m",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with("sensor room-cool-1 at cn-huaihua-park: "),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("80 readings"), "{}", out.stdout);
    assert!(out.stdout.contains("max 17.5 °C"), "{}", out.stdout);
    assert!(
        out.stdout.contains('█') && out.stdout.contains('▁'),
        "{}",
        out.stdout
    );
    let readings = dev.json(&[
        "readings",
        "room-cool-1",
        "--site",
        PARK,
        "--from",
        "now-2h",
        "--bucket",
        "5m",
    ]);
    let buckets = readings["buckets"].as_array().unwrap();
    let count: i64 = buckets.iter().map(|b| b["count"].as_i64().unwrap()).sum();
    assert_eq!(count, 80);
    assert_eq!(readings["bucket_seconds"], 300.0);
    let peak = buckets
        .iter()
        .map(|b| b["max_celsius"].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    assert_eq!(peak, 17.5);

    // ledger: the park's entries, as a table and JSON; Vientiane's followed for one entry.
    let ledger = dev.json(&["ledger", "--site", PARK]);
    let entries = ledger["entries"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["kind"] == "RECEIPT" && e["sku"] == SKU && e["delta"] == 500),
        "{ledger}"
    );
    assert!(
        entries.iter().any(|e| e["kind"] == "TRANSFER_OUT"
            && e["transfer_id"] == "t-cli-1"
            && e["delta"] == -200),
        "{ledger}"
    );
    let sequences: Vec<u64> = entries
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(sequences, (1..=sequences.len() as u64).collect::<Vec<_>>());
    assert_eq!(ledger["head_sequence"], sequences.len() as u64);
    let out = dev.cli(&["ledger", "--site", PARK, "--from", "2"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.lines().next().unwrap().contains("KIND"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("TRANSFER_OUT"), "{}", out.stdout);
    assert!(
        !out.stdout.lines().any(|l| l.trim_start().starts_with("1 ")),
        "{}",
        out.stdout
    );
    let out = dev.cli(&[
        "ledger", "--site", VIENTIANE, "--follow", "--json", "--limit", "1", "--for", "20s",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stdout);
    let entry: Value = serde_json::from_str(lines[0]).expect("a JSON line");
    assert_eq!(entry["kind"], "TRANSFER_IN");
    assert_eq!(entry["transfer_id"], "t-cli-1");
    assert_eq!(entry["delta"], 200);
    assert!(
        out.stderr.contains("resume with --from 2"),
        "{}",
        out.stderr
    );

    // trace: the kiwi lot's life at both sites, as JSON, a table, CSV and EPCIS 2.0.
    let traced = dev.json(&["trace", SKU, "kiwi-l1"]);
    let entries: Vec<(String, String)> = traced["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "ledger_entry")
        .map(|e| {
            (
                e["site_id"].as_str().unwrap().to_string(),
                e["ledger_entry"]["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for wanted in [
        (PARK, "RECEIPT"),
        (PARK, "TRANSFER_OUT"),
        (VIENTIANE, "TRANSFER_IN"),
    ] {
        assert!(
            entries.contains(&(wanted.0.to_string(), wanted.1.to_string())),
            "{wanted:?} not in {entries:?}"
        );
    }
    let out = dev.cli(&["trace", SKU, "kiwi-l1"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("TRANSFER_OUT") && out.stdout.contains("where it is now"),
        "{}",
        out.stdout
    );
    let out = dev.cli(&["trace", SKU, "kiwi-l1", "--format", "csv"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("at,site_id,event,"),
        "{}",
        out.stdout
    );
    assert_eq!(
        out.stdout.lines().count(),
        traced["events"].as_array().unwrap().len() + 1,
        "{}",
        out.stdout
    );
    let out = dev.cli(&["trace", SKU, "kiwi-l1", "--format", "epcis"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let document: Value = serde_json::from_str(&out.stdout).expect("an EPCIS document");
    assert_eq!(document["type"], "EPCISDocument");
    assert_eq!(coldchain_epcis::problems(&document), Vec::<String>::new());

    // recall: the kiwi lot held at both sites in one call, shown, listed, then lifted.
    let recalled = dev.json(&[
        "recall",
        "start",
        SKU,
        "--lot",
        "kiwi-l1",
        "--reason",
        "supplier notice 77",
        "--id",
        "R-CLI-1",
        "--actor",
        "qa.duty",
    ]);
    let holds = recalled["recall"]["holds"].as_array().unwrap();
    let state_at = |site: &str| {
        holds
            .iter()
            .find(|h| h["site_id"] == site)
            .map(|h| h["state"].as_str().unwrap().to_string())
    };
    assert_eq!(state_at(PARK).as_deref(), Some("HELD"), "{recalled}");
    assert_eq!(state_at(VIENTIANE).as_deref(), Some("HELD"), "{recalled}");
    assert_eq!(
        state_at("sg-singapore").as_deref(),
        Some("NOT_PRESENT"),
        "{recalled}"
    );
    assert!(
        recalled["positions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["held"] == true),
        "{recalled}"
    );
    assert_eq!(recalled["recall"]["started_by"]["actor"], "qa.duty");
    let listed = dev.json(&["recall", "list", "--active"]);
    assert_eq!(listed["recalls"][0]["recall_id"], "R-CLI-1", "{listed}");
    let released = dev.json(&[
        "recall",
        "release",
        "R-CLI-1",
        "--reason",
        "notice withdrawn",
    ]);
    assert_eq!(released["recall"]["state"], "RELEASED", "{released}");
    let listed = dev.json(&["recall", "list", "--active"]);
    assert_eq!(listed["recalls"], serde_json::json!([]), "{listed}");

    // Genealogy: 50 kg of the kiwi lot pressed into juice at the park; the trace shows what
    // it was made into, and a recall with --include-derived holds the juice lot too.
    runtime().block_on(press_kiwi_into_juice(&dev.net));
    let out = dev.cli(&["trace", SKU, "kiwi-l1"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("made into")
            && out.stdout.contains("PRESS-1")
            && out.stdout.contains("kiwi-juice juice-l1"),
        "{}",
        out.stdout
    );
    let traced = dev.json(&["trace", SKU, "kiwi-l1"]);
    assert_eq!(
        traced["genealogy"][0]["output_lot_id"], "juice-l1",
        "{traced}"
    );
    assert_eq!(traced["related"][0]["lot_id"], "juice-l1", "{traced}");
    let recalled = dev.json(&[
        "recall",
        "start",
        SKU,
        "--lot",
        "kiwi-l1",
        "--include-derived",
        "--reason",
        "patulin in the juice line",
        "--id",
        "R-CLI-2",
    ]);
    assert_eq!(recalled["recall"]["include_derived"], true, "{recalled}");
    assert!(
        recalled["recall"]["holds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["site_id"] == PARK
                && h["sku"] == "kiwi-juice"
                && h["lot_id"] == "juice-l1"
                && h["state"] == "HELD"),
        "{recalled}"
    );
    let out = dev.cli(&["recall", "show", "R-CLI-2"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("kiwi-juice (derived)") && out.stdout.contains("derived lots"),
        "{}",
        out.stdout
    );
}

/// The park's juice line presses 50 kg of the kiwi lot into 40 l of juice (PRESS-1).
async fn press_kiwi_into_juice(net: &TestNetwork) {
    let today = local_today(net, PARK);
    let mut inventory = InventoryServiceClient::new(net.dev_keyring().channel(
        &net.endpoint(PARK, ServiceKind::Inventory),
        &common::warehouse(PARK),
    ));
    let press = inv::Transformation {
        transformation_id: "PRESS-1".into(),
        work_order: "juice line".into(),
        input_mass_g: 50_000,
        output_mass_g: 40_000,
        waste_mass_g: 10_000,
        write_off: false,
    };
    inventory
        .record_movements(inv::RecordMovementsRequest {
            request_id: "press-kiwi".into(),
            movements: vec![
                inv::Movement {
                    kind: inv::MovementKind::TransformationInput as i32,
                    sku: SKU.into(),
                    lot: Some(inv::LotInfo {
                        lot_id: "kiwi-l1".into(),
                        ..Default::default()
                    }),
                    zone_id: "chilled-a".into(),
                    quantity: 50,
                    unit: "kg".into(),
                    transformation: Some(press.clone()),
                    ..inv::Movement::default()
                },
                inv::Movement {
                    kind: inv::MovementKind::TransformationOutput as i32,
                    sku: "kiwi-juice".into(),
                    lot: Some(inv::LotInfo {
                        lot_id: "juice-l1".into(),
                        expiry: Some(date(today.checked_add_days(Days::new(90)).unwrap())),
                        production: None,
                        origin: "park juice line".into(),
                    }),
                    zone_id: "chilled-a".into(),
                    quantity: 40,
                    unit: "l".into(),
                    transformation: Some(press),
                    ..inv::Movement::default()
                },
            ],
            actor: Default::default(),
        })
        .await
        .expect("kiwi pressed into juice");
}

#[test]
fn usage_errors_exit_2_before_any_call() {
    let net = TestNetwork::new();
    let file = net.file.display().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "space",
                "--class",
                "LUKEWARM",
                "--pallets",
                "1",
                "--from",
                "2026-01-01",
                "--to",
                "2026-01-02",
            ],
            "LUKEWARM",
        ),
        (
            vec![
                "space",
                "--class",
                "CHILLED",
                "--pallets",
                "1",
                "--from",
                "2026-02-30",
                "--to",
                "2026-03-02",
            ],
            "2026-02-30",
        ),
        (vec!["stock"], "<SKU>"),
        (
            vec!["bookings", "--site", "atlantis", "--network", &file],
            "unknown site \"atlantis\"",
        ),
        (
            vec![
                "readings",
                "s1",
                "--site",
                PARK,
                "--network",
                &file,
                "--from",
                "yesterday",
            ],
            "--from",
        ),
        (
            vec![
                "hold",
                "--site",
                PARK,
                "--customer",
                "c",
                "--class",
                "COOL",
                "--zone",
                "cool-a",
                "--pallets",
                "1",
                "--from",
                "2026-01-01",
                "--to",
                "2026-01-01",
            ],
            "--zone",
        ),
        (
            vec![
                "transfer",
                "start",
                "--source",
                PARK,
                "--destination",
                VIENTIANE,
                "--line",
                "sku=a,lot=b",
            ],
            "zone, qty, unit",
        ),
    ];
    for (args, needle) in cases {
        let out = run(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(
            out.stderr.starts_with("error: "),
            "{args:?}: {}",
            out.stderr
        );
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
    }
}

#[test]
fn every_operator_command_can_call_as_another_credential() {
    let commands: [&[&str]; 15] = [
        &["sites"],
        &["stock"],
        &["space"],
        &["transfer", "start"],
        &["transfer", "receive"],
        &["transfer", "show"],
        &["transfer", "list"],
        &["alarms"],
        &["hold"],
        &["confirm"],
        &["cancel"],
        &["bookings"],
        &["ack"],
        &["readings"],
        &["ledger"],
    ];
    for command in commands {
        let mut args: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        args.push("--help".into());
        let out = run(&args);
        assert_eq!(out.code, 0, "{command:?}: {out:?}");
        let line = out
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with("--as <ID>"))
            .unwrap_or_else(|| panic!("{command:?} has no --as:\n{}", out.stdout));
        assert!(line.contains("[default: "), "{command:?}: {line}");
    }
    let hold = run(&["hold".into(), "--help".into()]);
    assert!(
        hold.stdout.contains("customer-<CUSTOMER>"),
        "{}",
        hold.stdout
    );
    let ledger = run(&["ledger".into(), "--help".into()]);
    assert!(
        ledger.stdout.contains("<SITE>-warehouse"),
        "{}",
        ledger.stdout
    );
}

#[test]
fn an_unreachable_gateway_is_unavailable_and_a_retry_id_is_offered() {
    let gateway = format!("http://127.0.0.1:{}", common::free_port());
    let out = run(&["sites".into(), "--gateway".into(), gateway.clone()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .lines()
            .any(|line| line.starts_with("error: UNAVAILABLE: ")),
        "{}",
        out.stderr
    );

    let out = run(&[
        "transfer".into(),
        "receive".into(),
        "t-1".into(),
        "--gateway".into(),
        gateway,
        "--request-id".into(),
        "retry-me-1".into(),
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .lines()
            .any(|line| line.starts_with("error: UNAVAILABLE: ")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("retry safely with --request-id retry-me-1"),
        "{}",
        out.stderr
    );
}
