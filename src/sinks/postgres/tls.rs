//! TLS to PostgreSQL (`sslmode=require` in the URL): rustls with the ring provider, the
//! certificate always verified, against Mozilla's roots (`webpki-roots`) and, for a private CA
//! such as a cloud provider's, the certificates in `ca_file`.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tokio_postgres_rustls::MakeRustlsConnect;

#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsSetupError {
    #[error("cannot read CA certificates from `{path}`: {source}")]
    CaFile {
        path: String,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("`{path}` holds no usable CA certificate")]
    NoCertificate { path: String },
    #[error("cannot set up TLS: {0}")]
    Config(#[from] rustls::Error),
}

/// The connector for `sslmode=require`.
pub(super) fn connector(ca_file: Option<&Path>) -> Result<MakeRustlsConnect, TlsSetupError> {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = ca_file {
        let display = path.display().to_string();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect())
            .map_err(|source| TlsSetupError::CaFile { path: display.clone(), source })?;
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(TlsSetupError::NoCertificate { path: display });
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}
