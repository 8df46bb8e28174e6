//! The IAM policy simulator APIs, with AWS's request and response shapes: SimulateCustomPolicy,
//! SimulatePrincipalPolicy, GetContextKeysForCustomPolicy and GetContextKeysForPrincipalPolicy
//! (https://docs.aws.amazon.com/IAM/latest/APIReference/API_SimulateCustomPolicy.html,
//! https://docs.aws.amazon.com/IAM/latest/APIReference/API_SimulatePrincipalPolicy.html,
//! https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetContextKeysForCustomPolicy.html,
//! https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetContextKeysForPrincipalPolicy.html).
//!
//! Decisions come from the engine that authorizes every request ([`Evaluator`]), so a simulation
//! says what keyhole itself would decide. The answer follows AWS's shapes:
//! - One `EvaluationResults` member per action: "The simulator now returns a single
//!   EvaluationResult per action, regardless of how many resource ARNs are provided ... The
//!   top-level EvalDecision reflects the most restrictive decision across all resources"
//!   (https://docs.aws.amazon.com/IAM/latest/APIReference/API_EvaluationResult.html). With
//!   `ResourceArns`, each resource has its `ResourceSpecificResults` member; the top level
//!   carries the deciding statements of the resources that share the top-level decision and the
//!   missing keys of all. AWS names the action's resource type pattern (such as
//!   `arn:aws:s3:::${BucketName}/${KeyName}`) as the top-level `EvalResourceName` of several
//!   resources; keyhole says `*`.
//! - `MatchedStatements` (https://docs.aws.amazon.com/IAM/latest/APIReference/API_Statement.html):
//!   `SourcePolicyId` is `PolicyInputList.N`, `PermissionsBoundaryPolicyInputList.N`,
//!   `ResourcePolicy`, or the stored policy's name; `SourcePolicyType` is one of the documented
//!   values (`user`, `group`, `role` for inline policies, `user-managed` for managed ones,
//!   `resource`, `none` for policies given as input; AWS has been seen answering `IAM Policy`
//!   there instead). Positions are 1-based: `StartPosition` at the statement's `{`,
//!   `EndPosition` one column past its `}`. AWS's example
//!   (https://docs.aws.amazon.com/cli/latest/reference/iam/simulate-custom-policy.html) ends
//!   there too but starts one column later, after the `{` of a `Statement` written as a single
//!   object; statements in an array start at their `{` in AWS's answers as well.
//! - `MissingContextValues`: the keys the deciding policies read and the request lacked, spelled
//!   as in the policies. When the caller is known (`CallerArn`, or the user or role of
//!   `PolicySourceArn`), `aws:username`, `aws:PrincipalArn`, `aws:PrincipalAccount` and
//!   `aws:PrincipalType` come from it unless `ContextEntries` gives them.
//! - `PermissionsBoundaryDecisionDetail.AllowedByPermissionsBoundary`: whether the boundary alone
//!   allows the action on the resource, whatever the other policies say.
//!
//! Not served: `ResourceHandlingOption` (AWS's EC2 scenarios) is refused with `InvalidInput`;
//! `EvalDecisionDetails` and `OrganizationsDecisionDetail` are not returned (keyhole has no
//! Organizations, and same-account answers carry no details).

use http::StatusCode;
use keyhole_policy::condition::CompiledCondition;
use keyhole_policy::model::Operator;
use keyhole_policy::simulate::{fill_principal_keys, fill_request_keys};
use keyhole_policy::{
    line_col, parse_policy, CompiledPolicy, Context, DecisionKind, Evaluator, Policies, Policy,
    PolicyKind, Request, RequestPrincipal, StatementRef,
};

use super::paging::MAX_ITEMS;
use super::{members, required};
use crate::error::S3Error;
use crate::s3::route::Query;
use crate::state::{PrincipalKind, State, StoredPolicy};
use crate::xml::XmlWriter;

/// Most evaluations (actions × resources) one simulation may ask for.
pub const MAX_SIMULATED_EVALUATIONS: usize = 1000;

/// `InvalidInput` (400), the error AWS gives for malformed simulator input.
fn invalid(message: impl Into<String>) -> S3Error {
    S3Error::new("InvalidInput", StatusCode::BAD_REQUEST, message)
}

/// One policy in a simulation and where it came from.
struct Source {
    /// `SourcePolicyId`.
    id: String,
    /// `SourcePolicyType`.
    kind: &'static str,
    /// The document as given or stored: positions refer to it.
    text: String,
    /// The parsed document (its context keys as written).
    policy: Policy,
    /// The document compiled for its role.
    compiled: CompiledPolicy,
}

impl Source {
    /// A policy given in the request (`PolicyInputList.1`, ...): an error is `InvalidInput`.
    fn input(
        id: String,
        kind: &'static str,
        text: String,
        role: PolicyKind,
    ) -> Result<Self, S3Error> {
        Self::new(id, kind, text, role).map_err(invalid)
    }

    /// A stored policy: one that no longer compiles is AWS's `PolicyEvaluation` (500), "a
    /// provided policy could not be successfully evaluated".
    fn stored(p: &StoredPolicy, role: PolicyKind) -> Result<Self, S3Error> {
        let kind = match p.inline_of {
            Some(PrincipalKind::User) => "user",
            Some(PrincipalKind::Group) => "group",
            Some(PrincipalKind::Role) => "role",
            None => "user-managed",
        };
        Self::new(p.name.clone(), kind, p.document.clone(), role)
            .map_err(|m| S3Error::new("PolicyEvaluation", StatusCode::INTERNAL_SERVER_ERROR, m))
    }

    fn new(id: String, kind: &'static str, text: String, role: PolicyKind) -> Result<Self, String> {
        let bad =
            |e: &dyn std::fmt::Display| format!("{id} is not a valid {}: {e}", role.describe());
        let policy = parse_policy(&text).map_err(|e| bad(&e))?;
        let compiled = CompiledPolicy::compile(&policy, role).map_err(|e| bad(&e))?;
        Ok(Source {
            id,
            kind,
            text,
            policy,
            compiled,
        })
    }

    fn statement_xml(&self, w: &mut XmlWriter, m: &StatementRef) {
        let (start_line, start_col) = line_col(&self.text, m.span.offset);
        let (end_line, end_col) = line_col(&self.text, m.span.offset + m.span.len);
        w.open("member");
        w.elem("SourcePolicyId", &self.id);
        w.elem("SourcePolicyType", self.kind);
        for (el, line, col) in [
            ("StartPosition", start_line, start_col),
            ("EndPosition", end_line, end_col),
        ] {
            w.open(el);
            w.elem("Line", &line.to_string());
            w.elem("Column", &col.to_string());
            w.close(el);
        }
        w.close("member");
    }
}

/// The policies of one simulation.
#[derive(Default)]
struct PolicySet {
    identity: Vec<Source>,
    boundaries: Vec<Source>,
    resource: Option<Source>,
}

impl PolicySet {
    fn all(&self) -> impl Iterator<Item = &Source> {
        self.identity
            .iter()
            .chain(&self.boundaries)
            .chain(self.resource.as_ref())
    }

    /// Context keys as written, once each (case-insensitively), in policy order.
    fn context_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for k in self.all().flat_map(|s| s.policy.context_keys()) {
            if !keys.iter().any(|seen| seen.eq_ignore_ascii_case(&k)) {
                keys.push(k);
            }
        }
        keys
    }

    fn source(&self, m: &StatementRef) -> Option<&Source> {
        match m.policy_kind {
            PolicyKind::Identity => self.identity.get(m.policy_index),
            PolicyKind::PermissionsBoundary => self.boundaries.get(m.policy_index),
            PolicyKind::Resource => self.resource.as_ref(),
            PolicyKind::Session => None,
        }
    }
}

/// The simulated caller. `fill` says whether it is known (its keys fill the context).
struct Caller {
    principal: RequestPrincipal,
    fill: bool,
}

impl Caller {
    /// `CallerArn`: "You can specify only the ARN of an IAM user" (API_SimulateCustomPolicy).
    fn from_param(q: &Query) -> Result<Option<Caller>, S3Error> {
        let Some(arn) = q.get("CallerArn").filter(|a| !a.is_empty()) else {
            return Ok(None);
        };
        match RequestPrincipal::from_arn(arn, None) {
            p @ RequestPrincipal::User { .. } => Ok(Some(Caller {
                principal: p,
                fill: true,
            })),
            _ => Err(invalid(format!(
                "CallerArn must be the ARN of an IAM user (arn:aws:iam::ACCOUNT:user/NAME), not `{arn}`"
            ))),
        }
    }

    /// No caller: a user of the account whose keys are not filled in, so `MissingContextValues`
    /// names what a real caller would supply.
    fn unknown(account_id: &str) -> Caller {
        Caller {
            principal: RequestPrincipal::User {
                arn: format!("arn:aws:iam::{account_id}:user/simulated-caller"),
                account: account_id.to_owned(),
            },
            fill: false,
        }
    }
}

/// The request parameters common to both simulations.
struct Scenario {
    actions: Vec<String>,
    /// `None`: `ResourceArns` absent, the simulation is on `*`.
    resources: Option<Vec<String>>,
    resource_account: Option<String>,
    context: Context,
    max_items: Option<usize>,
    marker: usize,
}

/// AWS's context key types
/// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_ContextEntry.html), with the
/// operator whose value rules check a value of the type (`None`: any string).
const CONTEXT_KEY_TYPES: [(&str, Option<&str>); 6] = [
    ("string", None),
    ("numeric", Some("NumericEquals")),
    ("boolean", Some("Null")),
    ("ip", Some("IpAddress")),
    ("binary", Some("BinaryEquals")),
    ("date", Some("DateEquals")),
];

/// `ContextEntries.member.N.{ContextKeyName, ContextKeyValues.member.M, ContextKeyType}`.
fn context_entries(q: &Query) -> Result<Context, S3Error> {
    let mut ctx = Context::new();
    for i in 1.. {
        let p = format!("ContextEntries.member.{i}");
        let name = q.get(&format!("{p}.ContextKeyName"));
        let ty = q.get(&format!("{p}.ContextKeyType"));
        let values = members(q, &format!("{p}.ContextKeyValues"));
        if name.is_none() && ty.is_none() && values.is_empty() {
            break;
        }
        let name = name.filter(|n| !n.is_empty()).ok_or_else(|| {
            invalid(format!("{p}.ContextKeyName is required: the context key the values are for, such as aws:SourceIp"))
        })?;
        // An entry without a type is a string, or a string list when it has several values.
        let ty = ty.unwrap_or(if values.len() > 1 {
            "stringList"
        } else {
            "string"
        });
        let (base, list) = match ty.strip_suffix("List") {
            Some(b) => (b, true),
            None => (ty, false),
        };
        let Some((_, operator)) = CONTEXT_KEY_TYPES.iter().find(|(t, _)| *t == base) else {
            return Err(invalid(format!(
                "{p}.ContextKeyType `{ty}` is not a context key type; expected one of string, stringList, numeric, numericList, boolean, booleanList, ip, ipList, binary, binaryList, date, dateList"
            )));
        };
        if !list && values.len() != 1 {
            return Err(invalid(format!(
                "{p} (`{name}`, type {ty}) needs exactly one value in ContextKeyValues, not {}; use type {ty}List for several",
                values.len()
            )));
        }
        if let Some(op) = operator.and_then(Operator::parse) {
            for v in &values {
                CompiledCondition::validate_texts(op, &[v], false).map_err(|e| {
                    invalid(format!(
                        "{p}.ContextKeyValues: `{v}` is not a valid {ty} value for `{name}`; expected {}",
                        e.expected
                    ))
                })?;
            }
        }
        // A binary value is given in base64 ("binary" in API_ContextEntry.html); the request
        // context holds the bytes themselves, which BinaryEquals compares with the policy's
        // decoded values. Context values are text, so bytes that are not UTF-8 are refused.
        let values = if base == "binary" {
            values
                .iter()
                .map(|v| {
                    keyhole_policy::condition::binary::decode(v.trim())
                        .and_then(|b| String::from_utf8(b).ok())
                        .ok_or_else(|| {
                            invalid(format!(
                                "{p}.ContextKeyValues: `{v}` for `{name}` decodes to bytes that are not UTF-8 text, which keyhole's context cannot hold; give binary values that decode to text"
                            ))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?
        } else {
            values
        };
        if list {
            ctx.insert_multi(name, values);
        } else if let Some(v) = values.into_iter().next() {
            ctx.insert(name, v);
        }
    }
    Ok(ctx)
}

/// The account of `ResourceOwner`: "An ARN representing the Amazon Web Services account ID"
/// (`arn:aws:iam::123456789012:root`); a bare 12-digit id is accepted too.
fn resource_owner(q: &Query) -> Result<Option<String>, S3Error> {
    let Some(v) = q.get("ResourceOwner").filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let account = match keyhole_policy::pattern::split_arn(v) {
        Some(["arn", _, _, _, account, _]) => account,
        _ => v,
    };
    if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) {
        Ok(Some(account.to_owned()))
    } else {
        Err(invalid(format!(
            "ResourceOwner `{v}` names no account; expected an ARN such as arn:aws:iam::123456789012:root"
        )))
    }
}

fn scenario(q: &Query) -> Result<Scenario, S3Error> {
    if let Some(opt) = q.get("ResourceHandlingOption").filter(|v| !v.is_empty()) {
        return Err(invalid(format!(
            "ResourceHandlingOption `{opt}` is not supported: keyhole simulates each action on each of ResourceArns as given; omit ResourceHandlingOption"
        )));
    }
    let actions = members(q, "ActionNames");
    if actions.is_empty() {
        return Err(missing_list("actionNames"));
    }
    for a in &actions {
        // "Each operation must include the service identifier, such as iam:CreateUser. This
        // operation does not support using wildcards (*) in an action name."
        let named = a
            .split_once(':')
            .is_some_and(|(s, n)| !s.is_empty() && !n.is_empty());
        if !named || a.contains(['*', '?']) {
            return Err(invalid(format!(
                "ActionNames: `{a}` is not an action name; expected a service prefix and an action without wildcards, such as s3:GetObject"
            )));
        }
    }
    let resources = members(q, "ResourceArns");
    let resources = (!resources.is_empty()).then_some(resources);
    let evaluations = actions
        .len()
        .saturating_mul(resources.as_ref().map_or(1, Vec::len));
    if evaluations > MAX_SIMULATED_EVALUATIONS {
        return Err(invalid(format!(
            "{evaluations} evaluations (ActionNames × ResourceArns) is more than {MAX_SIMULATED_EVALUATIONS}; split the simulation"
        )));
    }
    let max_items = match q.get("MaxItems") {
        None => None,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_ITEMS).contains(&n) => Some(n),
            _ => {
                return Err(invalid(format!(
                    "MaxItems `{v}` must be a number from 1 to {MAX_ITEMS}"
                )))
            }
        },
    };
    let marker = match q.get("Marker") {
        None => 0,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|&m| m > 0 && m < actions.len())
            .ok_or_else(|| {
                invalid(format!(
                    "Marker `{v}` is not one this simulation returned; pass the Marker of the previous page"
                ))
            })?,
    };
    Ok(Scenario {
        actions,
        resources,
        resource_account: resource_owner(q)?,
        context: context_entries(q)?,
        max_items,
        marker,
    })
}

/// `ValidationError` for a missing required list, worded as [`required`] words a missing value.
fn missing_list(name: &str) -> S3Error {
    S3Error::new(
        "ValidationError",
        StatusCode::BAD_REQUEST,
        format!("1 validation error detected: Value null at '{name}' failed to satisfy constraint: Member must not be null"),
    )
}

/// The decision on one (action, resource).
struct Outcome {
    decision: DecisionKind,
    matched: Vec<StatementRef>,
    /// Lowercased, sorted.
    missing: Vec<String>,
    /// `Some` when a boundary is in play: whether it allows.
    boundary_allows: Option<bool>,
}

fn severity(d: DecisionKind) -> u8 {
    match d {
        DecisionKind::Allowed => 0,
        DecisionKind::ImplicitlyDenied => 1,
        DecisionKind::ExplicitlyDenied => 2,
    }
}

fn decision_word(d: DecisionKind) -> &'static str {
    match d {
        DecisionKind::Allowed => "allowed",
        DecisionKind::ExplicitlyDenied => "explicitDeny",
        DecisionKind::ImplicitlyDenied => "implicitDeny",
    }
}

struct Simulator<'a> {
    set: &'a PolicySet,
    caller: &'a Caller,
    identity: Vec<CompiledPolicy>,
    boundaries: Vec<CompiledPolicy>,
    /// The policies' context keys as written.
    keys: Vec<String>,
}

impl<'a> Simulator<'a> {
    fn new(set: &'a PolicySet, caller: &'a Caller) -> Self {
        Simulator {
            set,
            caller,
            identity: set.identity.iter().map(|s| s.compiled.clone()).collect(),
            boundaries: set.boundaries.iter().map(|s| s.compiled.clone()).collect(),
            keys: set.context_keys(),
        }
    }

    fn evaluate(&self, sc: &Scenario, action: &str, resource: &str) -> Outcome {
        let mut context = sc.context.clone();
        if self.caller.fill {
            fill_principal_keys(&mut context, &self.caller.principal);
        }
        // The keys the gateway sets on every request, whoever calls (the same engine must see
        // the same context: review 34, M1).
        fill_request_keys(
            &mut context,
            &self.caller.principal,
            action,
            sc.resource_account.as_deref(),
        );
        let request = Request::new(
            self.caller.principal.clone(),
            action,
            resource,
            sc.resource_account.as_deref(),
            context,
        );
        let policies = Policies {
            identity: &self.identity,
            resource: self.set.resource.as_ref().map(|s| &s.compiled),
            boundaries: &self.boundaries,
            session: None,
            restrict_public_buckets: false,
            resource_gate: keyhole_policy::ResourceGate::Union,
        };
        let decision = Evaluator::evaluate(&policies, &request);
        // The boundary on its own: the engine decides it as the only identity-based policy (a
        // boundary compiles under the same rules), so an explicit deny in it counts too.
        let boundary_allows = (!self.boundaries.is_empty()).then(|| {
            self.boundaries.iter().all(|b| {
                let alone = Policies {
                    identity: std::slice::from_ref(b),
                    ..Policies::default()
                };
                Evaluator::is_allowed(&alone, &request) == DecisionKind::Allowed
            })
        });
        Outcome {
            decision: decision.kind,
            matched: decision.matched,
            missing: decision.missing_context_keys,
            boundary_allows,
        }
    }

    /// The keys of `missing` as the policies spell them.
    fn written(&self, missing: &[String]) -> Vec<String> {
        missing
            .iter()
            .map(|m| {
                self.keys
                    .iter()
                    .find(|k| k.eq_ignore_ascii_case(m))
                    .cloned()
                    .unwrap_or_else(|| m.clone())
            })
            .collect()
    }

    fn details_xml(
        &self,
        w: &mut XmlWriter,
        matched: &[StatementRef],
        missing: &[String],
        boundary: Option<bool>,
    ) {
        w.open("MatchedStatements");
        for m in matched {
            if let Some(src) = self.set.source(m) {
                src.statement_xml(w, m);
            }
        }
        w.close("MatchedStatements");
        w.open("MissingContextValues");
        for k in self.written(missing) {
            w.elem("member", &k);
        }
        w.close("MissingContextValues");
        if let Some(allowed) = boundary {
            w.open("PermissionsBoundaryDecisionDetail");
            w.elem(
                "AllowedByPermissionsBoundary",
                if allowed { "true" } else { "false" },
            );
            w.close("PermissionsBoundaryDecisionDetail");
        }
    }

    /// The `EvaluationResults` member of one action.
    fn action_xml(&self, w: &mut XmlWriter, sc: &Scenario, action: &str) {
        w.open("member");
        w.elem("EvalActionName", action);
        let Some(resources) = &sc.resources else {
            let o = self.evaluate(sc, action, "*");
            w.elem("EvalResourceName", "*");
            w.elem("EvalDecision", decision_word(o.decision));
            self.details_xml(w, &o.matched, &o.missing, o.boundary_allows);
            w.close("member");
            return;
        };
        let outcomes: Vec<(&String, Outcome)> = resources
            .iter()
            .map(|r| (r, self.evaluate(sc, action, r)))
            .collect();
        let top = outcomes
            .iter()
            .map(|(_, o)| o.decision)
            .max_by_key(|d| severity(*d))
            .unwrap_or(DecisionKind::ImplicitlyDenied);
        let mut matched: Vec<StatementRef> = Vec::new();
        let mut missing: Vec<String> = Vec::new();
        for (_, o) in &outcomes {
            if o.decision == top {
                for m in &o.matched {
                    if !matched.contains(m) {
                        matched.push(m.clone());
                    }
                }
            }
            for k in &o.missing {
                if !missing.contains(k) {
                    missing.push(k.clone());
                }
            }
        }
        missing.sort();
        let boundary = outcomes
            .iter()
            .map(|(_, o)| o.boundary_allows)
            .reduce(|a, b| Some(a? && b?))
            .flatten();
        let name = match resources.as_slice() {
            [one] => one.as_str(),
            _ => "*",
        };
        w.elem("EvalResourceName", name);
        w.elem("EvalDecision", decision_word(top));
        self.details_xml(w, &matched, &missing, boundary);
        w.open("ResourceSpecificResults");
        for (r, o) in &outcomes {
            w.open("member");
            w.elem("EvalResourceName", r);
            w.elem("EvalResourceDecision", decision_word(o.decision));
            self.details_xml(w, &o.matched, &o.missing, o.boundary_allows);
            w.close("member");
        }
        w.close("ResourceSpecificResults");
        w.close("member");
    }

    /// `EvaluationResults`, paged by `MaxItems`/`Marker` over the actions.
    fn results_xml(&self, w: &mut XmlWriter, sc: &Scenario) {
        let end = sc
            .max_items
            .map_or(sc.actions.len(), |n| (sc.marker + n).min(sc.actions.len()));
        w.open("EvaluationResults");
        for a in sc.actions.get(sc.marker..end).unwrap_or_default() {
            self.action_xml(w, sc, a);
        }
        w.close("EvaluationResults");
        if end < sc.actions.len() {
            w.elem("IsTruncated", "true");
            w.elem("Marker", &end.to_string());
        } else {
            w.elem("IsTruncated", "false");
        }
    }
}

/// `PolicyInputList.member.N` (identity-based policies given as text).
fn input_policies(q: &Query) -> Result<Vec<Source>, S3Error> {
    members(q, "PolicyInputList")
        .into_iter()
        .enumerate()
        .map(|(i, text)| {
            Source::input(
                format!("PolicyInputList.{}", i + 1),
                "none",
                text,
                PolicyKind::Identity,
            )
        })
        .collect()
}

/// `PermissionsBoundaryPolicyInputList.member.N`: "You can input only one permissions boundary
/// when you pass a policy to this operation" (API_SimulatePrincipalPolicy).
fn input_boundary(q: &Query) -> Result<Option<Source>, S3Error> {
    let mut texts = members(q, "PermissionsBoundaryPolicyInputList");
    if texts.len() > 1 {
        return Err(invalid(format!(
            "PermissionsBoundaryPolicyInputList has {} policies; an entity has at most one permissions boundary, so pass one",
            texts.len()
        )));
    }
    texts
        .pop()
        .map(|t| {
            Source::input(
                "PermissionsBoundaryPolicyInputList.1".to_owned(),
                "none",
                t,
                PolicyKind::PermissionsBoundary,
            )
        })
        .transpose()
}

fn resource_policy(q: &Query) -> Result<Option<Source>, S3Error> {
    q.get("ResourcePolicy")
        .filter(|t| !t.is_empty())
        .map(|t| {
            Source::input(
                "ResourcePolicy".to_owned(),
                "resource",
                t.to_owned(),
                PolicyKind::Resource,
            )
        })
        .transpose()
}

/// The entity `PolicySourceArn` names: a user, group or role of this account.
fn policy_source(q: &Query, account_id: &str) -> Result<(PrincipalKind, String, String), S3Error> {
    let arn = required(q, "PolicySourceArn")?;
    let malformed = || {
        invalid(format!(
            "PolicySourceArn `{arn}` is not the ARN of an IAM user, group or role (arn:aws:iam::ACCOUNT:user/NAME, group/NAME or role/NAME)"
        ))
    };
    let Some(["arn", _, "iam", "", account, rest]) = keyhole_policy::pattern::split_arn(arn) else {
        return Err(malformed());
    };
    let (kind, path_name) = if let Some(r) = rest.strip_prefix("user/") {
        (PrincipalKind::User, r)
    } else if let Some(r) = rest.strip_prefix("group/") {
        (PrincipalKind::Group, r)
    } else if let Some(r) = rest.strip_prefix("role/") {
        (PrincipalKind::Role, r)
    } else {
        return Err(malformed());
    };
    let name = path_name.rsplit('/').next().unwrap_or_default();
    if name.is_empty() {
        return Err(malformed());
    }
    let missing = || {
        S3Error::new(
            "NoSuchEntity",
            StatusCode::NOT_FOUND,
            format!(
                "The {} {arn} cannot be found in account {account_id}.",
                kind.word()
            ),
        )
    };
    if account != account_id {
        return Err(missing());
    }
    Ok((kind, name.to_owned(), arn.to_owned()))
}

/// The stored policies of the entity of `PolicySourceArn` plus `PolicyInputList`, and its
/// boundary (replaced by `PermissionsBoundaryPolicyInputList` when given).
fn principal_policies(
    state: &State,
    q: &Query,
    account_id: &str,
) -> Result<(PrincipalKind, String, PolicySet), S3Error> {
    let (kind, name, arn) = policy_source(q, account_id)?;
    let entity = state.entity_policies(kind, &name)?;
    if entity.arn != arn {
        return Err(S3Error::new(
            "NoSuchEntity",
            StatusCode::NOT_FOUND,
            format!(
                "The {} {arn} cannot be found (its ARN is {}).",
                kind.word(),
                entity.arn
            ),
        ));
    }
    let mut set = PolicySet::default();
    for p in &entity.policies {
        set.identity.push(Source::stored(p, PolicyKind::Identity)?);
    }
    set.identity.extend(input_policies(q)?);
    set.boundaries = match input_boundary(q)? {
        Some(b) => vec![b],
        None => entity
            .boundary
            .as_ref()
            .map(|b| Source::stored(b, PolicyKind::PermissionsBoundary))
            .transpose()?
            .into_iter()
            .collect(),
    };
    Ok((kind, entity.arn, set))
}

/// SimulateCustomPolicy.
pub fn simulate_custom(q: &Query, account_id: &str, w: &mut XmlWriter) -> Result<(), S3Error> {
    let sc = scenario(q)?;
    let identity = input_policies(q)?;
    if identity.is_empty() {
        return Err(missing_list("policyInputList"));
    }
    let set = PolicySet {
        identity,
        boundaries: input_boundary(q)?.into_iter().collect(),
        resource: resource_policy(q)?,
    };
    let caller = Caller::from_param(q)?;
    if set.resource.is_some() && caller.is_none() {
        return Err(invalid(
            "CallerArn is required with ResourcePolicy, so that the policy's Principal element has a caller to match; pass the ARN of an IAM user",
        ));
    }
    let caller = caller.unwrap_or_else(|| Caller::unknown(account_id));
    Simulator::new(&set, &caller).results_xml(w, &sc);
    Ok(())
}

/// SimulatePrincipalPolicy.
pub fn simulate_principal(
    state: &State,
    q: &Query,
    account_id: &str,
    w: &mut XmlWriter,
) -> Result<(), S3Error> {
    let sc = scenario(q)?;
    let (kind, arn, mut set) = principal_policies(state, q, account_id)?;
    set.resource = resource_policy(q)?;
    // "If you do not specify a CallerArn, it defaults to the ARN of the user that you specify in
    // PolicySourceArn, if you specified a user ... CallerArn is required if you include a
    // ResourcePolicy and the PolicySourceArn is not the ARN for an IAM user."
    let entity = || Caller {
        principal: RequestPrincipal::from_arn(&arn, None),
        fill: true,
    };
    let caller = match Caller::from_param(q)? {
        Some(c) => c,
        None if kind == PrincipalKind::User => entity(),
        None if set.resource.is_some() => {
            return Err(invalid(
                "CallerArn is required with ResourcePolicy when PolicySourceArn is not a user; pass the ARN of an IAM user",
            ))
        }
        None if kind == PrincipalKind::Role => entity(),
        None => Caller::unknown(account_id),
    };
    Simulator::new(&set, &caller).results_xml(w, &sc);
    Ok(())
}

fn context_keys_xml(w: &mut XmlWriter, set: &PolicySet) {
    w.open("ContextKeyNames");
    for k in set.context_keys() {
        w.elem("member", &k);
    }
    w.close("ContextKeyNames");
}

/// GetContextKeysForCustomPolicy.
pub fn context_keys_custom(q: &Query, w: &mut XmlWriter) -> Result<(), S3Error> {
    let identity = input_policies(q)?;
    if identity.is_empty() {
        return Err(missing_list("policyInputList"));
    }
    context_keys_xml(
        w,
        &PolicySet {
            identity,
            ..PolicySet::default()
        },
    );
    Ok(())
}

/// GetContextKeysForPrincipalPolicy.
pub fn context_keys_principal(
    state: &State,
    q: &Query,
    account_id: &str,
    w: &mut XmlWriter,
) -> Result<(), S3Error> {
    let (_, _, set) = principal_policies(state, q, account_id)?;
    context_keys_xml(w, &set);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::Element;

    const ACCOUNT: &str = "123456789012";
    const READ_B: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Read","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;

    fn query(pairs: &[(&str, &str)]) -> Query {
        let raw: Vec<String> = pairs
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    super::super::url_encode(k),
                    super::super::url_encode(v)
                )
            })
            .collect();
        Query::parse(Some(&raw.join("&")))
    }

    fn answer(f: impl FnOnce(&mut XmlWriter) -> Result<(), S3Error>) -> Result<Element, S3Error> {
        let mut w = XmlWriter::new();
        w.root_ns("R", super::super::IAM_NS);
        f(&mut w)?;
        w.close("R");
        Ok(crate::xml::parse(w.finish().as_bytes()).unwrap())
    }

    fn custom(pairs: &[(&str, &str)]) -> Result<Element, S3Error> {
        let q = query(pairs);
        answer(|w| simulate_custom(&q, ACCOUNT, w))
    }

    fn results(e: &Element) -> Vec<&Element> {
        e.child("EvaluationResults")
            .unwrap()
            .children_named("member")
            .collect()
    }

    fn texts<'a>(e: &'a Element, list: &str) -> Vec<&'a str> {
        e.child(list)
            .map(|l| {
                l.children_named("member")
                    .map(|m| m.text.as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn state() -> (tempfile::TempDir, State) {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(dir.path(), &[1u8; 32], ACCOUNT).unwrap();
        (dir, s)
    }

    fn position(m: &Element, el: &str) -> (u32, u32) {
        let p = m.child(el).unwrap();
        (
            p.child_text("Line").unwrap().parse().unwrap(),
            p.child_text("Column").unwrap().parse().unwrap(),
        )
    }

    /// The AWS CLI example of simulate-custom-policy
    /// (https://docs.aws.amazon.com/cli/latest/reference/iam/simulate-custom-policy.html): a date
    /// condition satisfied by a typed context entry, the statement's end at line 1 column 167.
    #[test]
    fn api_simulate_custom_policy_cli_example() {
        let policy = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"dynamodb:*","Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2018-08-16T12:00:00Z"}}}}"#;
        let run = |time: &str| {
            custom(&[
                ("PolicyInputList.member.1", policy),
                ("ActionNames.member.1", "dynamodb:CreateBackup"),
                ("ContextEntries.member.1.ContextKeyName", "aws:CurrentTime"),
                ("ContextEntries.member.1.ContextKeyValues.member.1", time),
                ("ContextEntries.member.1.ContextKeyType", "date"),
            ])
            .unwrap()
        };
        let out = run("2019-04-25T11:00:00Z");
        assert_eq!(out.child_text("IsTruncated"), Some("false"));
        let r = results(&out);
        assert_eq!(r.len(), 1);
        assert_eq!(
            r[0].child_text("EvalActionName"),
            Some("dynamodb:CreateBackup")
        );
        assert_eq!(r[0].child_text("EvalResourceName"), Some("*"));
        assert_eq!(r[0].child_text("EvalDecision"), Some("allowed"));
        let m: Vec<&Element> = r[0]
            .child("MatchedStatements")
            .unwrap()
            .children_named("member")
            .collect();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].child_text("SourcePolicyId"), Some("PolicyInputList.1"));
        assert_eq!(m[0].child_text("SourcePolicyType"), Some("none"));
        assert_eq!(position(m[0], "StartPosition"), (1, 37));
        assert_eq!(position(m[0], "EndPosition"), (1, 167));
        assert!(texts(r[0], "MissingContextValues").is_empty());
        assert!(r[0].child("ResourceSpecificResults").is_none());

        let r = run("2017-01-01T00:00:00Z");
        assert_eq!(
            results(&r)[0].child_text("EvalDecision"),
            Some("implicitDeny")
        );
        assert!(results(&r)[0]
            .child("MatchedStatements")
            .unwrap()
            .children
            .is_empty());
    }

    /// Condition keys the request lacks are named as the policy spells them; a negated operator
    /// holds when its key is absent ("...IfExists" aside), so an off-network deny applies then
    /// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html).
    #[test]
    fn missing_context_values_and_context_entries() {
        let on_net = r#"{"Version":"2012-10-17","Statement":[{"Sid":"OnNet","Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#;
        let off_net = r#"{"Version":"2012-10-17","Statement":[{"Sid":"OffNet","Effect":"Deny","Action":"s3:*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#;
        let run = |policies: &[&str], ip: Option<&str>| {
            let mut pairs: Vec<(String, String)> = policies
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("PolicyInputList.member.{}", i + 1), (*p).to_owned()))
                .collect();
            pairs.push(("ActionNames.member.1".into(), "s3:GetObject".into()));
            pairs.push(("ResourceArns.member.1".into(), "arn:aws:s3:::b/k".into()));
            if let Some(ip) = ip {
                pairs.push((
                    "ContextEntries.member.1.ContextKeyName".into(),
                    "AWS:SOURCEIP".into(),
                ));
                pairs.push((
                    "ContextEntries.member.1.ContextKeyValues.member.1".into(),
                    ip.into(),
                ));
                pairs.push(("ContextEntries.member.1.ContextKeyType".into(), "ip".into()));
            }
            let refs: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let out = custom(&refs).unwrap();
            let top = results(&out)[0].clone();
            top
        };
        let r = run(&[on_net], None);
        assert_eq!(r.child_text("EvalDecision"), Some("implicitDeny"));
        assert_eq!(texts(&r, "MissingContextValues"), ["aws:SourceIp"]);
        let one = r
            .child("ResourceSpecificResults")
            .unwrap()
            .child("member")
            .unwrap();
        assert_eq!(texts(one, "MissingContextValues"), ["aws:SourceIp"]);
        let r = run(&[on_net], Some("10.1.2.3"));
        assert_eq!(r.child_text("EvalDecision"), Some("allowed"));
        assert!(texts(&r, "MissingContextValues").is_empty());
        let m = r
            .child("MatchedStatements")
            .unwrap()
            .child("member")
            .unwrap();
        assert_eq!(m.child_text("SourcePolicyId"), Some("PolicyInputList.1"));

        let r = run(&[on_net, off_net], None);
        assert_eq!(r.child_text("EvalDecision"), Some("explicitDeny"));
        let m = r
            .child("MatchedStatements")
            .unwrap()
            .child("member")
            .unwrap();
        assert_eq!(m.child_text("SourcePolicyId"), Some("PolicyInputList.2"));
        assert_eq!(texts(&r, "MissingContextValues"), ["aws:SourceIp"]);
        assert_eq!(
            run(&[on_net, off_net], Some("10.1.2.3")).child_text("EvalDecision"),
            Some("allowed")
        );
        assert_eq!(
            run(&[on_net, off_net], Some("203.0.113.9")).child_text("EvalDecision"),
            Some("explicitDeny")
        );
    }

    /// Several resources: one result per action, the most restrictive decision on top
    /// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_EvaluationResult.html).
    #[test]
    fn several_resources_have_resource_specific_results() {
        let out = custom(&[
            ("PolicyInputList.member.1", READ_B),
            ("ActionNames.member.1", "s3:GetObject"),
            ("ResourceArns.member.1", "arn:aws:s3:::b/k"),
            ("ResourceArns.member.2", "arn:aws:s3:::other/k"),
        ])
        .unwrap();
        let r = results(&out);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].child_text("EvalResourceName"), Some("*"));
        assert_eq!(r[0].child_text("EvalDecision"), Some("implicitDeny"));
        let per: Vec<(&str, &str)> = r[0]
            .child("ResourceSpecificResults")
            .unwrap()
            .children_named("member")
            .map(|m| {
                (
                    m.child_text("EvalResourceName").unwrap(),
                    m.child_text("EvalResourceDecision").unwrap(),
                )
            })
            .collect();
        assert_eq!(
            per,
            [
                ("arn:aws:s3:::b/k", "allowed"),
                ("arn:aws:s3:::other/k", "implicitDeny")
            ]
        );
    }

    #[test]
    fn a_boundary_limits_and_says_so() {
        let all = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
        let out = custom(&[
            ("PolicyInputList.member.1", all),
            ("PermissionsBoundaryPolicyInputList.member.1", READ_B),
            ("ActionNames.member.1", "s3:GetObject"),
            ("ActionNames.member.2", "s3:DeleteObject"),
            ("ResourceArns.member.1", "arn:aws:s3:::b/k"),
        ])
        .unwrap();
        let r = results(&out);
        let boundary = |e: &Element| {
            e.child("PermissionsBoundaryDecisionDetail")
                .and_then(|d| d.child_text("AllowedByPermissionsBoundary"))
                .map(str::to_owned)
        };
        assert_eq!(r[0].child_text("EvalDecision"), Some("allowed"));
        assert_eq!(boundary(r[0]).as_deref(), Some("true"));
        let types: Vec<&str> = r[0]
            .child("MatchedStatements")
            .unwrap()
            .children_named("member")
            .map(|m| m.child_text("SourcePolicyId").unwrap())
            .collect();
        assert_eq!(
            types,
            ["PolicyInputList.1", "PermissionsBoundaryPolicyInputList.1"]
        );
        assert_eq!(r[1].child_text("EvalDecision"), Some("implicitDeny"));
        assert_eq!(boundary(r[1]).as_deref(), Some("false"));
        // Without a boundary there is no detail.
        let out = custom(&[
            ("PolicyInputList.member.1", all),
            ("ActionNames.member.1", "s3:GetObject"),
        ])
        .unwrap();
        assert!(boundary(results(&out)[0]).is_none());
    }

    #[test]
    fn resource_policy_needs_a_user_caller() {
        let bucket = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/ann"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;
        let none = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}]}"#;
        let base = [
            ("PolicyInputList.member.1", none),
            ("ActionNames.member.1", "s3:GetObject"),
            ("ResourceArns.member.1", "arn:aws:s3:::b/k"),
            ("ResourcePolicy", bucket),
        ];
        let e = custom(&base).unwrap_err();
        assert_eq!(e.code(), "InvalidInput");
        assert!(e.message().contains("CallerArn"), "{}", e.message());
        let mut with = base.to_vec();
        with.push(("CallerArn", "arn:aws:iam::123456789012:user/ann"));
        let r = custom(&with).unwrap();
        let top = results(&r)[0];
        assert_eq!(top.child_text("EvalDecision"), Some("allowed"));
        let m = top
            .child("MatchedStatements")
            .unwrap()
            .child("member")
            .unwrap();
        assert_eq!(m.child_text("SourcePolicyId"), Some("ResourcePolicy"));
        assert_eq!(m.child_text("SourcePolicyType"), Some("resource"));
        let mut role = base.to_vec();
        role.push(("CallerArn", "arn:aws:iam::123456789012:role/r"));
        assert_eq!(custom(&role).unwrap_err().code(), "InvalidInput");
    }

    #[test]
    fn input_errors_name_the_field() {
        let bad = custom(&[
            ("PolicyInputList.member.1", READ_B),
            (
                "PolicyInputList.member.2",
                r#"{"Statement":[{"Effect":"Allow","Action":"s3:*"}]}"#,
            ),
            ("ActionNames.member.1", "s3:GetObject"),
        ])
        .unwrap_err();
        assert_eq!(bad.code(), "InvalidInput");
        assert!(
            bad.message()
                .starts_with("PolicyInputList.2 is not a valid identity-based policy"),
            "{}",
            bad.message()
        );
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("ResourceHandlingOption", "EC2-VPC-InstanceStore")],
                "ResourceHandlingOption",
            ),
            (&[("ActionNames.member.2", "s3:Get*")], "ActionNames"),
            (
                &[
                    ("ContextEntries.member.1.ContextKeyName", "aws:SourceIp"),
                    (
                        "ContextEntries.member.1.ContextKeyValues.member.1",
                        "not-an-ip",
                    ),
                    ("ContextEntries.member.1.ContextKeyType", "ip"),
                ],
                "ContextEntries.member.1.ContextKeyValues",
            ),
            (
                &[
                    ("ContextEntries.member.1.ContextKeyName", "k:x"),
                    ("ContextEntries.member.1.ContextKeyValues.member.1", "1"),
                    ("ContextEntries.member.1.ContextKeyType", "integer"),
                ],
                "ContextEntries.member.1.ContextKeyType",
            ),
            (
                &[
                    ("ContextEntries.member.1.ContextKeyName", "k:x"),
                    ("ContextEntries.member.1.ContextKeyValues.member.1", "1"),
                    ("ContextEntries.member.1.ContextKeyValues.member.2", "2"),
                    ("ContextEntries.member.1.ContextKeyType", "numeric"),
                ],
                "numericList",
            ),
            (&[("ResourceOwner", "nobody")], "ResourceOwner"),
            (&[("MaxItems", "0")], "MaxItems"),
            (&[("Marker", "7")], "Marker"),
        ];
        for (extra, named) in cases {
            let mut pairs = vec![
                ("PolicyInputList.member.1", READ_B),
                ("ActionNames.member.1", "s3:GetObject"),
            ];
            pairs.extend_from_slice(extra);
            let e = custom(&pairs).unwrap_err();
            assert_eq!(e.code(), "InvalidInput", "{extra:?}");
            assert!(e.message().contains(named), "{named}: {}", e.message());
        }
        let e = custom(&[("PolicyInputList.member.1", READ_B)]).unwrap_err();
        assert_eq!(e.code(), "ValidationError");
        assert!(e.message().contains("actionNames"));
    }

    #[test]
    fn results_page_by_action() {
        let page = |marker: Option<&str>| {
            let mut pairs = vec![
                ("PolicyInputList.member.1", READ_B),
                ("ActionNames.member.1", "s3:GetObject"),
                ("ActionNames.member.2", "s3:PutObject"),
                ("ActionNames.member.3", "s3:DeleteObject"),
                ("MaxItems", "2"),
            ];
            if let Some(m) = marker {
                pairs.push(("Marker", m));
            }
            custom(&pairs).unwrap()
        };
        let first = page(None);
        assert_eq!(results(&first).len(), 2);
        assert_eq!(first.child_text("IsTruncated"), Some("true"));
        let marker = first.child_text("Marker").unwrap().to_owned();
        let second = page(Some(&marker));
        let r = results(&second);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].child_text("EvalActionName"), Some("s3:DeleteObject"));
        assert_eq!(second.child_text("IsTruncated"), Some("false"));
        assert!(second.child("Marker").is_none());
    }

    /// The AWS CLI example of get-context-keys-for-custom-policy
    /// (https://docs.aws.amazon.com/IAM/latest/UserGuide/iam_example_iam_GetContextKeysForCustomPolicy_section.html).
    #[test]
    fn api_get_context_keys_for_custom_policy_cli_example() {
        let q = query(&[
            (
                "PolicyInputList.member.1",
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"dynamodb:*","Resource":"arn:aws:dynamodb:us-west-2:123456789012:table/${aws:username}","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2015-08-16T12:00:00Z"}}}}"#,
            ),
            (
                "PolicyInputList.member.2",
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"s3:*","Resource":"*","Condition":{"DateLessThan":{"AWS:CurrentTime":"2030-01-01T00:00:00Z"},"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}}"#,
            ),
        ]);
        let out = answer(|w| context_keys_custom(&q, w)).unwrap();
        assert_eq!(
            texts(&out, "ContextKeyNames"),
            ["aws:username", "aws:CurrentTime", "aws:SourceIp"]
        );
    }

    #[test]
    fn principal_simulation_reads_user_group_and_boundary() {
        let (_d, s) = state();
        s.create_user("ann", "/").unwrap();
        s.create_group("readers", "/").unwrap();
        s.put_inline_policy(PrincipalKind::Group, "readers", "read", READ_B)
            .unwrap();
        s.add_user_to_group("readers", "ann").unwrap();
        let arn = "arn:aws:iam::123456789012:user/ann";
        let sim = |extra: &[(&str, &str)]| {
            let mut pairs = vec![
                ("PolicySourceArn", arn),
                ("ActionNames.member.1", "s3:GetObject"),
                ("ActionNames.member.2", "s3:PutObject"),
                ("ResourceArns.member.1", "arn:aws:s3:::b/k"),
            ];
            pairs.extend_from_slice(extra);
            let q = query(&pairs);
            answer(|w| simulate_principal(&s, &q, ACCOUNT, w))
        };
        let out = sim(&[]).unwrap();
        let r = results(&out);
        assert_eq!(r[0].child_text("EvalDecision"), Some("allowed"));
        let m = r[0]
            .child("MatchedStatements")
            .unwrap()
            .child("member")
            .unwrap();
        assert_eq!(m.child_text("SourcePolicyId"), Some("read"));
        assert_eq!(m.child_text("SourcePolicyType"), Some("group"));
        assert_eq!(r[1].child_text("EvalDecision"), Some("implicitDeny"));

        // A PolicyInputList adds to the user's policies; a boundary limits them.
        let write = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"*"}]}"#;
        let out = sim(&[("PolicyInputList.member.1", write)]).unwrap();
        assert_eq!(results(&out)[1].child_text("EvalDecision"), Some("allowed"));
        let boundary = s.create_policy("ReadOnly", "/", "", READ_B).unwrap();
        s.set_boundary(PrincipalKind::User, "ann", Some(&s.policy_arn(&boundary)))
            .unwrap();
        let out = sim(&[("PolicyInputList.member.1", write)]).unwrap();
        let r = results(&out);
        assert_eq!(r[0].child_text("EvalDecision"), Some("allowed"));
        assert_eq!(r[1].child_text("EvalDecision"), Some("implicitDeny"));
        let detail = r[1].child("PermissionsBoundaryDecisionDetail").unwrap();
        assert_eq!(
            detail.child_text("AllowedByPermissionsBoundary"),
            Some("false")
        );

        let q = query(&[("PolicySourceArn", arn)]);
        assert!(answer(|w| context_keys_principal(&s, &q, ACCOUNT, w)).is_ok());
        for (bad, code) in [
            ("arn:aws:iam::123456789012:user/nobody", "NoSuchEntity"),
            ("arn:aws:iam::210987654321:user/ann", "NoSuchEntity"),
            (
                "arn:aws:iam::123456789012:user/other-path/ann",
                "NoSuchEntity",
            ),
            ("arn:aws:s3:::b", "InvalidInput"),
        ] {
            let q = query(&[
                ("PolicySourceArn", bad),
                ("ActionNames.member.1", "s3:GetObject"),
            ]);
            let e = answer(|w| simulate_principal(&s, &q, ACCOUNT, w)).unwrap_err();
            assert_eq!(e.code(), code, "{bad}");
        }
    }

    #[test]
    fn principal_context_keys_include_group_and_boundary_policies() {
        let (_d, s) = state();
        s.create_role("r", "/", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#, 3600, "").unwrap();
        s.put_inline_policy(PrincipalKind::Role, "r", "p", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*","Condition":{"StringLike":{"s3:prefix":"${aws:PrincipalTag/team}/*"}}}]}"#).unwrap();
        let b = s.create_policy("B", "/", "", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}"#).unwrap();
        s.set_boundary(PrincipalKind::Role, "r", Some(&s.policy_arn(&b)))
            .unwrap();
        let q = query(&[("PolicySourceArn", "arn:aws:iam::123456789012:role/r")]);
        let out = answer(|w| context_keys_principal(&s, &q, ACCOUNT, w)).unwrap();
        assert_eq!(
            texts(&out, "ContextKeyNames"),
            ["s3:prefix", "aws:PrincipalTag/team", "aws:SecureTransport"]
        );
    }
}
