//! The keyhole gateway: an S3-compatible server that authenticates every request with SigV4 and
//! authorizes it before any handler runs.
//!
//! [`Gateway`] holds the configuration, the account, the object store and the two security
//! components the pipeline cannot run without: an [`auth::Authenticator`] and an
//! [`auth::Authorize`] implementation. [`listener::serve`] runs it on a listener, handing each
//! request to [`pipeline::handle`].
//!
//! # Security
//! There is no unauthenticated mode: a request without a signature is the anonymous principal and
//! goes through the same authorizer as everyone else.

#![deny(missing_docs)]

pub mod access;
pub mod account;
pub mod analyzer;
pub mod audit;
pub mod auth;
pub mod authz;
pub mod backend;
pub mod body;
pub mod checksum;
pub mod client;
pub mod config;
pub mod context;
pub mod datadir;
pub mod endpoint;
pub mod error;
pub mod iam;
pub mod jobs;
pub mod keys;
pub mod listener;
pub mod metrics;
pub mod names;
pub mod node;
pub mod oidc;
pub mod pipeline;
pub mod s3;
pub mod state;
pub mod sts;
pub mod tls;
pub mod xml;

use std::sync::Arc;

use keyhole_store::LocalStore;
use sha2::Digest;

pub use account::Account;
pub use config::{Config, ConfigOverrides, StorageSettings};

/// Everything a request handler needs, shared by all connections.
#[derive(Debug)]
pub struct Gateway {
    /// The loaded configuration.
    pub config: Config,
    /// The account (id and root credentials).
    pub account: Account,
    /// Object storage: every bucket routed to the backend that keeps it (the local store, or an
    /// upstream S3 service). The only way handlers reach objects.
    pub storage: Arc<dyn backend::Backend>,
    /// Users, keys and policies (SQLite) with the in-memory snapshot requests read.
    pub state: Arc<state::State>,
    /// Verifies signatures and finds the principal.
    pub authn: auth::Authenticator,
    /// Decides every (action, resource) pair.
    pub authz: Arc<dyn authz::Authorize>,
    /// The canonical user id shown as bucket and object owner.
    pub owner_id: String,
    /// Seals and opens STS session tokens.
    pub tokens: Arc<sts::TokenSealer>,
    /// Parsed `trusted_proxies`.
    pub trusted_proxies: Vec<keyhole_policy::condition::ip::Cidr>,
    /// Where every request's audit event goes.
    pub audit: audit::AuditSink,
    /// Counters for `/metrics`.
    pub metrics: Arc<metrics::Metrics>,
    /// Jobs and session revocations.
    pub jobs: Arc<jobs::store::JobStore>,
    /// The certificate and key every connection is served with (HTTPS); `None` serves plain
    /// HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The certificate `tls` serves, read again from its files on SIGHUP (`keyhole serve`).
    pub tls_certificate: Option<Arc<tls::ServerCertificate>>,
    /// The connection limits and timeouts, resolved against the open-file limit.
    pub limits: listener::Limits,
    /// The data directory's lock ([`datadir::lock`]), held while the gateway lives.
    pub data_dir_lock: Option<Arc<std::fs::File>>,
    /// OIDC providers' verification keys (`AssumeRoleWithWebIdentity`).
    pub oidc_keys: Arc<oidc::keys::KeyCache>,
    /// With a shared (PostgreSQL) state: this node's job-session requests waiting to be written
    /// to the database for job reports ([`jobs::facts`]); `None` with SQLite.
    pub job_feed: Option<Arc<jobs::facts::JobFeed>>,
    /// The newest use of each long-term access key not yet written to the state
    /// ([`keys::Recorder`]; flushed by [`keys::run`]).
    pub key_usage: Arc<keys::Recorder>,
    /// Serializes, per bucket name, the steps that create or delete a bucket with those that
    /// write its settings to the state (`s3::bucket`).
    pub bucket_names: s3::BucketNameLocks,
}

impl Gateway {
    /// Assembles a gateway. Both an authenticator (built from the account) and an authorizer are
    /// required: there is no way to build one that skips either; and so is an audit sink.
    #[expect(
        clippy::too_many_arguments,
        reason = "each part is required; a builder would make one of them forgettable"
    )]
    pub fn new(
        config: Config,
        account: Account,
        storage: Arc<dyn backend::Backend>,
        state: Arc<state::State>,
        authz: Arc<dyn authz::Authorize>,
        tokens: Arc<sts::TokenSealer>,
        audit: audit::AuditSink,
        metrics: Arc<metrics::Metrics>,
        jobs: Arc<jobs::store::JobStore>,
        tls: Option<Arc<rustls::ServerConfig>>,
        limits: listener::Limits,
    ) -> Gateway {
        let authn = auth::Authenticator::new(
            account.record.root_access_key_id.clone(),
            account.root_secret.clone(),
            config.region.clone(),
            state.clone(),
            tokens.clone(),
            jobs.clone(),
        );
        let owner_id = hex::encode(sha2::Sha256::digest(account.record.account_id.as_bytes()));
        // INVARIANT: Config::load validated every entry.
        let trusted_proxies = config
            .trusted_proxies
            .iter()
            .filter_map(|c| keyhole_policy::condition::ip::Cidr::parse(c))
            .collect();
        let oidc_keys = Arc::new(oidc::keys::KeyCache::new(config.oidc_jwks.clone()));
        let key_usage = Arc::new(keys::Recorder::default());
        key_usage.set_root_key(&account.record.root_access_key_id);
        Gateway {
            oidc_keys,
            config,
            account,
            storage,
            state,
            authn,
            authz,
            owner_id,
            tokens,
            trusted_proxies,
            audit,
            metrics,
            jobs,
            tls,
            limits,
            data_dir_lock: None,
            tls_certificate: None,
            job_feed: None,
            key_usage,
            bucket_names: s3::BucketNameLocks::default(),
        }
    }
}

/// A gateway on a fresh data directory, for tests (the directory lives as long as the guard).
#[cfg(test)]
pub(crate) fn test_gateway() -> (tempfile::TempDir, Gateway) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(
        None,
        ConfigOverrides {
            data_dir: Some(dir.path().join("data")),
            ..Default::default()
        },
    )
    .unwrap();
    (dir, open(config).unwrap())
}

/// Loads the TLS certificate and key (when configured) and the audit signing key, opens (or on
/// first start creates, with the audit trail's signed genesis) the account, the state database
/// and the store under the configured data directory, checks the audit trail against its last
/// signed digest and starts the audit writer, and builds the gateway with the IAM policy
/// authorizer.
///
/// Nothing is created or changed when it fails: the limits, the certificate, a configured
/// signing key and the data directory's permissions are checked first, and a data directory this
/// call created is removed again if a later step fails. (Bind the listening socket before calling
/// it, so that a busy port fails first too.)
pub fn open(config: Config) -> Result<Gateway, OpenError> {
    open_with(config, None)
}

/// [`open`], with where keyhole's own upstream credentials come from (required when the
/// configuration names an upstream; the binary gives the AWS credential chain). The upstream's
/// credentials are read before anything is created.
pub fn open_with(
    config: Config,
    upstream_credentials: Option<Arc<dyn backend::upstream::credentials::CredentialSource>>,
) -> Result<Gateway, OpenError> {
    let limits = listener::Limits::resolve(&config)?;
    let upstream = match &config.storage.upstream {
        Some(up) => {
            let source = upstream_credentials.ok_or_else(|| {
                backend::upstream::UpstreamError::Credentials(
                    "no source of upstream credentials was given".to_owned(),
                )
            })?;
            Some(Arc::new(backend::upstream::UpstreamBackend::open(
                up,
                &config.storage.buckets,
                source,
                &config.region,
            )?))
        }
        None => None,
    };
    let certificate = config
        .tls
        .as_ref()
        .map(|t| tls::ServerCertificate::load(&t.cert, &t.key))
        .transpose()?;
    let tls = certificate.as_ref().map(|c| c.config()).transpose()?;
    // A configured audit signing key is read (and checked against the pinned fingerprints)
    // before anything is created on disk; the default one, inside the data directory, is created
    // with the account if missing.
    // JWKS files of OIDC issuers must be usable before anything is created.
    for (issuer, path) in &config.oidc_jwks {
        oidc::keys::check_file(path).map_err(|problem| OpenError::OidcJwks {
            issuer: issuer.clone(),
            path: path.clone(),
            problem,
        })?;
    }
    let signer = match &config.audit_signing_key {
        Some(path) => {
            let s = audit::keys::Signer::read(path)?;
            check_pinned(&config, &s, path)?;
            Some(s)
        }
        None => None,
    };
    let prepared = datadir::prepare(&config.data_dir, config.allow_shared_data_dir)?;
    // Another process holding the lock may be using a directory this start created: it is left
    // alone.
    let lock = datadir::lock(&config.data_dir)?;
    match open_in(config, limits, tls, signer, upstream) {
        Ok(mut gateway) => {
            gateway.data_dir_lock = Some(Arc::new(lock));
            gateway.tls_certificate = certificate;
            Ok(gateway)
        }
        Err(e) => {
            // Rolled back under the lock, so no other start begins in a half-removed directory.
            prepared.roll_back();
            drop(lock);
            Err(e)
        }
    }
}

/// [`open`] once the data directory exists and is private.
fn open_in(
    config: Config,
    limits: listener::Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut signer: Option<audit::keys::Signer>,
    upstream: Option<Arc<backend::upstream::UpstreamBackend>>,
) -> Result<Gateway, OpenError> {
    // The trail's directory is created private here, before the genesis or the sink opens it.
    let audit_dir = config.data_dir.join(audit::AUDIT_DIR);
    datadir::create_private_dir_all(&audit_dir).map_err(|source| datadir::DataDirError::Io {
        action: "create the audit directory",
        path: audit_dir.clone(),
        source,
    })?;
    // This node's id: in the genesis, every digest and every event of its trail.
    let node_id = node::load_or_create(&config.data_dir)?;
    let key_path = config
        .audit_signing_key
        .clone()
        .unwrap_or_else(|| config.data_dir.join(audit::DEFAULT_SIGNING_KEY_FILE));
    // The audit trail's signed genesis, written when this data directory gets its account.
    let mut begin_trail = |record: &account::AccountRecord| -> Result<(), account::AccountError> {
        let s = match signer.take() {
            Some(s) => s,
            None => audit::load_or_create_signing_key(&key_path, true)?.0,
        };
        // The signed genesis: from now on an empty trail of this account fails verification.
        audit::sink::genesis(
            &audit_dir,
            &s,
            &record.account_id,
            Some(&node_id),
            std::time::SystemTime::now(),
        )?;
        signer = Some(s);
        Ok(())
    };
    let (account, master, state) = match &config.state {
        config::StateLocation::Sqlite => {
            let account = Account::load_or_create_with(&config.data_dir, &mut begin_trail)?;
            let master = hex::decode(account.master_key.expose()).map_err(|_| {
                OpenError::Account(account::AccountError::Damaged {
                    path: config.data_dir.join(account::MASTER_KEY_FILE),
                    reason: "expected 64 hex digits".into(),
                })
            })?;
            let state = state::State::open(&config.data_dir, &master, &account.record.account_id)?;
            (account, master, state)
        }
        config::StateLocation::Postgres(url) => {
            let key_file = config.master_key_file.clone().ok_or_else(|| {
                OpenError::State(state::StateError::Engine(
                    "a PostgreSQL state needs --master-key-file".into(),
                ))
            })?;
            let (master, master_hex) = account::load_or_create_master_key(&key_file)?;
            let handle = tokio::runtime::Handle::try_current().map_err(|_| {
                OpenError::State(state::StateError::Engine(
                    "the PostgreSQL engine needs the gateway's runtime".into(),
                ))
            })?;
            let engine = state::postgres::Postgres::open(url, handle)?;
            let (record, secret) = account::AccountRecord::fresh();
            let fresh = state::shared::SharedAccount {
                account_id: record.account_id,
                root_access_key_id: record.root_access_key_id,
                root_secret: secret,
                created: record.created,
                created_now: false,
            };
            let (mut state, shared) = state::State::join(engine, &master, &fresh)?;
            state.set_max_staleness(std::time::Duration::from_secs(
                config.state_max_staleness_secs,
            ));
            let record = account::AccountRecord {
                account_id: shared.account_id,
                root_access_key_id: shared.root_access_key_id,
                created: shared.created,
            };
            let account = Account::adopt_with(
                &config.data_dir,
                record,
                shared.root_secret,
                master_hex,
                &mut begin_trail,
            )?;
            (account, master, state)
        }
    };
    let signer = match signer {
        Some(s) => s,
        None => audit::load_or_create_signing_key(&key_path, true)?.0,
    };
    check_pinned(&config, &signer, &key_path)?;
    let store = LocalStore::open(&config.data_dir.join("store"))?;
    let storage = storage_of(&config, store, upstream);
    let state = Arc::new(state);
    let jobs = Arc::new(jobs::store::JobStore::new(state.clone()));
    let authz = Arc::new(authz::PolicyAuthorizer {
        account_id: account.record.account_id.clone(),
        state: state.clone(),
        jobs: jobs.clone(),
        region: config.region.clone(),
    });
    let tokens = Arc::new(sts::TokenSealer::new(&master).map_err(|e| {
        OpenError::Account(account::AccountError::Damaged {
            path: config.data_dir.join(account::MASTER_KEY_FILE),
            reason: e.to_string(),
        })
    })?);
    let metrics = Arc::new(metrics::Metrics::default());
    let mut options = audit::sink::Options::new(&account.record.account_id);
    options.node_id = Some(node_id);
    // With several nodes, job reports read every node's job requests from the database.
    let job_feed = matches!(config.state, config::StateLocation::Postgres(_))
        .then(|| Arc::new(jobs::facts::JobFeed::default()));
    options.tap = job_feed.as_ref().map(jobs::facts::JobFeed::tap);
    options.rotation = audit::sink::Rotation {
        max_bytes: config.audit_rotate_bytes,
        max_age: std::time::Duration::from_secs(config.audit_rotate_seconds),
        retain: (config.audit_retain_days > 0)
            .then(|| std::time::Duration::from_secs(config.audit_retain_days * 86_400)),
    };
    options.cadence = std::time::Duration::from_secs(config.audit_digest_seconds);
    options.pinned.clone_from(&config.audit_key_fingerprints);
    options.accept_discontinuity = config.audit_accept_discontinuity;
    let audit =
        audit::AuditSink::open(&audit_dir, Arc::new(signer), options, metrics.sink.clone())?;
    let mut gateway = Gateway::new(
        config, account, storage, state, authz, tokens, audit, metrics, jobs, tls, limits,
    );
    gateway.job_feed = job_feed;
    Ok(gateway)
}

/// The gateway's storage: the local store and the upstream, each bucket routed by the
/// configuration's `[buckets]` table and `default_backend`.
fn storage_of(
    config: &Config,
    store: LocalStore,
    upstream: Option<Arc<backend::upstream::UpstreamBackend>>,
) -> Arc<dyn backend::Backend> {
    use backend::route::Target;
    let local: Arc<dyn backend::Backend> = Arc::new(backend::local::LocalBackend::new(store));
    let default = match config.storage.default_backend {
        config::BackendKind::Local => Target::Local,
        config::BackendKind::Upstream => Target::Upstream,
    };
    let mut routes = std::collections::HashMap::new();
    if let (Some(up), Target::Upstream) = (&upstream, default) {
        for name in up.reserved() {
            routes.insert(name, Target::Reserved);
        }
    }
    for (name, target) in &config.storage.buckets {
        let t = match target {
            config::BucketTarget::Local => Target::Local,
            config::BucketTarget::Upstream { .. } => Target::Upstream,
        };
        routes.insert(name.clone(), t);
    }
    let upstream = upstream.map(|u| u as Arc<dyn backend::Backend>);
    Arc::new(backend::Storage::new(local, upstream, routes, default))
}

/// Refuses a signing key whose fingerprint the operator did not pin (when any is pinned).
fn check_pinned(
    config: &Config,
    signer: &audit::keys::Signer,
    path: &std::path::Path,
) -> Result<(), OpenError> {
    let fp = signer.public().fingerprint();
    if config.audit_key_fingerprints.is_empty()
        || config.audit_key_fingerprints.iter().any(|p| p == fp)
    {
        return Ok(());
    }
    Err(OpenError::Audit(audit::AuditError::Key {
        path: path.to_owned(),
        reason: format!(
            "its fingerprint {fp} is not among audit_key_fingerprints ({}): start with the key the operator pinned, or add this fingerprint to audit_key_fingerprints if the key was changed on purpose",
            config.audit_key_fingerprints.join(", ")
        ),
    }))
}

/// The gateway could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The account files.
    #[error(transparent)]
    Account(#[from] account::AccountError),
    /// The object store.
    #[error("cannot open the object store: {0}")]
    Store(#[from] keyhole_store::StoreError),
    /// The state database.
    #[error("cannot open the state database: {0}")]
    State(#[from] state::StateError),
    /// The audit trail.
    #[error("cannot open the audit trail: {0}")]
    Audit(#[from] audit::AuditError),
    /// The node id file is unusable.
    #[error(transparent)]
    NodeId(#[from] node::NodeIdError),
    /// The TLS certificate or key.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The connection limits do not fit the open-file limit.
    #[error(transparent)]
    Limits(#[from] listener::LimitsError),
    /// The data directory is shared with other users, or cannot be created.
    #[error(transparent)]
    DataDir(#[from] datadir::DataDirError),
    /// A configured OIDC JWKS file cannot be used.
    #[error("the JWKS file `{}` given for the OIDC issuer {issuer} (oidc_jwks) cannot be used: {problem}; export it again (for Kubernetes: kubectl get --raw /openid/v1/jwks > FILE)", path.display())]
    OidcJwks {
        /// The issuer.
        issuer: String,
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The upstream S3 service cannot be used (credentials, TLS trust).
    #[error("cannot use the upstream: {0}")]
    Upstream(#[from] backend::upstream::UpstreamError),
}
