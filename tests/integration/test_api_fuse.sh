#!/usr/bin/env bash
# A file passed by descriptor from a file system whose server has hung
# (docs/api.md, "Files by descriptor"): tests/tools/stallfs.py mounts a FUSE
# file system that never answers GETATTR, STATFS or FLUSH from any thread of
# the daemons. A send at unhcr that passes its file is refused at once
# ("fuse ... not a local disk"), and unhcr's loop never waits for that
# server: `tern info` answers while the file's close hangs on a closer
# thread, a plain send is delivered, a descriptor a later request does not
# take is still closed (another closer thread takes over from the stuck
# one), and `tern send --attach` of a local file still passes it by
# descriptor. The same FUSE file passed to the broker's control socket,
# which takes no descriptors, is refused at once and `tern queues` answers.
# Needs root and /dev/fuse; skipped otherwise.
source "$(dirname "$0")/lib.sh"
STALLFS="$(cd "$(dirname "$0")/../tools" && pwd)/stallfs.py"
if [[ $(id -u) != 0 || ! -c /dev/fuse ]]; then
  echo "SKIP: needs root and /dev/fuse to mount a FUSE file system"
  exit 77 # reported by ctest as skipped (cmake/TernTest.cmake), not as passed
fi

fed_make
for d in broker unhcr sweden; do start "$d"; done
wait_for 20 "unhcr to connect" connected unhcr
wait_for 20 "sweden to connect" connected sweden

MNT="$WORK/fuse"
mkdir -p "$MNT"
python3 "$STALLFS" "$MNT" "${PIDS[unhcr]},${PIDS[broker]}" >"$WORK/stallfs.log" 2>&1 &
FS=$!
cleanup_fs() {
  kill "$FS" 2>/dev/null || true
  umount -l "$MNT" 2>/dev/null || true
}
trap 'rc=$?; cleanup_fs; (exit $rc); cleanup' EXIT
if ! wait_for 10 "the FUSE mount" grep -q mounted "$WORK/stallfs.log" 2>/dev/null; then
  cat "$WORK/stallfs.log" >&2
  echo "SKIP: this machine would not mount a FUSE file system"
  exit 77
fi

APIREQ="$(cd "$(dirname "$0")/../tools" && pwd)/apireq.py"
pass() { # SOCKET JSON: one request passing $MNT/f by descriptor; the answer, within 5 s
  timeout 5 python3 "$APIREQ" "$1" "$2" --fd "$MNT/f"
}
within_3s() { timeout 3 "$@" >/dev/null; } # COMMAND...: it succeeds within 3 s (a hung loop never does)

body=$(referral_json FUSE-1 | python3 -c "
import json,sys; b=json.load(sys.stdin)
b['attachments']=[{'name':'f','mediaType':'application/octet-stream','sha256':'84d89877f0d4041efb6bf91a16f0248f2fd573e6af05c19f96bedb9f882f7882','size':'10'}]
print(json.dumps(b))")
out=$(pass "$WORK/fed/unhcr/data/api.sock" "{\"v\":1,\"op\":\"send\",\"to\":[\"sweden\"],\"type\":\"case-referral\",\"descriptors\":1,\"body\":$body}") ||
  fail "unhcr did not answer a send passing a file on a hung FUSE mount"
grep -q 'fuse' <<<"$out" || fail "a file on FUSE was not refused as such: $out"
say "unhcr refused the FUSE file at once: $(grep -o '"message":"[^"]*"' <<<"$out")"
for i in 1 2 3; do
  within_3s "$TERN" info -c "$(conf unhcr)" --json || fail "tern info at unhcr did not answer within 3 s (try $i)"
done
id=$(referral_json FUSE-2 | "$TERN" send -c "$(conf unhcr)" --to sweden case-referral -) ||
  fail "a plain send failed while a close hung on FUSE"
wait_for 30 "$id delivered" state_is unhcr "$id" delivered
say "unhcr's loop went on: tern info within 3 s, $id delivered"

# A descriptor no request takes (a status passing a local file) is closed
# although the first closer thread is stuck in the FUSE file's close.
node_fds() { ls "/proc/${PIDS[unhcr]}/fd" | wc -l; }
head -c 1000 /dev/urandom >"$WORK/local.bin"
sleep 1.2 # the stuck close is then a second old
before=$(node_fds)
timeout 5 python3 "$APIREQ" "$WORK/fed/unhcr/data/api.sock" \
  '{"op":"status","message_id":"01a20000-0000-7000-8000-000000000000"}' --fd "$WORK/local.bin" >/dev/null ||
  fail "status with a passed descriptor got no answer"
for _ in $(seq 30); do (($(node_fds) <= before)) && break; sleep 0.1; done
(($(node_fds) <= before)) || fail "a descriptor no request took is still open at unhcr ($(node_fds) > $before)"
att=$(referral_json FUSE-3 | "$TERN" send -c "$(conf unhcr)" --to sweden --attach "$WORK/local.bin:l.bin" case-referral -) ||
  fail "tern send --attach of a local file failed after the FUSE file"
ls "$WORK/fed/unhcr/data/uploads" 2>/dev/null | grep -q . && fail "the local file was uploaded, not passed"
wait_for 30 "$att delivered" state_is unhcr "$att" delivered
say "a second closer closed a later descriptor; $att (by descriptor) delivered"

out=$(pass "$WORK/fed/broker/data/control.sock" '{"v":1,"op":"queues"}') ||
  fail "the broker did not answer a control request passing a FUSE file"
grep -q '"ok":false' <<<"$out" || fail "the broker took a descriptor on its control socket: $out"
within_3s "$TERN" queues -c "$WORK/fed/broker/broker.conf" --json || fail "tern queues did not answer within 3 s"
say "the broker refused the descriptor at once and went on: $out"
echo "it test_api_fuse: ok (a hung FUSE file system held neither unhcr's loop nor the broker's)"
