//! Issue 5: no secret ever reaches the audit trail. Runs the gateway in-process, sends signed,
//! aws-chunked, presigned and hostile requests (wrong secret, session tokens, forged
//! signatures), then scans every stored event for the secrets and for anything shaped like a
//! signature.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test harness: a failed set-up step should fail the test loudly"
)]

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use keyhole_server::client::{read_body, Client};
use keyhole_server::{Config, ConfigOverrides};
use keyhole_sigv4::{Credentials, SecretKey};

const TOKEN: &str = "FQoGZXIvYXdzEJr-session-token-under-test-0123456789";

/// Every 64-hex-digit run in `text`.
fn hex64_runs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut run = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_hexdigit() {
            run.push(c);
        } else {
            if run.len() >= 64 {
                out.push(run.clone());
            }
            run.clear();
        }
    }
    out
}

#[test]
fn hostile_requests_leave_no_secret_in_the_trail() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(
        None,
        ConfigOverrides {
            data_dir: Some(dir.path().join("data")),
            ..Default::default()
        },
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let gw = Arc::new(
            keyhole_server::state::db::blocking(move || keyhole_server::open(config))
                .await
                .unwrap(),
        );
        let secret = gw.account.root_secret.expose().to_owned();
        let ak = gw.account.record.root_access_key_id.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(keyhole_server::listener::serve(gw.clone(), listener, async {
            let _ = stopped.await;
        }));
        let client = |secret: &str, token: Option<&str>| {
            Client::new(
                &endpoint,
                Credentials {
                    access_key_id: ak.clone(),
                    secret_key: SecretKey::new(secret.to_owned()),
                    session_token: token.map(str::to_owned),
                },
                "us-east-1",
            )
            .unwrap()
        };
        let root = client(&secret, None);
        let h = HeaderMap::new;
        let r = root.send(Method::PUT, "/sec", h(), Bytes::new()).await.unwrap();
        assert_eq!(r.status(), 200);
        let r = root
            .send(Method::PUT, "/sec/k", h(), Bytes::from_static(b"value"))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = root
            .send_chunked(Method::PUT, "/sec/chunked", h(), &[7u8; 100_000], 16 * 1024)
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let url = root.presign(&Method::GET, "/sec/k", 300).unwrap();
        let r = root
            .dispatch(Method::GET, url.clone(), h(), keyhole_server::body::empty())
            .await
            .unwrap();
        assert_eq!(read_body(r).await.unwrap(), Bytes::from_static(b"value"));
        let forged: http::Uri = format!("{}{}", url.to_string().trim_end_matches(|c: char| c.is_ascii_hexdigit()), "ab".repeat(32))
            .parse()
            .unwrap();
        let r = root
            .dispatch(Method::GET, forged, h(), keyhole_server::body::empty())
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        let with_token = client(&secret, Some(TOKEN));
        let r = with_token.send(Method::GET, "/sec/k", h(), Bytes::new()).await.unwrap();
        assert_eq!(r.status(), 400);
        let presigned_token = with_token.presign(&Method::GET, "/sec/k", 60).unwrap();
        let r = root
            .dispatch(Method::GET, presigned_token, h(), keyhole_server::body::empty())
            .await
            .unwrap();
        assert!(r.status().is_client_error());
        let wrong = client("wrong-secret-wrong-secret-wrong-secret-00", None);
        let r = wrong.send(Method::PUT, "/sec/k2", h(), Bytes::new()).await.unwrap();
        assert_eq!(r.status(), 403);
        let mut garbage = h();
        garbage.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!(
                "AWS4-HMAC-SHA256 Credential={ak}/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature={}",
                "cd".repeat(32)
            ))
            .unwrap(),
        );
        garbage.insert("x-amz-security-token", HeaderValue::from_static(TOKEN));
        let r = root
            .dispatch(
                Method::GET,
                format!("{endpoint}/sec/k").parse().unwrap(),
                garbage,
                keyhole_server::body::empty(),
            )
            .await
            .unwrap();
        assert!(r.status().is_client_error());

        // Wait until every request's event is on disk, then stop.
        let audit_dir = dir.path().join("data").join("audit");
        let read_all = || {
            let mut text = String::new();
            for (_, p) in keyhole_server::audit::sink::trail_files(&audit_dir).unwrap() {
                text.push_str(&std::fs::read_to_string(p).unwrap());
            }
            text
        };
        for _ in 0..100 {
            if read_all().lines().count() >= 12 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let _ = stop.send(());
        server.await.unwrap();
        let text = read_all();
        // 3 mutating requests allowed (two records each) + 6 others.
        assert_eq!(text.lines().count(), 12, "{text}");
        for (n, line) in text.lines().enumerate() {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            let obj = v.as_object_mut().unwrap();
            obj.remove("hash");
            obj.remove("prevHash");
            let rest = serde_json::to_string(&v).unwrap();
            assert!(!rest.contains(&secret), "line {n} holds the secret key");
            assert!(!rest.contains(TOKEN), "line {n} holds the session token");
            for marker in ["Signature=", "X-Amz-Signature", "Credential=", "Security-Token", "AWS4-HMAC-SHA256"] {
                assert!(!rest.contains(marker), "line {n} holds `{marker}`: {rest}");
            }
            assert_eq!(hex64_runs(&rest), Vec::<String>::new(), "line {n}: {rest}");
        }
    });
}
