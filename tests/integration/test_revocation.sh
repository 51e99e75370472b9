#!/usr/bin/env bash
# Revocation takes effect at once, for connected and in-flight alike
# (finding 1 of the edge review). iom, with credit 1, is paused (SIGSTOP)
# with three acceptance decisions from sweden queued for it, one of them in
# flight. iom is revoked, a new directory signed, the broker reloaded. It
# used to be that, after SIGCONT, all three landed in iom's inbox. Now:
# - the broker closes iom's session and connection at the reload, takes back
#   what was in flight, and delivers nothing more to it: the two that had not
#   left the broker never reach iom (the one already on the wire may: bytes
#   handed to the kernel before the revocation cannot be recalled);
# - all three end rejected with reason recipient-revoked at sweden (tern
#   status, /metrics), dead-lettered and audited at the broker;
# - iom's connection attempts and frames are refused; a new message to iom is
#   refused recipient-revoked by sweden's own node after its reload.
# A message sweden accepted from iom before the revocation (key-compromise)
# is no longer shown. And a member removed from the directory (portugal):
# what was queued for it
# ends rejected recipient-removed, while what unhcr accepted from it before
# stays readable in unhcr's inbox, marked sender_standing left-directory.
source "$(dirname "$0")/lib.sh"
CA="$WORK/fed/ca"
BCONF="$WORK/fed/broker/broker.conf"
BMETRICS=$((PORT + 1))
fed_make
printf '\n[delivery]\ncredit = 1\n' >>"$(conf iom)"
printf '\n[delivery]\ncredit = 1\n' >>"$(conf portugal)"
for n in broker unhcr sweden iom portugal; do start "$n"; done
for n in unhcr sweden iom portugal; do wait_for 20 "$n to connect" connected "$n"; done

say "a referral to sweden, then iom paused with three of sweden's decisions queued for it"
ref=$(referral_json REVOKE-1 | "$TERN" send -c "$(conf unhcr)" --to sweden case-referral -)
wait_for 20 "the referral to arrive" state_is unhcr "$ref" delivered
# Before portugal leaves the directory (below): its decision on a referral,
# accepted into unhcr's inbox and left there unacknowledged.
pref=$(referral_json LEAVE-1 | "$TERN" send -c "$(conf unhcr)" --to portugal case-referral -)
wait_for 20 "the referral to reach portugal" state_is unhcr "$pref" delivered
pdec=$(decision_json LEAVE-1 "$pref" | "$TERN" send -c "$(conf portugal)" --to unhcr acceptance-decision -)
wait_for 20 "portugal's decision to reach unhcr" state_is portugal "$pdec" delivered
# Before iom is revoked: its health assessment on an accepted decision,
# accepted into sweden's inbox and left there unacknowledged.
dec0=$(decision_json REVOKE-1 "$ref" | "$TERN" send -c "$(conf sweden)" --to iom acceptance-decision -)
wait_for 20 "sweden's first decision to reach iom" state_is sweden "$dec0" delivered
ha=$("$TERN" example health-assessment |
  sed -e 's/"caseId": "[^"]*"/"caseId": "REVOKE-1"/' -e "s/\"decisionId\": \"[^\"]*\"/\"decisionId\": \"$dec0\"/" |
  "$TERN" send -c "$(conf iom)" --to sweden health-assessment -)
wait_for 20 "iom's health assessment to reach sweden" state_is iom "$ha" delivered
kill -STOP "${PIDS[iom]}"
ids=()
for i in 1 2 3; do
  ids+=("$(decision_json REVOKE-1 "$ref" | "$TERN" send -c "$(conf sweden)" --to iom acceptance-decision -)")
done
inflight() { "$TERN" queues -c "$BCONF" --json | python3 -c '
import json,sys
d=[x for x in json.load(sys.stdin)["destinations"] if x["id"]=="iom"]
sys.exit(0 if d and d[0]["depth"]==3 and d[0]["in_flight"]==1 else 1)'; }
wait_for 20 "three queued for iom, one in flight" inflight

say "revoke iom, sign directory version 2, reload the broker and sweden"
"$TERN" ca revoke --ca "$CA" --node iom --reason key-compromise >/dev/null
"$TERN" ca directory --ca "$CA" >/dev/null
kill -HUP "${PIDS[broker]}" "${PIDS[sweden]}"
reloaded() { grep -q "reloaded: directory version 2 (was 1)" "$WORK/$1.log"; }
wait_for 10 "the broker to reload" reloaded broker
wait_for 10 "sweden to reload" reloaded sweden

say "iom resumes: nothing more reaches it; sweden sees all three rejected recipient-revoked"
kill -CONT "${PIDS[iom]}"
sleep 3 # time for anything iom could still be sent to arrive
landed=0
for id in "${ids[@]}"; do grep -q "received $id " "$WORK/iom.log" && landed=$((landed + 1)); done
say "$landed of 3 reached iom"
((landed <= 1)) || fail "$landed decisions reached iom after its revocation (at most the one in flight may)"
for id in "${ids[@]:1}"; do
  grep -q "received $id " "$WORK/iom.log" && fail "$id, queued behind the one in flight, reached revoked iom"
done
rejected() {
  for id in "${ids[@]}"; do
    "$TERN" status -c "$(conf sweden)" --json "$id" >"$WORK/st.json" || return 1
    grep -q '"state": "rejected"' "$WORK/st.json" && grep -q 'recipient-revoked' "$WORK/st.json" || return 1
  done
}
wait_for 20 "all three to be rejected recipient-revoked at sweden" rejected
grep -q "closed the session of iom (revoked)" "$WORK/broker.log" || fail "the broker did not close iom's session"
"$TERN" peers -c "$BCONF" | grep -qE "^iom +no .*\(REVOKED\)" || {
  "$TERN" peers -c "$BCONF"; fail "iom is shown connected, or not revoked"; }

say "what sweden accepted from iom before its key was revoked as compromised is not shown"
if "$TERN" inbox -c "$(conf sweden)" show "$ha" >"$WORK/ha.out" 2>&1; then
  cat "$WORK/ha.out"; fail "sweden shows a message signed by a key since revoked as compromised"
fi
grep -q "compromised" "$WORK/ha.out" || { cat "$WORK/ha.out"; fail "the refusal does not say why"; }
"$TERN" inbox -c "$(conf sweden)" next >"$WORK/snext.json" || fail "inbox next at sweden shows nothing"
grep -q "\"messageId\": \"$ha\"" "$WORK/snext.json" && fail "inbox next shows the message of the compromised key"
say "iom is refused; /metrics and the audit log show it"
if "$BIN/zmq-probe" "tcp://127.0.0.1:$PORT" "$WORK/fed/broker/curve.key" "$WORK/fed/iom/curve.key" >/dev/null; then
  fail "the broker answered revoked iom"
fi
metric() { curl -sf "http://127.0.0.1:$BMETRICS/metrics" | grep -q "^$1\$"; }
wait_for 5 "the dead letters counted" metric 'tern_broker_dead_letters_total{reason="recipient-revoked"} 3'
"$TERN" dlq -c "$BCONF" list >"$WORK/dlq.txt"
[[ $(grep -c "recipient-revoked" "$WORK/dlq.txt") -eq 3 ]] || { cat "$WORK/dlq.txt"; fail "the dead-letter queue does not hold the three"; }

say "a new message to iom is refused by sweden's own node"
if decision_json REVOKE-1 "$ref" | "$TERN" send -c "$(conf sweden)" --to iom acceptance-decision - >"$WORK/new.out" 2>&1; then
  cat "$WORK/new.out"; fail "sweden sealed a message to revoked iom"
fi
grep -q "recipient-revoked" "$WORK/new.out" || { cat "$WORK/new.out"; fail "the refusal does not say iom is revoked"; }

say "the same for a member removed from the directory: portugal, paused with two referrals queued"
kill -STOP "${PIDS[portugal]}"
pids=()
for i in 1 2; do
  pids+=("$(referral_json "REMOVE-$i" | "$TERN" send -c "$(conf unhcr)" --to portugal case-referral -)")
done
queued_p() { "$TERN" queues -c "$BCONF" --json | python3 -c '
import json,sys
d=[x for x in json.load(sys.stdin)["destinations"] if x["id"]=="portugal"]
sys.exit(0 if d and d[0]["depth"]==2 and d[0]["in_flight"]==1 else 1)'; }
wait_for 20 "two queued for portugal, one in flight" queued_p
python3 -c 'import json,sys
p=sys.argv[1]; d=json.load(open(p)); d["members"]=[m for m in d["members"] if m["node_id"]!="portugal"]
json.dump(d,open(p,"w"))' "$CA/ca.json"
"$TERN" ca directory --ca "$CA" >/dev/null
kill -HUP "${PIDS[broker]}" "${PIDS[unhcr]}"
reloaded3() { grep -q "reloaded: directory version 3 " "$WORK/$1.log"; }
wait_for 10 "the broker to reload version 3" reloaded3 broker
wait_for 10 "unhcr to reload version 3" reloaded3 unhcr
kill -CONT "${PIDS[portugal]}"
removed() {
  for id in "${pids[@]}"; do
    "$TERN" status -c "$(conf unhcr)" --json "$id" >"$WORK/pst.json" || return 1
    grep -q '"state": "rejected"' "$WORK/pst.json" && grep -q 'recipient-removed' "$WORK/pst.json" || return 1
  done
}
wait_for 20 "both to be rejected recipient-removed at unhcr" removed
say "what unhcr accepted from portugal before it left stays readable, marked so"
"$TERN" inbox -c "$(conf unhcr)" show "$pdec" >"$WORK/pdec.json" ||
  { cat "$WORK/pdec.json"; fail "unhcr can no longer show portugal's decision it accepted"; }
grep -q '"sender_standing": "left-directory"' "$WORK/pdec.json" ||
  { cat "$WORK/pdec.json"; fail "the decision is not marked: its sender left the directory"; }
"$TERN" inbox -c "$(conf unhcr)" next >"$WORK/pnext.json" ||
  fail "inbox next at unhcr shows nothing, with portugal's decision in the inbox"
sleep 2
grep -q "received ${pids[1]} " "$WORK/portugal.log" && fail "the referral queued behind the one in flight reached removed portugal"
grep -q "closed the session of portugal (removed)" "$WORK/broker.log" || fail "the broker did not close portugal's session"
# Counted under their own reason, not as revocations.
wait_for 5 "the removed dead letters counted" metric 'tern_broker_dead_letters_total{reason="recipient-removed"} 2'
wait_for 5 "the revoked dead letters still 3" metric 'tern_broker_dead_letters_total{reason="recipient-revoked"} 3'

say "a good message still arrives"
ok=$(referral_json REVOKE-2 | "$TERN" send -c "$(conf unhcr)" --to sweden case-referral -)
wait_for 20 "a message to sweden to arrive" state_is unhcr "$ok" delivered

stop sweden
stop broker
say "with the broker down, peers reads the directory: iom revoked, portugal gone"
"$TERN" peers -c "$BCONF" >"$WORK/peers-ro.txt" 2>/dev/null || fail "peers without the broker failed"
grep -qE "^iom +no .*\(REVOKED\)" "$WORK/peers-ro.txt" || { cat "$WORK/peers-ro.txt"; fail "peers (read-only) does not show iom revoked"; }
grep -q "^portugal " "$WORK/peers-ro.txt" && { cat "$WORK/peers-ro.txt"; fail "peers (read-only) lists removed portugal"; }
"$TERN" audit export -c "$BCONF" --out "$WORK/broker.tern-audit" >/dev/null
"$TERN" audit export -c "$(conf sweden)" --out "$WORK/sweden.tern-audit" >/dev/null
for a in broker sweden; do
  grep -qa "recipient-revoked" "$WORK/$a.tern-audit" || fail "no recipient-revoked entry in $a's audit log"
done
say "ok"
