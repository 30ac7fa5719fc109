//! TLS for the https:// and wss:// listeners: rustls with a certificate chain and key read
//! from PEM files, ALPN `h2` and `http/1.1`, reloadable without a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::files::ReadError;

/// Where the certificate chain and private key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read: missing, unreadable, not a regular file, too large.
    #[error("{0}")]
    Read(ReadError),
    /// A file was read but holds nothing usable.
    #[error("{path}: {reason}")]
    Content {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the pair.
    #[error("certificate {cert} and key {key} do not make a usable pair: {reason}")]
    Pair {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
        /// rustls' reason.
        reason: String,
    },
}

impl TlsError {
    /// sysexits code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            TlsError::Read(e) => e.exit_code(),
            _ => crate::exit::CONFIG,
        }
    }
}

/// A PEM file, as [`crate::files::read`] reads it: a regular file of at most 1 MiB, never
/// blocking (this runs on the thread that handles SIGHUP).
fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    crate::files::read(path, crate::files::PEM).map_err(TlsError::Read)
}

/// Build a rustls server configuration from the files.
pub fn load_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let cert_pem = read(&files.cert)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Content {
            path: files.cert.clone(),
            reason: format!("not a PEM certificate chain: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Content {
            path: files.cert.clone(),
            reason: "no `-----BEGIN CERTIFICATE-----` block found".into(),
        });
    }
    let key_pem = read(&files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Content {
        path: files.key.clone(),
        reason: format!("no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Pair {
            cert: files.cert.clone(),
            key: files.key.clone(),
            reason: e.to_string(),
        })?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Pair {
            cert: files.cert.clone(),
            key: files.key.clone(),
            reason: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The current TLS configuration of the server, swappable at run time.
pub(crate) struct TlsReloader {
    files: TlsFiles,
    current: ArcSwap<ServerConfig>,
}

impl TlsReloader {
    pub(crate) fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let config = load_config(&files)?;
        Ok(TlsReloader {
            files,
            current: ArcSwap::from_pointee(config),
        })
    }

    /// Re-read the files; on error keep the configuration in use.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let config = load_config(&self.files)?;
        self.current.store(Arc::new(config));
        tracing::info!(target: "webntpd::server", "TLS certificate reloaded from {}", self.files.cert.display());
        Ok(())
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.load_full())
    }
}
