#!/usr/bin/env bash
# tern demo runs the whole case and every message is delivered.
set -euo pipefail
: "${TERN:?}"
out=$("$TERN" demo)
echo "$out"
grep -q "4 messages, every one delivered" <<<"$out" || { echo "FAIL: demo did not deliver" >&2; exit 1; }
[[ $(grep -c "delivered (signed receipts verified)" <<<"$out") -eq 4 ]] || { echo "FAIL: not 4 deliveries" >&2; exit 1; }
echo "it test_demo: ok"
