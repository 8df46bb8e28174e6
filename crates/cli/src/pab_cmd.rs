//! `keyhole admin public-access-block get|put`: the account's S3 Block Public Access settings,
//! through the gateway's S3 Control endpoint (`/v20180820/configuration/publicAccessBlock` with
//! `x-amz-account-id`), so no `ACCOUNT.HOST` name has to resolve (aws-cli's `s3control` sends
//! every request to such a name). The caller's account id comes from STS GetCallerIdentity.
//! Permissions are the caller's: `s3:GetAccountPublicAccessBlock`,
//! `s3:PutAccountPublicAccessBlock`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use http::Method;
use miette::miette;
use serde_json::json;

use crate::job_cmd::{xml_field, Api, ConnArgs};

/// The S3 Control path of the account's configuration.
const PATH: &str = "/v20180820/configuration/publicAccessBlock";
/// The four settings, as S3 names them.
const SETTINGS: [&str; 4] = [
    "BlockPublicAcls",
    "IgnorePublicAcls",
    "BlockPublicPolicy",
    "RestrictPublicBuckets",
];

/// `keyhole admin public-access-block ...`
#[derive(Debug, Subcommand)]
pub enum PabCommand {
    /// Print the account's settings as aws-cli does
    /// (`{"PublicAccessBlockConfiguration": {...}}`). Needs s3:GetAccountPublicAccessBlock.
    Get {
        /// The gateway and the caller's credentials.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Change some of the settings; the ones not given keep their value (none: off). Needs
    /// s3:GetAccountPublicAccessBlock and s3:PutAccountPublicAccessBlock.
    ///
    /// Example:
    ///   keyhole admin public-access-block put --block-public-policy false --restrict-public-buckets false
    #[command(verbatim_doc_comment)]
    Put {
        /// The new settings.
        #[command(flatten)]
        settings: PutArgs,
        /// The gateway and the caller's credentials.
        #[command(flatten)]
        conn: ConnArgs,
    },
}

/// The settings `put` may change.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// Refuse public ACLs on buckets and objects.
    #[arg(long, value_name = "BOOL")]
    pub block_public_acls: Option<bool>,
    /// Ignore public ACLs (keyhole stores no ACLs).
    #[arg(long, value_name = "BOOL")]
    pub ignore_public_acls: Option<bool>,
    /// Refuse bucket policies that grant public access.
    #[arg(long, value_name = "BOOL")]
    pub block_public_policy: Option<bool>,
    /// Let public bucket policies grant nothing to anonymous callers.
    #[arg(long, value_name = "BOOL")]
    pub restrict_public_buckets: Option<bool>,
}

impl PutArgs {
    fn given(&self) -> [Option<bool>; 4] {
        [
            self.block_public_acls,
            self.ignore_public_acls,
            self.block_public_policy,
            self.restrict_public_buckets,
        ]
    }
}

/// The current settings; `None` when the account has no configuration (every setting off).
async fn current(api: &Api, account: &str) -> miette::Result<Option<[bool; 4]>> {
    let (status, text) = api
        .s3_control(Method::GET, PATH, account, String::new())
        .await?;
    if status == http::StatusCode::NOT_FOUND
        && xml_field(&text, "Code") == Some("NoSuchPublicAccessBlockConfiguration")
    {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(failed("GetPublicAccessBlock", status, &text, api));
    }
    let mut out = [false; 4];
    for (value, name) in out.iter_mut().zip(SETTINGS) {
        *value = match xml_field(&text, name).map(str::trim) {
            Some("true") => true,
            Some("false") => false,
            other => {
                return Err(miette!(
                    "GetPublicAccessBlock: unexpected `{name}` value {other:?} in the answer"
                ))
            }
        };
    }
    Ok(Some(out))
}

fn failed(action: &str, status: http::StatusCode, text: &str, api: &Api) -> miette::Report {
    miette!(
        "{action} failed ({status}): {}: {} [signed as {}]",
        xml_field(text, "Code").unwrap_or(""),
        xml_field(text, "Message").unwrap_or(""),
        api.access_key_id()
    )
}

fn print(settings: [bool; 4]) {
    let mut config = serde_json::Map::new();
    for (name, value) in SETTINGS.iter().zip(settings) {
        config.insert((*name).to_owned(), json!(value));
    }
    let doc = json!({ "PublicAccessBlockConfiguration": config });
    println!(
        "{}",
        serde_json::to_string_pretty(&doc).unwrap_or_else(|_| doc.to_string())
    );
}

/// Runs `keyhole admin public-access-block ...`.
pub async fn run(cmd: PabCommand) -> miette::Result<ExitCode> {
    match cmd {
        PabCommand::Get { conn } => {
            let api = Api::connect(&conn)?;
            let account = api.account_id().await?;
            match current(&api, &account).await? {
                Some(settings) => print(settings),
                None => {
                    return Err(miette!(
                        "account {account} has no Block Public Access configuration (NoSuchPublicAccessBlockConfiguration): every setting is off; set them with `keyhole admin public-access-block put`"
                    ))
                }
            }
        }
        PabCommand::Put { settings, conn } => {
            let given = settings.given();
            if given.iter().all(Option::is_none) {
                return Err(miette!(
                    "give at least one of --block-public-acls, --ignore-public-acls, --block-public-policy, --restrict-public-buckets (true or false)"
                ));
            }
            let api = Api::connect(&conn)?;
            let account = api.account_id().await?;
            let mut new = current(&api, &account).await?.unwrap_or([false; 4]);
            for (value, wanted) in new.iter_mut().zip(given) {
                if let Some(w) = wanted {
                    *value = w;
                }
            }
            let mut body = String::from(
                "<PublicAccessBlockConfiguration xmlns=\"http://awss3control.amazonaws.com/doc/2018-08-20/\">",
            );
            for (name, value) in SETTINGS.iter().zip(new) {
                body.push_str(&format!("<{name}>{value}</{name}>"));
            }
            body.push_str("</PublicAccessBlockConfiguration>");
            let (status, text) = api.s3_control(Method::PUT, PATH, &account, body).await?;
            if !status.is_success() {
                return Err(failed("PutPublicAccessBlock", status, &text, &api));
            }
            print(new);
        }
    }
    Ok(ExitCode::SUCCESS)
}
