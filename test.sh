#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine with only the .NET SDK:
# installs the servers and tools the tests start themselves (Redis, Prometheus, Chromium, nginx, kubectl),
# builds, runs every test.
set -euo pipefail
cd "$(dirname "$0")"

packages=(redis-server redis-tools prometheus chromium nginx)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
# kubectl renders the Kustomize overlays; the machines ship one, a bare Debian gets Debian's.
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing ${missing[*]} (Debian packages the tests start on loopback ports)..."
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The packages would start system services; the tests run their own instances on random ports.
  for service in redis-server prometheus nginx; do
    $sudo_cmd systemctl stop "$service" >/dev/null 2>&1 || $sudo_cmd service "$service" stop >/dev/null 2>&1 || true
  done
fi

# The vendors' official JavaScript clients that prove the fake upstream's Gemini, Vertex AI and Bedrock wires.
node_dir=tests/ModelGateway.Tests/FakeUpstream/node
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "Installing nodejs and npm (Debian packages the fake upstream's client tests run)..."
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
# Some of these packages declare a newer Node than the machine's 20; they run on it.
(cd "$node_dir" && npm ci --engine-strict=false --no-audit --no-fund --loglevel=error)
# Claude Code (a native binary in its npm package), run headless through the gateway by ClaudeCodeTests.
(cd tests/ModelGateway.Tests/Protocols/Anthropic/claude-code && npm ci --engine-strict=false --no-audit --no-fund --loglevel=error)
# The Codex CLI (its platform binary comes in an npm package) that runs one headless turn through the Responses API.
(cd tests/ModelGateway.Tests/Protocols/Responses/codex && npm ci --engine-strict=false --no-audit --no-fund --loglevel=error)

results="$(pwd)/TestResults"
rm -rf "$results"
dotnet build ModelGateway.sln -c Release -warnaserror -nologo -clp:ErrorsOnly
status=0
dotnet test ModelGateway.sln -c Release --no-build --nologo \
  --blame-hang-timeout 5m \
  --logger "trx;LogFileName=results.trx" --logger "console;verbosity=normal" \
  --results-directory "$results" || status=$?

passed=0; failed=0
for trx in "$results"/*.trx "$results"/*/*.trx; do
  [ -f "$trx" ] || continue
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -1)
  p=$(echo "$counters" | sed -n 's/.* passed="\([0-9]*\)".*/\1/p')
  f=$(echo "$counters" | sed -n 's/.* failed="\([0-9]*\)".*/\1/p')
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
done
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "$passed passed, $failed failed"
exit "$status"
