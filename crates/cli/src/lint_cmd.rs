//! `keyhole policy lint`: findings about policy documents, classed as IAM Access Analyzer's
//! `ValidatePolicy` classes them, as code frames (`--format text`) or as the `ValidatePolicy`
//! response shape (`--format json`), so CI tools written for Access Analyzer read the output.
//!
//! Exit status: 1 when a file has an `ERROR` finding (or, with `--strict`, a
//! `SECURITY_WARNING`), 0 otherwise. Warnings and suggestions never fail a run.

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use keyhole_policy::lint::{self, Finding, FindingType, LintOptions, LintPolicyType};
use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, IntoDiagnostic, LabeledSpan, NamedSource,
    Severity, SourceCode,
};

/// What the linted policy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LintType {
    /// Identity-based policy (user, group, role, job).
    Identity,
    /// Resource-based policy such as a bucket policy.
    Resource,
    /// A role's trust policy.
    Trust,
    /// Permissions boundary.
    Boundary,
    /// Session policy.
    Session,
}

impl From<LintType> for LintPolicyType {
    fn from(t: LintType) -> Self {
        match t {
            LintType::Identity => LintPolicyType::Identity,
            LintType::Resource => LintPolicyType::Resource,
            LintType::Trust => LintPolicyType::Trust,
            LintType::Boundary => LintPolicyType::Boundary,
            LintType::Session => LintPolicyType::Session,
        }
    }
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LintFormat {
    /// Findings with code frames.
    Text,
    /// Access Analyzer's `ValidatePolicy` response: `{"findings": [...]}`.
    Json,
}

/// The arguments of `keyhole policy lint`.
#[derive(Debug, clap::Args)]
pub struct LintArgs {
    /// Policy documents (`-` for stdin).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// What the policies are; enables the checks for that kind (principals, trust).
    #[arg(long = "type", value_enum)]
    pub policy_type: Option<LintType>,
    /// `text` (code frames) or `json` (the ValidatePolicy response; one object a line when
    /// several files are given).
    #[arg(long, value_enum, default_value = "text")]
    pub format: LintFormat,
    /// Also fail (exit 1) on security warnings.
    #[arg(long)]
    pub strict: bool,
    /// The account that owns the resource: principals of other accounts are reported.
    #[arg(long, value_name = "ACCOUNT_ID")]
    pub account: Option<String>,
    /// The gateway serves TLS: suggest requiring `aws:SecureTransport` in resource policies.
    #[arg(long)]
    pub tls: bool,
}

/// Runs `keyhole policy lint`.
pub fn run(args: LintArgs) -> miette::Result<ExitCode> {
    let options = LintOptions {
        policy_type: args.policy_type.map(Into::into),
        account: args.account.clone(),
        tls: args.tls,
    };
    let mut failed = false;
    let several = args.files.len() > 1;
    let mut out = std::io::stdout().lock();
    for file in &args.files {
        let text = crate::policy_cmd::read_input(Some(file))?;
        let name = file.display().to_string();
        let findings = lint::lint(&text, &options);
        failed |= lint::fails(&findings, args.strict);
        match args.format {
            LintFormat::Json => {
                let mut v = lint::findings_to_json(&findings);
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("file".into(), serde_json::Value::String(name));
                }
                let s = if several {
                    serde_json::to_string(&v)
                } else {
                    serde_json::to_string_pretty(&v)
                }
                .into_diagnostic()?;
                writeln!(out, "{s}").into_diagnostic()?;
            }
            LintFormat::Text => {
                let theme = if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                    GraphicalTheme::unicode()
                } else {
                    GraphicalTheme::unicode_nocolor()
                };
                let handler = GraphicalReportHandler::new_themed(theme).with_links(false);
                for f in &findings {
                    let shown = Shown {
                        finding: f,
                        source: NamedSource::new(name.clone(), text.clone()),
                    };
                    let mut s = String::new();
                    handler
                        .render_report(&mut s, &shown)
                        .map_err(|e| miette::miette!("cannot render a finding: {e}"))?;
                    write!(out, "{s}").into_diagnostic()?;
                }
                writeln!(out, "{name}: {}", summary(&findings)).into_diagnostic()?;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `no findings`, or counts by class: `2 findings: 1 error, 1 suggestion`.
pub fn summary(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "no findings".into();
    }
    let classes = [
        (FindingType::Error, "error"),
        (FindingType::SecurityWarning, "security warning"),
        (FindingType::Warning, "warning"),
        (FindingType::Suggestion, "suggestion"),
    ];
    let parts: Vec<String> = classes
        .iter()
        .filter_map(|(t, word)| {
            let n = findings.iter().filter(|f| f.finding_type == *t).count();
            (n > 0).then(|| format!("{n} {word}{}", if n == 1 { "" } else { "s" }))
        })
        .collect();
    format!(
        "{} finding{}: {}",
        findings.len(),
        if findings.len() == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

/// A finding with its document, as a miette diagnostic (code frame, code, link).
struct Shown<'a> {
    finding: &'a Finding,
    source: NamedSource<String>,
}

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shown")
            .field("finding", self.finding)
            .finish()
    }
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self
            .finding
            .locations
            .first()
            .map(|l| format!(" at `{}`", l.path_text()))
            .unwrap_or_default();
        write!(
            f,
            "{}{at}: {}",
            self.finding.finding_type, self.finding.details
        )
    }
}

impl std::error::Error for Shown<'_> {}

impl Diagnostic for Shown<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.finding.issue_code))
    }

    fn severity(&self) -> Option<Severity> {
        Some(match self.finding.finding_type {
            FindingType::Error => Severity::Error,
            FindingType::SecurityWarning | FindingType::Warning => Severity::Warning,
            FindingType::Suggestion => Severity::Advice,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(format!("see {}", self.finding.learn_more_link)))
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let spans = self.finding.locations.iter().map(|l| {
            let label = format!("line {}, column {}", l.start.line, l.start.column + 1);
            LabeledSpan::new(Some(label), l.bytes.offset, l.bytes.len)
        });
        Some(Box::new(spans))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_count_by_class() {
        assert_eq!(summary(&[]), "no findings");
        let f = lint::lint(
            r#"{"Statement": [{"Effect": "Allow", "Action": ["s3:GetObjct", "s3:GetObjct"], "Resource": "*"}]}"#,
            &LintOptions::default(),
        );
        let s = summary(&f);
        assert!(s.contains("2 errors"), "{s}");
        assert!(s.contains("1 warning"), "{s}");
        assert!(s.contains("1 suggestion"), "{s}");
    }
}
