#!/bin/bash
# Runs the gateway throughput workloads of docs/BENCHMARKS.md against one build, on a fresh data
# directory, and prints the load tool's summary lines and the server's peak RSS.
#
# usage: scripts/bench_compare.sh DIR LABEL
#   DIR holds release binaries `keyhole` and `load` (cargo build --release -p keyhole --bin keyhole
#   --example load; copy target/release/keyhole and target/release/examples/load), LABEL names the
#   run in the output. Run two builds alternately to compare them.
set -u
B=$1; LABEL=$2
D=$(mktemp -d /tmp/bench.XXXX); chmod 700 $D
RUST_LOG=warn $B/keyhole serve --listen 127.0.0.1:19100 --data-dir $D/data >/dev/null 2>&1 &
PID=$!
for i in $(seq 50); do curl -s http://127.0.0.1:19100/healthz >/dev/null && break; sleep 0.2; done
L="$B/load --endpoint http://127.0.0.1:19100 --credentials $D/data/root-credentials"
echo "== $LABEL"
$L --op put --size 4KiB --concurrency 8 --seconds 10 --signed-payload 2>&1 | grep -iE "req/s|MiB/s" | head -2
$L --op get --size 4KiB --concurrency 8 --seconds 10 2>&1 | grep -iE "req/s|MiB/s" | head -2
$L --op put --size 1GiB --concurrency 1 --requests 3 --seconds 120 2>&1 | grep -iE "req/s|MiB/s" | head -2
$L --op get --size 1GiB --concurrency 1 --requests 3 --seconds 120 2>&1 | grep -iE "req/s|MiB/s" | head -2
grep VmHWM /proc/$PID/status
kill $PID; wait $PID 2>/dev/null
rm -rf $D
