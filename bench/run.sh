#!/usr/bin/env bash
# The ModelGateway load harness: one command, one machine. See bench/README.md.
#
# Starts a fast fake OpenAI upstream, the gateway (Release), two floors (bare YARP direct
# forwarding, nginx) and wrk; measures throughput, latency, time to first streamed event, CPU per
# request, peak RSS and concurrent slow streams; prints a Markdown table with PASS/FAIL against the
# targets and writes it to bench/results/latest.md. Every process it starts is stopped on exit,
# failure or Ctrl+C.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)

# ---- Knobs (environment) -------------------------------------------------------------------------
DURATION=${BENCH_DURATION:-10}                  # seconds per wrk run
ROUNDS=${BENCH_ROUNDS:-5}                       # rounds of every target, in rotating order
# Warm-up per target and mode. The gateway has far more code than the floors: tiered compilation
# keeps re-JITting hot methods for tens of seconds under load, and that CPU would count against it.
WARMUP=${BENCH_WARMUP:-30}
# Core pinning (taskset): 1 puts the proxy under test on PROXY_CPUS and the load generator, the
# upstream and the ttfb client on LOAD_CPUS, so they do not trade cores from round to round.
PIN=${BENCH_PIN:-0}
LOAD_CPUS=${BENCH_LOAD_CPUS:-0}
PROXY_CPUS=${BENCH_PROXY_CPUS:-$(($(nproc) - 1))}
REDIS_CPUS=${BENCH_REDIS_CPUS:-$LOAD_CPUS}     # with BENCH_STATE=redis and BENCH_PIN=1: Redis off the proxy's core
CONNECTIONS=${BENCH_CONNECTIONS:-32}            # the "loaded" connection count (the other is 1)
STREAM_CHUNKS=${BENCH_STREAM_CHUNKS:-20}        # content chunks per streamed reply
TTFB_REQUESTS=${BENCH_TTFB_REQUESTS:-2000}      # sequential streams per target and round for TTFB
SOAK_LEVELS=${BENCH_SOAK_LEVELS-"1000 5000 10000"}  # concurrent slow streams; empty skips the soak
SOAK_CHUNKS=${BENCH_SOAK_CHUNKS:-20}            # slow stream: chunks ...
SOAK_CHUNK_DELAY_MS=${BENCH_SOAK_CHUNK_DELAY_MS:-1000}  # ... one per second: a 20 s stream
SOAK_RAMP=${BENCH_SOAK_RAMP_PER_SECOND:-2000}   # new streams per second while ramping up
SOAK_LEGS=${BENCH_SOAK_LEGS:-"h1 h2tls"}        # gateway->upstream leg: cleartext HTTP/1.1, HTTP/2 over TLS
PARTS=${BENCH_PARTS:-"load accesslog soak"}      # which parts to run (e.g. BENCH_PARTS=soak)
STATE=${BENCH_STATE:-memory}                    # memory | redis
REDIS_URL=${REDIS_URL:-}                        # with BENCH_STATE=redis; empty starts a redis-server
# 1: the gateway runs with Auth:Mode=keys and the load uses a virtual key with RPM, TPM, parallel
# and budget limits (never reached), so every request is authenticated and admitted by the state
# store: one Lua call per request with Redis. Default: on with Redis state, off in memory.
KEYS=${BENCH_KEYS:-$([[ $STATE == redis ]] && echo 1 || echo 0)}
MASTER_KEY=mk-bench-$RANDOM$RANDOM
SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
KEEP_TMP=${BENCH_KEEP_TMP:-0}                   # 1: keep logs and configs for a post-mortem
RESULTS_DIR=${BENCH_RESULTS_DIR:-$BENCH_DIR/results}

TARGETS=(direct nginx yarp gateway translated cached)
# The route a target is loaded with (default gpt-4o-mini). "cached" is the same gateway through a route
# with the response cache on: every request of the load is the same, so all but the first are hits.
declare -A MODEL=([translated]=claude [cached]=cached)
TMP=$(mktemp -d -t modelgateway-bench.XXXXXX)
PIDS=()                        # every process we started, in start order
declare -A URL=()              # target -> base URL
declare -A PROC=()             # target -> PID whose CPU and memory we read
declare -A API_KEY=()          # base URL -> the virtual key to send there (gateways with BENCH_KEYS=1)
RAW=$TMP/raw.tsv               # one row per measurement; the report is computed from it
# The routing files get a directory of their own, as a deployment would keep them.
CONFIG_DIR=$TMP/config
mkdir -p "$CONFIG_DIR"
CLK_TCK=$(getconf CLK_TCK)

has_part() { [[ " $PARTS " == *" $1 "* ]]; }

# taskset prefixes for pinned runs (nothing when BENCH_PIN=0).
pin_load() { [[ $PIN == 1 ]] && printf '%s\n' taskset -c "$LOAD_CPUS"; return 0; }
pin_proxy() { [[ $PIN == 1 ]] && printf '%s\n' taskset -c "$PROXY_CPUS"; return 0; }

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---- Process lifecycle ---------------------------------------------------------------------------

# Stops one process by PID: TERM, then KILL after 5 s. Never by name.
stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Runs on every exit path (the INT/TERM traps exit, which lands here): newest process first.
cleanup() {
    local status=$? i
    set +e
    trap - EXIT INT TERM
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PIDS[i]}"
    done
    if [[ $KEEP_TMP == 1 || $status != 0 ]]; then
        log "logs and configs kept in $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Starts a command in the background with its output in $TMP/NAME.log; sets STARTED_PID.
start_bg() {
    local name=$1
    shift
    "$@" >"$TMP/$name.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
}

# A free loopback port below the ephemeral range (so the kernel never hands it out meanwhile):
# pure bash, a refused connect means nobody listens.
free_port() {
    local port i
    for ((i = 0; i < 200; i++)); do
        port=$((20000 + RANDOM % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    die "no free port found"
}

# Waits until PID listens on PORT; fails fast, with its log, if it died.
wait_port() {
    local name=$1 pid=$2 port=$3 i
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || { tail -n 30 "$TMP/$name.log" >&2; die "$name exited during start-up"; }
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return
        fi
        sleep 0.1
    done
    tail -n 30 "$TMP/$name.log" >&2
    die "$name did not listen on $port within 30 s"
}

# ---- Setup ----------------------------------------------------------------------------------------

ensure_packages() {
    local wanted=() cmd
    declare -A package_of=([wrk]=wrk [nginx]=nginx [curl]=curl [ss]=iproute2 [openssl]=openssl)
    [[ $STATE == redis && -z $REDIS_URL ]] && package_of[redis-server]=redis-server
    for cmd in "${!package_of[@]}"; do
        command -v "$cmd" >/dev/null || [[ -x /usr/sbin/$cmd ]] || wanted+=("${package_of[$cmd]}")
    done
    ((${#wanted[@]} == 0)) && return
    log "installing ${wanted[*]}"
    local sudo=()
    ((EUID == 0)) || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${wanted[@]}" >/dev/null
}

# 10,000 streams through the gateway cost two sockets each there, one in the client and one in the
# upstream: lift the descriptor limit for this shell and everything it starts.
raise_fd_limit() {
    local want=262144 hard
    ulimit -Hn "$want" 2>/dev/null || true
    hard=$(ulimit -Hn)
    [[ $hard == unlimited ]] && hard=$want
    ulimit -n $((hard < want ? hard : want))
    log "open files limit: $(ulimit -n)"
}

build_all() {
    local project
    for project in src/ModelGateway tests/ModelGateway.FakeUpstream bench/YarpFloor bench/StreamSoak; do
        log "building $project (Release)"
        dotnet build "$REPO_DIR/$project" -c Release -nologo -v quiet >"$TMP/build.log" 2>&1 \
            || { cat "$TMP/build.log" >&2; die "build of $project failed"; }
    done
}

dll() { echo "$REPO_DIR/$1/bin/Release/net10.0/$2.dll"; }

# Starts a fake upstream; extra arguments go to it. Sets UPSTREAM_URL and UPSTREAM_PID.
start_upstream() {
    local name=$1 i
    shift
    local pin=()
    mapfile -t pin < <(pin_load)
    start_bg "$name" "${pin[@]}" dotnet "$(dll tests/ModelGateway.FakeUpstream ModelGateway.FakeUpstream)" --port 0 "$@"
    UPSTREAM_PID=$STARTED_PID
    for ((i = 0; i < 300; i++)); do
        UPSTREAM_URL=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$TMP/$name.log" 2>/dev/null | head -n 1 || true)
        [[ -n $UPSTREAM_URL ]] && return
        kill -0 "$UPSTREAM_PID" 2>/dev/null || { cat "$TMP/$name.log" >&2; die "$name exited during start-up"; }
        sleep 0.1
    done
    die "$name did not report its address"
}

start_redis_if_asked() {
    [[ $STATE == redis ]] || return 0
    if [[ -z $REDIS_URL ]]; then
        local port
        port=$(free_port)
        local pin=()
        [[ $PIN == 1 ]] && pin=(taskset -c "$REDIS_CPUS")
        start_bg redis "${pin[@]}" redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no
        wait_port redis "$STARTED_PID" "$port"
        REDIS_URL=127.0.0.1:$port
    fi
    log "state: redis at $REDIS_URL (passed to every gateway as --State:Redis)"
}

# Writes a routing file with one openai-compatible provider, one deployment and one route, plus an
# Anthropic-wire deployment of the same fake for the translated path (OpenAI client, Anthropic upstream).
write_routing() {
    local file=$1 upstream=$2
    cat >"$file" <<EOF
providers:
  - name: fake
    kind: openai-compatible
    baseUrl: $upstream/v1
  - name: fake-anthropic
    kind: anthropic
    baseUrl: $upstream
    apiKey: unused-by-the-fake
deployments:
  - name: bench@fake
    provider: fake
    model: gpt-4o-mini
    contextWindow: 128000
    capabilities: [chat]
  - name: bench@fake-anthropic
    provider: fake-anthropic
    model: claude-sonnet-4-5
routes:
  - name: gpt-4o-mini
    targets: [bench@fake]
  - name: claude
    targets: [bench@fake-anthropic]
  - name: cached
    targets: [bench@fake]
    cache: { ttl: 1h, scope: global }
EOF
}

# Starts a gateway: NAME ROUTING_FILE [ACCESS_LOG] [VAR=value...]. ACCESS_LOG=1 turns the console
# log and the access log on (into its log file); otherwise logging is quiet, as for every load run.
# Sets GATEWAY_PID and GATEWAY_URL.
start_gateway() {
    local name=$1 routing=$2 access_log=${3:-0} port
    local env=("${@:4}")    # extra VAR=value for the process (SSL_CERT_FILE for the TLS leg)
    local settings=(
        "--Observability:ConsoleLog=$([[ $access_log == 1 ]] && echo true || echo false)"
        "--Observability:AccessLog=$([[ $access_log == 1 ]] && echo true || echo false)"
        "--Serilog:MinimumLevel:Default=$([[ $access_log == 1 ]] && echo Information || echo Warning)"
        # A handful of lines at start and stop: if something else stops the gateway mid-run, the log says so.
        "--Serilog:MinimumLevel:Override:Microsoft.Hosting.Lifetime=Information"
    )
    [[ $STATE == redis ]] && settings+=("--State:Redis=$REDIS_URL")
    [[ $KEYS == 1 ]] && settings+=("--Auth:Mode=keys" "--Admin:MasterKey=$MASTER_KEY")
    port=$(free_port)
    local pin=()
    mapfile -t pin < <(pin_proxy)
    # --contentRoot: read the shipped appsettings.json, as a deployed gateway does, wherever the
    # script is started from (the host looks for it in the working directory otherwise).
    start_bg "$name" "${pin[@]}" env "${env[@]}" dotnet "$(dll src/ModelGateway ModelGateway)" --config "$routing" \
        --contentRoot "$REPO_DIR/src/ModelGateway/bin/Release/net10.0" \
        --urls "http://127.0.0.1:$port" "${settings[@]}"
    GATEWAY_PID=$STARTED_PID
    GATEWAY_URL=http://127.0.0.1:$port
    wait_port "$name" "$GATEWAY_PID" "$port"
    local i
    for ((i = 0; i < 100; i++)); do
        if curl -fs "$GATEWAY_URL/healthz/ready" >/dev/null; then
            if [[ $KEYS == 1 ]]; then
                create_key "$name" "$GATEWAY_URL"
            fi
            return 0
        fi
        sleep 0.1
    done
    die "$name never became ready"
}

# Creates a virtual key whose limits the load never reaches, and records it for the gateway's URL.
create_key() {
    local name=$1 url=$2 body
    body=$(curl -fsS -X POST "$url/admin/keys" -H "Authorization: Bearer $MASTER_KEY" -H 'Content-Type: application/json' \
        -d '{"name":"bench","team":"bench","rpm":100000000,"tpm":100000000000,"max_parallel_requests":100000,"budget_daily_usd":1000000000,"budget_monthly_usd":1000000000}') \
        || die "$name: creating the bench key failed"
    API_KEY[$url]=$(sed -n 's/.*"key":"\([^"]*\)".*/\1/p' <<<"$body")
    [[ -n ${API_KEY[$url]} ]] || die "$name: no key in the admin answer: ${body:0:200}"
}

# curl arguments that authenticate against URL's gateway, if it needs a key.
auth_args() { [[ -n ${API_KEY[$1]:-} ]] && printf '%s\n' -H "Authorization: Bearer ${API_KEY[$1]}"; return 0; }

start_yarp_floor() {
    local port
    port=$(free_port)
    local pin=()
    mapfile -t pin < <(pin_proxy)
    start_bg yarp "${pin[@]}" dotnet "$(dll bench/YarpFloor YarpFloor)" --upstream "$1" --urls "http://127.0.0.1:$port"
    wait_port yarp "$STARTED_PID" "$port"
    PROC[yarp]=$STARTED_PID
    URL[yarp]=http://127.0.0.1:$port
}

start_nginx() {
    local upstream_port=${1##*:} port nginx_bin limit
    port=$(free_port)
    nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
    limit=$(ulimit -n)
    mkdir -p "$TMP/nginx"
    # One worker per core like Kestrel; upstream keepalive and HTTP/1.1 so nginx reuses connections
    # like the .NET proxies do; no buffering, so SSE chunks pass as they come.
    cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes auto;
worker_rlimit_nofile $limit;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections $((limit - 64)); }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    upstream fake {
        server 127.0.0.1:$upstream_port;
        keepalive 256;
    }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://fake;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
EOF
    local pin=()
    mapfile -t pin < <(pin_proxy)
    start_bg nginx "${pin[@]}" "$nginx_bin" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -g 'daemon off;'
    wait_port nginx "$STARTED_PID" "$port"
    PROC[nginx]=$STARTED_PID
    URL[nginx]=http://127.0.0.1:$port
}

# Every target must answer a plain and a streamed request correctly before it is loaded: a proxy
# that answers fast with errors would otherwise win.
check_target() {
    local target=$1 url=${URL[$1]}/v1/chat/completions body auth=() model=${MODEL[$1]:-gpt-4o-mini}
    mapfile -t auth < <(auth_args "${URL[$1]}")
    body=$(curl -fsS "$url" "${auth[@]}" -H 'Content-Type: application/json' \
        -d '{"model":"'"$model"'","messages":[{"role":"user","content":"hi"}]}') \
        || die "$target: plain request failed"
    [[ $body == *'"chat.completion"'* ]] || die "$target: unexpected body: ${body:0:200}"
    body=$(curl -fsSN "$url" "${auth[@]}" -H 'Content-Type: application/json' \
        -d '{"model":"'"$model"'","stream":true,"messages":[{"role":"user","content":"hi"}]}') \
        || die "$target: streamed request failed"
    [[ $body == *'data: [DONE]'* ]] || die "$target: stream did not end with [DONE]"
    if [[ $target == cached ]]; then
        # The load measures hits: the entry the checks above filled must answer the next request.
        curl -fsS -o /dev/null -D "$TMP/cached.headers" "$url" "${auth[@]}" -H 'Content-Type: application/json' \
            -d '{"model":"'"$model"'","messages":[{"role":"user","content":"hi"}]}' || die "$target: repeated request failed"
        grep -qi '^x-modelgateway-cache: hit' "$TMP/cached.headers" || die "$target: a repeated request was not a cache hit"
    fi
}

# ---- Measuring ------------------------------------------------------------------------------------

# CPU ticks (user + system) of a process and its direct children (nginx's workers).
cpu_ticks() {
    local root=$1 total=0 pid fields stat f
    for stat in /proc/[0-9]*/stat; do
        { fields=$(<"$stat"); } 2>/dev/null || continue
        pid=${fields%% *}
        fields=${fields##*) }             # skip "pid (comm) ": comm may hold spaces
        read -r -a f <<<"$fields"
        # f[1] is the parent PID, f[11] utime, f[12] stime.
        if [[ $pid == "$root" || ${f[1]} == "$root" ]]; then
            total=$((total + f[11] + f[12]))
        fi
    done
    echo "$total"
}

status_kb() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# Fails the run, with the process's log, when a server died under load (a crash, or something
# outside the harness stopping it): its numbers would be meaningless.
assert_alive() {
    local name=$1 pid=$2
    kill -0 "$pid" 2>/dev/null && return
    tail -n 20 "$TMP/$name.log" >&2
    die "$name (pid $pid) is no longer running"
}

# wrk run: KIND is ns (non-streaming) or st (streaming). Appends a row to $RAW.
run_wrk() {
    local kind=$1 target=$2 connections=$3 round=$4 duration=${5:-$DURATION} threads=2
    local pid=${PROC[$target]:-} before=0 after=0 line
    ((connections < 2)) && threads=1
    [[ -n $pid ]] && before=$(cpu_ticks "$pid")
    local pin=()
    mapfile -t pin < <(pin_load)
    line=$(WRK_KEY=${API_KEY[${URL[$target]}]:-} WRK_MODEL=${MODEL[$target]:-gpt-4o-mini} WRK_STREAM=$([[ $kind == st ]] && echo 1 || echo 0) \
        "${pin[@]}" wrk -t "$threads" -c "$connections" \
        -d "${duration}s" --timeout 10s -s "$BENCH_DIR/wrk/chat.lua" "${URL[$target]}/v1/chat/completions" \
        | grep '^BENCH ') || die "wrk failed against $target"
    [[ -n $pid ]] && after=$(cpu_ticks "$pid") && assert_alive "$target" "$pid"
    [[ $round == warmup ]] && return
    local -A m=()
    local pair
    # shellcheck disable=SC2086 # split the key=value pairs on purpose
    for pair in ${line#BENCH }; do m[${pair%%=*}]=${pair#*=}; done
    local rps cpu_us=""
    rps=$(awk -v r="${m[requests]}" -v d="${m[duration_us]}" 'BEGIN { printf "%.0f", r / (d / 1e6) }')
    [[ -n $pid ]] && cpu_us=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v r="${m[requests]}" 'BEGIN { printf "%.1f", t / hz * 1e6 / r }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$round" "$target" "$connections" \
        "$rps" "${m[p50_us]}" "${m[p90_us]}" "${m[p99_us]}" "$((m[errors] + m[non2xx]))" "$cpu_us" >>"$RAW"
    log "$(printf '%-2s r%-2s %-8s c=%-3s %8s req/s  p50 %7s us  p99 %8s us  cpu %6s us/req  errors %s' \
        "$kind" "$round" "$target" "$connections" "$rps" "${m[p50_us]}" "${m[p99_us]}" "${cpu_us:--}" "$((m[errors] + m[non2xx]))")"
}

# Sequential streams, time to the first data: line (StreamSoak ttfb). Appends a row to $RAW.
run_ttfb() {
    local target=$1 round=$2 line
    local key=()
    [[ -n ${API_KEY[${URL[$target]}]:-} ]] && key=(--key "${API_KEY[${URL[$target]}]}")
    [[ $target == translated || $target == cached ]] && return 0
    local pin=()
    mapfile -t pin < <(pin_load)
    line=$("${pin[@]}" dotnet "$(dll bench/StreamSoak StreamSoak)" ttfb --url "${URL[$target]}/v1/chat/completions" \
        --requests "$TTFB_REQUESTS" --warmup $((TTFB_REQUESTS / 5)) "${key[@]}" | grep '^BENCH ') \
        || die "ttfb client failed against $target"
    local -A m=()
    local pair
    # shellcheck disable=SC2086
    for pair in ${line#BENCH }; do m[${pair%%=*}]=${pair#*=}; done
    printf 'ttfb\t%s\t%s\t1\t\t%s\t%s\t%s\t%s\t\n' "$round" "$target" "${m[p50_us]}" "${m[p90_us]}" "${m[p99_us]}" "${m[failed]}" >>"$RAW"
    log "$(printf 'ttfb r%-2s %-8s p50 %7s us  p90 %7s us  p99 %8s us' "$round" "$target" "${m[p50_us]}" "${m[p90_us]}" "${m[p99_us]}")"
}

# Targets in the order for round R: rotated by R, so no target always runs first (or last).
rotated_targets() {
    local r=$1 n=${#TARGETS[@]} i
    for ((i = 0; i < n; i++)); do echo "${TARGETS[(i + r) % n]}"; done
}

main_rounds() {
    local round target kind connections
    log "warm-up: ${WARMUP}s per target and mode"
    for target in "${TARGETS[@]}"; do
        run_wrk ns "$target" "$CONNECTIONS" warmup "$WARMUP"
        run_wrk st "$target" "$CONNECTIONS" warmup "$WARMUP"
    done
    for ((round = 1; round <= ROUNDS; round++)); do
        for kind in ns st; do
            for connections in "$CONNECTIONS" 1; do
                for target in $(rotated_targets "$round"); do
                    # Cache hits are compared with the pass-through under load only.
                    [[ $target == cached && $connections == 1 ]] && continue
                    run_wrk "$kind" "$target" "$connections" "$round"
                done
            done
        done
        for target in $(rotated_targets "$round"); do
            run_ttfb "$target" "$round"
        done
    done
}

# The same gateway with its console and access log on, interleaved with the quiet one.
access_log_rounds() {
    has_part accesslog || return 0
    start_gateway gateway-log "$CONFIG_DIR/routing.yaml" 1
    PROC[gateway-log]=$GATEWAY_PID
    URL[gateway-log]=$GATEWAY_URL
    check_target gateway-log
    run_wrk acc gateway "$CONNECTIONS" warmup "$WARMUP"
    run_wrk acc gateway-log "$CONNECTIONS" warmup "$WARMUP"
    local round
    for ((round = 1; round <= ROUNDS; round++)); do
        if ((round % 2)); then
            run_wrk acc gateway "$CONNECTIONS" "$round"
            run_wrk acc gateway-log "$CONNECTIONS" "$round"
        else
            run_wrk acc gateway-log "$CONNECTIONS" "$round"
            run_wrk acc gateway "$CONNECTIONS" "$round"
        fi
    done
    ACCESS_LOG_LINES=$(grep -c '"LatencyMs":' "$TMP/gateway-log.log" || true)
    stop_pid "$GATEWAY_PID"
}

# Holds N slow streams through a fresh gateway (so its peak RSS is the soak's own), sampling once a
# second its RSS, the client connections it holds and its connections to the upstream leg.
# LEG is h1 (cleartext HTTP/1.1 to the fake: one upstream socket per stream) or h2tls (HTTP/2 over
# TLS through an nginx front: streams multiplexed, as towards the hosted providers).
soak_level() {
    local leg=$1 streams=$2 upstream_port=$3 line monitor gateway_port env=()
    local name=soak-$leg-$streams
    if [[ $leg == h1 ]] && ((2 * streams + 1024 > $(ulimit -n))); then
        # Two sockets per stream in one process: past the descriptor limit the gateway would refuse
        # connections, and the soak would measure the sandbox, not the gateway.
        printf 'soak\t%s\t%s\t%s\tskipped\t\t\t\t\t\t%s\n' "$streams" "$leg" "$streams" \
            "needs about $((2 * streams + 1024)) open files, the limit here is $(ulimit -n)" >>"$RAW"
        log "soak $leg $streams: skipped, needs about $((2 * streams + 1024)) open files (limit $(ulimit -n))"
        return
    fi
    [[ $leg == h2tls ]] && env=("SSL_CERT_FILE=$TMP/tls/cert.pem")
    start_gateway "gateway-$name" "$CONFIG_DIR/routing-$leg.yaml" 0 "${env[@]}"
    gateway_port=${GATEWAY_URL##*:}
    (
        while kill -0 "$GATEWAY_PID" 2>/dev/null; do
            printf '%s\t%s\t%s\n' "$(status_kb "$GATEWAY_PID" VmRSS 2>/dev/null || echo 0)" \
                "$(ss -Htn state established "( sport = :$gateway_port )" 2>/dev/null | wc -l)" \
                "$(ss -Htn state established "( dport = :$upstream_port )" 2>/dev/null | wc -l)"
            sleep 1
        done
    ) >"$TMP/$name.samples" 2>/dev/null &
    monitor=$!
    PIDS+=("$monitor")
    local status=0
    local key=()
    [[ -n ${API_KEY[$GATEWAY_URL]:-} ]] && key=(--key "${API_KEY[$GATEWAY_URL]}")
    line=$(dotnet "$(dll bench/StreamSoak StreamSoak)" soak --url "$GATEWAY_URL/v1/chat/completions" \
        --streams "$streams" --ramp-per-second "$SOAK_RAMP" "${key[@]}" \
        --timeout-seconds $((SOAK_CHUNKS * SOAK_CHUNK_DELAY_MS / 1000 + streams / SOAK_RAMP + 60)) \
        2>"$TMP/$name.err" | grep '^BENCH ') || status=$?
    [[ -n $line ]] || { cat "$TMP/$name.err" >&2; die "soak client failed at $streams streams"; }
    local hwm peak_clients peak_upstream retried
    if ! kill -0 "$GATEWAY_PID" 2>/dev/null; then
        local exit_status=0
        wait "$GATEWAY_PID" || exit_status=$?
        log "soak $leg $streams: the gateway exited (status $exit_status) during the soak; see $TMP/gateway-$name.log"
        KEEP_TMP=1
        printf 'soak\t%s\t%s\t%s\tskipped\t\t\t\t\t\t%s\n' "$streams" "$leg" "$streams" \
            "the gateway exited (status $exit_status) during the soak: ${line#BENCH }" >>"$RAW"
        stop_pid "$monitor"
        return
    fi
    hwm=$(status_kb "$GATEWAY_PID" VmHWM)
    peak_clients=$(awk -F'\t' '$2 > m { m = $2 } END { print m + 0 }' "$TMP/$name.samples")
    peak_upstream=$(awk -F'\t' '$3 > m { m = $3 } END { print m + 0 }' "$TMP/$name.samples")
    stop_pid "$GATEWAY_PID"
    stop_pid "$monitor"
    # Attempts that failed and were retried inside the gateway: invisible to the client, but they
    # count against the circuit and the retry budget, so the report shows them.
    retried=$(grep -c 'LogAttemptFailed' "$TMP/gateway-$name.log" || true)
    local -A m=()
    local pair
    # shellcheck disable=SC2086
    for pair in ${line#BENCH }; do m[${pair%%=*}]=${pair#*=}; done
    printf 'soak\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$streams" "$leg" "$streams" "${m[done]}" "${m[peak_open]}" \
        "$peak_clients" "$hwm" "${m[failed]}" "$peak_upstream" "$retried" >>"$RAW"
    log "soak $leg $streams: done ${m[done]}/$streams, peak open ${m[peak_open]}, gateway held $peak_clients client and $peak_upstream upstream connections, peak RSS $((hwm / 1024)) MB, $retried attempts retried"
    ((status == 0)) || sed 's/^/  /' "$TMP/$name.err" >&2
}

# nginx terminating TLS with HTTP/2 in front of the slow fake, so the gateway's upstream leg is
# multiplexed as it is towards OpenAI or Azure. Sets TLS_FRONT_PORT.
start_tls_front() {
    local upstream_port=${1##*:} nginx_bin limit
    TLS_FRONT_PORT=$(free_port)
    nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
    limit=$(ulimit -n)
    mkdir -p "$TMP/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
        -keyout "$TMP/tls/key.pem" -out "$TMP/tls/cert.pem" -subj /CN=127.0.0.1 \
        -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1 || die "openssl could not make a test certificate"
    # keepalive_requests: nginx otherwise ends an HTTP/2 connection with GOAWAY after 1,000
    # requests, and the requests in flight then are retried (see the README's findings).
    cat >"$TMP/tls/nginx.conf" <<EOF
worker_processes auto;
worker_rlimit_nofile $limit;
pid $TMP/tls/nginx.pid;
error_log $TMP/tls/error.log warn;
events { worker_connections $((limit - 64)); }
http {
    access_log off;
    client_body_temp_path $TMP/tls/body;
    proxy_temp_path $TMP/tls/proxy;
    fastcgi_temp_path $TMP/tls/fastcgi;
    uwsgi_temp_path $TMP/tls/uwsgi;
    scgi_temp_path $TMP/tls/scgi;
    upstream fake {
        server 127.0.0.1:$upstream_port;
        keepalive 1024;
    }
    server {
        listen 127.0.0.1:$TLS_FRONT_PORT ssl http2;
        ssl_certificate $TMP/tls/cert.pem;
        ssl_certificate_key $TMP/tls/key.pem;
        keepalive_requests 10000000;
        keepalive_timeout 300s;
        location / {
            proxy_pass http://fake;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 300s;
        }
    }
}
EOF
    start_bg nginx-tls "$nginx_bin" -p "$TMP/tls" -c "$TMP/tls/nginx.conf" -g 'daemon off;'
    wait_port nginx-tls "$STARTED_PID" "$TLS_FRONT_PORT"
}

soak() {
    has_part soak && [[ -n $SOAK_LEVELS ]] || return 0
    start_upstream upstream-slow --fast --chunks "$SOAK_CHUNKS" --chunk-delay-ms "$SOAK_CHUNK_DELAY_MS"
    local slow=$UPSTREAM_URL leg streams port
    write_routing "$CONFIG_DIR/routing-h1.yaml" "$slow"
    for leg in $SOAK_LEGS; do
        port=${slow##*:}
        if [[ $leg == h2tls ]]; then
            start_tls_front "$slow"
            write_routing "$CONFIG_DIR/routing-h2tls.yaml" "https://127.0.0.1:$TLS_FRONT_PORT"
            port=$TLS_FRONT_PORT
        fi
        for streams in $SOAK_LEVELS; do
            soak_level "$leg" "$streams" "$port"
        done
    done
}

# ---- Report ---------------------------------------------------------------------------------------

# Median of column COL over rows of KIND/TARGET/CONNECTIONS.
median() {
    awk -F'\t' -v k="$1" -v t="$2" -v c="$3" -v col="$4" '
        $1 == k && $3 == t && $4 == c && $col != "" {
            x = $col + 0
            for (i = n++; i > 0 && v[i - 1] > x; i--) v[i] = v[i - 1]   # insertion sort: mawk has no asort
            v[i] = x
        }
        END { if (n) print (n % 2) ? v[(n - 1) / 2] : (v[n / 2 - 1] + v[n / 2]) / 2 }' "$RAW"
}

# "min–max" of column COL: how noisy the rounds were.
spread() {
    awk -F'\t' -v k="$1" -v t="$2" -v c="$3" -v col="$4" '
        $1 == k && $3 == t && $4 == c && $col != "" {
            x = $col + 0; if (n++ == 0 || x < lo) lo = x; if (n == 1 || x > hi) hi = x
        }
        END { if (n) printf "%g–%g", lo, hi }' "$RAW"
}

# Per-round ratios A/B of column COL: "median (min–max)" of them, so every ratio shows how stable it is.
ratio_stats() {
    awk -F'\t' -v k="$1" -v a="$2" -v b="$3" -v c="$4" -v col="$5" -v scale="${6:-1}" -v digits="${7:-2}" '
        $1 == k && $4 == c && $3 == a { x[$2] = $col }
        $1 == k && $4 == c && $3 == b { y[$2] = $col }
        END {
            for (r in x) if (y[r] > 0 && x[r] != "") {
                v = x[r] / y[r] * scale
                for (i = n++; i > 0 && s[i - 1] > v; i--) s[i] = s[i - 1]
                s[i] = v
            }
            if (!n) { print "n/a"; exit }
            m = (n % 2) ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
            printf "%." digits "f (%." digits "f–%." digits "f)", m, s[0], s[n - 1]
        }' "$RAW"
}

# The median alone, for verdicts.
ratio_median() { ratio_stats "$@" | awk '{ print $1 }'; }

# Arithmetic on measured numbers; "n/a" when one is missing (a failed run), so the report still prints.
calc() { awk "BEGIN { v = $1; printf \"%.${2:-2}f\", v }" 2>/dev/null || echo "n/a"; }

verdict() { awk "BEGIN { exit !($1) }" 2>/dev/null && echo "**PASS**" || echo "**FAIL**"; }

report() {
    local out=$1 commit dirty="" cpu_model
    commit=$(git -C "$REPO_DIR" rev-parse --short HEAD)
    git -C "$REPO_DIR" diff --quiet HEAD -- src tests bench 2>/dev/null || dirty=" (+ uncommitted changes)"
    cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    {
        echo "### Load harness results"
        echo
        echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC') · commit \`$commit\`$dirty · state: $STATE · auth: $([[ $KEYS == 1 ]] && echo 'keys (every gateway request carries a virtual key with RPM, TPM, parallel and budget limits)' || echo 'none (the shipped default)')"
        echo "- Machine: $(nproc) cores, ${cpu_model:-unknown CPU}, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr); generator, upstream and proxy share the cores"
        echo "- Runs: ${ROUNDS} rounds × ${DURATION}s per target and mode, targets in rotating order, ${WARMUP}s warm-up; streams have ${STREAM_CHUNKS} chunks; medians over rounds (min–max in brackets)"
        echo "- Cores: $([[ $PIN == 1 ]] && echo "pinned: proxy under test on CPU $PROXY_CPUS; generator, upstream and ttfb client on CPU $LOAD_CPUS$([[ $STATE == redis ]] && echo "; Redis on CPU $REDIS_CPUS")" || echo "not pinned (BENCH_PIN=0)")"
        echo "- Gateway logging during load runs: console log off, access log off, minimum level Warning"
        report_load
        report_access_log
        report_soak
    } >"$out"
}

report_load() {
    has_part load || return 0
    echo
    echo "| Mode | Conns | Target | req/s | p50 µs | p90 µs | p99 µs | CPU µs/req | errors |"
    echo "|---|---:|---|---:|---:|---:|---:|---:|---:|"
    local kind connections target
    for kind in ns st; do
        for connections in "$CONNECTIONS" 1; do
            for target in "${TARGETS[@]}"; do
                [[ $target == cached && $connections == 1 ]] && continue
                printf '| %s | %s | %s | %s (%s) | %s | %s | %s | %s | %s |\n' \
                    "$([[ $kind == ns ]] && echo non-streaming || echo "streaming, $STREAM_CHUNKS chunks")" \
                    "$connections" "$target" \
                    "$(median "$kind" "$target" "$connections" 5)" "$(spread "$kind" "$target" "$connections" 5)" \
                    "$(median "$kind" "$target" "$connections" 6)" "$(median "$kind" "$target" "$connections" 7)" \
                    "$(median "$kind" "$target" "$connections" 8)" "$(median "$kind" "$target" "$connections" 10)" \
                    "$(awk -F'\t' -v k="$kind" -v t="$target" -v c="$connections" '$1 == k && $3 == t && $4 == c { s += $9 } END { print s + 0 }' "$RAW")"
            done
        done
    done
    echo
    echo "Time to first streamed event (StreamSoak \`ttfb\`: $TTFB_REQUESTS sequential streams per round on one keep-alive connection, request sent → first \`data:\` line read):"
    echo
    echo "| Target | p50 µs | p90 µs | p99 µs |"
    echo "|---|---:|---:|---:|"
    for target in "${TARGETS[@]}"; do
        [[ $target == translated || $target == cached ]] && continue
        printf '| %s | %s (%s) | %s | %s |\n' "$target" "$(median ttfb "$target" 1 6)" "$(spread ttfb "$target" 1 6)" \
            "$(median ttfb "$target" 1 7)" "$(median ttfb "$target" 1 8)"
    done
    echo
    report_targets
}

report_targets() {
    local c=$CONNECTIONS
    local added_yarp added_nginx added_direct added_ttfb rss
    added_yarp=$(calc "$(median ns gateway 1 6) - $(median ns yarp 1 6)" 0)
    added_nginx=$(calc "$(median ns gateway 1 6) - $(median ns nginx 1 6)" 0)
    added_direct=$(calc "$(median ns gateway 1 6) - $(median ns direct 1 6)" 0)
    added_ttfb=$(calc "($(median ttfb gateway 1 6) - $(median ttfb direct 1 6)) / 1000" 3)
    rss=$(calc "$GATEWAY_HWM_KB / 1024" 0)
    # The issue's goals: 85% of bare YARP with in-memory state, 65% with Redis state.
    local throughput_goal=85 kind label through cpu
    [[ $STATE == redis ]] && throughput_goal=65
    echo "Ratios are per round (both targets measured in the same round), given as the median over rounds with the spread (min–max); verdicts use the median."
    echo
    echo "| Target | Measured: median (min–max over $ROUNDS rounds) | Goal | Result |"
    echo "|---|---:|---:|---|"
    for kind in ns st; do
        label=$([[ $kind == ns ]] && echo "non-streaming" || echo "streaming ($STREAM_CHUNKS chunks)")
        through=$(ratio_median "$kind" gateway yarp "$c" 5 100 1)
        cpu=$(ratio_median "$kind" gateway yarp "$c" 10 1 2)
        echo "| Gateway ÷ bare YARP throughput, $label, $c conns | $(ratio_stats "$kind" gateway yarp "$c" 5 100 1) % | ≥ ${throughput_goal}% | $(verdict "$through >= $throughput_goal") |"
        echo "| CPU per request, gateway ÷ bare YARP, $label | $(ratio_stats "$kind" gateway yarp "$c" 10 1 2) × ($(median "$kind" gateway "$c" 10) vs $(median "$kind" yarp "$c" 10) µs) | ≤ 1.3× | $(verdict "$cpu <= 1.3") |"
        echo "| Gateway ÷ nginx throughput, $label | $(ratio_stats "$kind" gateway nginx "$c" 5 100 1) % | — | info |"
    done
    local translated
    translated=$(ratio_median st translated gateway "$c" 10 1 2)
    echo "| CPU per request, translated (OpenAI client, Anthropic-wire upstream) ÷ pass-through, streaming | $(ratio_stats st translated gateway "$c" 10 1 2) × ($(median st translated "$c" 10) vs $(median st gateway "$c" 10) µs) | ≤ 1.5× | $(verdict "$translated <= 1.5") |"
    echo "| CPU per request, translated ÷ pass-through, non-streaming | $(ratio_stats ns translated gateway "$c" 10 1 2) × | — | info |"
    local hit
    for kind in ns st; do
        label=$([[ $kind == ns ]] && echo "non-streaming" || echo "streaming")
        hit=$(ratio_median "$kind" cached gateway "$c" 5 100 1)
        echo "| Cache hits ÷ the gateway's pass-through throughput, $label, $c conns | $(ratio_stats "$kind" cached gateway "$c" 5 100 1) % ($(median "$kind" cached "$c" 5) vs $(median "$kind" gateway "$c" 5) req/s; CPU $(median "$kind" cached "$c" 10) vs $(median "$kind" gateway "$c" 10) µs/req) | ≥ 100% | $(verdict "$hit >= 100") |"
    done
    echo "| Added p50 latency over bare YARP, 1 conn | ${added_yarp} µs | ≤ 50 µs | $(verdict "$added_yarp <= 50") |"
    echo "| Added p50 latency over nginx / over direct, 1 conn | ${added_nginx} µs / ${added_direct} µs | — | info |"
    echo "| Added time to first streamed event over direct (p50) | ${added_ttfb} ms (bare YARP: $(calc "($(median ttfb yarp 1 6) - $(median ttfb direct 1 6)) / 1000" 3) ms) | ≤ 0.3 ms | $(verdict "$added_ttfb <= 0.3") |"
    echo "| Gateway peak RSS (VmHWM) over the load runs | ${rss} MB (bare YARP $(calc "$YARP_HWM_KB / 1024" 0) MB) | ≤ 200 MB | $(verdict "$rss <= 200") |"
}

report_access_log() {
    has_part accesslog || return 0
    local c=$CONNECTIONS quiet_rps log_rps quiet_cpu log_cpu
    quiet_rps=$(median acc gateway "$c" 5); log_rps=$(median acc gateway-log "$c" 5)
    quiet_cpu=$(median acc gateway "$c" 10); log_cpu=$(median acc gateway-log "$c" 10)
    echo
    echo "Access log cost (non-streaming, $c conns, the quiet gateway and one with console + access log on, written to a file; ${ACCESS_LOG_LINES:-?} access-log lines written):"
    echo
    echo "| Gateway | req/s | p50 µs | p99 µs | CPU µs/req |"
    echo "|---|---:|---:|---:|---:|"
    echo "| logging off | $quiet_rps | $(median acc gateway "$c" 6) | $(median acc gateway "$c" 8) | $quiet_cpu |"
    echo "| access log on | $log_rps ($(calc "($log_rps / $quiet_rps - 1) * 100" 1)%) | $(median acc gateway-log "$c" 6) | $(median acc gateway-log "$c" 8) | $log_cpu (+$(calc "$log_cpu - $quiet_cpu" 1)) |"
}

report_soak() {
    has_part soak && [[ -n $SOAK_LEVELS ]] || return 0
    echo
    echo "Concurrent slow streams, each level through a fresh gateway (StreamSoak \`soak\`: ${SOAK_CHUNKS} chunks, one every ${SOAK_CHUNK_DELAY_MS} ms, opened at ${SOAK_RAMP}/s; clients on HTTP/1.1, one connection per stream). Upstream leg **h1**: cleartext HTTP/1.1 to the fake, one socket per stream; **h2tls**: HTTP/2 over TLS through an nginx front, as towards hosted providers:"
    echo
    echo "| Upstream leg | Streams | Completed with [DONE] | Peak open (client) | Peak client / upstream connections at the gateway | Attempts retried inside | Gateway peak RSS | Goal | Result |"
    echo "|---|---:|---:|---:|---:|---:|---:|---|---|"
    # Tabs become \037 first: read collapses runs of a whitespace separator, and skipped rows have empty fields.
    awk -F'\t' '$1 == "soak"' "$RAW" | tr '\t' '\037' \
        | while IFS=$'\037' read -r _ streams leg _ completed peak_open peak_clients hwm failed peak_upstream retried; do
        if [[ $completed == skipped ]]; then
            echo "| $leg | $streams | not run: $retried | | | | | | |"
            continue
        fi
        local mb goal="—" result="info"
        mb=$(calc "$hwm / 1024" 0)
        if ((streams >= 10000)); then
            goal="< 1024 MB, none dropped"
            result=$(verdict "$mb < 1024 && $failed == 0 && $completed == $streams")
        fi
        echo "| $leg | $streams | $completed | $peak_open | $peak_clients / $peak_upstream | $retried | $mb MB | $goal | $result |"
    done
}

# ---- Main -----------------------------------------------------------------------------------------

main() {
    ensure_packages
    raise_fd_limit
    [[ $SKIP_BUILD == 1 ]] || build_all
    start_redis_if_asked

    : >"$RAW"
    if has_part load || has_part accesslog; then
        start_upstream upstream --fast --chunks "$STREAM_CHUNKS"
        URL[direct]=$UPSTREAM_URL
        local fast_upstream=$UPSTREAM_PID
        write_routing "$CONFIG_DIR/routing.yaml" "$UPSTREAM_URL"
        start_gateway gateway "$CONFIG_DIR/routing.yaml"
        PROC[gateway]=$GATEWAY_PID
        URL[gateway]=$GATEWAY_URL
        PROC[translated]=$GATEWAY_PID
        URL[translated]=$GATEWAY_URL
        PROC[cached]=$GATEWAY_PID
        URL[cached]=$GATEWAY_URL
        start_yarp_floor "$UPSTREAM_URL"
        start_nginx "$UPSTREAM_URL"
        local target
        for target in "${TARGETS[@]}"; do
            check_target "$target"
            log "$target: ${URL[$target]}"
        done
        if has_part load; then
            main_rounds
            GATEWAY_HWM_KB=$(status_kb "${PROC[gateway]}" VmHWM)
            YARP_HWM_KB=$(status_kb "${PROC[yarp]}" VmHWM)
        fi
        access_log_rounds
        # Free the cores and the memory for the soak.
        stop_pid "${PROC[nginx]}"
        stop_pid "${PROC[yarp]}"
        stop_pid "${PROC[gateway]}"
        stop_pid "$fast_upstream"
    fi
    soak

    mkdir -p "$RESULTS_DIR"
    report "$RESULTS_DIR/latest.md"
    cp "$RAW" "$RESULTS_DIR/latest.tsv"
    echo
    cat "$RESULTS_DIR/latest.md"
}

main "$@"
