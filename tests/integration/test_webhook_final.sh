#!/usr/bin/env bash
# A sent message whose final state changes (expired, then delivered after
# `tern dlq retry`, docs/api.md "Webhooks") is a new event: unhcr's system
# must hear the delivered state. Receivers drop a push whose webhook-id they
# took before (examples/webhook_receiver.py does, as docs/api.md tells them),
# so the second message.final must not reuse the first one's webhook-id.
source "$(dirname "$0")/lib.sh"
RECV="$ROOT/examples/webhook_receiver.py"
BCONF="$WORK/fed/broker/broker.conf"

fed_make
U_HOOK=$((PORT + 42))
(printf whsec_; head -c 32 /dev/urandom | base64) >"$WORK/fed/unhcr/webhook.secret"
chmod 600 "$WORK/fed/unhcr/webhook.secret"
printf '\n[webhook]\nurl = http://127.0.0.1:%d/tern\nmax_backoff = 1\n' "$U_HOOK" >>"$(conf unhcr)"
python3 "$RECV" --port "$U_HOOK" --secret-file "$WORK/fed/unhcr/webhook.secret" \
  --out "$WORK/unhcr.events" >>"$WORK/recv.log" 2>&1 &
PIDS[recv]=$!
start broker
start unhcr
wait_for 20 "unhcr to connect" connected unhcr

say "a referral to portugal (down) expires into the broker's dead-letter queue"
dead=$(referral_json FINAL-1 | "$TERN" send -c "$(conf unhcr)" --to portugal --ttl 1 case-referral -)
in_dlq() { "$TERN" dlq -c "$BCONF" list --json | grep -q "$dead"; }
wait_for 20 "the message to expire" in_dlq
wait_for 20 "unhcr to see it expired" state_is unhcr "$dead" expired
finals() { # STATE: the pushes taken by the receiver for $dead in STATE
  [[ -f $WORK/unhcr.events ]] || { echo 0; return; }
  python3 - "$WORK/unhcr.events" "$dead" "$1" <<'PY'
import json, sys
n = 0
for line in open(sys.argv[1]):
    e = json.loads(line)["event"]
    if e["type"] == "message.final" and e["data"]["messageId"] == sys.argv[2] \
            and e["data"]["state"] == sys.argv[3]:
        n += 1
print(n)
PY
}
has_final() { [[ $(finals "$1") -ge 1 ]]; }
wait_for 20 "the expired state pushed" has_final expired

say "retried, it reaches portugal: the delivered state is pushed too, under a new webhook-id"
"$TERN" dlq -c "$BCONF" retry "$dead" >/dev/null || fail "dlq retry failed"
start portugal
wait_for 60 "the retried message to be delivered" state_is unhcr "$dead" delivered
# The node posts the delivered state; a receiver that took the expired one
# under the same webhook-id drops it as a repeat.
sleep 5
[[ $(finals delivered) -ge 1 ]] || fail "unhcr's system never heard that $dead was delivered \
(repeats dropped by its receiver: $(tr '\n' ' ' <"$WORK/unhcr.events.repeats" 2>/dev/null))"
say "ok"
