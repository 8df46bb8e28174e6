//! S3 routing: a request's method, bucket, key and query become one [`Op`], and every `Op`
//! declares the IAM actions and resources it needs.
//!
//! The match in [`Op::access`] is exhaustive with no wildcard arm, so an operation cannot be added
//! without saying what it must be authorized for. Query parameters the router does not know make
//! the request `NotImplemented`, never a guessed success.

use http::Method;

use crate::error::S3Error;

/// Decoded query parameters in the order they were sent.
///
/// The raw query is kept once; a name or value with nothing to decode (every `X-Amz-*` of a
/// presigned URL but the credential) is a range of it, so parsing a typical query allocates
/// twice, not twice per parameter (issue 16).
#[derive(Debug, Default, Clone)]
pub struct Query {
    raw: String,
    pairs: Vec<(Component, Component)>,
}

/// A name or a value: a range of the raw query, or the decoded text when decoding changed it.
#[derive(Debug, Clone)]
enum Component {
    Raw(std::ops::Range<usize>),
    Decoded(String),
}

impl Query {
    /// Parses a raw query string (`a=1&b&c=%20`); `+` is a space, as S3 reads it.
    pub fn parse(raw: Option<&str>) -> Query {
        let raw = raw.unwrap_or("");
        let mut pairs = Vec::with_capacity(raw.bytes().filter(|&b| b == b'&').count() + 1);
        let mut at = 0;
        for part in raw.split('&') {
            let start = at;
            at += part.len() + 1;
            if part.is_empty() {
                continue;
            }
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let v_start = start + k.len() + 1;
            pairs.push((
                Component::of(k, start),
                Component::of(v, v_start.min(start + part.len())),
            ));
        }
        Query {
            raw: raw.to_owned(),
            pairs,
        }
    }

    fn text<'a>(&'a self, c: &'a Component) -> &'a str {
        match c {
            Component::Raw(r) => self.raw.get(r.clone()).unwrap_or_default(),
            Component::Decoded(s) => s,
        }
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| self.text(k) == name)
            .map(|(_, v)| self.text(v))
    }

    /// Whether `name` is present (with or without a value).
    pub fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| self.text(k) == name)
    }

    /// All names present.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(k, _)| self.text(k))
    }

    /// Every (name, value) in the order sent.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (self.text(k), self.text(v)))
    }

    /// Replaces the first value of `name` (what [`Query::get`] answers) with `value`; nothing
    /// when `name` is absent.
    pub fn set_first(&mut self, name: &str, value: &str) {
        let at = self.pairs.iter().position(|(k, _)| self.text(k) == name);
        if let Some((_, v)) = at.and_then(|i| self.pairs.get_mut(i)) {
            *v = Component::Decoded(value.to_owned());
        }
    }
}

impl Component {
    /// `s`, found at byte `at` of the raw query.
    fn of(s: &str, at: usize) -> Component {
        // Most names and values (every X-Amz-* of a presigned URL but the credential, dates,
        // hashes) have nothing to decode.
        if !s.bytes().any(|b| b == b'+' || b == b'%') {
            return Component::Raw(at..at + s.len());
        }
        Component::Decoded(decode_component(s))
    }
}

/// `s` with `+` read as a space and `%XX` as the byte XX (a `%` not followed by two hex digits
/// stays as it is), in one pass and one allocation; bytes that do not form UTF-8 become U+FFFD.
fn decode_component(s: &str) -> String {
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = match (b, bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => hex(h).zip(hex(l)).map(|(h, l)| (h * 16 + l) as u8),
            _ => None,
        };
        match (b, escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (other, None) => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Where a copy reads from (`x-amz-copy-source`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySource {
    /// Source bucket.
    pub bucket: String,
    /// Source key.
    pub key: String,
    /// The source version (`?versionId=` on the header): the copy then reads that version and
    /// needs `s3:GetObjectVersion` on the source, not `s3:GetObject`
    /// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html, Permissions).
    pub version_id: Option<String>,
}

impl CopySource {
    /// Parses `bucket/key` or `/bucket/key`, URL-encoded, optionally with `?versionId=ID`.
    pub fn parse(raw: &str) -> Result<CopySource, S3Error> {
        let (path, query) = raw.split_once('?').unwrap_or((raw, ""));
        let mut version_id = None;
        if !query.is_empty() {
            let q = Query::parse(Some(query));
            match q.get("versionId") {
                Some(v) if !v.is_empty() && q.names().count() == 1 => {
                    version_id = Some(v.to_owned());
                }
                _ => {
                    return Err(S3Error::invalid_argument(
                        "x-amz-copy-source may carry only `?versionId=ID` after the key",
                    )
                    .with("ArgumentName", "x-amz-copy-source"))
                }
            }
        }
        let decoded = percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .map_err(|_| S3Error::invalid_argument("x-amz-copy-source is not valid UTF-8"))?;
        let trimmed = decoded.strip_prefix('/').unwrap_or(&decoded);
        match trimmed.split_once('/') {
            Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok(CopySource {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                version_id,
            }),
            _ => Err(S3Error::invalid_argument(
                "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            )
            .with("ArgumentName", "x-amz-copy-source")),
        }
    }
}

/// Every S3 operation keyhole serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `GET /`
    ListBuckets,
    /// `PUT /b`
    CreateBucket,
    /// `DELETE /b`
    DeleteBucket,
    /// `HEAD /b`
    HeadBucket,
    /// `GET /b?location`
    GetBucketLocation,
    /// `GET /b`
    ListObjects,
    /// `GET /b?list-type=2`
    ListObjectsV2,
    /// `GET /b?uploads`
    ListMultipartUploads,
    /// `POST /b?delete`
    DeleteObjects,
    /// `PUT /b/k`
    PutObject,
    /// `PUT /b/k` with `x-amz-copy-source`
    CopyObject(CopySource),
    /// `POST /b` with a `multipart/form-data` body (a browser-form upload; the key is a field)
    PostObject,
    /// `GET /b/k`
    GetObject,
    /// `HEAD /b/k`
    HeadObject,
    /// `DELETE /b/k`
    DeleteObject,
    /// `POST /b/k?uploads`
    CreateMultipartUpload,
    /// `PUT /b/k?partNumber=N&uploadId=U`
    UploadPart {
        /// The upload.
        upload_id: String,
        /// 1..=10000.
        part_number: u32,
    },
    /// `PUT /b/k?partNumber=N&uploadId=U` with `x-amz-copy-source`
    UploadPartCopy {
        /// The upload.
        upload_id: String,
        /// 1..=10000.
        part_number: u32,
        /// Where the part's bytes come from.
        source: CopySource,
    },
    /// `POST /b/k?uploadId=U`
    CompleteMultipartUpload {
        /// The upload.
        upload_id: String,
    },
    /// `DELETE /b/k?uploadId=U`
    AbortMultipartUpload {
        /// The upload.
        upload_id: String,
    },
    /// `GET /b/k?uploadId=U`
    ListParts {
        /// The upload.
        upload_id: String,
    },
    /// `GET /b?policy`
    GetBucketPolicy,
    /// `PUT /b?policy`
    PutBucketPolicy,
    /// `DELETE /b?policy`
    DeleteBucketPolicy,
    /// `GET /b?policyStatus`
    GetBucketPolicyStatus,
    /// `GET /b?publicAccessBlock`
    GetPublicAccessBlock,
    /// `PUT /b?publicAccessBlock`
    PutPublicAccessBlock,
    /// `DELETE /b?publicAccessBlock`
    DeletePublicAccessBlock,
    /// S3 Control `GET /v20180820/configuration/publicAccessBlock` (x-amz-account-id)
    GetAccountPublicAccessBlock,
    /// S3 Control `PUT /v20180820/configuration/publicAccessBlock`
    PutAccountPublicAccessBlock,
    /// S3 Control `DELETE /v20180820/configuration/publicAccessBlock`
    DeleteAccountPublicAccessBlock,
    /// `GET /b/k?tagging`
    GetObjectTagging,
    /// `PUT /b/k?tagging`
    PutObjectTagging,
    /// `DELETE /b/k?tagging`
    DeleteObjectTagging,
    /// `GET /b?acl`
    GetBucketAcl,
    /// `PUT /b?acl`
    PutBucketAcl,
    /// `GET /b/k?acl`
    GetObjectAcl,
    /// `PUT /b/k?acl`
    PutObjectAcl,
    /// `GET /b?ownershipControls`
    GetBucketOwnershipControls,
    /// `PUT /b?ownershipControls`
    PutBucketOwnershipControls,
    /// `GET /b/k?attributes`
    GetObjectAttributes,
    /// `GET /b?cors`
    GetBucketCors,
    /// `PUT /b?cors`
    PutBucketCors,
    /// `DELETE /b?cors`
    DeleteBucketCors,
    /// `OPTIONS /b` or `OPTIONS /b/k`: a CORS preflight
    OptionsObject,
    /// `GET /b?versioning`
    GetBucketVersioning,
    /// `PUT /b?versioning`
    PutBucketVersioning,
    /// `GET /b?versions`
    ListObjectVersions,
    /// `GET /b?tagging`
    GetBucketTagging,
    /// `PUT /b?tagging`
    PutBucketTagging,
    /// `DELETE /b?tagging`
    DeleteBucketTagging,
    /// `GET /b?object-lock`
    GetObjectLockConfiguration,
    /// `PUT /b?object-lock`
    PutObjectLockConfiguration,
    /// `GET /b/k?retention`
    GetObjectRetention,
    /// `PUT /b/k?retention`
    PutObjectRetention,
    /// `GET /b/k?legal-hold`
    GetObjectLegalHold,
    /// `PUT /b/k?legal-hold`
    PutObjectLegalHold,
}

pub use crate::authz::Permission;

/// What an operation must be authorized for before its handler runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// Checked by the pipeline before the body is read.
    pub upfront: Vec<Permission>,
    /// Checked by the handler for each key named in the body (DeleteObjects), with this action.
    pub per_key: Option<&'static str>,
}

/// `arn:aws:s3:::bucket`
pub fn bucket_arn(bucket: &str) -> String {
    format!("arn:aws:s3:::{bucket}")
}

/// `arn:aws:s3:::bucket/key`
pub fn object_arn(bucket: &str, key: &str) -> String {
    format!("arn:aws:s3:::{bucket}/{key}")
}

/// Query parameters that only select or shape an operation already chosen, or belong to SigV4.
const PLAIN_PARAMS: &[&str] = &[
    "list-type",
    "max-buckets",
    "bucket-region",
    "prefix",
    "delimiter",
    "max-keys",
    "marker",
    "continuation-token",
    "start-after",
    "encoding-type",
    "fetch-owner",
    "key-marker",
    "upload-id-marker",
    "max-uploads",
    "max-parts",
    "part-number-marker",
    "response-content-type",
    "response-content-language",
    "response-expires",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "x-id",
    "uploadId",
    "partNumber",
    "uploads",
    "location",
    "tagging",
    "delete",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "acl",
    "ownershipControls",
    "attributes",
    "cors",
    "versioning",
    "versions",
    "versionId",
    "version-id-marker",
    "object-lock",
    "retention",
    "legal-hold",
];

/// The query parameters of a presigned URL (after `X-Amz-`), read by the authenticator.
const PRESIGNED_PARAMS: &[&str] = &[
    "Algorithm",
    "Credential",
    "Date",
    "Expires",
    "SignedHeaders",
    "Signature",
    "Security-Token",
];

/// Whether the router knows query parameter `name` (presigned URLs' parameters are looked for
/// among their seven, not among all of the others: issue 16's instruction counts).
fn is_plain_param(name: &str) -> bool {
    match name.strip_prefix("X-Amz-") {
        Some(rest) => PRESIGNED_PARAMS.contains(&rest),
        None => PLAIN_PARAMS.contains(&name),
    }
}

/// Sub-resources of a bucket only: on an object path they are refused.
const BUCKET_SUBRESOURCES: &[&str] = &[
    "location",
    "delete",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "ownershipControls",
    "list-type",
    "cors",
    "versioning",
    "versions",
    "object-lock",
];

impl Op {
    /// Chooses the operation for a request.
    pub fn route(
        method: &Method,
        bucket: Option<&str>,
        key: Option<&str>,
        query: &Query,
        copy_source: Option<&str>,
    ) -> Result<Op, S3Error> {
        if let Some(unknown) = query.names().find(|n| !is_plain_param(n)) {
            return Err(S3Error::not_implemented(&format!(
                "the `{unknown}` query parameter"
            )));
        }
        // A presigned URL's own parameters name no sub-resource: a query of only those routes
        // as an empty one, without a scan of it per sub-resource below.
        let empty = Query::default();
        let query = if query.names().all(|n| n.starts_with("X-Amz-")) {
            &empty
        } else {
            query
        };
        let upload_id = || query.get("uploadId").map(str::to_owned);
        let part_number = || -> Result<u32, S3Error> {
            let raw = query.get("partNumber").unwrap_or("");
            match raw.parse::<u32>() {
                Ok(n) if (1..=10_000).contains(&n) => Ok(n),
                _ => Err(S3Error::invalid_argument(
                    "Part number must be an integer between 1 and 10000, inclusive",
                )
                .with("ArgumentName", "partNumber")
                .with("ArgumentValue", raw)),
            }
        };
        let op = match (bucket, key) {
            // A preflight names the resource the actual request will be about; its query is
            // not read.
            (Some(_), _) if *method == Method::OPTIONS => Op::OptionsObject,
            (None, _) => match *method {
                Method::GET => Op::ListBuckets,
                _ => return Err(method_not_allowed(method)),
            },
            (Some(_), None) if query.has("policy") => match *method {
                Method::GET => Op::GetBucketPolicy,
                Method::PUT => Op::PutBucketPolicy,
                Method::DELETE => Op::DeleteBucketPolicy,
                _ => return Err(method_not_allowed(method)),
            },
            (Some(_), None) if query.has("policyStatus") => match *method {
                Method::GET => Op::GetBucketPolicyStatus,
                _ => return Err(method_not_allowed(method)),
            },
            (Some(_), None) if query.has("publicAccessBlock") => match *method {
                Method::GET => Op::GetPublicAccessBlock,
                Method::PUT => Op::PutPublicAccessBlock,
                Method::DELETE => Op::DeletePublicAccessBlock,
                _ => return Err(method_not_allowed(method)),
            },
            (Some(_), None) if query.has("cors") => match *method {
                Method::GET => Op::GetBucketCors,
                Method::PUT => Op::PutBucketCors,
                Method::DELETE => Op::DeleteBucketCors,
                _ => return Err(method_not_allowed(method)),
            },
            (Some(_), None) if query.has("versioning") => match *method {
                Method::GET => Op::GetBucketVersioning,
                Method::PUT => Op::PutBucketVersioning,
                _ => return Err(method_not_allowed(method)),
            },
            (Some(_), None) if query.has("object-lock") => match *method {
                Method::GET => Op::GetObjectLockConfiguration,
                Method::PUT => Op::PutObjectLockConfiguration,
                _ => return Err(method_not_allowed(method)),
            },
            (Some(_), None) if query.has("versions") => match *method {
                Method::GET => Op::ListObjectVersions,
                _ => return Err(method_not_allowed(method)),
            },
            (Some(_), None) if query.has("acl") => match *method {
                Method::GET => Op::GetBucketAcl,
                Method::PUT => Op::PutBucketAcl,
                _ => return Err(method_not_allowed(method)),
            },
            (Some(_), None) if query.has("ownershipControls") => match *method {
                Method::GET => Op::GetBucketOwnershipControls,
                Method::PUT => Op::PutBucketOwnershipControls,
                Method::DELETE => {
                    return Err(S3Error::not_implemented(
                        "DeleteBucketOwnershipControls (it would enable ACLs; every bucket stays BucketOwnerEnforced)",
                    ))
                }
                _ => return Err(method_not_allowed(method)),
            },
            (Some(_), None) if query.has("tagging") => match *method {
                Method::GET => Op::GetBucketTagging,
                Method::PUT => Op::PutBucketTagging,
                Method::DELETE => Op::DeleteBucketTagging,
                _ => return Err(method_not_allowed(method)),
            },
            (Some(_), None) => match *method {
                Method::PUT if query.has("location") => {
                    return Err(S3Error::not_implemented("this bucket configuration"))
                }
                Method::PUT => Op::CreateBucket,
                Method::DELETE => Op::DeleteBucket,
                Method::HEAD => Op::HeadBucket,
                Method::GET if query.has("location") => Op::GetBucketLocation,
                Method::GET if query.has("uploads") => Op::ListMultipartUploads,
                Method::GET if query.get("list-type") == Some("2") => Op::ListObjectsV2,
                Method::GET if query.has("list-type") => {
                    return Err(S3Error::invalid_argument("list-type must be 2 when given")
                        .with("ArgumentName", "list-type"))
                }
                Method::GET => Op::ListObjects,
                Method::POST if query.has("delete") => Op::DeleteObjects,
                _ => return Err(method_not_allowed(method)),
            },
            (Some(_), Some(_)) if BUCKET_SUBRESOURCES.iter().any(|n| query.has(n)) => {
                // A bucket's sub-resource on an object path names no operation S3 has: refused,
                // never served as the plain object operation.
                let name = BUCKET_SUBRESOURCES
                    .iter()
                    .find(|n| query.has(n))
                    .copied()
                    .unwrap_or_default();
                return Err(S3Error::not_implemented(&format!(
                    "the bucket sub-resource `{name}` on an object"
                )));
            }
            (Some(_), Some(_)) if query.has("uploads") && *method != Method::POST => {
                return Err(S3Error::not_implemented(
                    "the `uploads` sub-resource on an object other than in CreateMultipartUpload (POST)",
                ))
            }
            (Some(_), Some(_)) if query.has("retention") => match *method {
                Method::GET => Op::GetObjectRetention,
                Method::PUT => Op::PutObjectRetention,
                _ => return Err(method_not_allowed(method)),
            },
            (Some(_), Some(_)) if query.has("legal-hold") => match *method {
                Method::GET => Op::GetObjectLegalHold,
                Method::PUT => Op::PutObjectLegalHold,
                _ => return Err(method_not_allowed(method)),
            },
            (Some(_), Some(_)) if query.has("attributes") => match *method {
                Method::GET => Op::GetObjectAttributes,
                _ => return Err(method_not_allowed(method)),
            },
            (Some(_), Some(_)) if query.has("acl") => match *method {
                Method::GET => Op::GetObjectAcl,
                Method::PUT => Op::PutObjectAcl,
                _ => return Err(method_not_allowed(method)),
            },
            (Some(_), Some(_)) => match *method {
                Method::PUT if query.has("tagging") => Op::PutObjectTagging,
                Method::PUT if query.has("uploadId") || query.has("partNumber") => {
                    let upload_id = upload_id().ok_or_else(|| {
                        S3Error::invalid_request("UploadPart needs both uploadId and partNumber")
                    })?;
                    let part_number = part_number()?;
                    match copy_source {
                        Some(src) => Op::UploadPartCopy {
                            upload_id,
                            part_number,
                            source: CopySource::parse(src)?,
                        },
                        None => Op::UploadPart {
                            upload_id,
                            part_number,
                        },
                    }
                }
                Method::PUT => match copy_source {
                    Some(src) => Op::CopyObject(CopySource::parse(src)?),
                    None => Op::PutObject,
                },
                Method::GET if query.has("tagging") => Op::GetObjectTagging,
                Method::GET if query.has("uploadId") => Op::ListParts {
                    upload_id: upload_id().unwrap_or_default(),
                },
                Method::GET => Op::GetObject,
                Method::HEAD => Op::HeadObject,
                Method::DELETE if query.has("tagging") => Op::DeleteObjectTagging,
                Method::DELETE if query.has("uploadId") => Op::AbortMultipartUpload {
                    upload_id: upload_id().unwrap_or_default(),
                },
                Method::DELETE => Op::DeleteObject,
                Method::POST if query.has("uploads") => Op::CreateMultipartUpload,
                Method::POST if query.has("uploadId") => Op::CompleteMultipartUpload {
                    upload_id: upload_id().unwrap_or_default(),
                },
                _ => return Err(method_not_allowed(method)),
            },
        };
        if query.has("versionId") && !op.takes_version_id() {
            return Err(S3Error::not_implemented(&format!(
                "the `versionId` query parameter on {}",
                op.name()
            )));
        }
        Ok(op)
    }

    /// Whether the operation acts on one version named by `?versionId=` (S3: GetObject,
    /// HeadObject, DeleteObject, the object tagging and ACL operations, GetObjectAttributes).
    pub fn takes_version_id(&self) -> bool {
        matches!(
            self,
            Op::GetObject
                | Op::HeadObject
                | Op::DeleteObject
                | Op::GetObjectTagging
                | Op::PutObjectTagging
                | Op::DeleteObjectTagging
                | Op::GetObjectAcl
                | Op::PutObjectAcl
                | Op::GetObjectAttributes
                | Op::GetObjectRetention
                | Op::PutObjectRetention
                | Op::GetObjectLegalHold
                | Op::PutObjectLegalHold
        )
    }

    /// S3 Control's account-level public access block, recognised by its path and the
    /// `x-amz-account-id` header (clients put the account id in the host name too). `None` when
    /// the request is not an S3 Control request.
    pub fn route_control(
        method: &Method,
        path: &str,
        account_header: Option<&str>,
    ) -> Option<Result<Op, S3Error>> {
        account_header?;
        if path != "/v20180820/configuration/publicAccessBlock" {
            return None;
        }
        Some(match *method {
            Method::GET => Ok(Op::GetAccountPublicAccessBlock),
            Method::PUT => Ok(Op::PutAccountPublicAccessBlock),
            Method::DELETE => Ok(Op::DeleteAccountPublicAccessBlock),
            _ => Err(method_not_allowed(method)),
        })
    }

    /// Whether the operation is a write that takes `If-Match`/`If-None-Match` (S3 conditional
    /// writes: PutObject, CopyObject, CompleteMultipartUpload).
    pub fn is_conditional_write(&self) -> bool {
        matches!(
            self,
            Op::PutObject | Op::CopyObject(_) | Op::CompleteMultipartUpload { .. }
        )
    }

    /// Whether `If-Match` makes the operation compare the current object's ETag: the conditional
    /// writes and DeleteObject. A match or a mismatch tells the caller about the object, so it
    /// needs `s3:GetObject` too ("conditional deletes with a specific ETag value require both
    /// s3:DeleteObject and s3:GetObject permissions",
    /// https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-delete-enforce.html).
    pub fn compares_current_etag(&self) -> bool {
        self.is_conditional_write() || matches!(self, Op::DeleteObject)
    }

    /// Whether the operation sets the new object's tags from the request's `x-amz-tagging` header
    /// (given `x-amz-tagging-directive`): PutObject and CreateMultipartUpload always, CopyObject
    /// only with `REPLACE` (with `COPY`, the default, the source's tags are copied and the header
    /// is ignored). UploadPart, UploadPartCopy and CompleteMultipartUpload never do: the upload's
    /// tags were fixed when it was created. Such a request needs `s3:PutObjectTagging` too: "To
    /// successfully set the tag-set with your PutObject request, you must have the
    /// s3:PutObjectTagging" (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html,
    /// Permissions). The handlers read the header only for these operations
    /// (`object::meta_from_headers`).
    pub fn applies_tagging_header(&self, tagging_directive: Option<&str>) -> bool {
        match self {
            // A form's `tagging` field sets the tags as `x-amz-tagging` does (it is turned into
            // that header, `s3::post`).
            Op::PutObject | Op::PostObject | Op::CreateMultipartUpload => true,
            // The handler refuses any directive but COPY and REPLACE.
            Op::CopyObject(_) => tagging_directive.is_some_and(|d| d != "COPY"),
            _ => false,
        }
    }

    /// Whether the operation creates an object (`s3:ObjectCreationOperation`): PutObject,
    /// CopyObject and CompleteMultipartUpload; not the multipart steps before completion
    /// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes-enforce.html).
    pub fn creates_object(&self) -> bool {
        self.is_conditional_write() || matches!(self, Op::PostObject)
    }

    /// Where the operation copies from (CopyObject, UploadPartCopy).
    pub fn copy_source(&self) -> Option<&CopySource> {
        match self {
            Op::CopyObject(src) | Op::UploadPartCopy { source: src, .. } => Some(src),
            _ => None,
        }
    }

    /// The operation's name as AWS's API reference spells it (used in logs and audit).
    pub fn name(&self) -> &'static str {
        match self {
            Op::ListBuckets => "ListBuckets",
            Op::CreateBucket => "CreateBucket",
            Op::DeleteBucket => "DeleteBucket",
            Op::HeadBucket => "HeadBucket",
            Op::GetBucketLocation => "GetBucketLocation",
            Op::ListObjects => "ListObjects",
            Op::ListObjectsV2 => "ListObjectsV2",
            Op::ListMultipartUploads => "ListMultipartUploads",
            Op::DeleteObjects => "DeleteObjects",
            Op::PutObject => "PutObject",
            Op::CopyObject(_) => "CopyObject",
            Op::PostObject => "PostObject",
            Op::GetObject => "GetObject",
            Op::HeadObject => "HeadObject",
            Op::DeleteObject => "DeleteObject",
            Op::CreateMultipartUpload => "CreateMultipartUpload",
            Op::UploadPart { .. } => "UploadPart",
            Op::UploadPartCopy { .. } => "UploadPartCopy",
            Op::CompleteMultipartUpload { .. } => "CompleteMultipartUpload",
            Op::AbortMultipartUpload { .. } => "AbortMultipartUpload",
            Op::ListParts { .. } => "ListParts",
            Op::GetBucketPolicy => "GetBucketPolicy",
            Op::PutBucketPolicy => "PutBucketPolicy",
            Op::DeleteBucketPolicy => "DeleteBucketPolicy",
            Op::GetBucketPolicyStatus => "GetBucketPolicyStatus",
            Op::GetPublicAccessBlock => "GetPublicAccessBlock",
            Op::PutPublicAccessBlock => "PutPublicAccessBlock",
            Op::DeletePublicAccessBlock => "DeletePublicAccessBlock",
            Op::GetAccountPublicAccessBlock => "GetPublicAccessBlock (account)",
            Op::PutAccountPublicAccessBlock => "PutPublicAccessBlock (account)",
            Op::DeleteAccountPublicAccessBlock => "DeletePublicAccessBlock (account)",
            Op::GetObjectTagging => "GetObjectTagging",
            Op::PutObjectTagging => "PutObjectTagging",
            Op::DeleteObjectTagging => "DeleteObjectTagging",
            Op::GetBucketAcl => "GetBucketAcl",
            Op::PutBucketAcl => "PutBucketAcl",
            Op::GetObjectAcl => "GetObjectAcl",
            Op::PutObjectAcl => "PutObjectAcl",
            Op::GetBucketOwnershipControls => "GetBucketOwnershipControls",
            Op::PutBucketOwnershipControls => "PutBucketOwnershipControls",
            Op::GetObjectAttributes => "GetObjectAttributes",
            Op::GetBucketCors => "GetBucketCors",
            Op::PutBucketCors => "PutBucketCors",
            Op::DeleteBucketCors => "DeleteBucketCors",
            Op::OptionsObject => "OptionsObject",
            Op::GetBucketVersioning => "GetBucketVersioning",
            Op::PutBucketVersioning => "PutBucketVersioning",
            Op::ListObjectVersions => "ListObjectVersions",
            Op::GetBucketTagging => "GetBucketTagging",
            Op::PutBucketTagging => "PutBucketTagging",
            Op::DeleteBucketTagging => "DeleteBucketTagging",
            Op::GetObjectLockConfiguration => "GetObjectLockConfiguration",
            Op::PutObjectLockConfiguration => "PutObjectLockConfiguration",
            Op::GetObjectRetention => "GetObjectRetention",
            Op::PutObjectRetention => "PutObjectRetention",
            Op::GetObjectLegalHold => "GetObjectLegalHold",
            Op::PutObjectLegalHold => "PutObjectLegalHold",
        }
    }

    /// The IAM actions and resources this operation needs, per AWS's "Actions, resources, and
    /// condition keys for Amazon S3" and "Required permissions for Amazon S3 API operations"
    /// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html).
    ///
    /// `versioned`: the request names a version (`?versionId=`). The operation then needs the
    /// version's own action: "To return a different version, use the versionId subresource ...
    /// you need the s3:GetObjectVersion permission" (API_GetObject.html, Permissions), "To
    /// delete a specific version ... s3:DeleteObjectVersion" (API_DeleteObject.html), and
    /// likewise `s3:{Get,Put,Delete}ObjectVersionTagging`, `s3:{Get,Put}ObjectVersionAcl` and
    /// `s3:GetObjectVersionAttributes` ("Actions, resources, and condition keys for Amazon S3").
    /// The plain action does not stand in for the version's: a user with `s3:GetObject` only
    /// cannot read an older version.
    pub fn access(&self, bucket: &str, key: &str, versioned: bool) -> Access {
        let v = |plain: &'static str, version: &'static str| {
            if versioned {
                version
            } else {
                plain
            }
        };
        let on_bucket = |action| Permission {
            action,
            resource: bucket_arn(bucket),
        };
        let on_object = |action| Permission {
            action,
            resource: object_arn(bucket, key),
        };
        let upfront = match self {
            Op::ListBuckets => vec![Permission {
                action: "s3:ListAllMyBuckets",
                resource: "*".to_owned(),
            }],
            Op::CreateBucket => vec![on_bucket("s3:CreateBucket")],
            Op::DeleteBucket => vec![on_bucket("s3:DeleteBucket")],
            Op::HeadBucket | Op::ListObjects | Op::ListObjectsV2 => {
                vec![on_bucket("s3:ListBucket")]
            }
            Op::GetBucketLocation => vec![on_bucket("s3:GetBucketLocation")],
            Op::ListMultipartUploads => vec![on_bucket("s3:ListBucketMultipartUploads")],
            Op::DeleteObjects => {
                return Access {
                    upfront: Vec::new(),
                    per_key: Some("s3:DeleteObject"),
                }
            }
            // "Authorizes ... PUT Object, POST Object ..." (the Service Authorization
            // Reference's s3:PutObject).
            Op::PutObject
            | Op::PostObject
            | Op::CreateMultipartUpload
            | Op::UploadPart { .. }
            | Op::CompleteMultipartUpload { .. } => vec![on_object("s3:PutObject")],
            Op::CopyObject(src) | Op::UploadPartCopy { source: src, .. } => vec![
                on_object("s3:PutObject"),
                Permission {
                    action: if src.version_id.is_some() {
                        "s3:GetObjectVersion"
                    } else {
                        "s3:GetObject"
                    },
                    resource: object_arn(&src.bucket, &src.key),
                },
            ],
            Op::GetObject | Op::HeadObject => {
                vec![on_object(v("s3:GetObject", "s3:GetObjectVersion"))]
            }
            Op::DeleteObject => vec![on_object(v("s3:DeleteObject", "s3:DeleteObjectVersion"))],
            Op::AbortMultipartUpload { .. } => vec![on_object("s3:AbortMultipartUpload")],
            Op::ListParts { .. } => vec![on_object("s3:ListMultipartUploadParts")],
            Op::GetBucketPolicy => vec![on_bucket("s3:GetBucketPolicy")],
            Op::PutBucketPolicy => vec![on_bucket("s3:PutBucketPolicy")],
            Op::DeleteBucketPolicy => vec![on_bucket("s3:DeleteBucketPolicy")],
            Op::GetBucketPolicyStatus => vec![on_bucket("s3:GetBucketPolicyStatus")],
            Op::GetPublicAccessBlock => vec![on_bucket("s3:GetBucketPublicAccessBlock")],
            Op::PutPublicAccessBlock | Op::DeletePublicAccessBlock => {
                vec![on_bucket("s3:PutBucketPublicAccessBlock")]
            }
            Op::GetAccountPublicAccessBlock => vec![Permission {
                action: "s3:GetAccountPublicAccessBlock",
                resource: "*".to_owned(),
            }],
            Op::PutAccountPublicAccessBlock | Op::DeleteAccountPublicAccessBlock => {
                vec![Permission {
                    action: "s3:PutAccountPublicAccessBlock",
                    resource: "*".to_owned(),
                }]
            }
            Op::GetObjectTagging => vec![on_object(v(
                "s3:GetObjectTagging",
                "s3:GetObjectVersionTagging",
            ))],
            // Decided once the (small) document is read: its tags are what
            // `s3:RequestObjectTag/*` and `s3:RequestObjectTagKeys` test ("useful when adding
            // tags to objects using the PutObjectTagging and PutObject",
            // https://docs.aws.amazon.com/AmazonS3/latest/userguide/tagging-and-policies.html;
            // review 16, F3).
            Op::PutObjectTagging => {
                return Access {
                    upfront: Vec::new(),
                    per_key: Some(v("s3:PutObjectTagging", "s3:PutObjectVersionTagging")),
                }
            }
            Op::DeleteObjectTagging => vec![on_object(v(
                "s3:DeleteObjectTagging",
                "s3:DeleteObjectVersionTagging",
            ))],
            Op::GetBucketAcl => vec![on_bucket("s3:GetBucketAcl")],
            Op::PutBucketAcl => vec![on_bucket("s3:PutBucketAcl")],
            Op::GetObjectAcl => vec![on_object(v("s3:GetObjectAcl", "s3:GetObjectVersionAcl"))],
            Op::PutObjectAcl => vec![on_object(v("s3:PutObjectAcl", "s3:PutObjectVersionAcl"))],
            Op::GetBucketOwnershipControls => vec![on_bucket("s3:GetBucketOwnershipControls")],
            Op::PutBucketOwnershipControls => vec![on_bucket("s3:PutBucketOwnershipControls")],
            // "If the bucket is not versioned, you need the s3:GetObject and
            // s3:GetObjectAttributes permissions" (API_GetObjectAttributes.html, Permissions).
            // With a version id, "you need the s3:GetObjectVersion and
            // s3:GetObjectVersionAttributes permissions" (same page).
            Op::GetObjectAttributes => vec![
                on_object(v("s3:GetObject", "s3:GetObjectVersion")),
                on_object(v("s3:GetObjectAttributes", "s3:GetObjectVersionAttributes")),
            ],
            Op::GetBucketCors => vec![on_bucket("s3:GetBucketCORS")],
            // "To use this operation [DeleteBucketCors], you must have permission to perform
            // the s3:PutBucketCORS action" (API_DeleteBucketCors.html).
            Op::PutBucketCors | Op::DeleteBucketCors => vec![on_bucket("s3:PutBucketCORS")],
            // Needs no permission: `S3Call::requirement` declares it unconditional (nothing
            // here could ever be granted to the anonymous browser that sends it).
            Op::OptionsObject => Vec::new(),
            Op::GetBucketVersioning => vec![on_bucket("s3:GetBucketVersioning")],
            // The Object Lock actions have no version variants: they name versions themselves
            // ("Actions, resources, and condition keys for Amazon S3").
            Op::GetObjectLockConfiguration => {
                vec![on_bucket("s3:GetBucketObjectLockConfiguration")]
            }
            Op::PutObjectLockConfiguration => {
                vec![on_bucket("s3:PutBucketObjectLockConfiguration")]
            }
            Op::GetObjectRetention => vec![on_object("s3:GetObjectRetention")],
            Op::GetObjectLegalHold => vec![on_object("s3:GetObjectLegalHold")],
            // Decided once the (small) document is read: the retention or hold it sets is what
            // `s3:object-lock-*` conditions test (review 12), as DeleteObjects decides its keys
            // once it has read them.
            Op::PutObjectRetention => {
                return Access {
                    upfront: Vec::new(),
                    per_key: Some("s3:PutObjectRetention"),
                }
            }
            Op::PutObjectLegalHold => {
                return Access {
                    upfront: Vec::new(),
                    per_key: Some("s3:PutObjectLegalHold"),
                }
            }
            Op::PutBucketVersioning => vec![on_bucket("s3:PutBucketVersioning")],
            Op::ListObjectVersions => vec![on_bucket("s3:ListBucketVersions")],
            Op::GetBucketTagging => vec![on_bucket("s3:GetBucketTagging")],
            // DeleteBucketTagging has no action of its own: "To use this operation, you must have
            // permission to perform the s3:PutBucketTagging action"
            // (https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteBucketTagging.html).
            Op::PutBucketTagging | Op::DeleteBucketTagging => {
                vec![on_bucket("s3:PutBucketTagging")]
            }
        };
        Access {
            upfront,
            per_key: None,
        }
    }
}

fn method_not_allowed(method: &Method) -> S3Error {
    S3Error::new(
        "MethodNotAllowed",
        http::StatusCode::METHOD_NOT_ALLOWED,
        format!("The specified method `{method}` is not allowed against this resource."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_first_replaces_the_value_get_answers_and_only_it() {
        let mut q = Query::parse(Some("Action=GetUser&UserName=BOB&UserName=x&Other=%41"));
        q.set_first("UserName", "Bob");
        assert_eq!(q.get("UserName"), Some("Bob"));
        assert_eq!(
            q.pairs().collect::<Vec<_>>(),
            vec![
                ("Action", "GetUser"),
                ("UserName", "Bob"),
                ("UserName", "x"),
                ("Other", "A")
            ]
        );
        q.set_first("Missing", "v");
        assert!(!q.has("Missing"));
    }

    /// The parse of every parameter on its own, as the query parser did before it kept ranges.
    fn decoded_pairs(raw: &str) -> Vec<(String, String)> {
        let dec = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        raw.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (dec(k), dec(v))
            })
            .collect()
    }

    proptest::proptest! {
        /// Names and values read back exactly as decoding each of them gives, for queries with
        /// empty parts, names without `=`, `=` in values, `+`, escapes and non-ASCII text.
        #[test]
        fn query_parameters_read_back_decoded(raw in "([a-zA-Z0-9%+=&é/._-]|%[0-9A-Fa-f]{2}){0,60}") {
            let q = Query::parse(Some(&raw));
            let want = decoded_pairs(&raw);
            let names: Vec<&str> = q.names().collect();
            proptest::prop_assert_eq!(names, want.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>());
            for (k, v) in &want {
                let first = want.iter().find(|(k2, _)| k2 == k).map(|(_, v)| v.as_str());
                proptest::prop_assert_eq!(q.get(k), first);
                proptest::prop_assert!(q.has(k));
                let _ = v;
            }
        }
    }

    fn route(m: Method, b: Option<&str>, k: Option<&str>, q: &str) -> Result<Op, S3Error> {
        Op::route(&m, b, k, &Query::parse(Some(q)), None)
    }

    #[test]
    fn routes_the_common_operations() {
        assert_eq!(route(Method::GET, None, None, "").unwrap(), Op::ListBuckets);
        assert_eq!(
            route(Method::GET, Some("b"), None, "list-type=2&prefix=a").unwrap(),
            Op::ListObjectsV2
        );
        assert_eq!(
            route(Method::GET, Some("b"), None, "").unwrap(),
            Op::ListObjects
        );
        assert_eq!(
            route(Method::POST, Some("b"), None, "delete").unwrap(),
            Op::DeleteObjects
        );
        assert_eq!(
            route(Method::GET, Some("b"), Some("k"), "x-id=GetObject").unwrap(),
            Op::GetObject
        );
        assert_eq!(
            route(Method::PUT, Some("b"), Some("k"), "partNumber=3&uploadId=u").unwrap(),
            Op::UploadPart {
                upload_id: "u".into(),
                part_number: 3
            }
        );
        assert_eq!(
            route(Method::POST, Some("b"), Some("k"), "uploads").unwrap(),
            Op::CreateMultipartUpload
        );
    }

    #[test]
    fn cors_configuration_and_preflights_route() {
        assert_eq!(
            route(Method::PUT, Some("b"), None, "cors").unwrap(),
            Op::PutBucketCors
        );
        assert_eq!(
            route(Method::GET, Some("b"), None, "cors").unwrap(),
            Op::GetBucketCors
        );
        assert_eq!(
            route(Method::DELETE, Some("b"), None, "cors").unwrap(),
            Op::DeleteBucketCors
        );
        assert_eq!(
            route(Method::OPTIONS, Some("b"), Some("k"), "").unwrap(),
            Op::OptionsObject
        );
        assert_eq!(
            route(Method::OPTIONS, Some("b"), None, "").unwrap(),
            Op::OptionsObject
        );
        assert!(route(Method::OPTIONS, None, None, "").is_err());
        assert_eq!(
            route(Method::GET, Some("b"), Some("k"), "cors")
                .unwrap_err()
                .code(),
            "NotImplemented"
        );
    }

    #[test]
    fn unknown_subresources_are_not_implemented() {
        for q in ["website", "inventory", "lifecycle", "replication"] {
            let e = route(Method::GET, Some("b"), None, q).unwrap_err();
            assert_eq!(e.code(), "NotImplemented", "{q}");
        }
        let e = route(Method::GET, Some("b"), Some("k"), "torrent").unwrap_err();
        assert_eq!(e.code(), "NotImplemented");
        let e = route(Method::DELETE, Some("b"), None, "ownershipControls").unwrap_err();
        assert_eq!(e.code(), "NotImplemented");
    }

    #[test]
    fn bucket_tagging_routes_to_its_operations_and_actions() {
        for (m, op) in [
            (Method::GET, Op::GetBucketTagging),
            (Method::PUT, Op::PutBucketTagging),
            (Method::DELETE, Op::DeleteBucketTagging),
        ] {
            assert_eq!(route(m, Some("b"), None, "tagging").unwrap(), op);
        }
        assert_eq!(
            Op::GetBucketTagging.access("b", "", false).upfront[0].action,
            "s3:GetBucketTagging"
        );
        for op in [Op::PutBucketTagging, Op::DeleteBucketTagging] {
            let a = op.access("b", "", false);
            assert_eq!(a.upfront.len(), 1);
            assert_eq!(a.upfront[0].action, "s3:PutBucketTagging");
            assert_eq!(a.upfront[0].resource, "arn:aws:s3:::b");
        }
        // On an object path `tagging` stays object tagging.
        assert_eq!(
            route(Method::GET, Some("b"), Some("k"), "tagging").unwrap(),
            Op::GetObjectTagging
        );
    }

    #[test]
    fn acls_and_ownership_controls_route_to_their_operations() {
        assert_eq!(
            route(Method::GET, Some("b"), None, "acl").unwrap(),
            Op::GetBucketAcl
        );
        assert_eq!(
            route(Method::PUT, Some("b"), None, "acl").unwrap(),
            Op::PutBucketAcl
        );
        assert_eq!(
            route(Method::GET, Some("b"), Some("k"), "acl").unwrap(),
            Op::GetObjectAcl
        );
        assert_eq!(
            route(Method::PUT, Some("b"), Some("k"), "acl").unwrap(),
            Op::PutObjectAcl
        );
        assert_eq!(
            route(Method::PUT, Some("b"), None, "ownershipControls").unwrap(),
            Op::PutBucketOwnershipControls
        );
        let e = route(Method::GET, Some("b"), Some("k"), "ownershipControls").unwrap_err();
        assert_eq!(e.code(), "NotImplemented");
    }

    #[test]
    fn bucket_subresources_on_an_object_are_not_object_operations() {
        for (method, q) in [
            (Method::PUT, "policy"),
            (Method::GET, "location"),
            (Method::GET, "policyStatus"),
            (Method::GET, "publicAccessBlock"),
            (Method::GET, "delete"),
            (Method::GET, "list-type=2"),
            (Method::DELETE, "policy"),
            (Method::DELETE, "publicAccessBlock"),
            (Method::POST, "delete"),
            (Method::GET, "uploads"),
            (Method::PUT, "uploads"),
        ] {
            let e = route(method.clone(), Some("b"), Some("k"), q).unwrap_err();
            assert_eq!(e.code(), "NotImplemented", "{method} {q}");
        }
        assert_eq!(
            route(Method::POST, Some("b"), Some("k"), "uploads").unwrap(),
            Op::CreateMultipartUpload
        );
    }

    #[test]
    fn bad_part_numbers_are_refused() {
        for q in [
            "partNumber=0&uploadId=u",
            "partNumber=10001&uploadId=u",
            "partNumber=x&uploadId=u",
        ] {
            assert_eq!(
                route(Method::PUT, Some("b"), Some("k"), q)
                    .unwrap_err()
                    .code(),
                "InvalidArgument"
            );
        }
    }

    #[test]
    fn copy_source_forms() {
        let s = CopySource::parse("/src/a%20b/c").unwrap();
        assert_eq!((s.bucket.as_str(), s.key.as_str()), ("src", "a b/c"));
        let s = CopySource::parse("src/k?versionId=null").unwrap();
        assert_eq!(s.key, "k");
        assert_eq!(s.version_id.as_deref(), Some("null"));
        assert!(CopySource::parse("src").is_err());
        let s = CopySource::parse("src/k?versionId=abc").unwrap();
        assert_eq!(s.version_id.as_deref(), Some("abc"));
        assert_eq!(
            CopySource::parse("src/k?versionId=abc&x=1")
                .unwrap_err()
                .code(),
            "InvalidArgument"
        );
    }

    /// "Actions, resources, and condition keys for Amazon S3": with `?versionId=` each object
    /// operation needs its version action, never the plain one.
    #[test]
    fn a_version_id_asks_for_the_version_actions() {
        // Upfront, or (an operation decided once its document is read) per item.
        let actions = |m: Method, q: &str| -> Vec<&'static str> {
            let op = route(m, Some("b"), Some("k"), q).unwrap();
            let access = op.access("b", "k", Query::parse(Some(q)).has("versionId"));
            access
                .upfront
                .into_iter()
                .map(|p| p.action)
                .chain(access.per_key)
                .collect()
        };
        assert_eq!(
            actions(Method::GET, "versionId=v1"),
            ["s3:GetObjectVersion"]
        );
        assert_eq!(actions(Method::GET, ""), ["s3:GetObject"]);
        assert_eq!(
            actions(Method::HEAD, "versionId=null"),
            ["s3:GetObjectVersion"]
        );
        assert_eq!(
            actions(Method::DELETE, "versionId=v1"),
            ["s3:DeleteObjectVersion"]
        );
        assert_eq!(
            actions(Method::GET, "tagging&versionId=v1"),
            ["s3:GetObjectVersionTagging"]
        );
        assert_eq!(
            actions(Method::PUT, "tagging&versionId=v1"),
            ["s3:PutObjectVersionTagging"]
        );
        assert_eq!(
            actions(Method::DELETE, "tagging&versionId=v1"),
            ["s3:DeleteObjectVersionTagging"]
        );
        assert_eq!(
            actions(Method::GET, "attributes&versionId=v1"),
            ["s3:GetObjectVersion", "s3:GetObjectVersionAttributes"]
        );
        assert_eq!(
            actions(Method::GET, "acl&versionId=v1"),
            ["s3:GetObjectVersionAcl"]
        );
        // Operations that take no version refuse the parameter.
        assert_eq!(
            route(Method::PUT, Some("b"), Some("k"), "versionId=v1")
                .unwrap_err()
                .code(),
            "NotImplemented"
        );
        assert_eq!(
            route(Method::GET, Some("b"), None, "versioning").unwrap(),
            Op::GetBucketVersioning
        );
        assert_eq!(
            route(Method::PUT, Some("b"), None, "versioning").unwrap(),
            Op::PutBucketVersioning
        );
        assert_eq!(
            route(
                Method::GET,
                Some("b"),
                None,
                "versions&key-marker=a&version-id-marker=b"
            )
            .unwrap(),
            Op::ListObjectVersions
        );
        for (op, action) in [
            (Op::GetBucketVersioning, "s3:GetBucketVersioning"),
            (Op::PutBucketVersioning, "s3:PutBucketVersioning"),
            (Op::ListObjectVersions, "s3:ListBucketVersions"),
        ] {
            let a = op.access("b", "", false).upfront;
            assert_eq!(
                (a[0].action, a[0].resource.as_str()),
                (action, "arn:aws:s3:::b")
            );
        }
        let copy = Op::CopyObject(CopySource {
            bucket: "s".into(),
            key: "sk".into(),
            version_id: Some("v1".into()),
        });
        assert_eq!(
            copy.access("d", "dk", false).upfront[1].action,
            "s3:GetObjectVersion"
        );
    }

    #[test]
    fn every_operation_declares_what_it_needs() {
        let copy = Op::CopyObject(CopySource {
            bucket: "s".into(),
            key: "sk".into(),
            version_id: None,
        });
        let a = copy.access("d", "dk", false);
        assert_eq!(a.upfront.len(), 2);
        assert_eq!(a.upfront[0].resource, "arn:aws:s3:::d/dk");
        assert_eq!(
            a.upfront[1],
            Permission {
                action: "s3:GetObject",
                resource: "arn:aws:s3:::s/sk".into()
            }
        );
        assert_eq!(
            Op::ListBuckets.access("", "", false).upfront[0].resource,
            "*"
        );
        assert_eq!(
            Op::HeadBucket.access("b", "", false).upfront[0].action,
            "s3:ListBucket"
        );
        assert_eq!(
            Op::DeleteObjects.access("b", "", false).per_key,
            Some("s3:DeleteObject")
        );
    }

    #[test]
    fn query_decoding_treats_plus_as_space() {
        let q = Query::parse(Some("prefix=a+b%2Fc&delimiter=%2F&flag"));
        assert_eq!(q.get("prefix"), Some("a b/c"));
        assert_eq!(q.get("delimiter"), Some("/"));
        assert!(q.has("flag"));
    }
}
