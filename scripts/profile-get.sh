#!/usr/bin/env bash
# Profiles keyhole under a stream of small presigned GETs (the case of issue 16) with perf:
# starts a release gateway on loopback, seeds one object, drives it with wrk, records
# `perf record -g` of the gateway meanwhile, and prints where the CPU time went.
#   scripts/profile-get.sh                     4 KiB GETs, 64 connections, 10 s
#   PROFILE_SIZE=65536 PROFILE_SECONDS=5 scripts/profile-get.sh
#   PROFILE_OUT=/tmp/p scripts/profile-get.sh  keep perf.data (and the report) in /tmp/p
#   PROFILE_CALLGRAPH="--call-graph dwarf,16384" ...  whole call chains (frame pointers are off
#                                                  in release), and the share of each request stage
# Binary: KEYHOLE_BIN, else `cargo build --release`. Needs perf, wrk (apt) and botocore (the
# test venv's, made by scripts/test.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECS=${PROFILE_SECONDS:-10}
SIZE=${PROFILE_SIZE:-4096}
CONNS=${PROFILE_CONNECTIONS:-64}
for t in perf wrk; do
    command -v $t >/dev/null || { echo "error: $t is not installed (apt-get install linux-perf wrk)" >&2; exit 2; }
done
if [ -z "${KEYHOLE_BIN:-}" ]; then
    echo "building the release binary..." >&2
    cargo build --release -q -p keyhole --bin keyhole
    KEYHOLE_BIN=$PWD/target/release/keyhole
fi
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
T=$(mktemp -d /tmp/profile-get.XXXXXX)
OUT=${PROFILE_OUT:-$T/out}
mkdir -p "$OUT"
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$T/data"; [ -n "${PROFILE_OUT:-}" ] || rm -rf "$T"; }
trap cleanup EXIT
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=warn "$KEYHOLE_BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$T/data" >"$T/keyhole.log" 2>&1 &
PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
URL=$("$PY" - "$T/data/root-credentials" "http://127.0.0.1:$PORT" "$SIZE" <<'EOF'
import configparser, sys
import botocore.session
from botocore.config import Config
creds = configparser.ConfigParser(); creds.read(sys.argv[1])
d = creds["default"]
c = botocore.session.get_session().create_client(
    "s3", endpoint_url=sys.argv[2], region_name="us-east-1",
    aws_access_key_id=d["aws_access_key_id"], aws_secret_access_key=d["aws_secret_access_key"],
    config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
c.create_bucket(Bucket="profile")
c.put_object(Bucket="profile", Key="obj", Body=b"x" * int(sys.argv[3]))
print(c.generate_presigned_url("get_object", Params={"Bucket": "profile", "Key": "obj"}, ExpiresIn=3600))
EOF
)
wrk -t2 -c"$CONNS" -d2s "$URL" >/dev/null   # warm up
perf record -q ${PROFILE_CALLGRAPH:--g} -F 2999 -p "$PID" -o "$OUT/perf.data" -- sleep "$SECS" 2>/dev/null &
PERF=$!
wrk -t2 -c"$CONNS" -d"${SECS}s" "$URL" | tee "$OUT/wrk.txt" | grep -E 'Requests/sec|Latency'
wait "$PERF" || true
perf report -q -i "$OUT/perf.data" --no-children --sort symbol --percent-limit 0.7 2>/dev/null \
    | grep -v '^$' | grep -E '^ +[0-9]' | head -45 | tee "$OUT/report.txt"
if [[ "${PROFILE_CALLGRAPH:-}" == *dwarf* ]]; then
    # Whole stacks: the share of each request stage (scripts/profile_stages.py).
    perf script -i "$OUT/perf.data" -F comm,tid,ip,sym 2>/dev/null >"$OUT/stacks.txt"
    "$PY" scripts/profile_stages.py "$OUT/stacks.txt" | tee "$OUT/stages.txt"
fi
echo "perf data: $OUT/perf.data (kept with PROFILE_OUT)" >&2
