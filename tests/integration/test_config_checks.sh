#!/usr/bin/env bash
# What a start checks, -n checks too, and neither hangs or echoes raw bytes
# (finding 7 of the adversarial review):
# 1. a problem only a start used to find (a token file at 0644, a short
#    token, [metrics] port = [http] port, data_dir not a directory) is found
#    by -n, and a start refuses it as well;
# 2. a key, token, directory or configuration file that is a named pipe is
#    refused at once, by -n and by a start, naming the path and what it is;
# 3. a configuration file of random bytes gives plain-ASCII errors, the
#    bytes escaped (\x9c) and each quote cut short;
# 4. a configuration file, data directory or key directory others may write
#    is refused (StrictModes), with the chmod that fixes it; what
#    tern dev-federation writes passes;
# 5. a node refused at the CurveZMQ handshake backs off (100 ms doubling to
#    [delivery] reconnect_max) and logs the refusal once, not ~60 times in
#    10 s; it keeps trying, and gets in by itself once it has the broker's
#    new key, or once the broker admits it;
# 6. the broker's line for a failed handshake names the peer (or says it is
#    unknown), never its own listening address; a ZAP refusal names the
#    peer's address.
source "$(dirname "$0")/lib.sh"
NODE="$BIN/tern-node"
BROKER="$BIN/tern-broker"

fed_make
U="$WORK/fed/unhcr"
UC=$(conf unhcr)
BC="$WORK/fed/broker/broker.conf"
cp -p "$UC" "$WORK/unhcr.conf.orig"
set_key() { # FILE SECTION KEY VALUE: sets (or adds) one setting
  python3 - "$@" <<'PY'
import re, sys
path, section, key, value = sys.argv[1:]
text = open(path).read()
head = "[%s]\n" % section
if head not in text:
    text += "\n" + head
start = text.index(head) + len(head)
end = text.find("\n[", start)
end = len(text) if end < 0 else end + 1
body, n = re.subn(r"(?m)^%s\s*=.*$" % re.escape(key), "%s = %s" % (key, value), text[start:end])
if n == 0:
    body = "%s = %s\n" % (key, value) + body
open(path, "w").write(text[:start] + body + text[end:])
PY
}

# The state every section starts from (a section that fails half-way, as on
# a build without these checks, must not spoil the next).
cp -p "$U/http.token" "$WORK/token.orig"
cp -p "$U/node.key" "$WORK/node.key.orig"
cp -p "$WORK/fed/ca/directory.tdir" "$WORK/directory.orig"
reset_state() {
  cp -p "$WORK/unhcr.conf.orig" "$UC"
  rm -f "$U/http.token" "$U/node.key" "$WORK/fed/ca/directory.tdir"
  cp -p "$WORK/token.orig" "$U/http.token"
  cp -p "$WORK/node.key.orig" "$U/node.key"
  cp -p "$WORK/directory.orig" "$WORK/fed/ca/directory.tdir"
  chmod 700 "$U" "$U/data" "$WORK/fed/ca"
  chmod 644 "$UC" "$BC"
}
# section NUMBER FUNCTION: runs it in a subshell, so that one finding's
# failure is reported and the next still runs; the test fails at the end.
FAILED=()
section() {
  local rc=0
  reset_state
  set +e
  (set -e; "$2")
  rc=$?
  set -e
  ((rc == 0)) || FAILED+=("$1")
}

# plain FILE: every byte printable ASCII or a line end, every line bounded.
plain() {
  if LC_ALL=C grep -q $'[^\t -~]' "$1"; then
    od -c "$1" | head -20 >&2
    return 1
  fi
  ! awk 'length($0) > 600 { exit 1 }' "$1" && return 1
  return 0
}

# refused NAME REGEX COMMAND...: COMMAND must fail within 10 s (not hang, not
# succeed), print a line matching REGEX, and print plain ASCII only.
refused() {
  local name=$1 re=$2 rc=0
  shift 2
  timeout 10 "$@" >"$WORK/$name.out" 2>&1 || rc=$?
  ((rc != 124)) || fail "$name: '$*' hung (killed after 10 s)"
  ((rc != 0)) || { cat "$WORK/$name.out"; fail "$name: '$*' accepted it"; }
  grep -qE -- "$re" "$WORK/$name.out" || { cat "$WORK/$name.out"; fail "$name: '$*' does not say /$re/"; }
  plain "$WORK/$name.out" || fail "$name: '$*' printed raw bytes or an unbounded line"
}
# both NAME REGEX DAEMON CONF: -n and a real start refuse alike.
both() {
  refused "$1-n" "$2" "$3" -c "$4" -n
  refused "$1-start" "$2" "$3" -c "$4"
}

say "what tern dev-federation writes passes -n (its directory is under /tmp, root's and sticky)"
for n in unhcr iom sweden portugal; do
  "$NODE" -c "$(conf $n)" -n >"$WORK/ok-$n.out" 2>&1 || { cat "$WORK/ok-$n.out"; fail "$n's configuration does not check out"; }
done
"$BROKER" -c "$BC" -n >"$WORK/ok-broker.out" 2>&1 || { cat "$WORK/ok-broker.out"; fail "the broker's configuration does not check out"; }

s1() {
  say "1. -n finds what only a start used to: the token, the ports, data_dir"
  chmod 644 "$U/http.token"
  both token-mode "http.token has mode 0644.*chmod 600" "$NODE" "$UC"
  reset_state
  echo short >"$U/http.token"
  both token-short "shorter than 32 characters" "$NODE" "$UC"
  reset_state
  set_key "$UC" metrics port "$((PORT + 13))"
  both same-port "\[metrics\] port: $((PORT + 13)) is also \[http\] port" "$NODE" "$UC"
  reset_state
  touch "$WORK/not-a-dir"
  set_key "$UC" node data_dir "$WORK/not-a-dir"
  set_key "$UC" node api_socket data/api.sock
  both data-file "data_dir: .*not-a-dir is a regular file, not a directory" "$NODE" "$UC"
}

s2() {
  say "2. a named pipe where a file should be is refused at once"
  rm "$U/node.key"
  mkfifo -m 600 "$U/node.key"
  both fifo-key "node.key is a named pipe \(FIFO\), not a regular file" "$NODE" "$UC"
  reset_state
  rm "$U/http.token"
  mkfifo -m 600 "$U/http.token"
  both fifo-token "http.token is a named pipe \(FIFO\)" "$NODE" "$UC"
  reset_state
  rm "$WORK/fed/ca/directory.tdir"
  mkfifo -m 644 "$WORK/fed/ca/directory.tdir"
  both fifo-directory "directory.tdir is a named pipe \(FIFO\)" "$BROKER" "$BC"
  rm -f "$WORK/fifo.conf"
  mkfifo -m 644 "$WORK/fifo.conf"
  refused fifo-conf "fifo.conf is a named pipe \(FIFO\)" "$NODE" -c "$WORK/fifo.conf" -n
}

s3() {
  say "3. a configuration of random bytes: escaped, bounded errors"
  mkdir -p -m 700 "$WORK/junk"
  printf '[n\x9c\x1b[2Jde]\n[node]\nid = a\x9cb\x07\x1b]0;pwned\x07\nlog_level = %s\n\xff\xfe = 1\n' \
    "$(head -c 150 /dev/zero | tr '\0' '\233')" >"$WORK/junk/node.conf"
  refused junk-fixed '\\x9c' "$NODE" -c "$WORK/junk/node.conf" -n
  grep -q '\\x1b\[2J' "$WORK/junk-fixed.out" || { cat "$WORK/junk-fixed.out"; fail "the escape sequence is not shown escaped"; }
  grep -q "log_level: '\(\\\\x9b\)\{1,20\}\.\.\.'" "$WORK/junk-fixed.out" ||
    { cat "$WORK/junk-fixed.out"; fail "a long value is not quoted cut short"; }
  for i in 1 2 3 4 5; do
    head -c 4096 /dev/urandom >"$WORK/junk/node.conf"
    refused "junk-random-$i" "node.conf" "$NODE" -c "$WORK/junk/node.conf" -n
    refused "junk-random-broker-$i" "node.conf" "$BROKER" -c "$WORK/junk/node.conf" -n
  done
}

s4() {
  say "4. what others may write is refused (StrictModes)"
  chmod 666 "$UC"
  both conf-writable "node.conf is a file writable by its group and others \(mode 0666\).*chmod go-w $UC" "$NODE" "$UC"
  chmod 664 "$UC"
  both conf-group-writable "node.conf is a file writable by its group \(mode 0664\)" "$NODE" "$UC"
  reset_state
  chmod 777 "$U/data"
  both data-writable "data_dir: $U/data is a directory writable by its group and others \(mode 0777\).*chmod go-w $U/data" "$NODE" "$UC"
  reset_state
  chmod 757 "$U"
  both keydir-writable "$U is a directory writable by others \(mode 0757\).*chmod go-w $U\)" "$NODE" "$UC"
  reset_state
  chmod 777 "$WORK/fed/ca"
  both cadir-writable "$WORK/fed/ca is a directory writable by its group and others" "$BROKER" "$BC"
  reset_state
  chmod 666 "$BC"
  both broker-conf-writable "broker.conf is a file writable by its group and others" "$BROKER" "$BC"
  reset_state
  "$NODE" -c "$UC" -n >/dev/null || fail "unhcr's configuration no longer checks out once restored"
}

section 1 s1
section 2 s2
section 3 s3
section 4 s4

reset_state
say "5, 6. refused handshakes: backoff, one log line, the peer's address"
# The broker is re-keyed, and sweden keeps the directory from before: it
# holds the broker's old key (refused before authentication) until SIGHUP
# gives it the new directory. A second federation's portugal is re-keyed, and
# its broker runs on the directory from before: it lacks portugal's new key
# (refused by the ZAP handler) until SIGHUP gives it the new one.
SW="$WORK/fed/sweden"
cp -p "$WORK/fed/ca/directory.tdir" "$WORK/fed/ca/crl.pem" "$SW/"
set_key "$SW/node.conf" federation directory directory.tdir
set_key "$SW/node.conf" federation crl crl.pem
HUB="$WORK/fed/broker"
"$TERN" ca revoke --ca "$WORK/fed/ca" --node hub --reason superseded >/dev/null
rm -f "$HUB"/node.key "$HUB"/seal.key "$HUB"/curve.key "$HUB"/node.req.json "$HUB"/node.crt
"$TERN" keygen --node hub --out "$HUB" >/dev/null
"$TERN" ca issue --ca "$WORK/fed/ca" --request "$HUB/node.req.json" --agency "Tern development broker" \
  --roles broker --endpoint "tcp://127.0.0.1:$PORT" --out "$HUB/node.crt" >/dev/null
"$TERN" ca directory --ca "$WORK/fed/ca" >/dev/null 2>&1

P2=$((PORT + 40))
"$TERN" dev-federation "$WORK/fed2" --base-port "$P2" >/dev/null
F2="$WORK/fed2"
cp -p "$F2/ca/directory.tdir" "$F2/broker/directory.tdir"
set_key "$F2/broker/broker.conf" federation directory directory.tdir
PT="$F2/portugal"
"$TERN" ca revoke --ca "$F2/ca" --node portugal --reason superseded >/dev/null
rm -f "$PT"/node.key "$PT"/seal.key "$PT"/curve.key "$PT"/node.req.json "$PT"/node.crt
"$TERN" keygen --node portugal --out "$PT" >/dev/null
"$TERN" ca issue --ca "$F2/ca" --request "$PT/node.req.json" --agency "Portugal AIMA" --roles state \
  --out "$PT/node.crt" >/dev/null
"$TERN" ca directory --ca "$F2/ca" >/dev/null 2>&1
set_key "$PT/node.conf" delivery reconnect_max 4

start broker
"$BROKER" -c "$F2/broker/broker.conf" >>"$WORK/broker2.log" 2>&1 &
PIDS[broker2]=$!
metrics_up() { curl -sf "http://127.0.0.1:$1/metrics" >/dev/null; }
wait_for 10 "the first broker's /metrics" metrics_up $((PORT + 1))
wait_for 10 "the second broker's /metrics" metrics_up $((P2 + 1))
start sweden
"$NODE" -c "$PT/node.conf" >>"$WORK/portugal2.log" 2>&1 &
PIDS[portugal2]=$!
sleep 10
failed() { # METRICS-PORT: the broker's failed handshakes, as /metrics shows them
  sleep 1.2 # one snapshot a second
  curl -sf "http://127.0.0.1:$1/metrics" | grep '^tern_broker_handshakes_total{result="failed"} ' | cut -d' ' -f2
}
f1=$(failed $((PORT + 1)))
f2=$(failed $((P2 + 1)))
w1=$(grep -c "refused this node's CURVE handshake" "$WORK/sweden.log" || true)
w2=$(grep -c "refused this node's CURVE handshake" "$WORK/portugal2.log" || true)
say "over 10 s: wrong broker key: $f1 failed handshakes, $w1 warning(s); not admitted: $f2 failed handshakes, $w2 warning(s)"
# Findings 5 and 6 share these processes: each check records its failure
# and the next still runs.
soft() { echo "FAIL: $2" >&2; FAILED+=("$1"); }
((f1 >= 1 && f1 <= 12)) || soft 5 "a node with the wrong broker key made $f1 failed handshakes in 10 s (backoff: at most a dozen)"
((w1 >= 1 && w1 <= 2)) || soft 5 "a node with the wrong broker key logged its refusal $w1 times in 10 s (once, then once a minute)"
((f2 >= 4 && f2 <= 12)) || soft 5 "a node refused by the ZAP handler made $f2 handshakes in 10 s (it must keep trying, backing off)"
((w2 >= 1 && w2 <= 2)) || soft 5 "a node refused by the ZAP handler logged its refusal $w2 times in 10 s"
grep -q "next attempt in" "$WORK/sweden.log" || soft 5 "the refusal does not say when the node tries again"

grep "failed the CurveZMQ handshake" "$WORK/broker.log" >"$WORK/hs-lines.txt" || soft 6 "the first broker logged no failed handshake"
if grep -q "tcp://127.0.0.1:$PORT" "$WORK/hs-lines.txt"; then
  head -3 "$WORK/hs-lines.txt" >&2
  soft 6 "the broker's failed-handshake line names its own listening address as the peer"
fi
grep -qE "the last from (127\.0\.0\.1:[0-9]+|a peer whose address is unknown)" "$WORK/hs-lines.txt" ||
  soft 6 "the broker's failed-handshake line neither names the peer nor says it is unknown"
grep -qE "refused a connection: CURVE key .* is not in the directory \(peer 127\.0\.0\.1\)" "$WORK/broker2.log" ||
  { tail -2 "$WORK/broker2.log" >&2; soft 6 "the ZAP refusal does not name the peer's address"; }

say "given the broker's new key, or admitted by the broker, each refused node gets in by itself"
cp -p "$WORK/fed/ca/directory.tdir" "$WORK/fed/ca/crl.pem" "$SW/"
kill -HUP "${PIDS[sweden]}"
cp -p "$F2/ca/directory.tdir" "$F2/broker/directory.tdir"
kill -HUP "${PIDS[broker2]}"
connected2() { "$TERN" info -c "$PT/node.conf" --json | grep -q '"connected": true'; }
# sweden waits up to 30 s between attempts by now (about 6 s at this point),
# portugal up to 4 s.
until=$((SECONDS + 25))
until connected sweden 2>/dev/null && connected2 2>/dev/null; do
  ((SECONDS < until)) || { soft 5 "a refused node did not get in within 25 s of the fix (sweden, then portugal: $(connected sweden && echo in || echo out), $(connected2 && echo in || echo out))"; break; }
  sleep 0.2
done
grep -q "connected to the broker; [0-9]* refused handshake(s) since the last report" "$WORK/portugal2.log" ||
  soft 5 "portugal does not say it got in after refusals"

((${#FAILED[@]} == 0)) || fail "findings not holding: $(printf '%s\n' "${FAILED[@]}" | sort -u | tr '\n' ' ')"
echo "it test_config_checks: ok"
