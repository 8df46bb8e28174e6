//! `keyhole audit verify|query|tail|keygen|export-digests`: check and read the audit trail under
//! a data directory (DESIGN.md sections 7 and 10), create a signing key, copy the signed digests
//! to a witness. Reading commands stream the trail; none loads it whole.
//!
//! Exit codes: `verify` 0 when the trail is intact, 1 when it is not (the first bad position is
//! printed as `FILE:LINE`), 3 when it is intact apart from signed discontinuities; the others 0
//! on success.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use keyhole_server::audit::event::Stage;
use keyhole_server::audit::query::{self, Filter, Found};
use keyhole_server::audit::{self, Decision};
use miette::{miette, IntoDiagnostic, WrapErr};

/// `keyhole audit ...`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the trail against its signed digests with the operator's public key; name the first
    /// bad event.
    ///
    /// Detects an edited event (even with the chain recomputed after it), a deleted, inserted or
    /// reordered event, a missing, renamed, swapped or cut file, events cut from the tail or
    /// appended while the gateway was stopped, a removed, replayed or forged digest, and an emptied
    /// trail. The key is never taken from the directory being checked: give the public key
    /// (--public-key) or its fingerprint (--fingerprint, or audit_key_fingerprints in --config).
    /// Also lists `authorized` records that never got a `completed` one (`orphaned:`, or `open:`
    /// when the gateway that wrote them has not stopped since: requests still running), and how
    /// many events lie beyond the last signature.
    ///
    /// Exit status: 0 intact; 1 a problem (printed as FILE:LINE and why); 3 intact apart from
    /// signed discontinuities (events an operator gave up at start, or tampering the writer
    /// found, listed). `gap:` lines name restarts after an unclean stop (a crash, or digests
    /// rolled back: --digests with an exported copy tells which).
    ///
    /// Examples:
    ///   keyhole audit verify --data-dir ./keyhole-data --fingerprint 3f1c...e9
    ///   keyhole audit verify --data-dir ./copy --public-key audit.pub --digests /mnt/witness/keyhole
    #[command(verbatim_doc_comment)]
    Verify(VerifyArgs),
    /// Print the events that match every filter given, oldest first.
    ///
    /// Examples:
    ///   keyhole audit query --since 1h --decision deny
    ///   keyhole audit query --bucket datasets --prefix wiki/ --operation GetObject --format jsonl
    ///   keyhole audit query --stage authorized --operation DeleteObject
    #[command(verbatim_doc_comment)]
    Query(QueryArgs),
    /// Explain a recorded decision: "why was I denied?" without reading JSON.
    ///
    /// Finds the request's event, makes each of its decisions again with the policies in force
    /// then (their documents are kept by digest in the state database) and with those in force
    /// now, and prints both decisions, the statements that decided (with their text) and, for a
    /// denial, the condition that failed with the request's value ("aws:SourceIp 127.0.0.5 is
    /// not in 10.0.0.0/8"), that no statement allows the action, or the explicit Deny. Says so
    /// when "then" cannot be rebuilt (an event written before keyhole recorded evaluations, a
    /// document no longer known). Denials carry what they were made with; allowed requests
    /// only their deciding statements. Reads the trail and the state database of the data
    /// directory (SQLite); it needs no key and changes nothing.
    ///
    /// Examples:
    ///   keyhole audit explain 1A2B3C4D5E6F7081 --data-dir ./keyhole-data
    ///   keyhole audit query --decision deny --since 1h    # find the request id first
    ///   keyhole audit explain 1A2B3C4D5E6F7081 --format json | jq '.checks[].then.why'
    #[command(verbatim_doc_comment)]
    Explain {
        /// The request id (`x-amz-request-id` of the answer, `requestID` in the trail).
        #[arg(value_name = "REQUEST_ID")]
        request_id: String,
        /// Data directory of the gateway [default: ./keyhole-data].
        #[arg(long, env = "KEYHOLE_DATA_DIR", value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Output: `text` for people, `json` for programs.
        #[arg(long, value_enum, default_value_t = ExplainFormat::Text)]
        format: ExplainFormat,
    },
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
    /// Create an Ed25519 signing key for the audit digests: FILE (private, PKCS#8 PEM, mode
    /// 0600) and FILE.pub (public, PEM), and print the fingerprint.
    ///
    /// Keep FILE where only the gateway can read it, outside its data directory, and give it to
    /// `keyhole serve --audit-signing-key FILE`; keep FILE.pub (or the fingerprint) where the
    /// trail is verified. `openssl genpkey -algorithm ed25519 -out FILE` makes an equivalent key.
    ///
    /// Example:
    ///   keyhole audit keygen --out /etc/keyhole/audit-signing.key
    #[command(verbatim_doc_comment)]
    Keygen {
        /// Where to write the private key (FILE.pub gets the public key); never overwritten.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Copy the signed digests to DEST (a directory an external witness holds, or
    /// s3://BUCKET[/PREFIX] in another S3 store), appending what is new; refuses, and says so,
    /// when the local digests no longer extend the copy (they were rolled back or rewritten), or
    /// when a local digest is not signed by the operator's key or does not continue the chain
    /// (nothing is copied then: the witness is never poisoned).
    ///
    /// It takes the operator's key as `verify` does. Run it at least as often as the digest
    /// cadence (cron, a systemd timer). Then verify with `keyhole audit verify --digests DEST`,
    /// here or on another machine. The copies are created owner-only (0600, DEST 0700).
    ///
    /// With s3://, the store is reached with the standard AWS settings (AWS_ENDPOINT_URL or the
    /// profile's endpoint_url, credentials from the usual chain, AWS_PROFILE); each log is one
    /// object (PREFIX/digests-N.log), replaced only by a longer log that extends it, with
    /// If-Match on the copy read (If-None-Match: * for a new one). To verify against it elsewhere,
    /// download the prefix (`aws s3 sync s3://BUCKET/PREFIX DIR`) and pass DIR to --digests.
    ///
    /// Examples:
    ///   keyhole audit export-digests /mnt/witness/keyhole --data-dir ./keyhole-data --fingerprint 172feb56...
    ///   AWS_PROFILE=witness keyhole audit export-digests s3://audit-witness/gw1 --fingerprint 172feb56...
    #[command(verbatim_doc_comment)]
    ExportDigests {
        /// The directory to copy the digest logs into (created if missing), or s3://BUCKET[/PREFIX].
        #[arg(value_name = "DEST")]
        dest: PathBuf,
        /// Data directory of the gateway [default: ./keyhole-data].
        #[arg(long, env = "KEYHOLE_DATA_DIR", value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// The operator's key (as for `verify`).
        #[command(flatten)]
        keys: KeyArgs,
    },
}

/// Options of `keyhole audit verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Data directory of the gateway, or a copy of it holding `audit/`, or a copy of `audit/`
    /// itself [default: ./keyhole-data]. Repeat for the trails of several nodes: each is checked
    /// on its own and reported by node.
    #[arg(long = "data-dir", env = "KEYHOLE_DATA_DIR", value_name = "DIR")]
    pub data_dirs: Vec<PathBuf>,
    /// A directory whose subdirectories are trails (data directories or copies of `audit/`),
    /// one per node; repeatable, and combines with --data-dir.
    #[arg(long, value_name = "DIR")]
    pub trails: Vec<PathBuf>,
    /// The operator's key.
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Check against the digests in DIR too (a copy made by `keyhole audit export-digests`):
    /// every digest log in the data directory must extend its copy there, and the copy stands in
    /// for logs missing here, so a trail rolled back, rewritten or emptied since the export fails.
    #[arg(long, value_name = "DIR")]
    pub digests: Option<PathBuf>,
    /// Fail when the newest digest is older than this (15m, 2h, ...): for checks while the
    /// gateway runs, since it signs one every audit_digest_seconds; an older newest digest
    /// means the writer stalled or newer digests were removed.
    #[arg(long, value_name = "AGE")]
    pub max_age: Option<String>,
}

/// The operator's key, for `verify` and `export-digests`: never one from the directory checked.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// The public key digests must be signed with (PEM, as `keyhole audit keygen` or
    /// `openssl pkey -pubout` writes it); repeat for a key that was rotated.
    #[arg(long = "public-key", value_name = "FILE")]
    pub public_keys: Vec<PathBuf>,
    /// The fingerprint of the signing key (printed by `keyhole serve` at every start); digests
    /// must carry a key with this fingerprint. Repeat, or separate with commas.
    #[arg(
        long = "fingerprint",
        env = "KEYHOLE_AUDIT_KEY_FINGERPRINTS",
        value_name = "HEX",
        value_delimiter = ','
    )]
    pub fingerprints: Vec<String>,
    /// The gateway's TOML configuration: its data_dir and audit_key_fingerprints are used
    /// (flags win).
    #[arg(long, env = "KEYHOLE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Filters shared by `query` and `tail`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Data directory of the gateway, or a copy of its `audit/` [default: ./keyhole-data].
    /// Repeat for several nodes' trails: `query` merges their events by time (`tail` reads one).
    #[arg(long = "data-dir", env = "KEYHOLE_DATA_DIR", value_name = "DIR")]
    pub data_dirs: Vec<PathBuf>,
    /// A directory whose subdirectories are trails, one per node (for `query`); repeatable.
    #[arg(long, value_name = "DIR")]
    pub trails: Vec<PathBuf>,
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
    /// Record stage: `authorized` (the write-ahead record of a change) or `completed`.
    #[arg(long, value_enum)]
    pub stage: Option<StageArg>,
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

/// `--stage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StageArg {
    /// Write-ahead records of changes (made durable before the change).
    Authorized,
    /// Records of finished requests.
    Completed,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// One stored JSON event a line.
    Jsonl,
}

/// `--format` of `explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExplainFormat {
    /// Words.
    Text,
    /// One JSON document.
    Json,
}

fn data_dir(d: Option<PathBuf>) -> PathBuf {
    d.unwrap_or_else(|| PathBuf::from(keyhole_server::config::DEFAULT_DATA_DIR))
}

fn audit_dir(data: &Path) -> miette::Result<PathBuf> {
    let dir = data.join(audit::AUDIT_DIR);
    if dir.is_dir() {
        return Ok(dir);
    }
    // A copy of a node's `audit/` directory itself.
    let holds_trail = |d: &Path| {
        audit::sink::trail_files(d).is_ok_and(|f| !f.is_empty())
            || audit::digest::digest_logs(d).is_ok_and(|l| !l.is_empty())
    };
    if data.is_dir() && holds_trail(data) {
        return Ok(data.to_owned());
    }
    Err(miette!(
        "no audit trail at `{}` (is `{}` a keyhole data directory or a copy of its audit/ directory? choose one with --data-dir)",
        dir.display(),
        data.display()
    ))
}

/// The trails named by repeated `--data-dir` and by the subdirectories of each `--trails`
/// directory (sorted by name); the default data directory when neither is given.
fn trail_dirs(data_dirs: &[PathBuf], trails: &[PathBuf]) -> miette::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for d in data_dirs {
        out.push(audit_dir(d)?);
    }
    for parent in trails {
        let entries = std::fs::read_dir(parent)
            .into_diagnostic()
            .wrap_err_with(|| format!("--trails `{}`: cannot list it", parent.display()))?;
        let mut subdirs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        subdirs.sort();
        if subdirs.is_empty() {
            return Err(miette!(
                "--trails `{}` has no subdirectories: put each node's data directory (or a copy of its audit/) in a directory of its own under it",
                parent.display()
            ));
        }
        for sub in subdirs {
            out.push(audit_dir(&sub).wrap_err_with(|| {
                format!("--trails `{}`: `{}`", parent.display(), sub.display())
            })?);
        }
    }
    if out.is_empty() {
        out.push(audit_dir(&data_dir(None))?);
    }
    Ok(out)
}

/// The node a trail belongs to, for labels: the `nodeId` of its first digest (read without
/// checking: `verify` checks it), or the directory when the trail predates node ids.
fn trail_label(dir: &Path) -> String {
    let from_digest = audit::digest::digest_logs(dir)
        .ok()
        .and_then(|logs| logs.into_iter().next())
        .and_then(|(_, p)| audit::digest::read_log(&p).ok())
        .and_then(|l| l.lines.into_iter().next())
        .and_then(|line| serde_json::from_slice::<serde_json::Value>(&line).ok())
        .and_then(|v| v.get("nodeId").and_then(|n| n.as_str()).map(str::to_owned));
    from_digest.unwrap_or_else(|| dir.display().to_string())
}

/// Runs an audit subcommand.
pub fn run(cmd: AuditCommand) -> miette::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify(v) => verify(v),
        AuditCommand::Keygen { out } => keygen(&out),
        AuditCommand::Explain {
            request_id,
            data_dir: d,
            format,
        } => explain(&request_id, &data_dir(d), format),
        AuditCommand::ExportDigests {
            dest,
            data_dir: d,
            keys,
        } => {
            let (data, pinned) = configured(&keys, d)?;
            let trusted = trusted_keys(&keys, &pinned)?;
            let dir = audit_dir(&data)?;
            let done = match dest.to_str().and_then(|d| d.strip_prefix("s3://")) {
                Some(target) => {
                    let logs = audit::export::checked_logs(&dir, &trusted).into_diagnostic()?;
                    crate::s3_export::export(target, logs)?
                }
                None => audit::export::export_digests(&dir, &dest, &trusted).into_diagnostic()?,
            };
            println!(
                "exported to {}: {} digest(s) written ({} new log(s), {} extended, {} already up to date)",
                dest.display(),
                done.digests,
                done.new_files,
                done.extended,
                done.unchanged
            );
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Query(q) => {
            let (dirs, filter, format) = prepare(q)?;
            let mut trails = Vec::with_capacity(dirs.len());
            for dir in &dirs {
                trails.push(
                    query::Events::open(dir, filter.clone())
                        .into_diagnostic()
                        .wrap_err("cannot read the audit trail")?,
                );
            }
            let mut out = std::io::stdout().lock();
            if format == Format::Table {
                let _ = writeln!(out, "{}", query::TABLE_HEADER);
            }
            let mut broken = false;
            let skipped = query::merge(trails, |_, f| {
                broken = print(&mut out, &f, format).is_err();
                !broken
            })
            .into_diagnostic()
            .wrap_err("cannot read the audit trail")?;
            for (dir, n) in dirs.iter().zip(skipped) {
                if n > 0 {
                    eprintln!(
                        "warning: {n} lines of the trail `{}` are not audit events (run `keyhole audit verify`)",
                        dir.display()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Tail {
            follow,
            lines,
            query: q,
        } => {
            let (dirs, filter, format) = prepare(q)?;
            let [dir] = <[PathBuf; 1]>::try_from(dirs).map_err(|dirs| {
                miette!(
                    "`tail` follows one trail; {} were given (use `keyhole audit query` to merge several)",
                    dirs.len()
                )
            })?;
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

/// `keyhole audit explain`.
fn explain(request_id: &str, data: &Path, format: ExplainFormat) -> miette::Result<ExitCode> {
    if request_id.is_empty() || !request_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(miette!(
            "REQUEST_ID `{request_id}` is not a request id: give the `x-amz-request-id` of the answer (letters and digits, e.g. 1A2B3C4D5E6F7081), as `keyhole audit query` shows it"
        ));
    }
    let dir = audit_dir(data)?;
    let filter = Filter {
        request_id: Some(request_id.to_owned()),
        ..Filter::default()
    };
    let mut found: Option<Found> = None;
    query::scan(&dir, &filter, |f| {
        // The `completed` record has every check; the write-ahead one is used only when the
        // request never completed.
        let better = found
            .as_ref()
            .is_none_or(|old| old.event.stage != Stage::Completed);
        if better {
            found = Some(f);
        }
        true
    })
    .into_diagnostic()
    .wrap_err("cannot read the audit trail")?;
    let Some(found) = found else {
        return Err(miette!(
            "no event with request id {request_id} in the trail `{}` (is it another node's request? use that node's --data-dir)",
            dir.display()
        ));
    };
    let db_path = data.join(keyhole_server::state::STATE_DB_FILE);
    if !db_path.is_file() {
        return Err(miette!(
            "no state database at `{}`: `audit explain` reads the policies of a gateway that keeps its state in SQLite in its data directory (--data-dir); a PostgreSQL state is not supported yet",
            db_path.display()
        ));
    }
    let db = keyhole_server::state::sqlite::Sqlite::open_read_only(&db_path)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot open the state database `{}`", db_path.display()))?;
    let account: keyhole_server::account::AccountRecord =
        std::fs::read(data.join(keyhole_server::account::ACCOUNT_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| {
                miette!(
                    "cannot read `{}`: is `{}` a keyhole data directory?",
                    keyhole_server::account::ACCOUNT_FILE,
                    data.display()
                )
            })?;
    let explanation = db
        .read(|conn| {
            Ok(audit::explain::explain(
                &found.event,
                conn,
                &account.account_id,
            ))
        })
        .into_diagnostic()?;
    let mut out = std::io::stdout().lock();
    match format {
        ExplainFormat::Json => {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&explanation).into_diagnostic()?
            );
        }
        ExplainFormat::Text => {
            let _ = write!(out, "{}", audit::explain::render(&explanation));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print(out: &mut impl Write, f: &Found, format: Format) -> std::io::Result<()> {
    match format {
        Format::Table => writeln!(out, "{}", query::table_row(f)),
        Format::Jsonl => writeln!(out, "{}", f.line),
    }
}

fn prepare(q: QueryArgs) -> miette::Result<(Vec<PathBuf>, Filter, Format)> {
    let dirs = trail_dirs(&q.data_dirs, &q.trails)?;
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
        stage: q.stage.map(|s| match s {
            StageArg::Authorized => Stage::Authorized,
            StageArg::Completed => Stage::Completed,
        }),
        line_contains: None,
        request_id: None,
    };
    Ok((dirs, filter, q.format))
}

fn keygen(out: &Path) -> miette::Result<ExitCode> {
    let signer = audit::keys::Signer::generate();
    let mut public_path = out.as_os_str().to_owned();
    public_path.push(".pub");
    let public_path = PathBuf::from(public_path);
    if public_path.exists() {
        return Err(miette!(
            "`{}` already exists; choose another --out or move it aside (keys are never overwritten)",
            public_path.display()
        ));
    }
    signer.write_new(out).into_diagnostic()?;
    std::fs::write(&public_path, signer.public().to_pem())
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot write `{}`", public_path.display()))?;
    println!(
        "private key: {} (mode 0600; give it to `keyhole serve --audit-signing-key`, and keep it out of the data directory)\npublic key:  {} (keep a copy where the trail is verified: `keyhole audit verify --public-key`)\nfingerprint: {}",
        out.display(),
        public_path.display(),
        signer.public().fingerprint()
    );
    Ok(ExitCode::SUCCESS)
}

/// The data directory and the pinned fingerprints, from `--config` when given.
fn configured(k: &KeyArgs, d: Option<PathBuf>) -> miette::Result<(PathBuf, Vec<String>)> {
    Ok(match &k.config {
        Some(path) => {
            let c = keyhole_server::Config::load(
                Some(path),
                keyhole_server::ConfigOverrides {
                    data_dir: d,
                    ..Default::default()
                },
            )
            .into_diagnostic()?;
            (c.data_dir, c.audit_key_fingerprints)
        }
        None => (data_dir(d), Vec::new()),
    })
}

/// The keys `verify` and `export-digests` trust: only what the operator gave on the command line
/// or in the config.
fn trusted_keys(v: &KeyArgs, pinned: &[String]) -> miette::Result<audit::keys::TrustedKeys> {
    let mut keys = Vec::new();
    for path in &v.public_keys {
        keys.push(audit::keys::PublicKey::read(path).into_diagnostic()?);
    }
    let mut fingerprints = Vec::new();
    for f in v.fingerprints.iter().chain(pinned) {
        fingerprints.push(audit::keys::parse_pin(f).ok_or_else(|| {
            miette!("--fingerprint `{f}` is not a fingerprint: use the 64 hex digits `keyhole serve` printed at first start (FINGERPRINT@SEQ for a key retired at digest #SEQ)")
        })?);
    }
    let keys = audit::keys::TrustedKeys::new(keys, fingerprints);
    if keys.is_empty() {
        return Err(miette!(
            "the operator's key is needed, never the one in the directory checked: give --public-key FILE (from `keyhole audit keygen`), --fingerprint HEX (printed by `keyhole serve` at first start), or --config FILE with audit_key_fingerprints"
        ));
    }
    Ok(keys)
}

fn verify(v: VerifyArgs) -> miette::Result<ExitCode> {
    let (data, pinned) = configured(&v.keys, v.data_dirs.first().cloned())?;
    let keys = trusted_keys(&v.keys, &pinned)?;
    // With --config, its data_dir stands in when no --data-dir or --trails is given.
    let dirs = if v.data_dirs.is_empty() && v.trails.is_empty() {
        vec![audit_dir(&data)?]
    } else {
        trail_dirs(&v.data_dirs, &v.trails)?
    };
    if let Some(w) = &v.digests {
        if !w.is_dir() {
            return Err(miette!("--digests `{}` is not a directory", w.display()));
        }
        if dirs.len() > 1 {
            return Err(miette!(
                "--digests holds one trail's exported digests, and {} trails were given: verify each node's trail with its own copy (one --data-dir and its --digests per run)",
                dirs.len()
            ));
        }
    }
    let max_age = v
        .max_age
        .as_deref()
        .map(|t| query::parse_time(t, chrono::Utc::now()).map_err(|e| miette!("--max-age: {e}")))
        .transpose()?;
    let mut out = std::io::stdout().lock();
    let several = dirs.len() > 1;
    let mut worst = Outcome::Intact;
    // Who each trail says it is: its node id and its genesis signature. Two trails that are the
    // same node (the same trail given twice, or one node's copy in another's place) would each
    // verify, and the set would look complete while a node's trail is missing (review 10, F3).
    let mut identities: Vec<(String, Option<String>, Option<String>)> = Vec::new();
    for dir in &dirs {
        let label = trail_label(dir);
        let (outcome, lines, identity) = verify_one(dir, &keys, v.digests.as_deref(), max_age)
            .wrap_err_with(|| format!("trail of node {label} (`{}`)", dir.display()))?;
        let (node, genesis) = identity;
        let mut lines = lines;
        let mut outcome = outcome;
        for (other, other_node, other_genesis) in &identities {
            let same_node = node.is_some() && node == *other_node;
            let same_genesis = genesis.is_some() && genesis == *other_genesis;
            if same_node || same_genesis {
                lines.push(format!(
                    "FAILED: this trail is the same node as `{other}` ({}): the same trail given twice, or one node's trail in another's place; each node's own trail is needed",
                    node.as_deref().or(other_node.as_deref()).unwrap_or("same genesis digest")
                ));
                outcome = Outcome::Failed;
            }
        }
        identities.push((dir.display().to_string(), node, genesis));
        if several {
            let _ = writeln!(out, "node {label} ({}):", dir.display());
        }
        for line in lines {
            let _ = writeln!(out, "{}{line}", if several { "  " } else { "" });
        }
        worst = worst.max(outcome);
    }
    if several {
        let _ = writeln!(
            out,
            "{} trails: {}",
            dirs.len(),
            match worst {
                Outcome::Intact => "all intact",
                Outcome::Discontinuities => "intact apart from signed discontinuities",
                Outcome::Failed => "at least one FAILED (see above)",
            }
        );
    }
    Ok(match worst {
        Outcome::Intact => ExitCode::SUCCESS,
        Outcome::Failed => ExitCode::FAILURE,
        Outcome::Discontinuities => ExitCode::from(3),
    })
}

/// How one trail checked out, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Intact,
    Discontinuities,
    Failed,
}

/// Checks one trail; returns how it checked out and the lines to print about it.
#[expect(
    clippy::type_complexity,
    reason = "the outcome, the lines, and the trail's (node id, genesis signature)"
)]
fn verify_one(
    dir: &Path,
    keys: &audit::keys::TrustedKeys,
    witness: Option<&Path>,
    max_age: Option<chrono::DateTime<chrono::Utc>>,
) -> miette::Result<(Outcome, Vec<String>, (Option<String>, Option<String>))> {
    let report = audit::verify::verify(audit::verify::Options {
        audit_dir: dir,
        witness,
        keys,
        from: audit::verify::Walk::Beginning,
    })
    .into_diagnostic()?;
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    let mut out = Vec::new();
    let mut problem = report.problem.clone();
    if problem.is_none() {
        if let (Some(limit), Some(last)) = (max_age, &report.last) {
            let newest = chrono::DateTime::parse_from_rfc3339(&last.digest.digest_end_time)
                .map(|t| t.with_timezone(&chrono::Utc))
                .ok();
            if newest.is_none_or(|t| t < limit) {
                problem = Some(audit::verify::Problem {
                    position: "(newest digest)".into(),
                    reason: format!(
                        "the newest digest #{} is from {}, older than --max-age: the writer stopped or stalled, or newer digests were removed (compare with the exported digests)",
                        last.digest.digest_seq, last.digest.digest_end_time
                    ),
                    seq: 0,
                });
            }
        }
    }
    let summary = describe(&report);
    let code = match &problem {
        Some(p) => {
            out.push(format!(
                "FAILED at {}: {} ({} events before it check out)",
                p.position, p.reason, report.events
            ));
            Outcome::Failed
        }
        None if report.discontinuities.is_empty() => {
            out.push(format!("ok: {summary}"));
            Outcome::Intact
        }
        None => {
            out.push(format!(
                "ok apart from {} signed discontinuit{}: {summary}",
                report.discontinuities.len(),
                if report.discontinuities.len() == 1 {
                    "y"
                } else {
                    "ies"
                }
            ));
            Outcome::Discontinuities
        }
    };
    for d in &report.discontinuities {
        out.push(format!("discontinuity: {d}"));
    }
    for g in &report.gaps {
        out.push(format!("gap: {g}"));
    }
    if report.unsigned > 0 {
        let (n, at) = report.last.as_ref().map_or((0, String::new()), |l| {
            (l.digest.digest_seq, l.digest.digest_end_time.clone())
        });
        out.push(format!(
            "unsigned: {} event(s) after the last signed digest #{n} ({at}) check out by chain only; the gateway signs them within its digest interval (at most {} events wait)",
            report.unsigned,
            audit::sink::MAX_UNSIGNED_EVENTS
        ));
    }
    let lists = [
        (
            report.orphan_count,
            &report.orphans,
            "orphaned: {} `authorized` record(s) without a `completed` one: authorized, outcome unknown (the gateway stopped before the request finished, the trail could not record how it ended, or the trail was cut between them):",
        ),
        (
            report.open_count,
            &report.open,
            "open: {} `authorized` record(s) since the gateway last started have no `completed` one yet: requests still running if it is up (their `completed` records follow), cut short if it died since:",
        ),
    ];
    for (count, records, heading) in lists {
        if count > 0 {
            out.push(heading.replacen("{}", &count.to_string(), 1));
            for o in records {
                out.push(format!(
                    "  {} {} {} {}",
                    o.position, o.event_time, o.event_name, o.request_id
                ));
            }
        }
    }
    let node = report
        .first
        .as_ref()
        .or(report.last.as_ref())
        .and_then(|d| d.digest.node_id.clone());
    let genesis = report
        .first
        .as_ref()
        .filter(|d| d.digest.digest_seq == 1)
        .map(|d| d.signature.clone());
    Ok((code, out, (node, genesis)))
}

fn describe(report: &audit::verify::Report) -> String {
    let digests = match (&report.first, &report.last) {
        (Some(f), Some(l)) => format!(
            "{} signed digest(s), #{} {} ({}) to #{} {} ({})",
            report.digests,
            f.digest.digest_seq,
            f.digest.kind.as_str(),
            f.digest.digest_end_time,
            l.digest.digest_seq,
            l.digest.kind.as_str(),
            l.digest.digest_end_time
        ),
        _ => "no digest".into(),
    };
    let key = report.last.as_ref().map_or_else(String::new, |l| {
        format!(", key {}", l.digest.public_key_fingerprint)
    });
    format!(
        "{} events in {} files match {digests}{key}",
        report.events, report.files
    )
}
