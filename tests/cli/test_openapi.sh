#!/usr/bin/env bash
# docs/openapi.yaml is a valid OpenAPI 3.1 document (against the published
# schema in tests/data/openapi, and each of its schemas a valid JSON Schema
# 2020-12), and docs/api.md's endpoint table is the one it generates. The
# HTTP integration tests check every exchange they make against it
# (http_check in tests/integration/lib.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
check="$root/tests/tools/openapi_check.py"
doc="$root/docs/openapi.yaml"
meta="$root/tests/data/openapi/oas-3.1-schema-2022-10-07.json"
python3 "$check" "$doc" "$meta"

# The table in docs/api.md is the generated one.
want=$(python3 "$check" "$doc" --table)
got=$(sed -n '/^<!-- BEGIN openapi table/,/^<!-- END openapi table/p' "$root/docs/api.md" | sed '1d;$d')
[[ "$got" == "$want" ]] || {
  diff <(echo "$want") <(echo "$got") >&2 || true
  echo "FAIL: docs/api.md's endpoint table is not the one docs/openapi.yaml gives;" \
    "regenerate it: tests/tools/openapi_check.py docs/openapi.yaml --table" >&2
  exit 1
}

# The checker finds what it must: a document that breaks the schema, and
# exchanges that break the document.
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
sed 's/^openapi: 3.1.0/openapi: 3.0.3/' "$doc" >"$tmp/old.yaml"
python3 "$check" "$tmp/old.yaml" "$meta" >"$tmp/out" && { echo "FAIL: an OpenAPI 3.0 document passed" >&2; exit 1; }
grep -q "openapi" "$tmp/out"
printf '{"messageId": "01a20000-0000-7000-8000-000000000000", "extra": 1}\n' >"$tmp/b1"
printf '{"message_id": "x"}\n' >"$tmp/b2"
printf 'not found\n' >"$tmp/b3"
printf '{"type":"case-referral","to":["sweden"],"body":{},"ttl":5}\n' >"$tmp/r4"
printf '{"type":"urn:tern:problem:invalid-argument","title":"t","status":400,"detail":"d","code":"invalid-argument"}\n' >"$tmp/b4"
cat >"$tmp/x.jsonl" <<J
{"method":"GET","path":"/v1/messages/01a20000-0000-7000-8000-000000000000","status":200,"headers":{"content-type":"application/json"},"body_file":"$tmp/b1"}
{"method":"POST","path":"/v1/messages","status":201,"headers":{"content-type":"application/json"},"body_file":"$tmp/b2"}
{"method":"GET","path":"/nothing","status":404,"headers":{"content-type":"text/plain"},"body_file":"$tmp/b3"}
{"method":"DELETE","path":"/v1/node","status":405,"headers":{"content-type":"application/problem+json"},"body_file":"$tmp/b4"}
{"method":"POST","path":"/v1/messages","status":201,"headers":{"content-type":"application/json","location":"/v1/messages/01a20000-0000-7000-8000-000000000000"},"body_file":"$tmp/b1","request_file":"$tmp/r4"}
J
python3 "$check" "$doc" "$meta" --exchanges "$tmp/x.jsonl" >"$tmp/out" && { echo "FAIL: bad exchanges passed" >&2; exit 1; }
for want in "'extra' was unexpected" "header Location missing" "'message_id' was unexpected" \
  "a 404 is not application/problem+json" "405 without Allow" "the document refuses this request"; do
  grep -qF "$want" "$tmp/out" || { cat "$tmp/out" >&2; echo "FAIL: the checker did not say: $want" >&2; exit 1; }
done
echo "cli test_openapi: ok"
