#!/usr/bin/env bash
# Webhook receivers that misbehave (docs/api.md, "Webhooks"): one that takes
# the request and never answers, one that answers 500, a redirect, and a URL
# that carries credentials. The node's loop never waits on the receiver (its
# API answers at once meanwhile), a stop still ends within 5 s
# (test_stop.sh's standard), nothing pending is lost, and the credentials of
# a URL never reach the log.
source "$(dirname "$0")/lib.sh"

fed_make
U_HOOK=$((PORT + 42))
UNHCR_API=$((PORT + 13))
TOKF="$WORK/fed/unhcr/http.token"
(printf whsec_; head -c 32 /dev/urandom | base64) >"$WORK/fed/unhcr/webhook.secret"
chmod 600 "$WORK/fed/unhcr/webhook.secret"
printf '\n[webhook]\nurl = http://tern-hook:Sup3rS3cretPw@127.0.0.1:%d/tern?token=QueryS3cret\nmax_backoff = 1\n' \
  "$U_HOOK" >>"$(conf unhcr)"

# hostile MODE: a receiver on U_HOOK; hang (read the request, never answer),
# 500, or 302 (to a path that would answer 200).
hostile() {
  python3 - "$U_HOOK" "$1" "$WORK/hostile.count" <<'PY' >>"$WORK/hostile.log" 2>&1 &
import socket, sys, threading, time
port, mode, count = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen(16)
n = 0
def serve(c):
    c.recv(65536)
    if mode == "hang":
        time.sleep(3600)
    elif mode == "500":
        c.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    else:
        c.sendall(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%d/ok\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" % port)
    c.close()
while True:
    c, _ = s.accept()
    n += 1
    open(count, "w").write("%d\n" % n)
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
  PIDS[hostile]=$!
}
unhostile() { kill "${PIDS[hostile]}" 2>/dev/null; wait "${PIDS[hostile]}" 2>/dev/null || true; unset "PIDS[hostile]"; }
posted() { [[ -f $WORK/hostile.count ]] && (($(cat "$WORK/hostile.count") >= $1)); }
pending() { "$TERN" queues -c "$(conf unhcr)" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["webhooks"]["pending"])'; }
stop_within() { # NAME: SIGTERM, then at most 5 s for a clean exit
  local pid=${PIDS[$1]} rc=0
  kill -TERM "$pid"
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -9 "$pid"
    fail "$1 did not exit within 5 s of SIGTERM (a webhook post under way)"
  fi
  wait "$pid" || rc=$?
  unset "PIDS[$1]"
  [[ $rc -eq 0 ]] || fail "$1 exited $rc after SIGTERM, want 0"
}

hostile hang
for n in broker unhcr sweden; do start "$n"; done
wait_for 20 "unhcr to connect" connected unhcr
wait_for 20 "sweden to connect" connected sweden

say "a receiver that never answers: the API answers at once, a stop ends within 5 s"
referral_json HOST-1 | "$TERN" send -c "$(conf unhcr)" --to sweden case-referral - >/dev/null
wait_for 20 "the push to be posted" posted 1
t0=$(date +%s%N)
curl -sf -o /dev/null -H "Authorization: Bearer $(token "$TOKF")" "http://127.0.0.1:$UNHCR_API/v1/node" ||
  fail "GET /v1/node failed while a push hangs"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
((ms < 1000)) || fail "GET /v1/node took $ms ms while a push hangs"
stop_within unhcr
unhostile
[[ $(pending) == 1 ]] || fail "the hung push is not pending after the stop ($(pending))"

say "a receiver that answers 500, then one that redirects: retried, kept, never followed"
rm -f "$WORK/hostile.count"
hostile 500
start unhcr
wait_for 20 "3 attempts" posted 3
stop_within unhcr
unhostile
rm -f "$WORK/hostile.count"
hostile 302
start unhcr
wait_for 20 "3 attempts" posted 3
stop_within unhcr
unhostile
[[ $(pending) == 1 ]] || fail "the refused push is not pending ($(pending))"

say "the URL's credentials are in no log"
if grep -n "Sup3rS3cretPw\|QueryS3cret" "$WORK"/*.log; then
  fail "the webhook URL's credentials are in a log (above)"
fi
say "ok"
