#!/usr/bin/env bash
# 10,000 messages unhcr -> sweden while the broker, unhcr's node and sweden's
# node are each killed with kill -9 at random points and restarted, round after
# round: afterwards sweden's inbox holds exactly the 10,000, in order, no
# duplicate, and unhcr sees every one delivered.
#   TERN_CRASH_N       messages (default 10000)
#   TERN_CRASH_KILLS   keep killing, during delivery too, until this many kills
#                      (default 0: only while the stream is being sent)
# The full run: TERN_CRASH_N=100000 TERN_CRASH_KILLS=100 tests/integration/test_crash.sh
# (by hand it takes the binaries of build/ after scripts/build.sh; TERN=
# .../bin/tern for another build's).
source "$(dirname "$0")/lib.sh"
N=${TERN_CRASH_N:-10000}
KILLS=${TERN_CRASH_KILLS:-0}

fed_make
for d in broker unhcr sweden; do start "$d"; done
wait_for 20 "unhcr to connect" connected unhcr

say "flooding $N messages"
"$FLOOD" "$WORK/fed/unhcr/data/api.sock" unhcr sweden "$N" CRASH 2>"$WORK/flood.log" &
flood=$!

kills=0
more() { kill -0 "$flood" 2>/dev/null || { ((kills < KILLS)) && ! count_is unhcr delivered "$N"; }; }
while more; do
  for victim in broker unhcr sweden; do
    sleep "0.$((RANDOM % 9 + 1))"
    more || break
    say "kill -9 $victim"
    crash "$victim"
    kills=$((kills + 1))
    sleep "0.$((RANDOM % 5))"
    start "$victim"
  done
done
wait "$flood" || fail "the flood did not finish (see flood.log)"
say "$N stored at unhcr after $kills kills; waiting for delivery"
((kills >= 3)) || fail "only $kills kills happened: the stream was too short to test anything"

wait_for 300 "all $N delivered at unhcr" count_is unhcr delivered "$N"
"$TERN" inbox -c "$(conf sweden)" list --json | grep -o '"case_id": "CRASH-[0-9]*' |
  cut -d- -f2 >"$WORK/order"
got=$(wc -l <"$WORK/order")
[[ "$got" -eq "$N" ]] || fail "sweden's inbox holds $got messages, not $N"
[[ "$(sort -u "$WORK/order" | wc -l)" -eq "$N" ]] || fail "duplicates in sweden's inbox"
seq -f '%06g' 1 "$N" | cmp - "$WORK/order" || fail "sweden's inbox is not in sending order"
# Restarts are not restores: no store may have been taken for a copy put back.
grep -h "store restored\|store is older" "$WORK"/*.log && fail "a restart was taken for a restore"
echo "it test_crash: ok ($N messages, $kills kills)"
