#!/usr/bin/env bash
# A re-anchor is no proof of a restore (found by a review of tern audit
# reanchor): the request in a WitnessRequest is the owner's word (signed with
# its log key), and a witness takes it from any owner. An owner that rewrites its history
# on purpose (here: a RECEIVED dropped, the log signed again) and has a
# witness re-anchor it, without `tern audit reanchor` (nothing in its log
# asks for it), must not be reported as "given up at a restore ... at its
# owner's request (the store put back from a backup)": verify reported that,
# on nothing but the witness's REANCHORED entry. Now a re-anchor counts as
# one asked for only when the log re-anchored records the request (OPERATOR
# reanchor, below the checkpoint re-anchored); otherwise the history given
# up is reported as rewritten, as it was before re-anchoring existed.
source "$(dirname "$0")/lib.sh"

fed_make
for n in unhcr iom sweden; do
  printf '\n[audit]\ncheckpoint_interval = 1\n' >>"$(conf "$n")"
done
for n in broker unhcr iom sweden; do start "$n"; done
for n in unhcr iom sweden; do wait_for 20 "$n to connect" connected "$n"; done

audit_entries() { mdb_stat -s audit "$1" | awk '/Entries:/ {print $2}'; }

say "1. sweden's log, cosigned by unhcr"
ids=()
for i in 1 2 3; do
  id=$(referral_json "RW-$i" | "$TERN" send -c "$(conf unhcr)" --to sweden --wait 20 case-referral - | awk '{print $1}')
  [[ $id =~ ^[0-9a-f-]{36}$ ]] || fail "referral RW-$i was not delivered"
  ids+=("$id")
done
n=$(audit_entries "$WORK/fed/sweden/data")
wait_for 30 "unhcr to cosign sweden's log past the referrals" cosigned_above unhcr "$((n - 1))"

say "2. sweden's owner rewrites its history and has unhcr re-anchor it, with no request in its log"
stop sweden
"$TERN" audit export -c "$(conf sweden)" --out "$WORK/sweden.tern-audit" >/dev/null
"$BIN/tern-archive-edit" "$WORK/sweden.tern-audit" "$WORK/cut.tmp" drop RECEIVED "${ids[1]}" ||
  fail "cannot drop sweden's RECEIVED of RW-2"
"$BIN/tern-archive-edit" "$WORK/cut.tmp" "$WORK/sweden-rewritten.tern-audit" resign "$WORK/fed/sweden/node.key" ||
  fail "cannot sign the rewritten log"
"$BIN/tern-badpeer" "$WORK/fed/broker/broker.conf" "$WORK/fed/sweden" reanchor \
  "$WORK/sweden-rewritten.tern-audit" unhcr >"$WORK/reanchor.out" || true
cat "$WORK/reanchor.out"
grep -q "^cosigned " "$WORK/reanchor.out" || fail "unhcr did not re-anchor the rewritten log"
wait_for 10 "unhcr to log the re-anchor" grep -q "re-anchored sweden's log" "$WORK/unhcr.log"
grep -qa "reanchor" "$WORK/sweden-rewritten.tern-audit" && fail "the rewritten log holds a re-anchor request"

say "3. what the auditor sees"
for n in unhcr iom broker; do stop "$n"; done
for n in unhcr iom; do "$TERN" audit export -c "$(conf "$n")" --out "$WORK/$n.tern-audit" >/dev/null; done
rc=0
"$TERN" audit verify "$WORK"/{sweden-rewritten,unhcr,iom}.tern-audit >"$WORK/verify.txt" || rc=$?
cat "$WORK/verify.txt"
[[ $rc == 1 ]] || fail "verify exited $rc, not 1 (the history rewritten is a finding)"
# Rewritten at a size both hold, truncated beyond the rewritten log's end.
grep -qE "sweden-rewritten.tern-audit: (rewritten: unhcr cosigned this log's checkpoint of|unhcr cosigned this log at [0-9]+ entries .* truncated)" "$WORK/verify.txt" ||
  fail "verify does not report what unhcr cosigned before the rewrite as rewritten (or truncated)"
grep -qE "given up at a restore|at its owner's request|put back from a backup" "$WORK/verify.txt" &&
  fail "verify calls a rewrite with no request in the log a restore at its owner's request"
echo "it test_reanchor_rewrite: ok"
