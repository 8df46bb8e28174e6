//! S3's read conditions (`If-Match`, `If-None-Match`, `If-Modified-Since`,
//! `If-Unmodified-Since`, and their `x-amz-copy-source-` forms) and byte ranges, as a backend
//! that keeps objects itself evaluates them. A backend in front of another S3 service forwards
//! the headers instead, and the service evaluates them.

use chrono::{DateTime, Utc};
use http::StatusCode;

use crate::error::S3Error;

/// The conditional headers of a read (or of a copy's source), as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadConditions {
    /// `If-Match`.
    pub if_match: Option<String>,
    /// `If-None-Match`.
    pub if_none_match: Option<String>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<String>,
    /// `If-Unmodified-Since`.
    pub if_unmodified_since: Option<String>,
}

impl ReadConditions {
    /// Whether no condition is given.
    pub fn is_empty(&self) -> bool {
        self.if_match.is_none()
            && self.if_none_match.is_none()
            && self.if_modified_since.is_none()
            && self.if_unmodified_since.is_none()
    }

    /// The headers and their values (header names with `prefix`, e.g. `x-amz-copy-source-`).
    pub fn headers(&self, prefix: &str) -> Vec<(String, String)> {
        [
            ("if-match", &self.if_match),
            ("if-none-match", &self.if_none_match),
            ("if-modified-since", &self.if_modified_since),
            ("if-unmodified-since", &self.if_unmodified_since),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.as_ref().map(|v| (format!("{prefix}{n}"), v.clone())))
        .collect()
    }
}

/// Whether an `If-Match`/`If-None-Match` list names this ETag (`*` names every ETag).
fn etag_listed(list: &str, etag: &str) -> bool {
    list.split(',').map(str::trim).any(|candidate| {
        let c = candidate.strip_prefix("W/").unwrap_or(candidate);
        c == "*" || c.trim_matches('"') == etag
    })
}

/// Compares at whole-second precision, as HTTP dates carry.
fn modified_since(last_modified: DateTime<Utc>, since: DateTime<Utc>) -> bool {
    last_modified.timestamp() > since.timestamp()
}

fn precondition_failed(condition: &str) -> S3Error {
    S3Error::new(
        "PreconditionFailed",
        StatusCode::PRECONDITION_FAILED,
        "At least one of the pre-conditions you specified did not hold",
    )
    .with("Condition", condition)
}

/// Parses an HTTP date (IMF-fixdate, RFC 850 or asctime are all HTTP; S3 clients send the first).
pub(crate) fn parse_http_date(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(s.trim())
        .ok()
        .map(|d| d.with_timezone(&Utc))
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(s.trim(), "%A, %d-%b-%y %H:%M:%S GMT")
                .ok()
                .map(|n| n.and_utc())
        })
}

/// Outcome of evaluating conditional headers.
#[derive(Debug, PartialEq, Eq)]
pub enum Conditional {
    /// Serve the object.
    Proceed,
    /// Answer `304 Not Modified`.
    NotModified,
}

/// Evaluates conditions against an object with this ETag and modification time, as S3 does:
/// If-Match wins over If-Unmodified-Since, If-None-Match over If-Modified-Since
/// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html). For a copy's source
/// (`copy_source`), what would be 304 is 412 instead, and the condition is named with its
/// `x-amz-copy-source-` prefix.
pub fn evaluate(
    c: &ReadConditions,
    etag: &str,
    last_modified: DateTime<Utc>,
    copy_source: bool,
) -> Result<Conditional, S3Error> {
    let prefix = if copy_source {
        "x-amz-copy-source-"
    } else {
        ""
    };
    // An unparseable date is ignored, as HTTP prescribes.
    let date = |v: &Option<String>| v.as_deref().and_then(parse_http_date);
    if let Some(list) = &c.if_match {
        if !etag_listed(list, etag) {
            return Err(precondition_failed(&format!("{prefix}If-Match")));
        }
    } else if let Some(since) = date(&c.if_unmodified_since) {
        if modified_since(last_modified, since) {
            return Err(precondition_failed(&format!("{prefix}If-Unmodified-Since")));
        }
    }
    let not_modified = if let Some(list) = &c.if_none_match {
        etag_listed(list, etag)
    } else if let Some(since) = date(&c.if_modified_since) {
        !modified_since(last_modified, since)
    } else {
        false
    };
    if not_modified {
        if !copy_source {
            return Ok(Conditional::NotModified);
        }
        return Err(precondition_failed(&format!("{prefix}If-None-Match")));
    }
    Ok(Conditional::Proceed)
}

/// Whether a `Range` applies under `If-Range` (RFC 9110, section 13.1.5; S3 honours the header on
/// GetObject although its API reference does not list it): with no `If-Range`, always; with an
/// entity-tag, only a strong match of the object's ETag (a weak `W/"..."` tag never matches).
/// An HTTP-date never matches: it would have to equal a Last-Modified that is a *strong*
/// validator (RFC 9110, section 8.8.2.2), and a Last-Modified of whole seconds is not one here
/// (two writes in one second share it; review 18 joined two versions that way). When it does not
/// hold, the Range is ignored and the whole object is served, so a resumed download never joins
/// bytes of two versions.
pub fn if_range_holds(validator: Option<&str>, etag: &str) -> bool {
    let Some(v) = validator.map(str::trim) else {
        return true;
    };
    v.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .is_some_and(|tag| tag == etag)
}

/// A satisfiable byte range `[start, start + len)`.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Number of bytes.
    pub len: u64,
}

/// Parses a `Range` header against an object of `size` bytes. `Ok(None)` means "serve the whole
/// object" (no header, or one S3 ignores such as several ranges); `Err` is 416.
pub fn parse_range(header: Option<&str>, size: u64) -> Result<Option<ByteRange>, S3Error> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let unsatisfiable = || {
        S3Error::new(
            "InvalidRange",
            StatusCode::RANGE_NOT_SATISFIABLE,
            "The requested range is not satisfiable",
        )
        // S3 echoes the header's value, unit included (`bytes=10-20`); RFC 9110 §15.5.17: a
        // 416 names the representation's length as `Content-Range: bytes */LENGTH`.
        .with("RangeRequested", format!("bytes={spec}"))
        .with("ActualObjectSize", size.to_string())
        .with_header("content-range", format!("bytes */{size}"))
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return Ok(None);
        };
        if n == 0 || size == 0 {
            return Err(unsatisfiable());
        }
        let n = n.min(size);
        return Ok(Some(ByteRange {
            start: size - n,
            len: n,
        }));
    }
    let Ok(start) = a.parse::<u64>() else {
        return Ok(None);
    };
    let end = if b.is_empty() {
        None
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => Some(e),
            _ => return Ok(None),
        }
    };
    if start >= size {
        return Err(unsatisfiable());
    }
    let last = end.map_or(size - 1, |e| e.min(size - 1));
    Ok(Some(ByteRange {
        start,
        len: last - start + 1,
    }))
}

/// Parses `x-amz-copy-source-range: bytes=first-last` against the source size; no header is the
/// whole source.
pub fn copy_range(header: Option<&str>, size: u64) -> Result<ByteRange, S3Error> {
    let Some(h) = header else {
        return Ok(ByteRange {
            start: 0,
            len: size,
        });
    };
    let bad = || {
        S3Error::invalid_argument(format!(
            "The x-amz-copy-source-range value `{h}` must be of the form bytes=first-last, within the source object of {size} bytes"
        ))
        .with("ArgumentName", "x-amz-copy-source-range")
    };
    let (a, b) = h
        .trim()
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(bad)?;
    let (first, last) = (
        a.parse::<u64>().map_err(|_| bad())?,
        b.parse::<u64>().map_err(|_| bad())?,
    );
    if first > last || last >= size {
        return Err(S3Error::new(
            "InvalidRange",
            StatusCode::RANGE_NOT_SATISFIABLE,
            "The requested range is not satisfiable",
        ));
    }
    Ok(ByteRange {
        start: first,
        len: last - first + 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9110, section 13.1.5 (If-Range): strong ETag comparison; dates never match.
    #[test]
    fn if_range_holds_only_for_the_current_etag() {
        use chrono::TimeZone;
        assert!(if_range_holds(None, "abc"));
        assert!(if_range_holds(Some("\"abc\""), "abc"));
        assert!(if_range_holds(Some(" \"abc-3\" "), "abc-3"));
        assert!(!if_range_holds(Some("\"abd\""), "abc"));
        assert!(
            !if_range_holds(Some("W/\"abc\""), "abc"),
            "weak tags never match"
        );
        assert!(
            !if_range_holds(Some("abc"), "abc"),
            "an unquoted tag is not a tag"
        );
        assert!(
            !if_range_holds(Some("\"abc\", \"abd\""), "abc"),
            "a list is not a tag"
        );
        // Dates never match, not even the object's own Last-Modified (not a strong validator).
        let lm = Utc.with_ymd_and_hms(2026, 12, 4, 10, 30, 0).unwrap();
        assert!(!if_range_holds(Some(&crate::s3::http_date(lm)), "abc"));
        assert!(!if_range_holds(Some("yesterday"), "abc"));
        assert!(!if_range_holds(Some(""), "abc"));
    }

    fn r(h: &str, size: u64) -> Result<Option<(u64, u64)>, String> {
        parse_range(Some(h), size)
            .map(|o| o.map(|r| (r.start, r.len)))
            .map_err(|e| e.code().to_owned())
    }

    #[test]
    fn ranges_as_s3_reads_them() {
        assert_eq!(r("bytes=0-9", 100), Ok(Some((0, 10))));
        assert_eq!(r("bytes=90-200", 100), Ok(Some((90, 10))));
        assert_eq!(r("bytes=10-", 100), Ok(Some((10, 90))));
        assert_eq!(r("bytes=-5", 100), Ok(Some((95, 5))));
        assert_eq!(r("bytes=-500", 100), Ok(Some((0, 100))));
        assert_eq!(r("bytes=100-", 100), Err("InvalidRange".into()));
        assert_eq!(r("bytes=-0", 100), Err("InvalidRange".into()));
        assert_eq!(r("bytes=0-0", 0), Err("InvalidRange".into()));
        // Ignored forms: whole object.
        assert_eq!(r("bytes=5-1", 100), Ok(None));
        assert_eq!(r("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(r("items=0-1", 100), Ok(None));
        assert_eq!(r("bytes=x-", 100), Ok(None));
    }

    #[test]
    fn etag_lists() {
        assert!(etag_listed("\"abc\"", "abc"));
        assert!(etag_listed("\"x\", \"abc\"", "abc"));
        assert!(etag_listed("*", "abc"));
        assert!(etag_listed("W/\"abc\"", "abc"));
        assert!(!etag_listed("\"abd\"", "abc"));
    }

    #[test]
    fn copy_source_ranges() {
        let cr = |h: Option<&str>, size| copy_range(h, size).map(|r| (r.start, r.len));
        assert_eq!(cr(None, 10).unwrap(), (0, 10));
        assert_eq!(cr(Some("bytes=2-5"), 10).unwrap(), (2, 4));
        assert_eq!(
            cr(Some("bytes=2-10"), 10).unwrap_err().code(),
            "InvalidRange"
        );
        assert_eq!(
            cr(Some("bytes=5-2"), 10).unwrap_err().code(),
            "InvalidRange"
        );
        assert_eq!(
            cr(Some("bytes=-2"), 10).unwrap_err().code(),
            "InvalidArgument"
        );
        assert_eq!(cr(Some("2-5"), 10).unwrap_err().code(), "InvalidArgument");
    }

    #[test]
    fn conditions_follow_s3_precedence() {
        let t = DateTime::parse_from_rfc3339("2026-11-22T07:30:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let c =
            |m: Option<&str>, n: Option<&str>, ms: Option<&str>, us: Option<&str>| ReadConditions {
                if_match: m.map(str::to_owned),
                if_none_match: n.map(str::to_owned),
                if_modified_since: ms.map(str::to_owned),
                if_unmodified_since: us.map(str::to_owned),
            };
        let before = "Sat, 21 Nov 2026 07:30:05 GMT";
        let after = "Mon, 23 Nov 2026 07:30:05 GMT";
        // If-Match true wins over If-Unmodified-Since false.
        assert_eq!(
            evaluate(&c(Some("\"e\""), None, None, Some(before)), "e", t, false).unwrap(),
            Conditional::Proceed
        );
        // If-None-Match false wins over If-Modified-Since true (not modified).
        assert_eq!(
            evaluate(&c(None, Some("\"x\""), Some(after), None), "e", t, false).unwrap(),
            Conditional::Proceed
        );
        assert_eq!(
            evaluate(&c(None, Some("\"e\""), None, None), "e", t, false).unwrap(),
            Conditional::NotModified
        );
        let e = evaluate(&c(None, Some("\"e\""), None, None), "e", t, true).unwrap_err();
        assert_eq!(e.code(), "PreconditionFailed");
        assert_eq!(
            evaluate(&c(Some("\"x\""), None, None, None), "e", t, false)
                .unwrap_err()
                .code(),
            "PreconditionFailed"
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
