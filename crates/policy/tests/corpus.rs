//! Golden corpus: every case in `tests/corpus/*.jsonl` names the AWS documentation page whose
//! rule it checks (`doc`) and runs through the public simulator (`simulate_json`) or the
//! validator (`parse_policy`).
//!
//! Case shape: `{"name", "doc", "input": <simulator input>, "identityPolicyFiles": [..]?,
//! "expect": {"decision", "matchedSids"?, "missingContextKeys"?, "failedContains"?}}` or
//! `{"name", "doc", "validate": <policy text>, "expect": {"errorPath"}}` or a simulator input
//! with `"expect": {"simulateError": <which policy>}` for policies invalid in their role. Files named in
//! `identityPolicyFiles` are read from `shared/test-data/policies` at test time and appended
//! to `identityPolicies`.

#![expect(
    clippy::indexing_slicing,
    reason = "`serde_json::Value` indexing returns `Null` for absent keys; it never panics"
)]

use std::path::Path;

use keyhole_policy::{parse_policy, simulate_json};
use serde_json::Value;

const SEED_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/test-data/policies"
);

fn run_case(case: &Value) -> Result<(), String> {
    let expect = &case["expect"];
    if let Some(text) = case["validate"].as_str() {
        let err = match parse_policy(text) {
            Ok(_) => return Err("expected a validation error, the policy parsed".into()),
            Err(e) => e,
        };
        let want = expect["errorPath"].as_str().unwrap_or_default();
        if err.path() != want {
            return Err(format!(
                "error path `{}` (want `{want}`): {err}",
                err.path()
            ));
        }
        return Ok(());
    }
    let mut input = case["input"].clone();
    if let Some(files) = case["identityPolicyFiles"].as_array() {
        let list = input
            .as_object_mut()
            .ok_or("input is not an object")?
            .entry("identityPolicies")
            .or_insert_with(|| Value::Array(Vec::new()));
        for f in files {
            let path = Path::new(SEED_DIR).join(f.as_str().unwrap_or_default());
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            list.as_array_mut()
                .ok_or("identityPolicies is not an array")?
                .push(Value::String(text));
        }
    }
    if let Some(which) = expect["simulateError"].as_str() {
        return match simulate_json(&input) {
            Err(keyhole_policy::SimulateError::Policy { which: w, .. }) if w == which => Ok(()),
            Err(e) => Err(format!("wrong error: {e}")),
            Ok(out) => Err(format!("expected an error for `{which}`, got {out}")),
        };
    }
    let out = simulate_json(&input).map_err(|e| format!("simulation failed: {e}"))?;
    if out["decision"] != expect["decision"] {
        return Err(format!(
            "decision {} (want {}); output {out:#}",
            out["decision"], expect["decision"]
        ));
    }
    if let Some(sids) = expect.get("matchedSids") {
        let got: Vec<Value> = out["matchedStatements"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| m["sid"].clone())
            .collect();
        let want = sids.as_array().cloned().unwrap_or_default();
        let mut g: Vec<String> = got.iter().map(Value::to_string).collect();
        let mut w: Vec<String> = want.iter().map(Value::to_string).collect();
        g.sort();
        w.sort();
        if g != w {
            return Err(format!("matched sids {g:?} (want {w:?})"));
        }
    }
    if let Some(keys) = expect.get("missingContextKeys") {
        if &out["missingContextKeys"] != keys {
            return Err(format!(
                "missing keys {} (want {keys})",
                out["missingContextKeys"]
            ));
        }
    }
    if let Some(s) = expect["failedContains"].as_str() {
        let failures = out["failures"].to_string();
        if !failures.contains(s) {
            return Err(format!("failures {failures} do not mention `{s}`"));
        }
    }
    Ok(())
}

#[test]
fn golden_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let mut total = 0;
    let mut failures = Vec::new();
    for path in entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
    {
        let text = std::fs::read_to_string(path).unwrap();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let case: Value = serde_json::from_str(line).unwrap();
            let doc = case["doc"].as_str().unwrap_or_default();
            assert!(
                doc.starts_with("https://docs.aws.amazon.com/"),
                "{}:{} has no AWS doc URL",
                path.display(),
                i + 1
            );
            total += 1;
            if let Err(e) = run_case(&case) {
                failures.push(format!(
                    "{}:{} `{}` ({doc}): {e}",
                    path.file_name().unwrap().to_string_lossy(),
                    i + 1,
                    case["name"]
                ));
            }
        }
    }
    assert!(total >= 150, "corpus has only {total} cases");
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
