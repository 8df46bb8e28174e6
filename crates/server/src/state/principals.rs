//! Principals are who they are, not what they are called.
//!
//! Every user and role gets a unique id (`AIDA...`, `AROA...`) that is never issued again, even
//! after the entity is deleted ([`issue_id`]). When a bucket policy or a role's trust policy is
//! stored, every principal ARN of this account that it names is resolved to the unique id of the
//! entity it names at that moment ([`bind`]); from then on the statement matches only that entity,
//! so a user or role deleted and created again under the same name does not inherit what the
//! policy granted its namesake. AWS does the same: "If your Principal element in a role trust
//! policy contains an ARN that points to a specific IAM role, then that ARN transforms to the
//! role's unique principal ID when you save the policy ... If you delete the role, then you break
//! the relationship ... the principal ARN is converted to the unique ID"
//! (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html#principal-roles).
//! A stored document whose principal has since been deleted (or replaced by a namesake) is shown
//! with the bare unique id in its place ([`render`]), as GetBucketPolicy and GetRole show it in
//! AWS, so an administrator sees that the grant no longer reaches anyone.
//!
//! An ARN of this account that names no existing user or role is refused when the policy is
//! stored (`MalformedPolicy`: "Invalid principal in policy"), as AWS refuses it.
//!
//! # Security
//! An ARN of this account that has no binding (a document stored by an earlier release and not
//! yet bound, which [`bind_unbound`] does at start) matches nothing: it is bound to the empty id,
//! which no principal has. ARNs of other accounts cannot be resolved here and match by ARN.

use std::collections::HashMap;

use super::db::{Conn, Touched};
use crate::params;
use keyhole_policy::CompiledPolicy;

use super::StateError;

/// The binding scope of a bucket's policy.
pub fn bucket_scope(bucket: &str) -> String {
    format!("bucket:{bucket}")
}

/// The binding scope of a role's trust policy.
pub fn trust_scope(role: &str) -> String {
    format!("trust:{role}")
}

/// A fresh unique id with `prefix` (`AIDA`, `AROA`, `AGPA`, `ANPA`) that was never issued before,
/// recorded as issued to `name` (`kind` is `user`, `role`, ...), inside the caller's transaction.
pub(super) fn issue_id(
    tx: &dyn Conn,
    prefix: &str,
    kind: &str,
    name: &str,
    created: &str,
) -> Result<String, StateError> {
    loop {
        let id = crate::account::new_id(prefix, 17);
        let taken: Option<String> = tx.query_opt(
            "SELECT id FROM issued_ids WHERE id = ?1",
            params![&id],
            |r| r.get(0),
        )?;
        if taken.is_none() {
            tx.execute(
                "INSERT INTO issued_ids (id, kind, name, created) VALUES (?1, ?2, ?3, ?4)",
                params![id, kind, name, created],
            )?;
            return Ok(id);
        }
    }
}

/// What a principal ARN of this account names, if it is one.
enum Named<'a> {
    /// `arn:aws:iam::ACCOUNT:user/PATH/NAME`.
    User,
    /// `arn:aws:iam::ACCOUNT:role/PATH/NAME`.
    Role,
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`: the role.
    RoleSession(&'a str),
    /// `arn:aws:sts::ACCOUNT:federated-user/NAME`: no IAM entity (a role-less job's sessions).
    FederatedUser,
    /// Anything else of this account (a group, a malformed ARN): no principal.
    Invalid,
}

/// Classifies `arn` if it is an ARN of `account`; `None` for other accounts and non-ARN values.
fn named<'a>(arn: &'a str, account: &str) -> Option<Named<'a>> {
    let rest = arn.strip_prefix("arn:aws:")?;
    let (service, rest) = rest.split_once(':')?;
    let rest = rest.strip_prefix(':')?; // no region
    let (acct, resource) = rest.split_once(':')?;
    if acct != account {
        return None;
    }
    Some(match (service, resource.split_once('/')) {
        ("iam", Some(("user", _))) => Named::User,
        ("iam", Some(("role", _))) => Named::Role,
        ("sts", Some(("assumed-role", session))) => match session.split_once('/') {
            Some((role, name)) if !role.is_empty() && !name.is_empty() => Named::RoleSession(role),
            _ => Named::Invalid,
        },
        ("sts", Some(("federated-user", name))) if !name.is_empty() => Named::FederatedUser,
        _ => Named::Invalid,
    })
}

/// The unique id of the user or role a principal ARN of this account names now, `Ok(None)` for
/// a federated-user ARN (nothing to bind), or "Invalid principal" when it names nothing.
fn resolve(tx: &dyn Conn, arn: &str, how: Named<'_>) -> Result<Option<String>, StateError> {
    // The ARN with its path is compared whole: `user/team/alice` names alice only if her path is
    // `/team/`.
    let found: Option<String> = match how {
        Named::User => tx
            .query_opt(
                "SELECT id FROM users WHERE CAST(?1 AS TEXT) = 'arn:aws:iam::' || CAST(?2 AS TEXT) || ':user' || path || name",
                params![arn, account_of(arn)],
                |r| r.get(0))?,
        Named::Role => tx
            .query_opt(
                "SELECT id FROM roles WHERE CAST(?1 AS TEXT) = 'arn:aws:iam::' || CAST(?2 AS TEXT) || ':role' || path || name",
                params![arn, account_of(arn)],
                |r| r.get(0))?,
        Named::RoleSession(role) => tx
            .query_opt("SELECT id FROM roles WHERE name = ?1", params![role], |r| r.get(0))?,
        Named::FederatedUser => return Ok(None),
        Named::Invalid => None,
    };
    match found {
        Some(id) => Ok(Some(id)),
        None => Err(StateError::MalformedPolicy(format!(
            "Invalid principal in policy: \"AWS\":\"{arn}\" (no user or role of this account has that ARN; create it first, or name it by the ARN it has, path included)"
        ))),
    }
}

fn account_of(arn: &str) -> &str {
    arn.split(':').nth(4).unwrap_or_default()
}

/// Resolves the principal ARNs of `account` that `policy` names and stores them as the bindings
/// of `scope` (replacing earlier ones), inside the caller's transaction; fails with "Invalid
/// principal in policy" when one names no user or role.
pub(super) fn bind(
    tx: &dyn Conn,
    account: &str,
    scope: &str,
    policy: &CompiledPolicy,
) -> Result<(), StateError> {
    let mut resolved = Vec::new();
    for arn in policy.principal_arns() {
        if let Some(how) = named(arn, account) {
            if let Some(id) = resolve(tx, arn, how)? {
                resolved.push((arn.to_owned(), id));
            }
        }
    }
    unbind(tx, scope)?;
    for (arn, id) in resolved {
        tx.execute(
            "INSERT INTO principal_bindings (scope, arn, id) VALUES (?1, ?2, ?3)",
            params![scope, arn, id],
        )?;
    }
    Ok(())
}

/// Forgets the bindings of `scope` (its policy was deleted).
pub(super) fn unbind(tx: &dyn Conn, scope: &str) -> Result<(), StateError> {
    tx.execute(
        "DELETE FROM principal_bindings WHERE scope = ?1",
        params![scope],
    )?;
    Ok(())
}

/// Every binding, by scope.
pub(super) fn all_bindings(
    db: &dyn Conn,
) -> Result<HashMap<String, HashMap<String, String>>, StateError> {
    let mut out: HashMap<String, HashMap<String, String>> = HashMap::new();
    for row in db.query_map(
        "SELECT scope, arn, id FROM principal_bindings",
        params![],
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<String>(1)?,
                r.get::<String>(2)?,
            ))
        },
    )? {
        let (scope, arn, id) = row;
        out.entry(scope).or_default().insert(arn, id);
    }
    Ok(out)
}

/// The bindings of one scope.
pub(super) fn bindings(db: &dyn Conn, scope: &str) -> Result<HashMap<String, String>, StateError> {
    let rows = db
        .query_map(
            "SELECT arn, id FROM principal_bindings WHERE scope = ?1",
            params![scope],
            |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
        )?
        .into_iter()
        .collect::<HashMap<_, _>>();
    Ok(rows)
}

/// What a stored policy's principal ARN is bound to when it is compiled: its binding for ARNs of
/// `account` that name a user, role or role session (the empty id, which matches nothing, when
/// it has none), `None` (match by ARN) for everything else.
pub(super) fn binding_of(
    account: &str,
    bound: Option<&HashMap<String, String>>,
    arn: &str,
) -> Option<String> {
    match named(arn, account)? {
        Named::FederatedUser => None,
        _ => Some(bound.and_then(|b| b.get(arn)).cloned().unwrap_or_default()),
    }
}

/// The document as it should be shown: each bound ARN whose entity no longer exists under that
/// ARN (deleted, or replaced by a namesake) is replaced by the unique id it was bound to.
/// `current` gives the id of the entity an ARN names now. Unchanged text when nothing is orphaned.
pub fn render(
    doc: &str,
    bound: &HashMap<String, String>,
    current: impl Fn(&str) -> Option<String>,
) -> String {
    let orphans: HashMap<&str, &str> = bound
        .iter()
        .filter(|(arn, id)| current(arn).as_deref() != Some(id.as_str()))
        .map(|(arn, id)| (arn.as_str(), id.as_str()))
        .collect();
    if orphans.is_empty() {
        return doc.to_owned();
    }
    replace_principals(doc, |v| orphans.get(v).map(|id| (*id).to_owned()))
        .unwrap_or_else(|| doc.to_owned())
}

/// `doc` with each `"AWS"` value of a `Principal` or `NotPrincipal` for which `with` gives a
/// replacement replaced by it, re-serialized; `None` when `doc` is not JSON.
fn replace_principals(doc: &str, with: impl Fn(&str) -> Option<String>) -> Option<String> {
    let mut value = serde_json::from_str::<serde_json::Value>(doc).ok()?;
    let statements = match value.get_mut("Statement") {
        Some(serde_json::Value::Array(list)) => list.iter_mut().collect::<Vec<_>>(),
        Some(one) => vec![one],
        None => Vec::new(),
    };
    for statement in statements {
        for element in ["Principal", "NotPrincipal"] {
            let Some(aws) = statement.get_mut(element).and_then(|p| p.get_mut("AWS")) else {
                continue;
            };
            let values: Vec<&mut serde_json::Value> = match aws {
                serde_json::Value::Array(list) => list.iter_mut().collect(),
                one => vec![one],
            };
            for v in values {
                if let Some(new) = v.as_str().and_then(&with) {
                    *v = serde_json::Value::String(new);
                }
            }
        }
    }
    serde_json::to_string(&value).ok()
}

/// A binding scope: the bucket policy of a bucket, or the trust policy of a role.
enum Scope<'a> {
    Bucket(&'a str),
    Trust(&'a str),
}

impl<'a> Scope<'a> {
    /// Reads [`bucket_scope`]'s and [`trust_scope`]'s forms.
    fn parse(scope: &'a str) -> Option<Scope<'a>> {
        match scope.split_once(':')? {
            ("bucket", b) => Some(Scope::Bucket(b)),
            ("trust", r) => Some(Scope::Trust(r)),
            _ => None,
        }
    }

    /// The scope in words, for messages.
    fn describe(&self) -> String {
        match self {
            Scope::Bucket(b) => format!("the bucket policy of {b}"),
            Scope::Trust(r) => format!("the trust policy of role {r}"),
        }
    }

    /// What a change to the scope's document touches.
    fn touched(&self) -> Touched {
        match self {
            Scope::Bucket(b) => Touched::Bucket((*b).to_owned()),
            Scope::Trust(r) => Touched::Role((*r).to_owned()),
        }
    }

    /// The scope's document, as stored.
    fn document(&self, tx: &dyn Conn) -> Result<Option<String>, StateError> {
        match self {
            Scope::Bucket(b) => tx.query_opt(
                "SELECT document FROM bucket_policies WHERE bucket = ?1",
                params![b],
                |r| r.get(0),
            ),
            Scope::Trust(r) => tx.query_opt(
                "SELECT trust_policy FROM roles WHERE name = ?1",
                params![r],
                |row| row.get(0),
            ),
        }
    }

    /// Stores `document` as the scope's.
    fn store(&self, tx: &dyn Conn, document: &str) -> Result<(), StateError> {
        match self {
            Scope::Bucket(b) => tx.execute(
                "UPDATE bucket_policies SET document = ?1 WHERE bucket = ?2",
                params![document, b],
            )?,
            Scope::Trust(r) => tx.execute(
                "UPDATE roles SET trust_policy = ?1 WHERE name = ?2",
                params![document, r],
            )?,
        };
        Ok(())
    }
}

/// UpdateUser's part here: every bucket policy and trust policy whose principal `old_arn` is
/// bound to the user `id` is rewritten to name `new_arn` and stored (and remembered in the
/// document history), and its binding moves with it, inside the caller's transaction; returns
/// what it touched. AWS: "any policies that refer to the user as the principal ... are
/// automatically updated to use the new name or path ... Amazon S3 bucket policies are also
/// automatically updated" (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_users_rename.html).
/// Bindings of `old_arn` to other ids (users of that name deleted before) stay: they name
/// nobody.
///
/// A scope that still binds `new_arn` to another id (the policy names a deleted user of the new
/// name) cannot say both in one document: `EntityTemporarilyUnmodifiable`, naming the policy,
/// and nothing changes.
pub(super) fn rename(
    tx: &dyn Conn,
    id: &str,
    old_arn: &str,
    new_arn: &str,
) -> Result<Vec<Touched>, StateError> {
    let scopes: Vec<String> = tx.query_map(
        "SELECT scope FROM principal_bindings WHERE arn = ?1 AND id = ?2 ORDER BY scope",
        params![old_arn, id],
        |r| r.get(0),
    )?;
    let mut touched = Vec::new();
    for name in &scopes {
        let Some(scope) = Scope::parse(name) else {
            continue;
        };
        let other: Option<String> = tx.query_opt(
            "SELECT id FROM principal_bindings WHERE scope = ?1 AND arn = ?2",
            params![name, new_arn],
            |r| r.get(0),
        )?;
        if other.as_deref().is_some_and(|o| o != id) {
            return Err(StateError::EntityTemporarilyUnmodifiable(format!(
                "{} names {new_arn}, a user that was deleted; change that policy first (GetBucketPolicy or GetRole shows the deleted user's unique id in its place), then rename",
                scope.describe()
            )));
        }
        let Some(doc) = scope.document(tx)? else {
            continue;
        };
        let document = replace_principals(&doc, |v| (v == old_arn).then(|| new_arn.to_owned()))
            .ok_or_else(|| {
                StateError::Engine(format!("the stored {} is not JSON", scope.describe()))
            })?;
        tx.execute(
            "DELETE FROM principal_bindings WHERE scope = ?1 AND arn = ?2",
            params![name, new_arn],
        )?;
        tx.execute(
            "UPDATE principal_bindings SET arn = ?1 WHERE scope = ?2 AND arn = ?3",
            params![new_arn, name, old_arn],
        )?;
        scope.store(tx, &document)?;
        super::documents::remember(tx, &document)?;
        touched.push(scope.touched());
    }
    Ok(touched)
}

/// Binds the principals of documents stored before bindings existed (at start, once): each
/// bucket policy and trust policy without bindings is bound to the entities its ARNs name now;
/// an ARN that names nothing stays unbound and so matches nothing.
pub(super) fn bind_unbound(tx: &dyn Conn, account: &str) -> Result<(), StateError> {
    let mut docs: Vec<(String, String)> = Vec::new();
    {
        for row in tx.query_map(
            "SELECT bucket, document FROM bucket_policies",
            params![],
            |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
        )? {
            let (bucket, doc) = row;
            docs.push((bucket_scope(&bucket), doc));
        }
        for row in tx.query_map("SELECT name, trust_policy FROM roles", params![], |r| {
            Ok((r.get::<String>(0)?, r.get::<String>(1)?))
        })? {
            let (role, doc) = row;
            docs.push((trust_scope(&role), doc));
        }
    }
    for (scope, doc) in docs {
        let has: i64 = tx.query_one(
            "SELECT count(*) FROM principal_bindings WHERE scope = ?1",
            params![&scope],
            |r| r.get(0),
        )?;
        if has > 0 {
            continue;
        }
        let Ok(policy) = CompiledPolicy::from_json(&doc, keyhole_policy::PolicyKind::Resource)
        else {
            continue;
        };
        for arn in policy.principal_arns() {
            let Some(how) = named(arn, account) else {
                continue;
            };
            if let Ok(Some(id)) = resolve(tx, arn, how) {
                tx.execute(
                    "INSERT INTO principal_bindings (scope, arn, id) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                    params![scope, arn, id])?;
            }
        }
    }
    // Ids issued before issued_ids existed are recorded, so they are never issued again.
    tx.execute(
        "INSERT INTO issued_ids (id, kind, name, created)
         SELECT id, 'user', name, created FROM users WHERE true ON CONFLICT DO NOTHING",
        params![],
    )?;
    tx.execute(
        "INSERT INTO issued_ids (id, kind, name, created)
         SELECT id, 'role', name, created FROM roles WHERE true ON CONFLICT DO NOTHING",
        params![],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_of_this_account_are_classified() {
        let a = "123456789012";
        assert!(matches!(
            named("arn:aws:iam::123456789012:user/team/alice", a),
            Some(Named::User)
        ));
        assert!(matches!(
            named("arn:aws:iam::123456789012:role/r", a),
            Some(Named::Role)
        ));
        assert!(matches!(
            named("arn:aws:sts::123456789012:assumed-role/r/s", a),
            Some(Named::RoleSession("r"))
        ));
        assert!(matches!(
            named("arn:aws:sts::123456789012:federated-user/j", a),
            Some(Named::FederatedUser)
        ));
        assert!(matches!(
            named("arn:aws:iam::123456789012:group/g", a),
            Some(Named::Invalid)
        ));
        assert!(named("arn:aws:iam::999999999999:user/x", a).is_none());
        assert!(named("AIDAEXAMPLEEXAMPLE1", a).is_none());
        // Unbound ARNs of this account match nothing; other accounts match by ARN.
        assert_eq!(
            binding_of(a, None, "arn:aws:iam::123456789012:user/x").as_deref(),
            Some("")
        );
        assert_eq!(
            binding_of(a, None, "arn:aws:iam::999999999999:user/x"),
            None
        );
    }

    #[test]
    fn orphaned_principals_render_as_their_unique_id() {
        let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::1:user/carol","arn:aws:iam::1:user/dave"]},"Action":"s3:GetObject","Resource":"*"}]}"#;
        let bound: HashMap<String, String> = [
            (
                "arn:aws:iam::1:user/carol".to_owned(),
                "AIDACAROL".to_owned(),
            ),
            ("arn:aws:iam::1:user/dave".to_owned(), "AIDADAVE".to_owned()),
        ]
        .into();
        // Both exist as bound: the document is shown as stored.
        let same = render(doc, &bound, |arn| bound.get(arn).cloned());
        assert_eq!(same, doc);
        // carol was deleted and created again: her old id stands in her place.
        let shown = render(doc, &bound, |arn| {
            (arn.ends_with("dave")).then(|| "AIDADAVE".to_owned())
        });
        assert!(shown.contains(r#""AIDACAROL""#), "{shown}");
        assert!(shown.contains("arn:aws:iam::1:user/dave"), "{shown}");
        assert!(!shown.contains("user/carol"), "{shown}");
    }
}
