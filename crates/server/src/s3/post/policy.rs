//! The POST policy of a browser-form upload: a base64 JSON document with an `expiration` and
//! `conditions` that every field of the form must meet
//! (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html).
//!
//! - Conditions: exact match `{"field": "value"}` or `["eq", "$field", "value"]`, prefix
//!   `["starts-with", "$field", "prefix"]` (for `Content-Type`, every comma-separated value must
//!   start with it; an empty prefix matches anything), and `["content-length-range", min, max]`
//!   on the file's size.
//! - Every form field except `policy`, `x-amz-signature`, `file` and `x-ignore-*` must be named
//!   by at least one condition ("Each form field that you specify in a form (except
//!   x-amz-signature, file, policy, and field names that have an x-ignore- prefix) must appear in
//!   the list of conditions"); a condition on a field the form does not have fails.
//! - Field names are matched case-insensitively, values case-sensitively; `bucket` is the
//!   request's bucket.

use chrono::{DateTime, Utc};
use http::StatusCode;

use crate::error::S3Error;

/// One condition of a POST policy.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    /// The field (lowercase) must equal the value.
    Eq { field: String, value: String },
    /// The field (lowercase) must start with the prefix.
    StartsWith { field: String, prefix: String },
    /// The file's size in bytes must be within `min..=max`.
    LengthRange { min: u64, max: u64 },
}

impl Condition {
    /// The condition as AWS quotes it in "Policy Condition failed: ...".
    fn describe(&self) -> String {
        match self {
            Condition::Eq { field, value } => format!("[\"eq\", \"${field}\", \"{value}\"]"),
            Condition::StartsWith { field, prefix } => {
                format!("[\"starts-with\", \"${field}\", \"{prefix}\"]")
            }
            Condition::LengthRange { min, max } => {
                format!("[\"content-length-range\", {min}, {max}]")
            }
        }
    }
}

/// A parsed POST policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostPolicy {
    /// When the policy stops being valid.
    pub expiration: DateTime<Utc>,
    conditions: Vec<Condition>,
}

fn invalid(why: impl std::fmt::Display) -> S3Error {
    S3Error::new(
        "InvalidPolicyDocument",
        StatusCode::BAD_REQUEST,
        format!("Invalid Policy: {why}"),
    )
}

/// `AccessDenied` with AWS's "Invalid according to Policy" wording.
fn denied(why: impl std::fmt::Display) -> S3Error {
    S3Error::access_denied(format!("Invalid according to Policy: {why}"))
}

/// Form fields no condition needs to name.
fn exempt(name: &str) -> bool {
    matches!(name, "policy" | "x-amz-signature" | "file") || name.starts_with("x-ignore-")
}

/// `"$key"` → `key`.
fn field_name(raw: &serde_json::Value) -> Result<String, S3Error> {
    raw.as_str()
        .and_then(|s| s.strip_prefix('$'))
        .filter(|s| !s.is_empty())
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| {
            invalid(format!(
                "Invalid Condition: the field name {raw} must be a string starting with `$`"
            ))
        })
}

/// A condition's value: a string (numbers are taken as written).
fn text(raw: &serde_json::Value) -> Result<String, S3Error> {
    match raw {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(invalid(format!(
            "Invalid Condition: the value {other} must be a string"
        ))),
    }
}

fn bound(raw: &serde_json::Value) -> Result<u64, S3Error> {
    raw.as_u64()
        .or_else(|| raw.as_str().and_then(|s| s.trim().parse().ok()))
        .ok_or_else(|| {
            invalid(format!(
                "Invalid content-length-range: {raw} is not a non-negative integer"
            ))
        })
}

impl PostPolicy {
    /// Decodes and parses the `policy` field (base64 of a JSON document).
    pub fn parse(b64: &str) -> Result<PostPolicy, S3Error> {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| invalid("the policy field is not valid base64"))?;
        let doc: serde_json::Value = serde_json::from_slice(&raw)
            .map_err(|e| invalid(format!("the policy is not valid JSON: {e}")))?;
        let obj = doc
            .as_object()
            .ok_or_else(|| invalid("the policy must be a JSON object"))?;
        let expiration = obj
            .get("expiration")
            .ok_or_else(|| invalid("Policy missing expiration."))?;
        let expiration = expiration
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| {
                invalid(format!(
                    "Invalid 'expiration' value: {expiration} (an ISO 8601 time such as 2030-12-01T12:00:00.000Z)"
                ))
            })?;
        let list = obj
            .get("conditions")
            .ok_or_else(|| invalid("Policy missing conditions."))?
            .as_array()
            .ok_or_else(|| invalid("the policy's conditions must be a JSON array"))?;
        let mut conditions = Vec::with_capacity(list.len());
        for c in list {
            match c {
                serde_json::Value::Object(pairs) => {
                    if pairs.is_empty() {
                        return Err(invalid("Invalid Condition: an empty object"));
                    }
                    for (k, v) in pairs {
                        conditions.push(Condition::Eq {
                            field: k.to_ascii_lowercase(),
                            value: text(v)?,
                        });
                    }
                }
                serde_json::Value::Array(items) => {
                    let op = items
                        .first()
                        .and_then(|o| o.as_str())
                        .map(str::to_ascii_lowercase)
                        .unwrap_or_default();
                    let [_, a, b] = items.as_slice() else {
                        return Err(invalid(format!(
                            "Invalid Condition: {c} must have three elements"
                        )));
                    };
                    conditions.push(match op.as_str() {
                        "eq" => Condition::Eq {
                            field: field_name(a)?,
                            value: text(b)?,
                        },
                        "starts-with" => Condition::StartsWith {
                            field: field_name(a)?,
                            prefix: text(b)?,
                        },
                        "content-length-range" => {
                            let (min, max) = (bound(a)?, bound(b)?);
                            if min > max {
                                return Err(invalid(format!(
                                    "Invalid content-length-range: the minimum {min} is above the maximum {max}"
                                )));
                            }
                            Condition::LengthRange { min, max }
                        }
                        _ => {
                            return Err(invalid(format!(
                                "Invalid Condition: unknown operation in {c} (eq, starts-with, content-length-range)"
                            )))
                        }
                    });
                }
                other => {
                    return Err(invalid(format!(
                        "Invalid Condition: {other} must be an object or an array"
                    )))
                }
            }
        }
        Ok(PostPolicy {
            expiration,
            conditions,
        })
    }

    /// Checks the form against the policy at `now`: not expired, every condition met, every
    /// field named by a condition. `fields` are (lowercase name, value). Returns the
    /// `content-length-range`, if any (the file's size is known only as it streams).
    pub fn check(
        &self,
        now: DateTime<Utc>,
        bucket: &str,
        fields: &[(String, String)],
    ) -> Result<Option<(u64, u64)>, S3Error> {
        if self.expiration <= now {
            return Err(denied("Policy expired."));
        }
        let value_of = |name: &str| -> Option<&str> {
            if name == "bucket" {
                return Some(bucket);
            }
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let mut range = None;
        for c in &self.conditions {
            let ok = match c {
                Condition::Eq { field, value } => value_of(field) == Some(value.as_str()),
                Condition::StartsWith { field, prefix } => match value_of(field) {
                    // "Content-Type ... a comma-separated list": each value must match.
                    Some(v) if field == "content-type" => v
                        .split(',')
                        .all(|part| part.trim().starts_with(prefix.as_str())),
                    Some(v) => v.starts_with(prefix.as_str()),
                    None => false,
                },
                // Several ranges must all hold: the file's size must lie in their intersection
                // (review 11: only the last one was enforced). An empty intersection refuses
                // every file, as no size can meet both.
                Condition::LengthRange { min, max } => {
                    range = Some(match range {
                        None => (*min, *max),
                        Some((lo, hi)) => ((*min).max(lo), (*max).min(hi)),
                    });
                    true
                }
            };
            if !ok {
                return Err(denied(format!("Policy Condition failed: {}", c.describe())));
            }
        }
        let extra: Vec<&str> = fields
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| !exempt(n))
            .filter(|n| {
                !self.conditions.iter().any(|c| match c {
                    Condition::Eq { field, .. } | Condition::StartsWith { field, .. } => field == n,
                    Condition::LengthRange { .. } => false,
                })
            })
            .collect();
        if !extra.is_empty() {
            return Err(denied(format!("Extra input fields: {}", extra.join(", "))));
        }
        Ok(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn policy(json: &str) -> Result<PostPolicy, S3Error> {
        PostPolicy::parse(&base64::engine::general_purpose::STANDARD.encode(json))
    }

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    /// The example policy of "Creating a POST Policy" (sigv4-HTTPPOSTConstructPolicy.html),
    /// with its expiration moved after `now`.
    const EXAMPLE: &str = r#"{ "expiration": "2030-12-01T12:00:00.000Z",
      "conditions": [
        {"acl": "public-read" },
        {"bucket": "johnsmith" },
        ["starts-with", "$key", "user/eric/"],
        ["content-length-range", 1048576, 10485760]
      ]
    }"#;

    /// Two ranges both bound the file (review 11: only the last was enforced).
    #[test]
    fn several_length_ranges_all_hold() {
        let p = policy(
            r#"{"expiration": "2030-12-01T12:00:00.000Z", "conditions": [
                ["content-length-range", 0, 10], ["content-length-range", 5, 1000]]}"#,
        )
        .unwrap();
        assert_eq!(p.check(now(), "b", &[]).unwrap(), Some((5, 10)));
    }

    #[test]
    fn the_documentation_example_allows_its_form_and_returns_the_size_range() {
        let p = policy(EXAMPLE).unwrap();
        let f = fields(&[("acl", "public-read"), ("key", "user/eric/photo.jpg")]);
        assert_eq!(
            p.check(now(), "johnsmith", &f).unwrap(),
            Some((1_048_576, 10_485_760))
        );
    }

    /// The form of AWS's published example (sigv4-post-example.html, 2013 edition) meets its
    /// policy before the expiration, the `${filename}` key included.
    #[test]
    fn aws_published_example_form_meets_its_policy() {
        let p = policy(
            r#"{ "expiration": "2013-08-07T12:00:00.000Z",
  "conditions": [
    {"bucket": "examplebucket"},
    ["starts-with", "$key", "user/user1/"],
    {"acl": "public-read"},
    {"success_action_redirect": "http://examplebucket.s3.amazonaws.com/successful_upload.html"},
    ["starts-with", "$Content-Type", "image/"],
    {"x-amz-meta-uuid": "14365123651274"},
    ["starts-with", "$x-amz-meta-tag", ""],

    {"x-amz-credential": "AKIAIOSFODNN7EXAMPLE/20130806/us-east-1/s3/aws4_request"},
    {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
    {"x-amz-date": "20130806T000000Z" }
  ]
}"#,
        )
        .unwrap();
        let form = fields(&[
            ("key", "user/user1/${filename}"),
            ("acl", "public-read"),
            (
                "success_action_redirect",
                "http://examplebucket.s3.amazonaws.com/successful_upload.html",
            ),
            ("content-type", "image/jpeg"),
            ("x-amz-meta-uuid", "14365123651274"),
            ("x-amz-meta-tag", ""),
            (
                "x-amz-credential",
                "AKIAIOSFODNN7EXAMPLE/20130806/us-east-1/s3/aws4_request",
            ),
            ("x-amz-algorithm", "AWS4-HMAC-SHA256"),
            ("x-amz-date", "20130806T000000Z"),
            ("policy", "..."),
            ("x-amz-signature", "..."),
        ]);
        let before = DateTime::parse_from_rfc3339("2013-08-07T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(p.check(before, "examplebucket", &form).unwrap(), None);
        let after = DateTime::parse_from_rfc3339("2013-08-07T12:00:01Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(p.check(after, "examplebucket", &form).is_err());
    }

    #[test]
    fn a_failed_condition_is_named_as_aws_names_it() {
        let p = policy(EXAMPLE).unwrap();
        let wrong_key = fields(&[("acl", "public-read"), ("key", "user/bob/x")]);
        let e = p.check(now(), "johnsmith", &wrong_key).unwrap_err();
        assert_eq!(e.code(), "AccessDenied");
        assert_eq!(
            e.message(),
            "Invalid according to Policy: Policy Condition failed: [\"starts-with\", \"$key\", \"user/eric/\"]"
        );
        let f = fields(&[("acl", "public-read"), ("key", "user/eric/x")]);
        assert!(p.check(now(), "other", &f).is_err(), "bucket");
        // Values are case-sensitive.
        let f = fields(&[("acl", "Public-Read"), ("key", "user/eric/x")]);
        assert!(p.check(now(), "johnsmith", &f).is_err());
        // A condition on a field the form lacks fails.
        let f = fields(&[("key", "user/eric/x")]);
        assert!(p.check(now(), "johnsmith", &f).is_err());
    }

    #[test]
    fn every_field_but_the_exempt_ones_must_be_covered() {
        let p = policy(EXAMPLE).unwrap();
        let f = fields(&[
            ("acl", "public-read"),
            ("key", "user/eric/x"),
            ("policy", "..."),
            ("x-amz-signature", "..."),
            ("x-ignore-tracking", "1"),
        ]);
        assert!(p.check(now(), "johnsmith", &f).is_ok());
        let f = fields(&[
            ("acl", "public-read"),
            ("key", "user/eric/x"),
            ("x-amz-meta-color", "red"),
        ]);
        let e = p.check(now(), "johnsmith", &f).unwrap_err();
        assert_eq!(
            e.message(),
            "Invalid according to Policy: Extra input fields: x-amz-meta-color"
        );
    }

    #[test]
    fn field_names_match_whatever_their_case_and_eq_has_two_spellings() {
        let p = policy(
            r#"{"expiration":"2030-12-01T12:00:00Z","conditions":[
            ["eq","$Content-Type","image/png"],{"X-Amz-Meta-A":"1"},["starts-with","$success_action_redirect",""]]}"#,
        )
        .unwrap();
        let f = fields(&[
            ("content-type", "image/png"),
            ("x-amz-meta-a", "1"),
            ("success_action_redirect", "http://x/"),
        ]);
        assert!(p.check(now(), "b", &f).is_ok());
    }

    #[test]
    fn content_type_lists_must_all_match_a_prefix() {
        let p = policy(
            r#"{"expiration":"2030-12-01T12:00:00Z","conditions":[["starts-with","$Content-Type","image/"]]}"#,
        )
        .unwrap();
        assert!(p
            .check(
                now(),
                "b",
                &fields(&[("content-type", "image/jpeg, image/png")])
            )
            .is_ok());
        assert!(p
            .check(
                now(),
                "b",
                &fields(&[("content-type", "image/jpeg, text/plain")])
            )
            .is_err());
    }

    #[test]
    fn an_expired_policy_is_refused() {
        let p = policy(r#"{"expiration":"2029-12-31T23:59:59Z","conditions":[]}"#).unwrap();
        let e = p.check(now(), "b", &[]).unwrap_err();
        assert_eq!(e.code(), "AccessDenied");
        assert_eq!(e.message(), "Invalid according to Policy: Policy expired.");
    }

    #[test]
    fn malformed_policies_are_invalid_policy_documents() {
        for bad in [
            "not json",
            r#"{"conditions":[]}"#,
            r#"{"expiration":"tomorrow","conditions":[]}"#,
            r#"{"expiration":"2030-12-01T12:00:00Z"}"#,
            r#"{"expiration":"2030-12-01T12:00:00Z","conditions":[["ends-with","$key","x"]]}"#,
            r#"{"expiration":"2030-12-01T12:00:00Z","conditions":[["eq","key","x"]]}"#,
            r#"{"expiration":"2030-12-01T12:00:00Z","conditions":[["content-length-range",10,1]]}"#,
            r#"{"expiration":"2030-12-01T12:00:00Z","conditions":[["content-length-range",-1,1]]}"#,
            r#"{"expiration":"2030-12-01T12:00:00Z","conditions":[["eq","$key"]]}"#,
            r#"{"expiration":"2030-12-01T12:00:00Z","conditions":[7]}"#,
        ] {
            let e = policy(bad).unwrap_err();
            assert_eq!(e.code(), "InvalidPolicyDocument", "{bad}");
        }
        assert_eq!(
            PostPolicy::parse("%%%").unwrap_err().code(),
            "InvalidPolicyDocument"
        );
    }
}
