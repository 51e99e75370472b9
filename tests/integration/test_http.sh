#!/usr/bin/env bash
# The operations endpoints over HTTP, with curl: the node's HTTP API round
# trip (submit at unhcr, next and ack at sweden), its token check, and
# /metrics (valid Prometheus text whose counters match what was sent),
# /healthz and /readyz at the broker and a node; and that a burst of sends is
# signed in batches, end to end.
source "$(dirname "$0")/lib.sh"

fed_make
for n in broker unhcr sweden; do start "$n"; done
wait_for 20 "unhcr to connect" connected unhcr
wait_for 20 "sweden to connect" connected sweden
# Ports as tern dev-federation assigns them (see its --help).
BROKER_METRICS=$((PORT + 1)); UNHCR_METRICS=$((PORT + 12)); UNHCR_API=$((PORT + 13))
SWEDEN_API=$((PORT + 17))
api() { # NODE PORT METHOD PATH [BODY-FILE]: prints the body, then the status on its own line
  local code name="api.$BASHPID" # calls may run at once
  code=$(hreq "$name" "$3" "$2" "$4" "$WORK/fed/$1/http.token" ${5:+--data-binary @"$5"})
  cat "$WORK/$name.out"; echo; echo "$code"
}
json_field() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().rsplit("\n",2)[0])
for k in sys.argv[1].split("."): d=d[k] if d is not None else None
print(d)' "$1"; }

say "submit a referral over HTTP at unhcr"
referral_json HTTP-1 >"$WORK/body.json"
python3 -c 'import json,sys; print(json.dumps({"type":"case-referral","to":["sweden"],"clientRef":"http-1","body":json.load(open(sys.argv[1]))}))' \
  "$WORK/body.json" >"$WORK/req.json"
api unhcr "$UNHCR_API" POST /v1/messages "$WORK/req.json" >"$WORK/sent.out"
[[ $(tail -1 "$WORK/sent.out") == 201 ]] || { cat "$WORK/sent.out"; fail "submit did not answer 201"; }
id=$(json_field messageId <"$WORK/sent.out")
[[ $id =~ ^[0-9a-f-]{36}$ ]] || fail "no message id in the answer"
delivered() { api unhcr "$UNHCR_API" GET "/v1/messages/$id" | json_field state | grep -qx delivered; }
wait_for 20 "the referral to be delivered" delivered

say "take it at sweden, then acknowledge it"
echo '{"waitMs": 5000}' >"$WORK/wait.json"
api sweden "$SWEDEN_API" POST /v1/inbox/next "$WORK/wait.json" >"$WORK/next.out"
[[ $(tail -1 "$WORK/next.out") == 200 ]] || { cat "$WORK/next.out"; fail "inbox/next did not answer 200"; }
[[ $(json_field message.header.messageId <"$WORK/next.out") == "$id" ]] || fail "sweden's next message is not $id"
[[ $(json_field message.body.caseId <"$WORK/next.out") == HTTP-1 ]] || fail "the body did not come through"
api sweden "$SWEDEN_API" POST "/v1/inbox/$id/ack" >"$WORK/ack.out"
[[ $(tail -1 "$WORK/ack.out") == 200 ]] || { cat "$WORK/ack.out"; fail "ack did not answer 200"; }
api sweden "$SWEDEN_API" GET /v1/inbox | grep -q "$id" && fail "the acknowledged message is still in the inbox"
# Again (a client retrying): still 200, a no-op (no second audit entry:
# test_node_deliver's test_ack_twice).
api sweden "$SWEDEN_API" POST "/v1/inbox/$id/ack" >"$WORK/ack2.out"
[[ $(tail -1 "$WORK/ack2.out") == 200 ]] || { cat "$WORK/ack2.out"; fail "a second ack did not answer 200"; }

say "a client waiting on an empty inbox does not hold up another"
echo '{"waitMs": 3000}' >"$WORK/wait3.json"
api sweden "$SWEDEN_API" POST /v1/inbox/next "$WORK/wait3.json" >"$WORK/waiting.out" &
waiter=$!
sleep 0.3
t0=$(date +%s%N)
[[ $(api sweden "$SWEDEN_API" GET /v1/node | tail -1) == 200 ]] || fail "node info while another waits"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
((ms < 1500)) || fail "a request waited ${ms} ms behind another client's wait"
wait "$waiter"
[[ $(json_field message <"$WORK/waiting.out") == None ]] || fail "an empty inbox gave a message"

say "a wrong token gets 401; an unknown path 404; an unknown message 404"
echo nope >"$WORK/nope.token"
code=$(hreq wrong GET "$UNHCR_API" /v1/node "$WORK/nope.token")
[[ $code == 401 ]] || fail "a wrong token got $code"
code=$(hreq none POST "$UNHCR_API" /v1/messages - --data-binary @"$WORK/req.json")
[[ $code == 401 ]] || fail "no token got $code"
[[ $(api unhcr "$UNHCR_API" GET /v1/nothing | tail -1) == 404 ]] || fail "an unknown path is not 404"
[[ $(api unhcr "$UNHCR_API" GET /v1/messages/01a20000-0000-7000-8000-000000000000 | tail -1) == 404 ]] ||
  fail "an unknown message is not 404"

say "one convention: camelCase, RFC 3339 times, the type spelled once, problem details"
api unhcr "$UNHCR_API" GET "/v1/messages/$id" >"$WORK/status.out"
python3 - "$WORK/status.out" "$WORK/next.out" <<'PY' || fail "an answer breaks the convention (see above)"
import json, re, sys
def body(f): return json.loads(open(f).read().rsplit("\n", 2)[0])
rfc3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
def walk(v, path):
    if isinstance(v, dict):
        for k, x in v.items():
            if "_" in k or "-" in k: sys.exit("%s: key %r is not lowerCamelCase" % (path, k))
            if path.endswith(".body"): continue
            walk(x, path + "." + k)
st = body(sys.argv[1]); nx = body(sys.argv[2])
walk(st, "status"); walk(nx, "next")
for t in (st["createdAt"], st["recipients"][0]["at"], nx["message"]["receivedAt"],
          nx["message"]["header"]["createdAt"]):
    if not rfc3339.match(t): sys.exit("not an RFC 3339 time: %r" % t)
for t in (st["type"], nx["message"]["type"], nx["message"]["header"]["type"]):
    if t != "case-referral": sys.exit("the type is spelled %r" % t)
if "ok" in st: sys.exit("an HTTP answer still carries 'ok'")
PY
problem() { # FILE STATUS CODE [FIELD]: the answer is problem details with them
  python3 - "$@" <<'PY'
import json, sys
f, status, code = sys.argv[1:4]
raw = open(f).read().rsplit("\n", 2)
p = json.loads(raw[0])
if raw[1] != status: sys.exit("status %s, not %s: %s" % (raw[1], status, p))
for k in ("type", "title", "status", "detail", "code"):
    if k not in p: sys.exit("problem details lack %r: %s" % (k, p))
if p["code"] != code or p["status"] != int(status): sys.exit("not %s %s: %s" % (status, code, p))
if len(sys.argv) > 4 and p.get("field") != sys.argv[4]: sys.exit("field is not %s: %s" % (sys.argv[4], p))
PY
}
ctype() { hreq ctype "$@" >/dev/null; header_of "$WORK/ctype.head" content-type; }
header_of() { tr -d '\r' <"$1" | awk -v f="$2" 'BEGIN{IGNORECASE=1} tolower($0) ~ "^" f ":" {sub(/^[^:]*: */, ""); v=$0} END{print v}'; }
mkreq() { # KEY=JSON-VALUE ...: the referral request with these fields set
  python3 - "$WORK/req.json" "$@" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    if v == "DEL": r.pop(k, None)
    else: r[k] = json.loads(v)
print(json.dumps(r))
PY
}
mkreq clientRef='"http-1"' in_reply_to='"x"' >"$WORK/bad.json"
api unhcr "$UNHCR_API" POST /v1/messages "$WORK/bad.json" >"$WORK/bad.out"
problem "$WORK/bad.out" 400 invalid-argument in_reply_to || fail "a snake_case field was not refused by name"
grep -q "did you mean 'inReplyTo'" "$WORK/bad.out" || fail "the refusal does not name the right spelling"
for kv in bogus_field='1' ttl='5' waitMs='70000' waitMs='-5' waitMs='"abc"' ttlSeconds='"1"' to='"sweden"' type='7'; do
  mkreq clientRef=DEL "$kv" >"$WORK/bad.json"
  api unhcr "$UNHCR_API" POST /v1/messages "$WORK/bad.json" >"$WORK/bad.out"
  problem "$WORK/bad.out" 400 invalid-argument "${kv%%=*}" || fail "$kv was not refused, naming ${kv%%=*}"
done
mkreq clientRef=DEL body=DEL >"$WORK/bad.json"
api unhcr "$UNHCR_API" POST /v1/messages "$WORK/bad.json" >"$WORK/bad.out"
problem "$WORK/bad.out" 400 invalid-argument body || fail "a missing body was not refused by name"
echo '{"waitMs": 70000}' >"$WORK/bad.json"
api sweden "$SWEDEN_API" POST /v1/inbox/next "$WORK/bad.json" >"$WORK/bad.out"
problem "$WORK/bad.out" 400 invalid-argument waitMs || fail "inbox/next took waitMs 70000"

say "a clientRef repeated: the same send is its first message (200), another is 409 naming it"
api unhcr "$UNHCR_API" POST /v1/messages "$WORK/req.json" >"$WORK/dup.out"
[[ $(tail -1 "$WORK/dup.out") == 200 && $(json_field messageId <"$WORK/dup.out") == "$id" &&
   $(json_field duplicate <"$WORK/dup.out") == True ]] || { cat "$WORK/dup.out"; fail "a retry did not give the first message"; }
referral_json HTTP-OTHER >"$WORK/other-body.json"
mkreq body="$(cat "$WORK/other-body.json")" >"$WORK/reuse.json"
api unhcr "$UNHCR_API" POST /v1/messages "$WORK/reuse.json" >"$WORK/reuse.out"
problem "$WORK/reuse.out" 409 exists || fail "a clientRef reused with another body was not 409"
[[ $(json_field messageId <"$WORK/reuse.out") == "$id" ]] || fail "the 409 does not name the first message"
mkreq to='["portugal"]' >"$WORK/reuse.json"
api unhcr "$UNHCR_API" POST /v1/messages "$WORK/reuse.json" >"$WORK/reuse.out"
problem "$WORK/reuse.out" 409 exists || fail "a clientRef reused for another recipient was not 409"

say "405 names what is allowed; 401, 404 and / answer problem details"
TOKF="$WORK/fed/unhcr/http.token"
[[ $(hreq 405 DELETE "$UNHCR_API" /v1/node "$TOKF") == 405 && $(header_of "$WORK/405.head" allow) == GET ]] ||
  fail "DELETE /v1/node is not 405 with Allow: GET"
[[ $(hreq 405b PUT "$UNHCR_API" /v1/messages "$TOKF") == 405 && $(header_of "$WORK/405b.head" allow) == "GET, POST" ]] ||
  fail "PUT /v1/messages is not 405 with Allow: GET, POST"
[[ $(ctype GET "$UNHCR_API" "/v1/messages?bogus=1" "$TOKF") == application/problem+json ]] ||
  fail "GET /v1/messages with an unknown argument is not problem details"
[[ $(hreq 401 GET "$UNHCR_API" /v1/node) == 401 ]] || fail "no token is not 401"
[[ $(header_of "$WORK/401.head" www-authenticate) == Bearer ]] || fail "401 without WWW-Authenticate: Bearer"
[[ $(header_of "$WORK/401.head" content-type) == application/problem+json ]] || fail "401 is not problem details"
for path in / /nothing /v1/nothing; do
  [[ $(ctype GET "$UNHCR_API" "$path" "$TOKF") == application/problem+json ]] ||
    fail "GET $path is not problem details"
done

say "four more referrals by the CLI; the counters follow"
for i in 1 2 3 4; do referral_json "HTTP-$((i + 1))" | "$TERN" send -c "$(conf unhcr)" --to sweden case-referral - >/dev/null; done
wait_for 20 "all five delivered" count_is unhcr delivered 5
check_metrics() { # PORT FILE: fetch and validate the exposition format
  curl -sf "http://127.0.0.1:$1/metrics" >"$2" && python3 - "$2" <<'PY'
import re, sys
name = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
sample = re.compile(r'^(%s)(\{%s="[^"\\\n]*"(,%s="[^"\\\n]*")*\})? [-+]?([0-9.eE+-]+|NaN|Inf)$' % (name, name, name))
typed = set()
for line in open(sys.argv[1]):
    line = line.rstrip('\n')
    if line.startswith('# HELP '): continue
    m = re.match(r'^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$' % name, line)
    if m: typed.add(m.group(1)); continue
    m = sample.match(line)
    if not m: sys.exit('not Prometheus text: ' + line)
    base = re.sub(r'_(bucket|sum|count)$', '', m.group(1))
    if m.group(1) not in typed and base not in typed: sys.exit('sample before its TYPE: ' + line)
PY
}
metric_is() { grep -qxF "$2 $3" "$1"; }
broker_counts() {
  check_metrics "$BROKER_METRICS" "$WORK/broker.metrics" &&
    metric_is "$WORK/broker.metrics" 'tern_broker_submissions_total{type="case-referral",outcome="accepted"}' 5 &&
    metric_is "$WORK/broker.metrics" 'tern_broker_submissions_total{type="receipt",outcome="accepted"}' 5 &&
    metric_is "$WORK/broker.metrics" 'tern_broker_delivery_latency_seconds_count' 10
}
wait_for 10 "the broker's counters to show 5 referrals and 5 receipts, 10 deliveries" broker_counts
unhcr_counts() {
  check_metrics "$UNHCR_METRICS" "$WORK/unhcr.metrics" &&
    metric_is "$WORK/unhcr.metrics" 'tern_node_sent_total{type="case-referral"}' 5 &&
    metric_is "$WORK/unhcr.metrics" 'tern_node_receipts_total{outcome="delivered"}' 5 &&
    metric_is "$WORK/unhcr.metrics" 'tern_node_outbox_messages{state="delivered"}' 5
}
wait_for 10 "unhcr's counters to show 5 sent and delivered" unhcr_counts
for p in "$BROKER_METRICS" "$UNHCR_METRICS"; do
  for e in healthz readyz; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p/$e")
    [[ $code == 200 ]] || fail "/$e on port $p answered $code"
  done
done
say "a burst is signed in batches: the broker and unhcr check one signature per batch"
"$BIN/tern" bench -c "$WORK/fed/unhcr/node.conf" --to sweden --producers 4 --window 16 \
  --warmup 0 --duration 2 >"$WORK/bench.out" 2>&1 || { cat "$WORK/bench.out"; fail "tern bench failed"; }
metric_of() { awk -v k="$2" '$1 == k {print $2}' "$1"; }
check_metrics "$BROKER_METRICS" "$WORK/broker.metrics"
v=$(metric_of "$WORK/broker.metrics" 'tern_broker_batch_roots_total{result="verified"}')
r=$(metric_of "$WORK/broker.metrics" 'tern_broker_batch_roots_total{result="remembered"}')
[[ -n $v && -n $r ]] || fail "the broker does not show tern_broker_batch_roots_total"
((v > 0 && r > v)) || fail "the broker verified $v batch roots and remembered $r: no batching"
# The node refreshes /metrics every 2 s: wait for a page from after the burst.
node_batched() {
  check_metrics "$UNHCR_METRICS" "$WORK/unhcr.metrics" || return 1
  r=$(metric_of "$WORK/unhcr.metrics" 'tern_node_batch_roots_total{result="remembered"}')
  x=$(metric_of "$WORK/unhcr.metrics" 'tern_node_x25519_total{result="reused"}')
  ((r > 0 && x > 0))
}
wait_for 10 "unhcr to remember a batch root of sweden's receipts and reuse an X25519 secret" node_batched
say "a token file with white space around the token holds the same token; a header with a CR is refused, saying why"
tok=$(token "$WORK/fed/unhcr/http.token")
stop unhcr
printf ' \t%s \r\n\n' "$tok" >"$WORK/fed/unhcr/http.token" # stays 0600
start unhcr
api_up() { [[ $(api unhcr "$UNHCR_API" GET /v1/node | tail -1) == 200 ]]; }
wait_for 20 "unhcr's HTTP API to take the token read from ' \t TOKEN \r\n\n'" api_up
# A naive client: the file as it is, through $(cat), keeps the CR.
code=$(curl -s -o "$WORK/cr.out" -w '%{http_code}' -H "Authorization: Bearer $(cat "$WORK/fed/unhcr/http.token")" \
  "http://127.0.0.1:$UNHCR_API/v1/node")
[[ $code == 401 ]] || fail "a header with the token file's CR got $code"
grep -q '"detail": "the Authorization header holds a line break' "$WORK/cr.out" ||
  fail "the 401 does not say what is wrong: $(cat "$WORK/cr.out")"
grep -qF "$tok" "$WORK"/unhcr.log && fail "unhcr's log holds the token"

say "every exchange above against docs/openapi.yaml"
http_check
echo "it test_http: ok"
