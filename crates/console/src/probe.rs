//! `coldchain healthcheck --http`: whether a console answers, for container health checks
//! (the image has no curl). It asks `GET /healthz` over HTTP, or over HTTPS trusting the
//! configured CA, and wants `200`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// The path a probe asks for.
pub const HEALTH_PATH: &str = "/healthz";

/// The most of an answer a probe reads: its status line is all it needs.
const MAX_ANSWER: usize = 4096;

/// Where to probe, as given: `host:port`, `http://host:port` or `https://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// True for HTTPS.
    pub tls: bool,
    /// `host:port`.
    pub authority: String,
    /// The host alone (the name the certificate must carry).
    pub host: String,
}

impl Target {
    /// Parses `given`; without a scheme, `tls_default` decides.
    pub fn parse(given: &str, tls_default: bool) -> Result<Target, String> {
        let (tls, rest) = match given.split_once("://") {
            Some(("http", rest)) => (false, rest),
            Some(("https", rest)) => (true, rest),
            Some((scheme, _)) => {
                return Err(format!(
                    "{given}: the scheme must be http or https, not {scheme:?}"
                ));
            }
            None => (tls_default, given),
        };
        let authority = rest.trim_end_matches('/');
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => host,
            _ => return Err(format!("{given}: expected host:port, e.g. 127.0.0.1:8080")),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok(Target {
            tls,
            authority: authority.to_owned(),
            host: host.to_owned(),
        })
    }

    /// As people would open it.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.authority)
    }
}

/// Asks `target` for [`HEALTH_PATH`] within `timeout`; HTTPS trusts the CA in `ca` (PEM).
/// `Ok` when it answers `200`, else what went wrong.
pub async fn probe(target: &Target, ca: Option<&Path>, timeout: Duration) -> Result<(), String> {
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect(&target.authority)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        if !target.tls {
            return ask(tcp, target).await;
        }
        let ca = ca.ok_or("https needs the CA that signed the console's certificate (tls_ca)")?;
        let connector = connector(ca)?;
        let name = ServerName::try_from(target.host.clone())
            .map_err(|e| format!("{}: not a server name: {e}", target.host))?;
        let stream = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("tls: {e}"))?;
        ask(stream, target).await
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

fn connector(ca: &Path) -> Result<TlsConnector, String> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls_ca {}: {e}", ca.display()))?;
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("tls_ca {}: {e}", ca.display()))?;
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

async fn ask<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    target: &Target,
) -> Result<(), String> {
    let request = format!(
        "GET {HEALTH_PATH} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        target.authority
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("cannot send: {e}"))?;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 512];
    while !answer.contains(&b'\n') && answer.len() < MAX_ANSWER {
        let read = stream
            .read(&mut buffer)
            .await
            .map_err(|e| format!("cannot read the answer: {e}"))?;
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..read]);
    }
    status(&answer)
}

/// `Ok` when the answer's status line says 200.
fn status(answer: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(answer);
    let line = text.lines().next().unwrap_or_default();
    match line.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        Some(code) if line.starts_with("HTTP/") => Err(format!("answered {code}: {line}")),
        _ if line.is_empty() => Err("closed without an answer".to_owned()),
        _ => Err(format!("not an HTTP answer: {line:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("127.0.0.1:8080", true).unwrap();
        assert_eq!(
            (t.tls, t.host.as_str(), t.url().as_str()),
            (true, "127.0.0.1", "https://127.0.0.1:8080")
        );
        let t = Target::parse("http://console:8080/", true).unwrap();
        assert_eq!(
            (t.tls, t.authority.as_str(), t.host.as_str()),
            (false, "console:8080", "console")
        );
        assert!(Target::parse("https://[::1]:8080", false).unwrap().tls);
        assert_eq!(
            Target::parse("https://[::1]:8080", false).unwrap().host,
            "::1"
        );
        for bad in [
            "console",
            "ftp://console:21",
            ":8080",
            "console:http",
            "console:70000",
        ] {
            assert!(Target::parse(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_200_is_healthy() {
        assert!(status(b"HTTP/1.1 200 OK\r\n").is_ok());
        assert!(
            status(b"HTTP/1.1 503 Service Unavailable\r\n")
                .unwrap_err()
                .starts_with("answered 503")
        );
        assert_eq!(status(b"").unwrap_err(), "closed without an answer");
        assert!(
            status(b"\x16\x03\x01garbage")
                .unwrap_err()
                .starts_with("not an HTTP answer")
        );
    }

    /// Against a real console over plain HTTP: 200 from `/healthz`; a closed port fails.
    #[tokio::test]
    async fn probes_a_console() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = axum::Router::new().route(HEALTH_PATH, axum::routing::get(crate::healthz));
        tokio::spawn(async move { axum::serve(listener, router).await });
        let target = Target::parse(&addr.to_string(), false).unwrap();
        probe(&target, None, Duration::from_secs(5)).await.unwrap();
        let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed = other.local_addr().unwrap();
        drop(other);
        let target = Target::parse(&closed.to_string(), false).unwrap();
        let problem = probe(&target, None, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(problem.starts_with("cannot connect"), "{problem}");
        let https = Target::parse(&addr.to_string(), true).unwrap();
        assert!(
            probe(&https, None, Duration::from_secs(5))
                .await
                .unwrap_err()
                .contains("tls_ca")
        );
    }
}
