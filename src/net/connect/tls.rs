//! TLS: rustls with the operating system's roots plus any extra CA, verification always on.

use super::*;

// ---------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------

/// The system trust store, loaded once: loading it can take a noticeable time. A failure to
/// load it is remembered until the process restarts.
pub(super) struct NativeRoots {
    pub(super) store: RootCertStore,
    /// Why the store is empty or incomplete, if it is.
    pub(super) problem: Option<String>,
}

pub(super) fn native_roots() -> &'static NativeRoots {
    static NATIVE_ROOTS: OnceLock<NativeRoots> = OnceLock::new();
    NATIVE_ROOTS.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        let mut store = RootCertStore::empty();
        let (added, ignored) = store.add_parsable_certificates(loaded.certs);
        let problem = if loaded.errors.is_empty() {
            None
        } else {
            Some(
                loaded
                    .errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        };
        if let Some(problem) = &problem {
            if added > 0 {
                tracing::warn!(
                    added,
                    "parts of the system trust store could not be loaded: {problem}"
                );
            }
        }
        if ignored > 0 {
            tracing::debug!(
                ignored,
                "ignored unparsable certificates in the system trust store"
            );
        }
        tracing::debug!(added, "loaded the system trust store");
        NativeRoots { store, problem }
    })
}

/// Builds a TLS client configuration: the system trust store plus
/// [`ConnectOptions::extra_roots`], safe default protocol versions (TLS 1.2 and 1.3), the
/// given ALPN protocols. Callers that reconnect often may build it once and use
/// [`tls_handshake_with_config`] (which also lets TLS sessions be resumed).
pub fn tls_config(
    opts: &ConnectOptions,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ClientConfig>, ConnectError> {
    build_tls_config(native_roots(), &opts.extra_roots, alpn)
}

pub(super) fn build_tls_config(
    native: &NativeRoots,
    extra_roots: &[CertificateDer<'static>],
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ClientConfig>, ConnectError> {
    let mut roots = native.store.clone();
    for (i, cert) in extra_roots.iter().enumerate() {
        roots
            .add(cert.clone())
            .map_err(|e| ConnectError::TlsConfig {
                reason: format!("extra CA certificate #{} is not usable: {e}", i + 1),
            })?;
    }
    if roots.is_empty() {
        return Err(ConnectError::TlsConfig {
            reason: format!(
                "no trusted CA certificates: the system trust store {}; install the \
                 ca-certificates package or point SSL_CERT_FILE at a PEM bundle",
                match &native.problem {
                    Some(p) => format!("could not be loaded ({p})"),
                    None => "is empty".to_owned(),
                }
            ),
        });
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::TlsConfig {
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Reads CA certificates from a PEM file, for [`ConnectOptions::extra_roots`]: a regular file
/// of at most [`crate::files::PEM`] (1 MiB), read as [`crate::files::read`] reads, so a FIFO
/// or a device is refused rather than waited on. Blocking, bounded: call it while loading the
/// configuration.
pub fn load_pem_roots(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConnectError> {
    let pem = crate::files::read(path, crate::files::PEM).map_err(|e| ConnectError::TlsConfig {
        reason: e.to_string(),
    })?;
    let error = |reason: String| ConnectError::TlsConfig {
        reason: format!("CA file {}: {reason}", path.display()),
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))?;
    if certs.is_empty() {
        return Err(error(
            "contains no PEM certificates (-----BEGIN CERTIFICATE-----)".to_owned(),
        ));
    }
    Ok(certs)
}

/// Runs a TLS handshake for `target` over `stream` (a raw or wrapped TCP stream, possibly a
/// proxy tunnel), with a configuration from [`tls_config`] and bounded by
/// [`ConnectOptions::tls_timeout`].
pub async fn tls_handshake<S>(
    stream: S,
    target: &Target,
    opts: &ConnectOptions,
    alpn: &[&[u8]],
) -> Result<tokio_rustls::client::TlsStream<S>, ConnectError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = tls_config(opts, alpn)?;
    tls_handshake_with_config(stream, target, config, opts.tls_timeout).await
}

/// [`tls_handshake`] with a prepared configuration. The server name (SNI) is the target's
/// host; an IP address is sent no SNI and is checked against the certificate's IP addresses.
/// Certificates are always verified.
pub async fn tls_handshake_with_config<S>(
    stream: S,
    target: &Target,
    config: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<tokio_rustls::client::TlsStream<S>, ConnectError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = ServerName::try_from(target.host.clone()).map_err(|e| ConnectError::TlsName {
        target: target.host_port(),
        reason: e.to_string(),
    })?;
    let connector = tokio_rustls::TlsConnector::from(config);
    match tokio::time::timeout(timeout, connector.connect(name, stream)).await {
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(source)) => Err(ConnectError::Tls {
            target: target.host_port(),
            hint: tls_hint(&source),
            source,
        }),
        Err(_) => Err(ConnectError::TlsTimeout {
            target: target.host_port(),
            timeout,
        }),
    }
}

/// Advice for a failed handshake, empty or starting with a space.
pub(super) fn tls_hint(err: &io::Error) -> &'static str {
    let Some(tls) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return match err.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => {
                " (the connection was closed during the handshake: is this port speaking TLS?)"
            }
            _ => "",
        };
    };
    match tls {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => {
                " (the certificate is not signed by a CA in the system trust store: if the \
                 server uses a private CA, trust it with `cacert = [\"/path/ca.pem\"]` in the \
                 source (`--cacert` for query); a proxy that intercepts TLS causes this too)"
            }
            CertificateError::BadSignature
            | CertificateError::UnsupportedSignatureAlgorithmContext { .. } => {
                " (the certificate names a trusted CA as its issuer but that CA's signature \
                 does not verify: a forged certificate, or a private CA that shares a name \
                 with a trusted one)"
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                " (the certificate is not issued for the host in the server URL: use a name \
                 the certificate covers)"
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => {
                " (the certificate is outside its validity period, or this machine's clock is \
                 far off: certificates cannot be checked against a wrong clock; set the clock \
                 roughly first, e.g. from an http:// server)"
            }
            _ => "",
        },
        rustls::Error::InvalidMessage(_) => {
            " (the server did not answer with TLS: should the URL be http:// or ws://?)"
        }
        rustls::Error::NoApplicationProtocol => {
            " (the server supports none of the requested ALPN protocols)"
        }
        _ => "",
    }
}
