#!/usr/bin/env bash
# The recipient's disk full for a moment: sweden's store lives on a small
# tmpfs (in a private mount namespace), filled up once sweden has started.
# Messages keep coming from unhcr; sweden's commits fail; space returns at
# once, while deliveries are still coming. Every message reaches sweden's
# inbox exactly once, in order, and unhcr sees each delivered.
# Before, a delivery after a failed commit was taken, and its cumulative
# acknowledgement told the broker that sweden held the ones the failed commit
# had dropped: they were lost.
source "$(dirname "$0")/lib.sh"
if ! unshare -rm true 2>/dev/null; then
  echo "SKIP: this machine does not allow a private mount namespace (unshare -rm)"
  exit 77 # reported by ctest as skipped (cmake/TernTest.cmake), not as passed
fi
N=1000
fed_make
c="$(conf sweden)"
sed -i "s|^api_socket = .*|api_socket = $WORK/sweden-api.sock|" "$c"
for n in broker unhcr; do start "$n"; done
# Inside the namespace: the tmpfs, then the node. A helper in the same
# namespace fills the disk once the node is up (leaving a few pages) and
# empties it again when $WORK/free appears.
data="$WORK/fed/sweden/data"
unshare -rm bash -c "
  mount -t tmpfs -o size=4m tmpfs '$data' && chmod 700 '$data' || exit 1
  (
    until [ -S '$WORK/sweden-api.sock' ]; do sleep 0.1; done
    sleep 1
    dd if=/dev/zero of='$data/filler' bs=4k 2>/dev/null
    truncate -s -16k '$data/filler'
    touch '$WORK/full'
    until [ -e '$WORK/free' ]; do sleep 0.1; done
    rm -f '$data/filler'
  ) &
  exec '$BIN/tern-node' -c '$c'" >>"$WORK/sweden.log" 2>&1 &
PIDS[sweden]=$!
wait_for 20 "sweden to connect" connected sweden
wait_for 20 "sweden's disk to be filled" test -e "$WORK/full"

say "sending $N messages to sweden, whose disk is full"
"$FLOOD" "$WORK/fed/unhcr/data/api.sock" unhcr sweden "$N" FULL 2>"$WORK/flood.log" &
flood=$!
wait_for 60 "sweden's commits to fail" grep -q "commit failed" "$WORK/sweden.log"
# Space returns at once, while deliveries keep coming: the next commit
# succeeds, and its acknowledgement must not cover what the failed one lost.
say "space returns"
touch "$WORK/free"
wait "$flood" || fail "unhcr did not take the $N messages (see flood.log)"
kill -0 "${PIDS[sweden]}" || fail "sweden's node died when its disk filled"
wait_for 180 "all $N delivered at unhcr" count_is unhcr delivered "$N"
"$TERN" inbox -c "$c" list --json | grep -o '"case_id": "FULL-[0-9]*' | cut -d- -f2 >"$WORK/order"
got=$(wc -l <"$WORK/order")
[[ "$got" -eq "$N" ]] || fail "sweden's inbox holds $got messages, not $N"
[[ "$(sort -u "$WORK/order" | wc -l)" -eq "$N" ]] || fail "duplicates in sweden's inbox"
seq -f '%06g' 1 "$N" | cmp - "$WORK/order" || fail "sweden's inbox is not in sending order"
echo "it test_diskfull_recipient: ok ($N messages, sweden's disk full then freed)"
