#!/usr/bin/env bash
# Tern, RabbitMQ and NATS JetStream side by side on this machine: the same
# 1 KB messages, the same number in flight, the same duration, one after the
# other. Installs RabbitMQ, nats-server and their C clients from Debian, builds
# Tern (build-bench/, RelWithDebInfo), starts private instances of both
# brokers in a temporary directory, and prints a table.
#   Tern:     tern bench (signed, sealed, fsynced at every hop, counted when the
#             recipient's signed receipt is back at the sender)
#   RabbitMQ: persistent messages, durable queue, publisher confirms, manual acks
#   NATS:     JetStream, file storage, async publish with PubAck, explicit acks
#             (JetStream does not fsync each message by default)
# Usage: tests/bench/compare.sh [SECONDS] [IN_FLIGHT]     (default 20 s, 64)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-20}
inflight=${2:-64}
producers=4
((inflight % producers == 0)) || { echo "compare.sh: IN_FLIGHT must be a multiple of $producers" >&2; exit 2; }
build="$root/build-bench"

"$root/scripts/install-deps.sh" --with-compare
echo "compare.sh: building Tern in $build" >&2
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target tern-cli tern-broker tern-node bench-rabbitmq bench-nats >/dev/null

sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
work=$(mktemp -d /tmp/tern-compare.XXXXXX)
rmq_port=$((25000 + RANDOM % 5000))
nats_port=$((rmq_port + 2))
rmq_node="ternbench-$$@localhost"
cleanup() {
  [[ -n "${nats_pid:-}" ]] && kill "$nats_pid" 2>/dev/null || true
  if [[ -n "${rmq_started:-}" ]]; then
    $sudo env RABBITMQ_NODENAME="$rmq_node" rabbitmqctl -n "$rmq_node" stop >/dev/null 2>&1 || true
  fi
  wait 2>/dev/null || true
  $sudo rm -rf "$work"
}
trap cleanup EXIT

echo "compare.sh: starting RabbitMQ on 127.0.0.1:$rmq_port (data in $work/rabbitmq)" >&2
mkdir -p "$work/rabbitmq/conf.d"
chmod 755 "$work" # the server runs as the rabbitmq user
$sudo chown -R rabbitmq:rabbitmq "$work/rabbitmq"
rmq_env=(RABBITMQ_MNESIA_BASE="$work/rabbitmq/mnesia" RABBITMQ_LOG_BASE="$work/rabbitmq/log"
  RABBITMQ_NODENAME=$rmq_node RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  RABBITMQ_NODE_PORT="$rmq_port" RABBITMQ_DIST_PORT="$((rmq_port + 1))"
  RABBITMQ_PID_FILE="$work/rabbitmq/pid" RABBITMQ_ENABLED_PLUGINS_FILE="$work/rabbitmq/plugins"
  RABBITMQ_CONFIG_FILES="$work/rabbitmq/conf.d")
$sudo env "${rmq_env[@]}" setsid rabbitmq-server >"$work/rabbitmq.out" 2>&1 &
rmq_started=1
# await_startup gives up at once while the node is not yet known to epmd.
up=""
for _ in $(seq 60); do
  if $sudo env "${rmq_env[@]}" rabbitmqctl -n "$rmq_node" await_startup --timeout 10 >/dev/null 2>&1; then
    up=1
    break
  fi
  sleep 1
done
[[ -n "$up" ]] || { tail -20 "$work/rabbitmq.out" >&2; echo "compare.sh: RabbitMQ did not start" >&2; exit 1; }

echo "compare.sh: starting nats-server on 127.0.0.1:$nats_port (data in $work/nats)" >&2
mkdir -p "$work/nats"
nats-server -js -sd "$work/nats" -a 127.0.0.1 -p "$nats_port" >"$work/nats.log" 2>&1 &
nats_pid=$!
for _ in $(seq 50); do grep -q "Server is ready" "$work/nats.log" && break; sleep 0.1; done

echo "compare.sh: $secs s each, 1024-byte messages, $inflight in flight" >&2
echo "compare.sh: Tern ($producers producers x window $((inflight / producers)))" >&2
"$build/bin/tern" bench --json --size 1024 --producers "$producers" --window "$((inflight / producers))" \
  --duration "$secs" --warmup 2 >"$work/tern.json"
echo "compare.sh: RabbitMQ" >&2
"$build/bin/bench-rabbitmq" --url "amqp://127.0.0.1:$rmq_port" --size 1024 --window "$inflight" \
  --duration "$secs" --warmup 2 >"$work/rabbitmq.json"
echo "compare.sh: NATS JetStream" >&2
"$build/bin/bench-nats" --url "nats://127.0.0.1:$nats_port" --size 1024 --window "$inflight" \
  --duration "$secs" --warmup 2 >"$work/nats.json"

python3 - "$work/tern.json" "$work/rabbitmq.json" "$work/nats.json" <<'EOF'
import json, sys
rows = [("Tern", json.load(open(sys.argv[1]))),
        ("RabbitMQ 3.10", json.loads(open(sys.argv[2]).read())),
        ("NATS JetStream 2.9", json.loads(open(sys.argv[3]).read()))]
tern = rows[0][1]["throughput"] or 1
print("| system | msg/s | vs Tern | p50 ms | p99 ms | p99.9 ms | max ms | failed |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for name, r in rows:
    l = r["latency_ms"]
    print(f"| {name} | {r['throughput']:,.0f} | {r['throughput'] / tern:.2f}x | {l['p50']:.2f} | "
          f"{l['p99']:.2f} | {l['p99.9']:.2f} | {l['max']:.2f} | {r['failed']} |")
cpu = rows[0][1].get("cpu_percent", {})
print()
print("Tern CPU, % of one core: " + ", ".join(f"{k} {v:.0f}%" for k, v in cpu.items()))
EOF
