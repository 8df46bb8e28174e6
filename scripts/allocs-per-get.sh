#!/usr/bin/env bash
# Heap allocations per small GET (issue 16): counts calls of mimalloc's entry points (the global
# allocator's malloc, zalloc and realloc) with perf uprobes in a release gateway while wrk sends
# presigned 4 KiB GETs, and divides by the requests completed. Uprobes slow every allocation
# down, so the rate printed is not the gateway's rate. Needs root, perf, wrk and botocore.
#   scripts/allocs-per-get.sh BIN [SECONDS]
# BIN's directory must also hold the load tool (`load`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${1:?usage: scripts/allocs-per-get.sh BIN [SECONDS]}
SECS=${2:-4}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
T=$(mktemp -d /tmp/allocs-per-get.XXXXXX)
PID=""
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null
    wait 2>/dev/null || true
    perf probe -q -d 'probe_keyhole:*' 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
for f in mi_malloc_aligned mi_zalloc_aligned mi_realloc_aligned; do
    perf probe -q -x "$BIN" -a "$f"
done
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=warn "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$T/data" >"$T/log" 2>&1 &
PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
"$(dirname "$BIN")/load" --endpoint "http://127.0.0.1:$PORT" --credentials "$T/data/root-credentials" \
    --op get --size 4KiB --concurrency 1 --requests 1 >/dev/null
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
wrk -t1 -c4 -d1s "$URL" >/dev/null
# Counting runs while wrk does, from just before it starts to just after it ends.
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
