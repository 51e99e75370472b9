#!/usr/bin/env bash
# Disk full: unhcr's store lives on a 512 KiB tmpfs (in a private mount
# namespace). Sends succeed until the disk is full, then are refused with a
# clear error while the node keeps running; every send that was acknowledged
# reaches sweden, none half-written, none twice.
source "$(dirname "$0")/lib.sh"
if ! unshare -rm true 2>/dev/null; then
  echo "SKIP: this machine does not allow a private mount namespace (unshare -rm)"
  exit 77 # reported by ctest as skipped (cmake/TernTest.cmake), not as passed
fi
fed_make
c="$(conf unhcr)"
sed -i "s|^api_socket = .*|api_socket = $WORK/unhcr-api.sock|" "$c"
for n in broker sweden; do start "$n"; done
# The node runs inside the namespace, with its data directory on the tmpfs.
unshare -rm bash -c "mount -t tmpfs -o size=512k tmpfs '$WORK/fed/unhcr/data' && chmod 700 '$WORK/fed/unhcr/data' && exec '$BIN/tern-node' -c '$c'" >>"$WORK/unhcr.log" 2>&1 &
PIDS[unhcr]=$!
wait_for 20 "unhcr to connect" connected unhcr

say "sending until the disk is full"
sent=0 refused=0
for i in $(seq 1 3000); do
  if id=$(referral_json "FULL-$i" | "$TERN" send -c "$c" --to sweden case-referral - 2>"$WORK/err"); then
    echo "$id" >>"$WORK/sent"
    sent=$((sent + 1))
  else
    refused=$((refused + 1))
    ((refused >= 3)) && break
  fi
done
say "$sent sends acknowledged, then refused: $(head -1 "$WORK/err")"
((refused >= 3)) || fail "the 512 KiB disk never filled"
((sent >= 10)) || fail "only $sent sends fit on the disk"
grep -q "disk holding the store is full" "$WORK/err" || fail "the refusal does not say the store is full"
kill -0 "${PIDS[unhcr]}" || fail "unhcr's node died when the disk filled"
"$TERN" info -c "$c" >/dev/null || fail "unhcr's node no longer answers"

say "every acknowledged send reaches sweden, once"
arrived() { [[ $(info_field sweden inbox) -ge $sent ]]; }
wait_for 120 "sweden to hold the $sent acknowledged messages" arrived
"$TERN" inbox -c "$(conf sweden)" list --json | grep -o '"message_id": "[^"]*' | cut -d'"' -f4 | sort >"$WORK/got"
sort "$WORK/sent" | cmp - "$WORK/got" || fail "sweden's inbox is not exactly the acknowledged sends"
echo "it test_diskfull: ok"
