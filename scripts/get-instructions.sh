#!/usr/bin/env bash
# What one small GET costs the gateway in user-space instructions (issue 16): a figure that does
# not move when other work shares the machine, unlike a rate or a CPU time. Seeds a 4 KiB object
# with a release gateway, restarts it under valgrind's callgrind, warms it up with 300 presigned
# GETs on one keep-alive connection, zeroes the counters, sends N more (default 1000) and prints
# the instructions executed per GET, split into SHA-256 and everything else:
#   scripts/get-instructions.sh BIN [N]
#   KEEP=/tmp/cg.out scripts/get-instructions.sh BIN   also keep callgrind's profile
# valgrind's CPU model has no SHA extensions, so SHA-256 runs in software there (about half the
# count); on the project machine it runs on the CPU's SHA instructions, a few percent of a GET.
# Compare the "other" figure between builds. BIN's directory must also hold the load tool
# (`load`: cargo build --release --example load). Needs valgrind (apt) and botocore (the test
# venv's, or PYTHON=...).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${1:?usage: scripts/get-instructions.sh BIN [N]}
N=${2:-1000}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
command -v valgrind >/dev/null || { echo "error: valgrind not found (apt-get install valgrind)" >&2; exit 1; }
T=$(mktemp -d /tmp/get-instructions.XXXXXX)
PID=""
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
up() {
    for _ in $(seq 600); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && return; sleep 0.2; done
    echo "error: the gateway did not start" >&2
    exit 1
}
RUST_LOG=warn "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$T/data" >"$T/log" 2>&1 &
PID=$!
up
"$(dirname "$BIN")/load" --endpoint "http://127.0.0.1:$PORT" --credentials "$T/data/root-credentials" \
    --op get --size 4KiB --concurrency 1 --requests 1 >/dev/null
kill "$PID"
wait "$PID" 2>/dev/null || true
(cd "$T" && RUST_LOG=warn exec valgrind --tool=callgrind --callgrind-out-file="$T/cg.out" \
    "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$T/data" >"$T/log" 2>&1) &
PID=$!
up
"$PY" - "$T/data/root-credentials" "http://127.0.0.1:$PORT" "$N" "$PID" <<'PY'
import configparser, http.client, subprocess, sys, time, urllib.parse
import botocore.session
from botocore.config import Config
creds, endpoint, n, pid = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
c = configparser.ConfigParser(); c.read(creds); d = c["default"]
s = botocore.session.get_session().create_client("s3", endpoint_url=endpoint, region_name="us-east-1",
    aws_access_key_id=d["aws_access_key_id"], aws_secret_access_key=d["aws_secret_access_key"],
    config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
url = urllib.parse.urlsplit(s.generate_presigned_url(
    "get_object", Params={"Bucket": "keyhole-load", "Key": "fixed-4096"}, ExpiresIn=3600))
conn = http.client.HTTPConnection(url.hostname, url.port)
def gets(count):
    for _ in range(count):
        conn.request("GET", f"{url.path}?{url.query}")
        r = conn.getresponse()
        r.read()
        assert r.status == 200, r.status
gets(300)
time.sleep(1)
subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
gets(n)
time.sleep(1.5)  # the audit writer's batch of the last requests
subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
PY
kill "$PID"
wait "$PID" 2>/dev/null || true
PID=""
# Self cost per function from the dump (`cg.out.1`): a cost line right after `calls=` is the
# callee's inclusive cost, counted where the callee's own lines are.
"$PY" - "$T/cg.out.1" "$N" "$BIN" <<'PY'
import re, sys
path, n, binary = sys.argv[1], int(sys.argv[2]), sys.argv[3]
names, fn, after_call, total, sha = {}, None, False, 0, 0
for line in open(path, errors="replace"):
    if line.startswith(("fn=", "cfn=")):
        m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line.strip())
        if m.group(2):
            names[m.group(1)] = m.group(2)
        if line.startswith("fn="):
            fn = names.get(m.group(1), "")
    elif line.startswith("calls="):
        after_call = True
    elif line[:1].isdigit() or line[:1] in "+-*":
        parts = line.split()
        if len(parts) < 2:
            continue
        if after_call:
            after_call = False
            continue
        total += int(parts[1])
        if "sha256::compress256" in fn:
            sha += int(parts[1])
print(f"{binary}: {n} GETs, {total / n:,.0f} instructions per GET: "
      f"{(total - sha) / n:,.0f} other, {sha / n:,.0f} SHA-256 in software")
PY
[ -n "${KEEP:-}" ] && cp "$T/cg.out.1" "$KEEP"
exit 0
