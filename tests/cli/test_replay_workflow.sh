#!/usr/bin/env bash
# tern audit replay applies the workflow table (docs/messages.md) across the
# agencies' archives: each case a review found delivered (issue 15) is
# injected into archives as the nodes would have recorded its delivery, and
# replay must report exactly one finding naming the rule; a normal flow gives
# none. No daemon runs: a development federation's node stores get the
# entries from tern-audit-append, then `tern audit export` writes the archives.
set -euo pipefail

: "${TERN:?set TERN to the tern binary}"
BIN=$(dirname "$TERN")
work=$(mktemp -d /tmp/tern-cli-replay-XXXXXX)
trap '[[ -n ${KEEP:-} ]] || rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$TERN" dev-federation "$work/fed" >/dev/null
nodes=(unhcr sweden portugal iom)
t=1795390000000 # ms; each message a second after the one before

# msg FROM TO[,TO...] TYPE ID CASE VALUE REF: the entries a delivery leaves:
# SENT at the sender, RECEIVED and a receipt at each recipient, the receipt
# at the sender.
msg() {
	local from=$1 tos=$2 type=$3 id=$4 case=$5 value=${6:--} ref=${7:--} to
	t=$((t + 1000))
	IFS=, read -ra to <<<"$tos"
	for r in "${to[@]}"; do
		echo "SENT $r $type $id $case $value $ref $t" >>"$work/$from.in"
	done
	for r in "${to[@]}"; do
		echo "RECEIVED $from $type $id $case $value $ref $((t + 10))" >>"$work/$r.in"
		echo "RECEIPT_SENT $from receipt rc-$id-$r - delivered $id $((t + 20))" >>"$work/$r.in"
		echo "RECEIPT_RECEIVED $r $type $id $case delivered - $((t + 30))" >>"$work/$from.in"
	done
}

# The normal flow: referral, accepted, travel booked and arrived.
msg unhcr sweden case-referral ok-r GOOD-1
msg sweden unhcr,iom acceptance-decision ok-d GOOD-1 ACCEPTED ok-r
msg iom sweden,unhcr travel-confirmation ok-t1 GOOD-1 BOOKED ok-d
msg iom sweden,unhcr travel-confirmation ok-t2 GOOD-1 ARRIVED ok-d
# (a) sweden decides on a case unhcr referred to portugal.
msg unhcr portugal case-referral a-r CASE-A
msg sweden unhcr,iom acceptance-decision a-d CASE-A ACCEPTED a-r
# (b) a travel confirmation citing a decision that exists nowhere.
msg unhcr sweden case-referral b-r CASE-B
msg sweden unhcr,iom acceptance-decision b-d CASE-B ACCEPTED b-r
msg iom sweden,unhcr travel-confirmation b-t CASE-B BOOKED no-such-decision
# (c) a travel confirmation citing D1 after D2 rejected the case.
msg unhcr sweden case-referral c-r CASE-C
msg sweden unhcr,iom acceptance-decision c-d1 CASE-C ACCEPTED c-r
msg sweden unhcr,iom acceptance-decision c-d2 CASE-C REJECTED c-r
msg iom sweden,unhcr travel-confirmation c-t CASE-C BOOKED c-d1
# (d) a referral to IOM (movement role).
msg unhcr iom case-referral d-r CASE-D
# (e) a departure after the arrival.
msg unhcr sweden case-referral e-r CASE-E
msg sweden unhcr,iom acceptance-decision e-d CASE-E ACCEPTED e-r
msg iom sweden,unhcr travel-confirmation e-t1 CASE-E BOOKED e-d
msg iom sweden,unhcr travel-confirmation e-t2 CASE-E ARRIVED e-d
msg iom sweden,unhcr travel-confirmation e-t3 CASE-E DEPARTED e-d
# A refused message moves nothing: the decision on portugal's referral is
# refused, so the travel that follows it cites a decision no one holds.
msg unhcr portugal case-referral f-r CASE-F
msg sweden unhcr,iom acceptance-decision f-d CASE-F ACCEPTED f-r
msg iom sweden,unhcr travel-confirmation f-t CASE-F BOOKED f-d
# A referral from unhcr to itself, delivered (as before the table).
msg unhcr unhcr case-referral g-r CASE-G
# A referral to two States at once (a thread has one state).
msg unhcr sweden,portugal case-referral i-r CASE-I
# A decision naming a person who is not in the referral. Audit logs never
# hold person ids (personal data), so replay cannot see this in a delivery;
# it sees the recipient's refusal, as a node now records it.
msg unhcr sweden case-referral h-r CASE-H
t=$((t + 1000))
echo "SENT unhcr acceptance-decision h-d CASE-H ACCEPTED h-r $t" >>"$work/sweden.in"
echo "REJECTED sweden acceptance-decision h-d CASE-H ACCEPTED h-r $((t + 10)) unknown-member" >>"$work/unhcr.in"
echo "RECEIPT_SENT sweden receipt rc-h-d - rejected h-d $((t + 20)) unknown-member" >>"$work/unhcr.in"
echo "RECEIPT_RECEIVED unhcr acceptance-decision h-d CASE-H rejected - $((t + 30)) unknown-member" >>"$work/sweden.in"
# A thread logged in part by a release whose entries named no travel status
# (5787a07 recorded a decision's outcome, not a travel's): what those moves
# did cannot be judged, so they are no finding, and the thread is followed
# no further (as a node judges a thread begun before the workflow). Before,
# each was a wrong-state finding, for a flow that was right.
msg unhcr sweden case-referral o-r OLD-1
msg sweden unhcr,iom acceptance-decision o-d OLD-1 ACCEPTED o-r
msg iom sweden,unhcr travel-confirmation o-t1 OLD-1 - o-d
msg iom sweden,unhcr travel-confirmation o-t2 OLD-1 - o-d
msg iom sweden,unhcr travel-confirmation o-t3 OLD-1 ARRIVED o-d

archives=()
for n in "${nodes[@]}"; do
	"$BIN/tern-audit-append" "$work/fed/$n/node.conf" <"$work/$n.in"
	"$TERN" audit export -c "$work/fed/$n/node.conf" --out "$work/$n.tern-audit" >/dev/null
	archives+=("$work/$n.tern-audit")
done

rc=0
"$TERN" audit replay "${archives[@]}" --json >"$work/all.json" || rc=$?
[[ $rc == 1 ]] || {
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["findings"])' "$work/all.json"
	fail "replay exited $rc, want 1 (findings)"
}

# expect CASE KIND:MSGID...: the case's findings are exactly these, each with
# evidence.
expect() {
	python3 - "$work/all.json" "$@" <<'PY' || fail "findings of $1 differ (above)"
import json, sys
d = json.load(open(sys.argv[1]))
case, want = sys.argv[2], sorted(sys.argv[3:])
got = sorted(f["kind"] + ":" + f["message_id"] for f in d["findings"] if f["case_id"] == case)
bare = [f for f in d["findings"] if f["case_id"] == case and not f["evidence"]]
if got != want or bare:
    print("case %s: want %s, got %s%s" % (case, want, got, " (a finding without evidence)" if bare else ""))
    for f in d["findings"]:
        if f["case_id"] == case:
            print("  ", f["kind"], f["message_id"], f["text"])
    sys.exit(1)
PY
}
expect GOOD-1
expect CASE-A reference-not-shared:a-d
expect CASE-B unknown-decision:b-t
expect CASE-C superseded:c-t
expect CASE-D wrong-recipient-role:d-r
expect CASE-E wrong-state:e-t3
expect CASE-F reference-not-shared:f-d unknown-decision:f-t
expect CASE-G wrong-recipient-role:g-r
expect CASE-H unknown-member:h-d
expect CASE-I too-many-recipients:i-r
expect OLD-1
python3 -c 'import json,sys; sys.exit(0 if all(f["case_id"] for f in json.load(open(sys.argv[1]))["findings"]) else 1)' "$work/all.json" ||
	{ cat "$work/all.json"; fail "a finding outside the cases (integrity?)"; }

# The normal flow alone replays clean, and each case is found alone too.
"$TERN" audit replay "${archives[@]}" --case GOOD-1 >"$work/good.txt" ||
	{ cat "$work/good.txt"; fail "replay of the normal flow has findings"; }
grep -q "^0 findings" "$work/good.txt" || fail "no '0 findings' for the normal flow"
rc=0
"$TERN" audit replay "${archives[@]}" --case CASE-E >"$work/e.txt" || rc=$?
[[ $rc == 1 ]] && grep -q "^finding wrong-state: travel-confirmation e-t3 " "$work/e.txt" ||
	{ cat "$work/e.txt"; fail "no wrong-state line for the departure after the arrival"; }
grep -q "^1 finding$" "$work/e.txt" || { cat "$work/e.txt"; fail "not one finding for CASE-E"; }
echo "cli test_replay_workflow: ok"
