//! Multipart uploads: Create, UploadPart, UploadPartCopy, Complete, Abort, ListParts,
//! ListMultipartUploads.

use http::{Response, StatusCode};

use super::list::{url_encode, url_encoding};
use super::object::{
    check_upload_length, content_md5, copy_stream, meta_from_headers, open_source,
};
use super::route::CopySource;
use super::{check_acl_headers, empty_response, quoted, set_header, xml_date, xml_ok, Ctx};
use crate::body::{blocking, pump, Body, BodyReader};
use crate::config::{MAX_SINGLE_PUT_BYTES, MAX_XML_BODY_BYTES};
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
    let store = ctx.gw.store.clone();
    let (bucket, key) = (ctx.bucket.clone(), ctx.key.clone());
    let upload_id = blocking(move || store.create_multipart(&bucket, &key, meta)).await?;
    let mut w = XmlWriter::new();
    w.root("InitiateMultipartUploadResult");
    w.elem("Bucket", &ctx.bucket);
    w.elem("Key", &ctx.key);
    w.elem("UploadId", &upload_id);
    w.close("InitiateMultipartUploadResult");
    Ok(xml_ok(w.finish()))
}

pub(super) async fn upload_part(
    ctx: &Ctx<'_>,
    mut body: BodyReader,
    upload_id: String,
    part_number: u32,
) -> Result<Response<Body>, S3Error> {
    check_upload_length(ctx, "a part")?;
    let md5 = content_md5(ctx)?;
    let store = ctx.gw.store.clone();
    let (bucket, key) = (ctx.bucket.clone(), ctx.key.clone());
    let writer = pump(&mut body, move || {
        store.new_part(&bucket, &key, &upload_id, part_number)
    })
    .await?;
    ctx.before_change().await?;
    let part = blocking(move || writer.commit(md5)).await?;
    let mut r = empty_response(StatusCode::OK);
    set_header(&mut r, "etag", &quoted(&part.etag))?;
    Ok(r)
}

/// Parses `x-amz-copy-source-range: bytes=first-last` against the source size.
fn copy_range(header: Option<&str>, size: u64) -> Result<(u64, u64), S3Error> {
    let Some(h) = header else {
        return Ok((0, size));
    };
    let bad = || {
        S3Error::invalid_argument(format!(
            "The x-amz-copy-source-range value `{h}` must be of the form bytes=first-last, within the source object of {size} bytes"
        ))
        .with("ArgumentName", "x-amz-copy-source-range")
    };
    let (a, b) = h
        .trim()
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(bad)?;
    let (first, last) = (
        a.parse::<u64>().map_err(|_| bad())?,
        b.parse::<u64>().map_err(|_| bad())?,
    );
    if first > last || last >= size {
        return Err(S3Error::new(
            "InvalidRange",
            StatusCode::RANGE_NOT_SATISFIABLE,
            "The requested range is not satisfiable",
        ));
    }
    Ok((first, last - first + 1))
}

pub(super) async fn upload_part_copy(
    ctx: &Ctx<'_>,
    upload_id: String,
    part_number: u32,
    source: CopySource,
) -> Result<Response<Body>, S3Error> {
    let (info, mut reader) = open_source(ctx, &source).await?;
    let (start, len) = copy_range(ctx.header("x-amz-copy-source-range")?, info.size)?;
    if len > MAX_SINGLE_PUT_BYTES {
        return Err(S3Error::invalid_request(
            "A copied part may be at most 5 GiB.",
        ));
    }
    let store = ctx.gw.store.clone();
    let (bucket, key) = (ctx.bucket.clone(), ctx.key.clone());
    let part = blocking(move || {
        use std::io::{Seek, SeekFrom};
        let mut w = store.new_part(&bucket, &key, &upload_id, part_number)?;
        reader.seek(SeekFrom::Start(start))?;
        copy_stream(&mut reader, len, |chunk| w.write(chunk))?;
        w.commit(None)
    })
    .await?;
    let mut w = XmlWriter::new();
    w.root("CopyPartResult");
    w.elem("ETag", &quoted(&part.etag));
    w.elem("LastModified", &xml_date(part.last_modified));
    w.close("CopyPartResult");
    Ok(xml_ok(w.finish()))
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
    for p in root.children_named("Part") {
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
    let condition = super::object::write_condition(ctx)?;
    super::object::check_condition_early(ctx, condition.as_ref()).await?;
    let store = ctx.gw.store.clone();
    let (bucket, key) = (ctx.bucket.clone(), ctx.key.clone());
    let conditional = condition.is_some();
    let info = blocking(move || {
        store.complete_multipart_if(&bucket, &key, &upload_id, &parts, condition.as_ref())
    })
    .await
    .map_err(|e| super::object::conflict_if_condition_failed(e, conditional))?;
    let mut w = XmlWriter::new();
    w.root("CompleteMultipartUploadResult");
    w.elem(
        "Location",
        &format!("/{}/{}", ctx.bucket, url_encode(&ctx.key)),
    );
    w.elem("Bucket", &ctx.bucket);
    w.elem("Key", &ctx.key);
    w.elem("ETag", &quoted(&info.etag));
    w.close("CompleteMultipartUploadResult");
    Ok(xml_ok(w.finish()))
}

pub(super) async fn abort(ctx: &Ctx<'_>, upload_id: String) -> Result<Response<Body>, S3Error> {
    let store = ctx.gw.store.clone();
    let (bucket, key) = (ctx.bucket.clone(), ctx.key.clone());
    blocking(move || store.abort_multipart(&bucket, &key, &upload_id)).await?;
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
    let store = ctx.gw.store.clone();
    let (bucket, key, id) = (ctx.bucket.clone(), ctx.key.clone(), upload_id.clone());
    let (_upload, parts) = blocking(move || store.list_parts(&bucket, &key, &id)).await?;
    let after: Vec<_> = parts
        .into_iter()
        .filter(|p| p.part_number > marker)
        .collect();
    let page: Vec<_> = after.iter().take(max as usize).collect();
    let truncated = after.len() > page.len();
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
    for p in &page {
        w.open("Part");
        w.elem("PartNumber", &p.part_number.to_string());
        w.elem("LastModified", &xml_date(p.last_modified));
        w.elem("ETag", &quoted(&p.etag));
        w.elem("Size", &p.size.to_string());
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
    let store = ctx.gw.store.clone();
    let (bucket, p) = (ctx.bucket.clone(), prefix.clone());
    let uploads = blocking(move || store.list_uploads(&bucket, &p)).await?;

    // Entries after the markers: uploads of keys after key-marker, or of key-marker itself with an
    // upload id after upload-id-marker (S3 semantics).
    enum Entry<'a> {
        Upload(&'a keyhole_store::UploadInfo),
        Prefix(String),
    }
    let mut entries: Vec<Entry<'_>> = Vec::new();
    let mut truncated = false;
    for u in &uploads {
        let after_marker = key_marker.is_empty()
            || u.key.as_str() > key_marker.as_str()
            || (u.key == key_marker
                && !id_marker.is_empty()
                && u.upload_id.as_str() > id_marker.as_str());
        if !after_marker {
            continue;
        }
        let rolled = delimiter.as_deref().and_then(|d| {
            let rest = u.key.strip_prefix(prefix.as_str())?;
            rest.find(d).map(|i| {
                let end = prefix.len() + i + d.len();
                u.key.get(..end).unwrap_or(&u.key).to_owned()
            })
        });
        if let Some(cp) = rolled {
            if matches!(entries.last(), Some(Entry::Prefix(last)) if *last == cp) {
                continue;
            }
            if !key_marker.is_empty() && cp.as_str() <= key_marker.as_str() {
                continue;
            }
            if entries.len() == max {
                truncated = true;
                break;
            }
            entries.push(Entry::Prefix(cp));
        } else {
            if entries.len() == max {
                truncated = true;
                break;
            }
            entries.push(Entry::Upload(u));
        }
    }
    let mut w = XmlWriter::new();
    w.root("ListMultipartUploadsResult");
    w.elem("Bucket", &ctx.bucket);
    w.elem("KeyMarker", &enc(&key_marker));
    w.elem("UploadIdMarker", &id_marker);
    if truncated {
        match entries.last() {
            Some(Entry::Upload(u)) => {
                w.elem("NextKeyMarker", &enc(&u.key));
                w.elem("NextUploadIdMarker", &u.upload_id);
            }
            Some(Entry::Prefix(p)) => {
                w.elem("NextKeyMarker", &enc(p));
                w.elem("NextUploadIdMarker", "");
            }
            None => {}
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
    w.elem("IsTruncated", if truncated { "true" } else { "false" });
    for e in &entries {
        match e {
            Entry::Upload(u) => {
                w.open("Upload");
                w.elem("Key", &enc(&u.key));
                w.elem("UploadId", &u.upload_id);
                owner(&mut w, ctx, "Initiator");
                owner(&mut w, ctx, "Owner");
                w.elem("StorageClass", "STANDARD");
                w.elem("Initiated", &xml_date(u.initiated));
                w.close("Upload");
            }
            Entry::Prefix(p) => {
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
    use super::*;

    #[test]
    fn copy_source_ranges() {
        assert_eq!(copy_range(None, 10).unwrap(), (0, 10));
        assert_eq!(copy_range(Some("bytes=2-5"), 10).unwrap(), (2, 4));
        assert_eq!(
            copy_range(Some("bytes=2-10"), 10).unwrap_err().code(),
            "InvalidRange"
        );
        assert_eq!(
            copy_range(Some("bytes=5-2"), 10).unwrap_err().code(),
            "InvalidRange"
        );
        assert_eq!(
            copy_range(Some("bytes=-2"), 10).unwrap_err().code(),
            "InvalidArgument"
        );
        assert_eq!(
            copy_range(Some("2-5"), 10).unwrap_err().code(),
            "InvalidArgument"
        );
    }
}
