//! The console scenario: the sensor page of a demo sensor with a 30-day window, over a real
//! `coldchain dev` network of its own (every port private, authentication on), fetched one
//! request at a time as a logged-in person's browser would, against the 300 ms.
//!
//! The sensor gets 7 days of readings at one a minute first (the services take readings up
//! to 7 days old, so that is the most a 30-day window of a fresh network can hold).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use coldchain_proto::telemetry::v1 as tel;
use coldchain_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use coldchain_runtime::client::{ClientOptions, connect};
use coldchain_runtime::network::{NetworkConfig, ServiceKind};
use hdrhistogram::Histogram;

use crate::load::LoadSpec;
use crate::network::private_network;

/// The target for a 30-day sensor page.
pub const TARGET_MS: f64 = 300.0;
const SENSOR: &str = "bench-console";
/// One reading a minute for 7 days, less a few minutes of margin at the old end.
const READINGS: i64 = 7 * 24 * 60 - 10;

pub struct ConsoleRun {
    pub readings: i64,
    pub pages: u64,
    pub failures: u64,
    /// Latency in microseconds.
    pub latency: Histogram<u64>,
}

impl ConsoleRun {
    pub fn latency_ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }
}

/// Starts the network, fills the sensor, logs in, and measures the page for the spec's
/// duration after its warm-up.
pub async fn sensor_page(spec: &LoadSpec) -> Result<ConsoleRun, String> {
    let shipped = std::fs::read_to_string("deploy/network.toml").map_err(|e| {
        format!("deploy/network.toml (run the bench from the repository root): {e}")
    })?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("network.toml");
    let text = private_network(&shipped)?;
    std::fs::write(&file, &text).map_err(|e| e.to_string())?;
    let network = NetworkConfig::parse(&text).map_err(|e| e.to_string())?;
    let data = dir.path().join("data");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(["dev", "--network"])
        .arg(&file)
        .env("COLDCHAIN_DATA_DIR", &data)
        .env("COLDCHAIN_LOG_LEVEL", "warn")
        .env("COLDCHAIN_METRICS_LISTEN", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let result = measure(spec, &network, &data).await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    result
}

async fn measure(
    spec: &LoadSpec,
    network: &NetworkConfig,
    data: &std::path::Path,
) -> Result<ConsoleRun, String> {
    let console = format!("127.0.0.1:{}", network.console.port());
    let started = Instant::now();
    while get(&console, "/login", None).map(|a| a.status) != Ok(200) {
        if started.elapsed() > Duration::from_secs(60) {
            return Err("the console did not answer within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let site = network.sites.first().ok_or("the network has no site")?;
    let zone = site.zones.first().ok_or("the first site has no zone")?;
    let endpoint = site
        .endpoint(ServiceKind::Telemetry)
        .ok_or("no telemetry endpoint")?;
    let keyring = coldchain_credentials::Keyring::dev(data);
    let client = |id: String| {
        let key = keyring.key(&id);
        let endpoint = endpoint.clone();
        async move {
            let options = ClientOptions {
                key: Some(key?),
                ..ClientOptions::default()
            };
            connect(&endpoint, &options)
                .await
                .map(TelemetryServiceClient::new)
                .map_err(|e| e.message)
        }
    };
    let mut ops = client(coldchain_credentials::OPERATIONS.to_owned()).await?;
    ops.register_sensor(tel::RegisterSensorRequest {
        request_id: "bench-console-register".into(),
        sensor_id: SENSOR.into(),
        binding: Some(tel::register_sensor_request::Binding::ZoneId(
            zone.id.clone(),
        )),
        profile: None,
        description: "coldchain bench: the console's sensor page".into(),
        actor: Default::default(),
    })
    .await
    .map_err(|s| format!("RegisterSensor: {}", s.message()))?;
    // Inside the zone's limits, swinging over a two-hour period: no excursion, no alarm.
    let middle = (zone.min_celsius + zone.max_celsius) / 2.0;
    let swing = (zone.max_celsius - zone.min_celsius) / 4.0;
    let mut sensors = client(coldchain_credentials::sensors(&site.id)).await?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_millis() as i64;
    let mut start = 0;
    while start < READINGS {
        let end = (start + 1000).min(READINGS);
        let readings = (start..end)
            .map(|m| {
                let at = now_ms - (READINGS - m) * 60_000;
                tel::Reading {
                    sensor_id: SENSOR.into(),
                    time: Some(prost_types::Timestamp {
                        seconds: at.div_euclid(1000),
                        nanos: (at.rem_euclid(1000) * 1_000_000) as i32,
                    }),
                    celsius: middle + swing * ((m % 120) as f64 / 60.0 - 1.0),
                    humidity_percent: None,
                    door_open: None,
                }
            })
            .collect();
        sensors
            .push_readings(tel::PushReadingsRequest {
                request_id: format!("bench-console-{start}"),
                readings,
            })
            .await
            .map_err(|s| format!("PushReadings: {}", s.message()))?;
        start = end;
    }

    let session = login(&console, &keyring.key(coldchain_credentials::OPERATIONS)?)?;
    let path = format!("/sites/{}/sensors/{SENSOR}?window=30d", site.id);
    let mut latency = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    let (mut pages, mut failures) = (0, 0);
    let warm_until = Instant::now() + spec.warmup;
    while Instant::now() < warm_until {
        get(&console, &path, Some(&session))?;
    }
    let until = Instant::now() + spec.duration;
    while Instant::now() < until {
        let began = Instant::now();
        let answer = get(&console, &path, Some(&session))?;
        let micros = began.elapsed().as_micros() as u64;
        pages += 1;
        if answer.status == 200 && answer.text.contains("<svg") {
            let _ = latency.record(micros.max(1));
        } else {
            failures += 1;
        }
    }
    Ok(ConsoleRun {
        readings: READINGS,
        pages,
        failures,
        latency,
    })
}

/// An answer: its status and its whole text (headers and body).
struct Answer {
    status: u16,
    text: String,
}

impl Answer {
    /// The value of cookie `name` the answer sets.
    fn cookie(&self, name: &str) -> Option<String> {
        let prefix = format!("set-cookie: {name}=");
        self.text.lines().find_map(|line| {
            line.to_ascii_lowercase().starts_with(&prefix).then(|| {
                line[prefix.len()..]
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
        })
    }
}

/// One HTTP/1.1 request on its own connection, as the tests of the console make them.
fn request(
    addr: &str,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> Result<Answer, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(cookie) = cookie {
        head.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    let body = form.unwrap_or("");
    if form.is_some() {
        head.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    stream
        .write_all(format!("{head}{body}").as_bytes())
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut bytes = Vec::new();
    stream
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{addr}: {e}"))?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{addr}{path}: not an HTTP answer"))?;
    Ok(Answer { status, text })
}

fn get(addr: &str, path: &str, cookie: Option<&str>) -> Result<Answer, String> {
    request(addr, "GET", path, cookie, None)
}

/// Logs in through the form; answers the session cookie (`cc_session=…`).
fn login(addr: &str, key: &coldchain_runtime::auth::ApiKey) -> Result<String, String> {
    let form = get(addr, "/login", None)?;
    let nonce = form.cookie("cc_login").ok_or("no login cookie")?;
    let marker = "name=\"csrf\" value=\"";
    let at = form.text.find(marker).ok_or("no form token")? + marker.len();
    let token: String = form.text[at..].chars().take_while(|c| *c != '"').collect();
    let key: String = key
        .expose()
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let answer = request(
        addr,
        "POST",
        "/login",
        Some(&format!("cc_login={nonce}")),
        Some(&format!("key={key}&csrf={token}")),
    )?;
    let session = answer
        .cookie("cc_session")
        .ok_or_else(|| format!("login answered {} without a session", answer.status))?;
    Ok(format!("cc_session={session}"))
}
