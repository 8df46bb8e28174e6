//! Bucket versioning: GetBucketVersioning, PutBucketVersioning and ListObjectVersions
//! ("Using versioning in S3 buckets",
//! https://docs.aws.amazon.com/AmazonS3/latest/userguide/Versioning.html; the API pages
//! API_GetBucketVersioning.html, API_PutBucketVersioning.html, API_ListObjectVersions.html).

use http::{Response, StatusCode};

use super::list::{max_keys, url_encode, url_encoding};
use super::{empty_response, quoted, xml_date, xml_ok, Ctx};
use crate::backend::{ListVersions, VersionListed, Versioning};
use crate::body::{Body, BodyReader};
use crate::config::MAX_XML_BODY_BYTES;
use crate::error::S3Error;
use crate::xml::{self, XmlWriter};

/// GetBucketVersioning: `Status` once versioning was ever enabled; "If the bucket has never been
/// so configured, this element is not returned" (an empty `VersioningConfiguration`). `MfaDelete`
/// is never returned: no bucket here can have it.
pub(super) async fn get_bucket_versioning(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    let state = ctx.gw.storage.get_versioning(&ctx.bucket).await?;
    let mut w = XmlWriter::new();
    w.root("VersioningConfiguration");
    match state {
        Versioning::Unversioned => {}
        Versioning::Enabled => w.elem("Status", "Enabled"),
        Versioning::Suspended => w.elem("Status", "Suspended"),
    }
    w.close("VersioningConfiguration");
    Ok(xml_ok(w.finish()))
}

/// The answer to a request for MFA delete. "When you configure MFA delete, only the root user can
/// permanently delete object versions or change the versioning configuration ... You must use an
/// MFA device to authenticate the root user", with the device's serial number and code in
/// `x-amz-mfa` over HTTPS (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingMFADelete.html,
/// https://docs.aws.amazon.com/AmazonS3/latest/userguide/MultiFactorAuthenticationDelete.html).
/// keyhole has no MFA devices, so no request can carry a code it could verify: refused as AWS
/// refuses a request whose MFA it cannot authenticate.
fn mfa_delete_refused(ctx: &Ctx<'_>) -> Result<S3Error, S3Error> {
    let why = if ctx.header("x-amz-mfa")?.is_some() {
        "the x-amz-mfa code cannot be verified: keyhole has no MFA devices"
    } else {
        "MFA delete needs the root user's MFA device in the x-amz-mfa header, and keyhole has no MFA devices"
    };
    Ok(S3Error::access_denied(format!(
        "Access Denied: MfaDelete cannot be Enabled ({why}); send MfaDelete Disabled or leave it out"
    )))
}

/// PutBucketVersioning: `Status` `Enabled` or `Suspended` (a bucket never becomes unversioned
/// again); `MfaDelete` `Disabled` is accepted, `Enabled` refused ([`mfa_delete_refused`]).
pub(super) async fn put_bucket_versioning(
    ctx: &Ctx<'_>,
    mut body: BodyReader,
) -> Result<Response<Body>, S3Error> {
    let doc = body.read_limited(MAX_XML_BODY_BYTES).await?;
    let root = xml::parse(&doc).map_err(S3Error::malformed_xml)?;
    if root.name != "VersioningConfiguration" {
        return Err(S3Error::malformed_xml(
            "expected a VersioningConfiguration document",
        ));
    }
    // S3's error list: "IllegalVersioningConfigurationException: Indicates that the versioning
    // configuration specified in the request is invalid" (400).
    let illegal = |what: String| {
        S3Error::new(
            "IllegalVersioningConfigurationException",
            StatusCode::BAD_REQUEST,
            format!("The versioning configuration specified in the request is invalid: {what}"),
        )
    };
    match root.child_text("MfaDelete").map(str::trim) {
        None | Some("Disabled") => {}
        Some("Enabled") => {
            return Err(ctx.refused("s3:PutBucketVersioning", mfa_delete_refused(ctx)?))
        }
        Some(other) => {
            return Err(illegal(format!(
                "MfaDelete `{other}` is neither Enabled nor Disabled"
            )))
        }
    }
    let state = match root.child_text("Status").map(str::trim) {
        Some("Enabled") => Versioning::Enabled,
        Some("Suspended") => Versioning::Suspended,
        Some(other) => {
            return Err(illegal(format!(
                "Status `{other}` is neither Enabled nor Suspended"
            )))
        }
        None => {
            return Err(illegal(
                "Status is missing (Enabled or Suspended)".to_owned(),
            ))
        }
    };
    ctx.gw.storage.put_versioning(&ctx.bucket, state).await?;
    Ok(empty_response(StatusCode::OK))
}

/// ListObjectVersions: every version and delete marker, keys in order and each key's versions
/// newest first; `key-marker` and `version-id-marker` continue where `NextKeyMarker` and
/// `NextVersionIdMarker` of the page before left off.
pub(super) async fn list_object_versions(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    let encode = url_encoding(ctx)?;
    let enc = |s: &str| if encode { url_encode(s) } else { s.to_owned() };
    let q = |name: &str| ctx.query.get(name).unwrap_or("").to_owned();
    let prefix = q("prefix");
    let delimiter = ctx
        .query
        .get("delimiter")
        .filter(|d| !d.is_empty())
        .map(str::to_owned);
    let key_marker = q("key-marker");
    let version_id_marker = q("version-id-marker");
    if key_marker.is_empty() && !version_id_marker.is_empty() {
        return Err(S3Error::invalid_argument(
            "A version-id marker cannot be specified without a key marker.",
        )
        .with("ArgumentName", "version-id-marker")
        .with("ArgumentValue", version_id_marker));
    }
    let max = max_keys(ctx, "max-keys")?;
    let page = ctx
        .gw
        .storage
        .list_versions(
            &ctx.bucket,
            ListVersions {
                prefix: prefix.clone(),
                delimiter: delimiter.clone(),
                key_marker: key_marker.clone(),
                version_id_marker: version_id_marker.clone(),
                max_keys: max,
            },
        )
        .await?;
    let mut w = XmlWriter::new();
    w.root("ListVersionsResult");
    w.elem("Name", &ctx.bucket);
    w.elem("Prefix", &enc(&prefix));
    w.elem("KeyMarker", &enc(&key_marker));
    w.elem("VersionIdMarker", &version_id_marker);
    if page.truncated {
        if let Some(k) = &page.next_key_marker {
            w.elem("NextKeyMarker", &enc(k));
        }
        if let Some(v) = &page.next_version_id_marker {
            w.elem("NextVersionIdMarker", v);
        }
    }
    w.elem("MaxKeys", &max.to_string());
    if let Some(d) = &delimiter {
        w.elem("Delimiter", &enc(d));
    }
    if encode {
        w.elem("EncodingType", "url");
    }
    w.elem("IsTruncated", if page.truncated { "true" } else { "false" });
    let owner = |w: &mut XmlWriter| {
        w.open("Owner");
        w.elem("ID", &ctx.gw.owner_id);
        w.elem("DisplayName", "keyhole-root");
        w.close("Owner");
    };
    for entry in &page.entries {
        match entry {
            VersionListed::Version {
                object,
                version_id,
                is_latest,
            } => {
                w.open("Version");
                w.elem("Key", &enc(&object.key));
                w.elem("VersionId", version_id);
                w.elem("IsLatest", if *is_latest { "true" } else { "false" });
                w.elem("LastModified", &xml_date(object.last_modified));
                w.elem("ETag", &quoted(&object.etag));
                w.elem("Size", &object.size.to_string());
                w.elem("StorageClass", &object.storage_class);
                owner(&mut w);
                w.close("Version");
            }
            VersionListed::DeleteMarker {
                key,
                version_id,
                is_latest,
                last_modified,
            } => {
                w.open("DeleteMarker");
                w.elem("Key", &enc(key));
                w.elem("VersionId", version_id);
                w.elem("IsLatest", if *is_latest { "true" } else { "false" });
                w.elem("LastModified", &xml_date(*last_modified));
                owner(&mut w);
                w.close("DeleteMarker");
            }
            VersionListed::Prefix(p) => {
                w.open("CommonPrefixes");
                w.elem("Prefix", &enc(p));
                w.close("CommonPrefixes");
            }
        }
    }
    w.close("ListVersionsResult");
    Ok(xml_ok(w.finish()))
}
