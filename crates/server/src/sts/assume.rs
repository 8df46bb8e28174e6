//! AssumeRole (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html).
//!
//! Who may call it: IAM users (with their access keys or GetSessionToken credentials) and role
//! sessions, which is role chaining
//! (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_terms-and-concepts.html#iam-term-role-chaining):
//! the trust policy must admit the calling session's role ARN or session ARN, the chained session
//! lasts at most one hour, inherits the caller's transitive session tags and its source identity
//! ("The value that is set cannot be changed during the role session",
//! https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_temp_control-access_monitor.html).
//! The root user may not assume roles, as in AWS. keyhole refuses job sessions too: a job's
//! credentials end with the job, and a session they created would outlive it.
//!
//! What is checked, each against the trust policy together with the caller's identity policies
//! (and the caller's permissions boundary and session policies), with AWS's evaluation logic:
//! `sts:AssumeRole`; `sts:TagSession` when session tags are passed ("In addition to the action
//! that matches the API operation, you must have the following permissions-only action in your
//! policy: sts:TagSession", https://docs.aws.amazon.com/IAM/latest/UserGuide/id_session-tags.html#id_session-tags_permissions-required);
//! `sts:SetSourceIdentity` when the session gets a source identity (also when inherited through
//! role chaining, where AWS requires it "in both the permissions policy of the principal who is
//! assuming the role and in the role trust policy of the target role"). The context carries
//! `sts:RoleSessionName`, `sts:ExternalId`, `sts:SourceIdentity`, `aws:RequestTag/KEY`,
//! `aws:TagKeys` and `sts:TransitiveTagKeys`, so trust policies can constrain them.

use chrono::{DateTime, Utc};
use http::Response;
use keyhole_policy::{CompiledPolicy, Context, RequestPrincipal};

use super::tags::{packed_size, parse_policy_arns, parse_session_tags, with_inherited};
use super::{
    compile_session_policy, credentials_xml, duration_param, invalid_parameter, refuse_mfa,
    respond, session_arn, validation, SessionClaims, DEFAULT_SESSION_SECS,
    MAX_CHAINED_SESSION_SECS, MIN_SESSION_SECS,
};
use crate::auth::Principal;
use crate::body::Body;
use crate::error::S3Error;
use crate::s3::route::{Permission, Query};
use crate::Gateway;

/// AssumeRole's model limit on DurationSeconds (12 hours).
const MAX_ASSUME_ROLE_SECS: i64 = 43_200;

/// The caller of AssumeRole in policy terms, and what it hands on to the new session.
struct Caller<'p> {
    principal: RequestPrincipal,
    identity: &'p [CompiledPolicy],
    boundary: Option<&'p CompiledPolicy>,
    session: Option<&'p [CompiledPolicy]>,
    /// The calling session's transitive session tags (role chaining).
    inherited_tags: Vec<(String, String)>,
    /// The calling session's source identity (role chaining).
    source_identity: Option<String>,
    /// Whether the caller is a role session (role chaining).
    chained: bool,
}

fn caller<'p>(
    principal: &'p Principal,
    account: &str,
    role_arn: &str,
) -> Result<Caller<'p>, S3Error> {
    let refuse = |why: &str| {
        S3Error::access_denied(format!(
            "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn} ({why})",
            principal.arn(account)
        ))
    };
    match principal {
        Principal::User {
            arn,
            policies,
            boundary,
            ..
        } => Ok(Caller {
            principal: RequestPrincipal::User {
                arn: arn.clone(),
                account: account.to_owned(),
            },
            identity: policies.as_slice(),
            boundary: boundary.as_deref(),
            session: None,
            inherited_tags: Vec::new(),
            source_identity: None,
            chained: false,
        }),
        Principal::Session { claims, .. } if claims.job.is_some() => Err(refuse(
            "job sessions cannot assume roles: a job's credentials end with the job, a session they created would not",
        )),
        Principal::Session { role_arn: own, .. } if own.is_empty() => Err(refuse(
            "only IAM users and role sessions may assume roles",
        )),
        Principal::Session {
            claims,
            arn,
            role_arn: own,
            role_policies,
            session_policies,
            boundary,
            ..
        } => Ok(Caller {
            principal: RequestPrincipal::Session {
                session_arn: arn.clone(),
                role_arn: own.clone(),
                account: account.to_owned(),
            },
            identity: role_policies.as_slice(),
            boundary: boundary.as_deref(),
            session: session_policies.as_deref(),
            inherited_tags: claims.transitive_tags(),
            source_identity: claims.source_identity.clone(),
            chained: true,
        }),
        // AWS does not let the root user assume roles.
        Principal::Root { .. } => Err(refuse("the root user cannot assume roles")),
        Principal::Anonymous => Err(refuse("anonymous callers cannot assume roles")),
    }
}

/// `SourceIdentity`: 2-64 characters of `[\w+=,.@-]`, no `aws:` prefix (which the pattern
/// already rules out).
fn validate_source_identity(s: &str) -> Result<(), S3Error> {
    let ok = (2..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(validation(format!(
            "1 validation error detected: Value '{s}' at 'sourceIdentity' failed to satisfy constraint: Member must have length 2-64 and match [\\w+=,.@-]*"
        )))
    }
}

/// Handles AssumeRole for an authenticated caller.
pub fn assume_role(
    gw: &Gateway,
    principal: &Principal,
    form: &Query,
    context: &Context,
    request_id: &str,
    now: DateTime<Utc>,
    checks: &crate::audit::Checks,
) -> Result<Response<Body>, S3Error> {
    let account = &gw.account.record.account_id;
    let role_arn = form
        .get("RoleArn")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| validation("1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null".into()))?;
    let session = form.get("RoleSessionName").unwrap_or("");
    let session_ok = (2..=64).contains(&session.len())
        && session
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c));
    if !session_ok {
        return Err(validation(format!(
            "1 validation error detected: Value '{session}' at 'roleSessionName' failed to satisfy constraint: Member must have length 2-64 and match [\\w+=,.@-]*"
        )));
    }
    let caller = caller(principal, account, role_arn)?;
    refuse_mfa(form, "AssumeRole")?;
    let snapshot = gw.state.snapshot();
    let role = snapshot
        .roles
        .values()
        .find(|r| r.arn == role_arn)
        .ok_or_else(|| {
            S3Error::access_denied(format!(
                "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
                principal.arn(account)
            ))
        })?;
    let max = role.record.max_session_secs;
    let duration = duration_param(
        form,
        MIN_SESSION_SECS,
        MAX_ASSUME_ROLE_SECS,
        DEFAULT_SESSION_SECS.min(max),
    )?;
    if duration > max {
        return Err(validation(format!(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role: use {MIN_SESSION_SECS} to {max} seconds"
        )));
    }
    if caller.chained && duration > MAX_CHAINED_SESSION_SECS {
        return Err(validation(format!(
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining: use {MIN_SESSION_SECS} to {MAX_CHAINED_SESSION_SECS} seconds"
        )));
    }

    // Session policies and tags.
    let policy = form
        .get("Policy")
        .filter(|p| !p.is_empty())
        .map(str::to_owned);
    if let Some(p) = &policy {
        compile_session_policy(p)?;
    }
    let policy_arns = parse_policy_arns(form, &snapshot.session_policies)?;
    let passed = parse_session_tags(form)?;
    let request_tags = passed.tags.clone();
    let request_transitive = passed.transitive.clone();
    let session_tags = with_inherited(passed, &caller.inherited_tags)?;
    let requested_identity = form.get("SourceIdentity");
    if let Some(s) = requested_identity {
        validate_source_identity(s)?;
    }
    let source_identity = match (&caller.source_identity, requested_identity) {
        (Some(inherited), Some(asked)) if inherited != asked => {
            return Err(invalid_parameter(format!(
                "SourceIdentity `{asked}` differs from the calling session's source identity `{inherited}`, which cannot be changed in a role chain; leave SourceIdentity out"
            )))
        }
        (Some(inherited), _) => Some(inherited.clone()),
        (None, asked) => asked.map(str::to_owned),
    };
    let packed = packed_size(policy.as_deref(), &policy_arns, &session_tags.tags)?;

    // The trust policy decides, with the caller's policies (AWS's evaluation logic).
    let mut ctx = context.clone();
    ctx.insert("sts:RoleSessionName", session);
    if let Some(e) = form.get("ExternalId") {
        ctx.insert("sts:ExternalId", e);
    }
    if let Some(s) = &source_identity {
        ctx.insert("sts:SourceIdentity", s.as_str());
    }
    for (k, v) in &request_tags {
        ctx.insert(&format!("aws:RequestTag/{k}"), v.as_str());
    }
    if !request_tags.is_empty() {
        ctx.insert_multi(
            "aws:TagKeys",
            request_tags.iter().map(|(k, _)| k.clone()).collect(),
        );
    }
    if !request_transitive.is_empty() {
        ctx.insert_multi("sts:TransitiveTagKeys", request_transitive);
    }
    let policies = keyhole_policy::Policies {
        identity: caller.identity,
        resource: Some(&role.trust),
        boundaries: caller.boundary.map_or(&[][..], std::slice::from_ref),
        session: caller.session,
        restrict_public_buckets: false,
    };
    let authorize = |action: &'static str| -> Result<(), S3Error> {
        let request = keyhole_policy::Request::new(
            caller.principal.clone(),
            action,
            role_arn,
            None,
            ctx.clone(),
        );
        let decision = keyhole_policy::Evaluator::evaluate(&policies, &request);
        let decided = if decision.kind == keyhole_policy::DecisionKind::Allowed {
            Ok(())
        } else {
            Err(S3Error::access_denied(format!(
                "User: {} is not authorized to perform: {action} on resource: {role_arn}",
                principal.arn(account)
            )))
        };
        let permission = Permission {
            action,
            resource: role_arn.to_owned(),
        };
        checks.push(crate::pipeline::check_record(
            principal,
            &permission,
            &decided,
            decision
                .matched
                .iter()
                .map(crate::auth::describe_statement)
                .collect(),
        ));
        decided
    };
    authorize("sts:AssumeRole")?;
    if !request_tags.is_empty() {
        authorize("sts:TagSession")?;
    }
    if source_identity.is_some() {
        authorize("sts:SetSourceIdentity")?;
    }

    let mut claims = SessionClaims::fresh(account, now, duration);
    claims.role = role.record.name.clone();
    claims.role_id = role.record.id.clone();
    claims.session = session.to_owned();
    claims.source_identity = source_identity;
    claims.policy = policy;
    claims.policy_arns = policy_arns;
    claims.tags = session_tags.tags;
    claims.transitive = session_tags.transitive;
    let token = gw.tokens.seal(&claims)?;
    Ok(respond("AssumeRole", request_id, |w| {
        credentials_xml(w, &claims, &token);
        w.open("AssumedRoleUser");
        w.elem(
            "AssumedRoleId",
            &format!("{}:{}", claims.role_id, claims.session),
        );
        w.elem("Arn", &session_arn(account, &claims.role, &claims.session));
        w.close("AssumedRoleUser");
        w.elem("PackedPolicySize", &packed.to_string());
        if let Some(s) = &claims.source_identity {
            w.elem("SourceIdentity", s);
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_identity_follows_the_api_pattern() {
        assert!(validate_source_identity("DevUser").is_ok());
        assert!(validate_source_identity("a.b@c-d_e+f=g,h").is_ok());
        for bad in ["x", "aws:me", "has space", &"y".repeat(65)] {
            assert_eq!(
                validate_source_identity(bad).unwrap_err().code(),
                "ValidationError",
                "{bad}"
            );
        }
    }
}
