//! The job spec (TOML or JSON, DESIGN.md section 6) and the compiler that turns it into the
//! narrowest session policy.
//!
//! Pure: no I/O. The gateway adds what only it knows (the caller's address as the default source,
//! whether the buckets exist) before calling [`JobSpec::resolve`].
//!
//! The compiled policy is AWS IAM grammar, so the same document can be attached in AWS unchanged:
//! - read = `s3:GetObject` on `arn:aws:s3:::BUCKET/PREFIX*` and `s3:ListBucket` on
//!   `arn:aws:s3:::BUCKET` with `StringLike` on `s3:prefix` (listing the bucket root or another
//!   prefix is denied; https://docs.aws.amazon.com/AmazonS3/latest/userguide/amazon-s3-policy-keys.html);
//! - write = `s3:PutObject` (which also covers CreateMultipartUpload, UploadPart and
//!   CompleteMultipartUpload), `s3:AbortMultipartUpload`, `s3:ListMultipartUploadParts` on the
//!   prefix, and nothing that reads or deletes
//!   (https://docs.aws.amazon.com/AmazonS3/latest/API/mpuoverview.html#mpuAndPermissions);
//! - every statement carries `DateGreaterThanEquals`/`DateLessThan` on `aws:CurrentTime` and, when
//!   the source is known, `IpAddress` on `aws:SourceIp`.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use keyhole_policy::condition::ip::Cidr;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Longest window a job may ask for.
pub const MAX_JOB_DAYS: i64 = 30;
/// Longest job name.
pub const MAX_NAME_CHARS: usize = 64;

/// A job spec as written by a user (TOML file, JSON body of CreateJob, or CLI flags).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Job name: letters, digits, `-`, `_`, `.`; 1 to 64 characters.
    #[serde(default)]
    pub name: String,
    /// Locations the job reads: `s3://bucket` or `s3://bucket/prefix/`.
    #[serde(default)]
    pub read: Vec<String>,
    /// Locations the job writes (and never reads or deletes).
    #[serde(default)]
    pub write: Vec<String>,
    /// Start of the window (RFC 3339); default: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Length of the window (`3h`, `90m`, `1h30m`, `45s`, `2d`); or give `end`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// End of the window (RFC 3339); or give `duration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// Source addresses or CIDRs; default: the address that starts the job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_ip: Vec<String>,
    /// Optional capping role: the job gets the role's policies intersected with the job policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Free-form labels (shown in listings and reports).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A spec that does not make a valid job: names the field and says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job spec field `{field}`: {message}")]
pub struct SpecError {
    /// The bad field (`name`, `read[1]`, `end`, ...).
    pub field: String,
    /// What is wrong and what would be valid.
    pub message: String,
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        message: message.into(),
    }
}

/// One `s3://` location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix: empty (the whole bucket) or ending in `/`.
    pub prefix: String,
}

impl Location {
    /// Parses `s3://bucket` or `s3://bucket/prefix/`.
    pub fn parse(field: &str, text: &str) -> Result<Location, SpecError> {
        let rest = text.strip_prefix("s3://").ok_or_else(|| {
            bad(
                field,
                format!("`{text}` is not an S3 location; write s3://BUCKET or s3://BUCKET/PREFIX/"),
            )
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !bucket.starts_with(['-', '.'])
            && !bucket.ends_with(['-', '.']);
        if !bucket_ok {
            return Err(bad(
                field,
                format!(
                    "`{bucket}` in `{text}` is not a bucket name (3-63 lowercase letters, digits, `-` and `.`)"
                ),
            ));
        }
        // Control characters (ESC, CR, NUL, DEL, ...) would be printed raw by `job plan` and
        // `job show`, where an escape sequence can rewrite what an administrator reads: refused,
        // and echoed escaped (a jobs sweep, M5).
        // Bidi overrides and other invisible format marks make a location read differently
        // from what it grants, as control characters can (review 36, F3).
        if let Some(c) = prefix
            .chars()
            .find(|c| crate::audit::query::is_terminal_unsafe(*c))
        {
            return Err(bad(
                field,
                format!(
                    "`{}` holds a control or invisible formatting character (U+{:04X}); a location is a prefix of printable characters",
                    text.escape_debug(),
                    u32::from(c)
                ),
            ));
        }
        if prefix.contains(['*', '?', '$']) {
            return Err(bad(
                field,
                format!(
                    "`{text}`: `*`, `?` and `$` are not allowed in a location (they would be policy wildcards or variables); name a literal prefix"
                ),
            ));
        }
        if prefix.len() > 1000 {
            return Err(bad(field, "the prefix is longer than 1000 bytes"));
        }
        // Keys are literal, so `wiki/../private/` names keys that start with those characters;
        // but a reader (and a CreateJob condition on keyhole:ReadLocations) would take it for
        // `private/`. Such locations are refused rather than guessed at.
        if let Some(seg) = prefix
            .strip_suffix('/')
            .and_then(|p| p.split('/').find(|s| matches!(*s, "" | "." | "..")))
        {
            return Err(bad(
                field,
                format!(
                    "`{text}` has an empty, `.` or `..` path segment (`{seg}`); S3 keys are literal, so write the prefix exactly as the keys begin, without `//`, `./` or `../`"
                ),
            ));
        }
        if !prefix.is_empty() && !prefix.ends_with('/') {
            return Err(bad(
                field,
                format!(
                    "`{text}` must end with `/` (s3://{bucket}/{prefix}/): without it the grant would also cover s3://{bucket}/{prefix}-other/..."
                ),
            ));
        }
        Ok(Location {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// `s3://bucket/prefix`.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    /// The object ARN pattern the location covers.
    pub fn objects_arn(&self) -> String {
        format!("arn:aws:s3:::{}/{}*", self.bucket, self.prefix)
    }

    /// The bucket ARN.
    pub fn bucket_arn(&self) -> String {
        format!("arn:aws:s3:::{}", self.bucket)
    }

    /// Whether the location covers `bucket`/`key`.
    pub fn covers(&self, bucket: &str, key: &str) -> bool {
        self.bucket == bucket && key.starts_with(&self.prefix)
    }

    fn overlaps(&self, other: &Location) -> bool {
        self.bucket == other.bucket
            && (self.prefix.starts_with(&other.prefix) || other.prefix.starts_with(&self.prefix))
    }
}

/// A validated job: what the compiler and the gateway work from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedJob {
    /// Job name.
    pub name: String,
    /// Read locations.
    pub read: Vec<Location>,
    /// Write locations.
    pub write: Vec<Location>,
    /// Window start.
    pub start: DateTime<Utc>,
    /// Window end (exclusive).
    pub end: DateTime<Utc>,
    /// Source CIDRs, normalized (`1.2.3.4` becomes `1.2.3.4/32`); empty = not yet known.
    pub source_ip: Vec<String>,
    /// Capping role name.
    pub role: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// Parses `3h`, `90m`, `1h30m`, `45s`, `2d` (units d, h, m, s; at least one).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::zero();
    let mut digits = String::new();
    let mut any = false;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: i64 = digits.parse().ok()?;
        digits.clear();
        let unit = match c {
            'd' => Duration::try_days(n)?,
            'h' => Duration::try_hours(n)?,
            'm' => Duration::try_minutes(n)?,
            's' => Duration::try_seconds(n)?,
            _ => return None,
        };
        total = total.checked_add(&unit)?;
        any = true;
    }
    (digits.is_empty() && any).then_some(total)
}

/// Formats a duration the way [`parse_duration`] reads it (`1h30m`).
pub fn format_duration(d: Duration) -> String {
    let mut s = d.num_seconds().max(0);
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if s >= len {
            out.push_str(&format!("{}{unit}", s / len));
            s %= len;
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

fn parse_time(field: &str, text: &str) -> Result<DateTime<Utc>, SpecError> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            bad(
                field,
                format!("`{text}` is not a time; write RFC 3339, e.g. 2025-07-16T01:00:00Z"),
            )
        })
}

/// Normalizes one source address or CIDR (`10.0.0.7` → `10.0.0.7/32`).
pub fn normalize_cidr(field: &str, text: &str) -> Result<String, SpecError> {
    let t = text.trim();
    let with_len = if t.contains('/') {
        t.to_owned()
    } else if t.contains(':') {
        format!("{t}/128")
    } else {
        format!("{t}/32")
    };
    match Cidr::parse(&with_len) {
        Some(_) if !t.is_empty() => Ok(with_len),
        _ => Err(bad(
            field,
            format!(
                "`{text}` is not an IP address or CIDR (e.g. 203.0.113.42/32 or 2001:db8::/64)"
            ),
        )),
    }
}

/// A spec's fields, as its errors list them.
pub const SPEC_FIELDS: [&str; 9] = [
    "name",
    "read",
    "write",
    "start",
    "duration",
    "end",
    "source_ip",
    "role",
    "labels",
];

impl JobSpec {
    /// Reads CreateJob's JSON body. A value of the wrong type names its field (serde's own
    /// error on a whole object names none), with the form the field takes.
    pub fn from_json(body: &serde_json::Value) -> Result<JobSpec, SpecError> {
        use serde::Deserialize;
        let fields = || format!("(fields: {})", SPEC_FIELDS.join(", "));
        // An object only: serde would also read a struct from an array, field by position.
        let Some(object) = body.as_object() else {
            return Err(bad(
                "spec",
                format!(
                    "the job spec is a JSON object such as {{\"read\": [\"s3://bucket/prefix/\"], \"duration\": \"1h\"}} {}",
                    fields()
                ),
            ));
        };
        let whole = match JobSpec::deserialize(body) {
            Ok(spec) => return Ok(spec),
            Err(e) => e,
        };
        // Refused: find the field to name, trying each alone.
        for (key, value) in object {
            if !SPEC_FIELDS.contains(&key.as_str()) {
                return Err(bad(
                    key.clone(),
                    format!("unknown field `{key}` {}", fields()),
                ));
            }
            let one =
                serde_json::Value::Object([(key.clone(), value.clone())].into_iter().collect());
            if let Err(e) = JobSpec::deserialize(&one) {
                let form = match key.as_str() {
                    "read" | "write" | "source_ip" => "a list of strings, such as [\"...\"]",
                    "labels" => "an object of strings, such as {\"team\": \"nlp\"}",
                    "start" | "end" => "a string, such as \"2026-07-16T01:00:00Z\"",
                    "duration" => "a string, such as \"3h\"",
                    _ => "a string",
                };
                return Err(bad(key.clone(), format!("{e}; {key} is {form}")));
            }
        }
        Err(bad("spec", format!("{whole} {}", fields())))
    }

    /// Parses a TOML spec file's text.
    pub fn from_toml(text: &str) -> Result<JobSpec, SpecError> {
        toml::from_str(text).map_err(|e| {
            let message = e.message().trim().to_owned();
            // Where the parser stopped: its line and column, and the key written on that line,
            // so a wrong type names its field (a jobs sweep, M4: they all named `spec`).
            let at = e.span().map(|span| {
                let before = text.get(..span.start).unwrap_or(text);
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                let key = text
                    .lines()
                    .nth(line - 1)
                    .and_then(|l| l.split_once('='))
                    .map(|(k, _)| k.trim().to_owned())
                    .filter(|k| SPEC_FIELDS.contains(&k.as_str()));
                (line, column, key)
            });
            let unknown = message
                .split('`')
                .nth(1)
                .filter(|_| message.starts_with("unknown field"))
                .map(str::to_owned);
            let field = unknown
                .or_else(|| at.as_ref().and_then(|(_, _, k)| k.clone()))
                .unwrap_or_else(|| "spec".to_owned());
            let mut hint = String::new();
            if matches!(field.as_str(), "start" | "end") && message.contains("expected a string") {
                hint = format!(
                    "; write the time as a quoted string, such as {field} = \"2026-07-16T01:00:00Z\""
                );
            } else if matches!(field.as_str(), "read" | "write" | "source_ip")
                && message.contains("expected a sequence")
            {
                hint = format!("; {field} is a list, such as {field} = [\"...\"]");
            } else if text.trim_start().starts_with(['{', '-']) || field == "spec" {
                hint = "; a spec file is TOML (`key = value` lines), not JSON or YAML".to_owned();
            }
            let place = at
                .map(|(line, column, _)| format!(" (line {line}, column {column})"))
                .unwrap_or_default();
            bad(
                field,
                format!(
                    "{message}{place}{hint} (fields: {})",
                    SPEC_FIELDS.join(", ")
                ),
            )
        })
    }

    /// Validates the spec at time `now`. `default_source` fills in `source_ip` when the spec has
    /// none (the gateway passes the caller's address; `job plan` passes `None`).
    pub fn resolve(
        &self,
        now: DateTime<Utc>,
        default_source: Option<std::net::IpAddr>,
    ) -> Result<ResolvedJob, SpecError> {
        let name_ok = (1..=MAX_NAME_CHARS).contains(&self.name.chars().count())
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !name_ok {
            return Err(bad(
                "name",
                format!(
                    "`{}` is not a job name: use 1 to {MAX_NAME_CHARS} letters, digits, `-`, `_` or `.`",
                    self.name
                ),
            ));
        }
        if self.read.is_empty() && self.write.is_empty() {
            return Err(bad(
                "read",
                "a job needs at least one read or write location (s3://BUCKET/PREFIX/)",
            ));
        }
        let parse_all = |field: &str, list: &[String]| -> Result<Vec<Location>, SpecError> {
            list.iter()
                .enumerate()
                .map(|(i, t)| Location::parse(&format!("{field}[{i}]"), t))
                .collect()
        };
        let read = parse_all("read", &self.read)?;
        let write = parse_all("write", &self.write)?;
        for (i, r) in read.iter().enumerate() {
            for (j, w) in write.iter().enumerate() {
                if r.overlaps(w) {
                    // The suggestion must itself be outside every read location: a prefix
                    // beside the read one in the same bucket, or another bucket when the job
                    // reads the whole bucket (a jobs sweep, L1: it suggested a prefix inside it).
                    let suggestion = Location {
                        bucket: w.bucket.clone(),
                        prefix: format!("runs/{}/", self.name),
                    };
                    let fix = if read.iter().any(|r| r.overlaps(&suggestion)) {
                        format!(
                            "write to another bucket, or read prefixes of s3://{} instead of the whole bucket",
                            w.bucket
                        )
                    } else {
                        format!("write to a separate prefix such as {}", suggestion.url())
                    };
                    return Err(bad(
                        format!("write[{j}]"),
                        format!(
                            "{} overlaps read[{i}] {}: a job's output must be disjoint from its inputs ({fix})",
                            w.url(),
                            r.url(),
                        ),
                    ));
                }
            }
        }
        let start = match &self.start {
            Some(t) => parse_time("start", t)?,
            None => now,
        };
        let end = match (&self.duration, &self.end) {
            (Some(_), Some(_)) => {
                return Err(bad("end", "give either `duration` or `end`, not both"))
            }
            (None, None) => {
                return Err(bad(
                    "duration",
                    "a job needs a window: give `duration` (e.g. 3h) or `end`",
                ))
            }
            (Some(d), None) => {
                let d = parse_duration(d)
                    .filter(|d| *d > Duration::zero())
                    .ok_or_else(|| {
                        bad(
                            "duration",
                            format!("`{d}` is not a duration; write e.g. 45m, 3h, 1h30m or 2d"),
                        )
                    })?;
                start + d
            }
            (None, Some(e)) => parse_time("end", e)?,
        };
        let end_field = if self.end.is_some() {
            "end"
        } else {
            "duration"
        };
        if end <= start {
            return Err(bad(
                end_field,
                format!(
                    "the window ends ({}) before it starts ({}); the end must be after the start",
                    rfc3339(end),
                    rfc3339(start)
                ),
            ));
        }
        if end <= now {
            return Err(bad(
                end_field,
                format!(
                    "the window ended at {}, in the past (now is {}); give a later end or a longer duration",
                    rfc3339(end),
                    rfc3339(now)
                ),
            ));
        }
        if end - start > Duration::days(MAX_JOB_DAYS) {
            return Err(bad(
                end_field,
                format!("the window is longer than {MAX_JOB_DAYS} days"),
            ));
        }
        let mut source_ip = self
            .source_ip
            .iter()
            .enumerate()
            .map(|(i, t)| normalize_cidr(&format!("source_ip[{i}]"), t))
            .collect::<Result<Vec<_>, _>>()?;
        if source_ip.is_empty() {
            if let Some(ip) = default_source {
                let len = if ip.is_ipv4() { 32 } else { 128 };
                source_ip.push(format!("{ip}/{len}"));
            }
        }
        if let Some(role) = &self.role {
            crate::state::validate_name("role", role, 64)
                .map_err(|e| bad("role", e.to_string()))?;
        }
        // Labels become the job sessions' principal tags: AWS's tag rules apply, at most 49 of
        // them (the `job` tag is the fiftieth), and `job` itself is the job's id.
        if self.labels.len() > 49 {
            return Err(bad(
                "labels",
                "at most 49 labels (sessions carry at most 50 tags, one of them `job`)",
            ));
        }
        for (k, v) in &self.labels {
            if k.eq_ignore_ascii_case(super::JOB_TAG) {
                return Err(bad(
                    format!("labels.{k}"),
                    "`job` is reserved: every job session carries the tag job=JOB_ID",
                ));
            }
            crate::state::validate_tag(k, v)
                .map_err(|e| bad(format!("labels.{k}"), e.to_string()))?;
            // Session tag keys are case-insensitive: `team` and `TEAM` would be one tag with two
            // values (AssumeRole refuses them too).
            if let Some(other) = self
                .labels
                .keys()
                .find(|o| *o != k && crate::state::same_tag_key(o, k))
            {
                return Err(bad(
                    format!("labels.{k}"),
                    format!("`{k}` and `{other}` are the same tag key (tag keys are case-insensitive); keep one"),
                ));
            }
        }
        Ok(ResolvedJob {
            name: self.name.clone(),
            read,
            write,
            start,
            end,
            source_ip,
            role: self.role.clone(),
            labels: self.labels.clone(),
        })
    }
}

/// A time as policies and APIs write it (`2025-07-16T01:00:00Z`).
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// One grant of a compiled job policy, in plain words and as a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// The statement id in the policy.
    pub sid: String,
    /// `read` or `write`.
    pub kind: &'static str,
    /// The location.
    pub location: String,
    /// What it allows, in plain words.
    pub words: String,
    /// The actions.
    pub actions: Vec<&'static str>,
    /// The resource ARN.
    pub resource: String,
}

/// Read grants: get objects, list under the prefix.
pub const READ_OBJECT_ACTIONS: &[&str] = &["s3:GetObject"];
/// The list grant of a read location.
pub const READ_LIST_ACTIONS: &[&str] = &["s3:ListBucket"];
/// Write grants: put (single and multipart), abort and list its own multipart uploads.
pub const WRITE_ACTIONS: &[&str] = &[
    "s3:PutObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
];

impl ResolvedJob {
    /// The grants, in policy order.
    pub fn grants(&self) -> Vec<Grant> {
        let mut out = Vec::new();
        for (i, r) in self.read.iter().enumerate() {
            out.push(Grant {
                sid: format!("Read{i}Objects"),
                kind: "read",
                location: r.url(),
                words: format!("read objects under {}", r.url()),
                actions: READ_OBJECT_ACTIONS.to_vec(),
                resource: r.objects_arn(),
            });
            out.push(Grant {
                sid: format!("Read{i}List"),
                kind: "read",
                location: r.url(),
                words: if r.prefix.is_empty() {
                    format!("list every key of bucket {}", r.bucket)
                } else {
                    format!(
                        "list keys of bucket {} under {} only (s3:prefix must start with it)",
                        r.bucket, r.prefix
                    )
                },
                actions: READ_LIST_ACTIONS.to_vec(),
                resource: r.bucket_arn(),
            });
        }
        for (i, w) in self.write.iter().enumerate() {
            out.push(Grant {
                sid: format!("Write{i}Objects"),
                kind: "write",
                location: w.url(),
                words: format!(
                    "write objects under {} (single and multipart uploads, abort and list its own uploads; no read, no delete)",
                    w.url()
                ),
                actions: WRITE_ACTIONS.to_vec(),
                resource: w.objects_arn(),
            });
        }
        out
    }

    /// The conditions every statement carries.
    pub fn conditions(&self) -> Value {
        let mut c = json!({
            "DateGreaterThanEquals": {"aws:CurrentTime": rfc3339(self.start)},
            "DateLessThan": {"aws:CurrentTime": rfc3339(self.end)},
        });
        if let (Some(o), false) = (c.as_object_mut(), self.source_ip.is_empty()) {
            o.insert("IpAddress".into(), json!({"aws:SourceIp": self.source_ip}));
        }
        c
    }

    /// The session policy (AWS IAM JSON).
    pub fn policy(&self) -> Value {
        let conditions = self.conditions();
        let statements: Vec<Value> = self
            .grants()
            .into_iter()
            .zip(self.list_conditions())
            .map(|(g, extra)| {
                let mut cond = conditions.clone();
                if let (Some(o), Some(prefix)) = (cond.as_object_mut(), extra) {
                    o.insert(
                        "StringLike".into(),
                        json!({"s3:prefix": format!("{prefix}*")}),
                    );
                }
                let action = match g.actions.as_slice() {
                    [one] => json!(one),
                    many => json!(many),
                };
                json!({
                    "Sid": g.sid,
                    "Effect": "Allow",
                    "Action": action,
                    "Resource": g.resource,
                    "Condition": cond,
                })
            })
            .collect();
        json!({"Version": "2012-10-17", "Statement": statements})
    }

    /// For each grant, the `s3:prefix` a list grant pins (`None` for other grants and for a
    /// whole-bucket read).
    fn list_conditions(&self) -> Vec<Option<String>> {
        let mut out = Vec::new();
        for r in &self.read {
            out.push(None);
            out.push(Some(r.prefix.clone()).filter(|p| !p.is_empty()));
        }
        out.extend(self.write.iter().map(|_| None));
        out
    }

    /// The plan in plain words, one line per grant, then the window and the source.
    pub fn describe(&self) -> String {
        let mut out = format!("job {}\n", self.name);
        for g in self.grants() {
            out.push_str(&format!(
                "  allow {:<5}  {}\n           [{} on {}]\n",
                g.kind,
                g.words,
                g.actions.join(", "),
                g.resource
            ));
        }
        out.push_str(&format!(
            "  only between {} and {} ({})\n",
            rfc3339(self.start),
            rfc3339(self.end),
            format_duration(self.end - self.start)
        ));
        if self.source_ip.is_empty() {
            out.push_str("  only from the address that starts the job (decided at start)\n");
        } else {
            out.push_str(&format!("  only from {}\n", self.source_ip.join(", ")));
        }
        if let Some(role) = &self.role {
            out.push_str(&format!(
                "  and never more than role {role}'s own policies allow\n"
            ));
        }
        out.push_str(
            "  everything else is denied (no delete, no read of outputs, no other bucket)\n",
        );
        out
    }
}

/// Who may assume the exported role in AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustFor {
    /// SageMaker training and processing jobs.
    SageMaker,
    /// EC2 instances (via an instance profile).
    Ec2,
    /// A named IAM role or user ARN.
    Principal(String),
}

impl TrustFor {
    /// Parses `sagemaker`, `ec2` or an `arn:aws:iam::...` principal.
    pub fn parse(text: &str) -> Result<TrustFor, SpecError> {
        match text {
            "sagemaker" => Ok(TrustFor::SageMaker),
            "ec2" => Ok(TrustFor::Ec2),
            arn if arn.starts_with("arn:aws:iam::") => Ok(TrustFor::Principal(arn.to_owned())),
            other => Err(bad(
                "trust",
                format!("`{other}` is not sagemaker, ec2 or an arn:aws:iam::ACCOUNT:role/NAME principal"),
            )),
        }
    }

    /// The trust policy (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_create_for-service.html).
    pub fn trust_policy(&self) -> Value {
        let principal = match self {
            TrustFor::SageMaker => json!({"Service": "sagemaker.amazonaws.com"}),
            TrustFor::Ec2 => json!({"Service": "ec2.amazonaws.com"}),
            TrustFor::Principal(arn) => json!({"AWS": arn}),
        };
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": principal,
                "Action": "sts:AssumeRole",
            }]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyhole_policy::{CompiledPolicy, Context, DecisionKind, Evaluator, Policies, PolicyKind};

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-07-16T01:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn spec() -> JobSpec {
        JobSpec {
            name: "finetune-wiki-42".into(),
            read: vec![
                "s3://acmeco-training-datasets-wikipedia-2025-07-01".into(),
                "s3://acmeco-base-models/llama-3-8b/".into(),
            ],
            write: vec!["s3://acmeco-finetuned-models/finetune-wiki-42/".into()],
            duration: Some("3h".into()),
            source_ip: vec!["203.0.113.42".into()],
            ..JobSpec::default()
        }
    }

    fn field_of(r: Result<ResolvedJob, SpecError>) -> String {
        match r {
            Err(e) => e.field,
            Ok(j) => format!("accepted: {j:?}"),
        }
    }

    #[test]
    fn the_design_example_parses_from_toml() {
        let text = r#"
name = "finetune-wiki-42"
read = ["s3://acmeco-training-datasets-wikipedia-2025-07-01", "s3://acmeco-base-models/llama-3-8b/"]
write = ["s3://acmeco-finetuned-models/finetune-wiki-42/"]
start = "2025-07-16T01:00:00Z"   # default: now
duration = "3h"                   # or end = ...
source_ip = ["203.0.113.42/32"]   # default: the address that starts the job
role = "training-jobs"
"#;
        let s = JobSpec::from_toml(text).unwrap_or_default();
        let j = s.resolve(now(), None);
        let Ok(j) = j else { panic!("{j:?}") };
        assert_eq!(j.start, now());
        assert_eq!(j.end, now() + Duration::hours(3));
        assert_eq!(j.read.len(), 2);
        assert_eq!(j.role.as_deref(), Some("training-jobs"));
    }

    /// A control character in a location would be printed raw by `job plan` and `job show`
    /// (an escape sequence rewrites the lines an administrator reads): refused, and the error
    /// shows it escaped.
    #[test]
    fn control_characters_in_locations_are_refused_and_shown_escaped() {
        for bad_location in [
            "s3://dss/secret/\u{1b}[1A\u{1b}[2K\rjob/",
            "s3://dss/a\u{1}b/",
            "s3://dss/nul\0/",
            "s3://dss/del\u{7f}/",
            "s3://dss/w\u{202e}iki/",
            "s3://dss/a\u{2066}b/",
        ] {
            let e = Location::parse("read[0]", bad_location).unwrap_err();
            assert!(e.message.contains("control or invisible"), "{}", e.message);
            assert!(
                !e.message
                    .chars()
                    .any(|c| c.is_control() || c == '\u{202e}' || c == '\u{2066}'),
                "{:?}",
                e.message
            );
        }
    }

    /// Issue 19, item 5: `s3://ds/wiki/../private/` must not pass for `wiki/` (or anything) in a
    /// reader's eyes or in a CreateJob condition on keyhole:ReadLocations.
    #[test]
    fn dot_and_empty_segments_in_locations_are_refused() {
        for bad_location in [
            "s3://dss/wiki/../private/",
            "s3://dss/./wiki/",
            "s3://dss/wiki//x/",
            "s3://dss//",
            "s3://dss/../",
        ] {
            let e = Location::parse("read[0]", bad_location).unwrap_err();
            assert_eq!(e.field, "read[0]", "{bad_location}");
            assert!(
                e.message.contains("segment"),
                "{bad_location}: {}",
                e.message
            );
        }
        for good in [
            "s3://dss",
            "s3://dss/",
            "s3://dss/wiki/",
            "s3://dss/a.b/..c/",
        ] {
            assert!(Location::parse("read[0]", good).is_ok(), "{good}");
        }
    }

    /// A value of the wrong type names its field, where it is, and how to write it (a jobs
    /// sweep, M4: every such error named `spec`).
    #[test]
    fn wrong_types_in_a_toml_spec_name_the_field_and_the_line() {
        let cases = [
            (
                "name = \"x\"\nread = \"s3://dss/a/\"\n",
                "read",
                "is a list",
            ),
            ("name = \"x\"\nduration = 600\n", "duration", "line 2"),
            (
                "name = \"x\"\nstart = 2026-12-05T00:00:00Z\n",
                "start",
                "quoted string",
            ),
            ("{\"name\": \"x\"}", "spec", "not JSON or YAML"),
        ];
        for (text, field, says) in cases {
            let e = JobSpec::from_toml(text).unwrap_err();
            assert_eq!(e.field, field, "{text}: {}", e.message);
            assert!(e.message.contains(says), "{text}: {}", e.message);
        }
    }

    #[test]
    fn unknown_toml_fields_name_the_field() {
        let e = JobSpec::from_toml("name = \"x\"\nreads = []\n");
        assert_eq!(e.map_err(|e| e.field), Err("reads".to_owned()));
    }

    /// The fix an overlap error suggests is itself outside every read location.
    #[test]
    fn an_overlap_suggests_a_place_outside_the_reads() {
        let n = now();
        let mut s = spec();
        s.write[0] = "s3://acmeco-base-models/llama-3-8b/out/".into();
        let e = s.resolve(n, None).unwrap_err();
        assert!(
            e.message.contains("such as s3://acmeco-base-models/runs/"),
            "{}",
            e.message
        );
        let mut s = spec();
        s.write[0] = "s3://acmeco-training-datasets-wikipedia-2025-07-01/o/".into();
        let e = s.resolve(n, None).unwrap_err();
        assert!(e.message.contains("another bucket"), "{}", e.message);
        assert!(!e.message.contains("such as"), "{}", e.message);
    }

    #[test]
    fn json_specs_of_the_wrong_type_name_the_field() {
        let field = |v: serde_json::Value| JobSpec::from_json(&v).map(|_| ()).unwrap_err().field;
        assert_eq!(field(serde_json::json!({"read": "s3://b/x/"})), "read");
        assert_eq!(
            field(serde_json::json!({"name": "a", "labels": ["x"]})),
            "labels"
        );
        assert_eq!(field(serde_json::json!({"duration": 3600})), "duration");
        assert_eq!(field(serde_json::json!({"reads": []})), "reads");
        assert_eq!(field(serde_json::json!(["read"])), "spec");
        let e = JobSpec::from_json(&serde_json::json!({"write": "s3://b/o/"})).unwrap_err();
        assert!(e.message.contains("a list of strings"), "{e}");
        let ok = JobSpec::from_json(&serde_json::json!({"read": ["s3://b/x/"], "duration": "1h"}));
        assert_eq!(ok.map(|s| s.read), Ok(vec!["s3://b/x/".to_owned()]));
    }

    #[test]
    fn bad_specs_name_the_field() {
        let n = now();
        let with = |f: &dyn Fn(&mut JobSpec)| {
            let mut s = spec();
            f(&mut s);
            field_of(s.resolve(n, None))
        };
        assert_eq!(with(&|s| s.name = "bad name".into()), "name");
        assert_eq!(
            with(&|s| s.read[1] = "acmeco-base-models/x/".into()),
            "read[1]"
        );
        assert_eq!(
            with(&|s| s.read[1] = "s3://acmeco-base-models/x".into()),
            "read[1]"
        );
        assert_eq!(
            with(&|s| s.read[1] = "s3://acmeco-base-models/x*/".into()),
            "read[1]"
        );
        assert_eq!(
            with(&|s| s.write[0] = "s3://Bad_Bucket/x/".into()),
            "write[0]"
        );
        assert_eq!(
            with(&|s| s.write[0] = "s3://acmeco-base-models/llama-3-8b/out/".into()),
            "write[0]",
            "overlapping read and write"
        );
        assert_eq!(
            with(&|s| s.write[0] = "s3://acmeco-training-datasets-wikipedia-2025-07-01/o/".into()),
            "write[0]",
            "a write inside a whole-bucket read"
        );
        assert_eq!(
            with(&|s| s.source_ip[0] = "300.1.1.1/32".into()),
            "source_ip[0]"
        );
        assert_eq!(
            with(&|s| s.source_ip[0] = "10.0.0.0/33".into()),
            "source_ip[0]"
        );
        assert_eq!(with(&|s| s.duration = Some("3 hours".into())), "duration");
        assert_eq!(with(&|s| s.duration = None), "duration");
        assert_eq!(
            with(&|s| s.end = Some("2025-07-16T04:00:00Z".into())),
            "end",
            "both duration and end"
        );
        assert_eq!(
            with(&|s| {
                s.duration = None;
                s.end = Some("2025-07-16T00:00:00Z".into());
            }),
            "end",
            "end before start"
        );
        assert_eq!(
            with(&|s| {
                s.start = Some("2025-07-15T01:00:00Z".into());
                s.duration = Some("1h".into());
            }),
            "duration",
            "a window in the past"
        );
        assert_eq!(with(&|s| s.duration = Some("31d".into())), "duration");
        assert_eq!(
            with(&|s| {
                s.labels.insert("job".into(), "x".into());
            }),
            "labels.job",
            "job is the job's own tag"
        );
        assert_eq!(
            with(&|s| {
                s.labels.insert("bad#key".into(), "x".into());
            }),
            "labels.bad#key",
            "labels follow AWS's tag rules"
        );
        assert_eq!(
            with(&|s| {
                s.read.clear();
                s.write.clear();
            }),
            "read"
        );
    }

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(parse_duration("3h"), Some(Duration::hours(3)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::minutes(90)));
        assert_eq!(parse_duration("2d"), Some(Duration::days(2)));
        assert_eq!(parse_duration("45s"), Some(Duration::seconds(45)));
        for bad in ["", "3", "h", "3x", "-3h", "3h 2m"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(format_duration(Duration::minutes(90)), "1h30m");
        assert_eq!(format_duration(Duration::seconds(0)), "0s");
    }

    #[test]
    fn default_source_is_the_callers_address() {
        let mut s = spec();
        s.source_ip.clear();
        let ip = "127.0.0.1".parse().ok();
        let j = s.resolve(now(), ip);
        assert_eq!(j.map(|j| j.source_ip), Ok(vec!["127.0.0.1/32".to_owned()]));
    }

    /// The compiled policy decides as DESIGN.md section 6 says, checked with the policy engine
    /// itself (AWS's evaluation logic).
    #[test]
    fn the_compiled_policy_allows_exactly_the_job() {
        let Ok(job) = spec().resolve(now(), None) else {
            panic!("spec")
        };
        let doc = job.policy().to_string();
        let Ok(policy) = CompiledPolicy::from_json(&doc, PolicyKind::Identity) else {
            panic!("policy does not compile: {doc}")
        };
        let decide = |action: &str, resource: &str, at: &str, ip: &str, prefix: Option<&str>| {
            let mut ctx = Context::new();
            ctx.insert("aws:CurrentTime", at);
            ctx.insert("aws:SourceIp", ip);
            if let Some(p) = prefix {
                ctx.insert("s3:prefix", p);
            }
            let request = keyhole_policy::Request::new(
                keyhole_policy::RequestPrincipal::User {
                    arn: "arn:aws:iam::123456789012:user/u".into(),
                    account: "123456789012".into(),
                },
                action,
                resource,
                None,
                ctx,
            );
            let set = Policies {
                identity: std::slice::from_ref(&policy),
                ..Default::default()
            };
            Evaluator::evaluate(&set, &request).kind == DecisionKind::Allowed
        };
        let inside = "2025-07-16T02:00:00Z";
        let ip = "203.0.113.42";
        let ds = "arn:aws:s3:::acmeco-training-datasets-wikipedia-2025-07-01";
        let base = "arn:aws:s3:::acmeco-base-models";
        let out = "arn:aws:s3:::acmeco-finetuned-models";
        assert!(decide(
            "s3:GetObject",
            &format!("{ds}/a/b"),
            inside,
            ip,
            None
        ));
        assert!(decide("s3:ListBucket", ds, inside, ip, Some("")));
        assert!(decide(
            "s3:GetObject",
            &format!("{base}/llama-3-8b/w.bin"),
            inside,
            ip,
            None
        ));
        assert!(decide(
            "s3:ListBucket",
            base,
            inside,
            ip,
            Some("llama-3-8b/")
        ));
        assert!(
            !decide("s3:ListBucket", base, inside, ip, Some("")),
            "bucket root"
        );
        assert!(!decide("s3:ListBucket", base, inside, ip, Some("other/")));
        assert!(!decide(
            "s3:GetObject",
            &format!("{base}/other/w.bin"),
            inside,
            ip,
            None
        ));
        assert!(!decide(
            "s3:PutObject",
            &format!("{base}/llama-3-8b/w.bin"),
            inside,
            ip,
            None
        ));
        let run = format!("{out}/finetune-wiki-42/ckpt-1");
        assert!(decide("s3:PutObject", &run, inside, ip, None));
        assert!(decide("s3:AbortMultipartUpload", &run, inside, ip, None));
        assert!(
            !decide("s3:GetObject", &run, inside, ip, None),
            "no read of output"
        );
        assert!(
            !decide("s3:DeleteObject", &run, inside, ip, None),
            "no delete"
        );
        assert!(!decide(
            "s3:PutObject",
            &format!("{out}/other/x"),
            inside,
            ip,
            None
        ));
        assert!(
            !decide("s3:PutObject", &run, "2025-07-16T04:00:00Z", ip, None),
            "at end"
        );
        assert!(
            !decide("s3:PutObject", &run, "2025-07-16T00:59:59Z", ip, None),
            "before"
        );
        assert!(
            !decide("s3:PutObject", &run, inside, "203.0.113.43", None),
            "other ip"
        );
        // Versioned buckets (issue 12): writing a new version is all a write grant does; no
        // version of any key, its own included, can be read, removed or retagged by version.
        for action in [
            "s3:DeleteObjectVersion",
            "s3:GetObjectVersion",
            "s3:PutObjectVersionTagging",
            "s3:DeleteObjectVersionTagging",
            "s3:PutObjectVersionAcl",
            "s3:ListBucketVersions",
        ] {
            assert!(!decide(action, &run, inside, ip, None), "{action}");
        }
    }

    #[test]
    fn the_description_has_a_line_per_grant() {
        let Ok(job) = spec().resolve(now(), None) else {
            panic!("spec")
        };
        let text = job.describe();
        assert_eq!(text.matches("  allow ").count(), job.grants().len());
        assert!(text.contains("only from 203.0.113.42/32"), "{text}");
        assert!(text.contains("only between 2025-07-16T01:00:00Z and 2025-07-16T04:00:00Z (3h)"));
    }

    #[test]
    fn trust_policies_parse_as_aws_policies() {
        for t in [
            "sagemaker",
            "ec2",
            "arn:aws:iam::123456789012:role/scheduler",
        ] {
            let Ok(t) = TrustFor::parse(t) else {
                panic!("{t}")
            };
            let doc = t.trust_policy().to_string();
            assert!(
                CompiledPolicy::from_json(&doc, PolicyKind::Resource).is_ok(),
                "{doc}"
            );
        }
        assert!(TrustFor::parse("lambda").is_err());
    }
}
