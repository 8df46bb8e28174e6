#!/usr/bin/env bash
# keyhole in front of an upstream S3 server vs the upstream directly, side by side in one run
# (docs/BENCHMARKS.md, "Upstream backend").
#   scripts/bench-upstream.sh [s3s-fs|keyhole] [ROUNDS]
# Starts the upstream (s3s-fs from target/s3s-fs, as scripts/test.sh installs it, or a second
# keyhole) and a keyhole gateway in front of it (release builds), then alternates, ROUNDS times,
# the same load-tool runs against the gateway and against the upstream:
#   GET 4 KiB, 8 in flight, 10 s;  GET 4 KiB, 1 in flight, 10 s (latency);
#   PUT 1 GiB and GET 1 GiB, one at a time, 2 requests each;
# and finally one 5 GiB PUT and GET through the gateway, printing the gateway's peak RSS (VmHWM).
# Every `via` line is followed by the CPU time the gateway spent on it (user + system, from
# /proc/PID/stat), per GiB moved for the large objects.
#
# BENCH_UPSTREAM_RATE=4gbit (any tc rate) puts the upstream behind a link of that speed: an HTB
# class on the loopback device for traffic from and to the upstream's port (needs root and tc;
# removed on exit), as when the store is across a network rather than on the gateway's own two
# cores. Other loopback traffic is not limited.
set -euo pipefail

UPSTREAM=${1:-s3s-fs}
ROUNDS=${2:-3}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
KEYHOLE=${KEYHOLE_RELEASE_BIN:-$TARGET/release/keyhole}
LOAD=${LOAD_BIN:-$TARGET/release/examples/load}
S3S_FS=${KEYHOLE_S3S_FS:-$TARGET/s3s-fs/bin/s3s-fs}
UP_PORT=${BENCH_UP_PORT:-19420}
GW_PORT=${BENCH_GW_PORT:-19421}
WORK=$(mktemp -d /tmp/keyhole-bench-up.XXXXXX)
PIDS=()
RATE=${BENCH_UPSTREAM_RATE:-}
cleanup() {
    if [ -n "$RATE" ]; then tc qdisc del dev lo root 2>/dev/null || true; fi
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on $1" >&2
    exit 1
}

case $UPSTREAM in
    s3s-fs)
        mkdir -p "$WORK/s3s-root"
        secret=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
        printf '[default]\naws_access_key_id = BENCHUPSTREAM\naws_secret_access_key = %s\n' "$secret" >"$WORK/up-creds"
        "$S3S_FS" --host 127.0.0.1 --port "$UP_PORT" --access-key BENCHUPSTREAM --secret-key "$secret" \
            "$WORK/s3s-root" >"$WORK/up.log" 2>&1 &
        PIDS+=($!)
        wait_port "$UP_PORT"
        ;;
    keyhole)
        RUST_LOG=warn "$KEYHOLE" serve --listen "127.0.0.1:$UP_PORT" --data-dir "$WORK/up-data" >"$WORK/up.log" 2>&1 &
        PIDS+=($!)
        wait_port "$UP_PORT"
        for _ in $(seq 50); do [ -s "$WORK/up-data/root-credentials" ] && break; sleep 0.1; done
        cp "$WORK/up-data/root-credentials" "$WORK/up-creds"
        ;;
    *) echo "usage: bench-upstream.sh [s3s-fs|keyhole] [ROUNDS]" >&2; exit 2 ;;
esac

RUST_LOG=warn "$KEYHOLE" serve --listen "127.0.0.1:$GW_PORT" --data-dir "$WORK/gw-data" \
    --upstream-endpoint "http://127.0.0.1:$UP_PORT" --upstream-credentials-file "$WORK/up-creds" \
    >"$WORK/gw.log" 2>&1 &
GW_PID=$!
PIDS+=("$GW_PID")
wait_port "$GW_PORT"
for _ in $(seq 50); do [ -s "$WORK/gw-data/root-credentials" ] && break; sleep 0.1; done

if [ -n "$RATE" ]; then
    tc qdisc add dev lo root handle 1: htb default 10
    tc class add dev lo parent 1: classid 1:10 htb rate 1000gbit
    tc class add dev lo parent 1: classid 1:20 htb rate "$RATE" ceil "$RATE"
    tc filter add dev lo protocol ip parent 1: prio 1 u32 match ip sport "$UP_PORT" 0xffff flowid 1:20
    tc filter add dev lo protocol ip parent 1: prio 1 u32 match ip dport "$UP_PORT" 0xffff flowid 1:20
fi

# The gateway's CPU time so far, in clock ticks (utime + stime).
gw_ticks() { awk '{print $14 + $15}' "/proc/$GW_PID/stat"; }
TICKS=$(getconf CLK_TCK)
via_raw() { "$LOAD" --endpoint "http://127.0.0.1:$GW_PORT" --credentials "$WORK/gw-data/root-credentials" --bucket bench "$@"; }
via() {
    local before after out
    before=$(gw_ticks)
    out=$(via_raw "$@")
    after=$(gw_ticks)
    local cpu gib
    cpu=$(awk -v t=$((after - before)) -v hz="$TICKS" 'BEGIN {printf "%.2f", t / hz}')
    gib=$(sed -n 's/.*size=\([0-9]*\).*requests=\([0-9]*\).*/\1 \2/p' <<<"$out" | awk '{printf "%.3f", $1 * $2 / 1073741824}')
    echo "$out gateway_cpu_s=$cpu cpu_s_per_gib=$(awk -v c="$cpu" -v g="$gib" 'BEGIN {if (g > 0.5) printf "%.3f", c / g; else print "-"}')"
}
direct() { "$LOAD" --endpoint "http://127.0.0.1:$UP_PORT" --credentials "$WORK/up-creds" --bucket bench "$@"; }

echo "# upstream $UPSTREAM${RATE:+ behind a $RATE link}, $ROUNDS rounds, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
    echo "# round $round, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    for path in direct via; do
        echo "$path $($path --op get --size 4KiB --concurrency 8 --seconds 10)"
        echo "$path $($path --op get --size 4KiB --concurrency 1 --seconds 10)"
        echo "$path $($path --op put --size 1GiB --concurrency 1 --requests 2 --seconds 300)"
        echo "$path $($path --op get --size 1GiB --concurrency 1 --requests 2 --seconds 300)"
    done
done
echo "# 5 GiB through the gateway (the GET seeds itself with a 5 GiB PUT)"
echo "via $(via --op get --size 5GiB --concurrency 1 --requests 1 --seconds 600)"
echo "gateway $(grep VmHWM "/proc/$GW_PID/status")"
