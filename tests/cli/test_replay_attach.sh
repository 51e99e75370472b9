#!/usr/bin/env bash
# tern audit replay and attachments (docs/attachments.md, docs/audit.md): the
# timeline shows each message's attachments (count, sizes, the SHA-256 where
# a log gives it, never a name); a message delivered without an attachment
# its sender or the broker declared is missing-attachments; entries that
# disagree on an attachment's size, root or (sender and recipient) SHA-256 are
# attachment-mismatch; agreeing entries give no finding. No daemon runs:
# tern-audit-append writes the entries into a development federation's
# stopped stores, as in test_replay_workflow.sh.
set -euo pipefail

: "${TERN:?set TERN to the tern binary}"
BIN=$(dirname "$TERN")
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/tern-cli-replay-att-XXXXXX)
trap '[[ -n ${KEEP:-} ]] || rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$TERN" dev-federation "$work/fed" >/dev/null
t=1795390000000

# msg ID CASE SENT-ATTS RELAYED-ATTS RECEIVED-ATTS: a referral from unhcr to
# sweden through the broker, each entry with the attachments given
# (tern-audit-append's INDEX:SIZE:ROOT[:SHA256] list, "-" for none).
msg() {
	local id=$1 case=$2 sa=$3 ba=$4 ra=$5
	t=$((t + 1000))
	echo "SENT sweden case-referral $id $case - - $t - $sa" >>"$work/unhcr.in"
	echo "RELAYED unhcr case-referral $id $case - - $((t + 5)) - $ba" >>"$work/broker.in"
	echo "RECEIVED unhcr case-referral $id $case - - $((t + 10)) - $ra" >>"$work/sweden.in"
	echo "RECEIPT_SENT unhcr receipt rc-$id - delivered $id $((t + 20))" >>"$work/sweden.in"
	echo "RECEIPT_RECEIVED sweden case-referral $id $case delivered - $((t + 30))" >>"$work/unhcr.in"
}

# Agreeing entries: two attachments, the broker without SHA-256.
msg ok-r OK-1 0:1000:rootA:shaA,1:2000:rootB:shaB 0:1000:rootA,1:2000:rootB \
	0:1000:rootA:shaA,1:2000:rootB:shaB
# No attachments anywhere.
msg plain-r OK-2 - - -
# Delivered without its declared attachment.
msg miss-r MISS-1 0:1000:rootA:shaA 0:1000:rootA -
# Delivered with one of two.
msg half-r MISS-2 0:1000:rootA:shaA,1:5:rootB:shaB 0:1000:rootA,1:5:rootB 0:1000:rootA:shaA
# Declared only by the broker (the sender's log lost it).
msg brk-r MISS-3 - 0:7:rootA -
# Disagreements: size, root, SHA-256 (sender against recipient), and the
# broker's size.
msg size-r MM-1 0:1000:rootA:shaA 0:1000:rootA 0:999:rootA:shaA
msg root-r MM-2 0:1000:rootA:shaA 0:1000:rootA 0:1000:rootX:shaA
msg sha-r MM-3 0:1000:rootA:shaA 0:1000:rootA 0:1000:rootA:shaX
msg bsize-r MM-4 0:1000:rootA:shaA 0:1001:rootA 0:1000:rootA:shaA
# A refused chunk's REJECTED (type chunk) speaks of a chunk, not the message.
t=$((t + 1000))
echo "REJECTED unhcr chunk ok-r OK-1 - - $t chunk-mismatch 0:1000:rootZ" >>"$work/sweden.in"

archives=()
for n in unhcr sweden; do
	"$BIN/tern-audit-append" "$work/fed/$n/node.conf" <"$work/$n.in"
	"$TERN" audit export -c "$work/fed/$n/node.conf" --out "$work/$n.tern-audit" >/dev/null
	archives+=("$work/$n.tern-audit")
done
"$BIN/tern-audit-append" "$work/fed/broker/broker.conf" <"$work/broker.in"
"$TERN" audit export -c "$work/fed/broker/broker.conf" --out "$work/broker.tern-audit" >/dev/null
archives+=("$work/broker.tern-audit")

rc=0
"$TERN" audit replay "${archives[@]}" --json >"$work/all.json" || rc=$?
[[ $rc == 1 ]] || fail "replay exited $rc, want 1 (findings)"

# expect CASE KIND:MSGID...: the case's findings are exactly these, each with
# evidence.
expect() {
	python3 - "$work/all.json" "$@" <<'PY' || fail "findings of $2 differ (above)"
import json, sys
d = json.load(open(sys.argv[1]))
case, want = sys.argv[2], sorted(sys.argv[3:])
got = sorted(f["kind"] + ":" + f["message_id"] for f in d["findings"] if f["case_id"] == case)
bare = [f for f in d["findings"] if f["case_id"] == case and len(f["evidence"]) < 2]
if got != want or bare:
    print("case %s: want %s, got %s%s" % (case, want, got, " (a finding without both entries)" if bare else ""))
    for f in d["findings"]:
        if f["case_id"] == case:
            print("  ", f["kind"], f["message_id"], f["text"])
    sys.exit(1)
PY
}
expect OK-1
expect OK-2
expect MISS-1 missing-attachments:miss-r
expect MISS-2 missing-attachments:half-r
expect MISS-3 missing-attachments:brk-r
expect MM-1 attachment-mismatch:size-r
expect MM-2 attachment-mismatch:root-r
expect MM-3 attachment-mismatch:sha-r
expect MM-4 attachment-mismatch:bsize-r

# The timeline: count, sizes, SHA-256 in hex where the log has one (the
# broker's has none), and nothing that could be a name.
python3 - "$work/all.json" <<'PY' || fail "the timeline's attachments (above)"
import json, sys
d = json.load(open(sys.argv[1]))
tl = {c["case_id"]: c["timeline"] for c in d["cases"]}
def ev(case, log, kind):
    return next(e for e in tl[case] if e["log"] == log and e["kind"] == kind)
sha = lambda tag: (tag.encode() + b"\0" * 32)[:32].hex()
s = ev("OK-1", "unhcr", "SENT")["attachments"]
assert [(a["index"], a["size"], a["sha256"]) for a in s] == [(0, 1000, sha("shaA")), (1, 2000, sha("shaB"))], s
b = ev("OK-1", "hub", "RELAYED")["attachments"]
assert [a["size"] for a in b] == [1000, 2000] and all("sha256" not in a for a in b), b
assert all(set(a) <= {"index", "size", "root", "sha256"} for a in s + b)
assert "attachments" not in ev("OK-2", "sweden", "RECEIVED")
assert "attachments" not in ev("MISS-1", "sweden", "RECEIVED")
PY

# The human output shows them too.
"$TERN" audit replay "${archives[@]}" --case OK-1 >"$work/ok1.txt" || fail "OK-1 has a finding"
shaA=$(python3 -c 'print((b"shaA" + b"\0" * 32)[:32].hex())')
grep -q "^      2 attachments: #0 1000 bytes sha256 $shaA; #1 2000 bytes sha256 " "$work/ok1.txt" || {
	cat "$work/ok1.txt"
	fail "no attachments line in the human timeline"
}
"$TERN" audit replay "${archives[@]}" --case MISS-1 >"$work/m1.txt" && fail "MISS-1 replayed clean"
grep -q "^finding missing-attachments: sweden received case-referral miss-r with 0 of the 1 attachment unhcr's SENT declares" "$work/m1.txt" || {
	cat "$work/m1.txt"
	fail "the human missing-attachments finding"
}

# docs/audit.md lists both kinds in its table of findings.
for k in missing-attachments attachment-mismatch; do
	grep -q "^| \`$k\` |" "$root/docs/audit.md" || fail "docs/audit.md does not list $k"
done
echo "ok: replay shows attachments and finds missing and mismatched ones"
