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
//! What is checked, each by the one authorization stage against the role's trust policy, which
//! must itself admit the caller (naming it, or naming the account and then the caller's identity
//! policies must allow too; the caller's permissions boundary and session policies must allow in
//! every case: [`keyhole_policy::ResourceGate::RoleTrust`]):
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
use keyhole_policy::Context;

use super::tags::{
    packed_size, parse_policy_arns, parse_session_tags, with_inherited, SessionTags,
};
use super::{
    check_new_session_policy, credentials_xml, duration_param, invalid_parameter, refuse_mfa,
    respond, session_arn, validation, SessionClaims, DEFAULT_SESSION_SECS,
    MAX_CHAINED_SESSION_SECS, MIN_SESSION_SECS,
};
use crate::auth::Principal;
use crate::authz::{Permission, Requirement};
use crate::body::Body;
use crate::error::S3Error;
use crate::s3::route::Query;
use crate::Gateway;

/// AssumeRole's model limit on DurationSeconds (12 hours).
pub(super) const MAX_ASSUME_ROLE_SECS: i64 = 43_200;

/// A validated AssumeRole request: what it asks for and what the caller hands on.
#[derive(Debug)]
pub struct AssumeRoleCall {
    role_arn: String,
    session: String,
    /// `DurationSeconds` as asked (checked against the role's maximum once it is known).
    duration: Option<i64>,
    external_id: Option<String>,
    policy: Option<String>,
    policy_arns: Vec<String>,
    /// The tags passed in the request (they need `sts:TagSession`).
    request_tags: Vec<(String, String)>,
    request_transitive: Vec<String>,
    /// The new session's tags: the request's and the caller's transitive ones.
    session_tags: SessionTags,
    source_identity: Option<String>,
    packed: usize,
    /// The caller is a role session (role chaining: one hour at most).
    chained: bool,
    /// The role's tags (`aws:ResourceTag/KEY`).
    resource_tags: Vec<(String, String)>,
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

/// `RoleSessionName`: 2-64 characters of `[\w+=,.@-]`.
pub(super) fn validate_session_name(session: &str) -> Result<(), S3Error> {
    let ok = (2..=64).contains(&session.len())
        && session
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c));
    if ok {
        Ok(())
    } else {
        Err(validation(format!(
            "1 validation error detected: Value '{session}' at 'roleSessionName' failed to satisfy constraint: Member must have length 2-64 and match [\\w+=,.@-]*"
        )))
    }
}

/// Validates an AssumeRole request (every malformed parameter is a `ValidationError` before any
/// decision) and works out what the new session inherits from a calling session.
pub fn describe(
    gw: &Gateway,
    principal: &Principal,
    form: &Query,
) -> Result<AssumeRoleCall, S3Error> {
    let role_arn = form
        .get("RoleArn")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| validation("1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null".into()))?;
    let session = form.get("RoleSessionName").unwrap_or("");
    validate_session_name(session)?;
    refuse_mfa(form, "AssumeRole")?;
    let duration = match form.get("DurationSeconds") {
        None => None,
        Some(_) => Some(duration_param(
            form,
            MIN_SESSION_SECS,
            MAX_ASSUME_ROLE_SECS,
            DEFAULT_SESSION_SECS,
        )?),
    };
    // Role chaining: the calling session's transitive tags and source identity pass on.
    let (inherited_tags, inherited_identity, chained) = match principal {
        Principal::Session {
            claims, role_arn, ..
        } if !role_arn.is_empty() => (
            claims.transitive_tags(),
            claims.source_identity.clone(),
            true,
        ),
        _ => (Vec::new(), None, false),
    };
    let policy = form
        .get("Policy")
        .filter(|p| !p.is_empty())
        .map(str::to_owned);
    if let Some(p) = &policy {
        check_new_session_policy(p)?;
    }
    let policy_arns = parse_policy_arns(form, &gw.state.snapshot().session_policies)?;
    let passed = parse_session_tags(form)?;
    let request_tags = passed.tags.clone();
    let request_transitive = passed.transitive.clone();
    let session_tags = with_inherited(passed, &inherited_tags)?;
    let requested_identity = form.get("SourceIdentity");
    if let Some(s) = requested_identity {
        validate_source_identity(s)?;
    }
    let source_identity = match (&inherited_identity, requested_identity) {
        (Some(inherited), Some(asked)) if inherited != asked => {
            return Err(invalid_parameter(format!(
                "SourceIdentity `{asked}` differs from the calling session's source identity `{inherited}`, which cannot be changed in a role chain; leave SourceIdentity out"
            )))
        }
        (Some(inherited), _) => Some(inherited.clone()),
        (None, asked) => asked.map(str::to_owned),
    };
    let packed = packed_size(policy.as_deref(), &policy_arns, &session_tags.tags)?;
    Ok(AssumeRoleCall {
        role_arn: role_arn.to_owned(),
        session: session.to_owned(),
        duration,
        external_id: form.get("ExternalId").map(str::to_owned),
        policy,
        policy_arns,
        request_tags,
        request_transitive,
        session_tags,
        source_identity,
        packed,
        chained,
        resource_tags: crate::iam::resource_tags(gw, role_arn),
    })
}

impl AssumeRoleCall {
    /// `sts:AssumeRole` on the role; `sts:TagSession` when the session gets tags, the request's or
    /// a calling session's transitive ones ("If you pass session tags ... including transitive
    /// session tags in a role chain, the role trust policy must allow sts:TagSession",
    /// https://docs.aws.amazon.com/IAM/latest/UserGuide/id_session-tags.html#id_session-tags_permissions-required);
    /// and `sts:SetSourceIdentity` when the session gets a source identity.
    pub fn requirement(&self) -> Requirement {
        let mut list = vec![Permission::new("sts:AssumeRole", self.role_arn.clone())];
        if !self.session_tags.tags.is_empty() {
            list.push(Permission::new("sts:TagSession", self.role_arn.clone()));
        }
        if self.source_identity.is_some() {
            list.push(Permission::new(
                "sts:SetSourceIdentity",
                self.role_arn.clone(),
            ));
        }
        Requirement::Permissions(list)
    }

    /// `sts:RoleSessionName`, `sts:ExternalId`, `sts:SourceIdentity`, `aws:RequestTag/KEY` and
    /// `aws:TagKeys` (every tag the session gets, inherited ones included) and
    /// `sts:TransitiveTagKeys`, so trust policies can constrain them.
    pub fn add_context(&self, ctx: &mut Context) {
        ctx.insert("sts:RoleSessionName", self.session.as_str());
        crate::context::add_resource_tags(ctx, &self.resource_tags);
        if let Some(e) = &self.external_id {
            ctx.insert("sts:ExternalId", e.as_str());
        }
        if let Some(s) = &self.source_identity {
            ctx.insert("sts:SourceIdentity", s.as_str());
        }
        crate::context::add_request_tags(ctx, &self.session_tags.tags);
        if !self.request_transitive.is_empty() {
            ctx.insert_multi("sts:TransitiveTagKeys", self.request_transitive.clone());
        }
    }

    /// CloudTrail's `requestParameters` of AssumeRole: the role, the session name, the duration
    /// and what else shapes the session (never a policy document).
    pub fn audit_parameters(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("roleArn".into(), serde_json::json!(self.role_arn));
        m.insert("roleSessionName".into(), serde_json::json!(self.session));
        if let Some(d) = self.duration {
            m.insert("durationSeconds".into(), serde_json::json!(d));
        }
        if let Some(s) = &self.source_identity {
            m.insert("sourceIdentity".into(), serde_json::json!(s));
        }
        if !self.request_tags.is_empty() {
            m.insert(
                "tags".into(),
                self.request_tags
                    .iter()
                    .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
                    .collect(),
            );
        }
        if !self.policy_arns.is_empty() {
            m.insert("policyArns".into(), serde_json::json!(self.policy_arns));
        }
        m
    }
}

/// Fresh claims for a session of the role `role_arn` lasting `asked` seconds (or the default):
/// the role must still exist (the trust policy that admitted the caller was its own; a role
/// deleted since admits nobody) and the duration must fit its maximum, and one hour when
/// `chained`.
pub(super) fn role_session(
    gw: &Gateway,
    role_arn: &str,
    asked: Option<i64>,
    chained: bool,
    now: DateTime<Utc>,
) -> Result<SessionClaims, S3Error> {
    let account = &gw.account.record.account_id;
    let snapshot = gw.state.snapshot();
    let role = snapshot
        .roles
        .values()
        .find(|r| r.arn == role_arn)
        .ok_or_else(|| S3Error::access_denied(format!("the role {role_arn} no longer exists")))?;
    let max = role.record.max_session_secs;
    let duration = asked.unwrap_or(DEFAULT_SESSION_SECS.min(max));
    if duration > max {
        return Err(validation(format!(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role: use {MIN_SESSION_SECS} to {max} seconds"
        )));
    }
    if chained && duration > MAX_CHAINED_SESSION_SECS {
        return Err(validation(format!(
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining: use {MIN_SESSION_SECS} to {MAX_CHAINED_SESSION_SECS} seconds"
        )));
    }
    let mut claims = SessionClaims::fresh(account, now, duration);
    claims.role = role.record.name.clone();
    claims.role_id = role.record.id.clone();
    Ok(claims)
}

/// Issues the session of an authorized AssumeRole; returns the response and its audit record.
pub fn assume_role(
    gw: &Gateway,
    call: AssumeRoleCall,
    request_id: &str,
    now: DateTime<Utc>,
) -> Result<(Response<Body>, Option<serde_json::Value>), S3Error> {
    let account = &gw.account.record.account_id;
    let mut claims = role_session(gw, &call.role_arn, call.duration, call.chained, now)?;
    claims.session = call.session;
    claims.source_identity = call.source_identity;
    claims.policy = call.policy;
    claims.policy_arns = call.policy_arns;
    claims.tags = call.session_tags.tags;
    claims.transitive = call.session_tags.transitive;
    let token = gw.tokens.seal(&claims)?;
    let assumed_id = format!("{}:{}", claims.role_id, claims.session);
    let arn = session_arn(account, &claims.role, &claims.session);
    let elements = serde_json::json!({
        "credentials": crate::jobs::credentials_audit(&claims),
        "assumedRoleUser": {"assumedRoleId": assumed_id, "arn": arn},
        "packedPolicySize": call.packed,
    });
    let response = respond("AssumeRole", request_id, |w| {
        credentials_xml(w, &claims, &token);
        assumed_role_xml(w, &assumed_id, &arn);
        w.elem("PackedPolicySize", &call.packed.to_string());
        if let Some(s) = &claims.source_identity {
            w.elem("SourceIdentity", s);
        }
    });
    Ok((response, Some(elements)))
}

/// The `AssumedRoleUser` element.
pub(super) fn assumed_role_xml(w: &mut crate::xml::XmlWriter, assumed_id: &str, arn: &str) {
    w.open("AssumedRoleUser");
    w.elem("AssumedRoleId", assumed_id);
    w.elem("Arn", arn);
    w.close("AssumedRoleUser");
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
