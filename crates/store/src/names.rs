//! Validation of bucket names, object keys and object tag sets.
//!
//! These checks run before anything touches the index or the disk. Keys are never used as
//! paths (see [`crate::layout`]), so key validation only enforces the S3 limits.

use crate::StoreError;

/// Longest accepted key, in bytes of UTF-8 (S3's limit).
pub const MAX_KEY_LEN: usize = 1024;
/// Most tags one object may carry.
pub const MAX_TAGS: usize = 10;
/// Longest tag key, in UTF-16 code units (S3 counts tags in UTF-16).
pub const MAX_TAG_KEY_LEN: usize = 128;
/// Longest tag value, in UTF-16 code units.
pub const MAX_TAG_VALUE_LEN: usize = 256;

fn bad_bucket(reason: &str) -> StoreError {
    StoreError::InvalidBucketName {
        reason: reason.to_owned(),
    }
}

/// Checks a general purpose bucket name against the AWS naming rules:
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html>.
///
/// # Errors
/// [`StoreError::InvalidBucketName`] naming the rule that is broken.
pub fn validate_bucket_name(name: &str) -> Result<(), StoreError> {
    if !(3..=63).contains(&name.len()) {
        return Err(bad_bucket("must be between 3 and 63 characters long"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return Err(bad_bucket(
            "may only contain lowercase letters, digits, periods and hyphens",
        ));
    }
    let alnum = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !alnum(name.bytes().next()) || !alnum(name.bytes().last()) {
        return Err(bad_bucket("must begin and end with a letter or digit"));
    }
    if name.contains("..") {
        return Err(bad_bucket("must not contain two adjacent periods"));
    }
    // Each period-separated label begins and ends with a letter or digit: "The bucket name
    // cannot ... use dashes adjacent to periods"
    // (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-s3-bucket-naming-requirements.html,
    // the DNS-compliant rules; S3 refuses `foo-.bar` with InvalidBucketName, as ceph/s3-tests'
    // `test_bucket_create_naming_dns_dash_dot` expects of it).
    if name.contains("-.") || name.contains(".-") {
        return Err(bad_bucket("must not have a hyphen next to a period"));
    }
    let groups: Vec<&str> = name.split('.').collect();
    if groups.len() == 4
        && groups
            .iter()
            .all(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad_bucket("must not be formatted as an IP address"));
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(prefix) {
            return Err(StoreError::InvalidBucketName {
                reason: format!("must not start with `{prefix}`"),
            });
        }
    }
    for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if name.ends_with(suffix) {
            return Err(StoreError::InvalidBucketName {
                reason: format!("must not end with `{suffix}`"),
            });
        }
    }
    Ok(())
}

/// Checks an object key: non-empty, at most [`MAX_KEY_LEN`] bytes of UTF-8, no U+0000.
///
/// Any other UTF-8 is a valid key, including `../x`, `//a`, `/lead`, `.` and `a/./b`:
/// keys are index entries, never paths.
///
/// # Errors
/// [`StoreError::KeyTooLong`] or [`StoreError::InvalidKey`].
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() {
        return Err(StoreError::InvalidKey {
            reason: "the key is empty".to_owned(),
        });
    }
    if key.len() > MAX_KEY_LEN {
        return Err(StoreError::KeyTooLong);
    }
    if key.contains('\0') {
        return Err(StoreError::InvalidKey {
            reason: "the key contains U+0000".to_owned(),
        });
    }
    Ok(())
}

fn tag_chars_ok(s: &str) -> bool {
    // https://docs.aws.amazon.com/AmazonS3/latest/userguide/tagging-managing.html and the
    // tag restrictions of the AWS tagging guide: letters, digits, spaces and `+ - = . _ : / @`.
    s.chars()
        .all(|c| c.is_alphanumeric() || c == ' ' || "+-=._:/@".contains(c))
}

/// Checks an object tag set: at most [`MAX_TAGS`] tags, unique non-empty keys of at most
/// [`MAX_TAG_KEY_LEN`] UTF-16 units, values of at most [`MAX_TAG_VALUE_LEN`], allowed
/// characters only, no `aws:` prefix.
///
/// # Errors
/// [`StoreError::InvalidTag`] naming the problem.
pub fn validate_tags(tags: &[(String, String)]) -> Result<(), StoreError> {
    let bad = |reason: String| Err(StoreError::InvalidTag { reason });
    if tags.len() > MAX_TAGS {
        return bad(format!("object tags cannot be greater than {MAX_TAGS}"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (k, v) in tags {
        if k.is_empty() {
            return bad("a tag key is empty".to_owned());
        }
        if k.encode_utf16().count() > MAX_TAG_KEY_LEN {
            return bad(format!("the tag key `{k}` is too long"));
        }
        if v.encode_utf16().count() > MAX_TAG_VALUE_LEN {
            return bad(format!("the value of tag `{k}` is too long"));
        }
        if !tag_chars_ok(k) || !tag_chars_ok(v) {
            return bad(format!(
                "the tag `{k}` contains a character that is not allowed"
            ));
        }
        if k.starts_with("aws:") {
            return bad(format!("the tag key `{k}` uses the reserved prefix `aws:`"));
        }
        if !seen.insert(k.as_str()) {
            return bad(format!("the tag key `{k}` is repeated"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_bucket_names() {
        for n in [
            "abc",
            "my-bucket",
            "my.bucket.name",
            "a1b2c3",
            "123",
            "1.2.3",
            "1.2.3.4.5",
            "docexamplebucket1",
            &"a".repeat(63),
        ] {
            assert!(validate_bucket_name(n).is_ok(), "{n}");
        }
    }

    #[test]
    fn bad_bucket_names() {
        for n in [
            "",
            "ab",
            &"a".repeat(64),
            "My-Bucket",
            "my_bucket",
            "-abc",
            "abc-",
            ".abc",
            "abc.",
            "a..b",
            "192.168.5.4",
            "xn--abc",
            "foo-.bar",
            "foo.-bar",
            "sthree-abc",
            "sthree-configurator",
            "amzn-s3-demo-bucket",
            "abc-s3alias",
            "abc--ol-s3",
            "abc.mrap",
            "abc--x-s3",
            "abc--table-s3",
            "a b",
            "ab/c",
            "abcé",
        ] {
            let e = validate_bucket_name(n).unwrap_err();
            assert!(matches!(e, StoreError::InvalidBucketName { .. }), "{n}");
            assert_eq!(e.s3_code(), "InvalidBucketName");
        }
    }

    #[test]
    fn keys() {
        for k in [
            "a",
            "../x",
            "//a",
            "/lead",
            ".",
            "..",
            "a/./b",
            "с пробелом и юникодом ☃",
            " ",
            &"k".repeat(1024),
            &"é".repeat(512),
        ] {
            assert!(validate_key(k).is_ok(), "{k}");
        }
        assert!(matches!(
            validate_key(""),
            Err(StoreError::InvalidKey { .. })
        ));
        assert!(matches!(
            validate_key("a\0b"),
            Err(StoreError::InvalidKey { .. })
        ));
        assert!(matches!(
            validate_key(&"k".repeat(1025)),
            Err(StoreError::KeyTooLong)
        ));
        // 513 two-byte characters: 1026 bytes although only 513 characters.
        assert!(matches!(
            validate_key(&"é".repeat(513)),
            Err(StoreError::KeyTooLong)
        ));
    }

    fn t(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn tags() {
        assert!(validate_tags(&[]).is_ok());
        assert!(validate_tags(&[t("project", "keyhole"), t("a b", "x+y=z@w:/._-")]).is_ok());
        assert!(validate_tags(&[t("k", "")]).is_ok());
        let many: Vec<_> = (0..11).map(|i| t(&format!("k{i}"), "v")).collect();
        assert!(validate_tags(many.get(..10).unwrap()).is_ok());
        for bad in [
            many,
            vec![t("", "v")],
            vec![t(&"k".repeat(129), "v")],
            vec![t("k", &"v".repeat(257))],
            vec![t("k", "v"), t("k", "w")],
            vec![t("aws:x", "v")],
            vec![t("k<", "v")],
            vec![t("k", "v\n")],
        ] {
            assert!(
                matches!(validate_tags(&bad), Err(StoreError::InvalidTag { .. })),
                "{bad:?}"
            );
        }
        assert!(validate_tags(&[t(&"k".repeat(128), &"v".repeat(256))]).is_ok());
    }
}
