//! The one request path: accept → route → authenticate → describe → authorize → handle.
//!
//! Every request goes through [`handle`]. Authorization happens before the body is read; only an
//! allowed request reaches an S3 handler. Errors become S3 XML with a request id. Every request
//! but `/healthz` produces one audit event (two for a mutating request that was allowed: a
//! write-ahead `authorized` record, durable before the handler runs, and the `completed` one).

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Frame;
use hyper::body::Incoming;
use rand::Rng;

use crate::audit::event::{RequestParameters, Resource, Stage, UserIdentity};
use crate::audit::{self, AuditEvent, Check, Checks, Decision};
use crate::auth::Principal;
use crate::body::{self, Body, BodyReader};
use crate::context::{self, RequestFacts};
use crate::error::S3Error;
use crate::metrics::RequestSample;
use crate::s3::route::{Op, Query};
use crate::s3::{self, Ctx};
use crate::Gateway;

/// What the pipeline knows about the connection a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// Whether the connection is TLS: `aws:SecureTransport` and the audit event's `tls`.
    pub tls: bool,
}

/// Largest Query-protocol (IAM, STS) form body: a 6144-character policy document, URL-encoded (up
/// to three bytes a character), plus the other parameters.
pub const MAX_QUERY_BODY_BYTES: usize = 64 * 1024;

/// A fresh request id in AWS's style (16 uppercase hex digits).
pub(crate) fn new_request_id() -> String {
    format!("{:016X}", rand::thread_rng().gen::<u64>())
}

/// What the pipeline learns about a request as it goes, for its audit event.
struct Trace {
    api: &'static str,
    event_source: String,
    op_name: &'static str,
    identity: UserIdentity,
    bucket: Option<String>,
    key: Option<String>,
    /// A listing's `prefix`.
    prefix: Option<String>,
    checks: Arc<Checks>,
    /// Authentication failed: the decision is `Deny` whatever was checked.
    authn_failed: bool,
    bytes_in: Arc<AtomicU64>,
}

impl Trace {
    /// A trace with nothing learned yet but the API, the operation and who is calling.
    fn new(
        api: &'static str,
        event_source: &str,
        op_name: &'static str,
        identity: UserIdentity,
    ) -> Trace {
        Trace {
            api,
            event_source: event_source.to_owned(),
            op_name,
            identity,
            bucket: None,
            key: None,
            prefix: None,
            checks: Arc::default(),
            authn_failed: false,
            bytes_in: Arc::default(),
        }
    }

    fn event(&self, gw: &Gateway, base: &EventBase, stage: Stage) -> AuditEvent {
        let authorization = self.checks.snapshot();
        let resources = authorization
            .iter()
            .filter_map(|c| Resource::for_arn(&c.resource))
            .fold(Vec::<Resource>::new(), |mut acc, r| {
                if !acc.contains(&r) {
                    acc.push(r);
                }
                acc
            });
        let decision = if self.authn_failed {
            Some(Decision::Deny)
        } else {
            self.checks.decision()
        };
        AuditEvent {
            event_version: audit::event::EVENT_VERSION.to_owned(),
            event_time: base.event_time.clone(),
            event_source: self.event_source.clone(),
            event_name: self.op_name.to_owned(),
            api: self.api.to_owned(),
            stage,
            aws_region: gw.config.region.clone(),
            request_id: base.request_id.clone(),
            source_ip_address: base.source_ip.to_string(),
            user_agent: base.user_agent.clone(),
            user_identity: self.identity.clone(),
            request_parameters: RequestParameters {
                bucket_name: self.bucket.clone(),
                key: self.key.clone(),
                prefix: self.prefix.clone(),
            },
            resources,
            authorization,
            decision,
            http_status: None,
            error_code: None,
            error_message: None,
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: 0,
            duration_ms: base.started.elapsed().as_secs_f64() * 1000.0,
            tls: base.tls,
        }
    }
}

/// Facts about a request known on arrival.
struct EventBase {
    started: Instant,
    event_time: String,
    request_id: String,
    /// The client address: the TCP peer, or behind a trusted proxy its X-Forwarded-For client.
    source_ip: IpAddr,
    /// The request arrived over TLS.
    tls: bool,
    user_agent: Option<String>,
}

fn identity_of(principal: &Principal, account_id: &str) -> UserIdentity {
    match principal {
        Principal::Root { access_key_id } => UserIdentity {
            kind: "Root".into(),
            arn: Some(principal.arn(account_id)),
            account_id: Some(account_id.to_owned()),
            access_key_id: Some(access_key_id.clone()),
            ..UserIdentity::default()
        },
        Principal::User {
            arn, access_key_id, ..
        } => UserIdentity {
            kind: "IAMUser".into(),
            arn: Some(arn.clone()),
            account_id: Some(account_id.to_owned()),
            access_key_id: Some(access_key_id.clone()),
            ..UserIdentity::default()
        },
        Principal::Session { claims, arn, .. } => UserIdentity {
            kind: principal.kind().into(),
            job: claims.job.clone(),
            arn: Some(arn.clone()),
            account_id: Some(account_id.to_owned()),
            access_key_id: Some(claims.ak.clone()),
            session_name: Some(claims.session.clone()),
            source_identity: claims.source_identity.clone(),
        },
        Principal::Anonymous => UserIdentity {
            kind: "AnonymousPrincipal".into(),
            ..UserIdentity::default()
        },
    }
}

/// `503 ServiceUnavailable`: the audit trail cannot record a mutating request.
pub(crate) fn audit_unavailable() -> S3Error {
    S3Error::new(
        "ServiceUnavailable",
        StatusCode::SERVICE_UNAVAILABLE,
        "The audit trail cannot be written, so this request was refused. Please try again later.",
    )
}

/// Handles one request end to end. Never fails: errors become S3 error responses.
pub async fn handle(
    gw: Arc<Gateway>,
    connection: Connection,
    req: Request<Incoming>,
) -> Response<Body> {
    let peer = connection.peer;
    let started = Instant::now();
    let request_id = new_request_id();
    let (parts, incoming) = req.into_parts();
    let is_head = parts.method == Method::HEAD;

    if parts.uri.path() == "/healthz" && parts.method == Method::GET && parts.uri.query().is_none()
    {
        return finish(Response::new(body::full("ok\n")), &request_id);
    }
    let base = EventBase {
        started,
        event_time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        request_id: request_id.clone(),
        source_ip: context::client_ip(peer.ip(), &parts.headers, &gw.trusted_proxies),
        tls: connection.tls,
        user_agent: parts
            .headers
            .get(http::header::USER_AGENT)
            .map(|v| audit::event::clip_user_agent(&String::from_utf8_lossy(v.as_bytes()))),
    };
    let mutating = matches!(parts.method, Method::PUT | Method::POST | Method::DELETE);

    if parts.uri.path() == "/metrics" && parts.method == Method::GET {
        let mut r = Response::new(body::full(gw.metrics.render()));
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        let trace = Trace::new(
            "ops",
            "keyhole",
            "GetMetrics",
            UserIdentity {
                kind: "AnonymousPrincipal".into(),
                ..UserIdentity::default()
            },
        );
        return complete(&gw, trace, &base, r, false, None).await;
    }

    if parts.uri.path() == crate::jobs::CREDENTIALS_PATH && parts.method == Method::GET {
        let (outcome, job) = crate::jobs::container_credentials(
            &gw,
            &parts.headers,
            base.source_ip,
            chrono::Utc::now(),
        );
        let mut trace = Trace::new(
            "keyhole",
            "keyhole",
            "GetJobCredentials",
            UserIdentity {
                kind: "JobToken".into(),
                job,
                ..UserIdentity::default()
            },
        );
        trace.authn_failed = outcome.is_err();
        let (response, error) = match outcome {
            Ok(r) => (r, None),
            Err(e) => {
                let (r, err) =
                    error_response(e, &None, &None, "/", &request_id, false, ErrorFormat::Json);
                (r, Some(err))
            }
        };
        // Issuing credentials is recorded durably before they are handed out.
        let durable = response.status().is_success();
        let response = complete(&gw, trace, &base, response, durable, error).await;
        return finish(response, &request_id);
    }

    let located = locate(&gw, &parts.headers, parts.uri.path());
    let resource = match &located {
        Ok((Some(b), Some(k))) => format!("/{b}/{k}"),
        Ok((Some(b), None)) => format!("/{b}"),
        _ => "/".to_owned(),
    };
    let (err_bucket, err_key) = match &located {
        Ok((b, k)) => (b.clone(), k.clone()),
        Err(_) => (None, None),
    };
    let mut format = ErrorFormat::S3;
    let mut trace = Trace::new(
        "s3",
        "s3.amazonaws.com",
        "Unknown",
        UserIdentity {
            kind: "Unknown".into(),
            ..UserIdentity::default()
        },
    );
    trace.bucket.clone_from(&err_bucket);
    trace.key.clone_from(&err_key);
    let outcome: Result<Response<Body>, S3Error> = async {
        let (bucket, key) = located?;
        let now = chrono::Utc::now();
        let signed = match gw.authn.parse(&parts.method, &parts.uri, &parts.headers) {
            Ok(s) => s,
            Err(e) => {
                trace.authn_failed = true;
                return Err(e);
            }
        };
        let service = signed.as_ref().map(|s| s.scope().service.clone());
        match service.as_deref() {
            None | Some("s3") => {}
            Some(api @ ("iam" | "sts")) => {
                format = ErrorFormat::Query;
                trace.api = if api == "iam" { "iam" } else { "sts" };
                trace.event_source = format!("{api}.amazonaws.com");
                let Some(signed) = signed else {
                    return Err(S3Error::access_denied("Access Denied"));
                };
                // Query protocol: the action is in the form body (small, capped), which the
                // signature covers; it is read and hashed before verification.
                let (raw, principal, verified) = read_and_verify(
                    &gw,
                    &parts,
                    incoming,
                    signed,
                    now,
                    MAX_QUERY_BODY_BYTES,
                    &mut trace,
                )
                .await?;
                let form = if parts.method == Method::POST {
                    Query::parse(Some(&String::from_utf8_lossy(&raw)))
                } else {
                    Query::parse(parts.uri.query())
                };
                trace.op_name = query_op_name(api, form.get("Action"));
                let context = context::global(&RequestFacts {
                    now,
                    source_ip: base.source_ip,
                    secure: base.tls,
                    headers: &parts.headers,
                    region: &gw.config.region,
                    account_id: &gw.account.record.account_id,
                    principal: &principal,
                    verified: Some(&verified),
                });
                let (response, _) = if api == "iam" {
                    crate::iam::dispatch(&gw, &principal, form, &context, &request_id, &trace.checks)
                        .await?
                } else {
                    crate::sts::dispatch(
                        &gw,
                        &principal,
                        form,
                        &context,
                        &request_id,
                        now,
                        &trace.checks,
                    )
                    .await?
                };
                return Ok(response);
            }
            Some("keyhole") => {
                format = ErrorFormat::Json;
                trace.api = "keyhole";
                trace.event_source = "keyhole".into();
                let Some(signed) = signed else {
                    return Err(S3Error::access_denied("Access Denied"));
                };
                if let Some(a) = parts
                    .headers
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .and_then(crate::jobs::Action::from_target)
                {
                    trace.op_name = a.name();
                }
                // The keyhole API's JSON body is small and signed, like a Query form.
                let (raw, principal, verified) = read_and_verify(
                    &gw,
                    &parts,
                    incoming,
                    signed,
                    now,
                    crate::jobs::MAX_API_BODY_BYTES,
                    &mut trace,
                )
                .await?;
                let account_id = &gw.account.record.account_id;
                let call = crate::jobs::describe(&gw, &parts.headers, &raw)?;
                let mut context = context::global(&RequestFacts {
                    now,
                    source_ip: base.source_ip,
                    secure: base.tls,
                    headers: &parts.headers,
                    region: &gw.config.region,
                    account_id,
                    principal: &principal,
                    verified: Some(&verified),
                });
                crate::jobs::add_context(&call, &mut context);
                let owner = crate::jobs::is_owner(&principal, &call, account_id);
                let (decided, statements) = if owner {
                    (Ok(()), Vec::new())
                } else {
                    gw.authz
                        .authorize_explained(&principal, &call.permission, &context)
                };
                let mut record = check_record(&principal, &call.permission, &decided, statements);
                if owner {
                    record.reason = "allowed: the caller created this job".into();
                }
                trace.checks.push(record);
                decided?;
                // Write-ahead, as for S3 writes: the call is on record before anything changes
                // (and a report built after it sees every event queued before it).
                let intent = trace.event(&gw, &base, Stage::Authorized);
                if let Err(e) = gw.audit.record_durable(intent).await {
                    if !gw.config.audit_fail_open {
                        tracing::error!(error = %e, "refusing a keyhole API call: audit trail unavailable");
                        return Err(audit_unavailable());
                    }
                }
                return crate::jobs::execute(&gw, &principal, call, base.source_ip, now).await;
            }
            Some(other) => {
                trace.api = "other";
                return Err(S3Error::not_implemented(&format!(
                    "the `{other}` service (this release serves S3, IAM, STS and keyhole)"
                )));
            }
        }
        let (principal, verified) = match signed {
            None => (Principal::Anonymous, None),
            Some(signed) => {
                let claimed = signed.access_key_id().to_owned();
                let (p, v) = gw
                    .authn
                    .verify(signed, &parts.method, &parts.uri, &parts.headers, now, None)
                    .inspect_err(|_| {
                        trace.authn_failed = true;
                        trace.identity.access_key_id = Some(claimed);
                    })?;
                (p, Some(v))
            }
        };
        trace.identity = identity_of(&principal, &gw.account.record.account_id);
        let query = Query::parse(parts.uri.query());
        let copy_source = header_str(&parts.headers, "x-amz-copy-source")?;
        let control = Op::route_control(
            &parts.method,
            parts.uri.path(),
            header_str(&parts.headers, "x-amz-account-id")?,
        );
        let op = match control {
            Some(op) => op?,
            None => Op::route(
                &parts.method,
                bucket.as_deref(),
                key.as_deref(),
                &query,
                copy_source,
            )?,
        };
        // S3 Control requests name no bucket: their path is not a bucket and key.
        let (bucket, key) = if control_op(&op) {
            trace.bucket = None;
            trace.key = None;
            (None, None)
        } else {
            (bucket, key)
        };
        trace.op_name = op.name();
        if matches!(op, Op::ListObjects | Op::ListObjectsV2) {
            trace.prefix = query.get("prefix").map(str::to_owned);
        }
        let bucket = bucket.unwrap_or_default();
        let key = key.unwrap_or_default();
        let access = op.access(&bucket, &key);
        // INVARIANT: every operation needs at least one check; an empty description is a bug
        // and must fail closed.
        if access.upfront.is_empty() && access.per_key.is_none() {
            return Err(S3Error::access_denied("Access Denied"));
        }
        let mut context = context::global(&RequestFacts {
            now,
            source_ip: base.source_ip,
            secure: base.tls,
            headers: &parts.headers,
            region: &gw.config.region,
            account_id: &gw.account.record.account_id,
            principal: &principal,
            verified: verified.as_ref(),
        });
        context::add_s3(&mut context, &op, &query, &parts.headers);
        let wants_tags = wants_existing_object_tags(&gw, &principal, &bucket);
        for permission in &access.upfront {
            let (decided, statements) = match wants_tags
                .then(|| with_existing_object_tags(&gw, permission, &context))
                .flatten()
            {
                Some(tagged) => gw.authz.authorize_explained(&principal, permission, &tagged),
                None => gw.authz.authorize_explained(&principal, permission, &context),
            };
            trace
                .checks
                .push(check_record(&principal, permission, &decided, statements));
            decided?;
        }
        // Write-ahead: the request's `authorized` record is made durable while the request goes
        // on; handlers wait for it before anything changes (`Ctx::before_change`).
        let write_ahead = if mutating {
            crate::audit::WriteAhead::start(&gw.audit, trace.event(&gw, &base, Stage::Authorized))
                .await
        } else {
            crate::audit::WriteAhead::none()
        };
        let expected = declared_length(&parts.headers, verified.as_ref())?;
        let body = BodyReader::new(incoming, &parts.headers, verified.as_ref(), expected)
            .counting(trace.bytes_in.clone());
        let ctx = Ctx {
            gw: &gw,
            principal: &principal,
            bucket,
            key,
            query,
            headers: &parts.headers,
            declared_length: expected,
            context,
            checks: &trace.checks,
            write_ahead: &write_ahead,
            audit_fail_open: gw.config.audit_fail_open,
        };
        s3::dispatch(op, ctx, body).await
    }
    .await;

    let (response, error) = match outcome {
        Ok(r) => (r, None),
        Err(e) => {
            let r = error_response(
                e,
                &err_bucket,
                &err_key,
                &resource,
                &request_id,
                is_head,
                format,
            );
            (r.0, Some(r.1))
        }
    };
    tracing::info!(
        request_id = %request_id,
        %peer,
        method = %parts.method,
        op = trace.op_name,
        principal = trace.identity.kind.as_str(),
        status = response.status().as_u16(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "request"
    );
    let durable = mutating && response.status().is_success();
    let mut response = response;
    if error.is_some() && declares_body(&parts.headers) {
        // The body may be unread (errors are answered before it is consumed, and a client that
        // sent `Expect: 100-continue` may never send it): this connection cannot be reused
        // safely, so close it after the response instead of misreading the next request.
        response
            .headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    let response = complete(&gw, trace, &base, response, durable, error).await;
    if durable && response.status() == StatusCode::SERVICE_UNAVAILABLE {
        return finish(
            error_response(
                audit_unavailable(),
                &err_bucket,
                &err_key,
                &resource,
                &request_id,
                is_head,
                format,
            )
            .0,
            &request_id,
        );
    }
    finish(response, &request_id)
}

/// Whether a policy that can decide this request refers to `s3:ExistingObjectTag/*`: only then
/// are the object's tags read (issue 4: "read only when a policy in play references it").
fn wants_existing_object_tags(gw: &Gateway, principal: &Principal, bucket: &str) -> bool {
    let refers = |p: &keyhole_policy::CompiledPolicy| {
        p.context_keys()
            .iter()
            .any(|k| k.starts_with("s3:existingobjecttag/"))
    };
    let snapshot = gw.state.snapshot();
    if snapshot
        .bucket_policies
        .get(bucket)
        .is_some_and(|p| refers(p))
    {
        return true;
    }
    match principal {
        Principal::User {
            policies, boundary, ..
        } => policies.iter().any(refers) || boundary.as_deref().is_some_and(refers),
        Principal::Session {
            role_policies,
            session_policies,
            boundary,
            ..
        } => {
            role_policies.iter().any(refers)
                || session_policies.iter().flat_map(|l| l.iter()).any(refers)
                || boundary.as_deref().is_some_and(refers)
        }
        Principal::Root { .. } | Principal::Anonymous => false,
    }
}

/// The context plus `s3:ExistingObjectTag/KEY` for each tag of the object `permission` names,
/// when its action accepts that key (AWS supplies it only to those actions:
/// https://docs.aws.amazon.com/AmazonS3/latest/userguide/tagging-and-policies.html). `None`
/// when nothing applies (not an object, an action without the key, or no such object).
fn with_existing_object_tags(
    gw: &Gateway,
    permission: &crate::s3::route::Permission,
    context: &keyhole_policy::Context,
) -> Option<keyhole_policy::Context> {
    let action = keyhole_policy::s3::action(permission.action)?;
    if !keyhole_policy::s3::action_accepts_key(action, "s3:ExistingObjectTag/k") {
        return None;
    }
    let (bucket, key) = permission
        .resource
        .strip_prefix("arn:aws:s3:::")?
        .split_once('/')?;
    let tags = gw.store.get_tags(bucket, key).ok()?;
    let mut tagged = context.clone();
    for (k, v) in tags {
        tagged.insert(&format!("s3:ExistingObjectTag/{k}"), v);
    }
    Some(tagged)
}

/// Reads a small signed body (capped at `limit`), hashes it and verifies the signature over it
/// (Query-protocol forms and keyhole API JSON sign their body without always declaring its
/// hash); records the caller (or the key claimed, when verification fails) in `trace`.
async fn read_and_verify(
    gw: &Gateway,
    parts: &http::request::Parts,
    incoming: Incoming,
    signed: keyhole_sigv4::SignedRequest,
    now: chrono::DateTime<chrono::Utc>,
    limit: usize,
    trace: &mut Trace,
) -> Result<(Vec<u8>, Principal, keyhole_sigv4::VerifiedRequest), S3Error> {
    let expected = declared_length(&parts.headers, None)?;
    let raw = BodyReader::new(incoming, &HeaderMap::new(), None, expected)
        .counting(trace.bytes_in.clone())
        .read_limited(limit)
        .await?;
    let hash = keyhole_sigv4::sha256_hex(&raw);
    let claimed = signed.access_key_id().to_owned();
    let (principal, verified) = gw
        .authn
        .verify(
            signed,
            &parts.method,
            &parts.uri,
            &parts.headers,
            now,
            Some(&hash),
        )
        .inspect_err(|_| {
            trace.authn_failed = true;
            trace.identity.access_key_id = Some(claimed);
        })?;
    trace.identity = identity_of(&principal, &gw.account.record.account_id);
    Ok((raw, principal, verified))
}

/// The audit record of one authorization check.
pub(crate) fn check_record(
    principal: &Principal,
    permission: &crate::s3::route::Permission,
    decided: &Result<(), S3Error>,
    statements: Vec<String>,
) -> Check {
    let (decision, reason) = match decided {
        Ok(()) => (
            Decision::Allow,
            format!("allowed for the {} principal", principal.kind()),
        ),
        Err(e) => (Decision::Deny, e.message().to_owned()),
    };
    Check {
        action: permission.action.to_owned(),
        resource: permission.resource.clone(),
        decision,
        reason,
        statements,
    }
}

/// How an API spells its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorFormat {
    /// S3 REST: `<Error>` XML.
    S3,
    /// IAM and STS (Query protocol): `<ErrorResponse>` XML.
    Query,
    /// The keyhole API (AWS JSON 1.1): `{"__type": ..., "message": ...}`.
    Json,
}

/// Renders an error as S3 XML; returns the response and the (code, message) for the event.
fn error_response(
    mut e: S3Error,
    err_bucket: &Option<String>,
    err_key: &Option<String>,
    resource: &str,
    request_id: &str,
    is_head: bool,
    format: ErrorFormat,
) -> (Response<Body>, (String, String)) {
    // Name the bucket and key in the body as S3 does for these codes.
    match (e.code(), err_bucket, err_key) {
        ("NoSuchKey", _, Some(k)) => e = e.with("Key", k.clone()),
        ("NoSuchBucket" | "BucketNotEmpty" | "BucketAlreadyOwnedByYou", Some(b), _) => {
            e = e.with("BucketName", b.clone());
        }
        _ => {}
    }
    let status = e.status();
    let (body, content_type) = match format {
        _ if is_head => (body::empty(), None),
        ErrorFormat::Query => (
            body::full(e.to_query_xml(request_id)),
            Some("application/xml"),
        ),
        ErrorFormat::S3 => (
            body::full(e.to_xml(resource, request_id)),
            Some("application/xml"),
        ),
        ErrorFormat::Json => (
            body::full(crate::jobs::error_json(&e)),
            Some("application/x-amz-json-1.1"),
        ),
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    if let Some(t) = content_type {
        r.headers_mut()
            .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(t));
    }
    tracing::info!(code = e.code(), message = e.message(), "request failed");
    (r, (e.code().to_owned(), e.message().to_owned()))
}

/// Records the request's `completed` event and metrics. With `durable`, waits until the event is
/// on disk and, if it cannot be written (and the sink fails closed), answers 503 instead;
/// otherwise the event is written when the response body ends, with the bytes actually sent.
async fn complete(
    gw: &Arc<Gateway>,
    trace: Trace,
    base: &EventBase,
    response: Response<Body>,
    durable: bool,
    error: Option<(String, String)>,
) -> Response<Body> {
    let mut event = trace.event(gw, base, Stage::Completed);
    event.http_status = Some(response.status().as_u16());
    if let Some((code, message)) = error {
        event.error_code = Some(code);
        event.error_message = Some(message);
    }
    let (api, op) = (trace.api, trace.op_name);
    if durable {
        let size = http_body::Body::size_hint(response.body()).exact();
        event.bytes_out = size.unwrap_or(0);
        let sample = sample_of(&event, api, op);
        if let Err(e) = gw.audit.record_durable(event).await {
            if !gw.config.audit_fail_open {
                tracing::error!(error = %e, "a completed write could not be audited: answering 503");
                // The client gets a 503 and no body: count what it got.
                gw.metrics.record(&RequestSample {
                    status: StatusCode::SERVICE_UNAVAILABLE.as_u16(),
                    bytes_out: 0,
                    ..sample
                });
                let mut r = Response::new(body::empty());
                *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                return r;
            }
            tracing::warn!(error = %e, "audit trail unavailable; acknowledging anyway (audit_fail_open)");
        }
        gw.metrics.record(&sample);
        return response;
    }
    let expected = http_body::Body::size_hint(response.body())
        .exact()
        .or_else(|| {
            response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
        });
    let (parts, inner) = response.into_parts();
    let audited = AuditedBody {
        inner,
        sent: 0,
        expected,
        pending: Some(Pending {
            gw: gw.clone(),
            event,
            api,
            op,
            started: base.started,
        }),
    };
    Response::from_parts(parts, http_body_util::BodyExt::boxed(audited))
}

fn record_metrics(gw: &Gateway, event: &AuditEvent, api: &'static str, op: &'static str) {
    gw.metrics.record(&sample_of(event, api, op));
}

/// The metrics sample of a request's event.
fn sample_of(event: &AuditEvent, api: &'static str, op: &'static str) -> RequestSample {
    RequestSample {
        api,
        operation: op,
        decision: match event.decision {
            Some(Decision::Allow) => "Allow",
            Some(Decision::Deny) => "Deny",
            None => "None",
        },
        status: event.http_status.unwrap_or(0),
        duration: Duration::from_secs_f64(event.duration_ms / 1000.0),
        bytes_in: event.bytes_in,
        bytes_out: event.bytes_out,
    }
}

/// An event waiting for its response body to end.
struct Pending {
    gw: Arc<Gateway>,
    event: AuditEvent,
    api: &'static str,
    op: &'static str,
    started: Instant,
}

/// A response body that counts what it sends and records the request's event when it ends
/// (all declared bytes sent, end of stream, or dropped because the client went away).
struct AuditedBody {
    inner: Body,
    sent: u64,
    expected: Option<u64>,
    pending: Option<Pending>,
}

impl AuditedBody {
    fn record(&mut self) {
        if let Some(mut p) = self.pending.take() {
            p.event.bytes_out = self.sent;
            p.event.duration_ms = p.started.elapsed().as_secs_f64() * 1000.0;
            record_metrics(&p.gw, &p.event, p.api, p.op);
            p.gw.audit.record_detached(p.event);
        }
    }
}

impl http_body::Body for AuditedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    self.sent += d.len() as u64;
                }
                if self.expected.is_some_and(|n| self.sent >= n) || self.inner.is_end_stream() {
                    self.record();
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.record(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AuditedBody {
    fn drop(&mut self) {
        self.record();
    }
}

fn finish(mut response: Response<Body>, request_id: &str) -> Response<Body> {
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amz-request-id", v.clone());
        h.insert("x-amz-id-2", v);
    }
    h.insert(http::header::SERVER, HeaderValue::from_static("keyhole"));
    response
}

/// Whether a request announces a body (a non-zero `Content-Length`, or chunked transfer).
fn declares_body(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

fn control_op(op: &Op) -> bool {
    matches!(
        op,
        Op::GetAccountPublicAccessBlock
            | Op::PutAccountPublicAccessBlock
            | Op::DeleteAccountPublicAccessBlock
    )
}

/// The operation name of a Query-protocol request for logs, metrics and audit: a served action's
/// own (static) name, or `Unknown`.
fn query_op_name(api: &str, action: Option<&str>) -> &'static str {
    let action = action.unwrap_or("");
    if api == "iam" {
        crate::iam::IamAction::parse(action).map_or("Unknown", crate::iam::IamAction::name)
    } else {
        match action {
            "AssumeRole" => "AssumeRole",
            "GetSessionToken" => "GetSessionToken",
            "GetCallerIdentity" => "GetCallerIdentity",
            _ => "Unknown",
        }
    }
}

/// A header as text; a header that is not valid text is a client error.
pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, S3Error> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| S3Error::invalid_argument(format!("header `{name}` is not valid text"))),
    }
}

/// The payload length the client declared: `x-amz-decoded-content-length` for aws-chunked bodies,
/// otherwise `Content-Length`.
fn declared_length(
    headers: &HeaderMap,
    verified: Option<&keyhole_sigv4::VerifiedRequest>,
) -> Result<Option<u64>, S3Error> {
    let streaming = verified.is_some_and(|v| {
        matches!(
            v.payload(),
            keyhole_sigv4::PayloadHash::StreamingSigned { .. }
                | keyhole_sigv4::PayloadHash::StreamingUnsignedTrailer
        )
    });
    let name = if streaming {
        "x-amz-decoded-content-length"
    } else {
        "content-length"
    };
    match header_str(headers, name)? {
        None if streaming => Err(S3Error::new(
            "MissingContentLength",
            StatusCode::LENGTH_REQUIRED,
            "You must provide the Content-Length HTTP header (x-amz-decoded-content-length for aws-chunked uploads).",
        )),
        None => Ok(None),
        Some(v) => v.trim().parse::<u64>().map(Some).map_err(|_| {
            S3Error::invalid_argument(format!("header `{name}` must be a non-negative integer"))
        }),
    }
}

/// Finds the bucket and key: virtual-host style when the Host is `BUCKET.DOMAIN`, path style
/// otherwise. The key is the percent-decoded rest of the path, exactly (no normalization).
fn locate(
    gw: &Gateway,
    headers: &HeaderMap,
    path: &str,
) -> Result<(Option<String>, Option<String>), S3Error> {
    let decode = |s: &str| -> Result<String, S3Error> {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| {
                S3Error::new(
                    "InvalidURI",
                    StatusCode::BAD_REQUEST,
                    "Couldn't parse the specified URI: it is not valid UTF-8 after percent-decoding.",
                )
            })
    };
    let rest = path.strip_prefix('/').unwrap_or(path);
    if let Some(domain) = &gw.config.domain {
        let host = header_str(headers, "host")?.unwrap_or("");
        let host = host
            .rsplit_once(':')
            .map_or(host, |(h, _)| h)
            .to_ascii_lowercase();
        if let Some(bucket) = host
            .strip_suffix(domain.as_str())
            .and_then(|b| b.strip_suffix('.'))
        {
            if !bucket.is_empty() {
                let key = (!rest.is_empty()).then(|| decode(rest)).transpose()?;
                return Ok((Some(bucket.to_owned()), key));
            }
        }
    }
    if rest.is_empty() {
        return Ok((None, None));
    }
    match rest.split_once('/') {
        None => Ok((Some(decode(rest)?), None)),
        Some((b, "")) => Ok((Some(decode(b)?), None)),
        Some((b, k)) => Ok((Some(decode(b)?), Some(decode(k)?))),
    }
}
