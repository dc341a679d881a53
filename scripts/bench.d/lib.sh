# shellcheck shell=bash disable=SC2034  # globals shared with the scripts that source it
# scripts/bench.d/lib.sh — helpers shared by scripts/bench (and bench.d/apps.sh,
# which it sources) and scripts/chaos: logging, process groups and the
# cleanup trap that kills every group started, readiness checks, tool
# installation, the pasture build, the fd limit, nginx config fragments,
# procstat.py.
#
# The sourcing script sets REPO, BENCH_D, PY, BUILD, PASTURE, KEEP_TMP and
# defines want NAME (is NAME part of this run?); LOG_TAG names it in log lines.

log() { printf '[%s %(%H:%M:%S)T] %s\n' "${LOG_TAG:-bench}" -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ------------------------------------------------------ processes, cleanup --
# Every long-lived process is started with setsid in its own process group;
# its PID (= PGID) is remembered so cleanup can kill the whole group,
# workers included, whatever happens to the script.
STARTED=()
TMP=""

# True if any live (non-zombie) process is in process group $1.
group_alive() {
    local g=$1 f s
    for f in /proc/[0-9]*/stat; do
        read -r s 2>/dev/null <"$f" || continue
        s=${s##*) }
        set -- $s                  # $1 state, $2 ppid, $3 pgrp
        [[ "$3" == "$g" && "$1" != Z ]] && return 0
    done
    return 1
}

stop_group() {
    local g=$1 i strays
    # Descendants that left the group (setsid in a worker) are killed too.
    strays=$("$PY" "$BENCH_D/procstat.py" "$g" --pids 2>/dev/null || true)
    kill -TERM -- "-$g" 2>/dev/null || true
    # shellcheck disable=SC2086
    [[ -z "$strays" ]] || kill -TERM $strays 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do group_alive "$g" || break; sleep 0.1; done
    if group_alive "$g"; then
        log "process group $g ignored SIGTERM for 5 s, killing it"
        kill -KILL -- "-$g" 2>/dev/null || true
        for ((i = 0; i < 20; i++)); do group_alive "$g" || break; sleep 0.1; done
    fi
    for i in $strays; do pid_running "$i" && kill -KILL "$i" 2>/dev/null; done
    wait "$g" 2>/dev/null || true  # reap the leader (our child)
    local keep=() p
    for p in "${STARTED[@]}"; do [[ $p == "$g" ]] || keep+=("$p"); done
    STARTED=("${keep[@]}")
}

cleanup() {
    local rc=$? p
    trap - EXIT
    trap '' INT TERM    # a second Ctrl-C must not cut the cleanup short
    for p in "${STARTED[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
    for p in "${STARTED[@]}"; do stop_group "$p"; done
    if [[ -n "$TMP" && -d "$TMP" ]]; then
        if ((KEEP_TMP)); then log "kept temp dir $TMP"; else rm -rf "$TMP"; fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_bg LOG CPUS CMD... : start CMD pinned to CPUS in a new process group;
# sets LAST_PID. Not a group leader here (no job control), so setsid execs
# in place and $! is the server's own PID.
start_bg() {
    local logf=$1 cpus=$2; shift 2
    setsid taskset -c "$cpus" "$@" >"$logf" 2>&1 </dev/null &
    LAST_PID=$!
    STARTED+=("$LAST_PID")
}

# Is PID running? (kill -0 also succeeds on our own unreaped zombies.)
pid_running() {
    local st
    read -r st 2>/dev/null <"/proc/$1/stat" || return 1
    st=${st##*) }
    [[ ${st%% *} != Z ]]
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_ready PID PORT LOG [PATTERN [SCHEME]]: up to 10 s for the server to
# print PATTERN (if given) or accept, then for a GET / through it (https:
# the certificate unchecked) to answer 200.
wait_ready() {
    local pid=$1 port=$2 logf=$3 pat=${4:-} scheme=${5:-http} i code
    for ((i = 0; i < 100; i++)); do
        pid_running "$pid" || { READY_ERR="exited during start-up; log: $(tail -c 300 "$logf" | tr '\n' ' ')"; return 1; }
        if [[ -n "$pat" ]] && grep -q "$pat" "$logf" 2>/dev/null || port_busy "$port"; then
            code=$(curl -sk -m 2 -o /dev/null -w '%{http_code}' "$scheme://127.0.0.1:$port/" || true)
            [[ $code == 200 ]] && return 0
        fi
        sleep 0.1
    done
    READY_ERR="not answering 200 on port $port within 10 s (last: ${code:-none}); log: $(tail -c 300 "$logf" | tr '\n' ' ')"
    return 1
}

# ------------------------------------------------------------ setup steps --
ensure_tools() {
    # Only what this run needs; install missing Debian packages.
    export PATH="$PATH:/usr/sbin:/sbin"
    local pkgs=()
    command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || pkgs+=(nginx-light)
    command -v wrk >/dev/null || pkgs+=(wrk)
    command -v curl >/dev/null || pkgs+=(curl)
    command -v taskset >/dev/null || pkgs+=(util-linux)
    [[ -x $PY ]] || pkgs+=(python3)
    if want haproxy; then command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] || pkgs+=(haproxy); fi
    if want paster; then
        [[ -x /usr/bin/paster3 ]] || pkgs+=(python3-pastescript python3-paste python3-pastedeploy)
    fi
    if ((${#pkgs[@]})); then
        (($(id -u) == 0)) || die "missing ${pkgs[*]}; run as root to install them"
        log "installing ${pkgs[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # nginx-light is a transitional name on some releases: fall back.
        apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null ||
            apt-get install -y -qq --no-install-recommends "${pkgs[@]/nginx-light/nginx}" >/dev/null
    fi
}

# Sets PASTURE_SKIP to a reason when pasture can't be benchmarked.
PASTURE_SKIP=""
build_pasture() {
    want pasture || return 0
    if ((BUILD)); then
        command -v cmake >/dev/null || "$REPO/scripts/setup" >&2 ||
            { PASTURE_SKIP="build tools missing (scripts/setup failed)"; return 0; }
        log "building pasture (Release) — log in \$TMP/build.log"
        # Only the server binary when that target exists: the tests take
        # minutes to build and the benchmark doesn't need them.
        if ! (cd "$REPO" && cmake -S . -B build -DCMAKE_BUILD_TYPE=Release &&
              if cmake --build build --target help | grep -w pasture >/dev/null; then  # not -q: under pipefail, grep quitting early fails the pipe
                  cmake --build build -j2 --target pasture
              else
                  cmake --build build -j2
              fi) >"$TMP/build.log" 2>&1; then
            PASTURE_SKIP="build failed: $(grep -m1 -E 'error|Error' "$TMP/build.log" | cut -c1-160)"
            log "pasture $PASTURE_SKIP"
            return 0
        fi
    fi
    [[ -x "$PASTURE" ]] || PASTURE_SKIP="binary $PASTURE missing or not executable"
}

# raise_fd_limit NEED: the soft fd limit up to the hard one (raised to 65536
# when we may); warn when it stays below NEED.
raise_fd_limit() {
    ulimit -Hn 65536 2>/dev/null || true
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    # HAProxy refuses to start if maxconn needs more fds than allowed
    # (about 2 per connection): size it to the limit we got.
    HAPROXY_MAXCONN=$(( ($(ulimit -n) - 500) / 2 ))
    ((HAPROXY_MAXCONN <= 20000)) || HAPROXY_MAXCONN=20000
    (($(ulimit -n) >= $1)) || log "warning: ulimit -n is $(ulimit -n), below the $1 this run needs"
}

nginx_common() {  # $1 = directory of this instance, $2 = daemon on|off (default off)
    cat <<EOF
$( (($(id -u) == 0)) && echo "user root;")
daemon ${2:-off};
master_process on;
pid $1/nginx.pid;
error_log $1/error.log error;
worker_rlimit_nofile $(ulimit -n);
EOF
}
nginx_http_common() {
    cat <<EOF
    access_log off;
    default_type text/plain;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path $1/client_body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
EOF
}

# --------------------------------------------------------------- /proc --
CLK_TCK=$(getconf CLK_TCK)
procstat() { "$PY" "$BENCH_D/procstat.py" "$@"; }

# parse_kv ARRAY "k=v k=v ...": fill associative ARRAY.
parse_kv() { local -n _arr=$1; local kv; for kv in $2; do _arr[${kv%%=*}]=${kv#*=}; done; }

# Warn early if something else (a build, a test run) is using the CPU: the
# report flags each disturbed row too, but rerunning later is the fix.
check_quiet() {
    local -A f0 f1
    parse_kv f0 "$(procstat $$ --foreign)"; sleep 1
    parse_kv f1 "$(procstat $$ --foreign)"
    local pct=$(( (f1[foreign_ticks] - f0[foreign_ticks]) * 100 / CLK_TCK ))
    ((pct <= 10)) || log "warning: other processes are using ${pct}% of a core; numbers will be noisy"
}

# ------------------------------------------- the modes (--tls, --shapes) --
# What the modes that run rounds of proxies in front of scripts/bench's
# upstreams share: their common options, round defaults, run directory and
# report. Each mode's main keeps what is its own.

# mode_opt REPORT ARGS...: one of the common options at the head of ARGS
# (--rounds, --duration, --warmup, --port-base, --no-build, --out [FILE],
# --keep-tmp): sets its global (OUT for --out, REPORT when no FILE follows)
# and MODE_ARGS, how many arguments it took (1 or 2). Returns 1 for any
# other option.
mode_opt() {
    local report=$1 var; shift
    MODE_ARGS=1
    case "$1" in
        --rounds|--duration|--warmup|--port-base)
            var=${1#--}; var=${var//-/_}
            printf -v "${var^^}" '%s' "${2:?$1 needs a value}"; MODE_ARGS=2 ;;
        --rounds=*|--duration=*|--warmup=*|--port-base=*)
            var=${1%%=*}; var=${var#--}; var=${var//-/_}
            printf -v "${var^^}" '%s' "${1#*=}" ;;
        --no-build) BUILD=0 ;;
        --out=*) OUT=${1#*=} ;;
        --out)
            if [[ -n "${2:-}" && "${2:0:1}" != "-" ]]; then OUT=$2; MODE_ARGS=2
            else OUT=$report; fi ;;
        --keep-tmp) KEEP_TMP=1 ;;
        *) return 1 ;;
    esac
}

# mode_rounds MODE QUICK VAR...: ROUNDS, DURATION and WARMUP unless given
# (quick: 1 round of 4 s after 1 s of warm-up; else 3 of 8 s after 2 s);
# then each VAR must hold a positive integer.
mode_rounds() {
    local mode=$1 quick=$2 n; shift 2
    if ((quick)); then : "${ROUNDS:=1}" "${DURATION:=4}" "${WARMUP:=1}"
    else : "${ROUNDS:=3}" "${DURATION:=8}" "${WARMUP:=2}"; fi
    for n in "$@"; do
        [[ ${!n} =~ ^[1-9][0-9]*$ ]] || { echo "bench --$mode: $n must be a positive integer" >&2; exit 2; }
    done
}

# mode_setup MODE: $TMP and an empty $RESULTS for the run, once the
# proxy's and the upstreams' ports are known to be free.
mode_setup() {
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/pasture-bench-$1.XXXXXX")
    chmod 755 "$TMP"
    RESULTS="$TMP/results.txt"; : >"$RESULTS"
    local p
    for p in "$PROXY_PORT" "$UP1_PORT" "$UP2_PORT"; do
        port_busy "$p" && die "port $p is in use; pick another --port-base"
    done
    return 0
}

# mode_start NAME START [ARGS...]: starts proxy NAME by calling START ARGS...;
# when that fails, logs it, records the skip in $RESULTS, stops what was
# started and returns 1 (the mode skips NAME from then on).
mode_start() {
    local name=$1; shift
    "$@" && return 0
    log "SKIPPING $name: $READY_ERR"
    echo "skip proxy=$name reason=${READY_ERR//$'\n'/ }" >>"$RESULTS"
    [[ -n "${PROXY_PID:-}" ]] && stop_group "$PROXY_PID"
    return 1
}

# mode_pasture_rev: which pasture ran (git describe, or the PASTURE given).
mode_pasture_rev() {
    if [[ -n "$PASTURE_GIVEN" ]]; then echo "PASTURE=$PASTURE_GIVEN"
    else git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown; fi
}

# mode_report RENDER: the report bench.d/RENDER makes of $RESULTS, printed,
# and saved to $OUT when --out asked.
mode_report() {
    local report; report=$("$PY" "$BENCH_D/$1" "$RESULTS")
    printf '%s\n' "$report"
    if [[ -n "$OUT" ]]; then printf '%s\n' "$report" >"$OUT"; log "report saved to $OUT"; fi
}
