//! Authorization: the one stage that decides whether a principal may do what a request asks.
//!
//! Every endpoint says what it needs by implementing [`Describe`]: the (action, resource) pairs
//! that must be allowed, or, for the few calls AWS lets anyone make, that no permission is needed
//! and why. [`authorize`] decides every pair with the gateway's [`Authorize`] implementation,
//! records each decision for the audit trail, and only when all are allowed returns an
//! [`Authorized`] value: the one input the handlers accept, which nothing outside this module can
//! build. So a handler cannot run for a request that was not authorized, and a new endpoint does
//! not compile until it describes itself.
//!
//! [`PolicyAuthorizer`] decides with AWS's evaluation logic. The resource-based policy in play is
//! found here from the resource, never passed in by a caller:
//! - an S3 bucket or object: the bucket's policy (an ordinary resource policy, and S3 Block
//!   Public Access's `RestrictPublicBuckets`);
//! - an IAM role, for `sts:AssumeRole`, `sts:TagSession` and `sts:SetSourceIdentity`: the role's
//!   trust policy, which must itself admit the caller ([`keyhole_policy::ResourceGate::RoleTrust`]);
//! - a keyhole job, for `keyhole:GetJob`, `keyhole:FinishJob` and `keyhole:GetJobReport`: a grant
//!   to the job's creator, bound to the creator's unique id ([`crate::jobs::grant::owner_policy`]).
//!
//! [`evaluate`] is the only call of the policy engine outside the `keyhole-policy` crate (the
//! IAM policy simulator calls it too), so there is one place where decisions are made.
//!
//! # Security
//! - Deny by default: a described call with no permission to check is refused, and every pair
//!   must be allowed.
//! - Some refusals are rules of the API rather than of policies, and are made here too, before
//!   any policy is read: the root user and job sessions cannot assume roles, GetSessionToken
//!   credentials cannot call IAM (keyhole has no MFA), anonymous callers reach only S3.
//! - Denials never echo policy text; they name the action, the resource and the reason class, as
//!   AWS's messages do.

use std::sync::Arc;

use keyhole_policy::{CompiledPolicy, Context, Decision, Policies, Request, RequestPrincipal};

use crate::audit::{Check, Checks, Decision as AuditDecision};
use crate::auth::Principal;
use crate::error::S3Error;
use crate::Gateway;

/// One (action, resource) pair a request must be allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    /// IAM action, e.g. `s3:GetObject`.
    pub action: &'static str,
    /// Resource ARN, e.g. `arn:aws:s3:::bucket/key`, or `*`.
    pub resource: String,
}

impl Permission {
    /// The pair (`action` on `resource`).
    pub fn new(action: &'static str, resource: impl Into<String>) -> Permission {
        Permission {
            action,
            resource: resource.into(),
        }
    }
}

/// What a call needs before its handler may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// Every pair must be allowed, in order (the first denial is the answer).
    Permissions(Vec<Permission>),
    /// No permission is needed; `reason` says why (AWS's documentation), and the audit trail
    /// records it as the decision.
    Unconditional {
        /// The action the call is (recorded as allowed).
        action: &'static str,
        /// Why no policy is consulted.
        reason: &'static str,
    },
    /// Each item the request's body names needs `action` (DeleteObjects: `s3:DeleteObject` per
    /// key). Nothing is decided before the body is read; the handler authorizes each item with
    /// [`authorize`] (its store call takes the [`Authorized`] item), and refuses that item alone.
    PerItem {
        /// The action each item needs.
        action: &'static str,
    },
}

/// A call that can be authorized: it says what it needs, and the condition keys it adds.
pub trait Describe {
    /// The permissions the call needs.
    fn requirement(&self) -> Requirement;

    /// Adds the call's own condition keys (`iam:PermissionsBoundary`, `sts:RoleSessionName`,
    /// `aws:RequestTag/*`, ...) to the request's context.
    fn add_context(&self, _context: &mut Context) {}
}

/// Proof that a call was authorized: only [`authorize`] makes one.
#[derive(Debug)]
pub struct Authorized<T> {
    call: T,
    _sealed: Sealed,
}

/// Keeps [`Authorized`] from being built outside this module.
#[derive(Debug)]
struct Sealed;

impl<T> Authorized<T> {
    /// The authorized call.
    pub fn call(&self) -> &T {
        &self.call
    }

    /// The authorized call, by value.
    pub fn into_call(self) -> T {
        self.call
    }
}

/// One decision: the outcome and the statements that made it.
#[derive(Debug)]
pub struct Verdict {
    /// `Ok` only when the pair is allowed.
    pub outcome: Result<(), S3Error>,
    /// The statements that decided (the allows that granted or the denies that refused), as
    /// the audit trail names them; empty when none did (the root user, an implicit deny).
    pub statements: Vec<String>,
    /// For an implicit deny: the conditions that kept the statements for the action from
    /// applying, with the request's values (`IpAddress on aws:SourceIp not met by 127.0.0.2`).
    /// Recorded in the audit trail only: AWS's answers to clients never name policy conditions.
    pub unmet: Vec<String>,
    /// For a denial by the policy engine: what it was made with (the principal, the policies by
    /// digest, the condition keys), for the audit trail's `keyhole audit explain`. Built only
    /// when the pair is denied, so an allowed request pays nothing for it.
    pub evaluation: Option<Box<crate::audit::event::Evaluation>>,
}

impl Verdict {
    fn of(outcome: Result<(), S3Error>) -> Verdict {
        Verdict {
            outcome,
            statements: Vec::new(),
            unmet: Vec::new(),
            evaluation: None,
        }
    }
}

/// Decides whether a principal may perform one (action, resource) pair in a request context.
/// The gateway cannot be built without one.
pub trait Authorize: Send + Sync + std::fmt::Debug {
    /// The decision and the statements that made it.
    fn decide(&self, principal: &Principal, permission: &Permission, context: &Context) -> Verdict;

    /// A refusal that is a rule of the API rather than of any policy (who may call what at
    /// all); it applies to calls that need no permission too. [`Authorize::decide`] applies it
    /// first.
    fn api_refusal(&self, principal: &Principal, permission: &Permission) -> Option<S3Error>;
}

/// The authorization stage: decides every pair `call` needs (in `context` plus the call's own
/// keys), records each decision in `checks`, and returns the call as [`Authorized`] only when
/// all were allowed; the first denial is the error.
pub async fn authorize<T: Describe>(
    gw: &Gateway,
    principal: &Principal,
    call: T,
    context: &Context,
    checks: &Checks,
) -> Result<Authorized<T>, S3Error> {
    let mut own = None;
    let context = {
        let mut extra = Context::new();
        call.add_context(&mut extra);
        if extra.is_empty() {
            context
        } else {
            let mut merged = context.clone();
            merged.extend(extra);
            &*own.insert(merged)
        }
    };
    match call.requirement() {
        Requirement::Unconditional { action, reason } => {
            let permission = Permission::new(action, "*");
            if let Some(refusal) = gw.authz.api_refusal(principal, &permission) {
                let verdict = Verdict::of(Err(refusal));
                checks.push(check_record(principal, &permission, &verdict));
                verdict.outcome?;
            }
            checks.push(Check {
                action: action.to_owned(),
                resource: "*".to_owned(),
                decision: AuditDecision::Allow,
                reason: reason.to_owned(),
                statements: Vec::new(),
                evaluation: None,
                same_evaluation_as: None,
            });
        }
        Requirement::PerItem { .. } => {}
        Requirement::Permissions(list) => {
            // INVARIANT: a call that needs nothing is a description bug; it must fail closed.
            if list.is_empty() {
                return Err(S3Error::access_denied("Access Denied"));
            }
            for permission in &list {
                let verdict =
                    decide_with_stored_facts(gw, principal, permission, context, checks).await?;
                checks.push(check_record(principal, permission, &verdict));
                verdict.outcome?;
            }
        }
    }
    Ok(Authorized {
        call,
        _sealed: Sealed,
    })
}

/// An authorized call of each endpoint, for its handler.
#[derive(Debug)]
pub enum AuthorizedCall {
    /// An S3 operation.
    S3(Authorized<crate::s3::S3Call>),
    /// An IAM action.
    Iam(Authorized<crate::iam::IamCall>),
    /// An STS action.
    Sts(Authorized<crate::sts::StsCall>),
    /// A keyhole API action.
    Keyhole(Authorized<Box<crate::jobs::ApiCall>>),
    /// A job's credentials.
    JobCredentials(Authorized<crate::jobs::CredentialFetch>),
    /// Access Analyzer's ValidatePolicy.
    ValidatePolicy(Authorized<crate::analyzer::ValidatePolicy>),
    /// The metrics.
    Metrics,
}

impl Authorized<crate::endpoint::Call> {
    /// The authorized call of its endpoint.
    pub fn split(self) -> AuthorizedCall {
        use crate::endpoint::Call;
        fn sealed<T>(call: T) -> Authorized<T> {
            Authorized {
                call,
                _sealed: Sealed,
            }
        }
        match self.call {
            Call::S3(c) => AuthorizedCall::S3(sealed(c)),
            Call::Iam(c) => AuthorizedCall::Iam(sealed(c)),
            Call::Sts(c) => AuthorizedCall::Sts(sealed(c)),
            Call::Keyhole(c) => AuthorizedCall::Keyhole(sealed(c)),
            Call::JobCredentials(c) => AuthorizedCall::JobCredentials(sealed(c)),
            Call::ValidatePolicy(c) => AuthorizedCall::ValidatePolicy(sealed(c)),
            Call::Metrics => AuthorizedCall::Metrics,
        }
    }
}

/// The audit record of one decision.
fn check_record(principal: &Principal, permission: &Permission, verdict: &Verdict) -> Check {
    let (decision, reason) = match &verdict.outcome {
        Ok(()) => (
            AuditDecision::Allow,
            format!("allowed for the {} principal", principal.kind()),
        ),
        Err(e) if verdict.unmet.is_empty() => (AuditDecision::Deny, e.message().to_owned()),
        Err(e) => (
            AuditDecision::Deny,
            format!("{} (unmet: {})", e.message(), verdict.unmet.join("; ")),
        ),
    };
    Check {
        action: permission.action.to_owned(),
        resource: permission.resource.clone(),
        decision,
        reason,
        statements: verdict.statements.clone(),
        evaluation: verdict.evaluation.clone(),
        same_evaluation_as: None,
    }
}

/// The decision on `permission`, with the object's tags as `s3:ExistingObjectTag/KEY` when a
/// policy in play refers to them. The tags are read only when the request could be allowed:
/// first a bound with every tag condition taken at its most permissive
/// ([`Context::assume_unknown`]); when even that denies (and so does the context without tags),
/// no tag is read and the denial stands, so a request keyhole denies never reaches an
/// upstream store, not even for its tags.
async fn decide_with_stored_facts(
    gw: &Gateway,
    principal: &Principal,
    permission: &Permission,
    context: &Context,
    checks: &Checks,
) -> Result<Verdict, S3Error> {
    let Some((bucket, key)) = existing_object(gw, principal, permission) else {
        return Ok(gw.authz.decide(principal, permission, context));
    };
    let mut bound = context.clone();
    bound.assume_unknown(EXISTING_OBJECT_TAG);
    if gw
        .authz
        .decide(principal, permission, &bound)
        .outcome
        .is_err()
    {
        let untagged = gw.authz.decide(principal, permission, context);
        // The bound makes a denial certain; the check keeps a tag-less answer from ever
        // standing in for one that depends on tags.
        if untagged.outcome.is_err() {
            return Ok(untagged);
        }
    }
    // A version action judges the version the request names (`s3:versionid`), never the
    // current one: its tags are read and the read is held to it.
    let version = keyhole_policy::s3::action(permission.action)
        .filter(|a| keyhole_policy::s3::action_accepts_key(a, "s3:versionid"))
        .and_then(|_| context.get("s3:versionid"))
        .and_then(|v| v.values().first())
        .map(String::as_str);
    let tagged =
        with_existing_object_tags(gw, bucket, key, version, context, checks, permission).await?;
    Ok(gw.authz.decide(principal, permission, &tagged))
}

/// The prefix of the condition keys that carry an object's stored tags.
const EXISTING_OBJECT_TAG: &str = "s3:ExistingObjectTag/";

/// The bucket and key whose tags `permission` would be decided with: an action that accepts
/// `s3:ExistingObjectTag/*`, on an object, where a policy that can decide refers to it.
fn existing_object<'p>(
    gw: &Gateway,
    principal: &Principal,
    permission: &'p Permission,
) -> Option<(&'p str, &'p str)> {
    let action = keyhole_policy::s3::action(permission.action)?;
    if !keyhole_policy::s3::action_accepts_key(action, "s3:ExistingObjectTag/k") {
        return None;
    }
    let (bucket, key) = permission
        .resource
        .strip_prefix("arn:aws:s3:::")
        .and_then(|r| r.split_once('/'))?;
    wants_existing_object_tags(gw, principal, bucket).then_some((bucket, key))
}

/// The context plus `s3:ExistingObjectTag/KEY` for each tag of `bucket`/`key`, an object whose
/// tags a policy that can decide refers to, for an action that accepts the key (AWS supplies it
/// only to those actions: https://docs.aws.amazon.com/AmazonS3/latest/userguide/tagging-and-policies.html;
/// [`existing_object`] decides). The tags are read from whichever backend keeps the bucket, and
/// what they were read from is recorded in `checks` for the handler ([`ObjectFacts`]). An object that does not exist has no tags; a failure to read them (the
/// store, or the upstream, failing or refusing) fails the request: a decision is never made
/// without the facts it depends on. Tag keys that differ only in case (S3 keeps both, condition
/// keys cannot tell them apart) fail the request too, rather than let one hide the other.
async fn with_existing_object_tags(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    version: Option<&str>,
    context: &Context,
    checks: &Checks,
    permission: &Permission,
) -> Result<Context, S3Error> {
    let facts = read_object_facts(gw, bucket, key, version).await?;
    let mut tagged = context.clone();
    let mut seen = std::collections::HashSet::new();
    for (k, v) in &facts.tags {
        if !seen.insert(k.to_lowercase()) {
            let refusal = S3Error::access_denied(format!(
                "Access Denied: the object has several tags named `{k}` in different cases, and the policies' s3:ExistingObjectTag conditions cannot tell them apart"
            ));
            // A rule's refusal, recorded as this pair's denial (review 18; only this one: a
            // refusal of the tag read itself is not a decision, review 19).
            checks.push(crate::audit::event::Check::rule_denial(
                permission.action,
                permission.resource.clone(),
                refusal.message(),
            ));
            return Err(refusal);
        }
        tagged.insert(&format!("{EXISTING_OBJECT_TAG}{k}"), v.as_str());
    }
    checks.record_facts(bucket, key, facts);
    Ok(tagged)
}

/// How many times the object is looked at again when it changes while its tags are read.
const FACT_ATTEMPTS: usize = 3;

/// The object's tags with the ETag of the version they belong to: its ETag, its tags, its ETag
/// again, until both ETags agree (an overwrite in between replaces body and tags together).
/// Only a missing object counts as "no tags": a 404 on the tag read of an object that exists
/// (`NoSuchTagSet` from a store or a proxy) fails the request (review 8, F5).
async fn read_object_facts(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Result<crate::audit::ObjectFacts, S3Error> {
    for _ in 0..FACT_ATTEMPTS {
        let Some((before, with_tags)) = object_version(gw, bucket, key, version).await? else {
            return Ok(crate::audit::ObjectFacts {
                etag: None,
                tags: Vec::new(),
            });
        };
        // A backend that reads the tags with the object (the local store) gives them for this
        // very version: no second look is needed.
        if let Some(tags) = with_tags {
            return Ok(crate::audit::ObjectFacts {
                etag: Some(before),
                tags,
            });
        }
        let tags = match gw.storage.get_tags(bucket, key, version).await {
            Ok(tags) => tags,
            // Deleted in between: look again.
            Err(e) if e.code() == "NoSuchKey" => continue,
            // Anything else (a throttled, timed-out or refused tag read, a 404 that is not "no
            // such key") fails the request: taking it as "no tags" let a Deny on
            // s3:ExistingObjectTag fail open (reviews of the upstream path, 7 F1 and 8 F5).
            Err(e) => return Err(e),
        };
        let after = object_version(gw, bucket, key, version).await?;
        if after.as_ref().map(|(v, _)| v) == Some(&before) {
            return Ok(crate::audit::ObjectFacts {
                etag: Some(before),
                tags,
            });
        }
    }
    Err(changed_meanwhile())
}

/// An object's version (ETag, last-modified second) and, from a backend that reads them with
/// the object, its tags.
pub type ObjectVersion = ((String, i64), Option<Vec<(String, String)>>);

/// The answer when the object changed while the request was decided or served: retry.
pub fn changed_meanwhile() -> S3Error {
    S3Error::new(
        "SlowDown",
        http::StatusCode::SERVICE_UNAVAILABLE,
        "The object changed while the request was being decided; please retry",
    )
}

/// The object's version `version` (`None`: the current one) as (ETag, last-modified second),
/// with its tags when the backend reads them with the object; `None` when there is no such
/// object or version (or no object can have the key, or the version is a delete marker).
pub async fn object_version(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Result<Option<ObjectVersion>, S3Error> {
    match gw
        .storage
        .get_object(crate::backend::GetObject::head_version(
            bucket, key, version,
        ))
        .await
    {
        Ok(crate::backend::Got::Object(o)) => Ok(Some((
            (o.head.etag, o.head.last_modified.timestamp()),
            o.head.tags,
        ))),
        Ok(crate::backend::Got::NotModified {
            etag,
            last_modified,
        }) => Ok(Some(((etag, last_modified.timestamp()), None))),
        Err(e)
            if e.status() == http::StatusCode::NOT_FOUND
                || e.status() == http::StatusCode::METHOD_NOT_ALLOWED
                || matches!(e.code(), "KeyTooLongError" | "InvalidObjectName") =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Whether a policy that can decide for `principal` on `bucket` refers to
/// `s3:ExistingObjectTag/*`.
fn wants_existing_object_tags(gw: &Gateway, principal: &Principal, bucket: &str) -> bool {
    let refers = |p: &CompiledPolicy| {
        p.context_keys()
            .iter()
            .any(|k| k.starts_with("s3:existingobjecttag/"))
    };
    if gw
        .state
        .snapshot()
        .bucket_policies
        .get(bucket)
        .is_some_and(|p| refers(p))
    {
        return true;
    }
    let policies_refer = |p: &Principal| {
        let (identity, session, boundary) = p.policies();
        identity.iter().any(refers)
            || session.into_iter().flatten().any(refers)
            || boundary.is_some_and(refers)
    };
    // A role-less job's requests are decided a second time as its creator: the creator's own
    // policies are in play too (review 8, F1: a creator's tag Deny was skipped in its jobs).
    policies_refer(principal)
        || matches!(principal, Principal::Session { creator: Some(c), .. } if policies_refer(c))
}

/// The one call of the policy engine outside the `keyhole-policy` crate: every decision of the
/// gateway, every answer of the IAM policy simulator, and what access reports count as granted
/// ([`crate::access`]) are made here.
pub fn evaluate(policies: &Policies<'_>, request: &Request) -> Decision {
    keyhole_policy::Evaluator::evaluate(policies, request)
}

/// A deciding statement as the audit trail names it: `POLICY statement INDEX (Sid SID)`, e.g.
/// ``inline policy `buckets` statement 0 (Sid ReadDatasets)`` (the policy's kind when it has no
/// name).
pub fn describe_statement(s: &keyhole_policy::StatementRef) -> String {
    let policy = s
        .policy_name
        .clone()
        .unwrap_or_else(|| s.policy_kind.describe().to_owned());
    let mut out = format!("{policy} statement {}", s.statement_index);
    if let Some(sid) = &s.sid {
        out.push_str(&format!(" (Sid {sid})"));
    }
    out
}

/// The conditions that kept statements for the action from applying (at most three), with the
/// request's values: what an operator needs to see why an allow did not apply.
fn unmet_conditions(decision: &Decision, context: &Context) -> Vec<String> {
    decision
        .failures
        .iter()
        .filter_map(|f| match &f.element {
            keyhole_policy::FailedElement::Condition {
                operator,
                key,
                key_missing,
            } => {
                let value = if *key_missing {
                    "no value for it".to_owned()
                } else {
                    // As the trail may hold it: no secret, no presigned URL (review 15).
                    context
                        .get(key)
                        .map(|v| {
                            v.values()
                                .iter()
                                .map(|x| crate::audit::explain::recordable(key, x))
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default()
                };
                // An empty value (a listing without a prefix) is shown as such, not as nothing.
                let value = if value.is_empty() {
                    "an empty value".to_owned()
                } else {
                    value
                };
                Some(format!(
                    "{} requires {operator} on {key}, the request has {value}",
                    describe_statement(&f.statement)
                ))
            }
            _ => None,
        })
        .take(3)
        .collect()
}

/// Why a job's credentials token was refused by its job's rule: the request came from an
/// address outside the job's `source_ip`, or after its window; `None` when neither explains it.
fn job_token_reason(principal: &Principal, context: &Context) -> Option<String> {
    let Principal::JobToken { job, .. } = principal else {
        return None;
    };
    let spec = &job.record.job;
    let first = |key: &str| {
        context
            .get(key)
            .and_then(|v| v.values().first().cloned())
            .unwrap_or_default()
    };
    let source = first("aws:SourceIp");
    let inside = spec.source_ip.iter().any(|c| {
        keyhole_policy::condition::ip::Cidr::parse(c).is_some_and(|c| c.contains_str(&source))
    });
    if !inside {
        return Some(format!(
            "because job {} may be used only from {}, not from {source}",
            job.record.id,
            spec.source_ip.join(", ")
        ));
    }
    let now = chrono::DateTime::parse_from_rfc3339(&first("aws:CurrentTime")).ok()?;
    (now >= spec.end).then(|| {
        format!(
            "because job {}'s window ended at {}",
            job.record.id,
            crate::jobs::spec::rfc3339(spec.end)
        )
    })
}

/// The reason part of a message [`denial_message`] built (`with an explicit deny in an
/// identity-based policy`, `because no ...`), without the principal it names.
pub fn denial_reason(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once(" on resource: \"")?;
    let (_, reason) = rest.split_once("\" ")?;
    Some(reason.trim()).filter(|r| !r.is_empty())
}

/// Builds AWS's denial message: `User: ARN is not authorized to perform: ACTION on resource:
/// "RESOURCE" REASON`, where REASON is `because no ... allows ...` or `with an explicit deny in
/// ...` (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html).
pub fn denial_message(principal_arn: &str, permission: &Permission, reason: &str) -> String {
    format!(
        "User: {principal_arn} is not authorized to perform: {} on resource: \"{}\" {reason}",
        permission.action, permission.resource
    )
}

/// Authorization by the IAM policy engine.
///
/// The policies in play are the principal's identity policies (a user's inline and attached
/// policies and those of its groups; a session's role policies and session policies; a job
/// session's job policy), its permissions boundary, and the resource's policy (see the module
/// documentation), decided with AWS's evaluation logic.
/// - The root user bypasses identity checks but not a bucket policy's explicit deny (and can
///   always manage the bucket policy).
/// - Anonymous callers get only what a bucket policy grants to everyone, and nothing while
///   RestrictPublicBuckets is in force.
#[derive(Debug, Clone)]
pub struct PolicyAuthorizer {
    /// The account id.
    pub account_id: String,
    /// Identities, bucket policies, trust policies and Block Public Access settings (read from
    /// the snapshot).
    pub state: Arc<crate::state::State>,
    /// Jobs (for the grant to a job's creator).
    pub jobs: Arc<crate::jobs::store::JobStore>,
    /// The region (job ARNs name it).
    pub region: String,
}

/// The bucket an S3 resource ARN names, if it is one.
pub(crate) fn bucket_of(resource: &str) -> Option<&str> {
    let rest = resource.strip_prefix("arn:aws:s3:::")?;
    Some(rest.split_once('/').map_or(rest, |(b, _)| b)).filter(|b| !b.is_empty())
}

/// The trust-policy actions: evaluated against the role's trust policy.
const TRUST_ACTIONS: [&str; 4] = [
    "sts:AssumeRole",
    "sts:AssumeRoleWithWebIdentity",
    "sts:TagSession",
    "sts:SetSourceIdentity",
];

fn is_trust_action(action: &str) -> bool {
    TRUST_ACTIONS.iter().any(|a| a.eq_ignore_ascii_case(action))
}

impl Authorize for PolicyAuthorizer {
    fn decide(&self, principal: &Principal, permission: &Permission, context: &Context) -> Verdict {
        if let Some(refusal) = self.api_refusal(principal, permission) {
            return Verdict::of(Err(refusal));
        }
        let verdict = self.decide_one(principal, permission, context);
        let Principal::Session {
            creator: Some(creator),
            arn,
            ..
        } = principal
        else {
            return verdict;
        };
        if verdict.outcome.is_err() {
            return verdict;
        }
        // A role-less job can never do what its creator could not: the request is decided again
        // as the creator as it is now, with the creator's own keys (its ARN, user name, unique
        // id, tags, token issue time) in place of the job session's, so policies and bucket
        // policies aimed at the creator bind its jobs too (crate::jobs::grant).
        let mut as_creator = crate::context::rebase_principal(context, creator, &self.account_id);
        if as_creator.get("aws:TokenIssueTime").is_none() {
            // A creator that used its long-term keys: the job is its delegation, like
            // GetFederationToken's, whose requests carry the session's issue time and are bound
            // by the policies of the IAM user that created them ("Denying access to temporary
            // security credentials issued before a specific time ... attach a policy ... to the
            // IAM user that created the temporary security credentials",
            // https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_temp_control-access_disable-perms.html).
            // The delegation was issued when the job was created.
            let created = match principal {
                Principal::Session { claims, .. } => claims
                    .job
                    .as_deref()
                    .and_then(|id| self.jobs.active(id))
                    .map(|j| j.record.created_at),
                _ => None,
            };
            if let Some(t) = created.and_then(|t| chrono::DateTime::from_timestamp(t, 0)) {
                as_creator.insert(
                    "aws:TokenIssueTime",
                    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                );
                as_creator.insert("aws:MultiFactorAuthPresent", "false");
            }
        }
        let second = self.decide_one(creator, permission, &as_creator);
        match second.outcome {
            Ok(()) => Verdict {
                outcome: Ok(()),
                statements: verdict
                    .statements
                    .into_iter()
                    .chain(second.statements)
                    .collect(),
                unmet: Vec::new(),
                evaluation: None,
            },
            // The job's code gets the refusal and its kind (an explicit deny, or no allow, in
            // which kind of policy) but not the creator's ARN (a jobs sweep, L3); the audit
            // record keeps the whole denial.
            Err(e) => Verdict {
                outcome: Err(S3Error::access_denied(format!(
                    "{arn} is a job session, and the job's creator may not perform {} on resource: \"{}\"{}",
                    permission.action,
                    permission.resource,
                    denial_reason(e.message())
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ))),
                statements: second.statements,
                unmet: second.unmet,
                evaluation: second.evaluation,
            },
        }
    }

    fn api_refusal(&self, principal: &Principal, permission: &Permission) -> Option<S3Error> {
        self.api_rule(principal, permission)
    }
}

impl PolicyAuthorizer {
    /// One principal's decision on one permission, by the policy engine.
    fn decide_one(
        &self,
        principal: &Principal,
        permission: &Permission,
        context: &Context,
    ) -> Verdict {
        let snapshot = self.state.snapshot();
        let job_policy;
        let (resource, gate, restrict_public) = if let Some(bucket) =
            bucket_of(&permission.resource)
        {
            let policy = snapshot.bucket_policies.get(bucket).map(|p| &**p);
            // RestrictPublicBuckets only matters when there is a policy to restrict.
            let restrict =
                policy.is_some() && snapshot.effective_bpa(bucket).restrict_public_buckets;
            (policy, keyhole_policy::ResourceGate::Union, restrict)
        } else if is_trust_action(permission.action) {
            // A role that does not exist has no trust policy: nobody is admitted, and the caller
            // learns no more than that (AWS answers AccessDenied too).
            let trust = snapshot
                .roles
                .values()
                .find(|r| r.arn == permission.resource)
                .map(|r| &*r.trust);
            (trust, keyhole_policy::ResourceGate::RoleTrust, false)
        } else if let Some(job) = self.job_of(&permission.resource) {
            job_policy = self.jobs.meta(job).and_then(|m| {
                crate::jobs::grant::owner_policy(m.grant.as_ref()?, &permission.resource, &snapshot)
            });
            (
                job_policy.as_ref(),
                keyhole_policy::ResourceGate::Union,
                false,
            )
        } else {
            (None, keyhole_policy::ResourceGate::Union, false)
        };
        let (identity, session, boundary) = principal.policies();
        let (arn, request_principal, unique_id) = match principal {
            Principal::Root { .. } => {
                // The root user needs no identity policy: only a resource policy can refuse it.
                if resource.is_none() && gate == keyhole_policy::ResourceGate::Union {
                    return Verdict::of(Ok(()));
                }
                (
                    principal.arn(&self.account_id),
                    RequestPrincipal::Root {
                        account: self.account_id.clone(),
                    },
                    None,
                )
            }
            Principal::Anonymous => {
                if resource.is_none() {
                    // Anonymous callers get only what a resource policy grants, and there is none.
                    let none = Policies {
                        identity: &[],
                        session: None,
                        boundaries: &[],
                        resource: None,
                        restrict_public_buckets: false,
                        resource_gate: gate,
                    };
                    return Verdict {
                        evaluation: Some(Box::new(crate::audit::explain::record(
                            &none,
                            &RequestPrincipal::Anonymous,
                            None,
                            context,
                        ))),
                        ..Verdict::of(Err(S3Error::access_denied("Access Denied")))
                    };
                }
                ("anonymous".to_owned(), RequestPrincipal::Anonymous, None)
            }
            Principal::User { arn, id, .. } => (
                arn.clone(),
                RequestPrincipal::User {
                    arn: arn.clone(),
                    account: self.account_id.clone(),
                },
                Some(id.clone()),
            ),
            Principal::Session {
                arn,
                role_arn,
                claims,
                ..
            } => {
                if role_arn.is_empty() {
                    // A session no role backs (a role-less job): its own principal, like a
                    // federated user, whose job policy is a session policy (it also limits what a
                    // resource policy grants to everyone).
                    (
                        arn.clone(),
                        RequestPrincipal::Session {
                            session_arn: arn.clone(),
                            role_arn: arn.clone(),
                            account: self.account_id.clone(),
                        },
                        None,
                    )
                } else {
                    (
                        arn.clone(),
                        RequestPrincipal::Session {
                            session_arn: arn.clone(),
                            role_arn: role_arn.clone(),
                            account: self.account_id.clone(),
                        },
                        Some(claims.role_id.clone()),
                    )
                }
            }
            // A federated web identity: no identity policies, named in trust policies as
            // `{"Federated": PROVIDER_ARN}` (matched by that ARN).
            Principal::WebIdentity { identity, .. } => (
                identity.provider_arn.clone(),
                RequestPrincipal::federated(&identity.provider_arn, &self.account_id),
                None,
            ),
            Principal::JobToken { arn, .. } => (
                arn.clone(),
                RequestPrincipal::User {
                    arn: arn.clone(),
                    account: self.account_id.clone(),
                },
                None,
            ),
        };
        let mut request = Request::new(
            request_principal,
            permission.action,
            &permission.resource,
            None,
            context.clone(),
        );
        if let Some(id) = unique_id {
            request = request.with_unique_id(id);
        }
        let set = Policies {
            identity,
            session,
            boundaries: boundary.map_or(&[][..], std::slice::from_ref),
            resource,
            restrict_public_buckets: restrict_public,
            resource_gate: gate,
        };
        let decision = evaluate(&set, &request);
        let statements: Vec<String> = decision.matched.iter().map(describe_statement).collect();
        if decision.kind == keyhole_policy::DecisionKind::Allowed {
            return Verdict {
                outcome: Ok(()),
                statements,
                unmet: Vec::new(),
                evaluation: None,
            };
        }
        let unmet = unmet_conditions(&decision, context);
        let evaluation = Some(Box::new(crate::audit::explain::record(
            &set,
            request.principal(),
            request.unique_id(),
            context,
        )));
        if matches!(principal, Principal::Anonymous) {
            return Verdict {
                outcome: Err(S3Error::access_denied("Access Denied")),
                statements,
                unmet,
                evaluation,
            };
        }
        // A job's credentials token is refused by its job's own rule (its addresses, its
        // window): the message says which, as JOBS.md shows it, rather than naming an
        // identity-based policy the holder never sees (a jobs sweep, M3).
        let job_rule = (permission.action == "keyhole:GetJobCredentials")
            .then(|| job_token_reason(principal, context))
            .flatten();
        let reason = match (job_rule, decision.reason) {
            (Some(rule), _) => rule,
            (None, Some(keyhole_policy::DenialReason::ExplicitDeny(kind))) => {
                format!("with an explicit deny in {}", kind.with_article())
            }
            (None, Some(keyhole_policy::DenialReason::NoAllow(kind))) => format!(
                "because no {} allows the {} action",
                kind.describe(),
                permission.action
            ),
            (None, None) => format!(
                "because no identity-based policy allows the {} action",
                permission.action
            ),
        };
        Verdict {
            outcome: Err(S3Error::access_denied(denial_message(
                &arn, permission, &reason,
            ))),
            statements,
            unmet,
            evaluation,
        }
    }

    /// The job id a keyhole job ARN of this gateway names.
    fn job_of<'r>(&self, resource: &'r str) -> Option<&'r str> {
        resource
            .strip_prefix("arn:aws:keyhole:")?
            .strip_prefix(self.region.as_str())?
            .strip_prefix(':')?
            .strip_prefix(self.account_id.as_str())?
            .strip_prefix(":job/")
            .filter(|id| *id != "*")
    }

    /// Refusals that are rules of the API, not of policies.
    fn api_rule(&self, principal: &Principal, permission: &Permission) -> Option<S3Error> {
        let action = permission.action;
        let refuse = |why: &str| {
            Some(S3Error::access_denied(denial_message(
                &principal.arn(&self.account_id),
                permission,
                why,
            )))
        };
        let service = action.split_once(':').map_or("", |(s, _)| s);
        match principal {
            // "You cannot call AssumeRole with the root user credentials"
            // (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html); a job
            // with a role is an AssumeRole by its creator.
            Principal::Root { .. } if action == "sts:AssumeRole" => {
                refuse("because the root user cannot assume roles; use an IAM user")
            }
            // GetSessionToken credentials "cannot call any IAM API operations unless MFA
            // authentication information is included in the request"
            // (https://docs.aws.amazon.com/STS/latest/APIReference/API_GetSessionToken.html);
            // keyhole has no MFA, so they never can.
            Principal::User {
                session: Some(_), ..
            } if service == "iam" => refuse(
                "because temporary credentials from GetSessionToken cannot call IAM without MFA, which keyhole does not have; use the user's access key",
            ),
            // GetSessionToken "must be called by using the long-term AWS security credentials
            // of an IAM user"
            // (https://docs.aws.amazon.com/STS/latest/APIReference/API_GetSessionToken.html);
            // keyhole does not give the root user temporary credentials (they would carry root's
            // powers past any key rotation).
            Principal::Root { .. } if action == "sts:GetSessionToken" => refuse(
                "because keyhole does not issue temporary credentials to the root user; call GetSessionToken with an IAM user's access key",
            ),
            Principal::User {
                session: Some(_), ..
            }
            | Principal::Session { .. }
                if action == "sts:GetSessionToken" =>
            {
                refuse("because GetSessionToken cannot be called with session credentials; call it with an IAM user's access key")
            }
            // A job's credentials end with the job; a session they created would not.
            Principal::Session { claims, .. }
                if claims.job.is_some() && is_trust_action(action) =>
            {
                refuse("because job sessions cannot assume roles: a job's credentials end with the job, a session they created would not")
            }
            // A job token fetches its own job's credentials and nothing else.
            Principal::JobToken { .. } if action != "keyhole:GetJobCredentials" => {
                refuse("because a job's credentials token only fetches that job's credentials")
            }
            // A web identity token buys a role's session and nothing else.
            Principal::WebIdentity { .. }
                if !matches!(action, "sts:AssumeRoleWithWebIdentity" | "sts:TagSession") =>
            {
                refuse("because a web identity token can only be exchanged for a role's session (AssumeRoleWithWebIdentity)")
            }
            // Only a web identity token can be exchanged for a session this way.
            _ if action == "sts:AssumeRoleWithWebIdentity"
                && !matches!(principal, Principal::WebIdentity { .. }) =>
            {
                refuse("because AssumeRoleWithWebIdentity is authenticated by a web identity token, not by AWS credentials")
            }
            Principal::Anonymous
                if service != "s3"
                    && action != "keyhole:GetMetrics"
                    && action != "keyhole:CorsPreflight" =>
            {
                Some(S3Error::access_denied(
                    "Access Denied: this API needs a signed request",
                ))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
