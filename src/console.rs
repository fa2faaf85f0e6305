//! The fifth kind of server: the operations console (web pages) at the hub, next to the
//! gateway, started by `dev` and by `serve console`.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use coldchain_console::ConsoleSettings;
use coldchain_runtime::Shutdown;
use coldchain_runtime::client::ClientOptions;
use coldchain_runtime::network::ServiceKind;

use crate::settings::Settings;

/// What `serve` runs: one gRPC service, or the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// A gRPC service (a site's inventory, telemetry or booking, or the gateway).
    Service(ServiceKind),
    /// The web console.
    Console,
}

impl FromStr for ServerKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "console" {
            return Ok(ServerKind::Console);
        }
        s.parse::<ServiceKind>()
            .map(ServerKind::Service)
            .map_err(|e| format!("{e}, or console"))
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerKind::Service(kind) => f.write_str(kind.as_str()),
            ServerKind::Console => f.write_str("console"),
        }
    }
}

/// A console being served.
pub struct RunningConsole {
    /// Where people open it.
    pub url: String,
    /// Ends when the console stops.
    pub stopped: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// The console's settings from the process's: the network, TLS towards the services (with
/// the CLI's deadlines), the credentials the services accept, the session key and lifetime,
/// and the server certificate.
fn console_settings(settings: &Settings, shutdown: &Shutdown) -> ConsoleSettings {
    let config = &settings.config;
    ConsoleSettings {
        network: Arc::new(settings.network.clone()),
        client: ClientOptions {
            tls: settings.client.tls.clone(),
            ..coldchain_ops::client_options()
        },
        credentials: settings.security.credentials.clone(),
        session_key_file: config.console_session_key_file.clone(),
        session_ttl: config.console_session_ttl,
        tls: config.tls_cert.clone().zip(config.tls_key.clone()),
        shutdown: shutdown.clone(),
        login_limit: coldchain_console::throttle::LoginLimit::default(),
    }
}

/// Binds `addr` and serves the console until `shutdown`.
pub async fn start(
    settings: &Settings,
    addr: SocketAddr,
    shutdown: &Shutdown,
) -> Result<RunningConsole, String> {
    let prepared = coldchain_console::prepare(console_settings(settings, shutdown))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("console: cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| format!("console: {e}"))?;
    let url = coldchain_console::url(bound, prepared.tls());
    let shutdown = shutdown.clone();
    let stopped = tokio::spawn(coldchain_console::serve(listener, prepared, shutdown));
    Ok(RunningConsole { url, stopped })
}

/// How the console ended: an error when it stopped itself or its task died.
pub async fn joined(console: RunningConsole) -> Result<(), String> {
    match console.stopped.await {
        Ok(served) => served.map_err(|error| format!("console: {error}")),
        Err(join) => Err(format!("console: its task ended abnormally: {join}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_takes_the_four_services_and_the_console() {
        assert_eq!("console".parse(), Ok(ServerKind::Console));
        assert_eq!(
            "gateway".parse(),
            Ok(ServerKind::Service(ServiceKind::Gateway))
        );
        let problem = "consol".parse::<ServerKind>().unwrap_err();
        assert!(problem.ends_with(", or console"), "{problem}");
    }
}
