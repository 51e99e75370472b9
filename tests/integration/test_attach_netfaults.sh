#!/usr/bin/env bash
# A link cut mid-transfer (docs/attachments.md): unhcr and sweden reach the
# broker through a proxy that delays every piece and cuts every connection
# about every 2 seconds. A 64 MiB attachment still arrives byte-identical,
# once, and each cut resumes the put and the fetch from a chunk past 0.
source "$(dirname "$0")/lib.sh"
MIB=${TERN_ATTACH_NET_MIB:-64}
PROXY=$((PORT + 5))
fed_make
for n in unhcr sweden; do
  sed -i "s|^endpoint = tcp://127.0.0.1:$PORT|endpoint = tcp://127.0.0.1:$PROXY|" "$(conf "$n")"
done
python3 "$(dirname "$0")/../tools/netproxy.py" "$PROXY" "$PORT" --delay 5 --cut-every 2 2>"$WORK/proxy.log" &
PIDS[proxy]=$!
for n in broker unhcr sweden; do start "$n"; done
wait_for 30 "unhcr to connect through the proxy" connected unhcr
wait_for 30 "sweden to connect through the proxy" connected sweden

head -c $((MIB * 1024 * 1024)) /dev/urandom >"$WORK/att.bin"
referral_json NET-ATT >"$WORK/ref.json"
id=""
for try in 1 2 3 4 5; do # the send itself may meet a cut: sent again, safely, by client ref
  id=$("$TERN" send -c "$(conf unhcr)" --to sweden --client-ref net-att-1 \
    --attach "$WORK/att.bin:scan.bin" case-referral "$WORK/ref.json") && break
  sleep 1
done
[[ -n $id ]] || fail "the send never went through"
say "sent $id ($MIB MiB) through a link cut every ~2 s"
wait_for 300 "$id delivered" state_is unhcr "$id" delivered
cuts=$(grep -c "netproxy: cut" "$WORK/proxy.log")
((cuts >= 2)) || fail "only $cuts cuts happened during the transfer"
resumed() { grep -h "$1 $id" "$WORK/$2.log" | grep -o 'from chunk [0-9]*' | awk '$3 > 0 {f=1} END {exit !f}'; }
resumed putting unhcr || resumed fetching sweden ||
  fail "no put or fetch of $id resumed past chunk 0 after a cut"
count_is sweden inbox 1 || fail "sweden's inbox does not hold exactly one message"
"$TERN" inbox -c "$(conf sweden)" attachment "$id" scan.bin --out "$WORK/got.bin" || fail "cannot read it back"
cmp -s "$WORK/att.bin" "$WORK/got.bin" || fail "the attachment is not byte-identical"
echo "it test_attach_netfaults: ok ($MIB MiB through $cuts cuts)"
