//! Bucket policies and Block Public Access: Get/Put/DeleteBucketPolicy, GetBucketPolicyStatus,
//! Get/Put/DeletePublicAccessBlock for a bucket and (S3 Control) for the account.
//!
//! A public bucket policy is refused while BlockPublicPolicy is in force, and grants nothing to
//! anonymous or other-account callers while RestrictPublicBuckets is
//! (https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html).

use http::{Response, StatusCode};

use super::{empty_response, xml_ok, Ctx};
use crate::body::{Body, BodyReader};
use crate::error::S3Error;
use crate::state::PublicAccessBlock;
use crate::xml::{self, XmlWriter};

/// AWS's limit on a bucket policy (20 KB).
const MAX_BUCKET_POLICY_BYTES: usize = 20 * 1024;

pub(super) async fn put_bucket_policy(
    ctx: &Ctx<'_>,
    mut body: BodyReader,
) -> Result<Response<Body>, S3Error> {
    let found = super::bucket::found(ctx).await?;
    let doc = body.read_limited(MAX_BUCKET_POLICY_BYTES).await?;
    let doc = String::from_utf8(doc).map_err(|_| {
        S3Error::new(
            "MalformedPolicy",
            StatusCode::BAD_REQUEST,
            "Policies must be valid UTF-8 JSON",
        )
    })?;
    let bucket = ctx.bucket.clone();
    let stored =
        super::bucket::write_setting(ctx, &found, move |s| s.put_bucket_policy(&bucket, &doc))
            .await
            .map_err(|e| {
                if e.code() == "MalformedPolicyDocument" {
                    S3Error::new(
                        "MalformedPolicy",
                        StatusCode::BAD_REQUEST,
                        e.message().to_owned(),
                    )
                } else {
                    e
                }
            })?;
    if !stored {
        return Err(ctx.refused(
            "s3:PutBucketPolicy",
            S3Error::access_denied(
                "Access Denied: the policy is public and Block Public Access (BlockPublicPolicy) is on",
            ),
        ));
    }
    Ok(empty_response(StatusCode::NO_CONTENT))
}

pub(super) async fn get_bucket_policy(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    ctx.require_bucket().await?;
    let bucket = ctx.bucket.clone();
    match ctx
        .state_call(move |s| s.get_bucket_policy(&bucket))
        .await?
    {
        Some(doc) => Ok(super::xml_response(doc, "application/json")),
        None => Err(S3Error::new(
            "NoSuchBucketPolicy",
            StatusCode::NOT_FOUND,
            "The bucket policy does not exist",
        )
        .with("BucketName", ctx.bucket.clone())),
    }
}

pub(super) async fn delete_bucket_policy(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    ctx.require_bucket().await?;
    let bucket = ctx.bucket.clone();
    ctx.state_call(move |s| s.delete_bucket_policy(&bucket))
        .await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

pub(super) async fn get_policy_status(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    ctx.require_bucket().await?;
    let public = ctx
        .gw
        .state
        .snapshot()
        .bucket_policies
        .get(&ctx.bucket)
        .is_some_and(|p| p.is_public());
    let mut w = XmlWriter::new();
    w.root("PolicyStatus");
    w.elem("IsPublic", if public { "true" } else { "false" });
    w.close("PolicyStatus");
    Ok(xml_ok(w.finish()))
}

fn pab_xml(p: PublicAccessBlock) -> String {
    let b = |v: bool| if v { "true" } else { "false" };
    let mut w = XmlWriter::new();
    w.root("PublicAccessBlockConfiguration");
    w.elem("BlockPublicAcls", b(p.block_public_acls));
    w.elem("IgnorePublicAcls", b(p.ignore_public_acls));
    w.elem("BlockPublicPolicy", b(p.block_public_policy));
    w.elem("RestrictPublicBuckets", b(p.restrict_public_buckets));
    w.close("PublicAccessBlockConfiguration");
    w.finish()
}

pub(super) async fn get_pab(ctx: &Ctx<'_>, bucket_level: bool) -> Result<Response<Body>, S3Error> {
    if bucket_level {
        ctx.require_bucket().await?;
    }
    let scope = bucket_level.then_some(ctx.bucket.as_str());
    match ctx.gw.state.get_public_access_block(scope) {
        Some(p) => Ok(xml_ok(pab_xml(p))),
        None => Err(S3Error::new(
            "NoSuchPublicAccessBlockConfiguration",
            StatusCode::NOT_FOUND,
            "The public access block configuration was not found",
        )),
    }
}

pub(super) async fn put_pab(
    ctx: &Ctx<'_>,
    mut body: BodyReader,
    bucket_level: bool,
) -> Result<Response<Body>, S3Error> {
    let found = if bucket_level {
        Some(super::bucket::found(ctx).await?)
    } else {
        None
    };
    let doc = body.read_limited(16 * 1024).await?;
    let root = xml::parse(&doc).map_err(S3Error::malformed_xml)?;
    if root.name != "PublicAccessBlockConfiguration" {
        return Err(S3Error::malformed_xml(
            "expected PublicAccessBlockConfiguration",
        ));
    }
    let flag = |name: &str| -> Result<bool, S3Error> {
        match root.child_text(name).map(str::trim) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(S3Error::malformed_xml(format!(
                "{name} must be true or false, not `{other}`"
            ))),
        }
    };
    let pab = PublicAccessBlock {
        block_public_acls: flag("BlockPublicAcls")?,
        ignore_public_acls: flag("IgnorePublicAcls")?,
        block_public_policy: flag("BlockPublicPolicy")?,
        restrict_public_buckets: flag("RestrictPublicBuckets")?,
    };
    match found {
        Some(found) => {
            let bucket = ctx.bucket.clone();
            super::bucket::write_setting(ctx, &found, move |s| {
                s.put_public_access_block(Some(&bucket), pab)
            })
            .await?;
        }
        None => {
            ctx.state_call(move |s| s.put_public_access_block(None, pab))
                .await?
        }
    }
    Ok(empty_response(StatusCode::OK))
}

pub(super) async fn delete_pab(
    ctx: &Ctx<'_>,
    bucket_level: bool,
) -> Result<Response<Body>, S3Error> {
    if bucket_level {
        ctx.require_bucket().await?;
    }
    let scope = bucket_level.then(|| ctx.bucket.clone());
    ctx.state_call(move |s| s.delete_public_access_block(scope.as_deref()))
        .await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}
