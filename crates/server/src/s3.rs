//! The S3 REST API: routing ([`route`]) and one handler module per operation family.

pub mod route;

mod acl;
mod bucket;
mod bucket_tagging;
pub mod cors;
mod list;
pub mod lock;
mod multipart;
mod object;
mod policy;
pub(crate) mod post;
pub(crate) mod rfc2047;
pub(crate) mod tagging;
mod versioning;

pub use object::DeleteKey;

use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::auth::Principal;
use crate::body::{self, Body, BodyReader};
use crate::error::S3Error;
use crate::Gateway;
pub(crate) use route::{Op, Query};

/// An S3 request, described for authorization: the operation and what it names.
#[derive(Debug)]
pub struct S3Call {
    /// The operation.
    pub op: Op,
    /// The bucket (empty for ListBuckets and S3 Control).
    pub bucket: String,
    /// The key (empty for bucket operations).
    pub key: String,
    /// A write or delete conditional on the object's ETag (`If-Match`), which reveals the object:
    /// it needs `s3:GetObject` too ("To perform a conditional write with the HTTP If-Match
    /// header, you must have s3:PutObject and s3:GetObject permissions",
    /// https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html; likewise
    /// for deletes, https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-delete-enforce.html).
    pub reads_current: bool,
    /// A write that sets the new object's tags from `x-amz-tagging` ([`Op::applies_tagging_header`]):
    /// it needs `s3:PutObjectTagging` on the object too ("To successfully set the tag-set with
    /// your PutObject request, you must have the s3:PutObjectTagging",
    /// https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html, Permissions). That
    /// check sees the request's tags as `s3:RequestObjectTag/KEY` and `s3:RequestObjectTagKeys`
    /// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/tagging-and-policies.html).
    pub sets_tags: bool,
    /// A write that names an ACL (`x-amz-acl`, `x-amz-grant-*`): it needs the ACL action too,
    /// whatever the ACL ("s3:PutObjectAcl - To successfully change the objects ACL of your
    /// PutObject request, you must have the s3:PutObjectAcl", API_PutObject.html, Permissions;
    /// CreateBucket with an ACL likewise needs `s3:PutBucketAcl`, API_CreateBucket.html). With
    /// ACLs disabled only owner-only ACLs are accepted, but a policy denying the ACL action must
    /// still refuse them (review 9, N3).
    pub sets_acl: bool,
    /// `?versionId=` of an operation that takes one ([`Op::takes_version_id`]): the request acts
    /// on that version and needs the version actions ([`Op::access`]).
    pub version_id: Option<String>,
    /// The Object Lock actions the request needs beyond its operation's, on its object:
    /// `s3:PutObjectRetention` / `s3:PutObjectLegalHold` for a write that sets a retention or a
    /// legal hold in its headers, `s3:BypassGovernanceRetention` for a DeleteObject or
    /// PutObjectRetention that asks to bypass governance retention
    /// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html,
    /// https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObject.html,
    /// https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObjectRetention.html); and
    /// `s3:PutBucketObjectLockConfiguration` with `s3:PutBucketVersioning` for a CreateBucket
    /// with Object Lock enabled (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html).
    pub lock_actions: Vec<&'static str>,
}

impl S3Call {
    /// Describes an S3 request from its operation, target and headers: the headers decide the
    /// permissions beyond the operation's own (`If-Match`, `x-amz-tagging`).
    pub fn new(
        op: Op,
        bucket: String,
        key: String,
        headers: &HeaderMap,
        query: &Query,
    ) -> Result<S3Call, S3Error> {
        let version_id = if op.takes_version_id() {
            match query.get("versionId") {
                // "Invalid version id specified" is S3's answer to an empty one too.
                Some("") => {
                    return Err(S3Error::invalid_argument("Invalid version id specified")
                        .with("ArgumentName", "versionId")
                        .with("ArgumentValue", ""))
                }
                v => v.map(str::to_owned),
            }
        } else {
            None
        };
        let reads_current = op.compares_current_etag()
            && crate::pipeline::header_str(headers, &http::header::IF_MATCH)?.is_some();
        // Any `x-amz-tagging` header counts, even one that is empty or not valid text: the
        // check fails closed, and the handler refuses what it cannot parse.
        let sets_tags = headers.contains_key(&crate::names::X_AMZ_TAGGING)
            && op.applies_tagging_header(crate::pipeline::header_str(
                headers,
                "x-amz-tagging-directive",
            )?);
        let sets_acl = matches!(
            op,
            Op::PutObject
                | Op::PostObject
                | Op::CopyObject(_)
                | Op::CreateMultipartUpload
                | Op::CreateBucket
        ) && headers
            .keys()
            .any(|n| n == "x-amz-acl" || n.as_str().starts_with("x-amz-grant-"));
        let mut lock_actions = Vec::new();
        let has = |name: &str| headers.contains_key(name);
        if matches!(
            op,
            Op::PutObject | Op::PostObject | Op::CopyObject(_) | Op::CreateMultipartUpload
        ) {
            if has("x-amz-object-lock-mode") || has("x-amz-object-lock-retain-until-date") {
                lock_actions.push("s3:PutObjectRetention");
            }
            if has("x-amz-object-lock-legal-hold") {
                lock_actions.push("s3:PutObjectLegalHold");
            }
        }
        if op == Op::DeleteObject && lock::bypass_requested(headers) {
            lock_actions.push("s3:BypassGovernanceRetention");
        }
        if op == Op::CreateBucket
            && crate::pipeline::header_str(headers, "x-amz-bucket-object-lock-enabled")?
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        {
            lock_actions.push("s3:PutBucketObjectLockConfiguration");
            lock_actions.push("s3:PutBucketVersioning");
        }
        Ok(S3Call {
            op,
            bucket,
            key,
            reads_current,
            sets_tags,
            sets_acl,
            version_id,
            lock_actions,
        })
    }
}

impl S3Call {
    /// The request's parameters beyond bucket and key for its audit event, by CloudTrail's
    /// names: `versionId` (the version the request names) and `sourceVersionId` (a copy's).
    pub fn audit_parameters(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        if let Some(v) = &self.version_id {
            m.insert("versionId".into(), v.clone().into());
        }
        if let Some(v) = self.op.copy_source().and_then(|s| s.version_id.as_ref()) {
            m.insert("sourceVersionId".into(), v.clone().into());
        }
        m
    }
}

impl crate::authz::Describe for S3Call {
    fn requirement(&self) -> crate::authz::Requirement {
        if self.op == Op::OptionsObject {
            return crate::authz::Requirement::Unconditional {
                action: "keyhole:CorsPreflight",
                reason: "a CORS preflight is not signed (browsers send it on their own) and is answered from the bucket's CORS configuration alone, as S3 answers OPTIONS object",
            };
        }
        let access = self
            .op
            .access(&self.bucket, &self.key, self.version_id.is_some());
        match access.per_key {
            Some(action) => crate::authz::Requirement::PerItem { action },
            None => {
                let mut list = access.upfront;
                if self.reads_current {
                    list.push(crate::authz::Permission::new(
                        "s3:GetObject",
                        route::object_arn(&self.bucket, &self.key),
                    ));
                }
                if self.sets_tags {
                    list.push(crate::authz::Permission::new(
                        "s3:PutObjectTagging",
                        route::object_arn(&self.bucket, &self.key),
                    ));
                }
                if self.sets_acl {
                    list.push(if self.op == Op::CreateBucket {
                        crate::authz::Permission::new(
                            "s3:PutBucketAcl",
                            route::bucket_arn(&self.bucket),
                        )
                    } else {
                        crate::authz::Permission::new(
                            "s3:PutObjectAcl",
                            route::object_arn(&self.bucket, &self.key),
                        )
                    });
                }
                for action in &self.lock_actions {
                    list.push(crate::authz::Permission::new(
                        action,
                        if self.key.is_empty() {
                            route::bucket_arn(&self.bucket)
                        } else {
                            route::object_arn(&self.bucket, &self.key)
                        },
                    ));
                }
                crate::authz::Requirement::Permissions(list)
            }
        }
    }
}

/// What a handler knows about its (already authorized) request.
pub struct Ctx<'a> {
    /// The gateway.
    pub gw: &'a Gateway,
    /// Who is calling.
    pub principal: &'a Principal,
    /// The bucket (empty for ListBuckets).
    pub bucket: String,
    /// The key (empty for bucket operations).
    pub key: String,
    /// Decoded query parameters.
    pub query: Query,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The payload length the client declared, if any.
    pub declared_length: Option<u64>,
    /// The request's IAM condition context (for checks made inside handlers).
    pub context: keyhole_policy::Context,
    /// Where handlers that check per key (DeleteObjects) record their checks for the audit event.
    pub checks: &'a crate::audit::Checks,
    /// The request's write-ahead audit record; see [`Ctx::before_change`].
    pub write_ahead: &'a crate::audit::WriteAhead,
    /// Serve even when the write-ahead record could not be written (`audit_fail_open`).
    pub audit_fail_open: bool,
    /// What the handler reports for the audit event's `responseElements` (DeleteObjects' per-key
    /// results).
    pub response_elements: &'a std::sync::Mutex<Option<serde_json::Value>>,
    /// The version the request names (`?versionId=`), as authorized.
    pub version_id: Option<String>,
}

impl Ctx<'_> {
    /// Runs `f` on the state database off the async threads (a bucket's policy, tags, CORS...).
    pub(crate) async fn state_call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&crate::state::State) -> Result<T, crate::state::StateError> + Send + 'static,
    ) -> Result<T, S3Error> {
        let state = self.gw.state.clone();
        Ok(crate::state::db::blocking(move || f(&state)).await?)
    }

    /// The request's bucket must exist (NoSuchBucket otherwise).
    pub(crate) async fn require_bucket(&self) -> Result<(), S3Error> {
        self.gw.storage.head_bucket(&self.bucket).await.map(|_| ())
    }

    /// The version the request names, if any.
    pub fn version(&self) -> Option<&str> {
        self.version_id.as_deref()
    }

    /// Records the version headers of the answer (`x-amz-version-id`, `x-amz-delete-marker`,
    /// `x-amz-copy-source-version-id`) as the audit event's `responseElements`, as CloudTrail
    /// records a data event's response headers.
    pub fn record_version_headers(&self, r: &Response<Body>) {
        let mut m = serde_json::Map::new();
        for name in [
            &crate::names::X_AMZ_VERSION_ID,
            &crate::names::X_AMZ_DELETE_MARKER,
            &crate::names::X_AMZ_COPY_SOURCE_VERSION_ID,
        ] {
            if let Some(v) = r.headers().get(name).and_then(|v| v.to_str().ok()) {
                m.insert(name.as_str().into(), v.into());
            }
        }
        self.merge_response_elements(m);
    }

    /// Records the Object Lock a request set (a retention, a legal hold) in the audit event's
    /// `responseElements`, so the trail says who set what lock (review 12).
    pub fn record_lock(&self, lock: &keyhole_store::ObjectLock) {
        let mut m = serde_json::Map::new();
        if let Some(r) = &lock.retention {
            m.insert("objectLockMode".into(), r.mode.as_str().into());
            m.insert(
                "objectLockRetainUntilDate".into(),
                lock::lock_date(r.until).into(),
            );
        }
        if let Some(on) = lock.legal_hold {
            m.insert(
                "objectLockLegalHoldStatus".into(),
                if on { "ON" } else { "OFF" }.into(),
            );
        }
        self.merge_response_elements(m);
    }

    fn merge_response_elements(&self, m: serde_json::Map<String, serde_json::Value>) {
        if m.is_empty() {
            return;
        }
        if let Ok(mut elements) = self.response_elements.lock() {
            match elements.as_mut() {
                None => *elements = Some(serde_json::Value::Object(m)),
                Some(serde_json::Value::Object(existing)) => {
                    for (k, v) in m {
                        existing.entry(k).or_insert(v);
                    }
                }
                // A handler's own elements of another shape (DeleteObjects' list) stay as they are.
                Some(_) => {}
            }
        }
    }
}

impl Ctx<'_> {
    /// Waits until the request's write-ahead audit record is durable: call before changing
    /// anything visible. Fails with 503 if it could not be written (fail closed), unless
    /// `audit_fail_open`.
    pub async fn before_change(&self) -> Result<(), S3Error> {
        // A record its handler queues (a request it decided) carries the decisions made so far.
        let decided = |event: &mut crate::audit::AuditEvent| {
            crate::pipeline::record_decisions(event, self.checks)
        };
        if self.write_ahead.wait(decided).await || self.audit_fail_open {
            Ok(())
        } else {
            Err(crate::pipeline::audit_unavailable(self.gw))
        }
    }

    /// A request header as text.
    pub fn header(&self, name: &str) -> Result<Option<&str>, S3Error> {
        crate::pipeline::header_str(self.headers, name)
    }
}

/// Refuses an `x-amz-tagging` header naming tags whose keys differ only in case. S3 keeps such
/// tags apart, but condition keys cannot tell them apart ("condition key names are not case
/// sensitive", https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition.html):
/// both would be one `s3:RequestObjectTag/KEY` holding one of the two values, so a policy on the
/// other value would be evaded. Refused before any decision, as the existing object's tags are
/// for `s3:ExistingObjectTag` (review 16, F2). The account's root user may send them: it can
/// change every policy such tags could evade, and it is how such objects are made on purpose.
pub(crate) fn refuse_case_variant_request_tags(
    principal: &Principal,
    headers: &HeaderMap,
) -> Result<(), S3Error> {
    if matches!(principal, Principal::Root { .. }) {
        return Ok(());
    }
    let Some(tagging) = headers
        .get(&crate::names::X_AMZ_TAGGING)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(());
    };
    let tags = Query::parse(Some(tagging));
    refuse_case_variant_tag_keys(&tags.names().collect::<Vec<_>>())
}

/// Records a refusal by [`refuse_case_variant_request_tags`] or
/// [`refuse_case_variant_tag_keys`] as a denial of `s3:PutObjectTagging` on the object: a rule of
/// keyhole's, made before any policy is evaluated, whose records must still say Deny (`keyhole
/// audit query --decision deny` lists them; review 17 found them with no decision).
pub(crate) fn record_case_variant_refusal(
    checks: &crate::audit::Checks,
    bucket: &str,
    key: &str,
    refusal: &S3Error,
) {
    checks.push(crate::audit::event::Check::rule_denial(
        "s3:PutObjectTagging",
        route::object_arn(bucket, key),
        refusal.message(),
    ));
}

impl Ctx<'_> {
    /// Records `refusal`, a rule's (not a policy's) refusal of `action` on this request's bucket
    /// (or object, when it names one), as a denial in the request's checks, and returns it.
    pub(crate) fn refused(&self, action: &str, refusal: S3Error) -> S3Error {
        let resource = if self.key.is_empty() {
            route::bucket_arn(&self.bucket)
        } else {
            route::object_arn(&self.bucket, &self.key)
        };
        self.checks.push(crate::audit::event::Check::rule_denial(
            action,
            resource,
            refusal.message(),
        ));
        refusal
    }
}

/// [`refuse_case_variant_request_tags`] for tag keys however they were sent (a PutObjectTagging
/// document's too), whoever sends them.
pub(crate) fn refuse_case_variant_tag_keys(keys: &[&str]) -> Result<(), S3Error> {
    // One pass with a set: a header may name thousands of keys (S3 allows ten; the count is
    // checked later), and a pairwise comparison was quadratic before any authorization (review
    // 16, second pass).
    let mut seen: std::collections::HashMap<String, &str> =
        std::collections::HashMap::with_capacity(keys.len());
    for k in keys {
        if let Some(other) = seen.insert(k.to_ascii_lowercase(), k) {
            if other != *k {
                return Err(S3Error::access_denied(format!(
                    "Access Denied: the tags `{other}` and `{k}` differ only in case, and the policies' s3:RequestObjectTag conditions cannot tell them apart"
                )));
            }
        }
    }
    Ok(())
}

/// Runs the handler for an authorized operation. Exhaustive: a new `Op` does not compile until it
/// has a handler.
pub async fn dispatch(
    call: crate::authz::Authorized<S3Call>,
    ctx: Ctx<'_>,
    body: BodyReader,
) -> Result<Response<Body>, S3Error> {
    let op = call.into_call().op;
    // Uploads wait for the write-ahead record just before they commit (the body streams into a
    // temporary file meanwhile); every other handler waits before it starts.
    // DeleteObjects first reads which keys it names, for its write-ahead record.
    if !matches!(
        op,
        Op::PutObject
            | Op::UploadPart { .. }
            | Op::DeleteObjects
            | Op::PutObjectTagging
            | Op::PutObjectRetention
            | Op::PutObjectLegalHold
    ) {
        ctx.before_change().await?;
    }
    let sets_lock = matches!(
        op,
        Op::PutObject | Op::CopyObject(_) | Op::CreateMultipartUpload
    );
    let result = match op {
        Op::ListBuckets => bucket::list_buckets(&ctx).await,
        Op::CreateBucket => bucket::create_bucket(&ctx, body).await,
        Op::DeleteBucket => bucket::delete_bucket(&ctx).await,
        Op::HeadBucket => bucket::head_bucket(&ctx).await,
        Op::GetBucketLocation => bucket::get_bucket_location(&ctx).await,
        Op::ListObjects => list::list_objects(&ctx, false).await,
        Op::ListObjectsV2 => list::list_objects(&ctx, true).await,
        Op::ListMultipartUploads => multipart::list_uploads(&ctx).await,
        // The largest handlers' futures are boxed, so that every request's future (which holds
        // the largest of them) stays small to move (issue 16).
        Op::DeleteObjects => Box::pin(object::delete_objects(&ctx, body)).await,
        Op::PutObject => object::put_object(&ctx, body).await,
        // Its body is a form, read by the authenticate stage: it is handled by
        // `dispatch_post` with that form.
        Op::PostObject => Err(S3Error::internal(std::io::Error::other(
            "a PostObject reached the handlers without its form",
        ))),
        Op::CopyObject(src) => object::copy_object(&ctx, src).await,
        Op::GetObject => object::get_object(&ctx, false).await,
        Op::HeadObject => object::get_object(&ctx, true).await,
        Op::DeleteObject => object::delete_object(&ctx).await,
        Op::CreateMultipartUpload => multipart::create(&ctx).await,
        Op::UploadPart {
            upload_id,
            part_number,
        } => multipart::upload_part(&ctx, body, upload_id, part_number).await,
        Op::UploadPartCopy {
            upload_id,
            part_number,
            source,
        } => multipart::upload_part_copy(&ctx, upload_id, part_number, source).await,
        Op::CompleteMultipartUpload { upload_id } => {
            multipart::complete(&ctx, body, upload_id).await
        }
        Op::AbortMultipartUpload { upload_id } => multipart::abort(&ctx, upload_id).await,
        Op::ListParts { upload_id } => multipart::list_parts(&ctx, upload_id).await,
        Op::GetBucketPolicy => policy::get_bucket_policy(&ctx).await,
        Op::PutBucketPolicy => policy::put_bucket_policy(&ctx, body).await,
        Op::DeleteBucketPolicy => policy::delete_bucket_policy(&ctx).await,
        Op::GetBucketPolicyStatus => policy::get_policy_status(&ctx).await,
        Op::GetPublicAccessBlock => policy::get_pab(&ctx, true).await,
        Op::PutPublicAccessBlock => policy::put_pab(&ctx, body, true).await,
        Op::DeletePublicAccessBlock => policy::delete_pab(&ctx, true).await,
        Op::GetAccountPublicAccessBlock => policy::get_pab(&ctx, false).await,
        Op::PutAccountPublicAccessBlock => policy::put_pab(&ctx, body, false).await,
        Op::DeleteAccountPublicAccessBlock => policy::delete_pab(&ctx, false).await,
        Op::GetObjectTagging => tagging::get(&ctx).await,
        Op::PutObjectTagging => tagging::put(&ctx, body).await,
        Op::DeleteObjectTagging => tagging::delete(&ctx).await,
        Op::GetBucketAcl => acl::get(&ctx, false).await,
        Op::GetObjectAcl => acl::get(&ctx, true).await,
        Op::PutBucketAcl => acl::put(&ctx, body, false).await,
        Op::PutObjectAcl => acl::put(&ctx, body, true).await,
        Op::GetBucketOwnershipControls => acl::get_ownership(&ctx).await,
        Op::PutBucketOwnershipControls => acl::put_ownership(&ctx, body).await,
        Op::GetObjectAttributes => object::get_object_attributes(&ctx).await,
        Op::GetBucketCors => cors::get(&ctx).await,
        Op::PutBucketCors => cors::put(&ctx, body).await,
        Op::DeleteBucketCors => cors::delete(&ctx).await,
        Op::OptionsObject => cors::preflight(&ctx).await,
        Op::GetBucketVersioning => versioning::get_bucket_versioning(&ctx).await,
        Op::PutBucketVersioning => versioning::put_bucket_versioning(&ctx, body).await,
        Op::ListObjectVersions => versioning::list_object_versions(&ctx).await,
        Op::GetBucketTagging => bucket_tagging::get(&ctx).await,
        Op::PutBucketTagging => bucket_tagging::put(&ctx, body).await,
        Op::DeleteBucketTagging => bucket_tagging::delete(&ctx).await,
        Op::GetObjectLockConfiguration => lock::get_configuration(&ctx).await,
        Op::PutObjectLockConfiguration => lock::put_configuration(&ctx, body).await,
        Op::GetObjectRetention => lock::get_retention(&ctx).await,
        Op::PutObjectRetention => Box::pin(lock::put_retention(&ctx, body)).await,
        Op::GetObjectLegalHold => lock::get_legal_hold(&ctx).await,
        Op::PutObjectLegalHold => Box::pin(lock::put_legal_hold(&ctx, body)).await,
    };
    if result.is_ok() && sets_lock {
        if let Ok(l) = lock::from_headers(ctx.headers, chrono::Utc::now()) {
            ctx.record_lock(&l);
        }
    }
    result.inspect(|r| ctx.record_version_headers(r))
}

/// Runs PostObject (authorized, like every operation) with the form the authenticate stage read.
pub(crate) async fn dispatch_post(
    call: crate::authz::Authorized<S3Call>,
    ctx: Ctx<'_>,
    form: post::PostForm,
) -> Result<Response<Body>, S3Error> {
    let result = match call.into_call().op {
        Op::PostObject => post::post_object(&ctx, form).await,
        other => Err(S3Error::internal(std::io::Error::other(format!(
            "{} reached the PostObject handler",
            other.name()
        )))),
    };
    result.inspect(|r| ctx.record_version_headers(r))
}

/// A request body as the storage seam reads it: verified bytes, whose end also waits until the
/// request's write-ahead audit record is durable (so nothing commits before it is), unless the
/// backend deferred that wait to [`crate::backend::Payload::ready`].
pub(crate) struct Upload<'c, 'a> {
    body: BodyReader,
    ctx: &'c Ctx<'a>,
    ended: bool,
    deferred: bool,
}

impl<'c, 'a> Upload<'c, 'a> {
    /// The body of the request `ctx` describes.
    pub(crate) fn new(body: BodyReader, ctx: &'c Ctx<'a>) -> Self {
        Upload {
            body,
            ctx,
            ended: false,
            deferred: false,
        }
    }
}

impl crate::backend::Payload for Upload<'_, '_> {
    fn next(&mut self) -> crate::backend::BoxFuture<'_, Result<Option<bytes::Bytes>, S3Error>> {
        Box::pin(async move {
            if self.ended {
                return Ok(None);
            }
            match self.body.next().await? {
                Some(chunk) => Ok(Some(chunk)),
                None => {
                    if !self.deferred {
                        self.ctx.before_change().await?;
                    }
                    self.ended = true;
                    Ok(None)
                }
            }
        })
    }

    fn checksum_kind(&self) -> Option<keyhole_sigv4::ChecksumKind> {
        crate::backend::Payload::checksum_kind(&self.body)
    }

    fn verified_checksum(&self) -> Option<(keyhole_sigv4::ChecksumKind, String)> {
        crate::backend::Payload::verified_checksum(&self.body)
    }

    fn defer_ready(&mut self) {
        self.deferred = true;
    }

    fn ready(&mut self) -> crate::backend::BoxFuture<'_, Result<(), S3Error>> {
        Box::pin(self.ctx.before_change())
    }
}

/// One lock per bucket name (hashed into a fixed set): held by CreateBucket and DeleteBucket
/// for their steps and by a setting's write with its check (`bucket::write_setting`). Within
/// this process only: nodes sharing a PostgreSQL state do not serialize each other's.
pub struct BucketNameLocks {
    first: tokio::sync::Mutex<()>,
    rest: [tokio::sync::Mutex<()>; 63],
}

impl Default for BucketNameLocks {
    fn default() -> Self {
        BucketNameLocks {
            first: tokio::sync::Mutex::new(()),
            rest: std::array::from_fn(|_| tokio::sync::Mutex::new(())),
        }
    }
}

impl std::fmt::Debug for BucketNameLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BucketNameLocks").finish_non_exhaustive()
    }
}

/// A bucket name's lock, held: this process's, and on a PostgreSQL state every node's.
#[derive(Debug)]
pub(crate) struct BucketNameGuard<'a> {
    _local: tokio::sync::MutexGuard<'a, ()>,
    _nodes: Option<crate::state::postgres::NameLock>,
}

impl BucketNameLocks {
    /// The lock of `name`, taken: first this process's, then (on a PostgreSQL state) the one
    /// every node takes, so CreateBucket, DeleteBucket and the bucket settings' writes do not
    /// interleave across nodes either. A state that cannot be reached fails the request
    /// (`ServiceUnavailable`): the steps are not run unlocked.
    pub(crate) async fn lock(
        &self,
        state: &crate::state::State,
        name: &str,
    ) -> Result<BucketNameGuard<'_>, S3Error> {
        use std::hash::{BuildHasher, Hasher};
        let mut h =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
                .build_hasher();
        h.write(name.as_bytes());
        let i = usize::try_from(h.finish() % 64).unwrap_or(0);
        let local = match i.checked_sub(1).and_then(|j| self.rest.get(j)) {
            Some(m) => m.lock().await,
            None => self.first.lock().await,
        };
        let nodes = state.bucket_name_lock(name).await?;
        Ok(BucketNameGuard {
            _local: local,
            _nodes: nodes,
        })
    }
}

/// Whose read conditions a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConditionsOf {
    /// The object read (GET, HEAD): `If-Match`, ...
    Object,
    /// A copy's source: `x-amz-copy-source-if-match`, ...
    CopySource,
}

/// The read conditions of a request.
pub(crate) fn read_conditions(
    ctx: &Ctx<'_>,
    of: ConditionsOf,
) -> Result<crate::backend::ReadConditions, S3Error> {
    let [if_match, if_none_match, if_modified_since, if_unmodified_since] = match of {
        ConditionsOf::Object => [
            "if-match",
            "if-none-match",
            "if-modified-since",
            "if-unmodified-since",
        ],
        ConditionsOf::CopySource => [
            "x-amz-copy-source-if-match",
            "x-amz-copy-source-if-none-match",
            "x-amz-copy-source-if-modified-since",
            "x-amz-copy-source-if-unmodified-since",
        ],
    };
    let h = |n: &str| -> Result<Option<String>, S3Error> { Ok(ctx.header(n)?.map(str::to_owned)) };
    Ok(crate::backend::ReadConditions {
        if_match: h(if_match)?,
        if_none_match: h(if_none_match)?,
        if_modified_since: h(if_modified_since)?,
        if_unmodified_since: h(if_unmodified_since)?,
    })
}

/// The checksums a client sent in headers (`x-amz-checksum-crc32`, ...), already checked against
/// the body by the body reader; a backend that stores checksums keeps them.
pub(crate) fn checksum_headers(ctx: &Ctx<'_>) -> Vec<(String, String)> {
    ctx.headers
        .iter()
        .filter(|(name, _)| keyhole_sigv4::ChecksumKind::from_header_name(name.as_str()).is_some())
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect()
}

/// The checksums a request says it carries: the algorithms of its `x-amz-checksum-*` headers,
/// and of the `x-amz-checksum-*` trailers its `x-amz-trailer` announces (names in any case).
/// Only algorithms S3 knows count (`x-amz-checksum-foo` is none).
pub(crate) struct SentChecksums {
    /// From `x-amz-checksum-*` headers.
    pub headers: Vec<keyhole_sigv4::ChecksumKind>,
    /// Announced as trailers.
    pub trailers: Vec<keyhole_sigv4::ChecksumKind>,
}

impl SentChecksums {
    pub(crate) fn of(ctx: &Ctx<'_>) -> Result<SentChecksums, S3Error> {
        use keyhole_sigv4::ChecksumKind;
        let headers = ctx
            .headers
            .keys()
            .filter_map(|name| ChecksumKind::from_header_name(name.as_str()))
            .collect();
        let trailers = ctx
            .header("x-amz-trailer")?
            .map(|t| {
                t.split(',')
                    .filter_map(|n| ChecksumKind::from_header_name(&n.trim().to_ascii_lowercase()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(SentChecksums { headers, trailers })
    }

    /// Whether the request carries any checksum, as a header or a trailer.
    pub(crate) fn any(&self) -> bool {
        !self.headers.is_empty() || !self.trailers.is_empty()
    }
}

/// Checks the checksum headers of a write that carries a body (PutObject, UploadPart) before it
/// is read: at most one `x-amz-checksum-*` value ("Expecting a single x-amz-checksum- header"),
/// and an `x-amz-sdk-checksum-algorithm` must name an algorithm whose checksum comes with the
/// request, as a header or announced as a trailer ("When you send this header, there must be a
/// corresponding x-amz-checksum-algorithm or x-amz-trailer header sent. Otherwise, Amazon S3
/// fails the request with the HTTP status code 400 Bad Request",
/// https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html).
pub(crate) fn check_checksum_headers(ctx: &Ctx<'_>) -> Result<(), S3Error> {
    use keyhole_sigv4::ChecksumKind;
    let invalid =
        |message: String| S3Error::new("InvalidRequest", StatusCode::BAD_REQUEST, message);
    let sent = SentChecksums::of(ctx)?;
    if sent.headers.len() > 1 {
        return Err(invalid(
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
                .into(),
        ));
    }
    let Some(declared) = ctx.header("x-amz-sdk-checksum-algorithm")? else {
        return Ok(());
    };
    let Some(kind) = ChecksumKind::from_algorithm(declared) else {
        return Err(invalid(format!(
            "Value for x-amz-sdk-checksum-algorithm header is invalid: `{declared}` is not one of CRC32, CRC32C, CRC64NVME, SHA1, SHA256."
        )));
    };
    match sent.headers.first() {
        Some(k) if *k == kind => Ok(()),
        Some(k) => Err(invalid(format!(
            "Value for x-amz-sdk-checksum-algorithm header is invalid: it names {} but the request carries {}.",
            kind.algorithm(),
            k.header_name()
        ))),
        None if sent.trailers.contains(&kind) => Ok(()),
        None => Err(invalid(format!(
            "x-amz-sdk-checksum-algorithm is {} but the request carries no {} header or trailer.",
            kind.algorithm(),
            kind.header_name()
        ))),
    }
}

/// An XML response with status 200.
pub(crate) fn xml_ok(doc: String) -> Response<Body> {
    xml_response(doc, "application/xml")
}

/// An XML response with status 200 and this content type.
pub(crate) fn xml_response(doc: String, content_type: &'static str) -> Response<Body> {
    let mut r = Response::new(body::full(doc));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    r
}

/// An empty response with this status.
pub(crate) fn empty_response(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(body::empty());
    *r.status_mut() = status;
    r
}

/// `Last-Modified` style date (RFC 7231 IMF-fixdate).
pub(crate) fn http_date(t: DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    // What `%a, %d %b %Y %H:%M:%S GMT` gives, without interpreting a format string on every
    // response (issue 16's profiles: strftime was half a percent of a small GET).
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let day = DAYS
        .get(t.weekday().num_days_from_monday() as usize)
        .copied()
        .unwrap_or_default();
    let month = MONTHS.get(t.month0() as usize).copied().unwrap_or_default();
    // Digits by hand: `format!` grew its string three times here (issue 16's allocation counts).
    let two = |out: &mut String, n: u32| {
        out.push(char::from(b'0' + (n / 10 % 10) as u8));
        out.push(char::from(b'0' + (n % 10) as u8));
    };
    let mut out = String::with_capacity(29);
    out.push_str(day);
    out.push_str(", ");
    two(&mut out, t.day());
    out.push(' ');
    out.push_str(month);
    out.push(' ');
    // Years 0..=9999: what `{:04}` writes for every year an HTTP date can hold.
    let year = u32::try_from(t.year()).unwrap_or_default();
    two(&mut out, year / 100);
    two(&mut out, year);
    out.push(' ');
    two(&mut out, t.hour());
    out.push(':');
    two(&mut out, t.minute());
    out.push(':');
    two(&mut out, t.second());
    out.push_str(" GMT");
    out
}

/// The timestamp form S3 uses in XML (`2009-10-12T17:50:30.000Z`).
pub(crate) fn xml_date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// An ETag as sent on the wire (quoted).
pub(crate) fn quoted(etag: &str) -> String {
    let mut out = String::with_capacity(etag.len() + 2);
    out.push('"');
    out.push_str(etag);
    out.push('"');
    out
}

/// Sets a header from text that may contain characters HTTP forbids; such values are refused.
pub(crate) fn set_header(r: &mut Response<Body>, name: &str, value: &str) -> Result<(), S3Error> {
    let name = http::header::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| S3Error::invalid_argument(format!("invalid header name `{name}`")))?;
    let value = HeaderValue::from_str(value)
        .map_err(|_| S3Error::invalid_argument(format!("invalid value for header `{name}`")))?;
    r.headers_mut().insert(name, value);
    Ok(())
}

/// Canned ACLs that grant nothing beyond the owner. Every bucket is the account's and so is every
/// object in it (Object Ownership `BucketOwnerEnforced`, ACLs disabled), so these three all mean
/// "the owner has full control", the only ACL such a bucket accepts. Every other ACL is public in
/// AWS's sense: refused with AccessDenied while BlockPublicAcls is in force (the default), and
/// otherwise with AccessControlListNotSupported, as a bucket with ACLs disabled refuses it.
/// https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html
/// https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-ownership-error-responses.html
const PRIVATE_CANNED_ACLS: &[&str] = &["private", "bucket-owner-read", "bucket-owner-full-control"];

/// Holds a read of `bucket`/`key` to the version its authorization read tags from, if it did
/// ([`crate::audit::ObjectFacts`]): the served object's ETag and last-modified time must be that
/// version's, else the object changed meanwhile and the answer is "retry" (never the new
/// version, which was not judged).
pub(crate) fn check_served_version(
    ctx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    served_etag: &str,
    served_last_modified: DateTime<Utc>,
    served_tags: Option<&[(String, String)]>,
) -> Result<(), S3Error> {
    match ctx.checks.facts(bucket, key) {
        Some(f)
            if f.etag.as_ref().map(|(e, t)| (e.as_str(), *t))
                != Some((served_etag, served_last_modified.timestamp()))
                || served_tags.is_some_and(|t| t != f.tags.as_slice()) =>
        {
            Err(crate::authz::changed_meanwhile())
        }
        _ => Ok(()),
    }
}

/// Holds an object about to be served (its head, the body not read yet) to the version its
/// authorization judged: [`check_served_version`], and where the backend did not give the
/// version's own tags (an upstream), [`recheck_tags`].
pub(crate) async fn hold_to_judged_version(
    ctx: &Ctx<'_>,
    head: &crate::backend::ObjectHead,
) -> Result<(), S3Error> {
    check_served_version(
        ctx,
        &ctx.bucket,
        &ctx.key,
        &head.etag,
        head.last_modified,
        head.tags.as_deref(),
    )?;
    if head.tags.is_none() {
        recheck_tags(ctx, &ctx.bucket, &ctx.key, ctx.version()).await?;
    }
    Ok(())
}

/// For an object about to be served whose authorization read its tags: reads the tags again
/// and requires the ones judged. With [`check_served_version`] this brackets the served version
/// between two tag reads, so an unversioned store's rewrite of identical bytes with other tags
/// within the same second must fall exactly between them to go unseen (review 9, N1).
pub(crate) async fn recheck_tags(
    ctx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<(), S3Error> {
    let Some(facts) = ctx.checks.facts(bucket, key) else {
        return Ok(());
    };
    match ctx.gw.storage.get_tags(bucket, key, version_id).await {
        Ok(tags) if tags == facts.tags => Ok(()),
        Ok(_) => Err(crate::authz::changed_meanwhile()),
        Err(e) if e.code() == "NoSuchKey" => Err(crate::authz::changed_meanwhile()),
        Err(e) => Err(e),
    }
}

/// The copy-source conditions of a copy whose authorization read the source's tags: the judged
/// version's alone (`If-Match` its ETag, `If-Unmodified-Since` its time), after the client's own
/// If-Match and If-Unmodified-Since are decided here against that version. Returns the
/// conditions and whether the pin was added (a `PreconditionFailed` then means the source
/// changed meanwhile). A `*` or a list naming several versions must not let another version
/// through (review 9, N2).
pub(crate) fn pin_copy_source(
    ctx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    mut conditions: crate::backend::ReadConditions,
) -> Result<(crate::backend::ReadConditions, bool), S3Error> {
    let Some(facts) = ctx.checks.facts(bucket, key) else {
        return Ok((conditions, false));
    };
    let Some((etag, modified)) = facts.etag else {
        return Err(S3Error::new(
            "NoSuchKey",
            StatusCode::NOT_FOUND,
            "The specified key does not exist.",
        ));
    };
    let failed = |condition: &'static str| {
        S3Error::new(
            "PreconditionFailed",
            StatusCode::PRECONDITION_FAILED,
            "At least one of the pre-conditions you specified did not hold",
        )
        .with("Condition", condition)
    };
    if let Some(wanted) = &conditions.if_match {
        let listed = wanted
            .split(',')
            .map(str::trim)
            .any(|c| c == "*" || c.trim_start_matches("W/").trim_matches('"') == etag);
        if !listed {
            return Err(failed("x-amz-copy-source-If-Match"));
        }
    }
    if let Some(since) = &conditions.if_unmodified_since {
        if crate::backend::conditions::parse_http_date(since)
            .is_some_and(|t| modified > t.timestamp())
        {
            return Err(failed("x-amz-copy-source-If-Unmodified-Since"));
        }
    }
    conditions.if_match = Some(format!("\"{etag}\""));
    if let Some(t) = DateTime::<Utc>::from_timestamp(modified, 0) {
        conditions.if_unmodified_since = Some(http_date(t));
    }
    Ok((conditions, true))
}

/// Refuses public canned ACLs and explicit grants.
pub(crate) fn check_acl_headers(ctx: &Ctx<'_>) -> Result<(), S3Error> {
    if let Some(acl) = ctx.header("x-amz-acl")? {
        if !PRIVATE_CANNED_ACLS.contains(&acl) {
            if ctx
                .gw
                .state
                .snapshot()
                .effective_bpa(&ctx.bucket)
                .block_public_acls
            {
                let message = format!(
                    "Access Denied: the canned ACL `{acl}` would make the resource public, and Block Public Access (BlockPublicAcls) is on"
                );
                // The refusal is a denial of the ACL the request sets: recorded so (review 11:
                // the trail said Allow for a request Block Public Access refused).
                let (action, resource) = if ctx.key.is_empty() {
                    ("s3:PutBucketAcl", route::bucket_arn(&ctx.bucket))
                } else {
                    ("s3:PutObjectAcl", route::object_arn(&ctx.bucket, &ctx.key))
                };
                ctx.checks.push(crate::audit::event::Check::rule_denial(
                    action,
                    resource,
                    "denied by Block Public Access (BlockPublicAcls): a public canned ACL",
                ));
                return Err(S3Error::access_denied(message));
            }
            return Err(acl::not_supported());
        }
    }
    if ctx
        .headers
        .keys()
        .map(http::HeaderName::as_str)
        .any(|n| n.starts_with("x-amz-grant-"))
    {
        return Err(acl::not_supported());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        let t = DateTime::parse_from_rfc3339("2026-11-22T07:30:05Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(http_date(t), "Sun, 22 Nov 2026 07:30:05 GMT");
        let parse = crate::backend::conditions::parse_http_date;
        assert_eq!(parse(&http_date(t)), Some(t));
        assert_eq!(xml_date(t), "2026-11-22T07:30:05.000Z");
        assert_eq!(parse("Sunday, 22-Nov-26 07:30:05 GMT"), Some(t));
        assert_eq!(parse("yesterday"), None);
    }

    proptest::proptest! {
        /// The hand-written formatter writes what chrono's strftime does.
        #[test]
        fn http_dates_are_what_strftime_writes(secs in 0i64..253_402_300_799) {
            let t = DateTime::from_timestamp(secs, 0).unwrap();
            proptest::prop_assert_eq!(
                http_date(t),
                t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
            );
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn actions(op: Op, h: &HeaderMap) -> Vec<&'static str> {
        let call = S3Call::new(op, "b".into(), "k".into(), h, &Query::default()).unwrap();
        match crate::authz::Describe::requirement(&call) {
            crate::authz::Requirement::Permissions(list) => {
                list.into_iter().map(|p| p.action).collect()
            }
            other => panic!("{other:?}"),
        }
    }

    fn copy() -> Op {
        Op::CopyObject(route::CopySource {
            bucket: "src".into(),
            key: "sk".into(),
            version_id: None,
        })
    }

    /// Review round 5, finding 3: "s3:PutObjectTagging – To successfully set the tag-set with
    /// your PutObject request, you must have the s3:PutObjectTagging"
    /// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html, Permissions).
    #[test]
    fn setting_tags_with_x_amz_tagging_needs_put_object_tagging() {
        let tagged = headers(&[("x-amz-tagging", "classification=public")]);
        let replace = headers(&[
            ("x-amz-tagging", "classification=public"),
            ("x-amz-tagging-directive", "REPLACE"),
        ]);
        assert_eq!(
            actions(Op::PutObject, &tagged),
            ["s3:PutObject", "s3:PutObjectTagging"]
        );
        assert_eq!(
            actions(Op::CreateMultipartUpload, &tagged),
            ["s3:PutObject", "s3:PutObjectTagging"]
        );
        assert_eq!(
            actions(copy(), &replace),
            ["s3:PutObject", "s3:GetObject", "s3:PutObjectTagging"]
        );
        // An empty tag set is still a tag set the request sets.
        assert_eq!(
            actions(Op::PutObject, &headers(&[("x-amz-tagging", "")])),
            ["s3:PutObject", "s3:PutObjectTagging"]
        );
        // A directive the handler will refuse fails closed here.
        assert!(actions(
            copy(),
            &headers(&[
                ("x-amz-tagging", "a=b"),
                ("x-amz-tagging-directive", "replace")
            ])
        )
        .contains(&"s3:PutObjectTagging"));
    }

    #[test]
    fn writes_that_do_not_set_tags_from_the_header_need_no_put_object_tagging() {
        let copy_tags = headers(&[
            ("x-amz-tagging", "classification=public"),
            ("x-amz-tagging-directive", "COPY"),
        ]);
        let tagged = headers(&[("x-amz-tagging", "classification=public")]);
        assert_eq!(actions(Op::PutObject, &HeaderMap::new()), ["s3:PutObject"]);
        // CopyObject's default directive is COPY: the header is ignored.
        assert_eq!(actions(copy(), &tagged), ["s3:PutObject", "s3:GetObject"]);
        assert_eq!(
            actions(copy(), &copy_tags),
            ["s3:PutObject", "s3:GetObject"]
        );
        // The multipart steps after CreateMultipartUpload never touch the upload's tags.
        for op in [
            Op::UploadPart {
                upload_id: "u".into(),
                part_number: 1,
            },
            Op::UploadPartCopy {
                upload_id: "u".into(),
                part_number: 1,
                source: route::CopySource {
                    bucket: "src".into(),
                    key: "sk".into(),
                    version_id: None,
                },
            },
            Op::CompleteMultipartUpload {
                upload_id: "u".into(),
            },
        ] {
            let needs = actions(op.clone(), &tagged);
            assert!(!needs.contains(&"s3:PutObjectTagging"), "{op:?}: {needs:?}");
        }
    }

    /// A runtime for the async authorization stage.
    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// IAM user `u` of `gw`'s account whose one identity policy is `doc`.
    fn user_with(gw: &crate::Gateway, doc: &str) -> Principal {
        Principal::User {
            name: "u".into(),
            id: "AIDAX".into(),
            arn: format!("arn:aws:iam::{}:user/u", gw.account.record.account_id),
            access_key_id: "AKIAX".into(),
            session: None,
            policies: std::sync::Arc::new(vec![keyhole_policy::CompiledPolicy::from_json(
                doc,
                keyhole_policy::PolicyKind::Identity,
            )
            .unwrap()]),
            boundary: None,
            tags: Default::default(),
        }
    }

    /// The authorization stage end to end: an explicit Deny on `s3:PutObjectTagging` stops a
    /// tagged PutObject, and the tagging check sees the request's tags as
    /// `s3:RequestObjectTag/KEY` (https://docs.aws.amazon.com/AmazonS3/latest/userguide/tagging-and-policies.html).
    /// The condition context of a PutObject with headers `h`, in the test account.
    fn put_object_context(h: &HeaderMap) -> keyhole_policy::Context {
        let mut context = keyhole_policy::Context::new();
        crate::context::add_s3(
            &mut context,
            &Op::PutObject,
            &Query::parse(None),
            h,
            "123456789012",
        );
        context
    }

    #[test]
    fn a_tagged_put_is_decided_on_put_object_tagging_with_the_request_tags() {
        let (_dir, gw) = crate::test_gateway();
        // authorize is async (it may read an object's tags through the storage seam).
        let rt = runtime();
        let user = |doc: &str| user_with(&gw, doc);
        let put = |p: &Principal, tagging: Option<&'static str>| {
            let h = match tagging {
                Some(t) => headers(&[("x-amz-tagging", t)]),
                None => HeaderMap::new(),
            };
            let context = put_object_context(&h);
            let call =
                S3Call::new(Op::PutObject, "b".into(), "k".into(), &h, &Query::default()).unwrap();
            rt.block_on(crate::authz::authorize(
                &gw,
                p,
                call,
                &context,
                &crate::audit::Checks::default(),
            ))
            .map(|_| ())
        };
        let denied = user(
            r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*"},
            {"Effect":"Deny","Action":"s3:PutObjectTagging","Resource":"*"}]}"#,
        );
        assert!(put(&denied, None).is_ok());
        let e = put(&denied, Some("classification=public")).unwrap_err();
        assert!(
            e.message().contains("s3:PutObjectTagging")
                && e.message()
                    .ends_with("with an explicit deny in an identity-based policy"),
            "{}",
            e.message()
        );
        let only_internal = user(
            r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*"},
            {"Effect":"Allow","Action":"s3:PutObjectTagging","Resource":"arn:aws:s3:::b/*",
             "Condition":{"StringEquals":{"s3:RequestObjectTag/classification":"internal"}}}]}"#,
        );
        assert!(put(&only_internal, Some("classification=internal")).is_ok());
        assert!(put(&only_internal, Some("classification=public")).is_err());
    }

    /// The case check is one pass: a hostile header with thousands of keys (S3 allows ten, checked
    /// later) is answered in linear time; a clash is found wherever it is, and the same key
    /// repeated is not a clash (the tag rules refuse that later, as InvalidTag).
    #[test]
    fn case_variant_check_over_many_keys() {
        let many: Vec<String> = (0..20_000).map(|i| format!("k{i}")).collect();
        let mut keys: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(refuse_case_variant_tag_keys(&keys).is_ok());
        keys.extend(["a"; 20_000]);
        assert!(refuse_case_variant_tag_keys(&keys).is_ok());
        keys.push("K19999");
        assert_eq!(
            refuse_case_variant_tag_keys(&keys).unwrap_err().code(),
            "AccessDenied"
        );
    }

    /// Review 16, F2: tag keys that differ only in case would collapse into one
    /// `s3:RequestObjectTag/KEY` (the last value winning), so a Deny on the value of one spelling
    /// could be evaded by sending the same key again in another case after it, while S3 stores
    /// both tags. A case-insensitive condition key "matches both tags"
    /// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition.html);
    /// such tag sets are refused before the decision, as existing objects' are.
    #[test]
    fn case_variant_request_tags_do_not_hide_a_denied_value() {
        let (_dir, gw) = crate::test_gateway();
        let rt = runtime();
        let user = user_with(
            &gw,
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":["s3:PutObject","s3:PutObjectTagging"],"Resource":"arn:aws:s3:::b/*"},
                {"Effect":"Deny","Action":["s3:PutObject","s3:PutObjectTagging"],"Resource":"*",
                 "Condition":{"StringEquals":{"s3:RequestObjectTag/Classification":"secret"}}}]}"#,
        );
        let put = |tagging: &'static str| {
            let h = headers(&[("x-amz-tagging", tagging)]);
            // The header passes S3's tag rules (S3 keeps keys that differ in case apart).
            tagging::parse_header(tagging).unwrap();
            let context = put_object_context(&h);
            refuse_case_variant_request_tags(&user, &h)?;
            let call = S3Call::new(Op::PutObject, "b".into(), "k".into(), &h, &Query::default())?;
            rt.block_on(crate::authz::authorize(
                &gw,
                &user,
                call,
                &context,
                &crate::audit::Checks::default(),
            ))
            .map(|_| ())
        };
        assert!(put("Classification=secret").is_err());
        assert!(put("classification=secret").is_err());
        assert!(put("Classification=ok&Team=a").is_ok());
        // The object would be stored with `Classification=secret`: must not be allowed.
        for tagging in [
            "Classification=secret&classification=ok",
            "CLASSIFICATION=ok&Classification=secret",
        ] {
            let refused = put(tagging).unwrap_err();
            assert_eq!(refused.code(), "AccessDenied", "{tagging}");
            // The root user, who can change every policy, may make such objects.
            let root = Principal::Root {
                access_key_id: "AKIAROOT".into(),
            };
            assert!(refuse_case_variant_request_tags(
                &root,
                &headers(&[("x-amz-tagging", tagging)])
            )
            .is_ok());
        }
    }
}
