#!/usr/bin/env bash
# A flaky network: unhcr and sweden reach the broker through a proxy that
# delays every chunk and cuts every connection about once a second. Batches of
# 2,000 messages go on until the link has been cut at least 3 times; every one
# arrives exactly once, in order.
source "$(dirname "$0")/lib.sh"
N=${TERN_NETFAULT_N:-2000}
PROXY=$((PORT + 5))
fed_make
for n in unhcr sweden; do
  sed -i "s|^endpoint = tcp://127.0.0.1:$PORT|endpoint = tcp://127.0.0.1:$PROXY|" "$(conf "$n")"
done
python3 "$(dirname "$0")/../tools/netproxy.py" "$PROXY" "$PORT" --delay 20 --cut-every 1 2>"$WORK/proxy.log" &
PIDS[proxy]=$!
for n in broker unhcr sweden; do start "$n"; done
wait_for 30 "unhcr to connect through the proxy" connected unhcr

say "$N messages (and more, until the link has been cut 3 times) through a link cut every ~1 s"
# The stream must outlast several cuts however fast the machine is: batches of
# $N go on until the proxy has cut the link at least 3 times (at most 10).
: >"$WORK/expected"
total=0
for batch in a b c d e f g h i j; do
  "$FLOOD" "$WORK/fed/unhcr/data/api.sock" unhcr sweden "$N" "NET$batch" 2>"$WORK/flood.log"
  seq -f "NET$batch-%06g" 1 "$N" >>"$WORK/expected"
  total=$((total + N))
  (($(grep -c "netproxy: cut" "$WORK/proxy.log") >= 3)) && break
done
wait_for 300 "all $total delivered" count_is unhcr delivered "$total"
cuts=$(grep -c "netproxy: cut" "$WORK/proxy.log")
((cuts >= 3)) || fail "only $cuts cuts happened"
"$TERN" inbox -c "$(conf sweden)" list --json | grep -o '"case_id": "NET[a-j]-[0-9]*' | cut -d'"' -f4 >"$WORK/order"
cmp "$WORK/expected" "$WORK/order" || fail "sweden's inbox is not the $total in order, once each"
say "$total delivered in order after $cuts cuts"
echo "it test_netfaults: ok"
