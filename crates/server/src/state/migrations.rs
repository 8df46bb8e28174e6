//! The one list of schema migrations, applied in order at every start.
//!
//! `schema_migrations` records each applied version. A database is brought from whatever it
//! holds to [`LATEST`], one migration per write transaction (so a failed step leaves the
//! database at the version before it); a database that a newer release migrated further is
//! refused rather than guessed at.
//!
//! Version 1 is the schema every release before the versioned list created (state, principal
//! bindings, jobs and revocations), with the in-place upgrades those releases ran at every start
//! (policy version columns, job grants, bindings of documents stored before bindings existed);
//! on a database that already has those tables it only adds what is missing.

use super::db::{Conn, Dialect, Tx};
use super::StateError;

/// One migration: brings the schema from the version before it to its own, inside the write
/// transaction it is given; the second argument is the account id.
type Migration = fn(&Tx<'_>, &str) -> Result<(), StateError>;

/// Every migration, in order: entry `i` brings the schema to version `i + 1`. Append only: a
/// released migration is never edited, since databases out there already ran it.
const MIGRATIONS: &[Migration] = &[v1, v2, v3, v4, v5, v6, v7, v8];

/// The newest schema version this release knows.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

/// The tables of version 1, in portable SQL (`BIGINT` is SQLite's INTEGER).
const V1_TABLES: &str = "
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE, path TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS access_keys (
    id TEXT PRIMARY KEY, user_name TEXT NOT NULL, secret_sealed TEXT NOT NULL,
    status TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS user_policies (
    user_name TEXT NOT NULL, policy_name TEXT NOT NULL, document TEXT NOT NULL,
    PRIMARY KEY (user_name, policy_name));
CREATE TABLE IF NOT EXISTS managed_policies (
    name TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE, path TEXT NOT NULL, description TEXT NOT NULL,
    document TEXT NOT NULL, created TEXT NOT NULL,
    default_version BIGINT NOT NULL DEFAULT 1, last_version BIGINT NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS policy_versions (
    policy_name TEXT NOT NULL, version BIGINT NOT NULL, document TEXT NOT NULL,
    created TEXT NOT NULL, PRIMARY KEY (policy_name, version));
CREATE TABLE IF NOT EXISTS user_attachments (
    user_name TEXT NOT NULL, policy_name TEXT NOT NULL, PRIMARY KEY (user_name, policy_name));
CREATE TABLE IF NOT EXISTS roles (
    name TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE, path TEXT NOT NULL, trust_policy TEXT NOT NULL,
    max_session_secs BIGINT NOT NULL, description TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS role_policies (
    role_name TEXT NOT NULL, policy_name TEXT NOT NULL, document TEXT NOT NULL,
    PRIMARY KEY (role_name, policy_name));
CREATE TABLE IF NOT EXISTS principal_tags (
    kind TEXT NOT NULL, name TEXT NOT NULL, tag_key TEXT NOT NULL, tag_value TEXT NOT NULL,
    PRIMARY KEY (kind, name, tag_key));
CREATE TABLE IF NOT EXISTS permissions_boundaries (
    kind TEXT NOT NULL, name TEXT NOT NULL, policy_name TEXT NOT NULL, PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS bucket_policies (bucket TEXT PRIMARY KEY, document TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS public_access_blocks (scope TEXT PRIMARY KEY, config TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS role_attachments (
    role_name TEXT NOT NULL, policy_name TEXT NOT NULL, PRIMARY KEY (role_name, policy_name));
CREATE TABLE IF NOT EXISTS iam_groups (
    name TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE, path TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS group_members (
    group_name TEXT NOT NULL, user_name TEXT NOT NULL, PRIMARY KEY (group_name, user_name));
CREATE TABLE IF NOT EXISTS group_policies (
    group_name TEXT NOT NULL, policy_name TEXT NOT NULL, document TEXT NOT NULL,
    PRIMARY KEY (group_name, policy_name));
CREATE TABLE IF NOT EXISTS group_attachments (
    group_name TEXT NOT NULL, policy_name TEXT NOT NULL, PRIMARY KEY (group_name, policy_name));
CREATE TABLE IF NOT EXISTS issued_ids (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS principal_bindings (
    scope TEXT NOT NULL, arn TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (scope, arn));
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, job TEXT NOT NULL, policy TEXT NOT NULL,
    created_by TEXT NOT NULL, created_at BIGINT NOT NULL, end_at BIGINT NOT NULL,
    finished_at BIGINT, finished_by TEXT, token_hash TEXT NOT NULL, grant_info TEXT);
CREATE INDEX IF NOT EXISTS jobs_by_name ON jobs (name);
CREATE TABLE IF NOT EXISTS revoked_sessions (
    access_key_id TEXT PRIMARY KEY, expires_at BIGINT NOT NULL, revoked_at BIGINT NOT NULL);
";

/// Splits a script into statements (none of ours has `;` inside).
fn statements(script: &str) -> impl Iterator<Item = &str> {
    script.split(';').map(str::trim).filter(|s| !s.is_empty())
}

/// Whether `table` has `column` (SQLite only: files of earlier releases). A SELECT of a missing
/// column fails to prepare; in SQLite that does not abort the transaction.
fn has_column(db: &dyn Conn, table: &str, column: &str) -> bool {
    db.query(
        &format!("SELECT {column} FROM {table} LIMIT 0"),
        crate::params![],
    )
    .is_ok()
}

fn v1(tx: &Tx<'_>, account: &str) -> Result<(), StateError> {
    for s in statements(V1_TABLES) {
        tx.execute(s, crate::params![])?;
    }
    // Files from before policy versions and job grants (SQLite only: a PostgreSQL database
    // starts at version 1, whose tables already have them; and there a failed SELECT would
    // abort the transaction).
    if tx.dialect() == Dialect::Postgres {
        return Ok(());
    }
    for column in ["default_version", "last_version"] {
        if !has_column(tx, "managed_policies", column) {
            tx.execute(
                &format!(
                    "ALTER TABLE managed_policies ADD COLUMN {column} INTEGER NOT NULL DEFAULT 1"
                ),
                crate::params![],
            )?;
        }
    }
    if !has_column(tx, "jobs", "grant_info") {
        tx.execute(
            "ALTER TABLE jobs ADD COLUMN grant_info TEXT",
            crate::params![],
        )?;
    }
    // Every policy without versions gets its document as `v1`.
    tx.execute(
        "INSERT INTO policy_versions (policy_name, version, document, created)
         SELECT m.name, 1, m.document, m.created FROM managed_policies m
         WHERE NOT EXISTS (SELECT 1 FROM policy_versions v WHERE v.policy_name = m.name)",
        crate::params![],
    )?;
    super::principals::bind_unbound(tx, account)
}

/// Version 2: IAM OIDC providers (`AssumeRoleWithWebIdentity`).
fn v2(tx: &Tx<'_>, _account: &str) -> Result<(), StateError> {
    tx.execute(super::oidc::SCHEMA, crate::params![])?;
    Ok(())
}

/// Version 3: several nodes on one database. The change log other nodes follow
/// ([`super::changes`]: one row per committed change, what it touched) and the shared account
/// ([`super::shared`]: id, root access key, root secret sealed under the master key). Both
/// engines get the tables; only PostgreSQL writes them.
fn v3(tx: &Tx<'_>, _account: &str) -> Result<(), StateError> {
    let seq = match tx.dialect() {
        Dialect::Sqlite => "seq INTEGER PRIMARY KEY AUTOINCREMENT",
        Dialect::Postgres => "seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    };
    tx.execute(
        &format!(
            "CREATE TABLE IF NOT EXISTS state_changes ({seq}, node TEXT NOT NULL, touched TEXT NOT NULL, at BIGINT NOT NULL)"
        ),
        crate::params![],
    )?;
    tx.execute(super::shared::SCHEMA, crate::params![])?;
    Ok(())
}

/// Version 4: job reports across nodes ([`crate::jobs::facts`]): each node's record of its job
/// sessions' requests (`job_request_facts`) and how far each node has written them
/// (`audit_nodes`). Both engines get the tables; only PostgreSQL writes them.
fn v4(tx: &Tx<'_>, _account: &str) -> Result<(), StateError> {
    for statement in crate::jobs::facts::SCHEMA {
        tx.execute(statement, crate::params![])?;
    }
    Ok(())
}

/// Version 5: buckets' CORS configurations (PutBucketCors), kept beside their bucket policies
/// so that every node serves the same preflight answers; the document is stored as
/// GetBucketCors answers it.
fn v5(tx: &Tx<'_>, _account: &str) -> Result<(), StateError> {
    tx.execute(
        "CREATE TABLE IF NOT EXISTS bucket_cors (bucket TEXT PRIMARY KEY, document TEXT NOT NULL)",
        crate::params![],
    )?;
    Ok(())
}

/// Version 6: key hygiene ([`super::key_usage`]): each access key's last use (time, service,
/// region) and the account's latest credential report, in the database so every node sees them.
fn v6(tx: &Tx<'_>, _account: &str) -> Result<(), StateError> {
    for statement in super::key_usage::SCHEMA {
        tx.execute(statement, crate::params![])?;
    }
    Ok(())
}

/// Version 7: buckets' tag sets (PutBucketTagging), kept beside their bucket policies so that
/// every node answers the same tags ([`super::bucket_tags`]).
fn v7(tx: &Tx<'_>, _account: &str) -> Result<(), StateError> {
    tx.execute(
        "CREATE TABLE IF NOT EXISTS bucket_tags (bucket TEXT PRIMARY KEY, tags TEXT NOT NULL)",
        crate::params![],
    )?;
    Ok(())
}

/// Version 8: the history of policy documents by digest ([`super::documents`]), with every
/// document stored before it, so `keyhole audit explain` can rebuild the policies a recorded
/// decision was made with.
fn v8(tx: &Tx<'_>, _account: &str) -> Result<(), StateError> {
    tx.execute(super::documents::SCHEMA, crate::params![])?;
    super::documents::remember_all(tx)?;
    Ok(())
}

/// The schema version the database is at (0: none recorded).
pub fn current(db: &dyn Conn) -> Result<i64, StateError> {
    db.query_one(
        "SELECT coalesce(max(version), 0) FROM schema_migrations",
        crate::params![],
        |r| r.get(0),
    )
}

/// Brings `state`'s database to [`LATEST`], one migration per write transaction.
pub(super) fn migrate(state: &super::State) -> Result<(), StateError> {
    let account = state.account_id.as_str();
    loop {
        let more = state.write_raw(|tx| {
            tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)",
                crate::params![],
            )?;
            let at = current(tx)?;
            if at > LATEST {
                return Err(StateError::Engine(format!(
                    "the state database is at schema version {at}, newer than this release knows ({LATEST}): a newer keyhole migrated it; run that release (or restore a backup taken before the upgrade)"
                )));
            }
            if at == LATEST {
                return Ok(false);
            }
            let next = at + 1;
            let step = usize::try_from(at)
                .ok()
                .and_then(|i| MIGRATIONS.get(i))
                .ok_or_else(|| StateError::Engine(format!("no migration to version {next}")))?;
            step(tx, account)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                crate::params![next, super::now()],
            )?;
            Ok(next < LATEST)
        })?;
        if !more {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::store::JobStore;
    use crate::state::{PrincipalKind, State, STATE_DB_FILE};
    use std::sync::Arc;

    const ACCOUNT: &str = "123456789012";
    const READ: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;

    /// The schema of every release before the versioned list (each distinct one, from the first
    /// IAM release to the last unversioned main), as that release created it.
    const EARLIER_SCHEMAS: &[(&str, &str)] = &[
        (
            "54a19bb",
            include_str!("migrations/fixtures/schema-54a19bb.sql"),
        ),
        (
            "241b882",
            include_str!("migrations/fixtures/schema-241b882.sql"),
        ),
        (
            "77fa687",
            include_str!("migrations/fixtures/schema-77fa687.sql"),
        ),
        (
            "408b83c",
            include_str!("migrations/fixtures/schema-408b83c.sql"),
        ),
        (
            "9a3c533",
            include_str!("migrations/fixtures/schema-9a3c533.sql"),
        ),
        (
            "3edce42",
            include_str!("migrations/fixtures/schema-3edce42.sql"),
        ),
        (
            "e82cff3",
            include_str!("migrations/fixtures/schema-e82cff3.sql"),
        ),
        (
            "fdd04f8",
            include_str!("migrations/fixtures/schema-fdd04f8.sql"),
        ),
        (
            "38d6a68",
            include_str!("migrations/fixtures/schema-38d6a68.sql"),
        ),
    ];

    fn version_rows(dir: &std::path::Path) -> Vec<i64> {
        let conn = rusqlite::Connection::open(dir.join(STATE_DB_FILE)).unwrap();
        let mut stmt = conn
            .prepare("SELECT version FROM schema_migrations ORDER BY version")
            .unwrap();
        let rows = stmt.query_map([], |r| r.get(0)).unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    fn tables(dir: &std::path::Path) -> Vec<String> {
        let conn = rusqlite::Connection::open(dir.join(STATE_DB_FILE)).unwrap();
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        let rows = stmt.query_map([], |r| r.get(0)).unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn a_new_database_is_created_at_the_latest_version_and_reopens_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        State::open(dir.path(), &[1u8; 32], ACCOUNT).unwrap();
        assert_eq!(version_rows(dir.path()), (1..=LATEST).collect::<Vec<_>>());
        let before = tables(dir.path());
        State::open(dir.path(), &[1u8; 32], ACCOUNT).unwrap();
        assert_eq!(version_rows(dir.path()), (1..=LATEST).collect::<Vec<_>>());
        assert_eq!(tables(dir.path()), before);
    }

    /// A database at version 1 (the first versioned release) gets version 2's OIDC providers
    /// table on open, and keeps what it held.
    #[test]
    fn a_version_1_database_is_brought_to_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        State::open(dir.path(), &[1u8; 32], ACCOUNT)
            .unwrap()
            .create_user("u", "/")
            .unwrap();
        {
            let conn = rusqlite::Connection::open(dir.path().join(STATE_DB_FILE)).unwrap();
            conn.execute_batch(
                "DROP TABLE oidc_providers; DROP TABLE state_changes; DROP TABLE shared_account; DELETE FROM schema_migrations WHERE version > 1;",
            )
            .unwrap();
        }
        assert_eq!(version_rows(dir.path()), vec![1]);
        let s = State::open(dir.path(), &[1u8; 32], ACCOUNT).unwrap();
        assert_eq!(version_rows(dir.path()), (1..=LATEST).collect::<Vec<_>>());
        assert!(s.snapshot().users.contains_key("u"));
        s.create_oidc_provider("https://idp.example", &["c".into()], &[], &[])
            .unwrap();
        assert!(s
            .snapshot()
            .oidc_providers
            .contains_key("https://idp.example"));
    }

    /// Migration 8 keeps, by digest, every policy document stored before it.
    #[test]
    fn version_8_keeps_the_documents_stored_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
        {
            let s = State::open(dir.path(), &[1u8; 32], ACCOUNT).unwrap();
            s.create_user("u", "/").unwrap();
            s.put_inline_policy(super::super::PrincipalKind::User, "u", "p", doc)
                .unwrap();
        }
        {
            let conn = rusqlite::Connection::open(dir.path().join(STATE_DB_FILE)).unwrap();
            conn.execute_batch(
                "DROP TABLE policy_documents; DELETE FROM schema_migrations WHERE version > 7;",
            )
            .unwrap();
        }
        let s = State::open(dir.path(), &[1u8; 32], ACCOUNT).unwrap();
        assert_eq!(version_rows(dir.path()), (1..=LATEST).collect::<Vec<_>>());
        let found = s
            .with_db(|db| super::super::documents::find(db, &super::super::documents::digest(doc)))
            .unwrap();
        assert_eq!(found.as_deref(), Some(doc));
    }

    #[test]
    fn every_earlier_schema_is_brought_to_the_latest() {
        let fresh = tempfile::tempdir().unwrap();
        State::open(fresh.path(), &[1u8; 32], ACCOUNT).unwrap();
        let want = tables(fresh.path());
        for (release, schema) in EARLIER_SCHEMAS {
            let dir = tempfile::tempdir().unwrap();
            {
                // A state file of that release, with a user and a managed policy (every release
                // had both) stored as it stored them.
                let conn = rusqlite::Connection::open(dir.path().join(STATE_DB_FILE)).unwrap();
                conn.execute_batch(schema).unwrap();
                conn.execute(
                    "INSERT INTO users (name, id, path, created) VALUES ('u', 'AIDAU', '/', '2024-01-02T03:04:05Z')",
                    [],
                )
                .unwrap();
                conn.execute(
                    "INSERT INTO managed_policies (name, id, path, description, document, created) VALUES ('P', 'ANPAP', '/', '', ?1, '2024-01-02T03:04:05Z')",
                    [READ],
                )
                .unwrap();
                conn.execute(
                    "INSERT INTO user_attachments (user_name, policy_name) VALUES ('u', 'P')",
                    [],
                )
                .unwrap();
            }
            let s = State::open(dir.path(), &[1u8; 32], ACCOUNT)
                .unwrap_or_else(|e| panic!("the schema of {release}: {e}"));
            assert_eq!(
                version_rows(dir.path()),
                (1..=LATEST).collect::<Vec<_>>(),
                "{release}"
            );
            // Every table of the latest schema (older files may keep columns they had).
            let have = tables(dir.path());
            for t in &want {
                assert!(have.contains(t), "{release}: no table {t}");
            }
            let arn = format!("arn:aws:iam::{ACCOUNT}:policy/P");
            let versions = s.list_policy_versions(&arn).unwrap();
            assert_eq!(versions.len(), 1, "{release}");
            assert!(versions[0].is_default && versions[0].document == READ);
            assert_eq!(s.snapshot().users["u"].policies.len(), 1, "{release}");
            // What the latest schema stores works on the upgraded file.
            s.create_group("g", "/").unwrap();
            s.add_user_to_group("g", "u").unwrap();
            let jobs = JobStore::new(Arc::new(s));
            assert!(jobs.list().unwrap().is_empty(), "{release}");
            jobs.revoke_session("ASIAX", i64::MAX, 0).unwrap();
            assert!(jobs.is_revoked("ASIAX"), "{release}");
        }
    }

    #[test]
    fn a_data_dir_written_by_the_last_unversioned_release_opens_with_everything_in_it() {
        let facts: serde_json::Value =
            serde_json::from_str(include_str!("migrations/fixtures/main-38d6a68.json")).unwrap();
        let fact = |k: &str| facts[k].as_str().unwrap().to_owned();
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = rusqlite::Connection::open(dir.path().join(STATE_DB_FILE)).unwrap();
            conn.execute_batch(include_str!("migrations/fixtures/main-38d6a68.sql"))
                .unwrap();
        }
        let master = hex::decode(fact("master_key_hex")).unwrap();
        let account = fact("account");
        for _ in 0..2 {
            let s = State::open(dir.path(), &master, &account).unwrap();
            assert_eq!(version_rows(dir.path()), (1..=LATEST).collect::<Vec<_>>());
            let snap = s.snapshot();
            // Users, their sealed keys, policies (own, attached, their groups'), boundary, tags.
            let key = &snap.keys[&fact("alice_key")];
            assert_eq!((key.user.as_str(), key.active), ("alice", true));
            assert_eq!(key.secret.expose(), fact("alice_secret"));
            let alice = &snap.users["alice"];
            assert_eq!(alice.arn, format!("arn:aws:iam::{account}:user/eng/alice"));
            assert_eq!(alice.policies.len(), 2);
            assert_eq!(
                alice.boundary_arn.as_deref(),
                Some(format!("arn:aws:iam::{account}:policy/Boundary").as_str())
            );
            assert_eq!(*alice.tags, vec![("team".to_owned(), "ml".to_owned())]);
            assert_eq!(snap.users["bob"].policies.len(), 2, "both of the group's");
            // Managed policies and their versions.
            let read = format!("arn:aws:iam::{account}:policy/team/Read");
            let versions = s.list_policy_versions(&read).unwrap();
            assert_eq!(versions.len(), 2);
            assert!(snap.session_policies.contains_key(&read));
            // Roles with their trust policy (principals bound), policies and tags.
            let role = &snap.roles["trainer"];
            assert_eq!(role.policies.len(), 2);
            assert_eq!(role.record.max_session_secs, 7200);
            assert!(s
                .displayed_trust_policy(&role.record)
                .unwrap()
                .contains("user/eng/alice"));
            assert_eq!(
                s.list_tags(PrincipalKind::Role, "trainer").unwrap(),
                vec![("k".to_owned(), "v".to_owned())]
            );
            // Bucket policy and settings.
            assert!(snap.bucket_policies.contains_key("data"));
            assert!(s
                .get_bucket_policy("data")
                .unwrap()
                .unwrap()
                .contains("user/bob"));
            let bpa = snap.bucket_bpa["data"];
            assert!(bpa.block_public_acls && !bpa.ignore_public_acls);
            // Jobs (one finished) and the revoked session.
            // (As of when it was revoked: it is forgotten once the session would have expired.)
            let revoked_at: i64 = rusqlite::Connection::open(dir.path().join(STATE_DB_FILE))
                .unwrap()
                .query_row("SELECT revoked_at FROM revoked_sessions", [], |r| r.get(0))
                .unwrap();
            s.reload_at(revoked_at).unwrap();
            assert!(s.snapshot().revoked.contains_key("ASIAFIXTURE0000000001"));
            let jobs = JobStore::new(Arc::new(s));
            let all = jobs.list().unwrap();
            assert_eq!(all.len(), 2);
            assert_eq!(all.iter().filter(|j| j.finished_at.is_some()).count(), 1);
            assert!(all.iter().all(|j| j.grant.is_some()));
        }
    }

    #[test]
    fn a_database_from_a_newer_release_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        State::open(dir.path(), &[1u8; 32], ACCOUNT).unwrap();
        {
            let conn = rusqlite::Connection::open(dir.path().join(STATE_DB_FILE)).unwrap();
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, 'later')",
                [LATEST + 1],
            )
            .unwrap();
        }
        let e = State::open(dir.path(), &[1u8; 32], ACCOUNT).unwrap_err();
        assert!(e.to_string().contains("newer than this release"), "{e}");
    }
}
