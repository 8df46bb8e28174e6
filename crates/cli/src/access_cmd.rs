//! `keyhole access report` and `keyhole access unused`: least privilege from observed access, for
//! any user or role. Both ask the running gateway (the keyhole API's GetAccessReport and
//! ListUnusedAccess, authorized as `keyhole:GetAccessReport` on the principal and
//! `keyhole:ListUnusedAccess` on `*`), which reads its state and its audit trail; see
//! docs/ACCESS.md.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use miette::miette;
use serde_json::{json, Value};

use crate::job_cmd::{at, runtime, Api, ConnArgs};

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// The report as the gateway returns it (one JSON document).
    Json,
}

/// `keyhole access ...` subcommands.
#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    /// What a user or role used (actions, buckets, prefixes, counts, last use), what its
    /// policies grant that it never used (actions, resources, access keys, roles it may
    /// assume), its denied attempts, and a minimal policy that allows what it used.
    ///
    /// Examples:
    ///   keyhole access report --principal arn:aws:iam::123456789012:user/alice
    ///   keyhole access report --principal arn:aws:iam::123456789012:role/etl --since 7d
    ///   keyhole access report --principal arn:aws:iam::123456789012:user/alice --format json \
    ///       | jq .minimalPolicy > alice-minimal.json
    #[command(verbatim_doc_comment)]
    Report(ReportArgs),
    /// Every user, role and access key of the account unused in the window, and the
    /// permissions each user and role was granted and did not use.
    ///
    /// Examples:
    ///   keyhole access unused
    ///   keyhole access unused --since 30d --format json
    #[command(verbatim_doc_comment)]
    Unused(UnusedArgs),
}

/// `keyhole access report` arguments.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The user or role: arn:aws:iam::ACCOUNT:user/NAME or arn:aws:iam::ACCOUNT:role/NAME.
    #[arg(long, value_name = "ARN")]
    pub principal: String,
    /// Start of the window: an age (90s, 15m, 2h, 30d), a date (2026-11-01) or an RFC 3339
    /// time.
    #[arg(long, value_name = "WHEN", default_value = "30d")]
    pub since: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// The gateway and the caller's credentials.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// `keyhole access unused` arguments.
#[derive(Debug, Args)]
pub struct UnusedArgs {
    /// Start of the window: an age (90s, 15m, 2h, 90d), a date (2026-11-01) or an RFC 3339
    /// time.
    #[arg(long, value_name = "WHEN", default_value = "90d")]
    pub since: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// The gateway and the caller's credentials.
    #[command(flatten)]
    pub conn: ConnArgs,
}

fn since(text: &str) -> miette::Result<String> {
    let t = keyhole_server::audit::query::parse_time(text, chrono::Utc::now())
        .map_err(|e| miette!("--since: {e}"))?;
    Ok(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// `--principal` must name a user or a role; the gateway checks the account and that it exists.
fn principal(arn: &str) -> miette::Result<&str> {
    let ok = arn.strip_prefix("arn:aws:iam::").is_some_and(|rest| {
        rest.split_once(':').is_some_and(|(account, name)| {
            !account.is_empty()
                && (name.starts_with("user/") || name.starts_with("role/"))
                && !name.ends_with('/')
        })
    });
    if ok {
        Ok(arn)
    } else {
        Err(miette!(
            "--principal `{arn}` is not the ARN of a user or role: use arn:aws:iam::ACCOUNT:user/NAME or arn:aws:iam::ACCOUNT:role/NAME (aws iam get-user --user-name NAME --query User.Arn prints it)"
        ))
    }
}

/// Runs a `keyhole access` subcommand.
pub fn run(cmd: AccessCommand) -> miette::Result<ExitCode> {
    match cmd {
        AccessCommand::Report(a) => {
            let body = json!({"Principal": principal(&a.principal)?, "Since": since(&a.since)?});
            let api = Api::connect(&a.conn)?;
            let out = runtime()?.block_on(api.call("GetAccessReport", &body))?;
            let report = out.get("Report").unwrap_or(&Value::Null);
            match a.format {
                Format::Json => println!("{report:#}"),
                Format::Text => print!("{}", render_report(report)),
            }
        }
        AccessCommand::Unused(a) => {
            let body = json!({"Since": since(&a.since)?});
            let api = Api::connect(&a.conn)?;
            let out = runtime()?.block_on(api.call("ListUnusedAccess", &body))?;
            let report = out.get("Report").unwrap_or(&Value::Null);
            match a.format {
                Format::Json => println!("{report:#}"),
                Format::Text => print!("{}", render_unused(report)),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("-")
}

fn list<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k)
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
}

fn words(v: &Value, k: &str) -> String {
    let items: Vec<&str> = list(v, k).iter().filter_map(Value::as_str).collect();
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

fn source_line(out: &mut String, r: &Value) {
    let src = at(r, "source");
    let _ = writeln!(out, "trail read: node {}", words(src, "trails"));
    if at(src, "complete").as_bool() == Some(false) {
        let _ = writeln!(out, "NOT COMPLETE: {}", s(src, "note"));
    }
}

/// The report for people.
pub fn render_report(r: &Value) -> String {
    // What the principal chose (keys, session names, reasons) is escaped for the terminal;
    // the minimal policy is printed as JSON, which escapes it.
    let r = &keyhole_server::audit::query::terminal_safe_value(r, &["minimalPolicy"]);
    let mut out = String::new();
    let p = at(r, "principal");
    let _ = writeln!(
        out,
        "{} {} ({}), window {} .. {}",
        s(p, "type"),
        s(p, "arn"),
        s(p, "id"),
        s(at(r, "window"), "since"),
        s(at(r, "window"), "until")
    );
    source_line(&mut out, r);
    let _ = writeln!(
        out,
        "requests: {} (denied: {}), last seen {}",
        at(r, "requests"),
        at(at(r, "denied"), "count"),
        s(r, "lastSeen")
    );
    if let Some(a) = r.get("assumed") {
        let _ = writeln!(
            out,
            "assumed: {} time(s), last {}; sessions: {}",
            at(a, "count"),
            s(a, "lastAssumed"),
            words(r, "sessions")
        );
    }
    let _ = writeln!(out, "\nactions used:");
    for a in list(r, "actionsUsed") {
        let _ = writeln!(
            out,
            "  {:<36} {:>6}  last {}",
            s(a, "action"),
            at(a, "count"),
            s(a, "lastUsed")
        );
    }
    let _ = writeln!(out, "\nbuckets:");
    for b in list(r, "buckets") {
        let _ = writeln!(
            out,
            "  s3://{}/{}  objects {}  lists {}  bytes {}  requests {}  last {}  ({})",
            s(b, "bucket"),
            s(b, "prefix"),
            at(b, "objects"),
            at(b, "lists"),
            at(b, "bytes"),
            at(b, "requests"),
            s(b, "lastUsed"),
            words(b, "actions")
        );
    }
    let attempts = list(at(r, "denied"), "attempts");
    if !attempts.is_empty() {
        let _ = writeln!(out, "\ndenied attempts:");
        for d in attempts {
            let _ = writeln!(
                out,
                "  {} {} {} on {}: {}",
                s(d, "time"),
                s(d, "operation"),
                s(d, "action"),
                s(d, "resource"),
                s(d, "reason")
            );
        }
    }
    let unused = list(r, "unusedActions");
    let _ = writeln!(
        out,
        "\ngranted and never used: {} of {} granted actions",
        unused.len(),
        at(r, "grantedActions")
    );
    for a in unused.iter().take(40).filter_map(Value::as_str) {
        let _ = writeln!(out, "  {a}");
    }
    if unused.len() > 40 {
        let _ = writeln!(
            out,
            "  ... {} more (--format json lists all)",
            unused.len() - 40
        );
    }
    let resources = list(r, "unusedResources");
    if !resources.is_empty() {
        let _ = writeln!(out, "resources granted and never used:");
        for u in resources {
            let _ = writeln!(
                out,
                "  {} (policy {}, {} action(s))",
                s(u, "resource"),
                s(u, "policy"),
                list(u, "actions").len()
            );
        }
    }
    if let Some(keys) = r.get("accessKeys").and_then(Value::as_array) {
        let _ = writeln!(out, "\naccess keys:");
        for k in keys {
            let _ = writeln!(
                out,
                "  {} {:<8} last used {}{}",
                s(k, "accessKeyId"),
                s(k, "status"),
                s(k, "lastUsed"),
                if at(k, "usedInWindow").as_bool() == Some(false) {
                    "  UNUSED in the window"
                } else {
                    ""
                }
            );
        }
        let _ = writeln!(out, "roles assumed: {}", {
            let roles: Vec<&str> = list(r, "rolesAssumed")
                .iter()
                .map(|x| s(x, "role"))
                .collect();
            if roles.is_empty() {
                "-".to_owned()
            } else {
                roles.join(", ")
            }
        });
        let _ = writeln!(
            out,
            "roles it may assume and never did: {}",
            words(r, "rolesNeverAssumed")
        );
    }
    let _ = writeln!(
        out,
        "\nminimal policy (allows what was used; check with keyhole policy simulate):\n{:#}",
        at(r, "minimalPolicy")
    );
    out
}

/// The account-wide listing for people.
pub fn render_unused(r: &Value) -> String {
    // What the principal chose (keys, session names, reasons) is escaped for the terminal;
    // the minimal policy is printed as JSON, which escapes it.
    let r = &keyhole_server::audit::query::terminal_safe_value(r, &["minimalPolicy"]);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "unused since {} (until {})",
        s(at(r, "window"), "since"),
        s(at(r, "window"), "until")
    );
    source_line(&mut out, r);
    for (title, kind) in [("users", "users"), ("roles", "roles")] {
        let _ = writeln!(out, "\n{title}:");
        for e in list(r, kind) {
            let state = if at(e, "unused").as_bool() == Some(true) {
                "UNUSED".to_owned()
            } else {
                format!("used, last {}", s(e, "lastSeen"))
            };
            let _ = writeln!(
                out,
                "  {:<56} {}; {} of {} granted actions unused",
                s(e, "arn"),
                state,
                at(e, "unusedActionCount"),
                at(e, "grantedActions")
            );
            let shown: Vec<&str> = list(e, "unusedActions")
                .iter()
                .take(8)
                .filter_map(Value::as_str)
                .collect();
            if !shown.is_empty() {
                let more = at(e, "unusedActionCount")
                    .as_u64()
                    .unwrap_or(0)
                    .saturating_sub(shown.len() as u64);
                let tail = if more > 0 {
                    format!(" ... {more} more")
                } else {
                    String::new()
                };
                let _ = writeln!(out, "      unused: {}{tail}", shown.join(", "));
            }
        }
    }
    let _ = writeln!(out, "\naccess keys unused in the window:");
    let keys = list(r, "unusedKeys");
    if keys.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for k in keys {
        let _ = writeln!(
            out,
            "  {} of {} ({}), last used {}",
            s(k, "accessKeyId"),
            s(k, "user"),
            s(k, "status"),
            s(k, "lastUsed")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_report_names_unused_keys_denials_and_the_policy() {
        let r = json!({
            "principal": {"type": "user", "arn": "arn:aws:iam::1:user/a", "id": "AIDA1"},
            "window": {"since": "2026-11-01T00:00:00Z", "until": "2026-12-01T00:00:00Z"},
            "source": {"trails": ["node-1"], "complete": false, "note": "one node of two"},
            "requests": 3, "denied": {"count": 1, "attempts": [{"time": "t", "operation": "DeleteObject", "action": "s3:DeleteObject", "resource": "arn:aws:s3:::b/k", "reason": "no statement allows"}]},
            "actionsUsed": [{"action": "s3:GetObject", "count": 2, "lastUsed": "t"}],
            "buckets": [{"bucket": "b", "prefix": "p/", "objects": 2, "lists": 0, "bytes": 5, "requests": 2, "lastUsed": "t", "actions": ["s3:GetObject"]}],
            "grantedActions": 3, "unusedActions": ["s3:PutObject"], "unusedResources": [],
            "accessKeys": [{"accessKeyId": "AKIA2", "status": "Active", "lastUsed": null, "usedInWindow": false}],
            "rolesAssumed": [], "rolesNeverAssumed": ["arn:aws:iam::1:role/r"],
            "minimalPolicy": {"Version": "2012-10-17", "Statement": []},
        });
        let text = render_report(&r);
        for want in [
            "NOT COMPLETE: one node of two",
            "s3://b/p/",
            "DeleteObject s3:DeleteObject on arn:aws:s3:::b/k",
            "1 of 3 granted actions",
            "AKIA2 Active   last used -  UNUSED",
            "never did: arn:aws:iam::1:role/r",
            "\"Version\": \"2012-10-17\"",
        ] {
            assert!(text.contains(want), "{want:?} missing from\n{text}");
        }
    }

    #[test]
    fn a_principal_must_be_a_user_or_role_arn() {
        assert!(principal("arn:aws:iam::123456789012:user/alice").is_ok());
        assert!(principal("arn:aws:iam::123456789012:role/path/etl").is_ok());
        for bad in [
            "alice",
            "arn:aws:iam::123456789012:group/g",
            "arn:aws:iam::123456789012:user/",
        ] {
            let e = principal(bad).unwrap_err().to_string();
            assert!(e.contains("--principal") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn a_bad_since_names_the_flag() {
        let e = since("yesterday").unwrap_err().to_string();
        assert!(e.contains("--since"), "{e}");
        assert!(since("7d").unwrap().ends_with('Z'));
    }
}
