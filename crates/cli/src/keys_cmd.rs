//! `keyhole admin keys`: every IAM user's access keys with their age and last use, flagged when
//! older than a bound, optionally deactivated. Everything goes through the gateway's IAM API
//! (ListUsers, ListAccessKeys, GetAccessKeyLastUsed, UpdateAccessKey) with the caller's
//! credentials, so it works against a remote gateway and every call is authorized and audited.

use std::process::ExitCode;

use clap::Args;
use miette::miette;
use serde_json::{json, Value};

use crate::job_cmd::{xml_field, Api, ConnArgs};

/// The exit status when active keys older than the bound remain (so cron or CI can alert).
pub const EXIT_KEYS_OVER_BOUND: u8 = 3;

/// `keyhole admin keys` arguments.
#[derive(Debug, Args)]
pub struct KeysArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Flag active keys at least DAYS days old (0 flags every active key). Read from
    /// KEYHOLE_MAX_KEY_AGE_DAYS when not given, the variable `keyhole serve` reads for its
    /// max_key_age_days setting, so one environment file serves both; the gateway's config file
    /// is not read (the gateway may be on another machine) [default: no bound].
    #[arg(long, env = "KEYHOLE_MAX_KEY_AGE_DAYS", value_name = "DAYS")]
    pub max_age_days: Option<u64>,
    /// Deactivate (UpdateAccessKey --status Inactive) every active key at least --max-age-days
    /// old, printing a line for each. Needs iam:UpdateAccessKey on the owners.
    #[arg(long, requires = "max_age_days")]
    pub enforce: bool,
    /// The gateway and the caller's credentials.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// One access key as the table shows it.
#[derive(Debug, Clone)]
struct KeyRow {
    user: String,
    key: String,
    status: String,
    created: String,
    age_days: i64,
    age_secs: i64,
    last_used: Option<(String, String, String)>,
    over: bool,
}

/// Every value of `<tag>` in `text`, in order (IAM names and key ids hold no `<`).
fn fields<'a>(text: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    text.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split(&close).next())
        .collect()
}

/// The `<member>` blocks of a list answer.
fn members(text: &str) -> Vec<&str> {
    fields(text, "member")
}

/// Whether an IAM call failed because its user or key is gone (deleted meanwhile: a rotation
/// racing the listing), which skips that entry rather than failing the whole run (review 13).
fn is_gone(e: &miette::Report) -> bool {
    e.to_string().contains("NoSuchEntity")
}

/// Every user's name, following ListUsers' pages (IAM answers at most 1,000 per call).
async fn all_users(api: &Api) -> miette::Result<Vec<String>> {
    let mut users = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut params = vec![("MaxItems", "1000")];
        if let Some(m) = &marker {
            params.push(("Marker", m.as_str()));
        }
        let page = api.call_iam("ListUsers", &params).await?;
        users.extend(fields(&page, "UserName").into_iter().map(str::to_owned));
        marker = match xml_field(&page, "IsTruncated") {
            Some("true") => match xml_field(&page, "Marker") {
                Some(m) => Some(m.to_owned()),
                None => {
                    return Err(miette!(
                        "ListUsers: IsTruncated without a Marker in the answer"
                    ))
                }
            },
            _ => return Ok(users),
        };
    }
}

async fn collect(
    api: &Api,
    max_days: Option<u64>,
    problems: &mut Vec<String>,
) -> miette::Result<Vec<KeyRow>> {
    let now = chrono::Utc::now().timestamp();
    let users = all_users(api).await?;
    let mut rows = Vec::new();
    for user in users.iter().map(String::as_str) {
        // One user that cannot be read (gone meanwhile, or denied to the caller) does not stop
        // the report of the others; it is named, and the exit status says so.
        let keys = match api.call_iam("ListAccessKeys", &[("UserName", user)]).await {
            Ok(k) => k,
            Err(e) if is_gone(&e) => continue,
            Err(e) => {
                problems.push(format!("keys of user {user} not listed: {e}"));
                continue;
            }
        };
        for m in members(&keys) {
            let (Some(key), Some(status), Some(created)) = (
                xml_field(m, "AccessKeyId"),
                xml_field(m, "Status"),
                xml_field(m, "CreateDate"),
            ) else {
                return Err(miette!(
                    "ListAccessKeys for {user}: a key without AccessKeyId, Status or CreateDate in the answer"
                ));
            };
            let used = match api
                .call_iam("GetAccessKeyLastUsed", &[("AccessKeyId", key)])
                .await
            {
                Ok(u) => u,
                Err(e) if is_gone(&e) => continue,
                Err(e) => {
                    problems.push(format!("last use of {key} (user {user}) not read: {e}"));
                    String::new()
                }
            };
            let last_used = xml_field(&used, "LastUsedDate").map(|d| {
                (
                    d.to_owned(),
                    xml_field(&used, "ServiceName").unwrap_or("").to_owned(),
                    xml_field(&used, "Region").unwrap_or("").to_owned(),
                )
            });
            let created_at = chrono::DateTime::parse_from_rfc3339(created)
                .map_err(|_| {
                    miette!(
                        "ListAccessKeys: CreateDate `{created}` of {key} is not an ISO 8601 time"
                    )
                })?
                .timestamp();
            let age_secs = now - created_at;
            let over = status == "Active"
                && max_days.is_some_and(|d| {
                    age_secs >= i64::try_from(d.saturating_mul(86_400)).unwrap_or(i64::MAX)
                });
            rows.push(KeyRow {
                user: user.to_owned(),
                key: key.to_owned(),
                status: status.to_owned(),
                created: created.to_owned(),
                age_days: age_secs.div_euclid(86_400),
                age_secs,
                last_used,
                over,
            });
        }
    }
    Ok(rows)
}

fn table(rows: &[KeyRow], max_days: Option<u64>) -> String {
    let mut lines = vec![[
        "USER".to_owned(),
        "ACCESS KEY ID".to_owned(),
        "STATUS".to_owned(),
        "CREATED".to_owned(),
        "AGE (DAYS)".to_owned(),
        "LAST USED".to_owned(),
        "".to_owned(),
    ]];
    for r in rows {
        let used = match &r.last_used {
            Some((date, service, region)) => format!("{date} {service} {region}"),
            None => "never (N/A)".to_owned(),
        };
        let flag = match max_days {
            Some(d) if r.over => format!("OVER {d} DAYS"),
            _ => String::new(),
        };
        lines.push([
            r.user.clone(),
            r.key.clone(),
            r.status.clone(),
            r.created.clone(),
            r.age_days.to_string(),
            used,
            flag,
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| {
            lines
                .iter()
                .map(|l| l.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for l in &lines {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn row_json(r: &KeyRow) -> Value {
    json!({
        "user": r.user,
        "access_key_id": r.key,
        "status": r.status,
        "created": r.created,
        "age_days": r.age_days,
        "age_seconds": r.age_secs,
        "last_used": r.last_used.as_ref().map(|(date, service, region)| json!({
            "date": date, "service": service, "region": region})),
        "over_max_age": r.over,
    })
}

/// Runs `keyhole admin keys`.
pub async fn run(args: KeysArgs) -> miette::Result<ExitCode> {
    let api = Api::connect(&args.conn)?;
    let mut problems = Vec::new();
    let mut rows = collect(&api, args.max_age_days, &mut problems).await?;
    let mut deactivated = Vec::new();
    if args.enforce {
        for r in rows.iter_mut().filter(|r| r.over) {
            // The key this command signs with is never deactivated by it: the run would lock
            // itself out halfway (review 13). It stays flagged, and is named.
            if r.key == api.access_key_id() {
                problems.push(format!(
                    "{} (user {}) is the key this command signs with: not deactivated; rotate it",
                    r.key, r.user
                ));
                continue;
            }
            let done = api
                .call_iam(
                    "UpdateAccessKey",
                    &[
                        ("UserName", &r.user),
                        ("AccessKeyId", &r.key),
                        ("Status", "Inactive"),
                    ],
                )
                .await;
            match done {
                Ok(_) => {}
                Err(e) if is_gone(&e) => {
                    r.over = false;
                    "Deleted".clone_into(&mut r.status);
                    continue;
                }
                Err(e) => {
                    problems.push(format!("{} (user {}) not deactivated: {e}", r.key, r.user));
                    continue;
                }
            }
            if !args.json {
                // Each deactivation is printed as it happens, so a run cut short still says
                // what it did.
                println!(
                    "deactivated {} of user {} ({} days old; bound {} days)",
                    r.key,
                    r.user,
                    r.age_days,
                    args.max_age_days.unwrap_or(0)
                );
            }
            "Inactive".clone_into(&mut r.status);
            r.over = false;
            deactivated.push(r.clone());
        }
    }
    for p in &problems {
        eprintln!("× {p}");
    }
    let remaining = rows.iter().filter(|r| r.over).count();
    if args.json {
        let out = json!({
            "max_age_days": args.max_age_days,
            "keys": rows.iter().map(row_json).collect::<Vec<_>>(),
            "deactivated": deactivated.iter().map(row_json).collect::<Vec<_>>(),
            "active_over_max_age": remaining,
            "problems": problems,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| miette!("{e}"))?
        );
    } else {
        print!("{}", table(&rows, args.max_age_days));
        match args.max_age_days {
            Some(d) if remaining > 0 => println!(
                "{remaining} active key(s) at least {d} days old: rotate them, or deactivate them with --enforce"
            ),
            Some(d) => println!("no active key is {d} days old or older"),
            None => {}
        }
    }
    Ok(if remaining > 0 {
        ExitCode::from(EXIT_KEYS_OVER_BOUND)
    } else if !problems.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_answers_are_read_member_by_member() {
        let xml = "<ListAccessKeysResult><UserName>alice</UserName><AccessKeyMetadata><member><UserName>alice</UserName><AccessKeyId>AKIA1</AccessKeyId><Status>Active</Status><CreateDate>2026-12-03T10:00:00Z</CreateDate></member><member><UserName>alice</UserName><AccessKeyId>AKIA2</AccessKeyId><Status>Inactive</Status><CreateDate>2026-12-03T11:00:00Z</CreateDate></member></AccessKeyMetadata></ListAccessKeysResult>";
        let m = members(xml);
        assert_eq!(m.len(), 2);
        assert_eq!(xml_field(m[1], "AccessKeyId"), Some("AKIA2"));
        assert_eq!(fields(xml, "UserName"), vec!["alice", "alice", "alice"]);
    }

    #[test]
    fn the_table_flags_keys_over_the_bound() {
        let row = |key: &str, over: bool| KeyRow {
            user: "alice".into(),
            key: key.into(),
            status: "Active".into(),
            created: "2026-01-01T00:00:00Z".into(),
            age_days: 100,
            age_secs: 100 * 86_400,
            last_used: None,
            over,
        };
        let t = table(&[row("AKIAOLD", true), row("AKIANEW", false)], Some(90));
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("USER"), "{t}");
        assert!(
            lines[1].contains("AKIAOLD") && lines[1].ends_with("OVER 90 DAYS"),
            "{t}"
        );
        assert!(
            lines[2].contains("never (N/A)") && !lines[2].contains("OVER"),
            "{t}"
        );
    }
}
