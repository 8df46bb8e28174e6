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

pub mod account;
pub mod audit;
pub mod auth;
pub mod body;
pub mod client;
pub mod config;
pub mod context;
pub mod datadir;
pub mod error;
pub mod iam;
pub mod jobs;
pub mod listener;
pub mod metrics;
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
pub use config::{Config, ConfigOverrides};

/// Everything a request handler needs, shared by all connections.
#[derive(Debug)]
pub struct Gateway {
    /// The loaded configuration.
    pub config: Config,
    /// The account (id and root credentials).
    pub account: Account,
    /// The embedded object store.
    pub store: LocalStore,
    /// Users, keys and policies (SQLite) with the in-memory snapshot requests read.
    pub state: Arc<state::State>,
    /// Verifies signatures and finds the principal.
    pub authn: auth::Authenticator,
    /// Decides every (action, resource) pair.
    pub authz: Arc<dyn auth::Authorize>,
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
    /// The connection limits and timeouts, resolved against the open-file limit.
    pub limits: listener::Limits,
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
        store: LocalStore,
        state: Arc<state::State>,
        authz: Arc<dyn auth::Authorize>,
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
        Gateway {
            config,
            account,
            store,
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
        }
    }
}

/// Loads the TLS certificate and key (when configured), opens (or on first start creates) the
/// account, the state database and the store under the configured data directory, starts the
/// audit writer, and builds the gateway with the IAM policy authorizer.
///
/// Nothing is created or changed when it fails: the limits, the certificate and the data
/// directory's permissions are checked first, and a data directory this call created is removed
/// again if a later step fails. (Bind the listening socket before calling it, so that a busy
/// port fails first too.)
pub fn open(config: Config) -> Result<Gateway, OpenError> {
    let limits = listener::Limits::resolve(&config)?;
    let tls = config
        .tls
        .as_ref()
        .map(|t| tls::server_config(&t.cert, &t.key))
        .transpose()?;
    let prepared = datadir::prepare(&config.data_dir, config.allow_shared_data_dir)?;
    match open_in(config, limits, tls) {
        Ok(gateway) => Ok(gateway),
        Err(e) => {
            prepared.roll_back();
            Err(e)
        }
    }
}

/// [`open`] once the data directory exists and is private.
fn open_in(
    config: Config,
    limits: listener::Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<Gateway, OpenError> {
    let account = Account::load_or_create(&config.data_dir)?;
    let store = LocalStore::open(&config.data_dir.join("store"))?;
    let master = hex::decode(account.master_key.expose()).map_err(|_| {
        OpenError::Account(account::AccountError::Damaged {
            path: config.data_dir.join(account::MASTER_KEY_FILE),
            reason: "expected 64 hex digits".into(),
        })
    })?;
    let state = Arc::new(state::State::open(
        &config.data_dir,
        &master,
        &account.record.account_id,
    )?);
    let authz = Arc::new(auth::PolicyAuthorizer {
        account_id: account.record.account_id.clone(),
        state: state.clone(),
    });
    let tokens = Arc::new(sts::TokenSealer::new(&master).map_err(|e| {
        OpenError::Account(account::AccountError::Damaged {
            path: config.data_dir.join(account::MASTER_KEY_FILE),
            reason: e.to_string(),
        })
    })?);
    let metrics = Arc::new(metrics::Metrics::default());
    // The trail's directory is created private here, before the sink opens it.
    let audit_dir = config.data_dir.join(audit::AUDIT_DIR);
    datadir::create_private_dir_all(&audit_dir).map_err(|source| datadir::DataDirError::Io {
        action: "create the audit directory",
        path: audit_dir.clone(),
        source,
    })?;
    let audit = audit::AuditSink::open(
        &audit_dir,
        audit::checkpoint_key(account.master_key.expose()),
        audit::sink::Rotation {
            max_bytes: config.audit_rotate_bytes,
            max_age: std::time::Duration::from_secs(config.audit_rotate_seconds),
            retain: (config.audit_retain_days > 0)
                .then(|| std::time::Duration::from_secs(config.audit_retain_days * 86_400)),
        },
        metrics.sink.clone(),
    )?;
    let jobs = Arc::new(jobs::store::JobStore::open(&config.data_dir)?);
    Ok(Gateway::new(
        config, account, store, state, authz, tokens, audit, metrics, jobs, tls, limits,
    ))
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
    /// The TLS certificate or key.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The connection limits do not fit the open-file limit.
    #[error(transparent)]
    Limits(#[from] listener::LimitsError),
    /// The data directory is shared with other users, or cannot be created.
    #[error(transparent)]
    DataDir(#[from] datadir::DataDirError),
}
