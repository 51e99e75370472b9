#!/usr/bin/env bash
# A flaky network: unhcr and sweden reach the broker through a proxy that
# delays every chunk and cuts every connection every few seconds. 2,000
# messages still arrive exactly once, in order.
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

say "$N messages through a link cut every ~1 s, 20 ms delay per chunk"
"$FLOOD" "$WORK/fed/unhcr/data/api.sock" unhcr sweden "$N" NET 2>"$WORK/flood.log"
wait_for 300 "all $N delivered" count_is unhcr delivered "$N"
cuts=$(grep -c "netproxy: cut" "$WORK/proxy.log")
((cuts >= 3)) || fail "only $cuts cuts happened"
"$TERN" inbox -c "$(conf sweden)" list --json | grep -o '"case_id": "NET-[0-9]*' | cut -d- -f2 >"$WORK/order"
seq -f '%06g' 1 "$N" | cmp - "$WORK/order" || fail "sweden's inbox is not the $N in order, once each"
say "delivered in order after $cuts cuts"
echo "it test_netfaults: ok"
