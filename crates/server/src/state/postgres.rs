//! The PostgreSQL engine: the state of several gateway nodes in one database
//! (`--state postgres://USER@HOST:PORT/DB`).
//!
//! tokio-postgres drives the connections on the gateway's runtime, behind a deadpool pool; the
//! repositories' synchronous calls wait for them from a blocking thread ([`super::db::blocking`]),
//! so no async worker ever waits for the database. Statements are the repositories' portable
//! SQL with `?N` rewritten as `$N` ([`placeholders`]).
//!
//! Writes are serialized across every node by a transaction-scoped advisory lock taken first
//! in each write transaction: control-plane writes are rare, and in exchange the change log's
//! sequence numbers commit in order (a node that has applied change N has seen every change
//! before it) and checks such as "no user of that name, whatever its case" cannot race.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::types::{IsNull, ToSql, Type};

use super::db::{check_off_executor, Conn, Dialect, Param, Row, Touched, Tx, Value};
use super::StateError;

/// The advisory lock every write transaction holds (an arbitrary constant: "keyhole" in ASCII
/// digits, so it is recognisable in `pg_locks`).
pub const WRITE_LOCK: i64 = 0x006b_6579_686f_6c65;
/// How long a call waits for a connection (or to open one) before it fails.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one statement (or a transaction's begin or commit) may wait for the server before
/// it fails as [`StateError::Unavailable`]: a server that accepts connections but does not
/// answer (stopped, or cut off mid-connection) fails a write in bounded time, not never.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections in the pool.
pub const POOL_SIZE: usize = 16;

/// The PostgreSQL engine.
pub struct Postgres {
    pool: Pool,
    /// Places for [`Postgres::name_lock`]'s connections ([`NAME_LOCK_CONNECTIONS`]).
    name_locks: std::sync::Arc<tokio::sync::Semaphore>,
    config: tokio_postgres::Config,
    tls: tls::Connector,
    handle: tokio::runtime::Handle,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("dbname", &self.config.get_dbname())
            .finish_non_exhaustive()
    }
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Text(s) => s.as_str().to_sql(ty, out),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => i.to_string().as_str().to_sql(ty, out),
                _ => Err(format!("an integer bound to a {ty} parameter").into()),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// `?N` placeholders (outside quoted text) as PostgreSQL's `$N`.
pub fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c == '?' && !quoted && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

/// A failure of the database or of the way to it: the server cannot be reached, closed the
/// connection, or is shutting down or starting ([`StateError::Unavailable`], 503); anything
/// else (a constraint, a syntax error, a value of another type) is an internal error.
pub(super) fn pg_error(e: tokio_postgres::Error) -> StateError {
    match e.as_db_error() {
        Some(db) => {
            let text = format!("postgres ({}): {}", db.code().code(), db.message());
            if unavailable_code(db.code().code()) {
                StateError::Unavailable(text)
            } else {
                StateError::Engine(text)
            }
        }
        None if unreachable(&e) => StateError::Unavailable(format!("postgres: {e}")),
        None => StateError::Engine(format!("postgres: {e}")),
    }
}

/// SQLSTATEs that say "not now" rather than "not so": connection exceptions (class 08),
/// the server shutting down or starting (57P01-57P03), too many connections (53300).
fn unavailable_code(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
}

/// Whether a driver error (not the server's) is about the way to the server: closed, an I/O
/// failure, no connection or no answer in time.
fn unreachable(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    let text = e.to_string();
    [
        "error connecting to server",
        "timeout waiting for server",
        "error communicating with the server",
    ]
    .iter()
    .any(|p| text.starts_with(p))
}

/// Whether every host of `config` is on this machine (a Unix socket, `localhost` or a loopback
/// address), where TLS adds nothing.
fn all_local(config: &tokio_postgres::Config) -> bool {
    let hosts_local = config.get_hosts().iter().all(|h| match h {
        tokio_postgres::config::Host::Tcp(name) => {
            name == "localhost"
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        #[cfg(unix)]
        tokio_postgres::config::Host::Unix(_) => true,
    });
    hosts_local && config.get_hostaddrs().iter().all(|ip| ip.is_loopback())
}

fn pool_error(e: deadpool_postgres::PoolError) -> StateError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg_error(e),
        deadpool_postgres::PoolError::Timeout(_) | deadpool_postgres::PoolError::Closed => {
            StateError::Unavailable(format!("postgres connection pool: {e}"))
        }
        other => StateError::Engine(format!("postgres connection pool: {other}")),
    }
}

/// Waits for `f` at most [`STATEMENT_TIMEOUT`].
async fn bounded<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, StateError> {
    match tokio::time::timeout(STATEMENT_TIMEOUT, f).await {
        Ok(out) => out.map_err(pg_error),
        Err(_) => Err(StateError::Unavailable(format!(
            "postgres: no answer to {what} within {}s",
            STATEMENT_TIMEOUT.as_secs()
        ))),
    }
}

fn convert(row: &tokio_postgres::Row) -> Result<Row, StateError> {
    let mut out = Vec::with_capacity(row.len());
    for (i, c) in row.columns().iter().enumerate() {
        let v = match *c.type_() {
            Type::INT8 => row.try_get::<_, Option<i64>>(i).map(|v| v.map(Value::Int)),
            Type::INT4 => row
                .try_get::<_, Option<i32>>(i)
                .map(|v| v.map(|n| Value::Int(n.into()))),
            Type::INT2 => row
                .try_get::<_, Option<i16>>(i)
                .map(|v| v.map(|n| Value::Int(n.into()))),
            Type::BOOL => row
                .try_get::<_, Option<bool>>(i)
                .map(|v| v.map(|b| Value::Int(b.into()))),
            _ => row
                .try_get::<_, Option<String>>(i)
                .map(|v| v.map(Value::Text)),
        }
        .map_err(|e| StateError::Engine(format!("column {} ({}): {e}", c.name(), c.type_())))?;
        out.push(v.unwrap_or(Value::Null));
    }
    Ok(Row(out))
}

enum Target<'a> {
    Client(&'a deadpool_postgres::ClientWrapper),
    Tx(&'a deadpool_postgres::Transaction<'a>),
}

/// A pooled connection or an open transaction, used from a blocking thread.
struct PgConn<'a> {
    target: Target<'a>,
    handle: &'a tokio::runtime::Handle,
}

/// The result of one statement.
enum Outcome {
    Rows(Vec<tokio_postgres::Row>),
    Changed(u64),
}

impl PgConn<'_> {
    fn run(&self, sql: &str, params: &[&dyn Param], rows: bool) -> Result<Outcome, StateError> {
        let sql = placeholders(sql);
        let values: Vec<Value> = params.iter().map(|p| p.value()).collect();
        let refs: Vec<&(dyn ToSql + Sync)> =
            values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        self.handle.block_on(bounded("a statement", async {
            let stmt = match &self.target {
                Target::Client(c) => c.prepare_cached(&sql).await,
                Target::Tx(t) => t.prepare_cached(&sql).await,
            }?;
            match (&self.target, rows) {
                (Target::Client(c), true) => c.query(&stmt, &refs).await.map(Outcome::Rows),
                (Target::Tx(t), true) => t.query(&stmt, &refs).await.map(Outcome::Rows),
                (Target::Client(c), false) => c.execute(&stmt, &refs).await.map(Outcome::Changed),
                (Target::Tx(t), false) => t.execute(&stmt, &refs).await.map(Outcome::Changed),
            }
        }))
    }
}

impl Conn for PgConn<'_> {
    fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<u64, StateError> {
        match self.run(sql, params, false)? {
            Outcome::Changed(n) => Ok(n),
            Outcome::Rows(rows) => Ok(rows.len() as u64),
        }
    }

    fn query(&self, sql: &str, params: &[&dyn Param]) -> Result<Vec<Row>, StateError> {
        match self.run(sql, params, true)? {
            Outcome::Rows(rows) => rows.iter().map(convert).collect(),
            Outcome::Changed(_) => Ok(Vec::new()),
        }
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
}

impl Postgres {
    /// Connects to the database at `url` (`postgres://USER@HOST:PORT/DB`, with libpq's
    /// `sslmode` and `sslrootcert` for TLS: [`tls`]); connections run on `handle`'s runtime.
    /// The `sslrootcert` file is read now; nothing is connected until the first call.
    pub fn open(url: &str, handle: tokio::runtime::Handle) -> Result<Postgres, StateError> {
        let (mut config, options) = tls::parse(url)
            .map_err(|e| StateError::Engine(format!("the state URL is not valid: {e}")))?;
        let tls = tls::Connector::new(&options)
            .map_err(|e| StateError::Engine(format!("the state URL's TLS settings: {e}")))?;
        if options.check() == tls::Check::Nothing && !all_local(&config) {
            tracing::warn!(
                tls = %options.describe(),
                "the state database is reached over the network without a verified certificate: \
                 use sslmode=verify-full&sslrootcert=FILE"
            );
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("keyhole");
        }
        if config.get_options().is_none() {
            // The migrations' `CREATE TABLE IF NOT EXISTS` would log a NOTICE at every start.
            config.options("-c client_min_messages=warning");
        }
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StateError::Engine(format!("postgres connection pool: {e}")))?;
        Ok(Postgres {
            pool,
            name_locks: std::sync::Arc::new(tokio::sync::Semaphore::new(NAME_LOCK_CONNECTIONS)),
            config,
            tls,
            handle,
        })
    }

    /// The connection settings (for the change listener's own connection).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The TLS connector every connection uses (the change listener's too).
    pub fn tls(&self) -> &tls::Connector {
        &self.tls
    }

    /// A connection error as a [`StateError`], with what to change when TLS failed.
    pub fn connect_error(&self, e: tokio_postgres::Error) -> StateError {
        match tls::hint(&e, self.tls.options()) {
            Some(hint) => StateError::Unavailable(format!("postgres: {hint}")),
            None => pg_error(e),
        }
    }

    /// The runtime the connections run on.
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    fn client(&self) -> Result<deadpool_postgres::Object, StateError> {
        self.handle.block_on(self.pool.get()).map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => self.connect_error(e),
            other => pool_error(other),
        })
    }

    /// Runs reads on a pooled connection.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&dyn Conn) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        check_off_executor()?;
        let client = self.client()?;
        let conn = PgConn {
            target: Target::Client(&client),
            handle: &self.handle,
        };
        f(&conn)
    }

    /// Runs `f` in one transaction holding [`WRITE_LOCK`], then `log` in the same transaction
    /// (the change log), commits, then `after` on the same connection.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, StateError>,
        log: impl FnOnce(&dyn Conn, &[Touched]) -> Result<(), StateError>,
        after: impl FnOnce(&dyn Conn, &[Touched]) -> Result<(), StateError>,
    ) -> Result<T, StateError> {
        check_off_executor()?;
        let mut client = self.client()?;
        let tx = self
            .handle
            .block_on(bounded("BEGIN", client.transaction()))?;
        let (out, touched) = {
            let conn = PgConn {
                target: Target::Tx(&tx),
                handle: &self.handle,
            };
            conn.execute("SELECT pg_advisory_xact_lock(?1)", &[&WRITE_LOCK])?;
            let t = Tx::new(&conn);
            let out = f(&t)?;
            let touched = t.into_touched();
            log(&conn, &touched)?;
            (out, touched)
        };
        self.handle.block_on(bounded("COMMIT", tx.commit()))?;
        let conn = PgConn {
            target: Target::Client(&client),
            handle: &self.handle,
        };
        after(&conn, &touched)?;
        Ok(out)
    }
}

/// How long [`Postgres::name_lock`] waits for another node to release a name.
pub const NAME_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// A session advisory lock held on a connection of its own: released when this is dropped,
/// because the connection is closed then (the server ends the session and every lock it held).
/// The connection never goes back to the pool, so no pooled session can keep a lock it forgot.
pub struct NameLock {
    _client: deadpool_postgres::ClientWrapper,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

/// How many name locks a node holds at once (each on a connection of its own, outside the
/// pool): a flood of bucket settings' writes waits here rather than opening connections until
/// the server's `max_connections` runs out for every node.
pub const NAME_LOCK_CONNECTIONS: usize = 4;

impl std::fmt::Debug for NameLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NameLock").finish_non_exhaustive()
    }
}

impl Postgres {
    /// Takes the cluster-wide lock `key` (`pg_advisory_lock`), waiting at most
    /// [`NAME_LOCK_TIMEOUT`] for another node to release it (`Unavailable` then): what a node
    /// holds while it creates or deletes a bucket or writes one of its settings, so that nodes
    /// sharing this database do not interleave those steps.
    pub async fn name_lock(&self, key: i64) -> Result<NameLock, StateError> {
        let slot =
            match tokio::time::timeout(NAME_LOCK_TIMEOUT, self.name_locks.clone().acquire_owned())
                .await
            {
                Ok(Ok(permit)) => permit,
                _ => {
                    return Err(StateError::Unavailable(format!(
                        "{NAME_LOCK_CONNECTIONS} bucket name locks were held for {}s",
                        NAME_LOCK_TIMEOUT.as_secs()
                    )))
                }
            };
        let object = self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => self.connect_error(e),
            other => pool_error(other),
        })?;
        let client = deadpool_postgres::Object::take(object);
        match tokio::time::timeout(
            NAME_LOCK_TIMEOUT,
            client.execute("SELECT pg_advisory_lock($1)", &[&key]),
        )
        .await
        {
            Ok(Ok(_)) => Ok(NameLock {
                _client: client,
                _slot: slot,
            }),
            Ok(Err(e)) => Err(pg_error(e)),
            Err(_) => Err(StateError::Unavailable(format!(
                "another node has held this bucket name's lock for {}s",
                NAME_LOCK_TIMEOUT.as_secs()
            ))),
        }
    }
}

pub mod tls;

#[cfg(test)]
pub(crate) mod testdb;
#[cfg(test)]
mod tests;
