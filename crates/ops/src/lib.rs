#![forbid(unsafe_code)]
//! Operator commands: gRPC clients of the gateway (`sites`, `stock`, `space`, `transfer`,
//! `alarms`) and of one site's services (`hold`, `confirm`, `cancel`, `bookings`, `ack`,
//! `readings`, `ledger`), and online backups (`backup`, `backup verify`, `restore`).
//!
//! Every command prints a human table by default and one JSON document with `--json` (JSON
//! lines for `--watch` / `--follow`). A gRPC error prints `error: <CODE>: <message>` (plus
//! the field and precondition violations the server attached) on stderr and exits 1; a usage
//! error exits 2. Mutating commands send a fresh request id, or `--request-id` to retry one
//! safely.

mod backup;
pub mod format;
mod gateway;
mod pages;
mod site;
mod stream;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use coldchain_runtime::client::Channel;
use coldchain_runtime::client::ClientOptions;
use coldchain_runtime::network::{NetworkConfig, ServiceKind, SiteConfig};
use coldchain_runtime::retry::describe;
use rand::Rng;
use tonic_types::StatusExt;

pub use backup::{BACKUP_SUFFIX, BackupArgs, BackupCommand, RestoreArgs};
pub use gateway::list_sites as gateway_list_sites;
pub use gateway::{
    AlarmsArgs, ExpiringArgs, RecallCommand, SitesArgs, SpaceArgs, StockArgs, TraceArgs,
    TransferCommand,
};
pub use site::{
    AckArgs, BookingsArgs, CancelArgs, ConfirmArgs, HoldArgs, LedgerArgs, ReadingsArgs,
    ReportCommand,
};
pub use stream::retryable as stream_retryable;

/// The default gateway endpoint (the `dev` network's).
pub const DEFAULT_GATEWAY: &str = "http://127.0.0.1:50051";
/// The default network file.
pub const DEFAULT_NETWORK: &str = "deploy/network.toml";

/// Exit code of a usage error (as clap's own).
pub const EXIT_USAGE: u8 = 2;
/// Exit code of a failed call.
pub const EXIT_FAILED: u8 = 1;

#[derive(Subcommand)]
pub enum OpsCommand {
    /// List every site with its zones and the live health of its services (gateway).
    Sites(SitesArgs),
    /// Find a sku's stock across the sites, per zone, and in transit (gateway).
    Stock(StockArgs),
    /// List the lots that expire within a window across the sites, earliest first (gateway).
    Expiring(ExpiringArgs),
    /// A lot's life across the network: every movement, transfer, hold and alarm, where it
    /// is now, and the temperatures of each stay (gateway).
    Trace(TraceArgs),
    /// Recall lots across the network in one call, lift a recall, show or list recalls
    /// (gateway).
    Recall {
        #[command(subcommand)]
        command: RecallCommand,
    },
    /// Find free pallet space of a class for a day range across the sites (gateway).
    Space(SpaceArgs),
    /// Hold pallet space at a site for a customer (site booking service).
    Hold(HoldArgs),
    /// Confirm a held booking (site booking service).
    Confirm(ConfirmArgs),
    /// Cancel a held or confirmed booking (site booking service).
    Cancel(CancelArgs),
    /// List a site's bookings (site booking service).
    Bookings(BookingsArgs),
    /// Corridor transfers between two sites (gateway).
    Transfer {
        #[command(subcommand)]
        command: TransferCommand,
    },
    /// List every site's alarms, or watch them live with --watch (gateway).
    Alarms(AlarmsArgs),
    /// Acknowledge an alarm (site telemetry service).
    Ack(AckArgs),
    /// A sensor's readings per time bucket, with a chart (site telemetry service).
    Readings(ReadingsArgs),
    /// Read, or follow with --follow, a site's inventory ledger (site inventory service).
    Ledger(LedgerArgs),
    /// Reports for QA: `report excursion ALARM --site SITE` writes one alarm up with the
    /// readings around it and the lots it touched (site services, as operations).
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Back up a site's databases while they serve, one file per service; or `backup
    /// verify FILE` to check one (site services, as operations).
    Backup(BackupArgs),
    /// Lay out a backup file as a database under a data directory, for `serve` to open.
    Restore(RestoreArgs),
}

/// Runs one operator command.
pub async fn run(command: OpsCommand) -> ExitCode {
    let result = match command {
        OpsCommand::Sites(args) => gateway::sites(args).await,
        OpsCommand::Stock(args) => gateway::stock(args).await,
        OpsCommand::Expiring(args) => gateway::expiring(args).await,
        OpsCommand::Trace(args) => gateway::trace(args).await,
        OpsCommand::Recall { command } => gateway::recall(command).await,
        OpsCommand::Space(args) => gateway::space(args).await,
        OpsCommand::Transfer { command } => gateway::transfer(command).await,
        OpsCommand::Alarms(args) => gateway::alarms(args).await,
        OpsCommand::Hold(args) => site::hold(args).await,
        OpsCommand::Confirm(args) => site::confirm(args).await,
        OpsCommand::Cancel(args) => site::cancel(args).await,
        OpsCommand::Bookings(args) => site::bookings(args).await,
        OpsCommand::Ack(args) => site::ack(args).await,
        OpsCommand::Readings(args) => site::readings(args).await,
        OpsCommand::Ledger(args) => site::ledger(args).await,
        OpsCommand::Report { command } => site::report(command).await,
        OpsCommand::Backup(args) => backup::backup(args).await,
        OpsCommand::Restore(args) => backup::restore(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => error.report(),
    }
}

/// How to reach the gateway, and the output format.
#[derive(Args, Clone, Debug)]
pub struct GatewayOpts {
    /// The gateway [default: the network file's gateway with --network, else
    /// http://127.0.0.1:50051].
    #[arg(long, value_name = "URL")]
    pub gateway: Option<String>,
    /// The network file (its gateway endpoint is used when --gateway is not given).
    #[arg(long, value_name = "FILE")]
    pub network: Option<PathBuf>,
    /// Print JSON for scripts instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl GatewayOpts {
    /// The gateway endpoint: --gateway, else the network file's, else the default.
    pub fn endpoint(&self) -> Result<String, CliError> {
        if let Some(url) = &self.gateway {
            return Ok(url.clone());
        }
        match &self.network {
            Some(path) => Ok(load_network(path)?.gateway_endpoint()),
            None => Ok(DEFAULT_GATEWAY.to_string()),
        }
    }
}

/// Which site to talk to directly, through the endpoints of the network file.
#[derive(Args, Clone, Debug)]
pub struct SiteOpts {
    /// The site, e.g. la-vientiane.
    #[arg(long, value_name = "ID")]
    pub site: String,
    /// The network file giving the site's endpoints and time zone.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_NETWORK)]
    pub network: PathBuf,
    /// Print JSON for scripts instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl SiteOpts {
    /// The site's configuration and the endpoint of one of its services.
    pub fn resolve(&self, kind: ServiceKind) -> Result<(SiteConfig, String), CliError> {
        let network = load_network(&self.network)?;
        resolve_site(&network, &self.site, kind)
    }
}

/// A site of `network` and the endpoint of one of its services; a usage error when the
/// site is unknown.
pub fn resolve_site(
    network: &NetworkConfig,
    site_id: &str,
    kind: ServiceKind,
) -> Result<(SiteConfig, String), CliError> {
    let Some(site) = network.site(site_id) else {
        let known: Vec<&str> = network.site_ids().collect();
        return Err(CliError::Usage(format!(
            "unknown site {site_id:?}; the network file has {}",
            known.join(", ")
        )));
    };
    let endpoint = site
        .endpoint(kind)
        .ok_or_else(|| CliError::Usage(format!("site {site_id:?} has no {kind} service")))?;
    Ok((site.clone(), endpoint))
}

/// Loads the network file; a usage error when it is missing or invalid.
pub fn load_network(path: &Path) -> Result<NetworkConfig, CliError> {
    NetworkConfig::load(path)
        .map_err(|errors| CliError::Usage(format!("network file {}: {errors}", path.display())))
}

/// The `--request-id` flag of mutating commands.
#[derive(Args, Clone, Debug)]
pub struct RequestIdOpt {
    /// The idempotency key; give the one of a failed attempt to retry it safely
    /// [default: a fresh random id].
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
}

impl RequestIdOpt {
    /// The given request id, or a fresh one.
    pub fn get(&self) -> String {
        self.request_id.clone().unwrap_or_else(new_request_id)
    }
}

/// A fresh random request id shaped like a version-4 UUID.
pub fn new_request_id() -> String {
    let mut rng = rand::thread_rng();
    let a: u32 = rng.r#gen();
    let b: u16 = rng.r#gen();
    let c: u16 = rng.r#gen::<u16>() & 0x0fff;
    let d: u16 = (rng.r#gen::<u16>() & 0x3fff) | 0x8000;
    let e: u64 = rng.r#gen::<u64>() & 0xffff_ffff_ffff;
    format!("{a:08x}-{b:04x}-4{c:03x}-{d:04x}-{e:012x}")
}

/// Client timeouts of the CLI: unary calls get a deadline, streams do not.
pub fn client_options() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(3),
        call_timeout: Duration::from_secs(20),
        max_attempts: 3,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        ..ClientOptions::default()
    }
}

/// A lazily connected channel to `endpoint`, calling as operations (see [`connect_as`]).
pub fn connect(endpoint: &str) -> Result<Channel, CliError> {
    connect_as(endpoint, coldchain_credentials::OPERATIONS)
}

/// A lazily connected channel to `endpoint`, calling as the credential `id` of the dev
/// keyring (under `data_dir`) unless `client_key_file` names a key. TLS comes from the same
/// configuration as the servers' (`COLDCHAIN_TLS_CA`, and `COLDCHAIN_TLS_CERT`/`_KEY` under
/// mutual TLS).
pub fn connect_as(endpoint: &str, id: &str) -> Result<Channel, CliError> {
    let options = caller(id)?;
    coldchain_runtime::client::lazy_channel(endpoint, &options)
        .map_err(|e| CliError::Usage(format!("bad endpoint {endpoint:?}: {}", e.message)))
}

/// The variable naming the keyring the CLI takes its keys from (default: the dev keyring,
/// `<data_dir>/dev-credentials`).
pub const KEYRING_VAR: &str = "COLDCHAIN_KEYRING";

/// The CLI's client options, calling as `id`: the key of `client_key_file` if the config
/// names one, else `id`'s key from the keyring. Without either it calls with no key (a
/// server run with `insecure_no_auth` accepts that) and says so on stderr.
pub fn caller(id: &str) -> Result<ClientOptions, CliError> {
    let (config, env, mut options) = transport()?;
    if options.key.is_none() {
        let keyring = match env.get(KEYRING_VAR).filter(|v| !v.trim().is_empty()) {
            Some(dir) => coldchain_credentials::Keyring::at(dir),
            None => coldchain_credentials::Keyring::dev(&config.data_dir),
        };
        match keyring.key(id) {
            Ok(key) => options.key = Some(key),
            Err(problem) => eprintln!(
                "coldchain: calling without an api key ({problem}); set {KEYRING_VAR} to a \
                 keyring holding keys/{id}.key, or COLDCHAIN_CLIENT_KEY_FILE"
            ),
        }
    }
    Ok(options)
}

/// The CLI's client options with TLS from the configuration and no key lookup beyond
/// `client_key_file`: for health checks, which need no credentials.
pub fn transport() -> Result<
    (
        coldchain_runtime::config::Config,
        std::collections::BTreeMap<String, String>,
        ClientOptions,
    ),
    CliError,
> {
    use coldchain_runtime::config::Config;
    let env = Config::env_from_process();
    let config = Config::load(Config::file_from_env(&env).as_deref(), &env)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let security = coldchain_runtime::security::client_options(&config)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let options = ClientOptions {
        tls: security.tls,
        key: security.key,
        ..client_options()
    };
    Ok((config, env, options))
}

/// A unary request with the CLI's deadline.
pub fn unary<T>(message: T) -> tonic::Request<T> {
    coldchain_runtime::client::request(message, &client_options())
}

/// Runs a unary call, retrying UNAVAILABLE (every mutating call carries a request id).
#[macro_export]
macro_rules! call {
    ($client:expr, $method:ident, $request:expr) => {{
        let client = $client.clone();
        let request = $request;
        let options = $crate::client_options();
        coldchain_runtime::client::with_retry(&options, || {
            let mut client = client.clone();
            let request = request.clone();
            async move { client.$method($crate::unary(request)).await }
        })
        .await
        .map(|response| response.into_inner())
    }};
}

/// Why a command failed.
#[derive(Debug)]
pub enum CliError {
    /// Bad flags or values the server never saw (exit 2).
    Usage(String),
    /// The server answered with an error (exit 1).
    Rpc {
        /// The status.
        status: tonic::Status,
        /// The request id of a mutating call, so it can be retried safely.
        request_id: Option<String>,
    },
    /// Anything else (exit 1).
    Failed(String),
}

impl From<tonic::Status> for CliError {
    fn from(status: tonic::Status) -> Self {
        CliError::Rpc {
            status,
            request_id: None,
        }
    }
}

/// The failure of the mutating call with `request_id`, so that the error names it for a
/// safe retry.
pub fn retry_with(request_id: &str) -> impl Fn(tonic::Status) -> CliError + '_ {
    move |status| CliError::from(status).with_request_id(request_id)
}

impl CliError {
    /// Attaches the request id of the failed mutating call.
    pub fn with_request_id(self, id: &str) -> Self {
        match self {
            CliError::Rpc { status, .. } => CliError::Rpc {
                status,
                request_id: Some(id.to_string()),
            },
            other => other,
        }
    }

    /// One line: `CODE: message` (or the usage / failure message).
    pub fn summary(&self) -> String {
        match self {
            CliError::Usage(message) | CliError::Failed(message) => message.clone(),
            CliError::Rpc { status, .. } => describe(status),
        }
    }

    /// Prints the error on stderr and returns the exit code.
    pub fn report(&self) -> ExitCode {
        eprintln!("error: {}", self.summary());
        match self {
            CliError::Usage(_) => ExitCode::from(EXIT_USAGE),
            CliError::Failed(_) => ExitCode::from(EXIT_FAILED),
            CliError::Rpc { status, request_id } => {
                for line in status_details(status) {
                    eprintln!("  {line}");
                }
                if let Some(id) = request_id {
                    let retryable = matches!(
                        status.code(),
                        tonic::Code::Unavailable
                            | tonic::Code::DeadlineExceeded
                            | tonic::Code::Aborted
                            | tonic::Code::ResourceExhausted
                            | tonic::Code::Unknown
                            | tonic::Code::Internal
                    );
                    if retryable {
                        eprintln!("  retry safely with --request-id {id}");
                    }
                }
                ExitCode::from(EXIT_FAILED)
            }
        }
    }
}

/// The field and precondition violations attached to a status, one line each.
pub fn status_details(status: &tonic::Status) -> Vec<String> {
    let details = status.get_error_details();
    let mut lines = Vec::new();
    if let Some(bad) = details.bad_request() {
        for v in &bad.field_violations {
            lines.push(format!("{}: {}", v.field, v.description));
        }
    }
    if let Some(failure) = details.precondition_failure() {
        for v in &failure.violations {
            lines.push(format!("{} {}: {}", v.r#type, v.subject, v.description));
        }
    }
    lines
}

/// Prints one JSON document (pretty) on stdout.
pub fn print_json(value: &serde_json::Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_string());
    coldchain_command::say!("{text}");
}

/// Writes one line on stdout for a streaming command; false once stdout is closed (e.g.
/// `coldchain alarms --watch | head`), so the stream stops instead of running on unseen.
pub fn emit(line: &str) -> bool {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
}
