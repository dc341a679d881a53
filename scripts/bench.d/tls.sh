# shellcheck shell=bash disable=SC2034  # globals shared with scripts/bench
# scripts/bench.d/tls.sh — `scripts/bench --tls`: TLS and HTTP/2 in front of
# the same two upstreams, pasture vs nginx vs HAProxy, in one run.
#
# Sourced by scripts/bench (not run on its own): it reuses that script's
# upstreams (start_upstreams: two nginx on loopback answering
# "hello, world\n"), wrk_run and report.lua, and lib.sh's process groups,
# cleanup trap, procstat.py and the pasture build. Entry point: tls_main ARGS...
#
# Rows, each proxy started afresh per row and round, its CPU read from /proc
# around the measured run (the whole process group: master and workers):
#   new-ecdsa   full TLS handshakes with an ECDSA P-256 certificate: K
#               `openssl s_time -new` clients, each connection one HTTP/1.0
#               GET (answered, proxied upstream, closed by the proxy)
#   new-rsa     the same with an RSA-2048 certificate
#   resumed     the same with `s_time -reuse`: every connection after the
#               first resumes by session ticket (ECDSA certificate)
#   keepalive   wrk over kept-alive TLS (HTTP/1.1), c=50
#   h2          h2load over TLS (ALPN h2), 100 clients × 10 streams
# All three proxies get the same certificate and key, TLS 1.2 and 1.3, and
# OpenSSL's default groups; the negotiated protocol and cipher of each is
# printed under the table (the crypto is the same OpenSSL in all three, so
# the CPU difference is each proxy's own work).

tls_usage() {
    cat <<'EOF'
usage: scripts/bench --tls [options]       (Debian 12; root to install tools)

TLS and HTTP/2: pasture vs nginx vs HAProxy in front of the same two
upstreams: full handshakes (ECDSA P-256, RSA-2048), resumed handshakes,
kept-alive TLS requests (wrk) and HTTP/2 over TLS (h2load 100 × 10).

  --quick            short run: 1 round, 4 s measured runs
  --only LIST        proxies, comma-separated: pasture,nginx,haproxy (default all)
  --rows LIST        rows, comma-separated: new-ecdsa,new-rsa,resumed,keepalive,h2
                     (default all)
  --workers LIST     worker counts for keepalive and h2 (default 1,2); the
                     handshake rows run at 1 worker (CPU per handshake)
  --rounds N         rounds; the median round (by rate) is reported
                     (default 3, or 1 with --quick)
  --duration S       seconds per measured run (default 8, quick 4)
  --warmup S         seconds of warm-up before it (default 2, quick 1)
  --port-base P      proxy on P, upstreams on P+1 and P+2 (default 18080)
  --no-build         don't build pasture; use build/pasture as it is
  --out [FILE]       also save the report to FILE (default bench-tls.md)
  --keep-tmp         keep the temp dir (configs, certificates, logs)
  -h, --help         this text

environment:
  PASTURE=path       pasture binary to use (implies --no-build)
EOF
}

TLS_ROWS_ALL=(new-ecdsa new-rsa resumed keepalive h2)
STIME_CLIENTS=4                # parallel `openssl s_time` processes
H2_CLIENTS=100 H2_STREAMS=10
KA_CONC=50

# Certificates for the run: ECDSA P-256 and RSA-2048, self-signed for
# localhost; HAProxy wants certificate and key in one file.
tls_make_certs() {
    local d="$TMP/certs"
    mkdir -p "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
        -subj /CN=localhost -keyout "$d/ecdsa.key" -out "$d/ecdsa.crt" 2>/dev/null
    openssl req -x509 -newkey rsa:2048 -nodes -days 7 \
        -subj /CN=localhost -keyout "$d/rsa.key" -out "$d/rsa.crt" 2>/dev/null
    local k
    for k in ecdsa rsa; do
        chmod 600 "$d/$k.key"
        cat "$d/$k.crt" "$d/$k.key" >"$d/$k.pem"
        chmod 600 "$d/$k.pem"
    done
}

# tls_start NAME WORKERS CERT(ecdsa|rsa): the proxy on PROXY_PORT with TLS
# (ALPN h2 and http/1.1) in front of the upstream pool; sets PROXY_PID or
# returns 1 with READY_ERR.
tls_start() {
    local name=$1 w=$2 cert=$3 d="$TMP/$1-w$2-$3-$RANDOM" cpus
    local crt="$TMP/certs/$cert.crt" key="$TMP/certs/$cert.key" pem="$TMP/certs/$cert.pem"
    cpus=$(proxy_cpus "$w")
    mkdir -p "$d"
    port_busy "$PROXY_PORT" && die "port $PROXY_PORT busy before starting $name"
    case "$name" in
    nginx)
        cat >"$d/nginx.conf" <<EOF
$(nginx_common "$d")
worker_processes $w;
events { worker_connections 20000; }
http {
$(nginx_http_common "$d")
    upstream pool {
        server 127.0.0.1:$UP1_PORT;
        server 127.0.0.1:$UP2_PORT;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$PROXY_PORT ssl http2;
        ssl_certificate $crt;
        ssl_certificate_key $key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_tickets on;
        http2_max_concurrent_streams 128;
        location / {
            proxy_pass http://pool;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$http_host;
            proxy_set_header Via "1.1 pasture";
            add_header Via "1.1 pasture" always;
        }
    }
}
EOF
        start_bg "$d/stdout.log" "$cpus" nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf"
        PROXY_PID=$LAST_PID
        wait_ready "$PROXY_PID" "$PROXY_PORT" "$d/error.log" "" https ;;
    haproxy)
        cat >"$d/haproxy.cfg" <<EOF
global
    nbthread $w
    maxconn $HAPROXY_MAXCONN
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
frontend fe
    bind 127.0.0.1:$PROXY_PORT ssl crt $pem alpn h2,http/1.1
    default_backend pool
backend pool
    balance roundrobin
    http-reuse always
    option forwardfor
    http-request set-header X-Forwarded-Proto https
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    http-request add-header Via "1.1 pasture"
    http-response add-header Via "1.1 pasture"
    server up1 127.0.0.1:$UP1_PORT
    server up2 127.0.0.1:$UP2_PORT
EOF
        start_bg "$d/stdout.log" "$cpus" haproxy -db -f "$d/haproxy.cfg"
        PROXY_PID=$LAST_PID
        wait_ready "$PROXY_PID" "$PROXY_PORT" "$d/stdout.log" "" https ;;
    pasture)
        [[ -z "$PASTURE_SKIP" ]] || { READY_ERR=$PASTURE_SKIP; return 1; }
        cat >"$d/pasture.ini" <<EOF
[server:main]
use = egg:pasture#main
listen = 127.0.0.1:$PROXY_PORT tls
tls_cert = $crt
tls_key = $key
http2 = on
workers = $w

[app:main]
use = egg:pasture#balancer
servers = 127.0.0.1:$UP1_PORT 127.0.0.1:$UP2_PORT
EOF
        start_bg "$d/stdout.log" "$cpus" "$PASTURE" serve "$d/pasture.ini" --workers "$w"
        PROXY_PID=$LAST_PID
        wait_ready "$PROXY_PID" "$PROXY_PORT" "$d/stdout.log" "" https ;;
    esac
}

# What the proxy negotiated with a default OpenSSL client: "TLSv1.3 TLS_AES_256_GCM_SHA384".
tls_negotiated() {
    openssl s_client -connect "127.0.0.1:$PROXY_PORT" -brief </dev/null 2>&1 |
        awk -F': ' '/^Protocol version/ { v = $2 } /^Ciphersuite/ { c = $2 } END { print v, c }' | tr ' ' '/'
}

# stime_run MODE(-new|-reuse) SECONDS -> "CONNECTIONS": STIME_CLIENTS
# parallel s_time clients on the client CPU, their connections summed.
stime_run() {
    local mode=$1 secs=$2 i pids=() n=0 f
    for ((i = 0; i < STIME_CLIENTS; i++)); do
        timeout --foreground -k 5 $((secs + 20)) taskset -c "$CLIENT_CPUS" \
            openssl s_time -connect "127.0.0.1:$PROXY_PORT" "$mode" -time "$secs" -www / \
            >"$TMP/stime.$i" 2>&1 &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || true; done
    for ((i = 0; i < STIME_CLIENTS; i++)); do
        f=$(awk '/connections in [0-9.]+ real seconds/ { print $1; exit }' "$TMP/stime.$i")
        n=$((n + ${f:-0}))
    done
    echo "$n"
}

# h2load_run SECONDS LOG -> h2load's output; per-request times in LOG.
h2load_run() {
    timeout --foreground -k 5 $(($1 + 30)) taskset -c "$CLIENT_CPUS" \
        h2load -t1 -c"$H2_CLIENTS" -m"$H2_STREAMS" -D "$1" \
        --log-file="$2" "https://127.0.0.1:$PROXY_PORT/" 2>&1 || true
}

# tls_measure ROW NAME WORKERS ROUND: one warm-up and one measured run of
# ROW against the running proxy; appends a `tls` record.
tls_measure() {
    local row=$1 name=$2 w=$3 r=$4 secs=$DURATION
    local -A s0 s1 f0 f1 b
    local count=0 dur_us=$((secs * 1000000)) p99=0 errs=0 out line
    case $row in
        new-*) stime_run -new "$WARMUP" >/dev/null ;;
        resumed) stime_run -reuse "$WARMUP" >/dev/null ;;
        keepalive) wrk_run "$KA_CONC" "$WARMUP" "https://127.0.0.1:$PROXY_PORT/" >/dev/null ;;
        h2) h2load_run "$WARMUP" /dev/null >/dev/null ;;
    esac
    parse_kv s0 "$(procstat "$PROXY_PID")"
    parse_kv f0 "$(procstat $$ --foreign)"
    case $row in
        new-*) count=$(stime_run -new "$secs") ;;
        resumed) count=$(stime_run -reuse "$secs") ;;
        keepalive)
            out=$(wrk_run "$KA_CONC" "$secs" "https://127.0.0.1:$PROXY_PORT/")
            line=$(grep '^BENCH ' <<<"$out" || true)
            if [[ -n $line ]]; then
                parse_kv b "${line#BENCH }"
                count=${b[requests]} dur_us=${b[duration_us]} p99=${b[p99_us]}
                errs=$((b[connect] + b[read] + b[write] + b[timeout] + b[status]))
            fi ;;
        h2)
            out=$(h2load_run "$secs" "$TMP/h2.log")
            # "requests: 100 total, 100 started, 100 done, 100 succeeded, 0 failed, 0 errored, 0 timeout"
            count=$(awk '/^requests:/ { print $8; exit }' <<<"$out")
            # "finished in 8.00s, ..." (h2load prints ms below a second)
            dur_us=$(awk '/^finished in/ { t = $3; sub(/,$/, "", t)
                         if (t ~ /ms$/) { sub(/ms$/, "", t); print int(t * 1000) }
                         else { sub(/s$/, "", t); print int(t * 1000000) } exit }' <<<"$out")
            dur_us=${dur_us:-$((secs * 1000000))}
            errs=$(awk '/^requests:/ { print $10 + $12 + $14; exit }' <<<"$out")
            p99=$(sort -n -k3 "$TMP/h2.log" 2>/dev/null |
                  awk '{ a[NR] = $3 } END { i = int(NR * 0.99); if (i < 1) i = 1; print (NR ? a[i] : 0) }' || true)
            ;;
    esac
    parse_kv s1 "$(procstat "$PROXY_PID")"
    parse_kv f1 "$(procstat $$ --foreign)"
    ((s1[nproc] > 0)) || s1[ticks]=$((s0[ticks] - 1))
    echo "tls row=$row proxy=$name workers=$w round=$r count=${count:-0} duration_us=$dur_us p99_us=${p99:-0}" \
         "errors=${errs:-0} ticks=$((s1[ticks] - s0[ticks])) foreign=$((f1[foreign_ticks] - f0[foreign_ticks]))" >>"$RESULTS"
    log "  $row $name w=$w round $r: $(( ${count:-0} * 1000000 / dur_us ))/s," \
        "CPU $(( (s1[ticks] - s0[ticks]) * 1000000 / CLK_TCK / (${count:-0} + 1) )) µs each, p99 ${p99:-0} µs, errors ${errs:-0}"
}

tls_main() {
    local quick=0 only="pasture,nginx,haproxy" rows="" workers="1,2"
    ROUNDS="" DURATION="" WARMUP=""
    while (($#)); do
        case "$1" in
            --tls) ;;
            --quick) quick=1 ;;
            --only) only=${2:?--only needs a list}; shift ;;      --only=*) only=${1#*=} ;;
            --rows) rows=${2:?--rows needs a list}; shift ;;      --rows=*) rows=${1#*=} ;;
            --workers) workers=${2:?}; shift ;;                   --workers=*) workers=${1#*=} ;;
            -h|--help) tls_usage; exit 0 ;;
            *) mode_opt bench-tls.md "$@" ||
                   { echo "bench --tls: unknown option $1" >&2; tls_usage >&2; exit 2; }
               shift $((MODE_ARGS - 1)) ;;
        esac
        shift
    done
    mode_rounds tls "$quick" ROUNDS DURATION WARMUP PORT_BASE
    local n
    PROXY_PORT=$PORT_BASE UP1_PORT=$((PORT_BASE + 1)) UP2_PORT=$((PORT_BASE + 2))
    ONLY=$only
    local -a names row_list wl
    IFS=, read -r -a names <<<"$only"
    for n in "${names[@]}"; do
        case $n in pasture|nginx|haproxy) ;; *) echo "bench --tls: --only: unknown proxy '$n'" >&2; exit 2 ;; esac
    done
    if [[ -n $rows ]]; then IFS=, read -r -a row_list <<<"$rows"; else row_list=("${TLS_ROWS_ALL[@]}"); fi
    for n in "${row_list[@]}"; do
        [[ " ${TLS_ROWS_ALL[*]} " == *" $n "* ]] || { echo "bench --tls: --rows: unknown row '$n'" >&2; exit 2; }
    done
    IFS=, read -r -a wl <<<"$workers"
    for n in "${wl[@]}"; do [[ $n =~ ^[12]$ ]] || { echo "bench --tls: --workers: 1 or 2" >&2; exit 2; }; done

    (($(id -u) == 0)) || log "warning: not root; missing tools can't be installed"
    ensure_tools
    command -v h2load >/dev/null || {
        (($(id -u) == 0)) || die "h2load missing (Debian nghttp2-client); run as root to install it"
        apt-get install -y -qq --no-install-recommends nghttp2-client >/dev/null; }
    mode_setup tls
    raise_fd_limit 20000
    build_pasture
    start_upstreams     # (makes $TMP world-readable: the keys come after)
    tls_make_certs
    check_quiet
    echo "env date=$(date -u +%FT%TZ) rounds=$ROUNDS duration=$DURATION warmup=$WARMUP" \
         "stime_clients=$STIME_CLIENTS h2_clients=$H2_CLIENTS h2_streams=$H2_STREAMS ka_conc=$KA_CONC" >>"$RESULTS"

    local r row name w cert
    declare -A skipped=() proto=()
    for ((r = 1; r <= ROUNDS; r++)); do
        for row in "${row_list[@]}"; do
            local wrow=("${wl[@]}")
            [[ $row == new-* || $row == resumed ]] && wrow=(1)
            cert=ecdsa; [[ $row == new-rsa ]] && cert=rsa
            for w in "${wrow[@]}"; do
                for name in "${names[@]}"; do
                    [[ -n "${skipped[$name]:-}" ]] && continue
                    log "round $r/$ROUNDS: $row, $name, $w worker(s), cpus $(proxy_cpus "$w")"
                    mode_start "$name" tls_start "$name" "$w" "$cert" || { skipped[$name]=1; continue; }
                    [[ -n "${proto[$name/$cert]:-}" ]] || {
                        proto[$name/$cert]=$(tls_negotiated)
                        echo "proto proxy=$name cert=$cert negotiated=${proto[$name/$cert]}" >>"$RESULTS"; }
                    tls_measure "$row" "$name" "$w" "$r"
                    stop_group "$PROXY_PID"; PROXY_PID=""
                done
            done
        done
    done

    echo "versions nginx=$(nginx -v 2>&1 | sed 's|.*/||') haproxy=$(haproxy -v 2>/dev/null | awk 'NR==1{print $3}')" \
         "openssl=$(openssl version | awk '{print $2}') h2load=$(h2load --version | awk '{print $2; exit}')" \
         "pasture=$(mode_pasture_rev) kernel=$(uname -r) elapsed=$SECONDS cpus=$(nproc)" \
         "cpu=$(awk -F': ' '/model name/{gsub(/ /,"_",$2); print $2; exit}' /proc/cpuinfo)" >>"$RESULTS"
    mode_report tls_render.py
}
