//! The security settings of a process, read once from the config: the credentials its
//! servers accept, their TLS identity, and how it presents itself when it calls others.
//! Every unreadable or malformed file is reported at once, before anything starts.

use std::path::Path;
use std::sync::Arc;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::auth::{ApiKey, Credentials};
use crate::client::ClientOptions;
use crate::config::{Config, ConfigErrors};
use crate::network::NetworkConfig;

/// How long a TLS handshake may take before the connection is dropped.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the servers of this process enforce.
#[derive(Clone, Default)]
pub struct Security {
    /// The accepted credentials; `None` serves without authentication (only when the
    /// config says `insecure_no_auth`).
    pub credentials: Option<Arc<Credentials>>,
    /// TLS for every server; `None` serves plaintext.
    pub server_tls: Option<ServerTlsConfig>,
}

impl Security {
    /// Reads the credentials file and the server's TLS files. `insecure_no_auth` must be
    /// explicit: a config with neither it nor an `auth_file` is refused.
    pub fn from_config(config: &Config, network: &NetworkConfig) -> Result<Security, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let credentials = match (&config.auth_file, config.insecure_no_auth) {
            (Some(path), _) => match Credentials::load(path, network) {
                Ok(credentials) => Some(Arc::new(credentials)),
                Err(problems) => {
                    errors.extend(problems);
                    None
                }
            },
            (None, true) => None,
            (None, false) => {
                errors.push(
                    "auth_file is not set: name a credentials file (see SECURITY.md and \
                     `coldchain credentials add`), or set insecure_no_auth = true to serve \
                     without authentication",
                );
                None
            }
        };
        let identity = read_identity(config, &mut errors);
        let client_ca = read_pem(
            "tls_client_ca",
            config.tls_client_ca.as_deref(),
            &mut errors,
        );
        errors.into_result(())?;
        let server_tls = identity.map(|identity| {
            // A peer that opens a connection and never finishes the handshake must not hold
            // it (and its task) forever.
            let tls = ServerTlsConfig::new()
                .identity(identity)
                .timeout(TLS_HANDSHAKE_TIMEOUT);
            match client_ca {
                Some(ca) => tls.client_ca_root(Certificate::from_pem(ca)),
                None => tls,
            }
        });
        Ok(Security {
            credentials,
            server_tls,
        })
    }

    /// True when the servers authenticate callers.
    pub fn authenticates(&self) -> bool {
        self.credentials.is_some()
    }
}

/// How this process calls others, from the config: TLS trusting `tls_ca` (presenting
/// `tls_cert` under mutual TLS) and the API key of `client_key_file`.
pub fn client_options(config: &Config) -> Result<ClientOptions, ConfigErrors> {
    let mut errors = ConfigErrors::new();
    let ca = read_pem("tls_ca", config.tls_ca.as_deref(), &mut errors);
    let identity = match config.tls_client_ca {
        Some(_) => read_identity(config, &mut errors),
        None => None,
    };
    let key = match &config.client_key_file {
        Some(path) => match ApiKey::from_file(path) {
            Ok(key) => Some(key),
            Err(problem) => {
                errors.push(format!("client_key_file: {problem}"));
                None
            }
        },
        None => None,
    };
    errors.into_result(())?;
    let tls = ca.map(|ca| {
        let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
        match identity {
            Some(identity) => tls.identity(identity),
            None => tls,
        }
    });
    Ok(ClientOptions {
        tls,
        key,
        ..ClientOptions::default()
    })
}

fn read_identity(config: &Config, errors: &mut ConfigErrors) -> Option<Identity> {
    let cert = read_pem("tls_cert", config.tls_cert.as_deref(), errors);
    let key = read_pem("tls_key", config.tls_key.as_deref(), errors);
    Some(Identity::from_pem(cert?, key?))
}

fn read_pem(what: &str, path: Option<&Path>, errors: &mut ConfigErrors) -> Option<Vec<u8>> {
    let path = path?;
    match std::fs::read(path) {
        Ok(bytes) if String::from_utf8_lossy(&bytes).contains("-----BEGIN ") => Some(bytes),
        Ok(_) => {
            errors.push(format!("{what}: {} is not a PEM file", path.display()));
            None
        }
        Err(e) => {
            errors.push(format!("{what}: cannot read {}: {e}", path.display()));
            None
        }
    }
}
