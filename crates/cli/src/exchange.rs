//! Turns what the credential chain found ([`crate::aws_chain::Resolved`]) into keys to sign
//! with: static keys as they are; a web identity exchanged for a role session
//! (AssumeRoleWithWebIdentity, unsigned, at an STS endpoint); container credentials fetched from
//! their endpoint (the protocol of
//! https://docs.aws.amazon.com/sdkref/latest/guide/feature-container-credentials.html: `GET` with
//! the token as `Authorization`, a JSON answer with `AccessKeyId`, `SecretAccessKey`, `Token`).
//!
//! EC2 instance metadata credentials ([`instance_metadata`]) are fetched the way the SDKs' IMDS
//! provider does (https://docs.aws.amazon.com/sdkref/latest/guide/feature-imds-credentials.html
//! and https://docs.aws.amazon.com/sdkref/latest/guide/feature-ec2-instance-metadata.html).
//!
//! Each exchange runs on a thread of its own with its own runtime, so sync callers and callers
//! already inside a runtime can wait for it alike. Errors name the endpoint and the code, never
//! a token or a secret.

use std::path::Path;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method};
use keyhole_server::client::{read_body_limited, Client};
use keyhole_sigv4::{Credentials, SecretKey};

use crate::aws_chain::{Container, Resolved, WebIdentity};
use crate::job_cmd::{form_encode, xml_field};

/// The keys to sign with. `sts_endpoint` is where a web identity is exchanged.
pub fn credentials(
    resolved: &Resolved,
    sts_endpoint: &str,
    region: &str,
    ca_bundle: Option<&Path>,
) -> Result<Credentials, String> {
    if let Some(w) = &resolved.web_identity {
        return web_identity(sts_endpoint, region, ca_bundle, w);
    }
    if let Some(c) = &resolved.container {
        return container(c, ca_bundle);
    }
    Ok(Credentials {
        access_key_id: resolved.access_key_id.clone(),
        secret_key: SecretKey::new(resolved.secret_access_key.clone()),
        session_token: resolved.session_token.clone(),
    })
}

fn anonymous(endpoint: &str, region: &str, ca_bundle: Option<&Path>) -> Result<Client, String> {
    let none = Credentials {
        access_key_id: String::new(),
        secret_key: SecretKey::new(String::new()),
        session_token: None,
    };
    Client::with_ca_bundle(endpoint, none, region, ca_bundle).map_err(|e| e.to_string())
}

/// How long one exchange with STS or a container-credentials endpoint may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends one unsigned request on a thread of its own; returns the status and the body.
fn send(
    client: Client,
    method: Method,
    url: &str,
    headers: HeaderMap,
    body: String,
) -> Result<(http::StatusCode, String), String> {
    send_within(client, method, url, headers, body, EXCHANGE_TIMEOUT)
}

/// Largest answer read from STS or a credentials endpoint (real ones are a few KiB).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// [`send`], giving up after `timeout` (connecting, sending and reading the answer) and on an
/// answer larger than [`MAX_ANSWER_BYTES`]. A URL that does not parse is reported without
/// quoting it (it may hold what an endpoint answered).
fn send_within(
    client: Client,
    method: Method,
    url: &str,
    headers: HeaderMap,
    body: String,
    timeout: Duration,
) -> Result<(http::StatusCode, String), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| "the request's URL is not valid".to_owned())?;
    let exchange = async move {
        let answer = async {
            let resp = client
                .dispatch(method, uri, headers, keyhole_server::body::full(body))
                .await
                .map_err(|e| e.to_string())?;
            let status = resp.status();
            let body = read_body_limited(resp, MAX_ANSWER_BYTES)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((status, String::from_utf8_lossy(&body).into_owned()))
        };
        tokio::time::timeout(timeout, answer)
            .await
            .map_err(|_| format!("no answer within {} s", timeout.as_secs_f64()))?
    };
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?
                    .block_on(exchange)
            })
            .join()
            .map_err(|_| "the credentials exchange panicked".to_owned())?
    })
}

/// Exchanges a web identity token (read from its file now, so a rotated file is used) for a
/// role session: AssumeRoleWithWebIdentity at `endpoint`, unsigned as the SDKs send it.
pub fn web_identity(
    endpoint: &str,
    region: &str,
    ca_bundle: Option<&Path>,
    w: &WebIdentity,
) -> Result<Credentials, String> {
    let token = std::fs::read_to_string(&w.token_file).map_err(|e| {
        format!(
            "cannot read the web identity token file {} (AWS_WEB_IDENTITY_TOKEN_FILE / web_identity_token_file): {e}",
            w.token_file.display()
        )
    })?;
    let session = w
        .session_name
        .clone()
        .unwrap_or_else(|| format!("keyhole-{}", chrono::Utc::now().timestamp()));
    let form = format!(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName={}&WebIdentityToken={}",
        form_encode(&w.role_arn),
        form_encode(&session),
        form_encode(token.trim())
    );
    let endpoint = endpoint.trim_end_matches('/');
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
    );
    let (status, text) = send(
        anonymous(endpoint, region, ca_bundle)?,
        Method::POST,
        &format!("{endpoint}/"),
        headers,
        form,
    )
    .map_err(|e| format!("AssumeRoleWithWebIdentity: cannot reach {endpoint}: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "AssumeRoleWithWebIdentity for {} failed ({status}): {}: {}",
            w.role_arn,
            xml_field(&text, "Code").unwrap_or(""),
            xml_field(&text, "Message").unwrap_or("")
        ));
    }
    let field = |tag: &str| {
        xml_field(&text, tag)
            .map(str::to_owned)
            .ok_or_else(|| format!("AssumeRoleWithWebIdentity: the answer has no {tag}"))
    };
    Ok(Credentials {
        access_key_id: field("AccessKeyId")?,
        secret_key: SecretKey::new(field("SecretAccessKey")?),
        session_token: Some(field("SessionToken")?),
    })
}

/// Fetches container credentials.
pub fn container(c: &Container, ca_bundle: Option<&Path>) -> Result<Credentials, String> {
    let mut headers = HeaderMap::new();
    if let Some(t) = &c.token {
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(t)
                .map_err(|_| "the container authorization token is not a valid header value")?,
        );
    }
    let base = c
        .uri
        .split_once("://")
        .and_then(|(scheme, rest)| {
            rest.split('/')
                .next()
                .map(|host| format!("{scheme}://{host}"))
        })
        .ok_or_else(|| format!("`{}` is not a URL", c.uri))?;
    let (status, text) = send(
        anonymous(&base, "us-east-1", ca_bundle)?,
        Method::GET,
        &c.uri,
        headers,
        String::new(),
    )
    .map_err(|e| format!("container credentials: cannot reach {}: {e}", c.uri))?;
    if !status.is_success() {
        return Err(format!(
            "container credentials from {} failed ({status})",
            c.uri
        ));
    }
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|_| format!("container credentials from {}: not JSON", c.uri))?;
    let field = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .map(str::to_owned)
            .ok_or_else(|| format!("container credentials from {}: no {k}", c.uri))
    };
    Ok(Credentials {
        access_key_id: field("AccessKeyId")?,
        secret_key: SecretKey::new(field("SecretAccessKey")?),
        session_token: v.get("Token").and_then(|x| x.as_str()).map(str::to_owned),
    })
}

/// Where and how EC2 instance metadata credentials are fetched: the SDKs' settings, read from
/// the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imds {
    /// `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else `http://169.254.169.254`
    /// (`http://[fd00:ec2::254]` with `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6`).
    pub endpoint: String,
    /// `AWS_METADATA_SERVICE_TIMEOUT`, seconds per attempt (default 1).
    pub timeout: Duration,
    /// `AWS_METADATA_SERVICE_NUM_ATTEMPTS` (default 1).
    pub attempts: u32,
    /// `AWS_EC2_METADATA_V1_DISABLED=true`: no fallback to IMDSv1 when the token is refused.
    pub v1_disabled: bool,
}

/// How long an IMDSv2 token lives (the SDKs ask for six hours).
const IMDS_TOKEN_TTL: &str = "21600";
const IMDS_CREDENTIALS_PATH: &str = "/latest/meta-data/iam/security-credentials/";

impl Imds {
    /// The settings from `env`; `None` when `AWS_EC2_METADATA_DISABLED` is `true`. A setting
    /// that is not a positive number, or an endpoint that is not an http(s) URL, is an error
    /// naming the variable.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Imds>, String> {
        let flag = |name: &str| env(name).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if flag("AWS_EC2_METADATA_DISABLED") {
            return Ok(None);
        }
        let endpoint = match env("AWS_EC2_METADATA_SERVICE_ENDPOINT") {
            Some(e) => {
                if !(e.starts_with("http://") || e.starts_with("https://")) {
                    return Err(format!(
                        "AWS_EC2_METADATA_SERVICE_ENDPOINT `{e}` is not an http:// or https:// URL"
                    ));
                }
                e.trim_end_matches('/').to_owned()
            }
            None => match env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE") {
                None => "http://169.254.169.254".to_owned(),
                Some(m) if m.eq_ignore_ascii_case("ipv4") => "http://169.254.169.254".to_owned(),
                Some(m) if m.eq_ignore_ascii_case("ipv6") => "http://[fd00:ec2::254]".to_owned(),
                Some(m) => {
                    return Err(format!(
                        "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE `{m}` is neither IPv4 nor IPv6"
                    ))
                }
            },
        };
        let number = |name: &str| -> Result<Option<u32>, String> {
            match env(name) {
                None => Ok(None),
                Some(v) => match v.trim().parse::<u32>() {
                    Ok(n) if n >= 1 => Ok(Some(n)),
                    _ => Err(format!("{name} `{v}` is not a whole number of at least 1")),
                },
            }
        };
        let timeout = number("AWS_METADATA_SERVICE_TIMEOUT")?.unwrap_or(1);
        Ok(Some(Imds {
            endpoint,
            timeout: Duration::from_secs(u64::from(timeout)),
            attempts: number("AWS_METADATA_SERVICE_NUM_ATTEMPTS")?.unwrap_or(1),
            v1_disabled: flag("AWS_EC2_METADATA_V1_DISABLED"),
        }))
    }

    /// One request to the metadata service, tried up to `attempts` times when it cannot be
    /// reached or answers 5xx.
    fn get(
        &self,
        method: Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<(http::StatusCode, String), String> {
        let mut last = String::new();
        for _ in 0..self.attempts {
            let client = anonymous(&self.endpoint, "us-east-1", None)?;
            match send_within(
                client,
                method.clone(),
                &format!("{}{path}", self.endpoint),
                headers.clone(),
                String::new(),
                self.timeout,
            ) {
                Ok((status, _)) if status.is_server_error() => last = format!("{status}"),
                Ok(answer) => return Ok(answer),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

/// Fetches the credentials of the instance's role from the EC2 instance metadata service:
/// an IMDSv2 session token (`PUT /latest/api/token`), falling back to IMDSv1 only when the token
/// is refused with 403, 404 or 405 and `AWS_EC2_METADATA_V1_DISABLED` is not set; then the
/// role's name and its credentials under `/latest/meta-data/iam/security-credentials/`.
pub fn instance_metadata(imds: &Imds) -> Result<Credentials, String> {
    let at = &imds.endpoint;
    let mut put = HeaderMap::new();
    put.insert(
        "x-aws-ec2-metadata-token-ttl-seconds",
        HeaderValue::from_static(IMDS_TOKEN_TTL),
    );
    let (status, token) = imds
        .get(Method::PUT, "/latest/api/token", &put)
        .map_err(|e| format!("cannot reach the EC2 instance metadata service at {at}: {e}"))?;
    let mut headers = HeaderMap::new();
    if status.is_success() {
        headers.insert(
            "x-aws-ec2-metadata-token",
            HeaderValue::from_str(token.trim()).map_err(|_| {
                format!("the instance metadata token from {at} is not a header value")
            })?,
        );
    } else if matches!(status.as_u16(), 403..=405) {
        if imds.v1_disabled {
            return Err(format!(
                "the EC2 instance metadata service at {at} refused a session token ({status}) and AWS_EC2_METADATA_V1_DISABLED forbids IMDSv1"
            ));
        }
    } else {
        return Err(format!(
            "the EC2 instance metadata service at {at} answered {status} to a token request"
        ));
    }
    let (status, roles) = imds
        .get(Method::GET, IMDS_CREDENTIALS_PATH, &headers)
        .map_err(|e| format!("cannot reach the EC2 instance metadata service at {at}: {e}"))?;
    if status == http::StatusCode::NOT_FOUND {
        return Err(format!(
            "the EC2 instance metadata service at {at} has no role for this instance (attach an instance profile)"
        ));
    }
    if !status.is_success() {
        return Err(format!(
            "the EC2 instance metadata service at {at} answered {status} for the instance's role"
        ));
    }
    let role = roles
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or_else(|| format!("the EC2 instance metadata service at {at} names no role"))?;
    // IAM's role-name grammar: 1 to 64 of letters, digits and `+=,.@_-`
    // (https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html).
    let valid = (1..=64).contains(&role.len())
        && role
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
        && role != "."
        && role != "..";
    if !valid {
        return Err(format!(
            "the EC2 instance metadata service at {at} names a role that is not an IAM role name"
        ));
    }
    let (status, text) = imds
        .get(
            Method::GET,
            &format!("{IMDS_CREDENTIALS_PATH}{role}"),
            &headers,
        )
        .map_err(|e| format!("cannot reach the EC2 instance metadata service at {at}: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "the EC2 instance metadata service at {at} answered {status} for the credentials of role {role}"
        ));
    }
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|_| format!("the credentials of role {role} from {at} are not JSON"))?;
    if let Some(code) = v.get("Code").and_then(|c| c.as_str()) {
        if code != "Success" {
            // The code is the service's own text: shown only when it looks like a code.
            let shown = if code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric()) {
                code
            } else {
                "(not a code)"
            };
            return Err(format!(
                "the EC2 instance metadata service at {at} has no credentials for role {role}: {shown}"
            ));
        }
    }
    let field = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| format!("the credentials of role {role} from {at} have no {k}"))
    };
    // An access key id is `[A-Z0-9]{16,128}`; anything else cannot sign a request.
    let access_key_id = field("AccessKeyId")?;
    if !(16..=128).contains(&access_key_id.len())
        || !access_key_id.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(format!(
            "the credentials of role {role} from {at} have an AccessKeyId that is not an access key id"
        ));
    }
    Ok(Credentials {
        access_key_id,
        secret_key: SecretKey::new(field("SecretAccessKey")?),
        session_token: Some(field("Token")?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    /// https://docs.aws.amazon.com/sdkref/latest/guide/feature-imds-credentials.html and
    /// https://docs.aws.amazon.com/sdkref/latest/guide/feature-ec2-instance-metadata.html:
    /// defaults, the IPv6 mode, an explicit endpoint, timeouts and attempts, and the switch.
    #[test]
    fn imds_settings_follow_the_sdk_reference() {
        let d = Imds::from_env(&env(&[])).unwrap().unwrap();
        assert_eq!(d.endpoint, "http://169.254.169.254");
        assert_eq!(
            (d.timeout, d.attempts, d.v1_disabled),
            (Duration::from_secs(1), 1, false)
        );
        let v6 = Imds::from_env(&env(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6")]))
            .unwrap()
            .unwrap();
        assert_eq!(v6.endpoint, "http://[fd00:ec2::254]");
        let set = Imds::from_env(&env(&[
            (
                "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                "http://127.0.0.1:8111/",
            ),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6"),
            ("AWS_METADATA_SERVICE_TIMEOUT", "3"),
            ("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "2"),
            ("AWS_EC2_METADATA_V1_DISABLED", "TRUE"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(set.endpoint, "http://127.0.0.1:8111");
        assert_eq!(
            (set.timeout, set.attempts, set.v1_disabled),
            (Duration::from_secs(3), 2, true)
        );
        assert_eq!(
            Imds::from_env(&env(&[("AWS_EC2_METADATA_DISABLED", "true")])).unwrap(),
            None
        );
        for (name, value) in [
            ("AWS_METADATA_SERVICE_TIMEOUT", "0"),
            ("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "many"),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", "169.254.169.254"),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv5"),
        ] {
            let e = Imds::from_env(&env(&[(name, value)])).unwrap_err();
            assert!(e.contains(name) && e.contains(value), "{e}");
        }
    }
}
