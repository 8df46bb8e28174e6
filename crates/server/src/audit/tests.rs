//! Attacks on a real trail (written by the sink), checked by `verify` with the operator's key
//! and by the start check. Issue 20: each attack of the adversarial review is here, and the
//! restart variants.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::Digest as _;

use super::digest::{self, Kind};
use super::err::AuditError;
use super::event::tests_support::sample_event;
use super::event::{AuditEvent, Stage};
use super::keys::{Signer, TrustedKeys};
use super::sink::test_support::{keys, open, open_with, options, signer};
use super::sink::{trail_files, AuditSink, Rotation, MAX_UNSIGNED_EVENTS};
use super::verify::{self, Problem, Report, Walk};
use crate::metrics::SinkStats;

fn one_file() -> Rotation {
    Rotation {
        max_bytes: u64::MAX,
        max_age: Duration::from_secs(3600),
        retain: None,
    }
}

/// A new trail (genesis signed) in one file, its sink, and the sink's counters.
fn fresh_one_file_sink() -> (tempfile::TempDir, Arc<SinkStats>, AuditSink) {
    let dir = tempfile::tempdir().unwrap();
    let stats = Arc::new(SinkStats::default());
    super::sink::genesis(
        dir.path(),
        &signer(),
        "123456789012",
        None,
        SystemTime::now(),
    )
    .unwrap();
    let sink = AuditSink::open(dir.path(), signer(), options(one_file()), stats.clone()).unwrap();
    (dir, stats, sink)
}

fn per_event() -> Rotation {
    Rotation {
        max_bytes: 1,
        ..one_file()
    }
}

async fn record(sink: &AuditSink, from: usize, n: usize) {
    for i in from..from + n {
        let mut e = sample_event();
        e.request_id = format!("REQ{i}");
        e.event_time = super::sink::rfc3339(SystemTime::now());
        sink.record_durable(e).await.unwrap();
    }
}

/// A stopped trail of `n` events.
async fn trail(n: usize, rotation: Rotation) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let sink = open(dir.path(), rotation);
    record(&sink, 0, n).await;
    sink.close().await;
    dir
}

fn check_with(dir: &Path, keys: &TrustedKeys) -> Report {
    verify::verify(verify::Options {
        audit_dir: dir,
        witness: None,
        keys,
        from: Walk::Beginning,
    })
    .unwrap()
}

fn check(dir: &Path) -> Report {
    check_with(dir, &keys())
}

fn intact(dir: &Path) -> Report {
    let r = check(dir);
    assert_eq!(r.problem, None, "{r:#?}");
    r
}

fn problem(dir: &Path) -> Problem {
    let r = check(dir);
    let text = format!("{r:#?}");
    r.problem
        .unwrap_or_else(|| panic!("no problem found: {text}"))
}

fn last_file(dir: &Path) -> PathBuf {
    trail_files(dir)
        .unwrap()
        .into_iter()
        .rev()
        .find(|(_, p)| std::fs::metadata(p).unwrap().len() > 0)
        .unwrap()
        .1
}

fn edit_lines(path: &Path, f: impl FnOnce(&mut Vec<String>)) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    f(&mut lines);
    let mut out = lines.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

/// Recomputes the chain of `lines` from index `from` on, as an attacker without a key can.
fn rechain(lines: &mut [String], from: usize) {
    let mut prev = lines[from - 1]
        .rsplit_once(",\"hash\":\"")
        .unwrap()
        .1
        .trim_end_matches("\"}")
        .to_owned();
    for line in lines.iter_mut().skip(from) {
        let (content, old) = line.rsplit_once(",\"hash\":\"").unwrap();
        let old_prev = content
            .split("\"prevHash\":\"")
            .nth(1)
            .unwrap()
            .get(..64)
            .unwrap()
            .to_owned();
        let _ = old;
        let content = content.replace(&old_prev, &prev);
        let hash = hex::encode(sha2::Sha256::digest(content.as_bytes()));
        *line = format!("{content},\"hash\":\"{hash}\"}}");
        prev = hash;
    }
}

fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.path().join(entry.file_name())).unwrap();
    }
    to
}

fn reopen(dir: &Path) -> Result<AuditSink, AuditError> {
    AuditSink::open(
        dir,
        signer(),
        options(one_file()),
        Arc::new(SinkStats::default()),
    )
}

fn refused(dir: &Path) -> String {
    match reopen(dir) {
        Err(e @ AuditError::Mismatch { .. }) => e.to_string(),
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("the start check accepted a tampered trail"),
    }
}

#[tokio::test]
async fn an_intact_trail_verifies_with_the_operators_key_only() {
    let dir = trail(5, one_file()).await;
    let r = intact(dir.path());
    assert_eq!((r.events, r.unsigned), (5, 0));
    let first = r.first.unwrap().digest;
    assert_eq!((first.digest_seq, first.kind), (1, Kind::Genesis));
    assert_eq!(r.last.unwrap().digest.kind, Kind::Stop);
    // Any other key, however the digests name it: refused.
    let stranger = Signer::generate();
    let r = check_with(
        dir.path(),
        &TrustedKeys::new(vec![stranger.public().clone()], vec![]),
    );
    assert!(r.problem.unwrap().reason.contains("not the operator's"));
    // The pinned fingerprint of the right key: accepted.
    let pinned = TrustedKeys::new(vec![], vec![signer().public().fingerprint().to_owned()]);
    assert_eq!(check_with(dir.path(), &pinned).problem, None);
}

#[tokio::test]
async fn edits_deletions_insertions_and_reordering_are_named() {
    let dir = trail(5, one_file()).await;
    let path = last_file(dir.path());
    let original = std::fs::read_to_string(&path).unwrap();
    edit_lines(&path, |l| l[2] = l[2].replace("REQ2", "REQX"));
    let p = problem(dir.path());
    assert!(
        p.position.ends_with(":3") && p.reason.contains("edited"),
        "{p:?}"
    );
    for (edit, line) in [
        (
            Box::new(|l: &mut Vec<String>| drop(l.remove(1))) as Box<dyn Fn(&mut Vec<String>)>,
            2,
        ),
        (
            Box::new(|l: &mut Vec<String>| {
                let c = l[0].clone();
                l.insert(3, c)
            }),
            4,
        ),
        (Box::new(|l: &mut Vec<String>| l.swap(1, 2)), 2),
    ] {
        std::fs::write(&path, &original).unwrap();
        edit_lines(&path, |l| edit(l));
        let p = problem(dir.path());
        assert!(p.position.ends_with(&format!(":{line}")), "{p:?}");
    }
    std::fs::write(&path, &original).unwrap();
    intact(dir.path());
}

#[tokio::test]
async fn an_edit_with_the_chain_recomputed_is_named_at_the_edited_event() {
    let dir = trail(6, one_file()).await;
    let path = last_file(dir.path());
    edit_lines(&path, |l| {
        l[2] = l[2].replace("\"httpStatus\":200", "\"httpStatus\":403");
        rechain(l, 2);
    });
    let p = problem(dir.path());
    assert!(p.position.ends_with(":3"), "{p:?}");
    assert!(p.reason.contains("recomputed"), "{p:?}");
    // A restart does not launder it.
    assert!(refused(dir.path()).contains("recomputed"));
}

#[tokio::test]
async fn a_cut_tail_is_caught_and_a_restart_refuses_it() {
    let dir = trail(5, one_file()).await;
    let path = last_file(dir.path());
    edit_lines(&path, |l| {
        l.truncate(2);
    });
    let p = problem(dir.path());
    assert!(p.reason.contains("cut from the tail"), "{p:?}");
    assert!(refused(dir.path()).contains("cut from the tail"));
    // Cut mid-line, too.
    let dir = trail(5, one_file()).await;
    let path = last_file(dir.path());
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    assert!(problem(dir.path()).reason.contains("cut"));
}

#[tokio::test]
async fn forged_removed_and_replayed_digests_are_caught() {
    let dir = trail(3, one_file()).await;
    let log = dir.path().join(digest::log_name(1));
    let original = std::fs::read_to_string(&log).unwrap();
    // An edited digest (moving the signed head) without the key.
    edit_lines(&log, |l| {
        let last = l.len() - 1;
        l[last] = l[last].replace("\"kind\":\"stop\"", "\"kind\":\"periodic\"");
    });
    assert!(problem(dir.path())
        .reason
        .contains("signature does not match"));
    // A digest removed from the middle of the chain.
    std::fs::write(&log, &original).unwrap();
    edit_lines(&log, |l| drop(l.remove(1)));
    assert!(problem(dir.path()).reason.contains("expected digest #2"));
    // An old digest replayed at the end.
    std::fs::write(&log, &original).unwrap();
    edit_lines(&log, |l| {
        let old = l[1].clone();
        l.push(old);
    });
    assert!(problem(dir.path()).reason.contains("replayed"));
}

#[tokio::test]
async fn an_emptied_trail_fails_verification_and_the_start_check() {
    // A fresh account: its genesis only, no event ever.
    let dir = tempfile::tempdir().unwrap();
    open(dir.path(), one_file()).close().await;
    intact(dir.path());
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    assert!(problem(dir.path()).reason.contains("no signed digest"));
    assert!(refused(dir.path()).contains("no signed digest"));
    // A trail with history: the trail files removed, the digests kept.
    let dir = trail(3, one_file()).await;
    for (_, p) in trail_files(dir.path()).unwrap() {
        std::fs::remove_file(p).unwrap();
    }
    assert!(problem(dir.path()).reason.contains("missing"));
    // The digests removed, the trail kept.
    let dir = trail(3, one_file()).await;
    for (_, p) in digest::digest_logs(dir.path()).unwrap() {
        std::fs::remove_file(p).unwrap();
    }
    assert!(problem(dir.path()).reason.contains("no signed digest"));
}

#[tokio::test]
async fn removed_renamed_and_appended_files_are_caught() {
    let dir = trail(4, per_event()).await;
    let files = trail_files(dir.path()).unwrap();
    assert!(files.len() >= 4);
    std::fs::remove_file(&files[1].1).unwrap();
    assert!(problem(dir.path()).reason.contains("missing"));

    let dir = trail(4, per_event()).await;
    let files = trail_files(dir.path()).unwrap();
    let (a, b) = (&files[1].1, &files[2].1);
    let tmp = dir.path().join("swap");
    std::fs::rename(a, &tmp).unwrap();
    std::fs::rename(b, a).unwrap();
    std::fs::rename(&tmp, b).unwrap();
    assert!(problem(dir.path()).reason.contains("renamed or reordered"));

    // An event appended (validly chained) while the gateway is stopped.
    let dir = trail(3, one_file()).await;
    let path = last_file(dir.path());
    edit_lines(&path, |l| {
        let mut copy = l[2].replace("REQ2", "REQ-FAKE");
        copy = copy.replacen("\"seq\":3", "\"seq\":4", 1);
        l.push(copy);
        rechain(l, 3);
    });
    let p = problem(dir.path());
    assert!(p.reason.contains("closed the file"), "{p:?}");
    assert!(refused(dir.path()).contains("closed the file"));
}

/// The write-ahead record of request `id` (its `completed` one comes later, or never).
fn authorized(id: &str) -> AuditEvent {
    let mut a = sample_event();
    a.stage = Stage::Authorized;
    a.request_id = id.into();
    a.http_status = None;
    a
}

#[tokio::test]
async fn orphaned_authorized_records_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let sink = open(dir.path(), one_file());
    let mut a = authorized("ORPHAN");
    sink.record_durable(a.clone()).await.unwrap();
    a.request_id = "DONE".into();
    sink.record_durable(a.clone()).await.unwrap();
    a.stage = Stage::Completed;
    sink.record_durable(a).await.unwrap();
    sink.close().await;
    let r = intact(dir.path());
    assert_eq!(r.orphan_count, 1);
    assert_eq!(r.orphans[0].request_id, "ORPHAN");
    assert!(r.orphans[0].position.ends_with(":1"));
}

/// A request still running when the trail is checked (its `authorized` record written, its
/// `completed` one not yet) is listed as open, not as cut short: only a later `start` or `stop`
/// digest says that the gateway that wrote it stopped (review 22: verify, run beside a busy
/// gateway, called requests in flight orphaned).
#[tokio::test]
async fn a_request_in_flight_is_open_until_its_gateway_stops_or_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let sink = open(dir.path(), one_file());
    for id in ["RUNNING", "DONE"] {
        sink.record_durable(authorized(id)).await.unwrap();
    }
    let mut c = authorized("DONE");
    c.stage = Stage::Completed;
    sink.record_durable(c).await.unwrap();
    let r = intact(dir.path());
    assert_eq!((r.orphan_count, r.open_count), (0, 1), "{r:#?}");
    assert_eq!(r.open[0].request_id, "RUNNING");
    // A crash: the restart's `start` digest settles it (the gateway that took it is gone).
    let crashed = copy_dir(dir.path());
    let restarted = reopen(crashed.path()).unwrap();
    restarted.record_durable(authorized("AFTER")).await.unwrap();
    let r = intact(crashed.path());
    assert_eq!((r.orphan_count, r.open_count), (1, 1), "{r:#?}");
    assert_eq!(r.orphans[0].request_id, "RUNNING");
    assert_eq!(r.open[0].request_id, "AFTER");
    restarted.close().await;
    // A clean stop settles what was still open.
    sink.close().await;
    let r = intact(dir.path());
    assert_eq!((r.orphan_count, r.open_count), (1, 0), "{r:#?}");
    let r = intact(crashed.path());
    assert_eq!((r.orphan_count, r.open_count), (2, 0), "{r:#?}");
}

#[tokio::test]
async fn a_crash_leaves_a_bounded_unsigned_window_that_the_restart_signs() {
    let dir = tempfile::tempdir().unwrap();
    let sink = open(dir.path(), one_file());
    record(&sink, 0, 3).await;
    // What kill -9 leaves: the events fsynced, no digest after them yet.
    let crashed = copy_dir(dir.path());
    sink.close().await;
    let r = intact(crashed.path());
    assert_eq!(r.unsigned, 3);
    let restarted = reopen(crashed.path()).unwrap();
    record(&restarted, 3, 1).await;
    restarted.close().await;
    let r = intact(crashed.path());
    assert_eq!((r.events, r.unsigned), (4, 0));
    assert_eq!(r.gaps.len(), 1, "{r:#?}");
    assert!(r.gaps[0].contains("3 event(s)"), "{:?}", r.gaps);
    // Events appended after a clean stop are not adopted.
    let dir = trail(2, one_file()).await;
    let path = last_file(dir.path());
    edit_lines(&path, |l| {
        let copy = l[1].replacen("\"seq\":2", "\"seq\":3", 1);
        l.push(copy);
        rechain(l, 2);
    });
    refused(dir.path());
}

#[tokio::test]
async fn the_unsigned_window_never_exceeds_its_bound() {
    let (dir, stats, sink) = fresh_one_file_sink();
    let n = 2 * MAX_UNSIGNED_EVENTS as usize + 100;
    let mut tasks = Vec::new();
    for i in 0..n {
        let s = sink.clone();
        tasks.push(tokio::spawn(async move {
            let mut e = sample_event();
            e.request_id = format!("R{i}");
            s.record_durable(e).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let unsigned = stats.unsigned_events.load(Ordering::Relaxed);
    assert!(
        (0..=MAX_UNSIGNED_EVENTS as i64).contains(&unsigned),
        "{unsigned} unsigned"
    );
    // Digests were signed because of the count alone (the cadence is an hour here).
    assert!(stats.digests_written.load(Ordering::Relaxed) >= 3);
    let snapshot = copy_dir(dir.path());
    sink.close().await;
    assert!(intact(snapshot.path()).unsigned <= MAX_UNSIGNED_EVENTS);
    assert_eq!(intact(dir.path()).events, n as u64);
}

#[tokio::test]
async fn a_swapped_trail_file_is_tampering() {
    let (dir, stats, sink) = fresh_one_file_sink();
    record(&sink, 0, 2).await;
    // Freeze the visible file: a copy renamed over it (a new inode); the writer still holds the
    // old one.
    let path = last_file(dir.path());
    let tmp = dir.path().join("frozen");
    std::fs::copy(&path, &tmp).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    record(&sink, 2, 2).await;
    sink.close().await;
    assert_eq!(stats.tampering.load(Ordering::Relaxed), 1);
    // The writer signed what it wrote; the visible file lacks it.
    let r = check(dir.path());
    assert!(r.problem.as_ref().unwrap().reason.contains("cut"), "{r:#?}");
    // And later events are refused until restart.
    assert!(sink.record_durable(sample_event()).await.is_err());
    assert!(refused(dir.path()).contains("cut"));
}

#[tokio::test]
async fn a_restart_with_another_key_is_refused_unless_pinned() {
    let dir = trail(2, one_file()).await;
    let other = Arc::new(Signer::generate());
    let o = options(one_file());
    let e = AuditSink::open(
        dir.path(),
        other.clone(),
        o.clone(),
        Arc::new(SinkStats::default()),
    )
    .unwrap_err();
    assert!(e.to_string().contains("not the operator's"), "{e}");
    let mut pinned = o;
    pinned.pinned = vec![signer().public().fingerprint().to_owned()];
    let sink = AuditSink::open(
        dir.path(),
        other.clone(),
        pinned,
        Arc::new(SinkStats::default()),
    )
    .unwrap();
    record(&sink, 2, 1).await;
    sink.close().await;
    // Rotated keys verify when both are given.
    let both = TrustedKeys::new(
        vec![signer().public().clone(), other.public().clone()],
        vec![],
    );
    assert_eq!(check_with(dir.path(), &both).problem, None);
    assert!(check(dir.path()).problem.is_some());
    // Review (A4): the old key is retired from the first digest the new one signed. Pinned so,
    // the trail verifies; a digest at or after that point signed by the old key, or a trail
    // that ends before it, does not.
    let mut digests: Vec<(u64, String)> = Vec::new();
    for (_, path) in super::digest::digest_logs(dir.path()).unwrap() {
        for line in std::fs::read_to_string(path).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            digests.push((
                v["digestSeq"].as_u64().unwrap(),
                v["publicKeyFingerprint"].as_str().unwrap().to_owned(),
            ));
        }
    }
    let old_fp = signer().public().fingerprint().to_owned();
    let new_fp = other.public().fingerprint().to_owned();
    let first_new = digests
        .iter()
        .filter(|(_, fp)| *fp == new_fp)
        .map(|(s, _)| *s)
        .min()
        .unwrap();
    let last = digests.iter().map(|(s, _)| *s).max().unwrap();
    let retired =
        |at: u64| TrustedKeys::new(vec![], vec![format!("{old_fp}@{at}"), new_fp.clone()]);
    assert_eq!(check_with(dir.path(), &retired(first_new)).problem, None);
    let early = check_with(dir.path(), &retired(first_new - 1))
        .problem
        .unwrap();
    assert!(early.reason.contains("retired"), "{early:?}");
    let beyond = check_with(dir.path(), &retired(last + 1)).problem.unwrap();
    assert!(beyond.reason.contains("were removed"), "{beyond:?}");
}

#[tokio::test]
async fn an_accepted_discontinuity_is_signed_and_the_trail_goes_on() {
    let dir = trail(5, one_file()).await;
    let path = last_file(dir.path());
    edit_lines(&path, |l| l.truncate(3));
    let mut o = options(one_file());
    o.accept_discontinuity = true;
    let stats = Arc::new(SinkStats::default());
    let sink = AuditSink::open(dir.path(), signer(), o, stats.clone()).unwrap();
    assert_eq!(stats.discontinuities.load(Ordering::Relaxed), 1);
    record(&sink, 5, 2).await;
    sink.close().await;
    let r = intact(dir.path());
    assert_eq!(r.discontinuities.len(), 1, "{r:#?}");
    assert!(
        r.discontinuities[0].contains("#4..#5"),
        "{:?}",
        r.discontinuities
    );
    // The sequence continued from the signed state, not from the cut file.
    let files = trail_files(dir.path()).unwrap();
    assert!(files.iter().any(|(s, _)| *s == 6), "{files:?}");
    // A later, unrelated cut is still caught.
    let path = last_file(dir.path());
    edit_lines(&path, |l| l.truncate(1));
    assert!(check(dir.path()).problem.is_some());
}

/// Bytes that are not an event, appended after the last signed one, give up no event: the
/// report says so rather than naming an empty range (`#6..#5`).
#[tokio::test]
async fn a_discontinuity_over_bytes_alone_names_no_events() {
    let dir = trail(5, one_file()).await;
    let path = last_file(dir.path());
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"not\":\"an event\"}\n").unwrap();
    drop(f);
    let mut o = options(one_file());
    o.accept_discontinuity = true;
    let stats = Arc::new(SinkStats::default());
    let sink = AuditSink::open(dir.path(), signer(), o, stats.clone()).unwrap();
    assert_eq!(stats.discontinuities.load(Ordering::Relaxed), 1);
    sink.close().await;
    let r = intact(dir.path());
    assert_eq!(r.discontinuities.len(), 1, "{r:#?}");
    assert!(
        r.discontinuities[0].contains("no events (only bytes after event #5)"),
        "{:?}",
        r.discontinuities
    );
}

/// A restart over a damaged trail that the operator allows signs a `discontinuity` digest
/// instead of a `start` one; the gateway that wrote the records before it has stopped all the
/// same, so a request it never completed is orphaned, not open (review 25).
/// The `stop` digest that signs a request's `authorized` record settles it too: a clean stop
/// with a copy still streaming leaves that record orphaned, not open (review 26: the stop
/// digest settled only the records before the events it signs).
#[tokio::test]
async fn the_stop_digest_settles_the_records_it_signs() {
    let dir = tempfile::tempdir().unwrap();
    let sink = open(dir.path(), one_file());
    sink.record(authorized("STREAMING")).await;
    sink.close().await;
    let r = intact(dir.path());
    assert_eq!((r.orphan_count, r.open_count), (1, 0), "{r:#?}");
}

#[tokio::test]
async fn a_discontinuity_restart_settles_the_requests_the_old_gateway_left() {
    let dir = tempfile::tempdir().unwrap();
    let sink = open(dir.path(), one_file());
    sink.record_durable(authorized("CUT")).await.unwrap();
    let crashed = copy_dir(dir.path());
    sink.close().await;
    let path = last_file(crashed.path());
    edit_lines(&path, |l| l.push("{\"damaged\":".to_owned()));
    let mut o = options(one_file());
    o.accept_discontinuity = true;
    let restarted =
        AuditSink::open(crashed.path(), signer(), o, Arc::new(SinkStats::default())).unwrap();
    record(&restarted, 10, 1).await;
    let r = check(crashed.path());
    assert_eq!((r.orphan_count, r.open_count), (1, 0), "{r:#?}");
    assert_eq!(r.orphans[0].request_id, "CUT");
    restarted.close().await;
}

#[tokio::test]
async fn files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    let sink = open(&audit, one_file());
    record(&sink, 0, 1).await;
    sink.close().await;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&audit), 0o700);
    for entry in std::fs::read_dir(&audit).unwrap() {
        assert_eq!(mode(&entry.unwrap().path()), 0o600);
    }
}

/// A clock `days` ahead of now.
fn ahead(days: u64) -> super::sink::Clock {
    Arc::new(move || SystemTime::now() + Duration::from_secs(days * 86_400))
}

#[tokio::test]
async fn retention_goes_by_signed_event_times_and_keeps_the_chain_verifiable() {
    let dir = trail(4, per_event()).await;
    let before = trail_files(dir.path()).unwrap().len();
    // Backdated files (the mtime attack): nothing goes.
    for (_, p) in trail_files(dir.path()).unwrap() {
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(30 * 86_400))
            .unwrap();
    }
    let mut o = options(per_event());
    o.rotation.retain = Some(Duration::from_secs(86_400));
    let sink = open_with(dir.path(), o.clone()).unwrap();
    sink.close().await;
    assert!(trail_files(dir.path()).unwrap().len() >= before);
    intact(dir.path());
    // Ten days later every closed file has expired:
    // all go, the sequence goes on after them, and the trail still verifies.
    o.clock = ahead(10);
    let sink = open_with(dir.path(), o.clone()).unwrap();
    record(&sink, 4, 1).await;
    sink.close().await;
    let files = trail_files(dir.path()).unwrap();
    assert!(files.iter().all(|(s, _)| *s >= 5), "{files:?}");
    let r = intact(dir.path());
    assert!(
        r.notes.iter().any(|n| n.contains("removed by retention")),
        "{r:#?}"
    );
    assert_eq!(r.events, 1);
    // A restart after everything expired continues the sequence (event #6, not #1).
    let sink = open_with(dir.path(), o).unwrap();
    record(&sink, 5, 1).await;
    sink.close().await;
    let r = intact(dir.path());
    let seqs: Vec<u64> = trail_files(dir.path())
        .unwrap()
        .iter()
        .map(|(s, _)| *s)
        .collect();
    assert!(seqs.iter().all(|s| *s >= 5), "{seqs:?}");
    assert_eq!(r.events, 1, "the newer file only: {r:#?}");
    // Removing a kept file is not retention.
    let kept = last_file(dir.path());
    std::fs::remove_file(kept).unwrap();
    assert!(check(dir.path()).problem.is_some());
}

#[tokio::test]
async fn exported_digests_catch_a_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let sink = open(dir.path(), one_file());
    record(&sink, 0, 2).await;
    let rolled = copy_dir(dir.path());
    record(&sink, 2, 3).await;
    sink.close().await;
    let witness = tempfile::tempdir().unwrap();
    let done = super::export::export_digests(dir.path(), witness.path(), &keys()).unwrap();
    assert!(done.digests >= 3, "{done:?}");
    // Roll the data directory back to an earlier, consistent state (as an attacker without the
    // key can): on its own it verifies, with a gap...
    let r = intact(rolled.path());
    assert_eq!(r.unsigned, 2);
    // ...but against the exported digests it fails, and a new export refuses.
    let r = verify::verify(verify::Options {
        audit_dir: rolled.path(),
        witness: Some(witness.path()),
        keys: &keys(),
        from: Walk::Beginning,
    })
    .unwrap();
    assert!(r.problem.is_some(), "{r:#?}");
    let e = super::export::export_digests(rolled.path(), witness.path(), &keys()).unwrap_err();
    assert!(e.to_string().contains("rolled back"), "{e}");
    // The real trail, with digests signed after the export, verifies against the copy.
    let sink = open(dir.path(), per_event());
    record(&sink, 5, 2).await;
    sink.close().await;
    let r = verify::verify(verify::Options {
        audit_dir: dir.path(),
        witness: Some(witness.path()),
        keys: &keys(),
        from: Walk::Beginning,
    })
    .unwrap();
    assert_eq!(r.problem, None, "{r:#?}");
    // An up-to-date export appends what is new.
    let again = super::export::export_digests(dir.path(), witness.path(), &keys()).unwrap();
    assert!(
        again.digests > 0 && again.new_files + again.extended > 0,
        "{again:?}"
    );
    let same = super::export::export_digests(dir.path(), witness.path(), &keys()).unwrap();
    assert_eq!(same.digests, 0, "{same:?}");
}

#[tokio::test]
async fn events_chain_across_restarts_and_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let sink = open(dir.path(), per_event());
    record(&sink, 0, 3).await;
    sink.close().await;
    let sink = open(dir.path(), one_file());
    record(&sink, 3, 1).await;
    sink.close().await;
    let r = intact(dir.path());
    assert_eq!(r.events, 4);
    assert!(trail_files(dir.path()).unwrap().len() >= 3);
}

#[tokio::test]
async fn an_incomplete_last_line_is_cut_on_open() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let sink = open(dir.path(), one_file());
    record(&sink, 0, 1).await;
    let crashed = copy_dir(dir.path());
    sink.close().await;
    let path = last_file(crashed.path());
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(b"{\"eventVersion\":\"1.0\",\"ev").unwrap();
    drop(f);
    let r = intact(crashed.path());
    assert!(
        r.notes.iter().any(|n| n.contains("incomplete final line")),
        "{r:#?}"
    );
    let sink = reopen(crashed.path()).unwrap();
    record(&sink, 1, 1).await;
    sink.close().await;
    assert_eq!(intact(crashed.path()).events, 2);
}

#[tokio::test]
async fn concurrent_events_share_commits() {
    let (dir, stats, sink) = fresh_one_file_sink();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let s = sink.clone();
        tasks.push(tokio::spawn(async move {
            s.record_durable(sample_event()).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(stats.events_written.load(Ordering::Relaxed), 200);
    assert!(stats.fsync.count() < 200, "fsyncs: {}", stats.fsync.count());
    assert_eq!(stats.queue_depth.load(Ordering::Relaxed), 0);
    // Events nobody waits for are written, and the stop digest covers them.
    sink.record(sample_event()).await;
    sink.record_detached(sample_event());
    sink.close().await;
    assert_eq!(intact(dir.path()).events, 202);
}

/// Review 20, M1: checks past the per-event cap are not kept, but a denial among them still
/// makes the event's decision Deny (500 allowed conditional keys, two checks each, once pushed
/// the denied keys after them out of a record that then said Allow).
#[test]
fn a_denial_past_the_check_cap_still_decides_deny() {
    use super::event::{Check, Decision};
    let checks = super::Checks::default();
    let allow = |i: usize| Check {
        decision: Decision::Allow,
        reason: "allowed".into(),
        ..Check::rule_denial("s3:DeleteObject", format!("arn:aws:s3:::b/k{i}"), "")
    };
    for i in 0..super::MAX_CHECKS_PER_EVENT {
        checks.push(allow(i));
    }
    assert_eq!(checks.decision(), Some(Decision::Allow));
    checks.push(Check::rule_denial(
        "s3:DeleteObject",
        "arn:aws:s3:::b/victim".into(),
        "no statement allows it",
    ));
    assert_eq!(checks.snapshot().len(), super::MAX_CHECKS_PER_EVENT);
    assert_eq!(checks.decision(), Some(Decision::Deny));
}
