//! Jobs and session revocations: their repository (tables `jobs` and `revoked_sessions` of the
//! state database, portable SQL) and the view the request path reads.
//!
//! The request path never queries the database: [`JobStore::active`], [`JobStore::meta`] and
//! [`JobStore::is_revoked`] read the state's snapshot, which every change updates before it
//! returns (and, with a shared engine, every other node within a second), so a finished job's
//! or a revoked session's next request is refused.

use std::sync::Arc;

use keyhole_policy::{CompiledPolicy, PolicyKind};
use serde::{Deserialize, Serialize};

use super::spec::ResolvedJob;
use crate::state::db::{Conn, Touched};
use crate::state::{State, StateError};

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

/// What a request needs of any job, active or not: whose token it is, and who created it.
#[derive(Debug, Clone)]
pub struct JobMeta {
    /// SHA-256 (hex) of the job's credentials token.
    pub token_hash: String,
    /// Its creator ([`super::grant`]).
    pub grant: Option<super::grant::JobGrant>,
}

impl JobMeta {
    /// The meta of a record.
    pub fn of(record: &JobRecord) -> JobMeta {
        JobMeta {
            token_hash: record.token_hash.clone(),
            grant: record.grant.clone(),
        }
    }
}

/// Jobs and revocations.
#[derive(Debug)]
pub struct JobStore {
    state: Arc<State>,
}

/// Compiles a job's policies for the request path.
pub(crate) fn compile(record: &JobRecord) -> Result<JobEntry, StateError> {
    let name = format!("job {}", record.id);
    let identity = CompiledPolicy::from_json(&record.policy, PolicyKind::Identity)
        .map_err(|e| damaged(format!("job {}: {e}", record.id)))?
        .with_name(name.clone())
        .with_digest(crate::state::documents::digest(&record.policy));
    let session = CompiledPolicy::from_json(&record.policy, PolicyKind::Session)
        .map_err(|e| damaged(format!("job {}: {e}", record.id)))?
        .with_name(name.clone())
        .with_digest(crate::state::documents::digest(&record.policy));
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

fn row(r: &crate::state::db::Row) -> Result<Row, StateError> {
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

/// Every job (or one), as stored.
pub(crate) fn load(db: &dyn Conn, one: Option<&str>) -> Result<Vec<JobRecord>, StateError> {
    let raws = match one {
        Some(id) => db.query_map(
            &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
            crate::params![id],
            row,
        )?,
        None => db.query_map(
            &format!("SELECT {COLUMNS} FROM jobs ORDER BY created_at DESC, id"),
            crate::params![],
            row,
        )?,
    };
    raws.into_iter().map(decode).collect()
}

impl JobStore {
    /// The jobs of `state`'s database.
    pub fn new(state: Arc<State>) -> JobStore {
        JobStore { state }
    }

    /// The unfinished job `id` (request path: memory only).
    pub fn active(&self, id: &str) -> Option<Arc<JobEntry>> {
        self.state.snapshot().jobs.get(id).cloned()
    }

    /// Whose token job `id` has and who created it, finished or not (request path: memory
    /// only).
    pub fn meta(&self, id: &str) -> Option<Arc<JobMeta>> {
        self.state.snapshot().job_index.get(id).cloned()
    }

    /// Whether the session with this access key id was revoked (request path: memory only).
    pub fn is_revoked(&self, access_key_id: &str) -> bool {
        self.state.snapshot().revoked.contains_key(access_key_id)
    }

    /// Stores a new job. Fails with `EntityAlreadyExists` if an unfinished job whose window has
    /// not ended has the same name.
    pub fn create(&self, record: &JobRecord, now: i64) -> Result<(), StateError> {
        // Compile first: a job whose policy does not compile is never stored.
        compile(record)?;
        let job = serde_json::to_string(&record.job).map_err(|e| damaged(e.to_string()))?;
        let grant = record
            .grant
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| damaged(e.to_string()))?;
        self.state.change(|tx| {
            let clash = tx.query_opt(
                "SELECT id FROM jobs WHERE name = ?1 AND finished_at IS NULL AND end_at > ?2",
                crate::params![record.job.name, now],
                |r| r.get::<String>(0),
            )?;
            // The other job's id is not named: it may be another principal's.
            if clash.is_some() {
                return Err(StateError::EntityAlreadyExists(format!(
                    "A job named {} is already running; finish it or choose another name (a unique suffix such as the scheduler's job id helps)",
                    record.job.name
                )));
            }
            tx.execute(
                "INSERT INTO jobs (id, name, job, policy, created_by, created_at, end_at, finished_at, finished_by, token_hash, grant_info) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, NULL, ?8, ?9)",
                crate::params![
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
            crate::state::documents::remember(tx, &record.policy)?;
            tx.touch(Touched::Job(record.id.clone()));
            Ok(())
        })
    }

    /// The job `id`, finished or not.
    pub fn get(&self, id: &str) -> Result<JobRecord, StateError> {
        self.state
            .with_db(|db| load(db, Some(id)))?
            .into_iter()
            .next()
            .ok_or_else(|| {
                StateError::NoSuchEntity(format!("The job with id {id} cannot be found."))
            })
    }

    /// Every job, newest first.
    pub fn list(&self) -> Result<Vec<JobRecord>, StateError> {
        self.state.with_db(|db| load(db, None))
    }

    /// Finishes the job: every session it issued is refused from now on. Finishing a finished
    /// job changes nothing and returns it as it is.
    pub fn finish(&self, id: &str, by: &str, now: i64) -> Result<JobRecord, StateError> {
        self.state.change(|tx| {
            let changed = tx.execute(
                "UPDATE jobs SET finished_at = ?2, finished_by = ?3 WHERE id = ?1 AND finished_at IS NULL",
                crate::params![id, now, by],
            )?;
            if changed > 0 {
                tx.touch(Touched::Job(id.to_owned()));
            }
            Ok(())
        })?;
        self.get(id)
    }

    /// Revokes one session (its access key id) until it would have expired anyway.
    pub fn revoke_session(
        &self,
        access_key_id: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StateError> {
        self.state.change(|tx| {
            tx.execute(
                "INSERT INTO revoked_sessions (access_key_id, expires_at, revoked_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (access_key_id) DO UPDATE SET expires_at = excluded.expires_at",
                crate::params![access_key_id, expires_at, now],
            )?;
            tx.touch(Touched::Revocation(access_key_id.to_owned()));
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::spec::JobSpec;

    fn open(dir: &std::path::Path) -> JobStore {
        JobStore::new(Arc::new(
            State::open(dir, &[1u8; 32], "123456789012").unwrap(),
        ))
    }

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
        let store = open(dir.path());
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
        let store = open(dir.path());
        assert!(store.active("j-1").is_none() && store.active("j-2").is_some());
        assert_eq!(
            store.meta("j-1").unwrap().token_hash,
            "00",
            "finished jobs stay known"
        );
        // After its window, a job is not active.
        store.state.reload_at(t + 3601).unwrap();
        assert!(store.active("j-2").is_none());
    }

    #[test]
    fn revoked_sessions_are_refused_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.revoke_session("ASIAX", 200, 100).unwrap();
        assert!(store.is_revoked("ASIAX") && !store.is_revoked("ASIAY"));
        store.state.reload_at(200).unwrap();
        assert!(!store.is_revoked("ASIAX"), "forgotten once expired");
    }
}
