//! Object Lock in the store: enabling it (versioning first), default retention on new versions,
//! deletions refused for protected versions unless a governance bypass, retention changes, legal
//! holds, and versioning that can no longer be suspended
//! (https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock.html).

use chrono::{Duration, Utc};
use keyhole_store::{
    DefaultRetention, LocalStore, LockConfig, LockMode, ObjectLock, ObjectMeta, Retention,
    RetentionPeriod, StoreError, Versioning,
};

use crate::common::{open, put, put_meta};

fn locked(default: Option<DefaultRetention>) -> (tempfile::TempDir, LocalStore) {
    let (d, s) = open();
    s.create_bucket_with("bkt", "us-east-1", true).unwrap();
    s.set_lock_configuration(
        "bkt",
        LockConfig {
            default_retention: default,
        },
    )
    .unwrap();
    (d, s)
}

fn retention(mode: LockMode, days: i64) -> Retention {
    Retention {
        mode,
        until: Utc::now() + Duration::days(days),
    }
}

#[test]
fn object_lock_needs_versioning_and_then_keeps_it_enabled() {
    let (_d, s) = open();
    s.create_bucket("bkt", "us-east-1").unwrap();
    let cfg = LockConfig::default();
    assert!(matches!(
        s.set_lock_configuration("bkt", cfg),
        Err(StoreError::InvalidBucketState { .. })
    ));
    s.set_versioning("bkt", Versioning::Suspended).unwrap();
    assert!(matches!(
        s.set_lock_configuration("bkt", cfg),
        Err(StoreError::InvalidBucketState { .. })
    ));
    s.set_versioning("bkt", Versioning::Enabled).unwrap();
    s.set_lock_configuration("bkt", cfg).unwrap();
    assert_eq!(s.lock_configuration("bkt").unwrap(), Some(cfg));
    assert!(matches!(
        s.set_versioning("bkt", Versioning::Suspended),
        Err(StoreError::InvalidBucketState { .. })
    ));
    // A lock named on a write in a bucket without Object Lock is refused, and nothing is stored.
    s.create_bucket("plain", "us-east-1").unwrap();
    let mut w = s.new_object("plain").unwrap();
    w.write(b"x").unwrap();
    let meta = ObjectMeta {
        lock: ObjectLock {
            retention: None,
            legal_hold: Some(true),
        },
        ..ObjectMeta::default()
    };
    assert!(matches!(
        w.commit("k", meta, None),
        Err(StoreError::InvalidRequest { .. })
    ));
    assert!(matches!(s.head("plain", "k"), Err(StoreError::NoSuchKey)));
    assert!(matches!(
        s.put_version_legal_hold("plain", "k", None, true),
        Err(StoreError::InvalidRequest { .. })
    ));
}

#[test]
fn new_versions_get_the_default_retention_and_protected_versions_stay() {
    let (_d, s) = locked(Some(DefaultRetention {
        mode: LockMode::Governance,
        period: RetentionPeriod::Days(1),
    }));
    let v1 = put(&s, "bkt", "k", b"one");
    let r = v1.meta.lock.retention.expect("default retention");
    assert_eq!(r.mode, LockMode::Governance);
    assert_eq!(r.until, v1.last_modified + Duration::days(1));
    let id1 = v1.version_id.clone().unwrap();
    // A delete without a version id only adds a marker: allowed.
    let marker = s.delete_version("bkt", "k", None, None).unwrap();
    assert!(marker.delete_marker);
    // The version itself: refused, then allowed with a governance bypass.
    assert!(matches!(
        s.delete_version("bkt", "k", Some(&id1), None),
        Err(StoreError::ObjectLocked)
    ));
    s.delete_version_with("bkt", "k", Some(&id1), None, true)
        .unwrap();
    assert!(s.head_version("bkt", "k", Some(&id1)).is_err());
}

#[test]
fn compliance_and_legal_holds_cannot_be_bypassed() {
    let (_d, s) = locked(None);
    let meta = ObjectMeta {
        lock: ObjectLock {
            retention: Some(retention(LockMode::Compliance, 30)),
            legal_hold: None,
        },
        ..ObjectMeta::default()
    };
    let c = put_meta(&s, "bkt", "c", b"c", meta).version_id.unwrap();
    assert!(matches!(
        s.delete_version_with("bkt", "c", Some(&c), None, true),
        Err(StoreError::ObjectLocked)
    ));
    // Extending is allowed, shortening is not, even with a bypass.
    let now = Utc::now();
    s.put_version_retention(
        "bkt",
        "c",
        Some(&c),
        Some(retention(LockMode::Compliance, 60)),
        false,
        now,
    )
    .unwrap();
    assert!(matches!(
        s.put_version_retention(
            "bkt",
            "c",
            Some(&c),
            Some(retention(LockMode::Compliance, 1)),
            true,
            now
        ),
        Err(StoreError::ObjectLocked)
    ));
    // A legal hold protects a version without retention until it is turned off.
    let h = put(&s, "bkt", "h", b"h").version_id.unwrap();
    s.put_version_legal_hold("bkt", "h", Some(&h), true)
        .unwrap();
    assert_eq!(
        s.head_version("bkt", "h", Some(&h))
            .unwrap()
            .meta
            .lock
            .legal_hold,
        Some(true)
    );
    assert!(matches!(
        s.delete_version_with("bkt", "h", Some(&h), None, true),
        Err(StoreError::ObjectLocked)
    ));
    s.put_version_legal_hold("bkt", "h", Some(&h), false)
        .unwrap();
    s.delete_version("bkt", "h", Some(&h), None).unwrap();
}

#[test]
fn governance_retention_changes_need_a_bypass_except_extensions() {
    let (_d, s) = locked(None);
    let g = put(&s, "bkt", "g", b"g").version_id.unwrap();
    let now = Utc::now();
    let set = |r: Option<Retention>, bypass: bool| {
        s.put_version_retention("bkt", "g", Some(&g), r, bypass, now)
    };
    set(Some(retention(LockMode::Governance, 10)), false).unwrap();
    set(Some(retention(LockMode::Governance, 20)), false).unwrap();
    for r in [
        Some(retention(LockMode::Governance, 5)),
        Some(retention(LockMode::Compliance, 30)),
        None,
    ] {
        assert!(
            matches!(set(r, false), Err(StoreError::ObjectLocked)),
            "{r:?}"
        );
    }
    set(None, true).unwrap();
    s.delete_version("bkt", "g", Some(&g), None).unwrap();
}
