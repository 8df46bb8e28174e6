//! Finds the caller's AWS credentials, region and endpoint the way the AWS CLI and SDKs do, so
//! `keyhole` commands can sign requests to the gateway with whatever the user already configured.
//!
//! Credentials, first found wins (the AWS CLI's order, less the providers keyhole lacks):
//! 1. the environment: `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`),
//!    skipped when a profile is named explicitly: the CLI's `--profile` beats the environment's
//!    keys;
//! 2. web identity: `AWS_ROLE_ARN` and `AWS_WEB_IDENTITY_TOKEN_FILE` (with `AWS_ROLE_SESSION_NAME`)
//!    in the environment, else the profile's `role_arn` and `web_identity_token_file` (with
//!    `role_session_name`) in the config file: the caller then exchanges the token for a role
//!    session (AssumeRoleWithWebIdentity; [`Resolved::web_identity`]), as botocore's provider
//!    does (https://docs.aws.amazon.com/sdkref/latest/guide/feature-assume-role-credentials.html);
//! 3. the profile's `[name]` section of the shared credentials file
//!    (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`);
//! 4. the profile's `[profile name]` section (`[default]` for the default profile) of the config
//!    file (`AWS_CONFIG_FILE`, default `~/.aws/config`): its `credential_process`, else its keys;
//! 5. container credentials: `AWS_CONTAINER_CREDENTIALS_FULL_URI` (a loopback `http://` URL or
//!    any `https://` one, as the SDKs allow) with `AWS_CONTAINER_AUTHORIZATION_TOKEN` or
//!    `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`, or `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` on
//!    ECS's `169.254.170.2` ([`Resolved::container`];
//!    https://docs.aws.amazon.com/sdkref/latest/guide/feature-container-credentials.html).
//!
//! The profile is the `profile` argument, else `AWS_PROFILE`, else `AWS_DEFAULT_PROFILE` (the
//! AWS CLI v2's order; stock botocore checks the two variables the other way round), else
//! `default`. A profile named explicitly that neither file has is an error, as in the AWS CLI
//! ("The config profile (x) could not be found"), even when the environment holds keys.
//!
//! Region: `AWS_REGION`, else `AWS_DEFAULT_REGION`, else the profile's `region` in the config
//! file. Endpoint: `AWS_ENDPOINT_URL`, else the profile's `endpoint_url` in the config file; both
//! are ignored when `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` (or the profile's
//! `ignore_configured_endpoint_urls`) is `true`. CA bundle (extra certificates to trust for an
//! https endpoint, such as a gateway's self-signed one): `AWS_CA_BUNDLE`, else the profile's
//! `ca_bundle` in the config file, `~/` expanded
//! (<https://docs.aws.amazon.com/sdkref/latest/guide/feature-gen-config.html>).
//!
//! Every environment read goes through the `env` function given to [`resolve`] (`HOME` too), so
//! tests run against a fake environment. An empty variable counts as unset.
//!
//! Not supported: profiles that assume a role with another profile's keys (`role_arn` without
//! `web_identity_token_file`) or use IAM Identity Center (`sso_session`, `sso_start_url`). The AWS
//! CLI ranks those above the credentials file, so such a profile is refused with a fix instead of
//! being answered with the keys of another identity. EC2 instance metadata credentials are
//! not looked up here (a user's command fails fast instead of waiting for a metadata service
//! that is not there); the gateway's upstream credentials end their chain with them
//! ([`crate::upstream_credentials`]). Nor are service-specific endpoints (`AWS_ENDPOINT_URL_S3`, `services`
//! sections) or nested settings (indented lines are kept as the SDKs keep them, never read).
//!
//! References (AWS documentation):
//! - order of providers: <https://docs.aws.amazon.com/cli/latest/userguide/cli-chap-authentication.html>
//! - files: <https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-files.html> and
//!   <https://docs.aws.amazon.com/sdkref/latest/guide/file-format.html>
//! - environment: <https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-envvars.html>
//! - providers: <https://docs.aws.amazon.com/sdkref/latest/guide/standardized-credentials.html>
//! - `credential_process`: <https://docs.aws.amazon.com/sdkref/latest/guide/feature-process-credentials.html>
//!   and <https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-sourcing-external.html>
//! - endpoints: <https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html>
//!
//! # Security
//!
//! [`Resolved`]'s `Debug` prints neither the secret key nor the session token, and no
//! [`ChainError`] carries them: a `credential_process`'s standard output is never quoted, only
//! its standard error, as the SDKs do (AWS asks credential tools never to write secrets there).

// Nothing calls `resolve` until the job commands sign requests with it; they wire it in.
#![allow(
    dead_code,
    reason = "wired in by the job commands; until then only the tests call it"
)]

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use chrono::{DateTime, Utc};

/// Credentials and settings found for the caller.
#[derive(Clone)]
pub struct Resolved {
    /// Access key id. It names the key and is not secret, so `Debug` shows it.
    pub access_key_id: String,
    /// Secret access key. Never shown by `Debug`.
    pub secret_access_key: String,
    /// Session token of temporary credentials. Never shown by `Debug`.
    pub session_token: Option<String>,
    /// A web identity to exchange for a role session; the keys above are then empty.
    pub web_identity: Option<WebIdentity>,
    /// A container-credentials endpoint to fetch from; the keys above are then empty.
    pub container: Option<Container>,
    /// Region to sign for, when one is configured.
    pub region: Option<String>,
    /// Endpoint to send requests to, when one is configured.
    pub endpoint_url: Option<String>,
    /// PEM file of certificates to trust for https endpoints, when one is configured.
    pub ca_bundle: Option<PathBuf>,
    /// Where the credentials came from, for messages: `environment`,
    /// `shared credentials file /home/x/.aws/credentials [profile dev]`,
    /// `credential_process in config file /home/x/.aws/config [profile dev]`,
    /// `config file /home/x/.aws/config [profile dev]`.
    pub source: String,
}

impl fmt::Debug for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolved")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("ca_bundle", &self.ca_bundle)
            .field("web_identity", &self.web_identity)
            .field("container", &self.container)
            .field("source", &self.source)
            .finish()
    }
}

/// A role to assume with the OIDC token in a file (the token is read when it is exchanged, so
/// a rotated file is picked up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebIdentity {
    /// `AWS_ROLE_ARN` / `role_arn`.
    pub role_arn: String,
    /// `AWS_WEB_IDENTITY_TOKEN_FILE` / `web_identity_token_file`.
    pub token_file: PathBuf,
    /// `AWS_ROLE_SESSION_NAME` / `role_session_name`, if set.
    pub session_name: Option<String>,
}

/// A container-credentials endpoint and its authorization token.
#[derive(Clone, PartialEq, Eq)]
pub struct Container {
    /// The full URL.
    pub uri: String,
    /// The `Authorization` header's value (never shown by `Debug`).
    pub token: Option<String>,
}

impl fmt::Debug for Container {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Container")
            .field("uri", &self.uri)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A profile and the sections that hold it in the two files, for [`ChainError`] messages.
#[derive(Debug)]
pub struct ProfileLookup {
    /// The profile.
    pub profile: String,
    /// Its section in the credentials file, e.g. `[dev]`.
    pub credentials_section: String,
    /// The credentials file, as shown to the user.
    pub credentials_file: String,
    /// Its section in the config file, e.g. `[profile dev]`.
    pub config_section: String,
    /// The config file, as shown to the user.
    pub config_file: String,
}

impl ProfileLookup {
    /// `with_reasons` appends why a file added nothing, e.g. ` (no such file)`.
    fn new(profile: &str, credentials: &AwsFile, config: &AwsFile, with_reasons: bool) -> Self {
        let show = |file: &AwsFile| {
            if with_reasons {
                file.tried()
            } else {
                file.shown.clone()
            }
        };
        ProfileLookup {
            profile: profile.to_owned(),
            credentials_section: credentials.section(profile),
            credentials_file: show(credentials),
            config_section: config.section(profile),
            config_file: show(config),
        }
    }
}

/// Why no credentials could be resolved. Each message names what was tried and the fix.
#[derive(Debug)]
pub enum ChainError {
    /// No source held credentials for the profile.
    NoCredentials {
        /// The profile and its sections in the two files.
        lookup: Box<ProfileLookup>,
        /// Whether the environment's keys were looked at (not when a profile was given).
        env_tried: bool,
        /// Every place looked at, in order, with why a file added nothing.
        tried: Vec<String>,
    },
    /// A profile was named explicitly but neither file has it.
    ProfileNotFound {
        /// The profile and the sections looked for (files with why they added nothing).
        lookup: Box<ProfileLookup>,
        /// What named it: `--profile`, `AWS_PROFILE` or `AWS_DEFAULT_PROFILE`.
        named_by: &'static str,
    },
    /// Only one half of a key pair is set.
    Incomplete {
        /// Where: `the environment` or a file and profile.
        origin: String,
        /// The setting present.
        present: &'static str,
        /// The setting missing.
        missing: &'static str,
    },
    /// The container-credentials settings cannot be used.
    Container(String),
    /// The profile gets its credentials from a provider keyhole cannot run.
    Unsupported {
        /// The profile.
        profile: String,
        /// The setting that selects the provider, e.g. `role_arn`.
        setting: &'static str,
        /// The file holding that setting.
        file: String,
    },
    /// A credentials or config file exists but cannot be read.
    Read {
        /// The file.
        file: String,
        /// The variable that can point elsewhere.
        variable: &'static str,
        /// The error from the operating system.
        error: io::Error,
    },
    /// A credentials or config file is not in the INI form the AWS tools read.
    Parse {
        /// The file.
        file: String,
        /// Line number, from 1.
        line: usize,
        /// What is wrong on that line.
        message: &'static str,
    },
    /// The profile's `credential_process` failed or printed something unusable.
    Process {
        /// The profile.
        profile: String,
        /// The config file holding the command.
        file: String,
        /// The command line.
        command: String,
        /// What went wrong, with the process's standard error when it failed.
        problem: String,
    },
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainError::Container(problem) => write!(f, "container credentials: {problem}"),
            ChainError::NoCredentials {
                lookup,
                env_tried,
                tried,
            } => {
                let ProfileLookup {
                    profile,
                    credentials_section,
                    credentials_file,
                    config_section,
                    config_file,
                } = lookup.as_ref();
                write!(f, "no AWS credentials found for profile `{profile}`: ")?;
                if *env_tried {
                    write!(f, "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or ")?;
                }
                write!(
                    f,
                    "add aws_access_key_id and aws_secret_access_key to {credentials_section} in \
                     {credentials_file} (`aws configure{}` writes them), or a credential_process \
                     to {config_section} in {config_file} (tried: {})",
                    profile_flag(profile),
                    tried.join(", ")
                )
            }
            ChainError::ProfileNotFound { lookup, named_by } => {
                let ProfileLookup {
                    profile,
                    credentials_section,
                    credentials_file,
                    config_section,
                    config_file,
                } = lookup.as_ref();
                write!(
                    f,
                    "AWS profile `{profile}` (named by {named_by}) not found: there is no \
                 {credentials_section} section in {credentials_file} and no {config_section} \
                 section in {config_file}; create it with `aws configure{}`, or name an existing \
                 profile",
                    profile_flag(profile)
                )
            }
            ChainError::Incomplete {
                origin,
                present,
                missing,
            } => write!(
                f,
                "incomplete AWS credentials in {origin}: {present} is set but {missing} is not; \
                 set both, or neither"
            ),
            ChainError::Unsupported {
                profile,
                setting,
                file,
            } => write!(
                f,
                "AWS profile `{profile}` gets its credentials through `{setting}` (in {file}), \
                 which keyhole cannot do yet (assuming a role with another profile's keys and \
                 IAM Identity Center are not supported); export plain credentials first, e.g. \
                 `eval \"$(aws configure export-credentials{} --format env)\"`, or use another \
                 profile",
                profile_flag(profile)
            ),
            ChainError::Read {
                file,
                variable,
                error,
            } => write!(
                f,
                "cannot read AWS file {file}: {error}; fix the file or its permissions, or set \
                 {variable} to another file"
            ),
            ChainError::Parse {
                file,
                line,
                message,
            } => write!(
                f,
                "cannot parse AWS file {file}, line {line}: {message}; the AWS tools read it as \
                 `[section]` headers followed by `name = value` lines"
            ),
            ChainError::Process {
                profile,
                file,
                command,
                problem,
            } => write!(
                f,
                "credential_process of AWS profile `{profile}` (in {file}) failed: {problem} \
                 (command: `{command}`)"
            ),
        }
    }
}

impl std::error::Error for ChainError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ChainError::Read { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// ` --profile NAME` for suggested `aws` commands, nothing for the default profile.
fn profile_flag(profile: &str) -> String {
    if profile == DEFAULT_PROFILE {
        String::new()
    } else {
        format!(" --profile {profile}")
    }
}

const DEFAULT_PROFILE: &str = "default";
const PROFILE_ARGUMENT: &str = "--profile";

/// Settings that select providers the AWS CLI tries before the credentials file and keyhole
/// does not implement (assume role, web identity, IAM Identity Center).
const UNSUPPORTED_SETTINGS: [&str; 3] = ["role_arn", "sso_session", "sso_start_url"];

/// Resolves the caller's credentials, region and endpoint; see the module documentation for the
/// order. `profile` is the CLI's `--profile`; `env` reads an environment variable
/// (`&|name| std::env::var(name).ok()` for the real one).
pub fn resolve(
    profile: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Resolved, ChainError> {
    let profile = choose_profile(profile, env);
    let credentials_file = AwsFile::load(FileKind::Credentials, env)?;
    let config_file = AwsFile::load(FileKind::Config, env)?;
    let in_config = config_file.profile(&profile.name);

    if let Some(named_by) = profile.named_by {
        if credentials_file.profile(&profile.name).is_none() && in_config.is_none() {
            let lookup = ProfileLookup::new(&profile.name, &credentials_file, &config_file, true);
            return Err(ChainError::ProfileNotFound {
                lookup: Box::new(lookup),
                named_by,
            });
        }
    }

    // AWS_REGION overrides AWS_DEFAULT_REGION and the profile's `region` (AWS CLI environment
    // variables page).
    let region = var(env, "AWS_REGION")
        .or_else(|| var(env, "AWS_DEFAULT_REGION"))
        .or_else(|| setting(in_config, "region").map(str::to_owned));
    // The environment variable wins over the profile setting (Service-specific endpoints page).
    let ignore_endpoints = var(env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .or_else(|| setting(in_config, "ignore_configured_endpoint_urls").map(str::to_owned))
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let endpoint_url = if ignore_endpoints {
        None
    } else {
        var(env, "AWS_ENDPOINT_URL")
            .or_else(|| setting(in_config, "endpoint_url").map(str::to_owned))
    };

    // The environment variable wins over the profile setting (General configuration settings
    // page, `ca_bundle` / `AWS_CA_BUNDLE`).
    let ca_bundle = var(env, "AWS_CA_BUNDLE")
        .or_else(|| setting(in_config, "ca_bundle").map(str::to_owned))
        .and_then(|v| expand_home(&v, var(env, "HOME").as_deref()));

    let none = || Keys {
        access_key_id: String::new(),
        secret_access_key: String::new(),
        session_token: None,
    };
    let (keys, source, web_identity, container) =
        match find_keys(&profile, env, &credentials_file, &config_file)? {
            Found::Keys(keys, source) => (keys, source, None, None),
            Found::WebIdentity(w, source) => (none(), source, Some(w), None),
            Found::Container(c, source) => (none(), source, None, Some(c)),
        };
    Ok(Resolved {
        ca_bundle,
        web_identity,
        container,
        access_key_id: keys.access_key_id,
        secret_access_key: keys.secret_access_key,
        session_token: keys.session_token,
        region,
        endpoint_url,
        source,
    })
}

/// An access key pair with its optional session token.
struct Keys {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

/// The profile in use and what named it (`None` for the implicit `default`).
struct Profile {
    name: String,
    named_by: Option<&'static str>,
}

fn choose_profile(argument: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Profile {
    if let Some(name) = argument.filter(|n| !n.is_empty()) {
        return Profile {
            name: name.to_owned(),
            named_by: Some(PROFILE_ARGUMENT),
        };
    }
    for variable in ["AWS_PROFILE", "AWS_DEFAULT_PROFILE"] {
        if let Some(name) = var(env, variable) {
            return Profile {
                name,
                named_by: Some(variable),
            };
        }
    }
    Profile {
        name: DEFAULT_PROFILE.to_owned(),
        named_by: None,
    }
}

/// The credential providers in the AWS CLI's order: environment, (refuse assume role, web
/// identity, IAM Identity Center), credentials file, `credential_process`, config file.
/// What [`find_keys`] found.
enum Found {
    Keys(Keys, String),
    WebIdentity(WebIdentity, String),
    Container(Container, String),
}

/// The container-credentials provider's settings, if set. A full URI must be `https://`, or
/// `http://` to a loopback address or ECS's and EKS's link-local agents (the SDKs' rule: the
/// token must not travel in clear text beyond the host).
fn container(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Container>, ChainError> {
    let uri = match (
        var(env, "AWS_CONTAINER_CREDENTIALS_FULL_URI"),
        var(env, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
    ) {
        (Some(full), _) => full,
        (None, Some(rel)) => format!("http://169.254.170.2{rel}"),
        (None, None) => return Ok(None),
    };
    if let Some(rest) = uri.strip_prefix("http://") {
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => authority.split(':').next().unwrap_or(""),
        };
        let allowed = host == "localhost"
            || host == "169.254.170.2"
            || host == "169.254.170.23"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !allowed {
            return Err(ChainError::Container(format!(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI `{uri}` is plain http:// to a host that is not loopback; use https:// or a loopback address"
            )));
        }
    } else if !uri.starts_with("https://") {
        return Err(ChainError::Container(format!(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI `{uri}` is not an http:// or https:// URL"
        )));
    }
    let token = match (
        var(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
        var(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN"),
    ) {
        (Some(file), _) => Some(
            std::fs::read_to_string(&file)
                .map_err(|e| {
                    ChainError::Container(format!(
                        "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {file}: {e}"
                    ))
                })?
                .trim()
                .to_owned(),
        ),
        (None, t) => t,
    };
    Ok(Some(Container { uri, token }))
}

/// Web identity settings: the environment's (botocore reads them before the profile's), else
/// the profile's in the config file. Half of a pair is an error naming the other half.
fn web_identity(
    env: &dyn Fn(&str) -> Option<String>,
    in_config: Option<&Settings>,
    config_file: &AwsFile,
    profile: &str,
) -> Result<Option<(WebIdentity, String)>, ChainError> {
    match (
        var(env, "AWS_ROLE_ARN"),
        var(env, "AWS_WEB_IDENTITY_TOKEN_FILE"),
    ) {
        (Some(role_arn), Some(file)) => {
            return Ok(Some((
                WebIdentity {
                    role_arn,
                    token_file: PathBuf::from(file),
                    session_name: var(env, "AWS_ROLE_SESSION_NAME"),
                },
                "web identity (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE)".to_owned(),
            )))
        }
        (None, Some(_)) => {
            return Err(incomplete(
                "the environment",
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                "AWS_ROLE_ARN",
            ))
        }
        _ => {}
    }
    let Some(file) = setting(in_config, "web_identity_token_file") else {
        return Ok(None);
    };
    let origin = format!("config file {} [profile {profile}]", config_file.shown);
    let role_arn = setting(in_config, "role_arn")
        .ok_or_else(|| incomplete(&origin, "web_identity_token_file", "role_arn"))?;
    Ok(Some((
        WebIdentity {
            role_arn: role_arn.to_owned(),
            token_file: PathBuf::from(file),
            session_name: setting(in_config, "role_session_name").map(str::to_owned),
        },
        format!("web identity in {origin}"),
    )))
}

fn find_keys(
    profile: &Profile,
    env: &dyn Fn(&str) -> Option<String>,
    credentials_file: &AwsFile,
    config_file: &AwsFile,
) -> Result<Found, ChainError> {
    let name = &profile.name;
    let mut tried = Vec::new();
    let env_tried = profile.named_by != Some(PROFILE_ARGUMENT);
    if env_tried {
        tried.push("environment".to_owned());
        match (
            var(env, "AWS_ACCESS_KEY_ID"),
            var(env, "AWS_SECRET_ACCESS_KEY"),
        ) {
            (Some(access_key_id), Some(secret_access_key)) => {
                let keys = Keys {
                    access_key_id,
                    secret_access_key,
                    session_token: var(env, "AWS_SESSION_TOKEN"),
                };
                return Ok(Found::Keys(keys, "environment".to_owned()));
            }
            (Some(_), None) => {
                return Err(incomplete(
                    "the environment",
                    "AWS_ACCESS_KEY_ID",
                    "AWS_SECRET_ACCESS_KEY",
                ))
            }
            (None, Some(_)) => {
                return Err(incomplete(
                    "the environment",
                    "AWS_SECRET_ACCESS_KEY",
                    "AWS_ACCESS_KEY_ID",
                ))
            }
            (None, None) => {}
        }
    }

    let in_credentials = credentials_file.profile(name);
    let in_config = config_file.profile(name);
    if let Some((w, origin)) = web_identity(env, in_config, config_file, name)? {
        return Ok(Found::WebIdentity(w, origin));
    }
    for (file, settings) in [(credentials_file, in_credentials), (config_file, in_config)] {
        if let Some(setting_name) = UNSUPPORTED_SETTINGS
            .into_iter()
            .find(|s| setting(settings, s).is_some())
        {
            return Err(ChainError::Unsupported {
                profile: name.clone(),
                setting: setting_name,
                file: file.shown.clone(),
            });
        }
    }

    tried.push(credentials_file.tried());
    let origin = format!(
        "shared credentials file {} [profile {name}]",
        credentials_file.shown
    );
    if let Some(keys) = static_keys(in_credentials, &origin)? {
        return Ok(Found::Keys(keys, origin));
    }

    tried.push(config_file.tried());
    if let Some(command) = setting(in_config, "credential_process") {
        let keys = run_credential_process(command).map_err(|problem| ChainError::Process {
            profile: name.clone(),
            file: config_file.shown.clone(),
            command: command.to_owned(),
            problem,
        })?;
        let origin = format!(
            "credential_process in config file {} [profile {name}]",
            config_file.shown
        );
        return Ok(Found::Keys(keys, origin));
    }
    let origin = format!("config file {} [profile {name}]", config_file.shown);
    if let Some(keys) = static_keys(in_config, &origin)? {
        return Ok(Found::Keys(keys, origin));
    }

    tried.push("container credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI)".to_owned());
    if let Some(c) = container(env)? {
        let origin = format!("container credentials {}", c.uri);
        return Ok(Found::Container(c, origin));
    }

    let lookup = ProfileLookup::new(name, credentials_file, config_file, false);
    Err(ChainError::NoCredentials {
        lookup: Box::new(lookup),
        env_tried,
        tried,
    })
}

fn incomplete(origin: &str, present: &'static str, missing: &'static str) -> ChainError {
    ChainError::Incomplete {
        origin: origin.to_owned(),
        present,
        missing,
    }
}

/// `aws_access_key_id`, `aws_secret_access_key` and `aws_session_token` of a profile section.
fn static_keys(settings: Option<&Settings>, origin: &str) -> Result<Option<Keys>, ChainError> {
    let id = setting(settings, "aws_access_key_id");
    let secret = setting(settings, "aws_secret_access_key");
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(Some(Keys {
            access_key_id: id.to_owned(),
            secret_access_key: secret.to_owned(),
            session_token: setting(settings, "aws_session_token").map(str::to_owned),
        })),
        (Some(_), None) => Err(incomplete(
            origin,
            "aws_access_key_id",
            "aws_secret_access_key",
        )),
        (None, Some(_)) => Err(incomplete(
            origin,
            "aws_secret_access_key",
            "aws_access_key_id",
        )),
        (None, None) => Ok(None),
    }
}

/// An environment variable; empty counts as unset.
fn var(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    env(name).filter(|v| !v.is_empty())
}

/// A non-empty setting of a section. Names are case-sensitive, as in the SDKs' profile parsers
/// (the AWS CLI's botocore lowercases them, so it also reads `AWS_ACCESS_KEY_ID = ...`).
fn setting<'a>(settings: Option<&'a Settings>, name: &str) -> Option<&'a str> {
    settings?
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

// ---------------------------------------------------------------------------------------------
// credential_process

/// The output the process must print, for error messages.
const PROCESS_OUTPUT: &str = "it must print {\"Version\": 1, \"AccessKeyId\": \"...\", \
     \"SecretAccessKey\": \"...\"} with optional \"SessionToken\" and \"Expiration\" (RFC 3339)";

/// Longest part of a failed process's standard error quoted in the error.
const MAX_STDERR_CHARS: usize = 2000;

/// Runs the command with `sh -c` and reads its Version 1 JSON output. The SDKs split the command
/// line themselves; `sh` accepts the quoting the AWS docs allow (double-quoted paths and
/// arguments). Standard input is inherited so a tool can prompt (for MFA, say); standard error is
/// captured and quoted when the process fails, as the SDKs do.
fn run_credential_process(command: &str) -> Result<Keys, String> {
    let output = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not start `sh -c`: {e}"))?;
    if !output.status.success() {
        let how = match output.status.code() {
            Some(code) => format!("it exited with status {code}"),
            None => "it was killed by a signal".to_owned(),
        };
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr = stderr.trim();
        return Err(if stderr.is_empty() {
            format!("{how} and printed nothing on standard error")
        } else if stderr.chars().count() > MAX_STDERR_CHARS {
            let head: String = stderr.chars().take(MAX_STDERR_CHARS).collect();
            format!("{how}: {head}...")
        } else {
            format!("{how}: {stderr}")
        });
    }
    parse_process_output(&output.stdout, Utc::now())
}

/// Reads `{"Version": 1, "AccessKeyId", "SecretAccessKey", "SessionToken"?, "Expiration"?}`.
/// The output is never quoted in errors: it holds the secret.
fn parse_process_output(stdout: &[u8], now: DateTime<Utc>) -> Result<Keys, String> {
    let json: serde_json::Value = serde_json::from_slice(stdout)
        .map_err(|e| format!("its output is not JSON ({e}); {PROCESS_OUTPUT}"))?;
    match json.get("Version") {
        Some(v) if v.as_u64() == Some(1) => {}
        // Only a number is quoted back: the output is otherwise never shown.
        Some(v) if v.is_number() => {
            return Err(format!(
                "its output has \"Version\": {v}; only Version 1 is supported"
            ))
        }
        Some(_) => {
            return Err(
                "its output's \"Version\" is not a number; only Version 1 is supported".to_owned(),
            )
        }
        None => return Err(format!("its output has no \"Version\"; {PROCESS_OUTPUT}")),
    }
    let text = |field: &str| -> Result<Option<String>, String> {
        match json.get(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) if s.is_empty() => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("its output's \"{field}\" is not a string")),
        }
    };
    let required = |field: &str| -> Result<String, String> {
        text(field)?.ok_or_else(|| format!("its output has no \"{field}\"; {PROCESS_OUTPUT}"))
    };
    let keys = Keys {
        access_key_id: required("AccessKeyId")?,
        secret_access_key: required("SecretAccessKey")?,
        session_token: text("SessionToken")?,
    };
    if let Some(expiration) = text("Expiration")? {
        let at = DateTime::parse_from_rfc3339(&expiration).map_err(|e| {
            format!("its output's \"Expiration\" `{expiration}` is not an RFC 3339 time ({e})")
        })?;
        if at <= now {
            return Err(format!(
                "the credentials it printed expired at {expiration}; renew them at their source \
                 (for example, log in again)"
            ));
        }
    }
    Ok(keys)
}

// ---------------------------------------------------------------------------------------------
// The shared credentials and config files

/// The settings of one section, by name.
type Settings = HashMap<String, String>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Credentials,
    Config,
}

impl FileKind {
    /// The variable that points at the file.
    fn variable(self) -> &'static str {
        match self {
            FileKind::Credentials => "AWS_SHARED_CREDENTIALS_FILE",
            FileKind::Config => "AWS_CONFIG_FILE",
        }
    }

    fn file_name(self) -> &'static str {
        match self {
            FileKind::Credentials => "credentials",
            FileKind::Config => "config",
        }
    }
}

/// One of the two files, parsed (empty when it does not exist).
struct AwsFile {
    kind: FileKind,
    /// The path as messages show it (`~/.aws/config` when HOME is not set).
    shown: String,
    /// Sections by name; a config file's `[profile  x]` is stored as `profile x`.
    sections: HashMap<String, Settings>,
    /// Why the file added nothing: `no such file`, `HOME is not set`.
    absent: Option<&'static str>,
}

impl AwsFile {
    fn load(kind: FileKind, env: &dyn Fn(&str) -> Option<String>) -> Result<AwsFile, ChainError> {
        let home = var(env, "HOME");
        let path = match var(env, kind.variable()) {
            Some(value) => expand_home(&value, home.as_deref()),
            None => home.map(|h| Path::new(&h).join(".aws").join(kind.file_name())),
        };
        let Some(path) = path else {
            return Ok(AwsFile {
                kind,
                shown: format!("~/.aws/{}", kind.file_name()),
                sections: HashMap::new(),
                absent: Some("HOME is not set"),
            });
        };
        let shown = path.display().to_string();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let sections = parse_ini(&text).map_err(|(line, message)| ChainError::Parse {
                    file: shown.clone(),
                    line,
                    message,
                })?;
                Ok(AwsFile {
                    kind,
                    shown,
                    sections,
                    absent: None,
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(AwsFile {
                kind,
                shown,
                sections: HashMap::new(),
                absent: Some("no such file"),
            }),
            Err(error) => Err(ChainError::Read {
                file: shown,
                variable: kind.variable(),
                error,
            }),
        }
    }

    /// The profile's section: `[name]` in the credentials file; `[profile name]` in the config
    /// file, where the default profile is `[default]` (`[profile default]` wins if both exist,
    /// as the SDKs' file-format spec says).
    fn profile(&self, name: &str) -> Option<&Settings> {
        match self.kind {
            FileKind::Credentials => self.sections.get(name),
            FileKind::Config if name == DEFAULT_PROFILE => self
                .sections
                .get("profile default")
                .or_else(|| self.sections.get(DEFAULT_PROFILE)),
            FileKind::Config => self.sections.get(&format!("profile {name}")),
        }
    }

    /// The section header a user would write for the profile.
    fn section(&self, name: &str) -> String {
        match self.kind {
            FileKind::Credentials => format!("[{name}]"),
            FileKind::Config if name == DEFAULT_PROFILE => "[default]".to_owned(),
            FileKind::Config => format!("[profile {name}]"),
        }
    }

    /// The file for a `tried:` list, with why it added nothing.
    fn tried(&self) -> String {
        match self.absent {
            Some(why) => format!("{} ({why})", self.shown),
            None => self.shown.clone(),
        }
    }
}

/// `~/x` in AWS_SHARED_CREDENTIALS_FILE or AWS_CONFIG_FILE means `$HOME/x`, as the AWS tools
/// expand it; `None` when HOME is needed but not set.
fn expand_home(value: &str, home: Option<&str>) -> Option<PathBuf> {
    match value.strip_prefix("~/") {
        Some(rest) => home.map(|h| Path::new(h).join(rest)),
        None => Some(PathBuf::from(value)),
    }
}

/// Whitespace as the profile-file format counts it (space and tab only).
const WHITESPACE: &[char] = &[' ', '\t'];
const COMMENT: &[char] = &['#', ';'];

/// Parses the INI form of the AWS files, as the SDKs' profile parsers do:
/// - blank lines and lines starting with `#` or `;` are skipped;
/// - `[name]` starts a section; a comment may follow the `]` directly;
/// - `name = value` sets a setting (whitespace around `=` and the value ignored); `#` or `;`
///   starts a comment only after whitespace, so `value#x` keeps its `#`;
/// - an indented line continues the previous setting (nested settings such as `s3 =`), joined
///   with a newline; indented before any setting of its section, it is a setting itself;
/// - a section seen twice is merged, later settings winning.
///
/// Errors are a line number (from 1) and what is wrong there.
fn parse_ini(text: &str) -> Result<HashMap<String, Settings>, (usize, &'static str)> {
    let mut sections: HashMap<String, Settings> = HashMap::new();
    let mut section: Option<String> = None;
    let mut last_setting: Option<String> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim_matches(WHITESPACE);
        if trimmed.is_empty() || trimmed.starts_with(COMMENT) {
            continue;
        }
        if trimmed.starts_with('[') {
            let name = strip_comment(trimmed, false)
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .map(section_name)
                .filter(|n| !n.is_empty())
                .ok_or((number, "a section header must look like `[name]`"))?;
            sections.entry(name.clone()).or_default();
            section = Some(name);
            last_setting = None;
            continue;
        }
        let Some(settings) = section.as_ref().and_then(|s| sections.get_mut(s)) else {
            return Err((number, "a setting comes before any `[section]` header"));
        };
        if line.starts_with(WHITESPACE) {
            if let Some(value) = last_setting.as_ref().and_then(|k| settings.get_mut(k)) {
                value.push('\n');
                value.push_str(trimmed);
                continue;
            }
        }
        let (name, value) = strip_comment(trimmed, true)
            .split_once('=')
            .ok_or((number, "expected `name = value`"))?;
        let name = name.trim_matches(WHITESPACE);
        if name.is_empty() {
            return Err((number, "a setting has no name before `=`"));
        }
        settings.insert(name.to_owned(), value.trim_matches(WHITESPACE).to_owned());
        last_setting = Some(name.to_owned());
    }
    Ok(sections)
}

/// `profile   dev` is stored as `profile dev`; other names as written (trimmed).
fn section_name(inside_brackets: &str) -> String {
    let name = inside_brackets.trim_matches(WHITESPACE);
    match name.strip_prefix("profile") {
        Some(rest) if rest.starts_with(WHITESPACE) => {
            format!("profile {}", rest.trim_matches(WHITESPACE))
        }
        _ => name.to_owned(),
    }
}

/// Cuts a trailing comment. In settings a comment character counts only after whitespace; in
/// section headers anywhere.
fn strip_comment(line: &str, needs_whitespace: bool) -> &str {
    let mut after_whitespace = false;
    for (index, c) in line.char_indices() {
        if COMMENT.contains(&c) && (after_whitespace || !needs_whitespace) {
            return line.get(..index).unwrap_or(line).trim_matches(WHITESPACE);
        }
        after_whitespace = WHITESPACE.contains(&c);
    }
    line.trim_matches(WHITESPACE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A fake home directory with `.aws/`, and a fake environment whose HOME points at it.
    struct Fixture {
        dir: tempfile::TempDir,
        vars: HashMap<String, String>,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir(dir.path().join(".aws")).unwrap();
            let mut vars = HashMap::new();
            vars.insert("HOME".to_owned(), dir.path().display().to_string());
            Fixture { dir, vars }
        }

        fn home(&self) -> &Path {
            self.dir.path()
        }

        fn credentials_path(&self) -> String {
            self.home().join(".aws/credentials").display().to_string()
        }

        fn config_path(&self) -> String {
            self.home().join(".aws/config").display().to_string()
        }

        fn credentials(&self, text: &str) -> &Self {
            fs::write(self.home().join(".aws/credentials"), text).unwrap();
            self
        }

        fn config(&self, text: &str) -> &Self {
            fs::write(self.home().join(".aws/config"), text).unwrap();
            self
        }

        fn set(&mut self, name: &str, value: &str) -> &mut Self {
            self.vars.insert(name.to_owned(), value.to_owned());
            self
        }

        fn unset(&mut self, name: &str) -> &mut Self {
            self.vars.remove(name);
            self
        }

        /// A `credential_process` command running a shell script with this body.
        fn process(&self, name: &str, body: &str) -> String {
            let path = self.home().join(name);
            fs::write(&path, body).unwrap();
            format!("sh {}", path.display())
        }

        fn resolve(&self, profile: Option<&str>) -> Result<Resolved, ChainError> {
            let vars = self.vars.clone();
            resolve(profile, &move |name| vars.get(name).cloned())
        }

        fn error(&self, profile: Option<&str>) -> String {
            match self.resolve(profile) {
                Ok(r) => panic!("expected an error, resolved {r:?}"),
                Err(e) => e.to_string(),
            }
        }
    }

    const CREDENTIALS: &str = "\
[default]
aws_access_key_id = AKIDDEFAULTFILE
aws_secret_access_key = secret-default-file

[dev]
aws_access_key_id = AKIDDEVFILE
aws_secret_access_key = secret-dev-file
aws_session_token = token-dev-file
";

    #[test]
    fn environment_keys_come_first_when_no_profile_is_given() {
        let mut f = Fixture::new();
        f.credentials(CREDENTIALS)
            .config("[default]\nregion = eu-west-3\nendpoint_url = http://127.0.0.1:9000\n");
        f.set("AWS_ACCESS_KEY_ID", "AKIDENV")
            .set("AWS_SECRET_ACCESS_KEY", "secret-env")
            .set("AWS_SESSION_TOKEN", "token-env");
        let r = f.resolve(None).unwrap();
        assert_eq!(r.access_key_id, "AKIDENV");
        assert_eq!(r.secret_access_key, "secret-env");
        assert_eq!(r.session_token.as_deref(), Some("token-env"));
        assert_eq!(r.source, "environment");
        // Region and endpoint still come from the profile in use.
        assert_eq!(r.region.as_deref(), Some("eu-west-3"));
        assert_eq!(r.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
    }

    #[test]
    fn environment_keys_apply_to_a_profile_chosen_by_aws_profile() {
        let mut f = Fixture::new();
        f.credentials(CREDENTIALS);
        f.set("AWS_PROFILE", "dev")
            .set("AWS_ACCESS_KEY_ID", "AKIDENV")
            .set("AWS_SECRET_ACCESS_KEY", "secret-env");
        let r = f.resolve(None).unwrap();
        assert_eq!(r.access_key_id, "AKIDENV");
        assert_eq!(r.session_token, None);
    }

    #[test]
    fn a_profile_argument_beats_environment_keys() {
        let mut f = Fixture::new();
        f.credentials(CREDENTIALS);
        f.set("AWS_ACCESS_KEY_ID", "AKIDENV")
            .set("AWS_SECRET_ACCESS_KEY", "secret-env");
        let r = f.resolve(Some("dev")).unwrap();
        assert_eq!(r.access_key_id, "AKIDDEVFILE");
        assert_eq!(r.secret_access_key, "secret-dev-file");
        assert_eq!(r.session_token.as_deref(), Some("token-dev-file"));
        assert_eq!(
            r.source,
            format!(
                "shared credentials file {} [profile dev]",
                f.credentials_path()
            )
        );
    }

    #[test]
    fn half_a_key_pair_in_the_environment_is_an_error() {
        let mut f = Fixture::new();
        f.credentials(CREDENTIALS);
        f.set("AWS_ACCESS_KEY_ID", "AKIDENV");
        let e = f.error(None);
        assert!(e.contains("the environment"), "{e}");
        assert!(
            e.contains("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"),
            "{e}"
        );
        // An empty variable counts as unset.
        f.set("AWS_ACCESS_KEY_ID", "");
        assert_eq!(f.resolve(None).unwrap().access_key_id, "AKIDDEFAULTFILE");
    }

    #[test]
    fn default_profile_of_the_credentials_file() {
        let f = Fixture::new();
        f.credentials(CREDENTIALS);
        let r = f.resolve(None).unwrap();
        assert_eq!(r.access_key_id, "AKIDDEFAULTFILE");
        assert_eq!(r.secret_access_key, "secret-default-file");
        assert_eq!(r.session_token, None);
        assert_eq!(r.region, None);
        assert_eq!(r.endpoint_url, None);
        assert_eq!(
            r.source,
            format!(
                "shared credentials file {} [profile default]",
                f.credentials_path()
            )
        );
    }

    #[test]
    fn profile_comes_from_argument_then_aws_profile_then_aws_default_profile() {
        let mut f = Fixture::new();
        f.credentials(
            "[a]\naws_access_key_id = A\naws_secret_access_key = sa\n\
             [b]\naws_access_key_id = B\naws_secret_access_key = sb\n\
             [c]\naws_access_key_id = C\naws_secret_access_key = sc\n",
        );
        f.set("AWS_DEFAULT_PROFILE", "c");
        assert_eq!(f.resolve(None).unwrap().access_key_id, "C");
        f.set("AWS_PROFILE", "b");
        assert_eq!(f.resolve(None).unwrap().access_key_id, "B");
        assert_eq!(f.resolve(Some("a")).unwrap().access_key_id, "A");
    }

    #[test]
    fn credentials_file_beats_config_file_for_the_same_profile() {
        let f = Fixture::new();
        let command = f.process("proc.sh", "echo should-not-run >&2; exit 1\n");
        f.credentials(CREDENTIALS).config(&format!(
            "[profile dev]\naws_access_key_id = AKIDDEVCONFIG\naws_secret_access_key = s\n\
             credential_process = {command}\n"
        ));
        assert_eq!(f.resolve(Some("dev")).unwrap().access_key_id, "AKIDDEVFILE");
    }

    #[test]
    fn config_file_keys_under_profile_name_sections() {
        let f = Fixture::new();
        f.config(
            "[default]\naws_access_key_id = AKIDDEFAULTCONFIG\naws_secret_access_key = s0\n\
             region = us-west-2\n\
             [profile dev]\naws_access_key_id = AKIDDEVCONFIG\naws_secret_access_key = s1\n\
             aws_session_token = t1\nregion = eu-central-1\n\
             [ops]\naws_access_key_id = AKIDNOTAPROFILE\naws_secret_access_key = s2\n",
        );
        let r = f.resolve(None).unwrap();
        assert_eq!(r.access_key_id, "AKIDDEFAULTCONFIG");
        assert_eq!(r.region.as_deref(), Some("us-west-2"));
        assert_eq!(
            r.source,
            format!("config file {} [profile default]", f.config_path())
        );

        let r = f.resolve(Some("dev")).unwrap();
        assert_eq!(r.access_key_id, "AKIDDEVCONFIG");
        assert_eq!(r.secret_access_key, "s1");
        assert_eq!(r.session_token.as_deref(), Some("t1"));
        assert_eq!(r.region.as_deref(), Some("eu-central-1"));

        // In the config file a profile other than default needs the `profile ` prefix.
        let e = f.error(Some("ops"));
        assert!(
            e.contains("AWS profile `ops` (named by --profile) not found"),
            "{e}"
        );
    }

    #[test]
    fn profile_default_section_wins_over_default_in_the_config_file() {
        let f = Fixture::new();
        f.config(
            "[profile   default]\naws_access_key_id = AKIDPROFILEDEFAULT\n\
             aws_secret_access_key = s\n\
             [default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s\n",
        );
        assert_eq!(f.resolve(None).unwrap().access_key_id, "AKIDPROFILEDEFAULT");
    }

    #[test]
    fn credential_process_output_is_used() {
        let f = Fixture::new();
        let command = f.process(
            "proc.sh",
            "cat <<'EOF'\n{\"Version\": 1, \"AccessKeyId\": \"ASIAPROCESS\", \
             \"SecretAccessKey\": \"secret-process\", \"SessionToken\": \"token-process\", \
             \"Expiration\": \"2999-01-01T00:00:00Z\"}\nEOF\n",
        );
        f.config(&format!(
            "[profile job]\ncredential_process = {command}\nregion = us-east-2\n"
        ));
        let r = f.resolve(Some("job")).unwrap();
        assert_eq!(r.access_key_id, "ASIAPROCESS");
        assert_eq!(r.secret_access_key, "secret-process");
        assert_eq!(r.session_token.as_deref(), Some("token-process"));
        assert_eq!(r.region.as_deref(), Some("us-east-2"));
        assert_eq!(
            r.source,
            format!(
                "credential_process in config file {} [profile job]",
                f.config_path()
            )
        );
    }

    #[test]
    fn credential_process_runs_through_sh_and_beats_config_file_keys() {
        let f = Fixture::new();
        // A pipeline only works through a shell.
        f.config(
            "[default]\naws_access_key_id = AKIDCONFIG\naws_secret_access_key = s\n\
             credential_process = printf '%s' '{\"Version\": 1, \"AccessKeyId\": \"ASIAPIPE\", \
             \"SecretAccessKey\": \"sp\"}' | cat\n",
        );
        let r = f.resolve(None).unwrap();
        assert_eq!(r.access_key_id, "ASIAPIPE");
        assert_eq!(r.session_token, None);
    }

    #[test]
    fn credential_process_failure_reports_status_and_stderr() {
        let f = Fixture::new();
        let command = f.process(
            "proc.sh",
            "echo '{\"Version\": 1}'\necho 'session expired: run vault login' >&2\nexit 3\n",
        );
        f.config(&format!("[profile job]\ncredential_process = {command}\n"));
        let e = f.error(Some("job"));
        assert!(
            e.starts_with("credential_process of AWS profile `job`"),
            "{e}"
        );
        assert!(e.contains(&f.config_path()), "{e}");
        assert!(
            e.contains("it exited with status 3: session expired: run vault login"),
            "{e}"
        );
        assert!(e.contains(&command), "{e}");
    }

    #[test]
    fn credential_process_output_must_be_version_1_json_with_both_keys() {
        let f = Fixture::new();
        let cases = [
            (
                "{\"Version\": 2, \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"s3cr3t\"}",
                "\"Version\": 2; only Version 1 is supported",
            ),
            (
                "{\"AccessKeyId\": \"A\", \"SecretAccessKey\": \"s3cr3t\"}",
                "no \"Version\"",
            ),
            (
                "{\"Version\": \"1\", \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"s3cr3t\"}",
                "only Version 1 is supported",
            ),
            (
                "{\"Version\": 1, \"AccessKeyId\": \"A\"}",
                "no \"SecretAccessKey\"",
            ),
            (
                "{\"Version\": 1, \"SecretAccessKey\": \"s3cr3t\"}",
                "no \"AccessKeyId\"",
            ),
            (
                "AccessKeyId=A SecretAccessKey=s3cr3t",
                "its output is not JSON",
            ),
            (
                "{\"Version\": 1, \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"s3cr3t\", \
              \"Expiration\": \"2000-01-01T00:00:00Z\"}",
                "expired at 2000-01-01T00:00:00Z",
            ),
            (
                "{\"Version\": 1, \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"s3cr3t\", \
              \"Expiration\": \"tomorrow\"}",
                "\"Expiration\" `tomorrow` is not an RFC 3339 time",
            ),
        ];
        for (i, (output, expected)) in cases.into_iter().enumerate() {
            let command = f.process(
                &format!("proc{i}.sh"),
                &format!("cat <<'EOF'\n{output}\nEOF\n"),
            );
            f.config(&format!("[default]\ncredential_process = {command}\n"));
            let e = f.error(None);
            assert!(e.contains(expected), "case {i}: {e}");
            assert!(!e.contains("s3cr3t"), "case {i} quotes the secret: {e}");
        }
    }

    #[test]
    fn a_named_profile_that_no_file_has_is_its_own_error() {
        let mut f = Fixture::new();
        f.credentials(CREDENTIALS);
        let e = f.error(Some("prod"));
        assert_eq!(
            e,
            format!(
                "AWS profile `prod` (named by --profile) not found: there is no [prod] section \
                 in {} and no [profile prod] section in {} (no such file); create it with \
                 `aws configure --profile prod`, or name an existing profile",
                f.credentials_path(),
                f.config_path()
            )
        );
        // Named by AWS_PROFILE, it is an error even with keys in the environment, as in the CLI.
        f.set("AWS_PROFILE", "prod")
            .set("AWS_ACCESS_KEY_ID", "AKIDENV")
            .set("AWS_SECRET_ACCESS_KEY", "secret-env");
        assert!(f.error(None).contains("(named by AWS_PROFILE) not found"));
        f.unset("AWS_PROFILE").set("AWS_DEFAULT_PROFILE", "prod");
        assert!(f
            .error(None)
            .contains("(named by AWS_DEFAULT_PROFILE) not found"));
    }

    #[test]
    fn no_credentials_anywhere_names_what_was_tried_and_the_fix() {
        let f = Fixture::new();
        let e = f.error(None);
        let (credentials, config) = (f.credentials_path(), f.config_path());
        assert_eq!(
            e,
            format!(
                "no AWS credentials found for profile `default`: set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY, or add aws_access_key_id and aws_secret_access_key to \
                 [default] in {credentials} (`aws configure` writes them), or a \
                 credential_process to [default] in {config} (tried: environment, \
                 {credentials} (no such file), {config} (no such file), container credentials \
                 (AWS_CONTAINER_CREDENTIALS_FULL_URI))"
            )
        );
    }

    #[test]
    fn a_profile_without_credentials_says_where_to_add_them() {
        let f = Fixture::new();
        f.config("[profile dev]\nregion = eu-west-1\n");
        let e = f.error(Some("dev"));
        assert!(
            e.starts_with("no AWS credentials found for profile `dev`: add"),
            "{e}"
        );
        assert!(e.contains("to [dev] in"), "{e}");
        assert!(e.contains("`aws configure --profile dev`"), "{e}");
        assert!(e.contains("to [profile dev] in"), "{e}");
        assert!(
            !e.contains("environment"),
            "--profile skips the environment: {e}"
        );
    }

    #[test]
    fn half_a_key_pair_in_a_file_is_an_error() {
        let f = Fixture::new();
        f.credentials("[default]\naws_secret_access_key = s\n");
        let e = f.error(None);
        assert!(
            e.contains("aws_secret_access_key is set but aws_access_key_id is not"),
            "{e}"
        );
        assert!(e.contains(&f.credentials_path()), "{e}");
    }

    #[test]
    fn comments_whitespace_and_case_follow_the_aws_file_format() {
        let f = Fixture::new();
        f.credentials(
            "# a comment\n\
             ; another comment\n\
             \n\
             [default] ; trailing comment on the header\n\
             \t# an indented comment\n\
             aws_access_key_id=AKIDCOMPACT   # comment after whitespace\n\
             aws_secret_access_key   =\tsec#ret;kept ; comment\n\
             [dev]#header comment\n\
             \x20 aws_access_key_id = AKIDINDENTED\n\
             aws_secret_access_key = s\n\
             AWS_SESSION_TOKEN = keys are case-sensitive, so this is not a token\n\
             [default]\n\
             aws_session_token = merged into the earlier [default]\n",
        );
        let r = f.resolve(None).unwrap();
        assert_eq!(r.access_key_id, "AKIDCOMPACT");
        assert_eq!(r.secret_access_key, "sec#ret;kept");
        assert_eq!(
            r.session_token.as_deref(),
            Some("merged into the earlier [default]")
        );
        let dev = f.resolve(Some("dev")).unwrap();
        assert_eq!(dev.access_key_id, "AKIDINDENTED");
        assert_eq!(dev.session_token, None);
    }

    #[test]
    fn indented_lines_continue_the_previous_setting() {
        let sections = parse_ini(
            "[profile dev]\nregion = us-west-2\ns3 =\n  max_concurrent_requests = 10\n  \
             endpoint_url = http://nested\nendpoint_url = http://top\n",
        )
        .unwrap();
        let dev = &sections["profile dev"];
        assert_eq!(
            dev["s3"],
            "\nmax_concurrent_requests = 10\nendpoint_url = http://nested"
        );
        assert_eq!(dev["endpoint_url"], "http://top");
        assert_eq!(dev["region"], "us-west-2");
    }

    #[test]
    fn malformed_files_are_reported_with_their_line() {
        let f = Fixture::new();
        f.credentials("[default]\naws_access_key_id AKID\n");
        let e = f.error(None);
        assert!(
            e.contains(&format!(
                "cannot parse AWS file {}, line 2: expected `name = value`",
                f.credentials_path()
            )),
            "{e}"
        );
        assert_eq!(
            parse_ini("k = v\n").unwrap_err(),
            (1, "a setting comes before any `[section]` header")
        );
        assert_eq!(parse_ini("[x]\n[default\n").unwrap_err().0, 2);
        assert_eq!(parse_ini("[]\n").unwrap_err().0, 1);
        assert_eq!(
            parse_ini("[x]\n = v\n").unwrap_err(),
            (2, "a setting has no name before `=`")
        );
    }

    #[test]
    fn an_unreadable_file_is_an_error_not_an_absent_one() {
        let mut f = Fixture::new();
        // A directory where the file should be cannot be read as text.
        let dir = f.home().join("not-a-file");
        fs::create_dir(&dir).unwrap();
        f.set("AWS_CONFIG_FILE", &dir.display().to_string());
        let e = f.error(None);
        assert!(
            e.starts_with(&format!("cannot read AWS file {}", dir.display())),
            "{e}"
        );
        assert!(e.contains("set AWS_CONFIG_FILE to another file"), "{e}");
    }

    #[test]
    fn region_comes_from_aws_region_then_aws_default_region_then_the_config_file() {
        let mut f = Fixture::new();
        f.credentials(CREDENTIALS)
            .config("[default]\nregion = from-config\n");
        assert_eq!(
            f.resolve(None).unwrap().region.as_deref(),
            Some("from-config")
        );
        f.set("AWS_DEFAULT_REGION", "from-default-region");
        assert_eq!(
            f.resolve(None).unwrap().region.as_deref(),
            Some("from-default-region")
        );
        f.set("AWS_REGION", "from-region");
        assert_eq!(
            f.resolve(None).unwrap().region.as_deref(),
            Some("from-region")
        );
    }

    #[test]
    fn region_in_the_credentials_file_is_not_read() {
        let f = Fixture::new();
        f.credentials("[default]\naws_access_key_id = A\naws_secret_access_key = s\nregion = x\n");
        assert_eq!(f.resolve(None).unwrap().region, None);
    }

    #[test]
    fn endpoint_comes_from_aws_endpoint_url_then_the_config_file_unless_ignored() {
        let mut f = Fixture::new();
        f.credentials(CREDENTIALS)
            .config("[profile dev]\nendpoint_url = http://from-config:9000\n");
        let endpoint = |f: &Fixture| f.resolve(Some("dev")).unwrap().endpoint_url;
        assert_eq!(endpoint(&f).as_deref(), Some("http://from-config:9000"));
        f.set("AWS_ENDPOINT_URL", "http://from-env:9000");
        assert_eq!(endpoint(&f).as_deref(), Some("http://from-env:9000"));
        f.set("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true");
        assert_eq!(endpoint(&f), None);
        f.set("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "false");
        assert_eq!(endpoint(&f).as_deref(), Some("http://from-env:9000"));
        f.unset("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
            .unset("AWS_ENDPOINT_URL");
        f.config(
            "[profile dev]\nendpoint_url = http://from-config:9000\n\
             ignore_configured_endpoint_urls = true\n",
        );
        assert_eq!(endpoint(&f), None);
    }

    #[test]
    fn ca_bundle_comes_from_aws_ca_bundle_then_the_profile() {
        let mut f = Fixture::new();
        f.credentials(CREDENTIALS);
        assert_eq!(f.resolve(Some("dev")).unwrap().ca_bundle, None);
        f.config("[profile dev]\nca_bundle = ~/certs/gw.pem\n");
        assert_eq!(
            f.resolve(Some("dev")).unwrap().ca_bundle,
            Some(f.home().join("certs/gw.pem"))
        );
        f.set("AWS_CA_BUNDLE", "/etc/kh/ca.pem");
        assert_eq!(
            f.resolve(Some("dev")).unwrap().ca_bundle,
            Some(PathBuf::from("/etc/kh/ca.pem"))
        );
    }

    #[test]
    fn file_locations_come_from_their_variables_with_tilde_expanded() {
        let mut f = Fixture::new();
        fs::create_dir(f.home().join("elsewhere")).unwrap();
        fs::write(
            f.home().join("elsewhere/creds"),
            "[default]\naws_access_key_id = AKIDELSEWHERE\naws_secret_access_key = s\n",
        )
        .unwrap();
        fs::write(
            f.home().join("elsewhere/conf"),
            "[default]\nregion = elsewhere-1\n",
        )
        .unwrap();
        f.credentials(CREDENTIALS);
        f.set("AWS_SHARED_CREDENTIALS_FILE", "~/elsewhere/creds");
        f.set(
            "AWS_CONFIG_FILE",
            &f.home().join("elsewhere/conf").display().to_string(),
        );
        let r = f.resolve(None).unwrap();
        assert_eq!(r.access_key_id, "AKIDELSEWHERE");
        assert_eq!(r.region.as_deref(), Some("elsewhere-1"));
        assert!(r.source.contains("elsewhere/creds"), "{}", r.source);
    }

    #[test]
    fn without_home_the_default_files_are_reported_not_guessed() {
        let mut f = Fixture::new();
        f.credentials(CREDENTIALS);
        f.unset("HOME");
        let e = f.error(None);
        assert!(
            e.contains(
                "(tried: environment, ~/.aws/credentials (HOME is not set), \
                        ~/.aws/config (HOME is not set), container credentials \
                        (AWS_CONTAINER_CREDENTIALS_FULL_URI))"
            ),
            "{e}"
        );
    }

    #[test]
    fn profiles_using_unsupported_providers_are_refused_not_replaced() {
        let f = Fixture::new();
        f.credentials(CREDENTIALS).config(
            "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/r\nsource_profile = default\n\
             [profile sso]\nsso_session = corp\n",
        );
        let e = f.error(Some("dev"));
        assert!(
            e.starts_with("AWS profile `dev` gets its credentials through `role_arn`"),
            "{e}"
        );
        assert!(
            e.contains("aws configure export-credentials --profile dev"),
            "{e}"
        );
        assert!(f.error(Some("sso")).contains("`sso_session`"));
    }

    /// botocore's web identity provider: `AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE` (the
    /// EKS/IRSA pattern), else the profile's `role_arn` + `web_identity_token_file`; keys in the
    /// environment still come first
    /// (https://docs.aws.amazon.com/sdkref/latest/guide/feature-assume-role-credentials.html).
    #[test]
    fn web_identity_comes_from_the_environment_or_the_profile() {
        let mut f = Fixture::new();
        f.credentials(CREDENTIALS);
        f.set("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/trainer")
            .set("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/token")
            .set("AWS_ROLE_SESSION_NAME", "pod-1");
        let r = f.resolve(None).unwrap();
        let w = r.web_identity.as_ref().unwrap();
        assert_eq!(w.role_arn, "arn:aws:iam::123456789012:role/trainer");
        assert_eq!(w.token_file, PathBuf::from("/var/run/secrets/token"));
        assert_eq!(w.session_name.as_deref(), Some("pod-1"));
        assert!(r.access_key_id.is_empty() && r.source.starts_with("web identity"));
        // Keys in the environment win.
        f.set("AWS_ACCESS_KEY_ID", "AKIDENV")
            .set("AWS_SECRET_ACCESS_KEY", "s");
        assert!(f.resolve(None).unwrap().web_identity.is_none());
        f.unset("AWS_ACCESS_KEY_ID").unset("AWS_SECRET_ACCESS_KEY");
        // Half a pair is named.
        f.unset("AWS_ROLE_ARN");
        assert!(f.error(None).contains("AWS_ROLE_ARN"));
        f.unset("AWS_WEB_IDENTITY_TOKEN_FILE");
        // From the profile.
        f.config(
            "[profile pod]\nrole_arn = arn:aws:iam::123456789012:role/r\nweb_identity_token_file = /t\n\
             [profile half]\nweb_identity_token_file = /t\n",
        );
        let r = f.resolve(Some("pod")).unwrap();
        assert_eq!(r.web_identity.unwrap().token_file, PathBuf::from("/t"));
        assert!(f.error(Some("half")).contains("role_arn"));
    }

    /// The container provider comes after the files, and a plain-http URI must stay on the host
    /// (https://docs.aws.amazon.com/sdkref/latest/guide/feature-container-credentials.html).
    #[test]
    fn container_credentials_come_last_and_stay_on_the_host() {
        let mut f = Fixture::new();
        f.set(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "http://127.0.0.1:9000/_keyhole/credentials",
        )
        .set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer secret-token");
        let r = f.resolve(None).unwrap();
        let c = r.container.as_ref().unwrap();
        assert_eq!(c.uri, "http://127.0.0.1:9000/_keyhole/credentials");
        assert_eq!(c.token.as_deref(), Some("Bearer secret-token"));
        assert!(!format!("{r:?}").contains("secret-token"));
        for ok in [
            "http://[::1]:80/c",
            "http://localhost/c",
            "https://creds.example/c",
        ] {
            f.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", ok);
            assert!(f.resolve(None).unwrap().container.is_some(), "{ok}");
        }
        for bad in ["http://10.0.0.5/c", "http://evil.example/c", "ftp://x/c"] {
            f.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", bad);
            assert!(f.error(None).contains("container credentials"), "{bad}");
        }
        f.unset("AWS_CONTAINER_CREDENTIALS_FULL_URI").set(
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "/v2/credentials/x",
        );
        assert_eq!(
            f.resolve(None).unwrap().container.unwrap().uri,
            "http://169.254.170.2/v2/credentials/x"
        );
        // Keys in the shared credentials file come first.
        f.credentials(CREDENTIALS);
        assert!(f.resolve(None).unwrap().container.is_none());
    }

    #[test]
    fn debug_hides_the_secret_and_the_token() {
        let mut f = Fixture::new();
        f.set("AWS_ACCESS_KEY_ID", "AKIDVISIBLE")
            .set("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-secret")
            .set("AWS_SESSION_TOKEN", "FwoGZXIvYXdzE-token");
        let r = f.resolve(None).unwrap();
        for shown in [format!("{r:?}"), format!("{r:#?}")] {
            assert!(shown.contains("AKIDVISIBLE"), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
            assert!(!shown.contains("wJalrXUtnFEMI-secret"), "{shown}");
            assert!(!shown.contains("FwoGZXIvYXdzE-token"), "{shown}");
        }
    }
}
