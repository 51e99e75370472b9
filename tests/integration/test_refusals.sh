#!/usr/bin/env bash
# Who may not get in or through: a CURVE key outside the directory, a forged
# sender, a wrong role. Each refusal carries its reason to the sender's
# status, and a following good message still arrives.
source "$(dirname "$0")/lib.sh"

fed_make
start broker
start sweden

say "a CURVE key that is not in the directory gets no answer"
wait_for 10 "the broker" "$BIN/zmq-probe" "tcp://127.0.0.1:$PORT" "$WORK/fed/broker/curve.key" "$WORK/fed/unhcr/curve.key"
if "$BIN/zmq-probe" "tcp://127.0.0.1:$PORT" "$WORK/fed/broker/curve.key"; then
  fail "the broker answered a client whose CURVE key is not in the directory"
fi
grep -q "refused a connection: CURVE key" "$WORK/broker.log" || fail "no log line for the refused key"

say "a forged sender: an envelope signed by portugal, submitted over unhcr's connection"
forged=$("$BIN/tern-forge" "$(conf unhcr)" "$WORK/fed/portugal" case-referral sweden)
say "a wrong role: unhcr (a referrer) sends an acceptance decision"
wrong=$("$TERN" example acceptance-decision | "$TERN" send -c "$(conf unhcr)" --to iom acceptance-decision - 2>/dev/null || true)
[[ -z "$wrong" ]] || fail "the node accepted a send while stopped"
start unhcr
wait_for 20 "unhcr to connect" connected unhcr
wrong=$("$TERN" example acceptance-decision | "$TERN" send -c "$(conf unhcr)" --to iom acceptance-decision -)

wait_for 20 "the forged message to be rejected" state_is unhcr "$forged" rejected
"$TERN" status -c "$(conf unhcr)" "$forged" | tee "$WORK/forged.txt"
grep -q "forged-sender" "$WORK/forged.txt" || fail "forged sender: reason not shown"
wait_for 20 "the wrong-role message to be rejected" state_is unhcr "$wrong" rejected
"$TERN" status -c "$(conf unhcr)" "$wrong" | tee "$WORK/wrong.txt"
grep -q "wrong-role" "$WORK/wrong.txt" || fail "wrong role: reason not shown"

say "a good message still arrives"
good=$("$TERN" example case-referral | "$TERN" send -c "$(conf unhcr)" --to sweden case-referral -)
wait_for 20 "the good message to be delivered" state_is unhcr "$good" delivered
"$TERN" inbox -c "$(conf sweden)" list | grep -q "$good" || fail "good message not in sweden's inbox"
"$TERN" inbox -c "$(conf sweden)" list | grep -q "$forged" && fail "the forged message reached sweden"
say "a recipient checks what it holds: travel confirmed for a case the State rejected"
start iom
sweden_got=$("$TERN" inbox -c "$(conf sweden)" next --wait 5 | grep -o '"messageId": "[^"]*' | head -1 | cut -d'"' -f4)
[[ "$sweden_got" == "$good" ]] || fail "sweden's next message is not the good referral"
"$TERN" inbox -c "$(conf sweden)" ack "$good" >/dev/null
case_id=$("$TERN" status -c "$(conf unhcr)" --json "$good" | grep -o '"case_id": "[^"]*' | cut -d'"' -f4)
decision_json "$case_id" "$good" REJECTED >"$WORK/reject.json"
"$TERN" validate acceptance-decision "$WORK/reject.json" >/dev/null || {
  "$TERN" validate acceptance-decision "$WORK/reject.json"; fail "the rejection body is not valid"; }
rejection=$("$TERN" send -c "$(conf sweden)" --to unhcr,iom acceptance-decision "$WORK/reject.json")
wait_for 20 "the rejection to be delivered" state_is sweden "$rejection" delivered
travel_json "$case_id" "$rejection" >"$WORK/travel.json"
# IOM's own node refuses to send it (decision-not-accepted): put in its
# outbox as a compromised or older node would, for the recipients to refuse.
rc=0; "$TERN" send -c "$(conf iom)" --to sweden,unhcr travel-confirmation "$WORK/travel.json" \
  >"$WORK/travel-send.txt" 2>&1 || rc=$?
[[ $rc -ne 0 ]] && grep -q "decision-not-accepted" "$WORK/travel-send.txt" ||
  fail "IOM's node sent travel on a rejected decision (exit $rc)"
stop iom
travel=$("$BIN/tern-forge" "$(conf iom)" "$WORK/fed/iom" travel-confirmation sweden,unhcr "$WORK/travel.json")
start iom
wait_for 20 "the travel confirmation to be refused" state_is iom "$travel" rejected
"$TERN" status -c "$(conf iom)" "$travel" | tee "$WORK/travel.txt"
[[ $(grep -cE '^  (sweden|unhcr) +rejected .*decision-not-accepted' "$WORK/travel.txt") -eq 2 ]] ||
  fail "both recipients should refuse with decision-not-accepted"
"$TERN" inbox -c "$(conf sweden)" list | grep -q "$travel" && fail "the refused travel reached sweden's inbox"
golden status-refused.txt "$WORK/travel.txt"
say "the refused key, the forged sender and the wrong role are in the broker's audit log"
stop broker
"$TERN" audit export -c "$WORK/fed/broker/broker.conf" --out "$WORK/broker.tern-audit" >/dev/null
for r in unknown-key forged-sender wrong-role; do
  grep -qa "$r" "$WORK/broker.tern-audit" || fail "no $r refusal in the broker's audit log"
done
echo "it test_refusals: ok"
