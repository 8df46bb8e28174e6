#!/bin/bash
# keyhole beside nginx, in one run on one machine (issue 16): the same bytes served by nginx from
# a file (sendfile) and by keyhole through SigV4, IAM and its audit trail, with the same client
# for each pair, and the ratio keyhole / nginx. Absolute numbers move between runs on a shared
# machine; the ratios of one run are what count.
#
#   scripts/bench-nginx.sh                  everything (about 3 minutes, 1 GiB objects)
#   BENCH_SECONDS=5 scripts/bench-nginx.sh  shorter runs
#   BENCH_QUICK=1 scripts/bench-nginx.sh    only the 4 KiB cases
#
# What runs:
#   GET 4 KiB, 64 connections   wrk -t2 -c64: nginx, keyhole with a presigned URL (every request
#                               pays signature verification, authorization and an audit record);
#                               the load tool (header-signed requests) against keyhole
#   GET 64 MiB and 1 GiB, 4 connections   wrk: nginx and keyhole presigned
#   PUT 4 KiB, 8 in flight      the load tool against keyhole (SHA-256-signed bodies; each PUT is
#                               durable, and so is its audit record, before it is answered)
#   PUT 1 GiB, one stream       the load tool against keyhole, beside `dd conv=fdatasync` of the
#                               same size into the same file system
#
# Binaries: KEYHOLE_BIN and LOAD_BIN, else `cargo build --release` of both. wrk and nginx come
# from Debian (installed with apt-get when missing and this runs as root). Everything listens on
# 127.0.0.1 and is stopped by its PID; the data lives in a temporary directory removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${BENCH_SECONDS:-10}
QUICK=${BENCH_QUICK:-0}

need() {
    if ! command -v "$1" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$1" ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "installing $2 (apt-get)..." >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
        else
            echo "error: $1 is not installed; install the Debian package $2" >&2
            exit 2
        fi
    fi
}
need wrk wrk
need nginx nginx
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [ -z "${KEYHOLE_BIN:-}" ] || [ -z "${LOAD_BIN:-}" ]; then
    echo "building release binaries..." >&2
    cargo build --release -q -p keyhole --bin keyhole --example load
    KEYHOLE_BIN=${KEYHOLE_BIN:-$PWD/target/release/keyhole}
    LOAD_BIN=${LOAD_BIN:-$PWD/target/release/examples/load}
fi
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
"$PY" -c 'import botocore' 2>/dev/null || {
    echo "error: $PY lacks botocore (run scripts/test.sh once, or set PYTHON)" >&2
    exit 2
}

T=$(mktemp -d /tmp/bench-nginx.XXXXXX)
chmod 700 "$T"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
KP=$(free_port)
NP=$(free_port)

RUST_LOG=warn "$KEYHOLE_BIN" serve --listen "127.0.0.1:$KP" --data-dir "$T/data" >"$T/keyhole.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$KP/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$KP/healthz" >/dev/null || { cat "$T/keyhole.log" >&2; exit 1; }
LOAD=("$LOAD_BIN" --endpoint "http://127.0.0.1:$KP" --credentials "$T/data/root-credentials")

SIZES=(4KiB)
[ "$QUICK" = 1 ] || SIZES+=(64MiB 1GiB)
bytes_of() { case $1 in 4KiB) echo 4096 ;; 64MiB) echo 67108864 ;; 1GiB) echo 1073741824 ;; esac; }

# Seed the objects (the load tool's GET seeds /keyhole-load/fixed-<bytes>), presign them, and put
# the very same bytes where nginx serves them.
mkdir -p "$T/www/keyhole-load"
declare -A URL
for s in "${SIZES[@]}"; do
    "${LOAD[@]}" --op get --size "$s" --concurrency 1 --requests 1 >/dev/null
    n=$(bytes_of "$s")
    URL[$s]=$("$PY" - "$T/data/root-credentials" "http://127.0.0.1:$KP" "fixed-$n" <<'EOF'
import configparser, sys
import botocore.session
from botocore.config import Config
creds = configparser.ConfigParser(); creds.read(sys.argv[1])
d = creds["default"]
c = botocore.session.get_session().create_client(
    "s3", endpoint_url=sys.argv[2], region_name="us-east-1",
    aws_access_key_id=d["aws_access_key_id"], aws_secret_access_key=d["aws_secret_access_key"],
    config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
print(c.generate_presigned_url("get_object", Params={"Bucket": "keyhole-load", "Key": sys.argv[3]}, ExpiresIn=3600))
EOF
)
    curl -sf -o "$T/www/keyhole-load/fixed-$n" "${URL[$s]}"
    [ "$(stat -c %s "$T/www/keyhole-load/fixed-$n")" = "$n" ] || { echo "error: seeding $s" >&2; exit 1; }
done

# nginx's workers must read files in the private temporary directory: as root, they run as root.
NGINX_USER=""
[ "$(id -u)" = 0 ] && NGINX_USER="user root;"
cat >"$T/nginx.conf" <<EOF
$NGINX_USER
worker_processes auto;
pid $T/nginx.pid;
error_log $T/nginx-error.log;
daemon off;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path $T/nginx-body;
    proxy_temp_path $T/nginx-proxy;
    fastcgi_temp_path $T/nginx-fastcgi;
    uwsgi_temp_path $T/nginx-uwsgi;
    scgi_temp_path $T/nginx-scgi;
    server {
        listen 127.0.0.1:$NP;
        root $T/www;
    }
}
EOF
"$NGINX" -c "$T/nginx.conf" -p "$T" 2>"$T/nginx-start.log" &
PIDS+=($!)
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$NP/keyhole-load/fixed-4096" && break; sleep 0.1; done

# wrk's summary as requests/s and MiB/s.
wrk_run() { # connections url
    wrk -t2 -c"$1" -d"${SECS}s" "$2" | "$PY" -c '
import re, sys
out = sys.stdin.read()
rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
m = re.search(r"Transfer/sec:\s*([\d.]+)([KMG]?B)", out)
unit = {"B": 1 / 2**20, "KB": 1 / 1024, "MB": 1, "GB": 1024}[m.group(2)]
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
if errors:
    sys.exit(f"wrk saw {errors.group(1)} error responses:\n{out}")
print(f"{rps:.1f} {float(m.group(1)) * unit:.1f}")'
}
# The load tool's summary as requests/s and MiB/s.
load_run() {
    "${LOAD[@]}" "$@" | "$PY" -c '
import re, sys
out = sys.stdin.read()
rps = float(re.search(r"req/s=([\d.]+)", out).group(1))
mib = float(re.search(r"MiB/s=([\d.]+)", out).group(1))
errors = int(re.search(r"errors=(\d+)", out).group(1))
if errors:
    sys.exit(f"the load tool saw {errors} errors:\n{out}")
print(f"{rps:.1f} {mib:.1f}")'
}
ratio() { "$PY" -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print(f'{a / b:.2f}' if b else '-')" "$1" "$2"; }

ROWS=()
row() { ROWS+=("$(printf '| %-50s | %20s | %14s | %6s |' "$1" "$2" "$3" "$4")"); }

echo "GET 4 KiB, 64 connections..." >&2
read -r n_rps _ < <(wrk_run 64 "http://127.0.0.1:$NP/keyhole-load/fixed-4096")
read -r k_rps _ < <(wrk_run 64 "${URL[4KiB]}")
read -r h_rps _ < <(load_run --op get --size 4KiB --concurrency 64 --seconds "$SECS")
row "GET 4 KiB, 64 conns, presigned (wrk)" "$n_rps req/s" "$k_rps req/s" "$(ratio "$k_rps" "$n_rps")"
row "GET 4 KiB, 64 conns, header-signed (load tool)" "(wrk) $n_rps req/s" "$h_rps req/s" "$(ratio "$h_rps" "$n_rps")"

if [ "$QUICK" != 1 ]; then
    for s in 64MiB 1GiB; do
        echo "GET $s, 4 connections..." >&2
        n=$(bytes_of "$s")
        read -r _ n_mib < <(wrk_run 4 "http://127.0.0.1:$NP/keyhole-load/fixed-$n")
        read -r _ k_mib < <(wrk_run 4 "${URL[$s]}")
        row "GET $s, 4 conns, presigned (wrk)" "$n_mib MiB/s" "$k_mib MiB/s" "$(ratio "$k_mib" "$n_mib")"
    done
fi

echo "PUT 4 KiB, 8 in flight..." >&2
read -r p_rps _ < <(load_run --op put --size 4KiB --concurrency 8 --seconds "$SECS" --signed-payload)
row "PUT 4 KiB, 8 in flight (load tool)" "-" "$p_rps req/s" "-"

if [ "$QUICK" != 1 ]; then
    echo "PUT 1 GiB, one stream, and dd conv=fdatasync..." >&2
    read -r _ p_mib < <(load_run --op put --size 1GiB --concurrency 1 --requests 2 --seconds 300)
    dd_out=$(dd if=/dev/zero of="$T/dd.bin" bs=1M count=1024 conv=fdatasync 2>&1 | tail -1)
    rm -f "$T/dd.bin"
    dd_mib=$("$PY" -c '
import re, sys
m = re.search(r"(\d+) bytes .* copied, ([\d.]+) s", sys.argv[1])
print(f"{int(m.group(1)) / float(m.group(2)) / 2**20:.1f}")' "$dd_out")
    row "PUT 1 GiB, one stream (keyhole vs dd fdatasync)" "(dd) $dd_mib MiB/s" "$p_mib MiB/s" "$(ratio "$p_mib" "$dd_mib")"
fi

echo
echo "keyhole $("$KEYHOLE_BIN" --version 2>/dev/null | head -1) beside $("$NGINX" -v 2>&1 | head -1); $(nproc) cores; ${SECS}s per run; $(date -u +%Y-%m-%dT%H:%MZ)"
printf '| %-50s | %20s | %14s | %6s |\n' "case" "nginx" "keyhole" "ratio"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..52})" "$(printf -- '-%.0s' {1..22})" "$(printf -- '-%.0s' {1..16})" "$(printf -- '-%.0s' {1..8})"
printf '%s\n' "${ROWS[@]}"
echo "peak RSS of keyhole: $(grep VmHWM "/proc/${PIDS[0]}/status" | awk '{print $2, $3}')"
