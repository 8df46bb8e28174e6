//! Authentication (who is calling) and authorization (may they do this).
//!
//! # Security
//! - Authentication is the only way to obtain a [`Principal`] other than `Anonymous`: it requires a
//!   SigV4 signature verified by `keyhole_sigv4::verify` against the key's secret.
//! - Authorization is a trait the gateway cannot be built without; [`PolicyAuthorizer`] decides
//!   with the IAM policy engine (`keyhole-policy`) and the request's condition context.
//! - Denials never echo policy text; they name the action, the resource and the reason class.

use chrono::{DateTime, Utc};
use http::{HeaderMap, Method, StatusCode, Uri};
use keyhole_sigv4::{SecretKey, VerifiedRequest};

use crate::error::S3Error;
use crate::s3::route::Permission;

pub mod policy_cache;

/// Who sent a request.
#[derive(Debug, Clone)]
pub enum Principal {
    /// The account's root user.
    Root {
        /// The access key the request was signed with.
        access_key_id: String,
    },
    /// An IAM user, signing with one of its access keys or with temporary credentials from
    /// GetSessionToken (which act as the user: same ARN, unique id and current policies).
    User {
        /// User name.
        name: String,
        /// Unique id (`AIDA...`), the value of `aws:userid`.
        id: String,
        /// `arn:aws:iam::ACCOUNT:user/NAME`.
        arn: String,
        /// The access key the request was signed with (`ASIA...` for a GetSessionToken session).
        access_key_id: String,
        /// GetSessionToken credentials: the session's claims. INVARIANT: `sk` is cleared, as for
        /// [`Principal::Session`].
        session: Option<std::sync::Arc<crate::sts::SessionClaims>>,
        /// The user's identity policies, compiled (from the state snapshot).
        policies: std::sync::Arc<Vec<keyhole_policy::CompiledPolicy>>,
        /// The user's permissions boundary, if set.
        boundary: Option<std::sync::Arc<keyhole_policy::CompiledPolicy>>,
        /// The user's tags (`aws:PrincipalTag/*`).
        tags: std::sync::Arc<Vec<(String, String)>>,
    },
    /// An assumed-role session, authenticated by its sealed session token.
    Session {
        /// The token's claims. INVARIANT: `claims.sk` is cleared once the signature is verified,
        /// so no copy of a principal carries the secret.
        claims: std::sync::Arc<crate::sts::SessionClaims>,
        /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
        arn: String,
        /// `arn:aws:iam::ACCOUNT:role/ROLE`.
        role_arn: String,
        /// The role's identity policies (current, from the snapshot).
        role_policies: std::sync::Arc<Vec<keyhole_policy::CompiledPolicy>>,
        /// The session policies (inline and managed), if the session was created with any; a
        /// job's policy for job sessions.
        session_policies: Option<std::sync::Arc<[keyhole_policy::CompiledPolicy]>>,
        /// The role's permissions boundary, if set.
        boundary: Option<std::sync::Arc<keyhole_policy::CompiledPolicy>>,
        /// The role's tags (`aws:PrincipalTag/*` of its sessions).
        tags: std::sync::Arc<Vec<(String, String)>>,
    },
    /// No signature at all.
    Anonymous,
}

impl Principal {
    /// The principal's ARN (`arn:aws:iam::ACCOUNT:root`), or `*` for anonymous callers.
    pub fn arn(&self, account_id: &str) -> String {
        match self {
            Principal::Root { .. } => format!("arn:aws:iam::{account_id}:root"),
            Principal::User { arn, .. } | Principal::Session { arn, .. } => arn.clone(),
            Principal::Anonymous => "*".to_owned(),
        }
    }

    /// The access key the request was signed with, if any.
    pub fn access_key_id(&self) -> Option<&str> {
        match self {
            Principal::Root { access_key_id } | Principal::User { access_key_id, .. } => {
                Some(access_key_id)
            }
            Principal::Session { claims, .. } => Some(&claims.ak),
            Principal::Anonymous => None,
        }
    }

    /// A short label for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Principal::Root { .. } => "Root",
            Principal::User { .. } => "IAMUser",
            Principal::Session { role_arn, .. } if role_arn.is_empty() => "FederatedUser",
            Principal::Session { .. } => "AssumedRole",
            Principal::Anonymous => "Anonymous",
        }
    }
}

/// Maps access keys to principals and verifies signatures.
#[derive(Debug)]
pub struct Authenticator {
    root_access_key_id: String,
    root_secret: SecretKey,
    region: String,
    state: std::sync::Arc<crate::state::State>,
    tokens: std::sync::Arc<crate::sts::TokenSealer>,
    jobs: std::sync::Arc<crate::jobs::store::JobStore>,
    session_policy_cache: policy_cache::SessionPolicyCache,
}

/// The error code for an unknown or inactive key: S3 and the Query APIs spell it differently.
fn unknown_key(service: &str, access_key_id: &str) -> S3Error {
    if service == "s3" {
        S3Error::new(
            "InvalidAccessKeyId",
            StatusCode::FORBIDDEN,
            "The AWS Access Key Id you provided does not exist in our records.",
        )
        .with("AWSAccessKeyId", access_key_id)
    } else {
        S3Error::new(
            "InvalidClientTokenId",
            StatusCode::FORBIDDEN,
            "The security token included in the request is invalid.",
        )
    }
}

impl Authenticator {
    /// An authenticator for the root credentials and the IAM users' keys in `state`.
    pub fn new(
        root_access_key_id: String,
        root_secret: SecretKey,
        region: String,
        state: std::sync::Arc<crate::state::State>,
        tokens: std::sync::Arc<crate::sts::TokenSealer>,
        jobs: std::sync::Arc<crate::jobs::store::JobStore>,
    ) -> Authenticator {
        Authenticator {
            root_access_key_id,
            root_secret,
            region,
            state,
            tokens,
            jobs,
            session_policy_cache: policy_cache::SessionPolicyCache::default(),
        }
    }

    /// The cache of compiled inline session policies.
    pub fn session_policy_cache(&self) -> &policy_cache::SessionPolicyCache {
        &self.session_policy_cache
    }

    /// Parses the request's SigV4 fields; `None` for an unsigned request.
    pub fn parse(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Option<keyhole_sigv4::SignedRequest>, S3Error> {
        Ok(keyhole_sigv4::parse(method, uri, headers)?)
    }

    /// Verifies a parsed signature and returns who sent it. `body_sha256` is the hash of the
    /// (already read, small) body for Query-protocol requests that sign it without declaring it.
    #[allow(clippy::too_many_arguments, reason = "the parts of one HTTP request")]
    pub fn verify(
        &self,
        signed: keyhole_sigv4::SignedRequest,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        now: DateTime<Utc>,
        body_sha256: Option<&str>,
    ) -> Result<(Principal, VerifiedRequest), S3Error> {
        let service = signed.scope().service.clone();
        // AWS refuses a scope for another region, naming the one expected
        // (https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-authenticating-requests.html).
        // IAM is a global service signed for us-east-1 (some clients leave the region empty).
        let region_ok = match service.as_str() {
            "iam" => true,
            _ => signed.scope().region == self.region,
        };
        if !region_ok {
            let reason = format!(
                "the region '{}' is wrong; expecting '{}'",
                signed.scope().region,
                self.region
            );
            let (code, message) = match signed.kind() {
                keyhole_sigv4::AuthKind::Header => (
                    "AuthorizationHeaderMalformed",
                    format!("The authorization header is malformed; {reason}"),
                ),
                keyhole_sigv4::AuthKind::Query => (
                    "AuthorizationQueryParametersError",
                    format!("Error parsing the X-Amz-Credential parameter; {reason}"),
                ),
            };
            return Err(S3Error::new(code, StatusCode::BAD_REQUEST, message)
                .with("Region", self.region.clone()));
        }
        let access_key_id = signed.access_key_id().to_owned();
        let snapshot = self.state.snapshot();
        let invalid_token = || {
            S3Error::new(
                "InvalidToken",
                StatusCode::BAD_REQUEST,
                "The provided token is malformed or otherwise invalid.",
            )
        };
        let mut session = None;
        let mut user_session = None;
        let (secret, user) = if let Some(token) = signed.session_token() {
            // Temporary credentials: the sealed token carries the secret; no database lookup.
            let claims = self
                .tokens
                .open(token, &access_key_id)
                .ok_or_else(invalid_token)?;
            if claims.exp <= now.timestamp() {
                return Err(S3Error::new(
                    "ExpiredToken",
                    StatusCode::BAD_REQUEST,
                    "The provided token has expired.",
                ));
            }
            let revoked = || {
                S3Error::new(
                    "InvalidToken",
                    StatusCode::BAD_REQUEST,
                    "The provided token has been revoked.",
                )
            };
            if self.jobs.is_revoked(&claims.ak) {
                return Err(revoked());
            }
            // A job's sessions end the moment the job is finished (memory only).
            let job = match &claims.job {
                Some(id) => Some(self.jobs.active(id).ok_or_else(revoked)?),
                None => None,
            };
            if let Some(u) = &claims.user {
                // GetSessionToken: the user must still exist (the same one, not a namesake).
                let user = snapshot
                    .users
                    .get(&u.name)
                    .filter(|e| e.record.id == u.id && claims.role.is_empty() && job.is_none())
                    .ok_or_else(invalid_token)?;
                let secret = SecretKey::new(claims.sk.clone());
                user_session = Some((claims, user));
                (secret, None)
            } else {
                let role = if claims.role.is_empty() && job.is_some() {
                    None
                } else {
                    let role = snapshot
                        .roles
                        .get(&claims.role)
                        .filter(|r| r.record.id == claims.role_id)
                        .ok_or_else(invalid_token)?;
                    Some(role.clone())
                };
                let secret = SecretKey::new(claims.sk.clone());
                session = Some((claims, role, job));
                (secret, None)
            }
        } else if access_key_id == self.root_access_key_id {
            (self.root_secret.clone(), None)
        } else {
            match snapshot.keys.get(&access_key_id) {
                // An inactive key is refused at once, exactly like an unknown one.
                Some(k) if k.active => (k.secret.clone(), snapshot.users.get(&k.user)),
                _ => return Err(unknown_key(&service, &access_key_id)),
            }
        };
        let verified = match body_sha256 {
            Some(h) => {
                keyhole_sigv4::verify_with_payload(signed, method, uri, headers, h, &secret, now)?
            }
            None => keyhole_sigv4::verify(signed, method, uri, headers, &secret, now)?,
        };
        if let Some((mut claims, u)) = user_session {
            claims.sk.clear();
            return Ok((
                Principal::User {
                    name: u.record.name.clone(),
                    id: u.record.id.clone(),
                    arn: u.arn.clone(),
                    access_key_id,
                    session: Some(std::sync::Arc::new(claims)),
                    policies: u.policies.clone(),
                    boundary: u.boundary.clone(),
                    tags: u.tags.clone(),
                },
                verified,
            ));
        }
        if let Some((mut claims, role, job)) = session {
            claims.sk.clear();
            let mut session_policies = self.session_policies(&claims, &snapshot)?;
            let arn = crate::sts::session_arn(&claims.account, &claims.role, &claims.session);
            // A role-capped job: role policies ∩ job policy. A role-less job: the job policy is
            // the whole grant.
            let (role_arn, role_policies, boundary, role_tags) = match (&role, &job) {
                (Some(r), job) => {
                    if let Some(j) = job {
                        session_policies = Some(std::sync::Arc::from([(*j.as_session).clone()]));
                    }
                    (
                        r.arn.clone(),
                        r.policies.clone(),
                        r.boundary.clone(),
                        r.tags.clone(),
                    )
                }
                (None, Some(j)) => (
                    String::new(),
                    j.as_identity.clone(),
                    None,
                    std::sync::Arc::default(),
                ),
                (None, None) => return Err(invalid_token()),
            };
            let tags = if claims.tags.is_empty() {
                role_tags
            } else {
                let mut merged: Vec<(String, String)> = role_tags
                    .iter()
                    .filter(|(k, _)| !claims.tags.iter().any(|(t, _)| t.eq_ignore_ascii_case(k)))
                    .cloned()
                    .collect();
                merged.extend(claims.tags.iter().cloned());
                merged.sort();
                std::sync::Arc::new(merged)
            };
            return Ok((
                Principal::Session {
                    claims: std::sync::Arc::new(claims),
                    arn,
                    role_arn,
                    role_policies,
                    session_policies,
                    boundary,
                    tags,
                },
                verified,
            ));
        }
        let principal = match user {
            None if access_key_id == self.root_access_key_id => Principal::Root { access_key_id },
            None => return Err(unknown_key(&service, &access_key_id)),
            Some(u) => Principal::User {
                name: u.record.name.clone(),
                id: u.record.id.clone(),
                arn: u.arn.clone(),
                access_key_id,
                session: None,
                policies: u.policies.clone(),
                boundary: u.boundary.clone(),
                tags: u.tags.clone(),
            },
        };
        Ok((principal, verified))
    }
}

impl Authenticator {
    /// A session's session policies: the inline policy (compiled once, then from the cache) and
    /// the managed policies named by `PolicyArns`, resolved in the current snapshot; `None` when
    /// the session was created without any. A managed policy deleted since is left out, so the
    /// session keeps only what the remaining ones allow (nothing, if none remain).
    fn session_policies(
        &self,
        claims: &crate::sts::SessionClaims,
        snapshot: &crate::state::Snapshot,
    ) -> Result<Option<std::sync::Arc<[keyhole_policy::CompiledPolicy]>>, S3Error> {
        if !claims.has_session_policies() {
            return Ok(None);
        }
        let mut list = Vec::with_capacity(1 + claims.policy_arns.len());
        if let Some(doc) = &claims.policy {
            list.push((*self.session_policy_cache.get_or_compile(doc)?).clone());
        }
        list.extend(
            claims
                .policy_arns
                .iter()
                .filter_map(|arn| snapshot.session_policies.get(arn).cloned()),
        );
        Ok(Some(std::sync::Arc::from(list)))
    }
}

/// Decides whether a principal may perform one (action, resource) pair in a request context.
pub trait Authorize: Send + Sync + std::fmt::Debug {
    /// `Ok(())` only when the pair is allowed.
    fn authorize(
        &self,
        principal: &Principal,
        permission: &Permission,
        context: &keyhole_policy::Context,
    ) -> Result<(), S3Error>;

    /// Like [`Authorize::authorize`], with the statements that decided (for the audit trail):
    /// the allows that granted, or the denies that refused. Empty when no statement decided
    /// (the root user, or an implicit deny).
    fn authorize_explained(
        &self,
        principal: &Principal,
        permission: &Permission,
        context: &keyhole_policy::Context,
    ) -> (Result<(), S3Error>, Vec<String>) {
        (self.authorize(principal, permission, context), Vec::new())
    }
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

/// Authorization by the IAM policy engine.
///
/// The policies in play are the principal's identity policies (a user's inline and attached
/// policies; a session's role policies and session policy) and, for S3 resources, the bucket's
/// policy, decided with AWS's evaluation logic: an explicit deny anywhere wins, then an allow from
/// the bucket policy or the identity side (intersected with the session policy).
/// - The root user bypasses identity checks but not a bucket policy's explicit deny (and can always
///   manage the bucket policy).
/// - Anonymous callers get only what a bucket policy grants to everyone, and nothing while
///   RestrictPublicBuckets is in force.
#[derive(Debug, Clone)]
pub struct PolicyAuthorizer {
    /// The account id.
    pub account_id: String,
    /// Bucket policies and Block Public Access settings (read from the snapshot).
    pub state: std::sync::Arc<crate::state::State>,
}

/// The bucket an S3 resource ARN names, if it is one.
fn bucket_of(resource: &str) -> Option<&str> {
    let rest = resource.strip_prefix("arn:aws:s3:::")?;
    Some(rest.split_once('/').map_or(rest, |(b, _)| b)).filter(|b| !b.is_empty())
}

impl Authorize for PolicyAuthorizer {
    fn authorize(
        &self,
        principal: &Principal,
        permission: &Permission,
        context: &keyhole_policy::Context,
    ) -> Result<(), S3Error> {
        self.explain(principal, permission, context).0
    }

    fn authorize_explained(
        &self,
        principal: &Principal,
        permission: &Permission,
        context: &keyhole_policy::Context,
    ) -> (Result<(), S3Error>, Vec<String>) {
        self.explain(principal, permission, context)
    }
}

impl PolicyAuthorizer {
    /// The decision and the statements that made it.
    fn explain(
        &self,
        principal: &Principal,
        permission: &Permission,
        context: &keyhole_policy::Context,
    ) -> (Result<(), S3Error>, Vec<String>) {
        let snapshot = self.state.snapshot();
        let bucket = bucket_of(&permission.resource);
        let bucket_policy = bucket.and_then(|b| snapshot.bucket_policies.get(b));
        let restrict = bucket.is_some_and(|b| snapshot.effective_bpa(b).restrict_public_buckets);
        let (arn, request_principal, identity, session, boundary) = match principal {
            Principal::Root { .. } if bucket_policy.is_none() => return (Ok(()), Vec::new()),
            Principal::Root { .. } => (
                format!("arn:aws:iam::{}:root", self.account_id),
                keyhole_policy::RequestPrincipal::Root {
                    account: self.account_id.clone(),
                },
                &[][..],
                None,
                None,
            ),
            Principal::Anonymous if bucket_policy.is_none() => {
                return (Err(S3Error::access_denied("Access Denied")), Vec::new())
            }
            Principal::Anonymous => (
                "anonymous".to_owned(),
                keyhole_policy::RequestPrincipal::Anonymous,
                &[][..],
                None,
                None,
            ),
            Principal::User {
                arn,
                policies,
                boundary,
                ..
            } => (
                arn.clone(),
                keyhole_policy::RequestPrincipal::User {
                    arn: arn.clone(),
                    account: self.account_id.clone(),
                },
                policies.as_slice(),
                None,
                boundary.as_deref(),
            ),
            Principal::Session {
                arn,
                role_arn,
                role_policies,
                session_policies,
                boundary,
                ..
            } => (
                arn.clone(),
                // A session no role backs (a role-less job) is its own principal, like a
                // federated user.
                if role_arn.is_empty() {
                    keyhole_policy::RequestPrincipal::User {
                        arn: arn.clone(),
                        account: self.account_id.clone(),
                    }
                } else {
                    keyhole_policy::RequestPrincipal::Session {
                        session_arn: arn.clone(),
                        role_arn: role_arn.clone(),
                        account: self.account_id.clone(),
                    }
                },
                role_policies.as_slice(),
                session_policies.as_deref(),
                boundary.as_deref(),
            ),
        };
        let request = keyhole_policy::Request::new(
            request_principal,
            permission.action,
            &permission.resource,
            None,
            context.clone(),
        );
        let set = keyhole_policy::Policies {
            identity,
            session,
            boundaries: boundary.map_or(&[][..], std::slice::from_ref),
            resource: bucket_policy.map(|p| &**p),
            restrict_public_buckets: restrict,
        };
        let decision = keyhole_policy::Evaluator::evaluate(&set, &request);
        let statements: Vec<String> = decision.matched.iter().map(describe_statement).collect();
        if decision.kind == keyhole_policy::DecisionKind::Allowed {
            return (Ok(()), statements);
        }
        if matches!(principal, Principal::Anonymous) {
            return (Err(S3Error::access_denied("Access Denied")), statements);
        }
        let arn = &arn;
        let reason = match decision.reason {
            Some(keyhole_policy::DenialReason::ExplicitDeny(kind)) => {
                format!("with an explicit deny in {}", kind.with_article())
            }
            Some(keyhole_policy::DenialReason::NoAllow(kind)) => format!(
                "because no {} allows the {} action",
                kind.describe(),
                permission.action
            ),
            None => format!(
                "because no identity-based policy allows the {} action",
                permission.action
            ),
        };
        tracing::debug!(principal = %arn, action = permission.action, resource = %permission.resource, %reason, "denied");
        (
            Err(S3Error::access_denied(denial_message(
                arn, permission, &reason,
            ))),
            statements,
        )
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn authorizer() -> PolicyAuthorizer {
        let dir = tempfile::tempdir().unwrap();
        let state = crate::state::State::open(dir.path(), &[1u8; 32], "123456789012").unwrap();
        // The database stays open after the directory handle is dropped (unlinked, still valid).
        PolicyAuthorizer {
            account_id: "123456789012".into(),
            state: std::sync::Arc::new(state),
        }
    }

    fn perm(action: &'static str, resource: &str) -> Permission {
        Permission {
            action,
            resource: resource.into(),
        }
    }

    fn user(doc: &str) -> Principal {
        let p =
            keyhole_policy::CompiledPolicy::from_json(doc, keyhole_policy::PolicyKind::Identity)
                .unwrap();
        Principal::User {
            name: "u".into(),
            id: "AIDAX".into(),
            arn: "arn:aws:iam::123456789012:user/u".into(),
            access_key_id: "AKIAX".into(),
            session: None,
            policies: std::sync::Arc::new(vec![p]),
            boundary: None,
            tags: Default::default(),
        }
    }

    #[test]
    fn root_allowed_anonymous_denied() {
        let a = authorizer();
        let ctx = keyhole_policy::Context::new();
        let p = perm("s3:GetObject", "arn:aws:s3:::b/k");
        assert!(a
            .authorize(
                &Principal::Root {
                    access_key_id: "AKIA".into()
                },
                &p,
                &ctx
            )
            .is_ok());
        let e = a.authorize(&Principal::Anonymous, &p, &ctx).unwrap_err();
        assert_eq!(
            (e.code(), e.status()),
            ("AccessDenied", StatusCode::FORBIDDEN)
        );
    }

    #[test]
    fn users_are_decided_by_their_policies_with_the_context() {
        let a = authorizer();
        let u = user(
            r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b","Condition":{"StringLike":{"s3:prefix":"data/*"}}},
            {"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/*"},
            {"Effect":"Deny","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::b/*"}]}"#,
        );
        let mut ctx = keyhole_policy::Context::new();
        assert!(a
            .authorize(&u, &perm("s3:GetObject", "arn:aws:s3:::b/k"), &ctx)
            .is_ok());
        let e = a
            .authorize(&u, &perm("s3:DeleteObject", "arn:aws:s3:::b/k"), &ctx)
            .unwrap_err();
        assert!(
            e.message()
                .ends_with("with an explicit deny in an identity-based policy"),
            "{}",
            e.message()
        );
        let e = a
            .authorize(&u, &perm("s3:ListBucket", "arn:aws:s3:::b"), &ctx)
            .unwrap_err();
        assert_eq!(
            e.message(),
            "User: arn:aws:iam::123456789012:user/u is not authorized to perform: s3:ListBucket on resource: \"arn:aws:s3:::b\" because no identity-based policy allows the s3:ListBucket action"
        );
        ctx.insert("s3:prefix", "data/x");
        assert!(a
            .authorize(&u, &perm("s3:ListBucket", "arn:aws:s3:::b"), &ctx)
            .is_ok());
        assert!(a
            .authorize(&u, &perm("s3:GetObject", "arn:aws:s3:::other/k"), &ctx)
            .is_err());
    }

    #[test]
    fn sessions_are_role_policies_intersected_with_the_session_policy() {
        let a = authorizer();
        let compile =
            |doc: &str, kind| keyhole_policy::CompiledPolicy::from_json(doc, kind).unwrap();
        let role = compile(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/*"}]}"#,
            keyhole_policy::PolicyKind::Identity,
        );
        let session = compile(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#,
            keyhole_policy::PolicyKind::Session,
        );
        let p = Principal::Session {
            claims: std::sync::Arc::new(crate::sts::SessionClaims {
                ak: "ASIAX".into(),
                sk: String::new(),
                account: "123456789012".into(),
                role: "r".into(),
                role_id: "AROAX".into(),
                session: "s".into(),
                source_identity: None,
                policy: None,
                policy_arns: Vec::new(),
                iat: 0,
                exp: i64::MAX,
                job: None,
                tags: Vec::new(),
                transitive: Vec::new(),
                user: None,
            }),
            arn: "arn:aws:sts::123456789012:assumed-role/r/s".into(),
            role_arn: "arn:aws:iam::123456789012:role/r".into(),
            role_policies: std::sync::Arc::new(vec![role]),
            session_policies: Some(std::sync::Arc::from([session])),
            boundary: None,
            tags: Default::default(),
        };
        let ctx = keyhole_policy::Context::new();
        assert!(a
            .authorize(&p, &perm("s3:GetObject", "arn:aws:s3:::b/k"), &ctx)
            .is_ok());
        let e = a
            .authorize(&p, &perm("s3:PutObject", "arn:aws:s3:::b/k"), &ctx)
            .unwrap_err();
        assert!(
            e.message()
                .ends_with("because no session policy allows the s3:PutObject action"),
            "{}",
            e.message()
        );
        assert!(a
            .authorize(&p, &perm("s3:GetObject", "arn:aws:s3:::other/k"), &ctx)
            .is_err());
    }

    const ACCOUNT: &str = "123456789012";

    /// An authenticator over a fresh state with a role `r` (allowed s3:GetObject and
    /// s3:PutObject), a managed policy `ro` (s3:GetObject) and a user `u`.
    fn authenticator() -> (
        Authenticator,
        std::sync::Arc<crate::state::State>,
        tempfile::TempDir,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let state = std::sync::Arc::new(
            crate::state::State::open(dir.path(), &[1u8; 32], ACCOUNT).unwrap(),
        );
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#;
        state.create_role("r", "/", trust, 3600, "").unwrap();
        state
            .put_inline_policy(
                crate::state::PrincipalKind::Role,
                "r",
                "rw",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],"Resource":"*"}]}"#,
            )
            .unwrap();
        state
            .create_policy(
                "ro",
                "/",
                "",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#,
            )
            .unwrap();
        state.create_user("u", "/").unwrap();
        let jobs = std::sync::Arc::new(crate::jobs::store::JobStore::open(dir.path()).unwrap());
        let authn = Authenticator::new(
            "AKIAROOT".into(),
            SecretKey::new("root-secret".to_owned()),
            "us-east-1".into(),
            state.clone(),
            std::sync::Arc::new(crate::sts::TokenSealer::new(&[7u8; 32]).unwrap()),
            jobs,
        );
        (authn, state, dir)
    }

    /// Signs a GET with temporary credentials and verifies it.
    fn verify_session(
        authn: &Authenticator,
        claims: &crate::sts::SessionClaims,
    ) -> Result<Principal, S3Error> {
        let token = authn.tokens.seal(claims).unwrap();
        let uri: Uri = "http://127.0.0.1:9000/b/k".parse().unwrap();
        let mut headers = HeaderMap::new();
        let creds = keyhole_sigv4::Credentials {
            access_key_id: claims.ak.clone(),
            secret_key: SecretKey::new(claims.sk.clone()),
            session_token: Some(token),
        };
        let now = Utc::now();
        keyhole_sigv4::sign_headers(
            &Method::GET,
            &uri,
            &mut headers,
            "UNSIGNED-PAYLOAD",
            &keyhole_sigv4::SigningParams {
                credentials: &creds,
                region: "us-east-1",
                service: "s3",
                time: now,
            },
        )
        .unwrap();
        let signed = authn.parse(&Method::GET, &uri, &headers)?.unwrap();
        authn
            .verify(signed, &Method::GET, &uri, &headers, now, None)
            .map(|(p, _)| p)
    }

    fn role_claims(state: &crate::state::State) -> crate::sts::SessionClaims {
        let mut c = crate::sts::SessionClaims::fresh(ACCOUNT, Utc::now(), 900);
        c.role = "r".into();
        c.role_id = state.get_role("r").unwrap().id;
        c.session = "s".into();
        c
    }

    /// Issue 4, item 3: the hot path does not recompile a session's inline policy.
    #[test]
    fn a_sessions_second_request_reuses_the_compiled_session_policy() {
        let (authn, state, _dir) = authenticator();
        let mut claims = role_claims(&state);
        claims.policy = Some(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#
                .into(),
        );
        assert_eq!(authn.session_policy_cache().compilations(), 0);
        let first = verify_session(&authn, &claims).unwrap();
        let second = verify_session(&authn, &claims).unwrap();
        assert_eq!(
            authn.session_policy_cache().compilations(),
            1,
            "the second request found the policy compiled"
        );
        for p in [&first, &second] {
            let Principal::Session {
                session_policies: Some(list),
                claims,
                ..
            } = p
            else {
                panic!("{p:?}")
            };
            assert_eq!(list.len(), 1);
            assert!(
                claims.sk.is_empty(),
                "the secret does not outlive verification"
            );
        }
        let a = PolicyAuthorizer {
            account_id: ACCOUNT.into(),
            state,
        };
        let ctx = keyhole_policy::Context::new();
        assert!(a
            .authorize(&second, &perm("s3:GetObject", "arn:aws:s3:::b/k"), &ctx)
            .is_ok());
        assert!(a
            .authorize(&second, &perm("s3:PutObject", "arn:aws:s3:::b/k"), &ctx)
            .is_err());
    }

    /// PolicyArns: role policies ∩ (inline ∪ managed session policies)
    /// (https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies.html#policies_session);
    /// a managed session policy deleted since leaves the session nothing it granted.
    #[test]
    fn managed_session_policies_narrow_the_role_and_are_resolved_per_request() {
        let (authn, state, _dir) = authenticator();
        let mut claims = role_claims(&state);
        claims.policy_arns = vec![format!("arn:aws:iam::{ACCOUNT}:policy/ro")];
        let a = PolicyAuthorizer {
            account_id: ACCOUNT.into(),
            state: state.clone(),
        };
        let ctx = keyhole_policy::Context::new();
        let p = verify_session(&authn, &claims).unwrap();
        assert!(a
            .authorize(&p, &perm("s3:GetObject", "arn:aws:s3:::b/k"), &ctx)
            .is_ok());
        let e = a
            .authorize(&p, &perm("s3:PutObject", "arn:aws:s3:::b/k"), &ctx)
            .unwrap_err();
        assert!(
            e.message()
                .ends_with("because no session policy allows the s3:PutObject action"),
            "{}",
            e.message()
        );
        // Inline ∪ managed: an inline policy granting PutObject adds it back (within the role).
        claims.policy = Some(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"*"}]}"#
                .into(),
        );
        let both = verify_session(&authn, &claims).unwrap();
        assert!(a
            .authorize(&both, &perm("s3:PutObject", "arn:aws:s3:::b/k"), &ctx)
            .is_ok());
        assert!(a
            .authorize(&both, &perm("s3:GetObject", "arn:aws:s3:::b/k"), &ctx)
            .is_ok());
        claims.policy = None;
        state
            .delete_policy(&format!("arn:aws:iam::{ACCOUNT}:policy/ro"))
            .unwrap();
        let orphan = verify_session(&authn, &claims).unwrap();
        assert!(a
            .authorize(&orphan, &perm("s3:GetObject", "arn:aws:s3:::b/k"), &ctx)
            .is_err());
    }

    /// GetSessionToken credentials act as the user
    /// (https://docs.aws.amazon.com/STS/latest/APIReference/API_GetSessionToken.html) and end
    /// when the user is deleted.
    #[test]
    fn user_sessions_authenticate_as_their_user() {
        let (authn, state, _dir) = authenticator();
        let (record, arn) = state.get_user("u").unwrap();
        let mut claims = crate::sts::SessionClaims::fresh(ACCOUNT, Utc::now(), 900);
        claims.user = Some(crate::sts::SessionUser {
            name: "u".into(),
            id: record.id.clone(),
        });
        let p = verify_session(&authn, &claims).unwrap();
        match &p {
            Principal::User {
                name,
                id,
                arn: a,
                access_key_id,
                session: Some(s),
                ..
            } => {
                assert_eq!((name.as_str(), id, a), ("u", &record.id, &arn));
                assert_eq!(access_key_id, &claims.ak);
                assert!(s.sk.is_empty());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!((p.kind(), p.arn(ACCOUNT)), ("IAMUser", arn));
        // They expire like any session.
        let mut expired = claims.clone();
        expired.exp = Utc::now().timestamp() - 1;
        assert_eq!(
            verify_session(&authn, &expired).unwrap_err().code(),
            "ExpiredToken"
        );
        // Another user's id under the same name (deleted and created again) does not open.
        let mut namesake = claims.clone();
        namesake.user = Some(crate::sts::SessionUser {
            name: "u".into(),
            id: "AIDAOTHER".into(),
        });
        assert_eq!(
            verify_session(&authn, &namesake).unwrap_err().code(),
            "InvalidToken"
        );
        state.delete_user("u").unwrap();
        assert_eq!(
            verify_session(&authn, &claims).unwrap_err().code(),
            "InvalidToken"
        );
    }

    #[test]
    fn bucket_policies_bind_root_grant_users_and_anonymous_only_when_unrestricted() {
        let a = authorizer();
        let policy = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Deny","Principal":"*","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::b/*"},
            {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/u"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"},
            {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/public/*"}]}"#;
        a.state
            .put_public_access_block(None, crate::state::PublicAccessBlock::OFF)
            .unwrap();
        assert!(a.state.put_bucket_policy("b", policy).unwrap());
        let ctx = keyhole_policy::Context::new();
        let root = Principal::Root {
            access_key_id: "AKIA".into(),
        };
        let e = a
            .authorize(&root, &perm("s3:DeleteObject", "arn:aws:s3:::b/k"), &ctx)
            .unwrap_err();
        assert!(
            e.message()
                .contains("explicit deny in a resource-based policy"),
            "{}",
            e.message()
        );
        assert!(a
            .authorize(&root, &perm("s3:PutBucketPolicy", "arn:aws:s3:::b"), &ctx)
            .is_ok());
        assert!(a
            .authorize(&root, &perm("s3:GetObject", "arn:aws:s3:::b/k"), &ctx)
            .is_ok());
        // A user with no identity policy is granted by the bucket policy naming it.
        let u = user(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:GetCallerIdentity","Resource":"*"}]}"#,
        );
        assert!(a
            .authorize(&u, &perm("s3:GetObject", "arn:aws:s3:::b/k"), &ctx)
            .is_ok());
        assert!(a
            .authorize(&u, &perm("s3:GetObject", "arn:aws:s3:::c/k"), &ctx)
            .is_err());
        // Anonymous: the public statement grants while RestrictPublicBuckets is off, only there.
        assert!(a
            .authorize(
                &Principal::Anonymous,
                &perm("s3:GetObject", "arn:aws:s3:::b/public/x"),
                &ctx
            )
            .is_ok());
        let e = a
            .authorize(
                &Principal::Anonymous,
                &perm("s3:GetObject", "arn:aws:s3:::b/k"),
                &ctx,
            )
            .unwrap_err();
        assert_eq!(e.message(), "Access Denied");
        a.state
            .put_public_access_block(
                Some("b"),
                crate::state::PublicAccessBlock {
                    restrict_public_buckets: true,
                    ..crate::state::PublicAccessBlock::OFF
                },
            )
            .unwrap();
        assert!(a
            .authorize(
                &Principal::Anonymous,
                &perm("s3:GetObject", "arn:aws:s3:::b/public/x"),
                &ctx
            )
            .is_err());
    }
}
