//! The documents and headers of S3 Object Lock: `ObjectLockConfiguration` (PutObjectLockConfiguration,
//! GetObjectLockConfiguration), `Retention` (PutObjectRetention, GetObjectRetention), `LegalHold`
//! (PutObjectLegalHold, GetObjectLegalHold), and the `x-amz-object-lock-*` headers of writes and
//! reads (<https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObjectLockConfiguration.html>,
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObjectRetention.html>,
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObjectLegalHold.html>,
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html>). What the rules allow is
//! in `keyhole_store::ObjectLock`; this module only reads and writes their wire forms, refusing
//! what S3 refuses with S3's codes.

use chrono::{DateTime, SecondsFormat, Utc};
use http::{HeaderMap, StatusCode};
use keyhole_store::{
    DefaultRetention, LockConfig, LockMode, ObjectLock, Retention, RetentionPeriod,
};

use http::Response;

use super::{empty_response, xml_ok, Ctx};
use crate::backend::{GetObject, Got};
use crate::body::{Body, BodyReader};
use crate::config::MAX_XML_BODY_BYTES;
use crate::error::S3Error;
use crate::xml::{self, XmlWriter};

/// `400 InvalidRetentionPeriod`.
fn invalid_period(message: &str) -> S3Error {
    S3Error::new("InvalidRetentionPeriod", StatusCode::BAD_REQUEST, message)
}

fn mode_of(text: Option<&str>, what: &str) -> Result<LockMode, S3Error> {
    let text = text.ok_or_else(|| S3Error::malformed_xml(format!("{what} has no Mode")))?;
    LockMode::parse(text.trim()).ok_or_else(|| {
        S3Error::malformed_xml(format!(
            "{what}: Mode `{}` is not GOVERNANCE or COMPLIANCE",
            text.trim()
        ))
    })
}

/// A date as S3 writes it in Object Lock documents and headers (ISO 8601, UTC, milliseconds).
#[must_use]
pub fn lock_date(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// An `ObjectLockConfiguration` document. `ObjectLockEnabled` must be `Enabled` (S3 has no way
/// to disable Object Lock); `Rule/DefaultRetention` has a mode and exactly one of a positive
/// `Days` or `Years`.
///
/// # Errors
/// `MalformedXML` for a document of another shape, a missing or unknown mode, both or neither
/// of `Days` and `Years`; `InvalidRetentionPeriod` for a period that is not a positive integer.
pub fn parse_configuration(doc: &[u8]) -> Result<LockConfig, S3Error> {
    let root = xml::parse(doc).map_err(S3Error::malformed_xml)?;
    if root.name != "ObjectLockConfiguration" {
        return Err(S3Error::malformed_xml(
            "expected an ObjectLockConfiguration document",
        ));
    }
    if root.child_text("ObjectLockEnabled").map(str::trim) != Some("Enabled") {
        return Err(S3Error::malformed_xml(
            "ObjectLockEnabled must be `Enabled` (Object Lock cannot be disabled)",
        ));
    }
    let Some(rule) = root.children_named("Rule").next() else {
        return Ok(LockConfig::default());
    };
    let Some(d) = rule.children_named("DefaultRetention").next() else {
        return Err(S3Error::malformed_xml("a Rule has no DefaultRetention"));
    };
    let mode = mode_of(d.child_text("Mode"), "DefaultRetention")?;
    // keyhole's own bound: 100 years (36,500 days) keeps every retain-until date one that
    // clients can read (review 12: `Years=100000` gave dates past year 9999 that boto3 cannot
    // parse, on every new object of the bucket).
    let number = |name: &str, max: i64| -> Result<Option<u32>, S3Error> {
        let Some(t) = d.child_text(name) else {
            return Ok(None);
        };
        match t.trim().parse::<i64>() {
            Ok(n) if n > max => Err(invalid_period(&format!(
                "Default retention period {name} must be at most {max}"
            ))),
            Ok(n) if n > 0 => u32::try_from(n).map(Some).map_err(|_| {
                invalid_period(&format!("Default retention period {name} is too large"))
            }),
            Ok(_) => Err(invalid_period(
                "Default retention period must be a positive integer value.",
            )),
            Err(_) => Err(S3Error::malformed_xml(format!(
                "DefaultRetention {name} is not an integer"
            ))),
        }
    };
    let period = match (number("Days", 36_500)?, number("Years", 100)?) {
        (Some(d), None) => RetentionPeriod::Days(d),
        (None, Some(y)) => RetentionPeriod::Years(y),
        _ => {
            return Err(S3Error::malformed_xml(
                "DefaultRetention has exactly one of Days and Years",
            ))
        }
    };
    Ok(LockConfig {
        default_retention: Some(DefaultRetention { mode, period }),
    })
}

/// The `ObjectLockConfiguration` document of an enabled configuration.
#[must_use]
pub fn configuration_xml(c: &LockConfig) -> String {
    let mut w = XmlWriter::new();
    w.root("ObjectLockConfiguration");
    w.elem("ObjectLockEnabled", "Enabled");
    if let Some(d) = &c.default_retention {
        w.open("Rule");
        w.open("DefaultRetention");
        w.elem("Mode", d.mode.as_str());
        match d.period {
            RetentionPeriod::Days(n) => w.elem("Days", &n.to_string()),
            RetentionPeriod::Years(n) => w.elem("Years", &n.to_string()),
        }
        w.close("DefaultRetention");
        w.close("Rule");
    }
    w.close("ObjectLockConfiguration");
    w.finish()
}

/// A `Retention` document: `None` for an empty one (which removes the retention, as S3 allows
/// with the governance bypass).
///
/// # Errors
/// `MalformedXML` for another shape, an unknown mode, a date that is not ISO 8601, or a mode
/// without a date (or the reverse).
pub fn parse_retention(doc: &[u8]) -> Result<Option<Retention>, S3Error> {
    let root = xml::parse(doc).map_err(S3Error::malformed_xml)?;
    if root.name != "Retention" {
        return Err(S3Error::malformed_xml("expected a Retention document"));
    }
    match (root.child_text("Mode"), root.child_text("RetainUntilDate")) {
        (None, None) => Ok(None),
        (mode, Some(date)) if mode.is_some() => {
            let mode = mode_of(mode, "Retention")?;
            let until = parse_date(date).ok_or_else(|| {
                S3Error::malformed_xml(format!(
                    "RetainUntilDate `{}` is not an ISO 8601 date",
                    date.trim()
                ))
            })?;
            Ok(Some(Retention { mode, until }))
        }
        _ => Err(S3Error::malformed_xml(
            "Retention needs both Mode and RetainUntilDate",
        )),
    }
}

/// The `Retention` document of a retention.
#[must_use]
pub fn retention_xml(r: &Retention) -> String {
    let mut w = XmlWriter::new();
    w.root("Retention");
    w.elem("Mode", r.mode.as_str());
    w.elem("RetainUntilDate", &lock_date(r.until));
    w.close("Retention");
    w.finish()
}

/// A `LegalHold` document: whether the hold is ON.
///
/// # Errors
/// `MalformedXML` unless `Status` is `ON` or `OFF`.
pub fn parse_legal_hold(doc: &[u8]) -> Result<bool, S3Error> {
    let root = xml::parse(doc).map_err(S3Error::malformed_xml)?;
    if root.name != "LegalHold" {
        return Err(S3Error::malformed_xml("expected a LegalHold document"));
    }
    match root.child_text("Status").map(str::trim) {
        Some("ON") => Ok(true),
        Some("OFF") => Ok(false),
        _ => Err(S3Error::malformed_xml("LegalHold Status must be ON or OFF")),
    }
}

/// The `LegalHold` document.
#[must_use]
pub fn legal_hold_xml(on: bool) -> String {
    let mut w = XmlWriter::new();
    w.root("LegalHold");
    w.elem("Status", if on { "ON" } else { "OFF" });
    w.close("LegalHold");
    w.finish()
}

/// The Object Lock a write asks for in its headers (`x-amz-object-lock-mode` with
/// `x-amz-object-lock-retain-until-date`, `x-amz-object-lock-legal-hold`).
///
/// # Errors
/// `InvalidArgument` for a mode without a date (or the reverse), an unknown mode or legal-hold
/// status, a date that does not parse or is not in the future.
pub fn from_headers(headers: &HeaderMap, now: DateTime<Utc>) -> Result<ObjectLock, S3Error> {
    let h = |name: &str| -> Result<Option<&str>, S3Error> {
        headers
            .get(name)
            .map(|v| {
                v.to_str().map(str::trim).map_err(|_| {
                    S3Error::invalid_argument(format!("{name} is not ASCII"))
                        .with("ArgumentName", name)
                })
            })
            .transpose()
    };
    let retention = match (
        h("x-amz-object-lock-mode")?,
        h("x-amz-object-lock-retain-until-date")?,
    ) {
        (None, None) => None,
        (Some(mode), Some(date)) => {
            let mode = LockMode::parse(mode).ok_or_else(|| {
                S3Error::invalid_argument(format!(
                    "Unknown wormMode directive `{mode}`: use GOVERNANCE or COMPLIANCE"
                ))
                .with("ArgumentName", "x-amz-object-lock-mode")
            })?;
            let until = parse_date(date).ok_or_else(|| {
                S3Error::invalid_argument(format!(
                    "x-amz-object-lock-retain-until-date `{date}` is not an ISO 8601 date"
                ))
                .with("ArgumentName", "x-amz-object-lock-retain-until-date")
            })?;
            if until <= now {
                return Err(S3Error::invalid_argument(
                    "The retain until date must be in the future!",
                )
                .with("ArgumentName", "x-amz-object-lock-retain-until-date"));
            }
            Some(Retention { mode, until })
        }
        _ => return Err(S3Error::invalid_argument(
            "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied",
        )),
    };
    let legal_hold = match h("x-amz-object-lock-legal-hold")? {
        None => None,
        Some("ON") => Some(true),
        Some("OFF") => Some(false),
        Some(other) => {
            return Err(S3Error::invalid_argument(format!(
                "Legal Hold must be either of 'ON' or 'OFF', not `{other}`"
            ))
            .with("ArgumentName", "x-amz-object-lock-legal-hold"))
        }
    };
    Ok(ObjectLock {
        retention,
        legal_hold,
    })
}

/// The `s3:object-lock-*` condition keys of a lock a request sets, as of `now`: the mode, the
/// retain-until date, the days left until it (rounded up, so a Deny on "more than N days"
/// catches N days and a second), and the legal-hold status.
pub fn add_keys(
    c: &mut keyhole_policy::Context,
    retention: Option<&Retention>,
    legal_hold: Option<bool>,
    now: DateTime<Utc>,
) {
    if let Some(r) = retention {
        c.insert("s3:object-lock-mode", r.mode.as_str());
        c.insert("s3:object-lock-retain-until-date", lock_date(r.until));
        let secs = r.until.signed_duration_since(now).num_seconds().max(0);
        let days = (secs + 86_399) / 86_400;
        c.insert("s3:object-lock-remaining-retention-days", days.to_string());
    }
    if let Some(on) = legal_hold {
        c.insert("s3:object-lock-legal-hold", if on { "ON" } else { "OFF" });
    }
}

/// [`add_keys`] for a write's `x-amz-object-lock-*` headers. Headers that do not parse set
/// nothing here; the handler refuses them (`InvalidArgument`) before anything is written.
pub fn add_header_keys(c: &mut keyhole_policy::Context, headers: &HeaderMap, now: DateTime<Utc>) {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let retention = match (
        h("x-amz-object-lock-mode").and_then(LockMode::parse),
        h("x-amz-object-lock-retain-until-date").and_then(parse_date),
    ) {
        (Some(mode), Some(until)) => Some(Retention { mode, until }),
        _ => None,
    };
    let legal_hold = match h("x-amz-object-lock-legal-hold") {
        Some("ON") => Some(true),
        Some("OFF") => Some(false),
        _ => None,
    };
    add_keys(c, retention.as_ref(), legal_hold, now);
}

/// PutObjectRetention or PutObjectLegalHold of one version, described for authorization once
/// its document is read: its action (and `s3:BypassGovernanceRetention` for a bypass), with
/// the `s3:object-lock-*` keys of what it sets.
pub struct LockChange {
    bucket: String,
    key: String,
    version_id: Option<String>,
    retention: Option<Option<Retention>>,
    legal_hold: Option<bool>,
    bypass: bool,
    now: DateTime<Utc>,
}

impl crate::authz::Describe for LockChange {
    fn requirement(&self) -> crate::authz::Requirement {
        let object = super::route::object_arn(&self.bucket, &self.key);
        let action = if self.retention.is_some() {
            "s3:PutObjectRetention"
        } else {
            "s3:PutObjectLegalHold"
        };
        let mut list = vec![crate::authz::Permission::new(action, object.clone())];
        if self.bypass {
            // "Bypassing a Governance Retention configuration requires the
            // s3:BypassGovernanceRetention permission" (API_PutObjectRetention.html).
            list.push(crate::authz::Permission::new(
                "s3:BypassGovernanceRetention",
                object,
            ));
        }
        crate::authz::Requirement::Permissions(list)
    }

    fn add_context(&self, context: &mut keyhole_policy::Context) {
        if let Some(v) = &self.version_id {
            context.insert("s3:versionid", v.as_str());
        }
        let retention = self.retention.flatten();
        add_keys(context, retention.as_ref(), self.legal_hold, self.now);
    }
}

/// Reading one part of a version's lock: `s3:GetObjectRetention` or `s3:GetObjectLegalHold`.
struct ShowLock {
    action: &'static str,
    bucket: String,
    key: String,
    version_id: Option<String>,
}

impl crate::authz::Describe for ShowLock {
    fn requirement(&self) -> crate::authz::Requirement {
        crate::authz::Requirement::Permissions(vec![crate::authz::Permission::new(
            self.action,
            super::route::object_arn(&self.bucket, &self.key),
        )])
    }

    fn add_context(&self, context: &mut keyhole_policy::Context) {
        if let Some(v) = &self.version_id {
            context.insert("s3:versionid", v.as_str());
        }
    }
}

/// What of a version's lock a GetObject or HeadObject may show its caller: "x-amz-object-lock-mode
/// ... returned only if the requester has the s3:GetObjectRetention permission", and the legal
/// hold only with `s3:GetObjectLegalHold`
/// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html; review 12). Each part
/// is decided by the one authorization stage; an allowed one is recorded with the request's
/// checks, a refused one only withholds its headers (the read itself was allowed, so its
/// record must not say Deny).
pub(super) async fn visible(ctx: &Ctx<'_>, lock: ObjectLock) -> ObjectLock {
    let mut shown = ObjectLock::default();
    for (action, present) in [
        ("s3:GetObjectRetention", lock.retention.is_some()),
        ("s3:GetObjectLegalHold", lock.legal_hold.is_some()),
    ] {
        if !present {
            continue;
        }
        let item = ShowLock {
            action,
            bucket: ctx.bucket.clone(),
            key: ctx.key.clone(),
            version_id: ctx.version().map(str::to_owned),
        };
        let scratch = crate::audit::Checks::default();
        let allowed = crate::authz::authorize(ctx.gw, ctx.principal, item, &ctx.context, &scratch)
            .await
            .is_ok();
        if allowed {
            for c in scratch.snapshot() {
                ctx.checks.push(c);
            }
            if action == "s3:GetObjectRetention" {
                shown.retention = lock.retention;
            } else {
                shown.legal_hold = lock.legal_hold;
            }
        }
    }
    shown
}

/// The headers GetObject and HeadObject answer for a version's lock.
#[must_use]
pub fn response_headers(lock: &ObjectLock) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(r) = &lock.retention {
        out.push(("x-amz-object-lock-mode", r.mode.as_str().to_owned()));
        out.push(("x-amz-object-lock-retain-until-date", lock_date(r.until)));
    }
    if let Some(on) = lock.legal_hold {
        out.push((
            "x-amz-object-lock-legal-hold",
            if on { "ON" } else { "OFF" }.to_owned(),
        ));
    }
    out
}

/// `x-amz-bypass-governance-retention: true`.
#[must_use]
pub fn bypass_requested(headers: &HeaderMap) -> bool {
    headers
        .get("x-amz-bypass-governance-retention")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

// ---------------------------------------------------------------- handlers

/// What S3 answers a lock request on a bucket without Object Lock.
fn missing_configuration() -> S3Error {
    S3Error::invalid_request("Bucket is missing Object Lock Configuration")
}

/// GetObjectLockConfiguration (`ObjectLockConfigurationNotFoundError` when Object Lock was never
/// enabled, API_GetObjectLockConfiguration.html).
pub(super) async fn get_configuration(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    match ctx.gw.storage.get_lock_configuration(&ctx.bucket).await? {
        Some(c) => Ok(xml_ok(configuration_xml(&c))),
        None => Err(S3Error::new(
            "ObjectLockConfigurationNotFoundError",
            StatusCode::NOT_FOUND,
            "Object Lock configuration does not exist for this bucket",
        )),
    }
}

/// PutObjectLockConfiguration: enables Object Lock on a versioned bucket (for good) or replaces
/// its default retention (`InvalidBucketState` unless versioning is enabled).
pub(super) async fn put_configuration(
    ctx: &Ctx<'_>,
    mut body: BodyReader,
) -> Result<Response<Body>, S3Error> {
    let doc = body.read_limited(MAX_XML_BODY_BYTES).await?;
    let config = parse_configuration(&doc)?;
    ctx.gw
        .storage
        .put_lock_configuration(&ctx.bucket, config)
        .await?;
    Ok(empty_response(StatusCode::OK))
}

/// The lock of the version the request names (after checking the bucket has Object Lock).
async fn lock_of(ctx: &Ctx<'_>) -> Result<ObjectLock, S3Error> {
    if ctx
        .gw
        .storage
        .get_lock_configuration(&ctx.bucket)
        .await?
        .is_none()
    {
        return Err(missing_configuration());
    }
    let got = ctx
        .gw
        .storage
        .get_object(GetObject::head_version(
            &ctx.bucket,
            &ctx.key,
            ctx.version(),
        ))
        .await?;
    match got {
        Got::Object(o) => Ok(o.head.meta.lock),
        Got::NotModified { .. } => Err(S3Error::internal(std::io::Error::other(
            "an unconditional read answered Not Modified",
        ))),
    }
}

fn no_lock_on_object() -> S3Error {
    S3Error::new(
        "NoSuchObjectLockConfiguration",
        StatusCode::NOT_FOUND,
        "The specified object does not have a ObjectLock configuration",
    )
}

/// GetObjectRetention.
pub(super) async fn get_retention(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    let lock = lock_of(ctx).await?;
    let r = lock.retention.ok_or_else(no_lock_on_object)?;
    Ok(xml_ok(retention_xml(&r)))
}

/// PutObjectRetention: the new retention must be in the future; shortening, removing or
/// changing a retention in force follows [`ObjectLock::check_retention_change`] (a governance
/// bypass was authorized as `s3:BypassGovernanceRetention` when asked for).
pub(super) async fn put_retention(
    ctx: &Ctx<'_>,
    mut body: BodyReader,
) -> Result<Response<Body>, S3Error> {
    let doc = body.read_limited(MAX_XML_BODY_BYTES).await?;
    let retention = parse_retention(&doc)?;
    let now = Utc::now();
    if retention.is_some_and(|r| r.until <= now) {
        return Err(
            S3Error::invalid_argument("The retain until date must be in the future!")
                .with("ArgumentName", "RetainUntilDate"),
        );
    }
    let bypass = bypass_requested(ctx.headers);
    let change = LockChange {
        bucket: ctx.bucket.clone(),
        key: ctx.key.clone(),
        version_id: ctx.version().map(str::to_owned),
        retention: Some(retention),
        legal_hold: None,
        bypass,
        now,
    };
    crate::authz::authorize(ctx.gw, ctx.principal, change, &ctx.context, ctx.checks).await?;
    ctx.before_change().await?;
    ctx.gw
        .storage
        .put_retention(&ctx.bucket, &ctx.key, ctx.version(), retention, bypass)
        .await?;
    ctx.record_lock(&ObjectLock {
        retention,
        legal_hold: None,
    });
    Ok(empty_response(StatusCode::OK))
}

/// GetObjectLegalHold.
pub(super) async fn get_legal_hold(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    let lock = lock_of(ctx).await?;
    let on = lock.legal_hold.ok_or_else(no_lock_on_object)?;
    Ok(xml_ok(legal_hold_xml(on)))
}

/// PutObjectLegalHold.
pub(super) async fn put_legal_hold(
    ctx: &Ctx<'_>,
    mut body: BodyReader,
) -> Result<Response<Body>, S3Error> {
    let doc = body.read_limited(MAX_XML_BODY_BYTES).await?;
    let on = parse_legal_hold(&doc)?;
    let change = LockChange {
        bucket: ctx.bucket.clone(),
        key: ctx.key.clone(),
        version_id: ctx.version().map(str::to_owned),
        retention: None,
        legal_hold: Some(on),
        bypass: false,
        now: Utc::now(),
    };
    crate::authz::authorize(ctx.gw, ctx.principal, change, &ctx.context, ctx.checks).await?;
    ctx.before_change().await?;
    ctx.gw
        .storage
        .put_legal_hold(&ctx.bucket, &ctx.key, ctx.version(), on)
        .await?;
    ctx.record_lock(&ObjectLock {
        retention: None,
        legal_hold: Some(on),
    });
    Ok(empty_response(StatusCode::OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(inner: &str) -> Result<LockConfig, S3Error> {
        parse_configuration(
            format!("<ObjectLockConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{inner}</ObjectLockConfiguration>").as_bytes(),
        )
    }

    fn rule(r: &str) -> String {
        format!("<ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention>{r}</DefaultRetention></Rule>")
    }

    /// The refusals ceph/s3-tests expects of PutObjectLockConfiguration (`test_object_lock_put_obj_lock_*`).
    #[test]
    fn configurations_are_checked_as_s3_checks_them() {
        let ok = cfg(&rule("<Mode>GOVERNANCE</Mode><Days>1</Days>")).unwrap();
        assert_eq!(
            ok.default_retention,
            Some(DefaultRetention {
                mode: LockMode::Governance,
                period: RetentionPeriod::Days(1)
            })
        );
        assert_eq!(
            parse_configuration(configuration_xml(&ok).as_bytes()).unwrap(),
            ok
        );
        let years = cfg(&rule("<Mode>COMPLIANCE</Mode><Years>2</Years>")).unwrap();
        assert_eq!(
            parse_configuration(configuration_xml(&years).as_bytes()).unwrap(),
            years
        );
        assert_eq!(
            cfg("<ObjectLockEnabled>Enabled</ObjectLockEnabled>").unwrap(),
            LockConfig::default()
        );
        for (inner, code) in [
            (
                rule("<Mode>GOVERNANCE</Mode><Days>1</Days><Years>1</Years>"),
                "MalformedXML",
            ),
            (rule("<Mode>GOVERNANCE</Mode>"), "MalformedXML"),
            (
                rule("<Mode>governance</Mode><Years>1</Years>"),
                "MalformedXML",
            ),
            (rule("<Mode>abc</Mode><Years>1</Years>"), "MalformedXML"),
            (
                rule("<Mode>GOVERNANCE</Mode><Days>0</Days>"),
                "InvalidRetentionPeriod",
            ),
            (
                rule("<Mode>GOVERNANCE</Mode><Years>-1</Years>"),
                "InvalidRetentionPeriod",
            ),
            (
                rule("<Mode>GOVERNANCE</Mode><Years>101</Years>"),
                "InvalidRetentionPeriod",
            ),
            (
                rule("<Mode>GOVERNANCE</Mode><Days>36501</Days>"),
                "InvalidRetentionPeriod",
            ),
            (
                rule("<Mode>GOVERNANCE</Mode><Days>x</Days>"),
                "MalformedXML",
            ),
            (
                "<ObjectLockEnabled>Disabled</ObjectLockEnabled>".to_owned(),
                "MalformedXML",
            ),
        ] {
            assert_eq!(cfg(&inner).unwrap_err().code(), code, "{inner}");
        }
    }

    #[test]
    fn retention_and_legal_hold_documents_round_trip() {
        let r = Retention {
            mode: LockMode::Compliance,
            until: parse_date("2030-01-01T00:00:00Z").unwrap(),
        };
        assert_eq!(
            parse_retention(retention_xml(&r).as_bytes()).unwrap(),
            Some(r)
        );
        assert_eq!(parse_retention(b"<Retention/>").unwrap(), None);
        for bad in [
            "<Retention><Mode>governance</Mode><RetainUntilDate>2030-01-01T00:00:00Z</RetainUntilDate></Retention>",
            "<Retention><Mode>GOVERNANCE</Mode></Retention>",
            "<Retention><Mode>GOVERNANCE</Mode><RetainUntilDate>soon</RetainUntilDate></Retention>",
            "<LegalHold/>",
        ] {
            assert_eq!(parse_retention(bad.as_bytes()).unwrap_err().code(), "MalformedXML", "{bad}");
        }
        assert!(parse_legal_hold(legal_hold_xml(true).as_bytes()).unwrap());
        assert!(!parse_legal_hold(legal_hold_xml(false).as_bytes()).unwrap());
        assert_eq!(
            parse_legal_hold(b"<LegalHold><Status>abc</Status></LegalHold>")
                .unwrap_err()
                .code(),
            "MalformedXML"
        );
    }

    #[test]
    fn write_headers_need_a_mode_and_a_future_date_together() {
        let now = parse_date("2026-12-03T00:00:00Z").unwrap();
        let hm = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().unwrap());
            }
            h
        };
        let got = from_headers(
            &hm(&[
                ("x-amz-object-lock-mode", "GOVERNANCE"),
                (
                    "x-amz-object-lock-retain-until-date",
                    "2030-01-01T00:00:00.000Z",
                ),
                ("x-amz-object-lock-legal-hold", "ON"),
            ]),
            now,
        )
        .unwrap();
        assert_eq!(got.retention.map(|r| r.mode), Some(LockMode::Governance));
        assert_eq!(got.legal_hold, Some(true));
        assert_eq!(
            response_headers(&got),
            vec![
                ("x-amz-object-lock-mode", "GOVERNANCE".to_owned()),
                (
                    "x-amz-object-lock-retain-until-date",
                    "2030-01-01T00:00:00.000Z".to_owned()
                ),
                ("x-amz-object-lock-legal-hold", "ON".to_owned()),
            ]
        );
        assert!(from_headers(&HeaderMap::new(), now).unwrap().is_empty());
        for bad in [
            vec![("x-amz-object-lock-mode", "GOVERNANCE")],
            vec![(
                "x-amz-object-lock-retain-until-date",
                "2030-01-01T00:00:00Z",
            )],
            vec![
                ("x-amz-object-lock-mode", "FOREVER"),
                (
                    "x-amz-object-lock-retain-until-date",
                    "2030-01-01T00:00:00Z",
                ),
            ],
            vec![
                ("x-amz-object-lock-mode", "GOVERNANCE"),
                (
                    "x-amz-object-lock-retain-until-date",
                    "2020-01-01T00:00:00Z",
                ),
            ],
            vec![("x-amz-object-lock-legal-hold", "maybe")],
        ] {
            assert_eq!(
                from_headers(&hm(&bad), now).unwrap_err().code(),
                "InvalidArgument",
                "{bad:?}"
            );
        }
        assert!(bypass_requested(&hm(&[(
            "x-amz-bypass-governance-retention",
            "True"
        )])));
        assert!(!bypass_requested(&HeaderMap::new()));
    }
}
