//! `serve`, `dev` and `healthcheck`: running servers and checking them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use coldchain_command::say;
use coldchain_runtime::Shutdown;
use coldchain_runtime::host::{RunningService, ServiceContext, StartError, spawn_service};
use coldchain_runtime::network::{NetworkConfig, ServiceKind, SiteConfig};
use coldchain_runtime::observe::traces::{TraceSettings, Traces};
use coldchain_runtime::observe::{MetricsEndpoint, exporter};
use coldchain_runtime::server::{ServiceSpec, bind};

use crate::console::{self, ServerKind};
use crate::settings::{self, Settings};

#[derive(Args)]
pub struct ServeArgs {
    /// inventory, telemetry, booking, gateway or console.
    service: ServerKind,
    /// The site this instance serves (not for the gateway or the console).
    #[arg(long)]
    site: Option<String>,
    /// Listen here instead of `listen_host` and the port from the network file.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The network file (default: `network_file` of the config).
    #[arg(long)]
    network: Option<PathBuf>,
}

#[derive(Args)]
pub struct DevArgs {
    /// The network file (default: `network_file` of the config).
    #[arg(long)]
    network: Option<PathBuf>,
    /// Serve without authentication (loudly). By default `dev` makes a keyring of every
    /// role under `<data_dir>/dev-credentials` and requires its keys.
    #[arg(long)]
    insecure_no_auth: bool,
}

#[derive(Args)]
pub struct HealthcheckArgs {
    /// The server, e.g. `127.0.0.1:50051` or `http://inventory-la-vientiane:50121`.
    addr: String,
    /// Check this service name instead of the server as a whole.
    #[arg(long, default_value = "")]
    service: String,
    /// Give up after this many milliseconds.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// Check the console instead (`GET /healthz`, 200 is healthy): over HTTPS when the
    /// configuration has a `tls_cert` (as the console's own), trusting `tls_ca`; an
    /// `http://` or `https://` address says which.
    #[arg(long, conflicts_with = "service")]
    http: bool,
}

/// Builds the service of `ctx.kind`.
pub fn build(ctx: &ServiceContext) -> Result<ServiceSpec, StartError> {
    match ctx.kind {
        ServiceKind::Inventory => coldchain_inventory::service(ctx),
        ServiceKind::Telemetry => coldchain_telemetry::service(ctx),
        ServiceKind::Booking => coldchain_booking::service(ctx),
        ServiceKind::Gateway => coldchain_gateway::service(ctx),
    }
}

/// One server to start: its context and where it listens.
pub struct Planned {
    pub ctx: ServiceContext,
    pub addr: SocketAddr,
}

/// The 25 servers of the network, each on its port from the network file.
pub fn plan_network(settings: &Settings, shutdown: &Shutdown) -> Vec<Planned> {
    let network = Arc::new(settings.network.clone());
    let host = settings.config.listen_host;
    let mut planned = Vec::new();
    for site in &network.sites {
        for kind in ServiceKind::SITE_SERVICES {
            let port = site.port(kind).unwrap_or(0);
            planned.push(Planned {
                ctx: context(settings, kind, site.clone(), shutdown),
                addr: SocketAddr::new(host, port),
            });
        }
    }
    planned.push(Planned {
        ctx: context(
            settings,
            ServiceKind::Gateway,
            gateway_site(&network),
            shutdown,
        ),
        addr: SocketAddr::new(host, network.gateway.port()),
    });
    planned
}

/// The context of one server of this process, with the process's security settings. In a
/// `dev` network every service calls the others as itself, with its key from the keyring.
fn context(
    settings: &Settings,
    kind: ServiceKind,
    site: SiteConfig,
    shutdown: &Shutdown,
) -> ServiceContext {
    let mut ctx = ServiceContext::new(
        kind,
        site,
        Arc::new(settings.network.clone()),
        Arc::new(settings.config.clone()),
        shutdown.clone(),
    );
    ctx.security = settings.security.clone();
    ctx.client = coldchain_runtime::client::ClientOptions {
        metrics: ctx.client.metrics.take(),
        ..settings.client.clone()
    };
    if ctx.client.key.is_none() && settings.security.authenticates() {
        let keyring = coldchain_credentials::Keyring::dev(&settings.config.data_dir);
        ctx.client.key = keyring.key(&coldchain_credentials::service(kind)).ok();
    }
    ctx
}

fn gateway_site(network: &NetworkConfig) -> SiteConfig {
    network.sites[0].clone()
}

/// Builds and binds every planned server; reports every failure, starts none on failure.
pub async fn start_all(
    planned: Vec<Planned>,
) -> Result<Vec<(ServiceContext, RunningService)>, Vec<String>> {
    let mut ready = Vec::new();
    let mut problems = Vec::new();
    for plan in planned {
        let label = plan.ctx.label();
        let spec = match build(&plan.ctx) {
            Ok(spec) => spec,
            Err(error) => {
                problems.push(format!("{label}: {error}"));
                continue;
            }
        };
        match bind(plan.addr).await {
            Ok(listener) => ready.push((plan.ctx, spec, listener)),
            Err(error) => problems.push(format!("{label}: {error}")),
        }
    }
    if !problems.is_empty() {
        for (_, spec, _) in ready {
            (spec.on_stopped)();
        }
        return Err(problems);
    }
    let mut running = Vec::new();
    for (ctx, spec, listener) in ready {
        let limits = ctx.limits();
        match spawn_service(listener, spec, limits, ctx.shutdown.clone()) {
            Ok(service) => running.push((ctx, service)),
            Err(error) => problems.push(format!("{}: {error}", ctx.label())),
        }
    }
    if problems.is_empty() {
        Ok(running)
    } else {
        Err(problems)
    }
}

/// Starts the trace exporter the standard `OTEL_*` variables ask for (none by default) and
/// the log subscriber; a bad variable is a configuration error (exit 2).
fn start_logs_and_traces(
    settings: &Settings,
    service_name: &str,
    site: Option<&str>,
) -> Result<Option<Traces>, ExitCode> {
    let config_error = |problem: String| {
        eprintln!("coldchain: {problem}");
        ExitCode::from(settings::EXIT_CONFIG)
    };
    let traces = TraceSettings::from_env(&TraceSettings::env_from_process(), service_name)
        .map_err(config_error)?
        .map(|mut wanted| {
            // Which site's instance this process is: `service.name` says which service.
            if let Some(site) = site {
                wanted
                    .attributes
                    .push(("coldchain.site".to_owned(), site.to_owned()));
            }
            Traces::start(&wanted)
        })
        .transpose()
        .map_err(config_error)?;
    coldchain_runtime::logging::init_with_traces(
        settings.config.log_format,
        &settings.config.log_level,
        std::io::stderr,
        traces.as_ref(),
    );
    Ok(traces)
}

/// Serves `GET /metrics` on `metrics_listen` (unless it is off): before any server is
/// built, so that their series are recorded. An address that cannot be bound is a
/// configuration error (exit 2).
async fn start_metrics(
    settings: &Settings,
    shutdown: &Shutdown,
) -> Result<Option<MetricsEndpoint>, ExitCode> {
    exporter::start(settings.config.metrics_listen, shutdown)
        .await
        .map_err(|problem| {
            eprintln!("coldchain: {problem} (set metrics_listen / COLDCHAIN_METRICS_LISTEN to a free address, or \"off\")");
            ExitCode::from(settings::EXIT_CONFIG)
        })
}

/// Sends the last spans, if traces are on.
async fn stop_traces(traces: Option<Traces>) {
    if let Some(traces) = traces {
        traces.shutdown().await;
    }
}

/// For `coldchain bench`: records metrics as the servers do when `metrics_listen` is set
/// (serving no endpoint: the bench's figures must include what recording costs, not
/// depend on a free port).
pub fn bench_metrics() -> Result<(), ExitCode> {
    let env = coldchain_runtime::config::Config::env_from_process();
    let file = coldchain_runtime::config::Config::file_from_env(&env);
    let config =
        coldchain_runtime::config::Config::load(file.as_deref(), &env).map_err(|errors| {
            eprintln!("coldchain: {errors}");
            ExitCode::from(settings::EXIT_CONFIG)
        })?;
    if config.metrics_listen.is_some() {
        exporter::install().map_err(|problem| {
            eprintln!("coldchain: {problem}");
            ExitCode::from(1)
        })?;
    }
    Ok(())
}

pub async fn serve(args: ServeArgs) -> ExitCode {
    let settings = match settings::load_or_exit(args.network.clone(), settings::Mode::Serve) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let name = format!("coldchain-{}", args.service);
    let site = match args.service {
        ServerKind::Service(ServiceKind::Gateway) | ServerKind::Console => Some("hub"),
        ServerKind::Service(_) => args.site.as_deref(),
    };
    let traces = match start_logs_and_traces(&settings, &name, site) {
        Ok(traces) => traces,
        Err(code) => return code,
    };
    let code = match args.service {
        ServerKind::Service(kind) => serve_one(kind, args, settings).await,
        ServerKind::Console => serve_console(args, settings).await,
    };
    stop_traces(traces).await;
    code
}

/// `serve console`: the web console alone, on `--listen` or the network file's port.
async fn serve_console(args: ServeArgs, settings: Settings) -> ExitCode {
    settings::warn_if_insecure(&settings);
    let addr = args.listen.unwrap_or(SocketAddr::new(
        settings.config.listen_host,
        settings.network.console.port(),
    ));
    let shutdown = Shutdown::new();
    shutdown.trigger_on_os_signals();
    // Its own series are few, but a scraper learns from `up` whether it runs, as for the
    // other servers of a deployment.
    match start_metrics(&settings, &shutdown).await {
        Ok(Some(metrics)) => tracing::info!(url = %metrics.url(), "serving metrics"),
        Ok(None) => {}
        Err(code) => return code,
    }
    match console::start(&settings, addr, &shutdown).await {
        Ok(running) => {
            tracing::info!(url = %running.url, "serving the console");
            match console::joined(running).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("coldchain: {error}");
                    ExitCode::from(1)
                }
            }
        }
        Err(problem) => {
            eprintln!("coldchain: {problem}");
            ExitCode::from(1)
        }
    }
}

async fn serve_one(service: ServiceKind, args: ServeArgs, settings: Settings) -> ExitCode {
    settings::warn_if_insecure(&settings);
    let network = Arc::new(settings.network.clone());
    let site = match (service, &args.site) {
        (ServiceKind::Gateway, _) => gateway_site(&network),
        (_, None) => {
            eprintln!("coldchain: serve {}: --site is required", service.as_str());
            return ExitCode::from(settings::EXIT_CONFIG);
        }
        (_, Some(id)) => match network.site(id) {
            Some(site) => site.clone(),
            None => {
                let known: Vec<_> = network.site_ids().collect();
                eprintln!(
                    "coldchain: unknown site {id:?}; the network file has {}",
                    known.join(", ")
                );
                return ExitCode::from(settings::EXIT_CONFIG);
            }
        },
    };
    let port = match service {
        ServiceKind::Gateway => network.gateway.port(),
        kind => site.port(kind).unwrap_or(0),
    };
    let addr = args
        .listen
        .unwrap_or(SocketAddr::new(settings.config.listen_host, port));
    let shutdown = Shutdown::new();
    shutdown.trigger_on_os_signals();
    let metrics = match start_metrics(&settings, &shutdown).await {
        Ok(metrics) => metrics,
        Err(code) => return code,
    };
    if let Some(metrics) = metrics {
        tracing::info!(url = %metrics.url(), "serving metrics");
    }
    let ctx = context(&settings, service, site, &shutdown);
    match start_all(vec![Planned { ctx, addr }]).await {
        Ok(running) => {
            let mut code = ExitCode::SUCCESS;
            for (ctx, service) in running {
                tracing::info!(service = %ctx.label(), endpoint = %service.endpoint(), "serving");
                if let Err(error) = joined(service).await {
                    // Non-zero, so that a restart policy starts it again.
                    eprintln!("coldchain: {}: {error}", ctx.label());
                    code = ExitCode::from(1);
                }
            }
            code
        }
        Err(problems) => {
            for problem in problems {
                eprintln!("coldchain: {problem}");
            }
            ExitCode::from(1)
        }
    }
}

pub async fn dev(args: DevArgs) -> ExitCode {
    let started = Instant::now();
    let mode = settings::Mode::Dev {
        insecure: args.insecure_no_auth,
    };
    let settings = match settings::load_or_exit(args.network, mode) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let traces = match start_logs_and_traces(&settings, "coldchain-dev", None) {
        Ok(traces) => traces,
        Err(code) => return code,
    };
    let code = run_network(settings, started).await;
    stop_traces(traces).await;
    code
}

async fn run_network(settings: Settings, started: Instant) -> ExitCode {
    settings::warn_if_insecure(&settings);
    let shutdown = Shutdown::new();
    shutdown.trigger_on_os_signals();
    let metrics = match start_metrics(&settings, &shutdown).await {
        Ok(metrics) => metrics,
        Err(code) => return code,
    };
    let planned = plan_network(&settings, &shutdown);
    let running = match start_all(planned).await {
        Ok(running) => running,
        Err(problems) => {
            for problem in problems {
                eprintln!("coldchain: {problem}");
            }
            return ExitCode::from(1);
        }
    };
    let console_addr =
        SocketAddr::new(settings.config.listen_host, settings.network.console.port());
    let console = match console::start(&settings, console_addr, &shutdown).await {
        Ok(console) => console,
        Err(problem) => {
            eprintln!("coldchain: {problem}");
            shutdown.trigger();
            for (_, service) in running {
                let _ = joined(service).await;
            }
            return ExitCode::from(1);
        }
    };
    say!("{:<18} {:<10} endpoint", "site", "service");
    for (ctx, service) in &running {
        let site = if ctx.kind == ServiceKind::Gateway {
            "(hub)"
        } else {
            ctx.site.id.as_str()
        };
        say!(
            "{site:<18} {:<10} {}",
            ctx.kind.as_str(),
            service.endpoint()
        );
    }
    say!("{:<18} {:<10} {}", "(hub)", "console", console.url);
    say!(
        "{} servers up in {} ms, data under {}; Ctrl-C stops them all",
        running.len() + 1,
        started.elapsed().as_millis(),
        settings.config.data_dir.display()
    );
    match &settings.config.auth_file {
        Some(file) if settings.security.authenticates() => say!(
            "authentication on: credentials {}; the keys of every role are in {} \
             (operator commands and the demo use them)",
            file.display(),
            coldchain_credentials::Keyring::dev(&settings.config.data_dir)
                .key_file("*")
                .display()
        ),
        _ => say!("AUTHENTICATION IS OFF: anyone who reaches these ports can call them"),
    }
    if settings.security.server_tls.is_some() {
        say!("TLS on: clients reach these endpoints as https://");
    }
    match metrics {
        Some(metrics) => say!(
            "metrics of every server: {} (labels site and service)",
            metrics.url()
        ),
        None => say!("metrics off (metrics_listen)"),
    }
    let mut failed = Vec::new();
    if let Err(error) = console::joined(console).await {
        failed.push(error);
    }
    for (ctx, service) in running {
        if let Err(error) = joined(service).await {
            failed.push(format!("{}: {error}", ctx.label()));
        }
    }
    if failed.is_empty() {
        say!("all servers stopped; every database flushed");
        return ExitCode::SUCCESS;
    }
    for failure in failed {
        eprintln!("coldchain: {failure}");
    }
    eprintln!(
        "coldchain: the network stopped because a server could not go on; \
         start it again to recover (each database replays its write-ahead log)"
    );
    ExitCode::from(1)
}

/// How a server ended: an error when it stopped itself or its task died.
async fn joined(service: RunningService) -> Result<(), String> {
    match service.stopped.await {
        Ok(served) => served.map_err(|error| error.to_string()),
        Err(join) => Err(format!("its task ended abnormally: {join}")),
    }
}

pub async fn healthcheck(args: HealthcheckArgs) -> ExitCode {
    if args.http {
        return healthcheck_http(args).await;
    }
    let given = if args.addr.contains("://") {
        args.addr.clone()
    } else {
        format!("http://{}", args.addr)
    };
    let timeout = Duration::from_millis(args.timeout_ms);
    // TLS (and, under mutual TLS, the client certificate) from the same configuration as
    // the server's: in a container the healthcheck shares the server's environment.
    let options = match coldchain_ops::transport() {
        Ok((_, _, options)) => options,
        Err(error) => {
            say!("{given}: {error:?}");
            return ExitCode::from(1);
        }
    };
    // Shown as spoken: https:// when TLS is on.
    let endpoint = coldchain_runtime::client::dialed(&given, &options);
    let check = async {
        let options = coldchain_runtime::client::ClientOptions {
            connect_timeout: timeout,
            ..options
        };
        let channel = coldchain_runtime::client::connect(&endpoint, &options)
            .await
            .map_err(|e| e.message)?;
        let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
        let response = client
            .check(tonic_health::pb::HealthCheckRequest {
                service: args.service.clone(),
            })
            .await
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
        Ok::<i32, String>(response.into_inner().status)
    };
    match tokio::time::timeout(timeout, check).await {
        Ok(Ok(status))
            if status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32 =>
        {
            say!("{endpoint}: SERVING");
            ExitCode::SUCCESS
        }
        Ok(Ok(status)) => {
            let name = tonic_health::pb::health_check_response::ServingStatus::try_from(status)
                .map(|s| s.as_str_name())
                .unwrap_or("UNKNOWN");
            say!("{endpoint}: {name}");
            ExitCode::from(1)
        }
        Ok(Err(problem)) => {
            say!("{endpoint}: {problem}");
            ExitCode::from(1)
        }
        Err(_) => {
            say!("{endpoint}: no answer within {} ms", args.timeout_ms);
            ExitCode::from(1)
        }
    }
}

/// `healthcheck --http`: the console's `/healthz`, with the TLS of the process's
/// configuration (in a container the check shares the console's environment).
async fn healthcheck_http(args: HealthcheckArgs) -> ExitCode {
    let config = match coldchain_ops::transport() {
        Ok((config, _, _)) => config,
        Err(error) => {
            say!("{}: {error:?}", args.addr);
            return ExitCode::from(1);
        }
    };
    let target =
        match coldchain_console::probe::Target::parse(&args.addr, config.tls_cert.is_some()) {
            Ok(target) => target,
            Err(problem) => {
                say!("{problem}");
                return ExitCode::from(1);
            }
        };
    let timeout = Duration::from_millis(args.timeout_ms);
    match coldchain_console::probe::probe(&target, config.tls_ca.as_deref(), timeout).await {
        Ok(()) => {
            say!("{}: SERVING", target.url());
            ExitCode::SUCCESS
        }
        Err(problem) => {
            say!("{}: {problem}", target.url());
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use coldchain_bench::{Caller, Host};
    use coldchain_proto::inventory::v1 as inventory;
    use coldchain_runtime::network::ServiceKind;

    /// The bench's callers get the roles they need from the services the binary builds
    /// (authentication itself is tested in `coldchain-bench`).
    #[tokio::test]
    async fn bench_servers_authorize_every_call() {
        let host = Host::start(ServiceKind::Inventory, super::build)
            .await
            .unwrap();
        let connection = host.channels(1).await.unwrap().remove(0);
        let request = inventory::ListStockRequest::default();
        let client = |caller| {
            inventory::inventory_service_client::InventoryServiceClient::new(
                host.as_caller(&connection, caller),
            )
        };
        let denied = client(Caller::Sensors)
            .list_stock(request.clone())
            .await
            .unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        client(Caller::Warehouse).list_stock(request).await.unwrap();
        host.stop().await;
    }
}
