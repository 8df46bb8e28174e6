//! The access report of a job, generated from the audit trail (DESIGN.md section 6): objects and
//! bytes read and written per location, denied attempts with their reasons, grants never used,
//! and the minimal policy that would have sufficed.
//!
//! Only what the trail recorded for the job's sessions (events whose identity carries the job id)
//! counts; the report is exact for the trail as it stands when it is built.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Value};

use super::spec::{Location, ResolvedJob};
use super::store::JobRecord;
use crate::audit::event::{Decision, Stage};
use crate::audit::query::{self, Filter};

/// Most object ARNs the minimal policy lists one by one before it names the prefix instead.
pub const MAX_EXACT_OBJECTS: usize = 10;
/// Most denied attempts listed (all are counted).
pub const MAX_DENIALS_LISTED: usize = 100;

#[derive(Debug, Default)]
struct LocationUse {
    objects: BTreeSet<String>,
    requests: u64,
    bytes: u64,
    lists: u64,
    actions: BTreeSet<String>,
}

/// The location an allowed request used: the one covering the key, or for a listing (no key)
/// the first in the bucket.
fn location_of(locs: &[Location], bucket: &str, key: Option<&str>) -> Option<usize> {
    locs.iter().position(|l| match key {
        Some(k) => l.covers(bucket, k),
        None => l.bucket == bucket,
    })
}

/// Builds the report for `record` from the trail under `dir`.
pub fn build(dir: &Path, record: &JobRecord) -> std::io::Result<Value> {
    let job = &record.job;
    let mut reads: Vec<LocationUse> = job.read.iter().map(|_| LocationUse::default()).collect();
    let mut writes: Vec<LocationUse> = job.write.iter().map(|_| LocationUse::default()).collect();
    let mut denials = Vec::new();
    let mut denied_count = 0u64;
    let mut requests = 0u64;
    let mut credential_refreshes = 0u64;
    let mut sessions = BTreeSet::new();
    let filter = Filter {
        job: Some(record.id.clone()),
        since: chrono::DateTime::from_timestamp(record.created_at - 1, 0),
        ..Filter::default()
    };
    query::scan(dir, &filter, |found| {
        let e = found.event;
        if e.stage != Stage::Completed {
            return true;
        }
        requests += 1;
        if let Some(ak) = &e.user_identity.access_key_id {
            sessions.insert(ak.clone());
        }
        if e.event_name == "GetJobCredentials" {
            if e.http_status == Some(200) {
                credential_refreshes += 1;
            }
            return true;
        }
        let ok = e.decision == Some(Decision::Allow)
            && e.http_status.is_some_and(|s| (200..300).contains(&s));
        if e.decision == Some(Decision::Deny) {
            denied_count += 1;
            if denials.len() < MAX_DENIALS_LISTED {
                let check = e
                    .authorization
                    .iter()
                    .find(|c| c.decision == Decision::Deny);
                denials.push(json!({
                    "time": e.event_time,
                    "operation": e.event_name,
                    "bucket": e.request_parameters.bucket_name,
                    "key": e.request_parameters.key,
                    "action": check.map(|c| c.action.clone()),
                    "resource": check.map(|c| c.resource.clone()),
                    "errorCode": e.error_code,
                    "reason": check.map(|c| c.reason.clone()).or(e.error_message.clone()),
                }));
            }
            return true;
        }
        if !ok || e.api != "s3" {
            return true;
        }
        let Some(bucket) = e.request_parameters.bucket_name.as_deref() else {
            return true;
        };
        let key = e
            .request_parameters
            .key
            .as_deref()
            .filter(|k| !k.is_empty());
        for c in e
            .authorization
            .iter()
            .filter(|c| c.decision == Decision::Allow)
        {
            let action = c.action.as_str();
            let reading = matches!(action, "s3:GetObject" | "s3:ListBucket");
            let (locs, uses) = if reading {
                (&job.read, &mut reads)
            } else {
                (&job.write, &mut writes)
            };
            let object_key = if action == "s3:ListBucket" { None } else { key };
            let Some(i) = location_of(locs, bucket, object_key) else {
                continue;
            };
            let Some(u) = uses.get_mut(i) else {
                continue;
            };
            u.actions.insert(action.to_owned());
            u.requests += 1;
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
                ("s3:PutObject", "PutObject") => {
                    u.bytes += e.bytes_in;
                    if let Some(k) = key {
                        u.objects.insert(k.to_owned());
                    }
                }
                ("s3:PutObject", "CompleteMultipartUpload") => {
                    if let Some(k) = key {
                        u.objects.insert(k.to_owned());
                    }
                }
                ("s3:PutObject", "UploadPart") => u.bytes += e.bytes_in,
                _ => {}
            }
        }
        true
    })?;

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
    Ok(json!({
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
    }))
}

/// The narrowest policy covering what the job did: only the actions it used, on the objects it
/// touched (listed one by one up to [`MAX_EXACT_OBJECTS`], else the location's prefix), with the
/// job's window and source conditions.
fn minimal_policy(job: &ResolvedJob, reads: &[LocationUse], writes: &[LocationUse]) -> Value {
    let conditions = job.conditions();
    let mut statements = Vec::new();
    let mut add = |sid: String, locs: &[Location], uses: &[LocationUse]| {
        for (i, (l, u)) in locs.iter().zip(uses).enumerate() {
            let object_actions: Vec<&String> =
                u.actions.iter().filter(|a| *a != "s3:ListBucket").collect();
            if !object_actions.is_empty() {
                let resources: Vec<String> =
                    if u.objects.is_empty() || u.objects.len() > MAX_EXACT_OBJECTS {
                        vec![l.objects_arn()]
                    } else {
                        u.objects
                            .iter()
                            .map(|k| format!("arn:aws:s3:::{}/{k}", l.bucket))
                            .collect()
                    };
                statements.push(json!({
                    "Sid": format!("{sid}{i}Objects"),
                    "Effect": "Allow",
                    "Action": object_actions,
                    "Resource": resources,
                    "Condition": conditions,
                }));
            }
            if u.actions.contains("s3:ListBucket") {
                let mut cond = conditions.clone();
                if let (Some(o), false) = (cond.as_object_mut(), l.prefix.is_empty()) {
                    o.insert(
                        "StringLike".into(),
                        json!({"s3:prefix": format!("{}*", l.prefix)}),
                    );
                }
                statements.push(json!({
                    "Sid": format!("{sid}{i}List"),
                    "Effect": "Allow",
                    "Action": "s3:ListBucket",
                    "Resource": l.bucket_arn(),
                    "Condition": cond,
                }));
            }
        }
    };
    add("Read".into(), &job.read, reads);
    add("Write".into(), &job.write, writes);
    json!({"Version": "2012-10-17", "Statement": statements})
}
