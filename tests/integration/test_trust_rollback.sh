#!/usr/bin/env bash
# Trust material never goes backwards (finding 2 of the edge review). iom is
# revoked (CRL number 2, directory version 2). The CRL from before the
# revocation, copied back and SIGHUPed, used to be taken ("reloaded:
# directory version 2 (was 2)") and iom admitted again. Now, at the broker
# and at a node, on reload and on start (and with -n):
# - an older CRL is refused with an error naming both numbers, an audit entry
#   and a metric, and the CRL in force stays (iom stays out);
# - an older directory is refused the same way across a restart, where there
#   is no directory in memory to compare with: the store keeps the mark.
source "$(dirname "$0")/lib.sh"
CA="$WORK/fed/ca"
BCONF="$WORK/fed/broker/broker.conf"
BMETRICS=$((PORT + 1))
fed_make
for n in broker unhcr sweden; do start "$n"; done
wait_for 20 "unhcr to connect" connected unhcr
wait_for 20 "sweden to connect" connected sweden
cp "$CA/crl.pem" "$WORK/crl-1.pem"
cp "$CA/directory.tdir" "$WORK/directory-1.tdir"
iom_refused() { ! "$BIN/zmq-probe" "tcp://127.0.0.1:$PORT" "$WORK/fed/broker/curve.key" "$WORK/fed/iom/curve.key" >/dev/null; }
"$BIN/zmq-probe" "tcp://127.0.0.1:$PORT" "$WORK/fed/broker/curve.key" "$WORK/fed/iom/curve.key" >/dev/null ||
  fail "iom is not admitted before its revocation"

say "revoke iom: CRL number 2, directory version 2, SIGHUP"
"$TERN" ca revoke --ca "$CA" --node iom --reason key-compromise >/dev/null
"$TERN" ca directory --ca "$CA" >/dev/null
cp "$CA/crl.pem" "$WORK/crl-2.pem"
kill -HUP "${PIDS[broker]}" "${PIDS[unhcr]}"
reloaded() { grep -q "reloaded: directory version 2 (was 1)" "$WORK/$1.log"; }
wait_for 10 "the broker to reload" reloaded broker
wait_for 10 "unhcr to reload" reloaded unhcr
iom_refused || fail "revoked iom is admitted"

say "the CRL from before the revocation, copied back and SIGHUPed: refused"
cp "$WORK/crl-1.pem" "$CA/crl.pem"
kill -HUP "${PIDS[broker]}" "${PIDS[unhcr]}"
refused() { grep -q "reload refused: .*CRL is number 1, older than number 2" "$WORK/$1.log"; }
wait_for 10 "the broker to refuse the older CRL" refused broker
wait_for 10 "unhcr to refuse the older CRL" refused unhcr
iom_refused || fail "iom was admitted again after the older CRL was put back"
"$TERN" peers -c "$BCONF" | grep -qE "^iom .*\(REVOKED\)" || fail "the broker no longer shows iom revoked"
metric() { curl -sf "http://127.0.0.1:$BMETRICS/metrics" | grep -q "^$1\$"; }
wait_for 5 "the refusal counted in /metrics" metric 'tern_trust_rollbacks_refused_total{what="crl"} 1'
metric "tern_crl_number 2" || fail "/metrics does not show CRL number 2 in force"
ok=$(referral_json ROLLBACK-1 | "$TERN" send -c "$(conf unhcr)" --to sweden case-referral -)
wait_for 20 "a message to sweden to arrive" state_is unhcr "$ok" delivered

say "a restart with the older CRL is refused, -n too, naming both numbers"
stop broker
if "$BIN/tern-broker" -c "$BCONF" -n >"$WORK/n.out" 2>&1; then cat "$WORK/n.out"; fail "-n accepts the older CRL"; fi
grep -q "CRL is number 1, older than number 2" "$WORK/n.out" || { cat "$WORK/n.out"; fail "-n does not name both numbers"; }
if "$BIN/tern-broker" -c "$BCONF" >"$WORK/start.out" 2>&1; then fail "the broker started with the older CRL"; fi
grep -q "CRL is number 1, older than number 2" "$WORK/start.out" || { cat "$WORK/start.out"; fail "the refused start does not name both numbers"; }
stop unhcr
if "$BIN/tern-node" -c "$(conf unhcr)" >"$WORK/ustart.out" 2>&1; then fail "unhcr started with the older CRL"; fi
grep -q "CRL is number 1, older than number 2" "$WORK/ustart.out" || { cat "$WORK/ustart.out"; fail "unhcr's refused start does not name both numbers"; }

say "an older directory (with the newest CRL) across a restart: refused"
cp "$WORK/crl-2.pem" "$CA/crl.pem"
cp "$WORK/directory-1.tdir" "$CA/directory.tdir"
if "$BIN/tern-broker" -c "$BCONF" >"$WORK/start2.out" 2>&1; then fail "the broker started with directory version 1"; fi
grep -q "directory is version 1, older than version 2" "$WORK/start2.out" || { cat "$WORK/start2.out"; fail "the refused start does not name both versions"; }
if "$BIN/tern-broker" -c "$BCONF" -n >"$WORK/n2.out" 2>&1; then fail "-n accepts directory version 1"; fi

say "the newest material back: the broker starts, iom stays out"
"$TERN" ca directory --ca "$CA" >/dev/null # version 3, as a CA operator would re-sign
start broker
start unhcr
wait_for 20 "unhcr to connect" connected unhcr
iom_refused || fail "iom is admitted after the restart"

say "the refusals are in the audit logs"
stop unhcr
stop broker
"$TERN" audit export -c "$BCONF" --out "$WORK/broker.tern-audit" >/dev/null
"$TERN" audit export -c "$(conf unhcr)" --out "$WORK/unhcr.tern-audit" >/dev/null
for a in broker unhcr; do
  grep -qa "rollback" "$WORK/$a.tern-audit" || fail "no rollback refusal in $a's audit log"
done
"$TERN" audit verify "$WORK/broker.tern-audit" "$WORK/unhcr.tern-audit" >/dev/null 2>&1 ||
  fail "the audit logs do not verify"
say "ok"
