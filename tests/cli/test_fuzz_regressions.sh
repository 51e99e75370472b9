#!/usr/bin/env bash
# Inputs the fuzzers once crashed on (tests/fuzz/regressions/<target>/), fed
# to the tools an auditor runs: each is refused with findings, never a crash.
set -euo pipefail

: "${TERN:?TERN must name the tern binary}"
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

n=0
for f in "$here"/fuzz/regressions/archive/*; do
	set +e
	"$TERN" audit verify "$f" >"$work/out" 2>&1
	rc=$?
	set -e
	# 1 = findings; anything above 128 is a signal.
	[[ $rc -eq 1 ]] || fail "$(basename "$f"): audit verify exited $rc (expected 1 with findings)"
	[[ -s "$work/out" ]] || fail "$(basename "$f"): no finding printed"
	# A sanitizer that halts exits 1 too: its report is what tells.
	if grep -E 'runtime error|Sanitizer' "$work/out" >&2; then
		fail "$(basename "$f"): the sanitizer reported the above"
	fi
	n=$((n + 1))
done
((n >= 1)) || fail "no archive regression inputs found"
echo "cli test_fuzz_regressions: ok ($n archive inputs)"
