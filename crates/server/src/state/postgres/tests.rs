//! The PostgreSQL engine against a real server ([`super::testdb`]): the same repositories and
//! migrations as SQLite, two nodes on one database, the shared account, and the change log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::testdb;
use super::*;
use crate::jobs::store::JobStore;
use crate::state::shared::SharedAccount;
use crate::state::snapshot::tests::{assert_same_as_reloaded, replay_every_change, snapshot_lines};
use crate::state::{PrincipalKind, State};

const ACCOUNT: &str = "123456789012";
const KEY: [u8; 32] = [1u8; 32];
const READ: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn fresh(account_id: &str) -> SharedAccount {
    SharedAccount {
        account_id: account_id.into(),
        root_access_key_id: crate::account::new_id("AKIA", 16),
        root_secret: keyhole_sigv4::SecretKey::new(crate::account::new_secret()),
        created: "2026-01-01T00:00:00Z".into(),
        created_now: false,
    }
}

/// A node on the database at `url` (a new state with its own pool).
fn node(
    rt: &tokio::runtime::Runtime,
    url: &str,
    key: &[u8],
    account: &str,
) -> (State, SharedAccount) {
    let engine = Postgres::open(url, rt.handle().clone()).unwrap();
    State::join(engine, key, &fresh(account)).unwrap()
}

#[test]
fn placeholders_are_numbered_for_postgres_outside_quotes() {
    assert_eq!(
        placeholders("SELECT a FROM t WHERE b = ?1 AND c = '?2' AND d = ?12"),
        "SELECT a FROM t WHERE b = $1 AND c = '?2' AND d = $12"
    );
    assert_eq!(placeholders("SELECT 1 WHERE x ? y"), "SELECT 1 WHERE x ? y");
}

#[test]
fn the_second_node_adopts_the_first_nodes_account_and_a_wrong_key_is_refused() {
    let rt = runtime();
    let url = testdb::database();
    let (_a, first) = node(&rt, &url, &KEY, ACCOUNT);
    assert!(first.created_now);
    assert_eq!(first.account_id, ACCOUNT);
    let (b, second) = node(&rt, &url, &KEY, "999999999999");
    assert!(!second.created_now);
    assert_eq!(
        second.account_id, ACCOUNT,
        "the database's account, not the candidate"
    );
    assert_eq!(second.root_access_key_id, first.root_access_key_id);
    assert_eq!(second.root_secret.expose(), first.root_secret.expose());
    // The state works with the adopted account's ARNs.
    b.create_policy("P", "/", "", READ).unwrap();
    assert!(b
        .get_policy(&format!("arn:aws:iam::{ACCOUNT}:policy/P"))
        .is_ok());
    let engine = Postgres::open(&url, rt.handle().clone()).unwrap();
    let e = State::join(engine, &[2u8; 32], &fresh(ACCOUNT))
        .unwrap_err()
        .to_string();
    assert!(e.contains("--master-key-file"), "{e}");
}

#[test]
fn nodes_starting_together_migrate_once_and_share_one_account() {
    let rt = runtime();
    let url = testdb::database();
    let handle = rt.handle().clone();
    let joined: Vec<String> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..4)
            .map(|i| {
                let (url, handle) = (url.clone(), handle.clone());
                scope.spawn(move || {
                    let engine = Postgres::open(&url, handle).unwrap();
                    let candidate = format!("{:012}", 100_000_000_000u64 + i);
                    State::join(engine, &KEY, &fresh(&candidate))
                        .unwrap()
                        .1
                        .account_id
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert!(joined.iter().all(|a| *a == joined[0]), "{joined:?}");
    let (s, _) = node(&rt, &url, &KEY, ACCOUNT);
    let versions = s
        .with_db(|db| {
            db.query_map(
                "SELECT version FROM schema_migrations ORDER BY version",
                crate::params![],
                |r| r.get::<i64>(0),
            )
        })
        .unwrap();
    assert_eq!(
        versions,
        (1..=crate::state::migrations::LATEST).collect::<Vec<_>>()
    );
}

/// Every kind of change, made on node A, reaches node B through the change log: after each
/// step B catches up and its snapshot is the one a whole reload builds, and A's.
#[test]
fn every_change_on_one_node_reaches_the_other_through_the_change_log() {
    let rt = runtime();
    let url = testdb::database();
    let (a, _) = node(&rt, &url, &KEY, ACCOUNT);
    let (b, _) = node(&rt, &url, &KEY, ACCOUNT);
    let a = Arc::new(a);
    replay_every_change(&a, &|step| {
        assert_same_as_reloaded(&a, step);
        b.catch_up().unwrap();
        assert_same_as_reloaded(&b, step);
        assert_eq!(
            snapshot_lines(&a.snapshot()),
            snapshot_lines(&b.snapshot()),
            "after {step}: node B differs from node A"
        );
    });
}

/// A hole in the change log (pruned rows) makes the node reload its snapshot whole.
#[test]
fn a_hole_in_the_change_log_reloads_the_snapshot() {
    let rt = runtime();
    let url = testdb::database();
    let (a, _) = node(&rt, &url, &KEY, ACCOUNT);
    let (b, _) = node(&rt, &url, &KEY, ACCOUNT);
    a.create_user("u1", "/").unwrap();
    a.create_user("u2", "/").unwrap();
    a.with_db(|db| {
        db.execute(
            "DELETE FROM state_changes WHERE seq = (SELECT min(seq) FROM state_changes)",
            crate::params![],
        )
    })
    .unwrap();
    assert_eq!(b.catch_up().unwrap(), 1, "a whole reload");
    assert!(b.snapshot().users.contains_key("u1"));
    assert!(b.snapshot().users.contains_key("u2"));
    assert_eq!(b.catch_up().unwrap(), 0, "then nothing more");
}

/// The follower task: a change on A reaches B's snapshot within a second, through LISTEN/NOTIFY
/// (and the periodic catch-up).
#[test]
fn the_follower_applies_other_nodes_changes_within_a_second() {
    let rt = runtime();
    let url = testdb::database();
    let (a, _) = node(&rt, &url, &KEY, ACCOUNT);
    let (b, _) = node(&rt, &url, &KEY, ACCOUNT);
    let (a, b) = (Arc::new(a), Arc::new(b));
    let follower = rt.spawn(crate::state::changes::follow(b.clone()));
    let jobs_a = JobStore::new(a.clone());
    let jobs_b = JobStore::new(b.clone());
    // Give the follower its LISTEN first.
    std::thread::sleep(Duration::from_millis(300));
    let within = |what: &str, done: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "{what} did not reach node B within a second"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        start.elapsed()
    };
    a.create_user("u", "/").unwrap();
    within("a new user", &|| b.snapshot().users.contains_key("u"));
    let (key, _) = a.create_access_key("u").unwrap();
    within("a new access key", &|| {
        b.snapshot().keys.contains_key(&key.id)
    });
    a.put_inline_policy(PrincipalKind::User, "u", "p", READ)
        .unwrap();
    within("a policy", &|| {
        b.snapshot()
            .users
            .get("u")
            .is_some_and(|u| !u.policies.is_empty())
    });
    let now = chrono::Utc::now().timestamp();
    jobs_a
        .revoke_session("ASIAREVOKED", now + 600, now)
        .unwrap();
    within("a revocation", &|| jobs_b.is_revoked("ASIAREVOKED"));
    a.delete_access_key("u", &key.id).unwrap();
    within("a deleted key", &|| {
        !b.snapshot().keys.contains_key(&key.id)
    });
    follower.abort();
}

/// Key hygiene on PostgreSQL: the same checks as SQLite's, plus two nodes flushing out of
/// order agree on the newest use (`state/key_usage.rs`).
#[test]
fn key_uses_and_credential_reports_on_postgres_newest_wins_across_nodes() {
    use crate::state::key_usage::{tests as k, KeyUse};
    let rt = runtime();
    let url = testdb::database();
    let (a, _) = node(&rt, &url, &KEY, ACCOUNT);
    let (b, _) = node(&rt, &url, &KEY, ACCOUNT);
    k::newest_use_wins_whatever_the_order_of_writes(&a);
    k::the_credential_report_is_stored_and_replaced(&a);
    // Node b saw a later use and flushed first; node a's older use comes after it.
    let newer = KeyUse {
        at_ms: 9_000,
        service: "s3".into(),
        region: "eu-west-1".into(),
    };
    let older = KeyUse {
        at_ms: 8_000,
        service: "iam".into(),
        region: "us-east-1".into(),
    };
    b.record_key_uses(&[("AKIASHARED".into(), newer.clone())])
        .unwrap();
    a.record_key_uses(&[("AKIASHARED".into(), older)]).unwrap();
    assert_eq!(a.key_last_used("AKIASHARED").unwrap(), Some(newer.clone()));
    assert_eq!(b.key_last_used("AKIASHARED").unwrap(), Some(newer));
    // The report one node stored is the one the other reads.
    assert_eq!(
        b.credential_report().unwrap(),
        a.credential_report().unwrap()
    );
}

/// A bucket name's lock is held across nodes: a second node waits for it until the first
/// drops it, and other names are not held up.
#[test]
fn a_bucket_name_lock_holds_every_node_until_it_is_dropped() {
    let rt = runtime();
    let url = testdb::database();
    let (a, _) = node(&rt, &url, &KEY, ACCOUNT);
    let (b, _) = node(&rt, &url, &KEY, ACCOUNT);
    rt.block_on(async {
        let held = a.bucket_name_lock("shared").await.unwrap();
        assert!(held.is_some(), "a PostgreSQL state locks across nodes");
        let waiting =
            tokio::time::timeout(Duration::from_millis(300), b.bucket_name_lock("shared")).await;
        assert!(waiting.is_err(), "the second node waited");
        // Another name is free.
        let other = tokio::time::timeout(Duration::from_secs(5), b.bucket_name_lock("other"))
            .await
            .expect("another name is not held")
            .unwrap();
        drop(other);
        let started = Instant::now();
        let (got, ()) = tokio::join!(
            tokio::time::timeout(Duration::from_secs(10), b.bucket_name_lock("shared")),
            async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                drop(held);
            }
        );
        got.expect("released when dropped").unwrap();
        assert!(started.elapsed() >= Duration::from_millis(200));
    });
}
