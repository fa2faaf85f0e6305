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
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Every problem found in a configuration (a `network.toml`, a config file, the environment),
/// collected so that one report lists them all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors {
    /// One lowercase sentence per problem, naming the key (or variable) and the bad value.
    pub problems: Vec<String>,
}

impl ConfigErrors {
    /// No problems yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Exactly one problem.
    pub fn single(problem: impl Into<String>) -> Self {
        Self {
            problems: vec![problem.into()],
        }
    }

    /// Records one more problem.
    pub fn push(&mut self, problem: impl Into<String>) {
        self.problems.push(problem.into());
    }

    /// Appends every problem of `other` (to merge, say, config and network problems into one
    /// report).
    pub fn extend(&mut self, other: ConfigErrors) {
        self.problems.extend(other.problems);
    }

    /// True when no problem was recorded.
    pub fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }

    /// The number of problems.
    pub fn len(&self) -> usize {
        self.problems.len()
    }

    /// The problems, in the order they were found.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// True when some problem contains `needle` (handy in tests).
    pub fn mentions(&self, needle: &str) -> bool {
        self.problems.iter().any(|p| p.contains(needle))
    }

    /// `Ok(value)` when no problem was recorded, `Err(self)` otherwise.
    pub fn into_result<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid configuration:")?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

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
    /// When set, the server also answers `grpc.health.v1.Health` (and nothing else) in
    /// plaintext on this port of `listen_host`, for probes that cannot speak TLS: Kubernetes'
    /// native gRPC probes never do. One server per process (`serve`), so `dev` refuses it.
    pub health_port: Option<u16>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
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
            health_port: None,
        }
    }
}

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
    ("health_port", Kind::OptionalPort),
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
        }
    }
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

/// ` (did you mean "x"?)` when one of `candidates` is a small edit away from `word`.
pub(crate) fn did_you_mean(word: &str, candidates: &[&str]) -> String {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= (word.len().min(c.len()) / 6).clamp(1, 3))
        .min()
        .map(|(_, c)| format!(" (did you mean {c:?}?)"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A TOML error as `line L, column C: message`.
pub(crate) fn toml_error_message(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim();
    match err.span() {
        Some(span) => {
            let start = floor_char_boundary(text, span.start);
            let before = &text[..start];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_owned(),
    }
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// The units of [`parse_duration`] and [`format_duration`], largest first, in nanoseconds.
const DURATION_UNITS: [(&str, u128); 7] = [
    ("d", 86_400 * NANOS_PER_SEC),
    ("h", 3_600 * NANOS_PER_SEC),
    ("m", 60 * NANOS_PER_SEC),
    ("s", NANOS_PER_SEC),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

/// Parses a duration like `"10s"`, `"500ms"`, `"15m"`, `"48h"`, `"2d"` or `"1h30m"`: one or
/// more whole numbers, each followed by a unit (`d`, `h`, `m`, `s`, `ms`, `us`, `ns`), with
/// optional spaces between the parts and between a number and its unit. A bare number is
/// rejected: the unit is never guessed.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| {
        format!(
            "{why}: expected a duration like \"10s\", \"500ms\", \"15m\", \"48h\" or \"1h30m\", got {text:?}"
        )
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(bad("empty duration"));
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: u128 = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(bad("expected a number"));
        }
        let number: u128 = s[start..i].parse().map_err(|_| bad("number too large"))?;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[unit_start..i];
        if unit.is_empty() {
            return Err(bad("missing unit"));
        }
        let Some(&(_, factor)) = DURATION_UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(bad(&format!("unknown unit {unit:?}")));
        };
        total = number
            .checked_mul(factor)
            .and_then(|n| total.checked_add(n))
            .ok_or_else(|| bad("duration too large"))?;
    }
    let secs = u64::try_from(total / NANOS_PER_SEC).map_err(|_| bad("duration too large"))?;
    let nanos = u32::try_from(total % NANOS_PER_SEC).map_err(|_| bad("duration too large"))?;
    Ok(Duration::new(secs, nanos))
}

/// Writes a duration the way [`parse_duration`] reads it: `"1h30m"`, `"500ms"`, `"0s"`.
pub fn format_duration(d: Duration) -> String {
    let mut rest = d.as_nanos();
    if rest == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, factor) in DURATION_UNITS {
        let n = rest / factor;
        if n > 0 {
            out.push_str(&n.to_string());
            out.push_str(unit);
            rest %= factor;
        }
    }
    out
}

/// Parses a byte size: a whole number of bytes (`"4194304"`), or a number and a unit, with an
/// optional space: `B`, `KiB`, `MiB`, `GiB` (powers of 1024) or `KB`, `MB`, `GB` (powers of
/// 1000), in any letter case.
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let bad = |why: &str| {
        format!("{why}: expected a number of bytes or a size like \"8MiB\", got {text:?}")
    };
    let s = text.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(bad("expected a number"));
    }
    let number: u64 = s[..digits].parse().map_err(|_| bad("number too large"))?;
    let unit = s[digits..].trim_start();
    let factor = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => KIB,
        "mib" => MIB,
        "gib" => GIB,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(bad(&format!("unknown unit {unit:?}"))),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| bad("size too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn load_str(file: Option<&str>, vars: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        Config::from_layers(file.map(|t| ("config.toml", t)), &env(vars))
    }

    #[test]
    fn defaults() {
        let c = load_str(None, &[]).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.network_file, PathBuf::from("deploy/network.toml"));
        assert_eq!(c.log_format, LogFormat::Human);
        assert_eq!(c.log_level, "info");
        assert_eq!(c.listen_host, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(c.rpc_timeout, Duration::from_secs(10));
        assert_eq!(c.concurrency_limit, 1024);
        assert_eq!(c.max_message_bytes, 4 * 1024 * 1024);
        assert_eq!(c.shutdown_grace, Duration::from_secs(3));
        assert_eq!(c.idempotency_retention, Duration::from_secs(48 * 3600));
        assert_eq!(c.sled_cache_bytes, 8 * 1024 * 1024);
        assert_eq!(c.row_cache_bytes, 2 * 1024 * 1024);
        assert_eq!(c.request_filter_bytes, 1024 * 1024);
        // 25 databases' caches stay under the 300 MiB budget.
        assert!(25 * (c.sled_cache_bytes + c.row_cache_bytes + c.request_filter_bytes) < 300 * MIB);
    }

    const FULL_FILE: &str = r#"
        data_dir = "/var/lib/coldchain"
        network_file = "/etc/coldchain/network.toml"
        log_format = "json"
        log_level = "info,coldchain_store=debug"
        listen_host = "0.0.0.0"
        rpc_timeout = "3s"
        concurrency_limit = 256
        max_message_bytes = "8MiB"
        shutdown_grace = "2500ms"
        idempotency_retention = "72h"
        sled_cache_bytes = 16777216
        row_cache_bytes = "0"
        request_filter_bytes = "4MiB"
    "#;

    #[test]
    fn file_overrides_defaults() {
        let c = load_str(Some(FULL_FILE), &[]).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/coldchain"));
        assert_eq!(c.network_file, PathBuf::from("/etc/coldchain/network.toml"));
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.log_level, "info,coldchain_store=debug");
        assert_eq!(c.listen_host, "0.0.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(c.rpc_timeout, Duration::from_secs(3));
        assert_eq!(c.concurrency_limit, 256);
        assert_eq!(c.max_message_bytes, 8 * 1024 * 1024);
        assert_eq!(c.shutdown_grace, Duration::from_millis(2500));
        assert_eq!(c.idempotency_retention, Duration::from_secs(72 * 3600));
        assert_eq!(c.sled_cache_bytes, 16 * 1024 * 1024);
        assert_eq!(c.row_cache_bytes, 0);
        assert_eq!(c.request_filter_bytes, 4 * 1024 * 1024);
    }

    #[test]
    fn partial_file_keeps_other_defaults() {
        let c = load_str(Some("rpc_timeout = \"1m\"\n"), &[]).unwrap();
        assert_eq!(
            c,
            Config {
                rpc_timeout: Duration::from_secs(60),
                ..Config::default()
            }
        );
    }

    #[test]
    fn env_overrides_file() {
        let c = load_str(
            Some(FULL_FILE),
            &[
                ("COLDCHAIN_DATA_DIR", "/data"),
                ("COLDCHAIN_LOG_FORMAT", "human"),
                ("COLDCHAIN_RPC_TIMEOUT", "500ms"),
                ("COLDCHAIN_CONCURRENCY_LIMIT", "64"),
                ("COLDCHAIN_SLED_CACHE_BYTES", "4 MiB"),
                ("COLDCHAIN_IDEMPOTENCY_RETENTION", "1d"),
                // Not ours: ignored.
                ("PATH", "/usr/bin"),
                ("coldchain_data_dir", "/ignored"),
                ("COLDCHAIN_CONFIG", "/etc/coldchain/config.toml"),
            ],
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/data"));
        assert_eq!(c.log_format, LogFormat::Human);
        assert_eq!(c.rpc_timeout, Duration::from_millis(500));
        assert_eq!(c.concurrency_limit, 64);
        assert_eq!(c.sled_cache_bytes, 4 * 1024 * 1024);
        assert_eq!(c.idempotency_retention, Duration::from_secs(24 * 3600));
        // From the file, not overridden.
        assert_eq!(c.network_file, PathBuf::from("/etc/coldchain/network.toml"));
        assert_eq!(c.shutdown_grace, Duration::from_millis(2500));
    }

    #[test]
    fn every_field_has_an_env_var() {
        let vars: Vec<(String, &str)> = vec![
            ("COLDCHAIN_DATA_DIR".into(), "/d"),
            ("COLDCHAIN_NETWORK_FILE".into(), "/n.toml"),
            ("COLDCHAIN_LOG_FORMAT".into(), "JSON"),
            ("COLDCHAIN_LOG_LEVEL".into(), "debug"),
            ("COLDCHAIN_LISTEN_HOST".into(), "::"),
            ("COLDCHAIN_RPC_TIMEOUT".into(), "1s"),
            ("COLDCHAIN_CONCURRENCY_LIMIT".into(), "8"),
            ("COLDCHAIN_MAX_MESSAGE_BYTES".into(), "1048576"),
            ("COLDCHAIN_SHUTDOWN_GRACE".into(), "0s"),
            ("COLDCHAIN_IDEMPOTENCY_RETENTION".into(), "30h"),
            ("COLDCHAIN_SLED_CACHE_BYTES".into(), "2MB"),
            ("COLDCHAIN_ROW_CACHE_BYTES".into(), "1MiB"),
            ("COLDCHAIN_REQUEST_FILTER_BYTES".into(), "512KiB"),
            ("COLDCHAIN_AUTH_FILE".into(), "/c.toml"),
            ("COLDCHAIN_INSECURE_NO_AUTH".into(), "false"),
            ("COLDCHAIN_CLIENT_KEY_FILE".into(), "/k"),
            ("COLDCHAIN_TLS_CERT".into(), "/cert.pem"),
            ("COLDCHAIN_TLS_KEY".into(), "/key.pem"),
            ("COLDCHAIN_TLS_CA".into(), "/ca.pem"),
            ("COLDCHAIN_TLS_CLIENT_CA".into(), "/client-ca.pem"),
            ("COLDCHAIN_RATE_LIMIT".into(), "10"),
            ("COLDCHAIN_RATE_BURST".into(), "20"),
            ("COLDCHAIN_STREAM_IDLE_TIMEOUT".into(), "5s"),
            ("COLDCHAIN_HEALTH_PORT".into(), "8086"),
        ];
        assert_eq!(
            vars.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            Config::env_vars()
        );
        let map = vars
            .iter()
            .map(|(k, v)| (k.clone(), (*v).to_owned()))
            .collect();
        let c = Config::from_layers(None, &map).unwrap();
        assert_eq!(
            c,
            Config {
                data_dir: "/d".into(),
                network_file: "/n.toml".into(),
                log_format: LogFormat::Json,
                log_level: "debug".into(),
                listen_host: "::".parse().unwrap(),
                rpc_timeout: Duration::from_secs(1),
                concurrency_limit: 8,
                max_message_bytes: 1 << 20,
                shutdown_grace: Duration::ZERO,
                idempotency_retention: Duration::from_secs(30 * 3600),
                sled_cache_bytes: 2_000_000,
                row_cache_bytes: 1 << 20,
                request_filter_bytes: 1 << 19,
                auth_file: Some("/c.toml".into()),
                insecure_no_auth: false,
                client_key_file: Some("/k".into()),
                tls_cert: Some("/cert.pem".into()),
                tls_key: Some("/key.pem".into()),
                tls_ca: Some("/ca.pem".into()),
                tls_client_ca: Some("/client-ca.pem".into()),
                rate_limit: 10,
                rate_burst: 20,
                stream_idle_timeout: Duration::from_secs(5),
                health_port: Some(8086),
            }
        );
    }

    #[test]
    fn health_port_is_a_port_or_nothing() {
        let c = load_str(Some("health_port = 8086\n"), &[]).unwrap();
        assert_eq!(c.health_port, Some(8086));
        let c = load_str(
            Some("health_port = 8086\n"),
            &[("COLDCHAIN_HEALTH_PORT", "")],
        )
        .unwrap();
        assert_eq!(c.health_port, None, "an empty variable clears it");
        for bad in ["0", "65536", "http"] {
            let err = load_str(None, &[("COLDCHAIN_HEALTH_PORT", bad)]).unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("expected a port from 1 to 65535, got {bad:?}")),
                "{err}"
            );
        }
    }

    #[test]
    fn contradictory_security_settings_are_all_reported() {
        let err = load_str(
            None,
            &[
                ("COLDCHAIN_TLS_KEY", "/key.pem"),
                ("COLDCHAIN_TLS_CLIENT_CA", "/ca.pem"),
                ("COLDCHAIN_INSECURE_NO_AUTH", "true"),
                ("COLDCHAIN_AUTH_FILE", "/c.toml"),
                ("COLDCHAIN_RATE_LIMIT", "100"),
                ("COLDCHAIN_RATE_BURST", "10"),
                ("COLDCHAIN_STREAM_IDLE_TIMEOUT", "0s"),
            ],
        )
        .unwrap_err();
        for needle in [
            "tls_cert and tls_key must be set together",
            "tls_client_ca (mutual TLS) needs tls_cert",
            "insecure_no_auth and auth_file contradict",
            "rate_burst (10) must be at least rate_limit (100)",
            "COLDCHAIN_STREAM_IDLE_TIMEOUT: must be at least 1s",
        ] {
            assert!(err.mentions(needle), "{needle:?} missing from {err}");
        }
        let err = load_str(None, &[("COLDCHAIN_INSECURE_NO_AUTH", "yes")]).unwrap_err();
        assert!(err.mentions("expected true or false"), "{err}");
        let err = load_str(
            None,
            &[("COLDCHAIN_IDEMPOTENCY_RETENTION", "10000000000000000s")],
        )
        .unwrap_err();
        assert!(err.mentions("must be at most 3650d"), "{err}");
    }

    #[test]
    fn unknown_env_var_rejected() {
        let err = load_str(None, &[("COLDCHAIN_RPC_TIMOUT", "1s")]).unwrap_err();
        assert_eq!(err.len(), 1, "{err}");
        let p = &err.problems[0];
        assert!(
            p.starts_with("unknown environment variable COLDCHAIN_RPC_TIMOUT (did you mean \"COLDCHAIN_RPC_TIMEOUT\"?); known variables: COLDCHAIN_DATA_DIR, "),
            "{p}"
        );
        assert!(p.contains("COLDCHAIN_CONFIG"), "{p}");
    }

    #[test]
    fn known_extra_env_is_allowed() {
        assert!(Config::KNOWN_EXTRA_ENV.contains(&"COLDCHAIN_CONFIG"));
        let vars = env(&[("COLDCHAIN_CONFIG", "/etc/c.toml")]);
        assert!(Config::from_layers(None, &vars).is_ok());
        assert_eq!(
            Config::file_from_env(&vars),
            Some(PathBuf::from("/etc/c.toml"))
        );
        assert_eq!(
            Config::file_from_env(&env(&[("COLDCHAIN_CONFIG", " ")])),
            None
        );
        assert_eq!(Config::file_from_env(&env(&[])), None);
    }

    #[test]
    fn several_bad_env_values_reported_together() {
        let err = load_str(
            None,
            &[
                ("COLDCHAIN_LOG_FORMAT", "xml"),
                ("COLDCHAIN_RPC_TIMEOUT", "ten seconds"),
                ("COLDCHAIN_CONCURRENCY_LIMIT", "0"),
                ("COLDCHAIN_LISTEN_HOST", "localhost"),
                ("COLDCHAIN_MAX_MESSAGE_BYTES", "4 parsecs"),
                ("COLDCHAIN_IDEMPOTENCY_RETENTION", "12h"),
                ("COLDCHAIN_LOG_LEVEL", "loud"),
                ("COLDCHAIN_DATA_DIR", ""),
                ("COLDCHAIN_BOGUS", "1"),
            ],
        )
        .unwrap_err();
        // Sorted by variable name (the map's order).
        assert_eq!(
            err.problems,
            vec![
                format!(
                    "unknown environment variable COLDCHAIN_BOGUS; known variables: {}, COLDCHAIN_CONFIG, COLDCHAIN_KEYRING",
                    Config::env_vars().join(", ")
                ),
                "COLDCHAIN_CONCURRENCY_LIMIT: must be at least 1, got 0".to_owned(),
                "COLDCHAIN_DATA_DIR: must not be empty".to_owned(),
                "COLDCHAIN_IDEMPOTENCY_RETENTION: must be at least 24h, got \"12h\"".to_owned(),
                "COLDCHAIN_LISTEN_HOST: expected an ip address like 127.0.0.1 or 0.0.0.0, got \"localhost\"".to_owned(),
                "COLDCHAIN_LOG_FORMAT: expected \"human\" or \"json\", got \"xml\"".to_owned(),
                "COLDCHAIN_LOG_LEVEL: expected a level (trace, debug, info, warn, error, off) or directives like \"info,coldchain_store=debug\", got \"loud\"".to_owned(),
                "COLDCHAIN_MAX_MESSAGE_BYTES: unknown unit \"parsecs\": expected a number of bytes or a size like \"8MiB\", got \"4 parsecs\"".to_owned(),
                "COLDCHAIN_RPC_TIMEOUT: expected a number: expected a duration like \"10s\", \"500ms\", \"15m\", \"48h\" or \"1h30m\", got \"ten seconds\"".to_owned(),
            ]
        );
        let shown = err.to_string();
        assert!(shown.starts_with(
            "invalid configuration:\n  - unknown environment variable COLDCHAIN_BOGUS"
        ));
        assert_eq!(shown.lines().count(), 10);
    }

    #[test]
    fn retention_below_24h_rejected_in_file_and_env() {
        let err = load_str(
            Some("idempotency_retention = \"23h59m\"\n"),
            &[("COLDCHAIN_IDEMPOTENCY_RETENTION", "3600s")],
        )
        .unwrap_err();
        assert_eq!(
            err.problems,
            vec![
                "config.toml: idempotency_retention: must be at least 24h, got \"23h59m\"",
                "COLDCHAIN_IDEMPOTENCY_RETENTION: must be at least 24h, got \"3600s\"",
            ]
        );
        let ok = load_str(None, &[("COLDCHAIN_IDEMPOTENCY_RETENTION", "24h")]).unwrap();
        assert_eq!(ok.idempotency_retention, MIN_IDEMPOTENCY_RETENTION);
    }

    #[test]
    fn unknown_file_keys_rejected_all_at_once() {
        let err = load_str(
            Some("rpc_timout = \"1s\"\nbooking_no_show_grace = \"2h\"\n[server]\nport = 1\n"),
            &[],
        )
        .unwrap_err();
        assert_eq!(err.len(), 3, "{err}");
        assert!(err.problems[0].starts_with(
            "config.toml: unknown key \"booking_no_show_grace\"; known keys: data_dir, network_file,"
        ));
        assert!(err.problems[1].starts_with(
            "config.toml: unknown key \"rpc_timout\" (did you mean \"rpc_timeout\"?); known keys:"
        ));
        assert!(err.problems[2].starts_with("config.toml: unknown key \"server\";"));
    }

    #[test]
    fn bad_file_values_and_types_reported_together_with_env() {
        let err = load_str(
            Some(
                "rpc_timeout = 10\nconcurrency_limit = \"many\"\nlog_format = true\n\
                 max_message_bytes = 12\nsled_cache_bytes = -1\nshutdown_grace = \"5 sec\"\n\
                 row_cache_bytes = \"2GiB\"\nrequest_filter_bytes = \"3GiB\"\n",
            ),
            &[("COLDCHAIN_LISTEN_HOST", "999.0.0.1")],
        )
        .unwrap_err();
        assert_eq!(
            err.problems,
            vec![
                "config.toml: concurrency_limit: expected a positive integer, got \"many\"",
                "config.toml: log_format: expected \"human\" or \"json\", got boolean true",
                "config.toml: max_message_bytes: must be between 1KiB and 1GiB, got \"12\"",
                "config.toml: request_filter_bytes: must be at most 1GiB, got \"3GiB\"",
                "config.toml: row_cache_bytes: must be at most 1GiB, got \"2GiB\"",
                "config.toml: rpc_timeout: expected a duration string like \"10s\", got integer 10",
                "config.toml: shutdown_grace: unknown unit \"sec\": expected a duration like \"10s\", \"500ms\", \"15m\", \"48h\" or \"1h30m\", got \"5 sec\"",
                "config.toml: sled_cache_bytes: expected a number: expected a number of bytes or a size like \"8MiB\", got \"-1\"",
                "COLDCHAIN_LISTEN_HOST: expected an ip address like 127.0.0.1 or 0.0.0.0, got \"999.0.0.1\"",
            ]
        );
    }

    #[test]
    fn toml_syntax_error_names_line_and_column() {
        let err = load_str(Some("data_dir = \"/x\"\nrpc_timeout = \n"), &[]).unwrap_err();
        assert_eq!(err.len(), 1);
        assert!(
            err.problems[0].starts_with("config.toml: line 2, column "),
            "{err}"
        );
    }

    #[test]
    fn load_reads_a_file_and_reports_a_missing_one_with_env_problems() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coldchain.toml");
        std::fs::write(&path, "log_format = \"json\"\nbogus = 1\n").unwrap();
        let err = Config::load(Some(&path), &env(&[])).unwrap_err();
        assert_eq!(err.len(), 1);
        assert!(err.problems[0].starts_with(&format!("{}: unknown key \"bogus\"", path.display())));

        std::fs::write(&path, "log_format = \"json\"\n").unwrap();
        let c = Config::load(Some(&path), &env(&[("COLDCHAIN_LOG_LEVEL", "warn")])).unwrap();
        assert_eq!(
            (c.log_format, c.log_level.as_str()),
            (LogFormat::Json, "warn")
        );

        let missing = dir.path().join("missing.toml");
        let err =
            Config::load(Some(&missing), &env(&[("COLDCHAIN_RPC_TIMEOUT", "x")])).unwrap_err();
        assert_eq!(err.len(), 2, "{err}");
        assert!(err.problems[0].starts_with("cannot read config file"));
        assert!(err.problems[1].starts_with("COLDCHAIN_RPC_TIMEOUT: "));
    }

    #[test]
    fn log_filters() {
        for ok in [
            "info",
            "WARN",
            "off",
            "info,coldchain_store=debug",
            "tower::buffer=trace, h2=warn",
        ] {
            assert!(check_log_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["", "loud", "info,", "=debug", "a b=info", "info=loud"] {
            assert!(check_log_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        let cases = [
            ("10s", Duration::from_secs(10)),
            ("500ms", Duration::from_millis(500)),
            ("48h", Duration::from_secs(48 * 3600)),
            ("15m", Duration::from_secs(15 * 60)),
            ("2d", Duration::from_secs(2 * 86_400)),
            ("1h30m", Duration::from_secs(5400)),
            (" 1h 30m 5s ", Duration::from_secs(5405)),
            ("0s", Duration::ZERO),
            ("250us", Duration::from_micros(250)),
            ("7ns", Duration::from_nanos(7)),
            ("1m1ms", Duration::from_millis(60_001)),
            ("10 s", Duration::from_secs(10)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for bad in [
            "",
            " ",
            "10",
            "s",
            "1 30m",
            "1.5s",
            "-1s",
            "10sec",
            "10S",
            "1h-",
            "h1",
            "10s!",
            "٣s",
            "99999999999999999999999999999999999999999999d",
            "18446744073709551616s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_secs(48 * 3600)), "2d");
        assert_eq!(
            format_duration(Duration::new(90_061, 1_001_001)),
            "1d1h1m1s1ms1us1ns"
        );
        assert_eq!(
            parse_duration(&format_duration(Duration::MAX)),
            Ok(Duration::MAX)
        );
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("4194304"), Ok(4 * MIB));
        assert_eq!(parse_byte_size("8MiB"), Ok(8 * MIB));
        assert_eq!(parse_byte_size("8 mib"), Ok(8 * MIB));
        assert_eq!(parse_byte_size("512KiB"), Ok(512 * KIB));
        assert_eq!(parse_byte_size("1GiB"), Ok(GIB));
        assert_eq!(parse_byte_size("3MB"), Ok(3_000_000));
        assert_eq!(parse_byte_size("10B"), Ok(10));
        for bad in [
            "",
            "MiB",
            "-1",
            "1.5MiB",
            "8 parsecs",
            "99999999999999999999",
            "18446744073709551615KiB",
        ] {
            assert!(parse_byte_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn config_errors_display_and_merge() {
        let mut a = ConfigErrors::single("first problem");
        assert_eq!(a.to_string(), "invalid configuration:\n  - first problem");
        a.extend(ConfigErrors {
            problems: vec!["second".into()],
        });
        a.push("third");
        assert_eq!(a.len(), 3);
        assert!(a.mentions("second"));
        assert_eq!(
            a.to_string(),
            "invalid configuration:\n  - first problem\n  - second\n  - third"
        );
        assert_eq!(ConfigErrors::new().into_result(7), Ok(7));
        let boxed: Box<dyn std::error::Error> = Box::new(a);
        assert!(boxed.to_string().contains("third"));
    }

    proptest! {
        #[test]
        fn duration_round_trips(secs in 0u64..=u64::MAX, nanos in 0u32..1_000_000_000) {
            let d = Duration::new(secs, nanos);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn duration_round_trips_small(ms in 0u64..10_000_000_000) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn duration_parser_never_panics(s in ".*") {
            let _ = parse_duration(&s);
        }

        #[test]
        fn duration_parser_never_panics_on_near_misses(s in "[0-9 hmsdnu.µ-]{0,24}") {
            let _ = parse_duration(&s);
        }

        #[test]
        fn byte_size_parser_never_panics(s in ".*") {
            let _ = parse_byte_size(&s);
        }

        #[test]
        fn config_never_panics(file in ".*", key in "COLDCHAIN_[A-Z_]{0,12}", value in ".*") {
            let vars: BTreeMap<String, String> = [(key, value)].into_iter().collect();
            let _ = Config::from_layers(Some(("f", &file)), &vars);
        }
    }
}
