//! Turns what the credential chain found ([`crate::aws_chain::Resolved`]) into keys to sign
//! with: static keys as they are; a web identity exchanged for a role session
//! (AssumeRoleWithWebIdentity, unsigned, at an STS endpoint); container credentials fetched from
//! their endpoint (the protocol of
//! https://docs.aws.amazon.com/sdkref/latest/guide/feature-container-credentials.html: `GET` with
//! the token as `Authorization`, a JSON answer with `AccessKeyId`, `SecretAccessKey`, `Token`).
//!
//! Each exchange runs on a thread of its own with its own runtime, so sync callers and callers
//! already inside a runtime can wait for it alike. Errors name the endpoint and the code, never
//! a token or a secret.

use std::path::Path;

use http::{HeaderMap, HeaderValue, Method};
use keyhole_server::client::{read_body, Client};
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

/// Sends one unsigned request on a thread of its own; returns the status and the body.
fn send(
    client: Client,
    method: Method,
    url: &str,
    headers: HeaderMap,
    body: String,
) -> Result<(http::StatusCode, String), String> {
    let uri: http::Uri = url.parse().map_err(|_| format!("`{url}` is not a URL"))?;
    let exchange = async move {
        let resp = client
            .dispatch(method, uri, headers, keyhole_server::body::full(body))
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = read_body(resp).await.map_err(|e| e.to_string())?;
        Ok::<_, String>((status, String::from_utf8_lossy(&body).into_owned()))
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
