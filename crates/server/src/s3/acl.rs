//! ACLs, disabled: every bucket has S3 Object Ownership `BucketOwnerEnforced`, AWS's default for
//! new buckets, so the account owns every object and only policies grant access
//! (https://docs.aws.amazon.com/AmazonS3/latest/userguide/about-object-ownership.html).
//!
//! - GetBucketAcl and GetObjectAcl answer the one ACL such a bucket has: the owner with
//!   `FULL_CONTROL` ("Requests to read ACLs are still supported. Requests to read ACLs always
//!   return a response that shows full control for the bucket owner").
//! - PutBucketAcl and PutObjectAcl accept only that same ACL (an owner-only canned ACL, or an
//!   `AccessControlPolicy` document granting `FULL_CONTROL` to the owner alone) and change nothing;
//!   any other ACL is `400 AccessControlListNotSupported` ("Requests to set ACLs or update ACLs
//!   fail with a 400 error and return the AccessControlListNotSupported error code",
//!   https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-ownership-error-responses.html).
//! - GetBucketOwnershipControls answers `BucketOwnerEnforced`; PutBucketOwnershipControls accepts
//!   `BucketOwnerEnforced` and refuses the settings that enable ACLs with `501 NotImplemented`.
//!   DeleteBucketOwnershipControls (which enables ACLs in AWS) is not served.

use http::{Response, StatusCode};

use super::{check_acl_headers, empty_response, xml_ok, Ctx};
use crate::backend::GetObject;
use crate::body::{Body, BodyReader};
use crate::config::MAX_XML_BODY_BYTES;
use crate::error::S3Error;
use crate::xml::{self, XmlWriter};

/// The error a bucket with ACLs disabled answers to an ACL it does not accept.
pub(super) fn not_supported() -> S3Error {
    S3Error::new(
        "AccessControlListNotSupported",
        StatusCode::BAD_REQUEST,
        "The bucket does not allow ACLs",
    )
}

/// Fails with the S3 error when the bucket, or with `object` the object, does not exist.
async fn exists(ctx: &Ctx<'_>, object: bool) -> Result<(), S3Error> {
    if !object {
        ctx.gw.storage.head_bucket(&ctx.bucket).await?;
        return Ok(());
    }
    keyhole_store::validate_key(&ctx.key)?;
    ctx.gw
        .storage
        .get_object(GetObject::head_version(
            &ctx.bucket,
            &ctx.key,
            ctx.version(),
        ))
        .await?;
    Ok(())
}

/// GetBucketAcl / GetObjectAcl: the owner, with full control.
pub(super) async fn get(ctx: &Ctx<'_>, object: bool) -> Result<Response<Body>, S3Error> {
    exists(ctx, object).await?;
    let id = &ctx.gw.owner_id;
    let mut w = XmlWriter::new();
    w.root("AccessControlPolicy");
    w.open("Owner");
    w.elem("ID", id);
    w.elem("DisplayName", "keyhole-root");
    w.close("Owner");
    w.open("AccessControlList");
    w.open("Grant");
    w.open_with(
        "Grantee",
        &[
            ("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance"),
            ("xsi:type", "CanonicalUser"),
        ],
    );
    w.elem("ID", id);
    w.elem("DisplayName", "keyhole-root");
    w.close("Grantee");
    w.elem("Permission", "FULL_CONTROL");
    w.close("Grant");
    w.close("AccessControlList");
    w.close("AccessControlPolicy");
    Ok(xml_ok(w.finish()))
}

/// PutBucketAcl / PutObjectAcl: only the ACL the resource already has is accepted, and nothing
/// changes.
pub(super) async fn put(
    ctx: &Ctx<'_>,
    mut body: BodyReader,
    object: bool,
) -> Result<Response<Body>, S3Error> {
    // A public canned ACL meets Block Public Access first, as on PutObject; grants are refused.
    check_acl_headers(ctx)?;
    let canned = ctx.header("x-amz-acl")?.is_some();
    let doc = body.read_limited(MAX_XML_BODY_BYTES).await?;
    match (canned, doc.is_empty()) {
        (true, false) => {
            return Err(S3Error::invalid_request(
                "Specify either the x-amz-acl header or an AccessControlPolicy body, not both",
            ))
        }
        (false, true) => return Err(S3Error::new(
            "MissingSecurityHeader",
            StatusCode::BAD_REQUEST,
            "Your request was missing a required header: x-amz-acl, or an AccessControlPolicy body",
        )),
        (false, false) => owner_full_control_only(&doc, &ctx.gw.owner_id).map_err(|e| {
            if e.code() == "AccessDenied" {
                // The action the request was authorized as (review 19).
                let action = match (object, ctx.version_id.is_some()) {
                    (true, true) => "s3:PutObjectVersionAcl",
                    (true, false) => "s3:PutObjectAcl",
                    (false, _) => "s3:PutBucketAcl",
                };
                ctx.refused(action, e)
            } else {
                e
            }
        })?,
        (true, true) => {}
    }
    exists(ctx, object).await?;
    Ok(empty_response(StatusCode::OK))
}

/// Accepts an `AccessControlPolicy` document only when it grants `FULL_CONTROL` to the owner
/// and nothing else; any other well-formed ACL is not supported.
fn owner_full_control_only(doc: &[u8], owner: &str) -> Result<(), S3Error> {
    let root = xml::parse(doc).map_err(S3Error::malformed_acl)?;
    if root.name != "AccessControlPolicy" {
        return Err(S3Error::malformed_acl("expected AccessControlPolicy"));
    }
    if let Some(id) = root.child("Owner").and_then(|o| o.child_text("ID")) {
        if id != owner {
            return Err(S3Error::access_denied(
                "Access Denied: the ACL names another owner",
            ));
        }
    }
    let list = root
        .child("AccessControlList")
        .ok_or_else(|| S3Error::malformed_acl("expected AccessControlList"))?;
    let grants: Vec<_> = list.children_named("Grant").collect();
    let owner_only = grants.len() == 1
        && grants.iter().all(|g| {
            let grantee = g.child("Grantee");
            g.child_text("Permission") == Some("FULL_CONTROL")
                && grantee.and_then(|e| e.child_text("ID")) == Some(owner)
                && grantee
                    .is_some_and(|e| e.child("URI").is_none() && e.child("EmailAddress").is_none())
        });
    if owner_only {
        Ok(())
    } else {
        Err(not_supported())
    }
}

/// GetBucketOwnershipControls: always `BucketOwnerEnforced`.
pub(super) async fn get_ownership(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    exists(ctx, false).await?;
    let mut w = XmlWriter::new();
    w.root("OwnershipControls");
    w.open("Rule");
    w.elem("ObjectOwnership", "BucketOwnerEnforced");
    w.close("Rule");
    w.close("OwnershipControls");
    Ok(xml_ok(w.finish()))
}

/// PutBucketOwnershipControls: `BucketOwnerEnforced` is what every bucket has; the settings that
/// enable ACLs are not implemented.
pub(super) async fn put_ownership(
    ctx: &Ctx<'_>,
    mut body: BodyReader,
) -> Result<Response<Body>, S3Error> {
    let doc = body.read_limited(MAX_XML_BODY_BYTES).await?;
    let root = xml::parse(&doc).map_err(S3Error::malformed_xml)?;
    let rules: Vec<_> = if root.name == "OwnershipControls" {
        root.children_named("Rule").collect()
    } else {
        Vec::new()
    };
    let [rule] = rules.as_slice() else {
        return Err(S3Error::malformed_xml(
            "expected OwnershipControls with one Rule",
        ));
    };
    match rule.child_text("ObjectOwnership") {
        Some("BucketOwnerEnforced") => {}
        Some(other @ ("BucketOwnerPreferred" | "ObjectWriter")) => {
            return Err(S3Error::not_implemented(&format!(
                "Object Ownership `{other}` (ACLs stay disabled: every bucket is BucketOwnerEnforced)"
            )))
        }
        _ => {
            return Err(S3Error::malformed_xml(
                "ObjectOwnership must be BucketOwnerEnforced, BucketOwnerPreferred or ObjectWriter",
            ))
        }
    }
    exists(ctx, false).await?;
    Ok(empty_response(StatusCode::OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: &str = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be";

    fn acl(grants: &str) -> Vec<u8> {
        format!(
            r#"<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Owner><ID>{OWNER}</ID></Owner><AccessControlList>{grants}</AccessControlList></AccessControlPolicy>"#
        )
        .into_bytes()
    }

    fn grant(grantee: &str, permission: &str) -> String {
        format!(
            r#"<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser">{grantee}</Grantee><Permission>{permission}</Permission></Grant>"#
        )
    }

    /// https://docs.aws.amazon.com/AmazonS3/latest/API/API_OwnershipControlsRule.html: a bucket
    /// with ACLs disabled accepts only "bucket owner full control ACLs (such as ... a custom ACL
    /// in XML format that grants the same permissions)".
    #[test]
    fn only_the_owners_full_control_is_accepted() {
        let me = format!("<ID>{OWNER}</ID>");
        assert!(owner_full_control_only(&acl(&grant(&me, "FULL_CONTROL")), OWNER).is_ok());
        for (doc, code) in [
            (acl(&grant(&me, "READ")), "AccessControlListNotSupported"),
            (acl(""), "AccessControlListNotSupported"),
            (
                acl(&(grant(&me, "FULL_CONTROL") + &grant("<ID>other</ID>", "READ"))),
                "AccessControlListNotSupported",
            ),
            (
                acl(&grant(
                    "<URI>http://acs.amazonaws.com/groups/global/AllUsers</URI>",
                    "READ",
                )),
                "AccessControlListNotSupported",
            ),
            (b"<Tagging/>".to_vec(), "MalformedACLError"),
            (b"<AccessControlPolicy>".to_vec(), "MalformedACLError"),
        ] {
            let e = owner_full_control_only(&doc, OWNER).unwrap_err();
            assert_eq!(e.code(), code, "{}", String::from_utf8_lossy(&doc));
        }
    }
}
