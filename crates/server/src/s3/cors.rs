//! Cross-origin resource sharing: Put/Get/DeleteBucketCors, the preflight `OPTIONS` request, and
//! the CORS headers of requests that carry `Origin`
//! (https://docs.aws.amazon.com/AmazonS3/latest/userguide/cors.html,
//! https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketCors.html,
//! https://docs.aws.amazon.com/AmazonS3/latest/API/RESTOPTIONSobject.html).
//!
//! The configuration lives with the bucket's other settings in the state database (so every node
//! sees it) and is read from the snapshot: a preflight never touches the database or the store.
//! A rule applies when the request's `Origin` matches one of its `AllowedOrigin`s (at most one
//! `*` each), its method is one of the `AllowedMethod`s and every header named in
//! `Access-Control-Request-Headers` matches an `AllowedHeader` (`*` wildcards, any case); the
//! first such rule answers.
//!
//! A preflight is not signed by browsers, so it is authorized unconditionally (it reveals only
//! what the bucket's owner chose to publish in the configuration) and audited like any request.
//! A bucket without a configuration and a bucket that does not exist get the same refusal, so
//! a preflight tells nobody which buckets exist.

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

use super::{empty_response, xml_ok, Ctx};
use crate::body::{Body, BodyReader};
use crate::config::MAX_XML_BODY_BYTES;
use crate::error::S3Error;
use crate::xml::{self, XmlWriter};

/// AWS's limit on the rules of one configuration ("You can add up to 100 rules").
pub const MAX_RULES: usize = 100;

/// The methods a rule may allow (API_CORSRule.html, "AllowedMethod").
const METHODS: &[&str] = &["GET", "PUT", "POST", "DELETE", "HEAD"];

/// One `CORSRule`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CorsRule {
    /// `ID`.
    pub id: Option<String>,
    /// `AllowedOrigin`s (each with at most one `*`).
    pub origins: Vec<String>,
    /// `AllowedMethod`s.
    pub methods: Vec<String>,
    /// `AllowedHeader`s (`*` wildcards, compared in any case).
    pub headers: Vec<String>,
    /// `ExposeHeader`s.
    pub expose: Vec<String>,
    /// `MaxAgeSeconds`.
    pub max_age: Option<u64>,
}

/// A bucket's CORS configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CorsConfiguration {
    /// The rules, in order.
    pub rules: Vec<CorsRule>,
}

fn invalid(message: String) -> S3Error {
    S3Error::invalid_request(message)
}

/// `*` matches any run of characters; the rest literally (`ci`: in any ASCII case).
fn wildcard(pattern: &str, value: &str, ci: bool) -> bool {
    let (p, v) = if ci {
        (pattern.to_ascii_lowercase(), value.to_ascii_lowercase())
    } else {
        (pattern.to_owned(), value.to_owned())
    };
    let parts: Vec<&str> = p.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return p == v;
    };
    if parts.len() == 1 {
        return p == v;
    }
    let Some(mut rest) = v.strip_prefix(first) else {
        return false;
    };
    for m in middle {
        match rest.find(m) {
            Some(i) => rest = rest.get(i + m.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Whether `origin` is what a browser sends in `Origin`: `scheme://host[:port]` (RFC 6454
/// serialization), or `null`. Anything else (a path, a query, a fragment, user information, a
/// port that is not digits) is no browser's, and is matched by no rule, so a wildcard such as
/// `https://*.example.com` cannot be met by `https://evil.com/.example.com` (review 11).
fn is_serialized_origin(origin: &str) -> bool {
    if origin == "null" {
        return true;
    }
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    let scheme_ok = scheme.bytes().enumerate().all(|(i, b)| {
        b.is_ascii_alphabetic() || (i > 0 && matches!(b, b'0'..=b'9' | b'+' | b'-' | b'.'))
    });
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, Some(p)),
        _ => (rest, None),
    };
    let host_ok = !host.is_empty()
        && !host.starts_with('.')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    !scheme.is_empty() && scheme_ok && host_ok && port_ok
}

impl CorsRule {
    fn matches_origin(&self, origin: &str) -> bool {
        is_serialized_origin(origin) && self.origins.iter().any(|o| wildcard(o, origin, false))
    }

    fn allows(&self, origin: &str, method: &str, headers: &[String]) -> bool {
        self.matches_origin(origin)
            && self.methods.iter().any(|m| m == method)
            && headers
                .iter()
                .all(|h| self.headers.iter().any(|a| wildcard(a, h, true)))
    }

    /// The `Access-Control-*` headers this rule answers with for `origin`.
    fn answer(&self, origin: &str, request_headers: &[String], out: &mut HeaderMap) {
        let any_origin = self.origins.iter().any(|o| o == "*");
        let mut set = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                out.insert(name, v);
            }
        };
        set(
            "access-control-allow-origin",
            if any_origin { "*" } else { origin },
        );
        if !any_origin {
            set("access-control-allow-credentials", "true");
        }
        set("access-control-allow-methods", &self.methods.join(", "));
        if !request_headers.is_empty() {
            set("access-control-allow-headers", &request_headers.join(", "));
        }
        if !self.expose.is_empty() {
            set("access-control-expose-headers", &self.expose.join(", "));
        }
        if let Some(age) = self.max_age {
            set("access-control-max-age", &age.to_string());
        }
    }
}

impl CorsConfiguration {
    /// Parses a `CORSConfiguration` document: `MalformedXML` for its shape, `InvalidRequest`
    /// for a method S3 does not allow, an origin with more than one `*`, or more than
    /// [`MAX_RULES`] rules.
    pub fn parse(doc: &[u8]) -> Result<CorsConfiguration, S3Error> {
        let root = xml::parse(doc).map_err(S3Error::malformed_xml)?;
        if root.name != "CORSConfiguration" {
            return Err(S3Error::malformed_xml("expected CORSConfiguration"));
        }
        let mut rules = Vec::new();
        for r in root.children_named("CORSRule") {
            let texts = |name: &str| -> Vec<String> {
                r.children_named(name)
                    .map(|c| c.text.trim().to_owned())
                    .collect()
            };
            let rule = CorsRule {
                id: r.child_text("ID").map(|s| s.trim().to_owned()),
                origins: texts("AllowedOrigin"),
                methods: texts("AllowedMethod"),
                headers: texts("AllowedHeader"),
                expose: texts("ExposeHeader"),
                max_age: match r.child_text("MaxAgeSeconds") {
                    Some(s) => Some(s.trim().parse().map_err(|_| {
                        S3Error::malformed_xml("MaxAgeSeconds must be a non-negative integer")
                    })?),
                    None => None,
                },
            };
            if rule.origins.is_empty() || rule.methods.is_empty() {
                return Err(S3Error::malformed_xml(
                    "each CORSRule needs at least one AllowedOrigin and one AllowedMethod",
                ));
            }
            if let Some(m) = rule.methods.iter().find(|m| !METHODS.contains(&m.as_str())) {
                return Err(invalid(format!(
                    "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
                )));
            }
            if let Some(o) = rule.origins.iter().find(|o| o.matches('*').count() > 1) {
                return Err(invalid(format!(
                    "AllowedOrigin \"{o}\" can not have more than one wildcard."
                )));
            }
            if rule.id.as_ref().is_some_and(|id| id.chars().count() > 255) {
                return Err(invalid(
                    "The ID of a CORSRule is at most 255 characters.".into(),
                ));
            }
            rules.push(rule);
        }
        if rules.is_empty() {
            return Err(S3Error::malformed_xml(
                "a CORSConfiguration needs at least one CORSRule",
            ));
        }
        if rules.len() > MAX_RULES {
            return Err(invalid(format!(
                "The number of CORS rules should not exceed allowed limit of {MAX_RULES} rules."
            )));
        }
        Ok(CorsConfiguration { rules })
    }

    /// What is refused in a configuration being put, though a stored one that has it still
    /// loads: an `AllowedHeader` with more than one `*` ("Each AllowedHeader string in the rule
    /// can contain at most one * wildcard character",
    /// https://docs.aws.amazon.com/AmazonS3/latest/userguide/ManageCorsUsing.html).
    pub fn check_new(&self) -> Result<(), S3Error> {
        for rule in &self.rules {
            if let Some(h) = rule.headers.iter().find(|h| h.matches('*').count() > 1) {
                return Err(S3Error::new(
                    "InvalidRequest",
                    StatusCode::BAD_REQUEST,
                    format!("AllowedHeader \"{h}\" can not have more than one wildcard."),
                ));
            }
        }
        Ok(())
    }

    /// The configuration as GetBucketCors answers it (and as it is stored).
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        w.root("CORSConfiguration");
        for r in &self.rules {
            w.open("CORSRule");
            w.opt("ID", r.id.as_deref());
            for (name, list) in [
                ("AllowedHeader", &r.headers),
                ("AllowedMethod", &r.methods),
                ("AllowedOrigin", &r.origins),
                ("ExposeHeader", &r.expose),
            ] {
                for v in list {
                    w.elem(name, v);
                }
            }
            if let Some(age) = r.max_age {
                w.elem("MaxAgeSeconds", &age.to_string());
            }
            w.close("CORSRule");
        }
        w.close("CORSConfiguration");
        w.finish()
    }

    /// The first rule allowing this origin, method and request headers.
    pub fn find(&self, origin: &str, method: &str, headers: &[String]) -> Option<&CorsRule> {
        self.rules
            .iter()
            .find(|r| r.allows(origin, method, headers))
    }
}

/// `Access-Control-Request-Headers` as a list of names.
fn requested_headers(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("access-control-request-headers")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect()
}

fn no_configuration(bucket: &str) -> S3Error {
    S3Error::new(
        "NoSuchCORSConfiguration",
        StatusCode::NOT_FOUND,
        "The CORS configuration does not exist",
    )
    .with("BucketName", bucket.to_owned())
}

/// PutBucketCors.
pub(super) async fn put(ctx: &Ctx<'_>, mut body: BodyReader) -> Result<Response<Body>, S3Error> {
    let found = super::bucket::found(ctx).await?;
    let doc = body.read_limited(MAX_XML_BODY_BYTES).await?;
    let config = CorsConfiguration::parse(&doc)?;
    config.check_new()?;
    let bucket = ctx.bucket.clone();
    super::bucket::write_setting(ctx, &found, move |s| {
        s.put_bucket_cors(&bucket, &config.to_xml())
    })
    .await?;
    Ok(empty_response(StatusCode::OK))
}

/// GetBucketCors.
pub(super) async fn get(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    ctx.gw.storage.head_bucket(&ctx.bucket).await?;
    match ctx.gw.state.snapshot().bucket_cors.get(&ctx.bucket) {
        Some(config) => Ok(xml_ok(config.to_xml())),
        None => Err(no_configuration(&ctx.bucket)),
    }
}

/// DeleteBucketCors (idempotent, 204).
pub(super) async fn delete(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    ctx.gw.storage.head_bucket(&ctx.bucket).await?;
    let bucket = ctx.bucket.clone();
    ctx.state_call(move |s| s.delete_bucket_cors(&bucket))
        .await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

/// `403 AccessForbidden` for a preflight no rule allows (RESTOPTIONSobject.html).
fn forbidden(message: &str, method: &str) -> S3Error {
    S3Error::new("AccessForbidden", StatusCode::FORBIDDEN, message.to_owned())
        .with("Method", method.to_owned())
        .with("ResourceType", "OBJECT")
}

/// The preflight `OPTIONS` request: answered from the bucket's CORS configuration alone.
pub(super) async fn preflight(ctx: &Ctx<'_>) -> Result<Response<Body>, S3Error> {
    let bad = |m: String| S3Error::new("BadRequest", StatusCode::BAD_REQUEST, m);
    let origin = ctx
        .header("origin")?
        .ok_or_else(|| bad("Insufficient information. Origin request header needed.".into()))?;
    let method = ctx
        .header("access-control-request-method")?
        .ok_or_else(|| bad("Invalid Access-Control-Request-Method: null".into()))?;
    if method.parse::<Method>().is_err() || !METHODS.contains(&method) {
        return Err(bad(format!(
            "Invalid Access-Control-Request-Method: {method}"
        )));
    }
    let requested = requested_headers(ctx.headers);
    let snapshot = ctx.gw.state.snapshot();
    let Some(config) = snapshot.bucket_cors.get(&ctx.bucket) else {
        return Err(forbidden(
            "CORSResponse: CORS is not enabled for this bucket.",
            method,
        ));
    };
    let Some(rule) = config.find(origin, method, &requested) else {
        return Err(forbidden(
            "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
            method,
        ));
    };
    let mut r = empty_response(StatusCode::OK);
    rule.answer(origin, &requested, r.headers_mut());
    r.headers_mut().insert(
        http::header::VARY,
        HeaderValue::from_static(
            "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
        ),
    );
    Ok(r)
}

/// Adds the CORS headers to the response of a request that carries `Origin` (an actual
/// cross-origin request, allowed or refused: S3 adds them to error responses too), when the
/// bucket's configuration has a rule for the origin and the request's method. Preflights set
/// their own.
pub fn decorate(
    gw: &crate::Gateway,
    bucket: Option<&str>,
    method: &Method,
    request: &HeaderMap,
    response: &mut HeaderMap,
) {
    if *method == Method::OPTIONS {
        return;
    }
    let (Some(bucket), Some(origin)) = (
        bucket,
        request
            .get(http::header::ORIGIN)
            .and_then(|v| v.to_str().ok()),
    ) else {
        return;
    };
    let snapshot = gw.state.snapshot();
    let Some(config) = snapshot.bucket_cors.get(bucket) else {
        return;
    };
    response.insert(
        http::header::VARY,
        HeaderValue::from_static(
            "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
        ),
    );
    if let Some(rule) = config.find(origin, method.as_str(), &[]) {
        rule.answer(origin, &[], response);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"<CORSConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
      <CORSRule><ID>app</ID><AllowedOrigin>https://*.example.com</AllowedOrigin>
        <AllowedMethod>PUT</AllowedMethod><AllowedMethod>POST</AllowedMethod>
        <AllowedHeader>x-amz-*</AllowedHeader><AllowedHeader>Content-Type</AllowedHeader>
        <ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>3000</MaxAgeSeconds></CORSRule>
      <CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule>
    </CORSConfiguration>"#;

    #[test]
    fn the_first_rule_matching_origin_method_and_headers_answers() {
        let c = CorsConfiguration::parse(DOC.as_bytes()).unwrap();
        let h = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let rule = c
            .find(
                "https://app.example.com",
                "PUT",
                &h(&["x-amz-date", "content-type"]),
            )
            .unwrap();
        assert_eq!(rule.id.as_deref(), Some("app"));
        assert!(c
            .find("https://app.example.com", "PUT", &h(&["authorization"]))
            .is_none());
        assert!(c.find("http://app.example.com", "PUT", &[]).is_none());
        assert!(c.find("https://app.example.com", "DELETE", &[]).is_none());
        // The wildcard rule allows GET from anywhere, answering `*`.
        let any = c.find("https://evil.test", "GET", &[]).unwrap();
        let mut out = HeaderMap::new();
        any.answer("https://evil.test", &[], &mut out);
        assert_eq!(out["access-control-allow-origin"], "*");
        assert!(!out.contains_key("access-control-allow-credentials"));
        let mut out = HeaderMap::new();
        rule.answer("https://app.example.com", &h(&["x-amz-date"]), &mut out);
        assert_eq!(
            out["access-control-allow-origin"],
            "https://app.example.com"
        );
        assert_eq!(out["access-control-allow-methods"], "PUT, POST");
        assert_eq!(out["access-control-allow-headers"], "x-amz-date");
        assert_eq!(out["access-control-expose-headers"], "ETag");
        assert_eq!(out["access-control-max-age"], "3000");
    }

    #[test]
    fn a_stored_configuration_reads_back_the_same() {
        let c = CorsConfiguration::parse(DOC.as_bytes()).unwrap();
        assert_eq!(CorsConfiguration::parse(c.to_xml().as_bytes()).unwrap(), c);
    }

    #[test]
    fn bad_configurations_are_refused_as_aws_refuses_them() {
        let rule = |inner: &str| {
            format!("<CORSConfiguration><CORSRule>{inner}</CORSRule></CORSConfiguration>")
        };
        let two = CorsConfiguration::parse(
            rule("<AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod><AllowedHeader>x-*-*</AllowedHeader>").as_bytes(),
        )
        .unwrap();
        assert_eq!(two.check_new().unwrap_err().code(), "InvalidRequest");
        let e = CorsConfiguration::parse(
            rule("<AllowedOrigin>*</AllowedOrigin><AllowedMethod>PATCH</AllowedMethod>").as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.code(), "InvalidRequest");
        assert!(e.message().contains("Unsupported method is PATCH"));
        let e = CorsConfiguration::parse(
            rule(
                "<AllowedOrigin>https://*.*.com</AllowedOrigin><AllowedMethod>GET</AllowedMethod>",
            )
            .as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.code(), "InvalidRequest");
        for bad in [
            "<CORSConfiguration/>".to_owned(),
            rule("<AllowedMethod>GET</AllowedMethod>"),
            rule("<AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod><MaxAgeSeconds>x</MaxAgeSeconds>"),
            "<Other/>".to_owned(),
            "<CORSConfiguration>".to_owned(),
        ] {
            assert_eq!(
                CorsConfiguration::parse(bad.as_bytes()).unwrap_err().code(),
                "MalformedXML",
                "{bad}"
            );
        }
        let many = format!(
            "<CORSConfiguration>{}</CORSConfiguration>",
            "<CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule>"
                .repeat(MAX_RULES + 1)
        );
        assert_eq!(
            CorsConfiguration::parse(many.as_bytes())
                .unwrap_err()
                .code(),
            "InvalidRequest"
        );
    }

    #[test]
    fn only_origins_a_browser_sends_are_matched() {
        let rule = CorsRule {
            origins: vec!["https://*.example.com".to_owned()],
            ..CorsRule::default()
        };
        assert!(rule.matches_origin("https://app.example.com"));
        assert!(rule.matches_origin("https://a.b.example.com"));
        for evil in [
            "https://evil.com/.example.com",
            "https://evil.com?.example.com",
            "https://evil.com#.example.com",
            "https://x@evil.com/.example.com",
            "https://evil.com:443.example.com",
            "https://.example.com",
        ] {
            assert!(!rule.matches_origin(evil), "{evil}");
        }
        assert!(is_serialized_origin("http://localhost:8080"));
        assert!(is_serialized_origin("http://[::1]:3000"));
        assert!(is_serialized_origin("null"));
        assert!(!is_serialized_origin("localhost:8080"));
    }

    #[test]
    fn wildcards_match_any_run_of_characters() {
        assert!(wildcard("*", "", false));
        assert!(wildcard(
            "https://*.example.com",
            "https://a.b.example.com",
            false
        ));
        assert!(!wildcard(
            "https://*.example.com",
            "https://example.com",
            false
        ));
        assert!(wildcard("x-amz-*", "X-Amz-Date", true));
        assert!(!wildcard("x-amz-*", "X-Amz-Date", false));
        assert!(wildcard("a*b*c", "abc", false));
        assert!(!wildcard("a*b*c", "acb", false));
        assert!(!wildcard("ab*ba", "aba", false));
    }
}
