//! keyhole's load tool: drives a running gateway with signed PUT or GET requests of a fixed size
//! and reports throughput and latency. Bodies are generated and discarded on the fly, so a 5 GiB
//! object costs the tool no memory. `--endpoint` may be given several times (nodes of one shared
//! state in front of one upstream): workers are spread over them round-robin, and the object a
//! GET run reads is written once, through the first.
//!
//! ```sh
//! cargo run --release -p keyhole --example load -- \
//!     --endpoint http://127.0.0.1:9000 --credentials keyhole-data/root-credentials \
//!     --op get --size 4KiB --concurrency 8 --seconds 10
//! ```

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a benchmark tool: failing loudly on a broken set-up is the right behaviour"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http::{HeaderMap, Method, StatusCode};
use keyhole_server::client::{read_body, Client};
use keyhole_sigv4::{Credentials, SecretKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Op {
    Put,
    Get,
}

/// Load generator for a keyhole gateway.
#[derive(Debug, Parser)]
struct Args {
    /// Gateway endpoint; repeat it to spread the workers over several nodes.
    #[arg(long, default_value = "http://127.0.0.1:9000")]
    endpoint: Vec<String>,
    /// AWS shared-credentials file whose [default] profile signs the requests.
    #[arg(long, default_value = "keyhole-data/root-credentials")]
    credentials: PathBuf,
    /// Bucket to use (created if missing).
    #[arg(long, default_value = "keyhole-load")]
    bucket: String,
    /// PUT or GET.
    #[arg(long, value_enum)]
    op: Op,
    /// Object size, e.g. 4KiB, 1GiB.
    #[arg(long, value_parser = parse_size)]
    size: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Stop after this many seconds ...
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// ... or after this many requests, whichever comes first.
    #[arg(long)]
    requests: Option<u64>,
    /// Sign bodies with their SHA-256 (small objects) instead of UNSIGNED-PAYLOAD.
    #[arg(long)]
    signed_payload: bool,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("bad size `{s}`"))?;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        _ => return Err(format!("bad unit in `{s}`: use B, KiB, MiB or GiB")),
    };
    Ok(n * mult)
}

/// A body of `len` pseudo-random bytes produced 1 MiB at a time.
fn generated_body(len: u64) -> keyhole_server::body::Body {
    let (tx, body) = keyhole_server::body::channel(4);
    tokio::spawn(async move {
        let block: Bytes = (0..(1u32 << 20))
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let mut left = len;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            if tx.send(Ok(block.slice(..n))).await.is_err() {
                return;
            }
            left -= n as u64;
        }
    });
    body
}

async fn put(c: &Client, path: &str, size: u64, signed: bool) -> StatusCode {
    let r = if signed {
        let data = Bytes::from(vec![0x5a; size as usize]);
        c.send(Method::PUT, path, HeaderMap::new(), data)
            .await
            .unwrap()
    } else {
        c.send_stream(
            Method::PUT,
            path,
            HeaderMap::new(),
            generated_body(size),
            size,
        )
        .await
        .unwrap()
    };
    let status = r.status();
    read_body(r).await.unwrap();
    status
}

async fn get(c: &Client, path: &str) -> (StatusCode, u64) {
    use http_body_util::BodyExt;
    let r = c
        .send(Method::GET, path, HeaderMap::new(), Bytes::new())
        .await
        .unwrap();
    let status = r.status();
    let mut body = r.into_body();
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            n += data.len() as u64;
        }
    }
    (status, n)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.credentials).expect("read credentials file");
    let (id, secret) =
        keyhole_server::account::parse_shared_credentials(&text).expect("[default] profile");
    let creds = Credentials {
        access_key_id: id,
        secret_key: SecretKey::new(secret),
        session_token: None,
    };
    let ca_bundle = std::env::var_os("AWS_CA_BUNDLE").map(std::path::PathBuf::from);
    let clients: Vec<Client> = args
        .endpoint
        .iter()
        .map(|e| {
            Client::with_ca_bundle(e, creds.clone(), "us-east-1", ca_bundle.as_deref())
                .expect("AWS_CA_BUNDLE names a readable PEM file")
        })
        .collect();
    let client = clients[0].clone();
    let bucket_path = format!("/{}", args.bucket);
    let r = client
        .send(Method::PUT, &bucket_path, HeaderMap::new(), Bytes::new())
        .await
        .unwrap();
    read_body(r).await.unwrap();

    let fixed = format!("/{}/fixed-{}", args.bucket, args.size);
    if args.op == Op::Get {
        let s = put(&client, &fixed, args.size, args.signed_payload).await;
        assert_eq!(s, StatusCode::OK, "seeding the GET object failed");
    }
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let budget = Arc::new(std::sync::atomic::AtomicU64::new(
        args.requests.unwrap_or(u64::MAX),
    ));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..args.concurrency.max(1) {
        let (c, budget, fixed, bucket) = (
            clients[worker % clients.len()].clone(),
            budget.clone(),
            fixed.clone(),
            args.bucket.clone(),
        );
        let (op, size, signed) = (args.op, args.size, args.signed_payload);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut bytes = 0u64;
            let mut errors = 0u64;
            let mut i = 0u64;
            while Instant::now() < deadline {
                if budget
                    .fetch_update(
                        std::sync::atomic::Ordering::SeqCst,
                        std::sync::atomic::Ordering::SeqCst,
                        |b| b.checked_sub(1),
                    )
                    .is_err()
                {
                    break;
                }
                let t = Instant::now();
                let ok = match op {
                    Op::Put => {
                        let path = format!("/{bucket}/w{worker}-{i}");
                        put(&c, &path, size, signed).await == StatusCode::OK
                    }
                    Op::Get => {
                        let (s, n) = get(&c, &fixed).await;
                        bytes += n;
                        s == StatusCode::OK && n == size
                    }
                };
                lat.push(t.elapsed());
                if op == Op::Put && ok {
                    bytes += size;
                }
                if !ok {
                    errors += 1;
                }
                i += 1;
            }
            (lat, bytes, errors)
        }));
    }
    let mut lat = Vec::new();
    let (mut bytes, mut errors) = (0u64, 0u64);
    for t in tasks {
        let (l, b, e) = t.await.unwrap();
        lat.extend(l);
        bytes += b;
        errors += e;
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort();
    println!(
        "op={:?} size={} endpoints={} concurrency={} requests={} errors={} seconds={:.2} req/s={:.1} MiB/s={:.1} p50={:.2?} p99={:.2?} max={:.2?}",
        args.op,
        args.size,
        clients.len(),
        args.concurrency,
        lat.len(),
        errors,
        secs,
        lat.len() as f64 / secs,
        bytes as f64 / secs / (1 << 20) as f64,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or_default(),
    );
    if errors > 0 {
        std::process::exit(1);
    }
}
