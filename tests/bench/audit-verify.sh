#!/usr/bin/env bash
# Benchmark: how fast `tern audit verify` checks a large log, on one core.
# Usage: tests/bench/audit-verify.sh [ENTRIES]   (default 1,000,000; run after scripts/build.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/build/bin"
n=${1:-1000000}
work=$(mktemp -d /tmp/tern-audit-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$bin/tern" dev-federation "$work/fed" >/dev/null
echo "writing $n audit entries to unhcr's log..." >&2
"$bin/tern-audit-synth" "$work/fed/unhcr/node.conf" "$n"
"$bin/tern" audit export -c "$work/fed/unhcr/node.conf" --out "$work/unhcr.tern-audit"
ls -l "$work/unhcr.tern-audit" | awk '{print "archive bytes:", $5}'
taskset -c 0 "$bin/tern" audit verify "$work/unhcr.tern-audit"
