//! STS (service `sts`): AssumeRole, GetSessionToken and GetCallerIdentity, and the sealed session
//! token.
//!
//! # Security
//! A session token is the AEAD-sealed claim set of DESIGN.md section 5 (access key id, secret,
//! role or user, session name, source identity, session policies, session tags, issue and expiry
//! times) under a key derived from the master key for this purpose only. Any gateway holding the
//! master key verifies a session without a database lookup; a modified or forged token does not
//! open, and the access key id is bound into the seal, so a token cannot be replayed with another
//! key id. Expired tokens are refused with `ExpiredToken`. Tokens never appear in logs or errors.
//!
//! Every call is described ([`describe`]) and authorized by the one authorization stage
//! ([`crate::authz`]) before [`handle`] issues anything. AssumeRole needs `sts:AssumeRole` on the
//! role (plus `sts:TagSession` when tags are passed and `sts:SetSourceIdentity` when the session
//! gets a source identity), decided against the role's trust policy, which must itself admit the
//! caller (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use.html); see [`assume`].
//! GetSessionToken gives an IAM user temporary credentials that act as the user; it and
//! GetCallerIdentity need no permission, as in AWS.

use chrono::{DateTime, Duration, Utc};
use http::{Response, StatusCode};
use keyhole_policy::{CompiledPolicy, Context, PolicyKind};
use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::authz::{Authorized, Describe, Requirement};
use crate::body::Body;
use crate::error::S3Error;
use crate::s3::route::Query;
use crate::state::seal::{Sealer, SESSION_TOKEN_LABEL};
use crate::xml::XmlWriter;
use crate::Gateway;

pub mod assume;
pub mod tags;
pub mod web_identity;

/// The STS XML namespace.
pub const STS_NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
/// Shortest session AssumeRole and GetSessionToken grant (AWS: 900 s).
pub const MIN_SESSION_SECS: i64 = 900;
/// Default AssumeRole session length (AWS: one hour).
pub const DEFAULT_SESSION_SECS: i64 = 3600;
/// Longest session of a role assumed with another role's session: "Role chaining limits your
/// AWS CLI or AWS API role session to a maximum of one hour"
/// (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html).
pub const MAX_CHAINED_SESSION_SECS: i64 = 3600;
/// GetSessionToken for IAM users: 900 s to 36 hours, 12 hours by default
/// (https://docs.aws.amazon.com/STS/latest/APIReference/API_GetSessionToken.html).
pub const MAX_USER_SESSION_SECS: i64 = 129_600;
/// The longest any temporary credentials keyhole issues live: GetSessionToken's maximum, longer
/// than AssumeRole's 12 hours and any job session. A revocation is kept this long.
pub const LONGEST_SESSION_SECS: i64 = MAX_USER_SESSION_SECS;
/// GetSessionToken's default duration.
pub const DEFAULT_USER_SESSION_SECS: i64 = 43_200;
/// AWS's limit on the plaintext of the session policies (the inline policy without white space
/// and the managed policy ARNs), in characters.
pub const MAX_SESSION_POLICY_CHARS: usize = 2048;

/// The IAM user a GetSessionToken session acts as.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionUser {
    /// User name.
    pub name: String,
    /// The user's unique id (`AIDA...`): a user deleted and created again under the same name
    /// does not inherit the sessions of the old one.
    pub id: String,
}

/// What a session token carries (sealed; never logged).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionClaims {
    /// Temporary access key id (`ASIA...`).
    pub ak: String,
    /// Temporary secret.
    pub sk: String,
    /// Account id.
    pub account: String,
    /// Role name (empty for user sessions and role-less jobs).
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
    /// Managed session policies (`PolicyArns`): ARNs, resolved at each request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_arns: Vec<String>,
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
    /// Keys of `tags` that are transitive: passed on to sessions this one creates by role
    /// chaining, where they cannot be overridden.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transitive: Vec<String>,
    /// GetSessionToken sessions: the IAM user the session acts as (`role` is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<SessionUser>,
    /// AssumeRoleWithWebIdentity sessions: what the token proved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_identity: Option<crate::oidc::WebIdentity>,
}

impl SessionClaims {
    /// Claims of a fresh session: a new `ASIA` key id and secret, issued `now`, expiring after
    /// `secs`; everything else empty.
    pub fn fresh(account: &str, now: DateTime<Utc>, secs: i64) -> SessionClaims {
        SessionClaims {
            ak: crate::account::new_id("ASIA", 16),
            sk: crate::account::new_secret(),
            account: account.to_owned(),
            role: String::new(),
            role_id: String::new(),
            session: String::new(),
            source_identity: None,
            policy: None,
            policy_arns: Vec::new(),
            iat: now.timestamp(),
            exp: (now + Duration::seconds(secs)).timestamp(),
            job: None,
            tags: Vec::new(),
            transitive: Vec::new(),
            user: None,
            web_identity: None,
        }
    }

    /// Whether the session was created with session policies (inline or managed).
    pub fn has_session_policies(&self) -> bool {
        self.policy.is_some() || !self.policy_arns.is_empty()
    }

    /// The session tags that pass to a session this one creates by role chaining.
    pub fn transitive_tags(&self) -> Vec<(String, String)> {
        self.tags
            .iter()
            .filter(|(k, _)| self.transitive.iter().any(|t| t.eq_ignore_ascii_case(k)))
            .cloned()
            .collect()
    }
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

/// A parameter that breaks the API's constraints (AWS's `ValidationError`, 400).
fn validation(message: String) -> S3Error {
    S3Error::new("ValidationError", StatusCode::BAD_REQUEST, message)
}

/// A parameter that is well-formed but not acceptable (AWS's `InvalidParameterValue`, 400).
fn invalid_parameter(message: String) -> S3Error {
    S3Error::new("InvalidParameterValue", StatusCode::BAD_REQUEST, message)
}

/// keyhole has no MFA devices, so MFA information in a request cannot be verified: it is refused
/// rather than ignored (AWS answers a wrong code with "access denied").
fn refuse_mfa(form: &Query, action: &str) -> Result<(), S3Error> {
    if form.has("SerialNumber") || form.has("TokenCode") {
        return Err(S3Error::access_denied(format!(
            "{action} with SerialNumber/TokenCode: keyhole has no MFA devices, so the MFA code cannot be verified; call {action} without them"
        )));
    }
    Ok(())
}

/// `DurationSeconds` in `min..=max`, or `default` when absent.
fn duration_param(form: &Query, min: i64, max: i64, default: i64) -> Result<i64, S3Error> {
    let Some(v) = form.get("DurationSeconds") else {
        return Ok(default);
    };
    let d: i64 = v.parse().map_err(|_| {
        validation(format!(
            "DurationSeconds `{v}` is not a number of seconds ({min} to {max})"
        ))
    })?;
    if d < min || d > max {
        return Err(validation(format!(
            "1 validation error detected: Value '{d}' at 'durationSeconds' failed to satisfy constraint: use {min} to {max} seconds"
        )));
    }
    Ok(d)
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
        .map(|p| {
            p.with_name("session policy")
                .with_digest(crate::state::documents::digest(doc))
        })
        .map_err(|e| {
            S3Error::new(
                "MalformedPolicyDocument",
                StatusCode::BAD_REQUEST,
                format!("The session policy is not valid: {e}"),
            )
        })
}

/// Checks a session policy a caller passes (AssumeRole's, AssumeRoleWithWebIdentity's `Policy`)
/// before credentials carry it: it compiles, and its `Sid`s follow IAM's rules (unique,
/// alphanumeric: review 34, L2; the Sid text also lands in audit records).
pub fn check_new_session_policy(doc: &str) -> Result<(), S3Error> {
    compile_session_policy(doc)?;
    crate::state::check_iam_sids(doc).map_err(|e| {
        S3Error::new(
            "MalformedPolicyDocument",
            StatusCode::BAD_REQUEST,
            format!("The session policy is not valid: {e}"),
        )
    })
}

/// The STS actions keyhole serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StsAction {
    /// AssumeRole.
    AssumeRole,
    /// GetSessionToken.
    GetSessionToken,
    /// GetCallerIdentity.
    GetCallerIdentity,
    /// AssumeRoleWithWebIdentity (unsigned; the token authenticates it).
    AssumeRoleWithWebIdentity,
}

impl StsAction {
    /// Every served action.
    pub const ALL: [StsAction; 4] = [
        StsAction::AssumeRole,
        StsAction::GetSessionToken,
        StsAction::GetCallerIdentity,
        StsAction::AssumeRoleWithWebIdentity,
    ];

    /// Parses the `Action` parameter.
    pub fn parse(name: &str) -> Option<StsAction> {
        StsAction::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            StsAction::AssumeRole => "AssumeRole",
            StsAction::GetSessionToken => "GetSessionToken",
            StsAction::GetCallerIdentity => "GetCallerIdentity",
            StsAction::AssumeRoleWithWebIdentity => "AssumeRoleWithWebIdentity",
        }
    }

    /// The IAM action.
    pub fn iam_action(self) -> &'static str {
        match self {
            StsAction::AssumeRole => "sts:AssumeRole",
            StsAction::GetSessionToken => "sts:GetSessionToken",
            StsAction::GetCallerIdentity => "sts:GetCallerIdentity",
            StsAction::AssumeRoleWithWebIdentity => "sts:AssumeRoleWithWebIdentity",
        }
    }

    /// Whether the action issues credentials (its write-ahead audit record must be durable
    /// first).
    pub fn mutating(self) -> bool {
        !matches!(self, StsAction::GetCallerIdentity)
    }
}

/// An STS request, described for authorization.
#[derive(Debug)]
pub enum StsCall {
    /// GetCallerIdentity.
    GetCallerIdentity,
    /// GetSessionToken with its validated duration.
    GetSessionToken {
        /// Seconds.
        duration: i64,
    },
    /// AssumeRole with its validated parameters.
    AssumeRole(Box<assume::AssumeRoleCall>),
    /// AssumeRoleWithWebIdentity with its validated parameters.
    AssumeRoleWithWebIdentity(Box<web_identity::WebIdentityCall>),
}

impl Describe for StsCall {
    fn requirement(&self) -> Requirement {
        match self {
            // "No permissions are required to perform this operation. If an administrator
            // attaches a policy to your identity that explicitly denies access to the
            // sts:GetCallerIdentity action, you can still perform this operation"
            // (https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html).
            StsCall::GetCallerIdentity => Requirement::Unconditional {
                action: "sts:GetCallerIdentity",
                reason: "GetCallerIdentity needs no permission (AWS: an explicit deny does not apply to it)",
            },
            // "No permissions are required for users to perform this operation. ... You cannot
            // use policies to control authentication operations"
            // (https://docs.aws.amazon.com/STS/latest/APIReference/API_GetSessionToken.html).
            StsCall::GetSessionToken { .. } => Requirement::Unconditional {
                action: "sts:GetSessionToken",
                reason: "GetSessionToken needs no permission for an IAM user (AWS: policies do not control authentication operations)",
            },
            StsCall::AssumeRole(call) => call.requirement(),
            StsCall::AssumeRoleWithWebIdentity(call) => call.requirement(),
        }
    }

    fn add_context(&self, context: &mut Context) {
        match self {
            StsCall::AssumeRole(call) => call.add_context(context),
            StsCall::AssumeRoleWithWebIdentity(call) => call.add_context(context),
            StsCall::GetCallerIdentity | StsCall::GetSessionToken { .. } => {}
        }
    }
}

impl StsCall {
    /// The action.
    pub fn action(&self) -> StsAction {
        match self {
            StsCall::GetCallerIdentity => StsAction::GetCallerIdentity,
            StsCall::GetSessionToken { .. } => StsAction::GetSessionToken,
            StsCall::AssumeRole(_) => StsAction::AssumeRole,
            StsCall::AssumeRoleWithWebIdentity(_) => StsAction::AssumeRoleWithWebIdentity,
        }
    }

    /// What the audit trail records of the request (CloudTrail's `requestParameters`).
    pub fn audit_parameters(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        match self {
            StsCall::GetCallerIdentity => {}
            StsCall::GetSessionToken { duration } => {
                m.insert("durationSeconds".into(), serde_json::json!(duration));
            }
            StsCall::AssumeRole(call) => return call.audit_parameters(),
            StsCall::AssumeRoleWithWebIdentity(call) => return call.audit_parameters(),
        }
        m
    }
}

/// Describes a verified `sts` request: its parameters are validated (a malformed one is a
/// `ValidationError` before any decision) and the permissions it needs are stated.
pub fn describe(gw: &Gateway, principal: &Principal, form: &Query) -> Result<StsCall, S3Error> {
    let name = form.get("Action").unwrap_or("");
    match StsAction::parse(name) {
        Some(StsAction::GetCallerIdentity) => Ok(StsCall::GetCallerIdentity),
        Some(StsAction::GetSessionToken) => {
            refuse_mfa(form, "GetSessionToken")?;
            let duration = duration_param(
                form,
                MIN_SESSION_SECS,
                MAX_USER_SESSION_SECS,
                DEFAULT_USER_SESSION_SECS,
            )?;
            Ok(StsCall::GetSessionToken { duration })
        }
        Some(StsAction::AssumeRole) => Ok(StsCall::AssumeRole(Box::new(assume::describe(
            gw, principal, form,
        )?))),
        Some(StsAction::AssumeRoleWithWebIdentity) => Ok(StsCall::AssumeRoleWithWebIdentity(
            Box::new(web_identity::describe(gw, principal, form)?),
        )),
        None => Err(S3Error::not_implemented(&format!(
            "the STS action `{name}`"
        ))),
    }
}

/// Runs an authorized STS call; returns its response and what the audit trail records of it
/// (CloudTrail's `responseElements`: the issued access key id and, for AssumeRole, the
/// assumed-role user; never the secret or the token).
pub fn handle(
    gw: &Gateway,
    principal: &Principal,
    call: Authorized<StsCall>,
    request_id: &str,
    now: DateTime<Utc>,
) -> Result<(Response<Body>, Option<serde_json::Value>), S3Error> {
    match call.into_call() {
        StsCall::GetCallerIdentity => Ok((caller_identity(gw, principal, request_id), None)),
        StsCall::GetSessionToken { duration } => {
            session_token(gw, principal, duration, request_id, now)
        }
        StsCall::AssumeRole(call) => assume::assume_role(gw, *call, request_id, now),
        StsCall::AssumeRoleWithWebIdentity(call) => {
            web_identity::assume_role_with_web_identity(gw, *call, request_id, now)
        }
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

/// The `Credentials` element of AssumeRole and GetSessionToken.
fn credentials_xml(w: &mut XmlWriter, claims: &SessionClaims, token: &str) {
    let expiration = DateTime::<Utc>::from_timestamp(claims.exp, 0).unwrap_or_default();
    w.open("Credentials");
    w.elem("AccessKeyId", &claims.ak);
    w.elem("SecretAccessKey", &claims.sk);
    w.elem("SessionToken", token);
    w.elem(
        "Expiration",
        &expiration.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    );
    w.close("Credentials");
}

fn caller_identity(gw: &Gateway, principal: &Principal, request_id: &str) -> Response<Body> {
    let account = &gw.account.record.account_id;
    let (arn, user_id) = match principal {
        Principal::Root { .. } => (format!("arn:aws:iam::{account}:root"), account.clone()),
        // GetSessionToken sessions are the user: its ARN and unique id.
        Principal::User { arn, id, .. } => (arn.clone(), id.clone()),
        Principal::Session { claims, arn, .. } => (
            arn.clone(),
            format!("{}:{}", claims.role_id, claims.session),
        ),
        Principal::JobToken { arn, .. } => (arn.clone(), String::new()),
        Principal::WebIdentity { .. } | Principal::Anonymous => ("*".into(), String::new()),
    };
    respond("GetCallerIdentity", request_id, |w| {
        w.elem("Arn", &arn);
        w.elem("UserId", &user_id);
        w.elem("Account", account);
    })
}

/// GetSessionToken (https://docs.aws.amazon.com/STS/latest/APIReference/API_GetSessionToken.html):
/// temporary credentials for the calling IAM user, "based on permissions associated with the IAM
/// user whose credentials were used to call the operation" (the user's current policies at each
/// request). "No permissions are required for users to perform this operation": no policy is
/// consulted. It "must be called by using the long-term AWS security credentials of an IAM user".
///
/// keyhole differences: the root user may not call it (AWS allows it but advises against; root
/// temporary credentials would carry root's powers past any key rotation), and since keyhole has
/// no MFA the credentials can never call IAM (AWS: "You cannot call any IAM API operations
/// unless MFA authentication information is included in the request").
fn session_token(
    gw: &Gateway,
    principal: &Principal,
    duration: i64,
    request_id: &str,
    now: DateTime<Utc>,
) -> Result<(Response<Body>, Option<serde_json::Value>), S3Error> {
    let account = &gw.account.record.account_id;
    let user = match principal {
        Principal::User {
            name,
            id,
            session: None,
            ..
        } => SessionUser {
            name: name.clone(),
            id: id.clone(),
        },
        Principal::User {
            session: Some(_), ..
        }
        | Principal::Session { .. } => {
            return Err(S3Error::access_denied(
                "Cannot call GetSessionToken with session credentials: call it with an IAM user's access key",
            ))
        }
        Principal::Root { .. } => {
            return Err(S3Error::access_denied(
                "keyhole does not issue temporary credentials to the root user: call GetSessionToken with an IAM user's access key",
            ))
        }
        Principal::JobToken { .. } | Principal::WebIdentity { .. } | Principal::Anonymous => {
            return Err(S3Error::access_denied("Access Denied"))
        }
    };
    let mut claims = SessionClaims::fresh(account, now, duration);
    claims.user = Some(user);
    let token = gw.tokens.seal(&claims)?;
    Ok((
        respond("GetSessionToken", request_id, |w| {
            credentials_xml(w, &claims, &token);
        }),
        Some(serde_json::json!({"credentials": crate::jobs::credentials_audit(&claims)})),
    ))
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
            policy_arns: vec!["arn:aws:iam::123456789012:policy/ro".into()],
            iat: 1,
            exp: 2,
            job: None,
            tags: vec![("team".into(), "ml".into()), ("Project".into(), "x".into())],
            transitive: vec!["project".into()],
            user: None,
            web_identity: None,
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

    #[test]
    fn tokens_sealed_before_the_new_claims_still_open() {
        // A token from before PolicyArns, transitive tags and user sessions: the new fields
        // default to empty.
        let t = TokenSealer::new(&[3u8; 32]).unwrap();
        let old = r#"{"ak":"ASIAOLD","sk":"s","account":"123456789012","role":"r","role_id":"AROA","session":"s1","iat":1,"exp":2}"#;
        let token = t.0.seal(old, "ASIAOLD").unwrap();
        let c = t.open(&token, "ASIAOLD").unwrap();
        assert!(c.policy_arns.is_empty() && c.transitive.is_empty() && c.user.is_none());
        assert!(!c.has_session_policies());
    }

    /// "If you set a tag key as transitive, the corresponding key and value passes to subsequent
    /// sessions in a role chain"
    /// (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_session-tags.html#id_session-tags_role-chaining).
    #[test]
    fn only_transitive_tags_pass_on_matched_case_insensitively() {
        assert_eq!(claims().transitive_tags(), [("Project".into(), "x".into())]);
        assert!(claims().has_session_policies());
    }

    #[test]
    fn duration_limits_are_validated() {
        let q = |s: &str| Query::parse(Some(s));
        assert_eq!(duration_param(&q(""), 900, 3600, 3600).unwrap(), 3600);
        assert_eq!(
            duration_param(&q("DurationSeconds=900"), 900, 3600, 3600).unwrap(),
            900
        );
        for bad in [
            "DurationSeconds=899",
            "DurationSeconds=3601",
            "DurationSeconds=x",
        ] {
            let e = duration_param(&q(bad), 900, 3600, 3600).unwrap_err();
            assert_eq!(e.code(), "ValidationError", "{bad}");
            assert!(e.message().contains("900 to 3600"), "{}", e.message());
        }
        let e = refuse_mfa(&q("TokenCode=123456"), "GetSessionToken").unwrap_err();
        assert_eq!(e.code(), "AccessDenied");
        assert!(refuse_mfa(&q("DurationSeconds=900"), "GetSessionToken").is_ok());
    }
}
