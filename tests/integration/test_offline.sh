#!/usr/bin/env bash
# portugal's node is stopped while 1,000 messages queue for it at the broker;
# after it starts, every one arrives, in order, and is delivered at unhcr.
source "$(dirname "$0")/lib.sh"
N=${TERN_OFFLINE_N:-1000}

fed_make
start broker
start unhcr
wait_for 20 "unhcr to connect" connected unhcr

say "sending $N messages to portugal while it is down"
"$FLOOD" "$WORK/fed/unhcr/data/api.sock" unhcr portugal "$N" OFFLINE
wait_for 60 "all $N at the broker" count_is unhcr at-broker "$N"

say "starting portugal"
start portugal
wait_for 120 "all $N delivered" count_is unhcr delivered "$N"
count_is portugal inbox "$N" || fail "portugal's inbox holds $(info_field portugal inbox), not $N"

"$TERN" inbox -c "$(conf portugal)" list --json | grep -o '"case_id": "OFFLINE-[0-9]*' |
  cut -d- -f2 >"$WORK/order"
seq -f '%06g' 1 "$N" | cmp - "$WORK/order" || fail "portugal's inbox is not in sending order"
echo "it test_offline: ok"
