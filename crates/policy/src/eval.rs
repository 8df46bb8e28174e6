//! Compiled policies and the evaluator: request → [`Decision`] and why.
//!
//! Logic from "Policy evaluation logic"
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html>,
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic_policy-eval-denyallow.html>,
//! cross-account: <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic-cross-account.html>):
//!
//! 1. An applicable `Deny` in any identity-based, resource-based, boundary or session policy
//!    gives `ExplicitlyDenied`.
//! 2. The root user of the resource's account bypasses identity checks (it has no identity
//!    policies) but not a resource policy's explicit deny; it can always get, put and delete
//!    the bucket policy (<https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteBucketPolicy.html>:
//!    "the root principal ... can perform the GetBucketPolicy, PutBucketPolicy, and
//!    DeleteBucketPolicy API actions, even if their bucket policy explicitly denies").
//! 3. Same account: a resource-policy `Allow` naming an IAM user ARN or the exact role-session
//!    ARN is final; `*` is not limited by boundaries but, for a role session, still needs the
//!    session policy; one naming the role ARN stands in for an identity-based allow but is still
//!    limited by the permissions boundary and the session policy; one naming only the account
//!    delegates to identity-based policies.
//! 4. Otherwise an identity-based allow is needed, and every boundary and the session policies
//!    must also allow (intersection). Several session policies (an inline one and managed ones
//!    passed as `PolicyArns`) are one policy type: one of them allowing is enough.
//! 5. Cross-account: the identity side (identity ∩ boundary ∩ session) and the resource policy
//!    must both allow.
//!
//! A decision through [`Evaluator::is_allowed`] allocates nothing; [`Evaluator::evaluate`]
//! also records the deciding statements, failures and missing context keys.

use std::sync::Arc;

mod decision;
pub(crate) mod public;
mod request;

pub use decision::{Decision, DecisionKind, DenialReason, FailedElement, Failure, StatementRef};
pub use request::{Request, RequestPrincipal};

use crate::condition::CompiledCondition;
use crate::err::CompileError;
use crate::model::{
    ActionRule, Effect, Policy, Principal, PrincipalKind, PrincipalRule, ResourceRule,
};
use crate::pattern::{split_arn, ArnPattern, Pattern, Resolver};

/// The role a policy plays in a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// Attached to the user or role (managed or inline).
    Identity,
    /// Attached to the resource (bucket policy, trust policy).
    Resource,
    /// A permissions boundary of the user or role.
    PermissionsBoundary,
    /// Passed when the session was created.
    Session,
}

impl PolicyKind {
    /// Lowercase name used in JSON output (`identity`, `resource`, `boundary`, `session`).
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Identity => "identity",
            PolicyKind::Resource => "resource",
            PolicyKind::PermissionsBoundary => "boundary",
            PolicyKind::Session => "session",
        }
    }

    /// With an article, as AWS's denial messages use it (`an identity-based policy`).
    pub fn with_article(self) -> &'static str {
        match self {
            PolicyKind::Identity => "an identity-based policy",
            PolicyKind::Resource => "a resource-based policy",
            PolicyKind::PermissionsBoundary => "a permissions boundary",
            PolicyKind::Session => "a session policy",
        }
    }

    /// Without an article (`identity-based policy`).
    pub fn describe(self) -> &'static str {
        match self {
            PolicyKind::Identity => "identity-based policy",
            PolicyKind::Resource => "resource-based policy",
            PolicyKind::PermissionsBoundary => "permissions boundary",
            PolicyKind::Session => "session policy",
        }
    }
}

#[derive(Debug)]
struct ActionMatcher {
    not: bool,
    any: bool,
    /// Lowercased exact actions, sorted (binary search; no hashing on the hot path).
    exact: Vec<Box<str>>,
    patterns: Vec<Pattern>,
}

impl ActionMatcher {
    fn matches(&self, action_lower: &str) -> bool {
        let hit = self.any
            || self
                .exact
                .binary_search_by(|a| (**a).cmp(action_lower))
                .is_ok()
            || self.patterns.iter().any(|p| p.matches(action_lower));
        hit != self.not
    }
}

#[derive(Debug)]
struct ResourceMatcher {
    not: bool,
    patterns: Vec<ArnPattern>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PrincipalValue {
    Any,
    Account(String),
    /// A principal ARN, and the unique id of the entity it named when the policy was stored
    /// (`None`: matched by the ARN alone, as for policies that were never stored).
    Arn(String, Option<Box<str>>),
    Other(String),
}

impl PrincipalValue {
    /// Whether this ARN value names the request's principal `arn`: the same ARN and, when the
    /// value is bound to a unique id, the same entity.
    fn names(&self, arn: &str, req: &Request) -> bool {
        match self {
            PrincipalValue::Arn(a, bound) => {
                a == arn
                    && bound
                        .as_deref()
                        .is_none_or(|id| req.unique_id.as_deref() == Some(id))
            }
            _ => false,
        }
    }

    /// Whether this value is the bare unique id of the request's principal (how AWS shows a
    /// principal whose entity was deleted; it can only match that entity, whose id is never
    /// reused).
    fn is_unique_id_of(&self, req: &Request) -> bool {
        matches!(self, PrincipalValue::Other(v) if req.unique_id.as_deref() == Some(v.as_str()))
    }
}

#[derive(Debug)]
struct PrincipalMatcher {
    not: bool,
    values: Vec<PrincipalValue>,
}

#[derive(Debug)]
struct CompiledStatement {
    sid: Option<String>,
    effect: Effect,
    line: u32,
    span: crate::json::Span,
    principal: Option<PrincipalMatcher>,
    actions: ActionMatcher,
    resources: Option<ResourceMatcher>,
    conditions: Vec<CompiledCondition>,
    /// An `Allow` to everyone that S3 Block Public Access would consider public.
    public: bool,
}

#[derive(Debug)]
struct Inner {
    kind: PolicyKind,
    statements: Vec<CompiledStatement>,
    context_keys: Vec<String>,
}

/// A policy compiled for evaluation: actions in sets, wildcards as matchers, CIDRs and dates
/// parsed. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    inner: Arc<Inner>,
    name: Option<Arc<str>>,
    digest: Option<Arc<str>>,
}

fn compile_principal(p: &Principal, bind: &dyn Fn(&str) -> Option<String>) -> Vec<PrincipalValue> {
    match p {
        Principal::Any => vec![PrincipalValue::Any],
        Principal::Map(entries) => entries
            .iter()
            .flat_map(|(kind, vals)| {
                vals.iter().map(move |v| match kind {
                    PrincipalKind::Aws if v == "*" => PrincipalValue::Any,
                    PrincipalKind::Aws
                        if v.len() == 12 && v.bytes().all(|b| b.is_ascii_digit()) =>
                    {
                        PrincipalValue::Account(v.clone())
                    }
                    PrincipalKind::Aws => match split_arn(v) {
                        Some(["arn", _, "iam", "", account, "root"]) => {
                            PrincipalValue::Account(account.to_owned())
                        }
                        // A bare unique id (`AIDA...`), as AWS shows a deleted principal.
                        None => PrincipalValue::Other(v.clone()),
                        _ => PrincipalValue::Arn(v.clone(), bind(v).map(String::into_boxed_str)),
                    },
                    // A federated provider is kept apart from `Service` and `CanonicalUser`
                    // values spelt the same: only a web identity of that provider matches it.
                    PrincipalKind::Federated => {
                        PrincipalValue::Other(format!("{}{v}", request::FEDERATED_PREFIX))
                    }
                    _ => PrincipalValue::Other(v.clone()),
                })
            })
            .collect(),
    }
}

impl CompiledPolicy {
    /// Compiles `policy` for use as `kind`. Identity, boundary and session policies must not
    /// have `Principal`/`NotPrincipal` and need `Resource`/`NotResource`; resource policies
    /// need `Principal`/`NotPrincipal`
    /// (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html>).
    pub fn compile(policy: &Policy, kind: PolicyKind) -> Result<Self, CompileError> {
        Self::compile_bound(policy, kind, &|_| None)
    }

    /// Like [`CompiledPolicy::compile`], for a resource-based policy as stored: `bind` gives, for
    /// a principal ARN (`"AWS"` values), the unique id of the IAM entity it named when the policy
    /// was stored, or `None` to match by ARN alone. A bound ARN matches only requests made by
    /// that entity ([`Request::with_unique_id`]), as AWS matches stored principals
    /// (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html#principal-roles>:
    /// "If you delete the role, then you break the relationship ... the principal ARN is
    /// converted to the unique ID").
    pub fn compile_bound(
        policy: &Policy,
        kind: PolicyKind,
        bind: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, CompileError> {
        let variables = policy.variables_enabled();
        let mut statements = Vec::with_capacity(policy.statements.len());
        let mut keys: Vec<String> = Vec::new();
        for (i, st) in policy.statements.iter().enumerate() {
            let err = |message: String| CompileError {
                statement: i,
                message,
            };
            match (kind, &st.principal) {
                (PolicyKind::Resource, None) => {
                    return Err(err(
                        "a resource-based policy statement needs `Principal` or `NotPrincipal`"
                            .into(),
                    ));
                }
                (PolicyKind::Resource, Some(_)) | (_, None) => {}
                (_, Some(_)) => {
                    return Err(err(format!(
                        "a {} cannot have `Principal` or `NotPrincipal`",
                        kind.describe()
                    )));
                }
            }
            if st.effect == Effect::Allow
                && matches!(st.principal, Some(PrincipalRule::NotPrincipal(_)))
            {
                // "NotPrincipal must be used with "Effect":"Deny". Using it with "Effect":"Allow"
                // is not supported." (reference_policies_elements_notprincipal.html)
                return Err(err(
                    "`NotPrincipal` is only supported with `\"Effect\": \"Deny\"`".into(),
                ));
            }
            if kind != PolicyKind::Resource && st.resource.is_none() {
                return Err(err(format!(
                    "a {} statement needs `Resource` or `NotResource`",
                    kind.describe()
                )));
            }
            let (not, list) = match &st.action {
                ActionRule::Action(a) => (false, a),
                ActionRule::NotAction(a) => (true, a),
            };
            let mut actions = ActionMatcher {
                not,
                any: false,
                exact: Vec::new(),
                patterns: Vec::new(),
            };
            for a in list.iter() {
                let p = Pattern::wildcard(a, true);
                if a == "*" {
                    actions.any = true;
                } else if let Some(lit) = p.as_literal() {
                    actions.exact.push(lit.into());
                } else {
                    actions.patterns.push(p);
                }
            }
            actions.exact.sort();
            actions.exact.dedup();
            let resources = match &st.resource {
                None => None,
                Some(rule) => {
                    let (not, list) = match rule {
                        ResourceRule::Resource(r) => (false, r),
                        ResourceRule::NotResource(r) => (true, r),
                    };
                    let patterns = list
                        .iter()
                        .map(|r| ArnPattern::new(r, variables, true).map_err(|e| err(e.0)))
                        .collect::<Result<Vec<_>, _>>()?;
                    for p in &patterns {
                        keys.extend(p.variables().iter().map(|v| v.key.clone()));
                    }
                    Some(ResourceMatcher { not, patterns })
                }
            };
            let principal = st.principal.as_ref().map(|p| match p {
                PrincipalRule::Principal(p) => PrincipalMatcher {
                    not: false,
                    values: compile_principal(p, bind),
                },
                PrincipalRule::NotPrincipal(p) => PrincipalMatcher {
                    not: true,
                    values: compile_principal(p, bind),
                },
            });
            let conditions = st
                .conditions
                .iter()
                .map(|c| {
                    CompiledCondition::compile(c, variables).map_err(|e| {
                        err(format!(
                            "invalid value `{}` for `{}`; expected {}",
                            e.value, c.key, e.expected
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            for c in &conditions {
                keys.push(c.key_lower().to_owned());
                keys.extend(c.variable_keys().into_iter().map(str::to_owned));
            }
            statements.push(CompiledStatement {
                sid: st.sid.clone(),
                effect: st.effect,
                line: st.line,
                span: st.span,
                principal,
                actions,
                resources,
                conditions,
                public: kind == PolicyKind::Resource && public::statement_is_public(st),
            });
        }
        keys.sort();
        keys.dedup();
        Ok(Self {
            inner: Arc::new(Inner {
                kind,
                statements,
                context_keys: keys,
            }),
            name: None,
            digest: None,
        })
    }

    /// Parses and compiles a document.
    pub fn from_json(text: &str, kind: PolicyKind) -> Result<Self, PolicyError> {
        let p = crate::parse::parse_policy(text)?;
        Ok(Self::compile(&p, kind)?)
    }

    /// Parses and compiles a stored resource-based policy; see [`CompiledPolicy::compile_bound`].
    pub fn from_json_bound(
        text: &str,
        kind: PolicyKind,
        bind: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, PolicyError> {
        let p = crate::parse::parse_policy(text)?;
        Ok(Self::compile_bound(&p, kind, bind)?)
    }

    /// The principal ARNs (`"AWS"` values other than `*`, account ids and `:root`) that the
    /// policy's `Principal` and `NotPrincipal` elements name, each once, in order.
    pub fn principal_arns(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for s in &self.inner.statements {
            for v in s.principal.iter().flat_map(|m| &m.values) {
                if let PrincipalValue::Arn(a, _) = v {
                    if !out.contains(&a.as_str()) {
                        out.push(a);
                    }
                }
            }
        }
        out
    }

    /// Gives the policy a name shown in explanations (for example its file name).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(Arc::from(name.into()));
        self
    }

    /// Records what identifies the document the policy was compiled from (the gateway gives
    /// the SHA-256 of its text, computed once when the policy is compiled), so a decision can
    /// name the exact documents it was made with.
    pub fn with_digest(mut self, digest: impl Into<String>) -> Self {
        self.digest = Some(Arc::from(digest.into()));
        self
    }

    /// The digest given with [`CompiledPolicy::with_digest`].
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The role the policy was compiled for.
    pub fn kind(&self) -> PolicyKind {
        self.inner.kind
    }

    /// The name given with [`CompiledPolicy::with_name`].
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Context keys (lowercased) the policy's conditions and variables refer to.
    pub fn context_keys(&self) -> &[String] {
        &self.inner.context_keys
    }

    /// Whether the policy is public in the sense of S3 Block Public Access (some `Allow`
    /// statement grants read or write actions to everyone without pinning conditions); a
    /// gateway with `BlockPublicPolicy` refuses to store such a bucket policy.
    pub fn is_public(&self) -> bool {
        self.inner.statements.iter().any(|s| s.public)
    }

    /// Number of statements.
    pub fn len(&self) -> usize {
        self.inner.statements.len()
    }

    /// Whether the policy has no statements.
    pub fn is_empty(&self) -> bool {
        self.inner.statements.is_empty()
    }
}

/// Parse or compile failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum PolicyError {
    /// The document does not parse.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Parse(#[from] crate::err::ParseError),
    /// The document parses but cannot be used in its role.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Compile(#[from] CompileError),
}

/// The policies in play for one request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Policies<'a> {
    /// Identity-based policies of the principal.
    pub identity: &'a [CompiledPolicy],
    /// The resource's policy.
    pub resource: Option<&'a CompiledPolicy>,
    /// Permissions boundaries (AWS allows one; each listed must allow).
    pub boundaries: &'a [CompiledPolicy],
    /// The session policies, when the session was created with any: the inline session policy
    /// and the managed session policies (`PolicyArns`). `None`: no session policies, nothing to
    /// intersect with. `Some(list)`: AWS "applies a logical OR across all of those policies"
    /// of one type (<https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies.html#policies-introduction>),
    /// so some policy of the list must allow and a deny in any of them denies; `Some(&[])` allows
    /// nothing (a session whose session policies no longer exist keeps no permissions).
    pub session: Option<&'a [CompiledPolicy]>,
    /// S3 Block Public Access `RestrictPublicBuckets` in force for the resource: when the
    /// resource policy is public, it grants nothing to anonymous or other-account callers.
    pub restrict_public_buckets: bool,
    /// How `resource` combines with the identity side.
    pub resource_gate: ResourceGate,
}

/// How a resource's policy combines with the caller's identity-based policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResourceGate {
    /// An ordinary resource-based policy (a bucket policy): within one account an allow from
    /// either side grants, and there may be no resource policy at all.
    #[default]
    Union,
    /// A role's trust policy, evaluated for `sts:AssumeRole`, `sts:TagSession` and
    /// `sts:SetSourceIdentity`. It is required and must itself allow the caller: "IAM role trust
    /// policies and KMS key policies are exceptions to this logic, because they must explicitly
    /// allow access for principals"
    /// (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html>).
    /// A statement naming the caller (its user ARN, its role ARN or session ARN, or `*`) admits
    /// it by itself; one naming only the account delegates to the caller's identity-based
    /// policies, which must then allow the action on the role too ("To allow a user to assume a
    /// role in the same account, you can do either of the following: attach a policy to the user
    /// that allows the user to call AssumeRole (as long as the role's trust policy trusts the
    /// account); or add the user as a principal directly in the role's trust policy",
    /// <https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html>). The caller's
    /// permissions boundary and session policies must allow the action in every case ("If a
    /// permissions boundary is set for the user, then it must allow the sts:AssumeRole action",
    /// <https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_update-role-trust-policy.html>).
    RoleTrust,
}

/// How a resource policy named the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Grant {
    /// Only via the account: delegates to identity policies.
    Account,
    /// Via the role of a session (or the role itself): limited by boundary and session policy.
    Role,
    /// `*`.
    Wildcard,
    /// The exact user, session, root, or other principal.
    Direct,
}

fn principal_grant(m: &PrincipalMatcher, req: &Request) -> Option<Grant> {
    let who = &req.principal;
    let mut best: Option<Grant> = None;
    for v in &m.values {
        let g = match (v, who) {
            (PrincipalValue::Any, _) => Some(Grant::Wildcard),
            (PrincipalValue::Account(a), RequestPrincipal::Root { account }) if a == account => {
                Some(Grant::Direct)
            }
            (PrincipalValue::Account(a), w) if w.account() == Some(a.as_str()) => {
                Some(Grant::Account)
            }
            (
                PrincipalValue::Arn(..),
                RequestPrincipal::Session {
                    session_arn,
                    role_arn,
                    ..
                },
            ) => {
                if v.names(session_arn, req) {
                    Some(Grant::Direct)
                } else if v.names(role_arn, req) {
                    Some(Grant::Role)
                } else {
                    None
                }
            }
            (PrincipalValue::Arn(..), RequestPrincipal::Role { arn, .. }) if v.names(arn, req) => {
                Some(Grant::Role)
            }
            (PrincipalValue::Arn(..), RequestPrincipal::User { arn, .. }) if v.names(arn, req) => {
                Some(Grant::Direct)
            }
            (PrincipalValue::Other(a), RequestPrincipal::Other { id, .. }) if a == id => {
                Some(Grant::Direct)
            }
            (PrincipalValue::Arn(a, _), RequestPrincipal::Other { id, .. }) if a == id => {
                Some(Grant::Direct)
            }
            (
                PrincipalValue::Other(_),
                RequestPrincipal::Session { .. } | RequestPrincipal::Role { .. },
            ) if v.is_unique_id_of(req) => Some(Grant::Role),
            (PrincipalValue::Other(_), RequestPrincipal::User { .. }) if v.is_unique_id_of(req) => {
                Some(Grant::Direct)
            }
            _ => None,
        };
        best = best.max(g);
    }
    best
}

/// Whether a `NotPrincipal` list spares the caller, per
/// <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html>:
/// "you must also specify the account ARN of the not-denied principal. Otherwise, the policy
/// might deny access to the entire account"; for an assumed-role user AWS "might validate the
/// account first, then the role, and then the assumed-role user. The assumed-role user is
/// identified by the role session name", and the page's example exempts a session by listing
/// "the ARN of the assumed-role user [...], the role [...], and the AWS account"; "When you
/// specify an assumed-role session in a NotPrincipal element, you cannot use a wildcard (*) to
/// mean 'all sessions'. Principals must always name a specific session."
///
/// So a user (or role) is spared when its ARN and its account are listed, the root user when its
/// account is, and a role session only when its account, its role and the session itself are
/// all listed: naming the role does not spare the role's sessions (review round 5, finding 7).
/// A session no role backs (a role-less job, whose role ARN is its session ARN) needs its ARN
/// and its account. "The NotPrincipal element with a Deny effect will always deny any IAM
/// principal that has a permissions boundary policy attached" is handled by the caller.
fn not_principal_excludes(m: &PrincipalMatcher, req: &Request) -> bool {
    let who = &req.principal;
    // An ARN names the caller's entity, or the entity's bare unique id stands for it.
    let entity_listed = |arn: &str| {
        m.values.iter().any(|v| {
            v.names(arn, req)
                || v.is_unique_id_of(req)
                || matches!(v, PrincipalValue::Other(a) if a == arn)
        })
    };
    // A session is named by its own ARN only (a role's unique id names the role, not a session).
    let session_listed = |arn: &str| m.values.iter().any(|v| v.names(arn, req));
    let account_listed = |acct: &str| {
        m.values
            .iter()
            .any(|v| matches!(v, PrincipalValue::Account(a) if a == acct))
    };
    if m.values.contains(&PrincipalValue::Any) {
        return true;
    }
    match who {
        RequestPrincipal::Anonymous => false,
        RequestPrincipal::Root { account } => account_listed(account),
        RequestPrincipal::User { arn, account } | RequestPrincipal::Role { arn, account } => {
            account_listed(account) && entity_listed(arn)
        }
        RequestPrincipal::Session {
            session_arn,
            role_arn,
            account,
        } => account_listed(account) && entity_listed(role_arn) && session_listed(session_arn),
        RequestPrincipal::Other { id, account } => {
            entity_listed(id) && account.as_deref().is_none_or(account_listed)
        }
    }
}

/// Collects explanations; the no-op implementation keeps [`Evaluator::is_allowed`]
/// allocation-free.
trait Recorder {
    const ON: bool;
    fn matched(&mut self, r: StatementRef);
    fn failed(&mut self, r: StatementRef, e: FailedElement);
    fn missing(&mut self, key_lower: &str);
}

struct NoRecord;

impl Recorder for NoRecord {
    const ON: bool = false;
    fn matched(&mut self, _: StatementRef) {}
    fn failed(&mut self, _: StatementRef, _: FailedElement) {}
    fn missing(&mut self, _: &str) {}
}

#[derive(Default)]
struct Record {
    matched: Vec<StatementRef>,
    failures: Vec<Failure>,
    missing: Vec<String>,
}

impl Recorder for Record {
    const ON: bool = true;
    fn matched(&mut self, r: StatementRef) {
        if !self.matched.contains(&r) {
            self.matched.push(r);
        }
    }
    fn failed(&mut self, r: StatementRef, e: FailedElement) {
        self.failures.push(Failure {
            statement: r,
            element: e,
        });
    }
    fn missing(&mut self, key_lower: &str) {
        if !self.missing.iter().any(|k| k == key_lower) {
            self.missing.push(key_lower.to_owned());
        }
    }
}

fn stmt_ref(p: &CompiledPolicy, idx: usize, i: usize, s: &CompiledStatement) -> StatementRef {
    StatementRef {
        policy_kind: p.inner.kind,
        policy_index: idx,
        policy_name: p.name.as_deref().map(str::to_owned),
        statement_index: i,
        sid: s.sid.clone(),
        effect: s.effect,
        line: s.line,
        span: s.span,
    }
}

/// Why a statement did not apply, without allocating.
enum Miss<'a> {
    Resource,
    Principal,
    Condition(&'a CompiledCondition, bool),
}

impl Miss<'_> {
    fn to_element(&self) -> FailedElement {
        match self {
            Miss::Resource => FailedElement::Resource,
            Miss::Principal => FailedElement::Principal,
            Miss::Condition(c, missing) => FailedElement::Condition {
                operator: c.operator().to_string(),
                key: c.key().to_owned(),
                key_missing: *missing,
            },
        }
    }
}

/// Checks resource, principal and conditions of a statement whose action matched.
/// Returns the grant kind for resource policies (`Direct` elsewhere) or what failed.
fn statement_applies<'s, R: Recorder>(
    s: &'s CompiledStatement,
    req: &Request,
    rec: &mut R,
    has_boundary: bool,
) -> Result<Grant, Miss<'s>> {
    let ctx = &req.context;
    // An upper bound (Context::assume_unknown): a resource pattern whose variable is unknown
    // matches for an Allow statement and not for a Deny statement.
    let bound_resource = ctx.has_unknown()
        && s.resources.as_ref().is_some_and(|r| {
            r.patterns
                .iter()
                .any(|p| p.variables().iter().any(|v| ctx.is_unknown(&v.key)))
        });
    if bound_resource && s.effect == Effect::Deny {
        return Err(Miss::Resource);
    }
    if let Some(r) = s.resources.as_ref().filter(|_| bound_resource) {
        // An Allow's Resource with the unknown variables as `*`: still pinned to its bucket and
        // literal parts (review 8, F4). A NotResource cannot be bounded that way: it applies.
        if !r.not {
            let unknown = |k: &str| ctx.is_unknown(k);
            let hit = r.patterns.iter().any(|p| {
                p.widened(&unknown)
                    .matches_with(&req.resource, ctx as &dyn Resolver)
            });
            if !hit {
                return Err(Miss::Resource);
            }
        }
    }
    if let Some(r) = s.resources.as_ref().filter(|_| !bound_resource) {
        let hit = r
            .patterns
            .iter()
            .any(|p| p.matches_with(&req.resource, ctx as &dyn Resolver));
        if R::ON {
            for p in &r.patterns {
                for v in p.variables() {
                    if v.default.is_none() && ctx.resolve(&v.key).is_none() {
                        rec.missing(&v.key);
                    }
                }
            }
        }
        // "If AWS cannot resolve a variable this might cause the entire statement to be
        // invalid" (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html):
        // a statement whose Resource/NotResource has an unresolvable variable does not apply.
        if hit == r.not
            || (r.not
                && !r
                    .patterns
                    .iter()
                    .all(|p| p.resolvable(ctx as &dyn Resolver)))
        {
            return Err(Miss::Resource);
        }
    }
    let grant = match &s.principal {
        None => Grant::Direct,
        Some(m) if m.not => {
            if !has_boundary && not_principal_excludes(m, req) {
                return Err(Miss::Principal);
            }
            Grant::Wildcard
        }
        Some(m) => principal_grant(m, req).ok_or(Miss::Principal)?,
    };
    let mut failed = None;
    for c in &s.conditions {
        let unknown = ctx.has_unknown()
            && (ctx.is_unknown(c.key_lower())
                || c.variable_keys().iter().any(|k| ctx.is_unknown(k)));
        let (holds, missing) = if unknown {
            // An upper bound: met where it could allow, unmet where it could deny.
            (s.effect == Effect::Allow, false)
        } else {
            let (holds, missing) = c.evaluate(ctx);
            // An unresolvable variable in the values makes the statement invalid (see above).
            (holds && c.variables_resolvable(ctx), missing)
        };
        if R::ON {
            if missing {
                rec.missing(c.key_lower());
            }
            for k in c.variable_keys() {
                if ctx.resolve(k).is_none() {
                    rec.missing(k);
                }
            }
        }
        if !holds && failed.is_none() {
            failed = Some(Miss::Condition(c, missing));
            if !R::ON {
                break;
            }
        }
    }
    match failed {
        Some(f) => Err(f),
        None => Ok(grant),
    }
}

/// Scans the statements of `effect` in one policy; returns the best grant of an applicable one.
fn scan<R: Recorder>(
    p: &CompiledPolicy,
    idx: usize,
    effect: Effect,
    req: &Request,
    rec: &mut R,
    record_failures: bool,
    has_boundary: bool,
) -> Option<Grant> {
    let mut best = None;
    for (i, s) in p.inner.statements.iter().enumerate() {
        if s.effect != effect || !s.actions.matches(&req.action_lower) {
            continue;
        }
        match statement_applies(s, req, rec, has_boundary) {
            Ok(g) => {
                if R::ON {
                    rec.matched(stmt_ref(p, idx, i, s));
                } else {
                    return Some(g);
                }
                best = best.max(Some(g));
            }
            Err(e) => {
                if R::ON && record_failures {
                    rec.failed(stmt_ref(p, idx, i, s), e.to_element());
                }
            }
        }
    }
    best
}

/// Actions the root user may always perform on its own buckets.
const ROOT_ALWAYS: [&str; 3] = [
    "s3:getbucketpolicy",
    "s3:putbucketpolicy",
    "s3:deletebucketpolicy",
];

/// The evaluator.
#[derive(Debug, Clone, Copy, Default)]
pub struct Evaluator;

impl Evaluator {
    /// Decides without recording an explanation; allocates nothing.
    pub fn is_allowed(policies: &Policies<'_>, req: &Request) -> DecisionKind {
        decide(policies, req, &mut NoRecord).0
    }

    /// Decides and explains.
    pub fn evaluate(policies: &Policies<'_>, req: &Request) -> Decision {
        let mut rec = Record::default();
        let (kind, reason) = decide(policies, req, &mut rec);
        let mut missing = rec.missing;
        missing.sort();
        let matched = match kind {
            DecisionKind::ExplicitlyDenied => rec
                .matched
                .into_iter()
                .filter(|m| m.effect == Effect::Deny)
                .collect(),
            DecisionKind::Allowed => rec
                .matched
                .into_iter()
                .filter(|m| m.effect == Effect::Allow)
                .collect(),
            DecisionKind::ImplicitlyDenied => Vec::new(),
        };
        let failures = if kind == DecisionKind::Allowed {
            Vec::new()
        } else {
            rec.failures
        };
        Decision {
            kind,
            matched,
            failures,
            missing_context_keys: missing,
            reason,
        }
    }
}

/// Whether the session policies let an allow through: there are none, or one of them allows.
fn session_allows<R: Recorder>(pol: &Policies<'_>, req: &Request, rec: &mut R, hb: bool) -> bool {
    let Some(list) = pol.session else {
        return true;
    };
    let mut allowed = false;
    for (i, p) in list.iter().enumerate() {
        if scan(p, i, Effect::Allow, req, rec, true, hb).is_some() {
            allowed = true;
            if !R::ON {
                break;
            }
        }
    }
    allowed
}

/// The allow side of a role trust decision ([`ResourceGate::RoleTrust`]); explicit denies were
/// handled by the caller.
fn decide_trust<R: Recorder>(
    pol: &Policies<'_>,
    req: &Request,
    rec: &mut R,
    hb: bool,
) -> (DecisionKind, Option<DenialReason>) {
    let no = |kind| {
        (
            DecisionKind::ImplicitlyDenied,
            Some(DenialReason::NoAllow(kind)),
        )
    };
    let Some(grant) = pol
        .resource
        .and_then(|p| scan(p, 0, Effect::Allow, req, rec, true, hb))
    else {
        return no(PolicyKind::Resource);
    };
    // Naming only the account delegates to the caller's identity-based policies; so does any
    // grant to a caller from another account (both sides must allow across accounts).
    let needs_identity = grant == Grant::Account || !req.same_account();
    if needs_identity {
        let mut identity_allow = false;
        for (i, p) in pol.identity.iter().enumerate() {
            if scan(p, i, Effect::Allow, req, rec, true, hb).is_some() {
                identity_allow = true;
                if !R::ON {
                    break;
                }
            }
        }
        if !identity_allow {
            return no(PolicyKind::Identity);
        }
    }
    for (i, p) in pol.boundaries.iter().enumerate() {
        if scan(p, i, Effect::Allow, req, rec, true, hb).is_none() {
            return no(PolicyKind::PermissionsBoundary);
        }
    }
    if !session_allows(pol, req, rec, hb) {
        return no(PolicyKind::Session);
    }
    (DecisionKind::Allowed, None)
}

fn decide<R: Recorder>(
    pol: &Policies<'_>,
    req: &Request,
    rec: &mut R,
) -> (DecisionKind, Option<DenialReason>) {
    let hb = !pol.boundaries.is_empty();
    let same_account = req.same_account();
    let is_root = matches!(req.principal, RequestPrincipal::Root { .. });
    if is_root && same_account && ROOT_ALWAYS.contains(&req.action_lower.as_str()) {
        return (DecisionKind::Allowed, None);
    }
    // 1. Explicit deny anywhere.
    let mut deny: Option<PolicyKind> = None;
    let identity_side: &[(&[CompiledPolicy], PolicyKind)] = &[
        (pol.identity, PolicyKind::Identity),
        (pol.boundaries, PolicyKind::PermissionsBoundary),
    ];
    if !is_root {
        for (list, kind) in identity_side {
            for (i, p) in list.iter().enumerate() {
                if scan(p, i, Effect::Deny, req, rec, false, hb).is_some() {
                    deny = deny.or(Some(*kind));
                    if !R::ON {
                        return (
                            DecisionKind::ExplicitlyDenied,
                            deny.map(DenialReason::ExplicitDeny),
                        );
                    }
                }
            }
        }
        for (i, p) in pol.session.unwrap_or_default().iter().enumerate() {
            if scan(p, i, Effect::Deny, req, rec, false, hb).is_some() {
                deny = deny.or(Some(PolicyKind::Session));
                if !R::ON {
                    return (
                        DecisionKind::ExplicitlyDenied,
                        deny.map(DenialReason::ExplicitDeny),
                    );
                }
            }
        }
    }
    if let Some(p) = pol.resource {
        if scan(p, 0, Effect::Deny, req, rec, false, hb).is_some() {
            deny = deny.or(Some(PolicyKind::Resource));
        }
    }
    if let Some(k) = deny {
        return (
            DecisionKind::ExplicitlyDenied,
            Some(DenialReason::ExplicitDeny(k)),
        );
    }
    if pol.resource_gate == ResourceGate::RoleTrust {
        return decide_trust(pol, req, rec, hb);
    }
    // 2. Resource-based allow.
    let grant = pol
        .resource
        .and_then(|p| scan(p, 0, Effect::Allow, req, rec, true, hb));
    // RestrictPublicBuckets: "restrict access to an access point or S3 bucket that has a public
    // policy to only AWS service principals and authorized users within the S3 bucket owner's
    // account" (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PublicAccessBlockConfiguration.html).
    let outsider = matches!(req.principal, RequestPrincipal::Anonymous) || !same_account;
    let grant = if pol.restrict_public_buckets
        && outsider
        && pol.resource.is_some_and(CompiledPolicy::is_public)
    {
        None
    } else {
        grant
    };
    if is_root {
        return if same_account || grant.is_some() {
            (DecisionKind::Allowed, None)
        } else {
            (
                DecisionKind::ImplicitlyDenied,
                Some(DenialReason::NoAllow(PolicyKind::Resource)),
            )
        };
    }
    // Anonymous callers and principals outside any account (AWS service principals, federated
    // identities) have no identity-based policies: only the resource policy can grant.
    if matches!(
        req.principal,
        RequestPrincipal::Anonymous | RequestPrincipal::Other { account: None, .. }
    ) {
        return if grant.is_some_and(|g| g >= Grant::Wildcard) {
            (DecisionKind::Allowed, None)
        } else {
            (
                DecisionKind::ImplicitlyDenied,
                Some(DenialReason::NoAllow(PolicyKind::Resource)),
            )
        };
    }
    if same_account {
        // `*` matches the caller itself. AWS documents grants naming a user or session ARN (not
        // limited by boundaries; session ARN not limited by session policies) but not `*`: here
        // `*` is not limited by boundaries and, for a role session, still needs the session
        // policy (the conservative reading, and the behaviour of iam-simulate).
        match grant {
            Some(Grant::Direct) => return (DecisionKind::Allowed, None),
            Some(Grant::Wildcard) => match &req.principal {
                RequestPrincipal::Session { .. } => {
                    return if session_allows(pol, req, rec, hb) {
                        (DecisionKind::Allowed, None)
                    } else {
                        (
                            DecisionKind::ImplicitlyDenied,
                            Some(DenialReason::NoAllow(PolicyKind::Session)),
                        )
                    };
                }
                RequestPrincipal::Role { .. } => {}
                _ => return (DecisionKind::Allowed, None),
            },
            _ => {}
        }
    }
    // 3. Identity side.
    let mut identity_allow = false;
    for (i, p) in pol.identity.iter().enumerate() {
        if scan(p, i, Effect::Allow, req, rec, true, hb).is_some() {
            identity_allow = true;
            if !R::ON {
                break;
            }
        }
    }
    let resource_stands_in =
        same_account && matches!(grant, Some(Grant::Role | Grant::Wildcard | Grant::Direct));
    if !identity_allow && !resource_stands_in {
        return (
            DecisionKind::ImplicitlyDenied,
            Some(DenialReason::NoAllow(PolicyKind::Identity)),
        );
    }
    for (i, p) in pol.boundaries.iter().enumerate() {
        if scan(p, i, Effect::Allow, req, rec, true, hb).is_none() {
            return (
                DecisionKind::ImplicitlyDenied,
                Some(DenialReason::NoAllow(PolicyKind::PermissionsBoundary)),
            );
        }
    }
    if !session_allows(pol, req, rec, hb) {
        return (
            DecisionKind::ImplicitlyDenied,
            Some(DenialReason::NoAllow(PolicyKind::Session)),
        );
    }
    if !same_account && grant.is_none() {
        return (
            DecisionKind::ImplicitlyDenied,
            Some(DenialReason::NoAllow(PolicyKind::Resource)),
        );
    }
    (DecisionKind::Allowed, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;

    fn compile(text: &str, kind: PolicyKind) -> CompiledPolicy {
        CompiledPolicy::from_json(text, kind).unwrap()
    }

    #[test]
    fn principals_are_classified() {
        assert_eq!(
            RequestPrincipal::from_arn("arn:aws:iam::111122223333:root", None),
            RequestPrincipal::Root {
                account: "111122223333".into()
            }
        );
        assert!(matches!(
            RequestPrincipal::from_arn("arn:aws:iam::111122223333:user/a/b", None),
            RequestPrincipal::User { .. }
        ));
        match RequestPrincipal::from_arn("arn:aws:sts::111122223333:assumed-role/r/s", None) {
            RequestPrincipal::Session { role_arn, .. } => {
                assert_eq!(role_arn, "arn:aws:iam::111122223333:role/r")
            }
            other => panic!("{other:?}"),
        }
        match RequestPrincipal::from_arn(
            "arn:aws:sts::111122223333:assumed-role/r/s",
            Some("arn:aws:iam::111122223333:role/path/r"),
        ) {
            RequestPrincipal::Session { role_arn, .. } => {
                assert_eq!(role_arn, "arn:aws:iam::111122223333:role/path/r")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            RequestPrincipal::from_arn("ec2.amazonaws.com", None),
            RequestPrincipal::Other { account: None, .. }
        ));
    }

    #[test]
    fn compile_checks_policy_roles() {
        let with_principal = r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}}"#;
        let without = r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}"#;
        let no_resource = r#"{"Statement": {"Effect": "Allow", "Action": "s3:*"}}"#;
        assert!(CompiledPolicy::from_json(with_principal, PolicyKind::Identity).is_err());
        assert!(CompiledPolicy::from_json(without, PolicyKind::Resource).is_err());
        assert!(CompiledPolicy::from_json(no_resource, PolicyKind::Session).is_err());
        assert!(CompiledPolicy::from_json(with_principal, PolicyKind::Resource).is_ok());
    }

    #[test]
    fn context_keys_are_known_at_compile_time() {
        let p = compile(
            r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:*",
                "Resource": "arn:aws:s3:::b/${aws:username}/*",
                "Condition": {"IpAddress": {"AWS:SourceIp": "10.0.0.0/8"}, "StringLike": {"s3:prefix": "${aws:PrincipalTag/t}"}}}}"#,
            PolicyKind::Identity,
        );
        assert_eq!(
            p.context_keys(),
            [
                "aws:principaltag/t",
                "aws:sourceip",
                "aws:username",
                "s3:prefix"
            ]
        );
    }

    #[test]
    fn explanations_use_aws_wording() {
        let id = [compile(
            r#"{"Statement": {"Sid": "R", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}}"#,
            PolicyKind::Identity,
        )];
        let session = compile(
            r#"{"Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}}"#,
            PolicyKind::Session,
        );
        let req = Request::new(
            RequestPrincipal::from_arn("arn:aws:sts::111122223333:assumed-role/r/s", None),
            "s3:PutObject",
            "arn:aws:s3:::b/k",
            None,
            Context::new(),
        );
        let d = Evaluator::evaluate(
            &Policies {
                identity: &id,
                session: Some(std::slice::from_ref(&session)),
                ..Policies::default()
            },
            &req,
        );
        assert_eq!(d.kind, DecisionKind::ImplicitlyDenied);
        assert_eq!(
            d.explanation(&req),
            "not authorized to perform: s3:PutObject on resource: arn:aws:s3:::b/k because no identity-based policy allows the s3:PutObject action"
        );
        let id2 = [compile(
            r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}"#,
            PolicyKind::Identity,
        )];
        let d = Evaluator::evaluate(
            &Policies {
                identity: &id2,
                session: Some(std::slice::from_ref(&session)),
                ..Policies::default()
            },
            &req,
        );
        assert_eq!(d.reason, Some(DenialReason::NoAllow(PolicyKind::Session)));
        assert!(d
            .explanation(&req)
            .ends_with("because no session policy allows the s3:PutObject action"));
        assert_eq!(
            Evaluator::is_allowed(
                &Policies {
                    identity: &id2,
                    session: Some(std::slice::from_ref(&session)),
                    ..Policies::default()
                },
                &req
            ),
            d.kind
        );
    }

    /// "You can pass a single JSON inline session policy document using the Policy parameter.
    /// You can use the PolicyArns parameter to specify up to 10 managed session policies"
    /// (<https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies.html#policies_session>),
    /// and AWS "applies a logical OR across all of those policies" of one type
    /// (<https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies.html#policies-introduction>):
    /// role policies ∩ (inline ∪ managed session policies).
    #[test]
    fn several_session_policies_are_one_union_intersected_with_the_role() {
        let role = [compile(
            r#"{"Statement": {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:ListBucket"], "Resource": "*"}}"#,
            PolicyKind::Identity,
        )];
        let get = compile(
            r#"{"Statement": {"Sid": "Get", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}}"#,
            PolicyKind::Session,
        );
        let put = compile(
            r#"{"Statement": [{"Sid": "Put", "Effect": "Allow", "Action": ["s3:PutObject", "s3:DeleteObject"], "Resource": "*"},
                {"Sid": "NoSecret", "Effect": "Deny", "Action": "*", "Resource": "arn:aws:s3:::b/secret/*"}]}"#,
            PolicyKind::Session,
        );
        let sessions = [get, put];
        let set = Policies {
            identity: &role,
            session: Some(&sessions),
            ..Policies::default()
        };
        let req = |action: &str, resource: &str| {
            Request::new(
                RequestPrincipal::from_arn("arn:aws:sts::111122223333:assumed-role/r/s", None),
                action,
                resource,
                None,
                Context::new(),
            )
        };
        let decide = |action: &str, resource: &str| {
            let r = req(action, resource);
            let d = Evaluator::evaluate(&set, &r);
            assert_eq!(
                Evaluator::is_allowed(&set, &r),
                d.kind,
                "{action} {resource}"
            );
            d
        };
        // Either session policy lets a role permission through.
        let d = decide("s3:GetObject", "arn:aws:s3:::b/k");
        assert_eq!(d.kind, DecisionKind::Allowed);
        assert!(d.matched.iter().any(|m| m.sid.as_deref() == Some("Get")
            && m.policy_kind == PolicyKind::Session
            && m.policy_index == 0));
        let d = decide("s3:PutObject", "arn:aws:s3:::b/k");
        assert_eq!(d.kind, DecisionKind::Allowed);
        assert!(d
            .matched
            .iter()
            .any(|m| m.sid.as_deref() == Some("Put") && m.policy_index == 1));
        // Neither allows ListBucket: the role's grant is cut off.
        let d = decide("s3:ListBucket", "arn:aws:s3:::b");
        assert_eq!(d.reason, Some(DenialReason::NoAllow(PolicyKind::Session)));
        // A session policy never adds to the role's permissions.
        let d = decide("s3:DeleteObject", "arn:aws:s3:::b/k");
        assert_eq!(d.reason, Some(DenialReason::NoAllow(PolicyKind::Identity)));
        // A deny in one session policy overrides an allow in another.
        let d = decide("s3:GetObject", "arn:aws:s3:::b/secret/k");
        assert_eq!(d.kind, DecisionKind::ExplicitlyDenied);
        assert_eq!(
            d.reason,
            Some(DenialReason::ExplicitDeny(PolicyKind::Session))
        );
        // Session policies in force but none left: nothing is allowed; no session policies at
        // all: the role's policies alone decide.
        let none = Policies {
            identity: &role,
            session: Some(&[]),
            ..Policies::default()
        };
        let r = req("s3:GetObject", "arn:aws:s3:::b/k");
        assert_eq!(
            Evaluator::evaluate(&none, &r).kind,
            DecisionKind::ImplicitlyDenied
        );
        assert_eq!(
            Evaluator::is_allowed(&none, &r),
            DecisionKind::ImplicitlyDenied
        );
        let unrestricted = Policies {
            identity: &role,
            ..Policies::default()
        };
        assert_eq!(
            Evaluator::is_allowed(&unrestricted, &r),
            DecisionKind::Allowed
        );
    }

    #[test]
    fn failures_name_the_condition() {
        let id = [compile(
            r#"{"Statement": {"Sid": "W", "Effect": "Allow", "Action": "s3:*", "Resource": "*",
                "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}}"#,
            PolicyKind::Identity,
        )
        .with_name("job.json")];
        let mut ctx = Context::new();
        ctx.insert("aws:SourceIp", "192.0.2.1");
        let req = Request::new(
            RequestPrincipal::from_arn("arn:aws:iam::1:user/u", None),
            "s3:GetObject",
            "arn:aws:s3:::b/k",
            None,
            ctx,
        );
        let d = Evaluator::evaluate(
            &Policies {
                identity: &id,
                ..Policies::default()
            },
            &req,
        );
        assert_eq!(d.failures.len(), 1);
        assert_eq!(
            d.failures[0].statement.policy_name.as_deref(),
            Some("job.json")
        );
        assert_eq!(
            d.failures[0].element,
            FailedElement::Condition {
                operator: "IpAddress".into(),
                key: "aws:SourceIp".into(),
                key_missing: false
            }
        );
    }

    /// A stored policy matches principals by the unique id they had when it was stored: "If you
    /// delete the role, then you break the relationship ... the principal ARN is converted to the
    /// unique ID"
    /// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html#principal-roles).
    #[test]
    fn a_bound_principal_matches_only_the_entity_it_named() {
        let alice = "arn:aws:iam::111122223333:user/alice";
        let doc = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{alice}"}},"Action":"s3:GetObject","Resource":"*"}}]}}"#
        );
        let bound = CompiledPolicy::from_json_bound(&doc, PolicyKind::Resource, &|arn| {
            (arn == alice).then(|| "AIDAOLDEXAMPLE0001".to_owned())
        })
        .unwrap();
        assert_eq!(bound.principal_arns(), [alice]);
        let unbound = compile(&doc, PolicyKind::Resource);
        let req = |id: Option<&str>| {
            let r = Request::new(
                RequestPrincipal::from_arn(alice, None),
                "s3:GetObject",
                "arn:aws:s3:::b/k",
                None,
                Context::new(),
            );
            match id {
                Some(id) => r.with_unique_id(id),
                None => r,
            }
        };
        let decide = |p: &CompiledPolicy, r: &Request| {
            Evaluator::is_allowed(
                &Policies {
                    resource: Some(p),
                    ..Policies::default()
                },
                r,
            )
        };
        assert_eq!(
            decide(&bound, &req(Some("AIDAOLDEXAMPLE0001"))),
            DecisionKind::Allowed
        );
        // A namesake created after the policy was stored is someone else.
        assert_eq!(
            decide(&bound, &req(Some("AIDANEWEXAMPLE0002"))),
            DecisionKind::ImplicitlyDenied
        );
        assert_eq!(decide(&bound, &req(None)), DecisionKind::ImplicitlyDenied);
        // A policy that was never stored (the simulator's) matches by name.
        assert_eq!(
            decide(&unbound, &req(Some("AIDANEWEXAMPLE0002"))),
            DecisionKind::Allowed
        );
        // The orphaned form, the bare unique id, still names only the old entity.
        let orphan = compile(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"AIDAOLDEXAMPLE0001"},"Action":"s3:GetObject","Resource":"*"}]}"#,
            PolicyKind::Resource,
        );
        assert_eq!(
            decide(&orphan, &req(Some("AIDAOLDEXAMPLE0001"))),
            DecisionKind::Allowed
        );
        assert_eq!(
            decide(&orphan, &req(Some("AIDANEWEXAMPLE0002"))),
            DecisionKind::ImplicitlyDenied
        );
    }

    /// "When you specify an assumed-role session in a NotPrincipal element, you cannot use a
    /// wildcard (*) to mean 'all sessions'. Principals must always name a specific session"; the
    /// page's example lists the session, its role and the account
    /// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html).
    /// Review round 5, finding 7: listing the role and its account spared every session.
    #[test]
    fn not_principal_spares_a_session_only_when_the_session_is_named() {
        let role = "arn:aws:iam::111122223333:role/worker";
        let session = "arn:aws:sts::111122223333:assumed-role/worker/job-1";
        let other = "arn:aws:sts::111122223333:assumed-role/worker/mallory";
        let root = "arn:aws:iam::111122223333:root";
        let id = [compile(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
            PolicyKind::Identity,
        )];
        let decide = |listed: &[&str], caller: &str, caller_role: &str| {
            let deny = compile(
                &format!(
                    r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","NotPrincipal":{{"AWS":{}}},"Action":"s3:*","Resource":"*"}}]}}"#,
                    serde_json::to_string(listed).unwrap()
                ),
                PolicyKind::Resource,
            );
            let set = Policies {
                identity: &id,
                resource: Some(&deny),
                ..Policies::default()
            };
            let req = Request::new(
                RequestPrincipal::from_arn(caller, Some(caller_role)),
                "s3:GetObject",
                "arn:aws:s3:::b/k",
                None,
                Context::new(),
            );
            Evaluator::is_allowed(&set, &req)
        };
        use DecisionKind::{Allowed, ExplicitlyDenied};
        assert_eq!(decide(&[role, root], session, role), ExplicitlyDenied);
        assert_eq!(decide(&[role, root], other, role), ExplicitlyDenied);
        assert_eq!(decide(&[session, role, root], session, role), Allowed);
        assert_eq!(
            decide(&[session, role, root], other, role),
            ExplicitlyDenied
        );
        // Each level must be listed: the account, the role, the session.
        assert_eq!(decide(&[session, root], session, role), ExplicitlyDenied);
        assert_eq!(decide(&[session, role], session, role), ExplicitlyDenied);
        // A session of another role with the same session name is not spared.
        assert_eq!(
            decide(
                &[session, role, root],
                "arn:aws:sts::111122223333:assumed-role/builder/job-1",
                "arn:aws:iam::111122223333:role/builder"
            ),
            ExplicitlyDenied
        );
        // A session no role backs (its role ARN is its own ARN) is spared by its ARN and account.
        let lone = "arn:aws:sts::111122223333:assumed-role/keyhole-job/j-1";
        assert_eq!(decide(&[lone, root], lone, lone), Allowed);
        assert_eq!(decide(&[root], lone, lone), ExplicitlyDenied);
    }

    /// A role's sessions are bound through the role's unique id, in `Principal` and in
    /// `NotPrincipal` alike.
    #[test]
    fn a_bound_role_admits_only_sessions_of_that_role() {
        let role = "arn:aws:iam::111122223333:role/r";
        let session = "arn:aws:sts::111122223333:assumed-role/r/s";
        let trust = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{role}"}},"Action":"sts:AssumeRole"}}]}}"#
        );
        let bind = |arn: &str| (arn == role).then(|| "AROAOLD".to_owned());
        let trust = CompiledPolicy::from_json_bound(&trust, PolicyKind::Resource, &bind).unwrap();
        let req = |id: &str| {
            Request::new(
                RequestPrincipal::from_arn(session, Some(role)),
                "sts:AssumeRole",
                "arn:aws:iam::111122223333:role/target",
                None,
                Context::new(),
            )
            .with_unique_id(id)
        };
        let set = Policies {
            resource: Some(&trust),
            resource_gate: ResourceGate::RoleTrust,
            ..Policies::default()
        };
        assert_eq!(
            Evaluator::is_allowed(&set, &req("AROAOLD")),
            DecisionKind::Allowed
        );
        assert_eq!(
            Evaluator::is_allowed(&set, &req("AROANEW")),
            DecisionKind::ImplicitlyDenied
        );
        // NotPrincipal: the listed session of the listed (bound) role is spared; the same
        // session of its namesake is not.
        let deny = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","NotPrincipal":{{"AWS":["111122223333","{role}","{session}"]}},"Action":"s3:*","Resource":"*"}}]}}"#
        );
        let deny = CompiledPolicy::from_json_bound(&deny, PolicyKind::Resource, &bind).unwrap();
        let id = [compile(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
            PolicyKind::Identity,
        )];
        let s3 = |uid: &str| {
            Request::new(
                RequestPrincipal::from_arn(session, Some(role)),
                "s3:GetObject",
                "arn:aws:s3:::b/k",
                None,
                Context::new(),
            )
            .with_unique_id(uid)
        };
        let set = Policies {
            identity: &id,
            resource: Some(&deny),
            ..Policies::default()
        };
        assert_eq!(
            Evaluator::is_allowed(&set, &s3("AROAOLD")),
            DecisionKind::Allowed
        );
        assert_eq!(
            Evaluator::is_allowed(&set, &s3("AROANEW")),
            DecisionKind::ExplicitlyDenied
        );
    }
}
