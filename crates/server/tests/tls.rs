//! HTTPS end to end, in process: a gateway configured with a fresh self-signed certificate,
//! keyhole's own client trusting it through a CA bundle, `aws:SecureTransport` seen by a bucket
//! policy, `tls: true` in the audit trail, and a server that keeps serving after plain-HTTP and
//! broken handshakes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test harness: a failed set-up step should fail the test loudly"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method};
use keyhole_server::client::{read_body, Client};
use keyhole_server::{Config, ConfigOverrides, Gateway};
use keyhole_sigv4::{Credentials, SecretKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// AWS's documented pattern for refusing plain HTTP: Deny everything when `aws:SecureTransport`
/// is `false` ("Enforcing encryption in transit",
/// https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingEncryptionInTransit.html and
/// https://docs.aws.amazon.com/AmazonS3/latest/userguide/security-best-practices.html).
fn deny_insecure_transport(bucket: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"AllowSSLRequestsOnly","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::{bucket}","arn:aws:s3:::{bucket}/*"],"Condition":{{"Bool":{{"aws:SecureTransport":"false"}}}}}}]}}"#
    )
}

fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

struct Running {
    gw: Arc<Gateway>,
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn start(data: &Path, tls: Option<(&Path, &Path)>) -> Running {
        let config = Config::load(
            None,
            ConfigOverrides {
                data_dir: Some(data.to_owned()),
                tls_cert: tls.map(|t| t.0.to_owned()),
                tls_key: tls.map(|t| t.1.to_owned()),
                ..Default::default()
            },
        )
        .unwrap();
        let gw = Arc::new(
            keyhole_server::state::db::blocking(move || keyhole_server::open(config))
                .await
                .unwrap(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(keyhole_server::listener::serve(
            gw.clone(),
            listener,
            async {
                let _ = stopped.await;
            },
        ));
        Running {
            gw,
            addr,
            stop,
            server,
        }
    }

    fn root(&self, endpoint: &str, ca_bundle: Option<&Path>) -> Client {
        Client::with_ca_bundle(
            endpoint,
            Credentials {
                access_key_id: self.gw.account.record.root_access_key_id.clone(),
                secret_key: SecretKey::new(self.gw.account.root_secret.expose().to_owned()),
                session_token: None,
            },
            "us-east-1",
            ca_bundle,
        )
        .unwrap()
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.server.await.unwrap();
    }
}

/// Every event of the trail under `data`, once `want` of them are on disk.
async fn events(data: &Path, want: usize) -> Vec<serde_json::Value> {
    let dir = data.join("audit");
    let read = || {
        let mut out = Vec::new();
        for (_, p) in keyhole_server::audit::sink::trail_files(&dir).unwrap() {
            for line in std::fs::read_to_string(p).unwrap().lines() {
                out.push(serde_json::from_str::<serde_json::Value>(line).unwrap());
            }
        }
        out
    };
    for _ in 0..200 {
        let got = read();
        if got.len() >= want {
            return got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    read()
}

/// Sends raw bytes on a fresh TCP connection and returns whatever comes back before it closes.
async fn raw_exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(15),
        tcp.read_to_end(&mut got),
    )
    .await
    .expect("the server closes a failed connection");
    // A reset after a failed handshake is a clean failure too.
    drop(read);
    got
}

#[test]
fn https_requests_are_secure_transport_and_audited_as_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tls_data = dir.path().join("tls-data");
        let srv = Running::start(&tls_data, Some((&cert, &key))).await;
        let endpoint = format!("https://{}", srv.addr);
        let root = srv.root(&endpoint, Some(&cert));
        let h = HeaderMap::new;

        // Without the bundle the self-signed certificate is refused by the client.
        let untrusting = srv.root(&endpoint, None);
        let e = untrusting
            .send(Method::GET, "/", h(), Bytes::new())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("certificate"), "{e}");

        let r = root
            .send(Method::PUT, "/secure", h(), Bytes::new())
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let policy = deny_insecure_transport("secure");
        let r = root
            .send(
                Method::PUT,
                "/secure?policy",
                h(),
                Bytes::from(policy.clone()),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        let r = root
            .send(
                Method::PUT,
                "/secure/k",
                h(),
                Bytes::from_static(b"over tls"),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{:?}", read_body(r).await);
        let r = root
            .send(Method::GET, "/secure/k", h(), Bytes::new())
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(read_body(r).await.unwrap(), Bytes::from_static(b"over tls"));
        // A presigned URL works over https too.
        let url = root.presign(&Method::GET, "/secure/k", 60).unwrap();
        assert_eq!(url.scheme_str(), Some("https"));
        let r = root
            .dispatch(Method::GET, url, h(), keyhole_server::body::empty())
            .await
            .unwrap();
        assert_eq!(r.status(), 200);

        // Plain HTTP on the HTTPS port: a 400 that says to use https://, and the server goes on.
        let got = raw_exchange(
            srv.addr,
            b"GET /secure/k HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n",
        )
        .await;
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
        assert!(
            text.contains("https://") && text.contains("<Code>BadRequest</Code>"),
            "{text}"
        );
        // A broken TLS record: the connection is dropped, the server goes on.
        let got = raw_exchange(srv.addr, &[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]).await;
        assert!(!String::from_utf8_lossy(&got).contains("HTTP/1.1"));
        let r = root
            .send(Method::GET, "/secure/k", h(), Bytes::new())
            .await
            .unwrap();
        assert_eq!(r.status(), 200);

        // CreateBucket, PutBucketPolicy, PutObject: two events each; GetObject x3; the refused
        // plain-HTTP request and the broken handshake never reached the pipeline.
        let trail = events(&tls_data, 9).await;
        assert_eq!(trail.len(), 9, "{trail:#?}");
        for e in &trail {
            assert_eq!(e["tls"], true, "{e}");
            assert_eq!(e["decision"], "Allow", "{e}");
        }

        // The same policy on a plain-HTTP gateway: the Deny applies, even to root.
        let plain_data = dir.path().join("plain-data");
        let plain = Running::start(&plain_data, None).await;
        let plain_endpoint = format!("http://{}", plain.addr);
        let plain_root = plain.root(&plain_endpoint, None);
        let r = plain_root
            .send(Method::PUT, "/secure", h(), Bytes::new())
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = plain_root
            .send(Method::PUT, "/secure?policy", h(), Bytes::from(policy))
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        let r = plain_root
            .send(
                Method::PUT,
                "/secure/k",
                h(),
                Bytes::from_static(b"in the clear"),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        let body = String::from_utf8_lossy(&read_body(r).await.unwrap()).into_owned();
        assert!(body.contains("explicit deny"), "{body}");
        let trail = events(&plain_data, 5).await;
        let put = trail
            .iter()
            .find(|e| e["eventName"] == "PutObject")
            .expect("the denied PutObject is audited");
        assert_eq!(put["tls"], false, "{put}");
        assert_eq!(put["decision"], "Deny", "{put}");

        plain.stop().await;
        srv.stop().await;
    });
}

#[test]
fn a_bad_certificate_path_stops_the_gateway_before_it_creates_anything() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = Config::load(
        None,
        ConfigOverrides {
            data_dir: Some(data.clone()),
            tls_cert: Some(dir.path().join("missing-cert.pem")),
            tls_key: Some(dir.path().join("missing-key.pem")),
            ..Default::default()
        },
    )
    .unwrap();
    let e = keyhole_server::open(config).unwrap_err().to_string();
    assert!(
        e.contains("tls_cert") && e.contains("missing-cert.pem"),
        "{e}"
    );
    assert!(
        !data.exists(),
        "nothing is created when TLS cannot be set up"
    );
}
