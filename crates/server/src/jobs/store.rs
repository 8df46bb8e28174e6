//! Jobs and session revocations: rows in the state database (tables `jobs` and
//! `revoked_sessions`, portable SQL) and the in-memory view the request path reads.
//!
//! The request path never queries the database: [`JobStore::active`] and
//! [`JobStore::is_revoked`] read a cache that every change updates before it returns (and that
//! [`JobStore::reload`] rebuilds from the database at start), so a
//! finished job's or a revoked session's next request is refused (well within DESIGN.md's
//! one-second bound on a single node).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use keyhole_policy::{CompiledPolicy, PolicyKind};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::spec::ResolvedJob;
use crate::state::StateError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, job TEXT NOT NULL, policy TEXT NOT NULL,
    created_by TEXT NOT NULL, created_at BIGINT NOT NULL, end_at BIGINT NOT NULL,
    finished_at BIGINT, finished_by TEXT, token_hash TEXT NOT NULL, grant_info TEXT);
CREATE INDEX IF NOT EXISTS jobs_by_name ON jobs (name);
CREATE TABLE IF NOT EXISTS revoked_sessions (
    access_key_id TEXT PRIMARY KEY, expires_at BIGINT NOT NULL, revoked_at BIGINT NOT NULL);
";

fn damaged(why: String) -> StateError {
    StateError::Io(std::io::Error::other(why))
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// `NAME-xxxxxx`.
    pub id: String,
    /// The validated spec.
    pub job: ResolvedJob,
    /// The compiled session policy (JSON).
    pub policy: String,
    /// ARN of the principal that created it.
    pub created_by: String,
    /// Its creator by unique id, its role by unique id and its CreateJob context
    /// ([`super::grant`]); `None` only for jobs of earlier releases, whose sessions are refused.
    pub grant: Option<super::grant::JobGrant>,
    /// Creation time (Unix seconds).
    pub created_at: i64,
    /// When it was finished (Unix seconds), if it was.
    pub finished_at: Option<i64>,
    /// ARN of the principal that finished it.
    pub finished_by: Option<String>,
    /// SHA-256 (hex) of the credential-endpoint bearer token; the token itself is never stored.
    pub token_hash: String,
}

impl JobRecord {
    /// Why the job can no longer act for its creator, if it cannot: the temporary credentials
    /// that created it expired or were revoked ([`super::grant::JobCreator::ended`]).
    pub fn creator_ended(&self, jobs: &JobStore, now: i64) -> Option<String> {
        self.grant.as_ref()?.creator.ended(jobs, now)
    }

    /// `pending`, `running`, `ended` (window over) or `finished`, at `now` (Unix seconds).
    pub fn state(&self, now: i64) -> &'static str {
        if self.finished_at.is_some() {
            "finished"
        } else if now >= self.job.end.timestamp() {
            "ended"
        } else if now < self.job.start.timestamp() {
            "pending"
        } else {
            "running"
        }
    }
}

/// An unfinished job as requests see it, with its policy compiled once.
#[derive(Debug)]
pub struct JobEntry {
    /// The record.
    pub record: JobRecord,
    /// The job policy as the identity policy of a role-less job's sessions.
    pub as_identity: Arc<Vec<CompiledPolicy>>,
    /// The job policy as the session policy of a role-capped job's sessions.
    pub as_session: Arc<CompiledPolicy>,
    /// The only policy of the job's credentials token at the container-credentials endpoint:
    /// `keyhole:GetJobCredentials`, from the job's source addresses.
    pub credential_policy: Arc<Vec<CompiledPolicy>>,
}

#[derive(Debug, Default, Clone)]
struct Cache {
    active: HashMap<String, Arc<JobEntry>>,
    revoked: HashSet<String>,
}

/// Jobs and revocations.
#[derive(Debug)]
pub struct JobStore {
    db: Mutex<Connection>,
    cache: RwLock<Arc<Cache>>,
}

fn compile(record: &JobRecord) -> Result<JobEntry, StateError> {
    let name = format!("job {}", record.id);
    let identity = CompiledPolicy::from_json(&record.policy, PolicyKind::Identity)
        .map_err(|e| damaged(format!("job {}: {e}", record.id)))?
        .with_name(name.clone());
    let session = CompiledPolicy::from_json(&record.policy, PolicyKind::Session)
        .map_err(|e| damaged(format!("job {}: {e}", record.id)))?
        .with_name(name.clone());
    let credentials = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "JobCredentialsFromItsAddressesInItsWindow",
            "Effect": "Allow",
            "Action": "keyhole:GetJobCredentials",
            "Resource": "*",
            "Condition": {
                "IpAddress": {"aws:SourceIp": record.job.source_ip},
                "DateLessThan": {"aws:CurrentTime": super::spec::rfc3339(record.job.end)},
            },
        }],
    })
    .to_string();
    let credential_policy = CompiledPolicy::from_json(&credentials, PolicyKind::Identity)
        .map_err(|e| damaged(format!("job {}: {e}", record.id)))?
        .with_name(format!("credentials token of job {}", record.id));
    Ok(JobEntry {
        record: record.clone(),
        as_identity: Arc::new(vec![identity]),
        as_session: Arc::new(session),
        credential_policy: Arc::new(vec![credential_policy]),
    })
}

/// A `jobs` row: id, job, policy, created_by, created_at, finished_at, finished_by, token_hash,
/// grant_info.
type Row = (
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
    String,
    Option<String>,
);

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

const COLUMNS: &str =
    "id, job, policy, created_by, created_at, finished_at, finished_by, token_hash, grant_info";

impl JobStore {
    /// Opens the job tables in the state database under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<JobStore, StateError> {
        let conn = Connection::open(data_dir.join(crate::state::STATE_DB_FILE))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        // Job tables of earlier releases have no `grant_info` column (a failed SELECT is the
        // portable "has column" test).
        if conn.prepare("SELECT grant_info FROM jobs LIMIT 0").is_err() {
            conn.execute("ALTER TABLE jobs ADD COLUMN grant_info TEXT", [])?;
        }
        let store = JobStore {
            db: Mutex::new(conn),
            cache: RwLock::new(Arc::default()),
        };
        store.reload(chrono::Utc::now().timestamp())?;
        Ok(store)
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        match self.db.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn cache(&self) -> Arc<Cache> {
        match self.cache.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn decode(raw: Row) -> Result<JobRecord, StateError> {
        let (id, job, policy, created_by, created_at, finished_at, finished_by, token_hash, grant) =
            raw;
        let job = serde_json::from_str(&job).map_err(|e| damaged(format!("job {id}: {e}")))?;
        let grant = grant
            .map(|o| serde_json::from_str(&o))
            .transpose()
            .map_err(|e| damaged(format!("job {id}: grant: {e}")))?;
        Ok(JobRecord {
            id,
            job,
            policy,
            created_by,
            grant,
            created_at,
            finished_at,
            finished_by,
            token_hash,
        })
    }

    /// Rebuilds the cache: unfinished jobs whose window has not ended, and revocations of
    /// sessions that have not expired.
    pub fn reload(&self, now: i64) -> Result<(), StateError> {
        let (records, revoked) = {
            let db = self.db();
            let mut stmt = db.prepare(&format!(
                "SELECT {COLUMNS} FROM jobs WHERE finished_at IS NULL AND end_at > ?1"
            ))?;
            let raws = stmt
                .query_map(params![now], row)?
                .collect::<Result<Vec<_>, _>>()?;
            let mut stmt =
                db.prepare("SELECT access_key_id FROM revoked_sessions WHERE expires_at > ?1")?;
            let revoked = stmt
                .query_map(params![now], |r| r.get::<_, String>(0))?
                .collect::<Result<HashSet<_>, _>>()?;
            (raws, revoked)
        };
        let mut active = HashMap::new();
        for raw in records {
            let record = Self::decode(raw)?;
            active.insert(record.id.clone(), Arc::new(compile(&record)?));
        }
        let fresh = Arc::new(Cache { active, revoked });
        match self.cache.write() {
            Ok(mut c) => *c = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }

    /// Applies one change to the cache under its write lock (so concurrent changes are not lost);
    /// requests keep reading the previous cache until the new one replaces it.
    fn update_cache(&self, change: impl FnOnce(&mut Cache)) {
        let mut guard = match self.cache.write() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut next = Cache::clone(&guard);
        change(&mut next);
        *guard = Arc::new(next);
    }

    /// The unfinished job `id` (request path: memory only).
    pub fn active(&self, id: &str) -> Option<Arc<JobEntry>> {
        self.cache().active.get(id).cloned()
    }

    /// Whether the session with this access key id was revoked (request path: memory only).
    pub fn is_revoked(&self, access_key_id: &str) -> bool {
        self.cache().revoked.contains(access_key_id)
    }

    /// Stores a new job. Fails with `EntityAlreadyExists` if an unfinished job whose window has
    /// not ended has the same name.
    pub fn create(&self, record: &JobRecord, now: i64) -> Result<(), StateError> {
        // Compile first: a job whose policy does not compile is never stored.
        let entry = Arc::new(compile(record)?);
        let job = serde_json::to_string(&record.job).map_err(|e| damaged(e.to_string()))?;
        let grant = record
            .grant
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| damaged(e.to_string()))?;
        {
            let mut db = self.db();
            let tx = db.transaction()?;
            let clash: Option<String> = tx
                .query_row(
                    "SELECT id FROM jobs WHERE name = ?1 AND finished_at IS NULL AND end_at > ?2",
                    params![record.job.name, now],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(other) = clash {
                // The other job's id is not named: it may be another principal's.
                let _ = other;
                return Err(StateError::EntityAlreadyExists(format!(
                    "A job named {} is already running; finish it or choose another name (a unique suffix such as the scheduler's job id helps)",
                    record.job.name
                )));
            }
            tx.execute(
                "INSERT INTO jobs (id, name, job, policy, created_by, created_at, end_at, finished_at, finished_by, token_hash, grant_info) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, NULL, ?8, ?9)",
                params![
                    record.id,
                    record.job.name,
                    job,
                    record.policy,
                    record.created_by,
                    record.created_at,
                    record.job.end.timestamp(),
                    record.token_hash,
                    grant
                ],
            )?;
            tx.commit()?;
        }
        self.update_cache(|c| {
            // Jobs whose window has ended are dropped on the way (their sessions expired with it).
            c.active.retain(|_, e| e.record.job.end.timestamp() > now);
            c.active.insert(record.id.clone(), entry);
        });
        Ok(())
    }

    /// The job `id`, finished or not.
    pub fn get(&self, id: &str) -> Result<JobRecord, StateError> {
        let raw = self
            .db()
            .query_row(
                &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
                params![id],
                row,
            )
            .optional()?;
        match raw {
            Some(raw) => Self::decode(raw),
            None => Err(StateError::NoSuchEntity(format!(
                "The job with id {id} cannot be found."
            ))),
        }
    }

    /// Every job, newest first.
    pub fn list(&self) -> Result<Vec<JobRecord>, StateError> {
        let raws = {
            let db = self.db();
            let mut stmt = db.prepare(&format!(
                "SELECT {COLUMNS} FROM jobs ORDER BY created_at DESC, id"
            ))?;
            let raws = stmt.query_map([], row)?.collect::<Result<Vec<_>, _>>()?;
            raws
        };
        raws.into_iter().map(Self::decode).collect()
    }

    /// Finishes the job: every session it issued is refused from now on. Finishing a finished
    /// job changes nothing and returns it as it is.
    pub fn finish(&self, id: &str, by: &str, now: i64) -> Result<JobRecord, StateError> {
        let changed = self.db().execute(
            "UPDATE jobs SET finished_at = ?2, finished_by = ?3 WHERE id = ?1 AND finished_at IS NULL",
            params![id, now, by],
        )?;
        if changed > 0 {
            self.update_cache(|c| {
                c.active.remove(id);
            });
        }
        self.get(id)
    }

    /// Revokes one session (its access key id) until it would have expired anyway.
    pub fn revoke_session(
        &self,
        access_key_id: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StateError> {
        self.db().execute(
            "INSERT INTO revoked_sessions (access_key_id, expires_at, revoked_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (access_key_id) DO UPDATE SET expires_at = excluded.expires_at",
            params![access_key_id, expires_at, now],
        )?;
        self.update_cache(|c| {
            c.revoked.insert(access_key_id.to_owned());
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::spec::JobSpec;

    fn record(id: &str, name: &str, now: chrono::DateTime<chrono::Utc>) -> JobRecord {
        let job = JobSpec {
            name: name.into(),
            read: vec!["s3://data-bucket/ds/".into()],
            write: vec!["s3://out-bucket/run/".into()],
            duration: Some("1h".into()),
            source_ip: vec!["127.0.0.1".into()],
            ..JobSpec::default()
        }
        .resolve(now, None)
        .unwrap();
        JobRecord {
            id: id.into(),
            policy: job.policy().to_string(),
            job,
            created_by: "arn:aws:iam::123456789012:user/u".into(),
            grant: None,
            created_at: now.timestamp(),
            finished_at: None,
            finished_by: None,
            token_hash: "00".into(),
        }
    }

    #[test]
    fn jobs_are_created_found_and_finished() {
        let dir = tempfile::tempdir().unwrap();
        let store = JobStore::open(dir.path()).unwrap();
        let now = chrono::Utc::now();
        let t = now.timestamp();
        store.create(&record("j-1", "j", now), t).unwrap();
        assert!(store.active("j-1").is_some());
        assert_eq!(store.get("j-1").unwrap().state(t), "running");
        let clash = store.create(&record("j-2", "j", now), t);
        assert!(
            matches!(clash, Err(StateError::EntityAlreadyExists(_))),
            "{clash:?}"
        );
        let done = store.finish("j-1", "arn:x", t).unwrap();
        assert_eq!(done.state(t), "finished");
        assert!(store.active("j-1").is_none(), "finishing revokes at once");
        store.create(&record("j-2", "j", now), t).unwrap();
        assert_eq!(store.list().unwrap().len(), 2);
        assert!(matches!(
            store.get("nope"),
            Err(StateError::NoSuchEntity(_))
        ));
        // Reopening sees the same (durable) state.
        drop(store);
        let store = JobStore::open(dir.path()).unwrap();
        assert!(store.active("j-1").is_none() && store.active("j-2").is_some());
        // After its window, a job is not active.
        store.reload(t + 3601).unwrap();
        assert!(store.active("j-2").is_none());
    }

    #[test]
    fn revoked_sessions_are_refused_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = JobStore::open(dir.path()).unwrap();
        store.revoke_session("ASIAX", 200, 100).unwrap();
        assert!(store.is_revoked("ASIAX") && !store.is_revoked("ASIAY"));
        store.reload(200).unwrap();
        assert!(!store.is_revoked("ASIAX"), "forgotten once expired");
    }
}
