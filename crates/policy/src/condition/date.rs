//! Date condition operators (`DateLessThan`, ...): ISO 8601 forms and epoch seconds.
//!
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_Date>
//! accepts "a date in the ISO 8601 format or in epoch (UNIX) time".

use chrono::{DateTime, NaiveDate, NaiveDateTime};

use crate::model::OperatorKind;

/// A point in time: seconds since the epoch and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub secs: i64,
    /// Nanoseconds within the second.
    pub nanos: u32,
}

/// Parses `2025-07-16T01:00:00Z`, other RFC 3339 forms with offsets and fractions,
/// `2025-07-16T01:00:00` and `2025-07-16T01:00Z` (UTC), `2025-07-16` (midnight UTC), or epoch
/// seconds such as `1752627600`.
pub fn parse_date(s: &str) -> Option<Instant> {
    let t = s.trim();
    if let Some(i) = fast_utc(t) {
        return Some(i);
    }
    if !t.is_empty()
        && t.bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_digit() || (i == 0 && b == b'-'))
    {
        let secs: i64 = t.parse().ok()?;
        return Some(Instant { secs, nanos: 0 });
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(Instant {
            secs: dt.timestamp(),
            nanos: dt.timestamp_subsec_nanos(),
        });
    }
    let naive = |fmt: &str, v: &str| NaiveDateTime::parse_from_str(v, fmt).ok();
    let dt = if let Some(v) = t.strip_suffix('Z').or_else(|| t.strip_suffix('z')) {
        naive("%Y-%m-%dT%H:%M", v)
            .or_else(|| naive("%Y-%m-%dT%H:%M:%S%.f", v))
            // ISO 8601 basic format, as in `x-amz-date`: `20250716T010000Z`.
            .or_else(|| naive("%Y%m%dT%H%M%S", v))
    } else {
        naive("%Y-%m-%dT%H:%M:%S%.f", t)
            .or_else(|| naive("%Y-%m-%dT%H:%M", t))
            .or_else(|| {
                NaiveDate::parse_from_str(t, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
            })
    }?;
    let utc = dt.and_utc();
    Some(Instant {
        secs: utc.timestamp(),
        nanos: utc.timestamp_subsec_nanos(),
    })
}

fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

/// The common form `YYYY-MM-DDTHH:MM:SSZ`, without going through chrono's format parser.
fn fast_utc(t: &str) -> Option<Instant> {
    let b = t.as_bytes();
    if b.len() != 20
        || b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || b.get(10) != Some(&b'T')
    {
        return None;
    }
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') || b.get(19) != Some(&b'Z') {
        return None;
    }
    let year = i32::try_from(digits(b.get(0..4)?)?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, digits(b.get(5..7)?)?, digits(b.get(8..10)?)?)?;
    let dt = date.and_hms_opt(
        digits(b.get(11..13)?)?,
        digits(b.get(14..16)?)?,
        digits(b.get(17..19)?)?,
    )?;
    Some(Instant {
        secs: dt.and_utc().timestamp(),
        nanos: 0,
    })
}

/// `request OP policy` for the positive form of a date operator.
pub(crate) fn compare(kind: OperatorKind, request: Instant, policy: Instant) -> bool {
    match kind {
        OperatorKind::DateEquals | OperatorKind::DateNotEquals => request == policy,
        OperatorKind::DateLessThan => request < policy,
        OperatorKind::DateLessThanEquals => request <= policy,
        OperatorKind::DateGreaterThan => request > policy,
        OperatorKind::DateGreaterThanEquals => request >= policy,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let z = parse_date("2025-07-16T01:00:00Z").unwrap();
        assert_eq!(z.secs, 1_752_627_600);
        assert_eq!(parse_date("1752627600"), Some(z));
        assert_eq!(parse_date("2025-07-16T03:00:00+02:00"), Some(z));
        assert_eq!(parse_date("2025-07-16T01:00Z"), Some(z));
        assert_eq!(parse_date("2025-07-16T01:00:00"), Some(z));
        assert_eq!(parse_date("20250716T010000Z"), Some(z));
        assert_eq!(parse_date("2025-07-16").unwrap().secs, 1_752_624_000);
        assert!(parse_date("2025-07-16T01:00:00.5Z").unwrap() > z);
        assert_eq!(parse_date("yesterday"), None);
        assert_eq!(parse_date("2025-13-01"), None);
        assert_eq!(parse_date(""), None);
    }
}
