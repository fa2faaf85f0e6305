//! The network as separate processes: `coldchain serve` per service, on free ports, each in
//! a data directory of its own, with a keyring of every role; SIGKILL and restart,
//! SIGSTOP and SIGCONT; and a watch for processes that exit on their own.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use coldchain_credentials::Keyring;
use coldchain_runtime::network::{NetworkConfig, ServiceKind};
use tokio::process::{Child, Command};

/// One server process.
pub struct Process {
    /// `gateway` or `<service>@<site>`.
    pub name: String,
    kind: ServiceKind,
    site: Option<String>,
    /// Where clients reach it.
    pub endpoint: String,
    data_dir: PathBuf,
    child: Option<Child>,
    paused: bool,
    /// Starts so far (1 + restarts).
    pub starts: u32,
}

/// The network's processes and what they share.
pub struct Cluster {
    /// The network file the processes read (the chosen sites on free ports).
    pub network_file: PathBuf,
    /// The same, parsed.
    pub network: NetworkConfig,
    /// Every role's key.
    pub keyring: Keyring,
    dir: PathBuf,
    exe: PathBuf,
    processes: Vec<Process>,
}

/// Writes the network file of the chosen `sites` (in the order of `shipped`) with every
/// port replaced by a free one.
pub fn private_network(shipped: &str, sites: &[String]) -> Result<String, String> {
    let mut doc: toml::Table = shipped
        .parse()
        .map_err(|e| format!("the network file: {e}"))?;
    let mut held = Vec::new();
    let mut cursor = first_port();
    let mut free_port = || -> Result<i64, String> {
        let (listener, port) = listener_below_ephemeral(&mut cursor)?;
        held.push(listener);
        Ok(i64::from(port))
    };
    let gateway = doc
        .get_mut("gateway")
        .and_then(toml::Value::as_table_mut)
        .ok_or("the network file has no [gateway]")?;
    gateway.insert(
        "listen".into(),
        toml::Value::String(format!("127.0.0.1:{}", free_port()?)),
    );
    let all = doc
        .get_mut("site")
        .and_then(toml::Value::as_array_mut)
        .ok_or("the network file has no [[site]]")?;
    let known: Vec<String> = all
        .iter()
        .filter_map(|s| s.get("id").and_then(toml::Value::as_str).map(str::to_owned))
        .collect();
    if let Some(unknown) = sites.iter().find(|s| !known.contains(s)) {
        return Err(format!(
            "--sites: {unknown} is not a site of the network ({})",
            known.join(", ")
        ));
    }
    all.retain(|s| {
        s.get("id")
            .and_then(toml::Value::as_str)
            .is_some_and(|id| sites.iter().any(|w| w == id))
    });
    for site in all.iter_mut() {
        if let Some(ports) = site.get_mut("ports").and_then(toml::Value::as_table_mut) {
            for kind in ["inventory", "telemetry", "booking"] {
                ports.insert(kind.into(), toml::Value::Integer(free_port()?));
            }
        }
        if let Some(table) = site.as_table_mut() {
            table.remove("endpoints");
        }
    }
    toml::to_string(&doc).map_err(|e| format!("cannot write the network file: {e}"))
}

/// The lowest port handed to the soak's servers.
const FIRST_PORT: u32 = 20_000;

/// The start of the kernel's ephemeral range.
fn ephemeral_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// Where this run starts looking for ports: differs per process, so runs side by side
/// rarely try the same ones.
fn first_port() -> u32 {
    let span = ephemeral_start().saturating_sub(FIRST_PORT).max(1);
    FIRST_PORT + std::process::id().wrapping_mul(7_919) % span
}

/// A listener on a free port below the ephemeral range, held until the caller drops it.
///
/// Not port 0: the kernel picks those from the ephemeral range, where it also takes the
/// local port of every outgoing connection. A server killed by the soak must get its port
/// back when it restarts; in that range a client's connection could have taken it meanwhile.
fn listener_below_ephemeral(cursor: &mut u32) -> Result<(TcpListener, u16), String> {
    let end = ephemeral_start();
    if end <= FIRST_PORT + 1_000 {
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        return Ok((listener, port));
    }
    let span = end - FIRST_PORT;
    for _ in 0..span {
        *cursor = FIRST_PORT + (*cursor + 1 - FIRST_PORT) % span;
        let port = u16::try_from(*cursor).map_err(|_| "port out of range".to_owned())?;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            return Ok((listener, port));
        }
    }
    Err(format!("no free port between {FIRST_PORT} and {end}"))
}

impl Cluster {
    /// Prepares `dir` (network file, keyring) for the chosen sites; starts nothing.
    pub fn prepare(
        dir: &Path,
        exe: PathBuf,
        shipped: &str,
        sites: &[String],
    ) -> Result<Cluster, String> {
        let text = private_network(shipped, sites)?;
        let network_file = dir.join("network.toml");
        std::fs::write(&network_file, &text)
            .map_err(|e| format!("{}: {e}", network_file.display()))?;
        let network = NetworkConfig::parse(&text).map_err(|e| e.to_string())?;
        let keyring = Keyring::at(dir.join("keyring"));
        keyring.ensure(&network)?;
        let mut processes = Vec::new();
        for site in &network.sites {
            for kind in ServiceKind::SITE_SERVICES {
                processes.push(Process {
                    name: format!("{kind}@{}", site.id),
                    kind,
                    site: Some(site.id.clone()),
                    endpoint: site.endpoint(kind).unwrap_or_default(),
                    data_dir: dir.join("data").join(format!("{kind}-{}", site.id)),
                    child: None,
                    paused: false,
                    starts: 0,
                });
            }
        }
        processes.push(Process {
            name: "gateway".into(),
            kind: ServiceKind::Gateway,
            site: None,
            endpoint: network.gateway_endpoint(),
            data_dir: dir.join("data").join("gateway"),
            child: None,
            paused: false,
            starts: 0,
        });
        Ok(Cluster {
            network_file,
            network,
            keyring,
            dir: dir.to_path_buf(),
            exe,
            processes,
        })
    }

    /// The processes' names, in a fixed order (the schedule draws from it).
    pub fn names(&self) -> Vec<String> {
        self.processes.iter().map(|p| p.name.clone()).collect()
    }

    /// Total restarts so far.
    pub fn restarts(&self) -> u32 {
        self.processes
            .iter()
            .map(|p| p.starts.saturating_sub(1))
            .sum()
    }

    /// Starts every process and waits (bounded) until each answers health.
    pub async fn start_all(&mut self, within: Duration) -> Result<(), String> {
        for i in 0..self.processes.len() {
            self.spawn(i)?;
        }
        self.wait_healthy(within).await
    }

    /// Waits until every process answers SERVING, or says which do not.
    pub async fn wait_healthy(&self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        for process in &self.processes {
            loop {
                if serving(&process.endpoint).await {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(format!(
                        "{} ({}) not serving within {} s; its log: {}",
                        process.name,
                        process.endpoint,
                        within.as_secs(),
                        self.log_file(process).display()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }

    fn log_file(&self, process: &Process) -> PathBuf {
        self.dir.join("logs").join(format!("{}.log", process.name))
    }

    fn spawn(&mut self, index: usize) -> Result<(), String> {
        let log_dir = self.dir.join("logs");
        std::fs::create_dir_all(&log_dir).map_err(|e| format!("{}: {e}", log_dir.display()))?;
        let process = &self.processes[index];
        let log_path = self.log_file(process);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        let mut command = Command::new(&self.exe);
        command
            .arg("serve")
            .arg(process.kind.as_str())
            .arg("--network")
            .arg(&self.network_file)
            .env("COLDCHAIN_DATA_DIR", &process.data_dir)
            .env("COLDCHAIN_LOG_LEVEL", "warn")
            .env("COLDCHAIN_METRICS_LISTEN", "off")
            .env("COLDCHAIN_RATE_LIMIT", "1000000")
            .env("COLDCHAIN_RATE_BURST", "1000000")
            .env("COLDCHAIN_AUTH_FILE", self.keyring.credentials_file())
            .env_remove("COLDCHAIN_CONFIG")
            .env_remove("COLDCHAIN_CLIENT_KEY_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        // Booking calls no other service, so it has no key of its own.
        if process.kind != ServiceKind::Booking {
            command.env(
                "COLDCHAIN_CLIENT_KEY_FILE",
                self.keyring
                    .key_file(&coldchain_credentials::service(process.kind)),
            );
        }
        if let Some(site) = &process.site {
            command.arg("--site").arg(site);
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.exe.display()))?;
        let process = &mut self.processes[index];
        process.child = Some(child);
        process.paused = false;
        process.starts += 1;
        Ok(())
    }

    fn index(&self, name: &str) -> Result<usize, String> {
        self.processes
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| format!("no process {name}"))
    }

    /// SIGKILL (a paused process too), and reaps it.
    pub async fn kill(&mut self, name: &str) -> Result<(), String> {
        let index = self.index(name)?;
        if let Some(mut child) = self.processes[index].child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        self.processes[index].paused = false;
        Ok(())
    }

    /// The data directory of the process `name`.
    pub fn data_dir(&self, name: &str) -> Result<&Path, String> {
        Ok(&self.processes[self.index(name)?].data_dir)
    }

    /// The process id of `name`, while it runs.
    pub fn pid(&self, name: &str) -> Option<u32> {
        let index = self.index(name).ok()?;
        self.processes[index].child.as_ref().and_then(Child::id)
    }

    /// Starts a killed process again on the same data.
    pub fn restart(&mut self, name: &str) -> Result<(), String> {
        let index = self.index(name)?;
        if self.processes[index].child.is_none() {
            self.spawn(index)?;
        }
        Ok(())
    }

    /// SIGSTOP (`pause = true`) or SIGCONT.
    pub async fn signal_pause(&mut self, name: &str, pause: bool) -> Result<(), String> {
        let index = self.index(name)?;
        let process = &mut self.processes[index];
        let Some(pid) = process.child.as_ref().and_then(Child::id) else {
            return Ok(());
        };
        let signal = if pause { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .await
            .map_err(|e| format!("kill {signal} {pid}: {e}"))?;
        if !status.success() {
            return Err(format!("kill {signal} {pid}: {status}"));
        }
        process.paused = pause;
        Ok(())
    }

    /// Processes that exited without being killed by the soak: each is reported once, with
    /// its exit status and log, and started again so the run goes on.
    pub fn reap_unexpected(&mut self) -> Vec<String> {
        let mut exits = Vec::new();
        for index in 0..self.processes.len() {
            let exited = match self.processes[index].child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Some(status.to_string()),
                Some(Err(e)) => Some(format!("cannot wait: {e}")),
                _ => None,
            };
            if let Some(status) = exited {
                let process = &mut self.processes[index];
                process.child = None;
                exits.push(format!(
                    "{}: {status} (log: {})",
                    process.name,
                    self.dir
                        .join("logs")
                        .join(format!("{}.log", process.name))
                        .display()
                ));
                if let Err(e) = self.spawn(index) {
                    exits.push(e);
                }
            }
        }
        exits
    }

    /// Ends every fault: continues paused processes, starts killed ones.
    pub async fn heal(&mut self) -> Result<(), String> {
        for index in 0..self.processes.len() {
            let name = self.processes[index].name.clone();
            if self.processes[index].paused {
                self.signal_pause(&name, false).await?;
            }
            if self.processes[index].child.is_none() {
                self.spawn(index)?;
            }
        }
        Ok(())
    }

    /// SIGKILLs everything (the soak's data is thrown away with its directory).
    pub async fn stop_all(&mut self) {
        for index in 0..self.processes.len() {
            let name = self.processes[index].name.clone();
            let _ = self.kill(&name).await;
        }
    }
}

/// True when the server at `endpoint` answers grpc.health SERVING within a second.
pub async fn serving(endpoint: &str) -> bool {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let Ok(transport) = tonic::transport::Endpoint::from_shared(endpoint.to_owned()) else {
        return false;
    };
    let channel = transport
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(1));
    let Ok(channel) = channel.connect().await else {
        return false;
    };
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await;
    answer.is_ok_and(|a| a.into_inner().status == ServingStatus::Serving as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../../deploy/network.toml");

    #[test]
    fn the_private_network_has_the_chosen_sites_on_fresh_ports() {
        let sites = vec!["la-vientiane".to_owned(), "cn-huaihua-park".to_owned()];
        let text = private_network(SHIPPED, &sites).unwrap();
        let network = NetworkConfig::parse(&text).unwrap();
        let ids: Vec<&str> = network.site_ids().collect();
        assert_eq!(
            ids,
            ["cn-huaihua-park", "la-vientiane"],
            "in the file's order"
        );
        let shipped = NetworkConfig::parse(SHIPPED).unwrap();
        assert_ne!(network.gateway.port(), shipped.gateway.port());
        for site in &network.sites {
            let before = shipped.site(&site.id).unwrap();
            assert_eq!(site.zones, before.zones);
            for kind in ServiceKind::SITE_SERVICES {
                assert_ne!(site.port(kind), before.port(kind));
            }
        }
    }

    #[test]
    fn an_unknown_site_is_refused_by_name() {
        let error = private_network(SHIPPED, &["xx-nowhere".to_owned()]).unwrap_err();
        assert!(error.contains("xx-nowhere"), "{error}");
    }
}
