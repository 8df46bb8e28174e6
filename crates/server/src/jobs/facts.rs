//! Job reports across nodes: with a shared (PostgreSQL) state, every node also records what
//! reports need of its job sessions' requests in the database, so a report built on any node
//! covers the requests the job made on every node.
//!
//! - Every event handed to the audit sink passes the sink's tap ([`JobFeed::push`]); the
//!   `completed` events of job sessions are kept in memory, trimmed to what [`super::report`]
//!   reads (no user agent, no response elements, no request parameters beyond bucket, key and
//!   prefix), and the node stamped on them.
//! - A task ([`run`]) writes them off the request path every [`FLUSH_INTERVAL`], in batches, to
//!   `job_request_facts` (one row per request, keyed by node and request id, so a retried batch
//!   is idempotent), then publishes the node's *watermark* in `audit_nodes`: "every event this
//!   node handed to its sink before database time T is in the table". T is read from the
//!   database's clock before the batch is taken, so the nodes' own clocks do not matter.
//! - A report ([`build_shared`]) takes the database's time as its cut-off, waits (at most
//!   [`REPORT_WAIT`]) until every node that was alive since the job was created has a watermark
//!   strictly past the cut-off (or stopped cleanly after its last flush), then reads the job's rows. A
//!   node that did not catch up is named in the report (`complete: false`, `incomplete`), with
//!   how far it got: a report never silently misses a node's requests.
//!
//! With SQLite (one node) nothing is recorded here: reports come from the node's trail, which
//! holds every request. The tables exist in both engines (one migration list).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::report::Tally;
use super::store::JobRecord;
use crate::audit::event::{AuditEvent, RequestParameters, Stage};
use crate::audit::sink::Tap;
use crate::state::db::{Conn, Dialect};
use crate::state::{State, StateError};

/// How often a node writes its job facts and moves its watermark.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);
/// How long a report waits for every live node's watermark to pass its cut-off.
pub const REPORT_WAIT: Duration = Duration::from_secs(2);
/// Facts held in memory at most while the database cannot be written; beyond it new ones are
/// dropped and the node's watermark stops for good (until restart), so every later report names
/// the node as incomplete instead of missing them silently.
pub const MAX_PENDING: usize = 100_000;
/// Facts written per statement batch.
const MAX_PER_FLUSH: usize = 1000;
/// A node whose last flush is older than the job's creation minus this did not serve it.
const ALIVE_SLACK_MS: i64 = 5_000;

/// The tables (migration version 4).
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS job_request_facts (
        node TEXT NOT NULL, request_id TEXT NOT NULL, job_id TEXT NOT NULL,
        event_time TEXT NOT NULL, fact TEXT NOT NULL, PRIMARY KEY (node, request_id))",
    "CREATE INDEX IF NOT EXISTS job_request_facts_by_job ON job_request_facts (job_id, event_time)",
    "CREATE TABLE IF NOT EXISTS audit_nodes (
        node TEXT PRIMARY KEY, flushed_until BIGINT NOT NULL, seen_at BIGINT NOT NULL,
        stopped BIGINT NOT NULL)",
];

/// A job session's request, as reports need it.
#[derive(Debug, Clone)]
struct Fact {
    job: String,
    event: AuditEvent,
}

/// The trimmed copy of `e` a report needs, when `e` is a job session's completed request.
fn fact_of(e: &AuditEvent) -> Option<Fact> {
    let job = e.user_identity.job.clone()?;
    if e.stage != Stage::Completed {
        return None;
    }
    let mut event = e.clone();
    event.user_agent = None;
    event.response_elements = None;
    event.resources = Vec::new();
    event.request_parameters = RequestParameters {
        bucket_name: e.request_parameters.bucket_name.clone(),
        key: e.request_parameters.key.clone(),
        prefix: e.request_parameters.prefix.clone(),
        other: serde_json::Map::new(),
    };
    for c in &mut event.authorization {
        c.statements.clear();
    }
    Some(Fact { job, event })
}

/// The job facts of this node not yet written to the database.
#[derive(Debug, Default)]
pub struct JobFeed {
    pending: Mutex<Vec<Fact>>,
    overflowed: AtomicBool,
    /// One flush at a time: the last one at shutdown (which marks the node stopped) must not be
    /// overtaken by a periodic one still running.
    flushing: Mutex<()>,
}

impl JobFeed {
    /// The sink tap that feeds this.
    pub fn tap(self: &Arc<Self>) -> Tap {
        let feed = self.clone();
        Tap(Arc::new(move |e| feed.push(e)))
    }

    /// Keeps `e` when it is a job session's completed request.
    pub fn push(&self, e: &AuditEvent) {
        let Some(fact) = fact_of(e) else {
            return;
        };
        let Ok(mut pending) = self.pending.lock() else {
            self.overflowed.store(true, Ordering::SeqCst);
            return;
        };
        if pending.len() >= MAX_PENDING {
            if !self.overflowed.swap(true, Ordering::SeqCst) {
                tracing::error!(
                    held = MAX_PENDING,
                    "job report records cannot be written to the database fast enough; dropping new ones: every report will name this node as incomplete until it restarts"
                );
            }
            return;
        }
        pending.push(fact);
    }

    fn take(&self) -> Vec<Fact> {
        self.pending
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
    }

    fn put_back(&self, mut facts: Vec<Fact>) {
        if let Ok(mut p) = self.pending.lock() {
            facts.append(&mut p);
            *p = facts;
        }
    }
}

/// The database's clock, in Unix milliseconds (one clock for every node's watermark and every
/// report's cut-off).
fn db_now_ms(db: &dyn Conn) -> Result<i64, StateError> {
    let sql = match db.dialect() {
        Dialect::Postgres => "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        Dialect::Sqlite => "SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
    };
    db.query_one(sql, crate::params![], |r| r.get(0))
}

/// Writes what `feed` holds and moves `node`'s watermark to the database time read first;
/// `stopping` marks the node as stopped cleanly after this flush. Returns the facts written.
/// On failure the facts are kept for the next attempt.
pub fn flush(
    state: &State,
    feed: &JobFeed,
    node: &str,
    stopping: bool,
) -> Result<usize, StateError> {
    let _one = feed
        .flushing
        .lock()
        .map_err(|_| StateError::Engine("a job report flush panicked; restart the node".into()))?;
    state.with_db(|db| {
        // INVARIANT: the time is read before the facts are taken: every event handed to the
        // sink before it is in `facts` (or written by an earlier flush).
        let now = db_now_ms(db)?;
        let facts = feed.take();
        let written = facts.len();
        for chunk in facts.chunks(MAX_PER_FLUSH) {
            if let Err(e) = insert(db, node, chunk) {
                feed.put_back(facts);
                return Err(e);
            }
        }
        // With facts dropped, the watermark stays where it was (every report then names this
        // node); the node is still seen alive.
        let sql = if feed.overflowed.load(Ordering::SeqCst) {
            "INSERT INTO audit_nodes (node, flushed_until, seen_at, stopped) VALUES (?1, 0, ?2, ?3)
             ON CONFLICT (node) DO UPDATE SET seen_at = excluded.seen_at, stopped = excluded.stopped"
        } else {
            "INSERT INTO audit_nodes (node, flushed_until, seen_at, stopped) VALUES (?1, ?2, ?2, ?3)
             ON CONFLICT (node) DO UPDATE SET flushed_until = excluded.flushed_until,
             seen_at = excluded.seen_at, stopped = excluded.stopped"
        };
        db.execute(sql, crate::params![node, now, i64::from(stopping)])?;
        Ok(written)
    })
}

/// How long a registering node watches for another process flushing under its id: several
/// flush intervals.
pub const TWIN_WATCH: Duration = Duration::from_secs(1);

/// Registers `node` for job reports before it serves: refused while another running process
/// uses the same node id (a copied data directory, or a `node-id` file written by hand), since
/// two processes behind one watermark let a report say "complete" for requests one of them has
/// not written yet (review 10, F4). A row left by a node that crashed stops moving; a running
/// twin keeps flushing, so a row that was not stopped cleanly is watched for [`TWIN_WATCH`].
pub fn register(state: &State, feed: &JobFeed, node: &str) -> Result<(), StateError> {
    let seen = |state: &State| {
        state.with_db(|db| {
            db.query_map(
                "SELECT seen_at FROM audit_nodes WHERE node = ?1 AND stopped = 0",
                crate::params![node],
                |r| r.get::<i64>(0),
            )
        })
    };
    let before = seen(state)?;
    if !before.is_empty() {
        std::thread::sleep(TWIN_WATCH);
        if seen(state)? != before {
            return Err(StateError::Engine(format!(
                "node id `{node}` is in use by another running node: every node needs its own id; give this one its own <data-dir>/node-id (a copied data directory copies it)"
            )));
        }
    }
    flush(state, feed, node, false).map(|_| ())
}

fn insert(db: &dyn Conn, node: &str, facts: &[Fact]) -> Result<(), StateError> {
    for f in facts {
        let text = serde_json::to_string(&f.event)
            .map_err(|e| StateError::Engine(format!("cannot encode a job report record: {e}")))?;
        db.execute(
            "INSERT INTO job_request_facts (node, request_id, job_id, event_time, fact) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (node, request_id) DO NOTHING",
            crate::params![node, f.event.request_id, f.job, f.event.event_time, text],
        )?;
    }
    Ok(())
}

/// Writes this node's job facts every [`FLUSH_INTERVAL`] until the runtime stops (failures are
/// logged and retried: the watermark waits meanwhile).
pub async fn run(state: Arc<State>, feed: Arc<JobFeed>, node: String) {
    let mut tick = tokio::time::interval(FLUSH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        let (s, f, n) = (state.clone(), feed.clone(), node.clone());
        match crate::state::db::blocking(move || flush(&s, &f, &n, false)).await {
            Ok(_) => failing = false,
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot write job report records; reports on other nodes will name this node until it catches up");
                }
                failing = true;
            }
        }
    }
}

/// A node's watermark as a report saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mark {
    node: String,
    flushed_until: i64,
    seen_at: i64,
    stopped: bool,
}

fn marks(db: &dyn Conn) -> Result<Vec<Mark>, StateError> {
    db.query_map(
        "SELECT node, flushed_until, seen_at, stopped FROM audit_nodes ORDER BY node",
        crate::params![],
        |r| {
            Ok(Mark {
                node: r.get(0)?,
                flushed_until: r.get(1)?,
                seen_at: r.get(2)?,
                stopped: r.get::<i64>(3)? != 0,
            })
        },
    )
}

fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// Builds `record`'s report from every node's facts: waits up to `wait` for the nodes alive
/// since the job was created to flush past the report's cut-off, then tallies the job's rows.
/// Runs on a blocking thread.
pub fn build_shared(
    state: &State,
    record: &JobRecord,
    wait: Duration,
) -> Result<Value, StateError> {
    let deadline = std::time::Instant::now() + wait;
    let cutoff = state.with_db(db_now_ms)?;
    // The job's creation time is the creating node's clock: never later than the database's
    // now, so a node clock ahead cannot leave every node out (review 10, F2).
    let alive_since = record
        .created_at
        .saturating_mul(1000)
        .min(cutoff)
        .saturating_sub(ALIVE_SLACK_MS);
    let (relevant, behind) = loop {
        let all = state.with_db(marks)?;
        let relevant: Vec<Mark> = all
            .into_iter()
            .filter(|m| m.seen_at >= alive_since)
            .collect();
        let behind: Vec<Mark> = relevant
            .iter()
            // INVARIANT: strictly after: a watermark in the cut-off's own millisecond may have
            // been read before an event handed to the sink later in that millisecond.
            .filter(|m| !m.stopped && m.flushed_until <= cutoff)
            .cloned()
            .collect();
        if behind.is_empty() || std::time::Instant::now() >= deadline {
            break (relevant, behind);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut tally = Tally::new(record);
    let rows = state.with_db(|db| {
        db.query_map(
            "SELECT fact FROM job_request_facts WHERE job_id = ?1 ORDER BY event_time, node, request_id",
            crate::params![record.id],
            |r| r.get::<String>(0),
        )
    })?;
    for text in rows {
        let event: AuditEvent = serde_json::from_str(&text).map_err(|e| {
            StateError::Engine(format!(
                "a job report record of {} is damaged: {e}",
                record.id
            ))
        })?;
        tally.add(event);
    }
    let mut report = tally.finish();
    if let Some(o) = report.as_object_mut() {
        o.insert("source".into(), json!("nodes"));
        o.insert("cutoff".into(), json!(rfc3339_ms(cutoff)));
        o.insert("complete".into(), json!(behind.is_empty()));
        o.insert(
            "nodesChecked".into(),
            json!(relevant
                .iter()
                .map(|m| json!({"node": m.node, "flushedUntil": rfc3339_ms(m.flushed_until), "stopped": m.stopped}))
                .collect::<Vec<_>>()),
        );
        if !behind.is_empty() {
            o.insert(
                "incomplete".into(),
                json!(behind
                    .iter()
                    .map(|m| json!({
                        "node": m.node,
                        "flushedUntil": rfc3339_ms(m.flushed_until),
                        "lastSeen": rfc3339_ms(m.seen_at),
                        "reason": format!(
                            "node {} has recorded its job requests only up to {}, before this report's cut-off {}: requests it served after that are missing here (it is down, cut off from the database, or behind); they are in its own audit trail: keyhole audit query --job {} --data-dir DATA_DIR_OF_{}",
                            m.node, rfc3339_ms(m.flushed_until), rfc3339_ms(cutoff), record.id, m.node
                        ),
                    }))
                    .collect::<Vec<_>>()),
            );
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::Stage;
    use crate::jobs::report::tests::{event, record};

    fn state() -> (tempfile::TempDir, State) {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(dir.path(), &[1u8; 32], "123456789012").unwrap();
        (dir, s)
    }

    fn on(node: &str, mut e: AuditEvent, id: &str) -> AuditEvent {
        e.node = Some(node.into());
        e.request_id = id.into();
        e
    }

    #[test]
    fn a_report_covers_the_requests_of_every_node_and_names_them() {
        let (_d, s) = state();
        let now = chrono::Utc::now();
        let rec = record(now);
        let (a, b) = (JobFeed::default(), JobFeed::default());
        let mut get = event("GetObject", "s3:GetObject", "data", Some("a/x"), true);
        get.bytes_out = 10;
        a.push(&on("node-a", get, "R1"));
        let mut put = event("PutObject", "s3:PutObject", "out", Some("run/y"), true);
        put.bytes_in = 7;
        b.push(&on("node-b", put.clone(), "R2"));
        // Not kept: a write-ahead record, another principal's request.
        let mut ahead = put.clone();
        ahead.stage = Stage::Authorized;
        b.push(&on("node-b", ahead, "R3"));
        let mut root = put;
        root.user_identity.job = None;
        b.push(&on("node-b", root, "R4"));
        assert_eq!(flush(&s, &a, "node-a", false).unwrap(), 1);
        assert_eq!(flush(&s, &b, "node-b", false).unwrap(), 1);
        let r = build_shared(&s, &rec, Duration::from_millis(500)).unwrap();
        // Node b flushed before the cut-off: the report waits until both passed it.
        assert_eq!(r["complete"], false, "{r:#}");
        let names: Vec<&str> = r["incomplete"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["node"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["node-a", "node-b"], "both are named: {r:#}");
        assert!(r["incomplete"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("keyhole audit query --job r-abc123"));
        // Once both flush again (past the cut-off of the next report, taken meanwhile by
        // nobody), a report that waits sees both complete.
        let (s2, a2) = (std::sync::Arc::new(s), std::sync::Arc::new(a));
        let flusher = {
            let (s, a) = (s2.clone(), a2.clone());
            std::thread::spawn(move || {
                for _ in 0..20 {
                    std::thread::sleep(Duration::from_millis(20));
                    flush(&s, &a, "node-a", false).unwrap();
                    flush(&s, &b, "node-b", false).unwrap();
                }
            })
        };
        let r = build_shared(&s2, &rec, Duration::from_secs(2)).unwrap();
        flusher.join().unwrap();
        assert_eq!(r["complete"], true, "{r:#}");
        assert_eq!(r["source"], "nodes");
        assert_eq!(r["requests"], 2);
        assert_eq!(r["read"][0]["bytes"], 10);
        assert_eq!(r["written"][0]["bytes"], 7);
        assert_eq!(
            r["nodes"],
            json!([{"node": "node-a", "requests": 1}, {"node": "node-b", "requests": 1}])
        );
        // Writing the same facts again (a retried batch) adds nothing.
        a2.push(&on(
            "node-a",
            event("GetObject", "s3:GetObject", "data", Some("a/x"), true),
            "R1",
        ));
        flush(&s2, &a2, "node-a", false).unwrap();
        let count = s2
            .with_db(|db| db.count("SELECT count(*) FROM job_request_facts", crate::params![]))
            .unwrap();
        assert_eq!(count, 2);
    }

    /// Review 10, F2: a job created on a node whose clock runs ahead dates itself in the
    /// future; a node alive now is still asked (and a report without it is not complete).
    #[test]
    fn a_job_dated_by_a_clock_ahead_still_asks_the_live_nodes() {
        let (_d, s) = state();
        let rec = record(chrono::Utc::now() + chrono::Duration::seconds(90));
        let b = JobFeed::default();
        flush(&s, &b, "node-b", false).unwrap();
        // Node B is alive but has not flushed past the report's cut-off: the report waits
        // for it and then says so.
        let r = build_shared(&s, &rec, Duration::from_millis(300)).unwrap();
        assert_eq!(r["complete"], false, "{r:#}");
        assert_eq!(r["nodesChecked"].as_array().unwrap().len(), 1, "{r:#}");
    }

    /// Review 10, F4: a second process under a node id another running process flushes under
    /// is refused; a row left by a crashed process (not moving) is taken over.
    #[test]
    fn a_node_id_in_use_by_a_running_node_is_refused() {
        let (_d, s) = state();
        let s = std::sync::Arc::new(s);
        let running = JobFeed::default();
        flush(&s, &running, "node-a", false).unwrap();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flusher = {
            let (s, stop) = (s.clone(), stop.clone());
            std::thread::spawn(move || {
                let feed = JobFeed::default();
                while !stop.load(Ordering::SeqCst) {
                    flush(&s, &feed, "node-a", false).unwrap();
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        let e = register(&s, &JobFeed::default(), "node-a").unwrap_err();
        assert!(
            e.to_string().contains("in use by another running node"),
            "{e}"
        );
        stop.store(true, Ordering::SeqCst);
        flusher.join().unwrap();
        // The flusher is gone (a crash): its row stops moving, and a restart takes it over.
        register(&s, &JobFeed::default(), "node-a").unwrap();
    }

    #[test]
    fn a_stopped_node_is_not_waited_for_and_a_node_long_gone_is_not_asked() {
        let (_d, s) = state();
        let rec = record(chrono::Utc::now());
        let a = JobFeed::default();
        a.push(&on(
            "node-a",
            event("GetObject", "s3:GetObject", "data", Some("a/x"), true),
            "R1",
        ));
        flush(&s, &a, "node-a", true).unwrap();
        // A node last seen long before the job was created could not have served it.
        s.with_db(|db| {
            db.execute(
                "INSERT INTO audit_nodes (node, flushed_until, seen_at, stopped) VALUES ('old', 5, 5, 0)",
                crate::params![],
            )
        })
        .unwrap();
        let started = std::time::Instant::now();
        let r = build_shared(&s, &rec, Duration::from_secs(2)).unwrap();
        assert!(started.elapsed() < Duration::from_secs(1), "no wait");
        assert_eq!(r["complete"], true, "{r:#}");
        assert_eq!(r["requests"], 1);
        assert_eq!(r["nodesChecked"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn dropped_records_hold_the_watermark_so_reports_say_so() {
        let (_d, s) = state();
        let rec = record(chrono::Utc::now());
        let a = JobFeed::default();
        flush(&s, &a, "node-a", false).unwrap();
        let before = s.with_db(marks).unwrap();
        a.overflowed.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(5));
        flush(&s, &a, "node-a", false).unwrap();
        let after = s.with_db(marks).unwrap();
        assert_eq!(before[0].flushed_until, after[0].flushed_until);
        assert!(after[0].seen_at > before[0].seen_at);
        let r = build_shared(&s, &rec, Duration::from_millis(100)).unwrap();
        assert_eq!(r["complete"], false);
        assert_eq!(r["incomplete"][0]["node"], "node-a");
    }

    #[test]
    fn kept_records_are_trimmed_to_what_reports_read() {
        let mut e = event("GetObject", "s3:GetObject", "data", Some("a/x"), true);
        e.user_agent = Some("boto3".into());
        e.response_elements = Some(json!({"x": 1}));
        e.request_parameters
            .other
            .insert("roleArn".into(), json!("arn"));
        let f = fact_of(&e).unwrap();
        assert_eq!(f.job, "r-abc123");
        assert!(f.event.user_agent.is_none() && f.event.response_elements.is_none());
        assert!(f.event.request_parameters.other.is_empty());
        assert_eq!(f.event.request_parameters.key.as_deref(), Some("a/x"));
        assert_eq!(f.event.authorization.len(), 1);
    }
}
