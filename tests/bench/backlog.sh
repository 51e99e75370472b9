#!/usr/bin/env bash
# Throughput with and without a backlog at the broker, and the broker's
# restart after kill -9 with the backlog queued. portugal's node stays down
# while N messages queue for it; tern bench measures unhcr -> sweden before and
# after; then the broker is killed and restarted.
# Usage: tests/bench/backlog.sh [N] [BUILD_DIR]     (default 100000, build)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
n=${1:-100000}
bin=${2:-$root/build}/bin
work=$(mktemp -d /tmp/tern-backlog.XXXXXX)
port=$((30000 + RANDOM % 5000))
pids=()
cleanup() { for p in "${pids[@]}" "${broker:-}"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
say() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
info() { "$bin/tern" info -c "$work/fed/$1/node.conf" --json | tr -d ' \n' | grep -o "\"$2\":[0-9]*" | cut -d: -f2; }
anon_kb() { awk '/^RssAnon:/ {print $2}' "/proc/$broker/status"; }
start_broker() { "$bin/tern-broker" -c "$work/fed/broker/broker.conf" >>"$work/broker.log" 2>&1 & broker=$!; }

"$bin/tern" dev-federation "$work/fed" --base-port "$port" >/dev/null
# As tern bench does: the broker's per-node rate limit (2,000 submissions a
# second by default) is a fairness policy, and left in place it is what
# queueing the backlog would measure (10 M at 2,000/s: 83 minutes).
printf '\n[limits]\npeer_rate = 1000000\npeer_burst = 1000000\n' >>"$work/fed/broker/broker.conf"
start_broker
for nd in unhcr sweden; do "$bin/tern-node" -c "$work/fed/$nd/node.conf" >>"$work/$nd.log" 2>&1 & pids+=($!); done
until "$bin/tern" info -c "$work/fed/unhcr/node.conf" --json 2>/dev/null | grep -q '"connected": true'; do sleep 0.1; done

say "empty queues: tern bench unhcr -> sweden"
"$bin/tern" bench -c "$work/fed/unhcr/node.conf" --to sweden --producers 8 --window 24 --duration 15 --json >"$work/empty.json"
mem0=$(anon_kb)

say "queueing $n messages for portugal (its node is down), 4 senders"
t0=$(date +%s.%N)
for i in 1 2 3 4; do
  "$bin/tern-flood" "$work/fed/unhcr/data/api.sock" unhcr portugal "$((n / 4))" "BACKLOG$i" 2>/dev/null & pids+=($!)
done
# Progress, and the broker's memory as the backlog grows (bounded or not).
peak=0 shown=$SECONDS
while :; do
  q=$(info unhcr at-broker); m=$(anon_kb)
  if ((m > peak)); then peak=$m; fi
  if [[ "$q" -ge "$n" ]]; then break; fi
  if ((SECONDS - shown >= 60)); then shown=$SECONDS; say "  $q queued; broker anonymous memory $m kB"; fi
  sleep 1
done
wait "${pids[@]:2}"
pids=("${pids[@]:0:2}")
t1=$(date +%s.%N)
mem1=$(anon_kb)
store_kb=$(du -sk "$work/fed/broker/data" | cut -f1)
say "queued in $(awk "BEGIN {print $t1 - $t0}") s; broker store ${store_kb} kB"

say "with the backlog: tern bench unhcr -> sweden"
"$bin/tern" bench -c "$work/fed/unhcr/node.conf" --to sweden --producers 8 --window 24 --duration 15 --json >"$work/backlog.json"
mem2=$(anon_kb)

say "kill -9 the broker; restart"
kill -9 "$broker"; wait "$broker" 2>/dev/null || true
t2=$(date +%s.%N)
start_broker
until "$bin/tern" queues -c "$work/fed/broker/broker.conf" --json 2>/dev/null | grep -q '"source": "daemon"'; do sleep 0.01; done
t3=$(date +%s.%N)
until "$bin/tern" info -c "$work/fed/unhcr/node.conf" --json 2>/dev/null | grep -q '"connected": true'; do sleep 0.01; done
t4=$(date +%s.%N)

python3 - "$work/empty.json" "$work/backlog.json" <<EOF
import json, sys
e, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
print(f"backlog: $n messages queued for a stopped node (broker store ${store_kb} kB)")
print(f"  throughput unhcr->sweden, empty queues: {e['throughput']:,.0f} msg/s (p99 {e['latency_ms']['p99']:.1f} ms)")
print(f"  throughput with the backlog:           {b['throughput']:,.0f} msg/s (p99 {b['latency_ms']['p99']:.1f} ms), {100 * (b['throughput'] / e['throughput'] - 1):+.1f}%")
print(f"  queueing took {$t1 - $t0:.0f} s ({$n / ($t1 - $t0):,.0f} msg/s)")
print(f"  broker anonymous memory: {$mem0} kB empty, {$mem1} kB with the backlog (peak while queueing {$peak} kB), {$mem2} kB after the second run")
print(f"  restart after kill -9: control socket answers in {$t3 - $t2:.3f} s, unhcr reconnected in {$t4 - $t2:.3f} s")
EOF
