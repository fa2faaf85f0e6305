#![forbid(unsafe_code)]
//! `coldchain compose`: generates the container deployment from the network file.
//!
//! From `deploy/network.toml` it writes four files, all generated, all checked in:
//!
//! - `deploy/compose.yaml`, for `docker compose` and `docker-compose` (v1.27+: a file with no
//!   `version` key, read as the Compose Specification);
//! - `deploy/stack.yaml`, for `docker stack deploy` (swarm). The docker CLI's stack loader
//!   refuses two things a compose file needs: `depends_on` with conditions ("depends_on must
//!   be a list") and `mem_limit` ("forbidden properties"). So the stack file is the same
//!   services, volumes, networks, environment and health checks without `depends_on`,
//!   `restart` and `build` (swarm ignores them), with `deploy.restart_policy` and placement
//!   constraints (a task must stay on the node that holds its volume);
//! - `deploy/network.compose.toml`, the network file the containers read: the same sites and
//!   zones with every endpoint pointing at a container name (`http://inventory-la-vientiane:50121`).
//!   The image carries it as `/etc/coldchain/network.compose.toml`;
//! - `deploy/compose.sites.yaml`, an optional override that also publishes every site service
//!   on the host's loopback at its port from the network file (host-local clients);
//! - `deploy/k8s/`, the Kubernetes manifests: a kustomize base and an example overlay
//!   (see [`k8s`]).
//!
//! Swarm needs two more departures, both in the stack file only: `endpoint_mode: dnsrr` (no
//! IPVS virtual IP: a kernel without `ip_vs`, as on the machine this was tried on, cannot route
//! to one) and the gateway's port published in `mode: host` (the routing mesh needs a VIP).
//!
//! One container per site service (`<service>-<site>`) and one `gateway`, each with its own
//! named volume `<service>-<site>-data` mounted at `/data`. Two kinds of network model the
//! geography: `site-<id>` is a site's LAN (its three services), `backbone` is the WAN between
//! the sites and the hub (every container). Cutting a site off the backbone leaves it working
//! for its local clients, as a warehouse whose cross-border link is down.
//!
//! Every container serves TLS and authenticates its callers. The secrets are not in the image
//! and not in these files: `deploy/secrets/` (never committed) holds `tls/` (`coldchain certs`:
//! the CA and a certificate per container, named as the container) and `keyring/` (`coldchain
//! credentials keyring`: the credentials file and a key per role). It is bind-mounted read-only
//! at `/etc/coldchain/secrets` into every container, which finds its own files there by name:
//! its certificate and key, the CA it trusts when it calls others, the credentials file its
//! server accepts, and (every service that calls others: not booking) its `service-<kind>` key.
//! The image runs as uid 10001 and the key files are 0600, so the directory is given to that
//! uid (`chown -R 10001:10001`) rather than opened to everyone.
//!
//! Memory limits are `deploy.resources.limits.memory`, honoured by swarm, by Compose v2 and
//! by docker-compose 1.29 (which turns them into container limits without
//! `--compatibility`). `mem_limit` is not written: the stack loader refuses it.
//!
//! `--check` compares instead of writing and exits 1 with a summary of each difference; a unit
//! test does the same for the checked-in files, so adding a site stays one edit of
//! `deploy/network.toml` and one run of `coldchain compose`.

mod compose;
pub mod k8s;
mod yaml;

pub use compose::SITE_HOST_VAR;
use compose::{compose_network_header, render_network, render_sites_override, render_yaml};

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use coldchain_command::{DEFAULT_NETWORK, EXIT_CONFIG, say};
use coldchain_credentials::Keyring;
use coldchain_runtime::network::{NetworkConfig, ServiceKind, SiteConfig};

pub mod prometheus;

/// Exit code of `--check` when a file differs (and of a failed write).
const EXIT_DIFFERS: u8 = 1;

#[derive(Args)]
pub struct ComposeArgs {
    /// The network file to generate from.
    #[arg(long, default_value = DEFAULT_NETWORK)]
    network: PathBuf,
    /// The compose file (docker compose, docker-compose).
    #[arg(long, default_value = "deploy/compose.yaml")]
    output: PathBuf,
    /// The swarm stack file (docker stack deploy).
    #[arg(long, default_value = "deploy/stack.yaml")]
    stack_output: PathBuf,
    /// The network file for the containers, with endpoints at container names.
    #[arg(long, default_value = "deploy/network.compose.toml")]
    network_output: PathBuf,
    /// The optional override that publishes every site service on the host's loopback.
    #[arg(long, default_value = "deploy/compose.sites.yaml")]
    sites_output: PathBuf,
    /// The directory of the Kubernetes manifests (a kustomize base and an example overlay).
    #[arg(long, default_value = "deploy/k8s")]
    k8s_output: PathBuf,
    /// The directory of the Prometheus scrape config and alert rules.
    #[arg(long, default_value = "deploy/prometheus")]
    prometheus_dir: PathBuf,
    /// Compare the files with what would be generated; exit 1 and summarise every difference
    /// instead of writing.
    #[arg(long)]
    check: bool,
}

/// How the deployment is built; [`Options::default`] is what `coldchain compose` writes.
#[derive(Debug, Clone)]
pub struct Options {
    /// The image every container runs.
    pub image: String,
    /// `build.context`, relative to the directory of the compose file.
    pub build_context: String,
    /// `build.dockerfile`, relative to the build context.
    pub dockerfile: String,
    /// Where the image keeps the container network file.
    pub network_file_in_image: String,
    /// The source network file as named in the generated files' headers.
    pub source_name: String,
    /// The memory limit of a site service.
    pub site_memory: String,
    /// The memory limit of the gateway.
    pub gateway_memory: String,
    /// The memory limit of the console.
    pub console_memory: String,
    /// `COLDCHAIN_SLED_CACHE_BYTES` of every container.
    pub sled_cache: String,
    /// Where every container finds the secrets directory (mounted read-only).
    pub secrets_in_container: String,
    /// The secrets directory on the host, relative to the directory of the compose file,
    /// unless `SECRETS_DIR` names another.
    pub secrets_on_host: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            image: "coldchain:latest".into(),
            build_context: "..".into(),
            dockerfile: "deploy/Dockerfile".into(),
            network_file_in_image: "/etc/coldchain/network.compose.toml".into(),
            source_name: "deploy/network.toml".into(),
            site_memory: "256M".into(),
            gateway_memory: "256M".into(),
            console_memory: "128M".into(),
            sled_cache: "16MiB".into(),
            secrets_in_container: "/etc/coldchain/secrets".into(),
            secrets_on_host: "./secrets".into(),
        }
    }
}

/// The generated files.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// `deploy/compose.yaml`.
    pub compose: String,
    /// `deploy/stack.yaml`.
    pub stack: String,
    /// `deploy/network.compose.toml`.
    pub network: String,
    /// `deploy/compose.sites.yaml`.
    pub sites: String,
    /// `deploy/k8s/`: the Kubernetes manifests.
    pub k8s: k8s::Manifests,
}

/// Which file is being written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Compose,
    Stack,
}

/// Generates every file for `network`.
pub fn generate(network: &NetworkConfig, options: &Options) -> Generated {
    Generated {
        compose: render_yaml(network, options, Target::Compose),
        stack: render_yaml(network, options, Target::Stack),
        network: render_network(network, &compose_network_header(options)),
        sites: render_sites_override(network, options),
        k8s: k8s::generate(network, options),
    }
}

/// The compose service name of a site service: `inventory-la-vientiane`.
pub fn service_name(site: &SiteConfig, kind: ServiceKind) -> String {
    format!("{}-{}", kind.as_str(), site.id)
}

/// The container names of the site services, site by site: `inventory-la-vientiane`, ...
pub fn site_service_names(network: &NetworkConfig) -> impl Iterator<Item = String> + '_ {
    network.sites.iter().flat_map(|site| {
        ServiceKind::SITE_SERVICES
            .into_iter()
            .map(move |kind| service_name(site, kind))
    })
}

/// Every container name, the gateway and the console last: each one is also the host of the
/// container's certificate.
pub fn container_names(network: &NetworkConfig) -> Vec<String> {
    let mut names: Vec<String> = site_service_names(network).collect();
    names.push(GATEWAY.to_owned());
    names.push(CONSOLE.to_owned());
    names
}

/// What a container serves: one of the four gRPC services, or the console's web pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Service(ServiceKind),
    Console,
}

impl Kind {
    /// The name `serve` takes, and the value of the component labels.
    fn as_str(self) -> &'static str {
        match self {
            Kind::Service(kind) => kind.as_str(),
            Kind::Console => "console",
        }
    }
}

/// A server of the network, as compose runs it and as Kubernetes runs it.
struct Server<'a> {
    /// The container name, which is also the Service and the certificate's host.
    name: String,
    kind: Kind,
    site: Option<&'a SiteConfig>,
    port: u16,
    /// The binary's arguments: `serve inventory --site la-vientiane`, `serve gateway`.
    args: Vec<String>,
}

impl<'a> Server<'a> {
    /// The `kind` service of `site`.
    fn at_site(site: &'a SiteConfig, kind: ServiceKind) -> Self {
        Self {
            name: service_name(site, kind),
            kind: Kind::Service(kind),
            site: Some(site),
            port: site.port(kind).unwrap_or_default(),
            args: vec![
                "serve".into(),
                kind.as_str().into(),
                "--site".into(),
                site.id.clone(),
            ],
        }
    }

    /// The gateway, at the hub.
    fn gateway(network: &NetworkConfig) -> Self {
        Self {
            name: GATEWAY.into(),
            kind: Kind::Service(ServiceKind::Gateway),
            site: None,
            port: network.gateway.port(),
            args: vec!["serve".into(), "gateway".into()],
        }
    }

    /// The console, at the hub beside the gateway: its port is the network file's
    /// `[console] listen`.
    fn console(network: &NetworkConfig) -> Self {
        Self {
            name: CONSOLE.into(),
            kind: Kind::Console,
            site: None,
            port: network.console.port(),
            args: vec!["serve".into(), "console".into()],
        }
    }

    /// The site's id, `hub` for the gateway.
    fn site_label(&self) -> &str {
        self.site.map_or("hub", |s| s.id.as_str())
    }
}

/// The network a site's services share: `site-la-vientiane`.
pub fn site_network(site: &SiteConfig) -> String {
    format!("site-{}", site.id)
}

/// The network connecting every site to the hub.
pub const BACKBONE: &str = "backbone";
/// The gateway's service name.
pub const GATEWAY: &str = "gateway";
/// The console's service name.
pub const CONSOLE: &str = "console";
/// The variable that moves the console's port on the host (compose interpolation only, like
/// [`PUBLISH_VAR`]).
pub const CONSOLE_PUBLISH_VAR: &str = "CONSOLE_HOST_PORT";
/// The console's session-signing key in the keyring directory (`coldchain credentials
/// keyring` makes it).
pub const CONSOLE_SESSION_KEY: &str = "console-session.key";
/// The variable that moves the gateway's port on the host (compose interpolation only; not a
/// `COLDCHAIN_*` name, which the binary would reject as unknown configuration).
pub const PUBLISH_VAR: &str = "GATEWAY_HOST_PORT";

/// The variable that moves the secrets directory on the host (compose interpolation only,
/// like [`PUBLISH_VAR`]); `scripts/compose_e2e.sh` points it at fresh secrets of its own.
pub const SECRETS_VAR: &str = "SECRETS_DIR";
/// The uid (and gid) the image runs as: the secrets must be readable by it.
pub const IMAGE_UID: u32 = 10001;

/// The credential a container calls other services with; `None` for booking, which calls
/// nobody (a key it never sends is only one more secret to leak), and for the console, which
/// calls as the person logged in.
fn caller_credential(kind: Kind) -> Option<String> {
    match kind {
        Kind::Service(ServiceKind::Booking) | Kind::Console => None,
        Kind::Service(
            kind @ (ServiceKind::Inventory | ServiceKind::Telemetry | ServiceKind::Gateway),
        ) => Some(coldchain_credentials::service(kind)),
    }
}

/// The security settings of one container: `(variable, path in the container)`.
fn security_env(container: &str, kind: Kind, options: &Options) -> Vec<(String, String)> {
    let secrets = Path::new(&options.secrets_in_container);
    let keyring = Keyring::at(secrets.join("keyring"));
    let tls = secrets.join("tls");
    let path = |p: PathBuf| p.display().to_string();
    let mut env = vec![(
        "COLDCHAIN_AUTH_FILE".to_owned(),
        path(keyring.credentials_file()),
    )];
    if let Some(id) = caller_credential(kind) {
        env.push((
            "COLDCHAIN_CLIENT_KEY_FILE".to_owned(),
            path(keyring.key_file(&id)),
        ));
    }
    // The file names `coldchain certs` gives: the container's name (its host name).
    env.push((
        "COLDCHAIN_TLS_CERT".to_owned(),
        path(tls.join(format!("{container}.pem"))),
    ));
    env.push((
        "COLDCHAIN_TLS_KEY".to_owned(),
        path(tls.join(format!("{container}.key"))),
    ));
    env.push(("COLDCHAIN_TLS_CA".to_owned(), path(tls.join("ca.pem"))));
    if kind == Kind::Console {
        env.push((
            "COLDCHAIN_CONSOLE_SESSION_KEY_FILE".to_owned(),
            path(secrets.join("keyring").join(CONSOLE_SESSION_KEY)),
        ));
    }
    env
}

/// The services a site service calls, which it waits for at startup (compose only).
fn dependencies(kind: ServiceKind) -> &'static [ServiceKind] {
    match kind {
        // An excursion places a hold on the zone's stock.
        ServiceKind::Telemetry => &[ServiceKind::Inventory],
        // A receipt citing a booking checks it in.
        ServiceKind::Inventory => &[ServiceKind::Booking],
        ServiceKind::Booking | ServiceKind::Gateway => &[],
    }
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn q(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// A YAML flow sequence of quoted strings.
fn flow(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| q(i)).collect();
    format!("[{}]", quoted.join(", "))
}

/// A short description of how `actual` differs from `expected`, or `None` when equal.
fn difference(expected: &str, actual: Option<&str>) -> Option<String> {
    let Some(actual) = actual else {
        return Some("missing".to_owned());
    };
    if expected == actual {
        return None;
    }
    let want: Vec<&str> = expected.lines().collect();
    let have: Vec<&str> = actual.lines().collect();
    let mut differing = Vec::new();
    for i in 0..want.len().max(have.len()) {
        if want.get(i) != have.get(i) {
            differing.push(i);
        }
    }
    let mut summary = format!(
        "{} of {} lines differ (generated {} lines, file has {})",
        differing.len(),
        want.len().max(have.len()),
        want.len(),
        have.len()
    );
    for &i in differing.iter().take(5) {
        let _ = write!(
            summary,
            "\n    line {}: expected {:?}, found {:?}",
            i + 1,
            want.get(i).copied().unwrap_or("<end of file>"),
            have.get(i).copied().unwrap_or("<end of file>")
        );
    }
    if differing.len() > 5 {
        let _ = write!(summary, "\n    ... and {} more", differing.len() - 5);
    }
    if differing.is_empty() {
        summary = "differs only in line endings or the final newline".to_owned();
    }
    Some(summary)
}

fn files<'a>(args: &ComposeArgs, generated: &'a Generated) -> Vec<(PathBuf, &'a str)> {
    let mut files = vec![
        (args.output.clone(), generated.compose.as_str()),
        (args.stack_output.clone(), generated.stack.as_str()),
        (args.network_output.clone(), generated.network.as_str()),
        (args.sites_output.clone(), generated.sites.as_str()),
    ];
    for file in &generated.k8s.files {
        files.push((args.k8s_output.join(&file.path), file.text.as_str()));
    }
    files
}

/// The first line of every generated file.
const GENERATED_MARK: &str = "# Generated by `coldchain compose`";

/// Files the generator wrote once and writes no more (the manifests of a site taken out of
/// the network file): files of the Kubernetes directories that start with its mark.
fn leftovers(args: &ComposeArgs, generated: &Generated) -> Vec<PathBuf> {
    let expected: Vec<PathBuf> = files(args, generated).into_iter().map(|(p, _)| p).collect();
    let mut dirs: Vec<PathBuf> = generated
        .k8s
        .files
        .iter()
        .filter_map(|f| {
            args.k8s_output
                .join(&f.path)
                .parent()
                .map(Path::to_path_buf)
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    let mut found = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_file() || expected.contains(&path) {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.starts_with(GENERATED_MARK) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

pub async fn run(args: ComposeArgs) -> ExitCode {
    ExitCode::from(execute(&args))
}

/// `coldchain compose [--check]`: the exit code.
fn execute(args: &ComposeArgs) -> u8 {
    let network = match NetworkConfig::load(&args.network) {
        Ok(network) => network,
        Err(errors) => {
            eprintln!("coldchain: {errors}");
            return EXIT_CONFIG;
        }
    };
    let options = Options {
        source_name: args.network.display().to_string(),
        ..Options::default()
    };
    let generated = generate(&network, &options);
    let prometheus =
        prometheus::Generated::new(&network, &args.prometheus_dir, &options.source_name);
    let mut all = files(args, &generated);
    all.extend(
        prometheus
            .files()
            .map(|(path, text)| (path.to_path_buf(), text)),
    );
    let containers = container_names(&network).len();

    if args.check {
        let mut stale = 0;
        for (path, expected) in &all {
            let actual = std::fs::read_to_string(path).ok();
            match difference(expected, actual.as_deref()) {
                None => say!("{}: up to date", path.display()),
                Some(summary) => {
                    stale += 1;
                    eprintln!(
                        "{}: differs from the generator's output: {summary}",
                        path.display()
                    );
                }
            }
        }
        for path in leftovers(args, &generated) {
            stale += 1;
            eprintln!("{}: generated once, no longer: remove it", path.display());
        }
        if stale > 0 {
            eprintln!(
                "coldchain: {stale} generated file(s) are stale; run `coldchain compose --network {}` and commit the result",
                args.network.display()
            );
            return EXIT_DIFFERS;
        }
        return 0;
    }

    for (path, text) in &all {
        if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
            say!("{}: unchanged", path.display());
            continue;
        }
        let written = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir),
            _ => Ok(()),
        }
        .and_then(|()| std::fs::write(path, text));
        if let Err(error) = written {
            eprintln!("coldchain: cannot write {}: {error}", path.display());
            return EXIT_DIFFERS;
        }
        say!("{}: written", path.display());
    }
    for path in leftovers(args, &generated) {
        if let Err(error) = std::fs::remove_file(&path) {
            eprintln!("coldchain: cannot remove {}: {error}", path.display());
            return EXIT_DIFFERS;
        }
        say!("{}: removed (no longer generated)", path.display());
    }
    say!(
        "{containers} containers ({} sites x 3 services + the gateway + the console), gateway \
         published on port {}, console on port {}; Kubernetes: {} StatefulSets, 2 Deployments, under {}",
        network.sites.len(),
        network.gateway.port(),
        network.console.port(),
        network.sites.len() * ServiceKind::SITE_SERVICES.len(),
        args.k8s_output.display()
    );
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::{toml_float, toml_string};

    fn repo_file(relative: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(relative)
    }

    fn shipped() -> (NetworkConfig, Generated) {
        let network = NetworkConfig::load(repo_file("deploy/network.toml")).unwrap();
        let generated = generate(&network, &Options::default());
        (network, generated)
    }

    /// Adding a site stays one edit of deploy/network.toml plus `coldchain compose`: the
    /// checked-in files must be exactly what the generator makes.
    #[test]
    fn checked_in_files_match_the_generator() {
        let (_, generated) = shipped();
        for (path, expected) in [
            ("deploy/compose.yaml", &generated.compose),
            ("deploy/stack.yaml", &generated.stack),
            ("deploy/network.compose.toml", &generated.network),
            ("deploy/compose.sites.yaml", &generated.sites),
        ]
        .into_iter()
        .map(|(p, t)| (PathBuf::from(p), t))
        .chain(
            generated
                .k8s
                .files
                .iter()
                .map(|f| (Path::new("deploy/k8s").join(&f.path), &f.text)),
        ) {
            let path = path.display();
            let actual = std::fs::read_to_string(repo_file(&path.to_string())).ok();
            if let Some(summary) = difference(expected, actual.as_deref()) {
                panic!(
                    "{path} is stale: {summary}\nrun `cargo run -p coldchain -- compose` and commit the result"
                );
            }
        }
    }

    /// `--check` covers the Kubernetes manifests: a changed, a missing or a left-over
    /// generated file is stale (exit 1), and writing repairs all three.
    #[test]
    fn check_covers_the_kubernetes_manifests() {
        let dir = tempfile::tempdir().unwrap();
        let at = |p: &str| dir.path().join(p);
        let mut args = ComposeArgs {
            network: repo_file("deploy/network.toml"),
            output: at("compose.yaml"),
            stack_output: at("stack.yaml"),
            network_output: at("network.compose.toml"),
            sites_output: at("compose.sites.yaml"),
            k8s_output: at("k8s"),
            prometheus_dir: at("prometheus"),
            check: true,
        };
        assert_eq!(execute(&args), EXIT_DIFFERS, "nothing written yet");
        args.check = false;
        assert_eq!(execute(&args), 0);
        args.check = true;
        assert_eq!(execute(&args), 0, "fresh files are up to date");

        let site = at("k8s/base/site-la-vientiane.yaml");
        let text = std::fs::read_to_string(&site).unwrap();
        std::fs::write(&site, text.replace("replicas: 1", "replicas: 2")).unwrap();
        assert_eq!(execute(&args), EXIT_DIFFERS, "an edited manifest");
        std::fs::remove_file(at("k8s/overlays/example/kustomization.yaml")).unwrap();
        assert_eq!(execute(&args), EXIT_DIFFERS, "and a missing one");
        args.check = false;
        assert_eq!(execute(&args), 0);
        args.check = true;
        assert_eq!(execute(&args), 0);

        // A site taken out of the network file leaves its manifests behind: stale until
        // `coldchain compose` removes them. A file of someone else's is left alone.
        std::fs::write(
            at("k8s/base/site-gone.yaml"),
            format!("{GENERATED_MARK} from x\n"),
        )
        .unwrap();
        std::fs::write(at("k8s/base/notes.yaml"), "# mine\n").unwrap();
        assert_eq!(execute(&args), EXIT_DIFFERS, "a left-over generated file");
        args.check = false;
        assert_eq!(execute(&args), 0);
        assert!(!at("k8s/base/site-gone.yaml").exists());
        assert!(at("k8s/base/notes.yaml").exists());
        args.check = true;
        assert_eq!(execute(&args), 0);
    }

    #[test]
    fn container_network_file_has_the_same_sites_with_container_endpoints() {
        let (network, generated) = shipped();
        let inside = NetworkConfig::parse(&generated.network).unwrap();
        assert_eq!(inside.sites.len(), network.sites.len());
        assert_eq!(inside.gateway.listen, network.gateway.listen);
        assert_eq!(inside.gateway_endpoint(), "http://gateway:50051");
        assert_eq!(inside.skus, network.skus);
        assert!(
            network.sites.iter().all(|s| s.gln.is_some()),
            "the shipped file names every GLN"
        );
        assert!(
            !network.skus.is_empty(),
            "the shipped file maps the demo's skus to GTINs"
        );
        for (a, b) in network.sites.iter().zip(&inside.sites) {
            assert_eq!(a.id, b.id);
            assert_eq!(a.name, b.name);
            assert_eq!(a.location, b.location);
            assert_eq!(a.reached_by, b.reached_by);
            assert_eq!(a.time_zone, b.time_zone);
            assert_eq!(a.gln, b.gln);
            assert_eq!(a.ports, b.ports);
            assert_eq!(a.zones, b.zones);
            for kind in ServiceKind::SITE_SERVICES {
                assert_eq!(
                    b.endpoint(kind).unwrap(),
                    format!(
                        "http://{}-{}:{}",
                        kind.as_str(),
                        a.id,
                        a.port(kind).unwrap()
                    )
                );
            }
        }
    }

    /// The compose file's one-shot backup service: only under its profile (`up` never starts
    /// it), every site service and the gateway, as operations over TLS, into the host
    /// directory; the stack file has none.
    #[test]
    fn the_backup_service_backs_up_everything_only_under_its_profile() {
        let (_, generated) = shipped();
        let block = service_block(&generated.compose, "backup");
        assert!(block.contains("    profiles: [\"backup\"]\n"), "{block}");
        assert!(
            block.contains(
                "    command: [\"backup\", \"--all-sites\", \"--gateway\", \"--out\", \"/backups\""
            ),
            "{block}"
        );
        assert!(block.contains("      COLDCHAIN_KEYRING: \"/etc/coldchain/secrets/keyring\"\n"));
        assert!(block.contains("      - \"${BACKUP_DIR:-./backups}:/backups\"\n"));
        assert!(block.contains("      - backbone\n"));
        assert!(!block.contains("restart:"), "one-shot");
        assert!(!generated.stack.contains("  backup:\n"));
    }

    #[test]
    fn compose_file_shape() {
        let (network, generated) = shipped();
        let yaml = &generated.compose;
        let services = yaml
            .lines()
            .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.ends_with(':'));
        // 26 services and the backup, then 9 networks and 25 volumes (the console has none)
        // at the same indentation.
        assert_eq!(services.count(), 26 + 1 + 9 + 25);
        assert_eq!(yaml.matches("    healthcheck:\n").count(), 26);
        assert_eq!(yaml.matches("    restart: unless-stopped\n").count(), 26);
        assert_eq!(yaml.matches("          memory: ").count(), 26);
        assert_eq!(
            yaml.matches("    ports:\n").count(),
            2,
            "only the gateway and the console are published"
        );
        assert!(yaml.contains("      - \"${GATEWAY_HOST_PORT:-50051}:50051\"\n"));
        let console = service_block(yaml, "console");
        assert!(console.contains("    command: [\"serve\", \"console\"]\n"));
        assert!(console.contains(
            "    networks:\n      - backbone\n    ports:\n      - \"${CONSOLE_HOST_PORT:-8080}:8080\"\n"
        ));
        assert!(console.contains(
            "      test: [\"CMD\", \"coldchain\", \"healthcheck\", \"--http\", \"127.0.0.1:8080\"]\n"
        ));
        assert!(console.contains(
            "    depends_on:\n      gateway:\n        condition: service_healthy\n    restart:"
        ));
        assert!(!console.contains(":/data"), "the console keeps no store");
        assert!(console.contains("          memory: 128M\n"));
        assert!(!yaml.contains("\n  console-data:"));
        assert!(
            !yaml.contains("mem_limit"),
            "the stack loader refuses mem_limit"
        );
        assert!(
            !yaml.contains("\nversion:"),
            "docker compose warns about `version`"
        );
        // Telemetry waits for inventory, inventory for booking, the gateway for all 24.
        let site = &network.sites[1];
        let block = service_block(yaml, &format!("inventory-{}", site.id));
        assert!(block.contains(&format!(
            "    depends_on:\n      booking-{}:\n        condition: service_healthy\n",
            site.id
        )));
        assert!(block.contains(&format!(
            "      test: [\"CMD\", \"coldchain\", \"healthcheck\", \"127.0.0.1:{}\"]",
            site.ports.inventory
        )));
        assert!(block.contains(&format!("      - inventory-{}-data:/data\n", site.id)));
        let block = service_block(yaml, &format!("telemetry-{}", site.id));
        assert!(block.contains(&format!(
            "      inventory-{}:\n        condition: service_healthy",
            site.id
        )));
        assert!(!service_block(yaml, &format!("booking-{}", site.id)).contains("depends_on"));
        let gateway = service_block(yaml, "gateway");
        assert_eq!(gateway.matches("condition: service_healthy").count(), 24);
        assert!(gateway.contains("    networks:\n      - backbone\n    ports:"));
    }

    /// Every container serves TLS with its own certificate, trusts the CA, authenticates with
    /// the keyring's credentials file, and (unless it calls nobody) calls as its service.
    #[test]
    fn every_container_has_tls_credentials_and_its_own_identity() {
        let (network, generated) = shipped();
        // The compose file's backup service mounts the secrets and trusts the CA too.
        for (yaml, mounts) in [(&generated.compose, 27), (&generated.stack, 26)] {
            assert_eq!(
                yaml.matches("      - \"${SECRETS_DIR:-./secrets}:/etc/coldchain/secrets:ro\"\n")
                    .count(),
                mounts
            );
            assert_eq!(
                yaml.matches("      COLDCHAIN_AUTH_FILE: \"/etc/coldchain/secrets/keyring/credentials.toml\"\n")
                    .count(),
                26
            );
            assert_eq!(
                yaml.matches("      COLDCHAIN_TLS_CA: \"/etc/coldchain/secrets/tls/ca.pem\"\n")
                    .count(),
                mounts
            );
            // Booking calls nobody: 8 inventories, 8 telemetries and the gateway have a key.
            assert_eq!(yaml.matches("COLDCHAIN_CLIENT_KEY_FILE").count(), 17);
            assert!(!yaml.contains("INSECURE_NO_AUTH"));
            for site in &network.sites {
                for kind in ServiceKind::SITE_SERVICES {
                    let name = service_name(site, kind);
                    let block = service_block(yaml, &name);
                    assert!(block.contains(&format!(
                        "      COLDCHAIN_TLS_CERT: \"/etc/coldchain/secrets/tls/{name}.pem\"\n      \
                         COLDCHAIN_TLS_KEY: \"/etc/coldchain/secrets/tls/{name}.key\"\n"
                    )));
                    let key = format!(
                        "      COLDCHAIN_CLIENT_KEY_FILE: \"/etc/coldchain/secrets/keyring/keys/service-{}.key\"\n",
                        kind.as_str()
                    );
                    assert_eq!(block.contains(&key), kind != ServiceKind::Booking, "{name}");
                }
            }
            let gateway = service_block(yaml, "gateway");
            assert!(gateway.contains("/etc/coldchain/secrets/keyring/keys/service-gateway.key"));
            assert!(gateway.contains("/etc/coldchain/secrets/tls/gateway.pem"));
            assert!(gateway.contains("/etc/coldchain/secrets/tls/gateway.key"));
            // The console: its own certificate, the keyring's session key, no service key (it
            // calls as the person logged in).
            let console = service_block(yaml, "console");
            assert!(console.contains(
                "      COLDCHAIN_TLS_CERT: \"/etc/coldchain/secrets/tls/console.pem\"\n      \
                 COLDCHAIN_TLS_KEY: \"/etc/coldchain/secrets/tls/console.key\"\n"
            ));
            assert!(console.contains(
                "      COLDCHAIN_CONSOLE_SESSION_KEY_FILE: \"/etc/coldchain/secrets/keyring/console-session.key\"\n"
            ));
            assert!(!console.contains("COLDCHAIN_CLIENT_KEY_FILE"));
        }
        assert!(
            container_names(&network).contains(&"console".to_owned()),
            "certs names it"
        );
    }

    /// The files the containers are told to read are the ones `coldchain credentials
    /// keyring` makes, and each service key belongs to that service.
    #[test]
    fn the_keyring_paths_exist_in_a_real_keyring() {
        use coldchain_runtime::auth::{Credentials, Role};
        let (network, generated) = shipped();
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::at(dir.path().join("keyring"));
        keyring.ensure(&network).unwrap();
        let credentials = Credentials::load(&keyring.credentials_file(), &network).unwrap();
        let inside = "/etc/coldchain/secrets/";
        let mut key_files = 0;
        for line in generated.compose.lines() {
            let Some((name, value)) = line.trim().split_once(": ") else {
                continue;
            };
            let value = value.trim_matches('"');
            let Some(relative) = value.strip_prefix(inside) else {
                continue;
            };
            if !relative.starts_with("keyring/") {
                continue;
            }
            let on_host = dir.path().join(relative);
            assert!(on_host.is_file(), "{name}: {} is not in the keyring", value);
            if name == "COLDCHAIN_CLIENT_KEY_FILE" {
                key_files += 1;
                let key = coldchain_runtime::auth::ApiKey::from_file(&on_host).unwrap();
                let role = credentials
                    .authenticate(Some(&key.header_value()))
                    .unwrap()
                    .role;
                let Role::Service(kind) = role else {
                    panic!("{value}: {role} is not a service credential");
                };
                assert_eq!(key.id(), coldchain_credentials::service(kind));
                assert!(value.ends_with(&format!("/{}.key", key.id())));
            }
        }
        assert_eq!(key_files, 17);
    }

    #[test]
    fn stack_file_has_no_compose_only_keys() {
        let (_, generated) = shipped();
        let yaml = &generated.stack;
        for key in [
            "\n    depends_on:",
            "\n    restart:",
            "\n    build:",
            "mem_limit",
            "service_healthy",
        ] {
            assert!(!yaml.contains(key), "stack.yaml must not contain {key}");
        }
        assert_eq!(yaml.matches("      restart_policy:\n").count(), 26);
        assert_eq!(yaml.matches("node.labels.coldchain.site.").count(), 24);
        assert_eq!(yaml.matches("node.labels.coldchain.hub == true").count(), 2);
        assert_eq!(yaml.matches("    driver: overlay\n").count(), 9);
        assert_eq!(yaml.matches("    healthcheck:\n").count(), 26);
        assert_eq!(yaml.matches("      endpoint_mode: dnsrr\n").count(), 26);
        assert!(yaml.contains("      - target: 8080\n        published: \"${CONSOLE_HOST_PORT:-8080}\"\n        protocol: tcp\n        mode: host\n"));
        assert!(yaml.contains("        published: \"${GATEWAY_HOST_PORT:-50051}\"\n        protocol: tcp\n        mode: host\n"));
    }

    #[test]
    fn adding_a_site_adds_its_three_containers() {
        let text = std::fs::read_to_string(repo_file("deploy/network.toml")).unwrap();
        let extra = "\n[[site]]\nid = \"la-luangprabang\"\nname = \"Luang Prabang\"\n\
             location = \"Luang Prabang, Laos\"\nreached_by = \"China–Laos railway\"\n\
             time_zone = \"Asia/Vientiane\"\n[site.ports]\ninventory = 50191\ntelemetry = 50192\n\
             booking = 50193\n[[site.zone]]\nid = \"cool-a\"\nclass = \"COOL\"\n\
             min_celsius = 12.0\nmax_celsius = 15.0\ncapacity_pallets = 100\n";
        let network = NetworkConfig::parse(&format!("{text}{extra}")).unwrap();
        let generated = generate(&network, &Options::default());
        for kind in ["inventory", "telemetry", "booking"] {
            assert!(
                generated
                    .compose
                    .contains(&format!("\n  {kind}-la-luangprabang:\n"))
            );
            assert!(
                generated
                    .compose
                    .contains(&format!("\n  {kind}-la-luangprabang-data:\n"))
            );
            assert!(
                generated
                    .stack
                    .contains(&format!("\n  {kind}-la-luangprabang:\n"))
            );
        }
        assert!(generated.compose.contains("\n  site-la-luangprabang:\n"));
        assert_eq!(
            service_block(&generated.compose, "gateway")
                .matches("condition: service_healthy")
                .count(),
            27
        );
        let inside = NetworkConfig::parse(&generated.network).unwrap();
        assert_eq!(
            inside
                .site("la-luangprabang")
                .unwrap()
                .endpoint(ServiceKind::Booking)
                .unwrap(),
            "http://booking-la-luangprabang:50193"
        );
    }

    #[test]
    fn sites_override_publishes_each_site_service_on_loopback() {
        let (network, generated) = shipped();
        let yaml = &generated.sites;
        assert_eq!(
            yaml.matches("    ports:\n").count(),
            network.sites.len() * 3
        );
        assert!(yaml.contains("  inventory-la-vientiane:\n    ports:\n      - \"${SITE_HOST_IP:-127.0.0.1}:50121:50121\"\n"));
        assert!(!yaml.contains("gateway:"));
    }

    #[test]
    fn difference_summaries() {
        assert_eq!(difference("a\nb\n", Some("a\nb\n")), None);
        assert_eq!(difference("a\n", None).unwrap(), "missing");
        let d = difference("a\nb\nc\n", Some("a\nx\nc\nd\n")).unwrap();
        assert!(
            d.starts_with("2 of 4 lines differ (generated 3 lines, file has 4)"),
            "{d}"
        );
        assert!(d.contains("line 2: expected \"b\", found \"x\""), "{d}");
        assert!(
            d.contains("line 4: expected \"<end of file>\", found \"d\""),
            "{d}"
        );
        assert_eq!(
            difference("a\n", Some("a")).unwrap(),
            "differs only in line endings or the final newline"
        );
    }

    #[test]
    fn toml_and_yaml_quoting() {
        assert_eq!(toml_string("a\"b\\c\u{1}–"), "\"a\\\"b\\\\c\\u0001–\"");
        assert_eq!(toml_float(-25.0), "-25.0");
        assert_eq!(toml_float(13.5), "13.5");
        assert_eq!(q("${X:-info}"), "\"${X:-info}\"");
        assert_eq!(flow(&["CMD", "a b"]), "[\"CMD\", \"a b\"]");
    }

    fn service_block<'a>(yaml: &'a str, name: &str) -> &'a str {
        let start = yaml
            .find(&format!("\n  {name}:\n"))
            .unwrap_or_else(|| panic!("no service {name}"))
            + 1;
        let rest = &yaml[start..];
        let first_line = rest.find('\n').unwrap() + 1;
        let mut end = first_line;
        for line in rest[first_line..].split_inclusive('\n') {
            if !line.starts_with("   ") {
                break;
            }
            end += line.len();
        }
        &rest[..end]
    }
}
