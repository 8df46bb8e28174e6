#!/usr/bin/env bash
# What one small GET costs the gateway (issue 16), as figures that move less than a request rate
# when other work shares the machine. Starts a release gateway on loopback, seeds one 4 KiB
# object, drives it with wrk (presigned URL) and prints either
#   scripts/get-cost.sh BIN [SECONDS]           the server's CPU time per request (user + system
#                                               time from /proc/PID/stat over a 64-connection run,
#                                               divided by the requests wrk completed), or
#   scripts/get-cost.sh --allocs BIN [SECONDS]  heap allocations per request: calls of mimalloc's
#                                               entry points (the global allocator's malloc, zalloc,
#                                               realloc) counted with perf uprobes (root); uprobes
#                                               slow every allocation, so the rate is not the
#                                               gateway's.
#   GET_PATH=/healthz scripts/get-cost.sh BIN   the health check instead (the HTTP layer alone).
# BIN's directory must also hold the load tool (`load`: cargo build --release --example load).
# Needs wrk (apt), perf for --allocs, and botocore (the test venv's, or PYTHON=...).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ALLOCS=0
if [ "${1:-}" = --allocs ]; then
    ALLOCS=1
    shift
fi
BIN=${1:?usage: scripts/get-cost.sh [--allocs] BIN [SECONDS]}
SECS=${2:-5}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
T=$(mktemp -d /tmp/get-cost.XXXXXX)
PID=""
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null
    wait 2>/dev/null || true
    [ "$ALLOCS" = 1 ] && perf probe -q -d 'probe_keyhole:*' 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
if [ "$ALLOCS" = 1 ]; then
    for f in mi_malloc_aligned mi_zalloc_aligned mi_realloc_aligned; do
        perf probe -q -x "$BIN" -a "$f"
    done
fi
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
if [ "$ALLOCS" = 1 ]; then
    wrk -t1 -c4 -d1s "$URL" >/dev/null
    # Counting runs from just before wrk starts to just after it ends.
    perf stat -x, -e 'probe_keyhole:*' -p "$PID" -o "$T/perf.txt" -- sleep "$((SECS + 1))" &
    PP=$!
    sleep 0.5
    OUT=$(wrk -t1 -c4 -d"${SECS}s" "$URL")
    wait $PP
    REQ=$(echo "$OUT" | awk '/requests in/ {print $1}')
    "$PY" - "$T/perf.txt" "$REQ" "$BIN" <<'PY'
import sys
total, parts = 0, []
for line in open(sys.argv[1]):
    f = line.strip().split(",")
    if len(f) > 2 and f[0].isdigit():
        total += int(f[0])
        parts.append(f"{f[2].split(':')[-1]} {int(f[0]) / int(sys.argv[2]):.1f}")
req = int(sys.argv[2])
print(f"{sys.argv[3]}: {req} GETs, {total / req:.1f} allocations per GET ({', '.join(parts)})")
PY
else
    wrk -t2 -c64 -d1s "$URL" >/dev/null
    t0=$(awk '{print $14 + $15}' "/proc/$PID/stat")
    OUT=$(wrk -t2 -c64 -d"${SECS}s" "$URL")
    t1=$(awk '{print $14 + $15}' "/proc/$PID/stat")
    REQ=$(echo "$OUT" | awk '/requests in/ {print $1}')
    "$PY" -c 'import sys
ticks, req, secs, hz = (float(a) for a in sys.argv[1:5])
print(f"{sys.argv[5]}: {req / secs:.0f} req/s, server CPU {ticks / hz * 1e6 / req:.1f} us per request")' \
        "$((t1 - t0))" "$REQ" "$SECS" "$(getconf CLK_TCK)" "$BIN"
fi
