//! S3 Object Lock: what a bucket's lock configuration and a version's retention and legal hold
//! allow ("Locking objects with Object Lock",
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock.html>; PutObjectRetention,
//! PutObjectLegalHold, DeleteObject).
//!
//! - A version under a **legal hold** cannot be deleted by anyone, whatever its retention.
//! - A version retained in **COMPLIANCE** mode cannot be deleted, nor its retention shortened,
//!   removed or changed to GOVERNANCE, until its retain-until date has passed; it can be extended.
//! - A version retained in **GOVERNANCE** mode is protected the same way, except that a request
//!   that sets `x-amz-bypass-governance-retention: true` (and whose caller has
//!   `s3:BypassGovernanceRetention`, checked by the gateway's authorization) may delete it or
//!   shorten, remove or change its retention; extending it in the same mode needs no bypass.
//!   Changing GOVERNANCE to COMPLIANCE counts as a change that needs the bypass, as S3 answers.
//! - Once its retain-until date has passed, a version is no longer protected by its retention.
//!
//! These rules are checked inside the store's write transactions, so a concurrent change of the
//! lock cannot slip between the check and the delete.

use chrono::{DateTime, Months, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// A retention mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LockMode {
    /// `GOVERNANCE`: a caller allowed to bypass governance retention may override it.
    Governance,
    /// `COMPLIANCE`: no one may override it until it expires.
    Compliance,
}

impl LockMode {
    /// The name S3 gives it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Governance => "GOVERNANCE",
            Self::Compliance => "COMPLIANCE",
        }
    }

    /// The mode named exactly as S3 names it (S3 refuses `governance` in lower case).
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "GOVERNANCE" => Some(Self::Governance),
            "COMPLIANCE" => Some(Self::Compliance),
            _ => None,
        }
    }
}

/// How long a bucket's default retention keeps new versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetentionPeriod {
    /// `Days`.
    Days(u32),
    /// `Years`.
    Years(u32),
}

/// A bucket's default retention (`Rule/DefaultRetention`), applied to every new version written
/// without a retention of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRetention {
    /// The mode of the retention it gives.
    pub mode: LockMode,
    /// How long from the write.
    pub period: RetentionPeriod,
}

impl DefaultRetention {
    /// The retention a version written at `written` gets.
    #[must_use]
    pub fn retention_from(&self, written: DateTime<Utc>) -> Retention {
        let until = match self.period {
            RetentionPeriod::Days(d) => written
                .checked_add_signed(TimeDelta::days(i64::from(d)))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
            RetentionPeriod::Years(y) => written
                .checked_add_months(Months::new(y.saturating_mul(12)))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        };
        Retention {
            mode: self.mode,
            until,
        }
    }
}

/// A bucket's Object Lock configuration. Its presence on a bucket means Object Lock is enabled,
/// which cannot be undone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockConfig {
    /// The default retention, if the bucket has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_retention: Option<DefaultRetention>,
}

/// A version's retention.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// Its mode.
    pub mode: LockMode,
    /// Until when it holds.
    pub until: DateTime<Utc>,
}

/// A version's Object Lock state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLock {
    /// Its retention, if it has one (an expired one is kept, as S3 still reports it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Its legal hold: `None` when never set (GetObjectLegalHold then answers that the object has
    /// no Object Lock configuration), else ON or OFF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_hold: Option<bool>,
}

impl ObjectLock {
    /// Whether nothing was ever set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.retention.is_none() && self.legal_hold.is_none()
    }

    /// The retention still in force at `now`.
    #[must_use]
    pub fn active_retention(&self, now: DateTime<Utc>) -> Option<Retention> {
        self.retention.filter(|r| r.until > now)
    }

    /// Whether the version may be deleted for good at `now` (`bypass`: the request asked to
    /// bypass governance retention and its caller was allowed to).
    ///
    /// # Errors
    /// [`StoreError::ObjectLocked`] when it is protected.
    pub fn check_delete(&self, now: DateTime<Utc>, bypass: bool) -> Result<(), StoreError> {
        if self.legal_hold == Some(true) {
            return Err(StoreError::ObjectLocked);
        }
        match self.active_retention(now) {
            None => Ok(()),
            Some(Retention {
                mode: LockMode::Governance,
                ..
            }) if bypass => Ok(()),
            Some(_) => Err(StoreError::ObjectLocked),
        }
    }

    /// Whether the version's retention may become `new` (`None`: removed) at `now`.
    ///
    /// # Errors
    /// [`StoreError::ObjectLocked`] when the change would weaken a retention in force and is not
    /// a bypass of a governance one.
    pub fn check_retention_change(
        &self,
        new: Option<&Retention>,
        now: DateTime<Utc>,
        bypass: bool,
    ) -> Result<(), StoreError> {
        let Some(current) = self.active_retention(now) else {
            return Ok(());
        };
        let extends = new.is_some_and(|n| n.mode == current.mode && n.until >= current.until);
        match current.mode {
            _ if extends => Ok(()),
            LockMode::Governance if bypass => Ok(()),
            _ => Err(StoreError::ObjectLocked),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn lock(mode: LockMode, until: &str, hold: Option<bool>) -> ObjectLock {
        ObjectLock {
            retention: Some(Retention {
                mode,
                until: at(until),
            }),
            legal_hold: hold,
        }
    }

    const NOW: &str = "2026-12-03T12:00:00Z";
    const LATER: &str = "2030-01-01T00:00:00Z";
    const EARLIER: &str = "2026-01-01T00:00:00Z";

    #[test]
    fn deletion_follows_hold_mode_bypass_and_expiry() {
        let now = at(NOW);
        let cases = [
            (lock(LockMode::Governance, LATER, None), false, false),
            (lock(LockMode::Governance, LATER, None), true, true),
            (lock(LockMode::Compliance, LATER, None), true, false),
            (lock(LockMode::Compliance, EARLIER, None), false, true),
            (lock(LockMode::Governance, EARLIER, Some(true)), true, false),
            (
                lock(LockMode::Governance, EARLIER, Some(false)),
                false,
                true,
            ),
            (ObjectLock::default(), false, true),
        ];
        for (l, bypass, ok) in cases {
            assert_eq!(
                l.check_delete(now, bypass).is_ok(),
                ok,
                "{l:?} bypass={bypass}"
            );
        }
    }

    #[test]
    fn retention_may_grow_but_shrinks_only_by_bypassing_governance() {
        let now = at(NOW);
        let r = |mode, until: &str| Retention {
            mode,
            until: at(until),
        };
        let far = "2031-01-01T00:00:00Z";
        let g = lock(LockMode::Governance, LATER, None);
        let c = lock(LockMode::Compliance, LATER, None);
        use LockMode::{Compliance as C, Governance as G};
        // Extending in the same mode: always.
        assert!(g
            .check_retention_change(Some(&r(G, far)), now, false)
            .is_ok());
        assert!(c
            .check_retention_change(Some(&r(C, far)), now, false)
            .is_ok());
        // Shortening, removing, changing the mode: governance with a bypass only.
        for new in [Some(r(G, "2027-01-01T00:00:00Z")), None, Some(r(C, far))] {
            assert!(
                g.check_retention_change(new.as_ref(), now, false).is_err(),
                "{new:?}"
            );
            assert!(
                g.check_retention_change(new.as_ref(), now, true).is_ok(),
                "{new:?}"
            );
        }
        for new in [Some(r(C, "2027-01-01T00:00:00Z")), None, Some(r(G, far))] {
            assert!(
                c.check_retention_change(new.as_ref(), now, true).is_err(),
                "{new:?}"
            );
        }
        // An expired retention protects nothing.
        let old = lock(LockMode::Compliance, EARLIER, None);
        assert!(old.check_retention_change(None, now, false).is_ok());
    }

    #[test]
    fn default_retention_counts_days_and_calendar_years() {
        let written = at("2024-02-29T10:00:00Z");
        let days = DefaultRetention {
            mode: LockMode::Governance,
            period: RetentionPeriod::Days(1),
        };
        assert_eq!(
            days.retention_from(written).until,
            at("2024-03-01T10:00:00Z")
        );
        let years = DefaultRetention {
            mode: LockMode::Compliance,
            period: RetentionPeriod::Years(1),
        };
        let r = years.retention_from(written);
        assert_eq!(
            (r.mode, r.until),
            (LockMode::Compliance, at("2025-02-28T10:00:00Z"))
        );
        let huge = DefaultRetention {
            mode: LockMode::Governance,
            period: RetentionPeriod::Years(u32::MAX),
        };
        assert_eq!(huge.retention_from(written).until, DateTime::<Utc>::MAX_UTC);
    }

    #[test]
    fn modes_are_named_exactly() {
        assert_eq!(LockMode::parse("GOVERNANCE"), Some(LockMode::Governance));
        assert_eq!(LockMode::parse("COMPLIANCE"), Some(LockMode::Compliance));
        assert_eq!(LockMode::parse("governance"), None);
        assert_eq!(
            serde_json::to_string(&LockMode::Compliance).unwrap(),
            "\"COMPLIANCE\""
        );
    }
}
