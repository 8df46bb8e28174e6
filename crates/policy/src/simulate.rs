//! The policy simulator: DESIGN.md section 4 JSON input → decision JSON output.
//!
//! Input:
//! `{"request":{"principal":ARN?,"action":"s3:GetObject","resource":ARN,"resourceAccount":ID?,
//! "context":{"aws:SourceIp":"203.0.113.42","s3:prefix":["a/"]}},"identityPolicies":[doc...],
//! "resourcePolicy":doc?,"trustPolicy":doc?,"permissionBoundaries":[doc]?,"sessionPolicy":doc?}`;
//! a `doc` is a policy object or a string holding the policy JSON. `trustPolicy` (instead of
//! `resourcePolicy`) is a role's trust policy, evaluated with the rules of
//! [`crate::ResourceGate::RoleTrust`] (for `sts:AssumeRole`, `sts:TagSession`, ...).
//!
//! A `doc` given as a JSON object is re-serialized (pretty-printed) before parsing, so statement
//! lines in the output refer to that form; give the policy as a string (or use the CLI flags
//! form, which reads files) to keep the author's lines.
//!
//! Output: `{"decision":"Allowed"|"ImplicitlyDenied"|"ExplicitlyDenied","matchedStatements":[...],
//! "missingContextKeys":[...],"explanation":"...","failures":[...]}` (`failures` lists, for
//! denials, the statements whose action matched and the element or condition that failed).
//!
//! Principal: an ARN classified by [`RequestPrincipal::from_arn`]; `"anonymous"` for an
//! unsigned caller; absent means an IAM user `arn:aws:iam::<resourceAccount>:user/simulated`.
//! `aws:PrincipalArn`, `aws:PrincipalAccount`, `aws:PrincipalType` and (for users)
//! `aws:username` are filled from the principal when the context lacks them, as AWS does
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html>),
//! and so are the keys every request to the gateway has ([`fill_request_keys`]).

use serde_json::{json, Map, Value};

use crate::context::Context;
use crate::eval::{
    CompiledPolicy, Decision, Evaluator, Policies, PolicyError, PolicyKind, Request,
    RequestPrincipal,
};

/// A policy document with an optional display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyText {
    /// Display name (e.g. file name).
    pub name: Option<String>,
    /// The JSON text.
    pub text: String,
}

/// A simulation case.
#[derive(Debug, Clone, Default)]
pub struct SimulateInput {
    /// The caller's ARN, `anonymous`, or `None` for a simulated user.
    pub principal: Option<String>,
    /// The action, e.g. `s3:GetObject`.
    pub action: String,
    /// The resource ARN.
    pub resource: String,
    /// The account owning the resource.
    pub resource_account: Option<String>,
    /// Condition keys.
    pub context: Context,
    /// Identity-based policies.
    pub identity_policies: Vec<PolicyText>,
    /// The resource-based policy.
    pub resource_policy: Option<PolicyText>,
    /// `resource_policy` is a role's trust policy ([`crate::ResourceGate::RoleTrust`]).
    pub trust_policy: bool,
    /// Permissions boundaries.
    pub boundaries: Vec<PolicyText>,
    /// The session policy.
    pub session_policy: Option<PolicyText>,
    /// S3 Block Public Access `RestrictPublicBuckets` for the resource (`"blockPublicAccess"`).
    pub restrict_public_buckets: bool,
}

/// The result of a simulation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulateOutput {
    /// The decision with its explanation.
    pub decision: Decision,
    /// One-line explanation.
    pub explanation: String,
}

/// Why a simulation could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum SimulateError {
    /// The input JSON does not have the expected shape.
    #[error("invalid simulator input at `{path}`: {message}")]
    Input {
        /// JSON path in the input.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A policy document is invalid.
    #[error("invalid {which}: {source}")]
    Policy {
        /// Which policy (`identityPolicies[0]`, `resourcePolicy`, ...).
        which: String,
        /// The error.
        #[diagnostic_source]
        source: PolicyError,
    },
}

fn input_err(path: &str, message: &str) -> SimulateError {
    SimulateError::Input {
        path: path.to_owned(),
        message: message.to_owned(),
    }
}

const DEFAULT_ACCOUNT: &str = "000000000000";

fn compile(
    t: &PolicyText,
    kind: PolicyKind,
    which: String,
) -> Result<CompiledPolicy, SimulateError> {
    let p = CompiledPolicy::from_json(&t.text, kind)
        .map_err(|source| SimulateError::Policy { which, source })?;
    Ok(match &t.name {
        Some(n) => p.with_name(n.clone()),
        None => p,
    })
}

/// Runs one simulation.
pub fn simulate(input: &SimulateInput) -> Result<SimulateOutput, SimulateError> {
    let identity = input
        .identity_policies
        .iter()
        .enumerate()
        .map(|(i, t)| compile(t, PolicyKind::Identity, format!("identityPolicies[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let boundaries = input
        .boundaries
        .iter()
        .enumerate()
        .map(|(i, t)| {
            compile(
                t,
                PolicyKind::PermissionsBoundary,
                format!("permissionBoundaries[{i}]"),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let resource = input
        .resource_policy
        .as_ref()
        .map(|t| compile(t, PolicyKind::Resource, "resourcePolicy".into()))
        .transpose()?;
    let session = input
        .session_policy
        .as_ref()
        .map(|t| compile(t, PolicyKind::Session, "sessionPolicy".into()))
        .transpose()?;

    let mut context = input.context.clone();
    let principal = match input.principal.as_deref() {
        Some("anonymous") => RequestPrincipal::Anonymous,
        Some(arn) => {
            let role_arn = context
                .get("aws:PrincipalArn")
                .and_then(|v| v.values().first().cloned());
            RequestPrincipal::from_arn(arn, role_arn.as_deref())
        }
        None => {
            let account = input.resource_account.as_deref().unwrap_or(DEFAULT_ACCOUNT);
            RequestPrincipal::User {
                arn: format!("arn:aws:iam::{account}:user/simulated"),
                account: account.to_owned(),
            }
        }
    };
    fill_principal_keys(&mut context, &principal);
    fill_request_keys(
        &mut context,
        &principal,
        &input.action,
        input.resource_account.as_deref(),
    );
    let request = Request::new(
        principal,
        &input.action,
        &input.resource,
        input.resource_account.as_deref(),
        context,
    );
    let policies = Policies {
        identity: &identity,
        resource: resource.as_ref(),
        boundaries: &boundaries,
        session: session.as_ref().map(std::slice::from_ref),
        restrict_public_buckets: input.restrict_public_buckets,
        resource_gate: if input.trust_policy {
            crate::eval::ResourceGate::RoleTrust
        } else {
            crate::eval::ResourceGate::Union
        },
    };
    let decision = Evaluator::evaluate(&policies, &request);
    let explanation = decision.explanation(&request);
    Ok(SimulateOutput {
        decision,
        explanation,
    })
}

/// Fills `aws:PrincipalArn`, `aws:PrincipalAccount`, `aws:PrincipalType` and (for users)
/// `aws:username` from the principal, where `ctx` lacks them: every request carries them
/// (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html>).
pub fn fill_principal_keys(ctx: &mut Context, p: &RequestPrincipal) {
    let mut set = |k: &str, v: &str| {
        if ctx.get(k).is_none() {
            ctx.insert(k, v);
        }
    };
    match p {
        RequestPrincipal::Anonymous => {}
        RequestPrincipal::Root { account } => {
            set("aws:PrincipalArn", &format!("arn:aws:iam::{account}:root"));
            set("aws:PrincipalAccount", account);
            set("aws:PrincipalType", "Account");
        }
        RequestPrincipal::User { arn, account } => {
            set("aws:PrincipalArn", arn);
            set("aws:PrincipalAccount", account);
            set("aws:PrincipalType", "User");
            if let Some(name) = arn.rsplit('/').next() {
                set("aws:username", name);
            }
        }
        RequestPrincipal::Role { arn, account } => {
            set("aws:PrincipalArn", arn);
            set("aws:PrincipalAccount", account);
            set("aws:PrincipalType", "AssumedRole");
        }
        RequestPrincipal::Session {
            role_arn, account, ..
        } => {
            set("aws:PrincipalArn", role_arn);
            set("aws:PrincipalAccount", account);
            set("aws:PrincipalType", "AssumedRole");
        }
        RequestPrincipal::Other { account, .. } => {
            if let Some(a) = account {
                set("aws:PrincipalAccount", a);
            }
        }
    }
}

/// Fills the keys every request to keyhole has whatever its caller, where `ctx` lacks them:
/// `aws:ViaAWSService` (false), `aws:PrincipalIsAWSService` (false, on signed requests: not for
/// an anonymous caller), `aws:ResourceAccount` (`resource_account`, else the caller's account)
/// and, for an S3 action, `s3:ResourceAccount`, as the gateway sets them for real requests
/// (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html>),
/// so a simulation decides a policy written with them as the gateway would.
pub fn fill_request_keys(
    ctx: &mut Context,
    p: &RequestPrincipal,
    action: &str,
    resource_account: Option<&str>,
) {
    let mut set = |k: &str, v: &str| {
        if ctx.get(k).is_none() {
            ctx.insert(k, v);
        }
    };
    set("aws:ViaAWSService", "false");
    if !matches!(p, RequestPrincipal::Anonymous) {
        set("aws:PrincipalIsAWSService", "false");
    }
    if let Some(account) = resource_account.or_else(|| p.account()) {
        set("aws:ResourceAccount", account);
        let service = action.split(':').next().unwrap_or_default();
        if service.eq_ignore_ascii_case("s3") {
            set("s3:ResourceAccount", account);
        }
    }
}

fn policy_text(v: &Value, path: &str) -> Result<PolicyText, SimulateError> {
    match v {
        Value::String(s) => Ok(PolicyText {
            name: None,
            text: s.clone(),
        }),
        Value::Object(_) => serde_json::to_string_pretty(v)
            .map(|text| PolicyText { name: None, text })
            .map_err(|e| input_err(path, &e.to_string())),
        _ => Err(input_err(
            path,
            "expected a policy object or a string holding policy JSON",
        )),
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Reads the DESIGN.md JSON input.
pub fn input_from_json(v: &Value) -> Result<SimulateInput, SimulateError> {
    let obj = v
        .as_object()
        .ok_or_else(|| input_err("$", "expected an object"))?;
    for k in obj.keys() {
        if ![
            "request",
            "identityPolicies",
            "resourcePolicy",
            "trustPolicy",
            "permissionBoundaries",
            "sessionPolicy",
            "blockPublicAccess",
        ]
        .contains(&k.as_str())
        {
            return Err(input_err(
                &format!("$.{k}"),
                "unknown field; expected `request`, `identityPolicies`, `resourcePolicy`, `trustPolicy`, `permissionBoundaries`, `sessionPolicy`, `blockPublicAccess`",
            ));
        }
    }
    if obj.contains_key("resourcePolicy") && obj.contains_key("trustPolicy") {
        return Err(input_err(
            "$.trustPolicy",
            "give either `resourcePolicy` (a bucket policy) or `trustPolicy` (a role's trust policy), not both",
        ));
    }
    let req = obj
        .get("request")
        .and_then(Value::as_object)
        .ok_or_else(|| input_err("$.request", "expected an object"))?;
    let s = |k: &str, required: bool| -> Result<Option<String>, SimulateError> {
        match req.get(k) {
            None | Some(Value::Null) if !required => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            _ => Err(input_err(&format!("$.request.{k}"), "expected a string")),
        }
    };
    for k in req.keys() {
        if ![
            "principal",
            "action",
            "resource",
            "resourceAccount",
            "context",
        ]
        .contains(&k.as_str())
        {
            return Err(input_err(
                &format!("$.request.{k}"),
                "unknown field; expected `principal`, `action`, `resource`, `resourceAccount`, `context`",
            ));
        }
    }
    let mut context = Context::new();
    if let Some(c) = req.get("context") {
        let c = c
            .as_object()
            .ok_or_else(|| input_err("$.request.context", "expected an object"))?;
        for (k, v) in c {
            let p = format!("$.request.context.{k}");
            match v {
                Value::Array(items) => {
                    let vals = items
                        .iter()
                        .map(|i| {
                            scalar_text(i).ok_or_else(|| {
                                input_err(&p, "expected strings, numbers or booleans")
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    context.insert_multi(k, vals);
                }
                other => {
                    context.insert(
                        k,
                        scalar_text(other).ok_or_else(|| {
                            input_err(&p, "expected a string, number, boolean or array")
                        })?,
                    );
                }
            }
        }
    }
    let list = |k: &str| -> Result<Vec<PolicyText>, SimulateError> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, d)| policy_text(d, &format!("$.{k}[{i}]")))
                .collect(),
            Some(_) => Err(input_err(
                &format!("$.{k}"),
                "expected an array of policies",
            )),
        }
    };
    let one = |k: &str| -> Result<Option<PolicyText>, SimulateError> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(d) => policy_text(d, &format!("$.{k}")).map(Some),
        }
    };
    Ok(SimulateInput {
        principal: s("principal", false)?,
        action: s("action", true)?.unwrap_or_default(),
        resource: s("resource", true)?.unwrap_or_default(),
        resource_account: s("resourceAccount", false)?,
        context,
        identity_policies: list("identityPolicies")?,
        resource_policy: match one("trustPolicy")? {
            Some(t) => Some(t),
            None => one("resourcePolicy")?,
        },
        trust_policy: obj.contains_key("trustPolicy"),
        boundaries: list("permissionBoundaries")?,
        session_policy: one("sessionPolicy")?,
        restrict_public_buckets: match obj.get("blockPublicAccess") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(input_err("$.blockPublicAccess", "expected a boolean")),
        },
    })
}

/// Writes the DESIGN.md JSON output.
pub fn output_to_json(out: &SimulateOutput) -> Value {
    let stmt = |m: &crate::eval::StatementRef| {
        let mut o = Map::new();
        o.insert("policyType".into(), json!(m.policy_kind.as_str()));
        o.insert("policyIndex".into(), json!(m.policy_index));
        if let Some(n) = &m.policy_name {
            o.insert("policyName".into(), json!(n));
        }
        o.insert("statementIndex".into(), json!(m.statement_index));
        o.insert(
            "sid".into(),
            m.sid.as_ref().map_or(Value::Null, |s| json!(s)),
        );
        o.insert("effect".into(), json!(m.effect.as_str()));
        o.insert("line".into(), json!(m.line));
        o
    };
    let d = &out.decision;
    json!({
        "decision": d.kind.as_str(),
        "matchedStatements": d.matched.iter().map(|m| Value::Object(stmt(m))).collect::<Vec<_>>(),
        "missingContextKeys": d.missing_context_keys,
        "explanation": out.explanation,
        "failures": d.failures.iter().map(|f| {
            let mut o = stmt(&f.statement);
            o.insert("failed".into(), json!(f.element.to_string()));
            Value::Object(o)
        }).collect::<Vec<_>>(),
    })
}

/// Runs a simulation from DESIGN.md JSON input to JSON output.
pub fn simulate_json(input: &Value) -> Result<Value, SimulateError> {
    let i = input_from_json(input)?;
    Ok(output_to_json(&simulate(&i)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_example_shape() {
        let out = simulate_json(&json!({
            "request": {"principal": "arn:aws:iam::123456789012:user/alice", "action": "s3:GetObject",
                        "resource": "arn:aws:s3:::b/k", "context": {"aws:SourceIp": "203.0.113.42", "s3:prefix": ["a/"]}},
            "identityPolicies": [{"Version": "2012-10-17", "Statement": [{"Sid": "R", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]}]
        }))
        .unwrap();
        assert_eq!(out["decision"], "Allowed");
        assert_eq!(out["matchedStatements"][0]["sid"], "R");
        assert_eq!(out["matchedStatements"][0]["policyType"], "identity");
        assert!(out["explanation"]
            .as_str()
            .unwrap()
            .contains("authorized to perform: s3:GetObject"));
    }

    #[test]
    fn input_errors() {
        assert!(matches!(
            simulate_json(&json!([])),
            Err(SimulateError::Input { .. })
        ));
        assert!(
            matches!(simulate_json(&json!({"request": {"action": "s3:GetObject"}})), Err(SimulateError::Input { path, .. }) if path == "$.request.resource")
        );
        let bad = simulate_json(
            &json!({"request": {"action": "a:b", "resource": "*"}, "identityPolicies": [{"Statement": []}]}),
        );
        assert!(
            matches!(bad, Err(SimulateError::Policy { which, .. }) if which == "identityPolicies[0]")
        );
        assert!(matches!(
            simulate_json(&json!({"request": {"action": "a:b", "resource": "*"}, "bogus": 1})),
            Err(SimulateError::Input { .. })
        ));
    }
}
