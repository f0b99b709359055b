//! TLS for `https://` targets: one rustls client configuration per run (the `ring`
//! provider the rest of the workspace uses, ALPN `http/1.1` only, since the engine speaks
//! HTTP/1.1 on each connection), verified against the platform's roots through
//! `rustls-platform-verifier` (what reqwest uses for the bot's own outbound calls), or not
//! verified at all under `--insecure`, for self-signed test setups. [`Stream`] lets one
//! connection type carry either a plain TCP stream or a TLS one, so the engine's hot path is
//! the same for both; [`describe_failure`] turns a failed handshake into one readable
//! sentence, because the run reports the first such reason once, not per request.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// What the engine needs to open a TLS connection to the target.
#[derive(Clone)]
pub struct TlsTarget {
    connector: tokio_rustls::TlsConnector,
    /// The target's host: sent as SNI (not for an IP address) and checked against the
    /// certificate.
    server_name: ServerName<'static>,
}

/// The TLS client could not be set up (before any request is sent).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsSetupError(String);

impl TlsTarget {
    /// The client for `host` (as written in the target URL; an IPv6 literal may keep its
    /// brackets). With `insecure`, any certificate is accepted, though the handshake's
    /// signatures are still checked against the certificate the server sent.
    pub fn new(host: &str, insecure: bool) -> Result<TlsTarget, TlsSetupError> {
        let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let server_name = ServerName::try_from(bare.to_owned())
            .map_err(|e| TlsSetupError(format!("`{host}` is not a valid TLS server name: {e}")))?;
        // The provider is chosen here, not installed process-wide: a library user's own
        // default stays theirs.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError(format!("TLS setup: {e}")))?;
        let verifier: Arc<dyn ServerCertVerifier> = if insecure {
            Arc::new(AnyCertificate { algorithms: provider.signature_verification_algorithms })
        } else {
            Arc::new(rustls_platform_verifier::Verifier::new(provider).map_err(|e| {
                TlsSetupError(format!(
                    "cannot verify the target's certificate: {e} (install the system's CA certificates, \
                     e.g. Debian's ca-certificates, or pass --insecure for a test server)"
                ))
            })?)
        };
        let mut config = builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsTarget { connector: tokio_rustls::TlsConnector::from(Arc::new(config)), server_name })
    }

    /// Runs the TLS handshake on a connected socket.
    pub async fn handshake(&self, tcp: TcpStream) -> io::Result<Stream> {
        let tls = self.connector.connect(self.server_name.clone(), tcp).await?;
        Ok(Stream::Tls(Box::new(tls)))
    }
}

/// The certificate check of `--insecure`: every certificate is taken as valid. The
/// handshake signatures are still verified, so the connection is at least encrypted to the
/// holder of the key the server presented.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// One connection to the target, plain or TLS. Both variants are `Unpin`, so the I/O
/// calls forward without pin projection.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Why a handshake failed, in one sentence that says what to do about it.
pub fn describe_failure(e: &io::Error) -> String {
    if let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        return match tls {
            rustls::Error::InvalidCertificate(reason) => {
                let why = match reason {
                    rustls::CertificateError::UnknownIssuer => "its issuer is not a trusted root (self-signed?)".into(),
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. } => {
                        "it is not valid for the target's host name".into()
                    }
                    rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. } => {
                        "it has expired".into()
                    }
                    other => format!("{other:?}"),
                };
                format!("the target's certificate was refused: {why} (for a self-signed test server, pass --insecure)")
            }
            rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => format!(
                "the target did not answer in TLS ({tls}); is it a plain-HTTP server? Then use an http:// target"
            ),
            other => format!("TLS handshake failed: {other}"),
        };
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {
            "the target closed the connection during the TLS handshake".to_owned()
        }
        _ => format!("TLS handshake failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_take_hosts_and_ip_literals() {
        for host in ["example.com", "127.0.0.1", "[::1]", "localhost"] {
            assert!(TlsTarget::new(host, true).is_ok(), "{host}");
        }
        let bad = TlsTarget::new("exa mple", true).err().unwrap().to_string();
        assert!(bad.contains("not a valid TLS server name"), "{bad}");
    }

    #[test]
    fn failures_read_as_advice() {
        let cert = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert!(describe_failure(&cert).contains("--insecure"), "{}", describe_failure(&cert));
        let plain = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        );
        assert!(describe_failure(&plain).contains("plain-HTTP"), "{}", describe_failure(&plain));
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert!(describe_failure(&eof).contains("closed the connection"));
    }
}
