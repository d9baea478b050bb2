#!/usr/bin/env bash
# Runs the gateway: installs what is missing, builds, starts a private redis-server on
# loopback when REDIS_URL is not set, starts wsgw on port 8889 (REDIS_WS_GATEWAY_PORT),
# and stops everything it started on Ctrl-C. Every wsgw setting can be passed through the
# environment or as flags after the script name (see build/bin/wsgw --help).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target wsgw

pids=()
cleanup() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup INT TERM EXIT

if [ -z "${REDIS_URL:-}" ]; then
  port=${REDIS_PORT:-6390}
  dir=$(mktemp -d)
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
    --loglevel warning &
  pids+=($!)
  export REDIS_URL="redis://127.0.0.1:$port"
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  echo "run: private redis-server on $REDIS_URL" >&2
fi

export REDIS_WS_GATEWAY_PORT=${REDIS_WS_GATEWAY_PORT:-8889}
echo "run: wsgw on port $REDIS_WS_GATEWAY_PORT (ws://localhost:$REDIS_WS_GATEWAY_PORT/ws)" >&2
./build/bin/wsgw "$@" &
pids+=($!)
wait "${pids[-1]}"
