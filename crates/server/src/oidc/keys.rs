//! Where a provider's verification keys come from, and how long they are kept.
//!
//! Two sources, chosen per issuer:
//! - **A JWKS file** the operator configured (`--oidc-jwks ISSUER=PATH`): for clusters whose
//!   issuer is not reachable from the gateway (air-gapped, or a Kubernetes API server that only
//!   the cluster reaches). The file is read again when a token names a key it does not hold, so
//!   replacing the file rotates keys without a restart.
//! - **The issuer itself**, over HTTPS: its discovery document
//!   (`ISSUER/.well-known/openid-configuration`, whose `issuer` must equal `ISSUER`, OpenID
//!   Connect Discovery 1.0 section 4.3) names `jwks_uri`, which must be HTTPS too. Server
//!   certificates are checked against the system's roots (`SSL_CERT_FILE` adds a private CA).
//!
//! # Caching and rotation
//! A fetched set is used for [`FRESH`]. A token naming a `kid` the cached set lacks triggers one
//! refetch, at most once per [`REFETCH_INTERVAL`] per issuer ([`REREAD_INTERVAL`] for a file), so a flood of tokens with made-up
//! key ids cannot make the gateway hammer the issuer. When a refetch fails, keys fetched within
//! [`STALE_LIMIT`] are still used (an issuer outage does not stop sessions), and the failure is
//! logged; with nothing usable the call fails with `IDPCommunicationError`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;

use super::jwks::{KeySet, MAX_JWKS_BYTES};
use super::TokenError;

/// How long a fetched key set is used without asking again.
pub const FRESH: Duration = Duration::from_secs(3600);
/// The shortest time between two fetches for one issuer.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// The shortest time between two reads of one issuer's JWKS file (a local read is cheap).
pub const REREAD_INTERVAL: Duration = Duration::from_secs(1);
/// How old a key set may be and still be used when the issuer cannot be reached.
pub const STALE_LIMIT: Duration = Duration::from_secs(24 * 3600);
/// How long one fetch (discovery and key set) may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Entry {
    set: Option<(Arc<KeySet>, Instant)>,
    last_attempt: Option<Instant>,
}

type Https = HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// The key sets of every issuer, fetched on demand.
pub struct KeyCache {
    files: HashMap<String, PathBuf>,
    entries: Mutex<HashMap<String, Entry>>,
    /// Built at the first fetch (loading the system's roots takes a while).
    http: OnceLock<Result<Https, String>>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

fn https_client() -> Result<Https, String> {
    let tls = crate::tls::client_config(None).map_err(|e| e.to_string())?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    Ok(HyperClient::builder(TokioExecutor::new()).build(connector))
}

impl KeyCache {
    /// A cache reading the given issuers' keys from files (issuer URL, path) and every other
    /// issuer's over HTTPS.
    pub fn new(files: Vec<(String, PathBuf)>) -> KeyCache {
        KeyCache {
            files: files.into_iter().collect(),
            entries: Mutex::new(HashMap::new()),
            http: OnceLock::new(),
        }
    }

    /// Whether `issuer`'s keys come from a file.
    pub fn file_of(&self, issuer: &str) -> Option<&PathBuf> {
        self.files.get(issuer)
    }

    /// The key set to check a token of `issuer` naming `kid` with.
    pub async fn keys(&self, issuer: &str, kid: Option<&str>) -> Result<Arc<KeySet>, TokenError> {
        let now = Instant::now();
        let cached = {
            let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            entries.get(issuer).map(|e| (e.set.clone(), e.last_attempt))
        };
        let (set, last_attempt) = cached.unwrap_or((None, None));
        let fresh = set
            .as_ref()
            .is_some_and(|(_, at)| now.duration_since(*at) < FRESH);
        let knows_kid = set
            .as_ref()
            .is_some_and(|(s, _)| kid.is_none_or(|k| s.has_kid(k)));
        if fresh && knows_kid {
            if let Some((s, _)) = set {
                return Ok(s);
            }
        }
        let interval = if self.files.contains_key(issuer) {
            REREAD_INTERVAL
        } else {
            REFETCH_INTERVAL
        };
        let may_fetch = last_attempt.is_none_or(|t| now.duration_since(t) >= interval);
        if !may_fetch {
            // Rate-limited: answer with what is held (the signature check then fails for an
            // unknown kid), or with the failure of the last attempt.
            return set.map(|(s, _)| s).ok_or_else(|| {
                TokenError::Communication(format!(
                    "the keys of {issuer} could not be had recently; try again in {} s",
                    interval.as_secs()
                ))
            });
        }
        {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            entries
                .entry(issuer.to_owned())
                .or_insert(Entry {
                    set: None,
                    last_attempt: None,
                })
                .last_attempt = Some(now);
        }
        match self.fetch(issuer).await {
            Ok(new) => {
                let new = Arc::new(new);
                let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(e) = entries.get_mut(issuer) {
                    e.set = Some((new.clone(), Instant::now()));
                }
                tracing::info!(issuer, keys = new.keys.len(), "OIDC provider keys loaded");
                Ok(new)
            }
            Err(problem) => {
                tracing::warn!(issuer, error = %problem, "OIDC provider keys could not be loaded");
                match set {
                    Some((s, at)) if now.duration_since(at) < STALE_LIMIT => Ok(s),
                    _ => Err(TokenError::Communication(problem)),
                }
            }
        }
    }

    async fn fetch(&self, issuer: &str) -> Result<KeySet, String> {
        if let Some(path) = self.files.get(issuer) {
            let path = path.clone();
            let doc = tokio::task::spawn_blocking(move || read_capped(&path))
                .await
                .map_err(|e| e.to_string())??;
            return KeySet::parse(&doc).map_err(|e| e.to_string());
        }
        let http = self
            .http
            .get_or_init(https_client)
            .as_ref()
            .map_err(|e| format!("no HTTPS client for OIDC discovery: {e}"))?;
        tokio::time::timeout(FETCH_TIMEOUT, discover(http, issuer))
            .await
            .map_err(|_| {
                format!(
                    "no answer from {issuer} within {} s",
                    FETCH_TIMEOUT.as_secs()
                )
            })?
    }
}

/// Checks that a configured JWKS file can be read and holds a usable key (at start).
pub fn check_file(path: &std::path::Path) -> Result<(), String> {
    KeySet::parse(&read_capped(path)?)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn read_capped(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let f =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut buf = Vec::new();
    f.take(MAX_JWKS_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(buf)
}

async fn get(http: &Https, url: &str) -> Result<Bytes, String> {
    let uri: Uri = url.parse().map_err(|_| format!("`{url}` is not a URL"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!("`{url}` is not an https:// URL"));
    }
    let req = Request::get(uri)
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let resp = http
        .request(req)
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("GET {url}: HTTP {}", resp.status()));
    }
    Limited::new(resp.into_body(), MAX_JWKS_BYTES)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| format!("GET {url}: {e}"))
}

async fn discover(http: &Https, issuer: &str) -> Result<KeySet, String> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let doc = get(http, &url).await?;
    let doc: serde_json::Value =
        serde_json::from_slice(&doc).map_err(|e| format!("{url}: not JSON ({e})"))?;
    let named = doc.get("issuer").and_then(|v| v.as_str());
    if named != Some(issuer) {
        return Err(format!(
            "{url} names the issuer {named:?}, not `{issuer}` (OpenID Connect Discovery requires them to be equal)"
        ));
    }
    let jwks_uri = doc
        .get("jwks_uri")
        .and_then(|v| v.as_str())
        .ok_or_else(|| format!("{url} has no jwks_uri"))?;
    let set = get(http, jwks_uri).await?;
    KeySet::parse(&set).map_err(|e| format!("{jwks_uri}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::jwt::tests::TestIssuer;

    fn write_jwks(path: &std::path::Path, issuer: &TestIssuer) {
        let set = issuer.jwks_json();
        std::fs::write(path, set.to_string()).unwrap();
    }

    #[tokio::test]
    async fn a_jwks_file_is_read_again_for_an_unknown_kid_but_not_too_often() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let one = TestIssuer::new("one");
        write_jwks(&path, &one);
        let cache = KeyCache::new(vec![("https://idp".into(), path.clone())]);
        let set = cache.keys("https://idp", Some("one")).await.unwrap();
        assert!(set.has_kid("one"));
        // Rotated on disk: a token with the new kid right away finds the old set (rate limit)...
        let two = TestIssuer::new("two");
        write_jwks(&path, &two);
        let set = cache.keys("https://idp", Some("two")).await.unwrap();
        assert!(!set.has_kid("two"));
        // ...and after the interval, the new one.
        {
            let mut e = cache.entries.lock().unwrap();
            e.get_mut("https://idp").unwrap().last_attempt = Some(Instant::now() - REREAD_INTERVAL);
        }
        let set = cache.keys("https://idp", Some("two")).await.unwrap();
        assert!(set.has_kid("two"));
    }

    #[tokio::test]
    async fn an_unreachable_issuer_is_an_idp_communication_error() {
        let cache = KeyCache::new(vec![]);
        // Port 9 on loopback: nothing listens.
        let e = cache.keys("https://127.0.0.1:9", None).await.unwrap_err();
        assert_eq!(e.to_s3().code(), "IDPCommunicationError", "{e}");
        let e = cache.keys("http://127.0.0.1:9", None).await.unwrap_err();
        assert_eq!(e.to_s3().code(), "IDPCommunicationError", "{e}");
    }
}
