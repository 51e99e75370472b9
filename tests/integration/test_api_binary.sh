#!/usr/bin/env bash
# Binary local-API frames (docs/api.md, "Binary frames"): a send whose body
# arrives encoded is checked, sealed and delivered as its JSON form is, and
# the same body sent both ways arrives the same; a body with a field its type
# does not have, no body, a recipient cut at a NUL, a client_ref that is not
# UTF-8, another API version and bytes that are no request are refused, and
# the node goes on; one connection carries one send after another. And the
# local API's edges an attack found: an answer quoting a request cut inside
# a UTF-8 character (the connection once hung for good), a ttl that
# overflows, an empty client_ref (once taken as a duplicate).
source "$(dirname "$0")/lib.sh"
APIBIN="$BIN/tern-apibin"
SOCK="$WORK/fed/unhcr/data/api.sock"

fed_make
start broker
start unhcr
start sweden
wait_for 20 "unhcr to connect" connected unhcr
wait_for 20 "sweden to connect" connected sweden

# Every message unhcr has sent, whatever its state.
sent_total() {
  "$TERN" info -c "$(conf unhcr)" --json |
    python3 -c 'import json,sys; d=json.load(sys.stdin); o=d.get("outbox") or d["counts"]["outbox"]; print(sum(o.values()))'
}
field() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read()).get(sys.argv[1]))' "$1"; }

say "a binary send is delivered"
out=$(referral_json BIN-1 | "$APIBIN" "$SOCK" send sweden)
[[ $(field ok <<<"$out") == True ]] || fail "binary send refused: $out"
[[ $(field state <<<"$out") == delivered ]] || fail "binary send not delivered: $out"
bin_id=$(field message_id <<<"$out")

say "the same body sent as JSON arrives the same"
json_id=$(referral_json BIN-1 | "$TERN" send -c "$(conf unhcr)" --to sweden --wait 30 case-referral - | cut -d' ' -f1)
body() { "$TERN" inbox -c "$(conf sweden)" show "$1" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["body"], sort_keys=True))'; }
[[ -n $(body "$bin_id") ]] || fail "the binary send is not in sweden's inbox"
[[ $(body "$bin_id") == "$(body "$json_id")" ]] || fail "the bodies differ: $(body "$bin_id") vs $(body "$json_id")"

say "refusals, each answered, the node going on"
before=$(sent_total)
out=$(referral_json BIN-2 | "$APIBIN" "$SOCK" unknown sweden)
[[ $(field error <<<"$out") == invalid-body ]] || fail "a body with an unknown field: $out"
out=$(referral_json BIN-3 | "$APIBIN" "$SOCK" v2 sweden)
[[ $(field error <<<"$out") == unsupported ]] || fail "API version 2: $out"
out=$("$APIBIN" "$SOCK" garbage)
[[ $(field error <<<"$out") == malformed ]] || fail "garbage: $out"
out=$(referral_json BIN-4 | "$APIBIN" "$SOCK" send unknown-node)
[[ $(field error <<<"$out") == unknown-recipient ]] || fail "an unknown recipient: $out"
[[ $(field message <<<"$out") == *"unknown-node"* ]] || fail "the unknown-recipient refusal does not name the recipient: $out"
# Of several recipients, the refusal names the one the directory lacks.
rc=0
"$TERN" example case-update | "$TERN" send -c "$(conf unhcr)" --to sweden,nowhere case-update - >"$WORK/unknown.out" 2>&1 || rc=$?
[[ $rc -ne 0 ]] && grep -q "unknown-recipient" "$WORK/unknown.out" || { cat "$WORK/unknown.out"; fail "a send to sweden,nowhere was not refused unknown-recipient"; }
grep -q "nowhere" "$WORK/unknown.out" || { cat "$WORK/unknown.out"; fail "the unknown-recipient refusal does not name nowhere"; }
out=$(referral_json BIN-6 | "$APIBIN" "$SOCK" nobody sweden)
[[ $(field error <<<"$out") == invalid-body ]] || fail "no body: $out"
out=$(referral_json BIN-7 | "$APIBIN" "$SOCK" nulto sweden)
[[ $(field error <<<"$out") == malformed ]] || fail "a recipient cut at a NUL: $out"
out=$(referral_json BIN-8 | "$APIBIN" "$SOCK" badref sweden)
[[ $(field error <<<"$out") == malformed ]] || fail "a client_ref that is not UTF-8: $out"
[[ $(sent_total) == "$before" ]] || fail "a refused send reached the outbox"

# One JSON request on a fresh connection; its answer's error code, or
# "no-answer" when none comes within 5 s.
json_raw() {
  python3 - "$SOCK" "$1" <<'PY'
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
b = sys.argv[2].encode()
s.sendall(struct.pack(">I", len(b)) + b)
d = b""
try:
    while len(d) < 4 or len(d) < 4 + struct.unpack(">I", d[:4])[0]:
        c = s.recv(65536)
        if not c:
            break
        d += c
    r = json.loads(d[4:4 + struct.unpack(">I", d[:4])[0]])
    print(r.get("error") or ("ok" if r.get("ok") else "?"), r.get("message_id", ""))
except (socket.timeout, struct.error, ValueError):
    print("no-answer")
PY
}
say "an answer quoting a request cut inside a UTF-8 character"
long=$(python3 -c 'print("a" + "\u20ac" * 300)')
for op in status inbox.show; do
  out=$(json_raw "{\"v\":1,\"op\":\"$op\",\"message_id\":\"$long\"}")
  [[ $out != no-answer* ]] || fail "$op with a long multibyte id got no answer"
done
say "a ttl that would overflow, an empty client_ref"
body=$(referral_json BIN-9 | tr -d '\n')
out=$(json_raw "{\"v\":1,\"op\":\"send\",\"to\":[\"sweden\"],\"type\":\"case-referral\",\"ttl_seconds\":4611686018427387904,\"body\":$body}")
[[ $out == invalid-argument* ]] || fail "a ttl of 2^62 s: $out"
a=$(json_raw "{\"v\":1,\"op\":\"send\",\"to\":[\"sweden\"],\"type\":\"case-referral\",\"client_ref\":\"\",\"body\":$body}")
b=$(json_raw "{\"v\":1,\"op\":\"send\",\"to\":[\"sweden\"],\"type\":\"case-referral\",\"client_ref\":\"\",\"body\":$body}")
[[ $a == ok* && $b == ok* && ${a#ok } != "${b#ok }" ]] || fail "two sends with client_ref \"\": $a / $b"

say "one connection, two sends"
out=$(referral_json BIN-5 | "$APIBIN" "$SOCK" twice sweden)
[[ $(wc -l <<<"$out") -eq 2 ]] || fail "two sends on one connection: $out"
ids=$(while read -r l; do field message_id <<<"$l"; done <<<"$out" | sort -u | wc -l)
[[ $ids -eq 2 ]] || fail "the two sends did not get two ids: $out"
wait_for 20 "all 6 delivered" count_is unhcr delivered 6
echo "it test_api_binary: ok"
