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
//! `keyhole:RevokeSession` on `...:session/ACCESS_KEY_ID`. One addition: the principal that
//! created a job may always get, finish and report on that job (finishing only takes access
//! away, and `keyhole run` must be able to end the job it started).
//!
//! # Job sessions
//! A job's credentials are session credentials (`ASIA...` + sealed token, [`crate::sts`]) whose
//! claims name the job. A job without a role has the job policy as its only identity policy
//! (principal `arn:aws:sts::ACCOUNT:federated-user/JOB_ID`); a job with a role gets the role's
//! policies and boundary intersected with the job policy as session policy
//! (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/JOB_ID`). Sessions carry the principal tag
//! `job=JOB_ID`. A session never outlives the window, and every request re-checks that the job is
//! unfinished (memory only), so finishing revokes all of a job's sessions at once.

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
}

impl Action {
    /// Parses an `X-Amz-Target` header value.
    pub fn from_target(target: &str) -> Option<Action> {
        Some(match target.strip_prefix(TARGET_PREFIX)? {
            "CreateJob" => Action::CreateJob,
            "GetJob" => Action::GetJob,
            "ListJobs" => Action::ListJobs,
            "FinishJob" => Action::FinishJob,
            "GetJobReport" => Action::GetJobReport,
            "RevokeSession" => Action::RevokeSession,
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
    /// The creator of the job the call is about (who may always get, finish and report on it).
    pub owner: Option<String>,
    /// Condition keys the action adds to the request context.
    pub context: Vec<(&'static str, Vec<String>)>,
    input: Input,
}

#[derive(Debug)]
enum Input {
    Create(JobSpec),
    Job(String, Option<JobRecord>),
    List,
    Revoke { access_key_id: String },
}

fn validation(message: impl Into<String>) -> S3Error {
    S3Error::new("ValidationException", StatusCode::BAD_REQUEST, message)
}

fn job_arn(gw: &Gateway, id: &str) -> String {
    format!(
        "arn:aws:keyhole:{}:{}:job/{id}",
        gw.config.region, gw.account.record.account_id
    )
}

/// Turns a request into the call to authorize. Nothing changes here.
pub fn describe(gw: &Gateway, headers: &HeaderMap, raw: &[u8]) -> Result<ApiCall, S3Error> {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let action = Action::from_target(target).ok_or_else(|| {
        S3Error::new(
            "UnknownOperationException",
            StatusCode::BAD_REQUEST,
            format!(
                "`X-Amz-Target: {target}` is not a keyhole API action; use Keyhole.CreateJob, GetJob, ListJobs, FinishJob, GetJobReport or RevokeSession"
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
    // The job is looked up here (its creator may always act on it) but a missing one is only
    // reported after authorization, so nobody learns which ids exist without the right to ask.
    let job_id = || -> Result<(String, Option<JobRecord>), S3Error> {
        let id = body
            .get("JobId")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 128)
            .ok_or_else(|| {
                validation("`JobId` is required (a string such as finetune-42-a1b2c3)")
            })?;
        match gw.jobs.get(id) {
            Ok(r) => Ok((id.to_owned(), Some(r))),
            Err(crate::state::StateError::NoSuchEntity(_)) => Ok((id.to_owned(), None)),
            Err(other) => Err(other.into()),
        }
    };
    let (permission_resource, owner, context, input) = match action {
        Action::CreateJob => {
            let spec: JobSpec = serde_json::from_value(body).map_err(|e| {
                validation(format!(
                    "the job spec is not valid: {e} (fields: name, read, write, start, duration, end, source_ip, role, labels)"
                ))
            })?;
            let mut context = vec![
                ("keyhole:ReadLocations", spec.read.clone()),
                ("keyhole:WriteLocations", spec.write.clone()),
            ];
            if let Some(role) = &spec.role {
                context.push(("keyhole:Role", vec![role.clone()]));
            }
            (job_arn(gw, &spec.name), None, context, Input::Create(spec))
        }
        Action::GetJob | Action::FinishJob | Action::GetJobReport => {
            let (id, record) = job_id()?;
            (
                job_arn(gw, &id),
                record.as_ref().map(|r| r.created_by.clone()),
                Vec::new(),
                Input::Job(id, record),
            )
        }
        Action::ListJobs => (job_arn(gw, "*"), None, Vec::new(), Input::List),
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
                None,
                Vec::new(),
                Input::Revoke {
                    access_key_id: ak.to_owned(),
                },
            )
        }
    };
    Ok(ApiCall {
        action,
        permission: Permission {
            action: action.iam_action(),
            resource: permission_resource,
        },
        owner,
        context,
        input,
    })
}

/// Adds the call's condition keys to the request context.
pub fn add_context(call: &ApiCall, context: &mut Context) {
    for (k, v) in &call.context {
        context.insert_multi(k, v.clone());
    }
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
        "Arn": job_arn(gw, &r.id),
        "State": r.state(now),
        "Start": rfc3339(j.start),
        "End": rfc3339(j.end),
        "Read": j.read.iter().map(spec::Location::url).collect::<Vec<_>>(),
        "Write": j.write.iter().map(spec::Location::url).collect::<Vec<_>>(),
        "SourceIp": j.source_ip,
        "Role": j.role,
        "Labels": j.labels,
        "CreatedBy": r.created_by,
        "CreatedAt": DateTime::<Utc>::from_timestamp(r.created_at, 0).map(rfc3339),
        "FinishedAt": r.finished_at.and_then(|t| DateTime::<Utc>::from_timestamp(t, 0)).map(rfc3339),
        "FinishedBy": r.finished_by,
        "Policy": serde_json::from_str::<Value>(&r.policy).unwrap_or(Value::Null),
    })
}

/// Runs an authorized call.
pub async fn execute(
    gw: &Gateway,
    principal: &Principal,
    call: ApiCall,
    source_ip: IpAddr,
    now: DateTime<Utc>,
) -> Result<Response<Body>, S3Error> {
    let t = now.timestamp();
    let account = gw.account.record.account_id.clone();
    match call.input {
        Input::Create(spec) => {
            let job = spec
                .resolve(now, Some(source_ip))
                .map_err(|e| validation(e.to_string()))?;
            for (i, l) in job.read.iter().chain(&job.write).enumerate() {
                if gw.store.bucket(&l.bucket).is_err() {
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
            if let Some(role) = &job.role {
                if !gw.state.snapshot().roles.contains_key(role) {
                    return Err(validation(format!(
                        "job spec field `role`: role {role} does not exist (aws iam create-role --role-name {role} ...)"
                    )));
                }
            }
            let id = format!(
                "{}-{}",
                job.name,
                crate::account::new_id("", 6).to_ascii_lowercase()
            );
            let token = format!("kh1.{id}.{}", hex::encode(rand::random::<[u8; 32]>()));
            let record = JobRecord {
                id: id.clone(),
                policy: job.policy().to_string(),
                job,
                created_by: principal.arn(&account),
                created_at: t,
                finished_at: None,
                finished_by: None,
                token_hash: token_hash(&token),
            };
            gw.jobs.create(&record, t)?;
            let entry = gw.jobs.active(&id).ok_or_else(|| {
                S3Error::internal(std::io::Error::other("a created job is not active"))
            })?;
            let (claims, session_token) = mint(gw, &entry, now)?;
            tracing::info!(job = %id, by = %record.created_by, "job created");
            Ok(json_response(
                StatusCode::OK,
                &json!({
                    "Job": view(gw, &record, t),
                    "Credentials": credentials_json(&claims, &session_token, "SessionToken"),
                    "CredentialsToken": token,
                }),
            ))
        }
        Input::Job(id, None) => Err(S3Error::new(
            "ResourceNotFoundException",
            StatusCode::NOT_FOUND,
            format!("There is no job {id} (keyhole job list shows the jobs)"),
        )),
        Input::Job(_, Some(record)) => match call.action {
            Action::FinishJob => {
                let done = gw.jobs.finish(&record.id, &principal.arn(&account), t)?;
                tracing::info!(job = %done.id, "job finished");
                Ok(json_response(
                    StatusCode::OK,
                    &json!({"Job": view(gw, &done, t)}),
                ))
            }
            Action::GetJobReport => {
                let dir = gw.config.data_dir.join(crate::audit::AUDIT_DIR);
                let rep = tokio::task::spawn_blocking(move || report::build(&dir, &record))
                    .await
                    .map_err(S3Error::internal)?
                    .map_err(S3Error::internal)?;
                Ok(json_response(StatusCode::OK, &json!({"Report": rep})))
            }
            _ => Ok(json_response(
                StatusCode::OK,
                &json!({"Job": view(gw, &record, t)}),
            )),
        },
        Input::List => {
            let jobs: Vec<Value> = gw.jobs.list()?.iter().map(|r| view(gw, r, t)).collect();
            Ok(json_response(StatusCode::OK, &json!({"Jobs": jobs})))
        }
        Input::Revoke { access_key_id } => {
            // The longest any session lives (AWS's maximum role session, 12 h) bounds how long the
            // revocation must be kept.
            gw.jobs.revoke_session(&access_key_id, t + 43_200, t)?;
            Ok(json_response(
                StatusCode::OK,
                &json!({"Revoked": access_key_id}),
            ))
        }
    }
}

fn token_hash(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Credentials as AWS spells them: STS-style (`SessionToken`, the keyhole API) or the container
/// endpoint's (`Token`), named by `token_field`.
fn credentials_json(claims: &SessionClaims, token: &str, token_field: &str) -> Value {
    let expiration = DateTime::<Utc>::from_timestamp(claims.exp, 0).map(rfc3339);
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
/// end of the window, whichever comes first.
pub fn mint(
    gw: &Gateway,
    entry: &JobEntry,
    now: DateTime<Utc>,
) -> Result<(SessionClaims, String), S3Error> {
    let job = &entry.record.job;
    let lifetime = i64::try_from(gw.config.job_session_secs).unwrap_or(i64::MAX);
    let exp = (now + Duration::seconds(lifetime)).min(job.end);
    if exp <= now {
        return Err(S3Error::new(
            "ExpiredToken",
            StatusCode::FORBIDDEN,
            format!("job {} ended at {}", entry.record.id, rfc3339(job.end)),
        ));
    }
    let (role, role_id) = match &job.role {
        Some(name) => {
            let snapshot = gw.state.snapshot();
            let role = snapshot.roles.get(name).ok_or_else(|| {
                S3Error::new(
                    "InvalidToken",
                    StatusCode::FORBIDDEN,
                    format!("role {name} of job {} no longer exists", entry.record.id),
                )
            })?;
            (name.clone(), role.record.id.clone())
        }
        None => (String::new(), String::new()),
    };
    let mut claims = SessionClaims::fresh(&gw.account.record.account_id, now, 0);
    claims.role = role;
    claims.role_id = role_id;
    claims.session = entry.record.id.clone();
    claims.exp = exp.timestamp();
    claims.job = Some(entry.record.id.clone());
    // The job's labels become session tags too (`aws:PrincipalTag/team`), and `job` names the
    // job (a label cannot override it: the spec refuses a `job` label).
    claims.tags = entry
        .record
        .job
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .chain(std::iter::once((
            JOB_TAG.to_owned(),
            entry.record.id.clone(),
        )))
        .collect();
    let token = gw.tokens.seal(&claims)?;
    Ok((claims, token))
}

/// `GET /_keyhole/credentials` with `Authorization: <job credentials token>`: a fresh session
/// for the job, in the container-credentials JSON SDKs read
/// (https://docs.aws.amazon.com/sdkref/latest/guide/feature-container-credentials.html).
/// Refused once the job is finished or its window has ended, and from outside its source CIDRs.
/// Returns the response and the job id (for the audit event).
pub fn container_credentials(
    gw: &Gateway,
    headers: &HeaderMap,
    source_ip: IpAddr,
    now: DateTime<Utc>,
) -> (Result<Response<Body>, S3Error>, Option<String>) {
    let denied = |m: &str| S3Error::access_denied(m.to_owned());
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
    let Some(entry) = gw.jobs.active(&id) else {
        return (
            Err(S3Error::new(
                "ExpiredToken",
                StatusCode::FORBIDDEN,
                format!("job {id} is finished, has ended or does not exist"),
            )),
            Some(id),
        );
    };
    // Comparing SHA-256 digests: timing reveals nothing usable about the token.
    if token_hash(token) != entry.record.token_hash {
        return (Err(denied("the job token is not valid")), Some(id));
    }
    let allowed_source = entry.record.job.source_ip.iter().any(|c| {
        keyhole_policy::condition::ip::Cidr::parse(c).is_some_and(|c| c.contains(source_ip))
    });
    if !allowed_source {
        return (
            Err(denied(&format!(
                "job {id} may be used only from {}, not from {source_ip}",
                entry.record.job.source_ip.join(", ")
            ))),
            Some(id),
        );
    }
    let out = mint(gw, &entry, now).map(|(claims, token)| {
        json_response(StatusCode::OK, &credentials_json(&claims, &token, "Token"))
    });
    (out, Some(id))
}

/// Whether `principal` created the job (and so may get, finish and report on it).
pub fn is_owner(principal: &Principal, call: &ApiCall, account_id: &str) -> bool {
    call.owner
        .as_deref()
        .is_some_and(|o| o == principal.arn(account_id))
}
