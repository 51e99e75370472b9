#!/usr/bin/env bash
# What the disk's syncs cost Tern on this machine: `tern bench` run as usual,
# then under eatmydata (Debian's libeatmydata: fsync, fdatasync and O_DSYNC
# made no-ops for the three daemons), alternated, at three loads:
#   full   --producers 8 --window 24           (192 in flight, closed loop)
#   one    --producers 1 --window 1            (the latency floor)
#   half   --producers 8 --window 24 --rate R  (open loop at about half the maximum)
# The runs without syncs are a bound for measurement only, never a way to run
# Tern: they bound what any change to how commits wait (pipelined commits, a
# write thread) could give while every hop still syncs before it answers.
# Installs eatmydata with the comparison's packages; builds Tern in
# build-bench/ (RelWithDebInfo), as compare.sh does.
# Usage: tests/bench/syncbound.sh [ROUNDS] [SECONDS] [HALF_RATE]
#        (default 3 rounds, 15 s a run, 3850 msg/s)
set -euo pipefail
case "${1:-}" in
-h | --help)
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
  ;;
esac
root=$(cd "$(dirname "$0")/../.." && pwd)
rounds=${1:-3}
secs=${2:-15}
half=${3:-3850}
build="$root/build-bench"

"$root/scripts/install-deps.sh" --with-compare
echo "syncbound.sh: building Tern in $build" >&2
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target tern-cli tern-broker tern-node >/dev/null
tern="$build/bin/tern"

# One run: prints "msg/s p50 p99 cpu_us" from tern bench's JSON.
run() {
  "$@" --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
l = d["latency_ms"]
print("%.0f %.2f %.2f %.0f" % (d["throughput"], l["p50"], l["p99"], d["cpu_us_per_message"]))'
}

out=$(mktemp)
trap 'rm -f "$out"' EXIT
for ((i = 1; i <= rounds; i++)); do
  for how in sync nosync; do
    pre=()
    [[ $how == nosync ]] && pre=(eatmydata)
    for load in full one half; do
      case $load in
      full) args=(--producers 8 --window 24 --duration "$secs") ;;
      one) args=(--producers 1 --window 1 --duration "$secs") ;;
      half) args=(--producers 8 --window 24 --duration "$secs" --rate "$half") ;;
      esac
      r=$(run "${pre[@]}" "$tern" bench "${args[@]}")
      echo "round $i, $how, $load: $r" >&2
      echo "$how $load $r" >>"$out"
    done
  done
done

python3 - "$out" <<'EOF'
import sys
rows = {}
for line in open(sys.argv[1]):
    how, load, tput, p50, p99, cpu = line.split()
    rows.setdefault((how, load), []).append((float(tput), float(p50), float(p99), float(cpu)))
def rng(vals, fmt):
    return (fmt % min(vals)) if min(vals) == max(vals) else (fmt + "-" + fmt) % (min(vals), max(vals))
print("| load | syncs | msg/s | p50 ms | p99 ms | CPU per message |")
print("|---|---|---:|---:|---:|---:|")
for load in ("full", "one", "half"):
    for how in ("sync", "nosync"):
        v = rows.get((how, load))
        if not v:
            continue
        print("| %s | %s | %s | %s | %s | %s µs |" % (
            load, "each hop" if how == "sync" else "none (eatmydata)",
            rng([x[0] for x in v], "%.0f"), rng([x[1] for x in v], "%.2f"),
            rng([x[2] for x in v], "%.2f"), rng([x[3] for x in v], "%.0f")))
EOF
