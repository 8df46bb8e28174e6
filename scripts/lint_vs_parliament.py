#!/usr/bin/env python3
"""Runs `keyhole policy lint` and parliament (https://github.com/duo-labs/parliament) over the
lint corpus (crates/policy/tests/lint_corpus/*.json) and prints, per case, what each reports, as
the markdown table of docs/POLICY_LINT.md.

Run it with a Python that has parliament installed, outside the repository's environments:

    python3 -m venv /tmp/parliament-venv && /tmp/parliament-venv/bin/pip install parliament
    KEYHOLE_BIN=target/debug/keyhole /tmp/parliament-venv/bin/python scripts/lint_vs_parliament.py

parliament is called through its documented entry point (`analyze_policy_string`); nothing of
it is copied here.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from parliament import analyze_policy_string, enhance_finding

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "crates/policy/tests/lint_corpus"
KEYHOLE = os.environ.get("KEYHOLE_BIN", str(ROOT / "target/debug/keyhole"))


def keyhole_codes(case: dict, text: str) -> list[str]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(text)
        path = f.name
    args = [KEYHOLE, "policy", "lint", "--format", "json", path]
    if case.get("type"):
        args += ["--type", case["type"]]
    if case.get("account"):
        args += ["--account", case["account"]]
    if case.get("tls"):
        args.append("--tls")
    cp = subprocess.run(args, capture_output=True, text=True)
    os.unlink(path)
    if cp.returncode not in (0, 1):
        raise SystemExit(f"keyhole failed on {case['name']}: {cp.stderr}")
    return sorted(f["issueCode"] for f in json.loads(cp.stdout)["findings"])


def parliament_codes(text: str) -> list[str]:
    try:
        policy = analyze_policy_string(text, include_community_auditors=False)
    except Exception as e:  # parliament raises on some documents keyhole reports as errors
        return [f"(exception: {type(e).__name__})"]
    return sorted({enhance_finding(f).issue for f in policy.findings})


def main() -> int:
    rows = []
    for file in sorted(CORPUS.glob("*.json")):
        for case in json.loads(file.read_text()):
            text = case.get("policy_text") or json.dumps(case["policy"], indent=2)
            rows.append((file.stem, case["name"], keyhole_codes(case, text), parliament_codes(text)))
    print("| file | case | keyhole | parliament |")
    print("|---|---|---|---|")
    for f, name, k, p in rows:
        print(f"| {f} | {name} | {', '.join(k) or '—'} | {', '.join(p) or '—'} |")
    kc = collections.Counter(c for _, _, k, _ in rows for c in k)
    pc = collections.Counter(c for _, _, _, p in rows for c in p)
    print()
    print(f"cases: {len(rows)}; keyhole findings: {sum(kc.values())} in "
          f"{sum(1 for r in rows if r[2])} cases; parliament findings: {sum(pc.values())} in "
          f"{sum(1 for r in rows if r[3])} cases")
    print()
    print("parliament issues:", ", ".join(f"{c} {n}" for c, n in pc.most_common()))
    print("cases where parliament reports something and keyhole nothing:",
          ", ".join(n for _, n, k, p in rows if p and not k) or "none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
