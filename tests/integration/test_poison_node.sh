#!/usr/bin/env bash
# A node that dies on one message every time it is started (a bug one body
# triggers; here tests/tools/poison.c, preloaded, ends sweden as it checks the
# body of case PN-POISON), restarted each time as systemd would. The broker
# counts each restart against the entry the node had out ([delivery]
# max_attempts = 3), sends a counted entry alone, and
# dead-letters the poison message after three restarts (at most one counts
# an ack_timeout, 2 s here; sweden is restarted faster, so no acknowledgement
# timeout is what counts): the message before it,
# which went out in the same batch and died with it, and the one after it are
# delivered, once each; the poison message is not, and its sender is told.
source "$(dirname "$0")/lib.sh"
POISON="$BIN/libtern-poison.so"
[[ -f $POISON ]] || fail "no $POISON: build the tern-poison target"
fed_make
BCONF="$WORK/fed/broker/broker.conf"
printf '\n[delivery]\nmax_attempts = 3\nack_timeout = 2s\n' >>"$BCONF"
for n in broker unhcr; do start "$n"; done
wait_for 20 "unhcr to connect" connected unhcr

say "three referrals queued for sweden, which is down; the second is the poison"
m1=$(referral_json PN-1 | "$TERN" send -c "$(conf unhcr)" --to sweden case-referral -)
mp=$(referral_json PN-POISON | "$TERN" send -c "$(conf unhcr)" --to sweden case-referral -)
m3=$(referral_json PN-3 | "$TERN" send -c "$(conf unhcr)" --to sweden case-referral -)
wait_for 20 "the three at the broker" state_is unhcr "$m3" at-broker

# sweden, restarted whenever it dies, until the broker dead-letters the poison.
deaths=0
until=$((SECONDS + 60))
dead_lettered() { grep -q "dead-lettered seq [0-9]* for sweden after 3 attempts" "$WORK/broker.log"; }
until dead_lettered; do
  ((deaths < 100 && SECONDS < until)) ||
    fail "sweden died $deaths times and nothing was dead-lettered"
  # An ASan build's runtime must come first unless told not to check.
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
    TERN_POISON_CASE=PN-POISON LD_PRELOAD="$POISON" \
    "$BIN/tern-node" -c "$(conf sweden)" >>"$WORK/sweden.log" 2>&1 &
  PIDS[sweden]=$!
  until ! kill -0 "${PIDS[sweden]}" 2>/dev/null || dead_lettered; do sleep 0.1; done
  if ! kill -0 "${PIDS[sweden]}" 2>/dev/null; then
    wait "${PIDS[sweden]}" && rc=0 || rc=$?
    ((rc == 70)) || fail "sweden ended with $rc, not by the poison (70)"
    unset "PIDS[sweden]"
    deaths=$((deaths + 1))
    sleep 0.2 # well within an ack_timeout: restarts, not timeouts, are what count
  fi
done
say "the poison dead-lettered after sweden died $deaths times"
((deaths >= 3)) || fail "dead-lettered after $deaths deaths, fewer than max_attempts"
# The restarts counted against the poison itself (the first is PN-1's: it
# went out in the same batch and died with it, and is then sent alone).
pseq=$(grep -o "dead-lettered seq [0-9]* for sweden" "$WORK/broker.log" | head -1 | cut -d' ' -f3)
counted=$(grep -c "sweden restarted with seq $pseq delivered and not acknowledged" "$WORK/broker.log" || true)
((counted >= 2)) || fail "the broker counted $counted restarts against seq $pseq, the poison"
if [[ -z ${PIDS[sweden]:-} ]]; then
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
    TERN_POISON_CASE=PN-POISON LD_PRELOAD="$POISON" \
    "$BIN/tern-node" -c "$(conf sweden)" >>"$WORK/sweden.log" 2>&1 &
  PIDS[sweden]=$!
fi

wait_for 30 "$m1 delivered" state_is unhcr "$m1" delivered
wait_for 30 "$m3 delivered" state_is unhcr "$m3" delivered
wait_for 30 "unhcr to show $mp expired" state_is unhcr "$mp" expired
"$TERN" status -c "$(conf unhcr)" --json "$mp" | grep -q 'max-attempts' ||
  fail "unhcr does not name max-attempts for $mp"
kill -0 "${PIDS[sweden]}" 2>/dev/null || fail "sweden died after the poison was dead-lettered"
inbox=$("$TERN" inbox -c "$(conf sweden)" list --json)
for c in PN-1 PN-3; do
  n=$(grep -c "\"case_id\": \"$c\"" <<<"$inbox" || true)
  ((n == 1)) || fail "sweden's inbox holds $c $n times, not once"
done
! grep -q '"case_id": "PN-POISON"' <<<"$inbox" || fail "sweden's inbox holds the poison"
(($(grep -c "dead-lettered seq" "$WORK/broker.log") == 1)) ||
  fail "the broker dead-lettered more than the poison: $(grep "dead-lettered seq" "$WORK/broker.log")"
echo "it test_poison_node: ok"
