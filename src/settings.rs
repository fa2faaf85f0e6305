//! Loading the process configuration and the network file, reporting every problem at once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use coldchain_runtime::client::ClientOptions;
use coldchain_runtime::config::{Config, ConfigErrors};
use coldchain_runtime::network::NetworkConfig;
use coldchain_runtime::security::{Security, client_options};

pub use coldchain_command::EXIT_CONFIG;

/// Config, network and the security files they name, loaded and validated together.
pub struct Settings {
    pub config: Config,
    pub network: NetworkConfig,
    /// What the servers enforce.
    pub security: Security,
    /// How this process calls other services.
    pub client: ClientOptions,
}

/// How to complete the config before the security files are read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `serve`: the config must name everything itself.
    Serve,
    /// `dev`: without an `auth_file`, make (or reuse) the dev keyring under `data_dir`.
    Dev {
        /// `--insecure-no-auth`: serve without authentication.
        insecure: bool,
    },
}

/// Loads defaults < `COLDCHAIN_CONFIG` file < `COLDCHAIN_*` variables, then the network
/// file (overridable by `network_override`), then the credentials and TLS files.
pub fn load(
    env: &BTreeMap<String, String>,
    network_override: Option<PathBuf>,
    mode: Mode,
) -> Result<Settings, ConfigErrors> {
    let file = Config::file_from_env(env);
    let mut config = Config::load(file.as_deref(), env)?;
    if let Some(path) = network_override {
        config.network_file = path;
    }
    let network = NetworkConfig::load(&config.network_file)?;
    if let Mode::Dev { insecure } = mode {
        if let Some(port) = config.health_port {
            return Err(ConfigErrors::single(format!(
                "health_port = {port}: dev runs every server in one process and they cannot share \
                 one health port; it is for `serve` (one server per process, as in Kubernetes)"
            )));
        }
        if insecure {
            config.insecure_no_auth = true;
            config.auth_file = None;
        } else if config.auth_file.is_none() && !config.insecure_no_auth {
            let keyring = coldchain_credentials::Keyring::dev(&config.data_dir);
            keyring.ensure(&network).map_err(ConfigErrors::single)?;
            config.auth_file = Some(keyring.credentials_file());
        }
    }
    let mut errors = ConfigErrors::new();
    let security = Security::from_config(&config, &network).map_err(|e| errors.extend(e));
    let client = client_options(&config).map_err(|e| errors.extend(e));
    match (security, client) {
        (Ok(security), Ok(client)) => Ok(Settings {
            config,
            network,
            security,
            client,
        }),
        _ => Err(errors),
    }
}

/// Loads the settings of this process, or prints every problem and returns exit code 2.
pub fn load_or_exit(network_override: Option<PathBuf>, mode: Mode) -> Result<Settings, ExitCode> {
    load(&Config::env_from_process(), network_override, mode).map_err(|errors| {
        eprintln!("coldchain: {errors}");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// Says loudly, on stderr and in the log, that the servers take calls from anyone.
pub fn warn_if_insecure(settings: &Settings) {
    if settings.security.authenticates() {
        return;
    }
    let banner = "WARNING: AUTHENTICATION IS OFF (insecure_no_auth): every server of this \
                  process accepts every call from anyone who can reach it. Never run this \
                  way on a network you do not fully control.";
    eprintln!("\n{}\n{banner}\n{}\n", "!".repeat(78), "!".repeat(78));
    tracing::warn!("{banner}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dev` serves 25 servers from one process: they cannot share one health port.
    #[test]
    fn dev_refuses_a_health_port_and_serve_takes_it() {
        let network = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/network.toml"));
        let env = BTreeMap::from([
            ("COLDCHAIN_HEALTH_PORT".to_owned(), "8086".to_owned()),
            ("COLDCHAIN_INSECURE_NO_AUTH".to_owned(), "true".to_owned()),
        ]);
        let Err(errors) = load(&env, Some(network.clone()), Mode::Dev { insecure: true }) else {
            panic!("dev took a health port");
        };
        assert!(
            errors.to_string().contains("health_port = 8086"),
            "{errors}"
        );
        let settings = load(&env, Some(network), Mode::Serve).unwrap();
        assert_eq!(settings.config.health_port, Some(8086));
    }
}
