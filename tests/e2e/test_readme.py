"""The README's aws-cli quickstart, run as written against a fresh gateway.

Contract with the README: the fenced code block that follows a line `<!-- quickstart -->` holds the
quickstart commands, using the endpoint http://127.0.0.1:9000. Each command line is run in order
(in a shell, from an empty directory) with that endpoint replaced by the test server's.
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
