//! Jobs (DESIGN.md section 6): the keyhole API (SigV4 service `keyhole`, AWS JSON 1.1 protocol:
//! `POST /` with `X-Amz-Target: Keyhole.ACTION` and a JSON body), the job sessions it issues and
//! the container-credentials endpoint (`GET /_keyhole/credentials`).
//!
//! # Who may do what
//! Every action is an IAM action decided by the policy engine like any other request:
//! `keyhole:CreateJob` on `arn:aws:keyhole:REGION:ACCOUNT:job/NAME`, with the condition keys
//! `keyhole:ReadLocations`, `keyhole:WriteLocations` (multi-valued, the `s3://` locations asked
//! for) and `keyhole:Role`, so an administrator can let a scheduler start jobs only over some
//! data; `keyhole:GetJob`, `keyhole:FinishJob`, `keyhole:GetJobReport` on
//! `arn:aws:keyhole:REGION:ACCOUNT:job/ID`; `keyhole:ListJobs` on `...:job/*`;
//! `keyhole:RevokeSession` on `...:session/ACCESS_KEY_ID`. The labels of a new job are
//! `aws:RequestTag/KEY` and `aws:TagKeys` of CreateJob, so a scheduler's policy can restrict
//! which labels it may set.
//!
//! # The creator of a job
//! Each job carries a resource-based grant ([`owner_policy`]) letting its creator get, finish and
//! report on it (finishing only takes access away, and `keyhole run` must be able to end the job
//! it started). The grant names the creator by unique id, not by name: an IAM user by its
//! `AIDA...` id (a user deleted and created again under the same name is someone else); a role
//! session by its role's `AROA...` id *and* its source identity (`aws:SourceIdentity`, which a
//! role chain cannot change), so other sessions of the same role, whatever their session name, are
//! not the creator. A role session without a source identity gets no grant: its jobs are decided
//! by IAM permissions alone, like everyone else's.
//!
//! # Passing a role to a job
//! A job with `role = R` hands out sessions of R, so creating it is an AssumeRole of R by the
//! creator, decided exactly as STS decides one (the precedent: `aws sts assume-role` with a
//! session policy, which is what a job is): R's trust policy must admit the creator for
//! `sts:AssumeRole` (with `sts:RoleSessionName` = the job id in the context), and when the job
//! has labels, which become session tags, for `sts:TagSession` with `aws:RequestTag/KEY` and
//! `aws:TagKeys`; the creator's identity policies must allow the same where the trust policy
//! names only the account; the root user cannot pass a role (it cannot assume one). A role
//! session passing a role chains: its transitive tags (`sts:TagSession`, no label may override
//! them) and source identity (`sts:SetSourceIdentity`) pass on to the job's sessions.
//!
//! # Job sessions
//! A job's credentials are session credentials (`ASIA...` + sealed token, [`crate::sts`]) whose
//! claims name the job. A job without a role has the job policy as its only identity policy
//! (principal `arn:aws:sts::ACCOUNT:federated-user/JOB_ID`), and each request is decided again
//! as its creator ([`grant`]); a job with a role gets the role's
//! policies and boundary intersected with the job policy as session policy
//! (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/JOB_ID`). Sessions carry the principal tag
//! `job=JOB_ID`. A session never outlives the window, and every request re-checks that the job is
//! unfinished (memory only), so finishing revokes all of a job's sessions at once, and that the
//! temporary credentials that created it (if any) are neither expired nor revoked.

pub mod facts;
pub mod grant;
pub mod report;
pub mod spec;
pub mod store;

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use keyhole_policy::Context;
use serde_json::{json, Value};
use sha2::Digest;

use crate::auth::Principal;
use crate::body::{self, Body};
use crate::error::S3Error;
use crate::s3::route::Permission;
use crate::sts::SessionClaims;
use crate::Gateway;
use spec::{rfc3339, JobSpec};
use store::{JobEntry, JobRecord};

/// The `X-Amz-Target` prefix of keyhole API actions.
pub const TARGET_PREFIX: &str = "Keyhole.";
/// The container-credentials endpoint path.
pub const CREDENTIALS_PATH: &str = "/_keyhole/credentials";
/// Largest keyhole API request body.
pub const MAX_API_BODY_BYTES: usize = 64 * 1024;
/// The principal tag every job session carries.
pub const JOB_TAG: &str = "job";
/// Default lifetime of one job session; SDKs using the credential endpoint refresh before it ends.
pub const DEFAULT_JOB_SESSION_SECS: u64 = 3600;

/// A keyhole API action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Start a job.
    CreateJob,
    /// Describe a job.
    GetJob,
    /// List jobs.
    ListJobs,
    /// Finish a job (revokes its sessions).
    FinishJob,
    /// The job's access report.
    GetJobReport,
    /// Revoke one session by its access key id.
    RevokeSession,
    /// What a user or role used, what it was granted and never used, and the minimal policy
    /// ([`crate::access`]).
    GetAccessReport,
    /// The account's users, roles and keys unused in a window, and each one's unused
    /// permissions ([`crate::access`]).
    ListUnusedAccess,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 8] = [
        Action::CreateJob,
        Action::GetJob,
        Action::ListJobs,
        Action::FinishJob,
        Action::GetJobReport,
        Action::RevokeSession,
        Action::GetAccessReport,
        Action::ListUnusedAccess,
    ];

    /// Whether the action changes state (its write-ahead audit record must be durable first).
    pub fn mutating(self) -> bool {
        matches!(
            self,
            Action::CreateJob | Action::FinishJob | Action::RevokeSession
        )
    }

    /// Parses an `X-Amz-Target` header value.
    pub fn from_target(target: &str) -> Option<Action> {
        Some(match target.strip_prefix(TARGET_PREFIX)? {
            "CreateJob" => Action::CreateJob,
            "GetJob" => Action::GetJob,
            "ListJobs" => Action::ListJobs,
            "FinishJob" => Action::FinishJob,
            "GetJobReport" => Action::GetJobReport,
            "RevokeSession" => Action::RevokeSession,
            "GetAccessReport" => Action::GetAccessReport,
            "ListUnusedAccess" => Action::ListUnusedAccess,
            _ => return None,
        })
    }

    /// The operation name (audit `eventName`).
    pub fn name(self) -> &'static str {
        match self {
            Action::CreateJob => "CreateJob",
            Action::GetJob => "GetJob",
            Action::ListJobs => "ListJobs",
            Action::FinishJob => "FinishJob",
            Action::GetJobReport => "GetJobReport",
            Action::RevokeSession => "RevokeSession",
            Action::GetAccessReport => "GetAccessReport",
            Action::ListUnusedAccess => "ListUnusedAccess",
        }
    }

    /// The IAM action.
    pub fn iam_action(self) -> &'static str {
        match self {
            Action::CreateJob => "keyhole:CreateJob",
            Action::GetJob => "keyhole:GetJob",
            Action::ListJobs => "keyhole:ListJobs",
            Action::FinishJob => "keyhole:FinishJob",
            Action::GetJobReport => "keyhole:GetJobReport",
            Action::RevokeSession => "keyhole:RevokeSession",
            Action::GetAccessReport => "keyhole:GetAccessReport",
            Action::ListUnusedAccess => "keyhole:ListUnusedAccess",
        }
    }
}

/// A described API call: what to authorize, and the parsed input.
#[derive(Debug)]
pub struct ApiCall {
    /// The action.
    pub action: Action,
    /// The (action, resource) pair to authorize.
    pub permission: Permission,
    /// Condition keys the action adds to the request context.
    pub context: Context,
    input: Input,
}

#[derive(Debug)]
enum Input {
    Create {
        spec: Box<JobSpec>,
        /// The id the job will have (its sessions' name).
        id: String,
        /// The role passed to the job, with the permissions passing it needs.
        role: Option<PassedRole>,
    },
    Job(String),
    List,
    Revoke {
        access_key_id: String,
    },
    AccessReport {
        principal: String,
        since: DateTime<Utc>,
    },
    Unused {
        since: DateTime<Utc>,
    },
}

/// A role passed to a job: its ARN, whether its sessions get tags (the job's labels, the
/// creator's transitive tags) and a source identity (the creator's).
#[derive(Debug)]
struct PassedRole {
    arn: String,
    tags: bool,
    source_identity: bool,
}

impl crate::authz::Describe for ApiCall {
    fn requirement(&self) -> crate::authz::Requirement {
        let mut list = vec![self.permission.clone()];
        if let Input::Create {
            role: Some(role), ..
        } = &self.input
        {
            list.push(Permission::new("sts:AssumeRole", role.arn.clone()));
            if role.tags {
                list.push(Permission::new("sts:TagSession", role.arn.clone()));
            }
            if role.source_identity {
                list.push(Permission::new("sts:SetSourceIdentity", role.arn.clone()));
            }
        }
        crate::authz::Requirement::Permissions(list)
    }

    fn add_context(&self, context: &mut Context) {
        context.extend(self.context.clone());
    }
}

impl ApiCall {
    /// What the audit trail records of the request (CloudTrail's `requestParameters`): the job
    /// asked for, also when the call is refused.
    pub fn audit_parameters(&self) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        match &self.input {
            Input::Create { spec, id, .. } => {
                m.insert("jobId".into(), json!(id));
                m.insert("name".into(), json!(spec.name));
                m.insert("read".into(), json!(spec.read));
                m.insert("write".into(), json!(spec.write));
                if let Some(r) = &spec.role {
                    m.insert("role".into(), json!(r));
                }
                if !spec.labels.is_empty() {
                    m.insert("labels".into(), json!(spec.labels));
                }
            }
            Input::Job(id) => {
                m.insert("jobId".into(), json!(id));
            }
            Input::List => {}
            Input::Revoke { access_key_id } => {
                m.insert("accessKeyId".into(), json!(access_key_id));
            }
            Input::AccessReport { principal, since } => {
                m.insert("principal".into(), json!(principal));
                m.insert("since".into(), json!(rfc3339(*since)));
            }
            Input::Unused { since } => {
                m.insert("since".into(), json!(rfc3339(*since)));
            }
        }
        m
    }
}

fn validation(message: impl Into<String>) -> S3Error {
    S3Error::new("ValidationException", StatusCode::BAD_REQUEST, message)
}

/// A job's ARN: `arn:aws:keyhole:REGION:ACCOUNT:job/ID`.
pub fn job_arn(region: &str, account_id: &str, id: &str) -> String {
    format!("arn:aws:keyhole:{region}:{account_id}:job/{id}")
}

fn gw_job_arn(gw: &Gateway, id: &str) -> String {
    job_arn(&gw.config.region, &gw.account.record.account_id, id)
}

/// Turns a request into the call to authorize. Nothing changes here.
pub fn describe(
    gw: &Gateway,
    principal: &Principal,
    headers: &HeaderMap,
    raw: &[u8],
) -> Result<ApiCall, S3Error> {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let action = Action::from_target(target).ok_or_else(|| {
        S3Error::new(
            "UnknownOperationException",
            StatusCode::BAD_REQUEST,
            format!(
                "`X-Amz-Target: {target}` is not a keyhole API action; use Keyhole.CreateJob, GetJob, ListJobs, FinishJob, GetJobReport, RevokeSession, GetAccessReport or ListUnusedAccess"
            ),
        )
    })?;
    let body: Value = if raw.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(raw).map_err(|e| {
            S3Error::new(
                "SerializationException",
                StatusCode::BAD_REQUEST,
                format!("the request body is not valid JSON: {e}"),
            )
        })?
    };
    // A missing job is only reported after authorization (the record is read then), so nobody
    // learns which ids exist without the right to ask.
    let job_id = || -> Result<String, S3Error> {
        body.get("JobId")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 128)
            .map(str::to_owned)
            .ok_or_else(|| validation("`JobId` is required (a string such as finetune-42-a1b2c3)"))
    };
    let (permission_resource, context, input) = match action {
        Action::CreateJob => {
            let spec = JobSpec::from_json(&body).map_err(|e| validation(e.to_string()))?;
            // The spec is validated before it is authorized (its errors name the field), so a
            // CreateJob condition on keyhole:ReadLocations sees exactly the locations the job
            // will get, normalized.
            let resolved = spec
                .resolve(chrono::Utc::now(), None)
                .map_err(|e| validation(e.to_string()))?;
            // Who may create which jobs at all (see `grant`).
            let creator = grant::creator_of(principal, spec.role.is_some())?;
            // A job created with temporary credentials ends with them, as a session obtained
            // with them would (role chaining and GetFederationToken never outlive their caller).
            if let Some(c) = creator.credentials() {
                if resolved.end.timestamp() > c.expires_at {
                    let expires = DateTime::<Utc>::from_timestamp(c.expires_at, 0)
                        .map(rfc3339)
                        .unwrap_or_default();
                    return Err(validation(format!(
                        "the job's window ends at {}, after the temporary credentials creating it expire at {expires}, and a job ends with them: ask for a window that ends by then (e.g. a shorter --for), or create the job with an IAM user's access key",
                        rfc3339(resolved.end)
                    )));
                }
            }
            // A job with a role is a chained AssumeRole when a role session creates it: the
            // session's transitive tags and source identity pass on and cannot be changed.
            let inherited = if spec.role.is_some() {
                creator.transitive_tags()
            } else {
                Vec::new()
            };
            for (key, _) in &inherited {
                if let Some(label) = spec.labels.keys().find(|l| l.eq_ignore_ascii_case(key)) {
                    return Err(validation(format!(
                        "job spec field `labels`: `{label}` would override the transitive session tag `{key}` of the session creating the job, which a role chain cannot change; leave the label out"
                    )));
                }
            }
            // A whole bucket is written `s3://b` or `s3://b/`: both forms are values, so a
            // condition written for either (a Deny above all) matches.
            let urls = |list: &[spec::Location]| {
                list.iter()
                    .flat_map(|l| {
                        let url = l.url();
                        let bare = l
                            .prefix
                            .is_empty()
                            .then(|| url.trim_end_matches('/').to_owned());
                        std::iter::once(url).chain(bare)
                    })
                    .collect()
            };
            let mut context = Context::new();
            context.insert_multi("keyhole:ReadLocations", urls(&resolved.read));
            context.insert_multi("keyhole:WriteLocations", urls(&resolved.write));
            let id = format!(
                "{}-{}",
                spec.name,
                crate::account::new_id("", 6).to_ascii_lowercase()
            );
            // The labels are the request's tags (and, with the inherited transitive tags, a
            // role's session tags).
            let tags: Vec<(String, String)> = spec
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .chain(inherited.iter().cloned())
                .collect();
            crate::context::add_request_tags(&mut context, &tags);
            let source_identity = spec
                .role
                .as_ref()
                .and(creator.source_identity())
                .map(str::to_owned);
            let role = spec.role.as_ref().map(|name| {
                let arn = gw.state.snapshot().roles.get(name).map_or_else(
                    || format!("arn:aws:iam::{}:role/{name}", gw.account.record.account_id),
                    |r| r.arn.clone(),
                );
                PassedRole {
                    arn,
                    tags: !tags.is_empty(),
                    source_identity: source_identity.is_some(),
                }
            });
            if let Some(r) = &spec.role {
                context.insert("keyhole:Role", r.as_str());
                // The session the job's credentials are: AssumeRole's keys.
                context.insert("sts:RoleSessionName", id.as_str());
                if let Some(si) = &source_identity {
                    context.insert("sts:SourceIdentity", si.as_str());
                }
            }
            (
                gw_job_arn(gw, &spec.name),
                context,
                Input::Create {
                    spec: Box::new(spec),
                    id,
                    role,
                },
            )
        }
        Action::GetJob | Action::FinishJob | Action::GetJobReport => {
            let id = job_id()?;
            (gw_job_arn(gw, &id), Context::new(), Input::Job(id))
        }
        Action::ListJobs => (gw_job_arn(gw, "*"), Context::new(), Input::List),
        Action::RevokeSession => {
            let ak = body
                .get("AccessKeyId")
                .and_then(Value::as_str)
                .filter(|s| s.starts_with("ASIA") && s.len() <= 128)
                .ok_or_else(|| {
                    validation(
                        "`AccessKeyId` is required: the ASIA... key id of the session to revoke",
                    )
                })?;
            (
                format!(
                    "arn:aws:keyhole:{}:{}:session/{ak}",
                    gw.config.region, gw.account.record.account_id
                ),
                Context::new(),
                Input::Revoke {
                    access_key_id: ak.to_owned(),
                },
            )
        }
        Action::GetAccessReport => {
            let account = &gw.account.record.account_id;
            let arn = report_principal(body.get("Principal"), account)?;
            let since = since_of(&body, crate::access::DEFAULT_REPORT_DAYS)?;
            // Authorized on the principal itself, as IAM's access-advisor actions are
            // (iam:GenerateServiceLastAccessedDetails is on the user or role).
            (
                arn.to_owned(),
                Context::new(),
                Input::AccessReport {
                    principal: arn.to_owned(),
                    since,
                },
            )
        }
        // Account-wide, on `*`, as iam:GetAccountAuthorizationDetails is.
        Action::ListUnusedAccess => (
            "*".to_owned(),
            Context::new(),
            Input::Unused {
                since: since_of(&body, crate::access::DEFAULT_UNUSED_DAYS)?,
            },
        ),
    };
    Ok(ApiCall {
        action,
        permission: Permission {
            action: action.iam_action(),
            resource: permission_resource,
        },
        context,
        input,
    })
}

/// The `Principal` of a GetAccessReport: the ARN of a user or role of this account, named
/// exactly (no wildcard); the error says which of those it is not (review 14).
fn report_principal<'a>(value: Option<&'a Value>, account: &str) -> Result<&'a str, S3Error> {
    let forms = format!("arn:aws:iam::{account}:user/NAME or arn:aws:iam::{account}:role/NAME");
    let Some(arn) = value.and_then(Value::as_str) else {
        return Err(validation(format!(
            "`Principal` is required: the ARN of a user or role ({forms})"
        )));
    };
    let Some(rest) = arn.strip_prefix("arn:aws:iam::") else {
        return Err(validation(format!(
            "`Principal` {arn} is not an IAM user or role ARN ({forms}; a session's report is its role's)"
        )));
    };
    let Some(rest) = rest.strip_prefix(account).and_then(|r| r.strip_prefix(':')) else {
        return Err(validation(format!(
            "`Principal` {arn} is not of this gateway's account {account} ({forms})"
        )));
    };
    if rest.contains(['*', '?']) {
        return Err(validation(format!(
            "`Principal` {arn} has a wildcard: name one user or role ({forms})"
        )));
    }
    if !(rest.starts_with("user/") || rest.starts_with("role/")) || rest.ends_with('/') {
        return Err(validation(format!(
            "`Principal` {arn} names no user or role ({forms})"
        )));
    }
    Ok(arn)
}

/// `Since`: the start of the window (RFC 3339), `default_days` ago when absent; never now or
/// later (an empty window would call everything unused).
fn since_of(body: &Value, default_days: i64) -> Result<DateTime<Utc>, S3Error> {
    let now = Utc::now();
    let since = match body.get("Since") {
        None | Some(Value::Null) => now - Duration::days(default_days),
        Some(v) => v
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| {
                validation(format!(
                    "`Since` must be an RFC 3339 time such as 2026-11-01T00:00:00Z, not {v}"
                ))
            })?,
    };
    if since >= now {
        return Err(validation(format!(
            "`Since` ({}) is not in the past (the gateway's time is {}): the window would be empty and everything in it unused; give an earlier time",
            rfc3339(since),
            rfc3339(now)
        )));
    }
    Ok(since)
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut r = Response::new(body::full(value.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    r
}

/// The error body of the AWS JSON protocol.
pub fn error_json(e: &S3Error) -> String {
    json!({"__type": e.code(), "message": e.message()}).to_string()
}

/// A job as the API shows it.
pub fn view(gw: &Gateway, r: &JobRecord, now: i64) -> Value {
    let j = &r.job;
    json!({
        "JobId": r.id,
        "Name": j.name,
        "Arn": gw_job_arn(gw, &r.id),
        "State": r.state(now),
        "Start": rfc3339(j.start),
        "End": rfc3339(j.end),
        "Read": j.read.iter().map(spec::Location::url).collect::<Vec<_>>(),
        "Write": j.write.iter().map(spec::Location::url).collect::<Vec<_>>(),
        "SourceIp": j.source_ip,
        "Role": j.role,
        "Labels": j.labels,
        "CreatedBy": r.created_by,
        "CreatorId": r.grant.as_ref().map(|g| g.creator.unique_id(&gw.account.record.account_id)),
        "CreatedAt": DateTime::<Utc>::from_timestamp(r.created_at, 0).map(rfc3339),
        "FinishedAt": r.finished_at.and_then(|t| DateTime::<Utc>::from_timestamp(t, 0)).map(rfc3339),
        "FinishedBy": r.finished_by,
        "Policy": serde_json::from_str::<Value>(&r.policy).unwrap_or(Value::Null),
    })
}

/// Runs an authorized call in its request context (recorded with a new job, see [`grant`]);
/// returns the response and what the audit trail records of it (CloudTrail's
/// `responseElements`: the new job's id and session key id, never a secret).
pub async fn execute(
    gw: &Gateway,
    principal: &Principal,
    call: crate::authz::Authorized<Box<ApiCall>>,
    context: &Context,
    source_ip: IpAddr,
    now: DateTime<Utc>,
) -> Result<(Response<Body>, Option<Value>), S3Error> {
    let t = now.timestamp();
    let account = gw.account.record.account_id.clone();
    let call = *call.into_call();
    // The context the call was decided in, as a new job records it.
    let mut decided_in = context.clone();
    decided_in.extend(call.context.clone());
    match call.input {
        Input::Create { spec, id, role: _ } => {
            let job = spec
                .resolve(now, Some(source_ip))
                .map_err(|e| validation(e.to_string()))?;
            for (i, l) in job.read.iter().chain(&job.write).enumerate() {
                if let Err(e) = gw.storage.head_bucket(&l.bucket).await {
                    if e.code() != "NoSuchBucket" {
                        return Err(e);
                    }
                    let field = if i < job.read.len() {
                        format!("read[{i}]")
                    } else {
                        format!("write[{}]", i - job.read.len())
                    };
                    return Err(validation(format!(
                        "job spec field `{field}`: bucket {} does not exist; create it first (aws s3 mb s3://{})",
                        l.bucket, l.bucket
                    )));
                }
            }
            let role_id = match &job.role {
                Some(role) => match gw.state.snapshot().roles.get(role) {
                    Some(r) => Some(r.record.id.clone()),
                    None => {
                        return Err(validation(format!(
                            "job spec field `role`: role {role} does not exist (aws iam create-role --role-name {role} ...)"
                        )))
                    }
                },
                None => None,
            };
            let grant = grant::JobGrant {
                creator: grant::creator_of(principal, job.role.is_some())?,
                role_id,
                context: grant::record_context(&decided_in),
            };
            let token = format!("kh1.{id}.{}", hex::encode(rand::random::<[u8; 32]>()));
            let record = JobRecord {
                id: id.clone(),
                policy: job.policy().to_string(),
                job,
                created_by: principal.arn(&account),
                grant: Some(grant),
                created_at: t,
                finished_at: None,
                finished_by: None,
                token_hash: token_hash(&token),
            };
            let jobs = gw.jobs.clone();
            let stored = record.clone();
            crate::state::db::blocking(move || jobs.create(&stored, t)).await?;
            let entry = gw.jobs.active(&id).ok_or_else(|| {
                S3Error::internal(std::io::Error::other("a created job is not active"))
            })?;
            let (claims, session_token) = mint(gw, &entry, now)?;
            tracing::info!(job = %id, by = %record.created_by, "job created");
            Ok((
                json_response(
                    StatusCode::OK,
                    &json!({
                        "Job": view(gw, &record, t),
                        "Credentials": credentials_json(&claims, &session_token, "SessionToken", claims.exp),
                        "CredentialsToken": token,
                        // The address this request came from, as the gateway sees it: `keyhole
                        // run` warns when the job's source_ip would refuse its own command.
                        "CallerIp": source_ip.to_string(),
                    }),
                ),
                Some(json!({"jobId": id, "credentials": credentials_audit(&claims)})),
            ))
        }
        Input::Job(id) => {
            let jobs = gw.jobs.clone();
            let wanted = id.clone();
            let record = match crate::state::db::blocking(move || jobs.get(&wanted)).await {
                Ok(r) => r,
                Err(crate::state::StateError::NoSuchEntity(_)) => {
                    return Err(S3Error::new(
                        "ResourceNotFoundException",
                        StatusCode::NOT_FOUND,
                        format!("There is no job {id} (keyhole job list shows the jobs)"),
                    ))
                }
                Err(other) => return Err(other.into()),
            };
            match call.action {
                Action::FinishJob => {
                    let jobs = gw.jobs.clone();
                    let by = principal.arn(&account);
                    let id = record.id.clone();
                    let done = crate::state::db::blocking(move || jobs.finish(&id, &by, t)).await?;
                    tracing::info!(job = %done.id, "job finished");
                    Ok((
                        json_response(StatusCode::OK, &json!({"Job": view(gw, &done, t)})),
                        None,
                    ))
                }
                Action::GetJobReport => {
                    let rep = if gw.job_feed.is_some() {
                        // Several nodes: every node's records of the job's requests.
                        let state = gw.state.clone();
                        crate::state::db::blocking(move || {
                            facts::build_shared(&state, &record, facts::REPORT_WAIT)
                        })
                        .await?
                    } else {
                        // Events queued before this request (a denial just answered, whose
                        // event is written without waiting) are in the file before it is read.
                        gw.audit.written().await.map_err(S3Error::internal)?;
                        let dir = gw.config.data_dir.join(crate::audit::AUDIT_DIR);
                        tokio::task::spawn_blocking(move || report::build(&dir, &record))
                            .await
                            .map_err(S3Error::internal)?
                            .map_err(S3Error::internal)?
                    };
                    Ok((json_response(StatusCode::OK, &json!({"Report": rep})), None))
                }
                _ => Ok((
                    json_response(StatusCode::OK, &json!({"Job": view(gw, &record, t)})),
                    None,
                )),
            }
        }
        Input::List => {
            let store = gw.jobs.clone();
            let all = crate::state::db::blocking(move || store.list()).await?;
            let jobs: Vec<Value> = all.iter().map(|r| view(gw, r, t)).collect();
            Ok((json_response(StatusCode::OK, &json!({"Jobs": jobs})), None))
        }
        Input::AccessReport { principal, since } => {
            let report = crate::access::principal_report(gw, &principal, since).await?;
            Ok((
                json_response(StatusCode::OK, &json!({"Report": report})),
                None,
            ))
        }
        Input::Unused { since } => {
            let report = crate::access::unused(gw, since).await?;
            Ok((
                json_response(StatusCode::OK, &json!({"Report": report})),
                None,
            ))
        }
        Input::Revoke { access_key_id } => {
            // The longest any temporary credentials live bounds how long the revocation must be
            // kept: GetSessionToken's 36 hours, longer than any role or job session (review
            // round 3: a 12-hour bound let revoked GetSessionToken credentials work again after
            // a restart).
            let jobs = gw.jobs.clone();
            let ak = access_key_id.clone();
            crate::state::db::blocking(move || {
                jobs.revoke_session(&ak, t + crate::sts::LONGEST_SESSION_SECS, t)
            })
            .await?;
            Ok((
                json_response(StatusCode::OK, &json!({"Revoked": access_key_id})),
                None,
            ))
        }
    }
}

/// The credentials as the audit trail records them (CloudTrail's `responseElements.credentials`):
/// the access key id and expiry, never the secret or the token.
pub fn credentials_audit(claims: &SessionClaims) -> Value {
    json!({
        "accessKeyId": claims.ak,
        "expiration": DateTime::<Utc>::from_timestamp(claims.exp, 0).map(rfc3339),
    })
}

/// The SHA-256 (hex) of a job credentials token, as stored.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// How far past the end of its window the container endpoint dates a session the window cut
/// short. botocore refreshes container credentials that expire within 15 minutes (and must
/// within 10); a session dated by the window's end would be fetched again on every request of a
/// job's last 15 minutes, and of the whole life of a shorter job, each fetch a new session and
/// audit events. Nothing is gained by it: the session ends with the window whatever the answer
/// says (its token expires then, the job's policy allows nothing after it, and finishing the job
/// revokes it), and a fetch after the window is refused. So such a session is reported as
/// expiring 20 minutes after the window (15 for the SDK, 5 for clock skew between the job's
/// machine and the gateway), and the SDK keeps it until the window closes. The audit trail
/// records the true expiry.
const WINDOW_SLACK_SECS: i64 = 20 * 60;

/// The `Expiration` the container endpoint reports for `claims` of a job whose window ends at
/// `window_end`: the true expiry, unless the window cut the session short (see
/// [`WINDOW_SLACK_SECS`]).
fn reported_expiration(claims: &SessionClaims, window_end: DateTime<Utc>) -> i64 {
    if claims.exp >= window_end.timestamp() {
        claims.exp + WINDOW_SLACK_SECS
    } else {
        claims.exp
    }
}

/// Credentials as AWS spells them: STS-style (`SessionToken`, the keyhole API) or the container
/// endpoint's (`Token`), named by `token_field`, expiring (as far as the caller is told) at
/// `expiration`.
fn credentials_json(
    claims: &SessionClaims,
    token: &str,
    token_field: &str,
    expiration: i64,
) -> Value {
    let expiration = DateTime::<Utc>::from_timestamp(expiration, 0).map(rfc3339);
    let mut v = json!({
        "AccessKeyId": claims.ak,
        "SecretAccessKey": claims.sk,
        "Expiration": expiration,
    });
    if let Some(o) = v.as_object_mut() {
        o.insert(token_field.to_owned(), json!(token));
    }
    v
}

/// Issues a fresh session for a job: valid from now until the configured session lifetime or the
/// end of the window, whichever comes first, and for a job with a role at most the role's
/// `MaxSessionDuration` (one hour when the creator is a role session: role chaining, as
/// AssumeRole allows, https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html).
/// The role must be the one the job was given (the same unique id).
pub fn mint(
    gw: &Gateway,
    entry: &JobEntry,
    now: DateTime<Utc>,
) -> Result<(SessionClaims, String), S3Error> {
    let job = &entry.record.job;
    let mut lifetime = i64::try_from(gw.config.job_session_secs).unwrap_or(i64::MAX);
    let invalid = |why: String| S3Error::new("InvalidToken", StatusCode::FORBIDDEN, why);
    let (role, role_id) = match &job.role {
        Some(name) => {
            let snapshot = gw.state.snapshot();
            let bound = entry
                .record
                .grant
                .as_ref()
                .and_then(|g| g.role_id.as_deref());
            let role = snapshot
                .roles
                .get(name)
                .filter(|r| Some(r.record.id.as_str()) == bound)
                .ok_or_else(|| {
                    invalid(format!(
                        "role {name} of job {} no longer exists (a role created again under the name is another role)",
                        entry.record.id
                    ))
                })?;
            lifetime = lifetime.min(role.record.max_session_secs);
            if matches!(
                entry.record.grant.as_ref().map(|g| &g.creator),
                Some(grant::JobCreator::RoleSession { .. })
            ) {
                lifetime = lifetime.min(crate::sts::MAX_CHAINED_SESSION_SECS);
            }
            (name.clone(), role.record.id.clone())
        }
        None => (String::new(), String::new()),
    };
    let exp = (now + Duration::seconds(lifetime)).min(job.end);
    if exp <= now {
        return Err(S3Error::new(
            "ExpiredToken",
            StatusCode::FORBIDDEN,
            format!("job {} ended at {}", entry.record.id, rfc3339(job.end)),
        ));
    }
    let creator = entry.record.grant.as_ref().map(|g| &g.creator);
    let mut claims = SessionClaims::fresh(&gw.account.record.account_id, now, 0);
    let chained = !role.is_empty();
    claims.role = role;
    claims.role_id = role_id;
    claims.session = entry.record.id.clone();
    claims.exp = exp.timestamp();
    claims.job = Some(entry.record.id.clone());
    // The creator's source identity stays with everything done on its behalf.
    claims.source_identity = creator.and_then(|c| c.source_identity().map(str::to_owned));
    // A role job's sessions inherit the creating session's transitive tags (role chaining).
    let inherited = match creator {
        Some(c) if chained => c.transitive_tags(),
        _ => Vec::new(),
    };
    claims.transitive = inherited.iter().map(|(k, _)| k.clone()).collect();
    // The job's labels become session tags too (`aws:PrincipalTag/team`), and `job` names the
    // job (a label cannot override it: the spec refuses a `job` label).
    claims.tags = entry
        .record
        .job
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .chain(inherited)
        .chain(std::iter::once((
            JOB_TAG.to_owned(),
            entry.record.id.clone(),
        )))
        .collect();
    let token = gw.tokens.seal(&claims)?;
    Ok((claims, token))
}

/// `GET /_keyhole/credentials`: a fresh session for the job whose token authenticated the
/// request, in the container-credentials JSON SDKs read
/// (https://docs.aws.amazon.com/sdkref/latest/guide/feature-container-credentials.html). The
/// token holder ([`Principal::JobToken`]) needs `keyhole:GetJobCredentials` on its job, which its
/// only policy grants from the job's source CIDRs ([`store::JobEntry::credential_policy`]).
#[derive(Debug)]
pub struct CredentialFetch {
    /// The job's ARN.
    pub job_arn: String,
}

impl crate::authz::Describe for CredentialFetch {
    fn requirement(&self) -> crate::authz::Requirement {
        crate::authz::Requirement::Permissions(vec![Permission::new(
            "keyhole:GetJobCredentials",
            self.job_arn.clone(),
        )])
    }
}

/// Issues the credentials of an authorized fetch; returns the response and its audit record. A
/// fresh session of a job's role is a new AssumeRole by the job's creator: it is decided again
/// ([`grant`]) by the authorization stage, and its decisions are recorded in `checks`.
pub async fn fetch_credentials(
    gw: &Gateway,
    principal: &Principal,
    _call: crate::authz::Authorized<CredentialFetch>,
    checks: &crate::audit::Checks,
    now: DateTime<Utc>,
) -> Result<(Response<Body>, Option<Value>), S3Error> {
    let Principal::JobToken { job, .. } = principal else {
        return Err(S3Error::access_denied("Access Denied"));
    };
    if let Some(why) = job.record.creator_ended(&gw.jobs, now.timestamp()) {
        return Err(S3Error::new(
            "ExpiredToken",
            StatusCode::FORBIDDEN,
            format!("job {}: {why}", job.record.id),
        ));
    }
    if let Some(role) = &job.record.job.role {
        let Some(g) = &job.record.grant else {
            return Err(S3Error::access_denied(format!(
                "job {} was created by an earlier release without a record of its creator; create it again",
                job.record.id
            )));
        };
        let creator = grant::creator_principal(gw, &g.creator).ok_or_else(|| {
            S3Error::access_denied(format!(
                "the creator of job {} no longer exists, so it can no longer assume role {role}",
                job.record.id
            ))
        })?;
        let role_arn = gw.state.snapshot().roles.get(role).map_or_else(
            || format!("arn:aws:iam::{}:role/{role}", gw.account.record.account_id),
            |r| r.arn.clone(),
        );
        let renewal = grant::RoleRenewal {
            role_arn,
            tags: !job.record.job.labels.is_empty() || !g.creator.transitive_tags().is_empty(),
            source_identity: g.creator.source_identity().is_some(),
        };
        // The CreateJob's context with the current time, and the creator's keys as it is now
        // (its current tags, the issue time of the credentials it used).
        let context = crate::context::rebase_principal(
            &grant::replay_context(&g.context, now),
            &creator,
            &gw.account.record.account_id,
        );
        // The token holder is told what was refused, not its creator's ARN or which of its
        // policies refused (review 36, F1); the checks recorded keep the details.
        crate::authz::authorize(gw, &creator, renewal, &context, checks)
            .await
            .map_err(|e| {
                if e.code() == "AccessDenied" {
                    S3Error::access_denied(format!(
                        "job {}'s creator may no longer assume role {role} for it{}",
                        job.record.id,
                        crate::authz::denial_reason(e.message())
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default()
                    ))
                } else {
                    e
                }
            })?;
    }
    let (claims, token) = mint(gw, job, now)?;
    let expiration = reported_expiration(&claims, job.record.job.end);
    Ok((
        json_response(
            StatusCode::OK,
            &credentials_json(&claims, &token, "Token", expiration),
        ),
        Some(json!({"credentials": credentials_audit(&claims)})),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session the window cuts short is dated past the window by the slack; one that ends
    /// before the window (its lifetime ran out first) keeps its true expiry, so SDKs refresh it.
    #[test]
    fn only_sessions_cut_by_the_window_are_dated_past_it() {
        let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let end = now + Duration::minutes(10);
        let mut cut = SessionClaims::fresh("111122223333", now, 3600);
        cut.exp = end.timestamp();
        assert_eq!(
            reported_expiration(&cut, end),
            end.timestamp() + WINDOW_SLACK_SECS
        );
        let mut short = SessionClaims::fresh("111122223333", now, 900);
        short.exp = (now + Duration::minutes(5)).timestamp();
        assert_eq!(reported_expiration(&short, end), short.exp);
    }
}
