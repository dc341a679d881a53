# shellcheck shell=bash disable=SC2034  # globals shared with scripts/bench
# scripts/bench.d/apps.sh — `scripts/bench --apps`: Python WSGI app servers
# side by side, in one run, on the same apps, port, CPU pinning and process
# count.
#
# Sourced by scripts/bench (not run on its own): it reuses the helpers that
# script sources from bench.d/lib.sh (start_bg, stop_group, the cleanup trap
# that kills every group started, pid_running, port_busy, log/die,
# procstat.py, the pasture build) and wrk's report.lua. Entry point: apps_main ARGS...
#
# Rows (--only names): pasture embedded with threads 1 (pasture-t1) and T
# (pasture-t4), pasture process mode (pasture-proc: pasture workers in front
# of waitress app processes), uWSGI --http11-socket (uwsgi-http11) and with
# its --http router process (uwsgi-router), gunicorn sync and gthread (gunicorn-sync, gunicorn-gthread), waitress alone (waitress)
# and `paster serve` with Paste's httpserver (paster).
# Apps (--app names): hello (bench.d/wsgi/bench_apps.py), pyramid
# (tests/wsgi/pasture_pyramid through tests/wsgi/pyramid.ini), sleep (20 ms
# of time.sleep per request). Every server loads them through paste.deploy.

apps_usage() {
    cat <<'EOF'
usage: scripts/bench --apps [options]       (Debian 12; root to install tools)

WSGI servers side by side on the same apps: pasture embedded (threads 1 and
T), pasture process mode, uWSGI (--http11-socket and --http), gunicorn sync
and gthread, waitress, paster.

  --quick            short run: 1 round, 4 s measured runs
  --only LIST        rows, comma-separated: pasture (= pasture-t1,pasture-t4,
                     pasture-proc), uwsgi (= uwsgi-http11,uwsgi-router),
                     gunicorn (= gunicorn-sync,gunicorn-gthread), waitress,
                     paster, or single names (default: all)
  --app LIST         apps, comma-separated: hello,pyramid,sleep (default: all)
  --workers W        processes per server, the same for every pre-fork row
                     (default 2); waitress and paster are one process
  --threads T        threads per process for the threaded rows (pasture-t4,
                     pasture-proc's app processes, gunicorn-gthread; default 4)
  --conc C           wrk connections (default 50)
  --wrk-threads N    wrk threads (default 2)
  --rounds N         rounds; the median round (by req/s) is reported
                     (default 3, or 1 with --quick)
  --duration S       seconds per measured wrk run (default 8, quick 4)
  --warmup S         seconds of wrk warm-up before it (default 2, quick 1)
  --port P           servers listen on 127.0.0.1:P (default 18180)
  --server-cpus L    CPUs for the servers (taskset list; default below)
  --client-cpus L    CPUs for wrk (default 0)
  --no-build         don't build pasture; use build/pasture as it is
  --out [FILE]       also save the report to FILE (default bench-apps.md)
  --keep-tmp         keep the temp dir (configs, server logs)
  -h, --help         this text

Pinning: wrk on core 0; the servers on cores 1..W when the machine has more
than W cores, else on all cores (2 cores, W=2: 0-1, sharing core 0 with wrk,
as scripts/bench pins its 2-worker proxies).

environment:
  PASTURE=path       pasture binary to use (implies --no-build)
EOF
}

APP_NAMES=(hello pyramid sleep)
ROW_NAMES=(pasture-t1 pasture-t4 pasture-proc uwsgi-http11 uwsgi-router gunicorn-sync gunicorn-gthread
           waitress paster)
SLEEP_MS=20                    # bench.d/wsgi/sleep.ini says the same

# apps_expand LIST KIND ARRAY: fill ARRAY with the comma-separated LIST
# (empty: all), groups expanded, checked against ROW_NAMES (KIND=row) or
# APP_NAMES (KIND=app).
apps_expand() {
    local list=$1 kind=$2 x items
    local -n _out=$3
    local -n _known=${kind^^}_NAMES
    _out=()
    [[ -n $list ]] || { _out=("${_known[@]}"); return 0; }
    IFS=, read -r -a items <<<"$list"
    for x in "${items[@]}"; do
        case "$kind:$x" in
            row:pasture) _out+=(pasture-t1 pasture-t4 pasture-proc) ;;
            row:uwsgi) _out+=(uwsgi-http11 uwsgi-router) ;;
            row:gunicorn) _out+=(gunicorn-sync gunicorn-gthread) ;;
            *) [[ " ${_known[*]} " == *" $x "* ]] || { echo "bench --apps: unknown $kind '$x'" >&2; exit 2; }
               _out+=("$x") ;;
        esac
    done
}

# ------------------------------------------------------------- the rows --
# Where each app is and what it must answer.
app_ini() {
    case "$1" in
        pyramid) echo "$REPO/tests/wsgi/pyramid.ini" ;;
        *) echo "$BENCH_D/wsgi/$1.ini" ;;
    esac
}
app_path() { [[ $1 == pyramid ]] && echo "/hello/bench?x=1" || echo "/"; }

# body_ok APP FILE: does FILE hold what APP answers?
body_ok() {
    local got; got=$(cat "$2"; echo .)
    case "$1" in
        hello) [[ $got == $'Hello, world!\n.' ]] ;;
        sleep) [[ $got == $'slept\n.' ]] ;;
        pyramid) [[ $got == *'"hello": "bench"'* && $got == *'"query": {"x": "1"}'* ]] ;;
    esac
}

row_label() {
    case "$1" in
        pasture-t1) echo "pasture embedded, threads 1" ;;
        pasture-t4) echo "pasture embedded, threads $THREADS" ;;
        pasture-proc) echo "pasture process mode (waitress app processes, $THREADS threads)" ;;
        uwsgi-http11) echo "uWSGI --http11-socket" ;;
        uwsgi-router) echo "uWSGI --http (router process) --http-keepalive" ;;
        gunicorn-sync) echo "gunicorn sync" ;;
        gunicorn-gthread) echo "gunicorn gthread, $THREADS threads" ;;
        waitress) echo "waitress alone (1 process, 4 threads)" ;;
        paster) echo "paster serve (Paste#http, 1 process, 10 threads)" ;;
    esac
}

# Requests a row can have in its app at once (the sleep app's ceiling is
# min(slots, conc) / 20 ms): processes × threads.
row_slots() {
    case "$1" in
        pasture-t1|uwsgi-*|gunicorn-sync) echo "$W" ;;
        pasture-t4|pasture-proc|gunicorn-gthread) echo $((W * THREADS)) ;;
        waitress) echo 4 ;;     # waitress's default `threads`
        paster) echo 10 ;;      # Paste#http's default threadpool_workers
    esac
}
# master/worker servers (RSS per worker leaves the master out) or one process.
row_kind() { case "$1" in waitress|paster) echo single ;; *) echo prefork ;; esac; }

# The Debian packages ROW needs that are not installed (space-separated).
row_missing() {
    local pkgs=()
    case "$1" in
        pasture-*) ;;
        uwsgi-*)
            command -v uwsgi >/dev/null || pkgs+=(uwsgi-core)
            ls /usr/lib/uwsgi/plugins/python3*_plugin.so >/dev/null 2>&1 || pkgs+=(uwsgi-plugin-python3) ;;
        gunicorn-*) [[ -x /usr/bin/gunicorn ]] || pkgs+=(gunicorn) ;;
        waitress) [[ -x /usr/bin/waitress-serve ]] || pkgs+=(python3-waitress) ;;
        paster) [[ -x /usr/bin/paster3 ]] || pkgs+=(python3-pastescript) ;;
    esac
    echo "${pkgs[*]}"
}

apps_ensure_tools() {
    local pkgs=() r m more
    command -v wrk >/dev/null || pkgs+=(wrk)
    command -v curl >/dev/null || pkgs+=(curl)
    command -v taskset >/dev/null || pkgs+=(util-linux)
    [[ -x $PY ]] || pkgs+=(python3)
    "$PY" -c 'import paste.deploy' 2>/dev/null || pkgs+=(python3-pastedeploy)
    if [[ " ${APPS[*]} " == *" pyramid "* ]]; then
        "$PY" -c 'import pyramid' 2>/dev/null || pkgs+=(python3-pyramid)
    fi
    for r in "${ROWS[@]}"; do
        m=$(row_missing "$r")
        read -r -a more <<<"$m"
        pkgs+=("${more[@]}")
    done
    if [[ " ${ROWS[*]} " == *" pasture-proc "* ]]; then
        "$PY" -c 'import waitress' 2>/dev/null || pkgs+=(python3-waitress)
    fi
    ((${#pkgs[@]})) || return 0
    mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
    if (($(id -u) != 0)); then
        log "missing ${pkgs[*]} (not root: not installing); rows that need them will fail"
        return 0
    fi
    log "installing ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null; }; then
        log "warning: apt-get install ${pkgs[*]} failed; rows that need them will fail"
    fi
}

# pasture_ini ROW APP FILE: [server:main] for the row, then the app's INI.
pasture_ini() {
    local row=$1 app=$2 f=$3
    {
        printf '[server:main]\nuse = egg:pasture#main\nhost = 127.0.0.1\nport = %s\n' "$PORT"
        printf 'workers = %s\n' "$W"
        # Embedded: the libpython pasture is linked with (no `python =`).
        case "$row" in
            pasture-t1) printf 'app_mode = embedded\nthreads = 1\n' ;;
            pasture-t4) printf 'app_mode = embedded\nthreads = %s\n' "$THREADS" ;;
            pasture-proc) printf 'app_mode = process\napp_workers = %s\npython = %s\n' "$W" "$PY" ;;
        esac
        echo
        cat "$(app_ini "$app")"
    } >"$f"
}

# row_start ROW APP DIR: start the server for ROW serving APP on PORT, pinned
# to SERVER_CPUS; sets SERVER_PID (0 if nothing was started), or returns 1
# with READY_ERR set.
row_start() {
    local row=$1 app=$2 d=$3 ini missing
    ini=$(app_ini "$app")
    SERVER_PID=0
    missing=$(row_missing "$row")
    [[ -z $missing ]] || { READY_ERR="not installed: $missing"; return 1; }
    local i
    for ((i = 0; i < 50; i++)); do port_busy "$PORT" || break; sleep 0.1; done
    port_busy "$PORT" && { READY_ERR="port $PORT still in use by something else"; return 1; }
    # PYTHONPATH: the bench apps and the Pyramid package, for every server.
    local env=(env "PYTHONPATH=$BENCH_D/wsgi:$REPO/tests/wsgi" "BENCH_APPS_INI=$ini")
    case "$row" in
    pasture-*)
        [[ -z "$PASTURE_SKIP" ]] || { READY_ERR=$PASTURE_SKIP; return 1; }
        pasture_ini "$row" "$app" "$d/site.ini"
        # Process mode's app processes take their thread count from this
        # when the master does not pass one (pasture_wsgi.py --threads).
        start_bg "$d/server.log" "$SERVER_CPUS" "${env[@]}" "PASTURE_APP_THREADS=$THREADS" \
            "$PASTURE" serve "$d/site.ini" ;;
    uwsgi-*)
        # Debian's uwsgi-core has no Python (nor the --http router) built in:
        # --plugin python3 (and http). --die-on-term: SIGTERM stops it (uWSGI
        # 2.0 reloads on TERM); --need-app: an app that fails to load fails
        # the start. --http11-socket: each worker serves one keep-alive
        # connection until it closes. --http: a router process holds the
        # client connections and hands requests to the workers; it closes
        # each connection after one response without --http-keepalive.
        local how=(--plugin python3 --http11-socket "127.0.0.1:$PORT")
        [[ $row == uwsgi-router ]] && how=(--plugin "http,python3" --http "127.0.0.1:$PORT" --http-keepalive)
        start_bg "$d/server.log" "$SERVER_CPUS" "${env[@]}" uwsgi "${how[@]}" --master \
            --processes "$W" --die-on-term --need-app --disable-logging --listen "$BACKLOG" \
            --paste "config:$ini" ;;
    gunicorn-sync|gunicorn-gthread)
        local wc=(--worker-class sync)
        [[ $row == gunicorn-gthread ]] && wc=(--worker-class gthread --threads "$THREADS")
        start_bg "$d/server.log" "$SERVER_CPUS" "${env[@]}" "$PY" /usr/bin/gunicorn \
            --paste "$ini" --bind "127.0.0.1:$PORT" --workers "$W" "${wc[@]}" \
            --backlog "$BACKLOG" ;;
    waitress)
        start_bg "$d/server.log" "$SERVER_CPUS" "${env[@]}" "$PY" /usr/bin/waitress-serve \
            --listen="127.0.0.1:$PORT" --call bench_apps:from_ini ;;
    paster)
        { printf '[server:main]\nuse = egg:Paste#http\nhost = 127.0.0.1\nport = %s\n\n' "$PORT"
          cat "$ini"; } >"$d/site.ini"
        start_bg "$d/server.log" "$SERVER_CPUS" "${env[@]}" /usr/bin/paster3 serve "$d/site.ini" ;;
    esac
    SERVER_PID=$LAST_PID
    row_ready "$row" "$app" "$d/server.log" && row_is_what_it_says "$row" "$d/server.log"
}

# The end of a server's log on one line, paths in the temp dir shortened.
log_tail() { tail -c 300 "$1" | tr '\n' ' ' | sed "s|$TMP/||g"; }

# row_ready ROW APP LOG: up to 30 s for the server to answer 200 with APP's
# body (Python servers import Pyramid first; the machine may be busy).
row_ready() {
    local row=$1 app=$2 logf=$3 i code="" url
    url="http://127.0.0.1:$PORT$(app_path "$app")"
    local bodyf="${logf%/*}/body"
    for ((i = 0; i < 300; i++)); do
        pid_running "$SERVER_PID" ||
            { READY_ERR="exited during start-up; log: $(log_tail "$logf")"; return 1; }
        if port_busy "$PORT"; then
            code=$(curl -s -m 5 -o "$bodyf" -w '%{http_code}' "$url" || true)
            if [[ $code == 200 ]]; then
                body_ok "$app" "$bodyf" && return 0
                READY_ERR="GET $(app_path "$app") answered 200 with an unexpected body: $(head -c 120 "$bodyf" | tr '\n' ' ')"
                return 1
            fi
        fi
        sleep 0.1
    done
    READY_ERR="no 200 on GET $(app_path "$app") within 30 s (last: ${code:-no answer}); log: $(log_tail "$logf")"
    return 1
}

# row_is_what_it_says ROW LOG: a pasture that does not know app_mode
# ignores it (with a notice) and hosts the app in waitress processes: an
# "embedded" row would measure process mode. Checked by the processes that
# run, not only the notice.
row_is_what_it_says() {
    local row=$1 logf=$2 p hosted=0
    [[ $row == pasture-* ]] || return 0
    for p in $("$PY" "$BENCH_D/procstat.py" "$SERVER_PID" --pids); do
        tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q pasture_wsgi.py && hosted=1
    done
    if [[ $row == pasture-proc ]]; then
        ((hosted)) || { READY_ERR="process mode but no pasture_wsgi.py app process is running"; return 1; }
        return 0
    fi
    local ignored
    ignored=$(grep -oE "key '(app_mode|threads)' does not apply" "$logf" | cut -d"'" -f2 | sort -u | paste -sd, || true)
    [[ -z $ignored ]] || { READY_ERR="this pasture ignores ${ignored//,/ and } (no embedded mode in this build)"; return 1; }
    ((!hosted)) || { READY_ERR="embedded mode asked, but the app runs in pasture_wsgi.py processes"; return 1; }
}

# ---------------------------------------------------------- measurement --
# apps_wrk SECONDS URL OUT: start wrk in its own process group (start_bg),
# so that cleanup stops it too; apps_wrk_wait waits for it.
apps_wrk() {
    start_bg "$3" "$CLIENT_CPUS" timeout -k 5 $(($1 + 30)) \
        wrk -t"$WRK_THREADS" -c"$CONC" -d"$1"s --latency -s "$BENCH_D/report.lua" "$2"
    WRK_PID=$LAST_PID
}
apps_wrk_wait() { wait "$WRK_PID" || true; stop_group "$WRK_PID"; }

# probe_new_client URL WAIT: while wrk runs, one request on a fresh
# connection, given at most WAIT seconds; prints "CODE SECONDS" ("000 ..."
# if unanswered) and the listen socket's accept queue at that moment. A
# server whose workers each keep serving one keep-alive connection (uWSGI's
# --http11-socket) leaves the other wrk connections unaccepted: wrk counts
# only answered requests, so only this shows them.
probe_new_client() {
    local q probe
    q=$(ss -Hltn "sport = :$PORT" 2>/dev/null | awk 'NR == 1 { print $2 }')
    probe=$(taskset -c "$CLIENT_CPUS" curl -s -o /dev/null -m "$2" -w '%{http_code} %{time_total}' "$1" || true)
    echo "probe=${probe%% *} probe_s=${probe##* } queued=${q:-0}"
}

# row_measure ROW APP ROUND: warm-up, then the measured run with the server
# group's CPU ticks read before and after, a new client's request half-way,
# and its memory after. Appends a `run` record (or a `fail` one).
row_measure() {
    local row=$1 app=$2 r=$3 url
    url="http://127.0.0.1:$PORT$(app_path "$app")"
    local -A s0 s1 f0 f1 b
    local out line root_rss probe half wait_s
    apps_wrk "$WARMUP" "$url" /dev/null
    apps_wrk_wait
    parse_kv s0 "$(procstat "$SERVER_PID")"
    parse_kv f0 "$(procstat $$ --foreign)"
    apps_wrk "$DURATION" "$url" "$TMP/wrk.out"
    # Half-way; the probe's answer must come before wrk stops.
    half=$(awk -v d="$DURATION" 'BEGIN { printf "%.1f", d / 2 }')
    wait_s=$(awk -v d="$DURATION" 'BEGIN { w = d / 2 - 0.3; printf "%.1f", w < 0.2 ? 0.2 : w }')
    sleep "$half"
    probe=$(probe_new_client "$url" "$wait_s")
    apps_wrk_wait
    out=$(cat "$TMP/wrk.out")
    parse_kv s1 "$(procstat "$SERVER_PID")"
    parse_kv f1 "$(procstat $$ --foreign)"
    root_rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status" 2>/dev/null || true)
    line=$(grep '^BENCH ' <<<"$out" || true)
    if ! pid_running "$SERVER_PID"; then
        echo "fail app=$app row=$row round=$r reason=died during the measured run" >>"$RESULTS"
        log "  $row/$app: died during the measured run"
        return
    fi
    if [[ -z $line ]]; then
        echo "fail app=$app row=$row round=$r reason=wrk gave no result: $(tail -c 160 <<<"$out" | tr '\n' ' ')" >>"$RESULTS"
        log "  $row/$app: wrk gave no result"
        return
    fi
    parse_kv b "${line#BENCH }"
    echo "run app=$app row=$row round=$r kind=$(row_kind "$row") workers=$W slots=$(row_slots "$row")" \
         "requests=${b[requests]} duration_us=${b[duration_us]} p50_us=${b[p50_us]} p99_us=${b[p99_us]}" \
         "sockerr=$((b[connect] + b[read] + b[write] + b[timeout]))" \
         "non2xx=${b[status]} ticks=$((s1[ticks] - s0[ticks])) nproc=${s1[nproc]}" \
         "rss_kb=${s1[rss_kb]} root_rss_kb=${root_rss:-0} $probe probe_max=$wait_s" \
         "foreign=$((f1[foreign_ticks] - f0[foreign_ticks]))" >>"$RESULTS"
    log "  $row/$app round $r: $((b[requests] * 1000000 / b[duration_us])) req/s," \
        "p99 ${b[p99_us]} µs, CPU $(( (s1[ticks] - s0[ticks]) * 1000000 / CLK_TCK / (b[requests] + 1) )) µs/req," \
        "errors $((b[connect] + b[read] + b[write] + b[timeout] + b[status])); new client: $probe"
}

# One line per field of the report's header, `meta KEY VALUE...`.
apps_meta() {
    local rev model
    rev=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)
    [[ -z "$PASTURE_GIVEN" ]] || rev="PASTURE=$PASTURE_GIVEN"
    model=$(lscpu 2>/dev/null | awk -F: '/^Model name/ { sub(/^ +/, "", $2); print $2; exit }')
    echo "meta date $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "meta machine ${model:-unknown CPU}, nproc $(nproc), kernel $(uname -r)"
    echo "meta params workers=$W threads=$THREADS conc=$CONC wrk_threads=$WRK_THREADS rounds=$ROUNDS duration=$DURATION warmup=$WARMUP sleep_ms=$SLEEP_MS"
    echo "meta pinning servers on CPUs $SERVER_CPUS, wrk on CPUs $CLIENT_CPUS"
    echo "meta versions pasture $rev, $("$PY" - <<'EOF'
import importlib.metadata as m, platform
out = ["Python " + platform.python_version()]
for p in ("waitress", "gunicorn", "Paste", "PasteDeploy", "pyramid"):
    try:
        out.append(p + " " + m.version(p))
    except m.PackageNotFoundError:
        pass
print(", ".join(out))
EOF
), uWSGI $(uwsgi --version 2>/dev/null || echo none), wrk $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }')"
}

# ------------------------------------------------------------------ main --
apps_main() {
    local quick=0 only="" app_list="" out=""
    W=2 THREADS=4 CONC=50 WRK_THREADS=2 ROUNDS="" DURATION="" WARMUP="" PORT=18180
    SERVER_CPUS="" CLIENT_CPUS=0
    while (($#)); do
        case "$1" in
            --apps) ;;
            --quick) quick=1 ;;
            --only) only=${2:?--only needs a list}; shift ;;
            --only=*) only=${1#*=} ;;
            --app) app_list=${2:?--app needs a list}; shift ;;
            --app=*) app_list=${1#*=} ;;
            --workers) W=${2:?}; shift ;;          --workers=*) W=${1#*=} ;;
            --threads) THREADS=${2:?}; shift ;;    --threads=*) THREADS=${1#*=} ;;
            --conc) CONC=${2:?}; shift ;;          --conc=*) CONC=${1#*=} ;;
            --wrk-threads) WRK_THREADS=${2:?}; shift ;; --wrk-threads=*) WRK_THREADS=${1#*=} ;;
            --rounds) ROUNDS=${2:?}; shift ;;      --rounds=*) ROUNDS=${1#*=} ;;
            --duration) DURATION=${2:?}; shift ;;  --duration=*) DURATION=${1#*=} ;;
            --warmup) WARMUP=${2:?}; shift ;;      --warmup=*) WARMUP=${1#*=} ;;
            --port) PORT=${2:?}; shift ;;          --port=*) PORT=${1#*=} ;;
            --server-cpus) SERVER_CPUS=${2:?}; shift ;; --server-cpus=*) SERVER_CPUS=${1#*=} ;;
            --client-cpus) CLIENT_CPUS=${2:?}; shift ;; --client-cpus=*) CLIENT_CPUS=${1#*=} ;;
            --no-build) BUILD=0 ;;
            --out=*) out=${1#*=} ;;
            --out)
                if [[ -n "${2:-}" && "${2:0:1}" != "-" ]]; then out=$2; shift
                else out=bench-apps.md; fi ;;
            --keep-tmp) KEEP_TMP=1 ;;
            -h|--help) apps_usage; exit 0 ;;
            *) echo "bench --apps: unknown option $1" >&2; apps_usage >&2; exit 2 ;;
        esac
        shift
    done
    if ((quick)); then : "${ROUNDS:=1}" "${DURATION:=4}" "${WARMUP:=1}"
    else : "${ROUNDS:=3}" "${DURATION:=8}" "${WARMUP:=2}"; fi
    local n
    for n in W THREADS CONC WRK_THREADS ROUNDS DURATION WARMUP PORT; do
        [[ ${!n} =~ ^[1-9][0-9]*$ ]] || { echo "bench --apps: $n must be a positive integer" >&2; exit 2; }
    done
    ((WRK_THREADS <= CONC)) || { echo "bench --apps: --wrk-threads must not exceed --conc" >&2; exit 2; }
    apps_expand "$only" row ROWS
    apps_expand "$app_list" app APPS
    if [[ -z $SERVER_CPUS ]]; then
        local ncpu; ncpu=$(nproc)
        if ((ncpu > W)); then SERVER_CPUS=1-$W; else SERVER_CPUS=0-$((ncpu - 1)); fi
        [[ $SERVER_CPUS != 1-1 ]] || SERVER_CPUS=1
    fi
    BACKLOG=$(( $(cat /proc/sys/net/core/somaxconn 2>/dev/null || echo 128) ))
    ((BACKLOG <= 1024)) || BACKLOG=1024

    (($(id -u) == 0)) || log "warning: not root; missing tools can't be installed"
    apps_ensure_tools
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/pasture-bench-apps.XXXXXX")
    chmod 755 "$TMP"
    RESULTS="$TMP/results.txt"; : >"$RESULTS"
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    port_busy "$PORT" && die "port $PORT is in use; pick another --port"
    [[ " ${ROWS[*]} " == *" pasture-"* ]] && build_pasture
    log "plan: ${ROWS[*]} × apps ${APPS[*]} × $ROUNDS round(s), ${WARMUP}+${DURATION} s each;" \
        "W=$W, wrk -t$WRK_THREADS -c$CONC; servers on CPUs $SERVER_CPUS, wrk on $CLIENT_CPUS"
    check_quiet

    # Rounds outermost, each server started afresh per round and app.
    local r app row d
    declare -A failed=()
    for ((r = 1; r <= ROUNDS; r++)); do
        for app in "${APPS[@]}"; do
            for row in "${ROWS[@]}"; do
                [[ -n "${failed[$row/$app]:-}" ]] && continue
                d="$TMP/$row-$app-r$r"; mkdir -p "$d"
                log "round $r/$ROUNDS: $app on $row"
                if row_start "$row" "$app" "$d"; then
                    row_measure "$row" "$app" "$r"
                else
                    log "  $row/$app failed: $READY_ERR"
                    echo "fail app=$app row=$row round=$r reason=${READY_ERR//$'\n'/ }" >>"$RESULTS"
                    failed[$row/$app]=1
                fi
                ((SERVER_PID == 0)) || stop_group "$SERVER_PID"
                SERVER_PID=0
            done
        done
    done

    apps_meta >>"$RESULTS"
    for row in "${ROWS[@]}"; do echo "row $row $(row_label "$row")" >>"$RESULTS"; done
    local report; report=$("$PY" "$BENCH_D/apps_render.py" "$RESULTS")
    printf '%s\n' "$report"
    if [[ -n "$out" ]]; then printf '%s\n' "$report" >"$out"; log "report saved to $out"; fi
}
