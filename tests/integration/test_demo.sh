#!/usr/bin/env bash
# tern demo walks the whole lifecycle of a case (referral, information
# request and response, acceptance, health assessment, orientation, travel
# booked, departed, arrived, handover): every message is delivered with its
# receipts, and Sweden's view of the case at the end is handed-over, with
# the ten messages in their order.
set -euo pipefail
: "${TERN:?}"
out=$("$TERN" demo)
echo "$out"
fail() { echo "FAIL: $*" >&2; exit 1; }
grep -q "10 messages, every one delivered" <<<"$out" || fail "demo did not deliver"
[[ $(grep -c "delivered (signed receipts verified)" <<<"$out") -eq 10 ]] || fail "not 10 deliveries"
grep -qE "^thread     referral [0-9a-f-]{36} to sweden: handed-over$" <<<"$out" ||
  fail "the case view does not end handed-over"
want="case-referral information-request information-response acceptance-decision health-assessment pre-departure-orientation travel-confirmation travel-confirmation travel-confirmation arrival-handover"
got=$(sed -n '/^timeline$/,/^held/p' <<<"$out" | awk '$4 ~ /^(sent|received)$/ {print $5}' | tr '\n' ' ' | sed 's/ $//')
[[ "$got" == "$want" ]] || fail "the case view's timeline is: $got"
echo "it test_demo: ok"
