#!/usr/bin/env bash
# Throughput of the gateway demo with and without outcometer recording, measured
# with wrk (Debian package `wrk`, installed if missing) on loopback:
#   1. builds the gateway demo in release mode;
#   2. runs it twice without its own load (--rate 0), backends answering at once
#      (--latency 0), once recording through the gateway family and once through
#      NoopGatewayMetrics (--no-metrics);
#   3. drives each with `wrk -c $CONNECTIONS -d $DURATION` POSTing chat completions
#      (four models in turn, a fifth of them streamed);
#   4. prints requests/s of both and the overhead ratio.
# Not a test: the figures depend on the machine. docs/performance.md records a run.
# Usage: bash scripts/gateway-throughput.sh   (CONNECTIONS=32 DURATION=10s THREADS=2 by default)
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS="${CONNECTIONS:-32}"
DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
work="$(mktemp -d)"
gateway_pid=""
cleanup() {
  if [ -n "$gateway_pid" ]; then kill -TERM "$gateway_pid" 2>/dev/null || true; wait "$gateway_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"; else return 1; fi
}

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package wrk)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get install -y -qq --no-install-recommends wrk >/dev/null ||
    { as_root apt-get update -qq && as_root apt-get install -y -qq --no-install-recommends wrk >/dev/null; } ||
    { echo "error: could not install wrk (apt-get install wrk needs root or passwordless sudo)" >&2; exit 1; }
fi

cargo build --release --locked -q -p outcometer-examples --bin gateway
binary="target/release/gateway"

cat >"$work/chat.lua" <<'LUA'
-- POSTs OpenAI chat completions, four models in turn, every fifth streamed.
local models = {"gpt-4.1", "gpt-4.1-mini", "llama-3.1-70b", "mistral-large"}
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
request = function()
  n = n + 1
  local stream = (n % 5 == 0) and "true" or "false"
  local body = string.format(
    '{"model":"%s","stream":%s,"messages":[{"role":"user","content":"Say hello in one word"}]}',
    models[(n % #models) + 1], stream)
  return wrk.format(nil, "/v1/chat/completions", nil, body)
end
LUA

# Runs the gateway with extra flags "$@", drives it with wrk, prints requests/s.
measure() {
  local log="$work/gateway.log"
  OTEL_EXPORTER_PROMETHEUS_HOST=127.0.0.1 OTEL_EXPORTER_PROMETHEUS_PORT=0 \
    "$binary" --rate 0 --latency 0 --duration 3600 "$@" >"$log" 2>&1 &
  gateway_pid=$!
  local api=""
  for _ in $(seq 100); do
    api="$(grep -o 'API http://[0-9.:]*' "$log" | head -1 | cut -d' ' -f2)" || true
    [ -n "$api" ] && break
    sleep 0.1
  done
  [ -n "$api" ] || { echo "error: the gateway did not start:" >&2; cat "$log" >&2; exit 1; }
  # A short warm-up, so both runs start with open connections and admitted names.
  wrk -t "$THREADS" -c "$CONNECTIONS" -d 2s -s "$work/chat.lua" "$api" >/dev/null
  wrk -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" -s "$work/chat.lua" "$api" >"$work/wrk.out"
  kill -TERM "$gateway_pid"
  wait "$gateway_pid" || true
  gateway_pid=""
  cat "$work/wrk.out" >&2
  awk '/^Requests\/sec:/ {print $2}' "$work/wrk.out"
}

echo "wrk -t $THREADS -c $CONNECTIONS -d $DURATION on $(nproc) CPUs, gateway --rate 0 --latency 0" >&2
echo "--- with metrics (GatewayRecorder)" >&2
with="$(measure)"
echo "--- without (--no-metrics: NoopGatewayMetrics)" >&2
without="$(measure --no-metrics)"
awk -v with="$with" -v without="$without" 'BEGIN {
  printf "requests/s with metrics:    %.0f\n", with
  printf "requests/s without metrics: %.0f\n", without
  printf "with / without:             %.3f (%.1f %% overhead)\n", with / without, 100 * (1 - with / without)
}'
