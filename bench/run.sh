#!/usr/bin/env bash
# Measures the gateway against the targets in the README. Pins wsgw to CPU 0 and
# redis-server plus the load tool to CPU 1, as the targets assume.
#
#   bench/run.sh [quick]     quick: shorter windows
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target wsgw wsgw-bench >/dev/null

DUR=${DURATION:-10}
[ "${1:-}" = quick ] && DUR=4
port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
RPORT=$(port)
GPORT=$(port)
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

taskset -c 1 redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$dir" --loglevel warning --client-output-buffer-limit "pubsub 0 0 0" &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

start_gw() {
  LOG_LEVEL=warn DEFAULT_ROLE=internal MAX_CONNECTIONS_PER_IP=100000 REDIS_URL="redis://127.0.0.1:$RPORT" BIND_ADDRESS=127.0.0.1 \
    REDIS_WS_GATEWAY_PORT=$GPORT taskset -c 0 ./build/bin/wsgw &
  GW=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$GPORT/health" >/dev/null && break; sleep 0.1; done
}
stop_gw() { kill -TERM "$GW"; wait "$GW" || true; }

B="./build/bin/wsgw-bench --gw 127.0.0.1:$GPORT --redis 127.0.0.1:$RPORT --cpu 1 --json"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)"

# Each fan-out scenario runs for v1 clients, then for legacy-dialect clients, back to back.
for rate in 20 1000; do
  for dialect in v1 legacy; do
    start_gw; $B --gw-pid "$GW" --clients 1000 --rate $rate --warmup 2 --duration "$DUR" \
      --dialect $dialect; stop_gw
  done
done
start_gw; $B --gw-pid "$GW" --clients 5000 --idle --subs 5; stop_gw
