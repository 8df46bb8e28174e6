//! `keyhole job plan|start|list|show|finish|report`, `keyhole run` and `keyhole credentials`
//! (DESIGN.md section 6).
//!
//! `job plan` works offline. The other commands call the gateway's keyhole API (SigV4 service
//! `keyhole`), found from `--endpoint` / `KEYHOLE_ENDPOINT` (else `AWS_ENDPOINT_URL` or the
//! profile's `endpoint_url`, else http://127.0.0.1:9000) and signed with the caller's AWS
//! credentials from the standard chain (environment, web identity, shared credentials file,
//! profile).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use http::{HeaderMap, HeaderValue, Method};
use keyhole_server::client::{read_body, Client};
use keyhole_server::jobs::spec::{self, JobSpec, TrustFor};
use miette::{miette, IntoDiagnostic, WrapErr};
use serde_json::{json, Value};

use crate::aws_chain;

/// The gateway `keyhole serve` listens on by default.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:9000";

/// `keyhole job ...`
#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Show the policy a spec compiles to, one line per grant, without contacting the gateway.
    ///
    /// Examples:
    ///   keyhole job plan job.toml
    ///   keyhole job plan --name ft-42 --read s3://datasets/wiki/ --write s3://models/ft-42/ --for 3h
    ///   keyhole job plan job.toml --export aws --trust sagemaker --out-dir ./aws-policy
    #[command(verbatim_doc_comment)]
    Plan {
        /// Job spec file (TOML); same as --spec.
        #[arg(value_name = "SPEC")]
        spec_file: Option<PathBuf>,
        /// The job spec.
        #[command(flatten)]
        spec: SpecArgs,
        /// Print the policy JSON instead of the plain-words plan.
        #[arg(long)]
        json: bool,
        /// Export AWS-ready JSON: the permissions policy and a trust policy.
        #[arg(long, value_enum)]
        export: Option<Export>,
        /// Who may assume the exported role: sagemaker, ec2, or a principal ARN.
        #[arg(long, default_value = "sagemaker", value_name = "sagemaker|ec2|ARN")]
        trust: String,
        /// Write permissions-policy.json and trust-policy.json here instead of printing them.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Start a job: the gateway checks the spec, stores the job and issues its first credentials.
    ///
    /// Examples:
    ///   keyhole job start job.toml
    ///   eval "$(keyhole job start job.toml --output env)"     # a Slurm prolog, say
    #[command(verbatim_doc_comment)]
    Start {
        /// Job spec file (TOML); same as --spec.
        #[arg(value_name = "SPEC")]
        spec_file: Option<PathBuf>,
        /// The job spec.
        #[command(flatten)]
        spec: SpecArgs,
        /// The gateway and the caller's credentials.
        #[command(flatten)]
        conn: ConnArgs,
        /// What to print: a summary, shell `export` lines for the job, or the API's JSON
        /// (the last two carry secrets).
        #[arg(long, value_enum, default_value_t = StartOutput::Text)]
        output: StartOutput,
        /// How `--output env` hands credentials over (see `keyhole run --help`).
        #[arg(long, value_enum, default_value_t = Delivery::Auto)]
        credentials: Delivery,
    },
    /// List jobs, newest first.
    List {
        /// The gateway and the caller's credentials.
        #[command(flatten)]
        conn: ConnArgs,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show one job: state, window, locations, source and policy.
    Show {
        /// The job id (from `keyhole job start` or `keyhole job list`).
        id: String,
        /// The gateway and the caller's credentials.
        #[command(flatten)]
        conn: ConnArgs,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Finish a job: every credential it issued stops working at once.
    Finish {
        /// The job id.
        id: String,
        /// The gateway and the caller's credentials.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// The job's access report, from the audit trail (with several nodes on PostgreSQL, from
    /// every node's records): objects and bytes read and written per location, denied
    /// attempts, grants never used, the minimal policy that would have sufficed, and the nodes
    /// covered (saying so when one had not caught up).
    Report {
        /// The job id.
        id: String,
        /// The gateway and the caller's credentials.
        #[command(flatten)]
        conn: ConnArgs,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

/// Export formats of `job plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Export {
    /// AWS IAM: a permissions policy and a trust policy, pasteable into AWS unchanged.
    Aws,
}

/// What `job start` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StartOutput {
    /// The job id and plan (no secrets).
    Text,
    /// `export AWS_...=...` lines for the job's environment.
    Env,
    /// The keyhole API response (job, credentials, credentials token).
    Json,
}

/// How a job receives its credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Delivery {
    /// `endpoint` when the gateway is on a loopback address or HTTPS (where SDKs accept a
    /// container-credentials URL), else `env`; also `env` for an HTTPS gateway trusted through
    /// AWS_CA_BUNDLE / `ca_bundle`, since SDKs such as boto3 fetch container credentials without
    /// that bundle.
    Auto,
    /// AWS_CONTAINER_CREDENTIALS_FULL_URI + AWS_CONTAINER_AUTHORIZATION_TOKEN: SDKs fetch and
    /// refresh short sessions by themselves until the job ends.
    Endpoint,
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN: one session, which lasts
    /// the gateway's job session lifetime (or the window, if shorter).
    Env,
}

/// A job spec from a TOML file and/or flags (flags replace the file's values).
#[derive(Debug, Clone, Args)]
pub struct SpecArgs {
    /// Job spec file (TOML: name, read, write, start, duration or end, source_ip, role, labels).
    #[arg(long = "spec", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Job name (letters, digits, `-`, `_`, `.`).
    #[arg(long)]
    pub name: Option<String>,
    /// A location the job reads: s3://BUCKET or s3://BUCKET/PREFIX/ (repeatable).
    #[arg(long, value_name = "S3_URL")]
    pub read: Vec<String>,
    /// A location the job writes, never reads or deletes (repeatable).
    #[arg(long, value_name = "S3_URL")]
    pub write: Vec<String>,
    /// Start of the window, RFC 3339 [default: now].
    #[arg(long, value_name = "TIME")]
    pub start: Option<String>,
    /// Length of the window: 45m, 3h, 1h30m, 2d.
    #[arg(long = "for", visible_alias = "duration", value_name = "DURATION")]
    pub duration: Option<String>,
    /// End of the window, RFC 3339 (instead of --for).
    #[arg(long, value_name = "TIME")]
    pub end: Option<String>,
    /// Source address or CIDR the job may connect from (repeatable) [default: the address that
    /// starts the job].
    #[arg(long = "source-ip", value_name = "CIDR")]
    pub source_ip: Vec<String>,
    /// Cap the job with a role: it gets the role's policies intersected with the job policy.
    #[arg(long)]
    pub role: Option<String>,
    /// A label KEY=VALUE (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
}

/// Where the gateway is and who is calling.
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    /// The gateway's URL [default: AWS_ENDPOINT_URL or the profile's endpoint_url, else
    /// http://127.0.0.1:9000].
    #[arg(long, env = "KEYHOLE_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,
    /// The AWS profile whose credentials sign the calls [default: the standard chain:
    /// environment keys, web identity (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE), then
    /// AWS_PROFILE or `default` (keys, credential_process, or role_arn +
    /// web_identity_token_file)].
    #[arg(long)]
    pub profile: Option<String>,
    /// Region to sign for [default: AWS_REGION, the profile's region, else us-east-1].
    #[arg(long)]
    pub region: Option<String>,
}

impl SpecArgs {
    /// The spec: the file's, with every given flag replacing its field.
    pub fn spec(&self, positional: Option<&PathBuf>) -> miette::Result<JobSpec> {
        let file = positional.or(self.file.as_ref());
        let mut s = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .into_diagnostic()
                    .wrap_err_with(|| format!("cannot read the job spec {}", path.display()))?;
                JobSpec::from_toml(&text).map_err(|e| {
                    miette!(
                        "{}: {}",
                        path.display(),
                        keyhole_server::audit::query::terminal_safe(&e.to_string())
                    )
                })?
            }
            None => JobSpec::default(),
        };
        if let Some(n) = &self.name {
            s.name.clone_from(n);
        }
        if !self.read.is_empty() {
            s.read.clone_from(&self.read);
        }
        if !self.write.is_empty() {
            s.write.clone_from(&self.write);
        }
        if self.start.is_some() {
            s.start.clone_from(&self.start);
        }
        if self.duration.is_some() {
            s.duration.clone_from(&self.duration);
            s.end = None;
        }
        if self.end.is_some() {
            s.end.clone_from(&self.end);
            if self.duration.is_none() {
                s.duration = None;
            }
        }
        if !self.source_ip.is_empty() {
            s.source_ip.clone_from(&self.source_ip);
        }
        if self.role.is_some() {
            s.role.clone_from(&self.role);
        }
        for l in &self.label {
            let (k, v) = l
                .split_once('=')
                .ok_or_else(|| miette!("--label `{l}` must be KEY=VALUE"))?;
            s.labels.insert(k.to_owned(), v.to_owned());
        }
        Ok(s)
    }
}

/// A signed connection to the keyhole API.
pub struct Api {
    client: Client,
    access_key_id: String,
    endpoint: String,
    region: String,
    source: String,
    /// Extra certificates trusted for an https endpoint (`AWS_CA_BUNDLE` or the profile's
    /// `ca_bundle`), passed on to jobs so their SDKs trust the gateway too.
    ca_bundle: Option<std::path::PathBuf>,
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Api {
    /// Finds the gateway and the caller's credentials.
    pub fn connect(conn: &ConnArgs) -> miette::Result<Api> {
        let resolved =
            aws_chain::resolve(conn.profile.as_deref(), &env_var).map_err(|e| miette!("{e}"))?;
        let endpoint = conn
            .endpoint
            .clone()
            .or_else(|| resolved.endpoint_url.clone())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(miette!(
                "--endpoint `{endpoint}` must be an http:// or https:// URL, e.g. http://127.0.0.1:9000"
            ));
        }
        let region = conn
            .region
            .clone()
            .or_else(|| resolved.region.clone())
            .unwrap_or_else(|| "us-east-1".to_owned());
        let ca_bundle = resolved
            .ca_bundle
            .clone()
            .map(|p| std::path::absolute(&p).unwrap_or(p));
        // The gateway is also the STS that exchanges a web identity token.
        let credentials =
            crate::exchange::credentials(&resolved, &endpoint, &region, ca_bundle.as_deref())
                .map_err(|e| miette!("{e}"))?;
        let access_key_id = credentials.access_key_id.clone();
        let client = Client::with_ca_bundle(&endpoint, credentials, &region, ca_bundle.as_deref())
            .map_err(|e| miette!("{e}"))?
            .with_service("keyhole");
        Ok(Api {
            access_key_id,
            client,
            ca_bundle,
            endpoint,
            region,
            source: resolved.source.clone(),
        })
    }

    /// Calls an IAM Query action (`Action=...&Version=2010-05-08&...`, signed for service `iam`).
    pub async fn call_iam(&self, action: &str, params: &[(&str, &str)]) -> miette::Result<String> {
        self.call_query("iam", "2010-05-08", action, params).await
    }

    /// The account id of the caller's credentials (STS GetCallerIdentity).
    pub async fn account_id(&self) -> miette::Result<String> {
        let xml = self
            .call_query("sts", "2011-06-15", "GetCallerIdentity", &[])
            .await?;
        xml_field(&xml, "Account")
            .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_owned)
            .ok_or_else(|| miette!("GetCallerIdentity: no 12-digit <Account> in the answer"))
    }

    /// Sends an S3 Control request for `account_id` (`x-amz-account-id`, signed for service
    /// `s3`, as aws-cli signs `s3control`) to the gateway itself: no `ACCOUNT.HOST` name is
    /// needed. Returns the status and the body.
    pub async fn s3_control(
        &self,
        method: Method,
        path: &str,
        account_id: &str,
        body: String,
    ) -> miette::Result<(http::StatusCode, String)> {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-amz-account-id",
            HeaderValue::from_str(account_id).into_diagnostic()?,
        );
        let resp = self
            .client
            .clone()
            .with_service("s3")
            .send(method, path, headers, body.into())
            .await
            .map_err(|e| miette!("cannot reach the gateway at {}: {e}", self.endpoint))?;
        let status = resp.status();
        let bytes = read_body(resp).await.map_err(|e| miette!("{e}"))?;
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Calls an AWS Query action of `service` (`Action=...&Version=...&...`).
    async fn call_query(
        &self,
        service: &str,
        version: &str,
        action: &str,
        params: &[(&str, &str)],
    ) -> miette::Result<String> {
        let mut form = format!("Action={action}&Version={version}");
        for (k, v) in params {
            form.push_str(&format!("&{k}={}", form_encode(v)));
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        let resp = self
            .client
            .clone()
            .with_service(service)
            .send(Method::POST, "/", headers, form.into())
            .await
            .map_err(|e| {
                miette!(
                    "{action}: cannot reach the gateway at {}: {e}",
                    self.endpoint
                )
            })?;
        let status = resp.status();
        let body = read_body(resp)
            .await
            .map_err(|e| miette!("{action}: {e}"))?;
        let text = String::from_utf8_lossy(&body).into_owned();
        if !status.is_success() {
            return Err(miette!(
                "{action} failed ({status}): {}: {} [signed as {}]",
                xml_field(&text, "Code").unwrap_or(""),
                xml_field(&text, "Message").unwrap_or(""),
                self.access_key_id
            ));
        }
        Ok(text)
    }

    /// The access key id that signs the calls.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// Calls `Keyhole.ACTION` with a JSON body; an error names the action, code and message.
    pub async fn call(&self, action: &str, body: &Value) -> miette::Result<Value> {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-amz-target",
            HeaderValue::from_str(&format!("Keyhole.{action}")).into_diagnostic()?,
        );
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        let resp = self
            .client
            .send(Method::POST, "/", headers, body.to_string().into())
            .await
            .map_err(|e| {
                miette!(
                    "{action}: cannot reach the gateway at {}: {e} (is `keyhole serve` running? set --endpoint or KEYHOLE_ENDPOINT)",
                    self.endpoint
                )
            })?;
        let status = resp.status();
        let bytes = read_body(resp)
            .await
            .map_err(|e| miette!("{action}: {e}"))?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or_else(
            |_| json!({"__type": "Unknown", "message": String::from_utf8_lossy(&bytes)}),
        );
        if !status.is_success() {
            let code = value
                .get("__type")
                .and_then(Value::as_str)
                .unwrap_or("Error");
            let message = value
                .get("message")
                .or_else(|| value.get("Message"))
                .and_then(Value::as_str)
                .unwrap_or("");
            // What the gateway echoes back may hold what a spec's author wrote (escape
            // sequences in a name or a tag): escaped for the terminal (review 36, F4).
            let safe = keyhole_server::audit::query::terminal_safe;
            return Err(miette!(
                "{action} failed ({status}): {}: {} [signed as {} from {}]",
                safe(code),
                safe(message),
                self.access_key_id,
                self.source
            ));
        }
        Ok(value)
    }
}

/// The text of the first `<tag>` element of an AWS XML answer (no nesting inside it).
pub fn xml_field<'a>(text: &'a str, tag: &str) -> Option<&'a str> {
    text.split(&format!("<{tag}>"))
        .nth(1)
        .and_then(|r| r.split(&format!("</{tag}>")).next())
}

/// `application/x-www-form-urlencoded` value encoding (RFC 3986 unreserved characters kept).
pub fn form_encode(v: &str) -> String {
    keyhole_server::client::encode_unreserved(v)
}

/// `keyhole admin ...`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Revoke one session (its ASIA... access key id) at once: every later request with it is
    /// refused with InvalidToken. Needs keyhole:RevokeSession.
    ///
    /// Example:
    ///   keyhole admin revoke-session ASIAEXAMPLE1234567
    #[command(verbatim_doc_comment)]
    RevokeSession {
        /// The session's access key id.
        access_key_id: String,
        /// The gateway and the caller's credentials.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Show or change the account's Block Public Access settings (S3 Control
    /// Get/PutPublicAccessBlock through the gateway, no ACCOUNT.HOST name needed).
    ///
    /// Examples:
    ///   keyhole admin public-access-block get
    ///   keyhole admin public-access-block put --block-public-policy false
    #[command(verbatim_doc_comment)]
    PublicAccessBlock {
        /// get or put.
        #[command(subcommand)]
        command: crate::pab_cmd::PabCommand,
    },
    /// Revoke every session of a role issued before a time (default: now), the way AWS does it:
    /// an inline role policy `AWSRevokeOlderSessions` that denies everything when
    /// aws:TokenIssueTime is earlier. Sessions issued later are not affected. Needs
    /// iam:PutRolePolicy on the role.
    ///
    /// Example:
    ///   keyhole admin revoke-role-sessions training-job
    #[command(verbatim_doc_comment)]
    RevokeRoleSessions {
        /// The role name.
        role: String,
        /// Revoke sessions issued before this time (RFC 3339) [default: now].
        #[arg(long, value_name = "TIME")]
        before: Option<String>,
        /// The gateway and the caller's credentials.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Key hygiene: every IAM user's access keys with status, creation time, age in days and
    /// last use (time, service and region of the last request signed with the key, as IAM's
    /// GetAccessKeyLastUsed reports it). With --max-age-days, active keys at least that old
    /// are flagged and the exit status is 3 while any remains active, so a cron job or CI step
    /// can alert; --enforce deactivates them (UpdateAccessKey Inactive) and says so, one line
    /// per key. Needs iam:ListUsers, iam:ListAccessKeys and iam:GetAccessKeyLastUsed (and
    /// iam:UpdateAccessKey for --enforce). The root user's key is not listed (see
    /// `aws iam get-credential-report`).
    ///
    /// Examples:
    ///   keyhole admin keys
    ///   keyhole admin keys --max-age-days 90
    ///   keyhole admin keys --max-age-days 90 --enforce
    ///   keyhole admin keys --json
    #[command(verbatim_doc_comment)]
    Keys(crate::keys_cmd::KeysArgs),
}

/// The policy AWS's console attaches to revoke a role's older sessions
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_revoke-sessions.html).
pub fn revoke_older_sessions_policy(before: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Deny",
            "Action": ["*"],
            "Resource": ["*"],
            "Condition": {"DateLessThan": {"aws:TokenIssueTime": before}},
        }]
    })
}

/// Runs `keyhole admin ...`.
pub fn admin(cmd: AdminCommand) -> miette::Result<ExitCode> {
    match cmd {
        AdminCommand::PublicAccessBlock { command } => {
            return runtime()?.block_on(crate::pab_cmd::run(command));
        }
        AdminCommand::Keys(args) => {
            return runtime()?.block_on(crate::keys_cmd::run(args));
        }
        AdminCommand::RevokeSession {
            access_key_id,
            conn,
        } => {
            let api = Api::connect(&conn)?;
            runtime()?
                .block_on(api.call("RevokeSession", &json!({"AccessKeyId": access_key_id})))?;
            println!("session {access_key_id} revoked: its requests are refused from now on");
        }
        AdminCommand::RevokeRoleSessions { role, before, conn } => {
            let before = match before {
                Some(t) => chrono::DateTime::parse_from_rfc3339(&t)
                    .map_err(|_| {
                        miette!("--before `{t}` is not an RFC 3339 time, e.g. 2026-01-01T12:00:00Z")
                    })?
                    .with_timezone(&chrono::Utc),
                None => chrono::Utc::now(),
            };
            let before = spec::rfc3339(before);
            let api = Api::connect(&conn)?;
            let doc = revoke_older_sessions_policy(&before).to_string();
            runtime()?.block_on(api.call_iam(
                "PutRolePolicy",
                &[
                    ("RoleName", &role),
                    ("PolicyName", "AWSRevokeOlderSessions"),
                    ("PolicyDocument", &doc),
                ],
            ))?;
            println!(
                "sessions of role {role} issued before {before} are refused from now on (inline policy AWSRevokeOlderSessions)"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn runtime() -> miette::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .into_diagnostic()
}

/// `v[k]` without clippy's indexing lint: `Null` when absent.
/// The member `k` of `v`, `null` when absent (report renderers read answers with it).
pub(crate) fn at<'a>(v: &'a Value, k: &str) -> &'a Value {
    v.get(k).unwrap_or(&Value::Null)
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn join(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// A job in plain words.
fn describe_job(j: &Value) -> String {
    let mut out = format!(
        "job {} ({})\n  state   {}\n  window  {} .. {}\n",
        str_of(j, "JobId"),
        str_of(j, "Name"),
        str_of(j, "State"),
        str_of(j, "Start"),
        str_of(j, "End")
    );
    for (label, key) in [("read", "Read"), ("write", "Write"), ("from", "SourceIp")] {
        let v = join(j, key);
        if !v.is_empty() {
            out.push_str(&format!("  {label:<7} {v}\n"));
        }
    }
    if let Some(r) = j.get("Role").and_then(Value::as_str) {
        out.push_str(&format!("  role    {r}\n"));
    }
    match j.get("CreatorId").and_then(Value::as_str) {
        Some(id) => out.push_str(&format!("  by      {} ({id})\n", str_of(j, "CreatedBy"))),
        None => out.push_str(&format!("  by      {}\n", str_of(j, "CreatedBy"))),
    }
    if let Some(f) = j.get("FinishedAt").and_then(Value::as_str) {
        out.push_str(&format!("  ended   {f} by {}\n", str_of(j, "FinishedBy")));
    }
    out
}

/// The report in plain words.
pub fn render_report(r: &Value) -> String {
    // What the principal chose (keys, session names, reasons) is escaped for the terminal;
    // the minimal policy is printed as JSON, which escapes it.
    let r = &keyhole_server::audit::query::terminal_safe_value(r, &["minimalPolicy"]);
    let mut out = format!(
        "access report for job {} ({}): {} requests, {} sessions, {} credential refreshes\n",
        str_of(r, "jobId"),
        str_of(r, "state"),
        at(r, "requests"),
        at(r, "sessions"),
        at(r, "credentialRefreshes")
    );
    // Which nodes' requests it covers, and, with several nodes, whether every one caught up.
    let per_node: Vec<String> = r["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| format!("{} ({} requests)", str_of(n, "node"), at(n, "requests")))
        .collect();
    if !per_node.is_empty() {
        out.push_str(&format!("nodes: {}\n", per_node.join(", ")));
    }
    if r["complete"] == Value::Bool(false) {
        out.push_str("INCOMPLETE: some nodes had not recorded all their requests in time\n");
        for m in r["incomplete"].as_array().into_iter().flatten() {
            out.push_str(&format!("  {}\n", str_of(m, "reason")));
        }
    }
    let section = |out: &mut String, title: &str, key: &str, verb: &str| {
        out.push_str(&format!("{title}\n"));
        for l in r[key].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  {:<50} {} objects {verb}, {} bytes, {} requests\n",
                str_of(l, "location"),
                at(l, "objects"),
                at(l, "bytes"),
                at(l, "requests")
            ));
        }
    };
    section(&mut out, "read", "read", "read");
    section(&mut out, "written", "written", "written");
    let denied = &at(r, "denied");
    out.push_str(&format!("denied: {}\n", at(denied, "count")));
    for d in at(denied, "attempts").as_array().into_iter().flatten() {
        // S3 requests name their object; refused credential fetches their source address.
        let target = if str_of(d, "bucket").is_empty() {
            format!("from {}", str_of(d, "sourceIp"))
        } else {
            format!("s3://{}/{}", str_of(d, "bucket"), str_of(d, "key"))
        };
        out.push_str(&format!(
            "  {} {} {target}: {}\n",
            str_of(d, "time"),
            str_of(d, "operation"),
            str_of(d, "reason")
        ));
    }
    let unused = at(r, "unusedGrants")
        .as_array()
        .cloned()
        .unwrap_or_default();
    if unused.is_empty() {
        out.push_str("every grant was used\n");
    } else {
        out.push_str("grants never used\n");
        for u in &unused {
            out.push_str(&format!("  {}: {}\n", str_of(u, "sid"), str_of(u, "grant")));
        }
    }
    let policy = at(r, "minimalPolicy");
    if policy["Statement"].as_array().is_some_and(Vec::is_empty) {
        // An empty Statement is no IAM policy: say what it means instead (a jobs sweep, L5).
        out.push_str("minimal policy: none; the job used nothing, so it needed no grant\n");
        return out;
    }
    out.push_str("minimal policy that would have sufficed\n");
    let pretty = serde_json::to_string_pretty(&policy).unwrap_or_default();
    for line in pretty.lines() {
        out.push_str(&format!("  {line}\n"));
    }
    out
}

fn is_loopback_or_https(endpoint: &str) -> bool {
    if endpoint.starts_with("https://") {
        return true;
    }
    let rest = endpoint.trim_start_matches("http://");
    let host = rest.split('/').next().unwrap_or("");
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The environment a job gets: its endpoint, region and credentials, and nothing of the
/// caller's AWS configuration.
fn job_env(api: &Api, created: &Value, delivery: Delivery) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let private_tls = api.ca_bundle.is_some() && api.endpoint.starts_with("https://");
    let delivery = match delivery {
        // botocore fetches container credentials with its own default CA bundle, not
        // AWS_CA_BUNDLE: behind a privately signed certificate the endpoint cannot be reached.
        Delivery::Auto if private_tls => Delivery::Env,
        Delivery::Auto if is_loopback_or_https(&api.endpoint) => Delivery::Endpoint,
        Delivery::Auto => Delivery::Env,
        d => d,
    };
    env.insert("AWS_ENDPOINT_URL".into(), api.endpoint.clone());
    env.insert("AWS_REGION".into(), api.region.clone());
    env.insert("AWS_DEFAULT_REGION".into(), api.region.clone());
    // No profile files and no instance metadata: the job sees only its own credentials.
    env.insert("AWS_CONFIG_FILE".into(), "/dev/null".into());
    env.insert("AWS_SHARED_CREDENTIALS_FILE".into(), "/dev/null".into());
    env.insert("AWS_EC2_METADATA_DISABLED".into(), "true".into());
    // An https gateway with a private certificate: the job's SDK must trust it as the caller
    // did (the one piece of the caller's AWS configuration a job keeps).
    if let Some(bundle) = &api.ca_bundle {
        env.insert(
            "AWS_CA_BUNDLE".into(),
            bundle.to_string_lossy().into_owned(),
        );
    }
    env.insert(
        "KEYHOLE_JOB_ID".into(),
        str_of(at(created, "Job"), "JobId").to_owned(),
    );
    match delivery {
        Delivery::Endpoint | Delivery::Auto => {
            env.insert(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI".into(),
                format!("{}{}", api.endpoint, keyhole_server::jobs::CREDENTIALS_PATH),
            );
            env.insert(
                "AWS_CONTAINER_AUTHORIZATION_TOKEN".into(),
                str_of(created, "CredentialsToken").to_owned(),
            );
        }
        Delivery::Env => {
            let c = &at(created, "Credentials");
            env.insert(
                "AWS_ACCESS_KEY_ID".into(),
                str_of(c, "AccessKeyId").to_owned(),
            );
            env.insert(
                "AWS_SECRET_ACCESS_KEY".into(),
                str_of(c, "SecretAccessKey").to_owned(),
            );
            env.insert(
                "AWS_SESSION_TOKEN".into(),
                str_of(c, "SessionToken").to_owned(),
            );
        }
    }
    env
}

fn shell_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "'\\''"))
}

/// Runs `keyhole job ...`.
pub fn run(cmd: JobCommand) -> miette::Result<ExitCode> {
    match cmd {
        JobCommand::Plan {
            spec_file,
            spec,
            json,
            export,
            trust,
            out_dir,
        } => plan(&spec, spec_file.as_ref(), json, export, &trust, out_dir),
        JobCommand::Start {
            spec_file,
            spec,
            conn,
            output,
            credentials,
        } => {
            let s = spec.spec(spec_file.as_ref())?;
            let api = Api::connect(&conn)?;
            let created = runtime()?
                .block_on(api.call("CreateJob", &serde_json::to_value(&s).into_diagnostic()?))?;
            match output {
                StartOutput::Json => println!("{created}"),
                StartOutput::Env => {
                    for (k, v) in job_env(&api, &created, credentials) {
                        println!("export {k}={}", shell_quote(&v));
                    }
                }
                StartOutput::Text => {
                    print!("{}", describe_job(at(&created, "Job")));
                    println!(
                        "credentials: keyhole job start --output env|json prints them (or use keyhole run)"
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::List { conn, json } => {
            let api = Api::connect(&conn)?;
            let out = runtime()?.block_on(api.call("ListJobs", &json!({})))?;
            if json {
                println!("{out}");
            } else {
                println!(
                    "{:<40} {:<9} {:<21} {:<21} CREATED BY",
                    "JOB", "STATE", "START", "END"
                );
                for j in at(&out, "Jobs").as_array().into_iter().flatten() {
                    println!(
                        "{:<40} {:<9} {:<21} {:<21} {}",
                        str_of(j, "JobId"),
                        str_of(j, "State"),
                        str_of(j, "Start"),
                        str_of(j, "End"),
                        str_of(j, "CreatedBy")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Show { id, conn, json } => {
            let api = Api::connect(&conn)?;
            let out = runtime()?.block_on(api.call("GetJob", &json!({"JobId": id})))?;
            if json {
                println!("{out}");
            } else {
                print!("{}", describe_job(at(&out, "Job")));
            }
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Finish { id, conn } => {
            let api = Api::connect(&conn)?;
            let out = runtime()?.block_on(api.call("FinishJob", &json!({"JobId": id})))?;
            println!(
                "job {} finished at {}: its credentials no longer work",
                str_of(at(&out, "Job"), "JobId"),
                str_of(at(&out, "Job"), "FinishedAt")
            );
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Report { id, conn, json } => {
            let api = Api::connect(&conn)?;
            let out = runtime()?.block_on(api.call("GetJobReport", &json!({"JobId": id})))?;
            if json {
                println!("{}", at(&out, "Report"));
            } else {
                print!("{}", render_report(at(&out, "Report")));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn plan(
    spec_args: &SpecArgs,
    spec_file: Option<&PathBuf>,
    json: bool,
    export: Option<Export>,
    trust: &str,
    out_dir: Option<PathBuf>,
) -> miette::Result<ExitCode> {
    let s = spec_args.spec(spec_file)?;
    let job = s.resolve(chrono::Utc::now(), None).map_err(|e| {
        miette!(
            "{}",
            keyhole_server::audit::query::terminal_safe(&e.to_string())
        )
    })?;
    let policy = serde_json::to_string_pretty(&job.policy()).into_diagnostic()?;
    match export {
        None if json => println!("{policy}"),
        None => print!("{}", job.describe()),
        Some(Export::Aws) => {
            let trust = TrustFor::parse(trust).map_err(|e| miette!("{e}"))?;
            let trust_doc =
                serde_json::to_string_pretty(&trust.trust_policy()).into_diagnostic()?;
            match out_dir {
                Some(dir) => {
                    std::fs::create_dir_all(&dir).into_diagnostic()?;
                    let p = dir.join("permissions-policy.json");
                    let t = dir.join("trust-policy.json");
                    std::fs::write(&p, format!("{policy}\n")).into_diagnostic()?;
                    std::fs::write(&t, format!("{trust_doc}\n")).into_diagnostic()?;
                    println!("wrote {} and {}", p.display(), t.display());
                    println!(
                        "in AWS: aws iam create-role --role-name {name} --assume-role-policy-document file://{t}\n        aws iam put-role-policy --role-name {name} --policy-name {name} --policy-document file://{p}",
                        name = job.name,
                        t = t.display(),
                        p = p.display()
                    );
                }
                None => {
                    println!(
                        "# permissions policy (aws iam put-role-policy --policy-document ...)"
                    );
                    println!("{policy}");
                    println!(
                        "# trust policy (aws iam create-role --assume-role-policy-document ...)"
                    );
                    println!("{trust_doc}");
                }
            }
            if job.source_ip.is_empty() {
                eprintln!(
                    "note: no source_ip in the spec, so the exported policy has no aws:SourceIp condition; add --source-ip to pin it"
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `keyhole credentials`: prints a job's credentials in `credential_process` format.
#[derive(Debug, Args)]
pub struct CredentialsArgs {
    /// The job id (checked against the token).
    #[arg(long)]
    pub job: String,
    /// The job's credentials token [default: KEYHOLE_JOB_TOKEN, else
    /// AWS_CONTAINER_AUTHORIZATION_TOKEN].
    #[arg(long, env = "KEYHOLE_JOB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The gateway's URL [default: KEYHOLE_ENDPOINT, AWS_ENDPOINT_URL, else http://127.0.0.1:9000].
    #[arg(long, env = "KEYHOLE_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,
}

/// Runs `keyhole credentials`.
pub fn credentials(args: CredentialsArgs) -> miette::Result<ExitCode> {
    let token = args
        .token
        .or_else(|| env_var("AWS_CONTAINER_AUTHORIZATION_TOKEN"))
        .ok_or_else(|| {
            miette!("no job token: pass --token or set KEYHOLE_JOB_TOKEN (keyhole job start --output json prints it as CredentialsToken)")
        })?;
    let expected_prefix = format!("kh1.{}.", args.job);
    if !token.starts_with(&expected_prefix) {
        return Err(miette!("the token is not job {}'s", args.job));
    }
    let endpoint = args
        .endpoint
        .or_else(|| env_var("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
    let endpoint = endpoint.trim_end_matches('/').to_owned();
    let value = runtime()?.block_on(async {
        let ca_bundle = env_var("AWS_CA_BUNDLE").map(std::path::PathBuf::from);
        let client = Client::with_ca_bundle(
            &endpoint,
            keyhole_sigv4::Credentials {
                access_key_id: String::new(),
                secret_key: keyhole_sigv4::SecretKey::new(String::new()),
                session_token: None,
            },
            "us-east-1",
            ca_bundle.as_deref(),
        )
        .map_err(|e| miette!("{e}"))?;
        let uri: http::Uri = format!("{endpoint}{}", keyhole_server::jobs::CREDENTIALS_PATH)
            .parse()
            .into_diagnostic()?;
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&token).into_diagnostic()?,
        );
        let resp = client
            .dispatch(Method::GET, uri, headers, keyhole_server::body::empty())
            .await
            .map_err(|e| miette!("cannot reach the gateway at {endpoint}: {e}"))?;
        let status = resp.status();
        let bytes = read_body(resp).await.map_err(|e| miette!("{e}"))?;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(miette!(
                "the gateway refused job {}'s credentials ({status}): {}",
                args.job,
                str_of(&v, "message")
            ));
        }
        Ok(v)
    })?;
    // https://docs.aws.amazon.com/sdkref/latest/guide/feature-process-credentials.html
    println!(
        "{}",
        json!({
            "Version": 1,
            "AccessKeyId": at(&value, "AccessKeyId"),
            "SecretAccessKey": at(&value, "SecretAccessKey"),
            "SessionToken": at(&value, "Token"),
            "Expiration": at(&value, "Expiration"),
        })
    );
    Ok(ExitCode::SUCCESS)
}

/// `keyhole run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The job spec (a default name `run-<time>` is used when none is given).
    #[command(flatten)]
    pub spec: SpecArgs,
    /// The gateway and the caller's credentials.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// How the command receives its credentials.
    #[arg(long, value_enum, default_value_t = Delivery::Auto)]
    pub credentials: Delivery,
    /// Also write the access report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub report_json: Option<PathBuf>,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Runs `keyhole run`: start the job, run CMD with its credentials, finish, report.
pub fn run_command(args: RunArgs) -> miette::Result<ExitCode> {
    let mut s = args.spec.spec(None)?;
    if s.name.is_empty() {
        s.name = format!("run-{}", chrono::Utc::now().format("%Y%m%d-%H%M%S"));
    }
    let api = Api::connect(&args.conn)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .into_diagnostic()?;
    let created =
        rt.block_on(api.call("CreateJob", &serde_json::to_value(&s).into_diagnostic()?))?;
    let job_id = str_of(at(&created, "Job"), "JobId").to_owned();
    eprintln!(
        "keyhole: job {job_id} started ({} .. {}, from {})",
        str_of(at(&created, "Job"), "Start"),
        str_of(at(&created, "Job"), "End"),
        join(at(&created, "Job"), "SourceIp")
    );
    if let Some(warning) = caller_outside_sources(&created) {
        eprintln!("keyhole: WARNING: {warning}");
    }
    let env = job_env(&api, &created, args.credentials);
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| miette!("give the command to run after `--`"))?;
    let mut command = tokio::process::Command::new(program);
    command.args(rest);
    // Nothing of the caller's AWS or keyhole configuration reaches the command: not its keys,
    // and not its keyhole variables either, which can hold another job's token
    // (KEYHOLE_JOB_TOKEN) or a state database's URL with its password (review 37, F2).
    for (k, _) in std::env::vars_os() {
        let name = k.to_string_lossy();
        if name.starts_with("AWS_") || name.starts_with("KEYHOLE_") {
            command.env_remove(&k);
        }
    }
    command.envs(&env);
    // When the window ends the job's credentials stop working: a command still running then
    // is told on stderr (once) rather than left to fail with AccessDenied it cannot explain.
    let window_end = str_of(at(&created, "Job"), "End").to_owned();
    let until_end = chrono::DateTime::parse_from_rfc3339(&window_end)
        .ok()
        .and_then(|end| {
            (end.with_timezone(&chrono::Utc) - chrono::Utc::now())
                .to_std()
                .ok()
        })
        .unwrap_or_default();
    let status = rt.block_on(async {
        // The handlers are in place before the command starts: a signal sent as soon as the
        // command runs is forwarded to it, never the default action that would kill keyhole and
        // leave the command running with the job unfinished.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .into_diagnostic()?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .into_diagnostic()?;
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .into_diagnostic()?;
        let mut child = command
            .spawn()
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot start `{program}`"))?;
        let pid = child.id();
        let window = tokio::time::sleep(until_end);
        tokio::pin!(window);
        let mut warned = false;
        loop {
            let sig = tokio::select! {
                status = child.wait() => return status.into_diagnostic(),
                _ = term.recv() => "TERM",
                _ = int.recv() => "INT",
                _ = hup.recv() => "HUP",
                () = &mut window, if !warned => {
                    warned = true;
                    eprintln!(
                        "keyhole: WARNING: job {job_id}'s window ended at {window_end} while `{program}` is still running: its credentials no longer work and its requests are refused. Give the next run a longer window (--for or --end)."
                    );
                    continue;
                }
            };
            // Forward the signal to the command (without unsafe code: through kill(1)).
            if let Some(pid) = pid {
                let _ = tokio::process::Command::new("kill")
                    .args(["-s", sig, &pid.to_string()])
                    .status()
                    .await;
            }
        }
    });
    let finished = rt.block_on(api.call("FinishJob", &json!({"JobId": job_id})));
    match &finished {
        Ok(_) => eprintln!("keyhole: job {job_id} finished; its credentials no longer work"),
        Err(e) => eprintln!(
            "keyhole: WARNING: could not finish job {job_id} ({e}); its credentials stay valid until its window ends. Run: keyhole job finish {job_id}"
        ),
    }
    match rt.block_on(api.call("GetJobReport", &json!({"JobId": job_id}))) {
        Ok(r) => {
            eprint!("{}", render_report(at(&r, "Report")));
            if let Some(path) = &args.report_json {
                std::fs::write(path, format!("{}\n", at(&r, "Report")))
                    .into_diagnostic()
                    .wrap_err_with(|| format!("cannot write {}", path.display()))?;
            }
        }
        Err(e) => eprintln!("keyhole: no access report: {e}"),
    }
    let status = status?;
    let code = match status.code() {
        Some(c) => c,
        None => {
            use std::os::unix::process::ExitStatusExt;
            128 + status.signal().unwrap_or(0)
        }
    };
    Ok(ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)))
}

/// When the address this machine reaches the gateway from (as the gateway saw the CreateJob
/// call) is outside the job's `source_ip`, the command `keyhole run` starts here will have
/// every request refused: says so before it starts, naming both.
fn caller_outside_sources(created: &Value) -> Option<String> {
    let caller: std::net::IpAddr = created.get("CallerIp")?.as_str()?.parse().ok()?;
    let sources: Vec<&str> = at(created, "Job")
        .get("SourceIp")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let inside = sources
        .iter()
        .any(|s| keyhole_policy::condition::ip::Cidr::parse(s).is_some_and(|c| c.contains(caller)));
    (!inside).then(|| {
        format!(
            "this machine reaches the gateway from {caller}, which the job's source_ip ({}) does not include: the command's requests will be refused. Add --source-ip {caller} (or leave source_ip out: it defaults to this address).",
            sources.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_warns_when_its_own_address_is_outside_source_ip() {
        let created = |caller: &str, sources: &[&str]| serde_json::json!({"Job": {"SourceIp": sources}, "CallerIp": caller});
        let w = caller_outside_sources(&created("127.0.0.1", &["10.0.0.0/8"]));
        assert!(
            w.as_deref()
                .is_some_and(|w| w.contains("127.0.0.1") && w.contains("10.0.0.0/8")),
            "{w:?}"
        );
        assert_eq!(
            caller_outside_sources(&created("127.0.0.1", &["127.0.0.0/8"])),
            None
        );
        assert_eq!(
            caller_outside_sources(&created("::1", &["10.0.0.1/32", "::1/128"])),
            None
        );
        // An older gateway that does not say where the call came from: no warning.
        assert_eq!(
            caller_outside_sources(&serde_json::json!({"Job": {"SourceIp": ["10.0.0.0/8"]}})),
            None
        );
    }

    /// A job that used nothing needed no grant: the report says so rather than printing a
    /// policy with an empty Statement, which IAM would refuse.
    #[test]
    fn a_report_of_a_job_that_used_nothing_shows_no_policy() {
        let r = serde_json::json!({
            "jobId": "j", "state": "finished", "requests": 0, "sessions": 0,
            "credentialRefreshes": 0, "read": [], "written": [], "unusedGrants": [],
            "denied": {"count": 0, "attempts": []},
            "minimalPolicy": {"Version": "2012-10-17", "Statement": []},
        });
        let text = render_report(&r);
        assert!(text.contains("minimal policy: none"), "{text}");
        assert!(!text.contains("\"Statement\""), "{text}");
    }

    #[test]
    fn loopback_and_https_endpoints_get_the_credential_endpoint() {
        for e in [
            "http://127.0.0.1:9000",
            "http://localhost:9000",
            "http://[::1]:9000",
            "https://gw.example.com",
            "http://127.0.0.5",
        ] {
            assert!(is_loopback_or_https(e), "{e}");
        }
        for e in ["http://10.0.0.5:9000", "http://gw.example.com:9000"] {
            assert!(!is_loopback_or_https(e), "{e}");
        }
    }

    #[test]
    fn flags_replace_the_files_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.toml");
        std::fs::write(
            &path,
            "name = \"a\"\nread = [\"s3://bucket-a/x/\"]\nduration = \"1h\"\n",
        )
        .unwrap();
        let args = SpecArgs {
            file: Some(path),
            name: None,
            read: vec![],
            write: vec!["s3://bucket-b/out/".into()],
            start: None,
            duration: None,
            end: Some("2030-01-01T00:00:00Z".into()),
            source_ip: vec![],
            role: None,
            label: vec!["team=nlp".into()],
        };
        let s = args.spec(None).unwrap();
        assert_eq!(s.name, "a");
        assert_eq!(s.read, vec!["s3://bucket-a/x/".to_owned()]);
        assert_eq!(s.write, vec!["s3://bucket-b/out/".to_owned()]);
        assert_eq!(
            (s.duration, s.end.as_deref()),
            (None, Some("2030-01-01T00:00:00Z"))
        );
        assert_eq!(s.labels.get("team").map(String::as_str), Some("nlp"));
    }

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(shell_quote("a'b"), "'a'\\''b'");
    }
}
