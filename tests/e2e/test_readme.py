"""The README, run as written against a fresh gateway.

Contract with the README: every runnable fenced block (sh, python) follows a line
`<!-- name -->`; the blocks use the endpoint http://127.0.0.1:9000, which the tests replace with
the test server's. `test_every_readme_block_runs_as_written_in_order` runs them all, top to
bottom, in one shell, in a directory laid out like the clone; other tests run single blocks
(`block_commands`).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path


from e2e_helpers import REPO_ROOT, aws_bin

README = REPO_ROOT / "README.md"
MARKER = "<!-- quickstart -->"
DOC_ENDPOINT = "http://127.0.0.1:9000"


def quickstart_commands(text: str) -> list[str]:
    """Command lines of the first fenced block after the quickstart marker."""
    return block_commands(text, MARKER)


def block_commands(text: str, marker: str) -> list[str]:
    """Command lines of the first fenced block after `marker` (comments, prompts and
    `\\` continuations handled; lines starting the gateway itself are left out)."""
    assert marker in text, f"README.md has no `{marker}` line before its block"
    after = text.split(marker, 1)[1]
    m = re.search(r"^```[^\n]*\n(.*?)^```", after, re.MULTILINE | re.DOTALL)
    assert m, f"no fenced code block after `{marker}`"
    commands, current = [], ""
    for raw in m.group(1).splitlines():
        line = raw.rstrip()
        if not current:
            line = re.sub(r"^\s*\$\s+", "", line)
            if not line.strip() or line.lstrip().startswith("#"):
                continue
        if current:
            line = line.lstrip()
        if line.endswith("\\"):
            current += line[:-1].rstrip() + " "
            continue
        current += line
        commands.append(current.strip())
        current = ""
    if current:
        commands.append(current.strip())
    return [c for c in commands if not re.match(r"^(\./)?(target/\w+/)?keyhole\s+serve\b|^cargo\s", c)]


def test_quickstart_parser_handles_continuations():
    text = f"intro\n{MARKER}\n```sh\n# comment\n$ aws --endpoint-url {DOC_ENDPOINT} \\\n   s3 mb s3://x\n\nkeyhole serve\n```\n"
    assert quickstart_commands(text) == [f"aws --endpoint-url {DOC_ENDPOINT} s3 mb s3://x"]


def test_readme_quickstart_runs(fresh_server_factory, tmp_path):
    assert README.exists(), "README.md is missing"
    commands = quickstart_commands(README.read_text(encoding="utf-8"))
    assert commands, "the quickstart block has no commands"
    assert any(c.startswith("aws ") or " aws " in c for c in commands), commands
    assert any(DOC_ENDPOINT in c for c in commands), f"quickstart does not use {DOC_ENDPOINT}"

    kp = fresh_server_factory()
    # The user's view: the gateway's default data dir ./keyhole-data next to where they run
    # commands, an empty HOME, and the generated root credentials as the shared credentials file.
    work = tmp_path / "work"
    work.mkdir()
    (work / "keyhole-data").symlink_to(kp.data_dir)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        HOME=str(home),
        PATH=f"{Path(aws_bin()).parent}{os.pathsep}{env.get('PATH', '')}",
        AWS_SHARED_CREDENTIALS_FILE=str(kp.creds_path),
    )
    # One shell for the whole block, so `export` and `cd` carry over as they would for a user.
    script = "set -euxo pipefail\n" + "\n".join(c.replace(DOC_ENDPOINT, kp.endpoint) for c in commands) + "\n"
    cp = subprocess.run(["bash", "-c", script], env=env, cwd=work, capture_output=True, text=True, timeout=300,
                        stdin=subprocess.DEVNULL)
    assert cp.returncode == 0, f"quickstart failed\nscript:\n{script}\nstdout: {cp.stdout[-3000:]}\nstderr: {cp.stderr[-3000:]}"
    if any(" s3 presign " in c for c in commands):
        assert "X-Amz-Signature=" in cp.stdout, "the quickstart's presigned URL is not SigV4 (keyhole refuses SigV2)"


# Every runnable block of the README (sh, bash, python), by its marker, in README order. The test
# below runs these as written, in one shell, in a directory laid out like the clone, against a
# fresh gateway.
RUN_IN_ORDER = ["quickstart", "quickstart-boto3", "quickstart-cleanup", "admin-quickstart", "reader", "group",
                "versions", "simulator", "policy-lint", "jobs-quickstart", "browser-upload", "public-access",
                "key-hygiene", "access-report"]
# Runnable blocks this test does not run, and why.
NOT_RUN_HERE = {
    "serve": "starts the gateway: the test starts the same binary's `serve` itself",
    "test-command": "the whole test suite",
    "https": "needs a second, HTTPS gateway: tests/e2e/test_tls.py::test_readme_https_block_runs",
}
RUNNABLE = {"sh", "bash", "shell", "console", "python", "py", ""}


def readme_blocks(text: str) -> list[tuple[str | None, str, str]]:
    """(marker or None, language, body) of every fenced block, in order. A marker is an HTML
    comment `<!-- name -->` on the line just before the fence."""
    out = []
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\S*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        lang = m.group(1)
        prev = lines[i - 1].strip() if i else ""
        marker = re.fullmatch(r"<!--\s*([\w-]+)\s*-->", prev)
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        out.append((marker.group(1) if marker else None, lang, "".join(lines[i + 1:j])))
        i = j + 1
    return out


def test_every_readme_block_is_accounted_for():
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    runnable = [(m, lang) for m, lang, _ in blocks if lang in RUNNABLE]
    unmarked = [body[:80] for m, lang, body in blocks if lang in RUNNABLE and m is None]
    assert not unmarked, f"README blocks without a `<!-- name -->` marker (add it to RUN_IN_ORDER): {unmarked}"
    assert [m for m, _ in runnable if m not in NOT_RUN_HERE] == RUN_IN_ORDER, runnable


def test_every_readme_block_runs_as_written_in_order(tmp_path):
    """The README from top to bottom, as a newcomer runs it: one shell, in the clone (with the
    `target/release/keyhole` that `cargo run --release` built and `./keyhole-data` beside it),
    against a fresh gateway, an empty HOME, no AWS configuration."""
    from e2e_helpers import KeyholeProcess, free_port, keyhole_bin

    text = README.read_text(encoding="utf-8")
    blocks = {m: body for m, lang, body in readme_blocks(text) if m in RUN_IN_ORDER}
    clone = tmp_path / "clone"
    (clone / "target" / "release").mkdir(parents=True)
    (clone / "target" / "release" / "keyhole").symlink_to(keyhole_bin())
    home = tmp_path / "home"
    home.mkdir()
    kp = KeyholeProcess(data_dir=clone / "keyhole-data", port=free_port(), log_dir=tmp_path / "logs", cwd=clone)
    kp.start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
        env.update(HOME=str(home), PATH=f"{Path(aws_bin()).parent}{os.pathsep}{env.get('PATH', '')}")
        script = "set -euo pipefail\n" + "".join(
            f"echo '=== README block {name} ===' >&2\n{blocks[name].replace(DOC_ENDPOINT, kp.endpoint)}\n"
            for name in RUN_IN_ORDER)
        cp = subprocess.run(["bash", "-c", script], env=env, cwd=clone, capture_output=True, text=True,
                            timeout=600, stdin=subprocess.DEVNULL)
        failed_in = re.findall(r"=== README block (\S+) ===", cp.stderr)[-1:] or ["?"]
        assert cp.returncode == 0, (f"README block `{failed_in[0]}` failed\nstdout: {cp.stdout[-3000:]}\n"
                                    f"stderr: {cp.stderr[-4000:]}\n{kp.logs(40)}")
    finally:
        kp.kill()
    out = cp.stdout
    assert "X-Amz-Signature=" in out, "the presigned URL is SigV4"
    assert "b'hello'" in out, "the boto3 snippet read back its object"
    assert '"UserName": "admin"' in out and '"UserName": "slm-reader"' in out
    assert re.search(r"v2\s+True\s+v1\s+False", out), f"v2 became the default before the rollback:\n{out}"
    assert "s3:GetObject\tallowed\ns3:PutObject\timplicitDeny" in out, "the simulator's answers"
    assert "slm-readonly.json: no findings" in out, "the README's reader policy lints clean"
    assert "Did you mean `s3:GetObject`?" in out and "typos.json: 4 findings: 4 errors" in out
    assert "lint exit status: 1" in out, "lint fails on errors"
    assert "allow read" in out, "keyhole job plan"
    # The job's copy (`aws s3 cp s3://... s3://...`) is read and written in its access report.
    assert re.search(r"s3://acmeco-datasets/wiki/\s+1 objects read", cp.stderr), cp.stderr[-2000:]
    assert re.search(r"s3://acmeco-models/wiki-ft/\s+1 objects written", cp.stderr), cp.stderr[-2000:]
    assert "preflight 200 https://app.acme.example" in out and "upload 204" in out
    assert "17 bytes stored" in out, "the presigned POST stored the page's file"
    assert '"BlockPublicPolicy": false' in out
    # Key hygiene: admin's key was last used just now, through IAM; the report lists every user
    # after the root account; `keyhole admin keys` finds no key 90 days old.
    assert re.search(r'"ServiceName": "iam",\s+"Region": "us-east-1"', out), out[-3000:]
    assert "user,arn,user_creation_time," in out and "\n<root_account>,arn:aws:iam::" in out
    assert re.search(r"\nadmin\s+AKIA\w+\s+Active\s", out)
    assert "no active key is 90 days old or older\n" in out
    # Access reports: slm-reader's key was never used; the admin's minimal policy allows the
    # bucket it created; `access unused` names slm-reader's idle key.
    assert re.search(r"AKIA\w+ Active\s+last used -  UNUSED in the window", out), out[-3000:]
    assert "s3:CreateBucket\n" in out and "iam:CreateAccessKey\n" in out
    assert "unused since " in out and re.search(r"AKIA\w+ of arn:aws:iam::\d+:user/slm-reader", out)
    assert (clone / "slm-readonly.json").exists() and (clone / "v2.json").exists()
