//! Verifying a typical header-signed S3 GET (parse + verify), the per-request cost of
//! authentication.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "benchmark code"
)]

use chrono::{TimeZone, Utc};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::{HeaderMap, Method, Uri};
use keyhole_sigv4::{
    parse, sign_headers, verify, Credentials, SecretKey, SigningParams, EMPTY_SHA256,
};

fn typical_get(c: &mut Criterion) {
    let credentials = Credentials {
        access_key_id: "AKIAIOSFODNN7EXAMPLE".to_owned(),
        secret_key: SecretKey::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        session_token: None,
    };
    let time = Utc.with_ymd_and_hms(2026, 7, 16, 1, 2, 3).unwrap();
    let method = Method::GET;
    let uri: Uri = "http://127.0.0.1:9000/acmeco-training-datasets/wiki/shard-00042.parquet"
        .parse()
        .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("user-agent", "aws-cli/2.17.0 Python/3.11".parse().unwrap());
    headers.insert("range", "bytes=0-1048575".parse().unwrap());
    headers.insert("accept-encoding", "identity".parse().unwrap());
    let params = SigningParams {
        credentials: &credentials,
        region: "us-east-1",
        service: "s3",
        time,
    };
    sign_headers(&method, &uri, &mut headers, EMPTY_SHA256, &params).unwrap();
    let secret = credentials.secret_key.clone();
    c.bench_function("parse+verify signed GET", |b| {
        b.iter(|| {
            let parsed = parse(&method, &uri, &headers).unwrap().unwrap();
            let verified =
                verify(black_box(parsed), &method, &uri, &headers, &secret, time).unwrap();
            black_box(verified);
        });
    });
}

criterion_group!(benches, typical_get);
criterion_main!(benches);
