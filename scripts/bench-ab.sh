#!/usr/bin/env bash
# Compares two keyhole binaries on the local store, alternating runs so that other work on the
# machine hits both alike (docs/BENCHMARKS.md).
#   scripts/bench-ab.sh OLD_KEYHOLE NEW_KEYHOLE [ROUNDS] [LOAD_TOOL]
# Each round starts each binary on a fresh data directory and runs, with the load tool
# (crates/cli/examples/load.rs, default target/release/examples/load):
#   PUT 4 KiB, 8 in flight, 10 s, body SHA-256 signed; GET 4 KiB, 8 in flight, 10 s;
#   PUT 1 GiB, one at a time, 3 requests; GET 1 GiB, one at a time, 3 requests;
# then prints the server's peak RSS (VmHWM). One line per run, prefixed with the binary's label.
# BENCH_OPS picks workloads (default "put4k get4k put1g get1g").
set -euo pipefail

OLD=${1:?usage: bench-ab.sh OLD_KEYHOLE NEW_KEYHOLE [ROUNDS] [LOAD_TOOL]}
NEW=${2:?usage: bench-ab.sh OLD_KEYHOLE NEW_KEYHOLE [ROUNDS] [LOAD_TOOL]}
ROUNDS=${3:-3}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOAD=${4:-${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/load}
PORT=${BENCH_PORT:-19400}
WORK=$(mktemp -d /tmp/keyhole-bench-ab.XXXXXX)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
PID=

run_one() {
    local label=$1 bin=$2 data="$WORK/data-$1"
    rm -rf "$data"
    RUST_LOG=warn "$bin" serve --listen "127.0.0.1:$PORT" --data-dir "$data" >"$WORK/$label.log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    local L=("$LOAD" --endpoint "http://127.0.0.1:$PORT" --credentials "$data/root-credentials")
    for op in ${BENCH_OPS:-put4k get4k put1g get1g}; do
        case $op in
            put4k) echo "$label $("${L[@]}" --op put --size 4KiB --concurrency 8 --seconds 10 --signed-payload)" ;;
            get4k) echo "$label $("${L[@]}" --op get --size 4KiB --concurrency 8 --seconds 10)" ;;
            put1g) echo "$label $("${L[@]}" --op put --size 1GiB --concurrency 1 --requests 3 --seconds 120)" ;;
            get1g) echo "$label $("${L[@]}" --op get --size 1GiB --concurrency 1 --requests 3 --seconds 120)" ;;
            *) echo "unknown workload $op" >&2; exit 2 ;;
        esac
    done
    echo "$label $(grep VmHWM "/proc/$PID/status")"
    kill "$PID"
    wait "$PID" 2>/dev/null || true
    PID=
    rm -rf "$data"
}

for round in $(seq "$ROUNDS"); do
    echo "# round $round, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    run_one old "$OLD"
    run_one new "$NEW"
done
