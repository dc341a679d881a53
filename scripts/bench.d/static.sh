# scripts/bench --static: static files, pasture (egg:pasture#static) beside
# nginx (`sendfile on`, `tcp_nopush on`, open_file_cache), sourced by
# scripts/bench (its helpers: lib.sh). A 1 KiB and a 1 MiB file, each server
# with 1 worker pinned to CPU 1, wrk (1 thread) on CPU 0, keep-alive, c=50;
# req/s, p99 and the server's CPU per request (its /proc ticks over the
# run). Prints a markdown table.

static_usage() {
    cat <<'EOF2'
usage: scripts/bench --static [--quick] [--rounds N] [--duration S] [--conc C] [--port P] [--no-build]
  pasture (egg:pasture#static) and nginx (sendfile on) serve the same
  1 KiB and 1 MiB files; the median round by req/s is reported.
EOF2
}

static_main() {
    local quick=0 conc=50 port=18280 rounds="" duration="" warmup=""
    while (($#)); do
        case "$1" in
            --static) ;;
            --quick) quick=1 ;;
            --rounds) rounds=${2:?}; shift ;;     --rounds=*) rounds=${1#*=} ;;
            --duration) duration=${2:?}; shift ;; --duration=*) duration=${1#*=} ;;
            --conc) conc=${2:?}; shift ;;         --conc=*) conc=${1#*=} ;;
            --port) port=${2:?}; shift ;;         --port=*) port=${1#*=} ;;
            --no-build) BUILD=0 ;;
            -h|--help) static_usage; exit 0 ;;
            *) echo "bench --static: unknown option $1" >&2; static_usage >&2; exit 2 ;;
        esac
        shift
    done
    if ((quick)); then : "${rounds:=1}" "${duration:=4}" "${warmup:=1}"
    else : "${rounds:=3}" "${duration:=8}" "${warmup:=2}"; fi
    ONLY=pasture,nginx
    ensure_tools
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/pasture-bench-static.XXXXXX")
    chmod 755 "$TMP"
    port_busy "$port" && die "port $port is in use; pick another --port"
    build_pasture
    [[ -z "$PASTURE_SKIP" ]] || die "pasture: $PASTURE_SKIP"
    mkdir -p "$TMP/www"
    head -c 1024 /dev/urandom >"$TMP/www/f1k.bin"
    head -c $((1024 * 1024)) /dev/urandom >"$TMP/www/f1m.bin"
    echo ok >"$TMP/www/index.html"
    chmod -R a+rX "$TMP"
    local results="$TMP/static.txt" server r f d
    : >"$results"
    for ((r = 1; r <= rounds; r++)); do
        for server in pasture nginx; do
            d="$TMP/$server"
            mkdir -p "$d"
            if [[ $server == nginx ]]; then
                cat >"$d/nginx.conf" <<EOF2
$(nginx_common "$d")
worker_processes 1;
events { worker_connections 20000; }
http {
$(nginx_http_common "$d")
    sendfile on;
    tcp_nopush on;
    open_file_cache max=1000 inactive=60s;
    include /etc/nginx/mime.types;
    server {
        listen 127.0.0.1:$port backlog=4096;
        root $TMP/www;
        etag on;
    }
}
EOF2
                start_bg "$d/stdout.log" 1 nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf"
                wait_ready "$LAST_PID" "$port" "$d/error.log" || die "nginx: $READY_ERR"
            else
                cat >"$d/pasture.ini" <<EOF2
[server:main]
use = egg:pasture#main
host = 127.0.0.1
port = $port
workers = 1

[app:main]
use = egg:pasture#static
document_root = $TMP/www
EOF2
                start_bg "$d/stdout.log" 1 "$PASTURE" serve "$d/pasture.ini"
                wait_ready "$LAST_PID" "$port" "$d/stdout.log" "serving on" || die "pasture: $READY_ERR"
            fi
            local pid=$LAST_PID
            for f in f1k.bin f1m.bin; do
                local url="http://127.0.0.1:$port/$f" out line
                local -A s0=() s1=() b=()
                wrk_run "$conc" "$warmup" "$url" >/dev/null
                parse_kv s0 "$(procstat "$pid")"
                out=$(wrk_run "$conc" "$duration" "$url")
                parse_kv s1 "$(procstat "$pid")"
                line=$(grep '^BENCH ' <<<"$out" || true)
                [[ -n $line ]] || { log "wrk gave no result for $server $f: $(tail -c 200 <<<"$out")"; continue; }
                parse_kv b "${line#BENCH }"
                echo "$server $f $r ${b[requests]} ${b[duration_us]} ${b[p99_us]} $((s1[ticks] - s0[ticks])) $((b[status] + b[connect] + b[read] + b[write] + b[timeout]))" >>"$results"
                log "  $server $f round $r: $((b[requests] * 1000000 / b[duration_us])) req/s," \
                    "CPU $(( (s1[ticks] - s0[ticks]) * 1000000 / CLK_TCK / (b[requests] + 1) )) µs/req"
            done
            stop_group "$pid"
        done
    done
    # The median round by req/s, per server and file.
    echo
    echo "| server | file | req/s | p99 | CPU µs/req | errors |"
    echo "|---|---|---:|---:|---:|---:|"
    local key
    for f in f1k.bin f1m.bin; do
        for server in pasture nginx; do
            key="$server $f"
            grep "^$key " "$results" | awk -v tck="$CLK_TCK" '
                { rps = $4 * 1e6 / $5; line[NR] = sprintf("%.0f %d %.1f %d", rps, $6, $7 * 1e6 / tck / ($4 + 1), $8); r[NR] = rps }
                END { n = NR; for (i = 1; i <= n; i++) idx[i] = i
                      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (r[idx[j]] < r[idx[i]]) { t = idx[i]; idx[i] = idx[j]; idx[j] = t }
                      print line[idx[int((n + 1) / 2)]] }' |
                while read -r rps p99 cpu err; do
                    printf '| %s | %s | %s | %s ms | %s | %s |\n' "$server" "${f%.bin}" "$rps" \
                        "$(awk -v u="$p99" 'BEGIN { printf "%.2f", u / 1000 }')" "$cpu" "$err"
                done
        done
    done
    echo
    echo "$(date -u +%FT%TZ), $rounds round(s) of ${duration} s, c=$conc, 1 worker on CPU 1, wrk on CPU 0;" \
         "nginx $(nginx -v 2>&1 | sed 's|.*/||'), pasture $(git -C "$REPO" describe --always --dirty 2>/dev/null), kernel $(uname -r)"
}
