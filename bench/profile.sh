#!/usr/bin/env bash
# Where a request's CPU goes: runs streamed (or plain) load through the gateway against the fast fake
# upstream and samples the gateway's CPU with Linux perf (cpu-clock; JIT frames resolved through the
# runtime's perf map), then prints where the samples fall: by module (kernel, runtime, JIT code) and
# by method. See bench/README.md ("Profiles").
#
#   bench/profile.sh                      # streamed, OpenAI client -> OpenAI-wire upstream (pass-through)
#   PROFILE_MODE=plain bench/profile.sh   # non-streamed
#   PROFILE_ROUTE=anthropic bench/profile.sh  # OpenAI client -> Anthropic-wire upstream (translated)
#   PROFILE_STATE=redis bench/profile.sh  # every request keyed against a local redis-server (admission in Redis)
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
MODE=${PROFILE_MODE:-stream}
ROUTE=${PROFILE_ROUTE:-gpt-4o-mini}
SECONDS_TO_TRACE=${PROFILE_SECONDS:-15}
CONNECTIONS=${PROFILE_CONNECTIONS:-32}
CHUNKS=${PROFILE_CHUNKS:-20}
TOP=${PROFILE_TOP:-40}
OUT=${PROFILE_OUT:-$BENCH_DIR/results/profile-$MODE-$ROUTE}
TMP=$(mktemp -d -t modelgateway-profile.XXXXXX)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
for tool in wrk perf; do
  command -v $tool >/dev/null || { sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo; $sudo apt-get install -y -qq wrk linux-perf >/dev/null; }
done
[[ ${PROFILE_SKIP_BUILD:-0} == 1 ]] || dotnet build "$REPO_DIR/ModelGateway.sln" -c Release -nologo -clp:ErrorsOnly >/dev/null
mkdir -p "$(dirname "$OUT")"

dotnet "$REPO_DIR/tests/ModelGateway.FakeUpstream/bin/Release/net10.0/ModelGateway.FakeUpstream.dll" --port 0 --fast --chunks "$CHUNKS" >"$TMP/upstream.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do UPSTREAM=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$TMP/upstream.log" || true); [[ -n $UPSTREAM ]] && break; sleep 0.1; done
cat >"$TMP/routing.yaml" <<YAML
providers:
  - { name: fake, kind: openai-compatible, baseUrl: $UPSTREAM/v1 }
  - { name: fake-anthropic, kind: anthropic, baseUrl: $UPSTREAM, apiKey: unused }
deployments:
  - { name: bench@fake, provider: fake, model: gpt-4o-mini, contextWindow: 128000, capabilities: [chat] }
  - { name: bench@anthropic, provider: fake-anthropic, model: claude-sonnet-4-5 }
routes:
  - { name: gpt-4o-mini, targets: [bench@fake] }
  - { name: anthropic, targets: [bench@anthropic] }
YAML
STATE_ARGS=()
if [[ ${PROFILE_STATE:-memory} == redis ]]; then
  REDIS_PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >"$TMP/redis.log" 2>&1 &
  PIDS+=($!)
  STATE_ARGS=(--State:Redis=127.0.0.1:$REDIS_PORT --Auth:Mode=keys --Admin:MasterKey=sk-profile-master)
fi
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 dotnet "$REPO_DIR/src/ModelGateway/bin/Release/net10.0/ModelGateway.dll" --config "$TMP/routing.yaml" \
  --contentRoot "$REPO_DIR/src/ModelGateway/bin/Release/net10.0" --urls "http://127.0.0.1:$PORT" \
  --Observability:ConsoleLog=false --Observability:AccessLog=false --Serilog:MinimumLevel:Default=Warning "${STATE_ARGS[@]}" >"$TMP/gateway.log" 2>&1 &
GATEWAY=$!
PIDS+=($GATEWAY)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/healthz/ready" >/dev/null && break; sleep 0.1; done
export WRK_KEY=""
if [[ ${PROFILE_STATE:-memory} == redis ]]; then
  # A key whose limits the load never reaches: every request is admitted by one Lua call and settled.
  WRK_KEY=$(curl -fsS -X POST "http://127.0.0.1:$PORT/admin/keys" -H "Authorization: Bearer sk-profile-master" -H 'Content-Type: application/json' \
    -d '{"name":"profile","rpm":100000000,"tpm":100000000000,"max_parallel_requests":100000,"budget_daily_usd":1000000000,"budget_monthly_usd":1000000000}' | sed -n 's/.*"key":"\([^"]*\)".*/\1/p')
fi
stream=0; [[ $MODE == stream ]] && stream=1
# Warm-up, so the JIT has tiered up before sampling.
WRK_STREAM=$stream WRK_MODEL=$ROUTE wrk -t2 -c"$CONNECTIONS" -d"${PROFILE_WARMUP:-5}s" -s "$BENCH_DIR/wrk/chat.lua" "http://127.0.0.1:$PORT/v1/chat/completions" >/dev/null
WRK_STREAM=$stream WRK_MODEL=$ROUTE wrk -t2 -c"$CONNECTIONS" -d"$((SECONDS_TO_TRACE + 4))s" -s "$BENCH_DIR/wrk/chat.lua" "http://127.0.0.1:$PORT/v1/chat/completions" >"$TMP/wrk.txt" &
WRK=$!
sleep 2
perf record -q -e cpu-clock -F 1999 -g -p "$GATEWAY" -o "$OUT.perf.data" -- sleep "$SECONDS_TO_TRACE" 2>/dev/null
wait $WRK
grep BENCH "$TMP/wrk.txt" || true
echo "## CPU samples by module"
perf report -i "$OUT.perf.data" --stdio --no-children --sort dso -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -15
echo "## CPU samples by method (self)"
perf report -i "$OUT.perf.data" --stdio --no-children --sort sym -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n "$TOP"
echo "## CPU samples by method (with callees)"
perf report -i "$OUT.perf.data" --stdio --children --sort sym -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n "$TOP"
