//! Typed gateway configuration, validated when it is loaded.
//!
//! Sources, highest precedence first: command-line flags, `KEYHOLE_*` environment variables (both
//! handled by the CLI, which passes them in as a [`ConfigOverrides`]), the TOML file named by
//! `--config`, and the defaults below.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod storage;

pub use storage::{BackendKind, BucketTarget, StorageConfig, StorageSettings, UpstreamConfig};

/// Default listen address: loopback only, so a fresh install exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9000";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "keyhole-data";
/// Default region reported to clients and used for new buckets.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Largest XML request body accepted (DeleteObjects, CompleteMultipartUpload, Tagging...).
/// 1000 keys of 1024 bytes plus markup fit; anything larger is refused before it is parsed.
pub const MAX_XML_BODY_BYTES: usize = 1536 * 1024;
/// Largest object accepted by a single PutObject or UploadPart (AWS's limit: 5 GiB).
pub const MAX_SINGLE_PUT_BYTES: u64 = 5 * 1024 * 1024 * 1024;
/// Maximum number of keys in one DeleteObjects request (AWS's limit).
pub const MAX_DELETE_KEYS: usize = 1000;
/// Default size at which the audit writer starts a new trail file.
pub const DEFAULT_AUDIT_ROTATE_BYTES: u64 = 64 * 1024 * 1024;
/// Default age (seconds) at which the audit writer starts a new trail file.
pub const DEFAULT_AUDIT_ROTATE_SECS: u64 = 3600;
/// Default interval (seconds) between signed audit digests, even when idle.
pub const DEFAULT_AUDIT_DIGEST_SECS: u64 = 60;
/// Longest digest interval accepted (an hour, CloudTrail's).
pub const MAX_AUDIT_DIGEST_SECS: u64 = 3600;
/// Longest audit retention accepted (100 years; 0 keeps everything).
pub const MAX_AUDIT_RETAIN_DAYS: u64 = 36_500;
/// Shortest job session lifetime (short lifetimes exercise SDK refresh).
pub const MIN_JOB_SESSION_SECS: u64 = 15;
/// Longest job session lifetime (AWS's longest role session, 12 hours).
pub const MAX_JOB_SESSION_SECS: u64 = 43_200;
/// Longest staleness bound a node of a shared state may be given (an hour: the change log
/// keeps an hour of rows).
pub const MAX_STATE_STALENESS_SECS: u64 = 3_600;
/// The largest `max_key_age_days` (100 years).
pub const MAX_KEY_AGE_DAYS: u64 = 36_500;
/// How long a graceful shutdown waits for in-flight requests before giving up.
pub const SHUTDOWN_GRACE_SECS: u64 = 30;
/// How long a new connection may take to complete its TLS handshake before it is dropped (a
/// client that opens connections and never speaks cannot hold them).
pub const TLS_HANDSHAKE_TIMEOUT_SECS: u64 = 10;
/// Default time a client has to send a complete request head: from connecting (first request)
/// or from the first byte of a later request. Slowloris clients are closed after it.
pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 10;
/// Default time a keep-alive connection may wait for its next request.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 30;
/// Default window of the body-progress rule: while the gateway waits for request body bytes,
/// each window of this many seconds of waiting must bring `body_min_rate` bytes a second.
/// S3 answers `RequestTimeout` after about 20 s without progress too.
pub const DEFAULT_BODY_TIMEOUT_SECS: u64 = 20;
/// Default minimum body rate in bytes a second, averaged over each body-timeout window (20 KiB
/// per 20 s): a 5 GiB upload at 1 MiB/s is a thousand times faster.
pub const DEFAULT_BODY_MIN_RATE: u64 = 1024;
/// Longest header, idle or body timeout accepted.
pub const MAX_TIMEOUT_SECS: u64 = 3600;
/// Default maximum number of open client connections (lowered to what the open-file limit
/// allows, see [`FILES_PER_CONNECTION`]).
pub const DEFAULT_MAX_CONNECTIONS: u64 = 4096;
/// Largest `max_connections` accepted at all.
pub const MAX_MAX_CONNECTIONS: u64 = 1_000_000;
/// Default maximum number of connections from one source address (an IPv6 client's /64);
/// connections from trusted proxies are not capped.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: u64 = 256;
/// File descriptors kept for the gateway itself (store index, state database, audit trail,
/// listener, runtime) when `max_connections` is derived from the open-file limit.
pub const FILES_RESERVED: u64 = 64;
/// File descriptors one connection may need at once: its socket and an object file.
pub const FILES_PER_CONNECTION: u64 = 2;
/// Headroom kept for new clients: once more than `100 - CONNECTION_HEADROOM_PERCENT` % of
/// `max_connections` are open, connections that are between requests (idle keep-alive, not yet
/// sent a request, or an unfinished request head) are closed, oldest first, down to
/// `100 - 2 * CONNECTION_HEADROOM_PERCENT` %.
pub const CONNECTION_HEADROOM_PERCENT: u64 = 10;

/// The certificate and key files for HTTPS (PEM). Both are given or neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// The leaf certificate's private key.
    pub key: PathBuf,
}

/// Where the control-plane state lives.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum StateLocation {
    /// `<data_dir>/state.db` (one node; the default).
    #[default]
    Sqlite,
    /// A PostgreSQL database several nodes share (`postgres://USER@HOST:PORT/DB`).
    Postgres(String),
}

impl std::fmt::Debug for StateLocation {
    /// Never shows a password the URL may carry.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateLocation::Sqlite => f.write_str("Sqlite"),
            StateLocation::Postgres(url) => write!(f, "Postgres({})", redact_url(url)),
        }
    }
}

/// A state URL without the password it may carry: the user part keeps only the user
/// (`postgres://u:***@h/db`), and query parameters keep their values only when they are known
/// to hold no secret (`sslmode`, `sslrootcert`, `connect_timeout`, ...): every other value is
/// `***`, and a piece that is not `key=value` (a password's unencoded `&` splits it) is `***`
/// whole. Works on malformed URLs too, since those are the ones echoed in errors (review 10, F5).
pub fn redact_url(url: &str) -> String {
    /// Parameters shown as given: libpq's that never carry a secret.
    const SHOWN: [&str; 9] = [
        "sslmode",
        "sslrootcert",
        "connect_timeout",
        "application_name",
        "host",
        "port",
        "user",
        "dbname",
        "target_session_attrs",
    ];
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    // The user part ends at the last `@`: a password may hold `@`, `:`, `/` or `?` unencoded.
    let (userinfo, after) = match rest.rsplit_once('@') {
        Some((userinfo, after)) => (Some(userinfo), after),
        None => (None, rest),
    };
    let (place, query) = match after.split_once('?') {
        Some((place, query)) => (place, Some(query)),
        None => (after, None),
    };
    let mut out = format!("{scheme}://");
    if let Some(u) = userinfo {
        match u.split_once(':') {
            Some((user, _)) => out.push_str(&format!("{user}:***@")),
            None => out.push_str(&format!("{u}@")),
        }
    }
    out.push_str(place);
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) => {
                    let name = percent_encoding::percent_decode_str(key)
                        .decode_utf8_lossy()
                        .to_ascii_lowercase();
                    if SHOWN.contains(&name.as_str()) {
                        pair.to_owned()
                    } else {
                        format!("{key}=***")
                    }
                }
                None => "***".to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// Parses `--state`: `sqlite` (or empty) for the default, a `postgres://` or `postgresql://`
/// URL for a shared database.
fn parse_state(text: &str) -> Result<StateLocation, ConfigError> {
    let invalid = |hint| ConfigError::Invalid {
        field: "state",
        value: redact_url(text),
        hint,
    };
    if text.is_empty() || text == "sqlite" {
        return Ok(StateLocation::Sqlite);
    }
    if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
        return Err(invalid(
            "use `sqlite` (the default: <data-dir>/state.db) or postgres://USER@HOST:PORT/DB",
        ));
    }
    crate::state::postgres::tls::parse(text).map_err(|e| ConfigError::State {
        value: redact_url(text),
        reason: e.to_string(),
    })?;
    Ok(StateLocation::Postgres(text.to_owned()))
}

/// The gateway's configuration after all sources are merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Socket address to listen on.
    pub listen: SocketAddr,
    /// Where objects, the index, the account and its credentials live.
    pub data_dir: PathBuf,
    /// Base domain for virtual-host style requests (`bucket.DOMAIN`); path style always works.
    pub domain: Option<String>,
    /// Region reported to clients.
    pub region: String,
    /// Peers (CIDRs) whose `X-Forwarded-For` header is believed for `aws:SourceIp`. Empty by
    /// default: only the TCP peer address counts.
    pub trusted_proxies: Vec<String>,
    /// When the audit trail cannot be written, serve mutating requests anyway (logged) instead of
    /// refusing them with 503. Off by default: fail closed.
    pub audit_fail_open: bool,
    /// Start a new audit file at this size.
    pub audit_rotate_bytes: u64,
    /// Start a new audit file at this age, in seconds.
    pub audit_rotate_seconds: u64,
    /// Remove audit trail files older than this many days (0: keep everything).
    pub audit_retain_days: u64,
    /// Sign an audit digest at least this often, in seconds, even when idle.
    pub audit_digest_seconds: u64,
    /// The Ed25519 private key (PKCS#8 PEM) digests are signed with; `None` uses (and at first
    /// start creates) `<data_dir>/audit-signing.key`.
    pub audit_signing_key: Option<PathBuf>,
    /// Fingerprints of the signing keys the operator trusts: the gateway refuses to start with
    /// another key, and its start check accepts digests signed by any of them (key rotation);
    /// `keyhole audit verify --config` uses them too.
    pub audit_key_fingerprints: Vec<String>,
    /// Start even when the trail does not match its signed digests, recording a signed
    /// discontinuity (flag only: never kept in a file).
    pub audit_accept_discontinuity: bool,
    /// Lifetime of one job session, in seconds (SDKs using the credential endpoint refresh
    /// before it ends); never past the job's window.
    pub job_session_secs: u64,
    /// Serve HTTPS with these files; `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Seconds a client has to send a complete request head.
    pub header_timeout_secs: u64,
    /// Seconds a keep-alive connection may wait for its next request.
    pub idle_timeout_secs: u64,
    /// Window (seconds of waiting for body bytes) of the body-progress rule.
    pub body_timeout_secs: u64,
    /// Bytes a second a request body must average over each body-timeout window (0: at least
    /// one byte a window).
    pub body_min_rate: u64,
    /// Maximum open client connections; `None` derives it from the open-file limit (at most
    /// [`DEFAULT_MAX_CONNECTIONS`]).
    pub max_connections: Option<u64>,
    /// Maximum connections from one source address (IPv6: one /64); trusted proxies are exempt.
    pub max_connections_per_ip: u64,
    /// Start even when the data directory is group- or world-accessible (new files are still
    /// created private).
    pub allow_shared_data_dir: bool,
    /// OIDC issuers whose verification keys come from a JWKS file instead of the issuer's
    /// discovery document (issuer URL, file).
    pub oidc_jwks: Vec<(String, PathBuf)>,
    /// Where buckets live: the local store, an upstream S3 service, or both.
    pub storage: StorageConfig,
    /// Where the control-plane state lives.
    pub state: StateLocation,
    /// The 32-byte master key (64 hex digits) every node of a shared state uses; created
    /// (0600) if absent. Required with a PostgreSQL state; with SQLite the key is
    /// `<data_dir>/master.key`.
    pub master_key_file: Option<PathBuf>,
    /// How long a node of a shared (PostgreSQL) state serves its snapshot when it cannot read
    /// the database, in seconds; past it, requests are refused with 503.
    pub state_max_staleness_secs: u64,
    /// Active access keys at least this many days old are logged as a warning at start and
    /// daily, and counted in `/metrics` (never deactivated by the gateway); `None`: no bound.
    pub max_key_age_days: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            domain: None,
            region: DEFAULT_REGION.to_owned(),
            trusted_proxies: Vec::new(),
            audit_fail_open: false,
            audit_rotate_bytes: DEFAULT_AUDIT_ROTATE_BYTES,
            audit_rotate_seconds: DEFAULT_AUDIT_ROTATE_SECS,
            job_session_secs: crate::jobs::DEFAULT_JOB_SESSION_SECS,
            audit_retain_days: 0,
            audit_digest_seconds: DEFAULT_AUDIT_DIGEST_SECS,
            audit_signing_key: None,
            audit_key_fingerprints: Vec::new(),
            audit_accept_discontinuity: false,
            tls: None,
            header_timeout_secs: DEFAULT_HEADER_TIMEOUT_SECS,
            idle_timeout_secs: DEFAULT_IDLE_TIMEOUT_SECS,
            body_timeout_secs: DEFAULT_BODY_TIMEOUT_SECS,
            body_min_rate: DEFAULT_BODY_MIN_RATE,
            max_connections: None,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            allow_shared_data_dir: false,
            oidc_jwks: Vec::new(),
            storage: StorageConfig::default(),
            state: StateLocation::Sqlite,
            master_key_file: None,
            state_max_staleness_secs: crate::state::freshness::DEFAULT_MAX_STALENESS.as_secs(),
            max_key_age_days: None,
        }
    }
}

/// The keys a TOML configuration file may set. Unknown keys are an error, so a typo is caught.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    domain: Option<String>,
    region: Option<String>,
    trusted_proxies: Option<Vec<String>>,
    audit_fail_open: Option<bool>,
    audit_rotate_bytes: Option<u64>,
    audit_rotate_seconds: Option<u64>,
    job_session_secs: Option<u64>,
    audit_retain_days: Option<u64>,
    audit_digest_seconds: Option<u64>,
    audit_signing_key: Option<PathBuf>,
    audit_key_fingerprints: Option<Vec<String>>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    header_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    body_timeout_secs: Option<u64>,
    body_min_rate: Option<u64>,
    max_connections: Option<u64>,
    max_connections_per_ip: Option<u64>,
    allow_shared_data_dir: Option<bool>,
    oidc_jwks: Option<std::collections::BTreeMap<String, PathBuf>>,
    upstream_endpoint: Option<String>,
    upstream_region: Option<String>,
    upstream_credentials_file: Option<PathBuf>,
    upstream_profile: Option<String>,
    upstream_path_style: Option<bool>,
    upstream_ca_bundle: Option<PathBuf>,
    upstream_max_concurrency: Option<u64>,
    upstream_timeout_secs: Option<u64>,
    upstream_retries: Option<u32>,
    default_backend: Option<String>,
    buckets: Option<std::collections::BTreeMap<String, String>>,
    state: Option<String>,
    master_key_file: Option<PathBuf>,
    state_max_staleness_secs: Option<u64>,
    max_key_age_days: Option<u64>,
}

/// Values given on the command line or in `KEYHOLE_*` variables; `None` means "not given".
#[derive(Debug, Default, Clone)]
pub struct ConfigOverrides {
    /// `--listen` / `KEYHOLE_LISTEN`.
    pub listen: Option<String>,
    /// `--data-dir` / `KEYHOLE_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--domain` / `KEYHOLE_DOMAIN`.
    pub domain: Option<String>,
    /// `--region` / `KEYHOLE_REGION`.
    pub region: Option<String>,
    /// `--trusted-proxy` (repeatable) / `KEYHOLE_TRUSTED_PROXIES` (comma-separated).
    pub trusted_proxies: Option<Vec<String>>,
    /// `--audit-fail-open` / `KEYHOLE_AUDIT_FAIL_OPEN`.
    pub audit_fail_open: Option<bool>,
    /// `--audit-rotate-bytes` / `KEYHOLE_AUDIT_ROTATE_BYTES`.
    pub audit_rotate_bytes: Option<u64>,
    /// `--audit-rotate-seconds` / `KEYHOLE_AUDIT_ROTATE_SECONDS`.
    pub audit_rotate_seconds: Option<u64>,
    /// `--job-session-secs` / `KEYHOLE_JOB_SESSION_SECS`.
    pub job_session_secs: Option<u64>,
    /// `--audit-retain-days` / `KEYHOLE_AUDIT_RETAIN_DAYS`.
    pub audit_retain_days: Option<u64>,
    /// `--audit-digest-seconds` / `KEYHOLE_AUDIT_DIGEST_SECONDS`.
    pub audit_digest_seconds: Option<u64>,
    /// `--audit-signing-key` / `KEYHOLE_AUDIT_SIGNING_KEY`.
    pub audit_signing_key: Option<PathBuf>,
    /// `--audit-key-fingerprint` (repeatable) / `KEYHOLE_AUDIT_KEY_FINGERPRINTS` (comma-separated).
    pub audit_key_fingerprints: Option<Vec<String>>,
    /// `--audit-accept-discontinuity` (a flag only, on purpose: a setting kept in a file or the
    /// environment would accept every later mismatch too).
    pub audit_accept_discontinuity: bool,
    /// `--tls-cert` / `KEYHOLE_TLS_CERT`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key` / `KEYHOLE_TLS_KEY`.
    pub tls_key: Option<PathBuf>,
    /// `--header-timeout-secs` / `KEYHOLE_HEADER_TIMEOUT_SECS`.
    pub header_timeout_secs: Option<u64>,
    /// `--idle-timeout-secs` / `KEYHOLE_IDLE_TIMEOUT_SECS`.
    pub idle_timeout_secs: Option<u64>,
    /// `--body-timeout-secs` / `KEYHOLE_BODY_TIMEOUT_SECS`.
    pub body_timeout_secs: Option<u64>,
    /// `--body-min-rate` / `KEYHOLE_BODY_MIN_RATE`.
    pub body_min_rate: Option<u64>,
    /// `--max-connections` / `KEYHOLE_MAX_CONNECTIONS`.
    pub max_connections: Option<u64>,
    /// `--max-connections-per-ip` / `KEYHOLE_MAX_CONNECTIONS_PER_IP`.
    pub max_connections_per_ip: Option<u64>,
    /// `--allow-shared-data-dir` / `KEYHOLE_ALLOW_SHARED_DATA_DIR`.
    pub allow_shared_data_dir: Option<bool>,
    /// `--oidc-jwks ISSUER=FILE` (repeatable) / `KEYHOLE_OIDC_JWKS` (comma-separated).
    pub oidc_jwks: Option<Vec<String>>,
    /// `--upstream-*` / `KEYHOLE_UPSTREAM_*` and `--default-backend` / `KEYHOLE_DEFAULT_BACKEND`
    /// (the `[buckets]` table is a file setting only).
    pub storage: StorageSettings,
    /// `--state` / `KEYHOLE_STATE`.
    pub state: Option<String>,
    /// `--master-key-file` / `KEYHOLE_MASTER_KEY_FILE`.
    pub master_key_file: Option<PathBuf>,
    /// `--state-max-staleness-secs` / `KEYHOLE_STATE_MAX_STALENESS_SECS`.
    pub state_max_staleness_secs: Option<u64>,
    /// `--max-key-age-days` / `KEYHOLE_MAX_KEY_AGE_DAYS`.
    pub max_key_age_days: Option<u64>,
}

/// A configuration that could not be loaded; the message names the field and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML or has unknown keys.
    #[error(
        "invalid config file `{path}`: {message} (valid keys: listen, data_dir, domain, region, trusted_proxies, audit_fail_open, audit_rotate_bytes, audit_rotate_seconds, audit_retain_days, audit_digest_seconds, audit_signing_key, audit_key_fingerprints, job_session_secs, tls_cert, tls_key, header_timeout_secs, idle_timeout_secs, body_timeout_secs, body_min_rate, max_connections, max_connections_per_ip, allow_shared_data_dir, oidc_jwks, upstream_endpoint, upstream_region, upstream_credentials_file, upstream_profile, upstream_path_style, upstream_ca_bundle, upstream_max_concurrency, upstream_timeout_secs, upstream_retries, default_backend, state, master_key_file, state_max_staleness_secs, max_key_age_days, and the [buckets] table)"
    )]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message.
        message: String,
    },
    /// A field has a value that cannot be used.
    #[error("invalid `{field}` value `{value}`: {hint}")]
    Invalid {
        /// The field name as written in the config file.
        field: &'static str,
        /// The offending value.
        value: String,
        /// What a valid value looks like.
        hint: &'static str,
    },
    /// The state URL cannot be used (its TLS settings, or not a PostgreSQL URL); the value is
    /// shown without its password.
    #[error("invalid `state` value `{value}`: {reason}")]
    State {
        /// The URL, its password replaced by `***`.
        value: String,
        /// What is wrong and what to write instead.
        reason: String,
    },
    /// One of a pair of settings that only work together was given alone.
    #[error("`{given}` is set but `{missing}` is not: {hint}")]
    Incomplete {
        /// The setting that was given.
        given: &'static str,
        /// The setting that is missing.
        missing: &'static str,
        /// How to fix it.
        hint: &'static str,
    },
}

impl Config {
    /// Merges the optional config file, the overrides and the defaults, and validates the result.
    pub fn load(file: Option<&Path>, overrides: ConfigOverrides) -> Result<Config, ConfigError> {
        let from_file = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_owned(),
                    message: e.message().to_owned(),
                })?
            }
            None => FileConfig::default(),
        };
        let defaults = Config::default();
        let listen_text = overrides.listen.or(from_file.listen);
        let listen = match listen_text {
            Some(text) => text.parse().map_err(|_| ConfigError::Invalid {
                field: "listen",
                value: text.clone(),
                hint: "use IP:PORT, e.g. 127.0.0.1:9000 or [::1]:9000",
            })?,
            None => defaults.listen,
        };
        let region = overrides
            .region
            .or(from_file.region)
            .unwrap_or(defaults.region);
        check_region("region", &region)?;
        let storage = storage::load(overrides.storage.or(StorageSettings {
            endpoint: from_file.upstream_endpoint,
            region: from_file.upstream_region,
            credentials_file: from_file.upstream_credentials_file,
            profile: from_file.upstream_profile,
            path_style: from_file.upstream_path_style,
            ca_bundle: from_file.upstream_ca_bundle,
            max_concurrency: from_file.upstream_max_concurrency,
            timeout_secs: from_file.upstream_timeout_secs,
            retries: from_file.upstream_retries,
            default_backend: from_file.default_backend,
            buckets: from_file.buckets.unwrap_or_default(),
        }))?;
        let domain = overrides.domain.or(from_file.domain);
        if let Some(d) = &domain {
            if d.is_empty() || d.contains('/') || d.contains(':') || d.starts_with('.') {
                return Err(ConfigError::Invalid {
                    field: "domain",
                    value: d.clone(),
                    hint: "use a bare host name such as s3.local (no scheme, port or leading dot)",
                });
            }
        }
        let trusted_proxies = overrides
            .trusted_proxies
            .or(from_file.trusted_proxies)
            .unwrap_or_default();
        for cidr in &trusted_proxies {
            if keyhole_policy::condition::ip::Cidr::parse(cidr).is_none() {
                return Err(ConfigError::Invalid {
                    field: "trusted_proxies",
                    value: cidr.clone(),
                    hint: "use CIDRs such as 10.0.0.0/8, 127.0.0.1/32 or fd00::/8",
                });
            }
        }
        let audit_rotate_bytes = overrides
            .audit_rotate_bytes
            .or(from_file.audit_rotate_bytes)
            .unwrap_or(defaults.audit_rotate_bytes);
        if audit_rotate_bytes == 0 {
            return Err(ConfigError::Invalid {
                field: "audit_rotate_bytes",
                value: "0".into(),
                hint: "use a size in bytes of at least 1, e.g. 67108864",
            });
        }
        let audit_rotate_seconds = overrides
            .audit_rotate_seconds
            .or(from_file.audit_rotate_seconds)
            .unwrap_or(defaults.audit_rotate_seconds);
        if audit_rotate_seconds == 0 {
            return Err(ConfigError::Invalid {
                field: "audit_rotate_seconds",
                value: "0".into(),
                hint: "use a number of seconds of at least 1, e.g. 3600",
            });
        }
        let job_session_secs = overrides
            .job_session_secs
            .or(from_file.job_session_secs)
            .unwrap_or(defaults.job_session_secs);
        if !(MIN_JOB_SESSION_SECS..=MAX_JOB_SESSION_SECS).contains(&job_session_secs) {
            return Err(ConfigError::Invalid {
                field: "job_session_secs",
                value: job_session_secs.to_string(),
                hint: "use 15 to 43200 seconds (default 3600)",
            });
        }
        let audit_retain_days = overrides
            .audit_retain_days
            .or(from_file.audit_retain_days)
            .unwrap_or(defaults.audit_retain_days);
        if audit_retain_days > MAX_AUDIT_RETAIN_DAYS {
            return Err(ConfigError::Invalid {
                field: "audit_retain_days",
                value: audit_retain_days.to_string(),
                hint: "use 0 (keep everything) or a number of days up to 36500",
            });
        }
        let audit_digest_seconds = overrides
            .audit_digest_seconds
            .or(from_file.audit_digest_seconds)
            .unwrap_or(defaults.audit_digest_seconds);
        if !(1..=MAX_AUDIT_DIGEST_SECS).contains(&audit_digest_seconds) {
            return Err(ConfigError::Invalid {
                field: "audit_digest_seconds",
                value: audit_digest_seconds.to_string(),
                hint:
                    "use 1 to 3600 seconds (default 60): the longest time an event stays unsigned",
            });
        }
        let mut audit_key_fingerprints = Vec::new();
        for f in overrides
            .audit_key_fingerprints
            .or(from_file.audit_key_fingerprints)
            .unwrap_or_default()
        {
            let parsed = crate::audit::keys::parse_pin(&f).ok_or(ConfigError::Invalid {
                field: "audit_key_fingerprints",
                value: f.clone(),
                hint: "use the 64-hex-digit fingerprint `keyhole serve` prints at first start (or `keyhole audit keygen` prints), with `@SEQ` for a key retired at digest #SEQ",
            })?;
            audit_key_fingerprints.push(parsed);
        }
        let timeout =
            |field: &'static str, given: Option<u64>, default: u64, hint: &'static str| {
                let secs = given.unwrap_or(default);
                if (1..=MAX_TIMEOUT_SECS).contains(&secs) {
                    Ok(secs)
                } else {
                    Err(ConfigError::Invalid {
                        field,
                        value: secs.to_string(),
                        hint,
                    })
                }
            };
        let header_timeout_secs = timeout(
            "header_timeout_secs",
            overrides
                .header_timeout_secs
                .or(from_file.header_timeout_secs),
            defaults.header_timeout_secs,
            "use 1 to 3600 seconds (default 10)",
        )?;
        let idle_timeout_secs = timeout(
            "idle_timeout_secs",
            overrides.idle_timeout_secs.or(from_file.idle_timeout_secs),
            defaults.idle_timeout_secs,
            "use 1 to 3600 seconds (default 30)",
        )?;
        let body_timeout_secs = timeout(
            "body_timeout_secs",
            overrides.body_timeout_secs.or(from_file.body_timeout_secs),
            defaults.body_timeout_secs,
            "use 1 to 3600 seconds (default 20)",
        )?;
        let body_min_rate = overrides
            .body_min_rate
            .or(from_file.body_min_rate)
            .unwrap_or(defaults.body_min_rate);
        if body_min_rate > 1 << 30 {
            return Err(ConfigError::Invalid {
                field: "body_min_rate",
                value: body_min_rate.to_string(),
                hint: "use bytes a second from 0 to 1073741824 (default 1024)",
            });
        }
        let max_connections = overrides.max_connections.or(from_file.max_connections);
        if let Some(n) = max_connections {
            if !(1..=MAX_MAX_CONNECTIONS).contains(&n) {
                return Err(ConfigError::Invalid {
                    field: "max_connections",
                    value: n.to_string(),
                    hint: "use 1 to 1000000 (default: 4096, or less if the open-file limit is low)",
                });
            }
        }
        let max_connections_per_ip = overrides
            .max_connections_per_ip
            .or(from_file.max_connections_per_ip)
            .unwrap_or(defaults.max_connections_per_ip);
        if !(1..=MAX_MAX_CONNECTIONS).contains(&max_connections_per_ip) {
            return Err(ConfigError::Invalid {
                field: "max_connections_per_ip",
                value: max_connections_per_ip.to_string(),
                hint: "use 1 to 1000000 (default 256)",
            });
        }
        let tls = match (
            overrides.tls_cert.or(from_file.tls_cert),
            overrides.tls_key.or(from_file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::Incomplete {
                    given: "tls_cert",
                    missing: "tls_key",
                    hint: "HTTPS needs the certificate's private key too: add --tls-key FILE (KEYHOLE_TLS_KEY, or tls_key in the config file)",
                })
            }
            (None, Some(_)) => {
                return Err(ConfigError::Incomplete {
                    given: "tls_key",
                    missing: "tls_cert",
                    hint: "HTTPS needs the certificate too: add --tls-cert FILE (KEYHOLE_TLS_CERT, or tls_cert in the config file)",
                })
            }
        };
        let oidc_jwks = match overrides.oidc_jwks {
            Some(list) => list
                .iter()
                .map(|pair| {
                    pair.split_once('=')
                        .map(|(i, p)| (i.to_owned(), PathBuf::from(p)))
                        .ok_or_else(|| ConfigError::Invalid {
                            field: "oidc_jwks",
                            value: pair.clone(),
                            hint: "use ISSUER=FILE, e.g. https://kubernetes.default.svc=/etc/keyhole/cluster-jwks.json",
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => from_file.oidc_jwks.unwrap_or_default().into_iter().collect(),
        };
        for (issuer, _) in &oidc_jwks {
            if crate::state::oidc::validate_url(issuer).is_err() {
                return Err(ConfigError::Invalid {
                    field: "oidc_jwks",
                    value: issuer.clone(),
                    hint: "the issuer must be an https:// URL, exactly as the tokens' `iss` claim and the IAM OIDC provider spell it",
                });
            }
        }
        let state = match overrides.state.or(from_file.state) {
            Some(text) => parse_state(&text)?,
            None => StateLocation::Sqlite,
        };
        let master_key_file = overrides.master_key_file.or(from_file.master_key_file);
        match (&state, &master_key_file) {
            (StateLocation::Postgres(_), None) => {
                return Err(ConfigError::Incomplete {
                    given: "state",
                    missing: "master_key_file",
                    hint: "nodes sharing a PostgreSQL state must share the master key too: add --master-key-file FILE (KEYHOLE_MASTER_KEY_FILE, or master_key_file in the config file), the same file on every node; the first node creates it",
                })
            }
            (StateLocation::Sqlite, Some(_)) => {
                return Err(ConfigError::Incomplete {
                    given: "master_key_file",
                    missing: "state",
                    hint: "a master key file is for nodes sharing a PostgreSQL state (--state postgres://...); one node keeps its key in <data-dir>/master.key",
                })
            }
            _ => {}
        }
        let state_max_staleness_secs = overrides
            .state_max_staleness_secs
            .or(from_file.state_max_staleness_secs)
            .unwrap_or(defaults.state_max_staleness_secs);
        if !(1..=MAX_STATE_STALENESS_SECS).contains(&state_max_staleness_secs) {
            return Err(ConfigError::Invalid {
                field: "state_max_staleness_secs",
                value: state_max_staleness_secs.to_string(),
                hint: "use 1 to 3600 seconds (default 30): how long a node serves its snapshot while PostgreSQL cannot be read",
            });
        }
        let max_key_age_days = overrides.max_key_age_days.or(from_file.max_key_age_days);
        if let Some(days) = max_key_age_days.filter(|d| *d > MAX_KEY_AGE_DAYS) {
            return Err(ConfigError::Invalid {
                field: "max_key_age_days",
                value: days.to_string(),
                hint:
                    "use 0 to 36500 days (90 is a common rotation bound; 0 names every active key)",
            });
        }
        Ok(Config {
            state,
            master_key_file,
            state_max_staleness_secs,
            max_key_age_days,
            oidc_jwks,
            audit_retain_days,
            audit_digest_seconds,
            audit_signing_key: overrides.audit_signing_key.or(from_file.audit_signing_key),
            audit_key_fingerprints,
            audit_accept_discontinuity: overrides.audit_accept_discontinuity,
            tls,
            header_timeout_secs,
            idle_timeout_secs,
            body_timeout_secs,
            body_min_rate,
            max_connections,
            max_connections_per_ip,
            allow_shared_data_dir: overrides
                .allow_shared_data_dir
                .or(from_file.allow_shared_data_dir)
                .unwrap_or(defaults.allow_shared_data_dir),
            job_session_secs,
            trusted_proxies,
            audit_fail_open: overrides
                .audit_fail_open
                .or(from_file.audit_fail_open)
                .unwrap_or(defaults.audit_fail_open),
            audit_rotate_bytes,
            audit_rotate_seconds,
            listen,
            data_dir: overrides
                .data_dir
                .or(from_file.data_dir)
                .unwrap_or(defaults.data_dir),
            domain: domain.map(|d| d.to_ascii_lowercase()),
            region,
            storage,
        })
    }
}

/// A region name: lowercase letters, digits and `-`, at most 32 characters.
fn check_region(field: &'static str, region: &str) -> Result<(), ConfigError> {
    if region.is_empty()
        || region.len() > 32
        || !region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(ConfigError::Invalid {
            field,
            value: region.to_owned(),
            hint: "use a region name such as us-east-1 (lowercase letters, digits, '-')",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `max_key_age_days`: unset by default, from the file, overridden by the flag or variable,
    /// and bounded (0 is allowed: every active key is over it).
    #[test]
    fn max_key_age_days_from_file_and_overrides() {
        let c = Config::load(None, ConfigOverrides::default()).unwrap();
        assert_eq!(c.max_key_age_days, None);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keyhole.toml");
        std::fs::write(&file, "max_key_age_days = 90\n").unwrap();
        let c = Config::load(Some(&file), ConfigOverrides::default()).unwrap();
        assert_eq!(c.max_key_age_days, Some(90));
        let over = |days: u64| ConfigOverrides {
            max_key_age_days: Some(days),
            ..ConfigOverrides::default()
        };
        assert_eq!(
            Config::load(Some(&file), over(0)).unwrap().max_key_age_days,
            Some(0)
        );
        let e = Config::load(None, over(MAX_KEY_AGE_DAYS + 1))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("max_key_age_days") && e.contains("0 to 36500"),
            "{e}"
        );
    }

    #[test]
    fn the_state_is_sqlite_by_default_or_a_postgres_url_with_a_master_key_file() {
        let c = Config::load(None, ConfigOverrides::default()).unwrap();
        assert_eq!(c.state, StateLocation::Sqlite);
        let url = "postgres://keyhole:pw@127.0.0.1:5432/keyhole";
        let with = |state: Option<&str>, key: Option<&str>| {
            Config::load(
                None,
                ConfigOverrides {
                    state: state.map(str::to_owned),
                    master_key_file: key.map(PathBuf::from),
                    ..ConfigOverrides::default()
                },
            )
        };
        let c = with(Some(url), Some("/k")).unwrap();
        assert_eq!(c.state, StateLocation::Postgres(url.into()));
        assert_eq!(c.master_key_file, Some(PathBuf::from("/k")));
        assert!(
            !format!("{c:?}").contains("pw"),
            "the password is not in Debug"
        );
        let e = with(Some(url), None).unwrap_err().to_string();
        assert!(e.contains("master_key_file"), "{e}");
        let e = with(None, Some("/k")).unwrap_err().to_string();
        assert!(e.contains("postgres"), "{e}");
        let e = with(Some("mysql://x@y/z"), Some("/k"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("postgres://USER@HOST:PORT/DB"), "{e}");
        assert_eq!(
            with(Some("sqlite"), None).unwrap().state,
            StateLocation::Sqlite
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k.toml");
        std::fs::write(
            &file,
            format!("state = \"{url}\"\nmaster_key_file = \"/k\"\n"),
        )
        .unwrap();
        let c = Config::load(Some(&file), ConfigOverrides::default()).unwrap();
        assert_eq!(c.state, StateLocation::Postgres(url.into()));
        assert_eq!(
            redact_url(url),
            "postgres://keyhole:***@127.0.0.1:5432/keyhole"
        );
        assert_eq!(
            redact_url("postgres://k@h/db?sslmode=require&password=pw&sslrootcert=/ca.pem"),
            "postgres://k@h/db?sslmode=require&password=***&sslrootcert=/ca.pem"
        );
        assert_eq!(
            redact_url("postgres://k:a%40b@h/db?pass%77ord=pw"),
            "postgres://k:***@h/db?pass%77ord=***"
        );
        // Malformed URLs are the ones errors echo: no spelling or stray character shows any
        // of the secret (review 10, F5).
        for (url, secret) in [
            ("postgres://k@h/db?Password=s3cr3t", "s3cr3t"),
            ("postgres://k@h/db?password=ab&cd", "cd"),
            ("postgres://k:p?w@d@h/db", "p?w"),
            ("postgres://k:s3cr3t@h/db?options=-c%20x", "s3cr3t"),
            ("postgres://k@h/db?sslpassword=s3cr3t", "s3cr3t"),
        ] {
            let shown = redact_url(url);
            assert!(!shown.contains(secret), "{url} -> {shown}");
        }
        // A TLS setting that cannot work is refused at load, naming the fix, without the
        // password.
        let e = with(
            Some("postgres://k:pw-123@h/db?sslmode=verify-full"),
            Some("/k"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("needs sslrootcert") && e.contains("k:***@h") && !e.contains("pw-123"),
            "{e}"
        );
    }

    #[test]
    fn defaults_listen_on_loopback_9000() {
        let c = Config::load(None, ConfigOverrides::default()).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.data_dir, PathBuf::from("keyhole-data"));
        assert_eq!(c.region, "us-east-1");
        assert_eq!(c.domain, None);
        assert!(!c.audit_fail_open, "the audit sink fails closed by default");
        assert_eq!(c.audit_rotate_bytes, DEFAULT_AUDIT_ROTATE_BYTES);
    }

    #[test]
    fn audit_keys_load_from_the_file_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        std::fs::write(
            &path,
            "audit_fail_open = true\naudit_rotate_bytes = 1000\naudit_rotate_seconds = 60\n",
        )
        .unwrap();
        let c = Config::load(Some(&path), ConfigOverrides::default()).unwrap();
        assert!(c.audit_fail_open);
        assert_eq!((c.audit_rotate_bytes, c.audit_rotate_seconds), (1000, 60));
        let c = Config::load(
            Some(&path),
            ConfigOverrides {
                audit_fail_open: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(!c.audit_fail_open);
        let e = Config::load(
            None,
            ConfigOverrides {
                audit_rotate_bytes: Some(0),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("audit_rotate_bytes"), "{e}");
    }

    #[test]
    fn audit_signing_options_load_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        let fp = "ab".repeat(32);
        std::fs::write(
            &path,
            format!("audit_digest_seconds = 5\naudit_signing_key = \"/etc/kh/audit.key\"\naudit_key_fingerprints = [\"SHA256:{}\"]\n", fp.to_uppercase()),
        )
        .unwrap();
        let c = Config::load(Some(&path), ConfigOverrides::default()).unwrap();
        assert_eq!(c.audit_digest_seconds, 5);
        assert_eq!(
            c.audit_signing_key,
            Some(PathBuf::from("/etc/kh/audit.key"))
        );
        assert_eq!(c.audit_key_fingerprints, vec![fp]);
        assert!(!c.audit_accept_discontinuity);
        let d = Config::load(None, ConfigOverrides::default()).unwrap();
        assert_eq!(d.audit_digest_seconds, DEFAULT_AUDIT_DIGEST_SECS);
        for o in [
            ConfigOverrides {
                audit_digest_seconds: Some(0),
                ..Default::default()
            },
            ConfigOverrides {
                audit_key_fingerprints: Some(vec!["abc".into()]),
                ..Default::default()
            },
        ] {
            let e = Config::load(None, o).unwrap_err().to_string();
            assert!(
                e.contains("audit_digest_seconds") || e.contains("audit_key_fingerprints"),
                "{e}"
            );
        }
        // The discontinuity switch is not a file key.
        std::fs::write(&path, "audit_accept_discontinuity = true\n").unwrap();
        assert!(Config::load(Some(&path), ConfigOverrides::default()).is_err());
    }

    #[test]
    fn overrides_beat_file_and_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.2:9100\"\nregion = \"eu-west-1\"\ndata_dir = \"/tmp/x\"\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&path),
            ConfigOverrides {
                listen: Some("127.0.0.3:9200".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.3:9200");
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn oidc_jwks_files_come_from_flags_or_a_table_and_issuers_must_be_https() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        std::fs::write(
            &path,
            "[oidc_jwks]\n\"https://kubernetes.default.svc\" = \"/etc/keyhole/jwks.json\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&path), ConfigOverrides::default()).unwrap();
        assert_eq!(
            c.oidc_jwks,
            [(
                "https://kubernetes.default.svc".to_owned(),
                PathBuf::from("/etc/keyhole/jwks.json")
            )]
        );
        let flag = |v: &str| {
            Config::load(
                Some(&path),
                ConfigOverrides {
                    oidc_jwks: Some(vec![v.to_owned()]),
                    ..ConfigOverrides::default()
                },
            )
        };
        assert_eq!(flag("https://idp=/k.json").unwrap().oidc_jwks.len(), 1);
        for bad in ["https://idp", "http://idp=/k.json"] {
            let e = flag(bad).unwrap_err().to_string();
            assert!(e.contains("oidc_jwks"), "{bad}: {e}");
        }
    }

    #[test]
    fn unknown_file_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        std::fs::write(&path, "lisen = \"127.0.0.1:1\"\n").unwrap();
        let err = Config::load(Some(&path), ConfigOverrides::default()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("lisen"), "{text}");
        assert!(text.contains("valid keys"), "{text}");
    }

    #[test]
    fn bad_listen_names_the_field_and_the_fix() {
        let err = Config::load(
            None,
            ConfigOverrides {
                listen: Some("localhost".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`listen`") && text.contains("IP:PORT"),
            "{text}"
        );
    }

    #[test]
    fn trusted_proxies_must_be_cidrs() {
        let ok = Config::load(
            None,
            ConfigOverrides {
                trusted_proxies: Some(vec!["10.0.0.0/8".into(), "::1/128".into()]),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(ok.trusted_proxies.len(), 2);
        let err = Config::load(
            None,
            ConfigOverrides {
                trusted_proxies: Some(vec!["10.0.0.0/33".into()]),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("trusted_proxies"), "{err}");
    }

    #[test]
    fn tls_needs_both_files_from_any_source() {
        let c = Config::load(None, ConfigOverrides::default()).unwrap();
        assert_eq!(c.tls, None, "plain HTTP by default");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        std::fs::write(&path, "tls_cert = \"/etc/kh/cert.pem\"\n").unwrap();
        // The file names the certificate, a flag the key: together they are complete.
        let c = Config::load(
            Some(&path),
            ConfigOverrides {
                tls_key: Some("/etc/kh/key.pem".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            c.tls,
            Some(TlsFiles {
                cert: "/etc/kh/cert.pem".into(),
                key: "/etc/kh/key.pem".into()
            })
        );
        let e = Config::load(Some(&path), ConfigOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`tls_cert` is set but `tls_key` is not") && e.contains("--tls-key"),
            "{e}"
        );
        let e = Config::load(
            None,
            ConfigOverrides {
                tls_key: Some("/k.pem".into()),
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`tls_key` is set but `tls_cert` is not") && e.contains("--tls-cert"),
            "{e}"
        );
    }

    #[test]
    fn connection_limits_load_from_every_source_and_are_checked() {
        let c = Config::load(None, ConfigOverrides::default()).unwrap();
        assert_eq!(
            (
                c.header_timeout_secs,
                c.idle_timeout_secs,
                c.body_timeout_secs,
                c.body_min_rate
            ),
            (10, 30, 20, 1024)
        );
        assert_eq!((c.max_connections, c.max_connections_per_ip), (None, 256));
        assert!(!c.allow_shared_data_dir);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        std::fs::write(
            &path,
            "header_timeout_secs = 3\nidle_timeout_secs = 4\nbody_timeout_secs = 5\nbody_min_rate = 0\nmax_connections = 100\nmax_connections_per_ip = 7\nallow_shared_data_dir = true\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&path),
            ConfigOverrides {
                idle_timeout_secs: Some(9),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            (
                c.header_timeout_secs,
                c.idle_timeout_secs,
                c.body_timeout_secs,
                c.body_min_rate
            ),
            (3, 9, 5, 0)
        );
        assert_eq!(
            (c.max_connections, c.max_connections_per_ip),
            (Some(100), 7)
        );
        assert!(c.allow_shared_data_dir);
        for (o, field) in [
            (
                ConfigOverrides {
                    header_timeout_secs: Some(0),
                    ..Default::default()
                },
                "`header_timeout_secs`",
            ),
            (
                ConfigOverrides {
                    body_timeout_secs: Some(3601),
                    ..Default::default()
                },
                "`body_timeout_secs`",
            ),
            (
                ConfigOverrides {
                    max_connections: Some(0),
                    ..Default::default()
                },
                "`max_connections`",
            ),
            (
                ConfigOverrides {
                    max_connections_per_ip: Some(0),
                    ..Default::default()
                },
                "`max_connections_per_ip`",
            ),
        ] {
            let e = Config::load(None, o).unwrap_err().to_string();
            assert!(e.contains(field) && e.contains("use "), "{e}");
        }
    }

    #[test]
    fn bad_region_and_domain_are_refused() {
        for (o, field) in [
            (
                ConfigOverrides {
                    region: Some("US East".into()),
                    ..Default::default()
                },
                "region",
            ),
            (
                ConfigOverrides {
                    domain: Some("http://x".into()),
                    ..Default::default()
                },
                "domain",
            ),
        ] {
            let err = Config::load(None, o).unwrap_err();
            assert!(err.to_string().contains(field), "{err}");
        }
    }
}
