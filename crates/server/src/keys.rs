//! Key hygiene, as IAM has it: when each long-term access key was last used (and for which
//! service and region), the account's credential report, and the age bound on active keys
//! (`max_key_age_days`).
//!
//! # Recording last use without a write per request
//! Every request signed with a long-term key (an IAM user's `AKIA...` key or the root key) is
//! recorded by the authenticate stage, allowed or denied alike, as AWS records use of the key and
//! not success; a request whose signature fails records nothing. The request path only updates
//! [`Recorder`], an in-memory map holding the newest use per key (one short lock, no I/O); a task
//! ([`run`]) writes what accumulated every [`FLUSH_INTERVAL`] in one transaction, and the last
//! batch at shutdown. The database keeps the newest use per key whatever the order of the writes
//! (`state/key_usage.rs`), so several nodes sharing PostgreSQL agree. Answers read the database
//! and this node's pending uses together, so a node's own requests show at once and the other
//! nodes' within a flush interval.
//!
//! Temporary credentials (`ASIA...`, from GetSessionToken or AssumeRole) are their own access
//! keys: a request signed with them is not a request made with the long-term key, so it does not
//! change that key's last use (the call that obtained them does: it was signed with the
//! long-term key). GetAccessKeyLastUsed reports "the last request made with that key"
//! (https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetAccessKeyLastUsed.html).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::state::key_usage::{KeyUse, StoredReport};
use crate::state::{State, StateError};

/// How often pending uses are written to the database.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(2);

/// How long a credential report is current: AWS generates a new one when the latest is older
/// than four hours, and GetCredentialReport refuses an expired one with `ReportExpired`
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_getting-report.html).
pub const REPORT_MAX_AGE_SECS: i64 = 4 * 3600;

/// How often the gateway logs the active keys past `max_key_age_days`.
pub const AGE_WARNING_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// How often the `/metrics` count of keys past the bound is brought up to date.
pub const AGE_COUNT_INTERVAL: Duration = Duration::from_secs(60);

/// The newest use of each long-term key not yet written to the database.
#[derive(Debug, Default)]
pub struct Recorder {
    pending: Mutex<HashMap<String, KeyUse>>,
    /// One flush at a time (the periodic one and the last one at shutdown).
    flushing: Mutex<()>,
    /// The account root's access key, which the state's user keys do not hold: its uses are
    /// always kept.
    root_key: std::sync::OnceLock<String>,
}

impl Recorder {
    /// Names the account root's access key (kept by [`flush`] although no user owns it).
    pub fn set_root_key(&self, key: &str) {
        let _ = self.root_key.set(key.to_owned());
    }

    /// Records a use of `key` at `at_ms` (Unix milliseconds) for `service` in `region`; an
    /// older use than the one pending is ignored.
    pub fn record(&self, key: &str, at_ms: i64, service: &str, region: &str) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        match pending.get_mut(key) {
            Some(u) if u.at_ms > at_ms => {}
            Some(u) => {
                u.at_ms = at_ms;
                if u.service != service {
                    service.clone_into(&mut u.service);
                }
                if u.region != region {
                    region.clone_into(&mut u.region);
                }
            }
            None => {
                pending.insert(
                    key.to_owned(),
                    KeyUse {
                        at_ms,
                        service: service.to_owned(),
                        region: region.to_owned(),
                    },
                );
            }
        }
    }

    /// This node's pending use of `key`.
    pub fn pending(&self, key: &str) -> Option<KeyUse> {
        self.pending.lock().ok()?.get(key).cloned()
    }

    /// Every pending use (a copy).
    pub fn pending_all(&self) -> HashMap<String, KeyUse> {
        self.pending.lock().map(|p| p.clone()).unwrap_or_default()
    }

    fn take(&self) -> Vec<(String, KeyUse)> {
        self.pending
            .lock()
            .map(|mut p| p.drain().collect())
            .unwrap_or_default()
    }

    /// Puts uses back after a failed write, keeping a newer use recorded meanwhile.
    fn put_back(&self, uses: Vec<(String, KeyUse)>) {
        for (key, u) in uses {
            self.record(&key, u.at_ms, &u.service, &u.region);
        }
    }
}

/// Writes the pending uses (call on a blocking thread); on failure they stay pending.
pub fn flush(state: &State, recorder: &Recorder) -> Result<usize, StateError> {
    let _one = recorder
        .flushing
        .lock()
        .map_err(|_| StateError::Engine("a key-use flush panicked; restart the node".into()))?;
    // Only keys that still exist are written: a key deleted after its last use (a rotation)
    // would otherwise leave a row behind for good, its own deletion having run before this
    // flush (review 13).
    let snapshot = state.snapshot();
    let root = recorder.root_key.get();
    let uses: Vec<_> = recorder
        .take()
        .into_iter()
        .filter(|(id, _)| snapshot.keys.contains_key(id) || root.is_some_and(|r| r == id))
        .collect();
    let n = uses.len();
    if let Err(e) = state.record_key_uses(&uses) {
        recorder.put_back(uses);
        return Err(e);
    }
    Ok(n)
}

/// Writes pending uses every [`FLUSH_INTERVAL`] until aborted (the caller flushes once more at
/// shutdown).
pub async fn run(state: Arc<State>, recorder: Arc<Recorder>) {
    let mut tick = tokio::time::interval(FLUSH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (s, r) = (state.clone(), recorder.clone());
        match crate::state::db::blocking(move || flush(&s, &r)).await {
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot write access keys' last use; kept in memory, retried in {} s", FLUSH_INTERVAL.as_secs());
            }
        }
    }
}

/// The last use of `key`: the database's, or this node's pending one when newer.
pub fn last_used(
    state: &State,
    recorder: &Recorder,
    key: &str,
) -> Result<Option<KeyUse>, StateError> {
    let stored = state.key_last_used(key)?;
    Ok(match (stored, recorder.pending(key)) {
        (Some(a), Some(b)) => Some(a.newest(b)),
        (a, b) => a.or(b),
    })
}

/// The last use of every key (the database's and this node's pending ones, newest wins).
pub fn all_last_used(
    state: &State,
    recorder: &Recorder,
) -> Result<HashMap<String, KeyUse>, StateError> {
    let mut all = state.all_key_uses()?;
    for (key, u) in recorder.pending_all() {
        let merged = match all.remove(&key) {
            Some(stored) => stored.newest(u),
            None => u,
        };
        all.insert(key, merged);
    }
    Ok(all)
}

/// ISO 8601 as the credential report writes it (`2026-12-03T10:00:00+00:00`).
fn report_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

fn report_time_of(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| report_time(t.with_timezone(&chrono::Utc)))
        .unwrap_or_else(|_| rfc3339.to_owned())
}

fn report_time_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(report_time)
        .unwrap_or_else(|| NA.to_owned())
}

/// "Not applicable", as the report writes it.
const NA: &str = "N/A";

/// The credential report's columns, in AWS's order
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_getting-report.html#id_credentials_understanding_the_report_format).
pub const REPORT_COLUMNS: [&str; 22] = [
    "user",
    "arn",
    "user_creation_time",
    "password_enabled",
    "password_last_used",
    "password_last_changed",
    "password_next_rotation",
    "mfa_active",
    "access_key_1_active",
    "access_key_1_last_rotated",
    "access_key_1_last_used_date",
    "access_key_1_last_used_region",
    "access_key_1_last_used_service",
    "access_key_2_active",
    "access_key_2_last_rotated",
    "access_key_2_last_used_date",
    "access_key_2_last_used_region",
    "access_key_2_last_used_service",
    "cert_1_active",
    "cert_1_last_rotated",
    "cert_2_active",
    "cert_2_last_rotated",
];

/// One access key as the report sees it.
#[derive(Debug, Clone)]
pub struct ReportKey {
    /// Active or not.
    pub active: bool,
    /// When it was created (RFC 3339).
    pub created: String,
    /// Its last use.
    pub last_used: Option<KeyUse>,
}

/// One row of the report: the root user or an IAM user.
#[derive(Debug, Clone)]
pub struct ReportEntity {
    /// `<root_account>` or the user name.
    pub user: String,
    /// Its ARN.
    pub arn: String,
    /// When it was created (RFC 3339).
    pub created: String,
    /// The root user (its password columns are `not_supported`).
    pub root: bool,
    /// Its first two access keys, oldest first.
    pub keys: Vec<ReportKey>,
}

/// RFC 4180 quoting for a field that needs it (IAM names and paths may hold `,`).
fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_owned()
    }
}

/// The report's CSV: the header, then one row per entity (the root account first). keyhole has
/// no passwords, MFA devices or signing certificates: those columns hold what AWS writes for a
/// user without them (`false` and `N/A`; `not_supported` for the root user's password dates, as
/// AWS writes them for the root user).
pub fn report_csv(entities: &[ReportEntity]) -> String {
    let mut out = REPORT_COLUMNS.join(",");
    for e in entities {
        let mut row: Vec<String> = vec![
            csv_field(&e.user),
            csv_field(&e.arn),
            report_time_of(&e.created),
        ];
        if e.root {
            row.extend(["not_supported", NA, "not_supported", "not_supported"].map(str::to_owned));
        } else {
            row.extend(["false", NA, NA, NA].map(str::to_owned));
        }
        row.push("false".into()); // mfa_active
        for i in 0..2 {
            match e.keys.get(i) {
                Some(k) => {
                    row.push(k.active.to_string());
                    // "If the user does not have an active access key, the value in this field
                    // is N/A."
                    row.push(if k.active {
                        report_time_of(&k.created)
                    } else {
                        NA.to_owned()
                    });
                    match &k.last_used {
                        Some(u) => {
                            row.push(report_time_ms(u.at_ms));
                            row.push(csv_field(&u.region));
                            row.push(csv_field(&u.service));
                        }
                        None => row.extend([NA, NA, NA].map(str::to_owned)),
                    }
                }
                None => row.extend(["false", NA, NA, NA, NA].map(str::to_owned)),
            }
        }
        row.extend(["false", NA, "false", NA].map(str::to_owned)); // signing certificates
        out.push('\n');
        out.push_str(&row.join(","));
    }
    out
}

/// Builds the account's report now and stores it (call on a blocking thread).
pub fn generate_report(
    state: &State,
    recorder: &Recorder,
    account: &crate::account::AccountRecord,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<StoredReport, StateError> {
    let uses = all_last_used(state, recorder)?;
    let mut entities = vec![ReportEntity {
        user: "<root_account>".into(),
        arn: format!("arn:aws:iam::{}:root", account.account_id),
        created: account.created.clone(),
        root: true,
        keys: vec![ReportKey {
            active: true,
            created: account.created.clone(),
            last_used: uses.get(&account.root_access_key_id).cloned(),
        }],
    }];
    let mut keys_of: HashMap<String, Vec<ReportKey>> = HashMap::new();
    for (user, id, status, created) in state.all_access_keys()? {
        keys_of.entry(user).or_default().push(ReportKey {
            active: status == "Active",
            created,
            last_used: uses.get(&id).cloned(),
        });
    }
    for (u, arn) in state.list_users()? {
        entities.push(ReportEntity {
            keys: keys_of.remove(&u.name).unwrap_or_default(),
            user: u.name,
            arn,
            created: u.created,
            root: false,
        });
    }
    let report = StoredReport {
        generated: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        generated_at: now.timestamp(),
        content: report_csv(&entities),
    };
    state.put_credential_report(&report)?;
    Ok(report)
}

/// An active key at least `max_days` days old.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldKey {
    /// The owner.
    pub user: String,
    /// The key id.
    pub key: String,
    /// Its age in whole days.
    pub age_days: i64,
}

/// The active keys at least `max_days` days old at `now` (Unix seconds); 0 names every active
/// key.
pub fn active_keys_over(
    keys: &[(String, String, String, String)],
    max_days: u64,
    now: i64,
) -> Vec<OldKey> {
    let bound = i64::try_from(max_days.saturating_mul(86_400)).unwrap_or(i64::MAX);
    keys.iter()
        .filter(|(_, _, status, _)| status == "Active")
        .filter_map(|(user, key, _, created)| {
            let created = chrono::DateTime::parse_from_rfc3339(created)
                .ok()?
                .timestamp();
            let age = now - created;
            (age >= bound).then(|| OldKey {
                user: user.clone(),
                key: key.clone(),
                age_days: age.div_euclid(86_400),
            })
        })
        .collect()
}

/// `max_key_age_days` on the gateway: every [`AGE_COUNT_INTERVAL`] counts the active keys past
/// the bound for `/metrics`, and at start and then every [`AGE_WARNING_INTERVAL`] logs a warning
/// for each. It never deactivates a key (that is `keyhole admin keys --enforce`, an audited IAM
/// call by someone allowed to make it).
pub async fn watch_key_age(
    state: Arc<State>,
    metrics: Arc<crate::metrics::Metrics>,
    max_days: u64,
) {
    let mut tick = tokio::time::interval(AGE_COUNT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_warning: Option<std::time::Instant> = None;
    loop {
        tick.tick().await;
        let s = state.clone();
        let keys = match crate::state::db::blocking(move || s.all_access_keys()).await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read access keys to check max_key_age_days");
                continue;
            }
        };
        let old = active_keys_over(&keys, max_days, chrono::Utc::now().timestamp());
        metrics.set_keys_over_max_age(old.len());
        if last_warning.is_none_or(|t| t.elapsed() >= AGE_WARNING_INTERVAL) {
            last_warning = Some(std::time::Instant::now());
            for k in &old {
                tracing::warn!(
                    user = %k.user,
                    access_key_id = %k.key,
                    age_days = k.age_days,
                    max_key_age_days = max_days,
                    "active access key older than max_key_age_days: rotate it (create a new key, move its users, then `keyhole admin keys --max-age-days {max_days} --enforce` or aws iam update-access-key --status Inactive)"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Newest wins in memory, whatever the order in which requests finish.
    #[test]
    fn the_recorder_keeps_the_newest_use_per_key() {
        let r = Recorder::default();
        r.record("AKIAONE", 2_000, "s3", "us-east-1");
        r.record("AKIAONE", 1_000, "iam", "us-east-1");
        assert_eq!(r.pending("AKIAONE").unwrap().service, "s3");
        r.record("AKIAONE", 3_000, "sts", "eu-west-1");
        let u = r.pending("AKIAONE").unwrap();
        assert_eq!(
            (u.at_ms, u.service.as_str(), u.region.as_str()),
            (3_000, "sts", "eu-west-1")
        );
        assert!(r.pending("AKIATWO").is_none());
    }

    /// A flush writes what is pending and empties it; answers merge the database with what is
    /// still pending, newest wins.
    #[test]
    fn a_flush_writes_pending_uses_and_answers_merge_them() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(dir.path(), &[1u8; 32], "123456789012").unwrap();
        let r = Recorder::default();
        // AKIAONE stands for the root key (no user owns it); a key nobody has (deleted after
        // its use) is not written back (review 13).
        r.set_root_key("AKIAONE");
        r.record("AKIAONE", 2_000, "s3", "us-east-1");
        r.record("AKIAGONE", 2_000, "s3", "us-east-1");
        assert_eq!(
            s.key_last_used("AKIAONE").unwrap(),
            None,
            "nothing written per request"
        );
        assert_eq!(last_used(&s, &r, "AKIAONE").unwrap().unwrap().at_ms, 2_000);
        assert_eq!(flush(&s, &r).unwrap(), 1);
        assert_eq!(s.key_last_used("AKIAGONE").unwrap(), None);
        assert!(r.pending("AKIAONE").is_none());
        assert_eq!(s.key_last_used("AKIAONE").unwrap().unwrap().service, "s3");
        // A newer pending use wins over the stored one; an older one does not.
        r.record("AKIAONE", 3_000, "iam", "us-east-1");
        assert_eq!(
            last_used(&s, &r, "AKIAONE").unwrap().unwrap().service,
            "iam"
        );
        assert_eq!(flush(&s, &r).unwrap(), 1);
        r.record("AKIAONE", 1_000, "sts", "us-east-1");
        assert_eq!(
            last_used(&s, &r, "AKIAONE").unwrap().unwrap().service,
            "iam"
        );
        assert_eq!(all_last_used(&s, &r).unwrap()["AKIAONE"].service, "iam");
        flush(&s, &r).unwrap();
        assert_eq!(s.key_last_used("AKIAONE").unwrap().unwrap().service, "iam");
        assert_eq!(flush(&s, &r).unwrap(), 0);
    }

    /// The format of "Getting credential reports for your AWS account"
    /// (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_getting-report.html):
    /// the columns in order, the root account first, `N/A` where there is nothing.
    #[test]
    fn the_credential_report_csv_has_aws_columns_and_values() {
        let entities = vec![
            ReportEntity {
                user: "<root_account>".into(),
                arn: "arn:aws:iam::123456789012:root".into(),
                created: "2026-01-01T00:00:00Z".into(),
                root: true,
                keys: vec![ReportKey {
                    active: true,
                    created: "2026-01-01T00:00:00Z".into(),
                    last_used: None,
                }],
            },
            ReportEntity {
                user: "alice".into(),
                arn: "arn:aws:iam::123456789012:user/alice".into(),
                created: "2026-02-01T10:00:00Z".into(),
                root: false,
                keys: vec![
                    ReportKey {
                        active: true,
                        created: "2026-02-02T10:00:00Z".into(),
                        last_used: Some(KeyUse {
                            at_ms: 1_770_000_000_000,
                            service: "s3".into(),
                            region: "us-east-1".into(),
                        }),
                    },
                    ReportKey {
                        active: false,
                        created: "2026-02-03T10:00:00Z".into(),
                        last_used: None,
                    },
                ],
            },
            ReportEntity {
                user: "a,b".into(),
                arn: "arn:aws:iam::123456789012:user/a,b".into(),
                created: "2026-02-01T10:00:00Z".into(),
                root: false,
                keys: vec![],
            },
        ];
        let csv = report_csv(&entities);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], REPORT_COLUMNS.join(","));
        assert_eq!(
            lines[1],
            "<root_account>,arn:aws:iam::123456789012:root,2026-01-01T00:00:00+00:00,not_supported,N/A,not_supported,not_supported,false,true,2026-01-01T00:00:00+00:00,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A"
        );
        assert_eq!(
            lines[2],
            "alice,arn:aws:iam::123456789012:user/alice,2026-02-01T10:00:00+00:00,false,N/A,N/A,N/A,false,true,2026-02-02T10:00:00+00:00,2026-02-02T02:40:00+00:00,us-east-1,s3,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A"
        );
        assert_eq!(
            lines[3],
            "\"a,b\",\"arn:aws:iam::123456789012:user/a,b\",2026-02-01T10:00:00+00:00,false,N/A,N/A,N/A,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A"
        );
        for l in &lines {
            let fields = l
                .replace("\"a,b\"", "x")
                .replace("\"arn:aws:iam::123456789012:user/a,b\"", "y");
            assert_eq!(fields.split(',').count(), REPORT_COLUMNS.len(), "{l}");
        }
    }

    #[test]
    fn keys_at_least_the_bound_old_and_active_are_over_it() {
        let day = 86_400;
        let created = |days_ago: i64| {
            chrono::DateTime::from_timestamp(100 * day - days_ago * day, 0)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        };
        let keys = vec![
            (
                "alice".into(),
                "AKIAOLD".into(),
                "Active".into(),
                created(91),
            ),
            (
                "alice".into(),
                "AKIANEW".into(),
                "Active".into(),
                created(3),
            ),
            (
                "bob".into(),
                "AKIAOFF".into(),
                "Inactive".into(),
                created(200),
            ),
        ];
        let over = active_keys_over(&keys, 90, 100 * day);
        assert_eq!(
            over,
            vec![OldKey {
                user: "alice".into(),
                key: "AKIAOLD".into(),
                age_days: 91
            }]
        );
        assert_eq!(
            active_keys_over(&keys, 0, 100 * day).len(),
            2,
            "0 names every active key"
        );
    }
}
