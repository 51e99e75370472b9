#!/usr/bin/env bash
# tern queues: with sweden's node down and 50 messages sent to it, the broker
# shows a depth of 50 for sweden, then 0 once sweden has them all; with the
# broker down, the same view comes read-only from its store. The human output
# is pinned by a golden file (volatile columns masked).
source "$(dirname "$0")/lib.sh"
BCONF="$WORK/fed/broker/broker.conf"

fed_make
start broker
start unhcr
wait_for 20 "unhcr to connect" connected unhcr
depth_of() { # NODE FILE: sweden's depth in a `tern queues --json` output
  python3 -c 'import json,sys
d=json.load(open(sys.argv[2]))
print(next((x["depth"] for x in d["destinations"] if x["id"]==sys.argv[1]), 0))' "$1" "$2"
}
depth_is() { "$TERN" queues -c "$BCONF" --json >"$WORK/q.json" && [[ $(depth_of "$1" "$WORK/q.json") == "$2" ]]; }

say "50 messages for sweden while its node is down"
"$FLOOD" "$WORK/fed/unhcr/data/api.sock" unhcr sweden 50 QUEUED
wait_for 30 "all 50 at the broker" count_is unhcr at-broker 50
depth_is sweden 50 || { cat "$WORK/q.json"; fail "the broker does not show 50 queued for sweden"; }
grep -q '"source": "daemon"' "$WORK/q.json" || fail "the live view does not say it is live"

mask() { # the columns that change from run to run: bytes and age
  awk 'NR<=2 {print; next} {printf "%-20s %7s %7s %7s %9s %8s %5s %-9s %s\n", $1, $2, "B", "AGE", $5, $6, $7, $8, $9}'
}
"$TERN" queues -c "$BCONF" | mask >"$WORK/live.txt"
diff -u "$GOLDEN/queues-live.txt" "$WORK/live.txt" || fail "tern queues (live) differs from its golden file"

say "queue show lists the headers, never a body; peers shows who is connected"
"$TERN" queue show -c "$BCONF" sweden >"$WORK/show.txt"
[[ $(grep -c "case-referral" "$WORK/show.txt") -eq 50 ]] || { cat "$WORK/show.txt"; fail "queue show does not list 50 referrals"; }
grep -q "QUEUED-000001" "$WORK/show.txt" || fail "queue show lacks the case ids"
grep -qi "givenName\|familyName\|needsSummary" "$WORK/show.txt" && fail "queue show printed a body"
"$TERN" peers -c "$BCONF" >"$WORK/peers.txt"
grep -qE "^unhcr +yes .*tern-node" "$WORK/peers.txt" || { cat "$WORK/peers.txt"; fail "peers does not show unhcr connected"; }
grep -qE "^sweden +no " "$WORK/peers.txt" || { cat "$WORK/peers.txt"; fail "peers does not show sweden away"; }

say "a message that expires is dead-lettered; retry queues it again, audited"
dead=$(referral_json DEAD-1 | "$TERN" send -c "$(conf unhcr)" --to portugal --ttl 1 case-referral -)
in_dlq() { "$TERN" dlq -c "$BCONF" list --json | grep -q "$dead"; }
wait_for 20 "the message to expire into the dead-letter queue" in_dlq
# The broker's counter of dead letters counts it, by its reason.
metric() { curl -sf "http://127.0.0.1:$((PORT + 1))/metrics" | grep -q "^$1\$"; }
wait_for 5 "the expired dead letter counted" metric 'tern_broker_dead_letters_total{reason="expired"} 1'
"$TERN" dlq -c "$BCONF" retry "$dead" | grep -q "requeued $dead" || fail "dlq retry did not say so"
in_dlq && fail "the retried message is still dead-lettered"
"$TERN" queue show -c "$BCONF" portugal --json | grep -q "\"message_id\": \"$dead\"" ||
  fail "the retried message is not queued for portugal"
if "$TERN" dlq -c "$BCONF" drop "$dead" 2>/dev/null; then fail "dropping a message not in the DLQ succeeded"; fi

say "the broker stopped: a read-only view of its store"
stop broker
"$TERN" queues -c "$BCONF" --json >"$WORK/q.json" || fail "no read-only view with the broker down"
grep -q '"source": "store"' "$WORK/q.json" || fail "the read-only view does not say so"
[[ $(depth_of sweden "$WORK/q.json") == 50 ]] || { cat "$WORK/q.json"; fail "read-only depth is not 50"; }
"$TERN" queues -c "$BCONF" | mask >"$WORK/store.txt"
diff -u "$GOLDEN/queues-store.txt" "$WORK/store.txt" || fail "tern queues (read-only) differs from its golden file"
"$TERN" queue show -c "$BCONF" sweden >"$WORK/show-ro.txt"
grep -q "read-only view" "$WORK/show-ro.txt" || fail "queue show: no read-only view"
"$TERN" dlq -c "$BCONF" list >"$WORK/dlq-ro.txt"
grep -q "read-only view" "$WORK/dlq-ro.txt" || fail "dlq list: no read-only view"
if "$TERN" dlq -c "$BCONF" retry "$dead" 2>"$WORK/retry.err"; then fail "dlq retry without the broker succeeded"; fi
grep -q "needs it" "$WORK/retry.err" || fail "dlq retry without the broker: no clear error"
# peers: the directory's members, none connected, the read-only view said on stderr.
"$TERN" peers -c "$BCONF" >"$WORK/peers-ro.txt" 2>"$WORK/peers-ro.err" ||
  { cat "$WORK/peers-ro.err"; fail "peers without the broker failed"; }
grep -q "not running.*read-only" "$WORK/peers-ro.err" || { cat "$WORK/peers-ro.err"; fail "peers does not say on stderr that its view is read-only"; }
grep -qE "^unhcr +no +- +- +[0-9]{4}-[0-9]{2}-[0-9]{2} " "$WORK/peers-ro.txt" || { cat "$WORK/peers-ro.txt"; fail "peers (read-only) does not list unhcr, not connected, with its certificate's expiry"; }
grep -qE "^sweden +no " "$WORK/peers-ro.txt" || { cat "$WORK/peers-ro.txt"; fail "peers (read-only) does not list sweden"; }
"$TERN" peers -c "$BCONF" --json >"$WORK/peers-ro.json" 2>/dev/null
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); p={x["id"]: x for x in d["peers"]}
sys.exit(0 if d["source"]=="directory" and {"unhcr","sweden","iom","portugal"} <= set(p) and "broker" not in p
         and not any(x["connected"] for x in p.values()) else 1)' "$WORK/peers-ro.json" ||
  { cat "$WORK/peers-ro.json"; fail "peers --json (read-only) is not the directory's members, none connected"; }
"$TERN" audit export -c "$BCONF" --out "$WORK/broker.tern-audit" >/dev/null
grep -qa "dlq-retry" "$WORK/broker.tern-audit" || fail "the retry is not in the broker's audit log"

say "sweden starts and takes them all"
start broker
start sweden
wait_for 60 "all 50 delivered" count_is unhcr delivered 50
wait_for 20 "sweden's queue to drain" depth_is sweden 0
first=$(grep -m1 -o '[0-9a-f]\{8\}-[0-9a-f-]\{27\}' "$WORK/show.txt")
"$TERN" status -c "$(conf unhcr)" "$first" >"$WORK/status.txt"
golden status-delivered.txt "$WORK/status.txt"

say "the retried message reaches portugal: its status no longer says expired"
start portugal
wait_for 60 "the retried message to be delivered" state_is unhcr "$dead" delivered
"$TERN" status -c "$(conf unhcr)" "$dead" >"$WORK/status-retried.txt"
golden status-delivered-retried.txt "$WORK/status-retried.txt"
"$TERN" status -c "$(conf unhcr)" --json "$dead" >"$WORK/status-retried.json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
sys.exit(0 if d["reason_code"]=="" and all(r["reason_code"]=="" for r in d["recipients"]) else 1)' \
  "$WORK/status-retried.json" || { cat "$WORK/status-retried.json"; fail "a delivered message still carries a reason"; }

say "a node's queues, live and (stopped) read-only"
"$TERN" queues -c "$(conf unhcr)" >"$WORK/node-live.txt"
grep -q "^node unhcr: running, connected" "$WORK/node-live.txt" || { cat "$WORK/node-live.txt"; fail "unhcr's live view does not name unhcr"; }
"$TERN" queues -c "$(conf unhcr)" --json >"$WORK/node-live.json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
sys.exit(0 if d["source"]=="daemon" and d["node_id"]=="unhcr" else 1)' "$WORK/node-live.json" ||
  { cat "$WORK/node-live.json"; fail "unhcr's live JSON view does not name unhcr"; }
stop unhcr
# A clean stop says Bye: the broker shows the node gone at once, not after
# its heartbeat timeout (15 s here), and says so in its log.
gone() { "$TERN" peers -c "$BCONF" | grep -qE "^unhcr +no "; }
wait_for 3 "the broker to show unhcr gone after its clean stop" gone
grep -q "unhcr stopped: route dropped" "$WORK/broker.log" || fail "the broker's log does not say unhcr stopped"
"$TERN" queues -c "$(conf unhcr)" --json >"$WORK/node-ro.json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
sys.exit(0 if d["source"]=="store" and d["counts"]["outbox"]["delivered"]==51 else 1)' "$WORK/node-ro.json" ||
  { cat "$WORK/node-ro.json"; fail "unhcr's read-only view does not show 51 delivered (50 and the retried one)"; }
grep -q '"node_id": "unhcr"' "$WORK/node-ro.json" || fail "unhcr's read-only view does not name unhcr"
echo "it test_queues: ok"
