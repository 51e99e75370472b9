#!/usr/bin/env bash
# Benchmark: what one consistency proof (a witnessing round's work per witness) costs on a large
# audit log: hashing every entry (as before) against the stored subtree hashes.
# Usage: tests/bench/audit-proofs.sh [ENTRIES]   (default 1,000,000; run after scripts/build.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/build/bin"
n=${1:-1000000}
work=$(mktemp -d /tmp/tern-audit-proofs.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$bin/tern" dev-federation "$work/fed" >/dev/null
echo "writing $n audit entries to unhcr's log..." >&2
"$bin/tern-audit-synth" "$work/fed/unhcr/node.conf" "$n"
taskset -c 0 "$bin/tern-audit-proofs" "$work/fed/unhcr/data"
