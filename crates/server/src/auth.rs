//! Authentication: who is calling. Authorization (may they do this) is [`crate::authz`].
//!
//! # Security
//! - Authentication is the only way to obtain a [`Principal`] other than `Anonymous`: it requires a
//!   SigV4 signature verified by `keyhole_sigv4::verify` against the key's secret, or, for the
//!   container-credentials endpoint only, a job's credentials token
//!   ([`Authenticator::job_token`]).
//! - A session's claims are sealed; a session is refused once expired, revoked, or when its job
//!   finished, and its role (or user) must still be the same entity (same unique id).

use chrono::{DateTime, Utc};
use http::{HeaderMap, Method, StatusCode, Uri};
use keyhole_sigv4::{SecretKey, VerifiedRequest};

use crate::error::S3Error;

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
        /// A role-less job's creator as it is now: every request of the job is decided again as
        /// the creator, so the job can never do what its creator could not
        /// ([`crate::jobs::grant`]). `None` for every other session.
        creator: Option<std::sync::Arc<Principal>>,
    },
    /// The holder of a job's credentials token at the container-credentials endpoint
    /// (`GET /_keyhole/credentials`): it may fetch that job's session credentials and nothing
    /// else.
    JobToken {
        /// The job (unfinished, its window not over).
        job: std::sync::Arc<crate::jobs::store::JobEntry>,
        /// The job's ARN (`arn:aws:keyhole:REGION:ACCOUNT:job/ID`).
        arn: String,
    },
    /// The caller of `sts:AssumeRoleWithWebIdentity`, proven by an OpenID Connect token from a
    /// provider registered in the account ([`crate::oidc`]). It may ask for a role's session
    /// and nothing else, and only a role's trust policy decides
    /// (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_providers_oidc.html).
    WebIdentity {
        /// What the token proves.
        identity: std::sync::Arc<crate::oidc::WebIdentity>,
        /// Session tags the token carries (they need `sts:TagSession` in the trust policy).
        tags: std::sync::Arc<crate::oidc::TokenTags>,
    },
    /// No signature at all.
    Anonymous,
}

impl Principal {
    /// The principal's ARN (`arn:aws:iam::ACCOUNT:root`), or `*` for anonymous callers.
    pub fn arn(&self, account_id: &str) -> String {
        match self {
            Principal::Root { .. } => format!("arn:aws:iam::{account_id}:root"),
            Principal::User { arn, .. }
            | Principal::Session { arn, .. }
            | Principal::JobToken { arn, .. } => arn.clone(),
            Principal::WebIdentity { identity, .. } => identity.provider_arn.clone(),
            Principal::Anonymous => "*".to_owned(),
        }
    }

    /// The principal's identity-based policies, session policies (if it is a session created
    /// with some) and permissions boundary.
    pub fn policies(
        &self,
    ) -> (
        &[keyhole_policy::CompiledPolicy],
        Option<&[keyhole_policy::CompiledPolicy]>,
        Option<&keyhole_policy::CompiledPolicy>,
    ) {
        match self {
            Principal::User {
                policies, boundary, ..
            } => (policies.as_slice(), None, boundary.as_deref()),
            Principal::Session {
                role_policies,
                session_policies,
                boundary,
                ..
            } => (
                role_policies.as_slice(),
                session_policies.as_deref(),
                boundary.as_deref(),
            ),
            Principal::JobToken { job, .. } => (job.credential_policy.as_slice(), None, None),
            Principal::Root { .. } | Principal::WebIdentity { .. } | Principal::Anonymous => {
                (&[], None, None)
            }
        }
    }

    /// The principal's tags (`aws:PrincipalTag/*`): a user's, a session's (its session tags over
    /// its role's); none for the others.
    pub fn principal_tags(&self) -> &[(String, String)] {
        match self {
            Principal::User { tags, .. } | Principal::Session { tags, .. } => tags.as_slice(),
            Principal::Root { .. }
            | Principal::JobToken { .. }
            | Principal::WebIdentity { .. }
            | Principal::Anonymous => &[],
        }
    }

    /// The unique id `aws:userid` carries and the audit trail records as `principalId`
    /// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html#principaltable):
    /// the account id for the root user, `AIDA...` for a user, `AROA...:SESSION` for a role
    /// session, `ACCOUNT:NAME` for a role-less job's (federated) session.
    pub fn unique_id(&self, account_id: &str) -> Option<String> {
        match self {
            Principal::Root { .. } => Some(account_id.to_owned()),
            Principal::User { id, .. } => Some(id.clone()),
            Principal::Session {
                claims, role_arn, ..
            } if role_arn.is_empty() => Some(format!("{account_id}:{}", claims.session)),
            Principal::Session { claims, .. } => {
                Some(format!("{}:{}", claims.role_id, claims.session))
            }
            // CloudTrail's principalId of a web identity caller: `PROVIDER:AUD:SUB`.
            Principal::WebIdentity { identity, .. } => Some(format!(
                "{}:{}:{}",
                identity.provider, identity.aud, identity.sub
            )),
            Principal::JobToken { .. } | Principal::Anonymous => None,
        }
    }

    /// The access key the request was signed with, if any.
    pub fn access_key_id(&self) -> Option<&str> {
        match self {
            Principal::Root { access_key_id } | Principal::User { access_key_id, .. } => {
                Some(access_key_id)
            }
            Principal::Session { claims, .. } => Some(&claims.ak),
            Principal::JobToken { .. } | Principal::WebIdentity { .. } | Principal::Anonymous => {
                None
            }
        }
    }

    /// A short label for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Principal::Root { .. } => "Root",
            Principal::User { .. } => "IAMUser",
            Principal::Session { role_arn, .. } if role_arn.is_empty() => "FederatedUser",
            Principal::Session { .. } => "AssumedRole",
            Principal::JobToken { .. } => "JobToken",
            Principal::WebIdentity { .. } => "WebIdentityUser",
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
    pub(crate) tokens: std::sync::Arc<crate::sts::TokenSealer>,
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

    /// Whether a signature names credentials the gateway issued: the root key, an active IAM
    /// user key, or temporary credentials whose sealed token opens for their key id. Checked
    /// before a signed body is read, so that unknown keys cost no more than their head; the
    /// full verification comes after.
    pub fn known_key(&self, signed: &keyhole_sigv4::SignedRequest) -> Result<(), S3Error> {
        let access_key_id = signed.access_key_id();
        let service = signed.scope().service.as_str();
        let known = match signed.session_token() {
            Some(token) => self.tokens.open(token, access_key_id).is_some(),
            None => {
                access_key_id == self.root_access_key_id
                    || self
                        .state
                        .snapshot()
                        .keys
                        .get(access_key_id)
                        .is_some_and(|k| k.active)
            }
        };
        if known {
            Ok(())
        } else {
            Err(unknown_key(service, access_key_id))
        }
    }

    /// The job whose session a request's token belongs to, when the token is one this gateway
    /// sealed for the claimed key (its claims are authentic whatever else is wrong: expired,
    /// revoked, a bad signature). A refused request is recorded with it, so the job's report
    /// lists what was tried with its credentials after the job ended (a jobs sweep, M2).
    pub fn token_job(&self, token: &str, access_key_id: &str) -> Option<String> {
        self.tokens.open(token, access_key_id)?.job
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
        // IAM is a global service signed for us-east-1, whatever region a client is set to.
        // IAM and STS are also signed with an empty region (botocore with `region_name=''`;
        // Ceph RGW accepts it, and ceph/s3-tests' STS tests send it): see docs/IAM.md.
        let region = signed.scope().region.as_str();
        let region_ok = match service.as_str() {
            "iam" => true,
            "sts" => region.is_empty() || region == self.region,
            _ => region == self.region,
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
                keyhole_sigv4::AuthKind::PostPolicy => (
                    "InvalidArgument",
                    format!("Error parsing the x-amz-credential field of the form; {reason}"),
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
            // A job's sessions end the moment the job is finished (memory only), and when the
            // temporary credentials that created it expire or are revoked.
            let job = match &claims.job {
                Some(id) => {
                    let job = self.jobs.active(id).ok_or_else(revoked)?;
                    if let Some(why) = job.record.creator_ended(&self.jobs, now.timestamp()) {
                        return Err(S3Error::new(
                            "InvalidToken",
                            StatusCode::BAD_REQUEST,
                            format!("The provided token is no longer valid: {why}."),
                        ));
                    }
                    Some(job)
                }
                None => None,
            };
            if let Some(u) = &claims.user {
                // GetSessionToken: the user must still exist (the same one, not a namesake; by
                // its unique id, so a rename since does not end the session).
                let user = snapshot
                    .user_by_id(&u.name, &u.id)
                    .filter(|_| claims.role.is_empty() && job.is_none())
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
            // its grant, and every request is decided again as its creator.
            let mut creator = None;
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
                (None, Some(j)) => {
                    // GetFederationToken's model, made stricter (`crate::jobs::grant`): the job
                    // policy as identity and session policy (which also limits what a resource
                    // policy grants to `*`), and the creator as it is now, who must be allowed
                    // the same request; its tags are the session's, under the job's labels.
                    let c = self.job_creator(&snapshot, &claims.account, j)?;
                    session_policies = Some(std::sync::Arc::from([(*j.as_session).clone()]));
                    let tags = std::sync::Arc::new(c.principal_tags().to_vec());
                    creator = Some(std::sync::Arc::new(c));
                    (String::new(), j.as_identity.clone(), None, tags)
                }
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
                    creator,
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
    pub(crate) fn session_policies(
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

impl Authenticator {
    /// The container-credentials endpoint's authentication: `Authorization: <job credentials
    /// token>` (or `Bearer <token>`) names an unfinished job whose window has not ended, and the
    /// token's SHA-256 must be the one stored for it. Returns the job-token principal and, for the
    /// audit trail and the job's report, the job's id when the token is that job's (also when it
    /// is refused because the job ended); a token that is not a job's is attributed to none.
    pub fn job_token(
        &self,
        headers: &HeaderMap,
        region: &str,
        account_id: &str,
    ) -> (Result<Principal, S3Error>, Option<String>) {
        let denied = |m: &str| S3Error::access_denied(m.to_owned());
        let ended = |id: &str| {
            S3Error::new(
                "ExpiredToken",
                StatusCode::FORBIDDEN,
                format!("job {id} is finished or its window has ended"),
            )
        };
        let Some(token) = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim())
        else {
            return (
                Err(denied(
                    "the credentials endpoint needs the job's token in the Authorization header (AWS_CONTAINER_AUTHORIZATION_TOKEN)",
                )),
                None,
            );
        };
        let Some(id) = token
            .strip_prefix("kh1.")
            .and_then(|rest| rest.rsplit_once('.'))
            .map(|(id, _)| id.to_owned())
        else {
            return (Err(denied("the job token is malformed")), None);
        };
        // Only the token's holder learns anything about the job: a token that is not the job's
        // (or names no job) gets the same answer whatever the job's state, and is not attributed
        // to the job (its report lists only refusals of its own token). Comparing SHA-256
        // digests: timing reveals nothing usable about the token.
        let not_valid = || denied("the job token is not valid");
        let hash = crate::jobs::token_hash(token);
        let job = match self.jobs.active(&id) {
            Some(job) if job.record.token_hash == hash => job,
            Some(_) => return (Err(not_valid()), None),
            None => {
                // Finished, pruned or unknown: the record says whether the token was its.
                return match self.jobs.meta(&id) {
                    Some(m) if m.token_hash == hash => (Err(ended(&id)), Some(id)),
                    _ => (Err(not_valid()), None),
                };
            }
        };
        // A job whose window has ended stays in the cache until it is pruned: its token is as
        // expired as a finished job's.
        let now = chrono::Utc::now();
        if job.record.job.end <= now {
            return (Err(ended(&id)), Some(id));
        }
        // Before its window the job's policy allows nothing: no session is handed out that every
        // request would be refused with (review 37, F6).
        if now < job.record.job.start {
            return (
                Err(denied(&format!(
                    "job {id}'s window starts at {}: its credentials are handed out from then",
                    crate::jobs::spec::rfc3339(job.record.job.start)
                ))),
                Some(id),
            );
        }
        // A role-less job acts as its creator as it is now: a creator deleted since leaves it
        // nothing to hand on (refused here, where the refusal is recorded as the job's; review
        // 37, F4).
        if job.record.job.role.is_none()
            && job.record.grant.is_some()
            && self
                .job_creator(&self.state.snapshot(), account_id, &job)
                .is_err()
        {
            return (
                Err(denied(&format!(
                    "job {id}'s creator no longer exists, so the job has no access left to hand on"
                ))),
                Some(id),
            );
        }
        let arn = crate::jobs::job_arn(region, account_id, &id);
        (Ok(Principal::JobToken { job, arn }), Some(id))
    }
}

impl Authenticator {
    /// A role-less job's creator as it is now. A creator deleted since (or a job recorded
    /// without its creator) leaves the job nothing: `InvalidToken`.
    fn job_creator(
        &self,
        snapshot: &crate::state::Snapshot,
        account_id: &str,
        job: &crate::jobs::store::JobEntry,
    ) -> Result<Principal, S3Error> {
        job.record
            .grant
            .as_ref()
            .and_then(|g| {
                crate::jobs::grant::creator_principal_in(
                    self,
                    snapshot,
                    account_id,
                    &self.root_access_key_id,
                    &g.creator,
                )
            })
            .ok_or_else(|| {
                S3Error::new(
                    "InvalidToken",
                    StatusCode::BAD_REQUEST,
                    format!(
                        "The provided token is no longer valid: the creator of job {} no longer exists.",
                        job.record.id
                    ),
                )
            })
    }
}
