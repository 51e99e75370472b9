#!/usr/bin/env bash
# A node's store put back from a backup, then its log re-anchored (docs/
# operations.md, "Backup and restore"; docs/audit.md, "Witnessing"):
#   1. sweden's log is cosigned by unhcr and iom past a hot backup; the backup
#      is put back. The witnesses refuse its checkpoints (rollback) and keep
#      them as evidence; sweden's log tells the operator to run
#      `tern audit reanchor`. Before, sweden and each witness traded
#      `conflict` answers for good, and nothing was said or kept.
#   2. `tern audit reanchor`: each witness takes sweden's newest checkpoint as
#      its new start (a REANCHORED entry keeps what it gave up), and goes on
#      cosigning as sweden's log grows. Before, nothing re-anchored a
#      restored log: it was never witnessed again.
#   3. The auditor: `tern audit verify` of every archive reports the history
#      given up at the restore as such, names no other finding, and sweden's
#      own log holds the operator's request.
source "$(dirname "$0")/lib.sh"

fed_make
for n in unhcr iom sweden; do
  printf '\n[audit]\ncheckpoint_interval = 1\n' >>"$(conf "$n")"
done
for n in broker unhcr iom sweden; do start "$n"; done
for n in unhcr iom sweden; do wait_for 20 "$n to connect" connected "$n"; done

audit_entries() { mdb_stat -s audit "$1" | awk '/Entries:/ {print $2}'; }
declare -A REF
send_some() { # N CASE: N referrals unhcr -> sweden, delivered; ids in REF[CASE-i]
  for i in $(seq "$1"); do
    id=$(referral_json "$2-$i" | "$TERN" send -c "$(conf unhcr)" --to sweden --wait 20 case-referral - | awk '{print $1}')
    [[ $id =~ ^[0-9a-f-]{36}$ ]] || fail "referral $2-$i was not delivered"
    REF[$2-$i]=$id
  done
}

say "1. sweden's log cosigned past a hot backup; the backup put back"
send_some 6 BEFORE
"$TERN" backup -c "$(conf sweden)" --out "$WORK/sweden-backup" >/dev/null || fail "tern backup failed"
b=$(audit_entries "$WORK/sweden-backup")
[[ $b =~ ^[0-9]+$ ]] || fail "cannot read the backup's audit log size"
# After the copy, sweden's own sends (its decisions: never delivered to it
# again) grow its log well past what the restore gives back (the broker
# delivers the referral again), so that the restored log is shorter than
# what its witnesses cosigned: rollback.
for i in $(seq 6); do
  id=$(decision_json "BEFORE-$i" "${REF[BEFORE-$i]}" | "$TERN" send -c "$(conf sweden)" --to unhcr --wait 20 acceptance-decision - | awk '{print $1}')
  [[ $id =~ ^[0-9a-f-]{36}$ ]] || fail "sweden's decision on BEFORE-$i was not delivered"
done
send_some 1 AFTER
for w in unhcr iom; do wait_for 30 "$w to cosign sweden's log well past the backup ($b entries)" cosigned_above "$w" "$((b + 12))"; done
stop sweden
mv "$WORK/fed/sweden/data" "$WORK/fed/sweden/data.replaced"
mv "$WORK/sweden-backup" "$WORK/fed/sweden/data"
start sweden
wait_for 20 "sweden to connect again" connected sweden
send_some 1 RESTORED # a real event: a checkpoint and a round
for w in unhcr iom; do
  wait_for 30 "$w to refuse sweden's restored log (rollback)" \
    grep -qE "$w refused to cosign our checkpoint of [0-9]+ entries: rollback .*tern audit reanchor" "$WORK/sweden.log"
done
grep -q "re-anchored this log" "$WORK/sweden.log" && fail "a witness took the restored log before any re-anchor"
# What the operator sees: the witnesses refuse.
"$TERN" info -c "$(conf sweden)" | tee "$WORK/info1.txt" | grep "^witnessed"
grep -qE "^witnessed .*unhcr refuses \(rollback\)" "$WORK/info1.txt" ||
  fail "tern info does not show that unhcr refuses sweden's restored log"
# unhcr's log exported now, and continued after the re-anchor (step 3): an
# auditor may hold a witness's log in several exports.
unhcr_first_export() {
  "$TERN" audit export -c "$(conf unhcr)" --out "$WORK/unhcr-1.tern-audit" >/dev/null 2>&1 &&
    grep -qa rollback "$WORK/unhcr-1.tern-audit"
}
wait_for 30 "unhcr's export to hold its refusal of sweden's log" unhcr_first_export

say "2. tern audit reanchor"
"$TERN" audit reanchor -c "$(conf sweden)" | tee "$WORK/reanchor.out"
grep -q "asked this node's witnesses to re-anchor" "$WORK/reanchor.out" || fail "tern audit reanchor says nothing of what it did"
for w in unhcr iom; do
  wait_for 30 "$w to re-anchor sweden's log" grep -q "$w re-anchored this log: it witnesses it again" "$WORK/sweden.log"
  grep -q "re-anchored sweden's log at its checkpoint of" "$WORK/$w.log" || fail "$w's log does not say it re-anchored sweden's log"
done
now=$(audit_entries "$WORK/fed/sweden/data")
send_some 2 LATER
for w in unhcr iom; do wait_for 30 "$w to cosign sweden's log as it grows" cosigned_above "$w" "$now"; done
"$TERN" info -c "$(conf sweden)" | tee "$WORK/info2.txt" | grep -E "^(witnessed|reanchor)"
grep -qE "^witnessed .*unhcr at [0-9]+ entries" "$WORK/info2.txt" && grep -q "^reanchor   asked" "$WORK/info2.txt" &&
  ! grep -q "refuses" "$WORK/info2.txt" || fail "tern info does not show sweden's log witnessed again"
"$TERN" info -c "$(conf sweden)" --json | python3 -c '
import json, sys
a = json.load(sys.stdin)["audit"]
w = {x["id"]: x for x in a["witnesses"]}
assert w["unhcr"]["cosigned"] > 0 and "refused" not in w["unhcr"] and "until" in a["reanchor"], a' ||
  fail "tern info --json does not show sweden's witnesses"
# Asked of a node never put back (an operator's mistake): nothing is
# re-anchored, and no log says otherwise.
"$TERN" audit reanchor -c "$(conf unhcr)" >/dev/null || fail "tern audit reanchor (unhcr) failed"
now=$(audit_entries "$WORK/fed/unhcr/data")
send_some 1 UNHCR
for w in iom sweden; do wait_for 30 "$w to cosign unhcr's log after the request" cosigned_above "$w" "$now" unhcr; done
grep -q "re-anchored this log" "$WORK/unhcr.log" && fail "unhcr's log says a witness re-anchored it, never put back"
for w in iom sweden; do grep -q "re-anchored unhcr's log" "$WORK/$w.log" && fail "$w re-anchored unhcr's log, never put back"; done
"$TERN" audit reanchor -c "$WORK/nowhere.conf" >/dev/null 2>&1 && fail "tern audit reanchor with no node succeeded"
rc=0
"$TERN" audit reanchor -c "$WORK/fed/broker/broker.conf" >/dev/null 2>"$WORK/rb.err" || rc=$?
[[ $rc == 2 ]] && grep -q "reanchor is for a node" "$WORK/rb.err" ||
  fail "tern audit reanchor on a broker's configuration does not say it is for a node (exit $rc: $(cat "$WORK/rb.err"))"
rc=0
"$TERN" audit reanchor >/dev/null 2>&1 || rc=$?
[[ $rc == 2 ]] || fail "tern audit reanchor without -c is not a usage error (exit $rc)"

say "3. what the auditor sees"
for n in unhcr iom sweden broker; do stop "$n"; done
for n in unhcr iom sweden; do "$TERN" audit export -c "$(conf "$n")" --out "$WORK/$n.tern-audit" >/dev/null; done
"$TERN" audit export -c "$WORK/fed/broker/broker.conf" --out "$WORK/broker.tern-audit" >/dev/null
rc=0
"$TERN" audit verify "$WORK"/{unhcr,iom,sweden,broker}.tern-audit >"$WORK/verify.txt" || rc=$?
cat "$WORK/verify.txt"
[[ $rc == 1 ]] || fail "verify exited $rc, not 1 (the history given up is a finding)"
for w in unhcr iom; do
  grep -q "sweden.tern-audit: given up at a restore: $w cosigned this log's checkpoint of" "$WORK/verify.txt" ||
    fail "verify does not report what $w cosigned before the restore as given up"
done
grep -v "given up at a restore" "$WORK/verify.txt" | grep -v ": ok: " | grep -q . &&
  fail "verify reports more than the history given up"
for n in unhcr iom broker; do grep -q "$n.tern-audit: ok: " "$WORK/verify.txt" || fail "$n's archive does not verify clean"; done
grep -qa "reanchor" "$WORK/sweden.tern-audit" || fail "sweden's log does not hold the operator's request"
# The same with unhcr's log in two exports, the re-anchor in the second:
# what unhcr cosigned before, in the first, was reported as rewritten.
"$TERN" audit export -c "$(conf unhcr)" --previous "$WORK/unhcr-1.tern-audit" --out "$WORK/unhcr-2.tern-audit" >/dev/null
"$TERN" audit verify "$WORK"/{sweden,unhcr-1,unhcr-2,iom}.tern-audit >"$WORK/verify2.txt" || true
grep "sweden.tern-audit: " "$WORK/verify2.txt" || true
grep -q "sweden.tern-audit: given up at a restore: unhcr cosigned this log's checkpoint of" "$WORK/verify2.txt" ||
  fail "with unhcr's log in two exports, verify does not report what unhcr cosigned before the restore as given up"
grep "sweden.tern-audit: " "$WORK/verify2.txt" | grep -qv "given up at a restore" &&
  fail "with unhcr's log in two exports, verify reports more of sweden's log than the history given up"
echo "it test_reanchor: ok"
