#!/usr/bin/env bash
# Measures the gateway against the targets in the README. Pins wsgw to CPU 0 and
# redis-server plus the load tool to CPU 1, as the targets assume.
#
#   bench/run.sh [quick] [fanout] [auth] [idle] [attacks] [acl]
#     quick    shorter windows
#     fanout   1,000 clients on one channel, v1 then legacy, at 20 and 1,000 publishes/s
#     auth     REQUIRE_AUTH=true, a JWT per client with its own `channels` claim, 100
#              distinct channels; and the same clients anonymous, for the ratio
#     idle     5,000 idle connections: memory per connection
#     attacks  100 victims at 1,000 publishes/s, quiet and then under each attack
#              (slow readers with a ping at the head, hostile patterns, idle sockets)
#     acl      the worst a subscription check costs: fresh hostile patterns against the
#              built-in user role and a role with deny patterns (acl-bench, no node)
#   With no section named, all of them run.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target wsgw wsgw-bench acl-bench >/dev/null

DUR=${DURATION:-10}
sections=()
for a in "$@"; do
  case "$a" in
    quick) DUR=4 ;;
    fanout | auth | idle | attacks | acl) sections+=("$a") ;;
    *) echo "unknown section: $a" >&2; exit 2 ;;
  esac
done
[ ${#sections[@]} -eq 0 ] && sections=(fanout auth idle attacks acl)
want() { [[ " ${sections[*]} " == *" $1 "* ]]; }

port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
RPORT=$(port)
GPORT=$(port)
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}" ${GW:-}; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

taskset -c 1 redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$dir" --loglevel warning --client-output-buffer-limit "pubsub 0 0 0" &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

# start_gw [VAR=value]...: a fresh node with the bench's settings plus these.
start_gw() {
  env LOG_LEVEL=warn DEFAULT_ROLE=internal MAX_CONNECTIONS_PER_IP=100000 \
    REDIS_URL="redis://127.0.0.1:$RPORT" BIND_ADDRESS=127.0.0.1 REDIS_WS_GATEWAY_PORT="$GPORT" \
    "$@" taskset -c 0 ./build/bin/wsgw &
  GW=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$GPORT/health" >/dev/null && break; sleep 0.1; done
}
stop_gw() { kill -TERM "$GW"; wait "$GW" || true; }

B="./build/bin/wsgw-bench --gw 127.0.0.1:$GPORT --redis 127.0.0.1:$RPORT --cpu 1 --json"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)"

if want fanout; then
  # Each fan-out scenario runs for v1 clients, then for legacy-dialect clients, back to back.
  for rate in 20 1000; do
    for dialect in v1 legacy; do
      start_gw; $B --gw-pid "$GW" --clients 1000 --rate $rate --warmup 2 --duration "$DUR" \
        --dialect $dialect; stop_gw
    done
  done
fi

if want auth; then
  # 1,000 clients over 100 channels (10 each), 2,000 publishes/s: 20,000 frames/s, as the
  # first fan-out row. First anonymous with one shared role (the ACL verdict is computed
  # once per message), then each client with its own JWT and `channels` claim (once per
  # message and client).
  SECRET=bench-secret-0123456789abcdef0123
  start_gw; $B --gw-pid "$GW" --clients 1000 --channels 100 --rate 2000 --warmup 2 \
    --duration "$DUR"; stop_gw
  start_gw REQUIRE_AUTH=true JWT_SECRET=$SECRET
  $B --gw-pid "$GW" --clients 1000 --channels 100 --rate 2000 --warmup 2 --duration "$DUR" \
    --jwt-secret $SECRET
  stop_gw
fi

if want idle; then
  start_gw; $B --gw-pid "$GW" --clients 5000 --idle --subs 5; stop_gw
fi

if want attacks; then
  # One configuration for the quiet baseline and every attack: anonymous clients of a
  # role with deny patterns (the expensive case for pattern checks), victims on
  # market:tick:b0.
  cat >"$dir/roles.json" <<'EOF'
{"roles": [{"name": "user", "allow": ["market:*", "engine:*", "indicators:*"],
            "deny": ["engine:decision:*", "market:*:internal:*", "*secret*"]}]}
EOF
  # 512-byte payloads and a 15 s warm-up: the slow readers fill their kernel buffers and
  # the node's queues before the window opens.
  A="--clients 100 --rate 1000 --payload 512 --prefix market:tick:b --warmup 15 --duration $DUR"
  for attack in none slow patterns idle; do
    case $attack in
      none) extra="" ;;
      slow) extra="--attack slow --attackers 40" ;;
      patterns) extra="--attack patterns --attackers 20" ;;
      idle) extra="--attack idle --attackers 300" ;;
    esac
    start_gw DEFAULT_ROLE=user ROLES_FILE="$dir/roles.json"
    # shellcheck disable=SC2086
    $B --gw-pid "$GW" $A $extra || true
    stop_gw
  done
fi

if want acl; then
  taskset -c 0 ./build/bin/acl-bench --checks 20000 --json
fi
