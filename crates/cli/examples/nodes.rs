//! keyhole's multi-node benchmark (docs/BENCHMARKS.md, "Three nodes"; driven by
//! scripts/bench-nodes.sh). Three subcommands against running nodes of one PostgreSQL state:
//!
//! - `propagation`: trials of one change made through one node (round-robin), each timed until
//!   every other node answers by it: `revoke` (RevokeSession of a fresh role session, until the
//!   others refuse the session) or `policy` (an inline policy put on, or deleted from, a probe
//!   user, until the others allow, or refuse, its ListBuckets). Prints p50/p99/max.
//! - `populate`: users (each with an inline policy), roles (each with a trust and an inline
//!   policy) and jobs created through the gateways' own APIs, many in flight, spread over the
//!   nodes: the state a large deployment really has, written the way it is really written.
//! - `rebuild`: opens the shared state as a node does and times building the whole snapshot
//!   again from the database (what a node does at start and after a hole in the change log).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unreachable,
    reason = "a benchmark tool: failing loudly on a broken set-up is the right behaviour"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use keyhole_server::client::{encode_unreserved, read_body, Client};
use keyhole_sigv4::{Credentials, SecretKey};

/// Multi-node benchmark for keyhole.
#[derive(Debug, Parser)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Change {
    Revoke,
    Policy,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Times one change made on one node until every other node answers by it.
    Propagation {
        /// Node endpoints (at least two).
        #[arg(long, required = true)]
        endpoint: Vec<String>,
        /// Shared-credentials file of the root user ([default] profile).
        #[arg(long)]
        credentials: PathBuf,
        #[arg(long, value_enum, default_value = "revoke")]
        change: Change,
        #[arg(long, default_value_t = 100)]
        trials: usize,
    },
    /// Creates users, roles and jobs through the nodes' APIs.
    Populate {
        #[arg(long, required = true)]
        endpoint: Vec<String>,
        #[arg(long)]
        credentials: PathBuf,
        #[arg(long, default_value_t = 10_000)]
        users: usize,
        #[arg(long, default_value_t = 10_000)]
        roles: usize,
        #[arg(long, default_value_t = 1_000)]
        jobs: usize,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Bucket the jobs read (created if missing).
        #[arg(long, default_value = "bench-jobs")]
        bucket: String,
    },
    /// Times building the whole snapshot from the shared database.
    Rebuild {
        /// The nodes' `--state postgres://...`.
        #[arg(long)]
        state: String,
        /// The nodes' `--master-key-file`.
        #[arg(long)]
        master_key_file: PathBuf,
        /// The account id (the nodes' `account.json`).
        #[arg(long)]
        account_id: String,
        #[arg(long, default_value_t = 5)]
        times: usize,
    },
}

fn root(path: &PathBuf) -> Credentials {
    let text = std::fs::read_to_string(path).expect("read credentials file");
    let (id, secret) =
        keyhole_server::account::parse_shared_credentials(&text).expect("[default] profile");
    Credentials {
        access_key_id: id,
        secret_key: SecretKey::new(secret),
        session_token: None,
    }
}

fn client(endpoint: &str, creds: Credentials) -> Client {
    Client::new(endpoint, creds, "us-east-1").unwrap()
}

/// A Query-protocol call (IAM, STS); returns the status and the body.
async fn query(c: &Client, service: &str, params: &[(&str, &str)]) -> (StatusCode, String) {
    let version = if service == "sts" {
        "2011-06-15"
    } else {
        "2010-05-08"
    };
    let mut form = format!("Version={version}");
    for (k, v) in params {
        form.push_str(&format!("&{k}={}", encode_unreserved(v)));
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
    );
    let r = c
        .clone()
        .with_service(service)
        .send(Method::POST, "/", headers, Bytes::from(form))
        .await
        .unwrap();
    let status = r.status();
    let body = read_body(r).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A keyhole JSON API call (`X-Amz-Target: Keyhole.ACTION`).
async fn keyhole(c: &Client, action: &str, body: &serde_json::Value) -> (StatusCode, String) {
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-amz-target",
        HeaderValue::from_str(&format!("Keyhole.{action}")).unwrap(),
    );
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    let r = c
        .clone()
        .with_service("keyhole")
        .send(Method::POST, "/", headers, Bytes::from(body.to_string()))
        .await
        .unwrap();
    let status = r.status();
    let body = read_body(r).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn xml<'a>(body: &'a str, tag: &str) -> &'a str {
    body.split_once(&format!("<{tag}>"))
        .and_then(|(_, rest)| rest.split_once(&format!("</{tag}>")))
        .map(|(value, _)| value)
        .unwrap_or_else(|| panic!("no <{tag}> in {body}"))
}

/// ListBuckets: the cheapest signed request, answered by authorization alone.
async fn list_status(c: &Client) -> StatusCode {
    let r = c
        .send(Method::GET, "/", HeaderMap::new(), Bytes::new())
        .await
        .unwrap();
    let s = r.status();
    read_body(r).await.unwrap();
    s
}

/// Polls `c` until ListBuckets is allowed (`allowed`) or refused (any error: 403 for a policy,
/// 400 InvalidToken for a revoked session); the time from `since`.
async fn until(c: &Client, allowed: bool, since: Instant) -> Duration {
    loop {
        if list_status(c).await.is_success() == allowed {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "not {} within 30 s",
            if allowed { "allowed" } else { "refused" }
        );
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(what: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "{what}: n={} p50={:.2?} p99={:.2?} max={:.2?}",
        v.len(),
        percentile(&v, 0.5),
        percentile(&v, 0.99),
        v.last().copied().unwrap_or_default()
    );
}

const ASSUME_ANY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}"#;
const ALLOW_LIST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListAllMyBuckets","Resource":"*"}]}"#;

async fn propagation(endpoints: Vec<String>, creds: Credentials, change: Change, trials: usize) {
    assert!(endpoints.len() >= 2, "give at least two --endpoint");
    let admins: Vec<Client> = endpoints.iter().map(|e| client(e, creds.clone())).collect();
    let tag = format!("{:08x}", rand_u32());
    // The principal whose requests show the change: a role (revoke) or a user (policy).
    let (role_arn, probe, assumers) = match change {
        Change::Revoke => {
            // The root user cannot assume roles: a user that may, and a role that trusts it.
            let account = {
                let (_, body) = query(&admins[0], "sts", &[("Action", "GetCallerIdentity")]).await;
                xml(&body, "Account").to_owned()
            };
            let user = format!("bench-assume-{tag}");
            let key = new_user(&admins[0], &user, ASSUME_ANY).await;
            let role = format!("bench-prop-{tag}");
            let trust = format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"sts:AssumeRole","Principal":{{"AWS":"arn:aws:iam::{account}:user/{user}"}}}}]}}"#
            );
            let (s, body) = query(
                &admins[0],
                "iam",
                &[
                    ("Action", "CreateRole"),
                    ("RoleName", &role),
                    ("AssumeRolePolicyDocument", &trust),
                ],
            )
            .await;
            assert!(s.is_success(), "{body}");
            let arn = xml(&body, "Arn").to_owned();
            let (s, body) = query(
                &admins[0],
                "iam",
                &[
                    ("Action", "PutRolePolicy"),
                    ("RoleName", &role),
                    ("PolicyName", "list"),
                    ("PolicyDocument", ALLOW_LIST),
                ],
            )
            .await;
            assert!(s.is_success(), "{body}");
            let assumers: Vec<Client> = endpoints.iter().map(|e| client(e, key.clone())).collect();
            (arn, Some((user, key)), assumers)
        }
        Change::Policy => {
            let user = format!("bench-prop-{tag}");
            let key = new_user(&admins[0], &user, "").await;
            (String::new(), Some((user, key)), Vec::new())
        }
    };
    let mut session_ak = String::new();
    let mut ack = Vec::new();
    let mut every = Vec::new();
    let mut per_node: Vec<Vec<Duration>> = vec![Vec::new(); endpoints.len()];
    for trial in 0..trials {
        let origin = trial % endpoints.len();
        // Each trial's principal, as seen by every node, and the answer that shows the change.
        let (watchers, want): (Vec<Client>, bool) = match change {
            Change::Revoke => {
                let (s, body) = query(
                    &assumers[origin],
                    "sts",
                    &[
                        ("Action", "AssumeRole"),
                        ("RoleArn", &role_arn),
                        ("RoleSessionName", &format!("t{trial}")),
                    ],
                )
                .await;
                assert!(s.is_success(), "{body}");
                session_ak = xml(&body, "AccessKeyId").to_owned();
                let session = Credentials {
                    access_key_id: session_ak.clone(),
                    secret_key: SecretKey::new(xml(&body, "SecretAccessKey").to_owned()),
                    session_token: Some(xml(&body, "SessionToken").to_owned()),
                };
                let w: Vec<Client> = endpoints
                    .iter()
                    .map(|e| client(e, session.clone()))
                    .collect();
                for c in &w {
                    until(c, true, Instant::now()).await;
                }
                (w, false)
            }
            Change::Policy => {
                let (_, key) = probe.as_ref().unwrap();
                let w: Vec<Client> = endpoints.iter().map(|e| client(e, key.clone())).collect();
                // Even trials grant, odd ones take the grant away.
                let want = trial % 2 == 0;
                for c in &w {
                    until(c, !want, Instant::now()).await;
                }
                (w, want)
            }
        };
        let started = Instant::now();
        let others: Vec<_> = (0..endpoints.len())
            .filter(|&i| i != origin)
            .map(|i| {
                let c = watchers[i].clone();
                tokio::spawn(async move { (i, until(&c, want, started).await) })
            })
            .collect();
        let (s, body) = match (change, &probe) {
            (Change::Revoke, _) => {
                keyhole(
                    &admins[origin],
                    "RevokeSession",
                    &serde_json::json!({ "AccessKeyId": session_ak }),
                )
                .await
            }
            (Change::Policy, Some((user, _))) if want => {
                query(
                    &admins[origin],
                    "iam",
                    &[
                        ("Action", "PutUserPolicy"),
                        ("UserName", user),
                        ("PolicyName", "list"),
                        ("PolicyDocument", ALLOW_LIST),
                    ],
                )
                .await
            }
            (Change::Policy, Some((user, _))) => {
                query(
                    &admins[origin],
                    "iam",
                    &[
                        ("Action", "DeleteUserPolicy"),
                        ("UserName", user),
                        ("PolicyName", "list"),
                    ],
                )
                .await
            }
            (Change::Policy, None) => unreachable!("a policy trial has its probe user"),
        };
        assert!(s.is_success(), "{body}");
        ack.push(started.elapsed());
        // The origin itself answers by the change once it acknowledged it.
        assert_eq!(list_status(&watchers[origin]).await.is_success(), want);
        let mut slowest = Duration::ZERO;
        for t in others {
            let (i, took) = t.await.unwrap();
            per_node[i].push(took);
            slowest = slowest.max(took);
        }
        every.push(slowest);
    }
    println!(
        "# change={change:?} nodes={} trials={trials} (times from sending the change)",
        endpoints.len()
    );
    summary("acknowledged by the origin", ack);
    summary("in force on every other node", every);
    for (i, v) in per_node.into_iter().enumerate() {
        summary(&format!("in force on node {}", i + 1), v);
    }
}

/// A user with an access key and, unless `doc` is empty, an inline policy.
async fn new_user(admin: &Client, user: &str, doc: &str) -> Credentials {
    let (s, body) = query(
        admin,
        "iam",
        &[("Action", "CreateUser"), ("UserName", user)],
    )
    .await;
    assert!(s.is_success(), "{body}");
    if !doc.is_empty() {
        let (s, body) = query(
            admin,
            "iam",
            &[
                ("Action", "PutUserPolicy"),
                ("UserName", user),
                ("PolicyName", "p"),
                ("PolicyDocument", doc),
            ],
        )
        .await;
        assert!(s.is_success(), "{body}");
    }
    let (s, body) = query(
        admin,
        "iam",
        &[("Action", "CreateAccessKey"), ("UserName", user)],
    )
    .await;
    assert!(s.is_success(), "{body}");
    Credentials {
        access_key_id: xml(&body, "AccessKeyId").to_owned(),
        secret_key: SecretKey::new(xml(&body, "SecretAccessKey").to_owned()),
        session_token: None,
    }
}

fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    nanos ^ std::process::id().rotate_left(16)
}

/// Runs `n` calls `f(i)` with `concurrency` in flight; returns the elapsed time.
async fn in_parallel<F, Fut>(n: usize, concurrency: usize, f: F) -> Duration
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let f = Arc::new(f);
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (next, f) = (next.clone(), f.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= n {
                        return;
                    }
                    f(i).await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    started.elapsed()
}

async fn populate(
    endpoints: Vec<String>,
    creds: Credentials,
    counts: (usize, usize, usize),
    concurrency: usize,
    bucket: String,
) {
    let (users, roles, jobs) = counts;
    let admins: Arc<Vec<Client>> =
        Arc::new(endpoints.iter().map(|e| client(e, creds.clone())).collect());
    let (_, body) = query(&admins[0], "sts", &[("Action", "GetCallerIdentity")]).await;
    let account = xml(&body, "Account").to_owned();
    let tag = format!("{:08x}", rand_u32());
    let ok = |s: StatusCode, body: &str| assert!(s.is_success(), "{body}");

    let a = admins.clone();
    let t = tag.clone();
    let took = in_parallel(users, concurrency, move |i| {
        let (a, t) = (a.clone(), t.clone());
        async move {
            let c = &a[i % a.len()];
            let name = format!("u{t}-{i}");
            let doc = format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::team-{i}","arn:aws:s3:::team-{i}/*"]}}]}}"#
            );
            let (s, b) = query(c, "iam", &[("Action", "CreateUser"), ("UserName", &name)]).await;
            ok(s, &b);
            let (s, b) = query(
                c,
                "iam",
                &[
                    ("Action", "PutUserPolicy"),
                    ("UserName", &name),
                    ("PolicyName", "team"),
                    ("PolicyDocument", &doc),
                ],
            )
            .await;
            ok(s, &b);
        }
    })
    .await;
    println!(
        "users: {users} (CreateUser + PutUserPolicy) in {took:.1?}, {:.0} writes/s",
        (2 * users) as f64 / took.as_secs_f64()
    );

    let a = admins.clone();
    let t = tag.clone();
    let took = in_parallel(roles, concurrency, move |i| {
        let (a, t, account) = (a.clone(), t.clone(), account.clone());
        async move {
            let c = &a[i % a.len()];
            let name = format!("r{t}-{i}");
            let trust = format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"sts:AssumeRole","Principal":{{"AWS":"arn:aws:iam::{account}:root"}}}}]}}"#
            );
            let doc = format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::out-{i}/*"}}]}}"#
            );
            let (s, b) = query(
                c,
                "iam",
                &[
                    ("Action", "CreateRole"),
                    ("RoleName", &name),
                    ("AssumeRolePolicyDocument", &trust),
                ],
            )
            .await;
            ok(s, &b);
            let (s, b) = query(
                c,
                "iam",
                &[
                    ("Action", "PutRolePolicy"),
                    ("RoleName", &name),
                    ("PolicyName", "out"),
                    ("PolicyDocument", &doc),
                ],
            )
            .await;
            ok(s, &b);
        }
    })
    .await;
    println!(
        "roles: {roles} (CreateRole + PutRolePolicy) in {took:.1?}, {:.0} writes/s",
        (2 * roles) as f64 / took.as_secs_f64()
    );

    let r = admins[0]
        .send(
            Method::PUT,
            &format!("/{bucket}"),
            HeaderMap::new(),
            Bytes::new(),
        )
        .await
        .unwrap();
    read_body(r).await.unwrap();
    let a = admins.clone();
    let took = in_parallel(jobs, concurrency, move |i| {
        let (a, bucket, t) = (a.clone(), bucket.clone(), tag.clone());
        async move {
            let c = &a[i % a.len()];
            let spec = serde_json::json!({
                "name": format!("j{t}-{i}"),
                "read": [format!("s3://{bucket}/ds-{i}/")],
                "write": [format!("s3://{bucket}/out-{i}/")],
                "duration": "12h",
            });
            let (s, b) = keyhole(c, "CreateJob", &spec).await;
            ok(s, &b);
        }
    })
    .await;
    println!(
        "jobs: {jobs} (CreateJob) in {took:.1?}, {:.0} writes/s",
        jobs as f64 / took.as_secs_f64()
    );
}

fn rebuild(state: &str, key_file: &PathBuf, account: &str, times: usize) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let key = hex::decode(std::fs::read_to_string(key_file).unwrap().trim()).unwrap();
    let pg =
        keyhole_server::state::postgres::Postgres::open(state, runtime.handle().clone()).unwrap();
    let opened = Instant::now();
    let state = keyhole_server::state::State::with_engine(
        keyhole_server::state::Engine::Postgres(pg),
        &key,
        account,
    )
    .unwrap();
    println!(
        "open (migrations checked + first whole load): {:.1?}",
        opened.elapsed()
    );
    let snap = state.snapshot();
    println!(
        "snapshot: {} users, {} roles, {} keys, {} active jobs ({} jobs indexed), {} revocations",
        snap.users.len(),
        snap.roles.len(),
        snap.keys.len(),
        snap.jobs.len(),
        snap.job_index.len(),
        snap.revoked.len()
    );
    drop(snap);
    let mut took = Vec::new();
    for _ in 0..times {
        let t = Instant::now();
        state.reload().unwrap();
        took.push(t.elapsed());
    }
    summary("whole snapshot rebuilt from the database", took);
}

fn main() {
    let args = Args::parse();
    match args.command {
        Command::Rebuild {
            state,
            master_key_file,
            account_id,
            times,
        } => rebuild(&state, &master_key_file, &account_id, times),
        Command::Propagation {
            endpoint,
            credentials,
            change,
            trials,
        } => tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(propagation(endpoint, root(&credentials), change, trials)),
        Command::Populate {
            endpoint,
            credentials,
            users,
            roles,
            jobs,
            concurrency,
            bucket,
        } => tokio::runtime::Runtime::new().unwrap().block_on(populate(
            endpoint,
            root(&credentials),
            (users, roles, jobs),
            concurrency,
            bucket,
        )),
    }
}
