//! A small SigV4-signing HTTP client for keyhole's own CLI, end-to-end tests and load tool.
//!
//! It signs with `keyhole_sigv4` (header form, presigned URLs, aws-chunked streaming) and sends
//! with hyper, over plain HTTP or HTTPS (rustls: the system's roots plus an optional CA bundle,
//! see [`crate::tls::client_config`]). It is not a general S3 SDK: callers build paths and read
//! responses themselves.

use std::path::Path;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use keyhole_sigv4::{ChunkSigner, Credentials, SigningParams};

use crate::body::{full, Body};

/// Why a request could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint or path does not form a valid URI.
    #[error("invalid URI `{0}`")]
    Uri(String),
    /// Signing failed.
    #[error("cannot sign the request: {0}")]
    Sign(#[from] keyhole_sigv4::AuthError),
    /// The HTTP exchange failed.
    #[error("request failed: {0}")]
    Http(String),
    /// The TLS trust settings could not be loaded.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// RFC 3986 unreserved characters.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes every byte but RFC 3986 unreserved characters: Query-protocol form values,
/// query values, and policy documents as IAM returns them (SDKs decode it).
pub fn encode_unreserved(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

/// Percent-encodes an object key for a path (every byte but unreserved characters and `/`).
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A signing client bound to one endpoint and one set of credentials.
#[derive(Clone)]
pub struct Client {
    endpoint: String,
    credentials: Credentials,
    region: String,
    service: String,
    http: HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, Body>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.credentials.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `endpoint` (e.g. `http://127.0.0.1:9000` or `https://gw.example:9000`); an
    /// https endpoint is verified against the system's root certificates.
    pub fn new(
        endpoint: &str,
        credentials: Credentials,
        region: &str,
    ) -> Result<Client, ClientError> {
        Client::with_ca_bundle(endpoint, credentials, region, None)
    }

    /// Like [`Client::new`], also trusting the certificates in `ca_bundle` (a PEM file, as named
    /// by `AWS_CA_BUNDLE`) for an https endpoint: how a gateway with a self-signed certificate is
    /// reached. Root certificates are loaded only for an https endpoint.
    pub fn with_ca_bundle(
        endpoint: &str,
        credentials: Credentials,
        region: &str,
        ca_bundle: Option<&Path>,
    ) -> Result<Client, ClientError> {
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        let tls = if endpoint.starts_with("https://") {
            crate::tls::client_config(ca_bundle)?
        } else {
            // Plain http:// requests never touch TLS: loading no roots keeps such a client
            // cheap to build.
            crate::tls::client_config_trusting_nothing()?
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Client {
            endpoint,
            credentials,
            region: region.to_owned(),
            service: "s3".to_owned(),
            http: HyperClient::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// The same client signing for another SigV4 service (`keyhole`, `sts`, `iam`).
    pub fn with_service(mut self, service: &str) -> Client {
        self.service = service.to_owned();
        self
    }

    fn uri(&self, path_and_query: &str) -> Result<Uri, ClientError> {
        let text = format!("{}{}", self.endpoint, path_and_query);
        text.parse().map_err(|_| ClientError::Uri(text))
    }

    fn params(&self) -> SigningParams<'_> {
        SigningParams {
            credentials: &self.credentials,
            region: &self.region,
            service: &self.service,
            time: chrono::Utc::now(),
        }
    }

    /// Sends a request whose body is signed by its SHA-256.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response<hyper::body::Incoming>, ClientError> {
        let uri = self.uri(path_and_query)?;
        let hash = keyhole_sigv4::sha256_hex(&body);
        keyhole_sigv4::sign_headers(&method, &uri, &mut headers, &hash, &self.params())?;
        self.dispatch(method, uri, headers, full(body)).await
    }

    /// Sends a streamed body of `len` bytes with `UNSIGNED-PAYLOAD` (as SDKs do over TLS).
    pub async fn send_stream(
        &self,
        method: Method,
        path_and_query: &str,
        mut headers: HeaderMap,
        body: Body,
        len: u64,
    ) -> Result<Response<hyper::body::Incoming>, ClientError> {
        let uri = self.uri(path_and_query)?;
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
        keyhole_sigv4::sign_headers(
            &method,
            &uri,
            &mut headers,
            "UNSIGNED-PAYLOAD",
            &self.params(),
        )?;
        self.dispatch(method, uri, headers, body).await
    }

    /// Sends `data` as an aws-chunked body signed chunk by chunk
    /// (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`), `chunk_size` bytes a chunk.
    pub async fn send_chunked(
        &self,
        method: Method,
        path_and_query: &str,
        mut headers: HeaderMap,
        data: &[u8],
        chunk_size: usize,
    ) -> Result<Response<hyper::body::Incoming>, ClientError> {
        let uri = self.uri(path_and_query)?;
        let params = self.params();
        let chunk_size = chunk_size.max(1);
        let encoded_len: usize = data
            .chunks(chunk_size)
            .map(|c| format!("{:x}", c.len()).len() + 17 + 64 + 2 + c.len() + 2)
            .sum::<usize>()
            + 1
            + 17
            + 64
            + 4;
        headers.insert("content-encoding", HeaderValue::from_static("aws-chunked"));
        headers.insert(
            "x-amz-decoded-content-length",
            HeaderValue::from(data.len() as u64),
        );
        headers.insert(
            http::header::CONTENT_LENGTH,
            HeaderValue::from(encoded_len as u64),
        );
        keyhole_sigv4::sign_headers(
            &method,
            &uri,
            &mut headers,
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            &params,
        )?;
        let seed = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|a| a.rsplit_once("Signature="))
            .map(|(_, s)| s.to_owned())
            .unwrap_or_default();
        let mut signer = ChunkSigner::new(&seed, &params);
        let mut body = Vec::with_capacity(encoded_len);
        for c in data.chunks(chunk_size) {
            body.extend_from_slice(&signer.chunk(c));
        }
        body.extend_from_slice(&signer.final_chunk());
        if body.len() != encoded_len {
            return Err(ClientError::Http(format!(
                "aws-chunked length mismatch: computed {encoded_len}, encoded {}",
                body.len()
            )));
        }
        self.dispatch(method, uri, headers, full(body)).await
    }

    /// A presigned URL for `path_and_query`, valid for `expires_secs`.
    pub fn presign(
        &self,
        method: &Method,
        path_and_query: &str,
        expires_secs: u64,
    ) -> Result<Uri, ClientError> {
        let uri = self.uri(path_and_query)?;
        Ok(keyhole_sigv4::presign(
            method,
            &uri,
            &HeaderMap::new(),
            expires_secs,
            &self.params(),
        )?)
    }

    /// Sends a request exactly as given (no signing): for presigned URLs and hostile tests.
    pub async fn dispatch(
        &self,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Body,
    ) -> Result<Response<hyper::body::Incoming>, ClientError> {
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        self.http
            .request(req)
            .await
            .map_err(|e| ClientError::Http(with_causes(&e)))
    }
}

/// An error and its causes on one line (`client error (Connect): invalid peer certificate:
/// UnknownIssuer`): hyper's own message alone does not say why a connection failed.
pub(crate) fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}

/// Reads a whole response body of at most `limit` bytes; a larger one is an error (nothing past
/// the limit is kept).
pub async fn read_body_limited(
    resp: Response<hyper::body::Incoming>,
    limit: usize,
) -> Result<Bytes, ClientError> {
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ClientError::Http(with_causes(&e)))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(ClientError::Http(format!(
                    "the answer is larger than {limit} bytes"
                )));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(out))
}

/// Reads a whole answer body.
pub async fn read_body(resp: Response<hyper::body::Incoming>) -> Result<Bytes, ClientError> {
    resp.into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| ClientError::Http(with_causes(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_once_with_slashes_kept() {
        assert_eq!(encode_key("a b/ü+%.txt"), "a%20b/%C3%BC%2B%25.txt");
        assert_eq!(encode_key("../x"), "../x");
    }
}
