#!/usr/bin/env bash
# Witnessing and replay: nodes cosign each other's checkpoints; a log
# rewritten after its peers cosigned verifies alone but is caught next to a
# peer's archive; replay folds the archives into case timelines and finds a
# wrong-role message, travel for a rejected case, and a RECEIVED entry removed;
# an export continues from the previous one with a consistency proof.
source "$(dirname "$0")/lib.sh"

fed_make
for n in broker unhcr iom sweden portugal; do
  c="$WORK/fed/$n/node.conf"; [[ $n == broker ]] && c="$WORK/fed/broker/broker.conf"
  printf '\n[audit]\ncheckpoint_interval = 1\n' >>"$c"
done
for n in broker unhcr iom sweden portugal; do start "$n"; done
for n in unhcr iom sweden portugal; do wait_for 20 "$n to connect" connected "$n"; done
arch() { echo "$WORK/$1${2:-}.tern-audit"; }
export_log() { # NAME [SUFFIX [OPTIONS...]]
  local n=$1 s=${2:-} c
  c="$(conf "$n")"; [[ $n == broker ]] && c="$WORK/fed/broker/broker.conf"
  shift; shift || true
  "$TERN" audit export -c "$c" --out "$(arch "$n" "$s")" "$@" >/dev/null
}

say "a case that goes well: referral, acceptance, travel"
ref=$(referral_json GOOD-1 | "$TERN" send -c "$(conf unhcr)" --to sweden case-referral -)
wait_for 20 "the referral to arrive" state_is unhcr "$ref" delivered
dec=$(decision_json GOOD-1 "$ref" | "$TERN" send -c "$(conf sweden)" --to unhcr,iom acceptance-decision -)
wait_for 20 "the decision to arrive" state_is sweden "$dec" delivered
trv=$(travel_json GOOD-1 "$dec" | "$TERN" send -c "$(conf iom)" --to sweden,unhcr travel-confirmation -)
wait_for 20 "the travel confirmation to arrive" state_is iom "$trv" delivered

say "a wrong role: unhcr sends an acceptance decision (on its own referral: its node judges the workflow, the broker the role)"
wref=$(referral_json WRONG-1 | "$TERN" send -c "$(conf unhcr)" --to sweden case-referral -)
wait_for 20 "the WRONG-1 referral to arrive" state_is unhcr "$wref" delivered
wrong=$(decision_json WRONG-1 "$wref" | "$TERN" send -c "$(conf unhcr)" --to iom acceptance-decision -)
wait_for 20 "the wrong-role message to be refused" state_is unhcr "$wrong" rejected

say "travel for a case the State rejected"
ref2=$(referral_json REJ-1 | "$TERN" send -c "$(conf unhcr)" --to sweden case-referral -)
wait_for 20 "the second referral to arrive" state_is unhcr "$ref2" delivered
rej=$(decision_json REJ-1 "$ref2" REJECTED | "$TERN" send -c "$(conf sweden)" --to unhcr,iom acceptance-decision -)
wait_for 20 "the rejection to arrive" state_is sweden "$rej" delivered
# IOM's own node refuses to send it (decision-not-accepted): put it in its
# outbox as a compromised or older node would, for the recipients to refuse.
travel_json REJ-1 "$rej" >"$WORK/trv2.json"
stop iom
trv2=$("$BIN/tern-forge" "$(conf iom)" "$WORK/fed/iom" travel-confirmation sweden,unhcr "$WORK/trv2.json")
start iom
wait_for 20 "iom to connect again" connected iom
wait_for 20 "the travel confirmation to be refused" state_is iom "$trv2" rejected

say "peers cosign: sweden's log records unhcr's checkpoints"
unhcr_cosigned_by_sweden() {
  export_log unhcr .probe
  local s; s=$("$TERN" audit verify "$(arch unhcr .probe)" 2>&1 | grep -o 'entries 0 to [0-9]*' | grep -o '[0-9]*$')
  # unhcr's newest checkpoint carries sweden's cosignature
  [[ -n "$s" ]] && "$TERN" audit verify "$(arch unhcr .probe)" >/dev/null 2>&1 &&
    grep -qa "tern/tern-dev/sweden" "$(arch unhcr .probe)"
}
wait_for 30 "sweden to cosign unhcr's log" unhcr_cosigned_by_sweden
export_log unhcr .part1
say "more traffic after the first export"
referral_json LATER-1 | "$TERN" send -c "$(conf unhcr)" --to portugal case-referral - >/dev/null
sleep 2.5
for n in unhcr iom sweden portugal broker; do stop "$n"; done
for n in unhcr iom sweden portugal broker; do export_log "$n"; done
export_log unhcr .part2 --previous "$(arch unhcr .part1)"

say "the archives verify clean, with cosignatures"
"$TERN" audit verify "$WORK"/{unhcr,iom,sweden,portugal,broker}.tern-audit >"$WORK/verify.log" ||
  { cat "$WORK/verify.log"; fail "clean archives do not verify"; }
grep "sweden.tern-audit: ok:" "$WORK/verify.log" | grep -q "[1-9][0-9]* cosigned by this log" ||
  fail "sweden's log records no cosignature"

say "every byte of a cosignature line changed in turn is detected"
read -r off len < <(python3 -c 'import sys
b=open(sys.argv[1],"rb").read(); i=b.find("\n\u2014 tern/tern-dev/sweden ".encode())+1
print(i, b.index(b"\n", i)-i)' "$(arch unhcr)")
((off > 0 && len > 40)) || fail "no cosignature by sweden in unhcr's archive"
for ((i = off; i < off + len; i++)); do
  cp "$(arch unhcr)" "$WORK/flip"
  printf "$(printf '\\%03o' $(( ($(od -An -tu1 -j "$i" -N1 "$(arch unhcr)") + 1) % 256 )))" |
    dd of="$WORK/flip" bs=1 seek="$i" conv=notrunc status=none
  if "$TERN" audit verify "$WORK/flip" >/dev/null 2>&1; then fail "byte $i of a cosignature changed unnoticed"; fi
done

say "an export continues the previous one, with a consistency proof"
"$TERN" audit verify "$(arch unhcr .part1)" "$(arch unhcr .part2)" >"$WORK/parts.log" ||
  { cat "$WORK/parts.log"; fail "consecutive exports do not verify"; }
end1=$(grep "unhcr.part1" "$WORK/parts.log" | grep -o 'entries 0 to [0-9]*' | grep -o '[0-9]*$')
grep "unhcr.part2" "$WORK/parts.log" | grep -q "entries $end1 to " ||
  fail "the second export does not start where the first ended ($end1)"
"$TERN" audit export -c "$(conf unhcr)" --from "$(date -u +%F)" --out "$WORK/today.tern-audit" >/dev/null
"$TERN" audit verify "$WORK/today.tern-audit" 2>/dev/null || fail "a --from export does not verify"

say "replay: the good case's full timeline, no finding"
all=("$WORK"/{unhcr,iom,sweden,portugal,broker}.tern-audit)
"$TERN" audit replay "${all[@]}" --case GOOD-1 >"$WORK/good.txt" ||
  { cat "$WORK/good.txt"; fail "replay of a good case has findings"; }
for k in SENT RELAYED RECEIVED RECEIPT_SENT RECEIPT_RECEIVED; do
  grep -q " $k " "$WORK/good.txt" || { cat "$WORK/good.txt"; fail "the timeline lacks $k"; }
done
for m in "$ref" "$dec" "$trv"; do grep -q "$m" "$WORK/good.txt" || fail "the timeline lacks $m"; done

say "replay: a wrong role and travel for a rejected case"
if "$TERN" audit replay "${all[@]}" --json >"$WORK/all.json"; then fail "replay found nothing"; fi
finding_about() { # KIND MSGID FILE
  python3 -c 'import json,sys
d=json.load(open(sys.argv[3]))
sys.exit(0 if any(f["kind"]==sys.argv[1] and f["message_id"]==sys.argv[2] and f["evidence"] for f in d["findings"]) else 1)' "$@"
}
finding_about wrong-role "$wrong" "$WORK/all.json" || fail "no wrong-role finding for $wrong"
finding_about illegal-transition "$trv2" "$WORK/all.json" || fail "no illegal-transition finding for $trv2"
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if any(f["case_id"]=="GOOD-1" for f in d["findings"]) else 1)' "$WORK/all.json"; then
  fail "a finding about the good case"
fi

say "replay: a RECEIVED entry removed from sweden's archive"
"$BIN/tern-archive-edit" "$(arch sweden)" "$WORK/sweden-cut.tern-audit" drop RECEIVED "$ref"
if "$TERN" audit replay "$(arch unhcr)" "$WORK/sweden-cut.tern-audit" "$(arch broker)" --case GOOD-1 --json >"$WORK/cut.json"; then
  fail "replay missed the removed RECEIVED"
fi
finding_about gap "$ref" "$WORK/cut.json" || { cat "$WORK/cut.json"; fail "no gap finding for $ref"; }

say "a log rewritten after its peers cosigned"
"$BIN/tern-archive-edit" "$(arch unhcr)" "$WORK/cut.tmp" drop SENT "$ref"
"$BIN/tern-archive-edit" "$WORK/cut.tmp" "$WORK/unhcr-rewritten.tern-audit" resign "$WORK/fed/unhcr/node.key"
"$TERN" audit verify "$WORK/unhcr-rewritten.tern-audit" 2>/dev/null ||
  fail "the rewritten log should verify on its own (its owner re-signed it)"
if "$TERN" audit verify "$WORK/unhcr-rewritten.tern-audit" "$(arch sweden)" >"$WORK/rewritten.txt" 2>&1; then
  fail "the rewritten log went unnoticed next to sweden's archive"
fi
grep -q "unhcr-rewritten.tern-audit: rewritten: sweden cosigned" "$WORK/rewritten.txt" ||
  { cat "$WORK/rewritten.txt"; fail "no finding names the contradiction"; }
echo "it test_witness: ok"
