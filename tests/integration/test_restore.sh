#!/usr/bin/env bash
# A restore loses nothing (finding 3 of the edge review). Following the steps
# of docs/operations.md ("Backup and restore") while traffic runs:
# 1. the broker's store is backed up hot (tern backup), 1,000 more messages
#    go through, the broker is stopped, the copy put back and the broker
#    started: unhcr and sweden notice the store went back (it holds fewer of
#    their acceptances than it told them) and submit again what it lost;
# 2. sweden's store is backed up, 1,000 more messages go through, sweden is
#    stopped, the copy put back and sweden started: the broker notices
#    (sweden holds less than it acknowledged) and delivers again, from what
#    it retains, everything sweden lost;
# 3. with a retention shorter than the backup's age, what sweden lost cannot
#    be delivered again: the broker names each message, by id, in its log
#    and audit log, never silently.
# Each time: every message reaches sweden exactly once, in sending order, and
# unhcr sees every one delivered. Before, a restored broker reused sequence
# numbers and sweden dropped messages as already held, silently.
source "$(dirname "$0")/lib.sh"
N=${TERN_RESTORE_N:-3000}
BCONF="$WORK/fed/broker/broker.conf"
fed_make
for d in broker unhcr sweden; do start "$d"; done
wait_for 20 "unhcr to connect" connected unhcr
wait_for 20 "sweden to connect" connected sweden

atleast() { # NODE FIELD N
  local v; v=$(info_field "$1" "$2"); [[ -n "$v" ]] && ((v >= $3)); }
inbox_order() { "$TERN" inbox -c "$(conf sweden)" list --json | grep -o "\"case_id\": \"$1-[0-9]*" | cut -d- -f2; }
check_inbox() { # PREFIX N
  inbox_order "$1" >"$WORK/order-$1"
  local got; got=$(wc -l <"$WORK/order-$1")
  [[ "$got" -eq "$2" ]] || fail "sweden's inbox holds $got $1 messages, not $2"
  [[ "$(sort -u "$WORK/order-$1" | wc -l)" -eq "$2" ]] || fail "duplicates in sweden's inbox ($1)"
  seq -f '%06g' 1 "$2" | cmp -s - "$WORK/order-$1" || fail "sweden's inbox is not in sending order ($1)"
}
restore() { # NAME DATA_DIR BACKUP: the steps of docs/operations.md
  stop "$1"
  mv "$2" "$2.replaced"
  mv "$3" "$2"
  start "$1"
}

say "1. the broker: $N messages unhcr -> sweden, a hot backup, 1,000 more, the copy put back"
"$FLOOD" "$WORK/fed/unhcr/data/api.sock" unhcr sweden "$N" BROKER 2>"$WORK/flood1.log" &
flood=$!
wait_for 60 "300 delivered" atleast unhcr delivered 300
"$TERN" backup -c "$BCONF" --out "$WORK/hub-backup" >"$WORK/backup1.out" || fail "tern backup (broker) failed"
at=$(info_field unhcr delivered)
say "backed up at about $at delivered: $(cat "$WORK/backup1.out")"
# The copy holds sealed messages and the audit log: the owner's alone, as the
# daemon's own store (it was 0644 under the usual umask; a new user's finding).
for f in "$WORK/hub-backup" "$WORK/hub-backup/data.mdb"; do
  m=$(stat -c %a "$f")
  [[ $m == 700 || $m == 600 ]] || fail "the backup's $(basename "$f") is mode $m, readable by others"
done
wait_for 60 "1,000 more through the broker" atleast unhcr delivered $((at + 1000))
restore broker "$WORK/fed/broker/data" "$WORK/hub-backup"
wait "$flood" || fail "the flood did not finish (flood1.log)"
wait_for 120 "all $N delivered at unhcr" count_is unhcr delivered "$N"
check_inbox BROKER "$N"
grep -q "broker store restored" "$WORK/unhcr.log" || fail "unhcr did not notice the broker's store went back"
# /metrics is a snapshot the node takes every 2 s (the broker every second):
# a run that ends quickly checks before the next one.
metric() { curl -sf "http://127.0.0.1:$1/metrics" | grep "^$2 " | cut -d' ' -f2; }
metric_is() { [[ "$(metric "$1" "$2")" == "$3" ]]; }
wait_for 10 "unhcr's /metrics to count 1 broker restore" \
  metric_is $((PORT + 12)) 'tern_node_store_restores_total{store="broker"}' 1
m=$(metric $((PORT + 12)) 'tern_node_store_restores_total{store="broker"}')
[[ "$m" == 1 ]] || fail "unhcr's /metrics counts $m broker restores, not 1"
say "the broker's restore: all $N delivered once, in order"

say "2. sweden: $N more, a hot backup of sweden's store, 1,000 more, the copy put back"
"$FLOOD" "$WORK/fed/unhcr/data/api.sock" unhcr sweden "$N" NODE 2>"$WORK/flood2.log" &
flood=$!
wait_for 60 "300 received at sweden" atleast sweden inbox $((N + 300))
"$TERN" backup -c "$(conf sweden)" --out "$WORK/sweden-backup" >"$WORK/backup2.out" ||
  fail "tern backup (sweden) failed"
at=$(info_field sweden inbox)
say "backed up at about $at in sweden's inbox"
wait_for 60 "1,000 more received at sweden" atleast sweden inbox $((at + 1000))
restore sweden "$WORK/fed/sweden/data" "$WORK/sweden-backup"
wait_for 20 "sweden to connect" connected sweden
wait "$flood" || fail "the flood did not finish (flood2.log)"
wait_for 120 "all $((2 * N)) delivered at unhcr" count_is unhcr delivered $((2 * N))
wait_for 60 "sweden to hold the $N again" count_is sweden inbox $((2 * N))
check_inbox BROKER "$N"
check_inbox NODE "$N"
grep -q "sweden: store restored: holds deliveries up to" "$WORK/broker.log" ||
  fail "the broker did not notice sweden's store went back"
grep -q "no longer retained" "$WORK/broker.log" && fail "the broker had purged what sweden lost"
wait_for 10 "the broker's /metrics to count 1 node restore" \
  metric_is $((PORT + 1)) tern_broker_node_restores_total 1
m=$(metric $((PORT + 1)) tern_broker_node_restores_total)
[[ "$m" == 1 ]] || fail "the broker's /metrics counts $m node restores, not 1"

say "3. past retention: what sweden lost is named by id"
# retain = 1 s: what sweden acknowledges is purged to stubs within a purge
# round (10 s), and sweden is then put back from a copy older than that.
stop broker
printf '\n[delivery]\nretain = 1\n' >>"$BCONF"
start broker
wait_for 20 "unhcr to connect" connected unhcr
wait_for 20 "sweden to connect" connected sweden
purged_count() { curl -sf "http://127.0.0.1:$((PORT + 1))/metrics" |
  grep '^tern_broker_retained_purged_total ' | cut -d' ' -f2 | cut -d. -f1; }
purged() { local v; v=$(purged_count); [[ -n "$v" ]] && ((v >= $1)); }
wait_for 30 "the broker's first purge round" purged 1
p0=$(purged_count)
# One delivery in this start before the copy: sweden's position then counts
# in the broker's current start, and what it lost can be named exactly.
"$FLOOD" "$WORK/fed/unhcr/data/api.sock" unhcr sweden 1 FIRST 2>/dev/null
wait_for 30 "one more delivered" count_is unhcr delivered $((2 * N + 1))
"$TERN" backup -c "$(conf sweden)" --out "$WORK/sweden-backup3" >/dev/null || fail "tern backup (sweden, 3) failed"
"$FLOOD" "$WORK/fed/unhcr/data/api.sock" unhcr sweden 50 LOST 2>"$WORK/flood3.log"
wait_for 60 "the 50 delivered" count_is unhcr delivered $((2 * N + 51))
wait_for 40 "the broker to purge what sweden acknowledged" purged $((p0 + 51))
grep -o "received [0-9a-f-]* case-referral from unhcr, case LOST-" "$WORK/sweden.log" | cut -d' ' -f2 >"$WORK/lost-ids"
[[ $(wc -l <"$WORK/lost-ids") -eq 50 ]] || fail "sweden did not log the 50 it received"
restore sweden "$WORK/fed/sweden/data" "$WORK/sweden-backup3"
wait_for 20 "sweden to connect" connected sweden
named() { grep -q "sweden lost 50 message(s) past retention" "$WORK/broker.log"; }
wait_for 20 "the broker to say what sweden lost" named

say "the restores are in the audit logs"
stop unhcr
stop broker
"$TERN" audit export -c "$BCONF" --out "$WORK/broker.tern-audit" >/dev/null
"$TERN" audit export -c "$(conf unhcr)" --out "$WORK/unhcr.tern-audit" >/dev/null
grep -qa "store restored" "$WORK/broker.tern-audit" || fail "no restore in the broker's audit log"
grep -qa "broker store restored" "$WORK/unhcr.tern-audit" || fail "no restore in unhcr's audit log"
while read -r id; do
  grep -qa "$id" "$WORK/broker.tern-audit" || fail "$id, lost past retention, is not named in the broker's audit log"
done <"$WORK/lost-ids"
say "ok"
