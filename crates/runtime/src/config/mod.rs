//! The process configuration: defaults < TOML file < `COLDCHAIN_*` environment variables.
//!
//! The environment is passed in as a map, so tests never touch the real one; the binary builds
//! that map once with [`Config::env_from_process`]. Unknown TOML keys and unknown `COLDCHAIN_*`
//! variables are errors, and every bad value (in the file and in the environment) is reported
//! at once in one [`ConfigErrors`].
//!
//! Durations are written like `"10s"`, `"500ms"`, `"15m"`, `"48h"` or `"1h30m"` (see
//! [`parse_duration`]); byte sizes as an integer number of bytes or like `"8MiB"` (see
//! [`parse_byte_size`]).
//!
//! Service-specific settings (booking grace periods, alarm thresholds, ...) are not here: each
//! service owns its own configuration.

use std::collections::BTreeMap;
use std::fmt;

use coldchain_network::{did_you_mean, toml_error_message};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

pub use coldchain_network::ConfigErrors;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    #[default]
    Human,
    /// One JSON object per line, for containers and log shippers.
    Json,
}

impl LogFormat {
    /// Every format, in a stable order.
    pub const ALL: [LogFormat; 2] = [LogFormat::Human, LogFormat::Json];

    /// The name used in files and variables: `human` or `json`.
    pub const fn as_str(self) -> &'static str {
        match self {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogFormat {
    type Err = String;

    /// Accepts `human` or `json`, in any letter case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LogFormat::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("expected \"human\" or \"json\", got {s:?}"))
    }
}

/// The configuration of a `coldchain` process (shared by every server it runs).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Root of the sled databases: `<data_dir>/<site>/<service>`. Default `./data`.
    pub data_dir: PathBuf,
    /// Root of the write-ahead log archives, `<wal_archive_dir>/<site>/<service>`: every log
    /// segment is copied there (and fsynced) before it is deleted, for point-in-time
    /// recovery (`coldchain restore --archive`). Default none: no archive.
    pub wal_archive_dir: Option<PathBuf>,
    /// The network description (sites, zones, ports). Default `deploy/network.toml`.
    pub network_file: PathBuf,
    /// Human or JSON log lines. Default human.
    pub log_format: LogFormat,
    /// A `tracing` filter: a level (`info`) or directives (`info,coldchain_store=debug`).
    /// Default `info`.
    pub log_level: String,
    /// The IP address the servers bind to. Default 127.0.0.1 (0.0.0.0 in containers).
    pub listen_host: IpAddr,
    /// The deadline of one unary RPC on the server side. Default 10 s.
    pub rpc_timeout: Duration,
    /// In-flight requests per server before load shedding. Default 1024.
    pub concurrency_limit: usize,
    /// The largest gRPC message accepted or sent. Default 4 MiB.
    pub max_message_bytes: usize,
    /// How long a stopping server waits for in-flight calls. Default 3 s.
    pub shutdown_grace: Duration,
    /// How long request ids are remembered for idempotent replay. Default 48 h, at least 24 h.
    pub idempotency_retention: Duration,
    /// The sled page cache of each database. Default 8 MiB (25 databases must fit in 300 MiB).
    pub sled_cache_bytes: u64,
    /// The rows writes read, cached next to each database's writer lock. Default 2 MiB; 0
    /// turns it off.
    pub row_cache_bytes: u64,
    /// The filter of each database's recent request ids, which spares a write with a new id
    /// a lookup. About 1.25 bytes per id recorded within the retention; past it, every id is
    /// looked up. Default 1 MiB; 0 turns it off.
    pub request_filter_bytes: u64,
    /// Acknowledged writes not yet applied to sled, held in memory per database (they are
    /// durable in the write-ahead log). Beyond it new writes wait for sled to catch up.
    /// Default 8 MiB; at least 64 KiB.
    pub overlay_bytes: u64,
    /// The credentials file (ids, roles, SHA-256 of the secrets): see SECURITY.md. Required
    /// by `serve` unless `insecure_no_auth` is set.
    pub auth_file: Option<PathBuf>,
    /// Serve without authentication. Only for trying things out; the servers say so loudly.
    pub insecure_no_auth: bool,
    /// The file holding this process's own API key, sent on service-to-service calls.
    pub client_key_file: Option<PathBuf>,
    /// The server certificate chain (PEM). With `tls_key`, every server speaks TLS only.
    pub tls_cert: Option<PathBuf>,
    /// The server's private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// The CA that signed the servers' certificates: clients use TLS and trust only it.
    pub tls_ca: Option<PathBuf>,
    /// When set, servers require a client certificate signed by this CA (mutual TLS), and
    /// this process presents `tls_cert`/`tls_key` when it calls other services.
    pub tls_client_ca: Option<PathBuf>,
    /// Calls per second one credential may make to one server, across all its connections.
    /// Default 2000.
    pub rate_limit: usize,
    /// Calls one credential may make at once above the rate before it is limited. Default 4000.
    pub rate_burst: usize,
    /// A client stream that sends nothing for this long is closed. Default 60 s.
    pub stream_idle_timeout: Duration,
    /// Every resumable feed (inventory's WatchLedger, telemetry's and the gateway's
    /// WatchAlarms): messages queued for one consumer. A consumer that leaves this many
    /// unread for `feed_stall` is cut off with RESOURCE_EXHAUSTED naming where to resume.
    /// Default 16.
    pub feed_buffer: usize,
    /// Every resumable feed: how long a consumer may leave its queue full. Default 10 s.
    pub feed_stall: Duration,
    /// Every resumable feed: an idle stream sends a message with no events this often.
    /// Default 15 s.
    pub feed_keepalive: Duration,
    /// When set, the server also answers `grpc.health.v1.Health` (and nothing else) in
    /// plaintext on this port of `listen_host`, for probes that cannot speak TLS: Kubernetes'
    /// native gRPC probes never do. One server per process (`serve`), so `dev` refuses it.
    pub health_port: Option<u16>,
    /// Where the process serves its Prometheus metrics (`GET /metrics`); `None` (written
    /// `""` or `"off"`) serves none and records none. Default 127.0.0.1:9464 (0.0.0.0:9464
    /// in containers).
    pub metrics_listen: Option<SocketAddr>,
    /// How often each service samples its domain series (stock per zone, alarms, outboxes,
    /// reachability) from its state while metrics are on. Default 15 s.
    pub metrics_sample_interval: Duration,
    /// The console's key for signing session cookies and form tokens (a file of at least 32
    /// bytes). Unset: a random key made at start, so sessions end when the process does.
    pub console_session_key_file: Option<PathBuf>,
    /// How long a console login lasts. Default 8 h (1 min to 7 d).
    pub console_session_ttl: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            wal_archive_dir: None,
            network_file: PathBuf::from("deploy/network.toml"),
            log_format: LogFormat::Human,
            log_level: "info".to_owned(),
            listen_host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            rpc_timeout: Duration::from_secs(10),
            concurrency_limit: 1024,
            max_message_bytes: 4 * MIB as usize,
            shutdown_grace: Duration::from_secs(3),
            idempotency_retention: Duration::from_secs(48 * 3600),
            sled_cache_bytes: 8 * MIB,
            row_cache_bytes: 2 * MIB,
            request_filter_bytes: MIB,
            overlay_bytes: 8 * MIB,
            auth_file: None,
            insecure_no_auth: false,
            client_key_file: None,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            tls_client_ca: None,
            rate_limit: 2000,
            rate_burst: 4000,
            stream_idle_timeout: Duration::from_secs(60),
            feed_buffer: 16,
            feed_stall: Duration::from_secs(10),
            feed_keepalive: Duration::from_secs(15),
            health_port: None,
            metrics_listen: Some(DEFAULT_METRICS_LISTEN),
            metrics_sample_interval: Duration::from_secs(15),
            console_session_key_file: None,
            console_session_ttl: Duration::from_secs(8 * 3600),
        }
    }
}

/// Where metrics are served unless configured otherwise: 9464 is the port OpenTelemetry's
/// Prometheus exporters use.
pub const DEFAULT_METRICS_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9464);

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// The least idempotency retention DESIGN.md allows.
pub const MIN_IDEMPOTENCY_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// The most: ten years keeps every time computation far from overflowing.
pub const MAX_IDEMPOTENCY_RETENTION: Duration = Duration::from_secs(3650 * 24 * 3600);

/// What a field holds, which decides how its text is read and which TOML types it accepts.
#[derive(Clone, Copy)]
enum Kind {
    Path,
    OptionalPath,
    Bool,
    LogFormat,
    LogLevel,
    Ip,
    Duration,
    Count,
    Bytes,
    OptionalPort,
    Listen,
}

/// The fields of [`Config`], as written in the TOML file (the environment variable is
/// `COLDCHAIN_` + the upper-case name).
const FIELDS: &[(&str, Kind)] = &[
    ("data_dir", Kind::Path),
    ("network_file", Kind::Path),
    ("log_format", Kind::LogFormat),
    ("log_level", Kind::LogLevel),
    ("listen_host", Kind::Ip),
    ("rpc_timeout", Kind::Duration),
    ("concurrency_limit", Kind::Count),
    ("max_message_bytes", Kind::Bytes),
    ("shutdown_grace", Kind::Duration),
    ("idempotency_retention", Kind::Duration),
    ("sled_cache_bytes", Kind::Bytes),
    ("row_cache_bytes", Kind::Bytes),
    ("request_filter_bytes", Kind::Bytes),
    ("overlay_bytes", Kind::Bytes),
    ("auth_file", Kind::OptionalPath),
    ("insecure_no_auth", Kind::Bool),
    ("client_key_file", Kind::OptionalPath),
    ("tls_cert", Kind::OptionalPath),
    ("tls_key", Kind::OptionalPath),
    ("tls_ca", Kind::OptionalPath),
    ("tls_client_ca", Kind::OptionalPath),
    ("rate_limit", Kind::Count),
    ("rate_burst", Kind::Count),
    ("stream_idle_timeout", Kind::Duration),
    ("feed_buffer", Kind::Count),
    ("feed_stall", Kind::Duration),
    ("feed_keepalive", Kind::Duration),
    ("health_port", Kind::OptionalPort),
    ("metrics_listen", Kind::Listen),
    ("metrics_sample_interval", Kind::Duration),
    ("console_session_key_file", Kind::OptionalPath),
    ("console_session_ttl", Kind::Duration),
    ("wal_archive_dir", Kind::OptionalPath),
];

impl Config {
    /// The prefix of every environment variable of the project.
    pub const ENV_PREFIX: &'static str = "COLDCHAIN_";

    /// `COLDCHAIN_*` variables that are not [`Config`] fields but are read elsewhere (by the
    /// CLI), so [`Config::load`] must not reject them. `COLDCHAIN_CONFIG` is the path of the
    /// TOML config file (see [`Config::file_from_env`]); `COLDCHAIN_KEYRING` the directory the
    /// command-line tools take their API keys from.
    pub const KNOWN_EXTRA_ENV: &'static [&'static str] = &["COLDCHAIN_CONFIG", "COLDCHAIN_KEYRING"];

    /// The keys the TOML file accepts, in declaration order.
    pub fn keys() -> impl Iterator<Item = &'static str> {
        FIELDS.iter().map(|(key, _)| *key)
    }

    /// The environment variable of a TOML key: `rpc_timeout` → `COLDCHAIN_RPC_TIMEOUT`.
    pub fn env_var_name(key: &str) -> String {
        format!("{}{}", Self::ENV_PREFIX, key.to_ascii_uppercase())
    }

    /// Every environment variable [`Config::load`] reads (not counting
    /// [`Config::KNOWN_EXTRA_ENV`]).
    pub fn env_vars() -> Vec<String> {
        Self::keys().map(Self::env_var_name).collect()
    }

    /// The `COLDCHAIN_*` variables of this process, values converted lossily to UTF-8 (a
    /// non-UTF-8 value then fails validation instead of panicking). Only the binary calls this;
    /// everything else takes the map.
    pub fn env_from_process() -> BTreeMap<String, String> {
        std::env::vars_os()
            .filter_map(|(k, v)| {
                let k = k.to_string_lossy().into_owned();
                k.starts_with(Self::ENV_PREFIX)
                    .then(|| (k, v.to_string_lossy().into_owned()))
            })
            .collect()
    }

    /// The config file named by `COLDCHAIN_CONFIG`, if set and not empty.
    pub fn file_from_env(env: &BTreeMap<String, String>) -> Option<PathBuf> {
        env.get("COLDCHAIN_CONFIG")
            .filter(|v| !v.trim().is_empty())
            .map(PathBuf::from)
    }

    /// Loads the configuration: defaults, then the TOML `file` (if any), then the `COLDCHAIN_*`
    /// variables of `env`. Every problem — an unreadable file, a TOML syntax error, unknown
    /// keys, unknown variables, bad values in the file and in the environment — is reported at
    /// once.
    pub fn load(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigErrors> {
        match file {
            None => Self::from_layers(None, env),
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => Self::from_layers(Some((&path.display().to_string(), &text)), env),
                Err(err) => {
                    let mut errors = ConfigErrors::single(format!(
                        "cannot read config file {:?}: {err}",
                        path.display().to_string()
                    ));
                    if let Err(env_errors) = Self::from_layers(None, env) {
                        errors.extend(env_errors);
                    }
                    Err(errors)
                }
            },
        }
    }

    /// Like [`Config::load`], with the file given as `(origin, text)`; `origin` (a path or
    /// any label) prefixes the problems found in the text.
    pub fn from_layers(
        file: Option<(&str, &str)>,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigErrors> {
        let mut config = Config::default();
        let mut errors = ConfigErrors::new();
        if let Some((origin, text)) = file {
            config.apply_toml(origin, text, &mut errors);
        }
        config.apply_env(env, &mut errors);
        config.check_combinations(&mut errors);
        errors.into_result(config)
    }

    /// Settings that are each fine alone but contradict each other.
    fn check_combinations(&self, errors: &mut ConfigErrors) {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            errors.push("tls_cert and tls_key must be set together");
        }
        if self.tls_client_ca.is_some() && self.tls_cert.is_none() {
            errors.push(
                "tls_client_ca (mutual TLS) needs tls_cert and tls_key: the certificate this \
                 process presents",
            );
        }
        if self.insecure_no_auth && self.auth_file.is_some() {
            errors.push("insecure_no_auth and auth_file contradict each other: set only one");
        }
        if self.rate_burst < self.rate_limit {
            errors.push(format!(
                "rate_burst ({}) must be at least rate_limit ({})",
                self.rate_burst, self.rate_limit
            ));
        }
    }

    fn apply_toml(&mut self, origin: &str, text: &str, errors: &mut ConfigErrors) {
        let table = match text.parse::<toml::Table>() {
            Ok(table) => table,
            Err(err) => {
                errors.push(format!("{origin}: {}", toml_error_message(text, &err)));
                return;
            }
        };
        // Sorted, so the report does not depend on toml's map implementation.
        let mut entries: Vec<(&String, &toml::Value)> = table.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        for (key, value) in entries {
            let Some(&(field, kind)) = FIELDS.iter().find(|(k, _)| k == key) else {
                let known: Vec<&str> = Self::keys().collect();
                errors.push(format!(
                    "{origin}: unknown key {key:?}{}; known keys: {}",
                    did_you_mean(key, &known),
                    known.join(", ")
                ));
                continue;
            };
            let text = match (value, kind) {
                (toml::Value::String(s), _) => s.clone(),
                (toml::Value::Integer(i), Kind::Count | Kind::Bytes | Kind::OptionalPort) => {
                    i.to_string()
                }
                (toml::Value::Boolean(b), Kind::Bool) => b.to_string(),
                (other, _) => {
                    let shown = match other {
                        toml::Value::Array(_) | toml::Value::Table(_) => String::new(),
                        scalar => format!(" {scalar}"),
                    };
                    errors.push(format!(
                        "{origin}: {field}: expected {}, got {}{shown}",
                        kind.expected_toml(),
                        other.type_str()
                    ));
                    continue;
                }
            };
            if let Err(problem) = self.set(field, kind, &text) {
                errors.push(format!("{origin}: {field}: {problem}"));
            }
        }
    }

    fn apply_env(&mut self, env: &BTreeMap<String, String>, errors: &mut ConfigErrors) {
        let known = Self::env_vars();
        for (name, value) in env {
            if !name.starts_with(Self::ENV_PREFIX) || Self::KNOWN_EXTRA_ENV.contains(&name.as_str())
            {
                continue;
            }
            let Some(&(field, kind)) = FIELDS.iter().find(|(k, _)| Self::env_var_name(k) == *name)
            else {
                let mut all: Vec<&str> = known.iter().map(String::as_str).collect();
                all.extend(Self::KNOWN_EXTRA_ENV);
                errors.push(format!(
                    "unknown environment variable {name}{}; known variables: {}",
                    did_you_mean(name, &all),
                    all.join(", ")
                ));
                continue;
            };
            if let Err(problem) = self.set(field, kind, value) {
                errors.push(format!("{name}: {problem}"));
            }
        }
    }

    /// Parses `text` for `field` and stores it, or says what is wrong with it.
    fn set(&mut self, field: &str, kind: Kind, text: &str) -> Result<(), String> {
        match kind {
            Kind::Path => {
                if text.trim().is_empty() {
                    return Err("must not be empty".to_owned());
                }
                let path = PathBuf::from(text);
                match field {
                    "data_dir" => self.data_dir = path,
                    _ => self.network_file = path,
                }
            }
            Kind::OptionalPath => {
                // An empty value clears a path set by an earlier layer.
                let path = (!text.trim().is_empty()).then(|| PathBuf::from(text));
                match field {
                    "auth_file" => self.auth_file = path,
                    "client_key_file" => self.client_key_file = path,
                    "tls_cert" => self.tls_cert = path,
                    "tls_key" => self.tls_key = path,
                    "tls_ca" => self.tls_ca = path,
                    "console_session_key_file" => self.console_session_key_file = path,
                    "wal_archive_dir" => self.wal_archive_dir = path,
                    _ => self.tls_client_ca = path,
                }
            }
            Kind::Bool => {
                self.insecure_no_auth = match text.trim() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(format!("expected true or false, got {text:?}")),
                };
            }
            Kind::LogFormat => self.log_format = text.parse()?,
            Kind::LogLevel => {
                check_log_filter(text)?;
                self.log_level = text.trim().to_owned();
            }
            Kind::Listen => self.metrics_listen = parse_listen(text)?,
            Kind::Ip => {
                self.listen_host = text.trim().parse().map_err(|_| {
                    format!("expected an ip address like 127.0.0.1 or 0.0.0.0, got {text:?}")
                })?;
            }
            Kind::Duration => {
                let d = parse_duration(text)?;
                match field {
                    "rpc_timeout" => {
                        if d.is_zero() {
                            return Err(format!("must be more than 0s, got {text:?}"));
                        }
                        self.rpc_timeout = d;
                    }
                    "shutdown_grace" => self.shutdown_grace = d,
                    "stream_idle_timeout" => {
                        if d < Duration::from_secs(1) {
                            return Err(format!("must be at least 1s, got {text:?}"));
                        }
                        self.stream_idle_timeout = d;
                    }
                    "feed_stall" => {
                        if d < Duration::from_millis(100) {
                            return Err(format!("must be at least 100ms, got {text:?}"));
                        }
                        self.feed_stall = d;
                    }
                    "metrics_sample_interval" => {
                        if d < Duration::from_millis(100) {
                            return Err(format!("must be at least 100ms, got {text:?}"));
                        }
                        self.metrics_sample_interval = d;
                    }
                    "feed_keepalive" => {
                        if d < Duration::from_secs(1) {
                            return Err(format!("must be at least 1s, got {text:?}"));
                        }
                        self.feed_keepalive = d;
                    }
                    "console_session_ttl" => {
                        if d < Duration::from_secs(60) || d > Duration::from_secs(7 * 24 * 3600) {
                            return Err(format!("must be between 1m and 7d, got {text:?}"));
                        }
                        self.console_session_ttl = d;
                    }
                    _ => {
                        if d < MIN_IDEMPOTENCY_RETENTION {
                            return Err(format!("must be at least 24h, got {text:?}"));
                        }
                        if d > MAX_IDEMPOTENCY_RETENTION {
                            return Err(format!("must be at most 3650d, got {text:?}"));
                        }
                        self.idempotency_retention = d;
                    }
                }
            }
            Kind::Count => {
                let n: usize = text
                    .trim()
                    .parse()
                    .map_err(|_| format!("expected a positive integer, got {text:?}"))?;
                if n == 0 {
                    return Err("must be at least 1, got 0".to_owned());
                }
                match field {
                    "concurrency_limit" => self.concurrency_limit = n,
                    "rate_limit" => self.rate_limit = n,
                    "feed_buffer" => self.feed_buffer = n,
                    _ => self.rate_burst = n,
                }
            }
            Kind::OptionalPort => {
                // An empty value clears a port set by an earlier layer.
                self.health_port = if text.trim().is_empty() {
                    None
                } else {
                    match text.trim().parse::<u16>() {
                        Ok(0) | Err(_) => {
                            return Err(format!("expected a port from 1 to 65535, got {text:?}"));
                        }
                        Ok(port) => Some(port),
                    }
                };
            }
            Kind::Bytes => {
                let n = parse_byte_size(text)?;
                if field == "max_message_bytes" {
                    if !(KIB..=GIB).contains(&n) {
                        return Err(format!("must be between 1KiB and 1GiB, got {text:?}"));
                    }
                    self.max_message_bytes = usize::try_from(n)
                        .map_err(|_| format!("is too large for this machine, got {text:?}"))?;
                } else if field == "overlay_bytes" {
                    if !(64 * KIB..=GIB).contains(&n) {
                        return Err(format!("must be between 64KiB and 1GiB, got {text:?}"));
                    }
                    self.overlay_bytes = n;
                } else if field == "row_cache_bytes" || field == "request_filter_bytes" {
                    if n > GIB {
                        return Err(format!("must be at most 1GiB, got {text:?}"));
                    }
                    if field == "row_cache_bytes" {
                        self.row_cache_bytes = n;
                    } else {
                        self.request_filter_bytes = n;
                    }
                } else {
                    if n < MIB {
                        return Err(format!("must be at least 1MiB, got {text:?}"));
                    }
                    self.sled_cache_bytes = n;
                }
            }
        }
        Ok(())
    }
}

impl Kind {
    fn expected_toml(self) -> &'static str {
        match self {
            Kind::Path | Kind::OptionalPath => "a path string",
            Kind::Bool => "true or false",
            Kind::LogFormat => "\"human\" or \"json\"",
            Kind::LogLevel => "a log filter string like \"info\"",
            Kind::Ip => "an ip address string like \"127.0.0.1\"",
            Kind::Duration => "a duration string like \"10s\"",
            Kind::Count => "a positive integer",
            Kind::Bytes => "an integer number of bytes or a size string like \"8MiB\"",
            Kind::OptionalPort => "a port number",
            Kind::Listen => "an address string like \"127.0.0.1:9464\", or \"off\"",
        }
    }
}

/// An address to listen on, or `None` for `""` / `"off"`.
fn parse_listen(text: &str) -> Result<Option<SocketAddr>, String> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        format!(
            "expected an address with a port like 127.0.0.1:9464 or 0.0.0.0:9464, or \"off\", \
             got {text:?}"
        )
    })
}

/// Checks a `tracing` filter: comma-separated directives, each a level or `target=level`.
fn check_log_filter(text: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let bad = || {
        format!(
            "expected a level (trace, debug, info, warn, error, off) or directives like \
             \"info,coldchain_store=debug\", got {text:?}"
        )
    };
    if text.trim().is_empty() {
        return Err(bad());
    }
    for directive in text.split(',') {
        let directive = directive.trim();
        let (target, level) = match directive.split_once('=') {
            Some((target, level)) => (Some(target), level),
            None => (None, directive),
        };
        if !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level)) {
            return Err(bad());
        }
        if let Some(target) = target {
            let ok = !target.is_empty()
                && target
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-' | '.'));
            if !ok {
                return Err(bad());
            }
        }
    }
    Ok(())
}

mod units;

pub use units::{format_duration, parse_byte_size, parse_duration};

#[cfg(test)]
mod tests;
