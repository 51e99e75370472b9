#!/usr/bin/env bash
# docs/pki.md, "Adding a member to a running federation": why the broker reloads before any
# member. Here unhcr takes the directory that adds norway first: its node then accepts
# --to norway, and the broker, still on the old directory, refuses the message for good
# (unknown-recipient, shown rejected at unhcr). Once the broker has reloaded, the same body sent
# again reaches norway and is delivered. Nobody restarts.
source "$(dirname "$0")/lib.sh"
CA="$WORK/fed/ca"
FED="$WORK/fed"

fed_make
# Each party its own copy of the federation files, as on real hosts.
for p in broker unhcr; do
  c=$(conf "$p")
  [[ $p == broker ]] && c="$FED/broker/broker.conf"
  cp "$CA/ca.crt" "$CA/crl.pem" "$CA/directory.tdir" "$FED/$p/"
  sed -i 's#^\(ca\|crl\|directory\) = \.\./ca/#\1 = #' "$c"
  grep -q '^directory = directory.tdir$' "$c" || fail "$c: not the dev federation's [federation] lines"
done
for p in broker unhcr; do start "$p"; done
wait_for 20 "unhcr to connect" connected unhcr

say "norway certified, the new directory installed at unhcr only"
"$TERN" keygen --node norway --out "$FED/norway" >/dev/null
"$TERN" ca issue --ca "$CA" --request "$FED/norway/node.req.json" \
  --agency 'Norwegian Directorate of Immigration' --roles state --out "$FED/norway/node.crt" >/dev/null
"$TERN" ca directory --ca "$CA" >/dev/null
cp "$CA/directory.tdir" "$FED/unhcr/"
kill -HUP "${PIDS[unhcr]}"
wait_for 10 "unhcr to reload" grep -q "reloaded: directory version 2 (was 1)" "$WORK/unhcr.log"

say "unhcr sends to norway; the broker, on version 1, refuses it for good"
referral_json ORDER-1 >"$WORK/referral.json"
early=$("$TERN" send -c "$(conf unhcr)" --to norway case-referral "$WORK/referral.json")
wait_for 20 "the broker's refusal to reach unhcr" state_is unhcr "$early" rejected
"$TERN" status -c "$(conf unhcr)" "$early" >"$WORK/early.txt"
grep -q "unknown-recipient: recipient norway is not a member node" "$WORK/early.txt" ||
  fail "the refusal is not unknown-recipient"

say "the broker reloads; the refusal stands, the same body sent again is delivered"
cp "$CA/directory.tdir" "$FED/broker/"
kill -HUP "${PIDS[broker]}"
wait_for 10 "the broker to reload" grep -q "reloaded: directory version 2 (was 1)" "$WORK/broker.log"
sed -e 's/sweden/norway/g' -e "s/= $((PORT + 16))\$/= $((PORT + 20))/" -e "s/= $((PORT + 17))\$/= $((PORT + 21))/" \
  "$(conf sweden)" >"$(conf norway)"
cp "$FED/sweden/http.token" "$FED/norway/"
chmod 600 "$FED/norway/http.token"
start norway
wait_for 20 "norway to connect" connected norway
again=$("$TERN" send -c "$(conf unhcr)" --to norway case-referral "$WORK/referral.json")
wait_for 30 "the second referral to be delivered" state_is unhcr "$again" delivered
state_is unhcr "$early" rejected || fail "the first referral's refusal changed"
"$TERN" inbox -c "$(conf norway)" next --wait 10 >"$WORK/inbox.json" || fail "norway's inbox is empty"
grep -q "\"messageId\": \"$again\"" "$WORK/inbox.json" || fail "norway got another message than the second"
[[ $(grep -c "broker hub listening on" "$WORK/broker.log") == 1 ]] || fail "the broker restarted"
[[ $(grep -c "node unhcr started" "$WORK/unhcr.log") == 1 ]] || fail "unhcr restarted"
echo "it test_onboard_order: ok"
