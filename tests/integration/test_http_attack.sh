#!/usr/bin/env bash
# Hostile request bodies at the HTTP API (docs/api.md, "Conventions"):
# - an unknown field whose name is long and not ASCII is a 400 naming it, not
#   a 503 (a client retries a 503 for ever): the detail cuts the name at 64
#   bytes, and must not cut a character in two;
# - a clientRef's fingerprint cannot be matched by a different send whose
#   fields only shift a character across a field boundary (inReplyTo's last
#   character into ttlSeconds): that send is not "the same" (a 200 duplicate
#   naming a message it is not), it is a 409 or refused;
# - inReplyTo "" is none, as clientRef "" is and as in a binary send (ApiSend):
#   a decision with it takes its reference from the body, not a 400.
source "$(dirname "$0")/lib.sh"

fed_make
for n in broker unhcr sweden; do start "$n"; done
wait_for 20 "unhcr to connect" connected unhcr
UNHCR_API=$((PORT + 13))
TOKF="$WORK/fed/unhcr/http.token"
referral_json ATT-1 >"$WORK/body.json"
mkreq() { # KEY=JSON-VALUE ...: the referral request with these fields set
  python3 - "$WORK/body.json" "$@" <<'PY'
import json, sys
r = {"type": "case-referral", "to": ["sweden"], "body": json.load(open(sys.argv[1]))}
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    r[k] = json.loads(v)
print(json.dumps(r, ensure_ascii=False))
PY
}
post() { hreq "$1" POST "$UNHCR_API" /v1/messages "$TOKF" -H 'Content-Type: application/json' --data-binary @"$2"; }

say "an unknown field named a and 40 two-byte characters: 400, not 503"
mkreq "a$(printf 'é%.0s' $(seq 40))=1" >"$WORK/u8.json"
code=$(post u8 "$WORK/u8.json")
[[ $code == 400 ]] || fail "a long non-ASCII unknown field answered $code, not 400"

say "clientRef: a shifted inReplyTo/ttlSeconds is another send, not a retry"
first="01900000-0000-7000-8000-000000000001"
mkreq clientRef='"att-fp"' inReplyTo="\"$first\"" ttlSeconds=600 >"$WORK/a.json"
code=$(post a "$WORK/a.json")
[[ $code == 201 ]] || { cat "$WORK/a.out"; fail "the first send answered $code, not 201"; }
mkreq clientRef='"att-fp"' inReplyTo="\"${first%1}\"" ttlSeconds=1600 >"$WORK/b.json"
code=$(post b "$WORK/b.json")
[[ $code != 200 ]] || fail "a send with another inReplyTo and ttlSeconds was taken as a retry of the first (200 duplicate)"
say "a decision with inReplyTo \"\" takes the body's reference, as a binary send does"
wait_for 20 "sweden to connect" connected sweden
mkreq clientRef='"att-ref"' >"$WORK/r.json"
code=$(post r "$WORK/r.json")
[[ $code == 201 ]] || { cat "$WORK/r.out"; fail "the referral answered $code, not 201"; }
rid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["messageId"])' "$WORK/r.out")
wait_for 20 "the referral to be delivered" state_is unhcr "$rid" delivered
decision_json ATT-1 "$rid" >"$WORK/dec.json"
python3 -c 'import json,sys; print(json.dumps({"type": "acceptance-decision", "to": ["unhcr"], "inReplyTo": "",
  "body": json.load(open(sys.argv[1]))}))' "$WORK/dec.json" >"$WORK/d.json"
code=$(hreq d POST $((PORT + 17)) /v1/messages "$WORK/fed/sweden/http.token" -H 'Content-Type: application/json' \
  --data-binary @"$WORK/d.json")
[[ $code == 201 ]] || { cat "$WORK/d.out"; fail "a decision with inReplyTo \"\" answered $code, not 201"; }
http_check
say "ok"
