#!/usr/bin/env bash
# Three keyhole nodes on one PostgreSQL state in front of one upstream (docs/BENCHMARKS.md,
# "Three nodes on one PostgreSQL state"). Release builds:
#   CARGO_TARGET_DIR=... cargo build --release --bin keyhole --example load --example nodes
#   scripts/bench-nodes.sh [TRIALS] [USERS] [ROLES] [JOBS]
# Starts a private PostgreSQL cluster (initdb in a temporary directory, 127.0.0.1, as the
# `postgres` user when run as root), a keyhole upstream on its own SQLite state and three nodes
# on the shared state, then measures, printing the load average next to each part:
#   (a) a revocation made on one node until both others refuse the session, TRIALS trials;
#   (b) GET 4 KiB, 8 in flight, 10 s: one node vs the same load spread over three, 3 rounds;
#   (c) with USERS users, ROLES roles and JOBS active jobs created through the API: the time to
#       rebuild the whole snapshot from the database, and a revocation and a policy change made
#       on one node until every other node answers by it, TRIALS trials each.
# Everything (PostgreSQL included) runs on this machine: the nodes share its cores.
# PARTS (default abc) picks the parts to run; the nodes' PIDs are in $WORK/pids (for a profiler).
set -euo pipefail
PARTS=${PARTS:-abc}

TRIALS=${1:-100}
USERS=${2:-10000}
ROLES=${3:-10000}
JOBS=${4:-1000}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
KEYHOLE=${KEYHOLE_RELEASE_BIN:-$TARGET/release/keyhole}
LOAD=${LOAD_BIN:-$TARGET/release/examples/load}
NODES=${NODES_BIN:-$TARGET/release/examples/nodes}
PORT=${BENCH_PORT:-19430}   # PostgreSQL; the upstream and nodes take the next four
WORK=$(mktemp -d /tmp/keyhole-bench-nodes.XXXXXX)
PIDS=()
PG_BIN=${KEYHOLE_PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$PG_BIN/initdb" ] || { echo "no PostgreSQL server binaries (set KEYHOLE_PG_BINDIR)" >&2; exit 1; }
AS=()
if [ "$(id -u)" = 0 ]; then
    AS=(runuser -u postgres --)
    chown postgres "$WORK"
fi
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$WORK/pg/postmaster.pid" ] && kill -INT "$(head -1 "$WORK/pg/postmaster.pid")" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_port() {
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on $1" >&2
    exit 1
}
load() { echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"; }

"${AS[@]}" "$PG_BIN/initdb" -D "$WORK/pg" -U keyhole --auth=trust -E UTF8 --no-sync >"$WORK/initdb.log"
"${AS[@]}" "$PG_BIN/postgres" -D "$WORK/pg" -p "$PORT" -k "$WORK" -c listen_addresses=127.0.0.1 \
    -c fsync=off >"$WORK/pg.log" 2>&1 &
wait_port "$PORT"
until "${AS[@]}" "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U keyhole; do sleep 0.1; done
"${AS[@]}" "$PG_BIN/createdb" -h 127.0.0.1 -p "$PORT" -U keyhole keyhole
STATE="postgres://keyhole@127.0.0.1:$PORT/keyhole"

UP_PORT=$((PORT + 1))
RUST_LOG=warn "$KEYHOLE" serve --listen "127.0.0.1:$UP_PORT" --data-dir "$WORK/up" >"$WORK/up.log" 2>&1 &
PIDS+=($!)
wait_port "$UP_PORT"
for _ in $(seq 50); do [ -s "$WORK/up/root-credentials" ] && break; sleep 0.1; done
ENDPOINTS=()
for i in 1 2 3; do
    port=$((PORT + 1 + i))
    RUST_LOG=warn "$KEYHOLE" serve --listen "127.0.0.1:$port" --data-dir "$WORK/node$i" \
        --state "$STATE" --master-key-file "$WORK/master.key" \
        --upstream-endpoint "http://127.0.0.1:$UP_PORT" --upstream-credentials-file "$WORK/up/root-credentials" \
        >"$WORK/node$i.log" 2>&1 &
    PIDS+=($!)
    wait_port "$port"
    ENDPOINTS+=(--endpoint "http://127.0.0.1:$port")
done
CREDS="$WORK/node1/root-credentials"
ACCOUNT=$(sed -n 's/.*"account_id": *"\([0-9]*\)".*/\1/p' "$WORK/node1/account.json")

echo "# $(nproc) cores, PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'), $(load)"
echo "${PIDS[@]:1}" >"$WORK/pids"
if [[ $PARTS == *a* ]]; then
echo "## (a) revocation, empty state, $(load)"
"$NODES" propagation "${ENDPOINTS[@]}" --credentials "$CREDS" --change revoke --trials "$TRIALS"
fi

if [[ $PARTS == *b* ]]; then
echo "## (b) GET 4 KiB, 8 in flight, 10 s"
for round in $(seq "${ROUNDS:-3}"); do
    echo "# round $round, $(load)"
    echo "one node:    $("$LOAD" "${ENDPOINTS[@]:0:2}" --credentials "$CREDS" --bucket bench --op get --size 4KiB --concurrency 8 --seconds "${SECONDS_PER_RUN:-10}")"
    echo "three nodes: $("$LOAD" "${ENDPOINTS[@]}" --credentials "$CREDS" --bucket bench --op get --size 4KiB --concurrency 8 --seconds "${SECONDS_PER_RUN:-10}")"
done
fi

if [[ $PARTS == *c* ]]; then
echo "## (c) $USERS users, $ROLES roles, $JOBS jobs, $(load)"
"$NODES" populate "${ENDPOINTS[@]}" --credentials "$CREDS" --users "$USERS" --roles "$ROLES" --jobs "$JOBS"
echo "# rebuild, $(load)"
"$NODES" rebuild --state "$STATE" --master-key-file "$WORK/master.key" --account-id "$ACCOUNT" --times 5
for change in revoke policy; do
    echo "# $change at size, $(load)"
    "$NODES" propagation "${ENDPOINTS[@]}" --credentials "$CREDS" --change "$change" --trials "$TRIALS"
done
fi
echo "# node RSS after the run: $(for p in "${PIDS[@]:1}"; do grep VmRSS "/proc/$p/status" | awk '{printf "%s %s; ", $2, $3}'; done)"
