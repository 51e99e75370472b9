#!/usr/bin/env bash
# Webhooks (docs/api.md, "Webhooks"): sweden's node pushes each received
# message to the agency's system, unhcr's each final state of a sent one,
# signed as Standard Webhooks says, received by examples/webhook_receiver.py
# (which verifies every signature and timestamp). sweden's receiver stops for
# 30 s while 200 messages of 10 cases arrive, and sweden's node is killed
# (-9) and started again meanwhile; once the receiver is back, each push
# arrives exactly once, in order per case. A receiver with the wrong secret
# refuses every push, and the node keeps them and counts the failures.
source "$(dirname "$0")/lib.sh"
RECV="$ROOT/examples/webhook_receiver.py"

fed_make
S_HOOK=$((PORT + 41)); U_HOOK=$((PORT + 42))
secret() { (printf whsec_; head -c 32 /dev/urandom | base64) >"$1"; chmod 600 "$1"; }
for n in sweden unhcr; do
  secret "$WORK/fed/$n/webhook.secret"
  port=$S_HOOK; [[ $n == unhcr ]] && port=$U_HOOK
  printf '\n[webhook]\nurl = http://127.0.0.1:%d/tern\nmax_backoff = 2\n' "$port" >>"$(conf "$n")"
done
"$BIN/tern-node" -n -c "$(conf sweden)" >/dev/null || fail "tern-node -n refuses the webhook settings"

# -n names a bad secret and a bad URL.
echo "not-a-secret" >"$WORK/fed/sweden/bad.secret"; chmod 600 "$WORK/fed/sweden/bad.secret"
printf 'secret_file = bad.secret\n' >>"$(conf sweden)"
out=$("$BIN/tern-node" -n -c "$(conf sweden)" 2>&1) && fail "tern-node -n took a secret without whsec_"
grep -q "whsec_" <<<"$out" || fail "tern-node -n does not say what the secret must be: $out"
sed -i '$d' "$(conf sweden)"

receiver() { # NAME PORT: start (or restart) a receiver
  python3 "$RECV" --port "$2" --secret-file "$WORK/fed/$1/webhook.secret" --out "$WORK/$1.events" \
    >>"$WORK/recv-$1.log" 2>&1 &
  PIDS[recv-$1]=$!
}
events() { [[ -f $WORK/$1.events ]] && wc -l <"$WORK/$1.events" || echo 0; }
events_are() { [[ $(events "$1") -ge $2 ]]; }

receiver sweden "$S_HOOK"; receiver unhcr "$U_HOOK"
for n in broker unhcr sweden; do start "$n"; done
wait_for 20 "unhcr to connect" connected unhcr
wait_for 20 "sweden to connect" connected sweden

say "5 referrals: sweden's system hears each received, unhcr's each delivered"
for i in 1 2 3 4 5; do referral_json W-0 | "$TERN" send -c "$(conf unhcr)" --to sweden case-referral - >/dev/null; done
wait_for 20 "5 pushes at sweden's receiver" events_are sweden 5
wait_for 20 "5 pushes at unhcr's receiver" events_are unhcr 5

say "sweden's system stops for 30 s; 200 messages of 10 cases arrive; sweden's node is killed and restarted"
kill "${PIDS[recv-sweden]}"; wait "${PIDS[recv-sweden]}" 2>/dev/null || true; unset "PIDS[recv-sweden]"
t0=$SECONDS
for i in $(seq 1 200); do
  referral_json "W-$((i % 10 + 1))" >"$WORK/r.json"
  "$TERN" send -c "$(conf unhcr)" --to sweden case-referral "$WORK/r.json" >/dev/null
done
wait_for 60 "sweden to take all 205" count_is sweden inbox 205
crash sweden
start sweden
wait_for 20 "sweden to connect again" connected sweden
pending() { "$TERN" queues -c "$(conf sweden)" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["webhooks"]["pending"])'; }
[[ $(pending) == 200 ]] || fail "sweden's queues show $(pending) webhook pushes pending, not 200"
# /metrics is published every 2 s: the first page after a start may come later.
metric_pending() { curl -sf "http://127.0.0.1:$((PORT + 16))/metrics" | grep -q '^tern_node_webhook_pending 200$'; }
wait_for 10 "sweden's /metrics to show 200 pushes pending" metric_pending
sleep $((30 - (SECONDS - t0) > 0 ? 30 - (SECONDS - t0) : 0))
[[ $(events sweden) == 5 ]] || fail "pushes arrived while sweden's receiver was down"

receiver sweden "$S_HOOK"
wait_for 60 "all 205 pushes at sweden's receiver" events_are sweden 205
wait_for 30 "all 205 final states at unhcr's receiver" events_are unhcr 205
sleep 1
python3 - "$WORK/sweden.events" "$WORK/unhcr.events" <<'PY' || fail "the pushes are not each once, in order per case (above)"
import collections, json, os, sys
s = [json.loads(l) for l in open(sys.argv[1])]
u = [json.loads(l) for l in open(sys.argv[2])]
for name, evs, kind in (("sweden", s, "message.received"), ("unhcr", u, "message.final")):
    ids = [e["id"] for e in evs]
    if len(ids) != 205 or len(set(ids)) != 205:
        sys.exit("%s: %d pushes, %d distinct, not 205" % (name, len(ids), len(set(ids))))
    if any(e["event"]["type"] != kind for e in evs):
        sys.exit("%s: a push is not %s" % (name, kind))
    rep = sys.argv[1 if name == "sweden" else 2] + ".repeats"
    if os.path.exists(rep) and os.path.getsize(rep):
        sys.exit("%s: pushes came twice: %s" % (name, open(rep).read().split()))
# In order per case: each case's pushes in the order sweden received them.
by_case = collections.defaultdict(list)
for e in s:
    by_case[e["event"]["data"]["caseId"]].append(e["event"]["data"]["receivedAt"])
for c, ts in by_case.items():
    if ts != sorted(ts):
        sys.exit("case %s: pushes out of order: %s" % (c, ts))
if len(by_case) != 11:
    sys.exit("%d cases, not 11" % len(by_case))
if any(e["event"]["data"]["state"] != "delivered" for e in u):
    sys.exit("unhcr: a final state is not delivered")
# ids, types and states only: no body in a push
for e in s:
    if set(e["event"]["data"]) != {"messageId", "caseId", "type", "sender", "receivedAt"}:
        sys.exit("a received push carries %s" % sorted(e["event"]["data"]))
PY
for n in sweden unhcr; do
  python3 "$ROOT/tests/tools/openapi_check.py" "$ROOT/docs/openapi.yaml" \
    "$ROOT/tests/data/openapi/oas-3.1-schema-2022-10-07.json" --pushes "$WORK/$n.events" ||
    fail "$n's pushes break docs/openapi.yaml's webhooks"
done
[[ $(pending) == 0 ]] || wait_for 10 "sweden's pending pushes to reach 0" test "$(pending)" = 0

say "a receiver with another secret refuses every push: the node keeps them and counts the failures"
kill "${PIDS[recv-unhcr]}"; wait "${PIDS[recv-unhcr]}" 2>/dev/null || true; unset "PIDS[recv-unhcr]"
cp "$WORK/fed/unhcr/webhook.secret" "$WORK/unhcr.secret.real"
secret "$WORK/fed/unhcr/webhook.secret" # the receiver reads this one; the node keeps the old
receiver unhcr "$U_HOOK"
referral_json W-X | "$TERN" send -c "$(conf unhcr)" --to sweden case-referral - >/dev/null
failures() { curl -sf "http://127.0.0.1:$((PORT + 12))/metrics" | awk '$1 == "tern_node_webhook_attempts_total{result=\"failed\"}" {print $2}'; }
some_failures() { [[ $(failures) -ge 2 ]]; }
wait_for 20 "unhcr to count failed attempts" some_failures
[[ $(events unhcr) == 205 ]] || fail "a push with a bad signature was taken"
echo "it test_webhook: ok"
