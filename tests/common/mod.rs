//! Helpers for tests that run `coldchain` as real processes: a private copy of the network
//! file on free ports, a data directory, a keyring of every role, spawning servers that
//! require its keys, clients that present them, waiting for health, SIGKILL.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use coldchain_runtime::auth::ApiKey;
use coldchain_runtime::client::Channel;

/// The shipped network file.
pub fn shipped_network() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/network.toml"))
        .expect("deploy/network.toml")
}

/// A free TCP port on 127.0.0.1 (free when asked), for a server a test starts later.
pub fn free_port() -> u16 {
    listener_for_a_server()
        .local_addr()
        .expect("local addr")
        .port()
}

/// The lowest port handed to test servers.
const FIRST_TEST_PORT: u32 = 20_000;

/// A listener on a free port below the kernel's ephemeral range, held until the caller
/// drops it.
///
/// Why not port 0: the kernel picks those from the ephemeral range, the same range it takes
/// the local port of every outgoing connection from. Between choosing a port and the server
/// binding it, a connection of this test, of a test running beside it, or of one server
/// calling another could be given that port ("Address already in use", seen in CI). Below
/// the range no outgoing connection is ever given a port; a cursor shared by the tests of
/// this process, starting at a place that differs per process, keeps parallel tests apart.
fn listener_for_a_server() -> TcpListener {
    static CURSOR: OnceLock<AtomicU32> = OnceLock::new();
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let span = ephemeral_start.saturating_sub(FIRST_TEST_PORT);
    if span < 1_000 {
        // An unusual range leaves no room below it: fall back to the kernel's pick.
        return TcpListener::bind("127.0.0.1:0").expect("a free port");
    }
    let cursor = CURSOR.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        AtomicU32::new(std::process::id().wrapping_mul(7_919).wrapping_add(nanos))
    });
    for _ in 0..span {
        let port = FIRST_TEST_PORT + cursor.fetch_add(1, Ordering::Relaxed) % span;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port as u16)) {
            return listener;
        }
    }
    panic!("no free port between {FIRST_TEST_PORT} and {ephemeral_start}");
}

/// A private network: the shipped sites and zones, every port replaced by a free one,
/// written into `dir`. Tests never collide with a running `dev` network or each other.
pub struct TestNetwork {
    pub dir: tempfile::TempDir,
    pub file: PathBuf,
    pub gateway_port: u16,
    /// The console's port (its `[console] listen`).
    pub console_port: u16,
    keyring: OnceLock<Keyring>,
}

impl TestNetwork {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        // Every listener stays open until all ports are chosen, so no two picks collide.
        let mut held = Vec::new();
        let mut free_port = || {
            let listener = listener_for_a_server();
            let port = listener.local_addr().expect("local addr").port();
            held.push(listener);
            port
        };
        let gateway_port = free_port();
        let console_port = free_port();
        let mut out = String::new();
        let mut section = "";
        for line in shipped_network().lines() {
            let trimmed = line.trim_start();
            if trimmed.starts_with('[') {
                section = if trimmed.starts_with("[console]") {
                    "console"
                } else {
                    "other"
                };
            }
            let port_key = ["inventory = ", "telemetry = ", "booking = "]
                .iter()
                .find(|k| {
                    trimmed.starts_with(**k) && trimmed[k.len()..].trim().parse::<u16>().is_ok()
                });
            if let Some(key) = port_key {
                out.push_str(&format!("{key}{}\n", free_port()));
            } else if trimmed.starts_with("listen = ") {
                let port = if section == "console" {
                    console_port
                } else {
                    gateway_port
                };
                out.push_str(&format!("listen = \"127.0.0.1:{port}\"\n"));
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        drop(held);
        let file = dir.path().join("network.toml");
        std::fs::write(&file, out).expect("write network file");
        Self {
            dir,
            file,
            gateway_port,
            console_port,
            keyring: OnceLock::new(),
        }
    }

    /// The keyring `coldchain serve` processes of this network load (made on first use
    /// by `coldchain credentials keyring`). `coldchain dev` makes its own: [`Self::dev_keyring`].
    pub fn keyring(&self) -> &Keyring {
        self.keyring
            .get_or_init(|| Keyring::make(&self.dir.path().join("keyring"), &self.file))
    }

    /// The keyring `coldchain dev` makes under the data directory.
    pub fn dev_keyring(&self) -> Keyring {
        Keyring {
            dir: self.data_dir().join("dev-credentials"),
            network: self.file.clone(),
        }
    }

    /// The parsed network.
    pub fn config(&self) -> coldchain_runtime::network::NetworkConfig {
        coldchain_runtime::network::NetworkConfig::load(&self.file).expect("valid test network")
    }

    /// Where the servers keep their data.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `http://127.0.0.1:<port>` of a site's service.
    pub fn endpoint(&self, site: &str, kind: coldchain_runtime::network::ServiceKind) -> String {
        self.config().endpoint(site, kind).expect("known site")
    }
}

/// Environment for a server under a load test whose calls all come from one credential:
/// lifts the per-credential rate limit out of the way of what such a test measures
/// (durability, not shedding).
pub const NO_RATE_LIMIT: [(&str, &str); 2] = [
    ("COLDCHAIN_RATE_LIMIT", "1000000"),
    ("COLDCHAIN_RATE_BURST", "1000000"),
];

/// The `coldchain` binary cargo built for these tests.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_coldchain")
}

/// A `coldchain` command with metrics off: servers the tests start never bind the default
/// metrics port (9464), which tests running side by side would fight over. A test of the
/// metrics sets `COLDCHAIN_METRICS_LISTEN` again (the last value wins).
pub fn command() -> Command {
    let mut command = Command::new(binary());
    command.env("COLDCHAIN_METRICS_LISTEN", "off");
    command
}

/// The operations credential of a keyring.
pub const OPERATIONS: &str = "operations";

/// The credential id of a site's warehouse system.
pub fn warehouse(site: &str) -> String {
    format!("{site}-warehouse")
}

/// The credential id of a site's sensor gateway.
pub fn sensors(site: &str) -> String {
    format!("{site}-sensors")
}

/// The credential id of the booking client bound to `customer`.
pub fn customer(customer: &str) -> String {
    format!("customer-{customer}")
}

/// The credential id a service calls others as (`gateway`, `telemetry`, `inventory`).
pub fn service_credential(kind: &str) -> String {
    format!("service-{kind}")
}

/// A keyring: `credentials.toml` (what servers load) and `keys/<id>.key`.
#[derive(Debug, Clone)]
pub struct Keyring {
    pub dir: PathBuf,
    network: PathBuf,
}

impl Keyring {
    /// Makes the keyring of every role of `network` with `coldchain credentials keyring`.
    pub fn make(dir: &Path, network: &Path) -> Keyring {
        let output = command()
            .args(["credentials", "keyring", "--out"])
            .arg(dir)
            .arg("--network")
            .arg(network)
            .output()
            .expect("run coldchain credentials keyring");
        assert!(
            output.status.success(),
            "credentials keyring: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Keyring {
            dir: dir.to_path_buf(),
            network: network.to_path_buf(),
        }
    }

    /// The credentials file servers load (`COLDCHAIN_AUTH_FILE`).
    pub fn credentials_file(&self) -> PathBuf {
        self.dir.join("credentials.toml")
    }

    /// The file holding the key of `id`.
    pub fn key_file(&self, id: &str) -> PathBuf {
        self.dir.join("keys").join(format!("{id}.key"))
    }

    /// The key of `id`.
    pub fn key(&self, id: &str) -> ApiKey {
        ApiKey::from_file(&self.key_file(id)).unwrap_or_else(|e| panic!("key of {id}: {e}"))
    }

    /// Adds a booking client of `customer` with `coldchain credentials add` (servers started
    /// afterwards accept it) and answers its id.
    pub fn add_booking_client(&self, customer_id: &str) -> String {
        let id = customer(customer_id);
        let output = command()
            .args(["credentials", "add", "--file"])
            .arg(self.credentials_file())
            .args([
                "--id",
                &id,
                "--role",
                "booking_client",
                "--customer",
                customer_id,
            ])
            .arg("--key-out")
            .arg(self.key_file(&id))
            .arg("--network")
            .arg(&self.network)
            .output()
            .expect("run coldchain credentials add");
        assert!(
            output.status.success(),
            "credentials add: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        id
    }

    /// A lazily connected channel to `endpoint` presenting the key of `id`.
    pub fn channel(&self, endpoint: &str, id: &str) -> Channel {
        channel(endpoint, Some(&self.key(id)))
    }
}

/// A lazily connected channel to `endpoint` sending `key` (none: an anonymous caller) on
/// every call, as every client of this project does.
pub fn channel(endpoint: &str, key: Option<&ApiKey>) -> Channel {
    let transport = tonic::transport::Endpoint::from_shared(endpoint.to_string())
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .connect_lazy();
    Channel::new(transport, key)
}

/// A `coldchain` child process; killed when dropped.
pub struct Server {
    pub child: Child,
    pub endpoint: String,
    /// The site it serves (`None` for the gateway).
    pub site: Option<String>,
    keyring: Keyring,
}

impl Server {
    /// Runs `coldchain serve <service> --site <site>` on the test network, requiring the
    /// keys of [`TestNetwork::keyring`] and calling other services with its own, and waits
    /// until it answers health.
    pub fn start(net: &TestNetwork, service: &str, site: Option<&str>) -> Server {
        Self::start_with_env(net, service, site, &[])
    }

    /// [`Self::start`] with extra environment variables.
    pub fn start_with_env(
        net: &TestNetwork,
        service: &str,
        site: Option<&str>,
        env: &[(&str, &str)],
    ) -> Server {
        let keyring = net.keyring();
        let mut command = command();
        command
            .arg("serve")
            .arg(service)
            .arg("--network")
            .arg(&net.file)
            .env("COLDCHAIN_DATA_DIR", net.data_dir())
            .env("COLDCHAIN_LOG_LEVEL", "warn")
            .env("COLDCHAIN_AUTH_FILE", keyring.credentials_file())
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        // The booking service calls no other service, so it has no key of its own.
        if service != "booking" {
            command.env(
                "COLDCHAIN_CLIENT_KEY_FILE",
                keyring.key_file(&service_credential(service)),
            );
        }
        if let Some(site) = site {
            command.arg("--site").arg(site);
        }
        let child = command.spawn().expect("spawn coldchain");
        let config = net.config();
        let endpoint = match (service, site) {
            ("gateway", _) => config.gateway_endpoint(),
            (kind, Some(site)) => config
                .endpoint(site, kind.parse().expect("service kind"))
                .expect("endpoint"),
            _ => panic!("site services need a site"),
        };
        let server = Server {
            child,
            endpoint,
            site: site.map(str::to_owned),
            keyring: keyring.clone(),
        };
        server.wait_healthy(Duration::from_secs(20));
        server
    }

    /// A channel to this server calling as the credential `id` of the network's keyring.
    pub fn channel_as(&self, id: &str) -> Channel {
        self.keyring.channel(&self.endpoint, id)
    }

    /// A channel to this site server calling as its site's warehouse system.
    pub fn as_warehouse(&self) -> Channel {
        let site = self.site.as_deref().expect("a site server");
        self.channel_as(&warehouse(site))
    }

    /// Waits until `coldchain healthcheck` passes.
    pub fn wait_healthy(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let ok = command()
                .args(["healthcheck", &self.endpoint, "--timeout-ms", "500"])
                .stdout(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not healthy within {within:?}",
                self.endpoint
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: no shutdown hook runs, nothing is flushed beyond what was acknowledged.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().expect("wait")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True when `path` holds a sled database.
pub fn has_database(path: &Path) -> bool {
    path.join("conf").exists() || path.join("db").exists()
}

/// A lot that expires on 2099-12-31: stock in it never expires under a test.
pub fn lasting_lot(lot_id: impl Into<String>) -> coldchain_proto::inventory::v1::LotInfo {
    coldchain_proto::inventory::v1::LotInfo {
        lot_id: lot_id.into(),
        expiry: Some(coldchain_proto::common::v1::Date {
            year: 2099,
            month: 12,
            day: 31,
        }),
        production: None,
        origin: String::new(),
    }
}
