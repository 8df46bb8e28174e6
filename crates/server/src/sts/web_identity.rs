//! AssumeRoleWithWebIdentity
//! (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html):
//! a role session for the holder of an OpenID Connect token, with no AWS credentials at all.
//!
//! The request is unsigned, as in AWS; the token is its authentication: the pipeline verifies it
//! ([`crate::oidc`]) before anything else and the caller becomes a
//! [`Principal::WebIdentity`]. Then, as for AssumeRole, the role's trust policy decides, in the
//! one authorization stage: it must allow `sts:AssumeRoleWithWebIdentity` to the provider
//! (`{"Federated": "arn:aws:iam::ACCOUNT:oidc-provider/ISSUER"}`), with its conditions on the
//! token's keys (`ISSUER:sub`, `ISSUER:aud`, ...), and `sts:TagSession` too when the token
//! carries session tags. A web identity caller has no identity-based policies, so nothing else
//! can grant.
//!
//! The new session keeps what the token proved ([`crate::oidc::WebIdentity`]): its requests
//! carry the token's keys and `aws:FederatedProvider`, so the role's permission policies can key
//! prefixes on `${ISSUER:sub}`.

use chrono::{DateTime, Utc};
use http::Response;
use keyhole_policy::Context;

use super::assume::{assumed_role_xml, role_session, validate_session_name, MAX_ASSUME_ROLE_SECS};
use super::tags::{packed_size, parse_policy_arns};
use super::{
    check_new_session_policy, credentials_xml, duration_param, invalid_parameter, respond,
    session_arn, DEFAULT_SESSION_SECS, MIN_SESSION_SECS,
};
use crate::auth::Principal;
use crate::authz::{Permission, Requirement};
use crate::body::Body;
use crate::error::S3Error;
use crate::oidc::{TokenTags, WebIdentity};
use crate::s3::route::Query;
use crate::Gateway;

/// A validated AssumeRoleWithWebIdentity request.
#[derive(Debug)]
pub struct WebIdentityCall {
    role_arn: String,
    session: String,
    duration: Option<i64>,
    policy: Option<String>,
    policy_arns: Vec<String>,
    identity: std::sync::Arc<WebIdentity>,
    /// The token's issuer URL (the response's `Provider`).
    tags: std::sync::Arc<TokenTags>,
    packed: usize,
    /// The role's tags (`aws:ResourceTag/KEY`).
    resource_tags: Vec<(String, String)>,
}

/// Validates the request of a caller the pipeline authenticated by its token.
pub fn describe(
    gw: &Gateway,
    principal: &Principal,
    form: &Query,
) -> Result<WebIdentityCall, S3Error> {
    let Principal::WebIdentity { identity, tags } = principal else {
        return Err(invalid_parameter(
            "AssumeRoleWithWebIdentity is sent unsigned: its WebIdentityToken is what authenticates it; send it without AWS credentials".into(),
        ));
    };
    let role_arn = form
        .get("RoleArn")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| super::validation("1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null".into()))?;
    let session = form.get("RoleSessionName").unwrap_or("");
    validate_session_name(session)?;
    if form.has("ProviderId") {
        return Err(invalid_parameter(
            "ProviderId is for OAuth 2.0 access tokens, which keyhole does not accept: pass an OpenID Connect ID token from a provider registered with CreateOpenIDConnectProvider, without ProviderId".into(),
        ));
    }
    let duration = match form.get("DurationSeconds") {
        None => None,
        Some(_) => Some(duration_param(
            form,
            MIN_SESSION_SECS,
            MAX_ASSUME_ROLE_SECS,
            DEFAULT_SESSION_SECS,
        )?),
    };
    let policy = form
        .get("Policy")
        .filter(|p| !p.is_empty())
        .map(str::to_owned);
    if let Some(p) = &policy {
        check_new_session_policy(p)?;
    }
    let policy_arns = parse_policy_arns(form, &gw.state.snapshot().session_policies)?;
    let packed = packed_size(policy.as_deref(), &policy_arns, &tags.tags)?;
    Ok(WebIdentityCall {
        role_arn: role_arn.to_owned(),
        session: session.to_owned(),
        duration,
        policy,
        policy_arns,
        identity: identity.clone(),
        tags: tags.clone(),
        packed,
        resource_tags: crate::iam::resource_tags(gw, role_arn),
    })
}

impl WebIdentityCall {
    /// `sts:AssumeRoleWithWebIdentity` on the role, and `sts:TagSession` when the token carries
    /// session tags ("the role trust policy must allow sts:TagSession",
    /// https://docs.aws.amazon.com/IAM/latest/UserGuide/id_session-tags.html#id_session-tags_adding-assume-role-idp).
    pub fn requirement(&self) -> Requirement {
        let mut list = vec![Permission::new(
            "sts:AssumeRoleWithWebIdentity",
            self.role_arn.clone(),
        )];
        if !self.tags.tags.is_empty() {
            list.push(Permission::new("sts:TagSession", self.role_arn.clone()));
        }
        Requirement::Permissions(list)
    }

    /// `sts:RoleSessionName`, and the token's session tags as `aws:RequestTag/KEY`,
    /// `aws:TagKeys` and `sts:TransitiveTagKeys` (the token's own keys come with the principal).
    pub fn add_context(&self, ctx: &mut Context) {
        ctx.insert("sts:RoleSessionName", self.session.as_str());
        crate::context::add_resource_tags(ctx, &self.resource_tags);
        crate::context::add_request_tags(ctx, &self.tags.tags);
        if !self.tags.transitive.is_empty() {
            ctx.insert_multi("sts:TransitiveTagKeys", self.tags.transitive.clone());
        }
    }

    /// CloudTrail's `requestParameters`: the role, the session name, the duration, the
    /// provider, subject and audience (never the token).
    pub fn audit_parameters(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("roleArn".into(), serde_json::json!(self.role_arn));
        m.insert("roleSessionName".into(), serde_json::json!(self.session));
        if let Some(d) = self.duration {
            m.insert("durationSeconds".into(), serde_json::json!(d));
        }
        m.insert(
            "providerId".into(),
            serde_json::json!(self.identity.provider_arn),
        );
        m.insert("subject".into(), serde_json::json!(self.identity.sub));
        m.insert("audience".into(), serde_json::json!(self.identity.aud));
        if !self.policy_arns.is_empty() {
            m.insert("policyArns".into(), serde_json::json!(self.policy_arns));
        }
        m
    }
}

/// Issues the session of an authorized AssumeRoleWithWebIdentity.
pub fn assume_role_with_web_identity(
    gw: &Gateway,
    call: WebIdentityCall,
    request_id: &str,
    now: DateTime<Utc>,
) -> Result<(Response<Body>, Option<serde_json::Value>), S3Error> {
    let account = &gw.account.record.account_id;
    let mut claims = role_session(gw, &call.role_arn, call.duration, false, now)?;
    claims.session = call.session;
    claims.policy = call.policy;
    claims.policy_arns = call.policy_arns;
    claims.tags = call.tags.tags.clone();
    claims.transitive = call.tags.transitive.clone();
    claims.web_identity = Some((*call.identity).clone());
    let token = gw.tokens.seal(&claims)?;
    let assumed_id = format!("{}:{}", claims.role_id, claims.session);
    let arn = session_arn(account, &claims.role, &claims.session);
    let issuer = format!("https://{}", call.identity.provider);
    let elements = serde_json::json!({
        "credentials": crate::jobs::credentials_audit(&claims),
        "assumedRoleUser": {"assumedRoleId": assumed_id, "arn": arn},
        "subjectFromWebIdentityToken": call.identity.sub,
        "provider": issuer,
        "audience": call.identity.aud,
        "packedPolicySize": call.packed,
    });
    let response = respond("AssumeRoleWithWebIdentity", request_id, |w| {
        credentials_xml(w, &claims, &token);
        w.elem("SubjectFromWebIdentityToken", &call.identity.sub);
        assumed_role_xml(w, &assumed_id, &arn);
        w.elem("PackedPolicySize", &call.packed.to_string());
        w.elem("Provider", &issuer);
        w.elem("Audience", &call.identity.aud);
    });
    Ok((response, Some(elements)))
}
