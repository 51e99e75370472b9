#!/usr/bin/env bash
# Per-peer rate limits at the broker: unhcr floods 400 submissions against a
# limit of 50/s; iom's few submissions meanwhile are answered at once, and all
# of unhcr's still arrive, none lost, none twice.
source "$(dirname "$0")/lib.sh"
N=400
fed_make
printf '\n[limits]\npeer_rate = 50\npeer_burst = 50\n' >>"$WORK/fed/broker/broker.conf"
for n in broker unhcr iom sweden; do start "$n"; done
for n in unhcr iom sweden; do wait_for 20 "$n to connect" connected "$n"; done

say "unhcr floods $N submissions; the broker admits 50 a second"
# From the flood's start: under a sanitizer the flood itself takes seconds,
# while the broker already admits its first ones.
t_start=$SECONDS
"$FLOOD" "$WORK/fed/unhcr/data/api.sock" unhcr sweden "$N" FLOOD
t0=$SECONDS
say "iom's submissions are answered while unhcr waits its turn"
# iom (movement) may not send referrals: the broker answers at once with a
# refusal, which is all this needs: an answer, not a place in unhcr's queue.
"$FLOOD" "$WORK/fed/iom/data/api.sock" iom sweden 5 IOM
answered() { [[ $(( $(info_field iom rejected) + $(info_field iom delivered) )) -eq 5 ]]; }
wait_for 5 "iom's 5 submissions to be answered" answered
done_unhcr=$(( $(info_field unhcr at-broker) + $(info_field unhcr delivered) ))
((done_unhcr < N)) || fail "unhcr's flood was not slowed ($done_unhcr of $N already answered)"
say "iom answered after $((SECONDS - t0)) s, while unhcr had $done_unhcr of $N answered"
grep -q "unhcr is over its rate" "$WORK/broker.log" || fail "the broker did not log the limit"

wait_for 60 "all of unhcr's $N delivered" count_is unhcr delivered "$N"
# 50 at once (the burst), then 350 at 50 a second: 7 s at the least.
((SECONDS - t_start >= 6)) || fail "$N submissions at 50/s went through in $((SECONDS - t_start)) s"
count_is sweden inbox "$N" || fail "sweden holds $(info_field sweden inbox), not $N"
echo "it test_ratelimit: ok"
