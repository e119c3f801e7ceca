//! TLS with rustls (ring provider): TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1 offered by ALPN.
//! Certificates are read from PEM files at start and again on SIGHUP, so a renewed certificate
//! is served to new connections without dropping the open ones.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("failed to read the certificate chain from `{path}`")]
    Certificate {
        path: String,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("failed to read the private key from `{path}`")]
    Key {
        path: String,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("the certificate and key from `{cert}` and `{key}` do not make a TLS configuration")]
    Config {
        cert: String,
        key: String,
        #[source]
        source: rustls::Error,
    },
}

/// The certificate and key files of `[server.tls]`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Reads both files into a server configuration.
    pub fn load(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let display = |path: &Path| path.display().to_string();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|certs| certs.collect())
            .map_err(|source| TlsError::Certificate { path: display(&self.cert), source })?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|source| TlsError::Key { path: display(&self.key), source })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key))
            .map_err(|source| TlsError::Config {
                cert: display(&self.cert),
                key: display(&self.key),
                source,
            })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Reloads the files into `live` on every SIGHUP; a failed reload keeps the old certificate.
    pub fn reload_on_sighup(self, live: RustlsConfig) -> std::io::Result<()> {
        let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match self.load() {
                    Ok(config) => {
                        live.reload_from_config(config);
                        tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                    }
                    Err(err) => tracing::error!(
                        error = %err,
                        "TLS reload failed; still serving the previous certificate"
                    ),
                }
            }
        });
        Ok(())
    }
}
