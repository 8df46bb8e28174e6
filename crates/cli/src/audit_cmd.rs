//! `keyhole audit verify|query|tail`: check and read the audit trail under a data directory
//! (DESIGN.md sections 7 and 10). All three stream the trail; none loads it whole.
//!
//! Exit codes: `verify` 0 when the trail is intact, 1 when it is not (the first bad position is
//! printed as `FILE:LINE`); `query` and `tail` 0.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use keyhole_server::audit::query::{self, Filter, Found};
use keyhole_server::audit::{self, Decision};
use miette::{miette, IntoDiagnostic, WrapErr};

/// `keyhole audit ...`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain and the signed checkpoint; name the first bad event.
    ///
    /// Detects an edited, deleted, inserted or reordered event, a missing or renamed file, and a
    /// trail cut at its tail. Needs the data directory's master key (for the checkpoint).
    ///
    /// Example:
    ///   keyhole audit verify --data-dir ./keyhole-data
    #[command(verbatim_doc_comment)]
    Verify {
        /// Data directory of the gateway [default: ./keyhole-data].
        #[arg(long, env = "KEYHOLE_DATA_DIR", value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Print the events that match every filter given, oldest first.
    ///
    /// Examples:
    ///   keyhole audit query --since 1h --decision deny
    ///   keyhole audit query --bucket datasets --prefix wiki/ --operation GetObject --format jsonl
    #[command(verbatim_doc_comment)]
    Query(QueryArgs),
    /// Print the last events, and with -f keep printing new ones as they are written.
    ///
    /// Example:
    ///   keyhole audit tail -f --decision deny
    #[command(verbatim_doc_comment)]
    Tail {
        /// Keep following the trail.
        #[arg(short = 'f', long)]
        follow: bool,
        /// How many past events to print first.
        #[arg(short = 'n', long, default_value_t = 10)]
        lines: usize,
        /// Filters and output format.
        #[command(flatten)]
        query: QueryArgs,
    },
}

/// Filters shared by `query` and `tail`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Data directory of the gateway [default: ./keyhole-data].
    #[arg(long, env = "KEYHOLE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Events at or after: RFC 3339, a date, or an age such as 15m, 2h, 7d.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Events before: RFC 3339, a date, or an age.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Principal ARN (e.g. arn:aws:iam::123456789012:root), or `anonymous`. A role's ARN also
    /// matches its sessions (arn:aws:sts::ACCOUNT:assumed-role/NAME/*).
    #[arg(long, value_name = "ARN")]
    pub principal: Option<String>,
    /// Access key id used (or claimed, for failed authentication).
    #[arg(long, value_name = "ID")]
    pub access_key: Option<String>,
    /// Job id.
    #[arg(long, value_name = "JOB")]
    pub job: Option<String>,
    /// Bucket name.
    #[arg(long, value_name = "BUCKET")]
    pub bucket: Option<String>,
    /// Key prefix.
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// Operation (event name), e.g. PutObject.
    #[arg(long, value_name = "NAME")]
    pub operation: Option<String>,
    /// Decision.
    #[arg(long, value_enum)]
    pub decision: Option<DecisionArg>,
    /// HTTP status, e.g. 403.
    #[arg(long, value_name = "CODE")]
    pub status: Option<u16>,
    /// Output: a table for people, or the stored JSON lines for tools.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// `--decision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DecisionArg {
    /// Allowed.
    Allow,
    /// Denied (including failed authentication).
    Deny,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// One stored JSON event a line.
    Jsonl,
}

fn data_dir(d: Option<PathBuf>) -> PathBuf {
    d.unwrap_or_else(|| PathBuf::from(keyhole_server::config::DEFAULT_DATA_DIR))
}

fn audit_dir(data: &Path) -> miette::Result<PathBuf> {
    let dir = data.join(audit::AUDIT_DIR);
    if !dir.is_dir() {
        return Err(miette!(
            "no audit trail at `{}` (is `{}` a keyhole data directory? choose one with --data-dir)",
            dir.display(),
            data.display()
        ));
    }
    Ok(dir)
}

/// Runs an audit subcommand.
pub fn run(cmd: AuditCommand) -> miette::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify { data_dir: d } => verify(&data_dir(d)),
        AuditCommand::Query(q) => {
            let (dir, filter, format) = prepare(q)?;
            let mut out = std::io::stdout().lock();
            if format == Format::Table {
                let _ = writeln!(out, "{}", query::TABLE_HEADER);
            }
            let mut broken = false;
            let skipped = query::scan(&dir, &filter, |f| {
                broken = print(&mut out, &f, format).is_err();
                !broken
            })
            .into_diagnostic()
            .wrap_err("cannot read the audit trail")?;
            if skipped > 0 {
                eprintln!(
                    "warning: {skipped} lines are not audit events (run `keyhole audit verify`)"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Tail {
            follow,
            lines,
            query: q,
        } => {
            let (dir, filter, format) = prepare(q)?;
            let mut last: std::collections::VecDeque<Found> =
                std::collections::VecDeque::with_capacity(lines.min(10_000));
            query::scan(&dir, &filter, |f| {
                if lines > 0 {
                    if last.len() == lines {
                        last.pop_front();
                    }
                    last.push_back(f);
                }
                true
            })
            .into_diagnostic()?;
            let mut out = std::io::stdout().lock();
            if format == Format::Table {
                let _ = writeln!(out, "{}", query::TABLE_HEADER);
            }
            for f in &last {
                if print(&mut out, f, format).is_err() {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            let _ = out.flush();
            if follow {
                query::follow(&dir, &filter, std::time::Duration::from_millis(200), |f| {
                    print(&mut out, &f, format)
                        .and_then(|()| out.flush())
                        .is_ok()
                })
                .into_diagnostic()?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print(out: &mut impl Write, f: &Found, format: Format) -> std::io::Result<()> {
    match format {
        Format::Table => writeln!(out, "{}", query::table_row(f)),
        Format::Jsonl => writeln!(out, "{}", f.line),
    }
}

fn prepare(q: QueryArgs) -> miette::Result<(PathBuf, Filter, Format)> {
    let dir = audit_dir(&data_dir(q.data_dir))?;
    let now = chrono::Utc::now();
    let time = |t: Option<String>, flag: &str| -> miette::Result<_> {
        t.map(|t| query::parse_time(&t, now).map_err(|e| miette!("--{flag}: {e}")))
            .transpose()
    };
    let filter = Filter {
        since: time(q.since, "since")?,
        until: time(q.until, "until")?,
        principal: q.principal,
        access_key: q.access_key,
        job: q.job,
        bucket: q.bucket,
        prefix: q.prefix,
        operation: q.operation,
        decision: q.decision.map(|d| match d {
            DecisionArg::Allow => Decision::Allow,
            DecisionArg::Deny => Decision::Deny,
        }),
        status: q.status,
    };
    Ok((dir, filter, q.format))
}

fn verify(data: &Path) -> miette::Result<ExitCode> {
    let dir = audit_dir(data)?;
    let account = keyhole_server::Account::open_existing(data)
        .into_diagnostic()
        .wrap_err("the checkpoint is signed with the master key, which could not be read")?;
    let key = audit::checkpoint_key(account.master_key.expose());
    let report = audit::verify::verify(&dir, &key).into_diagnostic()?;
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    match &report.problem {
        None => {
            let cp = report.checkpoint.as_ref().map_or_else(
                || "no events yet".to_owned(),
                |c| format!("checkpoint matches event #{}", c.seq),
            );
            println!(
                "ok: {} events in {} files, chain intact, {cp}",
                report.events, report.files
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(p) => {
            println!(
                "FAILED at {}: {} ({} events before it check out)",
                p.position, p.reason, report.events
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
