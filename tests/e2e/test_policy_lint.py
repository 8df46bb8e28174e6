"""`keyhole policy lint` (issue 17 item 1) run as a user runs it: findings classed as IAM Access
Analyzer classes them, with code frames in text and the ValidatePolicy response shape in JSON;
exit status 1 on errors (and on security warnings with --strict); `policy validate` warns about
unknown names without refusing; the IAM API keeps accepting what AWS accepts."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

from e2e_helpers import keyhole_bin

# The three mistakes of issue 17: an action typo, a condition-key typo, and s3:ListBucket on an
# object ARN (a statement that can never match).
MISTAKES_TEXT = """{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": "s3:GetObjct", "Resource": "arn:aws:s3:::reports/*"},
    {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::reports",
     "Condition": {"StringLike": {"s3:prefx": "2025/*"}}},
    {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::reports/*"}
  ]
}
"""
MISTAKES = json.loads(MISTAKES_TEXT)

PUBLIC_BUCKET = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                   "Resource": "arn:aws:s3:::site/*"}],
}


def lint(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(keyhole_bin()), "policy", "lint", *args], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def write(tmp_path: Path, name: str, doc) -> Path:
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc, indent=2))
    return p


def test_the_three_mistakes_are_errors_with_code_frames(tmp_path):
    p = write(tmp_path, "mistakes.json", MISTAKES_TEXT)
    cp = lint(str(p))
    assert cp.returncode == 1, cp.stdout + cp.stderr
    out = cp.stdout
    for code in ["INVALID_ACTION", "INVALID_SERVICE_CONDITION_KEY", "RESOURCE_TYPE_MISMATCH"]:
        assert code in out, out
    assert "Did you mean `s3:GetObject`?" in out
    assert "Did you mean `s3:prefix`?" in out
    # The code frame names the file, line and column, and shows the offending line.
    assert f"{p}:4:35" in out, out
    assert '"Action": "s3:GetObjct"' in out
    assert "https://docs.aws.amazon.com/IAM/latest/UserGuide/access-analyzer-reference-policy-checks.html" in out
    assert out.rstrip().endswith(f"{p}: 4 findings: 4 errors")
    assert "\x1b]8;" not in out, "no terminal hyperlinks when not on a terminal"


def test_json_has_the_validate_policy_shape(tmp_path):
    p = write(tmp_path, "mistakes.json", MISTAKES_TEXT)
    cp = lint("--format", "json", str(p))
    assert cp.returncode == 1
    doc = json.loads(cp.stdout)
    findings = doc["findings"]
    assert {f["issueCode"] for f in findings} == {
        "INVALID_ACTION", "INVALID_SERVICE_CONDITION_KEY", "RESOURCE_TYPE_MISMATCH"}
    for f in findings:
        assert set(f) == {"findingType", "issueCode", "findingDetails", "learnMoreLink", "locations"}
        assert f["findingType"] in {"ERROR", "SECURITY_WARNING", "WARNING", "SUGGESTION"}
        assert f["learnMoreLink"].startswith("https://docs.aws.amazon.com/")
        for loc in f["locations"]:
            assert set(loc) == {"path", "span"}
            for el in loc["path"]:
                assert len(el) == 1 and next(iter(el)) in {"value", "index", "key", "substring"}
            for end in ("start", "end"):
                assert set(loc["span"][end]) == {"line", "column", "offset"}
    typo = next(f for f in findings if f["issueCode"] == "INVALID_ACTION")
    loc = typo["locations"][0]
    assert loc["path"] == [{"value": "Statement"}, {"index": 0}, {"value": "Action"}]
    # Access Analyzer's positions: line from 1, column and offset from 0.
    assert loc["span"]["start"]["line"] == 4 and loc["span"]["start"]["column"] == 34
    text = p.read_text()
    start, end = loc["span"]["start"]["offset"], loc["span"]["end"]["offset"]
    assert text[start:end] == '"s3:GetObjct"'
    key = next(f for f in findings if f["issueCode"] == "INVALID_SERVICE_CONDITION_KEY")
    assert key["locations"][0]["path"][-1] == {"key": "s3:prefx"}


def test_security_warnings_fail_only_with_strict(tmp_path):
    p = write(tmp_path, "public.json", PUBLIC_BUCKET)
    cp = lint("--type", "resource", str(p))
    assert cp.returncode == 0, cp.stdout
    assert "PUBLIC_PRINCIPAL" in cp.stdout and "1 security warning" in cp.stdout
    strict = lint("--type", "resource", "--strict", str(p))
    assert strict.returncode == 1
    # Without --type, nothing says the document is a bucket policy: no principal checks.
    assert "PUBLIC_PRINCIPAL" not in lint(str(p)).stdout


def test_trust_policy_and_several_files(tmp_path):
    trust = write(tmp_path, "trust.json", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "sts:AssumeRole"}]})
    clean = write(tmp_path, "clean.json", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/ops"}, "Action": "sts:AssumeRole"}]})
    cp = lint("--type", "trust", "--account", "111122223333", "--format", "json", str(trust), str(clean))
    assert cp.returncode == 0, cp.stderr
    lines = [json.loads(line) for line in cp.stdout.splitlines()]
    assert [d["file"] for d in lines] == [str(trust), str(clean)]
    assert sorted(f["issueCode"] for f in lines[0]["findings"]) == [
        "CROSS_ACCOUNT_PRINCIPAL", "TRUST_WHOLE_ACCOUNT_WITHOUT_CONDITION"]
    assert lines[1]["findings"] == []
    text = lint("--type", "trust", str(clean))
    assert text.returncode == 0 and text.stdout.strip() == f"{clean}: no findings"


def test_unparsable_document_is_one_error_and_stdin_works(tmp_path):
    cp = subprocess.run([str(keyhole_bin()), "policy", "lint", "--format", "json", "-"],
                        input='{"Version": "2012-10-17", "Statement": [{"Effect": "Alow"}]}',
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 1
    findings = json.loads(cp.stdout)["findings"]
    assert [f["issueCode"] for f in findings] == ["INVALID_EFFECT"]
    assert findings[0]["locations"][0]["path"] == [{"value": "Statement"}, {"index": 0}, {"value": "Effect"}]


def test_validate_warns_about_unknown_names_but_stays_valid(tmp_path):
    p = write(tmp_path, "mistakes.json", MISTAKES_TEXT)
    cp = subprocess.run([str(keyhole_bin()), "policy", "validate", str(p)], capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip() == f"{p}: valid (3 statements)"
    assert f"{p}:4:35: warning:" in cp.stderr and "INVALID_ACTION" in cp.stderr
    assert "INVALID_SERVICE_CONDITION_KEY" in cp.stderr
    # Only name warnings: the resource-type mismatch is the linter's business.
    assert "RESOURCE_TYPE_MISMATCH" not in cp.stderr


def test_iam_still_accepts_what_aws_accepts(aws, tmp_path):
    """Warnings never refuse: a policy with an unknown action is stored by PutUserPolicy, as AWS
    stores it."""
    name = f"lint-{uuid.uuid4().hex[:8]}"
    aws.ok("iam", "create-user", "--user-name", name)
    p = write(tmp_path, "mistakes.json", MISTAKES_TEXT)
    aws.ok("iam", "put-user-policy", "--user-name", name, "--policy-name", "typos", "--policy-document", f"file://{p}")
    got = json.loads(aws.ok("iam", "get-user-policy", "--user-name", name, "--policy-name", "typos").stdout)
    assert got["PolicyDocument"] == MISTAKES
    aws.ok("iam", "delete-user-policy", "--user-name", name, "--policy-name", "typos")
    aws.ok("iam", "delete-user", "--user-name", name)
