#!/usr/bin/env bash
# The case workflow at every hop (docs/messages.md, "The workflow"), through
# real processes, for each case a review found delivered before the table
# (and blank required text and second 60 refused as invalid):
#   - referrals to IOM (movement) and from unhcr to itself: the sending node
#     refuses at once; forged into the outbox, the broker refuses them
#     (wrong-recipient-role);
#   - sweden decides on a case unhcr referred to portugal: unhcr's negative
#     receipt says reference-not-shared, while IOM (not a party to the
#     referral) takes it;
#   - a decision naming a person who is not in the referral: sweden's node
#     refuses the send; forged, unhcr refuses it (unknown-member);
#   - a travel confirmation citing a decision that exists nowhere: IOM's node
#     refuses the send (decision-not-received); forged, sweden refuses it at
#     once (unknown-decision), unhcr holds it ([delivery] hold, 3 s here),
#     `tern info` shows it held, then refuses it (unknown-reference);
#   - a travel confirmation that reaches unhcr before the decision it cites
#     (sweden's decision waits in its stopped node's outbox): IOM's node
#     refuses the send; forged, unhcr holds it, then takes it once the
#     decision arrives;
#   - a travel confirmation citing D1 after D2 rejected the case: IOM's node
#     refuses the send; forged, sweden and unhcr refuse it (superseded).
# Then the way it should go, referral -> decision -> travel booked, departed,
# arrived, is delivered everywhere; a departure after arrival is refused by
# the recipients.
source "$(dirname "$0")/lib.sh"

fed_make
for n in unhcr sweden; do printf '\n[delivery]\nhold = 3\n' >>"$(conf "$n")"; done
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
# forge_stopped VAR NODE TYPE TO BODY: the envelope into the stopped NODE's
# outbox; its id in VAR. forge: the same with NODE stopped and started again
# around it (in this shell, not in a $(...), which could not wait for it).
forge_stopped() {
  local id
  id=$("$BIN/tern-forge" "$(conf "$2")" "$WORK/fed/$2" "$3" "$4" "$5") || fail "tern-forge failed"
  printf -v "$1" '%s' "$id"
}
forge() {
  stop "$2"
  forge_stopped "$@"
  start "$2"
  wait_for 20 "$2 to connect again" connected "$2"
}

say "the roles that may receive: a referral to IOM or to unhcr itself"
referral_json WF-1 >"$WORK/r.json"
send_refused unhcr wrong-recipient-role --to iom case-referral "$WORK/r.json"
send_refused unhcr wrong-recipient-role --to unhcr case-referral "$WORK/r.json"
# One State at a time: a thread has one state (docs/messages.md).
send_refused unhcr too-many-recipients --to sweden,portugal case-referral "$WORK/r.json"
forge to_iom unhcr case-referral iom "$WORK/r.json"
forge to_self unhcr case-referral unhcr "$WORK/r.json"
wait_for 20 "the forged referral to IOM to be refused" state_is unhcr "$to_iom" rejected
wait_for 20 "the forged referral to unhcr to be refused" state_is unhcr "$to_self" rejected
"$TERN" status -c "$(conf unhcr)" "$to_iom" | grep -q "wrong-recipient-role" ||
  fail "the broker's refusal of a referral to IOM does not say wrong-recipient-role"
"$TERN" status -c "$(conf unhcr)" "$to_self" | grep -q "wrong-recipient-role" ||
  fail "the broker's refusal of a referral to unhcr does not say wrong-recipient-role"

say "blank text where text is required, and a time that cannot be, are invalid"
decision_json WF-0 "01a00000-0000-7000-8000-000000000001" REJECTED |
  sed 's/"reasons": "[^"]*"/"reasons": "   "/' >"$WORK/blank.json"
send_refused sweden invalid-body --to unhcr,iom acceptance-decision "$WORK/blank.json"
travel_json WF-0 "01a00000-0000-7000-8000-000000000001" |
  python3 -c 'import json,sys,re
b = json.load(sys.stdin); l = b["legs"][0]
l["departsAt"] = re.sub(r"T(\d\d):(\d\d):\d\d", r"T\1:\2:60", l["departsAt"]); print(json.dumps(b))' >"$WORK/sec60.json"
grep -q ':60' "$WORK/sec60.json" || fail "the test's departure time has no second 60"
send_refused iom invalid-body --to sweden,unhcr travel-confirmation "$WORK/sec60.json"

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

say "a travel confirmation citing a decision that exists nowhere: IOM's node books only on a decision it holds; forged, refused at once by sweden, whose decision it would be; held by unhcr, then refused"
travel_json WF-1 "01a00000-0000-7000-8000-000000000000" >"$WORK/t-none.json"
send_refused iom decision-not-received --to sweden,unhcr travel-confirmation "$WORK/t-none.json"
forge none iom travel-confirmation sweden,unhcr "$WORK/t-none.json"
wait_for 10 "unhcr to hold it" count_is unhcr held 1
"$TERN" info -c "$(conf unhcr)" | grep -q "^held  *1 " || fail "tern info does not show the held message"
wait_for 5 "sweden to refuse it at once" refused_by iom "$none" sweden unknown-decision
wait_for 20 "unhcr to refuse it" refused_by iom "$none" unhcr unknown-reference
count_is unhcr held 0 || fail "unhcr still holds the refused message"

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
# IOM holds no referral, but it traces the thread and judges its own moves
# by it: its node refuses the send; forged, the recipients refuse it.
send_refused iom wrong-state --to sweden,unhcr travel-confirmation "$WORK/t-DEPARTED.json"
forge late iom travel-confirmation sweden,unhcr "$WORK/t-DEPARTED.json"
wait_for 20 "sweden to refuse a departure after the arrival" refused_by iom "$late" sweden wrong-state
wait_for 20 "unhcr to refuse a departure after the arrival" refused_by iom "$late" unhcr wrong-state

say "a travel confirmation before the decision it cites: held, then delivered"
referral_json WF-3 >"$WORK/r4.json"
r4=$("$TERN" send -c "$(conf unhcr)" --to sweden --wait 20 case-referral "$WORK/r4.json" | awk '{print $1}')
[[ $r4 =~ ^[0-9a-f-]{36}$ ]] || fail "the referral WF-3 was not delivered"
decision_json WF-3 "$r4" >"$WORK/d4.json"
# unhcr holds for a minute now: sweden's start below must not race it.
stop unhcr
sed -i 's/^hold = 3$/hold = 60/' "$(conf unhcr)"
start unhcr
wait_for 20 "unhcr to connect again" connected unhcr
# The decision waits in sweden's outbox while sweden is stopped; IOM learnt
# its id another way. Its node books only on a decision it holds; an older
# or hostile node sends the booking all the same (forged), and it overtakes
# the decision.
stop sweden
forge_stopped d4 sweden acceptance-decision unhcr,iom "$WORK/d4.json"
travel_json WF-3 "$d4" >"$WORK/t4.json"
send_refused iom decision-not-received --to unhcr travel-confirmation "$WORK/t4.json"
forge early iom travel-confirmation unhcr "$WORK/t4.json"
wait_for 10 "unhcr to hold the early travel confirmation" count_is unhcr held 1
"$TERN" status -c "$(conf unhcr)" "$early" | tee "$WORK/status-held.txt"
grep -q "^state      held (received from iom)$" "$WORK/status-held.txt" &&
  grep -q "^awaiting   $d4, until " "$WORK/status-held.txt" || fail "tern status does not show the held message"
"$TERN" case show -c "$(conf unhcr)" --json WF-3 >"$WORK/case-wf3.json"
python3 - "$WORK/case-wf3.json" "$early" "$d4" <<'PY' || fail "the case view does not show the held message"
import json, sys
c = json.load(open(sys.argv[1]))
held = c["held"]
assert len(held) == 1 and held[0]["message_id"] == sys.argv[2] and held[0]["awaiting"] == sys.argv[3], held
# what is held, and from whom (a held message has no record of its own yet)
assert held[0].get("type") == "travel-confirmation" and held[0].get("sender") == "iom", held
PY
state_is iom "$early" delivered && fail "the early travel confirmation was judged before its decision"
start sweden
wait_for 20 "the decision to be delivered" state_is sweden "$d4" delivered
wait_for 20 "the held travel confirmation to be delivered" state_is iom "$early" delivered
count_is unhcr held 0 || fail "unhcr still holds the released message"
"$TERN" inbox -c "$(conf unhcr)" list | grep -q "$early" || fail "the released message is not in unhcr's inbox"

say "relocation: portugal (referrer and state) refers to sweden under RELOCATION"
referral_json REL-1 | sed 's/"programme": "[A-Z_]*"/"programme": "RELOCATION"/' >"$WORK/rel.json"
grep -q '"programme": "RELOCATION"' "$WORK/rel.json" || fail "the relocation referral has no programme RELOCATION"
rel=$("$TERN" send -c "$(conf portugal)" --to sweden --wait 20 case-referral "$WORK/rel.json" | awk '{print $1}')
[[ $rel =~ ^[0-9a-f-]{36}$ ]] || fail "portugal's relocation referral was not delivered"
decision_json REL-1 "$rel" >"$WORK/rel-d.json"
reld=$("$TERN" send -c "$(conf sweden)" --to portugal,iom --wait 20 acceptance-decision "$WORK/rel-d.json" | awk '{print $1}')
[[ $reld =~ ^[0-9a-f-]{36}$ ]] || fail "sweden's decision on the relocation was not delivered"
travel_json REL-1 "$reld" >"$WORK/rel-t.json"
relt=$("$TERN" send -c "$(conf iom)" --to sweden,portugal --wait 20 travel-confirmation "$WORK/rel-t.json" | awk '{print $1}')
[[ $relt =~ ^[0-9a-f-]{36}$ ]] || fail "the relocation's travel confirmation was not delivered"
"$TERN" case show -c "$(conf portugal)" REL-1 | grep -q "^thread     referral $rel to sweden: booked$" ||
  fail "portugal's view of the relocation is not booked"
# sweden (a State only) may not relocate: it is no referrer.
norole=$("$TERN" send -c "$(conf sweden)" --to portugal case-referral "$WORK/rel.json")
wait_for 20 "the broker to refuse sweden's referral" state_is sweden "$norole" rejected
"$TERN" status -c "$(conf sweden)" "$norole" | grep -q "wrong-role" ||
  fail "sweden's referral was not refused wrong-role"

say "the case view at unhcr, from the CLI and over HTTP"
"$TERN" case show -c "$(conf unhcr)" WF-2 | tee "$WORK/case-wf2.txt"
grep -q "^thread     referral $r3 to sweden: arrived$" "$WORK/case-wf2.txt" ||
  fail "tern case show does not give the thread's state"
[[ $(grep -c "^  .* received " "$WORK/case-wf2.txt") -eq 5 ]] ||
  fail "tern case show does not list the 5 messages unhcr received for WF-2"
grep -qE "received +travel-confirmation .*from iom: refused \(wrong-state\)" "$WORK/case-wf2.txt" ||
  fail "tern case show does not show the refused departure"
[[ $(hreq case-wf2 GET $((PORT + 13)) /v1/cases/WF-2 "$WORK/fed/unhcr/http.token") == 200 ]] ||
  fail "GET /v1/cases/WF-2 did not answer 200"
python3 - "$WORK/case-wf2.out" "$r3" <<'PY' || fail "GET /v1/cases/WF-2 does not give the view"
import json, sys
c = json.load(open(sys.argv[1]))["case"]
t = [t for t in c["threads"] if t["referralId"] == sys.argv[2]]
assert t and t[0]["state"] == "arrived", c["threads"]
# After arrival, only IOM's handover to the State's reception may come.
assert [(n["type"], n["from"]) for n in t[0]["next"]] == [("arrival-handover", "movement")], t[0]["next"]
assert [e["direction"] for e in c["timeline"]][0] == "sent", c["timeline"]
PY
code=$(hreq nocase GET $((PORT + 13)) /v1/cases/NO-SUCH-CASE "$WORK/fed/unhcr/http.token")
[[ $code == 404 ]] || fail "GET /v1/cases of an unknown case answered $code, want 404"
# Hostile paths: a prefix of a case id is another case; '..' is only characters.
for path in WF WF- "..%2F..%2Fetc%2Fpasswd" "WF-2%2F.." "$(printf 'A%.0s' {1..10000})"; do
  code=$(hreq hostile GET $((PORT + 13)) "/v1/cases/$path" "$WORK/fed/unhcr/http.token")
  [[ $code == 404 || ($code == 414 && ${#path} -gt 1000) ]] || fail "GET /v1/cases/${path:0:40} answered $code, want 404 (414 for 10 KB)"
  grep -q "$r3" "$WORK/hostile.out" && fail "GET /v1/cases/${path:0:40} shows WF-2's messages"
done
rc=0; "$TERN" case show -c "$(conf unhcr)" NO-SUCH-CASE >/dev/null 2>&1 || rc=$?
[[ $rc -eq 1 ]] || fail "tern case show of an unknown case exited $rc, want 1"
# A case id longer than any (300 characters): refused as such, not "cannot build".
long=$(printf 'A%.0s' {1..300})
out=$("$TERN" case show -c "$(conf unhcr)" "$long" 2>&1) && fail "tern case show of a 300-character case id succeeded"
grep -q "at most 128" <<<"$out" || fail "tern case show of a 300-character case id does not say it is too long: $out"

say "the broker's audit log holds its refusals"
stop broker
"$TERN" audit export -c "$WORK/fed/broker/broker.conf" --out "$WORK/broker.tern-audit" >/dev/null
grep -qa "wrong-recipient-role" "$WORK/broker.tern-audit" || fail "no wrong-recipient-role in the broker's audit log"
http_check
echo "it test_workflow: ok"
