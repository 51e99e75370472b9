#!/usr/bin/env bash
# Several States on one case and messages out of order, through real
# processes (from a review's attack; each part failed before its fix):
#   1. unhcr withdraws R1 while sweden's node, cut off, has already accepted
#      it: IOM takes the withdrawal, then the acceptance. IOM's trace stays
#      "withdrawn" and refuses the acceptance (wrong-state), as unhcr does.
#      Before, it followed the acceptance out of the final state, and IOM's
#      node let it book travel for the withdrawn case.
#   2. unhcr's node refuses to send a case update on R2 to IOM alone
#      (state-not-told: the State is told of every update). One an older or
#      hostile node sends all the same reaches IOM, then sweden accepts R2:
#      IOM takes the acceptance (the State takes the place the update left
#      open). Before, IOM's trace took {unhcr, iom} as the thread's parties
#      and refused it (reference-not-shared).
#   3. one case referred to two States: the referrer's timeline names each
#      line's referral (before, the two decisions read alike).
#   4. the case views (CLI and HTTP) and the logs hold ids and states only.
source "$(dirname "$0")/lib.sh"

fed_make
for n in broker unhcr sweden portugal iom; do start "$n"; done
for n in unhcr sweden portugal iom; do wait_for 20 "$n to connect" connected "$n"; done

# bad WHAT: a failed check, reported at the end (the later parts still run).
BAD=()
bad() { echo "FAULT: $*" >&2; BAD+=("$*"); }
refused_by() { "$TERN" status -c "$(conf "$1")" "$2" | grep -qE "^  $3 +rejected .*$4"; }
delivered_to() { "$TERN" status -c "$(conf "$1")" "$2" | grep -qE "^  $3 +delivered"; }
thread_state() { # NODE CASE REFERRAL: the thread's state in NODE's case view
  "$TERN" case show -c "$(conf "$1")" --json "$2" |
    python3 -c 'import json,sys; c=json.load(sys.stdin)
print([t["state"] for t in c["threads"] if t["referral_id"]==sys.argv[1]][0])' "$3"
}

say "1. withdrawal and acceptance cross: IOM gets the withdrawal first"
referral_json RACE-1 >"$WORK/r1.json"
r1=$("$TERN" send -c "$(conf unhcr)" --to sweden --wait 20 case-referral "$WORK/r1.json" | awk '{print $1}')
[[ $r1 =~ ^[0-9a-f-]{36}$ ]] || fail "R1 was not delivered"
# sweden accepts; its node is cut off before the decision leaves (forged into
# the outbox of the stopped node: the decision it made before the withdrawal).
stop sweden
decision_json RACE-1 "$r1" >"$WORK/d1.json"
d1=$("$BIN/tern-forge" "$(conf sweden)" "$WORK/fed/sweden" acceptance-decision unhcr,iom "$WORK/d1.json")
cat >"$WORK/w1.json" <<J
{"caseId": "RACE-1", "referralId": "$r1", "kind": "WITHDRAWN", "reason": "Another durable solution."}
J
w1=$("$TERN" send -c "$(conf unhcr)" --to sweden,iom case-update "$WORK/w1.json")
wait_for 20 "IOM to take the withdrawal" delivered_to unhcr "$w1" iom
[[ $(thread_state iom RACE-1 "$r1") == withdrawn ]] || { "$TERN" case show -c "$(conf iom)" --json RACE-1 >&2; fail "IOM's trace is not withdrawn"; }
start sweden
wait_for 20 "sweden to connect again" connected sweden
wait_for 20 "unhcr to refuse the acceptance of a withdrawn case" refused_by sweden "$d1" unhcr wrong-state
wait_for 20 "IOM to judge the acceptance" eval '"$TERN" status -c "$(conf sweden)" "$d1" | grep -qE "^  iom +(delivered|rejected)"'
wait_for 20 "sweden to take the withdrawal" delivered_to unhcr "$w1" sweden
for n in unhcr sweden iom; do say "   $n: R1 $(thread_state "$n" RACE-1 "$r1")"; done
st=$(thread_state iom RACE-1 "$r1")
[[ $st == withdrawn ]] || bad "IOM's trace of the withdrawn case R1 is '$st' (unhcr and sweden: withdrawn)"
refused_by sweden "$d1" iom wrong-state || bad "IOM took the acceptance of the withdrawn case R1"

say "2. a case update to IOM alone: refused at unhcr's node; forged, sweden still accepts"
referral_json RACE-2 >"$WORK/r2.json"
r2=$("$TERN" send -c "$(conf unhcr)" --to sweden --wait 20 case-referral "$WORK/r2.json" | awk '{print $1}')
cat >"$WORK/u2.json" <<J
{"caseId": "RACE-2", "referralId": "$r2", "kind": "PRIORITY_CHANGED", "priority": "URGENT"}
J
out=$("$TERN" send -c "$(conf unhcr)" --to iom case-update "$WORK/u2.json" 2>&1) &&
  bad "unhcr's node sent a case update to IOM alone: $out"
grep -q state-not-told <<<"$out" || bad "the refusal of an update to IOM alone does not say state-not-told: $out"
# As an older node (or a hostile one) sends it: forged into the stopped node's outbox.
stop unhcr
u2=$("$BIN/tern-forge" "$(conf unhcr)" "$WORK/fed/unhcr" case-update iom "$WORK/u2.json")
start unhcr
wait_for 20 "unhcr to connect again" connected unhcr
wait_for 20 "IOM to take the update" delivered_to unhcr "$u2" iom
decision_json RACE-2 "$r2" >"$WORK/d2.json"
d2=$("$TERN" send -c "$(conf sweden)" --to unhcr,iom acceptance-decision "$WORK/d2.json")
wait_for 20 "unhcr to take sweden's acceptance" delivered_to sweden "$d2" unhcr
wait_for 20 "IOM to judge sweden's acceptance" eval '"$TERN" status -c "$(conf sweden)" "$d2" | grep -qE "^  iom +(delivered|rejected)"'
"$TERN" status -c "$(conf sweden)" "$d2" | sed 's/^/   /'
delivered_to sweden "$d2" iom || bad "IOM refused the acceptance of the State R2 was referred to"

say "3. one case referred to sweden and to portugal: unhcr's timeline names each line's referral"
referral_json RACE-3 >"$WORK/r3.json"
r3s=$("$TERN" send -c "$(conf unhcr)" --to sweden --wait 20 case-referral "$WORK/r3.json" | awk '{print $1}')
r3p=$("$TERN" send -c "$(conf unhcr)" --to portugal --wait 20 case-referral "$WORK/r3.json" | awk '{print $1}')
[[ $r3s =~ ^[0-9a-f-]{36}$ && $r3p =~ ^[0-9a-f-]{36}$ ]] || fail "the referrals of RACE-3 were not delivered"
decision_json RACE-3 "$r3s" >"$WORK/d3s.json"
decision_json RACE-3 "$r3p" >"$WORK/d3p.json"
d3s=$("$TERN" send -c "$(conf sweden)" --to unhcr,iom --wait 20 acceptance-decision "$WORK/d3s.json" | awk '{print $1}')
d3p=$("$TERN" send -c "$(conf portugal)" --to unhcr,iom --wait 20 acceptance-decision "$WORK/d3p.json" | awk '{print $1}')
[[ $d3s =~ ^[0-9a-f-]{36}$ && $d3p =~ ^[0-9a-f-]{36}$ ]] || fail "the decisions on RACE-3 were not delivered"
"$TERN" case show -c "$(conf unhcr)" RACE-3 | tee "$WORK/case.out" | sed 's/^/   /'
grep -qE "received +acceptance-decision .*$d3s +from sweden: accepted +\(referral $r3s\)$" "$WORK/case.out" &&
  grep -qE "received +acceptance-decision .*$d3p +from portugal: accepted +\(referral $r3p\)$" "$WORK/case.out" ||
  bad "unhcr's timeline of RACE-3 does not name each decision's referral"

say "4. what the views and logs show"
"$TERN" case show -c "$(conf iom)" --json RACE-1 >"$WORK/v-iom.json"
"$TERN" case show -c "$(conf unhcr)" --json RACE-1 >"$WORK/v-unhcr.json"
[[ $(hreq case GET $((PORT + 13)) /v1/cases/RACE-1 "$WORK/fed/unhcr/http.token") == 200 ]] || fail "GET /v1/cases/RACE-1"
for f in "$WORK"/v-*.json "$WORK/case.out" "$WORK"/*.log; do
  if grep -qE "AMM-26C00417-0|Samira|givenName|familyName" "$f"; then
    bad "$(basename "$f") holds a person id or a name"
  fi
done
http_check
((${#BAD[@]} == 0)) || fail "${#BAD[@]} fault(s): ${BAD[*]}"
echo "it test_workflow_races: ok"
