//! The access report of a job, generated from the audit trail (DESIGN.md section 6): objects and
//! bytes read and written per location, denied attempts with their reasons, grants never used,
//! and the minimal policy that would have sufficed.
//!
//! Only what the trail recorded for the job's sessions (events whose identity carries the job id)
//! counts; the report is exact for the trail as it stands when it is built. A listing counts for
//! the read location its `prefix` falls under. Each allowed check counts for the object it names
//! (its resource ARN), so a CopyObject or UploadPartCopy reads its source and writes its
//! destination; a server-side copy moves no body over the network, so it counts objects, not
//! bytes. Refused fetches from the container-credentials endpoint (wrong source address, after the
//! window, after the job finished, a wrong token) are denials too.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Value};

use super::spec::{Location, ResolvedJob};
use super::store::JobRecord;
use crate::access::minimal::{s3_statements, LocationUse, Scope};
use crate::audit::event::{Decision, Stage};
use crate::audit::query::{self, Filter};

pub use crate::access::minimal::MAX_EXACT_OBJECTS;
/// Most denied attempts listed (all are counted).
pub const MAX_DENIALS_LISTED: usize = 100;

/// The location an allowed request used: the one covering the key (for a listing, the prefix it
/// asked for; the first location in the bucket if the trail did not record one).
fn location_of(locs: &[Location], bucket: &str, key: Option<&str>) -> Option<usize> {
    locs.iter()
        .position(|l| key.is_some_and(|k| l.covers(bucket, k)))
        .or_else(|| {
            key.is_none()
                .then(|| locs.iter().position(|l| l.bucket == bucket))
                .flatten()
        })
}

/// The bucket and key an S3 resource ARN names (`arn:aws:s3:::bucket/key`, or the bucket alone).
fn s3_target(arn: &str) -> Option<(&str, Option<&str>)> {
    let rest = arn.strip_prefix("arn:aws:s3:::")?;
    Some(match rest.split_once('/') {
        Some((bucket, key)) => (bucket, Some(key).filter(|k| !k.is_empty())),
        None => (rest, None),
    })
}

/// A denied attempt as reports list it: when, what, from where, the check that denied it and
/// why, as a job's creator may see it (conditions of bucket and trust policies are not named:
/// the reader may have no right to read those policies). Job and principal reports add their
/// own fields.
pub(crate) fn denial(e: &crate::audit::AuditEvent) -> Value {
    let check = e
        .authorization
        .iter()
        .find(|c| c.decision == Decision::Deny);
    json!({
        "time": e.event_time,
        "operation": e.event_name,
        "sourceIp": e.source_ip_address,
        "action": check.map(|c| c.action.clone()),
        "resource": check.map(|c| c.resource.clone()),
        "errorCode": e.error_code,
        "reason": check
            .map(|c| for_creator(&c.reason))
            .or(e.error_message.clone()),
    })
}

/// Builds the report for `record` from the trail under `dir` (one node: a SQLite state).
pub fn build(dir: &Path, record: &JobRecord) -> std::io::Result<Value> {
    let mut tally = Tally::new(record);
    query::scan(dir, &tally.filter(), |found| {
        tally.add(found.event);
        true
    })?;
    let mut report = tally.finish();
    if let Some(o) = report.as_object_mut() {
        o.insert("source".into(), json!("trail"));
        o.insert("complete".into(), json!(true));
    }
    Ok(report)
}

/// What a job's requests add up to, event by event (from a trail, or from the records every
/// node keeps in a shared state: [`super::facts`]).
#[derive(Debug)]
pub struct Tally<'a> {
    record: &'a JobRecord,
    job: &'a ResolvedJob,
    filter: Filter,
    reads: Vec<LocationUse>,
    writes: Vec<LocationUse>,
    denials: Vec<Value>,
    denied_count: u64,
    requests: u64,
    credential_refreshes: u64,
    sessions: BTreeSet<String>,
    by_node: std::collections::BTreeMap<String, u64>,
}

impl<'a> Tally<'a> {
    /// An empty tally for `record`.
    pub fn new(record: &'a JobRecord) -> Tally<'a> {
        let job = &record.job;
        Tally {
            record,
            job,
            filter: Filter {
                job: Some(record.id.clone()),
                since: chrono::DateTime::from_timestamp(record.created_at - 1, 0),
                ..Filter::default()
            },
            reads: job.read.iter().map(|_| LocationUse::default()).collect(),
            writes: job.write.iter().map(|_| LocationUse::default()).collect(),
            denials: Vec::new(),
            denied_count: 0,
            requests: 0,
            credential_refreshes: 0,
            sessions: BTreeSet::new(),
            by_node: std::collections::BTreeMap::new(),
        }
    }

    /// The events that belong to the job: its sessions', since it was created.
    pub fn filter(&self) -> Filter {
        self.filter.clone()
    }

    /// Counts one event (others than the job's completed ones are ignored).
    pub fn add(&mut self, e: crate::audit::AuditEvent) {
        if e.stage != Stage::Completed || !self.filter.matches(&e) {
            return;
        }
        self.requests += 1;
        *self
            .by_node
            .entry(e.node.clone().unwrap_or_else(|| "-".into()))
            .or_default() += 1;
        if let Some(ak) = &e.user_identity.access_key_id {
            self.sessions.insert(ak.clone());
        }
        if e.event_name == "GetJobCredentials" && e.decision != Some(Decision::Deny) {
            if e.http_status == Some(200) {
                self.credential_refreshes += 1;
            }
            return;
        }
        let ok = e.decision == Some(Decision::Allow)
            && e.http_status.is_some_and(|s| (200..300).contains(&s));
        // A refusal made before any policy was consulted (a rule of the API, such as a job
        // session's CreateJob) has no decision, but it is a denial all the same (a jobs sweep,
        // M2: it was counted as a request and not as denied).
        let refused_by_rule =
            e.decision.is_none() && e.error_code.as_deref() == Some("AccessDenied");
        if e.decision == Some(Decision::Deny) || refused_by_rule {
            self.denied_count += 1;
            if self.denials.len() < MAX_DENIALS_LISTED {
                let mut denial = denial(&e);
                if let Some(o) = denial.as_object_mut() {
                    o.insert("bucket".into(), json!(e.request_parameters.bucket_name));
                    o.insert("key".into(), json!(e.request_parameters.key));
                }
                self.denials.push(denial);
            }
            return;
        }
        if !ok || e.api != "s3" {
            return;
        }
        for c in e
            .authorization
            .iter()
            .filter(|c| c.decision == Decision::Allow)
        {
            // The object the check was about: for a copy, the source for s3:GetObject and the
            // destination for s3:PutObject.
            let Some((bucket, key)) = s3_target(&c.resource) else {
                continue;
            };
            let action = c.action.as_str();
            let reading = matches!(action, "s3:GetObject" | "s3:ListBucket");
            let (locs, uses) = if reading {
                (&self.job.read, &mut self.reads)
            } else {
                (&self.job.write, &mut self.writes)
            };
            let object_key = if action == "s3:ListBucket" {
                e.request_parameters.prefix.as_deref()
            } else {
                key
            };
            let Some(i) = location_of(locs, bucket, object_key) else {
                continue;
            };
            let Some(u) = uses.get_mut(i) else {
                continue;
            };
            u.actions.insert(action.to_owned());
            u.requests += 1;
            if let (Some(k), false) = (key, action == "s3:ListBucket") {
                u.keys.insert(k.to_owned());
            }
            match (action, e.event_name.as_str()) {
                ("s3:GetObject", "GetObject") => {
                    u.bytes += e.bytes_out;
                    if let Some(k) = key {
                        u.objects.insert(k.to_owned());
                    }
                }
                ("s3:GetObject", _) => {
                    if let Some(k) = key {
                        u.objects.insert(k.to_owned());
                    }
                }
                ("s3:ListBucket", _) => u.lists += 1,
                // Object bytes arrive in PutObject and UploadPart bodies; the objects exist once
                // PutObject or CompleteMultipartUpload (whose body is only the part list) succeeds.
                // A browser-form upload (PostObject) writes its object like a PutObject; its
                // bytes are the whole form's (the file and its few fields), review 11.
                ("s3:PutObject", "PutObject" | "PostObject") => {
                    u.bytes += e.bytes_in;
                    if let Some(k) = key {
                        u.objects.insert(k.to_owned());
                    }
                }
                // A copy's object exists once it succeeds; its body never crossed the network.
                ("s3:PutObject", "CompleteMultipartUpload" | "CopyObject") => {
                    if let Some(k) = key {
                        u.objects.insert(k.to_owned());
                    }
                }
                ("s3:PutObject", "UploadPart") => u.bytes += e.bytes_in,
                _ => {}
            }
        }
    }

    /// The report.
    pub fn finish(self) -> Value {
        let Tally {
            record,
            job,
            reads,
            writes,
            denials,
            denied_count,
            requests,
            credential_refreshes,
            sessions,
            by_node,
            ..
        } = self;
        let nodes: Vec<Value> = by_node
            .iter()
            .map(|(node, n)| json!({"node": node, "requests": n}))
            .collect();
        let location_json = |l: &Location, u: &LocationUse, kind: &str| {
            let mut v = json!({
                "location": l.url(),
                "objects": u.objects.len(),
                "bytes": u.bytes,
                "requests": u.requests,
                "actionsUsed": u.actions,
            });
            if let (Some(o), "read") = (v.as_object_mut(), kind) {
                o.insert("lists".into(), json!(u.lists));
            }
            v
        };
        let read_json: Vec<Value> = job
            .read
            .iter()
            .zip(&reads)
            .map(|(l, u)| location_json(l, u, "read"))
            .collect();
        let write_json: Vec<Value> = job
            .write
            .iter()
            .zip(&writes)
            .map(|(l, u)| location_json(l, u, "write"))
            .collect();
        let mut unused = Vec::new();
        for g in job.grants() {
            let used = |locs: &[Location], uses: &[LocationUse]| {
                locs.iter().zip(uses).any(|(l, u)| {
                    l.url() == g.location && g.actions.iter().any(|a| u.actions.contains(*a))
                })
            };
            let was_used = if g.kind == "read" {
                used(&job.read, &reads)
            } else {
                used(&job.write, &writes)
            };
            if !was_used {
                unused.push(json!({"sid": g.sid, "grant": g.words, "actions": g.actions, "resource": g.resource}));
            }
        }
        json!({
            "jobId": record.id,
            "name": job.name,
            "state": record.state(chrono::Utc::now().timestamp()),
            "window": {"start": super::spec::rfc3339(job.start), "end": super::spec::rfc3339(job.end)},
            "requests": requests,
            "sessions": sessions.len(),
            "credentialRefreshes": credential_refreshes,
            "read": read_json,
            "written": write_json,
            "denied": {"count": denied_count, "attempts": denials},
            "unusedGrants": unused,
            "minimalPolicy": minimal_policy(job, &reads, &writes),
            "nodes": nodes,
        })
    }
}

/// The narrowest policy covering what the job did: only the actions it used, on the objects it
/// touched (listed one by one up to [`MAX_EXACT_OBJECTS`], else the location's prefix), with the
/// job's window and source conditions. The generator is the one principal reports use
/// ([`crate::access::minimal`]).
fn minimal_policy(job: &ResolvedJob, reads: &[LocationUse], writes: &[LocationUse]) -> Value {
    let conditions = job.conditions();
    let mut statements = Vec::new();
    for (sid, locs, uses) in [("Read", &job.read, reads), ("Write", &job.write, writes)] {
        let scopes: Vec<Scope<'_>> = locs
            .iter()
            .map(|l| Scope {
                bucket: &l.bucket,
                prefix: &l.prefix,
            })
            .collect();
        statements.extend(s3_statements(sid, &scopes, uses, &conditions));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// A denial's reason as the job's creator may see it: the conditions of the job's own policy
/// and of identity policies are named, those of bucket and trust policies are not (the creator
/// may have no right to read them, and AWS's denials never name a policy's conditions,
/// https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html; review
/// round 3). The audit trail keeps them whole for operators.
pub(crate) fn for_creator(reason: &str) -> String {
    let Some((head, rest)) = reason.split_once(" (unmet: ") else {
        return reason.to_owned();
    };
    let rest = rest.strip_suffix(')').unwrap_or(rest);
    let mut hidden = false;
    let shown: Vec<&str> = rest
        .split("; ")
        .filter(|u| {
            let resource = u.starts_with("bucket policy") || u.starts_with("trust policy");
            hidden |= resource;
            !resource
        })
        .collect();
    let mut out = head.to_owned();
    let mut parts: Vec<String> = shown.iter().map(|s| (*s).to_owned()).collect();
    if hidden {
        parts.push("a condition of a resource-based policy (see the audit trail)".to_owned());
    }
    if !parts.is_empty() {
        out.push_str(&format!(" (unmet: {})", parts.join("; ")));
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::audit::event::tests_support::sample_event;
    use crate::audit::event::{AuditEvent, Check};
    use crate::jobs::spec::JobSpec;

    pub(crate) fn record(now: chrono::DateTime<chrono::Utc>) -> JobRecord {
        let job = JobSpec {
            name: "r".into(),
            read: vec!["s3://data/a/".into(), "s3://data/c/".into()],
            write: vec!["s3://out/run/".into()],
            duration: Some("1h".into()),
            source_ip: vec!["127.0.0.1".into()],
            ..JobSpec::default()
        }
        .resolve(now, None)
        .unwrap();
        JobRecord {
            id: "r-abc123".into(),
            policy: job.policy().to_string(),
            job,
            created_by: "arn:aws:iam::123456789012:root".into(),
            grant: None,
            created_at: now.timestamp(),
            finished_at: None,
            finished_by: None,
            token_hash: String::new(),
        }
    }

    pub(crate) fn event(
        op: &str,
        action: &str,
        bucket: &str,
        key: Option<&str>,
        allow: bool,
    ) -> AuditEvent {
        let mut e = sample_event();
        e.event_time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        e.event_name = op.into();
        e.user_identity.job = Some("r-abc123".into());
        e.request_parameters.bucket_name = Some(bucket.into());
        e.request_parameters.key = key.map(str::to_owned);
        let decision = if allow {
            Decision::Allow
        } else {
            Decision::Deny
        };
        e.decision = Some(decision);
        e.http_status = Some(if allow { 200 } else { 403 });
        e.bytes_in = 0;
        e.bytes_out = 0;
        e.authorization = vec![Check {
            action: action.into(),
            resource: match key {
                Some(k) => format!("arn:aws:s3:::{bucket}/{k}"),
                None => format!("arn:aws:s3:::{bucket}"),
            },
            decision,
            reason: "r".into(),
            statements: Vec::new(),
            evaluation: None,
            same_evaluation_as: None,
        }];
        e
    }

    /// Writes events as trail lines (the fields `scan` reads; the chain is not checked here).
    fn write_trail(dir: &Path, events: &[AuditEvent]) {
        let mut text = String::new();
        for (i, e) in events.iter().enumerate() {
            let mut v = serde_json::to_value(e).unwrap();
            v["seq"] = json!(i + 1);
            text.push_str(&v.to_string());
            text.push('\n');
        }
        std::fs::write(dir.join(crate::audit::sink::file_name(1)), text).unwrap();
    }

    #[test]
    fn a_copy_reads_its_source_and_writes_its_destination() {
        let dir = tempfile::tempdir().unwrap();
        let now = chrono::Utc::now();
        let mut copy = event("CopyObject", "s3:PutObject", "out", Some("run/copy"), true);
        copy.authorization.push(Check {
            action: "s3:GetObject".into(),
            resource: "arn:aws:s3:::data/a/src".into(),
            decision: Decision::Allow,
            reason: "r".into(),
            statements: Vec::new(),
            evaluation: None,
            same_evaluation_as: None,
        });
        copy.bytes_out = 234; // the CopyObjectResult document, not object bytes
        let mut refused = event("GetJobCredentials", "", "", None, false);
        refused.authorization.clear();
        refused.request_parameters.bucket_name = None;
        refused.source_ip_address = "127.0.0.2".into();
        refused.error_message =
            Some("job r-abc123 may be used only from 127.0.0.1/32, not from 127.0.0.2".into());
        let mut refresh = event("GetJobCredentials", "", "", None, true);
        refresh.authorization.clear();
        refresh.request_parameters.bucket_name = None;
        write_trail(dir.path(), &[copy, refused, refresh]);
        let r = build(dir.path(), &record(now)).unwrap();
        assert_eq!(r["read"][0]["objects"], 1, "{r:#}");
        assert_eq!(r["read"][0]["bytes"], 0);
        assert_eq!(r["written"][0]["objects"], 1);
        assert_eq!(r["credentialRefreshes"], 1);
        assert_eq!(r["denied"]["count"], 1);
        let d = &r["denied"]["attempts"][0];
        assert_eq!(d["operation"], "GetJobCredentials");
        assert_eq!(d["sourceIp"], "127.0.0.2");
        assert!(d["reason"].as_str().unwrap().contains("not from 127.0.0.2"));
        let statements = r["minimalPolicy"]["Statement"].as_array().unwrap();
        let resources: Vec<&Value> = statements.iter().map(|s| &s["Resource"]).collect();
        assert_eq!(
            resources,
            [
                &json!(["arn:aws:s3:::data/a/src"]),
                &json!(["arn:aws:s3:::out/run/copy"])
            ],
            "exact objects, not the prefixes"
        );
    }

    /// An object a job wrote through a browser form counts as written (review 11: the report
    /// showed nothing written for PostObject uploads).
    #[test]
    fn a_browser_form_upload_counts_as_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut post = event("PostObject", "s3:PutObject", "out", Some("run/form"), true);
        post.bytes_in = 2240;
        write_trail(dir.path(), &[post]);
        let r = build(dir.path(), &record(chrono::Utc::now())).unwrap();
        assert_eq!(r["written"][0]["objects"], 1, "{r:#}");
        assert_eq!(r["written"][0]["bytes"], 2240);
        assert!(r["unusedGrants"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["grant"].as_str().is_none_or(|w| !w.contains("out/run"))));
    }

    /// A multipart upload the job started and aborted made no object, yet the policy must let
    /// its requests through: the key is named (a jobs sweep, M1: replaying the job under its
    /// minimal policy was refused at CreateMultipartUpload).
    #[test]
    fn an_aborted_upload_is_in_the_minimal_policy() {
        let dir = tempfile::tempdir().unwrap();
        let now = chrono::Utc::now();
        let start = event(
            "CreateMultipartUpload",
            "s3:PutObject",
            "out",
            Some("run/mp"),
            true,
        );
        let part = event("UploadPart", "s3:PutObject", "out", Some("run/mp"), true);
        let abort = event(
            "AbortMultipartUpload",
            "s3:AbortMultipartUpload",
            "out",
            Some("run/mp"),
            true,
        );
        let put = event("PutObject", "s3:PutObject", "out", Some("run/y"), true);
        write_trail(dir.path(), &[start, part, abort, put]);
        let r = build(dir.path(), &record(now)).unwrap();
        assert_eq!(r["written"][0]["objects"], 1, "only run/y exists");
        let write = r["minimalPolicy"]["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == "Write0Objects")
            .cloned()
            .unwrap();
        let resources: Vec<&str> = write["Resource"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert!(
            resources.iter().any(|r| r.ends_with("/run/mp")),
            "{write:#}"
        );
        assert!(resources.iter().any(|r| r.ends_with("/run/y")), "{write:#}");
    }

    #[test]
    fn reads_writes_listings_and_denials_are_counted_per_location() {
        let dir = tempfile::tempdir().unwrap();
        let now = chrono::Utc::now();
        let mut list = event("ListObjectsV2", "s3:ListBucket", "data", None, true);
        list.request_parameters.prefix = Some("c/".into());
        let mut get = event("GetObject", "s3:GetObject", "data", Some("a/x"), true);
        get.bytes_out = 10;
        let mut put = event("PutObject", "s3:PutObject", "out", Some("run/y"), true);
        put.bytes_in = 7;
        let denied = event(
            "DeleteObject",
            "s3:DeleteObject",
            "out",
            Some("run/y"),
            false,
        );
        let mut other = event("GetObject", "s3:GetObject", "data", Some("a/x"), true);
        other.user_identity.job = Some("another-job".into());
        write_trail(dir.path(), &[list, get, put, denied, other]);
        let r = build(dir.path(), &record(now)).unwrap();
        assert_eq!(r["read"][0]["objects"], 1);
        assert_eq!(r["read"][0]["bytes"], 10);
        assert_eq!(r["read"][0]["lists"], 0, "the listing asked for c/");
        assert_eq!(r["read"][1]["lists"], 1);
        assert_eq!(r["written"][0]["objects"], 1);
        assert_eq!(r["written"][0]["bytes"], 7);
        assert_eq!(r["denied"]["count"], 1);
        assert_eq!(r["requests"], 4, "another job's events do not count");
        let unused: Vec<&str> = r["unusedGrants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["sid"].as_str().unwrap())
            .collect();
        assert_eq!(unused, ["Read0List", "Read1Objects"]);
        let resources: Vec<String> = r["minimalPolicy"]["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| match &s["Resource"] {
                Value::String(one) => vec![one.clone()],
                many => many
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect(),
            })
            .collect();
        assert_eq!(
            resources,
            [
                "arn:aws:s3:::data/a/x",
                "arn:aws:s3:::data",
                "arn:aws:s3:::out/run/y"
            ]
        );
    }

    /// Review round 3: the creator learns which of its job's conditions failed, not a bucket
    /// policy's Sid, operator and key.
    #[test]
    fn reasons_for_the_creator_hide_resource_policy_conditions() {
        let r = "User: X is not authorized (unmet: job policy statement 1 requires IpAddress on aws:SourceIp, the request has 127.0.0.2; bucket policy statement 0 (Sid OnlyClearedStaff) requires StringEquals on aws:PrincipalTag/clearance-level, the request has absent from the request)";
        let shown = for_creator(r);
        assert!(
            shown.contains("job policy statement 1 requires IpAddress"),
            "{shown}"
        );
        assert!(
            !shown.contains("OnlyClearedStaff") && !shown.contains("clearance-level"),
            "{shown}"
        );
        assert!(shown.contains("resource-based policy"), "{shown}");
        assert_eq!(for_creator("plain reason"), "plain reason");
        let only_bucket = "denied (unmet: bucket policy statement 2 requires Bool on aws:SecureTransport, the request has false)";
        assert_eq!(
            for_creator(only_bucket),
            "denied (unmet: a condition of a resource-based policy (see the audit trail))"
        );
    }
}
