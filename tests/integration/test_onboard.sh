#!/usr/bin/env bash
# Onboarding a new State while the federation runs: docs/pki.md's section "Adding a member to
# a running federation" is followed as written. Its ```sh blocks are taken from the doc and run
# in their order (nothing here retypes them), with only what a test must change mapped (the
# MAP list below): hosts' paths to the dev federation's directories, the broker's address and
# norway's ports to this test's, `systemctl reload`/`start` to SIGHUP/start of the test's
# daemons, `journalctl -g` to a wait on the daemon's log, and the service user `tern` to the
# user running the test. A doc edit that breaks a step, or adds a command this list cannot
# map, fails here.
#
# The dev federation is laid out as real hosts are: each party holds its own copy of ca.crt,
# crl.pem and directory.tdir (so what the CA signs reaches a daemon only when a step installs
# it). broker, unhcr and sweden run; iom and portugal are stopped members (step 4's install and
# check, no reload). Then: the new directory is refused nowhere and admitted nowhere before the
# reloads (unhcr refuses --to norway as unknown-recipient, the broker refuses norway's CURVE
# key); after them norway connects, unhcr's first referral reaches norway's inbox and unhcr's
# tern status shows it delivered (norway's signed receipt); broker, unhcr and sweden were never
# restarted (same PIDs, one start line each).
source "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
FED="$WORK/fed"
CA="$FED/ca"
export PATH="$BIN:$PATH"
RUNNING=(unhcr sweden)
MEMBERS=(unhcr iom sweden portugal)

say "a dev federation with each party's own copy of the federation files"
fed_make
mkdir -m 0700 "$WORK/transfer"
for p in broker "${MEMBERS[@]}"; do
  c="$FED/$p/node.conf"
  [[ $p == broker ]] && c="$FED/broker/broker.conf"
  cp "$CA/ca.crt" "$CA/crl.pem" "$CA/directory.tdir" "$FED/$p/"
  sed -i -e 's|^ca = \.\./ca/ca\.crt$|ca = ca.crt|' -e 's|^crl = \.\./ca/crl\.pem$|crl = crl.pem|' \
    -e 's|^directory = \.\./ca/directory\.tdir$|directory = directory.tdir|' "$c"
  [[ $(grep -c '^\(ca = ca.crt\|crl = crl.pem\|directory = directory.tdir\)$' "$c") == 3 ]] ||
    fail "$c: its [federation] lines are not the dev federation's any more"
done
for p in broker "${RUNNING[@]}"; do start "$p"; done
for p in "${RUNNING[@]}"; do wait_for 20 "$p to connect" connected "$p"; done
declare -A PID0=()
for p in broker "${RUNNING[@]}"; do PID0[$p]=${PIDS[$p]}; done

say "the section's command blocks, taken from docs/pki.md"
python3 - "$root/docs/pki.md" "$WORK" "$PORT" "${MEMBERS[*]}" "${RUNNING[*]}" >"$WORK/steps.sh" <<'PY' || true
import re, sys
doc, work, port, members, running = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split(), sys.argv[5].split()
text = open(doc).read()
head = "\n## Adding a member to a running federation\n"
if head not in text:
    sys.exit("docs/pki.md has no section '%s'" % head.strip())
sec = text.split(head, 1)[1].split("\n## ", 1)[0]
blocks = re.findall(r"^```sh\n(.*?)^```$", sec, re.M | re.S)
# What each block starts with, in the doc's order: the test knows what each step is for.
first = ["tern keygen --node norway ", "tern ca issue ", "install -m 0644 /media/transfer/directory.tdir ",
         "install -m 0644 /media/transfer/directory.tdir ", "systemctl reload tern-node@sweden",
         "install -m 0644 /media/transfer/norway/node.crt ", "systemctl start tern-node@norway",
         "tern peers "]
if len(blocks) != len(first):
    sys.exit("the section has %d sh blocks, the test knows %d" % (len(blocks), len(first)))
for i, (b, f) in enumerate(zip(blocks, first), 1):
    if not b.startswith(f):
        sys.exit("block %d starts '%s', not '%s'" % (i, b.split("\n")[0], f))
# MAP: what a test must change, and nothing else.
MAP = [
    (r"/media/ca\b", work + "/fed/ca"),
    (r"/media/transfer\b", work + "/transfer"),
    (r"/var/lib/tern/norway\b", work + "/fed/norway/data"),
    (r"/etc/tern/", work + "/fed/"),
    (r"tcp://broker\.example\.org:7700\b", "tcp://127.0.0.1:%d" % port),
    (r"^port = 9464$", "port = %d" % (port + 20)),      # norway's metrics
    (r"^port = 8080$", "port = %d" % (port + 21)),      # norway's HTTP API
    (r"runuser -u tern -- ", ""),                       # the test's user owns the files
    (r"-o tern -g tern ", '-o "$(id -un)" -g "$(id -gn)" '),
    (r"chown -R tern: ", 'chown -R "$(id -un):" '),
    (r"^systemctl reload tern-broker$", 'kill -HUP "${PIDS[broker]}"'),
    (r"^systemctl reload tern-node@([a-z0-9-]+)$", r'kill -HUP "${PIDS[\1]}"'),
    (r"^systemctl start tern-node@([a-z0-9-]+)$", r"start \1"),
    (r"^journalctl -u tern-broker -g ('[^']*')$", r"logged broker \1"),
    (r"^journalctl -u tern-node@([a-z0-9-]+) -g ('[^']*')$", r"logged \1 \2"),
]
used = [0] * len(MAP)
out = []
def emit(name, body):
    for k, (pat, rep) in enumerate(MAP):
        body, n = re.subn(pat, rep, body, flags=re.M)
        used[k] += n
    for w in ("/etc/", "/media/", "/var/", "systemctl", "journalctl", "runuser", "example.org", "sudo"):
        if w in body:
            sys.exit("%s: '%s' is left that the test cannot map" % (name, w))
    out.append("%s() {\n%s}" % (name, body))
for i, b in enumerate(blocks, 1):
    if i in (4, 5):   # on every member's host, written for sweden
        for m in (members if i == 4 else running):
            emit("doc_step_%d_%s" % (i, m), b.replace("sweden", m))
    else:
        emit("doc_step_%d" % i, b)
for k, n in enumerate(used):
    if n == 0:
        sys.exit("the mapping '%s' matched nothing: the doc changed, update the test" % MAP[k][0])
print("\n".join(out))
PY
[[ -s $WORK/steps.sh ]] || fail "docs/pki.md's section cannot be run as the test knows it (above)"
# logged NAME PATTERN: what an operator reads with journalctl -g, once the daemon logged it.
logged() {
  wait_for 20 "$1 to log '$2'" grep -E "$2" "$WORK/$1.log"
  grep -E "$2" "$WORK/$1.log"
}
source "$WORK/steps.sh"
# A failing command inside a step ends the test (set -e); say which step it was.
# (to fd 3: inside a step, stderr goes to the step's output file)
exec 3>&2
STEP=setup
set -E
trap 'echo "FAIL: docs/pki.md block $STEP failed; its output: $WORK/step-$STEP.out" >&3' ERR
step() { # NAME: run doc_step_NAME, its output in step-NAME.out
  STEP=$1
  say "docs/pki.md, block $1"
  "doc_step_$1" >"$WORK/step-$1.out" 2>&1
}
has() { grep -q -- "$2" "$WORK/step-$1.out" || fail "block $1's output has no '$2' (step-$1.out)"; }

step 1
has 1 "Generated keys for node 'norway'"
for k in node.key seal.key curve.key; do
  [[ $(stat -c %a "$FED/norway/$k") == 600 ]] || fail "norway's $k is not 0600"
done
if grep -q "PRIVATE" "$WORK/step-1.out"; then fail "tern keygen printed a private key"; fi
[[ -s $WORK/transfer/norway/node.req.json ]] || fail "the request is not on the transfer medium"

step 2
key=$(sed -n 's/^ *Ed25519 signing key *\([0-9a-f]\{64\}\)$/\1/p' "$WORK/step-1.out")
[[ -n $key ]] || fail "tern keygen printed no Ed25519 key"
has 2 "Certified Ed25519 key: $key"
has 2 "Wrote directory version 2 "
grep -Eq "norway +.*Norwegian Directorate of Immigration" "$WORK/step-2.out" || fail "tern ca list does not show norway"

say "before the reloads: unhcr refuses --to norway, the broker refuses norway's key"
referral_json ONBOARD-1 >"$WORK/referral.json"
if "$TERN" send -c "$(conf unhcr)" --to norway case-referral "$WORK/referral.json" >"$WORK/early.out" 2>&1; then
  fail "unhcr took a message for norway before its reload"
fi
grep -q "unknown-recipient: recipient norway is not a member" "$WORK/early.out" || fail "unhcr's refusal is not unknown-recipient: $(cat "$WORK/early.out")"
if zmq-probe "tcp://127.0.0.1:$PORT" "$FED/broker/curve.key" "$FED/norway/curve.key" >/dev/null 2>&1; then
  fail "the broker answered norway's key before its reload"
fi
wait_for 10 "the broker to log norway's refused key" grep -q "refused a connection: CURVE key .* is not in the directory" "$WORK/broker.log"

step 3
has 3 "configuration OK"
has 3 "reloaded: directory version 2 (was 1)"
grep -Eq "^norway +no " "$WORK/step-3.out" || fail "tern peers does not list norway, not connected"

for m in "${MEMBERS[@]}"; do
  step "4_$m"
  has "4_$m" "configuration OK"
done
for m in "${RUNNING[@]}"; do
  step "5_$m"
  has "5_$m" "reloaded: directory version 2 (was 1)"
done

step 6
fp=$(openssl x509 -in "$CA/ca.crt" -noout -fingerprint -sha256)
has 6 "$fp"
has 6 "node.crt: OK"
has 6 "configuration OK"
[[ $(stat -c %a "$FED/norway/http.token") == 600 ]] || fail "norway's http.token is not 0600"

step 7
has 7 "connected to broker hub"
has 7 "hub (connected)"
step 8
grep -Eq "^norway +yes .*tern-node" "$WORK/step-8.out" || fail "tern peers does not show norway connected"
STEP=after
trap - ERR

say "the first referral: unhcr to norway, into norway's inbox, delivered with norway's receipt"
id=$("$TERN" send -c "$(conf unhcr)" --to norway case-referral "$WORK/referral.json")
[[ $id =~ ^[0-9a-f-]{36}$ ]] || fail "tern send printed no message id"
"$TERN" inbox -c "$(conf norway)" next --wait 30 >"$WORK/inbox.json" || fail "norway's inbox stayed empty"
grep -q "\"messageId\": \"$id\"" "$WORK/inbox.json" || fail "norway's inbox gave another message"
grep -q '"sender": "unhcr"' "$WORK/inbox.json" || fail "norway's message is not from unhcr"
wait_for 30 "unhcr to see norway's receipt" state_is unhcr "$id" delivered
"$TERN" status -c "$(conf unhcr)" "$id" >"$WORK/status.txt"
grep -q "^state *delivered" "$WORK/status.txt" || fail "tern status does not show delivered"
grep -Eq "^ +norway +delivered" "$WORK/status.txt" || fail "tern status does not show norway's receipt"

say "nobody was restarted"
for p in broker "${RUNNING[@]}"; do
  [[ ${PIDS[$p]} == "${PID0[$p]}" ]] || fail "$p was restarted"
  kill -0 "${PIDS[$p]}" 2>/dev/null || fail "$p is not running"
done
[[ $(grep -c "broker hub listening on" "$WORK/broker.log") == 1 ]] || fail "the broker started more than once"
for p in "${RUNNING[@]}"; do
  [[ $(grep -c "node $p started" "$WORK/$p.log") == 1 ]] || fail "$p started more than once"
done
echo "it test_onboard: ok"
