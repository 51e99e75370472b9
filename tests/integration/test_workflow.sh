#!/usr/bin/env bash
# The case workflow at every hop (docs/messages.md, "The workflow"), through
# real processes, for each case a review found delivered before the table:
#   - referrals to IOM (movement) and from unhcr to itself: the sending node
#     refuses at once; forged into the outbox, the broker refuses them
#     (wrong-recipient-role);
#   - sweden decides on a case unhcr referred to portugal: unhcr's negative
#     receipt says reference-not-shared, while IOM (not a party to the
#     referral) takes it;
#   - a decision naming a person who is not in the referral: sweden's node
#     refuses the send; forged, unhcr refuses it (unknown-member);
#   - a travel confirmation citing a decision that exists nowhere: sweden and
#     unhcr refuse it (unknown-decision);
#   - a travel confirmation citing D1 after D2 rejected the case: IOM's node
#     refuses the send; forged, sweden and unhcr refuse it (superseded).
# Then the way it should go, referral -> decision -> travel booked, departed,
# arrived, is delivered everywhere; a departure after arrival is refused by
# the recipients.
source "$(dirname "$0")/lib.sh"

fed_make
for n in broker unhcr sweden portugal iom; do start "$n"; done
for n in unhcr sweden portugal iom; do wait_for 20 "$n to connect" connected "$n"; done

# refused_by SENDER ID NODE CODE: NODE's receipt for ID (at SENDER) is
# "rejected" with CODE.
refused_by() {
  "$TERN" status -c "$(conf "$1")" "$2" | grep -qE "^  $3 +rejected .*$4"
}
# send_refused NODE CODE ARGS...: `tern send` from NODE fails naming CODE.
send_refused() {
  local node=$1 code=$2 out rc=0
  shift 2
  out=$("$TERN" send -c "$(conf "$node")" "$@" 2>&1) || rc=$?
  [[ $rc -ne 0 ]] || fail "$node's node took a send it should refuse with $code: $out"
  grep -q -- "$code" <<<"$out" || fail "$node's refusal does not name $code: $out"
}
# forge VAR NODE TYPE TO BODY: the envelope into NODE's outbox (NODE stopped
# and started again around it, in this shell: not in a $(...)); its id in VAR.
forge() {
  local id
  stop "$2"
  id=$("$BIN/tern-forge" "$(conf "$2")" "$WORK/fed/$2" "$3" "$4" "$5") || fail "tern-forge failed"
  start "$2"
  wait_for 20 "$2 to connect again" connected "$2"
  printf -v "$1" '%s' "$id"
}

say "the roles that may receive: a referral to IOM or to unhcr itself"
referral_json WF-1 >"$WORK/r.json"
send_refused unhcr wrong-recipient-role --to iom case-referral "$WORK/r.json"
send_refused unhcr wrong-recipient-role --to sweden,unhcr case-referral "$WORK/r.json"
forge to_iom unhcr case-referral iom "$WORK/r.json"
forge to_self unhcr case-referral unhcr "$WORK/r.json"
wait_for 20 "the forged referral to IOM to be refused" state_is unhcr "$to_iom" rejected
wait_for 20 "the forged referral to unhcr to be refused" state_is unhcr "$to_self" rejected
"$TERN" status -c "$(conf unhcr)" "$to_iom" | grep -q "wrong-recipient-role" ||
  fail "the broker's refusal of a referral to IOM does not say wrong-recipient-role"
"$TERN" status -c "$(conf unhcr)" "$to_self" | grep -q "wrong-recipient-role" ||
  fail "the broker's refusal of a referral to unhcr does not say wrong-recipient-role"

say "referrals: R1 to sweden, R2 to portugal"
r1=$("$TERN" send -c "$(conf unhcr)" --to sweden --wait 20 case-referral "$WORK/r.json" | awk '{print $1}')
r2=$("$TERN" send -c "$(conf unhcr)" --to portugal --wait 20 case-referral "$WORK/r.json" | awk '{print $1}')
[[ $r1 =~ ^[0-9a-f-]{36}$ && $r2 =~ ^[0-9a-f-]{36}$ ]] || fail "the referrals were not delivered"

say "sweden decides on R2, which was referred to portugal"
decision_json WF-1 "$r2" >"$WORK/d-r2.json"
bad=$("$TERN" send -c "$(conf sweden)" --to unhcr,iom acceptance-decision "$WORK/d-r2.json")
wait_for 20 "unhcr to refuse the decision on R2" refused_by sweden "$bad" unhcr reference-not-shared
wait_for 20 "IOM to take the decision (it holds no referral to judge by)" \
  eval '"$TERN" status -c "$(conf sweden)" "$bad" | grep -qE "^  iom +delivered"'

say "a decision naming a person who is not in R1"
decision_json WF-1 "$r1" | python3 -c 'import json,sys
d = json.load(sys.stdin); d["memberDecisions"][1]["personId"] = "ZZZ-99"; print(json.dumps(d))' >"$WORK/d-stranger.json"
send_refused sweden unknown-member --to unhcr,iom acceptance-decision "$WORK/d-stranger.json"
forge stranger sweden acceptance-decision unhcr,iom "$WORK/d-stranger.json"
wait_for 20 "unhcr to refuse the decision naming a stranger" refused_by sweden "$stranger" unhcr unknown-member
grep -q "ZZZ-99" "$WORK"/*.log && fail "a person id reached a log"

say "a travel confirmation citing a decision that exists nowhere"
travel_json WF-1 "01a00000-0000-7000-8000-000000000000" >"$WORK/t-none.json"
none=$("$TERN" send -c "$(conf iom)" --to sweden,unhcr travel-confirmation "$WORK/t-none.json")
wait_for 20 "sweden to refuse it" refused_by iom "$none" sweden unknown-decision
wait_for 20 "unhcr to refuse it" refused_by iom "$none" unhcr unknown-decision

say "D1 accepts R1, D2 rejects it; travel citing D1"
decision_json WF-1 "$r1" >"$WORK/d1.json"
decision_json WF-1 "$r1" REJECTED >"$WORK/d2.json"
d1=$("$TERN" send -c "$(conf sweden)" --to unhcr,iom --wait 20 acceptance-decision "$WORK/d1.json" | awk '{print $1}')
d2=$("$TERN" send -c "$(conf sweden)" --to unhcr,iom --wait 20 acceptance-decision "$WORK/d2.json" | awk '{print $1}')
[[ $d1 =~ ^[0-9a-f-]{36}$ && $d2 =~ ^[0-9a-f-]{36}$ ]] || fail "the decisions were not delivered"
travel_json WF-1 "$d1" >"$WORK/t-d1.json"
send_refused iom superseded --to sweden,unhcr travel-confirmation "$WORK/t-d1.json"
forge stale iom travel-confirmation sweden,unhcr "$WORK/t-d1.json"
wait_for 20 "sweden to refuse travel on a superseded decision" refused_by iom "$stale" sweden superseded
wait_for 20 "unhcr to refuse travel on a superseded decision" refused_by iom "$stale" unhcr superseded
send_refused sweden wrong-state --to unhcr,iom acceptance-decision "$WORK/d1.json"

say "the way it should go: R3 to sweden, accepted, travel booked, departed, arrived"
referral_json WF-2 >"$WORK/r3.json"
r3=$("$TERN" send -c "$(conf unhcr)" --to sweden --wait 20 case-referral "$WORK/r3.json" | awk '{print $1}')
decision_json WF-2 "$r3" >"$WORK/d3.json"
d3=$("$TERN" send -c "$(conf sweden)" --to unhcr,iom --wait 20 acceptance-decision "$WORK/d3.json" | awk '{print $1}')
[[ $d3 =~ ^[0-9a-f-]{36}$ ]] || fail "the decision on R3 was not delivered to everyone"
for st in BOOKED DEPARTED ARRIVED; do
  travel_json WF-2 "$d3" | sed "s/\"status\": \"[A-Z]*\"/\"status\": \"$st\"/" >"$WORK/t-$st.json"
  id=$("$TERN" send -c "$(conf iom)" --to sweden,unhcr --wait 20 travel-confirmation "$WORK/t-$st.json" | awk '{print $1}')
  [[ $id =~ ^[0-9a-f-]{36}$ ]] || fail "travel $st was not delivered to everyone"
done
# IOM traces the thread but holds no referral, so it does not judge moves;
# the recipients do.
late=$("$TERN" send -c "$(conf iom)" --to sweden,unhcr travel-confirmation "$WORK/t-DEPARTED.json")
wait_for 20 "sweden to refuse a departure after the arrival" refused_by iom "$late" sweden wrong-state
wait_for 20 "unhcr to refuse a departure after the arrival" refused_by iom "$late" unhcr wrong-state

say "the broker's audit log holds its refusals"
stop broker
"$TERN" audit export -c "$WORK/fed/broker/broker.conf" --out "$WORK/broker.tern-audit" >/dev/null
grep -qa "wrong-recipient-role" "$WORK/broker.tern-audit" || fail "no wrong-recipient-role in the broker's audit log"
echo "it test_workflow: ok"
