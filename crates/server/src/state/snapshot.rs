//! The in-memory snapshot every request reads, and how it is built: whole at start (a handful
//! of bulk queries), then one change at a time ([`apply`]): only what a change touched is read
//! again and compiled again, into a copy of the previous snapshot that then replaces it
//! atomically. The maps hold `Arc`s, so the copy costs a pointer per entry, not a compile.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use keyhole_policy::{CompiledPolicy, PolicyKind};
use keyhole_sigv4::SecretKey;

use super::db::{Conn, Touched};
use super::seal::Sealer;
use super::{
    compile_bucket_policy_bound, compile_identity_policy, compile_trust_policy_bound, principals,
    PrincipalKind, PublicAccessBlock, RoleRecord, StateError, UserRecord, ACCOUNT_SCOPE,
};
use crate::jobs::store::{JobEntry, JobMeta};

/// What the request path knows about an access key.
#[derive(Debug, Clone)]
pub struct KeyEntry {
    /// The owning user's name.
    pub user: String,
    /// The secret, for signature verification.
    pub secret: SecretKey,
    /// Inactive keys authenticate nothing.
    pub active: bool,
}

/// What the request path knows about a user.
#[derive(Debug, Clone)]
pub struct UserEntry {
    /// The stored record.
    pub record: UserRecord,
    /// `arn:aws:iam::ACCOUNT:user/PATHNAME`.
    pub arn: String,
    /// Its identity policies, compiled: its own inline and attached managed policies and those
    /// of every group it belongs to.
    pub policies: Arc<Vec<CompiledPolicy>>,
    /// The permissions boundary, if one is set.
    pub boundary: Option<Arc<CompiledPolicy>>,
    /// The permissions boundary's ARN (`iam:PermissionsBoundary` of requests about it).
    pub boundary_arn: Option<String>,
    /// Tags (`aws:PrincipalTag/KEY` for its sessions), sorted by key.
    pub tags: Arc<Vec<(String, String)>>,
}

/// What the request path knows about a role.
#[derive(Debug, Clone)]
pub struct RoleEntry {
    /// The stored record.
    pub record: RoleRecord,
    /// `arn:aws:iam::ACCOUNT:role/PATHNAME`.
    pub arn: String,
    /// The trust policy, compiled as a resource-based policy.
    pub trust: Arc<CompiledPolicy>,
    /// Inline and attached managed policies, compiled.
    pub policies: Arc<Vec<CompiledPolicy>>,
    /// The permissions boundary, if one is set.
    pub boundary: Option<Arc<CompiledPolicy>>,
    /// The permissions boundary's ARN (`iam:PermissionsBoundary` of requests about it).
    pub boundary_arn: Option<String>,
    /// Tags (`aws:PrincipalTag/KEY`), sorted by key.
    pub tags: Arc<Vec<(String, String)>>,
}

/// The in-memory view read by every request.
///
/// Each map sits behind its own `Arc`: a change copies only the maps it touches
/// (`Arc::make_mut`), so cloning the snapshot costs a pointer per map, not per entry. At 10,000
/// users and 10,000 roles, copying every map on every change made each change cost every node
/// milliseconds of allocation even for a revocation (docs/BENCHMARKS.md, "Three nodes").
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Access key id → key.
    pub keys: Arc<HashMap<String, Arc<KeyEntry>>>,
    /// User name → user.
    pub users: Arc<HashMap<String, Arc<UserEntry>>>,
    /// Role name → role.
    pub roles: Arc<HashMap<String, Arc<RoleEntry>>>,
    /// Bucket name → its bucket policy, compiled.
    pub bucket_policies: Arc<HashMap<String, Arc<CompiledPolicy>>>,
    /// Bucket name → its CORS configuration.
    pub bucket_cors: Arc<HashMap<String, Arc<crate::s3::cors::CorsConfiguration>>>,
    /// The account's Block Public Access settings.
    pub account_bpa: PublicAccessBlock,
    /// Whether the account has a Block Public Access configuration (keyhole's default, all on,
    /// counts as one; after DeletePublicAccessBlock there is none and every setting is off).
    pub account_bpa_configured: bool,
    /// Bucket name → its own Block Public Access settings.
    pub bucket_bpa: Arc<HashMap<String, PublicAccessBlock>>,
    /// Managed policy ARN → its default version compiled as a session policy, for sessions
    /// created with `PolicyArns` (looked up at each request, so a new default version applies
    /// at once, as for attached policies).
    pub session_policies: Arc<HashMap<String, CompiledPolicy>>,
    /// Unfinished jobs whose window had not ended when they were loaded.
    pub jobs: Arc<HashMap<String, Arc<JobEntry>>>,
    /// Every job, finished or not: what a request needs of a job that is no longer active
    /// (whose token it was, who created it).
    pub job_index: Arc<HashMap<String, Arc<JobMeta>>>,
    /// Revoked sessions' access key ids → when they would have expired (Unix seconds).
    pub revoked: Arc<HashMap<String, i64>>,
    /// Group name → its ARN.
    pub group_arns: Arc<HashMap<String, String>>,
    /// Group name → its compiled policies (shared by every member's entry).
    groups: Arc<HashMap<String, Arc<Vec<CompiledPolicy>>>>,
    /// Managed policy name → its ARN (to find its session-policy form when it goes).
    managed_arns: Arc<HashMap<String, String>>,
    /// Issuer URL → its IAM OIDC provider (`AssumeRoleWithWebIdentity`).
    pub oidc_providers: Arc<HashMap<String, Arc<super::oidc::ProviderEntry>>>,
}

impl Snapshot {
    /// The Block Public Access settings in force for a bucket: a setting is on when the account
    /// or the bucket turns it on (https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html).
    pub fn effective_bpa(&self, bucket: &str) -> PublicAccessBlock {
        let b = self
            .bucket_bpa
            .get(bucket)
            .copied()
            .unwrap_or(PublicAccessBlock::OFF);
        let a = self.account_bpa;
        PublicAccessBlock {
            block_public_acls: a.block_public_acls || b.block_public_acls,
            ignore_public_acls: a.ignore_public_acls || b.ignore_public_acls,
            block_public_policy: a.block_public_policy || b.block_public_policy,
            restrict_public_buckets: a.restrict_public_buckets || b.restrict_public_buckets,
        }
    }

    /// The user whose unique id is `id`, looked for first under `name` (the name it had when a
    /// session or a job recorded it), then among all users: a user renamed since (UpdateUser)
    /// is still the same user.
    pub fn user_by_id(&self, name: &str, id: &str) -> Option<&Arc<UserEntry>> {
        match self.users.get(name) {
            Some(u) if u.record.id == id => Some(u),
            _ => self.users.values().find(|u| u.record.id == id),
        }
    }
}

/// What building the snapshot needs besides the database.
pub struct Context<'a> {
    /// The account id (for ARNs and principal bindings).
    pub account: &'a str,
    /// Opens sealed access key secrets.
    pub sealer: &'a Sealer,
    /// Now (Unix seconds): which jobs are active, which revocations still matter.
    pub now: i64,
}

/// `WHERE`/`AND` clause selecting one owner, or nothing (every owner).
fn only(column: &str, one: Option<&str>, first: bool) -> String {
    match one {
        None => String::new(),
        Some(_) => format!(" {} {column} = ?1", if first { "WHERE" } else { "AND" }),
    }
}

fn bind<'a>(one: &'a Option<&'a str>) -> Vec<&'a dyn super::db::Param> {
    match one {
        Some(v) => vec![v as &dyn super::db::Param],
        None => Vec::new(),
    }
}

/// Compiles documents as identity policies, each managed one once per load.
struct Compiler {
    managed: HashMap<(String, String), CompiledPolicy>,
}

impl Compiler {
    fn new() -> Compiler {
        Compiler {
            managed: HashMap::new(),
        }
    }

    fn inline(&self, doc: &str, pname: &str, of: &str) -> Result<CompiledPolicy, StateError> {
        compile_identity_policy(doc, &format!("inline policy `{pname}`{of}"))
    }

    fn managed(&mut self, doc: &str, pname: &str, of: &str) -> Result<CompiledPolicy, StateError> {
        let key = (pname.to_owned(), of.to_owned());
        if let Some(p) = self.managed.get(&key) {
            return Ok(p.clone());
        }
        let p = compile_identity_policy(doc, &format!("managed policy `{pname}`{of}"))?;
        self.managed.insert(key, p.clone());
        Ok(p)
    }
}

/// The inline and attached managed policies of every owner of `kind` (or of one), compiled,
/// sorted as before: inline by name, then managed by name.
fn policies_of(
    db: &dyn Conn,
    kind: PrincipalKind,
    one: Option<&str>,
    compiler: &mut Compiler,
) -> Result<HashMap<String, Vec<CompiledPolicy>>, StateError> {
    let k = kind.word();
    let mut out: HashMap<String, Vec<CompiledPolicy>> = HashMap::new();
    let p = bind(&one);
    let inline = db.query_map(
        &format!(
            "SELECT {k}_name, policy_name, document FROM {k}_policies{} ORDER BY {k}_name, policy_name",
            only(&format!("{k}_name"), one, true)
        ),
        &p,
        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?, r.get::<String>(2)?)),
    )?;
    // A group's policies say whose they are: they reach every member's decisions.
    let of = |owner: &str| match kind {
        PrincipalKind::Group => format!(" of group `{owner}`"),
        PrincipalKind::User | PrincipalKind::Role => String::new(),
    };
    for (owner, pname, doc) in inline {
        let c = compiler.inline(&doc, &pname, &of(&owner))?;
        out.entry(owner).or_default().push(c);
    }
    let attached = db.query_map(
        &format!(
            "SELECT a.{k}_name, m.name, m.document FROM {k}_attachments a JOIN managed_policies m ON m.name = a.policy_name{} ORDER BY a.{k}_name, m.name",
            only(&format!("a.{k}_name"), one, true)
        ),
        &p,
        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?, r.get::<String>(2)?)),
    )?;
    for (owner, pname, doc) in attached {
        let c = compiler.managed(&doc, &pname, &of(&owner))?;
        out.entry(owner).or_default().push(c);
    }
    Ok(out)
}

/// Permissions boundaries of users or roles (or of one): their policy's ARN, and the policy
/// compiled.
type Boundaries = HashMap<String, (String, Arc<CompiledPolicy>)>;

/// Permissions boundaries of users or roles (or of one).
fn boundaries_of(
    db: &dyn Conn,
    account: &str,
    kind: PrincipalKind,
    one: Option<&str>,
) -> Result<Boundaries, StateError> {
    let word = kind.word();
    let map = |r: &super::db::Row| {
        Ok((
            r.get::<String>(0)?,
            r.get::<String>(1)?,
            r.get::<String>(2)?,
            r.get::<String>(3)?,
        ))
    };
    let sql = "SELECT b.name, m.name, m.document, m.path FROM permissions_boundaries b JOIN managed_policies m ON m.name = b.policy_name WHERE b.kind = ?1";
    let rows = match &one {
        Some(name) => db.query_map(
            &format!("{sql} AND b.name = ?2"),
            crate::params![word, name],
            map,
        )?,
        None => db.query_map(sql, crate::params![word], map)?,
    };
    let mut out = HashMap::new();
    for (owner, pname, doc, path) in rows {
        let c = CompiledPolicy::from_json(&doc, PolicyKind::PermissionsBoundary)
            .map(|p| {
                p.with_name(format!("permissions boundary `{pname}`"))
                    .with_digest(super::documents::digest(&doc))
            })
            .map_err(|e| StateError::MalformedPolicy(e.to_string()))?;
        let arn = format!("arn:aws:iam::{account}:policy{path}{pname}");
        out.insert(owner, (arn, Arc::new(c)));
    }
    Ok(out)
}

/// The identity policies and the permissions boundary of one user (with its groups' policies)
/// or role as they are in the database now, compiled as the snapshot compiles them; for
/// `keyhole audit explain`, which reads the state without the master key.
pub fn principal_policies_now(
    db: &dyn Conn,
    account: &str,
    kind: PrincipalKind,
    name: &str,
) -> Result<(Vec<CompiledPolicy>, Option<CompiledPolicy>), StateError> {
    let mut compiler = Compiler::new();
    let mut policies = policies_of(db, kind, Some(name), &mut compiler)?
        .remove(name)
        .unwrap_or_default();
    if kind == PrincipalKind::User {
        let groups = db.query_map(
            "SELECT group_name FROM group_members WHERE user_name = ?1 ORDER BY group_name",
            crate::params![name],
            |r| r.get::<String>(0),
        )?;
        for g in groups {
            policies.extend(
                policies_of(db, PrincipalKind::Group, Some(&g), &mut compiler)?
                    .remove(&g)
                    .unwrap_or_default(),
            );
        }
    }
    let boundary = boundaries_of(db, account, kind, Some(name))?
        .remove(name)
        .map(|(_, b)| (*b).clone());
    Ok((policies, boundary))
}

/// A bucket's policy (`Some(false)` scope) or a role's trust policy as stored now, compiled with
/// its principal bindings; `None` when there is none.
pub fn resource_policy_now(
    db: &dyn Conn,
    account: &str,
    bucket: Option<&str>,
    role: Option<&str>,
) -> Result<Option<CompiledPolicy>, StateError> {
    let (doc, scope) = match (bucket, role) {
        (Some(b), _) => (
            db.query_opt(
                "SELECT document FROM bucket_policies WHERE bucket = ?1",
                crate::params![b],
                |r| r.get::<String>(0),
            )?,
            principals::bucket_scope(b),
        ),
        (None, Some(r)) => (
            db.query_opt(
                "SELECT trust_policy FROM roles WHERE name = ?1",
                crate::params![r],
                |r| r.get::<String>(0),
            )?,
            principals::trust_scope(r),
        ),
        (None, None) => return Ok(None),
    };
    let Some(doc) = doc else { return Ok(None) };
    let bound = principals::bindings(db, &scope)?;
    let bind = |arn: &str| principals::binding_of(account, Some(&bound), arn);
    if bucket.is_some() {
        compile_bucket_policy_bound(&doc, &bind).map(Some)
    } else {
        compile_trust_policy_bound(&doc, &bind).map(Some)
    }
}

/// Managed policy name → its current default document (a managed session policy now).
pub fn managed_document_now(db: &dyn Conn, name: &str) -> Result<Option<String>, StateError> {
    db.query_opt(
        "SELECT document FROM managed_policies WHERE name = ?1",
        crate::params![name],
        |r| r.get::<String>(0),
    )
}

/// Tags of users or roles (or of one), sorted by key.
fn tags_of(
    db: &dyn Conn,
    kind: PrincipalKind,
    one: Option<&str>,
) -> Result<HashMap<String, Vec<(String, String)>>, StateError> {
    let word = kind.word();
    let rows = match &one {
        Some(name) => db.query_map(
            "SELECT name, tag_key, tag_value FROM principal_tags WHERE kind = ?1 AND name = ?2 ORDER BY name, tag_key",
            crate::params![word, name],
            |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?, r.get::<String>(2)?)),
        )?,
        None => db.query_map(
            "SELECT name, tag_key, tag_value FROM principal_tags WHERE kind = ?1 ORDER BY name, tag_key",
            crate::params![word],
            |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?, r.get::<String>(2)?)),
        )?,
    };
    let mut out: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for (owner, k, v) in rows {
        out.entry(owner).or_default().push((k, v));
    }
    Ok(out)
}

fn user_records(db: &dyn Conn, one: Option<&str>) -> Result<Vec<UserRecord>, StateError> {
    db.query_map(
        &format!(
            "SELECT name, id, path, created FROM users{}",
            only("name", one, true)
        ),
        &bind(&one),
        |r| {
            Ok(UserRecord {
                name: r.get(0)?,
                id: r.get(1)?,
                path: r.get(2)?,
                created: r.get(3)?,
            })
        },
    )
}

fn role_records(db: &dyn Conn, one: Option<&str>) -> Result<Vec<RoleRecord>, StateError> {
    db.query_map(
        &format!(
            "SELECT name, id, path, trust_policy, max_session_secs, description, created FROM roles{}",
            only("name", one, true)
        ),
        &bind(&one),
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
        },
    )
}

/// Loads users (all, or one) into `snap`, with their keys; a user that no longer exists is
/// removed with its keys.
fn load_users(
    db: &dyn Conn,
    cx: &Context<'_>,
    snap: &mut Snapshot,
    one: Option<&str>,
    compiler: &mut Compiler,
) -> Result<(), StateError> {
    let records = user_records(db, one)?;
    let mut own = policies_of(db, PrincipalKind::User, one, compiler)?;
    let mut boundaries = boundaries_of(db, cx.account, PrincipalKind::User, one)?;
    let mut tags = tags_of(db, PrincipalKind::User, one)?;
    let members = db.query_map(
        &format!(
            "SELECT user_name, group_name FROM group_members{} ORDER BY user_name, group_name",
            only("user_name", one, true)
        ),
        &bind(&one),
        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
    )?;
    let mut memberships: HashMap<String, Vec<String>> = HashMap::new();
    for (user, group) in members {
        memberships.entry(user).or_default().push(group);
    }
    if let Some(name) = one {
        Arc::make_mut(&mut snap.users).remove(name);
        // Scanned before it is copied: most changes to a user leave its keys alone.
        if snap.keys.values().any(|k| k.user == name) {
            Arc::make_mut(&mut snap.keys).retain(|_, k| k.user != name);
        }
    }
    for u in records {
        // A user's identity-based policies include those of its groups
        // (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html).
        let mut policies = own.remove(&u.name).unwrap_or_default();
        for g in memberships.get(&u.name).into_iter().flatten() {
            policies.extend(
                snap.groups
                    .get(g)
                    .into_iter()
                    .flat_map(|p| p.iter())
                    .cloned(),
            );
        }
        let arn = format!("arn:aws:iam::{}:user{}{}", cx.account, u.path, u.name);
        let (boundary_arn, boundary) = boundaries.remove(&u.name).unzip();
        let entry = UserEntry {
            boundary,
            boundary_arn,
            tags: Arc::new(tags.remove(&u.name).unwrap_or_default()),
            policies: Arc::new(policies),
            arn,
            record: u,
        };
        Arc::make_mut(&mut snap.users).insert(entry.record.name.clone(), Arc::new(entry));
    }
    let keys = db.query_map(
        &format!(
            "SELECT id, user_name, secret_sealed, status FROM access_keys{}",
            only("user_name", one, true)
        ),
        &bind(&one),
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<String>(1)?,
                r.get::<String>(2)?,
                r.get::<String>(3)?,
            ))
        },
    )?;
    for (id, user, sealed, status) in keys {
        let secret = SecretKey::new(cx.sealer.open(&sealed, &id)?);
        let entry = KeyEntry {
            user,
            secret,
            active: status == "Active",
        };
        Arc::make_mut(&mut snap.keys).insert(id, Arc::new(entry));
    }
    Ok(())
}

fn load_roles(
    db: &dyn Conn,
    cx: &Context<'_>,
    snap: &mut Snapshot,
    one: Option<&str>,
    compiler: &mut Compiler,
) -> Result<(), StateError> {
    let records = role_records(db, one)?;
    let mut policies = policies_of(db, PrincipalKind::Role, one, compiler)?;
    let mut boundaries = boundaries_of(db, cx.account, PrincipalKind::Role, one)?;
    let mut tags = tags_of(db, PrincipalKind::Role, one)?;
    let bindings = match one {
        Some(name) => {
            let scope = principals::trust_scope(name);
            HashMap::from([(scope.clone(), principals::bindings(db, &scope)?)])
        }
        None => principals::all_bindings(db)?,
    };
    if let Some(name) = one {
        Arc::make_mut(&mut snap.roles).remove(name);
    }
    for role in records {
        let bound = bindings.get(&principals::trust_scope(&role.name));
        let trust = Arc::new(compile_trust_policy_bound(&role.trust_policy, &|arn| {
            principals::binding_of(cx.account, bound, arn)
        })?);
        let (boundary_arn, boundary) = boundaries.remove(&role.name).unzip();
        let entry = RoleEntry {
            arn: format!("arn:aws:iam::{}:role{}{}", cx.account, role.path, role.name),
            trust,
            policies: Arc::new(policies.remove(&role.name).unwrap_or_default()),
            boundary,
            boundary_arn,
            tags: Arc::new(tags.remove(&role.name).unwrap_or_default()),
            record: role,
        };
        Arc::make_mut(&mut snap.roles).insert(entry.record.name.clone(), Arc::new(entry));
    }
    Ok(())
}

fn load_groups(
    db: &dyn Conn,
    cx: &Context<'_>,
    snap: &mut Snapshot,
    one: Option<&str>,
    compiler: &mut Compiler,
) -> Result<(), StateError> {
    let names = db.query_map(
        &format!(
            "SELECT name, path FROM iam_groups{}",
            only("name", one, true)
        ),
        &bind(&one),
        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
    )?;
    let mut policies = policies_of(db, PrincipalKind::Group, one, compiler)?;
    if let Some(name) = one {
        Arc::make_mut(&mut snap.groups).remove(name);
        Arc::make_mut(&mut snap.group_arns).remove(name);
    }
    for (g, path) in names {
        let p = policies.remove(&g).unwrap_or_default();
        let arn = format!("arn:aws:iam::{}:group{path}{g}", cx.account);
        Arc::make_mut(&mut snap.group_arns).insert(g.clone(), arn);
        Arc::make_mut(&mut snap.groups).insert(g, Arc::new(p));
    }
    Ok(())
}

fn load_managed(
    db: &dyn Conn,
    cx: &Context<'_>,
    snap: &mut Snapshot,
    one: Option<&str>,
) -> Result<(), StateError> {
    let rows = db.query_map(
        &format!(
            "SELECT name, path, document FROM managed_policies{}",
            only("name", one, true)
        ),
        &bind(&one),
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<String>(1)?,
                r.get::<String>(2)?,
            ))
        },
    )?;
    if let Some(name) = one {
        if let Some(arn) = Arc::make_mut(&mut snap.managed_arns).remove(name) {
            Arc::make_mut(&mut snap.session_policies).remove(&arn);
        }
    }
    for (name, path, doc) in rows {
        let arn = format!("arn:aws:iam::{}:policy{path}{name}", cx.account);
        let compiled = CompiledPolicy::from_json(&doc, PolicyKind::Session)
            .map(|p| {
                p.with_name(format!("managed session policy `{name}`"))
                    .with_digest(super::documents::digest(&doc))
            })
            .map_err(|e| StateError::MalformedPolicy(e.to_string()))?;
        Arc::make_mut(&mut snap.session_policies).insert(arn.clone(), compiled);
        Arc::make_mut(&mut snap.managed_arns).insert(name, arn);
    }
    Ok(())
}

fn load_buckets(
    db: &dyn Conn,
    cx: &Context<'_>,
    snap: &mut Snapshot,
    one: Option<&str>,
) -> Result<(), StateError> {
    let policies = db.query_map(
        &format!(
            "SELECT bucket, document FROM bucket_policies{}",
            only("bucket", one, true)
        ),
        &bind(&one),
        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
    )?;
    let bindings = match one {
        Some(b) => {
            let scope = principals::bucket_scope(b);
            HashMap::from([(scope.clone(), principals::bindings(db, &scope)?)])
        }
        None => principals::all_bindings(db)?,
    };
    if let Some(b) = one {
        Arc::make_mut(&mut snap.bucket_policies).remove(b);
        Arc::make_mut(&mut snap.bucket_bpa).remove(b);
        Arc::make_mut(&mut snap.bucket_cors).remove(b);
    }
    let cors = db.query_map(
        &format!(
            "SELECT bucket, document FROM bucket_cors{}",
            only("bucket", one, true)
        ),
        &bind(&one),
        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
    )?;
    for (bucket, doc) in cors {
        let config = crate::s3::cors::CorsConfiguration::parse(doc.as_bytes()).map_err(|e| {
            StateError::Validation(format!(
                "stored CORS configuration of bucket {bucket}: {}",
                e.message()
            ))
        })?;
        Arc::make_mut(&mut snap.bucket_cors).insert(bucket, Arc::new(config));
    }
    for (bucket, doc) in policies {
        let bound = bindings.get(&principals::bucket_scope(&bucket));
        let compiled = compile_bucket_policy_bound(&doc, &|arn| {
            principals::binding_of(cx.account, bound, arn)
        })?;
        Arc::make_mut(&mut snap.bucket_policies).insert(bucket, Arc::new(compiled));
    }
    let scope = one.map(|b| format!("bucket:{b}"));
    let blocks = match &scope {
        Some(s) => db.query_map(
            "SELECT scope, config FROM public_access_blocks WHERE scope = ?1",
            crate::params![s],
            |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
        )?,
        None => db.query_map(
            "SELECT scope, config FROM public_access_blocks WHERE scope <> ?1",
            crate::params![ACCOUNT_SCOPE],
            |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
        )?,
    };
    for (scope, config) in blocks {
        if let (Some(bucket), Some(pab)) = (scope.strip_prefix("bucket:"), parse_bpa(&config)?) {
            Arc::make_mut(&mut snap.bucket_bpa).insert(bucket.to_owned(), pab);
        }
    }
    Ok(())
}

fn parse_bpa(config: &str) -> Result<Option<PublicAccessBlock>, StateError> {
    // `null`: the account's configuration was deleted (every setting off).
    serde_json::from_str(config)
        .map_err(|e| StateError::Validation(format!("stored public access block: {e}")))
}

fn load_account_bpa(db: &dyn Conn, snap: &mut Snapshot) -> Result<(), StateError> {
    let config = db.query_opt(
        "SELECT config FROM public_access_blocks WHERE scope = ?1",
        crate::params![ACCOUNT_SCOPE],
        |r| r.get::<String>(0),
    )?;
    match config {
        None => {
            snap.account_bpa = PublicAccessBlock::ON;
            snap.account_bpa_configured = true;
        }
        Some(c) => {
            let pab = parse_bpa(&c)?;
            snap.account_bpa = pab.unwrap_or(PublicAccessBlock::OFF);
            snap.account_bpa_configured = pab.is_some();
        }
    }
    Ok(())
}

fn load_jobs(
    db: &dyn Conn,
    cx: &Context<'_>,
    snap: &mut Snapshot,
    one: Option<&str>,
) -> Result<(), StateError> {
    let records = crate::jobs::store::load(db, one)?;
    if let Some(id) = one {
        Arc::make_mut(&mut snap.jobs).remove(id);
        Arc::make_mut(&mut snap.job_index).remove(id);
    }
    for record in records {
        let meta = JobMeta::of(&record);
        Arc::make_mut(&mut snap.job_index).insert(record.id.clone(), Arc::new(meta));
        if record.finished_at.is_none() && record.job.end.timestamp() > cx.now {
            let entry = crate::jobs::store::compile(&record)?;
            Arc::make_mut(&mut snap.jobs).insert(record.id.clone(), Arc::new(entry));
        }
    }
    Ok(())
}

fn load_revocations(
    db: &dyn Conn,
    cx: &Context<'_>,
    snap: &mut Snapshot,
    one: Option<&str>,
) -> Result<(), StateError> {
    let rows = match &one {
        Some(ak) => db.query_map(
            "SELECT access_key_id, expires_at FROM revoked_sessions WHERE access_key_id = ?1",
            crate::params![ak],
            |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?)),
        )?,
        None => db.query_map(
            "SELECT access_key_id, expires_at FROM revoked_sessions WHERE expires_at > ?1",
            crate::params![cx.now],
            |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?)),
        )?,
    };
    if let Some(ak) = one {
        Arc::make_mut(&mut snap.revoked).remove(ak);
    }
    for (ak, expires) in rows {
        Arc::make_mut(&mut snap.revoked).insert(ak, expires);
    }
    Ok(())
}

/// Builds the whole snapshot (at start, and when a node cannot tell what it missed).
pub fn load(db: &dyn Conn, cx: &Context<'_>) -> Result<Snapshot, StateError> {
    let mut snap = Snapshot::default();
    let mut compiler = Compiler::new();
    load_managed(db, cx, &mut snap, None)?;
    load_groups(db, cx, &mut snap, None, &mut compiler)?;
    load_users(db, cx, &mut snap, None, &mut compiler)?;
    load_roles(db, cx, &mut snap, None, &mut compiler)?;
    load_buckets(db, cx, &mut snap, None)?;
    load_account_bpa(db, &mut snap)?;
    load_jobs(db, cx, &mut snap, None)?;
    load_revocations(db, cx, &mut snap, None)?;
    super::oidc::load(db, Arc::make_mut(&mut snap.oidc_providers), None)?;
    Ok(snap)
}

/// Everything a set of changes reaches: a managed policy reaches those it is attached to or
/// bounds (and a group's members), a group its members.
fn expand(db: &dyn Conn, touched: &[Touched]) -> Result<BTreeSet<Touched>, StateError> {
    let mut out: BTreeSet<Touched> = touched.iter().cloned().collect();
    let groups_of_policy = |p: &str| {
        db.query_map(
            "SELECT group_name FROM group_attachments WHERE policy_name = ?1",
            crate::params![p],
            |r| r.get::<String>(0),
        )
    };
    for t in touched {
        if let Touched::Policy(p) = t {
            for (table, col, kind) in [
                ("user_attachments", "user_name", "user"),
                ("role_attachments", "role_name", "role"),
            ] {
                for owner in db.query_map(
                    &format!("SELECT {col} FROM {table} WHERE policy_name = ?1"),
                    crate::params![p],
                    |r| r.get::<String>(0),
                )? {
                    out.insert(if kind == "user" {
                        Touched::User(owner)
                    } else {
                        Touched::Role(owner)
                    });
                }
            }
            for (kind, owner) in db.query_map(
                "SELECT kind, name FROM permissions_boundaries WHERE policy_name = ?1",
                crate::params![p],
                |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
            )? {
                out.insert(if kind == "user" {
                    Touched::User(owner)
                } else {
                    Touched::Role(owner)
                });
            }
            for g in groups_of_policy(p)? {
                out.insert(Touched::Group(g));
            }
        }
    }
    let groups: Vec<String> = out
        .iter()
        .filter_map(|t| match t {
            Touched::Group(g) => Some(g.clone()),
            _ => None,
        })
        .collect();
    for g in groups {
        for u in db.query_map(
            "SELECT user_name FROM group_members WHERE group_name = ?1",
            crate::params![g],
            |r| r.get::<String>(0),
        )? {
            out.insert(Touched::User(u));
        }
    }
    Ok(out)
}

/// The snapshot after `touched` changed: `prev` with only those parts read and compiled again.
pub fn apply(
    db: &dyn Conn,
    cx: &Context<'_>,
    prev: &Snapshot,
    touched: &[Touched],
) -> Result<Snapshot, StateError> {
    let all = expand(db, touched)?;
    let mut snap = prev.clone();
    let mut compiler = Compiler::new();
    // Order matters: groups and managed policies before the users and roles built from them.
    for t in &all {
        match t {
            Touched::Policy(p) => load_managed(db, cx, &mut snap, Some(p))?,
            Touched::Group(g) => load_groups(db, cx, &mut snap, Some(g), &mut compiler)?,
            _ => {}
        }
    }
    for t in &all {
        match t {
            Touched::User(u) => load_users(db, cx, &mut snap, Some(u), &mut compiler)?,
            Touched::Role(r) => load_roles(db, cx, &mut snap, Some(r), &mut compiler)?,
            Touched::Bucket(b) => load_buckets(db, cx, &mut snap, Some(b))?,
            Touched::AccountBpa => load_account_bpa(db, &mut snap)?,
            Touched::Job(j) => load_jobs(db, cx, &mut snap, Some(j))?,
            Touched::Revocation(ak) => load_revocations(db, cx, &mut snap, Some(ak))?,
            Touched::OidcProvider(url) => {
                super::oidc::load(db, Arc::make_mut(&mut snap.oidc_providers), Some(url))?;
            }
            Touched::Policy(_) | Touched::Group(_) => {}
        }
    }
    Ok(snap)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::jobs::store::{JobRecord, JobStore};
    use crate::state::tests::READ;
    use crate::state::State;

    /// Everything a snapshot holds, in a stable order (maps sorted by key).
    fn fingerprint(s: &Snapshot) -> Vec<String> {
        fn sorted<V: std::fmt::Debug>(what: &str, m: &HashMap<String, V>) -> Vec<String> {
            let mut v: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{what} {k}: {v:?}"))
                .collect();
            v.sort();
            v
        }
        let mut out = Vec::new();
        out.extend(sorted("key", &s.keys));
        // Secrets are redacted in `Debug`: compare them too.
        let mut secrets: Vec<String> = s
            .keys
            .iter()
            .map(|(k, v)| format!("secret {k}: {}", v.secret.expose()))
            .collect();
        secrets.sort();
        out.extend(secrets);
        out.extend(sorted("user", &s.users));
        out.extend(sorted("role", &s.roles));
        out.extend(sorted("bucket policy", &s.bucket_policies));
        out.extend(sorted("bucket bpa", &s.bucket_bpa));
        out.extend(sorted("bucket cors", &s.bucket_cors));
        out.extend(sorted("session policy", &s.session_policies));
        out.extend(sorted("job", &s.jobs));
        out.extend(sorted("job meta", &s.job_index));
        out.extend(sorted("revoked", &s.revoked));
        out.extend(sorted("group arn", &s.group_arns));
        out.extend(sorted("group", &s.groups));
        out.extend(sorted("managed arn", &s.managed_arns));
        out.extend(sorted("oidc provider", &s.oidc_providers));
        out.push(format!(
            "account bpa {:?} {}",
            s.account_bpa, s.account_bpa_configured
        ));
        out
    }

    /// The snapshot as changes left it equals the one read whole from the database.
    fn same_as_reloaded(s: &State, step: &str) {
        let incremental = fingerprint(&s.snapshot());
        let whole = s.with_db(|db| load(db, &s.context())).unwrap();
        let whole = fingerprint(&whole);
        if incremental != whole {
            let only_inc: Vec<_> = incremental.iter().filter(|l| !whole.contains(l)).collect();
            let only_whole: Vec<_> = whole.iter().filter(|l| !incremental.contains(l)).collect();
            panic!("after {step}: the incremental snapshot differs\nonly incremental: {only_inc:#?}\nonly whole: {only_whole:#?}");
        }
    }

    fn job(id: &str, now: chrono::DateTime<chrono::Utc>) -> JobRecord {
        let job = crate::jobs::spec::JobSpec {
            name: id.into(),
            read: vec!["s3://data/ds/".into()],
            duration: Some("1h".into()),
            source_ip: vec!["127.0.0.1".into()],
            ..crate::jobs::spec::JobSpec::default()
        }
        .resolve(now, None)
        .unwrap();
        JobRecord {
            id: id.into(),
            policy: job.policy().to_string(),
            job,
            created_by: "arn:aws:iam::123456789012:user/u".into(),
            grant: None,
            created_at: now.timestamp(),
            finished_at: None,
            finished_by: None,
            token_hash: "00".into(),
        }
    }

    /// One step of changes; its argument carries the access key id between steps.
    type Step<'a> = Box<dyn Fn(&mut String) + 'a>;

    #[test]
    fn every_change_leaves_the_snapshot_a_whole_reload_would_build() {
        let dir = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(State::open(dir.path(), &[1u8; 32], "123456789012").unwrap());
        replay_every_change(&s, &|name| same_as_reloaded(&s, name));
    }

    /// A change copies only the maps it writes: the others are the previous snapshot's, shared
    /// (docs/BENCHMARKS.md, "Three nodes": copying every map on every change made a revocation
    /// take tens of milliseconds to apply at 10,000 users and roles).
    #[test]
    fn a_change_copies_only_the_maps_it_writes() {
        let dir = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(State::open(dir.path(), &[1u8; 32], "123456789012").unwrap());
        s.create_user("u", "/").unwrap();
        s.create_role("r", "/", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#, 3600, "")
            .unwrap();
        let before = s.snapshot();
        JobStore::new(s.clone())
            .revoke_session("ASIAX", i64::MAX, 0)
            .unwrap();
        let after = s.snapshot();
        assert!(after.revoked.contains_key("ASIAX"));
        assert!(!Arc::ptr_eq(&before.revoked, &after.revoked));
        for (name, same) in [
            ("users", Arc::ptr_eq(&before.users, &after.users)),
            ("roles", Arc::ptr_eq(&before.roles, &after.roles)),
            ("keys", Arc::ptr_eq(&before.keys, &after.keys)),
            ("jobs", Arc::ptr_eq(&before.jobs, &after.jobs)),
            (
                "job index",
                Arc::ptr_eq(&before.job_index, &after.job_index),
            ),
        ] {
            assert!(same, "a revocation copied the {name} map");
        }
        // A user's change copies the users map, not the roles beside it (nor the keys: it has
        // none).
        s.create_user("v", "/").unwrap();
        let later = s.snapshot();
        assert!(later.users.contains_key("v") && !Arc::ptr_eq(&after.users, &later.users));
        assert!(Arc::ptr_eq(&after.roles, &later.roles));
        assert!(Arc::ptr_eq(&after.keys, &later.keys));
    }

    /// The fingerprint of a snapshot (for comparing two nodes' snapshots).
    pub(crate) fn snapshot_lines(s: &Snapshot) -> Vec<String> {
        fingerprint(s)
    }

    /// Asserts that `s`'s snapshot is the one a whole reload builds.
    pub(crate) fn assert_same_as_reloaded(s: &State, step: &str) {
        same_as_reloaded(s, step);
    }

    /// Makes every kind of change on `s` (account 123456789012), calling `after` with each
    /// step's name once it is made.
    pub(crate) fn replay_every_change(s: &std::sync::Arc<State>, after: &dyn Fn(&str)) {
        let acct = "arn:aws:iam::123456789012";
        let (user, group, role) = (
            PrincipalKind::User,
            PrincipalKind::Group,
            PrincipalKind::Role,
        );
        let list = READ.replace("s3:GetObject", "s3:ListBucket");
        let trust = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{acct}:user/a"}},"Action":"sts:AssumeRole"}}]}}"#
        );
        let bucket_policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{acct}:user/x/b"}},"Action":"s3:GetObject","Resource":"arn:aws:s3:::data/*"}}]}}"#
        );
        let p = format!("{acct}:policy/P");
        let bound = format!("{acct}:policy/B");
        let jobs = JobStore::new(s.clone());
        let now = chrono::Utc::now();
        let mut key = String::new();
        let steps: Vec<(&str, Step<'_>)> = vec![
            (
                "create users",
                Box::new(|_| {
                    s.create_user("a", "/").unwrap();
                    s.create_user("b", "/x/").unwrap();
                }),
            ),
            (
                "create a key",
                Box::new(|k| k.clone_from(&s.create_access_key("a").unwrap().0.id)),
            ),
            (
                "deactivate the key",
                Box::new(|k| s.update_access_key("a", k, "Inactive").unwrap()),
            ),
            (
                "inline user policy",
                Box::new(|_| s.put_inline_policy(user, "a", "i", READ).unwrap()),
            ),
            (
                "managed policies",
                Box::new(|_| {
                    s.create_policy("P", "/", "", READ).unwrap();
                    s.create_policy("B", "/", "", READ).unwrap();
                }),
            ),
            (
                "attach to a user",
                Box::new(|_| s.attach_policy(user, "a", &p).unwrap()),
            ),
            (
                "group with policies",
                Box::new(|_| {
                    s.create_group("g", "/").unwrap();
                    s.put_inline_policy(group, "g", "gi", READ).unwrap();
                    s.attach_policy(group, "g", &p).unwrap();
                }),
            ),
            (
                "join the group",
                Box::new(|_| s.add_user_to_group("g", "b").unwrap()),
            ),
            (
                "role",
                Box::new(|_| {
                    s.create_role("r", "/", &trust, 3600, "").unwrap();
                    s.attach_policy(role, "r", &p).unwrap();
                }),
            ),
            (
                "boundary",
                Box::new(|_| {
                    s.set_boundary(user, "a", Some(&bound)).unwrap();
                    s.set_boundary(role, "r", Some(&bound)).unwrap();
                }),
            ),
            (
                "tags",
                Box::new(|_| {
                    s.tag(user, "a", &[("t".into(), "1".into())]).unwrap();
                    s.tag(role, "r", &[("t".into(), "2".into())]).unwrap();
                }),
            ),
            (
                "new default version of an attached policy",
                Box::new(|_| {
                    s.create_policy_version(&p, &list, true).unwrap();
                }),
            ),
            (
                "new default version of a boundary",
                Box::new(|_| {
                    s.create_policy_version(&bound, &list, true).unwrap();
                }),
            ),
            (
                "older default version again",
                Box::new(|_| s.set_default_policy_version(&p, "v1").unwrap()),
            ),
            (
                "delete a version",
                Box::new(|_| s.delete_policy_version(&p, "v2").unwrap()),
            ),
            (
                "trust policy",
                Box::new(|_| {
                    s.update_trust_policy("r", &trust.replace("user/a", "user/x/b"))
                        .unwrap();
                }),
            ),
            (
                "bucket policy and settings",
                Box::new(|_| {
                    s.put_bucket_policy("data", &bucket_policy).unwrap();
                    s.put_public_access_block(Some("data"), PublicAccessBlock::ON)
                        .unwrap();
                    s.put_public_access_block(None, PublicAccessBlock::OFF)
                        .unwrap();
                }),
            ),
            (
                "bucket CORS configurations",
                Box::new(|_| {
                    let cors = "<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>";
                    s.put_bucket_cors("data", cors).unwrap();
                    s.put_bucket_cors("other", cors).unwrap();
                    s.put_bucket_cors("data", &cors.replace("GET", "PUT"))
                        .unwrap();
                    s.delete_bucket_cors("other").unwrap();
                }),
            ),
            (
                "jobs and revocations",
                Box::new(|_| {
                    jobs.create(&job("j-1", now), now.timestamp()).unwrap();
                    jobs.create(&job("j-2", now), now.timestamp()).unwrap();
                    jobs.finish("j-1", "arn:x", now.timestamp()).unwrap();
                    jobs.revoke_session("ASIAX", now.timestamp() + 60, now.timestamp())
                        .unwrap();
                }),
            ),
            (
                "leave the group",
                Box::new(|_| s.remove_user_from_group("g", "b").unwrap()),
            ),
            (
                "detach and remove policies",
                Box::new(|_| {
                    s.detach_policy(user, "a", &p).unwrap();
                    s.detach_policy(group, "g", &p).unwrap();
                    s.delete_inline_policy(group, "g", "gi").unwrap();
                    s.set_boundary(user, "a", None).unwrap();
                    s.untag(user, "a", &["t".into()]).unwrap();
                }),
            ),
            (
                "delete the key",
                Box::new(|k| s.delete_access_key("a", k).unwrap()),
            ),
            (
                "delete principals",
                Box::new(|_| {
                    s.delete_inline_policy(user, "a", "i").unwrap();
                    s.delete_user("a").unwrap();
                    s.delete_group("g").unwrap();
                    s.detach_policy(role, "r", &p).unwrap();
                    s.set_boundary(role, "r", None).unwrap();
                    s.delete_role("r").unwrap();
                }),
            ),
            (
                "delete policies",
                Box::new(|_| {
                    s.delete_policy(&p).unwrap();
                    s.delete_policy_version(&bound, "v1").unwrap();
                    s.delete_policy(&bound).unwrap();
                }),
            ),
            (
                "forget the bucket",
                Box::new(|_| {
                    s.delete_public_access_block(None).unwrap();
                    s.forget_bucket("data").unwrap();
                }),
            ),
            (
                "create, change and delete OIDC providers",
                Box::new(|_| {
                    let a = s
                        .create_oidc_provider("https://idp.example", &["c".into()], &[], &[])
                        .unwrap();
                    s.create_oidc_provider("https://other.example/x", &[], &[], &[])
                        .unwrap();
                    s.update_oidc_provider(&a, |e| {
                        e.provider.client_ids.push("d".into());
                        Ok(())
                    })
                    .unwrap();
                    s.delete_oidc_provider(&format!("{acct}:oidc-provider/other.example/x"))
                        .unwrap();
                }),
            ),
        ];
        for (name, step) in &steps {
            step(&mut key);
            after(name);
        }
    }
}
