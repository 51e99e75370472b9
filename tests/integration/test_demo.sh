#!/usr/bin/env bash
# tern demo walks the whole lifecycle of a case (referral, information
# request and response, acceptance, health assessment, orientation, travel
# booked, departed, arrived, handover): every message is delivered with its
# receipts, and Sweden's view of the case at the end is handed-over, with
# the ten messages in their order. Then:
#  - --keep DIR builds the federation in DIR/fed, the logs in DIR/*.log,
#    keeps them and says so; a second run into the same DIR is refused (2);
#  - a demo that fails (sweden's node killed with kill -9 once it has the
#    referral) exits 3, stops every daemon and keeps the folder it names,
#    with the logs: in a temporary directory and in --keep DIR.
set -euo pipefail
: "${TERN:?}"
tmp=$(mktemp -d /tmp/tern-it-demo.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
say() { printf '%s %s\n' "$(date +%T)" "$*"; }
logs_in() {
  for n in broker unhcr sweden iom portugal; do
    [[ -s "$1/$n.log" ]] || fail "no $n.log in $1"
  done
}
no_daemons_in() {
  if pgrep -f "$1/fed/" >/dev/null; then fail "daemons of $1 still run after the demo"; fi
}

say "the whole walk"
out=$("$TERN" demo)
echo "$out"
grep -q "10 messages, every one delivered" <<<"$out" || fail "demo did not deliver"
[[ $(grep -c "delivered (signed receipts verified)" <<<"$out") -eq 10 ]] || fail "not 10 deliveries"
grep -qE "^thread     referral [0-9a-f-]{36} to sweden: handed-over$" <<<"$out" ||
  fail "the case view does not end handed-over"
want="case-referral information-request information-response acceptance-decision health-assessment pre-departure-orientation travel-confirmation travel-confirmation travel-confirmation arrival-handover"
got=$(sed -n '/^timeline$/,/^held/p' <<<"$out" | awk '$4 ~ /^(sent|received)$/ {print $5}' | tr '\n' ' ' | sed 's/ $//')
[[ "$got" == "$want" ]] || fail "the case view's timeline is: $got"
tmpdir=$(sed -n 's|^== A development federation in \(.*\)/fed .*|\1|p' <<<"$out")
[[ -n $tmpdir && ! -e $tmpdir ]] || fail "the temporary directory '$tmpdir' is still there after a success"

say "--keep DIR (relative, missing) keeps the federation and the logs there"
keep="$tmp/kept"
out=$(cd "$tmp" && "$TERN" demo --keep kept)
grep -q "10 messages, every one delivered" <<<"$out" || fail "demo --keep did not deliver"
grep -qxF "== Kept: the federation in $keep/fed, the logs in $keep/*.log" <<<"$out" ||
  fail "demo --keep did not say where it kept them"
[[ -f "$keep/fed/ca/ca.crt" || -d "$keep/fed/ca" ]] || fail "no federation in $keep/fed"
for n in unhcr sweden iom portugal; do [[ -f "$keep/fed/$n/node.conf" ]] || fail "no $n in $keep/fed"; done
logs_in "$keep"
no_daemons_in "$keep"

say "--keep DIR again: refused, DIR left as it was"
listing() { find "$1" -printf '%p %s %T@\n' | sort | md5sum; }
before=$(listing "$keep")
rc=0
"$TERN" demo --keep "$keep" >"$tmp/again.out" 2>&1 || rc=$?
cat "$tmp/again.out"
[[ $rc -eq 2 ]] || fail "demo --keep into a used directory exited $rc, not 2"
grep -q "not an empty directory" "$tmp/again.out" || fail "no reason given for refusing $keep"
[[ $(listing "$keep") == "$before" ]] || fail "the refused run changed $keep"

# sweden's tern-node, killed once it has received the referral: every later
# step needs sweden, so the walk fails half-way.
real_node="$(dirname "$TERN")/tern-node"
cat >"$tmp/node-wrap.sh" <<WRAP
#!/usr/bin/env bash
case "\$*" in
  */sweden/node.conf*) ;;
  *) exec "$real_node" "\$@" ;;
esac
"$real_node" "\$@" &
pid=\$!
trap 'kill -TERM \$pid 2>/dev/null; wait \$pid; exit 143' TERM
log=\$(readlink /proc/\$\$/fd/1)
for _ in \$(seq 3000); do
  if grep -q "received .* case-referral" "\$log"; then
    echo "node-wrap: kill -9 sweden's node"
    kill -9 \$pid
    wait \$pid || true
    exit 137
  fi
  sleep 0.01
done
wait \$pid
WRAP
chmod +x "$tmp/node-wrap.sh"

failing() { # [--keep DIR]: runs the failing demo, prints the folder it names
  local rc=0
  TERN_NODE="$tmp/node-wrap.sh" "$TERN" demo "$@" >"$tmp/fail.out" 2>"$tmp/fail.err" || rc=$?
  cat "$tmp/fail.out" "$tmp/fail.err" >&2
  [[ $rc -eq 3 ]] || fail "the failing demo exited $rc, not 3"
  grep -q "every one delivered" "$tmp/fail.out" && fail "the failing demo says it delivered"
  grep -q "^tern demo: sweden's .*; see .*/sweden.log$" "$tmp/fail.err" || fail "the failing demo did not point at sweden's log"
  sed -n 's|^tern demo: failed; the logs are kept in \(.*\) (broker.log and one per node), the federation in .*|\1|p' "$tmp/fail.err"
}

say "a failing demo keeps the temporary folder it names, with the logs"
dir=$(failing)
[[ -n $dir ]] || fail "the failing demo named no folder"
[[ $(tail -n 1 "$tmp/fail.err") == "tern demo: failed; the logs are kept in $dir"* ]] ||
  fail "the folder is not named last"
logs_in "$dir"
grep -q "node-wrap: kill -9 sweden's node" "$dir/sweden.log" || fail "sweden.log is not the failed run's"
no_daemons_in "$dir"
rm -rf "$dir"

say "a failing demo with --keep DIR keeps DIR, and names it"
dir=$(failing --keep "$tmp/kept-fail")
[[ $dir == "$tmp/kept-fail" ]] || fail "the failing demo named '$dir', not $tmp/kept-fail"
logs_in "$dir"
[[ -d "$dir/fed/sweden" ]] || fail "no federation in $dir/fed"
no_daemons_in "$dir"
echo "it test_demo: ok"
