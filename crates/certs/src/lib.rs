#![forbid(unsafe_code)]
//! `coldchain certs`: a local certificate authority and a certificate per service instance,
//! for compose and for trying TLS out. Production deployments bring certificates from their
//! own CA; the servers only read PEM files named in the config.
//!
//! Output (`--out DIR`):
//! - `ca.pem` (trust this) and `ca.key` (keep it away from the servers; it is only needed to
//!   issue more certificates);
//! - `<service>-<site>.pem` / `.key` for every site service and `gateway.pem` / `.key`, each
//!   valid for its compose host name (also its Kubernetes Service name), that name in the
//!   Kubernetes namespace (`--namespace`, default `coldchain`: `<name>.<ns>`, `<name>.<ns>.svc`,
//!   `<name>.<ns>.svc.cluster.local`, for clients in other namespaces), `localhost` and
//!   `127.0.0.1`, usable as server and as client certificate (mutual TLS between services);
//! - `client.pem` / `.key`: a client certificate for tools (the CLI, the tests) under mutual TLS.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::Datelike;
use clap::Args;
use coldchain_command::say;
use coldchain_credentials::write_private;
use coldchain_runtime::network::NetworkConfig;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// How long issued certificates are valid, in years.
const VALID_YEARS: i32 = 2;

#[derive(Args)]
pub struct CertsArgs {
    /// The directory to write into (created if missing).
    #[arg(long, default_value = "deploy/secrets/tls")]
    out: PathBuf,
    /// The network file: one certificate per service instance.
    #[arg(long, default_value = coldchain_command::DEFAULT_NETWORK)]
    network: PathBuf,
    /// Replace an existing CA and certificates (otherwise an existing CA is an error).
    #[arg(long)]
    force: bool,
    /// The Kubernetes namespace the network runs in (deploy/k8s): certificates also name
    /// `<name>.<namespace>.svc` and its variants.
    #[arg(long, default_value = coldchain_deploy::k8s::NAMESPACE)]
    namespace: String,
}

pub fn run(args: CertsArgs) -> ExitCode {
    match make(&args) {
        Ok(count) => {
            say!(
                "wrote a CA and {count} certificates to {}; clients trust {}",
                args.out.display(),
                args.out.join("ca.pem").display()
            );
            ExitCode::SUCCESS
        }
        Err(problem) => {
            eprintln!("coldchain: certs: {problem}");
            ExitCode::from(coldchain_command::EXIT_CONFIG)
        }
    }
}

/// The host names a service instance is reached by: its compose name (the same as its
/// Kubernetes Service name, which clients in its namespace use), the Service's names for
/// clients in other namespaces of `namespace`, and the loopback names.
pub fn names(host: &str, namespace: &str) -> Vec<String> {
    vec![
        host.to_owned(),
        format!("{host}.{namespace}"),
        format!("{host}.{namespace}.svc"),
        format!("{host}.{namespace}.svc.cluster.local"),
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
    ]
}

fn make(args: &CertsArgs) -> Result<usize, String> {
    let network = NetworkConfig::load(&args.network).map_err(|e| e.to_string())?;
    if !coldchain_deploy::k8s::is_dns_label(&args.namespace) {
        return Err(format!(
            "--namespace {:?}: a Kubernetes namespace is a DNS label (a-z, 0-9, '-', at most 63)",
            args.namespace
        ));
    }
    if args.out.join("ca.pem").exists() && !args.force {
        return Err(format!(
            "{} already holds a CA: pass --force to replace it (every certificate it signed \
             must then be replaced too)",
            args.out.display()
        ));
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let ca = Authority::new()?;
    write_public(&args.out.join("ca.pem"), &ca.cert_pem)?;
    write_private(&args.out.join("ca.key"), &ca.key.serialize_pem())?;

    let hosts = coldchain_deploy::container_names(&network);
    for host in &hosts {
        let (cert, key) = ca.issue(host, &names(host, &args.namespace))?;
        write_public(&args.out.join(format!("{host}.pem")), &cert)?;
        write_private(&args.out.join(format!("{host}.key")), &key)?;
    }
    let (cert, key) = ca.issue("client", &names("client", &args.namespace))?;
    write_public(&args.out.join("client.pem"), &cert)?;
    write_private(&args.out.join("client.key"), &key)?;
    Ok(hosts.len() + 1)
}

fn write_public(path: &Path, contents: &str) -> Result<(), String> {
    std::fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A certificate authority held in memory while it issues.
pub struct Authority {
    /// The CA certificate, PEM.
    pub cert_pem: String,
    key: KeyPair,
    params: CertificateParams,
}

impl Authority {
    /// A fresh self-signed CA.
    pub fn new() -> Result<Authority, String> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(text)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params
            .distinguished_name
            .push(DnType::CommonName, "coldchain local CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params);
        let key = KeyPair::generate().map_err(text)?;
        let cert = params.self_signed(&key).map_err(text)?;
        Ok(Authority {
            cert_pem: cert.pem(),
            key,
            params,
        })
    }

    /// A certificate for `common_name`, valid for `names` (DNS names or IP addresses), for
    /// both server and client authentication: `(certificate PEM, key PEM)`.
    pub fn issue(&self, common_name: &str, names: &[String]) -> Result<(String, String), String> {
        let mut params = CertificateParams::new(names.to_vec()).map_err(text)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        validity(&mut params);
        let key = KeyPair::generate().map_err(text)?;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).map_err(text)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// From the start of this month (clock skew between hosts) for [`VALID_YEARS`].
fn validity(params: &mut CertificateParams) {
    let today = chrono::Utc::now().date_naive();
    params.not_before = rcgen::date_time_ymd(today.year(), today.month() as u8, 1);
    params.not_after = rcgen::date_time_ymd(today.year() + VALID_YEARS, today.month() as u8, 1);
}

fn text(error: rcgen::Error) -> String {
    error.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate names the compose host (also the Kubernetes Service, for clients in its
    /// namespace) and the Service's names for clients in other namespaces.
    #[test]
    fn names_cover_compose_and_kubernetes() {
        assert_eq!(
            names("inventory-la-vientiane", "coldchain"),
            [
                "inventory-la-vientiane",
                "inventory-la-vientiane.coldchain",
                "inventory-la-vientiane.coldchain.svc",
                "inventory-la-vientiane.coldchain.svc.cluster.local",
                "localhost",
                "127.0.0.1",
            ]
        );
    }
}
