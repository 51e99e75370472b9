#!/usr/bin/env bash
# The whole resettlement lifecycle through `tern audit replay` (issue 15,
# acceptance: "replay of the five agencies' archives reconstructs it with 0
# findings; the same flow with each step out of order or from the wrong role
# yields exactly one finding naming the rule").
#
# No daemon runs: the archives of unhcr (referrer), sweden (state), portugal
# (referrer and state), iom (movement) and the broker (hub) are built with
# tern-audit-append as the nodes and the broker record a delivery (SENT at the
# sender, RELAYED at the broker, RECEIVED and a receipt at each recipient, the
# receipt at the sender), then `tern audit export` writes them. Each variant is
# a case of its own in the same archives; one replay judges them all.
#
# The flow (docs/messages.md, "The workflow"), step names in brackets:
#   [r]  case-referral               unhcr -> sweden
#   [ir] information-request         sweden -> unhcr          cites r
#   [is] information-response        unhcr -> sweden          cites ir
#   [d]  acceptance-decision ACCEPTED sweden -> unhcr,iom     cites r
#   [h]  health-assessment           iom -> sweden            cites d
#   [o]  pre-departure-orientation   iom -> sweden,unhcr      cites d
#   [tb] travel-confirmation BOOKED  iom -> sweden,unhcr      cites d
#   [td] travel-confirmation DEPARTED
#   [ta] travel-confirmation ARRIVED
#   [ah] arrival-handover            iom -> sweden            cites d
#
# The variants, and why each is built as it is. A message the workflow
# refuses moves nothing (as at the nodes, where it is refused), so a later
# message citing it, or needing the state it would have made, would be a
# second, consequential finding. Where the step is one that others cite or
# whose state others need, the misplaced or wrong-role message is therefore an
# extra one (its own id), and the step also comes in its right place from the
# right sender: the flow stays whole and the only finding is the bad message.
#
# (a) out of order:
#   r   A referral starts a thread: its only row is (new) -> referred, so
#       there is no state it may not follow. It can be out of order only by
#       coming after a message that cites it: the State's information request
#       sent before the referral (ir0) is unknown-referral, "sent only after
#       it". (Moving the one request before the referral instead makes the
#       response citing that refused request a consequential unknown-reference,
#       so the State asks again once it holds the referral.)
#   ir  a second request after the State accepted (ir2): wrong-state.
#   is  the response moved after the decision (the state is accepted, not
#       info-requested): wrong-state. Nothing cites it: moved as it is.
#   d   a second decision after the departure (d2): wrong-state. (Moved before
#       the response it is the same case as `is`; moved before the referral,
#       everything citing it would be refused too.)
#   h   moved before the decision it cites: unknown-decision, "sent only after
#       it". It moves no state: moved as it is.
#   o   moved after the departure: wrong-state. Moved as it is.
#   tb  a second booking after the arrival (tb2): wrong-state. (Moved as it
#       is, the departure it enables would be the one refused.)
#   td  moved after the arrival: wrong-state. Moved as it is.
#   ta  an arrival before the booking (ta0): wrong-state. (Moved after the
#       handover, the handover would be the one refused.)
#   ah  moved before the arrival (while departed): wrong-state. Moved as it is.
# (b) from the wrong role: a member whose directory role may not send the
#   type sends it first (x), then the right sender sends the step: wrong-role,
#   and the wrong-role message moves nothing. One more where the broker
#   refused the wrong-role decision (its REJECTED joins the same finding).
# (c) a travel citing a decision a later decision replaced: superseded.
# (d) the accepting-decision rule for every type the table gives it, and a
#   cited message of the wrong type (see the variants).
set -euo pipefail

: "${TERN:?set TERN to the tern binary}"
BIN=$(dirname "$TERN")
work=$(mktemp -d /tmp/tern-cli-lifecycle-XXXXXX)
trap '[[ -n ${KEEP:-} ]] || rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$TERN" dev-federation "$work/fed" >/dev/null
logs=(unhcr sweden portugal iom hub)
conf() { if [[ $1 == hub ]]; then echo "$work/fed/broker/broker.conf"; else echo "$work/fed/$1/node.conf"; fi; }
t=1795390000000 # ms; each message a second after the one before

# msg FROM TO[,TO...] TYPE ID CASE VALUE REF: the entries a delivery leaves.
msg() {
	local from=$1 tos=$2 type=$3 id=$4 case=$5 value=${6:--} ref=${7:--} to
	t=$((t + 1000))
	IFS=, read -ra to <<<"$tos"
	for r in "${to[@]}"; do
		echo "SENT $r $type $id $case $value $ref $t" >>"$work/$from.in"
	done
	echo "RELAYED $from $type $id $case - - $((t + 5))" >>"$work/hub.in"
	for r in "${to[@]}"; do
		echo "RECEIVED $from $type $id $case $value $ref $((t + 10))" >>"$work/$r.in"
		echo "RECEIPT_SENT $from receipt rc-$id-$r - delivered $id $((t + 20))" >>"$work/$r.in"
		echo "RELAYED $r receipt rc-$id-$r - - - $((t + 25))" >>"$work/hub.in"
		echo "RECEIPT_RECEIVED $r $type $id $case delivered - $((t + 30))" >>"$work/$from.in"
	done
}

# refused FROM TO TYPE ID CASE VALUE REF: sent, and refused by the broker for
# the sender's role (its REJECTED entry names no type or case).
refused() {
	local from=$1 to=$2 type=$3 id=$4 case=$5 value=${6:--} ref=${7:--}
	t=$((t + 1000))
	echo "SENT $to $type $id $case $value $ref $t" >>"$work/$from.in"
	echo "REJECTED $from - $id - - - $((t + 5)) wrong-role" >>"$work/hub.in"
}

# step NAME[:SUFFIX] in case $C, ids "$p-SUFFIX" (SUFFIX defaults to NAME);
# x-NAME: NAME from a member whose role may not send it, id "$p-x";
# dec=SUFFIX: what the steps after the decision cite from then on.
step() {
	local name=${1%%:*} id="$p-${1#*:}"
	case $name in
	r) msg unhcr sweden case-referral "$id" "$C" ;;
	ir) msg sweden unhcr information-request "$id" "$C" - "$p-r" ;;
	is) msg unhcr sweden information-response "$id" "$C" - "$p-ir" ;;
	d) msg sweden unhcr,iom acceptance-decision "$id" "$C" ACCEPTED "$p-r" ;;
	h) msg iom sweden health-assessment "$id" "$C" - "$dec" ;;
	o) msg iom sweden,unhcr pre-departure-orientation "$id" "$C" - "$dec" ;;
	tb) msg iom sweden,unhcr travel-confirmation "$id" "$C" BOOKED "$dec" ;;
	td) msg iom sweden,unhcr travel-confirmation "$id" "$C" DEPARTED "$dec" ;;
	ta) msg iom sweden,unhcr travel-confirmation "$id" "$C" ARRIVED "$dec" ;;
	ah) msg iom sweden arrival-handover "$id" "$C" - "$dec" ;;
	# the wrong role: a State refers, IOM asks, a State answers, the
	# referrer decides, and the referrer or a State does IOM's part
	x-r) msg iom sweden case-referral "$p-x" "$C" ;;
	x-ir) msg iom unhcr information-request "$p-x" "$C" - "$p-r" ;;
	x-is) msg iom sweden information-response "$p-x" "$C" - "$p-ir" ;;
	x-d) msg unhcr iom acceptance-decision "$p-x" "$C" ACCEPTED "$p-r" ;;
	x-h) msg unhcr sweden health-assessment "$p-x" "$C" - "$dec" ;;
	x-o) msg sweden unhcr pre-departure-orientation "$p-x" "$C" - "$dec" ;;
	x-tb) msg unhcr sweden travel-confirmation "$p-x" "$C" BOOKED "$dec" ;;
	x-td) msg sweden unhcr travel-confirmation "$p-x" "$C" DEPARTED "$dec" ;;
	x-ta) msg portugal sweden,unhcr travel-confirmation "$p-x" "$C" ARRIVED "$dec" ;;
	x-ah) msg unhcr sweden arrival-handover "$p-x" "$C" - "$dec" ;;
	# a rejection, and a priority change cited as if it were a decision
	d-rej) msg sweden unhcr,iom acceptance-decision "$id" "$C" REJECTED "$p-r" ;;
	cu) msg unhcr sweden,iom case-update "$id" "$C" PRIORITY_CHANGED "$p-r" ;;
	xb-d) refused unhcr iom acceptance-decision "$p-x" "$C" ACCEPTED "$p-r" ;;
	dec=*) dec="$p-${1#dec=}" ;;
	*) fail "no step $1" ;;
	esac
}

# flow CASE PREFIX STEP...
flow() {
	C=$1 p=$2 dec="$2-d"
	shift 2
	for s in "$@"; do step "$s"; done
}

all=(r ir is d h o tb td ta ah)
# The variants: CASE PREFIX "STEPS" "EXPECTED FINDINGS (KIND:ID)".
variants=(
	"LIFE-OK ok|${all[*]}|"
	# (a) out of order
	"ORDER-R or-r|ir:ir0 ${all[*]}|unknown-referral:or-r-ir0"
	"ORDER-IR or-ir|r ir is d ir:ir2 h o tb td ta ah|wrong-state:or-ir-ir2"
	"ORDER-IS or-is|r ir d is h o tb td ta ah|wrong-state:or-is-is"
	"ORDER-D or-d|r ir is d h o tb td d:d2 ta ah|wrong-state:or-d-d2"
	"ORDER-H or-h|r ir is h d o tb td ta ah|unknown-decision:or-h-h"
	"ORDER-O or-o|r ir is d h tb td o ta ah|wrong-state:or-o-o"
	"ORDER-TB or-tb|r ir is d h o tb td ta tb:tb2 ah|wrong-state:or-tb-tb2"
	"ORDER-TD or-td|r ir is d h o tb ta td ah|wrong-state:or-td-td"
	"ORDER-TA or-ta|r ir is d h o ta:ta0 tb td ta ah|wrong-state:or-ta-ta0"
	"ORDER-AH or-ah|r ir is d h o tb td ah ta|wrong-state:or-ah-ah"
	# (b) from the wrong role
	"ROLE-R wr-r|x-r ${all[*]}|wrong-role:wr-r-x"
	"ROLE-IR wr-ir|r x-ir ir is d h o tb td ta ah|wrong-role:wr-ir-x"
	"ROLE-IS wr-is|r ir x-is is d h o tb td ta ah|wrong-role:wr-is-x"
	"ROLE-D wr-d|r ir is x-d d h o tb td ta ah|wrong-role:wr-d-x"
	"ROLE-H wr-h|r ir is d x-h h o tb td ta ah|wrong-role:wr-h-x"
	"ROLE-O wr-o|r ir is d h x-o o tb td ta ah|wrong-role:wr-o-x"
	"ROLE-TB wr-tb|r ir is d h o x-tb tb td ta ah|wrong-role:wr-tb-x"
	"ROLE-TD wr-td|r ir is d h o tb x-td td ta ah|wrong-role:wr-td-x"
	"ROLE-TA wr-ta|r ir is d h o tb td x-ta ta ah|wrong-role:wr-ta-x"
	"ROLE-AH wr-ah|r ir is d h o tb td ta x-ah ah|wrong-role:wr-ah-x"
	"ROLE-D-BROKER wb-d|r ir is xb-d d h o tb td ta ah|wrong-role:wb-d-x"
	# (c) a booking citing the decision a second one replaced
	"STALE-TB st|r ir is d h o d:d2 tb dec=d2 tb:tb2 td ta ah|superseded:st-tb"
	# (d) what may follow only an accepting decision, from the table: a
	# health assessment after a rejection is an illegal transition (like
	# travel), and citing a case update as the decision is unknown-decision
	# alone (the update's PRIORITY_CHANGED is no decision's outcome)
	"NOT-ACCEPTED-H na|r ir is d-rej:d h|illegal-transition:na-h"
	"WRONG-TYPE-TB wt|r ir is d h o cu dec=cu tb:tbx dec=d tb td ta ah|unknown-decision:wt-tbx"
)
for v in "${variants[@]}"; do
	IFS='|' read -r head steps _ <<<"$v"
	read -r c pre <<<"$head"
	read -ra ss <<<"$steps"
	flow "$c" "$pre" "${ss[@]}"
done

archives=()
for n in "${logs[@]}"; do
	"$BIN/tern-audit-append" "$(conf $n)" <"$work/$n.in"
	"$TERN" audit export -c "$(conf $n)" --out "$work/$n.tern-audit" >/dev/null
	archives+=("$work/$n.tern-audit")
done

rc=0
"$TERN" audit replay "${archives[@]}" --json >"$work/all.json" || rc=$?
[[ $rc == 1 ]] || fail "replay exited $rc, want 1 (the variants' findings)"

# Every variant's findings are exactly the expected set, each with evidence;
# no finding outside the variants (integrity, a gap at the broker, ...).
printf '%s\n' "${variants[@]}" >"$work/variants"
python3 - "$work/all.json" "$work/variants" <<'PY' || fail "findings differ (above)"
import json, sys
d = json.load(open(sys.argv[1]))
bad = 0
cases = set()
for line in open(sys.argv[2]):
    head, steps, want = line.rstrip("\n").split("|")
    case = head.split()[0]
    cases.add(case)
    want = sorted(want.split())
    got = sorted(f["kind"] + ":" + f["message_id"] for f in d["findings"] if f["case_id"] == case)
    bare = [f for f in d["findings"] if f["case_id"] == case and not f["evidence"]]
    if got != want or bare:
        bad = 1
        print("case %s (%s): want %s, got %s%s" % (case, steps, want, got,
              " (a finding without evidence)" if bare else ""))
        for f in d["findings"]:
            if f["case_id"] == case:
                print("   ", f["kind"], f["message_id"], f["text"])
for f in d["findings"]:
    if f["case_id"] not in cases:
        bad = 1
        print("a finding outside the variants:", f["kind"], f["case_id"], f["message_id"], f["text"])
sys.exit(bad)
PY

# The texts say why: what came before what it cites, and the broker's refusal
# joins the sender's wrong role as evidence.
python3 - "$work/all.json" <<'PY' || fail "finding texts or evidence (above)"
import json, sys
d = json.load(open(sys.argv[1]))
f = {(x["kind"], x["message_id"]): x for x in d["findings"]}
ok = True
for k in [("unknown-referral", "or-r-ir0"), ("unknown-decision", "or-h-h")]:
    if "which was sent only after it" not in f[k]["text"]:
        print(k, f[k]["text"]); ok = False
if "may not follow while referral or-td-r is arrived" not in f[("wrong-state", "or-td-td")]["text"]:
    print(f[("wrong-state", "or-td-td")]["text"]); ok = False
if not f[("wrong-state", "or-is-is")]["text"].endswith(": an information-response may not follow while referral or-is-r is accepted"):
    print(f[("wrong-state", "or-is-is")]["text"]); ok = False
if "superseded by st-d2" not in f[("superseded", "st-tb")]["text"]:
    print(f[("superseded", "st-tb")]["text"]); ok = False
logs = {e["log"] for e in f[("wrong-role", "wb-d-x")]["evidence"]}
if logs != {"unhcr", "hub"}:
    print("wrong-role wb-d-x evidence from", logs); ok = False
sys.exit(0 if ok else 1)
PY

# The good flow alone: 0 findings, and its timeline shows every step as the
# five logs recorded it, in the order it was sent.
"$TERN" audit replay "${archives[@]}" --case LIFE-OK >"$work/ok.txt" ||
	{ cat "$work/ok.txt"; fail "replay of the lifecycle has findings"; }
grep -q "^0 findings$" "$work/ok.txt" || { cat "$work/ok.txt"; fail "no '0 findings'"; }
"$TERN" audit replay "${archives[@]}" --case LIFE-OK --json >"$work/ok.json" ||
	fail "replay --json of the lifecycle has findings"
python3 - "$work/ok.json" <<'PY' || fail "the lifecycle's timeline (above)"
import json, sys
d = json.load(open(sys.argv[1]))
(c,) = d["cases"]
tl = c["timeline"]
steps = [  # id, type, sender, recipients, value
    ("ok-r", "case-referral", "unhcr", ["sweden"], None),
    ("ok-ir", "information-request", "sweden", ["unhcr"], None),
    ("ok-is", "information-response", "unhcr", ["sweden"], None),
    ("ok-d", "acceptance-decision", "sweden", ["unhcr", "iom"], "ACCEPTED"),
    ("ok-h", "health-assessment", "iom", ["sweden"], None),
    ("ok-o", "pre-departure-orientation", "iom", ["sweden", "unhcr"], None),
    ("ok-tb", "travel-confirmation", "iom", ["sweden", "unhcr"], "BOOKED"),
    ("ok-td", "travel-confirmation", "iom", ["sweden", "unhcr"], "DEPARTED"),
    ("ok-ta", "travel-confirmation", "iom", ["sweden", "unhcr"], "ARRIVED"),
    ("ok-ah", "arrival-handover", "iom", ["sweden"], None),
]
ok = True
def has(**kw):
    return any(all(e.get(k) == v for k, v in kw.items()) for e in tl)
for mid, typ, frm, tos, val in steps:
    want = [dict(kind="RELAYED", log="hub", peer=frm)]
    for to in tos:
        want.append(dict(kind="SENT", log=frm, peer=to))
        want.append(dict(kind="RECEIVED", log=to, peer=frm))
        want.append(dict(kind="RECEIPT_RECEIVED", log=frm, peer=to))
    for w in want:
        if not has(message_id=mid, type=typ, **w):
            print("no", w, "for", mid); ok = False
    if val and not has(message_id=mid, kind="SENT", outcome=val):
        print("no outcome", val, "for", mid); ok = False
sent = []
for e in tl:
    if e["kind"] == "SENT" and e["message_id"] not in sent:
        sent.append(e["message_id"])
if sent != [s[0] for s in steps]:
    print("sent in the order", sent); ok = False
sys.exit(0 if ok else 1)
PY
echo "cli test_replay_lifecycle: ok"
