# shellcheck shell=bash disable=SC2034  # globals shared with scripts/bench
# scripts/bench.d/shapes.sh — `scripts/bench --shapes`: the traffic shapes an
# operator meets besides small kept-alive requests, pasture vs nginx vs
# HAProxy, each measured against the floor (bench.d/floor.c in the mode the
# shape needs).
#
# Sourced by scripts/bench (not run on its own): it reuses that script's
# upstreams (two nginx on loopback), start_proxy (the same configurations as
# the default run), memory (holdconns.py) and report.lua, and lib.sh's process
# groups, cleanup trap and procstat.py. Entry point: shapes_main ARGS...
#
# Shapes (wrk -t1 on core 0, the proxy at 1 and 2 workers as in the default
# run; per shape and worker count the servers run side by side and take
# turns, round after round):
#   upclose   upstreams that close after every answer (/close on the
#             upstreams: keepalive_timeout 0, `Connection: close`): a
#             connect per request; floor -u
#   close     clients without keep-alive (`Connection: close` on every
#             request): an accept and a close per request; floor -C
#   c5000     5,000 concurrent kept-alive clients; floor as in the default run
#   headers   requests with 2 KiB of cookies and 30 more header fields
#             (~3.4 KiB a request); floor as in the default run
#   pipeline  16 requests pipelined per write on each connection; floor -t
#   64k       64 KiB answers (a static file on the upstreams); floor -t
#   memory    RSS per idle kept-alive connection with 20,000 held
#             (holdconns.py; no floor)

shapes_usage() {
    cat <<'EOF'
usage: scripts/bench --shapes [options]     (Debian 12; root to install tools)

Traffic shapes, pasture vs nginx vs HAProxy in front of the same two nginx
upstreams, each beside the floor (bench.d/floor.c in the mode the shape
needs), at 1 and 2 workers: req/s, p99, CPU µs per request, CPU above the
floor, and pasture's above-floor CPU ÷ the better peer's (target ≤ 0.5).

  --shape LIST       shapes, comma-separated (default all):
                       upclose   upstreams close after every answer (a
                                 connect per request)
                       close     clients send `Connection: close` (an accept
                                 per request)
                       c5000     5,000 concurrent kept-alive clients
                       headers   2 KiB of cookies and 30 more header fields
                       pipeline  16 pipelined requests per write
                       64k       64 KiB answers
                       memory    RSS per idle kept-alive connection, 20,000
                                 held (fewer if the fd limit is lower)
  --quick            short run: 1 round, 4 s measured runs
  --only LIST        proxies: pasture,nginx,haproxy,floor (default all)
  --workers LIST     worker counts (default 1,2)
  --conc C           clients for the shapes other than c5000 (default 50)
  --rounds N         rounds (default 6, or 1 with --quick): per shape and
                     worker count the servers run side by side and take
                     turns, each measured once per round in an order
                     rotated per round; req/s, p99 and CPU each the median
                     of the rounds, above the floor the median of (CPU −
                     the floor's in the same round)
  --duration S       seconds per measured run (default 4)
  --warmup S         seconds of warm-up before it (default 1)
  --port-base P      upstreams on P+1 and P+2, the servers on P and P+3 to
                     P+5 (default 18080; all below the kernel's ephemeral
                     port range)
  --no-build         don't build pasture; use build/pasture as it is
  --out [FILE]       also save the report to FILE (default bench-shapes.md)
  --keep-tmp         keep the temp dir (configs, scripts, logs)
  -h, --help         this text

environment:
  PASTURE=path       pasture binary to use (implies --no-build)
EOF
}

SHAPES_ALL=(upclose close c5000 headers pipeline 64k memory)
SHAPE_HOLD=20000               # idle kept-alive connections held (memory)
SHAPE_PIPELINE=16              # requests per pipelined write

# shape_url SHAPE: the path the shape asks for.
shape_url() {
    case $1 in upclose) echo /close ;; 64k) echo /64k ;; *) echo / ;; esac
}

# shape_floor_mode SHAPE: floor.c's option for the shape.
shape_floor_mode() {
    case $1 in upclose) echo -u ;; close) echo -C ;; pipeline|64k) echo -t ;; *) echo "" ;; esac
}

# shape_scripts: one wrk script per shape in $TMP, each report.lua plus what
# the shape adds to the request.
shape_scripts() {
    local s
    for s in "${SHAPES_ALL[@]}"; do
        cat "$BENCH_D/report.lua" - >"$TMP/shape-$s.lua" <<'EOF'

-- report.lua's line; when wrk's percentile() answers 0 (it does at p99 once
-- requests are pipelined), p50 and p99 are counted from the recorded
-- samples instead: latency(i) walks the histogram, so only when there are
-- few distinct values (else the maximum stands in).
done = function(summary, latency, requests)
   local p50, p99 = latency:percentile(50), latency:percentile(99)
   if p99 == 0 and #latency <= 20000 then
      local total, acc = 0, 0
      p50 = 0
      for i = 1, #latency do local _, c = latency(i); total = total + c end
      for i = 1, #latency do
         local v, c = latency(i)
         acc = acc + c
         if p50 == 0 and acc >= 0.5 * total then p50 = v end
         if p99 == 0 and acc >= 0.99 * total then p99 = v end
      end
   elseif p99 == 0 then
      p99 = latency.max
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d bytes=%d p50_us=%d p99_us=%d " ..
      "connect=%d read=%d write=%d timeout=%d status=%d\n",
      summary.requests, summary.duration, summary.bytes, p50, p99,
      e.connect, e.read, e.write, e.timeout, e.status))
end
EOF
    done
    cat >>"$TMP/shape-headers.lua" <<'EOF'

-- 30 header fields a browser, an API client and a tracer send, and 2 KiB of
-- cookies (32 of them), the same on every request.
local fields = {
   "User-Agent", "Accept", "Accept-Language", "Accept-Encoding", "Referer",
   "Origin", "DNT", "Cache-Control", "Pragma", "Upgrade-Insecure-Requests",
   "Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User",
   "Sec-Ch-Ua", "Sec-Ch-Ua-Mobile", "Sec-Ch-Ua-Platform", "X-Request-Id",
   "X-Correlation-Id", "X-Client-Version", "X-Api-Key", "X-Device-Id",
   "X-Session-Id", "X-Trace-Id", "Traceparent", "Tracestate", "Baggage",
   "If-None-Match", "If-Modified-Since", "Authorization" }
for i, name in ipairs(fields) do
   wrk.headers[name] = string.format("value-%02d-%s", i, string.rep("abcdef0123", 4))
end
local cookies = {}
for i = 1, 32 do
   cookies[i] = string.format("cookie%02d=%s", i, string.rep(string.format("%x", i % 16), 53))
end
wrk.headers["Cookie"] = table.concat(cookies, "; ")
EOF
    cat >>"$TMP/shape-pipeline.lua" <<EOF

-- $SHAPE_PIPELINE requests in one write; wrk counts and times each answer.
init = function(args)
   local r = {}
   for i = 1, $SHAPE_PIPELINE do r[i] = wrk.format(nil, wrk.path) end
   req = table.concat(r)
end
request = function() return req end
EOF
}

# shape_wrk SHAPE CONC SECONDS -> wrk's output (with its BENCH line).
shape_wrk() {
    local shape=$1 extra=()
    [[ $shape == close ]] && extra=(-H 'Connection: close')
    timeout --foreground -k 5 $(($3 + 30)) taskset -c "$CLIENT_CPUS" \
        wrk -t1 -c"$2" -d"$3"s --latency "${extra[@]}" -s "$TMP/shape-$shape.lua" \
        "http://127.0.0.1:$PROXY_PORT$(shape_url "$shape")" 2>&1 || true
}

# shape_measure SHAPE NAME WORKERS ROUND: warm-up, then one measured run with
# the proxy's CPU and the upstreams' counters read around it; appends a
# `shape` record.
shape_measure() {
    local shape=$1 name=$2 w=$3 r=$4 c=$SHAPE_CONC out line load
    [[ $shape == c5000 ]] && c=5000
    local -A s0 s1 f0 f1 b
    local -a ua ub
    shape_wrk "$shape" "$c" "$WARMUP" >/dev/null
    parse_kv s0 "$(procstat "$PROXY_PID")"
    parse_kv f0 "$(procstat $$ --foreign)"
    read -r -a ua <<<"$(upstream_counts "$UP1_PORT") $(upstream_counts "$UP2_PORT")"
    out=$(shape_wrk "$shape" "$c" "$DURATION")
    parse_kv s1 "$(procstat "$PROXY_PID")"
    parse_kv f1 "$(procstat $$ --foreign)"
    read -r -a ub <<<"$(upstream_counts "$UP1_PORT") $(upstream_counts "$UP2_PORT")"
    read -r load _ </proc/loadavg
    line=$(grep '^BENCH ' <<<"$out" || true)
    if [[ -z $line ]]; then
        log "wrk gave no result for $shape $name w=$w: $(tail -c 200 <<<"$out")"
        return
    fi
    parse_kv b "${line#BENCH }"
    ((s1[nproc] > 0)) || s1[ticks]=$((s0[ticks] - 1))
    echo "shape shape=$shape proxy=$name workers=$w conc=$c round=$r requests=${b[requests]}" \
         "duration_us=${b[duration_us]} p50_us=${b[p50_us]} p99_us=${b[p99_us]}" \
         "sockerr=$((b[connect] + b[read] + b[write] + b[timeout]))" \
         "non2xx=${b[status]} ticks=$((s1[ticks] - s0[ticks])) cpu_ns=$((s1[cpu_ns] - s0[cpu_ns]))" \
         "up1=$((ub[1] - ua[1])) up2=$((ub[3] - ua[3])) upconns=$((ub[0] + ub[2] - ua[0] - ua[2]))" \
         "foreign=$((f1[foreign_ticks] - f0[foreign_ticks])) load1=$load time=$(date -u +%H:%M:%S)" >>"$RESULTS"
    log "  $shape $name w=$w round $r: $((b[requests] * 1000000 / b[duration_us])) req/s," \
        "p99 ${b[p99_us]} µs, CPU $(( (s1[cpu_ns] - s0[cpu_ns]) / 1000 / (b[requests] + 1) )) µs/req," \
        "errors $((b[connect] + b[read] + b[write] + b[timeout] + b[status])), load $load"
}

# shape_start SHAPE NAME WORKERS: start_proxy with the shape's settings.
shape_start() {
    local shape=$1
    FLOOR_MODE=$(shape_floor_mode "$shape")
    PROXY_BACKLOG="" PASTURE_MAX_CONNS="" NGINX_WORKER_CONNS=""
    case $shape in
        c5000) PROXY_BACKLOG=4096 ;;
        memory)
            # Every held connection in one worker at w=1: the limits above
            # the count held (pasture's default is half the fd limit, as
            # each client may need an upstream connection too).
            PROXY_BACKLOG=4096 PASTURE_MAX_CONNS=$((SHAPE_HOLD + 500))
            NGINX_WORKER_CONNS=$((SHAPE_HOLD + 500)) ;;
    esac
    start_proxy "$2" "$3"
}

shapes_main() {
    local quick=0 only="pasture,nginx,haproxy,floor" list="" workers="1,2"
    SHAPE_CONC=50 ROUNDS="" DURATION="" WARMUP=""
    while (($#)); do
        case "$1" in
            --shapes) ;;
            --shape) list=${2:?--shape needs a list}; shift ;;      --shape=*) list=${1#*=} ;;
            --quick) quick=1 ;;
            --only) only=${2:?--only needs a list}; shift ;;        --only=*) only=${1#*=} ;;
            --workers) workers=${2:?}; shift ;;                     --workers=*) workers=${1#*=} ;;
            --conc) SHAPE_CONC=${2:?}; shift ;;                     --conc=*) SHAPE_CONC=${1#*=} ;;
            -h|--help) shapes_usage; exit 0 ;;
            *) mode_opt bench-shapes.md "$@" ||
                   { echo "bench --shapes: unknown option $1" >&2; shapes_usage >&2; exit 2; }
               shift $((MODE_ARGS - 1)) ;;
        esac
        shift
    done
    # Short runs, many rounds: the servers take turns (see below).
    ((quick)) || : "${ROUNDS:=6}" "${DURATION:=4}" "${WARMUP:=1}"
    mode_rounds shapes "$quick" ROUNDS DURATION WARMUP PORT_BASE SHAPE_CONC
    local n
    PROXY_PORT=$PORT_BASE UP1_PORT=$((PORT_BASE + 1)) UP2_PORT=$((PORT_BASE + 2))
    ONLY=$only
    local -a names shapes wl
    IFS=, read -r -a names <<<"$only"
    local -A seen=()
    for n in "${names[@]}"; do
        case $n in pasture|nginx|haproxy|floor) ;; *) echo "bench --shapes: --only: unknown proxy '$n'" >&2; exit 2 ;; esac
        [[ -z "${seen[$n]:-}" ]] || { echo "bench --shapes: --only: '$n' twice" >&2; exit 2; }
        seen[$n]=1
    done
    if [[ -n $list ]]; then IFS=, read -r -a shapes <<<"$list"; else shapes=("${SHAPES_ALL[@]}"); fi
    for n in "${shapes[@]}"; do
        [[ " ${SHAPES_ALL[*]} " == *" $n "* ]] || { echo "bench --shapes: unknown shape '$n'" >&2; exit 2; }
    done
    IFS=, read -r -a wl <<<"$workers"
    for n in "${wl[@]}"; do [[ $n =~ ^[12]$ ]] || { echo "bench --shapes: --workers: 1 or 2" >&2; exit 2; }; done

    (($(id -u) == 0)) || log "warning: not root; missing tools can't be installed"
    ensure_tools
    mode_setup shapes
    check_ports "${#names[@]}"
    raise_fd_limit $((2 * SHAPE_HOLD + 2000))
    # The held connections must fit the proxy's fd limit, and HAProxy (one
    # process) refuses a maxconn whose two descriptors per connection do not.
    local hold_note="" lim
    lim=$(ulimit -n)
    if ((lim < 2 * SHAPE_HOLD + 2000)); then
        SHAPE_HOLD=$(( (lim - 2000) / 2 / 1000 * 1000 ))
        hold_note="fd limit $lim"
        log "memory: the fd limit is $lim: holding $SHAPE_HOLD connections, not 20,000"
    fi
    HOLD_N=$SHAPE_HOLD
    ((HAPROXY_MAXCONN >= SHAPE_HOLD + 500)) || HAPROXY_MAXCONN=$((SHAPE_HOLD + 500))
    build_pasture
    build_floor
    start_upstreams
    shape_scripts
    check_quiet
    read -r n _ </proc/loadavg
    echo "env date=$(date -u +%FT%TZ) rounds=$ROUNDS duration=$DURATION warmup=$WARMUP conc=$SHAPE_CONC" \
         "pipeline=$SHAPE_PIPELINE hold=$SHAPE_HOLD hold_note=${hold_note// /_} load1_start=$n" >>"$RESULTS"

    # Per shape and worker count the servers run side by side, each on its
    # own port, and take turns, in an order rotated per round (see
    # scripts/bench's main): a cell's runs are seconds apart.
    local r shape name w i k
    local -a up order
    declare -A skipped=() pids=() ports=()
    i=0
    for name in "${names[@]}"; do ports[$name]=$(server_port "$i"); i=$((i + 1)); done
    for shape in "${shapes[@]}"; do
        [[ $shape == memory ]] && continue
        for w in "${wl[@]}"; do
            up=() DEAD_SEEN=()
            for name in "${names[@]}"; do
                [[ -n "${skipped[$name]:-}" ]] && continue
                PROXY_PORT=${ports[$name]} PROXY_PID=""
                mode_start "$name" shape_start "$shape" "$name" "$w" || { skipped[$name]=1; continue; }
                pids[$name]=$PROXY_PID
                up+=("$name")
            done
            for ((r = 1; r <= ROUNDS; r++)); do
                mapfile -t order < <(rotated "$r" "${#up[@]}")
                log "round $r/$ROUNDS: $shape, $w worker(s), cpus $(proxy_cpus "$w"):" \
                    "$(for k in "${order[@]}"; do printf '%s ' "${up[k]}"; done)"
                for k in "${order[@]}"; do
                    PROXY_PID=${pids[${up[k]}]} PROXY_PORT=${ports[${up[k]}]}
                    # A server that died is reported once per cell (a
                    # `died` record) and skipped for the rest of it.
                    proxy_alive "${up[k]}" "$w" "in $shape before round $r" || continue
                    shape_measure "$shape" "${up[k]}" "$w" "$r"
                done
            done
            for name in "${up[@]}"; do stop_group "${pids[$name]}"; done
            PROXY_PID="" PROXY_PORT=$PORT_BASE
        done
    done
    if [[ " ${shapes[*]} " == *" memory "* ]]; then
        for w in "${wl[@]}"; do
            for name in "${names[@]}"; do
                [[ $name == floor || -n "${skipped[$name]:-}" ]] && continue
                log "memory: $name, $w worker(s), $SHAPE_HOLD idle connections"
                if ! shape_start memory "$name" "$w"; then
                    log "SKIPPING memory $name: $READY_ERR"
                    [[ -n "${PROXY_PID:-}" ]] && stop_group "$PROXY_PID"
                    continue
                fi
                memory "$name" "$w"
                stop_group "$PROXY_PID"; PROXY_PID=""
            done
        done
    fi

    read -r n _ </proc/loadavg
    echo "versions nginx=$(nginx -v 2>&1 | sed 's|.*/||') haproxy=$(haproxy -v 2>/dev/null | awk 'NR==1{print $3}')" \
         "wrk=$(wrk -v 2>&1 | awk 'NR==1{print $2}') pasture=$(mode_pasture_rev) kernel=$(uname -r)" \
         "elapsed=$SECONDS cpus=$(nproc) end=$(date -u +%FT%TZ) load1_end=$n" \
         "cpu=$(awk -F': ' '/model name/{gsub(/ /,"_",$2); print $2; exit}' /proc/cpuinfo)" >>"$RESULTS"
    mode_report shapes_render.py
}
