#!/usr/bin/env bash
# portugal's node is stopped while 1,000 messages queue for it at the broker;
# after it starts, every one arrives, in order, and is delivered at unhcr. Then
# the broker is down while 20 more wait in unhcr's outbox for longer than the
# broker's max_clock_skew: they are still taken and delivered.
source "$(dirname "$0")/lib.sh"
N=${TERN_OFFLINE_N:-1000}

fed_make
start broker
start unhcr
wait_for 20 "unhcr to connect" connected unhcr

say "sending $N messages to portugal while it is down"
"$FLOOD" "$WORK/fed/unhcr/data/api.sock" unhcr portugal "$N" OFFLINE
wait_for 60 "all $N at the broker" count_is unhcr at-broker "$N"

say "send --wait: runs out while portugal is down (exit 4), reports delivered once it is up"
rc=0
referral_json WAIT-1 | "$TERN" send -c "$(conf unhcr)" --to portugal --wait 1 case-referral - >"$WORK/w1.out" || rc=$?
[[ $rc -eq 4 ]] || { cat "$WORK/w1.out"; fail "send --wait exited $rc while portugal was down, want 4"; }
grep -qE '^[0-9a-f-]{36} (queued|at-broker)$' "$WORK/w1.out" || { cat "$WORK/w1.out"; fail "send --wait did not print the state so far"; }
N=$((N + 1))

say "starting portugal"
start portugal
wait_for 120 "all $N delivered" count_is unhcr delivered "$N"
referral_json WAIT-2 | "$TERN" send -c "$(conf unhcr)" --to portugal --wait 30 case-referral - >"$WORK/w2.out" ||
  { cat "$WORK/w2.out"; fail "send --wait did not exit 0 for a delivered message"; }
grep -qE '^[0-9a-f-]{36} delivered$' "$WORK/w2.out" || { cat "$WORK/w2.out"; fail "send --wait did not print delivered"; }
N=$((N + 1))
count_is portugal inbox "$N" || fail "portugal's inbox holds $(info_field portugal inbox), not $N"

"$TERN" inbox -c "$(conf portugal)" list --json | grep -o '"case_id": "OFFLINE-[0-9]*' |
  cut -d- -f2 >"$WORK/order"
seq -f '%06g' 1 "$((N - 2))" | cmp - "$WORK/order" || fail "portugal's inbox is not in sending order"
say "the broker down for longer than max_clock_skew: what waited in unhcr's outbox is still taken"
stop broker
sed -i '/^\[federation\]/a max_clock_skew = 2s' "$WORK/fed/broker/broker.conf"
"$FLOOD" "$WORK/fed/unhcr/data/api.sock" unhcr portugal 20 LATE
sleep 4 # every one of the 20 is now older than the broker's max_clock_skew
start broker
N=$((N + 20))
wait_for 60 "all $N delivered" count_is unhcr delivered "$N"
! grep -q "clock-skew" "$WORK/broker.log" || fail "the broker refused old messages as clock skew"
echo "it test_offline: ok"
