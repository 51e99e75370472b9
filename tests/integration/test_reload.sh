#!/usr/bin/env bash
# SIGHUP: the daemons reload the CA, CRL and directory without a restart.
# portugal is revoked and a new directory signed; after SIGHUP the broker and
# unhcr run on version 2, record the change in their audit logs, the broker
# shows portugal revoked, and a message to portugal is refused while one to
# sweden still arrives. An older directory put back is refused on SIGHUP.
source "$(dirname "$0")/lib.sh"
CA="$WORK/fed/ca"
BCONF="$WORK/fed/broker/broker.conf"

fed_make
for n in broker unhcr sweden; do start "$n"; done
wait_for 20 "unhcr to connect" connected unhcr
wait_for 20 "sweden to connect" connected sweden
cp "$CA/directory.tdir" "$WORK/directory-v1.tdir"

say "revoke portugal, sign directory version 2, SIGHUP"
"$TERN" ca revoke --ca "$CA" --node portugal --reason key-compromise >/dev/null
"$TERN" ca directory --ca "$CA" >/dev/null
kill -HUP "${PIDS[broker]}" "${PIDS[unhcr]}"
reloaded() { grep -q "reloaded: directory version 2 (was 1)" "$WORK/$1.log"; }
wait_for 10 "the broker to reload" reloaded broker
wait_for 10 "unhcr to reload" reloaded unhcr
"$TERN" peers -c "$BCONF" >"$WORK/peers.txt"
grep -qE "^portugal .*\(REVOKED\)" "$WORK/peers.txt" || { cat "$WORK/peers.txt"; fail "portugal not shown revoked"; }

say "portugal, revoked, cannot connect: its node will not start, the broker refuses its key"
if "$BIN/tern-node" -c "$(conf portugal)" -n >"$WORK/p-check.txt" 2>&1; then fail "revoked portugal's configuration checks out"; fi
grep -q "revoked" "$WORK/p-check.txt" || fail "portugal's check does not say it is revoked"
if "$BIN/zmq-probe" "tcp://127.0.0.1:$PORT" "$WORK/fed/broker/curve.key" "$WORK/fed/portugal/curve.key" >/dev/null; then
  fail "the broker answered revoked portugal"
fi
grep -q "refused a connection from portugal: revoked" "$WORK/broker.log" || fail "no log line for revoked portugal"

say "a message to portugal is refused, one to sweden arrives"
if referral_json RELOAD-1 | "$TERN" send -c "$(conf unhcr)" --to portugal case-referral - >"$WORK/p.out" 2>&1; then
  refused_at() { state_is unhcr "$(cat "$WORK/p.out")" rejected; }
  wait_for 20 "the message to portugal to be refused" refused_at
fi
ok=$(referral_json RELOAD-2 | "$TERN" send -c "$(conf unhcr)" --to sweden case-referral -)
wait_for 20 "the message to sweden to arrive" state_is unhcr "$ok" delivered

say "an older directory is refused on SIGHUP"
cp "$WORK/directory-v1.tdir" "$CA/directory.tdir"
kill -HUP "${PIDS[broker]}"
refused() { grep -q "reload refused" "$WORK/broker.log"; }
wait_for 10 "the broker to refuse the older directory" refused
"$TERN" peers -c "$BCONF" | grep -qE "^portugal .*\(REVOKED\)" || fail "the broker went back to version 1"

say "the changes are in the audit logs"
stop unhcr; stop broker
"$TERN" audit export -c "$BCONF" --out "$WORK/broker.tern-audit" >/dev/null
"$TERN" audit replay "$WORK/broker.tern-audit" --json >"$WORK/replay.json" || true
grep -q '"kind": "DIRECTORY_CHANGE"' "$WORK/replay.json" ||
  grep -qa "version 2" "$WORK/broker.tern-audit" || fail "no directory change in the broker's audit log"
echo "it test_reload: ok"
