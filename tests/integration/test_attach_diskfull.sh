#!/usr/bin/env bash
# A full disk at the recipient mid-transfer (docs/attachments.md): sweden's
# data directory is a 96 MiB tmpfs (in a private mount namespace), most of it
# taken by a filler file. A 40 MiB attachment then fills it: sweden keeps
# running, says why the transfer stalls (tern status: stalled, No space left
# on device; it keeps 32 MiB for its store), keeps what it counted, takes ordinary messages meanwhile, and
# the message is not in its inbox. When the filler goes, the transfer goes on
# from where it stopped and the attachment arrives byte-identical, once.
source "$(dirname "$0")/lib.sh"
if ! unshare -rm true 2>/dev/null; then
  echo "SKIP: this machine does not allow a private mount namespace (unshare -rm)"
  exit 77 # reported by ctest as skipped (cmake/TernTest.cmake), not as passed
fi
fed_make
c="$(conf sweden)"
sed -i "s|^api_socket = .*|api_socket = $WORK/sweden-api.sock|" "$c"
for n in broker unhcr; do start "$n"; done
unshare -rm bash -c "mount -t tmpfs -o size=96m tmpfs '$WORK/fed/sweden/data' && chmod 700 '$WORK/fed/sweden/data' && exec '$BIN/tern-node' -c '$c'" >>"$WORK/sweden.log" 2>&1 &
PIDS[sweden]=$!
wait_for 20 "sweden to connect" connected sweden
# sweden's tmpfs, as its node sees it
DATA=/proc/${PIDS[sweden]}/root$WORK/fed/sweden/data
head -c $((40 * 1024 * 1024)) /dev/zero >"$DATA/filler" 2>/dev/null || true

head -c $((40 * 1024 * 1024)) /dev/urandom >"$WORK/att.bin"
referral_json FULL-ATT >"$WORK/ref.json"
id=$("$TERN" send -c "$(conf unhcr)" --to sweden --attach "$WORK/att.bin:scan.bin" case-referral "$WORK/ref.json")
stalled() { "$TERN" status -c "$c" "$id" | grep -q "stalled.*No space left"; }
wait_for 60 "sweden's transfer of $id to stall on the full disk" stalled
got=$("$TERN" status -c "$c" --json "$id" | tr -d ' \n' | grep -o '"received_bytes":[0-9]*' | cut -d: -f2)
((got > 0)) || fail "nothing of $id was kept before the disk filled"
kill -0 "${PIDS[sweden]}" || fail "sweden's node died when its disk filled"
count_is sweden inbox 0 || fail "a message whose attachment is incomplete is in the inbox"
say "stalled at $got bytes: $("$TERN" status -c "$c" "$id" | grep stalled)"

# An ordinary message still gets through while the transfer waits.
small=$(referral_json FULL-SMALL | "$TERN" send -c "$(conf unhcr)" --to sweden case-referral -)
wait_for 60 "$small delivered while the disk is full" state_is unhcr "$small" delivered

say "space returns"
rm -f "$DATA/filler"
wait_for 120 "$id delivered" state_is unhcr "$id" delivered
grep "fetching $id" "$WORK/sweden.log" >/dev/null || fail "no fetch logged"
count_is sweden inbox 2 || fail "sweden's inbox does not hold exactly the two messages"
"$TERN" inbox -c "$c" attachment "$id" scan.bin --out "$WORK/got.bin" || fail "cannot read the attachment"
cmp -s "$WORK/att.bin" "$WORK/got.bin" || fail "the attachment is not byte-identical"
echo "it test_attach_diskfull: ok (stalled at $got bytes on a full disk, resumed when space returned)"
