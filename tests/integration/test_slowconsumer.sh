#!/usr/bin/env bash
# A stalled consumer: sweden's node is frozen (SIGSTOP: connected, taking
# nothing) while unhcr sends it TERN_SLOW_N messages. The broker's memory stays
# bounded (the backlog lives in LMDB, deliveries in flight are capped by
# credit), and once sweden resumes every message arrives, in order.
source "$(dirname "$0")/lib.sh"
N=${TERN_SLOW_N:-10000}
# Under AddressSanitizer freed memory waits in a 256 MB quarantine, which would
# read as growth here: keep it small (no effect on other builds).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1"
fed_make
for n in broker unhcr sweden; do start "$n"; done
wait_for 20 "unhcr to connect" connected unhcr
wait_for 20 "sweden to connect" connected sweden
anon_kb() { awk '/^RssAnon:/ {print $2}' "/proc/${PIDS[broker]}/status"; }

"$FLOOD" "$WORK/fed/unhcr/data/api.sock" unhcr sweden 200 WARM
wait_for 30 "the warm-up to be delivered" count_is unhcr delivered 200
before=$(anon_kb)
say "sweden frozen; $N messages for it (broker anonymous memory: ${before} kB)"
kill -STOP "${PIDS[sweden]}"
"$FLOOD" "$WORK/fed/unhcr/data/api.sock" unhcr sweden "$N" SLOW
wait_for 300 "all $N at the broker" count_is unhcr at-broker "$N"
after=$(anon_kb)
bytes=$(du -sk "$WORK/fed/broker/data" | cut -f1)
say "backlog of $N at the broker (store ${bytes} kB); anonymous memory ${after} kB"
# Holding the backlog in memory would cost about the store's size; allow a quarter.
((after - before < bytes / 4)) ||
  fail "the broker's memory grew by $((after - before)) kB with a ${bytes} kB backlog"

say "sweden resumes"
kill -CONT "${PIDS[sweden]}"
wait_for 300 "all $N delivered" count_is unhcr delivered "$((N + 200))"
"$TERN" inbox -c "$(conf sweden)" list --json | grep -o '"case_id": "SLOW-[0-9]*' | cut -d- -f2 >"$WORK/order"
seq -f '%06g' 1 "$N" | cmp - "$WORK/order" || fail "sweden's inbox is not the $N in order"
echo "it test_slowconsumer: ok"
