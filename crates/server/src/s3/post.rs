//! PostObject: browser-form uploads (`POST /bucket` with `multipart/form-data`), authenticated by
//! a SigV4-signed POST policy
//! (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-UsingHTTPPOST.html, and the POST Object
//! reference, https://docs.aws.amazon.com/AmazonS3/latest/API/RESTObjectPOST.html).
//!
//! The form goes through the one pipeline like any request, and in the same stages:
//! - authenticate: [`read`] reads the fields before `file` (at most
//!   [`form::MAX_PRE_DATA_BYTES`], within the header timeout), [`signature`] turns the
//!   `x-amz-*` fields into a SigV4 signature the authenticator verifies exactly as it verifies a
//!   header signature (same key, session, job and revocation checks); no policy means an
//!   anonymous upload;
//! - describe: [`finish`] checks the policy (expiration, conditions, coverage), works out the key
//!   (`${filename}`) and turns the fields into the headers a PutObject would carry
//!   (`Content-Type`, `x-amz-meta-*`, `acl` as `x-amz-acl`, `tagging` as `x-amz-tagging`, ...), so
//!   the operation is described, given its condition keys (`s3:x-amz-acl`,
//!   `s3:RequestObjectTag/*`, ...) and authorized (`s3:PutObject`, plus `s3:PutObjectTagging`
//!   and `s3:PutObjectAcl` when the form sets them) by the same code as PutObject;
//! - handle: [`post_object`] streams the `file` field into the store (never buffered whole),
//!   enforcing `content-length-range` as it goes, and answers as `success_action_redirect` /
//!   `success_action_status` ask.

mod form;
mod policy;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use keyhole_sigv4::{ChecksumKind, ChecksumVerifier};

use super::object::{check_unsupported, content_md5, meta_from_headers};
use super::{check_acl_headers, checksum_headers, empty_response, quoted, set_header, Ctx};
use crate::backend::PutObject;
use crate::body::{Body, BodyReader};
use crate::config::MAX_SINGLE_PUT_BYTES;
use crate::error::S3Error;
use crate::xml::{self, XmlWriter};

pub use form::MAX_PRE_DATA_BYTES;

/// The form's fields before `file`, read; the body positioned at the file's first byte.
pub(crate) struct ReadForm {
    /// (lowercase name, value), in order.
    fields: Vec<(String, String)>,
    file_name: String,
    file: FormFile,
    /// Where the object will be (`http(s)://HOST/PATH`, without the key), for `Location`.
    base_url: String,
}

impl ReadForm {
    /// The key the form names (`${filename}` replaced), before any check: what an audit record
    /// of a refused form names.
    pub(crate) fn named_key(&self) -> Option<String> {
        self.get("key")
            .map(|k| k.replace("${filename}", &self.file_name))
            .filter(|k| !k.is_empty())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A form read and checked: what the describe and handle stages need.
pub(crate) struct PostForm {
    /// The fields a PutObject would carry as headers (see the module documentation).
    pub headers: HeaderMap,
    /// The object key (`${filename}` replaced).
    pub key: String,
    redirect: Option<String>,
    status: Option<String>,
    base_url: String,
    file: FormFile,
}

impl std::fmt::Debug for PostForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostForm")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

fn malformed(why: &str) -> S3Error {
    S3Error::new(
        "MalformedPOSTRequest",
        StatusCode::BAD_REQUEST,
        format!("The body of your POST request is not well-formed multipart/form-data: {why}."),
    )
}

/// "Bucket POST must contain a field named '...'" (AWS's wording for a missing field).
fn missing_field(name: &'static str) -> S3Error {
    S3Error::invalid_argument(format!(
        "Bucket POST must contain a field named '{name}'.  If it is specified, please check the order of the fields."
    ))
    .with("ArgumentName", name)
    .with("ArgumentValue", "")
}

/// Whether a request is a browser-form upload: a POST with a `multipart/form-data` body and no
/// query (S3 has no other POST of a form; DeleteObjects and the multipart steps have a query).
pub(crate) fn is_post_form(parts: &http::request::Parts) -> bool {
    parts.method == http::Method::POST
        && parts.uri.query().is_none_or(str::is_empty)
        && parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(form::boundary)
            .is_some()
}

/// Reads the fields before `file`, within `deadline` and [`MAX_PRE_DATA_BYTES`]: they are read
/// before the form is authenticated, so nobody without credentials holds a connection longer
/// than a request head, or makes the gateway hold more than 20 KiB.
pub(crate) async fn read(
    parts: &http::request::Parts,
    incoming: hyper::body::Incoming,
    counter: std::sync::Arc<std::sync::atomic::AtomicU64>,
    deadline: std::time::Duration,
    tls: bool,
) -> Result<ReadForm, S3Error> {
    let content_type = crate::pipeline::header_str(&parts.headers, "content-type")?.unwrap_or("");
    let boundary = form::boundary(content_type)
        .ok_or_else(|| malformed("the Content-Type has no boundary"))?;
    let length = crate::pipeline::header_str(&parts.headers, "content-length")?
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| {
            S3Error::new(
                "MissingContentLength",
                StatusCode::LENGTH_REQUIRED,
                "You must provide the Content-Length HTTP header.",
            )
        })?;
    let no_headers = HeaderMap::new();
    let mut reader = BodyReader::new(incoming, &no_headers, None, Some(length)).counting(counter);
    let mut buf: Vec<u8> = Vec::new();
    let read_head = async {
        loop {
            match form::parse_head(&buf, &boundary) {
                Ok(form::Head::Done(head)) => return Ok(head),
                Ok(form::Head::NeedMore) => {}
                Err(form::FormError::NoFile) => {
                    return Err(S3Error::invalid_argument(
                        "POST requires exactly one file upload per request.",
                    )
                    .with("ArgumentName", "file")
                    .with("ArgumentValue", "0"))
                }
                Err(form::FormError::NotText(name)) => {
                    return Err(S3Error::invalid_argument(format!(
                        "the form field `{name}` is not UTF-8 text"
                    )))
                }
                Err(form::FormError::Malformed(why)) => return Err(malformed(&why)),
            }
            if buf.len() > MAX_PRE_DATA_BYTES {
                return Err(S3Error::new(
                    "MaxPostPreDataLengthExceeded",
                    StatusCode::BAD_REQUEST,
                    format!("Your POST request fields preceding the upload file were too large: at most {MAX_PRE_DATA_BYTES} bytes."),
                ));
            }
            match reader.next().await? {
                Some(chunk) => buf.extend_from_slice(&chunk),
                None => return Err(malformed("the body ended before the file field")),
            }
        }
    };
    let head = tokio::time::timeout(deadline, read_head).await.map_err(|_| {
        S3Error::new(
            "RequestTimeout",
            StatusCode::BAD_REQUEST,
            format!(
                "the form fields before `file` did not arrive within {} s (they are read before the form is authenticated, so they are due with the head)",
                deadline.as_secs()
            ),
        )
    })??;
    let mut fields: Vec<(String, String)> = Vec::with_capacity(head.fields.len());
    for (name, value) in head.fields {
        let name = name.to_ascii_lowercase();
        if fields.iter().any(|(n, _)| *n == name) {
            return Err(S3Error::invalid_argument(format!(
                "the form field `{name}` is given more than once"
            )));
        }
        fields.push((name, value));
    }
    let pending = Bytes::copy_from_slice(buf.get(head.data_start..).unwrap_or_default());
    let scanner = form::FileScanner::new(&boundary);
    // The file ends at the delimiter, and the form with `--` and a line break after it
    // (`\r\n--BOUNDARY--\r\n`): what is left of the body is the file and that ending.
    let ending = scanner.delimiter_len() as u64 + 4;
    let expected = length
        .checked_sub(head.data_start as u64 + ending)
        .ok_or_else(|| {
            malformed("the body is too short to hold the file field and the form's end")
        })?;
    let host = crate::pipeline::header_str(&parts.headers, "host")?.unwrap_or("localhost");
    let path = parts.uri.path().trim_end_matches('/');
    Ok(ReadForm {
        fields,
        file_name: head.file_name.unwrap_or_default(),
        file: FormFile {
            reader,
            scanner,
            pending: Some(pending),
            ready: std::collections::VecDeque::new(),
            expected,
            received: 0,
            range: None,
            checksums: Vec::new(),
            verified: None,
            done: false,
        },
        base_url: format!("{}://{host}{path}", if tls { "https" } else { "http" }),
    })
}

/// The form's signature, if it has a policy. SigV2 forms (`AWSAccessKeyId` and `signature`)
/// are refused as S3 refuses SigV2 on every bucket created since June 24, 2020 ("Signature
/// Version 2 is being turned off (deprecated), Amazon S3 will only accept API requests that are
/// signed using Signature Version 4",
/// https://docs.aws.amazon.com/AmazonS3/latest/API/Appendix-Sigv2.html).
pub(crate) fn signature(form: &ReadForm) -> Result<Option<keyhole_sigv4::SignedRequest>, S3Error> {
    if form.get("awsaccesskeyid").is_some() || form.get("signature").is_some() {
        return Err(keyhole_sigv4::AuthError::UnsupportedAlgorithm("AWS".to_owned()).into());
    }
    let Some(policy) = form.get("policy") else {
        for name in ["x-amz-signature", "x-amz-credential"] {
            if form.get(name).is_some() {
                return Err(missing_field("policy"));
            }
        }
        return Ok(None);
    };
    let field = |name: &'static str| form.get(name).ok_or_else(|| missing_field(name));
    let signed = keyhole_sigv4::parse_post(&keyhole_sigv4::PostAuthFields {
        policy,
        algorithm: field("x-amz-algorithm")?,
        credential: field("x-amz-credential")?,
        date: field("x-amz-date")?,
        signature: field("x-amz-signature")?,
        security_token: form.get("x-amz-security-token"),
    })?;
    if signed.scope().service != "s3" {
        return Err(S3Error::invalid_argument(format!(
            "x-amz-credential names the service `{}`; a POST upload is signed for `s3`",
            signed.scope().service
        )));
    }
    Ok(Some(signed))
}

/// Fields that are the signature's, not the object's.
const AUTH_FIELDS: &[&str] = &[
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-signature",
    "x-amz-security-token",
];

/// Fields that become the object's content headers as they are (`Content-MD5` is checked against
/// the file: "When you use this form field, Amazon S3 checks the object against the provided MD5
/// value", RESTObjectPOST.html).
const CONTENT_FIELDS: &[&str] = &[
    "content-md5",
    "content-type",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
];

/// Checks a form whose signature (if any) verified: its policy at `now` (a signed form must
/// have met it), its key, and the headers its fields stand for.
pub(crate) fn finish(
    mut form: ReadForm,
    bucket: &str,
    signed: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<PostForm, S3Error> {
    if signed {
        let policy = policy::PostPolicy::parse(form.get("policy").unwrap_or_default())?;
        form.file.range = policy.check(now, bucket, &form.fields)?;
    }
    let key_field = form.get("key").ok_or_else(|| missing_field("key"))?;
    // "${filename}" is replaced by the name of the file the user chose
    // (RESTObjectPOST.html, "key").
    let key = key_field.replace("${filename}", &form.file_name);
    if key.is_empty() {
        return Err(
            S3Error::invalid_argument("User key must have a length greater than 0.")
                .with("ArgumentName", "key"),
        );
    }
    let mut headers = HeaderMap::new();
    for (name, value) in &form.fields {
        let header = match name.as_str() {
            "acl" => "x-amz-acl".to_owned(),
            "tagging" => {
                let tags = tagging_query(value)?;
                headers.insert(
                    HeaderName::from_static("x-amz-tagging"),
                    HeaderValue::from_str(&tags)
                        .map_err(|_| S3Error::malformed_xml("the tagging field"))?,
                );
                continue;
            }
            n if CONTENT_FIELDS.contains(&n) => n.to_owned(),
            n if n.starts_with("x-amz-") && !AUTH_FIELDS.contains(&n) => n.to_owned(),
            _ => continue,
        };
        let header_name = HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
            S3Error::invalid_argument(format!(
                "the form field `{name}` is not a valid header name"
            ))
        })?;
        let header_value = HeaderValue::from_str(value).map_err(|_| {
            S3Error::invalid_argument(format!(
                "the form field `{name}` holds characters a header value cannot"
            ))
        })?;
        headers.insert(header_name, header_value);
    }
    for (name, value) in &headers {
        if let Some(kind) = ChecksumKind::from_header_name(name.as_str()) {
            form.file
                .checksums
                .push(ChecksumVerifier::new(kind, value.to_str().unwrap_or("")));
        }
    }
    Ok(PostForm {
        headers,
        key,
        redirect: form
            .get("success_action_redirect")
            .or_else(|| form.get("redirect"))
            .map(str::to_owned),
        status: form.get("success_action_status").map(str::to_owned),
        base_url: form.base_url,
        file: form.file,
    })
}

/// The `tagging` field (a `Tagging` XML document) as an `x-amz-tagging` value.
fn tagging_query(doc: &str) -> Result<String, S3Error> {
    let root = xml::parse(doc.as_bytes()).map_err(S3Error::malformed_xml)?;
    let set = (root.name == "Tagging")
        .then(|| root.child("TagSet"))
        .flatten()
        .ok_or_else(|| S3Error::malformed_xml("the tagging field must be Tagging/TagSet"))?;
    let enc = crate::client::encode_unreserved;
    let mut pairs = Vec::new();
    for t in set.children_named("Tag") {
        let k = t
            .child_text("Key")
            .ok_or_else(|| S3Error::malformed_xml("a Tag has no Key"))?;
        pairs.push(format!(
            "{}={}",
            enc(k),
            enc(t.child_text("Value").unwrap_or(""))
        ));
    }
    Ok(pairs.join("&"))
}

/// The `file` field's bytes, read from the body as they arrive.
pub(crate) struct FormFile {
    reader: BodyReader,
    scanner: form::FileScanner,
    /// Bytes read with the head that are already the file's.
    pending: Option<Bytes>,
    /// File bytes scanned and checked, not yet handed to the store.
    ready: std::collections::VecDeque<Bytes>,
    /// The file's size as the body's length says (see [`read`]).
    expected: u64,
    received: u64,
    range: Option<(u64, u64)>,
    checksums: Vec<ChecksumVerifier>,
    /// The form's checksum once verified (kind, canonical base64): kept as the object's, as a
    /// PutObject's is.
    verified: Option<(ChecksumKind, String)>,
    done: bool,
}

fn too_large(max: u64) -> S3Error {
    S3Error::new(
        "EntityTooLarge",
        StatusCode::BAD_REQUEST,
        format!("Your proposed upload exceeds the maximum allowed size: the policy's content-length-range allows at most {max} bytes."),
    )
    .with("MaxSizeAllowed", max.to_string())
}

fn too_small(min: u64) -> S3Error {
    S3Error::new(
        "EntityTooSmall",
        StatusCode::BAD_REQUEST,
        format!("Your proposed upload is smaller than the minimum allowed size: the policy's content-length-range asks for at least {min} bytes."),
    )
    .with("MinSizeAllowed", min.to_string())
}

impl FormFile {
    /// The next bytes of the file, or `None` once the form's end was read and every check
    /// (size range, checksums, the body's length) held.
    async fn next(&mut self) -> Result<Option<Bytes>, S3Error> {
        loop {
            if self.done {
                return Ok(None);
            }
            if self.scanner.found() && self.ready.is_empty() {
                // The form's end after the file: read to the body's end (its length is checked
                // by the reader), bounded like the fields before the file.
                let mut rest = 0usize;
                while let Some(chunk) = self.reader.next().await? {
                    rest += chunk.len();
                    if rest > MAX_PRE_DATA_BYTES {
                        return Err(malformed("more than 20 KiB follow the file field"));
                    }
                }
                if self.received != self.expected {
                    return Err(malformed(
                        "the file field must be the form's last, followed only by the closing boundary and a line break",
                    ));
                }
                if let Some((min, _)) = self.range {
                    if self.received < min {
                        return Err(too_small(min));
                    }
                }
                for c in std::mem::take(&mut self.checksums) {
                    let verified = c.finish_value()?;
                    self.verified.get_or_insert(verified);
                }
                self.done = true;
                return Ok(None);
            }
            if let Some(piece) = self.ready.pop_front() {
                return Ok(Some(piece));
            }
            let input = match self.pending.take() {
                Some(bytes) => bytes,
                None => match self.reader.next().await? {
                    Some(chunk) => chunk,
                    None => return Err(malformed("the body ended inside the file field")),
                },
            };
            for piece in self.scanner.feed(input) {
                if piece.is_empty() {
                    continue;
                }
                self.received += piece.len() as u64;
                if let Some((_, max)) = self.range {
                    if self.received > max {
                        return Err(too_large(max));
                    }
                }
                for c in &mut self.checksums {
                    c.update(&piece);
                }
                self.ready.push_back(piece);
            }
        }
    }
}

/// The file as the storage seam reads it: its end also waits until the request's write-ahead
/// audit record is durable (as [`super::Upload`] does for a PutObject body).
struct PostUpload<'f, 'c, 'a> {
    file: &'f mut FormFile,
    ctx: &'c Ctx<'a>,
    ended: bool,
}

impl crate::backend::Payload for PostUpload<'_, '_, '_> {
    fn next(&mut self) -> crate::backend::BoxFuture<'_, Result<Option<Bytes>, S3Error>> {
        Box::pin(async move {
            if self.ended {
                return Ok(None);
            }
            match self.file.next().await? {
                Some(chunk) => Ok(Some(chunk)),
                None => {
                    self.ctx.before_change().await?;
                    self.ended = true;
                    Ok(None)
                }
            }
        })
    }

    fn checksum_kind(&self) -> Option<ChecksumKind> {
        self.file
            .verified
            .as_ref()
            .map(|(kind, _)| *kind)
            .or_else(|| self.file.checksums.first().map(ChecksumVerifier::kind))
    }

    fn verified_checksum(&self) -> Option<(ChecksumKind, String)> {
        self.file.verified.clone()
    }
}

/// Stores the form's file as the object, and answers as the form asks: a 303 to
/// `success_action_redirect` (with `bucket`, `key` and `etag` added to its query), else
/// `success_action_status` 200 (empty), 201 (a `PostResponse` document) or 204 (the default,
/// also for any other value) (RESTObjectPOST.html, "success_action_status").
pub(crate) async fn post_object(
    ctx: &Ctx<'_>,
    mut form: PostForm,
) -> Result<Response<Body>, S3Error> {
    keyhole_store::validate_key(&ctx.key)?;
    check_acl_headers(ctx)?;
    check_unsupported(ctx)?;
    let expected = form.file.expected;
    if expected > MAX_SINGLE_PUT_BYTES {
        return Err(S3Error::new(
            "EntityTooLarge",
            StatusCode::BAD_REQUEST,
            "Your proposed upload exceeds the maximum allowed size: 5 GiB for an object uploaded in one request.",
        ));
    }
    // The size is known from the body's length: a form outside its range is refused before a
    // byte is stored (the streaming check stays, for a body that lies about its length).
    if let Some((min, max)) = form.file.range {
        if expected > max {
            return Err(too_large(max));
        }
        if expected < min {
            return Err(too_small(min));
        }
    }
    let req = PutObject {
        bucket: ctx.bucket.clone(),
        key: ctx.key.clone(),
        meta: meta_from_headers(ctx)?,
        content_md5: content_md5(ctx)?,
        condition: None,
        length: expected,
        checksums: checksum_headers(ctx),
    };
    let mut payload = PostUpload {
        file: &mut form.file,
        ctx,
        ended: false,
    };
    let written = ctx.gw.storage.put_object(req, &mut payload).await?;
    let etag = quoted(&written.etag);
    let enc = crate::client::encode_unreserved;
    let location = format!("{}/{}", form.base_url, crate::client::encode_key(&ctx.key));
    let redirect = form
        .redirect
        .as_deref()
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .and_then(|u| u.parse::<http::Uri>().ok().map(|_| u));
    let mut r = if let Some(url) = redirect {
        let sep = if url.contains('?') { '&' } else { '?' };
        let target = format!(
            "{url}{sep}bucket={}&key={}&etag={}",
            enc(&ctx.bucket),
            enc(&ctx.key),
            enc(&etag)
        );
        let mut r = empty_response(StatusCode::SEE_OTHER);
        set_header(&mut r, "location", &target)?;
        r
    } else {
        match form.status.as_deref() {
            Some("200") => empty_response(StatusCode::OK),
            Some("201") => {
                let mut w = XmlWriter::new();
                w.root("PostResponse");
                w.elem("Location", &location);
                w.elem("Bucket", &ctx.bucket);
                w.elem("Key", &ctx.key);
                w.elem("ETag", &etag);
                w.close("PostResponse");
                let mut r = super::xml_ok(w.finish());
                *r.status_mut() = StatusCode::CREATED;
                set_header(&mut r, "location", &location)?;
                r
            }
            _ => {
                let mut r = empty_response(StatusCode::NO_CONTENT);
                set_header(&mut r, "location", &location)?;
                r
            }
        }
    };
    set_header(&mut r, "etag", &etag)?;
    for (name, value) in &written.extra {
        set_header(&mut r, name, value)?;
    }
    // A versioned bucket's new version (API_PostObject.html: x-amz-version-id).
    if let Some(v) = &written.version_id {
        set_header(&mut r, "x-amz-version-id", v)?;
    }
    Ok(r)
}
