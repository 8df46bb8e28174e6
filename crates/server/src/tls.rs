//! TLS for the gateway and for keyhole's own client (rustls, `ring` crypto provider).
//!
//! - [`server_config`] loads a PEM certificate chain and private key for `keyhole serve
//!   --tls-cert FILE --tls-key FILE`; with it every connection is TLS and requests carry
//!   `aws:SecureTransport = true` and `tls: true` in their audit event. The pipeline's accept
//!   loop completes each handshake with `accept` (bounded in time; a plain-HTTP client gets a
//!   400 instead of a reset).
//! - [`client_config`] trusts the system's root certificates plus an optional PEM bundle, the
//!   file named by `AWS_CA_BUNDLE` / the profile's `ca_bundle` (AWS SDKs and tools reference,
//!   "General configuration settings":
//!   https://docs.aws.amazon.com/sdkref/latest/guide/feature-gen-config.html), so a gateway with
//!   a self-signed or private-CA certificate can be reached.
//!
//! # Security
//! - The provider is chosen explicitly (never a process-wide default), with rustls's safe
//!   default protocol versions (TLS 1.2 and 1.3) and cipher suites.
//! - The client always verifies the server's certificate and name; there is no "insecure" mode.
//! - Private key bytes are never put into errors or logs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a TLS configuration could not be built. Each message names the file (or setting) and the
/// fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("cannot read {what} `{path}`: {source}")]
    Read {
        /// Which setting named the file (`tls_cert`, `tls_key`, `AWS_CA_BUNDLE`...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A PEM file holds nothing usable.
    #[error("{what} `{path}` {problem}: {hint}")]
    Pem {
        /// Which setting named the file.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
        /// What a valid file looks like.
        hint: &'static str,
    },
    /// rustls refused the certificate and key (unsupported key type, key not matching the
    /// certificate...).
    #[error("cannot use certificate `{cert}` with key `{key}`: {reason} (the key must be the certificate's own private key: RSA, ECDSA P-256/P-384 or Ed25519)")]
    Rejected {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        reason: String,
    },
    /// The protocol versions could not be set up with the provider (not expected with `ring`).
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

const CERT_HINT: &str =
    "expected a PEM file with one or more `-----BEGIN CERTIFICATE-----` blocks, leaf certificate first";
const KEY_HINT: &str = "expected a PEM private key (`-----BEGIN PRIVATE KEY-----`, `-----BEGIN RSA PRIVATE KEY-----` or `-----BEGIN EC PRIVATE KEY-----`), unencrypted";

/// The one crypto provider keyhole uses: `ring` (pure Rust and C, no cmake or nasm to build).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Largest PEM file read (a certificate chain or a key is a few KiB; a CA bundle well under this).
pub const MAX_PEM_BYTES: u64 = 4 * 1024 * 1024;

/// Reads a PEM file: a regular file of at most [`MAX_PEM_BYTES`]. It is opened without blocking
/// and checked once open, so a named pipe, a device (`/dev/zero`) or a huge file put in its place
/// is refused at once instead of stalling or filling memory (review 30, F1: a SIGHUP reload of a
/// FIFO froze the gateway).
fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read as _;
    let fail = |source: std::io::Error| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits().cast_signed());
    }
    let file = options.open(path).map_err(fail)?;
    let meta = file.metadata().map_err(fail)?;
    if !meta.is_file() {
        return Err(fail(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    if meta.len() > MAX_PEM_BYTES {
        return Err(fail(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} bytes, more than the {MAX_PEM_BYTES} a PEM file may have",
                meta.len()
            ),
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(fail)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(fail(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("more than the {MAX_PEM_BYTES} bytes a PEM file may have"),
        )));
    }
    Ok(bytes)
}

/// Every certificate in a PEM file; an error if there is none or a block is damaged.
pub(crate) fn certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            path: path.to_owned(),
            problem: format!("is not valid PEM ({e})"),
            hint: CERT_HINT,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what,
            path: path.to_owned(),
            problem: "holds no certificate".into(),
            hint: CERT_HINT,
        });
    }
    Ok(certs)
}

/// The server side: the certificate chain in `cert` (leaf first) and its private key in `key`,
/// both PEM. HTTP/1.1 is announced by ALPN, the only protocol the gateway speaks.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    ServerCertificate::load(cert, key)?.config()
}

/// The gateway's certificate and key, as their files held them when last read: `keyhole serve`
/// reads them again on SIGHUP ([`ServerCertificate::reload`]), so a renewed certificate is
/// served to new connections without a restart. Connections already open keep the one they were
/// made with.
#[derive(Debug)]
pub struct ServerCertificate {
    cert: PathBuf,
    key: PathBuf,
    current: std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>,
}

impl ServerCertificate {
    /// Reads the files; an error names the file and the fix.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<ServerCertificate>, TlsError> {
        let current = Self::read_pair(cert, key)?;
        Ok(Arc::new(ServerCertificate {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: std::sync::RwLock::new(Arc::new(current)),
        }))
    }

    /// Reads both files again and serves what they hold from the next handshake on. On any
    /// error (a file missing or half written, a key that is not the certificate's) the
    /// certificate served so far stays, and the error says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = Arc::new(Self::read_pair(&self.cert, &self.key)?);
        match self.current.write() {
            Ok(mut current) => *current = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }

    /// A rustls configuration that serves this certificate as it is at each handshake.
    pub fn config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    fn read_pair(cert: &Path, key: &Path) -> Result<rustls::sign::CertifiedKey, TlsError> {
        let chain = certificates("tls_cert", cert)?;
        let key_pem = read("tls_key", key)?;
        let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
            what: "tls_key",
            path: key.to_owned(),
            problem: match e {
                rustls_pki_types::pem::Error::NoItemsFound => "holds no private key".to_owned(),
                other => format!("is not a valid PEM private key ({other})"),
            },
            hint: KEY_HINT,
        })?;
        let rejected = |reason: String| TlsError::Rejected {
            cert: cert.to_owned(),
            key: key.to_owned(),
            reason,
        };
        // A chain clients take: bounded (clients refuse a certificate message much over 100 KB:
        // OpenSSL's default limit), and a leaf valid now (review 31, L1: a reload accepted an
        // expired certificate or a multi-megabyte chain and every handshake failed after it).
        let total: usize = chain.iter().map(|c| c.as_ref().len()).sum();
        if chain.len() > MAX_CHAIN_CERTS || total > MAX_CHAIN_BYTES {
            return Err(rejected(format!(
                "the chain has {} certificates, {total} bytes of DER; clients accept at most about {MAX_CHAIN_CERTS} and {MAX_CHAIN_BYTES} (the leaf, then its intermediates, without the root)",
                chain.len()
            )));
        }
        if let Some(leaf) = chain.first() {
            check_validity(leaf.as_ref(), chrono::Utc::now().timestamp()).map_err(rejected)?;
        }
        // Checks that the key is the leaf certificate's own, as `with_single_cert` does.
        let candidates = chain.clone();
        rustls::sign::CertifiedKey::from_der(chain, private_key.clone_key(), &provider()).map_err(
            |e| {
                // A key that is another certificate's of the file: the leaf is not first.
                let owner = candidates.iter().skip(1).position(|c| {
                    rustls::sign::CertifiedKey::from_der(
                        vec![c.clone()],
                        private_key.clone_key(),
                        &provider(),
                    )
                    .is_ok()
                });
                rejected(match owner {
                    Some(i) => format!(
                        "the key is that of certificate #{} in the file, not of the first one: the server's own (leaf) certificate must come first, then its intermediates",
                        i + 2
                    ),
                    None => e.to_string(),
                })
            },
        )
    }
}

/// Most certificates a served chain may have.
pub const MAX_CHAIN_CERTS: usize = 10;
/// Most bytes (DER) a served chain may have.
pub const MAX_CHAIN_BYTES: usize = 64 * 1024;

/// Refuses a leaf certificate that has expired or is not valid yet (more than five minutes
/// ahead, for clocks that differ), read from its DER `validity`; `now` in Unix seconds.
fn check_validity(der: &[u8], now: i64) -> Result<(), String> {
    let Some((not_before, not_after)) = der_validity(der) else {
        return Err("its validity dates cannot be read".into());
    };
    let show = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0).map_or_else(|| t.to_string(), |d| d.to_rfc3339())
    };
    if now > not_after {
        return Err(format!(
            "the certificate expired on {}: renew it",
            show(not_after)
        ));
    }
    if now + 300 < not_before {
        return Err(format!(
            "the certificate is not valid until {} (check the clock, or the certificate's dates)",
            show(not_before)
        ));
    }
    Ok(())
}

/// `(notBefore, notAfter)` of a DER X.509 certificate, in Unix seconds (RFC 5280 4.1:
/// Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber,
/// signature, issuer, validity SEQUENCE { notBefore Time, notAfter Time }, ... }, ... }).
fn der_validity(der: &[u8]) -> Option<(i64, i64)> {
    /// One tag-length-value: (tag, content, what follows).
    fn tlv(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = buf.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let (bytes, rest) = rest.split_at(n);
            (
                bytes.iter().fold(0usize, |a, &b| (a << 8) | usize::from(b)),
                rest,
            )
        };
        if rest.len() < len {
            return None;
        }
        let (content, after) = rest.split_at(len);
        Some((tag, content, after))
    }
    fn time(tag: u8, text: &[u8]) -> Option<i64> {
        let text = std::str::from_utf8(text).ok()?;
        let full = match (tag, text.len()) {
            // UTCTime YYMMDDHHMMSSZ: years 50-99 are 19xx (RFC 5280 4.1.2.5.1).
            (0x17, 13) => {
                let yy: u32 = text.get(..2)?.parse().ok()?;
                format!("{}{text}", if yy >= 50 { "19" } else { "20" })
            }
            (0x18, 15) => text.to_owned(),
            _ => return None,
        };
        let t = chrono::NaiveDateTime::parse_from_str(&full, "%Y%m%d%H%M%SZ").ok()?;
        Some(t.and_utc().timestamp())
    }
    let (0x30, cert, _) = tlv(der)? else {
        return None;
    };
    let (0x30, tbs, _) = tlv(cert)? else {
        return None;
    };
    let (mut tag, _, mut rest) = tlv(tbs)?;
    if tag == 0xa0 {
        // the explicit version; the serial number follows
        (tag, _, rest) = tlv(rest)?;
    }
    if tag != 0x02 {
        return None;
    }
    let (_signature, _, rest) = tlv(rest)?;
    let (_issuer, _, rest) = tlv(rest)?;
    let (0x30, validity, _) = tlv(rest)? else {
        return None;
    };
    let (t1, before, rest) = tlv(validity)?;
    let (t2, after, _) = tlv(rest)?;
    Some((time(t1, before)?, time(t2, after)?))
}

impl rustls::server::ResolvesServerCert for ServerCertificate {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        })
    }
}

/// The client side: the system's trusted roots plus every certificate in `ca_bundle` (the file
/// named by `AWS_CA_BUNDLE` or a profile's `ca_bundle`). AWS SDKs use such a bundle *instead of*
/// their default roots; keyhole adds it to the system's, so one setting reaches both a
/// self-signed gateway and public endpoints.
///
/// A system store that cannot be read is not an error when a bundle is given (the bundle alone
/// is then trusted); with neither, an https endpoint cannot be verified and the request fails
/// with the verifier's message.
pub fn client_config(ca_bundle: Option<&Path>) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    for e in &system.errors {
        tracing::debug!(error = %e, "a system root certificate could not be loaded");
    }
    let (added, ignored) = roots.add_parsable_certificates(system.certs);
    tracing::debug!(added, ignored, "system root certificates");
    if let Some(path) = ca_bundle {
        for cert in certificates("AWS_CA_BUNDLE", path)? {
            roots.add(cert).map_err(|e| TlsError::Pem {
                what: "AWS_CA_BUNDLE",
                path: path.to_owned(),
                problem: format!("holds a certificate that cannot be a trust anchor ({e})"),
                hint: CERT_HINT,
            })?;
        }
    }
    client_with_roots(roots)
}

/// A client configuration that trusts no certificate: for a client whose endpoint is plain
/// HTTP, so that building one loads nothing.
pub fn client_config_trusting_nothing() -> Result<rustls::ClientConfig, TlsError> {
    client_with_roots(rustls::RootCertStore::empty())
}

fn client_with_roots(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, TlsError> {
    // No ALPN here: hyper-rustls announces the protocols its connector enables (http/1.1).
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// How much of a plain-HTTP request on the HTTPS port is read (and dropped) after the 400, so
/// the client sees the answer rather than a reset; and for how long at most.
const PLAIN_HTTP_DRAIN_BYTES: usize = 64 * 1024;
const PLAIN_HTTP_DRAIN_SECS: u64 = 1;

/// The first byte of a TLS connection: a handshake record (RFC 8446 section 5.1, content type
/// `handshake(22)`).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Completes the server side of a TLS handshake within the timeout; `None` (logged at debug) when
/// the client fails it, gives up, or speaks plain HTTP (it then gets a 400 that says to use
/// https:// instead of a connection reset).
pub(crate) async fn accept(
    acceptor: &tokio_rustls::TlsAcceptor,
    mut stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    let attempt = async {
        let mut first = [0u8; 1];
        if stream.peek(&mut first).await? == 1
            && first[0] != TLS_HANDSHAKE_RECORD
            && first[0].is_ascii_uppercase()
        {
            refuse_plain_http(&mut stream).await;
            return Err(std::io::Error::other(
                "the client sent plain HTTP to the HTTPS port (answered 400)",
            ));
        }
        acceptor.accept(stream).await
    };
    let limit = Duration::from_secs(crate::config::TLS_HANDSHAKE_TIMEOUT_SECS);
    match tokio::time::timeout(limit, attempt).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, %peer, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, seconds = limit.as_secs(), "TLS handshake timed out");
            None
        }
    }
}

/// Answers a plain-HTTP request on the HTTPS port with an S3-style 400 and closes. The request is
/// read (up to a bound) before closing, so the client sees the answer rather than a reset.
async fn refuse_plain_http(stream: &mut tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request_id = crate::pipeline::new_request_id();
    let body = crate::error::S3Error::new(
        "BadRequest",
        http::StatusCode::BAD_REQUEST,
        "This keyhole endpoint serves HTTPS only and the request was plain HTTP: use an https:// endpoint URL.",
    )
    .to_xml("/", &request_id);
    let head = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\nx-amz-request-id: {request_id}\r\nServer: keyhole\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let mut drained = 0usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(PLAIN_HTTP_DRAIN_SECS);
    while drained < PLAIN_HTTP_DRAIN_BYTES {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A fresh self-signed certificate for 127.0.0.1 and localhost, written as PEM files.
    fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        (cert, key)
    }

    #[test]
    fn loads_a_pem_certificate_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path());
        let config = server_config(&cert, &key).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn a_reload_serves_the_new_certificate_and_a_bad_one_keeps_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path());
        let served = ServerCertificate::load(&cert, &key).unwrap();
        let leaf = |c: &ServerCertificate| c.current.read().unwrap().cert[0].clone();
        let first = leaf(&served);
        let other = tempfile::tempdir().unwrap();
        let (cert2, key2) = self_signed(other.path());
        std::fs::copy(&cert2, &cert).unwrap();
        std::fs::copy(&key2, &key).unwrap();
        served.reload().unwrap();
        let second = leaf(&served);
        assert_ne!(first, second);
        // A half-written pair (the new certificate, the old key) is refused; the served one
        // stays.
        let (cert3, _) = self_signed(other.path());
        std::fs::copy(&cert3, &cert).unwrap();
        let e = served.reload().unwrap_err().to_string();
        assert!(e.contains("cannot use certificate"), "{e}");
        assert_eq!(leaf(&served), second);
        std::fs::remove_file(&key).unwrap();
        assert!(served.reload().is_err());
        assert_eq!(leaf(&served), second);
    }

    /// Review 30, F1: a named pipe, a device or a huge file in place of the certificate is
    /// refused at once (it used to block the reading thread on the pipe, or fill memory).
    #[cfg(unix)]
    #[test]
    fn a_pipe_a_device_or_a_huge_file_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path());
        let served = ServerCertificate::load(&cert, &key).unwrap();
        std::fs::remove_file(&cert).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &cert,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let e = served.reload().unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        std::fs::remove_file(&cert).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &cert).unwrap();
        let e = served.reload().unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        std::fs::remove_file(&cert).unwrap();
        let big = std::fs::File::create(&cert).unwrap();
        big.set_len(MAX_PEM_BYTES + 1).unwrap();
        let e = served.reload().unwrap_err().to_string();
        assert!(e.contains("more than"), "{e}");
    }

    /// A certificate for 127.0.0.1 valid from `from` to `to` (year, month, day), as PEM files.
    fn dated(dir: &Path, from: (i32, u8, u8), to: (i32, u8, u8)) -> (PathBuf, PathBuf) {
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        params.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (c, k) = (dir.join("dated.pem"), dir.join("dated.key"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    /// Review 31, L1: a certificate clients would refuse (expired, not yet valid, a chain too
    /// long) is refused at start and at a reload, which then keeps the one it serves.
    #[test]
    fn expired_future_and_oversized_certificates_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path());
        let served = ServerCertificate::load(&cert, &key).unwrap();
        let (old, old_key) = dated(dir.path(), (2019, 1, 1), (2020, 1, 1));
        let e = ServerCertificate::load(&old, &old_key)
            .unwrap_err()
            .to_string();
        assert!(e.contains("expired on 2020-01-01"), "{e}");
        let (late, late_key) = dated(dir.path(), (2090, 1, 1), (2091, 1, 1));
        let e = ServerCertificate::load(&late, &late_key)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not valid until 2090-01-01"), "{e}");
        // A reload to the expired pair keeps the served certificate.
        let (c2, k2) = dated(dir.path(), (2019, 1, 1), (2020, 1, 1));
        std::fs::copy(&c2, &cert).unwrap();
        std::fs::copy(&k2, &key).unwrap();
        assert!(served.reload().is_err());
        // A leaf followed by many copies of itself: over the chain bound.
        let (c3, k3) = self_signed(dir.path());
        let one = std::fs::read_to_string(&c3).unwrap();
        std::fs::write(&c3, one.repeat(MAX_CHAIN_CERTS + 1)).unwrap();
        let e = ServerCertificate::load(&c3, &k3).unwrap_err().to_string();
        assert!(e.contains("the chain has 11 certificates"), "{e}");
    }

    /// Review 31, L2: a chain with the leaf last says so, instead of a bare key mismatch.
    #[test]
    fn a_chain_with_the_leaf_last_says_the_leaf_comes_first() {
        let dir = tempfile::tempdir().unwrap();
        let (leaf, key) = self_signed(dir.path());
        let other = tempfile::tempdir().unwrap();
        let (ca, _) = self_signed(other.path());
        let swapped = dir.path().join("swapped.pem");
        let text = std::fs::read_to_string(&ca).unwrap() + &std::fs::read_to_string(&leaf).unwrap();
        std::fs::write(&swapped, text).unwrap();
        let e = ServerCertificate::load(&swapped, &key)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("certificate #2") && e.contains("must come first"),
            "{e}"
        );
    }

    #[test]
    fn validity_is_read_from_utc_and_generalized_times() {
        let dir = tempfile::tempdir().unwrap();
        for (from, to) in [
            ((2001, 2, 3), (2049, 12, 31)),
            ((1999, 12, 31), (2060, 6, 1)),
        ] {
            let (c, _) = dated(dir.path(), from, to);
            let der = certificates("tls_cert", &c).unwrap().remove(0);
            let (nb, na) = der_validity(der.as_ref()).unwrap();
            let ymd = |t: i64| {
                let d = chrono::DateTime::from_timestamp(t, 0).unwrap();
                (
                    chrono::Datelike::year(&d),
                    chrono::Datelike::month(&d),
                    chrono::Datelike::day(&d),
                )
            };
            assert_eq!(ymd(nb), (from.0, u32::from(from.1), u32::from(from.2)));
            assert_eq!(ymd(na), (to.0, u32::from(to.1), u32::from(to.2)));
        }
        assert_eq!(der_validity(b"\x30\x03\x02\x01"), None);
    }

    proptest::proptest! {
        /// Any bytes, a certificate's included when cut anywhere: an answer or None, no panic.
        #[test]
        fn validity_parsing_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400), cut in 0usize..2000) {
            let _ = der_validity(&bytes);
            let dir = tempfile::tempdir().unwrap();
            let (c, _) = self_signed(dir.path());
            let der = certificates("tls_cert", &c).unwrap().remove(0);
            let der = der.as_ref();
            let _ = der_validity(der.get(..cut.min(der.len())).unwrap_or_default());
        }
    }

    #[test]
    fn errors_name_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path());
        let missing = dir.path().join("nope.pem");
        let e = server_config(&missing, &key).unwrap_err().to_string();
        assert!(e.contains("tls_cert") && e.contains("nope.pem"), "{e}");

        // A key where the certificate should be, and the reverse.
        let e = server_config(&key, &key).unwrap_err().to_string();
        assert!(
            e.contains("tls_cert")
                && e.contains("holds no certificate")
                && e.contains("BEGIN CERTIFICATE"),
            "{e}"
        );
        let e = server_config(&cert, &cert).unwrap_err().to_string();
        assert!(
            e.contains("tls_key")
                && e.contains("holds no private key")
                && e.contains("BEGIN PRIVATE KEY"),
            "{e}"
        );
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\n!!!!\n").unwrap();
        let e = server_config(&garbage, &key).unwrap_err().to_string();
        assert!(e.contains("not valid PEM"), "{e}");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let (cert, _) = self_signed(a.path());
        let (_, other_key) = self_signed(b.path());
        let e = server_config(&cert, &other_key).unwrap_err().to_string();
        assert!(e.contains("cannot use certificate"), "{e}");
    }

    #[test]
    fn a_missing_ca_bundle_is_named() {
        let e = client_config(Some(Path::new("/nonexistent/ca.pem")))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("AWS_CA_BUNDLE") && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
    }

    /// Handshakes `client` against a server using `cert`/`key`; the result of the client side.
    async fn handshake(
        client: rustls::ClientConfig,
        cert: &Path,
        key: &Path,
        name: &str,
    ) -> Result<Vec<u8>, std::io::Error> {
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config(cert, key).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            if let Ok(mut tls) = acceptor.accept(tcp).await {
                let _ = tls.write_all(b"hello over tls").await;
                let _ = tls.shutdown().await;
            }
        });
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let server_name = rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap();
        let result = async {
            let mut tls = connector.connect(server_name, tcp).await?;
            let mut got = Vec::new();
            tls.read_to_end(&mut got).await?;
            Ok(got)
        }
        .await;
        let _ = server.await;
        result
    }

    #[tokio::test]
    async fn a_self_signed_gateway_is_trusted_only_through_the_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path());
        // Without the bundle, the self-signed certificate is not trusted.
        let e = handshake(client_config(None).unwrap(), &cert, &key, "127.0.0.1")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("certificate"), "{e}");
        // With it, both names the certificate carries verify, and data flows.
        for name in ["127.0.0.1", "localhost"] {
            let got = handshake(client_config(Some(&cert)).unwrap(), &cert, &key, name)
                .await
                .unwrap();
            assert_eq!(got, b"hello over tls");
        }
        // A name the certificate does not carry is refused even with the bundle.
        let e = handshake(
            client_config(Some(&cert)).unwrap(),
            &cert,
            &key,
            "example.com",
        )
        .await
        .unwrap_err();
        assert!(e.to_string().to_lowercase().contains("name"), "{e}");
    }
}
