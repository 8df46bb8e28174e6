//! What principals did, from their audit events: the tally behind `keyhole access report` and
//! `keyhole access unused`.
//!
//! # Whose events
//! An event belongs to a user when its `userIdentity.principalId` is the user's unique id
//! (`AIDA...`), and to a role when it is a session of the role (`AROA...:SESSION`), as CloudTrail
//! records `principalId` and `aws:userid` has it
//! (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html#principaltable).
//! Matching by unique id and not by ARN means a user or role deleted and created again under the
//! same name is a different principal, with a history of its own
//! (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-unique-ids).
//! A role's sessions include those of jobs that run with the role.
//!
//! # Use and attempts
//! Only `completed` events count (a write-ahead record is not a second request). A denied
//! request is an attempt, listed with the check that denied it, never a use. Every allowed check
//! of an allowed request is a use of its action on its resource, whatever the handler answered
//! afterwards (a GetObject of a missing key still needed `s3:GetObject`). A role is assumed when
//! an allowed AssumeRole or AssumeRoleWithWebIdentity answered with a session of its unique id
//! (`responseElements.assumedRoleUser.assumedRoleId`); a job's sessions of a role are minted by
//! the job, not assumed, and count through their requests.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{json, Value};

use super::minimal::{common_prefix, LocationUse};
use crate::audit::event::{AuditEvent, Decision, Stage};

/// Most distinct resources remembered per action (beyond it, the action's resources are
/// summarised and no grant on it is called unused: it may have been used on one not kept).
pub const MAX_TRACKED_RESOURCES: usize = 10_000;
/// Most denied attempts listed per principal (all are counted).
pub const MAX_DENIALS_LISTED: usize = 100;

/// A count and the time of the newest event counted.
#[derive(Debug, Default, Clone)]
pub struct Counted {
    /// How many.
    pub count: u64,
    /// The newest `eventTime` (RFC 3339; they sort as text).
    pub last: String,
}

impl Counted {
    fn add(&mut self, time: &str) {
        self.count += 1;
        if time > self.last.as_str() {
            time.clone_into(&mut self.last);
        }
    }

    fn json(&self) -> Value {
        json!({"count": self.count, "lastUsed": self.last})
    }
}

/// What one bucket saw of a principal.
#[derive(Debug, Default, Clone)]
pub struct BucketUse {
    /// Actions, objects, counts (the generator's input).
    pub used: LocationUse,
    /// The prefix (ending in `/`, or empty) every key and listing prefix used shares.
    pub prefix: Option<String>,
    /// Newest use.
    pub last: String,
    /// Whether more objects were touched than [`MAX_TRACKED_RESOURCES`].
    pub objects_truncated: bool,
}

impl BucketUse {
    fn note_prefix(&mut self, key: &str) {
        let p = match &self.prefix {
            None => common_prefix([key]),
            Some(p) => common_prefix([p.as_str(), key]),
        };
        self.prefix = Some(p);
    }
}

/// The S3 resource a check named, as (bucket, key): `None` for other resources and for
/// patterns (an empty bucket or one with `*`).
pub(crate) fn concrete_s3(resource: &str) -> Option<(&str, Option<&str>)> {
    let rest = resource.strip_prefix("arn:aws:s3:::")?;
    let (bucket, key) = match rest.split_once('/') {
        Some((b, k)) => (b, Some(k)),
        None => (rest, None),
    };
    (!bucket.is_empty() && !bucket.contains('*')).then_some((bucket, key))
}

/// Everything one principal's events add up to.
#[derive(Debug, Default, Clone)]
pub struct Usage {
    /// Completed requests.
    pub requests: u64,
    /// Denied requests.
    pub denied: u64,
    /// Denied attempts, up to [`MAX_DENIALS_LISTED`].
    pub denials: Vec<Value>,
    /// Oldest and newest event.
    pub first: Option<String>,
    /// Newest event.
    pub last: Option<String>,
    /// Each action used (allowed), with its count and last use.
    pub actions: BTreeMap<String, Counted>,
    /// S3 use per bucket.
    pub buckets: BTreeMap<String, BucketUse>,
    /// The resources each action was used on (up to [`MAX_TRACKED_RESOURCES`] per action).
    pub resources: BTreeMap<String, BTreeSet<String>>,
    /// Actions with more resources than were kept.
    pub overflowed: BTreeSet<String>,
    /// Access keys the principal signed with (long-term or session keys).
    pub keys: BTreeMap<String, Counted>,
    /// Session names (roles).
    pub sessions: BTreeSet<String>,
    /// Roles this principal assumed, by role ARN.
    pub assumed_roles: BTreeMap<String, Counted>,
    /// Times this role was assumed (by anyone).
    pub assumed: Counted,
}

impl Usage {
    /// Counts one of the principal's own completed events.
    fn add(&mut self, e: &AuditEvent) {
        let t = e.event_time.as_str();
        self.requests += 1;
        if self.first.as_deref().is_none_or(|f| t < f) {
            self.first = Some(t.to_owned());
        }
        if self.last.as_deref().is_none_or(|l| t > l) {
            self.last = Some(t.to_owned());
        }
        if let Some(ak) = &e.user_identity.access_key_id {
            self.keys.entry(ak.clone()).or_default().add(t);
        }
        if let Some(s) = &e.user_identity.session_name {
            self.sessions.insert(s.clone());
        }
        if e.decision == Some(Decision::Deny) {
            self.denied += 1;
            if self.denials.len() < MAX_DENIALS_LISTED {
                let mut denial = crate::jobs::report::denial(e);
                if let Some(o) = denial.as_object_mut() {
                    o.insert("accessKeyId".into(), json!(e.user_identity.access_key_id));
                }
                self.denials.push(denial);
            }
            return;
        }
        // Refused before any decision (a malformed request): neither use nor attempt.
        if e.decision != Some(Decision::Allow) {
            return;
        }
        for c in e
            .authorization
            .iter()
            .filter(|c| c.decision == Decision::Allow)
        {
            self.actions.entry(c.action.clone()).or_default().add(t);
            let kept = self.resources.entry(c.action.clone()).or_default();
            if kept.len() < MAX_TRACKED_RESOURCES || kept.contains(&c.resource) {
                kept.insert(c.resource.clone());
            } else {
                self.overflowed.insert(c.action.clone());
            }
            if c.action == "sts:AssumeRole" && e.http_status.is_some_and(|s| s < 300) {
                self.assumed_roles
                    .entry(c.resource.clone())
                    .or_default()
                    .add(t);
            }
            self.add_s3(e, &c.action, &c.resource);
        }
    }

    fn add_s3(&mut self, e: &AuditEvent, action: &str, resource: &str) {
        let Some((bucket, key)) = concrete_s3(resource) else {
            return;
        };
        let b = self.buckets.entry(bucket.to_owned()).or_default();
        if e.event_time > b.last {
            b.last.clone_from(&e.event_time);
        }
        b.used.requests += 1;
        match key {
            Some(k) => {
                b.used.actions.insert(action.to_owned());
                b.note_prefix(k);
                if b.used.objects.len() < MAX_TRACKED_RESOURCES || b.used.objects.contains(k) {
                    b.used.objects.insert(k.to_owned());
                } else {
                    b.objects_truncated = true;
                }
                match (action, e.event_name.as_str()) {
                    ("s3:GetObject", "GetObject") => b.used.bytes += e.bytes_out,
                    ("s3:PutObject", "PutObject" | "PostObject" | "UploadPart") => {
                        b.used.bytes += e.bytes_in;
                    }
                    _ => {}
                }
            }
            None if action == "s3:ListBucket" => {
                b.used.actions.insert(action.to_owned());
                b.used.lists += 1;
                // A listing without a prefix lists the whole bucket.
                let prefix = e.request_parameters.prefix.as_deref().unwrap_or("");
                b.note_prefix(prefix);
            }
            None => {
                b.used.bucket_actions.insert(action.to_owned());
            }
        }
    }

    /// The S3 use as JSON, one entry per bucket.
    pub fn buckets_json(&self) -> Vec<Value> {
        self.buckets
            .iter()
            .map(|(name, b)| {
                json!({
                    "bucket": name,
                    "prefix": b.prefix.clone().unwrap_or_default(),
                    "objects": b.used.objects.len(),
                    "objectsTruncated": b.objects_truncated,
                    "lists": b.used.lists,
                    "bytes": b.used.bytes,
                    "requests": b.used.requests,
                    "actions": b.used.actions.iter().chain(&b.used.bucket_actions).collect::<BTreeSet<_>>(),
                    "lastUsed": b.last,
                })
            })
            .collect()
    }

    /// The actions used, with counts and last use.
    pub fn actions_json(&self) -> Vec<Value> {
        self.actions
            .iter()
            .map(|(a, c)| {
                let mut v = c.json();
                if let Some(o) = v.as_object_mut() {
                    o.insert("action".into(), json!(a));
                }
                v
            })
            .collect()
    }
}

/// Which principal an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// An IAM user (its events: `principalId` = `AIDA...`).
    User,
    /// An IAM role (its events: `principalId` = `AROA...:SESSION`).
    Role,
}

/// The tally of several principals at once, by unique id, over one pass of the trail.
#[derive(Debug, Default)]
pub struct Tally {
    usage: HashMap<String, Usage>,
    kinds: HashMap<String, Kind>,
    since: Option<chrono::DateTime<chrono::Utc>>,
}

impl Tally {
    /// A tally of the principals `ids` (unique id and kind), for events at or after `since`.
    pub fn new(
        ids: impl IntoIterator<Item = (String, Kind)>,
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Tally {
        let kinds: HashMap<String, Kind> = ids.into_iter().collect();
        Tally {
            usage: kinds
                .keys()
                .map(|k| (k.clone(), Usage::default()))
                .collect(),
            kinds,
            since,
        }
    }

    /// The trail filter: completed events in the window (the principals are picked by
    /// [`Tally::add`]). With one principal, lines that do not name its unique id (as
    /// `principalId`, or as the `assumedRoleId` of an AssumeRole) are skipped unparsed.
    pub fn filter(&self) -> crate::audit::query::Filter {
        let only = match self.kinds.keys().collect::<Vec<_>>().as_slice() {
            [one] => Some((*one).clone()),
            _ => None,
        };
        crate::audit::query::Filter {
            since: self.since,
            stage: Some(Stage::Completed),
            line_contains: only,
            ..Default::default()
        }
    }

    /// The principal an event's `principalId` names, if tallied.
    fn owner(&self, principal_id: &str) -> Option<&String> {
        let id = principal_id
            .split_once(':')
            .map_or(principal_id, |(role, _)| role);
        let (key, kind) = self.kinds.get_key_value(id)?;
        let session = principal_id.contains(':');
        (session == (*kind == Kind::Role)).then_some(key)
    }

    /// Counts one event.
    pub fn add(&mut self, e: &AuditEvent) {
        if e.stage != Stage::Completed || !self.in_window(e) {
            return;
        }
        if let Some(pid) = e.user_identity.principal_id.as_deref() {
            if let Some(id) = self.owner(pid).cloned() {
                if let Some(u) = self.usage.get_mut(&id) {
                    u.add(e);
                }
            }
        }
        // An AssumeRole (or AssumeRoleWithWebIdentity) that issued a session of a tallied role:
        // the role was assumed.
        if matches!(
            e.event_name.as_str(),
            "AssumeRole" | "AssumeRoleWithWebIdentity"
        ) && e.decision == Some(Decision::Allow)
        {
            let assumed = e
                .response_elements
                .as_ref()
                .and_then(|r| r.pointer("/assumedRoleUser/assumedRoleId"))
                .and_then(Value::as_str);
            if let Some(id) = assumed.and_then(|a| self.owner(a)).cloned() {
                if let Some(u) = self.usage.get_mut(&id) {
                    u.assumed.add(&e.event_time);
                }
            }
        }
    }

    fn in_window(&self, e: &AuditEvent) -> bool {
        self.since.is_none_or(|s| {
            chrono::DateTime::parse_from_rfc3339(&e.event_time).is_ok_and(|t| t >= s)
        })
    }

    /// What the principal with unique id `id` did.
    pub fn usage(&self, id: &str) -> Usage {
        self.usage.get(id).cloned().unwrap_or_default()
    }

    /// Takes the principal's usage out of the tally.
    pub fn take(&mut self, id: &str) -> Usage {
        self.usage.remove(id).unwrap_or_default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::audit::event::tests_support::sample_event;
    use crate::audit::event::Check;

    pub(crate) const USER_ID: &str = "AIDAUSER0000000000001";
    pub(crate) const ROLE_ID: &str = "AROAROLE0000000000001";

    /// A completed event of `principal_id` checking `action` on `resource`.
    pub(crate) fn event(
        principal_id: &str,
        op: &str,
        action: &str,
        resource: &str,
        allow: bool,
    ) -> AuditEvent {
        let mut e = sample_event();
        e.event_name = op.into();
        e.user_identity.kind = if principal_id.contains(':') {
            "AssumedRole".into()
        } else {
            "IAMUser".into()
        };
        e.user_identity.principal_id = Some(principal_id.into());
        e.user_identity.access_key_id = Some("AKIAUSERKEY000000001".into());
        let decision = if allow {
            Decision::Allow
        } else {
            Decision::Deny
        };
        e.decision = Some(decision);
        e.http_status = Some(if allow { 200 } else { 403 });
        e.authorization = vec![Check {
            action: action.into(),
            resource: resource.into(),
            decision,
            reason: "because".into(),
            statements: Vec::new(),
            evaluation: None,
            same_evaluation_as: None,
        }];
        e
    }

    fn tally() -> Tally {
        Tally::new(
            [
                (USER_ID.to_owned(), Kind::User),
                (ROLE_ID.to_owned(), Kind::Role),
            ],
            None,
        )
    }

    #[test]
    fn events_belong_by_unique_id_not_by_name() {
        let mut t = tally();
        t.add(&event(
            USER_ID,
            "GetObject",
            "s3:GetObject",
            "arn:aws:s3:::b/k",
            true,
        ));
        // The same name, another incarnation: another id.
        let mut namesake = event(
            "AIDAUSER0000000000002",
            "GetObject",
            "s3:GetObject",
            "arn:aws:s3:::b/other",
            true,
        );
        namesake.user_identity.arn = Some("arn:aws:iam::123456789012:user/alice".into());
        t.add(&namesake);
        t.add(&event(
            &format!("{ROLE_ID}:etl"),
            "PutObject",
            "s3:PutObject",
            "arn:aws:s3:::out/x",
            true,
        ));
        // A user id followed by a session name is not the user.
        t.add(&event(
            &format!("{USER_ID}:x"),
            "GetObject",
            "s3:GetObject",
            "arn:aws:s3:::b/y",
            true,
        ));
        let u = t.usage(USER_ID);
        assert_eq!(u.requests, 1);
        assert_eq!(
            u.buckets["b"].used.objects.iter().collect::<Vec<_>>(),
            ["k"]
        );
        let r = t.usage(ROLE_ID);
        assert_eq!(r.requests, 1);
        assert!(r.actions.contains_key("s3:PutObject"));
    }

    #[test]
    fn denials_are_attempts_not_use_and_write_ahead_records_do_not_count() {
        let mut t = tally();
        t.add(&event(
            USER_ID,
            "DeleteObject",
            "s3:DeleteObject",
            "arn:aws:s3:::b/k",
            false,
        ));
        let mut ahead = event(
            USER_ID,
            "PutObject",
            "s3:PutObject",
            "arn:aws:s3:::b/k",
            true,
        );
        ahead.stage = Stage::Authorized;
        t.add(&ahead);
        let u = t.usage(USER_ID);
        assert_eq!((u.requests, u.denied), (1, 1));
        assert!(u.actions.is_empty(), "{:?}", u.actions);
        assert_eq!(u.denials[0]["action"], "s3:DeleteObject");
        assert_eq!(u.denials[0]["reason"], "because");
    }

    #[test]
    fn listings_and_keys_narrow_the_bucket_prefix() {
        let mut t = tally();
        let mut list = event(
            USER_ID,
            "ListObjectsV2",
            "s3:ListBucket",
            "arn:aws:s3:::b",
            true,
        );
        list.request_parameters.prefix = Some("data/train/".into());
        t.add(&list);
        for k in ["data/train/1", "data/train/2"] {
            t.add(&event(
                USER_ID,
                "GetObject",
                "s3:GetObject",
                &format!("arn:aws:s3:::b/{k}"),
                true,
            ));
        }
        t.add(&event(
            USER_ID,
            "GetBucketLocation",
            "s3:GetBucketLocation",
            "arn:aws:s3:::b",
            true,
        ));
        let u = t.usage(USER_ID);
        let b = &u.buckets["b"];
        assert_eq!(b.prefix.as_deref(), Some("data/train/"));
        assert_eq!(b.used.lists, 1);
        assert!(b.used.bucket_actions.contains("s3:GetBucketLocation"));
        assert_eq!(u.actions["s3:GetObject"].count, 2);
        // A listing of the whole bucket widens the prefix to nothing.
        let whole = event(
            USER_ID,
            "ListObjectsV2",
            "s3:ListBucket",
            "arn:aws:s3:::b",
            true,
        );
        t.add(&whole);
        assert_eq!(t.usage(USER_ID).buckets["b"].prefix.as_deref(), Some(""));
    }

    #[test]
    fn an_assume_role_counts_for_the_role_by_its_session_id() {
        let mut t = tally();
        let mut assume = event(
            USER_ID,
            "AssumeRole",
            "sts:AssumeRole",
            "arn:aws:iam::123456789012:role/etl",
            true,
        );
        assume.response_elements = Some(json!({
            "assumedRoleUser": {"assumedRoleId": format!("{ROLE_ID}:s1"), "arn": "arn:aws:sts::123456789012:assumed-role/etl/s1"}
        }));
        t.add(&assume);
        assert_eq!(t.usage(ROLE_ID).assumed.count, 1);
        let u = t.usage(USER_ID);
        assert_eq!(
            u.assumed_roles["arn:aws:iam::123456789012:role/etl"].count,
            1
        );
    }

    #[test]
    fn the_window_excludes_older_events() {
        let since = chrono::DateTime::parse_from_rfc3339("2026-11-23T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let mut t = Tally::new([(USER_ID.to_owned(), Kind::User)], Some(since));
        // sample_event's time is 2026-11-22T08:00:00Z.
        t.add(&event(
            USER_ID,
            "GetObject",
            "s3:GetObject",
            "arn:aws:s3:::b/k",
            true,
        ));
        assert_eq!(t.usage(USER_ID).requests, 0);
    }
}
