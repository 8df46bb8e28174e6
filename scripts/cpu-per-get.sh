#!/usr/bin/env bash
# The gateway's own CPU time per small GET (issue 16), a figure that moves less than a request
# rate when other work shares the machine: starts a release gateway on loopback, seeds one 4 KiB
# object, drives it with wrk (presigned URL, 64 connections) and divides the server's user +
# system time (/proc/PID/stat) by the requests wrk completed.
#   scripts/cpu-per-get.sh BIN [SECONDS]       presigned GetObject of 4 KiB
#   GET_PATH=/healthz scripts/cpu-per-get.sh BIN   the health check instead (the HTTP layer alone)
# BIN's directory must also hold the load tool (`load`: cargo build --release --example load).
# Needs wrk (apt) and botocore (the test venv's, or PYTHON=...).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${1:?usage: scripts/cpu-per-get.sh BIN [SECONDS]}
SECS=${2:-5}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
T=$(mktemp -d /tmp/cpu-per-get.XXXXXX)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=warn "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$T/data" >"$T/log" 2>&1 &
PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
"$(dirname "$BIN")/load" --endpoint "http://127.0.0.1:$PORT" --credentials "$T/data/root-credentials" \
    --op get --size 4KiB --concurrency 1 --requests 1 >/dev/null
if [ -n "${GET_PATH:-}" ]; then
    URL="http://127.0.0.1:$PORT$GET_PATH"
else
    URL=$("$PY" - "$T/data/root-credentials" "http://127.0.0.1:$PORT" <<'PY'
import configparser, sys, botocore.session
from botocore.config import Config
c = configparser.ConfigParser(); c.read(sys.argv[1]); d = c["default"]
s = botocore.session.get_session().create_client("s3", endpoint_url=sys.argv[2], region_name="us-east-1",
    aws_access_key_id=d["aws_access_key_id"], aws_secret_access_key=d["aws_secret_access_key"],
    config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
print(s.generate_presigned_url("get_object", Params={"Bucket": "keyhole-load", "Key": "fixed-4096"}, ExpiresIn=3600))
PY
)
fi
wrk -t2 -c64 -d1s "$URL" >/dev/null
t0=$(awk '{print $14 + $15}' "/proc/$PID/stat")
OUT=$(wrk -t2 -c64 -d"${SECS}s" "$URL")
t1=$(awk '{print $14 + $15}' "/proc/$PID/stat")
REQ=$(echo "$OUT" | awk '/requests in/ {print $1}')
"$PY" -c 'import sys
ticks, req, secs, hz = (float(a) for a in sys.argv[1:5])
print(f"{sys.argv[5]}: {req / secs:.0f} req/s, server CPU {ticks / hz * 1e6 / req:.1f} us per request")' \
    "$((t1 - t0))" "$REQ" "$SECS" "$(getconf CLK_TCK)" "$BIN"
