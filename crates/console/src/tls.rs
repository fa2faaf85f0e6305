//! HTTPS for the console when the process has a certificate (`tls_cert`, `tls_key`), as
//! every other server of the network: rustls with the ring provider, as tonic uses.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use coldchain_runtime::Shutdown;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS side of the console's listener.
pub struct Acceptor(TlsAcceptor);

impl Acceptor {
    /// Reads a PEM certificate chain and key.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, String> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("console tls_cert {}: {e}", cert.display()))?;
        let private = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| format!("console tls_key {}: {e}", key.display()))?;
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("console tls: {e}"))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| format!("console tls: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self(TlsAcceptor::from(Arc::new(config))))
    }
}

/// Accepts HTTPS connections until `shutdown`, each served on its own task.
pub async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: Acceptor,
    router: Router,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut stop => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // A connection that failed before it was accepted harms no other.
                Err(_) => continue,
            },
        };
        let acceptor = acceptor.0.clone();
        // The client's address reaches the handlers, as axum's connect info does over HTTP.
        let router = router
            .clone()
            .layer(axum::Extension(axum::extract::ConnectInfo(peer)));
        let service = TowerToHyperService::new(router);
        tokio::spawn(async move {
            let Ok(Ok(tls)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
            else {
                return;
            };
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades()
                .await;
        });
    }
}
