#!/usr/bin/env bash
# examples/ works against a live federation, as examples/README.md says:
# the Python loop (send; the recipient hears by webhook, fetches, acknowledges;
# the sender hears by webhook it was delivered) and each curl script, run as
# a user would run them, with their answers checked here. They reach the
# nodes through a recording proxy (tests/tools/http_recorder.py), and every
# exchange is checked against docs/openapi.yaml at the end.
source "$(dirname "$0")/lib.sh"
EX="$ROOT/examples"

fed_make
U_API=$((PORT + 13)); S_API=$((PORT + 17)); U_HOOK=$((PORT + 42)); S_HOOK=$((PORT + 41))
for n in unhcr sweden; do
  (printf whsec_; head -c 32 /dev/urandom | base64) >"$WORK/fed/$n/webhook.secret"
  chmod 600 "$WORK/fed/$n/webhook.secret"
  port=$S_HOOK; [[ $n == unhcr ]] && port=$U_HOOK
  printf '\n[webhook]\nurl = http://127.0.0.1:%d/tern\nmax_backoff = 2\n' "$port" >>"$(conf "$n")"
  python3 "$EX/webhook_receiver.py" --port "$port" --secret-file "$WORK/fed/$n/webhook.secret" \
    --out "$WORK/$n.events" >>"$WORK/recv-$n.log" 2>&1 &
  PIDS[recv-$n]=$!
done
# The examples' way to each node's API: a proxy that records each exchange.
U_REC=$((PORT + 50)); S_REC=$((PORT + 51))
python3 "$ROOT/tests/tools/http_recorder.py" --listen "$U_REC" --to "$U_API" --log "$HTTP_LOG" >>"$WORK/rec.log" 2>&1 &
PIDS[rec-unhcr]=$!
python3 "$ROOT/tests/tools/http_recorder.py" --listen "$S_REC" --to "$S_API" --log "$HTTP_LOG" >>"$WORK/rec.log" 2>&1 &
PIDS[rec-sweden]=$!
for n in broker unhcr sweden; do start "$n"; done
wait_for 20 "unhcr to connect" connected unhcr
wait_for 20 "sweden to connect" connected sweden

say "examples/send_and_ack.py: send, webhook, fetch, ack, webhook delivered"
referral_json EX-1 >"$WORK/referral.json"
python3 "$EX/send_and_ack.py" --sender "http://127.0.0.1:$U_REC" --sender-token "$WORK/fed/unhcr/http.token" \
  --sender-events "$WORK/unhcr.events" --recipient "http://127.0.0.1:$S_REC" \
  --recipient-token "$WORK/fed/sweden/http.token" --recipient-events "$WORK/sweden.events" \
  --to sweden --type case-referral --body "$WORK/referral.json" >"$WORK/loop.out" 2>&1 ||
  { cat "$WORK/loop.out" >&2; fail "the Python loop did not close"; }
cat "$WORK/loop.out"
grep -q "^loop closed for " "$WORK/loop.out" || fail "the Python loop did not say it closed"
grep -q '[{}]' "$WORK/loop.out" && fail "the loop printed JSON (ids only, never a body)"

say "examples/curl: send, status, list, inbox_next, ack"
export TERN_URL="http://127.0.0.1:$U_REC" TERN_TOKEN_FILE="$WORK/fed/unhcr/http.token"
referral_json EX-2 >"$WORK/referral2.json"
"$EX/curl/send.sh" case-referral sweden "$WORK/referral2.json" curl-1 >"$WORK/send.out" ||
  fail "send.sh failed: $(cat "$WORK/send.out")"
id=$(jq -r .messageId "$WORK/send.out")
[[ $id =~ ^[0-9a-f-]{36}$ ]] || fail "send.sh printed no messageId: $(cat "$WORK/send.out")"
delivered() { [[ $("$EX/curl/status.sh" "$id" | jq -r .state) == delivered ]]; }
wait_for 20 "status.sh to say delivered" delivered
"$EX/curl/list.sh" "direction=sent&caseId=EX-2" >"$WORK/list.out" || fail "list.sh failed"
[[ $(jq -r '.messages[0].messageId' "$WORK/list.out") == "$id" ]] || fail "list.sh does not list $id: $(cat "$WORK/list.out")"
# A refusal: problem details on stderr, exit 1.
rc=0; "$EX/curl/status.sh" 01a20000-0000-7000-8000-000000000000 >/dev/null 2>"$WORK/err.out" || rc=$?
[[ $rc == 1 ]] && jq -e '.code == "not-found"' "$WORK/err.out" >/dev/null || fail "status.sh of an unknown id: exit $rc, $(cat "$WORK/err.out")"
export TERN_URL="http://127.0.0.1:$S_REC" TERN_TOKEN_FILE="$WORK/fed/sweden/http.token"
"$EX/curl/inbox_next.sh" 5000 >"$WORK/next.out" || fail "inbox_next.sh failed"
[[ $(jq -r .message.header.messageId "$WORK/next.out") == "$id" ]] || fail "inbox_next.sh did not give $id"
"$EX/curl/ack.sh" "$id" >/dev/null || fail "ack.sh failed"
[[ $("$EX/curl/inbox_next.sh" 0 | jq -r .message) == null ]] || fail "the inbox is not empty after ack.sh"
http_check
echo "it test_examples: ok"
