//! Bucket tagging: GetBucketTagging, PutBucketTagging, DeleteBucketTagging.
//!
//! The tag set lives in the state database with the bucket's other configuration (see
//! `state::bucket_tags` for why there), so every node of a shared state answers the same
//! tags. Authorized by the one authorize stage as `s3:GetBucketTagging` and
//! `s3:PutBucketTagging` (DeleteBucketTagging too) on the bucket (`route::Op::access`).
//!
//! Limits follow AWS: up to 50 tags on a bucket, each with the same key and value rules as an
//! object's tags, keys unique
//! (https://docs.aws.amazon.com/AmazonS3/latest/userguide/CostAllocTagging.html,
//! https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketTagging.html).

use http::{Response, StatusCode};

use super::tagging::{answer_order, document, parse_document};
use super::{empty_response, xml_ok, Ctx};
use crate::body::{Body, BodyReader};
use crate::config::MAX_XML_BODY_BYTES;
use crate::error::S3Error;

/// AWS's limit on a bucket's tags.
const MAX_BUCKET_TAGS: usize = 50;

fn invalid_tag(reason: String) -> S3Error {
    S3Error::from(keyhole_store::StoreError::InvalidTag { reason })
}

/// A bucket's tag set is checked like an object's, tag by tag, but may hold 50 tags.
fn validate(tags: &[(String, String)]) -> Result<(), S3Error> {
    if tags.len() > MAX_BUCKET_TAGS {
        return Err(invalid_tag(format!(
            "a bucket can have at most {MAX_BUCKET_TAGS} tags; this request has {}",
            tags.len()
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    for tag in tags {
        keyhole_store::validate_tags(std::slice::from_ref(tag))?;
        if !seen.insert(tag.0.as_str()) {
            return Err(invalid_tag(format!(
                "the tag key `{}` is repeated: keys must be unique",
                tag.0
            )));
        }
    }
    Ok(())
}

pub(super) async fn get(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    ctx.require_bucket().await?;
    let bucket = ctx.bucket.clone();
    match ctx.state_call(move |s| s.get_bucket_tags(&bucket)).await? {
        Some(tags) => Ok(xml_ok(document(&answer_order(&tags)))),
        None => Err(S3Error::new(
            "NoSuchTagSet",
            StatusCode::NOT_FOUND,
            "The TagSet does not exist",
        )
        .with("BucketName", &ctx.bucket)),
    }
}

pub(super) async fn put(ctx: &Ctx<'_>, mut body: BodyReader) -> Result<Response<Body>, S3Error> {
    let found = super::bucket::found(ctx).await?;
    let doc = body.read_limited(MAX_XML_BODY_BYTES).await?;
    let tags = parse_document(&doc)?;
    validate(&tags)?;
    let bucket = ctx.bucket.clone();
    super::bucket::write_setting(ctx, &found, move |s| s.put_bucket_tags(&bucket, &tags)).await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

pub(super) async fn delete(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    ctx.require_bucket().await?;
    let bucket = ctx.bucket.clone();
    ctx.state_call(move |s| s.delete_bucket_tags(&bucket))
        .await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(n: usize) -> Vec<(String, String)> {
        (0..n).map(|i| (format!("k{i}"), "v".to_owned())).collect()
    }

    #[test]
    fn a_bucket_takes_up_to_fifty_unique_valid_tags() {
        assert!(validate(&tags(50)).is_ok());
        assert_eq!(validate(&tags(51)).unwrap_err().code(), "InvalidTag");
        let mut dup = tags(2);
        dup.push(("k0".into(), "other".into()));
        assert_eq!(validate(&dup).unwrap_err().code(), "InvalidTag");
        assert_eq!(
            validate(&[("aws:x".into(), "v".into())])
                .unwrap_err()
                .code(),
            "InvalidTag"
        );
        assert_eq!(
            validate(&[("k".repeat(129), "v".into())])
                .unwrap_err()
                .code(),
            "InvalidTag"
        );
    }
}
