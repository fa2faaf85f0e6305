//! Helpers for tests that run `coldchain` as real processes: a private copy of the network
//! file on free ports, a data directory, spawning servers, waiting for health, SIGKILL.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shipped network file.
pub fn shipped_network() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/network.toml"
    ))
    .expect("deploy/network.toml")
}

/// A free TCP port on 127.0.0.1 (free when asked; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A private network: the shipped sites and zones, every port replaced by a free one,
/// written into `dir`. Tests never collide with a running `dev` network or each other.
pub struct TestNetwork {
    pub dir: tempfile::TempDir,
    pub file: PathBuf,
    pub gateway_port: u16,
}

impl TestNetwork {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        // Every listener stays open until all ports are chosen, so no two picks collide.
        let mut held = Vec::new();
        let mut free_port = || {
            let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
            let port = listener.local_addr().expect("local addr").port();
            held.push(listener);
            port
        };
        let gateway_port = free_port();
        let mut out = String::new();
        for line in shipped_network().lines() {
            let trimmed = line.trim_start();
            let port_key = ["inventory = ", "telemetry = ", "booking = "]
                .iter()
                .find(|k| {
                    trimmed.starts_with(**k) && trimmed[k.len()..].trim().parse::<u16>().is_ok()
                });
            if let Some(key) = port_key {
                out.push_str(&format!("{key}{}\n", free_port()));
            } else if trimmed.starts_with("listen = ") {
                out.push_str(&format!("listen = \"127.0.0.1:{gateway_port}\"\n"));
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

/// The `coldchain` binary cargo built for these tests.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_coldchain")
}

/// A `coldchain` child process; killed when dropped.
pub struct Server {
    pub child: Child,
    pub endpoint: String,
}

impl Server {
    /// Runs `coldchain serve <service> --site <site>` on the test network and waits until it
    /// answers health.
    pub fn start(net: &TestNetwork, service: &str, site: Option<&str>) -> Server {
        let mut command = Command::new(binary());
        command
            .arg("serve")
            .arg(service)
            .arg("--network")
            .arg(&net.file)
            .env("COLDCHAIN_DATA_DIR", net.data_dir())
            .env("COLDCHAIN_LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
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
        let server = Server { child, endpoint };
        server.wait_healthy(Duration::from_secs(20));
        server
    }

    /// Waits until `coldchain healthcheck` passes.
    pub fn wait_healthy(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let ok = Command::new(binary())
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
