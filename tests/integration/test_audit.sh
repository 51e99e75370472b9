#!/usr/bin/env bash
# After a demo run (the whole lifecycle of a case), the five agencies'
# archives (unhcr, sweden, iom, portugal, the broker) verify clean and replay
# to the case's timeline with no finding; any single byte changed in an archive is detected; a deleted,
# inserted or reordered entry is detected.
source "$(dirname "$0")/lib.sh"

"$TERN" demo --keep "$WORK/demo" >/dev/null
fed="$WORK/demo/fed"
for n in unhcr sweden iom portugal broker; do
  c="$fed/$n/node.conf"; [[ $n == broker ]] && c="$fed/broker/broker.conf"
  "$TERN" audit export -c "$c" --out "$WORK/$n.tern-audit" >/dev/null
done
# The result, clean or not, goes to stdout; stderr is for not being able to run.
"$TERN" audit verify "$WORK"/{unhcr,sweden,iom,portugal,broker}.tern-audit >"$WORK/verify.out" 2>"$WORK/verify.err" ||
  { cat "$WORK/verify.out" "$WORK/verify.err"; fail "clean archives do not verify"; }
[[ $(grep -c ": ok:" "$WORK/verify.out") -eq 5 ]] || { cat "$WORK/verify.out"; fail "not all five archives verified on stdout"; }
[[ -s "$WORK/verify.err" ]] && { cat "$WORK/verify.err"; fail "a clean verify wrote to stderr"; }

say "an archive verify cannot read: said on stderr, exit 3; the others' results on stdout"
rc=0
"$TERN" audit verify "$WORK/unhcr.tern-audit" "$WORK/missing.tern-audit" >"$WORK/missing.out" 2>"$WORK/missing.err" || rc=$?
[[ $rc -eq 3 ]] || { cat "$WORK/missing.out" "$WORK/missing.err"; fail "verify with an unreadable archive exited $rc, not 3"; }
grep -q "missing.tern-audit: cannot read" "$WORK/missing.err" || { cat "$WORK/missing.err"; fail "no error on stderr for the unreadable archive"; }
grep -q "missing.tern-audit" "$WORK/missing.out" && { cat "$WORK/missing.out"; fail "the read error went to stdout as a finding"; }
grep -q "unhcr.tern-audit: ok:" "$WORK/missing.out" || { cat "$WORK/missing.out"; fail "the readable archive's result is not on stdout"; }

say "replay shows the demo case's full timeline, with no finding"
"$TERN" audit replay "$WORK"/{unhcr,sweden,iom,portugal,broker}.tern-audit >"$WORK/replay.txt" ||
  { cat "$WORK/replay.txt"; fail "replay of the demo has findings"; }
[[ $(grep -c "^case " "$WORK/replay.txt") -eq 1 ]] || { cat "$WORK/replay.txt"; fail "not one case"; }
for t in case-referral information-request information-response acceptance-decision \
  health-assessment pre-departure-orientation travel-confirmation arrival-handover; do
  for k in SENT RELAYED RECEIVED; do
    grep -qE " $k +$t " "$WORK/replay.txt" || { cat "$WORK/replay.txt"; fail "no $k of the $t"; }
  done
done
grep -q "^0 findings" "$WORK/replay.txt" || fail "replay did not report zero findings"

say "a third party checks an inclusion proof with the log's key alone"
msg=$(grep -ao '[0-9a-f]\{8\}-[0-9a-f]\{4\}-7[0-9a-f]\{3\}-[89ab][0-9a-f]\{3\}-[0-9a-f]\{12\}' "$WORK/sweden.tern-audit" | head -1)
[[ -n "$msg" ]] || fail "no message id found in sweden's log"
"$TERN" audit prove -c "$fed/sweden/node.conf" "$msg" >"$WORK/proof.json"
"$TERN" audit check-proof "$WORK/proof.json" | grep -q ": ok:" || fail "a genuine proof does not check"
sed 's/"index": [0-9]*,/"index": 99,/' "$WORK/proof.json" >"$WORK/proof-bad.json"
if "$TERN" audit check-proof "$WORK/proof-bad.json" >/dev/null; then fail "a proof for the wrong index checks"; fi

say "a deleted, inserted or reordered entry is detected"
for op in delete insert swap; do
  for idx in 0 3; do
    "$BIN/tern-archive-edit" "$WORK/sweden.tern-audit" "$WORK/edited" "$op" "$idx"
    rc=0
    "$TERN" audit verify "$WORK/edited" >"$WORK/edited.out" 2>"$WORK/edited.err" || rc=$?
    [[ $rc -eq 1 ]] || { cat "$WORK/edited.out" "$WORK/edited.err"; fail "$op of entry $idx: exit $rc, not 1 (findings)"; }
    grep -q "do not hash to its root\|not covered by a signature\|covers" "$WORK/edited.out" ||
      { cat "$WORK/edited.out"; fail "$op of entry $idx: no finding about the entries on stdout"; }
    [[ -s "$WORK/edited.err" ]] && { cat "$WORK/edited.err"; fail "$op of entry $idx: findings on stderr"; }
  done
done

say "every single byte of portugal's archive changed in turn"
# portugal's log holds no message of the demo's case, but every kind of
# record an archive has: its header, entries (directory, cosignatures),
# checkpoints and their signatures and cosignatures. It is the smallest of
# the five (about 3.6 KB; the others grew to 7 KB with the whole lifecycle,
# which took this test past its 10 minutes under ASan).
a="$WORK/portugal.tern-audit"
size=$(stat -c %s "$a")
# Each byte is changed by adding 1 (mod 256) in its own copy, and each copy
# verified by tern, two at a time: one process per byte, not a pipeline of
# shell tools per byte (which cost most of this test's time). Leak checking
# is off in these short processes only (the verifications above run with it).
python3 - "$a" "$TERN" "$WORK" >"$WORK/missed" <<'PY'
import concurrent.futures, os, subprocess, sys, tempfile
path, tern, work = sys.argv[1:4]
data = open(path, "rb").read()
def check(i):
    fd, t = tempfile.mkstemp(dir=work, prefix="flip.")
    with os.fdopen(fd, "wb") as f:
        f.write(data[:i] + bytes([(data[i] + 1) % 256]) + data[i + 1:])
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    ok = subprocess.run([tern, "audit", "verify", t], stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL, env=env).returncode == 0
    os.unlink(t)
    return None if not ok else "byte %d changed and still verifies" % i
with concurrent.futures.ThreadPoolExecutor(2) as pool:
    for line in pool.map(check, range(len(data))):
        if line:
            print(line)
PY
missed=$(wc -l <"$WORK/missed")
((missed == 0)) || { head "$WORK/missed" >&2; fail "$missed of $size changed bytes went undetected"; }
say "all $size changed bytes detected"
echo "it test_audit: ok"
