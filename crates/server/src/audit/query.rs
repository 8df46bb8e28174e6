//! `keyhole audit query` and `tail`: stream the trail file by file, line by line, and keep the
//! events that pass a [`Filter`]. Nothing is loaded whole; memory stays flat with trail size.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::event::{AuditEvent, Decision, Stage};
use super::sink::trail_files;

/// Which events to keep. Every field set must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Events at or after this time (RFC 3339, compared as UTC).
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Events before this time.
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Principal ARN, or `anonymous`. A role's ARN also matches its sessions
    /// (`arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`).
    pub principal: Option<String>,
    /// Access key id used or claimed.
    pub access_key: Option<String>,
    /// Job id.
    pub job: Option<String>,
    /// Bucket.
    pub bucket: Option<String>,
    /// Key prefix.
    pub prefix: Option<String>,
    /// Operation (`eventName`), case-insensitive.
    pub operation: Option<String>,
    /// Decision.
    pub decision: Option<Decision>,
    /// HTTP status.
    pub status: Option<u16>,
    /// Record stage: `authorized` (write-ahead) or `completed`.
    pub stage: Option<Stage>,
    /// A pre-filter on the stored line: lines without this text are skipped before they are
    /// parsed (access reports give a principal's unique id, which its events carry). Only the
    /// trail readers apply it; [`Filter::matches`] does not.
    pub line_contains: Option<String>,
    /// The request id (`requestID`).
    pub request_id: Option<String>,
}

impl Filter {
    /// Whether `e` passes.
    pub fn matches(&self, e: &AuditEvent) -> bool {
        if self.since.is_some() || self.until.is_some() {
            let Ok(t) = chrono::DateTime::parse_from_rfc3339(&e.event_time) else {
                return false;
            };
            if self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t >= u) {
                return false;
            }
        }
        let id = &e.user_identity;
        if let Some(p) = &self.principal {
            let anonymous = p.eq_ignore_ascii_case("anonymous") && id.kind == "AnonymousPrincipal";
            if !anonymous && !principal_matches(p, id.arn.as_deref()) {
                return false;
            }
        }
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| have == Some(w))
        };
        eq(&self.request_id, Some(e.request_id.as_str()))
            && eq(&self.access_key, id.access_key_id.as_deref())
            && eq(&self.job, id.job.as_deref())
            && eq(&self.bucket, e.request_parameters.bucket_name.as_deref())
            && self.prefix.as_deref().is_none_or(|p| {
                e.request_parameters
                    .key
                    .as_deref()
                    .is_some_and(|k| k.starts_with(p))
            })
            && self
                .operation
                .as_deref()
                .is_none_or(|o| o.eq_ignore_ascii_case(&e.event_name))
            && self.decision.is_none_or(|d| e.decision == Some(d))
            && self.status.is_none_or(|s| e.http_status == Some(s))
            && self.stage.is_none_or(|s| e.stage == s)
    }
}

/// Whether the event's principal `have` is `want`, or a session of the role `want`
/// (`arn:aws:iam::ACCOUNT:role[/PATH]/NAME` → `arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`;
/// a session's ARN names the role without its path).
fn principal_matches(want: &str, have: Option<&str>) -> bool {
    let Some(have) = have else {
        return false;
    };
    if have == want {
        return true;
    }
    let Some((account, role)) = want
        .strip_prefix("arn:aws:iam::")
        .and_then(|rest| rest.split_once(":role/"))
    else {
        return false;
    };
    let name = role.rsplit('/').next().unwrap_or(role);
    have.strip_prefix("arn:aws:sts::")
        .and_then(|rest| rest.strip_prefix(account))
        .and_then(|rest| rest.strip_prefix(":assumed-role/"))
        .and_then(|rest| rest.strip_prefix(name))
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|session| !session.is_empty() && !session.contains('/'))
}

/// An event as read back: the parsed event, its sequence number and the raw line.
#[derive(Debug, Clone)]
pub struct Found {
    /// The event.
    pub event: AuditEvent,
    /// Its sequence number.
    pub seq: u64,
    /// The line as stored (without its newline).
    pub line: String,
}

#[derive(serde::Deserialize)]
struct WithSeq {
    #[serde(flatten)]
    event: AuditEvent,
    seq: u64,
}

/// Parses one stored line; `None` for a line that is not an event.
pub fn parse_line(line: &[u8]) -> Option<Found> {
    let w: WithSeq = serde_json::from_slice(line).ok()?;
    Some(Found {
        event: w.event,
        seq: w.seq,
        line: String::from_utf8_lossy(line).into_owned(),
    })
}

/// The matching events of one trail, in trail order, read file by file and line by line (one
/// buffered line in memory). I/O errors name the trail directory.
#[derive(Debug)]
pub struct Events {
    dir: PathBuf,
    filter: Filter,
    files: std::vec::IntoIter<(u64, PathBuf)>,
    reader: Option<BufReader<File>>,
    line: Vec<u8>,
    skipped: u64,
}

impl Events {
    /// Opens the trail under `dir` (the files present now).
    pub fn open(dir: &Path, filter: Filter) -> std::io::Result<Events> {
        let files = trail_files(dir).map_err(|e| in_trail(dir, e))?;
        Ok(Events {
            dir: dir.to_owned(),
            filter,
            files: files.into_iter(),
            reader: None,
            line: Vec::with_capacity(1024),
            skipped: 0,
        })
    }

    /// Lines read so far that are not events.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The trail's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn in_trail(dir: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("trail `{}`: {e}", dir.display()))
}

impl Iterator for Events {
    type Item = std::io::Result<Found>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let reader = match &mut self.reader {
                Some(r) => r,
                None => {
                    let (_, path) = self.files.next()?;
                    match File::open(&path) {
                        Ok(f) => self.reader.insert(BufReader::with_capacity(256 * 1024, f)),
                        Err(e) => return Some(Err(in_trail(&self.dir, e))),
                    }
                }
            };
            self.line.clear();
            match reader.read_until(b'\n', &mut self.line) {
                Ok(0) => {
                    self.reader = None;
                    continue;
                }
                Ok(_) => {}
                Err(e) => return Some(Err(in_trail(&self.dir, e))),
            }
            let Some(body) = self.line.strip_suffix(b"\n") else {
                // An incomplete final line (being written, or cut by a crash).
                self.reader = None;
                continue;
            };
            // Cheap pre-filters on the raw bytes before parsing.
            if let Some(b) = &self.filter.bucket {
                if !contains(body, b.as_bytes()) {
                    continue;
                }
            }
            if let Some(text) = &self.filter.line_contains {
                if !contains(body, text.as_bytes()) {
                    continue;
                }
            }
            if let Some(r) = &self.filter.request_id {
                if !contains(body, r.as_bytes()) {
                    continue;
                }
            }
            match parse_line(body) {
                Some(f) if self.filter.matches(&f.event) => return Some(Ok(f)),
                Some(_) => {}
                None => self.skipped += 1,
            }
        }
    }
}

/// Calls `each` for every matching event in trail order; stops early when it returns `false`.
/// Returns how many lines could not be parsed (skipped).
pub fn scan(
    dir: &Path,
    filter: &Filter,
    mut each: impl FnMut(Found) -> bool,
) -> std::io::Result<u64> {
    let mut events = Events::open(dir, filter.clone())?;
    for found in events.by_ref() {
        if !each(found?) {
            break;
        }
    }
    Ok(events.skipped())
}

/// Merges the matching events of several trails (one per node) by `eventTime`: a k-way merge
/// that holds one event per trail, so memory stays flat whatever the trails' size. Each trail's
/// events keep their trail order (a request is written when it ends, so an event's time can be
/// a little earlier than its predecessor's in the same trail); between trails, the earliest
/// next event goes first, ties broken by the trails' order. Calls `each` with the trail's index
/// in `trails`; stops early when it returns `false`. Returns the lines skipped per trail.
pub fn merge(
    mut trails: Vec<Events>,
    mut each: impl FnMut(usize, Found) -> bool,
) -> std::io::Result<Vec<u64>> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut heads: Vec<Option<Found>> = Vec::with_capacity(trails.len());
    let mut heap = BinaryHeap::new();
    for (i, t) in trails.iter_mut().enumerate() {
        let head = t.next().transpose()?;
        if let Some(f) = &head {
            heap.push(Reverse((f.event.event_time.clone(), i)));
        }
        heads.push(head);
    }
    while let Some(Reverse((_, i))) = heap.pop() {
        let Some(found) = heads.get_mut(i).and_then(Option::take) else {
            continue;
        };
        if let Some(next) = trails.get_mut(i).and_then(Iterator::next).transpose()? {
            heap.push(Reverse((next.event.event_time.clone(), i)));
            if let Some(h) = heads.get_mut(i) {
                *h = Some(next);
            }
        }
        if !each(i, found) {
            break;
        }
    }
    Ok(trails.iter().map(Events::skipped).collect())
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// Follows the trail like `tail -f`: starting after the events already in it, calls `each` for
/// every new matching event, polling every `interval`, until `each` returns `false`.
pub fn follow(
    dir: &Path,
    filter: &Filter,
    interval: std::time::Duration,
    mut each: impl FnMut(Found) -> bool,
) -> std::io::Result<()> {
    let mut current: Option<(u64, PathBuf, u64)> = trail_files(dir)?.pop().map(|(s, p)| {
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        (s, p, len)
    });
    loop {
        let mut progressed = false;
        if let Some((_, path, offset)) = current.as_mut() {
            let mut f = File::open(&*path)?;
            f.seek(SeekFrom::Start(*offset))?;
            let mut reader = BufReader::new(f);
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = reader.read_until(b'\n', &mut line)?;
                let Some(body) = line.strip_suffix(b"\n") else {
                    break; // nothing more, or a line still being written
                };
                *offset += n as u64;
                progressed = true;
                if let Some(found) = parse_line(body) {
                    if filter.matches(&found.event) && !each(found) {
                        return Ok(());
                    }
                }
            }
        }
        if !progressed {
            // Move to a newer file once the current one has no more complete lines.
            let files = trail_files(dir)?;
            let newer = files
                .into_iter()
                .find(|(s, _)| current.as_ref().is_none_or(|(c, _, _)| s > c));
            if let Some((s, p)) = newer {
                current = Some((s, p, 0));
                continue;
            }
            std::thread::sleep(interval);
        }
    }
}

/// Parses a time bound: RFC 3339 (`2026-11-22T08:00:00Z`), a date (`2026-11-22`, midnight UTC),
/// or an age relative to `now` (`90s`, `15m`, `2h`, `7d`).
pub fn parse_time(
    text: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let t = text.trim();
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&chrono::Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        if let Some(dt) = d.and_hms_opt(0, 0, 0) {
            return Ok(dt.and_utc());
        }
    }
    let split = t.len().saturating_sub(1);
    if let (Some(num), Some(unit)) = (t.get(..split), t.get(split..)) {
        if let Ok(n) = num.parse::<i64>() {
            let secs = match unit {
                "s" => Some(n),
                "m" => n.checked_mul(60),
                "h" => n.checked_mul(3600),
                "d" => n.checked_mul(86400),
                _ => None,
            };
            if let Some(d) = secs.and_then(chrono::TimeDelta::try_seconds) {
                return now
                    .checked_sub_signed(d)
                    .ok_or_else(|| format!("`{text}` is too far back"));
            }
        }
    }
    Err(format!(
        "`{text}` is not a time: use RFC 3339 (2026-11-22T08:00:00Z), a date (2026-11-22) or an age (15m, 2h, 7d)"
    ))
}

/// Whether `c` must not reach a terminal as it is: a control character (C0, DEL, C1), or a
/// Unicode mark that reorders or hides text (bidirectional marks, overrides and isolates,
/// zero-width and invisible characters). [`terminal_safe`] escapes them; a job location may not
/// hold them at all.
pub fn is_terminal_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// `s` as it may be printed on a terminal: control characters (C0, DEL, C1) and the Unicode
/// marks that reorder or hide text (bidirectional overrides and isolates, zero-width characters)
/// written as `\u{..}` escapes. Object keys, session names, user agents and reasons are chosen
/// by whoever sent the request: printed raw, a key could forge report lines (a newline) or send
/// escape sequences to the operator's terminal (review 14).
pub fn terminal_safe(s: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = is_terminal_unsafe;
    if !s.contains(unsafe_char) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Every string in `v` made [`terminal_safe`], except under the keys named in `keep` (printed
/// as JSON, which escapes them itself).
pub fn terminal_safe_value(v: &serde_json::Value, keep: &[&str]) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(terminal_safe(s).into_owned()),
        Value::Array(a) => Value::Array(a.iter().map(|x| terminal_safe_value(x, keep)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| {
                    let x = if keep.contains(&k.as_str()) {
                        x.clone()
                    } else {
                        terminal_safe_value(x, keep)
                    };
                    (terminal_safe(k).into_owned(), x)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A one-line summary for people: time, node, status, decision, operation, principal, target, id
/// (escaped for a terminal).
pub fn table_row(f: &Found) -> String {
    terminal_safe(&table_row_raw(f)).into_owned()
}

fn table_row_raw(f: &Found) -> String {
    let e = &f.event;
    let who = e
        .user_identity
        .arn
        .clone()
        .or_else(|| {
            e.user_identity
                .access_key_id
                .as_ref()
                .map(|k| format!("{} ({k})", e.user_identity.kind))
        })
        .unwrap_or_else(|| e.user_identity.kind.clone());
    let target = match (&e.request_parameters.bucket_name, &e.request_parameters.key) {
        (Some(b), Some(k)) => format!("{b}/{k}"),
        (Some(b), None) => b.clone(),
        _ => "-".into(),
    };
    let status = e
        .http_status
        .map_or_else(|| "-".to_owned(), |s| s.to_string());
    let decision = match e.decision {
        Some(Decision::Allow) => "Allow",
        Some(Decision::Deny) => "Deny",
        None => "-",
    };
    let op = if e.stage == Stage::Authorized {
        format!("{} (authorized)", e.event_name)
    } else {
        e.event_name.clone()
    };
    format!(
        "{:<24} {:<17} {:>3} {:<5} {:<32} {:<40} {} {}{}",
        e.event_time,
        e.node.as_deref().unwrap_or("-"),
        status,
        decision,
        op,
        who,
        target,
        e.request_id,
        e.error_code
            .as_deref()
            .map_or_else(String::new, |c| format!(" {c}"))
    )
}

/// The header line matching [`table_row`].
pub const TABLE_HEADER: &str = "TIME                     NODE              STS DECIS OPERATION                        PRINCIPAL                                TARGET REQUEST-ID";

#[cfg(test)]
mod terminal_tests {
    use super::*;

    #[test]
    fn control_characters_and_reordering_marks_are_escaped() {
        assert_eq!(terminal_safe("plain/key é"), "plain/key é");
        assert_eq!(
            terminal_safe("e\u{1b}[31mRED\n  forged\r\u{7}\u{202e}x"),
            "e\\u{1b}[31mRED\\u{a}  forged\\u{d}\\u{7}\\u{202e}x"
        );
        let v = serde_json::json!({"k": "a\nb", "minimalPolicy": {"Resource": "a\nb"}, "l": ["\u{9b}"]});
        let safe = terminal_safe_value(&v, &["minimalPolicy"]);
        assert_eq!(safe["k"], "a\\u{a}b");
        assert_eq!(safe["minimalPolicy"]["Resource"], "a\nb");
        assert_eq!(safe["l"][0], "\\u{9b}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::tests_support::sample_event;
    use crate::audit::sink::test_support::open;
    use crate::audit::sink::Rotation;

    async fn trail() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let sink = open(
            dir.path(),
            Rotation {
                max_bytes: 2000,
                max_age: std::time::Duration::from_secs(3600),
                retain: None,
            },
        );
        for i in 0..10u16 {
            let mut e = sample_event();
            e.event_time = format!("2026-11-22T08:00:{:02}.000Z", i);
            e.request_parameters.bucket_name = Some(if i % 2 == 0 { "even" } else { "odd" }.into());
            e.request_parameters.key = Some(format!("dir{}/k{i}", i % 3));
            e.http_status = Some(if i == 7 { 403 } else { 200 });
            if i == 7 {
                e.decision = Some(Decision::Deny);
                e.user_identity = crate::audit::event::UserIdentity {
                    kind: "AnonymousPrincipal".into(),
                    ..Default::default()
                };
            }
            sink.record_durable(e).await.unwrap();
        }
        sink.close().await;
        dir
    }

    fn run(dir: &Path, f: Filter) -> Vec<u64> {
        let mut out = Vec::new();
        scan(dir, &f, |x| {
            out.push(x.seq);
            true
        })
        .unwrap();
        out
    }

    #[tokio::test]
    async fn filters_combine() {
        let dir = trail().await;
        assert!(trail_files(dir.path()).unwrap().len() > 1, "rotated");
        assert_eq!(run(dir.path(), Filter::default()).len(), 10);
        assert!(run(
            dir.path(),
            Filter {
                stage: Some(Stage::Authorized),
                ..Default::default()
            }
        )
        .is_empty());
        assert_eq!(
            run(
                dir.path(),
                Filter {
                    stage: Some(Stage::Completed),
                    ..Default::default()
                }
            )
            .len(),
            10
        );
        let f = |s: &str| Some(s.to_owned());
        assert_eq!(
            run(
                dir.path(),
                Filter {
                    bucket: f("odd"),
                    ..Default::default()
                }
            ),
            vec![2, 4, 6, 8, 10]
        );
        assert_eq!(
            run(
                dir.path(),
                Filter {
                    bucket: f("even"),
                    prefix: f("dir0/"),
                    ..Default::default()
                }
            ),
            vec![1, 7]
        );
        assert_eq!(
            run(
                dir.path(),
                Filter {
                    decision: Some(Decision::Deny),
                    ..Default::default()
                }
            ),
            vec![8]
        );
        assert_eq!(
            run(
                dir.path(),
                Filter {
                    principal: f("anonymous"),
                    status: Some(403),
                    ..Default::default()
                }
            ),
            vec![8]
        );
        assert_eq!(
            run(
                dir.path(),
                Filter {
                    operation: f("putobject"),
                    access_key: f("AKIAEXAMPLE"),
                    ..Default::default()
                }
            )
            .len(),
            9
        );
        let now = chrono::Utc::now();
        assert_eq!(
            run(
                dir.path(),
                Filter {
                    since: Some(parse_time("2026-11-22T08:00:03Z", now).unwrap()),
                    until: Some(parse_time("2026-11-22T08:00:05Z", now).unwrap()),
                    ..Default::default()
                }
            ),
            vec![4, 5]
        );
    }

    #[tokio::test]
    async fn trails_of_two_nodes_merge_by_time_one_event_at_a_time() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        for (dir, node, seconds) in [(&a, "node-a", [1, 2, 5, 9]), (&b, "node-b", [0, 3, 4, 9])] {
            let mut options = crate::audit::sink::test_support::options(Rotation::default());
            options.node_id = Some(node.into());
            let sink = crate::audit::sink::test_support::open_with(dir.path(), options).unwrap();
            for s in seconds {
                let mut e = sample_event();
                e.event_time = format!("2026-11-22T08:00:{s:02}.000Z");
                sink.record_durable(e).await.unwrap();
            }
            sink.close().await;
        }
        let open = |d: &tempfile::TempDir| Events::open(d.path(), Filter::default()).unwrap();
        let mut got = Vec::new();
        let skipped = merge(vec![open(&a), open(&b)], |i, f| {
            got.push((
                i,
                f.event.node.clone().unwrap(),
                f.event.event_time.get(17..19).unwrap().to_owned(),
            ));
            true
        })
        .unwrap();
        assert_eq!(skipped, vec![0, 0]);
        let seen: Vec<(usize, &str, &str)> = got
            .iter()
            .map(|(i, n, t)| (*i, n.as_str(), t.as_str()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (1, "node-b", "00"),
                (0, "node-a", "01"),
                (0, "node-a", "02"),
                (1, "node-b", "03"),
                (1, "node-b", "04"),
                (0, "node-a", "05"),
                (0, "node-a", "09"),
                (1, "node-b", "09"),
            ]
        );
        // Stopping early stops reading.
        let mut n = 0;
        merge(vec![open(&a), open(&b)], |_, _| {
            n += 1;
            n < 3
        })
        .unwrap();
        assert_eq!(n, 3);
        // A trail that cannot be listed is named.
        let e = Events::open(&a.path().join("missing"), Filter::default()).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }

    #[test]
    fn a_role_matches_its_sessions() {
        let role = "arn:aws:iam::123456789012:role/ml/training";
        for (arn, matches) in [
            ("arn:aws:iam::123456789012:role/ml/training", true),
            (
                "arn:aws:sts::123456789012:assumed-role/training/job-42",
                true,
            ),
            (
                "arn:aws:sts::123456789012:assumed-role/training-2/job-42",
                false,
            ),
            (
                "arn:aws:sts::210987654321:assumed-role/training/job-42",
                false,
            ),
            ("arn:aws:sts::123456789012:assumed-role/training/", false),
            ("arn:aws:iam::123456789012:user/training", false),
        ] {
            assert_eq!(principal_matches(role, Some(arn)), matches, "{arn}");
        }
        // A user's ARN matches only itself.
        let user = "arn:aws:iam::123456789012:user/alice";
        assert!(principal_matches(user, Some(user)));
        assert!(!principal_matches(
            user,
            Some("arn:aws:sts::123456789012:assumed-role/alice/s")
        ));
    }

    #[test]
    fn time_bounds() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-22T08:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            parse_time("2h", now).unwrap().to_rfc3339(),
            "2026-11-22T06:00:00+00:00"
        );
        assert_eq!(
            parse_time("2026-11-21", now).unwrap().to_rfc3339(),
            "2026-11-21T00:00:00+00:00"
        );
        assert!(parse_time("yesterday", now)
            .unwrap_err()
            .contains("RFC 3339"));
    }

    #[tokio::test]
    async fn events_queued_before_a_barrier_are_in_the_file_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let sink = open(dir.path(), Rotation::default());
        for _ in 0..50 {
            // Queued without waiting, as reads and denials are.
            sink.record(sample_event()).await;
        }
        sink.written().await.unwrap();
        assert_eq!(run(dir.path(), Filter::default()).len(), 50);
        sink.close().await;
        assert!(sink.written().await.is_err(), "a stopped writer says so");
    }

    #[tokio::test]
    async fn follow_sees_new_events_across_rotation() {
        let dir = trail().await;
        let sink = open(dir.path(), Rotation::default());
        let path = dir.path().to_owned();
        let reader = std::thread::spawn(move || {
            let mut seen = Vec::new();
            follow(
                &path,
                &Filter::default(),
                std::time::Duration::from_millis(20),
                |f| {
                    seen.push(f.seq);
                    seen.len() < 2
                },
            )
            .unwrap();
            seen
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        sink.record_durable(sample_event()).await.unwrap();
        sink.record_durable(sample_event()).await.unwrap();
        assert_eq!(reader.join().unwrap(), vec![11, 12]);
    }
}
