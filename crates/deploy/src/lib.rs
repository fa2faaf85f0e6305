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
//!   on the host's loopback at its port from the network file (host-local clients).
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
            sled_cache: "16MiB".into(),
            secrets_in_container: "/etc/coldchain/secrets".into(),
            secrets_on_host: "./secrets".into(),
        }
    }
}

/// The generated files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// `deploy/compose.yaml`.
    pub compose: String,
    /// `deploy/stack.yaml`.
    pub stack: String,
    /// `deploy/network.compose.toml`.
    pub network: String,
    /// `deploy/compose.sites.yaml`.
    pub sites: String,
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
        network: render_network(network, options),
        sites: render_sites_override(network, options),
    }
}

/// The compose service name of a site service: `inventory-la-vientiane`.
pub fn service_name(site: &SiteConfig, kind: ServiceKind) -> String {
    format!("{}-{}", kind.as_str(), site.id)
}

/// The network a site's services share: `site-la-vientiane`.
pub fn site_network(site: &SiteConfig) -> String {
    format!("site-{}", site.id)
}

/// The network connecting every site to the hub.
pub const BACKBONE: &str = "backbone";
/// The gateway's service name.
pub const GATEWAY: &str = "gateway";
/// The variable that moves the gateway's port on the host (compose interpolation only; not a
/// `COLDCHAIN_*` name, which the binary would reject as unknown configuration).
pub const PUBLISH_VAR: &str = "GATEWAY_HOST_PORT";

/// The variable that moves the secrets directory on the host (compose interpolation only,
/// like [`PUBLISH_VAR`]); `scripts/compose_e2e.sh` points it at fresh secrets of its own.
pub const SECRETS_VAR: &str = "SECRETS_DIR";
/// The uid (and gid) the image runs as: the secrets must be readable by it.
pub const IMAGE_UID: u32 = 10001;

/// The credential a container calls other services with; `None` for booking, which calls
/// nobody (a key it never sends is only one more secret to leak).
fn caller_credential(kind: ServiceKind) -> Option<String> {
    match kind {
        ServiceKind::Booking => None,
        ServiceKind::Inventory | ServiceKind::Telemetry | ServiceKind::Gateway => {
            Some(coldchain_credentials::service(kind))
        }
    }
}

/// The security settings of one container: `(variable, path in the container)`.
fn security_env(container: &str, kind: ServiceKind, options: &Options) -> Vec<(String, String)> {
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

struct Container<'a> {
    name: String,
    kind: ServiceKind,
    site: Option<&'a SiteConfig>,
    port: u16,
    command: Vec<String>,
    networks: Vec<String>,
    depends_on: Vec<String>,
    memory: &'a str,
    publish: bool,
}

fn containers<'a>(network: &'a NetworkConfig, options: &'a Options) -> Vec<Container<'a>> {
    let mut out = Vec::new();
    for site in &network.sites {
        // Dependencies first, so the file reads in startup order: booking, inventory, telemetry.
        for kind in [
            ServiceKind::Booking,
            ServiceKind::Inventory,
            ServiceKind::Telemetry,
        ] {
            out.push(Container {
                name: service_name(site, kind),
                kind,
                site: Some(site),
                port: site.port(kind).unwrap_or_default(),
                command: vec![
                    "serve".into(),
                    kind.as_str().into(),
                    "--site".into(),
                    site.id.clone(),
                ],
                networks: vec![BACKBONE.into(), site_network(site)],
                depends_on: dependencies(kind)
                    .iter()
                    .map(|dep| service_name(site, *dep))
                    .collect(),
                memory: &options.site_memory,
                publish: false,
            });
        }
    }
    out.push(Container {
        name: GATEWAY.into(),
        kind: ServiceKind::Gateway,
        site: None,
        port: network.gateway.port(),
        command: vec!["serve".into(), "gateway".into()],
        networks: vec![BACKBONE.into()],
        depends_on: network
            .sites
            .iter()
            .flat_map(|site| {
                ServiceKind::SITE_SERVICES
                    .into_iter()
                    .map(move |kind| service_name(site, kind))
            })
            .collect(),
        memory: &options.gateway_memory,
        publish: true,
    });
    out
}

fn volume_name(container: &str) -> String {
    format!("{container}-data")
}

fn header(out: &mut String, options: &Options, target: Target) {
    let _ = writeln!(
        out,
        "# Generated by `coldchain compose` from {}: do not edit; edit that file and run\n\
         # `cargo run --release -- compose` (a test fails when this file is stale).",
        options.source_name
    );
    let secrets = &options.secrets_in_container;
    match target {
        Target::Compose => {
            let _ = write!(
                out,
                "#\n\
                 # For `docker compose` and `docker-compose` (1.27+; no `version` key: the Compose Specification).\n\
                 #   deploy/docker/build-local.sh     # offline; or: docker build -f deploy/Dockerfile -t coldchain:latest .\n\
                 #   coldchain certs --out deploy/secrets/tls                    # once: a CA, a certificate per container\n\
                 #   coldchain credentials keyring --out deploy/secrets/keyring  # once: credentials, a key per role\n\
                 #   chown -R {IMAGE_UID}:{IMAGE_UID} deploy/secrets                         # the image's user reads them (keys stay 0600)\n\
                 #   docker-compose -f deploy/compose.yaml up -d\n\
                 #   docker run --rm --network coldchain_backbone -v \"$PWD/deploy/secrets:{secrets}:ro\" \\\n\
                 #     -e COLDCHAIN_KEYRING={secrets}/keyring -e COLDCHAIN_TLS_CA={secrets}/tls/ca.pem \\\n\
                 #     coldchain:latest demo --network {network}\n\
                 # Every server speaks TLS only and authenticates every call (API keys; health checks are open).\n\
                 # deploy/secrets ({SECRETS_VAR}=DIR names another) is mounted read-only at {secrets}; each\n\
                 # container reads its own certificate and key, the CA, the credentials file and, if it calls\n\
                 # other services, its service key. Mutual TLS: add COLDCHAIN_TLS_CLIENT_CA: \"{secrets}/tls/ca.pem\"\n\
                 # to every service's environment; clients then also need COLDCHAIN_TLS_CERT/_KEY (tls/client.pem/.key).\n\
                 # The project name is `coldchain` (deploy/.env). Only the gateway is published on the host, on\n\
                 # port 50051 (GATEWAY_HOST_PORT=60051 moves it); adding `-f deploy/compose.sites.yaml` also\n\
                 # publishes every site service on 127.0.0.1. For swarm use deploy/stack.yaml (the stack loader\n\
                 # refuses depends_on conditions).\n",
                network = options.network_file_in_image,
            );
        }
        Target::Stack => {
            let _ = write!(
                out,
                "#\n\
                 # For `docker stack deploy` (swarm). The same services as deploy/compose.yaml, without\n\
                 # depends_on/restart/build (swarm does not support them) and with deploy.restart_policy and\n\
                 # placement: each site's tasks run on the node labelled for that site, where its volumes live.\n\
                 #   docker node update --label-add coldchain.hub=true --label-add coldchain.site.<id>=true NODE\n\
                 #   docker stack deploy --resolve-image never -c deploy/stack.yaml coldchain\n\
                 # The same TLS, credentials and secrets directory as deploy/compose.yaml (see there how to make\n\
                 # it): the docker CLI resolves ./secrets against deploy/ ({SECRETS_VAR}=DIR names another), and\n\
                 # every node that runs a task needs the directory at that path, owned by {IMAGE_UID}:{IMAGE_UID}.\n",
            );
        }
    }
}

fn render_yaml(network: &NetworkConfig, options: &Options, target: Target) -> String {
    let mut out = String::new();
    header(&mut out, options, target);
    let all = containers(network, options);
    out.push_str("\nservices:\n");
    let mut previous_site = None;
    for c in &all {
        let site = c.site.map(|s| s.id.as_str());
        if site != previous_site {
            match c.site {
                Some(s) => {
                    let about = format!("{}, {} ({})", s.name, s.location, s.reached_by);
                    let about = about.replace(|c: char| c.is_control(), " ");
                    let _ = writeln!(out, "\n  # {}: {about}", s.id);
                }
                None => out.push_str(
                    "\n  # The gateway at the hub: the only port published on the host.\n",
                ),
            }
            previous_site = site;
        }
        render_service(&mut out, c, options, target);
    }

    out.push_str("\nnetworks:\n");
    let _ = writeln!(out, "  {BACKBONE}:");
    render_network_driver(&mut out, target, "the WAN: every site and the hub");
    for site in &network.sites {
        let _ = writeln!(out, "  {}:", site_network(site));
        render_network_driver(&mut out, target, &format!("the LAN of {}", site.id));
    }

    out.push_str("\nvolumes:\n");
    for c in &all {
        let _ = writeln!(out, "  {}:", volume_name(&c.name));
        out.push_str("    labels:\n");
        let _ = writeln!(
            out,
            "      coldchain.site: {}",
            q(c.site.map_or("hub", |s| s.id.as_str()))
        );
        let _ = writeln!(out, "      coldchain.service: {}", q(c.kind.as_str()));
    }
    out
}

fn render_network_driver(out: &mut String, target: Target, what: &str) {
    match target {
        Target::Compose => out.push_str("    driver: bridge\n"),
        Target::Stack => out.push_str("    driver: overlay\n    attachable: true\n"),
    }
    out.push_str("    labels:\n");
    let _ = writeln!(out, "      coldchain.network: {}", q(what));
}

fn render_service(out: &mut String, c: &Container<'_>, options: &Options, target: Target) {
    let _ = writeln!(out, "  {}:", c.name);
    let _ = writeln!(out, "    image: {}", q(&options.image));
    if target == Target::Compose {
        out.push_str("    build:\n");
        let _ = writeln!(out, "      context: {}", q(&options.build_context));
        let _ = writeln!(out, "      dockerfile: {}", q(&options.dockerfile));
    }
    let command: Vec<&str> = c.command.iter().map(String::as_str).collect();
    let _ = writeln!(out, "    command: {}", flow(&command));
    out.push_str("    environment:\n");
    let env = [
        ("COLDCHAIN_DATA_DIR", "/data"),
        (
            "COLDCHAIN_NETWORK_FILE",
            options.network_file_in_image.as_str(),
        ),
        ("COLDCHAIN_LISTEN_HOST", "0.0.0.0"),
        ("COLDCHAIN_LOG_FORMAT", "json"),
        ("COLDCHAIN_LOG_LEVEL", "${COLDCHAIN_LOG_LEVEL:-info}"),
        ("COLDCHAIN_RPC_TIMEOUT", "10s"),
        ("COLDCHAIN_SHUTDOWN_GRACE", "5s"),
        ("COLDCHAIN_SLED_CACHE_BYTES", options.sled_cache.as_str()),
        ("COLDCHAIN_METRICS_LISTEN", "0.0.0.0:9464"),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "${OTEL_EXPORTER_OTLP_ENDPOINT:-}",
        ),
    ];
    for (name, value) in env {
        let _ = writeln!(out, "      {name}: {}", q(value));
    }
    for (name, value) in security_env(&c.name, c.kind, options) {
        let _ = writeln!(out, "      {name}: {}", q(&value));
    }
    out.push_str("    volumes:\n");
    let _ = writeln!(out, "      - {}:/data", volume_name(&c.name));
    let _ = writeln!(
        out,
        "      - {}",
        q(&format!(
            "${{{SECRETS_VAR}:-{}}}:{}:ro",
            options.secrets_on_host, options.secrets_in_container
        ))
    );
    out.push_str("    networks:\n");
    for network in &c.networks {
        let _ = writeln!(out, "      - {network}");
    }
    if c.publish {
        out.push_str("    ports:\n");
        // The host port can be moved without editing the file: GATEWAY_HOST_PORT=60051.
        let published = format!("${{{PUBLISH_VAR}:-{}}}", c.port);
        match target {
            Target::Compose => {
                let _ = writeln!(out, "      - {}", q(&format!("{published}:{}", c.port)));
            }
            // Published on the node that runs the gateway (host mode): the routing mesh needs
            // a VIP, which dnsrr services do not have (see endpoint_mode below).
            Target::Stack => {
                let _ = writeln!(
                    out,
                    "      - target: {}\n        published: {}\n        protocol: tcp\n        mode: host",
                    c.port,
                    q(&published)
                );
            }
        }
    }
    let probe = format!("127.0.0.1:{}", c.port);
    out.push_str("    healthcheck:\n");
    let _ = writeln!(
        out,
        "      test: {}",
        flow(&["CMD", "coldchain", "healthcheck", &probe])
    );
    out.push_str(
        "      interval: 5s\n      timeout: 3s\n      retries: 3\n      start_period: 30s\n",
    );
    if target == Target::Compose {
        if !c.depends_on.is_empty() {
            out.push_str("    depends_on:\n");
            for dep in &c.depends_on {
                let _ = writeln!(out, "      {dep}:\n        condition: service_healthy");
            }
        }
        out.push_str("    restart: unless-stopped\n");
    }
    out.push_str("    stop_grace_period: 15s\n");
    out.push_str("    read_only: true\n");
    out.push_str("    cap_drop: [\"ALL\"]\n");
    out.push_str("    labels:\n");
    let _ = writeln!(
        out,
        "      coldchain.site: {}",
        q(c.site.map_or("hub", |s| s.id.as_str()))
    );
    let _ = writeln!(out, "      coldchain.service: {}", q(c.kind.as_str()));
    out.push_str("    logging:\n      driver: json-file\n      options:\n");
    out.push_str("        max-size: \"10m\"\n        max-file: \"5\"\n");
    out.push_str("    deploy:\n");
    if target == Target::Stack {
        out.push_str("      replicas: 1\n");
        // Clients reach the one task by DNS, not through an IPVS virtual IP: stateful
        // singletons gain nothing from a VIP, and kernels without ip_vs (seen here) cannot
        // route to one at all. tonic re-resolves the name on every reconnect.
        out.push_str("      endpoint_mode: dnsrr\n");
        out.push_str("      restart_policy:\n        condition: any\n        delay: 2s\n");
        out.push_str("      update_config:\n        order: stop-first\n");
        out.push_str("      placement:\n        constraints:\n");
        let constraint = match c.site {
            Some(site) => format!("node.labels.coldchain.site.{} == true", site.id),
            None => "node.labels.coldchain.hub == true".to_owned(),
        };
        let _ = writeln!(out, "          - {}", q(&constraint));
    }
    out.push_str("      resources:\n        limits:\n");
    let _ = writeln!(out, "          memory: {}", c.memory);
}

/// The variable that moves the host address the site override publishes on.
pub const SITE_HOST_VAR: &str = "SITE_HOST_IP";

/// `deploy/compose.sites.yaml`: every site service published on the host's loopback at its
/// port from the network file, so that host-local clients (a warehouse system, `coldchain
/// demo`, the ops commands) use the plain `deploy/network.toml` as against `coldchain dev`.
fn render_sites_override(network: &NetworkConfig, options: &Options) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Generated by `coldchain compose` from {}: do not edit.\n\
         #\n\
         # Optional: publishes every site service on the host, at its port from the network file,\n\
         # on 127.0.0.1 ({SITE_HOST_VAR}=0.0.0.0 opens them to the network), for clients on the host:\n\
         #   docker-compose -f deploy/compose.yaml -f deploy/compose.sites.yaml up -d\n\
         #   cargo run --release -- demo        # reads deploy/network.toml: 127.0.0.1 endpoints\n\
         # Without it only the gateway is published; `coldchain demo` then runs inside the network:\n\
         #   docker run --rm --network coldchain_backbone coldchain:latest demo --network {}\n",
        options.source_name, options.network_file_in_image
    );
    out.push_str("services:\n");
    for site in &network.sites {
        for kind in [
            ServiceKind::Booking,
            ServiceKind::Inventory,
            ServiceKind::Telemetry,
        ] {
            let port = site.port(kind).unwrap_or_default();
            let _ = writeln!(out, "  {}:", service_name(site, kind));
            out.push_str("    ports:\n");
            let _ = writeln!(
                out,
                "      - {}",
                q(&format!("${{{SITE_HOST_VAR}:-127.0.0.1}}:{port}:{port}"))
            );
        }
    }
    out
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML float that reads back as the same f64.
fn toml_float(value: f64) -> String {
    let text = format!("{value:?}");
    if text.contains(['.', 'e', 'E']) {
        text
    } else {
        format!("{text}.0")
    }
}

fn render_network(network: &NetworkConfig, options: &Options) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Generated by `coldchain compose` from {}: do not edit; edit that file and run\n\
         # `cargo run --release -- compose`.\n\
         #\n\
         # The network file of the containers (COLDCHAIN_NETWORK_FILE={}): the same sites,\n\
         # zones and ports, with every endpoint at its container name.\n",
        options.source_name, options.network_file_in_image
    );
    out.push_str("[gateway]\n");
    let _ = writeln!(
        out,
        "listen = {}",
        toml_string(&network.gateway.listen.to_string())
    );
    let _ = writeln!(
        out,
        "endpoint = {}",
        toml_string(&format!("http://{GATEWAY}:{}", network.gateway.port()))
    );
    for site in &network.sites {
        out.push_str("\n[[site]]\n");
        let _ = writeln!(out, "id = {}", toml_string(&site.id));
        let _ = writeln!(out, "name = {}", toml_string(&site.name));
        let _ = writeln!(out, "location = {}", toml_string(&site.location));
        let _ = writeln!(out, "reached_by = {}", toml_string(&site.reached_by));
        let _ = writeln!(out, "time_zone = {}", toml_string(site.time_zone.name()));
        out.push_str("\n[site.ports]\n");
        for kind in ServiceKind::SITE_SERVICES {
            let _ = writeln!(
                out,
                "{} = {}",
                kind.as_str(),
                site.port(kind).unwrap_or_default()
            );
        }
        out.push_str("\n[site.endpoints]\n");
        for kind in ServiceKind::SITE_SERVICES {
            let endpoint = format!(
                "http://{}:{}",
                service_name(site, kind),
                site.port(kind).unwrap_or_default()
            );
            let _ = writeln!(out, "{} = {}", kind.as_str(), toml_string(&endpoint));
        }
        for zone in &site.zones {
            out.push_str("\n[[site.zone]]\n");
            let _ = writeln!(out, "id = {}", toml_string(&zone.id));
            let _ = writeln!(out, "class = {}", toml_string(zone.class.as_str()));
            let _ = writeln!(out, "min_celsius = {}", toml_float(zone.min_celsius));
            let _ = writeln!(out, "max_celsius = {}", toml_float(zone.max_celsius));
            let _ = writeln!(out, "capacity_pallets = {}", zone.capacity_pallets);
        }
    }
    out
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

fn files<'a>(args: &'a ComposeArgs, generated: &'a Generated) -> [(&'a Path, &'a str); 4] {
    [
        (args.output.as_path(), generated.compose.as_str()),
        (args.stack_output.as_path(), generated.stack.as_str()),
        (args.network_output.as_path(), generated.network.as_str()),
        (args.sites_output.as_path(), generated.sites.as_str()),
    ]
}

pub async fn run(args: ComposeArgs) -> ExitCode {
    let network = match NetworkConfig::load(&args.network) {
        Ok(network) => network,
        Err(errors) => {
            eprintln!("coldchain: {errors}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let options = Options {
        source_name: args.network.display().to_string(),
        ..Options::default()
    };
    let generated = generate(&network, &options);
    let prometheus =
        prometheus::Generated::new(&network, &args.prometheus_dir, &options.source_name);
    let mut all = files(&args, &generated).to_vec();
    all.extend(prometheus.files());
    let containers = network.sites.len() * ServiceKind::SITE_SERVICES.len() + 1;

    if args.check {
        let mut stale = 0;
        for &(path, expected) in &all {
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
        if stale > 0 {
            eprintln!(
                "coldchain: {stale} generated file(s) are stale; run `coldchain compose --network {}` and commit the result",
                args.network.display()
            );
            return ExitCode::from(EXIT_DIFFERS);
        }
        return ExitCode::SUCCESS;
    }

    for &(path, text) in &all {
        if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
            say!("{}: unchanged", path.display());
            continue;
        }
        let _ = path.parent().map(std::fs::create_dir_all);
        if let Err(error) = std::fs::write(path, text) {
            eprintln!("coldchain: cannot write {}: {error}", path.display());
            return ExitCode::from(EXIT_DIFFERS);
        }
        say!("{}: written", path.display());
    }
    say!(
        "{containers} containers ({} sites x 3 services + the gateway), gateway published on port {}",
        network.sites.len(),
        network.gateway.port()
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ] {
            let actual = std::fs::read_to_string(repo_file(path)).ok();
            if let Some(summary) = difference(expected, actual.as_deref()) {
                panic!(
                    "{path} is stale: {summary}\nrun `cargo run -p coldchain -- compose` and commit the result"
                );
            }
        }
    }

    #[test]
    fn container_network_file_has_the_same_sites_with_container_endpoints() {
        let (network, generated) = shipped();
        let inside = NetworkConfig::parse(&generated.network).unwrap();
        assert_eq!(inside.sites.len(), network.sites.len());
        assert_eq!(inside.gateway.listen, network.gateway.listen);
        assert_eq!(inside.gateway_endpoint(), "http://gateway:50051");
        for (a, b) in network.sites.iter().zip(&inside.sites) {
            assert_eq!(a.id, b.id);
            assert_eq!(a.name, b.name);
            assert_eq!(a.location, b.location);
            assert_eq!(a.reached_by, b.reached_by);
            assert_eq!(a.time_zone, b.time_zone);
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

    #[test]
    fn compose_file_shape() {
        let (network, generated) = shipped();
        let yaml = &generated.compose;
        let services = yaml
            .lines()
            .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.ends_with(':'));
        // 25 services, then 9 networks and 25 volumes at the same indentation.
        assert_eq!(services.count(), 25 + 9 + 25);
        assert_eq!(yaml.matches("    healthcheck:\n").count(), 25);
        assert_eq!(yaml.matches("    restart: unless-stopped\n").count(), 25);
        assert_eq!(yaml.matches("          memory: ").count(), 25);
        assert_eq!(
            yaml.matches("    ports:\n").count(),
            1,
            "only the gateway is published"
        );
        assert!(yaml.contains("      - \"${GATEWAY_HOST_PORT:-50051}:50051\"\n"));
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
        for yaml in [&generated.compose, &generated.stack] {
            assert_eq!(
                yaml.matches("      - \"${SECRETS_DIR:-./secrets}:/etc/coldchain/secrets:ro\"\n")
                    .count(),
                25
            );
            assert_eq!(
                yaml.matches("      COLDCHAIN_AUTH_FILE: \"/etc/coldchain/secrets/keyring/credentials.toml\"\n")
                    .count(),
                25
            );
            assert_eq!(
                yaml.matches("      COLDCHAIN_TLS_CA: \"/etc/coldchain/secrets/tls/ca.pem\"\n")
                    .count(),
                25
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
        }
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
        assert_eq!(yaml.matches("      restart_policy:\n").count(), 25);
        assert_eq!(yaml.matches("node.labels.coldchain.site.").count(), 24);
        assert_eq!(yaml.matches("node.labels.coldchain.hub == true").count(), 1);
        assert_eq!(yaml.matches("    driver: overlay\n").count(), 9);
        assert_eq!(yaml.matches("    healthcheck:\n").count(), 25);
        assert_eq!(yaml.matches("      endpoint_mode: dnsrr\n").count(), 25);
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
