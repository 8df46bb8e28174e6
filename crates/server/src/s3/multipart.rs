//! Multipart uploads: Create, UploadPart, UploadPartCopy, Complete, Abort, ListParts,
//! ListMultipartUploads.

use http::{Response, StatusCode};

use super::list::{url_encode, url_encoding};
use super::object::{check_upload_length, content_md5, meta_from_headers};
use super::route::CopySource;
use super::{
    check_acl_headers, checksum_headers, empty_response, quoted, read_conditions, set_header,
    xml_date, xml_ok, Ctx, Upload,
};
use crate::backend::{
    CompleteUpload, ListUploads, PartsPage, UploadEntry, UploadPart, UploadPartCopy,
};
use crate::body::{Body, BodyReader};
use crate::config::MAX_XML_BODY_BYTES;
use crate::error::S3Error;
use crate::xml::{self, XmlWriter};

fn owner(w: &mut XmlWriter, ctx: &Ctx<'_>, element: &str) {
    w.open(element);
    w.elem("ID", &ctx.gw.owner_id);
    w.elem("DisplayName", "keyhole-root");
    w.close(element);
}

pub(super) async fn create(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    keyhole_store::validate_key(&ctx.key)?;
    check_acl_headers(ctx)?;
    let meta = meta_from_headers(ctx)?;
    let spec = crate::checksum::spec_from_headers(
        ctx.header("x-amz-checksum-algorithm")?,
        ctx.header("x-amz-checksum-type")?,
    )?;
    let upload_id = ctx
        .gw
        .storage
        .create_multipart(&ctx.bucket, &ctx.key, meta, spec.clone())
        .await?;
    let mut w = XmlWriter::new();
    w.root("InitiateMultipartUploadResult");
    w.elem("Bucket", &ctx.bucket);
    w.elem("Key", &ctx.key);
    w.elem("UploadId", &upload_id);
    w.close("InitiateMultipartUploadResult");
    let mut r = xml_ok(w.finish());
    if let Some(spec) = &spec {
        set_header(&mut r, "x-amz-checksum-algorithm", &spec.algorithm)?;
        set_header(&mut r, "x-amz-checksum-type", spec.kind.as_str())?;
    }
    Ok(r)
}

pub(super) async fn upload_part(
    ctx: &Ctx<'_>,
    body: BodyReader,
    upload_id: String,
    part_number: u32,
) -> Result<Response<Body>, S3Error> {
    super::check_checksum_headers(ctx)?;
    let length = check_upload_length(ctx, "a part")?;
    let req = UploadPart {
        bucket: ctx.bucket.clone(),
        key: ctx.key.clone(),
        upload_id,
        part_number,
        content_md5: content_md5(ctx)?,
        length,
        checksums: checksum_headers(ctx),
    };
    let mut payload = Upload::new(body, ctx);
    let written = ctx.gw.storage.upload_part(req, &mut payload).await?;
    let mut r = empty_response(StatusCode::OK);
    set_header(&mut r, "etag", &quoted(&written.etag))?;
    for (name, value) in &written.extra {
        set_header(&mut r, name, value)?;
    }
    Ok(r)
}

pub(super) async fn upload_part_copy(
    ctx: &Ctx<'_>,
    upload_id: String,
    part_number: u32,
    source: CopySource,
) -> Result<Response<Body>, S3Error> {
    let (source_conditions, pinned) = super::pin_copy_source(
        ctx,
        &source.bucket,
        &source.key,
        read_conditions(ctx, super::ConditionsOf::CopySource)?,
    )?;
    let req = UploadPartCopy {
        src_bucket: source.bucket,
        src_key: source.key,
        src_version_id: source.version_id,
        source_conditions,
        source_range: ctx.header("x-amz-copy-source-range")?.map(str::to_owned),
        bucket: ctx.bucket.clone(),
        key: ctx.key.clone(),
        upload_id,
        part_number,
    };
    let part = ctx
        .gw
        .storage
        .upload_part_copy(req)
        .await
        .map_err(|e| super::object::source_changed(e, pinned))?;
    let mut w = XmlWriter::new();
    w.root("CopyPartResult");
    w.elem("ETag", &quoted(&part.etag));
    w.elem("LastModified", &xml_date(part.last_modified));
    w.close("CopyPartResult");
    let mut r = xml_ok(w.finish());
    if let Some(v) = &part.src_version_id {
        set_header(&mut r, "x-amz-copy-source-version-id", v)?;
    }
    Ok(r)
}

pub(super) async fn complete(
    ctx: &Ctx<'_>,
    mut body: BodyReader,
    upload_id: String,
) -> Result<Response<Body>, S3Error> {
    let doc = body.read_limited(MAX_XML_BODY_BYTES).await?;
    let root = xml::parse(&doc).map_err(S3Error::malformed_xml)?;
    if root.name != "CompleteMultipartUpload" {
        return Err(S3Error::malformed_xml(
            "expected a CompleteMultipartUpload document",
        ));
    }
    let mut parts = Vec::new();
    let mut part_checksums = Vec::new();
    for p in root.children_named("Part") {
        part_checksums.push(p.children.iter().find_map(|c| {
            let alg = c.name.strip_prefix("Checksum")?;
            let kind = keyhole_sigv4::ChecksumKind::from_algorithm(alg)?;
            Some((kind, c.text.trim().to_owned()))
        }));
        let number = p
            .child_text("PartNumber")
            .and_then(|n| n.trim().parse::<u32>().ok())
            .ok_or_else(|| S3Error::malformed_xml("a Part has no valid PartNumber"))?;
        let etag = p
            .child_text("ETag")
            .ok_or_else(|| S3Error::malformed_xml("a Part has no ETag"))?;
        parts.push((number, etag.trim().trim_matches('"').to_owned()));
    }
    if parts.is_empty() {
        return Err(S3Error::malformed_xml("You must specify at least one part"));
    }
    // "InvalidPartOrder: The list of parts was not in ascending order. The parts list must be
    // specified in order by part number." (CompleteMultipartUpload,
    // https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompleteMultipartUpload.html): a rule
    // of the request itself, checked before any store (some upstreams do not check it).
    let entries: Vec<_> = parts
        .into_iter()
        .zip(part_checksums)
        .map(|((n, etag), checksum)| (n, (etag, checksum)))
        .collect();
    let (parts, part_checksums): (Vec<_>, Vec<_>) = last_entry_per_part(entries)?
        .into_iter()
        .map(|(n, (etag, checksum))| ((n, etag), checksum))
        .unzip();
    let whole = ctx.headers.iter().find_map(|(name, value)| {
        let kind = keyhole_sigv4::ChecksumKind::from_header_name(name.as_str())?;
        Some((kind, value.to_str().unwrap_or("").trim().to_owned()))
    });
    let req = CompleteUpload {
        bucket: ctx.bucket.clone(),
        key: ctx.key.clone(),
        upload_id,
        parts,
        condition: super::object::write_condition(ctx)?,
        checksums: crate::checksum::CompleteChecksums {
            parts: part_checksums,
            whole,
        },
    };
    let info = ctx.gw.storage.complete_multipart(req).await?;
    let mut w = XmlWriter::new();
    w.root("CompleteMultipartUploadResult");
    w.elem(
        "Location",
        &format!("/{}/{}", ctx.bucket, url_encode(&ctx.key)),
    );
    w.elem("Bucket", &ctx.bucket);
    w.elem("Key", &ctx.key);
    w.elem("ETag", &quoted(&info.etag));
    if let Some(c) = crate::checksum::from_headers(&info.extra) {
        w.elem(&crate::checksum::element(&c.algorithm), &c.value);
        w.elem("ChecksumType", c.kind.as_str());
    }
    w.close("CompleteMultipartUploadResult");
    let mut r = xml_ok(w.finish());
    if let Some(v) = &info.version_id {
        set_header(&mut r, "x-amz-version-id", v)?;
    }
    Ok(r)
}

/// The parts list in ascending order, a part number listed several times (a client that sent
/// a part again and listed both answers) counting once with its last entry: S3 completes such a
/// list with the part as last uploaded (ceph/s3-tests `test_multipart_resend_first_finishes_last`,
/// which AWS passes). A number lower than the one before is `InvalidPartOrder`.
/// Each entry keeps what the client listed with it (its ETag and checksum).
fn last_entry_per_part<T>(parts: Vec<(u32, T)>) -> Result<Vec<(u32, T)>, S3Error> {
    let mut out: Vec<(u32, T)> = Vec::with_capacity(parts.len());
    for part in parts {
        match out.last_mut() {
            Some(last) if last.0 > part.0 => {
                return Err(S3Error::from(keyhole_store::StoreError::InvalidPartOrder))
            }
            Some(last) if last.0 == part.0 => *last = part,
            _ => out.push(part),
        }
    }
    Ok(out)
}

pub(super) async fn abort(ctx: &Ctx<'_>, upload_id: String) -> Result<Response<Body>, S3Error> {
    ctx.gw
        .storage
        .abort_multipart(&ctx.bucket, &ctx.key, &upload_id)
        .await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

fn parse_u32_param(
    ctx: &Ctx<'_>,
    name: &'static str,
    default: u32,
    cap: u32,
) -> Result<u32, S3Error> {
    match ctx.query.get(name) {
        None => Ok(default),
        Some(v) => v.parse::<u32>().map(|n| n.min(cap)).map_err(|_| {
            S3Error::invalid_argument(format!("`{name}` must be a non-negative integer"))
                .with("ArgumentName", name)
        }),
    }
}

pub(super) async fn list_parts(
    ctx: &Ctx<'_>,
    upload_id: String,
) -> Result<Response<Body>, S3Error> {
    let max = parse_u32_param(ctx, "max-parts", 1000, 1000)?;
    let marker = parse_u32_param(ctx, "part-number-marker", 0, u32::MAX)?;
    let PartsPage {
        parts: page,
        truncated,
        checksum,
    } = ctx
        .gw
        .storage
        .list_parts(&ctx.bucket, &ctx.key, &upload_id, max, marker)
        .await?;
    let mut w = XmlWriter::new();
    w.root("ListPartsResult");
    w.elem("Bucket", &ctx.bucket);
    w.elem("Key", &ctx.key);
    w.elem("UploadId", &upload_id);
    w.elem("PartNumberMarker", &marker.to_string());
    if let Some(last) = page.last() {
        w.elem("NextPartNumberMarker", &last.part_number.to_string());
    }
    w.elem("MaxParts", &max.to_string());
    w.elem("IsTruncated", if truncated { "true" } else { "false" });
    if let Some(spec) = &checksum {
        w.elem("ChecksumAlgorithm", &spec.algorithm);
        w.elem("ChecksumType", spec.kind.as_str());
    }
    for p in &page {
        w.open("Part");
        w.elem("PartNumber", &p.part_number.to_string());
        w.elem("LastModified", &xml_date(p.last_modified));
        w.elem("ETag", &quoted(&p.etag));
        w.elem("Size", &p.size.to_string());
        // Part checksums are named for uploads created with an algorithm (the default
        // CRC64NVME each part keeps otherwise is internal to completing the object).
        if let (Some(spec), Some(v)) = (&checksum, &p.checksum) {
            w.elem(&crate::checksum::element(&spec.algorithm), v);
        }
        w.close("Part");
    }
    owner(&mut w, ctx, "Initiator");
    owner(&mut w, ctx, "Owner");
    w.elem("StorageClass", "STANDARD");
    w.close("ListPartsResult");
    Ok(xml_ok(w.finish()))
}

pub(super) async fn list_uploads(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    let encode = url_encoding(ctx)?;
    let enc = |s: &str| if encode { url_encode(s) } else { s.to_owned() };
    let max = parse_u32_param(ctx, "max-uploads", 1000, 1000)? as usize;
    let prefix = ctx.query.get("prefix").unwrap_or("").to_owned();
    let delimiter = ctx
        .query
        .get("delimiter")
        .filter(|d| !d.is_empty())
        .map(str::to_owned);
    let key_marker = ctx.query.get("key-marker").unwrap_or("").to_owned();
    let id_marker = ctx.query.get("upload-id-marker").unwrap_or("").to_owned();
    let req = ListUploads {
        prefix: prefix.clone(),
        delimiter: delimiter.clone(),
        key_marker: key_marker.clone(),
        upload_id_marker: id_marker.clone(),
        max,
    };
    let page = ctx.gw.storage.list_uploads(&ctx.bucket, req).await?;
    let mut w = XmlWriter::new();
    w.root("ListMultipartUploadsResult");
    w.elem("Bucket", &ctx.bucket);
    w.elem("KeyMarker", &enc(&key_marker));
    w.elem("UploadIdMarker", &id_marker);
    if page.truncated {
        if let Some(k) = &page.next_key_marker {
            w.elem("NextKeyMarker", &enc(k));
        }
        if let Some(u) = &page.next_upload_id_marker {
            w.elem("NextUploadIdMarker", u);
        }
    }
    w.elem("Prefix", &enc(&prefix));
    if let Some(d) = &delimiter {
        w.elem("Delimiter", &enc(d));
    }
    w.elem("MaxUploads", &max.to_string());
    if encode {
        w.elem("EncodingType", "url");
    }
    w.elem("IsTruncated", if page.truncated { "true" } else { "false" });
    for e in &page.entries {
        match e {
            UploadEntry::Upload {
                key,
                upload_id,
                initiated,
            } => {
                w.open("Upload");
                w.elem("Key", &enc(key));
                w.elem("UploadId", upload_id);
                owner(&mut w, ctx, "Initiator");
                owner(&mut w, ctx, "Owner");
                w.elem("StorageClass", "STANDARD");
                w.elem("Initiated", &xml_date(*initiated));
                w.close("Upload");
            }
            UploadEntry::Prefix(p) => {
                w.open("CommonPrefixes");
                w.elem("Prefix", &enc(p));
                w.close("CommonPrefixes");
            }
        }
    }
    w.close("ListMultipartUploadsResult");
    Ok(xml_ok(w.finish()))
}

#[cfg(test)]
mod tests {
    use super::last_entry_per_part;

    fn list(v: &[(u32, &str)]) -> Vec<(u32, String)> {
        v.iter().map(|(n, e)| (*n, (*e).to_owned())).collect()
    }

    #[test]
    fn a_repeated_part_number_counts_once_with_its_last_entry() {
        assert_eq!(
            last_entry_per_part(list(&[(1, "b"), (1, "a"), (2, "c"), (5, "d"), (5, "e")])).unwrap(),
            list(&[(1, "a"), (2, "c"), (5, "e")])
        );
        assert_eq!(
            last_entry_per_part(list(&[(2, "a"), (1, "b")]))
                .unwrap_err()
                .code(),
            "InvalidPartOrder"
        );
        assert_eq!(
            last_entry_per_part(list(&[(1, "a"), (3, "b"), (3, "c"), (2, "d")]))
                .unwrap_err()
                .code(),
            "InvalidPartOrder"
        );
    }
}
