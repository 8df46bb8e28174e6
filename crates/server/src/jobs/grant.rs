//! What a job's creator handed it, and how that is checked again for as long as the job runs.
//!
//! A job's credentials are the creator's delegation, so they are bound to the creator as it is
//! *now*, not as it was when the job started:
//!
//! - **A job without a role** follows AWS's GetFederationToken model ("You cannot use the session
//!   policy to grant more permissions than those allowed by the identity-based policy of the
//!   user",
//!   https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_temp_control-access_getfederationtoken.html),
//!   made stricter: each of its requests is decided as the job session (the job policy) and again
//!   as the creator as it is now, with the creator's own condition keys
//!   ([`crate::context::rebase_principal`]), so denies and bucket policies aimed at the creator
//!   bind the job and its labels cannot stand in for the creator's tags. A creator deleted since
//!   leaves the job nothing.
//! - **A job with a role** is an AssumeRole of the role by its creator, and every fresh session
//!   the container-credentials endpoint hands out is a new AssumeRole, decided again by the one
//!   authorization stage: the creator as it is now (its current policies and tags; a creator
//!   deleted since is refused), against the role's current trust policy, in the context the job was created in
//!   (with the current time and the creator's current keys). A role session creating it makes
//!   a role chain: its source identity and transitive tags pass on and cannot be changed. The
//!   role is bound by unique id (a role deleted and created again under the name is another
//!   role), and no session lasts longer than the role's `MaxSessionDuration` (one hour when the
//!   creator is a role session: role chaining).
//! - **A job created with temporary credentials** ends with them: its window may not outlast
//!   them, and revoking them ends it ([`JobCreator::ended`]), as AWS never lets a session
//!   obtained from a session outlive it.
//!
//! The creator is recorded by unique id ([`JobCreator`]); the same record names who may get,
//! finish and report on the job ([`owner_policy`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use keyhole_policy::{CompiledPolicy, Context, ContextValue};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::Principal;
use crate::authz::{Describe, Permission, Requirement};
use crate::error::S3Error;
use crate::sts::SessionClaims;
use crate::Gateway;

/// Who created a job, by unique id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum JobCreator {
    /// The account's root user.
    Root,
    /// An IAM user (with its access key or its GetSessionToken credentials).
    User {
        /// User name.
        name: String,
        /// Unique id (`AIDA...`).
        id: String,
        /// The user's ARN (with its path).
        arn: String,
        /// The GetSessionToken credentials it created the job with, if not its access key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credentials: Option<CreatorCredentials>,
    },
    /// A role session (not a job's).
    RoleSession {
        /// Role name.
        role: String,
        /// The role's unique id (`AROA...`).
        role_id: String,
        /// The role's ARN (with its path).
        role_arn: String,
        /// Session name.
        session: String,
        /// The session's source identity.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source_identity: Option<String>,
        /// The session's inline session policy.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy: Option<String>,
        /// The session's managed session policies.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        policy_arns: Vec<String>,
        /// The session's tags.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tags: Vec<(String, String)>,
        /// The keys of `tags` that are transitive (they pass on to a job's role sessions).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        transitive: Vec<String>,
        /// What a web identity token proved, for a session AssumeRoleWithWebIdentity issued: the
        /// job is decided again with its keys (`ISSUER:sub`, ..., `aws:FederatedProvider`), so a
        /// deny keyed on them binds the job too.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        web_identity: Option<Box<crate::oidc::WebIdentity>>,
        /// The session's credentials.
        credentials: CreatorCredentials,
    },
}

/// The temporary credentials a job was created with: the job ends when they expire or are
/// revoked, as a session obtained with them would.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatorCredentials {
    /// Their access key id (`ASIA...`).
    pub access_key_id: String,
    /// When they were issued (Unix seconds): the creator's `aws:TokenIssueTime`.
    pub issued_at: i64,
    /// When they expire (Unix seconds).
    pub expires_at: i64,
}

impl CreatorCredentials {
    fn of(claims: &SessionClaims) -> CreatorCredentials {
        CreatorCredentials {
            access_key_id: claims.ak.clone(),
            issued_at: claims.iat,
            expires_at: claims.exp,
        }
    }
}

impl JobCreator {
    /// The creator's unique id as `aws:userid` has it: the account id for the root user,
    /// `AIDA...` for a user, `AROA...:SESSION` for a role session. Unlike the ARN recorded
    /// beside it, it still names the creator after a rename and never a later namesake.
    pub fn unique_id(&self, account_id: &str) -> String {
        match self {
            JobCreator::Root => account_id.to_owned(),
            JobCreator::User { id, .. } => id.clone(),
            JobCreator::RoleSession {
                role_id, session, ..
            } => format!("{role_id}:{session}"),
        }
    }

    /// The temporary credentials the job was created with, if any.
    pub fn credentials(&self) -> Option<&CreatorCredentials> {
        match self {
            JobCreator::Root => None,
            JobCreator::User { credentials, .. } => credentials.as_ref(),
            JobCreator::RoleSession { credentials, .. } => Some(credentials),
        }
    }

    /// The creator's source identity (role sessions), which the job's sessions carry on.
    pub fn source_identity(&self) -> Option<&str> {
        match self {
            JobCreator::RoleSession {
                source_identity, ..
            } => source_identity.as_deref(),
            _ => None,
        }
    }

    /// The creator's transitive session tags, which a job's role sessions inherit as a chained
    /// AssumeRole would.
    pub fn transitive_tags(&self) -> Vec<(String, String)> {
        match self {
            JobCreator::RoleSession {
                tags, transitive, ..
            } => tags
                .iter()
                .filter(|(k, _)| transitive.iter().any(|t| t.eq_ignore_ascii_case(k)))
                .cloned()
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Why the job can no longer act for its creator, if it cannot: the temporary credentials it
    /// was created with have expired or were revoked (`keyhole admin revoke-session`). The
    /// other revocations (a deny on `aws:TokenIssueTime`, the creator deleted, its policies
    /// changed) are decided by the policies, with the creator as it is now.
    pub fn ended(&self, jobs: &crate::jobs::store::JobStore, now: i64) -> Option<String> {
        let c = self.credentials()?;
        // The job's code reads this: it names no key of its creator's (review 36, F2); the
        // audit trail has the creation's records.
        if now >= c.expires_at {
            Some(format!(
                "the temporary credentials that created the job expired at {}, and the job ended with them",
                chrono::DateTime::<chrono::Utc>::from_timestamp(c.expires_at, 0)
                    .map(crate::jobs::spec::rfc3339)
                    .unwrap_or_default()
            ))
        } else if jobs.is_revoked(&c.access_key_id) {
            Some(
                "the temporary credentials that created the job were revoked, and the job ended with them"
                    .to_owned(),
            )
        } else {
            None
        }
    }
}

/// What a job records of its creation: its creator, the role it was given (by unique id) and the
/// context its CreateJob was decided in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobGrant {
    /// The creator.
    pub creator: JobCreator,
    /// The unique id of the job's role, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_id: Option<String>,
    /// The condition keys of the CreateJob request (a single value as a string, several as an
    /// array), the context of every renewal of the role's sessions.
    #[serde(default)]
    pub context: BTreeMap<String, Value>,
}

/// The creator of a job `principal` asks for (`role`: whether it passes a role). Refused for
/// callers that cannot delegate: job sessions and anonymous callers (they never get here), and a
/// role session created with session policies asking for a job without a role (keyhole cannot
/// intersect the job policy with those as well).
pub fn creator_of(principal: &Principal, role: bool) -> Result<JobCreator, S3Error> {
    match principal {
        Principal::Root { .. } => Ok(JobCreator::Root),
        Principal::User {
            name,
            id,
            arn,
            session,
            ..
        } => Ok(JobCreator::User {
            name: name.clone(),
            id: id.clone(),
            arn: arn.clone(),
            credentials: session.as_deref().map(CreatorCredentials::of),
        }),
        Principal::Session {
            claims, role_arn, ..
        } if !role_arn.is_empty() && claims.job.is_none() => {
            if !role && claims.has_session_policies() {
                return Err(S3Error::new(
                    "ValidationException",
                    http::StatusCode::BAD_REQUEST,
                    "a session created with session policies cannot create a job without a role (its jobs would have to be capped by those policies too); give the job a role, or create it with a session without session policies",
                ));
            }
            Ok(JobCreator::RoleSession {
                role: claims.role.clone(),
                role_id: claims.role_id.clone(),
                role_arn: role_arn.clone(),
                session: claims.session.clone(),
                source_identity: claims.source_identity.clone(),
                policy: claims.policy.clone(),
                policy_arns: claims.policy_arns.clone(),
                tags: claims.tags.clone(),
                transitive: claims.transitive.clone(),
                web_identity: claims.web_identity.clone().map(Box::new),
                credentials: CreatorCredentials::of(claims),
            })
        }
        Principal::Session { .. }
        | Principal::JobToken { .. }
        | Principal::WebIdentity { .. }
        | Principal::Anonymous => Err(S3Error::access_denied(
            "only the root user, IAM users and role sessions can create jobs",
        )),
    }
}

/// The context as a job records it.
pub fn record_context(context: &Context) -> BTreeMap<String, Value> {
    context
        .iter()
        .map(|(k, v)| {
            let value = match v {
                ContextValue::Single(s) => Value::String(s.clone()),
                ContextValue::Multi(list) => json!(list),
            };
            (k.to_owned(), value)
        })
        .collect()
}

/// A recorded context, with `aws:CurrentTime` and `aws:EpochTime` of `now`.
pub fn replay_context(
    recorded: &BTreeMap<String, Value>,
    now: chrono::DateTime<chrono::Utc>,
) -> Context {
    let mut c = Context::new();
    for (k, v) in recorded {
        match v {
            Value::Array(list) => {
                c.insert_multi(
                    k,
                    list.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect(),
                );
            }
            Value::String(s) => {
                c.insert(k, s.as_str());
            }
            _ => {}
        }
    }
    c.insert(
        "aws:CurrentTime",
        now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    c.insert("aws:EpochTime", now.timestamp().to_string());
    c
}

/// The creator as it is now: its current policies, boundary and tags, and the temporary
/// credentials it used (their `aws:TokenIssueTime`). `None` when it no longer exists (the same
/// entity: a namesake created since is someone else).
pub fn creator_principal(gw: &Gateway, creator: &JobCreator) -> Option<Principal> {
    creator_principal_in(
        &gw.authn,
        &gw.state.snapshot(),
        &gw.account.record.account_id,
        &gw.account.record.root_access_key_id,
        creator,
    )
}

/// [`creator_principal`] with the gateway's parts.
pub(crate) fn creator_principal_in(
    authn: &crate::auth::Authenticator,
    snapshot: &crate::state::Snapshot,
    account_id: &str,
    root_access_key_id: &str,
    creator: &JobCreator,
) -> Option<Principal> {
    let claims_of = |c: &CreatorCredentials| {
        let mut claims = SessionClaims::fresh(account_id, chrono::Utc::now(), 0);
        claims.ak = c.access_key_id.clone();
        claims.sk = String::new();
        claims.iat = c.issued_at;
        claims.exp = c.expires_at;
        claims
    };
    match creator {
        JobCreator::Root => Some(Principal::Root {
            access_key_id: root_access_key_id.to_owned(),
        }),
        JobCreator::User {
            name,
            id,
            credentials,
            ..
        } => {
            // By unique id: the creator renamed since is still the creator.
            let u = snapshot.user_by_id(name, id)?;
            let session = credentials.as_ref().map(|c| {
                let mut claims = claims_of(c);
                claims.user = Some(crate::sts::SessionUser {
                    name: u.record.name.clone(),
                    id: id.clone(),
                });
                Arc::new(claims)
            });
            Some(Principal::User {
                name: u.record.name.clone(),
                id: id.clone(),
                arn: u.arn.clone(),
                access_key_id: credentials
                    .as_ref()
                    .map(|c| c.access_key_id.clone())
                    .unwrap_or_default(),
                session,
                policies: u.policies.clone(),
                boundary: u.boundary.clone(),
                tags: u.tags.clone(),
            })
        }
        JobCreator::RoleSession {
            role,
            role_id,
            session,
            source_identity,
            policy,
            policy_arns,
            tags,
            transitive,
            web_identity,
            credentials,
            ..
        } => {
            let r = snapshot
                .roles
                .get(role)
                .filter(|r| &r.record.id == role_id)?;
            let mut claims = claims_of(credentials);
            claims.role = role.clone();
            claims.role_id = role_id.clone();
            claims.session = session.clone();
            claims.source_identity = source_identity.clone();
            claims.policy = policy.clone();
            claims.policy_arns = policy_arns.clone();
            claims.tags = tags.clone();
            claims.transitive = transitive.clone();
            claims.web_identity = web_identity.as_deref().cloned();
            let session_policies = authn.session_policies(&claims, snapshot).ok()?;
            let mut merged: Vec<(String, String)> = r
                .tags
                .iter()
                .filter(|(k, _)| !tags.iter().any(|(t, _)| t.eq_ignore_ascii_case(k)))
                .cloned()
                .collect();
            merged.extend(tags.iter().cloned());
            merged.sort();
            Some(Principal::Session {
                arn: crate::sts::session_arn(&claims.account, role, session),
                claims: Arc::new(claims),
                role_arn: r.arn.clone(),
                role_policies: r.policies.clone(),
                session_policies,
                boundary: r.boundary.clone(),
                tags: Arc::new(merged),
                creator: None,
            })
        }
    }
}

/// The renewal of a job's role session: the creator's `sts:AssumeRole` of the role (and
/// `sts:TagSession` when the job's labels are session tags), decided again.
#[derive(Debug)]
pub struct RoleRenewal {
    /// The role's ARN.
    pub role_arn: String,
    /// The sessions get tags (the job's labels, the creator's transitive tags).
    pub tags: bool,
    /// The sessions carry the creator's source identity.
    pub source_identity: bool,
}

impl Describe for RoleRenewal {
    fn requirement(&self) -> Requirement {
        let mut list = vec![Permission::new("sts:AssumeRole", self.role_arn.clone())];
        if self.tags {
            list.push(Permission::new("sts:TagSession", self.role_arn.clone()));
        }
        if self.source_identity {
            list.push(Permission::new(
                "sts:SetSourceIdentity",
                self.role_arn.clone(),
            ));
        }
        Requirement::Permissions(list)
    }
}

/// The grant to a job's creator, as a resource-based policy on `job_arn`: it may get, finish and
/// report on the job. An IAM user is named by its ARN bound to its unique id; a role session by
/// its role (bound likewise) *and* its source identity, so other sessions of the role are not the
/// creator. `None` for creators that cannot be named so (the root user needs no grant; a role
/// session without a source identity gets none). A user is named by the ARN it has now in
/// `snapshot`: one renamed since it created the job (UpdateUser) is still its creator.
pub fn owner_policy(
    grant: &JobGrant,
    job_arn: &str,
    snapshot: &crate::state::Snapshot,
) -> Option<CompiledPolicy> {
    let current;
    let (arn, id, source_identity) = match &grant.creator {
        JobCreator::Root => return None,
        JobCreator::User { name, id, arn, .. } => {
            current = snapshot.user_by_id(name, id).map(|u| u.arn.clone());
            (current.as_ref().unwrap_or(arn), id, None)
        }
        JobCreator::RoleSession {
            role_id,
            role_arn,
            source_identity: Some(si),
            ..
        } => (role_arn, role_id, Some(si)),
        JobCreator::RoleSession { .. } => return None,
    };
    let mut statement = json!({
        "Sid": "JobCreator",
        "Effect": "Allow",
        "Principal": {"AWS": arn},
        "Action": ["keyhole:GetJob", "keyhole:FinishJob", "keyhole:GetJobReport"],
        "Resource": job_arn,
    });
    if let (Some(si), Some(o)) = (source_identity, statement.as_object_mut()) {
        o.insert(
            "Condition".into(),
            json!({"StringEquals": {"aws:SourceIdentity": si}}),
        );
    }
    let doc = json!({"Version": "2012-10-17", "Statement": [statement]}).to_string();
    CompiledPolicy::from_json_bound(&doc, keyhole_policy::PolicyKind::Resource, &|a| {
        (a == arn.as_str()).then(|| id.clone())
    })
    .ok()
    .map(|p| p.with_name("job creator grant"))
}
