//! The network scenario: the idle `dev` network as its own process — time until all 25
//! servers answer SERVING, and its resident memory once idle.

use coldchain_soak::cluster::serving;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use coldchain_runtime::network::{NetworkConfig, ServiceKind};

pub struct IdleNetwork {
    pub time_to_healthy: Duration,
    pub rss_bytes: u64,
}

/// The shipped network with every port moved to a free one, so a running `dev` network
/// is not disturbed.
pub(crate) fn private_network(text: &str) -> Result<String, String> {
    // Every listener stays open until all ports are chosen, so no two picks collide.
    let mut held = Vec::new();
    let mut free = || -> Result<u16, String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        held.push(listener);
        Ok(port)
    };
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let key = ["inventory = ", "telemetry = ", "booking = "]
            .into_iter()
            .find(|k| trimmed.starts_with(k) && trimmed[k.len()..].trim().parse::<u16>().is_ok());
        if let Some(key) = key {
            out.push_str(&format!("{key}{}\n", free()?));
        } else if trimmed.starts_with("listen = ") {
            out.push_str(&format!("listen = \"127.0.0.1:{}\"\n", free()?));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

pub async fn idle_network() -> Result<IdleNetwork, String> {
    let shipped = std::fs::read_to_string("deploy/network.toml").map_err(|e| {
        format!("deploy/network.toml (run the bench from the repository root): {e}")
    })?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("network.toml");
    let text = private_network(&shipped)?;
    std::fs::write(&file, &text).map_err(|e| e.to_string())?;
    let network = NetworkConfig::parse(&text).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut child = Command::new(exe)
        .args(["dev", "--network"])
        .arg(&file)
        .env("COLDCHAIN_DATA_DIR", dir.path().join("data"))
        .env("COLDCHAIN_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut endpoints = vec![network.gateway_endpoint()];
    for site in &network.sites {
        for kind in ServiceKind::SITE_SERVICES {
            endpoints.extend(site.endpoint(kind));
        }
    }
    let result = async {
        for endpoint in &endpoints {
            while !serving(endpoint).await {
                if started.elapsed() > Duration::from_secs(60) {
                    return Err(format!("{endpoint} not healthy within 60 s"));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let time_to_healthy = started.elapsed();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss_bytes =
            rss(child.id()).ok_or("cannot read the resident memory of the dev process")?;
        Ok(IdleNetwork {
            time_to_healthy,
            rss_bytes,
        })
    }
    .await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    result
}

/// A running process's resident memory.
pub(crate) fn rss(pid: u32) -> Option<u64> {
    status_bytes(pid, "VmRSS:")
}

/// A running process's peak resident memory so far.
pub(crate) fn peak_rss(pid: u32) -> Option<u64> {
    status_bytes(pid, "VmHWM:")
}

/// A size field (in KiB) of `/proc/PID/status`, in bytes.
fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A one-line description of this machine.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map(|kib| format!("{:.0} GiB", kib as f64 / 1048576.0))
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), {memory}")
}

/// The largest resident memory of a process, sampled every 100 ms until stopped.
pub(crate) struct RssPeak {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssPeak {
    /// Starts sampling the process `pid` (this one: `std::process::id()`).
    pub(crate) fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (sampled, stopped) = (peak.clone(), stop.clone());
        tokio::spawn(async move {
            while !stopped.load(Ordering::Relaxed) {
                if let Some(rss) = rss(pid) {
                    sampled.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self { peak, stop }
    }

    /// The largest sample, in bytes.
    pub(crate) fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.peak.load(Ordering::Relaxed)
    }
}
