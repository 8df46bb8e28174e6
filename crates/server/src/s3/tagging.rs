//! Object tagging: GetObjectTagging, PutObjectTagging, DeleteObjectTagging, and the
//! `x-amz-tagging` header of PutObject/CopyObject/CreateMultipartUpload.
//!
//! Limits follow AWS (https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-tagging.html):
//! at most 10 tags, keys up to 128 and values up to 256 Unicode characters, keys unique.

use http::{Response, StatusCode};

use super::{empty_response, set_header, xml_ok, Ctx};
use crate::body::{Body, BodyReader};
use crate::config::MAX_XML_BODY_BYTES;
use crate::error::S3Error;
use crate::s3::route::Query;
use crate::xml::{self, XmlWriter};

/// Checks AWS's tag limits (the store's rules, one place for both).
pub(super) fn validate(tags: &[(String, String)]) -> Result<(), S3Error> {
    Ok(keyhole_store::validate_tags(tags)?)
}

/// Parses the `x-amz-tagging` header (URL query form: `k1=v1&k2=v2`).
pub(super) fn parse_header(v: &str) -> Result<Vec<(String, String)>, S3Error> {
    let q = Query::parse(Some(v));
    let tags: Vec<(String, String)> = q
        .names()
        .map(|k| (k.to_owned(), q.get(k).unwrap_or("").to_owned()))
        .collect();
    validate(&tags)?;
    Ok(tags)
}

pub(super) async fn get(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    let tags = ctx
        .gw
        .storage
        .get_tags(&ctx.bucket, &ctx.key, ctx.version())
        .await?;
    // Decided on the tags it read: tags that changed since were not judged (review 8, F2).
    if let Some(facts) = ctx.checks.facts(&ctx.bucket, &ctx.key) {
        if facts.tags != tags {
            return Err(crate::authz::changed_meanwhile());
        }
    }
    let mut r = xml_ok(document(&answer_order(&tags)));
    if let Some(v) = ctx.version() {
        set_header(&mut r, "x-amz-version-id", v)?;
    }
    Ok(r)
}

/// A `Tagging` document (GetObjectTagging's answer, PutObjectTagging's body).
pub(crate) fn document(tags: &[(String, String)]) -> String {
    let mut w = XmlWriter::new();
    w.root("Tagging");
    w.open("TagSet");
    for (k, v) in tags {
        w.open("Tag");
        w.elem("Key", k);
        w.elem("Value", v);
        w.close("Tag");
    }
    w.close("TagSet");
    w.close("Tagging");
    w.finish()
}

/// The tags of a `Tagging` document (PutObjectTagging's and PutBucketTagging's body), in the
/// order sent; the caller applies its own limits.
pub(super) fn parse_document(doc: &[u8]) -> Result<Vec<(String, String)>, S3Error> {
    let root = xml::parse(doc).map_err(S3Error::malformed_xml)?;
    let set = (root.name == "Tagging")
        .then(|| root.child("TagSet"))
        .flatten()
        .ok_or_else(|| S3Error::malformed_xml("expected Tagging/TagSet"))?;
    let mut tags = Vec::new();
    for t in set.children_named("Tag") {
        let k = t
            .child_text("Key")
            .ok_or_else(|| S3Error::malformed_xml("a Tag has no Key"))?;
        tags.push((k.to_owned(), t.child_text("Value").unwrap_or("").to_owned()));
    }
    Ok(tags)
}

/// A tag set as S3 answers it: ordered by key, whatever order it was sent in (tag keys are
/// unique, so this is one order).
pub(super) fn answer_order(tags: &[(String, String)]) -> Vec<(String, String)> {
    let mut sorted = tags.to_vec();
    sorted.sort();
    sorted
}

/// PutObjectTagging of one object (or version), described for authorization once its document
/// is read: `s3:PutObjectTagging` (`s3:PutObjectVersionTagging` for a version) with the tags it
/// sets as `s3:RequestObjectTag/KEY` and `s3:RequestObjectTagKeys`
/// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/tagging-and-policies.html; review 16,
/// F3: before, the tags of the body were never seen by a decision).
pub struct TagSetChange {
    bucket: String,
    key: String,
    version_id: Option<String>,
    tags: Vec<(String, String)>,
}

impl crate::authz::Describe for TagSetChange {
    fn requirement(&self) -> crate::authz::Requirement {
        let action = if self.version_id.is_some() {
            "s3:PutObjectVersionTagging"
        } else {
            "s3:PutObjectTagging"
        };
        crate::authz::Requirement::Permissions(vec![crate::authz::Permission::new(
            action,
            super::route::object_arn(&self.bucket, &self.key),
        )])
    }

    fn add_context(&self, context: &mut keyhole_policy::Context) {
        if let Some(v) = &self.version_id {
            context.insert("s3:versionid", v.as_str());
        }
        add_request_tag_keys(context, &self.tags);
    }
}

/// `s3:RequestObjectTag/KEY` for each tag and `s3:RequestObjectTagKeys`, the keys of a request
/// that sets tags.
pub(crate) fn add_request_tag_keys(
    context: &mut keyhole_policy::Context,
    tags: &[(String, String)],
) {
    for (k, v) in tags {
        context.insert(&format!("s3:RequestObjectTag/{k}"), v.as_str());
    }
    context.insert_multi(
        "s3:RequestObjectTagKeys",
        tags.iter().map(|(k, _)| k.clone()).collect(),
    );
}

pub(super) async fn put(ctx: &Ctx<'_>, mut body: BodyReader) -> Result<Response<Body>, S3Error> {
    let doc = body.read_limited(MAX_XML_BODY_BYTES).await?;
    let tags = parse_document(&doc)?;
    validate(&tags)?;
    if !matches!(ctx.principal, crate::auth::Principal::Root { .. }) {
        // As for `x-amz-tagging` (`refuse_case_variant_request_tags`).
        super::refuse_case_variant_tag_keys(
            &tags.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        )
        .inspect_err(|e| {
            super::record_case_variant_refusal(ctx.checks, &ctx.bucket, &ctx.key, e);
        })?;
    }
    let change = TagSetChange {
        bucket: ctx.bucket.clone(),
        key: ctx.key.clone(),
        version_id: ctx.version().map(str::to_owned),
        tags,
    };
    let authorized =
        crate::authz::authorize(ctx.gw, ctx.principal, change, &ctx.context, ctx.checks).await?;
    ctx.before_change().await?;
    let tags = authorized.into_call().tags;
    let version = ctx
        .gw
        .storage
        .put_tags(&ctx.bucket, &ctx.key, ctx.version(), tags)
        .await?;
    let mut r = empty_response(StatusCode::OK);
    if let Some(v) = version {
        set_header(&mut r, "x-amz-version-id", &v)?;
    }
    Ok(r)
}

pub(super) async fn delete(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    let version = ctx
        .gw
        .storage
        .delete_tags(&ctx.bucket, &ctx.key, ctx.version())
        .await?;
    let mut r = empty_response(StatusCode::NO_CONTENT);
    if let Some(v) = version {
        set_header(&mut r, "x-amz-version-id", &v)?;
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_tags_parse_and_validate() {
        assert_eq!(
            parse_header("a=1&b=two%20words").unwrap(),
            vec![("a".into(), "1".into()), ("b".into(), "two words".into())]
        );
        assert_eq!(parse_header("a=1&a=2").unwrap_err().code(), "InvalidTag");
        let many: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
        assert_eq!(
            parse_header(&many.join("&")).unwrap_err().code(),
            "InvalidTag"
        );
        let long_key = "k".repeat(129);
        assert_eq!(
            parse_header(&format!("{long_key}=v")).unwrap_err().code(),
            "InvalidTag"
        );
    }
}
