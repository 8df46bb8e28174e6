//! `keyhole policy validate` and `keyhole policy simulate`: the policy engine from the command
//! line (DESIGN.md sections 4 and 10).
//!
//! `simulate` takes the DESIGN.md JSON input from a file or stdin (`--jsonl` for one case a
//! line, one JSON result a line, as used by large differential runs), or a flags form
//! (`--policy FILE... --resource-policy FILE --action A --resource ARN --context key=value...`)
//! whose human output shows the decision and the deciding statements with their lines.
//!
//! Exit codes for a single case: 0 `Allowed`, 2 `ImplicitlyDenied`, 3 `ExplicitlyDenied`;
//! `--jsonl` exits 0 once every line was answered. `validate` exits 0 when the document is
//! valid, 1 otherwise. Invalid input is reported with its JSON path and line/column.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use keyhole_policy::simulate::{input_from_json, output_to_json};
use keyhole_policy::{
    parse_policy, simulate, CompiledPolicy, Context, DecisionKind, PolicyKind, PolicyText,
    SimulateInput, SimulateOutput,
};
use miette::{miette, IntoDiagnostic, NamedSource, Report, WrapErr};

/// The role a policy is validated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyRole {
    /// Identity-based policy (no `Principal`, `Resource` required).
    Identity,
    /// Resource-based policy such as a bucket policy (`Principal` required).
    Resource,
    /// Permissions boundary.
    Boundary,
    /// Session policy.
    Session,
}

impl From<PolicyRole> for PolicyKind {
    fn from(r: PolicyRole) -> Self {
        match r {
            PolicyRole::Identity => PolicyKind::Identity,
            PolicyRole::Resource => PolicyKind::Resource,
            PolicyRole::Boundary => PolicyKind::PermissionsBoundary,
            PolicyRole::Session => PolicyKind::Session,
        }
    }
}

/// `keyhole policy ...` subcommands.
#[derive(Debug, clap::Subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once per process; boxing buys nothing"
)]
pub enum PolicyCommand {
    /// Check a policy document: grammar, values, limits; errors name the JSON path and line.
    Validate {
        /// The policy document (`-` for stdin).
        file: PathBuf,
        /// Also check the document can be used in this role.
        #[arg(long, value_enum)]
        role: Option<PolicyRole>,
    },
    /// Find mistakes and over-permissive grants in policy documents, classed as IAM Access
    /// Analyzer classes them (ERROR, SECURITY_WARNING, WARNING, SUGGESTION), each with an issue
    /// code, the AWS page it rests on and its location. Exits 1 on errors (and on security
    /// warnings with `--strict`); see docs/POLICY_LINT.md.
    Lint(crate::lint_cmd::LintArgs),
    /// Decide a request as AWS would and explain the decision.
    ///
    /// Without `--action`, reads the JSON simulator input from FILE or stdin and prints the
    /// JSON result: {"request": {"action": "s3:GetObject", "resource": ARN, "principal": ARN,
    /// "context": {"aws:SourceIp": "203.0.113.42"}}, "identityPolicies": [POLICY...],
    /// "resourcePolicy": POLICY, "permissionBoundaries": [POLICY...], "sessionPolicy": POLICY}
    /// (every field documented in docs/SIMULATOR.md). With `--action`, builds the case from
    /// flags and prints a human explanation (or JSON with `--json`).
    Simulate {
        /// JSON input file (`-` or absent: stdin). Not used with `--action`.
        input: Option<PathBuf>,
        /// One JSON input a line in, one JSON result a line out.
        #[arg(long)]
        jsonl: bool,
        /// Identity-based policy file (repeatable).
        #[arg(long = "policy", value_name = "FILE")]
        policies: Vec<PathBuf>,
        /// Resource-based policy file (e.g. a bucket policy).
        #[arg(long, value_name = "FILE")]
        resource_policy: Option<PathBuf>,
        /// A role's trust policy file, decided as AWS decides `sts:AssumeRole`: it must admit the
        /// caller itself (naming the caller, or naming the account and then the caller's identity
        /// policies must allow too).
        #[arg(long, value_name = "FILE", conflicts_with = "resource_policy")]
        trust_policy: Option<PathBuf>,
        /// Permissions boundary file (repeatable).
        #[arg(long = "boundary", value_name = "FILE")]
        boundaries: Vec<PathBuf>,
        /// Session policy file.
        #[arg(long, value_name = "FILE")]
        session_policy: Option<PathBuf>,
        /// Caller ARN (`anonymous` for unsigned requests; default: a simulated IAM user).
        #[arg(long)]
        principal: Option<String>,
        /// Action, e.g. `s3:GetObject`; selects the flags form.
        #[arg(long)]
        action: Option<String>,
        /// Resource ARN, e.g. `arn:aws:s3:::bucket/key`.
        #[arg(long)]
        resource: Option<String>,
        /// Account that owns the resource (default: the caller's).
        #[arg(long)]
        resource_account: Option<String>,
        /// Context key, `key=value` (repeat a key for a multi-valued key).
        #[arg(long = "context", value_name = "KEY=VALUE")]
        context: Vec<String>,
        /// Apply S3 Block Public Access `RestrictPublicBuckets` to the resource policy.
        #[arg(long)]
        block_public_access: bool,
        /// Print the JSON result in the flags form too.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `keyhole policy` subcommand.
pub fn run(cmd: PolicyCommand) -> miette::Result<ExitCode> {
    match cmd {
        PolicyCommand::Validate { file, role } => validate(&file, role),
        PolicyCommand::Lint(args) => crate::lint_cmd::run(args),
        PolicyCommand::Simulate {
            input,
            jsonl,
            policies,
            resource_policy,
            trust_policy,
            boundaries,
            session_policy,
            principal,
            action,
            resource,
            resource_account,
            context,
            block_public_access,
            json,
        } => match action {
            Some(action) => {
                if input.is_some() || jsonl {
                    return Err(miette!("`--action` builds the case from flags; do not also give an input file or `--jsonl`"));
                }
                let resource = resource.ok_or_else(|| miette!("`--action` needs `--resource`"))?;
                let case = SimulateInput {
                    principal,
                    action,
                    resource,
                    resource_account,
                    context: parse_context(&context)?,
                    identity_policies: policies
                        .iter()
                        .map(|p| read_policy(p))
                        .collect::<miette::Result<_>>()?,
                    resource_policy: resource_policy
                        .as_deref()
                        .or(trust_policy.as_deref())
                        .map(read_policy)
                        .transpose()?,
                    trust_policy: trust_policy.is_some(),
                    boundaries: boundaries
                        .iter()
                        .map(|p| read_policy(p))
                        .collect::<miette::Result<_>>()?,
                    session_policy: session_policy.as_deref().map(read_policy).transpose()?,
                    restrict_public_buckets: block_public_access,
                };
                let out = simulate(&case).map_err(|e| policy_report(e, &case))?;
                if json {
                    print_json(&output_to_json(&out))?;
                } else {
                    print_human(&out)?;
                }
                Ok(exit_for(out.decision.kind))
            }
            None => {
                let flags_given = !policies.is_empty()
                    || resource_policy.is_some()
                    || trust_policy.is_some()
                    || !boundaries.is_empty()
                    || session_policy.is_some()
                    || principal.is_some()
                    || resource.is_some()
                    || resource_account.is_some()
                    || block_public_access
                    || !context.is_empty();
                if flags_given {
                    return Err(miette!(
                        "the flags form needs `--action`; without it the case is read as JSON"
                    ));
                }
                let text = read_input(input.as_deref())?;
                if jsonl {
                    run_jsonl(&text)
                } else {
                    let value: serde_json::Value = serde_json::from_str(&text)
                        .into_diagnostic()
                        .wrap_err("simulator input is not JSON")?;
                    let case = input_from_json(&value).map_err(Report::new)?;
                    let out = simulate(&case).map_err(|e| policy_report(e, &case))?;
                    print_json(&output_to_json(&out))?;
                    Ok(exit_for(out.decision.kind))
                }
            }
        },
    }
}

fn exit_for(kind: DecisionKind) -> ExitCode {
    match kind {
        DecisionKind::Allowed => ExitCode::SUCCESS,
        DecisionKind::ImplicitlyDenied => ExitCode::from(2),
        DecisionKind::ExplicitlyDenied => ExitCode::from(3),
    }
}

pub(crate) fn read_input(path: Option<&Path>) -> miette::Result<String> {
    match path {
        None => read_stdin(),
        Some(p) if p == Path::new("-") => read_stdin(),
        Some(p) => std::fs::read_to_string(p)
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot read `{}`", p.display())),
    }
}

fn read_stdin() -> miette::Result<String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .into_diagnostic()
        .wrap_err("cannot read stdin")?;
    Ok(s)
}

fn read_policy(path: &Path) -> miette::Result<PolicyText> {
    let text = read_input(Some(path))?;
    Ok(PolicyText {
        name: Some(path.display().to_string()),
        text,
    })
}

/// Attaches the offending document's text to a policy error so the report shows the spot.
fn policy_report(err: keyhole_policy::SimulateError, case: &SimulateInput) -> Report {
    let source = match &err {
        keyhole_policy::SimulateError::Policy { which, .. } => find_policy(case, which),
        keyhole_policy::SimulateError::Input { .. } => None,
    };
    match source {
        Some(t) => {
            let name = t.name.clone().unwrap_or_else(|| "policy".to_owned());
            Report::new(err).with_source_code(NamedSource::new(name, t.text.clone()))
        }
        None => Report::new(err),
    }
}

fn find_policy<'a>(case: &'a SimulateInput, which: &str) -> Option<&'a PolicyText> {
    let index = |prefix: &str| -> Option<usize> {
        which.strip_prefix(prefix)?.strip_suffix(']')?.parse().ok()
    };
    if which == "resourcePolicy" {
        case.resource_policy.as_ref()
    } else if which == "sessionPolicy" {
        case.session_policy.as_ref()
    } else if let Some(i) = index("identityPolicies[") {
        case.identity_policies.get(i)
    } else {
        index("permissionBoundaries[").and_then(|i| case.boundaries.get(i))
    }
}

fn parse_context(pairs: &[String]) -> miette::Result<Context> {
    let mut grouped: Vec<(String, Vec<String>)> = Vec::new();
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| miette!("invalid `--context {p}`; expected `key=value`"))?;
        if k.is_empty() {
            return Err(miette!("invalid `--context {p}`; the key is empty"));
        }
        match grouped.iter_mut().find(|(g, _)| g.eq_ignore_ascii_case(k)) {
            Some((_, vals)) => vals.push(v.to_owned()),
            None => grouped.push((k.to_owned(), vec![v.to_owned()])),
        }
    }
    let mut ctx = Context::new();
    for (k, mut vals) in grouped {
        if vals.len() == 1 {
            ctx.insert(&k, vals.remove(0));
        } else {
            ctx.insert_multi(&k, vals);
        }
    }
    Ok(ctx)
}

fn validate(file: &Path, role: Option<PolicyRole>) -> miette::Result<ExitCode> {
    let text = read_input(Some(file))?;
    let name = file.display().to_string();
    let policy = match parse_policy(&text) {
        Ok(p) => p,
        Err(e) => {
            let report = Report::new(e).with_source_code(NamedSource::new(name, text));
            eprintln!("{report:?}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Some(role) = role {
        if let Err(e) = CompiledPolicy::compile(&policy, role.into()) {
            let line = policy.statements.get(e.statement()).map_or(0, |s| s.line);
            eprintln!("{name}:{line}: {e}");
            return Ok(ExitCode::FAILURE);
        }
    }
    // Names the catalogues do not know are warnings: the document stays valid (AWS accepts it).
    let findings = keyhole_policy::lint::lint(&text, &keyhole_policy::LintOptions::default());
    for f in findings
        .iter()
        .filter(|f| keyhole_policy::lint::names::CATALOGUE_CODES.contains(&f.issue_code))
    {
        let (line, col, path) = f.locations.first().map_or((0, 0, String::new()), |l| {
            (l.start.line, l.start.column + 1, l.path_text())
        });
        eprintln!(
            "{name}:{line}:{col}: warning: {} at `{path}` ({}; {})",
            f.details, f.issue_code, f.learn_more_link
        );
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{name}: valid ({} statement{})",
        policy.statements.len(),
        plural(policy.statements.len())
    )
    .into_diagnostic()?;
    Ok(ExitCode::SUCCESS)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn run_jsonl(text: &str) -> miette::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    for (i, line) in text.as_bytes().lines().enumerate() {
        let line = line.into_diagnostic()?;
        if line.trim().is_empty() {
            continue;
        }
        let result = serde_json::from_str::<serde_json::Value>(&line)
            .map_err(|e| format!("line {}: input is not JSON: {e}", i + 1))
            .and_then(|v| {
                keyhole_policy::simulate_json(&v).map_err(|e| format!("line {}: {e}", i + 1))
            });
        let value = match result {
            Ok(v) => v,
            Err(message) => serde_json::json!({ "error": message }),
        };
        writeln!(out, "{value}").into_diagnostic()?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_json(v: &serde_json::Value) -> miette::Result<()> {
    let text = serde_json::to_string_pretty(v).into_diagnostic()?;
    writeln!(std::io::stdout().lock(), "{text}").into_diagnostic()
}

fn location(r: &keyhole_policy::StatementRef) -> String {
    let name = r
        .policy_name
        .clone()
        .unwrap_or_else(|| format!("{} policy {}", r.policy_kind.as_str(), r.policy_index));
    let sid = r
        .sid
        .as_ref()
        .map(|s| format!(" `{s}`"))
        .unwrap_or_default();
    format!(
        "{name}:{} statement {}{sid} ({} {})",
        r.line,
        r.statement_index,
        r.effect.as_str(),
        r.policy_kind.as_str()
    )
}

fn print_human(out: &SimulateOutput) -> miette::Result<()> {
    let d = &out.decision;
    let mut w = std::io::stdout().lock();
    let mut lines = vec![format!("decision: {}", d.kind.as_str())];
    for m in &d.matched {
        lines.push(format!("  decided by {}", location(m)));
    }
    if d.kind != DecisionKind::Allowed {
        for f in &d.failures {
            lines.push(format!(
                "  not applied {}: {}",
                location(&f.statement),
                f.element
            ));
        }
    }
    if !d.missing_context_keys.is_empty() {
        lines.push(format!(
            "missing context keys: {}",
            d.missing_context_keys.join(", ")
        ));
    }
    lines.push(out.explanation.clone());
    for l in lines {
        writeln!(w, "{l}").into_diagnostic()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_pairs_group_repeated_keys() {
        let ctx = parse_context(&[
            "aws:SourceIp=203.0.113.42".to_owned(),
            "s3:prefix=a/".to_owned(),
            "S3:Prefix=b/".to_owned(),
            "k:eq=x=y".to_owned(),
        ])
        .unwrap();
        assert_eq!(ctx.get("aws:sourceip").unwrap().values(), ["203.0.113.42"]);
        assert_eq!(ctx.get("s3:prefix").unwrap().values(), ["a/", "b/"]);
        assert_eq!(ctx.get("k:eq").unwrap().values(), ["x=y"]);
        assert!(parse_context(&["novalue".to_owned()]).is_err());
        assert!(parse_context(&["=v".to_owned()]).is_err());
    }

    #[test]
    fn exit_codes_follow_the_decision() {
        assert_eq!(exit_for(DecisionKind::Allowed), ExitCode::SUCCESS);
        assert_eq!(exit_for(DecisionKind::ImplicitlyDenied), ExitCode::from(2));
        assert_eq!(exit_for(DecisionKind::ExplicitlyDenied), ExitCode::from(3));
    }

    #[test]
    fn policy_errors_find_their_document() {
        let text = |t: &str| PolicyText {
            name: Some(t.to_owned()),
            text: String::new(),
        };
        let case = SimulateInput {
            identity_policies: vec![text("a"), text("b")],
            boundaries: vec![text("c")],
            resource_policy: Some(text("r")),
            ..SimulateInput::default()
        };
        let name = |w: &str| find_policy(&case, w).and_then(|p| p.name.clone());
        assert_eq!(name("identityPolicies[1]").as_deref(), Some("b"));
        assert_eq!(name("permissionBoundaries[0]").as_deref(), Some("c"));
        assert_eq!(name("resourcePolicy").as_deref(), Some("r"));
        assert_eq!(name("sessionPolicy"), None);
        assert_eq!(name("identityPolicies[7]"), None);
    }

    #[test]
    fn flags_form_parses() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(subcommand)]
            cmd: PolicyCommand,
        }
        let cli = Cli::try_parse_from([
            "keyhole",
            "simulate",
            "--policy",
            "a.json",
            "--policy",
            "b.json",
            "--action",
            "s3:GetObject",
            "--resource",
            "arn:aws:s3:::b/k",
            "--context",
            "aws:SourceIp=1.2.3.4",
        ])
        .unwrap();
        match cli.cmd {
            PolicyCommand::Simulate {
                policies,
                action,
                context,
                ..
            } => {
                assert_eq!(policies.len(), 2);
                assert_eq!(action.as_deref(), Some("s3:GetObject"));
                assert_eq!(context, ["aws:SourceIp=1.2.3.4"]);
            }
            PolicyCommand::Validate { .. } | PolicyCommand::Lint(_) => {
                panic!("parsed as another subcommand")
            }
        }
    }
}
