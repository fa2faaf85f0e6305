//! Loading the process configuration and the network file, reporting every problem at once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use coldchain_runtime::config::{Config, ConfigErrors};
use coldchain_runtime::network::NetworkConfig;

/// Exit code for a configuration problem.
pub const EXIT_CONFIG: u8 = 2;

/// Config and network, loaded and validated together.
pub struct Settings {
    pub config: Config,
    pub network: NetworkConfig,
}

/// Loads defaults < `COLDCHAIN_CONFIG` file < `COLDCHAIN_*` variables, then the network
/// file (overridable by `network_override`).
pub fn load(
    env: &BTreeMap<String, String>,
    network_override: Option<PathBuf>,
) -> Result<Settings, ConfigErrors> {
    let file = Config::file_from_env(env);
    let mut config = Config::load(file.as_deref(), env)?;
    if let Some(path) = network_override {
        config.network_file = path;
    }
    let network = NetworkConfig::load(&config.network_file)?;
    Ok(Settings { config, network })
}

/// Loads the settings of this process, or prints every problem and returns exit code 2.
pub fn load_or_exit(network_override: Option<PathBuf>) -> Result<Settings, ExitCode> {
    load(&Config::env_from_process(), network_override).map_err(|errors| {
        eprintln!("coldchain: {errors}");
        ExitCode::from(EXIT_CONFIG)
    })
}
