//! STS (service `sts`): AssumeRole and GetCallerIdentity, and the sealed session token.
//!
//! # Security
//! A session token is the AEAD-sealed claim set of DESIGN.md section 5 (access key id, secret,
//! role, session name, source identity, session policy, issue and expiry times) under a key
//! derived from the master key for this purpose only. Any gateway holding the master key verifies
//! a session without a database lookup; a modified or forged token does not open, and the access
//! key id is bound into the seal, so a token cannot be replayed with another key id. Expired
//! tokens are refused with `ExpiredToken`. Tokens never appear in logs or errors.
//!
//! AssumeRole is decided by the role's trust policy (a resource-based policy, action
//! `sts:AssumeRole`) together with the caller's identity policies, with AWS's evaluation logic
//! (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use.html).

use chrono::{DateTime, Duration, Utc};
use http::{Response, StatusCode};
use keyhole_policy::{CompiledPolicy, Context, PolicyKind};
use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::body::Body;
use crate::error::S3Error;
use crate::s3::route::Query;
use crate::state::seal::{Sealer, SESSION_TOKEN_LABEL};
use crate::xml::XmlWriter;
use crate::Gateway;

/// The STS XML namespace.
pub const STS_NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
/// Shortest session AssumeRole grants (AWS: 900 s).
pub const MIN_SESSION_SECS: i64 = 900;
/// Default session length (AWS: one hour).
pub const DEFAULT_SESSION_SECS: i64 = 3600;
/// AWS's limit on an inline session policy, in characters.
pub const MAX_SESSION_POLICY_CHARS: usize = 2048;

/// What a session token carries (sealed; never logged).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionClaims {
    /// Temporary access key id (`ASIA...`).
    pub ak: String,
    /// Temporary secret.
    pub sk: String,
    /// Account id.
    pub account: String,
    /// Role name.
    pub role: String,
    /// Role unique id (`AROA...`).
    pub role_id: String,
    /// Session name.
    pub session: String,
    /// `sts:SourceIdentity`, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_identity: Option<String>,
    /// The inline session policy, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Issue time (Unix seconds).
    pub iat: i64,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// The job the session belongs to (job sessions only; [`crate::jobs`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// Session tags (`aws:PrincipalTag/KEY`); they override the role's tags with the same key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
}

/// Seals and opens session tokens.
#[derive(Debug)]
pub struct TokenSealer(Sealer);

impl TokenSealer {
    /// A token sealer keyed from the master key.
    pub fn new(master_key: &[u8]) -> Result<TokenSealer, S3Error> {
        Sealer::with_label(master_key, SESSION_TOKEN_LABEL)
            .map(TokenSealer)
            .map_err(S3Error::internal)
    }

    /// Seals claims into a token bound to their access key id.
    pub fn seal(&self, claims: &SessionClaims) -> Result<String, S3Error> {
        let json = serde_json::to_string(claims).map_err(S3Error::internal)?;
        self.0.seal(&json, &claims.ak).map_err(S3Error::internal)
    }

    /// Opens a token presented with `access_key_id`; `None` if it is forged, modified or bound
    /// to another key.
    pub fn open(&self, token: &str, access_key_id: &str) -> Option<SessionClaims> {
        let json = self.0.open(token, access_key_id).ok()?;
        let claims: SessionClaims = serde_json::from_str(&json).ok()?;
        (claims.ak == access_key_id).then_some(claims)
    }
}

fn validation(message: String) -> S3Error {
    S3Error::new("ValidationError", StatusCode::BAD_REQUEST, message)
}

/// The session's ARN: `assumed-role/ROLE/SESSION`, or for a job without a role
/// `federated-user/SESSION` (the principal form AWS gives sessions that no role backs).
pub fn session_arn(account: &str, role: &str, session: &str) -> String {
    if role.is_empty() {
        format!("arn:aws:sts::{account}:federated-user/{session}")
    } else {
        format!("arn:aws:sts::{account}:assumed-role/{role}/{session}")
    }
}

/// Compiles a session policy (kept in the token) for evaluation.
pub fn compile_session_policy(doc: &str) -> Result<CompiledPolicy, S3Error> {
    CompiledPolicy::from_json(doc, PolicyKind::Session)
        .map(|p| p.with_name("session policy"))
        .map_err(|e| {
            S3Error::new(
                "MalformedPolicyDocument",
                StatusCode::BAD_REQUEST,
                format!("The session policy is not valid: {e}"),
            )
        })
}

/// Handles an already verified `sts` request.
pub async fn dispatch(
    gw: &Gateway,
    principal: &Principal,
    form: Query,
    context: &Context,
    request_id: &str,
    now: DateTime<Utc>,
    checks: &crate::audit::Checks,
) -> Result<(Response<Body>, &'static str), S3Error> {
    match form.get("Action").unwrap_or("") {
        // Always allowed, as in AWS.
        "GetCallerIdentity" => Ok((
            caller_identity(gw, principal, request_id),
            "GetCallerIdentity",
        )),
        "AssumeRole" => Ok((
            assume_role(gw, principal, &form, context, request_id, now, checks)?,
            "AssumeRole",
        )),
        other => Err(S3Error::not_implemented(&format!(
            "the STS action `{other}`"
        ))),
    }
}

fn respond(name: &str, request_id: &str, body: impl FnOnce(&mut XmlWriter)) -> Response<Body> {
    let mut w = XmlWriter::new();
    w.root_ns(&format!("{name}Response"), STS_NS);
    w.open(&format!("{name}Result"));
    body(&mut w);
    w.close(&format!("{name}Result"));
    w.open("ResponseMetadata");
    w.elem("RequestId", request_id);
    w.close("ResponseMetadata");
    w.close(&format!("{name}Response"));
    crate::s3::xml_response(w.finish(), "text/xml")
}

fn caller_identity(gw: &Gateway, principal: &Principal, request_id: &str) -> Response<Body> {
    let account = &gw.account.record.account_id;
    let (arn, user_id) = match principal {
        Principal::Root { .. } => (format!("arn:aws:iam::{account}:root"), account.clone()),
        Principal::User { arn, id, .. } => (arn.clone(), id.clone()),
        Principal::Session { claims, arn, .. } => (
            arn.clone(),
            format!("{}:{}", claims.role_id, claims.session),
        ),
        Principal::Anonymous => ("*".into(), String::new()),
    };
    respond("GetCallerIdentity", request_id, |w| {
        w.elem("Arn", &arn);
        w.elem("UserId", &user_id);
        w.elem("Account", account);
    })
}

fn assume_role(
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
    let duration = match form.get("DurationSeconds") {
        None => DEFAULT_SESSION_SECS.min(role.record.max_session_secs),
        Some(v) => {
            let d: i64 = v
                .parse()
                .map_err(|_| validation(format!("DurationSeconds `{v}` is not a number")))?;
            if d < MIN_SESSION_SECS || d > role.record.max_session_secs {
                return Err(validation(format!(
                    "The requested DurationSeconds exceeds the MaxSessionDuration set for this role: use {MIN_SESSION_SECS} to {} seconds",
                    role.record.max_session_secs
                )));
            }
            d
        }
    };
    let policy = form
        .get("Policy")
        .filter(|p| !p.is_empty())
        .map(str::to_owned);
    if let Some(p) = &policy {
        if p.chars().filter(|c| !c.is_whitespace()).count() > MAX_SESSION_POLICY_CHARS {
            return Err(S3Error::new(
                "PackedPolicyTooLarge",
                StatusCode::BAD_REQUEST,
                format!("The session policy exceeds {MAX_SESSION_POLICY_CHARS} characters"),
            ));
        }
        compile_session_policy(p)?;
    }
    if form.names().any(|n| {
        n.starts_with("PolicyArns.")
            || n.starts_with("Tags.")
            || n.starts_with("TransitiveTagKeys.")
    }) {
        return Err(S3Error::not_implemented(
            "AssumeRole with PolicyArns, Tags or TransitiveTagKeys",
        ));
    }
    let source_identity = form.get("SourceIdentity").map(str::to_owned);

    // The trust policy decides, with the caller's identity policies (AWS's evaluation logic).
    let (request_principal, identity): (keyhole_policy::RequestPrincipal, &[CompiledPolicy]) = match principal {
        Principal::User { arn, policies, .. } => (
            keyhole_policy::RequestPrincipal::User { arn: arn.clone(), account: account.clone() },
            policies.as_slice(),
        ),
        // AWS does not let the root user assume roles.
        Principal::Root { .. } | Principal::Session { .. } | Principal::Anonymous => {
            return Err(S3Error::access_denied(format!(
                "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn} (only IAM users may assume roles here)",
                principal.arn(account)
            )))
        }
    };
    let mut ctx = context.clone();
    ctx.insert("sts:RoleSessionName", session);
    if let Some(e) = form.get("ExternalId") {
        ctx.insert("sts:ExternalId", e);
    }
    if let Some(s) = &source_identity {
        ctx.insert("sts:SourceIdentity", s.as_str());
    }
    let request =
        keyhole_policy::Request::new(request_principal, "sts:AssumeRole", role_arn, None, ctx);
    let decision = keyhole_policy::Evaluator::evaluate(
        &keyhole_policy::Policies {
            identity,
            resource: Some(&role.trust),
            ..Default::default()
        },
        &request,
    );
    let decided = if decision.kind == keyhole_policy::DecisionKind::Allowed {
        Ok(())
    } else {
        Err(S3Error::access_denied(format!(
            "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
            principal.arn(account)
        )))
    };
    let permission = crate::s3::route::Permission {
        action: "sts:AssumeRole",
        resource: role_arn.to_owned(),
    };
    checks.push(crate::pipeline::check_record(
        principal,
        &permission,
        &decided,
    ));
    decided?;

    let claims = SessionClaims {
        ak: crate::account::new_id("ASIA", 16),
        sk: crate::account::new_secret(),
        account: account.clone(),
        role: role.record.name.clone(),
        role_id: role.record.id.clone(),
        session: session.to_owned(),
        source_identity,
        policy,
        iat: now.timestamp(),
        exp: (now + Duration::seconds(duration)).timestamp(),
        job: None,
        tags: Vec::new(),
    };
    let token = gw.tokens.seal(&claims)?;
    let expiration = DateTime::<Utc>::from_timestamp(claims.exp, 0).unwrap_or(now);
    let packed = claims
        .policy
        .as_ref()
        .map_or(0, |p| p.len() * 100 / MAX_SESSION_POLICY_CHARS);
    Ok(respond("AssumeRole", request_id, |w| {
        w.open("Credentials");
        w.elem("AccessKeyId", &claims.ak);
        w.elem("SecretAccessKey", &claims.sk);
        w.elem("SessionToken", &token);
        w.elem(
            "Expiration",
            &expiration.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        );
        w.close("Credentials");
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

    fn claims() -> SessionClaims {
        SessionClaims {
            ak: "ASIAEXAMPLE".into(),
            sk: "secret".into(),
            account: "123456789012".into(),
            role: "training-job".into(),
            role_id: "AROAEXAMPLE".into(),
            session: "run-1".into(),
            source_identity: None,
            policy: Some("{}".into()),
            iat: 1,
            exp: 2,
            job: None,
            tags: Vec::new(),
        }
    }

    #[test]
    fn tokens_open_only_unmodified_with_their_key_id() {
        let t = TokenSealer::new(&[3u8; 32]).unwrap();
        let token = t.seal(&claims()).unwrap();
        assert!(!token.contains("secret") && !token.contains("training"));
        assert_eq!(t.open(&token, "ASIAEXAMPLE"), Some(claims()));
        assert_eq!(t.open(&token, "ASIAOTHER"), None, "bound to its key id");
        let mut chars: Vec<char> = token.chars().collect();
        let mid = chars.len() / 2;
        chars[mid] = if chars[mid] == 'A' { 'B' } else { 'A' };
        let forged: String = chars.into_iter().collect();
        assert_eq!(t.open(&forged, "ASIAEXAMPLE"), None, "modified");
        assert_eq!(
            TokenSealer::new(&[4u8; 32])
                .unwrap()
                .open(&token, "ASIAEXAMPLE"),
            None,
            "other master key"
        );
        assert_eq!(t.open("not a token", "ASIAEXAMPLE"), None);
    }
}
