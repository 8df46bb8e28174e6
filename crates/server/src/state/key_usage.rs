//! Key hygiene in the state database: when each long-term access key was last used (with the
//! service and region of that request), and the account's latest credential report.
//!
//! Uses are written in batches by [`crate::keys::Recorder`] (never once per request), as
//! "newest wins" upserts: an older use never replaces a newer one, so nodes sharing PostgreSQL
//! that flush in any order agree. Neither table is part of the snapshot: no request is decided
//! on them, so a write here touches nothing the snapshot holds and sends no change to the other
//! nodes (they read the tables when asked).

use std::collections::HashMap;

use super::{State, StateError};
use crate::params;

/// The tables (migration version 6).
pub(super) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS access_key_last_used (
        access_key_id TEXT PRIMARY KEY, used_at_ms BIGINT NOT NULL, service TEXT NOT NULL,
        region TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS credential_reports (
        singleton TEXT PRIMARY KEY, generated TEXT NOT NULL, generated_at BIGINT NOT NULL,
        content TEXT NOT NULL)",
];

/// One use of an access key: when (Unix milliseconds), and the service and region of the
/// request's SigV4 credential scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUse {
    /// Unix time in milliseconds.
    pub at_ms: i64,
    /// The scope's service (`s3`, `iam`, `sts`, ...).
    pub service: String,
    /// The scope's region.
    pub region: String,
}

impl KeyUse {
    /// The later of two uses (`other` when equal: either is right).
    pub fn newest(self, other: KeyUse) -> KeyUse {
        if other.at_ms >= self.at_ms {
            other
        } else {
            self
        }
    }
}

/// The stored credential report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReport {
    /// When it was generated (RFC 3339, seconds).
    pub generated: String,
    /// Unix seconds of `generated`.
    pub generated_at: i64,
    /// The CSV.
    pub content: String,
}

impl State {
    /// Records uses of access keys, newest wins: a row is replaced only by a later use. One
    /// transaction for the whole batch.
    pub fn record_key_uses(&self, uses: &[(String, KeyUse)]) -> Result<(), StateError> {
        if uses.is_empty() {
            return Ok(());
        }
        self.write_raw(|tx| {
            for (id, u) in uses {
                tx.execute(
                    "INSERT INTO access_key_last_used (access_key_id, used_at_ms, service, region)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (access_key_id) DO UPDATE SET used_at_ms = excluded.used_at_ms,
                     service = excluded.service, region = excluded.region
                     WHERE excluded.used_at_ms > access_key_last_used.used_at_ms",
                    params![id, u.at_ms, u.service, u.region],
                )?;
            }
            Ok(())
        })
    }

    /// The last recorded use of one key.
    pub fn key_last_used(&self, id: &str) -> Result<Option<KeyUse>, StateError> {
        self.with_db(|db| {
            db.query_opt(
                "SELECT used_at_ms, service, region FROM access_key_last_used WHERE access_key_id = ?1",
                params![id],
                |r| {
                    Ok(KeyUse {
                        at_ms: r.get(0)?,
                        service: r.get(1)?,
                        region: r.get(2)?,
                    })
                },
            )
        })
    }

    /// The last recorded use of every key.
    pub fn all_key_uses(&self) -> Result<HashMap<String, KeyUse>, StateError> {
        self.with_db(|db| {
            let rows = db.query_map(
                "SELECT access_key_id, used_at_ms, service, region FROM access_key_last_used",
                params![],
                |r| {
                    Ok((
                        r.get::<String>(0)?,
                        KeyUse {
                            at_ms: r.get(1)?,
                            service: r.get(2)?,
                            region: r.get(3)?,
                        },
                    ))
                },
            )?;
            Ok(rows.into_iter().collect())
        })
    }

    /// Every access key of every user: (user, key id, status, created), by user then creation.
    pub fn all_access_keys(&self) -> Result<Vec<(String, String, String, String)>, StateError> {
        self.with_db(|db| {
            db.query_map(
                "SELECT user_name, id, status, created FROM access_keys ORDER BY user_name, created, id",
                params![],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
        })
    }

    /// Stores the account's credential report, replacing the previous one.
    pub fn put_credential_report(&self, report: &StoredReport) -> Result<(), StateError> {
        self.write_raw(|tx| {
            tx.execute(
                "INSERT INTO credential_reports (singleton, generated, generated_at, content)
                 VALUES ('account', ?1, ?2, ?3)
                 ON CONFLICT (singleton) DO UPDATE SET generated = excluded.generated,
                 generated_at = excluded.generated_at, content = excluded.content",
                params![report.generated, report.generated_at, report.content],
            )?;
            Ok(())
        })
    }

    /// The account's latest credential report, if one was generated.
    pub fn credential_report(&self) -> Result<Option<StoredReport>, StateError> {
        self.with_db(|db| {
            db.query_opt(
                "SELECT generated, generated_at, content FROM credential_reports WHERE singleton = 'account'",
                params![],
                |r| {
                    Ok(StoredReport {
                        generated: r.get(0)?,
                        generated_at: r.get(1)?,
                        content: r.get(2)?,
                    })
                },
            )
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn used(at_ms: i64, service: &str) -> KeyUse {
        KeyUse {
            at_ms,
            service: service.into(),
            region: "us-east-1".into(),
        }
    }

    /// The checks both engines must pass (the PostgreSQL run is in `state/postgres.rs`'s tests).
    pub(crate) fn newest_use_wins_whatever_the_order_of_writes(s: &State) {
        assert_eq!(s.key_last_used("AKIAONE").unwrap(), None);
        s.record_key_uses(&[("AKIAONE".into(), used(2_000, "s3"))])
            .unwrap();
        // An older use flushed later (another node's) does not replace the newer one.
        s.record_key_uses(&[
            ("AKIAONE".into(), used(1_000, "iam")),
            ("AKIATWO".into(), used(500, "sts")),
        ])
        .unwrap();
        assert_eq!(s.key_last_used("AKIAONE").unwrap(), Some(used(2_000, "s3")));
        s.record_key_uses(&[("AKIAONE".into(), used(3_000, "iam"))])
            .unwrap();
        assert_eq!(
            s.key_last_used("AKIAONE").unwrap(),
            Some(used(3_000, "iam"))
        );
        let all = s.all_key_uses().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all.get("AKIATWO"), Some(&used(500, "sts")));
    }

    pub(crate) fn the_credential_report_is_stored_and_replaced(s: &State) {
        assert_eq!(s.credential_report().unwrap(), None);
        let first = StoredReport {
            generated: "2026-12-03T10:00:00Z".into(),
            generated_at: 1,
            content: "user,arn\n".into(),
        };
        s.put_credential_report(&first).unwrap();
        assert_eq!(s.credential_report().unwrap(), Some(first));
        let second = StoredReport {
            generated: "2026-12-03T15:00:00Z".into(),
            generated_at: 2,
            content: "user,arn\nalice,x\n".into(),
        };
        s.put_credential_report(&second).unwrap();
        assert_eq!(s.credential_report().unwrap(), Some(second));
    }

    #[test]
    fn sqlite_newest_use_wins_whatever_the_order_of_writes() {
        let (_dir, s) = super::super::tests::open();
        newest_use_wins_whatever_the_order_of_writes(&s);
    }

    #[test]
    fn sqlite_the_credential_report_is_stored_and_replaced() {
        let (_dir, s) = super::super::tests::open();
        the_credential_report_is_stored_and_replaced(&s);
    }

    #[test]
    fn deleting_a_key_forgets_its_last_use() {
        let (_dir, s) = super::super::tests::open();
        s.create_user("alice", "/").unwrap();
        let (k, _) = s.create_access_key("alice").unwrap();
        s.record_key_uses(&[(k.id.clone(), used(1_000, "s3"))])
            .unwrap();
        assert!(s.key_last_used(&k.id).unwrap().is_some());
        s.delete_access_key("alice", &k.id).unwrap();
        assert_eq!(s.key_last_used(&k.id).unwrap(), None);
        let keys = s.all_access_keys().unwrap();
        assert!(keys.is_empty());
    }
}
