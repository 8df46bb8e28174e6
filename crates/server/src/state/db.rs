//! The seam between the state layer and its SQL engines.
//!
//! Repositories (`state/*.rs`, `jobs/store.rs`) are written once, in portable SQL with `?N`
//! placeholders, against [`Conn`]; an engine runs them: SQLite ([`super::sqlite`], one file in
//! the data directory, one node) or PostgreSQL ([`super::postgres`], several nodes on one
//! database; it rewrites `?N` as `$N`). Values cross the seam as
//! [`Value`]s (text, 64-bit integers, NULL: all the schema uses), so engines cannot disagree on
//! types.
//!
//! # Off the async executor
//! Every database call blocks its thread (SQLite does file I/O and may wait for its lock;
//! PostgreSQL's async driver is waited for), so it
//! must run on a blocking thread ([`blocking`]). An engine refuses a call
//! made on a Tokio worker thread with an error instead of stalling every connection that worker
//! serves; tests and the command line, which run outside a runtime, call directly.

use std::cell::{Cell, RefCell};

use super::StateError;

/// One SQL value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// NULL.
    Null,
    /// A 64-bit integer (`BIGINT`).
    Int(i64),
    /// Text.
    Text(String),
}

/// A value that can be bound to a placeholder.
pub trait Param {
    /// The value bound.
    fn value(&self) -> Value;
}

impl Param for str {
    fn value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}
impl<T: Param + ?Sized> Param for &T {
    fn value(&self) -> Value {
        (**self).value()
    }
}
impl Param for String {
    fn value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl Param for i64 {
    fn value(&self) -> Value {
        Value::Int(*self)
    }
}
impl<T: Param> Param for Option<T> {
    fn value(&self) -> Value {
        self.as_ref().map_or(Value::Null, Param::value)
    }
}

/// Binds a list of values: `params![name, 3]`.
#[macro_export]
macro_rules! params {
    () => { &[] as &[&dyn $crate::state::db::Param] };
    ($($p:expr),+ $(,)?) => { &[$(&$p as &dyn $crate::state::db::Param),+] as &[&dyn $crate::state::db::Param] };
}
pub use params;

/// A value read from a column.
pub trait FromValue: Sized {
    /// `None` when the value has another type.
    fn from_value(v: &Value) -> Option<Self>;
}

impl FromValue for String {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}
impl FromValue for i64 {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Null => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// Column `i` as a `T`; a missing column or another type is an internal error.
    pub fn get<T: FromValue>(&self, i: usize) -> Result<T, StateError> {
        self.0
            .get(i)
            .and_then(T::from_value)
            .ok_or_else(|| StateError::Engine(format!("column {i} is missing or of another type")))
    }
}

/// Which SQL engine runs the statements (where their SQL differs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A connection (or an open transaction) of an engine.
pub trait Conn {
    /// Runs a statement; returns the rows it changed.
    fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<u64, StateError>;
    /// Runs a query; returns every row.
    fn query(&self, sql: &str, params: &[&dyn Param]) -> Result<Vec<Row>, StateError>;
    /// The engine.
    fn dialect(&self) -> Dialect;
}

impl dyn Conn + '_ {
    /// The first row, mapped, if there is one.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        f: impl FnOnce(&Row) -> Result<T, StateError>,
    ) -> Result<Option<T>, StateError> {
        self.query(sql, params)?.first().map(f).transpose()
    }

    /// The first row, mapped; no row is an internal error (for aggregates, which always
    /// answer).
    pub fn query_one<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        f: impl FnOnce(&Row) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        self.query_opt(sql, params, f)?
            .ok_or_else(|| StateError::Engine(format!("no row from `{sql}`")))
    }

    /// Every row, mapped.
    pub fn query_map<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        f: impl FnMut(&Row) -> Result<T, StateError>,
    ) -> Result<Vec<T>, StateError> {
        self.query(sql, params)?.iter().map(f).collect()
    }

    /// A `count(*)` (or any integer) query.
    pub fn count(&self, sql: &str, params: &[&dyn Param]) -> Result<i64, StateError> {
        self.query_one(sql, params, |r| r.get(0))
    }
}

/// What a change touched: the parts of the snapshot to load again once it commits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Touched {
    /// A user: its record, policies (its own and its groups'), boundary, tags and access keys.
    User(String),
    /// A group: its policies, and so every member.
    Group(String),
    /// A role: record, trust policy, policies, boundary, tags.
    Role(String),
    /// A managed policy: its session-policy form, and everyone it is attached to or bounds.
    Policy(String),
    /// A bucket: its policy and its Block Public Access settings.
    Bucket(String),
    /// The account's Block Public Access settings.
    AccountBpa,
    /// A job.
    Job(String),
    /// A session revocation, by access key id.
    Revocation(String),
    /// An IAM OIDC provider, by issuer URL.
    OidcProvider(String),
}

impl Touched {
    /// The text form kept in the change log (`user:NAME`, `account-bpa:`...): a kind, a colon,
    /// and the name (which may itself hold colons: OIDC issuer URLs).
    pub fn encode(&self) -> String {
        let (kind, name) = match self {
            Touched::User(n) => ("user", n.as_str()),
            Touched::Group(n) => ("group", n.as_str()),
            Touched::Role(n) => ("role", n.as_str()),
            Touched::Policy(n) => ("policy", n.as_str()),
            Touched::Bucket(n) => ("bucket", n.as_str()),
            Touched::AccountBpa => ("account-bpa", ""),
            Touched::Job(n) => ("job", n.as_str()),
            Touched::Revocation(n) => ("revocation", n.as_str()),
            Touched::OidcProvider(n) => ("oidc-provider", n.as_str()),
        };
        format!("{kind}:{name}")
    }

    /// The inverse of [`Touched::encode`]; `None` for a kind this release does not know.
    pub fn decode(text: &str) -> Option<Touched> {
        let (kind, name) = text.split_once(':')?;
        let name = name.to_owned();
        Some(match kind {
            "user" => Touched::User(name),
            "group" => Touched::Group(name),
            "role" => Touched::Role(name),
            "policy" => Touched::Policy(name),
            "bucket" => Touched::Bucket(name),
            "account-bpa" => Touched::AccountBpa,
            "job" => Touched::Job(name),
            "revocation" => Touched::Revocation(name),
            "oidc-provider" => Touched::OidcProvider(name),
            _ => return None,
        })
    }
}

/// An open write transaction: the connection, and what the change touched.
pub struct Tx<'a> {
    conn: &'a dyn Conn,
    touched: RefCell<Vec<Touched>>,
}

impl<'a> Tx<'a> {
    /// Wraps an open transaction.
    pub fn new(conn: &'a dyn Conn) -> Tx<'a> {
        Tx {
            conn,
            touched: RefCell::new(Vec::new()),
        }
    }

    /// Records that the change touched `what`.
    pub fn touch(&self, what: Touched) {
        self.touched.borrow_mut().push(what);
    }

    /// What the change touched, deduplicated.
    pub fn into_touched(self) -> Vec<Touched> {
        let mut t = self.touched.into_inner();
        t.sort();
        t.dedup();
        t
    }
}

impl Conn for Tx<'_> {
    fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<u64, StateError> {
        self.conn.execute(sql, params)
    }
    fn query(&self, sql: &str, params: &[&dyn Param]) -> Result<Vec<Row>, StateError> {
        self.conn.query(sql, params)
    }
    fn dialect(&self) -> Dialect {
        self.conn.dialect()
    }
}

impl<'a> std::ops::Deref for Tx<'a> {
    type Target = dyn Conn + 'a;
    fn deref(&self) -> &Self::Target {
        self.conn
    }
}

thread_local! {
    static ON_BLOCKING_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` on Tokio's blocking pool, where database calls are allowed; the way async code
/// reaches the state layer.
pub async fn blocking<T: Send + 'static, E: From<StateError> + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E> {
    tokio::task::spawn_blocking(move || {
        ON_BLOCKING_THREAD.with(|b| b.set(true));
        let out = f();
        ON_BLOCKING_THREAD.with(|b| b.set(false));
        out
    })
    .await
    .map_err(|e| E::from(StateError::Engine(format!("database task: {e}"))))?
}

/// Refuses a database call made on an async worker thread (see the module docs).
pub(super) fn check_off_executor() -> Result<(), StateError> {
    let in_runtime = tokio::runtime::Handle::try_current().is_ok();
    if in_runtime && !ON_BLOCKING_THREAD.with(Cell::get) {
        return Err(StateError::Engine(
            "a database call on the async executor (run it through state::db::blocking)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touched_round_trips_through_its_text_form() {
        for t in [
            Touched::User("u".into()),
            Touched::Group("g".into()),
            Touched::Role("r".into()),
            Touched::Policy("p".into()),
            Touched::Bucket("b".into()),
            Touched::AccountBpa,
            Touched::Job("j-1".into()),
            Touched::Revocation("ASIA1".into()),
            Touched::OidcProvider("https://idp.example:8443/x".into()),
        ] {
            assert_eq!(Touched::decode(&t.encode()), Some(t));
        }
        assert_eq!(Touched::decode("later-kind:x"), None);
        assert_eq!(Touched::decode("no colon"), None);
    }

    #[tokio::test]
    async fn database_calls_on_the_executor_are_refused() {
        assert!(check_off_executor().is_err());
        blocking::<_, StateError>(check_off_executor).await.unwrap();
        assert!(
            check_off_executor().is_err(),
            "the flag stays on its thread"
        );
    }
}
