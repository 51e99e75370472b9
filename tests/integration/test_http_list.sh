#!/usr/bin/env bash
# Listing and paging (GET /v1/messages, `tern messages`; docs/api.md,
# messages.list): unhcr sends 24 referrals in two cases (18 to sweden, 6 to
# portugal, which stays down) and receives 6 decisions from sweden; each
# filter lists what it must; pages of 7 go through everything once while
# another message is sent between two pages; bad arguments get 400 naming
# them; every exchange is checked against docs/openapi.yaml.
source "$(dirname "$0")/lib.sh"

fed_make
for n in broker unhcr sweden; do start "$n"; done
wait_for 20 "unhcr to connect" connected unhcr
wait_for 20 "sweden to connect" connected sweden
UNHCR_API=$((PORT + 13))
TOKF="$WORK/fed/unhcr/http.token"

say "unhcr sends 24 referrals in cases LIST-A and LIST-B; sweden answers 6 with decisions"
: >"$WORK/refs"
for i in $(seq 1 24); do
  if ((i <= 12)); then c=LIST-A to=sweden; elif ((i <= 18)); then c=LIST-B to=sweden; else c=LIST-B to=portugal; fi
  id=$(referral_json "$c" | "$TERN" send -c "$(conf unhcr)" --to "$to" case-referral - | awk '{print $1}')
  echo "$id $c $to" >>"$WORK/refs"
done
wait_for 30 "18 referrals delivered" count_is unhcr delivered 18
wait_for 30 "sweden to hold 18" count_is sweden inbox 18
for line in 1 2 3 13 14 15; do
  read -r ref c _ < <(sed -n "${line}p" "$WORK/refs")
  decision_json "$c" "$ref" | "$TERN" send -c "$(conf sweden)" --to unhcr acceptance-decision - >/dev/null
done
wait_for 30 "unhcr to receive 6 decisions" count_is unhcr inbox 6

list() { # NAME QUERY: GET /v1/messages?QUERY, prints the status
  hreq "$1" GET "$UNHCR_API" "/v1/messages${2:+?$2}" "$TOKF"
}
[[ $(list all "limit=1000") == 200 ]] || { cat "$WORK/all.out"; fail "the list did not answer 200"; }

say "each filter lists what it must"
# Expectations are computed from the full list, which must itself be right.
python3 - "$WORK/all.out" "$WORK/refs" <<'PY' || fail "the full list is wrong (above)"
import json, sys
d = json.load(open(sys.argv[1]))
m = d["messages"]
refs = [l.split() for l in open(sys.argv[2])]
if len(m) != 30: sys.exit("%d messages, not 30" % len(m))
if d["nextCursor"] is not None or d["scanLimited"]: sys.exit("one page should hold them all: %s" % d)
sent = [x for x in m if x["direction"] == "sent"]
if [x["messageId"] for x in sent] != [r[0] for r in refs]: sys.exit("the sent ones are not in the order sent")
if sum(1 for x in m if x["direction"] == "received") != 6: sys.exit("not 6 received")
for x in m:
    if "body" in x: sys.exit("a body in the list")
PY
check_filter() { # NAME QUERY PYTHON-PREDICATE: the filtered list is the full list's matching ones, in order
  [[ $(list "$1" "$2") == 200 ]] || { cat "$WORK/$1.out"; fail "$2 did not answer 200"; }
  python3 - "$WORK/all.out" "$WORK/$1.out" "$3" "$2" <<'PY' || fail "$2 listed the wrong messages"
import json, sys
full = json.load(open(sys.argv[1]))["messages"]
got = json.load(open(sys.argv[2]))
want = [x["messageId"] for x in full if eval(sys.argv[3], {}, {"x": x})]
ids = [x["messageId"] for x in got["messages"]]
if not want: sys.exit("%s: the expectation is empty" % sys.argv[4])
if ids != want: sys.exit("%s: %d listed, %d expected" % (sys.argv[4], len(ids), len(want)))
PY
}
check_filter f1 "direction=sent&limit=1000" 'x["direction"] == "sent"'
check_filter f2 "direction=received" 'x["direction"] == "received"'
check_filter f3 "caseId=LIST-A" 'x["caseId"] == "LIST-A"'
check_filter f4 "caseId=LIST-B&direction=received" 'x["caseId"] == "LIST-B" and x["direction"] == "received"'
check_filter f5 "type=acceptance-decision" 'x["type"] == "acceptance-decision"'
check_filter f6 "state=at-broker" 'x["state"] == "at-broker"'
check_filter f7 "direction=sent&state=delivered" 'x["state"] == "delivered"'
check_filter f8 "peer=portugal" '"portugal" in x.get("recipients", [])'
check_filter f9 "peer=sweden&direction=received" 'x.get("sender") == "sweden"'
check_filter f10 "type=case-referral&caseId=LIST-B&peer=sweden" 'x["type"] == "case-referral" and x["caseId"] == "LIST-B" and "sweden" in x.get("recipients", [])'
# A time window: from the 10th message's time (inclusive) to the 20th's (exclusive).
read -r since until < <(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["messages"]
t=lambda x: x.get("createdAt") or x["receivedAt"]; print(t(m[9]), t(m[19]))' "$WORK/all.out")
check_filter f11 "since=$since&until=$until" "\"$since\" <= (x.get(\"createdAt\") or x[\"receivedAt\"]) < \"$until\""
# the same instant with an offset, its '+' percent-encoded
since_off=$(python3 -c 'import sys, datetime
t = datetime.datetime.strptime(sys.argv[1], "%Y-%m-%dT%H:%M:%S.%fZ") + datetime.timedelta(hours=2)
print(t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03d" % (t.microsecond // 1000) + "%2B02:00")' "$since")
check_filter f12 "since=$since_off" "\"$since\" <= (x.get(\"createdAt\") or x[\"receivedAt\"])"

say "pages of 7 through all of them, while one more is sent between two pages"
cursor="" page=0
: >"$WORK/paged"
while :; do
  list "p$page" "limit=7${cursor:+&cursor=$cursor}" >/dev/null
  python3 - "$WORK/p$page.out" >>"$WORK/paged" <<'PY' || fail "page $page is wrong"
import json, sys
d = json.load(open(sys.argv[1]))
if len(d["messages"]) > 7: sys.exit("more than the limit")
for x in d["messages"]: print(x["messageId"])
PY
  if ((page == 1)); then
    extra=$(referral_json LIST-A | "$TERN" send -c "$(conf unhcr)" --to sweden case-referral - | awk '{print $1}')
  fi
  cursor=$(python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["nextCursor"]; print(c or "")' "$WORK/p$page.out")
  page=$((page + 1))
  [[ -n $cursor ]] || break
  ((page < 20)) || fail "paging does not end"
done
((page == 5)) || fail "31 messages in pages of 7 took $page pages, not 5"
python3 - "$WORK/all.out" "$WORK/paged" "$extra" <<'PY' || fail "paging repeated or skipped a message"
import json, sys
full = [x["messageId"] for x in json.load(open(sys.argv[1]))["messages"]]
paged = open(sys.argv[2]).read().split()
if len(paged) != len(set(paged)): sys.exit("a message came twice")
if paged != full + [sys.argv[3]]: sys.exit("%d paged, not the 30 in order and then the new one" % len(paged))
PY

say "bad arguments get 400 naming them"
bad() { # NAME QUERY FIELD
  [[ $(list "$1" "$2") == 400 ]] || { cat "$WORK/$1.out"; fail "$2 was not refused"; }
  python3 - "$WORK/$1.out" "$3" "$2" <<'PY' || fail "$2 was not refused naming $3"
import json, sys
p = json.load(open(sys.argv[1]))
if p.get("field") != sys.argv[2] or p.get("code") != "invalid-argument": sys.exit("%s: %s" % (sys.argv[3], p))
PY
}
bad b1 "limit=0" limit
bad b2 "limit=1001" limit
bad b3 "limit=seven" limit
bad b4 "since=yesterday" since
bad b5 "until=2026-02-30T00:00:00Z" until
bad b6 "bogus=1" bogus
bad b7 "case_id=LIST-A" case_id
grep -q "did you mean 'caseId'" "$WORK/b7.out" || fail "case_id: no hint of caseId"
bad b8 "direction=out" direction
bad b9 "type=receipt" type
bad b10 "state=nope" state
bad b11 "cursor=zzz" cursor
bad b12 "limit=1&limit=2" limit
bad b13 "caseId=" caseId
bad b14 "direction=sent&state=accepted" state
[[ $(hreq q1 GET "$UNHCR_API" "/v1/node?verbose=1" "$TOKF") == 400 ]] || fail "a query on /v1/node was not refused"
python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); assert p["field"] == "verbose", p' "$WORK/q1.out" ||
  fail "the refused query argument is not named"
[[ $(hreq put PUT "$UNHCR_API" /v1/messages "$TOKF") == 405 ]] || fail "PUT /v1/messages is not 405"
allow=$(tr -d '\r' <"$WORK/put.head" | awk 'tolower($1) == "allow:" {sub(/^[^:]*: */, ""); print}')
[[ $allow == "GET, POST" ]] || fail "405 Allow is '$allow', not 'GET, POST'"

say "tern messages --json pages the same way; --all follows the cursors"
cursor="" pages=0
: >"$WORK/cli-paged"
while :; do
  "$TERN" messages -c "$(conf unhcr)" --json --limit 7 ${cursor:+--cursor "$cursor"} >"$WORK/cli.json" ||
    fail "tern messages --json failed"
  python3 -c 'import json,sys; [print(x["message_id"]) for x in json.load(open(sys.argv[1]))["messages"]]' \
    "$WORK/cli.json" >>"$WORK/cli-paged"
  cursor=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["next_cursor"] or "")' "$WORK/cli.json")
  pages=$((pages + 1))
  [[ -n $cursor ]] || break
  ((pages < 20)) || fail "tern messages paging does not end"
done
((pages == 5)) || fail "tern messages took $pages pages, not 5"
cmp -s "$WORK/paged" "$WORK/cli-paged" || fail "tern messages paged other messages than HTTP"
"$TERN" messages -c "$(conf unhcr)" --all --json --limit 7 >"$WORK/cli-all.json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["messages"]) == 31 and d["next_cursor"] is None' \
  "$WORK/cli-all.json" || fail "tern messages --all did not give the 31"
"$TERN" messages -c "$(conf unhcr)" --received --case LIST-A >"$WORK/cli.txt"
[[ $(grep -c acceptance-decision "$WORK/cli.txt") == 3 ]] || { cat "$WORK/cli.txt"; fail "the table does not list LIST-A's 3 decisions"; }
head -1 "$WORK/cli.txt" | grep -q '^WHEN .*MESSAGE .*STATE$' || fail "the table has no header"
"$TERN" messages -c "$(conf unhcr)" --state nope >/dev/null 2>"$WORK/cli.err" && fail "a bad state was taken"
grep -q "state" "$WORK/cli.err" || fail "the CLI's refusal does not name the state"

say "every exchange above against docs/openapi.yaml"
http_check
echo "it test_http_list: ok"
