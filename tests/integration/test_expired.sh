#!/usr/bin/env bash
# Expired certificate: portugal's certificate is replaced by one that ends
# 20 seconds later (tern ca issue --until). While it is valid a referral and
# its decision go through; once it has lapsed, with no reload anywhere:
# - an envelope portugal sealed before and submits after is refused by the
#   broker (not-admitted: the broker judges every frame, so the submission
#   is refused once the certificate has lapsed), logged and audited;
# - portugal's key is refused at the CURVE handshake, logged and audited;
# - portugal's node will not start, saying why; unhcr will not seal to it;
# and a good message from unhcr to sweden still arrives.
source "$(dirname "$0")/lib.sh"
CA="$WORK/fed/ca"
BCONF="$WORK/fed/broker/broker.conf"
PT="$WORK/fed/portugal"
LIFE=20

fed_make
say "portugal's certificate is replaced by one that ends in $LIFE s"
"$TERN" ca revoke --ca "$CA" --node portugal --reason superseded >/dev/null
rm -f "$PT"/node.key "$PT"/seal.key "$PT"/curve.key "$PT"/node.req.json "$PT"/node.crt
"$TERN" keygen --node portugal --out "$PT" >/dev/null
end=$(($(date +%s) + LIFE))
"$TERN" ca issue --ca "$CA" --request "$PT/node.req.json" --agency "Portugal AIMA" --roles state \
  --until "$(date -u -d "@$end" +%Y-%m-%dT%H:%M:%SZ)" --out "$PT/node.crt" >/dev/null
"$TERN" ca directory --ca "$CA" >/dev/null
for n in broker unhcr sweden portugal; do start "$n"; done
for n in unhcr sweden portugal; do wait_for 20 "$n to connect" connected "$n"; done

say "while it is valid, a referral to portugal and portugal's decision go through"
ref=$(referral_json EXP-1 | "$TERN" send -c "$(conf unhcr)" --to portugal case-referral -)
wait_for 20 "the referral to reach portugal" state_is unhcr "$ref" delivered
dec=$(decision_json EXP-1 "$ref" | "$TERN" send -c "$(conf portugal)" --to unhcr acceptance-decision -)
wait_for 20 "the decision to reach unhcr" state_is portugal "$dec" delivered

say "a peer holding portugal's keys seals now and submits after the expiry"
stop portugal
# Its connection outlives the certificate: the broker judges every frame
# against the directory, so the submission is refused before its envelope is
# even read (not-admitted), and the connection closed.
"$BIN/tern-badpeer" "$BCONF" "$PT" late "$((end + 2))" >"$WORK/late.out" || true
grep -q "^not-admitted: portugal is no longer admitted .*certificate has expired" "$WORK/late.out" ||
  { cat "$WORK/late.out"; fail "the broker did not refuse the lapsed sender's submission"; }
kill -0 "${PIDS[broker]}" || fail "the broker died"

say "portugal's key is refused at the handshake, its node will not start"
if "$BIN/zmq-probe" "tcp://127.0.0.1:$PORT" "$WORK/fed/broker/curve.key" "$PT/curve.key" >/dev/null; then
  fail "the broker answered portugal after its certificate expired"
fi
grep -q "refused a connection from portugal: certificate expired" "$WORK/broker.log" ||
  fail "no log line for portugal's expired certificate"
if "$BIN/tern-node" -c "$(conf portugal)" -n >"$WORK/pt-check.txt" 2>&1; then
  fail "portugal's configuration checks out with an expired certificate"
fi
grep -qi "expired" "$WORK/pt-check.txt" || { cat "$WORK/pt-check.txt"; fail "portugal's check does not say its certificate expired"; }

say "unhcr will not seal to portugal; a good message to sweden arrives"
if referral_json EXP-2 | "$TERN" send -c "$(conf unhcr)" --to portugal case-referral - >"$WORK/to-pt.out" 2>&1; then
  fail "unhcr accepted a message for portugal after its certificate expired"
fi
grep -q "portugal's certificate has expired" "$WORK/to-pt.out" || { cat "$WORK/to-pt.out"; fail "the refusal does not say why"; }
ok=$(referral_json EXP-3 | "$TERN" send -c "$(conf unhcr)" --to sweden case-referral -)
wait_for 20 "the message to sweden to arrive" state_is unhcr "$ok" delivered

say "both refusals are in the broker's audit log"
stop unhcr; stop sweden; stop broker
"$TERN" audit export -c "$BCONF" --out "$WORK/broker.tern-audit" >/dev/null
grep -qa "certificate-expired" "$WORK/broker.tern-audit" || fail "no certificate-expired refusal in the broker's audit log"
# The late submission was refused as a frame from a member no longer admitted.
grep -q "refused a frame from portugal: expired" "$WORK/broker.log" || fail "no log line for the late submission"
"$TERN" audit replay "$WORK/broker.tern-audit" --json >"$WORK/replay.json" 2>/dev/null || true
grep -qa "expired" "$WORK/broker.tern-audit" || fail "the refused late submission is not in the broker's audit log"
"$TERN" audit verify "$WORK/broker.tern-audit" >/dev/null || fail "the broker's audit log does not verify"
echo "it test_expired: ok"
