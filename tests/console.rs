//! The operations console over a real `coldchain dev` network (every server on private
//! ports, authentication on): its pages show what the services hold, as the person logged
//! in, and its login, cookie and form-token rules hold.
//!
//! The pages are fetched with plain HTTP/1.1 over a TCP socket (no browser): what is
//! asserted is the HTML and SVG the server wrote.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{Days, Utc};
use coldchain_proto::booking::v1 as book;
use coldchain_proto::booking::v1::booking_service_client::BookingServiceClient;
use coldchain_proto::network::v1 as gw;
use coldchain_proto::network::v1::network_service_client::NetworkServiceClient;
use coldchain_proto::telemetry::v1 as tel;
use coldchain_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use coldchain_runtime::network::ServiceKind;
use common::TestNetwork;

const SITE: &str = "cn-huaihua-park";
const OTHER_SITE: &str = "la-vientiane";
const ZONE: &str = "chilled-a";
const CUSTOMER: &str = "hunan-citrus-export";

/// A `coldchain dev` network with its console, killed when dropped.
struct Dev {
    net: TestNetwork,
    child: Child,
    key_file: PathBuf,
}

impl Dev {
    fn start() -> Dev {
        let net = TestNetwork::new();
        let key_file = net.dir.path().join("console-session.key");
        std::fs::write(&key_file, "a session key of this test, 32 bytes or more\n").unwrap();
        let child = common::command()
            .args(["dev", "--network"])
            .arg(&net.file)
            .env("COLDCHAIN_DATA_DIR", net.data_dir())
            .env("COLDCHAIN_LOG_LEVEL", "warn")
            .env("COLDCHAIN_CONSOLE_SESSION_KEY_FILE", &key_file)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn coldchain dev");
        let mut dev = Dev {
            net,
            child,
            key_file,
        };
        dev.wait_ready();
        dev
    }

    /// Waits until the console answers its login page and the gateway lists the sites.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("coldchain dev exited with {status} before serving");
            }
            let ready = TcpStream::connect(("127.0.0.1", self.net.console_port)).is_ok()
                && get(self, "/login", None).status == 200;
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "the console did not come up");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn key(&self, id: &str) -> coldchain_runtime::auth::ApiKey {
        self.net.dev_keyring().key(id)
    }

    fn channel(&self, endpoint: &str, id: &str) -> coldchain_runtime::client::Channel {
        common::channel(endpoint, Some(&self.key(id)))
    }

    fn telemetry(&self, id: &str) -> TelemetryServiceClient<coldchain_runtime::client::Channel> {
        let endpoint = self.net.endpoint(SITE, ServiceKind::Telemetry);
        TelemetryServiceClient::new(self.channel(&endpoint, id))
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of a cookie this answer sets.
    fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .find_map(|(_, v)| {
                let first = v.split(';').next()?;
                let (k, value) = first.split_once('=')?;
                (k == name).then(|| value.to_owned())
            })
    }

    /// The hidden form token of the page.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a form token");
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }

    fn redirects_to_login(&self) -> bool {
        self.status == 303 && self.header("location") == Some("/login")
    }
}

/// One HTTP/1.1 request on its own connection.
fn request(
    dev: &Dev,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", dev.net.console_port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: console\r\nConnection: close\r\n");
    if let Some(cookie) = cookie {
        text.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    if let Some(body) = form {
        text.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        text.push_str("\r\n");
    }
    stream.write_all(text.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        unchunk(body)
    } else {
        body.to_owned()
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

fn get(dev: &Dev, path: &str, cookie: Option<&str>) -> Answer {
    request(dev, "GET", path, cookie, None)
}

fn post(dev: &Dev, path: &str, cookie: Option<&str>, form: &str) -> Answer {
    request(dev, "POST", path, cookie, Some(form))
}

/// Percent-encodes a form value.
fn enc(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Logs in as credential `id` through the form; answers the session cookie (`name=value`).
fn login(dev: &Dev, id: &str) -> String {
    let form = get(dev, "/login", None);
    let nonce = form.set_cookie("cc_login").expect("a login cookie");
    let body = format!("key={}&csrf={}", enc(&dev.key(id).expose()), form.csrf());
    let answer = post(dev, "/login", Some(&format!("cc_login={nonce}")), &body);
    assert_eq!(answer.status, 303, "login as {id}: {answer:?}");
    let session = answer.set_cookie("cc_session").expect("a session cookie");
    let set = answer
        .headers
        .iter()
        .find(|(k, v)| k.eq_ignore_ascii_case("set-cookie") && v.starts_with("cc_session="))
        .unwrap();
    assert!(
        set.1.contains("HttpOnly") && set.1.contains("SameSite=Strict"),
        "{set:?}"
    );
    assert!(set.1.contains("Max-Age="), "{set:?}");
    format!("cc_session={session}")
}

/// Reads `/alarms/events` until `wanted` arrives (or 60 s pass), answering what was read.
fn live_until(port: u16, cookie: &str, wanted: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "GET /alarms/events HTTP/1.1\r\nHost: console\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut seen = String::new();
    let mut buffer = [0u8; 4096];
    while !seen.contains(wanted) {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buffer[..n])),
        }
    }
    seen
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap()
}

fn ts(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1_000),
        nanos: (ms.rem_euclid(1_000) * 1_000_000) as i32,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn login_cookie_and_form_token_rules() {
    let owned = tokio::task::spawn_blocking(Dev::start).await.unwrap();
    let dev = &owned;

    // No session: every page sends the person to the login form.
    assert!(get(dev, "/", None).redirects_to_login());
    assert!(get(dev, "/alarms", None).redirects_to_login());

    // The login form without its token, or without the cookie the token is bound to, is
    // refused and starts no session.
    let form = get(dev, "/login", None);
    let nonce = form.set_cookie("cc_login").unwrap();
    let key = enc(&dev.key(common::OPERATIONS).expose());
    let cookie = format!("cc_login={nonce}");
    let refused = post(dev, "/login", Some(&cookie), &format!("key={key}"));
    assert_eq!(refused.status, 403);
    assert!(refused.set_cookie("cc_session").is_none());
    let refused = post(
        dev,
        "/login",
        None,
        &format!("key={key}&csrf={}", form.csrf()),
    );
    assert_eq!(refused.status, 403);
    assert!(refused.set_cookie("cc_session").is_none());
    // A key the network does not know.
    let wrong = format!("cc1.operations.{}", "0".repeat(64));
    let refused = post(
        dev,
        "/login",
        Some(&cookie),
        &format!("key={}&csrf={}", enc(&wrong), form.csrf()),
    );
    assert_eq!(refused.status, 401);
    assert!(refused.set_cookie("cc_session").is_none());

    let session = login(dev, common::OPERATIONS);
    let page = get(dev, "/", Some(&session));
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("The network"));
    assert!(page.header("content-security-policy").is_some());

    // A tampered cookie is refused: another id, or the same id with the signature changed.
    let value = session.strip_prefix("cc_session=").unwrap();
    let (id, rest) = value.split_once('.').unwrap();
    let (expiry, signature) = rest.split_once('.').unwrap();
    let flipped = |s: &str| {
        let last = s.chars().last().unwrap();
        format!(
            "{}{}",
            &s[..s.len() - 1],
            if last == '0' { '1' } else { '0' }
        )
    };
    for tampered in [
        format!("cc_session={}.{expiry}.{signature}", flipped(id)),
        format!("cc_session={id}.{expiry}.{}", flipped(signature)),
        format!(
            "cc_session={id}.{}.{signature}",
            expiry.parse::<u64>().unwrap() + 3600
        ),
    ] {
        assert!(
            get(dev, "/", Some(&tampered)).redirects_to_login(),
            "{tampered}"
        );
    }

    // An expired session is refused even when its cookie is properly signed; the same
    // session signed with a future expiry is accepted, so the expiry is what refused it.
    let key = coldchain_console::session::SigningKey::from_file(&dev.key_file).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = format!("cc_session={}", key.session_cookie(id, now - 1));
    assert!(get(dev, "/", Some(&expired)).redirects_to_login());
    let resigned = format!("cc_session={}", key.session_cookie(id, now + 600));
    assert_eq!(get(dev, "/", Some(&resigned)).status, 200);

    // Forms without their token are refused, and change nothing.
    let refused = post(dev, "/logout", Some(&session), "");
    assert_eq!(refused.status, 403);
    assert_eq!(get(dev, "/", Some(&session)).status, 200, "still logged in");
    let refused = post(
        dev,
        &format!("/sites/{SITE}/alarms/no-such-alarm/acknowledge"),
        Some(&session),
        "note=checked",
    );
    assert_eq!(refused.status, 403);
    // Another session's token is not this one's.
    let other = login(dev, common::OPERATIONS);
    let other_token = get(dev, "/", Some(&other)).csrf();
    let refused = post(
        dev,
        "/logout",
        Some(&session),
        &format!("csrf={other_token}"),
    );
    assert_eq!(refused.status, 403);

    // With its token, logout ends the session: its cookie no longer opens a page.
    let token = get(dev, "/", Some(&session)).csrf();
    let out = post(dev, "/logout", Some(&session), &format!("csrf={token}"));
    assert!(out.redirects_to_login(), "{out:?}");
    assert!(get(dev, "/", Some(&session)).redirects_to_login());
    assert_eq!(get(dev, "/", Some(&other)).status, 200);

    // The login rate limit: failed logins from one address are counted, a success resets
    // the count, and after 5 failures in the window even the right key is refused with 429
    // and a Retry-After, and starts no session.
    let wrong_login = |dev: &Dev| {
        let form = get(dev, "/login", None);
        let nonce = form.set_cookie("cc_login").unwrap();
        post(
            dev,
            "/login",
            Some(&format!("cc_login={nonce}")),
            &format!("key={}&csrf={}", enc(&wrong), form.csrf()),
        )
    };
    for _ in 0..4 {
        assert_eq!(wrong_login(dev).status, 401);
    }
    let _reset = login(dev, common::OPERATIONS);
    for i in 0..5 {
        assert_eq!(wrong_login(dev).status, 401, "failure {i} after the reset");
    }
    let refused = wrong_login(dev);
    assert_eq!(refused.status, 429, "{refused:?}");
    let form = get(dev, "/login", None);
    let nonce = form.set_cookie("cc_login").unwrap();
    let right = post(
        dev,
        "/login",
        Some(&format!("cc_login={nonce}")),
        &format!(
            "key={}&csrf={}",
            enc(&dev.key(common::OPERATIONS).expose()),
            form.csrf()
        ),
    );
    assert_eq!(
        right.status, 429,
        "the right key too, while locked: {right:?}"
    );
    assert!(right.set_cookie("cc_session").is_none());
    let retry_after: u64 = right.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=15 * 60).contains(&retry_after), "{retry_after}");
    assert!(
        right.body.contains("Too many failed logins"),
        "{}",
        right.body
    );
    assert_eq!(
        get(dev, "/", Some(&other)).status,
        200,
        "sessions are untouched"
    );

    // A live alarm feed open in a browser does not hold the network when it stops.
    let port = dev.net.console_port;
    let feed = std::thread::spawn(move || live_until(port, &other, "never sent"));
    std::thread::sleep(Duration::from_millis(500));
    let pid = dev.child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut dev = owned;
    loop {
        if let Some(status) = dev.child.try_wait().unwrap() {
            assert!(status.success(), "dev stopped with {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dev still running with a live feed open"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let seen = feed.join().unwrap();
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pages_show_what_the_services_hold() {
    let dev = tokio::task::spawn_blocking(Dev::start).await.unwrap();
    let dev = &dev;
    let ops = login(dev, common::OPERATIONS);

    // An alarm: a chilled-zone sensor that alarms on the first out-of-range reading.
    let mut telemetry = dev.telemetry(common::OPERATIONS);
    telemetry
        .register_sensor(tel::RegisterSensorRequest {
            request_id: "reg-console-s1".into(),
            sensor_id: "console-s1".into(),
            binding: Some(tel::register_sensor_request::Binding::ZoneId(ZONE.into())),
            profile: Some(tel::SensorProfile {
                min_excursion_duration: Some(prost_types::Duration::default()),
                ..Default::default()
            }),
            description: "cold room A".into(),
            actor: Default::default(),
        })
        .await
        .unwrap();
    // The live feed of the alarms page, open before the alarm is raised.
    let live = {
        let port = dev.net.console_port;
        let cookie = ops.clone();
        std::thread::spawn(move || live_until(port, &cookie, "console-s1"))
    };
    let now = now_ms();
    let mut sensors = dev.telemetry(&common::sensors(SITE));
    // Six readings, each in its own 15-minute bucket of the last 24 h: 2 °C, then warm.
    let celsius = [2.0, 2.5, 3.0, 9.5, 8.0, 7.0];
    sensors
        .push_readings(tel::PushReadingsRequest {
            request_id: "push-console-1".into(),
            readings: celsius
                .iter()
                .enumerate()
                .map(|(i, c)| tel::Reading {
                    sensor_id: "console-s1".into(),
                    time: Some(ts(now - (6 - i as i64) * 3_600_000)),
                    celsius: *c,
                    humidity_percent: None,
                    door_open: None,
                })
                .collect(),
        })
        .await
        .unwrap();
    let alarm = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let alarms = telemetry
                .list_alarms(tel::ListAlarmsRequest {
                    sensor_id: "console-s1".into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .alarms;
            let high = tel::AlarmKind::ExcursionHigh as i32;
            if let Some(alarm) = alarms.into_iter().find(|a| a.kind == high) {
                break alarm;
            }
            assert!(Instant::now() < deadline, "no alarm raised");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };

    // The live feed carried it, without reloading the page.
    let events = live.join().unwrap();
    assert!(events.contains("event: alarm"), "{events}");
    assert!(events.contains("raised"), "{events}");

    // The alarms page shows it with its peak and duration.
    let page = get(dev, "/alarms", Some(&ops));
    assert_eq!(page.status, 200, "{page:?}");
    let row = row_of(&page.body, &format!("id=\"alarm-{}\"", alarm.alarm_id));
    assert!(row.contains("9.5 °C"), "peak: {row}");
    let duration = coldchain_ops::format::duration_short(alarm.duration.as_ref());
    assert!(
        row.contains(&format!(">{duration}<")),
        "duration {duration}: {row}"
    );
    assert!(
        row.contains("Acknowledge"),
        "operations may acknowledge: {row}"
    );

    // Acknowledging needs a note; with one, the page shows who and the note.
    let token = page.csrf();
    let action = format!("/sites/{SITE}/alarms/{}/acknowledge", alarm.alarm_id);
    let refused = post(dev, &action, Some(&ops), &format!("csrf={token}&note=+"));
    assert_eq!(refused.status, 400);
    let done = post(
        dev,
        &action,
        Some(&ops),
        &format!("csrf={token}&note={}", enc("door closed, product moved")),
    );
    assert_eq!(done.status, 303, "{done:?}");
    let page = get(dev, "/alarms", Some(&ops));
    let row = row_of(&page.body, &format!("id=\"alarm-{}\"", alarm.alarm_id));
    assert!(row.contains("door closed, product moved"), "{row}");
    assert!(row.contains(common::OPERATIONS), "{row}");

    // The sensor chart: one point of the mean per bucket, and as many rows behind it.
    let page = get(
        dev,
        &format!("/sites/{SITE}/sensors/console-s1?window=24h"),
        Some(&ops),
    );
    assert_eq!(page.status, 200, "{page:?}");
    let d = page.body.split("id=\"mean\"").nth(1).unwrap();
    let d = d.split("d=\"").nth(1).unwrap().split('"').next().unwrap();
    assert_eq!(
        d.matches('M').count() + d.matches('L').count(),
        celsius.len(),
        "{d}"
    );
    let table = page.body.split("class=\"readings\"").nth(1).unwrap();
    let table = table.split("</table>").next().unwrap();
    assert_eq!(
        table.matches("<tr>").count(),
        1 + celsius.len(),
        "header + one row per bucket"
    );
    assert!(
        page.body.contains("Asia/Shanghai (UTC+08:00)"),
        "axis in the site's zone"
    );
    assert!(page.body.contains("Mean Kinetic Temperature"));
    assert_eq!(
        get(
            dev,
            &format!("/sites/{SITE}/sensors/console-s1?window=1y"),
            Some(&ops)
        )
        .status,
        400
    );

    // The heat map: the cell of the zone-day shows the pallets a booking client held.
    let day = Utc::now()
        .with_timezone(&dev.net.config().site(SITE).unwrap().time_zone)
        .date_naive()
        + Days::new(3);
    let date = coldchain_runtime::proto_time::date(day);
    let endpoint = dev.net.endpoint(SITE, ServiceKind::Booking);
    let mut booking =
        BookingServiceClient::new(dev.channel(&endpoint, &common::customer(CUSTOMER)));
    booking
        .hold_space(book::HoldSpaceRequest {
            request_id: "hold-console-1".into(),
            customer_id: CUSTOMER.into(),
            space: Some(book::hold_space_request::Space::ZoneId(ZONE.into())),
            pallets: 7,
            first_day: Some(date),
            last_day: Some(date),
            ..Default::default()
        })
        .await
        .unwrap();
    let page = get(dev, &format!("/sites/{SITE}"), Some(&ops));
    assert_eq!(page.status, 200, "{page:?}");
    let cell = row_of(&page.body, &format!("id=\"heat-{ZONE}-{day}\""));
    assert!(cell.contains("data-held=\"7\""), "{cell}");
    assert!(cell.contains("H7 "), "{cell}");
    // The sensor is listed with its last reading and a sparkline.
    assert!(page.body.contains("console-s1") && page.body.contains("class=\"sparkline\""));

    // The booking client sees its own booking, and finds space across the sites.
    let customer = login(dev, &common::customer(CUSTOMER));
    let page = get(dev, "/booking", Some(&customer));
    assert_eq!(page.status, 200, "{page:?}");
    let own = page
        .body
        .split("Your bookings")
        .nth(1)
        .expect("own bookings");
    assert!(
        own.contains(ZONE) && own.contains(">held<") && own.contains(&day.to_string()),
        "{own}"
    );
    let search = format!("/booking?class=CHILLED&pallets=5&first={day}&last={day}");
    let page = get(dev, &search, Some(&customer));
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.body
            .contains(&format!("<td>{SITE}</td><td>{ZONE}</td>")),
        "an offer of the zone"
    );
    // Transfers are not offered to a booking client.
    assert!(!page.body.contains("href=\"/transfers\""));
    assert_eq!(get(dev, "/transfers", Some(&ops)).status, 200);

    // A warehouse credential opens its own site's page, not another site's.
    let warehouse = login(dev, &common::warehouse(OTHER_SITE));
    assert_eq!(
        get(dev, &format!("/sites/{OTHER_SITE}"), Some(&warehouse)).status,
        200
    );
    let refused = get(dev, &format!("/sites/{SITE}"), Some(&warehouse));
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(
        !refused.body.contains(ZONE),
        "nothing of the other site is shown"
    );
    let refused = get(
        dev,
        &format!("/sites/{SITE}/sensors/console-s1"),
        Some(&warehouse),
    );
    assert_eq!(refused.status, 403);
    // Its network page leaves out what only operations may read.
    let page = get(dev, "/", Some(&warehouse));
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.body
            .contains("Alarms across the network: not available to your credential")
    );

    // The network page: the corridor and every site's services.
    let page = get(dev, "/", Some(&ops));
    assert!(page.body.contains("class=\"corridor\""));
    let mut gateway = NetworkServiceClient::new(
        dev.channel(&dev.net.config().gateway_endpoint(), common::OPERATIONS),
    );
    let sites = gateway
        .list_sites(gw::ListSitesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .sites;
    for site in sites {
        assert!(
            page.body
                .contains(&format!("href=\"/sites/{}\"", site.site_id))
        );
    }
}

/// The element whose opening tag holds `marker`, up to its closing `</tr>` or `</td>`.
fn row_of<'a>(body: &'a str, marker: &str) -> &'a str {
    let at = body
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not on the page"));
    let rest = &body[at..];
    let end = ["</tr>", "</td>"]
        .iter()
        .filter_map(|t| rest.find(t))
        .min()
        .unwrap();
    // The heat-map cell ends at </td>; an alarm row holds several, so rows take </tr>.
    if marker.starts_with("id=\"alarm-") {
        &rest[..rest.find("</tr>").unwrap()]
    } else {
        &rest[..end]
    }
}

/// How long the sensor page takes for a 30-day window (a measurement, not a check: run with
/// `cargo test --test console -- --ignored --nocapture`). The services accept readings up to
/// 7 days old, so the window holds 7 days at one reading a minute (10,080 readings).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement: prints timings, asserts none"]
async fn measure_the_30_day_sensor_page() {
    let dev = tokio::task::spawn_blocking(Dev::start).await.unwrap();
    let dev = &dev;
    let mut telemetry = dev.telemetry(common::OPERATIONS);
    telemetry
        .register_sensor(tel::RegisterSensorRequest {
            request_id: "reg-console-bench".into(),
            sensor_id: "console-bench".into(),
            binding: Some(tel::register_sensor_request::Binding::ZoneId(ZONE.into())),
            profile: None,
            description: "measured".into(),
            actor: Default::default(),
        })
        .await
        .unwrap();
    let mut sensors = dev.telemetry(&common::sensors(SITE));
    let now = now_ms();
    let minutes: i64 = 7 * 24 * 60 - 10;
    let mut start = 0;
    while start < minutes {
        let end = (start + 500).min(minutes);
        sensors
            .push_readings(tel::PushReadingsRequest {
                request_id: format!("push-bench-{start}"),
                readings: (start..end)
                    .map(|m| tel::Reading {
                        sensor_id: "console-bench".into(),
                        time: Some(ts(now - (minutes - m) * 60_000)),
                        celsius: 2.0 + ((m % 120) as f64) / 60.0,
                        humidity_percent: None,
                        door_open: None,
                    })
                    .collect(),
            })
            .await
            .unwrap();
        start = end;
    }
    let ops = login(dev, common::OPERATIONS);
    let path = format!("/sites/{SITE}/sensors/console-bench?window=30d");
    let mut times = Vec::new();
    for _ in 0..30 {
        let began = Instant::now();
        let page = get(dev, &path, Some(&ops));
        times.push(began.elapsed());
        assert_eq!(page.status, 200);
    }
    times.sort();
    println!(
        "30-day sensor page, {minutes} readings: min {:?}, median {:?}, p90 {:?}, max {:?} (30 requests)",
        times[0],
        times[times.len() / 2],
        times[times.len() * 9 / 10],
        times[times.len() - 1]
    );
}

/// `coldchain serve console` alone, with a certificate: it speaks HTTPS only, and its
/// cookies are `Secure`.
#[tokio::test(flavor = "multi_thread")]
async fn serve_console_speaks_tls_when_configured() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;

    let net = TestNetwork::new();
    let certs = net.dir.path().join("tls");
    let status = common::command()
        .args(["certs", "--out"])
        .arg(&certs)
        .arg("--network")
        .arg(&net.file)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let mut child = common::command()
        .args(["serve", "console", "--network"])
        .arg(&net.file)
        .env("COLDCHAIN_DATA_DIR", net.data_dir())
        .env("COLDCHAIN_LOG_LEVEL", "warn")
        .env("COLDCHAIN_AUTH_FILE", net.keyring().credentials_file())
        .env("COLDCHAIN_TLS_CERT", certs.join("gateway.pem"))
        .env("COLDCHAIN_TLS_KEY", certs.join("gateway.key"))
        .env("COLDCHAIN_TLS_CA", certs.join("ca.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let addr = ("127.0.0.1", net.console_port);
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("serve console exited with {status}");
        }
        assert!(Instant::now() < deadline, "the console did not listen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_file(certs.join("ca.pem")).unwrap())
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(b"GET /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await.ok();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("; Secure"),
        "cookies are Secure under TLS: {answer}"
    );

    // Plain HTTP gets no page.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), plain.read_to_end(&mut answer)).await;
    assert!(!String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"));

    // `healthcheck --http` (the containers' health check) with the console's environment
    // speaks HTTPS and trusts the CA: healthy. Plain HTTP, or HTTPS without the CA, is not.
    let address = format!("127.0.0.1:{}", net.console_port);
    let check = |address: &str, with_tls: bool| {
        let mut command = common::command();
        command.args(["healthcheck", "--http", address]);
        if with_tls {
            command
                .env("COLDCHAIN_TLS_CERT", certs.join("gateway.pem"))
                .env("COLDCHAIN_TLS_KEY", certs.join("gateway.key"))
                .env("COLDCHAIN_TLS_CA", certs.join("ca.pem"));
        }
        let out = command.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (healthy, said) = check(&address, true);
    assert!(healthy, "{said}");
    assert!(
        said.contains(&format!("https://{address}: SERVING")),
        "{said}"
    );
    let (healthy, said) = check(&format!("http://{address}"), true);
    assert!(!healthy, "plain HTTP to an HTTPS console: {said}");
    let (healthy, said) = check(&format!("https://{address}"), false);
    assert!(!healthy && said.contains("tls_ca"), "{said}");

    let _ = child.kill();
    let _ = child.wait();
    let (healthy, said) = check(&address, true);
    assert!(!healthy, "a stopped console: {said}");
}
