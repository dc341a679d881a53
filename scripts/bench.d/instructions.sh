#!/usr/bin/env bash
# scripts/bench.d/instructions.sh BIN... — user-space instructions per proxied
# request in a pasture worker, counted by callgrind (valgrind): a figure a busy
# machine does not disturb, unlike CPU time. For each binary: one worker
# proxying to a pasture echo upstream, two wrk runs of different lengths under
# callgrind; the slope between them (instructions / requests) drops start-up
# and shutdown. Used by `scripts/bench --counters` (with and without counters).
# Prints "BIN instructions_per_request".
set -Eeuo pipefail
PORT=${PORT:-19180}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pasture-ir.XXXXXX")
UPBIN=$1
cleanup() { pkill -P $$ 2>/dev/null || true; kill "${UP_PID:-}" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
command -v valgrind >/dev/null || { echo "instructions: valgrind not installed" >&2; exit 1; }
printf '[server:main]\nuse = egg:pasture#main\nhost = 127.0.0.1\nport = %s\nworkers = 1\n[app:main]\nuse = egg:pasture#echo\n' \
    $((PORT + 1)) >"$TMP/up.ini"
printf '[server:main]\nuse = egg:pasture#main\nhost = 127.0.0.1\nport = %s\nworkers = 1\n[app:main]\nuse = egg:pasture#balancer\nservers = 127.0.0.1:%s\n' \
    "$PORT" $((PORT + 1)) >"$TMP/px.ini"
"$UPBIN" serve "$TMP/up.ini" >"$TMP/up.log" 2>&1 & UP_PID=$!

# run BIN SECONDS -> "requests instructions" of the busiest process (the worker)
run() {
    local out="$TMP/cg.$RANDOM" vp n
    mkdir -p "$out"
    valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" "$1" serve "$TMP/px.ini" >"$out/log" 2>&1 & vp=$!
    for _ in $(seq 120); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.5; done
    n=$(wrk -t1 -c10 -d"$2"s "http://127.0.0.1:$PORT/" | awk '/requests in/{print $1}')
    kill -INT "$vp"; wait "$vp" || true
    echo "$n $(cat "$out"/cg.* | awk '/^summary:/{if ($2 > m) m = $2} END {print m}')"
}
for bin in "$@"; do
    read -r n1 i1 < <(run "$bin" 3)
    read -r n2 i2 < <(run "$bin" 9)
    ((n2 > n1)) || { echo "$bin ?"; continue; }
    echo "$bin $(((i2 - i1) / (n2 - n1)))"
done
