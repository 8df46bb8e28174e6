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
use crate::audit::{self, AuditEvent, Checks, Decision};
use crate::auth::Principal;
use crate::authz::AuthorizedCall;
use crate::body::{self, Body, BodyReader};
use crate::context::{self, RequestFacts};
use crate::endpoint::Call;
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
    upper_hex_u64(rand::thread_rng().gen::<u64>())
}

/// `n` as 16 uppercase hex digits, what `format!("{n:016X}")` writes, without the formatting
/// machinery (issue 16: every request makes one).
fn upper_hex_u64(n: u64) -> String {
    (0..16)
        .rev()
        .map(|i| char::from_digit(((n >> (i * 4)) & 0xf) as u32, 16).unwrap_or('0'))
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// What the pipeline learns about a request as it goes, for its audit event.
#[derive(Clone)]
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
    /// The request's parameters beyond bucket and key (CloudTrail's `requestParameters`).
    params: serde_json::Map<String, serde_json::Value>,
    /// What the handler returned that the trail keeps (CloudTrail's `responseElements`).
    response_elements: Option<serde_json::Value>,
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
            params: serde_json::Map::new(),
            response_elements: None,
        }
    }

    /// The trace of a request before routing: an S3 request of unknown operation and caller,
    /// until routing and authentication learn better.
    fn unknown() -> Trace {
        Trace::new(
            "s3",
            "s3.amazonaws.com",
            "Unknown",
            UserIdentity {
                kind: "Unknown".into(),
                ..UserIdentity::default()
            },
        )
    }

    fn event(&self, gw: &Gateway, base: &EventBase, stage: Stage) -> AuditEvent {
        self.clone().into_event(gw, base, stage)
    }

    /// [`Trace::event`] of a finished request: what the trace holds moves into the event.
    fn into_event(self, gw: &Gateway, base: &EventBase, stage: Stage) -> AuditEvent {
        let (resources, authorization) = decided(&self.checks);
        let decision = if self.authn_failed {
            Some(Decision::Deny)
        } else {
            self.checks.decision()
        };
        AuditEvent {
            event_version: audit::event::EVENT_VERSION.to_owned(),
            event_time: base.event_time.clone(),
            event_source: self.event_source,
            event_name: self.op_name.to_owned(),
            api: self.api.to_owned(),
            stage,
            aws_region: gw.config.region.clone(),
            request_id: base.request_id.clone(),
            source_ip_address: base.source_ip_text.clone(),
            user_agent: base.user_agent.clone(),
            user_identity: self.identity,
            request_parameters: RequestParameters {
                bucket_name: self.bucket,
                key: self.key,
                prefix: self.prefix,
                other: self.params,
            },
            response_elements: self.response_elements,
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
            // Stamped by the sink.
            node: None,
        }
    }
}

/// Requests whose write-ahead record their handler queues: DeleteObjects (with the keys its
/// body names) and the object subresource writes decided once their document is read
/// (`Access::per_key`), whose record must not exist unless they are allowed (AUDIT.md: an
/// `authorized` record is the write-ahead record of a request that passed authorization).
fn decided_by_handler(endpoint: crate::endpoint::Endpoint) -> bool {
    use crate::s3::route::Op;
    matches!(
        endpoint,
        crate::endpoint::Endpoint::S3(
            Op::DeleteObjects
                | Op::PutObjectTagging
                | Op::PutObjectRetention
                | Op::PutObjectLegalHold
        )
    )
}

/// The resources and checks of every decision made so far.
fn decided(checks: &Checks) -> (Vec<Resource>, Vec<audit::Check>) {
    let authorization = checks.snapshot();
    let resources = authorization
        .iter()
        .filter_map(|c| Resource::for_arn(&c.resource))
        .fold(Vec::<Resource>::new(), |mut acc, r| {
            if !acc.contains(&r) {
                acc.push(r);
            }
            acc
        });
    (resources, authorization)
}

/// Puts in a write-ahead record the decisions its handler made after the record was made (a
/// request decided by its handler: its record is queued only once it is allowed).
pub(crate) fn record_decisions(event: &mut AuditEvent, checks: &Checks) {
    let (resources, authorization) = decided(checks);
    event.resources = resources;
    event.authorization = authorization;
    event.decision = checks.decision();
}

/// Facts about a request known on arrival.
struct EventBase {
    started: Instant,
    event_time: String,
    request_id: String,
    /// The client address: the TCP peer, or behind a trusted proxy its X-Forwarded-For client.
    source_ip: IpAddr,
    /// `source_ip` as text (formatted once: the audit record and `aws:SourceIp` both use it).
    source_ip_text: String,
    /// The request arrived over TLS.
    tls: bool,
    user_agent: Option<String>,
}

/// The record of a request the HTTP layer refused before keyhole saw it: a head it could not
/// parse (400), one too large (431) or a URI too long (414), answered by hyper itself, or an
/// HTTP/2 preface (closed unanswered: `status` None), never routed. The record has what is
/// known: the time, the peer, the status, `code` and hyper's reason; its
/// request id is made here (the automatic answer carries none), its operation is `Unknown` and
/// its caller `Unknown`, with no decision (refused before authorization). `started` is when the
/// connection began waiting for this head.
pub(crate) fn unparsed_request_event(
    gw: &Gateway,
    peer: SocketAddr,
    tls: bool,
    started: Instant,
    status: Option<u16>,
    code: &str,
    reason: &str,
) -> AuditEvent {
    let base = EventBase {
        started,
        event_time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        request_id: new_request_id(),
        source_ip: peer.ip(),
        source_ip_text: peer.ip().to_string(),
        tls,
        user_agent: None,
    };
    let trace = Trace::unknown();
    let mut event = trace.into_event(gw, &base, Stage::Completed);
    event.http_status = status;
    event.error_code = Some(code.to_owned());
    event.error_message = Some(format!("the HTTP request could not be read: {reason}"));
    event
}

fn identity_of(principal: &Principal, account_id: &str) -> UserIdentity {
    let principal_id = principal.unique_id(account_id);
    match principal {
        Principal::Root { access_key_id } => UserIdentity {
            kind: "Root".into(),
            principal_id,
            arn: Some(principal.arn(account_id)),
            account_id: Some(account_id.to_owned()),
            access_key_id: Some(access_key_id.clone()),
            ..UserIdentity::default()
        },
        // CloudTrail's IAMUser carries `userName` too: the name at the time of the request, so
        // a record stays readable after a rename (`principalId` is what never changes).
        Principal::User {
            name,
            arn,
            access_key_id,
            ..
        } => UserIdentity {
            kind: "IAMUser".into(),
            principal_id,
            arn: Some(arn.clone()),
            account_id: Some(account_id.to_owned()),
            access_key_id: Some(access_key_id.clone()),
            user_name: Some(name.clone()),
            ..UserIdentity::default()
        },
        Principal::Session { claims, arn, .. } => UserIdentity {
            kind: principal.kind().into(),
            principal_id,
            job: claims.job.clone(),
            arn: Some(arn.clone()),
            account_id: Some(account_id.to_owned()),
            access_key_id: Some(claims.ak.clone()),
            session_name: Some(claims.session.clone()),
            source_identity: claims.source_identity.clone(),
            ..UserIdentity::default()
        },
        Principal::JobToken { job, arn } => UserIdentity {
            kind: "JobToken".into(),
            job: Some(job.record.id.clone()),
            arn: Some(arn.clone()),
            account_id: Some(account_id.to_owned()),
            ..UserIdentity::default()
        },
        // CloudTrail's WebIdentityUser: principalId `PROVIDER:AUD:SUB`, userName the `sub`,
        // identityProvider the provider (the token itself is never recorded).
        Principal::WebIdentity { identity, .. } => UserIdentity {
            kind: "WebIdentityUser".into(),
            principal_id,
            arn: Some(identity.provider_arn.clone()),
            account_id: Some(account_id.to_owned()),
            user_name: Some(identity.sub.clone()),
            identity_provider: Some(identity.provider.clone()),
            ..UserIdentity::default()
        },
        Principal::Anonymous => UserIdentity {
            kind: "AnonymousPrincipal".into(),
            ..UserIdentity::default()
        },
    }
}

/// The audit trail cannot record a mutating request: `503 ServiceUnavailable`, or `507
/// InsufficientStorage` when its last write failed for want of space (retrying cannot help
/// until space is freed, and SDKs retry 503s).
pub(crate) fn audit_unavailable(gw: &Gateway) -> S3Error {
    if gw
        .metrics
        .sink
        .storage_full
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return S3Error::storage_full(
            "the audit trail cannot record this request, so it was refused and nothing was changed",
        );
    }
    S3Error::new(
        "ServiceUnavailable",
        StatusCode::SERVICE_UNAVAILABLE,
        "The audit trail cannot be written, so this request was refused. Please try again later.",
    )
}

/// Which API a request is for, decided before authentication: by path for the two endpoints
/// that are not signed with SigV4, otherwise by the signature's credential scope (S3 when the
/// request is not signed at all).
enum Route {
    /// `GET /metrics`.
    Metrics,
    /// `GET /_keyhole/credentials` (a job's bearer token).
    JobCredentials,
    /// S3 REST, signed or anonymous.
    S3(Option<keyhole_sigv4::SignedRequest>),
    /// A browser-form upload (PostObject) to this bucket: its signature is in the form's fields
    /// ([`crate::s3::post`]).
    PostObject(Option<String>),
    /// IAM or STS (Query protocol: the action is in the signed form body); the signature is
    /// taken by authentication.
    Query(QueryApi, Option<keyhole_sigv4::SignedRequest>),
    /// The keyhole API (AWS JSON 1.1: `X-Amz-Target`, a signed JSON body).
    Keyhole(Option<keyhole_sigv4::SignedRequest>),
    /// Access Analyzer (REST-JSON, a signed JSON body).
    AccessAnalyzer(keyhole_sigv4::SignedRequest),
}

/// The two Query-protocol APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueryApi {
    Iam,
    Sts,
}

/// Who sent a request, and its body as the API reads it.
struct Caller {
    principal: Principal,
    verified: Option<keyhole_sigv4::VerifiedRequest>,
    payload: Payload,
}

/// A request's body: streamed to the handler (S3), or already read because the signature covers
/// it (Query forms, keyhole API JSON), or not used.
enum Payload {
    Stream(Incoming),
    /// A browser-form upload: its fields read, its file still streaming.
    Post(Box<crate::s3::post::PostForm>),
    Read(Vec<u8>),
    None,
}

/// Handles one request end to end, as a straight line of stages: route → authenticate →
/// describe → authorize → (write-ahead) → handle → audit. Never fails: errors become the API's
/// error responses, logged once here.
///
/// The stages' state is large (every handler's future; about 10 KiB in a release build), and a
/// future is copied whole each time it moves, used or not: hyper's service call and the
/// wrappers around it moved it three times per request, and `Box::pin` of it twice more
/// (issue 16: 10,000-15,000 instructions of `memcpy` per small GET, measured with callgrind).
/// This future holds only the arguments until it is first polled, and then the stages' future,
/// written straight into memory allocated for it (`Box::write` into `Box::new_uninit`: no copy).
pub async fn handle(
    gw: Arc<Gateway>,
    connection: Connection,
    req: Request<Incoming>,
    head: Judged,
) -> Response<Body> {
    // Into memory allocated first, so that the future can be made in place.
    let stages = Box::write(
        Box::new_uninit(),
        handle_stages(gw, connection, req, head.parsed),
    );
    Box::into_pin(stages).await
}

/// [`handle`]'s stages.
async fn handle_stages(
    gw: Arc<Gateway>,
    connection: Connection,
    req: Request<Incoming>,
    parsed: Option<Parsed>,
) -> Response<Body> {
    let peer = connection.peer;
    let started = Instant::now();
    let request_id = new_request_id();
    let (parts, incoming) = req.into_parts();
    let is_head = parts.method == Method::HEAD;
    if parts.uri.path() == "/healthz" && parts.method == Method::GET && parts.uri.query().is_none()
    {
        // Ready only when the snapshot is current enough to serve (a load balancer then
        // sends requests elsewhere); the reason is the body.
        let response = match gw.state.check_current() {
            Ok(()) => Response::new(body::full("ok\n")),
            Err(e) => {
                let mut r = Response::new(body::full(format!("not ready: {e}\n")));
                *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                r
            }
        };
        return finish(response, &request_id);
    }
    let source_ip = context::client_ip(peer.ip(), &parts.headers, &gw.trusted_proxies);
    let base = EventBase {
        started,
        event_time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        request_id: request_id.clone(),
        source_ip,
        source_ip_text: source_ip.to_string(),
        tls: connection.tls,
        user_agent: parts
            .headers
            .get(http::header::USER_AGENT)
            .map(|v| audit::event::clip_user_agent(&String::from_utf8_lossy(v.as_bytes()))),
    };
    let located = locate(&gw, &parts.headers, parts.uri.path());
    let (err_bucket, err_key) = match &located {
        Ok((b, k)) => (b.clone(), k.clone()),
        Err(_) => (None, None),
    };
    let mut trace = Trace::unknown();
    trace.bucket.clone_from(&err_bucket);
    trace.key.clone_from(&err_key);
    let mut format = ErrorFormat::S3;
    let mut mutating = false;
    let outcome: Result<Response<Body>, S3Error> = async {
        let now = chrono::Utc::now();
        let mut route = route(&parts, parsed, &err_bucket, &mut trace, &mut format)?;
        // Every later stage reads the snapshot: past its staleness bound, nothing is served
        // from it (a revocation it missed would not bind).
        gw.state.check_current()?;
        let caller = authenticate(&gw, &parts, incoming, &mut route, now, &mut trace).await?;
        let (call, context, query) =
            describe(&gw, &parts, route, &caller, located, &base, now, &mut trace)?;
        let endpoint = call.endpoint();
        trace.op_name = endpoint.name();
        mutating = endpoint.mutating(&parts.method);
        let authorized =
            crate::authz::authorize(&gw, &caller.principal, call, &context, &trace.checks).await?;
        // Write-ahead: the request's `authorized` record is queued now and made durable while
        // the request goes on; nothing changes before it is (S3 handlers wait in
        // `Ctx::before_change`, the control plane right here).
        let write_ahead = if mutating && decided_by_handler(endpoint) {
            // Queued by the handler once it has read which keys the body names (DeleteObjects)
            // or once it allowed the change its document asks for (the others): a refused
            // request leaves no `authorized` record.
            crate::audit::WriteAhead::deferred(
                &gw.audit,
                trace.event(&gw, &base, Stage::Authorized),
            )
        } else if mutating {
            // Boxed, for the size of every request's future (see `complete`).
            Box::pin(crate::audit::WriteAhead::start(
                &gw.audit,
                trace.event(&gw, &base, Stage::Authorized),
            ))
            .await
        } else {
            crate::audit::WriteAhead::none()
        };
        let (response, elements) = execute(
            &gw,
            &parts,
            authorized.split(),
            caller,
            context,
            query,
            &write_ahead,
            &trace,
            &base,
            now,
        )
        .await?;
        trace.response_elements = elements;
        Ok(response)
    }
    .await;

    let (response, error) = match outcome {
        Ok(r) => (r, None),
        Err(e) => {
            let resource = match (&err_bucket, &err_key) {
                (Some(b), Some(k)) => format!("/{b}/{k}"),
                (Some(b), None) => format!("/{b}"),
                _ => "/".to_owned(),
            };
            let (r, err) = error_response(
                e,
                &err_bucket,
                &err_key,
                &resource,
                &request_id,
                is_head,
                format,
            );
            (r, Some(err))
        }
    };
    // The one log line of a request (errors are not logged where they are made).
    tracing::info!(
        request_id = %request_id,
        %peer,
        method = %parts.method,
        op = trace.op_name,
        principal = trace.identity.kind.as_str(),
        status = response.status().as_u16(),
        code = error.as_ref().map_or("", |(c, _)| c.as_str()),
        error = error.as_ref().map_or("", |(_, m)| m.as_str()),
        elapsed_us = started.elapsed().as_micros() as u64,
        "request"
    );
    let durable = mutating && response.status().is_success();
    let mut response = response;
    if trace.api == "s3" {
        // A cross-origin request gets its bucket's CORS headers, on errors too (as S3 does).
        crate::s3::cors::decorate(
            &gw,
            err_bucket.as_deref(),
            &parts.method,
            &parts.headers,
            response.headers_mut(),
        );
    }
    if error.is_some() && declares_body(&parts.headers) {
        // The body may be unread (errors are answered before it is consumed, and a client that
        // sent `Expect: 100-continue` may never send it): this connection cannot be reused
        // safely, so close it after the response instead of misreading the next request.
        response
            .headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    let response = complete(&gw, trace, &base, response, durable, error).await;
    finish(response, &request_id)
}

/// The route stage: which API the request is for, and how its errors are spelt.
/// The bytes of a request's head as sent: the request line and each `name: value` line.
fn head_size(parts: &http::request::Parts) -> usize {
    let uri = parts.uri.path_and_query().map_or(1, |p| p.as_str().len())
        + parts
            .uri
            .authority()
            .map_or(0, |a| a.as_str().len() + "http://".len());
    let line = parts.method.as_str().len() + 1 + uri + " HTTP/1.1\r\n".len();
    parts.headers.iter().fold(line + 2, |n, (name, value)| {
        n + name.as_str().len() + value.len() + 4
    })
}

fn route(
    parts: &http::request::Parts,
    parsed: Option<Parsed>,
    bucket: &Option<String>,
    trace: &mut Trace,
    format: &mut ErrorFormat,
) -> Result<Route, S3Error> {
    // The HTTP layer refuses a head still incomplete at this size, but one that arrived whole in
    // a single read may be up to about twice it; the bound is made exact here.
    let head = head_size(parts);
    if head > crate::listener::MAX_HEAD_BYTES {
        return Err(S3Error::new(
            "RequestHeaderSectionTooLarge",
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "the request line and headers take {head} bytes; at most {} are accepted",
                crate::listener::MAX_HEAD_BYTES
            ),
        ));
    }
    let path = parts.uri.path();
    // `GET /metrics` with no query is the metrics page; with one (`?list-type=2`, a signed or
    // presigned request) it is S3's, on a bucket named `metrics` (review 30, F5), as `/healthz`
    // is only the health check without one. `/_keyhole/...` names no bucket (no bucket name has
    // `_`).
    let metrics = path == "/metrics" && parts.method == Method::GET && parts.uri.query().is_none();
    let unsigned_endpoint =
        metrics || (path == crate::jobs::CREDENTIALS_PATH && parts.method == Method::GET);
    if unsigned_endpoint {
        // Their paths name no bucket or key.
        trace.bucket = None;
        trace.key = None;
    }
    if metrics {
        trace.api = "ops";
        trace.event_source = "keyhole".into();
        trace.op_name = crate::endpoint::Endpoint::Metrics.name();
        trace.identity.kind = "AnonymousPrincipal".into();
        return Ok(Route::Metrics);
    }
    if path == crate::jobs::CREDENTIALS_PATH && parts.method == Method::GET {
        *format = ErrorFormat::Json;
        trace.api = "keyhole";
        trace.event_source = "keyhole".into();
        trace.op_name = crate::endpoint::Endpoint::JobCredentials.name();
        trace.identity.kind = "JobToken".into();
        return Ok(Route::JobCredentials);
    }
    // Parsed once: by `judge` when it had to read the credential, else here.
    let parsed =
        parsed.unwrap_or_else(|| keyhole_sigv4::parse(&parts.method, &parts.uri, &parts.headers));
    let signed = match parsed.map_err(S3Error::from) {
        Ok(signed) => signed,
        Err(e) => {
            // A malformed signature is answered in the format of the service it names, so that
            // an IAM or STS client shows the real code instead of failing to parse S3's XML.
            trace.authn_failed = true;
            match claimed_service(parts).as_deref() {
                Some("iam") => route_query(trace, format, QueryApi::Iam),
                Some("sts") => route_query(trace, format, QueryApi::Sts),
                Some("keyhole") => {
                    *format = ErrorFormat::Json;
                    trace.api = "keyhole";
                    trace.event_source = "keyhole".into();
                }
                Some("access-analyzer") => route_analyzer(trace, format),
                _ => {}
            }
            return Err(e);
        }
    };
    if signed.is_none() && crate::s3::post::is_post_form(parts) {
        // Its signature is in its fields, read by the authenticate stage.
        trace.op_name = Op::PostObject.name();
        return Ok(Route::PostObject(bucket.clone()));
    }
    if signed.is_none() && is_unsigned_sts(parts) {
        // AssumeRoleWithWebIdentity is unsigned: its token authenticates it.
        route_query(trace, format, QueryApi::Sts);
        return Ok(Route::Query(QueryApi::Sts, None));
    }
    let service = signed.as_ref().map(|s| s.scope().service.clone());
    match service.as_deref() {
        None | Some("s3") => Ok(Route::S3(signed)),
        Some(api @ ("iam" | "sts")) => {
            let api = if api == "iam" {
                QueryApi::Iam
            } else {
                QueryApi::Sts
            };
            route_query(trace, format, api);
            signed
                .map(|s| Route::Query(api, Some(s)))
                .ok_or_else(|| S3Error::access_denied("Access Denied"))
        }
        Some("keyhole") => {
            *format = ErrorFormat::Json;
            trace.api = "keyhole";
            trace.event_source = "keyhole".into();
            if let Some(a) = parts
                .headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .and_then(crate::jobs::Action::from_target)
            {
                trace.op_name = a.name();
            }
            signed
                .map(|s| Route::Keyhole(Some(s)))
                .ok_or_else(|| S3Error::access_denied("Access Denied"))
        }
        Some("access-analyzer") => {
            route_analyzer(trace, format);
            signed
                .map(Route::AccessAnalyzer)
                .ok_or_else(|| S3Error::access_denied("Access Denied"))
        }
        Some(other) => {
            trace.api = "other";
            Err(S3Error::not_implemented(&format!(
                "the `{other}` service (this release serves S3, IAM, STS, Access Analyzer's ValidatePolicy and keyhole)"
            )))
        }
    }
}

fn route_analyzer(trace: &mut Trace, format: &mut ErrorFormat) {
    *format = ErrorFormat::RestJson;
    trace.api = "access-analyzer";
    trace.event_source = "access-analyzer.amazonaws.com".into();
    trace.op_name = "ValidatePolicy";
}

/// An unsigned STS Query request: a form POSTed to `/` (S3 has no such operation: its browser
/// uploads are `multipart/form-data`), or a GET of `/?Action=AssumeRoleWithWebIdentity...`.
fn is_unsigned_sts(parts: &http::request::Parts) -> bool {
    if parts.uri.path() != "/" {
        return false;
    }
    let form = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    match parts.method {
        Method::POST => form && parts.uri.query().is_none(),
        Method::GET => {
            Query::parse(parts.uri.query()).get("Action")
                == Some(crate::sts::StsAction::AssumeRoleWithWebIdentity.name())
        }
        _ => false,
    }
}

fn route_query(trace: &mut Trace, format: &mut ErrorFormat, api: QueryApi) {
    *format = ErrorFormat::Query(api);
    trace.api = match api {
        QueryApi::Iam => "iam",
        QueryApi::Sts => "sts",
    };
    trace.event_source = format!("{}.amazonaws.com", trace.api);
}

/// What SigV4's parser made of a request's head.
type Parsed = Result<Option<keyhole_sigv4::SignedRequest>, keyhole_sigv4::AuthError>;

/// [`judge`]'s answer, with the parse it read the credential from, if it parsed one: routing
/// reuses it instead of parsing the same head again (one parse per small GET, as before).
#[derive(Debug)]
pub struct Judged {
    /// Whether the request may change something.
    pub may_change: bool,
    parsed: Option<Parsed>,
}

/// Whether a request may change something, judged from its head alone and erring towards yes:
/// only a GET or HEAD that routing sends to S3 (its SigV4 credential, read by the parser routing
/// uses, names `s3`, or it has none) and that names a bucket or an object is surely a read. IAM,
/// STS and the keyhole API take GET too, `/` may be STS's unsigned AssumeRoleWithWebIdentity,
/// and `/_keyhole/...` issues job credentials (review 23, H1). The parser is routing's own, not a
/// scan of the text: `Credential =` or a percent-encoded `X-Amz-Credential` name reach IAM
/// through it (review 24).
pub fn judge<B>(req: &http::Request<B>) -> Judged {
    let path = req.uri().path();
    if !matches!(*req.method(), Method::GET | Method::HEAD)
        || path == "/"
        || path.starts_with("/_keyhole")
    {
        return Judged {
            may_change: true,
            parsed: None,
        };
    }
    let parsed = keyhole_sigv4::parse(req.method(), req.uri(), req.headers());
    let may_change = match &parsed {
        Ok(Some(signed)) => !signed.scope().service.eq_ignore_ascii_case("s3"),
        // Unsigned: S3 (anonymous). Malformed: refused before anything is changed.
        Ok(None) | Err(_) => false,
    };
    Judged {
        may_change,
        parsed: Some(parsed),
    }
}

/// The service a request's credential scope names (`AKID/DATE/REGION/SERVICE/aws4_request`, in
/// the `Authorization` header or `X-Amz-Credential`), read leniently from a request whose
/// signature could not be parsed: it only picks the error format.
fn claimed_service(parts: &http::request::Parts) -> Option<String> {
    let header = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once("Credential=").map(|(_, rest)| rest.to_owned()));
    let credential = header.or_else(|| {
        parts.uri.query()?.split('&').find_map(|pair| {
            let value = pair.strip_prefix("X-Amz-Credential=")?;
            Some(
                percent_encoding::percent_decode_str(value)
                    .decode_utf8_lossy()
                    .into_owned(),
            )
        })
    })?;
    let scope = credential.split([',', ' ']).next()?;
    let service = scope.split('/').nth(3)?;
    Some(service.to_ascii_lowercase())
}

/// The authenticate stage: verifies the signature (or the job token) and finds the principal.
/// Query forms and keyhole API JSON are read first (small, capped): their signature covers them.
async fn authenticate(
    gw: &Gateway,
    parts: &http::request::Parts,
    incoming: Incoming,
    route: &mut Route,
    now: chrono::DateTime<chrono::Utc>,
    trace: &mut Trace,
) -> Result<Caller, S3Error> {
    let account_id = &gw.account.record.account_id;
    let (signed, limit) = match route {
        Route::Metrics => {
            return Ok(Caller {
                principal: Principal::Anonymous,
                verified: None,
                payload: Payload::None,
            })
        }
        Route::JobCredentials => {
            let (principal, job) =
                gw.authn
                    .job_token(&parts.headers, &gw.config.region, account_id);
            trace.identity.job = job;
            let principal = principal.inspect_err(|_| trace.authn_failed = true)?;
            trace.identity = identity_of(&principal, account_id);
            return Ok(Caller {
                principal,
                verified: None,
                payload: Payload::None,
            });
        }
        Route::S3(signed) => (signed.take(), None),
        Route::PostObject(bucket) => {
            let bucket = bucket.clone();
            return post_caller(gw, parts, incoming, bucket, now, trace).await;
        }
        Route::Query(_, signed) => (signed.take(), Some(MAX_QUERY_BODY_BYTES)),
        Route::Keyhole(signed) => (signed.take(), Some(crate::jobs::MAX_API_BODY_BYTES)),
        Route::AccessAnalyzer(signed) => {
            (Some(signed.clone()), Some(crate::analyzer::MAX_BODY_BYTES))
        }
    };
    if signed.is_none() && limit.is_some() && matches!(route, Route::Query(QueryApi::Sts, _)) {
        return web_identity_caller(gw, parts, incoming, now, trace).await;
    }
    let Some(signed) = signed else {
        trace.identity = identity_of(&Principal::Anonymous, account_id);
        return Ok(Caller {
            principal: Principal::Anonymous,
            verified: None,
            payload: Payload::Stream(incoming),
        });
    };
    let claimed = signed.access_key_id().to_owned();
    // Kept for the record of a refusal: a job session's authentic token names its job.
    let token = signed.session_token().map(str::to_owned);
    let (principal, verified, payload) = if let Some(limit) = limit {
        // The body is signed, so it is read before the signature can be checked: first make sure
        // the key is one the gateway issued (an unknown key is refused without reading a byte),
        // and read the small body within the header timeout, as if it were part of the head, so
        // that nobody without credentials holds a connection busy with a slow body.
        gw.authn.known_key(&signed).inspect_err(|_| {
            trace.authn_failed = true;
            trace.identity.access_key_id = Some(claimed.clone());
        })?;
        let raw = read_small_body(gw, parts, incoming, limit, trace).await?;
        let hash = keyhole_sigv4::sha256_hex(&raw);
        let (p, v) = gw
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
                trace.identity.access_key_id = Some(claimed.clone());
                trace.identity.job = token
                    .as_deref()
                    .and_then(|t| gw.authn.token_job(t, &claimed));
            })?;
        (p, v, Payload::Read(raw))
    } else {
        let (p, v) = gw
            .authn
            .verify(signed, &parts.method, &parts.uri, &parts.headers, now, None)
            .inspect_err(|_| {
                trace.authn_failed = true;
                trace.identity.access_key_id = Some(claimed.clone());
                trace.identity.job = token
                    .as_deref()
                    .and_then(|t| gw.authn.token_job(t, &claimed));
            })?;
        (p, v, Payload::Stream(incoming))
    };
    record_key_use(gw, &principal, &verified, now);
    trace.identity = identity_of(&principal, account_id);
    Ok(Caller {
        principal,
        verified: Some(verified),
        payload,
    })
}

/// Authenticates a browser-form upload: reads its fields before `file` (bounded, within the
/// header timeout), verifies the policy's signature with the same key lookup as every SigV4
/// request (`Authenticator::verify`: users, sessions, jobs, revocations, expiry), then checks the
/// policy. A form without a policy is anonymous.
async fn post_caller(
    gw: &Gateway,
    parts: &http::request::Parts,
    incoming: Incoming,
    bucket: Option<String>,
    now: chrono::DateTime<chrono::Utc>,
    trace: &mut Trace,
) -> Result<Caller, S3Error> {
    let account_id = &gw.account.record.account_id;
    let Some(bucket) = bucket else {
        return Err(S3Error::new(
            "MethodNotAllowed",
            StatusCode::METHOD_NOT_ALLOWED,
            "The specified method `POST` is not allowed against this resource: a form upload is posted to a bucket.",
        ));
    };
    let deadline = std::time::Duration::from_secs(gw.config.header_timeout_secs.max(1));
    let form = crate::s3::post::read(
        parts,
        incoming,
        trace.bytes_in.clone(),
        deadline,
        gw.tls.is_some(),
    )
    .await?;
    let signed = crate::s3::post::signature(&form).inspect_err(|_| trace.authn_failed = true)?;
    let (principal, verified) = match signed {
        Some(signed) => {
            let claimed = signed.access_key_id().to_owned();
            let (p, v) = gw
                .authn
                .verify(signed, &parts.method, &parts.uri, &parts.headers, now, None)
                .inspect_err(|_| {
                    trace.authn_failed = true;
                    trace.identity.access_key_id = Some(claimed.clone());
                })?;
            (p, Some(v))
        }
        None => (Principal::Anonymous, None),
    };
    if let Some(v) = &verified {
        record_key_use(gw, &principal, v, now);
    }
    trace.identity = identity_of(&principal, account_id);
    // A form its own policy refuses is a denied write of the key it names: recorded so, with
    // that key, like any denial (review 11: such records had no decision and no key).
    let named = form.named_key();
    trace.key.clone_from(&named);
    let form =
        crate::s3::post::finish(form, &bucket, verified.is_some(), now).inspect_err(|e| {
            if e.code() == "AccessDenied" {
                trace.checks.push(crate::audit::event::Check::rule_denial(
                    "s3:PutObject",
                    crate::s3::route::object_arn(&bucket, named.as_deref().unwrap_or("")),
                    &format!("denied by the form's POST policy: {}", e.message()),
                ));
            }
        })?;
    trace.key = Some(form.key.clone());
    Ok(Caller {
        principal,
        verified,
        payload: Payload::Post(Box::new(form)),
    })
}

/// Key hygiene (`keys.rs`): a request whose signature verified with a long-term key (an IAM
/// user's or the root's, not temporary credentials) is a use of that key, whatever the decision
/// on it later (AWS records use of the key, not success); kept in memory, written in batches.
fn record_key_use(
    gw: &Gateway,
    principal: &Principal,
    verified: &keyhole_sigv4::VerifiedRequest,
    now: chrono::DateTime<chrono::Utc>,
) {
    let key = match principal {
        Principal::Root { access_key_id }
        | Principal::User {
            access_key_id,
            session: None,
            ..
        } => access_key_id,
        _ => return,
    };
    let scope = verified.scope();
    // STS may be signed with an empty region (see `Authenticator::verify`): it is this one.
    let region = if scope.region.is_empty() {
        gw.config.region.as_str()
    } else {
        scope.region.as_str()
    };
    gw.key_usage
        .record(key, now.timestamp_millis(), &scope.service, region);
}

/// Reads a small API body (a Query form) within the header timeout, as if it were part of the
/// head, so that nobody without credentials holds a connection busy with a slow body.
async fn read_small_body(
    gw: &Gateway,
    parts: &http::request::Parts,
    incoming: Incoming,
    limit: usize,
    trace: &Trace,
) -> Result<Vec<u8>, S3Error> {
    let expected = declared_length(&parts.headers, None)?;
    let no_headers = HeaderMap::new();
    let mut reader =
        BodyReader::new(incoming, &no_headers, None, expected).counting(trace.bytes_in.clone());
    let read = reader.read_limited(limit);
    let deadline = std::time::Duration::from_secs(gw.config.header_timeout_secs.max(1));
    tokio::time::timeout(deadline, read).await.map_err(|_| {
        S3Error::new(
            "RequestTimeout",
            StatusCode::BAD_REQUEST,
            format!(
                "the request body did not arrive within {} s (an API request's body is read before it is authenticated, so it is due with the head)",
                deadline.as_secs()
            ),
        )
    })?
}

/// Authenticates an unsigned STS request: only AssumeRoleWithWebIdentity may be unsigned, and
/// its `WebIdentityToken` must pass every check of [`crate::oidc`]; the caller is then the web
/// identity the token proves.
async fn web_identity_caller(
    gw: &Gateway,
    parts: &http::request::Parts,
    incoming: Incoming,
    now: chrono::DateTime<chrono::Utc>,
    trace: &mut Trace,
) -> Result<Caller, S3Error> {
    let raw = read_small_body(gw, parts, incoming, MAX_QUERY_BODY_BYTES, trace).await?;
    let form = if parts.method == Method::POST {
        Query::parse(Some(&String::from_utf8_lossy(&raw)))
    } else {
        Query::parse(parts.uri.query())
    };
    let action = form.get("Action").unwrap_or("");
    if action != crate::sts::StsAction::AssumeRoleWithWebIdentity.name() {
        trace.authn_failed = true;
        if let Some(a) = crate::sts::StsAction::parse(action) {
            trace.op_name = a.name();
        }
        return Err(S3Error::new(
            "MissingAuthenticationToken",
            StatusCode::FORBIDDEN,
            "Request is missing Authentication Token: sign it with SigV4 (only AssumeRoleWithWebIdentity is sent unsigned)",
        ));
    }
    trace.op_name = crate::sts::StsAction::AssumeRoleWithWebIdentity.name();
    let token = form
        .get("WebIdentityToken")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            trace.authn_failed = true;
            S3Error::new(
                "ValidationError",
                StatusCode::BAD_REQUEST,
                "1 validation error detected: Value null at 'webIdentityToken' failed to satisfy constraint: Member must not be null",
            )
        })?;
    let account_id = &gw.account.record.account_id;
    let (identity, tags) =
        crate::oidc::authenticate(&gw.state, &gw.oidc_keys, account_id, token, now.timestamp())
            .await
            .map_err(|e| {
                trace.authn_failed = true;
                trace.identity.kind = "WebIdentityUser".into();
                e.to_s3()
            })?;
    let principal = Principal::WebIdentity {
        identity: Arc::new(identity),
        tags: Arc::new(tags),
    };
    trace.identity = identity_of(&principal, account_id);
    Ok(Caller {
        principal,
        verified: None,
        payload: Payload::Read(raw),
    })
}

/// The describe stage: turns the request into the call its endpoint declares (what it needs and
/// its parameters) and the condition context. Names are validated here, before any decision:
/// a bucket name S3 would refuse is `InvalidBucketName`, never authorized.
#[expect(
    clippy::too_many_arguments,
    reason = "the stages' shared facts about one request"
)]
fn describe(
    gw: &Gateway,
    parts: &http::request::Parts,
    route: Route,
    caller: &Caller,
    located: Result<(Option<String>, Option<String>), S3Error>,
    base: &EventBase,
    now: chrono::DateTime<chrono::Utc>,
    trace: &mut Trace,
) -> Result<(Call, keyhole_policy::Context, Query), S3Error> {
    let account_id = &gw.account.record.account_id;
    let mut context = context::global(&RequestFacts {
        now,
        source_ip: &base.source_ip_text,
        secure: base.tls,
        headers: &parts.headers,
        region: &gw.config.region,
        account_id,
        principal: &caller.principal,
        verified: caller.verified.as_ref(),
    });
    // The S3 handlers read the query too: parsed once, here, and handed on.
    let mut uri_query = Query::default();
    let call = match route {
        Route::Metrics => Call::Metrics,
        Route::JobCredentials => Call::JobCredentials(crate::jobs::CredentialFetch {
            job_arn: caller.principal.arn(account_id),
        }),
        Route::PostObject(_) => {
            let (bucket, key) = located?;
            let Payload::Post(form) = &caller.payload else {
                return Err(S3Error::internal(std::io::Error::other(
                    "a PostObject without its form",
                )));
            };
            let (Some(bucket), None) = (bucket, key) else {
                return Err(S3Error::new(
                    "MethodNotAllowed",
                    StatusCode::METHOD_NOT_ALLOWED,
                    "The specified method `POST` is not allowed against this resource: a form upload is posted to its bucket, the key is a field.",
                ));
            };
            keyhole_store::validate_bucket_name(&bucket)?;
            let op = Op::PostObject;
            trace.op_name = op.name();
            trace.key = Some(form.key.clone());
            context::add_s3(
                &mut context,
                &op,
                &Query::default(),
                &form.headers,
                account_id,
            );
            crate::s3::refuse_case_variant_request_tags(&caller.principal, &form.headers)
                .inspect_err(|e| {
                    crate::s3::record_case_variant_refusal(&trace.checks, &bucket, &form.key, e);
                })?;
            Call::S3(crate::s3::S3Call::new(
                op,
                bucket,
                form.key.clone(),
                &form.headers,
                &Query::default(),
            )?)
        }
        Route::S3(_) => {
            let (bucket, key) = located?;
            let query = Query::parse(parts.uri.query());
            let control = Op::route_control(
                &parts.method,
                parts.uri.path(),
                header_str(&parts.headers, &crate::names::X_AMZ_ACCOUNT_ID)?,
            );
            let is_control = control.is_some();
            let op = match control {
                Some(op) => op?,
                None => Op::route(
                    &parts.method,
                    bucket.as_deref(),
                    key.as_deref(),
                    &query,
                    header_str(&parts.headers, &crate::names::X_AMZ_COPY_SOURCE)?,
                )?,
            };
            trace.op_name = op.name();
            // S3 Control requests name no bucket: their path is not a bucket and key.
            let (bucket, key) = if is_control {
                trace.bucket = None;
                trace.key = None;
                (String::new(), String::new())
            } else {
                (bucket.unwrap_or_default(), key.unwrap_or_default())
            };
            // Issue 10: `/bkt%2Fallowed/x` must not be authorized as `arn:aws:s3:::bkt/allowed/x`.
            if !bucket.is_empty() {
                keyhole_store::validate_bucket_name(&bucket)?;
            }
            if let Some(source) = op.copy_source() {
                keyhole_store::validate_bucket_name(&source.bucket)?;
            }
            if matches!(
                op,
                Op::ListObjects | Op::ListObjectsV2 | Op::ListObjectVersions
            ) {
                trace.prefix = query.get("prefix").map(str::to_owned);
            }
            // "If the account ID that you provide does not match the actual owner of the bucket,
            // the request fails with the HTTP status code 403 Forbidden (access denied)"
            // (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-owner-condition.html):
            // every bucket here belongs to this account.
            for header in [
                &crate::names::X_AMZ_EXPECTED_BUCKET_OWNER,
                &crate::names::X_AMZ_SOURCE_EXPECTED_BUCKET_OWNER,
            ] {
                if header_str(&parts.headers, header)?.is_some_and(|owner| owner != account_id) {
                    let refusal = S3Error::access_denied(format!(
                        "Access Denied: the bucket is not owned by the account named in `{header}`"
                    ));
                    // A rule's refusal, recorded as a denial of what the request asks of the
                    // bucket the header is about (review 18: it had no decision; review 19:
                    // the source's read for the source's owner).
                    let versioned = query.get("versionId").is_some();
                    let access = op.access(&bucket, &key, versioned);
                    let (action, resource) = match op.copy_source() {
                        Some(src) if header == crate::names::X_AMZ_SOURCE_EXPECTED_BUCKET_OWNER => {
                            (
                                if src.version_id.is_some() {
                                    "s3:GetObjectVersion"
                                } else {
                                    "s3:GetObject"
                                },
                                crate::s3::route::object_arn(&src.bucket, &src.key),
                            )
                        }
                        _ => match (access.upfront.first(), access.per_key) {
                            (Some(p), _) => (p.action, p.resource.clone()),
                            (None, Some(action)) if !key.is_empty() => {
                                (action, crate::s3::route::object_arn(&bucket, &key))
                            }
                            (None, action) => (
                                action.unwrap_or("s3:*"),
                                crate::s3::route::bucket_arn(&bucket),
                            ),
                        },
                    };
                    trace.checks.push(crate::audit::event::Check::rule_denial(
                        action,
                        resource,
                        refusal.message(),
                    ));
                    return Err(refusal);
                }
            }
            context::add_s3(&mut context, &op, &query, &parts.headers, account_id);
            crate::s3::refuse_case_variant_request_tags(&caller.principal, &parts.headers)
                .inspect_err(|e| {
                    crate::s3::record_case_variant_refusal(&trace.checks, &bucket, &key, e);
                })?;
            let call = crate::s3::S3Call::new(op, bucket, key, &parts.headers, &query)?;
            uri_query = query;
            Call::S3(call)
        }
        Route::Query(api, _) => {
            let raw = match &caller.payload {
                Payload::Read(raw) => raw.as_slice(),
                Payload::Stream(_) | Payload::Post(_) | Payload::None => &[],
            };
            let form = if parts.method == Method::POST {
                Query::parse(Some(&String::from_utf8_lossy(raw)))
            } else {
                Query::parse(parts.uri.query())
            };
            let action = form.get("Action").unwrap_or("");
            match api {
                QueryApi::Iam => {
                    if let Some(a) = crate::iam::IamAction::parse(action) {
                        trace.op_name = a.name();
                    }
                    Call::Iam(crate::iam::describe(gw, &caller.principal, form)?)
                }
                QueryApi::Sts => {
                    if let Some(a) = crate::sts::StsAction::parse(action) {
                        trace.op_name = a.name();
                    }
                    Call::Sts(crate::sts::describe(gw, &caller.principal, &form)?)
                }
            }
        }
        Route::AccessAnalyzer(_) => {
            let raw = match &caller.payload {
                Payload::Read(raw) => raw.as_slice(),
                Payload::Stream(_) | Payload::Post(_) | Payload::None => &[],
            };
            Call::ValidatePolicy(crate::analyzer::describe(
                &parts.method,
                parts.uri.path(),
                raw,
            )?)
        }
        Route::Keyhole(_) => {
            let raw = match &caller.payload {
                Payload::Read(raw) => raw.as_slice(),
                Payload::Stream(_) | Payload::Post(_) | Payload::None => &[],
            };
            Call::Keyhole(Box::new(crate::jobs::describe(
                gw,
                &caller.principal,
                &parts.headers,
                raw,
            )?))
        }
    };
    trace.params = call.audit_parameters();
    Ok((call, context, uri_query))
}

/// The handle stage: runs the authorized call's handler. Control-plane calls that change
/// something wait here until their write-ahead record is durable, and change nothing when it is
/// not (503), unless `audit_fail_open`.
#[expect(
    clippy::too_many_arguments,
    reason = "the stages' shared facts about one request"
)]
async fn execute(
    gw: &Arc<Gateway>,
    parts: &http::request::Parts,
    call: AuthorizedCall,
    caller: Caller,
    context: keyhole_policy::Context,
    query: Query,
    write_ahead: &crate::audit::WriteAhead,
    trace: &Trace,
    base: &EventBase,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(Response<Body>, Option<serde_json::Value>), S3Error> {
    let principal = &caller.principal;
    if let AuthorizedCall::S3(call) = call {
        if let Payload::Post(form) = caller.payload {
            let headers = form.headers.clone();
            let elements = std::sync::Mutex::new(None);
            let ctx = Ctx {
                gw,
                principal,
                bucket: call.call().bucket.clone(),
                key: call.call().key.clone(),
                query: Query::default(),
                headers: &headers,
                declared_length: None,
                context,
                checks: &trace.checks,
                write_ahead,
                audit_fail_open: gw.config.audit_fail_open,
                response_elements: &elements,
                version_id: None,
            };
            // Boxed, as are the other rare handlers below: a request's future holds the largest
            // of them, and it is moved whole (issue 16).
            let response = Box::pin(s3::dispatch_post(call, ctx, *form)).await?;
            return Ok((response, elements.into_inner().ok().flatten()));
        }
        let Payload::Stream(incoming) = caller.payload else {
            return Err(S3Error::internal(std::io::Error::other(
                "an S3 request without its body",
            )));
        };
        let expected = declared_length(&parts.headers, caller.verified.as_ref())?;
        // CompleteMultipartUpload's `x-amz-checksum-*` header is the checksum of the object it
        // makes, not of its XML body: the handler checks it against the parts.
        let no_headers = http::HeaderMap::new();
        let checksum_headers = match call.call().op {
            crate::s3::Op::CompleteMultipartUpload { .. } => &no_headers,
            _ => &parts.headers,
        };
        let body = BodyReader::new(
            incoming,
            checksum_headers,
            caller.verified.as_ref(),
            expected,
        )
        .counting(trace.bytes_in.clone());
        let elements = std::sync::Mutex::new(None);
        let ctx = Ctx {
            gw,
            principal,
            bucket: call.call().bucket.clone(),
            key: call.call().key.clone(),
            query,
            headers: &parts.headers,
            declared_length: expected,
            context,
            checks: &trace.checks,
            write_ahead,
            audit_fail_open: gw.config.audit_fail_open,
            response_elements: &elements,
            version_id: call.call().version_id.clone(),
        };
        let response = s3::dispatch(call, ctx, body).await?;
        return Ok((response, elements.into_inner().ok().flatten()));
    }
    if !write_ahead.wait(|_| {}).await && !gw.config.audit_fail_open {
        return Err(audit_unavailable(gw));
    }
    match call {
        AuthorizedCall::S3(_) => Err(S3Error::internal(std::io::Error::other(
            "an S3 call reached the control-plane handlers",
        ))),
        AuthorizedCall::Iam(call) => {
            Box::pin(crate::iam::handle(gw, principal, call, &base.request_id)).await
        }
        AuthorizedCall::Sts(call) => crate::sts::handle(gw, principal, call, &base.request_id, now),
        AuthorizedCall::Keyhole(call) => {
            Box::pin(crate::jobs::execute(
                gw,
                principal,
                call,
                &context,
                base.source_ip,
                now,
            ))
            .await
        }
        AuthorizedCall::JobCredentials(call) => {
            Box::pin(crate::jobs::fetch_credentials(
                gw,
                principal,
                call,
                &trace.checks,
                now,
            ))
            .await
        }
        AuthorizedCall::ValidatePolicy(call) => Ok((
            call.call()
                .answer(&gw.account.record.account_id, gw.tls.is_some()),
            None,
        )),
        AuthorizedCall::Metrics => {
            let mut text = gw.metrics.render();
            // Which node answered: its id labels an info gauge (Prometheus' `*_info` idiom).
            if let Some(node) = gw.audit.node_id() {
                text.push_str(&format!(
                    "# HELP keyhole_node_info This gateway node; `node` is the id its audit trail carries.\n# TYPE keyhole_node_info gauge\nkeyhole_node_info{{node=\"{node}\"}} 1\n"
                ));
            }
            let mut r = Response::new(body::full(text));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            Ok((r, None))
        }
    }
}

/// How an API spells its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorFormat {
    /// S3 REST: `<Error>` XML.
    S3,
    /// IAM and STS (Query protocol): `<ErrorResponse>` XML in the service's namespace.
    Query(QueryApi),
    /// The keyhole API (AWS JSON 1.1): `{"__type": ..., "message": ...}`.
    Json,
    /// Access Analyzer (REST-JSON): `{"message": ...}` with the code in `x-amzn-ErrorType`, in
    /// the service's own codes (`AccessDeniedException`, `ValidationException`, ...).
    RestJson,
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
    if let ErrorFormat::Query(_) = format {
        // The Query APIs name a malformed signature `IncompleteSignature` (400), one of the
        // errors common to every Query action
        // (https://docs.aws.amazon.com/STS/latest/APIReference/CommonErrors.html).
        if matches!(
            e.code(),
            "AuthorizationHeaderMalformed" | "AuthorizationQueryParametersError"
        ) {
            e = S3Error::new("IncompleteSignature", StatusCode::BAD_REQUEST, e.message());
        }
    }
    let (body, content_type) = match format {
        _ if is_head => (body::empty(), None),
        ErrorFormat::Query(api) => (
            body::full(e.to_query_xml(
                request_id,
                match api {
                    QueryApi::Iam => crate::iam::IAM_NS,
                    QueryApi::Sts => crate::sts::STS_NS,
                },
            )),
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
        ErrorFormat::RestJson => {
            e = crate::analyzer::service_error(e);
            (
                body::full(serde_json::json!({"message": e.message()}).to_string()),
                Some("application/json"),
            )
        }
    };
    let mut r = Response::new(body);
    *r.status_mut() = e.status();
    for (name, value) in e.headers() {
        if let Ok(v) = HeaderValue::from_str(value) {
            r.headers_mut().insert(*name, v);
        }
    }
    if format == ErrorFormat::RestJson {
        if let Ok(v) = HeaderValue::from_str(e.code()) {
            r.headers_mut().insert("x-amzn-errortype", v);
        }
    }
    if let Some(t) = content_type {
        r.headers_mut()
            .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(t));
    }
    (r, (e.code().to_owned(), e.message().to_owned()))
}

/// Records the request's `completed` event and metrics. With `durable` (an applied change),
/// waits until the event is on disk, and answers the true response even if it cannot be written
/// (see `docs/AUDIT.md`, "When the trail cannot be written"); otherwise the event is written when the response body ends, with the bytes actually sent.
async fn complete(
    gw: &Arc<Gateway>,
    trace: Trace,
    base: &EventBase,
    response: Response<Body>,
    durable: bool,
    error: Option<(String, String)>,
) -> Response<Body> {
    let (api, op) = (trace.api, trace.op_name);
    let mut event = trace.into_event(gw, base, Stage::Completed);
    event.http_status = Some(response.status().as_u16());
    if let Some((code, message)) = error {
        event.error_code = Some(code);
        event.error_message = Some(message);
    }
    if durable {
        let size = http_body::Body::size_hint(response.body()).exact();
        event.bytes_out = size.unwrap_or(0);
        let sample = sample_of(&event, api, op);
        // Boxed: its future holds the event (a few KiB) and would otherwise be part of every
        // request's future, which is moved whole (issue 16).
        if let Err(e) = Box::pin(gw.audit.record_durable(event)).await {
            // The change is applied: answering 503 now would tell the client nothing changed
            // when it did. The client gets the true answer; the trail keeps the `authorized`
            // record without a `completed` one, which `keyhole audit verify` lists as an
            // outcome it cannot know. Later writes are refused at their write-ahead record
            // while the trail stays unwritable.
            gw.metrics.unrecorded_outcome();
            tracing::error!(
                error = %e,
                request_id = %base.request_id,
                "a completed write could not be audited: the trail shows it as authorized, outcome unknown"
            );
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

pub(crate) fn record_metrics(
    gw: &Gateway,
    event: &AuditEvent,
    api: &'static str,
    op: &'static str,
) {
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

/// A header as text; a header that is not valid text is a client error.
pub fn header_str<N>(headers: &HeaderMap, name: N) -> Result<Option<&str>, S3Error>
where
    N: http::header::AsHeaderName + std::fmt::Display + Copy,
{
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
        http::HeaderName::from_static("x-amz-decoded-content-length")
    } else {
        http::header::CONTENT_LENGTH
    };
    match header_str(headers, &name)? {
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
        // `//KEY`: an empty bucket name, which no bucket has (review 31, L4: it was decided as a
        // request on `arn:aws:s3:::/KEY`).
        Some(("", _)) => Err(S3Error::new(
            "InvalidBucketName",
            StatusCode::BAD_REQUEST,
            "The specified bucket is not valid: the path begins with `//`, which names no bucket",
        )),
        None => Ok((Some(decode(rest)?), None)),
        Some((b, "")) => Ok((Some(decode(b)?), None)),
        Some((b, k)) => Ok((Some(decode(b)?), Some(decode(k)?))),
    }
}

#[cfg(test)]
mod tests {
    fn request(method: &str, uri: &str, authorization: Option<&str>) -> http::Request<()> {
        let mut b = http::Request::builder().method(method).uri(uri);
        if let Some(a) = authorization {
            b = b
                .header(http::header::AUTHORIZATION, a)
                .header("x-amz-date", "20261204T000000Z")
                .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD");
        }
        b.body(()).unwrap()
    }

    const SIGNED: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261204/us-east-1/SERVICE/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn only_s3_reads_of_a_bucket_or_object_are_known_not_to_change_anything() {
        let s3 = SIGNED.replace("SERVICE", "s3");
        let iam = SIGNED.replace("SERVICE", "iam");
        let may = |m, u, a: Option<&str>| super::judge(&request(m, u, a)).may_change;
        assert!(!may("GET", "/b/k", None));
        assert!(!may("HEAD", "/b/k", Some(&s3)));
        assert!(!may("GET", "/b?list-type=2", Some(&s3)));
        assert!(!may(
            "GET",
            "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20261204%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261204T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=0000000000000000000000000000000000000000000000000000000000000000",
            None
        ));
        for (m, u, a) in [
            ("PUT", "/b/k", Some(s3.as_str())),
            ("POST", "/b?delete", Some(&s3)),
            ("DELETE", "/b/k", None),
            ("OPTIONS", "/b/k", None),
            // IAM, STS and the keyhole API take GET (review 23, H1).
            ("GET", "/?Action=PutUserPolicy", Some(&iam)),
            ("GET", "/b/k", Some(&iam)),
            (
                "HEAD",
                "/anything",
                Some(&SIGNED.replace("SERVICE", "keyhole")),
            ),
            (
                "GET",
                "/x?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20261204%2Fus-east-1%2Fsts%2Faws4_request&X-Amz-Date=20261204T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=0000000000000000000000000000000000000000000000000000000000000000",
                None,
            ),
            // What routing's parser reads and a text scan did not (review 24).
            ("GET", "/b/k", Some(&iam.replace("Credential=", "Credential ="))),
            ("GET", "/b/k", Some(&iam.replace("Credential=", "Credential= "))),
            ("GET", "/b/k", Some(&iam.replace("Credential=", "Credential\t="))),
            (
                "GET",
                "/b/k?X%2DAmz-Algorithm=AWS4-HMAC-SHA256&X%2DAmz-Credential=AKID%2F20261204%2Fus-east-1%2Fiam%2Faws4_request&X-Amz-Date=20261204T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=0000000000000000000000000000000000000000000000000000000000000000",
                None,
            ),
            (
                "GET",
                "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Cr%65dential=AKID%2F20261204%2Fus-east-1%2Fiam%2Faws4_request&X-Amz-Date=20261204T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=0000000000000000000000000000000000000000000000000000000000000000",
                None,
            ),
            ("GET", "/", None),
            ("GET", "/_keyhole/credentials", None),
        ] {
            assert!(may(m, u, a), "{m} {u} {a:?}");
        }
    }

    proptest::proptest! {
        /// Request ids are what `{:016X}` writes.
        #[test]
        fn request_ids_are_sixteen_uppercase_hex_digits(n in proptest::num::u64::ANY) {
            proptest::prop_assert_eq!(super::upper_hex_u64(n), format!("{n:016X}"));
        }

        /// For a GET of a bucket or object path, `judge` says "may change" exactly "routing would not
        /// send it to S3": the service routing's parser (`keyhole_sigv4::parse`, as `route`
        /// calls it) finds, when it finds one, is not `s3`.
        #[test]
        fn may_change_agrees_with_routing(
            header in proptest::option::of("[ -~\t]{0,100}"),
            query in "[ -~]{0,120}",
        ) {
            let uri = format!("/b/k?{}", query.replace([' ', '#'], "%20"));
            let Ok(uri) = uri.parse::<http::Uri>() else { return Ok(()) };
            let mut b = http::Request::builder().method("GET").uri(uri);
            if let Some(h) = header.as_deref() {
                let Ok(v) = http::HeaderValue::from_str(h) else { return Ok(()) };
                b = b.header(http::header::AUTHORIZATION, v);
            }
            let req = b.body(()).unwrap();
            let routed_elsewhere = keyhole_sigv4::parse(req.method(), req.uri(), req.headers())
                .ok()
                .flatten()
                .is_some_and(|s| !s.scope().service.eq_ignore_ascii_case("s3"));
            proptest::prop_assert_eq!(super::judge(&req).may_change, routed_elsewhere);
        }
    }
}
