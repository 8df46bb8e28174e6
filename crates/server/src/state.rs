//! Control-plane state: IAM users, access keys, groups, roles, inline and versioned managed
//! policies and attachments, bucket policies and settings, and (for [`crate::jobs::store`]) jobs
//! and revocations, in a SQL database (a SQLite file in the data directory: [`sqlite`]) whose
//! schema comes from one versioned list ([`migrations`]), with an in-memory [`Snapshot`] that
//! the request path reads.
//!
//! A write runs in one transaction and records what it touched; once it commits, only that is
//! loaded and compiled again into the next snapshot ([`snapshot::apply`]), swapped atomically,
//! so a change (a new key, a deactivated key, a new policy) is in force for the next request.
//! Requests never touch the database, and every database call runs off the async executor
//! ([`db::blocking`]).
//!
//! # Security
//! Secret access keys are sealed under a key derived from the master key ([`seal`]); the database
//! alone does not reveal them. Policies are parsed and compiled when stored, so the request path
//! only sees documents that compiled.

mod bucket_tags;
pub mod changes;
pub mod db;
pub mod documents;
pub mod freshness;
mod groups;
pub mod key_usage;
pub mod migrations;
pub mod oidc;
pub mod postgres;
pub mod principals;
pub mod seal;
pub mod shared;
pub mod snapshot;
mod sources;
pub mod sqlite;
mod versions;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use chrono::Utc;
use keyhole_policy::{CompiledPolicy, PolicyKind};
use keyhole_sigv4::SecretKey;

use crate::params;
use db::{Conn, Touched, Tx};
use seal::Sealer;
pub use snapshot::{KeyEntry, RoleEntry, Snapshot, UserEntry};
pub use sources::{EntityPolicies, StoredPolicy};
use versions::version_id;

/// File name of the state database under the data directory.
pub const STATE_DB_FILE: &str = "state.db";
/// AWS's limit on access keys per user.
pub const MAX_ACCESS_KEYS_PER_USER: usize = 2;
/// AWS's limit on the aggregate size of a user's inline policies (characters, whitespace excluded).
pub const MAX_USER_INLINE_POLICY_CHARS: usize = 2048;
/// AWS's limit on the aggregate size of a role's inline policies (characters, whitespace excluded).
pub const MAX_ROLE_INLINE_POLICY_CHARS: usize = 10_240;
/// AWS's limit on a managed policy document (characters, whitespace excluded).
pub const MAX_MANAGED_POLICY_CHARS: usize = 6144;
/// AWS's limit on the aggregate size of a group's inline policies (characters, whitespace excluded).
pub const MAX_GROUP_INLINE_POLICY_CHARS: usize = 5120;
/// AWS's limit on managed policies attached to one user, group or role.
pub const MAX_ATTACHED_POLICIES: usize = 10;
/// AWS's limit on the groups one user belongs to
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html).
pub const MAX_GROUPS_PER_USER: usize = 10;
/// AWS's limit on the versions a managed policy keeps
/// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreatePolicyVersion.html).
pub const MAX_POLICY_VERSIONS: usize = 5;

// INVARIANT: `managed_policies.document` is the document of the policy's version
// `default_version` (kept so by `State::make_default` in the same transaction), so everything that
// evaluates a managed policy (attachments, boundaries) reads the default version and nothing else.
// `last_version` is the highest version number ever created: numbers are never reused.

/// A failure a client can be told about, with its IAM error code.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// `NoSuchEntity` (404).
    #[error("{0}")]
    NoSuchEntity(String),
    /// `EntityAlreadyExists` (409).
    #[error("{0}")]
    EntityAlreadyExists(String),
    /// `DeleteConflict` (409).
    #[error("{0}")]
    DeleteConflict(String),
    /// `LimitExceeded` (409).
    #[error("{0}")]
    LimitExceeded(String),
    /// `EntityTemporarilyUnmodifiable` (409): "an entity that is temporarily unmodifiable, such
    /// as a user name that was deleted and then recreated" (API_UpdateUser.html).
    #[error("{0}")]
    EntityTemporarilyUnmodifiable(String),
    /// `ValidationError` (400).
    #[error("{0}")]
    Validation(String),
    /// `InvalidInput` (400).
    #[error("{0}")]
    InvalidInput(String),
    /// `MalformedPolicyDocument` (400).
    #[error("{0}")]
    MalformedPolicy(String),
    /// The database failed (internal).
    #[error("state database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The engine failed, or found something it cannot read (internal).
    #[error("state database: {0}")]
    Engine(String),
    /// The database cannot be reached now, or the snapshot is too old to serve
    /// (`ServiceUnavailable`, 503): fail closed, try again later.
    #[error("the state database is unavailable: {0}")]
    Unavailable(String),
    /// A sealed secret does not open (internal).
    #[error(transparent)]
    Seal(#[from] seal::SealError),
    /// The database file could not be prepared (internal).
    #[error("state database file: {0}")]
    Io(#[from] std::io::Error),
}

impl StateError {
    /// The IAM error code.
    pub fn code(&self) -> &'static str {
        match self {
            StateError::NoSuchEntity(_) => "NoSuchEntity",
            StateError::EntityAlreadyExists(_) => "EntityAlreadyExists",
            StateError::DeleteConflict(_) => "DeleteConflict",
            StateError::LimitExceeded(_) => "LimitExceeded",
            StateError::EntityTemporarilyUnmodifiable(_) => "EntityTemporarilyUnmodifiable",
            StateError::Validation(_) => "ValidationError",
            StateError::InvalidInput(_) => "InvalidInput",
            StateError::MalformedPolicy(_) => "MalformedPolicyDocument",
            StateError::Unavailable(_) => "ServiceUnavailable",
            StateError::Db(_) | StateError::Engine(_) | StateError::Seal(_) | StateError::Io(_) => {
                "ServiceFailure"
            }
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            StateError::NoSuchEntity(_) => 404,
            StateError::EntityAlreadyExists(_)
            | StateError::DeleteConflict(_)
            | StateError::LimitExceeded(_)
            | StateError::EntityTemporarilyUnmodifiable(_) => 409,
            StateError::Validation(_)
            | StateError::InvalidInput(_)
            | StateError::MalformedPolicy(_) => 400,
            StateError::Unavailable(_) => 503,
            StateError::Db(_) | StateError::Engine(_) | StateError::Seal(_) | StateError::Io(_) => {
                500
            }
        }
    }

    /// True for failures of keyhole itself rather than of the request. An unavailable
    /// database is neither: its message (which names no secret) is answered as it is.
    pub fn is_internal(&self) -> bool {
        self.status() >= 500 && !matches!(self, StateError::Unavailable(_))
    }
}

/// An IAM user as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// User name.
    pub name: String,
    /// Unique id (`AIDA...`).
    pub id: String,
    /// Path (`/` by default).
    pub path: String,
    /// Creation time (RFC 3339).
    pub created: String,
}

/// An access key as listed (no secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyRecord {
    /// Access key id (`AKIA...`).
    pub id: String,
    /// Owner.
    pub user_name: String,
    /// `Active` or `Inactive`.
    pub status: String,
    /// Creation time (RFC 3339).
    pub created: String,
}

/// A managed policy as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedPolicyRecord {
    /// Policy name.
    pub name: String,
    /// Unique id (`ANPA...`).
    pub id: String,
    /// Path.
    pub path: String,
    /// Description.
    pub description: String,
    /// The document of the default version (the one in force).
    pub document: String,
    /// Creation time.
    pub created: String,
    /// The default version's id (`v1`, `v2`, ...).
    pub default_version: String,
    /// When the newest of its versions was created (the creation time while it has one).
    pub updated: String,
    /// How many users, groups and roles it is attached to.
    pub attachments: usize,
    /// How many users and roles use it as their permissions boundary.
    pub boundary_uses: usize,
}

/// A user, group or role that uses a managed policy (ListEntitiesForPolicy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyEntity {
    /// User, group or role.
    pub kind: PrincipalKind,
    /// Its name.
    pub name: String,
    /// Its unique id (`AIDA...`, `AGPA...`, `AROA...`).
    pub id: String,
    /// Its path.
    pub path: String,
    /// The policy is attached to it (a permissions policy).
    pub attached: bool,
    /// The policy is its permissions boundary.
    pub boundary: bool,
}

/// One version of a managed policy
/// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_PolicyVersion.html).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersionRecord {
    /// `v1`, `v2`, ...
    pub id: String,
    /// The document.
    pub document: String,
    /// Whether this is the version in force.
    pub is_default: bool,
    /// Creation time (RFC 3339).
    pub created: String,
}

/// An IAM group as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// Group name.
    pub name: String,
    /// Unique id (`AGPA...`).
    pub id: String,
    /// Path (`/` by default).
    pub path: String,
    /// Creation time (RFC 3339).
    pub created: String,
}

/// An IAM role as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRecord {
    /// Role name.
    pub name: String,
    /// Unique id (`AROA...`).
    pub id: String,
    /// Path.
    pub path: String,
    /// The trust policy document.
    pub trust_policy: String,
    /// Longest session AssumeRole may grant (3600-43200 s).
    pub max_session_secs: i64,
    /// Description.
    pub description: String,
    /// Creation time (RFC 3339).
    pub created: String,
}

/// S3 Block Public Access settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PublicAccessBlock {
    /// Refuse requests that set public ACLs.
    pub block_public_acls: bool,
    /// Ignore public ACLs (keyhole stores no ACLs, so nothing is ever granted by one).
    pub ignore_public_acls: bool,
    /// Refuse bucket policies that are public.
    pub block_public_policy: bool,
    /// A public bucket policy grants nothing to anonymous or other-account callers.
    pub restrict_public_buckets: bool,
}

impl Default for PublicAccessBlock {
    /// Every setting on, as AWS sets for new accounts and buckets.
    fn default() -> Self {
        PublicAccessBlock::ON
    }
}

impl PublicAccessBlock {
    /// Every setting on: the account default.
    pub const ON: PublicAccessBlock = PublicAccessBlock {
        block_public_acls: true,
        ignore_public_acls: true,
        block_public_policy: true,
        restrict_public_buckets: true,
    };
    /// Every setting off.
    pub const OFF: PublicAccessBlock = PublicAccessBlock {
        block_public_acls: false,
        ignore_public_acls: false,
        block_public_policy: false,
        restrict_public_buckets: false,
    };
}

/// The scope key of the account-level settings in `public_access_blocks`.
const ACCOUNT_SCOPE: &str = "account";

/// AWS's bounds on a role's maximum session duration, in seconds.
pub const ROLE_MAX_SESSION_RANGE: std::ops::RangeInclusive<i64> = 3600..=43200;

/// Compiles a bucket policy (a resource-based policy); the error is AWS's `MalformedPolicy`
/// reason.
pub fn compile_bucket_policy(doc: &str) -> Result<CompiledPolicy, StateError> {
    CompiledPolicy::from_json(doc, PolicyKind::Resource)
        .map(|p| {
            p.with_name("bucket policy")
                .with_digest(documents::digest(doc))
        })
        .map_err(|e| StateError::MalformedPolicy(e.to_string()))
}

/// Compiles a trust policy (a resource-based policy on the role).
pub fn compile_trust_policy(doc: &str) -> Result<CompiledPolicy, StateError> {
    compile_trust_policy_bound(doc, &|_| None)
}

/// Compiles a stored trust policy with its principal bindings ([`principals`]).
fn compile_trust_policy_bound(
    doc: &str,
    bind: &dyn Fn(&str) -> Option<String>,
) -> Result<CompiledPolicy, StateError> {
    CompiledPolicy::from_json_bound(doc, PolicyKind::Resource, bind)
        .map(|p| {
            p.with_name("trust policy")
                .with_digest(documents::digest(doc))
        })
        .map_err(|e| StateError::MalformedPolicy(format!("Syntax errors in policy: {e}")))
}

/// Compiles a stored bucket policy with its principal bindings ([`principals`]).
fn compile_bucket_policy_bound(
    doc: &str,
    bind: &dyn Fn(&str) -> Option<String>,
) -> Result<CompiledPolicy, StateError> {
    CompiledPolicy::from_json_bound(doc, PolicyKind::Resource, bind)
        .map(|p| {
            p.with_name("bucket policy")
                .with_digest(documents::digest(doc))
        })
        .map_err(|e| StateError::MalformedPolicy(e.to_string()))
}

/// The engine that holds the state.
#[derive(Debug)]
pub enum Engine {
    /// One SQLite file (one node).
    Sqlite(sqlite::Sqlite),
    /// One PostgreSQL database shared by several nodes ([`changes`] keeps them in step).
    Postgres(postgres::Postgres),
}

/// The state database and its snapshot.
pub struct State {
    engine: Engine,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Held while a snapshot is built from the previous one, so no change is lost between two.
    apply_lock: Mutex<()>,
    sealer: Sealer,
    account_id: String,
    /// This process's name in the change log (random per start).
    node_id: String,
    /// The last change-log sequence number this node's snapshot has taken (PostgreSQL).
    cursor: Mutex<i64>,
    /// How current the snapshot is, and how old it may be served.
    freshness: freshness::Freshness,
    /// Set when one of this node's writes failed: it may have committed all the same (the
    /// answer to its COMMIT lost), so the next catch-up applies this node's own changes too.
    replay_own: std::sync::atomic::AtomicBool,
    /// `true` once [`State::seal`] ran: [`State::change`] refuses. Each change holds it read
    /// while it runs, so the seal waits for the change in progress.
    sealed: RwLock<bool>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("account_id", &self.account_id)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// IAM names: 1-`max` characters of letters, digits and `+=,.@_-`
/// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateUser.html).
pub fn validate_name(field: &str, value: &str, max: usize) -> Result<(), StateError> {
    let ok = !value.is_empty()
        && value.chars().count() <= max
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(StateError::Validation(format!(
            "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: Member must have length 1-{max} and match [\\w+=,.@-]+"
        )))
    }
}

/// IAM paths: `/` or `/a/b/` (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html).
pub fn validate_path(path: &str) -> Result<(), StateError> {
    // AWS's pattern is `(\u002F)|(\u002F[\u0021-\u007E]+\u002F)`: `/` alone, or something
    // between two slashes (so `//` is refused; review 30, F7).
    let ok = path.starts_with('/')
        && path.ends_with('/')
        && path.len() != 2
        && path.len() <= 512
        && path.chars().all(|c| ('\u{21}'..='\u{7e}').contains(&c));
    if ok {
        Ok(())
    } else {
        Err(StateError::Validation(format!(
            "the path `{path}` must begin and end with `/` and contain printable ASCII"
        )))
    }
}

/// Characters of a policy document that AWS counts toward size limits (whitespace excluded).
pub fn policy_chars(doc: &str) -> usize {
    doc.chars().filter(|c| !c.is_whitespace()).count()
}

/// AWS's rules for IAM and STS tags: keys of 1-128 and values of 0-256 characters, letters,
/// digits, spaces and `_.:/=+-@`, no `aws:` prefix
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_tags.html#id_tags_rules_creating; the
/// same rules bind session tags: https://docs.aws.amazon.com/IAM/latest/UserGuide/id_session-tags.html).
pub fn validate_tag(key: &str, value: &str) -> Result<(), StateError> {
    // IAM's pattern is `[\p{L}\p{Z}\p{N}_.:/=+\-@]` (https://docs.aws.amazon.com/IAM/latest/APIReference/API_Tag.html):
    // letters, digits, any Unicode separator (not only the ASCII space) and those marks.
    let ok_chars = |t: &str| {
        t.chars()
            .all(|c| c.is_alphanumeric() || is_unicode_separator(c) || "_.:/=+-@".contains(c))
    };
    if key.is_empty()
        || key.chars().count() > 128
        || value.chars().count() > 256
        || !ok_chars(key)
        || !ok_chars(value)
    {
        return Err(StateError::Validation(format!(
            "the tag `{key}` is not valid: keys are 1-128 and values 0-256 characters of letters, digits, spaces and _.:/=+-@"
        )));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(StateError::Validation(format!(
            "the tag key `{key}` uses the reserved prefix `aws:`"
        )));
    }
    // keyhole sets `job` on every job session (`aws:PrincipalTag/job`), and role policies key
    // job outputs on it; a user, role or session tagged `job` could pose as a job.
    if key.eq_ignore_ascii_case(crate::jobs::JOB_TAG) {
        return Err(StateError::Validation(format!(
            "the tag key `{key}` is reserved: keyhole sets `job` on job sessions only (aws:PrincipalTag/job names the job)"
        )));
    }
    Ok(())
}

/// Unicode's separators, `\p{Z}`: the space separators (Zs), the line separator (Zl) and the
/// paragraph separator (Zp), as Unicode 15 lists them.
fn is_unicode_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}'
    )
}

/// Checks the tags of one CreateUser, CreateRole, TagUser or TagRole: each tag as
/// [`validate_tag`] does, and no two keys that differ only in case. IAM "Tag keys for IAM
/// users and roles are not case sensitive, but case is preserved. This means that you cannot
/// have separate Department and department tag keys"
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_tags.html, "Case sensitivity"); its
/// answer to such a request is `InvalidInput`.
pub fn validate_principal_tags(tags: &[(String, String)]) -> Result<(), StateError> {
    for (i, (k, v)) in tags.iter().enumerate() {
        validate_tag(k, v)?;
        if let Some((first, _)) = tags.iter().take(i).find(|(f, _)| same_tag_key(f, k)) {
            return Err(StateError::InvalidInput(format!(
                "Duplicate tag keys found: `{first}` and `{k}`. Please note that Tag keys are case insensitive."
            )));
        }
    }
    Ok(())
}

/// Whether two tag keys of a user or role name the same tag (IAM compares them without case;
/// see [`validate_principal_tags`]). Case is folded for ASCII letters only, exactly as policy
/// conditions fold condition key names (`aws:PrincipalTag/KEY`, `aws:TagKeys` with
/// `...IgnoreCase`): a fuller Unicode fold here made the Kelvin sign `K` (U+212A) the same tag
/// as `k` while no condition saw it as one, so `ris\u{212a}` replaced a `risk` tag that a Deny on
/// `aws:TagKeys` protected (review 29, F1). The store and the conditions must agree on what one
/// key is.
pub fn same_tag_key(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// The `Sid`s of a policy document's statements, in order (none when it is not JSON: the
/// compiler has already said what is wrong with it).
fn sids_of(doc: &str) -> Vec<String> {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(doc) else {
        return Vec::new();
    };
    let statements: Vec<&serde_json::Value> = match value.get("Statement") {
        Some(serde_json::Value::Array(list)) => list.iter().collect(),
        Some(one) => vec![one],
        None => Vec::new(),
    };
    statements
        .iter()
        .filter_map(|s| Some(s.get("Sid")?.as_str()?.to_owned()))
        .collect()
}

/// No two statements of `doc` share a (non-empty) `Sid`: IAM's rule ("the Sid value must be
/// unique within a JSON policy") and S3's for bucket policies (review 34, L3).
fn check_unique_sids(doc: &str) -> Result<(), StateError> {
    let mut seen = std::collections::HashSet::new();
    for sid in sids_of(doc) {
        if !sid.is_empty() && !seen.insert(sid.clone()) {
            return Err(StateError::MalformedPolicy(format!(
                "Statement IDs (SID) in a single policy must be unique: `{sid}` is used twice."
            )));
        }
    }
    Ok(())
}

/// IAM's own rules for the `Sid`s of a document it stores (identity, managed and trust
/// policies, and the session policies STS hands out): "supports ASCII uppercase letters
/// (A-Z), lowercase letters (a-z), and numbers (0-9)", and "In IAM, the Sid value must be
/// unique within a JSON policy"
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_sid.html). A
/// bucket policy is S3's and only needs unique ones ([`check_unique_sids`]). Checked when a
/// document is written, never when stored ones are loaded.
pub(crate) fn check_iam_sids(doc: &str) -> Result<(), StateError> {
    if let Some(sid) = sids_of(doc)
        .into_iter()
        .find(|sid| !sid.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return Err(StateError::MalformedPolicy(format!(
            "Statement IDs (SID) must be alpha-numeric: `{sid}` is not. Check that your input satisfies the regular expression [0-9A-Za-z]*"
        )));
    }
    check_unique_sids(doc)
}

/// Parses and compiles a policy for identity use; the error says what is wrong and where.
pub fn compile_identity_policy(doc: &str, name: &str) -> Result<CompiledPolicy, StateError> {
    CompiledPolicy::from_json(doc, PolicyKind::Identity)
        .map(|p| {
            p.with_name(name.to_owned())
                .with_digest(documents::digest(doc))
        })
        .map_err(|e| StateError::MalformedPolicy(format!("Syntax errors in policy: {e}")))
}

impl State {
    /// Opens (creating if needed) the SQLite state database in `data_dir`.
    pub fn open(data_dir: &Path, master_key: &[u8], account_id: &str) -> Result<State, StateError> {
        State::with_engine(
            Engine::Sqlite(sqlite::Sqlite::open(data_dir)?),
            master_key,
            account_id,
        )
    }

    /// Opens the state in `engine`: brings its schema up to date, then loads the snapshot.
    pub fn with_engine(
        engine: Engine,
        master_key: &[u8],
        account_id: &str,
    ) -> Result<State, StateError> {
        let freshness = match &engine {
            Engine::Sqlite(_) => freshness::Freshness::never_stale(),
            Engine::Postgres(_) => freshness::Freshness::bounded(freshness::DEFAULT_MAX_STALENESS),
        };
        let state = State {
            engine,
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            apply_lock: Mutex::new(()),
            sealer: Sealer::new(master_key)?,
            account_id: account_id.to_owned(),
            node_id: hex::encode(rand::random::<[u8; 8]>()),
            cursor: Mutex::new(0),
            freshness,
            replay_own: std::sync::atomic::AtomicBool::new(false),
            sealed: RwLock::new(false),
        };
        migrations::migrate(&state)?;
        state.reload()?;
        Ok(state)
    }

    /// Opens the shared state in a PostgreSQL database: brings its schema up to date (once, for
    /// nodes starting together: every migration runs under the write lock), adopts the
    /// account it holds or stores `fresh` as the account if it holds none, then loads the
    /// snapshot. Refused when the database's account was sealed under another master key.
    pub fn join(
        engine: postgres::Postgres,
        master_key: &[u8],
        fresh: &shared::SharedAccount,
    ) -> Result<(State, shared::SharedAccount), StateError> {
        // INVARIANT: a PostgreSQL database starts at schema version 1 (no unversioned release
        // ever wrote one), so the account id migrations are given binds nothing there; it is
        // the candidate until the database says otherwise.
        let state = State::with_engine(Engine::Postgres(engine), master_key, &fresh.account_id)?;
        let account = state.write_raw(|tx| shared::join(tx, master_key, fresh))?;
        if account.account_id == fresh.account_id {
            return Ok((state, account));
        }
        let State { engine, .. } = state;
        let state = State::with_engine(engine, master_key, &account.account_id)?;
        Ok((state, account))
    }

    /// Sets how old the snapshot of a shared (PostgreSQL) state may be served when the
    /// database cannot be read (`--state-max-staleness-secs`); one node is never stale.
    pub fn set_max_staleness(&mut self, bound: std::time::Duration) {
        self.freshness.set_bound(bound);
    }

    /// Whether the snapshot is current enough to serve: [`StateError::Unavailable`], naming
    /// why, once a shared state has not been read for longer than its staleness bound.
    pub fn check_current(&self) -> Result<(), StateError> {
        self.freshness.check(std::time::Instant::now())
    }

    /// How current the snapshot is.
    pub fn freshness(&self) -> &freshness::Freshness {
        &self.freshness
    }

    /// This node's name in the change log.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The connection settings and TLS connector of a PostgreSQL engine (for the change
    /// listener).
    pub fn postgres_config(&self) -> Option<(tokio_postgres::Config, postgres::tls::Connector)> {
        match &self.engine {
            Engine::Sqlite(_) => None,
            Engine::Postgres(e) => Some((e.config().clone(), e.tls().clone())),
        }
    }

    /// A PostgreSQL connection error as a [`StateError`] saying what to change (`None` for
    /// SQLite).
    pub fn postgres_connect_error(&self, e: tokio_postgres::Error) -> Option<StateError> {
        match &self.engine {
            Engine::Sqlite(_) => None,
            Engine::Postgres(p) => Some(p.connect_error(e)),
        }
    }

    /// Applies what other nodes changed since the last catch-up ([`changes`]); nothing with
    /// one node. Returns how many entities were loaded again (a whole reload counts as one).
    pub fn catch_up(&self) -> Result<usize, StateError> {
        if matches!(self.engine, Engine::Sqlite(_)) {
            return Ok(0);
        }
        // Every change committed before this moment is read below (write transactions commit
        // in change-log order), so once it succeeds the snapshot is current as of then.
        let began = std::time::Instant::now();
        let caught = self.catch_up_from_log();
        match &caught {
            Ok(_) => self.freshness.current_as_of(began),
            Err(e) => self.freshness.failed(e),
        }
        caught
    }

    fn catch_up_from_log(&self) -> Result<usize, StateError> {
        let replay_own = self.replay_own.swap(false, Ordering::SeqCst);
        self.with_db(|db| {
            let cursor = *lock(&self.cursor);
            let skip = (!replay_own).then_some(self.node_id.as_str());
            match changes::pending(db, skip, cursor)? {
                changes::Pending::Nothing => Ok(0),
                changes::Pending::Apply(touched, to) => {
                    self.apply(db, &touched)?;
                    *lock(&self.cursor) = to;
                    Ok(touched.len())
                }
                changes::Pending::Reload(to) => {
                    tracing::info!(
                        cursor,
                        to,
                        "the change log has a hole: reloading the snapshot"
                    );
                    self.load_with(db)?;
                    *lock(&self.cursor) = to;
                    Ok(1)
                }
            }
        })
        .inspect_err(|_| {
            if replay_own {
                self.replay_own.store(true, Ordering::SeqCst);
            }
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The lock of a bucket name across every node sharing this state: held on a PostgreSQL
    /// state ([`postgres::Postgres::name_lock`], keyed by the name's SHA-256), none on SQLite
    /// (one process; its callers hold their in-process lock too).
    pub async fn bucket_name_lock(
        &self,
        bucket: &str,
    ) -> Result<Option<postgres::NameLock>, StateError> {
        match &self.engine {
            Engine::Postgres(p) => {
                use sha2::Digest as _;
                let digest = sha2::Sha256::digest(format!("keyhole bucket name {bucket}"));
                let mut key = [0u8; 8];
                key.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
                p.name_lock(i64::from_be_bytes(key)).await.map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The current snapshot (cheap: an `Arc` clone).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn swap(&self, next: Snapshot) {
        match self.snapshot.write() {
            Ok(mut s) => *s = Arc::new(next),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(next),
        }
    }

    /// Runs reads (on a blocking thread: [`db::blocking`]).
    pub fn with_db<T>(
        &self,
        f: impl FnOnce(&dyn Conn) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        match &self.engine {
            Engine::Sqlite(e) => e.read(f),
            Engine::Postgres(e) => e.read(f),
        }
    }

    /// A write transaction that touches nothing the snapshot holds (migrations).
    fn write_raw<T>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        match &self.engine {
            Engine::Sqlite(e) => e.write(f, |_, _| Ok(())),
            Engine::Postgres(e) => e.write(f, |_, _| Ok(()), |_, _| Ok(())),
        }
    }

    /// Runs a change in one transaction, then brings the snapshot up to date with what it
    /// touched (and, with a shared engine, tells the other nodes what it touched).
    pub(crate) fn change<T>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        let sealed = self.sealed.read().unwrap_or_else(PoisonError::into_inner);
        if *sealed {
            return Err(StateError::Unavailable(
                "the gateway is shutting down and makes no more changes; try again".into(),
            ));
        }
        self.change_even_sealed(f)
    }

    /// [`State::change`] whether sealed or not: only for the second half of a change whose
    /// first half committed elsewhere (a deleted bucket's policy and settings, removed after
    /// the store removed the bucket), which must not be left undone by a shutdown.
    fn change_even_sealed<T>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        let after = |db: &dyn Conn, touched: &[Touched]| {
            if let Err(e) = self.apply(db, touched) {
                // The change is committed: it is answered as done. The snapshot is rebuilt
                // whole at the next chance instead.
                tracing::error!(error = %e, "the snapshot could not take a committed change; rebuilding it");
                if let Err(e) = self.load_with(db) {
                    tracing::error!(error = %e, "the snapshot could not be rebuilt");
                }
            }
            Ok(())
        };
        match &self.engine {
            Engine::Sqlite(e) => e.write(f, after),
            Engine::Postgres(e) => e
                .write(
                    f,
                    |tx, touched| changes::record(tx, &self.node_id, touched),
                    after,
                )
                .inspect_err(|_| self.replay_own.store(true, Ordering::SeqCst)),
        }
    }

    /// Closes the state to the changes requests make ([`State::change`]), for a shutdown,
    /// before the audit trail is closed: waits for the change in progress, then every later
    /// one fails with `ServiceUnavailable`, so none lands after the trail's last record. The
    /// gateway's own bookkeeping at shutdown (access keys' last use, job records) is written
    /// after it, outside requests.
    pub fn seal(&self) {
        *self.sealed.write().unwrap_or_else(PoisonError::into_inner) = true;
    }

    /// Brings the snapshot up to date with changes (`touched`) that committed.
    pub fn apply(&self, db: &dyn Conn, touched: &[Touched]) -> Result<(), StateError> {
        if touched.is_empty() {
            return Ok(());
        }
        let _one = lock(&self.apply_lock);
        let prev = self.snapshot();
        let next = snapshot::apply(db, &self.context(), &prev, touched)?;
        self.swap(next);
        Ok(())
    }

    fn context(&self) -> snapshot::Context<'_> {
        self.context_at(Utc::now().timestamp())
    }

    fn context_at(&self, now: i64) -> snapshot::Context<'_> {
        snapshot::Context {
            account: &self.account_id,
            sealer: &self.sealer,
            now,
        }
    }

    fn load_with(&self, db: &dyn Conn) -> Result<(), StateError> {
        self.load_at(db, Utc::now().timestamp())
    }

    fn load_at(&self, db: &dyn Conn, now: i64) -> Result<(), StateError> {
        let _one = lock(&self.apply_lock);
        if matches!(self.engine, Engine::Postgres(_)) {
            // Read before the snapshot: a change committed in between is applied again at the
            // next catch-up (applying is idempotent), never missed.
            let newest = changes::newest(db)?;
            let mut cursor = lock(&self.cursor);
            *cursor = (*cursor).max(newest);
        }
        let next = snapshot::load(db, &self.context_at(now))?;
        self.swap(next);
        Ok(())
    }

    fn user_arn(&self, u: &UserRecord) -> String {
        format!("arn:aws:iam::{}:user{}{}", self.account_id, u.path, u.name)
    }

    /// The ARN of a managed policy.
    pub fn policy_arn(&self, p: &ManagedPolicyRecord) -> String {
        format!(
            "arn:aws:iam::{}:policy{}{}",
            self.account_id, p.path, p.name
        )
    }

    /// Rebuilds the whole snapshot from the database.
    pub fn reload(&self) -> Result<(), StateError> {
        self.with_db(|db| self.load_with(db))
    }

    /// Rebuilds the whole snapshot as of `now` (Unix seconds): jobs whose window has ended and
    /// revocations of sessions that have expired are left out.
    pub fn reload_at(&self, now: i64) -> Result<(), StateError> {
        self.with_db(|db| self.load_at(db, now))
    }

    /// The tags of a user or role, sorted by key.
    fn load_tags(
        db: &dyn Conn,
        kind: PrincipalKind,
        name: &str,
    ) -> Result<Vec<(String, String)>, StateError> {
        db.query_map(
            "SELECT tag_key, tag_value FROM principal_tags WHERE kind = ?1 AND name = ?2 ORDER BY tag_key",
            params![kind.word(), name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// The tags of a user (`kind` = `user`) or role (`role`).
    pub fn list_tags(
        &self,
        kind: PrincipalKind,
        name: &str,
    ) -> Result<Vec<(String, String)>, StateError> {
        self.with_db(|db| {
            Self::require(db, kind, name)?;
            Self::load_tags(db, kind, name)
        })
    }

    /// TagUser / TagRole: adds or overwrites tags; AWS allows 50 per principal, keys of 1-128
    /// and values of 0-256 characters, no `aws:` prefix
    /// (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_tags.html).
    pub fn tag(
        &self,
        kind: PrincipalKind,
        name: &str,
        tags: &[(String, String)],
    ) -> Result<(), StateError> {
        validate_principal_tags(tags)?;
        self.change(|tx| {
            tx.touch(who(kind, name));
            Self::require(tx, kind, name)?;
            Self::tag_in(tx, kind, name, tags)
        })
    }

    /// Adds or overwrites tags of an existing user or role inside a transaction. A tag whose key
    /// differs from a new one only in case is the same tag: it is replaced, and the key is
    /// spelled as the request spells it (IAM: "If you have tagged a user with the
    /// Department=finance tag and you add the department=hr tag, it replaces the first tag",
    /// https://docs.aws.amazon.com/IAM/latest/UserGuide/id_tags.html, "Case sensitivity").
    fn tag_in(
        tx: &dyn Conn,
        kind: PrincipalKind,
        name: &str,
        tags: &[(String, String)],
    ) -> Result<(), StateError> {
        let held = Self::load_tags(tx, kind, name)?;
        for (k, v) in tags {
            for (old, _) in held
                .iter()
                .filter(|(old, _)| old != k && same_tag_key(old, k))
            {
                tx.execute(
                    "DELETE FROM principal_tags WHERE kind = ?1 AND name = ?2 AND tag_key = ?3",
                    params![kind.word(), name, old],
                )?;
            }
            tx.execute(
                "INSERT INTO principal_tags (kind, name, tag_key, tag_value) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (kind, name, tag_key) DO UPDATE SET tag_value = excluded.tag_value",
                params![kind.word(), name, k, v])?;
        }
        let n: i64 = tx.query_one(
            "SELECT count(*) FROM principal_tags WHERE kind = ?1 AND name = ?2",
            params![kind.word(), name],
            |r| r.get(0),
        )?;
        if n > 50 {
            return Err(StateError::LimitExceeded(
                "Cannot exceed quota for TagsPerPrincipal: 50".into(),
            ));
        }
        Ok(())
    }

    /// UntagUser / UntagRole.
    pub fn untag(
        &self,
        kind: PrincipalKind,
        name: &str,
        keys: &[String],
    ) -> Result<(), StateError> {
        self.change(|tx| {
            tx.touch(who(kind, name));
            Self::require(tx, kind, name)?;
            // Keys name tags without case, as TagUser's do (see `tag_in`).
            let held = Self::load_tags(tx, kind, name)?;
            for (old, _) in held
                .iter()
                .filter(|(old, _)| keys.iter().any(|k| same_tag_key(old, k)))
            {
                tx.execute(
                    "DELETE FROM principal_tags WHERE kind = ?1 AND name = ?2 AND tag_key = ?3",
                    params![kind.word(), name, old],
                )?;
            }
            Ok(())
        })
    }

    /// Sets (`Some` managed policy ARN) or removes (`None`) the permissions boundary of a user
    /// (`kind` = `user`) or role (`role`).
    pub fn set_boundary(
        &self,
        kind: PrincipalKind,
        name: &str,
        policy_arn: Option<&str>,
    ) -> Result<(), StateError> {
        let policy = policy_arn
            .map(|a| self.policy_name_from_arn(a).map(|n| (a, n)))
            .transpose()?;
        self.change(|tx| {
            tx.touch(who(kind, name));
            Self::require(tx, kind, name)?;
            Self::set_boundary_in(tx, kind, name, policy.as_ref())?;
            if policy.is_none() {
                tx.execute(
                    "DELETE FROM permissions_boundaries WHERE kind = ?1 AND name = ?2",
                    params![kind.word(), name],
                )?;
            }
            Ok(())
        })
    }

    /// Sets the boundary `(ARN, policy name)` of an existing user or role inside a transaction;
    /// `None` leaves it as it is.
    fn set_boundary_in(
        tx: &dyn Conn,
        kind: PrincipalKind,
        name: &str,
        policy: Option<&(&str, String)>,
    ) -> Result<(), StateError> {
        let Some((arn, p)) = policy else {
            return Ok(());
        };
        if Self::managed_by_name(tx, p)?.is_none() {
            return Err(StateError::NoSuchEntity(format!(
                "Policy {arn} does not exist or is not attachable."
            )));
        }
        tx.execute(
            "INSERT INTO permissions_boundaries (kind, name, policy_name) VALUES (?1, ?2, ?3)
             ON CONFLICT (kind, name) DO UPDATE SET policy_name = excluded.policy_name",
            params![kind.word(), name, p],
        )?;
        Ok(())
    }

    /// The ARN of the permissions boundary of a user or role, if it has one.
    pub fn boundary_arn(
        &self,
        kind: PrincipalKind,
        name: &str,
    ) -> Result<Option<String>, StateError> {
        self.with_db(|db| {
            let p: Option<(String, String)> = db
                .query_opt(
                    "SELECT m.name, m.path FROM permissions_boundaries b JOIN managed_policies m ON m.name = b.policy_name WHERE b.kind = ?1 AND b.name = ?2",
                    params![kind.word(), name],
                    |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(p.map(|(n, path)| format!("arn:aws:iam::{}:policy{path}{n}", self.account_id)))
        })
    }

    /// The entity of `table` that holds `name` already, compared without case as IAM compares
    /// names ("Names are not distinguished by case"), other than `except` (a rename's own
    /// current name).
    fn name_holder(
        tx: &dyn Conn,
        table: &'static str,
        name: &str,
        except: Option<&str>,
    ) -> Result<Option<String>, StateError> {
        let sql = format!("SELECT name FROM {table} WHERE lower(name) = lower(?1) AND name <> ?2");
        // An empty `except` excludes nothing: IAM names are never empty.
        tx.query_opt(&sql, params![name, except.unwrap_or("")], |r| r.get(0))
    }

    fn require_user(tx: &dyn Conn, name: &str) -> Result<UserRecord, StateError> {
        tx.query_opt(
            "SELECT name, id, path, created FROM users WHERE name = ?1",
            params![name],
            |r| {
                Ok(UserRecord {
                    name: r.get(0)?,
                    id: r.get(1)?,
                    path: r.get(2)?,
                    created: r.get(3)?,
                })
            },
        )?
        .ok_or_else(|| {
            StateError::NoSuchEntity(format!("The user with name {name} cannot be found."))
        })
    }

    /// CreateUser.
    pub fn create_user(&self, name: &str, path: &str) -> Result<(UserRecord, String), StateError> {
        self.create_user_with(name, path, None, &[])
    }

    /// CreateUser with its optional permissions boundary (a managed policy ARN) and tags, set in
    /// the same transaction: the user never exists without them.
    pub fn create_user_with(
        &self,
        name: &str,
        path: &str,
        boundary: Option<&str>,
        tags: &[(String, String)],
    ) -> Result<(UserRecord, String), StateError> {
        validate_name("userName", name, 64)?;
        validate_path(path)?;
        validate_principal_tags(tags)?;
        if tags.len() > 50 {
            return Err(StateError::LimitExceeded(
                "Cannot exceed quota for TagsPerPrincipal: 50".into(),
            ));
        }
        let boundary = boundary
            .map(|a| self.policy_name_from_arn(a).map(|n| (a, n)))
            .transpose()?;
        let rec = self.change(|tx| {
            tx.touch(Touched::User(name.to_owned()));
            if Self::name_holder(tx, "users", name, None)?.is_some() {
                return Err(StateError::EntityAlreadyExists(format!(
                    "User with name {name} already exists."
                )));
            }
            let created = now();
            let rec = UserRecord {
                name: name.to_owned(),
                id: principals::issue_id(tx, "AIDA", "user", name, &created)?,
                path: path.to_owned(),
                created,
            };
            tx.execute(
                "INSERT INTO users (name, id, path, created) VALUES (?1, ?2, ?3, ?4)",
                params![rec.name, rec.id, rec.path, rec.created],
            )?;
            Self::set_boundary_in(tx, PrincipalKind::User, name, boundary.as_ref())?;
            Self::tag_in(tx, PrincipalKind::User, name, tags)?;
            Ok(rec)
        })?;
        let arn = self.user_arn(&rec);
        Ok((rec, arn))
    }

    /// GetUser.
    pub fn get_user(&self, name: &str) -> Result<(UserRecord, String), StateError> {
        let rec = self.with_db(|db| Self::require_user(db, name))?;
        let arn = self.user_arn(&rec);
        Ok((rec, arn))
    }

    /// UpdateUser: a new name and/or path. The user keeps its unique id, access keys, policies,
    /// boundary, tags and groups under the new name; bucket and trust policies that name it as a
    /// principal are rewritten to its new ARN ([`principals::rename`]); policies that name it as
    /// a resource are not changed
    /// (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_users_rename.html). A new name is
    /// unique regardless of case, like CreateUser's; a change of case alone is a rename.
    pub fn update_user(
        &self,
        name: &str,
        new_name: Option<&str>,
        new_path: Option<&str>,
    ) -> Result<(UserRecord, String), StateError> {
        if let Some(n) = new_name {
            validate_name("newUserName", n, 64)?;
        }
        if let Some(p) = new_path {
            validate_path(p)?;
        }
        let rec = self.change(|tx| {
            let user = Self::require_user(tx, name)?;
            let target = new_name.unwrap_or(&user.name).to_owned();
            let path = new_path.unwrap_or(&user.path).to_owned();
            tx.touch(Touched::User(user.name.clone()));
            tx.touch(Touched::User(target.clone()));
            if target != user.name {
                if let Some(other) = Self::name_holder(tx, "users", &target, Some(&user.name))? {
                    return Err(StateError::EntityAlreadyExists(format!(
                        "User with name {other} already exists."
                    )));
                }
                for table in [
                    "access_keys",
                    "user_policies",
                    "user_attachments",
                    "group_members",
                ] {
                    tx.execute(
                        &format!("UPDATE {table} SET user_name = ?1 WHERE user_name = ?2"),
                        params![target, user.name],
                    )?;
                }
                for table in ["permissions_boundaries", "principal_tags"] {
                    tx.execute(
                        &format!("UPDATE {table} SET name = ?1 WHERE kind = 'user' AND name = ?2"),
                        params![target, user.name],
                    )?;
                }
            }
            let renamed = UserRecord {
                name: target,
                path,
                ..user.clone()
            };
            let (old_arn, new_arn) = (self.user_arn(&user), self.user_arn(&renamed));
            if new_arn != old_arn {
                for t in principals::rename(tx, &user.id, &old_arn, &new_arn)? {
                    tx.touch(t);
                }
            }
            tx.execute(
                "UPDATE users SET name = ?1, path = ?2 WHERE name = ?3",
                params![renamed.name, renamed.path, user.name],
            )?;
            Ok(renamed)
        })?;
        let arn = self.user_arn(&rec);
        Ok((rec, arn))
    }

    /// ListUsers (sorted by name).
    pub fn list_users(&self) -> Result<Vec<(UserRecord, String)>, StateError> {
        let users = self.with_db(|db| {
            let rows = db.query_map(
                "SELECT name, id, path, created FROM users ORDER BY name",
                params![],
                |r| {
                    Ok(UserRecord {
                        name: r.get(0)?,
                        id: r.get(1)?,
                        path: r.get(2)?,
                        created: r.get(3)?,
                    })
                },
            )?;
            Ok(rows)
        })?;
        Ok(users
            .into_iter()
            .map(|u| {
                let arn = self.user_arn(&u);
                (u, arn)
            })
            .collect())
    }

    /// DeleteUser: refused while the user still has keys or policies, as AWS does.
    pub fn delete_user(&self, name: &str) -> Result<(), StateError> {
        self.delete_principal(PrincipalKind::User, name)
    }

    /// Deletes a user, group or role once nothing that AWS requires removing first is left
    /// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_DeleteUser.html: access keys,
    /// inline and attached policies, group memberships;
    /// https://docs.aws.amazon.com/IAM/latest/APIReference/API_DeleteGroup.html: members and
    /// policies), together with what belongs to it alone (tags, boundary), so a later principal of
    /// the same name starts clean.
    fn delete_principal(&self, kind: PrincipalKind, name: &str) -> Result<(), StateError> {
        let k = kind.word();
        self.change(|tx| {
            tx.touch(who(kind, name));
            Self::require(tx, kind, name)?;
            let (policies, attachments) = (format!("{k}_policies"), format!("{k}_attachments"));
            let mut blockers = vec![
                (policies.as_str(), "delete inline policies"),
                (attachments.as_str(), "detach attached policies"),
            ];
            match kind {
                PrincipalKind::User => {
                    blockers.insert(0, ("access_keys", "delete access keys"));
                    blockers.push(("group_members", "remove the user from all groups"));
                }
                PrincipalKind::Group => {
                    blockers.insert(0, ("group_members", "remove all users from the group"));
                }
                PrincipalKind::Role => {}
            }
            for (table, what) in blockers {
                let n: i64 = tx.query_one(
                    &format!("SELECT count(*) FROM {table} WHERE {k}_name = ?1"),
                    params![name],
                    |r| r.get(0),
                )?;
                if n > 0 {
                    return Err(StateError::DeleteConflict(format!(
                        "Cannot delete entity, must {what} first."
                    )));
                }
            }
            for table in ["permissions_boundaries", "principal_tags"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE kind = ?1 AND name = ?2"),
                    params![k, name],
                )?;
            }
            if kind == PrincipalKind::Role {
                principals::unbind(tx, &principals::trust_scope(name))?;
            }
            tx.execute(
                &format!("DELETE FROM {} WHERE name = ?1", kind.table()),
                params![name],
            )?;
            Ok(())
        })
    }

    /// CreateAccessKey: returns the record and the secret (shown once).
    pub fn create_access_key(
        &self,
        user: &str,
    ) -> Result<(AccessKeyRecord, SecretKey), StateError> {
        let id = crate::account::new_id("AKIA", 16);
        let secret = crate::account::new_secret();
        let sealed = self.sealer.seal(&secret, &id)?;
        let rec = self.change(|tx| {
            tx.touch(Touched::User(user.to_owned()));
            Self::require_user(tx, user)?;
            let n: i64 = tx.query_one("SELECT count(*) FROM access_keys WHERE user_name = ?1", params![user], |r| r.get(0))?;
            if n as usize >= MAX_ACCESS_KEYS_PER_USER {
                return Err(StateError::LimitExceeded(format!(
                    "Cannot exceed quota for AccessKeysPerUser: {MAX_ACCESS_KEYS_PER_USER}"
                )));
            }
            let rec = AccessKeyRecord { id: id.clone(), user_name: user.to_owned(), status: "Active".into(), created: now() };
            tx.execute(
                "INSERT INTO access_keys (id, user_name, secret_sealed, status, created) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![rec.id, rec.user_name, sealed, rec.status, rec.created])?;
            Ok(rec)
        })?;
        Ok((rec, SecretKey::new(secret)))
    }

    /// ListAccessKeys.
    pub fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKeyRecord>, StateError> {
        self.with_db(|db| {
            Self::require_user(db, user)?;
            let rows = db.query_map("SELECT id, user_name, status, created FROM access_keys WHERE user_name = ?1 ORDER BY created, id", params![user], |r| {
                    Ok(AccessKeyRecord { id: r.get(0)?, user_name: r.get(1)?, status: r.get(2)?, created: r.get(3)? })
                })?;
            Ok(rows)
        })
    }

    /// The owner of an access key (for UpdateAccessKey/DeleteAccessKey without UserName).
    pub fn key_owner(&self, id: &str) -> Option<String> {
        self.snapshot().keys.get(id).map(|k| k.user.clone())
    }

    /// UpdateAccessKey: `Active` or `Inactive`, in force for the next request.
    pub fn update_access_key(&self, user: &str, id: &str, status: &str) -> Result<(), StateError> {
        if status != "Active" && status != "Inactive" {
            return Err(StateError::Validation(format!(
                "1 validation error detected: Value '{status}' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]"
            )));
        }
        self.change(|tx| {
            tx.touch(Touched::User(user.to_owned()));
            let n = tx.execute(
                "UPDATE access_keys SET status = ?1 WHERE id = ?2 AND user_name = ?3",
                params![status, id, user],
            )?;
            if n == 0 {
                return Err(StateError::NoSuchEntity(format!(
                    "The Access Key with id {id} cannot be found."
                )));
            }
            Ok(())
        })
    }

    /// DeleteAccessKey.
    pub fn delete_access_key(&self, user: &str, id: &str) -> Result<(), StateError> {
        self.change(|tx| {
            tx.touch(Touched::User(user.to_owned()));
            let n = tx.execute(
                "DELETE FROM access_keys WHERE id = ?1 AND user_name = ?2",
                params![id, user],
            )?;
            if n == 0 {
                return Err(StateError::NoSuchEntity(format!(
                    "The Access Key with id {id} cannot be found."
                )));
            }
            tx.execute(
                "DELETE FROM access_key_last_used WHERE access_key_id = ?1",
                params![id],
            )?;
            Ok(())
        })
    }

    fn managed_by_name(
        db: &dyn Conn,
        name: &str,
    ) -> Result<Option<ManagedPolicyRecord>, StateError> {
        db.query_opt(
                "SELECT m.name, m.id, m.path, m.description, m.document, m.created, m.default_version,
                        (SELECT count(*) FROM user_attachments a WHERE a.policy_name = m.name)
                        + (SELECT count(*) FROM group_attachments g WHERE g.policy_name = m.name)
                        + (SELECT count(*) FROM role_attachments r WHERE r.policy_name = m.name),
                        (SELECT count(*) FROM permissions_boundaries b WHERE b.policy_name = m.name),
                        (SELECT max(v.created) FROM policy_versions v WHERE v.policy_name = m.name)
                 FROM managed_policies m WHERE m.name = ?1",
                params![name],
                |r| {
                    let created: String = r.get(5)?;
                    Ok(ManagedPolicyRecord {
                        name: r.get(0)?,
                        id: r.get(1)?,
                        path: r.get(2)?,
                        description: r.get(3)?,
                        document: r.get(4)?,
                        default_version: version_id(r.get(6)?),
                        attachments: r.get::<i64>(7)? as usize,
                        boundary_uses: r.get::<i64>(8)? as usize,
                        updated: r.get::<Option<String>>(9)?.unwrap_or_else(|| created.clone()),
                        created,
                    })
                })
    }

    /// The managed policy an ARN of this account names.
    ///
    /// The whole ARN must match, path included: `policy/team/p` does not name `policy/p`.
    /// Called before any transaction (it reads the database itself).
    fn policy_name_from_arn(&self, arn: &str) -> Result<String, StateError> {
        let prefix = format!("arn:aws:iam::{}:policy/", self.account_id);
        let missing = || {
            StateError::NoSuchEntity(format!("Policy {arn} does not exist or is not attachable."))
        };
        let name = arn
            .strip_prefix(&prefix)
            .and_then(|rest| rest.rsplit('/').next())
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .ok_or_else(missing)?;
        match self.with_db(|db| Self::managed_by_name(db, &name))? {
            Some(p) if self.policy_arn(&p) != arn => Err(missing()),
            _ => Ok(name),
        }
    }

    /// CreatePolicy.
    pub fn create_policy(
        &self,
        name: &str,
        path: &str,
        description: &str,
        doc: &str,
    ) -> Result<ManagedPolicyRecord, StateError> {
        validate_name("policyName", name, 128)?;
        validate_path(path)?;
        if policy_chars(doc) > MAX_MANAGED_POLICY_CHARS {
            return Err(StateError::LimitExceeded(format!(
                "Cannot exceed quota for PolicySize: {MAX_MANAGED_POLICY_CHARS}"
            )));
        }
        compile_identity_policy(doc, name)?;
        check_iam_sids(doc)?;
        self.change(|tx| {
            tx.touch(Touched::Policy(name.to_owned()));
            // "Names are not distinguished by case"
            // (https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreatePolicy.html).
            if let Some(existing) = Self::name_holder(tx, "managed_policies", name, None)? {
                return Err(StateError::EntityAlreadyExists(format!(
                    "A policy called {existing} already exists. Duplicate names are not allowed (policy names are not distinguished by case)."
                )));
            }
            let created = now();
            let rec = ManagedPolicyRecord {
                name: name.to_owned(),
                id: crate::account::new_id("ANPA", 17),
                path: path.to_owned(),
                description: description.to_owned(),
                document: doc.to_owned(),
                created: created.clone(),
                default_version: version_id(1),
                updated: created,
                attachments: 0,
                boundary_uses: 0,
            };
            tx.execute(
                "INSERT INTO managed_policies (name, id, path, description, document, created, default_version, last_version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, 1)",
                params![rec.name, rec.id, rec.path, rec.description, rec.document, rec.created])?;
            tx.execute(
                "INSERT INTO policy_versions (policy_name, version, document, created) VALUES (?1, 1, ?2, ?3)",
                params![rec.name, rec.document, rec.created])?;
            documents::remember(tx, doc)?;
            Ok(rec)
        })
    }

    /// GetPolicy by ARN.
    pub fn get_policy(&self, arn: &str) -> Result<ManagedPolicyRecord, StateError> {
        let name = self.policy_name_from_arn(arn)?;
        self.with_db(|db| Self::managed_by_name(db, &name))?
            .ok_or_else(|| StateError::NoSuchEntity(format!("Policy {arn} was not found.")))
    }

    /// ListEntitiesForPolicy: the groups, users and roles (in that order, each by name) a managed
    /// policy is attached to or is the permissions boundary of
    /// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_ListEntitiesForPolicy.html).
    pub fn entities_for_policy(&self, arn: &str) -> Result<Vec<PolicyEntity>, StateError> {
        let policy = self.get_policy(arn)?;
        self.with_db(|db| {
            let mut out: Vec<PolicyEntity> = Vec::new();
            for (kind, table) in [
                (PrincipalKind::Group, "iam_groups"),
                (PrincipalKind::User, "users"),
                (PrincipalKind::Role, "roles"),
            ] {
                let k = kind.word();
                let attached = db.query_map(
                    &format!(
                        "SELECT e.name, e.id, e.path FROM {table} e JOIN {k}_attachments a ON a.{k}_name = e.name WHERE a.policy_name = ?1"
                    ),
                    params![policy.name],
                    |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?, r.get::<String>(2)?)),
                )?;
                // Groups have no permissions boundary.
                let bounded = if kind == PrincipalKind::Group {
                    Vec::new()
                } else {
                    db.query_map(
                        &format!(
                            "SELECT e.name, e.id, e.path FROM {table} e JOIN permissions_boundaries b ON b.kind = ?2 AND b.name = e.name WHERE b.policy_name = ?1"
                        ),
                        params![policy.name, k],
                        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?, r.get::<String>(2)?)),
                    )?
                };
                // By name: one entry per entity, whether it holds the policy one way or both.
                let mut of_kind: std::collections::BTreeMap<String, PolicyEntity> =
                    std::collections::BTreeMap::new();
                for (rows, as_boundary) in [(attached, false), (bounded, true)] {
                    for (name, id, path) in rows {
                        let entity = of_kind.entry(name.clone()).or_insert(PolicyEntity {
                            kind,
                            name,
                            id,
                            path,
                            attached: false,
                            boundary: false,
                        });
                        if as_boundary {
                            entity.boundary = true;
                        } else {
                            entity.attached = true;
                        }
                    }
                }
                out.extend(of_kind.into_values());
            }
            Ok(out)
        })
    }

    /// ListPolicies (this account's, sorted by name).
    pub fn list_policies(&self) -> Result<Vec<ManagedPolicyRecord>, StateError> {
        self.with_db(|db| {
            let names = db.query_map(
                "SELECT name FROM managed_policies ORDER BY name",
                params![],
                |r| r.get::<String>(0),
            )?;
            let mut out = Vec::new();
            for n in names {
                if let Some(p) = Self::managed_by_name(db, &n)? {
                    out.push(p);
                }
            }
            Ok(out)
        })
    }

    /// DeletePolicy: refused while it is attached, in use as a permissions boundary, or has
    /// versions besides the default one; AWS requires detaching it and deleting those versions
    /// first, and deletes the default version with the policy
    /// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_DeletePolicy.html).
    pub fn delete_policy(&self, arn: &str) -> Result<(), StateError> {
        let name = self.policy_name_from_arn(arn)?;
        self.change(|tx| {
            tx.touch(Touched::Policy(name.clone()));
            let p = Self::managed_by_name(tx, &name)?
                .ok_or_else(|| StateError::NoSuchEntity(format!("Policy {arn} was not found.")))?;
            if p.attachments > 0 || p.boundary_uses > 0 {
                return Err(StateError::DeleteConflict(
                    "Cannot delete a policy attached to entities.".into(),
                ));
            }
            let versions: i64 = tx.query_one(
                "SELECT count(*) FROM policy_versions WHERE policy_name = ?1",
                params![&name],
                |r| r.get(0))?;
            if versions > 1 {
                return Err(StateError::DeleteConflict(format!(
                    "This policy has more than one version. Before you delete a policy, you must delete the policy's versions other than the default ({}) with DeletePolicyVersion. The default version is deleted with the policy.",
                    p.default_version
                )));
            }
            tx.execute("DELETE FROM policy_versions WHERE policy_name = ?1", params![&name])?;
            tx.execute("DELETE FROM managed_policies WHERE name = ?1", params![&name])?;
            Ok(())
        })
    }
}

impl State {
    fn require_role(tx: &dyn Conn, name: &str) -> Result<RoleRecord, StateError> {
        tx.query_opt(
            "SELECT name, id, path, trust_policy, max_session_secs, description, created FROM roles WHERE name = ?1",
            params![name],
            |r| {
                Ok(RoleRecord {
                    name: r.get(0)?,
                    id: r.get(1)?,
                    path: r.get(2)?,
                    trust_policy: r.get(3)?,
                    max_session_secs: r.get(4)?,
                    description: r.get(5)?,
                    created: r.get(6)?,
                })
            })?
        .ok_or_else(|| StateError::NoSuchEntity(format!("The role with name {name} cannot be found.")))
    }

    /// The ARN of a role.
    pub fn role_arn(&self, r: &RoleRecord) -> String {
        format!("arn:aws:iam::{}:role{}{}", self.account_id, r.path, r.name)
    }

    /// CreateRole.
    pub fn create_role(
        &self,
        name: &str,
        path: &str,
        trust: &str,
        max_session_secs: i64,
        description: &str,
    ) -> Result<RoleRecord, StateError> {
        self.create_role_with(name, path, trust, max_session_secs, description, None, &[])
    }

    /// CreateRole with its optional permissions boundary (a managed policy ARN) and tags, set in
    /// the same transaction: the role never exists without them. The trust policy's principals
    /// are bound to the entities they name ([`principals`]); a trust policy naming the role itself
    /// is refused, as in AWS (it does not exist yet).
    #[expect(clippy::too_many_arguments, reason = "CreateRole's parameters")]
    pub fn create_role_with(
        &self,
        name: &str,
        path: &str,
        trust: &str,
        max_session_secs: i64,
        description: &str,
        boundary: Option<&str>,
        tags: &[(String, String)],
    ) -> Result<RoleRecord, StateError> {
        validate_name("roleName", name, 64)?;
        validate_principal_tags(tags)?;
        if tags.len() > 50 {
            return Err(StateError::LimitExceeded(
                "Cannot exceed quota for TagsPerPrincipal: 50".into(),
            ));
        }
        let boundary = boundary
            .map(|a| self.policy_name_from_arn(a).map(|n| (a, n)))
            .transpose()?;
        validate_path(path)?;
        validate_role_description(description)?;
        validate_max_session(max_session_secs)?;
        let compiled = compile_trust_policy(trust)?;
        check_iam_sids(trust)?;
        self.change(|tx| {
            tx.touch(Touched::Role(name.to_owned()));
            if Self::name_holder(tx, "roles", name, None)?.is_some() {
                return Err(StateError::EntityAlreadyExists(format!("Role with name {name} already exists.")));
            }
            principals::bind(tx, &self.account_id, &principals::trust_scope(name), &compiled)?;
            let created = now();
            let rec = RoleRecord {
                name: name.to_owned(),
                id: principals::issue_id(tx, "AROA", "role", name, &created)?,
                path: path.to_owned(),
                trust_policy: trust.to_owned(),
                max_session_secs,
                description: description.to_owned(),
                created,
            };
            tx.execute(
                "INSERT INTO roles (name, id, path, trust_policy, max_session_secs, description, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![rec.name, rec.id, rec.path, rec.trust_policy, rec.max_session_secs, rec.description, rec.created])?;
            documents::remember(tx, trust)?;
            Self::set_boundary_in(tx, PrincipalKind::Role, name, boundary.as_ref())?;
            Self::tag_in(tx, PrincipalKind::Role, name, tags)?;
            Ok(rec)
        })
    }

    /// GetRole.
    pub fn get_role(&self, name: &str) -> Result<RoleRecord, StateError> {
        self.with_db(|db| Self::require_role(db, name))
    }

    /// ListRoles (sorted by name).
    pub fn list_roles(&self) -> Result<Vec<RoleRecord>, StateError> {
        let snap = self.snapshot();
        let mut roles: Vec<RoleRecord> = snap.roles.values().map(|r| r.record.clone()).collect();
        roles.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(roles)
    }

    /// DeleteRole: refused while it has policies.
    pub fn delete_role(&self, name: &str) -> Result<(), StateError> {
        self.delete_principal(PrincipalKind::Role, name)
    }

    /// UpdateAssumeRolePolicy.
    pub fn update_trust_policy(&self, name: &str, trust: &str) -> Result<(), StateError> {
        let compiled = compile_trust_policy(trust)?;
        check_iam_sids(trust)?;
        self.change(|tx| {
            tx.touch(Touched::Role(name.to_owned()));
            Self::require_role(tx, name)?;
            principals::bind(
                tx,
                &self.account_id,
                &principals::trust_scope(name),
                &compiled,
            )?;
            tx.execute(
                "UPDATE roles SET trust_policy = ?1 WHERE name = ?2",
                params![trust, name],
            )?;
            documents::remember(tx, trust)?;
            Ok(())
        })
    }
}

/// A role's `MaxSessionDuration` (CreateRole, UpdateRole): within [`ROLE_MAX_SESSION_RANGE`].
fn validate_max_session(secs: i64) -> Result<(), StateError> {
    if ROLE_MAX_SESSION_RANGE.contains(&secs) {
        Ok(())
    } else {
        Err(StateError::Validation(format!(
            "1 validation error detected: Value '{secs}' at 'maxSessionDuration' failed to satisfy constraint: Member must have value between 3600 and 43200"
        )))
    }
}

/// A role's `Description`: "Maximum length of 1000. Pattern:
/// `[\u0009\u000A\u000D\u0020-\u007E\u00A1-\u00FF]*`" (API_CreateRole.html, API_UpdateRole.html):
/// tab, newlines, printable ASCII and Latin-1. Nothing else is stored, so nothing else is ever
/// written into an XML answer (review 21, M1: a control character broke ListRoles for everyone).
fn validate_role_description(d: &str) -> Result<(), StateError> {
    if d.chars().count() > 1000 {
        return Err(StateError::Validation(
            "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 1000".into(),
        ));
    }
    let allowed = |c: char| matches!(c, '\u{9}' | '\u{a}' | '\u{d}' | '\u{20}'..='\u{7e}' | '\u{a1}'..='\u{ff}');
    if let Some(bad) = d.chars().find(|&c| !allowed(c)) {
        return Err(StateError::Validation(format!(
            "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\u0009\\u000A\\u000D\\u0020-\\u007E\\u00A1-\\u00FF]* (character U+{:04X} is not allowed)",
            u32::from(bad)
        )));
    }
    Ok(())
}

impl State {
    /// UpdateRole: the role's description and the longest session AssumeRole may grant, each
    /// only when given ("MaxSessionDuration ... between 3600 and 43200"; "Description ... maximum
    /// length of 1000", https://docs.aws.amazon.com/IAM/latest/APIReference/API_UpdateRole.html).
    /// Sessions already issued keep their expiry.
    pub fn update_role(
        &self,
        name: &str,
        description: Option<&str>,
        max_session_secs: Option<i64>,
    ) -> Result<(), StateError> {
        if let Some(m) = max_session_secs {
            validate_max_session(m)?;
        }
        if let Some(d) = description {
            validate_role_description(d)?;
        }
        self.change(|tx| {
            tx.touch(Touched::Role(name.to_owned()));
            Self::require_role(tx, name)?;
            if let Some(d) = description {
                tx.execute(
                    "UPDATE roles SET description = ?1 WHERE name = ?2",
                    params![d, name],
                )?;
            }
            if let Some(m) = max_session_secs {
                tx.execute(
                    "UPDATE roles SET max_session_secs = ?1 WHERE name = ?2",
                    params![m, name],
                )?;
            }
            Ok(())
        })
    }
}

/// Whose policies, tags or boundary an operation is about. Groups have policies only (AWS gives
/// them no tags and no permissions boundary, and they are never principals themselves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// An IAM user.
    User,
    /// An IAM group.
    Group,
    /// An IAM role.
    Role,
}

/// What a change to a user, group or role touches.
fn who(kind: PrincipalKind, name: &str) -> Touched {
    match kind {
        PrincipalKind::User => Touched::User(name.to_owned()),
        PrincipalKind::Group => Touched::Group(name.to_owned()),
        PrincipalKind::Role => Touched::Role(name.to_owned()),
    }
}

impl PrincipalKind {
    /// The table prefix and `kind` column value (a fixed word, never input).
    pub fn word(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Group => "group",
            PrincipalKind::Role => "role",
        }
    }

    /// The table of the entities themselves (`GROUPS` is an SQL keyword, hence `iam_groups`).
    fn table(self) -> &'static str {
        match self {
            PrincipalKind::User => "users",
            PrincipalKind::Group => "iam_groups",
            PrincipalKind::Role => "roles",
        }
    }

    /// The word AWS's quota names use (`PoliciesPerUser`, ...).
    fn title(self) -> &'static str {
        match self {
            PrincipalKind::User => "User",
            PrincipalKind::Group => "Group",
            PrincipalKind::Role => "Role",
        }
    }

    /// AWS's limit on the aggregate size of the principal's inline policies (characters,
    /// whitespace excluded): 2,048 for a user, 5,120 for a group, 10,240 for a role
    /// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html).
    fn inline_limit(self) -> usize {
        match self {
            PrincipalKind::User => MAX_USER_INLINE_POLICY_CHARS,
            PrincipalKind::Group => MAX_GROUP_INLINE_POLICY_CHARS,
            PrincipalKind::Role => MAX_ROLE_INLINE_POLICY_CHARS,
        }
    }
}

impl State {
    fn require(db: &dyn Conn, kind: PrincipalKind, name: &str) -> Result<(), StateError> {
        match kind {
            PrincipalKind::User => Self::require_user(db, name).map(|_| ()),
            PrincipalKind::Group => Self::require_group(db, name).map(|_| ()),
            PrincipalKind::Role => Self::require_role(db, name).map(|_| ()),
        }
    }

    /// Put{User,Group,Role}Policy: validated, compiled, within AWS's aggregate size limit.
    pub fn put_inline_policy(
        &self,
        kind: PrincipalKind,
        owner: &str,
        name: &str,
        doc: &str,
    ) -> Result<(), StateError> {
        validate_name("policyName", name, 128)?;
        compile_identity_policy(doc, name)?;
        check_iam_sids(doc)?;
        let k = kind.word();
        self.change(|tx| {
            tx.touch(who(kind, owner));
            Self::require(tx, kind, owner)?;
            let others: usize = tx
                .query_map(
                    &format!(
                "SELECT document FROM {k}_policies WHERE {k}_name = ?1 AND policy_name <> ?2"
            ),
                    params![owner, name],
                    |r| r.get::<String>(0),
                )?
                .iter()
                .map(|d| policy_chars(d))
                .sum();
            let limit = kind.inline_limit();
            if others + policy_chars(doc) > limit {
                return Err(StateError::LimitExceeded(format!(
                    "Maximum policy size of {limit} bytes exceeded for {k} {owner}"
                )));
            }
            tx.execute(
                &format!(
                    "INSERT INTO {k}_policies ({k}_name, policy_name, document) VALUES (?1, ?2, ?3)
                     ON CONFLICT ({k}_name, policy_name) DO UPDATE SET document = excluded.document"
                ),
                params![owner, name, doc],
            )?;
            documents::remember(tx, doc)?;
            Ok(())
        })
    }

    /// Get{User,Group,Role}Policy.
    pub fn get_inline_policy(
        &self,
        kind: PrincipalKind,
        owner: &str,
        name: &str,
    ) -> Result<String, StateError> {
        let k = kind.word();
        self.with_db(|db| {
            Self::require(db, kind, owner)?;
            db.query_opt(
                &format!(
                    "SELECT document FROM {k}_policies WHERE {k}_name = ?1 AND policy_name = ?2"
                ),
                params![owner, name],
                |r| r.get(0),
            )?
            .ok_or_else(|| {
                StateError::NoSuchEntity(format!(
                    "The {k} policy with name {name} cannot be found."
                ))
            })
        })
    }

    /// List{User,Group,Role}Policies.
    pub fn list_inline_policies(
        &self,
        kind: PrincipalKind,
        owner: &str,
    ) -> Result<Vec<String>, StateError> {
        let k = kind.word();
        self.with_db(|db| {
            Self::require(db, kind, owner)?;
            let rows = db.query_map(
                &format!(
                    "SELECT policy_name FROM {k}_policies WHERE {k}_name = ?1 ORDER BY policy_name"
                ),
                params![owner],
                |r| r.get(0),
            )?;
            Ok(rows)
        })
    }

    /// Delete{User,Group,Role}Policy.
    pub fn delete_inline_policy(
        &self,
        kind: PrincipalKind,
        owner: &str,
        name: &str,
    ) -> Result<(), StateError> {
        let k = kind.word();
        self.change(|tx| {
            tx.touch(who(kind, owner));
            Self::require(tx, kind, owner)?;
            let n = tx.execute(
                &format!("DELETE FROM {k}_policies WHERE {k}_name = ?1 AND policy_name = ?2"),
                params![owner, name],
            )?;
            if n == 0 {
                return Err(StateError::NoSuchEntity(format!(
                    "The {k} policy with name {name} cannot be found."
                )));
            }
            Ok(())
        })
    }

    /// Attach{User,Group,Role}Policy (at most 10 managed policies each, AWS's default quota).
    pub fn attach_policy(
        &self,
        kind: PrincipalKind,
        owner: &str,
        arn: &str,
    ) -> Result<(), StateError> {
        let name = self.policy_name_from_arn(arn)?;
        let k = kind.word();
        self.change(|tx| {
            tx.touch(who(kind, owner));
            Self::require(tx, kind, owner)?;
            if Self::managed_by_name(tx, &name)?.is_none() {
                return Err(StateError::NoSuchEntity(format!("Policy {arn} does not exist or is not attachable.")));
            }
            // Attaching a policy already attached changes nothing, even at the quota.
            let n: i64 = tx.query_one(
                &format!("SELECT count(*) FROM {k}_attachments WHERE {k}_name = ?1 AND policy_name <> ?2"),
                params![owner, name],
                |r| r.get(0))?;
            if n as usize >= MAX_ATTACHED_POLICIES {
                return Err(StateError::LimitExceeded(format!(
                    "Cannot exceed quota for PoliciesPer{}: {MAX_ATTACHED_POLICIES}",
                    kind.title()
                )));
            }
            tx.execute(
                &format!("INSERT INTO {k}_attachments ({k}_name, policy_name) VALUES (?1, ?2) ON CONFLICT DO NOTHING"),
                params![owner, name])?;
            Ok(())
        })
    }

    /// Detach{User,Group,Role}Policy.
    pub fn detach_policy(
        &self,
        kind: PrincipalKind,
        owner: &str,
        arn: &str,
    ) -> Result<(), StateError> {
        let name = self.policy_name_from_arn(arn)?;
        let k = kind.word();
        self.change(|tx| {
            tx.touch(who(kind, owner));
            Self::require(tx, kind, owner)?;
            let n = tx.execute(
                &format!("DELETE FROM {k}_attachments WHERE {k}_name = ?1 AND policy_name = ?2"),
                params![owner, name],
            )?;
            if n == 0 {
                return Err(StateError::NoSuchEntity(format!(
                    "Policy {arn} was not attached to {k} {owner}."
                )));
            }
            Ok(())
        })
    }

    /// ListAttached{User,Group,Role}Policies: (name, arn).
    pub fn list_attached_policies(
        &self,
        kind: PrincipalKind,
        owner: &str,
    ) -> Result<Vec<(String, String)>, StateError> {
        let k = kind.word();
        let rows = self.with_db(|db| {
            Self::require(db, kind, owner)?;
            let names = db.query_map(
                &format!(
                "SELECT policy_name FROM {k}_attachments WHERE {k}_name = ?1 ORDER BY policy_name"
            ),
                params![owner],
                |r| r.get::<String>(0),
            )?;
            let mut out = Vec::new();
            for n in names {
                if let Some(p) = Self::managed_by_name(db, &n)? {
                    out.push(p);
                }
            }
            Ok(out)
        })?;
        Ok(rows
            .into_iter()
            .map(|p| {
                let arn = self.policy_arn(&p);
                (p.name, arn)
            })
            .collect())
    }
}

impl State {
    /// PutBucketPolicy: stores a compiled-and-valid policy. Refused (AccessDenied by the caller)
    /// when it is public and BlockPublicPolicy is in force; the check is here so it cannot be
    /// skipped.
    pub fn put_bucket_policy(&self, bucket: &str, doc: &str) -> Result<bool, StateError> {
        let compiled = compile_bucket_policy(doc)?;
        check_unique_sids(doc)?;
        if compiled.is_public() && self.snapshot().effective_bpa(bucket).block_public_policy {
            return Ok(false);
        }
        self.change(|tx| {
            tx.touch(Touched::Bucket(bucket.to_owned()));
            principals::bind(
                tx,
                &self.account_id,
                &principals::bucket_scope(bucket),
                &compiled,
            )?;
            tx.execute(
                "INSERT INTO bucket_policies (bucket, document) VALUES (?1, ?2)
                 ON CONFLICT (bucket) DO UPDATE SET document = excluded.document",
                params![bucket, doc],
            )?;
            documents::remember(tx, doc)?;
            Ok(())
        })?;
        Ok(true)
    }

    /// GetBucketPolicy: the document as stored, if any, with the principals deleted since shown
    /// as their unique ids ([`principals::render`]).
    pub fn get_bucket_policy(&self, bucket: &str) -> Result<Option<String>, StateError> {
        let (doc, bound) = self.with_db(|db| {
            let doc: Option<String> = db.query_opt(
                "SELECT document FROM bucket_policies WHERE bucket = ?1",
                params![bucket],
                |r| r.get(0),
            )?;
            Ok((
                doc,
                principals::bindings(db, &principals::bucket_scope(bucket))?,
            ))
        })?;
        Ok(doc.map(|d| self.render_principals(&d, &bound)))
    }

    /// A stored document with each orphaned principal shown as its unique id.
    fn render_principals(&self, doc: &str, bound: &HashMap<String, String>) -> String {
        let snap = self.snapshot();
        principals::render(doc, bound, |arn| {
            let (kind, rest) = arn.splitn(6, ':').nth(5)?.split_once('/')?;
            match kind {
                "user" => {
                    let name = rest.rsplit('/').next()?;
                    snap.users
                        .get(name)
                        .filter(|u| u.arn == arn)
                        .map(|u| u.record.id.clone())
                }
                "role" => {
                    let name = rest.rsplit('/').next()?;
                    snap.roles
                        .get(name)
                        .filter(|r| r.arn == arn)
                        .map(|r| r.record.id.clone())
                }
                "assumed-role" => {
                    let role = rest.split('/').next()?;
                    snap.roles.get(role).map(|r| r.record.id.clone())
                }
                _ => None,
            }
        })
    }

    /// A role's trust policy as GetRole and ListRoles show it: principals deleted since the
    /// policy was stored appear as their unique ids.
    pub fn displayed_trust_policy(&self, role: &RoleRecord) -> Result<String, StateError> {
        let bound =
            self.with_db(|db| principals::bindings(db, &principals::trust_scope(&role.name)))?;
        Ok(self.render_principals(&role.trust_policy, &bound))
    }

    /// DeleteBucketPolicy (idempotent, as in S3).
    pub fn delete_bucket_policy(&self, bucket: &str) -> Result<(), StateError> {
        self.change(|tx| {
            tx.touch(Touched::Bucket(bucket.to_owned()));
            principals::unbind(tx, &principals::bucket_scope(bucket))?;
            tx.execute(
                "DELETE FROM bucket_policies WHERE bucket = ?1",
                params![bucket],
            )?;
            Ok(())
        })
    }

    /// PutBucketCors: stores the configuration (as GetBucketCors answers it); the caller parsed
    /// and validated it ([`crate::s3::cors::CorsConfiguration`]).
    pub fn put_bucket_cors(&self, bucket: &str, doc: &str) -> Result<(), StateError> {
        self.change(|tx| {
            tx.touch(Touched::Bucket(bucket.to_owned()));
            tx.execute(
                "INSERT INTO bucket_cors (bucket, document) VALUES (?1, ?2)
                 ON CONFLICT (bucket) DO UPDATE SET document = excluded.document",
                params![bucket, doc],
            )?;
            Ok(())
        })
    }

    /// DeleteBucketCors (idempotent, as in S3).
    pub fn delete_bucket_cors(&self, bucket: &str) -> Result<(), StateError> {
        self.change(|tx| {
            tx.touch(Touched::Bucket(bucket.to_owned()));
            tx.execute("DELETE FROM bucket_cors WHERE bucket = ?1", params![bucket])?;
            Ok(())
        })
    }

    /// Forgets everything attached to a deleted bucket.
    pub fn forget_bucket(&self, bucket: &str) -> Result<(), StateError> {
        // Not refused by a seal: the store has removed the bucket already, and its policy left
        // behind would bind a bucket created later under the name (review 25).
        self.change_even_sealed(|tx| {
            tx.touch(Touched::Bucket(bucket.to_owned()));
            principals::unbind(tx, &principals::bucket_scope(bucket))?;
            tx.execute(
                "DELETE FROM bucket_policies WHERE bucket = ?1",
                params![bucket],
            )?;
            tx.execute(
                "DELETE FROM public_access_blocks WHERE scope = ?1",
                params![format!("bucket:{bucket}")],
            )?;
            tx.execute("DELETE FROM bucket_cors WHERE bucket = ?1", params![bucket])?;
            tx.execute("DELETE FROM bucket_tags WHERE bucket = ?1", params![bucket])?;
            Ok(())
        })
    }

    /// The stored Block Public Access settings of the account (`None`: bucket-level settings of
    /// that bucket), if any were put.
    pub fn get_public_access_block(&self, bucket: Option<&str>) -> Option<PublicAccessBlock> {
        let snap = self.snapshot();
        match bucket {
            None => snap.account_bpa_configured.then_some(snap.account_bpa),
            Some(b) => snap.bucket_bpa.get(b).copied(),
        }
    }

    /// Put(Account|Bucket)PublicAccessBlock.
    pub fn put_public_access_block(
        &self,
        bucket: Option<&str>,
        pab: PublicAccessBlock,
    ) -> Result<(), StateError> {
        let scope = bucket.map_or_else(|| ACCOUNT_SCOPE.to_owned(), |b| format!("bucket:{b}"));
        let config =
            serde_json::to_string(&pab).map_err(|e| StateError::Validation(e.to_string()))?;
        self.change(|tx| {
            tx.touch(bucket.map_or(Touched::AccountBpa, |b| Touched::Bucket(b.to_owned())));
            tx.execute(
                "INSERT INTO public_access_blocks (scope, config) VALUES (?1, ?2)
                 ON CONFLICT (scope) DO UPDATE SET config = excluded.config",
                params![scope, config],
            )?;
            Ok(())
        })
    }

    /// Delete(Account|Bucket)PublicAccessBlock. For the account this leaves no configuration and
    /// every setting off, as deleting the configuration does in AWS (GetPublicAccessBlock then
    /// answers NoSuchPublicAccessBlockConfiguration).
    pub fn delete_public_access_block(&self, bucket: Option<&str>) -> Result<(), StateError> {
        match bucket {
            None => self.change(|tx| {
                tx.touch(Touched::AccountBpa);
                tx.execute(
                    "INSERT INTO public_access_blocks (scope, config) VALUES (?1, 'null')
                     ON CONFLICT (scope) DO UPDATE SET config = excluded.config",
                    params![ACCOUNT_SCOPE],
                )?;
                Ok(())
            }),
            Some(b) => self.change(|tx| {
                tx.touch(Touched::Bucket(b.to_owned()));
                tx.execute(
                    "DELETE FROM public_access_blocks WHERE scope = ?1",
                    params![format!("bucket:{b}")],
                )?;
                Ok(())
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const READ: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;

    pub(super) fn open() -> (tempfile::TempDir, State) {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(dir.path(), &[1u8; 32], "123456789012").unwrap();
        (dir, s)
    }

    /// A sealed state (a gateway shutting down) refuses the changes requests make with 503
    /// and still answers reads; the shutdown's own bookkeeping (key uses) still writes.
    #[test]
    fn a_sealed_state_refuses_changes_and_still_reads() {
        let (_d, s) = open();
        s.create_user("before", "/").unwrap();
        s.seal();
        let refused = s.create_user("after", "/").unwrap_err();
        assert!(matches!(refused, StateError::Unavailable(_)), "{refused:?}");
        assert_eq!(refused.status(), 503);
        assert!(s.snapshot().users.contains_key("before"));
        assert!(!s.snapshot().users.contains_key("after"));
        s.reload().unwrap();
        assert!(!s.snapshot().users.contains_key("after"));
        let used = key_usage::KeyUse {
            at_ms: 1,
            service: "s3".into(),
            region: "us-east-1".into(),
        };
        s.record_key_uses(&[("AKIAEXAMPLE".into(), used)]).unwrap();
        assert!(s.key_last_used("AKIAEXAMPLE").unwrap().is_some());
    }

    /// UpdateUser moves everything the user has to the new name and rewrites the bucket and
    /// trust policies that name it as a principal, bound to the same unique id
    /// (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_users_rename.html).
    #[test]
    fn a_renamed_user_keeps_what_it_had_and_policies_follow_it() {
        let (_d, s) = open();
        let (u, _) = s.create_user("alice", "/").unwrap();
        let (key, _) = s.create_access_key("alice").unwrap();
        s.put_inline_policy(PrincipalKind::User, "alice", "read", READ)
            .unwrap();
        s.tag(
            PrincipalKind::User,
            "alice",
            &[("team".into(), "ml".into())],
        )
        .unwrap();
        s.create_group("g", "/").unwrap();
        s.add_user_to_group("g", "alice").unwrap();
        let old = "arn:aws:iam::123456789012:user/alice";
        let new = "arn:aws:iam::123456789012:user/ml/bob";
        let grant = |who: &str| {
            format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":["{who}","arn:aws:iam::111122223333:root"]}},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}]}}"#
            )
        };
        s.put_bucket_policy("b", &grant(old)).unwrap();
        let trust = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{old}"}},"Action":"sts:AssumeRole"}}]}}"#
        );
        s.create_role("r", "/", &trust, 3600, "").unwrap();

        let (renamed, arn) = s.update_user("alice", Some("bob"), Some("/ml/")).unwrap();
        assert_eq!((renamed.id.as_str(), arn.as_str()), (u.id.as_str(), new));
        let snap = s.snapshot();
        assert!(!snap.users.contains_key("alice"));
        assert_eq!(snap.users["bob"].record.id, u.id);
        assert_eq!(snap.keys[&key.id].user, "bob");
        assert_eq!(
            snap.users["bob"].tags.as_slice(),
            &[("team".to_owned(), "ml".to_owned())]
        );
        assert_eq!(
            decide(&s, "bob", "s3:GetObject", "arn:aws:s3:::b/k"),
            keyhole_policy::DecisionKind::Allowed
        );
        assert_eq!(s.get_group("g").unwrap().1[0].0.name, "bob");
        let shown = s.get_bucket_policy("b").unwrap().unwrap();
        assert!(shown.contains(new) && !shown.contains(old), "{shown}");
        assert!(shown.contains("arn:aws:iam::111122223333:root"), "{shown}");
        let trust_now = s.get_role("r").unwrap().trust_policy;
        assert!(
            trust_now.contains(new) && !trust_now.contains(old),
            "{trust_now}"
        );
        // The bindings moved: the compiled policies name the new ARN for this id.
        let bound = s
            .with_db(|db| principals::bindings(db, &principals::bucket_scope("b")))
            .unwrap();
        assert_eq!(bound.get(new), Some(&u.id));
        assert!(!bound.contains_key(old));
        // A user created under the old name is someone else: nothing of alice's is its.
        s.create_user("alice", "/").unwrap();
        assert!(s.snapshot().users["alice"].policies.is_empty());
        assert_eq!(s.list_groups_for_user("alice").unwrap().len(), 0);
        // A change of case alone is a rename; a name taken in any case is refused.
        s.update_user("bob", Some("Bob"), None).unwrap();
        let taken = s.update_user("Bob", Some("ALICE"), None).unwrap_err();
        assert!(
            matches!(taken, StateError::EntityAlreadyExists(_)),
            "{taken:?}"
        );
        assert!(matches!(
            s.update_user("nobody", Some("x"), None).unwrap_err(),
            StateError::NoSuchEntity(_)
        ));
    }

    /// IAM refuses a document whose Sids are not alphanumeric or repeat (reference_policies_elements_sid.html);
    /// a bucket policy is S3's and keeps its own rules.
    #[test]
    fn iam_documents_need_unique_alphanumeric_sids() {
        let (_d, s) = open();
        s.create_user("u", "/").unwrap();
        let doc = |a: &str, b: &str| {
            format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"{a}","Effect":"Allow","Action":"s3:GetObject","Resource":"*"}},{{"Sid":"{b}","Effect":"Allow","Action":"s3:PutObject","Resource":"*"}}]}}"#
            )
        };
        for (a, b) in [("A", "A"), ("a b", "B"), ("A", "x-y")] {
            let e = s
                .put_inline_policy(PrincipalKind::User, "u", "p", &doc(a, b))
                .unwrap_err();
            assert!(
                matches!(e, StateError::MalformedPolicy(_)),
                "{a} {b}: {e:?}"
            );
            assert!(s.create_policy("m", "/", "", &doc(a, b)).is_err());
        }
        s.put_inline_policy(PrincipalKind::User, "u", "p", &doc("A", "B1"))
            .unwrap();
        s.put_inline_policy(PrincipalKind::User, "u", "q", &doc("", ""))
            .unwrap();
    }

    /// Attaching a policy that is already attached changes nothing, at the quota too; an
    /// eleventh distinct policy is LimitExceeded.
    #[test]
    fn reattaching_at_the_attachment_quota_is_not_a_new_attachment() {
        let (_d, s) = open();
        s.create_user("u", "/").unwrap();
        let mut arns = Vec::new();
        for i in 0..=MAX_ATTACHED_POLICIES {
            let p = s.create_policy(&format!("p{i}"), "/", "", READ).unwrap();
            arns.push(s.policy_arn(&p));
        }
        for arn in arns.iter().take(MAX_ATTACHED_POLICIES) {
            s.attach_policy(PrincipalKind::User, "u", arn).unwrap();
        }
        s.attach_policy(PrincipalKind::User, "u", &arns[0]).unwrap();
        let e = s
            .attach_policy(PrincipalKind::User, "u", &arns[MAX_ATTACHED_POLICIES])
            .unwrap_err();
        assert!(matches!(e, StateError::LimitExceeded(_)), "{e:?}");
    }

    /// A policy that still names a deleted user under the name a rename would give another
    /// cannot name both: EntityTemporarilyUnmodifiable, and nothing changes.
    #[test]
    fn a_rename_onto_a_deleted_users_name_in_a_policy_is_refused() {
        let (_d, s) = open();
        s.create_user("gone", "/").unwrap();
        s.create_user("keep", "/").unwrap();
        let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::123456789012:user/gone","arn:aws:iam::123456789012:user/keep"]},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;
        s.put_bucket_policy("b", doc).unwrap();
        s.delete_user("gone").unwrap();
        let e = s.update_user("keep", Some("gone"), None).unwrap_err();
        assert!(
            matches!(e, StateError::EntityTemporarilyUnmodifiable(_)),
            "{e:?}"
        );
        assert_eq!(e.status(), 409);
        assert!(e.to_string().contains("bucket policy of b"), "{e}");
        assert!(s.snapshot().users.contains_key("keep"));
        assert!(s
            .with_db(|db| principals::bindings(db, &principals::bucket_scope("b")))
            .unwrap()
            .contains_key("arn:aws:iam::123456789012:user/keep"));
        // A path change alone keeps the name, so it is no conflict.
        s.update_user("keep", None, Some("/x/")).unwrap();
        assert!(s
            .get_bucket_policy("b")
            .unwrap()
            .unwrap()
            .contains("arn:aws:iam::123456789012:user/x/keep"));
    }

    /// A bucket the store removed just before the seal still loses its policy: left behind,
    /// it would bind a bucket created later under the name (review 25).
    #[test]
    fn a_deleted_buckets_policy_goes_even_when_sealed() {
        let (_d, s) = open();
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::gone/*"}]}"#;
        s.put_bucket_policy("gone", policy).unwrap();
        assert!(s.get_bucket_policy("gone").unwrap().is_some());
        s.seal();
        s.forget_bucket("gone").unwrap();
        assert!(s.get_bucket_policy("gone").unwrap().is_none());
    }

    /// What the policy engine decides for `user` (its snapshot policies, no bucket policy).
    pub(super) fn decide(
        s: &State,
        user: &str,
        action: &str,
        resource: &str,
    ) -> keyhole_policy::DecisionKind {
        let snap = s.snapshot();
        let u = &snap.users[user];
        let request = keyhole_policy::Request::new(
            keyhole_policy::RequestPrincipal::User {
                arn: u.arn.clone(),
                account: "123456789012".into(),
            },
            action,
            resource,
            None,
            keyhole_policy::Context::new(),
        );
        let set = keyhole_policy::Policies {
            identity: &u.policies,
            resource: None,
            boundaries: &[],
            session: None,
            restrict_public_buckets: false,
            resource_gate: keyhole_policy::ResourceGate::Union,
        };
        keyhole_policy::Evaluator::is_allowed(&set, &request)
    }

    #[test]
    fn a_state_file_from_before_policy_versions_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        {
            // The managed_policies table as earlier keyhole versions created it.
            let conn = rusqlite::Connection::open(dir.path().join(STATE_DB_FILE)).unwrap();
            conn.execute_batch(
                "CREATE TABLE managed_policies (
                    name TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE, path TEXT NOT NULL,
                    description TEXT NOT NULL, document TEXT NOT NULL, created TEXT NOT NULL);",
            )
            .unwrap();
            conn.execute(
                "INSERT INTO managed_policies VALUES ('Old', 'ANPAOLD', '/', '', ?1, '2024-01-02T03:04:05Z')",
                rusqlite::params![READ])
            .unwrap();
        }
        for _ in 0..2 {
            let s = State::open(dir.path(), &[1u8; 32], "123456789012").unwrap();
            let arn = "arn:aws:iam::123456789012:policy/Old";
            let p = s.get_policy(arn).unwrap();
            assert_eq!(
                (p.default_version.as_str(), p.document.as_str()),
                ("v1", READ)
            );
            let versions = s.list_policy_versions(arn).unwrap();
            assert_eq!(versions.len(), 1, "upgrading twice adds nothing");
            assert_eq!(versions[0].id, "v1");
            assert!(versions[0].is_default);
            assert_eq!(versions[0].created, "2024-01-02T03:04:05Z");
        }
        let s = State::open(dir.path(), &[1u8; 32], "123456789012").unwrap();
        let arn = "arn:aws:iam::123456789012:policy/Old";
        assert_eq!(s.create_policy_version(arn, READ, false).unwrap().id, "v2");
    }

    #[test]
    fn users_keys_and_policies_reach_the_snapshot() {
        let (_d, s) = open();
        let (u, arn) = s.create_user("alice", "/").unwrap();
        assert_eq!(arn, "arn:aws:iam::123456789012:user/alice");
        assert!(u.id.starts_with("AIDA"));
        assert_eq!(
            s.create_user("ALICE", "/").unwrap_err().code(),
            "EntityAlreadyExists"
        );
        let (k, secret) = s.create_access_key("alice").unwrap();
        let snap = s.snapshot();
        let entry = snap.keys.get(&k.id).unwrap();
        assert!(entry.active);
        assert_eq!(entry.secret.expose(), secret.expose());
        s.put_inline_policy(PrincipalKind::User, "alice", "read", READ)
            .unwrap();
        assert_eq!(s.snapshot().users["alice"].policies.len(), 1);
        s.update_access_key("alice", &k.id, "Inactive").unwrap();
        assert!(!s.snapshot().keys[&k.id].active);
    }

    #[test]
    fn secrets_are_sealed_at_rest_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (id, secret) = {
            let s = State::open(dir.path(), &[1u8; 32], "123456789012").unwrap();
            s.create_user("bob", "/").unwrap();
            let (k, secret) = s.create_access_key("bob").unwrap();
            (k.id, secret.expose().to_owned())
        };
        let raw = std::fs::read(dir.path().join(STATE_DB_FILE)).unwrap();
        assert!(
            !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "secret in clear"
        );
        let s = State::open(dir.path(), &[1u8; 32], "123456789012").unwrap();
        assert_eq!(s.snapshot().keys[&id].secret.expose(), secret);
        assert!(
            State::open(dir.path(), &[2u8; 32], "123456789012").is_err(),
            "wrong master key"
        );
    }

    #[test]
    fn aws_limits_and_conflicts() {
        let (_d, s) = open();
        s.create_user("carol", "/").unwrap();
        s.create_access_key("carol").unwrap();
        s.create_access_key("carol").unwrap();
        assert_eq!(
            s.create_access_key("carol").unwrap_err().code(),
            "LimitExceeded"
        );
        assert_eq!(s.delete_user("carol").unwrap_err().code(), "DeleteConflict");
        assert_eq!(
            s.put_inline_policy(PrincipalKind::User, "carol", "p", "{")
                .unwrap_err()
                .code(),
            "MalformedPolicyDocument"
        );
        let big = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::{}"}}]}}"#,
            "x".repeat(2100)
        );
        assert_eq!(
            s.put_inline_policy(PrincipalKind::User, "carol", "p", &big)
                .unwrap_err()
                .code(),
            "LimitExceeded"
        );
        assert_eq!(
            s.create_user("bad name", "/").unwrap_err().code(),
            "ValidationError"
        );
        assert_eq!(s.get_user("nobody").unwrap_err().code(), "NoSuchEntity");
    }

    /// API_Tag.html's pattern `[\p{L}\p{Z}\p{N}_.:/=+\-@]`: any Unicode separator is allowed,
    /// other white space and control characters are not (review 29, F3).
    #[test]
    fn tag_characters_follow_iam_s_pattern() {
        for ok in ["a\u{a0}b", "x\u{3000}y", "Équipe 1", "k_.:/=+-@"] {
            assert!(validate_tag(ok, ok).is_ok(), "{ok:?}");
        }
        for bad in ["a\tb", "a\nb", "a*b", "a\u{200b}b", "a\u{0}b"] {
            assert!(validate_tag(bad, "v").is_err(), "{bad:?}");
            assert!(validate_tag("k", bad).is_err(), "{bad:?}");
        }
    }

    /// https://docs.aws.amazon.com/IAM/latest/UserGuide/id_tags.html, "Case sensitivity": a
    /// user's or role's tag keys are compared without case, the latest spelling kept.
    #[test]
    fn principal_tag_keys_are_case_insensitive_as_in_iam() {
        let (_d, s) = open();
        s.create_user("fay", "/").unwrap();
        let tag = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        s.tag(PrincipalKind::User, "fay", &[tag("Department", "finance")])
            .unwrap();
        s.tag(PrincipalKind::User, "fay", &[tag("department", "hr")])
            .unwrap();
        assert_eq!(
            s.list_tags(PrincipalKind::User, "fay").unwrap(),
            vec![tag("department", "hr")]
        );
        let snap = s.snapshot();
        assert_eq!(snap.users["fay"].tags.len(), 1);
        // One request naming both spellings is refused, and changes nothing.
        let err = s
            .tag(
                PrincipalKind::User,
                "fay",
                &[tag("Team", "a"), tag("TEAM", "b")],
            )
            .unwrap_err();
        assert_eq!(err.code(), "InvalidInput");
        assert_eq!(s.list_tags(PrincipalKind::User, "fay").unwrap().len(), 1);
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/fay"},"Action":"sts:AssumeRole"}]}"#;
        let tags = [tag("k", "1"), tag("K", "2")];
        let err = s
            .create_role_with("r", "/", trust, 3600, "", None, &tags)
            .unwrap_err();
        assert_eq!(err.code(), "InvalidInput");
        assert_eq!(s.get_role("r").unwrap_err().code(), "NoSuchEntity");
        // Untagging names the tag in any case.
        s.untag(PrincipalKind::User, "fay", &["DEPARTMENT".into()])
            .unwrap();
        assert!(s.list_tags(PrincipalKind::User, "fay").unwrap().is_empty());
        // Case is folded as conditions fold it, ASCII only: the Kelvin sign (U+212A) is not `k`,
        // so `ris\u{212a}` neither replaces nor removes `risk` (review 29, F1).
        s.tag(PrincipalKind::User, "fay", &[tag("risk", "high")])
            .unwrap();
        s.tag(PrincipalKind::User, "fay", &[tag("ris\u{212a}", "low")])
            .unwrap();
        s.untag(PrincipalKind::User, "fay", &["ris\u{212a}".into()])
            .unwrap();
        assert_eq!(
            s.list_tags(PrincipalKind::User, "fay").unwrap(),
            vec![tag("risk", "high")]
        );
    }

    #[test]
    fn a_recreated_principal_does_not_inherit_tags_or_boundary() {
        let (_d, s) = open();
        s.create_user("erin", "/").unwrap();
        s.tag(PrincipalKind::User, "erin", &[("team".into(), "ml".into())])
            .unwrap();
        let p = s.create_policy("B", "/", "", READ).unwrap();
        s.set_boundary(PrincipalKind::User, "erin", Some(&s.policy_arn(&p)))
            .unwrap();
        s.delete_user("erin").unwrap();
        s.create_user("erin", "/").unwrap();
        let snap = s.snapshot();
        assert!(snap.users["erin"].tags.is_empty());
        assert!(snap.users["erin"].boundary.is_none());
        assert_eq!(s.get_policy(&s.policy_arn(&p)).unwrap().attachments, 0);
    }

    #[test]
    fn entities_for_policy_lists_attachments_and_boundaries_once_each() {
        let (_d, s) = open();
        s.create_user("zed", "/").unwrap();
        s.create_user("amy", "/x/").unwrap();
        s.create_group("ops", "/").unwrap();
        let p = s.create_policy("P", "/", "", READ).unwrap();
        let arn = s.policy_arn(&p);
        s.attach_policy(PrincipalKind::User, "zed", &arn).unwrap();
        s.set_boundary(PrincipalKind::User, "zed", Some(&arn))
            .unwrap();
        s.set_boundary(PrincipalKind::User, "amy", Some(&arn))
            .unwrap();
        s.attach_policy(PrincipalKind::Group, "ops", &arn).unwrap();
        let got: Vec<(PrincipalKind, String, bool, bool)> = s
            .entities_for_policy(&arn)
            .unwrap()
            .into_iter()
            .map(|e| (e.kind, e.name, e.attached, e.boundary))
            .collect();
        assert_eq!(
            got,
            vec![
                (PrincipalKind::Group, "ops".into(), true, false),
                (PrincipalKind::User, "amy".into(), false, true),
                (PrincipalKind::User, "zed".into(), true, true),
            ]
        );
        assert_eq!(
            s.entities_for_policy(&format!("{arn}x"))
                .unwrap_err()
                .code(),
            "NoSuchEntity"
        );
    }

    #[test]
    fn managed_policies_attach_detach_delete() {
        let (_d, s) = open();
        s.create_user("dave", "/").unwrap();
        let p = s.create_policy("ReadB", "/", "", READ).unwrap();
        let arn = s.policy_arn(&p);
        s.attach_policy(PrincipalKind::User, "dave", &arn).unwrap();
        assert_eq!(s.snapshot().users["dave"].policies.len(), 1);
        assert_eq!(s.get_policy(&arn).unwrap().attachments, 1);
        assert_eq!(s.delete_policy(&arn).unwrap_err().code(), "DeleteConflict");
        assert_eq!(
            s.list_attached_policies(PrincipalKind::User, "dave")
                .unwrap(),
            vec![("ReadB".into(), arn.clone())]
        );
        s.detach_policy(PrincipalKind::User, "dave", &arn).unwrap();
        assert!(s.snapshot().users["dave"].policies.is_empty());
        s.delete_policy(&arn).unwrap();
        assert_eq!(s.get_policy(&arn).unwrap_err().code(), "NoSuchEntity");
        // The ARN names the policy with its path: a wrong or missing path finds nothing.
        let p = s.create_policy("Pathed", "/team/", "", READ).unwrap();
        let arn = s.policy_arn(&p);
        assert!(arn.ends_with(":policy/team/Pathed"), "{arn}");
        assert!(s.get_policy(&arn).is_ok());
        for wrong in ["policy/Pathed", "policy/other/Pathed"] {
            let wrong = format!("arn:aws:iam::123456789012:{wrong}");
            assert_eq!(s.get_policy(&wrong).unwrap_err().code(), "NoSuchEntity");
            assert_eq!(
                s.attach_policy(PrincipalKind::User, "dave", &wrong)
                    .unwrap_err()
                    .code(),
                "NoSuchEntity"
            );
        }
    }

    #[test]
    fn bucket_policies_and_block_public_access() {
        let (_d, s) = open();
        let public = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;
        assert_eq!(
            s.snapshot().account_bpa,
            PublicAccessBlock::ON,
            "on by default"
        );
        assert!(
            !s.put_bucket_policy("b", public).unwrap(),
            "BlockPublicPolicy refuses it"
        );
        assert_eq!(s.get_bucket_policy("b").unwrap(), None);
        s.put_public_access_block(None, PublicAccessBlock::OFF)
            .unwrap();
        s.put_public_access_block(
            Some("b"),
            PublicAccessBlock {
                block_public_policy: true,
                ..PublicAccessBlock::OFF
            },
        )
        .unwrap();
        assert!(
            s.snapshot().effective_bpa("b").block_public_policy,
            "bucket setting adds to the account's"
        );
        assert!(!s.snapshot().effective_bpa("other").block_public_policy);
        s.delete_public_access_block(Some("b")).unwrap();
        assert!(s.put_bucket_policy("b", public).unwrap());
        assert!(s.snapshot().bucket_policies["b"].is_public());
        assert_eq!(
            s.put_bucket_policy("b", "{").unwrap_err().code(),
            "MalformedPolicyDocument"
        );
        s.forget_bucket("b").unwrap();
        assert!(s.snapshot().bucket_policies.is_empty());
        // Deleting the account's configuration leaves none (GetPublicAccessBlock answers
        // NoSuchPublicAccessBlockConfiguration) and every setting off, across a restart too.
        s.put_public_access_block(None, PublicAccessBlock::ON)
            .unwrap();
        s.delete_public_access_block(None).unwrap();
        assert_eq!(s.get_public_access_block(None), None);
        assert_eq!(s.snapshot().effective_bpa("b"), PublicAccessBlock::OFF);
        s.reload().unwrap();
        assert_eq!(s.get_public_access_block(None), None);
        s.put_public_access_block(None, PublicAccessBlock::ON)
            .unwrap();
        assert_eq!(s.get_public_access_block(None), Some(PublicAccessBlock::ON));
    }

    #[test]
    fn roles_with_trust_and_policies() {
        let (_d, s) = open();
        s.create_user("job-runner", "/").unwrap();
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/job-runner"},"Action":"sts:AssumeRole"}]}"#;
        let r = s.create_role("training-job", "/", trust, 3600, "").unwrap();
        assert!(r.id.starts_with("AROA"));
        assert_eq!(
            s.role_arn(&r),
            "arn:aws:iam::123456789012:role/training-job"
        );
        assert_eq!(
            s.create_role("training-job", "/", trust, 3600, "")
                .unwrap_err()
                .code(),
            "EntityAlreadyExists"
        );
        assert_eq!(
            s.create_role("r2", "/", trust, 60, "").unwrap_err().code(),
            "ValidationError"
        );
        assert_eq!(
            s.create_role("r3", "/", "{}", 3600, "").unwrap_err().code(),
            "MalformedPolicyDocument"
        );
        s.put_inline_policy(PrincipalKind::Role, "training-job", "read", READ)
            .unwrap();
        assert_eq!(s.snapshot().roles["training-job"].policies.len(), 1);
        assert_eq!(
            s.delete_role("training-job").unwrap_err().code(),
            "DeleteConflict"
        );
        s.delete_inline_policy(PrincipalKind::Role, "training-job", "read")
            .unwrap();
        s.delete_role("training-job").unwrap();
        assert!(s.snapshot().roles.is_empty());
    }
}
