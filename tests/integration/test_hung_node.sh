#!/usr/bin/env bash
# A node hung on what it was sent (SIGSTOP: connected, taking nothing). The
# broker counts each acknowledgement timeout against the head of its queue
# ([delivery] max_attempts = 3, ack_timeout = 1 s here), `tern queues` shows
# the count, the third dead-letters the head, and the sender's node shows it
# expired with the reason. The hung node is then killed and started again: its
# new process's Hello counts the delivery it had out against the next head
# (the broker logs it), which the new process then takes. What came after the
# dead-lettered message is delivered, once; the dead-lettered one is not.
# Frozen again with one referral whose time-to-live ends after one counted
# attempt, the queue shows no attempts once it has expired: the count was that
# entry's.
source "$(dirname "$0")/lib.sh"
fed_make
BCONF="$WORK/fed/broker/broker.conf"
# The route stays while the node is frozen: only acknowledgement timeouts count.
printf '\n[delivery]\nmax_attempts = 3\nack_timeout = 1s\nheartbeat_timeout = 60s\n' >>"$BCONF"
for n in broker unhcr sweden; do start "$n"; done
wait_for 20 "unhcr to connect" connected unhcr
wait_for 20 "sweden to connect" connected sweden

# sweden's ATTEMPTS in the broker's live view (tern queues --json).
attempts() {
  "$TERN" queues -c "$BCONF" --json | python3 -c '
import json, sys
for d in json.load(sys.stdin)["destinations"]:
    if d["id"] == "sweden":
        print(d.get("attempts", 0))'
}
attempts_at_least() { (($(attempts) >= $1)); }

say "sweden frozen; two referrals for it"
kill -STOP "${PIDS[sweden]}"
m1=$(referral_json HUNG-1 | "$TERN" send -c "$(conf unhcr)" --to sweden case-referral -)
m2=$(referral_json HUNG-2 | "$TERN" send -c "$(conf unhcr)" --to sweden case-referral -)
wait_for 20 "an attempt counted in tern queues" attempts_at_least 1
wait_for 30 "the head dead-lettered after 3 attempts" \
  grep -q "dead-lettered seq [0-9]* for sweden after 3 attempts" "$WORK/broker.log"
wait_for 20 "unhcr to show $m1 expired" state_is unhcr "$m1" expired
"$TERN" status -c "$(conf unhcr)" --json "$m1" | grep -q 'max-attempts' ||
  fail "unhcr does not name max-attempts for $m1"
state_is unhcr "$m2" delivered && fail "$m2 delivered while sweden is frozen"

say "sweden killed and started again"
crash sweden
start sweden
wait_for 20 "sweden to connect again" connected sweden
wait_for 30 "$m2 delivered" state_is unhcr "$m2" delivered
grep -q "sweden restarted with seq [0-9]* delivered and not acknowledged (attempt [0-9]*)" \
  "$WORK/broker.log" || fail "the broker did not count the restart"
inbox=$("$TERN" inbox -c "$(conf sweden)" list --json)
grep -q '"case_id": "HUNG-2"' <<<"$inbox" || fail "sweden's inbox lacks HUNG-2"
! grep -q '"case_id": "HUNG-1"' <<<"$inbox" || fail "sweden's inbox holds the dead-lettered HUNG-1"
(($(grep -c "dead-lettered seq" "$WORK/broker.log") == 1)) ||
  fail "the broker dead-lettered more than the head: $(grep "dead-lettered seq" "$WORK/broker.log")"

say "sweden frozen again; a referral with a 2 s time-to-live"
kill -STOP "${PIDS[sweden]}"
lines=$(wc -l <"$WORK/broker.log")
m3=$(referral_json HUNG-3 | "$TERN" send -c "$(conf unhcr)" --to sweden --ttl 2 case-referral -)
# Counted for this referral: a line logged after it was sent (the first part's
# lines say the same of HUNG-1).
counted_since() { tail -n +$((lines + 1)) "$WORK/broker.log" |
  grep -q "no acknowledgement from sweden .*(attempt 1 of seq"; }
wait_for 20 "an attempt counted for the referral" counted_since
wait_for 30 "unhcr to show $m3 expired" state_is unhcr "$m3" expired
"$TERN" status -c "$(conf unhcr)" --json "$m3" | grep -q '"expired"' ||
  fail "unhcr does not name expired for $m3"
a=$(attempts)
((a == 0)) || fail "tern queues shows $a attempts for sweden's empty queue (the expired entry's)"
kill -CONT "${PIDS[sweden]}"
echo "it test_hung_node: ok"
