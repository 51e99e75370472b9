# Shared by the integration tests: a development federation in a temporary
# directory, daemons started and killed by name, and waiting with timeouts.
# Sourced by tests/integration/test_*.sh; $TERN is the tern binary (ctest
# sets it; run by hand from a source tree, build/bin/tern is taken).
set -euo pipefail
if [[ -z ${TERN:-} ]]; then
  TERN="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/bin/tern"
  if [[ ! -x $TERN ]]; then
    echo "$(basename "$0"): no tern binary at $TERN: build with scripts/build.sh," >&2
    echo "or set TERN to the tern binary of another build (TERN=/path/to/build/bin/tern)" >&2
    exit 2
  fi
fi
[[ -x $TERN ]] || { echo "$(basename "$0"): TERN=$TERN is not an executable tern binary" >&2; exit 2; }
export TERN
BIN=$(dirname "$TERN")
FLOOD="$BIN/tern-flood"
WORK=$(mktemp -d /tmp/tern-it.XXXXXX)
# Below Linux's ephemeral range (32768-60999): a test that opens many client
# connections must not take the ports another test's daemons listen on.
# A federation takes ports PORT to PORT+19 (tern dev-federation), a test's
# second one PORT+40 on: each test gets a block of 64, and a block whose ports
# another test's daemons already hold is skipped (tests run two at a time,
# and a collision failed a test with "Address already in use").
ports_free() {
  python3 - "$1" <<'PY'
import socket, sys
base = int(sys.argv[1])
for p in range(base, base + 64):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        sys.exit(1)
    finally:
        s.close()
PY
}
if [[ -n ${TERN_TEST_PORT:-} ]]; then
  PORT=$TERN_TEST_PORT
else
  for _ in 1 2 3 4 5 6 7 8; do
    PORT=$((20000 + (RANDOM % 187) * 64))
    ports_free "$PORT" && break
  done
fi
declare -A PIDS=()

cleanup() {
  local rc=$?
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ $rc -eq 0 && -z "${KEEP:-}" ]]; then
    rm -rf "$WORK"
  else
    echo "kept $WORK (logs: $WORK/*.log)" >&2
    for f in "$WORK"/*.log; do [[ -f "$f" ]] && { echo "--- $f (tail)" >&2; tail -n 15 "$f" >&2; }; done
  fi
  exit $rc
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# Every HTTP exchange a test makes with a node's API is recorded, and
# http_check validates them all against docs/openapi.yaml at the end.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HTTP_LOG="$WORK/http.jsonl"
# http_record METHOD PATH HEAD-FILE BODY-FILE [REQUEST-FILE]: the status and
# headers from HEAD-FILE (curl -D: the last response in it), the first 256 KiB
# of each body (a download is bytes, and only its headers are checked).
http_record() {
  python3 - "$@" >>"$HTTP_LOG" <<'PY'
import json, sys
m, path, head, body = sys.argv[1:5]
def text(f):
    try:
        with open(f, "rb") as fh:
            return fh.read(256 * 1024).decode("utf-8", "surrogateescape")
    except OSError:
        return ""
blocks = [b for b in open(head, "rb").read().decode("latin-1").replace("\r", "").split("\n\n") if b.startswith("HTTP/")]
lines = blocks[-1].split("\n") if blocks else ["HTTP/1.1 000"]
hdrs = {}
for l in lines[1:]:
    if ":" in l:
        k, v = l.split(":", 1)
        hdrs[k.strip().lower()] = v.strip()
x = {"method": m, "path": path, "status": int(lines[0].split()[1]), "headers": hdrs,
     "body": text(body) if m != "HEAD" else ""}
if len(sys.argv) > 5 and sys.argv[5]:
    x["request"] = text(sys.argv[5])
print(json.dumps(x))
PY
}
# hreq NAME METHOD PORT PATH [TOKEN-FILE|-] [curl args...]: one request to a
# node's API with the token of TOKEN-FILE (- or "": none); the body in
# $WORK/NAME.out, the headers in $WORK/NAME.head; prints the status.
hreq() {
  local name=$1 method=$2 port=$3 path=$4 tokf=${5:-}
  shift 4; (($#)) && shift
  local auth=() data=""
  [[ -n $tokf && $tokf != - ]] && auth=(-H "Authorization: Bearer $(token "$tokf")")
  local a
  for a in "$@"; do [[ $a == @* ]] && data=${a#@}; done
  local io=(-o "$WORK/$name.out" -D "$WORK/$name.head")
  [[ $method == HEAD ]] && io=(-I -o "$WORK/$name.head")
  curl -sS -X "$method" "${io[@]}" -w '%{http_code}' --max-time 60 "${auth[@]}" "$@" \
    "http://127.0.0.1:$port$path" 2>"$WORK/$name.err" || fail "$name: $method $path: $(cat "$WORK/$name.err")"
  [[ $method == HEAD ]] && : >"$WORK/$name.out"
  http_record "$method" "$path" "$WORK/$name.head" "$WORK/$name.out" "$data"
}
http_check() {
  python3 "$ROOT/tests/tools/openapi_check.py" "$ROOT/docs/openapi.yaml" \
    "$ROOT/tests/data/openapi/oas-3.1-schema-2022-10-07.json" --exchanges "$HTTP_LOG" >"$WORK/openapi.out" ||
    { cat "$WORK/openapi.out" >&2; fail "an HTTP exchange breaks docs/openapi.yaml (above)"; }
  say "$(tail -1 "$WORK/openapi.out")"
}
say() { printf '%s %s\n' "$(date +%T)" "$*"; }

fed_make() { "$TERN" dev-federation "$WORK/fed" --base-port "$PORT" >/dev/null; }
conf() { echo "$WORK/fed/$1/node.conf"; }
# token FILE: the HTTP API token in FILE, white space around it dropped, as
# the node reads it (docs/api.md): the file ends in a newline.
token() { tr -d '[:space:]' <"$1"; }

start() {
  local name=$1
  if [[ $name == broker ]]; then
    "$BIN/tern-broker" -c "$WORK/fed/broker/broker.conf" >>"$WORK/$name.log" 2>&1 &
  else
    "$BIN/tern-node" -c "$(conf "$name")" >>"$WORK/$name.log" 2>&1 &
  fi
  PIDS[$name]=$!
}

stop() {
  kill -TERM "${PIDS[$1]}"
  wait "${PIDS[$1]}" || fail "$1 did not stop cleanly"
  unset "PIDS[$1]"
}

crash() {
  kill -9 "${PIDS[$1]}" 2>/dev/null || true
  wait "${PIDS[$1]}" 2>/dev/null || true
  unset "PIDS[$1]"
}

# wait_for SECONDS DESCRIPTION COMMAND...: until COMMAND succeeds.
wait_for() {
  local secs=$1 what=$2
  shift 2
  local until=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < until)) || fail "timed out after ${secs}s waiting for $what"
    sleep 0.1
  done
}

info_field() { # NODE FIELD: a number from tern info --json ("delivered", "inbox", ...)
  "$TERN" info -c "$(conf "$1")" --json | tr -d ' \n' | grep -o "\"$2\":[0-9]*" | cut -d: -f2
}

connected() { "$TERN" info -c "$(conf "$1")" --json | grep -q '"connected": true'; }
count_is() { [[ "$(info_field "$1" "$2")" == "$3" ]]; }
state_is() { "$TERN" status -c "$(conf "$1")" --json "$2" | grep -q "\"state\": \"$3\""; }

# cosigned_above WITNESS SIZE [OWNER]: OWNER's (sweden's) audit log, exported,
# holds a checkpoint of more than SIZE entries cosigned by WITNESS.
cosigned_above() {
  local owner=${3:-sweden}
  "$TERN" audit export -c "$(conf "$owner")" --out "$WORK/probe.tern-audit" >/dev/null 2>&1 || return 1
  python3 - "$WORK/probe.tern-audit" "$1" "$2" "$owner" <<'PY'
import re, sys
data = open(sys.argv[1], "rb").read()
witness, above, owner = sys.argv[2].encode(), int(sys.argv[3]), sys.argv[4].encode()
# Each checkpoint note: origin, size, root, a blank line, then signature lines.
for m in re.finditer(rb"tern/tern-dev/" + owner + rb"\n(\d+)\n[A-Za-z0-9+/=]+\n\n((?:\xe2\x80\x94 [^\n]*\n)+)", data):
    if int(m.group(1)) > above and b"\xe2\x80\x94 tern/tern-dev/" + witness + b" " in m.group(2):
        sys.exit(0)
sys.exit(1)
PY
}

# Business message bodies from `tern example`, for one case:
# referral_json CASE; decision_json CASE REFERRAL_ID [REJECTED]; travel_json CASE DECISION_ID
referral_json() { "$TERN" example case-referral | sed "s/\"caseId\": \"[^\"]*\"/\"caseId\": \"$1\"/"; }
decision_json() {
  local extra=""
  [[ ${3:-} == REJECTED ]] && extra=', "reasons": "Does not meet the criteria"'
  "$TERN" example acceptance-decision |
    sed -e "s/\"caseId\": \"[^\"]*\"/\"caseId\": \"$1\"/" \
        -e "s/\"referralId\": \"[^\"]*\"/\"referralId\": \"$2\"$extra/" \
        -e "s/\"outcome\": \"ACCEPTED\"/\"outcome\": \"${3:-ACCEPTED}\"/g"
}
travel_json() {
  "$TERN" example travel-confirmation |
    sed -e "s/\"caseId\": \"[^\"]*\"/\"caseId\": \"$1\"/" \
        -e "s/\"decisionId\": \"[^\"]*\"/\"decisionId\": \"$2\"/"
}

# Golden files (tests/integration/golden): what changes from run to run
# (message ids, times) is masked before the comparison.
GOLDEN="$(dirname "${BASH_SOURCE[0]}")/golden"
mask_volatile() {
  sed -E -e 's/[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/MSGID/g' \
         -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} UTC/TIME/g'
}
golden() { # NAME FILE: FILE, masked, must equal golden/NAME
  mask_volatile <"$2" >"$2.masked"
  diff -u "$GOLDEN/$1" "$2.masked" || fail "$2 differs from the golden file golden/$1"
}
