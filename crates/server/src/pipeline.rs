//! The one request path: accept → route → authenticate → describe → authorize → handle.
//!
//! Every request goes through [`handle`]. Authorization happens before the body is read; only an
//! allowed request reaches an S3 handler. Errors become S3 XML with a request id.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rand::Rng;
use tokio::net::TcpListener;

use crate::auth::Principal;
use crate::body::{self, Body, BodyReader};
use crate::context::{self, RequestFacts};
use crate::error::S3Error;
use crate::s3::route::{Op, Query};
use crate::s3::{self, Ctx};
use crate::Gateway;

/// Serves connections from `listener` until `shutdown` resolves, then lets in-flight requests
/// finish (up to [`crate::config::SHUTDOWN_GRACE_SECS`]).
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let gw = gateway.clone();
                let service = service_fn(move |req| {
                    let gw = gw.clone();
                    async move { Ok::<_, Infallible>(handle(gw, peer, req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(Duration::from_secs(crate::config::SHUTDOWN_GRACE_SECS)) => {
            tracing::warn!("grace period over; closing remaining connections");
        }
    }
}

/// Largest Query-protocol (IAM) form body: a 6144-character policy document, URL-encoded (up to
/// three bytes a character), plus the other parameters.
pub const MAX_QUERY_BODY_BYTES: usize = 64 * 1024;

/// A fresh request id in AWS's style (16 uppercase hex digits).
fn new_request_id() -> String {
    format!("{:016X}", rand::thread_rng().gen::<u64>())
}

/// Handles one request end to end. Never fails: errors become S3 error responses.
pub async fn handle(gw: Arc<Gateway>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let request_id = new_request_id();
    let (parts, incoming) = req.into_parts();
    let is_head = parts.method == Method::HEAD;

    if parts.uri.path() == "/healthz" && parts.method == Method::GET && parts.uri.query().is_none()
    {
        return finish(Response::new(body::full("ok\n")), &request_id);
    }

    let located = locate(&gw, &parts.headers, parts.uri.path());
    let resource = match &located {
        Ok((Some(b), Some(k))) => format!("/{b}/{k}"),
        Ok((Some(b), None)) => format!("/{b}"),
        _ => "/".to_owned(),
    };
    let mut op_name = "Unknown";
    let mut principal_kind = "Unauthenticated";
    let mut query_api = false;
    let (err_bucket, err_key) = match &located {
        Ok((b, k)) => (b.clone(), k.clone()),
        Err(_) => (None, None),
    };
    let outcome: Result<Response<Body>, S3Error> = async {
        let (bucket, key) = located?;
        let now = chrono::Utc::now();
        let signed = gw.authn.parse(&parts.method, &parts.uri, &parts.headers)?;
        let service = signed.as_ref().map(|s| s.scope().service.clone());
        match service.as_deref() {
            None | Some("s3") => {}
            Some(api @ ("iam" | "sts")) => {
                query_api = true;
                let Some(signed) = signed else {
                    return Err(S3Error::access_denied("Access Denied"));
                };
                // Query protocol: the action is in the form body (small, capped), which the
                // signature covers; it is read and hashed before verification.
                let expected = declared_length(&parts.headers, None)?;
                let raw = BodyReader::new(incoming, &HeaderMap::new(), None, expected)
                    .read_limited(MAX_QUERY_BODY_BYTES)
                    .await?;
                let hash = keyhole_sigv4::sha256_hex(&raw);
                let (principal, verified) = gw.authn.verify(
                    signed,
                    &parts.method,
                    &parts.uri,
                    &parts.headers,
                    now,
                    Some(&hash),
                )?;
                principal_kind = principal.kind();
                let form = if parts.method == Method::POST {
                    Query::parse(Some(&String::from_utf8_lossy(&raw)))
                } else {
                    Query::parse(parts.uri.query())
                };
                let context = context::global(&RequestFacts {
                    now,
                    source_ip: context::client_ip(peer.ip(), &parts.headers, &gw.trusted_proxies),
                    secure: false,
                    headers: &parts.headers,
                    region: &gw.config.region,
                    account_id: &gw.account.record.account_id,
                    principal: &principal,
                    verified: Some(&verified),
                });
                let (response, name) = if api == "iam" {
                    crate::iam::dispatch(&gw, &principal, form, &context, &request_id).await?
                } else {
                    crate::sts::dispatch(&gw, &principal, form, &context, &request_id, now).await?
                };
                op_name = name;
                return Ok(response);
            }
            Some(other) => {
                return Err(S3Error::not_implemented(&format!(
                    "the `{other}` service (this release serves S3, IAM and STS)"
                )));
            }
        }
        let (principal, verified) = match signed {
            None => (Principal::Anonymous, None),
            Some(signed) => {
                let (p, v) = gw.authn.verify(
                    signed,
                    &parts.method,
                    &parts.uri,
                    &parts.headers,
                    now,
                    None,
                )?;
                (p, Some(v))
            }
        };
        principal_kind = principal.kind();
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
            (None, None)
        } else {
            (bucket, key)
        };
        op_name = op.name();
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
            source_ip: context::client_ip(peer.ip(), &parts.headers, &gw.trusted_proxies),
            secure: false,
            headers: &parts.headers,
            region: &gw.config.region,
            account_id: &gw.account.record.account_id,
            principal: &principal,
            verified: verified.as_ref(),
        });
        context::add_s3(&mut context, &op, &query, &parts.headers);
        for permission in &access.upfront {
            gw.authz.authorize(&principal, permission, &context)?;
        }
        let expected = declared_length(&parts.headers, verified.as_ref())?;
        let body = BodyReader::new(incoming, &parts.headers, verified.as_ref(), expected);
        let ctx = Ctx {
            gw: &gw,
            principal: &principal,
            bucket,
            key,
            query,
            headers: &parts.headers,
            declared_length: expected,
            context,
        };
        s3::dispatch(op, ctx, body).await
    }
    .await;

    let response = match outcome {
        Ok(r) => r,
        Err(mut e) => {
            // Name the bucket and key in the body as S3 does for these codes.
            match (e.code(), &err_bucket, &err_key) {
                ("NoSuchKey", _, Some(k)) => e = e.with("Key", k.clone()),
                ("NoSuchBucket" | "BucketNotEmpty" | "BucketAlreadyOwnedByYou", Some(b), _) => {
                    e = e.with("BucketName", b.clone());
                }
                _ => {}
            }
            let status = e.status();
            let body = if is_head {
                body::empty()
            } else if query_api {
                body::full(e.to_query_xml(&request_id))
            } else {
                body::full(e.to_xml(&resource, &request_id))
            };
            let mut r = Response::new(body);
            *r.status_mut() = status;
            if !is_head {
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/xml"),
                );
            }
            tracing::info!(code = e.code(), message = e.message(), "request failed");
            r
        }
    };
    tracing::info!(
        request_id = %request_id,
        %peer,
        method = %parts.method,
        op = op_name,
        principal = principal_kind,
        status = response.status().as_u16(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "request"
    );
    finish(response, &request_id)
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

fn control_op(op: &Op) -> bool {
    matches!(
        op,
        Op::GetAccountPublicAccessBlock
            | Op::PutAccountPublicAccessBlock
            | Op::DeleteAccountPublicAccessBlock
    )
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
