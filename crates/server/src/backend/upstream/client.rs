//! The upstream's HTTP side: addressing (path or virtual-host style), SigV4 signing with
//! keyhole's own credentials, one connection pool, a bound on requests in flight, timeouts, and
//! retries with backoff for idempotent requests.
//!
//! Request bodies that keyhole builds (XML documents) are signed with their SHA-256. Object
//! bodies stream with `UNSIGNED-PAYLOAD` (see "Decisions" in docs/ARCHITECTURE.md): the gateway
//! has verified every byte against the client's signature already, TLS protects them on the way
//! upstream, and `Content-MD5` or `x-amz-checksum-*` travel along when the client sent them.
//! The last piece of a streamed body is held back until the client's body has ended verified
//! (and its write-ahead audit record is durable), so the upstream, which stores an object only
//! once all of its bytes arrived, never stores an unverified or unrecorded one.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use keyhole_sigv4::SigningParams;
use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::credentials::CredentialCell;
use super::errors;
use crate::backend::{Payload, Result};
use crate::body::{full, Body};
use crate::config::UpstreamConfig;
use crate::error::S3Error;

/// Largest XML document read from the upstream (a page of 1000 keys of 1024 bytes, encoded).
const MAX_XML_BYTES: usize = 16 * 1024 * 1024;
/// Largest error body read from the upstream.
const MAX_ERROR_BYTES: usize = 64 * 1024;
/// First retry delay; doubled each time, with full jitter, up to [`MAX_BACKOFF`].
const BASE_BACKOFF: Duration = Duration::from_millis(100);
/// Longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Chunks in flight between a streamed request body and the connection.
const STREAM_DEPTH: usize = 4;

/// Percent-encodes an object key for a path: every byte but unreserved characters and `/`.
pub fn encode_key(key: &str) -> String {
    crate::client::encode_key(key)
}

/// One request to the upstream.
#[derive(Debug)]
pub struct Call<'a> {
    /// The method.
    pub method: Method,
    /// The upstream bucket (`None`: the service, e.g. ListBuckets).
    pub bucket: Option<&'a str>,
    /// The upstream key (`None`: a bucket operation).
    pub key: Option<&'a str>,
    /// Query parameters, decoded (an empty value is sent as a bare name: `?uploads`).
    pub query: Vec<(&'static str, String)>,
    /// Headers to send (and sign) besides `host` and the signature's.
    pub headers: HeaderMap,
    /// Safe to send again after a connection failure or a 5xx.
    pub idempotent: bool,
    /// The code of a 404 without a body (a HEAD): `NoSuchKey` or `NoSuchBucket`.
    pub not_found: &'static str,
}

impl<'a> Call<'a> {
    /// A call of `method` on `bucket` (and `key`).
    pub fn new(method: Method, bucket: Option<&'a str>, key: Option<&'a str>) -> Call<'a> {
        let idempotent = matches!(method, Method::GET | Method::HEAD);
        let not_found = if key.is_some() {
            "NoSuchKey"
        } else {
            "NoSuchBucket"
        };
        Call {
            method,
            bucket,
            key,
            query: Vec::new(),
            headers: HeaderMap::new(),
            idempotent,
            not_found,
        }
    }

    /// Adds a query parameter.
    #[must_use]
    pub fn query(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.query.push((name, value.into()));
        self
    }

    /// Adds a header; a value HTTP cannot carry is refused.
    pub fn header(mut self, name: &str, value: &str) -> Result<Self> {
        let name = http::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| S3Error::invalid_argument(format!("invalid header name `{name}`")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| S3Error::invalid_argument(format!("invalid value for header `{name}`")))?;
        self.headers.append(name, value);
        Ok(self)
    }

    /// Marks the call safe (or not) to retry.
    #[must_use]
    pub fn idempotent(mut self, yes: bool) -> Self {
        self.idempotent = yes;
        self
    }
}

/// A successful (2xx or 304) upstream answer; the body holds the request's turn until it ends.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, streamed.
    pub body: Body,
}

impl Answer {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The ETag without quotes.
    pub fn etag(&self) -> String {
        self.header("etag")
            .map(|e| e.trim().trim_matches('"').to_owned())
            .unwrap_or_default()
    }
}

/// The HTTP client of one upstream.
pub struct UpstreamClient {
    https: bool,
    /// `host[:port]` of the endpoint.
    authority: String,
    /// Address buckets in the path.
    path_style: bool,
    region: String,
    credentials: Arc<CredentialCell>,
    http: HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, Body>,
    permits: Arc<Semaphore>,
    timeout: Duration,
    retries: u32,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("https", &self.https)
            .field("path_style", &self.path_style)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// Whether a host can only be reached by path-style requests (an IP address, `localhost`).
fn host_is_literal(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<std::net::IpAddr>().is_ok() || bare.eq_ignore_ascii_case("localhost")
}

impl UpstreamClient {
    /// A client for the configured upstream, signing with `credentials`.
    pub fn new(
        cfg: &UpstreamConfig,
        credentials: Arc<CredentialCell>,
    ) -> std::result::Result<UpstreamClient, crate::tls::TlsError> {
        let https = cfg.endpoint.starts_with("https://");
        let authority = cfg
            .endpoint
            .split_once("://")
            .map_or(cfg.endpoint.as_str(), |(_, rest)| rest)
            .to_owned();
        let tls = if https {
            crate::tls::client_config(cfg.ca_bundle.as_deref())?
        } else {
            crate::tls::client_config_trusting_nothing()?
        };
        let timeout = Duration::from_secs(cfg.timeout_secs);
        let mut connector = HttpConnector::new();
        connector.enforce_http(false);
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        connector.set_keepalive(Some(Duration::from_secs(30)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let max = usize::try_from(cfg.max_concurrency).unwrap_or(usize::MAX);
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(max)
            .build(connector);
        let host = authority
            .rsplit_once(':')
            .map_or(authority.as_str(), |(h, p)| {
                if p.bytes().all(|b| b.is_ascii_digit()) {
                    h
                } else {
                    authority.as_str()
                }
            });
        Ok(UpstreamClient {
            https,
            path_style: cfg.path_style || host_is_literal(host),
            authority,
            region: cfg.region.clone(),
            credentials,
            http,
            permits: Arc::new(Semaphore::new(max)),
            timeout,
            retries: cfg.retries,
        })
    }

    /// The URI and `host` of a call: path style (`/bucket/key`), or virtual-host style
    /// (`bucket.host/key`) unless the bucket name cannot be a TLS host name (it has dots).
    fn target(&self, call: &Call<'_>) -> Result<(Uri, HeaderValue)> {
        let path_style = self.path_style
            || call
                .bucket
                .is_some_and(|b| (self.https && b.contains('.')) || b.contains('_'));
        let (host, mut path) = match call.bucket {
            Some(b) if !path_style => (format!("{b}.{}", self.authority), "/".to_owned()),
            Some(b) => (self.authority.clone(), format!("/{b}")),
            None => (self.authority.clone(), "/".to_owned()),
        };
        if let Some(key) = call.key {
            if !path.ends_with('/') {
                path.push('/');
            }
            path.push_str(&encode_key(key));
        }
        let mut text = format!(
            "{}://{host}{path}",
            if self.https { "https" } else { "http" }
        );
        for (i, (name, value)) in call.query.iter().enumerate() {
            text.push(if i == 0 { '?' } else { '&' });
            text.push_str(name);
            if !value.is_empty() {
                text.push('=');
                text.push_str(&crate::client::encode_unreserved(value));
            }
        }
        let uri = text.parse::<Uri>().map_err(|_| {
            S3Error::invalid_argument("the request cannot be expressed as an upstream URI")
        })?;
        let host = HeaderValue::from_str(&host)
            .map_err(|_| S3Error::invalid_argument("the bucket name is not a valid host name"))?;
        Ok((uri, host))
    }

    fn request(
        &self,
        call: &Call<'_>,
        payload_hash: &str,
        body: Body,
        length: Option<u64>,
    ) -> Result<Request<Body>> {
        let (uri, host) = self.target(call)?;
        let mut headers = call.headers.clone();
        headers.insert(http::header::HOST, host);
        if let Some(n) = length {
            headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        let credentials = self.credentials.current();
        let params = SigningParams {
            credentials: &credentials,
            region: &self.region,
            service: "s3",
            time: chrono::Utc::now(),
        };
        keyhole_sigv4::sign_headers(&call.method, &uri, &mut headers, payload_hash, &params)
            .map_err(S3Error::internal)?;
        let mut req = Request::new(body);
        *req.method_mut() = call.method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        Ok(req)
    }

    /// Waits for a turn among the requests in flight, at most the timeout.
    async fn turn(&self) -> Result<OwnedSemaphorePermit> {
        match tokio::time::timeout(self.timeout, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(errors::unavailable()),
            Err(_) => {
                tracing::warn!(
                    "every upstream request slot stayed busy for the whole timeout (upstream_max_concurrency)"
                );
                Err(errors::slow_down())
            }
        }
    }

    fn backoff(attempt: u32) -> Duration {
        let cap = BASE_BACKOFF
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(MAX_BACKOFF);
        let millis = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::thread_rng().gen_range(0..=millis))
    }

    /// Sends `call` with `body` (signed with its SHA-256); retries an idempotent call after a
    /// connection failure, a timeout or a 500/502/503/504, with backoff.
    pub async fn send(&self, call: Call<'_>, body: Bytes) -> Result<Answer> {
        let hash = keyhole_sigv4::sha256_hex(&body);
        let mut attempt = 0u32;
        loop {
            let permit = self.turn().await?;
            let req = self.request(&call, &hash, full(body.clone()), None)?;
            let result = tokio::time::timeout(self.timeout, self.http.request(req)).await;
            let retry = match &result {
                Err(_) | Ok(Err(_)) => true,
                Ok(Ok(r)) => matches!(r.status().as_u16(), 500 | 502 | 503 | 504),
            };
            if retry && call.idempotent && attempt < self.retries {
                attempt += 1;
                drop(result);
                drop(permit);
                tokio::time::sleep(Self::backoff(attempt)).await;
                continue;
            }
            let response = match result {
                Err(_) => {
                    tracing::warn!(method = %call.method, "the upstream did not answer within the timeout");
                    return Err(errors::unavailable());
                }
                Ok(Err(e)) => {
                    tracing::warn!(method = %call.method, error = %crate::client::with_causes(&e), "upstream request failed");
                    return Err(errors::unavailable());
                }
                Ok(Ok(r)) => r,
            };
            return self.answer(response, permit, call.not_found).await;
        }
    }

    /// Sends `call` with a streamed body of `length` bytes (`UNSIGNED-PAYLOAD`); never retried.
    /// The last piece of the body goes only once `payload` has ended verified (see the module
    /// documentation); if it fails, the upstream gets an incomplete body and stores nothing.
    pub async fn send_stream(
        &self,
        call: Call<'_>,
        payload: &mut dyn Payload,
        length: u64,
    ) -> Result<Answer> {
        let permit = self.turn().await?;
        if length == 0 {
            // An empty body is complete as soon as the request head arrives: wait for the
            // payload's verified end before sending anything.
            if payload.next().await?.is_some() {
                return Err(S3Error::internal(io::Error::other(
                    "a body declared empty had bytes",
                )));
            }
            let req = self.request(&call, "UNSIGNED-PAYLOAD", crate::body::empty(), Some(0))?;
            let response = tokio::time::timeout(self.timeout, self.http.request(req)).await;
            return match response {
                Ok(Ok(r)) => self.answer(r, permit, call.not_found).await,
                Ok(Err(e)) => {
                    tracing::warn!(error = %crate::client::with_causes(&e), "upstream request failed");
                    Err(errors::unavailable())
                }
                Err(_) => Err(errors::unavailable()),
            };
        }
        let (tx, body) = crate::body::channel(STREAM_DEPTH);
        let req = self.request(&call, "UNSIGNED-PAYLOAD", body, Some(length))?;
        let timeout = self.timeout;
        let feed = async move {
            let mut held: Option<Bytes> = None;
            loop {
                match payload.next().await {
                    Ok(Some(chunk)) => {
                        if let Some(previous) = held.replace(chunk) {
                            match tokio::time::timeout(timeout, tx.send(Ok(previous))).await {
                                Ok(Ok(())) => {}
                                // The connection dropped the body: its answer says why.
                                Ok(Err(_)) => return Ok(false),
                                Err(_) => return Err(errors::unavailable()),
                            }
                        }
                    }
                    Ok(None) => {
                        if let Some(last) = held.take() {
                            match tokio::time::timeout(timeout, tx.send(Ok(last))).await {
                                Ok(Ok(())) => {}
                                Ok(Err(_)) => return Ok(false),
                                Err(_) => return Err(errors::unavailable()),
                            }
                        }
                        return Ok(true);
                    }
                    Err(e) => {
                        // Abort the upstream request: it never gets the whole body.
                        let _ = tx.try_send(Err(io::Error::other("the client's body failed")));
                        return Err(e);
                    }
                }
            }
        };
        let send = self.http.request(req);
        tokio::pin!(feed);
        tokio::pin!(send);
        let answered = tokio::select! {
            fed = &mut feed => match fed {
                Err(e) => return Err(e),
                Ok(_) => None,
            },
            r = &mut send => Some(r),
        };
        let response = match answered {
            // The upstream answered before it had the whole body: a refusal (its error is the
            // answer), never a stored object.
            Some(Ok(r)) if r.status().is_success() => {
                tracing::warn!("the upstream accepted an upload before it had the whole body");
                return Err(S3Error::internal(io::Error::other(
                    "the upstream answered an upload before its body ended",
                )));
            }
            Some(r) => r,
            None => match tokio::time::timeout(self.timeout, send).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::warn!("the upstream did not answer an upload within the timeout");
                    return Err(errors::unavailable());
                }
            },
        };
        match response {
            Ok(r) => self.answer(r, permit, call.not_found).await,
            Err(e) => {
                tracing::warn!(error = %crate::client::with_causes(&e), "upstream upload failed");
                Err(errors::unavailable())
            }
        }
    }

    /// A 2xx or 304 answer as is (its body keeps the turn); any other status as the client's
    /// error.
    async fn answer(
        &self,
        response: Response<Incoming>,
        permit: OwnedSemaphorePermit,
        not_found: &'static str,
    ) -> Result<Answer> {
        let status = response.status();
        let (parts, incoming) = response.into_parts();
        let body = UpstreamBody {
            inner: incoming,
            timeout: self.timeout,
            idle: Box::pin(tokio::time::sleep(self.timeout)),
            permit: Some(permit),
        };
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            return Ok(Answer {
                status,
                headers: parts.headers,
                body: body.boxed(),
            });
        }
        let bytes = read_capped(body.boxed(), MAX_ERROR_BYTES)
            .await
            .unwrap_or_default();
        let e = errors::from_upstream(status, &bytes, not_found);
        if let Some(code) = crate::xml::parse(&bytes)
            .ok()
            .and_then(|x| x.child_text("Code").map(str::to_owned))
        {
            if errors::wants_fresh_credentials(&code) {
                self.credentials.refresh().await;
            }
        }
        Err(e)
    }
}

/// Reads a whole (small) body, at most `cap` bytes.
async fn read_capped(mut body: Body, cap: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            tracing::warn!(error = %e, "reading an upstream answer failed");
            errors::unavailable()
        })?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > cap {
                return Err(S3Error::internal(io::Error::other(
                    "an upstream answer is larger than any S3 document",
                )));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// Reads an answer's XML document; an `<Error>` inside a 200 (CopyObject, UploadPartCopy and
/// CompleteMultipartUpload can answer so) is the error it names.
pub async fn read_xml(answer: Answer) -> Result<crate::xml::Element> {
    let bytes = read_capped(answer.body, MAX_XML_BYTES).await?;
    let doc = crate::xml::parse(&bytes).map_err(|e| {
        S3Error::internal(io::Error::other(format!(
            "the upstream's answer is not XML: {e}"
        )))
    })?;
    if doc.name == "Error" {
        let code = doc.child_text("Code").unwrap_or("InternalError").trim();
        let status = if matches!(code, "SlowDown" | "ServiceUnavailable") {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        return Err(errors::from_code(status, code, "NoSuchKey"));
    }
    Ok(doc)
}

/// An upstream response body: ends with an error when the upstream stops sending for the
/// timeout; holds the request's turn until it ends.
struct UpstreamBody {
    inner: Incoming,
    timeout: Duration,
    idle: Pin<Box<tokio::time::Sleep>>,
    permit: Option<OwnedSemaphorePermit>,
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let deadline = tokio::time::Instant::now() + this.timeout;
                this.idle.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.permit = None;
                Poll::Ready(Some(Err(io::Error::other(e))))
            }
            Poll::Ready(None) => {
                this.permit = None;
                Poll::Ready(None)
            }
            Poll::Pending => match std::future::Future::poll(this.idle.as_mut(), cx) {
                Poll::Ready(()) => {
                    this.permit = None;
                    Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the upstream stopped sending",
                    ))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_hosts_need_path_style() {
        assert!(host_is_literal("127.0.0.1"));
        assert!(host_is_literal("[::1]"));
        assert!(host_is_literal("localhost"));
        assert!(!host_is_literal("s3.us-east-1.amazonaws.com"));
    }

    #[test]
    fn backoff_stays_within_its_cap() {
        for attempt in 0..20 {
            assert!(UpstreamClient::backoff(attempt) <= MAX_BACKOFF);
        }
    }
}
