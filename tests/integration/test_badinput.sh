#!/usr/bin/env bash
# Bad input at the broker and the node: each is answered with its reason,
# logged and audited, the daemons stay up, and a good message sent right
# after still arrives. (Covered elsewhere: an unknown CURVE key, a forged sender
# and a wrong role in test_refusals.sh; a revoked node and a directory
# downgrade in test_reload.sh.) The bad peer speaks as unhcr (with unhcr's CURVE key),
# as a compromised or broken node would.
source "$(dirname "$0")/lib.sh"
BCONF="$WORK/fed/broker/broker.conf"
fed_make
for n in broker unhcr sweden; do start "$n"; done
wait_for 20 "unhcr to connect" connected unhcr
wait_for 20 "sweden to connect" connected sweden
good=0
good_message_arrives() {
  local id
  id=$(referral_json "GOOD-$good" | "$TERN" send -c "$(conf unhcr)" --to sweden case-referral -)
  wait_for 30 "a good message after '$1' to arrive" state_is unhcr "$id" delivered
  good=$((good + 1))
}
# The bad peer holds unhcr's keys; unhcr's own node waits stopped meanwhile,
# or it would take its route back (by saying Hello again) in the middle of a
# case. Its outbox and inbox wait in its store.
badpeer() { # CASE [ARG]
  stop unhcr
  "$BIN/tern-badpeer" "$BCONF" "$WORK/fed/unhcr" "$@" >"$WORK/$1.out" || true
  start unhcr
  wait_for 20 "unhcr to connect again" connected unhcr
}
expect() { # CASE REASON-PATTERN
  badpeer "$1"
  grep -qE "$2" "$WORK/$1.out" || { cat "$WORK/$1.out"; fail "$1: the answer does not give the reason /$2/"; }
  say "$1: $(head -c 100 "$WORK/$1.out" | head -1)"
  kill -0 "${PIDS[broker]}" && kill -0 "${PIDS[sweden]}" || fail "a daemon died on $1"
  good_message_arrives "$1"
}

say "garbage bytes on the port (no CURVE handshake)"
# In a subshell ignoring SIGPIPE: libzmq may reset the connection before the
# write, which must not end the test.
(
  trap '' PIPE
  exec 3<>"/dev/tcp/127.0.0.1/$PORT"
  printf 'GET / HTTP/1.0\r\n\r\n\x00\xff\xfe garbage' >&3
) 2>/dev/null || true
# libzmq drops it before any handshake; the broker counts it for /metrics.
unfinished() {
  local a o f
  curl -sf "http://127.0.0.1:$((PORT + 1))/metrics" >"$WORK/m.txt" || return 1
  a=$(grep '^tern_broker_connections_accepted_total ' "$WORK/m.txt" | cut -d' ' -f2)
  o=$(grep '^tern_broker_handshakes_total{result="ok"} ' "$WORK/m.txt" | cut -d' ' -f2)
  f=$(grep '^tern_broker_handshakes_total{result="failed"} ' "$WORK/m.txt" | cut -d' ' -f2)
  ((a - o - f >= 1))
}
wait_for 10 "/metrics to count a connection without a handshake" unfinished
good_message_arrives garbage-on-port

expect garbage   '^malformed: frame does not decode'
expect frames    '^too-many-frames: '
expect truncated '^malformed: .*Envelope'
expect badsig    '^bad-signature: '
expect garbled   '^(malformed|bad-signature): '
expect future    '^clock-skew: '
expect unknown   '^unknown-recipient: recipient nowhere is not a member'
badpeer oversized
grep -q "no answer" "$WORK/oversized.out" || fail "an oversized frame was answered"
kill -0 "${PIDS[broker]}" || fail "the broker died on an oversized frame"
good_message_arrives oversized

say "a replayed message id is accepted once and delivered once"
expect replay '^accepted: '
[[ $(grep -c '^accepted' "$WORK/replay.out") -eq 2 ]] || fail "the replay did not get the first answer again"
received_once() {
  [[ $(grep -c "received .* case-referral from unhcr, case AMM-26C00417" "$WORK/sweden.log") -eq 1 ]]
}
wait_for 10 "sweden to hold the replayed message once" received_once

say "an invalid body is refused by the recipient, with its reason"
expect badbody '^accepted: '
refused_body() { grep -q "refused .* from unhcr: invalid-body" "$WORK/sweden.log"; }
wait_for 10 "sweden to refuse the invalid body" refused_body
say "its receipt reaches unhcr's node, which never sent that message: refused, logged, audited"
never_sent() { grep -q "refused .* from sweden: unknown-message: a receipt for" "$WORK/unhcr.log"; }
wait_for 20 "unhcr to refuse a receipt for a message it never sent" never_sent

say "a submission out of its session's order is not taken; after a new Hello it is"
badpeer skip
sed -n 1p "$WORK/skip.out" | grep -q '^out-of-sequence: ' || { cat "$WORK/skip.out"; fail "submission 2 before 1 was not refused out-of-sequence"; }
sed -n 2p "$WORK/skip.out" | grep -q '^no answer' || { cat "$WORK/skip.out"; fail "the broken session went on taking submissions"; }
sed -n 3p "$WORK/skip.out" | grep -q '^accepted: ' || { cat "$WORK/skip.out"; fail "the new session's first submission was not accepted"; }
say "a submission of an older session is dropped without an answer"
badpeer stale
sed -n 1p "$WORK/stale.out" | grep -q '^no answer' || { cat "$WORK/stale.out"; fail "a stale session's submission was answered"; }
sed -n 2p "$WORK/stale.out" | grep -q '^accepted: ' || { cat "$WORK/stale.out"; fail "the current session's submission was not accepted"; }
# replay once, skip once, stale once: each accepted message delivered once.
three() { [[ $(grep -c "received .* case-referral from unhcr, case AMM-26C00417" "$WORK/sweden.log") -eq 3 ]]; }
wait_for 10 "sweden to hold exactly three of the bad peer's messages" three
curl -sf "http://127.0.0.1:$((PORT + 1))/metrics" >"$WORK/m.txt"
grep -q '^tern_broker_submits_out_of_sequence_total [1-9]' "$WORK/m.txt" ||
  fail "/metrics does not count the out-of-sequence submissions"
good_message_arrives stale

say "every refusal is in the broker's or sweden's audit log"
stop unhcr; stop sweden; stop broker
"$TERN" audit export -c "$BCONF" --out "$WORK/broker.tern-audit" >/dev/null
"$TERN" audit export -c "$(conf sweden)" --out "$WORK/sweden.tern-audit" >/dev/null
for r in malformed too-many-frames bad-signature clock-skew unknown-recipient; do
  grep -qa "$r" "$WORK/broker.tern-audit" || fail "no $r refusal in the broker's audit log"
done
grep -qa "invalid-body" "$WORK/sweden.tern-audit" || fail "no invalid-body refusal in sweden's audit log"
"$TERN" audit export -c "$(conf unhcr)" --out "$WORK/unhcr.tern-audit" >/dev/null
grep -qa "unknown-message" "$WORK/unhcr.tern-audit" || fail "no unknown-message refusal in unhcr's audit log"
"$TERN" audit verify "$WORK/broker.tern-audit" "$WORK/sweden.tern-audit" 2>/dev/null ||
  fail "the audit logs do not verify after the bad input"
echo "it test_badinput: ok"
