//! `keyhole audit explain`: makes a recorded decision again, with the policies in force when it
//! was made ("then") and with those in force now, and says in words which statements decided
//! and which condition failed.
//!
//! What makes this possible is recorded at two moments, never per allowed request:
//! - when a policy is stored, its document is kept by digest ([`crate::state::documents`]), and
//!   when it is compiled into the snapshot, the digest is attached to the compiled policy;
//! - when a pair is *denied* by the policy engine, the check's [`Evaluation`] names the policies
//!   in play by digest and holds the request's condition keys ([`record`], called by the one
//!   authorization function, `authz`).
//!
//! Rebuilding "then" needs each named document from the history; "now" reads the principal's
//! and the resource's policies from the state database as they are (for a session, its session
//! policies are its own and do not change; a managed session policy is read at its current
//! default version). A decision is made again by `authz::evaluate`, the one call of the policy
//! engine.
//!
//! # Security
//! The explanation holds what the trail and the state database already hold for whoever can
//! read the data directory: policy text and the recorded condition keys; no secret is recorded
//! (`sts:ExternalId` is left out of the trail, so a condition on it cannot be made again and is
//! said so).

use std::collections::BTreeMap;

use keyhole_policy::{
    CompiledPolicy, Context, DecisionKind, DenialReason, FailedElement, Policies, Policy,
    PolicyKind, Request, RequestPrincipal, ResourceGate, StatementRef,
};
use serde::Serialize;

use super::event::{
    AuditEvent, Check, ContextValue, Decision, EvaluatedPrincipal, Evaluation, PolicyUsed,
};
use crate::state::db::Conn;
use crate::state::PrincipalKind;

/// Condition keys whose values are never recorded.
const REDACTED_KEYS: [&str; 1] = ["sts:externalid"];

/// Most condition keys one denial records (a request may carry thousands of tags before they
/// are validated: review 15); the rest are named as left out.
pub const MAX_RECORDED_KEYS: usize = 128;
/// Longest value recorded for one key, in bytes (longer ones are cut at a character boundary).
pub const MAX_RECORDED_VALUE_BYTES: usize = 1024;

/// The value of condition key `key` as the trail may hold it: `sts:ExternalId` withheld, and
/// `aws:Referer` without its query string and fragment (the page a browser came from may be a
/// presigned URL, whose signature and session token must not reach the trail: review 15).
pub fn recordable<'a>(key: &str, value: &'a str) -> std::borrow::Cow<'a, str> {
    if REDACTED_KEYS.contains(&key.to_ascii_lowercase().as_str()) {
        return "(withheld: a secret)".into();
    }
    if key.eq_ignore_ascii_case("aws:Referer") {
        if let Some(cut) = value.find(['?', '#']) {
            return format!("{}?(query withheld)", value.get(..cut).unwrap_or_default()).into();
        }
    }
    value.into()
}

/// `value` cut to [`MAX_RECORDED_VALUE_BYTES`].
fn clipped(value: &str) -> String {
    if value.len() <= MAX_RECORDED_VALUE_BYTES {
        return value.to_owned();
    }
    let mut end = MAX_RECORDED_VALUE_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...(cut)", value.get(..end).unwrap_or_default())
}

/// What a denial was made with, for the trail. Called only for denied pairs.
pub fn record(
    set: &Policies<'_>,
    principal: &RequestPrincipal,
    unique_id: Option<&str>,
    context: &Context,
) -> Evaluation {
    let used = |kind: PolicyKind, p: &CompiledPolicy| PolicyUsed {
        kind: kind_word(kind).to_owned(),
        name: p.name().map(str::to_owned),
        sha256: p.digest().map(str::to_owned),
    };
    let mut policies: Vec<PolicyUsed> = Vec::new();
    policies.extend(set.identity.iter().map(|p| used(PolicyKind::Identity, p)));
    policies.extend(
        set.session
            .into_iter()
            .flatten()
            .map(|p| used(PolicyKind::Session, p)),
    );
    policies.extend(
        set.boundaries
            .iter()
            .map(|p| used(PolicyKind::PermissionsBoundary, p)),
    );
    policies.extend(set.resource.map(|p| used(PolicyKind::Resource, p)));
    let mut out = BTreeMap::new();
    let mut redacted = Vec::new();
    let mut left_out = 0usize;
    // Deterministic, and the request's own keys before tags (the keys a request can multiply),
    // so the cap below never drops `aws:SourceIp` for the thousandth tag.
    let mut entries: Vec<_> = context.iter().collect();
    let is_tag = |k: &str| {
        let k = k.to_ascii_lowercase();
        k.contains("tag/") || k == "aws:tagkeys"
    };
    entries.sort_by(|(a, _), (b, _)| (is_tag(a), *a).cmp(&(is_tag(b), *b)));
    for (k, v) in entries {
        if REDACTED_KEYS.contains(&k.to_ascii_lowercase().as_str()) {
            redacted.push(k.to_owned());
            continue;
        }
        if out.len() >= MAX_RECORDED_KEYS {
            left_out += 1;
            continue;
        }
        let value = match v {
            keyhole_policy::ContextValue::Single(s) => {
                ContextValue::One(clipped(&recordable(k, s)))
            }
            keyhole_policy::ContextValue::Multi(m) => ContextValue::Many(
                m.iter()
                    .take(MAX_RECORDED_KEYS)
                    .map(|s| clipped(&recordable(k, s)))
                    .collect(),
            ),
        };
        out.insert(k.to_owned(), value);
    }
    redacted.sort();
    if left_out > 0 {
        // Not a secret, but not kept either: one entry says how many (never one per key).
        redacted.push(format!(
            "{left_out} more condition key(s), beyond the {MAX_RECORDED_KEYS} a record keeps"
        ));
    }
    let (kind, arn, role_arn, account) = match principal {
        RequestPrincipal::Anonymous => ("anonymous", "anonymous".to_owned(), None, None),
        RequestPrincipal::Root { account } => (
            "root",
            format!("arn:aws:iam::{account}:root"),
            None,
            Some(account.clone()),
        ),
        RequestPrincipal::User { arn, account } | RequestPrincipal::Role { arn, account } => {
            ("user", arn.clone(), None, Some(account.clone()))
        }
        RequestPrincipal::Session {
            session_arn,
            role_arn,
            account,
        } => (
            "session",
            session_arn.clone(),
            Some(role_arn.clone()),
            Some(account.clone()),
        ),
        RequestPrincipal::Other { id, account } => (
            "federated",
            id.strip_prefix("Federated:").unwrap_or(id).to_owned(),
            None,
            account.clone(),
        ),
    };
    Evaluation {
        principal: EvaluatedPrincipal {
            kind: kind.to_owned(),
            arn,
            role_arn,
            unique_id: unique_id.map(str::to_owned),
            account,
        },
        policies,
        session_policies: set.session.is_some(),
        restrict_public_buckets: set.restrict_public_buckets,
        role_trust: set.resource_gate == ResourceGate::RoleTrust,
        context: out,
        redacted,
    }
}

/// The engine's principal for a recorded one.
fn request_principal(p: &EvaluatedPrincipal) -> RequestPrincipal {
    let account = p.account.clone().unwrap_or_default();
    match p.kind.as_str() {
        "root" => RequestPrincipal::Root { account },
        "user" => RequestPrincipal::User {
            arn: p.arn.clone(),
            account,
        },
        "session" => RequestPrincipal::Session {
            session_arn: p.arn.clone(),
            role_arn: p.role_arn.clone().unwrap_or_else(|| p.arn.clone()),
            account,
        },
        "federated" => RequestPrincipal::federated(&p.arn, &account),
        _ => RequestPrincipal::Anonymous,
    }
}

/// The recorded condition keys as a context.
fn context_of(e: &Evaluation) -> Context {
    let mut c = Context::new();
    for (k, v) in &e.context {
        match v {
            ContextValue::One(s) => c.insert(k, s.clone()),
            ContextValue::Many(m) => c.insert_multi(k, m.clone()),
        };
    }
    c
}

/// One policy of a rebuilt set: its text (for statements and condition values) and compiled.
struct Known {
    kind: PolicyKind,
    name: String,
    digest: Option<String>,
    text: String,
    parsed: Policy,
    compiled: CompiledPolicy,
}

impl Known {
    fn new(kind: PolicyKind, name: &str, text: String) -> Result<Known, String> {
        let parsed = keyhole_policy::parse_policy(&text).map_err(|e| e.to_string())?;
        let compiled = CompiledPolicy::compile(&parsed, kind)
            .map_err(|e| e.to_string())?
            .with_name(name.to_owned());
        Ok(Known {
            kind,
            name: name.to_owned(),
            digest: Some(crate::state::documents::digest(&text)),
            text,
            parsed,
            compiled,
        })
    }

    fn from_compiled(kind: PolicyKind, p: &CompiledPolicy, db: &dyn Conn) -> Result<Known, String> {
        let name = p.name().unwrap_or(kind.describe());
        let Some(digest) = p.digest() else {
            return Err(format!("{name} has no stored document"));
        };
        let text = stored_text(db, name, digest)?;
        // The compiled policy keeps its principal bindings; the text is for the explanation.
        let mut k = Known::new(kind, name, text)?;
        k.compiled = p.clone();
        Ok(k)
    }
}

/// How an evaluation names a policy's kind ([`kind_of`] reads it back).
fn kind_word(kind: PolicyKind) -> &'static str {
    match kind {
        PolicyKind::Identity => "identity",
        PolicyKind::Session => "session",
        PolicyKind::PermissionsBoundary => "boundary",
        PolicyKind::Resource => "resource",
    }
}

fn kind_of(word: &str) -> Option<PolicyKind> {
    Some(match word {
        "identity" => PolicyKind::Identity,
        "session" => PolicyKind::Session,
        "boundary" => PolicyKind::PermissionsBoundary,
        "resource" => PolicyKind::Resource,
        _ => return None,
    })
}

/// A set of policies rebuilt for one decision.
struct Set {
    identity: Vec<Known>,
    session: Option<Vec<Known>>,
    boundaries: Vec<Known>,
    resource: Option<Known>,
}

impl Set {
    fn all(&self) -> impl Iterator<Item = &Known> {
        self.identity
            .iter()
            .chain(self.session.iter().flatten())
            .chain(&self.boundaries)
            .chain(&self.resource)
    }

    fn all_owned(self) -> Vec<Known> {
        let mut v = self.identity;
        v.extend(self.session.into_iter().flatten());
        v.extend(self.boundaries);
        v.extend(self.resource);
        v
    }

    fn push(&mut self, k: Known) {
        match k.kind {
            PolicyKind::Identity => self.identity.push(k),
            PolicyKind::Session => self.session.get_or_insert_with(Vec::new).push(k),
            PolicyKind::PermissionsBoundary => self.boundaries.push(k),
            PolicyKind::Resource => self.resource = Some(k),
        }
    }

    /// The policy a statement reference points into.
    fn source(&self, s: &StatementRef) -> Option<&Known> {
        match s.policy_kind {
            PolicyKind::Identity => self.identity.get(s.policy_index),
            PolicyKind::Session => self.session.as_ref()?.get(s.policy_index),
            PolicyKind::PermissionsBoundary => self.boundaries.get(s.policy_index),
            PolicyKind::Resource => self.resource.as_ref(),
        }
    }
}

/// The text of policy `name` from the history of documents, by its digest.
fn stored_text(db: &dyn Conn, name: &str, digest: &str) -> Result<String, String> {
    crate::state::documents::find(db, digest)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!("the document of {name} (sha256 {digest}) is not in the policy history")
        })
}

/// The policies a recorded decision was made with, from the history.
fn rebuild_then(e: &Evaluation, db: &dyn Conn) -> Result<Set, String> {
    let mut set = Set {
        identity: Vec::new(),
        session: e.session_policies.then(Vec::new),
        boundaries: Vec::new(),
        resource: None,
    };
    for p in &e.policies {
        let kind = kind_of(&p.kind).ok_or_else(|| format!("unknown policy kind `{}`", p.kind))?;
        let name = p.name.clone().unwrap_or_else(|| kind.describe().to_owned());
        let Some(digest) = &p.sha256 else {
            return Err(format!(
                "{name} is not a stored document (keyhole writes it itself), so it cannot be rebuilt"
            ));
        };
        let text = stored_text(db, &name, digest)?;
        set.push(Known::new(kind, &name, text)?);
    }
    Ok(set)
}

/// The user or role name an IAM ARN names (its last path segment).
fn iam_name<'a>(arn: &'a str, what: &str) -> Option<&'a str> {
    let rest = arn.split(':').nth(5)?;
    let rest = rest.strip_prefix(what)?.strip_prefix('/')?;
    rest.rsplit('/').next().filter(|n| !n.is_empty())
}

/// The policies in force now for the same principal and resource.
fn rebuild_now(
    e: &Evaluation,
    resource: &str,
    db: &dyn Conn,
    account: &str,
) -> Result<Set, String> {
    let then_known = |kind: &str| -> Result<Vec<Known>, String> {
        let only = Evaluation {
            policies: e
                .policies
                .iter()
                .filter(|p| p.kind == kind)
                .cloned()
                .collect(),
            ..e.clone()
        };
        Ok(rebuild_then(&only, db)?.all_owned())
    };
    let mut set = Set {
        identity: Vec::new(),
        session: None,
        boundaries: Vec::new(),
        resource: None,
    };
    let p = &e.principal;
    let owner = match p.kind.as_str() {
        "user" => iam_name(&p.arn, "user").map(|n| (PrincipalKind::User, n)),
        "session" => p
            .role_arn
            .as_deref()
            .and_then(|r| iam_name(r, "role"))
            .map(|n| (PrincipalKind::Role, n)),
        _ => None,
    };
    match owner {
        Some((kind, name)) => {
            let (identity, boundary) =
                crate::state::snapshot::principal_policies_now(db, account, kind, name)
                    .map_err(|e| e.to_string())?;
            for c in &identity {
                set.push(Known::from_compiled(PolicyKind::Identity, c, db)?);
            }
            if let Some(c) = &boundary {
                set.push(Known::from_compiled(
                    PolicyKind::PermissionsBoundary,
                    c,
                    db,
                )?);
            }
        }
        // A role-less job's session or a job token: its policies are the job's, which never
        // change.
        None if matches!(p.kind.as_str(), "session" | "user") => {
            for k in then_known("identity")?
                .into_iter()
                .chain(then_known("boundary")?)
            {
                set.push(k);
            }
        }
        None => {}
    }
    if e.session_policies {
        set.session = Some(Vec::new());
        for k in then_known("session")? {
            // A managed session policy is read at its current default version.
            let managed = k
                .name
                .strip_prefix("managed session policy `")
                .and_then(|n| n.strip_suffix('`'));
            match managed {
                Some(m) => {
                    if let Some(text) = crate::state::snapshot::managed_document_now(db, m)
                        .map_err(|e| e.to_string())?
                    {
                        set.push(Known::new(PolicyKind::Session, &k.name, text)?);
                    }
                }
                None => set.push(k),
            }
        }
    }
    let bucket = crate::authz::bucket_of(resource);
    let role = if e.role_trust {
        iam_name(resource, "role")
    } else {
        None
    };
    if bucket.is_some() || role.is_some() {
        if let Some(c) = crate::state::snapshot::resource_policy_now(db, account, bucket, role)
            .map_err(|e| e.to_string())?
        {
            set.push(Known::from_compiled(PolicyKind::Resource, &c, db)?);
        }
    } else {
        // A job creator's grant: keyhole's own, the same now as then when it was recorded.
        for k in then_known("resource")? {
            set.push(k);
        }
    }
    Ok(set)
}

/// A statement that decided, with its text.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StatementText {
    /// How the trail names it (`inline policy `x` statement 0 (Sid Y)`).
    pub statement: String,
    /// `Allow` or `Deny`.
    pub effect: String,
    /// The statement as written in its document.
    pub text: String,
}

/// One re-made decision.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// `Allowed`, `ExplicitlyDenied` or `ImplicitlyDenied`; absent when it could not be made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// Why it could not be made (a document no longer known, an old event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    /// The policies used: name and digest.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<PolicyUsed>,
    /// The statements that decided.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub statements: Vec<StatementText>,
    /// Why, in words: the failed conditions, or that no statement allows.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub why: Vec<String>,
}

impl Outcome {
    fn unavailable(why: String) -> Outcome {
        Outcome {
            decision: None,
            unavailable: Some(why),
            policies: Vec::new(),
            statements: Vec::new(),
            why: Vec::new(),
        }
    }
}

/// The explanation of one check of a request.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CheckExplanation {
    /// The action.
    pub action: String,
    /// The resource.
    pub resource: String,
    /// The decision recorded.
    pub recorded: Decision,
    /// The reason recorded.
    pub reason: String,
    /// The statements recorded as deciding.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recorded_statements: Vec<String>,
    /// The decision made again with the policies in force then.
    pub then: Outcome,
    /// The decision made again with the policies in force now.
    pub now: Outcome,
    /// Keys whose recorded values were left out (secrets).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub redacted: Vec<String>,
}

/// The explanation of one request.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// The request id.
    #[serde(rename = "requestID")]
    pub request_id: String,
    /// When.
    pub event_time: String,
    /// The operation.
    pub event_name: String,
    /// Who (ARN, or the identity type).
    pub principal: String,
    /// The overall decision recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// The HTTP status sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// One entry per (action, resource) checked.
    pub checks: Vec<CheckExplanation>,
}

/// Explains a recorded event, reading policy documents and the current policies from `db`.
pub fn explain(event: &AuditEvent, db: &dyn Conn, account: &str) -> Explanation {
    Explanation {
        request_id: event.request_id.clone(),
        event_time: event.event_time.clone(),
        event_name: event.event_name.clone(),
        principal: event
            .user_identity
            .arn
            .clone()
            .unwrap_or_else(|| event.user_identity.kind.clone()),
        decision: event.decision,
        http_status: event.http_status,
        checks: event
            .authorization
            .iter()
            .map(|c| {
                // A check that shares an earlier check's evaluation names its position.
                let evaluation = c.evaluation.as_deref().or_else(|| {
                    let i = usize::try_from(c.same_evaluation_as?).ok()?;
                    event.authorization.get(i)?.evaluation.as_deref()
                });
                explain_check(c, evaluation, db, account)
            })
            .collect(),
    }
}

fn explain_check(
    c: &Check,
    evaluation: Option<&Evaluation>,
    db: &dyn Conn,
    account: &str,
) -> CheckExplanation {
    let (then, now, redacted) = match evaluation {
        Some(e) => (
            match rebuild_then(e, db) {
                Ok(set) => decide(e, &set, c),
                Err(why) => Outcome::unavailable(format!(
                    "cannot rebuild the policies in force then: {why}"
                )),
            },
            match rebuild_now(e, &c.resource, db, account) {
                Ok(set) => decide(e, &set, c),
                Err(why) => {
                    Outcome::unavailable(format!("cannot read the policies in force now: {why}"))
                }
            },
            e.redacted.clone(),
        ),
        None => {
            let why = match c.decision {
                Decision::Allow => "the trail records what an allowed decision was made with only by its deciding statements (above); the request's context is recorded for denials",
                Decision::Deny if c.reason.starts_with("denied by") => "this refusal is not a policy decision (see the reason)",
                Decision::Deny => "the event records no evaluation: it was written before keyhole recorded them, or the refusal is a rule of the API rather than of a policy (see the reason)",
            };
            (
                Outcome::unavailable(why.to_owned()),
                Outcome::unavailable(why.to_owned()),
                Vec::new(),
            )
        }
    };
    CheckExplanation {
        action: c.action.clone(),
        resource: c.resource.clone(),
        recorded: c.decision,
        reason: c.reason.clone(),
        recorded_statements: c.statements.clone(),
        then,
        now,
        redacted,
    }
}

/// Makes the decision with `set` and says why.
fn decide(e: &Evaluation, set: &Set, c: &Check) -> Outcome {
    let identity: Vec<CompiledPolicy> = set.identity.iter().map(|k| k.compiled.clone()).collect();
    let session: Option<Vec<CompiledPolicy>> = set
        .session
        .as_ref()
        .map(|s| s.iter().map(|k| k.compiled.clone()).collect());
    let boundaries: Vec<CompiledPolicy> =
        set.boundaries.iter().map(|k| k.compiled.clone()).collect();
    let policies = Policies {
        identity: &identity,
        session: session.as_deref(),
        boundaries: &boundaries,
        resource: set.resource.as_ref().map(|k| &k.compiled),
        restrict_public_buckets: e.restrict_public_buckets,
        resource_gate: if e.role_trust {
            ResourceGate::RoleTrust
        } else {
            ResourceGate::Union
        },
    };
    let context = context_of(e);
    let mut request = Request::new(
        request_principal(&e.principal),
        &c.action,
        &c.resource,
        None,
        context.clone(),
    );
    if let Some(id) = &e.principal.unique_id {
        request = request.with_unique_id(id.clone());
    }
    let decision = crate::authz::evaluate(&policies, &request);
    let statements = decision
        .matched
        .iter()
        .map(|s| StatementText {
            statement: crate::authz::describe_statement(s),
            effect: format!("{:?}", s.effect),
            text: set
                .source(s)
                .and_then(|k| k.text.get(s.span.offset..s.span.offset + s.span.len))
                .unwrap_or_default()
                .to_owned(),
        })
        .collect();
    let mut why = Vec::new();
    match decision.kind {
        DecisionKind::Allowed => {}
        DecisionKind::ExplicitlyDenied => {
            for s in &decision.matched {
                why.push(format!(
                    "explicitly denied by {}",
                    crate::authz::describe_statement(s)
                ));
            }
        }
        DecisionKind::ImplicitlyDenied => {
            for f in &decision.failures {
                if let FailedElement::Condition {
                    operator,
                    key,
                    key_missing,
                } = &f.element
                {
                    why.push(condition_in_words(
                        set,
                        &f.statement,
                        operator,
                        key,
                        *key_missing,
                        &context,
                        e,
                    ));
                }
            }
            let who = match decision.reason {
                Some(DenialReason::NoAllow(k)) => k.describe(),
                _ => "policy",
            };
            if why.is_empty() {
                why.push(format!(
                    "no {who} statement allows {} on {}",
                    c.action, c.resource
                ));
            } else {
                // Not "no identity-based statement": the condition that failed may be a bucket
                // policy's, and granting in an identity policy would go around it (review 15).
                why.push(format!(
                    "so no statement of the policies in play allows {} on {}",
                    c.action, c.resource
                ));
            }
        }
    }
    Outcome {
        decision: Some(decision.kind.as_str().to_owned()),
        unavailable: None,
        policies: set
            .all()
            .map(|k| PolicyUsed {
                kind: kind_word(k.kind).to_owned(),
                name: Some(k.name.clone()),
                sha256: k.digest.clone(),
            })
            .collect(),
        statements,
        why,
    }
}

/// A failed condition in words: `aws:SourceIp 127.0.0.5 is not in 10.0.0.0/8 (statement
/// AllowFromVpc of inline policy `x`)`.
fn condition_in_words(
    set: &Set,
    statement: &StatementRef,
    operator: &str,
    key: &str,
    key_missing: bool,
    context: &Context,
    e: &Evaluation,
) -> String {
    let wanted: Vec<String> = set
        .source(statement)
        .and_then(|k| k.parsed.statements.get(statement.statement_index))
        .and_then(|st| {
            st.conditions
                .iter()
                .find(|c| c.key.eq_ignore_ascii_case(key) && c.operator.to_string() == operator)
        })
        .map(|c| c.values.iter().map(|v| v.as_text().to_owned()).collect())
        .unwrap_or_default();
    let wanted = wanted.join(", ");
    let which = match &statement.sid {
        Some(sid) => format!(
            "statement {sid} of {}",
            statement.policy_name.as_deref().unwrap_or("its policy")
        ),
        None => format!(
            "statement {} of {}",
            statement.statement_index,
            statement.policy_name.as_deref().unwrap_or("its policy")
        ),
    };
    if e.redacted.iter().any(|r| r.eq_ignore_ascii_case(key)) {
        return format!(
            "{key} was not recorded (a secret), so {operator} {wanted} cannot be checked again ({which})"
        );
    }
    if key_missing {
        return format!(
            "{key} is absent from the request, and {operator} {wanted} needs it ({which})"
        );
    }
    let have = context
        .get(key)
        .map(|v| v.values().join(", "))
        .unwrap_or_default();
    let base = operator
        .trim_start_matches("ForAnyValue:")
        .trim_start_matches("ForAllValues:")
        .trim_end_matches("IfExists");
    let relation = match base {
        "IpAddress" => "is not in",
        "NotIpAddress" => "is in",
        "StringEquals"
        | "StringEqualsIgnoreCase"
        | "ArnEquals"
        | "NumericEquals"
        | "DateEquals"
        | "Bool"
        | "BinaryEquals" => "is not",
        "StringNotEquals"
        | "StringNotEqualsIgnoreCase"
        | "ArnNotEquals"
        | "NumericNotEquals"
        | "DateNotEquals" => "is one of",
        "StringLike" | "ArnLike" => "does not match",
        "StringNotLike" | "ArnNotLike" => "matches",
        "DateLessThan" => "is not before",
        "DateLessThanEquals" => "is after",
        "DateGreaterThan" => "is not after",
        "DateGreaterThanEquals" => "is before",
        "NumericLessThan" => "is not less than",
        "NumericLessThanEquals" => "is greater than",
        "NumericGreaterThan" => "is not greater than",
        "NumericGreaterThanEquals" => "is less than",
        _ => "does not satisfy",
    };
    format!("{key} {have} {relation} {wanted} ({operator}, {which})")
}

/// The explanation in words, for `keyhole audit explain`.
pub fn render(x: &Explanation) -> String {
    // Every recorded string may have been chosen by the requester: escaped for the terminal.
    use crate::audit::query::terminal_safe as t;
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "request {} at {}: {} by {}",
        t(&x.request_id),
        t(&x.event_time),
        t(&x.event_name),
        t(&x.principal)
    );
    let _ = writeln!(
        o,
        "recorded: {}{}",
        x.decision
            .map_or("no decision (refused before authorization)", |d| match d {
                Decision::Allow => "Allow",
                Decision::Deny => "Deny",
            }),
        x.http_status
            .map(|s| format!(", HTTP {s}"))
            .unwrap_or_default()
    );
    if x.checks.is_empty() {
        let _ = writeln!(o, "no authorization check was recorded for this request");
    } else {
        // Review 15: an admin who added a tag or waited for a time window expected "now" to
        // see it; it does not, and says so.
        let _ = writeln!(
            o,
            "(\"then\" and \"now\" both decide the request as it was recorded: its time, address, \
             principal and object tags then; only the policies differ. A retry is decided with \
             today's values.)"
        );
    }
    for c in &x.checks {
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "{} on {}: {}",
            t(&c.action),
            t(&c.resource),
            match c.recorded {
                Decision::Allow => "allowed",
                Decision::Deny => "denied",
            }
        );
        let _ = writeln!(o, "  reason recorded: {}", t(&c.reason));
        for s in &c.recorded_statements {
            let _ = writeln!(o, "  deciding statement recorded: {}", t(s));
        }
        for (label, out) in [("then", &c.then), ("now", &c.now)] {
            match (&out.decision, &out.unavailable) {
                (_, Some(why)) => {
                    let _ = writeln!(o, "  {label}: cannot say: {}", t(why));
                }
                (Some(d), None) => {
                    let _ = writeln!(o, "  {label}: {d}");
                    for w in &out.why {
                        let _ = writeln!(o, "    {}", t(w));
                    }
                    for s in &out.statements {
                        let _ = writeln!(o, "    {} ({}):", t(&s.statement), t(&s.effect));
                        for line in s.text.lines() {
                            let _ = writeln!(o, "      {}", t(line));
                        }
                    }
                    if out.policies.is_empty() {
                        let _ = writeln!(o, "    policies in play: none");
                    }
                    for p in &out.policies {
                        let _ = writeln!(
                            o,
                            "    policy in play: {} ({}){}",
                            t(p.name.as_deref().unwrap_or("?")),
                            t(&p.kind),
                            p.sha256
                                .as_deref()
                                .map(|d| format!(" sha256 {}", d.get(..12).unwrap_or(d)))
                                .unwrap_or_default()
                        );
                    }
                }
                (None, None) => {}
            }
        }
        if c.then.decision.is_some()
            && c.now.decision.is_some()
            && c.then.decision != c.now.decision
        {
            let _ = writeln!(
                o,
                "  the decision changed since: the policies now decide otherwise"
            );
        }
        if !c.redacted.is_empty() {
            let _ = writeln!(o, "  not recorded: {}", t(&c.redacted.join(", ")));
        }
    }
    o
}

#[cfg(test)]
mod tests;
