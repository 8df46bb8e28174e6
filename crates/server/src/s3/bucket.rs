//! Bucket operations: ListBuckets, CreateBucket, DeleteBucket, HeadBucket, GetBucketLocation.

use base64::Engine as _;
use http::{Response, StatusCode};

use super::{check_acl_headers, empty_response, set_header, xml_date, xml_ok, Ctx};
use crate::body::{Body, BodyReader};
use crate::config::MAX_XML_BODY_BYTES;
use crate::error::S3Error;
use crate::xml::{self, XmlWriter};

/// The largest `max-buckets` (and the page size when only `prefix`, `bucket-region` or
/// `continuation-token` is given), as in S3.
const MAX_BUCKETS_PAGE: usize = 10_000;

/// ListBuckets, with S3's optional `max-buckets` (1 to 10,000), `continuation-token`, `prefix`
/// and `bucket-region` (https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListBuckets.html).
/// Without any of them every bucket is listed in one answer, as before pagination existed.
pub(super) async fn list_buckets(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    let prefix = ctx.query.get("prefix");
    let region = ctx.query.get("bucket-region");
    let after = ctx
        .query
        .get("continuation-token")
        .map(decode_bucket_token)
        .transpose()?;
    let max = match ctx.query.get("max-buckets") {
        None => MAX_BUCKETS_PAGE,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_BUCKETS_PAGE).contains(n))
            .ok_or_else(|| {
                S3Error::invalid_argument(format!(
                    "max-buckets must be an integer from 1 to {MAX_BUCKETS_PAGE}"
                ))
                .with("ArgumentName", "max-buckets")
                .with("ArgumentValue", v)
            })?,
    };
    let paged =
        ctx.query.has("max-buckets") || after.is_some() || prefix.is_some() || region.is_some();
    let mut buckets = ctx.gw.storage.list_buckets().await?;
    buckets.sort_by(|a, b| a.name.cmp(&b.name));
    buckets.retain(|b| {
        prefix.is_none_or(|p| b.name.starts_with(p))
            && region.is_none_or(|r| b.region == r)
            && after.as_deref().is_none_or(|a| b.name.as_str() > a)
    });
    let more = paged && buckets.len() > max;
    if paged {
        buckets.truncate(max);
    }
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
    if let (true, Some(last)) = (more, buckets.last()) {
        w.elem("ContinuationToken", &encode_bucket_token(&last.name));
    }
    if let Some(p) = prefix {
        w.elem("Prefix", p);
    }
    w.close("ListAllMyBucketsResult");
    Ok(xml_ok(w.finish()))
}

/// A ListBuckets continuation token: the last name listed, base64url (S3's tokens are opaque).
fn encode_bucket_token(name: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(name)
}

fn decode_bucket_token(token: &str) -> Result<String, S3Error> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            S3Error::invalid_argument(
                "The continuation token provided is incorrect: pass the ContinuationToken of the previous ListBuckets answer",
            )
            .with("ArgumentName", "continuation-token")
        })
}

pub(super) async fn create_bucket(
    ctx: &Ctx<'_>,
    mut body: BodyReader,
) -> Result<Response<Body>, S3Error> {
    keyhole_store::validate_bucket_name(&ctx.bucket)?;
    check_acl_headers(ctx)?;
    // `x-amz-object-ownership` (API_CreateBucket.html): ACLs stay disabled here, so only
    // `BucketOwnerEnforced` (AWS's default) is created; the settings that enable ACLs are refused
    // as PutBucketOwnershipControls refuses them, rather than creating a bucket that silently
    // differs from the one asked for (ceph/s3-tests `test_create_bucket_bucket_owner_preferred`).
    match ctx.header("x-amz-object-ownership")?.map(str::trim) {
        None | Some("BucketOwnerEnforced") => {}
        Some(other @ ("BucketOwnerPreferred" | "ObjectWriter")) => {
            return Err(S3Error::not_implemented(&format!(
                "Object Ownership `{other}` (ACLs stay disabled: every bucket is BucketOwnerEnforced)"
            )))
        }
        Some(other) => {
            return Err(S3Error::new(
                "InvalidArgument",
                StatusCode::BAD_REQUEST,
                format!("x-amz-object-ownership `{other}` is not one of BucketOwnerEnforced, BucketOwnerPreferred, ObjectWriter"),
            ))
        }
    }
    let with_lock = ctx
        .header("x-amz-bucket-object-lock-enabled")?
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
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
    // A new bucket starts with no settings: any the state still holds under the name were left
    // by a DeleteBucket cut between its two steps (the store's, then the state's: a crash) and
    // are removed first (review 26: a re-created bucket inherited the old policy). Under the
    // name's lock, with the creation itself.
    let _name = ctx.gw.bucket_names.lock(&ctx.gw.state, &ctx.bucket).await?;
    if let Err(e) = ctx.gw.storage.head_bucket(&ctx.bucket).await {
        if e.code() == "NoSuchBucket" {
            forget(ctx).await?;
        }
    }
    // "x-amz-bucket-object-lock-enabled: Specifies whether you want S3 Object Lock to be
    // enabled for the new bucket", which makes it versioned
    // (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html): made so in the
    // same step as the bucket, so no failure or shutdown between two steps can leave it
    // without its lock (review 25; an upstream bucket cannot have one: NotImplemented, and
    // nothing is created).
    let creating = if with_lock {
        ctx.gw
            .storage
            .create_locked_bucket(&ctx.bucket, &region)
            .await
    } else {
        ctx.gw.storage.create_bucket(&ctx.bucket, &region).await
    };
    match creating {
        Ok(()) => {}
        // "For legacy compatibility, if you re-create an existing bucket that you already own in
        // the North Virginia Region, Amazon S3 returns 200 OK"; every other region answers 409
        // BucketAlreadyOwnedByYou (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html,
        // Errors). Every bucket belongs to the gateway's one account, so "you own it" holds for
        // any caller allowed s3:CreateBucket on it; ACLs are disabled, so there is none to reset.
        Err(e) if e.code() == "BucketAlreadyOwnedByYou" && region == "us-east-1" => {}
        Err(e) => return Err(e),
    }
    let mut r = empty_response(StatusCode::OK);
    set_header(&mut r, "location", &format!("/{}", ctx.bucket))?;
    Ok(r)
}

/// Which bucket a request found under its name: its creation time, which tells a bucket from
/// one deleted and created again under the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found(chrono::DateTime<chrono::Utc>);

/// The bucket a setting request is about: NoSuchBucket when there is none. Taken before the
/// request's body is read; [`write_setting`] writes only to this same bucket.
pub(crate) async fn found(ctx: &Ctx<'_>) -> Result<Found, S3Error> {
    Ok(Found(
        ctx.gw.storage.head_bucket(&ctx.bucket).await?.created,
    ))
}

/// Writes a bucket's setting (policy, Block Public Access, CORS, tags) to the state, if the
/// bucket under the name is still the one the request found (`found`): NoSuchBucket otherwise,
/// and nothing written. Runs under the name's lock, which CreateBucket and DeleteBucket hold
/// for their steps, so no bucket is deleted or created in between (review 26: a PutBucketPolicy
/// whose body was still arriving when its bucket was deleted gave its grants to the next bucket
/// of that name; review 27: also when that bucket was created before the body ended).
pub(crate) async fn write_setting<T: Send + 'static>(
    ctx: &Ctx<'_>,
    found: &Found,
    f: impl FnOnce(&crate::state::State) -> Result<T, crate::state::StateError> + Send + 'static,
) -> Result<T, S3Error> {
    let _name = ctx.gw.bucket_names.lock(&ctx.gw.state, &ctx.bucket).await?;
    let now = self::found(ctx).await?;
    if now != *found {
        return Err(S3Error::from(keyhole_store::StoreError::NoSuchBucket));
    }
    ctx.state_call(f).await
}

/// Removes the settings the state holds for `ctx.bucket`.
async fn forget(ctx: &Ctx<'_>) -> Result<(), S3Error> {
    let name = ctx.bucket.clone();
    ctx.state_call(move |s| s.forget_bucket(&name)).await
}

pub(super) async fn delete_bucket(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    // The store's step and the state's under the name's lock: a setting written in between
    // would outlive the bucket, and a bucket created in between would lose its settings
    // (review 27).
    let _name = ctx.gw.bucket_names.lock(&ctx.gw.state, &ctx.bucket).await?;
    ctx.gw.storage.delete_bucket(&ctx.bucket).await?;
    forget(ctx).await?;
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
    // A constraint that names a region other than the one served is S3's
    // IllegalLocationConstraintException ("The eu-west-1 location constraint is incompatible
    // for the region specific endpoint this request was sent to"); `us-east-1` spelled out, or a
    // value that is no region name, is InvalidLocationConstraint.
    if lc != "us-east-1" && looks_like_region(lc) {
        return Err(S3Error::new(
            "IllegalLocationConstraintException",
            StatusCode::BAD_REQUEST,
            format!(
                "The {lc} location constraint is incompatible for the region specific endpoint this request was sent to: {expected}"
            ),
        ));
    }
    Err(S3Error::new(
        "InvalidLocationConstraint",
        StatusCode::BAD_REQUEST,
        format!("The specified location-constraint `{lc}` is not valid: {expected}"),
    ))
}

/// Whether `lc` has the shape of an AWS region name (`eu-west-1`, `us-gov-east-1`,
/// `ap-southeast-4`): lowercase words joined by hyphens, ending in a number.
fn looks_like_region(lc: &str) -> bool {
    let Some((words, number)) = lc.rsplit_once('-') else {
        return false;
    };
    !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
        && words.split('-').count() >= 2
        && words
            .split('-')
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
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
        assert_eq!(
            check_location_constraint("eu-west-1", "us-east-1")
                .unwrap_err()
                .code(),
            "IllegalLocationConstraintException"
        );
        assert_eq!(
            check_location_constraint("us-east-1", "eu-west-1")
                .unwrap_err()
                .code(),
            "InvalidLocationConstraint"
        );
        let e = check_location_constraint("not-a-region", "eu-west-1").unwrap_err();
        assert_eq!(e.code(), "InvalidLocationConstraint");
        assert!(e.message().contains("eu-west-1"));
    }
}
