//! The SQLite engine: one file, `<data-dir>/state.db` (WAL, `synchronous=FULL`), one
//! connection behind a mutex (SQLite has one writer at a time anyway; the request path never
//! reads the database, so the mutex is only held by control-plane calls).

use std::path::Path;
use std::sync::Mutex;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::Connection;

use super::db::{check_off_executor, Conn, Dialect, Param, Row, Tx, Value};
use super::StateError;

/// The SQLite engine.
pub struct Sqlite {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sqlite")
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Owned(rusqlite::types::Value::Null),
            Value::Int(i) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(*i)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

fn values(params: &[&dyn Param]) -> Vec<Value> {
    params.iter().map(|p| p.value()).collect()
}

impl Conn for Connection {
    fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<u64, StateError> {
        let v = values(params);
        let mut stmt = self.prepare_cached(sql)?;
        let n = stmt.execute(rusqlite::params_from_iter(v.iter()))?;
        Ok(n as u64)
    }

    fn query(&self, sql: &str, params: &[&dyn Param]) -> Result<Vec<Row>, StateError> {
        let v = values(params);
        let mut stmt = self.prepare_cached(sql)?;
        let columns = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(v.iter()))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut row = Vec::with_capacity(columns);
            for i in 0..columns {
                row.push(match r.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => Value::Int(n),
                    ValueRef::Text(t) => Value::Text(
                        String::from_utf8(t.to_vec())
                            .map_err(|e| StateError::Engine(format!("column {i}: {e}")))?,
                    ),
                    ValueRef::Real(_) | ValueRef::Blob(_) => {
                        return Err(StateError::Engine(format!(
                            "column {i} of `{sql}` is neither text nor an integer"
                        )))
                    }
                });
            }
            out.push(Row(row));
        }
        Ok(out)
    }

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
}

impl Sqlite {
    /// Opens (creating it 0600 if needed) the state file in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Sqlite, StateError> {
        crate::datadir::create_private_dir_all(data_dir)?;
        // Created 0600 before SQLite opens it: its -wal and -shm files take the database's mode.
        let path = data_dir.join(super::STATE_DB_FILE);
        crate::datadir::create_private_file(&path)?;
        Sqlite::open_file(&path)
    }

    /// Opens a state file at `path` as it is.
    pub fn open_file(path: &Path) -> Result<Sqlite, StateError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Sqlite {
            conn: Mutex::new(conn),
        })
    }

    /// Opens an existing database file for reading only (offline readers such as `keyhole audit
    /// explain`): nothing is written, not even the write-ahead log's checkpoint at close, and a
    /// file that is not a database is refused rather than initialised.
    ///
    /// # Errors
    /// The file cannot be opened read-only or is not a SQLite database.
    pub fn open_read_only(path: &Path) -> Result<Sqlite, StateError> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Fails now, with a clear error, on a file that is not a database.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })?;
        Ok(Sqlite {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        match self.conn.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Runs reads.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&dyn Conn) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        check_off_executor()?;
        let conn = self.lock();
        f(&*conn)
    }

    /// Runs `f` in one transaction (committed when it returns `Ok`), then `after` with the
    /// connection still held, so nothing commits in between.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, StateError>,
        after: impl FnOnce(&dyn Conn, &[super::db::Touched]) -> Result<(), StateError>,
    ) -> Result<T, StateError> {
        check_off_executor()?;
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (out, touched) = {
            let t = Tx::new(&*tx);
            let out = f(&t)?;
            (out, t.into_touched())
        };
        tx.commit()?;
        after(&*conn, &touched)?;
        Ok(out)
    }
}
