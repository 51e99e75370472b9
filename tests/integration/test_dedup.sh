#!/usr/bin/env bash
# De-duplication is bound to the authenticated sender, and a refusal never
# marks a message id as seen (finding 4 of the edge review):
# - iom holds unhcr's validly signed envelope and submits it first: refused
#   forged-sender; unhcr then submits it: accepted (it used to be refused
#   forged-sender for good), and sweden holds it once;
# - iom replays the envelope unhcr already delivered: refused forged-sender
#   (it used to be answered "accepted", logged as accepted from iom);
# - iom signs an envelope of its own that reuses unhcr's message id: refused
#   duplicate-id; unhcr's resubmission is still answered "accepted", no copy.
# Each refusal is logged and audited at the broker.
source "$(dirname "$0")/lib.sh"
BCONF="$WORK/fed/broker/broker.conf"
fed_make
# The bad peers speak with unhcr's and iom's keys: their own nodes stay down.
for n in broker sweden; do start "$n"; done
wait_for 20 "sweden to connect" connected sweden
bp() { "$BIN/tern-badpeer" "$BCONF" "$WORK/fed/$1" "${@:2}"; }
expect() { # WHO CASE FILE PATTERN
  local out
  out=$(bp "$1" "$2" "$3" || true)
  say "$1 $2: $out"
  [[ $out =~ $4 ]] || fail "$1 $2: got '$out', wanted /$4/"
}

id=$(bp unhcr envelope "$WORK/unhcr.env")
[[ $id =~ ^[0-9a-f-]{36}$ ]] || fail "no envelope made"

say "iom submits unhcr's envelope before unhcr does"
expect iom submit "$WORK/unhcr.env" '^forged-sender: '
say "unhcr submits its own envelope: the refusal of iom's copy must not stick to the id"
expect unhcr submit "$WORK/unhcr.env" '^accepted: '
held() { grep -q "received $id case-referral from unhcr" "$WORK/sweden.log"; }
wait_for 20 "sweden to receive $id" held

say "iom replays the envelope unhcr delivered"
expect iom submit "$WORK/unhcr.env" '^forged-sender: '
say "iom reuses unhcr's message id in an envelope of its own"
expect iom reuse "$WORK/unhcr.env" '^duplicate-id: '
say "unhcr's resubmission gets the same answer, and no second copy"
expect unhcr submit "$WORK/unhcr.env" '^accepted: '
sleep 1
[[ $(grep -c "received $id " "$WORK/sweden.log") -eq 1 ]] || fail "sweden does not hold $id exactly once"
grep -q "accepted $id .* from iom" "$WORK/broker.log" && fail "the broker logged $id as accepted from iom"
grep -q "accepted $id .* from unhcr" "$WORK/broker.log" || fail "the broker did not log $id as accepted from unhcr"
[[ $(grep -c "refused $id from iom: forged-sender" "$WORK/broker.log") -eq 2 ]] ||
  fail "the broker did not log both forged-sender refusals"
grep -q "refused $id from iom: duplicate-id" "$WORK/broker.log" || fail "no duplicate-id refusal logged"

say "each refusal is in the broker's audit log"
stop broker # a clean stop signs the log's head, so the export covers every entry
"$TERN" audit export -c "$BCONF" --out "$WORK/broker.tern-audit" >/dev/null
"$TERN" audit replay "$WORK/broker.tern-audit" --json >"$WORK/replay.json" || true
for r in forged-sender duplicate-id; do
  grep -qa "$r" "$WORK/broker.tern-audit" || fail "no $r refusal in the broker's audit log"
done
"$TERN" audit verify "$WORK/broker.tern-audit" >/dev/null 2>&1 || fail "the broker's audit log does not verify"
say "ok"
