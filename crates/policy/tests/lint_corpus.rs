//! The linter against its corpus: `tests/lint_corpus/*.json`, each an array of cases
//! `{"name", "page", "type"?, "account"?, "tls"?, "policy" | "policy_text", "expect"}`.
//! `page` is the AWS documentation page the case rests on; `expect` lists the issue codes the
//! case must produce, exactly (as a multiset), each optionally with `@path` naming where one of
//! its findings must be (`INVALID_ACTION@Statement[0].Action`).
//!
//! The same files feed the comparison with parliament (`scripts/lint_vs_parliament.py`,
//! docs/POLICY_LINT.md).

use std::path::Path;

use keyhole_policy::lint::{lint, LintOptions, LintPolicyType};

fn policy_type(s: &str) -> Option<LintPolicyType> {
    Some(match s {
        "identity" => LintPolicyType::Identity,
        "resource" => LintPolicyType::Resource,
        "trust" => LintPolicyType::Trust,
        "boundary" => LintPolicyType::Boundary,
        "session" => LintPolicyType::Session,
        _ => return None,
    })
}

#[test]
fn corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lint_corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut cases = 0;
    let mut findings = 0;
    let mut failures = Vec::new();
    for file in files {
        let list: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        for case in list.as_array().unwrap() {
            cases += 1;
            let name = case["name"].as_str().unwrap();
            let page = case["page"].as_str().unwrap();
            assert!(
                page.starts_with("https://docs.aws.amazon.com/"),
                "{name}: the page must be AWS documentation"
            );
            let text = match case.get("policy_text") {
                Some(t) => t.as_str().unwrap().to_owned(),
                None => serde_json::to_string_pretty(&case["policy"]).unwrap(),
            };
            let options = LintOptions {
                policy_type: case["type"]
                    .as_str()
                    .map(|t| policy_type(t).expect("a known type")),
                account: case["account"].as_str().map(str::to_owned),
                tls: case["tls"].as_bool().unwrap_or(false),
            };
            let got = lint(&text, &options);
            findings += got.len();
            let mut got_codes: Vec<&str> = got.iter().map(|f| f.issue_code).collect();
            got_codes.sort_unstable();
            let expect: Vec<&str> = case["expect"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap())
                .collect();
            let mut want_codes: Vec<&str> = expect
                .iter()
                .map(|e| e.split_once('@').map_or(*e, |(c, _)| c))
                .collect();
            want_codes.sort_unstable();
            if got_codes != want_codes {
                failures.push(format!(
                    "{}: {name}: expected {want_codes:?}, got {:?}",
                    file.display(),
                    got.iter()
                        .map(|f| format!(
                            "{}@{} ({})",
                            f.issue_code,
                            f.locations
                                .first()
                                .map(|l| l.path_text())
                                .unwrap_or_default(),
                            f.details
                        ))
                        .collect::<Vec<_>>()
                ));
                continue;
            }
            for e in &expect {
                if let Some((code, path)) = e.split_once('@') {
                    let found = got.iter().any(|f| {
                        f.issue_code == code
                            && f.locations.first().is_some_and(|l| l.path_text() == path)
                    });
                    if !found {
                        failures.push(format!(
                            "{name}: no {code} at {path}; got {:?}",
                            got.iter()
                                .map(|f| format!(
                                    "{}@{}",
                                    f.issue_code,
                                    f.locations
                                        .first()
                                        .map(|l| l.path_text())
                                        .unwrap_or_default()
                                ))
                                .collect::<Vec<_>>()
                        ));
                    }
                }
            }
            for f in &got {
                assert!(
                    !f.locations.is_empty(),
                    "{name}: {} has no location",
                    f.issue_code
                );
                assert!(f
                    .learn_more_link
                    .starts_with("https://docs.aws.amazon.com/"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        cases >= 100,
        "the corpus has {cases} cases; the issue asks for 100"
    );
    eprintln!("lint corpus: {cases} cases, {findings} findings");
}
