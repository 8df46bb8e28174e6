//! TLS to PostgreSQL: libpq's `sslmode` and `sslrootcert` in the state URL, spoken with rustls
//! (the `ring` provider, as everywhere in keyhole).
//!
//! tokio-postgres itself knows `sslmode=disable|prefer|require` only, and never looks at a
//! certificate: that is the connector's job. So [`parse`] takes the two settings out of the URL,
//! gives the rest to tokio-postgres, and [`Connector`] verifies as the mode says. The semantics
//! are libpq's ("SSL Support", table "SSL Mode Descriptions", and the `sslmode` and
//! `sslrootcert` entries of "Parameter Key Words",
//! <https://www.postgresql.org/docs/current/libpq-ssl.html>,
//! <https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNECT-SSLMODE>):
//!
//! | sslmode | TLS | certificate checked |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (default) | when the server offers it | only when `sslrootcert` is given (as libpq does when a root file exists) |
//! | `require` | always | only when `sslrootcert` is given (libpq: "behaves like verify-ca") |
//! | `verify-ca` | always | chain up to `sslrootcert` |
//! | `verify-full` | always | chain up to `sslrootcert`, and the URL's host named in the certificate |
//!
//! Where keyhole is stricter than libpq, on purpose:
//! - `prefer` falls back to plain text only when the server answers that it has no TLS; a TLS
//!   handshake that fails is an error (libpq tries again without TLS), so a verification failure
//!   is never turned into an unencrypted connection.
//! - `sslrootcert` has no default file: libpq reads `~/.postgresql/root.crt` when it exists,
//!   which for a service would make trust depend on whichever home directory it runs under.
//!   `verify-ca`/`verify-full` without `sslrootcert` are refused at start.
//! - `sslmode=allow` (plain text first) is refused; so are client certificates (`sslcert`,
//!   `sslkey`, `sslpassword`, `sslcrl`, `sslcrldir`), which keyhole does not support.
//! - `PGSSLMODE`, `PGSSLROOTCERT` and the other libpq environment variables are not read: the
//!   URL says everything.
//!
//! As libpq does, `sslrootcert=system` trusts the system's roots, makes `verify-full` the default
//! and refuses a weaker mode (anyone can get a publicly trusted certificate for a name of their
//! own, so only the name check makes those roots mean something).
//!
//! # Security
//! The URL may carry a password (`postgres://u:PASSWORD@h/db`, or `?password=`): nothing here
//! puts the URL, or a value taken from it other than `sslmode`'s and `sslrootcert`'s, in an
//! error. tokio-postgres's own parse errors name an option, never its value.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

/// libpq's `sslmode`, less `allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it (libpq's default).
    Prefer,
    /// Always TLS.
    Require,
    /// Always TLS, the certificate's chain checked.
    VerifyCa,
    /// Always TLS, the chain and the host name checked.
    VerifyFull,
}

impl SslMode {
    /// The name as written in a URL.
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the trusted roots come from (`sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// Not given.
    None,
    /// A PEM file of CA certificates.
    File(PathBuf),
    /// `sslrootcert=system`: the system's trusted roots.
    System,
}

/// What the server's certificate is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Nothing (the handshake's own signatures still are): encryption against a passive
    /// listener only.
    Nothing,
    /// The chain up to a trusted root.
    Chain,
    /// The chain, and the URL's host in the certificate.
    ChainAndName,
}

/// The TLS settings of a state URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// `sslmode`, or its default.
    pub mode: SslMode,
    /// `sslrootcert`.
    pub roots: Roots,
}

impl TlsOptions {
    /// What a TLS connection checks (nothing is used under `disable`).
    pub fn check(&self) -> Check {
        match (self.mode, &self.roots) {
            (SslMode::VerifyFull, _) => Check::ChainAndName,
            (SslMode::VerifyCa, _) => Check::Chain,
            (_, Roots::None) => Check::Nothing,
            (_, _) => Check::Chain,
        }
    }

    /// One line for the banner: the mode and what it checks.
    pub fn describe(&self) -> String {
        let what = match (self.mode, self.check()) {
            (SslMode::Disable, _) => "no TLS",
            (SslMode::Prefer, Check::Nothing) => {
                "TLS if the server offers it, certificate not verified"
            }
            (SslMode::Prefer, _) => "TLS if the server offers it, certificate chain verified",
            (_, Check::Nothing) => "TLS, certificate not verified",
            (_, Check::Chain) => "TLS, certificate chain verified",
            (_, Check::ChainAndName) => "TLS, certificate and host name verified",
        };
        format!("sslmode={}: {what}", self.mode.name())
    }
}

/// A state URL whose TLS settings cannot be used. The messages never quote the URL (it may hold
/// a password).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    /// `sslmode` has a value libpq does not know.
    #[error("sslmode `{0}` is not known: use disable, prefer, require, verify-ca or verify-full")]
    UnknownMode(String),
    /// `sslmode=allow`.
    #[error("sslmode=allow (plain text first, TLS only if the server insists) is not supported: use prefer, require, verify-ca or verify-full")]
    Allow,
    /// `verify-ca`/`verify-full` without `sslrootcert`.
    #[error("sslmode={0} needs sslrootcert=FILE (a PEM file with the CA certificate that signed the server's) or sslrootcert=system")]
    NoRoots(&'static str),
    /// `sslrootcert=system` with a mode weaker than `verify-full`.
    #[error("sslrootcert=system needs sslmode=verify-full (any publicly trusted certificate would pass a weaker check): remove sslmode or set it to verify-full")]
    SystemWeak,
    /// A client-certificate setting.
    #[error("`{0}` is not supported (keyhole does not present client certificates): remove it and authenticate with a password")]
    Unsupported(String),
    /// A setting given twice.
    #[error("`{0}` is given twice: keep one")]
    Twice(&'static str),
    /// Not a URL tokio-postgres accepts.
    #[error("not a PostgreSQL connection URL ({0}): use postgres://USER@HOST:PORT/DB, with ?sslmode=verify-full&sslrootcert=FILE for TLS")]
    Parse(String),
}

/// The settings libpq has and keyhole does not take (client certificates, revocation lists).
const UNSUPPORTED: [&str; 5] = ["sslcert", "sslkey", "sslpassword", "sslcrl", "sslcrldir"];

/// Splits a `postgres://` URL into tokio-postgres's configuration (its `ssl_mode` set from
/// `sslmode`) and the TLS settings.
pub fn parse(url: &str) -> Result<(tokio_postgres::Config, TlsOptions), UrlError> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut mode = None;
    let mut roots = None;
    let mut rest: Vec<&str> = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(raw_key)?;
        match key.as_str() {
            "sslmode" => set(&mut mode, "sslmode", decode(raw_value)?)?,
            "sslrootcert" => set(&mut roots, "sslrootcert", decode(raw_value)?)?,
            k if UNSUPPORTED.contains(&k) => return Err(UrlError::Unsupported(k.to_owned())),
            _ => rest.push(pair),
        }
    }
    let roots = match roots.as_deref() {
        None | Some("") => Roots::None,
        Some("system") => Roots::System,
        Some(path) => Roots::File(PathBuf::from(path)),
    };
    let mode = match (mode.as_deref(), &roots) {
        (None | Some(""), Roots::System) => SslMode::VerifyFull,
        (None | Some(""), _) => SslMode::Prefer,
        (Some("disable"), _) => SslMode::Disable,
        (Some("allow"), _) => return Err(UrlError::Allow),
        (Some("prefer"), _) => SslMode::Prefer,
        (Some("require"), _) => SslMode::Require,
        (Some("verify-ca"), _) => SslMode::VerifyCa,
        (Some("verify-full"), _) => SslMode::VerifyFull,
        (Some(other), _) => return Err(UrlError::UnknownMode(other.to_owned())),
    };
    if roots == Roots::System && mode != SslMode::VerifyFull {
        return Err(UrlError::SystemWeak);
    }
    if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && roots == Roots::None {
        return Err(UrlError::NoRoots(mode.name()));
    }
    let rebuilt = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let mut config: tokio_postgres::Config = rebuilt
        .parse()
        .map_err(|e: tokio_postgres::Error| UrlError::Parse(e_chain(&e)))?;
    config.ssl_mode(match mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            tokio_postgres::config::SslMode::Require
        }
    });
    Ok((config, TlsOptions { mode, roots }))
}

fn set(slot: &mut Option<String>, name: &'static str, value: String) -> Result<(), UrlError> {
    if slot.is_some() {
        return Err(UrlError::Twice(name));
    }
    *slot = Some(value);
    Ok(())
}

fn decode(raw: &str) -> Result<String, UrlError> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| UrlError::Parse("a parameter is not valid UTF-8 once percent-decoded".into()))
}

/// An error and its causes, `: `-separated. For tokio-postgres's errors only: they name options,
/// never their values.
fn e_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Makes rustls connections for tokio-postgres, checking the server's certificate as the
/// [`TlsOptions`] say.
#[derive(Clone)]
pub struct Connector {
    config: Arc<rustls::ClientConfig>,
    options: Arc<TlsOptions>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// Loads the roots and builds the client configuration. An `sslrootcert` file that cannot be
    /// read or holds no certificate is an error naming it.
    pub fn new(options: &TlsOptions) -> Result<Connector, String> {
        let provider = crate::tls::provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))?;
        let verifier: Arc<dyn ServerCertVerifier> = match (&options.roots, options.check()) {
            (_, Check::Nothing) | (Roots::None, _) => Arc::new(Unverified(provider)),
            (roots, check) => {
                let store = root_store(roots)?;
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
                    .build()
                    .map_err(|e| format!("sslrootcert: {e}"))?;
                if check == Check::ChainAndName {
                    webpki
                } else {
                    Arc::new(ChainOnly(webpki))
                }
            }
        };
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Connector {
            config: Arc::new(config),
            options: Arc::new(options.clone()),
        })
    }

    /// The settings it was made from.
    pub fn options(&self) -> &TlsOptions {
        &self.options
    }
}

fn root_store(roots: &Roots) -> Result<rustls::RootCertStore, String> {
    let mut store = rustls::RootCertStore::empty();
    match roots {
        Roots::None => {}
        Roots::System => {
            let system = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(system.certs);
            if store.is_empty() {
                return Err("sslrootcert=system: no trusted root certificate could be loaded from the system store; name a CA file instead".into());
            }
        }
        Roots::File(path) => {
            for cert in certificates(path)? {
                store.add(cert).map_err(|e| {
                    format!(
                        "sslrootcert `{}` holds a certificate that cannot be a trust anchor ({e})",
                        path.display()
                    )
                })?;
            }
        }
    }
    Ok(store)
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    crate::tls::certificates("sslrootcert", path).map_err(|e| e.to_string())
}

/// `verify-ca`: the chain is checked, the name is not. rustls's verifier checks the name last,
/// after the chain, so a name mismatch means the chain was good.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer`/`require` without `sslrootcert`: any certificate, as libpq; the handshake's
/// signatures are still checked against it.
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl<S> MakeTlsConnect<S> for Connector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type TlsConnect = Connect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, host: &str) -> Result<Connect, Self::Error> {
        Ok(Connect {
            config: self.config.clone(),
            name: ServerName::try_from(host.to_owned())?,
        })
    }
}

/// One handshake to a named host.
pub struct Connect {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for Connect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Stream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await
                .map(Stream)
        })
    }
}

/// A TLS connection to the server. No channel binding is offered (SCRAM then runs without
/// `-PLUS`, as with libpq's `channel_binding=prefer` when the client cannot bind).
pub struct Stream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for Stream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// A hint for a failed TLS connection, from the error's causes: what to change. `None` when the
/// error is not about TLS.
pub fn hint(e: &tokio_postgres::Error, options: &TlsOptions) -> Option<String> {
    let text = e.to_string();
    if !text.starts_with("error performing TLS handshake") {
        return None;
    }
    let mode = options.mode.name();
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        let rustls_error = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        if let Some(r) = rustls_error {
            return Some(match r {
                rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
                ) => format!("the server's certificate does not name the host in the state URL (sslmode={mode}): connect by a name or address the certificate lists, or use sslmode=verify-ca"),
                rustls::Error::InvalidCertificate(_) => format!("the server's certificate was refused (sslmode={mode}: {r}): sslrootcert must hold the CA certificate that signed it"),
                other => format!("the TLS handshake with the server failed (sslmode={mode}): {other}"),
            });
        }
        if s.to_string().contains("server does not support TLS") {
            return Some(format!("the server does not offer TLS, which sslmode={mode} requires: turn on `ssl` in postgresql.conf, or connect with sslmode=prefer or disable"));
        }
        source = s.source();
    }
    Some(format!(
        "the TLS handshake with the server failed (sslmode={mode}): {}",
        e_chain(e)
    ))
}

#[cfg(test)]
mod tests;
