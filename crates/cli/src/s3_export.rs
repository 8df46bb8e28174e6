//! `keyhole audit export-digests s3://BUCKET[/PREFIX]`: the signed digest logs, copied to a bucket
//! of another S3 store that an external witness holds (issue 20).
//!
//! Each log is one object, `PREFIX/digests-N.log`. An object is written only when it is new
//! (`If-None-Match: *`) or when the local log extends it byte for byte (`If-Match` on the ETag of
//! the copy read), so a rolled-back or rewritten trail can never replace what the witness holds,
//! and two exports racing cannot lose a digest. Conditional writes are S3's
//! (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html).

use std::path::PathBuf;

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use keyhole_server::audit::export::{against, Against, Exported};
use keyhole_server::client::{encode_key, read_body, Client};
use miette::miette;

use crate::aws_chain;

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Copies `logs` (name, local path, complete lines) under `target` (`BUCKET[/PREFIX]`).
pub fn export(target: &str, logs: Vec<(String, PathBuf, Vec<u8>)>) -> miette::Result<Exported> {
    let (bucket, prefix) = target.split_once('/').unwrap_or((target, ""));
    keyhole_store::validate_bucket_name(bucket)
        .map_err(|e| miette!("s3://{target}: `{bucket}` is not a bucket name: {e}"))?;
    let prefix = prefix.trim_matches('/');
    let resolved = aws_chain::resolve(None, &env_var).map_err(|e| miette!("{e}"))?;
    let endpoint = resolved.endpoint_url.clone().ok_or_else(|| {
        miette!("s3://{target}: no S3 endpoint: set AWS_ENDPOINT_URL (or the profile's endpoint_url) to the witness store, e.g. https://s3.eu-west-1.amazonaws.com")
    })?;
    let region = resolved
        .region
        .clone()
        .unwrap_or_else(|| "us-east-1".to_owned());
    let credentials =
        crate::exchange::credentials(&resolved, &endpoint, &region, resolved.ca_bundle.as_deref())
            .map_err(|e| miette!("{e}"))?;
    let client = Client::with_ca_bundle(
        &endpoint,
        credentials,
        &region,
        resolved.ca_bundle.as_deref(),
    )
    .map_err(|e| miette!("{e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| miette!("{e}"))?;
    rt.block_on(async move {
        let mut out = Exported::default();
        for (name, local_path, local) in logs {
            let key = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let path = format!("/{bucket}/{}", encode_key(&key));
            let shown = format!("s3://{bucket}/{key}");
            let resp = client
                .send(Method::GET, &path, HeaderMap::new(), Vec::new().into())
                .await
                .map_err(|e| miette!("{shown}: {e}"))?;
            let status = resp.status();
            let etag = resp.headers().get(http::header::ETAG).cloned();
            let old = read_body(resp).await.map_err(|e| miette!("{shown}: {e}"))?;
            let lines = |b: &[u8]| b.iter().filter(|c| **c == b'\n').count();
            let mut headers = HeaderMap::new();
            let added = match status {
                StatusCode::NOT_FOUND => {
                    headers.insert(http::header::IF_NONE_MATCH, HeaderValue::from_static("*"));
                    out.new_files += 1;
                    lines(&local)
                }
                s if s.is_success() => match against(&old, &local) {
                    Against::Same => {
                        out.unchanged += 1;
                        continue;
                    }
                    Against::Extends(rest) => {
                        let etag = etag.ok_or_else(|| miette!("{shown}: the store gave no ETag"))?;
                        headers.insert(http::header::IF_MATCH, etag);
                        out.extended += 1;
                        lines(rest)
                    }
                    Against::Diverged(why) => {
                        return Err(miette!(
                            "refusing to export: {} and its copy {shown} diverge ({why}); the local trail was rolled back or rewritten since the last export: verify it with `keyhole audit verify --digests` against a download of the copy",
                            local_path.display()
                        ));
                    }
                },
                s => return Err(miette!("{shown}: GET answered {s}")),
            };
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain"),
            );
            let resp = client
                .send(Method::PUT, &path, headers, local.into())
                .await
                .map_err(|e| miette!("{shown}: {e}"))?;
            let status = resp.status();
            let body = read_body(resp).await.unwrap_or_default();
            if !status.is_success() {
                return Err(miette!(
                    "{shown}: PUT answered {status}: {}",
                    String::from_utf8_lossy(&body).chars().take(300).collect::<String>()
                ));
            }
            out.digests += added;
        }
        Ok(out)
    })
}
