//! Browser-form POST uploads signed with SigV4: the signature is the HMAC-SHA256, under the
//! credential's signing key, of the base64-encoded POST policy itself
//! (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-authentication-HTTPPOST.html: "For
//! signature calculation the POST policy is the string to sign").
//!
//! [`parse_post`] turns the form's `x-amz-*` fields into a [`SignedRequest`] of kind
//! [`AuthKind::PostPolicy`]; [`crate::verify`] then checks it with the same key lookup as any
//! other request. The policy's own `expiration` bounds the form's life (the caller checks it once
//! the signature is verified), within the seven days a SigV4 signature lives; a form dated more
//! than the clock skew in the future is not valid yet.

use crate::canonical::{is_scope_date, parse_amz_date, SigningSettings, ALGORITHM};
use crate::err::AuthError;
use crate::parse::{AuthKind, PayloadHash, SignedRequest};

/// The authentication fields of a POST form, as sent (names matched case-insensitively by the
/// caller).
#[derive(Debug, Clone, Copy, Default)]
pub struct PostAuthFields<'a> {
    /// `policy`: the base64-encoded POST policy, which is the string to sign.
    pub policy: &'a str,
    /// `x-amz-algorithm`.
    pub algorithm: &'a str,
    /// `x-amz-credential`: `AKID/YYYYMMDD/REGION/s3/aws4_request`.
    pub credential: &'a str,
    /// `x-amz-date`: `YYYYMMDDTHHMMSSZ`.
    pub date: &'a str,
    /// `x-amz-signature`: 64 hex digits.
    pub signature: &'a str,
    /// `x-amz-security-token`, for temporary credentials.
    pub security_token: Option<&'a str>,
}

/// Parses the SigV4 fields of a POST form.
///
/// # Errors
///
/// [`AuthError::UnsupportedAlgorithm`] for an algorithm other than `AWS4-HMAC-SHA256`,
/// [`AuthError::PostFormMalformed`] for a malformed credential, date or signature, or a
/// credential date that is not the date of `x-amz-date`.
pub fn parse_post(fields: &PostAuthFields<'_>) -> Result<SignedRequest, AuthError> {
    if fields.algorithm != ALGORITHM {
        return Err(AuthError::UnsupportedAlgorithm(
            fields.algorithm.chars().take(64).collect(),
        ));
    }
    let malformed = |m: String| AuthError::PostFormMalformed(m);
    let (access_key_id, scope) = crate::parse::parse_credential(fields.credential)
        .map_err(|m| malformed(format!("x-amz-credential: {m}")))?;
    let signed_at = parse_amz_date(fields.date).ok_or_else(|| {
        malformed("x-amz-date must be a date of the form YYYYMMDDTHHMMSSZ".to_owned())
    })?;
    if fields.date.get(..8) != Some(scope.date.as_str()) || !is_scope_date(&scope.date) {
        return Err(malformed(format!(
            "the date of x-amz-credential `{}` is not the date of x-amz-date `{}`",
            scope.date,
            fields.date.chars().take(16).collect::<String>()
        )));
    }
    let signature = crate::parse::parse_signature(fields.signature)
        .map_err(|_| malformed("x-amz-signature must be 64 hexadecimal digits".to_owned()))?;
    let settings = SigningSettings::for_service(&scope.service);
    Ok(SignedRequest {
        kind: AuthKind::PostPolicy,
        access_key_id,
        scope,
        signed_headers: Vec::new(),
        signature,
        amz_date: fields.date.to_owned(),
        signed_at,
        expires: None,
        session_token: fields.security_token.map(str::to_owned),
        payload: PayloadHash::Unsigned,
        payload_line: fields.policy.to_owned(),
        payload_from_body: false,
        settings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SecretKey;

    // Computed independently (Python's hmac/hashlib) for the documentation's example secret:
    // HMAC-SHA256 chained over 20151229 / us-east-1 / s3 / aws4_request, then over the policy.
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const POLICY: &str = "eyJleHBpcmF0aW9uIjoiMjAxNS0xMi0zMFQxMjowMDowMC4wMDBaIiwiY29uZGl0aW9ucyI6W3siYnVja2V0Ijoic2lndjRleGFtcGxlYnVja2V0In1dfQ==";

    fn fields(signature: &str) -> PostAuthFields<'_> {
        PostAuthFields {
            policy: POLICY,
            algorithm: "AWS4-HMAC-SHA256",
            credential: "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request",
            date: "20151229T000000Z",
            signature,
            security_token: None,
        }
    }

    fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&chrono::Utc)
    }

    fn verify_at(
        signature: &str,
        policy: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), AuthError> {
        let mut f = fields(signature);
        f.policy = policy;
        let req = parse_post(&f)?;
        crate::verify(
            req,
            &http::Method::POST,
            &http::Uri::from_static("/"),
            &http::HeaderMap::new(),
            &SecretKey::new(SECRET),
            now,
        )
        .map(|_| ())
    }

    fn verify(signature: &str, policy: &str) -> Result<(), AuthError> {
        verify_at(signature, policy, at("2015-12-29T12:00:00Z"))
    }

    #[test]
    fn a_policy_signed_with_the_credential_verifies() {
        let sig = "d7c5af4545b158e68eefbcaa6dc0c66be7ebf1d610d744d25acf9b93cac269bb";
        assert_eq!(verify(sig, POLICY), Ok(()));
        // A policy changed by one character no longer matches its signature.
        let tampered = POLICY.replacen("eyJ", "eyK", 1);
        assert_eq!(
            verify(sig, &tampered),
            Err(AuthError::SignatureDoesNotMatch)
        );
    }

    /// AWS's published example (sigv4-post-example.html, the 2013 edition: bucket
    /// `examplebucket`, credential date 20130806): its policy, verbatim, and its signature.
    #[test]
    fn aws_published_example() {
        const AWS_POLICY: &str = "eyAiZXhwaXJhdGlvbiI6ICIyMDEzLTA4LTA3VDEyOjAwOjAwLjAwMFoiLA0KI\
    CAiY29uZGl0aW9ucyI6IFsNCiAgICB7ImJ1Y2tldCI6ICJleGFtcGxlYnVja2V0In0sD\
    QogICAgWyJzdGFydHMtd2l0aCIsICIka2V5IiwgInVzZXIvdXNlcjEvIl0sDQogICAge\
    yJhY2wiOiAicHVibGljLXJlYWQifSwNCiAgICB7InN1Y2Nlc3NfYWN0aW9uX3JlZGlyZ\
    WN0IjogImh0dHA6Ly9leGFtcGxlYnVja2V0LnMzLmFtYXpvbmF3cy5jb20vc3VjY2Vzc\
    2Z1bF91cGxvYWQuaHRtbCJ9LA0KICAgIFsic3RhcnRzLXdpdGgiLCAiJENvbnRlbnQtV\
    HlwZSIsICJpbWFnZS8iXSwNCiAgICB7IngtYW16LW1ldGEtdXVpZCI6ICIxNDM2NTEyM\
    zY1MTI3NCJ9LA0KICAgIFsic3RhcnRzLXdpdGgiLCAiJHgtYW16LW1ldGEtdGFnIiwgI\
    iJdLA0KDQogICAgeyJ4LWFtei1jcmVkZW50aWFsIjogIkFLSUFJT1NGT0ROTjdFWEFNU\
    ExFLzIwMTMwODA2L3VzLWVhc3QtMS9zMy9hd3M0X3JlcXVlc3QifSwNCiAgICB7IngtY\
    W16LWFsZ29yaXRobSI6ICJBV1M0LUhNQUMtU0hBMjU2In0sDQogICAgeyJ4LWFtei1kY\
    XRlIjogIjIwMTMwODA2VDAwMDAwMFoiIH0NCiAgXQ0KfQ==";
        let req = parse_post(&PostAuthFields {
            policy: AWS_POLICY,
            algorithm: "AWS4-HMAC-SHA256",
            credential: "AKIAIOSFODNN7EXAMPLE/20130806/us-east-1/s3/aws4_request",
            date: "20130806T000000Z",
            signature: "21496b44de44ccb73d545f1a995c68214c9cb0d41c45a17a5daeec0b1a6db047",
            security_token: None,
        })
        .unwrap();
        assert_eq!(req.access_key_id(), "AKIAIOSFODNN7EXAMPLE");
        crate::verify(
            req,
            &http::Method::POST,
            &http::Uri::from_static("/"),
            &http::HeaderMap::new(),
            &SecretKey::new(SECRET),
            at("2013-08-06T12:00:00Z"),
        )
        .unwrap();
    }

    /// A signature lives seven days ("the signing key is valid for up to seven days, so
    /// signatures are also valid for up to 7 days",
    /// https://docs.aws.amazon.com/AmazonS3/latest/API/bucket-policy-s3-sigv4-conditions.html),
    /// and a form dated beyond the clock skew in the future is not valid yet, whatever its
    /// policy's expiration says (review 11: forms lived for years, future dates made
    /// `s3:signatureAge` negative).
    #[test]
    fn a_form_lives_at_most_seven_days_and_never_starts_in_the_future() {
        let sig = "d7c5af4545b158e68eefbcaa6dc0c66be7ebf1d610d744d25acf9b93cac269bb";
        // Signed at 2015-12-29T00:00:00Z.
        for (now, want) in [
            ("2015-12-28T23:50:00Z", Ok(())),
            ("2015-12-28T23:40:00Z", Err(AuthError::NotYetValid)),
            ("2016-01-04T23:59:59Z", Ok(())),
            ("2016-01-05T00:00:01Z", Err(AuthError::Expired)),
        ] {
            assert_eq!(verify_at(sig, POLICY, at(now)), want, "{now}");
        }
    }

    #[test]
    fn malformed_fields_name_the_field() {
        let mut f = fields("00");
        assert!(
            matches!(parse_post(&f), Err(AuthError::PostFormMalformed(m)) if m.contains("x-amz-signature"))
        );
        f.signature = "";
        f.algorithm = "AWS4-ECDSA-P256-SHA256";
        assert!(matches!(
            parse_post(&f),
            Err(AuthError::UnsupportedAlgorithm(_))
        ));
        let zeros = "0".repeat(64);
        let mut f = fields(&zeros);
        f.date = "20151230T000000Z";
        assert!(
            matches!(parse_post(&f), Err(AuthError::PostFormMalformed(m)) if m.contains("x-amz-date"))
        );
        f.credential = "AKID/2015/us-east-1/s3/aws4_request";
        assert!(
            matches!(parse_post(&f), Err(AuthError::PostFormMalformed(m)) if m.contains("x-amz-credential"))
        );
    }
}
