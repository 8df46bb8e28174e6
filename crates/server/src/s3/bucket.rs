//! Bucket operations: ListBuckets, CreateBucket, DeleteBucket, HeadBucket, GetBucketLocation.

use http::{Response, StatusCode};

use super::{check_acl_headers, empty_response, set_header, xml_date, xml_ok, Ctx};
use crate::body::{Body, BodyReader};
use crate::config::MAX_XML_BODY_BYTES;
use crate::error::S3Error;
use crate::xml::{self, XmlWriter};

pub(super) async fn list_buckets(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    let buckets = ctx.gw.storage.list_buckets().await?;
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
    let region = ctx.gw.config.region.clone();
    if !doc.iter().all(u8::is_ascii_whitespace) {
        let root = xml::parse(&doc).map_err(S3Error::malformed_xml)?;
        if root.name != "CreateBucketConfiguration" {
            return Err(S3Error::malformed_xml("expected CreateBucketConfiguration"));
        }
        if let Some(lc) = root.child_text("LocationConstraint") {
            check_location_constraint(lc.trim(), &ctx.gw.config.region)?;
        }
    }
    ctx.gw.storage.create_bucket(&ctx.bucket, &region).await?;
    let mut r = empty_response(StatusCode::OK);
    set_header(&mut r, "location", &format!("/{}", ctx.bucket))?;
    Ok(r)
}

pub(super) async fn delete_bucket(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    ctx.gw.storage.delete_bucket(&ctx.bucket).await?;
    let state = ctx.gw.state.clone();
    let name = ctx.bucket.clone();
    crate::state::db::blocking(move || state.forget_bucket(&name)).await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

pub(super) async fn head_bucket(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    let info = ctx.gw.storage.head_bucket(&ctx.bucket).await?;
    let mut r = empty_response(StatusCode::OK);
    set_header(&mut r, "x-amz-bucket-region", &info.region)?;
    Ok(r)
}

pub(super) async fn get_bucket_location(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    let info = ctx.gw.storage.head_bucket(&ctx.bucket).await?;
    let mut w = XmlWriter::new();
    w.root("LocationConstraint");
    // AWS answers an empty constraint for us-east-1.
    if info.region != "us-east-1" {
        w.elem_text(&info.region);
    }
    w.close("LocationConstraint");
    Ok(xml_ok(w.finish()))
}

/// A gateway serves one region. As in AWS, `us-east-1` is asked for by omitting the constraint;
/// any other value must name the gateway's region
/// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html).
fn check_location_constraint(lc: &str, region: &str) -> Result<(), S3Error> {
    let ok = if region == "us-east-1" {
        lc.is_empty()
    } else {
        lc.is_empty() || lc == region
    };
    if ok {
        return Ok(());
    }
    let expected = if region == "us-east-1" {
        "omit LocationConstraint (this gateway serves us-east-1)".to_owned()
    } else {
        format!("use `{region}` or omit it")
    };
    Err(S3Error::new(
        "InvalidLocationConstraint",
        StatusCode::BAD_REQUEST,
        format!("The specified location-constraint `{lc}` is not valid: {expected}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_constraints_name_the_served_region() {
        assert!(check_location_constraint("", "us-east-1").is_ok());
        assert!(check_location_constraint("us-east-1", "us-east-1").is_err());
        assert!(check_location_constraint("eu-west-1", "us-east-1").is_err());
        assert!(check_location_constraint("eu-west-1", "eu-west-1").is_ok());
        assert!(check_location_constraint("", "eu-west-1").is_ok());
        let e = check_location_constraint("not-a-region", "eu-west-1").unwrap_err();
        assert_eq!(e.code(), "InvalidLocationConstraint");
        assert!(e.message().contains("eu-west-1"));
    }
}
