#![forbid(unsafe_code)]
//! API keys on disk: `coldchain credentials add` (one credential, appended to a credentials
//! file, its key printed once) and the keyring `coldchain dev` makes for itself (every role
//! of the network, so the demo, the operator commands and the tests can act as each).
//!
//! A keyring is a directory: `credentials.toml` (what the servers load: ids, roles, hashes)
//! and `keys/<id>.key` (the keys themselves, readable by the owner only).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use coldchain_command::say;
use coldchain_runtime::auth::{ApiKey, Credentials, Role};
use coldchain_runtime::network::{NetworkConfig, ServiceKind};

/// The operations credential of a keyring.
pub const OPERATIONS: &str = "operations";

/// Customers the dev keyring makes booking clients for: the demo's and the bench's.
pub const DEV_CUSTOMERS: [&str; 4] = [
    "lao-banana-forwarding",
    "hunan-citrus-export",
    "ecom-seller-frozen-dumplings",
    "bench-shipper",
];

/// The id of a site's warehouse system.
pub fn warehouse(site: &str) -> String {
    format!("{site}-warehouse")
}

/// The id of a site's sensor gateway.
pub fn sensors(site: &str) -> String {
    format!("{site}-sensors")
}

/// The id of a booking client bound to `customer`.
pub fn customer(customer: &str) -> String {
    format!("customer-{customer}")
}

/// The id a service calls others as.
pub fn service(kind: ServiceKind) -> String {
    format!("service-{}", kind.as_str())
}

/// A directory of keys and the credentials file that accepts them.
#[derive(Debug, Clone)]
pub struct Keyring {
    dir: PathBuf,
}

impl Keyring {
    /// The dev keyring of a data directory.
    pub fn dev(data_dir: &Path) -> Keyring {
        Keyring {
            dir: data_dir.join("dev-credentials"),
        }
    }

    /// The keyring in `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Keyring {
        Keyring { dir: dir.into() }
    }

    /// Its credentials file.
    pub fn credentials_file(&self) -> PathBuf {
        self.dir.join("credentials.toml")
    }

    /// The file holding the key of `id`.
    pub fn key_file(&self, id: &str) -> PathBuf {
        self.dir.join("keys").join(format!("{id}.key"))
    }

    /// The file of the console's session-signing key (`console_session_key_file`): 32 random
    /// bytes in hex, made with the keyring, so that a deployment's console signs its cookies
    /// and form tokens with a key kept with the other secrets rather than one made at start.
    pub fn console_session_key_file(&self) -> PathBuf {
        self.dir.join("console-session.key")
    }

    /// The key of `id`.
    pub fn key(&self, id: &str) -> Result<ApiKey, String> {
        ApiKey::from_file(&self.key_file(id))
    }

    /// Makes one more credential of `role` under `id`: its entry appended to the
    /// credentials file, its key written beside the others. For the tools that run a
    /// network with callers beyond the dev roles (the bench's booking clients); a server
    /// already running reads the file only when it starts.
    pub fn add(&self, id: &str, role: &Role) -> Result<ApiKey, String> {
        let key = ApiKey::generate(id)?;
        write_private(&self.key_file(id), &format!("{}\n", key.expose()))?;
        let path = self.credentials_file();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        std::io::Write::write_all(&mut file, entry(&key, role).as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(key)
    }

    /// True when the keyring has been made.
    pub fn exists(&self) -> bool {
        self.credentials_file().is_file()
    }

    /// Makes the keyring unless it exists and still accepts every role of `network` (a site
    /// added to the network file gets a new keyring). Keys survive restarts, so scripts
    /// that read them keep working.
    pub fn ensure(&self, network: &NetworkConfig) -> Result<(), String> {
        if self.exists() {
            let complete = Credentials::load(&self.credentials_file(), network).is_ok()
                && Self::roles(network)
                    .iter()
                    .all(|(id, _)| self.key_file(id).is_file());
            if complete {
                // A keyring made before the console had no session key: add it alone.
                return self.ensure_console_session_key();
            }
        }
        self.create(network)
    }

    /// Every credential of a dev network: operations, the three calling services, and per
    /// site its warehouse system and sensor gateway, plus a booking client per dev customer.
    fn roles(network: &NetworkConfig) -> Vec<(String, Role)> {
        let mut roles = vec![(OPERATIONS.to_owned(), Role::Operations)];
        for kind in [
            ServiceKind::Gateway,
            ServiceKind::Telemetry,
            ServiceKind::Inventory,
        ] {
            roles.push((service(kind), Role::Service(kind)));
        }
        for site in &network.sites {
            roles.push((
                warehouse(&site.id),
                Role::Warehouse {
                    site: site.id.clone(),
                },
            ));
            roles.push((
                sensors(&site.id),
                Role::SensorGateway {
                    site: site.id.clone(),
                },
            ));
        }
        for name in DEV_CUSTOMERS {
            roles.push((
                customer(name),
                Role::BookingClient {
                    customer: name.to_owned(),
                },
            ));
        }
        roles
    }

    fn create(&self, network: &NetworkConfig) -> Result<(), String> {
        let keys = self.dir.join("keys");
        std::fs::create_dir_all(&keys)
            .map_err(|e| format!("cannot create {}: {e}", keys.display()))?;
        restrict(&self.dir, 0o700)?;
        restrict(&keys, 0o700)?;
        let mut file = String::from(
            "# Made by `coldchain dev`: every role of the dev network. Keys are in keys/.\n",
        );
        for (id, role) in Self::roles(network) {
            let key = ApiKey::generate(&id)?;
            write_private(&self.key_file(&id), &format!("{}\n", key.expose()))?;
            file.push_str(&entry(&key, &role));
        }
        let path = self.credentials_file();
        std::fs::write(&path, file).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        self.write_console_session_key()
    }

    fn ensure_console_session_key(&self) -> Result<(), String> {
        if self.console_session_key_file().is_file() {
            return Ok(());
        }
        self.write_console_session_key()
    }

    fn write_console_session_key(&self) -> Result<(), String> {
        let bytes: [u8; 32] = rand::random();
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        write_private(&self.console_session_key_file(), &format!("{text}\n"))
    }
}

/// One `[[credential]]` entry.
fn entry(key: &ApiKey, role: &Role) -> String {
    let mut out = format!(
        "\n[[credential]]\nid = \"{}\"\nrole = \"{}\"\n",
        key.id(),
        role.name()
    );
    match role {
        Role::Warehouse { site } | Role::SensorGateway { site } => {
            let _ = writeln!(out, "site = \"{site}\"");
        }
        Role::BookingClient { customer } => {
            let _ = writeln!(out, "customer = \"{customer}\"");
        }
        Role::Service(kind) => {
            let _ = writeln!(out, "service = \"{}\"", kind.as_str());
        }
        Role::Operations => {}
    }
    let _ = writeln!(out, "secret_sha256 = \"{}\"", key.secret_sha256());
    out
}

/// Writes a file only its owner can read.
pub fn write_private(path: &Path, contents: &str) -> Result<(), String> {
    std::fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    restrict(path, 0o600)
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot restrict {}: {e}", path.display()))
}

#[cfg(not(unix))]
fn restrict(_: &Path, _: u32) -> Result<(), String> {
    Ok(())
}

#[derive(Subcommand)]
pub enum CredentialsCommand {
    /// Make a credential: append it to a credentials file and print its key once.
    Add(AddArgs),
    /// Make the keyring of every role of a network (what `dev` makes for itself).
    Keyring(KeyringArgs),
}

#[derive(Args)]
pub struct AddArgs {
    /// The credentials file the servers load (created if missing).
    #[arg(long)]
    file: PathBuf,
    /// The credential id: 1 to 64 characters of a-z, 0-9, '-' and '_'.
    #[arg(long)]
    id: String,
    /// warehouse, booking_client, sensor_gateway, operations or service.
    #[arg(long)]
    role: String,
    /// The site (warehouse, sensor_gateway).
    #[arg(long)]
    site: Option<String>,
    /// The customer (booking_client).
    #[arg(long)]
    customer: Option<String>,
    /// The calling service (service): gateway, telemetry or inventory.
    #[arg(long)]
    service: Option<String>,
    /// Also write the key to this file (owner-only), instead of only printing it.
    #[arg(long)]
    key_out: Option<PathBuf>,
    /// The network file, to check the site.
    #[arg(long, default_value = coldchain_command::DEFAULT_NETWORK)]
    network: PathBuf,
}

#[derive(Args)]
pub struct KeyringArgs {
    /// The directory to make it in.
    #[arg(long)]
    out: PathBuf,
    /// The network file.
    #[arg(long, default_value = coldchain_command::DEFAULT_NETWORK)]
    network: PathBuf,
}

pub fn run(command: CredentialsCommand) -> ExitCode {
    let result = match command {
        CredentialsCommand::Add(args) => add(args),
        CredentialsCommand::Keyring(args) => keyring(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(problem) => {
            eprintln!("coldchain: {problem}");
            ExitCode::from(coldchain_command::EXIT_CONFIG)
        }
    }
}

fn add(args: AddArgs) -> Result<(), String> {
    let network = NetworkConfig::load(&args.network).map_err(|e| e.to_string())?;
    let key = ApiKey::generate(&args.id)?;
    let role = match args.role.as_str() {
        "warehouse" | "sensor_gateway" => {
            let site = args.site.ok_or("--site is required for this role")?;
            if args.role == "warehouse" {
                Role::Warehouse { site }
            } else {
                Role::SensorGateway { site }
            }
        }
        "booking_client" => Role::BookingClient {
            customer: args
                .customer
                .ok_or("--customer is required for booking_client")?,
        },
        "operations" => Role::Operations,
        "service" => Role::Service(
            args.service
                .ok_or("--service is required for service")?
                .parse()
                .map_err(|e: coldchain_runtime::network::ParseNameError| e.to_string())?,
        ),
        other => return Err(format!("unknown role {other:?}")),
    };
    let existing = std::fs::read_to_string(&args.file).unwrap_or_default();
    let updated = format!("{existing}{}", entry(&key, &role));
    // Check the whole file as the servers will read it before writing anything.
    Credentials::parse(&args.file.display().to_string(), &updated, &network)
        .map_err(|e| e.to_string())?;
    std::fs::write(&args.file, updated)
        .map_err(|e| format!("cannot write {}: {e}", args.file.display()))?;
    match args.key_out {
        Some(path) => {
            write_private(&path, &format!("{}\n", key.expose()))?;
            say!(
                "credential {:?} ({role}) added to {}; its key is in {}",
                key.id(),
                args.file.display(),
                path.display()
            );
        }
        None => {
            eprintln!(
                "credential {:?} ({role}) added to {}; its key, shown only now:",
                key.id(),
                args.file.display()
            );
            say!("{}", key.expose());
        }
    }
    Ok(())
}

fn keyring(args: KeyringArgs) -> Result<(), String> {
    let network = NetworkConfig::load(&args.network).map_err(|e| e.to_string())?;
    let keyring = Keyring::at(&args.out);
    keyring.ensure(&network)?;
    say!(
        "keyring in {}: servers load {}, keys are in {}",
        args.out.display(),
        keyring.credentials_file().display(),
        args.out.join("keys").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped_network() -> NetworkConfig {
        NetworkConfig::load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/network.toml"
        ))
        .unwrap()
    }

    /// A keyring made in `dir` for `network`.
    fn made_keyring(dir: &Path, network: &NetworkConfig) -> Keyring {
        let keyring = Keyring::at(dir.join("keyring"));
        keyring.ensure(network).unwrap();
        keyring
    }

    #[test]
    fn a_dev_keyring_is_accepted_by_the_servers_and_reused() {
        let network = shipped_network();
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::dev(dir.path());
        keyring.ensure(&network).unwrap();
        let credentials = Credentials::load(&keyring.credentials_file(), &network).unwrap();
        let ops = keyring.key(OPERATIONS).unwrap();
        let principal = credentials.authenticate(Some(&ops.header_value())).unwrap();
        assert_eq!(principal.role, Role::Operations);
        let site = &network.sites[0].id;
        let wms = keyring.key(&warehouse(site)).unwrap();
        assert_eq!(
            credentials
                .authenticate(Some(&wms.header_value()))
                .unwrap()
                .role,
            Role::Warehouse { site: site.clone() }
        );
        // A second start keeps the keys.
        keyring.ensure(&network).unwrap();
        assert_eq!(keyring.key(OPERATIONS).unwrap(), ops);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(keyring.key_file(OPERATIONS))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "keys are readable by their owner only");
        }
    }

    /// A credential added to a made keyring is accepted with its role, beside the
    /// keyring's own, and its key is in the keyring.
    #[test]
    fn a_credential_added_to_a_keyring_is_accepted() {
        let network = shipped_network();
        let dir = tempfile::tempdir().unwrap();
        let keyring = made_keyring(dir.path(), &network);
        let role = Role::BookingClient {
            customer: "bench-customer-7".into(),
        };
        let added = keyring.add(&customer("bench-customer-7"), &role).unwrap();
        assert_eq!(keyring.key(&customer("bench-customer-7")).unwrap(), added);
        let credentials = Credentials::load(&keyring.credentials_file(), &network).unwrap();
        let principal = credentials
            .authenticate(Some(&added.header_value()))
            .unwrap();
        assert_eq!(principal.role, role);
        let ops = keyring.key(OPERATIONS).unwrap();
        assert_eq!(
            credentials
                .authenticate(Some(&ops.header_value()))
                .unwrap()
                .role,
            Role::Operations
        );
    }

    /// The keyring holds the console's session key (64 hex digits, owner-only), keeps it
    /// across runs, and adds it alone to a keyring made before it existed.
    #[test]
    fn the_keyring_has_a_console_session_key() {
        let network = shipped_network();
        let dir = tempfile::tempdir().unwrap();
        let keyring = made_keyring(dir.path(), &network);
        let file = keyring.console_session_key_file();
        let key = std::fs::read_to_string(&file).unwrap();
        assert_eq!(key.trim().len(), 64, "{key}");
        assert!(key.trim().bytes().all(|b| b.is_ascii_hexdigit()));
        keyring.ensure(&network).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), key, "kept");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "readable by its owner only");
        }
        let ops = keyring.key(OPERATIONS).unwrap();
        std::fs::remove_file(&file).unwrap();
        keyring.ensure(&network).unwrap();
        assert!(file.is_file(), "added to an older keyring");
        assert_ne!(std::fs::read_to_string(&file).unwrap(), key);
        assert_eq!(keyring.key(OPERATIONS).unwrap(), ops, "whose keys stay");
    }
}
