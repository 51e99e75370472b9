#!/usr/bin/env bash
# The README's "A federation in ten minutes" works as written: its indented
# command lines are run in order, in a fresh HOME, with only what a test must
# change (the federation's ports, and the message id the send printed), and
# each step's outcome is checked. A README edit that breaks the walk fails here.
source "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)

mkdir -p "$WORK/home"
python3 - "$root/README.md" "$PORT" >"$WORK/walk.sh" <<'PY'
import sys
text = open(sys.argv[1]).read()
port = int(sys.argv[2])
head = "## A federation in ten minutes"
if head not in text:
    sys.exit("README.md has no section '%s'" % head)
sec = text.split(head, 1)[1].split("\n## ", 1)[0]
cmds = [l[4:] for l in sec.split("\n") if l.startswith("    ")]
out = ["set -euo pipefail",
       # A failed step must not leave the walk's daemons running.
       "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
need = {"dev-federation": 0, "7713": 0, "send": 0}
for c in cmds:
    if c.startswith("tern dev-federation ~/fed"):
        c = c.replace("~/fed", "~/fed --base-port %d" % port, 1)
        need["dev-federation"] += 1
    if "127.0.0.1:7713" in c:
        # through the recorder (below), which forwards to unhcr's API
        c = c.replace("127.0.0.1:7713", "127.0.0.1:%d" % (port + 50))
        need["7713"] += 1
    if c.startswith("tern info "):
        # A reader types slower than a script: wait for the handshakes.
        out.append("for i in $(seq 100); do tern info -c ~/fed/unhcr/node.conf | grep -q '(connected)' && break; sleep 0.1; done")
    if c.startswith("tern send "):
        c = "MSGID=$(" + c.split("#")[0].strip() + ")"
        need["send"] += 1
        out.append(c)
        out.append('echo "walk-sent $MSGID"')
        out.append("for i in $(seq 100); do tern status -c ~/fed/unhcr/node.conf \"$MSGID\" | grep -q '^state *delivered' && break; sleep 0.1; done")
        continue
    out.append(c.replace(" MSGID", ' "$MSGID"'))
for k, v in need.items():
    if v != 1:
        sys.exit("the walk's '%s' step was found %d times, not once" % (k, v))
print("\n".join(out))
PY

# The walk's HTTP call goes through a recording proxy to unhcr's API, and is
# checked against docs/openapi.yaml with every other exchange of the suite.
python3 "$ROOT/tests/tools/http_recorder.py" --listen $((PORT + 50)) --to $((PORT + 13)) \
  --log "$HTTP_LOG" >>"$WORK/rec.log" 2>&1 &
PIDS[rec]=$!
cd "$WORK/home"
HOME="$WORK/home" PATH="$BIN:$PATH" bash "$WORK/walk.sh" >"$WORK/walk.out" 2>"$WORK/walk.log" ||
  { tail -n 30 "$WORK/walk.out" >&2; fail "the README's walk stopped (its stderr is in walk.log)"; }

out="$WORK/walk.out"
id=$(sed -n 's/^walk-sent //p' "$out")
[[ $id =~ ^[0-9a-f-]{36}$ ]] || fail "the walk's send printed no message id"
grep -Eq "^broker +hub \(connected\)" "$out" || fail "tern info did not say connected"
grep -q "^state *delivered" "$out" || fail "tern status did not show the referral delivered"
grep -q "\"messageId\": \"$id\"" "$out" || fail "tern inbox next did not give the referral"
grep -q "AMM-26C00417" "$out" || fail "tern case show did not show the case"
grep -q '"nodeId": "unhcr"' "$out" || fail "the HTTP call did not answer unhcr's node"
grep -Eq "^sweden +[0-9]+ " "$out" || fail "tern queues did not list sweden"
for f in unhcr sweden iom hub; do
  [[ -s $WORK/home/$f.tern-audit ]] || fail "no $f.tern-audit exported"
  grep -q "$f.tern-audit: ok" "$WORK/walk.log" "$out" || fail "$f.tern-audit did not verify"
done
grep -q "RECEIPT_RECEIVED .*$id" "$out" || fail "replay did not show the receipt for $id"
grep -q "^0 findings" "$out" || fail "replay reported findings"
http_check
say "the README's walk ran as written"
