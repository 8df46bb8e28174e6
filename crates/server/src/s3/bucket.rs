//! Bucket operations: ListBuckets, CreateBucket, DeleteBucket, HeadBucket, GetBucketLocation.

use http::{Response, StatusCode};

use super::{check_acl_headers, empty_response, set_header, xml_date, xml_ok, Ctx};
use crate::body::{blocking, Body, BodyReader};
use crate::config::MAX_XML_BODY_BYTES;
use crate::error::S3Error;
use crate::xml::{self, XmlWriter};

pub(super) async fn list_buckets(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    let store = ctx.gw.store.clone();
    let buckets = blocking(move || store.list_buckets()).await?;
    let mut w = XmlWriter::new();
    w.root("ListAllMyBucketsResult");
    w.open("Owner");
    w.elem("ID", &ctx.gw.owner_id);
    w.elem("DisplayName", "keyhole-root");
    w.close("Owner");
    w.open("Buckets");
    for b in &buckets {
        w.open("Bucket");
        w.elem("Name", &b.name);
        w.elem("CreationDate", &xml_date(b.created));
        w.elem("BucketRegion", &b.region);
        w.close("Bucket");
    }
    w.close("Buckets");
    w.close("ListAllMyBucketsResult");
    Ok(xml_ok(w.finish()))
}

pub(super) async fn create_bucket(
    ctx: &Ctx<'_>,
    mut body: BodyReader,
) -> Result<Response<Body>, S3Error> {
    keyhole_store::validate_bucket_name(&ctx.bucket)?;
    check_acl_headers(ctx)?;
    if ctx.header("x-amz-bucket-object-lock-enabled")? == Some("true") {
        return Err(S3Error::not_implemented("Object Lock"));
    }
    let doc = body.read_limited(MAX_XML_BODY_BYTES).await?;
    let mut region = ctx.gw.config.region.clone();
    if !doc.iter().all(u8::is_ascii_whitespace) {
        let root = xml::parse(&doc).map_err(S3Error::malformed_xml)?;
        if root.name != "CreateBucketConfiguration" {
            return Err(S3Error::malformed_xml("expected CreateBucketConfiguration"));
        }
        if let Some(lc) = root.child_text("LocationConstraint") {
            let lc = lc.trim();
            if lc == "us-east-1" {
                // AWS: us-east-1 is expressed by omitting the constraint.
                return Err(S3Error::new(
                    "InvalidLocationConstraint",
                    StatusCode::BAD_REQUEST,
                    "The specified location-constraint is not valid: omit LocationConstraint for us-east-1",
                ));
            }
            if !lc.is_empty() {
                if !lc
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                {
                    return Err(S3Error::new(
                        "InvalidLocationConstraint",
                        StatusCode::BAD_REQUEST,
                        format!("The specified location-constraint `{lc}` is not valid"),
                    ));
                }
                region = lc.to_owned();
            }
        }
    }
    let store = ctx.gw.store.clone();
    let name = ctx.bucket.clone();
    blocking(move || store.create_bucket(&name, &region)).await?;
    let mut r = empty_response(StatusCode::OK);
    set_header(&mut r, "location", &format!("/{}", ctx.bucket))?;
    Ok(r)
}

pub(super) async fn delete_bucket(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    let store = ctx.gw.store.clone();
    let name = ctx.bucket.clone();
    blocking(move || store.delete_bucket(&name)).await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

pub(super) async fn head_bucket(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    let store = ctx.gw.store.clone();
    let name = ctx.bucket.clone();
    let info = blocking(move || store.bucket(&name)).await?;
    let mut r = empty_response(StatusCode::OK);
    set_header(&mut r, "x-amz-bucket-region", &info.region)?;
    Ok(r)
}

pub(super) async fn get_bucket_location(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    let store = ctx.gw.store.clone();
    let name = ctx.bucket.clone();
    let info = blocking(move || store.bucket(&name)).await?;
    let mut w = XmlWriter::new();
    w.root("LocationConstraint");
    // AWS answers an empty constraint for us-east-1.
    if info.region != "us-east-1" {
        w.elem_text(&info.region);
    }
    w.close("LocationConstraint");
    Ok(xml_ok(w.finish()))
}
