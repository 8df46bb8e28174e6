//! Least privilege from observed access, for any user or role (`keyhole access report` and
//! `keyhole access unused`, the keyhole API's GetAccessReport and ListUnusedAccess).
//!
//! A report puts side by side what a principal did in a window, read from the audit trail
//! ([`usage`]: actions, buckets and prefixes, counts, last use, denied attempts), and what its
//! policies grant ([`grants`]), and derives what was granted and never used (actions, resource
//! patterns, access keys, roles it may assume) and the minimal policy that would have sufficed,
//! built by the generator job reports use ([`minimal`]).
//!
//! The gateway answers from what it holds: its state (policies, keys and their last use, which
//! every node shares) and the trail under its own data directory. With one node (SQLite) that is
//! every request; with several nodes sharing PostgreSQL each node keeps its own trail, so the
//! report says which node's trail it read and that it is not complete (`source`).

pub mod grants;
pub mod minimal;
pub mod usage;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use http::StatusCode;
use keyhole_policy::{
    CompiledPolicy, Context, DecisionKind, Policies, Request, RequestPrincipal, ResourceGate,
};
use serde_json::{json, Value};

use crate::error::S3Error;
use crate::jobs::spec::rfc3339;
use crate::state::key_usage::KeyUse;
use crate::state::PrincipalKind;
use crate::Gateway;
use grants::Granted;
use minimal::Scope;
use usage::{concrete_s3, Kind, Tally, Usage};

/// The window `keyhole access report` looks at unless told otherwise.
pub const DEFAULT_REPORT_DAYS: i64 = 30;
/// The window `keyhole access unused` looks at unless told otherwise.
pub const DEFAULT_UNUSED_DAYS: i64 = 90;
/// Most unused actions listed per principal in `unused` (all are counted).
pub const MAX_UNUSED_LISTED: usize = 50;

/// The principal a report is about.
#[derive(Debug, Clone)]
pub struct Subject {
    /// User or role.
    pub kind: Kind,
    /// Its name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// Its unique id (`AIDA...`, `AROA...`).
    pub id: String,
    /// When it was created (RFC 3339).
    pub created: String,
}

/// An access key of a user, with its last use as IAM records it.
#[derive(Debug, Clone)]
pub struct KeyFact {
    /// `AKIA...`.
    pub id: String,
    /// `Active` or `Inactive`.
    pub status: String,
    /// Creation time.
    pub created: String,
    /// The last request signed with it (GetAccessKeyLastUsed).
    pub last_used: Option<KeyUse>,
}

/// The narrowest identity policy covering what `usage` records: per bucket, the generator's
/// statements for the prefix every key and listing shared; every other action on exactly the
/// resources it was used on (on `*` when it was used on more than
/// [`usage::MAX_TRACKED_RESOURCES`]), actions used on the same resources sharing a statement.
pub fn minimal_policy(usage: &Usage) -> Value {
    let names: Vec<&String> = usage.buckets.keys().collect();
    let prefixes: Vec<String> = usage
        .buckets
        .values()
        .map(|b| b.prefix.clone().unwrap_or_default())
        .collect();
    let scopes: Vec<Scope<'_>> = names
        .iter()
        .zip(&prefixes)
        .map(|(bucket, prefix)| Scope { bucket, prefix })
        .collect();
    let uses: Vec<minimal::LocationUse> = usage.buckets.values().map(|b| b.used.clone()).collect();
    let mut statements = minimal::s3_statements("Bucket", &scopes, &uses, &json!({}));
    let mut by_resources: BTreeMap<BTreeSet<&str>, BTreeSet<&str>> = BTreeMap::new();
    for (action, resources) in &usage.resources {
        let mut others: BTreeSet<&str> = resources
            .iter()
            .filter(|r| concrete_s3(r).is_none())
            .map(String::as_str)
            .collect();
        // More resources than were kept: only `*` is sure to cover them all.
        if !others.is_empty() && usage.overflowed.contains(action) {
            others = BTreeSet::from(["*"]);
        }
        if !others.is_empty() {
            by_resources.entry(others).or_default().insert(action);
        }
    }
    for (i, (resources, actions)) in by_resources.iter().enumerate() {
        statements.push(json!({
            "Sid": format!("Api{i}"),
            "Effect": "Allow",
            "Action": actions,
            "Resource": resources,
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// The actions granted and never used.
pub fn unused_actions(usage: &Usage, granted: &Granted) -> Vec<String> {
    granted
        .actions
        .iter()
        .filter(|a| !usage.actions.contains_key(*a))
        .cloned()
        .collect()
}

/// The granted resource patterns on which none of their actions was used.
pub fn unused_resources(usage: &Usage, granted: &Granted) -> Vec<Value> {
    granted
        .resources
        .iter()
        .filter(|g| {
            // Policy variables (`${aws:username}` home folders) stand for whatever value the
            // request had: each is taken as `*`, so a pattern is called unused only when no
            // value of its variables could have matched what was used (review 14). A pattern
            // that does not compile is never called unused.
            use keyhole_policy::pattern::{ArnPattern, NoVariables};
            let Ok(pattern) = ArnPattern::new(&g.resource, true, true) else {
                return false;
            };
            let pattern = pattern.widened(&|_| true);
            !g.actions.iter().any(|a| {
                usage.overflowed.contains(a)
                    || usage
                        .resources
                        .get(a)
                        .is_some_and(|rs| rs.iter().any(|r| pattern.matches_with(r, &NoVariables)))
            })
        })
        .map(|g| json!({"policy": g.policy, "resource": g.resource, "actions": g.actions}))
        .collect()
}

/// When the key was last used.
fn last_used_at(k: &KeyFact) -> Option<DateTime<Utc>> {
    k.last_used
        .as_ref()
        .and_then(|u| DateTime::<Utc>::from_timestamp_millis(u.at_ms))
}

/// Whether the key signed a request in the window: the trail saw it, or IAM's last use is in it.
fn key_used_in_window(k: &KeyFact, usage: &Usage, since: DateTime<Utc>) -> bool {
    usage.keys.get(&k.id).is_some_and(|c| c.count > 0)
        || last_used_at(k).is_some_and(|t| t >= since)
}

/// An access key as reports show it; `since` decides whether it was used in the window.
fn key_json(k: &KeyFact, usage: &Usage, since: DateTime<Utc>) -> Value {
    let last = last_used_at(k);
    let in_trail = usage.keys.get(&k.id).map_or(0, |c| c.count);
    json!({
        "accessKeyId": k.id,
        "status": k.status,
        "created": k.created,
        "lastUsed": last.map(rfc3339),
        "lastUsedService": k.last_used.as_ref().map(|u| u.service.clone()),
        "requestsInWindow": in_trail,
        "usedInWindow": key_used_in_window(k, usage, since),
    })
}

/// The report of one principal.
pub fn report(
    subject: &Subject,
    usage: &Usage,
    granted: &Granted,
    keys: &[KeyFact],
    assumable: &[String],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Value {
    let mut r = json!({
        "principal": {
            "arn": subject.arn,
            "type": match subject.kind { Kind::User => "user", Kind::Role => "role" },
            "id": subject.id,
            "created": subject.created,
        },
        "window": {"since": rfc3339(since), "until": rfc3339(until)},
        "requests": usage.requests,
        "firstSeen": usage.first,
        "lastSeen": usage.last,
        "actionsUsed": usage.actions_json(),
        "buckets": usage.buckets_json(),
        "denied": {"count": usage.denied, "attempts": usage.denials},
        "grantedActions": granted.actions.len(),
        "unusedActions": unused_actions(usage, granted),
        "unusedResources": unused_resources(usage, granted),
        "minimalPolicy": minimal_policy(usage),
    });
    let Some(o) = r.as_object_mut() else {
        return r;
    };
    match subject.kind {
        Kind::User => {
            o.insert(
                "accessKeys".into(),
                keys.iter().map(|k| key_json(k, usage, since)).collect(),
            );
            o.insert(
                "rolesAssumed".into(),
                usage
                    .assumed_roles
                    .iter()
                    .map(|(arn, c)| json!({"role": arn, "count": c.count, "lastUsed": c.last}))
                    .collect(),
            );
            o.insert(
                "rolesNeverAssumed".into(),
                assumable
                    .iter()
                    .filter(|arn| !usage.assumed_roles.contains_key(*arn))
                    .cloned()
                    .collect(),
            );
        }
        Kind::Role => {
            o.insert(
                "assumed".into(),
                json!({"count": usage.assumed.count, "lastAssumed": (!usage.assumed.last.is_empty()).then_some(&usage.assumed.last)}),
            );
            o.insert("sessions".into(), json!(usage.sessions));
        }
    }
    r
}

/// One principal's line of `access unused`.
pub fn unused_entry(
    subject: &Subject,
    usage: &Usage,
    granted: &Granted,
    keys: &[KeyFact],
    since: DateTime<Utc>,
) -> Value {
    let actions = unused_actions(usage, granted);
    // A key's last use is every node's (the database's): a user whose key was used in the
    // window is not unused, even when the request is in another node's trail.
    let used = match subject.kind {
        Kind::User => {
            usage.requests > 0 || keys.iter().any(|k| key_used_in_window(k, usage, since))
        }
        Kind::Role => usage.requests > 0 || usage.assumed.count > 0,
    };
    let mut v = json!({
        "arn": subject.arn,
        "id": subject.id,
        "created": subject.created,
        "unused": !used,
        "requests": usage.requests,
        "lastSeen": usage.last,
        "grantedActions": granted.actions.len(),
        "unusedActionCount": actions.len(),
        "unusedActions": actions.iter().take(MAX_UNUSED_LISTED).collect::<Vec<_>>(),
    });
    if let Some(o) = v.as_object_mut() {
        match subject.kind {
            Kind::User => {
                o.insert(
                    "accessKeys".into(),
                    keys.iter().map(|k| key_json(k, usage, since)).collect(),
                );
            }
            Kind::Role => {
                o.insert("assumed".into(), json!(usage.assumed.count));
            }
        }
    }
    v
}

/// One principal of the account, with what it did and what it holds.
#[derive(Debug)]
pub struct Entry {
    /// The user or role.
    pub subject: Subject,
    /// Its events in the window.
    pub usage: Usage,
    /// What its policies grant.
    pub granted: Granted,
    /// Its access keys (users).
    pub keys: Vec<KeyFact>,
}

/// `access unused`'s users, roles and unused keys, from every principal of the account.
pub fn account_unused(
    entries: &[Entry],
    since: DateTime<Utc>,
) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let mut users = Vec::new();
    let mut roles = Vec::new();
    let mut unused_keys = Vec::new();
    for e in entries {
        let line = unused_entry(&e.subject, &e.usage, &e.granted, &e.keys, since);
        match e.subject.kind {
            Kind::User => {
                for k in e
                    .keys
                    .iter()
                    .filter(|k| !key_used_in_window(k, &e.usage, since))
                {
                    unused_keys.push(json!({
                        "user": e.subject.arn,
                        "accessKeyId": k.id,
                        "status": k.status,
                        "lastUsed": last_used_at(k).map(rfc3339),
                    }));
                }
                users.push(line);
            }
            Kind::Role => roles.push(line),
        }
    }
    (users, roles, unused_keys)
}

// ---- What the gateway knows: state, snapshot, trail. ----

fn not_found(message: String) -> S3Error {
    S3Error::new("ResourceNotFoundException", StatusCode::NOT_FOUND, message)
}

/// The user or role `arn` names, as it exists now.
fn subject_of(gw: &Gateway, arn: &str) -> Result<Subject, S3Error> {
    let snapshot = gw.state.snapshot();
    let name = arn.rsplit('/').next().unwrap_or_default();
    if arn.contains(":user/") {
        if let Some(u) = snapshot.users.get(name).filter(|u| u.arn == arn) {
            return Ok(Subject {
                kind: Kind::User,
                name: name.to_owned(),
                arn: u.arn.clone(),
                id: u.record.id.clone(),
                created: u.record.created.clone(),
            });
        }
    } else if let Some(r) = snapshot.roles.get(name).filter(|r| r.arn == arn) {
        return Ok(Subject {
            kind: Kind::Role,
            name: name.to_owned(),
            arn: r.arn.clone(),
            id: r.record.id.clone(),
            created: r.record.created.clone(),
        });
    }
    Err(not_found(format!(
        "There is no user or role {arn} (aws iam list-users / list-roles show them; a deleted principal's events stay in the trail: keyhole audit query --principal ARN)"
    )))
}

/// Every user and role that exists now.
fn subjects(gw: &Gateway) -> Vec<Subject> {
    let snapshot = gw.state.snapshot();
    let mut out: Vec<Subject> = snapshot
        .users
        .iter()
        .map(|(name, u)| Subject {
            kind: Kind::User,
            name: name.clone(),
            arn: u.arn.clone(),
            id: u.record.id.clone(),
            created: u.record.created.clone(),
        })
        .chain(snapshot.roles.iter().map(|(name, r)| Subject {
            kind: Kind::Role,
            name: name.clone(),
            arn: r.arn.clone(),
            id: r.record.id.clone(),
            created: r.record.created.clone(),
        }))
        .collect();
    out.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    out
}

/// Whether the identity side of `subject` (its policies and boundary, explicit denies included)
/// allows `action` on `resource` for some request: unknown condition keys are assumed met in
/// Allow statements and unmet in Deny statements. Decided by [`crate::authz::evaluate`], the
/// gateway's one call of the engine.
fn identity_allows(
    subject: &Subject,
    account: &str,
    identity: &[CompiledPolicy],
    boundary: Option<&CompiledPolicy>,
    trust: Option<&CompiledPolicy>,
    action: &str,
    resource: &str,
) -> bool {
    let principal = match subject.kind {
        Kind::User => RequestPrincipal::from_arn(&subject.arn, None),
        Kind::Role => RequestPrincipal::from_arn(
            &format!(
                "arn:aws:sts::{account}:assumed-role/{}/access-report",
                subject.name
            ),
            Some(&subject.arn),
        ),
    };
    let mut context = Context::new();
    context.assume_unknown("");
    let request =
        Request::new(principal, action, resource, None, context).with_unique_id(&subject.id);
    let policies = Policies {
        identity,
        resource: trust,
        boundaries: boundary.map_or(&[][..], std::slice::from_ref),
        session: None,
        restrict_public_buckets: false,
        resource_gate: if trust.is_some() {
            ResourceGate::RoleTrust
        } else {
            ResourceGate::Union
        },
    };
    crate::authz::evaluate(&policies, &request).kind == DecisionKind::Allowed
}

/// What the analysis reads besides the trail, owned so it can move to a blocking thread (the
/// state refuses database calls on the async executor).
struct Sources {
    state: std::sync::Arc<crate::state::State>,
    recorder: std::sync::Arc<crate::keys::Recorder>,
    account: String,
}

impl Sources {
    fn of(gw: &Gateway) -> Sources {
        Sources {
            state: gw.state.clone(),
            recorder: gw.key_usage.clone(),
            account: gw.account.record.account_id.clone(),
        }
    }
}

/// The identity side of `subject` as the gateway holds it now: its compiled policies and its
/// permissions boundary.
struct IdentitySide {
    identity: std::sync::Arc<Vec<CompiledPolicy>>,
    boundary: Option<std::sync::Arc<CompiledPolicy>>,
}

/// What `subject`'s policies grant, with the identity side they were decided with.
fn grants_of(src: &Sources, subject: &Subject) -> Result<(Granted, IdentitySide), S3Error> {
    let kind = match subject.kind {
        Kind::User => PrincipalKind::User,
        Kind::Role => PrincipalKind::Role,
    };
    let stored = src.state.entity_policies(kind, &subject.name)?;
    let mut parsed = Vec::new();
    for p in &stored.policies {
        let doc = keyhole_policy::parse_policy(&p.document).map_err(|e| {
            S3Error::new(
                "PolicyEvaluation",
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("policy {} no longer parses: {e}", p.name),
            )
        })?;
        parsed.push((p.name.clone(), doc));
    }
    let snapshot = src.state.snapshot();
    let (identity, boundary) = match subject.kind {
        Kind::User => snapshot
            .users
            .get(&subject.name)
            .map(|u| (u.policies.clone(), u.boundary.clone())),
        Kind::Role => snapshot
            .roles
            .get(&subject.name)
            .map(|r| (r.policies.clone(), r.boundary.clone())),
    }
    .ok_or_else(|| not_found(format!("{} was deleted meanwhile", subject.arn)))?;
    let granted = grants::granted(&parsed, |action, resource| {
        identity_allows(
            subject,
            &src.account,
            &identity,
            boundary.as_deref(),
            None,
            action,
            resource,
        )
    });
    Ok((granted, IdentitySide { identity, boundary }))
}

/// The roles user `subject` may assume (trust policy and identity side decided together, as STS
/// decides them), sorted; only a single report lists them, so `access unused` does not pay for
/// deciding every user against every role.
fn assumable_roles(src: &Sources, subject: &Subject, side: &IdentitySide) -> Vec<String> {
    if subject.kind != Kind::User {
        return Vec::new();
    }
    let snapshot = src.state.snapshot();
    let mut assumable: Vec<String> = snapshot
        .roles
        .values()
        .filter(|role| {
            identity_allows(
                subject,
                &src.account,
                &side.identity,
                side.boundary.as_deref(),
                Some(&role.trust),
                "sts:AssumeRole",
                &role.arn,
            )
        })
        .map(|role| role.arn.clone())
        .collect();
    assumable.sort();
    assumable
}

/// A user's access keys with their last use (the database's and this node's pending uses).
fn keys_of(src: &Sources, subject: &Subject) -> Result<Vec<KeyFact>, S3Error> {
    if subject.kind != Kind::User {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for k in src.state.list_access_keys(&subject.name)? {
        let last_used = crate::keys::last_used(&src.state, &src.recorder, &k.id)?;
        out.push(KeyFact {
            id: k.id,
            status: k.status,
            created: k.created,
            last_used,
        });
    }
    Ok(out)
}

/// Which trail the report read and whether that is every request of the window: not when
/// several nodes keep trails of their own, nor when retention (`audit_retain_days`) removed
/// files the window reaches into (`trail_start`: the oldest event left, when files were removed).
fn source(gw: &Gateway, trail_start: Option<&str>, since: DateTime<Utc>) -> Value {
    let node = gw.audit.node_id().unwrap_or("-");
    let mut notes = Vec::new();
    if gw.job_feed.is_some() {
        notes.push(format!("several nodes share this state and each keeps its own audit trail: this report covers the requests node {node} served; the others' are in their trails (keyhole audit query --trails DIR)"));
    }
    let late = trail_start
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| t > since);
    if late {
        notes.push(format!(
            "the trail begins at {}, after the window's start: older requests are no longer in it (audit_retain_days); access keys' last use is not affected",
            trail_start.unwrap_or_default()
        ));
    }
    let mut v = json!({"trails": [node], "complete": notes.is_empty()});
    if let (Some(o), Some(t)) = (v.as_object_mut(), trail_start) {
        o.insert("trailStart".into(), json!(t));
    }
    if let (Some(o), false) = (v.as_object_mut(), notes.is_empty()) {
        o.insert("note".into(), json!(notes.join("; ")));
    }
    v
}

/// When retention removed the trail's first files: the time of its oldest event still on disk
/// (`None` while the trail still begins with its first event, sequence 1).
fn trail_start(dir: &std::path::Path) -> Option<String> {
    use std::io::BufRead;
    let files = crate::audit::sink::trail_files(dir).ok()?;
    if files.first().is_none_or(|(first_seq, _)| *first_seq <= 1) {
        return None;
    }
    files.into_iter().find_map(|(_, path)| {
        let file = std::fs::File::open(path).ok()?;
        std::io::BufReader::new(file)
            .split(b'\n')
            .map_while(Result::ok)
            .find_map(|line| crate::audit::query::parse_line(&line))
            .map(|f| f.event.event_time)
    })
}

/// Most trail passes for reports running at once on a node; later ones wait their turn. A pass
/// reads the whole window of the trail (seconds of a core on a large trail): without a bound,
/// anyone allowed one report could keep every core busy by asking for many at once (review 14).
const CONCURRENT_SCANS: usize = 1;

static SCANS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CONCURRENT_SCANS);

/// Reads the trail under the gateway's data directory into `tally`; also returns when the trail
/// begins.
async fn scan(gw: &Gateway, mut tally: Tally) -> Result<(Tally, Option<String>), S3Error> {
    let _turn = SCANS.acquire().await.map_err(S3Error::internal)?;
    // Events queued before this request (a denial just answered) are in the files first.
    gw.audit.written().await.map_err(S3Error::internal)?;
    let dir = gw.config.data_dir.join(crate::audit::AUDIT_DIR);
    tokio::task::spawn_blocking(move || {
        let start = trail_start(&dir);
        let filter = tally.filter();
        crate::audit::query::scan(&dir, &filter, |found| {
            tally.add(&found.event);
            true
        })
        .map(|_| (tally, start))
    })
    .await
    .map_err(S3Error::internal)?
    .map_err(S3Error::internal)
}

/// GetAccessReport: the report of the user or role `arn` over `[since, now]`.
pub async fn principal_report(
    gw: &Gateway,
    arn: &str,
    since: DateTime<Utc>,
) -> Result<Value, S3Error> {
    let until = Utc::now();
    let subject = subject_of(gw, arn)?;
    let (tally, start) = scan(
        gw,
        Tally::new([(subject.id.clone(), subject.kind)], Some(since)),
    )
    .await?;
    let usage = tally.usage(&subject.id);
    let (granted, assumable, keys) = crate::state::db::blocking({
        let subject = subject.clone();
        let src = Sources::of(gw);
        move || -> Result<_, S3Error> {
            let (g, side) = grants_of(&src, &subject)?;
            let a = assumable_roles(&src, &subject, &side);
            let k = keys_of(&src, &subject)?;
            Ok((g, a, k))
        }
    })
    .await?;
    let mut r = report(&subject, &usage, &granted, &keys, &assumable, since, until);
    if let Some(o) = r.as_object_mut() {
        o.insert("source".into(), source(gw, start.as_deref(), since));
    }
    Ok(r)
}

/// ListUnusedAccess: every user, role and key unused over `[since, now]`, and each principal's
/// unused permissions.
pub async fn unused(gw: &Gateway, since: DateTime<Utc>) -> Result<Value, S3Error> {
    let until = Utc::now();
    let all = subjects(gw);
    let (mut tally, start) = scan(
        gw,
        Tally::new(all.iter().map(|s| (s.id.clone(), s.kind)), Some(since)),
    )
    .await?;
    let with_usage: Vec<(Subject, Usage)> = all
        .into_iter()
        .map(|s| {
            let u = tally.take(&s.id);
            (s, u)
        })
        .collect();
    let entries = crate::state::db::blocking({
        let src = Sources::of(gw);
        move || -> Result<Vec<Entry>, S3Error> {
            let mut out = Vec::new();
            for (subject, usage) in with_usage {
                let found =
                    grants_of(&src, &subject).and_then(|(g, _)| Ok((g, keys_of(&src, &subject)?)));
                match found {
                    Ok((granted, keys)) => out.push(Entry {
                        subject,
                        usage,
                        granted,
                        keys,
                    }),
                    // Deleted since the listing: not part of the account any more.
                    Err(e) if matches!(e.code(), "ResourceNotFoundException" | "NoSuchEntity") => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        }
    })
    .await?;
    let (users, roles, unused_keys) = account_unused(&entries, since);
    Ok(json!({
        "window": {"since": rfc3339(since), "until": rfc3339(until)},
        "source": source(gw, start.as_deref(), since),
        "users": users,
        "roles": roles,
        "unusedKeys": unused_keys,
    }))
}

#[cfg(test)]
mod tests;
