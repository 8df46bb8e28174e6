//! End-to-end tests with keyhole's own Rust SigV4 client against the real `keyhole` binary:
//! header-signed, aws-chunked and presigned requests, tampering, and graceful shutdown.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test harness: a failed set-up step should fail the test loudly"
)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use keyhole_server::client::{encode_key, read_body, Client};
use keyhole_sigv4::{ChunkSigner, Credentials, SecretKey, SigningParams};
use md5::Digest;

struct Server {
    child: Child,
    endpoint: String,
    creds: Credentials,
    data: std::path::PathBuf,
}

impl Server {
    fn start(data: &std::path::Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keyhole"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn keyhole");
        let stdout = child.stdout.take().unwrap();
        let mut endpoint = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(e) = line.trim().strip_prefix("endpoint:") {
                endpoint = Some(e.trim().to_owned());
            }
            if line.starts_with("try:") {
                break;
            }
        }
        let text = std::fs::read_to_string(data.join("root-credentials")).unwrap();
        let (id, secret) = keyhole_server::account::parse_shared_credentials(&text).unwrap();
        Server {
            child,
            endpoint: endpoint.expect("endpoint line"),
            creds: Credentials {
                access_key_id: id,
                secret_key: SecretKey::new(secret),
                session_token: None,
            },
            data: data.to_owned(),
        }
    }

    fn client(&self) -> Client {
        Client::new(&self.endpoint, self.creds.clone(), "us-east-1").unwrap()
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn body_text(resp: http::Response<hyper::body::Incoming>) -> String {
    String::from_utf8_lossy(&read_body(resp).await.unwrap()).into_owned()
}

#[test]
fn signed_chunked_and_presigned_requests_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let c = server.client();
    runtime().block_on(async {
        let r = c
            .send(Method::PUT, "/rust-e2e", HeaderMap::new(), Bytes::new())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);

        // Header-signed PUT (body signed by SHA-256) and GET of an awkward key.
        let key = "dir/ünï code/../x y+z.bin";
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let path = format!("/rust-e2e/{}", encode_key(key));
        let r = c
            .send(
                Method::PUT,
                &path,
                HeaderMap::new(),
                Bytes::from(data.clone()),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let etag = r.headers()["etag"].to_str().unwrap().to_owned();
        assert_eq!(
            etag,
            format!("\"{}\"", hex::encode(md5::Md5::digest(&data)))
        );
        let r = c
            .send(Method::GET, &path, HeaderMap::new(), Bytes::new())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(read_body(r).await.unwrap(), data);

        // aws-chunked upload, 64 KiB chunks with chained signatures.
        let path2 = "/rust-e2e/chunked.bin";
        let r = c
            .send_chunked(Method::PUT, path2, HeaderMap::new(), &data, 64 * 1024)
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", body_text(r).await);
        let r = c
            .send(Method::GET, path2, HeaderMap::new(), Bytes::new())
            .await
            .unwrap();
        assert_eq!(read_body(r).await.unwrap(), data);

        // Presigned GET works without any header; a tampered one does not.
        let url = c.presign(&Method::GET, path2, 300).unwrap();
        let r = c
            .dispatch(
                Method::GET,
                url.clone(),
                HeaderMap::new(),
                keyhole_server::body::empty(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(read_body(r).await.unwrap().len(), data.len());
        let forged: http::Uri = url
            .to_string()
            .replace("chunked.bin", "chunked.bim")
            .parse()
            .unwrap();
        let r = c
            .dispatch(
                Method::GET,
                forged,
                HeaderMap::new(),
                keyhole_server::body::empty(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(body_text(r)
            .await
            .contains("<Code>SignatureDoesNotMatch</Code>"));

        // Listing shows both keys exactly.
        let r = c
            .send(
                Method::GET,
                "/rust-e2e?list-type=2&encoding-type=url",
                HeaderMap::new(),
                Bytes::new(),
            )
            .await
            .unwrap();
        let xml = body_text(r).await;
        assert!(xml.contains("<Key>chunked.bin</Key>"), "{xml}");
        assert!(
            xml.contains("<Key>dir/%C3%BCn%C3%AF+code/../x+y%2Bz.bin</Key>"),
            "{xml}"
        );
    });
}

#[test]
fn tampered_chunk_and_bad_signature_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let c = server.client();
    runtime().block_on(async {
        c.send(Method::PUT, "/tamper", HeaderMap::new(), Bytes::new())
            .await
            .unwrap();
        // Build a valid aws-chunked upload by hand, then flip one payload byte.
        let uri: http::Uri = format!("{}/tamper/obj", server.endpoint).parse().unwrap();
        let data = vec![b'a'; 100_000];
        let params = SigningParams {
            credentials: &server.creds,
            region: "us-east-1",
            service: "s3",
            time: chrono_now(),
        };
        let mut headers = HeaderMap::new();
        headers.insert("content-encoding", HeaderValue::from_static("aws-chunked"));
        headers.insert(
            "x-amz-decoded-content-length",
            HeaderValue::from(data.len() as u64),
        );
        keyhole_sigv4::sign_headers(
            &Method::PUT,
            &uri,
            &mut headers,
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            &params,
        )
        .unwrap();
        let auth = headers["authorization"].to_str().unwrap().to_owned();
        let seed = auth.rsplit_once("Signature=").unwrap().1.to_owned();
        let mut signer = ChunkSigner::new(&seed, &params);
        let mut body = signer.chunk(&data[..65536]);
        body.extend(signer.chunk(&data[65536..]));
        body.extend(signer.final_chunk());
        let at = body.len() / 2;
        body[at] ^= 1;
        headers.insert(
            http::header::CONTENT_LENGTH,
            HeaderValue::from(body.len() as u64),
        );
        let r = c
            .dispatch(
                Method::PUT,
                uri.clone(),
                headers,
                keyhole_server::body::full(body),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(body_text(r).await.contains("SignatureDoesNotMatch"));

        // A header signature with one character changed.
        let mut headers = HeaderMap::new();
        keyhole_sigv4::sign_headers(
            &Method::PUT,
            &uri,
            &mut headers,
            &keyhole_sigv4::sha256_hex(b"x"),
            &params,
        )
        .unwrap();
        let mut auth = headers["authorization"].to_str().unwrap().to_owned();
        let last = auth.pop().unwrap();
        auth.push(if last == '0' { '1' } else { '0' });
        headers.insert("authorization", HeaderValue::from_str(&auth).unwrap());
        let r = c
            .dispatch(
                Method::PUT,
                uri.clone(),
                headers,
                keyhole_server::body::full("x"),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(body_text(r).await.contains("SignatureDoesNotMatch"));

        // Nothing was stored.
        let r = c
            .send(Method::HEAD, "/tamper/obj", HeaderMap::new(), Bytes::new())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    });
}

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

/// SIGTERM during an upload: the upload still completes, the server then exits 0, and a restart
/// serves the object with the same credentials.
#[test]
fn sigterm_lets_in_flight_uploads_finish() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut server = Server::start(&data_dir);
    let c = server.client();
    let rt = runtime();
    rt.block_on(async {
        c.send(Method::PUT, "/graceful", HeaderMap::new(), Bytes::new())
            .await
            .unwrap();
    });
    let (tx, body) = keyhole_server::body::channel(2);
    let total: u64 = 8 * 256 * 1024;
    let upload = {
        let c = c.clone();
        rt.spawn(async move {
            c.send_stream(
                Method::PUT,
                "/graceful/slow.bin",
                HeaderMap::new(),
                body,
                total,
            )
            .await
        })
    };
    rt.block_on(async {
        tx.send(Ok(Bytes::from(vec![7u8; 256 * 1024])))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    });
    let pid = server.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    rt.block_on(async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for _ in 1..8 {
            tx.send(Ok(Bytes::from(vec![7u8; 256 * 1024])))
                .await
                .unwrap();
        }
        drop(tx);
        let r = upload.await.unwrap().unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    });
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}");

    let mut again = Server::start(&server.data);
    assert_eq!(again.creds.access_key_id, server.creds.access_key_id);
    let c = again.client();
    rt.block_on(async {
        let r = c
            .send(
                Method::GET,
                "/graceful/slow.bin",
                HeaderMap::new(),
                Bytes::new(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(read_body(r).await.unwrap().len() as u64, total);
    });
    assert!(again.terminate().success());
}
